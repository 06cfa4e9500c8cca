"""Recognition API: specs (what a recognition answers) and versions (a spec bound to a network), DESIGN §7."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import forms, http, wiring
from tensorgate.api import authenticate, authenticate_author, build_resolver, logger, metrics, tracer

app = build_resolver()

SPEC = "recognition spec"
NO_FILES = "recognition specs and versions are JSON fields only"
VERSION = "recognition version"


# -- specs ------------------------------------------------------------------------------------


@app.post("/v0.7/recognition/specs")
@tracer.capture_method
def create_spec() -> Response:
    account_id, author = authenticate_author(app)
    fields = http.read_json(app.current_event, NO_FILES)
    spec = wiring.recognition_service().create_spec(account_id, fields, author=author)
    metrics.add_metric(name="RecognitionSpecsCreated", unit="Count", value=1)
    logger.info("recognition spec created", extra={"spec_id": spec.spec_id})
    return http.json_response(201, spec.to_wire())


@app.get("/v0.7/recognition/specs")
@tracer.capture_method
def list_specs() -> Response:
    account_id = authenticate(app)
    page = wiring.recognition_service().list_specs(account_id, http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/recognition/specs/lookup")
@tracer.capture_method
def lookup_spec() -> Response:
    account_id = authenticate(app)
    spec = wiring.recognition_service().lookup_spec(account_id, http.lookup_name(app.current_event))
    return http.json_response(200, spec.to_wire())


@app.get("/v0.7/recognition/public")
@tracer.capture_method
def list_public_specs() -> Response:
    authenticate(app)
    page = wiring.recognition_service().list_public(http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/recognition/public/<slug>")
@tracer.capture_method
def get_public_spec(slug: str) -> Response:
    authenticate(app)
    return http.json_response(200, wiring.recognition_service().get_public(slug).to_wire())


@app.get("/v0.7/recognition/specs/<spec_id>")
@tracer.capture_method
def get_spec(spec_id: str) -> Response:
    account_id = authenticate(app)
    spec = wiring.recognition_service().get_spec(account_id, http.integer_id(spec_id, SPEC))
    return http.json_response(200, spec.to_wire())


@app.patch("/v0.7/recognition/specs/<spec_id>")
@tracer.capture_method
def update_spec(spec_id: str) -> Response:
    account_id = authenticate(app)
    changes = http.read_json(app.current_event, NO_FILES)
    spec = wiring.recognition_service().update_spec(account_id, http.integer_id(spec_id, SPEC), changes)
    return http.json_response(200, spec.to_wire())


@app.delete("/v0.7/recognition/specs/<spec_id>")
@tracer.capture_method
def delete_spec(spec_id: str) -> Response:
    account_id = authenticate(app)
    wiring.recognition_service().delete_spec(account_id, http.integer_id(spec_id, SPEC))
    return http.no_content()


@app.get("/v0.7/recognition/specs/<spec_id>/versions")
@tracer.capture_method
def list_spec_versions(spec_id: str) -> Response:
    account_id = authenticate(app)
    offset, limit = http.pagination(app.current_event)
    page = wiring.recognition_service().list_versions(account_id, offset, limit, spec_id=http.integer_id(spec_id, SPEC))
    return http.json_response(200, http.page_envelope(app.current_event, page))


# -- versions ---------------------------------------------------------------------------------


@app.post("/v0.7/recognition/versions")
@tracer.capture_method
def create_version() -> Response:
    account_id = authenticate(app)
    version = wiring.recognition_service().create_version(account_id, http.read_json(app.current_event, NO_FILES))
    metrics.add_metric(name="RecognitionVersionsCreated", unit="Count", value=1)
    logger.info("recognition version created", extra={"version_id": version.version_id})
    return http.json_response(201, version.to_wire())


@app.get("/v0.7/recognition/versions")
@tracer.capture_method
def list_versions() -> Response:
    account_id = authenticate(app)
    offset, limit = http.pagination(app.current_event)
    page = wiring.recognition_service().list_versions(account_id, offset, limit)
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/recognition/versions/<version_id>")
@tracer.capture_method
def get_version(version_id: str) -> Response:
    account_id = authenticate(app)
    version = wiring.recognition_service().get_version(account_id, http.integer_id(version_id, VERSION))
    return http.json_response(200, version.to_wire())


@app.delete("/v0.7/recognition/versions/<version_id>")
@tracer.capture_method
def delete_version(version_id: str) -> Response:
    account_id = authenticate(app)
    wiring.recognition_service().delete_version(account_id, http.integer_id(version_id, VERSION))
    return http.no_content()


# -- inference --------------------------------------------------------------------------------


def _inference_fields() -> dict[str, Any]:
    """JSON or multipart/form-data, as the networks' inference route reads them."""
    event = app.current_event
    form = http.read_form(event)
    content_type = event.get_header_value("Content-Type", case_sensitive=False)
    return form.nested_with_files() if forms.media_type(content_type) == "multipart/form-data" else form.fields


@app.post("/v0.7/recognition/versions/<version_id>/inference")
@tracer.capture_method
def version_inference(version_id: str) -> Response:
    account_id = authenticate(app)
    fields = _inference_fields()
    network_id, plan = wiring.recognition_service().version_plan(account_id, http.integer_id(version_id, VERSION))
    task = wiring.inference_service().submit(account_id, network_id, fields, recognition=plan)
    metrics.add_metric(name="RecognitionInferencesQueued", unit="Count", value=1)
    return http.json_response(200, {"task_id": task.task_id})


@app.post("/v0.7/recognition/specs/<spec_id>/inference")
@tracer.capture_method
def spec_inference(spec_id: str) -> Response:
    account_id = authenticate(app)
    fields = _inference_fields()
    network_id, plan = wiring.recognition_service().spec_plan(account_id, http.integer_id(spec_id, SPEC))
    task = wiring.inference_service().submit(account_id, network_id, fields, recognition=plan)
    metrics.add_metric(name="RecognitionInferencesQueued", unit="Count", value=1)
    return http.json_response(200, {"task_id": task.task_id})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
