"""Extraction: an uploaded archive (and a retry's label file) to version v1's items, item errors reported."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tensorgate import dataset_layout
from tensorgate.dataset_models import (
    FIRST_VERSION,
    MAX_RECORD_ERRORS,
    Dataset,
    DatasetStatus,
)
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs.common import (
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
                writer = VersionWriter(self._files, prefix, work)
                try:
                    summary = self._extractor(
                        archive, work / "extracted", labels, claimed, writer, self._progress(claimed.task_id)
                    )
                finally:
                    count = writer.close()
        except ExtractionRejected as rejection:
            return self._fail_extraction(claimed, rejection.message)
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
            return "ignored: the extraction was ended meanwhile (a retry or the last delivery's error)"
        self._end_task(
            claimed.task_id,
            TaskStatus.SUCCESS,
            None,
            {k: v for k, v in summary.items() if k != "errors"} | {"dataset_id": dataset_id},
        )
        return f"success: {count} items, {len(writer.errors)} item errors"

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
