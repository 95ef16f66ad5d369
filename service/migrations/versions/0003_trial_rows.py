"""trials in their own table; a study's trial counts and best trial on its row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Each study's ``trials`` JSON (every TrialRecord, rewritten whole on each progress read) becomes one row
per trial in ``trials``, and the study row gains what a status GET needs (``trial_counts``,
``best_trial``), so that neither the dispatcher nor the API handles every trial of a study each time.
The JSON column is dropped, not left unused: it would keep up to megabytes per study that nothing
reads any longer, and a column still there invites a reader to use it, stale. The downgrade writes the
rows back into it.

Columns of ``studies`` are dropped in place (``recreate="never"``: SQLite's own DROP COLUMN, SQLite >=
3.35), never by batch mode's copy of the table: dropping the old ``studies`` would cascade (foreign keys
are on) and delete every trial row. Any later migration that rebuilds ``studies`` must mind the same.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from mixup_core import metrics

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the tables as this revision sees them (the models may change later).
_studies = sa.table(
    "studies",
    sa.column("seq", sa.Integer()),
    sa.column("spec", sa.JSON()),
    sa.column("trials", sa.JSON()),
    sa.column("trial_counts", sa.JSON()),
    sa.column("best_trial", sa.JSON()),
    sa.column("progress_at", sa.DateTime(timezone=True)),
)
_trials = sa.table(
    "trials",
    sa.column("study_seq", sa.Integer()),
    sa.column("trial_id", sa.String(200)),
    sa.column("run_id", sa.String(64)),
    sa.column("status", sa.String(16)),
    sa.column("epochs", sa.Integer()),
    sa.column("params", sa.JSON()),
    sa.column("metrics", sa.JSON()),
    sa.column("error", sa.Text()),
    sa.column("started_ms", sa.BigInteger()),
    sa.column("ended_ms", sa.BigInteger()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_FIELDS = ("trial_id", "run_id", "status", "epochs", "params", "metrics", "error", "started_ms", "ended_ms")


def upgrade() -> None:
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("study_seq", sa.Integer(), sa.ForeignKey("studies.seq", ondelete="CASCADE"), nullable=False),
        sa.Column("trial_id", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("study_seq", "trial_id", name="uq_trials_study_trial"),
    )
    op.create_index("ix_trials_study_start", "trials", ["study_seq", "started_ms", "trial_id"])
    op.create_index("ix_trials_study_updated", "trials", ["study_seq", "updated_at"])
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("trial_counts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("best_trial", sa.JSON(), nullable=True))
    _move_json_into_rows(op.get_bind())
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("trials")


def _move_json_into_rows(bind: sa.Connection) -> None:
    """Each study's JSON trials into rows, one study at a time (a study's JSON can be megabytes)."""
    seqs = bind.execute(sa.select(_studies.c.seq).where(_studies.c.trials.is_not(None))).scalars().all()
    for seq in seqs:
        row = bind.execute(
            sa.select(_studies.c.spec, _studies.c.trials, _studies.c.progress_at).where(_studies.c.seq == seq)
        ).one()
        if row.trials is None:  # JSON null (what a None became): nothing stored yet
            continue
        records = [t for t in row.trials or [] if isinstance(t, dict) and t.get("trial_id")]
        records = list({t["trial_id"]: t for t in records}.values())  # one row per trial id: the last wins
        stamp = row.progress_at or datetime.now(UTC)
        if records:
            bind.execute(sa.insert(_trials), [_row(seq, t, stamp) for t in records])
        counts: dict[str, int] = {}
        for t in records:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        spec = row.spec if isinstance(row.spec, dict) else json.loads(row.spec or "{}")
        bind.execute(
            sa.update(_studies)
            .where(_studies.c.seq == seq)
            .values(trial_counts=counts, best_trial=_best(spec, records))
        )


def _row(seq: int, trial: dict[str, Any], stamp: datetime) -> dict[str, Any]:
    values = {name: trial.get(name) for name in _FIELDS}
    values.update(epochs=values["epochs"] or 0, params=values["params"] or {}, metrics=values["metrics"] or {})
    return {"study_seq": seq, **values, "updated_at": stamp}


def _best(spec: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """service.schemas.best_trial at this revision, on the JSON records."""
    metric = spec.get("metric") or metrics.MEDIAN_TEST_ERROR
    mode = spec.get("mode") or ("min" if metric in metrics.LOWER_IS_BETTER else "max")
    scored = [t for t in trials if t.get("status") != "failed" and isinstance((t.get("metrics") or {}).get(metric), int | float)]
    if not scored:
        return None
    sign = 1.0 if mode == "min" else -1.0
    best = min(scored, key=lambda t: sign * t["metrics"][metric])
    return {"trial_id": best["trial_id"], "metric": metric, "value": best["metrics"][metric],
            "params": best.get("params") or {}, "status": best["status"]}  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("trials", sa.JSON(), nullable=True))
    bind = op.get_bind()
    seqs = bind.execute(sa.select(_trials.c.study_seq).distinct()).scalars().all()
    for seq in seqs:
        rows = bind.execute(
            sa.select(*(_trials.c[name] for name in _FIELDS))
            .where(_trials.c.study_seq == seq)
            .order_by(_trials.c.started_ms, _trials.c.trial_id)
        ).all()
        trials = [dict(r._mapping) for r in rows]
        bind.execute(sa.update(_studies).where(_studies.c.seq == seq).values(trials=trials))
    with op.batch_alter_table("studies", recreate="never") as batch:
        batch.drop_column("best_trial")
        batch.drop_column("trial_counts")
    op.drop_index("ix_trials_study_updated", "trials")
    op.drop_index("ix_trials_study_start", "trials")
    op.drop_table("trials")
