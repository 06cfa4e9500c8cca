"""Batch inference jobs (DESIGN §8): the job as stored and answered, and its progress counters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tensorgate.messages import RecognitionPlan
from tensorgate.models import iso_z

# Per-item errors kept on the job itself; every one is in the results.
MAX_JOB_ERRORS = 100


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"


class JobRoute(BaseModel):
    """A target a job's items run on, as resolved at the job's creation: its network, how a recognition version
    reads the tensors, and for an endpoint's canary the share of items it takes."""

    model_config = ConfigDict(defer_build=True)

    target: dict[str, int]
    network_id: int
    plan: RecognitionPlan | None = None
    weight: float | None = None


def takes_canary(index: int, weight: float) -> bool:
    """Whether item `index` (0-based) runs on the canary: when floor(n * weight) steps up at its position n,
    so that any N first items hold exactly floor(N * weight) of the canary's, whatever N is."""
    position = index + 1
    return math.floor(position * weight) > math.floor((position - 1) * weight)


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
    show_discarded: bool | None = None
    gpu_required: bool = False
    inputs: dict[str, Any] = Field(description="How the inputs were given: `{kind, ...}` (urls, prefix or archive).")
    total: int
    first_item_id: int
    create_date: datetime
    author: str | None = None
    # How the items run: the target's network and plan; through an endpoint with a traffic split, its canary too.
    plan: RecognitionPlan | None = None
    served: dict[str, int] | None = Field(
        default=None, description="Through an endpoint: the endpoint's own target at the job's creation."
    )
    canary: JobRoute | None = None

    def route(self, index: int) -> tuple[int, RecognitionPlan | None, dict[str, Any] | None]:
        """Item `index`'s network, plan, and (through an endpoint) the target that serves it."""
        if "endpoint_id" not in self.target:
            return self.network_id, self.plan, None
        if self.canary is not None and self.canary.weight and takes_canary(index, self.canary.weight):
            return self.canary.network_id, self.canary.plan, self.canary.target | {"canary": True}
        return self.network_id, self.plan, (self.served or {}) | {"canary": False}


@dataclass(frozen=True)
class JobProgress:
    """The counters the workers move, each item counted once, and what settling the job wrote."""

    status: JobStatus
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    results_key: str | None = None
    errors: tuple[dict[str, Any], ...] = ()
    error: str | None = None
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
    author: str | None = Field(description="The name the API key that created the job was issued to.")
    network_id: int = Field(description="The network the items run on (the target's, for a version, spec or endpoint).")
    recognition_version_id: int | None = Field(description="The target, when a recognition version.")
    recognition_spec_id: int | None = Field(description="The target, when a recognition spec.")
    endpoint_id: int | None = Field(description="The target, when an endpoint.")
    output_tensors: list[str] | None
    gpu_required: bool
    inputs: dict[str, Any] = Field(
        description="How the inputs were given: `{kind: urls|prefix|archive, count, prefix?, name?, ignored?}`."
    )
    status: JobStatus = Field(
        description="`pending` until an archive job's upload arrived, `running`, then `success`, `error` or "
        "`cancelled`."
    )
    error: str | None = Field(
        description="Why the job ended in error or was cancelled (an archive refused, every item failed), else null."
    )
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
        author=job.author,
        network_id=job.network_id,
        recognition_version_id=job.target.get("recognition_version_id"),
        recognition_spec_id=job.target.get("recognition_spec_id"),
        endpoint_id=job.target.get("endpoint_id"),
        output_tensors=job.output_tensors,
        gpu_required=job.gpu_required,
        inputs=job.inputs,
        status=progress.status,
        error=progress.error,
        total=job.total,
        done=progress.done,
        failed=progress.failed,
        cancelled=progress.cancelled,
        errors=[JobItemError.model_validate(error) for error in progress.errors],
        results_url=results_url,
        create_date=iso_z(job.create_date),
        update_date=iso_z(progress.update_date or job.create_date),
    ).model_dump(mode="json")


class JobPage(BaseModel):
    """A page of jobs as the API answers it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    count: int = Field(
        description="All the items, over every page; for a search or filter that has more pages, the matches "
        "found up to this page plus one."
    )
    next: str | None = Field(description="Absolute URL of the next page (it carries a cursor), or null on the last.")
    previous: str | None = Field(description="Absolute URL of the previous page, or null on the first one.")
    results: list[JobBody]
