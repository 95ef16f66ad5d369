"""search.seed_data: each seed also seeds the data (subset, noisy labels), and the report says which was used."""

from __future__ import annotations

from typing import Any

import torch

from mixup_core.data import load_dataset
from studies.records import TrialRecord
from studies.report import build_report, render_markdown
from studies.space import trial_config
from studies.specfile import parse_spec


def spec_data(seed_data: bool | None) -> dict[str, Any]:
    search: dict[str, Any] = {"space": {"alpha": [0.0, 1.0]}, "seeds": [3, 4]}
    if seed_data is not None:
        search["seed_data"] = seed_data
    return {
        "name": "seed-data",
        "dataset": {
            "name": "synthetic",
            "synthetic": {"num_train": 400, "num_classes": 4},
            "train_subset": 200,
            "label_noise": 0.4,
            "label_noise_mode": "uniform",
            "split_seed": 9,
        },
        "model": {"name": "mlp"},
        "training": {"epochs": 2, "device": "cpu"},
        "search": search,
    }


def test_default_keeps_the_data_fixed() -> None:
    spec = parse_spec(spec_data(None))
    assert spec.search.seed_data is False
    a, b = (trial_config(spec, {"alpha": 1.0, "seed": s}) for s in (3, 4))
    assert (a.training.seed, b.training.seed) == (3, 4)
    assert a.dataset == b.dataset
    assert a.dataset.split_seed == 9


def test_seed_data_resamples_subset_and_noisy_labels() -> None:
    spec = parse_spec(spec_data(True))
    a, b = (trial_config(spec, {"alpha": alpha, "seed": s}) for alpha, s in ((0.0, 3), (1.0, 4)))
    assert (a.dataset.split_seed, b.dataset.split_seed) == (3, 4)
    data_a, data_b = load_dataset(a.dataset), load_dataset(b.dataset)
    assert not torch.equal(data_a.train_x, data_b.train_x)  # another subset of the 400
    assert data_a.noisy is not None and data_b.noisy is not None
    assert not torch.equal(data_a.noisy, data_b.noisy)
    # Paired by seed: both sides of a comparison see the same data for the same seed.
    same_seed = trial_config(spec, {"alpha": 1.0, "seed": 3})
    assert torch.equal(load_dataset(same_seed.dataset).train_y, data_a.train_y)


def test_the_report_says_which_seeding_was_used() -> None:
    records = [
        TrialRecord(
            trial_id=f"t{alpha}-{seed}",
            params={"alpha": alpha, "seed": seed},
            status="finished",
            epochs=2,
            metrics={"median_test_error": 10.0 + alpha + seed},
        )
        for alpha in (0.0, 1.0)
        for seed in (3, 4)
    ]
    fixed = build_report(parse_spec(spec_data(False)), records)
    assert (fixed.seed_data, fixed.seeds, fixed.split_seed) == (False, [3, 4], 9)
    assert "Seeds 3, 4: initialisation and batch order only; every trial saw the same data" in render_markdown(fixed)
    assert "`dataset.split_seed` = 9" in render_markdown(fixed)
    resampled = build_report(parse_spec(spec_data(True)), records)
    assert resampled.seed_data is True
    assert "Seeds 3, 4: each seed also resampled the data" in render_markdown(resampled)
    assert resampled.model_dump(mode="json")["seed_data"] is True


def test_the_paper_label_noise_preset_uses_the_papers_noise() -> None:
    from studies.specfile import load_spec, preset_path

    spec = load_spec(preset_path("paper_label_noise"))
    assert (spec.dataset.label_noise, spec.dataset.label_noise_mode) == (0.5, "uniform")
