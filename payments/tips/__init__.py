"""Tips: one-off payments from fans (or guests) to creators."""

from payments.domains import Domain

DOMAIN = Domain(
    name="tips",
    models=["payments.tips.models"],
    views="payments.tips.views",
    events="payments.tips.events",
    profile="payments.tips.service:profile_fields",
)
