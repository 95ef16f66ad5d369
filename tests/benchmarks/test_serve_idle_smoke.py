"""benchmarks/serve_idle.py runs end to end (``--quick``): two real ``serve`` process trees, one JSON line."""

from __future__ import annotations

import pytest

from tests.support.benchmarks import assert_positive_numbers, run_quick

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_serve_idle_quick() -> None:
    result = run_quick("serve_idle.py", timeout_s=540)
    assert result["benchmark"] == "serve_idle"
    assert_positive_numbers(result, ["jobs_off_rss_mb", "jobs_on_rss_mb", "jobs_off_processes", "jobs_on_processes"])
    # what the arms differ in: MLflow's job runner (huey consumers) is there only when enabled
    assert result["jobs_off_job_runner_processes"] == 0
    assert result["jobs_on_job_runner_processes"] > 0
    assert result["jobs_on_processes"] > result["jobs_off_processes"]
