"""The dataset worker's jobs: extraction, transformation into a new version, split; each ends its task once.

Messages come from the dataset queue: S3 events of uploaded archives and label files, and the jobs the API
queues (`{"dataset_job": {"kind", "account_id", "dataset_id", "task_id", ...}}`). A job claims its record
(dataset, version or split) as the converter claims a deploy, so a duplicate message neither runs it twice nor
ends its task twice; a message whose record already ended is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensorgate import dataset_layout
from tensorgate.dataset_models import DatasetStatus
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs.common import (
    DEFAULT_CLAIM_SECONDS,
    EVALUATION_CHECK_SECONDS,
    PROGRESS_SECONDS,
    BatchJobs,
    DatasetFiles,
    DatasetJobCancelled,
    DatasetJobInProgress,
    DatasetRecords,
    DetectionEvaluator,
    Evaluator,
    ExtractionRejected,
    Extractor,
    ItemSink,
    LaterQueue,
    Transformer,
    VersionWriter,
)
from tensorgate.services.dataset_jobs.evaluation import EvaluationJobs
from tensorgate.services.dataset_jobs.extraction import ExtractionJobs
from tensorgate.services.dataset_jobs.splits import SplitJobs, draw_split, part_sizes
from tensorgate.services.dataset_jobs.transformation import TransformationJobs

__all__ = [
    "DEFAULT_CLAIM_SECONDS",
    "EVALUATION_CHECK_SECONDS",
    "PROGRESS_SECONDS",
    "BatchJobs",
    "DatasetFiles",
    "DatasetJobCancelled",
    "DatasetJobInProgress",
    "DatasetJobService",
    "DatasetRecords",
    "DetectionEvaluator",
    "Evaluator",
    "ExtractionRejected",
    "Extractor",
    "ItemSink",
    "LaterQueue",
    "Transformer",
    "VersionWriter",
    "draw_split",
    "part_sizes",
]


class DatasetJobService(ExtractionJobs, TransformationJobs, SplitJobs, EvaluationJobs):
    """The dataset queue's messages dispatched to their job; one module per kind of job."""

    # -- messages -------------------------------------------------------------------------------------------

    def handle_upload(self, key: str) -> str:
        parsed = dataset_layout.parse_upload_key(key)
        if parsed is None:
            return "ignored: not a dataset upload"
        return self.extract(*parsed)

    def handle_job(self, job: dict[str, Any]) -> str:
        kind = job.get("kind")
        account_id, dataset_id = str(job.get("account_id")), int(job.get("dataset_id", -1))
        if kind == "extract":
            return self.extract(account_id, dataset_id, task_id=job.get("task_id"))
        if kind == "transform":
            return self.transform(account_id, dataset_id, str(job.get("version")))
        if kind == "split":
            return self.split(account_id, int(job.get("split_id", -1)))
        if kind == "evaluate":
            return self.evaluate(account_id, int(job.get("evaluation_id", -1)), int(job.get("checks", 0)))
        return f"ignored: no job kind {kind!r}"

    def give_up(self, key: str | None, job: dict[str, Any] | None, message: str) -> bool:
        """End the job of a message that failed on every delivery, so its task does not stay pending; False when
        it had already ended."""
        if key is not None:
            parsed = dataset_layout.parse_upload_key(key)
            job = None if parsed is None else {"kind": "extract", "account_id": parsed[0], "dataset_id": parsed[1]}
        if job is None:
            return False
        account_id, dataset_id = str(job.get("account_id")), int(job.get("dataset_id", -1))
        record: Any
        if job.get("kind") == "extract":
            record = self._datasets.get(account_id, dataset_id)
            if record is None or record.status is not DatasetStatus.PENDING:
                return False
            self._fail_extraction(record, message)
            return True
        get: Callable[[], Any]
        replace: Callable[[Any, int], None]
        if job.get("kind") == "transform":
            name = str(job.get("version"))
            get = lambda: self._datasets.get_version(account_id, dataset_id, name)  # noqa: E731
            replace = self._datasets.replace_version
        elif job.get("kind") == "evaluate":
            evaluation_id = int(job.get("evaluation_id", -1))
            get = lambda: self._datasets.get_evaluation(account_id, evaluation_id)  # noqa: E731
            replace = self._datasets.replace_evaluation
        elif job.get("kind") == "split":
            split_id = int(job.get("split_id", -1))
            get = lambda: self._datasets.get_split(account_id, split_id)  # noqa: E731
            replace = self._datasets.replace_split
        else:
            return False
        record = self._update(get, replace, {"status": DatasetStatus.ERROR, "error": message, "claimed_at": None})
        if record is None:
            return False
        self._end_task(record.task_id, TaskStatus.ERROR, message, None)
        return True
