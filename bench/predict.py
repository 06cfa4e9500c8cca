"""Endpoint predict through `make dev`: latency answered in the same response, one client and 8 clients.

The local stack is started as `make dev` starts it, the README's demo classifier is created and converted
over HTTP, and an endpoint is created on it. Each client sends predictions one after another (one photo
as SBrain's `{"features": [...]}`), each waiting for its answer; every answer must be a 200 holding the
result (a 202 is counted as deferred, an error as failed). Latency is the whole HTTP round trip.
Baseline in the same run: the same photo queued with `POST /networks/{id}/inference` and its task polled
every 10 ms until it ended, the way a client without endpoints got its result.

Goals (issue 12): p50 <= 150 ms with one client, p99 <= 400 ms with 8 clients.

    python bench/predict.py [--requests 100] [--clients 8] [--json results.json]
    python bench/predict.py --baseline-tree /tmp/before   # a commit's tree against this checkout, one run
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from local_stack import Stack, deploy_demo, percentile, photo, start


def predict_once(session: requests.Session, stack: Stack, endpoint_id: int, body: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    reply = session.post(
        f"{stack.url}/endpoints/{endpoint_id}/predict", headers={"X-API-KEY": stack.api_key}, json=body, timeout=60
    )
    elapsed = time.perf_counter() - started
    if reply.status_code == 200 and reply.json()["predictions"][0]["status"] != "success":
        return elapsed, 500
    return elapsed, reply.status_code


def poll_once(session: requests.Session, stack: Stack, network_id: int, image: bytes) -> tuple[float, int]:
    headers = {"X-API-KEY": stack.api_key}
    body = {"inputs": [{"image": {"source": base64.b64encode(image).decode()}}]}
    started = time.perf_counter()
    reply = session.post(f"{stack.url}/networks/{network_id}/inference", headers=headers, json=body, timeout=60)
    if reply.status_code != 200:
        return time.perf_counter() - started, reply.status_code
    task_id = reply.json()["task_id"]
    while True:
        polled = session.get(f"{stack.url}/tasks/{task_id}/", headers=headers, timeout=60)
        if polled.status_code == 429:  # polling every 10 ms from 8 clients on one key meets the key's rate limit
            time.sleep(float(polled.headers.get("Retry-After", "1")))
            continue
        task = polled.json()
        if task["status"] != "pending":
            return time.perf_counter() - started, 200 if task["status"] == "success" else 500
        time.sleep(0.01)


def run(clients: int, count: int, call: Any) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(_: int) -> None:
        session = requests.Session()
        for _ in range(count // clients):
            elapsed, status = call(session)
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "per_second": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": statuses,
    }


def endpoint_on_demo(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    network = deploy_demo(stack)
    endpoint = requests.post(
        f"{stack.url}/endpoints/",
        headers={"X-API-KEY": stack.api_key},
        json={"name": "bench", "network_id": network["id"]},
        timeout=60,
    ).json()
    return network, endpoint


def compare_trees(args: argparse.Namespace, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The predict rows on a stack of `--baseline-tree` and on one of this checkout, both up at once and
    measured in turn, `--rounds` times, so that both meet the same load on the machine."""
    stacks = {"baseline": start(tree=args.baseline_tree), "this checkout": start()}
    rows: dict[str, dict[str, Any]] = {}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            endpoints = dict(
                zip(stacks, pool.map(lambda stack: endpoint_on_demo(stack)[1], stacks.values()), strict=True)
            )
        for name, stack in stacks.items():  # as the single-checkout run warms
            run(
                2, 10, lambda session, stack=stack, name=name: predict_once(session, stack, endpoints[name]["id"], body)
            )
        for round_number in range(1, args.rounds + 1):
            for clients in (1, args.clients):
                for name, stack in stacks.items():
                    endpoint_id = endpoints[name]["id"]
                    rows[f"{name}, predict, {clients} client(s), round {round_number}"] = run(
                        clients,
                        args.requests,
                        lambda s, stack=stack, endpoint_id=endpoint_id: predict_once(s, stack, endpoint_id, body),
                    )
    finally:
        for stack in stacks.values():
            stack.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="predictions per row")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="instead of the queue + poll rows: the predict rows of a stack run from this source tree "
        "(git archive <commit> | tar -x -C DIR), alternated with this checkout's",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --baseline-tree: rounds of the four rows")
    args = parser.parse_args()

    image = photo(1)
    body = {"features": [base64.b64encode(image).decode()]}
    load_before = os.getloadavg()
    if args.baseline_tree is not None:
        rows = compare_trees(args, body)
    else:
        stack = start()
        try:
            network, endpoint = endpoint_on_demo(stack)
            # Warm every handler and the worker's session before measuring.
            run(2, 10, lambda session: predict_once(session, stack, endpoint["id"], body))
            rows = {
                "predict, 1 client": run(1, args.requests, lambda s: predict_once(s, stack, endpoint["id"], body)),
                f"predict, {args.clients} clients": run(
                    args.clients, args.requests, lambda s: predict_once(s, stack, endpoint["id"], body)
                ),
                "before: queue + poll, 1 client": run(
                    1, args.requests, lambda s: poll_once(s, stack, network["id"], image)
                ),
                f"before: queue + poll, {args.clients} clients": run(
                    args.clients, args.requests, lambda s: poll_once(s, stack, network["id"], image)
                ),
            }
        finally:
            stack.stop()
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before}, after {load_after}")
    print("| run | requests | req/s | p50 | p99 | answers |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['requests']} | {row['per_second']:.1f} | {row['p50_ms']:.0f} ms | "
            f"{row['p99_ms']:.0f} ms | {row['statuses']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    failed = sum(count for row in rows.values() for status, count in row["statuses"].items() if status != 200)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
