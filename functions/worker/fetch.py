"""Downloading an http(s) image input safely: public addresses only, pinned connections, a deadline and a byte cap."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

CHUNK_BYTES = 64 * 1024
USER_AGENT = "Tensorgate-worker/0.1"
REDIRECTS = (301, 302, 303, 307, 308)

Resolver = Callable[..., list[tuple[Any, ...]]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchFailed(Exception):
    """The image URL could not be downloaded; `message` is one sentence for the task's error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FetchRefused(FetchFailed):
    """The URL is not one the worker may download (scheme, address, size)."""


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3
    # Only tests turn this on, to serve images from 127.0.0.1; private and link-local stay refused.
    allow_loopback: bool = False


def refusal_reason(address: IpAddress, allow_loopback: bool = False) -> str | None:
    """Why the worker must not connect to `address`, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def fetch(url: str, policy: FetchPolicy | None = None, resolver: Resolver = socket.getaddrinfo) -> bytes:
    """The body of `url` (following a few redirects, each checked again), or FetchFailed with the reason."""
    policy = policy or FetchPolicy()
    deadline = time.monotonic() + policy.timeout_seconds
    current = url
    for _ in range(policy.max_redirects + 1):
        response_or_location = _get(current, policy, deadline, resolver)
        if isinstance(response_or_location, bytes):
            return response_or_location
        current = urljoin(current, response_or_location)
    raise FetchFailed(f"The image URL redirected more than {policy.max_redirects} times.")


def _get(url: str, policy: FetchPolicy, deadline: float, resolver: Resolver) -> bytes | str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"The image URL must use http or https, not {scheme or 'no scheme'}.")
    host = parts.hostname
    if not host:
        raise FetchRefused("The image URL has no host name.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchRefused("The image URL has an invalid port.") from None
    address = _resolve(host, port, resolver, policy.allow_loopback)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = _connection(scheme, host, port, address, _remaining(deadline, policy))
    try:
        connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        response = connection.getresponse()
        if response.status in REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise FetchFailed(f"The image URL answered HTTP {response.status} without a Location.")
            return location
        if response.status != 200:
            raise FetchFailed(f"The image URL answered HTTP {response.status} instead of the image.")
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
            raise FetchRefused(_too_large(policy.max_bytes))
        return _read_capped(connection, response, policy, deadline)
    except FetchFailed:
        raise
    except TimeoutError:
        raise FetchFailed(f"The image URL did not answer within {policy.timeout_seconds:g} seconds.") from None
    except ssl.SSLError as error:
        raise FetchFailed(f"The TLS connection to the image URL failed ({error.reason or 'handshake'}).") from None
    except (OSError, http.client.HTTPException) as error:
        raise FetchFailed(f"The image URL could not be downloaded ({type(error).__name__}).") from None
    finally:
        connection.close()


def _resolve(host: str, port: int, resolver: Resolver, allow_loopback: bool) -> str:
    """The address to connect to; every address the name resolves to must be allowed (no mixed answers)."""
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchFailed(f"The image URL's host {host!r} does not resolve.") from None
    addresses = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    if not addresses:
        raise FetchFailed(f"The image URL's host {host!r} does not resolve.")
    for address in addresses:
        reason = refusal_reason(address, allow_loopback)
        if reason is not None:
            raise FetchRefused(f"The image URL's host {host!r} resolves to {reason}, which the service does not fetch.")
    return str(addresses[0])


def _connection(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return _PinnedHTTPSConnection(host, port, address, timeout)
    return _PinnedHTTPConnection(host, port, address, timeout)


def _remaining(deadline: float, policy: FetchPolicy) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchFailed(f"The image URL did not answer within {policy.timeout_seconds:g} seconds.")
    return left


def _read_capped(
    connection: http.client.HTTPConnection, response: http.client.HTTPResponse, policy: FetchPolicy, deadline: float
) -> bytes:
    body = bytearray()
    while True:
        if connection.sock is not None:
            connection.sock.settimeout(_remaining(deadline, policy))
        chunk = response.read(CHUNK_BYTES)
        if not chunk:
            return bytes(body)
        body.extend(chunk)
        if len(body) > policy.max_bytes:
            raise FetchRefused(_too_large(policy.max_bytes))


def _too_large(max_bytes: int) -> str:
    return f"The image at the URL is larger than {max_bytes} bytes, the most an inference input may be."


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, not to whatever the name resolves to a moment later."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate verified against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
