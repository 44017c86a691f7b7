"""subscriptions: tiers and subscriptions

Revision ID: 0007_subscriptions
Revises: 0006_ledger_entries_check
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - the domain's tables go here
from alembic import op  # noqa: F401

revision = "0007_subscriptions"
down_revision = "0006_ledger_entries_check"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
