"""End to end with real parts: `mixup-studies serve` as a process, the smoke preset, a local Ray, MLflow.

One service (a module fixture) runs the smoke study and serves the CLI client's tests (`submit --watch`,
`report -o FILE`) over real HTTP. Restart safety has its own service: kill it (SIGKILL) mid-study, start
it again, and the study finishes exactly once (the driver is re-attached, not relaunched; MLflow holds
one run per trial).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mlflow.tracking import MlflowClient

from service.settings import ServiceSettings
from studies.specfile import preset_path
from studies.store import store_ready
from studies.tracking import PARENT_TAG, STUDY_ID_TAG, TRIAL_ID_TAG
from tests.support.processes import Proc, free_port, start_process, stop_process, wait_for_http, wait_until

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TOKEN = "mxs_end-to-end-admin-token"


@dataclass
class Service:
    home: Path
    url: str
    env: dict[str, str]
    proc: Proc | None = None

    def start(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        args = [sys.executable, "-m", "service.cli", "serve", "--port", port]
        self.proc = start_process(args, self.home / "serve.log", env=self.env, cwd=REPO, name="serve")
        wait_for_http(f"{self.url}/healthz", 120, self.proc)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        # COLUMNS: rich wraps tables to 80 columns without a terminal, splitting values such as "feature_map".
        env = {**self.env, "MIXUP_STUDIES_URL": self.url, "MIXUP_STUDIES_TOKEN": TOKEN, "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout_s)  # fmt: skip

    def settings(self) -> ServiceSettings:
        """What the service resolved (its home and the default results location under it)."""
        return ServiceSettings(home=self.home, results_uri=None, tracking_uri=None)


def running_service(tmp_path: Path) -> Iterator[Service]:
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))
    env = {
        **os.environ,
        "MIXUP_STUDIES_HOME": str(tmp_path / "home"),
        "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN,
        "MIXUP_STUDIES_RAY_NUM_CPUS": "2",
        "MIXUP_STUDIES_RAY_TEMP_DIR": str(ray_tmp),
        "MIXUP_STUDIES_MLFLOW_UI_PORT": str(free_port()),
        "MIXUP_STUDIES_POLL_INTERVAL_S": "0.5",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    running = Service(tmp_path / "home", f"http://127.0.0.1:{free_port()}", env)
    running.home.mkdir(parents=True)
    yield running
    if running.proc is not None:
        stop_process(running.proc, grace_s=15)
    # The driver outlives the service by design; end ours (found by its PID file) if a test failed midway.
    for pid_file in (running.home / "drivers").glob("*.pid"):
        pid = int(pid_file.read_text().split(":")[0])
        stop_process(pid, grace_s=30, sig=signal.SIGINT)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    yield from running_service(tmp_path)


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One started service for the smoke study and the CLI tests (a study driver's Ray start is slow here)."""
    for running in running_service(tmp_path_factory.mktemp("shared")):
        running.start()
        yield running


@pytest.fixture(scope="module")
def smoke_study(shared_service: Service) -> dict[str, Any]:
    """The smoke preset, submitted over HTTP and run to its end."""
    with shared_service.client() as client:
        created = client.post("/api/v1/studies", json=smoke_spec())
        assert created.status_code == 201, created.text
        assert client.get("/readyz").json()["checks"]["database"] == "ok"
    return wait_status(shared_service, created.json()["id"], {"succeeded", "failed", "cancelled"}, 400)


def smoke_spec() -> dict[str, Any]:
    return dict(yaml.safe_load(preset_path("smoke").read_text()))


def wait_status(service: Service, study_id: str, wanted: set[str], timeout_s: float) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        with service.client() as client:
            body = client.get(f"/api/v1/studies/{study_id}").json()
        return body if body["status"] in wanted else None

    return wait_until(check, timeout_s, 1.0, f"study {study_id} to be {wanted}")


