"""Load through `make dev`: 8 clients for 60 s mixing CRUD and inference; requests, 5xx, 429, unended tasks, p50/p99.

Each client has an API key of its own (`tensorgate-admin create-key`; the local gateway throttles each key
as API Gateway's usage plan does: 25 requests/s, bursts of 50) and loops over a weighted mix: create a
network with files (multipart, a small ONNX model) or with JSON and then its archive through the presigned
POST, list, get, rename (PATCH), delete its own networks, read task status (one id, or the list form),
and queue inference on the README's demo classifier. A 429 is counted, then retried after Retry-After.

After the run every task a client saw (deploy and inference, of networks not deleted) must end: the
figures count those still pending after `--drain` seconds. Goals (issue 6): 0 answers 5xx, 0 tasks that
did not end. Baseline, in the same run: each operation alone, one client, before the load.

Both of the gateway's modes run the same load, each on a stack of its own (every handler event in the
stack's process in turn, `LOCAL_FUNCTION_PROCESSES=0`, then a pool of processes per function, the default),
and the stack's resident memory is read after each.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import tarfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from local_stack import (
    GATEWAY_MODES,
    Stack,
    deploy_demo,
    inference_body,
    memory,
    percentile,
    photo,
    start,
    statuses,
)

WEIGHTS = {
    "create multipart": 3,
    "create json + archive": 1,
    "list networks": 10,
    "get network": 14,
    "patch network": 8,
    "delete network": 3,
    "task status": 12,
    "task list": 6,
    "inference": 43,
}


def tiny_onnx() -> bytes:
    import onnx
    from onnx import helper

    tensor = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", tensor, ["N", 3])],
        [helper.make_tensor_value_info("y", tensor, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def archive(model: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        member = tarfile.TarInfo("model.onnx")
        member.size = len(model)
        tar.addfile(member, io.BytesIO(model))
    return buffer.getvalue()


@dataclass
class Figures:
    """What every client saw, merged under a lock."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # 4xx other than 429
    tasks: set[int] = field(default_factory=set)  # tasks that must end
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    def __init__(self, stack: Stack, key: str, demo_id: int, figures: Figures, seed: int) -> None:
        self.stack = stack
        self.headers = {"X-API-KEY": key}
        self.demo_id = demo_id
        self.figures = figures
        self.random = random.Random(seed)
        self.networks: dict[int, int] = {}  # this client's networks: id → deploy task id
        self.tasks: list[int] = []
        self.images = [photo(seed * 100 + n, 320, 240) for n in range(4)]
        self.model = tiny_onnx()
        self.operations: dict[str, Callable[[], None]] = {
            "create multipart": self.create_multipart,
            "create json + archive": self.create_json,
            "list networks": self.list_networks,
            "get network": self.get_network,
            "patch network": self.patch_network,
            "delete network": self.delete_network,
            "task status": self.task_status,
            "task list": self.task_list,
            "inference": self.inference,
        }

    # ---- one request --------------------------------------------------------------------------

    def call(self, operation: str, method: str, path: str, expected: tuple[int, ...], **options: Any) -> Any:
        """Send until not throttled; record its latency and status; the response, or None when refused."""
        url = path if path.startswith("http") else f"{self.stack.url}{path}"
        while True:
            started = time.perf_counter()
            try:
                reply = requests.request(method, url, headers=self.headers, timeout=120, **options)
            except requests.RequestException as error:
                with self.figures.lock:
                    self.figures.server_errors.append(f"{operation}: {error}")
                return None
            elapsed = time.perf_counter() - started
            with self.figures.lock:
                self.figures.codes[reply.status_code] += 1
                if reply.status_code != 429:
                    self.figures.seconds[operation].append(elapsed)
                if reply.status_code >= 500:
                    self.figures.server_errors.append(f"{operation}: {reply.status_code} {reply.text[:300]}")
                elif reply.status_code not in (*expected, 429):
                    self.figures.unexpected.append(f"{operation}: {reply.status_code} {reply.text[:300]}")
            if reply.status_code != 429:
                return reply if reply.status_code in expected else None
            time.sleep(float(reply.headers.get("Retry-After", "1")))

    def remember(self, network: dict[str, Any]) -> None:
        self.networks[int(network["id"])] = int(network["task_id"])
        with self.figures.lock:
            self.figures.tasks.add(int(network["task_id"]))

    def own_network(self) -> int | None:
        return self.random.choice(list(self.networks)) if self.networks else None

    # ---- the mix --------------------------------------------------------------------------------

    def create_multipart(self) -> None:
        reply = self.call(
            "create multipart",
            "POST",
            "/networks/",
            (201,),
            data={"name": f"load {self.random.random():.6f}", "framework": "onnx", "metadata": '{"bench": "load"}'},
            files={"model.onnx": ("model.onnx", self.model)},
        )
        if reply is not None:
            self.remember(reply.json())

    def create_json(self) -> None:
        reply = self.call(
            "create json + archive",
            "POST",
            "/networks/",
            (201,),
            json={"name": "load archive", "framework": "onnx", "archive_name": "model.tar.gz"},
        )
        if reply is None:
            return
        network = reply.json()
        self.remember(network)
        upload = network["upload"]
        started = time.perf_counter()
        posted = requests.post(
            upload["url"], data=upload["fields"], files={"file": ("model.tar.gz", archive(self.model))}
        )
        with self.figures.lock:
            self.figures.seconds["archive upload (S3)"].append(time.perf_counter() - started)
            if posted.status_code >= 300:
                self.figures.unexpected.append(f"archive upload: {posted.status_code} {posted.text[:300]}")

    def list_networks(self) -> None:
        offset = self.random.choice([0, 0, 0, 20])
        self.call("list networks", "GET", f"/networks/?offset={offset}&limit=20", (200,))

    def get_network(self) -> None:
        network_id = self.own_network() or self.demo_id
        self.call("get network", "GET", f"/networks/{network_id}/", (200,))

    def patch_network(self) -> None:
        network_id = self.own_network()
        if network_id is None:
            return self.create_multipart()
        body = {"description": f"edited {self.random.random():.6f}", "metadata": {"round": self.random.randint(0, 9)}}
        self.call("patch network", "PATCH", f"/networks/{network_id}/", (200,), json=body)
        return None

    def delete_network(self) -> None:
        network_id = self.own_network()
        if network_id is None or len(self.networks) < 3:
            return self.create_multipart()
        if self.call("delete network", "DELETE", f"/networks/{network_id}/", (204,)) is not None:
            with self.figures.lock:
                self.figures.tasks.discard(self.networks.pop(network_id))  # gone with its network
        return None

    def task_status(self) -> None:
        if not self.tasks:
            return self.inference()
        self.call("task status", "GET", f"/tasks/{self.random.choice(self.tasks)}/", (200,))
        return None

    def task_list(self) -> None:
        if not self.tasks:
            return self.inference()
        ids = ",".join(str(task_id) for task_id in self.random.sample(self.tasks, min(10, len(self.tasks))))
        self.call("task list", "GET", f"/tasks/?task_ids={ids}", (200,))
        return None

    def inference(self) -> None:
        body = inference_body(self.random.choice(self.images))
        reply = self.call("inference", "POST", f"/networks/{self.demo_id}/inference", (200,), json=body)
        if reply is not None:
            task_id = int(reply.json()["task_id"])
            self.tasks.append(task_id)
            with self.figures.lock:
                self.figures.tasks.add(task_id)

    def run(self, until: float) -> None:
        names = list(WEIGHTS)
        weights = [WEIGHTS[name] for name in names]
        while time.monotonic() < until:
            self.operations[self.random.choices(names, weights)[0]]()


