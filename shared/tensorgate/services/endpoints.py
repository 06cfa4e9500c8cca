"""Endpoints: named deployments of a network, a recognition version or a spec, with synchronous predict (DESIGN §8)."""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field

from tensorgate.errors import (
    ConcurrentUpdate,
    EndpointNotFound,
    EndpointShutdown,
    ImmutableField,
    NetworkNotFound,
    RecognitionSpecNotFound,
    RecognitionVersionNotFound,
    TargetGone,
    UnknownField,
    ValidationFailed,
    endpoint_name_taken,
)
from tensorgate.forms import decode_json_fields
from tensorgate.listing import ListQuery, to_page
from tensorgate.messages import RecognitionPlan
from tensorgate.models import Endpoint, EndpointStatus, Page, Task, TaskStatus, utc_now
from tensorgate.ports import EndpointRepository, IdAllocator, MessageQueue, NetworkRepository, WorkerCapacity
from tensorgate.schemas import (
    ENDPOINT_MUTABLE_FIELDS,
    ENDPOINT_READ_ONLY_FIELDS,
    Canary,
    CreateEndpoint,
    UpdateEndpoint,
    validate,
)
from tensorgate.services.inference import InferenceRequest, InferenceService, InputRequest, PreparedInference
from tensorgate.services.recognition import RecognitionService
from tensorgate.services.tasks import TaskService

ENDPOINT_COUNTER = "endpoint"
UPDATE_ATTEMPTS = 8
MAX_FEATURES = 16
# Each look at the tasks is a read of the table: the first comes when this process's recent predictions were
# mostly still running (a quarter of them had ended; 10 ms before any was seen), the next ones closer than the
# worker's own latency, and at most every 30 ms while a longer task runs.
FIRST_POLL_SECONDS = 0.01
LAST_POLL_SECONDS = 0.03
POLL_GROWTH = 1.25
RECENT_PREDICTIONS = 16
FIRST_LOOK_QUANTILE = 0.25
MAX_FIRST_LOOK_SECONDS = 2.0
TARGET_NAMES = ("network_id", "recognition_version_id", "recognition_spec_id")
INFERENCE_OPTIONS = (
    "output_tensors",
    "bounding_box_threshold",
    "iou_threshold",
    "max_objects",
    "show_discarded",
    "max_predictions",
)


class PredictRequest(InferenceRequest):
    """What a predict takes: SBrain's `features` (one sample each) or the v0.7 `inputs` (one sample), with the
    v0.7 inference options. Described for the API document; `_samples` reads it."""

    features: list[str | list[Any]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FEATURES,
        description="One sample per feature: a base64 image (or a data: URL, an https URL, an s3:// URI), or "
        "for a network without image inputs a nested array of numbers (the input's shape without its batch "
        "dimension).",
    )
    inputs: list[InputRequest] | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=8, description="The v0.7 form: one sample, one entry per input."
    )


@dataclass(frozen=True)
class PredictPolicy:
    budget_seconds: float = 10.0


@dataclass(frozen=True)
class Prediction:
    """A predict's tasks: `complete` when every one ended within the wait (the HTTP 200), else pending (202)."""

    endpoint_id: int
    tasks: list[dict[str, Any]]

    @property
    def complete(self) -> bool:
        return all(task["status"] != TaskStatus.PENDING.value for task in self.tasks)

    def to_wire(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "status": "complete" if self.complete else "pending",
            "task_ids": [task["id"] for task in self.tasks],
            "predictions": self.tasks,
        }


class CompletionTimes:
    """How long this process's recent predictions waited for their results to be written, so that the first
    read of a new prediction's tasks comes when a quarter of those had ended, not after a fixed 10 ms that
    finds a demo-sized model's task still running and costs further reads."""

    def __init__(self, size: int = RECENT_PREDICTIONS) -> None:
        self._recent: deque[float] = deque(maxlen=size)

    def record(self, seconds: float) -> None:
        self._recent.append(max(0.0, seconds))

    def first_look(self) -> float:
        if not self._recent:
            return FIRST_POLL_SECONDS
        ordered = sorted(self._recent)
        quantile = ordered[int(FIRST_LOOK_QUANTILE * (len(ordered) - 1))]
        return min(MAX_FIRST_LOOK_SECONDS, max(FIRST_POLL_SECONDS, quantile))


def device(gpu_required: bool) -> str:
    return "gpu" if gpu_required else "cpu"


