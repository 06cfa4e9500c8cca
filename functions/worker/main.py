"""The inference worker's SQS transport: receive, hold, batch per network, hand results back, delete what ended.

Threads, so that preprocessing overlaps inference:
- receivers long-poll the inference queue while fewer than `max_in_flight` messages are held;
- a pool of fetching threads reads each message's network plan and downloads its inputs (waiting on
  S3 or URLs), and a pool of one thread per core preprocesses them (`InferencePipeline.fetch`, then
  `preprocess`) and queues the sample in the batcher, keyed by model and input size;
- one runner takes the next batch (full at `max_batch_size`, or the oldest sample waited
  `max_queue_delay_ms`) and runs it;
- two completion threads write the results and delete the messages whose tasks ended, merging the
  batches that queued up meanwhile into one round of calls;
- a heartbeat extends the visibility of held messages, so a long batch is not redelivered meanwhile.
A message that failed for a transient reason is released to come back after `retry_delay_seconds`;
one that keeps failing reaches the dead-letter queue, whose handler ends its task.

`run_until(stop_event)` serves until the event is set; `main()` is the entry point of the container (and
of the local stack's worker process), where SIGTERM sets the event: the messages in hand are finished,
then it exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from pydantic import ValidationError
from tensorgate.adapters.dynamodb import DynamoNetworkRepository, DynamoTaskRepository
from tensorgate.adapters.dynamodb_jobs import DynamoJobRepository
from tensorgate.adapters.s3 import S3BlobStore
from tensorgate.adapters.sqs import SqsQueue
from tensorgate.job_models import JobStatus
from tensorgate.messages import InferenceMessage
from tensorgate.models import Task
from tensorgate.services.jobs import CANCELLED_ITEM, JobRepository, JobSettler

from functions.worker.fetch import FetchPolicy
from functions.worker.pipeline import (
    Fetched,
    InferencePipeline,
    InputRejected,
    NetworkPlan,
    Outcome,
    PipelineOptions,
    Sample,
    discard_model_files,
)
from functions.worker.results import TaskResults
from functions.worker.runtime import CUDA, ModelCache, Runtime, RuntimeOptions, select_providers
from functions.worker.settings import WorkerSettings, get_settings

log = logging.getLogger("inference_worker")
SQS_MAX_MESSAGES = 10
# How long the batch receiver waits before looking again when it took nothing (online work, or none queued).
BATCH_IDLE_SECONDS = 0.2


class JobWatch:
    """Which jobs are cancelled, read at most once a second per job: items of one are skipped, not run."""

    def __init__(self, jobs: JobRepository, ttl_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._jobs = jobs
        self._ttl = ttl_seconds
        self._clock = clock
        self._seen: dict[int, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def cancelled(self, job_id: int) -> bool:
        now = self._clock()
        with self._lock:
            seen = self._seen.get(job_id)
        if seen is not None and now - seen[0] < self._ttl:
            return seen[1]
        progress = self._jobs.progress_many([job_id]).get(job_id)
        cancelled = progress is None or progress.status is JobStatus.CANCELLED
        with self._lock:
            self._seen[job_id] = (now, cancelled)
        return cancelled


# Results written in one round (one BatchGetItem, PutItem each, DeleteMessageBatch by tens).
COMPLETION_CHUNK = 30


@dataclass
class Delivery:
    """One received message while this worker holds it."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    visible_until: float
    message: InferenceMessage | None = None
    batch: bool = False  # received from the batch queue (a job's item), not the inference queue


