"""Extraction: an uploaded archive (and a retry's label file) to version v1's items, item errors reported."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from tensorgate import dataset_layout
from tensorgate.dataset_models import (
    FIRST_VERSION,
    MAX_RECORD_ERRORS,
    Dataset,
    DatasetStatus,
)
from tensorgate.errors import ConcurrentUpdate
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs.common import (
    DatasetJobCancelled,
    ExtractionRejected,
    JobBase,
    VersionWriter,
)
from tensorgate.services.dataset_manifest import encode_lines


class ExtractionJobs(JobBase):
    """An uploaded archive to v1's items; the dataset and its task end once."""

    def extract(self, account_id: str, dataset_id: int, task_id: int | None = None) -> str:
        if self._extractor is None:
            raise RuntimeError("this DatasetJobService was built without an extractor")
        dataset = self._datasets.get(account_id, dataset_id)
        if dataset is None:
            return "ignored: the dataset was deleted"
        if dataset.status is not DatasetStatus.PENDING or (task_id is not None and task_id != dataset.task_id):
            return f"ignored: the extraction already ended ({dataset.status.value}; a duplicate message)"
        if not self._files.exists(dataset.archive_key) or (
            dataset.labels_key is not None and not self._files.exists(dataset.labels_key)
        ):
            return "ignored: waiting for the archive or the label file"
        claimed: Dataset = self._claim(dataset, self._datasets.replace)
        prefix = dataset_layout.version_prefix(account_id, dataset_id, FIRST_VERSION)
        try:
            with tempfile.TemporaryDirectory(prefix="tensorgate-dataset-") as workdir:
                work = Path(workdir)
                archive = work / claimed.archive_key.rsplit("/", 1)[1]
                self._files.download(claimed.archive_key, str(archive))
                labels = None
                if claimed.labels_key is not None:
                    labels = work / "labels" / claimed.labels_key.rsplit("/", 1)[1]
                    labels.parent.mkdir()
                    self._files.download(claimed.labels_key, str(labels))
                self._files.delete_prefix(prefix)  # a retry's items replace the last extraction's
                writer = VersionWriter(self._files, prefix, work, self._stop_if_cancelled(self._ours(claimed)))
                try:
                    summary = self._extractor(
                        archive, work / "extracted", labels, claimed, writer, self._progress(claimed.task_id)
                    )
                except BaseException:
                    writer.abandon()
                    raise
                count = writer.close()
        except ExtractionRejected as rejection:
            return self._fail_extraction(claimed, rejection.message)
        except DatasetJobCancelled:
            return self._cancelled(claimed)
        except BaseException:
            self._update(
                lambda: self._datasets.get(account_id, dataset_id), self._datasets.replace, {"claimed_at": None}
            )
            raise
        self._files.put(
            dataset_layout.errors_key(account_id, dataset_id, FIRST_VERSION),
            encode_lines(writer.errors),
            "application/x-ndjson",
        )
        summary |= {"items": count, "item_errors": len(writer.errors), "errors": writer.errors[:MAX_RECORD_ERRORS]}
        version = self._update(
            lambda: self._datasets.get_version(account_id, dataset_id, FIRST_VERSION),
            self._datasets.replace_version,
            {
                "status": DatasetStatus.READY,
                "items": count,
                "classes": summary["classes"],
                "label_counts": summary["label_counts"],
                "error": None,
                "task_id": claimed.task_id,
            },
        )
        ended = self._update(
            lambda: self._datasets.get(account_id, dataset_id),
            self._datasets.replace,
            {"status": DatasetStatus.READY, "extraction": summary, "error": None, "claimed_at": None},
        )
        if self._datasets.get(account_id, dataset_id) is None:
            # Deleted while extracting: what was written here would outlive it.
            self._files.delete_prefix(dataset_layout.dataset_prefix(account_id, dataset_id))
            return "ignored: the dataset was deleted during the extraction"
        if ended is None or version is None:
            if self._ours(claimed)() is not None:
                return self._cancelled(claimed)
            return "ignored: the extraction was ended meanwhile (a retry or the last delivery's error)"
        self._end_task(
            claimed.task_id,
            TaskStatus.SUCCESS,
            None,
            {k: v for k, v in summary.items() if k != "errors"} | {"dataset_id": dataset_id},
        )
        return f"success: {count} items, {len(writer.errors)} item errors"

    def _ours(self, claimed: Dataset) -> Callable[[], Dataset | None]:
        """The dataset while this extraction is still its latest one (a retry after a cancel starts another)."""

        def get() -> Dataset | None:
            current = self._datasets.get(claimed.account_id, claimed.dataset_id)
            return current if current is not None and current.task_id == claimed.task_id else None

        return get

    def _cancelled(self, claimed: Dataset) -> str:
        """Cancelled while it ran: its items go, unless a retry already started writing its own."""
        account_id, dataset_id = claimed.account_id, claimed.dataset_id
        current = self._ours(claimed)()
        if current is not None and current.status is DatasetStatus.CANCELLED:
            self._files.delete_prefix(dataset_layout.version_prefix(account_id, dataset_id, FIRST_VERSION))
            first = self._datasets.get_version(account_id, dataset_id, FIRST_VERSION)
            if first is not None and first.task_id == claimed.task_id and first.status is not DatasetStatus.CANCELLED:
                with contextlib.suppress(ConcurrentUpdate):  # a retry took it meanwhile
                    changes = {"status": DatasetStatus.CANCELLED, "items": 0, "version": first.version + 1}
                    self._datasets.replace_version(first.model_copy(update=changes), first.version)
        return "cancelled: the extraction stopped and its items were removed"

    def _fail_extraction(self, dataset: Dataset, message: str) -> str:
        account_id, dataset_id = dataset.account_id, dataset.dataset_id
        self._update(
            lambda: self._datasets.get_version(account_id, dataset_id, FIRST_VERSION),
            self._datasets.replace_version,
            {"status": DatasetStatus.ERROR, "error": message, "items": 0},
        )
        if self._update(
            lambda: self._datasets.get(account_id, dataset_id),
            self._datasets.replace,
            {"status": DatasetStatus.ERROR, "error": message, "claimed_at": None},
        ):
            self._end_task(dataset.task_id, TaskStatus.ERROR, message, None)
        return f"error: {message}"
