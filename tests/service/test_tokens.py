"""Token expiry, revocation and last use: real HTTP against the app, the real `token` CLI, both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import Engine, event, inspect, select, text

from service import auth, tokens
from service.db import alembic_config, make_engine, migrate, session_factory
from service.models import Token, utcnow
from service.server import bootstrap_admin
from service.settings import ServiceSettings
from tests.service.conftest import Api
from tests.support.processes import wait_until

REPO = Path(__file__).resolve().parents[2]
STUDIES = "/api/v1/studies"


@pytest.fixture
def settings(settings: ServiceSettings, request: pytest.FixtureRequest) -> ServiceSettings:
    # `@pytest.mark.parametrize("settings", [SECONDS], indirect=True)` sets a test's token cache time.
    settings.token_cache_s = getattr(request, "param", settings.token_cache_s)
    return settings


def cli(settings: ServiceSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """`mixup-studies token ...` as a real process on the test's database."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MIXUP_STUDIES_HOME": str(settings.home_dir),
           "MIXUP_STUDIES_DATABASE_URL": settings.resolved_database_url}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "service.cli", "token", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def token_id(engine: Engine, secret: str) -> int:
    with session_factory(engine)() as session:
        found = session.scalar(select(Token.id).where(Token.token_hash == auth.hash_token(secret)))
    assert found is not None
    return found


def last_used(engine: Engine, secret: str) -> datetime | None:
    with session_factory(engine)() as session:
        moment = session.scalar(select(Token.last_used_at).where(Token.token_hash == auth.hash_token(secret)))
    return auth.aware(moment)


def test_migration_0002_adds_the_columns_and_keeps_old_tokens(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0001")
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'old', false, :t)"),
                               {"t": utcnow()})  # fmt: skip
            connection.execute(text("INSERT INTO tokens (user_id, token_hash, created_at) VALUES (1, :h, :t)"),
                               {"h": auth.hash_token("mxs_old"), "t": utcnow()})  # fmt: skip
        migrate(engine)
        columns = {c["name"] for c in inspect(engine).get_columns("tokens")}
        assert {"prefix", "expires_at", "revoked_at", "last_used_at"} <= columns
        with engine.connect() as connection:
            state = auth.authenticate(connection, "mxs_old")
        assert state is not None
        assert (state.caller.name, state.expires_at, state.revoked_at) == ("old", None, None)
        assert state.refusal(utcnow()) is None  # a token from before the migration keeps working
        command.downgrade(alembic_config(engine), "0001")
        assert "revoked_at" not in {c["name"] for c in inspect(engine).get_columns("tokens")}
        migrate(engine)
        with engine.connect() as connection:
            assert auth.authenticate(connection, "mxs_old") is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("settings", [30.0], indirect=True)
def test_an_expired_token_is_refused_at_once_with_a_message_saying_so(api: Api) -> None:
    assert api.settings.token_cache_s == 30.0  # the cached state must not outlive the expiry
    expires_at = utcnow() + timedelta(seconds=3)
    with session_factory(api.engine)() as session:
        soon = auth.create_token(session, "carol", expires_at=expires_at)
        past = auth.create_token(session, "carol", expires_at=utcnow() - timedelta(seconds=1))
        session.commit()
    headers = {"Authorization": f"Bearer {soon}"}
    with api.client(None) as client:
        assert client.get(STUDIES, headers=headers).status_code == 200  # valid, and now cached for 30 s
        wait_until(lambda: utcnow() > expires_at, 10, 0.05, "the expiry")
        expired = client.get(STUDIES, headers=headers)
        never = client.get(STUDIES, headers={"Authorization": f"Bearer {past}"})
    assert expired.status_code == 401
    assert expired.headers["www-authenticate"] == "Bearer"
    assert expired.json()["detail"].startswith(f"token expired at {expires_at:%Y-%m-%d %H:%M:%S} UTC")
    assert never.status_code == 401
    assert "token expired at" in never.json()["detail"]


