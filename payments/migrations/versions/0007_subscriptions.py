"""subscriptions: tiers, their prices, subscriptions, their invoices and refunds

Revision ID: 0007_subscriptions
Revises: 0006_ledger_entries_check
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_subscriptions"
down_revision = "0006_ledger_entries_check"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('creator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('interval', sa.String(length=8), nullable=False),
    sa.Column('trial_days', sa.BigInteger(), nullable=True),
    sa.Column('max_subscribers', sa.BigInteger(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('stripe_product_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_price_id', sa.String(length=255), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['creator_id'], ['creators.id'], name=op.f('fk_tiers_creator_id_creators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tiers')),
    sa.UniqueConstraint('public_id', name=op.f('uq_tiers_public_id')),
    sa.UniqueConstraint('stripe_product_id', name=op.f('uq_tiers_stripe_product_id'))
    )
    op.create_index('ix_tiers_creator_id_id', 'tiers', ['creator_id', 'id'], unique=False)
    op.create_table('subscriptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('creator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stripe_price_id', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('interval', sa.String(length=8), nullable=False),
    sa.Column('stripe_subscription_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_item_id', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('current_period_start', sa.BigInteger(), nullable=True),
    sa.Column('current_period_end', sa.BigInteger(), nullable=True),
    sa.Column('trial_end', sa.BigInteger(), nullable=True),
    sa.Column('canceled_at', sa.BigInteger(), nullable=True),
    sa.Column('ended_at', sa.BigInteger(), nullable=True),
    sa.Column('latest_invoice_id', sa.String(length=255), nullable=True),
    sa.Column('client_secret', sa.String(length=255), nullable=True),
    sa.Column('failure_code', sa.String(length=100), nullable=True),
    sa.Column('failure_message', sa.String(length=500), nullable=True),
    sa.Column('stripe_state_at', sa.BigInteger(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['creator_id'], ['creators.id'], name=op.f('fk_subscriptions_creator_id_creators')),
    sa.ForeignKeyConstraint(['fan_id'], ['fans.id'], name=op.f('fk_subscriptions_fan_id_fans')),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_subscriptions_tier_id_tiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
    sa.UniqueConstraint('public_id', name=op.f('uq_subscriptions_public_id')),
    sa.UniqueConstraint('stripe_subscription_id', name=op.f('uq_subscriptions_stripe_subscription_id'))
    )
    op.create_index('ix_subscriptions_creator_id_id', 'subscriptions', ['creator_id', 'id'], unique=False)
    op.create_index('ix_subscriptions_fan_id_id', 'subscriptions', ['fan_id', 'id'], unique=False)
    op.create_index('ix_subscriptions_tier_id_status', 'subscriptions', ['tier_id', 'status'], unique=False)
    op.create_table('tier_prices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stripe_price_id', sa.String(length=255), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('interval', sa.String(length=8), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], name=op.f('fk_tier_prices_tier_id_tiers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_prices')),
    sa.UniqueConstraint('stripe_price_id', name=op.f('uq_tier_prices_stripe_price_id'))
    )
    op.create_index(op.f('ix_tier_prices_tier_id'), 'tier_prices', ['tier_id'], unique=False)
    op.create_table('subscription_invoices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stripe_invoice_id', sa.String(length=255), nullable=False),
    sa.Column('subscription_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('creator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('amount_due', sa.BigInteger(), nullable=False),
    sa.Column('amount_paid', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('billing_reason', sa.String(length=40), nullable=True),
    sa.Column('attempt_count', sa.BigInteger(), nullable=False),
    sa.Column('period_start', sa.BigInteger(), nullable=True),
    sa.Column('period_end', sa.BigInteger(), nullable=True),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('charge_id', sa.String(length=255), nullable=True),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False),
    sa.Column('booked', sa.Boolean(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('paid_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['creators.id'], name=op.f('fk_subscription_invoices_creator_id_creators')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_invoices_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_invoices')),
    sa.UniqueConstraint('charge_id', name=op.f('uq_subscription_invoices_charge_id')),
    sa.UniqueConstraint('stripe_invoice_id', name=op.f('uq_subscription_invoices_stripe_invoice_id'))
    )
    op.create_index(op.f('ix_subscription_invoices_creator_id'), 'subscription_invoices', ['creator_id'], unique=False)
    op.create_index(op.f('ix_subscription_invoices_payment_intent_id'), 'subscription_invoices', ['payment_intent_id'], unique=False)
    op.create_index('ix_subscription_invoices_subscription_id_id', 'subscription_invoices', ['subscription_id', 'id'], unique=False)
    op.create_table('subscription_refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('public_id', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=50), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['subscription_invoices.id'], name=op.f('fk_subscription_refunds_invoice_id_subscription_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_refunds')),
    sa.UniqueConstraint('public_id', name=op.f('uq_subscription_refunds_public_id')),
    sa.UniqueConstraint('stripe_refund_id', name=op.f('uq_subscription_refunds_stripe_refund_id'))
    )
    op.create_index(op.f('ix_subscription_refunds_invoice_id'), 'subscription_refunds', ['invoice_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_subscription_refunds_invoice_id'), table_name='subscription_refunds')
    op.drop_table('subscription_refunds')
    op.drop_index('ix_subscription_invoices_subscription_id_id', table_name='subscription_invoices')
    op.drop_index(op.f('ix_subscription_invoices_payment_intent_id'), table_name='subscription_invoices')
    op.drop_index(op.f('ix_subscription_invoices_creator_id'), table_name='subscription_invoices')
    op.drop_table('subscription_invoices')
    op.drop_index(op.f('ix_tier_prices_tier_id'), table_name='tier_prices')
    op.drop_table('tier_prices')
    op.drop_index('ix_subscriptions_tier_id_status', table_name='subscriptions')
    op.drop_index('ix_subscriptions_fan_id_id', table_name='subscriptions')
    op.drop_index('ix_subscriptions_creator_id_id', table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_index('ix_tiers_creator_id_id', table_name='tiers')
    op.drop_table('tiers')
