"""Faults injected under moto: throttled DynamoDB, S3 and SQS calls, a converter that died holding its claim.

Throttling is injected where botocore sends the request (its `before-send` event, on the adapters' own
clients), so botocore's `standard` retry mode of `tensorgate.adapters.aws` sees a real throttling
response and backs off as it would on AWS. Its sleeps are recorded instead of slept.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.endpoint
import pytest
from moto.core.botocore_stubber import MockRawResponse
from werkzeug.test import Client

from functions.worker.main import build_worker
from functions.worker.runtime import CPU, Runtime
from tests.conftest import DEV_KEY
from tests.integration.test_converter import (
    FakeConverter,
    conversion_messages,
    create,
    handler,
    lambda_context,
    sqs_event,
)
from tests.integration.test_inference_api import ready_network
from tests.integration.test_worker import Service, service, solid_image, wait_until

__all__ = ["handler", "service"]  # fixtures shared with the converter and worker tests
HEADERS = {"X-API-KEY": DEV_KEY}
RETRY_ATTEMPTS = 6  # tensorgate.adapters.aws: botocore's standard mode, 6 attempts in all

THROTTLED: dict[str, tuple[int, str, dict[str, str]]] = {
    "dynamodb": (
        400,
        json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded.",
            }
        ),
        {"Content-Type": "application/x-amz-json-1.0"},
    ),
    "s3": (
        503,
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
        "<Message>Please reduce your request rate.</Message><RequestId>fault</RequestId></Error>",
        {"Content-Type": "application/xml"},
    ),
    "sqs": (
        400,
        json.dumps({"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}),
        {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "ThrottlingException;Sender"},
    ),
}


@dataclass
class Fault:
    """Throttle one service's calls: `failures` times, or always (None); only the named operations and tables."""

    service: str
    failures: int | None = None
    operations: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    injected: int = 0
    active: bool = True

    def applies(self, operation: str, request: Any) -> bool:
        if not self.active or (self.failures is not None and self.injected >= self.failures):
            return False
        if self.operations and operation not in self.operations:
            return False
        # DynamoDB names its table in the JSON body (S3 bodies may be streams: no table filter there).
        return not self.tables or any(table.encode() in bytes(request.body or b"") for table in self.tables)


class Faults:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sleeps: list[float] = []
        # botocore's retry handler sleeps through botocore.endpoint's `time`; record the backoff instead.
        monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=self.sleeps.append))

    def throttle(
        self,
        service: str,
        failures: int | None = None,
        operations: tuple[str, ...] = (),
        tables: tuple[str, ...] = (),
    ) -> Fault:
        from tensorgate.adapters.aws import client

        fault = Fault(service, failures, operations, tables)
        status, body, headers = THROTTLED[service]

        def respond(request: Any, event_name: str, **_: Any) -> Any:
            if not fault.applies(event_name.rsplit(".", 1)[-1], request):
                return None
            fault.injected += 1
            return botocore.awsrequest.AWSResponse(request.url, status, headers, MockRawResponse(body.encode()))

        # Registered first: it answers before moto's own stub does.
        client(service).meta.events.register_first(f"before-send.{service}", respond)
        return fault


@pytest.fixture
def faults(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Faults:
    return Faults(monkeypatch)


def assert_backed_off(sleeps: list[float], retries: int) -> None:
    """Standard mode waits rand(0, 1) x min(2^i, 20) s before retry i after a throttle: backoff, with jitter."""
    assert len(sleeps) == retries
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= min(2**attempt, 20)


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    sentence = response.json["error"]
    assert sentence.endswith(".") and "retry" in sentence.lower() and "Internal" not in sentence


# ---- API: retries, then success ---------------------------------------------------------------


def test_api_dynamodb_throttled_three_times_answers_after_backoff(api: Client, faults: Faults) -> None:
    network = create(api)
    fault = faults.throttle("dynamodb", failures=3, operations=("GetItem",), tables=("NetworksTable",))
    response = api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS)
    assert response.status_code == 200 and response.json["id"] == network["id"]
    assert fault.injected == 3
    assert_backed_off(faults.sleeps, retries=3)


def test_api_s3_slow_down_twice_still_creates_the_network(api: Client, faults: Faults) -> None:
    fault = faults.throttle("s3", failures=2, operations=("PutObject",))
    network = create(api, {"model.onnx": b"onnx"})
    assert network["status"] == "pending" and fault.injected == 2
    assert_backed_off(faults.sleeps, retries=2)


