"""Typed settings read lazily from the environment (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEVELOPMENT_PEPPER = "tensorgate-local-development-pepper-not-a-secret"
# The Converter function's Timeout in template.yaml: no conversion runs longer than this.
CONVERTER_TIMEOUT_SECONDS = 900
# A converter's claim on a deploy outlives any conversion by 5 minutes; an older claim belongs to a
# converter that died (killed, out of memory, timed out), and the next delivery takes it over.
DEFAULT_CONVERSION_CLAIM_SECONDS = CONVERTER_TIMEOUT_SECONDS + 300
# An endpoint's predict waits this long for its results before answering 202 with the task ids; API Gateway
# ends a request at 29 s, so the setting stops well before.
DEFAULT_PREDICT_BUDGET_SECONDS = 10.0
MAX_PREDICT_BUDGET_SECONDS = 25.0


@dataclass(frozen=True)
class Settings:
    networks_table: str
    tasks_table: str
    api_keys_table: str
    counters_table: str
    model_bucket: str
    conversion_queue_url: str
    inference_queue_url: str
    api_key_pepper: str
    task_ttl_days: int
    presigned_upload_seconds: int
    max_archive_bytes: int
    max_file_bytes: int
    usage_plan_id: str
    conversion_claim_seconds: int = DEFAULT_CONVERSION_CLAIM_SECONDS
    predict_budget_seconds: float = DEFAULT_PREDICT_BUDGET_SECONDS
    # Application Auto Scaling resource ids (`service/<cluster>/<service>`) of the worker services whose
    # minimum capacity endpoints' replicas hold up; empty (locally): the settings are stored and shown only.
    cpu_worker_service: str = ""
    gpu_worker_service: str = ""
    # Predictions of endpoints without gpu_required, for the CPU worker service; empty: the inference queue.
    cpu_inference_queue_url: str = ""
    # Batch jobs' items: a queue of their own, which the workers serve after the inference queue.
    batch_queue_url: str = ""
    # The dataset worker's queue: extractions the API restarts, transformations and splits.
    dataset_queue_url: str = ""

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        return cls(
            networks_table=env.get("NETWORKS_TABLE", "NetworksTable"),
            tasks_table=env.get("TASKS_TABLE", "TasksTable"),
            api_keys_table=env.get("API_KEYS_TABLE", "ApiKeysTable"),
            counters_table=env.get("COUNTERS_TABLE", "CountersTable"),
            model_bucket=env.get("MODEL_BUCKET", "tensorgate-models"),
            conversion_queue_url=env.get("CONVERSION_QUEUE_URL", ""),
            inference_queue_url=env.get("INFERENCE_QUEUE_URL", ""),
            batch_queue_url=env.get("BATCH_QUEUE_URL", ""),
            api_key_pepper=env.get("API_KEY_PEPPER", DEVELOPMENT_PEPPER),
            task_ttl_days=int(env.get("TASK_TTL_DAYS", "30")),
            presigned_upload_seconds=int(env.get("PRESIGNED_UPLOAD_SECONDS", "900")),
            max_archive_bytes=int(env.get("MAX_ARCHIVE_BYTES", str(5 * 1024**3))),
            max_file_bytes=int(env.get("MAX_FILE_BYTES", str(6 * 1024**2))),
            usage_plan_id=env.get("USAGE_PLAN_ID", ""),
            conversion_claim_seconds=int(env.get("CONVERSION_CLAIM_SECONDS", str(DEFAULT_CONVERSION_CLAIM_SECONDS))),
            predict_budget_seconds=_predict_budget(env.get("PREDICT_BUDGET_SECONDS", "")),
            cpu_worker_service=env.get("CPU_WORKER_SERVICE", ""),
            gpu_worker_service=env.get("GPU_WORKER_SERVICE", ""),
            cpu_inference_queue_url=env.get("CPU_INFERENCE_QUEUE_URL", ""),
            dataset_queue_url=env.get("DATASET_QUEUE_URL", ""),
        )


def _predict_budget(text: str) -> float:
    if not text:
        return DEFAULT_PREDICT_BUDGET_SECONDS
    budget = float(text)
    if not 0 <= budget <= MAX_PREDICT_BUDGET_SECONDS:
        raise ValueError(
            f"PREDICT_BUDGET_SECONDS must be from 0 to {MAX_PREDICT_BUDGET_SECONDS} (API Gateway ends a request "
            f"at 29 s); it is {text!r}."
        )
    return budget


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_environment()
