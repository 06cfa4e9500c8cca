"""The dataset worker's jobs on in-memory fakes: one extraction whatever the duplicates, each task ended once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tensorgate.dataset_models import Dataset, DatasetEvaluation, DatasetSplit, DatasetStatus, DatasetVersion
from tensorgate.errors import ConcurrentUpdate, DuplicateName
from tensorgate.models import TaskStatus
from tensorgate.services.dataset_jobs import DatasetJobInProgress, DatasetJobService, ExtractionRejected, ItemSink
from tensorgate.services.datasets import DatasetService

from tests.fakes import CountingIdAllocator, InMemoryBlobStore, InMemoryMessageQueue, InMemoryTaskRepository


class Records:
    """The dataset repository's behaviour: versioned replaces, name guards."""

    def __init__(self) -> None:
        self.datasets: dict[tuple[str, int], Dataset] = {}
        self.versions: dict[tuple[str, int, str], DatasetVersion] = {}
        self.splits: dict[tuple[str, int], DatasetSplit] = {}
        self.evaluations: dict[tuple[str, int], DatasetEvaluation] = {}

    def put_new(self, dataset: Dataset, first: DatasetVersion, taken: DuplicateName) -> None:
        if self.get_by_name(dataset.account_id, dataset.name) is not None:
            raise taken
        self.datasets[(dataset.account_id, dataset.dataset_id)] = dataset
        self.versions[(first.account_id, first.dataset_id, first.name)] = first

    def get(self, account_id: str, dataset_id: int) -> Dataset | None:
        return self.datasets.get((account_id, dataset_id))

    def get_by_name(self, account_id: str, name: str) -> Dataset | None:
        return next((d for d in self.datasets.values() if d.account_id == account_id and d.name == name), None)

    def list_datasets(self, account_id: str) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.account_id == account_id]

    def _replace(self, table: dict[Any, Any], key: Any, record: Any, expected: int) -> None:
        if key not in table or table[key].version != expected:
            raise ConcurrentUpdate("changed meanwhile")
        table[key] = record

    def replace(self, dataset: Dataset, expected_version: int) -> None:
        self._replace(self.datasets, (dataset.account_id, dataset.dataset_id), dataset, expected_version)

    def delete(self, dataset: Dataset) -> None:
        del self.datasets[(dataset.account_id, dataset.dataset_id)]

    def put_version(self, version: DatasetVersion, taken: DuplicateName) -> None:
        self.versions[(version.account_id, version.dataset_id, version.name)] = version

    def get_version(self, account_id: str, dataset_id: int, name: str) -> DatasetVersion | None:
        return self.versions.get((account_id, dataset_id, name))

    def list_versions(self, account_id: str, dataset_id: int) -> list[DatasetVersion]:
        return [v for v in self.versions.values() if (v.account_id, v.dataset_id) == (account_id, dataset_id)]

    def replace_version(self, version: DatasetVersion, expected_version: int) -> None:
        key = (version.account_id, version.dataset_id, version.name)
        self._replace(self.versions, key, version, expected_version)

    def put_split(self, split: DatasetSplit, taken: DuplicateName) -> None:
        self.splits[(split.account_id, split.split_id)] = split

    def get_split(self, account_id: str, split_id: int) -> DatasetSplit | None:
        return self.splits.get((account_id, split_id))

    def get_split_by_name(self, account_id: str, dataset_id: int, version: str, name: str) -> DatasetSplit | None:
        return None

    def list_splits(self, account_id: str, dataset_id: int) -> list[DatasetSplit]:
        return [s for s in self.splits.values() if s.dataset_id == dataset_id]

    def replace_split(self, split: DatasetSplit, expected_version: int) -> None:
        self._replace(self.splits, (split.account_id, split.split_id), split, expected_version)

    def put_evaluation(self, evaluation: DatasetEvaluation) -> None:
        self.evaluations[(evaluation.account_id, evaluation.evaluation_id)] = evaluation

    def get_evaluation(self, account_id: str, evaluation_id: int) -> DatasetEvaluation | None:
        return self.evaluations.get((account_id, evaluation_id))

    def replace_evaluation(self, evaluation: DatasetEvaluation, expected_version: int) -> None:
        key = (evaluation.account_id, evaluation.evaluation_id)
        self._replace(self.evaluations, key, evaluation, expected_version)


