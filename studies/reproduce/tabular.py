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


#: What came out, per (set, raw), from the full run's JSON lines (docs/reproduction.jsonl).
FINDINGS: dict[tuple[str, bool], str] = {
    ("iris", False): (
        "**Does not reproduce: mixup is worse on iris.** ERM 5.50 % (mean over 20 splits, sd 4.4), mixup "
        "6.50 / 7.17 / 7.67 % at α 0.2 / 0.4 / 1; α 0.4 and 1 are worse than ERM with intervals that exclude 0. "
        "Our ERM is a quarter of the paper's 21.3 % (why: `table4-uci-iris-1epoch` below). Iris's test set is "
        "30 samples, so one error is 3.3 points: with one fixed split, 5 seeds gave ERM 6.67 ± 0.00 (issue 12) "
        "and could not tell the rows apart; resampling the split per seed and pairing by seed resolves "
        "differences of about 2 points."
    ),
    ("iris", True): (
        "**Does not reproduce, and raw features do not explain the paper's ERM.** Without standardisation "
        "ERM is better still, 2.50 % (20 splits), and mixup further behind: +2.33 [+0.72, +3.94], "
        "+4.00 [+1.82, +6.18] and +5.33 [+2.64, +8.03] points at α 0.2 / 0.4 / 1. Iris's raw features are "
        "centimetres of similar range (0.1-7.9), so Adam trains on them as well as on z-scores; mixing raw "
        "petal and sepal sizes of different species blurs the class boundary more."
    ),
    ("wine", False): (
        "Not resolved: ERM 1.81 %, every α within a point of it (α = 1: +0.69 [−0.14, +1.52]). The test set "
        "is 36 samples (one error = 2.8 points) and most splits give ERM no error or one."
    ),
    ("breast_cancer", False): (
        "Not resolved: ERM 2.63 %; α 0.2 / 0.4 / 1 differ by −0.22 / −0.09 / +0.09 points, each interval "
        "within ±0.7 of 0. Consistent with the paper's 'mixup at or below ERM', but not a demonstration of it."
    ),
    ("digits", False): (
        "Not resolved: ERM 2.40 %; the largest difference is α = 0.2, −0.21 [−0.53, +0.11]: the paper's "
        "direction, with an interval that still holds 0."
    ),
}

IRIS_ONE_EPOCH = Experiment(
    name="table4-uci-iris-1epoch",
    title="Table 4, the paper's iris ERM level: the same study trained for 1 epoch (8 Adam steps)",
    preset="repro_uci",
    claims=_claims("iris"),
    overrides={"dataset.name": "uci:iris", "training.epochs": 1},
    quick={"search.seeds": [0, 1]},
    finding=(
        "**The paper's iris ERM level is an MLP that has barely trained.** After one epoch (8 Adam steps) ERM "
        "is at 20.33 % (20 splits), within a point of the paper's 21.3 %; mixup is at 21.33 / 20.83 / 20.50 %, "
        "no different from ERM and not the paper's 17.3. The other explanations tried do not get there "
        "(ERM after 10 epochs): raw features 2.50 % (`table4-uci-iris-raw`, 20 splits); in pilots with the "
        "same trainer (10 splits) a 50/50 split (75 test samples) 7.5 % standardised / 4.5 % raw. Batches in "
        "class order, never shuffled (what a PyTorch DataLoader does by default with scikit-learn's "
        "class-sorted iris), leave raw features at 17.0 % after 10 epochs. The paper does not say which of "
        "these it had; under its stated recipe with shuffled batches, the MLP trains to 5-6 % on iris."
    ),
)

# Raw features for iris only: the paper's one set among ours, and the question is its ERM level (raw features
# did not bring ours near it; the option is there for the other sets: dataset.standardize).
EXPERIMENTS = [*(_experiment(s, raw=False) for s in SETS), _experiment("iris", raw=True), IRIS_ONE_EPOCH]
