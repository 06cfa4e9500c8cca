"""Batch inference jobs (DESIGN §8): the job as stored and answered, and its progress counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tensorgate.models import iso_z

# Per-item errors kept on the job itself; every one is in the results.
MAX_JOB_ERRORS = 100


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"


class Job(BaseModel):
    """What a job was created with. Item `i` is task `first_item_id + i`; the job's id is its batch task's."""

    model_config = ConfigDict(defer_build=True)

    account_id: str
    job_id: int
    name: str
    description: str = ""
    network_id: int
    target: dict[str, int] = Field(default_factory=dict, description="The target as given: one of TARGET_FIELDS.")
    output_tensors: list[str] | None = None
    gpu_required: bool = False
    inputs: dict[str, Any] = Field(description="How the inputs were given: `{kind, ...}` (urls or prefix).")
    total: int
    first_item_id: int
    create_date: datetime


@dataclass(frozen=True)
class JobProgress:
    """The counters the workers move, each item counted once, and what settling the job wrote."""

    status: JobStatus
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    results_key: str | None = None
    errors: tuple[dict[str, Any], ...] = ()
    update_date: datetime | None = None

    def ended(self) -> int:
        return self.done + self.failed + self.cancelled


class JobItemError(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    index: int = Field(description="The item's place in the job's inputs (0-based).")
    input: str = Field(description="The item's URL or s3:// URI.")
    error: str | None = Field(description="Why the item failed.")


class JobBody(BaseModel):
    """A batch job as the API answers it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: int = Field(description="The job's id, also the id of its task (`kind: batch`), which ends with the job.")
    task_id: int
    name: str
    description: str
    network_id: int = Field(description="The network the items run on (the target's, for a version, spec or endpoint).")
    recognition_version_id: int | None = Field(description="The target, when a recognition version.")
    recognition_spec_id: int | None = Field(description="The target, when a recognition spec.")
    endpoint_id: int | None = Field(description="The target, when an endpoint.")
    output_tensors: list[str] | None
    gpu_required: bool
    inputs: dict[str, Any] = Field(description="How the inputs were given: `{kind: urls|prefix, count, prefix?}`.")
    status: JobStatus
    total: int = Field(description="Items in the job, one per image.")
    done: int = Field(description="Items that ended with a result.")
    failed: int = Field(description="Items that ended with an error.")
    cancelled: int = Field(description="Items a cancel stopped before they ran.")
    errors: list[JobItemError] = Field(description=f"The first {MAX_JOB_ERRORS} failed items, once the job ended.")
    results_url: str | None = Field(
        description="Once the job ended: a presigned GET of its results, JSON Lines, one line per item in input "
        "order (`{index, input, status, data | error}`); valid for an hour from this answer."
    )
    create_date: str
    update_date: str


def job_wire(job: Job, progress: JobProgress, results_url: str | None) -> dict[str, Any]:
    return JobBody(
        id=job.job_id,
        task_id=job.job_id,
        name=job.name,
        description=job.description,
        network_id=job.network_id,
        recognition_version_id=job.target.get("recognition_version_id"),
        recognition_spec_id=job.target.get("recognition_spec_id"),
        endpoint_id=job.target.get("endpoint_id"),
        output_tensors=job.output_tensors,
        gpu_required=job.gpu_required,
        inputs=job.inputs,
        status=progress.status,
        total=job.total,
        done=progress.done,
        failed=progress.failed,
        cancelled=progress.cancelled,
        errors=[JobItemError.model_validate(error) for error in progress.errors],
        results_url=results_url,
        create_date=iso_z(job.create_date),
        update_date=iso_z(progress.update_date or job.create_date),
    ).model_dump(mode="json")
