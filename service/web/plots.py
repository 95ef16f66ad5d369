"""The pages' plots: inline SVG drawn by :mod:`studies.plots` (the module the PNG report uses too)."""

from __future__ import annotations

from service.repository import StudyView
from service.settings import ServiceSettings
from studies.curves import trial_curves
from studies.plots import alpha_curve_svg, compare_alpha_svg, learning_curves_svg
from studies.report import StudyReport


def alpha_svg(report: StudyReport) -> str | None:
    return alpha_curve_svg(report)


def curves_svg(settings: ServiceSettings, view: StudyView) -> str | None:
    """Every trial's test error per epoch, read from the MLflow store the study's driver logs to."""
    if view.parent_run_id is None:  # the driver has not opened its MLflow run yet
        return None
    curves = trial_curves(settings.resolved_tracking_uri, view.parent_run_id, experiment_id=view.experiment_id)
    return learning_curves_svg(curves)


def compare_svg(reports: list[tuple[str, StudyReport]]) -> str | None:
    return compare_alpha_svg(reports)
