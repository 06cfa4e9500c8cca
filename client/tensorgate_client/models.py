"""The API's resources as typed objects; fields the service adds later are kept, not refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Resource(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class TensorSignature(_Resource):
    name: str
    dtype: str
    shape: list[int | str | None] | None = None


class UploadInstructions(_Resource):
    """A presigned POST for the archive of a JSON create."""

    url: str
    fields: dict[str, str]
    key: str
    max_bytes: int
    expires_in: int


class Network(_Resource):
    id: int | str
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    framework: str
    preprocessing: dict[str, Any] | None = None
    postprocessings: list[dict[str, Any]] = Field(default_factory=list)
    task_id: int
    update_date: datetime
    create_date: datetime | None = None
    status: Literal["pending", "ready", "error"] = "pending"
    error: str | None = None
    files: list[str] = Field(default_factory=list)
    input_spec: list[dict[str, Any]] | None = None
    output_spec: list[dict[str, Any]] | None = None
    inputs: list[TensorSignature] | None = None
    outputs: list[TensorSignature] | None = None
    conversion: dict[str, Any] | None = None
    upload: UploadInstructions | None = None


class NetworkPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[Network]


class Task(_Resource):
    id: int
    status: Literal["pending", "success", "error"]
    error: str | None = None
    data: Any = None
    kind: str | None = None
    create_date: datetime | None = None
    update_date: datetime | None = None
    subtasks: list[int] | None = None

    @property
    def ended(self) -> bool:
        return self.status != "pending"


class TaskQueued(_Resource):
    task_id: int


class TaskPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[Task]


class RecognitionSpec(_Resource):
    """What a recognition answers: `outputs` (labels, `roi` NONE or BBOX); `current_version_id` its model now."""

    id: int | str
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    outputs: list[dict[str, Any]]
    current_version_id: int | None = None
    update_date: datetime | None = None


class RecognitionSpecPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[RecognitionSpec]


class RecognitionVersion(_Resource):
    """A spec bound to a network: `post_processings` read the network's tensors, one per spec output."""

    id: int
    spec_id: int | str
    network_id: int | str
    post_processings: list[dict[str, Any]]
    spec_name: str | None = None
    network_name: str | None = None
    update_date: datetime | None = None


class RecognitionVersionPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[RecognitionVersion]


class Endpoint(_Resource):
    """A named handle on a network, a recognition version or a spec, with a synchronous predict."""

    id: int
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    author: str | None = None
    network_id: int | None = None
    recognition_version_id: int | None = None
    recognition_spec_id: int | None = None
    canary: dict[str, Any] | None = None
    replicas: int = 0
    gpu_required: bool = False
    status: Literal["running", "shutdown"] = "running"
    create_date: datetime | None = None
    update_date: datetime | None = None

    @property
    def target(self) -> str:
        for field, kind in (
            ("network_id", "network"),
            ("recognition_version_id", "version"),
            ("recognition_spec_id", "spec"),
        ):
            value = getattr(self, field)
            if value is not None:
                return f"{kind} {value}"
        return "-"


class EndpointPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[Endpoint]


class Prediction(_Resource):
    """A predict's answer: `complete` with every task ended (HTTP 200), or `pending` ones to poll (202)."""

    endpoint_id: int
    status: Literal["complete", "pending"]
    task_ids: list[int]
    predictions: list[Task]


class Job(_Resource):
    """A batch inference job; its id is also its task's (`kind: batch`)."""

    id: int
    name: str
    description: str = ""
    network_id: int | None = None
    recognition_version_id: int | None = None
    recognition_spec_id: int | None = None
    endpoint_id: int | None = None
    author: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    status: Literal["pending", "running", "success", "error", "cancelled"]
    error: str | None = None
    upload: UploadInstructions | None = None
    total: int
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    errors: list[dict[str, Any]] = Field(default_factory=list)
    results_url: str | None = None
    create_date: datetime | None = None
    update_date: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.status in ("success", "error", "cancelled")


class JobPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[Job]


class Dataset(_Resource):
    """Labelled images made from an uploaded archive; `extraction` sums up how its last extraction went."""

    id: int
    name: str
    description: str = ""
    author: str | None = None
    kind: Literal["classification", "detection"] = "classification"
    classes: dict[str, int] | None = None
    collection_date: str | None = None
    status: Literal["pending", "ready", "error", "cancelled"] = "pending"
    task_id: int
    attempt: int = 1
    extraction: dict[str, Any] | None = None
    error: str | None = None
    upload: UploadInstructions | None = None
    create_date: datetime | None = None
    update_date: datetime | None = None


class DatasetPage(_Resource):
    count: int
    next: str | None
    previous: str | None
    results: list[Dataset]


class DatasetSplit(_Resource):
    """A split of a dataset version into named parts, drawn by `seed`; `counts` once drawn."""

    id: int
    dataset_id: int
    version: str
    name: str
    parts: list[dict[str, Any]]
    seed: int = 0
    status: Literal["pending", "ready", "error"] = "pending"
    task_id: int
    counts: dict[str, int] = Field(default_factory=dict)
    excluded: int = 0
    error: str | None = None


class Evaluation(_Resource):
    """A network, recognition version, spec or endpoint scored on a split's part: `metrics` once `ready`, `plots` as
    PNG download URLs."""

    id: int
    dataset_id: int
    split_id: int
    part: str
    kind: Literal["classification", "detection"] = "classification"
    network_id: int
    recognition_version_id: int | None = None
    recognition_spec_id: int | None = None
    endpoint_id: int | None = None
    status: Literal["pending", "ready", "error", "cancelled"] = "pending"
    task_id: int
    job_id: int | None = None
    metrics: dict[str, Any] | None = None
    plots: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
