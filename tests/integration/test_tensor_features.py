"""Predict with `features` given as nested arrays of numbers, for a network without image inputs, under moto."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from tensorgate import layout
from tensorgate.models import Network, NetworkStatus, utc_now
from werkzeug.test import Client

from tests.integration.test_endpoints_api import HEADERS, create_endpoint
from tests.integration.test_inference_api import queued
from tests.integration.test_worker import Service, service, tensors  # noqa: F401 (fixture)


def relu_model() -> bytes:
    """x float32 [N, 3] → y = max(x, 0): a model whose input is no image."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tabular_network(through: Service) -> Network:
    """A ready network as the converter leaves an ONNX upload without preprocessing: its inputs and outputs."""
    model = relu_model()
    network_id = through.ids.next_id("network")
    now = utc_now()
    through.blobs.put(layout.model_key("dev", network_id), model)
    network = Network(
        account_id="dev",
        network_id=network_id,
        name="tabular",
        framework="onnx",
        task_id=0,
        status=NetworkStatus.READY,
        upload_prefix=layout.network_prefix("dev", network_id),
        inputs=[{"name": "x", "dtype": "float32", "shape": ["N", 3]}],
        outputs=[{"name": "y", "dtype": "float32", "shape": ["N", 3]}],
        conversion={"model": {"files": ["model.onnx"], "sha256": hashlib.sha256(model).hexdigest()}},
        create_date=now,
        update_date=now,
    )
    through.networks.put_new(network)
    return network


def test_predict_arrays_of_numbers_on_a_non_image_network_answers_its_tensors(
    api: Client,
    aws: dict[str, Any],
    service: Service,  # noqa: F811
) -> None:
    # Given an endpoint on a network whose one input is x float32 [N, 3]
    network = tabular_network(service)
    endpoint = create_endpoint(api, network_id=network.network_id)
    path = f"/v0.7/endpoints/{endpoint['id']}/predict?wait=0"

    # When a prediction sends samples that do not fit the input, each is refused with a sentence naming it
    for features, words in (
        ([[1.0, 2.0]], "shape [3]"),
        ([[[1.0, 2.0, 3.0]]], "shape [3]"),
        ([[1.0, 2.0, 3.0], ["a", "b", "c"]], "features[1]"),
        ([[1.0, [2.0], 3.0]], "numbers only"),
        ([[[1, 2, 3], [4, 5]]], "rectangular"),
        ([[1.0, True, 3.0]], "not true or false"),
        (["aGVsbG8="], "takes no images"),
    ):
        response = api.post(path, headers=HEADERS, json={"features": features})
        assert response.status_code == 400, (features, response.text)
        assert words in response.json["error"], response.json["error"]
    assert queued(aws) == []

    # When it sends two samples of three numbers (integers are floats' values too)
    response = api.post(path, headers=HEADERS, json={"features": [[1.5, -2.0, 3.0], [-1, 0, 4]]})
    assert response.status_code == 202, response.text
    task_ids = response.json["task_ids"]
    service.serve(task_ids)

    # Then each task answers the model's output for its own sample
    first, second = (tensors(task)["y"] for task in service.get(task_ids))
    np.testing.assert_array_equal(first, [[1.5, 0.0, 3.0]])
    np.testing.assert_array_equal(second, [[0.0, 0.0, 4.0]])
