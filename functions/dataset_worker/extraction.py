"""An extracted dataset archive to items: its layout recognised, its labels read, every image decoded once.

Layouts: a folder per class (`cat/001.jpg`: the folder names the label); images with a CSV (`image,label[,label…]`,
an optional header, several rows of one image add labels) or JSON Lines (`{"image": ..., "label": ... | "labels":
[...]}`) label file; a COCO `instances.json` (images, annotations with `bbox` [x, y, w, h], categories) for
detection. A retry's label file replaces the archive's. Problems with one item (an image that does not decode, a
label line naming no image, a label outside the declared classes, a box outside its image) are reported for that
item and the rest goes on; only an archive with nothing to extract ends the extraction in error.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tensorgate.dataset_models import DatasetKind
from tensorgate.services.dataset_jobs import ExtractionRejected, ItemSink
from tensorgate_preprocessing.errors import PreprocessingError
from tensorgate_preprocessing.images import decode_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LABEL_FILE_NAMES = ("instances.json", "labels.csv", "labels.jsonl", "annotations.json")
PROGRESS_EVERY = 250
MAX_LABEL_FILE_BYTES = 512 * 1024**2


@dataclass
class Candidate:
    """An item before its image is decoded."""

    name: str
    labels: list[str]
    objects: list[dict[str, Any]] | None = None


@dataclass
class Plan:
    layout: str
    candidates: list[Candidate]
    classes: dict[str, int] | None = None  # from COCO categories
    unlabelled: int = 0
    ignored_files: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


class Source(Protocol):
    """The archive's files: `names` (relative paths, sorted) and their bytes by name."""

    names: list[str]

    def read(self, name: str) -> bytes: ...


class DirectorySource:
    """Files unpacked under a directory (tar archives, and the tests)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self.names = sorted(
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
        )

    def read(self, name: str) -> bytes:
        return (self._root / name).read_bytes()


class WrappedSource:
    """Archives often wrap everything in one folder (`pets/cat/1.jpg`): the dataset starts inside it."""

    def __init__(self, source: Source) -> None:
        self._source = source
        visible = [name for name in source.names if not any(part.startswith(".") for part in name.split("/"))]
        prefix = ""
        for _ in range(3):
            firsts = {name[len(prefix) :].split("/", 1)[0] for name in visible}
            if len(firsts) == 1 and all("/" in name[len(prefix) :] for name in visible) and visible:
                prefix += firsts.pop() + "/"
            else:
                break
        self._prefix = prefix
        self.names = [name[len(prefix) :] for name in visible]

    def read(self, name: str) -> bytes:
        return self._source.read(self._prefix + name)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _label_file(files: list[str]) -> str | None:
    """The archive's label file: at its top level, by a usual name first, else the one .csv/.jsonl/COCO .json."""
    top = [name for name in files if "/" not in name]
    for usual in LABEL_FILE_NAMES:
        if usual in top:
            return usual
    candidates = [name for name in top if name.lower().endswith((".csv", ".jsonl", ".json"))]
    if len(candidates) > 1:
        raise ExtractionRejected(
            f"The archive holds several label files at its top level ({', '.join(candidates[:5])}); keep one, or name "
            "it labels.csv, labels.jsonl or instances.json."
        )
    return candidates[0] if candidates else None


def _split_labels(values: list[Any]) -> list[str]:
    """Labels of a CSV row's cells or a JSON value; a cell may hold several, comma separated (SBrain's form)."""
    labels: list[str] = []
    for value in values:
        for part in str(value).split(","):
            label = part.strip()
            if label and label not in labels:
                labels.append(label)
    return labels


@dataclass
class LabelFile:
    name: str
    content: bytes


def _read_text(labels: LabelFile) -> str:
    if len(labels.content) > MAX_LABEL_FILE_BYTES:
        raise ExtractionRejected(f"The label file {labels.name!r} is over {MAX_LABEL_FILE_BYTES // 1024**2} MiB.")
    try:
        return labels.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExtractionRejected(f"The label file {labels.name!r} is not UTF-8 text.") from None


