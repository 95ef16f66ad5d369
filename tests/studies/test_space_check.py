"""Validating a study costs time in its spec's size, and still refuses every trial that cannot run.

``check_space`` validates the few probe trials of :func:`studies.probes.probe_points`. The tests here
check both halves: (1) on many random small spaces it refuses exactly the specs in which some trial,
validated on its own, fails (the oracle below builds every trial's ExperimentConfig from the raw
data, without studies' code); (2) each cross-setting check of ``ExperimentConfig._check_combination``
is still caught when the bad pair hides across two axes, or an axis and a variant, of a space far too
large to enumerate, and the number of trials validated stays small.
"""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

import pytest
from pydantic import ValidationError

from mixup_core import ExperimentConfig
from studies.errors import InvalidStudySpec
from studies.probes import probe_points
from studies.space import trial_count
from studies.spec import AXIS_PATHS
from studies.specfile import parse_spec

BASE: dict[str, Any] = {
    "name": "t",
    "dataset": {"name": "synthetic"},  # 512 training samples, vectors of 16
    "model": {"name": "mlp"},  # mixing points: input, layer1, feature_map, module:<submodule>
    "training": {"epochs": 3, "batch_size": 16, "device": "cpu"},
}


def spec_data(search: dict[str, Any], **base: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for key, value in base.items():
        data[key] = {**data.get(key, {}), **value}
    data["search"] = search
    return data


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidStudySpec) as caught:
        parse_spec(data)
    return str(caught.value)


# ---- the oracle: every trial validated on its own -------------------------------------------------


def every_trial_runs(data: dict[str, Any]) -> bool:
    """Whether every combination of axis values (range ends), variant and seed is a valid experiment."""
    search = data.get("search", {})
    axes = {
        name: [axis["low"], axis["high"]] if isinstance(axis, dict) else axis
        for name, axis in search.get("space", {}).items()
    }
    variants = search.get("variants") or [None]
    base = {k: copy.deepcopy(data.get(k, {})) for k in ("dataset", "model", "mixup", "training", "evaluation")}
    for values in itertools.product(*axes.values(), variants, search.get("seeds", [0])):
        *axis_values, variant, seed = values
        tree = copy.deepcopy(base)
        for name, value in zip(axes, axis_values, strict=True):
            section, key = AXIS_PATHS[name].split(".")
            tree[section][key] = value
        tree["mixup"].update({k: v for k, v in (variant or {}).items() if k != "name"})
        tree["training"]["seed"] = seed
        try:
            ExperimentConfig.model_validate(tree)
        except ValidationError:
            return False
    return True


POOLS: dict[str, list[Any]] = {
    "alpha": [0.0, 0.5, 2.0],
    "weight_decay": [0.0, 1e-4, 5e-4],
    "lr": [0.1, 1e-3, 0.5],
    "label_smoothing": [0.0, 0.1, 0.2],
    "input_noise": [0.0, 0.1, 0.3],
    "layer": ["input", "layer1", "feature_map", "module:fc"],
    "pairing": ["random", "knn"],
    "scope": ["all", "same_class"],
    "target": ["mix", "closest"],
}
#: Values that fail their own field or the model: one sometimes joins an axis.
BAD: dict[str, Any] = {
    "alpha": -1.0,
    "weight_decay": -1.0,
    "lr": 0.0,
    "label_smoothing": 1.0,
    "input_noise": -0.1,
    "layer": "layer7",
}
VARIANT_POOLS: dict[str, list[Any]] = {
    "alpha": [0.0, 1.0],
    "layer": ["input", "layer1", "layer7"],
    "pairing": ["random", "knn"],
    "knn_k": [5, 600],  # 600 >= the 512 training samples
    "input_noise": [0.0, 0.1],
    "label_smoothing": [0.0, 0.2],
    "scope": ["all", "same_class"],
    "lam_per": ["batch", "sample"],
}
BASE_MIXUP: dict[str, list[Any]] = {
    "alpha": [0.0, 1.0],
    "layer": ["input", "layer1"],
    "pairing": ["random", "knn"],
    "input_noise": [0.0, 0.1],
    "knn_k": [5, 600],
}


def random_spec(rng: random.Random) -> dict[str, Any]:
    """A small space (a few values per axis, a few variants): cheap to enumerate, rich in bad pairs."""
    space: dict[str, Any] = {}
    for name in rng.sample(sorted(POOLS), rng.randint(0, 4)):
        values = rng.sample(POOLS[name], rng.randint(1, min(3, len(POOLS[name]))))
        if name in BAD and rng.random() < 0.1:
            values.insert(rng.randint(0, len(values)), BAD[name])
        if name in ("alpha", "input_noise", "weight_decay") and rng.random() < 0.2:
            space[name] = {"low": min(values), "high": max(values)}
        else:
            space[name] = values
    free = [f for f in VARIANT_POOLS if f not in space]  # a variant may not set an axis's setting
    variants = [
        {"name": f"v{i}", **{f: rng.choice(VARIANT_POOLS[f]) for f in rng.sample(free, rng.randint(0, 3))}}
        for i in range(rng.randint(0, 3))
    ]
    search: dict[str, Any] = {
        "algorithm": "random",
        "num_samples": 1,
        "space": space,
        "seeds": [0, 1][: rng.randint(1, 2)],
    }
    if variants:
        search["variants"] = variants
    mixup = {k: rng.choice(v) for k, v in BASE_MIXUP.items() if rng.random() < 0.5}
    return spec_data(search, mixup=mixup, training={"batch_size": rng.choice([1, 16, 16])})


