"""Accepting an inference request: validate it against the network, store its inputs, queue one task."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tensorgate_preprocessing.errors import InvalidBoundingBox
from tensorgate_preprocessing.geometry import MAX_POLYGON_POINTS, parse_polygon
from tensorgate_preprocessing.spec import DetectionSettings, PostprocessingSpec, PreprocessingSpec

from tensorgate import layout
from tensorgate.errors import NetworkNotFound, NetworkNotReady, PayloadTooLarge, ValidationFailed
from tensorgate.messages import (
    MAX_MESSAGE_BYTES,
    InferenceInput,
    InferenceMessage,
    InlineSource,
    RecognitionPlan,
    StoredSource,
    TensorSource,
    UrlSource,
)
from tensorgate.models import Network, NetworkStatus, Task, TaskKind, utc_now
from tensorgate.ports import BlobStore, IdAllocator, MessageQueue, NetworkRepository, TaskRepository
from tensorgate.schemas import validate
from tensorgate.services.tensor_inputs import tensor_source

MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class InferencePolicy:
    bucket: str
    max_input_bytes: int = 5 * 1024**2
    task_ttl_days: int = 30


class PolygonPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    x: float = Field(ge=0.0, le=1.0, description="Fraction of the image width, from the left.")
    y: float = Field(ge=0.0, le=1.0, description="Fraction of the image height, from the top.")


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    source: str | bytes = Field(description="http(s) URL, base64 (optionally a data: URL), or s3:// URI")
    bbox: dict[str, float] | None = Field(
        default=None, description="`{xmin, ymin, xmax, ymax}` in [0, 1]: the image is cropped to it first."
    )
    polygon: list[PolygonPoint] | None = Field(
        default=None,
        min_length=3,
        max_length=MAX_POLYGON_POINTS,
        description="Points `{x, y}` in [0, 1]: the image is cropped to their bounding box (not with a bbox).",
    )
    crop_uniform_background: bool = Field(
        default=False,
        description="With a polygon: the cropped pixels outside the polygon become white; without one it "
        "changes nothing.",
    )


class InputRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    image: ImageRequest | None = Field(default=None, description="An image, for a network that preprocesses it.")
    tensor: list[Any] | None = Field(
        default=None,
        description="For a network without image inputs: one sample as nested arrays of numbers, the input's "
        "shape without its batch dimension, cast to its dtype.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> InputRequest:
        if (self.image is None) == (self.tensor is None):
            raise ValueError("an input is an image or a tensor: send exactly one of them")
        return self


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    inputs: list[InputRequest] = Field(min_length=1, max_length=8)
    output_tensors: list[str] | None = Field(default=None, max_length=64)
    bounding_box_threshold: float | None = None
    iou_threshold: float | None = None
    max_objects: int | None = None
    show_discarded: bool | None = Field(
        default=None, description="Labelled outputs: also return the labels under their threshold."
    )
    max_predictions: int | None = Field(
        default=None, ge=1, le=10_000, description="Labelled outputs: at most this many labels per output."
    )


@dataclass(frozen=True)
class PreparedInference:
    """A request checked against its network, not yet written anywhere."""

    account_id: str
    network_id: int
    request: InferenceRequest
    detection: dict[str, Any] | None
    sources: list[bytes | UrlSource | StoredSource | TensorSource]
    recognition: RecognitionPlan | None


class InferenceService:
    def __init__(
        self,
        networks: NetworkRepository,
        tasks: TaskRepository,
        ids: IdAllocator,
        blobs: BlobStore,
        queue: MessageQueue,
        policy: InferencePolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._networks = networks
        self._tasks = tasks
        self._ids = ids
        self._blobs = blobs
        self._queue = queue
        self._policy = policy
        self._clock = clock

    def submit(
        self, account_id: str, network_id: int, fields: dict[str, Any], recognition: RecognitionPlan | None = None
    ) -> Task:
        """Everything is checked before anything is written, so a refused request queues nothing. With
        `recognition`, the worker answers that version's labelled predictions (DESIGN §7)."""
        return self.send(self.prepare(account_id, network_id, fields, recognition))

    def prepare(
        self, account_id: str, network_id: int, fields: dict[str, Any], recognition: RecognitionPlan | None = None
    ) -> PreparedInference:
        """Check a request against its network without writing anything (several are checked before any is sent)."""
        network = self._networks.get(account_id, network_id)
        if network is None:
            raise NetworkNotFound(network_id)
        _require_ready(network)
        request: InferenceRequest = validate(InferenceRequest, fields, "inference request")
        preprocessing = network.preprocessing and PreprocessingSpec.model_validate(network.preprocessing)
        expected = len(preprocessing.inputs) if preprocessing else 0
        if expected == 0:
            return self._prepare_tensors(network, request, recognition)
        if len(request.inputs) != expected:
            raise ValidationFailed(
                f"Network {network_id} takes {expected} input(s), in preprocessing.inputs order; "
                f"{len(request.inputs)} were sent.",
                [{"field": "inputs", "message": f"must have {expected} entries"}],
            )
        _check_output_tensors(network, request.output_tensors)
        detection = _detection(request)
        sources: list[bytes | UrlSource | StoredSource | TensorSource] = []
        for index, item in enumerate(request.inputs):
            if item.image is None:
                raise ValidationFailed(
                    f"Network {network_id} takes images (its preprocessing declares {expected} image input(s)); "
                    f"input {index} is an array of numbers.",
                    [{"field": f"inputs[{index}].image", "message": "is required for this network"}],
                )
            sources.append(self._source(account_id, index, item.image.source))
            _check_region(index, item.image)
        return PreparedInference(account_id, network_id, request, detection, sources, recognition)

    def _prepare_tensors(
        self, network: Network, request: InferenceRequest, recognition: RecognitionPlan | None
    ) -> PreparedInference:
        """A network without image inputs takes one array of numbers per input, in its inputs' order."""
        specs = network.inputs or []
        if not specs:
            raise ValidationFailed(
                f"Network {network.public_id} declares no image input in its preprocessing and no model inputs, "
                "so it takes no request."
            )
        if len(request.inputs) != len(specs):
            raise ValidationFailed(
                f"Network {network.public_id} takes {len(specs)} input(s) "
                f"({', '.join(str(spec.get('name')) for spec in specs)}); {len(request.inputs)} were sent.",
                [{"field": "inputs", "message": f"must have {len(specs)} entries"}],
            )
        _check_output_tensors(network, request.output_tensors)
        sources: list[bytes | UrlSource | StoredSource | TensorSource] = []
        for index, (item, spec) in enumerate(zip(request.inputs, specs, strict=True)):
            if item.tensor is None:
                raise ValidationFailed(
                    f"Network {network.public_id} declares no image input in its preprocessing, so it takes no "
                    f"images: send input {index} ({spec.get('name')!r}) as a nested array of numbers.",
                    [{"field": f"inputs[{index}].tensor", "message": "is required for this network"}],
                )
            sources.append(tensor_source(item.tensor, spec, index, network.public_id))
        return PreparedInference(
            network.account_id, network.network_id, request, _detection(request), sources, recognition
        )

    def send(
        self,
        prepared: PreparedInference,
        endpoint_id: int | None = None,
        target: dict[str, Any] | None = None,
        queue: MessageQueue | None = None,
    ) -> Task:
        """Open a checked request's task and queue it (on `queue`, else the inference queue), its image bytes
        inline when the message fits in SQS's limit, else stored in S3 first; `endpoint_id` and `target`
        record the endpoint a prediction went through and which of its targets answers it."""
        account_id, network_id, request = prepared.account_id, prepared.network_id, prepared.request
        task_id = self._ids.next_id("task")
        now = self._clock()
        stored: list[str] = []
        try:
            task = Task(
                task_id=task_id,
                account_id=account_id,
                kind=TaskKind.INFERENCE,
                network_id=network_id,
                create_date=now,
                update_date=now,
                expires_at=int((now + timedelta(days=self._policy.task_ttl_days)).timestamp()),
                show_discarded=request.show_discarded,
                max_predictions=request.max_predictions,
                endpoint_id=endpoint_id,
                target=target,
            )
            snapshot = task.model_dump(mode="json", exclude_none=True)
            body = self._message(prepared, task_id, now, stored=None).model_dump(mode="json") | {"task": snapshot}
            if len(json.dumps(body)) > MAX_MESSAGE_BYTES:
                body = self._message(prepared, task_id, now, stored=stored).model_dump(mode="json")
                body["task"] = snapshot
            self._tasks.put_new(task)
            (queue or self._queue).send(body, group=f"{account_id}/{network_id}")
        except BaseException:
            self._tasks.delete(task_id)
            for key in stored:
                self._blobs.delete_prefix(key)
            raise
        return task

    def _message(
        self, prepared: PreparedInference, task_id: int, now: datetime, stored: list[str] | None
    ) -> InferenceMessage:
        """The queue message: image bytes inline, or (with `stored`, which collects the keys) put in S3 first."""
        request = prepared.request
        inputs: list[InferenceInput] = []
        for index, (item, source) in enumerate(zip(request.inputs, prepared.sources, strict=True)):
            resolved: Any = source
            if isinstance(source, bytes):
                if stored is None:
                    resolved = InlineSource(data=base64.b64encode(source).decode("ascii"))
                else:
                    key = layout.input_key(prepared.account_id, task_id, index)
                    self._blobs.put(key, source)
                    stored.append(key)
                    resolved = StoredSource(key=key)
            image = item.image
            inputs.append(
                InferenceInput(
                    source=resolved,
                    bbox=image.bbox if image else None,
                    polygon=[(point.x, point.y) for point in image.polygon] if image and image.polygon else None,
                    crop_uniform_background=bool(image and image.crop_uniform_background),
                )
            )
        return InferenceMessage(
            task_id=task_id,
            account_id=prepared.account_id,
            network_id=prepared.network_id,
            inputs=inputs,
            output_tensors=request.output_tensors,
            detection=prepared.detection,
            show_discarded=request.show_discarded,
            max_predictions=request.max_predictions,
            recognition=prepared.recognition,
            submitted_at=now,
        )

    def _source(self, account_id: str, index: int, source: str | bytes) -> bytes | UrlSource | StoredSource:
        field = f"inputs[{index}].image.source"
        if isinstance(source, bytes):
            return self._sized(index, source)
        text = source.strip()
        scheme = text.split(":", 1)[0].lower() if ":" in text[:16] else ""
        if scheme in ("http", "https"):
            if len(text) > MAX_URL_LENGTH:
                raise ValidationFailed(f"The URL of input {index} is longer than {MAX_URL_LENGTH} characters.")
            return UrlSource(url=text)
        if scheme == "s3":
            return StoredSource(key=self._own_object(account_id, index, text))
        if scheme == "data":
            header, _, payload = text.partition(",")
            if ";base64" not in header:
                raise ValidationFailed(
                    f"The data: URL of input {index} must be base64-encoded (data:image/jpeg;base64,...)."
                )
            text = payload
        elif scheme:
            raise ValidationFailed(
                f"Input {index} uses the {scheme}: scheme; send an http(s) URL, base64 image bytes, a data: URL, "
                "or an s3:// URI inside your upload prefix.",
                [{"field": field, "message": f"scheme {scheme!r} is not supported"}],
            )
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed(
                f"Input {index} is neither an http(s) URL nor valid base64 image bytes.",
                [{"field": field, "message": "is not valid base64"}],
            ) from None
        return self._sized(index, data)

    def _sized(self, index: int, data: bytes) -> bytes:
        if not data:
            field = f"inputs[{index}].image.source"
            raise ValidationFailed(f"Input {index} is empty.", [{"field": field, "message": "is empty"}])
        if len(data) > self._policy.max_input_bytes:
            raise PayloadTooLarge(
                f"Input {index} is {len(data)} bytes, over the {self._policy.max_input_bytes} bytes an inference "
                "input takes; upload it first and send its s3:// URI or an https URL."
            )
        return data

    def _own_object(self, account_id: str, index: int, uri: str) -> str:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        prefix = layout.upload_prefix(account_id)
        if bucket != self._policy.bucket or not key.startswith(prefix) or ".." in key:
            raise ValidationFailed(
                f"Input {index}: s3:// inputs must be objects under your upload prefix, "
                f"s3://{self._policy.bucket}/{prefix}.",
                [{"field": f"inputs[{index}].image.source", "message": "is outside your upload prefix"}],
            )
        if not self._blobs.exists(key):
            raise ValidationFailed(f"Input {index}: s3://{bucket}/{key} does not exist.")
        return key


