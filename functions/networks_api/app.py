"""Networks API: create, list, retrieve, rename and delete networks; read public networks."""

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


@app.post("/v0.7/networks")
@tracer.capture_method
def create_network() -> Response:
    account_id, author = authenticate_author(app)
    form = http.read_form(app.current_event)
    created = wiring.network_service().create(account_id, form.fields, form.files, author=author)
    metrics.add_metric(name="NetworksCreated", unit="Count", value=1)
    metrics.add_metric(name="UploadedBytes", unit="Bytes", value=sum(len(f.content) for f in form.files))
    logger.info("network created", extra={"network_id": created.network.network_id, "files": len(form.files)})
    return http.json_response(201, created.to_wire())


@app.get("/v0.7/networks")
@tracer.capture_method
def list_networks() -> Response:
    account_id = authenticate(app)
    page = wiring.network_service().list(account_id, http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/networks/lookup")
@tracer.capture_method
def lookup_network() -> Response:
    account_id = authenticate(app)
    network = wiring.network_service().lookup(account_id, http.lookup_name(app.current_event))
    return http.json_response(200, network.to_wire())


@app.get("/v0.7/networks/public")
@tracer.capture_method
def list_public_networks() -> Response:
    authenticate(app)
    page = wiring.network_service().list_public(http.list_query(app.current_event))
    return http.json_response(200, http.page_envelope(app.current_event, page))


@app.get("/v0.7/networks/public/<slug>")
@tracer.capture_method
def get_public_network(slug: str) -> Response:
    authenticate(app)
    return http.json_response(200, wiring.network_service().get_public(slug).to_wire())


@app.get("/v0.7/networks/<network_id>")
@tracer.capture_method
def get_network(network_id: str) -> Response:
    account_id = authenticate(app)
    network = wiring.network_service().get(account_id, http.integer_id(network_id, "network"))
    return http.json_response(200, network.to_wire())


@app.patch("/v0.7/networks/<network_id>")
@tracer.capture_method
def update_network(network_id: str) -> Response:
    account_id = authenticate(app)
    changes = http.read_json(app.current_event)
    network = wiring.network_service().update(account_id, http.integer_id(network_id, "network"), changes)
    return http.json_response(200, network.to_wire())


@app.delete("/v0.7/networks/<network_id>")
@tracer.capture_method
def delete_network(network_id: str) -> Response:
    account_id = authenticate(app)
    wiring.network_service().delete(account_id, http.integer_id(network_id, "network"))
    metrics.add_metric(name="NetworksDeleted", unit="Count", value=1)
    return http.no_content()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