def test_probes_refuse_exactly_the_specs_with_a_trial_that_cannot_run() -> None:
    rng = random.Random(11)
    refused = 0
    for _ in range(800):
        data = random_spec(rng)
        runs = every_trial_runs(data)
        try:
            parse_spec(data)
            accepted = True
        except InvalidStudySpec:
            accepted = False
        assert accepted == runs, data
        refused += not runs
    assert 200 < refused < 600  # both outcomes are well represented


# ---- each cross-setting check, hidden in a space too large to enumerate --------------------------

WIDE = [0.0, *(0.05 * i for i in range(1, 22))]  # 22 values: 0 and 21 positive ones
LAYERS = ["input", "layer1", "feature_map", "module:fc", "module:body"]


def random_search(space: dict[str, Any], variants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    search: dict[str, Any] = {"algorithm": "random", "num_samples": 10, "space": space, "seeds": [0, 1, 2]}
    if variants:
        search["variants"] = variants
    return search


def many_variants(n: int, odd_one: dict[str, Any] | None = None, at: int = 777) -> list[dict[str, Any]]:
    scopes = ("all", "same_class")
    variants = [{"name": f"v{i}", "scope": scopes[i % 2], "label_smoothing": 0.01 * (i % 5)} for i in range(n)]
    if odd_one is not None:
        variants[at] = {"name": f"v{at}", **odd_one}
    return variants


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # a hidden layer with knn pairing: a layer axis × a pairing axis
        (
            spec_data(random_search({"layer": LAYERS, "pairing": ["random", "knn"], "lr": WIDE[1:], "alpha": WIDE})),
            ["pairing='knn'", "layer='layer1'", "'knn' takes partners from the dataset"],
        ),
        # a hidden layer with input noise: a layer axis × an input_noise axis
        (
            spec_data(random_search({"input_noise": WIDE, "layer": LAYERS, "weight_decay": WIDE, "alpha": WIDE})),
            ["input_noise=1.05", "layer='layer1'", "input_noise perturbs inputs"],
        ),
        # a hidden layer (a variant) with knn pairing (an axis)
        (
            spec_data(
                random_search({"pairing": ["random", "knn"], "alpha": WIDE}, many_variants(2000, {"layer": "layer1"}))
            ),
            ["variant='v777'", "pairing='knn'"],
        ),
        # input noise (a variant) at a hidden layer (an axis)
        (
            spec_data(random_search({"layer": LAYERS}, many_variants(2000, {"input_noise": 0.3}))),
            ["variant='v777'", "layer='layer1'", "input_noise perturbs inputs"],
        ),
        # mixing (a positive alpha on an axis) with a batch of one
        (
            spec_data(random_search({"alpha": WIDE, "lr": WIDE[1:]}), training={"batch_size": 1}),
            ["alpha=1.05", "batch_size must be >= 2 when mixing"],
        ),
        # mixing (one variant's alpha) with a batch of one
        (
            spec_data(
                random_search({"lr": WIDE[1:]}, many_variants(2000, {"alpha": 0.5})),
                mixup={"alpha": 0.0},
                training={"batch_size": 1},
            ),
            ["batch_size must be >= 2 when mixing"],
        ),
        # knn_k beyond the training set (a variant) with knn pairing (an axis)
        (
            spec_data(
                random_search({"pairing": ["random", "knn"], "alpha": WIDE}, many_variants(2000, {"knn_k": 600}))
            ),
            ["variant='v777'", "pairing='knn'", "knn_k must be below the training-set size (512)"],
        ),
        # the same, where the largest and smallest knn_k are harmless (random pairing) and hide the one that is not
        (
            spec_data(
                random_search(
                    {"alpha": WIDE},
                    [
                        {"name": "rp", "knn_k": 900, "pairing": "random"},
                        {"name": "rp3", "knn_k": 3, "pairing": "random"},
                        *many_variants(2000, {"knn_k": 600}),
                    ],
                ),
                mixup={"pairing": "knn"},
            ),
            ["variant='v777'", "knn_k must be below the training-set size (512)"],
        ),
        # knn_k beyond a training subset (the base) with knn pairing (a variant)
        (
            spec_data(
                random_search({"alpha": WIDE}, many_variants(2000, {"pairing": "knn"})),
                mixup={"knn_k": 300},
                dataset={"train_subset": 256},
            ),
            ["variant='v777'", "knn_k must be below the training-set size (256)"],
        ),
        # not a mixing point of the model: one value of a layer axis, one variant's layer
        (
            spec_data(random_search({"layer": [*LAYERS, "layer5"], "alpha": WIDE})),
            ["layer='layer5'", "not a mixing point"],
        ),
        (
            spec_data(random_search({"alpha": WIDE}, many_variants(2000, {"layer": "module:nope"}))),
            ["variant='v777'", "has no submodule 'nope'"],
        ),
        # a value out of its field's range in the middle of an axis
        (spec_data(random_search({"label_smoothing": [0.1, 1.5, 0.2], "alpha": WIDE})), ["label_smoothing=1.5"]),
    ],
)
def test_a_bad_pair_across_axes_and_variants_is_refused_and_named(data: dict[str, Any], expected: list[str]) -> None:
    message = refusal(data)
    for part in expected:
        assert part in message, message


