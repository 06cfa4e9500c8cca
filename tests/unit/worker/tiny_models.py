"""Tiny ONNX models built in the tests (no downloads), and images whose expected outputs are obvious."""

from __future__ import annotations

import io

import numpy as np
import onnx
from onnx import TensorProto, helper
from PIL import Image


def channel_mean_model(height: int | None = 4, width: int | None = 4, batch: int | str | None = "N") -> bytes:
    """NHWC float32 image → `mean` (N×3, per-channel mean) and `scaled` (N×3, twice the mean)."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, height, width, 3])
    mean = helper.make_tensor_value_info("mean", TensorProto.FLOAT, [batch, 3])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [batch, 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "two"], ["scaled"]),
        ],
        "channel_mean",
        [image],
        [mean, scaled],
        initializer=[axes, two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def solid_image(color: tuple[int, int, int], size: tuple[int, int] = (32, 24), format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=format)
    return buffer.getvalue()


def expected_mean(color: tuple[int, int, int]) -> list[float]:
    return [float(value) for value in np.asarray(color, dtype=np.float32)]


def yolo_v8_style_detector() -> bytes:
    """As YOLO tool chains export to ONNX: NCHW `images` in [0, 1] and one raw head `output0` of
    (4 + K) × anchors, here K = 2 and two anchors whose boxes are fixed in the 64×64 input's pixels
    (centre and size): anchor 0 at (16, 16) 16×16 scores (red mean, 0), anchor 1 at (48, 40) 16×32 scores
    (0, green mean)."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])
    head = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 6, 2])
    constants = [
        helper.make_tensor("axes_hw", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("axis_1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis_2", TensorProto.INT64, [1], [2]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("centre_size", TensorProto.FLOAT, [2, 4], [16, 16, 16, 16, 48, 40, 16, 32]),
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [2]),
        helper.make_tensor("diagonal", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes_hw"], ["mean"], keepdims=0),  # N×3
        helper.make_node("ReduceSum", ["mean", "axis_1"], ["total"], keepdims=1),  # N×1
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Unsqueeze", ["nothing", "axis_2"], ["nothing3"]),  # N×1×1
        helper.make_node("Add", ["nothing3", "centre_size"], ["boxes"]),  # N×2×4
        helper.make_node("Slice", ["mean", "start", "end", "axis_1"], ["red_green"]),  # N×2
        helper.make_node("Unsqueeze", ["red_green", "axis_1"], ["red_green3"]),  # N×1×2
        helper.make_node("Mul", ["red_green3", "diagonal"], ["scores"]),  # N×2 anchors×2 classes
        helper.make_node("Concat", ["boxes", "scores"], ["rows"], axis=2),  # N×2×6
        helper.make_node("Transpose", ["rows"], ["output0"], perm=[0, 2, 1]),  # N×6×2
    ]
    graph = helper.make_graph(nodes, "yolo_v8_style", [images], [head], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ssd_style_detector() -> bytes:
    """SSD-style outputs: `deltas` N×2×4 (zeros: each box is its anchor), `logits` N×2×3 with a background
    column first (anchor 0: red mean × 8 for label 0, anchor 1: green mean × 8 for label 1), and `anchors`
    2×4 as corners with no batch dimension, the same for every image."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 4, 4, 3])
    outputs = [
        helper.make_tensor_value_info("deltas", TensorProto.FLOAT, ["N", 2, 4]),
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, 3]),
        helper.make_tensor_value_info("anchors", TensorProto.FLOAT, [2, 4]),
    ]
    constants = [
        helper.make_tensor("axes_hw", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("axis_1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis_2", TensorProto.INT64, [1], [2]),
        helper.make_tensor("zeros", TensorProto.FLOAT, [2, 4], [0.0] * 8),
        helper.make_tensor("corners", TensorProto.FLOAT, [2, 4], [0.1, 0.2, 0.5, 0.6, 0.6, 0.5, 0.9, 0.9]),
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [2]),
        # Logits: background 0; label 0 of anchor 0 = 8 × red, label 1 of anchor 1 = 8 × green.
        helper.make_tensor("spread", TensorProto.FLOAT, [2, 3], [0, 8, 0, 0, 0, 8]),
        helper.make_tensor("diagonal", TensorProto.FLOAT, [2, 3], [0, 1, 0, 0, 0, 1]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes_hw"], ["mean"], keepdims=0),  # N×3
        helper.make_node("Slice", ["mean", "start", "end", "axis_1"], ["red_green"]),  # N×2
        helper.make_node("Unsqueeze", ["red_green", "axis_2"], ["red_green3"]),  # N×2×1
        helper.make_node("Mul", ["red_green3", "spread"], ["logits"]),  # N×2×3
        helper.make_node("Mul", ["red_green3", "diagonal"], ["mask"]),  # N×2×3
        helper.make_node("ReduceSum", ["mask", "axis_2"], ["per_anchor"], keepdims=1),  # N×2×1
        helper.make_node("Mul", ["per_anchor", "zeros"], ["deltas"]),  # N×2×4 zeros
        helper.make_node("Identity", ["corners"], ["anchors"]),
    ]
    graph = helper.make_graph(nodes, "ssd_style", [image], outputs, initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
