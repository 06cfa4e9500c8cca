"""What every API handler shares: the resolver with Tensorgate's error mapping, auth, observability."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from tensorgate import http, wiring
from tensorgate.errors import NotAuthenticated, RouteNotFound, TensorgateError

logger = Logger()
# The handlers call AWS through botocore only; patching every library X-Ray knows would import
# requests and others on every cold start for nothing.
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics()


def _refuse_control_characters(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    """No id or slug holds a control character. Powertools matches routes with `$`, which also matches
    before a final line break, so without this `GET /v0.7/tasks/%0A` reached the list route, not a 404."""
    event = app.current_event
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in event.path):
        raise RouteNotFound(
            f"No route for {event.http_method} {event.path!r}; ids and slugs hold no control characters."
        )
    return next_middleware(app)


def build_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()
    app.use(middlewares=[_refuse_control_characters])

    @app.exception_handler(TensorgateError)
    def _domain_error(error: TensorgateError) -> Response:
        if isinstance(error, NotAuthenticated):
            metrics.add_metric(name="AuthenticationFailures", unit="Count", value=1)
        logger.info("request refused", extra={"error": error.message, "status": http.status_for(error)})
        return http.error_response(error)

    @app.not_found
    def _no_route(_: NotFoundError) -> Response:
        event = app.current_event
        return http.json_response(
            404,
            {"error": f"No route for {event.http_method} {event.path}; see the API reference in the README."},
        )

    @app.exception_handler(Exception)
    def _bug(error: Exception) -> Response:
        logger.exception("unhandled error")
        metrics.add_metric(name="InternalErrors", unit="Count", value=1)
        return http.internal_error_response()

    return app


def authenticate(app: APIGatewayRestResolver) -> str:
    account_id = wiring.auth_service().authenticate(http.api_key(app.current_event))
    logger.append_keys(account_id=account_id)
    return account_id


def authenticate_author(app: APIGatewayRestResolver) -> tuple[str, str]:
    """The caller's account and the name its key was issued to (the `author` of what it creates)."""
    key = wiring.auth_service().identify(http.api_key(app.current_event))
    logger.append_keys(account_id=key.account_id)
    return key.account_id, key.author
