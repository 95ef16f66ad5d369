"""The plots (studies.plots): SVGs for the pages and the report's PNG, from reports built of hand-made trials."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib.image
import pytest

from studies.curves import TrialCurve
from studies.plots import (
    alpha_curve_figure,
    alpha_curve_svg,
    compare_alpha_figure,
    compare_alpha_svg,
    drawing,
    learning_curves_figure,
    learning_curves_svg,
    render_plot_png,
    report_figure,
    series_gid,
)
from studies.records import TrialRecord, TrialStatus
from studies.report import StudyReport, build_report
from tests.studies.test_report import make_spec, trial

LONG_NAME = "fashion-mnist-label-noise-ablation-of-every-mixing-layer-at-three-weight-decays-and-six-alphas"


def ids(svg: str, prefix: str) -> list[str]:
    return re.findall(rf'id="({prefix}-[^"]*)"', svg)


def asha_trials() -> list[TrialRecord]:
    """An ASHA study's shape: only α = 1 ran to the end; the trials at 0.2 and 4 were stopped after 2 epochs."""
    trials = []
    for layer in ("input", "layer1"):
        for alpha in (0.2, 1.0, 4.0):
            for seed in (0, 1):
                status: TrialStatus = "finished" if alpha == 1.0 else "stopped"
                value = 5.0 + seed + (0.0 if status == "finished" else 3.0)  # both layers: the same values
                trials.append(
                    trial(
                        f"{layer}-{alpha}-{seed}",
                        value,
                        status,
                        epochs=10 if status == "finished" else 2,
                        layer=layer,
                        alpha=alpha,
                        weight_decay=1e-4,
                        seed=seed,
                    )
                )
    return trials


@pytest.fixture(scope="module")
def asha_report() -> StudyReport:
    spec = make_spec({"space": {"alpha": [0.2, 1.0, 4.0], "layer": ["input", "layer1"]}, "seeds": [0, 1]}, name="asha")
    return build_report(spec, asha_trials())


@pytest.fixture(scope="module")
def long_report() -> StudyReport:
    space = {"alpha": [0.0, 0.2, 1.0], "layer": ["input", "layer1", "feature_map"], "weight_decay": [1e-4, 5e-4]}
    spec = make_spec({"space": space, "seeds": [0, 1]}, name=LONG_NAME)
    trials = [
        trial(f"{layer}-{a}-{wd}-{s}", 4.0 + a + s, layer=layer, alpha=a, weight_decay=wd, seed=s)
        for layer in ("input", "layer1", "feature_map")
        for a in (0.0, 0.2, 1.0)
        for wd in (1e-4, 5e-4)
        for s in (0, 1)
    ]
    return build_report(spec, trials)


def test_the_report_keeps_stopped_trials_of_the_alpha_curve_at_their_last_value(asha_report: StudyReport) -> None:
    # The means use finished trials only (α = 1); the stopped ones are the report's alpha_partial.
    assert sorted({p.alpha for p in asha_report.alpha_curve}) == [1.0]
    partial = asha_report.alpha_partial
    assert len(partial) == 2 * 2 * 2
    assert sorted({p.alpha for p in partial}) == [0.2, 4.0]
    first = partial[0]
    assert (first.series, first.alpha, first.value, first.status, first.epochs) == ("input", 0.2, 8.0, "stopped", 2)
    assert StudyReport.model_validate(asha_report.model_dump(mode="json")) == asha_report


def test_alpha_svg_shows_every_series_and_the_stopped_trials(asha_report: StudyReport) -> None:
    svg = alpha_curve_svg(asha_report)
    assert svg is not None
    assert ids(svg, "series") == ["series-input_wd_1e-4", "series-layer1_wd_1e-4"]
    # each series' stopped trials: one hollow-marker group per series and panel
    assert ids(svg, "stopped") == ["stopped-input_wd_1e-4", "stopped-layer1_wd_1e-4"]
    stopped = re.search(r'<g id="stopped-input_wd_1e-4">(.*?)</g>', svg, re.S)
    assert stopped is not None and stopped.group(1).count("<use ") == 4  # 2 α × 2 seeds
    assert "stopped early (last value)" in svg  # the legend entry, as the <title> matplotlib gives no glyph


