"""The inference worker under moto: queued messages in, one result per task out, whatever goes wrong."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tensorgate import layout
from tensorgate.adapters.dynamodb import DynamoIdAllocator, DynamoNetworkRepository, DynamoTaskRepository
from tensorgate.adapters.s3 import S3BlobStore
from tensorgate.adapters.sqs import SqsQueue
from tensorgate.config import get_settings as shared_settings
from tensorgate.messages import InferenceInput, InferenceMessage, InlineSource, StoredSource, UrlSource
from tensorgate.models import Network, NetworkStatus, Task, TaskKind, TaskStatus, utc_now
from tensorgate_preprocessing.spec import ImageSpec
from tensorgate_preprocessing.tensors import preprocess

from functions.worker.main import Worker, build_worker
from functions.worker.results import TaskResults
from functions.worker.runtime import CPU, Runtime
from functions.worker.settings import WorkerSettings
from tests.unit.worker.tiny_models import channel_mean_model, solid_image

SPEC = {"inputs": [{"tensor_name": "pixels", "image": {"dimension_order": "NHWC", "target_size": "4x4"}}]}
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


class ImageServer(BaseHTTPRequestHandler):
    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/blue.png":
            body = solid_image(BLUE)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ImageServer)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def wait_until(condition: Callable[[], bool], timeout: float, missing: Callable[[], str]) -> None:
    """Poll until `condition` holds; past `timeout` seconds, fail saying what is still missing."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached after {timeout:g} s: {missing()}")
        time.sleep(0.05)


