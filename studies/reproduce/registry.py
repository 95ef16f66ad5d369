"""Every experiment of the suite: the ``EXPERIMENTS`` list of each module of this package that has one.

A table's experiments live in their own module (``label_noise.py`` for the paper's Table 2, ``tabular.py``,
``ablation.py``, ...), each defining ``EXPERIMENTS: list[Experiment]``; a new module is found without being
listed here, so the tables can be written side by side.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from studies.reproduce.experiments import Experiment


@cache
def experiments() -> tuple[Experiment, ...]:
    """Every experiment, by table (the name's first part: ``table2-…`` before ``table4-…``) then in each
    module's order (names are unique)."""
    import studies.reproduce as package

    found: list[Experiment] = []
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        listed = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "EXPERIMENTS", None)
        if listed is not None:
            found.extend(listed)
    found.sort(key=lambda e: e.name.split("-")[0])  # stable: a module's own order stays within a table
    names = [e.name for e in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"experiment names must be unique, got {duplicates} more than once")
    return tuple(found)


def get(name: str) -> Experiment:
    """The experiment called ``name`` (``KeyError`` listing the known ones)."""
    for experiment in experiments():
        if experiment.name == name:
            return experiment
    known = ", ".join(e.name for e in experiments())
    raise KeyError(f"unknown experiment {name!r}; known: {known}")
