"""Worker benchmark: does the pipeline overlap preprocessing with inference?

One run, one model (Keras MobileNetV2, weights=None, converted with tf2onnx), the same 1920×1080 JPEGs:

  (a) bare `session.run` on ready tensors, at the worker's batch size (onnxruntime's default options);
  (b) preprocessing alone (the layer: decode, resize, scale, mean, into a batch array), one thread;
  (c) the worker pipeline from queued messages to written results, under moto (SQS, S3, DynamoDB):
      the inputs sit in S3 as the submit API stores large images, every message is queued before the
      worker starts, and the clock stops when the last task has its result;
  (d) the same worker with in-memory queue, file store and tables: production's SQS, S3 and DynamoDB
      cost the worker's own cores nothing but a network call, while moto runs in the worker's process
      and takes its CPU (and its GIL), so (d) is the pipeline a real worker runs.

It prints images/s of each, and (c) and (d) against the serial bound 1/(1/a + 1/b) — what a worker
that preprocesses and then runs, one after the other, could reach (goal: >= 1.0) — and against
min(a, b), the ceiling of a perfect overlap. All are measured in interleaved rounds and the medians
reported, so that load from other processes on a shared machine weighs on all of them alike; the
process CPU time per image of each is printed too, as a view independent of that load.

    python bench/worker.py [--images 96] [--rounds 3] [--batch 8] [--seconds 4] [--json results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

SIZE = 224
WIDTH, HEIGHT = 1920, 1080
ACCOUNT, NETWORK = "bench", 1
IMAGE_SPEC = {
    "dimension_order": "NHWC",
    "resize_type": "SQUASH",
    "target_size": f"{SIZE}x{SIZE}",
    "color_channels": "RGB",
    # MobileNetV2's own preprocessing, x / 127.5 - 1: scale to [0, 2], then subtract a mean of 1.
    "pixel_scaling": 2.0,
    "mean_file": "mean.npy",
}


def fix_moto_receive() -> None:
    """Remove one emulation cost: moto's ReceiveMessage recomputes every queue attribute (counting all
    messages) for each message it returns, so a receive costs O(queue depth) and a backlog of a few
    hundred messages makes the emulated SQS, not the worker, the bottleneck. SQS itself does not."""
    from moto.core.utils import unix_time
    from moto.sqs import models

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time())

    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


def mobilenet_onnx(directory: Path) -> tuple[bytes, str]:
    """Keras MobileNetV2 (weights=None) through tf2onnx, batch dimension dynamic."""
    import tensorflow as tf
    import tf2onnx

    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    signature = [tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="input")]
    # A traced function, not from_keras: tf2onnx's Keras entry point reads Keras 2 attributes.
    function = tf.function(lambda image: model(image, training=False), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=17)
    data = proto.SerializeToString()
    (directory / "model.onnx").write_bytes(data)
    return data, proto.graph.input[0].name


def photographs(count: int, seed: int = 0) -> list[bytes]:
    """Photograph-like 1920×1080 JPEGs: smooth colour fields with texture, quality 90."""
    rng = np.random.default_rng(seed)
    images = []
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for _ in range(count):
        channels = []
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.002, 0.01), rng.uniform(0.002, 0.01), rng.uniform(0, 6.28)
            channels.append(127 + 100 * np.sin(x * fx + phase) * np.cos(y * fy))
        pixels = np.stack(channels, axis=-1) + rng.normal(0, 8, (HEIGHT, WIDTH, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


@dataclass
class Measure:
    images_per_second: float
    cpu_ms_per_image: float


def measure(step: Callable[[], Any], items_per_step: int, seconds: float) -> Measure:
    """Items per second of `step` (after one warm-up call) over at least `seconds`, and CPU per item."""
    step()
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        step()
        count += items_per_step
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Measure(count / elapsed, cpu / count * 1000)


def bare_inference(model_path: Path, input_name: str, batch: int) -> tuple[Callable[[], Any], list[str]]:
    import onnxruntime as ort

    from functions.worker.runtime import select_providers

    session = ort.InferenceSession(str(model_path), providers=select_providers())
    tensors = np.random.default_rng(1).uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)
    return lambda: session.run(None, {input_name: tensors}), session.get_providers()


def preprocessing_alone(images: list[bytes], batch: int) -> Callable[[], None]:
    from tensorgate_preprocessing.images import prepare_image
    from tensorgate_preprocessing.spec import ImageSpec
    from tensorgate_preprocessing.tensors import BatchWriter

    spec = ImageSpec.model_validate(IMAGE_SPEC)
    mean = np.ones((1, 1, 3), np.float32)
    position = 0

    def step() -> None:
        nonlocal position
        writer = BatchWriter(spec, (SIZE, SIZE), batch, mean)
        for row in range(batch):
            writer.write(row, prepare_image(images[position % len(images)], spec).pixels)
            position += 1

    return step


@contextmanager
def emulated_aws() -> Iterator[None]:
    from moto import mock_aws
    from tensorgate_local.sqs_emulation import atomic_deletes

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    fix_moto_receive()
    atomic_deletes()
    with mock_aws():
        yield


class MemoryQueue:
    """SQS's contract in memory for one consumer process: receive hides, delete ends, extend 0 releases."""

    def __init__(self) -> None:
        self._ready: deque[dict[str, Any]] = deque()
        self._held: dict[str, dict[str, Any]] = {}
        self._condition = threading.Condition()
        self._count = 0

    def send(self, body: dict[str, Any], group: str | None = None) -> str:
        with self._condition:
            self._count += 1
            message_id = f"m{self._count}"
            self._ready.append({"MessageId": message_id, "Body": json.dumps(body), "Attributes": {}})
            self._condition.notify()
        return message_id

    def receive(
        self, max_messages: int = 10, wait_seconds: int = 20, visibility_seconds: int | None = None
    ) -> list[dict[str, Any]]:
        with self._condition:
            self._condition.wait_for(lambda: bool(self._ready), timeout=wait_seconds)
            received = []
            while self._ready and len(received) < max_messages:
                message = self._ready.popleft()
                handle = f"{message['MessageId']}-{self._count}-{len(received)}"
                self._held[handle] = message
                received.append({**message, "ReceiptHandle": handle})
            return received

    def delete(self, receipt_handles: list[str]) -> None:
        with self._condition:
            for handle in receipt_handles:
                self._held.pop(handle, None)

    def extend(self, receipt_handles: list[str], visibility_seconds: int) -> None:
        if visibility_seconds:
            return
        with self._condition:
            for handle in receipt_handles:
                message = self._held.pop(handle, None)
                if message is not None:
                    self._ready.append(message)
            self._condition.notify_all()


