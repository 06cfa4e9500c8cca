"""PyTorch uploads registered through `make dev`'s stack, served, and answering what torch computes: a scripted
ResNet18 and GoogLeNet inception block, a MobileNetV3-Small exported by torch.export, and a model of two inputs
answering a dict."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from tests.e2e.conftest import RunningStack
from tests.unit.converter import torch_zoo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
FILE_NAMES = {"torchscript": "model.pt", "torch_export": "model.pt2"}


def _wait(stack: RunningStack, path: str, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = requests.get(f"{stack.url}{path}", headers={"X-API-KEY": stack.api_key}, timeout=30).json()
        if body["status"] != "pending":
            return body
        time.sleep(0.5)
    pytest.fail(f"{path} did not finish within {seconds} s:\n{stack.printed()[-3000:]}")


# Architecture and upload format: a scripted ResNet18 and inception block with the Neuropod-style input_spec;
# a MobileNetV3-Small exported by torch.export with an unbounded batch (Dim("batch") without max), which records
# its inputs itself.
UPLOADS = [("ResNet18", "torchscript"), ("MobileNetV3Small", "torch_export"), ("Inception", "torchscript")]


@pytest.mark.parametrize(("name", "upload"), UPLOADS, ids=[f"{name}-{upload}" for name, upload in UPLOADS])
def test_pytorch_network_deploys_and_serves_what_torch_computes(
    name: str, upload: str, local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:
    stack = local_stack_with_workers
    # Given a model saved from its training code, its mean, and (for TorchScript) the input_spec
    file_name = FILE_NAMES[upload]
    architecture = torch_zoo.ARCHITECTURES[name]
    size = architecture.input_spec[0]["shape"][-1]
    model = architecture.model()
    if upload == "torchscript":
        torch_zoo.save_torchscript(model, tmp_path / file_name)
    else:
        batch = torch.export.Dim("batch")
        program = torch.export.export(model, architecture.examples(), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, tmp_path / file_name)
    buffer = io.BytesIO()
    np.save(buffer, MEAN)
    preprocessing = {
        "inputs": [
            {
                "tensor_name": "x",
                "image": {
                    "dimension_order": "NCHW",
                    "target_size": f"{size}x{size}",
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

    # When it is created as a multipart request, as the seed's cURL example creates networks
    created = requests.post(
        f"{stack.url}/networks/",
        headers={"X-API-KEY": stack.api_key},
        data={
            "name": f"{name} from pytorch",
            "framework": "pytorch",
            "preprocessing": json.dumps(preprocessing),
            "postprocessings": json.dumps([{"tensors_output": {"tensors": ["output"]}}]),
            **({"input_spec": json.dumps(list(architecture.input_spec))} if upload == "torchscript" else {}),
        },
        files={file_name: (tmp_path / file_name).read_bytes(), "mean.npy": buffer.getvalue()},
        timeout=60,
    )
    assert created.status_code == 201, created.text

    # Then it converts with parity against torch, with a dynamic batch
    network_id = created.json()["id"]
    task = _wait(stack, f"/tasks/{created.json()['task_id']}/")
    assert task["status"] == "success", task
    deployed = _wait(stack, f"/networks/{network_id}/")
    conversion = deployed["conversion"]
    assert conversion["format"] == upload and conversion["parity"]["passed"], conversion
    assert deployed["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3, size, size]}]

    # And an inference answers what torch computes on the reference preprocessing
    pixels = np.random.default_rng(5).integers(0, 256, size=(70, 50, 3), dtype=np.uint8)
    picture = io.BytesIO()
    Image.fromarray(pixels).save(picture, format="PNG")
    body = {"inputs": [{"image": {"source": base64.b64encode(picture.getvalue()).decode()}}]}
    reply = requests.post(
        f"{stack.url}/networks/{network_id}/inference", headers={"X-API-KEY": stack.api_key}, json=body, timeout=60
    )
    assert reply.status_code == 200, reply.text
    result = _wait(stack, f"/tasks/{reply.json()['task_id']}/")
    assert result["status"] == "success", result
    [tensor] = [item for item in result["data"]["tensors"] if item["name"] == "output"]

    resized = np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR), dtype=np.float32)
    image = resized.transpose(2, 0, 1) / 255.0 - MEAN
    with torch.no_grad():
        expected = model(torch.from_numpy(image[None])).numpy()
    assert tensor["shape"] == list(expected.shape) and np.ptp(expected) > 0.01
    np.testing.assert_allclose(tensor["data"], expected.ravel(), rtol=1e-4, atol=1e-4)


def test_pytorch_two_input_dict_output_network_serves_arrays_of_numbers_as_torch_computes(
    local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:
    stack = local_stack_with_workers
    # Given a scripted model taking an image tensor and a feature vector and answering a dict, without preprocessing
    architecture = torch_zoo.ARCHITECTURES["TwoInputs"]
    model = architecture.model()
    torch_zoo.save_torchscript(model, tmp_path / "model.pt")
    created = requests.post(
        f"{stack.url}/networks/",
        headers={"X-API-KEY": stack.api_key},
        data={
            "name": "two inputs from pytorch",
            "framework": "pytorch",
            "postprocessings": json.dumps([{"tensors_output": {"tensors": ["scores", "embedding"]}}]),
            "input_spec": json.dumps(list(architecture.input_spec)),
        },
        files={"model.pt": (tmp_path / "model.pt").read_bytes()},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    task = _wait(stack, f"/tasks/{created.json()['task_id']}/")
    assert task["status"] == "success", task
    network_id = created.json()["id"]

    # When one sample of each input is sent as nested arrays of numbers
    image, features = (example[:1] for example in architecture.examples(batch=1))
    body = {"inputs": [{"tensor": image[0].tolist()}, {"tensor": features[0].tolist()}]}
    reply = requests.post(
        f"{stack.url}/networks/{network_id}/inference", headers={"X-API-KEY": stack.api_key}, json=body, timeout=60
    )
    assert reply.status_code == 200, reply.text
    result = _wait(stack, f"/tasks/{reply.json()['task_id']}/")

    # Then both dict entries answer what torch computes
    assert result["status"] == "success", result
    served = {item["name"]: item for item in result["data"]["tensors"]}
    with torch.no_grad():
        expected = model(image, features)
    assert set(served) == {"scores", "embedding"}
    for name, value in expected.items():
        assert served[name]["shape"] == list(value.shape)
        np.testing.assert_allclose(served[name]["data"], value.numpy().ravel(), rtol=1e-4, atol=1e-5)
