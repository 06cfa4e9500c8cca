"""Caffe networks written as Caffe writes them: deploy.prototxt text and a binary .caffemodel.

No Caffe build installs here, so the weights file is encoded by hand in protobuf's wire format,
with the field numbers of Caffe's `caffe.proto` (NetParameter.layer = 100, LayerParameter.name = 1,
blobs = 7, BlobProto.shape = 7, data = 5 packed, BlobShape.dim = 1 packed): independent of the
converter's own message definitions, which only read them. Weights are random, scaled by fan-in
so activations stay of order one through deep nets. Used by test_converter_caffe.py, the e2e test
of the seed's request and bench/convert.py.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ---- protobuf wire format ------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def blob_proto(array: np.ndarray, legacy_4d: bool = False, float16: bool = False) -> bytes:
    """A BlobProto: `shape` (7) with packed dims, packed float `data` (5); or the legacy num/channels/height/width.
    `float16`: as NVCaffe stores half-precision weights, `raw_data_type` (10) FLOAT16 = 2 and the bytes in
    `raw_data` (12)."""
    array = np.asarray(array, dtype=np.float32)
    if legacy_4d:
        dims = (1,) * (4 - array.ndim) + array.shape
        head = b"".join(_key(number, 0) + _varint(dim) for number, dim in zip((1, 2, 3, 4), dims, strict=True))
    else:
        head = _bytes_field(7, _bytes_field(1, b"".join(_varint(dim) for dim in array.shape)))
    if float16:
        return head + _key(10, 0) + _varint(2) + _bytes_field(12, array.astype("<f2").tobytes())
    return head + _bytes_field(5, struct.pack(f"<{array.size}f", *array.ravel()))


def caffemodel(layers: list[tuple[str, str, list[np.ndarray]]], v1: bool = False, float16: bool = False) -> bytes:
    """A NetParameter holding each layer's name, type and blobs (`layers` (2) in Caffe's V1 format; NVCaffe's
    half-precision `raw_data` with `float16`)."""
    out = bytearray(_bytes_field(1, b"zoo"))
    for name, kind, blobs in layers:
        if v1:
            body = _bytes_field(4, name.encode()) + b"".join(
                _bytes_field(6, blob_proto(b, legacy_4d=True)) for b in blobs
            )
            out += _bytes_field(2, body)
        else:
            body = _bytes_field(1, name.encode()) + _bytes_field(2, kind.encode())
            body += b"".join(_bytes_field(7, blob_proto(blob, float16=float16)) for blob in blobs)
            out += _bytes_field(100, body)
    return bytes(out)


def mean_binaryproto(mean: np.ndarray) -> bytes:
    """A mean file as Caffe's compute_image_mean writes it: a BlobProto of shape 1×C×H×W (legacy dims)."""
    return blob_proto(mean[None], legacy_4d=True)


# ---- networks --------------------------------------------------------------------------------------

# The V1 format's enum names of the types these networks use (Caffe's V1LayerParameter.LayerType).
V1_TYPES = {
    "Convolution": "CONVOLUTION",
    "Deconvolution": "DECONVOLUTION",
    "ReLU": "RELU",
    "Pooling": "POOLING",
    "LRN": "LRN",
    "Concat": "CONCAT",
    "Eltwise": "ELTWISE",
    "Dropout": "DROPOUT",
    "InnerProduct": "INNER_PRODUCT",
    "Softmax": "SOFTMAX",
    "SoftmaxWithLoss": "SOFTMAX_LOSS",
    "Accuracy": "ACCURACY",
    "Sigmoid": "SIGMOID",
    "TanH": "TANH",
    "Flatten": "FLATTEN",
}
_LEARNING_RATES = "param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }"


