"""Event type -> the domains that apply it, built from the domain list (``payments.domains``).

The inbox names no domain: each domain's ``EVENTS`` says which event types it handles and
which ``metadata.creatorpay_kind`` values are its own. An event whose object names a kind goes
to the domain owning that kind; one without a kind goes to every domain handling its type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from payments import domains
from payments.events import EventRoutes, Route, kind_of


@dataclass(frozen=True)
class Target:
    domain: str
    routes: EventRoutes
    route: Route


@dataclass(frozen=True)
class RouteTable:
    domains: tuple[tuple[str, EventRoutes], ...]
    by_type: Mapping[str, tuple[Target, ...]]
    owner_of_kind: Mapping[str, str]

    @property
    def handled_types(self) -> frozenset[str]:
        return frozenset(self.by_type)

    def targets(self, event_type: str, obj: Any) -> tuple[Target, ...]:
        """Who applies this event: the kind's owner, or every domain handling the type that
        takes objects of no kind."""
        found = self.by_type.get(event_type, ())
        kind = kind_of(obj)
        if kind is None:
            return tuple(t for t in found if not t.route.own_kinds_only)
        owner = self.owner_of_kind.get(kind)
        return tuple(t for t in found if t.domain == owner)

    def wants(self, event: Any) -> bool:
        """Whether to keep an event: a type we handle, whose object some route would apply.
        An object naming a kind is always kept (no domain here owning it is the worker's
        error to report: a worker older than the web tier)."""
        event_type = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event_type, str) or event_type not in self.by_type:
            return False
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            return True  # malformed: stored, and failed with its reason by the worker
        return kind_of(obj) is not None or bool(self.targets(event_type, obj))

    def reads_ledger(self, event_type: str) -> bool:
        return any(t.route.reads_ledger for t in self.by_type.get(event_type, ()))


@lru_cache(maxsize=8)
def _build(names: tuple[str, ...]) -> RouteTable:
    listed = tuple(domains.event_routes(names))
    by_type: dict[str, list[Target]] = {}
    owners: dict[str, str] = {}
    for name, routes in listed:
        for kind in routes.kinds:
            if kind in owners:
                raise ValueError(
                    f"creatorpay_kind {kind!r} is claimed by {owners[kind]} and {name}")
            owners[kind] = name
        for event_type, route in routes.routes.items():
            by_type.setdefault(event_type, []).append(Target(name, routes, route))
    return RouteTable(listed, {t: tuple(v) for t, v in by_type.items()}, owners)


def route_table() -> RouteTable:
    """The table for the current domain list (rebuilt only when the list changes)."""
    return _build(tuple(domains.DOMAINS))
