"""Datasets through the API handlers and the dataset worker under moto: create, upload, extract, version, split."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.datasets_samples import coco_archive, csv_labels, folder_per_class, jpeg, zip_archive

HEADERS = {"X-API-KEY": DEV_KEY}


def run_dataset_worker(aws: dict[str, Any], rounds: int = 10) -> list[str]:
    """Feed the dataset queue's messages to the worker as Lambda's event source mapping would; their bodies."""
    from tensorgate_local.lambdas import LocalContext

    from functions.dataset_worker import app

    sqs = aws["session"].client("sqs")
    url = aws["template"].queue_url("DatasetQueue")
    bodies = []
    for _ in range(rounds):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"]).get("Messages", [])
        if not messages:
            break
        for message in messages:
            record = {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:DatasetQueue",
                "awsRegion": "us-east-1",
            }
            result = app.handler(
                {"Records": [record]}, LocalContext(function_name="dataset_worker", timeout_seconds=900)
            )
            assert result["batchItemFailures"] == [], result
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            bodies.append(message["Body"])
    return bodies


def upload(aws: dict[str, Any], instructions: dict[str, Any], content: bytes) -> None:
    """What a client's POST to the presigned URL ends with: the object under the key it was given."""
    bucket = aws["template"].physical_name("ModelBucket")
    aws["session"].client("s3").put_object(Bucket=bucket, Key=instructions["key"], Body=content)


def create(api: Client, aws: dict[str, Any], archive: bytes, **fields: Any) -> dict[str, Any]:
    response = api.post("/v0.7/datasets", headers=HEADERS, json={"name": "pets", **fields})
    assert response.status_code == 201, response.json
    upload(aws, response.json["upload"], archive)
    run_dataset_worker(aws)
    return api.get(f"/v0.7/datasets/{response.json['id']}", headers=HEADERS).json


def test_create_from_folders_extracts_items_and_reports_unreadable_images_item_by_item(
    api: Client, aws: dict[str, Any]
) -> None:
    dataset = create(api, aws, zip_archive(folder_per_class({"cat": 6, "dog": 4}, broken=2)), description="pets")
    assert dataset["status"] == "ready" and dataset["extraction"]["layout"] == "folders"
    assert dataset["extraction"]["items"] == 10 and dataset["extraction"]["item_errors"] == 2
    assert dataset["classes"] == {"cat": 0, "dog": 1}
    assert dataset["extraction"]["label_counts"] == {"cat": 6, "dog": 4}
    errors = api.get(f"/v0.7/datasets/{dataset['id']}/errors", headers=HEADERS).json
    assert errors["count"] == 2 and all("broken" in error["item"] for error in errors["results"])
    task = api.get(f"/v0.7/tasks/{dataset['task_id']}", headers=HEADERS).json
    assert task["status"] == "success" and task["kind"] == "dataset" and task["data"]["items"] == 10
    items = api.get(f"/v0.7/datasets/{dataset['id']}/versions/v1/items?offset=8&limit=5", headers=HEADERS).json
    assert items["count"] == 10 and [item["index"] for item in items["results"]] == [8, 9]
    assert items["results"][0] == {"index": 8, "name": "dog/0002.jpg", "labels": ["dog"], "width": 24, "height": 16}
    # A duplicate of the upload's notification changes nothing: the task ended once.
    bucket = aws["template"].physical_name("ModelBucket")
    key = f"dataset-uploads/dev/{dataset['id']}/archive/dataset.zip"
    aws["session"].client("s3").copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={"a": "b"},
    )
    run_dataset_worker(aws)
    assert api.get(f"/v0.7/tasks/{dataset['task_id']}", headers=HEADERS).json["update_date"] == task["update_date"]


def test_csv_labels_naming_unknown_images_are_item_errors_and_retry_with_a_corrected_file_fixes_them(
    api: Client, aws: dict[str, Any]
) -> None:
    files = {f"img/{n}.jpg": jpeg((10 * n, 0, 0), seed=n) for n in range(5)}
    rows = [["image", "label"], *[[f"img/{n}.jpg", "red" if n % 2 else "dark"] for n in range(5)], ["img/9.jpg", "red"]]
    files["labels.csv"] = csv_labels(rows)
    dataset = create(api, aws, zip_archive(files), classes={"red": 0, "dark": 1})
    assert dataset["extraction"]["layout"] == "csv" and dataset["extraction"]["items"] == 5
    [error] = dataset["extraction"]["errors"]
    assert "img/9.jpg" in error["error"] and "not in the archive" in error["error"]

    retried = api.post(f"/v0.7/datasets/{dataset['id']}/retry", headers=HEADERS, json={"labels_name": "fixed.csv"})
    assert retried.status_code == 200 and retried.json["status"] == "pending" and retried.json["attempt"] == 2
    upload(aws, retried.json["upload"], csv_labels([[f"img/{n}.jpg", "red,dark"] for n in range(5)]))
    run_dataset_worker(aws)
    fixed = api.get(f"/v0.7/datasets/{dataset['id']}", headers=HEADERS).json
    assert fixed["status"] == "ready" and fixed["extraction"]["item_errors"] == 0
    assert fixed["extraction"]["label_counts"] == {"dark": 5, "red": 5}
    assert api.get(f"/v0.7/tasks/{fixed['task_id']}", headers=HEADERS).json["status"] == "success"


