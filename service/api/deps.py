"""Typed FastAPI dependencies: settings, a database session per request, the calling user, fast reads.

Hot read paths (``GET`` of studies, token checks) avoid the threadpool on SQLite: a WAL reader never
waits for a lock and an indexed lookup takes microseconds, far less than the two thread hand-offs a
sync endpoint costs (which dominated the status poll's latency under load). On other databases a
query is a network round trip, so :func:`read` runs it on the threadpool instead. They read through a
bare Core connection: an ORM Session's setup and teardown cost more than the query itself. Writes
always run on the threadpool (``def`` endpoints): a SQLite writer may wait up to the busy timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service import auth
from service.auth import Caller
from service.errors import Unauthorized
from service.models import utcnow
from service.settings import ServiceSettings
from service.web import sessions as web_sessions

T = TypeVar("T")
bearer = HTTPBearer(auto_error=False, description="A token from `mixup-studies token create`.")


async def get_settings(request: Request) -> ServiceSettings:
    # Async: FastAPI runs a sync dependency on the threadpool, a hand-off per request for a dict lookup.
    settings: ServiceSettings = request.app.state.settings
    return settings


def sessions_of(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


async def read(request: Request, work: Callable[[Connection], T]) -> T:
    """Run ``work`` on a pooled connection: inline on SQLite, on the threadpool elsewhere (see the module doc)."""
    engine: Engine = request.app.state.engine

    def run() -> T:
        with engine.connect() as connection:
            return work(connection)

    return run() if request.app.state.inline_reads else await run_in_threadpool(run)


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Async on purpose: the teardown then runs on the event loop, not in the threadpool. A sync generator's
    # teardown waits for a free thread while holding its connection, which deadlocks under load once every
    # thread waits for a connection. Creating a Session does no I/O; closing one returns its connection.
    session = sessions_of(request)()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


#: Methods a page's session cookie may call the JSON API with: reads only (the pages' report downloads). A
#: state change through the API needs the token itself; the pages' own forms check CSRF (service.web).
COOKIE_METHODS = frozenset({"GET", "HEAD"})


async def session_caller(request: Request) -> Caller | None:
    """The user of the request's page session, when it has one whose token is still valid (else None).

    The token's state is read again on every request (one indexed lookup), so a revoked or expired token
    ends its sessions at once; the cookie never stands for more than the token does.
    """
    found = web_sessions.current(request)
    if found is None:
        return None
    digest = found[1].token_digest
    state = await read(request, lambda connection: auth.authenticate_digest(connection, digest))
    if state is None or state.refusal(utcnow()) is not None:
        web_sessions.store_of(request).drop_token(digest)
        return None
    last_used: auth.LastUsed = request.app.state.last_used
    last_used.touch(state.token_id)
    return state.caller


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    cookie = credentials is None and request.method in COOKIE_METHODS and web_sessions.COOKIE in request.cookies
    if cookie and (caller := await session_caller(request)) is not None:
        return caller
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>' (mixup-studies token create)")
    secret = credentials.credentials
    cache: auth.TokenCache = request.app.state.tokens
    known, state = cache.get(secret)
    if not known:
        state = await read(request, lambda connection: auth.authenticate(connection, secret))
        cache.put(secret, state)
    if state is None:
        raise Unauthorized("invalid token")
    # Checked on every request, cached or not: a token stops working the moment it expires.
    if (refusal := state.refusal(utcnow())) is not None:
        raise Unauthorized(refusal)
    last_used: auth.LastUsed = request.app.state.last_used
    last_used.touch(state.token_id)  # a dict lookup; the throttled write runs on its own thread
    return state.caller


UserDep = Annotated[Caller, Depends(current_user)]
