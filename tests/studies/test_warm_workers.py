"""Trials start on Ray's idle workers, which the engine's local Ray has already warmed with the trainable's imports."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
import torch
from ray.tune import ExperimentAnalysis

from studies.engine import init_ray, run_study
from studies.settings import StudySettings
from studies.specfile import parse_spec
from studies.trainable import _use_assigned_threads

pytestmark = pytest.mark.slow


@pytest.fixture
def engine_ray(tmp_path: Path) -> Iterator[StudySettings]:
    """A local Ray started the way a study driver starts it (not the tests' plain ``ray.init``)."""
    assert not ray.is_initialized()
    temp_dir = Path(tempfile.mkdtemp(prefix="msw", dir="/tmp"))  # short: Ray's socket paths have a length limit
    settings = StudySettings(home=tmp_path / "home", ray_num_cpus=2, ray_temp_dir=temp_dir)
    init_ray(settings)
    try:
        yield settings
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        yield int(entry.name), parent, cmdline


def workers_with_torch(temp_dir: Path) -> set[int]:
    """This Ray's worker processes (its raylet's children; they retitle themselves ``ray::…``) with torch loaded."""
    processes = list(_processes())
    raylets = {pid for pid, _, cmdline in processes if "/raylet " in cmdline and str(temp_dir) in cmdline}
    found = set()
    for pid, parent, _ in processes:
        try:
            if parent in raylets and "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text():
                found.add(pid)
        except OSError:
            continue
    return found


def test_trial_actors_run_on_the_idle_workers_that_preloaded_the_trainable(engine_ray: StudySettings) -> None:
    assert engine_ray.ray_temp_dir is not None
    deadline = time.monotonic() + 300  # preloading torch and Ray Tune takes 5–40 s on 2 busy cores
    while len(warm := workers_with_torch(engine_ray.ray_temp_dir)) < 2:  # one per CPU, started by Ray itself
        assert time.monotonic() < deadline, f"Ray's idle workers did not preload torch: {warm}"
        time.sleep(0.5)

    spec = parse_spec(
        {
            "name": "warm-workers",
            "dataset": {"name": "synthetic", "synthetic": {"num_train": 128, "num_test": 64}},
            "model": {"name": "mlp"},
            "training": {"epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 0.01, "device": "cpu"},
            "search": {"space": {"alpha": [0.0, 1.0]}},
            "scheduler": {"name": "fifo"},
            "resources": {"cpu": 1},
            "max_concurrent_trials": 2,
        }
    )
    outcome = run_study(spec, settings=engine_ray)

    assert outcome.status == "succeeded"
    assert [t.status for t in outcome.trials] == ["finished", "finished"]
    trial_pids = {trial.last_result["pid"] for trial in ExperimentAnalysis(outcome.experiment_path).trials}
    assert trial_pids and trial_pids <= warm  # no trial waited for a new process to import torch


@ray.remote(num_cpus=1)
class _Probe:
    def threads(self) -> tuple[str | None, int]:
        _use_assigned_threads()
        return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_a_trial_on_a_preloaded_worker_uses_only_its_own_cpus(engine_ray: StudySettings) -> None:
    # torch was imported before Ray told the worker its CPUs; the trial must still keep to 1 thread.
    probe = _Probe.remote()  # type: ignore[attr-defined]
    assert ray.get(probe.threads.remote(), timeout=240) == ("1", 1)


@pytest.fixture
def cold_ray(tmp_path: Path) -> Iterator[StudySettings]:
    """A Ray whose workers import the trainable only when a trial actor starts (a cluster's, not the engine's)."""
    assert not ray.is_initialized()
    temp_dir = Path(tempfile.mkdtemp(prefix="msc", dir="/tmp"))
    ray.init(num_cpus=4, include_dashboard=False, _temp_dir=str(temp_dir), logging_level="ERROR")
    try:
        yield StudySettings(home=tmp_path / "home")
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_trials_shorter_than_an_actors_start_still_run_on_as_many_actors_as_allowed(cold_ray: StudySettings) -> None:
    # Each trial takes well under the seconds a cold worker needs to import torch. Tune used to hand the next
    # trial the actor that had just finished one, killing that trial's actor as it came up, so the whole
    # study ran on one actor, one trial at a time, while Ray started a worker per trial for nothing.
    trials = 24
    spec = parse_spec(
        {
            "name": "short-trials",
            "dataset": {"name": "synthetic", "synthetic": {"num_train": 1024, "num_test": 64}},
            "model": {"name": "mlp", "width": 0.25},
            "training": {"epochs": 3, "batch_size": 32, "optimizer": "adam", "lr": 0.01, "device": "cpu"},
            "search": {"space": {"alpha": [round(0.1 * i, 1) for i in range(trials // 2)]}, "seeds": [0, 1]},
            "scheduler": {"name": "fifo"},
            "resources": {"cpu": 1},
            "max_concurrent_trials": 4,
        }
    )
    outcome = run_study(spec, settings=cold_ray)

    assert outcome.status == "succeeded"
    assert len(outcome.trials) == trials and {t.status for t in outcome.trials} == {"finished"}
    per_actor: dict[int, int] = {}
    for trial in ExperimentAnalysis(outcome.experiment_path).trials:
        per_actor[trial.last_result["pid"]] = per_actor.get(trial.last_result["pid"], 0) + 1
    assert len(per_actor) >= 3, per_actor  # 4 allowed; one may come up only after the others ran every trial
    assert max(per_actor.values()) < trials // 2, per_actor
