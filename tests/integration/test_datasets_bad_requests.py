"""Malformed dataset requests through the gateway: the right 4xx, one sentence naming the problem, no write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import DEV_KEY
from tests.integration.test_bad_requests import assert_one_readable_sentence, everything_stored

PARTS = [{"name": "train", "percentage": 80}, {"name": "test", "percentage": 20}]

# name → (method, path, body (JSON unless bytes), status, a word the sentence must contain)
CASES: dict[str, tuple[str, str, Any, int, str]] = {
    "create_without_name": ("POST", "/v0.7/datasets", {"description": "no name"}, 400, "name"),
    "create_name_too_long": ("POST", "/v0.7/datasets", {"name": "x" * 201}, 400, "name"),
    "create_unknown_kind": ("POST", "/v0.7/datasets", {"name": "d", "kind": "segmentation"}, 400, "kind"),
    "create_no_classes": ("POST", "/v0.7/datasets", {"name": "d", "classes": {}}, 400, "classes"),
    "create_classes_sharing_an_id": ("POST", "/v0.7/datasets", {"name": "d", "classes": {"a": 0, "b": 0}}, 400, "id"),
    "create_archive_not_an_archive": ("POST", "/v0.7/datasets", {"name": "d", "archive_name": "a.rar"}, 400, ".zip"),
    "create_archive_name_with_a_path": (
        "POST",
        "/v0.7/datasets",
        {"name": "d", "archive_name": "../a.zip"},
        400,
        "plain",
    ),
    "create_date_not_a_date": ("POST", "/v0.7/datasets", {"name": "d", "collection_date": "13-45-2020"}, 400, "date"),
    "create_unknown_field": ("POST", "/v0.7/datasets", {"name": "d", "labels": "x.csv"}, 400, "labels"),
    "create_body_not_json": ("POST", "/v0.7/datasets", b"{name: d", 400, "JSON"),
    "retry_labels_not_a_label_file": ("POST", "/v0.7/datasets/1/retry", {"labels_name": "l.txt"}, 400, "labels_name"),
    "retry_unknown_dataset": ("POST", "/v0.7/datasets/424242/retry", {}, 404, "424242"),
    "version_two_steps_in_one": (
        "POST",
        "/v0.7/datasets/1/versions",
        {"name": "v2", "transformations": [{"resize": "8x8", "grayscale": True}]},
        400,
        "exactly one step",
    ),
    "version_resize_to_nothing": (
        "POST",
        "/v0.7/datasets/1/versions",
        {"name": "v2", "transformations": [{"resize": "0x8"}]},
        400,
        "resize",
    ),
    "version_jpeg_quality_over_100": (
        "POST",
        "/v0.7/datasets/1/versions",
        {"name": "v2", "transformations": [{"jpeg_quality": 101}]},
        400,
        "jpeg",
    ),
    "version_without_steps": (
        "POST",
        "/v0.7/datasets/1/versions",
        {"name": "v2", "transformations": []},
        400,
        "transf",
    ),
    "version_name_with_a_space": (
        "POST",
        "/v0.7/datasets/1/versions",
        {"name": "v 2", "transformations": [{"grayscale": True}]},
        400,
        "name",
    ),
    "split_parts_not_summing_to_100": (
        "POST",
        "/v0.7/datasets/1/splits",
        {"name": "s", "parts": PARTS[:1]},
        400,
        "sum to 100",
    ),
    "split_parts_sharing_a_name": (
        "POST",
        "/v0.7/datasets/1/splits",
        {"name": "s", "parts": [PARTS[0], {**PARTS[1], "name": "train"}]},
        400,
        "distinct",
    ),
    "split_negative_seed": ("POST", "/v0.7/datasets/1/splits", {"name": "s", "parts": PARTS, "seed": -1}, 400, "seed"),
    "split_items_without_part": ("GET", "/v0.7/datasets/1/splits/1/items", None, 400, "part"),
    "split_lookup_without_version": ("GET", "/v0.7/datasets/splits/lookup?dataset=d&name=s", None, 400, "version"),
    "dataset_id_not_an_integer": ("GET", "/v0.7/datasets/pets", None, 404, "integer"),
    "version_name_not_a_name": ("GET", "/v0.7/datasets/1/versions/v%201", None, 404, "Version"),
    "evaluation_network_id_zero": (
        "POST",
        "/v0.7/datasets/1/splits/1/evaluations",
        {"network_id": 0},
        400,
        "network_id",
    ),
    "evaluation_unknown_field": (
        "POST",
        "/v0.7/datasets/1/splits/1/evaluations",
        {"network_id": 1, "threshold": 0.5},
        400,
        "threshold",
    ),
    "evaluation_two_targets": (
        "POST",
        "/v0.7/datasets/1/splits/1/evaluations",
        {"network_id": 1, "recognition_spec_id": 2},
        400,
        "exactly one target",
    ),
    "cancel_of_an_unknown_dataset": ("POST", "/v0.7/datasets/424242/cancel", None, 404, "424242"),
    "evaluation_of_an_unknown_split": ("POST", "/v0.7/datasets/1/splits/1/evaluations", {"network_id": 1}, 404, "1"),
    "evaluation_id_not_an_integer": ("GET", "/v0.7/datasets/1/splits/1/evaluations/last/metrics", None, 404, "integer"),
    "dataset_lookup_without_name": ("GET", "/v0.7/datasets/lookup", None, 400, "name"),
    "dataset_list_limit_over_100": ("GET", "/v0.7/datasets?limit=101", None, 400, "limit"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dataset_bad_request_answers_4xx_with_one_sentence_and_writes_nothing(
    name: str, api: Client, aws: dict[str, Any]
) -> None:
    method, path, body, status, mentions = CASES[name]
    before = everything_stored(aws)
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    response = api.open(path, method=method, headers={"X-API-KEY": DEV_KEY}, data=data, content_type="application/json")
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    assert_one_readable_sentence(response.json["error"])
    assert mentions.lower() in response.json["error"].lower(), response.json
    assert everything_stored(aws) == before
