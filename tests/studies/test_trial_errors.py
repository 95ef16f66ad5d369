"""A failed trial's error, whole: in the study's records (what the service stores and serves), report and MLflow."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from studies.callbacks import MAX_ERROR_CHARS, error_text
from studies.engine import run_study
from studies.progress import read_progress
from studies.settings import StudySettings
from studies.specfile import parse_spec
from tests.support.processes import free_port

pytestmark = pytest.mark.slow
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


@pytest.fixture(scope="module")
def offline_ray() -> Iterator[None]:
    """A local Ray whose workers reach the web through a proxy nobody runs: every download fails, at once.

    (Ray's workers inherit this environment.) The failure is torchvision's own, a message over several lines.
    """
    saved = {name: os.environ.get(name) for name in PROXY_VARS}
    dead = f"http://127.0.0.1:{free_port()}"
    os.environ.update(http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead, no_proxy="", NO_PROXY="")
    temp_dir = tempfile.mkdtemp(prefix="mse", dir="/tmp")
    try:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_failed_trial_keeps_its_whole_error_message(offline_ray: None, tmp_path: Path) -> None:
    settings = StudySettings(home=tmp_path / "home", ray_num_cpus=2)
    data_dir = tmp_path / "data"
    spec = parse_spec(
        {
            "name": "mnist-offline",
            "dataset": {"name": "mnist", "data_dir": str(data_dir)},
            "model": {"name": "mlp"},
            "training": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.01, "device": "cpu"},
            "max_failures": 0,
        }
    )
    outcome = run_study(spec, settings=settings)

    assert outcome.status == "failed"
    [trial] = outcome.trials
    error = trial.error or ""
    where = f"no MNIST files at {str(data_dir / 'MNIST' / 'raw')!r} and the download into {str(data_dir)!r} failed"
    assert error.startswith(f"mixup_core.errors.DatasetNotFound: dataset.data_dir: {where} (OSError: ")
    assert error.endswith("); place the files there by hand")
    # every mirror tried, each with its own reason (mixup_core.data.fetch)
    assert error.count("URLError: <urlopen error [Errno 111] Connection refused>") >= 2, error
    assert "File " not in error  # the traceback stays in the driver's log
    assert len(error) <= MAX_ERROR_CHARS
    # The report, and MLflow (where the service and `report` read it back), have the same text.
    assert outcome.report.first_error == error
    assert [f.error for f in outcome.report.failures] == [error]
    progress = read_progress(settings.resolved_tracking_uri, outcome.study_id)
    assert progress is not None
    assert [t.error for t in progress.trials] == [error]


def _tune_error_file(*messages: str) -> str:
    """An error file as Tune writes it: one block per failure, each a Ray task's traceback."""
    frame = (
        '  File "/x/studies/trainable.py", line 71, in run_trial\n    trainer = Trainer(config)\n              ^^^^^\n'
    )
    return "".join(
        f"Failure # {n} (occurred at 2026-11-29_06-14-54)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\n"
        f"{frame}{message}\n"
        for n, message in enumerate(messages, 1)
    )


def test_the_error_of_the_last_failure_is_kept_and_a_long_one_cut_in_the_middle() -> None:
    first, last = "ValueError: first try", 'RuntimeError: "quoted" (and\n    indented) over\nlines'
    assert error_text(_tune_error_file(first, last)) == last
    long = "RuntimeError: " + "x" * 5000 + " the end"
    cut = error_text(_tune_error_file(long))
    assert len(cut) <= MAX_ERROR_CHARS
    assert cut.startswith("RuntimeError: xxx")
    assert cut.endswith("x the end")
    assert "characters cut" in cut
