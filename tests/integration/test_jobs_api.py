"""Batch jobs through the gateway emulation, under moto: list, search, lookup, archive inputs, an endpoint's canary."""

from __future__ import annotations

import io
import json
import math
import tarfile
import zipfile
from typing import Any

from PIL import Image
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.integration.test_inference_api import ready_network
from tests.integration.test_search import follow, names

HEADERS = {"X-API-KEY": DEV_KEY}
URLS = [f"https://images.example.test/{index}.jpg" for index in range(3)]


def create_job(api: Client, status: int = 201, **fields: Any) -> Any:
    response = api.post("/v0.7/jobs/", headers=HEADERS, json=fields)
    assert response.status_code == status, response.text
    return response.json


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (seed * 40 % 256, 10, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def batch_messages(aws: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = aws["session"].client("sqs")
    url = sqs.get_queue_url(QueueName="BatchQueue")["QueueUrl"]
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(message["Body"]) for message in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return bodies


def upload_arrives(aws: dict[str, Any], key: str, body: bytes) -> list[str]:
    """The archive lands where the job's presigned POST points, and the dataset worker takes the notification."""
    from functions.dataset_worker import app as dataset_worker

    aws["session"].client("s3").put_object(Bucket=bucket(aws), Key=key, Body=body)
    notification = {
        "Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Post", "s3": {"object": {"key": key}}},
        ]
    }
    dataset_worker.job_archives.cache_clear()
    return dataset_worker._handle(json.dumps(notification))


def bucket(aws: dict[str, Any]) -> str:
    return str(aws["template"].physical_name("ModelBucket"))


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_jobs_search_filters_lookup_and_cursor_pages(api: Client) -> None:
    network = ready_network(api)
    for name, description in (
        ("Shelves north", "aisle photos"),
        ("shelves south", ""),
        ("receipts", "scanned SHELF labels"),
        ("Shelves north", "rerun"),
    ):
        create_job(api, name=name, description=description, network_id=network["id"], inputs={"urls": URLS})
    other = api.post(
        "/v0.7/jobs/", headers={"X-API-KEY": OTHER_KEY}, json={"name": "shelves", "network_id": 1, "inputs": {}}
    )
    assert other.status_code == 400

    # search: parts of name, description or author, any case; cursor pages keep it
    assert follow(api, "/v0.7/jobs/?search=shel&limit=2") == (
        ["Shelves north", "shelves south", "receipts", "Shelves north"],
        [3, 4],
    )
    page = api.get("/v0.7/jobs?limit=3", headers=HEADERS).json
    assert page["count"] == 4 and len(page["results"]) == 3 and "cursor=" in page["next"]
    first = page["results"][0]
    assert (first["author"], first["status"], first["total"], first["done"]) == ("dev", "running", 3, 0)
    assert names(api.get("/v0.7/jobs?name=SOUTH&author=de", headers=HEADERS).json) == ["shelves south"]
    assert names(api.get("/v0.7/jobs?status=running&search=receipt", headers=HEADERS).json) == ["receipts"]
    assert api.get("/v0.7/jobs?status=success", headers=HEADERS).json["results"] == []
    # lookup: exact and case-sensitive; the newest of two jobs with one name
    newest = api.get("/v0.7/jobs/lookup?name=Shelves%20north", headers=HEADERS).json
    assert newest["description"] == "rerun" and newest == api.get(f"/v0.7/jobs/{newest['id']}", headers=HEADERS).json
    assert api.get("/v0.7/jobs/lookup?name=shelves%20North", headers=HEADERS).status_code == 404
    assert api.get("/v0.7/jobs/lookup", headers=HEADERS).status_code == 400
    # another account sees none of them
    assert api.get("/v0.7/jobs/", headers={"X-API-KEY": OTHER_KEY}).json == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    assert api.get("/v0.7/jobs/lookup?name=receipts", headers={"X-API-KEY": OTHER_KEY}).status_code == 404


