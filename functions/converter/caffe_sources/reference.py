"""Caffe's layers in plain numpy: the original a converted Caffe network is compared with.

Written from Caffe's own definitions (its layer sources and `caffe.proto` comments), not from the
ONNX translation: sizes are recomputed here, pooling walks Caffe's windows one by one (ceil
rounding, windows clipped to the padded input, the average's divisor counting the padding),
LRN sums squares over Caffe's channel window, convolutions are im2col products. Nothing here
imports onnx or onnxruntime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from functions.converter.caffe_sources.network import CaffeNet, Layer
from functions.converter.tensorflow_sources.common import Reference


class CaffeReference(Reference):
    description = "numpy implementation of Caffe's layers (Caffe's pooling rounding, LRN and BatchNorm definitions)"

    def __init__(self, net: CaffeNet) -> None:
        self.net = net

    def run(self, feeds: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        values = forward(self.net, feeds)
        return {name: values[name] for name in outputs}


def forward(net: CaffeNet, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of the net (blob versions included) for `feeds`."""
    values = {name: np.asarray(array, dtype=np.float32) for name, array in feeds.items()}
    for layer in net.layers:
        values[layer.tops[0]] = _FORWARD[layer.type](layer, [values[name] for name in layer.bottoms])
    return values


def _windows(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """im2col: (N, C, kh, kw, OH, OW) views of an already padded input."""
    n, c = x.shape[:2]
    columns = np.empty((n, c, kernel[0], kernel[1], size[0], size[1]), dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            top, left = i * dilation[0], j * dilation[1]
            columns[:, :, i, j] = x[
                :,
                :,
                top : top + stride[0] * (size[0] - 1) + 1 : stride[0],
                left : left + stride[1] * (size[1] - 1) + 1 : stride[1],
            ]
    return columns


def _convolution(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    weight = layer.blobs[0]
    bias = layer.blobs[1] if len(layer.blobs) > 1 else None
    kernel, stride, pad, dilation, group = (
        layer.attributes[key] for key in ("kernel", "stride", "pad", "dilation", "group")
    )
    n, channels, height, width = x.shape
    if layer.type == "Deconvolution":
        return _deconvolution(x, weight, bias, kernel, stride, pad, dilation, group)
    rows, cols = (
        (dim + 2 * p - (d * (k - 1) + 1)) // s + 1
        for dim, p, d, k, s in zip((height, width), pad, dilation, kernel, stride, strict=True)
    )
    size = (rows, cols)
    padded = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    columns = _windows(padded, kernel, stride, dilation, size)
    outputs = weight.shape[0]
    per_group_in, per_group_out = channels // group, outputs // group
    result = np.empty((n, outputs, size[0] * size[1]), dtype=np.float32)
    for g in range(group):
        cols = columns[:, g * per_group_in : (g + 1) * per_group_in].reshape(
            n, per_group_in * kernel[0] * kernel[1], -1
        )
        w = weight[g * per_group_out : (g + 1) * per_group_out].reshape(per_group_out, -1)
        result[:, g * per_group_out : (g + 1) * per_group_out] = np.matmul(w, cols)
    if bias is not None:
        result += bias[None, :, None]
    return result.reshape(n, outputs, *size)


def _deconvolution(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    dilation: tuple[int, int],
    group: int,
) -> np.ndarray:
    """Caffe's Deconvolution: the convolution's backward pass (col2im of Wᵀ·x), then the padding cropped."""
    n, channels, height, width = x.shape
    per_group_in, per_group_out = channels // group, weight.shape[1]
    full = [
        s * (dim - 1) + d * (k - 1) + 1 for s, dim, d, k in zip(stride, (height, width), dilation, kernel, strict=True)
    ]
    result = np.zeros((n, per_group_out * group, full[0], full[1]), dtype=np.float32)
    for g in range(group):
        xg = x[:, g * per_group_in : (g + 1) * per_group_in]
        wg = weight[g * per_group_in : (g + 1) * per_group_in]
        # (N, Og, kh, kw, H, W): each input pixel spreads its weighted kernel.
        spread = np.einsum("nchw,coij->noijhw", xg, wg, optimize=True)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                top, left = i * dilation[0], j * dilation[1]
                result[
                    :,
                    g * per_group_out : (g + 1) * per_group_out,
                    top : top + stride[0] * (height - 1) + 1 : stride[0],
                    left : left + stride[1] * (width - 1) + 1 : stride[1],
                ] += spread[:, :, i, j]
    result = result[:, :, pad[0] : full[0] - pad[0], pad[1] : full[1] - pad[1]]
    if bias is not None:
        result = result + bias[None, :, None, None]
    return np.ascontiguousarray(result)


def _pool(
    x: np.ndarray,
    method: str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    ceil: bool = True,
) -> np.ndarray:
    """Caffe's PoolingLayer::Forward_cpu, window by window."""
    n, c, height, width = x.shape
    pooled = []
    for dim, k, s, p in zip((height, width), kernel, stride, pad, strict=True):
        count = int(math.ceil((dim + 2 * p - k) / s) if ceil else math.floor((dim + 2 * p - k) / s)) + 1
        if p and (count - 1) * s >= dim + p:
            count -= 1
        pooled.append(count)
    result = np.empty((n, c, pooled[0], pooled[1]), dtype=np.float32)
    for ph in range(pooled[0]):
        for pw in range(pooled[1]):
            hstart, wstart = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            if method == "max":
                hend, wend = min(hstart + kernel[0], height), min(wstart + kernel[1], width)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                result[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].max(axis=(2, 3))
            else:
                hend, wend = min(hstart + kernel[0], height + pad[0]), min(wstart + kernel[1], width + pad[1])
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, height), min(wend, width)
                result[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].sum(axis=(2, 3), dtype=np.float64) / pool_size
    return result


def _pooling(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    attributes = layer.attributes
    if attributes["global"]:
        reduce = np.max if attributes["method"] == "max" else np.mean
        return reduce(x, axis=(2, 3), keepdims=True).astype(np.float32)
    param = layer.param
    ceil = not (param.HasField("round_mode") and param.round_mode == 1) and not (
        param.HasField("ceil_mode") and not param.ceil_mode
    )
    return _pool(x, attributes["method"], attributes["kernel"], attributes["stride"], attributes["pad"], ceil)


def _lrn(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0].astype(np.float64)
    size, alpha, beta, k = (layer.attributes[key] for key in ("size", "alpha", "beta", "k"))
    if layer.attributes["across_channels"]:
        # scale_c = k + alpha/size · Σ x² over channels c - (size-1)/2 … c + (size-1)/2 (clipped to the blob).
        half = (size - 1) // 2
        squares = np.pad(x * x, ((0, 0), (half, half), (0, 0), (0, 0)))
        cumulative = np.concatenate([np.zeros_like(squares[:, :1]), np.cumsum(squares, axis=1)], axis=1)
        channels = x.shape[1]
        window = cumulative[:, size : size + channels] - cumulative[:, :channels]
        scale = k + alpha / size * window
        return (x * scale**-beta).astype(np.float32)
    # WITHIN_CHANNEL: Caffe builds it from an AVE pooling of x² (pad (size-1)/2) and a power layer.
    half = (size - 1) // 2
    averaged = _pool((x * x).astype(np.float32), "average", (size, size), (1, 1), (half, half)).astype(np.float64)
    return (x * (1.0 + alpha * averaged) ** -beta).astype(np.float32)


def _inner_product(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    axis = layer.attributes["axis"]
    leading = x.shape[:axis]
    result = x.reshape(math.prod(leading), -1) @ layer.blobs[0].T
    if len(layer.blobs) > 1:
        result = result + layer.blobs[1]
    return result.reshape(*leading, -1).astype(np.float32)


def _softmax(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0].astype(np.float64)
    axis = layer.attributes["axis"]
    exponentials = np.exp(x - x.max(axis=axis, keepdims=True))
    return (exponentials / exponentials.sum(axis=axis, keepdims=True)).astype(np.float32)


def _eltwise(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    operation = layer.attributes["operation"]
    if operation == "sum":
        coefficients = layer.attributes["coefficients"] or [1.0] * len(bottoms)
        return np.sum([np.float32(c) * b for c, b in zip(coefficients, bottoms, strict=True)], axis=0, dtype=np.float32)
    if operation == "max":
        return np.maximum.reduce(bottoms)
    return np.multiply.reduce(bottoms)


def _batch_norm(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    mean, variance = layer.blobs
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + layer.attributes["eps"])).astype(np.float32)


def _scale(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    axis = layer.attributes["axis"]
    blobs = list(layer.blobs)
    factor = bottoms[1] if layer.attributes["factor_from_bottom"] else blobs.pop(0)

    def spread(values: np.ndarray) -> np.ndarray:
        # Caffe's ScaleLayer: the factor covers axes axis … axis+factor.ndim-1 and repeats over the others.
        return values.reshape((1,) * axis + values.shape + (1,) * (x.ndim - axis - values.ndim))

    result = x * spread(factor)
    if blobs:
        result = result + spread(blobs[0])
    return result.astype(np.float32)


def _relu(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    return np.where(x > 0, x, x * np.float32(layer.attributes["negative_slope"])).astype(np.float32)


def _prelu(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    slope = layer.blobs[0].reshape((1, -1) + (1,) * (x.ndim - 2)) if x.ndim > 1 else layer.blobs[0]
    return np.where(x > 0, x, x * slope).astype(np.float32)


def _flatten(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    start = layer.param.axis % x.ndim
    end = layer.param.end_axis % x.ndim
    return x.reshape(*x.shape[:start], -1, *x.shape[end + 1 :])


def _reshape(layer: Layer, bottoms: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    declared = layer.output_shapes[0]
    if layer.attributes["keeps_batch"]:
        return x.reshape(x.shape[0], *declared[1:])
    return x.reshape(-1, *declared[1:])


_FORWARD = {
    "Convolution": _convolution,
    "Deconvolution": _convolution,
    "Pooling": _pooling,
    "ReLU": _relu,
    "PReLU": _prelu,
    "LRN": _lrn,
    "InnerProduct": _inner_product,
    "Softmax": _softmax,
    "Concat": lambda layer, bottoms: np.concatenate(bottoms, axis=layer.attributes["axis"]),
    "Eltwise": _eltwise,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Dropout": lambda layer, bottoms: bottoms[0],
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Sigmoid": lambda layer, bottoms: (1.0 / (1.0 + np.exp(-bottoms[0].astype(np.float64)))).astype(np.float32),
    "TanH": lambda layer, bottoms: np.tanh(bottoms[0]),
}
