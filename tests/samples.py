"""Request data the tests share: the v0.7 seed's preprocessing example."""

from __future__ import annotations

from typing import Any

IMAGE: dict[str, Any] = {
    "dimension_order": "NCHW",
    "target_size": "224x224",
    "resize_type": "SQUASH",
    "mean_file": "mean.npy",
    "color_channels": "BGR",
    "pixel_scaling": 255.0,
    "data_type": "FLOAT32",
}
PREPROCESSING: dict[str, Any] = {"inputs": [{"tensor_name": "data", "image": IMAGE}], "batched_output": True}
