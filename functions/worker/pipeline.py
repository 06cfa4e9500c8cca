"""One inference message to its result, without queues: network plans, inputs, preprocessing, batched runs.

`main.py` moves messages; this module does the work between receiving and writing:
- `NetworkPlan`: what a ready network needs to serve (its session from the model cache, the resolved
  ONNX input names, target sizes, mean arrays, postprocessings, batching limits), built once per
  (account, network, model version).
- `InferencePipeline.prepare`: fetch and preprocess one message's inputs into a `Sample` (worker threads).
- `InferencePipeline.run_batch`: assemble samples of one plan into batch arrays, run them, and build each
  task's v0.7 result (the runner thread).
A problem with one request (not an image, a failed download, a bad bbox) raises or returns `InputRejected`:
that task ends `error`, its batch-mates go on. Anything else is transient and the message is retried.
"""

from __future__ import annotations

import base64
import binascii
import logging
import shutil
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tensorgate import layout
from tensorgate.adapters.aws import error_code
from tensorgate.messages import InferenceMessage, InlineSource, StoredSource, TensorSource
from tensorgate.models import Network, NetworkStatus
from tensorgate_preprocessing.errors import PreprocessingError
from tensorgate_preprocessing.geometry import resolve_target_size
from tensorgate_preprocessing.images import DEFAULT_MAX_PIXELS, PreparedImage, prepare_image
from tensorgate_preprocessing.postprocess import (
    postprocess,
    recognize,
    requested_tensors,
    shared_tensors,
    tensor_results,
)
from tensorgate_preprocessing.spec import (
    ImageSpec,
    PostprocessingSpec,
    PreprocessingSpec,
    RecognitionPostProcessing,
    TargetSize,
)
from tensorgate_preprocessing.tensors import BatchWriter, load_mean

from functions.worker.fetch import FetchFailed, FetchPolicy, fetch
from functions.worker.runtime import ModelCache, ModelLoadFailed, ModelRunFailed, ModelSession, Runtime
from functions.worker.settings import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_QUEUE_DELAY_MS

log = logging.getLogger("inference_worker")
MISSING_OBJECT_CODES = ("NoSuchKey", "404", "NotFound")


class InputRejected(Exception):
    """This request cannot be served as sent; its task ends `error` with `message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NetworkLookup(Protocol):
    def get(self, account_id: str, network_id: int) -> Network | None: ...


class ModelFiles(Protocol):
    def get(self, key: str) -> bytes: ...
    def get_range(self, key: str, offset: int, size: int) -> bytes: ...
    def download(self, key: str, path: str) -> None: ...


@dataclass(frozen=True)
class ModelKey:
    account_id: str
    network_id: int
    version: str


def model_version(network: Network) -> str:
    """The converted model's digest: a redeployed network never answers from a stale session."""
    model = (network.conversion or {}).get("model") or {}
    digest = model.get("sha256") if isinstance(model, dict) else None
    return str(digest) if digest else f"record-{network.version}"


@dataclass(frozen=True)
class InputPlan:
    onnx_name: str
    image: ImageSpec
    target: TargetSize
    mean: np.ndarray | None
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class TensorInputPlan:
    """A non-image input: the requests send its samples as arrays of numbers (checked by the API)."""

    onnx_name: str
    dtype: np.dtype[Any]
    shape: tuple[int | str | None, ...]  # the model's, batch dimension first


@dataclass
class NetworkPlan:
    key: ModelKey
    session: ModelSession
    inputs: list[InputPlan]
    postprocessings: list[PostprocessingSpec]
    name_map: dict[str, str]
    default_outputs: list[str]
    max_batch_size: int
    max_queue_delay_ms: int
    # A model whose batch dimension is a fixed number runs exactly that many rows (padded).
    fixed_batch: int | None = None
    model_dir: Path | None = None
    # A network without preprocessing takes arrays of numbers instead of images, one per model input.
    tensor_inputs: list[TensorInputPlan] = field(default_factory=list)

    @property
    def input_count(self) -> int:
        return len(self.inputs) or len(self.tensor_inputs)

    @property
    def nbytes(self) -> int:
        return self.session.nbytes + sum(item.mean.nbytes for item in self.inputs if item.mean is not None)

    def resolve_output(self, name: str) -> str | None:
        """A user-facing tensor name (ONNX name, signature key, Keras or TF name) to the ONNX output name."""
        outputs = set(self.session.output_names)
        for candidate in (name, name.removesuffix(":0"), f"{name}:0"):
            if candidate in outputs:
                return candidate
            mapped = self.name_map.get(candidate)
            if mapped in outputs:
                return mapped
        return None