class Service:
    """The records, objects and messages the submit side would have written, and the worker that serves them."""

    def __init__(self, aws: dict[str, Any], tmp_path: Any) -> None:
        settings = shared_settings()
        self.aws = aws
        self.tmp_path = tmp_path
        self.networks = DynamoNetworkRepository(settings.networks_table)
        self.tasks = DynamoTaskRepository(settings.tasks_table)
        self.ids = DynamoIdAllocator(settings.counters_table)
        self.blobs = S3BlobStore(settings.model_bucket)
        self.queue = SqsQueue(settings.inference_queue_url)
        self.sqs = aws["session"].client("sqs")

    def network(
        self,
        model: bytes | None = None,
        preprocessing: dict[str, Any] | None = None,
        postprocessings: list[dict[str, Any]] | None = None,
        conversion_options: dict[str, Any] | None = None,
        name_map: dict[str, str] | None = None,
        status: NetworkStatus = NetworkStatus.READY,
    ) -> Network:
        model = model or channel_mean_model()
        network_id = self.ids.next_id("network")
        now = utc_now()
        self.blobs.put(layout.model_key("dev", network_id), model)
        network = Network(
            account_id="dev",
            network_id=network_id,
            name=f"net-{network_id}",
            framework="onnx",
            preprocessing=preprocessing or SPEC,
            postprocessings=postprocessings or [],
            conversion_options=conversion_options or {"max_batch_size": 8, "max_queue_delay_ms": 300},
            task_id=0,
            status=status,
            upload_prefix=layout.network_prefix("dev", network_id),
            conversion={
                "model": {"files": ["model.onnx"], "sha256": hashlib.sha256(model).hexdigest()},
                "name_map": name_map or {"pixels": "image", "pixels:0": "image", "channel_mean": "mean"},
            },
            create_date=now,
            update_date=now,
        )
        self.networks.put_new(network)
        return network

    def submit(
        self,
        network: Network,
        source: Any,
        bbox: dict[str, float] | None = None,
        output_tensors: list[str] | None = None,
        polygon: list[tuple[float, float]] | None = None,
        crop_uniform_background: bool = False,
    ) -> int:
        task_id = self.ids.next_id("task")
        now = utc_now()
        self.tasks.put_new(
            Task(
                task_id=task_id,
                account_id=network.account_id,
                kind=TaskKind.INFERENCE,
                network_id=network.network_id,
                create_date=now,
                update_date=now,
                expires_at=int((now + timedelta(days=1)).timestamp()),
            )
        )
        if isinstance(source, bytes):
            source = InlineSource(data=base64.b64encode(source).decode())
        message = InferenceMessage(
            task_id=task_id,
            account_id=network.account_id,
            network_id=network.network_id,
            inputs=[
                InferenceInput(
                    source=source, bbox=bbox, polygon=polygon, crop_uniform_background=crop_uniform_background
                )
            ],
            output_tensors=output_tensors,
            submitted_at=now,
        )
        self.queue.send(message.model_dump(mode="json"))
        return task_id

    def settings(self, **overrides: Any) -> WorkerSettings:
        defaults: dict[str, Any] = {
            "receive_wait_seconds": 0,
            "preprocess_threads": 2,
            "model_dir": str(self.tmp_path / "models"),
            "allow_loopback_urls": True,
            "fetch_timeout_seconds": 3.0,
            "retry_delay_seconds": 0,
        }
        return replace(WorkerSettings.from_environment(), **(defaults | overrides))

    def serve(
        self,
        task_ids: list[int],
        worker: Worker | None = None,
        timeout: float = 60,
        messages: int | None = None,
        **overrides: Any,
    ) -> Worker:
        """Run a worker until every task ended and it deleted `messages` messages (one per task unless told),
        then stop it as SIGTERM would. A task ends before its message is deleted: waiting for both means
        the queue is settled when the test looks at it."""
        worker = worker or build_worker(self.settings(**overrides), runtime=Runtime(available=[CPU]))
        expected = len(task_ids) if messages is None else messages
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(
                lambda: worker.stats.ended >= expected and not self.pending(task_ids),
                timeout,
                lambda: (
                    f"tasks still pending {self.pending(task_ids)}, {worker.stats.ended} of {expected} "
                    f"messages deleted ({worker.stats})"
                ),
            )
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"
        return worker

    def pending(self, task_ids: list[int]) -> list[int]:
        return [task.task_id for task in self.get(task_ids) if task.status is TaskStatus.PENDING]

    def get(self, task_ids: list[int]) -> list[Task]:
        found = {task.task_id: task for task in self.tasks.get_many(task_ids)}
        return [found[task_id] for task_id in task_ids]

    def queued(self, queue_url: str | None = None) -> int:
        """Messages in the inference queue (or the one named), visible or held."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url or self.queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def service(aws: dict[str, Any], tmp_path: Any) -> Service:
    return Service(aws, tmp_path)


def tensors(task: Task) -> dict[str, np.ndarray]:
    assert task.status is TaskStatus.SUCCESS, task.error
    return {item["name"]: np.reshape(item["data"], item["shape"]) for item in task.data["tensors"]}


def noise_png(seed: int, size: tuple[int, int] = (37, 23)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_worker_mixed_batch_ends_good_tasks_success_and_bad_ones_error(service: Service, image_server: str) -> None:
    # Given one network and a burst of requests, some of them broken in different ways
    network = service.network()
    service.blobs.put(layout.input_key("dev", 900, 0), solid_image(GREEN))
    half = Image.new("RGB", (40, 20), RED)
    half.paste(Image.new("RGB", (20, 20), BLUE), (20, 0))
    buffer = io.BytesIO()
    half.save(buffer, format="PNG")
    good = {
        service.submit(network, solid_image(RED)): RED,
        service.submit(network, StoredSource(key=layout.input_key("dev", 900, 0))): GREEN,
        service.submit(network, UrlSource(url=f"{image_server}/blue.png")): BLUE,
        service.submit(network, buffer.getvalue(), bbox={"xmin": 0, "ymin": 0, "xmax": 0.5, "ymax": 1}): RED,
    }
    noisy = {service.submit(network, noise_png(seed)): seed for seed in range(3)}
    bad = {
        service.submit(network, b"this is not an image"): "not an image",
        service.submit(network, UrlSource(url="http://10.0.0.1/cat.png")): "private address",
        service.submit(network, UrlSource(url=f"{image_server}/missing.png")): "HTTP 404",
        service.submit(network, StoredSource(key=layout.input_key("dev", 901, 0))): "no longer exists",
        service.submit(network, StoredSource(key="models/other/1/model.onnx")): "outside the caller's own objects",
        service.submit(network, solid_image(RED), bbox={"xmin": 0.5, "ymin": 0, "xmax": 0.5, "ymax": 1}): "bbox",
    }
    ids = [*good, *noisy, *bad]

    # When the worker serves the queue
    worker = service.serve(ids)

    # Then every good task succeeded with its own numbers, each bad one failed with its reason
    tasks = dict(zip(ids, service.get(ids), strict=True))
    for task_id, color in good.items():
        result = tensors(tasks[task_id])
        np.testing.assert_allclose(result["mean"], [color], atol=1e-4)
        np.testing.assert_allclose(result["scaled"], [np.multiply(color, 2)], atol=1e-3)
    # Non-uniform images: the worker's numbers are the model run on the layer's own preprocessing
    session = Runtime(available=[CPU]).open(channel_mean_model())
    for task_id, seed in noisy.items():
        array, _ = preprocess(noise_png(seed), ImageSpec.model_validate(SPEC["inputs"][0]["image"]))
        expected = session.run({"image": array})
        np.testing.assert_allclose(tensors(tasks[task_id])["mean"], expected["mean"], rtol=1e-5)
    for task_id, reason in bad.items():
        assert tasks[task_id].status is TaskStatus.ERROR and tasks[task_id].data is None
        assert reason in (tasks[task_id].error or ""), tasks[task_id].error
    # And every message was deleted, and requests were batched together
    assert service.queued() == 0
    assert worker.stats.samples == len(good) + len(noisy)
    assert max(worker.stats.batch_sizes) > 1


def test_worker_polygon_crops_and_whitens_as_the_preprocessing_layer_does(service: Service) -> None:
    # Given a network whose output is the mean colour, and a noisy image cut by a triangle
    network = service.network(
        channel_mean_model(16, 16),
        preprocessing={"inputs": [{"tensor_name": "pixels", "image": {"target_size": "16x16"}}]},
    )
    triangle = [(0.1, 0.2), (0.9, 0.25), (0.45, 0.95)]
    image = noise_png(5, (61, 47))
    masked = service.submit(network, image, polygon=triangle, crop_uniform_background=True)
    kept = service.submit(network, image, polygon=triangle, crop_uniform_background=False)

    # When the worker serves both
    service.serve([masked, kept])

    # Then each result is the model run on the layer's own preprocessing of that region
    session = Runtime(available=[CPU]).open(channel_mean_model(16, 16))
    spec = ImageSpec.model_validate({"target_size": "16x16"})
    results = {}
    for task_id, whiten in ((masked, True), (kept, False)):
        array, _ = preprocess(image, spec, polygon=triangle, crop_uniform_background=whiten)
        results[whiten] = tensors(service.get([task_id])[0])["mean"]
        np.testing.assert_allclose(results[whiten], session.run({"image": array})["mean"], rtol=1e-5)
    # And the white background lifts the mean colour of the masked one
    assert (results[True] > results[False] + 10).all()


def test_worker_missing_declared_file_ends_the_task_with_the_reason_not_a_retry(service: Service) -> None:
    # Given networks whose mean file is declared but absent: one converted with its files beside the
    # model, one converted before that (its files read from the multipart upload)
    image = {"target_size": "4x4", "mean_file": "mean.npy"}
    preprocessing = {"inputs": [{"tensor_name": "pixels", "image": image}]}
    beside_model = service.network(preprocessing=preprocessing)
    record = service.networks.get("dev", beside_model.network_id)
    assert record is not None and record.conversion is not None
    service.networks.replace(
        record.model_copy(
            update={"conversion": {**record.conversion, "declared_files": ["mean.npy"]}, "version": record.version + 1}
        ),
        expected_version=record.version,
    )
    uploaded = service.network(preprocessing=preprocessing)
    ids = [service.submit(beside_model, solid_image(RED)), service.submit(uploaded, solid_image(RED))]

    # When the worker serves them
    service.serve(ids, timeout=30)

    # Then each task ends at once with the reason, instead of being retried as an outage
    for task in service.get(ids):
        assert task.status is TaskStatus.ERROR
        assert "file 'mean.npy' is missing from storage" in (task.error or ""), task.error


def test_worker_reads_a_declared_file_beside_the_model(service: Service) -> None:
    # Given a network whose mean file the converter stored beside its model
    preprocessing = {"inputs": [{"tensor_name": "pixels", "image": {"target_size": "4x4", "mean_file": "mean.npy"}}]}
    network = service.network(preprocessing=preprocessing)
    record = service.networks.get("dev", network.network_id)
    assert record is not None and record.conversion is not None
    service.networks.replace(
        record.model_copy(
            update={"conversion": {**record.conversion, "declared_files": ["mean.npy"]}, "version": record.version + 1}
        ),
        expected_version=record.version,
    )
    buffer = io.BytesIO()
    np.save(buffer, np.array([[[0.25, 0.5, 0.75]]], dtype=np.float32), allow_pickle=False)
    service.blobs.put(layout.declared_file_key("dev", network.network_id, "mean.npy"), buffer.getvalue())

    # When a red image goes through it
    [task_id] = [service.submit(network, solid_image(RED))]
    service.serve([task_id])

    # Then the mean was subtracted from the pixels (scaled 0-255 by default)
    np.testing.assert_allclose(tensors(service.get([task_id])[0])["mean"], [[254.75, -0.5, -0.75]], atol=1e-4)


def test_worker_output_tensors_by_user_facing_name(service: Service) -> None:
    network = service.network()
    by_alias = service.submit(network, solid_image(GREEN), output_tensors=["channel_mean"])
    by_onnx_name = service.submit(network, solid_image(GREEN), output_tensors=["scaled"])
    service.serve([by_alias, by_onnx_name])
    alias_task, onnx_task = service.get([by_alias, by_onnx_name])
    assert [item["name"] for item in alias_task.data["tensors"]] == ["channel_mean"]
    assert alias_task.data["tensors"][0] == {"name": "channel_mean", "shape": [1, 3], "data": [0.0, 255.0, 0.0]}
    assert onnx_task.data["tensors"] == [{"name": "scaled", "shape": [1, 3], "data": [0.0, 510.0, 0.0]}]


def test_worker_labels_postprocessing_adds_outputs(service: Service) -> None:
    post = [{"tensors_output": {"tensors": ["channel_mean"], "labels": ["red", "green", "blue"], "top_k": 2}}]
    network = service.network(postprocessings=post)
    task_id = service.submit(network, solid_image((10, 200, 90)))
    service.serve([task_id])
    (task,) = service.get([task_id])
    assert task.status is TaskStatus.SUCCESS, task.error
    assert [item["name"] for item in task.data["tensors"]] == ["channel_mean"]
    assert task.data["outputs"] == [{"label": "green", "score": 200.0}, {"label": "blue", "score": 90.0}]


def test_worker_network_batch_limit_and_model_loaded_once(service: Service) -> None:
    # Given a network limited to batches of 3, and 10 requests arriving together
    network = service.network(conversion_options={"max_batch_size": 3, "max_queue_delay_ms": 200})
    ids = [service.submit(network, solid_image((n, n, n))) for n in range(10)]
    downloads: list[str] = []
    worker = build_worker(service.settings(), runtime=Runtime(available=[CPU]))
    files = worker.pipeline._files
    original = files.download
    files.download = lambda key, path: (downloads.append(key), original(key, path))[1]  # type: ignore[method-assign]
    # When they are served
    service.serve(ids, worker=worker)
    # Then no batch exceeded 3, every task ended, and model.onnx came from S3 once
    assert max(worker.stats.batch_sizes) <= 3 and sum(worker.stats.batch_sizes) == 10
    assert all(task.status is TaskStatus.SUCCESS for task in service.get(ids))
    assert downloads == [layout.model_key("dev", network.network_id)]


def test_worker_network_not_ready_or_deleted_ends_the_task(service: Service) -> None:
    pending = service.network(status=NetworkStatus.PENDING)
    deleted = service.network()
    on_pending = service.submit(pending, solid_image(RED))
    on_deleted = service.submit(deleted, solid_image(RED))
    service.networks.delete("dev", deleted.network_id)
    service.serve([on_pending, on_deleted])
    first, second = service.get([on_pending, on_deleted])
    assert first.status is TaskStatus.ERROR and "not ready" in (first.error or "")
    assert second.status is TaskStatus.ERROR and "no longer exists" in (second.error or "")
    assert service.queued() == 0


def test_worker_large_result_goes_to_s3_and_the_task_api_inlines_it(service: Service) -> None:
    from tensorgate import wiring

    network = service.network()
    task_id = service.submit(network, solid_image(BLUE))
    service.serve([task_id], result_inline_bytes=10)
    (task,) = service.get([task_id])
    key = layout.result_key("dev", task_id)
    assert task.status is TaskStatus.SUCCESS and task.data == {"result_key": key}
    stored = json.loads(service.blobs.get(key))
    assert stored["tensors"][0] == {"name": "mean", "shape": [1, 3], "data": [0.0, 0.0, 255.0]}
    # The task API answers with the stored result in place
    assert wiring.task_service().get("dev", task_id).data == stored


class CrashingResults(TaskResults):
    """Writes the first `survive` results of a batch, then the process 'dies': it writes and deletes nothing more."""

    def __init__(self, inner: TaskResults, survive: int, killed: threading.Event) -> None:
        self.__dict__.update(inner.__dict__)
        self.survive = survive
        self.killed = killed

    def end(self, outcomes: Any, stored: Any = None) -> set[int]:
        if not self.killed.is_set():
            self.killed.set()
            super().end(list(outcomes)[: self.survive], stored)
        raise SystemExit("worker killed mid-batch")  # not an Exception: nothing is released or deleted


def test_worker_crash_mid_batch_redelivers_and_each_task_gets_one_result(service: Service) -> None:
    # Given requests in the queue, and a repository that counts the results it accepts
    network = service.network(conversion_options={"max_batch_size": 6, "max_queue_delay_ms": 300})
    colors = {service.submit(network, solid_image((n * 20, 0, 255 - n * 20))): n for n in range(6)}
    ids = list(colors)
    accepted: list[int] = []
    original_finish = DynamoTaskRepository.finish

    def counting_finish(self: DynamoTaskRepository, task: Task) -> bool:
        written = original_finish(self, task)
        if written:
            accepted.append(task.task_id)
        return written

    DynamoTaskRepository.finish = counting_finish  # type: ignore[method-assign]
    try:
        # When the first worker dies after writing 2 results of its batch, before deleting anything
        first = build_worker(
            service.settings(visibility_seconds=2, heartbeat_seconds=60), runtime=Runtime(available=[CPU])
        )
        killed = threading.Event()
        first.results = CrashingResults(first.results, survive=2, killed=killed)
        first.run(killed)
        assert len(accepted) == 2 and service.queued() == len(ids)
        # And a second worker receives the messages once their visibility timeout lapses
        service.serve(ids, timeout=30)
    finally:
        DynamoTaskRepository.finish = original_finish  # type: ignore[method-assign]

    # Then every task has exactly one result, the right one, and the queue is empty
    assert sorted(accepted) == sorted(ids)
    for task_id, task in zip(ids, service.get(ids), strict=True):
        n = colors[task_id]
        np.testing.assert_allclose(tensors(task)["mean"], [[n * 20, 0, 255 - n * 20]], atol=1e-4)
    assert service.queued() == 0


def test_worker_stop_finishes_the_messages_in_hand(service: Service) -> None:
    # Given a worker that is told to stop as soon as it starts preparing the first message
    network = service.network()
    ids = [service.submit(network, solid_image((n, 0, 0))) for n in range(5)]
    worker = build_worker(service.settings(), runtime=Runtime(available=[CPU]))
    stop = threading.Event()
    fetch = worker.pipeline.fetch

    def fetch_then_stop(message: InferenceMessage) -> Any:
        stop.set()
        return fetch(message)

    worker.pipeline.fetch = fetch_then_stop  # type: ignore[method-assign]
    # When it runs (as SIGTERM would end it)
    worker.run(stop)
    # Then every message it had received ended and was deleted; the others are still queued, untouched
    ended = [task for task in service.get(ids) if task.status is not TaskStatus.PENDING]
    assert ended and all(task.status is TaskStatus.SUCCESS for task in ended)
    assert service.queued() == len(ids) - len(ended)
    assert worker.stats.released == 0


def test_worker_heartbeat_extends_messages_held_during_a_long_batch(service: Service) -> None:
    # Given visibility of 2 s and a model that takes 4 s on its first batch
    network = service.network()
    ids = [service.submit(network, solid_image((0, n, 0))) for n in range(3)]
    worker = build_worker(
        service.settings(visibility_seconds=2, heartbeat_seconds=0.5), runtime=Runtime(available=[CPU])
    )
    run_batch = worker.pipeline.run_batch

    def slow(samples: Any) -> Any:
        time.sleep(4)
        return run_batch(samples)

    worker.pipeline.run_batch = slow  # type: ignore[method-assign]
    prepared: list[int] = []
    fetch = worker.pipeline.fetch
    worker.pipeline.fetch = lambda message: (prepared.append(message.task_id), fetch(message))[1]  # type: ignore[method-assign]
    service.serve(ids, worker=worker)
    # Then no message came back while it was held: each was prepared once
    assert sorted(prepared) == sorted(ids)
    assert all(task.status is TaskStatus.SUCCESS for task in service.get(ids))


def test_dead_letter_handler_ends_an_inference_task(service: Service) -> None:
    from tensorgate_local.lambdas import LocalContext

    from functions.dead_letter_handler import app as dead_letters

    # Given an inference message that kept failing and reached the dead-letter queue
    network = service.network()
    task_id = service.submit(network, solid_image(RED))
    (message,) = service.sqs.receive_message(QueueUrl=service.queue.url, MaxNumberOfMessages=1)["Messages"]
    event = {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "3"},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:InferenceDeadLetterQueue",
                "awsRegion": "us-east-1",
            }
        ]
    }
    context = LocalContext(function_name="DeadLetterHandler", timeout_seconds=29)
    # When the dead-letter handler runs (twice: dead letters are delivered at least once too)
    assert dead_letters.handler(event, context) == {"batchItemFailures": []}
    assert dead_letters.handler(event, context) == {"batchItemFailures": []}
    # Then the task ended with the reason, once
    (task,) = service.get([task_id])
    assert task.status is TaskStatus.ERROR and "did not complete after several attempts" in (task.error or "")
    # And a late worker delivery of the same message does not overwrite it
    service.sqs.change_message_visibility(
        QueueUrl=service.queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    service.serve([task_id], timeout=20)
    (after,) = service.get([task_id])
    assert after.status is TaskStatus.ERROR and after.error == task.error
    assert service.queued() == 0


def test_worker_duplicate_deliveries_of_one_task_write_one_result(service: Service) -> None:
    # SQS delivers at least once: the same request can arrive twice, even in the same batch.
    network = service.network()
    task_id = service.submit(network, solid_image(GREEN))
    (first,) = service.sqs.receive_message(QueueUrl=service.queue.url)["Messages"]
    for _ in range(3):
        service.sqs.send_message(QueueUrl=service.queue.url, MessageBody=first["Body"])
    service.sqs.change_message_visibility(
        QueueUrl=service.queue.url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    worker = service.serve([task_id], timeout=20, messages=4)
    (task,) = service.get([task_id])
    assert tensors(task)["mean"].tolist() == [[0.0, 255.0, 0.0]]
    assert worker.stats.ended == 4 and service.queued() == 0


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Service]:
    """The template's resources in moto's server, reachable from a worker process of its own."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer
    from tensorgate import wiring
    from tensorgate_local.resources import create_all
    from tensorgate_local.template import Template

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    template = Template(parameters={"ApiKeyPepper": "test-pepper-0123456789abcdef0123456789"})
    template.endpoint = endpoint
    session = boto3.session.Session()
    create_all(template, session)
    for function in template.functions().values():
        for name, value in function.environment.items():
            monkeypatch.setenv(name, value)
    wiring.reset()
    try:
        yield Service({"session": session}, tmp_path)
    finally:
        wiring.reset()
        server.stop()


