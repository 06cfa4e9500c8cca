"""TFLite's fused GELU for tf2onnx, which has no conversion for it (tf2onnx 1.17.0).

The TFLite converter fuses Keras 3's `gelu` into one `GELU` operator (ConvNeXt has 18). Registered
through tf2onnx's own handler registry, it is rewritten in the TFLite-to-TensorFlow pass into the
ops it stands for, which tf2onnx then converts as usual: exact `0.5·x·(1 + erf(x/√2))`, or with
`approximate`, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from tf2onnx import utils
from tf2onnx.handler import tfl_op


@tfl_op(["TFL_GELU"])
class TflGelu:
    @classmethod
    def to_tf(cls, ctx: Any, node: Any, **kwargs: Any) -> None:
        x = node.input[0]
        dtype = ctx.get_dtype(x)
        shape = ctx.get_shape(x)
        numpy_type = utils.map_onnx_to_numpy_type(dtype)

        def constant(name: str, value: float) -> str:
            return str(ctx.make_const(utils.make_name(f"{node.name}_{name}"), np.array(value, numpy_type)).output[0])

        def op(op_type: str, inputs: list[str]) -> str:
            made = ctx.make_node(op_type, inputs, shapes=[shape], dtypes=[dtype])
            return str(made.output[0])

        if node.get_attr_value("approximate", 0):
            cube = op("Mul", [op("Mul", [x, x]), x])
            inner = op("Add", [x, op("Mul", [cube, constant("coefficient", 0.044715)])])
            bend = op("Tanh", [op("Mul", [inner, constant("scale", math.sqrt(2.0 / math.pi))])])
        else:
            bend = op("Erf", [op("Mul", [x, constant("inverse_sqrt2", 1.0 / math.sqrt(2.0))])])
        factor = op("Add", [bend, constant("one", 1.0)])
        half = op("Mul", [x, constant("half", 0.5)])
        outputs = list(node.output)
        name = node.name
        ctx.remove_node(name)
        ctx.make_node("Mul", [half, factor], outputs=outputs, name=name, shapes=[shape], dtypes=[dtype])
