"""URL inputs: refused schemes and addresses, pinned connections, byte cap and deadline (server on 127.0.0.1)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.worker.fetch import FetchFailed, FetchPolicy, FetchRefused, fetch, refusal_reason

IMAGE = b"\x89PNG fake image bytes" * 10
LOOPBACK_ALLOWED = FetchPolicy(timeout_seconds=2, max_bytes=1000, allow_loopback=True)


class ImageServer(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        ImageServer.hosts.append(self.headers.get("Host", ""))
        if self.path == "/image.png":
            self._send(200, IMAGE)
        elif self.path == "/big-declared":
            self._send(200, b"x" * 5000)
        elif self.path == "/big-streamed":
            # No Content-Length: the cap must hold while reading.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 100)
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, IMAGE)
        elif self.path == "/redirect-local":
            self.send_response(302)
            self.send_header("Location", "/image.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/redirect-private":
            self.send_response(302)
            self.send_header("Location", "http://10.1.2.3/image.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/redirect-loop":
            self.send_response(302)
            self.send_header("Location", "/redirect-loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"missing")

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout test)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ImageServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def resolving_to(address: str) -> Any:
    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolver


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/image.png",
        "file:///etc/passwd",
        "gopher://example.com/",
        "s3://bucket/key",
        "example.com/x.png",
    ],
)
def test_fetch_non_http_scheme_is_refused(url: str) -> None:
    with pytest.raises(FetchRefused, match="must use http or https"):
        fetch(url, LOOPBACK_ALLOWED)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # the instance metadata service
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_fetch_host_resolving_to_a_non_public_address_is_refused(address: str, reason: str) -> None:
    # Given a host name that resolves to a non-public address (DNS points wherever it likes)
    with pytest.raises(FetchRefused, match=reason):
        fetch("http://images.example.com/cat.png", FetchPolicy(timeout_seconds=2), resolver=resolving_to(address))


def test_fetch_literal_loopback_url_is_refused_by_default(server: str) -> None:
    with pytest.raises(FetchRefused, match="loopback"):
        fetch(f"{server}/image.png", FetchPolicy(timeout_seconds=2))


def test_fetch_refuses_a_name_with_one_private_answer_among_public_ones() -> None:
    def mixed(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    with pytest.raises(FetchRefused, match="private"):
        fetch("http://mixed.example.com/x.png", FetchPolicy(timeout_seconds=2), resolver=mixed)


def test_refusal_reason_allows_public_addresses() -> None:
    assert refusal_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal_reason(ipaddress.ip_address("2606:2800:220:1::1")) is None
    assert refusal_reason(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    # The test allowance covers loopback only, never private or link-local ranges
    assert refusal_reason(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) == "a private address"
    assert refusal_reason(ipaddress.ip_address("169.254.169.254"), allow_loopback=True) == "a link-local address"


def test_fetch_downloads_from_loopback_when_the_setting_allows_it(server: str) -> None:
    assert fetch(f"{server}/image.png", LOOPBACK_ALLOWED) == IMAGE


def test_fetch_connects_to_the_checked_address_and_keeps_the_host_name(server: str) -> None:
    # images.invalid resolves nowhere on this machine: the download can only succeed by connecting
    # to the address our resolver answered (pinning), while the request still names the host.
    port = server.rsplit(":", 1)[1]
    ImageServer.hosts.clear()
    body = fetch(f"http://images.invalid:{port}/image.png", LOOPBACK_ALLOWED, resolver=resolving_to("127.0.0.1"))
    assert body == IMAGE
    assert ImageServer.hosts == [f"images.invalid:{port}"]


def test_fetch_body_over_the_cap_is_refused_from_its_content_length(server: str) -> None:
    with pytest.raises(FetchRefused, match="larger than 1000 bytes"):
        fetch(f"{server}/big-declared", LOOPBACK_ALLOWED)


def test_fetch_streamed_body_over_the_cap_is_refused_while_reading(server: str) -> None:
    with pytest.raises(FetchRefused, match="larger than 1000 bytes"):
        fetch(f"{server}/big-streamed", LOOPBACK_ALLOWED)


def test_fetch_slow_server_times_out(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="did not answer within 0.5 seconds"):
        fetch(f"{server}/slow", FetchPolicy(timeout_seconds=0.5, allow_loopback=True))
    assert time.monotonic() - started < 2


def test_fetch_http_error_status_fails_with_the_status(server: str) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch(f"{server}/nothing-here", LOOPBACK_ALLOWED)


def test_fetch_follows_a_redirect_and_checks_its_target_again(server: str) -> None:
    assert fetch(f"{server}/redirect-local", LOOPBACK_ALLOWED) == IMAGE
    with pytest.raises(FetchRefused, match="private"):
        fetch(f"{server}/redirect-private", LOOPBACK_ALLOWED)
    with pytest.raises(FetchFailed, match="redirected more than 3 times"):
        fetch(f"{server}/redirect-loop", LOOPBACK_ALLOWED)


def test_fetch_unresolvable_host_fails_with_a_sentence() -> None:
    def nowhere(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(FetchFailed, match="does not resolve"):
        fetch("https://no-such-host.invalid/x.png", resolver=nowhere)


def test_fetch_closed_port_fails_with_a_sentence() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed, match="could not be downloaded"):
        fetch(f"http://127.0.0.1:{port}/x.png", LOOPBACK_ALLOWED)