class InFlight:
    """The messages held, by message id, bounded; the heartbeat extends them and the receivers wait for room."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._condition = threading.Condition()
        self._held: dict[str, Delivery] = {}

    def __len__(self) -> int:
        with self._condition:
            return len(self._held)

    def room(self, timeout: float) -> int:
        with self._condition:
            self._condition.wait_for(lambda: len(self._held) < self._limit, timeout=timeout)
            return max(0, self._limit - len(self._held))

    def add(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Hold the deliveries of messages not held yet, and return them.

        SQS delivers at least once: a message already held comes back as a duplicate. It is not
        processed twice; the held delivery takes its receipt handle (the newest is the one that
        deletes the message) and its new visibility.
        """
        fresh = []
        with self._condition:
            for delivery in deliveries:
                held = self._held.get(delivery.message_id)
                if held is None:
                    self._held[delivery.message_id] = delivery
                    fresh.append(delivery)
                else:
                    held.receipt_handle = delivery.receipt_handle
                    held.visible_until = delivery.visible_until
        return fresh

    def remove(self, deliveries: Sequence[Delivery]) -> None:
        with self._condition:
            for delivery in deliveries:
                self._held.pop(delivery.message_id, None)
            self._condition.notify_all()

    def held(self, batch: bool) -> int:
        with self._condition:
            return sum(delivery.batch == batch for delivery in self._held.values())

    def expiring(self, before: float) -> list[Delivery]:
        with self._condition:
            return [delivery for delivery in self._held.values() if delivery.visible_until < before]

    def wait_empty(self, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: not self._held, timeout=timeout)


class Batcher:
    """Dynamic batching: samples wait per (model, input size) until a batch is full or its oldest is due."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._condition = threading.Condition()
        self._queues: dict[Hashable, deque[tuple[Sample, Delivery]]] = {}
        self._flushing = False

    def put(self, sample: Sample, delivery: Delivery) -> None:
        with self._condition:
            self._queues.setdefault(sample.batch_key, deque()).append((sample, delivery))
            self._condition.notify_all()

    def flush(self) -> None:
        """No more samples will come: hand out what is left without waiting for batches to fill."""
        with self._condition:
            self._flushing = True
            self._condition.notify_all()

    def pending(self) -> int:
        with self._condition:
            return sum(len(queue) for queue in self._queues.values())

    def take(self, timeout: float) -> list[tuple[Sample, Delivery]] | None:
        """The next batch, or None when none was due within `timeout` (or the batcher is flushed and empty)."""
        deadline = self._clock() + timeout
        with self._condition:
            while True:
                now = self._clock()
                chosen: Hashable | None = None
                chosen_since = float("inf")
                wake = deadline
                for key, queue in self._queues.items():
                    if not queue:
                        continue
                    head = queue[0][0]
                    due = head.ready_at + head.plan.max_queue_delay_ms / 1000
                    if len(queue) >= head.plan.max_batch_size or due <= now or self._flushing:
                        if head.ready_at < chosen_since:  # the longest waiting batch goes first
                            chosen, chosen_since = key, head.ready_at
                    else:
                        wake = min(wake, due)
                if chosen is not None:
                    queue = self._queues[chosen]
                    size = min(len(queue), queue[0][0].plan.max_batch_size)
                    batch = [queue.popleft() for _ in range(size)]
                    if not queue:
                        del self._queues[chosen]
                    return batch
                if now >= deadline or (self._flushing and not self._queues):
                    return None
                self._condition.wait(max(0.0, wake - now))


class Completions:
    """Threads that write results and delete messages, merging what queued up into one round of calls.

    Small batches would otherwise each pay a BatchGetItem and a DeleteMessageBatch of their own.
    """

    def __init__(self, complete: Callable[[Sequence[Delivery], Sequence[Outcome]], None], threads: int) -> None:
        self._complete = complete
        self._queue: SimpleQueue[tuple[Sequence[Delivery], Sequence[Outcome]] | None] = SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"worker-complete-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, deliveries: Sequence[Delivery], outcomes: Sequence[Outcome]) -> None:
        self._queue.put((deliveries, outcomes))

    def close(self) -> None:
        """Finish everything submitted, then stop the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            deliveries, outcomes = list(item[0]), list(item[1])
            closing = False
            while len(outcomes) < COMPLETION_CHUNK:
                try:
                    more = self._queue.get_nowait()
                except Empty:
                    break
                if more is None:
                    closing = True
                    break
                deliveries.extend(more[0])
                outcomes.extend(more[1])
            try:
                self._complete(deliveries, outcomes)
            except Exception:  # _complete handles its own failures; never lose the thread
                log.exception("completing %d task(s) failed", len(outcomes))
            if closing:
                return


