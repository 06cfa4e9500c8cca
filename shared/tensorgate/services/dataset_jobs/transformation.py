"""Transformation: a version's images through a transformation set into a new version."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tensorgate import dataset_layout
from tensorgate.dataset_models import (
    CHUNK_ITEMS,
    FIRST_VERSION,
    MAX_RECORD_ERRORS,
    DatasetStatus,
    DatasetVersion,
)
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs.common import (
    DatasetJobCancelled,
    JobBase,
    VersionWriter,
)
from tensorgate.services.dataset_manifest import iter_chunks


class TransformationJobs(JobBase):
    """A version's images through its transformation set; the version and its task end once."""

    def transform(self, account_id: str, dataset_id: int, name: str) -> str:
        if self._transformer is None:
            raise RuntimeError("this DatasetJobService was built without a transformer")
        version = self._datasets.get_version(account_id, dataset_id, name)
        if version is None:
            return "ignored: the version was deleted"
        if version.status is not DatasetStatus.PENDING:
            return f"ignored: the transformation already ended ({version.status.value})"
        source = self._datasets.get_version(account_id, dataset_id, version.source or FIRST_VERSION)
        get = lambda: self._datasets.get_version(account_id, dataset_id, name)  # noqa: E731
        if source is None or source.status is not DatasetStatus.READY:
            self._update(
                get,
                self._datasets.replace_version,
                {"status": DatasetStatus.ERROR, "error": "The source version is gone."},
            )
            self._end_task(version.task_id, TaskStatus.ERROR, "The source version is gone.", None)
            return "error: the source version is gone"
        claimed: DatasetVersion = self._claim(version, self._datasets.replace_version)
        source_prefix = dataset_layout.version_prefix(account_id, dataset_id, source.name)
        prefix = dataset_layout.version_prefix(account_id, dataset_id, name)
        progress = self._progress(claimed.task_id)
        counts: dict[str, int] = {}
        try:
            self._files.delete_prefix(prefix)
            with tempfile.TemporaryDirectory(prefix="tensorgate-transform-") as workdir:
                work = Path(workdir)
                check = self._stop_if_cancelled(get)
                writer = VersionWriter(self._files, prefix, work, check)
                shard = work / "source.bin"
                for chunk, lines in iter_chunks(self._files, source_prefix, source.items):
                    check()
                    progress(chunk * CHUNK_ITEMS, source.items)
                    self._files.download(dataset_layout.images_chunk_key(source_prefix, chunk), str(shard))
                    with shard.open("rb") as images:
                        for line in lines:
                            images.seek(line["offset"])
                            self._transform_item(
                                line, images.read(line["size"]), claimed.transformations, writer, counts
                            )
                count = writer.close()
        except DatasetJobCancelled:
            self._files.delete_prefix(prefix)
            return "cancelled: the transformation stopped and its items were removed"
        except BaseException:
            self._update(get, self._datasets.replace_version, {"claimed_at": None})
            raise
        progress(source.items, source.items)
        changes = {
            "status": DatasetStatus.READY,
            "items": count,
            "classes": source.classes,
            "label_counts": dict(sorted(counts.items())),
            "claimed_at": None,
            "error": f"{len(writer.errors)} items could not be transformed: {writer.errors[0]['error']}"
            if writer.errors
            else None,
        }
        if self._update(get, self._datasets.replace_version, changes) is None:
            self._files.delete_prefix(prefix)
            return "ignored: the version was deleted or cancelled during the transformation"
        self._end_task(
            claimed.task_id,
            TaskStatus.SUCCESS,
            None,
            {"items": count, "item_errors": writer.errors[:MAX_RECORD_ERRORS]},
        )
        return f"success: {count} items"

    def _transform_item(
        self,
        line: dict[str, Any],
        data: bytes,
        steps: list[dict[str, Any]],
        writer: VersionWriter,
        counts: dict[str, int],
    ) -> None:
        assert self._transformer is not None
        objects = line.get("objects")
        try:
            result = self._transformer(data, steps, [obj["box"] for obj in objects or []])
        except Exception as error:  # one item's failure is reported for that item (the preprocessing's sentences)
            writer.error(line["name"], f"{line['name']!r}: {error}")
            return
        new: dict[str, Any] = {
            "name": line["name"],
            "labels": line["labels"],
            "width": result.width,
            "height": result.height,
        }
        if objects is not None:
            kept = [
                {"label": objects[i]["label"], "box": box} for i, box in zip(result.kept, result.boxes, strict=True)
            ]
            new["objects"] = kept
            new["labels"] = sorted({obj["label"] for obj in kept})
        writer.add(new, result.data)
        for label in new["labels"]:
            counts[label] = counts.get(label, 0) + 1
