"""dashboard sign-ins

Revision ID: 0011_dashboard
Revises: 0010_tip_abuse_rules

The creator dashboard's opened sign-in links (a unique nonce: each link works once) and the
sessions they opened.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_dashboard"
down_revision = "0010_tip_abuse_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("dashboard_sign_ins",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("nonce", sa.String(length=32), nullable=False),
    sa.Column("creator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("created", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.BigInteger(), nullable=False),
    sa.Column("signed_out_at", sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(["creator_id"], ["creators.id"], name=op.f("fk_dashboard_sign_ins_creator_id_creators")),
    sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_dashboard_sign_ins_key_id_api_keys")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sign_ins")),
    sa.UniqueConstraint("nonce", name=op.f("uq_dashboard_sign_ins_nonce"))
    )
    with op.batch_alter_table("dashboard_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dashboard_sign_ins_creator_id"), ["creator_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("dashboard_sign_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dashboard_sign_ins_creator_id"))

    op.drop_table("dashboard_sign_ins")
