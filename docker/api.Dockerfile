# syntax=docker/dockerfile:1.7
# The REST service (service/), without CUDA.
#
# Build from the repository root:
#   docker build -f docker/api.Dockerfile -t mixup-studies/api .
#
# Why torch is here at all: `studies.spec` composes mixup_core's config models
# (spec validation happens in the API) and mixup_core imports torch, so the
# API needs torch — but only the CPU wheel (~200 MB instead of ~3 GB of CUDA).
# Ray is needed for the Ray Jobs launcher (ray.job_submission), MLflow for
# reading trials and reports; all come from pyproject.toml, so the image can
# never drift from what the tests ran.
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
# 1. torch first, from the index TORCH_INDEX_URL names (the CPU wheels keep this
#    image small), or the default index when it is empty; the next step then finds
#    torch satisfied. The index is an extra one: torch's own dependencies may live
#    only on the default index. An empty PIP_EXTRA_INDEX_URL adds nothing.
RUN python -m venv /opt/venv \
    && PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}" pip install --no-cache-dir \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# 2. The project's dependencies from pyproject.toml alone: this layer is
#    rebuilt only when pyproject.toml changes, not on every source edit.
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
    PYTHONDONTWRITEBYTECODE=1 \
    MIXUP_STUDIES_HOME=/var/lib/mixup-studies \
    MIXUP_STUDIES_DATA_DIR=/data
RUN groupadd --system --gid 1000 app \
    && useradd --system --uid 1000 --gid app --home-dir /home/app --create-home app \
    && mkdir -p /var/lib/mixup-studies /data \
    && chown app:app /var/lib/mixup-studies /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=project /opt/project /opt/project
USER 1000:1000
WORKDIR /home/app
EXPOSE 8000
VOLUME ["/var/lib/mixup-studies", "/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
# Alembic migrations run on start (upgrading = pulling a new image and restarting).
CMD ["mixup-studies", "serve", "--host", "0.0.0.0", "--port", "8000"]
