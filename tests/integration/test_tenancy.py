"""Tenancy: for every route of template.yaml, another account's resources answer as if they did not exist."""

from __future__ import annotations

import io
from typing import Any

import pytest
from tensorgate_local.template import Template
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY, stored_state

OWNER = {"X-API-KEY": DEV_KEY}
STRANGER = {"X-API-KEY": OTHER_KEY}

INFERENCE = {"json": {"inputs": [{"image": {"source": "https://example.com/a.jpg"}}]}}
SPEC = {"name": "mine", "outputs": [{"labels": {"labels": [{"id": 0, "name": "cat"}]}}]}
JOB_INPUTS = {"urls": ["https://example.com/a.jpg"]}
CLASSIFICATION = [{"classification": {"output_tensor": "probabilities", "thresholds": [0.5]}}]

# What a stranger gets on each route, given the owner's network `n` and its task `t`, and the owner's
# recognition spec `s` whose version `v` reads that network.
CASES: dict[tuple[str, str], tuple[str, dict[str, Any], int]] = {
    ("POST", "/v0.7/networks"): ("/v0.7/networks/", {"json": {"name": "mine"}}, 201),
    ("GET", "/v0.7/networks"): ("/v0.7/networks/", {}, 200),
    ("GET", "/v0.7/networks/public"): ("/v0.7/networks/public/", {}, 200),
    ("GET", "/v0.7/networks/public/{slug}"): ("/v0.7/networks/public/{n}/", {}, 404),
    ("GET", "/v0.7/networks/{network_id}"): ("/v0.7/networks/{n}/", {}, 404),
    ("PATCH", "/v0.7/networks/{network_id}"): ("/v0.7/networks/{n}/", {"json": {"name": "stolen"}}, 404),
    ("DELETE", "/v0.7/networks/{network_id}"): ("/v0.7/networks/{n}/", {}, 404),
    ("POST", "/v0.7/networks/{network_id}/inference"): ("/v0.7/networks/{n}/inference", INFERENCE, 404),
    ("GET", "/v0.7/tasks"): ("/v0.7/tasks/?task_ids={t}", {}, 200),
    ("GET", "/v0.7/tasks/{task_id}"): ("/v0.7/tasks/{t}/", {}, 404),
    ("POST", "/v0.7/recognition/specs"): ("/v0.7/recognition/specs/", {"json": SPEC}, 201),
    ("GET", "/v0.7/recognition/specs"): ("/v0.7/recognition/specs/", {}, 200),
    ("GET", "/v0.7/recognition/public"): ("/v0.7/recognition/public/", {}, 200),
    ("GET", "/v0.7/recognition/public/{slug}"): ("/v0.7/recognition/public/{s}/", {}, 404),
    ("GET", "/v0.7/recognition/specs/{spec_id}"): ("/v0.7/recognition/specs/{s}/", {}, 404),
    ("PATCH", "/v0.7/recognition/specs/{spec_id}"): ("/v0.7/recognition/specs/{s}/", {"json": {"name": "x"}}, 404),
    ("DELETE", "/v0.7/recognition/specs/{spec_id}"): ("/v0.7/recognition/specs/{s}/", {}, 404),
    ("GET", "/v0.7/recognition/specs/{spec_id}/versions"): ("/v0.7/recognition/specs/{s}/versions", {}, 404),
    ("POST", "/v0.7/recognition/specs/{spec_id}/inference"): ("/v0.7/recognition/specs/{s}/inference", INFERENCE, 404),
    # A version naming the owner's spec and network: neither exists in the stranger's account.
    ("POST", "/v0.7/recognition/versions"): (
        "/v0.7/recognition/versions/",
        {"json": {"spec_id": "{s}", "network_id": "{n}", "post_processings": CLASSIFICATION}},
        400,
    ),
    ("GET", "/v0.7/recognition/versions"): ("/v0.7/recognition/versions/", {}, 200),
    ("GET", "/v0.7/recognition/versions/{version_id}"): ("/v0.7/recognition/versions/{v}/", {}, 404),
    ("DELETE", "/v0.7/recognition/versions/{version_id}"): ("/v0.7/recognition/versions/{v}/", {}, 404),
    ("POST", "/v0.7/recognition/versions/{version_id}/inference"): (
        "/v0.7/recognition/versions/{v}/inference",
        INFERENCE,
        404,
    ),
    ("GET", "/v0.7/networks/lookup"): ("/v0.7/networks/lookup?name=private", {}, 404),
    ("GET", "/v0.7/recognition/specs/lookup"): ("/v0.7/recognition/specs/lookup?name=" + SPEC["name"], {}, 404),
    ("POST", "/v0.7/endpoints"): ("/v0.7/endpoints/", {"json": {"name": "mine", "network_id": "{n}"}}, 400),
    ("GET", "/v0.7/endpoints"): ("/v0.7/endpoints/?search=owner", {}, 200),
    ("GET", "/v0.7/endpoints/lookup"): ("/v0.7/endpoints/lookup?name=owners", {}, 404),
    ("GET", "/v0.7/endpoints/{endpoint_id}"): ("/v0.7/endpoints/{e}/", {}, 404),
    ("PATCH", "/v0.7/endpoints/{endpoint_id}"): ("/v0.7/endpoints/{e}/", {"json": {"replicas": 9}}, 404),
    ("DELETE", "/v0.7/endpoints/{endpoint_id}"): ("/v0.7/endpoints/{e}/", {}, 404),
    ("POST", "/v0.7/endpoints/{endpoint_id}/shutdown"): ("/v0.7/endpoints/{e}/shutdown", {}, 404),
    ("POST", "/v0.7/endpoints/{endpoint_id}/predict"): ("/v0.7/endpoints/{e}/predict", INFERENCE, 404),
    # The owner's batch job `j`; a stranger's job through the owner's network names no network of theirs.
    ("POST", "/v0.7/jobs"): ("/v0.7/jobs/", {"json": {"name": "x", "network_id": "{n}", "inputs": JOB_INPUTS}}, 400),
    ("GET", "/v0.7/jobs"): ("/v0.7/jobs/?search=owner", {}, 200),
    ("GET", "/v0.7/jobs/lookup"): ("/v0.7/jobs/lookup?name=owners", {}, 404),
    ("GET", "/v0.7/jobs/{job_id}"): ("/v0.7/jobs/{j}/", {}, 404),
    ("POST", "/v0.7/jobs/{job_id}/cancel"): ("/v0.7/jobs/{j}/cancel", {}, 404),
    # The owner's dataset `d` (a split or evaluation id of it answers the same: the dataset is not the stranger's).
    ("POST", "/v0.7/datasets"): ("/v0.7/datasets/", {"json": {"name": "owners"}}, 201),
    ("GET", "/v0.7/datasets"): ("/v0.7/datasets/?search=owners", {}, 200),
    ("GET", "/v0.7/datasets/lookup"): ("/v0.7/datasets/lookup?name=owners", {}, 404),
    ("GET", "/v0.7/datasets/splits/lookup"): ("/v0.7/datasets/splits/lookup?dataset=owners&version=v1&name=s", {}, 404),
    ("GET", "/v0.7/datasets/{dataset_id}"): ("/v0.7/datasets/{d}/", {}, 404),
    ("DELETE", "/v0.7/datasets/{dataset_id}"): ("/v0.7/datasets/{d}/", {}, 404),
    ("POST", "/v0.7/datasets/{dataset_id}/retry"): ("/v0.7/datasets/{d}/retry", {"json": {}}, 404),
    ("GET", "/v0.7/datasets/{dataset_id}/errors"): ("/v0.7/datasets/{d}/errors", {}, 404),
    ("GET", "/v0.7/datasets/{dataset_id}/versions"): ("/v0.7/datasets/{d}/versions", {}, 404),
    ("POST", "/v0.7/datasets/{dataset_id}/versions"): (
        "/v0.7/datasets/{d}/versions",
        {"json": {"name": "gray", "transformations": [{"grayscale": True}]}},
        404,
    ),
    ("GET", "/v0.7/datasets/{dataset_id}/versions/{version}"): ("/v0.7/datasets/{d}/versions/v1", {}, 404),
    ("GET", "/v0.7/datasets/{dataset_id}/versions/{version}/items"): ("/v0.7/datasets/{d}/versions/v1/items", {}, 404),
    ("GET", "/v0.7/datasets/{dataset_id}/splits"): ("/v0.7/datasets/{d}/splits", {}, 404),
    ("POST", "/v0.7/datasets/{dataset_id}/splits"): (
        "/v0.7/datasets/{d}/splits",
        {"json": {"name": "s", "parts": [{"name": "all", "percentage": 100}]}},
        404,
    ),
    ("GET", "/v0.7/datasets/{dataset_id}/splits/{split_id}"): ("/v0.7/datasets/{d}/splits/1", {}, 404),
    ("GET", "/v0.7/datasets/{dataset_id}/splits/{split_id}/items"): (
        "/v0.7/datasets/{d}/splits/1/items?part=all",
        {},
        404,
    ),
    ("POST", "/v0.7/datasets/{dataset_id}/splits/{split_id}/evaluations"): (
        "/v0.7/datasets/{d}/splits/1/evaluations",
        {"json": {"network_id": "{n}"}},
        404,
    ),
    ("GET", "/v0.7/datasets/{dataset_id}/splits/{split_id}/evaluations/{evaluation_id}/metrics"): (
        "/v0.7/datasets/{d}/splits/1/evaluations/1/metrics",
        {},
        404,
    ),
    ("POST", "/v0.7/datasets/{dataset_id}/splits/{split_id}/evaluations/{evaluation_id}/cancel"): (
        "/v0.7/datasets/{d}/splits/1/evaluations/1/cancel",
        {},
        404,
    ),
    ("POST", "/v0.7/datasets/{dataset_id}/cancel"): ("/v0.7/datasets/{d}/cancel", {}, 404),
    ("POST", "/v0.7/datasets/{dataset_id}/versions/{version}/cancel"): (
        "/v0.7/datasets/{d}/versions/v1/cancel",
        {},
        404,
    ),
}
DOCUMENTATION_ROUTES = {("GET", "/v0.7/openapi.json"), ("GET", "/v0.7/docs")}


