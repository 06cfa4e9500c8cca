"""Inference end to end, HTTP only: create → ready → 50 concurrent requests from 8 clients → every task success."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import onnxruntime
import pytest
import requests
from PIL import Image

from tests.e2e.conftest import REPO_ROOT, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SIZE = 64
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)


def demo_files(folder: Path) -> dict[str, bytes]:
    import sys

    if not (folder / "saved_model.pb").exists():
        subprocess.run(
            [sys.executable, "examples/make_demo_model.py", str(folder)], cwd=REPO_ROOT, check=True, timeout=300
        )
    names = ("saved_model.pb", "variables.index", "variables.data-00000-of-00001", "mean.npy")
    return {name: (folder / name).read_bytes() for name in names}


def picture(seed: int) -> bytes:
    generator = np.random.default_rng(seed)
    pixels = generator.integers(0, 256, size=(90 + seed % 7 * 13, 120 + seed % 5 * 17, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def reference_input(data: bytes) -> np.ndarray:
    """DESIGN §3 written plainly: RGB, SQUASH with Pillow's BILINEAR, x / 255 * 1.0 - mean, NHWC."""
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return (np.asarray(image, dtype=np.float32) / 255.0 - MEAN)[None]


def wait_all(stack: RunningStack, task_ids: list[int], seconds: float = 600) -> list[dict[str, object]]:
    headers = {"X-API-KEY": stack.api_key}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tasks: list[dict[str, object]] = []
        for start in range(0, len(task_ids), 50):
            ids = ",".join(str(task_id) for task_id in task_ids[start : start + 50])
            tasks += requests.get(f"{stack.url}/tasks/?task_ids={ids}&limit=100", headers=headers, timeout=30).json()[
                "results"
            ]
        if all(task["status"] != "pending" for task in tasks) and len(tasks) == len(task_ids):
            return tasks
        time.sleep(1)
    pytest.fail(f"tasks still pending after {seconds} s:\n{stack.printed()[-3000:]}")


def test_fifty_concurrent_inferences_all_succeed_with_the_models_numbers(
    local_stack_with_workers: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = local_stack_with_workers
    headers = {"X-API-KEY": stack.api_key}
    # Given a deployed network
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
        headers=headers,
        data={"name": "e2e", "preprocessing": json.dumps(preprocessing)},
        files={name: (name, content) for name, content in files.items()},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    network = response.json()
    [deploy] = wait_all(stack, [network["task_id"]])
    assert deploy["status"] == "success", deploy

    # When 8 clients send 50 requests at once
    images = [picture(seed) for seed in range(50)]

    def submit(index: int) -> int:
        body = {"inputs": [{"image": {"source": base64.b64encode(images[index]).decode()}}]}
        reply = requests.post(f"{stack.url}/networks/{network['id']}/inference", headers=headers, json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        return int(reply.json()["task_id"])

    with ThreadPoolExecutor(max_workers=8) as clients:
        task_ids = list(clients.map(submit, range(50)))
    tasks = wait_all(stack, task_ids)

    # Then every task succeeded with what the converted model gives on the reference preprocessing
    aws_endpoint = re.search(r"AWS:\s+(\S+)", stack.printed()).group(1)  # type: ignore[union-attr]
    s3 = boto3.client(
        "s3",
        endpoint_url=aws_endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name="us-east-1",
    )
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    model = s3.get_object(Bucket=bucket, Key=f"models/dev/{network['id']}/model.onnx")["Body"].read()
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    by_id = {task["id"]: task for task in tasks}
    for index, task_id in enumerate(task_ids):
        task = by_id[task_id]
        assert task["status"] == "success", task
        [tensor] = task["data"]["tensors"]  # type: ignore[index]
        assert tensor["name"] == "probabilities" and tensor["shape"] == [1, 4]
        expected = session.run(None, {"image": reference_input(images[index])})[0].ravel()
        np.testing.assert_allclose(tensor["data"], expected, atol=2e-3)
    assert "batch" in stack.printed()  # the worker logs each batch: network, size, ms
