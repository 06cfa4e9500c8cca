"""Online latency while a batch job runs, through `make dev`: the worker serves the batch queue only after online work.

The README's demo classifier is deployed; online inference requests are sent one at a time (each waits for its
task to end), first with nothing else queued (baseline), then while a job of `--items` images runs over an
s3:// prefix. Latency is from just before the request to the task's end as the worker recorded it. Also: the
job's throughput, alone and while the online requests ran. The documented bound (docs/jobs.md): an online
request waits at most for the job items the worker already holds (`WORKER_BATCH_IN_FLIGHT`, one batch).
"""

from __future__ import annotations

import argparse
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import requests
from local_stack import ENDED, Stack, deploy_demo, inference_body, parse_time, percentile, photo, start


def online(stack: Stack, network_id: int, images: list[bytes], count: int) -> list[float]:
    """Latencies (seconds) of `count` inference requests sent one after the other."""
    waits = []
    for index in range(count):
        sent = time.time()
        reply = requests.post(
            f"{stack.url}/networks/{network_id}/inference",
            headers={"X-API-KEY": stack.api_key},
            json=inference_body(images[index % len(images)]),
            timeout=60,
        )
        reply.raise_for_status()
        task_id = int(reply.json()["task_id"])
        task = stack.wait_ended([task_id], 60)[task_id]
        assert task["status"] in ENDED, task
        waits.append(parse_time(str(task["update_date"])) - sent)
    return waits


def upload(stack: Stack, count: int) -> str:
    from PIL import Image

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.aws_environment["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    bucket = re.search(r"MODEL_BUCKET=(\S+)", "".join(stack.lines))
    assert bucket, "the stack printed no MODEL_BUCKET"
    bucket_name = bucket.group(1)

    def put(index: int) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (index % 256, index * 7 % 256, 90)).save(buffer, format="JPEG")
        s3.put_object(Bucket=bucket_name, Key=f"uploads/dev/bench-job/{index:05d}.jpg", Body=buffer.getvalue())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(count)))
    return f"s3://{bucket_name}/uploads/dev/bench-job/"


def run_job(stack: Stack, network_id: int, prefix: str) -> dict[str, Any]:
    reply = requests.post(
        f"{stack.url}/jobs/",
        headers={"X-API-KEY": stack.api_key},
        json={"name": "bench", "network_id": network_id, "inputs": {"prefix": prefix}},
        timeout=300,
    )
    reply.raise_for_status()
    return dict(reply.json())


def job_state(stack: Stack, job_id: int) -> dict[str, Any]:
    return dict(requests.get(f"{stack.url}/jobs/{job_id}/", headers={"X-API-KEY": stack.api_key}, timeout=30).json())


def wait_job(stack: Stack, job_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_state(stack, job_id)
        if job["results_url"]:
            return job
        time.sleep(0.5)
    raise SystemExit(f"job {job_id} did not end within {timeout} s: {job_state(stack, job_id)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--online", type=int, default=40, help="online requests in each phase")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    stack = start()
    try:
        network = deploy_demo(stack)
        images = [photo(seed) for seed in range(8)]
        online(stack, network["id"], images, 3)  # the worker loads the model
        prefix = upload(stack, args.items)
        baseline = online(stack, network["id"], images, args.online)
        # The job alone, for its throughput
        began = time.monotonic()
        alone = wait_job(stack, run_job(stack, network["id"], prefix)["id"], args.timeout)
        alone_seconds = time.monotonic() - began
        # The job again, with the online requests sent while it runs
        began = time.monotonic()
        job = run_job(stack, network["id"], prefix)
        while job_state(stack, job["id"])["done"] < min(50, args.items // 4):
            time.sleep(0.2)
        during = online(stack, network["id"], images, args.online)
        progress_after_online = job_state(stack, job["id"])
        shared = wait_job(stack, job["id"], args.timeout)
        shared_seconds = time.monotonic() - began
        stack.stop()
    except BaseException:
        if stack.process.poll() is None:
            stack.stop()
        raise
    print(f"bench/jobs.py: online latency while a job of {args.items} images (32x32 JPEG) runs; demo classifier")
    print(f"{'online requests, one at a time':<40}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, waits in (("nothing else queued", baseline), ("a job running", during)):
        values = [wait * 1000 for wait in waits]
        print(
            f"{label:<40}{len(values):>7}{percentile(values, 0.5):>9.0f}"
            f"{percentile(values, 0.99):>9.0f}{max(values):>9.0f}"
        )
    print(
        f"job alone: {alone['done']} done, {alone['failed']} failed in {alone_seconds:.1f} s "
        f"({alone['total'] / alone_seconds:.1f} items/s); job beside the online requests: {shared['done']} done in "
        f"{shared_seconds:.1f} s; items done while the online requests ran: "
        f"{progress_after_online['done'] - min(50, args.items // 4)}+"
    )
    ratio = percentile(during, 0.99) / percentile(baseline, 0.99)
    print(f"online p99 with a job running / without: {ratio:.2f}x")
    return 0 if alone["failed"] == 0 and shared["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
