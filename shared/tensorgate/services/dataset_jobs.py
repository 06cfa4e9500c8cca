"""The dataset worker's jobs: extraction, transformation into a new version, split; each ends its task once.

Messages come from the dataset queue: S3 events of uploaded archives and label files, and the jobs the API
queues (`{"dataset_job": {"kind", "account_id", "dataset_id", "task_id", ...}}`). A job claims its record
(dataset, version or split) as the converter claims a deploy, so a duplicate message neither runs it twice nor
ends its task twice; a message whose record already ended is dropped.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tensorgate import dataset_layout, layout
from tensorgate.dataset_models import (
    CHUNK_ITEMS,
    FIRST_VERSION,
    MAX_RECORD_ERRORS,
    Dataset,
    DatasetEvaluation,
    DatasetSplit,
    DatasetStatus,
    DatasetVersion,
)
from tensorgate.errors import ConcurrentUpdate, TensorgateError
from tensorgate.models import Task, TaskStatus, utc_now
from tensorgate.ports import TaskRepository
from tensorgate.services.dataset_manifest import ManifestWriter, encode_lines, iter_chunks

log = logging.getLogger(__name__)
# A job outlives the worker's 15-minute timeout by 5 minutes at most: an older claim is a dead worker's.
DEFAULT_CLAIM_SECONDS = 1200
PROGRESS_SECONDS = 2.0
# How often an evaluation looks at its batch job again while the job runs.
EVALUATION_CHECK_SECONDS = 10


class ExtractionRejected(Exception):
    """Nothing can be extracted (no images, an unreadable label file): the job ends in error with this sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatasetJobInProgress(Exception):
    """Another worker holds a live claim on this job: the message comes back later."""


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


