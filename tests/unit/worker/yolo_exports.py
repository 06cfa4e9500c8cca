"""Small YOLO detectors written in torch and exported to ONNX as the YOLO tool chains export theirs.

The heads decode as the real ones do at export time, so their ONNX output is what a user uploads:
- ``YoloV5StyleDetector`` (YOLOv5, YOLOv7): per level, ``3 × (5 + K)`` channels per cell, all through a
  sigmoid; centre ``(2·σ(t) − 0.5 + cell) · stride``, size ``(2·σ(t))² · anchor``; ``output0`` is
  ``[batch, anchors, 5 + K]`` of ``cx, cy, w, h, objectness, K class scores`` in input pixels.
- ``YoloV8StyleDetector`` (YOLOv8, YOLO11): per level, a distribution over ``bins`` distances for each
  side of the box (DFL: softmax, then its expectation) from the cell's centre point, then
  ``cx, cy, w, h`` times the stride, and K sigmoid class scores; ``output0`` is
  ``[batch, 4 + K, anchors]``, no objectness.
- ``YoloEnd2EndStyleDetector`` (YOLOv10, YOLO26 by default): the v8-style head, its boxes as corners, then
  NMS-free: a top-k of the ``MAX_DETECTIONS`` best (anchor, class) scores, zero rows when the head has fewer
  anchors; ``output0`` is ``[batch, 300, 6]`` of ``x1, y1, x2, y2, score, class id`` in input pixels.

Both see the image through a mean of each ``stride × stride`` cell (levels of stride 16 and 32), with
1×1 convolutions whose weights make every number computable by hand:
- label 0 scores σ(gain · (red − blue − 0.5)) and label 1 σ(gain · (green − blue − 0.5)) for the cell's
  mean colour in [0, 1]: 1 on a red (label 0), green (label 1) or yellow (both) cell, 0 on black or white
  (white is the FILL padding);
- boxes do not depend on the image: v5 boxes are centred on their cell with their anchor's size, v8 boxes
  reach ``distances`` (left, top, right, bottom, in strides) from the cell's centre.

``export_onnx`` writes them as Ultralytics and YOLOv5's ``export.py`` do with ``dynamic=True``:
``images`` ``[batch, 3, height, width]`` → ``output0``, dynamic batch, height, width and anchors, the
TorchScript-based exporter, constant folding. The end2end export keeps its height and width (the top-k
count depends on the anchors), as Ultralytics' default ``dynamic=False`` does; its batch stays dynamic.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

STRIDES = (16, 32)
LABELS = 2
GAIN = 200.0  # large enough that a cell's colour answers a score of 0 or 1, whatever the resize blurs
# Ultralytics exports at opset min(torch's highest - 1, 20) with torch >= 2.9; YOLOv5's export.py at 17.
V8_OPSET = 20
V5_OPSET = 17
MAX_DETECTIONS = 300  # Ultralytics' max_det: the rows of an end2end head


def _colour_classes(weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Rows of a 1×1 convolution over the mean RGB: label 0 from red − blue, label 1 from green − blue."""
    for label, channel in enumerate((0, 1)):
        weight[label, channel] = GAIN
        weight[label, 2] = -GAIN
        bias[label] = -GAIN / 2


class YoloV5StyleDetector(nn.Module):
    """Two levels (strides 16 and 32) of three anchors per cell, YOLOv5's head as it decodes for export."""

    def __init__(self, anchors: Sequence[Sequence[tuple[int, int]]], objectness: Sequence[Sequence[float]]) -> None:
        super().__init__()
        self.per_anchor = 5 + LABELS
        self.heads = nn.ModuleList(nn.Conv2d(3, 3 * self.per_anchor, 1) for _ in STRIDES)
        self.register_buffer("anchor_sizes", torch.tensor(anchors, dtype=torch.float32).view(len(STRIDES), 3, 2))
        with torch.no_grad():
            for head, level_objectness in zip(self.heads, objectness, strict=True):
                head.weight.zero_()
                head.bias.zero_()  # σ(0) = 0.5: centred on the cell, the anchor's size
                for anchor, logit in enumerate(level_objectness):
                    first = anchor * self.per_anchor
                    head.bias[first + 4] = logit
                    _colour_classes(
                        head.weight[first + 5 : first + 5 + LABELS, :, 0, 0], head.bias[first + 5 : first + 5 + LABELS]
                    )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = []
        for level, stride in enumerate(STRIDES):
            cells = self.heads[level](functional.avg_pool2d(images, stride))
            batch, _, height, width = cells.shape
            cells = cells.view(batch, 3, self.per_anchor, height, width).permute(0, 1, 3, 4, 2).sigmoid()
            ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            grid = torch.stack((xs, ys), 2).view(1, 1, height, width, 2).float()
            centre = (cells[..., 0:2] * 2 - 0.5 + grid) * stride
            size = (cells[..., 2:4] * 2) ** 2 * self.anchor_sizes[level].view(1, 3, 1, 1, 2)
            rows.append(torch.cat((centre, size, cells[..., 4:]), 4).view(batch, -1, self.per_anchor))
        return torch.cat(rows, 1)


