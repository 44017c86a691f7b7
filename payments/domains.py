"""The one list of domains, and what each adds to the application.

Every domain package says what it adds in its ``__init__.py``, as ``DOMAIN = Domain(...)``:
its models, blueprints, CLI commands, Celery tasks, event routes and public-profile fields,
each named by module so that a process loads only what it runs (the web tier never imports
the tasks, a worker never imports the views). A new domain is one package and one line in
:data:`DOMAINS`. The app factory, the Celery app, the CLI, Alembic and the webhook pipeline
read this list; none of them names a domain.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from payments.events import EventRoutes

# In the order the contract lists them: their blueprints (and so the OpenAPI document) follow
# it. Lower layers first: a domain may use the ones above it, never one below.
DOMAINS: tuple[str, ...] = (
    "payments.health",
    "payments.accounts",
    "payments.ledger",
    "payments.tips",
    "payments.subscriptions",
    "payments.deals",
    "payments.payouts",
    "payments.statements",
    "payments.reconciliation",
    "payments.dashboard",
    "payments.jobs",
    "webhooks",
)


@dataclass(frozen=True)
class Domain:
    name: str
    # Modules whose import defines the domain's tables.
    models: Sequence[str] = ()
    # A module exporting ``blp`` (or ``blueprints``) and optionally ``init_app(app)``.
    views: str | None = None
    # A module exporting ``commands``: click commands added to ``creatorpay``.
    cli: str | None = None
    # A module whose import registers the domain's Celery tasks.
    tasks: str | None = None
    # A module exporting ``EVENTS``, the domain's :class:`payments.events.EventRoutes`.
    events: str | None = None
    # ``module:function`` of ``(session, creator) -> dict``: fields the domain adds to the
    # creator's public profile (tip-goal progress, tiers).
    profile: str | None = None
    # A module exporting ``collect(session)``: Prometheus metric families read from the
    # database at scrape time (payments/metrics.py).
    metrics: str | None = None
    # Celery beat entries the domain runs: name -> celery ``beat_schedule`` entry.
    beat: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _load(name: str) -> Domain:
    module = importlib.import_module(name)
    domain = getattr(module, "DOMAIN", None)
    if not isinstance(domain, Domain):
        raise TypeError(f"{name} is listed in payments.domains.DOMAINS but has no DOMAIN")
    return domain


def domains(names: Sequence[str] | None = None) -> list[Domain]:
    """The domains, in list order (``names`` replaces the list: tests build throwaway ones)."""
    return [_load(n) for n in (DOMAINS if names is None else names)]


def _modules(attr: str, names: Sequence[str] | None) -> Iterator[tuple[Domain, Any]]:
    for domain in domains(names):
        value = getattr(domain, attr)
        for module_name in (value if isinstance(value, (list, tuple)) else [value]):
            if module_name:
                yield domain, importlib.import_module(module_name)


def metadata(names: Sequence[str] | None = None) -> MetaData:
    """Every table of every domain (Alembic, tests)."""
    from payments.db import Base

    for _ in _modules("models", names):
        pass
    return Base.metadata


def view_modules(names: Sequence[str] | None = None) -> list[ModuleType]:
    """Modules exporting ``blp`` (or ``blueprints``) and optionally ``init_app(app)``."""
    return [module for _, module in _modules("views", names)]


def commands(names: Sequence[str] | None = None) -> list[Any]:
    return [c for _, module in _modules("cli", names) for c in module.commands]


def metrics_modules(names: Sequence[str] | None = None) -> list[ModuleType]:
    """Modules exporting ``collect(session)`` (``GET /metrics``)."""
    return [module for _, module in _modules("metrics", names)]


def register_tasks(names: Sequence[str] | None = None) -> None:
    for _ in _modules("tasks", names):
        pass


def beat_schedule(names: Sequence[str] | None = None) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    for domain in domains(names):
        schedule.update({k: dict(v) for k, v in domain.beat.items()})
    return schedule


def event_routes(names: Sequence[str] | None = None) -> list[tuple[str, EventRoutes]]:
    """(domain name, its routes) for every domain that applies Stripe events."""
    return [(d.name, m.EVENTS) for d, m in _modules("events", names)]


@cache
def _profile_functions(names: tuple[str, ...] | None) -> list[Callable[..., dict[str, Any]]]:
    found = []
    for domain in domains(names):
        if domain.profile:
            module_name, _, attr = domain.profile.partition(":")
            found.append(getattr(importlib.import_module(module_name), attr))
    return found


def profile_fields(session: Any, creator: Any,
                   names: Sequence[str] | None = None) -> dict[str, Any]:
    """What every domain adds to a creator's public profile."""
    extras: dict[str, Any] = {}
    for fn in _profile_functions(tuple(names) if names is not None else None):
        extras.update(fn(session, creator))
    return extras