def test_coco_detection_dataset_keeps_boxes_and_reports_an_annotation_of_no_image(
    api: Client, aws: dict[str, Any]
) -> None:
    dataset = create(api, aws, coco_archive(12, bad_annotation=True), name="streets", kind="detection")
    assert dataset["extraction"]["layout"] == "coco" and dataset["extraction"]["items"] == 12
    assert dataset["classes"] == {"car": 1, "person": 2} and dataset["extraction"]["item_errors"] == 1
    item = api.get(f"/v0.7/datasets/{dataset['id']}/versions/v1/items?limit=1", headers=HEADERS).json["results"][0]
    assert item["objects"] and all(len(obj["box"]) == 4 for obj in item["objects"])


def test_transformation_version_and_seeded_split_through_the_worker(api: Client, aws: dict[str, Any]) -> None:
    dataset = create(api, aws, zip_archive(folder_per_class({"cat": 10, "dog": 10}, wrapper="")))
    base = f"/v0.7/datasets/{dataset['id']}"
    steps = [{"resize": "12x8"}, {"horizontal_flip": True}, {"grayscale": True}, {"jpeg_quality": 70}]
    created = api.post(f"{base}/versions", headers=HEADERS, json={"name": "small", "transformations": steps})
    assert created.status_code == 201 and created.json["status"] == "pending"
    run_dataset_worker(aws)
    version = api.get(f"{base}/versions/small", headers=HEADERS).json
    assert version["status"] == "ready" and version["items"] == 20 and version["source"] == "v1"
    item = api.get(f"{base}/versions/small/items?limit=1", headers=HEADERS).json["results"][0]
    assert (item["width"], item["height"]) == (12, 8)

    body = {
        "name": "holdout",
        "version": "small",
        "parts": [{"name": "train", "percentage": 80}, {"name": "test", "percentage": 20}],
        "seed": 7,
    }
    split = api.post(f"{base}/splits", headers=HEADERS, json=body)
    assert split.status_code == 201, split.json
    again = api.post(f"{base}/splits", headers=HEADERS, json=body | {"name": "holdout-again"})
    run_dataset_worker(aws)
    first = api.get(f"{base}/splits/{split.json['id']}", headers=HEADERS).json
    assert first["status"] == "ready" and first["counts"] == {"train": 16, "test": 4}
    test_items = api.get(f"{base}/splits/{split.json['id']}/items?part=test", headers=HEADERS).json["results"]
    assert sorted(item["labels"][0] for item in test_items) == ["cat", "cat", "dog", "dog"]  # stratified
    repeat = api.get(f"{base}/splits/{again.json['id']}/items?part=test", headers=HEADERS).json["results"]
    assert [item["name"] for item in repeat] == [item["name"] for item in test_items]  # the same seed, the same items
    searched = api.get(f"{base}/splits?search=AGAIN", headers=HEADERS).json
    assert [found["name"] for found in searched["results"]] == ["holdout-again"]
    assert api.get(f"{base}/versions?name=sma", headers=HEADERS).json["results"][0]["name"] == "small"
    looked = api.get("/v0.7/datasets/splits/lookup?dataset=pets&version=small&name=holdout", headers=HEADERS)
    assert looked.status_code == 200 and looked.json["id"] == split.json["id"]


def test_dataset_names_are_unique_lookup_is_exact_and_another_account_sees_nothing(
    api: Client, aws: dict[str, Any]
) -> None:
    created = api.post("/v0.7/datasets", headers=HEADERS, json={"name": "Pets", "collection_date": "06-12-2018"})
    assert created.status_code == 201 and created.json["collection_date"] == "2018-06-12"
    assert api.post("/v0.7/datasets", headers=HEADERS, json={"name": "Pets"}).status_code == 400
    assert api.get("/v0.7/datasets/lookup?name=pets", headers=HEADERS).status_code == 404
    assert api.get("/v0.7/datasets/lookup?name=Pets", headers=HEADERS).json["id"] == created.json["id"]
    assert api.get("/v0.7/datasets?search=pet", headers=HEADERS).json["count"] == 1
    other = {"X-API-KEY": OTHER_KEY}
    assert api.get(f"/v0.7/datasets/{created.json['id']}", headers=other).status_code == 404
    assert api.get("/v0.7/datasets", headers=other).json["count"] == 0
    assert api.delete(f"/v0.7/datasets/{created.json['id']}", headers=HEADERS).status_code == 204
    assert api.post("/v0.7/datasets", headers=HEADERS, json={"name": "Pets"}).status_code == 201


