"""How trials get into their table (SQLite and PostgreSQL): migration 0003 from the JSON column, and the
dispatcher writing only the rows whose trial changed (the fake driver as the driver, a scripted follower
as MLflow: its partial reads are what is tested)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, inspect, select

from service import auth, repository, schemas, trial_store
from service.db import alembic_config, make_engine, migrate, session_factory
from service.dispatcher import Dispatcher
from service.launchers import LocalLauncher
from service.models import Study, TrialRow, utcnow
from service.settings import ServiceSettings
from studies.progress import StudyProgress
from studies.records import TrialRecord
from tests.service.test_dispatcher import fake_settings, row, run_until, submit  # noqa: F401

OLD_TRIALS = [
    {"trial_id": "a", "params": {"alpha": 0.0}, "status": "finished", "epochs": 2,
     "metrics": {"median_test_error": 7.5}, "error": None, "run_id": "r1"},
    {"trial_id": "b", "params": {"alpha": 1.0}, "status": "running", "epochs": 1,
     "metrics": {"median_test_error": 3.0}, "error": None, "run_id": "r2"},
    {"trial_id": "c", "params": {"alpha": 2.0}, "status": "failed", "epochs": 0, "metrics": {}, "error": "boom",
     "run_id": "r3"},
]  # fmt: skip
_STUDIES_0002 = sa.table(
    "studies",
    *(sa.column(name) for name in ("id", "owner_id", "name", "trials_total", "status", "cancel_requested",
                                   "created_at", "updated_at", "attempts", "stop_sent", "progress_at")),
    sa.column("spec", sa.JSON()),
    sa.column("trials", sa.JSON()),
)  # fmt: skip


def _old_study(connection: sa.Connection, study_id: str, trials: list[dict[str, Any]] | None) -> None:
    now = utcnow()
    connection.execute(sa.insert(_STUDIES_0002).values(
        id=study_id, owner_id=1, name="old", trials_total=4, status="running", cancel_requested=False,
        created_at=now, updated_at=now, attempts=1, stop_sent=False, progress_at=now if trials else None,
        spec={"name": "old", "metric": "median_test_error", "mode": "min"}, trials=trials,
    ))  # fmt: skip


def test_migration_0003_moves_json_trials_into_rows(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine, "0002")
        with engine.begin() as connection:
            user = "INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'old', false, :t)"
            connection.execute(sa.text(user), {"t": utcnow()})
            _old_study(connection, "with-trials", OLD_TRIALS)
            _old_study(connection, "without", None)
        migrate(engine)
        assert "trials" not in {c["name"] for c in inspect(engine).get_columns("studies")}
        with engine.connect() as db:
            alice = auth.Caller(1, "old", False)
            view = repository.view(db, alice, "with-trials")
            assert trial_store.records(db, view.seq) == [TrialRecord(**t) for t in OLD_TRIALS]
            assert view.trial_counts == {"finished": 1, "running": 1, "failed": 1}
            assert view.best_trial is not None and (view.best_trial["trial_id"], view.best_trial["value"]) == ("b", 3.0)
            counts, best = schemas.stats(view)
            assert counts == {"pending": 1, "running": 1, "finished": 1, "stopped": 0, "failed": 1, "cancelled": 0}
            assert best is not None and best.trial_id == "b"
            empty = repository.view(db, alice, "without")
            assert (empty.trial_counts, empty.best_trial, trial_store.records(db, empty.seq)) == (None, None, [])
        command.downgrade(alembic_config(engine), "0002")  # the rows go back into the JSON
        with engine.connect() as db:
            back = db.execute(sa.select(_STUDIES_0002.c.trials).where(_STUDIES_0002.c.id == "with-trials")).scalar()
        assert [{k: v for k, v in t.items() if k in OLD_TRIALS[0]} for t in back] == OLD_TRIALS
        assert not inspect(engine).has_table("trials")
        migrate(engine)
        with engine.connect() as db:
            assert len(trial_store.records(db, repository.view(db, alice, "with-trials").seq)) == 3
    finally:
        engine.dispose()


class Scripted:
    """A follower replaying reads in order (the last one again once they run out), noting each ``full``."""

    def __init__(self, *reads: StudyProgress) -> None:
        self.reads = list(reads)
        self.fulls: list[bool] = []

    def read(self, full: bool = False) -> StudyProgress:
        self.fulls.append(full)
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


def progress(trials: list[TrialRecord], complete: bool = True) -> StudyProgress:
    return StudyProgress("1", "parent", "running", trials, complete=complete)


def trial(n: int, epochs: int = 0) -> TrialRecord:
    metrics = {"median_test_error": 10.0 - n - epochs} if epochs else {}
    return TrialRecord(f"t{n}", {"alpha": float(n)}, "running", epochs, metrics, run_id=f"r{n}", started_ms=1000 + n)


def stamps(engine: Engine, study_id: str) -> tuple[dict[str, datetime], datetime | None]:
    """Each trial row's updated_at, and the study's progress_at."""
    with session_factory(engine)() as session:
        study = session.scalar(select(Study).where(Study.id == study_id))
        assert study is not None
        rows = session.execute(select(TrialRow.trial_id, TrialRow.updated_at).where(TrialRow.study_seq == study.seq))
        return {r.trial_id: r.updated_at for r in rows}, study.progress_at


def moved(before: dict[str, datetime], after: dict[str, datetime]) -> set[str]:
    return {t for t in after.keys() | before.keys() if before.get(t) != after.get(t)}


def dispatcher_with(settings: ServiceSettings, engine: Engine, follower: Scripted) -> Dispatcher:
    return Dispatcher(settings, session_factory(engine), LocalLauncher(settings), follow=lambda *_: follower)


@pytest.mark.slow
def test_the_dispatcher_writes_only_the_trials_that_changed(fake_settings: ServiceSettings, engine: Engine) -> None:  # noqa: F811
    settings = fake_settings.model_copy(update={"progress_interval_s": 1e-3})  # a read on every pass
    study_id = submit(engine, "sleep=120")
    base = [trial(n) for n in range(5)]
    t1 = replace(base[1], epochs=1, metrics={"median_test_error": 8.0})
    follower = Scripted(
        progress(base),  # the first read of a follower is a complete one
        progress([t1], complete=False),  # only t1's run changed
        progress([], complete=False),  # nothing changed
        progress([t1, *base[2:]]),  # complete, without t0: its run was deleted
    )
    dispatcher = dispatcher_with(settings, engine, follower)
    run_until(dispatcher, lambda: len(follower.reads) == 3)  # claimed and started, then the first read stored
    first, first_at = stamps(engine, study_id)
    assert set(first) == {"t0", "t1", "t2", "t3", "t4"}

    dispatcher.tick()
    second, second_at = stamps(engine, study_id)
    assert moved(first, second) == {"t1"}  # one row written, not five
    assert second_at is not None and first_at is not None and second_at > first_at

    dispatcher.tick()
    assert stamps(engine, study_id) == (second, second_at)  # nothing changed: no row, and no progress_at

    dispatcher.tick()
    third, _ = stamps(engine, study_id)
    assert moved(second, third) == {"t0"} and "t0" not in third  # deleted; the rest untouched
    assert row(engine, study_id).trial_counts == {"running": 4}
    assert (row(engine, study_id).best_trial or {})["trial_id"] == "t1"
    assert follower.fulls == [False] * 4  # no full read asked for while the driver runs

    # A restarted dispatcher starts from the table: the same trials again write nothing.
    t2 = replace(base[2], status="finished", epochs=2, metrics={"median_test_error": 1.0}, ended_ms=5000)
    again = Scripted(progress([t1, *base[2:]]), progress([t2], complete=False))
    restarted = dispatcher_with(settings, engine, again)
    restarted.tick()
    assert stamps(engine, study_id)[0] == third
    restarted.tick()
    fourth, _ = stamps(engine, study_id)
    assert moved(third, fourth) == {"t2"}
    assert row(engine, study_id).trial_counts == {"running": 3, "finished": 1}

    with session_factory(engine)() as session:
        repository.request_cancel(session, auth.ensure_user(session, "alice"), study_id)
        session.commit()
    run_until(restarted, lambda: row(engine, study_id).status == "cancelled", 30)
    assert again.fulls[-1] is True  # the driver ended: one last, full read
    assert study_id not in restarted._stored and study_id not in restarted._followers  # forgotten
