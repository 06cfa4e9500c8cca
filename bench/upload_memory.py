"""Upload memory: the peak RSS of `tensorgate networks create` sending a 1 GiB archive, against a baseline.

The command runs as users run it, in its own process, against a local HTTP sink that plays the API (a
JSON create answering a presigned POST that points back at the sink) and counts the upload's bytes
without keeping them. The archive is a sparse file, so the disk is not the bottleneck. Peak RSS is
GNU time's maximum resident set size of the command's process. Two runs with the 1 GiB archive: output
piped (no progress bar) and on a pseudo-terminal (the upload bar redrawn as it goes); the baseline is
the same command creating a 1 KiB archive. A third run sends a SavedModel folder whose variables file
is 1 GiB: the command zips it to a temporary file first (its own bar stage), then uploads that.

Goal (issue 14): peak RSS of the 1 GiB upload at most 150 MB; the archive is never read into memory,
so the figure stays close to the baseline whatever the archive's size.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMMAND = Path(sys.executable).parent / "tensorgate"
GOAL_BYTES = 150 * 1000 * 1000
GIB = 1024**3


class Sink:
    """The API's create and the storage's presigned POST, counting what arrives."""

    def __init__(self) -> None:
        self.received: list[int] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = int(self.headers.get("Content-Length") or 0)
                remaining, tail = length, b""
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    tail = (tail + chunk)[-256:]
                if self.path.startswith("/v0.7/networks"):
                    host = self.headers["Host"]
                    body = {
                        "id": 1, "name": "big", "description": "", "metadata": {}, "framework": "tensorflow-1.x",
                        "preprocessing": None, "postprocessings": [], "task_id": 1, "status": "pending",
                        "update_date": "2026-12-02T00:00:00Z", "create_date": "2026-12-02T00:00:00Z",
                        "upload": {"url": f"http://{host}/upload", "fields": {"key": "uploads/a/1/archive/big.tar.gz"},
                                   "key": "uploads/a/1/archive/big.tar.gz", "max_bytes": 5 * GIB, "expires_in": 900},
                    }  # fmt: skip
                    self._answer(201, json.dumps(body).encode())
                    return
                sink.received.append(length - remaining if tail.rstrip().endswith(b"--") else -1)
                self._answer(204, b"")

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


def measure(archive: Path, url: str, on_terminal: bool) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of one `tensorgate networks create PATH --no-wait`."""
    with tempfile.NamedTemporaryFile(suffix=".time") as report:
        command = ["/usr/bin/time", "-f", "%M", "-o", report.name, str(COMMAND), "networks", "create", str(archive)]
        command += ["--name", "big", "--no-wait"]
        env = os.environ | {"TENSORGATE_API_URL": url, "TENSORGATE_API_KEY": "tg_bench_key_0123456789"}
        started = time.perf_counter()
        if on_terminal:
            status = run_on_terminal(command, env | {"TERM": "xterm-256color"})
        else:
            status = subprocess.run(command, env=env, capture_output=True, timeout=1800).returncode
        elapsed = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"the command exited with {status}")
        kibibytes = int(Path(report.name).read_text().split()[-1])
    return kibibytes * 1024, elapsed


def run_on_terminal(command: list[str], env: dict[str, str]) -> int:
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                if not os.read(leader, 65536):
                    break
            except OSError:
                break
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=60)


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def saved_model_folder(path: Path, size: int) -> Path:
    """A SavedModel's layout, its variables file sparse: too large for one request, so it is zipped first."""
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"graph" * 200)
    (path / "variables" / "variables.index").write_bytes(b"index" * 20)
    sparse_file(path / "variables" / "variables.data-00000-of-00001", size)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="archive size in GiB")
    args = parser.parse_args()
    sink = Sink()
    with tempfile.TemporaryDirectory() as folder:
        small = sparse_file(Path(folder) / "small.tar.gz", 1024)
        large = sparse_file(Path(folder) / "big.tar.gz", int(args.gib * GIB))
        baseline, _ = measure(small, sink.url, on_terminal=False)
        piped, piped_seconds = measure(large, sink.url, on_terminal=False)
        watched, watched_seconds = measure(large, sink.url, on_terminal=True)
        large.unlink()
        folder_model = saved_model_folder(Path(folder) / "saved_model", int(args.gib * GIB))
        zipped, zipped_seconds = measure(folder_model, sink.url, on_terminal=False)
    size = int(args.gib * GIB)
    assert len(sink.received) == 4 and all(count > size for count in sink.received[1:]), sink.received
    print(f"archive: {size / GIB:g} GiB ({size} bytes), sparse; sink received {sink.received[1:]} bytes")
    print(f"{'run':<34}{'peak RSS':>12}{'vs baseline':>13}{'time':>9}{'rate':>12}")
    print(f"{'baseline: 1 KiB archive':<34}{baseline / 1e6:>9.1f} MB{1.0:>12.2f}x")
    for label, peak, seconds in (
        (f"{size / GIB:g} GiB archive, output piped", piped, piped_seconds),
        (f"{size / GIB:g} GiB archive, on a terminal", watched, watched_seconds),
        (f"{size / GIB:g} GiB folder, zipped then sent", zipped, zipped_seconds),
    ):
        rate = size / seconds / 1e6
        print(f"{label:<34}{peak / 1e6:>9.1f} MB{peak / baseline:>12.2f}x{seconds:>8.1f}s{rate:>8.0f} MB/s")
    worst = max(piped, watched, zipped)
    verdict = "meets" if worst <= GOAL_BYTES else "MISSES"
    print(f"goal: peak RSS <= {GOAL_BYTES / 1e6:.0f} MB: {verdict} ({worst / 1e6:.1f} MB)")
    if worst > GOAL_BYTES:
        sys.exit(1)


if __name__ == "__main__":
    main()
