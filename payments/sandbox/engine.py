"""The sandbox's Stripe model: :class:`Sandbox` combines the resource families, each a mixin
over ``SandboxCore`` (store, clock, events, routing) that registers its own routes."""

from __future__ import annotations

from payments.sandbox._connect import ConnectMixin
from payments.sandbox._disputes import DisputesMixin
from payments.sandbox._refunds import RefundsMixin
from payments.sandbox._subscriptions import SubscriptionsMixin
from payments.sandbox.model import ApiError, Ctx

__all__ = ["ApiError", "Ctx", "Sandbox"]


class Sandbox(SubscriptionsMixin, RefundsMixin, DisputesMixin, ConnectMixin):
    """All sandbox state. Thread-safe through ``self.lock``.

    Families (each ``_<family>.py``): customers and payment methods, payments (PaymentIntents,
    charges), balance, refunds, disputes, products and prices, subscriptions and invoices,
    Connect. Jobs are methods ``_job_<name>`` found by name, so a family may schedule
    another's (a disputed test card schedules ``auto_dispute``).
    """
