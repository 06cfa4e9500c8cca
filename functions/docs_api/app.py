"""Docs API: the OpenAPI document of the whole v0.7 API, and a page that renders it (no key needed)."""

from __future__ import annotations

from tensorgate import coldstart

coldstart.pause()  # first: no garbage collection while the cold start loads modules (tensorgate.coldstart)

import base64
import hashlib
import html
import re
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from tensorgate import http
from tensorgate.api import build_resolver, logger, metrics, tracer

app = build_resolver()
PAGE = (Path(__file__).parent / "docs.html").read_text()
# The page runs its one inline script and fetches the document from this API, nothing else.
_SCRIPT = re.search(r"<script>(.*?)</script>", PAGE, re.DOTALL)
assert _SCRIPT is not None, "docs.html has no inline script"
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.group(1).encode()).digest()).decode()
PAGE_POLICY = f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'"


def server_url() -> str:
    """The API's root as the caller addressed it (host and stage), before `/v0.7`."""
    event = app.current_event
    return http.base_url(event).removesuffix("/").removesuffix(event.path.rstrip("/"))


@app.get("/v0.7/openapi.json")
@tracer.capture_method
def get_openapi_document() -> Response:
    # The document is built from every request model: load them on the first call, not at cold start.
    from tensorgate import openapi

    return http.json_response(200, openapi.document(server_url()))


@app.get("/v0.7/docs")
@tracer.capture_method
def get_docs_page() -> Response:
    page = PAGE.replace("{{OPENAPI_URL}}", html.escape(server_url() + "/v0.7/openapi.json", quote=True))
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=page,
        headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()
