"""RecognitionService against in-memory ports: current versions under concurrent writers, cascades."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tensorgate.errors import ConcurrentUpdate, RecognitionSpecNotFound
from tensorgate.models import Network, NetworkStatus, RecognitionSpec
from tensorgate.services.recognition import RecognitionService

from tests.fakes import CountingIdAllocator, InMemoryNetworkRepository, InMemoryRecognitionRepository

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OUTPUTS = [{"labels": {"roi": "NONE", "labels": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}}]
POST = [{"classification": {"output_tensor": "prob", "thresholds": [0.5, 0.5]}}]


def service() -> tuple[RecognitionService, InMemoryRecognitionRepository]:
    store, networks = InMemoryRecognitionRepository(), InMemoryNetworkRepository()
    networks.put_new(
        Network(
            account_id="acme",
            network_id=1,
            name="net",
            framework="onnx",
            task_id=1,
            status=NetworkStatus.READY,
            upload_prefix="uploads/acme/1/",
            outputs=[{"name": "prob", "dtype": "float32", "shape": ["N", 2]}],
            create_date=NOW,
            update_date=NOW,
        )
    )
    return RecognitionService(store, networks, CountingIdAllocator(), clock=lambda: NOW, pause=lambda _: None), store


def version_fields(spec_id: int) -> dict[str, Any]:
    return {"spec_id": spec_id, "network_id": 1, "post_processings": POST}


def test_first_version_stays_current_when_another_writer_set_one_meanwhile() -> None:
    recognition, store = service()
    spec = recognition.create_spec("acme", {"name": "pets", "outputs": OUTPUTS})
    played = []

    def another_version_became_current(updated: RecognitionSpec) -> None:
        # Another request's version became current between this request's read and its write.
        if not played:
            played.append(True)
            current = store.specs[("acme", spec.spec_id)]
            store.specs[("acme", spec.spec_id)] = current.model_copy(
                update={"current_version_id": 99, "version": current.version + 1}
            )

    store.before_replace = another_version_became_current
    recognition.create_version("acme", version_fields(spec.spec_id))
    assert recognition.get_spec("acme", spec.spec_id).current_version_id == 99


def test_update_gives_up_with_a_sentence_after_every_attempt_collided() -> None:
    recognition, store = service()
    spec = recognition.create_spec("acme", {"name": "pets", "outputs": OUTPUTS})

    def always_changed(updated: RecognitionSpec) -> None:
        current = store.specs[("acme", spec.spec_id)]
        store.specs[("acme", spec.spec_id)] = current.model_copy(update={"version": current.version + 1})

    store.before_replace = always_changed
    with pytest.raises(ConcurrentUpdate, match="try again"):
        recognition.update_spec("acme", spec.spec_id, {"name": "animals"})


def test_version_created_while_its_spec_is_deleted_is_removed_too() -> None:
    recognition, store = service()
    spec = recognition.create_spec("acme", {"name": "pets", "outputs": OUTPUTS})
    store.before_replace = lambda updated: store.delete_spec("acme", spec.spec_id)
    with pytest.raises(RecognitionSpecNotFound):
        recognition.create_version("acme", version_fields(spec.spec_id))
    assert store.versions == {}


def test_network_cascade_deletes_only_that_networks_versions_of_that_account() -> None:
    recognition, store = service()
    spec = recognition.create_spec("acme", {"name": "pets", "outputs": OUTPUTS})
    version = recognition.create_version("acme", version_fields(spec.spec_id))
    recognition.delete_network_versions("someone-else", 1)
    assert store.get_version("acme", version.version_id) is not None
    recognition.delete_network_versions("acme", 1)
    assert store.get_version("acme", version.version_id) is None
    assert recognition.get_spec("acme", spec.spec_id).current_version_id is None
