"""End to end through `make dev`: 200 inference requests from 8 clients; throughput, latency to the end, unended tasks.

The local stack is started as `make dev` starts it (`tensorgate-dev`, its CPU worker a child process), the
README's demo classifier is created and converted over HTTP, and each client gets an API key of its own
from `tensorgate-admin create-key` (the per-key throttle, 25 requests/s with bursts of 50, is per client
as for real users). Each client submits its share as fast as the API answers, then waits for its tasks.

Latency is from just before a request is sent to the task's end as the worker recorded it (`update_date`;
same machine, same clock). Baseline, in the same run: requests sent one at a time, each waiting for its
task to end (no queueing, no batching). Goal (issue 5): every task ends (0 not ended).

Both of the gateway's modes are measured in the same run, each on a stack of its own: every handler event
in the stack's process in turn (`LOCAL_FUNCTION_PROCESSES=0`), and a pool of processes per function (the
default); goal (issue 12): the pools at least double the 8 clients' tasks/s. The stack's resident memory
(every process of it) is read after each run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from local_stack import (
    ENDED,
    GATEWAY_MODES,
    Memory,
    Stack,
    deploy_demo,
    inference_body,
    memory,
    parse_time,
    percentile,
    photo,
    start,
    statuses,
)


@dataclass
class Run:
    submitted: dict[int, float] = field(default_factory=dict)  # task id → wall time just before its POST
    answer_seconds: list[float] = field(default_factory=list)  # POST round trips
    throttled: int = 0  # 429 answers (then retried after Retry-After)
    failed: list[str] = field(default_factory=list)  # other non-200 answers
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit(stack: Stack, run: Run, network_id: int, image: bytes, key: str) -> int | None:
    body = inference_body(image)
    while True:
        sent = time.time()
        started = time.perf_counter()
        reply = requests.post(
            f"{stack.url}/networks/{network_id}/inference", headers={"X-API-KEY": key}, json=body, timeout=120
        )
        elapsed = time.perf_counter() - started
        with run.lock:
            run.answer_seconds.append(elapsed)
            if reply.status_code == 429:
                run.throttled += 1
            elif reply.status_code != 200:
                run.failed.append(f"{reply.status_code} {reply.text[:200]}")
                return None
            else:
                task_id = int(reply.json()["task_id"])
                run.submitted[task_id] = sent
                return task_id
        time.sleep(float(reply.headers.get("Retry-After", "1")))


def latencies(run: Run, tasks: dict[int, dict[str, object]]) -> list[float]:
    return [
        parse_time(str(tasks[task_id]["update_date"])) - sent
        for task_id, sent in run.submitted.items()
        if task_id in tasks and tasks[task_id]["status"] in ENDED
    ]


def serial(
    stack: Stack, network_id: int, images: list[bytes], count: int
) -> tuple[Run, dict[int, dict[str, object]], float]:
    run = Run()
    started = time.time()
    for index in range(count):
        task_id = submit(stack, run, network_id, images[index % len(images)], stack.api_key)
        if task_id is None:
            continue
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            task = requests.get(
                f"{stack.url}/tasks/{task_id}/", headers={"X-API-KEY": stack.api_key}, timeout=30
            ).json()
            if task["status"] in ENDED:
                break
            time.sleep(0.01)
    tasks = stack.tasks(run.submitted)
    return run, tasks, time.time() - started


def concurrent(
    stack: Stack, network_id: int, images: list[bytes], count: int, clients: int, timeout: float
) -> tuple[Run, dict[int, dict[str, object]]]:
    run = Run()

    def client(number: int) -> None:
        for index in range(number, count, clients):
            submit(stack, run, network_id, images[index % len(images)], stack.keys[number])

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return run, stack.wait_ended(run.submitted, timeout)


def row(label: str, run: Run, tasks: dict[int, dict[str, object]], seconds: float) -> str:
    ended = [task for task in tasks.values() if task["status"] in ENDED]
    waits = [value * 1000 for value in latencies(run, tasks)]
    throughput = len(ended) / seconds if seconds > 0 else float("nan")
    return (
        f"{label:<22}{len(run.submitted) + len(run.failed):>9}{len(ended):>7}{len(tasks) - len(ended):>11}"
        f"{throughput:>14.1f}{percentile(waits, 0.5):>9.0f}{percentile(waits, 0.99):>9.0f}"
    )


@dataclass
class Measured:
    baseline_run: Run
    baseline_tasks: dict[int, dict[str, object]]
    baseline_seconds: float
    run: Run
    tasks: dict[int, dict[str, object]]
    span: float
    batches: list[int]
    deployed: float
    stopped: float
    memory: Memory


def measure(
    args: argparse.Namespace, environment: dict[str, str], images: list[bytes], tree: Path | None = None
) -> Measured:
    """One stack started with `environment` (of `tree`'s code, else this checkout's): the serial baseline, then
    the clients at once, then its memory."""
    stack = start(environment, tree=tree)
    try:
        began = time.monotonic()
        network = deploy_demo(stack)
        deployed = time.monotonic() - began
        stack.add_keys(args.clients - 1)
        serial(stack, network["id"], images, 1)  # the worker loads the model on the first request

        baseline_run, baseline_tasks, baseline_seconds = serial(stack, network["id"], images, args.serial)
        mark = len(stack.lines)
        run, tasks = concurrent(stack, network["id"], images, args.requests, args.clients, args.timeout)
        ends = [parse_time(str(task["update_date"])) for task in tasks.values() if task["status"] in ENDED]
        span = (max(ends) - min(run.submitted.values())) if ends else float("nan")
        batches = [int(size) for size in re.findall(r"batch network=\S+ size=(\d+)", "".join(stack.lines[mark:]))]
        used = memory(stack.process.pid)
        stopped = stack.stop()
    except BaseException:
        if stack.process.poll() is None:
            stack.stop()
        raise
    return Measured(baseline_run, baseline_tasks, baseline_seconds, run, tasks, span, batches, deployed, stopped, used)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serial", type=int, default=20, help="requests of the one-at-a-time baseline")
    parser.add_argument("--size", default="640x480", help="JPEG size of the request images")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the tasks to end")
    parser.add_argument(
        "--mode", choices=[*GATEWAY_MODES, "both"], default="both", help="how the gateway runs handlers"
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="instead of the two modes: --mode's stack (the pools unless told) of this source tree "
        "(git archive <commit> | tar -x -C DIR), then this checkout's, in one run",
    )
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    images = [photo(seed, width, height) for seed in range(32)]
    print(f"load average (1, 5, 15 min) at the start: {os.getloadavg()}")
    if args.baseline_tree is not None:
        mode = "process pools" if args.mode == "both" else args.mode
        results = {
            f"{mode}, {args.baseline_tree}": measure(args, GATEWAY_MODES[mode], images, args.baseline_tree),
            f"{mode}, this checkout": measure(args, GATEWAY_MODES[mode], images),
        }
    else:
        modes = list(GATEWAY_MODES) if args.mode == "both" else [args.mode]
        results = {mode: measure(args, GATEWAY_MODES[mode], images) for mode in modes}
    print(f"load average at the end: {os.getloadavg()}")

    print(
        f"bench/e2e.py: {args.requests} inference requests from {args.clients} clients (one API key each) through "
        f"tensorgate-dev;\n  images {width}x{height} JPEG, the demo classifier (64x64 input); gateway modes: "
        + "; ".join(
            f"{mode} (demo deployed in {result.deployed:.1f} s, stopped {result.stopped:.1f} s after SIGINT)"
            for mode, result in results.items()
        )
    )
    print(f"{'':<38}{'requests':>9}{'ended':>7}{'not ended':>11}{'throughput/s':>14}{'p50 ms':>9}{'p99 ms':>9}")
    not_ended = 0
    refused = 0
    for mode, result in results.items():
        print(row(f"{mode}: one at a time", result.baseline_run, result.baseline_tasks, result.baseline_seconds))
        print(row(f"{mode}: {args.clients} clients", result.run, result.tasks, result.span))
        ended = sum(task["status"] in ENDED for task in result.tasks.values())
        not_ended += len(result.run.submitted) - ended
        refused += len(result.run.failed)
    for mode, result in results.items():
        ended = sum(task["status"] in ENDED for task in result.tasks.values())
        waits = latencies(result.run, result.tasks)
        base_waits = latencies(result.baseline_run, result.baseline_tasks)
        throughput = ended / result.span
        base_throughput = len(base_waits) / result.baseline_seconds
        print(
            f"{mode}: {args.clients} clients / one at a time: throughput {throughput / base_throughput:.2f}x, "
            f"p50 latency {percentile(waits, 0.5) / percentile(base_waits, 0.5):.2f}x; submit answers p50 "
            f"{percentile(result.run.answer_seconds, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(result.run.answer_seconds, 0.99) * 1000:.0f} ms; 429 answers {result.run.throttled} "
            f"(retried); other refusals {len(result.run.failed)}"
        )
        if result.batches:
            print(
                f"  worker batches: {len(result.batches)}, mean size {statistics.mean(result.batches):.1f}, "
                f"largest {max(result.batches)}; task statuses: {dict(statuses(result.tasks))}"
            )
        print(
            f"  stack memory after the run: {result.memory.processes} processes, resident {result.memory.rss_mib:.0f} "
            f"MiB summed, {result.memory.pss_mib:.0f} MiB proportional (shared pages counted once)"
        )
        for failure in result.run.failed[:5]:
            print("  refused:", failure)

    def rate(result: Measured) -> float:
        return sum(task["status"] in ENDED for task in result.tasks.values()) / result.span

    if args.baseline_tree is not None:
        before, after = results.values()
        print(
            f"this checkout / {args.baseline_tree}, {args.clients} clients: "
            f"throughput {rate(after) / rate(before):.2f}x"
        )
    elif len(results) == 2:
        single, pooled = (results[mode] for mode in GATEWAY_MODES)

        p50_ratio = percentile(latencies(pooled.run, pooled.tasks), 0.5) / percentile(
            latencies(single.run, single.tasks), 0.5
        )
        print(
            f"process pools / single process, {args.clients} clients: throughput {rate(pooled) / rate(single):.2f}x "
            f"(goal >= 2x), p50 latency {p50_ratio:.2f}x"
        )
    print(f"tasks that did not end: {not_ended} (goal 0)")
    return 0 if not_ended == 0 and not refused else 1


if __name__ == "__main__":
    raise SystemExit(main())
