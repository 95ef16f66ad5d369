"""docker/k8s: YAML that parses, objects that are shaped like their schemas, and the same wiring as compose.

``kubectl apply --dry-run=client`` needs an API server for discovery even in client mode, so offline
we run ``kubectl kustomize`` (where kubectl exists) and check the objects against the fields of their
schemas (Kubernetes core/apps v1 and KubeRay's ``ray.io/v1`` RayCluster).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "docker" / "k8s"
NAMESPACE = "mixup-studies"
KNOWN = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("ray.io/v1", "RayCluster"),
}
CONTAINER_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
}
POD_FIELDS = {
    "containers",
    "initContainers",
    "volumes",
    "securityContext",
    "tolerations",
    "nodeSelector",
    "affinity",
    "serviceAccountName",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "imagePullSecrets",
    "priorityClassName",
}
RAY_START_PARAMS = {"dashboard-host", "num-cpus", "num-gpus", "block", "port", "resources", "metrics-export-port"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml" for d in documents(p)]


def objects(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in manifests() if d["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in objects(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = [(f"Deployment/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for d in objects("Deployment")]
    for cluster in objects("RayCluster"):
        out.append(("RayCluster head", cluster["spec"]["headGroupSpec"]["template"]["spec"]))
        out += [(f"RayCluster {g['groupName']}", g["template"]["spec"]) for g in cluster["spec"]["workerGroupSpecs"]]
    return out


def test_every_manifest_is_a_known_object_in_the_namespace() -> None:
    found = manifests()
    assert {d["kind"] for _, d in found} == {k for _, k in KNOWN}
    for filename, doc in found:
        assert (doc["apiVersion"], doc["kind"]) in KNOWN, f"{filename}: {doc['apiVersion']} {doc['kind']}"
        meta = doc["metadata"]
        assert meta["name"] and set(meta) <= {"name", "namespace", "labels", "annotations"}, filename
        if doc["kind"] != "Namespace":
            assert meta["namespace"] == NAMESPACE, filename


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = documents(K8S / "kustomization.yaml")[0]
    assert kustomization["namespace"] == NAMESPACE
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == files


def test_kubectl_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(kinds) == sorted(d["kind"] for _, d in manifests() if d["kind"] != "Secret")


def test_pods_and_containers_use_only_schema_fields() -> None:
    for where, pod in pod_specs():
        assert set(pod) <= POD_FIELDS, f"{where}: {set(pod) - POD_FIELDS}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == 1000, where
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            assert set(container) <= CONTAINER_FIELDS, f"{where}: {set(container) - CONTAINER_FIELDS}"
            assert container["name"] and container["image"].startswith("mixup-studies/"), where
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where}: mount {mount['name']} has no volume"
            for port in container.get("ports", []):
                assert isinstance(port["containerPort"], int), where
            for env in container.get("env", []):
                assert set(env) in ({"name", "value"}, {"name", "valueFrom"}), f"{where}: {env}"
            limits = container["resources"]["limits"]
            assert "cpu" in limits and "memory" in limits, where


def test_config_and_secret_references_resolve() -> None:
    config = one("ConfigMap", "mixup-studies-config")["data"]
    secret = one("Secret", "mixup-studies-secrets")["stringData"]
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values must be strings"
    assert all(v.startswith(("change-me", "postgresql+psycopg://")) for v in secret.values())
    assert all("change-me" in v for v in secret.values()), "the template holds placeholders only"
    containers = [c for _, pod in pod_specs() for c in pod["containers"]]
    cluster = objects("RayCluster")[0]
    env_lists = [c.get("env", []) for c in containers] + [cluster["spec"]["autoscalerOptions"]["env"]]
    for env_list in env_lists:
        for env in env_list:
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["name"] == "mixup-studies-secrets"
                assert ref["secretKeyRef"]["key"] in secret, env
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in config, env
    for container in containers:
        for source in container.get("envFrom", []):
            assert source == {"configMapRef": {"name": "mixup-studies-config"}}, "secrets go key by key"


def test_same_wiring_as_compose() -> None:
    config = one("ConfigMap", "mixup-studies-config")["data"]
    assert config["MIXUP_STUDIES_LAUNCHER"] == "ray_jobs"
    assert config["MIXUP_STUDIES_TRACKING_URI"] == "http://mlflow:5000"
    assert config["MIXUP_STUDIES_RESULTS_URI"].startswith("s3://")
    assert config["RAY_AUTH_MODE"] == "token"
    cluster = one("RayCluster", "mixup-ray")
    assert config["MIXUP_STUDIES_RAY_JOBS_URL"] == f"http://{cluster['metadata']['name']}-head-svc:8265"
    api = one("Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in api["env"]} | set(config)
    assert {
        "MIXUP_STUDIES_HOME",
        "MIXUP_STUDIES_DATABASE_URL",
        "MIXUP_STUDIES_ADMIN_TOKEN",
        "RAY_AUTH_TOKEN",
        "MIXUP_STUDIES_MAX_RUNNING_STUDIES",
        "MIXUP_STUDIES_DATA_DIR",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    } <= names
    assert api["args"] == ["mixup-studies", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mlflow = one("Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "--serve-artifacts" in mlflow["args"]
    assert {e["name"] for e in mlflow["env"]} >= {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_S3_ENDPOINT_URL"}


def test_api_runs_once_and_is_replaced_not_overlapped() -> None:
    api = one("Deployment", "api")
    assert api["spec"]["replicas"] == 1
    assert api["spec"]["strategy"]["type"] == "Recreate"


def test_deployments_and_services_select_each_other() -> None:
    for deployment in objects("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
        ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        services = [s for s in objects("Service") if s["spec"]["selector"].items() <= labels.items()]
        assert len(services) == 1, deployment["metadata"]["name"]
        assert services[0]["spec"]["type"] == "ClusterIP"
        for port in services[0]["spec"]["ports"]:
            assert port["targetPort"] in ports and isinstance(port["port"], int)


def test_raycluster_has_head_and_autoscaled_gpu_workers() -> None:
    cluster = one("RayCluster", "mixup-ray")
    spec = cluster["spec"]
    assert set(spec) <= {
        "rayVersion",
        "enableInTreeAutoscaling",
        "autoscalerOptions",
        "headGroupSpec",
        "workerGroupSpecs",
        "suspend",
        "headServiceAnnotations",
        "managedBy",
        "gcsFaultToleranceOptions",
    }
    assert spec["rayVersion"] == "2.60.0"
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    assert set(head) <= {"serviceType", "rayStartParams", "template", "enableIngress", "headService"}
    assert head["serviceType"] == "ClusterIP", "never expose the dashboard/job server"
    assert head["rayStartParams"]["num-gpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert "gpu" in groups
    for group in groups.values():
        assert set(group) <= {
            "groupName",
            "replicas",
            "minReplicas",
            "maxReplicas",
            "rayStartParams",
            "template",
            "numOfHosts",
            "idleTimeoutSeconds",
            "scaleStrategy",
            "suspend",
        }
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for params in [head["rayStartParams"]] + [g["rayStartParams"] for g in groups.values()]:
        assert set(params) <= RAY_START_PARAMS
        assert all(isinstance(v, str) for v in params.values()), "rayStartParams values are strings"
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == 1 == int(groups["gpu"]["rayStartParams"]["num-gpus"])


def test_ray_pods_have_shm_auth_and_shared_storage() -> None:
    config = one("ConfigMap", "mixup-studies-config")["data"]
    for where, pod in pod_specs():
        if not where.startswith("RayCluster"):
            continue
        volumes = {v["name"]: v for v in pod["volumes"]}
        container = pod["containers"][0]
        shm = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert shm and volumes[shm[0]["name"]]["emptyDir"]["medium"] == "Memory", where
        names = {e["name"] for e in container["env"]} | set(config)
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "MIXUP_STUDIES_RESULTS_URI", "AWS_ENDPOINT_URL"} <= names, where
