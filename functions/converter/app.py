"""Converter: S3 upload events from the conversion queue → `model.onnx` checked against the original."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import wiring
from tensorgate.errors import ConversionRejected
from tensorgate.events import s3_keys
from tensorgate.models import Network
from tensorgate.services.conversions import ConversionOutcome, ConversionService

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def convert(source_dir: Path, output_dir: Path, network: Network) -> ConversionOutcome:
    """The converter port: TensorFlow and tf2onnx are imported on the first conversion, not at cold start."""
    from functions.converter.convert import DECLARED_FILES_DIRECTORY, ConversionOptions, convert_network
    from functions.converter.errors import ConversionFailed

    try:
        result = convert_network(
            source_dir,
            output_dir,
            framework=network.framework,
            preprocessing=network.preprocessing,
            postprocessings=network.postprocessings,
            input_spec=network.input_spec,
            output_spec=network.output_spec,
            options=ConversionOptions.from_network(network.conversion_options),
        )
    except ConversionFailed as failure:
        raise ConversionRejected(failure.message, failure.to_dict()) from None
    return ConversionOutcome(
        model_files=[output_dir / name for name in result.model_files],
        declared_files=[output_dir / DECLARED_FILES_DIRECTORY / name for name in result.declared_files],
        report=result.to_dict(),
        inputs=result.inputs,
        outputs=result.outputs,
        preprocessing=result.preprocessing,
    )


@cache
def service() -> ConversionService:
    return wiring.conversion_service(convert)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    for key in s3_keys(record.body):
        logger.info("upload received", extra={"key": key})
        outcome = service().handle_upload(key)
        logger.info("upload handled", extra={"key": key, "outcome": outcome})
        if outcome == "success":
            metrics.add_metric(name="NetworksDeployed", unit="Count", value=1)
        elif outcome.startswith("error"):
            metrics.add_metric(name="DeploysFailed", unit="Count", value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
