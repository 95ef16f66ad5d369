"""docker/compose.yaml (+ compose.cpu.yaml): topology, healthchecks, secrets from .env, GPU and shm settings.

``docker compose config`` validates the files where the compose v2 plugin is installed; everywhere
else (the build machines have only the docker client) the same properties are checked structurally.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.docker._compose import (
    COMPOSE,
    COMPOSE_CPU,
    DOCKER_DIR,
    ENV_EXAMPLE,
    MissingVariable,
    bare_variables,
    documented_variables,
    load_raw,
    read_env_file,
    referenced_variables,
    resolved,
)

COMPOSE_TEST = DOCKER_DIR / "compose.test.yaml"

SERVICES = {"postgres", "minio", "minio-init", "mlflow", "ray-head", "ray-worker", "api"}
RAY_NODES = ("ray-head", "ray-worker")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY")
CONTRACT_API_ENV = {
    "MIXUP_STUDIES_HOME",
    "MIXUP_STUDIES_DATABASE_URL",
    "MIXUP_STUDIES_LAUNCHER",
    "MIXUP_STUDIES_RAY_JOBS_URL",
    "MIXUP_STUDIES_TRACKING_URI",
    "MIXUP_STUDIES_RESULTS_URI",
    "MIXUP_STUDIES_DATA_DIR",
    "MIXUP_STUDIES_ADMIN_TOKEN",
    "MIXUP_STUDIES_MAX_RUNNING_STUDIES",
    "RAY_AUTH_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return resolved(COMPOSE)


@pytest.fixture(scope="module")
def cpu_model() -> dict[str, Any]:
    return resolved(COMPOSE, COMPOSE_CPU)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping, please"
    return {k: str(v) for k, v in environment.items()}


def test_the_stack_has_every_service(model: dict[str, Any]) -> None:
    assert set(model["services"]) == SERVICES


def test_every_service_is_healthchecked_or_one_shot(model: dict[str, Any]) -> None:
    services = model["services"]
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"minio-init"}
    for name, service in services.items():
        if name in one_shot:
            assert "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: {check['test']}"
        assert {"interval", "timeout", "retries"} <= set(check), f"{name}: {sorted(check)}"


def test_dependencies_wait_for_health_or_completion(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must name a condition for each dependency"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if services[target].get("restart") == "no":
                assert condition == "service_completed_successfully", f"{name} → {target}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} → {target}: {condition}"
                assert services[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"


def test_dependency_graph_is_acyclic_and_ordered(model: dict[str, Any]) -> None:
    services = model["services"]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"dependency cycle through {name}"
        if name in order:
            return
        visiting.add(name)
        for target in services[name].get("depends_on", {}):
            visit(target)
        visiting.discard(name)
        order.append(name)

    for name in sorted(services):
        visit(name)
    assert order.index("postgres") < order.index("mlflow") < order.index("ray-head") < order.index("ray-worker")
    assert order.index("ray-head") < order.index("api")
    assert order.index("minio-init") < order.index("mlflow")


def test_every_variable_is_in_env_example_and_documented() -> None:
    used = referenced_variables(load_raw(COMPOSE)) | referenced_variables(load_raw(COMPOSE_CPU))
    example = read_env_file(ENV_EXAMPLE)
    docs = documented_variables(ENV_EXAMPLE)
    assert used - set(example) == set(), "variables used by compose but missing from .env.example"
    assert set(example) - used == set(), "variables in .env.example that compose never uses"
    undocumented = sorted(k for k in example if len(docs.get(k, "")) < 15)
    assert undocumented == [], "every variable needs a comment saying what it is"
    assert bare_variables(load_raw(COMPOSE)) == set(), "use ${VAR}, not $VAR (or $$VAR for the container)"


def test_secrets_come_from_env_and_are_required() -> None:
    raw = load_raw(COMPOSE)
    blocks = [s.get("environment", {}) for s in raw["services"].values()] + [raw["x-ray-env"]]
    for block in blocks:
        for key, value in block.items():
            if SECRET_KEY.search(key) or "DATABASE_URL" in key or "STORE_URI" in key:
                assert "${" in str(value), f"{key} has an inline value: secrets come from .env"
    for secret in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "RAY_AUTH_TOKEN", "MIXUP_STUDIES_ADMIN_TOKEN"):
        env = read_env_file(ENV_EXAMPLE)
        assert env[secret].startswith("change-me"), f".env.example must hold a placeholder for {secret}"
        del env[secret]
        with pytest.raises(MissingVariable, match=secret):
            resolved(COMPOSE, env=env)


def test_resolved_model_has_no_leftover_variables(model: dict[str, Any], cpu_model: dict[str, Any]) -> None:
    # Only $${...} escapes survive, for the shells of minio-init and the postgres healthcheck.
    shell_side = {"minio-init": ["command"], "postgres": ["healthcheck"]}
    for name, service in (model["services"] | cpu_model["services"]).items():
        checked = {k: v for k, v in service.items() if k not in shell_side.get(name, [])}
        assert re.findall(r"\$\{[^}]*\}", repr(checked)) == [], name


def test_api_gets_the_service_contract(model: dict[str, Any]) -> None:
    env = env_of(model["services"]["api"])
    assert set(env) >= CONTRACT_API_ENV
    assert env["MIXUP_STUDIES_LAUNCHER"] == "ray_jobs"
    assert env["MIXUP_STUDIES_RAY_JOBS_URL"] == "http://ray-head:8265"
    assert env["MIXUP_STUDIES_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MIXUP_STUDIES_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["MIXUP_STUDIES_DATABASE_URL"].endswith("@postgres:5432/mixup_studies")
    assert env["MIXUP_STUDIES_RESULTS_URI"].startswith("s3://")
    assert env["RAY_AUTH_MODE"] == "token"
    assert int(env["MIXUP_STUDIES_MAX_RUNNING_STUDIES"]) >= 1
    assert env["MIXUP_STUDIES_MLFLOW_UI_PORT"] == "0"  # MLflow is its own service
    # The API hands its data dir to the drivers it launches on the head: it must mean the same path there.
    assert env["MIXUP_STUDIES_DATA_DIR"] == env_of(model["services"]["ray-head"])["MIXUP_STUDIES_DATA_DIR"]


def test_ray_nodes_share_storage_auth_and_tracking(model: dict[str, Any]) -> None:
    api_env = env_of(model["services"]["api"])
    for name in RAY_NODES:
        node = model["services"][name]
        env = env_of(node)
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"] == api_env["RAY_AUTH_TOKEN"]
        assert env["MIXUP_STUDIES_RESULTS_URI"] == api_env["MIXUP_STUDIES_RESULTS_URI"]
        assert env["MIXUP_STUDIES_TRACKING_URI"] == "http://mlflow:5000"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert re.fullmatch(r"\d+(\.\d+)?[kmg]b?", str(node["shm_size"]).lower()), f"{name}: shm_size"
        assert node["command"][:2] == ["ray", "start"] and "--block" in node["command"]
    assert "--head" in model["services"]["ray-head"]["command"]
    assert "--address=ray-head:6379" in model["services"]["ray-worker"]["command"]


def test_ray_worker_reserves_gpus_and_scales(model: dict[str, Any]) -> None:
    worker = model["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert str(devices[0]["count"]) == "all" or int(devices[0]["count"]) >= 1
    # --scale ray-worker=N needs no fixed name and no host port.
    assert "container_name" not in worker
    assert "ports" not in worker


def test_only_the_api_is_published_beyond_loopback(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            if name == "api":
                continue
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    head_ports = model["services"]["ray-head"]["ports"]
    assert head_ports == ["127.0.0.1:8265:8265"], "the Ray dashboard runs submitted code: loopback only"


def test_images_are_pinned_and_builds_exist(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        image = service["image"]
        if "build" in service:
            build = service["build"]
            context = (DOCKER_DIR / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), f"{name}: {build}"
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: unpinned image {image}"


def test_volumes_are_declared_and_bind_mounts_exist(model: dict[str, Any]) -> None:
    declared = set(model.get("volumes", {}))
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DOCKER_DIR / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    assert {"postgres-data", "minio-data"} <= declared


def test_mlflow_uses_postgres_and_serves_s3_artifacts(model: dict[str, Any]) -> None:
    mlflow = model["services"]["mlflow"]
    env = env_of(mlflow)
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "--serve-artifacts" in mlflow["command"]
    assert "--artifacts-destination=s3://mlflow-artifacts" in mlflow["command"]
    assert any(a.startswith("--allowed-hosts=") and "mlflow:5000" in a for a in mlflow["command"])
    # Separate databases: MLflow and the service both keep an `alembic_version` table.
    assert env["MLFLOW_BACKEND_STORE_URI"].rsplit("/", 1)[1] != "mixup_studies"


def test_bucket_init_creates_both_buckets(model: dict[str, Any]) -> None:
    init = model["services"]["minio-init"]
    script = " ".join(init["command"])
    assert "mc mb --ignore-existing" in script
    env = env_of(init)
    assert {env["MLFLOW_BUCKET"], env["RAY_RESULTS_BUCKET"]} == {"mlflow-artifacts", "ray-results"}
    assert env_of(model["services"]["api"])["MIXUP_STUDIES_RESULTS_URI"].startswith(
        f"s3://{env['RAY_RESULTS_BUCKET']}/"
    )


def test_cpu_override_drops_gpus_and_uses_cpu_torch(cpu_model: dict[str, Any]) -> None:
    worker = cpu_model["services"]["ray-worker"]
    assert "deploy" not in worker
    assert "--num-gpus=0" in worker["command"]
    for name in RAY_NODES:
        node = cpu_model["services"][name]
        assert node["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
        assert node["image"].startswith("mixup-studies/ray:cpu-")
        assert node["shm_size"]
        assert node["healthcheck"], "the override keeps the base file's healthchecks"
    assert cpu_model["services"]["api"] == resolved(COMPOSE)["services"]["api"]


def test_services_run_with_a_read_only_root_filesystem(model: dict[str, Any]) -> None:
    # MinIO's images are never run here (they cannot be pulled on the build hosts): left as they come.
    for name in ("postgres", "mlflow", "ray-head", "ray-worker", "api"):
        service = model["services"][name]
        assert service.get("read_only") is True, name
        assert "/tmp" in service["tmpfs"], f"{name}: /tmp must stay writable"
    assert "/var/run/postgresql" in model["services"]["postgres"]["tmpfs"], "the server's socket dir"


@pytest.fixture(scope="module")
def test_model() -> dict[str, Any]:
    env = read_env_file(ENV_EXAMPLE) | {"SHARED_STORE_DIR": "/var/tmp/shared"}
    return resolved(COMPOSE, COMPOSE_CPU, COMPOSE_TEST, env=env)


def test_test_override_replaces_object_storage_by_a_shared_volume(test_model: dict[str, Any]) -> None:
    services = test_model["services"]
    # MinIO stays in compose.yaml for users, behind a profile the test never enables.
    assert services["minio"]["profiles"] == services["minio-init"]["profiles"] == ["s3"]
    assert not any("minio" in str(s.get("depends_on", {})) for n, s in services.items() if not n.startswith("minio"))
    assert "--artifacts-destination=/shared/mlflow-artifacts" in services["mlflow"]["command"]
    for name in ("mlflow", *RAY_NODES, "api"):
        assert "shared-store:/shared" in services[name]["volumes"], name
    for name in (*RAY_NODES, "api"):
        assert env_of(services[name])["MIXUP_STUDIES_RESULTS_URI"] == "/shared/ray-results", name
    assert services["postgres"]["image"].startswith("mixup-studies/postgres:15-"), "the local stand-in"
    store = test_model["volumes"]["shared-store"]["driver_opts"]
    assert (store["type"], store["o"], store["device"]) == ("none", "bind", "/var/tmp/shared")
    with pytest.raises(MissingVariable, match="SHARED_STORE_DIR"):
        resolved(COMPOSE, COMPOSE_CPU, COMPOSE_TEST)


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False)
    return [docker, "compose"] if probe.returncode == 0 else None


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, COMPOSE_CPU]], ids=["gpu", "cpu"])
def test_docker_compose_config_validates(files: list[Path]) -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip("no docker compose v2 plugin here; the structural tests above stand in for it")
    args = [*command, "--env-file", str(ENV_EXAMPLE)]
    for path in files:
        args += ["-f", str(path)]
    result = subprocess.run([*args, "config", "--quiet"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