class Files(InMemoryBlobStore):
    def download(self, key: str, path: str) -> None:
        Path(path).write_bytes(self.objects[key])

    def upload(self, path: str, key: str) -> None:
        self.put(key, Path(path).read_bytes())


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def two_items(
    archive: Path, workdir: Path, labels: Path | None, dataset: Dataset, sink: ItemSink, progress: Any
) -> dict[str, Any]:
    for n in range(2):
        sink.add({"name": f"{n}.jpg", "labels": ["cat"], "width": 4, "height": 3}, b"image %d" % n)
    sink.error("bad.jpg", "'bad.jpg': The image file is truncated or corrupt and cannot be decoded.")
    return {"layout": "folders", "classes": {"cat": 0}, "label_counts": {"cat": 2}}


def world(extractor: Callable[..., dict[str, Any]] = two_items) -> tuple[DatasetService, DatasetJobService, Any, Clock]:
    records, tasks, files, clock = Records(), InMemoryTaskRepository(), Files(), Clock()
    api = DatasetService(records, tasks, CountingIdAllocator(), files, InMemoryMessageQueue(), clock=clock)
    jobs = DatasetJobService(records, tasks, files, extractor=extractor, clock=clock)
    return api, jobs, (records, tasks, files), clock


def test_an_extraction_runs_once_and_ends_its_task_once_under_duplicate_messages() -> None:
    api, jobs, (records, tasks, files), _ = world()
    created = api.create("acct", "me", {"name": "pets"})
    assert jobs.handle_upload(created.dataset.archive_key) == "ignored: waiting for the archive or the label file"
    files.put(created.dataset.archive_key, b"zip")
    assert jobs.handle_upload(created.dataset.archive_key).startswith("success: 2 items, 1 item errors")
    ended = tasks.get(created.dataset.task_id)
    assert ended is not None and ended.status is TaskStatus.SUCCESS and ended.data["items"] == 2
    assert jobs.handle_upload(created.dataset.archive_key).startswith("ignored: the extraction already ended")
    assert tasks.get(created.dataset.task_id) == ended
    dataset = records.get("acct", created.dataset.dataset_id)
    assert dataset.status is DatasetStatus.READY and dataset.extraction["errors"][0]["item"] == "bad.jpg"
    assert records.get_version("acct", dataset.dataset_id, "v1").items == 2


def test_a_duplicate_during_a_live_claim_comes_back_later_and_a_dead_workers_claim_is_taken_over() -> None:
    api, jobs, (records, tasks, files), clock = world()
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    claimed = created.dataset.model_copy(update={"claimed_at": clock.now, "version": created.dataset.version + 1})
    records.replace(claimed, created.dataset.version)
    with pytest.raises(DatasetJobInProgress):
        jobs.handle_upload(created.dataset.archive_key)
    clock.now += timedelta(minutes=25)  # past the claim's expiry: its worker died
    assert jobs.handle_upload(created.dataset.archive_key).startswith("success")


def test_a_rejected_archive_ends_the_dataset_and_its_task_in_error_with_the_sentence() -> None:
    def nothing(*_: Any) -> dict[str, Any]:
        raise ExtractionRejected("The archive holds no images to extract.")

    api, jobs, (records, tasks, files), _ = world(nothing)
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    assert jobs.handle_upload(created.dataset.archive_key) == "error: The archive holds no images to extract."
    task = tasks.get(created.dataset.task_id)
    assert (
        task is not None and task.status is TaskStatus.ERROR and task.error == "The archive holds no images to extract."
    )
    assert records.get("acct", created.dataset.dataset_id).status is DatasetStatus.ERROR


def test_a_crash_releases_the_claim_and_the_last_delivery_gives_up_with_a_sentence() -> None:
    def crash(*_: Any) -> dict[str, Any]:
        raise OSError("disk full")

    api, jobs, (records, tasks, files), _ = world(crash)
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    with pytest.raises(OSError):
        jobs.handle_upload(created.dataset.archive_key)
    assert records.get("acct", created.dataset.dataset_id).claimed_at is None  # the next delivery retries at once
    assert jobs.give_up(created.dataset.archive_key, None, "The dataset job failed 3 times (OSError); retry it.")
    task = tasks.get(created.dataset.task_id)
    assert task is not None and task.status is TaskStatus.ERROR and "failed 3 times" in (task.error or "")
    assert not jobs.give_up(created.dataset.archive_key, None, "again")  # already ended: nothing changes


