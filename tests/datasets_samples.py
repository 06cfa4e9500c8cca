"""Dataset archives made by the tests with known answers: images saved by Pillow, labels in each layout."""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile
from typing import Any

from PIL import Image

COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "bird": (40, 40, 200)}


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (24, 16), seed: int = 0) -> bytes:
    """A small JPEG whose pixels vary with `seed`, so no two items are the same file."""
    picture = Image.new("RGB", size, colour)
    rng = random.Random(seed)
    for _ in range(8):
        picture.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), (rng.randrange(256),) * 3)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def zip_archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def folder_per_class(per_class: dict[str, int], broken: int = 0, wrapper: str = "pets/") -> dict[str, bytes]:
    """`pets/<class>/<n>.jpg` for each class, plus `broken` files that are not images despite their name."""
    files = {}
    for label, count in per_class.items():
        for n in range(count):
            files[f"{wrapper}{label}/{n:04d}.jpg"] = jpeg(
                COLOURS.get(label, (9, 9, 9)), seed=n * 31 + sum(map(ord, label))
            )
    for n in range(broken):
        files[f"{wrapper}cat/broken{n}.jpg"] = b"this is not a JPEG"
    return files


def csv_labels(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def coco_dataset(images: int, seed: int = 0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """`images/<n>.jpg` and an `instances.json` with one to three boxes each (categories car and person)."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    document: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
    }
    for n in range(images):
        name = f"{n:04d}.jpg"
        files[f"images/{name}"] = jpeg((120, 120, 120), size=(64, 48), seed=n)
        document["images"].append({"id": n + 1, "file_name": name, "width": 64, "height": 48})
        for _ in range(rng.randint(1, 3)):
            x, y = rng.uniform(0, 40), rng.uniform(0, 30)
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": n + 1,
                    "category_id": rng.choice([1, 2]),
                    "bbox": [round(x, 1), round(y, 1), round(rng.uniform(4, 20), 1), round(rng.uniform(4, 16), 1)],
                    "area": 1.0,
                    "iscrowd": 0,
                }
            )
    return files, document


def coco_archive(images: int, seed: int = 0, bad_annotation: bool = False) -> bytes:
    files, document = coco_dataset(images, seed)
    if bad_annotation:
        document["annotations"].append({"id": 9999, "image_id": 12345, "category_id": 1, "bbox": [0, 0, 1, 1]})
    files["instances.json"] = json.dumps(document).encode()
    return zip_archive(files)
