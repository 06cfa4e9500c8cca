"""Garbage collection pauses for a Lambda sandbox's cold start only, and comes back after the first request."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from tensorgate import coldstart


@pytest.fixture
def collector() -> Iterator[None]:
    yield
    coldstart.resume()
    gc.unfreeze()
    gc.enable()


def test_coldstart_in_a_lambda_sandbox_pauses_collection_until_resumed_then_freezes_what_is_loaded(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "TasksApi")
    coldstart.pause()
    assert not gc.isenabled()
    coldstart.resume()
    assert gc.isenabled() and gc.get_freeze_count() > 0
    # Later requests change nothing
    gc.unfreeze()
    coldstart.resume()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_coldstart_outside_lambda_leaves_collection_alone(collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    coldstart.pause()
    assert gc.isenabled()
    coldstart.resume()
    assert gc.get_freeze_count() == 0
