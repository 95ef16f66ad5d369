"""The pages' plots: inline SVG drawn by :mod:`studies.plots` (the module the PNG report uses too)."""

from __future__ import annotations

from service.repository import StudyView
from service.settings import ServiceSettings
from studies.report import StudyReport


def alpha_svg(report: StudyReport) -> str | None:
    try:
        from studies import plots
    except ImportError:  # TODO(merge plots)
        return None
    return plots.alpha_curve_svg(report)


def curves_svg(settings: ServiceSettings, view: StudyView, report: StudyReport) -> str | None:
    del settings, view, report
    return None


def compare_svg(reports: list[tuple[str, StudyReport]]) -> str | None:
    try:
        from studies import plots
    except ImportError:
        return None
    return plots.compare_alpha_svg(reports)
