"""The onnxruntime side of the worker: providers, sessions, runs, and a byte-bounded model cache (no queues, no AWS)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import onnxruntime as ort

log = logging.getLogger("inference_worker.runtime")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# onnxruntime's type strings to numpy dtypes (the ones a converted network can take or return).
_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
_OPTIMIZATION_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class ModelLoadFailed(Exception):
    """onnxruntime could not open a model with any provider."""


class ModelRunFailed(Exception):
    """onnxruntime refused to run a batch (wrong shapes or dtypes, or a kernel error)."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Session settings. `intra_op_threads=0` lets onnxruntime use every core of the machine."""

    prefer_gpu: bool = True
    device_id: int = 0
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    # CUDA's convolution algorithm search: "EXHAUSTIVE" finds the fastest kernels once per shape.
    cudnn_conv_algo_search: str = "HEURISTIC"
    # Idle intra-op threads spin by default; on a CPU worker that steals the cores preprocessing needs.
    allow_spinning: bool = True


@dataclass(frozen=True)
class TensorMeta:
    """One model input or output: numpy dtype name and shape with symbols (str) or None for dynamic dims."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.dtype)


def _meta(node: Any) -> TensorMeta:
    numpy_type = _DTYPES.get(node.type)
    dtype = np.dtype(numpy_type).name if numpy_type is not None else str(node.type)
    shape = tuple(dim if isinstance(dim, int | str) else None for dim in (node.shape or []))
    return TensorMeta(name=node.name, dtype=dtype, shape=shape)


def select_providers(available: Sequence[str] | None = None, prefer_gpu: bool = True) -> list[str]:
    """CUDA first when onnxruntime offers it, CPU always last (the fallback)."""
    offered = list(ort.get_available_providers() if available is None else available)
    return [CUDA, CPU] if prefer_gpu and CUDA in offered else [CPU]


def session_options(options: RuntimeOptions) -> ort.SessionOptions:
    settings = ort.SessionOptions()
    settings.graph_optimization_level = _OPTIMIZATION_LEVELS[options.graph_optimization]
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.intra_op_num_threads = options.intra_op_threads
    settings.inter_op_num_threads = options.inter_op_threads
    settings.log_severity_level = 3
    settings.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.allow_spinning else "0")
    return settings


class ModelSession:
    """One opened model: its signature, the providers it runs on, and `run`."""

    def __init__(self, session: Any, nbytes: int) -> None:
        self._session = session
        self.nbytes = nbytes
        self.inputs = [_meta(node) for node in session.get_inputs()]
        self.outputs = [_meta(node) for node in session.get_outputs()]
        self.providers: list[str] = list(session.get_providers())

    @property
    def input_names(self) -> list[str]:
        return [meta.name for meta in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [meta.name for meta in self.outputs]

    def input(self, name: str) -> TensorMeta:
        return next(meta for meta in self.inputs if meta.name == name)

    def run(
        self, batch_inputs: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run one batch; every input array carries the batch dimension first."""
        names = list(output_names) if output_names else self.output_names
        try:
            values = self._session.run(names, dict(batch_inputs))
        except Exception as error:  # onnxruntime raises its own untyped exceptions
            shapes = {name: list(array.shape) for name, array in batch_inputs.items()}
            raise ModelRunFailed(f"onnxruntime could not run inputs shaped {shapes}: {_first_line(error)}") from error
        return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}


SessionFactory = Callable[..., Any]


