"""Queue message schemas: what the inference API sends and the worker reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# SQS takes 256 KiB per message (body and attributes): image bytes travel inline (base64) while the whole
# message stays under this, else through S3, which costs the request a PutObject and the worker a GetObject.
MAX_MESSAGE_BYTES = 250 * 1024


class InlineSource(BaseModel):
    model_config = ConfigDict(defer_build=True)

    kind: Literal["inline"] = "inline"
    data: str = Field(description="base64 of the image bytes")


class StoredSource(BaseModel):
    model_config = ConfigDict(defer_build=True)

    kind: Literal["s3"] = "s3"
    key: str = Field(description="object key in the model bucket")
    # A byte range of the object: an image inside a dataset's image shard (a split's item).
    offset: int | None = Field(default=None, ge=0)
    size: int | None = Field(default=None, ge=0)


class UrlSource(BaseModel):
    model_config = ConfigDict(defer_build=True)

    kind: Literal["url"] = "url"
    url: str


class TensorSource(BaseModel):
    """A non-image input given as numbers: one sample's array (without the batch dimension), checked by the API
    against the network's input."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["tensor"] = "tensor"
    values: list[Any] = Field(description="Nested lists of numbers, row-major.")
    dtype: str = Field(description="The network input's numpy dtype, which the worker casts the values to.")
    shape: list[int]


Source = Annotated[InlineSource | StoredSource | UrlSource | TensorSource, Field(discriminator="kind")]


class InferenceInput(BaseModel):
    model_config = ConfigDict(defer_build=True)

    source: Source
    bbox: dict[str, float] | None = None
    polygon: list[tuple[float, float]] | None = None
    crop_uniform_background: bool = False


class RecognitionPlan(BaseModel):
    """How a recognition version reads the network's tensors: its spec's labels and its post-processings."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    spec_id: int
    version_id: int
    labels: list[list[dict[str, Any]]] = Field(description="Per spec output, its labels `{id, name}` in order.")
    post_processings: list[dict[str, Any]] = Field(description="Per spec output, as the version stores it.")


class InferenceMessage(BaseModel):
    """One inference request: one sample, one entry per network input, in `preprocessing.inputs` order."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    task_id: int
    account_id: str
    network_id: int
    inputs: list[InferenceInput]
    output_tensors: list[str] | None = None
    detection: dict[str, Any] | None = None
    # For labelled outputs (recognition versions, DESIGN §7); a plain network returns its tensors.
    show_discarded: bool | None = None
    max_predictions: int | None = None
    # Set when the inference goes through a recognition spec or version: the result is its labelled outputs.
    recognition: RecognitionPlan | None = None
    submitted_at: datetime
    # An item of a batch job (its task is the item's): the worker serves it from the batch queue, skips it
    # once the job is cancelled, and counts its end on the job.
    job_id: int | None = None
    # The task as the API stored it (pending, unchanged until it ends): the worker writes its end from this
    # copy with the conditional write every task ends with, instead of reading the task first.
    task: dict[str, Any] | None = None
