"""sponsored-post deals, milestones and their history

Revision ID: 0008_deals
Revises: 0007_subscriptions
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - the domain's tables go here
from alembic import op  # noqa: F401

revision = "0008_deals"
down_revision = "0007_subscriptions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
