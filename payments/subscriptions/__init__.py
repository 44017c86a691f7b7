"""Membership subscriptions: a creator's tiers, fans' subscriptions, and their invoices."""

from payments.domains import Domain

DOMAIN = Domain(
    name="subscriptions",
    models=["payments.subscriptions.models"],
    views="payments.subscriptions.views",
    events="payments.subscriptions.events",
    profile="payments.subscriptions.service:profile_fields",
)
