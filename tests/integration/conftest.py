"""Fixtures the integration files share."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_converter import conversion_messages, lambda_context, sqs_event


@pytest.fixture
def convert(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the converter handler on every queued upload event, as the conversion queue's poller would."""
    from tensorgate import wiring

    from functions.converter import app

    monkeypatch.setattr(app, "service", lambda: wiring.conversion_service(app.convert))

    def run() -> None:
        messages = conversion_messages(aws)
        assert messages
        assert app.handler(sqs_event(messages), lambda_context()) == {"batchItemFailures": []}

    return run
