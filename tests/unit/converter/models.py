"""Builders of tiny test models, in every format the converter accepts (no downloads)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tf():
    import tensorflow

    return tensorflow


def keras3():
    """Keras 3, what `pip install tensorflow` gives since TensorFlow 2.16."""
    tf()
    import keras

    return keras


def keras2():
    """Keras 2 (tf_keras), what TensorFlow 2.15 and earlier saved with."""
    tf()
    import tf_keras

    return tf_keras


def _seeded(keras) -> None:
    keras.utils.set_random_seed(7)


def keras_classifier(keras=None):
    """features (None, 4) → hidden (relu, 8) → probs (softmax, 3)."""
    keras = keras or keras3()
    _seeded(keras)
    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(features)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(hidden)
    return keras.Model(features, probs, name="classifier")


def keras_two_in_two_out(keras=None):
    """image (None, 8, 8, 3) and meta (None, 5) → probs (None, 4) and score (None, 1)."""
    keras = keras or keras3()
    _seeded(keras)
    image = keras.Input((8, 8, 3), name="image")
    meta = keras.Input((5,), name="meta")
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(image)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(conv)
    joined = keras.layers.Concatenate(name="joined")([pooled, meta])
    embedding = keras.layers.Dense(6, activation="tanh", name="embedding")(joined)
    probs = keras.layers.Dense(4, activation="softmax", name="probs")(embedding)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(embedding)
    return keras.Model([image, meta], [probs, score], name="two_by_two")


def keras_image_classifier(size: int = 16, keras=None):
    """image (None, size, size, 3) NHWC → conv → global pool → probs (softmax, 5)."""
    keras = keras or keras3()
    _seeded(keras)
    image = keras.Input((size, size, 3), name="image")
    conv = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="conv")(image)
    normalized = keras.layers.BatchNormalization(name="bn")(conv)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(normalized)
    probs = keras.layers.Dense(5, activation="softmax", name="probs")(pooled)
    return keras.Model(image, probs, name="image_classifier")


def keras_with_lambda(keras=None):
    keras = keras or keras3()
    features = keras.Input((4,), name="features")
    doubled = keras.layers.Lambda(lambda x: x * 2, name="doubler")(features)
    return keras.Model(features, keras.layers.Dense(2, name="out")(doubled))


def save_saved_model(model, directory: Path) -> Path:
    """The serving SavedModel each Keras writes: `model.export()` (Keras 3), `tf.saved_model.save` (Keras 2).

    Keras 3's `tf.saved_model.save` would name the signature's input `inputs`, not the Input layer.
    """
    if type(model).__module__.startswith("keras."):
        model.export(str(directory), verbose=False)
    else:
        tf().saved_model.save(model, str(directory))
    return directory


def flat_saved_model_files(saved_model_dir: Path, destination: Path) -> Path:
    """The v0.7 client's upload: saved_model.pb and the variables files side by side."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(saved_model_dir / "saved_model.pb", destination / "saved_model.pb")
    for item in (saved_model_dir / "variables").iterdir():
        shutil.copy(item, destination / item.name)
    return destination


