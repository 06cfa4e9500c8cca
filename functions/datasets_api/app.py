"""Datasets API: datasets from uploaded archives, their versions by transformation, splits, lookups (DESIGN §9)."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import errors, http, wiring
from tensorgate.api import authenticate, authenticate_author, build_resolver, logger, metrics, tracer

app = build_resolver()

DATASET = "dataset"
SPLIT = "split"
NO_FILES = "a dataset's archive and label files go to the presigned POST the create or retry answers"


def _version_name(text: str) -> str:
    from tensorgate.dataset_models import VERSION_NAME

    if VERSION_NAME.fullmatch(text) is None:
        raise errors.RouteNotFound(f"Version names are letters, digits, '.', '_' and '-'; {text[:40]!r} is not one.")
    return text


def _required(name: str) -> str:
    value = app.current_event.get_query_string_value(name)
    if not value:
        raise errors.ValidationFailed(
            f"Query parameter {name!r} is required: lookup?dataset=...&version=...&name=... names a split exactly.",
            [{"field": name, "message": "is required"}],
        )
    return value


@app.post("/v0.7/datasets")
@tracer.capture_method
def create_dataset() -> Response:
    from tensorgate.dataset_models import dataset_wire

    account_id, author = authenticate_author(app)
    created = wiring.dataset_service().create(account_id, author, http.read_json(app.current_event, NO_FILES))
    metrics.add_metric(name="DatasetsCreated", unit="Count", value=1)
    logger.info("dataset created", extra={"dataset_id": created.dataset.dataset_id})
    return http.json_response(201, dataset_wire(created.dataset, created.upload))


@app.get("/v0.7/datasets")
@tracer.capture_method
def list_datasets() -> Response:
    account_id = authenticate(app)
    page = wiring.dataset_service().list(account_id, http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/datasets/lookup")
@tracer.capture_method
def lookup_dataset() -> Response:
    from tensorgate.dataset_models import dataset_wire

    account_id = authenticate(app)
    dataset = wiring.dataset_service().lookup(account_id, http.lookup_name(app.current_event))
    return http.json_response(200, dataset_wire(dataset))


@app.get("/v0.7/datasets/splits/lookup")
@tracer.capture_method
def lookup_dataset_split() -> Response:
    from tensorgate.dataset_models import split_wire

    account_id = authenticate(app)
    split = wiring.dataset_service().lookup_split(
        account_id, _required("dataset"), _required("version"), _required("name")
    )
    return http.json_response(200, split_wire(split))


@app.get("/v0.7/datasets/<dataset_id>")
@tracer.capture_method
def get_dataset(dataset_id: str) -> Response:
    from tensorgate.dataset_models import dataset_wire

    account_id = authenticate(app)
    dataset = wiring.dataset_service().get(account_id, http.integer_id(dataset_id, DATASET))
    return http.json_response(200, dataset_wire(dataset))


@app.delete("/v0.7/datasets/<dataset_id>")
@tracer.capture_method
def delete_dataset(dataset_id: str) -> Response:
    account_id = authenticate(app)
    wiring.dataset_service().delete(account_id, http.integer_id(dataset_id, DATASET))
    return http.no_content()


@app.post("/v0.7/datasets/<dataset_id>/retry")
@tracer.capture_method
def retry_dataset(dataset_id: str) -> Response:
    from tensorgate.dataset_models import dataset_wire

    account_id = authenticate(app)
    fields = http.read_json(app.current_event, NO_FILES)
    created = wiring.dataset_service().retry(account_id, http.integer_id(dataset_id, DATASET), fields)
    metrics.add_metric(name="DatasetExtractionsRetried", unit="Count", value=1)
    return http.json_response(200, dataset_wire(created.dataset, created.upload))


@app.post("/v0.7/datasets/<dataset_id>/cancel")
@tracer.capture_method
def cancel_dataset_extraction(dataset_id: str) -> Response:
    from tensorgate.dataset_models import dataset_wire

    account_id = authenticate(app)
    dataset = wiring.dataset_service().cancel_extraction(account_id, http.integer_id(dataset_id, DATASET))
    metrics.add_metric(name="DatasetJobsCancelled", unit="Count", value=1)
    return http.json_response(200, dataset_wire(dataset))


@app.get("/v0.7/datasets/<dataset_id>/errors")
@tracer.capture_method
def list_dataset_item_errors(dataset_id: str) -> Response:
    account_id = authenticate(app)
    offset, limit = http.pagination(app.current_event)
    page = wiring.dataset_service().item_errors(account_id, http.integer_id(dataset_id, DATASET), offset, limit)
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/datasets/<dataset_id>/versions")
@tracer.capture_method
def list_dataset_versions(dataset_id: str) -> Response:
    account_id = authenticate(app)
    page = wiring.dataset_service().versions(
        account_id, http.integer_id(dataset_id, DATASET), http.list_query(app.current_event)
    )
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.post("/v0.7/datasets/<dataset_id>/versions")
@tracer.capture_method
def create_dataset_version(dataset_id: str) -> Response:
    from tensorgate.dataset_models import version_wire

    account_id, author = authenticate_author(app)
    fields = http.read_json(app.current_event, NO_FILES)
    version = wiring.dataset_service().create_version(account_id, author, http.integer_id(dataset_id, DATASET), fields)
    metrics.add_metric(name="DatasetVersionsCreated", unit="Count", value=1)
    return http.json_response(201, version_wire(version))


@app.get("/v0.7/datasets/<dataset_id>/versions/<version>")
@tracer.capture_method
def get_dataset_version(dataset_id: str, version: str) -> Response:
    from tensorgate.dataset_models import version_wire

    account_id = authenticate(app)
    found = wiring.dataset_service().version(account_id, http.integer_id(dataset_id, DATASET), _version_name(version))
    return http.json_response(200, version_wire(found))


@app.post("/v0.7/datasets/<dataset_id>/versions/<version>/cancel")
@tracer.capture_method
def cancel_dataset_version(dataset_id: str, version: str) -> Response:
    from tensorgate.dataset_models import version_wire

    account_id = authenticate(app)
    cancelled = wiring.dataset_service().cancel_version(
        account_id, http.integer_id(dataset_id, DATASET), _version_name(version)
    )
    metrics.add_metric(name="DatasetJobsCancelled", unit="Count", value=1)
    return http.json_response(200, version_wire(cancelled))


@app.get("/v0.7/datasets/<dataset_id>/versions/<version>/items")
@tracer.capture_method
def list_dataset_version_items(dataset_id: str, version: str) -> Response:
    account_id = authenticate(app)
    offset, limit = http.pagination(app.current_event)
    page = wiring.dataset_service().items(
        account_id, http.integer_id(dataset_id, DATASET), _version_name(version), offset, limit
    )
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/datasets/<dataset_id>/splits")
@tracer.capture_method
def list_dataset_splits(dataset_id: str) -> Response:
    account_id = authenticate(app)
    page = wiring.dataset_service().splits(
        account_id, http.integer_id(dataset_id, DATASET), http.list_query(app.current_event)
    )
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.post("/v0.7/datasets/<dataset_id>/splits")
@tracer.capture_method
def create_dataset_split(dataset_id: str) -> Response:
    from tensorgate.dataset_models import split_wire

    account_id, author = authenticate_author(app)
    fields = http.read_json(app.current_event, NO_FILES)
    split = wiring.dataset_service().create_split(account_id, author, http.integer_id(dataset_id, DATASET), fields)
    metrics.add_metric(name="DatasetSplitsCreated", unit="Count", value=1)
    return http.json_response(201, split_wire(split))


@app.get("/v0.7/datasets/<dataset_id>/splits/<split_id>")
@tracer.capture_method
def get_dataset_split(dataset_id: str, split_id: str) -> Response:
    from tensorgate.dataset_models import split_wire

    account_id = authenticate(app)
    split = wiring.dataset_service().split(
        account_id, http.integer_id(dataset_id, DATASET), http.integer_id(split_id, SPLIT)
    )
    return http.json_response(200, split_wire(split))


@app.get("/v0.7/datasets/<dataset_id>/splits/<split_id>/items")
@tracer.capture_method
def list_dataset_split_items(dataset_id: str, split_id: str) -> Response:
    account_id = authenticate(app)
    offset, limit = http.pagination(app.current_event)
    part = _required_part()
    page = wiring.dataset_service().split_items(
        account_id, http.integer_id(dataset_id, DATASET), http.integer_id(split_id, SPLIT), part, offset, limit
    )
    return http.json_response(200, http.page_envelope(app.current_event, page, {"part": [part]}))


@app.post("/v0.7/datasets/<dataset_id>/splits/<split_id>/evaluations")
@tracer.capture_method
def create_dataset_evaluation(dataset_id: str, split_id: str) -> Response:
    account_id, author = authenticate_author(app)
    fields = http.read_json(app.current_event, NO_FILES)
    service = wiring.dataset_service()
    evaluation = service.create_evaluation(
        account_id, author, http.integer_id(dataset_id, DATASET), http.integer_id(split_id, SPLIT), fields
    )
    metrics.add_metric(name="DatasetEvaluationsCreated", unit="Count", value=1)
    body = service.evaluation_metrics(account_id, evaluation.dataset_id, evaluation.split_id, evaluation.evaluation_id)
    return http.json_response(201, body)


@app.get("/v0.7/datasets/<dataset_id>/splits/<split_id>/evaluations/<evaluation_id>/metrics")
@tracer.capture_method
def get_dataset_evaluation_metrics(dataset_id: str, split_id: str, evaluation_id: str) -> Response:
    account_id = authenticate(app)
    body = wiring.dataset_service().evaluation_metrics(
        account_id,
        http.integer_id(dataset_id, DATASET),
        http.integer_id(split_id, SPLIT),
        http.integer_id(evaluation_id, "evaluation"),
    )
    return http.json_response(200, body)


@app.post("/v0.7/datasets/<dataset_id>/splits/<split_id>/evaluations/<evaluation_id>/cancel")
@tracer.capture_method
def cancel_dataset_evaluation(dataset_id: str, split_id: str, evaluation_id: str) -> Response:
    account_id = authenticate(app)
    service = wiring.dataset_service()
    ids = (
        http.integer_id(dataset_id, DATASET),
        http.integer_id(split_id, SPLIT),
        http.integer_id(evaluation_id, "evaluation"),
    )
    service.cancel_evaluation(account_id, *ids)
    metrics.add_metric(name="DatasetJobsCancelled", unit="Count", value=1)
    return http.json_response(200, service.evaluation_metrics(account_id, *ids))


def _required_part() -> str:
    part = app.current_event.get_query_string_value("part")
    if not part:
        raise errors.ValidationFailed(
            "Name the split's part: add ?part=train (or another part's name) to the query.",
            [{"field": "part", "message": "is required"}],
        )
    return part


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
