"""Every error the API answers, mapped in one place.

    MalformedBody (here)      400  the body is not JSON
    JSONTextError             400  not JSON; 422 naming the field: a key twice, NaN, a huge number
    UnsupportedMediaType      415  a body not declared application/json (server.bodies)
    IntentError               422  one (field, rule) per problem, from the shared validator
    PolicyError, ConfigError  503  no policy in force, bad configuration: not the caller's fault
    InputError                422  "field: rule" messages split into field and rule
    AuthenticationError       401  with WWW-Authenticate: Bearer
    PermissionDenied          403
    NotFound                  404
    Conflict                  409
    TooBusy (here)            429  with Retry-After: the in-flight bound is full
    StoreError                503  with Retry-After; nothing was acknowledged
    anything else             500  a generic message; the details go to the log, never the client

Every answer is an :class:`~exoarmur.server.schemas.ErrorBody`. Handlers
are coroutines: they must answer even when the thread pool is saturated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    ExoArmurError,
    InputError,
    IntentError,
    JSONTextError,
    NotFound,
    PermissionDenied,
    PolicyError,
    StoreError,
)
from .bodies import UnsupportedMediaType
from .schemas import ErrorBody, ErrorCode, FieldProblem

logger = logging.getLogger("exoarmur.server")

#: seconds a client should wait after a 503
RETRY_UNAVAILABLE = 5
#: seconds a client should wait after a 429
RETRY_BUSY = 1

_FIELD_RULE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]-]*): (.+)$", re.DOTALL)
_STATUS_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.INVALID,
    429: ErrorCode.TOO_MANY_REQUESTS,
    503: ErrorCode.UNAVAILABLE,
}


class MalformedBody(InputError):
    """The request body is not JSON at all (HTTP 400)."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class TooBusy(ExoArmurError):
    """The in-flight bound is full: answered 429 at once, never queued."""


def error_response(
    status: int,
    message: str,
    detail: Sequence[FieldProblem] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        error=_STATUS_CODES.get(status, ErrorCode.INTERNAL), message=message, detail=list(detail)
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def split_field(message: str) -> FieldProblem:
    """``"reason: is required"`` → field ``reason``, rule ``is required``."""
    match = _FIELD_RULE.match(message)
    if match is None:
        return FieldProblem(field=None, rule=message)
    return FieldProblem(field=match.group(1), rule=match.group(2))


def internal_error() -> JSONResponse:
    return error_response(500, "internal error; it has been logged")


def answer(exc: Exception) -> JSONResponse:
    """The one mapping from an exception to an HTTP answer."""
    if isinstance(exc, MalformedBody):
        return error_response(400, str(exc), [FieldProblem(field=exc.field, rule=exc.rule)])
    if isinstance(exc, JSONTextError):
        problem = FieldProblem(field=exc.field, rule=exc.rule)
        if exc.field is None:
            return error_response(400, "the body is not JSON", [problem])
        return error_response(422, "the body is not valid", [problem])
    if isinstance(exc, UnsupportedMediaType):
        return error_response(415, str(exc))
    if isinstance(exc, IntentError):
        problems = [FieldProblem(field=field, rule=rule) for field, rule in exc.problems]
        return error_response(422, "the intent is not valid", problems)
    if isinstance(exc, PolicyError | ConfigError):
        logger.error("not ready: %s", exc)
        return error_response(
            503,
            f"not ready: {exc}",
            headers={"Retry-After": str(RETRY_UNAVAILABLE)},
        )
    if isinstance(exc, InputError):
        return error_response(422, str(exc), [split_field(str(exc))])
    if isinstance(exc, AuthenticationError):
        challenge = 'Bearer realm="exoarmur"'
        if "invalid" in str(exc):
            challenge += ', error="invalid_token"'
        return error_response(401, str(exc), headers={"WWW-Authenticate": challenge})
    if isinstance(exc, PermissionDenied):
        return error_response(403, str(exc))
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, str(exc))
    if isinstance(exc, TooBusy):
        return error_response(429, str(exc), headers={"Retry-After": str(RETRY_BUSY)})
    if isinstance(exc, StoreError):
        # The store's own message names files and drivers: log it, do not send it.
        logger.error("ledger store failed: %s", exc)
        return error_response(
            503,
            "the ledger store is unavailable; nothing was acknowledged, retry later",
            headers={"Retry-After": str(RETRY_UNAVAILABLE)},
        )
    logger.error("unexpected %s answered as 500", type(exc).__name__, exc_info=exc)
    return internal_error()


def validation_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """FastAPI's validation errors as (field, rule) pairs, the location word dropped."""
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            loc = loc[1:]
        kind = error.get("type", "")
        rule = str(error.get("msg", "is not valid"))
        if kind == "missing":
            rule = "is required"
        elif kind == "extra_forbidden":
            rule = "unknown field"
        elif kind == "string_pattern_mismatch":
            rule = f"does not match the pattern {error['ctx']['pattern']}"
        elif kind == "json_invalid":
            loc = []
            rule = f"malformed JSON: {error.get('ctx', {}).get('error', 'cannot be parsed')}"
        problems.append(FieldProblem(field=".".join(loc) or None, rule=rule))
    return problems


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.store_failed(exc)
    return answer(exc)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    problems = validation_problems(errors)
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, "the body is not JSON", problems)
    return error_response(422, "the request is not valid", problems)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ExoArmurError, _on_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)


class LastResort:
    """Outermost: an unexpected exception becomes a generic 500, logged, never a trace.

    Also marks every answer ``Cache-Control: no-store``: intents, events and
    keys' owners are nobody's cache's business.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_marked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_marked)
        except Exception:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await internal_error()(scope, receive, send_marked)
