"""Trials in their own table (SQLite and PostgreSQL): pages, filters, incremental reads, counts, deletes.

Trials are stored the dispatcher's way (service.trial_store.store_progress) and read over real HTTP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from service import auth, repository, trial_store
from service.db import session_factory
from service.models import CANCELLED, Study, TrialRow
from studies.records import TrialRecord
from tests.service.conftest import TINY_SPEC, Api

STUDIES = "/api/v1/studies"
T0 = 1_790_000_000_000  # ms since the epoch


def submit(api: Api, **changes: Any) -> str:
    with api.client() as client:
        response = client.post(STUDIES, json={**TINY_SPEC, **changes})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def trial(n: int, status: str = "finished", value: float | None = None, epochs: int = 2) -> TrialRecord:
    metrics = {"median_test_error": value if value is not None else 50.0 - n, "test_error": 40.0}
    # Started in the reverse order of their ids: the list's order must be the start order, not the id's.
    ended = T0 + 5 if status == "finished" else None
    return TrialRecord(f"t{n:02d}", {"alpha": float(n)}, status, epochs, metrics,  # type: ignore[arg-type]
                       run_id=f"r{n}", started_ms=T0 - 1000 * n, ended_ms=ended)  # fmt: skip


def store(api: Api, study_id: str, trials: list[TrialRecord], complete: bool = True, status: str | None = None) -> None:
    with session_factory(api.engine)() as session:
        row = session.scalar(select(Study).where(Study.id == study_id))
        assert row is not None
        if row.status == "queued":
            repository.mark_running(row, "local", "1:1")
        trial_store.store_progress(session, row, "7", "parent", trials, complete)
        if status is not None:
            repository.finish(row, status)
        session.commit()


def get(api: Api, url: str, **params: Any) -> Any:
    with api.client() as client:
        response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_trials_come_in_pages_in_start_order(api: Api) -> None:
    study_id = submit(api, search={"space": {"alpha": [float(i) for i in range(7)]}})
    store(api, study_id, [trial(n) for n in range(7)])
    url = f"{STUDIES}/{study_id}/trials"
    first, rest = get(api, url, limit=3), get(api, url, limit=3, offset=3)
    assert (first["total"], first["limit"], first["offset"]) == (7, 3, 0)
    assert [t["trial_id"] for t in first["trials"]] == ["t06", "t05", "t04"]  # earliest start first
    assert [t["trial_id"] for t in rest["trials"]] == ["t03", "t02", "t01"]
    assert get(api, url, offset=7)["trials"] == [] and get(api, url, offset=7)["total"] == 7
    started = datetime.fromisoformat(first["trials"][0]["started_at"])
    assert started.timestamp() == (T0 - 6000) / 1000
    assert datetime.fromisoformat(first["trials"][0]["ended_at"]).timestamp() == (T0 + 5) / 1000
    assert first["trials"][0]["updated_at"] is not None
    assert get(api, url)["limit"] == 100 and len(get(api, url)["trials"]) == 7  # the default page


def test_status_filter_and_updated_after_read_only_what_changed(api: Api) -> None:
    study_id = submit(api, search={"space": {"alpha": [float(i) for i in range(5)]}})
    store(api, study_id, [trial(n, "running", epochs=1) for n in range(5)])
    url = f"{STUDIES}/{study_id}/trials"
    before = get(api, url)
    assert before["total"] == 5
    last_seen = max(t["updated_at"] for t in before["trials"])
    assert get(api, url, updated_after=last_seen)["total"] == 0

    store(api, study_id, [trial(1), trial(3)], complete=False)  # two trials finished; the rest unchanged
    changed = get(api, url, updated_after=last_seen)
    assert [t["trial_id"] for t in changed["trials"]] == ["t03", "t01"]
    assert [t["status"] for t in changed["trials"]] == ["finished", "finished"]
    assert get(api, url, status="finished")["total"] == 2
    assert [t["trial_id"] for t in get(api, url, status="running")["trials"]] == ["t04", "t02", "t00"]
    # An offset other than UTC's names the same moment.
    moment = datetime.fromisoformat(last_seen)
    shifted = moment.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+05:30").tzinfo).isoformat()
    assert get(api, url, updated_after=shifted)["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "done"}, "status"),
        ({"updated_after": "yesterday"}, "updated_after"),
    ],
)
def test_bad_trial_queries_are_422_naming_the_field(api: Api, params: dict[str, Any], field: str) -> None:
    study_id = submit(api)
    with api.client() as client:
        response = client.get(f"{STUDIES}/{study_id}/trials", params=params)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert f"got {str(next(iter(params.values())))!r}" in response.json()["detail"]  # the value, as sent


def test_counts_and_best_come_from_the_study_row(api: Api) -> None:
    study_id = submit(api, search={"space": {"alpha": [float(i) for i in range(6)]}})
    store(api, study_id, [trial(0, value=9.0), trial(1, value=3.0), trial(2, "running", value=1.0), trial(3, "failed")])
    detail = get(api, f"{STUDIES}/{study_id}")
    assert detail["trial_counts"] == {"pending": 2, "running": 1, "finished": 2, "stopped": 0, "failed": 1,
                                      "cancelled": 0}  # fmt: skip
    assert (detail["best_trial"]["trial_id"], detail["best_trial"]["status"]) == ("t02", "running")
    listed = get(api, STUDIES)["items"][0]
    assert listed["trial_counts"] == detail["trial_counts"]

    store(api, study_id, [], complete=False, status=CANCELLED)  # ended: the running and pending ones are cancelled
    ended = get(api, f"{STUDIES}/{study_id}")
    assert ended["trial_counts"] == {"pending": 0, "running": 0, "finished": 2, "stopped": 0, "failed": 1,
                                     "cancelled": 3}  # fmt: skip
    assert ended["best_trial"]["status"] == "cancelled"
    url = f"{STUDIES}/{study_id}/trials"
    assert [t["trial_id"] for t in get(api, url, status="cancelled")["trials"]] == ["t02"]
    assert get(api, url, status="running")["total"] == 0


def test_a_complete_read_deletes_the_trials_mlflow_no_longer_has(api: Api) -> None:
    study_id = submit(api)
    store(api, study_id, [trial(0), trial(1)])
    store(api, study_id, [trial(1)], complete=False)
    assert get(api, f"{STUDIES}/{study_id}/trials")["total"] == 2  # a partial read deletes nothing
    store(api, study_id, [trial(1)])
    assert [t["trial_id"] for t in get(api, f"{STUDIES}/{study_id}/trials")["trials"]] == ["t01"]
    assert get(api, f"{STUDIES}/{study_id}")["trial_counts"]["finished"] == 1


def test_deleting_a_study_deletes_its_trial_rows(api: Api) -> None:
    kept, deleted = submit(api), submit(api)
    store(api, kept, [trial(0)], status="succeeded")
    store(api, deleted, [trial(0), trial(1)], status="succeeded")
    with api.client() as client:
        assert client.delete(f"{STUDIES}/{deleted}").status_code == 204
    with session_factory(api.engine)() as session:
        rows = session.execute(select(TrialRow.trial_id, Study.id).join(Study, Study.seq == TrialRow.study_seq)).all()
        assert [tuple(r) for r in rows] == [("t00", kept)]
        assert session.scalar(select(func.count()).select_from(TrialRow)) == 1


def test_report_leaderboard_is_paged_and_built_from_every_trial(api: Api) -> None:
    study_id = submit(api, search={"space": {"alpha": [float(i) for i in range(5)]}})
    store(api, study_id, [trial(n) for n in range(5)])
    url = f"{STUDIES}/{study_id}/report"
    page = get(api, url, leaderboard_limit=2, leaderboard_offset=1)
    assert page["leaderboard_total"] == 5
    assert [r["rank"] for r in page["leaderboard"]] == [2, 3]
    assert page["best"]["trial_id"] == "t04"  # the best of all, not of the page
    assert page["counts"]["finished"] == 5
    assert len(get(api, url)["leaderboard"]) == 5
    with api.client() as client:
        markdown = client.get(url, params={"format": "md", "leaderboard_offset": 2}).text
        bad = client.get(url, params={"leaderboard_limit": 0})
    assert "## Leaderboard (ranks 3-5 of 5)" in markdown
    assert bad.status_code == 422 and "leaderboard_limit" in bad.json()["detail"]


def test_the_client_reads_every_page(api: Api) -> None:
    from pydantic import SecretStr

    from service.client import Client, ClientSettings

    study_id = submit(api, search={"space": {"alpha": [float(i) for i in range(5)]}})
    store(api, study_id, [trial(n) for n in range(5)])
    body = Client(ClientSettings(url=api.url, token=SecretStr(api.tokens["alice"]))).all_trials(study_id, page=2)
    assert [t["trial_id"] for t in body["trials"]] == ["t04", "t03", "t02", "t01", "t00"]
    assert body["total"] == 5


def test_a_user_cannot_read_anothers_trials(api: Api) -> None:
    study_id = submit(api)
    with session_factory(api.engine)() as session:
        auth.ensure_user(session, "bob")
    with api.client("bob") as bob:
        assert bob.get(f"{STUDIES}/{study_id}/trials").status_code == 404


def test_the_study_page_shows_a_page_of_trials_with_links_to_the_others(api: Api) -> None:
    from tests.service.test_web_pages import login

    study_id = submit(api)  # its spec's trial count plays no part here
    store(api, study_id, [trial(n) for n in range(120)])
    with login(api) as client:
        first = client.get(f"/studies/{study_id}").text
        last = client.get(f"/studies/{study_id}", params={"trials_offset": 100}).text
        fragment = client.get(f"/studies/{study_id}/results", params={"trials_offset": 100}).text
        bad = client.get(f"/studies/{study_id}", params={"trials_offset": -1})
    assert first.count('<tr class="trial ') == 100 and "(1–100 of 120)" in first
    assert f"/studies/{study_id}?trials_offset=100" in first and "Previous trials" not in first
    assert ">t119<" in first and ">t19<" not in first  # start order: the latest-started last
    assert last.count('<tr class="trial ') == 20 and "(101–120 of 120)" in last and "Next trials" not in last
    assert f"/studies/{study_id}?trials_offset=0" in last
    assert "/results?trials_offset=100" in last  # the live reload keeps the page
    assert fragment.count('<tr class="trial ') == 20
    assert "Table 5" in first and "Table 5" in last  # the report (from every trial) on each page
    assert bad.status_code == 422


def test_a_study_larger_than_the_default_trial_cap_has_its_report_and_page(api: Api) -> None:
    """Admitted with a cap raised above the schema's default 1,000 (or stored before the cap was lowered): its
    report and page were a 500, the stored spec validated again against the default cap."""
    from studies.specfile import parse_spec
    from tests.service.test_web_pages import login

    big = parse_spec({**TINY_SPEC, "search": {"space": {"alpha": [0.0, 1.0]}, "seeds": list(range(600))}}, 10**6)
    with session_factory(api.engine)() as session:
        owner = auth.ensure_user(session, "alice")
        study_id = repository.submit(session, owner, big, max_queued=5).id
        session.commit()
    store(api, study_id, [trial(n) for n in range(3)])
    report = get(api, f"{STUDIES}/{study_id}/report")
    assert report["counts"]["finished"] == 3 and report["best"]["trial_id"] == "t02"
    assert get(api, f"{STUDIES}/{study_id}")["trials_total"] == 1200
    with login(api) as client:
        assert client.get(f"/studies/{study_id}").status_code == 200
