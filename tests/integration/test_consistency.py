"""Consistency under concurrency: no lost PATCH, no orphan left by a DELETE during a conversion."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from tensorgate.errors import ConcurrentUpdate
from werkzeug.test import Client

from tests.conftest import DEV_KEY, stored_state
from tests.integration.test_converter import FakeConverter, conversion_messages, lambda_context, sqs_event

HEADERS = {"X-API-KEY": DEV_KEY}


class SlowReads:
    """A repository whose reads take a moment, so two writers interleave between read and write."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def get(self, account_id: str, network_id: int) -> Any:
        found = self._inner.get(account_id, network_id)
        time.sleep(0.005)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_concurrent_patches_of_different_fields_both_persist(api: Client, aws: dict[str, Any]) -> None:
    from tensorgate import wiring

    network = api.post("/v0.7/networks", headers=HEADERS, json={"name": "start"}).json
    service = wiring.network_service()
    service._networks = SlowReads(service._networks)  # widen the read-modify-write window
    last_written: dict[str, str] = {}
    refused: list[str] = []

    def patch(field: str) -> None:
        for round_ in range(15):
            try:
                service.update("dev", network["id"], {field: f"{field}-{round_}"})
                last_written[field] = f"{field}-{round_}"
            except ConcurrentUpdate:  # told to retry: not lost, refused (the API answers 409)
                refused.append(field)

    threads = [threading.Thread(target=patch, args=(field,)) for field in ("name", "description")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS).json
    # Each writer's last accepted value survives the other's writes: no update was lost.
    assert final["name"] == last_written["name"]
    assert final["description"] == last_written["description"]
    assert len(refused) <= 3, refused


class DeletingConverter(FakeConverter):
    """Converts while the user deletes the network."""

    def __init__(self, api: Client, network_id: int) -> None:
        super().__init__()
        self.api = api
        self.network_id = network_id

    def __call__(self, source_dir: Path, output_dir: Path, network: Any) -> Any:
        response = self.api.delete(f"/v0.7/networks/{self.network_id}", headers=HEADERS)
        assert response.status_code == 204
        return super().__call__(source_dir, output_dir, network)


def test_delete_during_a_conversion_leaves_no_orphan(api: Client, aws: dict[str, Any], monkeypatch: Any) -> None:
    from tensorgate import wiring

    from functions.converter import app

    network = api.post(
        "/v0.7/networks", headers=HEADERS, data={"name": "n", "model.onnx": (io.BytesIO(b"onnx"), "model.onnx")}
    ).json
    converter = DeletingConverter(api, network["id"])
    monkeypatch.setattr(app, "service", lambda: wiring.conversion_service(converter))
    assert app.handler(sqs_event(conversion_messages(aws)), lambda_context()) == {"batchItemFailures": []}
    assert converter.calls == 1
    state = stored_state(aws)
    assert state["networks"] == [] and state["tasks"] == [] and state["objects"] == []
