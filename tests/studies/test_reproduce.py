"""The reproduction suite without Ray: experiments and overrides, claim verdicts against hand computations,
the registry, and rendering docs/REPRODUCTION.md from JSON lines."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli import app as service_app
from studies.cli import app
from studies.errors import InvalidStudySpec
from studies.records import TrialRecord
from studies.reproduce import Claim, Experiment, apply_overrides, experiments, get, judge, render, verdict
from studies.reproduce.claims import OPPOSITE, REPRODUCES, TOO_FEW, UNRESOLVED
from studies.reproduce.render import BEGIN, END, write_document
from studies.specfile import parse_spec

# t(0.975, 2) from a printed table (NIST/SEMATECH e-Handbook, 1.3.6.7.2), to four decimals: 4.3027.
T2 = 4.3027


@pytest.mark.parametrize(
    ("direction", "low", "high", "expected"),
    [
        ("lower", -5.0, -1.0, REPRODUCES),
        ("lower", 1.0, 5.0, OPPOSITE),
        ("higher", 1.0, 5.0, REPRODUCES),
        ("higher", -5.0, -1.0, OPPOSITE),
        ("lower", -5.0, 0.0, UNRESOLVED),  # an interval that reaches 0 holds it
        ("lower", -1.0, 2.0, UNRESOLVED),
        ("lower", None, None, TOO_FEW),
    ],
)
def test_verdict_reads_the_interval_against_the_papers_direction(
    direction: str, low: float | None, high: float | None, expected: str
) -> None:
    assert verdict(direction, low, high, -3.0) == expected


def test_no_difference_is_no_data() -> None:
    assert verdict("lower", None, None, None) == "no data"


def study(**extra: Any) -> Any:
    data = {
        "name": "claims",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 3, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 1.0, 8.0]}, "seeds": [0, 1, 2]},
        "metric": "best_test_error",
        **extra,
    }
    return parse_spec(data)


# Per seed 0, 1, 2: best error and ECE of ERM (α 0) and the two mixup rows.
BEST = {0.0: [17.0, 17.6, 17.2], 1.0: [13.2, 13.9, 13.1], 8.0: [17.5, 16.9, 17.4]}
ECE = {0.0: [20.0, 22.0, 21.0], 1.0: [9.0, 8.0, 10.5], 8.0: [25.0, 26.5, 24.0]}


def records() -> list[TrialRecord]:
    return [
        TrialRecord(
            trial_id=f"a{alpha}-s{seed}",
            params={"alpha": alpha, "seed": seed},
            status="finished",
            epochs=3,
            metrics={"best_test_error": BEST[alpha][seed], "test_ece": ECE[alpha][seed]},
        )
        for alpha in BEST
        for seed in range(3)
    ]


def test_a_claim_on_the_studys_metric_matches_a_hand_computation() -> None:
    result = judge(study(), records(), Claim({"alpha": 1.0}, "best_test_error", "lower", 18.8, 11.3, "paper"))
    # By hand: d = 13.2-17.0, 13.9-17.6, 13.1-17.2 = -3.8, -3.7, -4.1; mean -3.8667; sd = 0.20817;
    # half width = 4.3027 × 0.20817 / √3 = 0.51714 -> [-4.3838, -3.3495].
    assert result.difference == pytest.approx(-3.866667, abs=1e-5)
    assert result.ci_low == pytest.approx(-4.383807, abs=1e-4)
    assert result.ci_high == pytest.approx(-3.349527, abs=1e-4)
    assert (result.n, result.n_baseline, result.paired) == (3, 3, True)
    assert result.ours_baseline == pytest.approx(statistics.fmean(BEST[0.0]))
    assert result.ours_row == pytest.approx(statistics.fmean(BEST[1.0]))
    assert result.paper_difference == pytest.approx(11.3 - 18.8)
    assert result.baseline_label == "alpha=0"
    assert result.verdict == REPRODUCES


def test_a_claim_on_another_metric_rebuilds_the_comparison_with_it() -> None:
    spec = study()
    up = judge(spec, records(), Claim({"alpha": 8.0}, "test_ece", "lower"))
    diffs = [r - b for r, b in zip(ECE[8.0], ECE[0.0], strict=True)]  # 5.0, 4.5, 3.0
    half = T2 * statistics.stdev(diffs) / math.sqrt(3)
    assert up.metric == "test_ece"
    assert up.difference == pytest.approx(statistics.fmean(diffs))
    assert up.ci_low == pytest.approx(statistics.fmean(diffs) - half, abs=1e-3)
    assert up.ci_high == pytest.approx(statistics.fmean(diffs) + half, abs=1e-3)
    assert up.verdict == OPPOSITE  # mixup at α 8 is worse calibrated here: the CI lies above 0
    flat = judge(spec, records(), Claim({"alpha": 8.0}, "best_test_error", "lower"))
    assert flat.verdict == UNRESOLVED  # 0.5, -0.7, 0.2: the interval holds 0


def test_a_claim_the_study_cannot_answer_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"no factor-table row has \{'alpha': 2.0\}"):
        judge(study(), records(), Claim({"alpha": 2.0}, "best_test_error", "lower"))
    with pytest.raises(ValueError, match="is the baseline itself"):
        judge(study(), records(), Claim({"alpha": 0.0}, "best_test_error", "lower"))
    with pytest.raises(ValueError, match=r"Claim\.metric must be one of"):
        Claim({"alpha": 1.0}, "accuracy", "lower")


def test_overrides_set_dotted_keys_on_a_copy() -> None:
    data = {"dataset": {"name": "cifar10", "augment": True}, "search": {"seeds": [0]}}
    out = apply_overrides(data, {"dataset.name": "uci:wine", "search.space.alpha": [0.0, 1.0]})
    assert out == {
        "dataset": {"name": "uci:wine", "augment": True},
        "search": {"seeds": [0], "space": {"alpha": [0.0, 1.0]}},
    }
    assert data["dataset"]["name"] == "cifar10"  # the preset's document is untouched
    with pytest.raises(ValueError, match="dotted name"):
        apply_overrides(data, {"dataset..name": 1})
    with pytest.raises(ValueError, match="'name' holds 'cifar10', not a section"):
        apply_overrides(data, {"dataset.name.x": 1})


def test_an_override_the_spec_does_not_know_is_refused_by_name() -> None:
    bad = Experiment("bad", "bad", "smoke", (Claim({"alpha": 1.0}, "test_error", "lower"),), {"training.epoch": 3})
    with pytest.raises(InvalidStudySpec) as raised:
        bad.spec()
    assert any("training.epoch" in field for field, _ in raised.value.errors)


@pytest.mark.parametrize("quick", [False, True])
def test_every_experiment_builds_a_valid_study_with_its_claims_rows(quick: bool) -> None:
    assert experiments(), "the suite has experiments"
    for experiment in experiments():
        spec = experiment.spec(quick)
        assert spec.name == experiment.name + ("-quick" if quick else "")
        axes = {k: v for k, v in spec.search.space.axes().items() if isinstance(v, list)}
        variants = {v.name for v in spec.search.variants or []}
        for claim in experiment.claims:
            for key, value in claim.row.items():
                known = variants if key == "variant" else axes.get(key, [])
                assert value in known, f"{experiment.name}: {claim.title} names {key}={value!r}, not in {known}"


def test_the_label_noise_experiment_is_the_papers_setting() -> None:
    spec = get("table2-label-noise").spec()
    assert (spec.dataset.name, spec.dataset.label_noise, spec.dataset.label_noise_mode) == (
        "fashion_mnist",
        0.4,
        "uniform",
    )
    assert spec.model.name == "lenet_fc"
    assert spec.search.space.alpha == [0.0, 1.0, 8.0, 32.0]
    assert spec.evaluation.ece and spec.evaluation.fgsm_epsilon is not None
    with pytest.raises(KeyError, match=r"unknown experiment 'nope'; known: .*table2-label-noise"):
        get("nope")


def line(name: str, when: str, difference: float, quick: bool = False) -> dict[str, Any]:
    claim = {
        "label": "α=1 · best error",
        "row": {"alpha": 1.0},
        "metric": "best_test_error",
        "direction": "lower",
        "source": "Zhang et al. 2018, Table 2",
        "paper_baseline": 18.8,
        "paper_row": None,
        "ours_baseline": 17.27,
        "ours_row": 17.27 + difference,
        "difference": difference,
        "ci_low": difference - 0.5,
        "ci_high": difference + 0.5,
        "n": 3,
        "n_baseline": 3,
        "paired": True,
        "verdict": verdict("lower", difference - 0.5, difference + 0.5, difference),
    }
    return {
        "experiment": name,
        "title": f"{name} title",
        "quick": quick,
        "date": when,
        "machine": {"cpu_model": "Test CPU", "cores": 2, "torch": "2.x", "load_before": [1.0, 1.0, 1.0]},
        "wall_s": 600.0,
        "study_id": f"{name}-{when}",
        "status": "succeeded",
        "settings": {"model": "lenet_fc", "train_subset": 4000, "epochs": 24, "seeds": [0, 1, 2], "seed_data": True},
        "claims": [claim],
    }


def test_rendering_takes_each_experiments_latest_full_run_and_keeps_hand_written_text(tmp_path: Path) -> None:
    lines = [
        line("table2-label-noise", "2026-01-01T00:00:00Z", 1.0),
        line("table2-label-noise", "2026-01-02T00:00:00Z", -3.86),
        line("table2-label-noise", "2026-01-03T00:00:00Z", 9.0, quick=True),
        {**line("table2-label-noise", "2026-01-04T00:00:00Z", 7.0), "status": "cancelled"},
        line("elsewhere", "2026-01-02T00:00:00Z", 2.0),
    ]
    block = render(lines, experiments())
    assert block.startswith(BEGIN) and block.endswith(END)
    assert block.index("table2-label-noise") < block.index("elsewhere")  # the suite's order, unknown ones after
    assert "| α=1 · best error | lower | 18.8 → – | 17.27 → 13.41 | −3.86 [−4.36, −3.36] | 3 paired | yes |" in block
    opposite = "| α=1 · best error | lower | 18.8 → – | 17.27 → 19.27 | +2.00 [+1.50, +2.50] | 3 paired |"
    assert opposite + " **no: the opposite** |" in block
    for left_out in ("2026-01-01", "2026-01-03", "2026-01-04"):  # an older, a quick and a cancelled run
        assert left_out not in block
    assert "Test CPU (2 cores, torch 2.x)" in block and "wall time 10.0 min" in block

    doc = tmp_path / "REPRODUCTION.md"
    write_document(doc, block)
    text = doc.read_text()
    doc.write_text("# mine\n\nhand-written intro\n" + text[text.index(BEGIN) :] + "\n## Discussion\n\nkept\n")
    write_document(doc, render(lines[:1], experiments()))
    again = doc.read_text()
    assert again.startswith("# mine\n\nhand-written intro\n") and again.endswith("\n## Discussion\n\nkept\n")
    assert "+1.00 [+0.50, +1.50]" in again and "−3.86" not in again  # only the block changed


def test_the_command_lists_and_renders(tmp_path: Path) -> None:
    results, doc = tmp_path / "r.jsonl", tmp_path / "R.md"
    results.write_text("\n".join(json.dumps(x) for x in [line("table2-label-noise", "2026-01-02T00:00:00Z", -3.86)]))
    listed = CliRunner().invoke(app, ["reproduce", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "table2-label-noise: Table 2" in listed.output and "α=32 · last-epoch error" in listed.output
    rendered = CliRunner().invoke(service_app, ["reproduce", "--render", "--results", str(results), "--doc", str(doc)])
    assert rendered.exit_code == 0, rendered.output
    assert "−3.86 [−4.36, −3.36]" in doc.read_text()
    unknown = CliRunner().invoke(app, ["reproduce", "nope"])
    assert unknown.exit_code == 2 and "unknown experiment 'nope'" in unknown.output