@dataclass
class CaffeNet:
    """A network under construction: prototxt text, weights by layer, and each blob's channel count."""

    name: str
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    text: list[str] = field(default_factory=list)
    weights: list[tuple[str, str, list[np.ndarray]]] = field(default_factory=list)
    channels: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def layer(
        self, name: str, kind: str, bottoms: list[str], top: str, body: str = "", blobs: list[np.ndarray] | None = None
    ) -> str:
        lines = [f'layer {{\n  name: "{name}"\n  type: "{kind}"']
        lines += [f'  bottom: "{bottom}"' for bottom in bottoms]
        lines.append(f'  top: "{top}"')
        if body:
            lines.append("  " + body)
        self.text.append("\n".join(lines) + "\n}\n")
        if blobs:
            self.weights.append((name, kind, blobs))
        return top

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        dims = " ".join(f"dim: {dim}" for dim in shape)
        self.text.append(
            f'layer {{\n  name: "{name}"\n  type: "Input"\n  top: "{name}"\n'
            f"  input_param {{ shape {{ {dims} }} }}\n}}\n"
        )
        self.channels[name] = shape[1]
        self.inputs[name] = shape
        return name

    def conv(
        self,
        name: str,
        bottom: str,
        outputs: int,
        kernel: int,
        stride: int = 1,
        pad: int = 0,
        group: int = 1,
        dilation: int = 1,
        deconv: bool = False,
    ) -> str:
        channels = self.channels[bottom]
        fan_in = channels // group * kernel * kernel
        shape = (channels, outputs // group, kernel, kernel) if deconv else (outputs, channels // group, kernel, kernel)
        weight = self.rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
        bias = self.rng.normal(0, 0.1, outputs).astype(np.float32)
        body = (
            _LEARNING_RATES + "\n"
            f"  convolution_param {{ num_output: {outputs} "
            f"kernel_size: {kernel} stride: {stride} pad: {pad}"
            + (f" group: {group}" if group > 1 else "")
            + (f" dilation: {dilation}" if dilation > 1 else "")
            + ' weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.2 } }'
        )
        self.channels[name] = outputs
        return self.layer(name, "Deconvolution" if deconv else "Convolution", [bottom], name, body, [weight, bias])

    def relu(self, bottom: str, slope: float = 0.0) -> str:
        body = f"relu_param {{ negative_slope: {slope} }}" if slope else ""
        return self.layer(f"relu_{bottom}", "ReLU", [bottom], bottom, body)  # in place, as Caffe nets do

    def pool(
        self,
        name: str,
        bottom: str,
        method: str,
        kernel: int = 0,
        stride: int = 1,
        pad: int = 0,
        global_pooling: bool = False,
    ) -> str:
        self.channels[name] = self.channels[bottom]
        if global_pooling:
            return self.layer(
                name, "Pooling", [bottom], name, f"pooling_param {{ pool: {method} global_pooling: true }}"
            )
        return self.layer(
            name,
            "Pooling",
            [bottom],
            name,
            f"pooling_param {{ pool: {method} kernel_size: {kernel} stride: {stride} pad: {pad} }}",
        )

    def lrn(self, name: str, bottom: str, size: int = 5, within: bool = False) -> str:
        self.channels[name] = self.channels[bottom]
        region = " norm_region: WITHIN_CHANNEL" if within else ""
        return self.layer(
            name, "LRN", [bottom], name, f"lrn_param {{ local_size: {size} alpha: 0.0001 beta: 0.75{region} }}"
        )

    def inner_product(self, name: str, bottom: str, outputs: int, inputs: int) -> str:
        weight = self.rng.normal(0, np.sqrt(1.0 / inputs), (outputs, inputs)).astype(np.float32)
        bias = self.rng.normal(0, 0.1, outputs).astype(np.float32)
        self.channels[name] = outputs
        return self.layer(
            name, "InnerProduct", [bottom], name, f"inner_product_param {{ num_output: {outputs} }}", [weight, bias]
        )

    def softmax(self, name: str, bottom: str) -> str:
        return self.layer(name, "Softmax", [bottom], name)

    def concat(self, name: str, bottoms: list[str]) -> str:
        self.channels[name] = sum(self.channels[bottom] for bottom in bottoms)
        return self.layer(name, "Concat", bottoms, name)

    def eltwise(
        self, name: str, bottoms: list[str], operation: str = "SUM", coefficients: list[float] | None = None
    ) -> str:
        self.channels[name] = self.channels[bottoms[0]]
        coeff = "".join(f" coeff: {value}" for value in coefficients or [])
        return self.layer(name, "Eltwise", bottoms, name, f"eltwise_param {{ operation: {operation}{coeff} }}")

    def batch_norm_scale(self, bottom: str) -> str:
        """BatchNorm (mean, variance, moving-average factor) then Scale with bias, in place, as in ResNet-50's."""
        channels = self.channels[bottom]
        factor = np.float32(4.0)
        mean = self.rng.normal(0, 0.5, channels).astype(np.float32) * factor
        variance = self.rng.uniform(0.5, 2.0, channels).astype(np.float32) * factor
        self.layer(
            f"bn_{bottom}",
            "BatchNorm",
            [bottom],
            bottom,
            "batch_norm_param { use_global_stats: true }",
            [mean, variance, np.array([factor])],
        )
        gamma = self.rng.uniform(0.5, 1.5, channels).astype(np.float32)
        beta = self.rng.normal(0, 0.2, channels).astype(np.float32)
        return self.layer(
            f"scale_{bottom}", "Scale", [bottom], bottom, "scale_param { bias_term: true }", [gamma, beta]
        )

    def prototxt(self) -> str:
        return f'name: "{self.name}"\n' + "".join(self.text)

    def v1_prototxt(self) -> str:
        """The same network in Caffe's format before 2015, as the model zoo's first files were written:
        `input:` with four `input_dim` each, `layers {}` with an enum `type`, `blobs_lr` and `weight_decay`."""
        head = "".join(
            f'input: "{name}"\n' + "".join(f"input_dim: {dim}\n" for dim in shape)
            for name, shape in self.inputs.items()
        )
        layers = []
        for text in self.text:
            if 'type: "Input"' in text:
                continue
            kind = re.search(r'type: "(\w+)"', text)
            if kind is None or kind.group(1) not in V1_TYPES:
                raise ValueError(f"no V1 layer type for {text!r}")
            text = text.replace(kind.group(0), f"type: {V1_TYPES[kind.group(1)]}").replace("layer {", "layers {", 1)
            layers.append(text.replace(_LEARNING_RATES, "blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0"))
        return f'name: "{self.name}"\n' + head + "".join(layers)

    def write(self, directory: Path, prototxt: str = "deploy.prototxt", weights: str = "snapshot.caffemodel") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / prototxt).write_text(self.prototxt())
        (directory / weights).write_bytes(caffemodel(self.weights))
        return directory


