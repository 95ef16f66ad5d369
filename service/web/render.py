"""Templates (Jinja2, autoescaped) and the pages' shared plumbing: who is logged in, forms, error pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from service.api.deps import session_caller
from service.auth import Caller
from service.errors import BadSpec
from service.web import sessions
from service.web.sessions import WebSession

HERE = Path(__file__).parent
# autoescape=True for every template: a study name or an error text like "<script>" renders as text.
ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
#: Only this service's own scripts and styles; inline style attributes are matplotlib's SVG plots'.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store"}  # fmt: skip


class LoginRequired(Exception):
    """No live page session: the browser is sent to the login page, back to ``target`` afterwards."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@dataclass(frozen=True)
class Visitor:
    """A logged-in page user: who they are and their session (for the CSRF token of the forms)."""

    caller: Caller
    session: WebSession
    session_id: str


async def visitor(request: Request) -> Visitor:
    found = sessions.current(request)
    caller = await session_caller(request) if found is not None else None
    if found is None or caller is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return Visitor(caller, found[1], found[0])


VisitorDep = Annotated[Visitor, Depends(visitor)]


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = ENV.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def login_redirect(target: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(safe_target(target), safe='/')}", status_code=303)


def safe_target(target: str | None) -> str:
    """A path on this service to go back to after login; anything else (another host: ``//evil``) is the list."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/studies"
    return target


#: The pages' forms hold a token, a CSRF token and a return path (≤ 2,000 characters): a few KB at most.
#: Parsing runs on the event loop, so a bigger body is refused before it is parsed (a 1 MB body of
#: ``a=b&`` takes ~0.25 s of the loop to parse).
MAX_FORM_BYTES = 16_384
MAX_FORM_FIELDS = 8


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (400 naming the problem for a form no page of this service sends)."""
    body = await request.body()
    if not body:
        return {}  # no fields: the CSRF check then refuses it (403), as any post without the token
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise BadSpec([("content-type", f"a form must be application/x-www-form-urlencoded, got {kind!r}")])
    if len(body) > MAX_FORM_BYTES:
        raise BadSpec([("body", f"a form may be at most {MAX_FORM_BYTES} bytes, got {len(body)}")])
    try:
        fields = parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:
        raise BadSpec([("body", f"a form may have at most {MAX_FORM_FIELDS} fields")]) from None
    return dict(fields)
