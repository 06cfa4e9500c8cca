"""Endpoints API: named deployments with a synchronous predict, lookup and search (DESIGN §8)."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import errors, forms, http, wiring
from tensorgate.api import authenticate, authenticate_author, build_resolver, logger, metrics, tracer

app = build_resolver()

ENDPOINT = "endpoint"
NO_FILES = "endpoints are JSON fields only"
# What a predict leaves of the function's time for answering, whatever the budget says.
ANSWER_MARGIN_SECONDS = 2.0


@app.post("/v0.7/endpoints")
@tracer.capture_method
def create_endpoint() -> Response:
    account_id, author = authenticate_author(app)
    endpoint = wiring.endpoint_service().create(account_id, author, http.read_json(app.current_event, NO_FILES))
    metrics.add_metric(name="EndpointsCreated", unit="Count", value=1)
    logger.info("endpoint created", extra={"endpoint_id": endpoint.endpoint_id})
    return http.json_response(201, endpoint.to_wire())


@app.get("/v0.7/endpoints")
@tracer.capture_method
def list_endpoints() -> Response:
    account_id = authenticate(app)
    page = wiring.endpoint_service().list_endpoints(account_id, http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/endpoints/lookup")
@tracer.capture_method
def lookup_endpoint() -> Response:
    account_id = authenticate(app)
    endpoint = wiring.endpoint_service().lookup(account_id, http.lookup_name(app.current_event))
    return http.json_response(200, endpoint.to_wire())


@app.get("/v0.7/endpoints/<endpoint_id>")
@tracer.capture_method
def get_endpoint(endpoint_id: str) -> Response:
    account_id = authenticate(app)
    endpoint = wiring.endpoint_service().get(account_id, http.integer_id(endpoint_id, ENDPOINT))
    return http.json_response(200, endpoint.to_wire())


@app.patch("/v0.7/endpoints/<endpoint_id>")
@tracer.capture_method
def update_endpoint(endpoint_id: str) -> Response:
    account_id = authenticate(app)
    changes = http.read_json(app.current_event, NO_FILES)
    endpoint = wiring.endpoint_service().update(account_id, http.integer_id(endpoint_id, ENDPOINT), changes)
    return http.json_response(200, endpoint.to_wire())


@app.delete("/v0.7/endpoints/<endpoint_id>")
@tracer.capture_method
def delete_endpoint(endpoint_id: str) -> Response:
    account_id = authenticate(app)
    wiring.endpoint_service().delete(account_id, http.integer_id(endpoint_id, ENDPOINT))
    return http.no_content()


@app.post("/v0.7/endpoints/<endpoint_id>/shutdown")
@tracer.capture_method
def shutdown_endpoint(endpoint_id: str) -> Response:
    account_id = authenticate(app)
    endpoint = wiring.endpoint_service().shutdown(account_id, http.integer_id(endpoint_id, ENDPOINT))
    metrics.add_metric(name="EndpointsShutDown", unit="Count", value=1)
    return http.json_response(200, endpoint.to_wire())


@app.post("/v0.7/endpoints/<endpoint_id>/predict")
@tracer.capture_method
def predict(endpoint_id: str) -> Response:
    account_id = authenticate(app)
    event = app.current_event
    form = http.read_form(event)
    content_type = event.get_header_value("Content-Type", case_sensitive=False)
    fields = form.nested_with_files() if forms.media_type(content_type) == "multipart/form-data" else form.fields
    wait = _wait_seconds(event.get_query_string_value("wait"))
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
    wait = max(0.0, remaining if wait is None else min(wait, remaining))
    prediction = wiring.endpoint_service().predict(
        account_id, http.integer_id(endpoint_id, ENDPOINT), fields, wait_seconds=wait
    )
    metrics.add_metric(name="EndpointPredictions", unit="Count", value=len(prediction.tasks))
    if not prediction.complete:
        metrics.add_metric(name="EndpointPredictionsDeferred", unit="Count", value=1)
    return http.json_response(200 if prediction.complete else 202, prediction.to_wire())


def _wait_seconds(text: str | None) -> float | None:
    """`?wait=` seconds (0 answers 202 at once); the service's budget caps it."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 60:
        raise errors.ValidationFailed(
            f"Query parameter 'wait' takes seconds from 0 to the predict budget; got {text[:40]!r}.",
            [{"field": "wait", "message": "must be a number of seconds from 0"}],
        )
    return value


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