def test_every_route_has_a_tenancy_case() -> None:
    routes = {(route.method, route.path) for route in Template().routes()} - DOCUMENTATION_ROUTES
    assert routes == set(CASES)


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_strangers_never_see_or_change_the_owners_network(
    api: Client, aws: dict[str, Any], route: tuple[str, str]
) -> None:
    created = api.post(
        "/v0.7/networks",
        headers=OWNER,
        data={"name": "private", "model.onnx": (io.BytesIO(b"onnx"), "model.onnx")},
    ).json
    spec, version = owners_spec_and_version(api, created["id"])
    endpoint = api.post("/v0.7/endpoints", headers=OWNER, json={"name": "owners", "network_id": created["id"]}).json
    dataset = api.post("/v0.7/datasets", headers=OWNER, json={"name": "owners"}).json
    ids = {"n": created["id"], "t": created["task_id"], "s": spec["id"], "v": version["id"], "e": endpoint["id"]}
    ids["d"] = dataset["id"]
    job = api.post(
        "/v0.7/jobs", headers=OWNER, json={"name": "owners", "network_id": created["id"], "inputs": JOB_INPUTS}
    ).json
    ids["j"] = job["id"]
    path, options, status = CASES[route]
    if "json" in options:
        options = {"json": {name: _with_ids(value, ids) for name, value in options["json"].items()}}
    before = stored_state(aws)
    response = api.open(path.format(**ids), method=route[0], headers=STRANGER, **options)
    assert response.status_code == status, response.text
    body = response.json
    if status in (400, 404):
        assert "error" in body and stored_state(aws) == before
    elif route[0] == "GET":
        assert body["count"] == 0 and body["results"] == []
    else:  # the stranger's own create lives in the stranger's account
        assert body["id"] != created["id"]
    owner_view = api.get(f"/v0.7/networks/{created['id']}", headers=OWNER).json
    assert owner_view["name"] == "private"
    assert api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=OWNER).json == spec
    assert api.get(f"/v0.7/recognition/versions/{version['id']}", headers=OWNER).json == version
    assert api.get(f"/v0.7/endpoints/{endpoint['id']}", headers=OWNER).json == endpoint
    assert api.get(f"/v0.7/datasets/{dataset['id']}", headers=OWNER).json["name"] == "owners"
    assert api.get(f"/v0.7/jobs/{job['id']}", headers=OWNER).json["status"] == "running"


def owners_spec_and_version(api: Client, network_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The owner's spec, and its version on the owner's network (made ready as a conversion leaves it)."""
    from tensorgate import wiring
    from tensorgate.models import NetworkStatus

    networks = wiring.network_service()
    record = networks.get("dev", network_id)
    ready = {
        "status": NetworkStatus.READY,
        "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [1]}],
        "preprocessing": {"inputs": [{"tensor_name": "image", "image": {"target_size": "8x8"}}]},
    }
    networks._networks.replace(
        record.model_copy(update=ready | {"version": record.version + 1}), expected_version=record.version
    )
    spec = api.post("/v0.7/recognition/specs", headers=OWNER, json=SPEC).json
    body = {"spec_id": spec["id"], "network_id": network_id, "post_processings": CLASSIFICATION}
    version = api.post("/v0.7/recognition/versions", headers=OWNER, json=body).json
    spec = api.get(f"/v0.7/recognition/specs/{spec['id']}", headers=OWNER).json
    return spec, version


def _with_ids(value: Any, ids: dict[str, int]) -> Any:
    """A JSON value whose "{s}"-style strings name the owner's ids."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    return value
