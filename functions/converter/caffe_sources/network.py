"""A Caffe network read from deploy.prototxt and its .caffemodel: layers, weights and blob shapes.

The result is plain data both sides of the parity check read: the ONNX translation (`to_onnx`)
and the numpy reference (`reference`). Blobs written in place (`ReLU` with top == bottom) get one
value name per write, so the graph stays single-assignment; the last write keeps the blob's own
name, which is what Caffe's `net.blobs[name]` holds after a forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import message, text_format

from functions.converter.caffe_sources import proto
from functions.converter.errors import ConversionFailed, Reason, listing

SUPPORTED_TYPES = (
    "Input",
    "Convolution",
    "Deconvolution",
    "Pooling",
    "ReLU",
    "PReLU",
    "LRN",
    "InnerProduct",
    "Softmax",
    "Concat",
    "Eltwise",
    "BatchNorm",
    "Scale",
    "Dropout",
    "Flatten",
    "Reshape",
    "Sigmoid",
    "TanH",
)
_PHASE_TEST = 1
Shape = tuple[int, ...]


@dataclass
class Layer:
    name: str
    type: str
    bottoms: list[str]  # value names read
    tops: list[str]  # value names written
    blob_tops: list[str]  # the Caffe blob names written
    param: Any  # the layer's *_param message (or None)
    blobs: list[np.ndarray]
    input_shapes: list[Shape] = field(default_factory=list)
    output_shapes: list[Shape] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)  # resolved parameters


@dataclass
class CaffeNet:
    name: str
    inputs: dict[str, Shape]  # value name -> shape, batch first
    layers: list[Layer]
    values: dict[str, Shape]  # every value name -> shape
    blob_values: dict[str, str]  # Caffe blob name -> the value holding its final content
    outputs: list[str]  # value names nothing reads: Caffe's net outputs

    def layer_tops(self) -> dict[str, str]:
        """Layer name -> the value its first top finally holds (features "from a layer")."""
        return {layer.name: self.blob_values[layer.blob_tops[0]] for layer in self.layers if layer.blob_tops}


def load(prototxt: Path, caffemodel: Path, prototxt_label: str, caffemodel_label: str) -> CaffeNet:
    definition = _read_definition(prototxt, prototxt_label)
    weights = _read_weights(caffemodel, caffemodel_label)
    return build(definition, weights, prototxt_label, caffemodel_label)


def _read_definition(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} is not a text file; the network definition is Caffe's prototxt text.",
            {"file": label},
        ) from None
    try:
        net = proto.parse_net_text(text)
    except text_format.ParseError as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} is not a readable Caffe prototxt: {str(error).rstrip('.')}.",
            {"file": label},
        ) from None
    if len(net.layers):
        _upgrade_v1(net, label)
    if not len(net.layer):
        raise ConversionFailed(Reason.CORRUPT_FILE, f"{label} defines no layers.", {"file": label})
    return net


def _upgrade_v1(net: Any, label: str) -> None:
    """Caffe's V1 layers (`layers { type: CONVOLUTION }`) rewritten as `layer` messages, as UpgradeV1Net does."""
    if len(net.layer):
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} mixes Caffe's two layer formats ('layer {{ type: \"Convolution\" }}' and the old "
            "'layers { type: CONVOLUTION }'), which Caffe refuses too; write every layer in one of them.",
            {"file": label},
        )
    if any(old.HasField("layer") for old in net.layers):
        raise ConversionFailed(
            Reason.UNSUPPORTED_FORMAT,
            f"{label} uses Caffe's first layer format ('layers {{ layer {{ type: \"conv\" }} }}', before 2014); "
            "upgrade it with Caffe's upgrade_net_proto_text tool and upload the result.",
            {"file": label},
        )
    for old in net.layers:
        layer = net.layer.add(name=old.name, type=proto.V1_LAYER_TYPES[old.type][1])
        layer.bottom.extend(old.bottom)
        layer.top.extend(old.top)
        layer.include.extend(old.include)
        layer.exclude.extend(old.exclude)
        for field_name in proto.V1_PARAM_FIELDS:
            if old.HasField(field_name):
                getattr(layer, field_name).CopyFrom(getattr(old, field_name))
    net.ClearField("layers")


def _read_weights(path: Path, label: str) -> dict[str, list[np.ndarray]]:
    try:
        net = proto.parse_net_binary(path.read_bytes())
    except message.DecodeError as error:
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable Caffe model (.caffemodel): {error}.", {"file": label}
        ) from None
    weights: dict[str, list[np.ndarray]] = {}
    for layer in list(net.layer) + list(net.layers):
        if len(layer.blobs) and layer.name not in weights:
            weights[layer.name] = [blob_array(blob, f"{label}: layer {layer.name!r}") for blob in layer.blobs]
    return weights


