"""JobService, JobSettler and the worker's TaskResults against in-memory ports: fan-out, counting once, cancel."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from tensorgate.errors import (
    EndpointNotFound,
    EndpointShutdown,
    JobNotFound,
    JobNotRunning,
    NetworkNotReady,
    RecognitionSpecNotFound,
    RecognitionVersionNotFound,
    ValidationFailed,
)
from tensorgate.job_models import Job, JobProgress, JobStatus
from tensorgate.listing import ListQuery, ListResult
from tensorgate.messages import RecognitionPlan
from tensorgate.models import Endpoint, EndpointStatus, Network, NetworkStatus, Task, TaskKind, TaskStatus
from tensorgate.services.jobs import CANCELLED_ITEM, JobPolicy, JobService, JobTargets

from functions.worker.pipeline import Outcome
from functions.worker.results import TaskResults
from tests.fakes import InMemoryBlobStore, InMemoryNetworkRepository, InMemoryTaskRepository

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BUCKET = "models"
URLS = [f"https://images.example.test/{index}.jpg" for index in range(5)]


class InMemoryJobRepository:
    """Jobs beside their items in the task fake, with DynamoDB's conditions: each item counted once."""

    def __init__(self, tasks: InMemoryTaskRepository) -> None:
        self.tasks = tasks
        self.jobs: dict[int, Job] = {}
        self.progress: dict[int, JobProgress] = {}
        self.counted: dict[int, set[int]] = {}
        self.sent: set[int] = set()
        self.next_id = 0

    def reserve_ids(self, counter: str, count: int) -> int:
        first = self.next_id + 1
        self.next_id += count
        return first

    def put_items(self, items: Sequence[Task]) -> None:
        for item in items:
            self.tasks.put_new(item)

    def delete_items(self, task_ids: Sequence[int]) -> None:
        for task_id in task_ids:
            self.tasks.delete(task_id)
            self.jobs.pop(task_id, None)

    def put_job(self, task: Task, job: Job, status: JobStatus = JobStatus.RUNNING) -> None:
        self.tasks.put_new(task)
        self.jobs[job.job_id] = job
        self.progress[job.job_id] = JobProgress(status=status)
        self.counted[job.job_id] = set()

    def get_job(self, job_id: int) -> tuple[Task, Job, JobProgress] | None:
        task = self.tasks.get(job_id)
        if task is None or job_id not in self.jobs:
            return None
        return task, self.jobs[job_id], self.progress[job_id]

    def progress_many(self, job_ids: Iterable[int]) -> dict[int, JobProgress]:
        return {job_id: self.progress[job_id] for job_id in job_ids if job_id in self.jobs}

    def count_item(self, job_id: int, item_id: int, counter: str) -> bool:
        if job_id not in self.jobs or item_id in self.counted[job_id]:
            return False
        self.counted[job_id].add(item_id)
        current = self.progress[job_id]
        self.progress[job_id] = replace(current, **{counter: getattr(current, counter) + 1})
        return True

    def cancel(self, job_id: int) -> bool:
        if self.progress[job_id].status is not JobStatus.RUNNING:
            return False
        self.progress[job_id] = replace(self.progress[job_id], status=JobStatus.CANCELLED)
        return True

    def settle(
        self, task: Task, expected: JobStatus, status: JobStatus, results_key: str, errors: list[dict[str, Any]]
    ) -> bool:
        current = self.progress[task.task_id]
        if current.status is not expected or current.results_key is not None:
            return False
        self.progress[task.task_id] = replace(current, status=status, results_key=results_key, errors=tuple(errors))
        self.tasks.records[task.task_id] = task
        return True

    def get_items(self, task_ids: Iterable[int]) -> list[Task]:
        return self.tasks.get_many(task_ids)

    def page(self, account_id: str, query: ListQuery) -> ListResult[Job]:
        mine = [job for job in self.jobs.values() if job.account_id == account_id]
        return ListResult(count=len(mine), items=mine[query.offset : query.offset + query.limit])

    def last_named(self, account_id: str, name: str) -> int | None:
        named = [job.job_id for job in self.jobs.values() if job.account_id == account_id and job.name == name]
        return max(named, default=None)

    def start(self, job: Job) -> bool:
        if self.progress[job.job_id].status is not JobStatus.PENDING:
            return False
        self.jobs[job.job_id] = job
        self.progress[job.job_id] = replace(self.progress[job.job_id], status=JobStatus.RUNNING)
        return True

    def fail(self, task: Task, status: JobStatus = JobStatus.ERROR) -> bool:
        if self.progress[task.task_id].status is not JobStatus.PENDING:
            return False
        self.progress[task.task_id] = replace(self.progress[task.task_id], status=status, error=task.error)
        self.tasks.records[task.task_id] = task
        return True

    def fanned_out(self, job_id: int) -> bool:
        return job_id in self.sent

    def mark_fanned_out(self, job_id: int) -> None:
        self.sent.add(job_id)


