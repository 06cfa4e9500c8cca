"""Archives are whole networks: a JSON create whose archive holds the model and its mean file serves the
same numbers as the multipart create of the same files, in every model format (real converter, real worker)."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from werkzeug.test import Client

from tests.conftest import DEV_KEY
from tests.integration.test_worker import Service, noise_png
from tests.unit.converter import models

pytestmark = pytest.mark.slow
HEADERS = {"X-API-KEY": DEV_KEY}
SIZE = 16
NHWC_MEAN = np.array([[[0.41, 0.52, 0.63]]], dtype=np.float32)  # (1, 1, 3): per channel, NHWC


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def frozen_image_graph() -> bytes:
    """image (None, 16, 16, 3) → conv (constant weights) → relu → spatial mean: `features` (None, 4)."""
    tf = models.tf()
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="image")
        weights = np.random.default_rng(3).standard_normal((3, 3, 3, 4)).astype(np.float32) / 3
        conv = tf.nn.conv2d(image, tf.constant(weights), strides=2, padding="SAME")
        tf.reduce_mean(tf.nn.relu(conv), axis=[1, 2], name="features")
    return graph.as_graph_def().SerializeToString()


def format_files(kind: str, folder: Path) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, Any]]:
    """(multipart files, archive members, network fields) of one format; both hold `mean.npy`."""
    image = {"dimension_order": "NHWC", "target_size": f"{SIZE}x{SIZE}", "mean_file": "mean.npy"}
    tensor_name = "image"
    mean = NHWC_MEAN
    if kind == "saved_model":
        directory = models.save_saved_model(models.keras_image_classifier(SIZE), folder / "saved_model")
        members = {path.relative_to(directory).as_posix(): path.read_bytes() for path in directory.rglob("*.*")}
        flat = {Path(name).name: content for name, content in members.items()}
    elif kind in ("keras", "h5"):
        path = folder / f"model.{kind}"
        models.keras_image_classifier(SIZE).save(str(path))
        members = flat = {path.name: path.read_bytes()}
    elif kind == "tflite":
        members = flat = {"model.tflite": models.tflite_bytes(models.keras_image_classifier(SIZE))}
    elif kind == "frozen_graph":
        members = flat = {"frozen_graph.pb": frozen_image_graph()}
        tensor_name = "image:0"
    else:
        members = flat = {"model.onnx": models.onnx_image_classifier(SIZE, SIZE).SerializeToString()}
        image["dimension_order"] = "NCHW"
        mean = NHWC_MEAN.reshape(3, 1, 1)
    # The archive keeps the mean file in a folder of its own: it is found wherever it sits.
    archive_members = {f"network/{name}": content for name, content in members.items()}
    archive_members["network/preprocessing/mean.npy"] = npy(mean)
    fields: dict[str, Any] = {"preprocessing": {"inputs": [{"tensor_name": tensor_name, "image": image}]}}
    if kind == "onnx":
        fields["framework"] = "onnx"
    if kind == "frozen_graph":
        fields["postprocessings"] = [{"tensors_output": {"tensors": ["features:0"]}}]
    return {**flat, "mean.npy": npy(mean)}, archive_members, fields


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


def create_multipart(api: Client, files: dict[str, bytes], fields: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "multipart twin"}
    data |= {name: value if isinstance(value, str) else json.dumps(value) for name, value in fields.items()}
    for name, content in files.items():
        data[name] = (io.BytesIO(content), name)
    response = api.post("/v0.7/networks", headers=HEADERS, data=data)
    assert response.status_code == 201, response.text
    return response.json


def create_with_archive(api: Client, aws: dict[str, Any], members: dict[str, bytes], fields: dict[str, Any]) -> Any:
    response = api.post(
        "/v0.7/networks", headers=HEADERS, json={"name": "archive", "archive_name": "net.zip", **fields}
    )
    assert response.status_code == 201, response.text
    network = response.json
    # The presigned POST's effect (tested in test_uploads): the archive lands at the key it was signed for.
    bucket = aws["template"].physical_name("ModelBucket")
    aws["session"].client("s3").put_object(Bucket=bucket, Key=network["upload"]["key"], Body=zipped(members))
    return network


@pytest.mark.parametrize("kind", ["saved_model", "keras", "h5", "tflite", "frozen_graph", "onnx"])
def test_archive_with_a_mean_file_serves_what_its_multipart_twin_serves(
    kind: str, api: Client, aws: dict[str, Any], convert: Any, tmp_path: Path
) -> None:
    # Given the same model and mean file, created once with multipart and once with JSON + archive
    files, members, fields = format_files(kind, tmp_path)
    twin = create_multipart(api, files, fields)
    archived = create_with_archive(api, aws, members, fields)

    # When both are converted
    convert()

    # Then both are ready, and each keeps its declared mean file beside its model
    s3 = aws["session"].client("s3")
    bucket = aws["template"].physical_name("ModelBucket")
    for network in (twin, archived):
        body = api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS).json
        assert body["status"] == "ready", body["error"]
        assert body["conversion"]["declared_files"] == ["mean.npy"]
        stored = s3.get_object(Bucket=bucket, Key=f"models/dev/{network['id']}/files/mean.npy")["Body"].read()
        assert stored == files["mean.npy"]

    # When the same image goes to both
    source = base64.b64encode(noise_png(9, (41, 29))).decode()
    task_ids = []
    for network in (twin, archived):
        response = api.post(
            f"/v0.7/networks/{network['id']}/inference",
            headers=HEADERS,
            json={"inputs": [{"image": {"source": source}}]},
        )
        assert response.status_code == 200, response.text
        task_ids.append(response.json["task_id"])
    service = Service(aws, tmp_path)
    service.serve(task_ids)

    # Then both succeed with the same tensors
    results = []
    for task in service.get(task_ids):
        assert task.status.value == "success", task.error
        results.append({item["name"]: np.array(item["data"]) for item in task.data["tensors"]})
    assert results[0].keys() == results[1].keys() and results[0]
    for name in results[0]:
        np.testing.assert_allclose(results[1][name], results[0][name], rtol=1e-6, atol=1e-7)


def test_onnx_archive_result_applies_the_mean(api: Client, aws: dict[str, Any], convert: Any, tmp_path: Path) -> None:
    # Given an ONNX network in an archive whose mean file is all the numbers the worker subtracts
    files, members, fields = format_files("onnx", tmp_path)
    archived = create_with_archive(api, aws, members, fields)
    convert()
    source = noise_png(4, (SIZE, SIZE))

    # When an image goes through it
    response = api.post(
        f"/v0.7/networks/{archived['id']}/inference",
        headers=HEADERS,
        json={"inputs": [{"image": {"source": base64.b64encode(source).decode()}}]},
    )
    service = Service(aws, tmp_path)
    service.serve([response.json["task_id"]])

    # Then the result is the model run on the pixels minus that mean
    from tensorgate_preprocessing.spec import ImageSpec
    from tensorgate_preprocessing.tensors import preprocess

    from functions.worker.runtime import CPU, Runtime

    [task] = service.get([response.json["task_id"]])
    spec = ImageSpec.model_validate(fields["preprocessing"]["inputs"][0]["image"])
    array, _ = preprocess(source, spec, mean=NHWC_MEAN.reshape(3, 1, 1))
    session = Runtime(available=[CPU]).open(models.onnx_image_classifier(SIZE, SIZE).SerializeToString())
    expected = session.run({"image": array})["probs"]
    np.testing.assert_allclose(np.reshape(task.data["tensors"][0]["data"], expected.shape), expected, rtol=1e-5)