def _label_rows(path: LabelFile) -> Iterator[tuple[str, str, list[str]]]:
    """(where, image, labels) per line of a CSV or JSON Lines label file; a line that cannot be read is yielded
    with image "" and its problem as the only label."""
    text = _read_text(path)
    if path.name.lower().endswith(".jsonl"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                yield where, "", ["is not JSON"]
                continue
            if not isinstance(value, dict) or not isinstance(value.get("image"), str):
                yield where, "", ['is not an object with an "image" name']
                continue
            labels = value.get("labels", value.get("label", []))
            yield where, str(value["image"]), _split_labels(labels if isinstance(labels, list) else [str(labels)])
        return
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and row[0].strip().lower() in ("image", "image_name", "filename", "file", "path"):
            continue  # a header
        yield f"{path.name} line {number}", row[0].strip(), _split_labels(row[1:])


def _from_label_file(files: list[str], labels: LabelFile, in_archive: bool) -> Plan:
    present = set(files)
    if labels.name.lower().endswith(".json"):
        return _from_coco(files, labels, in_archive)
    layout = "jsonl" if labels.name.lower().endswith(".jsonl") else "csv"
    by_image: dict[str, list[str]] = {}
    plan = Plan(layout=layout, candidates=[])
    for where, image, found in _label_rows(labels):
        if not image:
            plan.errors.append((where, f"{where} {found[0]}"))
            continue
        name = image.removeprefix("./")
        if name not in present:
            plan.errors.append((f"{where}: {image}", f"{where} names {image!r}, which is not in the archive"))
            continue
        if not found:
            plan.errors.append((f"{where}: {image}", f"{where} gives {image!r} no label"))
            continue
        merged = by_image.setdefault(name, [])
        merged += [label for label in found if label not in merged]
    plan.candidates = [Candidate(name, by_image[name]) for name in sorted(by_image)]
    images = [name for name in files if _is_image(name)]
    plan.unlabelled = sum(1 for name in images if name not in by_image)
    plan.ignored_files = sum(1 for name in files if not _is_image(name)) - (1 if in_archive else 0)
    return plan


def _from_coco(files: list[str], labels: LabelFile, in_archive: bool) -> Plan:
    try:
        document = json.loads(_read_text(labels))
    except json.JSONDecodeError as error:
        raise ExtractionRejected(
            f"The COCO file {labels.name!r} is not JSON ({error.msg}, line {error.lineno})."
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise ExtractionRejected(f'The JSON file {labels.name!r} is not a COCO file: it has no "images" list.')
    plan = Plan(layout="coco", candidates=[])
    categories = {
        category["id"]: str(category["name"])
        for category in document.get("categories", [])
        if isinstance(category, dict) and "id" in category and "name" in category
    }
    plan.classes = {name: int(identifier) for identifier, name in sorted(categories.items())}
    present = set(files)
    images: dict[Any, tuple[str, int | None, int | None]] = {}
    for entry in document["images"]:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            plan.errors.append((labels.name, f"{labels.name}: an image entry has no id or file_name"))
            continue
        name = entry["file_name"].removeprefix("./")
        if name not in present:
            # COCO files often name images relative to an images/ folder beside them.
            name = next(
                (f"{folder}/{name}" for folder in ("images", "train", "val") if f"{folder}/{name}" in present), name
            )
        if name not in present:
            plan.errors.append(
                (entry["file_name"], f"image {entry['file_name']!r} of {labels.name} is not in the archive")
            )
            continue
        images[entry["id"]] = (name, entry.get("width"), entry.get("height"))
    objects: dict[Any, list[dict[str, Any]]] = {identifier: [] for identifier in images}
    for number, annotation in enumerate(document.get("annotations", []), start=1):
        where = f"{labels.name} annotation {annotation.get('id', number) if isinstance(annotation, dict) else number}"
        if not isinstance(annotation, dict) or annotation.get("image_id") not in images:
            image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
            plan.errors.append((where, f"{where} names image id {image_id!r}, which is not an image of the file"))
            continue
        category = categories.get(annotation.get("category_id"))
        bbox = annotation.get("bbox")
        if category is None:
            plan.errors.append(
                (where, f"{where} names category {annotation.get('category_id')!r}, which is not declared")
            )
            continue
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            plan.errors.append((where, f"{where} has no [x, y, width, height] bbox"))
            continue
        x, y, width, height = (float(v) for v in bbox)
        if width <= 0 or height <= 0:
            plan.errors.append((where, f"{where} has a box of no area"))
            continue
        objects[annotation["image_id"]].append({"label": category, "box": [x, y, x + width, y + height]})
    for identifier, (name, _, _) in sorted(images.items(), key=lambda pair: pair[1][0]):
        found = objects[identifier]
        plan.candidates.append(Candidate(name, sorted({obj["label"] for obj in found}), found))
    named = {name for name, _, _ in images.values()}
    plan.unlabelled = sum(1 for name in files if _is_image(name) and name not in named)
    plan.ignored_files = sum(1 for name in files if not _is_image(name)) - (1 if in_archive else 0)
    return plan


def _from_folders(files: list[str]) -> Plan:
    plan = Plan(layout="folders", candidates=[])
    for name in files:
        if not _is_image(name):
            plan.ignored_files += 1
            continue
        if "/" not in name:
            plan.errors.append((name, f"{name!r} is not in a class folder (a folder per class names its label)"))
            continue
        plan.candidates.append(Candidate(name, [name.split("/", 1)[0]]))
    return plan


def plan_extraction(source: Source, labels: LabelFile | None, kind: DatasetKind) -> Plan:
    files = source.names
    in_archive = labels is None
    if labels is None:
        found = _label_file(files)
        labels = None if found is None else LabelFile(found, source.read(found))
    if labels is None:
        if kind is DatasetKind.DETECTION:
            raise ExtractionRejected(
                "A detection dataset needs a COCO instances.json beside its images; the archive has no label file."
            )
        plan = _from_folders(files)
    else:
        plan = _from_label_file(files, labels, in_archive)
        if kind is DatasetKind.DETECTION and plan.layout != "coco":
            raise ExtractionRejected(f"A detection dataset's labels are a COCO .json file, not {labels.name!r}.")
    if not plan.candidates and not plan.errors:
        raise ExtractionRejected(
            "The archive holds no images to extract: put them in a folder per class, or beside a labels.csv, "
            "labels.jsonl or COCO instances.json."
        )
    return plan


def extract(
    source: Source,
    labels: LabelFile | None,
    kind: DatasetKind,
    classes: dict[str, int] | None,
    sink: ItemSink,
    progress: Callable[[int, int], None],
) -> dict[str, Any]:
    """Decode every planned image once, hand the good ones to `sink` in order, report the others; the summary."""
    source = WrappedSource(source)
    plan = plan_extraction(source, labels, kind)
    declared = classes if classes is not None else plan.classes if kind is DatasetKind.DETECTION else None
    for item, message in plan.errors:
        sink.error(item, message)
    errors = len(plan.errors)
    counts: dict[str, int] = {}
    total = len(plan.candidates)
    for position, candidate in enumerate(plan.candidates):
        if position % PROGRESS_EVERY == 0:
            progress(position, total)
        unknown = [label for label in candidate.labels if declared is not None and label not in declared]
        if unknown:
            sink.error(candidate.name, f"{candidate.name!r} is labelled {unknown[0]!r}, which is not a declared class")
            errors += 1
            continue
        data = source.read(candidate.name)
        try:
            with decode_image(data) as picture:
                width, height = picture.size
        except PreprocessingError as error:
            sink.error(candidate.name, f"{candidate.name!r}: {error}")
            errors += 1
            continue
        objects = candidate.objects
        if objects is not None:
            outside = [obj for obj in objects if obj["box"][2] > width + 0.5 or obj["box"][3] > height + 0.5]
            if outside:
                sink.error(
                    candidate.name,
                    f"{candidate.name!r} has a box {outside[0]['box']} outside its {width}x{height} pixels",
                )
                errors += 1
                continue
        line: dict[str, Any] = {"name": candidate.name, "labels": candidate.labels, "width": width, "height": height}
        if objects is not None:
            line["objects"] = objects
        sink.add(line, data)
        for label in candidate.labels:
            counts[label] = counts.get(label, 0) + 1
    progress(total, total)
    if declared is None:
        declared = {label: index for index, label in enumerate(sorted(counts))}
    return {
        "layout": plan.layout,
        "items": total - (errors - len(plan.errors)),
        "item_errors": errors,
        "unlabelled": plan.unlabelled,
        "ignored_files": max(0, plan.ignored_files),
        "classes": declared,
        "label_counts": dict(sorted(counts.items())),
    }