def _inception(net: CaffeNet, name: str, bottom: str, widths: tuple[int, int, int, int, int, int]) -> str:
    one, reduce3, three, reduce5, five, pool_projection = widths
    branch1 = net.relu(net.conv(f"{name}/1x1", bottom, one, 1))
    branch3 = net.relu(
        net.conv(f"{name}/3x3", net.relu(net.conv(f"{name}/3x3_reduce", bottom, reduce3, 1)), three, 3, pad=1)
    )
    branch5 = net.relu(
        net.conv(f"{name}/5x5", net.relu(net.conv(f"{name}/5x5_reduce", bottom, reduce5, 1)), five, 5, pad=2)
    )
    pooled = net.pool(f"{name}/pool", bottom, "MAX", 3, 1, 1)
    branch_pool = net.relu(net.conv(f"{name}/pool_proj", pooled, pool_projection, 1))
    return net.concat(f"{name}/output", [branch1, branch3, branch5, branch_pool])


# BVLC GoogLeNet's inception widths: 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection.
BVLC_INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
SMALL_INCEPTIONS = {"3a": (8, 8, 16, 4, 8, 8), "3b": (16, 8, 16, 4, 8, 8), "4a": (16, 8, 16, 4, 8, 8)}


def googlenet_shaped(size: int = 224, classes: int = 10, full: bool = False) -> CaffeNet:
    """BVLC GoogLeNet's deploy.prototxt layout: stem with LRN, ceil-rounded pooling, inception blocks,
    average pooling over the last map, dropout, classifier. `full` has all nine inception blocks at BVLC's
    widths (about 7 million weights); the default keeps 3a, 3b and 4a, narrower, for tests."""
    net = CaffeNet("GoogleNet")
    stem = (64, 64, 192) if full else (16, 16, 32)
    data = net.input("data", (10, 3, size, size))
    x = net.relu(net.conv("conv1/7x7_s2", data, stem[0], 7, 2, 3))
    x = net.lrn("pool1/norm1", net.pool("pool1/3x3_s2", x, "MAX", 3, 2))
    x = net.relu(net.conv("conv2/3x3_reduce", x, stem[1], 1))
    x = net.relu(net.conv("conv2/3x3", x, stem[2], 3, pad=1))
    x = net.pool("pool2/3x3_s2", net.lrn("conv2/norm2", x), "MAX", 3, 2)
    pools = 2
    for block, widths in (BVLC_INCEPTIONS if full else SMALL_INCEPTIONS).items():
        if block in ("4a", "5a"):
            x = net.pool(f"pool{int(block[0]) - 1}/3x3_s2", x, "MAX", 3, 2)
            pools += 1
        x = _inception(net, f"inception_{block}", x, widths)
    x = net.pool("pool5/7x7_s1", x, "AVE", _googlenet_final_size(size, pools), 1)
    x = net.layer("pool5/drop_7x7_s1", "Dropout", [x], x, "dropout_param { dropout_ratio: 0.4 }")
    x = net.inner_product("loss3/classifier", x, classes, net.channels[x])
    net.softmax("prob", x)
    return net


