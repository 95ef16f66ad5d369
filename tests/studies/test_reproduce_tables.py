"""The suite's Table 4 (UCI) and Table 5-style ablation experiments: their settings are the paper's where the
paper gives one, and each runs quick through the engine (local Ray, a real MLflow store) with its claims."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixup_core import Trainer
from studies.progress import read_progress
from studies.reproduce import get, run_experiment
from studies.reproduce.ablation import PAPER
from studies.reproduce.tabular import ALPHAS, SETS
from studies.settings import StudySettings
from studies.space import trial_config

TABLE4 = [*(f"table4-uci-{s.replace('_', '-')}" for s in SETS), "table4-uci-iris-raw"]


@pytest.mark.parametrize("name", TABLE4)
def test_table4_is_the_papers_recipe_on_resampled_splits(name: str) -> None:
    spec = get(name).spec()
    assert spec.model.name == "mlp"
    train = spec.training
    assert (train.optimizer, train.lr, train.epochs, train.batch_size, train.weight_decay) == ("adam", 1e-3, 10, 16, 0)
    assert spec.search.space.alpha == [0.0, *ALPHAS]
    assert len(spec.search.seeds) >= 10 and spec.search.seed_data
    assert spec.dataset.standardize is not name.endswith("-raw")
    assert spec.metric == "test_error"


def test_the_raw_experiments_train_on_the_raw_features() -> None:
    # The trial's data as the engine builds it: iris's petal length in centimetres (1.0-6.9), not z-scores.
    for name, raw in (("table4-uci-iris-raw", True), ("table4-uci-iris", False)):
        spec = get(name).spec(quick=True)
        config = trial_config(spec, {"alpha": 1.0, "seed": 3})
        petal = Trainer(config).data.train_x[:, 2]
        assert (float(petal.min()) >= 1.0 - 1e-6) is raw, name
        assert torch.isclose(petal.mean(), torch.tensor(0.0), atol=1e-4).item() is not raw, name


def test_table5_claims_follow_the_papers_numbers_per_weight_decay() -> None:
    experiment = get("table5-ablation")
    spec = experiment.spec()
    assert {v.name for v in spec.search.variants or []} == set(PAPER)
    assert spec.search.space.weight_decay == [1e-4, 5e-4] and len(spec.search.seeds) >= 2
    by_label = {c.title: c for c in experiment.claims}
    assert len(by_label) == 2 * (len(PAPER) - 1)
    knn = by_label["mixup AC+KNN · wd 0.0005"]
    assert (knn.paper_baseline, knn.paper_row, knn.direction) == (5.18, 5.26, "higher")  # above ERM at 5e-4
    layer1 = by_label["Layer 1 · wd 0.0001"]
    assert (layer1.paper_baseline, layer1.paper_row, layer1.direction) == (5.53, 4.44, "lower")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "trials"), [("table4-uci-iris-raw", 8), ("table5-ablation", 28)])
def test_runs_quick_through_the_engine(
    name: str, trials: int, local_ray: None, settings: StudySettings, tmp_path: Path
) -> None:
    experiment = get(name)
    line = run_experiment(experiment, quick=True, settings=settings, results=tmp_path / "r.jsonl", echo=None)
    assert line["status"] == "succeeded", line
    assert line["trials"]["finished"] == line["trials"]["total"] == trials
    assert [c["label"] for c in line["claims"]] == [c.title for c in experiment.claims]
    progress = read_progress(settings.resolved_tracking_uri, line["study_id"])
    assert progress is not None
    for claim in line["claims"]:
        assert claim["n"] == 2 and claim["paired"], claim
        # ours_row is the mean of the row's two trials as MLflow recorded them
        rows = [t for t in progress.trials if _matches(t.params, claim)]
        values = [t.metrics[claim["metric"]] for t in rows]
        assert len(values) == 2, claim
        assert claim["ours_row"] == pytest.approx(sum(values) / 2), claim


def _matches(params: dict[str, str], claim: dict[str, object]) -> bool:
    row = claim["row"]
    assert isinstance(row, dict)
    if "variant" in row:
        same_wd = float(params.get("weight_decay", "nan")) == claim["weight_decay"]
        return params.get("variant") == row["variant"] and same_wd
    return float(params["alpha"]) == row["alpha"]