@dataclass
class Fetched:
    """One message's input bytes, downloaded and waiting for a preprocessing thread."""

    message: InferenceMessage
    plan: NetworkPlan
    data: list[bytes]


@dataclass
class Sample:
    """One message's inputs, preprocessed and waiting for a batch."""

    message: InferenceMessage
    plan: NetworkPlan
    images: list[PreparedImage]
    ready_at: float = field(default_factory=time.monotonic)
    # Its recognition version's post-processings, validated once here: the batch reads them three times.
    recognition: list[RecognitionPostProcessing] = field(init=False)
    # A non-image network's inputs, one array each without the batch dimension.
    tensors: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        plan = self.message.recognition
        self.recognition = (
            [] if plan is None else [RecognitionPostProcessing.model_validate(item) for item in plan.post_processings]
        )

    @property
    def batch_key(self) -> Hashable:
        # NETWORK resizes give each image its own size: only equal sizes share a batch array.
        sizes = tuple(image.transform.input_size for image in self.images)
        return (self.plan.key, sizes, tuple(array.shape for array in self.tensors))


@dataclass
class Outcome:
    """How one task ends: `data` on success, `error` (one sentence) otherwise."""

    task_id: int
    data: Any = None
    error: str | None = None
    # An item of a cancelled job, ended without running (counted as cancelled on its job, not failed).
    skipped: bool = False


class NetworkDirectory:
    """Network records for a few seconds, so a burst of requests does not read the same item per message."""

    def __init__(
        self, networks: NetworkLookup, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._networks = networks
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], tuple[float, Network | None]] = {}

    def get(self, account_id: str, network_id: int) -> Network | None:
        key = (account_id, network_id)
        now = self._clock()
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        network = self._networks.get(account_id, network_id)
        with self._lock:
            self._entries[key] = (now, network)
        return network


@dataclass(frozen=True)
class PipelineOptions:
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    model_dir: Path = Path("/tmp/tensorgate-models")
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_queue_delay_ms: int = DEFAULT_MAX_QUEUE_DELAY_MS
    network_cache_seconds: float = 5.0