class EndpointService:
    def __init__(
        self,
        endpoints: EndpointRepository,
        networks: NetworkRepository,
        recognition: RecognitionService,
        inference: InferenceService,
        tasks: TaskService,
        ids: IdAllocator,
        capacity: WorkerCapacity | None = None,
        cpu_queue: MessageQueue | None = None,
        policy: PredictPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoints = endpoints
        self._networks = networks
        self._recognition = recognition
        self._inference = inference
        self._tasks = tasks
        self._ids = ids
        self._capacity = capacity
        # Endpoints without gpu_required predict on the CPU workers' queue when there is one.
        self._cpu_queue = cpu_queue
        self._policy = policy or PredictPolicy()
        self._clock = clock
        self._monotonic = monotonic
        self._pause = pause
        self._completion_times = CompletionTimes()

    # -- records ------------------------------------------------------------------------------

    def create(self, account_id: str, author: str, fields: dict[str, Any]) -> Endpoint:
        """Checked (targets exist, name free) before anything is written; the warm minimum follows."""
        request: CreateEndpoint = validate(
            CreateEndpoint, decode_json_fields(fields, {"metadata", "canary"}), "endpoint"
        )
        target = request.chosen()
        self._check_target(account_id, target, "")
        canary = self._canary(account_id, request.canary)
        if self._endpoints.get_by_name(account_id, request.name) is not None:
            raise endpoint_name_taken(request.name)
        now = self._clock()
        endpoint = Endpoint(
            account_id=account_id,
            endpoint_id=self._ids.next_id(ENDPOINT_COUNTER),
            name=request.name,
            description=request.description,
            metadata=request.metadata,
            author=author,
            target=target,
            canary=canary,
            replicas=request.replicas,
            gpu_required=request.gpu_required,
            create_date=now,
            update_date=now,
        )
        self._endpoints.put_new(endpoint)
        self._hold(endpoint, +1)
        return endpoint

    def get(self, account_id: str, endpoint_id: int) -> Endpoint:
        endpoint = self._endpoints.get(account_id, endpoint_id)
        if endpoint is None:
            raise EndpointNotFound(endpoint_id)
        return endpoint

    def lookup(self, account_id: str, name: str) -> Endpoint:
        endpoint = self._endpoints.get_by_name(account_id, name)
        if endpoint is None:
            raise EndpointNotFound(f"named {name!r}")
        return endpoint

    def list_endpoints(self, account_id: str, query: ListQuery) -> Page:
        return to_page(self._endpoints.page(account_id, query), query, Endpoint.to_wire)

    def update(self, account_id: str, endpoint_id: int, changes: dict[str, Any]) -> Endpoint:
        for name in changes:
            if name in ENDPOINT_READ_ONLY_FIELDS:
                raise ImmutableField(
                    f"Field {name!r} is read-only; {', '.join(ENDPOINT_MUTABLE_FIELDS)} can be changed "
                    "(POST .../shutdown stops an endpoint).",
                    [{"field": name, "message": "is read-only"}],
                )
            if name not in ENDPOINT_MUTABLE_FIELDS:
                raise UnknownField(
                    f"Field {name!r} is not an endpoint field; {', '.join(ENDPOINT_MUTABLE_FIELDS)} can be changed.",
                    [{"field": name, "message": "is not a known field"}],
                )
        request: UpdateEndpoint = validate(
            UpdateEndpoint, decode_json_fields(changes, {"metadata", "canary"}), "update"
        )
        values: dict[str, Any] = {
            name: getattr(request, name)
            for name in ("name", "description", "metadata", "replicas", "gpu_required")
            if name in request.model_fields_set
        }
        target = {name: getattr(request, name) for name in TARGET_NAMES if name in request.model_fields_set}
        if target:
            self._check_target(account_id, target, "")
            values["target"] = target
        if "canary" in request.model_fields_set:
            values["canary"] = self._canary(account_id, request.canary)
        return self._change(account_id, endpoint_id, lambda _: values)

    def shutdown(self, account_id: str, endpoint_id: int) -> Endpoint:
        """Predictions are refused from now on and the warm minimum is released; the record stays."""
        return self._change(
            account_id,
            endpoint_id,
            lambda endpoint: (
                None if endpoint.status is EndpointStatus.SHUTDOWN else {"status": EndpointStatus.SHUTDOWN}
            ),
        )

    def delete(self, account_id: str, endpoint_id: int) -> None:
        endpoint = self.get(account_id, endpoint_id)
        self._endpoints.delete(endpoint)
        self._hold(endpoint, -1)

    def _change(
        self, account_id: str, endpoint_id: int, change: Callable[[Endpoint], dict[str, Any] | None]
    ) -> Endpoint:
        """Apply `change` (field values, or None for nothing to do) to the freshest copy, retrying on a race."""
        for attempt in range(UPDATE_ATTEMPTS):
            endpoint = self.get(account_id, endpoint_id)
            values = change(endpoint)
            if values is None:
                return endpoint
            renamed = "name" in values and values["name"] != endpoint.name
            if renamed and self._endpoints.get_by_name(account_id, values["name"]) is not None:
                raise endpoint_name_taken(values["name"])
            updated = endpoint.model_copy(
                update=values | {"update_date": self._clock(), "version": endpoint.version + 1}
            )
            try:
                self._endpoints.replace(updated, expected_version=endpoint.version, previous_name=endpoint.name)
            except ConcurrentUpdate:
                self._pause(random.uniform(0, 0.005 * 2**attempt))
                continue
            held = ("replicas", "gpu_required", "status")
            if any(getattr(endpoint, name) != getattr(updated, name) for name in held):
                self._hold(endpoint, -1)
                self._hold(updated, +1)
            return updated
        raise ConcurrentUpdate(f"Endpoint {endpoint_id} is being changed by another request; try again.")

    def _hold(self, endpoint: Endpoint, sign: int) -> None:
        """Add (+1) or release (-1) what a running endpoint keeps warm on its device's worker service."""
        if self._capacity is not None and endpoint.status is EndpointStatus.RUNNING and endpoint.replicas:
            self._capacity.change(device(endpoint.gpu_required), sign * endpoint.replicas)

    def _check_target(self, account_id: str, target: dict[str, int], prefix: str) -> None:
        ((name, value),) = target.items()
        field = prefix + name
        exists = {
            "network_id": lambda: self._networks.get(account_id, value) is not None,
            "recognition_version_id": lambda: _found(lambda: self._recognition.get_version(account_id, value)),
            "recognition_spec_id": lambda: _found(lambda: self._recognition.get_spec(account_id, value)),
        }[name]()
        if not exists:
            what = name.removesuffix("_id").replace("_", " ")
            raise ValidationFailed(
                f"{field} {value} names no {what} of this account.", [{"field": field, "message": f"names no {what}"}]
            )

    def _canary(self, account_id: str, canary: Canary | None) -> dict[str, Any] | None:
        if canary is None:
            return None
        target = canary.chosen()
        self._check_target(account_id, target, "canary.")
        return target | {"weight": canary.weight}

    # -- predict ------------------------------------------------------------------------------

    def predict(
        self, account_id: str, endpoint_id: int, fields: dict[str, Any], wait_seconds: float | None
    ) -> Prediction:
        """Queue one inference per sample, each on the endpoint's target or its canary (drawn by weight), and
        wait for them up to the budget; what is not done by then is answered as pending tasks to poll."""
        endpoint = self.get(account_id, endpoint_id)
        if endpoint.status is EndpointStatus.SHUTDOWN:
            raise EndpointShutdown(
                f"Endpoint {endpoint.name!r} is shut down and takes no predictions; PATCH it or create another "
                "endpoint to serve this model again."
            )
        samples = _samples(fields)
        prepared: list[tuple[PreparedInference, dict[str, Any]]] = []
        for index, sample in enumerate(samples):
            target = self._route(endpoint)
            try:
                network_id, plan = self._resolve(account_id, target)
                prepared.append((self._inference.prepare(account_id, network_id, sample, recognition=plan), target))
            except ValidationFailed as refused:
                if "features" not in fields:
                    raise
                # Each feature is one sample of one input: name the feature the sentence is about.
                details = [detail | {"field": f"features[{index}]"} for detail in refused.details]
                raise ValidationFailed(f"features[{index}]: {refused.message}", details) from None
            except (NetworkNotFound, RecognitionSpecNotFound, RecognitionVersionNotFound) as gone:
                raise TargetGone(
                    f"Endpoint {endpoint.name!r} cannot predict: {gone.message.rstrip('.')}; PATCH the endpoint to "
                    "another target."
                ) from None
        queue = None if endpoint.gpu_required else self._cpu_queue
        tasks = [
            self._inference.send(item, endpoint_id=endpoint.endpoint_id, target=target, queue=queue)
            for item, target in prepared
        ]
        budget = self._policy.budget_seconds if wait_seconds is None else min(wait_seconds, self._policy.budget_seconds)
        return Prediction(endpoint.endpoint_id, self._wait(account_id, tasks, budget))

    def _route(self, endpoint: Endpoint) -> dict[str, Any]:
        """The n-th prediction of an endpoint goes to its canary when floor(n * weight) steps up: exactly
        the weight's share of every run of predictions, whichever requests and processes they come from
        (the count is an atomic counter per endpoint)."""
        canary = endpoint.canary
        if canary is not None:
            weight = float(canary["weight"])
            position = self._ids.next_id(f"endpoint-{endpoint.account_id}-{endpoint.endpoint_id}-predictions")
            if math.floor(position * weight) > math.floor((position - 1) * weight):
                return {name: value for name, value in canary.items() if name != "weight"} | {"canary": True}
        return dict(endpoint.target) | {"canary": False}

    def _resolve(self, account_id: str, target: dict[str, Any]) -> tuple[int, RecognitionPlan | None]:
        if "recognition_version_id" in target:
            return self._recognition.version_plan(account_id, int(target["recognition_version_id"]))
        if "recognition_spec_id" in target:
            return self._recognition.spec_plan(account_id, int(target["recognition_spec_id"]))
        # The network itself is read (and a missing one refused) when the request is checked against it.
        return int(target["network_id"]), None

    def _wait(self, account_id: str, tasks: list[Task], budget: float) -> list[dict[str, Any]]:
        ids = [task.task_id for task in tasks]
        started, started_at = self._monotonic(), self._clock()
        deadline = started + max(0.0, budget)
        interval = FIRST_POLL_SECONDS
        if budget > 0:  # no worker has answered yet: the first read would only find the tasks pending
            self._pause(min(self._completion_times.first_look(), budget))
        while True:
            page = self._tasks.list(account_id, ids, 0, len(ids))
            if all(task["status"] != TaskStatus.PENDING.value for task in page.results):
                self._record_completion(page.results, started_at, self._monotonic() - started)
                return page.results
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return page.results
            self._pause(min(interval, remaining))
            interval = min(interval * POLL_GROWTH, LAST_POLL_SECONDS)

    def _record_completion(self, tasks: list[dict[str, Any]], started_at: datetime, waited: float) -> None:
        """How long after the wait began the last result was written, by the tasks' own end dates (the read
        that found them ended came some time later), never more than this wait saw, whatever the worker's
        clock says."""
        try:
            ended = max(datetime.fromisoformat(task["update_date"]) for task in tasks)
        except (KeyError, TypeError, ValueError):
            return
        self._completion_times.record(min((ended - started_at).total_seconds(), waited))


def _found(read: Callable[[], object]) -> bool:
    try:
        read()
    except (RecognitionSpecNotFound, RecognitionVersionNotFound):
        return False
    return True


def _samples(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """SBrain's `{"features": [...]}` (one sample per feature, each a base64 image or an array of numbers for a
    network's one non-image input) or the v0.7 `inputs` (one
    sample); either with the v0.7 inference options."""
    if "features" not in fields:
        if "inputs" not in fields:
            raise ValidationFailed(
                'A prediction takes {"features": [<base64 image>, ...]} or the v0.7 {"inputs": [{"image": '
                '{"source": ...}}]}.',
                [{"field": "features", "message": "is required (or inputs)"}],
            )
        return [fields]
    if "inputs" in fields:
        raise ValidationFailed(
            "Send features or inputs, not both: features are one sample each, inputs one sample.",
            [{"field": "inputs", "message": "cannot be combined with features"}],
        )
    unknown = sorted(set(fields) - {"features", *INFERENCE_OPTIONS})
    if unknown:
        raise ValidationFailed(
            f"Unknown field {unknown[0]!r}; a prediction takes features or inputs, and {', '.join(INFERENCE_OPTIONS)}.",
            [{"field": name, "message": "is not a known field"} for name in unknown],
        )
    features = fields["features"]
    if not isinstance(features, list) or not 1 <= len(features) <= MAX_FEATURES:
        raise ValidationFailed(
            f"features must be a list of 1 to {MAX_FEATURES} samples.",
            [{"field": "features", "message": f"must be a list of 1 to {MAX_FEATURES} samples"}],
        )
    options = {name: fields[name] for name in INFERENCE_OPTIONS if name in fields}
    samples = []
    for index, feature in enumerate(features):
        if isinstance(feature, list):
            samples.append({"inputs": [{"tensor": feature}]} | options)
            continue
        if not isinstance(feature, str):
            raise ValidationFailed(
                f"features[{index}] is neither an image nor an array: each feature is a base64 image (or a data: "
                "or https URL), or a nested array of numbers for a network without image inputs.",
                [{"field": f"features[{index}]", "message": "must be a base64 image or an array of numbers"}],
            )
        samples.append({"inputs": [{"image": {"source": feature}}]} | options)
    return samples
