"""The dataset jobs' common ground: ports, errors, the version writer, claims, progress, ending a task once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tensorgate import dataset_layout
from tensorgate.dataset_models import (
    CHUNK_ITEMS,
    Dataset,
    DatasetEvaluation,
    DatasetSplit,
    DatasetStatus,
    DatasetVersion,
)
from tensorgate.errors import ConcurrentUpdate
from tensorgate.models import Task, TaskStatus, utc_now
from tensorgate.ports import TaskRepository
from tensorgate.services.dataset_manifest import ManifestWriter

log = logging.getLogger(__name__)
# A job outlives the worker's 15-minute timeout by 5 minutes at most: an older claim is a dead worker's.
DEFAULT_CLAIM_SECONDS = 1200
PROGRESS_SECONDS = 2.0
# How often an evaluation looks at its batch job again while the job runs: after 2 s, then twice as long each time
# up to every 10 s (a small part is scored seconds after its job ended, a large one costs few checks).
FIRST_EVALUATION_CHECK_SECONDS = 2
EVALUATION_CHECK_SECONDS = 10


def evaluation_check_delay(checks: int) -> int:
    """Seconds before the next look at an evaluation's job, after `checks` looks."""
    return min(EVALUATION_CHECK_SECONDS, FIRST_EVALUATION_CHECK_SECONDS * 2 ** min(checks, 8))


class ExtractionRejected(Exception):
    """Nothing can be extracted (no images, an unreadable label file): the job ends in error with this sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatasetJobInProgress(Exception):
    """Another worker holds a live claim on this job: the message comes back later."""


class DatasetJobCancelled(Exception):
    """The job's record was cancelled (or deleted) while it ran: the worker stops and removes what it wrote."""


class ItemSink(Protocol):
    def add(self, line: dict[str, Any], image: bytes) -> None: ...
    def error(self, item: str, message: str) -> None: ...


class Extractor(Protocol):
    def __call__(
        self,
        archive: Path,
        workdir: Path,
        labels: Path | None,
        dataset: Dataset,
        sink: ItemSink,
        progress: Callable[[int, int], None],
    ) -> dict[str, Any]: ...


class TransformedItem(Protocol):
    data: bytes
    width: int
    height: int
    boxes: list[list[float]]
    kept: list[int]


class Transformer(Protocol):
    def __call__(self, data: bytes, steps: list[dict[str, Any]], boxes: list[list[float]]) -> TransformedItem: ...


