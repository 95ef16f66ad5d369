"""The study pages over real HTTP (a live app on SQLite and PostgreSQL): login, cookie, CSRF, ownership, escaping."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import select, update

from service import auth, repository, trial_store
from service.db import session_factory
from service.models import Study, Token, utcnow
from service.web.plots import PlotCache
from studies.records import TrialRecord
from tests.service.conftest import TINY_SPEC, Api

XSS = "<script>alert('x')</script>"
STUDIES = "/api/v1/studies"


def submit(api: Api, user: str = "alice", **changes: object) -> str:
    with api.client(user) as client:
        response = client.post(STUDIES, json={**TINY_SPEC, **changes})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def store_trials(api: Api, study_id: str, trials: list[TrialRecord]) -> None:
    with session_factory(api.engine)() as session:
        row = session.scalar(select(Study).where(Study.id == study_id))
        assert row is not None
        repository.mark_running(row, "local", "1:1")
        trial_store.store_progress(session, row, "7", "parent", trials)
        session.commit()


def browser(api: Api) -> httpx.Client:
    """A client that behaves like a browser on the pages: same-origin Origin header, cookies kept."""
    return httpx.Client(base_url=api.url, headers={"Origin": api.url}, timeout=30.0)


@contextmanager
def login(api: Api, user: str = "alice") -> Iterator[httpx.Client]:
    with browser(api) as client:
        answer = client.post("/login", data={"token": api.tokens[user], "next": "/studies"})
        assert answer.status_code == 303, answer.text
        yield client


def with_cookie(api: Api, cookie: str, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, cookies={"mixup_studies_session": cookie}, headers=headers, timeout=30)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html[:2000]
    return found.group(1)


def test_login_sets_a_strict_httponly_cookie_and_never_echoes_the_token(api: Api) -> None:
    with browser(api) as client:
        page = client.get("/login")
        answer = client.post("/login", data={"token": api.tokens["alice"], "next": "/studies/x?a=1"})
        cookie = answer.headers["set-cookie"]
        assert answer.status_code == 303 and answer.headers["location"] == "/studies/x?a=1"
        assert cookie.startswith("mixup_studies_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http here: a Secure cookie would never come back
        assert api.tokens["alice"] not in cookie and api.tokens["alice"] not in answer.headers["location"]
        studies = client.get("/studies")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert studies.status_code == 200 and "alice" in studies.text
    assert "default-src 'self'" in studies.headers["content-security-policy"]


def test_oversized_or_many_field_forms_are_refused_before_parsing(api: Api) -> None:
    # Forms are parsed on the event loop: a 1 MB body of "a=b&" held it ~0.25 s before the size cap.
    with browser(api) as client:
        big = client.post(
            "/login", content=b"a=b&" * 5000, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        many = client.post("/login", data={f"f{i}": "x" for i in range(9)})
        fine = client.post("/login", data={"token": api.tokens["alice"], "next": "/studies"})
    assert big.status_code == 422 and "at most 16384 bytes, got 20000" in big.text
    assert many.status_code == 422 and "at most 8 fields" in many.text
    assert fine.status_code == 303


def test_login_over_https_sets_a_secure_cookie(api: Api) -> None:
    # uvicorn trusts X-Forwarded-Proto from loopback (a TLS proxy in front of the service).
    proxied = {"X-Forwarded-Proto": "https", "Origin": f"https://{api.url.split('//')[1]}"}
    with httpx.Client(base_url=api.url, timeout=30) as client:
        answer = client.post("/login", data={"token": api.tokens["alice"]}, headers=proxied)
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


@pytest.mark.parametrize("token", ["", "mxs_not-a-token"])
def test_a_bad_token_gets_no_cookie(api: Api, token: str) -> None:
    with browser(api) as client:
        answer = client.post("/login", data={"token": token})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert ("no token given" if not token else "invalid token") in answer.text
    assert token == "" or token not in answer.text


def test_pages_send_a_browser_without_a_session_to_login(api: Api) -> None:
    with browser(api) as client:
        root = client.get("/")
        page = client.get("/studies/some-id?x=1")
        with with_cookie(api, "made-up") as forging:
            forged = forging.get("/studies")
        evil = client.post("/login", data={"token": api.tokens["alice"], "next": "//evil.example/x"})
    assert (root.status_code, root.headers["location"]) == (303, "/studies")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/studies/some-id%3Fx%3D1")
    assert forged.status_code == 303 and forged.headers["location"].startswith("/login")
    assert evil.headers["location"] == "/studies"  # never back to another host after login


def test_cancel_needs_the_csrf_token_and_this_origin(api: Api) -> None:
    study_id = submit(api)
    with login(api) as client:
        csrf = csrf_of(client.get(f"/studies/{study_id}").text)
        url = f"/studies/{study_id}/cancel"
        missing = client.post(url, data={})
        wrong = client.post(url, data={"csrf_token": "x" + csrf})
        foreign = client.post(url, data={"csrf_token": csrf}, headers={"Origin": "http://evil.example"})
        with with_cookie(api, client.cookies["mixup_studies_session"]) as bare:  # no Origin, no Referer
            no_origin = bare.post(url, data={"csrf_token": csrf})
        with api.client() as api_client:
            assert api_client.get(f"{STUDIES}/{study_id}").json()["status"] == "queued"  # none of them got through
        done = client.post(url, data={"csrf_token": csrf})
        page = client.get(f"/studies/{study_id}")
    assert [r.status_code for r in (missing, wrong, foreign, no_origin)] == [403] * 4
    assert "csrf_token" in missing.text and "evil.example" in foreign.text
    assert (done.status_code, done.headers["location"]) == (303, f"/studies/{study_id}")
    assert 'class="status status-cancelled"' in page.text and "Cancel study" not in page.text


def test_logout_needs_csrf_and_ends_the_session(api: Api) -> None:
    with login(api) as client:
        csrf = csrf_of(client.get("/studies").text)
        refused = client.post("/logout", data={})
        still = client.get("/studies")
        cookie = client.cookies["mixup_studies_session"]
        out = client.post("/logout", data={"csrf_token": csrf})
    with with_cookie(api, cookie) as old:
        replayed, api_replayed = old.get("/studies"), old.get(STUDIES)
    assert refused.status_code == 403 and still.status_code == 200
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert replayed.status_code == 303 and api_replayed.status_code == 401  # the old cookie is dead server-side


def test_the_cookie_reads_the_api_but_never_changes_anything(api: Api) -> None:
    study_id = submit(api)
    with login(api) as client:
        listed = client.get(STUDIES)
        report = client.get(f"{STUDIES}/{study_id}/report", params={"format": "md"})
        cancel = client.post(f"{STUDIES}/{study_id}/cancel")
        created = client.post(STUDIES, json=TINY_SPEC)
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
    assert cancel.status_code == 401 and created.status_code == 401  # state changes need the token itself


def test_a_revoked_token_ends_its_page_sessions(api: Api) -> None:
    with login(api) as client:
        assert client.get("/studies").status_code == 200
        with session_factory(api.engine)() as session:
            digest = auth.hash_token(api.tokens["alice"])
            session.execute(update(Token).where(Token.token_hash == digest).values(revoked_at=utcnow()))
            session.commit()
        page = client.get("/studies")
        read = client.get(STUDIES)
    assert page.status_code == 303 and read.status_code == 401


def test_users_see_only_their_own_study_pages_admins_all(api: Api) -> None:
    mine = submit(api, "alice")
    theirs = submit(api, "bob")
    with login(api, "alice") as client:
        listed = client.get("/studies").text
        other = client.get(f"/studies/{theirs}")
        other_live = client.get(f"/studies/{theirs}/live")
        csrf = csrf_of(listed)
        other_cancel = client.post(f"/studies/{theirs}/cancel", data={"csrf_token": csrf})
    with login(api, "admin") as client:
        everyone = client.get("/studies").text
    assert mine in listed and theirs not in listed and "<th>Owner</th>" not in listed
    assert [r.status_code for r in (other, other_live, other_cancel)] == [404] * 3
    assert f"no study {theirs!r}".replace("'", "&#39;") in other.text  # an HTML error page, escaped
    assert mine in everyone and theirs in everyone and "<th>Owner</th>" in everyone


def test_the_status_filter_keeps_only_that_state(api: Api) -> None:
    queued, cancelled = submit(api), submit(api)
    with api.client() as client:
        client.post(f"{STUDIES}/{cancelled}/cancel")
    with login(api) as client:
        shown = client.get("/studies", params={"status": "cancelled"}).text
        bad = client.get("/studies", params={"status": "exploded"})
    assert cancelled in shown and queued not in shown
    assert bad.status_code == 422 and "status" in bad.text and "exploded" in bad.text


def test_text_from_specs_and_trials_is_escaped(api: Api) -> None:
    study_id = submit(api, description=f"desc {XSS}")
    store_trials(api, study_id, [
        TrialRecord("t1", {"alpha": 0.0}, "failed", 1, {}, error=f"boom {XSS}", run_id="r1"),
        TrialRecord("t2", {"alpha": 1.0}, "finished", 2, {"median_test_error": 8.0, "test_error": 8.0}, run_id="r2"),
    ])  # fmt: skip
    with login(api) as client:
        pages = [client.get(f"/studies/{study_id}").text, client.get(f"/studies/{study_id}/results").text]
    for html in pages:
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "boom &lt;script&gt;" in pages[0] and "desc &lt;script&gt;" in pages[0]


def test_the_study_page_shows_table_5_trials_and_links(api: Api) -> None:
    spec = {**TINY_SPEC, "search": {"space": {"alpha": [0.0, 1.0]}, "seeds": [0, 1]}}
    study_id = submit(api, search=spec["search"])
    store_trials(api, study_id, [
        TrialRecord("a", {"alpha": 0.0, "seed": 0}, "finished", 2, {"median_test_error": 10.0}, run_id="ra"),
        TrialRecord("b", {"alpha": 0.0, "seed": 1}, "finished", 2, {"median_test_error": 12.0}, run_id="rb"),
        TrialRecord("c", {"alpha": 1.0, "seed": 0}, "finished", 2, {"median_test_error": 7.0}, run_id="rc"),
        TrialRecord("d", {"alpha": 1.0, "seed": 1}, "stopped", 1, {"median_test_error": 30.0}, run_id="rd"),
    ])  # fmt: skip
    with login(api) as client:
        html = client.get(f"/studies/{study_id}").text
    cells = re.findall(
        r'<td class="cell( best)?"><span class="value">([^<]*)</span>(?: <span class="n">n=(\d+)</span>)?'
        r'((?: <span class="note">[^<]*</span>)*)',
        html,
    )
    # α=0: two finished seeds; α=1: one finished (no ± at n = 1, bold: the column's best), one stopped beside it.
    assert cells == [("", "11.00 ± 1.41", "2", ""), (" best", "7.00", "1", ' <span class="note">1 stopped</span>')]
    assert "4/4 trials done" in html
    assert 'href="http://127.0.0.1:5000/#/experiments/7/runs"' in html  # the runs view, as the API links it
    assert 'href="http://127.0.0.1:5000/#/experiments/7/runs/ra"' in html  # each trial's run
    assert f'href="/api/v1/studies/{study_id}/report?format=md"' in html
    assert "seeds:\n  - 0\n  - 1" in html or "seeds:\n- 0\n- 1" in html  # the spec as YAML


def test_compare_needs_two_studies_and_shows_each_table(api: Api) -> None:
    one, two, bobs = submit(api, name="one"), submit(api, name="two"), submit(api, "bob")
    with login(api) as client:
        page = client.get("/studies/compare", params={"ids": f"{one},{two}"})
        repeated = client.get("/studies/compare", params=[("ids", one), ("ids", two)])
        alone = client.get("/studies/compare", params={"ids": one})
        others = client.get("/studies/compare", params={"ids": f"{one},{bobs}"})
    assert page.status_code == 200 and repeated.status_code == 200
    assert others.status_code == 404 and bobs in others.text
    assert f'href="/studies/{one}"' in page.text and f'href="/studies/{two}"' in page.text
    assert alone.status_code == 422 and "ids" in alone.text and one in alone.text


def test_a_plot_is_drawn_once_per_stored_snapshot() -> None:
    cache, drawn = PlotCache(max_entries=2), []

    def draw(name: str) -> Callable[[], str]:
        return lambda: drawn.append(name) or f"<svg>{name}</svg>"

    assert cache.get(("alpha", 1), draw("a")) == "<svg>a</svg>"
    assert cache.get(("alpha", 1), draw("again")) == "<svg>a</svg>"  # same snapshot: not drawn again
    cache.get(("alpha", 2), draw("b"))
    cache.get(("alpha", 3), draw("c"))  # over max_entries: the least recently used (1) goes
    cache.get(("alpha", 1), draw("a2"))
    assert drawn == ["a", "b", "c", "a2"]
