"""Inference API: queue one inference on a ready network and answer with its task id at once."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import forms, http, wiring
from tensorgate.api import authenticate, build_resolver, logger, metrics, tracer

app = build_resolver()


@app.post("/v0.7/networks/<network_id>/inference")
@tracer.capture_method
def submit_inference(network_id: str) -> Response:
    account_id = authenticate(app)
    event = app.current_event
    content_type = event.get_header_value("Content-Type", case_sensitive=False)
    # JSON or multipart/form-data, as create and PATCH: any other media type is a 415.
    form = http.read_form(event)
    fields = form.nested_with_files() if forms.media_type(content_type) == "multipart/form-data" else form.fields
    task = wiring.inference_service().submit(account_id, http.integer_id(network_id, "network"), fields)
    metrics.add_metric(name="InferencesQueued", unit="Count", value=1)
    return http.json_response(200, {"task_id": task.task_id})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
