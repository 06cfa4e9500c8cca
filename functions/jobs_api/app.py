"""Jobs API: batch inference jobs (create over many inputs, progress, cancel, results)."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import http, wiring
from tensorgate.api import authenticate, authenticate_author, build_resolver, logger, metrics, tracer

app = build_resolver()
NO_FILES = (
    "a job's images are given as URLs, an s3:// prefix of your uploads or an archive uploaded after the create, "
    "not as files of this request"
)


@app.post("/v0.7/jobs")
@tracer.capture_method
def create_job() -> Response:
    account_id, author = authenticate_author(app)
    job = wiring.job_service().create(account_id, http.read_json(app.current_event, NO_FILES), author)
    metrics.add_metric(name="JobItemsQueued", unit="Count", value=job["total"])
    return http.json_response(201, job)


@app.get("/v0.7/jobs")
@tracer.capture_method
def list_jobs() -> Response:
    account_id = authenticate(app)
    page = wiring.job_service().list_jobs(account_id, http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/jobs/lookup")
@tracer.capture_method
def lookup_job() -> Response:
    account_id = authenticate(app)
    return http.json_response(200, wiring.job_service().lookup(account_id, http.lookup_name(app.current_event)))


@app.get("/v0.7/jobs/<job_id>")
@tracer.capture_method
def get_job(job_id: str) -> Response:
    account_id = authenticate(app)
    return http.json_response(200, wiring.job_service().get(account_id, http.integer_id(job_id, "job")))


@app.post("/v0.7/jobs/<job_id>/cancel")
@tracer.capture_method
def cancel_job(job_id: str) -> Response:
    account_id = authenticate(app)
    return http.json_response(200, wiring.job_service().cancel(account_id, http.integer_id(job_id, "job")))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
