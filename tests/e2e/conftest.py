"""The local stack started as the README starts it (`make dev` runs `.venv/bin/tensorgate-dev`), once per session."""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_API_KEY = "tg_e2e_key_0123456789abcdef"
STARTUP_SECONDS = 120
STOP_SECONDS = 20


@dataclass
class RunningStack:
    """A `tensorgate-dev` process: where it listens, its key, and what it printed."""

    url: str  # the API root as the banner prints it, e.g. http://127.0.0.1:3000/v0.7
    api_key: str
    process: subprocess.Popen[str]
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=100_000))

    @property
    def host(self) -> str:
        """The server's root, without the API version (what a v0.7 client is configured with)."""
        return self.url.removesuffix("/v0.7")

    def printed(self) -> str:
        return "".join(self.output)


def dev_command() -> Path:
    """What `make dev` runs; the suite's own interpreter's scripts when .venv lives elsewhere."""
    command = REPO_ROOT / ".venv" / "bin" / "tensorgate-dev"
    return command if command.exists() else Path(sys.executable).parent / "tensorgate-dev"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_stack(
    with_workers: bool, environment: dict[str, str] | None = None, keep_lines: int = 100_000
) -> RunningStack:
    """`tensorgate-dev`, with `environment` added to this process's (a fault test's short timeouts, say)."""
    overrides = environment or {}
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "POWERTOOLS_"))}
    environment |= {"PORT": str(free_port()), "TENSORGATE_DEV_API_KEY": E2E_API_KEY, "PYTHONUNBUFFERED": "1"}
    environment |= overrides
    arguments = [str(dev_command())] + ([] if with_workers else ["--no-workers"])
    process = subprocess.Popen(
        arguments,
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    output: collections.deque[str] = collections.deque(maxlen=keep_lines)
    banner: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        # Drain the pipe for the whole run, so the stack never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            found = re.search(r"API:\s+(\S+)", line)
            if found and not ready.is_set():
                banner["url"] = found.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=read, name="tensorgate-dev-output", daemon=True).start()
    if not ready.wait(STARTUP_SECONDS) or "url" not in banner:
        process.kill()
        process.wait()
        pytest.fail(f"tensorgate-dev printed no 'API:' line within {STARTUP_SECONDS} s:\n{''.join(output)}")
    return RunningStack(url=banner["url"], api_key=E2E_API_KEY, process=process, output=output)


def stop_stack(stack: RunningStack) -> None:
    """Ctrl-C, as a user stops `make dev`: the process must end cleanly (exit status 0) within 20 s."""
    stack.process.send_signal(signal.SIGINT)
    try:
        status = stack.process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        stack.process.wait()
        pytest.fail(f"tensorgate-dev did not stop within {STOP_SECONDS} s of SIGINT:\n{stack.printed()}")
    assert status == 0, f"tensorgate-dev exited with {status} after SIGINT:\n{stack.printed()}"


@pytest.fixture(scope="session")
def local_stack() -> Iterator[RunningStack]:
    """The API alone (`--no-workers`): networks stay `pending`, which is all the wire tests need. No worker
    answers an endpoint's predictions, so they wait a short budget before their 202."""
    stack = start_stack(with_workers=False, environment={"PREDICT_BUDGET_SECONDS": "0.2"})
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="session")
def local_stack_with_workers() -> Iterator[RunningStack]:
    """Everything `make dev` runs: the converter and dead-letter pollers and the CPU inference worker."""
    stack = start_stack(with_workers=True)
    yield stack
    stop_stack(stack)
