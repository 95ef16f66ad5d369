"""tokens: expiry, revocation, last use and a public prefix

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Every new column is nullable, so existing tokens keep working unchanged: no expiry, not revoked, never
used (as far as anyone knows), no prefix (only the SHA-256 of their secret was ever stored).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("prefix", "expires_at", "revoked_at", "last_used_at")


def upgrade() -> None:
    # Batch mode: plain ADD COLUMN on both databases, and a table copy where SQLite cannot alter in place.
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("prefix", sa.String(16), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
