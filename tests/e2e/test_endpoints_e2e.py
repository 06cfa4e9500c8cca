"""Endpoints through `make dev`, HTTP only: predict answered in the same response, shutdown, the traffic split."""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack
from tests.e2e.test_inference_e2e import SIZE, demo_files, picture, wait_all

pytestmark = [pytest.mark.e2e]
LABELS = [{"id": index, "name": name} for index, name in enumerate(("sky", "sea", "sand", "grass"))]


@pytest.fixture(scope="module")
def demo_network(local_stack_with_workers: RunningStack) -> Iterator[dict[str, Any]]:
    """The demo classifier, deployed once for this module's tests."""
    stack = local_stack_with_workers
    preprocessing = {
        "inputs": [
            {
                "tensor_name": "image",
                "image": {
                    "dimension_order": "NHWC",
                    "target_size": f"{SIZE}x{SIZE}",
                    "mean_file": "mean.npy",
                    "pixel_scaling": 1.0,
                },
            }
        ]
    }
    files = demo_files(Path("/tmp/tg-demo"))
    response = requests.post(
        f"{stack.url}/networks/",
        headers={"X-API-KEY": stack.api_key},
        data={"name": "endpoint demo", "preprocessing": json.dumps(preprocessing)},
        files={name: (name, content) for name, content in files.items()},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    network = response.json()
    [deploy] = wait_all(stack, [network["task_id"]])
    assert deploy["status"] == "success", deploy
    yield network


def call(stack: RunningStack, method: str, path: str, **options: Any) -> requests.Response:
    return requests.request(method, f"{stack.url}{path}", headers={"X-API-KEY": stack.api_key}, timeout=60, **options)


def test_endpoint_create_predict_in_the_same_response_shutdown_then_409(
    local_stack_with_workers: RunningStack, demo_network: dict[str, Any]
) -> None:
    stack = local_stack_with_workers
    created = call(stack, "POST", "/endpoints/", json={"name": "demo endpoint", "network_id": demo_network["id"]})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    image = base64.b64encode(picture(1)).decode()

    # The answer holds the results: no polling
    latencies = []
    for _ in range(10):
        started = time.perf_counter()
        answer = call(stack, "POST", f"/endpoints/{endpoint['id']}/predict", json={"features": [image]})
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        [prediction] = answer.json()["predictions"]
        assert prediction["status"] == "success", prediction
        [tensor] = prediction["data"]["tensors"]
        assert tensor["name"] == "probabilities" and tensor["shape"] == [1, 4]
        assert abs(sum(tensor["data"]) - 1.0) < 1e-4
    # The same task through the tasks API, with the endpoint and target it went through
    task = call(stack, "GET", f"/tasks/{prediction['id']}/").json()
    assert task["data"] == prediction["data"] and task["endpoint_id"] == endpoint["id"]
    assert task["target"] == {"network_id": demo_network["id"], "canary": False}
    print(f"\npredict latency, one client, 10 requests: p50 {statistics.median(latencies) * 1000:.0f} ms")

    # The v0.7 inputs form answers the same numbers
    same = call(stack, "POST", f"/endpoints/{endpoint['id']}/predict", json={"inputs": [{"image": {"source": image}}]})
    assert same.status_code == 200 and same.json()["predictions"][0]["data"]["tensors"][0]["data"] == tensor["data"]

    # Shut down: 409 with a sentence, and nothing queued
    down = call(stack, "POST", f"/endpoints/{endpoint['id']}/shutdown")
    assert down.status_code == 200 and down.json()["status"] == "shutdown"
    refused = call(stack, "POST", f"/endpoints/{endpoint['id']}/predict", json={"features": [image]})
    assert refused.status_code == 409 and "shut down" in refused.json()["error"]
    assert call(stack, "GET", "/endpoints/lookup", params={"name": "demo endpoint"}).json()["status"] == "shutdown"


def test_traffic_split_sends_its_weight_of_400_predictions_to_the_canary(
    local_stack_with_workers: RunningStack, demo_network: dict[str, Any]
) -> None:
    stack = local_stack_with_workers
    # The canary: a recognition version on the same network (answers labels where the target answers tensors)
    spec = call(
        stack,
        "POST",
        "/recognition/specs/",
        json={"name": "scenes", "outputs": [{"labels": {"roi": "NONE", "exclusive": True, "labels": LABELS}}]},
    ).json()
    version = call(
        stack,
        "POST",
        "/recognition/versions/",
        json={
            "spec_id": spec["id"],
            "network_id": demo_network["id"],
            "post_processings": [{"classification": {"output_tensor": "probabilities", "thresholds": [0.0] * 4}}],
        },
    ).json()
    weight = 0.2
    body = {
        "name": "split",
        "network_id": demo_network["id"],
        "canary": {"recognition_version_id": version["id"], "weight": weight},
    }
    endpoint = call(stack, "POST", "/endpoints/", json=body).json()
    images = [base64.b64encode(picture(seed)).decode() for seed in range(16)]

    # 25 requests of 16 samples, answered at once (202): the worker takes all 400 together
    task_ids: list[int] = []
    for _ in range(25):
        answer = call(stack, "POST", f"/endpoints/{endpoint['id']}/predict?wait=0", json={"features": images})
        assert answer.status_code in (200, 202), answer.text
        task_ids += answer.json()["task_ids"]
    predictions = wait_all(stack, task_ids, seconds=300)
    assert len(predictions) == 400 and all(item["status"] == "success" for item in predictions)
    canary = [item for item in predictions if item["target"]["canary"]]
    assert abs(len(canary) / 400 - weight) <= 0.05 * weight, len(canary)
    # Each answered in its target's shape: labels through the version, tensors from the network
    assert all(item["target"] == {"recognition_version_id": version["id"], "canary": True} for item in canary)
    assert all("outputs" in item["data"] for item in canary)
    assert all("outputs" not in item["data"] for item in predictions if not item["target"]["canary"])

    # The PATCH that makes the canary current ends the split
    promoted = call(
        stack, "PATCH", f"/endpoints/{endpoint['id']}/", json={"recognition_version_id": version["id"], "canary": None}
    )
    assert promoted.status_code == 200 and promoted.json()["network_id"] is None
    answer = call(stack, "POST", f"/endpoints/{endpoint['id']}/predict", json={"features": images[:2]}).json()
    assert [item["target"]["recognition_version_id"] for item in answer["predictions"]] == [version["id"]] * 2
