"""The real `deepomatic-api` 1.0.0 client against the stack `make dev` starts: every call a v0.7 user makes.

The client is configured as its users configure it for another host: `Client(api_key=..., host=...)`
(or `DEEPOMATIC_API_URL`); it appends the version itself (`v0.7`). It sends an `ImageInput` with raw
or base64 bytes as multipart (it decodes base64 first), always with `crop_uniform_background`, and an
http(s) URL as JSON. Its multipart encoder (urllib3) writes text and integers only, so a user who sends
a bbox or polygon with image bytes gives the coordinates as strings; the API reads them by type.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from deepomatic.api.client import Client
from deepomatic.api.exceptions import ClientError, TaskError
from deepomatic.api.inputs import ImageInput

from tests.e2e.conftest import RunningStack
from tests.e2e.test_inference_e2e import demo_files, picture

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "image",
            "image": {
                "dimension_order": "NHWC",
                "target_size": "64x64",
                "resize_type": "SQUASH",
                "mean_file": "mean.npy",
                "color_channels": "RGB",
                "pixel_scaling": 1.0,
                "data_type": "FLOAT32",
            },
        }
    ],
    "batched_output": True,
}
BBOX = {"xmin": 0.1, "ymin": 0.15, "xmax": 0.8, "ymax": 0.9}
POLYGON = [{"x": 0.12, "y": 0.2}, {"x": 0.9, "y": 0.3}, {"x": 0.55, "y": 0.95}, {"x": 0.2, "y": 0.7}]


def as_text(value: Any) -> Any:
    """Coordinates as the client can put them in a multipart part: text."""
    if isinstance(value, dict):
        return {key: as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_text(item) for item in value]
    return repr(value)


def own_api_tensors(stack: RunningStack, network_id: int, image: dict[str, Any]) -> dict[str, np.ndarray]:
    """The same inference through our API with plain `requests` and a JSON body (base64 source)."""
    headers = {"X-API-KEY": stack.api_key}
    queued = requests.post(
        f"{stack.url}/networks/{network_id}/inference", headers=headers, json={"inputs": [{"image": image}]}, timeout=30
    )
    assert queued.status_code == 200, queued.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        task = requests.get(f"{stack.url}/tasks/{queued.json()['task_id']}/", headers=headers, timeout=30).json()
        if task["status"] != "pending":
            assert task["status"] == "success", task
            return {item["name"]: np.reshape(item["data"], item["shape"]) for item in task["data"]["tensors"]}
        time.sleep(0.2)
    pytest.fail(f"inference task {queued.json()['task_id']} still pending after 120 s")


def test_deepomatic_client_drives_the_local_stack_end_to_end(
    local_stack_with_workers: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = local_stack_with_workers
    folder = Path("/tmp/tg-demo")
    demo_files(folder)
    client = Client(api_key=stack.api_key, host=stack.host, user_agent_prefix="tensorgate-e2e/1")

    # Create with files, as the seed's Python sample does (file objects named by their file names)
    names = ("saved_model.pb", "variables.index", "variables.data-00000-of-00001", "mean.npy")
    handles = {name: (folder / name).open("rb") for name in names}
    try:
        network = client.Network.create(
            name="deepomatic client network",
            description="created by deepomatic-api 1.0.0",
            metadata={"author": "me", "project": "Go to mars"},
            framework="tensorflow-1.x",
            preprocessing=PREPROCESSING,
            postprocessings=[{"tensors_output": {"tensors": ["probabilities"]}}],
            files=handles,
        )
    finally:
        for handle in handles.values():
            handle.close()
    network_id = network["id"]
    assert isinstance(network_id, int) and network["metadata"] == {"author": "me", "project": "Go to mars"}
    assert network["preprocessing"]["inputs"][0]["image"]["pixel_scaling"] == 1.0

    # Wait for the deploy task with the client's own Task.wait
    deploy = client.Task.retrieve(network["task_id"]).wait(timeout=600)
    assert deploy["status"] == "success" and deploy["data"]["parity"]["passed"]
    assert deploy["date_created"] == deploy["create_date"] and deploy["subtasks"] is None
    assert client.Network.retrieve(network_id)["status"] == "ready"

    # Inference with ImageInput: raw bytes, then base64, each plain, with a bbox and with a polygon
    image = picture(3)
    encoded = base64.b64encode(image)
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"source": image, "encoding": "binary"}, {}),
        ({"source": encoded, "encoding": "base64"}, {}),
        ({"source": image, "encoding": "binary", "bbox": as_text(BBOX)}, {"bbox": BBOX}),
        ({"source": encoded, "encoding": "base64", "bbox": as_text(BBOX)}, {"bbox": BBOX}),
        (
            {"source": image, "encoding": "binary", "polygon": as_text(POLYGON)},
            {"polygon": POLYGON, "crop_uniform_background": False},
        ),
        (
            {"source": encoded, "encoding": "base64", "polygon": as_text(POLYGON), "crop_uniform_background": True},
            {"polygon": POLYGON, "crop_uniform_background": True},
        ),
    ]
    results = []
    for arguments, same_in_json in cases:
        # Then each result is exactly what the same request answers through our API in JSON
        result = client.Network.retrieve(network_id).inference(inputs=[ImageInput(**arguments)])
        expected = own_api_tensors(stack, network_id, {"source": encoded.decode(), **same_in_json})
        assert result.keys() == expected.keys() == {"probabilities"}
        assert result["probabilities"].shape == (1, 4)
        np.testing.assert_allclose(result["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-7)
        results.append(result["probabilities"])
    # And the region fields change the numbers: bbox, polygon crop, polygon with a white background
    plain, _, boxed, _, cut, whitened = results
    assert not np.allclose(plain, boxed) and not np.allclose(cut, whitened)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)

    # An http(s) source goes as JSON, with crop_uniform_background and the request-level options:
    # accepted, and the worker (which fetches no loopback URL) ends the task with its reason
    url_task = client.Network.retrieve(network_id).inference(
        inputs=[ImageInput(f"{stack.host}/nowhere.png", polygon=POLYGON, crop_uniform_background=True)],
        show_discarded=True,
        max_predictions=3,
        convert_to_numpy=False,
        return_task=True,
        wait_task=False,
    )
    with pytest.raises(TaskError) as failed:
        url_task.wait(timeout=120)
    assert "which the service does not fetch" in failed.value.task["error"], failed.value.task

    # Task.batch_wait over 16 inferences
    tasks = [
        client.Network.retrieve(network_id).inference(
            inputs=[ImageInput(picture(seed), encoding="binary")],
            convert_to_numpy=False,
            return_task=True,
            wait_task=False,
        )
        for seed in range(16)
    ]
    pending, success, error = client.Task.batch_wait(tasks=tasks, timeout=300)
    assert (len(pending), len(success), len(error)) == (0, 16, 0), (pending, error)
    assert [position for position, _ in success] == list(range(16))
    for position, task in success:
        probabilities = np.reshape(task["data"]["tensors"][0]["data"], (1, 4))
        np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
        if position == 3:
            np.testing.assert_allclose(probabilities, plain, rtol=1e-5, atol=1e-7)

    # List, update, delete
    listed = {item.pk: item for item in client.Network.list()}
    assert listed[network_id]["name"] == "deepomatic client network"
    mine = client.Network.retrieve(network_id)
    mine.update(name="renamed by the client", metadata={"author": "someone else"})
    assert mine["name"] == "renamed by the client"
    again = client.Network.retrieve(network_id)
    assert again["name"] == "renamed by the client" and again["metadata"] == {"author": "someone else"}
    assert again["description"] == "created by deepomatic-api 1.0.0"
    assert mine.delete() is None
    with pytest.raises(ClientError) as gone:
        client.Network.retrieve(network_id)["name"]
    assert gone.value.status_code == 404
