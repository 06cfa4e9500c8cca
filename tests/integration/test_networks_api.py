"""The networks API through the gateway emulation, under moto."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import unquote_plus

from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY
from tests.samples import PREPROCESSING

HEADERS = {"X-API-KEY": DEV_KEY}


def create_multipart(api: Client, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "name": "my new network",
        "description": "trained with more images",
        "metadata": json.dumps({"author": "me", "project": "Go to mars"}),
        "framework": "tensorflow-1.x",
        "preprocessing": json.dumps(PREPROCESSING),
        "saved_model.pb": (io.BytesIO(b"graph"), "saved_model.pb"),
        "variables.index": (io.BytesIO(b"index"), "variables.index"),
        "variables.data-00000-of-00001": (io.BytesIO(b"data"), "variables.data-00000-of-00001"),
        "mean.npy": (io.BytesIO(b"mean"), "mean.npy"),
    }
    data.update(fields)
    return api.post("/v0.7/networks", headers=HEADERS, data=data)


def test_create_multipart_curl_form_returns_network_and_pending_task(api: Client, aws: dict[str, Any]) -> None:
    # When
    response = create_multipart(api)
    # Then
    assert response.status_code == 201, response.text
    network = response.json
    assert isinstance(network["id"], int)
    assert network["metadata"] == {"author": "me", "project": "Go to mars"}
    assert network["preprocessing"]["inputs"][0]["image"]["color_channels"] == "BGR"
    assert network["status"] == "pending"
    assert network["update_date"].endswith("Z")
    task = api.get(f"/v0.7/tasks/{network['task_id']}/", headers=HEADERS).json
    assert task["status"] == "pending" and task["kind"] == "deploy" and task["data"] is None


def test_create_with_files_writes_manifest_that_feeds_the_conversion_queue(api: Client, aws: dict[str, Any]) -> None:
    network = create_multipart(api).json
    sqs = aws["session"].client("sqs")
    url = sqs.get_queue_url(QueueName="ConversionQueue")["QueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    # S3 event keys arrive URL-encoded.
    keys = [unquote_plus(r["s3"]["object"]["key"]) for body in bodies for r in body.get("Records", [])]
    assert keys == [f"uploads/dev/{network['id']}/files/manifest.json"]


def test_create_flattened_django_rest_form_parses_like_the_json_form(api: Client) -> None:
    data = {
        "name": "flat",
        "metadata.author": "me",
        "preprocessing.inputs[0]tensor_name": "data",
        "preprocessing.inputs[0]image.dimension_order": "NCHW",
        "preprocessing.inputs[0]image.target_size": "224x224",
        "preprocessing.inputs[0]image.pixel_scaling": "2.0",
        "preprocessing.batched_output": "True",
        "postprocessings[0]tensors_output.tensors[0]": "prob",
        "model.onnx": (io.BytesIO(b"onnx"), "model.onnx"),
    }
    response = api.post("/v0.7/networks/", headers=HEADERS, data=data)
    assert response.status_code == 201, response.text
    body = response.json
    assert body["metadata"] == {"author": "me"}
    assert body["preprocessing"]["inputs"][0]["image"]["pixel_scaling"] == 2.0
    assert body["preprocessing"]["batched_output"] is True
    assert body["postprocessings"] == [{"tensors_output": {"tensors": ["prob"], "top_k": 5}}]


def test_resampling_is_declared_per_input_and_absent_unless_declared(api: Client) -> None:
    def create(**image: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": "scan",
            "preprocessing.inputs[0]tensor_name": "data",
            **{f"preprocessing.inputs[0]image.{key}": value for key, value in image.items()},
            "model.onnx": (io.BytesIO(b"onnx"), "model.onnx"),
        }
        response = api.post("/v0.7/networks/", headers=HEADERS, data=data)
        assert response.status_code == 201, response.text
        return response.json

    exact = create(target_size="224x224", resampling="EXACT")
    default = create(target_size="224x224")

    fetched = api.get(f"/v0.7/networks/{exact['id']}", headers=HEADERS).json
    assert fetched["preprocessing"]["inputs"][0]["image"]["resampling"] == "EXACT"
    assert "resampling" not in default["preprocessing"]["inputs"][0]["image"]


def test_json_create_answers_with_a_presigned_post_for_one_archive(api: Client) -> None:
    response = api.post("/v0.7/networks", headers=HEADERS, json={"name": "big", "archive_name": "model.tar.gz"})
    assert response.status_code == 201, response.text
    upload = response.json["upload"]
    assert upload["key"] == f"uploads/dev/{response.json['id']}/archive/model.tar.gz"
    assert upload["fields"]["key"] == upload["key"]
    assert upload["url"].startswith("http")


def test_list_paginates_with_absolute_links_followed_to_the_end(api: Client) -> None:
    for index in range(5):
        api.post("/v0.7/networks", headers=HEADERS, json={"name": f"n{index}"})
    seen: list[int] = []
    url: str | None = "/v0.7/networks/?limit=2"
    while url:
        page = api.get(url, headers={**HEADERS, "Host": "api.example.test"}).json
        assert page["count"] == 5
        seen.extend(item["id"] for item in page["results"])
        url = page["next"]
        if url:
            assert url.startswith("http://api.example.test/v0.7/networks/?")
            url = url.removeprefix("http://api.example.test")
    assert len(seen) == 5 and len(set(seen)) == 5
    last = api.get("/v0.7/networks?offset=4&limit=2", headers=HEADERS).json
    assert last["next"] is None and "offset=2" in last["previous"]


def test_patch_changes_name_description_metadata_only(api: Client) -> None:
    network = create_multipart(api).json
    response = api.patch(
        f"/v0.7/networks/{network['id']}", headers=HEADERS, json={"name": "new name", "description": "d"}
    )
    assert response.status_code == 200
    assert response.json["name"] == "new name" and response.json["description"] == "d"
    assert response.json["preprocessing"] == network["preprocessing"]
    assert response.json["update_date"] > network["update_date"]


def test_delete_removes_records_and_objects(api: Client, aws: dict[str, Any]) -> None:
    from tests.conftest import stored_state

    network = create_multipart(api).json
    response = api.delete(f"/v0.7/networks/{network['id']}/", headers=HEADERS)
    assert response.status_code == 204
    assert response.data == b"" and "Content-Type" not in response.headers
    assert api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS).status_code == 404
    state = stored_state(aws)
    assert state["networks"] == [] and state["tasks"] == [] and state["objects"] == []


def test_another_accounts_network_and_task_answer_404(api: Client) -> None:
    network = create_multipart(api).json
    other = {"X-API-KEY": OTHER_KEY}
    assert api.get(f"/v0.7/networks/{network['id']}", headers=other).status_code == 404
    assert api.patch(f"/v0.7/networks/{network['id']}", headers=other, json={"name": "x"}).status_code == 404
    assert api.delete(f"/v0.7/networks/{network['id']}", headers=other).status_code == 404
    assert api.get(f"/v0.7/tasks/{network['task_id']}", headers=other).status_code == 404
    listed = api.get(f"/v0.7/tasks?task_ids={network['task_id']}", headers=other).json
    assert listed["count"] == 0
    assert api.get("/v0.7/networks", headers=other).json["count"] == 0


def test_tasks_list_accepts_repeated_and_comma_separated_ids(api: Client) -> None:
    first = create_multipart(api).json
    second = create_multipart(api).json
    repeated = api.get(f"/v0.7/tasks/?task_ids={first['task_id']}&task_ids={second['task_id']}", headers=HEADERS)
    comma = api.get(f"/v0.7/tasks?task_ids={first['task_id']},{second['task_id']}", headers=HEADERS)
    assert repeated.status_code == comma.status_code == 200
    assert [t["id"] for t in repeated.json["results"]] == [first["task_id"], second["task_id"]]
    assert repeated.json["results"] == comma.json["results"]


def test_public_networks_are_published_by_the_operator_and_read_by_slug(api: Client) -> None:
    from tensorgate import wiring

    network = create_multipart(api).json
    wiring.network_service().publish("dev", network["id"], "imagenet-demo")
    other = {"X-API-KEY": OTHER_KEY}
    listed = api.get("/v0.7/networks/public/", headers=other).json
    assert [item["id"] for item in listed["results"]] == ["imagenet-demo"]
    one = api.get("/v0.7/networks/public/imagenet-demo/", headers=other)
    assert one.status_code == 200 and one.json["name"] == "my new network"
    assert api.delete("/v0.7/networks/public/imagenet-demo", headers=other).status_code in (404, 405)