def test_alpha_svg_is_inline_html_that_scales_and_renders_identically(asha_report: StudyReport) -> None:
    svg = alpha_curve_svg(asha_report)
    assert svg is not None
    assert svg.startswith("<svg ") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") and root.get("width") == "100%" and root.get("height") is None
    assert root.get("id") == "plot-alpha"  # a page scopes each plot's series ids under its own
    assert root[0].tag == "{http://www.w3.org/2000/svg}title" and root[0].text == "asha: median_test_error vs α"
    assert alpha_curve_svg(asha_report) == svg  # deterministic ids (svg.hashsalt), no date


def test_series_are_nudged_apart_so_none_hides_another(asha_report: StudyReport) -> None:
    # input and layer1 have the same values at α = 1: drawn at the same place, one would hide the other.
    with drawing():
        fig = alpha_curve_figure(asha_report)
        assert fig is not None
        fig.canvas.draw()
        (ax,) = fig.axes
        centres = [line.get_transform().transform(line.get_xydata())[0] for line in ax.lines if line.get_gid() in (
            "series-input_wd_1e-4", "series-layer1_wd_1e-4")]  # fmt: skip
    assert len(centres) == 2
    (x0, y0), (x1, y1) = centres
    assert y0 == pytest.approx(y1)
    assert abs(x1 - x0) >= 5.0 * fig.dpi / 72 * 0.99  # 5 points apart
    assert [line.get_marker() for line in ax.lines if (line.get_gid() or "").startswith("series-")] == ["o", "s"]


