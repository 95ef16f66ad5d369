"""The paper's Table 4 (UCI tabular data) on the sets scikit-learn bundles, and why its iris ERM is so high.

One study per set and preprocessing (``repro_uci``: the paper's MLP, Adam, 10 epochs, batch 16; 20 seeds, each
its own stratified 80/20 split): ERM against α ∈ {0.2, 0.4, 1}, standardised features (the default) and raw
ones (``dataset.standardize: false``). ``table4-uci-iris-1epoch`` trains one epoch only: the level the
paper's iris ERM (21.3 %) corresponds to on our trainer. The preset's header has the setting and the pilots.
"""

from __future__ import annotations

from typing import Any

from studies.reproduce.experiments import Claim, Experiment

_TABLE4 = "Zhang et al. 2018, Table 4 (MLP 2×128, Adam, 10 epochs, batch 16)"
_IRIS = _TABLE4 + ": Iris ERM 21.3 → mixup 17.3 at its best α (the α is not given)"
_NO_NUMBER = _TABLE4 + ": mixup at or below ERM on all six of its sets (this set is not one of them)"
ALPHAS = (0.2, 0.4, 1.0)
SETS = ("iris", "wine", "breast_cancer", "digits")
#: The test suite's run: 2 seeds, 2 epochs (a few seconds); it checks the machinery, not the paper.
QUICK: dict[str, Any] = {"search.seeds": [0, 1], "training.epochs": 2}


def _claims(name: str) -> tuple[Claim, ...]:
    source, paper_erm = (_IRIS, 21.3) if name == "iris" else (_NO_NUMBER, None)
    return tuple(
        Claim({"alpha": a}, "test_error", "lower", paper_erm, None, source, label=f"α={a:g} · test error")
        for a in ALPHAS
    )


def _experiment(name: str, raw: bool) -> Experiment:
    features = "raw features" if raw else "standardised features"
    return Experiment(
        name=f"table4-uci-{name.replace('_', '-')}{'-raw' if raw else ''}",
        title=f"Table 4: UCI {name}, {features} (MLP, 20 resampled 80/20 splits)",
        preset="repro_uci",
        claims=_claims(name),
        overrides={"dataset.name": f"uci:{name}", "dataset.standardize": not raw},
        quick=QUICK,
        finding=FINDINGS.get((name, raw), ""),
    )


#: What came out, per (set, raw): filled in from the full run's JSON lines.
FINDINGS: dict[tuple[str, bool], str] = {}

IRIS_ONE_EPOCH = Experiment(
    name="table4-uci-iris-1epoch",
    title="Table 4, the paper's iris ERM level: the same study trained for 1 epoch (8 Adam steps)",
    preset="repro_uci",
    claims=_claims("iris"),
    overrides={"dataset.name": "uci:iris", "training.epochs": 1},
    quick={"search.seeds": [0, 1]},
    finding="",
)

# Raw features for iris only: the paper's one set among ours, and the question is its ERM level (raw features
# did not bring ours near it; the option is there for the other sets: dataset.standardize).
EXPERIMENTS = [*(_experiment(s, raw=False) for s in SETS), _experiment("iris", raw=True), IRIS_ONE_EPOCH]
