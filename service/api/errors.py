"""Exceptions → HTTP responses, in one place. Every error body is ``{"detail": ..., "errors": [...]}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.limits import BodyTooLarge
from service.errors import BadSpec, Conflict, LaunchError, NotFound, QuotaExceeded, ServiceError, Unauthorized
from studies.errors import InvalidStudySpec

log = logging.getLogger(__name__)

STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    QuotaExceeded: 429,
    Unauthorized: 401,
    BadSpec: 422,
    InvalidStudySpec: 422,
    LaunchError: 503,
    BodyTooLarge: 413,
}


def _status_of(error: Exception) -> int:
    for kind, status in STATUS.items():
        if isinstance(error, kind):
            return status
    return 500


def _field_errors(error: Exception) -> list[dict[str, Any]] | None:
    if isinstance(error, BadSpec | InvalidStudySpec):
        return [
            {"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}
            for field, message in error.errors
        ]
    return None


def _validation_errors(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        if item.get("type") == "json_invalid":
            msg = f"body is not valid JSON ({item.get('ctx', {}).get('error', 'parse error')})"
        else:
            msg = str(item.get("msg", "invalid"))
        errors.append({"loc": loc, "msg": msg, "type": str(item.get("type", "value_error"))})
    detail = "; ".join(
        f"{'.'.join(e['loc'][1:] if e['loc'][:1] == ['body'] else e['loc']) or 'body'}: {e['msg']}" for e in errors
    )
    return f"invalid request: {detail}", errors


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_errors(error)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    async def _known(_request: Request, error: Exception) -> JSONResponse:
        status = _status_of(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        body: dict[str, Any] = {"detail": str(error)}
        if (errors := _field_errors(error)) is not None:
            body["errors"] = errors
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in (ServiceError, InvalidStudySpec, BodyTooLarge):
        app.add_exception_handler(kind, _known)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI's "error parsing the body": bytes that are not JSON text at all
            return JSONResponse({"detail": "body is not valid JSON (could not be decoded)"}, status_code=422)
        return JSONResponse({"detail": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the service log"}, status_code=500)
