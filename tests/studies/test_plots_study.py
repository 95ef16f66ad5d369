"""The plots of a real study: a tiny ASHA study run through the engine (local Ray, SQLite MLflow store), its
learning curves read back with trial_curves and drawn, its α curve drawn from the driver's report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studies.curves import TrialCurve, trial_curves
from studies.engine import StudyOutcome, run_study
from studies.plots import alpha_curve_svg, learning_curves_svg, series_gid
from studies.settings import StudySettings
from studies.specfile import parse_spec
from tests.studies.test_engine import EPOCHS, tiny_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyOutcome, str]:
    settings = StudySettings(home=Path(tmp_path_factory.mktemp("plots-study")) / "home", ray_num_cpus=2)
    spec = tiny_spec(name="plots-study", search={"space": {"alpha": [0.2, 1.0], "layer": ["input", "feature_map"]}})
    outcome = run_study(parse_spec(spec), settings=settings, user="ada")
    assert outcome.status == "succeeded"
    return outcome, settings.resolved_tracking_uri


@pytest.fixture(scope="module")
def curves(study: tuple[StudyOutcome, str]) -> list[TrialCurve]:
    outcome, uri = study
    return trial_curves(uri, outcome.mlflow.parent_run_id)


def test_every_trial_has_its_curve_up_to_where_it_ended(
    study: tuple[StudyOutcome, str], curves: list[TrialCurve]
) -> None:
    outcome, _ = study
    trials = {t.trial_id: t for t in outcome.trials}
    assert sorted(c.trial_id for c in curves) == sorted(trials)
    for curve in curves:
        trial = trials[curve.trial_id]
        assert curve.status == trial.status
        assert [epoch for epoch, _ in curve.points] == list(range(1, trial.epochs + 1))
        assert all(0.0 <= value <= 100.0 for _, value in curve.points)
    assert any(c.status == "finished" and len(c.points) == EPOCHS for c in curves)


def test_the_study_page_plots_show_every_trial(study: tuple[StudyOutcome, str], curves: list[TrialCurve]) -> None:
    outcome, _ = study
    svg = learning_curves_svg(curves)
    assert svg is not None
    assert sorted(re.findall(r'id="(series-[^"]*)"', svg)) == sorted(series_gid(c.trial_id) for c in curves)
    stopped = sorted(f"stopped-{series_gid(c.trial_id)[7:]}" for c in curves if c.status == "stopped")
    assert sorted(re.findall(r'id="(stopped-[^"]*)"', svg)) == stopped

    report = outcome.report
    alpha = alpha_curve_svg(report)
    assert alpha is not None
    # every α tried is in the plot: the finished trials' means, the stopped ones' last values
    assert {p.alpha for p in [*report.alpha_curve, *report.alpha_partial]} == {0.2, 1.0}
    assert len(report.alpha_partial) == sum(t.status == "stopped" for t in outcome.trials)
    layers = {p.series for p in [*report.alpha_curve, *report.alpha_partial]}
    shown = set(re.findall(r'id="(?:series|stopped)-([a-z_]+)_wd_1e-4"', alpha))
    assert shown == layers