class Files(InMemoryBlobStore):
    def list_keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects if key.startswith(prefix))

    def presigned_get(self, key: str, expires_in: int) -> str:
        return f"https://{BUCKET}.example.test/{key}?expires={expires_in}"


class Queue:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send_many(self, bodies: Sequence[dict[str, Any]]) -> None:
        self.bodies.extend(bodies)


PLAN = RecognitionPlan(
    spec_id=3,
    version_id=4,
    labels=[[{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]],
    post_processings=[{"classification": {"output_tensor": "prob", "thresholds": [0.5, 0.5]}}],
)


class Recognition:
    """Version 4 of spec 3 runs on network 1; any other id names nothing."""

    def version_plan(self, account_id: str, version_id: int) -> tuple[int, RecognitionPlan]:
        if version_id != 4:
            raise RecognitionVersionNotFound(version_id)
        return 1, PLAN

    def spec_plan(self, account_id: str, spec_id: int) -> tuple[int, RecognitionPlan]:
        if spec_id != 3:
            raise RecognitionSpecNotFound(spec_id)
        return 1, PLAN


class Endpoints:
    """Endpoint 7 (running) targets version 4; endpoint 8 is shut down."""

    def get(self, account_id: str, endpoint_id: int) -> Endpoint:
        if endpoint_id not in (7, 8):
            raise EndpointNotFound(endpoint_id)
        status = EndpointStatus.RUNNING if endpoint_id == 7 else EndpointStatus.SHUTDOWN
        return Endpoint(
            account_id=account_id,
            endpoint_id=endpoint_id,
            name=f"pets {endpoint_id}",
            author="me",
            target={"recognition_version_id": 4},
            status=status,
            create_date=NOW,
            update_date=NOW,
        )


class Harness:
    def __init__(self, status: NetworkStatus = NetworkStatus.READY) -> None:
        self.tasks = InMemoryTaskRepository()
        self.jobs = InMemoryJobRepository(self.tasks)
        self.files = Files()
        self.queue = Queue()
        self.networks = networks = InMemoryNetworkRepository()
        networks.put_new(
            Network(
                account_id="acme",
                network_id=1,
                name="net",
                framework="onnx",
                task_id=1,
                status=status,
                upload_prefix="uploads/acme/1/",
                preprocessing={"inputs": [{"tensor_name": "image", "image": {"target_size": "8x8"}}]},
                outputs=[{"name": "prob", "dtype": "float32", "shape": ["N", 2]}],
                create_date=NOW,
                update_date=NOW,
            )
        )
        self.service = JobService(
            self.jobs,
            networks,
            self.files,
            self.queue,
            JobPolicy(bucket=BUCKET, max_items=10),
            clock=lambda: NOW,
            targets=JobTargets(Recognition(), Endpoints()),
        )
        self.results = TaskResults(
            self.tasks, self.files, 350_000, clock=lambda: NOW, jobs=self.jobs, settler=self.service.settler
        )

    def create(self, **inputs: Any) -> dict[str, Any]:
        return self.service.create("acme", {"name": "job", "network_id": 1, "inputs": inputs or {"urls": URLS}})

    def run(self, outcomes: list[Outcome]) -> set[int]:
        """The worker's completion of a round of outcomes."""
        return self.results.end(outcomes)

    def outcome(self, body: dict[str, Any], failed: bool = False) -> Outcome:
        if failed:
            return Outcome(body["task_id"], error="The image could not be decoded.")
        return Outcome(body["task_id"], data={"tensors": [{"name": "prob", "shape": [1, 2], "data": [0.5, 0.5]}]})

    def lines(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        key = self.jobs.progress[job["id"]].results_key
        assert key is not None
        return [json.loads(line) for line in self.files.objects[key].decode().splitlines()]


def test_job_service_create_over_urls_queues_one_item_per_url_in_input_order() -> None:
    harness = Harness()
    job = harness.create()
    assert (job["status"], job["total"], job["done"], job["results_url"]) == ("running", 5, 0, None)
    assert [body["inputs"][0]["source"]["url"] for body in harness.queue.bodies] == URLS
    assert {body["job_id"] for body in harness.queue.bodies} == {job["id"]}
    assert [body["task_id"] for body in harness.queue.bodies] == list(range(job["id"] + 1, job["id"] + 6))
    batch = harness.tasks.get(job["task_id"])
    assert batch is not None and (batch.kind, batch.status) == (TaskKind.BATCH, TaskStatus.PENDING)


def test_job_service_create_over_a_prefix_takes_its_objects_in_key_order() -> None:
    harness = Harness()
    for name in ("b.jpg", "a.jpg", "c/d.png"):
        harness.files.put(f"uploads/acme/shelves/{name}", b"image")
    harness.files.put("uploads/other/shelves/x.jpg", b"image")
    job = harness.create(prefix=f"s3://{BUCKET}/uploads/acme/shelves/")
    assert job["total"] == 3
    keys = [body["inputs"][0]["source"]["key"] for body in harness.queue.bodies]
    assert keys == ["uploads/acme/shelves/a.jpg", "uploads/acme/shelves/b.jpg", "uploads/acme/shelves/c/d.png"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"inputs": {"urls": URLS, "prefix": f"s3://{BUCKET}/uploads/acme/"}}, "exactly one of urls, prefix and"),
        ({"inputs": {}}, "exactly one of urls, prefix and archive"),
        ({"inputs": {"urls": ["ftp://images.example.test/1.jpg"]}}, "inputs.urls[0] must be an http(s) URL"),
        ({"inputs": {"prefix": f"s3://{BUCKET}/uploads/other/"}}, "under your upload prefix"),
        ({"inputs": {"prefix": "s3://another-bucket/uploads/acme/"}}, "under your upload prefix"),
        ({"inputs": {"prefix": f"s3://{BUCKET}/uploads/acme/empty/"}}, "name no item"),
        ({"inputs": {"urls": URLS * 3}}, "over the 10 one job takes"),
        ({"network_id": 7}, "No network with id 7"),
        ({"recognition_version_id": 3}, "name exactly one target"),
        ({"network_id": None, "recognition_version_id": 9}, "No recognition version with id 9"),
        ({"network_id": None, "recognition_spec_id": 9}, "No recognition spec with id 9"),
        ({"network_id": None, "endpoint_id": 9}, "endpoint"),
        ({"name": ""}, "name"),
    ],
)
def test_job_service_create_bad_request_is_refused_with_a_sentence_and_writes_nothing(
    fields: dict[str, Any], words: str
) -> None:
    harness = Harness()
    with pytest.raises(ValidationFailed) as refused:
        harness.service.create("acme", {"name": "job", "network_id": 1, "inputs": {"urls": URLS}} | fields)
    assert words in refused.value.message
    assert harness.queue.bodies == [] and harness.tasks.records == {} and harness.files.objects == {}


