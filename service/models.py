"""The service's tables (SQLAlchemy 2 declarative); the schema itself is made by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Study lifecycle: queued → running → succeeded | failed | cancelled.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELLED})


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tokens: Mapped[list[Token]] = relationship(back_populates="user")


class Token(Base):
    """An API token; only the SHA-256 of the secret is kept (and, for generated ones, its first characters)."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    prefix: Mapped[str | None] = mapped_column(String(16), doc="The secret's first characters, to tell tokens apart.")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), doc="None: never expires.")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), doc="Throttled: written at most once a minute per token (token_last_used_s)."
    )

    user: Mapped[User] = relationship(back_populates="tokens")


class Study(Base):
    """A submitted study: its spec, lifecycle, driver handle and the last progress read from MLflow."""

    __tablename__ = "studies"

    # seq orders the queue (submission order); id is the public study id (also the Tune/MLflow name).
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(160), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict] = mapped_column(JSON)
    trials_total: Mapped[int] = mapped_column(Integer, default=0, doc="Trials the spec expands to.")
    status: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    launcher: Mapped[str | None] = mapped_column(String(16))
    handle: Mapped[str | None] = mapped_column(String(200), doc="Local: 'pid:starttime'; Ray Jobs: submission id.")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    stop_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    experiment_id: Mapped[str | None] = mapped_column(String(64))
    parent_run_id: Mapped[str | None] = mapped_column(String(64))
    trials: Mapped[list | None] = mapped_column(JSON, doc="The last TrialRecords read, as JSON.")
    progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    owner: Mapped[User] = relationship()