def test_progress_is_written_on_the_pending_task_at_most_every_two_seconds() -> None:
    seen: list[Any] = []

    def slow(archive: Path, workdir: Path, labels: Path | None, dataset: Dataset, sink: ItemSink, progress: Any) -> Any:
        for done in range(0, 10, 2):
            progress(done, 10)
            seen.append(tasks.get(dataset.task_id).data)  # type: ignore[union-attr]
            clock.now += timedelta(seconds=1.5)
        return two_items(archive, workdir, labels, dataset, sink, progress)

    api, jobs, (records, tasks, files), clock = world(slow)
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    jobs.handle_upload(created.dataset.archive_key)
    assert [data["progress"]["done"] for data in seen] == [0, 0, 4, 4, 8]


class Jobs:
    """The batch jobs service as the evaluation sees it: create over a split's part, then its status."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.created: list[dict[str, Any]] = []
        self.status = "running"

    def create(self, account_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        self.created.append(fields)
        return {"id": 900, "status": "running", "total": 2}

    def get(self, account_id: str, job_id: int) -> dict[str, Any]:
        return {"id": job_id, "status": self.status, "done": 3}


class LaterQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send_later(self, body: dict[str, Any], delay_seconds: int) -> str:
        self.sent.append((body, delay_seconds))
        return "m"


def test_an_evaluation_runs_a_job_over_the_part_checks_back_and_scores_its_answers_once() -> None:
    from tensorgate import layout
    from tensorgate_preprocessing.metrics import classification_metrics

    api, _, (records, tasks, files), clock = world()
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    jobs_port, queue = Jobs(files), LaterQueue()

    def score(truth: list[int], scores: list[list[float]], labels: list[str]) -> Any:
        return classification_metrics(truth, scores, labels), {"confusion_matrix": b"png"}

    jobs = DatasetJobService(
        records,
        tasks,
        files,
        extractor=two_items,
        clock=clock,
        evaluator=score,
        jobs=jobs_port,
        queue=queue,
        bucket="b",
    )
    jobs.handle_upload(created.dataset.archive_key)
    split = api.create_split(
        "acct", "me", created.dataset.dataset_id, {"name": "s", "parts": [{"name": "test", "percentage": 100}]}
    )
    jobs.split("acct", split.split_id)
    now = clock.now
    evaluation = DatasetEvaluation(
        account_id="acct",
        evaluation_id=5,
        dataset_id=created.dataset.dataset_id,
        split_id=split.split_id,
        part="test",
        network_id=1,
        output_tensor="prob",
        author="me",
        task_id=77,
        create_date=now,
        update_date=now,
    )
    records.put_evaluation(evaluation)
    from tensorgate.models import Task, TaskKind

    tasks.put_new(Task(task_id=77, account_id="acct", kind=TaskKind.EVALUATION, create_date=now, update_date=now))

    # First delivery: the job created over the split's part (nothing copied), a check queued.
    before = dict(files.objects)
    assert jobs.evaluate("acct", 5) == "waiting: job 900 runs 2 items"
    assert jobs_port.created[0]["inputs"] == {
        "split": {"dataset_id": created.dataset.dataset_id, "split_id": split.split_id, "part": "test"}
    }
    assert jobs_port.created[0]["network_id"] == 1 and jobs_port.created[0]["output_tensors"] == ["prob"]
    assert files.objects.keys() == before.keys()
    assert queue.sent[-1] == (
        {"dataset_job": {"kind": "evaluate", "account_id": "acct", "evaluation_id": 5, "checks": 1}},
        2,
    )
    # While the job runs: checked again later, each time twice as late up to every 10 s, nothing scored.
    assert jobs.evaluate("acct", 5, checks=1) == "waiting: job 900 is running" and len(queue.sent) == 2
    assert queue.sent[-1][1] == 4 and queue.sent[-1][0]["dataset_job"]["checks"] == 2
    assert jobs.evaluate("acct", 5, checks=5) == "waiting: job 900 is running" and queue.sent[-1][1] == 10
    # Once it ended: item 0 answered cat (the only class), item 1 failed.
    jobs_port.status = "success"
    results = [
        {"index": 0, "status": "success", "data": {"tensors": [{"name": "prob", "shape": [1, 1], "data": [0.9]}]}},
        {"index": 1, "status": "error", "error": "The image could not be fetched."},
    ]
    files.put(layout.job_results_key("acct", 900), b"\n".join(json.dumps(line).encode() for line in results))
    assert jobs.evaluate("acct", 5).startswith("success")
    ended = records.get_evaluation("acct", 5)
    assert ended is not None and ended.metrics is not None
    assert ended.status is DatasetStatus.READY and ended.metrics["accuracy"] == 1.0 and ended.metrics["failed"] == 1
    assert ended.plots == ["confusion_matrix"]
    assert tasks.get(77).status is TaskStatus.SUCCESS  # type: ignore[union-attr]
    assert jobs.evaluate("acct", 5).startswith("ignored: the evaluation already ended")


def test_a_dataset_deleted_during_its_extraction_leaves_no_item_behind() -> None:
    holder: dict[str, Any] = {}

    def deleting(
        archive: Path, workdir: Path, labels: Path | None, dataset: Dataset, sink: ItemSink, progress: Any
    ) -> Any:
        summary = two_items(archive, workdir, labels, dataset, sink, progress)
        holder["api"].delete(dataset.account_id, dataset.dataset_id)
        return summary

    api, jobs, (records, tasks, files), _ = world(deleting)
    holder["api"] = api
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    assert jobs.handle_upload(created.dataset.archive_key) == "ignored: the dataset was deleted during the extraction"
    assert not [key for key in files.objects if key.startswith("datasets/")]


def many_items(count: int, during: Callable[[int], None] = lambda n: None) -> Callable[..., dict[str, Any]]:
    """An extractor of `count` items that calls `during(n)` before adding item n."""

    def extract(
        archive: Path, workdir: Path, labels: Path | None, dataset: Dataset, sink: ItemSink, progress: Any
    ) -> dict[str, Any]:
        for n in range(count):
            during(n)
            sink.add({"name": f"{n}.jpg", "labels": ["cat"], "width": 4, "height": 3}, b"image %d" % n)
        return {"layout": "folders", "classes": {"cat": 0}, "label_counts": {"cat": count}}

    return extract


def objects_under(files: Files, prefix: str) -> list[str]:
    return [key for key in files.objects if key.startswith(prefix)]


def test_an_extraction_cancelled_while_it_runs_stops_at_the_chunks_end_and_leaves_no_item() -> None:
    from tensorgate import dataset_layout
    from tensorgate.errors import DatasetNotReady

    cancel_at = {200}
    added: list[int] = []

    def during(n: int) -> None:
        added.append(n)
        if n in cancel_at:
            api.cancel_extraction("acct", created.dataset.dataset_id)

    api, jobs, (records, tasks, files), _ = world(many_items(1500, during))
    created = api.create("acct", "me", {"name": "pets"})
    dataset_id = created.dataset.dataset_id
    files.put(created.dataset.archive_key, b"zip")

    # The cancel lands at item 200: the worker stops at the end of the first chunk of 1,000, its items removed
    assert jobs.handle_upload(created.dataset.archive_key).startswith("cancelled")
    assert len(added) == 1000
    assert objects_under(files, dataset_layout.version_prefix("acct", dataset_id, "v1")) == []
    dataset, first = records.get("acct", dataset_id), records.get_version("acct", dataset_id, "v1")
    assert dataset is not None and dataset.status is DatasetStatus.CANCELLED
    assert first is not None and first.status is DatasetStatus.CANCELLED
    task = tasks.get(created.dataset.task_id)
    assert task is not None and task.status is TaskStatus.ERROR and task.error == "Cancelled on request."
    # Cancelling again answers the same; a duplicate message is dropped
    assert api.cancel_extraction("acct", dataset_id).status is DatasetStatus.CANCELLED
    assert jobs.handle_upload(created.dataset.archive_key).startswith("ignored")
    # A retry extracts again, whole; a ready dataset cannot be cancelled
    cancel_at.clear()
    retried = api.retry("acct", dataset_id, {})
    assert jobs.extract("acct", dataset_id, task_id=retried.dataset.task_id).startswith("success: 1500 items")
    with pytest.raises(DatasetNotReady, match="only a pending job can be cancelled"):
        api.cancel_extraction("acct", dataset_id)


class Transformed:
    def __init__(self, data: bytes) -> None:
        self.data, self.width, self.height, self.boxes, self.kept = data, 4, 3, [], []


def test_a_transformation_cancelled_while_it_runs_leaves_no_item_and_v1_cannot_be_cancelled_as_a_version() -> None:
    from tensorgate import dataset_layout
    from tensorgate.errors import ValidationFailed

    api, jobs, (records, tasks, files), clock = world(many_items(1500))
    created = api.create("acct", "me", {"name": "pets"})
    dataset_id = created.dataset.dataset_id
    files.put(created.dataset.archive_key, b"zip")
    jobs.handle_upload(created.dataset.archive_key)
    version = api.create_version("acct", "me", dataset_id, {"name": "small", "transformations": [{"grayscale": True}]})
    calls: list[bytes] = []

    def transformer(data: bytes, steps: list[dict[str, Any]], boxes: list[list[float]]) -> Transformed:
        calls.append(data)
        if len(calls) == 10:
            api.cancel_version("acct", dataset_id, "small")
        return Transformed(data)

    worker = DatasetJobService(records, tasks, files, transformer=transformer, clock=clock)
    assert worker.transform("acct", dataset_id, "small").startswith("cancelled")
    assert len(calls) == 1000
    assert objects_under(files, dataset_layout.version_prefix("acct", dataset_id, "small")) == []
    cancelled = records.get_version("acct", dataset_id, "small")
    assert cancelled is not None and cancelled.status is DatasetStatus.CANCELLED
    assert tasks.get(version.task_id).status is TaskStatus.ERROR  # type: ignore[union-attr]
    assert worker.transform("acct", dataset_id, "small").startswith("ignored")
    with pytest.raises(ValidationFailed, match="made by the extraction"):
        api.cancel_version("acct", dataset_id, "v1")


def test_a_cancelled_evaluation_cancels_its_batch_job_and_scores_nothing() -> None:
    api, _, (records, tasks, files), clock = world()
    jobs_port, queue = CancellableJobs(files), LaterQueue()
    api = DatasetService(
        records, tasks, CountingIdAllocator(), files, InMemoryMessageQueue(), clock=clock, jobs=lambda: jobs_port
    )
    created = api.create("acct", "me", {"name": "pets"})
    files.put(created.dataset.archive_key, b"zip")
    worker = DatasetJobService(
        records, tasks, files, extractor=two_items, clock=clock, jobs=jobs_port, queue=queue, bucket="b"
    )
    worker.handle_upload(created.dataset.archive_key)
    split = api.create_split(
        "acct", "me", created.dataset.dataset_id, {"name": "s", "parts": [{"name": "test", "percentage": 100}]}
    )
    worker.split("acct", split.split_id)
    now = clock.now
    records.put_evaluation(
        DatasetEvaluation(
            account_id="acct",
            evaluation_id=5,
            dataset_id=created.dataset.dataset_id,
            split_id=split.split_id,
            part="test",
            network_id=1,
            author="me",
            task_id=77,
            create_date=now,
            update_date=now,
        )
    )
    from tensorgate.models import Task, TaskKind

    tasks.put_new(Task(task_id=77, account_id="acct", kind=TaskKind.EVALUATION, create_date=now, update_date=now))
    assert worker.evaluate("acct", 5) == "waiting: job 900 runs 2 items"

    evaluation = api.cancel_evaluation("acct", created.dataset.dataset_id, split.split_id, 5)
    assert evaluation.status is DatasetStatus.CANCELLED and jobs_port.cancelled == [900]
    assert tasks.get(77).status is TaskStatus.ERROR  # type: ignore[union-attr]
    # The check queued before the cancel finds it cancelled: the job is cancelled again (idempotent), nothing scored
    assert worker.evaluate("acct", 5).startswith("cancelled")
    assert records.get_evaluation("acct", 5).metrics is None  # type: ignore[union-attr]
    assert api.cancel_evaluation("acct", created.dataset.dataset_id, split.split_id, 5).version == evaluation.version


class CancellableJobs(Jobs):
    def __init__(self, files: Files) -> None:
        super().__init__(files)
        self.cancelled: list[int] = []

    def cancel(self, account_id: str, job_id: int) -> dict[str, Any]:
        self.cancelled.append(job_id)
        return {"id": job_id, "status": "cancelled"}
