"""Tasks API: the status of deploy, inference and batch tasks."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import http, wiring
from tensorgate.api import authenticate, build_resolver, logger, metrics, tracer

app = build_resolver()


@app.get("/v0.7/tasks")
@tracer.capture_method
def list_tasks() -> Response:
    account_id = authenticate(app)
    task_ids = http.integer_list(http.multi_values(app.current_event, "task_ids"), "task_ids")
    offset, limit = http.pagination(app.current_event)
    page = wiring.task_service().list(account_id, task_ids, offset, limit)
    envelope = http.page_envelope(app.current_event, page, extra={"task_ids": [str(i) for i in task_ids]})
    return http.json_response(200, envelope)


@app.get("/v0.7/tasks/<task_id>")
@tracer.capture_method
def get_task(task_id: str) -> Response:
    account_id = authenticate(app)
    task = wiring.task_service().get(account_id, http.integer_id(task_id, "task"))
    return http.json_response(200, task.to_wire())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
