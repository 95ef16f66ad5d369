"""The reproduction suite: the mixup paper's findings checked by running its experiments as real studies.

An :class:`Experiment` (a bundled preset, overrides, a quick variant, :class:`Claim` s) runs through the
engine like any study (:func:`run_experiment`); each claim gets the difference from the baseline with its
95 % CI and a verdict, in one JSON line per experiment; :func:`render` / :func:`write_document` turn the lines
into docs/REPRODUCTION.md. ``mixup-studies reproduce`` is the command. Experiments live in one module per
table (``label_noise.py``, ...), found by :func:`experiments`.
"""

from __future__ import annotations

from studies.reproduce.claims import VERDICTS, ClaimResult, judge, verdict
from studies.reproduce.experiments import DEFAULT_DOC, DEFAULT_RESULTS, Claim, Experiment, apply_overrides
from studies.reproduce.registry import experiments, get
from studies.reproduce.render import read_lines, render, write_document
from studies.reproduce.runner import run_experiment

__all__ = [
    "DEFAULT_DOC",
    "DEFAULT_RESULTS",
    "VERDICTS",
    "Claim",
    "ClaimResult",
    "Experiment",
    "apply_overrides",
    "experiments",
    "get",
    "judge",
    "read_lines",
    "render",
    "run_experiment",
    "verdict",
    "write_document",
]
