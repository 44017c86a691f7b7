"""Tip abuse rules: card fingerprints and velocity indexes on tips; creators blocked from tips.

The fan's single-column index gives way to (fan_id, created), which serves the same lookups
and the velocity count.

Revision ID: 0010_tip_abuse_rules
Revises: 0009_payouts_statements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_tip_abuse_rules"
down_revision = "0009_payouts_statements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_fingerprint", sa.String(length=64), nullable=True))
        batch_op.drop_index(batch_op.f("ix_tips_fan_id"))
        batch_op.create_index("ix_tips_fan_id_created", ["fan_id", "created"], unique=False)
        batch_op.create_index("ix_tips_guest_email_created", ["guest_email", "created"],
                              unique=False)
        batch_op.create_index("ix_tips_card_fingerprint_created", ["card_fingerprint", "created"],
                              unique=False)
    with op.batch_alter_table("creators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tips_blocked_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("tips_blocked_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("creators", schema=None) as batch_op:
        batch_op.drop_column("tips_blocked_at")
        batch_op.drop_column("tips_blocked_reason")
    with op.batch_alter_table("tips", schema=None) as batch_op:
        batch_op.drop_index("ix_tips_card_fingerprint_created")
        batch_op.drop_index("ix_tips_guest_email_created")
        batch_op.drop_index("ix_tips_fan_id_created")
        batch_op.create_index(batch_op.f("ix_tips_fan_id"), ["fan_id"], unique=False)
        batch_op.drop_column("card_fingerprint")
