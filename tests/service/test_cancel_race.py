"""A cancel and the dispatcher's claim of the same queued study, interleaved: neither undoes the other.

Each side reads the study, the other side commits its change, then the first writes. Read-then-write
lost one of the two changes (a claimed study marked cancelled while its driver ran, unwatched; a cancelled
study marked running). Real SQLite and PostgreSQL, two sessions.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from service import auth, repository
from service.db import session_factory
from service.models import CANCELLED, QUEUED, RUNNING, Study
from studies.spec import StudySpec

SPEC = StudySpec.model_validate({"name": "race", "dataset": {"name": "uci:iris"}, "model": {"name": "mlp"}})


def _queued_study(engine: Engine) -> tuple[str, auth.Caller]:
    with session_factory(engine)() as session:
        owner = auth.ensure_user(session, "alice")
        caller = auth.Caller(id=owner.id, name="alice", is_admin=False)
        study = repository.submit(session, caller, SPEC, max_queued=5)
        session.commit()
        return study.id, caller


def test_a_cancel_after_a_claim_it_did_not_see_asks_the_driver_to_stop(engine: Engine) -> None:
    study_id, alice = _queued_study(engine)
    sessions = session_factory(engine)
    with sessions() as api, sessions() as dispatcher:
        seen = repository.get(api, alice, study_id)  # the API's read, before the claim (held, as in the handler)
        assert seen.status == QUEUED
        claimed = dispatcher.scalar(select(Study).where(Study.id == study_id))
        assert claimed is not None
        assert repository.set_if_status(dispatcher, claimed, QUEUED, {"status": RUNNING})
        dispatcher.commit()
        study = repository.request_cancel(api, alice, study_id)
        api.commit()
        assert (study.status, study.cancel_requested) == (RUNNING, True)
    with sessions() as check:
        stored = check.scalar(select(Study).where(Study.id == study_id))
        assert stored is not None
        assert (stored.status, stored.cancel_requested, stored.finished_at) == (RUNNING, True, None)


def test_a_claim_after_a_cancel_it_did_not_see_starts_nothing(engine: Engine) -> None:
    study_id, alice = _queued_study(engine)
    sessions = session_factory(engine)
    with sessions() as api, sessions() as dispatcher:
        stale = repository.queued_in_order(dispatcher, 5)  # the dispatcher's read, before the cancel
        assert [s.id for s in stale] == [study_id]
        repository.request_cancel(api, alice, study_id)
        api.commit()
        assert not repository.set_if_status(dispatcher, stale[0], QUEUED, {"status": RUNNING})
        dispatcher.commit()
        assert stale[0].status == CANCELLED  # read again: the dispatcher sees the cancel
    with sessions() as check:
        stored = check.scalar(select(Study).where(Study.id == study_id))
        assert stored is not None
        assert (stored.status, stored.cancel_requested) == (CANCELLED, True)
