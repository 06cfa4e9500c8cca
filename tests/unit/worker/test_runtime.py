"""The onnxruntime wrapper on a tiny model built here: runs, metadata, provider fallback, the model cache."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from functions.worker.runtime import (
    CPU,
    CUDA,
    ModelCache,
    ModelLoadFailed,
    ModelRunFailed,
    Runtime,
    RuntimeOptions,
    select_providers,
)
from tests.unit.worker.tiny_models import channel_mean_model


def test_runtime_runs_a_batch_and_matches_numpy() -> None:
    # Given a session on the tiny model
    session = Runtime(available=[CPU]).open(channel_mean_model())
    batch = np.random.default_rng(0).random((5, 4, 4, 3), dtype=np.float32)
    # When a batch of 5 runs
    outputs = session.run({"image": batch}, ["mean", "scaled"])
    # Then each row is that sample's channel mean (and twice it)
    np.testing.assert_allclose(outputs["mean"], batch.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(outputs["scaled"], 2 * batch.mean(axis=(1, 2)), rtol=1e-5)


def test_runtime_run_without_output_names_returns_every_output() -> None:
    session = Runtime(available=[CPU]).open(channel_mean_model())
    outputs = session.run({"image": np.zeros((1, 4, 4, 3), np.float32)})
    assert sorted(outputs) == ["mean", "scaled"]


def test_runtime_metadata_names_dtypes_and_symbolic_shapes() -> None:
    session = Runtime(available=[CPU]).open(channel_mean_model(batch="batch"))
    assert [(m.name, m.dtype, m.shape) for m in session.inputs] == [("image", "float32", ("batch", 4, 4, 3))]
    assert [(m.name, m.dtype, m.shape) for m in session.outputs] == [
        ("mean", "float32", ("batch", 3)),
        ("scaled", "float32", ("batch", 3)),
    ]
    assert session.providers == [CPU]


def test_runtime_opens_a_model_file_and_counts_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(channel_mean_model())
    session = Runtime(available=[CPU]).open(path)
    assert session.nbytes == path.stat().st_size
    assert Runtime(available=[CPU]).open(path, nbytes=12345).nbytes == 12345


def test_runtime_wrong_input_shape_raises_model_run_failed() -> None:
    session = Runtime(available=[CPU]).open(channel_mean_model())
    with pytest.raises(ModelRunFailed, match=r"inputs shaped \{'image': \[1, 5, 4, 3\]\}"):
        session.run({"image": np.zeros((1, 5, 4, 3), np.float32)})


def test_runtime_corrupt_model_raises_model_load_failed() -> None:
    with pytest.raises(ModelLoadFailed, match="cannot open the model"):
        Runtime(available=[CPU]).open(b"not an onnx model")


@pytest.mark.parametrize(
    ("available", "prefer_gpu", "expected"),
    [
        ([CPU], True, [CPU]),
        (["AzureExecutionProvider", CPU], True, [CPU]),
        ([CUDA, CPU], True, [CUDA, CPU]),
        (["TensorrtExecutionProvider", CUDA, CPU], True, [CUDA, CPU]),
        ([CUDA, CPU], False, [CPU]),
    ],
)
def test_select_providers_prefers_cuda_and_always_ends_on_cpu(
    available: list[str], prefer_gpu: bool, expected: list[str]
) -> None:
    assert select_providers(available, prefer_gpu) == expected


def test_select_providers_on_this_machine_falls_back_to_cpu() -> None:
    # The test machine has no GPU: onnxruntime offers no CUDA provider, and the choice is CPU.
    assert CUDA not in ort.get_available_providers()
    assert select_providers() == [CPU]
    assert Runtime().providers == [CPU]


def test_runtime_logs_its_provider_choice_once_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="inference_worker.runtime"):
        runtime = Runtime(available=[CPU])
        runtime.open(channel_mean_model())
        runtime.open(channel_mean_model())
    choices = [record.getMessage() for record in caplog.records if "running on" in record.getMessage()]
    assert len(choices) == 1 and "CPUExecutionProvider" in choices[0]


class CudaBrokenFactory:
    """onnxruntime's InferenceSession, except that asking for CUDA fails (no driver, no cuDNN)."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def __call__(self, source: Any, sess_options: Any, providers: list[Any]) -> Any:
        self.calls.append(providers)
        names = [provider[0] if isinstance(provider, tuple) else provider for provider in providers]
        if CUDA in names:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected\nmore detail")
        return ort.InferenceSession(source, sess_options=sess_options, providers=providers)


def test_runtime_cuda_listed_but_session_creation_fails_falls_back_to_cpu(caplog: pytest.LogCaptureFixture) -> None:
    # Given onnxruntime lists CUDA, but creating a CUDA session fails
    factory = CudaBrokenFactory()
    with caplog.at_level(logging.INFO, logger="inference_worker.runtime"):
        runtime = Runtime(available=[CUDA, CPU], session_factory=factory)
        assert runtime.providers == [CUDA, CPU] and runtime.on_gpu
        # When a model opens
        session = runtime.open(channel_mean_model())
        # Then it runs on CPU, correctly
        outputs = session.run({"image": np.ones((2, 4, 4, 3), np.float32)}, ["mean"])
    np.testing.assert_allclose(outputs["mean"], np.ones((2, 3)))
    assert session.providers == [CPU]
    assert "no CUDA-capable device" in caplog.text
    # And the runtime stays on CPU: the next model does not try CUDA again
    runtime.open(channel_mean_model())
    assert runtime.providers == [CPU] and not runtime.on_gpu
    assert len(factory.calls) == 3
    assert factory.calls[0][0][0] == CUDA and factory.calls[0][0][1]["device_id"] == 0
    assert factory.calls[1:] == [[CPU], [CPU]]