class Runtime:
    """Opens sessions on the best provider this machine has; falls back to CPU when CUDA fails.

    The provider choice is made and logged once, when the runtime is built at worker start. A CUDA
    session that cannot be created (driver, cuDNN or memory missing) is retried on CPU, and the runtime
    then stays on CPU so every later model does not pay the failed attempt again.
    """

    def __init__(
        self,
        options: RuntimeOptions | None = None,
        available: Sequence[str] | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.options = options or RuntimeOptions()
        self._factory = session_factory or ort.InferenceSession
        self._lock = threading.Lock()
        offered = list(ort.get_available_providers() if available is None else available)
        self.providers = select_providers(offered, self.options.prefer_gpu)
        log.info(
            "onnxruntime %s: running on %s (available: %s)", ort.__version__, self.providers[0], ", ".join(offered)
        )

    @property
    def on_gpu(self) -> bool:
        return self.providers[0] == CUDA

    def _provider_arguments(self, providers: list[str]) -> list[Any]:
        arguments: list[Any] = []
        for provider in providers:
            if provider == CUDA:
                arguments.append(
                    (
                        CUDA,
                        {
                            "device_id": self.options.device_id,
                            "cudnn_conv_algo_search": self.options.cudnn_conv_algo_search,
                        },
                    )
                )
            else:
                arguments.append(provider)
        return arguments

    def open(self, model: str | Path | bytes, nbytes: int | None = None) -> ModelSession:
        """A session for a model file path (external data beside it) or the model's bytes.

        `nbytes` is what the model counts for in the cache: by default the bytes or the file's size;
        a model with external data passes the size of all its files.
        """
        source = str(model) if isinstance(model, Path) else model
        if nbytes is None:
            nbytes = len(model) if isinstance(model, bytes) else Path(model).stat().st_size
        providers = self.providers
        try:
            session = self._create(source, providers)
        except Exception as error:
            if providers[0] != CUDA:
                raise ModelLoadFailed(f"onnxruntime cannot open the model: {_first_line(error)}") from error
            log.warning("CUDA session creation failed (%s); falling back to CPU", _first_line(error))
            self._fall_back_to_cpu()
            try:
                session = self._create(source, [CPU])
            except Exception as cpu_error:
                raise ModelLoadFailed(f"onnxruntime cannot open the model: {_first_line(cpu_error)}") from cpu_error
        opened = ModelSession(session, nbytes)
        if providers[0] == CUDA and CUDA not in opened.providers:
            # onnxruntime may drop CUDA silently (missing libraries): say so once, then stay on CPU.
            log.warning("onnxruntime opened the model without CUDA (providers: %s)", ", ".join(opened.providers))
            self._fall_back_to_cpu()
        return opened

    def _create(self, source: str | bytes, providers: list[str]) -> Any:
        return self._factory(
            source, sess_options=session_options(self.options), providers=self._provider_arguments(providers)
        )

    def _fall_back_to_cpu(self) -> None:
        with self._lock:
            if self.providers != [CPU]:
                self.providers = [CPU]
                log.warning("onnxruntime: running on %s from now on", CPU)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


Value = TypeVar("Value", bound=Sized)


@dataclass
class _Loading(Generic[Value]):
    done: threading.Event
    value: Value | None = None
    error: BaseException | None = None


class ModelCache(Generic[Value]):
    """Least recently used models, bounded by bytes; each key is loaded once however many ask at once.

    Keys are (account, network, model version), so a redeployed model never answers from a stale
    session. The first caller of a key loads it while later callers of that key wait for the same
    result (single flight); callers of other keys are not blocked. A failed load is reported to every
    waiter and forgotten, so the next request tries again. A model larger than the whole budget is
    still kept (alone): the worker must serve it.
    """

    def __init__(self, max_bytes: int, on_evict: Callable[[Hashable, Value], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self._on_evict = on_evict
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._loading: dict[Hashable, _Loading[Value]] = {}
        self.loads = 0

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(value.nbytes for value in self._entries.values())

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def get(self, key: Hashable, load: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            pending = self._loading.get(key)
            leader = pending is None
            if pending is None:
                pending = _Loading(threading.Event())
                self._loading[key] = pending
        if not leader:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            assert pending.value is not None
            return pending.value
        try:
            value = load()
        except BaseException as error:
            with self._lock:
                del self._loading[key]
            pending.error = error
            pending.done.set()
            raise
        with self._lock:
            self.loads += 1
            self._entries[key] = value
            evicted = self._evict()
            del self._loading[key]
        pending.value = value
        pending.done.set()
        for old_key, old_value in evicted:
            log.info("model cache: evicted %s (%d bytes)", old_key, old_value.nbytes)
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)
        return value

    def _evict(self) -> list[tuple[Hashable, Value]]:
        evicted: list[tuple[Hashable, Value]] = []
        total = sum(value.nbytes for value in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            key, value = self._entries.popitem(last=False)
            total -= value.nbytes
            evicted.append((key, value))
        return evicted

    def discard(self, key: Hashable) -> None:
        with self._lock:
            value = self._entries.pop(key, None)
        if value is not None and self._on_evict is not None:
            self._on_evict(key, value)
