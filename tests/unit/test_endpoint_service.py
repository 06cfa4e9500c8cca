"""EndpointService against in-memory ports: predict's budget, the traffic split, the warm minimum."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tensorgate.errors import EndpointShutdown, ValidationFailed
from tensorgate.models import Network, NetworkStatus, Task, TaskStatus
from tensorgate.services.endpoints import EndpointService, PredictPolicy
from tensorgate.services.inference import InferencePolicy, InferenceService
from tensorgate.services.recognition import RecognitionService
from tensorgate.services.tasks import TaskService

from tests.fakes import (
    CountingIdAllocator,
    InMemoryBlobStore,
    InMemoryEndpointRepository,
    InMemoryMessageQueue,
    InMemoryNetworkRepository,
    InMemoryRecognitionRepository,
    InMemoryTaskRepository,
    InMemoryWorkerCapacity,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IMAGE = base64.b64encode(b"\x89PNG not decoded by the API").decode()


class Clock:
    """Monotonic time that moves only when the service pauses; a pause may run the worker's part."""

    def __init__(self) -> None:
        self.now = 0.0
        self.on_pause: Any = None

    def monotonic(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds
        if self.on_pause is not None:
            self.on_pause(self.now)


class Harness:
    def __init__(self) -> None:
        self.networks = InMemoryNetworkRepository()
        self.tasks = InMemoryTaskRepository()
        self.queue = InMemoryMessageQueue()
        self.capacity = InMemoryWorkerCapacity()
        self.cpu_queue = InMemoryMessageQueue()
        self.clock = Clock()
        ids = CountingIdAllocator()
        for network_id in (1, 2):
            self.networks.put_new(
                Network(
                    account_id="acme",
                    network_id=network_id,
                    name=f"net {network_id}",
                    framework="onnx",
                    task_id=100 + network_id,
                    status=NetworkStatus.READY,
                    upload_prefix=f"uploads/acme/{network_id}/",
                    preprocessing={"inputs": [{"tensor_name": "image", "image": {"target_size": "8x8"}}]},
                    outputs=[{"name": "prob", "dtype": "float32", "shape": ["N", 2]}],
                    create_date=NOW,
                    update_date=NOW,
                )
            )
        inference = InferenceService(
            self.networks, self.tasks, ids, InMemoryBlobStore(), self.queue, InferencePolicy(bucket="models")
        )
        recognition = RecognitionService(InMemoryRecognitionRepository(), self.networks, ids, clock=lambda: NOW)
        self.service = EndpointService(
            InMemoryEndpointRepository(),
            self.networks,
            recognition,
            inference,
            TaskService(self.tasks),
            ids,
            capacity=self.capacity,
            cpu_queue=self.cpu_queue,
            policy=PredictPolicy(budget_seconds=10.0),
            clock=lambda: NOW,
            monotonic=self.clock.monotonic,
            pause=self.clock.pause,
        )

    def finish_after(self, seconds: float) -> None:
        """The worker ends every queued task once `seconds` have passed."""

        def work(now: float) -> None:
            if now < seconds:
                return
            for message, _ in self.queue.messages + self.cpu_queue.messages:
                task = self.tasks.get(message["task_id"])
                assert task is not None
                self.tasks.finish(task.model_copy(update={"status": TaskStatus.SUCCESS, "data": {"tensors": []}}))

        self.clock.on_pause = work


def test_predict_answers_complete_when_the_worker_ends_within_the_budget() -> None:
    harness = Harness()
    endpoint = harness.service.create("acme", "ana", {"name": "pets", "network_id": 1})
    harness.finish_after(0.2)
    prediction = harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE, IMAGE]}, None)
    assert prediction.complete and [task["status"] for task in prediction.tasks] == ["success", "success"]
    # It answered soon after the results, not at the end of the budget.
    assert 0.2 <= harness.clock.now < 0.3


def test_predict_first_read_comes_when_recent_predictions_had_ended_one_read_each() -> None:
    # Given a worker that writes each result 0.2 s after its task was queued, dated accordingly
    harness = Harness()
    endpoint = harness.service.create("acme", "ana", {"name": "pets", "network_id": 1})
    queued_at: dict[int, float] = {}
    reads: list[float] = []
    send, get_many = harness.cpu_queue.send, harness.tasks.get_many

    def record_send(body: dict[str, Any], group: str | None = None) -> str:
        queued_at[body["task_id"]] = harness.clock.now
        return send(body, group)

    def record_read(task_ids: Any) -> list[Task]:
        reads.append(harness.clock.now)
        return get_many(task_ids)

    def work(now: float) -> None:
        for task_id, sent in queued_at.items():
            task = harness.tasks.get(task_id)
            if task is not None and task.status is TaskStatus.PENDING and now >= sent + 0.2:
                ended = NOW + timedelta(seconds=0.2)
                harness.tasks.finish(task.model_copy(update={"status": TaskStatus.SUCCESS, "update_date": ended}))

    harness.cpu_queue.send = record_send  # type: ignore[method-assign]
    harness.tasks.get_many = record_read  # type: ignore[method-assign]
    harness.clock.on_pause = work
    # When the endpoint predicts several times, one after another
    counts = []
    for _ in range(4):
        reads.clear()
        harness.clock.now = 0.0
        prediction = harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE]}, None)
        assert prediction.complete
        counts.append(len(reads))
    # Then the first waits reading every few milliseconds, and once the process has seen how long results
    # take, one read at that time answers, no later than the result
    assert counts[0] >= 5 and counts[-1] == 1
    assert reads == [pytest.approx(0.2)]


