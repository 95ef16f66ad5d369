#!/bin/sh
# Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d).
# The study service and MLflow each get their own database: both manage their
# schema with Alembic and would fight over one `alembic_version` table.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"${MLFLOW_DB}\" OWNER \"${POSTGRES_USER}\";"
