"""Files written by Keras 3 (TensorFlow 2.16 and later) and by Keras 2 (tf_keras, TensorFlow 2.15 and
earlier), in every form they save, read by the matching Keras and converted with parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from functions.converter.convert import ConversionFailed, ConversionOptions, Reason, convert_network
from tests.unit.converter import models


def _run(output: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(4).standard_normal((3, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("file_name", ["model.keras", "model.h5"])
def test_convert_network_keras3_file_is_read_by_keras3_with_parity(file_name, upload, output, images):
    model = models.keras_feature_model(models.keras3())
    model.save(upload / file_name)

    result = convert_network(upload, output)

    assert result.source["loader"] == "keras.saving.load_model"
    assert result.source["keras_version"].startswith("3.")
    assert result.parity["passed"]
    assert [tensor["name"] for tensor in result.inputs] == ["image"]
    assert [tensor["name"] for tensor in result.outputs] == ["probs"]
    np.testing.assert_allclose(_run(output, {"image": images})["probs"], model(images).numpy(), atol=1e-6)


@pytest.mark.parametrize("file_name", ["model.keras", "model.h5"])
def test_convert_network_keras2_file_is_read_by_tf_keras_with_parity(file_name, upload, output, images):
    model = models.keras_feature_model(models.keras2())
    model.save(upload / file_name)

    result = convert_network(upload, output)

    assert result.source["loader"] == "tf_keras.models.load_model"
    assert result.source["keras_version"].startswith("2.")
    assert result.parity["passed"]
    np.testing.assert_allclose(_run(output, {"image": images})["probs"], model(images).numpy(), atol=1e-6)


def _keras3_export(model, directory: Path) -> None:
    model.export(str(directory), verbose=False)


def _keras3_tf_saved_model(model, directory: Path) -> None:
    models.tf().saved_model.save(model, str(directory))


def _keras2_model_save(model, directory: Path) -> None:
    model.save(str(directory), save_format="tf")


@pytest.mark.parametrize(
    ("keras_major", "save"),
    [(3, _keras3_export), (3, _keras3_tf_saved_model), (2, _keras2_model_save)],
    ids=["keras3-model.export", "keras3-tf.saved_model.save", "keras2-model.save"],
)
def test_convert_network_saved_model_from_each_keras_converts_with_parity(keras_major, save, tmp_path, output, images):
    model = models.keras_feature_model(models.keras3() if keras_major == 3 else models.keras2())
    save(model, tmp_path / "saved_model")

    result = convert_network(tmp_path / "saved_model", output)

    assert result.format == "saved_model" and result.parity["passed"]
    (input_name,) = [tensor["name"] for tensor in result.inputs]
    (probs,) = _run(output, {input_name: images}).values()
    np.testing.assert_allclose(probs, model(images).numpy(), atol=1e-6)


@pytest.mark.parametrize("requested", ["conv_feat", "conv_feat/Relu", "conv_feat/Relu:0"])
def test_convert_network_keras3_export_layer_name_selects_that_layer_output(requested, tmp_path, output, images):
    model = models.keras_feature_model(models.keras3())
    model.export(str(tmp_path / "saved_model"), verbose=False)

    result = convert_network(
        tmp_path / "saved_model",
        output,
        postprocessings=[{"tensors_output": {"tensors": ["output_0", requested]}}],
    )

    assert [tensor["name"] for tensor in result.outputs] == ["output_0", requested]
    assert result.outputs[1]["shape"] == ["batch", 8, 8, 4]
    assert {item["name"] for item in result.parity["outputs"]} == {"output_0", requested}
    features = models.keras3().Model(model.inputs, model.get_layer("conv_feat").output)(images).numpy()
    np.testing.assert_allclose(_run(output, {"image": images})[requested], features, atol=1e-5)


@pytest.mark.parametrize("form", ["model.export", "model.keras"])
def test_convert_network_keras3_grouped_convolution_and_exact_gelu_convert(form, tmp_path, upload, output):
    model = models.keras_grouped_gelu_block()
    if form == "model.export":
        model.export(str(upload / "saved_model"), verbose=False)
    else:
        model.save(upload / "model.keras")

    result = convert_network(upload, output)

    assert result.parity["passed"]
    ops = [node.op_type for node in onnx.load(str(output / "model.onnx")).graph.node]
    assert "StatefulPartitionedCall" not in ops and "Erfc" not in ops
    assert "Erf" in ops
    grouped = [node for node in onnx.load(str(output / "model.onnx")).graph.node if node.op_type == "Conv"]
    assert any(attribute.name == "group" and attribute.i == 8 for node in grouped for attribute in node.attribute)
    images = np.random.default_rng(2).standard_normal((3, 8, 8, 8)).astype(np.float32)
    (probs,) = _run(output, {result.inputs[0]["name"]: images}).values()
    np.testing.assert_allclose(probs, model(images).numpy(), atol=1e-5)


def test_convert_network_unsupported_op_names_the_keras_layer_and_what_to_change(tmp_path, output):
    models.keras_lgamma_model().export(str(tmp_path / "saved_model"), verbose=False)

    with pytest.raises(ConversionFailed) as caught:
        convert_network(tmp_path / "saved_model", output, options=ConversionOptions(opset=17))

    error = caught.value
    assert error.reason is Reason.UNSUPPORTED_OPS
    assert "Lgamma" in error.message and "layer 'log_gamma'" in error.message
    assert "Replace those operations in the layers named with supported ones" in error.message
    assert error.details["layers"] == {"Lgamma": ["log_gamma"]}


@pytest.mark.parametrize("keras_major", [3, 2])
def test_convert_network_h5_with_a_keras_applications_layer_loads_it(keras_major, upload, output):
    # ConvNeXt's LayerScale: an .h5 names the class without its module; Keras's own layers are offered.
    keras = models.keras3() if keras_major == 3 else models.keras2()
    from importlib import import_module

    layer_scale = import_module(f"{keras.__name__}.src.applications.convnext").LayerScale
    features = keras.Input((4,), name="features")
    scaled = layer_scale(0.5, 4, name="scale")(keras.layers.Dense(4, name="hidden")(features))
    keras.Model(features, scaled).save(upload / "model.h5")

    result = convert_network(upload, output)

    assert result.parity["passed"]


def test_convert_network_keras3_tf_saved_model_input_layer_name_says_what_to_use(tmp_path, output):
    models.tf().saved_model.save(models.keras_feature_model(models.keras3()), str(tmp_path / "saved_model"))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(
            tmp_path / "saved_model", output, preprocessing={"inputs": [{"tensor_name": "image", "image": {}}]}
        )

    assert caught.value.reason is Reason.UNKNOWN_TENSOR
    assert "names its input 'inputs'" in caught.value.message and "model.export()" in caught.value.message


@pytest.mark.parametrize("approximate", [False, True])
def test_convert_network_tflite_fused_gelu_converts_with_parity(approximate, tmp_path, upload, output):
    keras = models.keras3()
    features = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(8, name="hidden")(features)
    activated = keras.layers.Lambda(lambda x: keras.activations.gelu(x, approximate=approximate), name="gelu")(hidden)
    keras.Model(features, keras.layers.Dense(3, name="out")(activated)).export(str(tmp_path / "export"), verbose=False)
    converter = models.tf().lite.TFLiteConverter.from_saved_model(str(tmp_path / "export"))
    (upload / "model.tflite").write_bytes(converter.convert())
    interpreter = models.tf().lite.Interpreter(model_path=str(upload / "model.tflite"))
    assert "GELU" in [op["op_name"] for op in interpreter._get_ops_details()]  # noqa: SLF001 - the fused op is there

    result = convert_network(upload, output)

    assert result.parity["passed"]
    ops = {node.op_type for node in onnx.load(str(output / "model.onnx")).graph.node}
    assert ("Tanh" if approximate else "Erf") in ops