@dataclass
class WorkerStats:
    batches: int = 0
    samples: int = 0
    ended: int = 0
    released: int = 0
    duplicates: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        queue: Any,
        pipeline: InferencePipeline,
        results: TaskResults,
        clock: Callable[[], float] = time.monotonic,
        batch_queue: Any | None = None,
        jobs: JobWatch | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.batch_queue = batch_queue
        self.jobs = jobs
        # Whether the last receive from the inference queue came back empty, and when one last brought work:
        # the batch queue is read only after an empty receive and `batch_quiet_seconds` without online work.
        self._online_idle = False
        self._online_seen_at = float("-inf")
        self.pipeline = pipeline
        self.results = results
        self.stats = WorkerStats()
        self._clock = clock
        self._in_flight = InFlight(settings.max_in_flight)
        self._batcher = Batcher(clock)
        self._stats_lock = threading.Lock()

    # ---- lifecycle --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, then finish every message in hand and return."""
        if self.settings.switch_interval_ms > 0:
            sys.setswitchinterval(self.settings.switch_interval_ms / 1000)
        self._batcher = Batcher(self._clock)
        fetching = ThreadPoolExecutor(max(1, self.settings.fetch_threads), thread_name_prefix="worker-fetch")
        self._preprocessing = ThreadPoolExecutor(
            max(1, self.settings.preprocess_threads), thread_name_prefix="worker-preprocess"
        )
        self._completions = Completions(self._complete, threads=2)
        heartbeat_stop = threading.Event()
        receivers = [
            threading.Thread(target=self._receive_loop, args=(stop, fetching), name=f"worker-receive-{n}", daemon=True)
            for n in range(max(1, self.settings.receivers))
        ]
        if self.batch_queue is not None:
            receivers.append(
                threading.Thread(
                    target=self._batch_receive_loop, args=(stop, fetching), name="worker-receive-batch", daemon=True
                )
            )
        runner_stop = threading.Event()
        runner = threading.Thread(target=self._run_loop, args=(runner_stop,), name="worker-run", daemon=True)
        heartbeat = threading.Thread(
            target=self._heartbeat_loop, args=(heartbeat_stop,), name="worker-heartbeat", daemon=True
        )
        for thread in (*receivers, runner, heartbeat):
            thread.start()
        log.info(
            "worker serving %s (batch %d, delay %d ms, %d fetching and %d preprocessing threads)",
            self.settings.inference_queue_url,
            self.settings.max_batch_size,
            self.settings.max_queue_delay_ms,
            self.settings.fetch_threads,
            self.settings.preprocess_threads,
        )
        stop.wait()
        log.info("worker stopping: finishing %d message(s) in hand", len(self._in_flight))
        for thread in receivers:
            thread.join()
        fetching.shutdown(wait=True)
        self._preprocessing.shutdown(wait=True)
        self._batcher.flush()
        runner_stop.set()
        runner.join()
        self._completions.close()
        heartbeat_stop.set()
        heartbeat.join()
        log.info("worker stopped (%d batches, %d tasks ended)", self.stats.batches, self.stats.ended)

    # ---- receiving ----------------------------------------------------------------------------------

    def _receive_loop(self, stop: threading.Event, fetching: ThreadPoolExecutor) -> None:
        while not stop.is_set():
            try:
                self.receive_once(fetching.submit)
            except Exception:
                # botocore has already retried with backoff; wait a little more, then poll again.
                log.exception("receiving from the inference queue failed; retrying")
                stop.wait(0.5)

    def _batch_receive_loop(self, stop: threading.Event, fetching: ThreadPoolExecutor) -> None:
        while not stop.is_set():
            try:
                if self.receive_batch_once(fetching.submit) == 0:
                    stop.wait(BATCH_IDLE_SECONDS)
            except Exception:
                log.exception("receiving from the batch queue failed; retrying")
                stop.wait(0.5)

    def receive_batch_once(self, submit: Callable[..., Any]) -> int:
        """Jobs' items, only while online work is absent: the inference queue's last receive came back empty,
        none brought work for `batch_quiet_seconds`, no online message is held, and fewer than `batch_in_flight`
        items are. An online request arriving meanwhile waits at most for those items (docs/jobs.md)."""
        if self.batch_queue is None or not self._online_idle or self._in_flight.held(batch=False) > 0:
            return 0
        if self._clock() - self._online_seen_at < self.settings.batch_quiet_seconds:
            return 0
        room = min(self.settings.batch_in_flight - self._in_flight.held(batch=True), self._in_flight.room(timeout=0))
        if room <= 0:
            return 0
        received = self.batch_queue.receive(
            max_messages=min(SQS_MAX_MESSAGES, room),
            wait_seconds=0,
            visibility_seconds=self.settings.visibility_seconds,
        )
        return self._hold(received, submit, batch=True)

    def receive_once(self, submit: Callable[..., Any]) -> int:
        room = self._in_flight.room(timeout=1.0)
        if room == 0:
            return 0
        # With a batch queue, a short wait: the batch receiver reads it only after an empty online receive.
        wait = (
            self.settings.receive_wait_seconds
            if self.batch_queue is None
            else min(1, self.settings.receive_wait_seconds)
        )
        received = self.queue.receive(
            max_messages=min(SQS_MAX_MESSAGES, room),
            wait_seconds=wait,
            visibility_seconds=self.settings.visibility_seconds,
        )
        self._online_idle = not received
        if received:
            self._online_seen_at = self._clock()
        return self._hold(received, submit, batch=False)

    def _hold(self, received: list[dict[str, Any]], submit: Callable[..., Any], batch: bool) -> int:
        now = self._clock()
        deliveries = [
            Delivery(
                message_id=item["MessageId"],
                receipt_handle=item["ReceiptHandle"],
                body=item["Body"],
                receive_count=int(item.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                visible_until=now + self.settings.visibility_seconds,
                batch=batch,
            )
            for item in received
        ]
        fresh = self._in_flight.add(deliveries)
        if len(fresh) < len(deliveries):
            log.info("%d message(s) delivered again while held; processed once", len(deliveries) - len(fresh))
            with self._stats_lock:
                self.stats.duplicates += len(deliveries) - len(fresh)
        for delivery in fresh:
            submit(self._fetch, delivery)
        return len(fresh)

    def _fetch(self, delivery: Delivery) -> None:
        try:
            delivery.message = InferenceMessage.model_validate_json(delivery.body)
        except ValidationError:
            # Not ours to interpret: it comes back until the dead-letter queue keeps it for a person.
            log.error(
                "message %s is not an inference message; leaving it for the dead-letter queue", delivery.message_id
            )
            self._in_flight.remove([delivery])
            return
        message = delivery.message
        jobs, job_id = self.jobs, message.job_id
        if job_id is not None and jobs is not None:
            cancelled = self._attempt(delivery, lambda: jobs.cancelled(job_id))
            if cancelled is None:  # the job's state could not be read: released for a retry
                return
            if cancelled:
                # A cancelled job's items that had not started end without running.
                self._completions.submit([delivery], [Outcome(message.task_id, error=CANCELLED_ITEM, skipped=True)])
                return
        fetched = self._attempt(delivery, lambda: self.pipeline.fetch(message))
        if fetched is not None:
            self._preprocessing.submit(self._preprocess, delivery, fetched)

    def _preprocess(self, delivery: Delivery, fetched: Fetched) -> None:
        sample = self._attempt(delivery, lambda: self.pipeline.preprocess(fetched))
        if sample is not None:
            self._batcher.put(sample, delivery)

    def _attempt(self, delivery: Delivery, step: Callable[[], Any]) -> Any:
        """`step()`, or None once a rejection was queued for writing or the message released for a retry."""
        assert delivery.message is not None
        try:
            return step()
        except InputRejected as rejection:
            self._completions.submit([delivery], [Outcome(delivery.message.task_id, error=rejection.message)])
        except Exception:
            log.exception("task %s could not be prepared; it will be retried", delivery.message.task_id)
            self._release([delivery])
        return None

    # ---- running --------------------------------------------------------------------------------------

    def _run_loop(self, stop: threading.Event) -> None:
        while True:
            batch = self._batcher.take(timeout=0.5)
            if batch is None:
                if stop.is_set() and self._batcher.pending() == 0:
                    return
                continue
            self.run_batch(batch, self._completions.submit)

    def run_batch(self, batch: Sequence[tuple[Sample, Delivery]], submit: Callable[..., Any]) -> None:
        samples = [sample for sample, _ in batch]
        deliveries = [delivery for _, delivery in batch]
        plan: NetworkPlan = samples[0].plan
        started = self._clock()
        waited_ms = (started - min(sample.ready_at for sample in samples)) * 1000
        try:
            outcomes = self.pipeline.run_batch(samples)
        except Exception:
            log.exception(
                "batch of %d for network %s failed; its messages will be retried", len(batch), plan.key.network_id
            )
            self._release(deliveries)
            return
        elapsed_ms = (self._clock() - started) * 1000
        log.info(
            "batch network=%s/%s size=%d ms=%.1f waited_ms=%.1f",
            plan.key.account_id,
            plan.key.network_id,
            len(batch),
            elapsed_ms,
            waited_ms,
        )
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.samples += len(batch)
            self.stats.batch_sizes.append(len(batch))
        submit(deliveries, outcomes)

    # ---- completing -----------------------------------------------------------------------------------

    def _complete(self, deliveries: Sequence[Delivery], outcomes: Sequence[Outcome]) -> None:
        """Write the outcomes, delete the messages whose tasks ended, release the others."""
        stored = _carried_tasks(deliveries)
        try:
            ended = self.results.end(outcomes, stored)
        except Exception:
            log.exception("writing %d result(s) failed; the messages will be retried", len(outcomes))
            self._release(deliveries)
            return
        done = [d for d in deliveries if d.message is not None and d.message.task_id in ended]
        try:
            for queue, held in self._by_queue(done):
                queue.delete([delivery.receipt_handle for delivery in held])
        except Exception:
            # The results are written; a redelivery finds the tasks ended and only deletes.
            log.exception("deleting %d message(s) failed; they will come back and be deleted then", len(done))
        self._in_flight.remove(done)
        self._release([d for d in deliveries if d not in done])
        with self._stats_lock:
            self.stats.ended += len(done)

    def _release(self, deliveries: Sequence[Delivery]) -> None:
        """Stop holding messages so they come back after `retry_delay_seconds`."""
        if not deliveries:
            return
        # Let go before they can reappear: a receiver that gets one back at once must find it not held,
        # or it would take the redelivery for a duplicate and nobody would process it.
        self._in_flight.remove(deliveries)
        try:
            for queue, held in self._by_queue(deliveries):
                queue.extend([d.receipt_handle for d in held], self.settings.retry_delay_seconds)
        except Exception:
            log.exception(
                "releasing %d message(s) failed; they come back after their visibility timeout", len(deliveries)
            )
        with self._stats_lock:
            self.stats.released += len(deliveries)

    def _by_queue(self, deliveries: Sequence[Delivery]) -> list[tuple[Any, list[Delivery]]]:
        online = [delivery for delivery in deliveries if not delivery.batch]
        batch = [delivery for delivery in deliveries if delivery.batch]
        return [(queue, held) for queue, held in ((self.queue, online), (self.batch_queue, batch)) if held]

    # ---- heartbeat ------------------------------------------------------------------------------------

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.heartbeat_seconds):
            try:
                self.heartbeat()
            except Exception:
                log.exception("extending message visibility failed; retrying at the next heartbeat")

    def heartbeat(self) -> int:
        """Extend every held message that would become visible before the next two heartbeats."""
        now = self._clock()
        expiring = self._in_flight.expiring(now + 2 * self.settings.heartbeat_seconds)
        if expiring:
            for queue, held in self._by_queue(expiring):
                queue.extend([d.receipt_handle for d in held], self.settings.visibility_seconds)
            for delivery in expiring:
                delivery.visible_until = now + self.settings.visibility_seconds
        return len(expiring)


