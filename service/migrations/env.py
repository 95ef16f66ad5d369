"""Alembic environment: run migrations on the engine :func:`service.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from service.models import Base

engine = context.config.attributes.get("engine")
assert isinstance(engine, Engine), "run migrations through service.db.migrate"

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
