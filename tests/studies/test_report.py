"""The study report: Table 5 cells, leaderboard, failures, α curve, Markdown and PNG, from hand-made trials."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from studies.records import TrialRecord, TrialStatus, settled
from studies.report import StudyReport, build_report, render_markdown, render_plot_png
from studies.report_render import report_figure, weight_decay_label
from studies.spec import StudySpec

EPOCHS = 10
METRIC = "median_test_error"


def make_spec(search: dict[str, Any], **extra: Any) -> StudySpec:
    return StudySpec.model_validate(
        {
            "name": "report-test",
            "dataset": {"name": "synthetic"},
            "model": {"name": "mlp"},
            "training": {"epochs": EPOCHS, "device": "cpu"},
            "search": search,
            **extra,
        }
    )


def trial(
    trial_id: str,
    value: float | None,
    status: TrialStatus = "finished",
    epochs: int = EPOCHS,
    error: str | None = None,
    **params: Any,
) -> TrialRecord:
    metrics = {} if value is None else {METRIC: value, "test_error": value + 0.1}
    return TrialRecord(trial_id=trial_id, params=params, status=status, epochs=epochs, metrics=metrics, error=error)


@pytest.fixture(scope="module")
def layer_spec() -> StudySpec:
    # Declared out of order, so the table's order must come from the report, not the spec.
    space = {"layer": ["feature_map", "layer1", "input"], "weight_decay": [5e-4, 1e-4]}
    return make_spec({"space": space, "seeds": [0, 1, 2]})


# (layer, weight decay) → one (value, status) per seed 0, 1, 2; None = no metric reported.
LAYER_TRIALS: dict[tuple[str, float], list[tuple[float | None, TrialStatus]]] = {
    ("input", 1e-4): [(4.0, "finished"), (4.5, "finished"), (9.0, "stopped")],
    ("input", 5e-4): [(4.8, "finished"), (4.6, "finished"), (4.7, "finished")],
    ("layer1", 1e-4): [(4.0, "finished"), (5.0, "finished"), (None, "failed")],
    ("layer1", 5e-4): [(4.5, "finished"), (4.5, "finished"), (4.2, "finished")],
    ("feature_map", 1e-4): [(5.4, "finished"), (None, "finished"), (7.0, "running")],
    ("feature_map", 5e-4): [(5.1, "finished"), (5.2, "finished"), (5.3, "finished")],
}


@pytest.fixture(scope="module")
def layer_trials() -> list[TrialRecord]:
    trials = []
    for (layer, wd), runs in LAYER_TRIALS.items():
        for seed, (value, status) in enumerate(runs):
            trials.append(
                trial(
                    f"{layer}-{wd:g}-s{seed}",
                    value,
                    status,
                    epochs=3 if status in ("running", "stopped") else EPOCHS,
                    error="RuntimeError: CUDA out of memory" if status == "failed" else None,
                    layer=layer,
                    weight_decay=wd,
                    seed=seed,
                )
            )
    return trials


@pytest.fixture(scope="module")
def layer_report(layer_spec: StudySpec, layer_trials: list[TrialRecord]) -> StudyReport:
    return build_report(layer_spec, layer_trials, study_id="s-1")


def test_cells_are_mean_and_sample_std_over_finished_trials(layer_report: StudyReport) -> None:
    table = layer_report.factor_table
    assert table is not None
    assert table.factors == ["layer"]
    assert [c.label for c in table.columns] == ["wd 1e-4", "wd 5e-4"]
    assert [c.weight_decay for c in table.columns] == [1e-4, 5e-4]
    # input < layer1 < feature_map: up the network, whatever order the spec declared
    assert [r.label for r in table.rows] == ["input", "layer1", "feature_map"]
    cells = {(r.label, c.label): cell for r in table.rows for c, cell in zip(table.columns, r.cells, strict=True)}

    # the stopped trial (9.0) is counted beside the cell, not averaged in (mean would be 5.83)
    c = cells["input", "wd 1e-4"]
    assert (c.mean, c.std, c.n, c.stopped, c.failed) == (
        pytest.approx(4.25),
        pytest.approx(0.353553, abs=1e-6),
        2,
        1,
        0,
    )
    c = cells["layer1", "wd 1e-4"]
    assert (c.mean, c.std, c.n, c.stopped, c.failed) == (pytest.approx(4.5), pytest.approx(0.707107, abs=1e-6), 2, 0, 1)
    c = cells["layer1", "wd 5e-4"]
    assert (c.mean, c.std, c.n) == (pytest.approx(4.4), pytest.approx(math.sqrt(0.03), abs=1e-9), 3)
    # one finished value: std 0.0 (not NaN), n 1; the running trial's 7.0 and the metric-less trial are left out
    c = cells["feature_map", "wd 1e-4"]
    assert (c.mean, c.std, c.n, c.running, c.missing) == (5.4, 0.0, 1, 1, 1)
    assert cells["feature_map", "wd 5e-4"].mean == pytest.approx(5.2)


def test_best_row_per_column_follows_the_mode(layer_spec: StudySpec, layer_trials: list[TrialRecord]) -> None:
    table = build_report(layer_spec, layer_trials).factor_table
    assert table is not None
    assert [c.best_row for c in table.columns] == ["input", "layer1"]  # 4.25 and 4.40
    flipped = build_report(layer_spec.model_copy(update={"mode": "max"}), layer_trials).factor_table
    assert flipped is not None
    assert [c.best_row for c in flipped.columns] == ["feature_map", "feature_map"]  # 5.40 and 5.20


def test_counts_and_a_running_study_is_not_complete(layer_report: StudyReport) -> None:
    assert layer_report.counts == {
        "pending": 0,
        "running": 1,
        "finished": 15,
        "stopped": 1,
        "failed": 1,
        "cancelled": 0,
        "total": 18,
    }
    assert layer_report.complete is False
    assert (layer_report.study_id, layer_report.metric, layer_report.mode) == ("s-1", METRIC, "min")


def test_leaderboard_is_best_first_for_min_and_for_max(
    layer_spec: StudySpec, layer_trials: list[TrialRecord], layer_report: StudyReport
) -> None:
    board = layer_report.leaderboard
    # every trial with the metric, whatever its status: 18 less the failed one and the one without a value
    assert len(board) == 16
    assert [r.rank for r in board] == list(range(1, 17))
    # the 4.0 tie is broken by trial id
    assert [(r.trial_id, r.value) for r in board[:3]] == [
        ("input-0.0001-s0", 4.0),
        ("layer1-0.0001-s0", 4.0),
        ("layer1-0.0005-s2", 4.2),
    ]
    assert layer_report.best == board[0]
    assert board[0].test_error == pytest.approx(4.1)
    assert board[0].best_test_error is None
    assert board[0].params == {"layer": "input", "weight_decay": 1e-4, "seed": 0}

    high = build_report(layer_spec.model_copy(update={"mode": "max"}), layer_trials).leaderboard
    assert [(r.trial_id, r.value, r.status) for r in high[:3]] == [
        ("input-0.0001-s2", 9.0, "stopped"),
        ("feature_map-0.0001-s2", 7.0, "running"),
        ("feature_map-0.0001-s0", 5.4, "finished"),
    ]
    assert high[1].epochs == 3


def test_failures_and_first_error(layer_report: StudyReport) -> None:
    assert [(f.trial_id, f.error) for f in layer_report.failures] == [
        ("layer1-0.0001-s2", "RuntimeError: CUDA out of memory")
    ]
    assert layer_report.first_error == "RuntimeError: CUDA out of memory"


def test_a_study_whose_every_trial_failed_shows_the_first_error(layer_spec: StudySpec) -> None:
    trials = [
        trial(
            f"t{i}",
            None,
            "failed",
            epochs=0,
            error=f"ValueError: bad {i}\n  at line {i}",
            layer="input",
            weight_decay=1e-4,
            seed=i,
        )
        for i in range(3)
    ]
    report = build_report(layer_spec, trials)
    assert report.first_error == "ValueError: bad 0\n  at line 0"
    assert (report.leaderboard, report.best, report.complete) == ([], None, True)
    assert report.factor_table is not None
    cell = report.factor_table.rows[0].cells[0]
    assert (cell.mean, cell.std, cell.n, cell.failed) == (None, None, 0, 3)
    text = render_markdown(report)
    assert "3 trials: 3 failed" in text
    assert "```\nValueError: bad 0\n  at line 0\n```" in text


def test_empty_study(layer_spec: StudySpec) -> None:
    report = build_report(layer_spec, [])
    assert report.counts["total"] == 0
    assert (report.complete, report.leaderboard, report.best, report.factor_table, report.first_error) == (
        False,
        [],
        None,
        None,
        None,
    )
    assert "0 trials" in render_markdown(report)
    assert render_plot_png(report) is None


def test_an_ended_study_says_how_it_ended_not_in_progress(
    layer_spec: StudySpec, layer_trials: list[TrialRecord]
) -> None:
    queued_then_cancelled = render_markdown(build_report(layer_spec, [], "s-0", study_status="cancelled"))
    assert "0 trials (cancelled)." in queued_then_cancelled
    assert "in progress" not in queued_then_cancelled
    report = build_report(layer_spec, settled(layer_trials), "s-1", study_status="cancelled")
    assert (report.study_status, report.counts["running"], report.counts["cancelled"]) == ("cancelled", 0, 1)
    text = render_markdown(report)
    assert "18 trials: 15 finished, 1 stopped early, 1 failed, 1 cancelled (cancelled)." in text
    assert "| feature_map | 5.40 (1) · 1 cancelled, 1 no metric | 5.20 ± 0.10 (3) |" in text
    assert "(in progress)" in render_markdown(build_report(layer_spec, layer_trials, "s-1", study_status="running"))


def test_markdown_bolds_the_best_cell_and_counts_the_trials(layer_report: StudyReport) -> None:
    text = render_markdown(layer_report)
    assert text.startswith("# Study report: report-test\n")
    assert "18 trials: 15 finished, 1 stopped early, 1 failed, 1 running" in text
    assert "| layer | wd 1e-4 | wd 5e-4 |" in text
    assert "| input | **4.25 ± 0.35 (2)** · 1 stopped | 4.70 ± 0.10 (3) |" in text
    assert "| layer1 | 4.50 ± 0.71 (2) · 1 failed | **4.40 ± 0.17 (3)** |" in text
    # one trial has no spread to show: no "± 0.00"
    assert "| feature_map | 5.40 (1) · 1 running, 1 no metric | 5.20 ± 0.10 (3) |" in text
    assert "## Leaderboard (top 10 of 16)" in text
    board = text.split("## Leaderboard")[1].split("## Failures")[0]
    assert board.count("\n| ") == 11  # header + 10 rows
    assert (
        "| 1 | `input-0.0001-s0` | layer=input, weight_decay=0.0001, seed=0 | finished | 10 | 4.00 | 4.10 | – |" in text
    )
    assert "CUDA out of memory" in text.split("## Failures (1)")[1]


def test_the_plot_needs_a_varied_alpha(layer_report: StudyReport) -> None:
    assert layer_report.alpha_curve == []
    assert render_plot_png(layer_report) is None


@pytest.fixture(scope="module")
def grid_spec() -> StudySpec:
    space = {"alpha": [0.2, 1.0], "layer": ["input", "layer1", "feature_map"], "weight_decay": [1e-4, 5e-4]}
    return make_spec({"space": space, "seeds": [0, 1]})


def grid_value(layer: str, alpha: float, wd: float, seed: int) -> float:
    return {"input": 4.0, "layer1": 4.5, "feature_map": 5.0}[layer] + alpha + 1000 * wd + seed


@pytest.fixture(scope="module")
def grid_report(grid_spec: StudySpec) -> StudyReport:
    trials = [
        trial(
            f"{layer}-{alpha}-{wd}-{seed}",
            grid_value(layer, alpha, wd, seed),
            layer=layer,
            alpha=alpha,
            weight_decay=wd,
            seed=seed,
        )
        for layer in ("feature_map", "layer1", "input")
        for alpha in (1.0, 0.2)
        for wd in (5e-4, 1e-4)
        for seed in (0, 1)
    ]
    return build_report(grid_spec, trials)


def test_several_varied_factors_label_the_rows(grid_report: StudyReport) -> None:
    table = grid_report.factor_table
    assert table is not None
    assert table.factors == ["layer", "alpha"]
    assert [r.label for r in table.rows] == [
        "layer=input, alpha=0.2",
        "layer=input, alpha=1",
        "layer=layer1, alpha=0.2",
        "layer=layer1, alpha=1",
        "layer=feature_map, alpha=0.2",
        "layer=feature_map, alpha=1",
    ]
    first = table.rows[0]
    assert first.factors == {"layer": "input", "alpha": 0.2}
    # seeds 0 and 1 differ by exactly 1.0
    assert [(c.mean, c.std, c.n) for c in first.cells] == [
        (pytest.approx(4.0 + 0.2 + 0.1 + 0.5), pytest.approx(math.sqrt(0.5)), 2),
        (pytest.approx(4.0 + 0.2 + 0.5 + 0.5), pytest.approx(math.sqrt(0.5)), 2),
    ]
    assert [c.best_row for c in table.columns] == ["layer=input, alpha=0.2"] * 2
    assert grid_report.complete is True


def test_alpha_curve_is_mean_per_series_weight_decay_and_alpha(grid_report: StudyReport) -> None:
    curve = grid_report.alpha_curve
    assert len(curve) == 3 * 2 * 2
    assert [(p.series, p.weight_decay, p.alpha) for p in curve[:4]] == [
        ("input", 1e-4, 0.2),
        ("input", 1e-4, 1.0),
        ("input", 5e-4, 0.2),
        ("input", 5e-4, 1.0),
    ]
    assert [p.series for p in curve[::4]] == ["input", "layer1", "feature_map"]
    point = next(p for p in curve if (p.series, p.weight_decay, p.alpha) == ("layer1", 5e-4, 1.0))
    assert (point.mean, point.std, point.n) == (pytest.approx(4.5 + 1.0 + 0.5 + 0.5), pytest.approx(0.707107, 1e-6), 2)


def test_plot_is_a_readable_png(grid_report: StudyReport) -> None:
    png = render_plot_png(grid_report)
    assert png is not None
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = matplotlib.image.imread(io.BytesIO(png))
    height, width = image.shape[:2]
    assert width > height > 100  # two panels side by side
    assert image.std() > 0.01  # something was drawn


def test_plot_draws_no_error_bar_for_a_single_trial(grid_report: StudyReport) -> None:
    # The layer1 points at α = 1.0 come from one trial: a marker, no "± 0"; the others keep their bars.
    single = [
        p.model_copy(update={"n": 1, "std": 0.0}) if (p.series, p.alpha) == ("layer1", 1.0) else p
        for p in grid_report.alpha_curve
    ]
    fig = report_figure(grid_report.model_copy(update={"alpha_curve": single}))
    assert fig is not None
    bars: dict[tuple[str, float], int] = {}
    for ax in fig.axes:
        for container in ax.containers:
            line, _caps, (vertical,) = container.lines
            for x, segment in zip(line.get_xdata(), vertical.get_segments(), strict=True):
                key = (container.get_label(), float(x))
                bars[key] = bars.get(key, 0) + (len(segment) > 0 and bool(np.isfinite(segment).all()))
    assert bars[("layer1", 1.0)] == 0
    assert all(count == len(fig.axes) for key, count in bars.items() if key != ("layer1", 1.0)), bars


@pytest.fixture(scope="module")
def variant_spec() -> StudySpec:
    # The paper's rows; variants set alpha and layer, so those cannot also be search axes.
    variants = [
        {"name": "ERM", "alpha": 0.0},
        {"name": "mixup AC + RP", "alpha": 1.0},
        {"name": "Layer 1", "layer": "layer1"},
    ]
    return make_spec({"variants": variants, "space": {"weight_decay": [1e-4, 5e-4]}})


def test_variants_are_rows_in_declared_order(variant_spec: StudySpec) -> None:
    values = {"ERM": (5.53, 5.18), "mixup AC + RP": (4.24, 4.68), "Layer 1": (4.44, 4.51)}
    trials = [
        trial(f"{name}-{wd}", pair[i], variant=name, weight_decay=wd, seed=0)
        for name, pair in reversed(values.items())
        for i, wd in enumerate((1e-4, 5e-4))
    ]
    report = build_report(variant_spec, trials)
    table = report.factor_table
    assert table is not None
    assert table.factors == ["variant"]
    assert [r.label for r in table.rows] == ["ERM", "mixup AC + RP", "Layer 1"]
    assert [[c.mean for c in r.cells] for r in table.rows] == [list(v) for v in values.values()]
    # the paper's finding: input mixing best at wd 1e-4, Layer 1 at 5e-4
    assert [c.best_row for c in table.columns] == ["mixup AC + RP", "Layer 1"]
    assert report.alpha_curve == []
    text = render_markdown(report)
    assert "| method | wd 1e-4 | wd 5e-4 |" in text
    assert "| mixup AC + RP | **4.24 (1)** | 4.68 (1) |" in text
    assert "± 0.00" not in text


def test_an_unsearched_weight_decay_is_one_column_from_the_spec() -> None:
    spec = make_spec({"space": {"layer": ["input", "layer1"]}}, training={"epochs": EPOCHS, "weight_decay": 5e-4})
    trials = [trial("a", 4.0, layer="input", seed=0), trial("b", 6.0, layer="input", seed=1)]
    table = build_report(spec, trials).factor_table
    assert table is not None
    assert [(c.label, c.weight_decay) for c in table.columns] == [("wd 5e-4", 5e-4)]
    assert [(r.label, r.cells[0].mean, r.cells[0].n) for r in table.rows] == [("input", 5.0, 2)]


def test_numbers_given_as_strings_group_with_numbers(layer_spec: StudySpec) -> None:
    # MLflow hands params back as strings; "0.0001" must land in the 1e-4 column
    trials = [
        trial("a", 4.0, layer="input", weight_decay=1e-4, seed=0),
        trial("b", 6.0, layer="input", weight_decay="0.0001", seed=1),
    ]
    table = build_report(layer_spec, trials).factor_table
    assert table is not None
    assert [c.label for c in table.columns] == ["wd 1e-4"]
    assert (table.rows[0].cells[0].mean, table.rows[0].cells[0].n) == (5.0, 2)


def test_json_round_trip(layer_report: StudyReport, grid_report: StudyReport, layer_spec: StudySpec) -> None:
    for report in (layer_report, grid_report):
        assert StudyReport.model_validate(report.model_dump(mode="json")) == report
    # numpy scalars from Ray become plain numbers
    numpy_params = build_report(layer_spec, [trial("a", 4.0, layer="input", weight_decay=1e-4, seed=np.int64(3))])
    assert numpy_params.model_dump(mode="json")["leaderboard"][0]["params"]["seed"] == 3
    assert "factor_table" in StudyReport.model_json_schema()["properties"]


@pytest.mark.parametrize(
    ("weight_decay", "label"), [(1e-4, "wd 1e-4"), (5e-4, "wd 5e-4"), (2.5e-4, "wd 2.5e-4"), (0.0, "wd 0")]
)
def test_weight_decay_labels(weight_decay: float, label: str) -> None:
    assert weight_decay_label(weight_decay) == label


def test_a_driver_warms_up_plotting_in_the_background() -> None:
    """In a fresh interpreter: the warm-up thread imports matplotlib's figure and draws without an error."""
    code = (
        "import sys\n"
        "from studies.plots import warm_up_plotting\n"
        "assert 'matplotlib.figure' not in sys.modules\n"
        "from studies.plots import _canvas\n"
        "warm_up_plotting()\n"
        "thread = _canvas._warm_up\n"
        "warm_up_plotting()  # once per process\n"
        "assert _canvas._warm_up is thread\n"
        "thread.join(120)\n"
        "assert not thread.is_alive() and 'matplotlib.figure' in sys.modules\n"
        "print('warm')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "warm", "")
