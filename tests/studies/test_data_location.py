"""dataset.data_dir: placed once where a spec is accepted (the CLI here), taken as absolute below."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from studies.data_location import place_data_dir, require_absolute
from studies.engine import resolve_spec
from studies.errors import InvalidStudySpec
from studies.settings import StudySettings
from studies.spec import StudySpec


def _spec(data_dir: str | None, **dataset: Any) -> StudySpec:
    return StudySpec.model_validate({
        "name": "paths",
        "dataset": {"name": "synthetic", "data_dir": data_dir, **dataset},
        "model": {"name": "mlp"},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu"},
    })  # fmt: skip


def test_the_cli_reads_relative_paths_under_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert place_data_dir(_spec("cifar"), root).dataset.data_dir == root / "cifar"
    assert place_data_dir(_spec("a/b"), root).dataset.data_dir == root / "a" / "b"
    assert place_data_dir(_spec("~/cifar"), root).dataset.data_dir == Path.home() / "cifar"
    assert place_data_dir(_spec("/srv/data"), root).dataset.data_dir == Path("/srv/data")
    assert place_data_dir(_spec(None), root).dataset.data_dir is None
    with pytest.raises(InvalidStudySpec, match=r"dataset\.data_dir: must not contain a control character \(U\+0000\)"):
        place_data_dir(_spec("a\x00b"), root)


def test_the_driver_takes_only_absolute_paths(tmp_path: Path) -> None:
    settings = StudySettings(home=tmp_path / "home")
    assert resolve_spec(_spec(None), settings).dataset.data_dir == tmp_path / "home" / "data"
    assert resolve_spec(_spec(str(tmp_path / "d")), settings).dataset.data_dir == tmp_path / "d"
    for relative in ("logs", "~/../tmp/x", "../x"):
        with pytest.raises(InvalidStudySpec) as info:
            resolve_spec(_spec(relative), settings)
        assert info.value.errors[0][0] == "dataset.data_dir"
        assert repr(str(Path(relative))) in info.value.errors[0][1]
    with pytest.raises(InvalidStudySpec, match=r"dataset\.data_dir"):
        require_absolute(_spec("/srv/a\x00b"), tmp_path)


def test_the_default_data_root_is_absolute_when_the_home_is_relative(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert StudySettings(home=Path("rel-home")).resolved_data_dir == tmp_path / "rel-home" / "data"
        assert StudySettings(data_dir=Path("rel-data")).resolved_data_dir == tmp_path / "rel-data"
    finally:
        os.chdir(cwd)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "studies.cli", *args], capture_output=True, text=True, env=base | env,
        cwd=cwd, timeout=600,
    )  # fmt: skip


def test_validate_refuses_a_nul_byte_with_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(_spec(None).model_dump(mode="json") | {"dataset": {"name": "synthetic", "data_dir": "a\x00b"}})
    )
    result = _cli(["validate", str(spec)], {"MIXUP_STUDIES_HOME": str(tmp_path / "home")}, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "dataset.data_dir: must not contain a control character (U+0000), got 'a\\x00b'" in result.stderr


def _write_mnist(folder: Path) -> None:
    """The four IDX files (plain), 40 training and 20 test images."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, n in (("train", 40), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            (folder / f"{stem}-{kind}-ubyte").write_bytes(header + arr.tobytes())


def test_a_cli_study_reads_a_relative_data_dir_under_the_data_root_not_the_trials_cwd(tmp_path: Path) -> None:
    """`mixup-studies run` with `data_dir: mnist-files`: the trial (in Ray's session folder) finds the files
    under MIXUP_STUDIES_DATA_DIR; before, it looked in its own working directory and the study failed."""
    root = tmp_path / "data-root"
    _write_mnist(root / "mnist-files")
    spec = {
        "name": "relative-data-dir",
        "dataset": {"name": "mnist", "data_dir": "mnist-files", "download": False},
        "model": {"name": "mlp"},
        "training": {"epochs": 1, "batch_size": 20, "device": "cpu"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    ray_temp = tempfile.mkdtemp(prefix="msp", dir="/tmp")  # Ray's socket paths have a length limit
    env = {
        "MIXUP_STUDIES_HOME": str(tmp_path / "home"),
        "MIXUP_STUDIES_DATA_DIR": str(root),
        "MIXUP_STUDIES_RAY_NUM_CPUS": "2",
        "MIXUP_STUDIES_RAY_TEMP_DIR": ray_temp,
    }
    result = _cli(["run", str(path), "--quiet"], env, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 trials" in result.stdout or "succeeded" in result.stdout
    assert not (tmp_path / "mnist-files").exists()
