"""Datasets through `make dev`'s stack: each layout uploaded with its presigned POST, a version, a seeded split."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.datasets_samples import coco_archive, csv_labels, folder_per_class, jpeg, zip_archive
from tests.e2e.conftest import RunningStack
from tests.e2e.test_inference_e2e import wait_all

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLASSES = ("cat", "dog", "bird", "fish", "frog")


def create_dataset(stack: RunningStack, archive: bytes, **fields: Any) -> dict[str, Any]:
    """JSON create, the archive POSTed to the presigned URL as a client does, then the extraction waited for."""
    headers = {"X-API-KEY": stack.api_key}
    created = requests.post(f"{stack.url}/datasets/", headers=headers, json=fields, timeout=30)
    assert created.status_code == 201, created.text
    upload = created.json()["upload"]
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("d.zip", archive)}, timeout=60)
    assert posted.status_code in (200, 204), posted.text
    [task] = wait_all(stack, [created.json()["task_id"]], seconds=300)
    assert task["status"] == "success" and task["kind"] == "dataset", task
    return dict(requests.get(f"{stack.url}/datasets/{created.json()['id']}/", headers=headers, timeout=30).json())


def test_datasets_from_each_layout_a_transformation_version_and_a_reproducible_split(
    local_stack_with_workers: RunningStack,
) -> None:
    stack = local_stack_with_workers
    headers = {"X-API-KEY": stack.api_key}
    # A 500-image folder-per-class dataset with 3 files that are not images: 500 items, 3 item errors.
    pets = create_dataset(stack, zip_archive(folder_per_class(dict.fromkeys(CLASSES, 100), broken=3)), name="e2e pets")
    assert pets["status"] == "ready" and pets["extraction"]["items"] == 500
    assert pets["extraction"]["item_errors"] == 3 and pets["classes"] == {c: i for i, c in enumerate(sorted(CLASSES))}
    errors = requests.get(f"{stack.url}/datasets/{pets['id']}/errors", headers=headers, timeout=30).json()
    assert errors["count"] == 3 and all("broken" in error["item"] for error in errors["results"])

    # A 200-image COCO detection dataset with one annotation naming no image: 200 items, 1 item error.
    streets = create_dataset(stack, coco_archive(200, bad_annotation=True), name="e2e streets", kind="detection")
    assert streets["extraction"]["items"] == 200 and streets["extraction"]["item_errors"] == 1
    assert streets["classes"] == {"car": 1, "person": 2}

    # Images with a CSV of labels, one line naming an image the archive lacks.
    files = {f"{n}.jpg": jpeg((n * 10, 50, 50), seed=n) for n in range(20)}
    files["labels.csv"] = csv_labels(
        [[f"{n}.jpg", "odd" if n % 2 else "even"] for n in range(20)] + [["99.jpg", "odd"]]
    )
    tagged = create_dataset(stack, zip_archive(files), name="e2e csv")
    assert tagged["extraction"]["items"] == 20 and tagged["extraction"]["errors"][0]["item"].endswith("99.jpg")

    # A version by transformation: 12x8, mirrored, JPEG at quality 60.
    base = f"{stack.url}/datasets/{pets['id']}"
    steps = [{"resize": "12x8"}, {"horizontal_flip": True}, {"jpeg_quality": 60}]
    version = requests.post(
        f"{base}/versions", headers=headers, json={"name": "tiny", "transformations": steps}, timeout=30
    )
    assert version.status_code == 201, version.text
    [task] = wait_all(stack, [version.json()["task_id"]], seconds=300)
    assert task["status"] == "success" and task["kind"] == "transformation"
    items = requests.get(f"{base}/versions/tiny/items?limit=100", headers=headers, timeout=30).json()
    assert items["count"] == 500 and {(item["width"], item["height"]) for item in items["results"]} == {(12, 8)}

    # The same 80/10/10 split drawn twice with one seed: the same items, each class cut 80/10/10.
    parts = [{"name": "train", "percentage": 80}, {"name": "val", "percentage": 10}, {"name": "test", "percentage": 10}]
    splits = [
        requests.post(
            f"{base}/splits", headers=headers, json={"name": n, "parts": parts, "seed": 42}, timeout=30
        ).json()
        for n in ("first", "second")
    ]
    wait_all(stack, [split["task_id"] for split in splits], seconds=300)
    names = []
    for split in splits:
        ready = requests.get(f"{base}/splits/{split['id']}", headers=headers, timeout=30).json()
        assert ready["status"] == "ready" and ready["counts"] == {"train": 400, "val": 50, "test": 50}
        test_part = requests.get(f"{base}/splits/{split['id']}/items?part=test&limit=100", headers=headers, timeout=30)
        names.append([item["name"] for item in test_part.json()["results"]])
        labels = [item["labels"][0] for item in test_part.json()["results"]]
        assert all(labels.count(label) == 10 for label in CLASSES)
    assert names[0] == names[1]
    found = requests.get(
        f"{stack.url}/datasets/splits/lookup",
        params={"dataset": "e2e pets", "version": "v1", "name": "second"},
        headers=headers,
        timeout=30,
    )
    assert found.status_code == 200 and found.json()["id"] == splits[1]["id"]