# NVCaffe's raw_data_type values and how their bytes read.
_RAW_DTYPES = {0: "<f8", 1: "<f4", 2: "<f2"}


def _raw_values(blob: Any, where: str) -> np.ndarray:
    """NVCaffe's `raw_data`: the blob's bytes in the storage type `raw_data_type` names (FLOAT16 weights)."""
    dtype = _RAW_DTYPES.get(int(blob.raw_data_type))
    if dtype is None or len(blob.raw_data) % np.dtype(dtype).itemsize:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{where} stores its values as raw data of type {int(blob.raw_data_type)}; DOUBLE, FLOAT and FLOAT16 "
            "are read.",
        )
    return np.frombuffer(blob.raw_data, dtype=dtype).astype(np.float32)


def blob_array(blob: Any, where: str) -> np.ndarray:
    """A BlobProto's values with its shape (the `shape` field, or the legacy num/channels/height/width)."""
    if blob.HasField("shape"):
        shape: Shape = tuple(int(dim) for dim in blob.shape.dim)
    else:
        shape = tuple(int(value) for value in (blob.num, blob.channels, blob.height, blob.width))
    if blob.HasField("raw_data"):
        values = _raw_values(blob, where)
    else:
        values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
    if values.size != math.prod(shape):
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{where} holds {values.size} values for a blob of shape {list(shape)}."
        )
    return values.reshape(shape)


def build(
    definition: Any, weights: dict[str, list[np.ndarray]], prototxt_label: str, caffemodel_label: str
) -> CaffeNet:
    messages = [layer for layer in definition.layer if _in_test_phase(layer)]
    unsupported = [layer for layer in messages if layer.type not in SUPPORTED_TYPES]
    if unsupported:
        named = [f"{layer.name!r} (type {layer.type!r})" for layer in unsupported]
        raise ConversionFailed(
            Reason.UNSUPPORTED_OPS,
            f"{prototxt_label}: layer{'s' if len(named) > 1 else ''} {_first(named, 5)} "
            f"{'are' if len(named) > 1 else 'is'} not supported; supported layer types: {', '.join(SUPPORTED_TYPES)}.",
            {
                "layers": [{"name": layer.name, "type": layer.type} for layer in unsupported],
                "supported": list(SUPPORTED_TYPES),
            },
        )
    writes: dict[str, int] = {}
    input_shapes = _declared_inputs(definition, messages, prototxt_label)
    for name in input_shapes:
        writes[name] = writes.get(name, 0) + 1
    for layer in messages:
        if layer.type == "Input":
            continue
        for top in layer.top:
            writes[top] = writes.get(top, 0) + 1
    seen: dict[str, int] = {}
    current: dict[str, str] = {}
    values: dict[str, Shape] = {}
    inputs: dict[str, Shape] = {}
    for name, shape in input_shapes.items():
        seen[name] = 1
        current[name] = name
        values[name] = shape
        inputs[name] = shape
    layers: list[Layer] = []
    read: set[str] = set()
    for layer_message in messages:
        if layer_message.type == "Input":
            continue
        where = f"{prototxt_label}: layer {layer_message.name!r} ({layer_message.type})"
        bottoms = []
        for bottom in layer_message.bottom:
            if bottom not in current:
                raise ConversionFailed(
                    Reason.CORRUPT_FILE,
                    f"{where} reads the blob {bottom!r}, which no earlier layer or input produces.",
                    {"layer": layer_message.name, "blob": bottom},
                )
            bottoms.append(current[bottom])
        read.update(bottoms)
        tops = []
        for top in layer_message.top:
            seen[top] = seen.get(top, 0) + 1
            last = seen[top] == writes[top] and top not in inputs
            value = top if last else f"{top}#{seen[top]}"
            current[top] = value
            tops.append(value)
        layer = Layer(
            name=layer_message.name,
            type=layer_message.type,
            bottoms=bottoms,
            tops=tops,
            blob_tops=list(layer_message.top),
            param=_param_of(layer_message),
            blobs=weights.get(layer_message.name, []),
            input_shapes=[values[bottom] for bottom in bottoms],
        )
        try:
            _resolve(layer, where, caffemodel_label)
        except ConversionFailed as failure:
            if layer.blobs or failure.reason is not Reason.MISSING_FILE:
                raise
            raise _no_weights_named(layer, definition, weights, caffemodel_label) from None
        for value, shape in zip(layer.tops, layer.output_shapes, strict=True):
            values[value] = shape
        layers.append(layer)
    produced = [value for layer in layers for value in layer.tops]
    outputs = [value for value in produced if value not in read]
    return CaffeNet(
        name=definition.name or "caffe",
        inputs=inputs,
        layers=layers,
        values=values,
        blob_values=dict(current),
        outputs=outputs,
    )


