"""The plots of a study: one module for the pages (inline SVG) and the report (PNG), drawn the same way.

- :func:`alpha_curve_svg`: the metric vs α per mixing layer and weight decay (study page).
- :func:`learning_curves_svg`: every trial's metric per epoch (study page; data from
  :func:`studies.curves.trial_curves`).
- :func:`compare_alpha_svg`: several studies' α curves on shared axes (compare page).
- :func:`render_plot_png`: the report's PNG (α curve and the differences from the baseline).

matplotlib (Agg, no pyplot) is imported on the first plot, not with this package. One figure is drawn at a
time in a process (a lock): matplotlib's fonts and rcParams are shared between threads.
"""

from __future__ import annotations

from studies.plots._canvas import SVG_HASH_SALT, drawing, series_gid, to_png, to_svg, warm_up_plotting
from studies.plots.alpha import (
    ALPHA_PLOT_ID,
    COMPARE_PLOT_ID,
    alpha_curve_figure,
    alpha_curve_svg,
    compare_alpha_figure,
    compare_alpha_svg,
)
from studies.plots.learning import LEARNING_PLOT_ID, learning_curves_figure, learning_curves_svg
from studies.plots.report_png import render_plot_png, report_figure

__all__ = [
    "ALPHA_PLOT_ID",
    "COMPARE_PLOT_ID",
    "LEARNING_PLOT_ID",
    "SVG_HASH_SALT",
    "alpha_curve_figure",
    "alpha_curve_svg",
    "compare_alpha_figure",
    "compare_alpha_svg",
    "drawing",
    "learning_curves_figure",
    "learning_curves_svg",
    "render_plot_png",
    "report_figure",
    "series_gid",
    "to_png",
    "to_svg",
    "warm_up_plotting",
]