class BatchJobs(Protocol):
    def create(self, account_id: str, fields: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, account_id: str, job_id: int) -> dict[str, Any]: ...


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

    def __init__(self, files: DatasetFiles, prefix: str, workdir: Path) -> None:
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
            self._store_shard(index // CHUNK_ITEMS)

    def error(self, item: str, message: str) -> None:
        self.errors.append({"item": item, "error": message})

    def _store_shard(self, chunk: int) -> None:
        self._shard.close()
        self._files.upload(str(self._shard_path), dataset_layout.images_chunk_key(self._prefix, chunk))
        self._shard = self._shard_path.open("wb")
        self._offset = 0

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


class DatasetJobService:
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
    ) -> None:
        self._evaluator = evaluator
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
            return self.evaluate(account_id, int(job.get("evaluation_id", -1)))
        return f"ignored: no job kind {kind!r}"

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

    # -- extraction -----------------------------------------------------------------------------------------

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
        if ended is None or version is None:
            self._files.delete_prefix(dataset_layout.dataset_prefix(account_id, dataset_id))
            return "ignored: the dataset was deleted during the extraction"
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

    # -- transformation -------------------------------------------------------------------------------------

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
                writer = VersionWriter(self._files, prefix, work)
                shard = work / "source.bin"
                for chunk, lines in iter_chunks(self._files, source_prefix, source.items):
                    progress(chunk * CHUNK_ITEMS, source.items)
                    self._files.download(dataset_layout.images_chunk_key(source_prefix, chunk), str(shard))
                    with shard.open("rb") as images:
                        for line in lines:
                            images.seek(line["offset"])
                            self._transform_item(
                                line, images.read(line["size"]), claimed.transformations, writer, counts
                            )
                count = writer.close()
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
            return "ignored: the version was deleted during the transformation"
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

    # -- split ----------------------------------------------------------------------------------------------

    def split(self, account_id: str, split_id: int) -> str:
        split = self._datasets.get_split(account_id, split_id)
        if split is None:
            return "ignored: the split was deleted"
        if split.status is not DatasetStatus.PENDING:
            return f"ignored: the split already ended ({split.status.value})"
        get = lambda: self._datasets.get_split(account_id, split_id)  # noqa: E731
        version = self._datasets.get_version(account_id, split.dataset_id, split.version_name)
        if version is None or version.status is not DatasetStatus.READY:
            self._update(
                get, self._datasets.replace_split, {"status": DatasetStatus.ERROR, "error": "The version is gone."}
            )
            self._end_task(split.task_id, TaskStatus.ERROR, "The version is gone.", None)
            return "error: the version is gone"
        claimed: DatasetSplit = self._claim(split, self._datasets.replace_split)
        prefix = dataset_layout.version_prefix(account_id, split.dataset_id, version.name)
        try:
            assignment, excluded = draw_split(self._files, prefix, version.items, claimed)
            counts = self._write_parts(claimed, prefix, version.items, assignment)
        except BaseException:
            self._update(get, self._datasets.replace_split, {"claimed_at": None})
            raise
        if (
            self._update(
                get,
                self._datasets.replace_split,
                {"status": DatasetStatus.READY, "counts": counts, "excluded": excluded, "claimed_at": None},
            )
            is None
        ):
            return "ignored: the split was deleted meanwhile"
        self._end_task(claimed.task_id, TaskStatus.SUCCESS, None, {"counts": counts, "excluded": excluded})
        return f"success: {counts}"

    def _write_parts(self, split: DatasetSplit, prefix: str, total: int, assignment: list[int]) -> dict[str, int]:
        names = [part["name"] for part in split.parts]
        writers = [
            ManifestWriter(
                self._files, dataset_layout.split_part_prefix(split.account_id, split.dataset_id, split.split_id, name)
            )
            for name in names
        ]
        excluded = set(split.exclude_labels)
        for _, lines in iter_chunks(self._files, prefix, total):
            for line in lines:
                part = assignment[line["index"]]
                if part >= 0:
                    writers[part].add(_without(line, excluded))
        return {name: writer.close() for name, writer in zip(names, writers, strict=True)}

    # -- evaluation -----------------------------------------------------------------------------------------

    def evaluate(self, account_id: str, evaluation_id: int) -> str:
        """First the part's images become a batch job's inputs and the job is created; then, checked every few
        seconds, the job's answers are scored once it ended."""
        assert self._evaluator is not None and self._jobs is not None and self._queue is not None
        evaluation = self._datasets.get_evaluation(account_id, evaluation_id)
        if evaluation is None:
            return "ignored: the evaluation was deleted"
        if evaluation.status is not DatasetStatus.PENDING:
            return f"ignored: the evaluation already ended ({evaluation.status.value})"
        get = lambda: self._datasets.get_evaluation(account_id, evaluation_id)  # noqa: E731
        replace = self._datasets.replace_evaluation
        again = {"dataset_job": {"kind": "evaluate", "account_id": account_id, "evaluation_id": evaluation_id}}
        if evaluation.job_id is None:
            claimed: DatasetEvaluation = self._claim(evaluation, replace)
            try:
                total = self._stage_inputs(claimed)
                prefix = dataset_layout.evaluation_inputs_prefix(account_id, evaluation_id)
                job = self._jobs.create(
                    account_id,
                    {
                        "name": f"evaluation {evaluation_id}",
                        "description": f"split {claimed.split_id} part {claimed.part} of dataset {claimed.dataset_id}",
                        "network_id": claimed.network_id,
                        "output_tensors": None if claimed.output_tensor is None else [claimed.output_tensor],
                        "inputs": {"prefix": f"s3://{self._bucket}/{prefix}"},
                    },
                )
            except TensorgateError as refusal:
                return self._fail_evaluation(claimed, f"The batch job could not start: {refusal.message}")
            except BaseException:
                self._update(get, replace, {"claimed_at": None})
                raise
            self._update(get, replace, {"job_id": int(job["id"]), "claimed_at": None})
            self._queue.send_later(again, EVALUATION_CHECK_SECONDS)
            return f"waiting: job {job['id']} runs {total} items"
        job = self._jobs.get(account_id, evaluation.job_id)
        if job["status"] in ("pending", "running"):
            self._queue.send_later(again, EVALUATION_CHECK_SECONDS)
            return f"waiting: job {evaluation.job_id} is {job['status']}"
        claimed = self._claim(evaluation, replace)
        try:
            return self._score(claimed, job)
        except BaseException:
            self._update(get, replace, {"claimed_at": None})
            raise

    def _part_prefix(self, evaluation: DatasetEvaluation) -> tuple[DatasetSplit, str]:
        split = self._datasets.get_split(evaluation.account_id, evaluation.split_id)
        if split is None:
            raise ExtractionRejected("The split was deleted.")
        prefix = dataset_layout.split_part_prefix(split.account_id, split.dataset_id, split.split_id, evaluation.part)
        return split, prefix

    def _stage_inputs(self, evaluation: DatasetEvaluation) -> int:
        """Each image of the part as an object of its own, in the part's order (the job takes them in key order)."""
        split, part_prefix = self._part_prefix(evaluation)
        version_prefix = dataset_layout.version_prefix(split.account_id, split.dataset_id, split.version_name)
        inputs = dataset_layout.evaluation_inputs_prefix(evaluation.account_id, evaluation.evaluation_id)
        total = split.counts[evaluation.part]
        with tempfile.TemporaryDirectory(prefix="tensorgate-evaluate-") as workdir:
            shard, loaded, position = Path(workdir, "shard.bin"), -1, 0
            for _, lines in iter_chunks(self._files, part_prefix, total):
                for line in lines:
                    if line["chunk"] != loaded:
                        self._files.download(dataset_layout.images_chunk_key(version_prefix, line["chunk"]), str(shard))
                        loaded = line["chunk"]
                    with shard.open("rb") as images:
                        images.seek(line["offset"])
                        data = images.read(line["size"])
                    self._files.put(f"{inputs}{position:06d}", data)
                    position += 1
        return total

    def _score(self, evaluation: DatasetEvaluation, job: dict[str, Any]) -> str:
        assert self._evaluator is not None and evaluation.job_id is not None
        account_id = evaluation.account_id
        split, part_prefix = self._part_prefix(evaluation)
        version = self._datasets.get_version(account_id, split.dataset_id, split.version_name)
        classes = version.classes if version is not None else {}
        size = max(classes.values(), default=-1) + 1
        names = {identifier: name for name, identifier in classes.items()}
        labels = [names.get(index, f"#{index}") for index in range(size)]
        answers = {}
        if job.get("done"):
            results = self._files.get(layout.job_results_key(account_id, evaluation.job_id))
            answers = {line["index"]: line for line in (json.loads(text) for text in results.splitlines() if text)}
        truth: list[int] = []
        scores: list[list[float]] = []
        failed = 0
        for _, lines in iter_chunks(self._files, part_prefix, split.counts[evaluation.part]):
            for position, line in enumerate(lines, start=len(truth) + failed):
                answer = answers.get(position)
                vector = _scores(answer, evaluation.output_tensor)
                if vector is None or not line["labels"] or line["labels"][0] not in classes:
                    failed += 1
                    continue
                if len(vector) != size:
                    message = (
                        f"The network's output {evaluation.output_tensor!r} has {len(vector)} scores, but the dataset "
                        f"has {size} class ids; score index k must be class id k."
                    )
                    return self._fail_evaluation(evaluation, message)
                truth.append(classes[line["labels"][0]])
                scores.append(vector)
        if not truth:
            return self._fail_evaluation(evaluation, "No item of the part got an answer from the network; see its job.")
        metrics, plots = self._evaluator(truth, scores, labels)
        metrics |= {"failed": failed, "job_id": evaluation.job_id}
        prefix = dataset_layout.evaluation_prefix(account_id, evaluation.dataset_id, evaluation.evaluation_id)
        self._files.put(f"{prefix}metrics.json", json.dumps(metrics).encode(), "application/json")
        for name, png in plots.items():
            self._files.put(f"{prefix}{name}.png", png, "image/png")
        get = lambda: self._datasets.get_evaluation(account_id, evaluation.evaluation_id)  # noqa: E731
        changes = {"status": DatasetStatus.READY, "metrics": metrics, "plots": sorted(plots), "claimed_at": None}
        if self._update(get, self._datasets.replace_evaluation, changes) is None:
            return "ignored: the evaluation was deleted meanwhile"
        self._files.delete_prefix(dataset_layout.evaluation_inputs_prefix(account_id, evaluation.evaluation_id))
        summary = {key: metrics[key] for key in ("items", "accuracy", "top_5", "failed") if key in metrics}
        self._end_task(
            evaluation.task_id, TaskStatus.SUCCESS, None, summary | {"evaluation_id": evaluation.evaluation_id}
        )
        return f"success: accuracy {metrics.get('accuracy')}"

    def _fail_evaluation(self, evaluation: DatasetEvaluation, message: str) -> str:
        get = lambda: self._datasets.get_evaluation(evaluation.account_id, evaluation.evaluation_id)  # noqa: E731
        changes = {"status": DatasetStatus.ERROR, "error": message, "claimed_at": None}
        if self._update(get, self._datasets.replace_evaluation, changes) is not None:
            self._end_task(evaluation.task_id, TaskStatus.ERROR, message, None)
        return f"error: {message}"


