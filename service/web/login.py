"""``/login`` (an API token in, a session cookie out) and ``/logout``; ``/`` sends a browser to the list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from service import auth
from service.api.deps import read
from service.models import utcnow
from service.web import sessions
from service.web.render import VisitorDep, form_of, page, safe_target

router = APIRouter(include_in_schema=False)
NextQuery = Annotated[str | None, Query(alias="next", max_length=2000)]


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/studies", status_code=303)


@router.get("/login")
async def login_page(request: Request, target: NextQuery = None) -> Response:
    return page(request, "login.html", next=safe_target(target), message=None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token like the API does; on success a session cookie (the token itself goes nowhere)."""
    sessions.check_origin(request)
    form = await form_of(request)
    target = safe_target(form.get("next"))
    secret = form.get("token", "").strip()
    state = await read(request, lambda connection: auth.authenticate(connection, secret)) if secret else None
    refusal = "no token given" if not secret else "invalid token" if state is None else state.refusal(utcnow())
    if refusal is not None:
        return page(request, "login.html", status_code=401, next=target, message=refusal)
    session_id, _ = sessions.store_of(request).create(auth.hash_token(secret))
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookie(request, response, session_id)
    return response


@router.post("/logout")
async def logout(request: Request, visitor: VisitorDep) -> Response:
    sessions.check_origin(request)
    sessions.check_csrf(visitor.session, await form_of(request))
    sessions.store_of(request).drop(visitor.session_id)
    response = RedirectResponse("/login", status_code=303)
    sessions.clear_cookie(request, response)
    return response
