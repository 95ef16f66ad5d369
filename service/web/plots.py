"""The pages' plots: inline SVG drawn by :mod:`studies.plots` (the module the PNG report uses too), cached.

Drawing is the pages' one slow step (matplotlib: an α plot of 96 trials took 0.4-2.4 s on the 2-core
development machine, depending on its load; benchmarks/study_pages.py), and a plot depends only on what
the dispatcher stored last. So each SVG is kept under the study's (seq, progress_at, status): the dispatcher
stamps progress_at only when a trial changed, so an ended study is drawn once, a running one once per change.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from service.repository import StudyView
from service.settings import ServiceSettings
from studies.curves import curves_for
from studies.plots import alpha_curve_svg, compare_alpha_svg, learning_curves_svg
from studies.records import TrialRecord
from studies.report import StudyReport


class PlotCache:
    """(kind, key) → SVG text or None, a bounded LRU; thread-safe (the pages draw on the threadpool)."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, draw: Callable[[], str | None]) -> str | None:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        svg = draw()  # outside the lock: two misses of one key both draw, neither waits for the other
        with self._lock:
            self._entries[key] = svg
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return svg


def snapshot(view: StudyView) -> Hashable:
    """What a study's plots depend on: the trials the dispatcher stored last, and the study's state."""
    return (view.seq, view.progress_at, view.status)


def alpha_svg(cache: PlotCache, view: StudyView, report: StudyReport) -> str | None:
    return cache.get(("alpha", snapshot(view)), lambda: alpha_curve_svg(report))


#: Most learning curves the study page draws. Each is a read of the trial's history from MLflow and a line in
#: the page: all 5,000 of a large study would make the page (rebuilt whenever progress is stored) cost what
#: the study has, not what a reader can see.
MAX_CURVES = 200


def drawn_trials(trials: Sequence[TrialRecord], report: StudyReport) -> list[TrialRecord]:
    """The trials whose curves are drawn: all of them, or the :data:`MAX_CURVES` best by the study's metric
    (the report's ranking; trials without a value yet follow in start order)."""
    if len(trials) <= MAX_CURVES:
        return list(trials)
    rank = {row.trial_id: row.rank for row in report.leaderboard}
    return sorted(trials, key=lambda t: rank.get(t.trial_id, math.inf))[:MAX_CURVES]


def curves_svg(
    cache: PlotCache, settings: ServiceSettings, view: StudyView, trials: Sequence[TrialRecord]
) -> str | None:
    """Every trial's test error per epoch, read from the MLflow store the study's driver logs to.

    ``trials`` are the ones the dispatcher stored (with their run ids): only their histories are read.
    """
    if view.parent_run_id is None:  # the driver has not opened its MLflow run yet
        return None
    uri = settings.resolved_tracking_uri

    def draw() -> str | None:
        return learning_curves_svg(curves_for(uri, trials))

    return cache.get(("curves", snapshot(view)), draw)


def compare_svg(cache: PlotCache, studies: list[tuple[str, StudyView, StudyReport]]) -> str | None:
    key = ("compare", tuple((label, snapshot(view)) for label, view, _ in studies))
    return cache.get(key, lambda: compare_alpha_svg([(label, report) for label, _, report in studies]))
