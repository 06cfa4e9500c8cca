"""`convert_network` on uploaded ONNX models: same checks as converted ones, no TensorFlow needed."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from functions.converter.convert import ConversionFailed, ConversionOptions, Reason, convert_network
from tests.unit.converter import models

IMAGE_PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "image",
            "image": {
                "dimension_order": "NCHW",
                "resize_type": "SQUASH",
                "color_channels": "RGB",
                "pixel_scaling": 1.0,
            },
        }
    ]
}


def _fails(upload, output, **kwargs) -> ConversionFailed:
    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, **kwargs)
    return caught.value


def test_convert_network_onnx_is_checked_and_described(onnx_upload, output):
    result = convert_network(onnx_upload, output)

    report = result.to_dict()
    assert json.loads(json.dumps(report)) == report
    assert report["format"] == "onnx"
    assert report["signature"] == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
        "outputs": [{"name": "probs", "dtype": "float32", "shape": ["batch", 3]}],
    }
    assert report["parity"]["checked"] is False
    assert report["model"]["files"] == ["model.onnx"]
    assert report["model"]["size"] == (output / "model.onnx").stat().st_size
    assert len(report["model"]["sha256"]) == 64


def test_convert_network_onnx_intermediate_tensor_becomes_an_extra_output(onnx_upload, output):
    result = convert_network(
        onnx_upload, output, postprocessings=[{"tensors_output": {"tensors": ["probs", "hidden"]}}]
    )

    assert [tensor["name"] for tensor in result.outputs] == ["probs", "hidden"]
    session = ort.InferenceSession(str(output / "model.onnx"))
    probs, hidden = session.run(None, {"x": np.ones((2, 4), np.float32)})
    assert hidden.shape == (2, 8) and probs.shape == (2, 3)


def test_convert_network_unknown_postprocessing_tensor_names_it_and_lists_available(onnx_upload, output):
    error = _fails(onnx_upload, output, postprocessings=[{"tensors_output": {"tensors": ["probs", "logitz"]}}])

    assert error.reason is Reason.UNKNOWN_TENSOR
    assert error.message.startswith(
        "The tensor 'logitz' named in postprocessings[0].tensors_output.tensors[1] does not exist in the model"
    )
    assert "'probs'" in error.message and "'logits'" in error.message


def test_convert_network_unknown_preprocessing_tensor_lists_inputs(output, upload):
    onnx.save(models.onnx_image_classifier(), str(upload / "model.onnx"))
    preprocessing = {"inputs": [{**IMAGE_PREPROCESSING["inputs"][0], "tensor_name": "data"}]}

    error = _fails(upload, output, preprocessing=preprocessing)

    assert error.reason is Reason.UNKNOWN_TENSOR
    assert "'data' named in preprocessing.inputs[0].tensor_name" in error.message
    assert error.details["available"] == ["image"]


def test_convert_network_missing_target_size_is_taken_from_the_model(upload, output):
    onnx.save(models.onnx_image_classifier(height=12, width=16), str(upload / "model.onnx"))

    result = convert_network(upload, output, preprocessing=IMAGE_PREPROCESSING)

    assert result.preprocessing["inputs"][0]["image"]["target_size"] == "16x12"
    assert result.preprocessing["inputs"][0]["image"]["dimension_order"] == "NCHW"
    assert result.parity["cases"][0]["input_shapes"] == {"image": [2, 3, 12, 16]}


def test_convert_network_dynamic_image_without_target_size_is_refused(upload, output):
    onnx.save(models.onnx_image_classifier(height=None, width=None), str(upload / "model.onnx"))

    error = _fails(upload, output, preprocessing=IMAGE_PREPROCESSING)

    assert error.reason is Reason.INVALID_DECLARATION
    assert "target_size is missing" in error.message


def test_convert_network_color_channels_must_match_the_model(upload, output):
    onnx.save(models.onnx_image_classifier(), str(upload / "model.onnx"))
    grey = json.loads(json.dumps(IMAGE_PREPROCESSING))
    grey["inputs"][0]["image"]["color_channels"] = "L"

    error = _fails(upload, output, preprocessing=grey)

    assert "has 3 channels on its C axis" in error.message


def test_convert_network_mean_file_must_be_uploaded_and_broadcast(upload, output):
    onnx.save(models.onnx_image_classifier(), str(upload / "model.onnx"))
    with_mean = json.loads(json.dumps(IMAGE_PREPROCESSING))
    with_mean["inputs"][0]["image"]["mean_file"] = "mean.npy"

    assert _fails(upload, output, preprocessing=with_mean).reason is Reason.MISSING_FILE

    np.save(upload / "mean.npy", np.zeros((1, 1, 3), np.float32))  # NHWC-shaped mean for an NCHW input
    error = _fails(upload, output, preprocessing=with_mean)
    assert error.reason is Reason.INVALID_DECLARATION
    assert "does not broadcast" in error.message

    np.save(upload / "mean.npy", np.full((3, 1, 1), 0.5, np.float32))
    assert convert_network(upload, output, preprocessing=with_mean).parity["passed"]


def test_convert_network_expected_output_mismatch_names_the_numbers(onnx_upload, output, features):
    session = ort.InferenceSession(str(onnx_upload / "model.onnx"))
    (probs,) = session.run(None, {"x": features})
    models.save_npz(onnx_upload / "test_input.npz", x=features)
    models.save_npz(onnx_upload / "test_expected_output.npz", probs=probs + 0.01)

    error = _fails(onnx_upload, output)

    assert error.reason is Reason.EXPECTED_OUTPUT_MISMATCH
    assert "'probs' max abs diff 0.01 > allowed" in error.message
    assert error.details["expected_output"]["outputs"][0]["max_abs"] == pytest.approx(0.01, rel=1e-3)


def test_convert_network_expected_output_that_matches_passes(onnx_upload, output, features):
    session = ort.InferenceSession(str(onnx_upload / "model.onnx"))
    (probs,) = session.run(None, {"x": features})
    models.save_npz(onnx_upload / "test_input.npz", x=features.astype(np.float64))  # cast to the input dtype
    models.save_npz(onnx_upload / "test_expected_output.npz", probs=probs)

    result = convert_network(onnx_upload, output)

    assert result.expected_output["passed"]
    assert [case["inputs"] for case in result.parity["cases"]] == ["generated", "test_input"]


def test_convert_network_expected_output_without_test_input_is_refused(onnx_upload, output):
    models.save_npz(onnx_upload / "test_expected_output.npz", probs=np.zeros((1, 3), np.float32))

    assert _fails(onnx_upload, output).reason is Reason.INVALID_TEST_DATA


def test_convert_network_spec_mismatch_is_reported(onnx_upload, output):
    error = _fails(
        onnx_upload,
        output,
        input_spec=[{"name": "x", "dtype": "float32", "shape": [None, 5]}],
        output_spec=[{"name": "probs", "dtype": "float64", "shape": [None, 3]}],
    )

    assert error.reason is Reason.SPEC_MISMATCH
    assert "'x' dimension 1 is declared 5 but the model's is 4" in error.message
    assert "'probs' is declared float64 but the model's is float32" in error.message


def test_convert_network_spec_symbols_name_the_model_dimensions(onnx_upload, output):
    result = convert_network(
        onnx_upload,
        output,
        input_spec=[{"name": "x", "dtype": "float32", "shape": ["batch", 4]}],
        output_spec=[{"name": "probs", "dtype": "float32", "shape": ["batch", 3]}],
    )

    assert result.spec_check["passed"]
    assert result.spec_check["symbols"] == {"batch": 2}


def test_convert_network_corrupt_onnx_is_a_corrupt_file(upload, output):
    (upload / "model.onnx").write_bytes(b"\x08\x07garbage that is not protobuf" * 10)

    error = _fails(upload, output)

    assert error.reason is Reason.CORRUPT_FILE
    assert "model.onnx" in error.message


def test_convert_network_onnx_with_unknown_operator_names_it(upload, output):
    model = models.onnx_classifier()
    model.graph.node[1].op_type = "FancyRelu"
    onnx.save(model, str(upload / "model.onnx"))

    error = _fails(upload, output)

    assert error.reason is Reason.UNSUPPORTED_OPS
    assert "FancyRelu (1 node: 'relu')" in error.message


def test_convert_network_onnx_external_data_outside_upload_is_refused(upload, output):
    model = models.onnx_classifier()
    weights = model.graph.initializer[0]
    weights.ClearField("raw_data")
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.append(onnx.StringStringEntryProto(key="location", value="../../etc/passwd"))
    (upload / "model.onnx").write_bytes(model.SerializeToString())

    error = _fails(upload, output)

    assert error.reason is Reason.UNSAFE_MODEL
    assert "../../etc/passwd" in error.message


def test_convert_network_large_model_path_writes_external_data(onnx_upload, output):
    result = convert_network(onnx_upload, output, options=ConversionOptions(large_model=True))

    assert result.model_files == ["model.onnx", "model.onnx.data"]
    assert result.external_data
    session = ort.InferenceSession(str(output / "model.onnx"))
    assert session.run(None, {"x": np.ones((1, 4), np.float32)})[0].shape == (1, 3)


def test_convert_network_options_from_network_ignore_worker_keys_and_reject_bad_values():
    options = ConversionOptions.from_network({"max_rel_diff": 1e-3, "opset": None, "max_batch_size": 8})

    assert options.max_rel_diff == 1e-3 and options.opset == 17

    with pytest.raises(ConversionFailed) as caught:
        ConversionOptions.from_network({"opset": 21})
    assert caught.value.reason is Reason.INVALID_OPTIONS
    assert "conversion_options.opset" in caught.value.message


def test_convert_network_scalar_output_model_keeps_its_rank(upload, output):
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)],
        "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(upload / "model.onnx"))

    result = convert_network(upload, output)

    assert result.outputs == [{"name": "total", "dtype": "float32", "shape": []}]


def test_convert_network_network_resize_mean_must_be_per_channel(upload, output):
    onnx.save(models.onnx_image_classifier(height=None, width=None), str(upload / "model.onnx"))
    np.save(upload / "mean.npy", np.zeros((3, 8, 8), np.float32))  # a mean image: NETWORK sizes vary
    preprocessing = json.loads(json.dumps(IMAGE_PREPROCESSING))
    preprocessing["inputs"][0]["image"].update(mean_file="mean.npy", resize_type="NETWORK", target_size="16")

    error = _fails(upload, output, preprocessing=preprocessing)

    assert error.reason is Reason.INVALID_DECLARATION
    assert error.message.startswith("preprocessing.inputs[0].image.mean_file 'mean.npy': mean_file has shape (3, 8, 8)")

    np.save(upload / "mean.npy", np.zeros((3, 1, 1), np.float32))
    result = convert_network(upload, output, preprocessing=preprocessing)
    assert result.preprocessing == preprocessing
    assert result.parity["cases"][0]["input_shapes"] == {"image": [2, 3, 12, 16]}  # pictures resized to 16
