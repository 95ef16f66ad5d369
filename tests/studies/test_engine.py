"""The study driver end to end: a real local Ray Tune run, logged to a real MLflow store or server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from studies.cli import app
from studies.engine import run_study
from studies.live import ProgressView
from studies.progress import read_progress
from studies.records import TrialRecord
from studies.settings import StudySettings
from studies.specfile import parse_spec
from studies.tracking import PARENT_TAG, STATUS_TAG

pytestmark = pytest.mark.slow
EPOCHS = 3


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "engine-test",
        "dataset": {"name": "synthetic", "synthetic": {"num_train": 256, "num_test": 128}},
        "model": {"name": "mlp"},
        "training": {"epochs": EPOCHS, "batch_size": 32, "optimizer": "adam", "lr": 0.01, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 1.0], "layer": ["input", "feature_map"]}},
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        "max_concurrent_trials": 2,
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_a_study_runs_every_trial_and_records_it(
    store: str, local_ray: None, settings: StudySettings, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if store == "server":
        settings.tracking_uri = request.getfixturevalue("mlflow_server")
    seen: list[list[TrialRecord]] = []
    outcome = run_study(parse_spec(tiny_spec()), settings=settings, user="grace", on_progress=seen.append)

    assert outcome.status == "succeeded"
    assert len(outcome.trials) == 4
    assert seen and len(seen[-1]) == 4
    combos = {(t.params["alpha"], t.params["layer"]) for t in outcome.trials}
    assert combos == {(0.0, "input"), (0.0, "feature_map"), (1.0, "input"), (1.0, "feature_map")}
    for trial in outcome.trials:
        assert trial.status in ("finished", "stopped")
        assert (trial.epochs == EPOCHS) == (trial.status == "finished")
        assert 0.0 <= trial.metrics["median_test_error"] <= 100.0
    assert any(t.status == "finished" for t in outcome.trials)

    progress = read_progress(settings.resolved_tracking_uri, outcome.study_id)
    assert progress is not None
    assert progress.status == "succeeded"
    client = MlflowClient(settings.resolved_tracking_uri)
    by_id = {t.trial_id: t for t in progress.trials}
    assert set(by_id) == {t.trial_id for t in outcome.trials}  # one nested run per trial, none duplicated
    for trial in outcome.trials:
        logged = by_id[trial.trial_id]
        assert logged.status == trial.status
        assert logged.params["alpha"] == trial.params["alpha"]
        assert logged.params["weight_decay"] == 0.0001  # fixed factors are recorded too
        run = client.get_run(logged.run_id)
        assert run.data.tags[PARENT_TAG] == outcome.mlflow.parent_run_id
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(logged.run_id, "test_error")
        assert [m.step for m in history] == list(range(1, trial.epochs + 1))
        assert logged.metrics["median_test_error"] == pytest.approx(trial.metrics["median_test_error"])
    parent = client.get_run(outcome.mlflow.parent_run_id)
    assert parent.data.tags[STATUS_TAG] == "succeeded"
    artifacts = {f.path for f in client.list_artifacts(outcome.mlflow.parent_run_id)}
    assert {"spec.yaml", "report.json", "report.md", "error_vs_alpha.png"} <= artifacts

    table = outcome.report.factor_table
    assert table is not None
    counted = sum(cell.n for row in table.rows for cell in row.cells)
    assert counted == sum(t.status == "finished" for t in outcome.trials)

    view = ProgressView(parse_spec(tiny_spec()), total=4)
    view.update(outcome.trials)
    best = min(outcome.trials, key=lambda t: t.metrics["median_test_error"])
    assert view.best() is not None
    assert view.best().metrics["median_test_error"] == best.metrics["median_test_error"]
    assert view.counts()["finished"] + view.counts()["stopped"] == 4
    check_report_command(settings, outcome.study_id, tmp_path, best)


def check_report_command(settings: StudySettings, study_id: str, folder: Path, best: TrialRecord) -> None:
    """`mixup-studies report` rebuilds the driver's report from MLflow alone."""
    env = {"MIXUP_STUDIES_TRACKING_URI": settings.resolved_tracking_uri}
    runner = CliRunner()
    as_json = runner.invoke(app, ["report", study_id, "--format", "json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert report["study_id"] == study_id
    assert report["leaderboard"][0]["value"] == pytest.approx(best.metrics["median_test_error"])
    markdown = runner.invoke(app, ["report", study_id], env=env)
    assert markdown.exit_code == 0
    assert "median_test_error" in markdown.output
    png = folder / "plot.png"
    drawn = runner.invoke(app, ["report", study_id, "--format", "png", "-o", str(png)], env=env)
    assert drawn.exit_code == 0, drawn.output
    assert png.read_bytes().startswith(b"\x89PNG")
    missing = runner.invoke(app, ["report", "no-such-study"], env=env)
    assert missing.exit_code == 2


def test_a_study_whose_every_trial_fails_ends_failed_with_the_error(local_ray: None, settings: StudySettings) -> None:
    data = tiny_spec(
        search={"space": {"alpha": [0.0, 1.0]}},
        scheduler={"name": "fifo"},
        max_failures=0,
        training={"epochs": 2, "batch_size": 32, "optimizer": "sgd", "lr": 1e30, "device": "cpu"},
    )
    outcome = run_study(parse_spec(data), settings=settings)

    assert outcome.status == "failed"
    assert [t.status for t in outcome.trials] == ["failed", "failed"]
    assert "TrainingDiverged" in (outcome.report.first_error or "")
    assert "training loss became nan" in (outcome.report.first_error or "")
    progress = read_progress(settings.resolved_tracking_uri, outcome.study_id)
    assert progress is not None
    assert progress.status == "failed"
    assert all(t.status == "failed" and "TrainingDiverged" in (t.error or "") for t in progress.trials)


def test_optuna_search_is_seeded(local_ray: None, settings: StudySettings) -> None:
    data = tiny_spec(
        search={
            "algorithm": "optuna",
            "num_samples": 4,
            "seed": 11,
            "space": {"alpha": {"low": 0.05, "high": 2.0, "log": True}, "layer": ["input", "feature_map"]},
        },
        scheduler={"name": "fifo"},
        max_concurrent_trials=1,
    )
    first = run_study(parse_spec(data), settings=settings)
    again = run_study(parse_spec(data), settings=settings)

    assert first.status == again.status == "succeeded"
    assert len(first.trials) == 4
    points = [(round(t.params["alpha"], 9), t.params["layer"]) for t in first.trials]
    assert all(0.05 <= alpha <= 2.0 for alpha, _ in points)
    assert points == [(round(t.params["alpha"], 9), t.params["layer"]) for t in again.trials]


def _trial_workers() -> list[int]:
    """PIDs of trial actors of this test's own Ray (workers of a raylet this process started), never another's."""
    procs: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            procs[int(entry.name)] = (ppid, cmdline)
    raylets = {pid for pid, (ppid, cmd) in procs.items() if ppid == os.getpid() and "raylet" in cmd}
    return [pid for pid, (ppid, cmd) in procs.items() if ppid in raylets and "ImplicitFunc" in cmd]


def test_a_trial_retried_after_its_worker_died_records_each_epoch_once(
    local_ray: None, settings: StudySettings
) -> None:
    epochs = 12
    spec = tiny_spec(
        dataset={"name": "synthetic", "synthetic": {"num_train": 4000, "num_test": 500}},
        training={"epochs": epochs, "batch_size": 32, "optimizer": "adam", "lr": 0.01, "device": "cpu"},
        search={"space": {"alpha": [0.5]}},
        scheduler={"name": "fifo"},
        max_concurrent_trials=1,
        max_failures=2,
    )
    seen: list[list[TrialRecord]] = []
    killed: list[int] = []

    def kill_mid_trial() -> None:
        # Once the trial is past epoch 3 (and before its end), its worker dies; Tune retries it from its last
        # checkpoint, which is older than the epochs already logged (one per 10 s, and the run is shorter).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if seen and 3 <= max((r.epochs for r in seen[-1]), default=0) < epochs - 3:
                for pid in _trial_workers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_trial, daemon=True)
    killer.start()
    outcome = run_study(parse_spec(spec), settings=settings, on_progress=seen.append)
    killer.join(timeout=5)
    assert killed, "the trial ended before its worker could be killed"
    assert outcome.status == "succeeded", outcome.trials
    (trial,) = outcome.trials
    assert (trial.status, trial.epochs) == ("finished", epochs)
    progress = read_progress(settings.resolved_tracking_uri, outcome.study_id)
    assert progress is not None and len(progress.trials) == 1
    path = settings.resolved_tracking_uri.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        query = "SELECT key, step, COUNT(*) FROM metrics WHERE run_uuid = ? GROUP BY key, step"
        rows = db.execute(query, (progress.trials[0].run_id,)).fetchall()
    assert rows and {count for _, _, count in rows} == {1}, [r for r in rows if r[2] > 1]
    assert sorted(step for key, step, _ in rows if key == "test_error") == list(range(1, epochs + 1))


@pytest.mark.parametrize(("interval_s", "last_checkpoint"), [(0.0, "checkpoint_000002"), (3600.0, "checkpoint_000000")])
def test_the_checkpoint_interval_setting_reaches_the_trials(
    local_ray: None, settings: StudySettings, interval_s: float, last_checkpoint: str
) -> None:
    """0: a checkpoint every epoch (the 3rd is Tune's index 2); an hour: only the last epoch's (index 0)."""
    settings.checkpoint_interval_s = interval_s
    spec = parse_spec(tiny_spec(search={"space": {"alpha": [0.0]}}, scheduler={"name": "fifo"}))
    outcome = run_study(spec, settings=settings)
    assert outcome.status == "succeeded"
    saved = sorted(p.name for p in Path(outcome.experiment_path).glob("*/checkpoint_*"))
    assert saved[-1] == last_checkpoint
