"""Detection results drawn on the picture they came from (Pillow): a box and a label per object."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))
WRITABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def boxes_of(result: Any) -> list[dict[str, Any]]:
    """The boxes of a task's data as `{"box": [x1, y1, x2, y2], "label", "score"}`: a network's detections as
    they are, and a recognition's predicted regions (`roi.bbox`)."""
    outputs = result.get("outputs") if isinstance(result, dict) else None
    boxes = []
    for item in outputs or []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("box"), list):
            boxes.append(item)
        for predicted in ((item.get("labels") or {}).get("predicted") or []) if "labels" in item else []:
            bbox = (predicted.get("roi") or {}).get("bbox") if isinstance(predicted, dict) else None
            if isinstance(bbox, dict):
                corners = [float(bbox[key]) for key in ("xmin", "ymin", "xmax", "ymax")]
                boxes.append({"box": corners, "label": predicted.get("label_name"), "score": predicted.get("score")})
    return boxes


def draw_boxes(image_bytes: bytes, boxes: Sequence[dict[str, Any]], target: Path) -> Path:
    """Write the picture with each box outlined and labelled; boxes are in the original picture's pixels.

    The service applies the EXIF orientation before inference, so the picture is turned the same way
    here. Colours follow the label, so one class keeps one colour across pictures.
    """
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    with Image.open(io.BytesIO(image_bytes)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    canvas = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(11, picture.height // 40))
    line = max(2, min(picture.size) // 150)
    labels: list[str] = []
    for item in boxes:
        label = str(item.get("label", ""))
        if label not in labels:
            labels.append(label)
        color = PALETTE[labels.index(label) % len(PALETTE)]
        x1, y1, x2, y2 = (float(value) for value in item["box"])
        canvas.rectangle((x1, y1, x2, y2), outline=color, width=line)
        caption = f"{label} {float(item.get('score', 0.0)):.2f}"
        left, top, right, bottom = canvas.textbbox((x1, y1), caption, font=font)
        height = bottom - top
        # The caption sits above the box, or inside its top edge when the box touches the picture's top.
        caption_top = y1 - height - 2 * line if y1 - height - 2 * line >= 0 else y1
        canvas.rectangle((x1, caption_top, x1 + (right - left) + 2 * line, caption_top + height + 2 * line), fill=color)
        canvas.text((x1 + line, caption_top + line - (top - y1)), caption, fill=(255, 255, 255), font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() not in WRITABLE_SUFFIXES:
        target = target.with_suffix(".png")
    picture.save(target)
    return target
