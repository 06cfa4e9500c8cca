"""Retries: 429 and 503 for every method, other 5xx only when idempotent, Retry-After honoured; errors as sentences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from tensorgate_client import ApiError, Client, ConnectionFailed
from tensorgate_client.transport import RetryPolicy, parse_retry_after

URL = "http://tensorgate.test/v0.7"


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(slept: list[float]) -> Client:
    return Client("http://tensorgate.test", "tg_unit_key_0123456789", sleep=slept.append)


PAGE = {"count": 0, "next": None, "previous": None, "results": []}


@responses.activate
def test_transport_429_with_retry_after_waits_the_seconds_asked_then_succeeds(
    client: Client, slept: list[float]
) -> None:
    responses.get(f"{URL}/networks/", status=429, json={"error": "Too many requests."}, headers={"Retry-After": "3"})
    responses.get(f"{URL}/networks/", json=PAGE)

    assert client.networks.list().count == 0
    assert slept == [3.0]
    assert responses.calls[0].request.headers["X-API-KEY"] == "tg_unit_key_0123456789"


@responses.activate
def test_transport_retry_after_as_an_http_date_waits_until_that_date(client: Client, slept: list[float]) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    responses.get(f"{URL}/networks/", status=503, json={"error": "Busy."}, headers={"Retry-After": later})
    responses.get(f"{URL}/networks/", json=PAGE)

    client.networks.list()

    assert len(slept) == 1 and 27 <= slept[0] <= 30


@responses.activate
def test_transport_post_429_is_retried_but_post_500_is_not(client: Client, slept: list[float]) -> None:
    inference = f"{URL}/networks/4/inference"
    responses.post(inference, status=429, json={"error": "Slow down."})
    responses.post(inference, status=500, json={"error": "Internal error."})

    with pytest.raises(ApiError) as raised:
        client.infer(4, "https://example.com/cat.jpg")

    assert raised.value.status == 500 and raised.value.message == "Internal error."
    assert len(responses.calls) == 2 and len(slept) == 1


@responses.activate
def test_transport_get_500_is_retried_with_growing_backoff_then_raises_the_service_sentence(slept: list[float]) -> None:
    client = Client("http://tensorgate.test", "k" * 20, sleep=slept.append, retry=RetryPolicy(attempts=4, backoff=1.0))
    responses.get(f"{URL}/tasks/9/", status=502, json={"error": "The gateway timed out."})

    with pytest.raises(ApiError, match="^The gateway timed out.$"):
        client.tasks.get(9)

    assert len(responses.calls) == 4
    # Equal jitter: attempt n waits between half and all of backoff * 2**(n-1).
    assert [0.5 <= slept[0] <= 1.0, 1.0 <= slept[1] <= 2.0, 2.0 <= slept[2] <= 4.0] == [True] * 3


@responses.activate
def test_transport_4xx_is_not_retried_and_keeps_details(client: Client, slept: list[float]) -> None:
    body = {"error": "Invalid update: name is empty.", "details": [{"field": "name", "message": "is empty"}]}
    responses.patch(f"{URL}/networks/3/", status=400, json=body)

    with pytest.raises(ApiError) as raised:
        client.networks.update(3, name="x")

    assert raised.value.details == body["details"] and slept == []


@responses.activate
def test_transport_non_json_error_becomes_a_sentence_with_the_status(client: Client) -> None:
    responses.get(f"{URL}/networks/3/", status=404, body="<html>not here</html>", content_type="text/html")

    with pytest.raises(ApiError, match="HTTP 404"):
        client.networks.get(3)


@responses.activate
def test_transport_storage_xml_error_answers_its_message(client: Client) -> None:
    xml = (
        "<?xml version='1.0'?><Error><Code>EntityTooLarge</Code>"
        "<Message>Your proposed upload exceeds the maximum allowed size</Message></Error>"
    )
    responses.get(f"{URL}/networks/3/", status=400, body=xml, content_type="application/xml")

    with pytest.raises(ApiError, match="^Your proposed upload exceeds the maximum allowed size.$"):
        client.networks.get(3)


@responses.activate
def test_transport_refused_connection_is_retried_then_reported(client: Client, slept: list[float]) -> None:
    responses.get(f"{URL}/networks/", body=requests.ConnectionError("Connection refused"))

    with pytest.raises(ConnectionFailed, match="Could not reach http://tensorgate.test/v0.7/networks/"):
        client.networks.list()

    assert len(slept) == RetryPolicy().attempts - 1


def test_parse_retry_after_reads_seconds_dates_and_refuses_garbage() -> None:
    now = datetime(2026, 12, 2, 1, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Wed, 02 Dec 2026 01:00:10 GMT", now) == 10.0
    assert parse_retry_after("Wed, 02 Dec 2026 00:59:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_policy_caps_a_long_retry_after() -> None:
    assert RetryPolicy(max_retry_after=60).delay(1, "86400") == 60