def memory_files() -> Any:
    from tests.fakes import InMemoryBlobStore

    class MemoryFiles(InMemoryBlobStore):
        def download(self, key: str, path: str) -> None:
            Path(path).write_bytes(self.get(key))

    return MemoryFiles()


def memory_worker(settings: Any, files: Any, tasks: Any, networks: Any, queue: MemoryQueue) -> Any:
    """The worker build_worker assembles, on in-memory adapters instead of boto3's."""
    from functions.worker.fetch import FetchPolicy
    from functions.worker.main import Worker, runtime_options
    from functions.worker.pipeline import InferencePipeline, PipelineOptions, discard_model_files
    from functions.worker.results import TaskResults
    from functions.worker.runtime import ModelCache, Runtime

    pipeline = InferencePipeline(
        networks=networks,
        files=files,
        runtime=Runtime(runtime_options(settings)),
        cache=ModelCache(settings.model_cache_bytes, on_evict=discard_model_files),
        options=PipelineOptions(
            fetch=FetchPolicy(timeout_seconds=settings.fetch_timeout_seconds, max_bytes=settings.fetch_max_bytes),
            model_dir=Path(settings.model_dir),
            max_pixels=settings.max_pixels,
            max_batch_size=settings.max_batch_size,
            max_queue_delay_ms=settings.max_queue_delay_ms,
            network_cache_seconds=settings.network_cache_seconds,
        ),
    )
    return Worker(settings, queue, pipeline, TaskResults(tasks, files, settings.result_inline_bytes))


