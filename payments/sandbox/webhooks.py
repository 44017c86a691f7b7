"""Webhook delivery: signed POSTs to loopback endpoints, retries with backoff, and chaos.

Deliveries run in background threads. Each attempt is signed afresh with the real
wall-clock time (never the sandbox clock), exactly as Stripe signs. Failures (non-2xx,
connection errors, timeouts) are retried with a short, capped backoff. Chaos mode
duplicates, delays and reorders deliveries at a seedable rate.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from payments.gateway import sign_payload

DEFAULT_BACKOFF = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    enabled_events: list[str] = field(default_factory=lambda: ["*"])

    def wants(self, event_type: str) -> bool:
        for pattern in self.enabled_events:
            if pattern == "*" or pattern == event_type or (
                    pattern.endswith(".*") and event_type.startswith(pattern[:-1])):
                return True
        return False

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "enabled_events": self.enabled_events}


@dataclass
class Delivery:
    endpoint_id: str
    event_id: str
    event_type: str
    payload: bytes
    attempts: int = 0
    duplicate: bool = False


@dataclass
class Chaos:
    duplicate_rate: float = 0.0
    max_delay_ms: int = 0
    shuffle: bool = False
    seed: int | None = None

    def public(self) -> dict[str, Any]:
        return {"duplicate_rate": self.duplicate_rate, "max_delay_ms": self.max_delay_ms,
                "shuffle": self.shuffle, "seed": self.seed}


class Dispatcher:
    """Delivers events to endpoints from a few worker threads."""

    def __init__(self, *, backoff: tuple[float, ...] = DEFAULT_BACKOFF, max_attempts: int = 40,
                 workers: int = 4, timeout: float = 10.0) -> None:
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.endpoints: dict[str, Endpoint] = {}
        self.chaos = Chaos()
        self._rng = random.Random()  # noqa: S311 - chaos, not crypto
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._inflight: Counter[str] = Counter()
        self._queued: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []  # last deliveries, for debugging
        self._stop = False
        self._threads = [threading.Thread(target=self._work, name=f"sandbox-webhooks-{i}",
                                          daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------ configuration

    def add_endpoint(self, url: str, secret: str | None = None,
                     enabled_events: list[str] | None = None) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid webhook url: {url!r}")
        ep = Endpoint(id="we_" + secrets.token_hex(12), url=url,
                      secret=secret or "whsec_" + secrets.token_hex(16),
                      enabled_events=enabled_events or ["*"])
        with self._cond:
            self.endpoints[ep.id] = ep
        return ep

    def remove_endpoint(self, endpoint_id: str) -> bool:
        with self._cond:
            found = self.endpoints.pop(endpoint_id, None) is not None
            kept = [item for item in self._queue if item[2].endpoint_id != endpoint_id]
            heapq.heapify(kept)
            self._queue = kept
            self._queued.pop(endpoint_id, None)
            self._cond.notify_all()
            return found

    def set_chaos(self, *, duplicate_rate: float = 0.0, max_delay_ms: int = 0,
                  shuffle: bool = False, seed: int | None = None) -> Chaos:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        if max_delay_ms < 0:
            raise ValueError("max_delay_ms must be >= 0")
        with self._cond:
            self.chaos = Chaos(duplicate_rate, max_delay_ms, shuffle, seed)
            self._rng = random.Random(seed)  # noqa: S311
        return self.chaos

    def reset(self) -> None:
        with self._cond:
            self._queue.clear()
            self._queued.clear()
            self.chaos = Chaos()
            self.stats.clear()
            self.log.clear()
            self._cond.notify_all()

    # ------------------------------------------------------------ queueing

    def on_event(self, event: dict[str, Any], payload: bytes) -> None:
        with self._cond:
            for ep in self.endpoints.values():
                if not ep.wants(event["type"]):
                    continue
                d = Delivery(ep.id, event["id"], event["type"], payload)
                self._push(d, self._chaos_delay())
                if self.chaos.duplicate_rate and self._rng.random() < self.chaos.duplicate_rate:
                    dup = Delivery(ep.id, event["id"], event["type"], payload, duplicate=True)
                    self.stats["duplicates_injected"] += 1
                    self._push(dup, self._chaos_delay(always=True))

    def _chaos_delay(self, always: bool = False) -> float:
        c = self.chaos
        delay = 0.0
        if c.max_delay_ms:
            delay = self._rng.uniform(0, c.max_delay_ms / 1000.0)
        if c.shuffle:
            delay += self._rng.uniform(0, 0.25)
        return delay

    def _push(self, d: Delivery, delay: float) -> None:
        heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), d))
        self._queued[d.endpoint_id] += 1
        self._cond.notify()

    def pending(self, endpoint_id: str | None = None) -> int:
        with self._cond:
            if endpoint_id is not None:
                return self._queued[endpoint_id] + self._inflight[endpoint_id]
            return sum(self._queued.values()) + sum(self._inflight.values())

    def wait_idle(self, timeout: float = 10.0, endpoint_id: str | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending(endpoint_id) == 0:
                return True
            time.sleep(0.02)
        return self.pending(endpoint_id) == 0

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"pending": sum(self._queued.values()) + sum(self._inflight.values()),
                    "endpoints": [ep.public() for ep in self.endpoints.values()],
                    "chaos": self.chaos.public(), **dict(self.stats)}

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=2)

    # ------------------------------------------------------------ workers

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    if self._queue:
                        wait = self._queue[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(min(wait, 0.5))
                    else:
                        self._cond.wait(0.5)
                if self._stop:
                    return
                _, _, d = heapq.heappop(self._queue)
                ep = self.endpoints.get(d.endpoint_id)
                self._queued[d.endpoint_id] -= 1
                if self._queued[d.endpoint_id] <= 0:
                    del self._queued[d.endpoint_id]
                if ep is None:
                    continue
                self._inflight[d.endpoint_id] += 1
            try:
                ok, status, error = self._post(ep, d)
            finally:
                with self._cond:
                    self._inflight[d.endpoint_id] -= 1
                    if self._inflight[d.endpoint_id] <= 0:
                        del self._inflight[d.endpoint_id]
            with self._cond:
                d.attempts += 1
                self.stats["attempts"] += 1
                self.log.append({"event": d.event_id, "type": d.event_type, "endpoint": ep.id,
                                 "attempt": d.attempts, "status": status, "error": error})
                if len(self.log) > 2000:
                    del self.log[:1000]
                if ok:
                    self.stats["delivered"] += 1
                    continue
                self.stats["failed_attempts"] += 1
                if d.attempts >= self.max_attempts or ep.id not in self.endpoints:
                    self.stats["exhausted"] += 1
                    continue
                delay = self.backoff[min(d.attempts - 1, len(self.backoff) - 1)]
                self._push(d, delay)

    def _post(self, ep: Endpoint, d: Delivery) -> tuple[bool, int | None, str | None]:
        parts = urlsplit(ep.url)
        host = parts.hostname or "127.0.0.1"
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, parts.port or 443, timeout=self.timeout)
        else:
            conn = http.client.HTTPConnection(host, parts.port or 80, timeout=self.timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign_payload(d.payload, ep.secret),
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
        }
        try:
            conn.request("POST", path, body=d.payload, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return 200 <= resp.status < 300, resp.status, None
        except (OSError, http.client.HTTPException) as exc:
            return False, None, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
