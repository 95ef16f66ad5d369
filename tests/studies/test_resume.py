"""A real driver (`mixup-studies run`) is killed mid-study, resumed, stopped gracefully, and resumed again.

The study is an Optuna (TPE) search, so the resume must restore the searcher's
state too: it ends with exactly the requested trials, each with one MLflow run, and each
run's history holds one value per (metric, epoch) though epochs were replayed. The stop
leaves no trial running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from studies.progress import read_progress
from tests.support.processes import Proc, kill_processes_mentioning, start_process, stop_process, wait_until

pytestmark = pytest.mark.slow
TRIALS = 6
STUDY_ID = "resume-test"

SPEC = {
    "name": "resume",
    "dataset": {"name": "synthetic", "synthetic": {"num_train": 3000, "num_test": 500, "shape": [32]}},
    "model": {"name": "mlp"},
    "training": {"epochs": 4, "batch_size": 32, "optimizer": "adam", "lr": 0.003, "device": "cpu"},
    "search": {
        "algorithm": "optuna",
        "num_samples": TRIALS,
        "seed": 3,
        "space": {"alpha": {"low": 0.1, "high": 2.0}, "layer": ["input", "feature_map"]},
    },
    "max_concurrent_trials": 2,
}


def test_killed_and_stopped_drivers_resume_to_exactly_the_requested_trials(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    ray_temp = tempfile.mkdtemp(prefix="msr", dir="/tmp")
    home = tmp_path / "home"
    env = dict(
        os.environ,
        MIXUP_STUDIES_HOME=str(home),
        MIXUP_STUDIES_RAY_NUM_CPUS="2",
        MIXUP_STUDIES_RAY_TEMP_DIR=ray_temp,
    )
    uri = f"sqlite:///{home / 'mlflow.db'}"
    base = [sys.executable, "-m", "studies.cli", "run", str(spec_path), "--study-id", STUDY_ID, "--quiet"]

    def start(*extra: str) -> Proc:
        return start_process([*base, *extra], tmp_path / "driver.log", env=env, name="driver")

    def finished() -> int:
        progress = read_progress(uri, STUDY_ID)
        return sum(t.status == "finished" for t in progress.trials) if progress else 0

    try:
        # 1. Kill the driver (and the Ray it started) hard once two trials have finished.
        driver = start()
        wait_until(lambda: finished() >= 2 or not driver.alive(), 600, 1.0, "two finished trials")
        assert driver.alive(), driver.log_text()
        stop_process(driver, grace_s=0, sig=signal.SIGKILL)
        kill_processes_mentioning(ray_temp)

        # 2. Resume; stop it gracefully (SIGTERM, as `ray job stop` / docker do) after one more trial.
        done_before = finished()
        driver = start("--resume")
        wait_until(lambda: finished() > done_before or not driver.alive(), 600, 1.0, "a trial after the resume")
        if driver.alive():  # it may legitimately have finished everything already on a slow machine
            driver.popen.send_signal(signal.SIGTERM)  # the driver alone, as `ray job stop` or docker would
            code = driver.popen.wait(timeout=240)
            # 3 = cancelled; 0 when the signal came as the last trial ended (the study then completes).
            assert code in (0, 3), driver.log_text()
            progress = read_progress(uri, STUDY_ID)
            assert progress is not None
            assert progress.status == ("cancelled" if code == 3 else "succeeded")
            if code == 3:
                assert "--resume" in driver.log_text()
            # Stopped or completed, the study has ended: none of its trials is left running in MLflow.
            states = [(t.trial_id, t.status, t.epochs, t.run_id) for t in progress.trials]
            assert not [s for s in states if s[1] in ("pending", "running")], (states, driver.log_text()[-3000:])
            client = MlflowClient(uri)
            for trial in progress.trials:
                run_status = client.get_run(trial.run_id or "").info.status
                assert run_status == ("KILLED" if trial.status == "cancelled" else "FINISHED"), (trial, run_status)

        # 3. Resume again, to the end.
        driver = start("--resume")
        wait_until(lambda: not driver.alive(), 900, 1.0, "the resumed study to end")
        assert driver.popen.returncode == 0, driver.log_text()
    finally:
        kill_processes_mentioning(ray_temp)

    progress = read_progress(uri, STUDY_ID)
    assert progress is not None
    assert progress.status == "succeeded"
    assert len(progress.trials) == TRIALS
    assert len({t.trial_id for t in progress.trials}) == TRIALS
    assert all(t.status == "finished" and t.epochs == 4 for t in progress.trials)
    client = MlflowClient(uri)
    for trial in progress.trials:
        steps = [m.step for m in client.get_metric_history(trial.run_id, "test_error")]
        assert sorted(steps) == [1, 2, 3, 4]  # epochs replayed after the kill and the stop: recorded once
    # Every metric, not only test_error: one row per (run, key, step) in the store.
    with contextlib.closing(sqlite3.connect(home / "mlflow.db")) as db:
        repeated = db.execute(
            "SELECT run_uuid, key, step, COUNT(*) FROM metrics GROUP BY run_uuid, key, step HAVING COUNT(*) > 1"
        ).fetchall()
    assert repeated == []
    configs = {(round(t.params["alpha"], 9), t.params["layer"]) for t in progress.trials}
    assert len(configs) == TRIALS  # TPE's suggestions, none repeated by a searcher that forgot its state