def test_predict_answers_pending_at_the_end_of_the_budget_never_later() -> None:
    harness = Harness()
    endpoint = harness.service.create("acme", "ana", {"name": "pets", "network_id": 1})
    harness.finish_after(60)
    prediction = harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE]}, wait_seconds=None)
    assert not prediction.complete and prediction.to_wire()["status"] == "pending"
    assert harness.clock.now == pytest.approx(10.0)
    # A shorter wait asked by the caller is kept; a longer one is capped by the budget.
    harness.clock.now = 0.0
    harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE]}, wait_seconds=2.5)
    assert harness.clock.now == pytest.approx(2.5)
    harness.clock.now = 0.0
    harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE]}, wait_seconds=40)
    assert harness.clock.now == pytest.approx(10.0)


def test_canary_takes_exactly_its_weight_of_predictions_and_each_task_records_its_target() -> None:
    harness = Harness()
    endpoint = harness.service.create(
        "acme", "ana", {"name": "pets", "network_id": 1, "canary": {"network_id": 2, "weight": 0.3}}
    )
    targets: list[dict[str, Any]] = []
    for _ in range(10):  # requests of 1 to 16 samples, 100 in all
        for count in (1, 16, 3):
            if len(targets) < 100:
                features = [IMAGE] * min(count, 100 - len(targets))
                prediction = harness.service.predict("acme", endpoint.endpoint_id, {"features": features}, 0)
                targets += [task["target"] for task in prediction.tasks]
    assert len(targets) == 100
    assert sum(target["canary"] for target in targets) == 30
    assert targets[:4] == [
        {"network_id": 1, "canary": False},
        {"network_id": 1, "canary": False},
        {"network_id": 1, "canary": False},
        {"network_id": 2, "canary": True},
    ]
    assert [message["network_id"] for message, _ in harness.cpu_queue.messages[:4]] == [1, 1, 1, 2]


def test_patch_promoting_the_canary_clears_the_split() -> None:
    harness = Harness()
    endpoint = harness.service.create(
        "acme", "ana", {"name": "pets", "network_id": 1, "canary": {"network_id": 2, "weight": 0.2}}
    )
    promoted = harness.service.update("acme", endpoint.endpoint_id, {"network_id": 2, "canary": None})
    assert promoted.target == {"network_id": 2} and promoted.canary is None


def test_replicas_hold_their_device_warm_until_shutdown_or_delete() -> None:
    harness = Harness()
    first = harness.service.create("acme", "ana", {"name": "a", "network_id": 1, "replicas": 2})
    second = harness.service.create("acme", "ana", {"name": "b", "network_id": 1, "replicas": 1, "gpu_required": True})
    assert harness.capacity.held == {"cpu": 2, "gpu": 1}
    harness.service.update("acme", first.endpoint_id, {"gpu_required": True, "replicas": 3})
    assert harness.capacity.held == {"cpu": 0, "gpu": 4}
    harness.service.shutdown("acme", second.endpoint_id)
    harness.service.shutdown("acme", second.endpoint_id)  # twice releases once
    assert harness.capacity.held == {"cpu": 0, "gpu": 3}
    harness.service.delete("acme", second.endpoint_id)  # already released
    harness.service.delete("acme", first.endpoint_id)
    assert harness.capacity.held == {"cpu": 0, "gpu": 0}


def test_shut_down_endpoint_refuses_predictions_and_queues_nothing() -> None:
    harness = Harness()
    endpoint = harness.service.create("acme", "ana", {"name": "pets", "network_id": 1})
    harness.service.shutdown("acme", endpoint.endpoint_id)
    with pytest.raises(EndpointShutdown, match="shut down"):
        harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE]}, None)
    assert harness.cpu_queue.messages == []


def test_predict_with_a_bad_second_feature_queues_nothing() -> None:
    harness = Harness()
    endpoint = harness.service.create("acme", "ana", {"name": "pets", "network_id": 1})
    with pytest.raises(ValidationFailed, match="base64"):
        harness.service.predict("acme", endpoint.endpoint_id, {"features": [IMAGE, "%%%"]}, None)
    assert harness.cpu_queue.messages == [] and harness.tasks.records == {}


def test_predictions_go_to_the_cpu_workers_queue_unless_the_endpoint_requires_a_gpu() -> None:
    harness = Harness()
    cpu = harness.service.create("acme", "ana", {"name": "cpu", "network_id": 1})
    gpu = harness.service.create("acme", "ana", {"name": "gpu", "network_id": 1, "gpu_required": True})
    harness.service.predict("acme", cpu.endpoint_id, {"features": [IMAGE, IMAGE]}, 0)
    harness.service.predict("acme", gpu.endpoint_id, {"features": [IMAGE]}, 0)
    assert len(harness.cpu_queue.messages) == 2 and len(harness.queue.messages) == 1
