"""The converter handler and conversion service under moto: outcomes recorded once, whatever the events do."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from werkzeug.test import Client

from tests.conftest import DEV_KEY

HEADERS = {"X-API-KEY": DEV_KEY}


def create(api: Client, files: dict[str, bytes] | None = None, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "net", **fields}
    for name, content in (files or {"model.onnx": b"onnx"}).items():
        data[name] = (io.BytesIO(content), name)
    response = api.post("/v0.7/networks", headers=HEADERS, data=data)
    assert response.status_code == 201, response.text
    return response.json


def conversion_messages(aws: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = aws["session"].client("sqs")
    url = sqs.get_queue_url(QueueName="ConversionQueue")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m for m in messages if "Records" in json.loads(m["Body"])]


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ConversionQueue",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


class FakeConverter:
    """Stands in for TensorFlow: writes a model file, or refuses, or crashes."""

    def __init__(self, mode: str = "success") -> None:
        self.mode = mode
        self.calls = 0

    def __call__(self, source_dir: Path, output_dir: Path, network: Any) -> Any:
        from tensorgate.errors import ConversionRejected
        from tensorgate.services.conversions import ConversionOutcome

        self.calls += 1
        self.seen = sorted(path.name for path in source_dir.iterdir())
        self.network = network
        if self.mode == "reject":
            raise ConversionRejected("Unsupported op 'Foo' at opset 17.", {"reason": "unsupported_ops"})
        if self.mode == "crash":
            raise MemoryError("converter ran out of memory")
        model = output_dir / "model.onnx"
        model.write_bytes(b"converted")
        signature = [{"name": "x", "dtype": "float32", "shape": ["batch", 3]}]
        return ConversionOutcome([model], {"parity": {"passed": True}}, signature, signature)


@pytest.fixture
def handler(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from functions.converter import app

    def install(converter: FakeConverter) -> Any:
        from tensorgate import wiring

        monkeypatch.setattr(app, "service", lambda: wiring.conversion_service(converter))
        return app.handler

    return install


def lambda_context() -> Any:
    from tensorgate_local.lambdas import LocalContext

    return LocalContext(function_name="Converter", timeout_seconds=900)


def test_manifest_event_converts_once_and_duplicates_are_ignored(
    api: Client, aws: dict[str, Any], handler: Any
) -> None:
    network = create(api, {"model.onnx": b"onnx", "mean.npy": b"mean"})
    converter = FakeConverter()
    run = handler(converter)
    messages = conversion_messages(aws)
    assert len(messages) == 1
    # When the same S3 event arrives twice (S3 and SQS both deliver at least once)
    assert run(sqs_event(messages), lambda_context()) == {"batchItemFailures": []}
    assert run(sqs_event(messages), lambda_context()) == {"batchItemFailures": []}
    # Then it converted once, with the uploaded files, and the records say so
    assert converter.calls == 1 and converter.seen == ["mean.npy", "model.onnx"]
    body = api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS).json
    assert body["status"] == "ready" and body["inputs"][0]["name"] == "x"
    task = api.get(f"/v0.7/tasks/{network['task_id']}", headers=HEADERS).json
    assert task["status"] == "success" and task["data"] == {"parity": {"passed": True}}
    s3 = aws["session"].client("s3")
    bucket = aws["template"].physical_name("ModelBucket")
    assert s3.get_object(Bucket=bucket, Key=f"models/dev/{network['id']}/model.onnx")["Body"].read() == b"converted"


def test_conversion_options_given_at_create_reach_the_converter(api: Client, aws: dict[str, Any], handler: Any) -> None:
    from functions.converter.convert import ConversionOptions

    options = {"signature": "negate", "opset": 16, "max_rel_diff": 0.001}
    create(api, conversion_options=json.dumps(options))
    converter = FakeConverter()

    assert handler(converter)(sqs_event(conversion_messages(aws)), lambda_context()) == {"batchItemFailures": []}

    given = ConversionOptions.from_network(converter.network.conversion_options)
    assert (given.signature, given.opset, given.max_rel_diff) == ("negate", 16, 0.001)


def test_rejected_conversion_ends_network_and_task_in_error_with_the_reason(
    api: Client, aws: dict[str, Any], handler: Any
) -> None:
    network = create(api)
    run = handler(FakeConverter("reject"))
    assert run(sqs_event(conversion_messages(aws)), lambda_context()) == {"batchItemFailures": []}
    body = api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS).json
    task = api.get(f"/v0.7/tasks/{network['task_id']}", headers=HEADERS).json
    assert body["status"] == "error" and "Unsupported op 'Foo'" in body["error"]
    assert task["status"] == "error" and task["error"] == "Unsupported op 'Foo' at opset 17."


def test_crash_fails_the_record_releases_the_claim_and_the_dead_letter_ends_the_task(
    api: Client, aws: dict[str, Any], handler: Any
) -> None:
    from functions.dead_letter_handler import app as dead_letters

    network = create(api)
    converter = FakeConverter("crash")
    run = handler(converter)
    messages = conversion_messages(aws)
    # A crash fails the record (the whole batch, when every record failed): SQS redelivers it, and
    # the claim was released, so the next attempt converts again at once.
    for _ in range(2):
        with pytest.raises(BatchProcessingError):
            run(sqs_event(messages), lambda_context())
    assert converter.calls == 2
    assert api.get(f"/v0.7/tasks/{network['task_id']}", headers=HEADERS).json["status"] == "pending"
    # After maxReceiveCount the message reaches the dead-letter queue, whose handler ends the task.
    assert dead_letters.handler(sqs_event(messages), lambda_context()) == {"batchItemFailures": []}
    task = api.get(f"/v0.7/tasks/{network['task_id']}", headers=HEADERS).json
    assert task["status"] == "error" and "did not complete" in task["error"]
    assert api.get(f"/v0.7/networks/{network['id']}", headers=HEADERS).json["status"] == "error"


def test_event_for_a_deleted_network_is_ignored(api: Client, aws: dict[str, Any], handler: Any) -> None:
    network = create(api)
    messages = conversion_messages(aws)
    api.delete(f"/v0.7/networks/{network['id']}", headers=HEADERS)
    converter = FakeConverter()
    assert handler(converter)(sqs_event(messages), lambda_context()) == {"batchItemFailures": []}
    assert converter.calls == 0


def test_a_live_claim_makes_the_duplicate_retry_later(api: Client, aws: dict[str, Any]) -> None:
    from tensorgate import wiring
    from tensorgate.services.conversions import ConversionInProgress

    network = create(api)
    service = wiring.conversion_service(FakeConverter())
    record = service._networks.get("dev", network["id"])
    service._claim(record)  # another converter holds the deploy
    with pytest.raises(ConversionInProgress):
        service.handle_upload(f"uploads/dev/{network['id']}/files/manifest.json")
    with pytest.raises(ConversionInProgress):
        service.fail_pending("dev", network["id"], "dead letter")


def test_test_event_and_foreign_keys_are_ignored(aws: dict[str, Any], handler: Any) -> None:
    converter = FakeConverter()
    run = handler(converter)
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    foreign = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"object": {"key": "models%2Fdev%2F1%2Fmodel.onnx"}},
            }
        ]
    }
    event = sqs_event(
        [
            {"MessageId": str(i), "ReceiptHandle": "r", "Body": json.dumps(body), "MD5OfBody": ""}
            for i, body in enumerate([test_event, foreign])
        ]
    )
    assert run(event, lambda_context()) == {"batchItemFailures": []}
    assert converter.calls == 0
