"""Inbox: a partial index of waiting rows in claim order.

Revision ID: 0004_inbox_waiting_index
Revises: 0003_webhooks_tips
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_inbox_waiting_index"
down_revision = "0003_webhooks_tips"
branch_labels = None
depends_on = None

WAITING = sa.text("status = 'received'")


def upgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_index("ix_webhook_events_due")
        batch.create_index(
            "ix_webhook_events_waiting", ["stripe_created", "id"],
            postgresql_where=WAITING, sqlite_where=WAITING,
        )
        batch.create_index("ix_webhook_events_status", ["status", "id"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_index("ix_webhook_events_status")
        batch.drop_index("ix_webhook_events_waiting")
        batch.create_index("ix_webhook_events_due", ["status", "next_attempt_at", "id"])
