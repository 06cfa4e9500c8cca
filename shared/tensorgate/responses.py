"""Response bodies of the v0.7 API as pydantic models: what `to_wire` answers, described for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from tensorgate_preprocessing.spec import (
    Dimension,
    PostprocessingSpec,
    PreprocessingSpec,
    RecognitionPostProcessing,
    TensorSpec,
)

from tensorgate.models import EndpointStatus, Framework, NetworkStatus, TaskKind, TaskStatus
from tensorgate.schemas import SpecOutput


class _Body(BaseModel):
    """A field the handlers answer with but the document lacks fails the contract tests, so it cannot drift."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(defer_build=True)

    field: str = Field(description="The field, query parameter or file the message is about (dotted path).")
    message: str


class ErrorBody(_Body):
    error: str = Field(description="One sentence saying what was wrong and what to do instead.")
    details: list[ErrorDetail] = Field(
        default_factory=list, description="Per-field errors; absent when the sentence says it all."
    )


class TensorSignature(BaseModel):
    """One input or output of the converted ONNX model."""

    model_config = ConfigDict(defer_build=True)

    name: str
    dtype: str = Field(description="numpy dtype name, e.g. float32.")
    shape: list[Dimension] | None = Field(description="Dimensions: integers, symbols shared between tensors, or null.")


class NetworkBody(_Body):
    id: int | str = Field(description="An integer for the account's own networks; the slug (a string) when public.")
    name: str
    description: str
    metadata: dict[str, Any]
    framework: Framework
    preprocessing: PreprocessingSpec | None
    postprocessings: list[PostprocessingSpec]
    task_id: int = Field(description="The deploy task: it ends `success` when the network is ready.")
    update_date: datetime = Field(description="ISO 8601 in UTC with a Z.")
    create_date: datetime = Field(description="ISO 8601 in UTC with a Z.")
    status: NetworkStatus = Field(description="`ready` once converted; inference opens then.")
    error: str | None = Field(description="Why the deploy failed, when status is `error`.")
    files: list[str] = Field(description="Names of the files of a multipart create.")
    input_spec: list[TensorSpec] | None
    output_spec: list[TensorSpec] | None
    inputs: list[TensorSignature] | None = Field(description="The converted model's inputs; null until converted.")
    outputs: list[TensorSignature] | None = Field(description="The converted model's outputs; null until converted.")
    conversion: dict[str, Any] | None = Field(
        description="The conversion report (format, opset, ONNX size and sha256, parity); null until converted."
    )
    author: str | None = Field(description="The name the API key that created the network was issued to.")


class UploadInstructions(_Body):
    """A presigned S3 POST for the one model archive of a JSON create."""

    url: str = Field(description="POST the archive here as multipart/form-data: `fields` first, then `file`.")
    fields: dict[str, str]
    key: str
    max_bytes: int
    expires_in: int = Field(description="Seconds the POST stays valid.")


class CreatedNetworkBody(NetworkBody):
    upload: UploadInstructions | None = Field(
        default=None, description="JSON create only: where to upload the model archive."
    )


class NetworkPage(_Body):
    count: int = Field(description="All the items, over every page.")
    next: str | None = Field(description="Absolute URL of the next page, or null on the last one.")
    previous: str | None = Field(description="Absolute URL of the previous page, or null on the first one.")
    results: list[NetworkBody]


class EndpointTargetBody(_Body):
    network_id: int | None = None
    recognition_version_id: int | None = None
    recognition_spec_id: int | None = None
    canary: bool = Field(description="True when the endpoint's canary answered, false for its target.")


class TaskBody(_Body):
    id: int
    status: TaskStatus
    error: str | None = Field(description="Why the task failed, when status is `error`.")
    data: Any = Field(
        description="The result once `success`: for an inference `{tensors: [{name, shape, data}], outputs?}` "
        "(data flattened row-major); for a deploy, the conversion report. Null while pending."
    )
    kind: TaskKind
    create_date: datetime
    update_date: datetime
    date_created: datetime = Field(description="The v0.7 service's name for create_date (the same value).")
    date_updated: datetime = Field(description="The v0.7 service's name for update_date (the same value).")
    subtasks: list[int] | None = Field(description="Ids of the tasks this one groups; null when it groups none.")
    endpoint_id: int | None = Field(
        default=None, description="A prediction through an endpoint: the endpoint (absent otherwise)."
    )
    target: EndpointTargetBody | None = Field(
        default=None, description="A prediction through an endpoint: the target that answered it."
    )