def _require_ready(network: Network) -> None:
    if network.status is NetworkStatus.READY:
        return
    if network.status is NetworkStatus.PENDING:
        raise NetworkNotReady(
            f"Network {network.public_id} is pending: inference opens once its deploy task {network.task_id} succeeds."
        )
    raise NetworkNotReady(f"Network {network.public_id} failed to deploy and takes no inference: {network.error}")


def available_output_tensors(network: Network) -> list[str]:
    names: list[str] = []
    for post in network.postprocessings:
        for name in PostprocessingSpec.model_validate(post).tensor_names():
            if name not in names:
                names.append(name)
    for output in network.outputs or []:
        if output.get("name") not in names:
            names.append(str(output.get("name")))
    name_map = (network.conversion or {}).get("name_map") or {}
    names.extend(name for name in name_map if name not in names)
    return names


def _check_output_tensors(network: Network, requested: list[str] | None) -> None:
    if not requested:
        return
    available = available_output_tensors(network)
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ValidationFailed(
            f"Unknown output tensor {unknown[0]!r}; this network returns: {', '.join(available[:30])}.",
            [{"field": "output_tensors", "message": f"{name!r} is not an output of this network"} for name in unknown],
        )


def _detection(request: InferenceRequest) -> dict[str, Any] | None:
    given = {
        name: value
        for name in ("bounding_box_threshold", "iou_threshold", "max_objects")
        if (value := getattr(request, name)) is not None
    }
    if not given:
        return None
    return validate(DetectionSettings, given, "detection settings").model_dump()


