"""SQS queues: sending work, and the receive/delete/extend calls the worker uses."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from tensorgate.adapters.aws import client, error_code
from tensorgate.errors import StorageUnavailable

log = logging.getLogger(__name__)


class SqsQueue:
    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self.url = queue_url
        self._sqs = sqs or client("sqs")

    def send(self, body: dict[str, Any], group: str | None = None) -> str:
        try:
            response = self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))
        except ClientError as error:
            raise StorageUnavailable(
                f"The work queue could not take the request right now ({error_code(error)}); retry shortly."
            ) from None
        return str(response["MessageId"])

    def send_later(self, body: dict[str, Any], delay_seconds: int) -> str:
        """A message delivered after `delay_seconds` (SQS takes at most 900): a job checking back on another."""
        try:
            response = self._sqs.send_message(
                QueueUrl=self.url, MessageBody=json.dumps(body), DelaySeconds=max(0, min(900, delay_seconds))
            )
        except ClientError as error:
            raise StorageUnavailable(
                f"The work queue could not take the request right now ({error_code(error)}); retry shortly."
            ) from None
        return str(response["MessageId"])

    def send_many(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Send by tens (SendMessageBatch); entries SQS refused are sent again, then reported."""
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(index), "MessageBody": json.dumps(body)}
                for index, body in enumerate(bodies[start : start + 10])
            ]
            for _ in range(3):
                try:
                    response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
                except ClientError as error:
                    raise StorageUnavailable(
                        f"The work queue could not take the job right now ({error_code(error)}); retry shortly."
                    ) from None
                refused = {failure["Id"] for failure in response.get("Failed", [])}
                entries = [entry for entry in entries if entry["Id"] in refused]
                if not entries:
                    break
            if entries:
                raise StorageUnavailable("The work queue refused part of the job; retry shortly.")

    def receive(
        self, max_messages: int = 10, wait_seconds: int = 20, visibility_seconds: int | None = None
    ) -> list[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "AttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_seconds is not None:
            arguments["VisibilityTimeout"] = visibility_seconds
        return list(self._sqs.receive_message(**arguments).get("Messages", []))

    def delete(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            entries = [
                {"Id": str(index), "ReceiptHandle": handle}
                for index, handle in enumerate(receipt_handles[start : start + 10])
            ]
            response = self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
            for failure in response.get("Failed", []):
                # A stale receipt handle (the message was delivered again meanwhile): it comes back and is deleted then.
                log.warning("a message could not be deleted (%s: %s)", failure.get("Code"), failure.get("Message"))

    def extend(self, receipt_handles: list[str], visibility_seconds: int) -> None:
        for start in range(0, len(receipt_handles), 10):
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": visibility_seconds}
                for index, handle in enumerate(receipt_handles[start : start + 10])
            ]
            # Entries refused are messages deleted meanwhile (a heartbeat racing a completion): nothing to do.
            self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
