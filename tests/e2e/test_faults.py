"""Faults on the running local stack: a worker or converter killed mid-work, duplicated and late deliveries.

The stack runs as `make dev` runs it, with short visibility timeouts and claim expiry (settings, see the
README's "Local stack" section), so what a killed process held comes back within seconds. Each task must
end exactly once: the tasks table's DynamoDB stream (enabled here on the embedded AWS) records every write,
so a second result written over a first one cannot go unseen.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import numpy as np
import pytest
import requests
from PIL import Image

from tests.e2e.conftest import RunningStack, dev_command, start_stack, stop_stack
from tests.e2e.test_inference_e2e import demo_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# Short versions of production's durations (conversion visibility 5400 s, inference 120 s, claim 1200 s).
FAULT_ENVIRONMENT = {
    "LOCAL_QUEUE_VISIBILITY_SECONDS": "12",
    "CONVERSION_CLAIM_SECONDS": "10",
    "WORKER_VISIBILITY_SECONDS": "8",
    "WORKER_HEARTBEAT_SECONDS": "2",
}
PREPROCESSING = {
    "inputs": [
        {
            "tensor_name": "image",
            "image": {"dimension_order": "NHWC", "target_size": "64x64", "mean_file": "mean.npy", "pixel_scaling": 1.0},
        }
    ]
}
LOAD = 160  # inference requests in the worker-kill test
HELD_AT_KILL = 10  # at least this many messages held (received, not deleted) by the worker when it dies
CLIENTS = 8
ENDED = ("success", "error")


class Stack:
    """The running stack, its API keys, and boto3 clients on its embedded AWS."""

    def __init__(self, running: RunningStack) -> None:
        self.running = running
        self.url = running.url
        endpoint = self.banner(r"AWS:\s+(\S+)")
        self.aws_environment = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        options = {
            "endpoint_url": endpoint,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
            "region_name": "us-east-1",
        }
        self.sqs = boto3.client("sqs", **options)
        self.s3 = boto3.client("s3", **options)
        self.dynamodb = boto3.client("dynamodb", **options)
        self.streams = boto3.client("dynamodbstreams", **options)
        self.bucket = self.banner(r"MODEL_BUCKET=(\S+)")
        self.keys = [running.api_key]
        self.stream_arns: dict[str, str] = {}

    # ---- output -------------------------------------------------------------------------------

    def lines(self) -> list[str]:
        return list(self.running.output)

    def banner(self, pattern: str) -> str:
        found = re.search(pattern, self.running.printed())
        assert found, f"no {pattern!r} in the stack's output"
        return found.group(1)

    def wait_for_line(self, pattern: str, after: int, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines()[after:]:
                found = re.search(pattern, line)
                if found:
                    return found
            time.sleep(0.1)
        pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n{''.join(self.lines()[-80:])}")

    def pid(self, child: str) -> int:
        matches = re.findall(rf"{child} started \(pid (\d+)\)", self.running.printed())
        assert matches, f"the stack printed no pid for its {child}"
        return int(matches[-1])

    # ---- API ----------------------------------------------------------------------------------

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"X-API-KEY": key or self.running.api_key}

    def add_keys(self, count: int) -> None:
        """More keys for the dev account, issued by `tensorgate-admin` as an operator would (one per client)."""
        admin = Path(dev_command()).parent / "tensorgate-admin"
        environment = {**os.environ, **self.aws_environment}

        def issue(_: int) -> str:
            output = subprocess.run(
                [str(admin), "create-key", "dev"], env=environment, capture_output=True, text=True, check=True
            ).stdout
            return str(json.loads(output)["api_key"])

        with ThreadPoolExecutor(max_workers=count) as pool:
            self.keys += list(pool.map(issue, range(count)))

    def create_network(self) -> dict[str, Any]:
        files = demo_files(Path("/tmp/tg-demo"))
        response = requests.post(
            f"{self.url}/networks/",
            headers=self.headers(),
            data={"name": "faults", "preprocessing": json.dumps(PREPROCESSING)},
            files={name: (name, content) for name, content in files.items()},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def submit(self, network_id: int, image: bytes, key: str | None = None) -> int:
        body = {"inputs": [{"image": {"source": base64.b64encode(image).decode()}}]}
        while True:
            reply = requests.post(
                f"{self.url}/networks/{network_id}/inference", headers=self.headers(key), json=body, timeout=60
            )
            if reply.status_code != 429:  # the per-key throttle: wait as a client should
                assert reply.status_code == 200, reply.text
                return int(reply.json()["task_id"])
            time.sleep(float(reply.headers.get("Retry-After", "1")))

    def tasks(self, task_ids: list[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(task_ids), 100):
            ids = ",".join(str(task_id) for task_id in task_ids[start : start + 100])
            reply = requests.get(f"{self.url}/tasks/?task_ids={ids}&limit=100", headers=self.headers(), timeout=30)
            assert reply.status_code == 200, reply.text
            found |= {int(task["id"]): task for task in reply.json()["results"]}
        return found

    def wait_ended(self, task_ids: list[int], timeout: float = 300) -> dict[int, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.tasks(task_ids)
            if len(tasks) == len(task_ids) and all(task["status"] in ENDED for task in tasks.values()):
                return tasks
            time.sleep(1)
        pending = [task_id for task_id, task in self.tasks(task_ids).items() if task["status"] not in ENDED]
        pytest.fail(f"{len(pending)} task(s) never ended: {pending[:10]}\n{''.join(self.lines()[-80:])}")

    # ---- queues and streams -----------------------------------------------------------------------

    def queue_url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def in_queue(self, name: str) -> tuple[int, int]:
        """(visible, held) messages of a queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait_drained(self, name: str, timeout: float = 120) -> None:
        """Until nothing is left in the queue, visible or held (so every redelivery has been handled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_queue(name) == (0, 0):
                return
            time.sleep(0.5)
        pytest.fail(f"{name} still holds {self.in_queue(name)} message(s) after {timeout} s")

    def record_writes(self, table: str) -> None:
        response = self.dynamodb.update_table(
            TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        )
        self.stream_arns[table] = response["TableDescription"]["LatestStreamArn"]

    def writes(self, table: str) -> list[dict[str, Any]]:
        """Every change of the table since `record_writes`, oldest first."""
        arn = self.stream_arns[table]
        records: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records += page["Records"]
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        return records

    def network_writes(self, network_id: int) -> int:
        return sum(
            record["dynamodb"]["Keys"]["network_id"]["N"] == str(network_id) for record in self.writes("NetworksTable")
        )

    def task_writes(self) -> tuple[Counter[int], Counter[int]]:
        """Per task: writes that ended it (pending → success/error), and writes after it had ended."""
        endings: Counter[int] = Counter()
        overwrites: Counter[int] = Counter()
        for record in self.writes("TasksTable"):
            if record["eventName"] != "MODIFY":
                continue
            old, new = record["dynamodb"]["OldImage"], record["dynamodb"]["NewImage"]
            task_id = int(new["task_id"]["N"])
            if old["status"]["S"] == "pending" and new["status"]["S"] in ENDED:
                endings[task_id] += 1
            elif old["status"]["S"] in ENDED:
                overwrites[task_id] += 1
        return endings, overwrites


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    running = start_stack(with_workers=True, environment=FAULT_ENVIRONMENT)
    stack = Stack(running)
    stack.record_writes("TasksTable")
    stack.record_writes("NetworksTable")
    # The converter starts polling after the banner; S3's test event must be out of the way first
    stack.wait_for_line(r"Converter polling ConversionQueue", after=0)
    stack.wait_drained("ConversionQueue")
    yield stack
    children = [int(pid) for pid in re.findall(r"\w+ started \(pid (\d+)\)", running.printed())]
    stop_stack(running)
    # Stopping the stack stops its children too: the embedded AWS, the converter, the worker (and restarts)
    assert len(children) >= 3
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture(scope="module")
def network(stack: Stack) -> dict[str, Any]:
    """A deployed demo network."""
    network = stack.create_network()
    deploy = stack.wait_ended([network["task_id"]])[network["task_id"]]
    assert deploy["status"] == "success", deploy
    return network


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def test_converter_killed_mid_conversion_the_deploy_still_ends(stack: Stack) -> None:
    # Given a conversion under way
    mark = len(stack.lines())
    network = stack.create_network()
    stack.wait_for_line(r"Converter received 1 message", after=mark)
    time.sleep(1.0)  # fetching the files, importing TensorFlow, converting: the claim is held
    assert stack.tasks([network["task_id"]])[network["task_id"]]["status"] == "pending"
    # When the converter process is killed outright (no release of its claim, no outcome written)
    pid = stack.pid("converter")
    kill(pid)
    stack.wait_for_line(rf"converter \(pid {pid}\) killed by SIGKILL; restarting", after=mark, timeout=30)
    # Then the message comes back after its visibility timeout, and the deploy ends: success on a retry
    # once the claim expired, or error through the dead-letter queue; never pending
    deploy = stack.wait_ended([network["task_id"]], timeout=240)[network["task_id"]]
    body = requests.get(f"{stack.url}/networks/{network['id']}/", headers=stack.headers(), timeout=30).json()
    if deploy["status"] == "success":
        assert body["status"] == "ready"
    else:
        assert body["status"] == "error" and "did not complete after several attempts" in deploy["error"]
    received = [line for line in stack.lines()[mark:] if "Converter received 1 message" in line]
    assert len(received) >= 2, "the killed conversion's message was never delivered again"
    endings, overwrites = stack.task_writes()
    assert endings[network["task_id"]] == 1 and overwrites[network["task_id"]] == 0
    print(f"converter killed mid-conversion; the deploy ended {deploy['status']} after {len(received)} deliveries")


def test_worker_killed_mid_load_every_task_ends_exactly_once(stack: Stack, network: dict[str, Any]) -> None:
    # Given 8 clients (one API key each) whose requests queue up while the worker is paused (SIGSTOP)
    stack.add_keys(CLIENTS - len(stack.keys))
    images = [picture(seed) for seed in range(16)]
    mark = len(stack.lines())
    pid = stack.pid("worker")

    def client(number: int) -> list[int]:
        return [
            stack.submit(network["id"], images[index % len(images)], key=stack.keys[number])
            for index in range(number, LOAD, CLIENTS)
        ]

    os.kill(pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
            task_ids = [task_id for ids in clients.map(client, range(CLIENTS)) for task_id in ids]
    finally:
        os.kill(pid, signal.SIGCONT)
    # When the worker is killed outright once it ended some tasks, while it holds many more messages
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ended = sum(task["status"] in ENDED for task in stack.tasks(task_ids).values())
        if ended and stack.in_queue("InferenceQueue")[1] >= HELD_AT_KILL:
            break
    kill(pid)
    held_at_kill = stack.in_queue("InferenceQueue")[1]
    ended_at_kill = sum(task["status"] in ENDED for task in stack.tasks(task_ids).values())
    stack.wait_for_line(rf"worker \(pid {pid}\) killed by SIGKILL; restarting", after=mark, timeout=30)
    assert held_at_kill >= HELD_AT_KILL and ended_at_kill < LOAD, (held_at_kill, ended_at_kill)

    # Then every task ends, with the model's output, once its message comes back to the restarted worker
    tasks = stack.wait_ended(task_ids, timeout=300)
    stack.wait_drained("InferenceQueue", timeout=120)  # the redeliveries of what the dead worker held
    assert len(set(task_ids)) == LOAD
    statuses = Counter(task["status"] for task in tasks.values())
    assert statuses == {"success": LOAD}, statuses
    assert all(task["data"]["tensors"][0]["shape"] == [1, 4] for task in tasks.values())
    # And each was written once: one ending per task, nothing written over an ended task
    endings, overwrites = stack.task_writes()
    assert [task_id for task_id in task_ids if endings[task_id] != 1] == []
    assert [task_id for task_id in task_ids if overwrites[task_id]] == []
    assert stack.in_queue("InferenceDeadLetterQueue") == (0, 0)
    print(f"worker killed holding {held_at_kill} message(s), {ended_at_kill} of {LOAD} tasks ended; all ended once")


def s3_event(bucket: str, key: str) -> str:
    """An S3 ObjectCreated notification body as S3 puts it on the queue (keys URL-encoded)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
    }
    return json.dumps({"Records": [record]})


