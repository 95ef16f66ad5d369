"""Page logins: a session cookie that stands for an API token, and the CSRF checks of the pages' forms.

The cookie holds a random session id, never the token: the service keeps, per session, the token's SHA-256
(so every request re-checks the token's state, and a revoked or expired token ends its sessions at once)
and a CSRF secret the pages put in their forms. Sessions live in this process's memory: a restart of the
service logs everyone out, which is the safe side (there is one API process, see :mod:`service.server`).

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it) and Secure
when the page was served over https. A state change (cancel, logout) must come from a page of this
service twice over: its Origin (or Referer) must be this service, and its form must carry the session's
CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from service.errors import Forbidden

COOKIE = "mixup_studies_session"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class WebSession:
    """What one login holds: the token's digest (never the secret) and the CSRF secret of its forms."""

    token_digest: str
    csrf: str


class SessionStore:
    """Session id → :class:`WebSession`, each expiring ``ttl_s`` after its last use; thread-safe, bounded LRU."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s=}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, WebSession]] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, token_digest: str) -> tuple[str, WebSession]:
        session_id = secrets.token_urlsafe(32)
        session = WebSession(token_digest, secrets.token_urlsafe(32))
        with self._lock:
            self._entries[session_id] = (self._clock() + self.ttl_s, session)
            while len(self._entries) > self.max_entries:  # the least recently used login goes first
                self._entries.popitem(last=False)
        return session_id, session

    def get(self, session_id: str) -> WebSession | None:
        """The live session, its expiry pushed back (None when unknown or expired)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[session_id]
                return None
            self._entries[session_id] = (now + self.ttl_s, entry[1])
            self._entries.move_to_end(session_id)
            return entry[1]

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)

    def drop_token(self, token_digest: str) -> None:
        """End every session of a token (it was revoked, expired or deleted)."""
        with self._lock:
            for key in [k for k, (_, s) in self._entries.items() if s.token_digest == token_digest]:
                del self._entries[key]


def store_of(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.web_sessions
    return store


def current(request: Request) -> tuple[str, WebSession] | None:
    """The request's session id and session, when its cookie names a live one."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    session = store_of(request).get(session_id)
    return None if session is None else (session_id, session)


def set_cookie(request: Request, response: Response, session_id: str) -> None:
    # No max_age: a browser session cookie; the server's expiry (ttl_s after the last use) is what counts.
    response.set_cookie(
        COOKIE, session_id, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


def check_origin(request: Request) -> None:
    """Refuse a state change whose Origin (or, without one, Referer) is not this service (403).

    Browsers send Origin with every POST; a request with neither header did not come from one of our forms.
    """
    own = f"{request.url.scheme}://{request.url.netloc}"
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        raise Forbidden("refused: a form post needs an Origin or Referer header of this service")
    parts = urlsplit(source)
    if f"{parts.scheme}://{parts.netloc}" != own:
        raise Forbidden(f"refused: the request came from another origin ({parts.scheme}://{parts.netloc})")


def check_csrf(session: WebSession, form: Mapping[str, str]) -> None:
    """Refuse a form without the session's CSRF token (403)."""
    sent = form.get(CSRF_FIELD, "")
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise Forbidden(f"refused: the form's {CSRF_FIELD} is missing or wrong; reload the page and try again")
