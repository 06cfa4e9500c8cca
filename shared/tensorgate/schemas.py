"""Request schemas of the networks API (pydantic; no numpy, no Pillow)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema
from tensorgate_preprocessing.spec import (
    PostprocessingSpec,
    PreprocessingSpec,
    RecognitionPostProcessing,
    TensorSpec,
    describe_errors,
)

from tensorgate.errors import ValidationFailed
from tensorgate.models import Framework

MAX_METADATA_BYTES = 64 * 1024
MUTABLE_FIELDS = ("name", "description", "metadata")
READ_ONLY_FIELDS = (
    "id",
    "framework",
    "preprocessing",
    "postprocessings",
    "task_id",
    "update_date",
    "create_date",
    "status",
    "error",
    "files",
    "input_spec",
    "output_spec",
    "inputs",
    "outputs",
    "conversion",
    "conversion_options",
)
JSON_FIELDS = {
    "metadata",
    "preprocessing",
    "postprocessings",
    "input_spec",
    "output_spec",
    "conversion_options",
}

Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=10_000)]


def _metadata_size(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES // 1024} KiB of JSON")
    return value


class ConversionOptions(BaseModel):
    """Conversion settings a user may give at create (documented in docs/conversion.md)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    max_abs_diff: float | None = Field(default=None, gt=0, le=1e6)
    max_rel_diff: float | None = Field(default=None, gt=0, le=1e6)
    opset: int | None = Field(default=None, ge=13, le=18, description="ONNX opset (tf2onnx targets 13-18).")
    node_name_mapping: dict[str, str] | None = Field(default=None, max_length=256)
    signature: str | None = Field(
        default=None,
        pattern=r"^[^\s\x00-\x1f]{1,256}$",
        description="The SavedModel or TFLite signature to convert; default serving_default, or the only one.",
    )
    max_batch_size: int | None = Field(default=None, ge=1, le=256)
    max_queue_delay_ms: int | None = Field(default=None, ge=0, le=10_000)


class CreateNetwork(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Name
    description: Description = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    framework: Framework = Framework.TENSORFLOW_1
    preprocessing: PreprocessingSpec | None = None
    postprocessings: list[PostprocessingSpec] = Field(default_factory=list, max_length=16)
    input_spec: list[TensorSpec] | None = Field(default=None, max_length=64)
    output_spec: list[TensorSpec] | None = Field(default=None, max_length=64)
    conversion_options: ConversionOptions = Field(default_factory=ConversionOptions)
    archive_name: str | None = Field(
        default=None, description="JSON create only: the archive the presigned POST will accept."
    )

    _metadata = field_validator("metadata")(_metadata_size)


def _no_default(schema: dict[str, Any]) -> None:
    """A field that may be left out but not set to null documents no `default: null`."""
    schema.pop("default", None)


class UpdateNetwork(BaseModel):
    """The fields a PATCH changes; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    # `None` only marks a field as left out: an explicit null is refused (and undocumented), since a
    # network without a name or metadata could no longer be read back.
    name: Name | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    description: Description | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    metadata: dict[str, Any] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)

    @field_validator("name", "description", "metadata")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value

    _metadata = field_validator("metadata")(lambda value: value if value is None else _metadata_size(value))


# -- recognition specs and versions (DESIGN §7) ---------------------------------------------------

SPEC_MUTABLE_FIELDS = ("name", "description", "metadata", "current_version_id")
SPEC_READ_ONLY_FIELDS = ("id", "outputs", "update_date", "create_date")
LARGEST_ID = 10**18 - 1


class Roi(StrEnum):
    NONE = "NONE"
    BBOX = "BBOX"


class SpecLabel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: int = Field(ge=0, le=LARGEST_ID, description="The label's id, unique within its output.")
    name: Name


class SpecLabels(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    roi: Roi = Field(default=Roi.NONE, description="`NONE` for a classification, `BBOX` for a detection.")
    exclusive: bool = Field(default=False, description="True when exactly one label applies (softmax).")
    labels: list[SpecLabel] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _distinct_ids(self) -> Self:
        ids = [label.id for label in self.labels]
        if len(set(ids)) != len(ids):
            raise ValueError("label ids must be distinct within an output")
        return self


class SpecOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    labels: SpecLabels


class CreateRecognitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Name
    description: Description = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    outputs: list[SpecOutput] = Field(min_length=1, max_length=16)

    _metadata = field_validator("metadata")(_metadata_size)


class UpdateRecognitionSpec(BaseModel):
    """The fields a PATCH changes; `current_version_id` null clears the spec's current version."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Name | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    description: Description | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    metadata: dict[str, Any] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    current_version_id: int | None = Field(
        default=None, ge=0, le=LARGEST_ID, description="A version of this spec, or null for none."
    )

    @field_validator("name", "description", "metadata")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value

    _metadata = field_validator("metadata")(lambda value: value if value is None else _metadata_size(value))