def test_duplicate_and_late_s3_events_deploy_once(stack: Stack, network: dict[str, Any]) -> None:
    before = requests.get(f"{stack.url}/networks/{network['id']}/", headers=stack.headers(), timeout=30).json()
    deploy_before = stack.tasks([network["task_id"]])[network["task_id"]]
    writes_before = stack.network_writes(network["id"])
    mark = len(stack.lines())
    prefix = f"uploads/dev/{network['id']}/files/"
    conversion_queue = stack.queue_url("ConversionQueue")
    # When the manifest's event arrives again (twice, as sent), a file's event arrives after it, and
    # S3 notifies once more for a rewrite of the same manifest
    for key in (prefix + "manifest.json", prefix + "manifest.json", prefix + "saved_model.pb"):
        stack.sqs.send_message(QueueUrl=conversion_queue, MessageBody=s3_event(stack.bucket, key))
    manifest = stack.s3.get_object(Bucket=stack.bucket, Key=prefix + "manifest.json")["Body"].read()
    stack.s3.put_object(Bucket=stack.bucket, Key=prefix + "manifest.json", Body=manifest)
    stack.wait_for_line(r"Converter handled", after=mark)
    stack.wait_drained("ConversionQueue")
    handled = [line for line in stack.lines()[mark:] if "Converter handled" in line]
    assert len(handled) >= 4 and all("0 failed" in line for line in handled), handled
    # Then nothing converted again: the network and its deploy task are as they were, not written at all
    after = requests.get(f"{stack.url}/networks/{network['id']}/", headers=stack.headers(), timeout=30).json()
    assert after == before
    assert stack.tasks([network["task_id"]])[network["task_id"]] == deploy_before
    assert stack.network_writes(network["id"]) == writes_before
    _, overwrites = stack.task_writes()
    assert overwrites[network["task_id"]] == 0


