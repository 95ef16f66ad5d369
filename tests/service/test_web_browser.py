"""The study pages in a real browser: Debian's Chromium, driven by Playwright, against `mixup-studies serve`.

One service (module fixture) runs real studies on a local Ray: the smoke preset (watched live while it
runs), the same ablation on iris (for the comparison) and a third one cancelled from its page while it
waits in the queue. Every page load records the browser's console errors and every request it makes:
none may fail, and none may leave 127.0.0.1. Skips, saying why, where Playwright or Chromium is missing.

The screenshot in the README (docs/images/study-page.png) is this run's: set MIXUP_STUDIES_SCREENSHOTS=1 to
write it there (else it goes to the test's temporary folder only).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.service.test_end_to_end import REPO, TOKEN, Service, running_service, smoke_spec, wait_status

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("MIXUP_STUDIES_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = REPO / "docs" / "images" / "study-page.png"


def iris_spec() -> dict[str, Any]:
    """A small ablation of the same kind on iris (α x layer, 4 short trials), for the comparison."""
    return {
        "name": "smoke-iris",
        "description": "α × layer on iris, for the comparison.",
        "dataset": {"name": "uci:iris"},
        "model": {"name": "mlp"},
        "training": {"epochs": 3, "batch_size": 16, "optimizer": "adam", "lr": 0.01},
        "search": {"space": {"alpha": [0.0, 1.0], "layer": ["input", "feature_map"]}},
        "resources": {"cpu": 1},
        "max_concurrent_trials": 1,
    }


def waiting_spec() -> dict[str, Any]:
    """Queued behind the other two (two run at once) until its page cancels it."""
    return {**iris_spec(), "name": "to-cancel", "description": "Cancelled from its page before it starts."}


@dataclass
class Browsing:
    """The service, its studies and one browser page, with what the browser saw go wrong."""

    service: Service
    studies: dict[str, str]  # name -> id
    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.service.url + path

    def watch(self, context: Any) -> Browsing:
        """Record every request of the browser context and every console error or failure of the page."""
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("requestfailed", lambda request: self.errors.append(f"failed: {request.url}"))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        return self

    def check_clean(self) -> None:
        """No console error, no failed request, nothing asked of a host other than the service."""
        off = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1" and not u.startswith("data:")]
        assert not off, off
        assert not self.errors, self.errors
        secret = TOKEN.split("_", 1)[1]
        assert not [u for u in self.requests if secret in u]  # the token never travels in a URL
        assert self.service.proc is not None and secret not in self.service.proc.log_text(tail=None)


def _launch(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium); pages not tested in a browser")
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    except Exception as error:  # a browser that cannot start here: say so, never pass
        pytest.skip(f"Chromium at {CHROMIUM} could not be launched by Playwright: {error}")


@pytest.fixture(scope="module")
def browsing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browsing]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (dev extra)")
    with sync_api.sync_playwright() as playwright:
        browser = _launch(playwright)
        for service in running_service(tmp_path_factory.mktemp("web")):
            # No MLflow UI process (it is not what is tested here); its links still point where it would be.
            service.env["MIXUP_STUDIES_MLFLOW_UI_PORT"] = "0"
            service.env["MIXUP_STUDIES_MLFLOW_UI_URL"] = "http://127.0.0.1:5999"
            service.env["MIXUP_STUDIES_WEB_REFRESH_S"] = "1"
            service.env["MIXUP_STUDIES_MAX_RUNNING_STUDIES"] = "2"  # smoke and iris at once: the run takes less
            service.start()
            studies = {}
            with service.client() as client:
                for spec in (smoke_spec(), iris_spec(), waiting_spec()):
                    created = client.post("/api/v1/studies", json=spec)
                    assert created.status_code == 201, created.text
                    studies[spec["name"]] = created.json()["id"]
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            yield Browsing(service, studies, page).watch(context)
            context.close()
        browser.close()


def test_log_in_and_see_the_list(browsing: Browsing) -> None:
    page = browsing.page
    page.goto(browsing.url("/"))
    assert urlsplit(page.url).path == "/login"  # / -> /studies -> the login page
    page.fill("#token", "mxs_wrong")
    page.click("button[type=submit]")
    assert "invalid token" in page.inner_text("[role=alert]")
    browsing.errors.clear()  # the 401 of that wrong token is a console error by design
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url("**/studies")
    rows = page.locator("tr.study")
    assert rows.count() == 3
    assert set(page.locator("tr.study td:nth-child(2) a").all_inner_texts()) == {"smoke", "smoke-iris", "to-cancel"}
    assert page.locator("tr.study progress").count() == 3
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("mixup_studies_session", True, "Strict")]
    browsing.check_clean()


def test_cancel_from_the_page(browsing: Browsing) -> None:
    page, study_id = browsing.page, browsing.studies["to-cancel"]
    page.goto(browsing.url(f"/studies/{study_id}"))
    assert page.inner_text(".live-state .status") == "queued"
    page.click("button.danger")
    page.wait_for_url(f"**/studies/{study_id}")  # the form's answer: back to the page, now cancelled
    assert page.inner_text(".live-state .status") == "cancelled"
    assert page.locator("button.danger").count() == 0
    with browsing.service.client() as client:
        assert client.get(f"/api/v1/studies/{study_id}").json()["status"] == "cancelled"
    browsing.check_clean()


def test_a_running_study_updates_live_and_ends_with_table_and_plots(browsing: Browsing) -> None:
    page, study_id = browsing.page, browsing.studies["smoke"]
    wait_status(browsing.service, study_id, {"running"}, 120)
    page.goto(browsing.url(f"/studies/{study_id}"))
    progress = (
        "() => document.querySelector('.trials-done').textContent + document.querySelector('.counts').textContent"
    )
    first = page.evaluate(progress)
    assert page.get_attribute("[data-ended]", "data-ended") == "false"
    # No reload from here on: the page's own polling must show the progress (trials starting, ending) and the end.
    # Generous limits: on a loaded 2-core machine a driver's Ray alone took 90 s to start.
    wait_in_page(browsing, f"text => ({progress})() !== text", first, 400, "the live block to show progress")
    wait_in_page(browsing, "() => document.querySelector('[data-ended=true]') !== null", None, 600, "the end")
    assert page.inner_text(".live-state .status") == "succeeded"
    assert page.inner_text(".trials-done") == "6/6 trials done"
    # The results block reloaded once more at the end: it shows what the final status block does.
    page.wait_for_function(
        "() => document.getElementById('results').dataset.version"
        " === document.querySelector('.live-state').dataset.version",
        timeout=60_000,
    )
    factor_rows = page.locator("table.factor tbody tr")
    assert factor_rows.count() >= 3, page.inner_html("table.factor")
    assert page.locator("table.factor td.best").count() == 1  # one weight-decay column: one best cell
    assert page.locator("table.trials tbody tr").count() == 6
    # Non-empty plots with a series per layer (α curve) and per trial (learning curves).
    assert page.locator("#alpha-plot svg [id^=series-]").count() == 2
    assert page.locator("#curves-plot svg [id^=series-]").count() == 6
    page.set_viewport_size({"width": 1280, "height": 1700})  # the README's picture: the page as it opens
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(_screenshot_path(browsing)))
    # Sorting the trials by the metric puts the lowest first.
    page.click("table.trials th:nth-child(5)")
    values = [float(v) for v in page.locator("table.trials tbody td:nth-child(5)").all_inner_texts() if v != "–"]
    assert values == sorted(values)
    page.click("text=Spec (YAML)")
    assert yaml.safe_load(page.inner_text("pre.spec"))["name"] == "smoke"
    # The runs view of the study's experiment (MLflow UI), its parent run, and each trial's run.
    runs = page.get_attribute("a.mlflow-runs", "href") or ""
    assert runs.startswith("http://127.0.0.1:5999/#/experiments/") and runs.endswith("/runs"), runs
    trial_links = page.locator("table.trials tbody a").evaluate_all("links => links.map(a => a.href)")
    assert len(trial_links) == 6 and all(link.startswith(runs + "/") for link in trial_links), trial_links
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen but tables
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})
    browsing.check_clean()


def wait_in_page(browsing: Browsing, function: str, arg: Any, timeout_s: float, what: str) -> None:
    """Wait for ``function`` to be true in the page; on a timeout, say what the page and the API showed."""
    try:
        browsing.page.wait_for_function(function, arg=arg, timeout=timeout_s * 1000)
    except Exception as error:
        shown = browsing.page.inner_text("#live")
        with browsing.service.client() as client:
            study = client.get(f"/api/v1/studies/{browsing.studies['smoke']}").json()
        raise AssertionError(f"waited {timeout_s} s for {what}: page shows {shown!r}; the API: "
                             f"{study['status']} {study['trial_counts']}") from error  # fmt: skip


def _screenshot_path(browsing: Browsing) -> Path:
    if os.environ.get("MIXUP_STUDIES_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT
    return browsing.service.home / "study-page.png"


def test_compare_two_studies(browsing: Browsing) -> None:
    page = browsing.page
    wait_status(browsing.service, browsing.studies["smoke-iris"], {"succeeded", "failed", "cancelled"}, 300)
    page.goto(browsing.url("/studies"))
    for name in ("smoke", "smoke-iris"):
        page.check(f"input[aria-label='compare {name}']")
    page.click("text=Compare selected")
    page.wait_for_url("**/studies/compare?*")
    assert page.locator("section.compared").count() == 2
    assert page.locator("section.compared table.factor").count() == 2
    # Shared axes: every study's layers in one plot (2 layers x 2 studies).
    assert page.locator("#compare-plot svg [id^=series-]").count() == 4
    browsing.check_clean()
