"""Lambda's SQS event source mapping, locally: long-poll a queue, invoke the function, delete what succeeded."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

from tensorgate_local.lambdas import LocalFunctions
from tensorgate_local.template import ACCOUNT_ID, REGION, QueueSource, Template

log = logging.getLogger("local")
# Locally a failed message comes back after this many seconds instead of the queue's visibility
# timeout (90 minutes for conversions), so retries and dead-lettering can be watched in one sitting.
LOCAL_RETRY_SECONDS = 2


def receive_visibility_seconds() -> int | None:
    """LOCAL_QUEUE_VISIBILITY_SECONDS, when set: how long a received message stays hidden.

    Unset, the queue's own VisibilityTimeout applies (5400 s for conversions, as deployed), so a
    converter killed mid-conversion has its message back after 90 minutes; a fault test sets a few
    seconds. A message is held by one poller at a time whatever this is: a poller receives its next
    batch only after the function returned.
    """
    value = os.environ.get("LOCAL_QUEUE_VISIBILITY_SECONDS", "").strip()
    return int(value) if value else None


class QueuePoller(threading.Thread):
    def __init__(
        self,
        source: QueueSource,
        template: Template,
        functions: LocalFunctions,
        sqs: Any,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"poll-{source.queue}", daemon=True)
        self._source = source
        self._functions = functions
        self._sqs = sqs
        self._stopping = stop
        self._url = template.queue_url(source.queue)
        self._arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{source.queue}"
        self._visibility_seconds = receive_visibility_seconds()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:
                if not self._stopping.is_set():
                    log.exception("poller %s failed; continuing", self._source.queue)
                    self._stopping.wait(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        arguments: dict[str, Any] = {
            "QueueUrl": self._url,
            "MaxNumberOfMessages": min(10, self._source.batch_size),
            "WaitTimeSeconds": wait_seconds,
            "AttributeNames": ["All"],
        }
        if self._visibility_seconds is not None:
            arguments["VisibilityTimeout"] = self._visibility_seconds
        messages = self._sqs.receive_message(**arguments).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(message) for message in messages]}
        log.info("%s received %d message(s) from %s", self._source.function, len(messages), self._source.queue)
        started = time.monotonic()
        try:
            result = self._functions.invoke(self._source.function, event) or {}
        except Exception:
            log.exception(
                "%s failed on a batch of %d; the messages will be retried",
                self._source.function,
                len(messages),
            )
            self._retry_later(messages)
            return len(messages)
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        log.info(
            "%s handled %d message(s) from %s in %.1f s, %d failed",
            self._source.function,
            len(messages),
            self._source.queue,
            time.monotonic() - started,
            len(failed),
        )
        if failed and not self._source.reports_batch_failures:
            self._retry_later(messages)
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        self._retry_later([m for m in messages if m["MessageId"] in failed])
        return len(messages)

    def _retry_later(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self._sqs.change_message_visibility(
                QueueUrl=self._url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=LOCAL_RETRY_SECONDS,
            )

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": REGION,
        }
