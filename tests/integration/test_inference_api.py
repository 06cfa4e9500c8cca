"""The inference API: validation against the network, inputs stored, one message queued per request."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import DEV_KEY, OTHER_KEY, stored_state

HEADERS = {"X-API-KEY": DEV_KEY}
IMAGE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def ready_network(api: Client, status: str = "ready", **fields: Any) -> dict[str, Any]:
    from tensorgate import wiring
    from tensorgate.models import NetworkStatus

    body = {
        "name": "classifier",
        "preprocessing": {"inputs": [{"tensor_name": "image", "image": {"target_size": "64x64"}}]},
        "postprocessings": [{"tensors_output": {"tensors": ["probabilities"]}}],
        **fields,
    }
    network = api.post("/v0.7/networks", headers=HEADERS, json=body).json
    service = wiring.network_service()
    record = service.get("dev", network["id"])
    service._networks.replace(  # the converter's outcome, without running a conversion
        record.model_copy(
            update={
                "status": NetworkStatus(status),
                "outputs": [{"name": "probabilities", "dtype": "float32", "shape": ["N", 4]}],
                "version": record.version + 1,
            }
        ),
        expected_version=record.version,
    )
    return network


def queued(aws: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = aws["session"].client("sqs")
    url = sqs.get_queue_url(QueueName="InferenceQueue")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_submit_base64_answers_task_id_and_queues_one_message(api: Client, aws: dict[str, Any]) -> None:
    network = ready_network(api)
    source = base64.b64encode(IMAGE).decode()
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers=HEADERS,
        json={"inputs": [{"image": {"source": source}}], "output_tensors": ["probabilities"]},
    )
    assert response.status_code == 200, response.text
    task_id = response.json["task_id"]
    task = api.get(f"/v0.7/tasks/{task_id}/", headers=HEADERS).json
    assert task["status"] == "pending" and task["kind"] == "inference"
    [message] = queued(aws)
    assert message["task_id"] == task_id and message["network_id"] == network["id"]
    assert message["inputs"][0]["source"] == {"kind": "inline", "data": source}
    assert message["output_tensors"] == ["probabilities"]
    # The task as stored travels with the message: the worker ends it without reading it first
    assert message["task"]["task_id"] == task_id and message["task"]["status"] == "pending"


def test_submit_multipart_file_and_large_input_go_to_s3(api: Client, aws: dict[str, Any]) -> None:
    network = ready_network(api)
    big = IMAGE + b"\x01" * 300_000  # over SQS's 256 KiB message once base64-encoded
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers=HEADERS,
        data={"inputs[0]image.source": (io.BytesIO(big), "photo.png")},
    )
    assert response.status_code == 200, response.text
    [message] = queued(aws)
    source = message["inputs"][0]["source"]
    assert source["kind"] == "s3" and source["key"] == f"inputs/dev/{response.json['task_id']}/0"
    assert source["key"] in stored_state(aws)["objects"]


def test_submit_photo_sized_input_travels_inline_without_s3(api: Client, aws: dict[str, Any]) -> None:
    # Given a 150 KB image: 200 KB once base64-encoded, within SQS's 256 KiB message
    network = ready_network(api)
    photo = IMAGE + b"\x02" * 150_000
    # When it is submitted
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers=HEADERS,
        json={"inputs": [{"image": {"source": base64.b64encode(photo).decode()}}]},
    )
    # Then the message carries it and nothing was written to S3 for it
    assert response.status_code == 200, response.text
    [message] = queued(aws)
    assert base64.b64decode(message["inputs"][0]["source"]["data"]) == photo
    assert not [key for key in stored_state(aws)["objects"] if key.startswith("inputs/")]


def test_submit_url_and_detection_settings_travel_in_the_message(api: Client, aws: dict[str, Any]) -> None:
    network = ready_network(api)
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference/",
        headers=HEADERS,
        json={
            "inputs": [
                {
                    "image": {
                        "source": "https://example.com/cat.jpg",
                        "bbox": {"xmin": 0.1, "ymin": 0.1, "xmax": 0.9, "ymax": 0.8},
                    }
                }
            ],
            "bounding_box_threshold": 0.3,
            "max_objects": 5,
        },
    )
    assert response.status_code == 200, response.text
    [message] = queued(aws)
    assert message["inputs"][0]["source"] == {"kind": "url", "url": "https://example.com/cat.jpg"}
    assert message["inputs"][0]["bbox"]["xmax"] == 0.9
    assert message["detection"] == {"bounding_box_threshold": 0.3, "iou_threshold": 0.5, "max_objects": 5}


REFUSALS = {
    "not-ready": ("pending", {"inputs": [{"image": {"source": "https://example.com/a.jpg"}}]}, 409),
    "bad-base64": ("ready", {"inputs": [{"image": {"source": "not base64 at all!"}}]}, 400),
    "ftp-scheme": ("ready", {"inputs": [{"image": {"source": "ftp://example.com/a.jpg"}}]}, 400),
    "file-scheme": ("ready", {"inputs": [{"image": {"source": "file:///etc/passwd"}}]}, 400),
    "s3-outside-prefix": (
        "ready",
        {
            "inputs": [
                {"image": {"source": "s3://tensorgate-local-models-123456789012-us-east-1/uploads/other/1/files/x.jpg"}}
            ]
        },
        400,
    ),
    "s3-other-bucket": ("ready", {"inputs": [{"image": {"source": "s3://someone-else/uploads/dev/x.jpg"}}]}, 400),
    "too-many-inputs": ("ready", {"inputs": [{"image": {"source": "https://e.com/a.jpg"}}] * 2}, 400),
    "no-inputs": ("ready", {"inputs": []}, 400),
    "unknown-tensor": (
        "ready",
        {"inputs": [{"image": {"source": "https://e.com/a.jpg"}}], "output_tensors": ["nope"]},
        400,
    ),
    "threshold-out-of-range": (
        "ready",
        {"inputs": [{"image": {"source": "https://e.com/a.jpg"}}], "bounding_box_threshold": 2},
        400,
    ),
    "max-objects-zero": ("ready", {"inputs": [{"image": {"source": "https://e.com/a.jpg"}}], "max_objects": 0}, 400),
    "bbox-outside": (
        "ready",
        {
            "inputs": [
                {"image": {"source": "https://e.com/a.jpg", "bbox": {"xmin": -0.1, "ymin": 0, "xmax": 1, "ymax": 1}}}
            ]
        },
        400,
    ),
    "bbox-empty": (
        "ready",
        {
            "inputs": [
                {"image": {"source": "https://e.com/a.jpg", "bbox": {"xmin": 0.5, "ymin": 0, "xmax": 0.5, "ymax": 1}}}
            ]
        },
        400,
    ),
    "unknown-field": ("ready", {"inputs": [{"image": {"source": "https://e.com/a.jpg"}}], "priority": 1}, 400),
    "polygon-and-bbox": (
        "ready",
        {
            "inputs": [
                {
                    "image": {
                        "source": "https://e.com/a.jpg",
                        "bbox": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1},
                        "polygon": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.1}, {"x": 0.5, "y": 0.9}],
                    }
                }
            ]
        },
        400,
    ),
    "polygon-two-points": (
        "ready",
        {
            "inputs": [
                {"image": {"source": "https://e.com/a.jpg", "polygon": [{"x": 0.1, "y": 0.1}, {"x": 0.9, "y": 0.9}]}}
            ]
        },
        400,
    ),
    "polygon-outside": (
        "ready",
        {
            "inputs": [
                {
                    "image": {
                        "source": "https://e.com/a.jpg",
                        "polygon": [{"x": 0.1, "y": 0.1}, {"x": 1.2, "y": 0.1}, {"x": 0.5, "y": 0.9}],
                    }
                }
            ]
        },
        400,
    ),
    "polygon-without-area": (
        "ready",
        {
            "inputs": [
                {
                    "image": {
                        "source": "https://e.com/a.jpg",
                        "polygon": [{"x": 0.1, "y": 0.5}, {"x": 0.5, "y": 0.5}, {"x": 0.9, "y": 0.5}],
                    }
                }
            ]
        },
        400,
    ),
    "polygon-point-unknown-field": (
        "ready",
        {
            "inputs": [
                {
                    "image": {
                        "source": "https://e.com/a.jpg",
                        "polygon": [{"x": 0.1, "y": 0.1, "z": 0}, {"x": 0.9, "y": 0.1}, {"x": 0.5, "y": 0.9}],
                    }
                }
            ]
        },
        400,
    ),
    "crop-uniform-background-not-a-boolean": (
        "ready",
        {"inputs": [{"image": {"source": "https://e.com/a.jpg", "crop_uniform_background": "sometimes"}}]},
        400,
    ),
    "max-predictions-zero": (
        "ready",
        {"inputs": [{"image": {"source": "https://e.com/a.jpg"}}], "max_predictions": 0},
        400,
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_submit_refusals_answer_4xx_and_queue_nothing(api: Client, aws: dict[str, Any], case: str) -> None:
    status, body, code = REFUSALS[case]
    network = ready_network(api, status=status)
    before = stored_state(aws)
    response = api.post(f"/v0.7/networks/{network['id']}/inference", headers=HEADERS, json=body)
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json["error"].endswith(".")
    assert queued(aws) == []
    assert stored_state(aws) == before


def test_submit_to_another_accounts_network_is_404(api: Client, aws: dict[str, Any]) -> None:
    network = ready_network(api)
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers={"X-API-KEY": OTHER_KEY},
        json={"inputs": [{"image": {"source": "https://example.com/a.jpg"}}]},
    )
    assert response.status_code == 404
    assert queued(aws) == []


TRIANGLE = [{"x": 0.1, "y": 0.2}, {"x": 0.9, "y": 0.25}, {"x": 0.45, "y": 0.95}]


def test_submit_with_every_field_the_v07_client_sends_reaches_the_worker_and_the_task(
    api: Client, aws: dict[str, Any]
) -> None:
    from tensorgate import wiring

    # Given a ready network
    network = ready_network(api)
    # When the request carries the region fields and the labelled-output options
    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers=HEADERS,
        json={
            "inputs": [
                {
                    "image": {
                        "source": "https://example.com/cat.jpg",
                        "crop_uniform_background": True,
                        "polygon": TRIANGLE,
                    }
                }
            ],
            "show_discarded": True,
            "max_predictions": 7,
        },
    )
    # Then the worker's message carries them
    assert response.status_code == 200, response.text
    [message] = queued(aws)
    image = message["inputs"][0]
    assert image["polygon"] == [[0.1, 0.2], [0.9, 0.25], [0.45, 0.95]]
    assert image["crop_uniform_background"] is True
    assert (message["show_discarded"], message["max_predictions"]) == (True, 7)
    # And the task keeps them, and answers the v0.7 service's field names too
    task_id = response.json["task_id"]
    stored = wiring.task_service()._tasks.get(task_id)
    assert (stored.show_discarded, stored.max_predictions) == (True, 7)
    task = api.get(f"/v0.7/tasks/{task_id}/", headers=HEADERS).json
    assert task["date_created"] == task["create_date"] and task["date_updated"] == task["update_date"]
    assert task["subtasks"] is None


def test_submit_multipart_flattened_as_the_v07_client_sends_it(api: Client, aws: dict[str, Any]) -> None:
    # Given a ready network and the client's multipart form: the image as a file part, every other
    # value as a text part (`False`, `0.1`, ...), nested keys flattened the Django-REST way
    network = ready_network(api)
    fields: dict[str, Any] = {
        "inputs[0]image.source": (io.BytesIO(IMAGE), "inputs[0]image.source"),
        "inputs[0]image.crop_uniform_background": "False",
        "show_discarded": "True",
        "max_predictions": "3",
    }
    for index, point in enumerate(TRIANGLE):
        fields[f"inputs[0]image.polygon[{index}]x"] = str(point["x"])
        fields[f"inputs[0]image.polygon[{index}]y"] = str(point["y"])
    # When
    response = api.post(f"/v0.7/networks/{network['id']}/inference", headers=HEADERS, data=fields)
    # Then the values arrive typed
    assert response.status_code == 200, response.text
    [message] = queued(aws)
    image = message["inputs"][0]
    assert image["source"] == {"kind": "inline", "data": base64.b64encode(IMAGE).decode()}
    assert image["polygon"] == [[0.1, 0.2], [0.9, 0.25], [0.45, 0.95]]
    assert image["crop_uniform_background"] is False
    assert (message["show_discarded"], message["max_predictions"]) == (True, 3)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_submit_with_another_media_type_is_415_as_create_and_patch(
    api: Client, aws: dict[str, Any], content_type: str
) -> None:
    network = ready_network(api)
    before = stored_state(aws)
    body = json.dumps({"inputs": [{"image": {"source": "https://example.com/cat.jpg"}}]})

    response = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers={**HEADERS, "Content-Type": content_type},
        data=body,
    )

    assert response.status_code == 415, response.text
    assert "Content-Type" in response.json["error"]
    assert queued(aws) == []
    assert stored_state(aws) == before


def test_submit_zero_byte_multipart_image_is_400_as_empty_base64(api: Client, aws: dict[str, Any]) -> None:
    network = ready_network(api)
    before = stored_state(aws)

    # The body `requests` writes for an empty file part (Werkzeug's own encoder drops the part's CRLF).
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="inputs[0]image.source"; filename="empty.jpg"\r\n\r\n'
        b"\r\n--b0undary--\r\n"
    )
    multipart = api.post(
        f"/v0.7/networks/{network['id']}/inference",
        headers={**HEADERS, "Content-Type": "multipart/form-data; boundary=b0undary"},
        data=body,
    )
    base64_form = api.post(
        f"/v0.7/networks/{network['id']}/inference", headers=HEADERS, json={"inputs": [{"image": {"source": ""}}]}
    )

    assert multipart.status_code == base64_form.status_code == 400, multipart.text
    assert multipart.json["error"] == base64_form.json["error"] == "Input 0 is empty."
    assert queued(aws) == []
    assert stored_state(aws) == before