def test_a_revoked_token_stops_working_within_the_cache_time(api: Api) -> None:
    bob = api.tokens["bob"]
    with api.client("bob") as client:
        assert client.get(STUDIES).status_code == 200  # cached as valid
        done = cli(api.settings, "revoke", str(token_id(api.engine, bob)))
        revoked_at = time.monotonic()
        assert done.returncode == 0, done.stderr
        assert "revoked" in done.stdout
        wait_until(lambda: client.get(STUDIES).status_code == 401, 10, 0.05, "bob's token to be refused")
        took = time.monotonic() - revoked_at
        refused = client.get(STUDIES)
    assert took <= api.settings.token_cache_s + 0.5, took
    assert refused.json()["detail"].startswith("token revoked at ")
    with api.client("alice") as client:
        assert client.get(STUDIES).status_code == 200  # only bob's token


@pytest.mark.slow
def test_revoke_by_user_revokes_every_token_of_that_user_only(api: Api) -> None:
    with session_factory(api.engine)() as session:
        second = auth.create_token(session, "alice")
        session.commit()
    done = cli(api.settings, "revoke", "--user", "alice")
    assert done.returncode == 0, done.stderr
    alice_ids = sorted(token_id(api.engine, secret) for secret in (api.tokens["alice"], second))
    assert f"2 token(s) of alice revoked: {alice_ids[0]}, {alice_ids[1]}" in done.stdout
    with session_factory(api.engine)() as session:
        states = {t.id: t.state(utcnow()) for t in tokens.list_tokens(session)}
    assert [states[i] for i in alice_ids] == ["revoked", "revoked"]
    assert states[token_id(api.engine, api.tokens["bob"])] == "active"
    again = cli(api.settings, "revoke", str(alice_ids[0]))
    assert again.returncode == 0
    assert "was already revoked" in again.stdout


@pytest.mark.slow
def test_last_use_is_recorded_and_listed_and_no_secret_is_ever_printed(api: Api) -> None:
    created = cli(api.settings, "create", "--user", "dave", "--expires-in", "12h")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith(auth.TOKEN_PREFIX)
    dave = token_id(api.engine, secret)
    assert f"token {dave} for dave: expires" in created.stderr
    assert last_used(api.engine, secret) is None
    before = utcnow()
    with api.client(None) as client:
        assert client.get(STUDIES, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    wait_until(lambda: last_used(api.engine, secret) is not None, 10, 0.05, "the last use to be written")
    as_json = cli(api.settings, "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    row = {t["id"]: t for t in json.loads(as_json.stdout)}[dave]
    used = datetime.fromisoformat(row["last_used_at"])
    assert before <= used <= utcnow()
    assert (row["user"], row["admin"], row["state"], row["prefix"]) == ("dave", False, "active", secret[:10])
    expires = datetime.fromisoformat(row["expires_at"]) - datetime.fromisoformat(row["created_at"])
    assert abs(expires - timedelta(hours=12)) < timedelta(seconds=30)
    table = cli(api.settings, "list")
    assert table.returncode == 0, table.stderr
    assert f"{used:%Y-%m-%d %H:%M}" in table.stdout
    for output in (table.stdout + table.stderr, as_json.stdout + as_json.stderr):
        assert secret[:10] in output  # the public prefix, to tell tokens apart ...
        for known in (secret, *api.tokens.values()):  # ... but never a secret, nor more of one, nor its hash
            assert known[:11] not in output
            assert auth.hash_token(known) not in output


def test_last_use_is_written_once_per_interval_off_the_event_loop(api: Api) -> None:
    writes: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE TOKENS"):
            writes.append(threading.current_thread().name)

    event.listen(api.engine, "before_cursor_execute", seen)
    try:
        with api.client("alice") as client:
            assert all(client.get(STUDIES).status_code == 200 for _ in range(20))
        wait_until(lambda: writes, 10, 0.05, "the last use to be written")
        time.sleep(0.5)  # room for any further (unwanted) write to land
    finally:
        event.remove(api.engine, "before_cursor_execute", seen)
    assert len(writes) == 1, writes  # 20 requests within token_last_used_s (60 s): one write
    assert writes[0].startswith("token-last-used")  # its own thread: neither the event loop nor the threadpool


def test_last_used_writes_again_after_its_interval(engine: Engine) -> None:
    with session_factory(engine)() as session:
        secret = auth.create_token(session, "erin")
        session.commit()
    moments = iter([datetime(2026, 1, 1, 10, 0), datetime(2026, 1, 1, 10, 1, 1)])
    clock = [0.0]
    recorder = auth.LastUsed(engine, 60.0, clock=lambda: clock[0], now=lambda: next(moments))
    try:
        first = recorder.touch(token_id(engine, secret))
        assert first is not None
        first.result(timeout=30)
        assert last_used(engine, secret) == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
        clock[0] = 59.0
        assert recorder.touch(token_id(engine, secret)) is None  # throttled: no write queued
        clock[0] = 61.0
        second = recorder.touch(token_id(engine, secret))
        assert second is not None
        second.result(timeout=30)
        assert last_used(engine, secret) == datetime(2026, 1, 1, 10, 1, 1, tzinfo=UTC)
    finally:
        recorder.close()


@pytest.mark.slow
def test_cli_refuses_unknown_ids_and_bad_durations_with_exit_2(api: Api) -> None:
    unknown = cli(api.settings, "revoke", "4242")
    assert unknown.returncode == 2
    assert "no token with id 4242" in unknown.stderr
    bad = cli(api.settings, "create", "--user", "frank", "--expires-in", "30x")
    assert bad.returncode == 2
    assert "--expires-in" in bad.stderr
    assert "'30x'" in bad.stderr
    nameless = cli(api.settings, "create", "--user", "")
    assert nameless.returncode == 2  # was a traceback and exit 1
    assert "--user: user name must be 1..100 characters, got ''" in nameless.stderr
    with session_factory(api.engine)() as session:
        assert tokens.list_tokens(session, "alice")  # and nothing was written for frank
        with pytest.raises(tokens.NotFound, match="no user called 'frank'"):
            tokens.list_tokens(session, "frank")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("45s", timedelta(seconds=45)), ("90m", timedelta(minutes=90)), ("12h", timedelta(hours=12)),
     ("30d", timedelta(days=30)), (" 2w ", timedelta(weeks=2))],
)  # fmt: skip
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert tokens.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0d", "-1d", "1.5h", "12", "d", "1y", "9999999d"])
def test_bad_durations_are_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        tokens.parse_duration(text)