def test_split_refusals_answer_400_with_a_sentence(api: Client, aws: dict[str, Any]) -> None:
    dataset = create(api, aws, zip_archive(folder_per_class({"cat": 2, "dog": 2})))
    base = f"/v0.7/datasets/{dataset['id']}/splits"
    for body, words in (
        ({"name": "s", "parts": [{"name": "a", "percentage": 70}, {"name": "b", "percentage": 20}]}, "sum to 100"),
        ({"name": "s", "parts": [{"name": "a", "percentage": 100}], "exclude_labels": ["fish"]}, "'fish'"),
        ({"name": "s", "parts": [{"name": "a", "percentage": 50}, {"name": "a", "percentage": 50}]}, "distinct"),
    ):
        response = api.post(base, headers=HEADERS, json=body)
        assert response.status_code == 400 and words in response.json["error"], response.json
    assert json.loads(api.get(base, headers=HEADERS).data)["count"] == 0


def test_another_accounts_dataset_answers_404_on_every_route_and_delete_leaves_no_object(
    api: Client, aws: dict[str, Any]
) -> None:
    dataset = create(api, aws, zip_archive(folder_per_class({"cat": 2, "dog": 2})))
    base = f"/v0.7/datasets/{dataset['id']}"
    parts = [{"name": "a", "percentage": 50}, {"name": "b", "percentage": 50}]
    split = api.post(f"{base}/splits", headers=HEADERS, json={"name": "s", "parts": parts}).json
    run_dataset_worker(aws)
    other = {"X-API-KEY": OTHER_KEY}
    for method, path, body in (
        ("GET", base, None),
        ("DELETE", base, None),
        ("POST", f"{base}/retry", {}),
        ("GET", f"{base}/errors", None),
        ("GET", f"{base}/versions", None),
        ("POST", f"{base}/versions", {"name": "g", "transformations": [{"grayscale": True}]}),
        ("GET", f"{base}/versions/v1", None),
        ("GET", f"{base}/versions/v1/items", None),
        ("GET", f"{base}/splits", None),
        ("POST", f"{base}/splits", {"name": "t", "parts": parts}),
        ("GET", f"{base}/splits/{split['id']}", None),
        ("GET", f"{base}/splits/{split['id']}/items?part=a", None),
        ("GET", "/v0.7/datasets/lookup?name=pets", None),
        ("GET", "/v0.7/datasets/splits/lookup?dataset=pets&version=v1&name=s", None),
    ):
        response = api.open(path, method=method, headers=other, json=body)
        assert response.status_code == 404, (method, path, response.json)
    assert api.delete(base, headers=HEADERS).status_code == 204
    bucket = aws["template"].physical_name("ModelBucket")
    listed = aws["session"].client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [item["Key"] for item in listed if f"/{dataset['id']}/" in item["Key"]] == []
    assert api.get(f"{base}/splits/{split['id']}", headers=HEADERS).status_code == 404


def test_cancelling_a_pending_extraction_answers_it_cancelled_twice_and_its_upload_then_changes_nothing(
    api: Client, aws: dict[str, Any]
) -> None:
    created = api.post("/v0.7/datasets", headers=HEADERS, json={"name": "late"}).json
    first = api.post(f"/v0.7/datasets/{created['id']}/cancel", headers=HEADERS)
    again = api.post(f"/v0.7/datasets/{created['id']}/cancel", headers=HEADERS)
    assert first.status_code == again.status_code == 200 and first.json == again.json
    assert first.json["status"] == "cancelled"
    task = api.get(f"/v0.7/tasks/{created['task_id']}", headers=HEADERS).json
    assert task["status"] == "error" and task["error"] == "Cancelled on request."
    version = api.get(f"/v0.7/datasets/{created['id']}/versions/v1", headers=HEADERS).json
    assert version["status"] == "cancelled"

    upload(aws, created["upload"], zip_archive(folder_per_class({"cat": 2, "dog": 1})))
    run_dataset_worker(aws)
    assert api.get(f"/v0.7/datasets/{created['id']}", headers=HEADERS).json["status"] == "cancelled"
    refused = api.post(f"/v0.7/datasets/{created['id']}/versions/v1/cancel", headers=HEADERS)
    assert refused.status_code == 400 and f"/v0.7/datasets/{created['id']}/cancel" in refused.json["error"]
    retried = api.post(f"/v0.7/datasets/{created['id']}/retry", headers=HEADERS, json={})
    assert retried.status_code == 200, retried.json
    run_dataset_worker(aws)
    ready = api.get(f"/v0.7/datasets/{created['id']}", headers=HEADERS).json
    assert ready["status"] == "ready" and ready["extraction"]["items"] == 3
    ended = api.post(f"/v0.7/datasets/{created['id']}/cancel", headers=HEADERS)
    assert ended.status_code == 409 and "only a pending job" in ended.json["error"]