def _scores(answer: dict[str, Any] | None, output: str | None) -> list[float] | None:
    """The class scores of one job result line: the named output tensor's values (its first when unnamed)."""
    if answer is None or answer.get("status") != "success":
        return None
    tensors = (answer.get("data") or {}).get("tensors") or []
    chosen = next((t for t in tensors if output is None or t.get("name") == output), None)
    return None if chosen is None else [float(value) for value in chosen["data"]]


def _without(line: dict[str, Any], excluded: set[str]) -> dict[str, Any]:
    if not excluded:
        return line
    kept = dict(line, labels=[label for label in line["labels"] if label not in excluded])
    if line.get("objects") is not None:
        kept["objects"] = [obj for obj in line["objects"] if obj["label"] not in excluded]
    return kept


def part_sizes(total: int, percentages: list[float]) -> list[int]:
    """Items per part: floors of the exact shares, the remainder to the largest fractions (ties: earlier part)."""
    exact = [total * percentage / 100 for percentage in percentages]
    sizes = [int(share) for share in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


def draw_split(files: DatasetFiles, prefix: str, total: int, split: DatasetSplit) -> tuple[list[int], int]:
    """Each item's part (-1: excluded), drawn from the seed alone: the same seed, version and parts give the same
    items. Stratified: each label (an item's first label left after exclusions) is shuffled and cut on its own."""
    excluded = set(split.exclude_labels)
    groups: dict[str, list[int]] = {}
    assignment = [-1] * total
    left_out = 0
    for _, lines in iter_chunks(files, prefix, total):
        for line in lines:
            labels = [label for label in line["labels"] if label not in excluded]
            if excluded and not labels:
                left_out += 1
                continue
            key = (labels[0] if labels else "") if split.stratify else ""
            groups.setdefault(key, []).append(line["index"])
    percentages = [float(part["percentage"]) for part in split.parts]
    for label in sorted(groups):
        members = groups[label]
        random.Random(json.dumps([split.seed, label])).shuffle(members)
        start = 0
        for part, size in enumerate(part_sizes(len(members), percentages)):
            for index in members[start : start + size]:
                assignment[index] = part
            start += size
    return assignment, left_out
