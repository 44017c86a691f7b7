"""Every model, imported so ``Base.metadata`` knows all tables (Alembic, tests)."""

from __future__ import annotations

import importlib

from payments.db import Base

_MODEL_MODULES = (
    "payments.accounts.models",
    "payments.ops",
    "payments.ledger.models",
    "webhooks.models",
    "payments.tips.models",
    "payments.subscriptions.models",
    "payments.deals.models",
    "payments.payouts.models",
    "payments.statements.models",
)

for _name in _MODEL_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _name.startswith(exc.name):
            raise

metadata = Base.metadata
