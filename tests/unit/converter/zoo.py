"""The conversion zoo: `keras.applications` architectures saved in every format users upload.

Each architecture is built with weights=None and a small input, its BatchNorm statistics set from
data (an untrained network's activations are degenerate), then saved by the library that writes
the format: Keras 3 (`keras`) for `.keras`, `.h5`, `model.export()` and `tf.saved_model.save`,
Keras 2 (`tf_keras`) for its `.keras`, `.h5` and SavedModel, TensorFlow for TFLite and frozen
graphs, Keras 3's ONNX export for ONNX. Used by tests/unit/converter/test_converter_zoo.py and
bench/zoo.py (the full matrix).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = 10  # weights=None allows any head; a small one keeps VGG's dense layers small


@dataclass(frozen=True)
class Architecture:
    constructor: str  # the name in keras.applications (and tf_keras.applications)
    size: int  # input height and width: the smallest each architecture accepts, or near it
    options: dict[str, Any] = field(default_factory=dict)


# One per family of keras.applications, the smallest variant; bench/zoo.py --every takes them all.
FAMILIES: dict[str, Architecture] = {
    "ConvNeXtTiny": Architecture("ConvNeXtTiny", 32),
    "DenseNet121": Architecture("DenseNet121", 32),
    "EfficientNetB0": Architecture("EfficientNetB0", 32),
    "EfficientNetV2B0": Architecture("EfficientNetV2B0", 32),
    "InceptionResNetV2": Architecture("InceptionResNetV2", 75),
    "InceptionV3": Architecture("InceptionV3", 75),
    "MobileNet": Architecture("MobileNet", 32, {"alpha": 0.25}),
    "MobileNetV2": Architecture("MobileNetV2", 32, {"alpha": 0.35}),
    "MobileNetV3Small": Architecture("MobileNetV3Small", 32),
    "NASNetMobile": Architecture("NASNetMobile", 32),
    "ResNet50": Architecture("ResNet50", 32),
    "ResNet50V2": Architecture("ResNet50V2", 32),
    "VGG16": Architecture("VGG16", 32),
    "Xception": Architecture("Xception", 71),
}

_SIZES = {"InceptionResNetV2": 75, "InceptionV3": 75, "Xception": 71, "NASNetLarge": 32}


def every_architecture() -> dict[str, Architecture]:
    """Every constructor keras.applications has, at its small input size."""
    import keras

    names = sorted(name for name in dir(keras.applications) if name[:1].isupper())
    return {name: FAMILIES.get(name, Architecture(name, _SIZES.get(name, 32))) for name in names}


# format → (file or directory name in the upload, the Keras that writes it)
FORMATS: dict[str, tuple[str, int]] = {
    "keras3.keras": ("model.keras", 3),
    "keras3.h5": ("model.h5", 3),
    "keras3.export": ("saved_model", 3),
    "keras3.tf_saved_model": ("saved_model", 3),
    "keras2.keras": ("model.keras", 2),
    "keras2.h5": ("model.h5", 2),
    "keras2.saved_model": ("saved_model", 2),
    "tflite": ("model.tflite", 3),
    "frozen_graph": ("frozen_graph.pb", 3),
    "onnx": ("model.onnx", 3),
}


def keras_api(major: int) -> Any:
    import tensorflow  # noqa: F401 - tf_keras needs TensorFlow imported first

    if major == 3:
        import keras

        return keras
    import tf_keras

    return tf_keras


def build(architecture: Architecture, major: int = 3) -> Any:
    """The architecture, untrained, with BatchNorm statistics of standard-normal inputs (as parity feeds)."""
    keras = keras_api(major)
    keras.utils.set_random_seed(3)
    constructor = getattr(keras.applications, architecture.constructor)
    model = constructor(
        weights=None,
        input_shape=(architecture.size, architecture.size, 3),
        classes=CLASSES,
        **architecture.options,
    )
    # 64 samples: at these input sizes the last stages are 1×1, so each BatchNorm statistic comes
    # from one value per sample; with 16, ResNet50's float32 noise reached 1.9e-4 of its output scale.
    images = np.random.default_rng(5).standard_normal((64, architecture.size, architecture.size, 3))
    calibrate_batch_norm(model, images.astype(np.float32), keras)
    return model


def _layers(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_layers(layer))
    return found


def calibrate_batch_norm(model: Any, images: np.ndarray, keras: Any) -> None:
    """Store each BatchNorm layer's statistics of `images`' activations (momentum 0, training pass)."""
    layers = [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def _frozen_graph(model: Any, path: Path) -> None:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="image")
    function = tf.function(lambda image: model(image, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(function)
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())


def save(model_format: str, architecture: Architecture, upload: Path, model: Any | None = None) -> Any:
    """Build (unless given) and save the architecture in `model_format` into `upload`; the Keras model."""
    import tensorflow as tf

    name, major = FORMATS[model_format]
    model = model if model is not None else build(architecture, major)
    target = upload / name
    savers: dict[str, Callable[[], None]] = {
        "keras3.keras": lambda: model.save(target),
        "keras3.h5": lambda: model.save(target),
        "keras3.export": lambda: model.export(str(target), verbose=False),
        "keras3.tf_saved_model": lambda: tf.saved_model.save(model, str(target)),
        "keras2.keras": lambda: model.save(target),
        "keras2.h5": lambda: model.save(target),
        "keras2.saved_model": lambda: model.save(str(target), save_format="tf"),
        "tflite": lambda: _tflite(model, target),
        "frozen_graph": lambda: _frozen_graph(model, target),
        "onnx": lambda: _onnx(model, target),
    }
    savers[model_format]()
    return model


def _tflite(model: Any, target: Path) -> None:
    import tensorflow as tf

    exported = target.parent / "tflite_export"
    model.export(str(exported), verbose=False)
    target.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(exported)).convert())
    shutil.rmtree(exported)


def _onnx(model: Any, target: Path) -> None:
    """Keras 3's own ONNX export, with the Keras outputs as test data so the converter checks parity."""
    model.export(str(target), format="onnx", verbose=False)
    import onnx

    exported = onnx.load(str(target), load_external_data=False)
    inputs = np.random.default_rng(9).standard_normal((2, *model.inputs[0].shape[1:])).astype(np.float32)
    expected = np.asarray(model(inputs, training=False))
    np.savez(target.parent / "test_input.npz", **{exported.graph.input[0].name: inputs})
    np.savez(target.parent / "test_expected_output.npz", **{exported.graph.output[0].name: expected})