class DatasetFiles(Protocol):
    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def download(self, key: str, path: str) -> None: ...
    def upload(self, path: str, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...


class Evaluator(Protocol):
    """Metrics of the scores against the truth, and the plots drawn from them (PNG bytes by name)."""

    def __call__(
        self, truth: list[int], scores: list[list[float]], labels: list[str]
    ) -> tuple[dict[str, Any], dict[str, bytes]]: ...


# A detection item: its ground truth as (class index, box) and its detections as (class index, score, box).
TruthBoxes = list[tuple[int, list[float]]]
FoundBoxes = list[tuple[int, float, list[float]]]


class DetectionEvaluator(Protocol):
    """COCO metrics of the detections against the ground truth, and the plots drawn from them (PNG by name)."""

    def __call__(
        self, truths: list[TruthBoxes], detections: list[FoundBoxes], labels: list[str]
    ) -> tuple[dict[str, Any], dict[str, bytes]]: ...


class BatchJobs(Protocol):
    def create(self, account_id: str, fields: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, account_id: str, job_id: int) -> dict[str, Any]: ...
    def cancel(self, account_id: str, job_id: int) -> dict[str, Any]: ...


class LaterQueue(Protocol):
    def send_later(self, body: dict[str, Any], delay_seconds: int) -> str: ...


class DatasetRecords(Protocol):
    def get(self, account_id: str, dataset_id: int) -> Dataset | None: ...
    def replace(self, dataset: Dataset, expected_version: int) -> None: ...
    def get_version(self, account_id: str, dataset_id: int, name: str) -> DatasetVersion | None: ...
    def replace_version(self, version: DatasetVersion, expected_version: int) -> None: ...
    def get_split(self, account_id: str, split_id: int) -> DatasetSplit | None: ...
    def replace_split(self, split: DatasetSplit, expected_version: int) -> None: ...
    def get_evaluation(self, account_id: str, evaluation_id: int) -> DatasetEvaluation | None: ...
    def replace_evaluation(self, evaluation: DatasetEvaluation, expected_version: int) -> None: ...


class VersionWriter:
    """A version's items as they are made: images appended to the chunk's shard file on disk, lines to the
    manifest; both stored every CHUNK_ITEMS items, so memory holds one chunk of lines and no image."""

    def __init__(
        self, files: DatasetFiles, prefix: str, workdir: Path, check: Callable[[], None] | None = None
    ) -> None:
        self._check = check
        self._files = files
        self._prefix = prefix
        self._manifest = ManifestWriter(files, prefix)
        self._shard_path = workdir / "shard.bin"
        self._shard: BinaryIO = self._shard_path.open("wb")
        self._offset = 0
        self.errors: list[dict[str, str]] = []

    def add(self, line: dict[str, Any], image: bytes) -> None:
        index = self._manifest.count
        self._shard.write(image)
        stored = {"index": index, **line, "chunk": index // CHUNK_ITEMS, "offset": self._offset, "size": len(image)}
        self._offset += len(image)
        self._manifest.add(stored)
        if self._manifest.count % CHUNK_ITEMS == 0:
            if self._check is not None:
                self._check()  # a cancelled job stops here, at a chunk's end
            self._store_shard(index // CHUNK_ITEMS)

    def error(self, item: str, message: str) -> None:
        self.errors.append({"item": item, "error": message})

    def _store_shard(self, chunk: int) -> None:
        self._shard.close()
        self._files.upload(str(self._shard_path), dataset_layout.images_chunk_key(self._prefix, chunk))
        self._shard = self._shard_path.open("wb")
        self._offset = 0

    def abandon(self) -> None:
        """The job stopped: nothing more is stored (the caller removes what was)."""
        self._shard.close()

    def close(self) -> int:
        count = self._manifest.count
        if count % CHUNK_ITEMS:
            self._store_shard(count // CHUNK_ITEMS)
        self._shard.close()
        return self._manifest.close()


@dataclass(frozen=True)
class Claimed:
    record: Any
    task: Task


class JobBase:
    """What every dataset job shares: its ports, claims on records, progress, ending its task once."""

    def __init__(
        self,
        datasets: DatasetRecords,
        tasks: TaskRepository,
        files: DatasetFiles,
        extractor: Extractor | None = None,
        transformer: Transformer | None = None,
        clock: Callable[[], datetime] = utc_now,
        claim_expiry: timedelta = timedelta(seconds=DEFAULT_CLAIM_SECONDS),
        evaluator: Evaluator | None = None,
        jobs: BatchJobs | None = None,
        queue: LaterQueue | None = None,
        bucket: str = "",
        detection_evaluator: DetectionEvaluator | None = None,
    ) -> None:
        self._evaluator = evaluator
        self._detection_evaluator = detection_evaluator
        self._jobs = jobs
        self._queue = queue
        self._bucket = bucket
        self._datasets = datasets
        self._tasks = tasks
        self._files = files
        self._extractor = extractor
        self._transformer = transformer
        self._clock = clock
        self._claim_expiry = claim_expiry

    # -- claims ---------------------------------------------------------------------------------------------

    def _claim(self, record: Any, replace: Callable[[Any, int], None]) -> Any:
        if record.claimed_at is not None and self._clock() - record.claimed_at < self._claim_expiry:
            raise DatasetJobInProgress(f"a worker holds the claim taken at {record.claimed_at.isoformat()}")
        claimed = record.model_copy(update={"claimed_at": self._clock(), "version": record.version + 1})
        try:
            replace(claimed, record.version)
        except ConcurrentUpdate:
            raise DatasetJobInProgress("another worker claimed the job meanwhile") from None
        return claimed

    def _update(self, get: Callable[[], Any], replace: Callable[[Any, int], None], changes: dict[str, Any]) -> Any:
        """Apply `changes` to the record's latest copy while it is still pending; None once it is not."""
        for _ in range(5):
            current = get()
            if current is None or current.status is not DatasetStatus.PENDING:
                return None
            updated = current.model_copy(
                update=changes | {"update_date": self._clock(), "version": current.version + 1}
            )
            try:
                replace(updated, current.version)
                return updated
            except ConcurrentUpdate:
                continue
        raise ConcurrentUpdate("A dataset record kept changing while its job ended.")

    def _stop_if_cancelled(self, get: Callable[[], Any]) -> Callable[[], None]:
        """A check run at each chunk: one read of the record, which a cancel (or a delete) has moved off pending."""

        def check() -> None:
            current = get()
            if current is None or current.status is DatasetStatus.CANCELLED:
                raise DatasetJobCancelled()

        return check

    def _progress(self, task_id: int) -> Callable[[int, int], None]:
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = self._clock().timestamp()
            if done not in (0, total) and now - last[0] < PROGRESS_SECONDS:
                return
            last[0] = now
            task = self._tasks.get(task_id)
            if task is not None and task.status is TaskStatus.PENDING:
                # A conditional write on `pending`: progress never overwrites an ended task.
                self._tasks.finish(task.model_copy(update={"data": {"progress": {"done": done, "total": total}}}))

        return report

    def _end_task(self, task_id: int, status: TaskStatus, error: str | None, data: Any) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        ended = task.model_copy(update={"status": status, "error": error, "data": data, "update_date": self._clock()})
        if not self._tasks.finish(ended):
            log.info("dataset task %s had already ended", task_id)
