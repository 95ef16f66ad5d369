"""StudySpec validation, search-space expansion, spec files and `mixup-studies validate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from studies import search
from studies.errors import InvalidStudySpec
from studies.space import grid_points, random_points, trial_config, trial_count
from studies.spec import StudySpec
from studies.specfile import load_spec, parse_spec, preset_path

PRESETS = ["smoke", "fashion_mnist_ablation", "paper_table5_cifar10", "paper_label_noise", "paper_uci"]


def spec_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 3, "batch_size": 16, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 1.0], "layer": ["input", "feature_map"]}, "seeds": [0, 1]},
    }
    data.update(overrides)
    return data


def errors_of(data: dict[str, Any], max_trials: int = 1000) -> str:
    with pytest.raises(InvalidStudySpec) as caught:
        parse_spec(data, max_trials)
    return str(caught.value)


def test_grid_expands_axes_times_seeds() -> None:
    spec = parse_spec(spec_data())
    assert trial_count(spec) == 8
    points = grid_points(spec)
    assert len(points) == 4
    assert {(p["alpha"], p["layer"]) for p in points} == {
        (0.0, "input"),
        (0.0, "feature_map"),
        (1.0, "input"),
        (1.0, "feature_map"),
    }
    space = search.param_space(spec)
    assert space["seed"] == {"grid_search": [0, 1]}


def test_trial_config_applies_axes_variant_and_seed() -> None:
    data = spec_data(
        search={
            "space": {"weight_decay": [1e-4, 5e-4]},
            "variants": [{"name": "SC knn", "alpha": 0.5, "scope": "same_class", "pairing": "knn", "knn_k": 7}],
        }
    )
    spec = parse_spec(data)
    config = trial_config(spec, {"variant": "SC knn", "weight_decay": 5e-4, "seed": 3})
    assert config.mixup.alpha == 0.5
    assert config.mixup.scope == "same_class"
    assert config.mixup.knn_k == 7
    assert config.training.weight_decay == 5e-4
    assert config.training.seed == 3
    assert trial_count(spec) == 2  # 1 variant × 2 weight decays × 1 seed


def test_random_points_are_seeded_and_inside_the_ranges() -> None:
    data = spec_data(
        search={
            "algorithm": "random",
            "num_samples": 20,
            "seed": 7,
            "space": {"alpha": {"low": 0.1, "high": 2.0, "log": True}, "layer": ["input", "layer1"]},
        }
    )
    spec = parse_spec(data)
    first, again = random_points(spec), random_points(spec)
    assert first == again
    assert len(first) == 20
    assert all(0.1 <= p["alpha"] <= 2.0 for p in first)
    assert {p["layer"] for p in first} == {"input", "layer1"}
    other = random_points(parse_spec({**data, "search": {**data["search"], "seed": 8}}))
    assert other != first


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"mixup": {"alpha": -1}}, "mixup.alpha"),
        ({"search": {"space": {"alpha": [0.5, -0.2]}}}, "alpha=-0.2"),
        ({"search": {"space": {"weight_decay": [-1e-4]}}}, "weight_decay=-0.0001"),
        ({"model": {"name": "resnet9000"}}, "resnet9000"),
        ({"dataset": {"name": "imagenet-21k"}}, "imagenet-21k"),
        ({"search": {"space": {"layer": ["input", "layer3"]}}}, "layer3"),
        ({"search": {"algorithm": "random", "space": {"alpha": {"low": 2, "high": 1}}}}, "low=2.0, high=1.0"),
        ({"search": {"space": {"alpha": {"low": 0, "high": 1}}}}, "search.space.alpha: a range needs"),
        ({"resources": {"gpu": 0.5}}, "resources.gpu: 0.5 GPUs asked for a CPU-only run"),
        ({"training": {"device": "cuda:1"}}, "training.device: a trial sees its GPU as cuda:0, got 'cuda:1'"),
        ({"metric": "accuracy"}, "unknown metric 'accuracy'"),
        ({"scheduler": {"name": "hyperband"}}, "scheduler.name"),
        ({"colour": "blue"}, "colour"),
        ({"name": "bad name!"}, "bad name!"),
        ({"search": {"space": {"pairing": ["knn"], "layer": ["layer1"]}}}, "knn"),
    ],
)
def test_invalid_specs_name_the_field_and_value(change: dict[str, Any], expected: str) -> None:
    assert expected in errors_of(spec_data(**change))


def test_the_trial_cap_is_configurable() -> None:
    data = spec_data(search={"space": {"alpha": [0.1 * i for i in range(10)]}, "seeds": [0, 1, 2]})
    assert trial_count(parse_spec(data, max_trials=30)) == 30
    assert "expands to 30 trials, above the limit of 29" in errors_of(data, max_trials=29)
    optuna = spec_data(search={"algorithm": "optuna", "num_samples": 50, "space": {"alpha": {"low": 0, "high": 1}}})
    assert "search.num_samples: the study expands to 50 trials" in errors_of(optuna, max_trials=10)


def test_optuna_takes_one_seed() -> None:
    data = spec_data(search={"algorithm": "optuna", "num_samples": 4, "space": {"alpha": [0, 1]}, "seeds": [0, 1]})
    assert "optuna suggests one configuration per trial" in errors_of(data)


def test_every_error_is_listed_with_its_field() -> None:
    with pytest.raises(InvalidStudySpec) as caught:
        parse_spec(spec_data(model={"name": "mlp", "extra": 1}, training={"epochs": 0}))
    fields = [field for field, _ in caught.value.errors]
    assert "model.extra" in fields
    assert "training.epochs" in fields


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate(name: str) -> None:
    spec = load_spec(preset_path(name))
    assert spec.name == name
    assert trial_count(spec) >= 5
    assert preset_path(name).read_text().startswith(f"# {name}")  # documented in its header


def test_table5_preset_has_the_papers_rows_and_recipe() -> None:
    spec = load_spec(preset_path("paper_table5_cifar10"))
    assert spec.model.name == "preact_resnet18"
    assert spec.training.epochs == 200
    assert spec.training.lr == 0.1
    assert spec.search.space.weight_decay == [1e-4, 5e-4]
    names = [v.name for v in spec.search.variants or []]
    assert len(names) == 22
    layer5 = trial_config(spec, {"variant": "Layer 5 (feature map)", "weight_decay": 1e-4})
    assert layer5.mixup.layer == "feature_map"
    smote = trial_config(spec, {"variant": "inputs only SC+KNN", "weight_decay": 1e-4})
    assert (smote.mixup.scope, smote.mixup.pairing, smote.mixup.target) == ("same_class", "knn", "closest")


def test_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidStudySpec, match="cannot read the spec file"):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(InvalidStudySpec, match="not valid YAML"):
        load_spec(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(InvalidStudySpec, match="a mapping of fields, got list"):
        load_spec(listed)


def test_spec_round_trips_through_json() -> None:
    spec = load_spec(preset_path("paper_table5_cifar10"))
    assert StudySpec.model_validate_json(spec.model_dump_json()) == spec


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"MIXUP_STUDIES_HOME": str(home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "studies.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_validate_command_prints_the_count_or_the_errors(tmp_path: Path) -> None:
    ok = run_cli("validate", "smoke", home=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "smoke: 6 trials" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec_data(mixup={"alpha": -1}, model={"name": "nope"})))
    failed = run_cli("validate", str(bad), home=tmp_path)
    assert failed.returncode == 2
    assert "mixup.alpha" in failed.stderr
    assert "'nope'" in failed.stderr
    capped = run_cli("validate", "fashion_mnist_ablation", home=tmp_path)
    assert capped.returncode == 0
    env_cap = subprocess.run(
        [sys.executable, "-m", "studies.cli", "validate", "fashion_mnist_ablation"],
        capture_output=True,
        text=True,
        env={"MIXUP_STUDIES_HOME": str(tmp_path), "MIXUP_STUDIES_MAX_TRIALS": "10", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert env_cap.returncode == 2
    assert "36 trials, above the limit of 10" in env_cap.stderr


def test_the_readme_example_spec_validates() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Studies: the spec format")[1].split("```yaml")[1].split("```")[0]
    spec = parse_spec(yaml.safe_load(block))
    assert trial_count(spec) == 3 * 2 * 3 * 2
    assert spec.scheduler.name == "asha"
