"""The study page draws the learning curves of at most MAX_CURVES trials: the best ones by the study's metric."""

from __future__ import annotations

from service.web.plots import MAX_CURVES, drawn_trials
from studies.records import TrialRecord
from studies.report import build_report
from studies.specfile import parse_spec

SPEC = parse_spec(
    {
        "name": "many",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 1},
        "search": {"space": {"alpha": [0.0, 1.0]}, "seeds": list(range(150))},
    }
)


def trial(i: int, error: float | None) -> TrialRecord:
    metrics = {} if error is None else {"test_error": error, "median_test_error": error}
    status = "running" if error is None else "finished"
    return TrialRecord(
        trial_id=f"t{i:03d}", params={"alpha": float(i % 2), "seed": i // 2}, status=status, metrics=metrics
    )


def test_a_large_study_draws_its_best_trials_then_the_unscored_in_start_order() -> None:
    trials = [trial(i, None if i >= 290 else float(300 - i)) for i in range(300)]  # the later, the better
    drawn = drawn_trials(trials, build_report(SPEC, trials))
    assert len(drawn) == MAX_CURVES == 200
    assert [t.trial_id for t in drawn[:3]] == ["t289", "t288", "t287"]
    assert {t.trial_id for t in drawn} == {f"t{i:03d}" for i in range(90, 290)}


def test_a_study_within_the_cap_draws_every_trial_in_start_order() -> None:
    trials = [trial(i, float(i)) for i in range(MAX_CURVES)]
    assert drawn_trials(trials, build_report(SPEC, trials)) == trials
