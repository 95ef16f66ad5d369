"""Every read and write of studies, as small functions over a Session.

Ownership is enforced here: a user sees (and cancels, deletes) only their own
studies and gets :class:`~service.errors.NotFound` for anyone else's, exactly
as for an id that does not exist; admins see all. Callers commit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Text, bindparam, cast, func, select, update
from sqlalchemy.orm import Session

from service.auth import Principal
from service.db import RawJSON
from service.errors import Conflict, NotFound, QuotaExceeded
from service.models import CANCELLED, FINAL_STATUSES, QUEUED, RUNNING, Study, User, utcnow
from service.spec_work import Prepared, stored_json
from studies.space import trial_count
from studies.spec import StudySpec


def new_study_id(name: str) -> str:
    """Readable and unique: the spec's name, the UTC time and a random suffix."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def submit(session: Session, owner: Principal, spec: StudySpec | Prepared, max_queued: int) -> Study:
    """Queue a study for ``owner``; :class:`QuotaExceeded` when they already have ``max_queued`` queued.

    ``spec`` comes prepared (name, trial count, stored JSON text) from the API's worker processes
    (service.spec_work), or is a StudySpec, prepared here. The row's ``spec`` is then that JSON text
    (:class:`~service.db.RawJSON`), stored as it is.

    The count and the insert hold the owner's lock until the caller commits, so concurrent submissions
    of one user are serialised and the limit holds (they raced past it before: 48 of 60 got in).
    """
    lock_owner(session, owner)
    queued = session.scalar(
        select(func.count()).select_from(Study).where(Study.owner_id == owner.id, Study.status == QUEUED)
    )
    if (queued or 0) >= max_queued:
        raise QuotaExceeded(f"user {owner.name!r} already has {queued} queued studies (limit {max_queued})")
    if isinstance(spec, StudySpec):
        spec = Prepared(spec.name, trial_count(spec), stored_json(spec))
    study = Study(
        id=new_study_id(spec.name),
        owner_id=owner.id,
        name=spec.name,
        spec=RawJSON(spec.spec_json),  # service.spec_work.stored_json: without the unset (None) fields
        trials_total=spec.trials_total,
        status=QUEUED,
        cancel_requested=False,
        attempts=0,
        stop_sent=False,
    )
    session.add(study)
    session.flush()
    return study


def lock_owner(session: Session, owner: Principal) -> None:
    """Take ``owner``'s lock for the rest of the transaction: a no-op UPDATE of their row.

    One statement for both databases: on PostgreSQL it takes the row lock (other submissions of this user
    wait, and READ COMMITTED lets their next statement see what this one inserted); on SQLite any write
    takes the database's write lock before it reads, so the count that follows cannot be stale.
    ``SELECT ... FOR UPDATE`` would do on PostgreSQL only: SQLite ignores it. A column outside every key:
    PostgreSQL then takes only FOR NO KEY UPDATE, which foreign-key checks (KEY SHARE) do not wait for.
    """
    session.execute(update(User).where(User.id == owner.id).values(is_admin=User.is_admin))


def get(session: Session, user: Principal, study_id: str) -> Study:
    """The study, if ``user`` may see it."""
    study = session.scalar(select(Study).where(Study.id == study_id))
    if study is None or not (user.is_admin or study.owner_id == user.id):
        raise NotFound(f"no study {study_id!r}")
    return study


# -- read models for the API's hot paths -----------------------------------------------------


@dataclass(frozen=True)
class StudyView:
    """A study as the API shows it, read with one Core query (no ORM objects, no trial rows).

    ``trial_counts`` and ``best_trial`` are what the dispatcher keeps on the study row (service.trial_store);
    ``progress_at`` (when it last changed a trial) keys caches of what is drawn from the trials. In a page
    (:func:`view_page`), ``spec`` holds only ``metric`` and ``mode``.
    """

    seq: int
    id: str
    name: str
    owner: str
    status: str
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    trials_total: int
    spec: dict[str, Any]
    attempts: int
    error: str | None
    experiment_id: str | None
    parent_run_id: str | None
    progress_at: datetime | None
    trial_counts: dict[str, int] | None
    best_trial: dict[str, Any] | None


_VIEW_COLUMNS = (
    Study.seq, Study.id, Study.name, User.name.label("owner"), Study.owner_id, Study.status, Study.cancel_requested,
    Study.created_at, Study.started_at, Study.finished_at, Study.trials_total, Study.spec, Study.attempts,
    Study.error, Study.experiment_id, Study.parent_run_id, Study.progress_at, Study.trial_counts, Study.best_trial,
)  # fmt: skip
#: A page of summaries needs of the spec only what ranks trials (best_trial): not up to 500 specs of up to
#: 4 MB each, decoded on the event loop (reads are inline on SQLite, service.api.deps.read).
_PAGE_COLUMNS = (
    *(c for c in _VIEW_COLUMNS if c is not Study.spec),
    Study.spec["metric"].as_string().label("spec_metric"),
    Study.spec["mode"].as_string().label("spec_mode"),
)
_VIEW_FIELDS = tuple(StudyView.__dataclass_fields__)
# Built once: composing a select costs more than running it on SQLite (a status poll's hot path).
_VIEW_BY_ID = select(*_VIEW_COLUMNS).join(User, Study.owner_id == User.id).where(Study.id == bindparam("study_id"))
_VIEW_TEXT_BY_ID = (
    select(*(c for c in _VIEW_COLUMNS if c is not Study.spec), cast(Study.spec, Text).label("spec_text"))
    .join(User, Study.owner_id == User.id)
    .where(Study.id == bindparam("study_id"))
)


