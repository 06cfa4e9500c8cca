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
