"""Services built from settings and the boto3 adapters, once per process (Lambda container reuse)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from tensorgate.config import get_settings

if TYPE_CHECKING:
    from tensorgate.adapters.dynamodb import DynamoTaskRepository
    from tensorgate.services.auth import AuthService
    from tensorgate.services.conversions import ConversionService, Converter
    from tensorgate.services.dataset_jobs import (
        DatasetJobService,
        DetectionEvaluator,
        Evaluator,
        Extractor,
        Transformer,
    )
    from tensorgate.services.datasets import DatasetService
    from tensorgate.services.endpoints import EndpointService
    from tensorgate.services.inference import InferenceService
    from tensorgate.services.job_archives import JobArchives, Unpacker
    from tensorgate.services.jobs import JobService
    from tensorgate.services.networks import NetworkService
    from tensorgate.services.recognition import RecognitionService
    from tensorgate.services.tasks import TaskService

# Each builder imports its own adapters and service: a handler's cold start loads only the
# services it uses (the tasks API never loads the preprocessing schemas, for example).


@cache
def network_service() -> NetworkService:
    from tensorgate.adapters.dynamodb import DynamoIdAllocator, DynamoNetworkRepository, DynamoTaskRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.services.networks import NetworkService, UploadPolicy

    settings = get_settings()
    return NetworkService(
        networks=DynamoNetworkRepository(settings.networks_table),
        tasks=DynamoTaskRepository(settings.tasks_table),
        ids=DynamoIdAllocator(settings.counters_table),
        blobs=S3BlobStore(settings.model_bucket),
        policy=UploadPolicy(
            max_file_bytes=settings.max_file_bytes,
            max_archive_bytes=settings.max_archive_bytes,
            presigned_upload_seconds=settings.presigned_upload_seconds,
            task_ttl_days=settings.task_ttl_days,
        ),
        on_delete=lambda account_id, network_id: recognition_service().delete_network_versions(account_id, network_id),
    )


@cache
def recognition_service() -> RecognitionService:
    from tensorgate.adapters.dynamodb import DynamoIdAllocator, DynamoNetworkRepository, DynamoRecognitionRepository
    from tensorgate.services.recognition import RecognitionService

    settings = get_settings()
    return RecognitionService(
        recognition=DynamoRecognitionRepository(settings.networks_table),
        networks=DynamoNetworkRepository(settings.networks_table),
        ids=DynamoIdAllocator(settings.counters_table),
    )


@cache
def task_service() -> TaskService:
    from tensorgate.adapters.dynamodb import DynamoTaskRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.services.tasks import TaskService

    settings = get_settings()
    return TaskService(DynamoTaskRepository(settings.tasks_table), results=S3BlobStore(settings.model_bucket))


@cache
def inference_service() -> InferenceService:
    from tensorgate.adapters.dynamodb import DynamoIdAllocator, DynamoNetworkRepository, DynamoTaskRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.adapters.sqs import SqsQueue
    from tensorgate.services.inference import InferencePolicy, InferenceService

    settings = get_settings()
    return InferenceService(
        networks=DynamoNetworkRepository(settings.networks_table),
        tasks=DynamoTaskRepository(settings.tasks_table),
        ids=DynamoIdAllocator(settings.counters_table),
        blobs=S3BlobStore(settings.model_bucket),
        queue=SqsQueue(settings.inference_queue_url),
        policy=InferencePolicy(bucket=settings.model_bucket, task_ttl_days=settings.task_ttl_days),
    )


@cache
def endpoint_service() -> EndpointService:
    from tensorgate.adapters.dynamodb import DynamoIdAllocator, DynamoNetworkRepository
    from tensorgate.adapters.dynamodb_endpoints import DynamoEndpointRepository
    from tensorgate.services.endpoints import EndpointService, PredictPolicy

    settings = get_settings()
    capacity = None
    if settings.cpu_worker_service or settings.gpu_worker_service:  # deployed: replicas hold the workers warm
        from tensorgate.adapters.autoscaling import WorkerServiceCapacity

        capacity = WorkerServiceCapacity(
            counters_table=settings.counters_table,
            services={"cpu": settings.cpu_worker_service, "gpu": settings.gpu_worker_service},
        )
    cpu_queue = None
    if settings.cpu_inference_queue_url:  # deployed: CPU endpoints' predictions go to the CPU workers
        from tensorgate.adapters.sqs import SqsQueue

        cpu_queue = SqsQueue(settings.cpu_inference_queue_url)
    return EndpointService(
        endpoints=DynamoEndpointRepository(settings.networks_table),
        networks=DynamoNetworkRepository(settings.networks_table),
        recognition=recognition_service(),
        inference=inference_service(),
        tasks=task_service(),
        ids=DynamoIdAllocator(settings.counters_table),
        capacity=capacity,
        cpu_queue=cpu_queue,
        policy=PredictPolicy(budget_seconds=settings.predict_budget_seconds),
    )


@cache
def job_service() -> JobService:
    from tensorgate.adapters.dynamodb import DynamoNetworkRepository
    from tensorgate.adapters.dynamodb_jobs import DynamoJobRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.adapters.sqs import SqsQueue
    from tensorgate.services.jobs import JobPolicy, JobService, JobTargets

    settings = get_settings()
    return JobService(
        jobs=DynamoJobRepository(settings.tasks_table, settings.counters_table),
        networks=DynamoNetworkRepository(settings.networks_table),
        files=S3BlobStore(settings.model_bucket),
        queue=SqsQueue(settings.batch_queue_url),
        policy=JobPolicy(
            bucket=settings.model_bucket,
            task_ttl_days=settings.task_ttl_days,
            max_archive_bytes=settings.max_archive_bytes,
            presigned_upload_seconds=settings.presigned_upload_seconds,
        ),
        targets=JobTargets(recognition_service(), endpoint_service()),
        splits=dataset_service(),
    )


def job_archives(unpack: Unpacker) -> JobArchives:
    from tensorgate.adapters.dynamodb_jobs import DynamoJobRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.services.job_archives import JobArchives

    settings = get_settings()
    return JobArchives(
        job_service(),
        DynamoJobRepository(settings.tasks_table, settings.counters_table),
        S3BlobStore(settings.model_bucket),
        unpack,
    )


@cache
def auth_service() -> AuthService:
    from tensorgate.adapters.dynamodb import DynamoApiKeyRepository
    from tensorgate.services.auth import AuthService

    settings = get_settings()
    gateway_keys = None
    if settings.usage_plan_id:  # deployed: keys also join API Gateway's usage plan (per-key throttling)
        from tensorgate.adapters.apigateway import ApiGatewayKeys

        gateway_keys = ApiGatewayKeys(settings.usage_plan_id)
    return AuthService(
        DynamoApiKeyRepository(settings.api_keys_table), settings.api_key_pepper, gateway_keys=gateway_keys
    )


def conversion_service(converter: Converter | None = None) -> ConversionService:
    from datetime import timedelta

    from tensorgate.adapters.dynamodb import DynamoNetworkRepository, DynamoTaskRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.services.conversions import ConversionService

    settings = get_settings()
    return ConversionService(
        networks=DynamoNetworkRepository(settings.networks_table),
        tasks=DynamoTaskRepository(settings.tasks_table),
        files=S3BlobStore(settings.model_bucket),
        converter=converter,
        claim_expiry=timedelta(seconds=settings.conversion_claim_seconds),
    )


@cache
def dataset_service() -> DatasetService:
    from tensorgate.adapters.dynamodb import DynamoIdAllocator, DynamoNetworkRepository, DynamoTaskRepository
    from tensorgate.adapters.dynamodb_datasets import DynamoDatasetRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.adapters.sqs import SqsQueue
    from tensorgate.services.datasets import DatasetPolicy, DatasetService
    from tensorgate.services.jobs import JobTargets

    settings = get_settings()
    return DatasetService(
        datasets=DynamoDatasetRepository(settings.networks_table),
        tasks=DynamoTaskRepository(settings.tasks_table),
        ids=DynamoIdAllocator(settings.counters_table),
        files=S3BlobStore(settings.model_bucket),
        queue=SqsQueue(settings.dataset_queue_url),
        networks=DynamoNetworkRepository(settings.networks_table),
        targets=JobTargets(recognition_service(), endpoint_service()),
        jobs=job_service,  # built on first use: the job service takes this one for split inputs
        policy=DatasetPolicy(
            max_archive_bytes=settings.max_archive_bytes,
            presigned_upload_seconds=settings.presigned_upload_seconds,
            task_ttl_days=settings.task_ttl_days,
        ),
    )


def dataset_job_service(
    extractor: Extractor | None = None,
    transformer: Transformer | None = None,
    evaluator: Evaluator | None = None,
    detection_evaluator: DetectionEvaluator | None = None,
) -> DatasetJobService:
    from tensorgate.adapters.dynamodb import DynamoTaskRepository
    from tensorgate.adapters.dynamodb_datasets import DynamoDatasetRepository
    from tensorgate.adapters.s3 import S3BlobStore
    from tensorgate.adapters.sqs import SqsQueue
    from tensorgate.services.dataset_jobs import DatasetJobService

    settings = get_settings()
    return DatasetJobService(
        datasets=DynamoDatasetRepository(settings.networks_table),
        tasks=DynamoTaskRepository(settings.tasks_table),
        files=S3BlobStore(settings.model_bucket),
        extractor=extractor,
        transformer=transformer,
        evaluator=evaluator,
        detection_evaluator=detection_evaluator,
        jobs=job_service(),
        queue=SqsQueue(settings.dataset_queue_url),
        bucket=settings.model_bucket,
    )


def task_repository() -> DynamoTaskRepository:
    from tensorgate.adapters.dynamodb import DynamoTaskRepository

    return DynamoTaskRepository(get_settings().tasks_table)


def reset() -> None:
    """Forget settings, clients and services (tests change the environment between cases)."""
    from tensorgate.adapters.aws import reset_clients

    get_settings.cache_clear()
    reset_clients()
    for builder in (
        network_service,
        task_service,
        auth_service,
        inference_service,
        recognition_service,
        endpoint_service,
        dataset_service,
        job_service,
    ):
        builder.cache_clear()
