"""Caffe networks: prototxt + caffemodel written from numpy weights, converted to ONNX with parity."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import onnxruntime
import pytest

from functions.converter.caffe_sources import SUPPORTED_TYPES
from functions.converter.convert import ConversionFailed, Reason, convert_network
from tests.unit.converter import caffe_zoo

SEED_PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "data",
            "image": {
                "dimension_order": "NCHW",
                "target_size": "224x224",
                "resize_type": "SQUASH",
                "mean_file": "mean_file_1.binaryproto",
                "color_channels": "BGR",
                "pixel_scaling": 255.0,
                "data_type": "FLOAT32",
            },
        }
    ],
    "batched_output": True,
}


def _imagenet_like_mean() -> np.ndarray:
    """A 3×256×256 mean as ImageNet's, larger than the 224×224 input, as in the seed's example."""
    rows = np.linspace(0, 1, 256, dtype=np.float32)
    base = np.array([104.0, 117.0, 123.0], np.float32)[:, None, None]
    return base + 10 * rows[None, :, None] - 5 * rows[None, None, :]


@pytest.fixture(scope="module")
def googlenet_upload(tmp_path_factory):
    directory = caffe_zoo.googlenet_shaped().write(tmp_path_factory.mktemp("googlenet") / "upload")
    (directory / "mean_file_1.binaryproto").write_bytes(caffe_zoo.mean_binaryproto(_imagenet_like_mean()))
    return directory


def test_convert_network_caffe_googlenet_with_the_seeds_preprocessing_converts_with_parity(googlenet_upload, output):
    # Given the seed's files and preprocessing, with features asked from an inception block and the stem
    post = [{"tensors_output": {"tensors": ["prob", "inception_3a/output", "conv1/7x7_s2"]}}]

    result = convert_network(
        googlenet_upload, output, framework="nv-caffe-0.x-mod", preprocessing=SEED_PREPROCESSING, postprocessings=post
    )

    assert result.format == "caffe"
    assert result.parity["checked"] and result.parity["passed"]
    worst = {item["name"]: item for item in result.parity["outputs"]}
    assert set(worst) == {"prob", "inception_3a/output", "conv1/7x7_s2"}
    assert all(item["max_abs"] < 1e-3 * max(item["scale"], 1e-6) for item in worst.values())
    assert result.inputs == [{"name": "data", "dtype": "float32", "shape": ["batch", 3, 224, 224]}]
    # Caffe's ceil rounding: 112 → 56 at pool1 (floor would give 55), 7×7 before the classifier.
    shapes = {tensor["name"]: tensor["shape"] for tensor in result.outputs}
    assert shapes["inception_3a/output"] == ["batch", 40, 28, 28]
    assert shapes["conv1/7x7_s2"] == ["batch", 16, 112, 112]
    assert result.declared_files == ["mean_file_1.binaryproto"]
    assert result.versions["caffe_translation"] == "tensorgate"
    json.dumps(result.to_dict())


@pytest.mark.parametrize("architecture", ["alexnet_shaped", "resnet_shaped", "every_layer", "rectangular"])
def test_convert_network_caffe_architecture_converts_with_parity(architecture, upload, output):
    getattr(caffe_zoo, architecture)().write(upload)

    result = convert_network(upload, output, framework="caffe")

    assert result.parity["passed"], result.parity
    assert result.parity["reference"].startswith("numpy implementation of Caffe's layers")
    for item in result.parity["outputs"]:
        assert item["max_abs"] <= 1e-4 * item["scale"]


def _pooling_net(method: str, size: int, kernel: int, stride: int, pad: int) -> caffe_zoo.CaffeNet:
    net = caffe_zoo.CaffeNet("pool")
    if method.startswith("MAX_"):  # floor rounding, in BVLC's and in some forks' spelling: no partial window
        rounding = {"MAX_FLOOR": "round_mode: FLOOR", "MAX_CEIL_MODE_FALSE": "ceil_mode: false"}[method]
        param = f"pooling_param {{ pool: MAX kernel_size: {kernel} stride: {stride} pad: {pad} {rounding} }}"
        net.layer("pooled", "Pooling", [net.input("data", (1, 1, size, size))], "pooled", param)
        return net
    net.pool("pooled", net.input("data", (1, 1, size, size)), method, kernel, stride, pad)
    return net


@pytest.mark.parametrize(
    ("method", "size", "pad", "expected"),
    [
        # 5×5, 3×3 windows, stride 2, pad 1: 3×3 outputs; every average divides by 9, the padding counted
        # (4 real values in a corner window), as Caffe's PoolingLayer does.
        ("AVE", 5, 1, [[12 / 9, 27 / 9, 24 / 9], [63 / 9, 108 / 9, 81 / 9], [72 / 9, 117 / 9, 84 / 9]]),
        # 6×6, no padding: ceil rounding adds a last window of 2 columns, averaged over the 2×3 it covers.
        ("AVE", 6, 0, [[7, 9, 10.5], [19, 21, 22.5], [28, 30, 31.5]]),
        ("MAX", 6, 0, [[14, 16, 17], [26, 28, 29], [32, 34, 35]]),
        ("MAX_FLOOR", 6, 0, [[14, 16], [26, 28]]),
        ("MAX_CEIL_MODE_FALSE", 6, 0, [[14, 16], [26, 28]]),
    ],
)
def test_convert_network_caffe_pooling_follows_caffes_windows(method, size, pad, expected, upload, output):
    _pooling_net(method, size, 3, 2, pad).write(upload)
    x = np.arange(size * size, dtype=np.float32).reshape(1, 1, size, size)

    convert_network(upload, output, framework="caffe")
    session = onnxruntime.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])

    np.testing.assert_allclose(session.run(None, {"data": x})[0][0, 0], np.array(expected), rtol=1e-6)


def test_convert_network_caffe_unsupported_layer_is_refused_naming_it_and_the_supported_types(upload, output):
    net = caffe_zoo.alexnet_shaped()
    net.layer("loss", "SoftmaxWithLoss", ["fc8", "label"], "loss")
    net.write(upload)

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="nv-caffe-0.x-mod")

    assert caught.value.reason is Reason.UNSUPPORTED_OPS
    assert "layer 'loss' (type 'SoftmaxWithLoss') is not supported" in caught.value.message
    assert all(kind in caught.value.message for kind in SUPPORTED_TYPES)


@pytest.mark.parametrize(
    ("layer", "fragment"),
    [
        ('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 }', "STOCHASTIC"),
        ('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 pad: 2 }', "smaller padding"),
        ('type: "LRN" lrn_param { local_size: 4 }', "odd size"),
        ('type: "Softmax" softmax_param { axis: 4 }', "axis 4"),
    ],
    ids=["stochastic_pooling", "pad_not_below_kernel", "lrn_even_size", "softmax_axis_outside"],
)
def test_convert_network_caffe_layer_caffe_would_refuse_is_refused_naming_it(layer, fragment, upload, output):
    net = caffe_zoo.CaffeNet("bad")
    net.input("data", (1, 3, 8, 8))
    net.text.append(f'layer {{ name: "odd" {layer} bottom: "data" top: "odd" }}\n')
    net.write(upload)

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="caffe")

    assert "layer 'odd'" in caught.value.message and fragment in caught.value.message


def test_convert_network_caffe_train_phase_layers_are_left_out(upload, output):
    net = caffe_zoo.alexnet_shaped()
    net.text.append(
        'layer { name: "acc" type: "Accuracy" bottom: "prob" bottom: "label" top: "acc" include { phase: TRAIN } }\n'
    )
    net.write(upload)

    assert convert_network(upload, output, framework="caffe").parity["passed"]


def test_convert_network_caffe_v1_weights_are_read_by_layer_name(upload, output):
    net = caffe_zoo.resnet_shaped()
    net.write(upload)
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel(net.weights, v1=True))

    assert convert_network(upload, output, framework="caffe").parity["passed"]


def test_convert_network_caffe_nvcaffe_half_precision_weights_convert_as_opencv_reads_them(upload, output):
    # NVCaffe saves FLOAT16 weights as raw_data; OpenCV's Caffe reader reads them too.
    import cv2

    net = caffe_zoo.googlenet_shaped(size=96)
    net.write(upload)
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel(net.weights, float16=True))
    x = np.random.default_rng(4).normal(0, 1, (1, 3, 96, 96)).astype(np.float32)
    reader = cv2.dnn.readNetFromCaffe(str(upload / "deploy.prototxt"), str(upload / "snapshot.caffemodel"))
    reader.setInput(x)
    np.savez(upload / "test_input.npz", data=x)
    np.savez(upload / "test_expected_output.npz", **{"loss3/classifier": reader.forward("loss3/classifier")})

    result = convert_network(upload, output, framework="nv-caffe-0.x-mod")

    assert result.parity["passed"] and result.expected_output["passed"], result.expected_output


def test_convert_network_caffe_weights_of_another_network_are_refused_naming_the_layer(upload, output):
    caffe_zoo.alexnet_shaped().write(upload)
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel(caffe_zoo.alexnet_shaped(size=99).weights))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="caffe")

    assert "'fc6'" in caught.value.message and "trained with this prototxt" in caught.value.message


def test_convert_network_caffe_prototxt_without_caffemodel_is_refused(upload, output):
    (upload / "deploy.prototxt").write_text(caffe_zoo.alexnet_shaped().prototxt())

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="nv-caffe-0.x-mod")

    assert caught.value.reason is Reason.MISSING_FILE
    assert ".caffemodel" in caught.value.message


def test_convert_network_caffe_unknown_output_blob_lists_the_blobs(upload, output):
    caffe_zoo.alexnet_shaped().write(upload)

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="caffe", postprocessings=[{"tensors_output": {"tensors": ["fc9"]}}])

    assert caught.value.reason is Reason.UNKNOWN_TENSOR
    assert "'fc8'" in caught.value.message


@pytest.mark.parametrize(
    "architecture", ["googlenet_shaped", "alexnet_shaped", "resnet_shaped", "every_layer", "rectangular"]
)
def test_caffe_reference_agrees_with_opencvs_caffe_reader_layer_by_layer(architecture, tmp_path):
    # OpenCV's dnn module has its own Caffe importer: the files the tests write are real Caffe files, and
    # the numpy reference the converter is judged by computes what another Caffe reader computes.
    import cv2

    from functions.converter.caffe_sources import network, reference

    getattr(caffe_zoo, architecture)().write(tmp_path)
    caffe = network.load(tmp_path / "deploy.prototxt", tmp_path / "snapshot.caffemodel", "deploy", "weights")
    [shape] = caffe.inputs.values()
    x = np.random.default_rng(0).normal(0, 1, (1, *shape[1:])).astype(np.float32)
    ours = reference.forward(caffe, {"data": x})
    reader = cv2.dnn.readNetFromCaffe(str(tmp_path / "deploy.prototxt"), str(tmp_path / "snapshot.caffemodel"))
    reader.setInput(x)

    theirs = reader.forward([layer.name for layer in caffe.layers])

    for layer, expected in zip(caffe.layers, theirs, strict=True):
        computed = ours[layer.tops[0]]
        scale = float(np.abs(computed).max())
        difference = float(np.abs(expected.reshape(computed.shape) - computed).max())
        assert difference <= 1e-5 * scale + 1e-7, f"{layer.name} ({layer.type}): {difference} of {scale}"


def test_convert_network_caffe_files_in_an_archive_convert_with_their_mean(tmp_path, upload, output):
    # The presigned path for weights over the direct-upload limit: one zip of the seed's three files.
    import zipfile

    files = caffe_zoo.alexnet_shaped(size=99).write(tmp_path / "files")
    mean = np.full((3, 99, 99), 110.0, np.float32)
    with zipfile.ZipFile(upload / "model.zip", "w") as archive:
        for path in files.iterdir():
            archive.write(path, path.name)
        archive.writestr("mean.binaryproto", caffe_zoo.mean_binaryproto(mean))
    image = {"dimension_order": "NCHW", "color_channels": "BGR", "mean_file": "mean.binaryproto"}

    result = convert_network(
        upload, output, framework="caffe", preprocessing={"inputs": [{"tensor_name": "data", "image": image}]}
    )

    assert result.parity["passed"]
    assert result.source["files"] == ["model.zip:deploy.prototxt", "model.zip:snapshot.caffemodel"]
    assert result.preprocessing["inputs"][0]["image"]["target_size"] == "99x99"
    assert (output / "files" / "mean.binaryproto").exists()


def test_convert_network_caffe_test_expected_output_from_another_caffe_reader_is_met(upload, output):
    # Neuropod-style test data: the expected scores computed by OpenCV's Caffe reader from the same files.
    import cv2

    caffe_zoo.alexnet_shaped().write(upload)
    x = np.random.default_rng(2).normal(0, 1, (3, 3, 67, 67)).astype(np.float32)
    reader = cv2.dnn.readNetFromCaffe(str(upload / "deploy.prototxt"), str(upload / "snapshot.caffemodel"))
    reader.setInput(x)
    np.savez(upload / "test_input.npz", data=x)
    np.savez(upload / "test_expected_output.npz", fc8=reader.forward("fc8"))

    result = convert_network(
        upload, output, framework="caffe", postprocessings=[{"tensors_output": {"tensors": ["fc8"]}}]
    )

    assert result.expected_output["passed"], result.expected_output
    assert [item["name"] for item in result.expected_output["outputs"]] == ["fc8"]
    assert {case["inputs"] for case in result.parity["cases"]} == {"generated", "test_input"}


@pytest.mark.parametrize(
    ("architecture", "scores"), [("googlenet_shaped", "loss3/classifier"), ("alexnet_shaped", "fc8")]
)
def test_convert_network_caffe_v1_prototxt_converts_as_caffe_upgrades_it(
    architecture, scores, upload, output, tmp_path
):
    # Caffe's format before 2015 (`layers { type: CONVOLUTION }`, `input_dim`), with the .caffemodel of that
    # time; OpenCV's Caffe reader, which upgrades V1 files as Caffe does, computes the expected scores.
    import cv2

    net = getattr(caffe_zoo, architecture)(size=96)
    (tmp_path / "deploy.prototxt").write_text(net.v1_prototxt())  # OpenCV's copy: it reads no phase rules
    net.text.append(
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "prob" bottom: "label" top: "loss" '
        "include { phase: TRAIN } }\n"
    )
    (upload / "deploy.prototxt").write_text(net.v1_prototxt())
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel(net.weights, v1=True))
    x = np.random.default_rng(5).normal(0, 1, (2, 3, 96, 96)).astype(np.float32)
    reader = cv2.dnn.readNetFromCaffe(str(tmp_path / "deploy.prototxt"), str(upload / "snapshot.caffemodel"))
    reader.setInput(x)
    np.savez(upload / "test_input.npz", data=x)
    np.savez(upload / "test_expected_output.npz", **{scores: reader.forward(scores)})

    result = convert_network(
        upload, output, framework="nv-caffe-0.x-mod", postprocessings=[{"tensors_output": {"tensors": [scores]}}]
    )

    assert result.parity["passed"] and result.expected_output["passed"], result.expected_output
    # Every layer upgraded to the type the current format names it by, but the input and the training loss.
    current = Counter(re.findall(r'name: "[^"]+"\s+type: "(\w+)"', net.prototxt()))
    del current["Input"], current["SoftmaxWithLoss"]
    assert result.source["caffe"]["layer_types"] == dict(current)
    assert result.inputs == [{"name": "data", "dtype": "float32", "shape": ["batch", 3, 96, 96]}]


@pytest.mark.parametrize(
    ("prototxt", "reason", "fragment"),
    [
        (
            'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
            'layers { name: "acc" type: ACCURACY bottom: "data" top: "acc" }\n',
            Reason.UNSUPPORTED_OPS,
            "layer 'acc' (type 'Accuracy') is not supported",
        ),
        (
            'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
            'layers { name: "relu" type: RELU bottom: "data" top: "data" }\n'
            'layer { name: "prob" type: "Softmax" bottom: "data" top: "prob" }\n',
            Reason.CORRUPT_FILE,
            "mixes Caffe's two layer formats",
        ),
        (
            'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
            'layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 } bottom: "data" top: "conv1" }\n',
            Reason.UNSUPPORTED_FORMAT,
            "upgrade it with Caffe's upgrade_net_proto_text tool",
        ),
        (
            'input: "data"\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
            'layer { name: "prob" type: "Softmax" bottom: "data" top: "prob" }\n',
            Reason.CORRUPT_FILE,
            "1 input(s) ('data') with 3 input_dim values; Caffe reads four per input",
        ),
        (
            'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }\n'
            'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: MEDIAN } }\n',
            Reason.CORRUPT_FILE,
            "has no value named MEDIAN.",
        ),
    ],
    ids=["v1_unsupported_type", "v1_and_current_layers", "v0_layers", "input_dim_not_four", "unknown_enum_value"],
)
def test_convert_network_caffe_old_or_malformed_prototxt_is_refused_with_a_sentence(
    prototxt, reason, fragment, upload, output
):
    (upload / "deploy.prototxt").write_text(prototxt)
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel([]))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="caffe")

    assert caught.value.reason is reason
    assert fragment in caught.value.message and ".." not in caught.value.message


@pytest.mark.parametrize("form", ["input_dim", "input_shape"])
def test_convert_network_caffe_inputs_declared_by_the_nets_own_fields_convert(form, upload, output):
    # deploy.prototxt files before the Input layer (2015) declare inputs as fields of the net itself.
    net = caffe_zoo.alexnet_shaped()
    net.write(upload)
    declared = {
        "input_dim": 'input: "data"\ninput_dim: 10\ninput_dim: 3\ninput_dim: 67\ninput_dim: 67\n',
        "input_shape": 'input: "data"\ninput_shape { dim: 10 dim: 3 dim: 67 dim: 67 }\n',
    }[form]
    text = "".join(layer for layer in net.text if 'type: "Input"' not in layer)
    (upload / "deploy.prototxt").write_text(f'name: "AlexNet"\n{declared}{text}')

    result = convert_network(upload, output, framework="caffe")

    assert result.parity["passed"]
    assert result.inputs == [{"name": "data", "dtype": "float32", "shape": ["batch", 3, 67, 67]}]
    assert "'data' with batch 10" in " ".join(result.notes)


def test_convert_network_caffe_weights_under_other_layer_names_are_refused_listing_them(upload, output):
    net = caffe_zoo.alexnet_shaped()
    net.write(upload)
    renamed = [(f"{name}_ft", kind, blobs) for name, kind, blobs in net.weights]
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel(renamed))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="caffe")

    assert caught.value.reason is Reason.MISSING_FILE
    assert "holds no weights for the layer 'conv1' (Convolution)" in caught.value.message
    assert "'conv1_ft', 'conv2_ft'" in caught.value.message
    assert "Caffe finds weights by layer name" in caught.value.message
    assert caught.value.details["unmatched"][:2] == ["conv1_ft", "conv2_ft"]


def test_convert_network_caffe_weights_missing_for_a_layer_ask_whether_they_are_the_nets(upload, output):
    net = caffe_zoo.alexnet_shaped()
    net.write(upload)
    (upload / "snapshot.caffemodel").write_bytes(caffe_zoo.caffemodel(net.weights[1:]))

    with pytest.raises(ConversionFailed) as caught:
        convert_network(upload, output, framework="caffe")

    assert caught.value.message == (
        "snapshot.caffemodel holds no weights for the layer 'conv1' (Convolution); "
        "is it the .caffemodel trained with this prototxt?"
    )
