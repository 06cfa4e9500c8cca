"""A dataset version's transformation set, declared as data and applied to each image and its boxes.

Steps (one key each): ``resize`` `WxH` (squash, Pillow BILINEAR as the preprocessing resizes), ``center_crop``
`WxH` (the centre part; a side smaller than asked is kept whole), ``grayscale`` (ITU-R 601 luma, as
``color_channels: L``), ``horizontal_flip``, and ``jpeg_quality`` (a JPEG re-encode at that quality: as the
last step, the stored file; earlier, later steps see its artefacts). Otherwise the result is stored as PNG.
Boxes are ``[xmin, ymin, xmax, ymax]`` in pixels; a box cropped away entirely is dropped.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .images import DEFAULT_MAX_PIXELS, decode_image

Boxes = list[list[float]]


@dataclass
class TransformedImage:
    data: bytes
    width: int
    height: int
    boxes: Boxes
    kept: list[int]  # the indices of the input boxes still present, in order


def _size(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


def _apply(picture: Image.Image, boxes: Boxes, step: Mapping[str, Any]) -> tuple[Image.Image, Boxes]:
    width, height = picture.size
    if step.get("resize"):
        new_width, new_height = _size(step["resize"])
        sx, sy = new_width / width, new_height / height
        resized = picture.resize((new_width, new_height), Image.Resampling.BILINEAR)
        return resized, [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]
    if step.get("center_crop"):
        crop_width, crop_height = _size(step["center_crop"])
        crop_width, crop_height = min(crop_width, width), min(crop_height, height)
        left, top = (width - crop_width) // 2, (height - crop_height) // 2
        cropped = picture.crop((left, top, left + crop_width, top + crop_height))
        moved = []
        for b in boxes:
            x1, y1 = max(b[0] - left, 0.0), max(b[1] - top, 0.0)
            x2, y2 = min(b[2] - left, float(crop_width)), min(b[3] - top, float(crop_height))
            moved.append([x1, y1, x2, y2] if x2 > x1 and y2 > y1 else [])
        return cropped, moved
    if step.get("grayscale"):
        return picture.convert("L"), boxes
    if step.get("horizontal_flip"):
        flipped = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return flipped, [[width - b[2], b[1], width - b[0], b[3]] if b else [] for b in boxes]
    return picture, boxes


def transform_image(
    data: bytes,
    steps: Sequence[Mapping[str, Any]],
    boxes: Sequence[Sequence[float]] = (),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> TransformedImage:
    """Decode `data`, apply `steps` in order, encode (JPEG at the last `jpeg_quality` given, else PNG)."""
    picture = decode_image(data, max_pixels)
    current: Boxes = [list(box) for box in boxes]
    for position, step in enumerate(steps):
        if step.get("jpeg_quality"):
            encoded = io.BytesIO()
            picture.save(encoded, format="JPEG", quality=int(step["jpeg_quality"]))
            if position == len(steps) - 1:
                return _result(encoded.getvalue(), picture.size, current)
            # Further steps see the re-encoded pixels, artefacts included, as they would in production.
            picture = Image.open(io.BytesIO(encoded.getvalue()))
            picture.load()
            continue
        picture, current = _apply(picture, current, step)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return _result(buffer.getvalue(), picture.size, current)


def _result(data: bytes, size: tuple[int, int], current: Boxes) -> TransformedImage:
    kept = [index for index, box in enumerate(current) if box]
    return TransformedImage(
        data=data,
        width=size[0],
        height=size[1],
        boxes=[[round(value, 3) for value in current[index]] for index in kept],
        kept=kept,
    )
