"""Dataset extraction on files saved by Pillow: each layout's items and labels, item errors, and the seeded split."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tensorgate.dataset_models import CHUNK_ITEMS, DatasetKind, DatasetSplit
from tensorgate.services.dataset_jobs import ExtractionRejected, draw_split, part_sizes
from tensorgate.services.dataset_manifest import ManifestWriter, read_page

from functions.dataset_worker.extraction import DirectorySource, extract
from tests.datasets_samples import coco_dataset, csv_labels, folder_per_class, jpeg
from tests.fakes import InMemoryBlobStore


class Sink:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.errors: list[tuple[str, str]] = []

    def add(self, line: dict[str, Any], image: bytes) -> None:
        self.items.append(line)

    def error(self, item: str, message: str) -> None:
        self.errors.append((item, message))


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def run(root: Path, kind: DatasetKind = DatasetKind.CLASSIFICATION, **options: Any) -> tuple[dict[str, Any], Sink]:
    sink = Sink()
    summary = extract(
        DirectorySource(root), options.get("labels"), kind, options.get("classes"), sink, lambda done, total: None
    )
    return summary, sink


def test_extract_folders_labels_each_image_by_its_folder_and_reports_a_loose_or_broken_one(tmp_path: Path) -> None:
    files = folder_per_class({"cat": 3, "dog": 2}, broken=1) | {"pets/loose.jpg": jpeg((1, 2, 3)), "pets/README": b"hi"}
    summary, sink = run(write(tmp_path, files))
    assert [(item["name"], item["labels"]) for item in sink.items] == [
        ("cat/0000.jpg", ["cat"]),
        ("cat/0001.jpg", ["cat"]),
        ("cat/0002.jpg", ["cat"]),
        ("dog/0000.jpg", ["dog"]),
        ("dog/0001.jpg", ["dog"]),
    ]
    assert [item for item, _ in sink.errors] == ["loose.jpg", "cat/broken0.jpg"]
    assert "not an image" in sink.errors[1][1] or "cannot be decoded" in sink.errors[1][1]
    assert summary | {"classes": None} == {
        "layout": "folders",
        "items": 5,
        "item_errors": 2,
        "unlabelled": 0,
        "ignored_files": 1,
        "classes": None,
        "label_counts": {"cat": 3, "dog": 2},
    }
    assert summary["classes"] == {"cat": 0, "dog": 1}


def test_extract_csv_merges_rows_of_one_image_and_reports_unknown_images_and_undeclared_labels(tmp_path: Path) -> None:
    files = {f"{n}.png": jpeg((n, n, n), seed=n) for n in range(4)}
    files["labels.csv"] = csv_labels(
        [["image", "labels"], ["0.png", "a"], ["0.png", "b"], ["1.png", "a,b"], ["2.png", "c"], ["7.png", "a"]]
    )
    summary, sink = run(write(tmp_path, files), classes={"a": 0, "b": 1})
    assert [(item["name"], item["labels"]) for item in sink.items] == [("0.png", ["a", "b"]), ("1.png", ["a", "b"])]
    assert sorted(item for item, _ in sink.errors) == ["2.png", "labels.csv line 6: 7.png"]
    assert summary["unlabelled"] == 1 and summary["classes"] == {"a": 0, "b": 1}


def test_extract_jsonl_takes_label_or_labels_and_reports_a_line_that_is_not_json(tmp_path: Path) -> None:
    files = {"x.jpg": jpeg((9, 9, 9)), "y.jpg": jpeg((8, 8, 8))}
    files["labels.jsonl"] = b'{"image": "x.jpg", "label": "sun"}\n{"image": "y.jpg", "labels": ["sea", "sun"]}\nnope\n'
    summary, sink = run(write(tmp_path, files))
    assert [item["labels"] for item in sink.items] == [["sun"], ["sea", "sun"]]
    assert sink.errors == [("labels.jsonl line 3", "labels.jsonl line 3 is not JSON")]
    assert summary["layout"] == "jsonl" and summary["label_counts"] == {"sea": 1, "sun": 2}


def test_extract_coco_converts_boxes_to_corners_and_keeps_images_without_objects(tmp_path: Path) -> None:
    files, document = coco_dataset(3)
    document["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [10, 5, 20, 10]},
        {"id": 2, "image_id": 2, "category_id": 9, "bbox": [0, 0, 5, 5]},
    ]
    files["instances.json"] = json.dumps(document).encode()
    summary, sink = run(write(tmp_path, files), DatasetKind.DETECTION)
    assert sink.items[0]["objects"] == [{"label": "person", "box": [10.0, 5.0, 30.0, 15.0]}]
    assert [item["objects"] for item in sink.items[1:]] == [[], []]
    assert sink.errors == [
        ("instances.json annotation 2", "instances.json annotation 2 names category 9, which is not declared")
    ]
    assert summary["classes"] == {"car": 1, "person": 2} and summary["layout"] == "coco"


def test_extract_refuses_a_detection_dataset_without_coco_labels_and_an_archive_without_images(tmp_path: Path) -> None:
    write(tmp_path / "a", folder_per_class({"cat": 1}))
    with pytest.raises(ExtractionRejected, match="COCO"):
        run(tmp_path / "a", DatasetKind.DETECTION)
    write(tmp_path / "b", {"notes.txt": b"nothing here"})
    with pytest.raises(ExtractionRejected, match="no images"):
        run(tmp_path / "b")


def test_part_sizes_sum_to_the_total_and_give_the_remainder_to_the_largest_fractions() -> None:
    assert part_sizes(10, [80, 10, 10]) == [8, 1, 1]
    assert part_sizes(7, [80, 10, 10]) == [5, 1, 1]  # 5.6, 0.7, 0.7: the two 0.7 win
    assert part_sizes(3, [33.4, 33.3, 33.3]) == [1, 1, 1]
    assert all(sum(part_sizes(n, [50, 30, 20])) == n for n in range(50))


def split(seed: int, **fields: Any) -> DatasetSplit:
    now = datetime.now(UTC)
    return DatasetSplit(
        account_id="a",
        split_id=1,
        dataset_id=1,
        dataset_name="d",
        version_name="v1",
        name="s",
        author="me",
        parts=[
            {"name": "train", "percentage": 80},
            {"name": "val", "percentage": 10},
            {"name": "test", "percentage": 10},
        ],
        seed=seed,
        task_id=1,
        create_date=now,
        update_date=now,
        **fields,
    )


def version_of(labels: list[list[str]]) -> InMemoryBlobStore:
    store = InMemoryBlobStore()
    writer = ManifestWriter(store, "v/")
    for index, item_labels in enumerate(labels):
        writer.add({"index": index, "name": f"{index}.jpg", "labels": item_labels, "width": 1, "height": 1})
    writer.close()
    return store


def test_split_is_the_same_for_a_seed_stratified_by_label_and_leaves_out_excluded_labels() -> None:
    labels = [["cat"]] * 600 + [["dog"]] * 300 + [["fish"]] * 100 + [["cat", "frog"]] * 50 + [["frog"]] * 50
    store = version_of(labels)
    first, left_out = draw_split(store, "v/", len(labels), split(7, exclude_labels=["frog"]))
    again, _ = draw_split(store, "v/", len(labels), split(7, exclude_labels=["frog"]))
    other, _ = draw_split(store, "v/", len(labels), split(8, exclude_labels=["frog"]))
    assert first == again and first != other and left_out == 50
    for label, count in (("cat", 650), ("dog", 300), ("fish", 100)):
        parts = [first[i] for i, item in enumerate(labels) if item[0] == label]
        assert [parts.count(p) for p in range(3)] == part_sizes(count, [80, 10, 10])


def test_a_page_of_a_large_manifest_reads_at_most_two_chunks() -> None:
    store = version_of([["x"]] * (3 * CHUNK_ITEMS + 5))
    reads: list[str] = []
    get = store.get
    store.get = lambda key: reads.append(key) or get(key)  # type: ignore[method-assign]
    page = read_page(store, "v/", 3 * CHUNK_ITEMS + 5, CHUNK_ITEMS - 10, 100)
    assert [line["index"] for line in page] == list(range(CHUNK_ITEMS - 10, CHUNK_ITEMS + 90)) and len(reads) == 2


def test_zip_members_are_read_by_name_without_unpacking_and_refuse_a_climbing_name(tmp_path: Path) -> None:
    from functions.converter.archives import ZipMembers
    from functions.converter.errors import ConversionFailed
    from tests.datasets_samples import zip_archive

    good = tmp_path / "good.zip"
    good.write_bytes(zip_archive({"pets/cat/1.jpg": b"one", "__MACOSX/pets/._1.jpg": b"clutter"}))
    members = ZipMembers(good)
    assert members.names == ["pets/cat/1.jpg"] and members.read("pets/cat/1.jpg") == b"one"
    members.close()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(zip_archive({"../evil.jpg": b"x"}))
    with pytest.raises(ConversionFailed, match="climbs out"):
        ZipMembers(bad)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.zip", "good.zip"]
