#!/usr/bin/env bash
# `make images`: build the api, ray and mlflow images (and the local postgres stand-in the
# container test uses) with docker where its daemon answers, else with podman.
#
# Environment (all optional):
#   IMAGE_TAG          tag of every image (default latest)
#   RAY_IMAGE_FLAVOR   cpu (default) or gpu: only the name, mixup-studies/ray:<flavor>-<tag>
#   TORCH_INDEX_URL    extra index torch comes from (empty: the default index). A file://
#                      index (a local directory, as `pip config list` shows on some hosts) is
#                      mounted into the build (podman) or served on 127.0.0.1 (docker).
#   PYTHON_IMAGE       base image (default python:3.11.11-slim-bookworm; where it cannot be
#                      pulled, docker/base-image.sh makes a local Debian stand-in)
#   IMAGES             which to build (default "mlflow ray api postgres")
#   PROJECT_CONTEXT    build context of the api and ray images (default: the repository root)
# Prints one JSON line per image: {"image", "seconds"}.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${IMAGE_TAG:-latest}"
FLAVOR="${RAY_IMAGE_FLAVOR:-cpu}"
IMAGES="${IMAGES:-mlflow ray api postgres}"
CONTEXT="${PROJECT_CONTEXT:-.}"
OFFICIAL_BASE="python:3.11.11-slim-bookworm"
LOCAL_BASE="localhost/mixup-studies/python:3.11-bookworm"

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    ENGINE=docker
elif command -v podman >/dev/null; then
    ENGINE=podman
    # runc + cgroupfs + ulimits: what works on cgroup-v1 hosts without systemd (docker/README.md).
    export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}"
else
    echo "make images: neither a running docker daemon nor podman found (docker/README.md)" >&2
    exit 2
fi

has_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

base_image() {
    if [ -n "${PYTHON_IMAGE:-}" ]; then echo "$PYTHON_IMAGE"; return; fi
    local official="docker.io/library/$OFFICIAL_BASE"
    if has_image "$official" || timeout 120 "$ENGINE" pull -q "$official" >/dev/null 2>&1; then
        echo "$official"
        return
    fi
    if ! has_image "$LOCAL_BASE"; then
        echo "$official cannot be pulled: making $LOCAL_BASE with docker/base-image.sh" >&2
        ENGINE="$(command -v "$ENGINE")" docker/base-image.sh "$LOCAL_BASE" >&2
    fi
    echo "$LOCAL_BASE"
}

server_pid=""
trap '[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true' EXIT

# A file:// index (file:///dir/simple, links relative to /dir) is not visible inside a build:
# podman mounts /dir read-only at the same path for RUN steps (never part of a layer); docker
# gets it served on a fixed loopback port. Either way the URL the build sees does not change
# between builds, so the torch layer stays cached.
INDEX="${TORCH_INDEX_URL:-}"
index_mount=()
serve_torch_index() {
    case "$INDEX" in
        file://*) ;;
        *) return ;;
    esac
    local path="${INDEX#file://}"
    path="$(dirname "${path%/}")"
    if [ "$ENGINE" = podman ]; then
        index_mount=(-v "$path:$path:ro")
        return
    fi
    local port="${TORCH_INDEX_PORT:-8731}"
    python3 -m http.server --bind 127.0.0.1 --directory "$path" "$port" >/dev/null 2>&1 &
    server_pid=$!
    INDEX="http://127.0.0.1:$port/$(basename "${INDEX%/}")/"
    for _ in $(seq 50); do
        python3 -c "import urllib.request; urllib.request.urlopen('$INDEX')" 2>/dev/null && return
        sleep 0.2
    done
    echo "the local torch index $TORCH_INDEX_URL could not be served on 127.0.0.1:$port" >&2
    exit 2
}

build() {  # build pip|apt DOCKERFILE IMAGE CONTEXT [--build-arg ...]
    local kind="$1" dockerfile="$2" image="$3" context="$4"
    shift 4
    local start end mounts=()
    # pip steps: the host's CA bundle (read-only, never part of a layer) lets pip reach the registry
    # as the host does, plus the local torch index if any. apt steps get neither: ssl-cert's
    # post-install script writes into /etc/ssl/certs.
    if [ "$kind" = pip ]; then
        mounts=(-v /etc/ssl/certs:/etc/ssl/certs:ro "${index_mount[@]}")
    fi
    start="$(date +%s%N)"
    if [ "$ENGINE" = docker ]; then
        docker build --network host -f "$dockerfile" -t "$image" "$@" "$context"
    else
        # chroot isolation and the host network: what RUN steps can use on these hosts; the docker
        # format, because OCI images cannot carry a HEALTHCHECK.
        podman build --format docker --layers --isolation chroot --network host \
            "${mounts[@]}" -f "$dockerfile" -t "$image" "$@" "$context"
    fi
    end="$(date +%s%N)"
    local ms=$(((end - start) / 1000000))
    printf '{"image": "%s", "seconds": %d.%d, "engine": "%s"}\n' "$image" $((ms / 1000)) $((ms % 1000 / 100)) "$ENGINE"
}

BASE="$(base_image)"
serve_torch_index
common=(--build-arg "PYTHON_IMAGE=$BASE")
project=("${common[@]}" --build-arg "TORCH_INDEX_URL=$INDEX")
for arg in TORCH_VERSION TORCHVISION_VERSION RAY_VERSION MLFLOW_VERSION; do
    [ -z "${!arg:-}" ] || project+=(--build-arg "$arg=${!arg}")
done

for name in $IMAGES; do
    case "$name" in
        mlflow) build pip docker/mlflow.Dockerfile "mixup-studies/mlflow:$TAG" docker "${common[@]}" ;;
        ray) build pip docker/ray.Dockerfile "mixup-studies/ray:$FLAVOR-$TAG" "$CONTEXT" "${project[@]}" ;;
        api) build pip docker/api.Dockerfile "mixup-studies/api:$TAG" "$CONTEXT" "${project[@]}" ;;
        postgres) build apt docker/postgres/Dockerfile "mixup-studies/postgres:15-$TAG" docker/postgres "${common[@]}" ;;
        *) echo "unknown image $name (mlflow, ray, api, postgres)" >&2; exit 2 ;;
    esac
done
