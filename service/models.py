"""The service's tables (SQLAlchemy 2 declarative); the schema itself is made by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
    # What a status GET needs, kept by the dispatcher with the trial rows, so that no GET reads them.
    trial_counts: Mapped[dict | None] = mapped_column(JSON, doc="Known trials (rows) by status, as stored.")
    best_trial: Mapped[dict | None] = mapped_column(JSON, doc="schemas.BestTrial of the known trials, as JSON.")
    progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), doc="When trials last changed.")

    owner: Mapped[User] = relationship()
    # Its TrialRows go with it: ON DELETE CASCADE in the database (SQLite: foreign_keys=ON, service.db).


class TrialRow(Base):
    """One trial of a study as the dispatcher last read it from MLflow (a studies.records.TrialRecord)."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_seq", "trial_id", name="uq_trials_study_trial"),
        Index("ix_trials_study_start", "study_seq", "started_ms", "trial_id"),  # /trials pages, in start order
        Index("ix_trials_study_updated", "study_seq", "updated_at"),  # /trials?updated_after=
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_seq: Mapped[int] = mapped_column(ForeignKey("studies.seq", ondelete="CASCADE"))
    trial_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, doc="The MLflow run's start_time (ms).")
    ended_ms: Mapped[int | None] = mapped_column(BigInteger, doc="The MLflow run's end_time (ms), once ended.")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="When the dispatcher last changed it.")
