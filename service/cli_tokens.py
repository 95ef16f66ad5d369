"""``mixup-studies token create/list/revoke``: run on the server, against the service's database.

They open the database of ``MIXUP_STUDIES_DATABASE_URL`` (or the home's SQLite) directly, as ``serve`` does,
so they need no token themselves: whoever can run them on the server owns the service anyway. A revoke takes
effect in a running service within ``MIXUP_STUDIES_TOKEN_CACHE_S`` seconds; an expiry at its exact time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import NotFound

token_app = typer.Typer(help="API tokens (on the server: these open the service's database).", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
UserOpt = Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")]


@contextmanager
def _session() -> Iterator[Session]:
    from service.db import make_engine, migrate, session_factory
    from service.settings import ServiceSettings

    engine = make_engine(ServiceSettings().resolved_database_url)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(2)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="The user the token belongs to (created if new).")],
    admin: Annotated[bool, typer.Option(help="Make the user an admin (sees every study).")] = False,
    expires_in: Annotated[
        str | None, typer.Option(help="Expire after this long: 30d, 12h, 90m, 2w, 45s (default: never).")
    ] = None,
) -> None:
    """Create a token and print it (only its hash and first characters are stored; it is shown once)."""
    from service.auth import create_token, hash_token
    from service.models import Token, utcnow
    from service.tokens import parse_duration

    try:
        expires_at = utcnow() + parse_duration(expires_in) if expires_in is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--expires-in'") from None
    with _session() as session:
        try:
            secret = create_token(session, user, admin, expires_at=expires_at)
        except ValueError as error:
            raise _fail(f"--user: {error}") from None
        session.commit()
        token_id = session.scalar(select(Token.id).where(Token.token_hash == hash_token(secret)))
    typer.echo(secret)
    expiry = f"expires {_when(expires_at)} UTC" if expires_at is not None else "never expires"
    err.print(f"token {token_id} for {escape(user)}{' (admin)' if admin else ''}: {expiry}", highlight=False)


@token_app.command("list")
def token_list(
    user: UserOpt = None, json_: Annotated[bool, typer.Option("--json", help="Print JSON (UTC, ISO 8601).")] = False
) -> None:
    """Every token: id, prefix, user, state, created, expires, last used (at most a minute old), revoked."""
    from service.models import utcnow
    from service.tokens import list_tokens

    with _session() as session:
        try:
            tokens = list_tokens(session, user)
        except NotFound as error:
            raise _fail(str(error)) from None
    now = utcnow()
    if json_:
        typer.echo(json.dumps([t.as_json(now) for t in tokens], indent=2))
        return
    table = Table("id", "prefix", "user", "admin", "state", "created", "expires", "last used", "revoked",
                  box=box.SIMPLE_HEAD, caption="times in UTC", caption_justify="left")  # fmt: skip
    for t in tokens:
        table.add_row(str(t.id), t.prefix or "-", escape(t.user), "yes" if t.admin else "", t.state(now),
                      _when(t.created_at), _when(t.expires_at), _when(t.last_used_at), _when(t.revoked_at))  # fmt: skip
    # Piped into a file or grep: no terminal width to fit, so do not wrap or cut a row at rich's default 80.
    (out if out.is_terminal else Console(width=200)).print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int | None, typer.Argument(metavar="ID", help="The token's id (token list).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Revoke every token of this user.")] = None,
) -> None:
    """Revoke a token by id, or all of a user's; a running service refuses it within its token cache time."""
    from service.models import utcnow
    from service.tokens import revoke, revoke_user

    if (token_id is None) == (user is None):
        raise _fail("name exactly one: a token ID or --user NAME")
    with _session() as session:
        try:
            if token_id is not None:
                info, done = revoke(session, token_id, utcnow())
                message = f"token {info.id} of {info.user} " + ("revoked" if done else "was already revoked")
            else:
                assert user is not None
                ids = revoke_user(session, user, utcnow())
                message = f"{len(ids)} token(s) of {user} revoked" + (f": {', '.join(map(str, ids))}" if ids else "")
        except NotFound as error:
            raise _fail(str(error)) from None
        session.commit()
    out.print(escape(message), highlight=False)
