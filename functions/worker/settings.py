"""The worker's typed settings, read lazily from the environment (documented defaults in docs/worker.md)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache

from tensorgate.config import Settings
from tensorgate.config import get_settings as get_shared_settings

# Dynamic batching defaults, overridable per network with conversion_options.max_batch_size and
# conversion_options.max_queue_delay_ms.
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_MAX_QUEUE_DELAY_MS = 10


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WorkerSettings:
    shared: Settings
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queue_delay_ms: int = DEFAULT_MAX_QUEUE_DELAY_MS
    # Threads that download inputs (they mostly wait on S3 or URLs) and threads that preprocess them
    # (CPU work, one per core), while the runner thread runs batches.
    fetch_threads: int = 8
    preprocess_threads: int = 2
    # Threads long-polling the queue: one receive returns at most 10 messages.
    receivers: int = 2
    receive_wait_seconds: int = 5
    # Messages held at once (received, not yet deleted or released); bounds memory and redeliveries.
    max_in_flight: int = 64
    # Jobs' items held at once, taken only while no online message is: what an online request may wait behind.
    batch_in_flight: int = 8
    # Jobs' items wait this long after the last online message: steady online traffic keeps the job waiting.
    batch_quiet_seconds: float = 0.5
    # Must not exceed the queue's visibility timeout meaningfully; heartbeats extend it for long work.
    visibility_seconds: int = 120
    heartbeat_seconds: float = 30.0
    # A message that failed for a transient reason comes back after this delay.
    retry_delay_seconds: int = 10
    model_cache_bytes: int = 4 * 1024**3
    model_dir: str = ""
    network_cache_seconds: float = 5.0
    fetch_timeout_seconds: float = 10.0
    fetch_max_bytes: int = 20 * 1024**2
    allow_loopback_urls: bool = False
    # DynamoDB items stop at 400 KB; a result JSON above this goes to S3 and the task points to it.
    result_inline_bytes: int = 350_000
    max_pixels: int = 64_000_000
    intra_op_threads: int = 0
    prefer_gpu: bool = True
    log_level: str = "INFO"
    # How long a Python thread may hold the interpreter lock before another gets it. Below Python's
    # 5 ms, the threads that mostly run C code (Pillow decoding, onnxruntime) get the lock back sooner
    # from the threads parsing AWS responses.
    switch_interval_ms: float = 1.0

    @property
    def inference_queue_url(self) -> str:
        return self.shared.inference_queue_url

    @classmethod
    def from_environment(cls) -> WorkerSettings:
        env = os.environ
        cores = os.cpu_count() or 2
        return cls(
            shared=get_shared_settings(),
            max_batch_size=int(env.get("WORKER_MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE)),
            max_queue_delay_ms=int(env.get("WORKER_MAX_QUEUE_DELAY_MS", DEFAULT_MAX_QUEUE_DELAY_MS)),
            fetch_threads=int(env.get("WORKER_FETCH_THREADS", "8")),
            preprocess_threads=int(env.get("WORKER_PREPROCESS_THREADS", cores)),
            receivers=int(env.get("WORKER_RECEIVERS", "2")),
            receive_wait_seconds=int(env.get("WORKER_RECEIVE_WAIT_SECONDS", "5")),
            max_in_flight=int(env.get("WORKER_MAX_IN_FLIGHT", "64")),
            batch_in_flight=int(env.get("WORKER_BATCH_IN_FLIGHT", "8")),
            batch_quiet_seconds=float(env.get("WORKER_BATCH_QUIET_SECONDS", "0.5")),
            visibility_seconds=int(env.get("WORKER_VISIBILITY_SECONDS", "120")),
            heartbeat_seconds=float(env.get("WORKER_HEARTBEAT_SECONDS", "30")),
            retry_delay_seconds=int(env.get("WORKER_RETRY_DELAY_SECONDS", "10")),
            model_cache_bytes=int(env.get("WORKER_MODEL_CACHE_BYTES", str(4 * 1024**3))),
            model_dir=env.get("WORKER_MODEL_DIR", os.path.join(tempfile.gettempdir(), "tensorgate-models")),
            network_cache_seconds=float(env.get("WORKER_NETWORK_CACHE_SECONDS", "5")),
            fetch_timeout_seconds=float(env.get("WORKER_FETCH_TIMEOUT_SECONDS", "10")),
            fetch_max_bytes=int(env.get("WORKER_FETCH_MAX_BYTES", str(20 * 1024**2))),
            allow_loopback_urls=_flag(env.get("WORKER_ALLOW_LOOPBACK_URLS", "false")),
            result_inline_bytes=int(env.get("WORKER_RESULT_INLINE_BYTES", "350000")),
            max_pixels=int(env.get("WORKER_MAX_PIXELS", "64000000")),
            intra_op_threads=int(env.get("WORKER_INTRA_OP_THREADS", "0")),
            prefer_gpu=not _flag(env.get("WORKER_FORCE_CPU", "false")),
            log_level=env.get("WORKER_LOG_LEVEL", "INFO").upper(),
            switch_interval_ms=float(env.get("WORKER_SWITCH_INTERVAL_MS", "1")),
        )


@lru_cache(maxsize=1)
def get_settings() -> WorkerSettings:
    return WorkerSettings.from_environment()
