"""payouts, statements and reconciliation

Revision ID: 0009_payouts_statements
Revises: 0008_deals
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - the domain's tables go here
from alembic import op  # noqa: F401

revision = "0009_payouts_statements"
down_revision = "0008_deals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
