"""Dataset worker: extractions (S3 uploads), transformations, splits and evaluations from the dataset queue."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import wiring
from tensorgate.dataset_models import Dataset
from tensorgate.events import s3_keys
from tensorgate.services.dataset_jobs import DatasetJobInProgress, DatasetJobService, ExtractionRejected, ItemSink
from tensorgate.services.dataset_jobs.common import FoundBoxes, TruthBoxes
from tensorgate.services.job_archives import JobArchives

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
# The queue's maxReceiveCount: the last delivery that fails ends the job in error instead of leaving it pending.
LAST_DELIVERY = 3
# Datasets hold many more entries than a model archive.
MAX_ARCHIVE_MEMBERS = 1_000_000
JOB_UPLOADS = "job-uploads/"


def extract(
    archive: Path, workdir: Path, labels: Path | None, dataset: Dataset, sink: ItemSink, progress: Any
) -> dict[str, Any]:
    """The extractor port: the converter's archive refusals, then the dataset layouts (Pillow). A zip is read
    member by member, never unpacked (a dataset's many small files cost more to write than to decode); a tar,
    which has no index to read by name, is unpacked by the converter's safe extraction."""
    from functions.converter.archives import ArchiveLimits, ZipMembers, extract_archive
    from functions.converter.errors import ConversionFailed
    from functions.dataset_worker.extraction import DirectorySource, LabelFile, Source
    from functions.dataset_worker.extraction import extract as extract_items

    limits = ArchiveLimits(max_members=MAX_ARCHIVE_MEMBERS)
    label_file = None if labels is None else LabelFile(labels.name, labels.read_bytes())
    members: ZipMembers | None = None
    try:
        source: Source
        if archive.name.lower().endswith(".zip"):
            source = members = ZipMembers(archive, limits)
        else:
            extract_archive(archive, workdir, limits)
            source = DirectorySource(workdir)
        return extract_items(source, label_file, dataset.kind, dataset.classes, sink, progress)
    except ConversionFailed as failure:
        raise ExtractionRejected(failure.message) from None
    finally:
        if members is not None:
            members.close()


def transform(data: bytes, steps: list[dict[str, Any]], boxes: list[list[float]]) -> Any:
    from tensorgate_preprocessing.transformations import transform_image

    return transform_image(data, steps, boxes)


def evaluate(truth: list[int], scores: list[list[float]], labels: list[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The evaluator port: the metrics library (numpy) and the confusion matrix drawn by matplotlib."""
    from tensorgate_preprocessing.metrics import classification_metrics

    from functions.dataset_worker.plots import confusion_matrix_png

    metrics = classification_metrics(truth, scores, labels)
    return metrics, {"confusion_matrix": confusion_matrix_png(metrics["confusion_matrix"], labels)}


def evaluate_detections(
    truths: list[TruthBoxes], detections: list[FoundBoxes], labels: list[str]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The detection evaluator port: COCO mAP by the metrics library (numpy) and the PR curves drawn by matplotlib."""
    from tensorgate_preprocessing.metrics import Boxes, detection_metrics

    from functions.dataset_worker.plots import precision_recall_png

    truth_boxes = [Boxes.of([box for _, box in item], [label for label, _ in item]) for item in truths]
    found_boxes = [
        Boxes.of([box for _, _, box in item], [label for label, _, _ in item], [score for _, score, _ in item])
        for item in detections
    ]
    metrics = detection_metrics(truth_boxes, found_boxes, labels) | {"labels": list(labels)}
    return metrics, {"precision_recall": precision_recall_png(metrics["pr_curves_iou_50"])}


@cache
def service() -> DatasetJobService:
    return wiring.dataset_job_service(extract, transform, evaluate, evaluate_detections)


@cache
def job_archives() -> JobArchives:
    """A batch job's archive of images (its upload under `job-uploads/`) becomes the job's items here."""
    from functions.dataset_worker.job_archive import unpack

    return wiring.job_archives(unpack)


def _upload(key: str) -> str:
    return job_archives().handle_upload(key) if key.startswith(JOB_UPLOADS) else service().handle_upload(key)


def _handle(body: str) -> list[str]:
    keys = s3_keys(body)
    if keys:
        return [_upload(key) for key in keys]
    try:
        message = json.loads(body)
    except ValueError:
        return ["ignored: not JSON"]
    job = message.get("dataset_job") if isinstance(message, dict) else None
    return [service().handle_job(job)] if isinstance(job, dict) else ["ignored: neither an upload nor a job"]


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    try:
        outcomes = _handle(record.body)
    except DatasetJobInProgress:
        raise
    except Exception as error:
        deliveries = int(record.attributes.approximate_receive_count or 1)
        if deliveries < LAST_DELIVERY:
            raise
        logger.exception("dataset job failed on its last delivery")
        _give_up(record.body, f"The dataset job failed {deliveries} times ({type(error).__name__}); retry it.")
        return
    for outcome in outcomes:
        logger.info("dataset message handled", extra={"outcome": outcome})
        if outcome.startswith("success"):
            metrics.add_metric(name="DatasetJobsSucceeded", unit="Count", value=1)
        elif outcome.startswith("error"):
            metrics.add_metric(name="DatasetJobsFailed", unit="Count", value=1)


def _give_up(body: str, message: str) -> None:
    keys = s3_keys(body)
    if keys:
        for key in keys:
            if key.startswith(JOB_UPLOADS):
                job_archives().give_up(
                    key, "The job's archive could not be read after several attempts; create the job again."
                )
            else:
                service().give_up(key, None, message)
        return
    job = json.loads(body).get("dataset_job")
    service().give_up(None, job, message)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
