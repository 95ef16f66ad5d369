"""Bearer tokens: random secrets shown once; only their SHA-256 (and a short public prefix) is stored.

Requests are authenticated through a :class:`TokenCache`: a token's state (owner, expiry, revocation) is
remembered for a few seconds (``ServiceSettings.token_cache_s``), so a status poll costs no database round
trip for the token. The price is bounded staleness: a token revoked or deleted in the database (or a user
demoted) keeps its old meaning for at most that many seconds in each service process. Expiry needs no
database: the cached expiry time is checked on every request, so an expired token is refused at once.
:class:`LastUsed` records when each token was used, at most once per interval, on its own thread.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection, Engine, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.models import Token, User, utcnow

log = logging.getLogger(__name__)
TOKEN_PREFIX = "mxs_"
#: Characters of a generated secret kept in clear to tell tokens apart: "mxs_" + 6 (36 of its 256 bits).
PUBLIC_CHARS = len(TOKEN_PREFIX) + 6


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


def create_token(
    session: Session, name: str, admin: bool = False, secret: str | None = None, expires_at: datetime | None = None
) -> str:
    """Create a token for user ``name`` (created if needed) and return the secret; the caller commits.

    A given ``secret`` that is already stored is left as it is (a configured admin token on every start):
    in particular a revoked one stays revoked. Only generated secrets get a public prefix: a chosen one
    may be short enough for its first characters to give it away.
    """
    user = ensure_user(session, name, admin)
    prefix = None
    if not secret:
        secret = new_secret()
        prefix = secret[:PUBLIC_CHARS]
    digest = hash_token(secret)
    if session.scalar(select(Token).where(Token.token_hash == digest)) is None:
        session.add(Token(user_id=user.id, token_hash=digest, prefix=prefix, expires_at=expires_at))
    return secret


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC: SQLite hands back naive datetimes (everything stored is UTC), PostgreSQL ones in
    the session's time zone, which need not be UTC (a 401 or ``token list`` labels its times UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class TokenState:
    """What a request needs to know about a stored token (detached; safe to cache and share)."""

    caller: Caller
    token_id: int
    expires_at: datetime | None
    revoked_at: datetime | None

    def refusal(self, now: datetime) -> str | None:
        """Why the token may not be used at ``now`` (a message for the 401), or None when it may."""
        if self.revoked_at is not None:
            return f"token revoked at {self.revoked_at:%Y-%m-%d %H:%M:%S} UTC; ask an admin for a new one"
        if self.expires_at is not None and self.expires_at <= now:
            return f"token expired at {self.expires_at:%Y-%m-%d %H:%M:%S} UTC; ask an admin for a new one"
        return None


_STATE_BY_HASH = (
    select(User.id, User.name, User.is_admin, Token.id.label("token_id"), Token.expires_at, Token.revoked_at)
    .join(Token)
    .where(Token.token_hash == bindparam("digest"))
)


def authenticate(db: Session | Connection, secret: str) -> TokenState | None:
    """The stored state of a token, or None when unknown (one indexed lookup; no ORM objects)."""
    return authenticate_digest(db, hash_token(secret))


def authenticate_digest(db: Session | Connection, digest: str) -> TokenState | None:
    """:func:`authenticate` by the token's SHA-256 (what a page session keeps instead of the secret)."""
    row = db.execute(_STATE_BY_HASH, {"digest": digest}).first()
    if row is None:
        return None
    caller = Caller(row.id, row.name, bool(row.is_admin))
    return TokenState(caller, row.token_id, aware(row.expires_at), aware(row.revoked_at))


def has_admin(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None


class TokenCache:
    """Token hash → :class:`TokenState` (or "unknown") for ``ttl_s`` seconds; thread-safe, bounded LRU.

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
        self._entries: OrderedDict[str, tuple[float, TokenState | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, secret: str) -> tuple[bool, TokenState | None]:
        """``(True, state_or_None)`` when known and fresh, ``(False, None)`` when the database must be asked."""
        if self.ttl_s == 0:
            return False, None
        key = hash_token(secret)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < self._clock():
                return False, None
            self._entries.move_to_end(key)
            return True, entry[1]

    def put(self, secret: str, state: TokenState | None) -> None:
        if self.ttl_s == 0:
            return
        key = hash_token(secret)
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, state)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class LastUsed:
    """Records when each token was last used: at most one write per token per ``interval_s``, off the caller.

    :meth:`touch` runs on the event loop for every authenticated request, so it only checks a dict; the
    write (an UPDATE that may wait for SQLite's writer lock) runs on one worker thread of its own, never
    on the threadpool that serves requests. A shown time is therefore up to ``interval_s`` old, and the
    writes queued when the process is killed are lost (those of a graceful exit are still made).
    """

    def __init__(
        self,
        engine: Engine,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s=}")
        self.engine = engine
        self.interval_s = interval_s
        self._clock = clock
        self._now = now
        self._due: dict[int, float] = {}  # token id -> monotonic time its next write may happen
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-last-used")

    def touch(self, token_id: int) -> Future[None] | None:
        """Note a use of token ``token_id`` now; the write's future when one was queued (tests wait on it)."""
        moment = self._clock()
        with self._lock:
            if self._due.get(token_id, moment) > moment:
                return None
            self._due[token_id] = moment + self.interval_s
        return self._writer.submit(self._write, token_id, self._now())

    def _write(self, token_id: int, when: datetime) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(update(Token).where(Token.id == token_id).values(last_used_at=when))
        except SQLAlchemyError as error:  # a busy or unreachable database: the next use tries again
            log.warning("could not record the last use of token %s: %s", token_id, error)
            with self._lock:
                self._due.pop(token_id, None)

    def close(self) -> None:
        """Finish the queued writes and stop the worker thread."""
        self._writer.shutdown(wait=True)