def nested_runs(service: Service, study: dict[str, Any]) -> list[Any]:
    client = MlflowClient(f"sqlite:///{service.home / 'mlflow.db'}")
    parent = study["mlflow"]["parent_run_id"]
    return client.search_runs([study["mlflow"]["experiment_id"]], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'")


def test_smoke_study_over_http_end_to_end(shared_service: Service, smoke_study: dict[str, Any]) -> None:
    service, study = shared_service, smoke_study
    study_id = study["id"]
    assert study["status"] == "succeeded", (study.get("error"), service.proc and service.proc.log_text())
    assert study["trials_total"] == 6
    counts = study["trial_counts"]
    assert counts["finished"] + counts["stopped"] == 6, counts  # every trial ran to its end or was stopped by ASHA
    assert study["best_trial"]["metric"] == "median_test_error"
    assert 0 <= study["best_trial"]["value"] < 50  # digits with an MLP: far better than chance (90 %)
    with service.client() as client:
        trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["trials"]
        report = client.get(f"/api/v1/studies/{study_id}/report").json()
        markdown = client.get(f"/api/v1/studies/{study_id}/report", params={"format": "md"}).text
    assert len(trials) == 6
    assert {t["status"] for t in trials} <= {"finished", "stopped"}, [t["status"] for t in trials]
    assert {t["params"]["layer"] for t in trials} == {"input", "feature_map"}
    assert all(t["epochs"] >= 2 and "test_error" in t["metrics"] for t in trials)
    assert report["leaderboard"][0]["value"] == study["best_trial"]["value"]
    assert study_id in markdown or "median_test_error" in markdown
    runs = nested_runs(service, study)
    assert len(runs) == 6
    # The nested runs are exactly the API's trials, under the parent run that carries the study's id.
    assert {r.data.tags[TRIAL_ID_TAG] for r in runs} == {t["trial_id"] for t in trials}
    parent = MlflowClient(f"sqlite:///{service.home / 'mlflow.db'}").get_run(study["mlflow"]["parent_run_id"])
    assert parent.data.tags[STUDY_ID_TAG] == study_id
    shown = service.cli("status", study_id)
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout
    listed = service.cli("trials", study_id)
    assert listed.returncode == 0 and "feature_map" in listed.stdout


def test_cli_report_writes_markdown_and_png_files(
    shared_service: Service, smoke_study: dict[str, Any], tmp_path: Path
) -> None:
    study_id = smoke_study["id"]
    markdown = tmp_path / "report.md"
    written = shared_service.cli("report", study_id, "-o", str(markdown))
    assert written.returncode == 0, written.stderr
    assert f"wrote {markdown}" in written.stdout.replace("\n", "")
    with shared_service.client() as client:
        served = client.get(f"/api/v1/studies/{study_id}/report", params={"format": "md"}).text
    assert markdown.read_text() == served  # the file is the service's report, byte for byte
    assert "median_test_error" in served
    png = tmp_path / "alpha.png"
    plotted = shared_service.cli("report", study_id, "--format", "png", "-o", str(png))
    assert plotted.returncode == 0, plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = shared_service.cli("report", study_id, "--format", "png")  # binary to a terminal: refused
    assert refused.returncode == 2 and "needs -o FILE" in refused.stderr


def test_cli_submit_watch_follows_a_study_to_its_end(
    shared_service: Service, smoke_study: dict[str, Any], tmp_path: Path
) -> None:
    del smoke_study  # run after it: the service runs one study at a time
    spec = {
        "name": "watched",
        "dataset": {"name": "uci:iris"},
        "model": {"name": "mlp"},
        "training": {"epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01},
        "search": {"space": {"alpha": [0.0, 1.0]}},
        "resources": {"cpu": 1},
    }
    path = tmp_path / "watched.yaml"
    path.write_text(yaml.safe_dump(spec))
    watched = shared_service.cli("submit", str(path), "--watch", timeout_s=400)
    assert watched.returncode == 0, (watched.stdout, watched.stderr)  # 0: it succeeded
    study_id = watched.stdout.split("submitted ", 1)[1].split()[0]
    assert f"study {study_id} succeeded" in watched.stdout
    assert "best median_test_error" in watched.stdout
    with shared_service.client() as client:
        study = client.get(f"/api/v1/studies/{study_id}").json()
    assert study["status"] == "succeeded"  # --watch returned only once the study had ended
    assert study["trial_counts"]["finished"] + study["trial_counts"]["stopped"] == 2
    missing = shared_service.cli("submit", str(tmp_path / "missing.yaml"), "--watch")
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_killing_the_service_mid_study_loses_and_repeats_nothing(service: Service) -> None:
    service.start()
    with service.client() as client:
        study_id = client.post("/api/v1/studies", json=smoke_spec()).json()["id"]
    wait_status(service, study_id, {"running"}, 120)
    wait_until(lambda: (service.home / "mlflow.db").exists(), 120, 0.5, "the driver to open MLflow")
    assert service.proc is not None
    service.proc.popen.send_signal(signal.SIGKILL)  # the service only; the driver is in its own session
    service.proc.popen.wait(10)
    service.start()
    study = wait_status(service, study_id, {"succeeded", "failed", "cancelled"}, 400)
    assert study["status"] == "succeeded", study.get("error")
    assert study["attempts"] == 1  # re-attached, not relaunched
    assert len(nested_runs(service, study)) == 6  # every trial ran once
    log = (service.home / "logs" / f"{study_id}.log").read_text()
    assert log.count("=== attempt") == 1
    # Tune's experiment state (what a resume would restore) is where the service tells drivers to keep it.
    assert (Path(service.settings().experiment_path(study_id)) / "tuner.pkl").exists()


def test_two_studies_starting_at_once_on_a_fresh_home_both_succeed(service: Service) -> None:
    # Two drivers at once used to both create the fresh MLflow store; one study then failed ("every trial failed").
    service.env["MIXUP_STUDIES_MAX_RUNNING_STUDIES"] = "2"
    service.start()
    store = f"sqlite:///{service.home / 'mlflow.db'}"
    assert store_ready(store)  # serve created it before anything else could open it
    spec = {
        "dataset": {"name": "uci:iris"}, "model": {"name": "mlp"},
        "training": {"epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01},
        "search": {"space": {"alpha": [0.0, 1.0]}}, "resources": {"cpu": 1},
    }  # fmt: skip
    with service.client() as client:
        ids = [client.post("/api/v1/studies", json={**spec, "name": name}).json()["id"] for name in ("one", "two")]

    def both_running() -> bool:
        with service.client() as client:
            return all(client.get(f"/api/v1/studies/{i}").json()["status"] == "running" for i in ids)

    wait_until(both_running, 60, 0.5, "both studies to run at once")
    ended = [wait_status(service, i, {"succeeded", "failed", "cancelled"}, 400) for i in ids]
    assert [(s["status"], s["attempts"], s["error"]) for s in ended] == [("succeeded", 1, None)] * 2
    assert all(s["trial_counts"]["finished"] + s["trial_counts"]["stopped"] == 2 for s in ended), ended
    with sqlite3.connect(service.home / "mlflow.db") as db:
        assert len(db.execute("SELECT version_num FROM alembic_version").fetchall()) == 1


def test_a_cancelled_study_leaves_no_trial_running_anywhere(service: Service) -> None:
    # Trials long enough to be cut short: the cancel lands while two of the four run.
    spec = {
        "name": "cancelled",
        "dataset": {"name": "uci:digits"},
        "model": {"name": "mlp"},
        "training": {"epochs": 400, "batch_size": 64, "optimizer": "adam", "lr": 0.002},
        "search": {"space": {"alpha": [0.0, 1.0], "layer": ["input", "feature_map"]}},
        "resources": {"cpu": 1},
        "max_concurrent_trials": 2,
    }
    service.start()
    with service.client() as client:
        created = client.post("/api/v1/studies", json=spec)
        assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    wait_until(lambda: wait_status(service, study_id, {"running"}, 300)["trial_counts"]["running"], 300, 1.0,
               "a trial to run")  # fmt: skip
    cancelled = service.cli("cancel", study_id)
    assert cancelled.returncode == 0 and "stopping" in cancelled.stdout, (cancelled.stdout, cancelled.stderr)
    study = wait_status(service, study_id, {"succeeded", "failed", "cancelled"}, 300)
    assert (study["status"], study["cancel_outcome"]) == ("cancelled", "cancelled")
    counts = study["trial_counts"]
    assert counts["running"] == counts["pending"] == 0, counts
    assert counts["cancelled"] >= 2 and sum(counts.values()) == 4, counts
    with service.client() as client:
        trials = client.get(f"/api/v1/studies/{study_id}/trials").json()["trials"]
        report = client.get(f"/api/v1/studies/{study_id}/report", params={"format": "md"}).text
    assert {t["status"] for t in trials} <= {"finished", "cancelled"}, trials
    assert "(cancelled)." in report and "running" not in report
    runs = nested_runs(service, study)
    assert runs and {r.info.status for r in runs} <= {"FINISHED", "KILLED"}, [r.info.status for r in runs]
    assert {r.data.tags["mixup_studies.status"] for r in runs} <= {"finished", "cancelled"}
    shown = service.cli("status", study_id)
    assert f"{study_id} cancelled" in shown.stdout and "running 0" in shown.stdout, shown.stdout