class TaskPage(_Body):
    count: int
    next: str | None
    previous: str | None
    results: list[TaskBody] = Field(description="The tasks found in this account, in the order asked.")


class TaskQueued(_Body):
    task_id: int = Field(description="Poll GET /v0.7/tasks/{task_id} for the result.")


class RecognitionSpecBody(_Body):
    id: int | str = Field(description="An integer for the account's own specs; the slug (a string) when public.")
    name: str
    description: str
    metadata: dict[str, Any]
    outputs: list[SpecOutput] = Field(description="What the recognition answers, one entry per output; immutable.")
    current_version_id: int | None = Field(
        description="The version `POST /recognition/specs/{id}/inference` runs; null when the spec has none."
    )
    update_date: datetime = Field(description="ISO 8601 in UTC with a Z.")
    create_date: datetime = Field(description="ISO 8601 in UTC with a Z.")
    author: str | None = Field(description="The name the API key that created the spec was issued to.")


class RecognitionSpecPage(_Body):
    count: int = Field(description="All the items, over every page.")
    next: str | None = Field(description="Absolute URL of the next page, or null on the last one.")
    previous: str | None = Field(description="Absolute URL of the previous page, or null on the first one.")
    results: list[RecognitionSpecBody]


class RecognitionVersionBody(_Body):
    id: int
    spec_id: int
    network_id: int
    post_processings: list[RecognitionPostProcessing] = Field(description="One per spec output, in its order.")
    spec_name: str = Field(description="The spec's name when the version was created.")
    network_name: str = Field(description="The network's name when the version was created.")
    update_date: datetime = Field(description="ISO 8601 in UTC with a Z.")
    create_date: datetime = Field(description="ISO 8601 in UTC with a Z.")


class RecognitionVersionPage(_Body):
    count: int = Field(description="All the items, over every page.")
    next: str | None = Field(description="Absolute URL of the next page, or null on the last one.")
    previous: str | None = Field(description="Absolute URL of the previous page, or null on the first one.")
    results: list[RecognitionVersionBody]


class CanaryBody(_Body):
    network_id: int | None = None
    recognition_version_id: int | None = None
    recognition_spec_id: int | None = None
    weight: float = Field(description="The fraction of predictions the canary answers.")


class EndpointBody(_Body):
    id: int
    name: str = Field(description="Unique in the account.")
    description: str
    metadata: dict[str, Any]
    author: str = Field(description="The name the API key that created the endpoint was issued to.")
    network_id: int | None = Field(description="The target when it is a network: predictions answer tensors.")
    recognition_version_id: int | None = Field(description="The target when it is a recognition version.")
    recognition_spec_id: int | None = Field(
        description="The target when it is a recognition spec: whichever version is current answers."
    )
    canary: CanaryBody | None = Field(description="A second target taking `weight` of the predictions, or null.")
    replicas: int = Field(description="Workers kept warm for the endpoint while it runs.")
    gpu_required: bool = Field(description="Served by the GPU worker service (else the CPU one).")
    status: EndpointStatus = Field(description="`running`, or `shutdown`: predictions answer 409.")
    update_date: datetime = Field(description="ISO 8601 in UTC with a Z.")
    create_date: datetime = Field(description="ISO 8601 in UTC with a Z.")


class EndpointPage(_Body):
    count: int = Field(
        description="All the items, over every page; for a search or filter that has more pages, the matches "
        "found up to this page plus one."
    )
    next: str | None = Field(description="Absolute URL of the next page (it carries a cursor), or null on the last.")
    previous: str | None = Field(description="Absolute URL of the previous page, or null on the first one.")
    results: list[EndpointBody]


class PredictionBody(_Body):
    endpoint_id: int
    status: str = Field(
        description="`complete` (HTTP 200) when every task ended within the wait, else `pending` (202)."
    )
    task_ids: list[int] = Field(description="One task per sample; poll GET /v0.7/tasks/?task_ids=... when pending.")
    predictions: list[TaskBody] = Field(
        description="One task per sample, in order: `data` holds the v0.7 result (tensors, or labelled outputs "
        "through a recognition version or spec), `target` which target answered."
    )
