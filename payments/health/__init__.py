"""Liveness, readiness and worker heartbeats."""

from payments.domains import Domain

DOMAIN = Domain(
    name="health",
    models=["payments.health.models"],
    views="payments.health.views",
    tasks="tasks.health",
)