def _no_weights_named(
    layer: Layer, definition: Any, weights: dict[str, list[np.ndarray]], caffemodel_label: str
) -> ConversionFailed:
    """A layer that needs weights found none under its name: say which names the .caffemodel holds instead."""
    defined = {message.name for message in definition.layer}
    others = [name for name in weights if name not in defined]
    found = (
        f"its weights are under names the prototxt does not use: {listing(others, 10)}; Caffe finds weights by "
        "layer name, so name the prototxt's layers as in the network that was trained."
        if others
        else "is it the .caffemodel trained with this prototxt?"
    )
    return ConversionFailed(
        Reason.MISSING_FILE,
        f"{caffemodel_label} holds no weights for the layer {layer.name!r} ({layer.type}); {found}",
        {"layer": layer.name, "unmatched": others},
    )


def _first(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _in_test_phase(layer: Any) -> bool:
    """Caffe's NetStateRule check for a TEST-phase net at level 0 without stages."""

    def meets(rule: Any) -> bool:
        if rule.HasField("phase") and rule.phase != _PHASE_TEST:
            return False
        if rule.HasField("min_level") and rule.min_level > 0:
            return False
        if rule.HasField("max_level") and rule.max_level < 0:
            return False
        return not len(rule.stage)

    if len(layer.include):
        return any(meets(rule) for rule in layer.include)
    return not any(meets(rule) for rule in layer.exclude)


def _declared_inputs(definition: Any, messages: Sequence[Any], label: str) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    names = list(definition.input)
    if names:
        if len(definition.input_shape):
            declared = [tuple(int(dim) for dim in shape.dim) for shape in definition.input_shape]
        else:
            dims = [int(dim) for dim in definition.input_dim]
            if len(dims) != 4 * len(names):
                raise ConversionFailed(
                    Reason.CORRUPT_FILE,
                    f"{label} declares {len(names)} input(s) ({listing(names)}) with {len(dims)} input_dim values; "
                    "Caffe reads four per input (batch, channels, height, width), or use input_shape.",
                )
            declared = [tuple(dims[index : index + 4]) for index in range(0, len(dims), 4)]
        if len(declared) != len(names):
            raise ConversionFailed(
                Reason.CORRUPT_FILE,
                f"{label} declares {len(names)} input(s) ({listing(names)}) but {len(declared)} input shape(s).",
            )
        shapes.update(zip(names, declared, strict=True))
    for layer in messages:
        if layer.type != "Input":
            continue
        declared = [tuple(int(dim) for dim in shape.dim) for shape in layer.input_param.shape]
        if len(declared) not in (1, len(layer.top)):
            raise ConversionFailed(
                Reason.CORRUPT_FILE,
                f"{label}: Input layer {layer.name!r} gives {len(declared)} shapes for {len(layer.top)} tops.",
            )
        for index, top in enumerate(layer.top):
            shapes[top] = declared[index if len(declared) > 1 else 0]
    if not shapes:
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"{label} declares no input: add an Input layer (input_param {{ shape {{ dim: 1 dim: 3 dim: 224 "
            "dim: 224 }}) or 'input' with 'input_shape'.",
        )
    for name, shape in shapes.items():
        if not shape or any(dim <= 0 for dim in shape):
            raise ConversionFailed(
                Reason.CORRUPT_FILE,
                f"{label}: the input {name!r} has shape {list(shape)}; every dimension must be positive.",
            )
    return shapes