def _view(row: Row[Any]) -> StudyView:
    return StudyView(**{name: getattr(row, name) for name in _VIEW_FIELDS})


# The API's reads take a Session or, on their hot path, a bare Core Connection (cheaper to open and close).
Reader = Session | Connection


def view(db: Reader, user: Principal, study_id: str) -> StudyView:
    """The study (without its trials), if ``user`` may see it; :class:`NotFound` otherwise."""
    row = db.execute(_VIEW_BY_ID, {"study_id": study_id}).first()
    if row is None or not (user.is_admin or row.owner_id == user.id):
        raise NotFound(f"no study {study_id!r}")
    return _view(row)


def view_unparsed(db: Reader, user: Principal, study_id: str) -> tuple[StudyView, str]:
    """:func:`view` with an empty ``spec`` and the spec's JSON text: the caller decides where to decode it."""
    row = db.execute(_VIEW_TEXT_BY_ID, {"study_id": study_id}).first()
    if row is None or not (user.is_admin or row.owner_id == user.id):
        raise NotFound(f"no study {study_id!r}")
    fields = {name: getattr(row, name) for name in _VIEW_FIELDS if name != "spec"}
    return StudyView(**fields, spec={}), row.spec_text


def view_page(
    db: Reader, user: Principal, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[StudyView], int]:
    """One page of the studies ``user`` may see, newest first, and how many there are in all."""
    where = [] if user.is_admin else [Study.owner_id == user.id]
    if status is not None:
        where.append(Study.status == status)
    total = db.scalar(select(func.count()).select_from(Study).where(*where)) or 0
    query = select(*_PAGE_COLUMNS).join(User, Study.owner_id == User.id).where(*where)
    rows = db.execute(query.order_by(Study.seq.desc()).limit(limit).offset(offset))
    return [_page_view(row) for row in rows], total


def _page_view(row: Row[Any]) -> StudyView:
    fields = {name: getattr(row, name) for name in _VIEW_FIELDS if name != "spec"}
    return StudyView(**fields, spec={"metric": row.spec_metric, "mode": row.spec_mode})


def view_of(study: Study, owner: str) -> StudyView:
    """The view of an ORM row the caller already holds (after a submit or a cancel)."""
    fields = {name: getattr(study, name) for name in _VIEW_FIELDS if name != "owner"}
    return StudyView(owner=owner, **fields)


def request_cancel(session: Session, user: Principal, study_id: str) -> Study:
    """Cancel now when queued; ask the dispatcher to stop the driver when running; Conflict when final.

    Each change is a compare-and-set on the status the study was read with, not a read then a write: the
    dispatcher may claim the study (queued -> running) or end it in between, and a plain write would undo
    that (a claimed study marked cancelled while its driver ran on, unwatched).
    """
    study = get(session, user, study_id)
    changes: dict[str, dict[str, Any]] = {
        QUEUED: {"status": CANCELLED, "cancel_requested": True, "exit_code": None, "error": None,
                 "finished_at": utcnow()},
        RUNNING: {"cancel_requested": True},
    }  # fmt: skip
    while study.status in changes:
        if set_if_status(session, study, study.status, changes[study.status]):
            return study
    raise Conflict(f"study {study_id!r} already ended ({study.status}); nothing to cancel")


def set_if_status(session: Session, study: Study, status: str, values: dict[str, Any]) -> bool:
    """Write ``values`` to ``study`` only if its status is still ``status``; ``study`` is read again either way."""
    query = update(Study).where(Study.seq == study.seq, Study.status == status).values(**values)
    result = session.execute(query.execution_options(synchronize_session=False))
    changed = result.rowcount  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
    session.refresh(study)
    return bool(changed)


def delete(session: Session, user: Principal, study_id: str) -> None:
    """Delete an ended study; its trial rows go with it (ON DELETE CASCADE)."""
    study = get(session, user, study_id)
    if study.status not in FINAL_STATUSES:
        raise Conflict(f"study {study_id!r} is {study.status}; cancel it first, or wait until it ends")
    session.delete(study)


# -- the dispatcher's side -----------------------------------------------------------------


def queued_in_order(session: Session, limit: int) -> list[Study]:
    return list(session.scalars(select(Study).where(Study.status == QUEUED).order_by(Study.seq).limit(limit)))


def running(session: Session) -> list[Study]:
    return list(session.scalars(select(Study).where(Study.status == RUNNING).order_by(Study.seq)))


def mark_running(study: Study, launcher: str, handle: str) -> None:
    study.status = RUNNING
    study.launcher = launcher
    study.handle = handle
    study.attempts += 1
    study.started_at = study.started_at or utcnow()


def finish(study: Study, status: str, exit_code: int | None = None, error: str | None = None) -> None:
    assert status in FINAL_STATUSES, status
    study.status = status
    study.exit_code = exit_code
    study.error = error
    study.finished_at = utcnow()
