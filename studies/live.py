"""The live terminal view of a running study: trial counts, best so far, elapsed time."""

from __future__ import annotations

import time
from collections import Counter

from rich.table import Table

from studies.records import TrialRecord
from studies.spec import StudySpec

_STATES = ("finished", "stopped", "failed", "running", "pending", "cancelled")


class ProgressView:
    """Folds progress updates into a small rich table.

    Args:
        spec: the study.
        total: the trials it expands to.
    """

    def __init__(self, spec: StudySpec, total: int) -> None:
        self.spec = spec
        self.total = total
        self.started = time.monotonic()
        self.records: list[TrialRecord] = []

    def update(self, records: list[TrialRecord]) -> None:
        self.records = list(records)

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.records)

    def best(self) -> TrialRecord | None:
        """The best trial so far by the study's metric (running trials included)."""
        scored = [r for r in self.records if self.spec.metric in r.metrics and r.status != "failed"]
        if not scored:
            return None
        sign = 1.0 if self.spec.resolved_mode == "min" else -1.0
        return min(scored, key=lambda r: sign * r.metrics[self.spec.metric])

    def render(self) -> Table:
        counts = self.counts()
        ended = counts["finished"] + counts["stopped"] + counts["failed"]
        table = Table(title=f"study {self.spec.name}", show_header=False, box=None)
        table.add_row("trials", f"{ended} / {self.total} done")
        table.add_row("", "  ".join(f"{state} {counts[state]}" for state in _STATES))
        best = self.best()
        if best is not None:
            params = ", ".join(f"{k}={v}" for k, v in best.params.items())
            table.add_row(f"best {self.spec.metric}", f"{best.metrics[self.spec.metric]:.2f}  ({params})")
        table.add_row("elapsed", f"{time.monotonic() - self.started:.0f} s")
        return table