def network_record(input_name: str, batch: int) -> Any:
    from tensorgate import layout
    from tensorgate.models import Network, NetworkStatus, utc_now

    now = utc_now()
    return Network(
        account_id=ACCOUNT,
        network_id=NETWORK,
        name="mobilenetv2",
        framework="keras",
        preprocessing={"inputs": [{"tensor_name": input_name, "image": IMAGE_SPEC}]},
        conversion_options={"max_batch_size": batch},
        task_id=0,
        status=NetworkStatus.READY,
        upload_prefix=layout.network_prefix(ACCOUNT, NETWORK),
        conversion={"model": {"files": ["model.onnx"], "sha256": "bench"}, "name_map": {}},
        create_date=now,
        update_date=now,
    )


def store_network(files: Any, model: bytes) -> None:
    from tensorgate import layout

    files.put(layout.model_key(ACCOUNT, NETWORK), model)
    mean = io.BytesIO()
    np.save(mean, np.ones((1, 1, 3), np.float32))
    files.put(layout.file_key(ACCOUNT, NETWORK, "mean.npy"), mean.getvalue())


class PipelineBench:
    """The template's resources under moto, one ready network, and a worker that serves queued requests.

    ``in_memory`` (with the moto run's settings) puts the same network and worker on in-memory adapters.
    """

    def __init__(
        self,
        model: bytes,
        input_name: str,
        batch: int,
        workdir: Path,
        overrides: dict[str, Any],
        in_memory: Any | None = None,
    ) -> None:
        self.next_task_id = 1
        if in_memory is not None:
            from tests.fakes import InMemoryNetworkRepository, InMemoryTaskRepository

            self.blobs, self.tasks, self.queue = memory_files(), InMemoryTaskRepository(), MemoryQueue()
            networks = InMemoryNetworkRepository()
            store_network(self.blobs, model)
            networks.put_new(network_record(input_name, batch))
            # The in-memory queue is thread-safe: the worker's own number of receivers.
            self.settings = replace(in_memory, model_dir=str(workdir / "memory-models"), receivers=2)
            self.worker = memory_worker(self.settings, self.blobs, self.tasks, networks, self.queue)
            return
        self._emulated(model, input_name, batch, workdir, overrides)

    def _emulated(self, model: bytes, input_name: str, batch: int, workdir: Path, overrides: dict[str, Any]) -> None:
        import boto3
        from tensorgate import wiring
        from tensorgate.adapters.dynamodb import DynamoNetworkRepository, DynamoTaskRepository
        from tensorgate.adapters.s3 import S3BlobStore
        from tensorgate.adapters.sqs import SqsQueue
        from tensorgate.config import get_settings
        from tensorgate_local.resources import create_all
        from tensorgate_local.template import Template

        from functions.worker.main import build_worker
        from functions.worker.settings import WorkerSettings

        template = Template(parameters={"ApiKeyPepper": "bench-pepper-0123456789abcdef0123456789"})
        template.endpoint = "https://sqs.us-east-1.amazonaws.com"
        create_all(template, boto3.session.Session())
        for function in template.functions().values():
            os.environ.update(function.environment)
        wiring.reset()
        shared = get_settings()
        self.blobs = S3BlobStore(shared.model_bucket)
        self.tasks = DynamoTaskRepository(shared.tasks_table)
        self.queue = SqsQueue(shared.inference_queue_url)
        store_network(self.blobs, model)
        DynamoNetworkRepository(shared.networks_table).put_new(network_record(input_name, batch))
        self.settings = replace(
            WorkerSettings.from_environment(),
            receive_wait_seconds=1,
            # moto's in-process SQS is not thread-safe: concurrent receives can fail inside it.
            receivers=1,
            model_dir=str(workdir / "models"),
            max_batch_size=batch,
            **overrides,
        )
        self.worker = build_worker(self.settings)

    def enqueue(self, images: list[bytes]) -> list[int]:
        from tensorgate import layout
        from tensorgate.messages import InferenceInput, InferenceMessage, StoredSource
        from tensorgate.models import Task, TaskKind, utc_now

        now = utc_now()
        ids = list(range(self.next_task_id, self.next_task_id + len(images)))
        self.next_task_id += len(images)
        for task_id, image in zip(ids, images, strict=True):
            key = layout.input_key(ACCOUNT, task_id, 0)
            self.blobs.put(key, image)
            self.tasks.put_new(
                Task(
                    task_id=task_id,
                    account_id=ACCOUNT,
                    kind=TaskKind.INFERENCE,
                    network_id=NETWORK,
                    create_date=now,
                    update_date=now,
                    expires_at=int((now + timedelta(days=1)).timestamp()),
                )
            )
            message = InferenceMessage(
                task_id=task_id,
                account_id=ACCOUNT,
                network_id=NETWORK,
                inputs=[InferenceInput(source=StoredSource(key=key))],
                submitted_at=now,
            )
            self.queue.send(message.model_dump(mode="json"))
        return ids

    def serve(self, images: list[bytes]) -> tuple[Measure, list[int]]:
        """Queue every request first (not timed), then time the worker from start to the last result."""
        from tensorgate.models import TaskStatus

        ids = self.enqueue(images)
        stats = self.worker.stats
        stats.batch_sizes.clear()
        goal = stats.ended + len(ids)
        stop = threading.Event()
        thread = threading.Thread(target=self.worker.run, args=(stop,), daemon=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        thread.start()
        # The worker's own count of ended tasks (results written, messages deleted): polling the
        # emulated DynamoDB here would take CPU from the worker being measured.
        while stats.ended < goal:
            time.sleep(0.005)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stop.set()
        thread.join()
        found = self.tasks.get_many(ids)
        failed = [task for task in found if task.status is not TaskStatus.SUCCESS]
        if failed:
            raise SystemExit(f"{len(failed)} tasks failed, for example: {failed[0].error}")
        return Measure(len(ids) / elapsed, cpu / len(ids) * 1000), list(self.worker.stats.batch_sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="requests through the worker pipeline per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a), (b), (c)")
    parser.add_argument("--batch", type=int, default=8, help="the worker's max_batch_size, and (a)'s batch")
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time of (a) and (b) per round")
    parser.add_argument("--fetch-threads", type=int, help="WORKER_FETCH_THREADS (default: the worker's)")
    parser.add_argument("--preprocess-threads", type=int, help="WORKER_PREPROCESS_THREADS (default: the worker's)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    overrides = {
        name: value
        for name, value in (("fetch_threads", args.fetch_threads), ("preprocess_threads", args.preprocess_threads))
        if value is not None
    }

    with tempfile.TemporaryDirectory(prefix="tensorgate-bench-") as temporary:
        workdir = Path(temporary)
        print("converting Keras MobileNetV2 (weights=None) with tf2onnx...", flush=True)
        model, input_name = mobilenet_onnx(workdir)
        images = photographs(min(args.images, 48))
        requests = (images * (args.images // len(images) + 1))[: args.images]
        size = sum(len(image) for image in images) / len(images)
        print(f"{len(images)} distinct {WIDTH}x{HEIGHT} JPEGs, {size / 1024:.0f} KiB on average", flush=True)

        run_bare, providers = bare_inference(workdir / "model.onnx", input_name, args.batch)
        preprocess = preprocessing_alone(images, args.batch)
        rounds: list[dict[str, Any]] = []
        with emulated_aws():
            pipeline = PipelineBench(model, input_name, args.batch, workdir, overrides)
            pipeline.serve(requests[: 2 * args.batch])  # warm-up: the model loads from S3
            memory = PipelineBench(model, input_name, args.batch, workdir, overrides, in_memory=pipeline.settings)
            memory.serve(requests[: 2 * args.batch])
            for number in range(1, args.rounds + 1):
                a = measure(run_bare, args.batch, args.seconds)
                b = measure(preprocess, args.batch, args.seconds)
                c, sizes = pipeline.serve(requests)
                d, memory_sizes = memory.serve(requests)
                serial = 1 / (1 / a.images_per_second + 1 / b.images_per_second)
                rounds.append({"a": a, "b": b, "c": c, "d": d, "serial": serial, "batch_sizes": sizes})
                print(
                    f"round {number}: a {a.images_per_second:.1f}  b {b.images_per_second:.1f}  "
                    f"c {c.images_per_second:.1f}  d {d.images_per_second:.1f} images/s  (c / serial bound "
                    f"{c.images_per_second / serial:.2f}, d / serial bound {d.images_per_second / serial:.2f}, "
                    f"mean batch {sum(sizes) / len(sizes):.1f} and {sum(memory_sizes) / len(memory_sizes):.1f}, "
                    f"load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        settings = pipeline.settings

    def median(key: str, field: str = "images_per_second") -> float:
        return statistics.median(getattr(item[key], field) for item in rounds)

    a, b, c, d = median("a"), median("b"), median("c"), median("d")
    serial = 1 / (1 / a + 1 / b)
    ratio = statistics.median(item["c"].images_per_second / item["serial"] for item in rounds)
    memory_ratio = statistics.median(item["d"].images_per_second / item["serial"] for item in rounds)
    sizes = [size for item in rounds for size in item["batch_sizes"]]
    cpu = {key: median(key, "cpu_ms_per_image") for key in ("a", "b", "c", "d")}
    figures = {
        "model": "keras MobileNetV2 (weights=None) via tf2onnx, 224x224",
        "provider": providers[0],
        "cores": os.cpu_count(),
        "batch": args.batch,
        "rounds": args.rounds,
        "a_session_run_images_per_s": round(a, 1),
        "b_preprocessing_images_per_s": round(b, 1),
        "c_worker_pipeline_images_per_s": round(c, 1),
        "serial_bound_images_per_s": round(serial, 1),
        "c_over_serial_bound": round(c / serial, 3),
        "c_over_serial_bound_median_of_rounds": round(ratio, 3),
        "c_over_min_a_b": round(c / min(a, b), 3),
        "d_in_memory_pipeline_images_per_s": round(d, 1),
        "d_over_serial_bound": round(d / serial, 3),
        "d_over_serial_bound_median_of_rounds": round(memory_ratio, 3),
        "d_over_min_a_b": round(d / min(a, b), 3),
        "cpu_ms_per_image": {key: round(value, 1) for key, value in cpu.items()},
        "mean_batch_size": round(sum(sizes) / len(sizes), 2),
        "fetch_threads": settings.fetch_threads,
        "preprocess_threads": settings.preprocess_threads,
    }
    print()
    print(f"MobileNetV2 224x224 ONNX on {providers[0]}, {os.cpu_count()} cores, batch {args.batch}")
    print(f"medians of {args.rounds} rounds                         images/s   CPU ms/image")
    print(f"(a) bare session.run, ready tensors            {a:8.1f}   {cpu['a']:8.1f}")
    print(f"(b) preprocessing alone, one thread            {b:8.1f}   {cpu['b']:8.1f}")
    print(f"(c) worker pipeline, {args.images} queued requests      {c:8.1f}   {cpu['c']:8.1f}")
    print(f"    serial bound 1/(1/a+1/b)                   {serial:8.1f}")
    print(f"    (c) / serial bound                         {c / serial:8.2f}x   (goal >= 1.0)")
    print(f"    (c) / min(a, b)                            {c / min(a, b):8.2f}x")
    print(f"(d) worker pipeline, in-memory queue and store {d:8.1f}   {cpu['d']:8.1f}")
    print(f"    (d) / serial bound                         {d / serial:8.2f}x   (goal >= 1.0)")
    print(f"    (d) / min(a, b)                            {d / min(a, b):8.2f}x")
    print(
        f"    mean batch {figures['mean_batch_size']}, {settings.fetch_threads} fetching and "
        f"{settings.preprocess_threads} preprocessing threads, moto in process"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