_PARAM_FIELDS = {
    "Convolution": "convolution_param",
    "Deconvolution": "convolution_param",
    "Pooling": "pooling_param",
    "ReLU": "relu_param",
    "PReLU": "prelu_param",
    "LRN": "lrn_param",
    "InnerProduct": "inner_product_param",
    "Softmax": "softmax_param",
    "Concat": "concat_param",
    "Eltwise": "eltwise_param",
    "BatchNorm": "batch_norm_param",
    "Scale": "scale_param",
    "Dropout": "dropout_param",
    "Flatten": "flatten_param",
    "Reshape": "reshape_param",
}


def _param_of(layer: Any) -> Any:
    field_name = _PARAM_FIELDS.get(layer.type)
    return getattr(layer, field_name) if field_name else None


# ---- per-type parameters and shapes -------------------------------------------------------------


# Types that read exactly one bottom blob (Concat and Eltwise take several, Scale one or two).
_ONE_BOTTOM = {
    "Sigmoid", "TanH", "Dropout", "ReLU", "PReLU", "LRN", "Softmax", "Flatten", "Reshape", "BatchNorm",
    "Convolution", "Deconvolution", "Pooling", "InnerProduct",
}  # fmt: skip


def _resolve(layer: Layer, where: str, caffemodel_label: str) -> None:
    if layer.type in _ONE_BOTTOM and len(layer.bottoms) != 1:
        raise _invalid(where, f"takes 1 bottom blob, not {len(layer.bottoms)}")
    if layer.type == "Scale" and len(layer.bottoms) not in (1, 2):
        raise _invalid(where, f"takes 1 or 2 bottom blobs, not {len(layer.bottoms)}")
    if not layer.bottoms:
        raise _invalid(where, "reads no bottom blob")
    if len(layer.tops) != 1:
        raise _invalid(where, f"must write exactly one top blob, not {len(layer.tops)}")
    resolver = _RESOLVERS.get(layer.type, _same_shape)
    shape = resolver(layer, where, caffemodel_label)
    if any(dim <= 0 for dim in shape):
        raise _invalid(where, f"produces the empty shape {list(shape)} from {list(layer.input_shapes[0])}")
    layer.output_shapes = [shape]


def _invalid(where: str, problem: str) -> ConversionFailed:
    return ConversionFailed(Reason.CORRUPT_FILE, f"{where} {problem}.")


def _unsupported(where: str, problem: str) -> ConversionFailed:
    """A valid Caffe layer using a feature the converter does not translate."""
    return ConversionFailed(Reason.UNSUPPORTED_OPS, f"{where} {problem}.")