def test_duplicate_and_late_inference_messages_write_one_result(stack: Stack, network: dict[str, Any]) -> None:
    from tensorgate.messages import InferenceInput, InferenceMessage, InlineSource

    image = picture(99)
    inference_queue = stack.queue_url("InferenceQueue")

    def duplicate(task_id: int) -> str:
        return InferenceMessage(
            task_id=task_id,
            account_id="dev",
            network_id=network["id"],
            inputs=[InferenceInput(source=InlineSource(data=base64.b64encode(image).decode()))],
            submitted_at=datetime.now(UTC),
        ).model_dump_json()

    # When copies of a request's message race the original, and more arrive after its task ended
    task_id = stack.submit(network["id"], image)
    for _ in range(2):
        stack.sqs.send_message(QueueUrl=inference_queue, MessageBody=duplicate(task_id))
    first = stack.wait_ended([task_id])[task_id]
    stack.wait_drained("InferenceQueue")
    for _ in range(2):
        stack.sqs.send_message(QueueUrl=inference_queue, MessageBody=duplicate(task_id))
    stack.wait_drained("InferenceQueue")
    # Then the task has the one result written first, and nothing was written over it
    assert first["status"] == "success"
    assert stack.tasks([task_id])[task_id] == first
    endings, overwrites = stack.task_writes()
    assert endings[task_id] == 1 and overwrites[task_id] == 0
