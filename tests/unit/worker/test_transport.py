"""The worker's moving parts without AWS: dynamic batching, held messages, heartbeats, result writing."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from tensorgate.models import Task, TaskKind, TaskStatus

from functions.worker.main import Batcher, Delivery, InFlight, Worker, runtime_options
from functions.worker.pipeline import Outcome
from functions.worker.results import TaskResults
from functions.worker.runtime import CPU, CUDA
from functions.worker.settings import WorkerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sample(key: str, ready_at: float, max_batch_size: int = 3, delay_ms: int = 50) -> Any:
    plan = SimpleNamespace(max_batch_size=max_batch_size, max_queue_delay_ms=delay_ms)
    return SimpleNamespace(batch_key=key, ready_at=ready_at, plan=plan, name=f"{key}@{ready_at}")


def delivery(n: int, visible_until: float = 0.0) -> Delivery:
    return Delivery(message_id=f"m{n}", receipt_handle=f"r{n}", body="{}", receive_count=1, visible_until=visible_until)


def names(batch: Any) -> list[str]:
    return [item.name for item, _ in batch]


def test_batcher_full_batch_is_released_at_once() -> None:
    clock = Clock()
    batcher = Batcher(clock)
    for n in range(4):
        batcher.put(sample("net", clock.now), delivery(n))
    batch = batcher.take(timeout=0)
    assert batch is not None and len(batch) == 3 and batcher.pending() == 1


def test_batcher_partial_batch_waits_for_its_delay() -> None:
    clock = Clock()
    batcher = Batcher(clock)
    batcher.put(sample("net", clock.now, delay_ms=50), delivery(0))
    assert batcher.take(timeout=0) is None
    clock.now += 0.049
    assert batcher.take(timeout=0) is None
    clock.now += 0.002
    batch = batcher.take(timeout=0)
    assert batch is not None and len(batch) == 1


def test_batcher_real_time_delay_wakes_the_runner() -> None:
    batcher = Batcher()
    batcher.put(sample("net", time.monotonic(), delay_ms=30), delivery(0))
    started = time.monotonic()
    batch = batcher.take(timeout=2)
    waited = time.monotonic() - started
    assert batch is not None and 0.02 <= waited < 0.5


def test_batcher_keeps_networks_and_input_sizes_apart_and_serves_the_oldest_first() -> None:
    clock = Clock()
    batcher = Batcher(clock)
    batcher.put(sample("b", 100.0), delivery(0))
    batcher.put(sample("a", 99.0), delivery(1))
    batcher.put(sample("b", 100.0), delivery(2))
    clock.now = 101.0
    first, second = batcher.take(timeout=0), batcher.take(timeout=0)
    assert names(first) == ["a@99.0"] and names(second) == ["b@100.0", "b@100.0"]


def test_batcher_flush_hands_out_what_is_left_then_reports_empty() -> None:
    clock = Clock()
    batcher = Batcher(clock)
    batcher.put(sample("net", clock.now, delay_ms=10_000), delivery(0))
    batcher.flush()
    batch = batcher.take(timeout=5)
    assert batch is not None and len(batch) == 1
    assert batcher.take(timeout=5) is None


def test_in_flight_room_waits_for_a_slot() -> None:
    held = InFlight(limit=2)
    held.add([delivery(0), delivery(1)])
    assert held.room(timeout=0.05) == 0
    threading.Timer(0.1, lambda: held.remove([delivery(0)])).start()
    assert held.room(timeout=2) == 1


def test_in_flight_holds_a_message_delivered_twice_once_with_its_newest_receipt_handle() -> None:
    held = InFlight(limit=10)
    first = delivery(0, visible_until=100.0)
    again = Delivery(message_id="m0", receipt_handle="r0-again", body="{}", receive_count=2, visible_until=130.0)

    assert held.add([first, delivery(1)]) == [first, delivery(1)]
    assert held.add([again, delivery(2)]) == [delivery(2)]

    # The duplicate is not handed out again; the held delivery deletes with the handle SQS gave last
    assert len(held) == 3
    assert first.receipt_handle == "r0-again" and first.visible_until == 130.0
    held.remove([first])
    assert len(held) == 2


@dataclass
class FakeQueue:
    extended: list[tuple[list[str], int]] = field(default_factory=list)

    def extend(self, handles: list[str], seconds: int) -> None:
        self.extended.append((handles, seconds))


def test_heartbeat_extends_only_messages_about_to_reappear() -> None:
    clock = Clock()
    settings = WorkerSettings(shared=None, visibility_seconds=120, heartbeat_seconds=30)  # type: ignore[arg-type]
    fake = FakeQueue()
    worker = Worker(settings, fake, pipeline=None, results=None, clock=clock)  # type: ignore[arg-type]
    soon, later = delivery(0, visible_until=150.0), delivery(1, visible_until=200.0)
    worker._in_flight.add([soon, later])
    # Held until 150 and 200; the next two heartbeats reach 160: only the first needs more time.
    assert worker.heartbeat() == 1
    assert fake.extended == [(["r0"], 120)] and soon.visible_until == 220.0 and later.visible_until == 200.0


@dataclass
class RedeliveringQueue:
    """SQS handing a released message straight back to another receiver of the same worker."""

    worker: Worker | None = None
    handed_out: list[Delivery] = field(default_factory=list)

    def extend(self, handles: list[str], seconds: int) -> None:
        assert self.worker is not None
        if seconds == 0:
            self.worker.receive_once(lambda _fetch, delivery: self.handed_out.append(delivery))

    def receive(self, max_messages: int, wait_seconds: int, visibility_seconds: int) -> list[dict[str, Any]]:
        return [
            {
                "MessageId": "m0",
                "ReceiptHandle": "r0-again",
                "Body": "{}",
                "Attributes": {"ApproximateReceiveCount": "2"},
            }
        ]


def test_worker_released_message_received_again_at_once_is_processed_again() -> None:
    settings = WorkerSettings(shared=None, retry_delay_seconds=0, visibility_seconds=120)  # type: ignore[arg-type]
    queue = RedeliveringQueue()
    worker = Worker(settings, queue, pipeline=None, results=None)  # type: ignore[arg-type]
    queue.worker = worker
    held = delivery(0)
    worker._in_flight.add([held])
    # When the worker releases a message for a retry and SQS delivers it again before the release returns
    worker._release([held])
    # Then the redelivery is handed out and held: not mistaken for a duplicate of the released delivery
    assert [d.receipt_handle for d in queue.handed_out] == ["r0-again"]
    assert len(worker._in_flight) == 1 and worker.stats.duplicates == 0


def test_runtime_options_on_a_cpu_worker_leave_cores_for_preprocessing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    settings = WorkerSettings(shared=None)  # type: ignore[arg-type]
    cpu = runtime_options(settings, available=[CPU])
    gpu = runtime_options(settings, available=[CUDA, CPU])
    assert (cpu.intra_op_threads, cpu.allow_spinning) == (4, False)
    assert (gpu.intra_op_threads, gpu.allow_spinning) == (0, True)
    pinned = runtime_options(WorkerSettings(shared=None, intra_op_threads=3), available=[CPU])  # type: ignore[arg-type]
    assert pinned.intra_op_threads == 3


# ---- results ---------------------------------------------------------------------------------------


class FakeTasks:
    def __init__(self, tasks: list[Task]) -> None:
        self.tasks = {task.task_id: task for task in tasks}
        self.asked: list[list[int]] = []

    def get_many(self, task_ids: Any) -> list[Task]:
        ids = list(task_ids)
        assert len(ids) == len(set(ids)), "BatchGetItem refuses repeated keys"
        self.asked.append(ids)
        return [self.tasks[task_id] for task_id in ids if task_id in self.tasks]

    def finish(self, task: Task) -> bool:
        if self.tasks[task.task_id].status is not TaskStatus.PENDING:
            return False
        self.tasks[task.task_id] = task
        return True


class FakeBlobs:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = body


def task(task_id: int, status: TaskStatus = TaskStatus.PENDING) -> Task:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return Task(
        task_id=task_id,
        account_id="dev",
        kind=TaskKind.INFERENCE,
        status=status,
        create_date=moment,
        update_date=moment,
    )


def test_results_small_result_inline_large_result_in_s3() -> None:
    tasks, blobs = FakeTasks([task(1), task(2)]), FakeBlobs()
    small = {"tensors": [{"name": "x", "shape": [1, 1], "data": [1.0]}]}
    large = {"tensors": [{"name": "x", "shape": [1, 100], "data": [0.5] * 100}]}
    ended = TaskResults(tasks, blobs, inline_bytes=200).end([Outcome(1, data=small), Outcome(2, data=large)])
    assert ended == {1, 2}
    assert tasks.tasks[1].data == small and tasks.tasks[1].status is TaskStatus.SUCCESS
    assert tasks.tasks[2].data == {"result_key": "results/dev/2.json"}
    assert json.loads(blobs.objects["results/dev/2.json"]) == large


def test_results_error_outcome_ends_the_task_with_its_reason() -> None:
    tasks = FakeTasks([task(1)])
    TaskResults(tasks, FakeBlobs(), inline_bytes=1000).end([Outcome(1, error="The file is not an image.")])
    assert tasks.tasks[1].status is TaskStatus.ERROR and tasks.tasks[1].error == "The file is not an image."


def test_results_ended_or_deleted_tasks_count_as_over_without_a_write() -> None:
    tasks = FakeTasks([task(1, TaskStatus.ERROR)])
    ended = TaskResults(tasks, FakeBlobs(), inline_bytes=1000).end(
        [Outcome(1, data={"tensors": []}), Outcome(7, data={"tensors": []})]
    )
    assert ended == {1, 7} and tasks.tasks[1].status is TaskStatus.ERROR and tasks.tasks[1].data is None


def test_results_duplicate_outcomes_of_one_task_read_it_once_and_write_once() -> None:
    tasks = FakeTasks([task(1)])
    ended = TaskResults(tasks, FakeBlobs(), inline_bytes=1000).end(
        [Outcome(1, data={"tensors": [1]}), Outcome(1, data={"tensors": [2]})]
    )
    assert ended == {1} and tasks.asked == [[1]] and tasks.tasks[1].data == {"tensors": [1]}


def test_results_tasks_their_messages_carry_end_without_a_read() -> None:
    tasks = FakeTasks([task(1), task(2)])
    ended = TaskResults(tasks, FakeBlobs(), inline_bytes=1000).end(
        [Outcome(1, data={"tensors": [1]}), Outcome(2, data={"tensors": [2]})], stored={1: task(1)}
    )
    # Only the task no message carried was read; both ended with their results
    assert ended == {1, 2} and tasks.asked == [[2]]
    assert [tasks.tasks[n].data for n in (1, 2)] == [{"tensors": [1]}, {"tensors": [2]}]


def test_results_carried_copy_of_a_task_that_ended_meanwhile_writes_nothing() -> None:
    tasks = FakeTasks([task(1, TaskStatus.ERROR)])
    ended = TaskResults(tasks, FakeBlobs(), inline_bytes=1000).end(
        [Outcome(1, data={"tensors": [1]})], stored={1: task(1)}
    )
    assert ended == {1} and tasks.tasks[1].status is TaskStatus.ERROR and tasks.tasks[1].data is None


@dataclass
class CountingQueue:
    """A queue that always has messages, counting the receives it answered; or none when `empty`."""

    name: str
    empty: bool = False
    receives: int = 0
    extended: list[tuple[list[str], int]] = field(default_factory=list)

    def receive(self, max_messages: int, wait_seconds: int, visibility_seconds: int) -> list[dict[str, Any]]:
        self.receives += 1
        if self.empty:
            return []
        return [
            {"MessageId": f"{self.name}-{self.receives}-{n}", "ReceiptHandle": f"{self.name}-r{n}", "Body": "{}"}
            for n in range(max_messages)
        ]

    def extend(self, handles: list[str], seconds: int) -> None:
        self.extended.append((handles, seconds))


def test_worker_takes_batch_items_only_after_online_work_is_gone_and_at_most_batch_in_flight() -> None:
    settings = WorkerSettings(shared=None, batch_in_flight=8, max_in_flight=64)  # type: ignore[arg-type]
    online, batch = CountingQueue("online"), CountingQueue("batch")
    clock = Clock()
    worker = Worker(settings, online, pipeline=None, results=None, clock=clock, batch_queue=batch)  # type: ignore[arg-type]
    handed: list[Delivery] = []

    def hand(_fetch: Any, delivery: Delivery) -> None:
        handed.append(delivery)

    # Online work came back: the batch queue is not read
    assert worker.receive_once(hand) == 10
    assert worker.receive_batch_once(hand) == 0 and batch.receives == 0
    # The online queue came back empty, but online messages are still held: still not read
    online.empty = True
    assert worker.receive_once(hand) == 0
    assert worker.receive_batch_once(hand) == 0 and batch.receives == 0
    # No online message held any more, but online work came less than batch_quiet_seconds ago: not read
    worker._in_flight.remove([d for d in handed if not d.batch])
    clock.now += settings.batch_quiet_seconds / 2
    assert worker.receive_batch_once(hand) == 0 and batch.receives == 0
    # Once online work is that long gone, at most `batch_in_flight` items are taken, whatever is queued
    clock.now += settings.batch_quiet_seconds
    assert worker.receive_batch_once(hand) == 8
    assert worker.receive_batch_once(hand) == 0 and batch.receives == 1
    assert [d.batch for d in handed[-8:]] == [True] * 8
    # A released item goes back to the queue it came from
    worker._release([handed[-1]])
    assert batch.extended == [([handed[-1].receipt_handle], settings.retry_delay_seconds)] and online.extended == []
