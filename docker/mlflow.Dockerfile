# syntax=docker/dockerfile:1.7
# MLflow tracking server with the drivers the official image lacks:
# psycopg (PostgreSQL backend store) and boto3 (S3 / MinIO artifact store).
#   docker build -f docker/mlflow.Dockerfile -t mixup-studies/mlflow docker/
# It needs nothing from the project, so its build context can be docker/.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG MLFLOW_VERSION=3.17.2
ARG PSYCOPG_VERSION=3.3.9
ARG BOTO3_VERSION=1.44.8
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" \
        "psycopg[binary]==${PSYCOPG_VERSION}" "boto3==${BOTO3_VERSION}"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 1000 mlflow \
    && useradd --system --uid 1000 --gid mlflow --home-dir /home/mlflow --create-home mlflow
COPY --from=builder /opt/venv /opt/venv
USER 1000:1000
WORKDIR /home/mlflow
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4).status == 200 else 1)"]
# compose / k8s pass the stores and --allowed-hosts.
ENTRYPOINT ["mlflow", "server"]
CMD ["--host", "0.0.0.0", "--port", "5000"]
