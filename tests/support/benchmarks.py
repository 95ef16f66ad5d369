"""Running a benchmark script's ``--quick`` mode in a test and reading its JSON line.

Only the shape of the output is for tests to check: the performance goals are the
benchmarks' business (benchmarks/RESULTS.md), never the test suite's.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@functools.cache  # each script runs once per test session
def run_quick(script: str, timeout_s: float = 600, only_line: bool = True) -> dict[str, Any]:
    """Run ``benchmarks/<script> --quick`` and return its JSON line.

    ``only_line``: the JSON must be all it prints (else it is the last line, after the engine's own output).
    """
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, proc.stderr[-4000:]
    if only_line:
        assert len(lines) == 1, proc.stdout
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    assert result["quick"] is True
    return result


def positive(value: Any) -> bool:
    """A finite number above zero (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def assert_positive_numbers(result: dict[str, Any], keys: list[str]) -> None:
    for key in keys:
        assert positive(result[key]), (key, result[key])
