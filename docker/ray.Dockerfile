# syntax=docker/dockerfile:1.7
# Ray head and worker nodes: Ray + the project + torch.
#
# GPU (default): torch's CUDA wheels bundle the CUDA runtime, cuDNN and NCCL
# as pip packages, so a plain Python base suffices; the host needs only the
# NVIDIA driver and the NVIDIA Container Toolkit. Pick the CUDA flavour that
# your driver supports through TORCH_INDEX_URL (cu126, cu128, cu130, ...).
#   docker build -f docker/ray.Dockerfile -t mixup-studies/ray:gpu .
# CPU variant (machines without GPUs; also what the CPU-only override uses):
#   docker build -f docker/ray.Dockerfile \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t mixup-studies/ray:cpu .
#
# Every node runs the same image: the study driver (`mixup-studies run`, a Ray
# job entrypoint) runs on the head, trials import mixup_core/studies on workers.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------- builder ----
FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_INDEX_URL=
ARG RAY_VERSION=2.60.0
ARG MLFLOW_VERSION=3.17.2
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# 1. torch first, from the index TORCH_INDEX_URL names (a CUDA or the CPU
#    build), or the default index when it is empty. The index is an extra one:
#    torch's own dependencies may live only on the default index.
RUN python -m venv /opt/venv \
    && PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" pip install --no-cache-dir \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# 2. Dependencies from pyproject.toml only (cached until it changes). Ray is
#    pinned: every node of a cluster and every client must run the same Ray.
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; deps = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps))" \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
        "ray[tune,default]==${RAY_VERSION}" "mlflow==${MLFLOW_VERSION}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# The venv finds the project in /opt/project (a .pth file): the project is the
# image's last layer of its own, not part of the multi-GB venv layer.
RUN python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'mixup_studies_project.pth').write_text('/opt/project\n')"

# ---------------------------------------------------------------- project ----
# 3. The source last, in a stage of its own: a source edit rebuilds only this
#    stage and the runtime's last layer (/opt/project, a few MB); --no-deps
#    because everything is already in the venv.
FROM builder AS project
COPY README.md /src/README.md
COPY mixup_core /src/mixup_core
COPY studies /src/studies
COPY service /src/service
RUN pip install --no-cache-dir --target /opt/project --no-deps /src

# ---------------------------------------------------------------- runtime ----
FROM ${PYTHON_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/project/bin:/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MIXUP_STUDIES_HOME=/home/ray/.mixup-studies \
    MIXUP_STUDIES_DATA_DIR=/data \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    RAY_AUTH_MODE=token
RUN groupadd --gid 1000 ray \
    && useradd --uid 1000 --gid ray --home-dir /home/ray --create-home --shell /bin/bash ray \
    && mkdir -p /data /tmp/ray \
    && chown ray:ray /data /tmp/ray
COPY --from=builder /opt/venv /opt/venv
COPY --from=project /opt/project /opt/project
USER 1000:1000
WORKDIR /home/ray
# 6379 GCS, 8265 dashboard + job server, 10001 Ray client (unused here).
EXPOSE 6379 8265
# A node is healthy while its raylet lives (`ray start --block` exits when it dies).
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import glob, sys; sys.exit(0 if 'raylet\\n' in [open(f).read() for f in glob.glob('/proc/[0-9]*/comm')] else 1)"]
# compose / KubeRay give the real command (`ray start --head ...` or `--address ...`).
CMD ["ray", "start", "--head", "--block", "--dashboard-host", "0.0.0.0"]
