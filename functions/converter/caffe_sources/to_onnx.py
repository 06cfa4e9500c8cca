"""A `CaffeNet` as ONNX nodes: one small group of standard operators per Caffe layer.

Where Caffe and ONNX define an operator differently, the translation spells out Caffe's
definition: pooling windows are sized by Caffe's rounding (ceil by default, and no window that
starts inside the padding) through explicit end padding, and average pooling divides by the
window clipped to the padded input, as Caffe's `PoolingLayer` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from functions.converter.caffe_sources.network import CaffeNet, Layer, Shape

BATCH_SYMBOL = "batch"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()

    def name(self, wanted: str) -> str:
        candidate, index = wanted, 1
        while candidate in self._names:
            index += 1
            candidate = f"{wanted}_{index}"
        self._names.add(candidate)
        return candidate

    def constant(self, wanted: str, value: np.ndarray | np.floating[Any]) -> str:
        name = self.name(wanted)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, layer: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=self.name(f"{layer}/{op}"), **attributes))
        return output

    def temporary(self, layer: str, what: str) -> str:
        return self.name(f"{layer}/{what}")


def to_onnx(net: CaffeNet, outputs: Sequence[str], opset: int) -> onnx.ModelProto:
    """The ONNX model of `net` with `outputs` (value names) as its graph outputs."""
    graph = _Graph()
    for value in net.values:
        graph._names.add(value)
    for layer in net.layers:
        _TRANSLATIONS[layer.type](graph, layer)
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, _symbolic(shape)) for name, shape in net.inputs.items()
    ]
    results = [helper.make_tensor_value_info(name, TensorProto.FLOAT, _symbolic(net.values[name])) for name in outputs]
    onnx_graph = helper.make_graph(graph.nodes, net.name, inputs, results, graph.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="tensorgate-caffe")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _symbolic(shape: Shape) -> list[int | str]:
    return [BATCH_SYMBOL, *shape[1:]] if shape else []


def _convolution(graph: _Graph, layer: Layer) -> None:
    attributes = layer.attributes
    inputs = [layer.bottoms[0]] + [
        graph.constant(f"{layer.name}/{part}", blob)
        for part, blob in zip(("weight", "bias"), layer.blobs, strict=False)
    ]
    pad = attributes["pad"]
    graph.node(
        "Conv" if layer.type == "Convolution" else "ConvTranspose",
        inputs,
        layer.tops[0],
        layer.name,
        kernel_shape=list(attributes["kernel"]),
        strides=list(attributes["stride"]),
        pads=[pad[0], pad[1], pad[0], pad[1]],
        dilations=list(attributes["dilation"]),
        group=attributes["group"],
    )


def _pooling(graph: _Graph, layer: Layer) -> None:
    attributes = layer.attributes
    method, source, top = attributes["method"], layer.bottoms[0], layer.tops[0]
    if attributes["global"]:
        graph.node("GlobalMaxPool" if method == "max" else "GlobalAveragePool", [source], top, layer.name)
        return
    kernel, stride, pad = attributes["kernel"], attributes["stride"], attributes["pad"]
    height, width = layer.input_shapes[0][2:]
    pooled = layer.output_shapes[0][2:]
    # End padding that makes ONNX's floor rounding give Caffe's window count.
    extra = [
        max(0, (pooled[axis] - 1) * stride[axis] + kernel[axis] - (height, width)[axis] - 2 * pad[axis])
        for axis in (0, 1)
    ]
    if method == "max":
        graph.node(
            "MaxPool",
            [source],
            top,
            layer.name,
            kernel_shape=list(kernel),
            strides=list(stride),
            pads=[pad[0], pad[1], pad[0] + extra[0], pad[1] + extra[1]],
        )
        return
    if any(pad):
        # Caffe counts the padding in an average's divisor but not what lies beyond it: pad with real
        # zeros, then let the pooling exclude only the end padding added for the rounding.
        pads = graph.constant(f"{layer.name}/pads", np.array([0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]], np.int64))
        source = graph.node("Pad", [source, pads], graph.temporary(layer.name, "padded"), layer.name)
    graph.node(
        "AveragePool",
        [source],
        top,
        layer.name,
        kernel_shape=list(kernel),
        strides=list(stride),
        pads=[0, 0, extra[0], extra[1]],
        count_include_pad=0,
    )


def _relu(graph: _Graph, layer: Layer) -> None:
    slope = layer.attributes["negative_slope"]
    if slope:
        graph.node("LeakyRelu", [layer.bottoms[0]], layer.tops[0], layer.name, alpha=slope)
    else:
        graph.node("Relu", [layer.bottoms[0]], layer.tops[0], layer.name)


def _prelu(graph: _Graph, layer: Layer) -> None:
    rank = len(layer.input_shapes[0])
    slope = layer.blobs[0].reshape((-1,) + (1,) * max(0, rank - 2))
    graph.node("PRelu", [layer.bottoms[0], graph.constant(f"{layer.name}/slope", slope)], layer.tops[0], layer.name)


def _lrn(graph: _Graph, layer: Layer) -> None:
    attributes = layer.attributes
    size, alpha, beta = attributes["size"], attributes["alpha"], attributes["beta"]
    if attributes["across_channels"]:
        graph.node(
            "LRN",
            [layer.bottoms[0]],
            layer.tops[0],
            layer.name,
            size=size,
            alpha=alpha,
            beta=beta,
            bias=attributes["k"],
        )
        return
    # WITHIN_CHANNEL: x · (1 + alpha · mean of x² over a size×size window, padding counted)^-beta.
    source = layer.bottoms[0]
    squared = graph.node("Mul", [source, source], graph.temporary(layer.name, "squared"), layer.name)
    half = (size - 1) // 2
    averaged = graph.node(
        "AveragePool",
        [squared],
        graph.temporary(layer.name, "averaged"),
        layer.name,
        kernel_shape=[size, size],
        strides=[1, 1],
        pads=[half, half, half, half],
        count_include_pad=1,
    )
    scaled = graph.node(
        "Mul",
        [averaged, graph.constant(f"{layer.name}/alpha", np.float32(alpha))],
        graph.temporary(layer.name, "scaled"),
        layer.name,
    )
    shifted = graph.node(
        "Add",
        [scaled, graph.constant(f"{layer.name}/one", np.float32(1.0))],
        graph.temporary(layer.name, "shifted"),
        layer.name,
    )
    power = graph.node(
        "Pow",
        [shifted, graph.constant(f"{layer.name}/power", np.float32(-beta))],
        graph.temporary(layer.name, "power"),
        layer.name,
    )
    graph.node("Mul", [source, power], layer.tops[0], layer.name)


def _inner_product(graph: _Graph, layer: Layer) -> None:
    axis = layer.attributes["axis"]
    shape = layer.input_shapes[0]
    source = layer.bottoms[0]
    if not (len(shape) == 2 and axis == 1):
        source = graph.node("Flatten", [source], graph.temporary(layer.name, "flat"), layer.name, axis=axis)
    inputs = [source] + [
        graph.constant(f"{layer.name}/{part}", blob)
        for part, blob in zip(("weight", "bias"), layer.blobs, strict=False)
    ]
    if axis == 1:
        graph.node("Gemm", inputs, layer.tops[0], layer.name, transB=1)
        return
    product = graph.node("Gemm", inputs, graph.temporary(layer.name, "product"), layer.name, transB=1)
    target = np.array([0, *layer.output_shapes[0][1:]], np.int64) if axis > 0 else np.array([-1], np.int64)
    graph.node("Reshape", [product, graph.constant(f"{layer.name}/shape", target)], layer.tops[0], layer.name)


def _softmax(graph: _Graph, layer: Layer) -> None:
    graph.node("Softmax", [layer.bottoms[0]], layer.tops[0], layer.name, axis=layer.attributes["axis"])


def _concat(graph: _Graph, layer: Layer) -> None:
    graph.node("Concat", layer.bottoms, layer.tops[0], layer.name, axis=layer.attributes["axis"])


def _eltwise(graph: _Graph, layer: Layer) -> None:
    operation, coefficients = layer.attributes["operation"], layer.attributes["coefficients"]
    bottoms = list(layer.bottoms)
    if operation == "sum":
        if coefficients:
            bottoms = [
                bottom
                if coefficient == 1.0
                else graph.node(
                    "Mul",
                    [bottom, graph.constant(f"{layer.name}/coeff", np.float32(coefficient))],
                    graph.temporary(layer.name, "weighted"),
                    layer.name,
                )
                for bottom, coefficient in zip(bottoms, coefficients, strict=True)
            ]
        graph.node("Sum", bottoms, layer.tops[0], layer.name)
    elif operation == "max":
        graph.node("Max", bottoms, layer.tops[0], layer.name)
    else:
        product = bottoms[0]
        for index, bottom in enumerate(bottoms[1:], start=1):
            last = index == len(bottoms) - 1
            product = graph.node(
                "Mul", [product, bottom], layer.tops[0] if last else graph.temporary(layer.name, "product"), layer.name
            )
        if len(bottoms) == 1:
            graph.node("Identity", [product], layer.tops[0], layer.name)


def _batch_norm(graph: _Graph, layer: Layer) -> None:
    mean, variance = layer.blobs
    inputs = [
        layer.bottoms[0],
        graph.constant(f"{layer.name}/scale", np.ones_like(mean)),
        graph.constant(f"{layer.name}/offset", np.zeros_like(mean)),
        graph.constant(f"{layer.name}/mean", mean),
        graph.constant(f"{layer.name}/variance", variance),
    ]
    graph.node("BatchNormalization", inputs, layer.tops[0], layer.name, epsilon=layer.attributes["eps"])


def _scale(graph: _Graph, layer: Layer) -> None:
    axis, factor_shape = layer.attributes["axis"], layer.attributes["factor_shape"]
    trailing = len(layer.input_shapes[0]) - axis - len(factor_shape)
    broadcast = tuple(factor_shape) + (1,) * trailing
    blobs = list(layer.blobs)
    if layer.attributes["factor_from_bottom"]:
        factor = layer.bottoms[1]
        if trailing:
            axes = graph.constant(
                f"{layer.name}/axes", np.arange(len(factor_shape), len(factor_shape) + trailing, dtype=np.int64)
            )
            factor = graph.node("Unsqueeze", [factor, axes], graph.temporary(layer.name, "factor"), layer.name)
    else:
        factor = graph.constant(f"{layer.name}/scale", blobs.pop(0).reshape(broadcast))
    if not blobs:
        graph.node("Mul", [layer.bottoms[0], factor], layer.tops[0], layer.name)
        return
    scaled = graph.node("Mul", [layer.bottoms[0], factor], graph.temporary(layer.name, "scaled"), layer.name)
    graph.node(
        "Add", [scaled, graph.constant(f"{layer.name}/bias", blobs[0].reshape(broadcast))], layer.tops[0], layer.name
    )


def _identity(graph: _Graph, layer: Layer) -> None:
    graph.node("Identity", [layer.bottoms[0]], layer.tops[0], layer.name)


def _reshape(graph: _Graph, layer: Layer) -> None:
    shape = layer.output_shapes[0]
    target = [0 if layer.attributes["keeps_batch"] else -1, *shape[1:]]
    graph.node(
        "Reshape",
        [layer.bottoms[0], graph.constant(f"{layer.name}/shape", np.array(target, np.int64))],
        layer.tops[0],
        layer.name,
    )


def _unary(op: str) -> Callable[[_Graph, Layer], None]:
    def translate(graph: _Graph, layer: Layer) -> None:
        graph.node(op, [layer.bottoms[0]], layer.tops[0], layer.name)

    return translate


_TRANSLATIONS = {
    "Convolution": _convolution,
    "Deconvolution": _convolution,
    "Pooling": _pooling,
    "ReLU": _relu,
    "PReLU": _prelu,
    "LRN": _lrn,
    "InnerProduct": _inner_product,
    "Softmax": _softmax,
    "Concat": _concat,
    "Eltwise": _eltwise,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Dropout": _identity,
    "Flatten": _reshape,
    "Reshape": _reshape,
    "Sigmoid": _unary("Sigmoid"),
    "TanH": _unary("Tanh"),
}