def test_api_sqs_throttled_twice_still_queues_the_inference(api: Client, aws: dict[str, Any], faults: Faults) -> None:
    network = ready_network(api)
    fault = faults.throttle("sqs", failures=2, operations=("SendMessage",))
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers=HEADERS,
        json={"inputs": [{"image": {"source": base64.b64encode(solid_image((1, 2, 3))).decode()}}]},
    )
    assert response.status_code == 200, response.text
    assert fault.injected == 2


# ---- API: always throttled → 503 with a sentence, never a 500 ------------------------------------

Request = Callable[[Client, dict[str, Any]], Any]


def _inference(source: str) -> Request:
    def send(api: Client, state: dict[str, Any]) -> Any:
        body = {"inputs": [{"image": {"source": source.format(**state)}}]}
        return api.post(f"/v0.7/networks/{state['ready']}/inference", headers=HEADERS, json=body)

    return send


SMALL_IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()
# Over SQS's 256 KiB message once base64-encoded: the request stores it in S3 for the worker.
LARGE_IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x01" * 300_000).decode()
ROUTES: dict[str, Request] = {
    "create json": lambda api, state: api.post("/v0.7/networks", headers=HEADERS, json={"name": "n"}),
    "create multipart": lambda api, state: api.post(
        "/v0.7/networks", headers=HEADERS, data={"name": "n", "model.onnx": (io.BytesIO(b"onnx"), "model.onnx")}
    ),
    "list networks": lambda api, state: api.get("/v0.7/networks", headers=HEADERS),
    "get network": lambda api, state: api.get(f"/v0.7/networks/{state['pending']}", headers=HEADERS),
    "patch network": lambda api, state: api.patch(
        f"/v0.7/networks/{state['pending']}", headers=HEADERS, json={"name": "renamed"}
    ),
    "delete network": lambda api, state: api.delete(f"/v0.7/networks/{state['pending']}", headers=HEADERS),
    "get task": lambda api, state: api.get(f"/v0.7/tasks/{state['task']}", headers=HEADERS),
    "get task stored in S3": lambda api, state: api.get(f"/v0.7/tasks/{state['large_task']}", headers=HEADERS),
    "list tasks": lambda api, state: api.get(f"/v0.7/tasks?task_ids={state['task']}", headers=HEADERS),
    "inference inline": _inference(SMALL_IMAGE),
    "inference stored input": _inference(LARGE_IMAGE),
    "inference s3 uri": _inference("s3://{bucket}/uploads/dev/{pending}/files/model.onnx"),
}
# Which services each route calls after authentication (the API keys table is left alone here).
CALLS = {
    "dynamodb": list(ROUTES),
    "s3": ["create multipart", "delete network", "get task stored in S3", "inference stored input", "inference s3 uri"],
    "sqs": ["inference inline", "inference stored input", "inference s3 uri"],
}


@pytest.fixture
def records(api: Client, aws: dict[str, Any]) -> dict[str, Any]:
    """A pending network with files, a ready network, a task, and a task whose result is stored in S3."""
    from tensorgate import layout, wiring
    from tensorgate.models import TaskStatus

    pending = create(api, {"model.onnx": b"onnx"})
    ready = ready_network(api)
    large = _inference(SMALL_IMAGE)(api, {"ready": ready["id"]}).json["task_id"]
    tasks = wiring.task_repository()
    key = layout.result_key("dev", large)
    wiring.network_service()._blobs.put(key, b'{"tensors": []}')
    task = tasks.get(large)
    assert task is not None
    tasks.finish(task.model_copy(update={"status": TaskStatus.SUCCESS, "data": {"result_key": key}}))
    return {
        "pending": pending["id"],
        "ready": ready["id"],
        "task": pending["task_id"],
        "large_task": large,
        "bucket": aws["template"].physical_name("ModelBucket"),
    }


@pytest.mark.parametrize(
    ("service_name", "route"), [(service_name, route) for service_name, routes in CALLS.items() for route in routes]
)
def test_api_always_throttled_answers_503_with_a_sentence(
    api: Client, records: dict[str, Any], faults: Faults, service_name: str, route: str
) -> None:
    tables = ("NetworksTable", "TasksTable", "CountersTable") if service_name == "dynamodb" else ()
    fault = faults.throttle(service_name, tables=tables)
    response = ROUTES[route](api, records)
    assert fault.injected >= RETRY_ATTEMPTS, "the route did not call the throttled service"
    assert_unavailable(response)


