"""The service's limits on what a study may ask for, over real HTTP: each refusal a 422 naming the field,
the value and the setting, and nothing stored."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.admission import capacity, size_problems, visible_gpus
from service.models import Study
from service.settings import ServiceSettings
from studies.specfile import load_spec, preset_path
from tests.service.conftest import TINY_SPEC, Api

STUDIES = "/api/v1/studies"
LIMITS: dict[str, Any] = {
    "max_epochs": 50,
    "max_batch_size": 2048,
    "max_samples": 1000,
    "max_classes": 10,
    "max_sample_values": 64,
    "max_dataset_values": 20_000,
    "max_seeds": 3,
    "max_variants": 2,
    "max_concurrent_trials": 4,
    "max_time_budget_s": 3600.0,
    "max_trials": 8,
    "ray_num_cpus": 2,
    "max_queued_per_user": 100,
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"  # admission reads no database: one backend is enough


@pytest.fixture
def settings(settings: ServiceSettings) -> ServiceSettings:
    return settings.model_copy(update=LIMITS)


def synthetic(num_train: int = 100, num_test: int = 50, num_classes: int = 4, shape: list[int] | None = None) -> dict:
    shape = shape or [8]
    options = {"num_train": num_train, "num_test": num_test, "num_classes": num_classes, "shape": shape}
    return {"name": "synthetic", "synthetic": options}


def spec_with(**parts: Any) -> dict[str, Any]:
    spec = copy.deepcopy(TINY_SPEC)
    for dotted, value in parts.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return spec


def post(api: Api, body: dict[str, Any] | str) -> tuple[int, dict[str, Any]]:
    with api.client() as client:
        if isinstance(body, str):
            response = client.post(STUDIES, content=body, headers={"content-type": "application/json"})
        else:
            response = client.post(STUDIES, json=body)
    return response.status_code, response.json()


def stored(api: Api) -> int:
    with api.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Study)) or 0


VARIANTS = [{"name": f"v{i}"} for i in range(3)]
SAMPLES, CLASSES = "MAX_SAMPLES", "MAX_CLASSES"
OVER = [  # (spec parts, the field named, what the message says before the setting, the setting)
    ({"training__epochs": 51}, "training.epochs", "51 is over the limit of 50", "MAX_EPOCHS"),
    ({"training__batch_size": 4096}, "training.batch_size", "4096 is over the limit of 2048", "MAX_BATCH_SIZE"),
    ({"evaluation": {"batch_size": 4096}}, "evaluation.batch_size", "4096 is over the limit of 2048", "MAX_BATCH_SIZE"),
    (
        {"dataset": {"name": "fashion_mnist", "train_subset": 1001}, "model": {"name": "small_cnn"}},
        "dataset.train_subset", "1001 is over the limit of 1000", "MAX_SAMPLES",
    ),
    ({"dataset": synthetic(num_train=1001)}, "dataset.synthetic.num_train", "1001 is over the limit of 1000", SAMPLES),
    ({"dataset": synthetic(num_test=1001)}, "dataset.synthetic.num_test", "1001 is over the limit of 1000", SAMPLES),
    ({"dataset": synthetic(num_classes=11)}, "dataset.synthetic.num_classes", "11 is over the limit of 10", CLASSES),
    (
        {"dataset": synthetic(shape=[5, 13])},
        "dataset.synthetic.shape", "65 values per sample (5, 13) is over the limit of 64", "MAX_SAMPLE_VALUES",
    ),
    (
        {"dataset": synthetic(1000, 1000, shape=[16])},
        "dataset.synthetic", "32000 values in the dataset is over the limit of 20000", "MAX_DATASET_VALUES",
    ),
    ({"search": {"seeds": [0, 1, 2, 3]}}, "search.seeds", "4 seeds is over the limit of 3", "MAX_SEEDS"),
    ({"search": {"variants": VARIANTS}}, "search.variants", "3 variants is over the limit of 2", "MAX_VARIANTS"),
    (
        {"search": {"space": {"alpha": [0.1 * i for i in range(9)]}}},
        "search", "9 trials is over the limit of 8", "MAX_TRIALS",
    ),
    ({"max_concurrent_trials": 5}, "max_concurrent_trials", "5 is over the limit of 4", "MAX_CONCURRENT_TRIALS"),
    ({"time_budget_s": 3600.5}, "time_budget_s", "3600.5 is over the limit of 3600", "MAX_TIME_BUDGET_S"),
    (
        {"resources": {"cpu": 2.5}},
        "resources.cpu",
        "2.5 CPUs per trial is more than a node has: 2 (the local Ray's, MIXUP_STUDIES_RAY_NUM_CPUS;",
        "MAX_TRIAL_CPUS",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("parts", "field", "said", "setting"), OVER, ids=[case[1] for case in OVER])
def test_each_limit_refuses_naming_field_value_and_setting(
    api: Api, parts: dict[str, Any], field: str, said: str, setting: str
) -> None:
    status, body = post(api, spec_with(**parts))
    assert status == 422, body
    message = f"{said} MIXUP_STUDIES_{setting})" if said.endswith(";") else f"{said} (MIXUP_STUDIES_{setting})"
    assert body["errors"] == [{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}]
    assert f"{field}: {message}" in body["detail"]
    assert stored(api) == 0


def test_a_study_at_every_limit_is_accepted(api: Api) -> None:
    spec = spec_with(
        training__epochs=50,
        training__batch_size=2048,
        evaluation={"batch_size": 2048},
        dataset=synthetic(num_train=1000, num_test=250, num_classes=10, shape=[4, 4]),  # 1250 x 16 = 20000 values
        search={"variants": VARIANTS[:2], "seeds": [0, 1, 2]},  # 6 trials
        max_concurrent_trials=4,
        time_budget_s=3600,
        resources={"cpu": 2},
    )
    status, body = post(api, spec)
    assert status == 201, body
    assert (body["status"], body["trials_total"]) == ("queued", 6)
    assert stored(api) == 1


def test_the_reviews_requests_are_all_refused_at_once(api: Api) -> None:
    # What an outside review got accepted; every field is named in one answer.
    spec = spec_with(
        training__epochs=10**9,
        training__batch_size=10**18,
        dataset=synthetic(num_train=10**12, num_classes=10**9),
        resources={"cpu": 1e9, "gpu": visible_gpus() + 1},
    )
    status, body = post(api, spec)
    assert status == 422, body
    named = [".".join(error["loc"][1:]) for error in body["errors"]]
    assert named == [
        "training.epochs",
        "training.batch_size",
        "dataset.synthetic.num_train",
        "dataset.synthetic.num_classes",
        "dataset.synthetic",
        "resources.cpu",
        "resources.gpu",
    ]
    assert "training.batch_size: 1000000000000000000 is over the limit of 2048" in body["detail"]
    gpus = visible_gpus()
    assert (
        f"resources.gpu: {gpus + 1} GPUs per trial is more than a node has: {gpus} (the local Ray's" in body["detail"]
    )
    assert stored(api) == 0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('"time_budget_s": 1e400', "time_budget_s"),
        ('"resources": {"cpu": 1e400}', "resources.cpu"),
        ('"scheduler": {"reduction_factor": 1e400}', "scheduler.reduction_factor"),
        ('"dataset": {"name": "synthetic", "synthetic": {"noise": 1e400}}', "dataset.synthetic.noise"),
    ],
)
def test_numbers_that_are_not_finite_are_refused_by_the_schema(api: Api, text: str, field: str) -> None:
    top = json.loads("{" + text + "}")  # 1e400 is inf to Python's parser too: the key is what matters here
    body = json.dumps({k: v for k, v in TINY_SPEC.items() if k not in top})
    status, answer = post(api, body[:-1] + ", " + text + "}")
    assert status == 422, answer
    assert [".".join(e["loc"][1:]) for e in answer["errors"]] == [field]
    assert "finite" in answer["errors"][0]["msg"]
    assert stored(api) == 0


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ({"search": {"algorithm": "optuna", "num_samples": 2, "seed": 2**32}}, "search.seed"),
        ({"search": {"seeds": [0, 2**64]}}, "search.seeds.1"),
        ({"training__seed": -1}, "training.seed"),
        ({"dataset": {"name": "uci:iris", "split_seed": 2**40}}, "dataset.split_seed"),
        ({"evaluation": {"ece": True, "ece_bins": 10**9}}, "evaluation.ece_bins"),
    ],
)
def test_seeds_and_bins_the_trials_cannot_use_are_refused_by_the_schema(
    api: Api, parts: dict[str, Any], field: str
) -> None:
    # Each was accepted, then failed every trial (torch.manual_seed overflows, Optuna takes 32-bit seeds) or
    # allocated a tensor of ece_bins elements per evaluation.
    status, body = post(api, spec_with(**parts))
    assert status == 422, body
    assert [".".join(e["loc"][1:]) for e in body["errors"]] == [field]
    assert stored(api) == 0


def test_the_cluster_limits_come_from_settings_or_the_local_ray() -> None:
    local = ServiceSettings(ray_num_cpus=3, max_trial_gpus=None)
    assert (capacity(local).cpus, capacity(local).gpus) == (3, visible_gpus())
    # A cluster the service cannot see: unchecked at submit unless configured (the driver still checks).
    remote = ServiceSettings(launcher="ray_jobs", ray_jobs_url="http://head:8265")
    assert (capacity(remote).cpus, capacity(remote).gpus) == (None, None)
    sized = remote.model_copy(update={"max_trial_cpus": 16.0, "max_trial_gpus": 2.0})
    assert (capacity(sized).cpus, capacity(sized).gpus) == (16.0, 2.0)
    assert capacity(sized).cpus_from == "MIXUP_STUDIES_MAX_TRIAL_CPUS"


@pytest.mark.parametrize(
    "preset", ["smoke", "paper_uci", "paper_table5_cifar10", "paper_label_noise", "fashion_mnist_ablation"]
)
def test_the_papers_presets_fit_the_default_limits(preset: str) -> None:
    assert size_problems(load_spec(preset_path(preset)), ServiceSettings()) == []
