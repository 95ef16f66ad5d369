"""Token administration on the server (``mixup-studies token create/list/revoke``): expiry, listing, revoking.

A token is named by its numeric id (``token list`` shows it, with the first characters of a generated secret
to tell tokens apart); ``revoke`` takes an id, or a user name to revoke all of that user's tokens at once.
Revoking keeps the row (``revoked_at``): the listing still shows who had which token and when it was used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.auth import aware
from service.errors import NotFound
from service.models import Token, User

_DURATION = re.compile(r"(\d{1,9})([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
#: The longest expiry ``--expires-in`` accepts; longer is what "no expiry" is for.
MAX_DURATION = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"2w"``, ``"45s"`` → a timedelta; ValueError naming the value else."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"expected a positive whole number and a unit s, m, h, d or w (e.g. 30d, 12h), got {text!r}")
    duration = timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])
    if duration > MAX_DURATION:
        raise ValueError(f"at most {MAX_DURATION.days}d (leave it out for a token that never expires), got {text!r}")
    return duration


@dataclass(frozen=True)
class TokenInfo:
    """One token as an admin sees it: never the secret nor its hash."""

    id: int
    prefix: str | None
    user: str
    admin: bool
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_json(self, now: datetime) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {"id": self.id, "prefix": self.prefix, "user": self.user, "admin": self.admin,
                "state": self.state(now), "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "last_used_at": iso(self.last_used_at), "revoked_at": iso(self.revoked_at)}  # fmt: skip


_INFO = select(
    Token.id, Token.prefix, User.name, User.is_admin, Token.created_at, Token.expires_at, Token.last_used_at,
    Token.revoked_at,
).join(User)  # fmt: skip


def _info(row: Any) -> TokenInfo:
    created = aware(row.created_at)
    assert created is not None  # NOT NULL
    return TokenInfo(row.id, row.prefix, row.name, bool(row.is_admin), created, aware(row.expires_at),
                     aware(row.last_used_at), aware(row.revoked_at))  # fmt: skip


def list_tokens(session: Session, user: str | None = None) -> list[TokenInfo]:
    """Every token (of ``user`` only, when given), oldest first; NotFound for an unknown user."""
    query = _INFO.order_by(Token.id)
    if user is not None:
        _user_id(session, user)
        query = query.where(User.name == user)
    return [_info(row) for row in session.execute(query)]


def get_token(session: Session, token_id: int) -> TokenInfo:
    row = session.execute(_INFO.where(Token.id == token_id)).first()
    if row is None:
        raise NotFound(f"no token with id {token_id} (`mixup-studies token list` shows them)")
    return _info(row)


def revoke(session: Session, token_id: int, now: datetime) -> tuple[TokenInfo, bool]:
    """Revoke one token; ``(its info, whether this call revoked it)``; NotFound for an unknown id. Caller commits."""
    get_token(session, token_id)
    # One conditional UPDATE: a second revoke keeps the first time.
    done = session.execute(
        update(Token).where(Token.id == token_id, Token.revoked_at.is_(None)).values(revoked_at=now)
    ).rowcount  # type: ignore[attr-defined]
    return get_token(session, token_id), bool(done)


def revoke_user(session: Session, user: str, now: datetime) -> list[int]:
    """Revoke every token of ``user`` not revoked yet; the ids revoked. NotFound for an unknown user."""
    user_id = _user_id(session, user)
    ids = list(session.scalars(select(Token.id).where(Token.user_id == user_id, Token.revoked_at.is_(None))))
    if ids:
        session.execute(update(Token).where(Token.id.in_(ids)).values(revoked_at=now))
    return ids


def _user_id(session: Session, name: str) -> int:
    user_id = session.scalar(select(User.id).where(User.name == name))
    if user_id is None:
        raise NotFound(f"no user called {name!r}")
    return user_id