def test_api_key_table_always_throttled_answers_503_not_401(api: Client, faults: Faults) -> None:
    faults.throttle("dynamodb", tables=("ApiKeysTable",))
    assert_unavailable(api.get("/v0.7/networks", headers=HEADERS))


def test_api_inference_queue_down_leaves_no_pending_task(api: Client, records: dict[str, Any], faults: Faults) -> None:
    from tensorgate import wiring

    faults.throttle("sqs")
    assert_unavailable(_inference(SMALL_IMAGE)(api, records))
    # The task opened for it was removed again: nothing waits for a message that was never sent.
    next_id = wiring.inference_service()._ids.next_id("task")
    assert wiring.task_repository().get(next_id - 1) is None


# ---- workers: retries, then success; always throttled → the record fails and comes back ---------


def test_worker_results_throttled_twice_still_end_every_task_once(service: Service, faults: Faults) -> None:
    network = service.network()
    ids = [service.submit(network, solid_image((n, 0, 0))) for n in range(4)]
    fault = faults.throttle("dynamodb", failures=2, operations=("BatchGetItem", "PutItem"), tables=("TasksTable",))
    worker = service.serve(ids, timeout=30)
    assert fault.injected == 2 and worker.stats.released == 0
    assert [task.status.value for task in service.get(ids)] == ["success"] * 4
    assert service.queued() == 0


