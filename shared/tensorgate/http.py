"""HTTP helpers for the API handlers: the one place errors become status codes and bodies."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from tensorgate import errors

if TYPE_CHECKING:
    # Only types here: the models (and pydantic) load on the first service call, the body parsers
    # (python-multipart) on the first request that has a body.
    from tensorgate.forms import Form
    from tensorgate.listing import ListQuery
    from tensorgate.models import Page

JSON = "application/json"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 1_000_000

STATUS_BY_ERROR: dict[type[errors.TensorgateError], int] = {
    errors.ValidationFailed: 400,
    errors.DuplicateName: 400,
    errors.MalformedRequest: 400,
    errors.UnknownField: 400,
    errors.ImmutableField: 400,
    errors.InvalidFileName: 400,
    errors.MissingModelFile: 400,
    errors.NotAuthenticated: 401,
    errors.NetworkNotFound: 404,
    errors.TaskNotFound: 404,
    errors.RecognitionSpecNotFound: 404,
    errors.RecognitionVersionNotFound: 404,
    errors.EndpointNotFound: 404,
    errors.JobNotFound: 404,
    errors.RouteNotFound: 404,
    errors.DatasetNotFound: 404,
    errors.NetworkNotReady: 409,
    errors.NoCurrentVersion: 409,
    errors.EndpointShutdown: 409,
    errors.TargetGone: 409,
    errors.JobNotRunning: 409,
    errors.DatasetNotReady: 409,
    errors.ConcurrentUpdate: 409,
    errors.DuplicateSlug: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.RateLimited: 429,
    errors.StorageUnavailable: 503,
}


def status_for(error: errors.TensorgateError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def json_response(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, separators=(",", ":")))


def no_content() -> Response:
    return Response(status_code=204, body="")


def error_response(error: errors.TensorgateError) -> Response:
    body: dict[str, Any] = {"error": error.message}
    if error.details:
        body["details"] = error.details
    return json_response(status_for(error), body)


def internal_error_response() -> Response:
    return json_response(500, {"error": "Internal error; it has been logged. Retry, and report it if it persists."})


def api_key(event: APIGatewayProxyEvent) -> str | None:
    return event.get_header_value("X-API-KEY", case_sensitive=False)


def body_bytes(event: APIGatewayProxyEvent) -> bytes:
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise errors.MalformedRequest("The request body is not valid base64.") from None
    return body.encode("utf-8")


def read_form(event: APIGatewayProxyEvent) -> Form:
    from tensorgate.forms import parse_body

    return parse_body(event.get_header_value("Content-Type", case_sensitive=False), body_bytes(event))


NETWORK_FILES_HINT = "a network's files cannot change after it is created, so create a new network instead"


def read_json(event: APIGatewayProxyEvent, files_hint: str = NETWORK_FILES_HINT) -> dict[str, Any]:
    """The fields of a request that takes no files (PATCH): a JSON object, or multipart text fields."""
    form = read_form(event)
    if form.files:
        names = ", ".join(sorted(repr(file.name) for file in form.files)[:5])
        raise errors.ValidationFailed(
            f"This request takes fields only, but files were sent ({names}); {files_hint}.",
            [{"field": file.name, "message": "is a file"} for file in form.files],
        )
    return form.fields


def integer_id(text: str, kind: str) -> int:
    """Private ids are integers; anything else cannot name one, so it answers as not found."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        message = f"{kind.capitalize()} ids are integers and {text[:40]!r} is not one"
        if kind == "network":
            message += "; public networks are under /v0.7/networks/public/{slug}/"
        elif kind == "recognition spec":
            message += "; public specs are under /v0.7/recognition/public/{slug}/"
        raise errors.RouteNotFound(message + ".")
    return int(text)


def integer_list(values: list[str], name: str) -> list[int]:
    """Integer query values (`task_ids=1&task_ids=2`); a non-integer is a 400 naming it."""
    for value in values:
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise errors.ValidationFailed(
                f"Query parameter {name!r} takes integers; {value[:40]!r} is not one.",
                [{"field": name, "message": "must be integers"}],
            )
    return [int(value) for value in values]


def _query_int(event: APIGatewayProxyEvent, name: str, default: int, low: int, high: int) -> int:
    raw = event.get_query_string_value(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise errors.ValidationFailed(
            f"Query parameter {name!r} must be an integer from {low} to {high}; got {raw[:40]!r}.",
            [{"field": name, "message": f"must be an integer from {low} to {high}"}],
        )
    return int(raw)


def pagination(event: APIGatewayProxyEvent) -> tuple[int, int]:
    offset = _query_int(event, "offset", 0, 0, MAX_OFFSET)
    limit = _query_int(event, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return offset, limit


def list_query(event: APIGatewayProxyEvent) -> ListQuery:
    """A list's page and filters: `offset`/`limit`, `cursor` (from a `next` link), `search`, `name`, `author`,
    `status`."""
    from tensorgate.listing import ListQuery, check_filter, decode_cursor

    offset, limit = pagination(event)
    cursor = event.get_query_string_value("cursor")
    return ListQuery(
        limit=limit,
        offset=offset,
        cursor=decode_cursor(cursor) if cursor else None,
        search=check_filter("search", event.get_query_string_value("search")),
        name=check_filter("name", event.get_query_string_value("name")),
        author=check_filter("author", event.get_query_string_value("author")),
        status=check_filter("status", event.get_query_string_value("status")),
    )


def lookup_name(event: APIGatewayProxyEvent) -> str:
    """`lookup?name=`: the exact name asked (case-sensitive), required."""
    name = event.get_query_string_value("name")
    if not name:
        raise errors.ValidationFailed(
            "Look a resource up by its exact name: add ?name=... to the query.",
            [{"field": "name", "message": "is required"}],
        )
    return name


def multi_values(event: APIGatewayProxyEvent, name: str) -> list[str]:
    values = (event.multi_value_query_string_parameters or {}).get(name)
    if values is None:
        single = (event.query_string_parameters or {}).get(name)
        values = [] if single is None else [single]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def base_url(event: APIGatewayProxyEvent) -> str:
    """The absolute URL of this request without its query, as the caller addressed it."""
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    host = headers.get("host") or event.request_context.domain_name or "localhost"
    scheme = headers.get("x-forwarded-proto", "https")
    path = event.request_context.path or event.path
    return f"{scheme}://{host}{path}"


def page_envelope(event: APIGatewayProxyEvent, page: Page, extra: dict[str, list[str]] | None = None) -> dict[str, Any]:
    url = base_url(event)
    kept = (extra or {}) | {name: [value] for name, value in page.filters.items()}

    def link(offset: int, cursor: str | None = None) -> str:
        query: list[tuple[str, str | int]] = [(name, value) for name, values in kept.items() for value in values]
        if cursor is not None:
            query.append(("cursor", cursor))
        query += [("offset", offset), ("limit", page.limit)]
        return f"{url}?{urlencode(query)}"

    following = page.offset + page.limit
    if page.by_cursor:
        # The cursor says where the next page starts; its offset only keeps `previous` links right.
        following_link = None if page.next_cursor is None else link(following, page.next_cursor)
    else:
        following_link = link(following) if following < page.count else None
    return {
        "count": page.count,
        "next": following_link,
        "previous": link(max(0, page.offset - page.limit)) if page.offset > 0 else None,
        "results": page.results,
    }