@pytest.mark.parametrize("target", [{"recognition_version_id": 4}, {"recognition_spec_id": 3}, {"endpoint_id": 7}])
def test_job_through_a_recognition_target_runs_its_network_and_carries_its_plan(target: dict[str, int]) -> None:
    harness = Harness()
    job = harness.service.create("acme", {"name": "job", "inputs": {"urls": URLS}} | target)
    assert job["network_id"] == 1
    assert {name: job[name] for name in target} == target
    assert [RecognitionPlan.model_validate(body["recognition"]) for body in harness.queue.bodies] == [PLAN] * 5


def test_job_through_a_shut_down_endpoint_is_refused() -> None:
    harness = Harness()
    with pytest.raises(EndpointShutdown, match="shut down"):
        harness.service.create("acme", {"name": "job", "endpoint_id": 8, "inputs": {"urls": URLS}})
    assert harness.queue.bodies == []


def test_job_on_a_network_without_one_image_input_is_refused() -> None:
    harness = Harness()
    network = harness.networks.get("acme", 1)
    assert network is not None
    harness.networks.replace(network.model_copy(update={"preprocessing": None, "version": 2}), expected_version=1)
    with pytest.raises(ValidationFailed, match="exactly one image input"):
        harness.create()
    assert harness.queue.bodies == []


def test_job_service_create_on_a_network_not_ready_answers_not_ready() -> None:
    with pytest.raises(NetworkNotReady):
        Harness(NetworkStatus.PENDING).create()


