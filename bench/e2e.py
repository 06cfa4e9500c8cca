"""End to end through `make dev`: 200 inference requests from 8 clients; throughput, latency to the end, unended tasks.

The local stack is started as `make dev` starts it (`tensorgate-dev`, its CPU worker a child process), the
README's demo classifier is created and converted over HTTP, and each client gets an API key of its own
from `tensorgate-admin create-key` (the per-key throttle, 25 requests/s with bursts of 50, is per client
as for real users). Each client submits its share as fast as the API answers, then waits for its tasks.

Latency is from just before a request is sent to the task's end as the worker recorded it (`update_date`;
same machine, same clock). Baseline, in the same run: requests sent one at a time, each waiting for its
task to end (no queueing, no batching). Goal (issue 5): every task ends (0 not ended).
"""

from __future__ import annotations

import argparse
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from local_stack import (
    ENDED,
    Stack,
    deploy_demo,
    inference_body,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serial", type=int, default=20, help="requests of the one-at-a-time baseline")
    parser.add_argument("--size", default="640x480", help="JPEG size of the request images")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the tasks to end")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))

    stack = start()
    try:
        began = time.monotonic()
        network = deploy_demo(stack)
        deployed = time.monotonic() - began
        stack.add_keys(args.clients - 1)
        images = [photo(seed, width, height) for seed in range(32)]
        serial(stack, network["id"], images, 1)  # the worker loads the model on the first request

        baseline_run, baseline_tasks, baseline_seconds = serial(stack, network["id"], images, args.serial)
        mark = len(stack.lines)
        run, tasks = concurrent(stack, network["id"], images, args.requests, args.clients, args.timeout)
        ends = [parse_time(str(task["update_date"])) for task in tasks.values() if task["status"] in ENDED]
        span = (max(ends) - min(run.submitted.values())) if ends else float("nan")
        batches = [int(size) for size in re.findall(r"batch network=\S+ size=(\d+)", "".join(stack.lines[mark:]))]
        stopped = stack.stop()
    except BaseException:
        if stack.process.poll() is None:
            stack.stop()
        raise

    waits = latencies(run, tasks)
    base_waits = latencies(baseline_run, baseline_tasks)
    throughput = len(ends) / span
    base_throughput = len(base_waits) / baseline_seconds
    not_ended = len(run.submitted) - len(ends)
    print(
        f"bench/e2e.py: {args.requests} inference requests from {args.clients} clients (one API key each) through "
        f"tensorgate-dev;\n  images {width}x{height} JPEG, the demo classifier (64x64 input); demo deployed in "
        f"{deployed:.1f} s; stack stopped {stopped:.1f} s after SIGINT"
    )
    print(f"{'':<22}{'requests':>9}{'ended':>7}{'not ended':>11}{'throughput/s':>14}{'p50 ms':>9}{'p99 ms':>9}")
    print(row("one at a time (base)", baseline_run, baseline_tasks, baseline_seconds))
    print(row(f"{args.clients} clients", run, tasks, span))
    print(
        f"ratios, {args.clients} clients / one at a time: throughput {throughput / base_throughput:.2f}x, "
        f"p50 latency {percentile(waits, 0.5) / percentile(base_waits, 0.5):.2f}x"
    )
    print(
        f"submit answers: p50 {percentile(run.answer_seconds, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(run.answer_seconds, 0.99) * 1000:.0f} ms; 429 answers {run.throttled} (retried); "
        f"other refusals {len(run.failed)}"
    )
    if batches:
        print(f"worker batches: {len(batches)}, mean size {statistics.mean(batches):.1f}, largest {max(batches)}")
    print(f"task statuses: {dict(statuses(tasks))}; tasks that did not end: {not_ended} (goal 0)")
    for failure in run.failed[:5]:
        print("  refused:", failure)
    return 0 if not_ended == 0 and not run.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
