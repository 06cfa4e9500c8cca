"""TensorFlow formats: load, freeze, convert with tf2onnx, and keep the original as the reference.

One module per format (`keras_model`, `saved_model`, `frozen_graph`, `tflite_model`) over the
shared TensorFlow machinery of `tf_graph`; `common` holds the format-neutral types. Importing this
package does not import TensorFlow: each format's module does, on first use.
"""

from __future__ import annotations

import gc
from functools import cache

from functions.converter.formats import LocatedModel, ModelFormat
from functions.converter.tensorflow_sources.common import Conversion, Reference, Requested, Requests

__all__ = ["Conversion", "Reference", "Requested", "Requests", "convert", "versions"]


def convert(located: LocatedModel, requests: Requests, *, opset: int, large_model: bool) -> Conversion:
    libraries_frozen()
    if located.format in (ModelFormat.KERAS, ModelFormat.KERAS_H5):
        from functions.converter.tensorflow_sources import keras_model

        return keras_model.convert(located, requests, opset=opset, large_model=large_model)
    if located.format is ModelFormat.SAVED_MODEL:
        from functions.converter.tensorflow_sources import saved_model

        return saved_model.convert(located, requests, opset=opset, large_model=large_model)
    if located.format is ModelFormat.FROZEN_GRAPH:
        from functions.converter.tensorflow_sources import frozen_graph

        return frozen_graph.convert(located, requests, opset=opset, large_model=large_model)
    if located.format is ModelFormat.TFLITE:
        from functions.converter.tensorflow_sources import tflite_model

        return tflite_model.convert(located, requests, opset=opset, large_model=large_model)
    raise ValueError(f"{located.format} is not a TensorFlow format")


@cache
def libraries_frozen() -> None:
    """Import TensorFlow and tf2onnx once, then freeze what the process holds out of the cycle collector.

    Their modules leave about 320,000 objects that live as long as the process, and every collection walked
    them all: the converter's own before each tf2onnx pass on a large graph and those tf2onnx's graph copies
    set off. A conversion's objects come after the freeze and are collected as before (the memory of
    `tf_graph.collecting_optimizers` holds); InceptionV3 converted in 36 s, 17 s with the freeze.
    """
    import tensorflow  # noqa: F401
    import tf2onnx  # noqa: F401

    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()


def versions() -> dict[str, str]:
    from functions.converter.tensorflow_sources import tf_graph

    return tf_graph.versions()