class InferencePipeline:
    def __init__(
        self,
        networks: NetworkLookup,
        files: ModelFiles,
        runtime: Runtime,
        cache: ModelCache[NetworkPlan],
        options: PipelineOptions | None = None,
        fetcher: Callable[[str, FetchPolicy], bytes] = fetch,
    ) -> None:
        self.options = options or PipelineOptions()
        self._directory = NetworkDirectory(networks, self.options.network_cache_seconds)
        self._files = files
        self._runtime = runtime
        self._cache = cache
        self._fetch = fetcher

    # ---- plans --------------------------------------------------------------------------------

    def plan_for(self, message: InferenceMessage) -> NetworkPlan:
        network = self._directory.get(message.account_id, message.network_id)
        if network is None:
            raise InputRejected(f"Network {message.network_id} no longer exists.")
        if network.status is not NetworkStatus.READY:
            raise InputRejected(f"Network {network.public_id} is {network.status.value}, not ready for inference.")
        key = ModelKey(network.account_id, network.network_id, model_version(network))
        try:
            return self._cache.get(key, lambda: self._load_plan(key, network))
        except ModelLoadFailed as failure:
            # Deterministic: retrying would fail the same way until the dead-letter queue.
            raise InputRejected(f"Network {network.public_id}'s model cannot be opened: {failure}") from None

    def _load_plan(self, key: ModelKey, network: Network) -> NetworkPlan:
        started = time.monotonic()
        if network.preprocessing is None and not network.inputs:
            raise InputRejected(f"Network {network.public_id} declares no image input, so it takes no images.")
        declared = PreprocessingSpec.model_validate(network.preprocessing).inputs if network.preprocessing else []
        postprocessings = [PostprocessingSpec.model_validate(item) for item in network.postprocessings]
        name_map = {str(k): str(v) for k, v in ((network.conversion or {}).get("name_map") or {}).items()}
        directory = self.options.model_dir / key.account_id / str(key.network_id) / key.version
        path, nbytes = self._download_model(network, directory)
        try:
            session = self._runtime.open(path, nbytes=nbytes)
            inputs = [self._input_plan(network, session, name_map, item) for item in declared]
            tensor_inputs = (
                []
                if inputs
                else [self._tensor_input_plan(network, session, name_map, item) for item in network.inputs or []]
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        plan = NetworkPlan(
            key=key,
            session=session,
            inputs=inputs,
            postprocessings=postprocessings,
            name_map=name_map,
            default_outputs=_default_outputs(postprocessings, session),
            max_batch_size=int(network.conversion_options.get("max_batch_size") or self.options.max_batch_size),
            max_queue_delay_ms=int(
                network.conversion_options.get("max_queue_delay_ms", self.options.max_queue_delay_ms)
            ),
            fixed_batch=_fixed_batch(
                session, [item.onnx_name for item in inputs] + [item.onnx_name for item in tensor_inputs]
            ),
            model_dir=directory,
            tensor_inputs=tensor_inputs,
        )
        if plan.fixed_batch is not None:
            plan.max_batch_size = plan.fixed_batch
        log.info(
            "loaded network %s/%s (%s) in %.0f ms: %d bytes on %s",
            key.account_id,
            key.network_id,
            key.version[:12],
            (time.monotonic() - started) * 1000,
            nbytes,
            session.providers[0],
        )
        return plan

    def _download_model(self, network: Network, directory: Path) -> tuple[Path, int]:
        directory.mkdir(parents=True, exist_ok=True)
        model = (network.conversion or {}).get("model") or {}
        names = [str(name) for name in (model.get("files") if isinstance(model, dict) else None) or ["model.onnx"]]
        prefix = layout.model_prefix(network.account_id, network.network_id)
        main = directory / "model.onnx"
        total = 0
        for name in dict.fromkeys(["model.onnx", *names]):
            if "/" in name or "\\" in name or name.startswith("."):
                raise InputRejected(f"Network {network.public_id} lists an unusable model file {name!r}.")
            target = directory / name
            try:
                self._files.download(prefix + name, str(target))
            except Exception as error:
                if error_code(error) in MISSING_OBJECT_CODES:
                    raise InputRejected(
                        f"Network {network.public_id} cannot serve: its converted model file {name!r} is missing "
                        "from storage; create the network again."
                    ) from None
                raise
            total += target.stat().st_size
        return main, total

    def _tensor_input_plan(
        self, network: Network, session: ModelSession, name_map: dict[str, str], item: dict[str, Any]
    ) -> TensorInputPlan:
        meta = session.input(_onnx_input(network, session, name_map, str(item.get("name"))))
        return TensorInputPlan(onnx_name=meta.name, dtype=meta.numpy_dtype, shape=meta.shape)

    def _input_plan(self, network: Network, session: ModelSession, name_map: dict[str, str], item: Any) -> InputPlan:
        onnx_name = _onnx_input(network, session, name_map, item.tensor_name)
        meta = session.input(onnx_name)
        try:
            target = resolve_target_size(item.image, list(meta.shape) if len(meta.shape) == 4 else None)
            mean = None
            if item.image.mean_file is not None:
                mean = load_mean(self._declared_file(network, item.image.mean_file), item.image, target=target)
        except PreprocessingError as error:
            raise InputRejected(
                f"Network {network.public_id} cannot preprocess input {item.tensor_name!r}: {error.message}"
            ) from None
        dtype = meta.numpy_dtype if meta.dtype in ("float32", "float16", "uint8", "float64") else np.dtype(np.float32)
        return InputPlan(onnx_name=onnx_name, image=item.image, target=target, mean=mean, dtype=dtype)

    def _declared_file(self, network: Network, name: str) -> bytes:
        """A file the network declares: beside its model, where the converter stores it whether it was a
        multipart part or inside an archive; networks converted before that read their multipart upload."""
        declared = (network.conversion or {}).get("declared_files") or []
        if name in declared:
            key = layout.declared_file_key(network.account_id, network.network_id, name)
        else:
            key = layout.file_key(network.account_id, network.network_id, name)
        try:
            return self._files.get(key)
        except Exception as error:
            if error_code(error) in MISSING_OBJECT_CODES:
                # Deterministic: retrying cannot make the file appear, so the task ends with the reason.
                raise InputRejected(
                    f"Network {network.public_id} cannot serve: its file {name!r} is missing from storage; "
                    "create the network again with that file."
                ) from None
            raise

    # ---- one message ----------------------------------------------------------------------------

    def prepare(self, message: InferenceMessage) -> Sample:
        """Fetch and preprocess one message's inputs (raises InputRejected for a bad request)."""
        return self.preprocess(self.fetch(message))

    def fetch(self, message: InferenceMessage) -> Fetched:
        """The network's plan and the input bytes (waits on S3 or URLs: the worker runs many at once)."""
        plan = self.plan_for(message)
        if len(message.inputs) != plan.input_count:
            raise InputRejected(
                f"Network {message.network_id} takes {plan.input_count} input(s); "
                f"the request had {len(message.inputs)}."
            )
        if plan.tensor_inputs:
            return Fetched(message, plan, [])  # the arrays travel in the message
        for name in message.output_tensors or []:
            if plan.resolve_output(name) is None:
                raise InputRejected(f"Unknown output tensor {name!r} for network {message.network_id}.")
        return Fetched(message, plan, [self.source_bytes(message, index) for index in range(len(message.inputs))])

    def preprocess(self, fetched: Fetched) -> Sample:
        """Decode and resize each input for its network input (CPU work: one thread per core)."""
        plan, message = fetched.plan, fetched.message
        if plan.tensor_inputs:
            return Sample(message=message, plan=plan, images=[], tensors=_arrays(message, plan))
        images = []
        for index, (item, spec, data) in enumerate(zip(message.inputs, plan.inputs, fetched.data, strict=True)):
            try:
                images.append(
                    prepare_image(
                        data,
                        spec.image,
                        bbox=item.bbox,
                        polygon=item.polygon,
                        crop_uniform_background=item.crop_uniform_background,
                        target=spec.target,
                        max_pixels=self.options.max_pixels,
                    )
                )
            except PreprocessingError as error:
                raise InputRejected(_for_input(index, len(plan.inputs), error.message)) from None
        return Sample(message=message, plan=plan, images=images)

    def source_bytes(self, message: InferenceMessage, index: int) -> bytes:
        source = message.inputs[index].source
        total = len(message.inputs)
        if isinstance(source, InlineSource):
            try:
                return base64.b64decode(source.data, validate=True)
            except (binascii.Error, ValueError):
                raise InputRejected(_for_input(index, total, "The image is not valid base64.")) from None
        if isinstance(source, StoredSource):
            allowed: tuple[str, ...] = (
                f"inputs/{layout.safe_account(message.account_id)}/",
                layout.upload_prefix(message.account_id),
            )
            if source.offset is not None:  # a split's item: a range of one of the account's dataset image shards
                allowed = (f"datasets/{layout.safe_account(message.account_id)}/",)
            if not source.key.startswith(allowed) or ".." in source.key:
                raise InputRejected(_for_input(index, total, "The stored input is outside the caller's own objects."))
            try:
                if source.offset is not None:
                    return self._files.get_range(source.key, source.offset, source.size or 0)
                return self._files.get(source.key)
            except Exception as error:
                if error_code(error) in MISSING_OBJECT_CODES:
                    raise InputRejected(_for_input(index, total, "The stored input no longer exists.")) from None
                raise
        if isinstance(source, TensorSource):
            raise InputRejected(_for_input(index, total, "This network takes images, not arrays of numbers."))
        try:
            return self._fetch(source.url, self.options.fetch)
        except FetchFailed as failure:
            raise InputRejected(_for_input(index, total, failure.message)) from None

    # ---- one batch -----------------------------------------------------------------------------

    def run_batch(self, samples: Sequence[Sample]) -> list[Outcome]:
        """Run samples that share a plan and input sizes; one outcome per sample, in order."""
        plan = samples[0].plan
        rows = max(len(samples), plan.fixed_batch or 0)
        feeds = {}
        for position, spec in enumerate(plan.inputs):
            writer = BatchWriter(spec.image, samples[0].images[position].transform.input_size, rows, spec.mean)
            for row in range(rows):
                # Rows past the samples pad a fixed-size batch dimension; their outputs are dropped.
                writer.write(row, samples[min(row, len(samples) - 1)].images[position].pixels)
            array = writer.array
            feeds[spec.onnx_name] = array if array.dtype == spec.dtype else array.astype(spec.dtype)
        for position, tensor in enumerate(plan.tensor_inputs):
            feeds[tensor.onnx_name] = np.stack(
                [samples[min(row, len(samples) - 1)].tensors[position] for row in range(rows)]
            )
        wanted = self._output_names(samples)
        try:
            values = plan.session.run(feeds, list(wanted.values()))
        except ModelRunFailed as failure:
            if len(samples) == 1:
                return [Outcome(samples[0].message.task_id, error=f"The model failed on this input: {failure}")]
            # Find the one that fails rather than failing every batch-mate.
            return [outcome for sample in samples for outcome in self.run_batch([sample])]
        by_user_name = {name: values[onnx_name] for name, onnx_name in wanted.items()}
        return [self._result(sample, row, by_user_name) for row, sample in enumerate(samples)]

    def _output_names(self, samples: Sequence[Sample]) -> dict[str, str]:
        """User-facing name → ONNX output, for every tensor the samples ask for or the postprocessings use."""
        plan = samples[0].plan
        names = [name for sample in samples for name in _requested(sample)]
        names += [name for post in plan.postprocessings for name in post.tensor_names()]
        names += [name for sample in samples for post in sample.recognition for name in post.tensor_names()]
        wanted = {}
        for name in dict.fromkeys(names):
            resolved = plan.resolve_output(name)
            if resolved is not None:
                wanted[name] = resolved
        return wanted

    def _result(self, sample: Sample, row: int, values: dict[str, np.ndarray]) -> Outcome:
        # Anchors are one tensor for the whole batch, with or without a batch dimension: taken whole.
        shared = shared_tensors(sample.recognition)
        mine = {name: value if name in shared else value[row : row + 1] for name, value in values.items()}
        try:
            # The layer's postprocessing makes the detections and labels; the tensors are the ones the
            # request named (any output the submit API accepted) or the network's defaults.
            result = postprocess(
                mine,
                sample.plan.postprocessings,
                sample.images[0].transform if sample.images else None,
                output_tensors=[],
                detection_overrides=sample.message.detection,
            )
            result["tensors"] = tensor_results(mine, _requested(sample))
            recognition = sample.message.recognition
            if recognition is not None:
                # Through a recognition spec or version: its labelled predictions, and the tensors only
                # when the request named them.
                result["outputs"] = recognize(
                    mine,
                    recognition.labels,
                    sample.recognition,
                    sample.images[0].transform if sample.images else None,
                    show_discarded=bool(sample.message.show_discarded),
                    max_predictions=sample.message.max_predictions,
                )
                result["tensors"] = tensor_results(mine, sample.message.output_tensors or [])
        except PreprocessingError as error:
            return Outcome(sample.message.task_id, error=error.message)
        return Outcome(sample.message.task_id, data=dict(sorted(result.items(), key=lambda item: item[0] != "tensors")))


def _onnx_input(network: Network, session: ModelSession, name_map: dict[str, str], name: str) -> str:
    """A declared input name (ONNX, TF or Keras) to the converted model's input name."""
    names = session.input_names
    for candidate in (name, name_map.get(name), name_map.get(name.removesuffix(":0")), name.removesuffix(":0")):
        if candidate in names:
            return candidate
    raise InputRejected(f"Network {network.public_id}'s input {name!r} is not an input of its converted model.")


def _arrays(message: InferenceMessage, plan: NetworkPlan) -> list[np.ndarray]:
    """A non-image request's arrays in the model's dtypes, each one sample of its input (no batch dimension)."""
    arrays = []
    total = len(plan.tensor_inputs)
    for index, (item, spec) in enumerate(zip(message.inputs, plan.tensor_inputs, strict=True)):
        source = item.source
        if not isinstance(source, TensorSource):
            raise InputRejected(_for_input(index, total, "This network takes arrays of numbers, not images."))
        try:
            array = np.asarray(source.values, dtype=spec.dtype)
        except (TypeError, ValueError, OverflowError):
            raise InputRejected(_for_input(index, total, f"The array cannot be read as {spec.dtype}.")) from None
        expected = spec.shape[1:]
        if array.ndim != len(expected) or any(
            isinstance(size, int) and size >= 0 and size != given
            for size, given in zip(expected, array.shape, strict=True)
        ):
            raise InputRejected(
                _for_input(
                    index, total, f"The array's shape {list(array.shape)} does not fit the model's {list(spec.shape)}."
                )
            )
        arrays.append(array)
    return arrays


def _requested(sample: Sample) -> list[str]:
    return list(sample.message.output_tensors or sample.plan.default_outputs)


def _default_outputs(postprocessings: Sequence[PostprocessingSpec], session: ModelSession) -> list[str]:
    """Without `output_tensors`: every `tensors_output` tensor; every model output when nothing is declared."""
    return requested_tensors(postprocessings, None) if postprocessings else list(session.output_names)


def _fixed_batch(session: ModelSession, input_names: Sequence[str]) -> int | None:
    for name in input_names:
        shape = session.input(name).shape
        if shape and isinstance(shape[0], int):
            return shape[0]
    return None


def _for_input(index: int, total: int, message: str) -> str:
    return message if total == 1 else f"Input {index}: {message}"


def discard_model_files(_: Hashable, plan: NetworkPlan) -> None:
    """Cache eviction: the session is dropped with the plan; its files on disk go too."""
    if plan.model_dir is not None:
        shutil.rmtree(plan.model_dir, ignore_errors=True)
