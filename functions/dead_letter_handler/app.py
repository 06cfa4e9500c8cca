"""Dead-letter handler: ends the tasks of messages that kept failing, so no task stays pending."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import layout, wiring
from tensorgate.events import s3_keys

logger = Logger()
# botocore is the only library this handler calls out with; patching all would import requests.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

CONVERSION_FAILED = (
    "The conversion did not complete after several attempts (the converter crashed or timed out). "
    "Check that the model files load with the framework given, then create the network again."
)
INFERENCE_FAILED = "The inference did not complete after several attempts (the worker crashed or timed out)."


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    keys = s3_keys(record.body)
    if keys:
        conversions = wiring.conversion_service()
        for key in keys:
            parsed = layout.parse_upload_key(key)
            if parsed is not None and conversions.fail_pending(parsed[0], parsed[1], CONVERSION_FAILED):
                logger.warning("deploy ended by dead letter", extra={"key": key})
                metrics.add_metric(name="DeploysDeadLettered", unit="Count", value=1)
        return
    # Imported here, like the services in `wiring`: pydantic and the models load on the first record.
    from tensorgate.services.conversions import fail_task

    message: Any = json.loads(record.body)
    task_id = message.get("task_id") if isinstance(message, dict) else None
    if isinstance(task_id, int) and isinstance(message.get("job_id"), int):
        # A job's item: counted on its job as failed, and the job settled if it was the last.
        if wiring.job_service().fail_item(task_id, INFERENCE_FAILED, wiring.task_repository()):
            logger.warning("job item ended by dead letter", extra={"task_id": task_id, "job_id": message["job_id"]})
            metrics.add_metric(name="JobItemsDeadLettered", unit="Count", value=1)
        return
    if isinstance(task_id, int) and fail_task(wiring.task_repository(), task_id, INFERENCE_FAILED):
        logger.warning("inference ended by dead letter", extra={"task_id": task_id})
        metrics.add_metric(name="InferencesDeadLettered", unit="Count", value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        coldstart.resume()
