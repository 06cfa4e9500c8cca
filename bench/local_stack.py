"""What the HTTP benchmarks share: `tensorgate-dev` started as `make dev` starts it, API keys, a deployed model."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_FOLDER = Path("/tmp/tg-demo")
DEMO_FILES = ("saved_model.pb", "variables.index", "variables.data-00000-of-00001", "mean.npy")
DEMO_PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "image",
            "image": {"dimension_order": "NHWC", "target_size": "64x64", "mean_file": "mean.npy", "pixel_scaling": 1.0},
        }
    ]
}
ENDED = ("success", "error")
BENCH_KEY = "tg_bench_key_0123456789abcdef"


def script(name: str) -> str:
    """A console script of this checkout's .venv (what `make dev` runs), else of this interpreter's."""
    candidate = REPO_ROOT / ".venv" / "bin" / name
    return str(candidate if candidate.exists() else Path(sys.executable).parent / name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    process: subprocess.Popen[str]
    url: str  # the API root, http://127.0.0.1:PORT/v0.7
    api_key: str
    aws_environment: dict[str, str]
    lines: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def printed(self, pattern: str) -> list[str]:
        return [line for line in list(self.lines) if re.search(pattern, line)]

    def stop(self) -> float:
        """Ctrl-C, as a user stops `make dev`; returns the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            status = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise SystemExit("tensorgate-dev did not stop within 20 s of SIGINT") from None
        if status != 0:
            raise SystemExit(f"tensorgate-dev exited with {status} after SIGINT")
        return time.monotonic() - started

    def add_keys(self, count: int, account: str = "dev") -> list[str]:
        """Issue keys with `tensorgate-admin create-key`, pointed at the stack as its banner says."""
        environment = {**os.environ, **self.aws_environment}

        def issue(_: int) -> str:
            output = subprocess.run(
                [script("tensorgate-admin"), "create-key", account],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return str(json.loads(output)["api_key"])

        with ThreadPoolExecutor(max_workers=max(1, count)) as pool:
            issued = list(pool.map(issue, range(count)))
        self.keys += issued
        return issued

    def tasks(self, task_ids: Iterable[int], key: str | None = None) -> dict[int, dict[str, Any]]:
        ids = list(task_ids)
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            chunk = ",".join(str(task_id) for task_id in ids[start : start + 100])
            reply = requests.get(
                f"{self.url}/tasks/?task_ids={chunk}&limit=100", headers={"X-API-KEY": key or self.api_key}, timeout=60
            )
            reply.raise_for_status()
            found |= {int(task["id"]): task for task in reply.json()["results"]}
        return found

    def wait_ended(self, task_ids: Iterable[int], timeout: float) -> dict[int, dict[str, Any]]:
        """The tasks as they are once all ended, or at the deadline (pending ones included)."""
        ids = list(task_ids)
        deadline = time.monotonic() + timeout
        while True:
            tasks = self.tasks(ids)
            if all(task["status"] in ENDED for task in tasks.values()) or time.monotonic() > deadline:
                return tasks
            time.sleep(0.5)


def start(extra_environment: dict[str, str] | None = None, tree: Path | None = None) -> Stack:
    """`tensorgate-dev` as `make dev` runs it (this environment, a free port, a known key); with `tree`, the
    code of that source tree instead of this checkout's (`git archive <commit> | tar -x -C DIR`), for a
    before/after comparison in one run."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "POWERTOOLS_"))}
    environment |= {"PORT": str(free_port()), "TENSORGATE_DEV_API_KEY": BENCH_KEY, "PYTHONUNBUFFERED": "1"}
    if tree is not None:
        # Ahead of the editable install's finder, which maps the packages to this checkout.
        folders = ("", "shared", "local", "layers/preprocessing", "client")
        environment["PYTHONPATH"] = os.pathsep.join(str(tree.resolve() / folder) for folder in folders)
    environment |= extra_environment or {}
    process = subprocess.Popen(
        [script("tensorgate-dev")],
        cwd=tree or REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.lstrip().startswith("Press Ctrl-C"):
                ready.set()
        ready.set()

    threading.Thread(target=read, name="tensorgate-dev-output", daemon=True).start()
    if not ready.wait(180) or process.poll() is not None:
        process.kill()
        raise SystemExit("tensorgate-dev did not start:\n" + "".join(lines[-40:]))
    text = "".join(lines)
    url = re.search(r"API:\s+(\S+)", text)
    endpoint = re.search(r"AWS:\s+(\S+)", text)
    assert url and endpoint, text
    aws = {
        "AWS_ENDPOINT_URL": endpoint.group(1),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return Stack(process, url.group(1), BENCH_KEY, aws, lines, [BENCH_KEY])


# The two ways the local gateway can run the functions, compared by the HTTP benchmarks in one run:
# every event in the stack's own process in turn, and a pool of processes per function (the default).
GATEWAY_MODES = {
    "single process": {"LOCAL_FUNCTION_PROCESSES": "0"},
    "process pools": {},
}


@dataclass
class Memory:
    processes: int
    rss_mib: float  # resident set sizes summed (pages shared between processes counted in each)
    pss_mib: float  # proportional set sizes summed (each shared page split between its sharers): the stack's total


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += _descendants(int(child))
    return found


def memory(pid: int) -> Memory:
    """The resident memory of a process and all its descendants (Linux /proc)."""
    rss = pss = 0
    pids = _descendants(pid)
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return Memory(len(pids), rss / 1024, pss / 1024)


def demo_files() -> dict[str, bytes]:
    if not all((DEMO_FOLDER / name).exists() for name in DEMO_FILES):
        subprocess.run(
            [sys.executable, "examples/make_demo_model.py", str(DEMO_FOLDER)], cwd=REPO_ROOT, check=True, timeout=600
        )
    return {name: (DEMO_FOLDER / name).read_bytes() for name in DEMO_FILES}


def deploy_demo(stack: Stack, timeout: float = 600) -> dict[str, Any]:
    """The README's demo classifier, created over HTTP and converted; returns the ready network."""
    files = demo_files()
    reply = requests.post(
        f"{stack.url}/networks/",
        headers={"X-API-KEY": stack.api_key},
        data={"name": "bench", "preprocessing": json.dumps(DEMO_PREPROCESSING)},
        files={name: (name, content) for name, content in files.items()},
        timeout=120,
    )
    reply.raise_for_status()
    network = dict(reply.json())
    deploy = stack.wait_ended([network["task_id"]], timeout)[network["task_id"]]
    if deploy["status"] != "success":
        raise SystemExit(f"the demo network did not deploy: {deploy}")
    return network


def photo(seed: int, width: int = 640, height: int = 480) -> bytes:
    """A JPEG with a photo's statistics (smooth gradients, some noise), so it decodes as a photo does."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    colour = generator.uniform(0, 1, (1, 1, 3)).astype(np.float32)
    pixels = 255 * (0.5 * colour + 0.3 * x * (1 - colour) + 0.2 * y)
    pixels = pixels + generator.normal(0, 8, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def inference_body(image: bytes) -> dict[str, Any]:
    return {"inputs": [{"image": {"source": base64.b64encode(image).decode()}}]}


def parse_time(text: str) -> float:
    """An ISO 8601 UTC timestamp of the API (`...Z`) as POSIX seconds."""
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def statuses(tasks: dict[int, dict[str, Any]]) -> Counter[str]:
    return Counter(str(task["status"]) for task in tasks.values())