def test_a_revoked_bootstrap_admin_token_stays_revoked_across_restarts(settings: ServiceSettings) -> None:
    configured = settings.model_copy(update={"admin_token": SecretStr("mxs_configured-admin")})
    engine = make_engine(configured.resolved_database_url)
    try:
        migrate(engine)
        sessions = session_factory(engine)
        assert bootstrap_admin(configured, sessions) is None
        with sessions() as session:
            (only,) = tokens.list_tokens(session)
            assert (only.user, only.admin, only.prefix) == ("admin", True, None)  # a chosen secret shows nothing
            tokens.revoke(session, only.id, utcnow())
            session.commit()
        bootstrap_admin(configured, sessions)  # the next start
        with sessions() as session, engine.connect() as connection:
            assert [t.state(utcnow()) for t in tokens.list_tokens(session)] == ["revoked"]
            state = auth.authenticate(connection, "mxs_configured-admin")
            assert state is not None and state.refusal(utcnow()) is not None
    finally:
        engine.dispose()


def test_times_are_utc_whatever_the_database_session_time_zone(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        if engine.dialect.name == "postgresql":  # PostgreSQL hands timestamps back in the session's zone
            with engine.begin() as connection:
                connection.execute(text(f"ALTER DATABASE {engine.url.database} SET timezone TO 'Asia/Kolkata'"))
            engine.dispose()  # new connections take the setting
        expires_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        with session_factory(engine)() as session:
            secret = auth.create_token(session, "grace", expires_at=expires_at)
            session.commit()
            (info,) = tokens.list_tokens(session)
        with engine.connect() as connection:
            state = auth.authenticate(connection, secret)
        assert state is not None and state.expires_at == expires_at
        assert state.refusal(utcnow()) == "token expired at 2026-01-01 12:00:00 UTC; ask an admin for a new one"
        assert info.as_json(utcnow())["expires_at"] == "2026-01-01T12:00:00+00:00"
    finally:
        engine.dispose()