def test_a_base_that_every_trial_overrides_need_not_run_itself() -> None:
    # alpha 1 (the default) with a batch of one cannot run, but every trial is ERM (alpha 0)
    data = spec_data(random_search({"alpha": [0.0], "lr": WIDE[1:]}), training={"batch_size": 1})
    assert parse_spec(data).mixup.alpha == 1.0
    variants = spec_data(random_search({}, [{"name": "erm", "alpha": 0.0}]), training={"batch_size": 1})
    assert parse_spec(variants).search.variants is not None


def test_the_slow_bodies_of_the_review_validate_with_few_trials() -> None:
    # 910 bytes, four 22-value list axes: 234,256 combinations were validated one by one (22 s)
    four_axes = spec_data(
        random_search({"alpha": WIDE, "weight_decay": WIDE, "lr": [*WIDE[1:], 1.2], "label_smoothing": WIDE[:20]})
    )
    spec = parse_spec(four_axes)
    assert len(probe_points(spec)) <= 4  # 2 alpha classes; the other axes' extremes spread over them
    # 40,000 variants: the duplicate-name check compared every pair (46 s); the corners were 40,000 trials
    forty_thousand = spec_data(random_search({"alpha": WIDE}, many_variants(40_000)))
    spec = parse_spec(forty_thousand)
    assert trial_count(spec) == 30
    assert len(probe_points(spec)) <= 40


def test_duplicate_names_and_seeds_are_found_in_one_pass_and_shown_briefly() -> None:
    variants = many_variants(40_000)
    variants[39_999]["name"] = "v3"
    seeds = [*range(100_000), 7, 8]
    message = refusal(spec_data({**random_search({}, variants), "seeds": seeds}))
    assert "variant names must be unique, got duplicates ['v3']" in message
    assert "seeds must be distinct, got [7, 8] more than once" in message
    many = refusal(spec_data(random_search({}, [{"name": "same"}] * 3 + [{"name": f"d{i % 50}"} for i in range(100)])))
    assert "and 41 more" in many  # 51 duplicated names, 10 shown
    assert len(many) < 1000


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ([10**30], "is more than a tensor can hold"),
        ([10**9, 10**9], "model mlp cannot take input_shape=(1000000000, 1000000000)"),
        ([3, 2**62, 2**62], "is more than a tensor can hold"),
    ],
)
@pytest.mark.parametrize("layer", ["input", "feature_map"])
def test_an_impossible_synthetic_shape_is_refused_naming_the_field(shape: list[int], expected: str, layer: str) -> None:
    data = spec_data({}, dataset={"synthetic": {"shape": shape}}, mixup={"layer": layer})
    if len(shape) == 3:
        data["model"] = {"name": "small_cnn"}
    message = refusal(data)
    assert "dataset.synthetic.shape" in message
    if layer == "feature_map" or len(shape) == 1:
        assert expected in message


@pytest.mark.parametrize(
    ("change", "where", "expected"),
    [
        ({**{f"k{i}": 0 for i in range(100_000)}}, "", "100000 unknown keys ('k0', 'k1'"),
        ({"training": {f"k{i}": 0 for i in range(100_000)}}, "training", "100000 unknown keys"),
        ({"search": {"space": {"alpha": ["x"] * 250_000}}}, "search.space.alpha", "valid number"),
        ({"search": {"variants": [{"name": f"v{i}", "x": 1} for i in range(40_000)]}}, "search.variants.0.x", "Extra"),
        ({"training": {"milestones": ["x"] * 250_000}}, "training.milestones.0", "valid number"),
        ({"dataset": {"name": "synthetic", "synthetic": {"shape": ["x"] * 250_000}}}, "dataset.synthetic.shape", ""),
    ],
)
def test_a_body_of_many_bad_parts_gives_few_errors(change: dict[str, Any], where: str, expected: str) -> None:
    # pydantic reported each unknown key and each bad list item: 100,000 errors took 0.8 s just to list
    data = {**spec_data({}), **change}
    with pytest.raises(InvalidStudySpec) as caught:
        parse_spec(data)
    errors = caught.value.errors
    assert len(errors) <= 2, errors[:5]
    assert errors[0][0].startswith(where)
    assert expected in errors[0][1]
