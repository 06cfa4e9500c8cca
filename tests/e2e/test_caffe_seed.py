"""The v0.7 seed's own create example, a Caffe GoogLeNet, sent with curl through `make dev`'s stack.

The request is the seed's cURL command as written, but for the host and the key. Its three files are
where the seed's download step puts them (/tmp/deploy.prototxt, /tmp/snapshot.caffemodel,
/tmp/imagenet_mean.binaryproto): a GoogLeNet-shaped network built by tests/unit/converter/caffe_zoo.py
(prototxt + caffemodel from numpy weights) and an ImageNet-sized 3×256×256 mean in Caffe's format.
They are written whole and then renamed, with the same bytes every time, so runs at once agree.

Beside it, the other test-built nets of caffe_zoo.py (ResNet-shaped through the deepomatic-api client,
AlexNet-shaped and the one exercising every other supported layer through the multipart API), each served
equal to the numpy reference on the reference preprocessing.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from functions.converter.caffe_sources import network as network_module
from functions.converter.caffe_sources import reference
from tests.e2e.conftest import RunningStack
from tests.unit.converter import caffe_zoo

pytestmark = [pytest.mark.e2e]

SEED_REQUEST = """\
curl https://api.deepomatic.com/v0.7/networks \\
-H "X-API-KEY: ${DEEPOMATIC_API_KEY}" \\
-F name='my new network' \\
-F description='trained with more images' \\
-F metadata='{"author": "me", "project": "Go to mars"}' \\
-F framework='nv-caffe-0.x-mod' \\
-F preprocessing='{"inputs": [{"tensor_name": "data","image": {"dimension_order":"NCHW", "target_size":"224x224", \
"resize_type":"SQUASH", "mean_file": "mean_file_1.binaryproto", "color_channels": "BGR", "pixel_scaling": 255.0, \
"data_type": "FLOAT32"}}], "batched_output": true}' \\
-F deploy.prototxt=@/tmp/deploy.prototxt \\
-F snapshot.caffemodel=@/tmp/snapshot.caffemodel \\
-F mean_file_1.binaryproto=@/tmp/imagenet_mean.binaryproto
"""


def _mean() -> np.ndarray:
    rows = np.linspace(0, 1, 256, dtype=np.float32)
    return (
        np.array([104.0, 117.0, 123.0], np.float32)[:, None, None] + 20 * rows[None, :, None] - 8 * rows[None, None, :]
    )


def _write_whole(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)


def _wait(stack: RunningStack, path: str, done, seconds: float = 300) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = requests.get(f"{stack.url}{path}", headers={"X-API-KEY": stack.api_key}, timeout=30).json()
        if done(body):
            return body
        time.sleep(0.5)
    pytest.fail(f"{path} did not finish within {seconds} s:\n{stack.printed()[-3000:]}")


def test_seed_caffe_request_deploys_and_serves_googlenet_as_the_numpy_reference(
    local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:
    stack = local_stack_with_workers
    # Given the seed's three files, saved where its download step puts them
    net = caffe_zoo.googlenet_shaped()
    net.write(tmp_path)
    seed_files = Path("/tmp")
    for name in ("deploy.prototxt", "snapshot.caffemodel"):
        _write_whole(seed_files / name, (tmp_path / name).read_bytes())
    _write_whole(seed_files / "imagenet_mean.binaryproto", caffe_zoo.mean_binaryproto(_mean()))
    command = SEED_REQUEST.replace("https://api.deepomatic.com/v0.7", stack.url)

    # When the seed's curl command is run as written
    completed = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "DEEPOMATIC_API_KEY": stack.api_key},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # Then the network is created, converted with parity, and ready
    created = json.loads(completed.stdout)
    assert created["framework"] == "nv-caffe-0.x-mod" and created["name"] == "my new network", created
    assert created["metadata"] == {"author": "me", "project": "Go to mars"}
    assert created["preprocessing"]["inputs"][0]["image"]["mean_file"] == "mean_file_1.binaryproto"
    task = _wait(stack, f"/tasks/{created['task_id']}/", lambda body: body["status"] != "pending")
    assert task["status"] == "success", task
    deployed = _wait(stack, f"/networks/{created['id']}/", lambda body: body["status"] != "pending")
    parity = deployed["conversion"]["parity"]
    assert parity["passed"] and parity["outputs"][0]["name"] == "prob"
    assert parity["outputs"][0]["max_abs"] < 1e-4

    # And an inference answers what the numpy reference computes on the reference preprocessing
    pixels = np.random.default_rng(3).integers(0, 256, size=(180, 260, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    body = {"inputs": [{"image": {"source": base64.b64encode(buffer.getvalue()).decode()}}]}
    reply = requests.post(
        f"{stack.url}/networks/{created['id']}/inference", headers={"X-API-KEY": stack.api_key}, json=body, timeout=60
    )
    assert reply.status_code == 200, reply.text
    result = _wait(stack, f"/tasks/{reply.json()['task_id']}/", lambda body: body["status"] != "pending")
    assert result["status"] == "success", result
    [tensor] = [item for item in result["data"]["tensors"] if item["name"] == "prob"]

    resized = np.asarray(Image.fromarray(pixels).resize((224, 224), Image.BILINEAR), dtype=np.float32)
    bgr = resized[:, :, ::-1].transpose(2, 0, 1) / 255.0 * 255.0 - _mean()[:, 16:240, 16:240]
    caffe = network_module.load(tmp_path / "deploy.prototxt", tmp_path / "snapshot.caffemodel", "deploy.prototxt", "w")
    expected = reference.forward(caffe, {"data": bgr[None]})["prob"]
    assert tensor["shape"] == [1, 10] and np.ptp(expected) > 0.01  # an answer that tells networks apart
    np.testing.assert_allclose(tensor["data"], expected.ravel(), atol=2e-3)


def test_deepomatic_client_creates_a_caffe_resnet_and_reads_a_features_blob(
    local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:
    from deepomatic.api.client import Client
    from deepomatic.api.inputs import ImageInput

    stack = local_stack_with_workers
    # Given a ResNet-shaped Caffe net and a per-channel Caffe mean, created as the seed's Python sample does
    caffe_zoo.resnet_shaped().write(tmp_path)
    channel_mean = np.array([104.0, 117.0, 123.0], np.float32).reshape(1, 3, 1, 1)
    (tmp_path / "mean.binaryproto").write_bytes(caffe_zoo.blob_proto(channel_mean))
    image = {"dimension_order": "NCHW", "target_size": "64x64", "resize_type": "SQUASH", "color_channels": "BGR"}
    image |= {"mean_file": "mean.binaryproto", "pixel_scaling": 255.0, "data_type": "FLOAT32"}
    client = Client(api_key=stack.api_key, host=stack.host, user_agent_prefix="tensorgate-e2e/1")
    names = ("deploy.prototxt", "snapshot.caffemodel", "mean.binaryproto")
    handles = {name: (tmp_path / name).open("rb") for name in names}
    try:
        network = client.Network.create(
            name="caffe resnet",
            framework="nv-caffe-0.x-mod",
            preprocessing={"inputs": [{"tensor_name": "data", "image": image}], "batched_output": True},
            postprocessings=[{"tensors_output": {"tensors": ["prob", "res3a"]}}],
            files=handles,
        )
    finally:
        for handle in handles.values():
            handle.close()
    deploy = client.Task.retrieve(network["task_id"]).wait(timeout=300)
    assert deploy["status"] == "success" and deploy["data"]["parity"]["passed"]

    # When a picture is sent through the client
    pixels = np.random.default_rng(5).integers(0, 256, size=(97, 131, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    result = client.Network.retrieve(network["id"]).inference(
        inputs=[ImageInput(source=buffer.getvalue(), encoding="binary")]
    )

    # Then the class scores and the features of the in-place ReLU'd residual sum are the reference's
    resized = np.asarray(Image.fromarray(pixels).resize((64, 64), Image.BILINEAR), dtype=np.float32)
    bgr = resized[:, :, ::-1].transpose(2, 0, 1) - channel_mean[0]
    caffe = network_module.load(tmp_path / "deploy.prototxt", tmp_path / "snapshot.caffemodel", "deploy", "w")
    expected = reference.forward(caffe, {"data": bgr[None]})
    assert result["res3a"].shape == (1, 32, 8, 8) and float(expected["res3a"].min()) >= 0.0
    np.testing.assert_allclose(
        result["res3a"], expected["res3a"], rtol=1e-3, atol=1e-3 * float(expected["res3a"].max())
    )
    np.testing.assert_allclose(result["prob"], expected["prob"], atol=2e-3)


@dataclass(frozen=True)
class CaffeUpload:
    """A test-built net sent through the multipart API with a per-channel .binaryproto mean, and the blobs read."""

    build: Callable[[], caffe_zoo.CaffeNet]
    size: int
    pixel_scaling: float
    channel_mean: tuple[float, float, float]
    tensors: tuple[str, ...]


CAFFE_UPLOADS = {
    # Grouped convolutions, LRN, ceil pooling, dropout; on Caffe's 0–255 scale with ImageNet's BGR mean.
    "alexnet_shaped": CaffeUpload(caffe_zoo.alexnet_shaped, 67, 255.0, (104.0, 117.0, 123.0), ("fc8", "prob")),
    # The rest of the supported list: dilation, Deconvolution, PReLU, leaky ReLU, Sigmoid, TanH, Eltwise PROD/MAX
    # and weighted SUM, Scale by a second bottom, LRN within channel, padded ceil pooling, Flatten, Reshape. On a
    # 0–1 scale, so that Sigmoid and TanH answer between their bounds instead of ±1.
    "every_layer": CaffeUpload(caffe_zoo.every_layer, 24, 1.0, (0.40, 0.45, 0.50), ("reshaped", "gate")),
}


@pytest.mark.parametrize("architecture", sorted(CAFFE_UPLOADS))
def test_caffe_net_with_a_per_channel_mean_serves_its_blobs_as_the_numpy_reference(
    architecture: str, local_stack_with_workers: RunningStack, tmp_path: Path
) -> None:
    stack = local_stack_with_workers
    upload = CAFFE_UPLOADS[architecture]
    # Given a test-built net and Caffe's per-channel mean
    upload.build().write(tmp_path)
    channel_mean = np.array(upload.channel_mean, np.float32).reshape(1, 3, 1, 1)
    image = {"dimension_order": "NCHW", "target_size": f"{upload.size}x{upload.size}", "resize_type": "SQUASH"}
    image |= {"color_channels": "BGR", "mean_file": "mean.binaryproto", "pixel_scaling": upload.pixel_scaling}
    image |= {"data_type": "FLOAT32"}
    files = {name: (tmp_path / name).read_bytes() for name in ("deploy.prototxt", "snapshot.caffemodel")}
    created = requests.post(
        f"{stack.url}/networks/",
        headers={"X-API-KEY": stack.api_key},
        data={
            "name": f"caffe {architecture}",
            "framework": "caffe",
            "preprocessing": json.dumps({"inputs": [{"tensor_name": "data", "image": image}], "batched_output": True}),
            "postprocessings": json.dumps([{"tensors_output": {"tensors": list(upload.tensors)}}]),
        },
        files={**files, "mean.binaryproto": caffe_zoo.blob_proto(channel_mean)},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    task = _wait(stack, f"/tasks/{created.json()['task_id']}/", lambda body: body["status"] != "pending")
    assert task["status"] == "success" and task["data"]["parity"]["passed"], task

    # When a picture is sent
    pixels = np.random.default_rng(8).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    body = {"inputs": [{"image": {"source": base64.b64encode(buffer.getvalue()).decode()}}]}
    reply = requests.post(
        f"{stack.url}/networks/{created.json()['id']}/inference",
        headers={"X-API-KEY": stack.api_key},
        json=body,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    result = _wait(stack, f"/tasks/{reply.json()['task_id']}/", lambda body: body["status"] != "pending")

    # Then each blob asked for is the numpy reference's on the reference preprocessing
    assert result["status"] == "success", result
    served = {item["name"]: item for item in result["data"]["tensors"]}
    assert set(served) == set(upload.tensors)
    size = (upload.size, upload.size)
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR), dtype=np.float32)
    bgr = resized[:, :, ::-1].transpose(2, 0, 1) / 255.0 * upload.pixel_scaling - channel_mean[0]
    caffe = network_module.load(tmp_path / "deploy.prototxt", tmp_path / "snapshot.caffemodel", "deploy", "w")
    expected = reference.forward(caffe, {"data": bgr[None]})
    for name in upload.tensors:
        scale = float(np.abs(expected[name]).max())
        assert served[name]["shape"] == list(expected[name].shape) and np.ptp(expected[name]) > 0.05 * scale, name
        np.testing.assert_allclose(
            served[name]["data"], expected[name].ravel(), rtol=1e-3, atol=1e-3 * scale, err_msg=name
        )
