"""HTTP for the client: requests sessions (one per thread), the API key header, retries honouring Retry-After."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import requests

from tensorgate_client import __version__
from tensorgate_client.errors import ApiError, ConnectionFailed

# A body that can be sent more than once: called once per attempt, it returns (data, headers).
BodyFactory = Callable[[], tuple[Any, Mapping[str, str]]]
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a request again.

    429 and 503 mean the service did nothing and asks to come back: every method is retried.
    500, 502 and 504 may follow a request that took effect, so only idempotent methods are retried
    (a create is never sent twice). Retry-After, in seconds or as an HTTP date, is honoured up to
    `max_retry_after`; without it the wait doubles from `backoff` up to `max_backoff`, with jitter.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 20.0
    max_retry_after: float = 120.0
    always: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))
    idempotent_only: frozenset[int] = field(default_factory=lambda: frozenset({500, 502, 504}))

    def should_retry(self, method: str, status: int) -> bool:
        return status in self.always or (method in IDEMPOTENT_METHODS and status in self.idempotent_only)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Transport:
    """Sends requests to the API root (`…/v0.7`); safe to share between threads."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        timeout: tuple[float, float] = (10.0, 120.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """requests does not promise a Session is thread-safe, so each thread gets its own."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = f"tensorgate-client/{__version__}"
            self._local.session = session
        return session

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.api_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        body: BodyFactory | None = None,
        authenticated: bool = True,
        timeout: tuple[float, float] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send, retrying as the policy says; an error status raises `ApiError` with the service's sentence.
        With `stream`, the body of a successful answer is read by the caller (`iter_content`)."""
        method = method.upper()
        url = self.url(path)
        attempt = 0
        while True:
            attempt += 1
            headers = {"X-API-KEY": self._api_key} if authenticated else {}
            data = None
            if body is not None:
                data, extra = body()
                headers.update(extra)
            try:
                response = self.session.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=timeout or self.timeout,
                    stream=stream,
                )
            except requests.ConnectionError as error:
                # A POST whose connection broke may have been processed: only an idempotent request goes again.
                if (method in IDEMPOTENT_METHODS or isinstance(error, requests.ConnectTimeout)) and (
                    attempt < self.retry.attempts
                ):
                    self._sleep(self.retry.delay(attempt, None))
                    continue
                raise ConnectionFailed(f"Could not reach {url}: {_reason(error)}.") from None
            except requests.Timeout:
                if method in IDEMPOTENT_METHODS and attempt < self.retry.attempts:
                    self._sleep(self.retry.delay(attempt, None))
                    continue
                raise ConnectionFailed(f"{url} did not answer within {(timeout or self.timeout)[1]:g} s.") from None
            except requests.RequestException as error:  # an invalid URL, a broken chunked answer, redirects
                raise ConnectionFailed(f"The request to {url} failed: {error}.") from None
            if response.status_code < 400:
                return response
            if self.retry.should_retry(method, response.status_code) and attempt < self.retry.attempts:
                response.close()  # a streamed answer holds its connection until closed
                self._sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                continue
            raise api_error(response)


def api_error(response: requests.Response) -> ApiError:
    """The service's `{"error", "details"}`, or a sentence made from the status when the body is not that."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        details = body.get("details") if isinstance(body.get("details"), list) else []
        return ApiError(response.status_code, body["error"], details)
    storage = _xml_message(response.text)
    if storage:
        return ApiError(response.status_code, storage)
    text = " ".join(response.text.split())[:200]
    reason = response.reason or "error"
    return ApiError(response.status_code, f"HTTP {response.status_code} {reason}" + (f": {text}" if text else "."))


def _xml_message(text: str) -> str | None:
    """S3 (the presigned POST) answers errors in XML: its <Message>."""
    if not text.lstrip().startswith("<"):
        return None
    try:
        message = ElementTree.fromstring(text).findtext("Message")
    except ElementTree.ParseError:
        return None
    return message.rstrip(".") + "." if message else None


def _reason(error: Exception) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker in text:
            return marker.lower()
    return text.split(":")[-1].strip(" ')\"") or type(error).__name__