def _carried_tasks(deliveries: Sequence[Delivery]) -> dict[int, Task]:
    """The tasks the messages carry as the API stored them; one that cannot be read is read from the table."""
    carried = {}
    for delivery in deliveries:
        if delivery.message is not None and delivery.message.task is not None:
            try:
                carried[delivery.message.task_id] = Task.model_validate(delivery.message.task)
            except ValidationError:
                continue
    return carried


def runtime_options(settings: WorkerSettings, available: Sequence[str] | None = None) -> RuntimeOptions:
    """On a GPU the CPU only feeds it; on a CPU worker inference and preprocessing share the cores.

    There, unless WORKER_INTRA_OP_THREADS says otherwise, onnxruntime takes half the cores and does not
    spin while idle, so the preprocessing threads keep the other half busy at the same time.
    """
    on_gpu = select_providers(available, settings.prefer_gpu)[0] == CUDA
    threads = settings.intra_op_threads
    if threads == 0 and not on_gpu:
        threads = max(1, (os.cpu_count() or 2) // 2)
    return RuntimeOptions(prefer_gpu=settings.prefer_gpu, intra_op_threads=threads, allow_spinning=on_gpu)


def build_worker(settings: WorkerSettings | None = None, runtime: Runtime | None = None) -> Worker:
    """The worker with its adapters, built once per process from the settings."""
    settings = settings or get_settings()
    shared = settings.shared
    if not settings.inference_queue_url:
        raise RuntimeError("INFERENCE_QUEUE_URL is not set; the worker has no queue to serve.")
    runtime = runtime or Runtime(runtime_options(settings))
    files = S3BlobStore(shared.model_bucket)
    cache: ModelCache[NetworkPlan] = ModelCache(settings.model_cache_bytes, on_evict=discard_model_files)
    pipeline = InferencePipeline(
        networks=DynamoNetworkRepository(shared.networks_table),
        files=files,
        runtime=runtime,
        cache=cache,
        options=PipelineOptions(
            fetch=FetchPolicy(
                timeout_seconds=settings.fetch_timeout_seconds,
                max_bytes=settings.fetch_max_bytes,
                allow_loopback=settings.allow_loopback_urls,
            ),
            model_dir=Path(settings.model_dir),
            max_pixels=settings.max_pixels,
            max_batch_size=settings.max_batch_size,
            max_queue_delay_ms=settings.max_queue_delay_ms,
            network_cache_seconds=settings.network_cache_seconds,
        ),
    )
    jobs = DynamoJobRepository(shared.tasks_table, shared.counters_table)
    results = TaskResults(
        DynamoTaskRepository(shared.tasks_table),
        files,
        settings.result_inline_bytes,
        jobs=jobs,
        settler=JobSettler(jobs, files),
    )
    batch_queue = SqsQueue(shared.batch_queue_url) if shared.batch_queue_url else None
    return Worker(
        settings,
        SqsQueue(settings.inference_queue_url),
        pipeline,
        results,
        batch_queue=batch_queue,
        jobs=JobWatch(jobs),
    )


def run_until(stop_event: threading.Event, worker: Worker | None = None) -> None:
    """Serve the inference queue until `stop_event` is set (the local stack's CPU worker runs this)."""
    worker = worker or build_worker()
    # The batch lines are the worker's heartbeat in the logs: keep them even where the service's
    # other loggers are turned down (the local stack sets Powertools to WARNING). The logger's name
    # must not contain "tensorgate": Powertools filters such records out of the root handlers.
    logging.getLogger("inference_worker").setLevel(worker.settings.log_level)
    worker.run(stop_event)


def main() -> int:
    """The container's entry point: `python -m functions.worker.main`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, _: Any) -> None:
        log.info("received %s: finishing the messages in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run_until(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
