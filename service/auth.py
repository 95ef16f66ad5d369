"""Bearer tokens: random secrets shown once; only their SHA-256 is stored.

Requests are authenticated through a :class:`TokenCache`: a token's owner is
remembered for a few seconds (``ServiceSettings.token_cache_s``), so a status
poll costs no database round trip for the token. The price is bounded
staleness: a token deleted from the database (or a user demoted) keeps its old
meaning for at most that many seconds in each service process.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from service.models import Token, User

TOKEN_PREFIX = "mxs_"


class Principal(Protocol):
    """Who is calling: what ownership checks need (a :class:`User` row or a :class:`Caller`)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def is_admin(self) -> bool: ...


@dataclass(frozen=True)
class Caller:
    """The user behind a token, detached from any session (safe to cache and share across threads)."""

    id: int
    name: str
    is_admin: bool


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


_CALLER_BY_HASH = select(User.id, User.name, User.is_admin).join(Token).where(Token.token_hash == bindparam("digest"))


def authenticate(db: Session | Connection, secret: str) -> Caller | None:
    """The user a token belongs to, or None (one indexed lookup; no ORM objects)."""
    row = db.execute(_CALLER_BY_HASH, {"digest": hash_token(secret)}).first()
    return Caller(row.id, row.name, bool(row.is_admin)) if row is not None else None


def has_admin(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None


class TokenCache:
    """Token hash → :class:`Caller` (or "unknown") for ``ttl_s`` seconds; thread-safe, bounded LRU.

    Unknown tokens are cached too (briefly), so a client hammering with a bad token does not hammer the
    database; a token created meanwhile is therefore accepted at most ``ttl_s`` seconds late.
    ``ttl_s=0`` disables caching.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s=}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, secret: str) -> tuple[bool, Caller | None]:
        """``(True, caller_or_None)`` when known and fresh, ``(False, None)`` when the database must be asked."""
        if self.ttl_s == 0:
            return False, None
        key = hash_token(secret)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < self._clock():
                return False, None
            self._entries.move_to_end(key)
            return True, entry[1]

    def put(self, secret: str, caller: Caller | None) -> None:
        if self.ttl_s == 0:
            return
        key = hash_token(secret)
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, caller)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
