"""An API Gateway (REST, proxy integration) emulation: HTTP requests become the events Lambda receives."""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import threading
import time
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from tensorgate_local.lambdas import FunctionFailed, LocalFunctions
from tensorgate_local.template import Route, Template

API_GATEWAY_PAYLOAD_LIMIT = 10 * 1024 * 1024  # bytes of request body API Gateway accepts
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes of the invocation event (the body grows by a third in base64)
STAGE = "local"
log = logging.getLogger("local.gateway")
# Binary bodies (multipart) reach Lambda base64-encoded, 4/3 of their size: about 4.5 MiB of raw body fits.
RAW_BINARY_BODY_LIMIT = LAMBDA_PAYLOAD_LIMIT * 3 // 4
INSTEAD = (
    "create the network with a JSON body (no files) and upload the model archive with the presigned POST "
    "its response carries."
)


def too_large(size: int, event_size: int | None = None, base64_encoded: bool = False) -> str:
    """The 413 sentence: the limit that was crossed, stated for the body the caller sent."""
    if event_size is None:
        reason = f"over the {API_GATEWAY_PAYLOAD_LIMIT} bytes (10 MiB) API Gateway takes"
    elif base64_encoded:
        reason = (
            f"which base64 grows to {event_size} bytes on its way to Lambda, over the {LAMBDA_PAYLOAD_LIMIT} "
            f"bytes (6 MiB) one invocation takes, so a multipart body carries at most about "
            f"{RAW_BINARY_BODY_LIMIT} bytes (4.5 MiB)"
        )
    else:
        reason = (
            f"{event_size} bytes as a Lambda event, over the {LAMBDA_PAYLOAD_LIMIT} bytes (6 MiB) one invocation takes"
        )
    return f"The request body is {size} bytes, {reason}; {INSTEAD}"


FUNCTION_FAILED = "The service could not answer; retry shortly."
THROTTLED = "Too many requests for this API key; slow down and retry in a moment."


class KeyThrottle:
    """API Gateway's usage-plan throttling: a token bucket per API key (steady rate, burst)."""

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            return allowed


class Gateway:
    """A WSGI application routing by the template's `Api` events to the template's handlers."""

    def __init__(self, template: Template, functions: LocalFunctions) -> None:
        self._routes = [(route, route.pattern()) for route in template.routes()]
        self._functions = functions
        api: dict[str, Any] = next(iter(template.of_type("AWS::Serverless::Api").values()), {"Properties": {}})
        self._binary_types = [media.replace("~1", "/") for media in api["Properties"].get("BinaryMediaTypes", [])]
        throttle = template.resolve(api["Properties"].get("Auth", {}).get("UsagePlan", {}).get("Throttle"))
        self.throttle = KeyThrottle(float(throttle["RateLimit"]), int(throttle["BurstLimit"])) if throttle else None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        started = time.perf_counter()
        response = self.respond(request)
        log.info(
            "%s %s -> %d (%.1f ms)",
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        declared = request.content_length or 0
        if declared > API_GATEWAY_PAYLOAD_LIMIT:
            return _json(413, {"error": too_large(declared)})
        match = self._match(request.method, request.path)
        if match is None:
            allowed = self._methods_for(request.path)
            if allowed:
                refused = _json(
                    405,
                    {"error": f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}."},
                )
                refused.headers["Allow"] = ", ".join(allowed)
                return refused
            return _json(
                404,
                {"error": f"No route for {request.method} {request.path}; see the API reference in the README."},
            )
        route, parameters = match
        key = request.headers.get("X-API-KEY")
        if self.throttle is not None and key and not self.throttle.allow(key):
            response = _json(429, {"error": THROTTLED})
            response.headers["Retry-After"] = "1"
            return response
        body = request.get_data(cache=False)
        if len(body) > API_GATEWAY_PAYLOAD_LIMIT:
            return _json(413, {"error": too_large(len(body))})
        event = self.event(request, route, parameters, body)
        event_size = len(json.dumps(event))
        if event_size > LAMBDA_PAYLOAD_LIMIT:
            return _json(413, {"error": too_large(len(body), event_size, bool(event["isBase64Encoded"]))})
        try:
            result = self._functions.invoke(route.function, event)
        except FunctionFailed as failure:
            # API Gateway's answer to a Lambda error (the template's DEFAULT_5XX response), the cause in the log.
            log.error("%s %s: %s", request.method, request.path, failure)
            return _json(502, {"error": FUNCTION_FAILED})
        return _response(result)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return None

    def _methods_for(self, path: str) -> list[str]:
        return sorted({route.method for route, pattern in self._routes if pattern.match(path)})

    def _is_binary(self, content_type: str | None) -> bool:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        return any(fnmatch.fnmatch(media, pattern) for pattern in self._binary_types)

    def event(self, request: Request, route: Route, parameters: dict[str, str], body: bytes) -> dict[str, Any]:
        headers = {name: value for name, value in request.headers.items()}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            multi_headers.setdefault(name, []).append(value)
        query = {name: values[-1] for name, values in request.args.lists()}
        multi_query = {name: values for name, values in request.args.lists()}
        binary = self._is_binary(request.content_type)
        if not body:
            encoded_body = None
        elif binary:
            encoded_body = base64.b64encode(body).decode("ascii")
        else:
            encoded_body = body.decode("utf-8", "replace")
        request_id = str(uuid.uuid4())
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": request.method,
                "path": request.path,
                "stage": STAGE,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "domainName": request.host,
                "apiId": "local",
                "accountId": "123456789012",
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {"sourceIp": request.remote_addr, "userAgent": request.user_agent.string},
            },
            "body": encoded_body,
            "isBase64Encoded": bool(encoded_body) and binary,
        }


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(payload, status=int(result.get("statusCode", 200)))
    response.headers.pop("Content-Type", None)
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if name in (result.get("headers") or {}):
            continue
        for value in values:
            response.headers.add(name, str(value))
    return response
