"""Typed FastAPI dependencies: settings, a database session per request, the calling user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service import auth
from service.errors import Unauthorized
from service.models import User
from service.settings import ServiceSettings

bearer = HTTPBearer(auto_error=False, description="A token from `mixup-studies token create`.")


def get_settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Async on purpose: the teardown then runs on the event loop, not in the threadpool. A sync generator's
    # teardown waits for a free thread while holding its connection, which deadlocks under load once every
    # thread waits for a connection. Creating a Session does no I/O; closing one returns its connection.
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def current_user(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>' (mixup-studies token create)")
    user = auth.authenticate(session, credentials.credentials)
    # End the read transaction: its connection goes back to the pool while the handler waits for a thread.
    session.commit()
    if user is None:
        raise Unauthorized("invalid token")
    return user


UserDep = Annotated[User, Depends(current_user)]