def baseline(stack: Stack, demo_id: int) -> dict[str, float]:
    """Each operation alone, a few times, one client: its median latency in seconds."""
    figures = Figures()
    client = Client(stack, stack.api_key, demo_id, figures, seed=999)
    for _ in range(5):
        for operation in ("create multipart", "list networks", "get network", "patch network", "inference"):
            client.operations[operation]()
        client.task_status()
        client.task_list()
    client.delete_network()
    stack.wait_ended(figures.tasks, 120)
    return {operation: percentile(values, 0.5) for operation, values in figures.seconds.items()}


def measure(args: argparse.Namespace, mode: str, tree: Path | None = None) -> tuple[bool, float, float]:
    """One stack in one gateway mode under the load (of `tree`'s code, else this checkout's); prints its figures,
    returns (goals met, requests/s, p50 s)."""
    stack = start(GATEWAY_MODES[mode], tree=tree)
    try:
        demo = deploy_demo(stack)
        stack.add_keys(args.clients - 1)
        alone = baseline(stack, demo["id"])
        figures = Figures()
        clients = [Client(stack, key, demo["id"], figures, seed) for seed, key in enumerate(stack.keys[: args.clients])]
        started = time.monotonic()
        threads = [
            threading.Thread(target=client.run, args=(started + args.seconds,), name=f"client-{n}")
            for n, client in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        drain_started = time.monotonic()
        tasks = stack.wait_ended(figures.tasks, args.drain)
        drained = time.monotonic() - drain_started
        used = memory(stack.process.pid)
        stopped = stack.stop()
    except BaseException:
        if stack.process.poll() is None:
            stack.stop()
        raise

    requests_sent = sum(figures.codes.values())
    latencies = [value for operation, values in figures.seconds.items() if "S3" not in operation for value in values]
    server_errors = len(figures.server_errors)
    pending = sum(task["status"] == "pending" for task in tasks.values())
    missing = len(figures.tasks) - len(tasks)
    print(
        f"bench/load.py, gateway mode {mode}{f', code of {tree}' if tree else ''}: {args.clients} clients "
        f"(one API key each) for {elapsed:.0f} s through "
        f"tensorgate-dev; stack stopped {stopped:.1f} s after SIGINT; memory after the run: {used.processes} "
        f"processes, resident {used.rss_mib:.0f} MiB summed, {used.pss_mib:.0f} MiB proportional"
    )
    print(
        f"requests {requests_sent} ({requests_sent / elapsed:.1f}/s), 5xx {server_errors} (goal 0), "
        f"429 {figures.codes[429]}, other 4xx {len(figures.unexpected)}; "
        f"latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )
    print(
        f"tasks {len(figures.tasks)}: {dict(statuses(tasks))}; did not end {pending + missing} (goal 0), "
        f"all ended {drained:.1f} s after the load stopped"
    )
    print(f"{'operation':<24}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'alone p50':>11}{'ratio':>8}")
    for operation in [*WEIGHTS, "archive upload (S3)"]:
        values = figures.seconds.get(operation, [])
        if not values:
            continue
        p50 = percentile(values, 0.5)
        base = alone.get(operation)
        ratio = f"{p50 / base:.1f}x" if base else "-"
        alone_text = f"{base * 1000:.0f}" if base else "-"
        print(
            f"{operation:<24}{len(values):>7}{p50 * 1000:>9.0f}{percentile(values, 0.99) * 1000:>9.0f}"
            f"{alone_text:>11}{ratio:>8}"
        )
    for failure in (figures.server_errors + figures.unexpected)[:10]:
        print("  ", failure)
    return server_errors == 0 and pending + missing == 0, requests_sent / elapsed, percentile(latencies, 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--drain", type=float, default=180, help="seconds to wait for the tasks to end afterwards")
    parser.add_argument("--mode", choices=[*GATEWAY_MODES, "both"], default="both", help="how the gateway runs")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="instead of the two modes: --mode's stack of this source tree (git archive <commit> | tar -x -C DIR), "
        "then this checkout's, in one run",
    )
    args = parser.parse_args()
    modes = list(GATEWAY_MODES) if args.mode == "both" else [args.mode]
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    if args.baseline_tree is not None:
        mode = modes[-1]
        before = measure(args, mode, args.baseline_tree)
        print(f"load average now: {os.getloadavg()}\n")
        after = measure(args, mode)
        print(f"load average at the end: {os.getloadavg()}")
        print(
            f"this checkout / {args.baseline_tree} ({mode}): requests/s {after[1] / before[1]:.2f}x, "
            f"p50 latency {after[2] / before[2]:.2f}x"
        )
        return 0 if before[0] and after[0] else 1
    results = {}
    for mode in modes:
        results[mode] = measure(args, mode)
        print()
    if len(results) == 2:
        (_, single_rate, single_p50), (_, pooled_rate, pooled_p50) = (results[mode] for mode in GATEWAY_MODES)
        print(
            f"process pools / single process: requests/s {pooled_rate / single_rate:.2f}x, "
            f"p50 latency {pooled_p50 / single_p50:.2f}x"
        )
    return 0 if all(ok for ok, _, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
