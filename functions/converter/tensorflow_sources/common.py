"""The format-neutral types every source produces: plain data, no TensorFlow.

`declarations.py` and `convert.py` use these without importing TensorFlow; each format's module
(keras_model, saved_model, frozen_graph, tflite_model) fills them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from functions.converter.signature import NameMap

if TYPE_CHECKING:
    import numpy as np
    from onnx import ModelProto


@dataclass(frozen=True)
class Requested:
    """A tensor name the network's declarations rely on, and where it was declared."""

    name: str
    where: str


@dataclass
class Requests:
    """What the declarations ask of the graph: inputs to feed (maybe cut points), outputs to expose."""

    inputs: list[Requested] = field(default_factory=list)
    outputs: list[Requested] = field(default_factory=list)
    node_name_mapping: dict[str, str] = field(default_factory=dict)
    input_hints: set[str] = field(default_factory=set)  # names known to be inputs (input_spec, test_input)
    signature: str | None = None  # conversion_options.signature: the SavedModel or TFLite signature to convert
    # input_spec entries as dicts (name, dtype, shape): PyTorch files carry no input signature of their own.
    input_spec: list[dict[str, Any]] = field(default_factory=list)


class Reference:
    """Runs the original model: feeds and results keyed by ONNX names."""

    description = ""

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        raise NotImplementedError


@dataclass
class Conversion:
    model: ModelProto
    names: NameMap
    reference: Reference | None
    source: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # ONNX inputs/outputs TensorFlow knew nothing about: tf2onnx declares them as scalars, and
    # ONNX cannot declare an unknown rank, so the signature says `null` until a spec tells.
    unknown_rank: set[str] = field(default_factory=set)