def test_worker_results_always_throttled_fail_the_records_and_every_task_still_ends_once(
    service: Service, faults: Faults
) -> None:
    from tensorgate.adapters.dynamodb import DynamoTaskRepository
    from tensorgate_local.lambdas import LocalContext

    from functions.dead_letter_handler import app as dead_letters

    network = service.network()
    ids = [service.submit(network, solid_image((0, n, 0))) for n in range(3)]
    dead_letter_url = service.queue.url.replace("InferenceQueue", "InferenceDeadLetterQueue")
    fault = faults.throttle("dynamodb", operations=("BatchGetItem", "PutItem"), tables=("TasksTable",))
    # A message held when a worker stops comes back after its visibility timeout, which is kept shorter here
    # than the waits below (the heartbeat, every second, still extends what a worker holds).
    timeouts = {"visibility_seconds": 5, "heartbeat_seconds": 1.0}
    # When the tasks table refuses every call, the worker fails those records (releases them): nothing is
    # deleted or lost, and SQS delivers them again until the redrive policy moves them to the dead letters
    worker = build_worker(service.settings(**timeouts), runtime=Runtime(available=[CPU]))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker.stats.released >= len(ids), 30, lambda: f"worker stats {worker.stats}")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the worker did not stop"
    assert worker.stats.ended == 0
    fault.active = False
    assert service.pending(ids) == ids
    assert service.queued(dead_letter_url) + service.queued() == len(ids)
    # Then once the table answers again, the worker and the dead-letter handler end every task, each once.
    # A record may still reach the dead letters now (SQS moves it on the receive after its last allowed
    # one), so the dead-letter queue is consumed for as long as the worker runs, as its event source would.
    finished: list[int] = []
    original_finish = DynamoTaskRepository.finish

    def counting_finish(self: DynamoTaskRepository, task: Any) -> bool:
        written = original_finish(self, task)
        finished.extend([task.task_id] if written else [])
        return written

    dead_lettered = 0

    def consume_dead_letters() -> None:
        nonlocal dead_lettered
        messages = service.sqs.receive_message(QueueUrl=dead_letter_url, MaxNumberOfMessages=10).get("Messages", [])
        if messages:
            event = sqs_event(messages)
            for record in event["Records"]:
                record["eventSourceARN"] = dead_letter_url.rsplit("/", 1)[-1]
            context = LocalContext(function_name="DeadLetterHandler", timeout_seconds=29)
            assert dead_letters.handler(event, context) == {"batchItemFailures": []}
            for message in messages:
                service.sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
            dead_lettered += len(messages)

    def every_task_ended_and_every_message_consumed() -> bool:
        consume_dead_letters()
        return not service.pending(ids) and service.queued() == 0 and service.queued(dead_letter_url) == 0

    DynamoTaskRepository.finish = counting_finish  # type: ignore[method-assign]
    worker = build_worker(service.settings(**timeouts), runtime=Runtime(available=[CPU]))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # Delivery is at least once: a record may be served twice (a redelivery, or the worker and the
        # dead letters both), so the wait is for the outcome, not for a count of deliveries.
        wait_until(
            every_task_ended_and_every_message_consumed,
            30,
            lambda: (
                f"pending {service.pending(ids)}, {service.queued()} queued, "
                f"{service.queued(dead_letter_url)} dead letters left ({dead_lettered} consumed), "
                f"worker stats {worker.stats}"
            ),
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    try:
        consume_dead_letters()  # what the worker's last receive may have moved there, as the event source would
    finally:
        DynamoTaskRepository.finish = original_finish  # type: ignore[method-assign]
    assert not thread.is_alive(), "the worker did not stop"
    assert sorted(finished) == sorted(ids)
    assert all(task.status.value in ("success", "error") for task in service.get(ids))
    assert service.queued() == 0 and service.queued(dead_letter_url) == 0


def test_converter_s3_always_slow_fails_the_record_and_releases_the_claim(
    api: Client, aws: dict[str, Any], handler: Any, faults: Faults
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from tensorgate import wiring

    network = create(api, {"model.onnx": b"onnx"})
    messages = conversion_messages(aws)
    converter = FakeConverter()
    run = handler(converter)
    fault = faults.throttle("s3", operations=("GetObject", "HeadObject"))
    # The record fails (every record of the batch failed: the invocation fails), so SQS redelivers it
    with pytest.raises(BatchProcessingError):
        run(sqs_event(messages), lambda_context())
    assert fault.injected >= RETRY_ATTEMPTS and converter.calls == 0
    record = wiring.conversion_service()._networks.get("dev", network["id"])
    assert record is not None and record.conversion_claimed_at is None
    # And the redelivery converts once S3 answers again
    fault.active = False
    assert run(sqs_event(messages), lambda_context()) == {"batchItemFailures": []}
    assert api.get(f"/v0.7/tasks/{network['task_id']}", headers=HEADERS).json["status"] == "success"


# ---- a converter killed mid-conversion ------------------------------------------------------------


def test_killed_converter_claim_expires_and_the_redelivery_converts(api: Client, aws: dict[str, Any]) -> None:
    from tensorgate import wiring
    from tensorgate.services.conversions import ConversionInProgress

    network = create(api, {"model.onnx": b"onnx"})
    key = f"uploads/dev/{network['id']}/files/manifest.json"
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    converter = FakeConverter()
    service = wiring.conversion_service(converter)
    service._clock = lambda: now[0]
    service._claim_expiry = timedelta(seconds=30)
    # Given a converter that claimed the deploy and was killed (SIGKILL: no release, no outcome)
    record = service._networks.get("dev", network["id"])
    assert record is not None and service._claim(record) is not None
    # When the message comes back before the claim expired, it waits; the dead letter waits too
    now[0] += timedelta(seconds=29)
    with pytest.raises(ConversionInProgress):
        service.handle_upload(key)
    with pytest.raises(ConversionInProgress):
        service.fail_pending("dev", network["id"], "dead letter")
    # Then after the claim expired, the next delivery takes it over and the deploy ends
    now[0] += timedelta(seconds=2)
    assert service.handle_upload(key) == "success" and converter.calls == 1
    assert api.get(f"/v0.7/tasks/{network['task_id']}", headers=HEADERS).json["status"] == "success"


def test_claim_expiry_is_a_setting_that_outlives_the_converter_timeout(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorgate import wiring
    from tensorgate.config import DEFAULT_CONVERSION_CLAIM_SECONDS

    converter_timeout = int(aws["template"].resources["Converter"]["Properties"]["Timeout"])
    assert converter_timeout < DEFAULT_CONVERSION_CLAIM_SECONDS
    assert wiring.conversion_service()._claim_expiry == timedelta(seconds=DEFAULT_CONVERSION_CLAIM_SECONDS)
    monkeypatch.setenv("CONVERSION_CLAIM_SECONDS", "7")
    wiring.reset()
    assert wiring.conversion_service()._claim_expiry == timedelta(seconds=7)
