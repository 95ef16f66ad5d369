"""Adds the pages to the API's app: their routes, their static files, and HTML error pages for them."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from service.web import login, pages
from service.web.plots import PlotCache
from service.web.render import HERE, LoginRequired, login_redirect, page
from service.web.sessions import SessionStore

STATIC_URL = "/static"


def is_page(request: Request) -> bool:
    """A request for a page (HTML errors) rather than for the JSON API, the docs or the health checks."""
    return request.url.path == "/" or request.url.path.startswith(("/studies", "/login", "/logout"))


def error_page(request: Request, status: int, detail: str) -> Response:
    return page(request, "error.html", status_code=status, status=status, title=HTTPStatus(status).phrase,
                detail=detail)  # fmt: skip


def install(app: FastAPI) -> None:
    """Pages at ``/`` (→ ``/studies``), ``/login``, ``/logout``, ``/studies...``; assets under ``/static``."""
    app.state.web_sessions = SessionStore(app.state.settings.web_session_s)
    app.state.web_plots = PlotCache()
    app.state.error_page = error_page  # service.api.errors renders the pages' errors with these two
    app.state.is_page = is_page
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(login.router)
    app.include_router(pages.router)

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, error: LoginRequired) -> Response:
        return login_redirect(error.target)