def _same_shape(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    return layer.input_shapes[0]


def _weights(layer: Layer, where: str, caffemodel_label: str, shapes: Sequence[Shape]) -> list[np.ndarray]:
    """The layer's blobs, reshaped to `shapes` (Caffe's old files store 4-D blobs for everything)."""
    if len(layer.blobs) < len(shapes):
        raise ConversionFailed(
            Reason.MISSING_FILE,
            f"{caffemodel_label} has {len(layer.blobs)} weight blob(s) for the layer {layer.name!r} ({layer.type}), "
            f"which needs {len(shapes)}; is it the .caffemodel trained with this prototxt?",
            {"layer": layer.name},
        )
    arrays = []
    for index, (blob, shape) in enumerate(zip(layer.blobs, shapes, strict=False)):
        if blob.size != math.prod(shape):
            raise ConversionFailed(
                Reason.CORRUPT_FILE,
                f"{caffemodel_label}: the layer {layer.name!r} ({layer.type}) blob {index} has shape "
                f"{list(blob.shape)} but the prototxt makes it {list(shape)}; is it the .caffemodel trained with "
                "this prototxt?",
                {"layer": layer.name},
            )
        arrays.append(blob.reshape(shape))
    return arrays


def _pair(repeated: Sequence[int], height: Any, width: Any, has_height: bool, default: int) -> tuple[int, int]:
    if has_height:
        return int(height), int(width)
    values = [int(value) for value in repeated]
    if not values:
        return default, default
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _convolution(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    if len(shape) != 4 or param.axis != 1:
        raise _unsupported(where, f"is supported on N×C×H×W blobs along axis 1; its input has shape {list(shape)}")
    if not len(param.kernel_size) and not param.HasField("kernel_h"):
        raise _invalid(where, "has no kernel_size")
    kernel = _pair(param.kernel_size, param.kernel_h, param.kernel_w, param.HasField("kernel_h"), 1)
    stride = _pair(param.stride, param.stride_h, param.stride_w, param.HasField("stride_h"), 1)
    pad = _pair(param.pad, param.pad_h, param.pad_w, param.HasField("pad_h") or param.HasField("pad_w"), 0)
    dilation = _pair(param.dilation, 0, 0, False, 1)
    group, outputs, channels = int(param.group), int(param.num_output), shape[1]
    if outputs <= 0 or group <= 0 or channels % group or outputs % group:
        raise _invalid(where, f"has num_output {outputs} and group {group} for {channels} input channels")
    if layer.type == "Convolution":
        weight_shape: Shape = (outputs, channels // group, *kernel)
        size = [
            (shape[2 + axis] + 2 * pad[axis] - (dilation[axis] * (kernel[axis] - 1) + 1)) // stride[axis] + 1
            for axis in (0, 1)
        ]
    else:
        weight_shape = (channels, outputs // group, *kernel)
        size = [
            stride[axis] * (shape[2 + axis] - 1) + dilation[axis] * (kernel[axis] - 1) + 1 - 2 * pad[axis]
            for axis in (0, 1)
        ]
    shapes = [weight_shape] + ([(outputs,)] if param.bias_term else [])
    layer.blobs = _weights(layer, where, caffemodel_label, shapes)
    layer.attributes = {"kernel": kernel, "stride": stride, "pad": pad, "dilation": dilation, "group": group}
    return (shape[0], outputs, size[0], size[1])


def _pooling(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    if len(shape) != 4:
        raise _unsupported(where, f"is supported on N×C×H×W blobs; its input has shape {list(shape)}")
    if param.pool not in (0, 1):
        raise _unsupported(where, "uses STOCHASTIC pooling; only MAX and AVE are supported")
    height, width = shape[2], shape[3]
    if param.global_pooling:
        kernel, stride, pad = (height, width), (1, 1), (0, 0)
    else:
        if not param.HasField("kernel_size") and not param.HasField("kernel_h"):
            raise _invalid(where, "has no kernel_size (or global_pooling)")
        kernel = _pair([param.kernel_size], param.kernel_h, param.kernel_w, param.HasField("kernel_h"), 1)
        stride = _pair([param.stride], param.stride_h, param.stride_w, param.HasField("stride_h"), 1)
        pad = _pair([param.pad], param.pad_h, param.pad_w, param.HasField("pad_h") or param.HasField("pad_w"), 0)
    if any(p >= k for p, k in zip(pad, kernel, strict=True)):
        raise _invalid(where, f"pads by {list(pad)} with a {list(kernel)} kernel; Caffe requires a smaller padding")
    ceil = not (param.HasField("round_mode") and param.round_mode == 1) and not (
        param.HasField("ceil_mode") and not param.ceil_mode
    )
    size = []
    for axis in (0, 1):
        extent = (shape[2 + axis] + 2 * pad[axis] - kernel[axis]) / stride[axis]
        pooled = (math.ceil(extent) if ceil else math.floor(extent)) + 1
        # Caffe drops a last window that would start inside the bottom/right padding.
        if pad[axis] and (pooled - 1) * stride[axis] >= shape[2 + axis] + pad[axis]:
            pooled -= 1
        size.append(pooled)
    layer.attributes = {
        "method": "max" if param.pool == 0 else "average",
        "kernel": kernel,
        "stride": stride,
        "pad": pad,
        "global": bool(param.global_pooling),
    }
    return (shape[0], shape[1], size[0], size[1])


def _relu(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    layer.attributes = {"negative_slope": float(layer.param.negative_slope)}
    return layer.input_shapes[0]


def _prelu(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    shape = layer.input_shapes[0]
    channels = 1 if layer.param.channel_shared else (shape[1] if len(shape) > 1 else 1)
    layer.blobs = _weights(layer, where, caffemodel_label, [(channels,)])
    return shape


def _lrn(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    if len(shape) != 4:
        raise _unsupported(where, f"is supported on N×C×H×W blobs; its input has shape {list(shape)}")
    if param.local_size % 2 == 0:
        raise _invalid(where, f"has local_size {param.local_size}; Caffe requires an odd size")
    layer.attributes = {
        "size": int(param.local_size),
        "alpha": float(param.alpha),
        "beta": float(param.beta),
        "k": float(param.k),
        "across_channels": param.norm_region == 0,
    }
    return shape


def _axis(axis: int, rank: int, where: str) -> int:
    if not -rank <= axis < rank:
        raise _invalid(where, f"names axis {axis} of a {rank}-dimensional blob")
    return axis % rank


def _inner_product(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    axis = _axis(int(param.axis), len(shape), where)
    inputs, outputs = math.prod(shape[axis:]), int(param.num_output)
    if outputs <= 0:
        raise _invalid(where, "has no num_output")
    weight_shape = (inputs, outputs) if param.transpose else (outputs, inputs)
    layer.blobs = _weights(layer, where, caffemodel_label, [weight_shape] + ([(outputs,)] if param.bias_term else []))
    if param.transpose:
        layer.blobs[0] = np.ascontiguousarray(layer.blobs[0].T)
    layer.attributes = {"axis": axis}
    return (*shape[:axis], outputs)


def _softmax(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    shape = layer.input_shapes[0]
    layer.attributes = {"axis": _axis(int(layer.param.axis), len(shape), where)}
    return shape


def _concat(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    axis = _axis(int(param.concat_dim if param.HasField("concat_dim") else param.axis), len(shape), where)
    for other in layer.input_shapes[1:]:
        if len(other) != len(shape) or any(
            a != b for index, (a, b) in enumerate(zip(shape, other, strict=True)) if index != axis
        ):
            raise _invalid(
                where, f"concatenates blobs of shapes {[list(s) for s in layer.input_shapes]} along axis {axis}"
            )
    layer.attributes = {"axis": axis}
    return (*shape[:axis], sum(other[axis] for other in layer.input_shapes), *shape[axis + 1 :])


def _eltwise(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    if any(other != shape for other in layer.input_shapes[1:]):
        raise _invalid(where, f"combines blobs of different shapes {[list(s) for s in layer.input_shapes]}")
    coefficients = [float(value) for value in param.coeff]
    if coefficients and (param.operation != 1 or len(coefficients) != len(layer.bottoms)):
        raise _invalid(where, "has coeff values that are not one per bottom of a SUM")
    layer.attributes = {"operation": {0: "prod", 1: "sum", 2: "max"}[param.operation], "coefficients": coefficients}
    return shape


def _batch_norm(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    if param.HasField("use_global_stats") and not param.use_global_stats:
        raise _unsupported(
            where,
            "sets use_global_stats false, so it would normalise with each batch's statistics; "
            "deployed networks use the stored mean and variance",
        )
    channels = shape[1] if len(shape) > 1 else 1
    mean, variance, factor = _weights(layer, where, caffemodel_label, [(channels,), (channels,), (1,)])
    scale = 0.0 if factor[0] == 0 else 1.0 / float(factor[0])
    layer.blobs = [mean * np.float32(scale), variance * np.float32(scale)]
    layer.attributes = {"eps": float(param.eps)}
    return shape


def _scale(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    axis = _axis(int(param.axis), len(shape), where) if len(shape) else 0
    if len(layer.bottoms) == 2:
        factor_shape = layer.input_shapes[1]
        if tuple(shape[axis : axis + len(factor_shape)]) != tuple(factor_shape):
            raise _invalid(
                where, f"scales a blob of shape {list(shape)} by one of shape {list(factor_shape)} at axis {axis}"
            )
        # The factor is the second bottom; the only weight is the bias, when there is one.
        layer.blobs = _weights(layer, where, caffemodel_label, [factor_shape] if param.bias_term else [])
        layer.attributes = {"axis": axis, "factor_shape": factor_shape, "factor_from_bottom": True}
        return shape
    count = len(shape) - axis if param.num_axes == -1 else int(param.num_axes)
    factor_shape = tuple(shape[axis : axis + count])
    layer.blobs = _weights(layer, where, caffemodel_label, [factor_shape] * (2 if param.bias_term else 1))
    layer.attributes = {"axis": axis, "factor_shape": factor_shape, "factor_from_bottom": False}
    return shape


def _flatten(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    shape = layer.input_shapes[0]
    start = _axis(int(layer.param.axis), len(shape), where)
    end = _axis(int(layer.param.end_axis), len(shape), where)
    if end < start:
        raise _invalid(where, f"flattens from axis {start} to an earlier axis {end}")
    layer.attributes = {"keeps_batch": start > 0}
    return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


def _reshape(layer: Layer, where: str, caffemodel_label: str) -> Shape:
    param = layer.param
    shape = layer.input_shapes[0]
    axis = int(param.axis)
    start = axis % (len(shape) + 1) if axis < 0 else axis
    if start > len(shape):
        raise _invalid(where, f"starts at axis {axis} of a {len(shape)}-dimensional blob")
    end = len(shape) if param.num_axes == -1 else start + int(param.num_axes)
    if end > len(shape):
        raise _invalid(where, f"reshapes axes {start} to {end} of a {len(shape)}-dimensional blob")
    wanted = [int(dim) for dim in param.shape.dim]
    middle = []
    for index, dim in enumerate(wanted):
        if dim == 0:
            if start + index >= len(shape):
                raise _invalid(where, f"copies dimension {start + index} (dim: 0) that its input does not have")
            middle.append(shape[start + index])
        else:
            middle.append(dim)
    if middle.count(-1) > 1:
        raise _invalid(where, "infers more than one dimension (dim: -1)")
    if -1 in middle:
        known = math.prod(dim for dim in middle if dim != -1) * math.prod(shape[:start]) * math.prod(shape[end:])
        total = math.prod(shape)
        if known == 0 or total % known:
            raise _invalid(where, f"cannot infer dim -1 reshaping {list(shape)} to {wanted}")
        middle[middle.index(-1)] = total // known
    result = (*shape[:start], *middle, *shape[end:])
    if math.prod(result) != math.prod(shape):
        raise _invalid(where, f"reshapes {list(shape)} ({math.prod(shape)} values) to {list(result)}")
    keeps_batch = start > 0 or (bool(wanted) and wanted[0] == 0)
    layer.attributes = {"keeps_batch": keeps_batch}
    return result


_RESOLVERS = {
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
    "Flatten": _flatten,
    "Reshape": _reshape,
}