def zip_directory(directory: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for item in sorted(directory.rglob("*")):
            if item.is_file():
                bundle.write(item, prefix + item.relative_to(directory).as_posix())
    return archive


def tar_directory(directory: Path, archive: Path, prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as bundle:
        for item in sorted(directory.rglob("*")):
            if item.is_file():
                bundle.add(item, prefix + item.relative_to(directory).as_posix())
    return archive


def tflite_bytes(model) -> bytes:
    converter = tf().lite.TFLiteConverter.from_keras_model(model)
    return converter.convert()


def frozen_addition_graph() -> bytes:
    """The Neuropod tutorial's addition model, as a frozen GraphDef."""
    tensorflow = tf()
    graph = tensorflow.Graph()
    with graph.as_default(), tensorflow.name_scope("some_namespace"):
        x = tensorflow.compat.v1.placeholder(tensorflow.float32, name="in_x")
        y = tensorflow.compat.v1.placeholder(tensorflow.float32, name="in_y")
        tensorflow.add(x, y, name="out")
    return graph.as_graph_def().SerializeToString()


ADDITION_MAPPING = {"x": "some_namespace/in_x:0", "y": "some_namespace/in_y:0", "out": "some_namespace/out:0"}
ADDITION_INPUT_SPEC = [
    {"name": "x", "dtype": "float32", "shape": ["num_inputs"]},
    {"name": "y", "dtype": "float32", "shape": ["num_inputs"]},
]
ADDITION_OUTPUT_SPEC = [{"name": "out", "dtype": "float32", "shape": [None]}]


def tf1_saved_model(directory: Path) -> Path:
    """A TF 1.x SavedModel shaped like the v0.7 example: raw uint8 pixels, in-graph decoding, variables.

    `raw` (None, 8, 8, 3) uint8 → `prep/scaled` float32 (/255, the cut point a preprocessing may
    feed directly) → flatten → dense (variables) → `dense/logits` → `probs`.
    """
    tensorflow = tf()
    v1 = tensorflow.compat.v1
    rng = np.random.default_rng(5)
    graph = tensorflow.Graph()
    with graph.as_default():
        raw = v1.placeholder(tensorflow.uint8, [None, 8, 8, 3], name="raw")
        scaled = tensorflow.multiply(tensorflow.cast(raw, tensorflow.float32), 1 / 255, name="prep/scaled")
        flat = tensorflow.reshape(scaled, [-1, 8 * 8 * 3], name="flatten")
        kernel = v1.get_variable("dense/kernel", initializer=rng.standard_normal((192, 3)).astype(np.float32) / 8)
        bias = v1.get_variable("dense/bias", initializer=np.array([0.1, -0.2, 0.3], dtype=np.float32))
        logits = tensorflow.add(tensorflow.matmul(flat, kernel), bias, name="dense/logits")
        probs = tensorflow.nn.softmax(logits, name="probs")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(directory))
            signature = v1.saved_model.predict_signature_def(inputs={"raw": raw}, outputs={"probs": probs})
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()
    return directory


def unsupported_op_saved_model(directory: Path) -> Path:
    """A SavedModel using Lgamma, which tf2onnx has no conversion for."""
    tensorflow = tf()

    class Module(tensorflow.Module):
        @tensorflow.function(input_signature=[tensorflow.TensorSpec([None, 3], tensorflow.float32, name="x")])
        def serve(self, x):
            return {"y": tensorflow.math.lgamma(tensorflow.abs(x) + 1.0)}

    module = Module()
    tensorflow.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def two_signature_saved_model(directory: Path) -> Path:
    """A SavedModel with two signatures, `double` and `negate`, and no serving_default."""
    tensorflow = tf()
    spec = tensorflow.TensorSpec([None, 3], tensorflow.float32, name="x")

    class Module(tensorflow.Module):
        @tensorflow.function(input_signature=[spec])
        def double(self, x):
            return {"doubled": x * 2.0}

        @tensorflow.function(input_signature=[spec])
        def negate(self, x):
            return {"negated": -x}

    module = Module()
    tensorflow.saved_model.save(module, str(directory), signatures={"double": module.double, "negate": module.negate})
    return directory


def onnx_classifier() -> onnx.ModelProto:
    """A tiny ONNX model built by hand: x (batch, 4) → MatMul → Relu (hidden) → MatMul → Softmax."""
    rng = np.random.default_rng(3)
    first = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w1")
    second = numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["pre"], name="matmul1"),
        helper.make_node("Relu", ["pre"], ["hidden"], name="relu"),
        helper.make_node("MatMul", ["hidden", "w2"], ["logits"], name="matmul2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        initializer=[first, second],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value))
    return path


def onnx_image_classifier(height: int | None = 8, width: int | None = 8) -> onnx.ModelProto:
    """image (batch, 3, H, W) NCHW → Conv → Relu (features) → global pool → Gemm → Softmax (probs)."""
    rng = np.random.default_rng(4)
    initializers = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) / 3, "conv_w"),
        numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(5, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv_w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["features"], name="relu"),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "image_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, height, width])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 5])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def keras_feature_model(keras=None):
    """image (None, 8, 8, 3) → conv_feat (conv, relu) → pool → probs (softmax, 3): a feature layer to expose."""
    keras = keras or keras3()
    _seeded(keras)
    image = keras.Input((8, 8, 3), name="image")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_feat")(image)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(pooled)
    return keras.Model(image, probs, name="featured")


def keras_grouped_gelu_block():
    """A ConvNeXt-style block in Keras 3: a grouped convolution (run through XLA) and exact GELU (Erfc)."""
    keras = keras3()
    _seeded(keras)
    image = keras.Input((8, 8, 8), name="image")
    grouped = keras.layers.Conv2D(8, 3, padding="same", groups=8, name="grouped_conv")(image)
    expanded = keras.layers.Dense(16, name="expand")(grouped)
    activated = keras.layers.Activation("gelu", name="gelu")(expanded)  # Keras 3's gelu is exact by default
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(activated)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(pooled)
    return keras.Model(image, probs, name="grouped_gelu")


def keras_lgamma_model():
    """A Keras 3 model whose custom layer `log_gamma` uses Lgamma, which tf2onnx cannot convert."""
    keras = keras3()
    tensorflow = tf()

    class LogGamma(keras.layers.Layer):
        def call(self, x):
            return tensorflow.math.lgamma(tensorflow.abs(x) + 1.0)

    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(3, name="hidden")(features)
    return keras.Model(features, LogGamma(name="log_gamma")(hidden), name="gamma")
