"""Rate limits (flask-limiter) on the routes that make accounts or move money.

One table, by method and route, so no domain's views carry a decorator and a new route under
a limited prefix is limited the day it lands. Each rule has a per-API-key and a per-IP budget,
shared by every route of the rule (five sign-ups per IP means across creators, fans and
brands). A request without a key (a guest tip) counts against its IP twice over, which is the
point. Counters live in Redis in production (``CREATORPAY_RATE_LIMIT_STORAGE``, by default
the broker when it is Redis) and in memory on the embedded default, so they are per process
there. A refusal is ``429 rate_limited`` in the contract's error shape with ``Retry-After``.

Behind a load balancer set ``CREATORPAY_PROXY_HOPS`` so the client's address, not the
balancer's, is the IP that is counted.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from payments.config import Config
from payments.errors import error_response


@dataclass(frozen=True)
class LimitRule:
    name: str
    # Route rules (as Flask spells them) or prefixes ending in "/" that this rule covers.
    routes: tuple[str, ...]
    per_key: str | None
    per_ip: str | None
    methods: tuple[str, ...] = ("POST",)

    def covers(self, rule: str) -> bool:
        return any(rule == r or (r.endswith("/") and rule.startswith(r)) for r in self.routes)


RULES: tuple[LimitRule, ...] = (
    LimitRule("signup", ("/v1/creators", "/v1/fans", "/v1/brands"),
              per_key=None, per_ip="20 per hour"),
    LimitRule("tips", ("/v1/tips", "/v1/tips/"), per_key="60 per minute", per_ip="120 per minute"),
    LimitRule("subscriptions", ("/v1/subscriptions", "/v1/subscriptions/", "/v1/tiers",
                                "/v1/tiers/"),
              per_key="60 per minute", per_ip="120 per minute", methods=("POST", "PATCH")),
    LimitRule("deals", ("/v1/deals", "/v1/deals/"), per_key="120 per minute",
              per_ip="240 per minute"),
    LimitRule("payouts", ("/v1/creators/me/payouts",), per_key="10 per minute",
              per_ip="30 per minute"),
    LimitRule("connect", ("/v1/creators/me/connect",), per_key="10 per minute",
              per_ip="30 per minute"),
)


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _api_key_or_ip() -> str:
    """The caller's key (as a digest: keys never sit in the counters' store), else the IP."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and len(header) > 7:
        return "key:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()[:32]
    return "ip:" + _client_ip()


def storage_uri(config: Config) -> str:
    if config.rate_limit_storage:
        return config.rate_limit_storage
    if config.broker_url.startswith(("redis://", "rediss://")):
        return config.broker_url
    return "memory://"


def init_app(app: Flask, config: Config) -> Limiter | None:
    """Limit every route a rule covers (call once every blueprint is registered)."""
    if config.proxy_hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops)
    if not config.rate_limits:
        return None
    limiter = Limiter(_client_ip, app=app, storage_uri=storage_uri(config), headers_enabled=True,
                      key_prefix="creatorpay", strategy="moving-window",
                      # A counters' store that is down must not take the API down with it.
                      swallow_errors=True, in_memory_fallback_enabled=True)
    decorators = []
    for rule in RULES:
        methods = list(rule.methods)
        if rule.per_key:
            decorators.append((rule, limiter.shared_limit(
                rule.per_key, scope=f"{rule.name}:key", key_func=_api_key_or_ip,
                methods=methods)))
        if rule.per_ip:
            decorators.append((rule, limiter.shared_limit(
                rule.per_ip, scope=f"{rule.name}:ip", key_func=_client_ip, methods=methods)))
    for url_rule in app.url_map.iter_rules():
        for rule, decorate in decorators:
            if rule.covers(url_rule.rule) and set(rule.methods) & (url_rule.methods or set()):
                view: Any = app.view_functions[url_rule.endpoint]
                app.view_functions[url_rule.endpoint] = decorate(view)

    @app.errorhandler(RateLimitExceeded)
    def _limited(exc: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        wait = max(1, math.ceil(current.reset_at - time.time())) if current else 1
        resp = error_response(
            429, "rate_limited",
            f"Too many requests: at most {exc.limit.limit} here. Retry in {wait} s.")
        resp.headers["Retry-After"] = str(wait)
        return resp

    return limiter
