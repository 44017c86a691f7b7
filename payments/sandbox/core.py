"""The sandbox core: the object store, ids, the clock and its jobs, events, routing, expansion
and lists. The Stripe resources are families of mixins over :class:`SandboxCore`
(``_customers.py``, ``_payments.py``, ...), combined into ``Sandbox`` in ``engine.py``.

Everything runs under one re-entrant lock (``SandboxCore.lock``). The HTTP layer
(``server.py``) parses requests and calls :meth:`SandboxCore.api`; webhook delivery
(``webhooks.py``) listens to :meth:`SandboxCore.add_listener`.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import heapq
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import orjson
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from payments.sandbox import currency as cur
from payments.sandbox.model import (
    DEFAULT_API_VERSION,
    ApiError,
    Ctx,
    Job,
    Obj,
    _rand,
    created_filter,
    invalid,
    missing,
    p_int,
    p_list,
    p_str,
    template,
)

Handler = Callable[..., Obj]
H = TypeVar("H", bound=Handler)

_ROUTES = "_sandbox_routes"  # attribute @route leaves on a handler
_HELP = "Please see https://stripe.com/docs or we can help at https://support.stripe.com/."


def route(method: str, rule: str, params: Iterable[str] | None = None) -> Callable[[H], H]:
    """Serve ``method rule`` with the decorated handler: ``handler(ctx, params, **path_args)``.

    ``rule`` is a werkzeug rule, ``<name>`` for each id in the path (``/v1/customers/<ident>``
    calls ``handler(ctx, params, ident=...)``).
    ``params`` are the parameters the endpoint takes (``expand`` always): Stripe answers
    ``parameter_unknown`` for any other. Without it every parameter is let through (lists,
    whose filters are read where they are used).
    """
    accepted = frozenset({*params, "expand"}) if params is not None else None

    def mark(handler: H) -> H:
        setattr(handler, _ROUTES, (*getattr(handler, _ROUTES, ()), (method, rule, accepted)))
        return handler
    return mark



def _copy(obj: Any) -> Any:
    """A deep copy of a JSON-shaped object, as it would come back from the wire."""
    return orjson.loads(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS))

class SandboxCore:
    """State and the machinery every resource family uses. Thread-safe through ``self.lock``."""

    def __init__(self, *, fee_percent: Decimal = cur.PERCENT_FEE, base_url: str = "") -> None:
        self.lock = threading.RLock()
        self.fee_percent = fee_percent
        self.base_url = base_url
        self._listeners: list[Callable[[Obj, bytes], None]] = []
        cls: type = type(self)  # plain ``type``: mypy does not take ``type[Self]`` as hashable
        self._urls = _url_map(cls).bind("sandbox")
        self.reset()

    # ---------------------------------------------------------------- state

    def reset(self) -> None:
        with self.lock:
            self.offset = 0
            self._now_override: int | None = None
            # The newest due time an advance has run a job at. The advance holds the lock but
            # ``GET /_sandbox/clock`` does not take it: between two jobs it must not answer
            # the time before the advance, or a webhook handled meanwhile (the app asks the
            # clock) is booked weeks before the event it records.
            self._reached = 0
            self.objects: dict[str, Obj] = {}
            self.order: dict[str, list[str]] = {}
            self.index: dict[str, int] = {}
            # Kinds whose stored order is not also ``created`` order (lists then scan it all).
            self.unsorted: set[str] = set()
            self.owner: dict[str, str | None] = {}
            self.internal: dict[str, Obj] = {}
            self.created_counts: Counter[str] = Counter()
            self.jobs: list[Job] = []
            self._seq = itertools.count()
            self.idempotency: dict[tuple[str | None, str], tuple[str, str, str, int, bytes]] = {}
            self.requests = 0
            self.api_version = DEFAULT_API_VERSION
            self._event_buffer: list[Obj] | None = None

    def add_listener(self, fn: Callable[[Obj, bytes], None]) -> None:
        self._listeners.append(fn)

    def now(self) -> int:
        if self._now_override is not None:
            return self._now_override
        return max(int(time.time()) + self.offset, self._reached)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{_rand()}"

    def _store(self, obj: Obj, account: str | None = None) -> Obj:
        kind = obj["object"]
        ids = self.order.setdefault(kind, [])
        if ids and self.objects[ids[-1]].get("created", 0) > obj.get("created", 0):
            self.unsorted.add(kind)
        self.index[obj["id"]] = len(ids)
        ids.append(obj["id"])
        self.objects[obj["id"]] = obj
        self.owner[obj["id"]] = account
        self.created_counts[kind] += 1
        return obj

    def _get(self, kind: str, ident: str | None, *, param: str = "id",
             label: str | None = None, account: str | None | bool = False) -> Obj:
        obj = self.objects.get(ident or "")
        if obj is None or obj["object"] != kind or (
            account is not False and self.owner.get(obj["id"]) != account
        ):
            raise missing(label or kind, ident or "", param)
        return obj

    def _new(self, resource: str, prefix: str | None, **fields: Any) -> Obj:
        obj = template(resource)
        obj.update(fields)
        if prefix is not None:
            obj["id"] = self._id(prefix)
        obj.setdefault("livemode", False)
        if "created" in obj:
            obj["created"] = self.now()
        obj["livemode"] = False
        return obj

    # ---------------------------------------------------------------- clock and jobs

    def schedule(self, due: int, name: str, *args: Any) -> None:
        heapq.heappush(self.jobs, Job(due, next(self._seq), name, args))

    def run_due(self, until: int | None = None) -> int:
        """Run the jobs due by ``until`` (default now), in due order, each at its due time."""
        if until is None and (not self.jobs or self.jobs[0].due > self.now()):
            return 0
        ran = 0
        with self.lock:
            while self.jobs:
                base = int(time.time()) + self.offset
                limit = base if until is None else until
                if self.jobs[0].due > limit:
                    break
                job = heapq.heappop(self.jobs)
                prev = self._now_override
                self._now_override = max(job.due, base)
                self._reached = max(self._reached, self._now_override)
                try:
                    getattr(self, "_job_" + job.name)(*job.args)
                finally:
                    self._now_override = prev
                ran += 1
        return ran

    def advance(self, seconds: int) -> int:
        """Move the clock forward, running everything that falls due on the way."""
        if seconds < 0:
            raise invalid("seconds must be >= 0", "seconds")
        with self.lock:
            target = self.now() + seconds
            ran = self.run_due(until=target)
            self.offset += seconds
            ran += self.run_due()
            return ran

    # ---------------------------------------------------------------- events

    def emit(self, type_: str, obj: Obj, ctx: Ctx | None = None, *,
             previous: Obj | None = None, account: str | None = None) -> Obj:
        data: Obj = {"object": _copy(obj)}
        if previous is not None:
            data["previous_attributes"] = _copy(previous)
        event = self._new("event", "evt", type=type_, data=data)
        event["api_version"] = (ctx.api_version if ctx and ctx.api_version else self.api_version)
        event["request"] = {
            "id": ctx.request_id if ctx else None,
            "idempotency_key": ctx.idempotency_key if ctx else None,
        }
        event["pending_webhooks"] = 0
        if account is not None:
            event["account"] = account
        event["pending_webhooks"] = 1 if self._listeners else 0
        self._store(event, account)
        if self._event_buffer is not None:
            self._event_buffer.append(event)
        else:
            self._deliver(event)
        return event

    def _deliver(self, event: Obj) -> None:
        # Pretty-printed as Stripe sends it; orjson because the json module's encoder with
        # an indent is pure Python (most of a clock advance's time went into it).
        payload = orjson.dumps(event, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        for fn in self._listeners:
            fn(event, payload)

    def hold_events(self) -> None:
        """Buffer events (to send a resource's ``*.created`` first); see :meth:`release_events`."""
        if self._event_buffer is None:
            self._event_buffer = []

    def take_events(self) -> list[Obj]:
        """Stop buffering; return the buffered events (deliver them with :meth:`_deliver`)."""
        buffered, self._event_buffer = self._event_buffer or [], None
        return buffered

    @route("GET", "/v1/events/<ident>")
    def retrieve_event(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("event", ident, account=ctx.account)

    @route("GET", "/v1/events")
    def list_events(self, ctx: Ctx, p: Obj) -> Obj:
        single = p_str(p, "type")
        types = [str(t) for t in p_list(p, "types")]
        if single and types:
            raise invalid("You may only specify one of type and types.", "types")
        if single:
            types = [single]
        exact = {t for t in types if not t.endswith("*")}
        prefixes = tuple(t[:-1] for t in types if t.endswith("*"))

        def pred(o: Obj) -> bool:
            if not types:
                return True
            t = o["type"]
            return t in exact or (bool(prefixes) and t.startswith(prefixes))
        return self._list("event", p, "/v1/events", pred, ctx.account)

    # ---------------------------------------------------------------- dispatch

    def _match(self, method: str, path: str) -> tuple[Handler, Mapping[str, str],
                                                      frozenset[str] | None]:
        try:
            # Stripe ignores slashes at either end (``/v1/customers/`` lists customers).
            endpoint, args = self._urls.match("/" + path.strip("/"), method)
        except MethodNotAllowed:
            raise ApiError(405, "invalid_request_error",
                           f"Unrecognized request URL ({method}: {path}).") from None
        except NotFound:
            raise ApiError(404, "invalid_request_error",
                           f"Unrecognized request URL ({method}: {path}). {_HELP}") from None
        handler: Handler = getattr(self, endpoint.handler)
        return handler, args, endpoint.params

    def api(self, method: str, path: str, params: Obj, ctx: Ctx) -> tuple[int, bytes, bool]:
        """Serve one ``/v1`` request: ``(status, json body, replayed)``.

        Holds the lock for the whole request, so an idempotent replay and the first
        execution can never interleave.
        """
        with self.lock:
            self.requests += 1
            if ctx.api_version:
                self.api_version = ctx.api_version
            key = ctx.idempotency_key if method == "POST" else None
            fingerprint = ""
            if key is not None:
                fingerprint = hashlib.sha256(
                    json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()
                hit = self.idempotency.get((ctx.account, key))
                if hit is not None:
                    h_method, h_path, h_fp, h_status, h_body = hit
                    if (h_method, h_path) != (method, path) or h_fp != fingerprint:
                        err = ApiError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.")
                        return 400, json.dumps(err.body()).encode("utf-8"), False
                    return h_status, h_body, True
            try:
                fn, args, allowed = self._match(method, path)
                if allowed is not None:
                    unknown = sorted(set(params) - allowed)
                    if unknown:
                        raise invalid(f"Received unknown parameter: {unknown[0]}", unknown[0],
                                      "parameter_unknown")
                result = fn(ctx, params, **args)
                expand = [e for e in p_list(params, "expand") if isinstance(e, str)]
                if expand:
                    result = self.expand(result, expand)
                status, body = 200, orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
            except ApiError as e:
                status, body = e.status, json.dumps(e.body()).encode("utf-8")
            if key is not None:
                self.idempotency[(ctx.account, key)] = (method, path, fingerprint, status, body)
            return status, body, False

    # ---------------------------------------------------------------- expansion

    def expand(self, obj: Obj, paths: list[str]) -> Obj:
        for path in paths:
            obj = self._expand_one(obj, path.split("."))
        return obj

    def _expand_one(self, obj: Obj, parts: list[str]) -> Obj:
        if not parts:
            return obj
        key, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and key == "data":
            out = dict(obj)
            out["data"] = [self._expand_one(item, rest) if isinstance(item, dict) else item
                           for item in obj["data"]]
            return out
        if obj.get("object") == "invoice" and key == "payments":
            out = dict(obj)
            pays = [self.objects[i] for i in self.internal.get(obj["id"], {}).get("payments", [])]
            lst: Obj = {"object": "list", "data": pays, "has_more": False,
                        "url": f"/v1/invoices/{obj['id']}/payments"}
            out["payments"] = self._expand_one(lst, rest)
            return out
        if key not in obj:
            raise invalid(f"This property cannot be expanded ({key}).", "expand")
        val = obj[key]
        if isinstance(val, str):
            target = self.objects.get(val)
            if target is None:
                return obj
            out = dict(obj)
            out[key] = self._expand_one(target, rest)
            return out
        if isinstance(val, dict):
            out = dict(obj)
            out[key] = self._expand_one(val, rest)
            return out
        if isinstance(val, list) and rest:
            out = dict(obj)
            out[key] = [self._expand_one(v, rest) if isinstance(v, dict) else v for v in val]
            return out
        return obj

    # ---------------------------------------------------------------- listing

    def _list(self, kind: str, params: Obj, url: str,
              pred: Callable[[Obj], bool] | None = None,
              account: str | None | bool = None) -> Obj:
        limit = p_int(params, "limit")
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise invalid("This value must be between 1 and 100.", "limit")
        created = created_filter(params)
        ids = self.order.get(kind, [])
        after = p_str(params, "starting_after")
        before = p_str(params, "ending_before")

        def ok(i: str) -> bool:
            o = self.objects[i]
            if account is not False and self.owner.get(i) != account:
                return False
            if created is not None and not created(o["created"]):
                return False
            return pred is None or pred(o)

        out: list[Obj] = []
        if before is not None:
            if before not in self.index or self.objects[before]["object"] != kind:
                raise missing(kind, before, "ending_before")
            j = self.index[before] + 1
            while j < len(ids) and len(out) <= limit:
                if ok(ids[j]):
                    out.append(self.objects[ids[j]])
                j += 1
            has_more = len(out) > limit
            out = out[:limit]
            out.reverse()
        else:
            lo, hi = _created_bounds(params) if kind not in self.unsorted else (None, None)
            if after is not None:
                if after not in self.index or self.objects[after]["object"] != kind:
                    raise missing(kind, after, "starting_after")
                j = self.index[after] - 1
            elif hi is not None:
                # Sorted by created: skip everything newer than the range in one step.
                j = bisect.bisect_left(ids, hi, key=lambda i: self.objects[i]["created"]) - 1
            else:
                j = len(ids) - 1
            while j >= 0 and len(out) <= limit:
                if lo is not None and self.objects[ids[j]]["created"] < lo:
                    break  # sorted: nothing older can match
                if ok(ids[j]):
                    out.append(self.objects[ids[j]])
                j -= 1
            has_more = len(out) > limit
            out = out[:limit]
        return {"object": "list", "data": out, "has_more": has_more, "url": url}

    def _iter(self, kind: str) -> Iterator[Obj]:
        for i in self.order.get(kind, []):
            yield self.objects[i]

    # ---------------------------------------------------------------- sandbox helpers

    def count_objects(self, kind: str, metadata: dict[str, str] | None = None) -> list[str]:
        with self.lock:
            out = []
            for o in self._iter(kind):
                md = o.get("metadata") or {}
                if metadata and any(md.get(k) != v for k, v in metadata.items()):
                    continue
                out.append(o["id"])
            return out


def _created_bounds(params: Obj) -> tuple[int | None, int | None]:
    """``created[gte|gt]`` and ``created[lt|lte]`` as ``(lowest, first excluded)``, if given."""
    v = params.get("created")
    if not isinstance(v, dict):
        return None, None
    lo = hi = None
    with contextlib.suppress(TypeError, ValueError):
        if "gte" in v:
            lo = int(v["gte"])
        elif "gt" in v:
            lo = int(v["gt"]) + 1
        if "lt" in v:
            hi = int(v["lt"])
        elif "lte" in v:
            hi = int(v["lte"]) + 1
    return lo, hi


class _Endpoint(NamedTuple):
    handler: str  # the method's name
    params: frozenset[str] | None  # as :func:`route` takes them


@functools.cache
def _url_map(cls: type) -> Map:
    """Every ``@route`` on ``cls`` and its bases as one werkzeug map (built once per class)."""
    rules = [Rule(rule, methods=[method], endpoint=_Endpoint(name, params))
             for name in dir(cls)
             for method, rule, params in getattr(getattr(cls, name), _ROUTES, ())]
    # An empty path part (``/v1//customers``) matches nothing, as at Stripe, not a redirect.
    return Map(rules, merge_slashes=False)