def test_worker_process_sigterm_finishes_the_messages_in_hand_then_exits(moto_server: Service) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tensorgate_local.template import REPO_ROOT

    # Given a worker process (the container's entry point) serving a queue of requests
    service = moto_server
    network = service.network()
    ids = [service.submit(network, noise_png(seed, size=(96, 64))) for seed in range(24)]
    environment = os.environ | {
        "WORKER_RECEIVE_WAIT_SECONDS": "1",
        "WORKER_MODEL_DIR": str(service.tmp_path / "models"),
        "WORKER_PREPROCESS_THREADS": "1",
        "WORKER_FETCH_THREADS": "1",
        # Holding few messages at once leaves most of the queue untouched when the signal comes.
        "WORKER_MAX_IN_FLIGHT": "4",
        "WORKER_RECEIVERS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "functions.worker.main"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: len(service.pending(ids)) < len(ids), 60, lambda: "no task ended yet")
        # When ECS stops the task mid-stream
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    # Then it exits cleanly, and every message it held ended: none is left in flight
    assert worker.returncode == 0, output
    assert "received SIGTERM" in output and "worker stopped" in output
    tasks = service.get(ids)
    ended = [task for task in tasks if task.status is not TaskStatus.PENDING]
    assert ended and all(task.status is TaskStatus.SUCCESS for task in ended)
    attributes = service.sqs.get_queue_attributes(
        QueueUrl=service.queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert service.queued() == len(ids) - len(ended)
