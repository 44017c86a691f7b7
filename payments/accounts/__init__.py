"""Creators, fans, brands and their API keys."""

from payments.domains import Domain

DOMAIN = Domain(
    name="accounts",
    models=["payments.accounts.models"],
    views="payments.accounts.views",
)
