"""The sandbox's Stripe model: the core (payments, refunds, disputes, balance, events, clock)
plus subscriptions/invoices and Connect (accounts, transfers, payouts)."""

from __future__ import annotations

from payments.sandbox._connect import ConnectMixin
from payments.sandbox._subscriptions import SubscriptionsMixin
from payments.sandbox.model import ApiError, Ctx

__all__ = ["ApiError", "Ctx", "Sandbox"]


class Sandbox(SubscriptionsMixin, ConnectMixin):
    """All sandbox state. Thread-safe through ``self.lock``."""
