"""Exceptions → HTTP responses, in one place. Every error body is ``{"detail": ..., "errors": [...]}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.limits import BodyTooLarge, _problem
from service.errors import (
    BadSpec,
    Conflict,
    Forbidden,
    LaunchError,
    NotFound,
    QuotaExceeded,
    ServiceError,
    Unauthorized,
)
from studies.errors import InvalidStudySpec

log = logging.getLogger(__name__)

STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    QuotaExceeded: 429,
    Unauthorized: 401,
    Forbidden: 403,
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


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


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
            # FastAPI locates a decode error at ("body", <character offset>): a position, not a field.
            reason = str(item.get("ctx", {}).get("error", "parse error"))  # "Expecting value", "... at", ...
            where = (
                "" if len(loc) < 2 else f" character {loc[1]}" if reason.endswith(" at") else f" at character {loc[1]}"
            )
            msg = f"body is not valid JSON ({reason}{where})"
            loc = loc[:1]
        else:
            msg = str(item.get("msg", "invalid"))
            if loc[:1] == ["query"] and "input" in item:  # a query's value is short and the caller's own
                msg = f"{msg}, got {item['input']!r}"
        errors.append({"loc": loc, "msg": msg, "type": str(item.get("type", "value_error"))})
    detail = "; ".join(
        f"{'.'.join(e['loc'][1:] if e['loc'][:1] == ['body'] else e['loc']) or 'body'}: {e['msg']}" for e in errors
    )
    return f"invalid request: {detail}", errors


def _allowed_methods(request: Request) -> str:
    """Every method the request's path answers: Starlette's 405 names only those of the first route that matched.

    Asked of the routes by trying each method (``matches`` is all a route promises; FastAPI nests routers).
    """
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def _page_error(request: Request, status: int, detail: str) -> Response | None:
    """An HTML error page when the request was for one of the pages (service.web installs the renderer)."""
    render = getattr(request.app.state, "error_page", None)
    is_page = getattr(request.app.state, "is_page", None)
    if render is None or is_page is None or not is_page(request):
        return None
    response: Response = render(request, status, detail)
    return response


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        detail, errors = _validation_errors(error)
        # A page's bad query (a hand-edited URL) names the value too; the JSON errors keep their form.
        given = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))} got {e.get('input')!r}" for e in error.errors())
        if (html := _page_error(request, 422, f"{detail} ({given})")) is not None:
            return html
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    async def _known(request: Request, error: Exception) -> Response:
        status = _status_of(error)
        if (html := _page_error(request, status, str(error))) is not None:
            return html
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        body: dict[str, Any] = {"detail": str(error)}
        if (errors := _field_errors(error)) is not None:
            body["errors"] = errors
        return JSONResponse(body, status_code=status, headers=headers)

    for kind in (ServiceError, InvalidStudySpec, BodyTooLarge):
        app.add_exception_handler(kind, _known)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI's "error parsing the body": bytes that are not JSON text at all
            return JSONResponse({"detail": "body is not valid JSON (could not be decoded)"}, status_code=422)
        headers = error.headers
        if error.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return JSONResponse({"detail": str(error.detail)}, status_code=error.status_code, headers=headers)


class ContainUnexpected:
    """Outermost middleware: an unexpected exception becomes a JSON 500 and the connection stays usable.

    Starlette's own last resort (``ServerErrorMiddleware``, where an ``Exception`` handler would go) sends
    its 500 and then re-raises; uvicorn reads an exception after a started response as a broken response
    and closes the connection, so the client's next request on that keep-alive connection was reset.
    Here the exception ends with the 500. Only when part of a response already went out is it re-raised:
    closing the connection is then the one honest way to end it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await _problem(send, 500, "internal error; see the service log")
