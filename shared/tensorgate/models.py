"""Domain records (network, task, API key) and their v0.7 wire form."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PUBLIC_ACCOUNT = "@public"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, microseconds kept (as the v0.7 API prints them)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NetworkStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    ERROR = "error"


class TaskStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    ERROR = "error"


class TaskKind(StrEnum):
    DEPLOY = "deploy"
    INFERENCE = "inference"
    BATCH = "batch"
    # Dataset jobs (DESIGN §9): an extraction, a transformation into a new version, a split.
    DATASET = "dataset"
    TRANSFORMATION = "transformation"
    SPLIT = "split"
    EVALUATION = "evaluation"


class EndpointStatus(StrEnum):
    RUNNING = "running"
    SHUTDOWN = "shutdown"


class Framework(StrEnum):
    TENSORFLOW_1 = "tensorflow-1.x"
    TENSORFLOW_2 = "tensorflow-2.x"
    KERAS = "keras"
    TFLITE = "tflite"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    NV_CAFFE = "nv-caffe-0.x-mod"
    CAFFE = "caffe"


class Network(BaseModel):
    """A registered network. Private ids are integers; public networks answer by `slug`."""

    model_config = ConfigDict(validate_assignment=True, defer_build=True)

    account_id: str
    network_id: int
    slug: str | None = None
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    framework: str
    preprocessing: dict[str, Any] | None = None
    postprocessings: list[dict[str, Any]] = Field(default_factory=list)
    input_spec: list[dict[str, Any]] | None = None
    output_spec: list[dict[str, Any]] | None = None
    conversion_options: dict[str, Any] = Field(default_factory=dict)
    task_id: int
    status: NetworkStatus = NetworkStatus.PENDING
    files: list[str] = Field(default_factory=list)
    upload_prefix: str
    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    conversion: dict[str, Any] | None = None
    error: str | None = None
    create_date: datetime
    update_date: datetime
    version: int = 1
    # Set by the converter that took the deploy, so a duplicate S3 event does not convert twice.
    conversion_claimed_at: datetime | None = None
    # The name the creating API key was issued to (null for networks created before authors were kept).
    author: str | None = None

    @property
    def public_id(self) -> int | str:
        return self.slug if self.slug is not None else self.network_id

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.public_id,
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "framework": self.framework,
            "preprocessing": self.preprocessing,
            "postprocessings": self.postprocessings,
            "task_id": self.task_id,
            "update_date": iso_z(self.update_date),
            "create_date": iso_z(self.create_date),
            "status": self.status.value,
            "error": self.error,
            "files": self.files,
            "input_spec": self.input_spec,
            "output_spec": self.output_spec,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "conversion": self.conversion,
            "author": self.author,
        }


class Task(BaseModel):
    model_config = ConfigDict(defer_build=True)

    task_id: int
    account_id: str
    kind: TaskKind
    status: TaskStatus = TaskStatus.PENDING
    error: str | None = None
    data: Any = None
    network_id: int | None = None
    create_date: datetime
    update_date: datetime
    expires_at: int | None = None
    subtasks: list[int] | None = None
    # An inference's options for labelled outputs (DESIGN §7), kept with the task that carries them.
    show_discarded: bool | None = None
    max_predictions: int | None = None
    # A prediction through an endpoint: which endpoint, and which of its targets answered (traffic split).
    endpoint_id: int | None = None
    target: dict[str, Any] | None = None
    # An item of a batch job: the job's id (its batch task's) and the item's place in the job's inputs.
    job_id: int | None = None
    job_index: int | None = None
    # An item of a cancelled job that ended without running (counted as cancelled, not failed).
    skipped: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        created, updated = iso_z(self.create_date), iso_z(self.update_date)
        through_endpoint = {} if self.endpoint_id is None else {"endpoint_id": self.endpoint_id, "target": self.target}
        return {
            "id": self.task_id,
            "status": self.status.value,
            "error": self.error,
            "data": self.data,
            "kind": self.kind.value,
            "create_date": created,
            "update_date": updated,
            # The v0.7 service's names for the same dates, and its subtasks (null: none).
            "date_created": created,
            "date_updated": updated,
            "subtasks": self.subtasks,
        } | through_endpoint


class ApiKey(BaseModel):
    model_config = ConfigDict(defer_build=True)

    key_id: str
    account_id: str
    create_date: datetime
    # Who the key was issued to: the `author` of what it creates (the account id when unnamed).
    name: str | None = None

    @property
    def author(self) -> str:
        return self.name or self.account_id


class Page(BaseModel):
    """One page of a list plus the total, before it becomes the `{count,next,previous,results}` envelope."""

    model_config = ConfigDict(defer_build=True)

    count: int
    offset: int
    limit: int
    results: list[Any]
    # A page read from a cursor: the next page's cursor (None on the last page) and the filters it keeps.
    by_cursor: bool = False
    next_cursor: str | None = None
    filters: dict[str, str] = Field(default_factory=dict)


class RecognitionSpec(BaseModel):
    """What a recognition answers: its outputs and their labels (DESIGN §7). Public specs answer by `slug`."""

    model_config = ConfigDict(validate_assignment=True, defer_build=True)

    account_id: str
    spec_id: int
    slug: str | None = None
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    outputs: list[dict[str, Any]]
    current_version_id: int | None = None
    create_date: datetime
    update_date: datetime
    version: int = 1
    author: str | None = None

    @property
    def public_id(self) -> int | str:
        return self.slug if self.slug is not None else self.spec_id

    def label_counts(self) -> list[int]:
        return [len(output["labels"]["labels"]) for output in self.outputs]

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.public_id,
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "outputs": self.outputs,
            "current_version_id": self.current_version_id,
            "update_date": iso_z(self.update_date),
            "create_date": iso_z(self.create_date),
            "author": self.author,
        }


class RecognitionVersion(BaseModel):
    """A spec bound to a network, with how to read that network's tensors (one post-processing per output)."""

    model_config = ConfigDict(defer_build=True)

    account_id: str
    version_id: int
    spec_id: int
    network_id: int
    post_processings: list[dict[str, Any]]
    spec_name: str
    network_name: str
    create_date: datetime
    update_date: datetime

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.version_id,
            "spec_id": self.spec_id,
            "network_id": self.network_id,
            "post_processings": self.post_processings,
            "spec_name": self.spec_name,
            "network_name": self.network_name,
            "update_date": iso_z(self.update_date),
            "create_date": iso_z(self.create_date),
        }


TARGET_FIELDS = ("network_id", "recognition_version_id", "recognition_spec_id")


class Endpoint(BaseModel):
    """A named, account-unique handle on a network, a recognition version or a spec (DESIGN §8).

    `target` holds exactly one of TARGET_FIELDS; `canary`, when set, another target and the `weight`
    (a fraction of predictions) it takes."""

    model_config = ConfigDict(validate_assignment=True, defer_build=True)

    account_id: str
    endpoint_id: int
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    author: str
    target: dict[str, int]
    canary: dict[str, Any] | None = None
    replicas: int = 0
    gpu_required: bool = False
    status: EndpointStatus = EndpointStatus.RUNNING
    create_date: datetime
    update_date: datetime
    version: int = 1

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.endpoint_id,
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "author": self.author,
            **{name: self.target.get(name) for name in TARGET_FIELDS},
            "canary": self.canary,
            "replicas": self.replicas,
            "gpu_required": self.gpu_required,
            "status": self.status.value,
            "update_date": iso_z(self.update_date),
            "create_date": iso_z(self.create_date),
        }