class CreateRecognitionVersion(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    spec_id: int = Field(ge=0, le=LARGEST_ID)
    network_id: int = Field(ge=0, le=LARGEST_ID, description="A ready network of this account.")
    post_processings: list[RecognitionPostProcessing] = Field(
        min_length=1, max_length=16, description="One per spec output, in the spec's output order."
    )


# -- endpoints (DESIGN §8) ----------------------------------------------------------------------

MAX_REPLICAS = 64
ENDPOINT_MUTABLE_FIELDS = (
    "name",
    "description",
    "metadata",
    "network_id",
    "recognition_version_id",
    "recognition_spec_id",
    "canary",
    "replicas",
    "gpu_required",
)
ENDPOINT_READ_ONLY_FIELDS = ("id", "author", "status", "update_date", "create_date")
TargetId = Annotated[int, Field(ge=0, le=LARGEST_ID)]
Replicas = Annotated[int, Field(ge=0, le=MAX_REPLICAS)]


class EndpointTarget(BaseModel):
    """Exactly one of a network, a recognition version, or a recognition spec (following its current version)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    network_id: TargetId | None = Field(default=None, description="A network of this account: answers tensors.")
    recognition_version_id: TargetId | None = Field(
        default=None, description="A recognition version: answers its labelled outputs."
    )
    recognition_spec_id: TargetId | None = Field(
        default=None, description="A recognition spec: answers through whichever version is its current one."
    )

    def chosen(self) -> dict[str, int]:
        return {
            name: value
            for name in ("network_id", "recognition_version_id", "recognition_spec_id")
            if (value := getattr(self, name)) is not None
        }

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if len(self.chosen()) != 1:
            raise ValueError("takes exactly one of network_id, recognition_version_id, recognition_spec_id")
        return self


class Canary(EndpointTarget):
    """A second target taking `weight` of the predictions (a canary), before a PATCH makes it the target."""

    weight: float = Field(gt=0.0, lt=1.0, description="The fraction of predictions the canary answers, e.g. 0.05.")


class CreateEndpoint(EndpointTarget):
    name: Name = Field(description="Unique in the account; `lookup?name=` finds it.")
    description: Description = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    replicas: int = Field(
        default=0, ge=0, le=MAX_REPLICAS, description="Workers kept warm while the endpoint is up (0: scale to zero)."
    )
    gpu_required: bool = Field(default=False, description="Served by the GPU worker service; else the CPU one.")
    canary: Canary | None = None

    _metadata = field_validator("metadata")(_metadata_size)


class UpdateEndpoint(BaseModel):
    """A PATCH: naming a target replaces the current one (one of the three); `canary` null removes the split."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Name | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    description: Description | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    metadata: dict[str, Any] | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    network_id: TargetId | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    recognition_version_id: TargetId | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    recognition_spec_id: TargetId | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    canary: Canary | None = None
    replicas: Replicas | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    gpu_required: bool | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)

    @field_validator(
        "name",
        "description",
        "metadata",
        "network_id",
        "recognition_version_id",
        "recognition_spec_id",
        "replicas",
        "gpu_required",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value

    _metadata = field_validator("metadata")(lambda value: value if value is None else _metadata_size(value))

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        named = [
            name
            for name in ("network_id", "recognition_version_id", "recognition_spec_id")
            if name in self.model_fields_set
        ]
        if len(named) > 1:
            raise ValueError(f"names {len(named)} targets ({', '.join(named)}); an endpoint has one")
        return self


def validate(model: type[BaseModel], data: dict[str, Any], what: str) -> Any:
    """Validate or raise one `ValidationFailed` whose sentence names the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = describe_errors(error.errors(include_url=False, include_input=False))
        first = details[0]
        raise ValidationFailed(f"Invalid {what}: {first['field']} {first['message']}.", details) from None