def clipped(fig: Any) -> list[str]:
    """What of a drawn figure reaches past its edges: "everything" (matplotlib's tight box of all that is
    drawn) and, by name, the title, the caption and the legends' texts whose box is not inside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox

    def inside(extent: Any) -> bool:
        return bool(
            extent.x0 >= box.x0 - 0.5
            and extent.x1 <= box.x1 + 0.5
            and box.y0 - 0.5 <= extent.y0 <= extent.y1 <= box.y1 + 0.5
        )

    texts = [fig._suptitle, fig._supxlabel, *(t for legend in fig.legends for t in legend.get_texts())]
    out = [t.get_text() for t in texts if t is not None and not inside(t.get_window_extent(renderer))]
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    tight_ok = tight.x0 >= box.x0 - 0.5 and tight.x1 <= box.x1 + 0.5 and tight.y0 >= -0.5 and tight.y1 <= box.y1 + 0.5
    return out if tight_ok else [*out, "everything"]


def test_no_title_or_label_is_clipped_even_with_a_long_name(
    long_report: StudyReport, asha_report: StudyReport, many_curves: list[TrialCurve]
) -> None:
    with drawing():
        for make in (alpha_curve_figure, report_figure):
            fig = make(long_report)
            assert fig is not None
            title = fig.get_suptitle()
            assert "\n" in title  # wrapped (at spaces or hyphens), all of it kept
            assert title.replace("\n", "").replace(" ", "") == f"{LONG_NAME}:median_test_errorvsα"
            assert clipped(fig) == []
        compared = compare_alpha_figure([(LONG_NAME, long_report), ("asha", asha_report)])
        assert compared is not None and clipped(compared) == []
        curves_fig = learning_curves_figure(many_curves, title=f"{LONG_NAME}: test_error per epoch of every trial")
        assert curves_fig is not None and clipped(curves_fig) == []


def test_the_png_is_larger_and_its_title_fits(long_report: StudyReport) -> None:
    png = render_plot_png(long_report)
    assert png is not None
    height, width = matplotlib.image.imread(io.BytesIO(png)).shape[:2]
    assert width >= 1200 and height >= 650  # was 480 × 400 per panel (960 × 400 here)


def curves(count: int, epochs: int = 12) -> list[TrialCurve]:
    """``count`` trials over 3 layers and 4 α; every 5th stopped at epoch 3, every 7th failed at epoch 5."""
    made = []
    for i in range(count):
        status: TrialStatus = "stopped" if i % 5 == 4 else "failed" if i % 7 == 6 else "finished"
        last = {"stopped": 3, "failed": 5}.get(status, epochs)
        params = {"layer": ("input", "layer1", "feature_map")[i % 3], "alpha": (0.1, 0.2, 0.4, 1.0)[i % 4], "seed": i}
        points = [(e, 40.0 * 0.8**e + i % 9) for e in range(1, last + 1)]
        made.append(TrialCurve(f"t{i:03d}", f"run{i}", f"trial {i}", params, status, points))
    return made


@pytest.fixture(scope="module")
def many_curves() -> list[TrialCurve]:
    return curves(120)


def test_learning_curves_have_one_series_per_trial_and_mark_where_trials_ended(many_curves: list[TrialCurve]) -> None:
    svg = learning_curves_svg(many_curves, title="t: test_error per epoch")
    assert svg is not None
    assert len(ids(svg, "series")) == 120
    assert ET.fromstring(svg).get("id") == "plot-learning-curves"
    assert ids(svg, "series")[:2] == ["series-t000", "series-t001"]
    stopped = [c.trial_id for c in many_curves if c.status == "stopped"]
    failed = [c.trial_id for c in many_curves if c.status == "failed"]
    assert ids(svg, "stopped") == [f"stopped-{t}" for t in stopped]
    assert ids(svg, "failed") == [f"failed-{t}" for t in failed]
    assert learning_curves_svg(many_curves, title="t: test_error per epoch") == svg


def test_the_learning_curve_legend_stays_short_at_120_trials(many_curves: list[TrialCurve]) -> None:
    with drawing():
        fig = learning_curves_figure(many_curves)
        assert fig is not None
        (legend,) = fig.legends
        labels = [t.get_text() for t in legend.get_texts()]
        assert clipped(fig) == []
    # the colour key (the layers) and the end markers, not 120 entries
    assert labels == [
        "layer=input",
        "layer=layer1",
        "layer=feature_map",
        "stopped early (last epoch)",
        "failed (last epoch)",
    ]


def test_one_trial_and_none(many_curves: list[TrialCurve]) -> None:
    svg = learning_curves_svg(many_curves[:1])
    assert svg is not None and len(ids(svg, "series")) == 1
    assert learning_curves_svg([]) is None
    assert learning_curves_svg([TrialCurve("t", "r", "t", {}, "running", [])]) is None


def test_compare_draws_studies_on_shared_axes(asha_report: StudyReport, long_report: StudyReport) -> None:
    pair = [("asha", asha_report), ("long", long_report)]
    svg = compare_alpha_svg(pair)
    assert svg is not None
    # asha: 2 series in wd 1e-4; long: 3 series in each of wd 1e-4 and 5e-4
    assert len(ids(svg, "series")) == 2 + 3 * 2
    assert ET.fromstring(svg).get("id") == "plot-compare"
    assert "series-asha_input_wd_1e-4" in ids(svg, "series") and "series-long_input_wd_1e-4" in ids(svg, "series")
    with drawing():
        fig = compare_alpha_figure(pair)
        assert fig is not None
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title() for ax in panels] == ["wd 1e-4", "wd 5e-4"]
        colours = {line.get_color() for line in panels[0].lines if (line.get_gid() or "").startswith("series-")}
        fig.canvas.draw()
        for ax in panels:  # the outermost nudged series at the highest α keeps its marker inside the frame
            for line in ax.lines:
                xs = line.get_transform().transform(line.get_xydata())[:, 0]
                radius = line.get_markersize() / 2 * fig.dpi / 72
                assert ax.bbox.x0 + radius <= xs.min() and xs.max() <= ax.bbox.x1 - radius, line.get_gid()
    assert colours == {"C0", "C1"}  # one colour per study
    assert compare_alpha_svg([("none", build_report(make_spec({"space": {"layer": ["input"]}}), []))]) is None


def test_series_gid_is_a_safe_id() -> None:
    assert series_gid("layer=input, alpha=0.2") == "series-layer_input_alpha_0.2"
    assert series_gid("mixup AC + RP") == "series-mixup_AC_RP"


def test_plots_drawn_from_several_threads_at_once_are_the_same(
    asha_report: StudyReport, many_curves: list[TrialCurve]
) -> None:
    # A web server draws pages' plots on its worker threads; matplotlib's fonts and rcParams are shared.
    expected = (alpha_curve_svg(asha_report), learning_curves_svg(many_curves[:20]), render_plot_png(asha_report))

    def draw(_: int) -> tuple[str | None, str | None, bytes | None]:
        return alpha_curve_svg(asha_report), learning_curves_svg(many_curves[:20]), render_plot_png(asha_report)

    with ThreadPoolExecutor(max_workers=4) as pool:
        drawn = list(pool.map(draw, range(4)))
    assert all(result == expected for result in drawn)
