"""What a reproduction is: a bundled preset, overrides, a quick variant, and the paper's claims to check.

An :class:`Experiment` names a preset (``studies/presets/<preset>.yaml``, documented in its header), dotted-key
overrides applied to it (``{"dataset.name": "uci:wine"}``), a ``quick`` override set applied on top for the
test suite (seconds), and the :class:`Claim` list: the paper's findings, each a factor-table row compared with
the study's baseline (ERM) on one metric. The suite (:mod:`studies.reproduce.runner`) runs the resulting spec
through the engine like any study and judges every claim with the report's 95 % confidence intervals.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from studies.spec import KNOWN_METRICS, NAME_PATTERN, StudySpec
from studies.specfile import parse_spec, preset_path, read_spec_file

Direction = Literal["lower", "higher"]
#: Suffix of a quick run's study name (and of its spec's name).
QUICK_SUFFIX = "-quick"
#: Where the suite's JSON lines go by default, and the document rendered from them.
DEFAULT_RESULTS = Path("docs/reproduction.jsonl")
DEFAULT_DOC = Path("docs/REPRODUCTION.md")
#: The quick mode's stand-in for Fashion-MNIST: synthetic data of the same shape (28×28 grey, 10 classes),
#: so an experiment's study, rows and claims run in seconds; it checks the machinery, not the paper.
FASHION_MNIST_STAND_IN: dict[str, Any] = {
    "name": "synthetic",
    "synthetic": {"num_train": 128, "num_test": 64, "num_classes": 10, "shape": [1, 28, 28]},
}


@dataclass(frozen=True)
class Claim:
    """One finding of a paper, to check against a study's factor table.

    Attributes:
        row: the factor values of the row the paper reports (``{"alpha": 8.0}``, ``{"variant": "SC+KNN"}``);
            matched like the spec's ``baseline``: keys the study does not vary are ignored.
        metric: the metric compared (``best_test_error``, ``test_error``, ``test_ece``, ...); it need not be the
            study's own: the report is rebuilt with it.
        direction: the paper's direction for the row against the baseline: ``lower`` (the row's metric is
            below the baseline's) or ``higher``.
        paper_baseline: the paper's number for the baseline (ERM), None where the paper gives none.
        paper_row: the paper's number for the row, None where it gives none.
        source: where the paper's numbers and direction come from ("Zhang et al. 2018, Table 2, 50 % noise").
        weight_decay: the factor table's column; None: the study's only column.
        label: how the claim is shown (default: row and metric).
    """

    row: Mapping[str, float | str]
    metric: str
    direction: Direction
    paper_baseline: float | None = None
    paper_row: float | None = None
    source: str = ""
    weight_decay: float | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.metric not in KNOWN_METRICS:
            raise ValueError(f"Claim.metric must be one of {', '.join(KNOWN_METRICS)}, got {self.metric!r}")
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"Claim.direction must be 'lower' or 'higher', got {self.direction!r}")
        if not self.row:
            raise ValueError("Claim.row must name the row's factor values, got an empty mapping")

    @property
    def title(self) -> str:
        """The label, or ``alpha=8 · best_test_error``."""
        if self.label:
            return self.label
        row = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.row.items())
        return f"{row} · {self.metric}"


@dataclass(frozen=True)
class Experiment:
    """A reproduction: a preset, what to change in it, and the claims its study checks.

    Attributes:
        name: the experiment's id (``table2-label-noise``); also the study's name.
        title: one line for the docs ("Table 2: 40 % label noise on Fashion-MNIST").
        preset: a bundled preset's name (``studies/presets/<preset>.yaml``).
        claims: the findings to check.
        overrides: dotted keys over the preset (``{"dataset.name": "uci:wine", "search.seeds": [0, 1]}``).
        quick: dotted keys applied after ``overrides`` for ``--quick`` (the test suite's seconds-long run).
        finding: prose for docs/REPRODUCTION.md: what came out and why, kept with the definition.
    """

    name: str
    title: str
    preset: str
    claims: tuple[Claim, ...]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)
    finding: str = ""

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"Experiment.name must be letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.claims:
            raise ValueError(f"experiment {self.name!r} has no claims: nothing to check")

    def spec_data(self, quick: bool = False) -> dict[str, Any]:
        """The preset's YAML document with the overrides (and quick ones) applied, not validated yet."""
        data = read_spec_file(preset_path(self.preset))
        data = apply_overrides(data, self.overrides)
        if quick:
            data = apply_overrides(data, self.quick)
        data["name"] = self.name + (QUICK_SUFFIX if quick else "")
        return data

    def spec(self, quick: bool = False, max_trials: int | None = None) -> StudySpec:
        """The validated study spec (``InvalidStudySpec`` names what an override broke)."""
        data = self.spec_data(quick)
        return parse_spec(data, max_trials) if max_trials is not None else parse_spec(data)


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted key set (``"search.space.alpha": [0.0, 1.0]``).

    Missing sections are created: the spec's own validation then refuses a key it does not know, naming it.
    """
    out = copy.deepcopy(dict(data))
    for path, value in overrides.items():
        if not _KEY.fullmatch(path):
            raise ValueError(f"an override key is a dotted name like 'dataset.name', got {path!r}")
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {path!r}: {key!r} holds {child!r}, not a section")
            node = child
        node[leaf] = copy.deepcopy(value)
    return out
