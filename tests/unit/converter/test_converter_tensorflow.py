"""`convert_network` on TensorFlow models the tests build: every upload form, names, failures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from functions.converter.convert import ConversionFailed, ConversionOptions, Reason, convert_network
from tests.unit.converter import models

pytestmark = pytest.mark.slow


def _fails(upload, output, **kwargs) -> ConversionFailed:
    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, **kwargs)
    return caught.value


def _run(output, feeds):
    session = ort.InferenceSession(str(output / "model.onnx"))
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def test_convert_network_keras_file_converts_with_dynamic_batch_and_parity(classifier, upload, output, features):
    classifier.save(upload / "model.keras")

    result = convert_network(upload, output, framework="keras")

    report = result.to_dict()
    assert json.loads(json.dumps(report)) == report
    assert report["format"] == "keras" and report["opset"] == 17
    assert report["signature"] == {
        "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", 4]}],
        "outputs": [{"name": "probs", "dtype": "float32", "shape": ["batch", 3]}],
    }
    assert report["parity"]["passed"] and report["parity"]["outputs"][0]["max_abs"] < 1e-6
    assert report["name_map"]["probs_1/Softmax:0"] == "probs"  # Keras 3 traces layer `probs` as `probs_1`
    assert onnx.load(str(output / "model.onnx")).opset_import[0].version == 17
    onnx_probs = _run(output, {"features": features})["probs"]  # batch of 3, not the 2 parity used
    np.testing.assert_allclose(onnx_probs, classifier(features).numpy(), rtol=1e-5, atol=1e-7)


def test_convert_network_h5_file_converts(classifier, upload, output):
    classifier.save(upload / "model.h5")

    result = convert_network(upload, output)

    assert result.format == "keras_h5"
    assert result.parity["passed"]


def test_convert_network_h5_with_lambda_layer_is_refused_before_loading(upload, output):
    models.keras_with_lambda().save(upload / "model.h5")

    error = _fails(upload, output)

    assert error.reason is Reason.UNSAFE_MODEL
    assert "'doubler'" in error.message


def test_convert_network_saved_model_flat_files_as_the_v07_client_sends_them(classifier_saved_model, upload, output):
    models.flat_saved_model_files(classifier_saved_model, upload)

    result = convert_network(upload, output, framework="tensorflow-1.x")

    assert result.format == "saved_model"
    assert result.source["signature"] == "serving_default"
    assert sorted(result.source["files"]) == ["saved_model.pb", "variables.data-00000-of-00001", "variables.index"]
    names = result.name_map
    assert names["serving_default_features:0"] == names["serving_default_features"] == "features"
    assert (
        names["StatefulPartitionedCall:0"] == names["probs/Softmax:0"] == names["classifier/probs/Softmax"] == "probs"
    )
    assert result.source["saved_model"] == "tf2"
    assert result.parity["reference"] == (
        "the SavedModel's serving graph run in a TensorFlow session (as TensorFlow Serving loads it)"
    )


@pytest.mark.parametrize("archive", ["network.zip", "network.tar.gz"])
def test_convert_network_archived_saved_model_converts(classifier_saved_model, upload, output, tmp_path, archive):
    if archive.endswith(".zip"):
        models.zip_directory(classifier_saved_model, upload / archive, prefix="export/1/")
    else:
        models.tar_directory(classifier_saved_model, upload / archive, prefix="export/1/")

    result = convert_network(upload, output)

    assert result.format == "saved_model"
    assert result.source["files"][0] == f"{archive}:export/1/saved_model.pb"
    assert result.parity["passed"]


def test_convert_network_saved_model_intermediate_layer_is_an_extra_output(
    classifier_keras2, classifier_saved_model, output, features
):
    result = convert_network(
        classifier_saved_model,
        output,
        postprocessings=[{"tensors_output": {"tensors": ["probs", "hidden"]}}],
    )

    assert [tensor["name"] for tensor in result.outputs] == ["probs", "hidden"]
    assert result.outputs[1]["shape"] == ["batch", 8]
    assert result.name_map["hidden/Relu:0"] == "hidden"
    hidden = _run(output, {"features": features})["hidden"]
    expected = classifier_keras2.get_layer("hidden")(features).numpy()
    np.testing.assert_allclose(hidden, expected, rtol=1e-5, atol=1e-6)
    assert {output["name"] for output in result.parity["outputs"]} == {"probs", "hidden"}


def test_convert_network_saved_model_output_alias_is_not_duplicated(classifier_saved_model, output):
    result = convert_network(
        classifier_saved_model,
        output,
        postprocessings=[{"tensors_output": {"tensors": ["probs/Softmax:0", "StatefulPartitionedCall:0"]}}],
    )

    assert [tensor["name"] for tensor in result.outputs] == ["probs"]


def test_convert_network_keras_two_inputs_two_outputs_and_a_feature_layer(upload, output):
    model = models.keras_two_in_two_out()
    model.save(upload / "model.keras")
    rng = np.random.default_rng(2)
    image = rng.standard_normal((3, 8, 8, 3)).astype(np.float32)
    meta = rng.standard_normal((3, 5)).astype(np.float32)
    models.save_npz(upload / "test_input.npz", image=image, meta=meta)
    probs, score = (tensor.numpy() for tensor in model([image, meta]))
    models.save_npz(upload / "test_expected_output.npz", probs=probs, score=score)

    result = convert_network(
        upload, output, postprocessings=[{"tensors_output": {"tensors": ["probs", "score", "embedding"]}}]
    )

    assert [tensor["name"] for tensor in result.inputs] == ["image", "meta"]
    assert [tensor["name"] for tensor in result.outputs] == ["probs", "score", "embedding"]
    assert result.expected_output["passed"]
    assert [case["inputs"] for case in result.parity["cases"]] == ["generated", "test_input"]
    assert all(case["passed"] for case in result.parity["cases"])
    onnx_outputs = _run(output, {"image": image, "meta": meta})
    np.testing.assert_allclose(onnx_outputs["score"], score, rtol=1e-5, atol=1e-6)


def test_convert_network_keras_unknown_layer_lists_layers(upload, output):
    models.keras_two_in_two_out().save(upload / "model.keras")

    error = _fails(upload, output, postprocessings=[{"tensors_output": {"tensors": ["embeding"]}}])

    assert error.reason is Reason.UNKNOWN_TENSOR
    assert "'embeding'" in error.message and "'embedding'" in error.message


def test_convert_network_frozen_graph_with_node_name_mapping_neuropod_style(upload, output):
    (upload / "addition.pb").write_bytes(models.frozen_addition_graph())
    models.save_npz(upload / "test_input.npz", x=np.arange(5, dtype=np.float32), y=np.arange(5, dtype=np.float32))
    models.save_npz(upload / "test_expected_output.npz", out=np.arange(5) + np.arange(5))

    result = convert_network(
        upload,
        output,
        input_spec=models.ADDITION_INPUT_SPEC,
        output_spec=models.ADDITION_OUTPUT_SPEC,
        options=ConversionOptions(node_name_mapping=models.ADDITION_MAPPING),
    )

    assert result.signature.to_dict() == {
        "inputs": [
            {"name": "x", "dtype": "float32", "shape": ["num_inputs"]},
            {"name": "y", "dtype": "float32", "shape": ["num_inputs"]},
        ],
        "outputs": [{"name": "out", "dtype": "float32", "shape": ["num_inputs"]}],
    }
    assert result.name_map["some_namespace/in_x:0"] == "x"
    assert result.spec_check == {
        "passed": True,
        "problems": [],
        "symbols": {"num_inputs": 5},
        "input_spec": [
            {"name": "x", "onnx_name": "x", "dtype": "float32", "shape": ["num_inputs"]},
            {"name": "y", "onnx_name": "y", "dtype": "float32", "shape": ["num_inputs"]},
        ],
        "output_spec": [{"name": "out", "onnx_name": "out", "dtype": "float32", "shape": [None]}],
    }
    assert result.expected_output["passed"]
    np.testing.assert_array_equal(
        _run(output, {"x": np.ones(3, np.float32), "y": np.ones(3, np.float32)})["out"], np.full(3, 2.0)
    )


def test_convert_network_frozen_graph_inconsistent_symbols_fail_the_spec(upload, output):
    (upload / "addition.pb").write_bytes(models.frozen_addition_graph())
    models.write_json(upload / "node_name_mapping.json", models.ADDITION_MAPPING)
    models.save_npz(upload / "test_input.npz", x=np.arange(5, dtype=np.float32), y=np.float32(2))

    error = _fails(upload, output, input_spec=models.ADDITION_INPUT_SPEC)

    assert error.reason is Reason.SPEC_MISMATCH
    assert error.message == (
        "The test_input.npz arrays do not match input_spec: "
        "'y' is declared with rank 1 (num_inputs) but carried shape []."
    )


def test_convert_network_tflite_converts_with_signature_names(classifier, upload, output):
    (upload / "model.tflite").write_bytes(models.tflite_bytes(classifier))

    result = convert_network(upload, output)

    assert result.format == "tflite"
    assert [tensor["name"] for tensor in result.inputs] == ["features"]
    assert result.name_map["serving_default_features:0"] == "features"
    assert result.parity["passed"]
    assert result.parity["reference"] == "the TFLite interpreter"


def test_convert_network_tf1_saved_model_fed_after_its_decoding_stage(tmp_path, output):
    # The v0.7 example feeds an internal tensor of a TF 1.x graph; the graph is cut there.
    saved_model = models.tf1_saved_model(tmp_path / "tf1")
    np.save(saved_model / "mean.npy", np.full((1, 1, 3), 0.25, np.float32))
    preprocessing = {
        "inputs": [
            {
                "tensor_name": "prep/scaled:0",
                "image": {"dimension_order": "NHWC", "pixel_scaling": 1.0, "mean_file": "mean.npy"},
            }
        ],
        "batched_output": True,
    }

    result = convert_network(
        saved_model,
        output,
        framework="tensorflow-1.x",
        preprocessing=preprocessing,
        postprocessings=[{"tensors_output": {"tensors": ["probs", "dense/logits:0"]}}],
    )

    assert result.signature.to_dict()["inputs"] == [
        {"name": "prep/scaled:0", "dtype": "float32", "shape": ["batch", 8, 8, 3]}
    ]
    assert [tensor["name"] for tensor in result.outputs] == ["probs", "dense/logits:0"]
    assert result.preprocessing["inputs"][0]["image"]["target_size"] == "8x8"
    assert result.preprocessing["batched_output"] is True
    assert result.parity["passed"]
    assert result.source["saved_model"] == "tf1"
    assert "TensorFlow session" in result.parity["reference"]


def test_convert_network_tf1_saved_model_signature_input_by_default(tmp_path, output):
    result = convert_network(models.tf1_saved_model(tmp_path / "tf1"), output)

    assert result.inputs == [{"name": "raw", "dtype": "uint8", "shape": ["batch", 8, 8, 3]}]
    assert result.parity["passed"]


def test_convert_network_unconvertible_op_names_op_and_opset(tmp_path, output):
    saved_model = models.unsupported_op_saved_model(tmp_path / "lgamma")

    error = _fails(saved_model, output, options=ConversionOptions(opset=16))

    assert error.reason is Reason.UNSUPPORTED_OPS
    assert "cannot convert to ONNX opset 16: Lgamma (1 node:" in error.message
    assert error.details["opset"] == 16
    assert list(error.details["ops"]) == ["Lgamma"]


def test_convert_network_several_signatures_asks_for_one_then_converts_the_one_named(tmp_path, output):
    saved_model = models.two_signature_saved_model(tmp_path / "two")
    features = {"x": np.array([[1.0, -2.0, 3.0]], np.float32)}

    unnamed = _fails(saved_model, output)
    assert unnamed.reason is Reason.CONVERSION_ERROR
    assert "several signatures ('double', 'negate')" in unnamed.message
    assert "conversion_options.signature" in unnamed.message

    unknown = _fails(saved_model, output, options=ConversionOptions(signature="triple"))
    assert unknown.reason is Reason.INVALID_OPTIONS
    assert "'triple' is not a signature" in unknown.message and "'double', 'negate'" in unknown.message

    result = convert_network(saved_model, output, options=ConversionOptions(signature="negate"))
    assert result.source["signature"] == "negate"
    assert result.parity["passed"]
    np.testing.assert_array_equal(_run(output, features)["negated"], -features["x"])

    # tf2onnx's large-model path loads the signature function itself and honours the same choice
    shutil.rmtree(output)
    output.mkdir()
    large = convert_network(saved_model, output, options=ConversionOptions(signature="double", large_model=True))
    assert large.source["signature"] == "double"
    np.testing.assert_array_equal(_run(output, features)["doubled"], 2 * features["x"])


def test_convert_network_corrupt_saved_model_pb(classifier_saved_model, upload, output):
    models.flat_saved_model_files(classifier_saved_model, upload)
    (upload / "saved_model.pb").write_bytes(b"\x00\x01 not a protobuf \xff" * 50)

    error = _fails(upload, output)

    assert error.reason is Reason.CORRUPT_FILE
    assert error.message.startswith("saved_model.pb is not a valid SavedModel protobuf")


def test_convert_network_corrupt_variables_are_reported(classifier_saved_model, upload, output):
    models.flat_saved_model_files(classifier_saved_model, upload)
    (upload / "variables.data-00000-of-00001").write_bytes(b"truncated")

    error = _fails(upload, output)

    assert error.reason in (Reason.CORRUPT_FILE, Reason.MISSING_FILE)
    assert "saved_model.pb" in error.message


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "frozen.pb", "model.tflite"])
def test_convert_network_corrupt_model_file_is_a_corrupt_file(upload, output, name):
    (upload / name).write_bytes(b"\x89HDF\r\n garbage " * 40)

    error = _fails(upload, output)

    assert error.reason is Reason.CORRUPT_FILE
    assert name in error.message


def test_convert_network_test_expected_output_beyond_tolerance_fails_with_numbers(
    classifier_keras2, classifier_saved_model, tmp_path, output, features
):
    upload = tmp_path / "upload"
    shutil.copytree(classifier_saved_model, upload)
    expected = classifier_keras2(features).numpy()
    expected[0, 0] += 0.05
    models.save_npz(upload / "test_input.npz", features=features)
    models.save_npz(upload / "test_expected_output.npz", probs=expected)

    error = _fails(upload, output)

    assert error.reason is Reason.EXPECTED_OUTPUT_MISMATCH
    assert "'probs' max abs diff 0.05 > allowed" in error.message
    assert error.details["expected_output"]["outputs"][0]["passed"] is False


def test_convert_network_parity_beyond_a_strict_tolerance_fails_with_numbers(classifier_saved_model, output):
    # float32 TensorFlow and onnxruntime differ in the last bits; a zero tolerance must catch that.
    error = _fails(
        classifier_saved_model, output, options=ConversionOptions(max_rel_diff=0.0, max_abs_diff=0.0, seed=1)
    )

    assert error.reason is Reason.PARITY_EXCEEDED
    assert "'probs' max abs diff" in error.message and "> allowed 0" in error.message
    failing = error.details["parity"]["outputs"][0]
    assert failing["max_abs"] > 0 and failing["passed"] is False


def test_convert_network_forced_large_model_path_converts_to_external_data(classifier_saved_model, output, features):
    result = convert_network(classifier_saved_model, output, options=ConversionOptions(large_model=True))

    assert result.source["large_model"] is True
    assert result.model_files == ["model.onnx", "model.onnx.data"]
    assert result.parity["passed"]
    assert _run(output, {"features": features})["probs"].shape == (3, 3)


def test_convert_network_same_upload_converts_to_the_same_bytes(classifier_saved_model, tmp_path):
    first = convert_network(classifier_saved_model, tmp_path / "first")
    second = convert_network(classifier_saved_model, tmp_path / "second")

    assert first.model_sha256 == second.model_sha256


def test_tensorflow_libraries_are_frozen_out_of_the_cycle_collector_and_a_conversions_objects_are_not() -> None:
    import gc

    from functions.converter import tensorflow_sources

    # Given a process whose heap is not frozen
    gc.unfreeze()
    tensorflow_sources.libraries_frozen.cache_clear()

    # When the TensorFlow conversions' libraries are loaded
    tensorflow_sources.libraries_frozen()

    # Then TensorFlow's and tf2onnx's objects (hundreds of thousands) are left out of collections
    frozen = gc.get_freeze_count()
    assert frozen > 100_000
    # And what is made afterwards (a conversion's graph) is still collected, and the freeze is done once
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
    tensorflow_sources.libraries_frozen()
    assert gc.get_freeze_count() == frozen
