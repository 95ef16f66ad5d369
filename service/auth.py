"""Bearer tokens: random secrets shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Token, User

TOKEN_PREFIX = "mxs_"


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_user(session: Session, name: str, admin: bool = False) -> User:
    """The user called ``name``, created when missing; ``admin=True`` promotes an existing one."""
    if not name or len(name) > 100:
        raise ValueError(f"user name must be 1..100 characters, got {name!r}")
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, is_admin=admin)
        session.add(user)
        session.flush()
    elif admin and not user.is_admin:
        user.is_admin = True
    return user


def create_token(session: Session, name: str, admin: bool = False, secret: str | None = None) -> str:
    """Create a token for user ``name`` (created if needed) and return the secret; the caller commits."""
    user = ensure_user(session, name, admin)
    secret = secret or new_secret()
    digest = hash_token(secret)
    if session.scalar(select(Token).where(Token.token_hash == digest)) is None:
        session.add(Token(user_id=user.id, token_hash=digest))
    return secret


def authenticate(session: Session, secret: str) -> User | None:
    """The user a token belongs to, or None."""
    return session.scalar(select(User).join(Token).where(Token.token_hash == hash_token(secret)))


def has_admin(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None
