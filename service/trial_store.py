"""A study's trials, one row each (``trials``): the dispatcher writes what changed, the API reads pages.

The dispatcher keeps the records it stored last in memory (:func:`load_records` fills that after a
restart) and hands each progress read to :func:`store`, which writes only the rows whose record differs
and returns whether anything did; the study row's ``trial_counts`` and ``best_trial`` are recomputed
from memory then, so that a status GET reads no trial row at all.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from service import schemas
from service.models import Study, TrialRow, utcnow
from service.repository import Reader
from studies.records import TrialRecord

TRIALS: Table = TrialRow.__table__  # type: ignore[assignment]  # a declarative class's Table
_RECORD_FIELDS = tuple(TrialRecord.__dataclass_fields__)
_COLUMNS = tuple(TRIALS.c[name] for name in _RECORD_FIELDS)
#: Start order: MLflow's start time, then the id (rows from before start times were stored have none: last).
START_ORDER = (TrialRow.started_ms.asc().nulls_last(), TrialRow.trial_id)


def _record(row: Row[Any]) -> TrialRecord:
    return TrialRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


def load_records(db: Reader, seq: int) -> dict[str, TrialRecord]:
    """Every stored trial of the study ``seq``, by trial id, in start order."""
    return {r.trial_id: r for r in records(db, seq)}


def records(db: Reader, seq: int) -> list[TrialRecord]:
    """Every stored trial of the study ``seq``, in start order (the report's and the plots' input)."""
    rows = db.execute(select(*_COLUMNS).where(TRIALS.c.study_seq == seq).order_by(*START_ORDER))
    return [_record(row) for row in rows]


def store(
    session: Session, seq: int, known: dict[str, TrialRecord], trials: Iterable[TrialRecord], complete: bool
) -> bool:
    """Write the trials that differ from ``known`` (the rows as stored), and update ``known`` to match.

    Args:
        known: the study's stored records by trial id; changed in place.
        trials: what MLflow has: every trial when ``complete``, else only those whose run changed.
        complete: rows of trials not in ``trials`` are deleted (their MLflow runs were deleted).

    Returns:
        Whether any row was written or deleted.
    """
    latest = {t.trial_id: t for t in trials}
    changed = [t for t in latest.values() if known.get(t.trial_id) != t]
    gone = [trial_id for trial_id in known if trial_id not in latest] if complete else []
    if not changed and not gone:
        return False
    now = utcnow()
    new = [_values(seq, t, now) for t in changed if t.trial_id not in known]
    old = [_values(seq, t, now) for t in changed if t.trial_id in known]
    if new:
        session.execute(insert(TRIALS), new)
    if old:
        session.execute(_UPDATE, [{f"b_{k}": v for k, v in values.items()} for values in old])
    if gone:
        session.execute(delete(TRIALS).where(TRIALS.c.study_seq == seq, TRIALS.c.trial_id.in_(gone)))
    for trial_id in gone:
        del known[trial_id]
    known.update((t.trial_id, t) for t in changed)
    return True


def _values(seq: int, trial: TrialRecord, now: datetime) -> dict[str, Any]:
    return {"study_seq": seq, **{name: getattr(trial, name) for name in _RECORD_FIELDS}, "updated_at": now}


# One statement for every changed row (executemany); bind names differ from the columns', as UPDATE needs.
_UPDATE = (
    update(TRIALS)
    .where(TRIALS.c.study_seq == bindparam("b_study_seq"), TRIALS.c.trial_id == bindparam("b_trial_id"))
    .values({name: bindparam(f"b_{name}") for name in (*_RECORD_FIELDS[1:], "updated_at")})
)


def store_progress(
    session: Session,
    study: Study,
    experiment_id: str,
    parent_run_id: str,
    trials: Iterable[TrialRecord],
    complete: bool = True,
    stored: dict[str, TrialRecord] | None = None,
) -> None:
    """Store a progress read: its changed trials (:func:`store`), and the study row when any changed.

    Args:
        study: the study's row, in ``session``.
        stored: the study's records as stored, kept by the caller between reads (changed in place);
            None: read from the table.
    """
    study.experiment_id = experiment_id
    study.parent_run_id = parent_run_id
    stored = load_records(session, study.seq) if stored is None else stored
    if store(session, study.seq, stored, trials, complete) or study.progress_at is None:
        study.trial_counts = counts_by_status(stored.values())
        # A row just submitted in this session holds its spec as JSON text (service.db.RawJSON).
        spec = json.loads(study.spec) if isinstance(study.spec, str) else study.spec
        best = schemas.best_trial(spec, list(stored.values()))
        study.best_trial = best.model_dump(mode="json") if best is not None else None
        study.progress_at = utcnow()  # keys the caches of what is drawn from the trials (web plots)


def counts_by_status(trials: Iterable[TrialRecord]) -> dict[str, int]:
    """The study row's ``trial_counts``: known trials by their stored status."""
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    return counts


# -- the API's reads --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTrial:
    """A trial row as ``/trials`` shows it: the record and when the dispatcher last changed it."""

    record: TrialRecord
    updated_at: datetime


@dataclass(frozen=True)
class TrialQuery:
    """Which trials a page holds: by stored status, changed after a moment, ``limit`` from ``offset``."""

    statuses: frozenset[str] | None = None  # None: any
    updated_after: datetime | None = None
    limit: int = 100
    offset: int = 0


def page(db: Reader, seq: int, query: TrialQuery) -> tuple[list[StoredTrial], int]:
    """One page of the study's trials in start order, and how many match ``query`` in all."""
    count, rows_of = _statements(query.statuses is not None, query.updated_after is not None)
    values: dict[str, Any] = {"seq": seq, "limit": query.limit, "offset": query.offset}
    if query.statuses is not None:
        values["statuses"] = sorted(query.statuses)
    if query.updated_after is not None:
        # Stored as UTC (naive text on SQLite): compare in UTC, whatever offset the caller gave.
        after = query.updated_after
        values["after"] = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
    total = db.scalar(count, values) or 0
    if total <= query.offset:
        return [], total
    rows = db.execute(rows_of, values)
    return [StoredTrial(_record(row), _aware(row.updated_at)) for row in rows], total


@functools.cache
def _statements(by_status: bool, by_time: bool) -> tuple[Select[Any], Select[Any]]:
    """The count and the page select for a kind of query, built once: composing a select cost more CPU than
    running it on SQLite, on every read of a page (the API's most frequent read while a study runs)."""
    where: list[Any] = [TRIALS.c.study_seq == bindparam("seq")]
    if by_status:
        where.append(TRIALS.c.status.in_(bindparam("statuses", expanding=True)))
    if by_time:
        where.append(TRIALS.c.updated_at > bindparam("after"))
    count = select(func.count()).select_from(TRIALS).where(*where)
    rows = select(*_COLUMNS, TRIALS.c.updated_at).where(*where).order_by(*START_ORDER)
    return count, rows.limit(bindparam("limit")).offset(bindparam("offset"))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