def _googlenet_final_size(size: int, pools: int) -> int:
    """Spatial size after conv1 and `pools` 3×3 stride-2 poolings with Caffe's ceil rounding (7 for 224 and 4)."""
    size = (size + 6 - 7) // 2 + 1  # conv1
    for _ in range(pools):
        size = -(-(size - 3) // 2) + 1
    return size


def alexnet_shaped(size: int = 67, classes: int = 10, full: bool = False) -> CaffeNet:
    """CaffeNet/AlexNet's layout: 11×11 stride 4, LRN after pooling, grouped convolutions, two dropout FC layers.
    `full` has BVLC CaffeNet's widths (96 … 4096, about 61 million weights: a 244 MB .caffemodel)."""
    widths = (96, 256, 384, 384, 256, 4096) if full else (16, 32, 32, 32, 16, 64)
    net = CaffeNet("CaffeNet" if full else "AlexNet")
    data = net.input("data", (1, 3, size, size))
    x = net.pool("pool1", net.relu(net.conv("conv1", data, widths[0], 11, 4)), "MAX", 3, 2)
    x = net.lrn("norm1", x)
    x = net.pool("pool2", net.relu(net.conv("conv2", x, widths[1], 5, pad=2, group=2)), "MAX", 3, 2)
    x = net.lrn("norm2", x)
    x = net.relu(net.conv("conv3", x, widths[2], 3, pad=1))
    x = net.relu(net.conv("conv4", x, widths[3], 3, pad=1, group=2))
    x = net.pool("pool5", net.relu(net.conv("conv5", x, widths[4], 3, pad=1, group=2)), "MAX", 3, 2)
    flat = widths[4] * _alexnet_final_size(size) ** 2
    x = net.relu(net.inner_product("fc6", x, widths[5], flat))
    x = net.layer("drop6", "Dropout", [x], x, "dropout_param { dropout_ratio: 0.5 }")
    x = net.relu(net.inner_product("fc7", x, widths[5], widths[5]))
    x = net.layer("drop7", "Dropout", [x], x, "dropout_param { dropout_ratio: 0.5 }")
    net.softmax("prob", net.inner_product("fc8", x, classes, widths[5]))
    return net


def _alexnet_final_size(size: int) -> int:
    size = (size - 11) // 4 + 1
    for _ in range(3):
        size = -(-(size - 3) // 2) + 1
    return size


def resnet_shaped(size: int = 64, classes: int = 10) -> CaffeNet:
    """ResNet's deploy layout: BatchNorm + Scale after each convolution, projection shortcuts, Eltwise sums,
    global average pooling."""
    net = CaffeNet("ResNet")
    data = net.input("data", (1, 3, size, size))
    x = net.relu(net.batch_norm_scale(net.conv("conv1", data, 16, 7, 2, 3)))
    x = net.pool("pool1", x, "MAX", 3, 2)
    for stage, (width, stride) in enumerate([(16, 1), (32, 2)], start=2):
        branch = net.relu(net.batch_norm_scale(net.conv(f"res{stage}a_branch2a", x, width, 3, stride, 1)))
        branch = net.batch_norm_scale(net.conv(f"res{stage}a_branch2b", branch, width, 3, 1, 1))
        shortcut = (
            x
            if stride == 1 and net.channels[x] == width
            else net.batch_norm_scale(net.conv(f"res{stage}a_branch1", x, width, 1, stride))
        )
        x = net.relu(net.eltwise(f"res{stage}a", [shortcut, branch]))
    x = net.pool("pool5", x, "AVE", global_pooling=True)
    net.softmax("prob", net.inner_product("fc", x, classes, net.channels[x]))
    return net


def every_layer(size: int = 24) -> CaffeNet:
    """The rest of the supported list in one small net: dilation, Deconvolution, PReLU, leaky ReLU, Sigmoid,
    TanH, Eltwise PROD/MAX and weighted SUM, LRN within channel, average pooling with padding and a ceil
    overhang, Scale by a second bottom, Flatten and Reshape."""
    net = CaffeNet("EveryLayer")
    data = net.input("data", (1, 3, size, size))
    a = net.conv("dilated", data, 8, 3, 1, 2, dilation=2)
    a = net.layer("prelu", "PReLU", [a], "prelu", "", [net.rng.uniform(0.05, 0.3, 8).astype(np.float32)])
    net.channels["prelu"] = 8
    b = net.relu(net.conv("leaky", data, 8, 3, 1, 1), slope=0.1)
    gate = net.layer("gate", "Sigmoid", [b], "gate")
    net.channels["gate"] = 8
    squashed = net.layer("squashed", "TanH", [a], "squashed")
    net.channels["squashed"] = 8
    product = net.eltwise("product", [squashed, gate], "PROD")
    maximum = net.eltwise("maximum", [a, b], "MAX")
    summed = net.eltwise("summed", [product, maximum], "SUM", [0.5, -1.5])
    scaled = net.layer("scaled", "Scale", [summed, gate], "scaled", "scale_param { axis: 0 }")
    net.channels["scaled"] = 8
    normed = net.lrn("within", scaled, 3, within=True)
    pooled = net.pool("avg_pad_ceil", normed, "AVE", 3, 2, 1)
    up = net.conv("upsample", pooled, 4, 4, 2, 1, deconv=True)
    down = net.pool("max_pad_ceil", up, "MAX", 3, 2, 1)
    flat = net.layer("flat", "Flatten", [down], "flat")
    net.layer("reshaped", "Reshape", [flat], "reshaped", "reshape_param { shape { dim: 0 dim: 4 dim: -1 } }")
    return net


def rectangular(size: tuple[int, int] = (17, 19)) -> CaffeNet:
    """The `_h`/`_w` parameter forms: a 3×5 convolution with its own strides and pads, a grouped
    Deconvolution, a 2×3 average pooling with padding."""
    net = CaffeNet("Rectangular")
    data = net.input("data", (1, 4, *size))
    weight = net.rng.normal(0, 0.2, (6, 4, 3, 5)).astype(np.float32)
    rect_param = "convolution_param { num_output: 6 kernel_h: 3 kernel_w: 5 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 2 }"
    x = net.layer(
        "rect", "Convolution", [data], "rect", rect_param, [weight, net.rng.normal(0, 0.1, 6).astype(np.float32)]
    )
    up_weight = net.rng.normal(0, 0.2, (6, 2, 3, 3)).astype(np.float32)
    up_param = "convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2 }"
    x = net.layer("up", "Deconvolution", [x], "up", up_param, [up_weight, net.rng.normal(0, 0.1, 4).astype(np.float32)])
    pool_param = "pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1 }"
    net.layer("rect_pool", "Pooling", [x], "rect_pool", pool_param)
    return net