class YoloV8StyleDetector(nn.Module):
    """Two levels (strides 16 and 32) of one anchor point per cell, YOLOv8's head with its DFL box decode."""

    def __init__(self, distances: tuple[int, int, int, int], bins: int = 4) -> None:
        super().__init__()
        self.bins = bins
        self.box_heads = nn.ModuleList(nn.Conv2d(3, 4 * bins, 1) for _ in STRIDES)
        self.class_heads = nn.ModuleList(nn.Conv2d(3, LABELS, 1) for _ in STRIDES)
        self.register_buffer("bin_values", torch.arange(bins, dtype=torch.float32).view(1, 1, bins, 1))
        with torch.no_grad():
            for box_head, class_head in zip(self.box_heads, self.class_heads, strict=True):
                box_head.weight.zero_()
                box_head.bias.zero_()
                for side, distance in enumerate(distances):  # one bin far above the others: its distance
                    box_head.bias[side * bins + distance] = 30.0
                class_head.weight.zero_()
                _colour_classes(class_head.weight[:, :, 0, 0], class_head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, scores = [], []
        for level, stride in enumerate(STRIDES):
            features = functional.avg_pool2d(images, stride)
            sides = self.box_heads[level](features)
            batch, _, height, width = sides.shape
            distribution = sides.view(batch, 4, self.bins, -1).softmax(2)
            distances = (distribution * self.bin_values).sum(2)  # left, top, right, bottom in strides
            ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            points = torch.stack((xs, ys)).view(1, 2, -1).float() + 0.5
            top_left, bottom_right = points - distances[:, :2], points + distances[:, 2:]
            boxes.append(torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), 1) * stride)
            scores.append(self.class_heads[level](features).view(batch, LABELS, -1).sigmoid())
        return torch.cat((torch.cat(boxes, 2), torch.cat(scores, 2)), 1)


class YoloEnd2EndStyleDetector(nn.Module):
    """The v8-style head made NMS-free: a top-k over every (anchor, class) score, as YOLOv10 and YOLO26 end."""

    def __init__(self, distances: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.head = YoloV8StyleDetector(distances)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        head = self.head(images).transpose(1, 2)  # [batch, anchors, 4 + K]
        centre, size, scores = head[..., 0:2], head[..., 2:4], head[..., 4:]
        boxes = torch.cat((centre - size / 2, centre + size / 2), 2)
        # Fewer anchors than the top-k needs (a small input): zero anchors, whose rows score 0, make up the rest.
        missing = max(0, -(-MAX_DETECTIONS // LABELS) - int(scores.shape[1]))
        boxes = functional.pad(boxes, (0, 0, 0, missing))
        scores = functional.pad(scores, (0, 0, 0, missing))
        best, index = scores.flatten(1).topk(MAX_DETECTIONS)  # best first over anchor × class
        anchor, label = index // LABELS, index % LABELS
        kept = boxes.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4))
        return torch.cat((kept, best.unsqueeze(-1), label.unsqueeze(-1).float()), 2)


def export_onnx(module: nn.Module, layout: str, size: int = 64) -> bytes:
    """The module as ``model.onnx`` bytes, exported as its tool chain exports: ``dynamic=True`` for raw heads,
    a fixed height and width for an end2end one."""
    if layout == "end2end":
        dynamic: dict[str, dict[int, str]] = {"images": {0: "batch"}, "output0": {0: "batch"}}
    else:
        anchors_axis = 1 if layout == "v5" else 2
        dynamic = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", anchors_axis: "anchors"}}
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (torch.zeros(1, 3, size, size),),
        buffer,
        input_names=["images"],
        output_names=["output0"],
        opset_version=V5_OPSET if layout == "v5" else V8_OPSET,
        do_constant_folding=True,
        dynamic_axes=dynamic,
        dynamo=False,
    )
    return buffer.getvalue()