def test_archive_job_pending_until_upload_then_its_images_are_items_in_member_order(
    api: Client, aws: dict[str, Any]
) -> None:
    from tensorgate import wiring

    network = ready_network(api)
    job = create_job(api, name="zipped", network_id=network["id"], inputs={"archive": {"name": "shelves.zip"}})
    assert (job["status"], job["total"], job["inputs"]) == (
        "pending",
        0,
        {"kind": "archive", "name": "shelves.zip", "count": 0},
    )
    upload = job["upload"]
    assert upload["key"] == f"job-uploads/dev/{job['id']}/shelves.zip" and upload["fields"] and upload["url"]
    # A folder zipped the way desktops do: a top folder, nested folders, clutter and a file that is no image.
    members = {
        "shelves/b/2.png": png(2),
        "shelves/a.png": png(0),
        "shelves/b/1.JPG": png(1),
        "shelves/.DS_Store": b"\0",
        "__MACOSX/shelves/._a.png": b"\0",
        "shelves/notes.txt": b"aisle 4",
    }
    outcome = upload_arrives(aws, upload["key"], zip_of(members))
    assert outcome == [f"running: job {job['id']} with 3 items (1 other files left out)"]
    running = api.get(f"/v0.7/jobs/{job['id']}", headers=HEADERS).json
    assert (running["status"], running["total"]) == ("running", 3)
    assert running["inputs"] == {"kind": "archive", "name": "shelves.zip", "count": 3, "ignored": 1}
    bodies = batch_messages(aws)
    assert len(bodies) == 3 and {body["network_id"] for body in bodies} == {network["id"]}
    s3 = aws["session"].client("s3")
    stored = [
        s3.get_object(Bucket=bucket(aws), Key=body["inputs"][0]["source"]["key"])["Body"].read() for body in bodies
    ]
    assert stored == [png(0), png(1), png(2)]  # item order: sorted member path
    # The archive is gone; a second delivery of its notification changes nothing.
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket(aws), Prefix="job-uploads/")
    assert upload_arrives(aws, upload["key"], zip_of(members)) == [f"ignored: job {job['id']} is running"]
    assert batch_messages(aws) == []

    # When the items end, the results name each by its member path, in that order.
    tasks = wiring.task_repository()
    from tensorgate.models import TaskStatus

    results = wiring.job_service()
    for body in bodies:
        item = tasks.get(body["task_id"])
        assert item is not None
        tasks.finish(item.model_copy(update={"status": TaskStatus.SUCCESS, "data": {"tensors": []}}))
        results._jobs.count_item(job["id"], item.task_id, "done")
    results.settler.settle([job["id"]])
    ended = api.get(f"/v0.7/jobs/{job['id']}", headers=HEADERS).json
    assert ended["status"] == "success"
    lines = [
        json.loads(line)
        for line in s3.get_object(Bucket=bucket(aws), Key=f"jobs/dev/{job['id']}/results.jsonl")["Body"]
        .read()
        .splitlines()
    ]
    assert [line["input"] for line in lines] == ["shelves/a.png", "shelves/b/1.JPG", "shelves/b/2.png"]


def test_archive_job_refused_archive_ends_in_error_with_a_sentence_and_writes_no_item(
    api: Client, aws: dict[str, Any]
) -> None:
    network = ready_network(api)
    s3 = aws["session"].client("s3")
    climbing = zip_of({"photos/a.png": png(0), "../escape.png": png(1)})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        link = tarfile.TarInfo("photos/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(link)
    for archive_name, body, words in (
        ("climb.zip", climbing, "climbs out of the archive"),
        ("links.tar.gz", buffer.getvalue(), "is a link"),
        ("empty.zip", zip_of({"readme.txt": b"no images"}), "holds no image"),
        ("broken.tgz", b"not a tar at all", "cannot be read"),
    ):
        job = create_job(api, name=archive_name, network_id=network["id"], inputs={"archive": {"name": archive_name}})
        [outcome] = upload_arrives(aws, job["upload"]["key"], body)
        assert outcome.startswith("error:"), outcome
        ended = api.get(f"/v0.7/jobs/{job['id']}", headers=HEADERS).json
        assert ended["status"] == "error" and words in ended["error"] and ended["total"] == 0, ended
        task = api.get(f"/v0.7/tasks/{job['id']}", headers=HEADERS).json
        assert (task["kind"], task["status"], task["error"]) == ("batch", "error", ended["error"])
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket(aws), Prefix=f"inputs/dev/jobs/{job['id']}/")
    assert batch_messages(aws) == []
    refused = create_job(api, 400, name="x", network_id=network["id"], inputs={"archive": {"name": "../a.zip"}})
    assert "inputs.archive.name" in refused["error"]


def test_job_through_an_endpoint_sends_floor_n_times_weight_items_to_its_canary(
    api: Client, aws: dict[str, Any]
) -> None:
    from tensorgate import wiring

    network = ready_network(api)
    candidate = ready_network(api, name="candidate")
    endpoint = api.post(
        "/v0.7/endpoints/",
        headers=HEADERS,
        json={"name": "shelf", "network_id": network["id"], "canary": {"network_id": candidate["id"], "weight": 0.3}},
    ).json
    urls = [f"https://images.example.test/{index}.jpg" for index in range(25)]
    job = create_job(api, name="canary", endpoint_id=endpoint["id"], inputs={"urls": urls})
    bodies = batch_messages(aws)
    items = wiring.task_repository().get_many(range(job["id"] + 1, job["id"] + 26))
    canary = [item for item in items if item.target and item.target["canary"]]
    assert len(canary) == math.floor(25 * 0.3) == 7
    assert {json.dumps(item.target, sort_keys=True) for item in canary} == {
        json.dumps({"network_id": candidate["id"], "canary": True}, sort_keys=True)
    }
    on_canary = {item.task_id for item in canary}
    assert {body["task_id"] for body in bodies if body["network_id"] == candidate["id"]} == on_canary
    assert sum(1 for body in bodies if body["network_id"] == network["id"]) == 18
    # The split is spread over the items, not bunched: every 10 consecutive items hold 3 of the canary's.
    flags = [bool(item.target and item.target["canary"]) for item in sorted(items, key=lambda item: item.task_id)]
    assert all(sum(flags[start : start + 10]) == 3 for start in range(0, 15))