def test_runtime_cuda_silently_dropped_by_onnxruntime_switches_to_cpu() -> None:
    # onnxruntime itself ignores an unavailable provider with a warning: the session opens on CPU.
    runtime = Runtime(available=[CUDA, CPU])
    session = runtime.open(channel_mean_model())
    assert session.providers == [CPU]
    assert runtime.providers == [CPU]


def test_runtime_options_reach_the_session() -> None:
    seen: dict[str, Any] = {}

    def factory(source: Any, sess_options: Any, providers: list[Any]) -> Any:
        seen["options"] = sess_options
        return ort.InferenceSession(source, sess_options=sess_options, providers=providers)

    Runtime(
        RuntimeOptions(intra_op_threads=1, graph_optimization="basic"), available=[CPU], session_factory=factory
    ).open(channel_mean_model())
    assert seen["options"].intra_op_num_threads == 1
    assert seen["options"].graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


# ---- the model cache -----------------------------------------------------------------------------


@dataclass
class Loaded:
    name: str
    nbytes: int


def test_cache_loads_a_key_once_when_many_ask_together() -> None:
    # Given 16 requests for the same network arriving together
    cache: ModelCache[Loaded] = ModelCache(max_bytes=1000)
    loads: list[str] = []
    start = threading.Barrier(16)
    results: list[Loaded] = []

    def load() -> Loaded:
        loads.append("model")
        time.sleep(0.2)  # a slow S3 download and session creation
        return Loaded("model", 10)

    def ask() -> None:
        start.wait()
        results.append(cache.get(("dev", 1, "v1"), load))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the model loaded once and every request got that one session
    assert loads == ["model"]
    assert len(results) == 16 and all(result is results[0] for result in results)
    assert cache.loads == 1


def test_cache_loads_different_keys_concurrently() -> None:
    # Two loads that each wait for the other would deadlock if one key's load blocked the cache.
    cache: ModelCache[Loaded] = ModelCache(max_bytes=1000)
    both = threading.Barrier(2, timeout=5)

    def load(name: str) -> Loaded:
        both.wait()
        return Loaded(name, 1)

    results: dict[str, Loaded] = {}
    threads = [
        threading.Thread(target=lambda n=name: results.setdefault(n, cache.get(n, lambda: load(n))))
        for name in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["a", "b"]


def test_cache_failed_load_reaches_every_waiter_and_is_retried_later() -> None:
    cache: ModelCache[Loaded] = ModelCache(max_bytes=1000)
    attempts = []
    gate = threading.Event()
    errors: list[BaseException] = []

    def failing() -> Loaded:
        attempts.append(1)
        gate.wait(5)
        raise ModelLoadFailed("broken model")

    def ask() -> None:
        try:
            cache.get("k", failing)
        except ModelLoadFailed as error:
            errors.append(error)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join()
    assert len(attempts) == 1 and len(errors) == 4
    # The failure is not cached: the next request loads again
    assert cache.get("k", lambda: Loaded("fixed", 1)).name == "fixed"


def test_cache_evicts_least_recently_used_by_bytes() -> None:
    evicted: list[str] = []
    cache: ModelCache[Loaded] = ModelCache(max_bytes=100, on_evict=lambda key, value: evicted.append(value.name))
    cache.get("a", lambda: Loaded("a", 40))
    cache.get("b", lambda: Loaded("b", 40))
    cache.get("a", lambda: Loaded("a-again", 40))  # a is used: b is now the least recent
    cache.get("c", lambda: Loaded("c", 40))
    assert evicted == ["b"]
    assert cache.keys() == ["a", "c"] and cache.total_bytes == 80
    # Reloading b (a miss) evicts a, now the least recently used
    assert cache.get("b", lambda: Loaded("b2", 40)).name == "b2"
    assert evicted == ["b", "a"]


def test_cache_keeps_a_model_larger_than_the_budget_alone() -> None:
    evicted: list[str] = []
    cache: ModelCache[Loaded] = ModelCache(max_bytes=100, on_evict=lambda key, value: evicted.append(value.name))
    cache.get("small", lambda: Loaded("small", 10))
    huge = cache.get("huge", lambda: Loaded("huge", 500))
    assert huge.name == "huge" and cache.keys() == ["huge"] and evicted == ["small"]


def test_cache_keys_by_version_so_a_redeploy_loads_the_new_model() -> None:
    cache: ModelCache[Loaded] = ModelCache(max_bytes=1000)
    first = cache.get(("dev", 1, "sha-a"), lambda: Loaded("a", 1))
    second = cache.get(("dev", 1, "sha-b"), lambda: Loaded("b", 1))
    assert (first.name, second.name) == ("a", "b") and cache.loads == 2
