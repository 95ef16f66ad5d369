"""benchmarks/api_worst_bodies.py runs end to end (``--quick``) and prints its one JSON line.

Only the shape of the output and the absence of 5xx are checked: the latency goal (/healthz p99 <= 50 ms)
is the benchmark's business (benchmarks/RESULTS.md), not the test suite's.
"""

from __future__ import annotations

import pytest

from tests.support.benchmarks import assert_positive_numbers, run_quick

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_api_worst_bodies_quick() -> None:
    result = run_quick("api_worst_bodies.py", timeout_s=240)
    assert result["benchmark"] == "api_worst_bodies"
    assert_positive_numbers(result, ["healthz_p99_ms", "healthz_requests", "submissions", "server_cpu_s"])
    assert result["errors_5xx"] == 0
    assert result["submit_transport_errors"] == 0
    assert all(size <= 1_000_000 for size in result["body_bytes"].values())
    statuses = {kind: set(entry["statuses"]) for kind, entry in result["kinds"].items()}
    # every body is answered, and only the valid ones are accepted
    assert statuses.get("huge_shape_hidden_layer", {"422"}) == {"422"}
    assert statuses.get("deep_nesting", {"422"}) == {"422"}
    # 45,000 variants parse and validate in full, then MIXUP_STUDIES_MAX_VARIANTS (100) refuses them
    assert statuses.get("many_variants", {"422"}) == {"422"}


def test_study_pages_quick() -> None:
    result = run_quick("study_pages.py", timeout_s=300)
    assert result["benchmark"] == "study_pages"
    assert result["trials"] == 24 and result["studies"] == 3
    for page in ("list", "study_page", "live_block", "api_status_poll"):
        assert result[page]["p50_ms"] > 0 and result[page]["p90_ms"] >= result[page]["p50_ms"], result