def test_job_items_counted_once_whatever_the_redeliveries_and_results_in_input_order() -> None:
    # Given a job of five items
    harness = Harness()
    job = harness.create()
    bodies = harness.queue.bodies
    # When the worker ends them out of order, one failing, one delivered twice in a round and again later
    harness.run([harness.outcome(bodies[3]), harness.outcome(bodies[1], failed=True), harness.outcome(bodies[3])])
    harness.run([harness.outcome(bodies[0]), harness.outcome(bodies[4])])
    assert harness.service.get("acme", job["id"])["status"] == "running"
    harness.run([harness.outcome(bodies[2]), harness.outcome(bodies[0])])
    # Then each item counted once, the job settled, its results one line per input in order
    ended = harness.service.get("acme", job["id"])
    assert (ended["status"], ended["done"], ended["failed"], ended["cancelled"]) == ("success", 4, 1, 0)
    assert ended["results_url"] and ended["results_url"].endswith("results.jsonl?expires=3600")
    assert ended["errors"] == [{"index": 1, "input": URLS[1], "error": "The image could not be decoded."}]
    lines = harness.lines(job)
    assert [(line["index"], line["input"], line["status"]) for line in lines] == [
        (index, url, "error" if index == 1 else "success") for index, url in enumerate(URLS)
    ]
    task = harness.tasks.get(job["task_id"])
    assert task is not None and task.status is TaskStatus.SUCCESS and task.data["done"] == 4


def test_job_item_ended_by_a_worker_that_died_before_counting_it_is_counted_by_the_next_delivery() -> None:
    harness = Harness()
    job = harness.create(urls=URLS[:2])
    first, second = harness.queue.bodies
    harness.run([harness.outcome(first)])
    # A worker ended the second item's task, then died before counting it
    item = harness.tasks.get(second["task_id"])
    assert item is not None
    harness.tasks.finish(item.model_copy(update={"status": TaskStatus.SUCCESS, "data": {"tensors": []}}))
    assert harness.service.get("acme", job["id"])["done"] == 1
    # Its message comes back: nothing is written again, the item is counted and the job settles
    harness.run([harness.outcome(second)])
    ended = harness.service.get("acme", job["id"])
    assert (ended["status"], ended["done"]) == ("success", 2)


def test_job_cancelled_settles_once_its_last_items_end_cancelled_and_refuses_a_second_cancel() -> None:
    harness = Harness()
    job = harness.create()
    bodies = harness.queue.bodies
    harness.run([harness.outcome(bodies[0])])
    assert harness.service.cancel("acme", job["id"])["status"] == "cancelled"
    # The worker meets the items that had not started: each ends skipped
    harness.run([Outcome(body["task_id"], error=CANCELLED_ITEM, skipped=True) for body in bodies[1:]])
    ended = harness.service.get("acme", job["id"])
    assert (ended["status"], ended["done"], ended["failed"], ended["cancelled"]) == ("cancelled", 1, 0, 4)
    assert [line["status"] for line in harness.lines(job)] == ["success"] + ["error"] * 4
    task = harness.tasks.get(job["task_id"])
    assert task is not None and task.status is TaskStatus.ERROR and "Cancelled" in str(task.error)
    with pytest.raises(JobNotRunning, match="cancelled"):
        harness.service.cancel("acme", job["id"])


def test_job_of_another_account_answers_not_found() -> None:
    harness = Harness()
    job = harness.create()
    with pytest.raises(JobNotFound):
        harness.service.get("other", job["id"])
    with pytest.raises(JobNotFound):
        harness.service.cancel("other", job["id"])


def test_job_item_dead_lettered_ends_failed_counted_once_and_settles_the_job() -> None:
    harness = Harness()
    job = harness.create(urls=URLS[:2])
    first, second = harness.queue.bodies
    harness.run([harness.outcome(first)])
    # The second item's message kept failing: the dead-letter handler ends it, twice if delivered twice
    assert harness.service.fail_item(second["task_id"], "The inference did not complete.", harness.tasks)
    assert not harness.service.fail_item(second["task_id"], "The inference did not complete.", harness.tasks)
    ended = harness.service.get("acme", job["id"])
    assert (ended["status"], ended["done"], ended["failed"]) == ("success", 1, 1)
    assert [line["status"] for line in harness.lines(job)] == ["success", "error"]
    # An item the worker ended meanwhile is only counted, never rewritten
    assert not harness.service.fail_item(first["task_id"], "late", harness.tasks)
    item = harness.tasks.get(first["task_id"])
    assert item is not None and item.status is TaskStatus.SUCCESS
