"""Ledger: the one-reversal-per-journal rule as a partial unique index.

Revision ID: 0005_ledger_reverses_partial
Revises: 0004_inbox_waiting_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ledger_reverses_partial"
down_revision = "0004_inbox_waiting_index"
branch_labels = None
depends_on = None

NOT_NULL = sa.text("reverses_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("ledger_journals") as batch:
        batch.drop_constraint("uq_ledger_journals_reverses_id", type_="unique")
        batch.create_index("uq_ledger_journals_reverses", ["reverses_id"], unique=True,
                           postgresql_where=NOT_NULL, sqlite_where=NOT_NULL)


def downgrade() -> None:
    with op.batch_alter_table("ledger_journals") as batch:
        batch.drop_index("uq_ledger_journals_reverses")
        batch.create_unique_constraint("uq_ledger_journals_reverses_id", ["reverses_id"])