def _check_region(index: int, image: ImageRequest) -> None:
    if image.polygon is not None:
        if image.bbox is not None:
            raise ValidationFailed(
                f"Input {index}: send a bbox or a polygon, not both; a polygon crops to its own bounding box.",
                [{"field": f"inputs[{index}].image.polygon", "message": "cannot be combined with bbox"}],
            )
        try:
            parse_polygon([(point.x, point.y) for point in image.polygon])
        except InvalidBoundingBox as error:
            raise ValidationFailed(
                f"Input {index}: {error.message}",
                [{"field": f"inputs[{index}].image.polygon", "message": error.message}],
            ) from None
    _check_bbox(index, image.bbox)


def _check_bbox(index: int, bbox: dict[str, float] | None) -> None:
    if bbox is None:
        return
    names = ("xmin", "ymin", "xmax", "ymax")
    if set(bbox) != set(names):
        raise ValidationFailed(f"Input {index}: bbox takes exactly xmin, ymin, xmax, ymax (fractions of the image).")
    if (
        not all(0.0 <= bbox[name] <= 1.0 for name in names)
        or bbox["xmin"] >= bbox["xmax"]
        or bbox["ymin"] >= bbox["ymax"]
    ):
        raise ValidationFailed(f"Input {index}: bbox must lie in [0, 1] with xmin < xmax and ymin < ymax.")
