"""The sandbox's HTTP server: Stripe's REST conventions on ``/v1``, JSON controls on ``/_sandbox``.

Run it with ``python -m payments.sandbox --port 12111 --webhook-url URL --webhook-secret S``,
from code with :func:`serve` (blocking) or :func:`start_in_thread` (tests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from payments.sandbox.engine import Sandbox
from payments.sandbox.forms import FormError, parse_form
from payments.sandbox.model import ApiError, Ctx, _rand
from payments.sandbox.webhooks import DEFAULT_BACKOFF, Dispatcher

MAX_BODY = 1 << 20


@dataclass
class Fault:
    """Answer the next ``count`` matching ``/v1`` requests with ``status`` (or drop them)."""

    status: int = 500
    count: int = 1
    path_prefix: str = "/v1/"
    method: str | None = None
    after: bool = False  # process the request first, then fail the answer ("lost response")
    mode: str = "error"  # "error" or "close" (drop the connection, no answer)
    hits: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        return (self.count > 0 and path.startswith(self.path_prefix)
                and (self.method is None or self.method == method))


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, *, backoff: tuple[float, ...] = DEFAULT_BACKOFF,
                 max_attempts: int = 40, tick: float = 0.05) -> None:
        super().__init__((host, port), _Handler)
        self.sandbox = Sandbox()
        self.dispatcher = Dispatcher(backoff=backoff, max_attempts=max_attempts)
        self.sandbox.add_listener(self.dispatcher.on_event)
        h, p = self.server_address[:2]
        self.base_url = f"http://{h if isinstance(h, str) else h.decode()}:{p}"
        self.sandbox.base_url = self.base_url
        self.faults: list[Fault] = []
        self.faults_lock = threading.Lock()
        self._tick = tick
        self._ticking = True
        self._ticker = threading.Thread(target=self._run_ticker, name="sandbox-clock",
                                        daemon=True)
        self._ticker.start()

    def _run_ticker(self) -> None:
        while self._ticking:
            try:
                self.sandbox.run_due()
            except Exception as exc:  # noqa: BLE001 - a failing job must not stop the clock
                print(f"sandbox: scheduled job failed: {exc!r}", file=sys.stderr)
            time.sleep(self._tick)

    def take_fault(self, method: str, path: str, after: bool) -> Fault | None:
        with self.faults_lock:
            for f in self.faults:
                if f.after == after and f.matches(method, path):
                    f.count -= 1
                    f.hits += 1
                    if f.count <= 0:
                        self.faults.remove(f)
                    return f
        return None

    def close_all(self) -> None:
        self._ticking = False
        self.shutdown()
        self.server_close()
        self.dispatcher.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-sandbox/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    # ------------------------------------------------------------ plumbing

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"))

    def _error(self, err: ApiError, headers: dict[str, str] | None = None) -> None:
        self._send(err.status, json.dumps(err.body()).encode("utf-8"), headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "invalid_request_error", "Request body too large.")
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            split = urlsplit(self.path)
            path = split.path
            if path.startswith("/v1/") or path == "/v1":
                self._api(path, split.query)
            elif path.startswith("/_sandbox/"):
                self._control(path, split.query)
            elif path in ("/", "/healthz"):
                self._json(200, {"ok": True, "sandbox": True})
            else:
                self._error(ApiError(404, "invalid_request_error",
                                     f"Unrecognized request URL ({self.command}: {path})."))
        except ApiError as e:
            self._error(e)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - answer like Stripe, never a stack trace page
            print(f"sandbox: internal error on {self.command} {self.path}: {exc!r}",
                  file=sys.stderr)
            import traceback

            traceback.print_exc()
            self._error(ApiError(500, "api_error", "An unknown error occurred in the sandbox."))

    # ------------------------------------------------------------ /v1

    def _api(self, path: str, query: str) -> None:
        method = self.command
        body = self._body()
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not key.startswith("sk_test_") or len(key) <= len("sk_test_"):
            shown = (key[:8] + "*" * max(0, len(key) - 12) + key[-4:]) if key else ""
            msg = (f"Invalid API Key provided: {shown}" if key
                   else "You did not provide an API key.")
            self._error(ApiError(401, "invalid_request_error", msg))
            return
        fault = self.server.take_fault(method, path, after=False)
        if fault is not None:
            self._fault(fault)
            return
        try:
            if method == "POST":
                ctype = self.headers.get("Content-Type", "application/x-www-form-urlencoded")
                if "json" in ctype:
                    raise ApiError(400, "invalid_request_error",
                                   "Invalid request: request parameters should be url-encoded.")
                params = parse_form(body.decode("utf-8"))
            else:
                params = parse_form(query)
        except (FormError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_request_error", str(exc)) from exc
        request_id = "req_" + _rand(14)
        ctx = Ctx(account=self.headers.get("Stripe-Account") or None, request_id=request_id,
                  idempotency_key=self.headers.get("Idempotency-Key") or None,
                  api_version=self.headers.get("Stripe-Version") or None)
        status, out, replayed = self.server.sandbox.api(method, path, params, ctx)
        headers = {"Request-Id": request_id,
                   "Stripe-Version": ctx.api_version or self.server.sandbox.api_version}
        if ctx.idempotency_key:
            headers["Idempotency-Key"] = ctx.idempotency_key
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        if method == "POST" and ctx.idempotency_key is None:
            pass
        fault = self.server.take_fault(method, path, after=True)
        if fault is not None:
            self._fault(fault)
            return
        self._send(status, out, headers)

    def _fault(self, fault: Fault) -> None:
        if fault.mode == "close":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        type_ = "rate_limit_error" if fault.status == 429 else (
            "api_error" if fault.status >= 500 else "invalid_request_error")
        code = "rate_limit" if fault.status == 429 else None
        self._error(ApiError(fault.status, type_, f"Sandbox fault injection ({fault.status}).",
                             code=code))

    # ------------------------------------------------------------ /_sandbox

    def _json_body(self) -> dict[str, Any]:
        raw = self._body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "invalid_request_error", f"Invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request_error", "Expected a JSON object.")
        return data

    def _control(self, path: str, query: str) -> None:  # noqa: C901 - a flat routing table
        sb = self.server.sandbox
        disp = self.server.dispatcher
        parts = path.strip("/").split("/")[1:]
        m = self.command
        body = self._json_body() if m == "POST" else {}
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        match (m, parts):
            case ("GET", ["clock"]):
                self._json(200, {"now": sb.now(), "offset": sb.offset})
            case ("POST", ["clock", "advance"]):
                seconds = body.get("seconds")
                if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
                    raise ApiError(400, "invalid_request_error",
                                   "seconds must be a non-negative integer", param="seconds")
                ran = sb.advance(seconds)
                self._json(200, {"now": sb.now(), "offset": sb.offset, "jobs_run": ran})
            case ("POST", ["clock", "run_due"]):
                self._json(200, {"jobs_run": sb.run_due(), "now": sb.now()})
            case ("POST", ["disputes", dp_id, "close"]):
                self._json(200, sb.close_dispute(dp_id, str(body.get("outcome", ""))))
            case ("POST", ["charges", ch_id, "dispute"]):
                amount = body.get("amount")
                self._json(200, sb.create_dispute(
                    ch_id, str(body.get("reason", "fraudulent")),
                    amount if isinstance(amount, int) else None))
            case ("POST", ["payment_intents", pi_id, "authenticate"]):
                self._json(200, sb.authenticate(pi_id, str(body.get("outcome", "succeed"))))
            case ("POST", ["accounts", acct_id, "onboard"]):
                self._json(200, sb.onboard_account(acct_id))
            case ("GET", ["onboard", acct_id]):
                sb.onboard_account(acct_id)
                target = q.get("return_url")
                if target:
                    self._send(302, b"", {"Location": target})
                else:
                    self._send(200, b"<p>Sandbox onboarding complete.</p>",
                               content_type="text/html")
            case ("POST", ["accounts", acct_id, "payout_failures"]):
                sb.set_payout_failures(acct_id, bool(body.get("enabled", True)))
                self._json(200, {"account": acct_id, "payout_failures": bool(body.get(
                    "enabled", True))})
            case ("POST", ["payouts", po_id, "fail"]):
                self._json(200, sb.fail_payout(po_id, str(body.get("code", "account_closed"))))
            case ("POST", ["balance", "fund"]):
                amount, currency = body.get("amount"), str(body.get("currency", "usd")).lower()
                if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                    raise ApiError(400, "invalid_request_error", "amount must be > 0",
                                   param="amount")
                self._json(200, sb.fund_balance(amount, currency, body.get("account")))
            case ("POST", ["subscriptions", "config"]):
                final = body.get("final_status", "canceled")
                if final not in ("canceled", "unpaid"):
                    raise ApiError(400, "invalid_request_error",
                                   "final_status must be canceled or unpaid")
                sb.subscription_final_status = final
                self._json(200, {"final_status": final})
            case ("GET", ["webhooks", "endpoints"]):
                self._json(200, {"data": [ep.public() for ep in disp.endpoints.values()]})
            case ("POST", ["webhooks", "endpoints"]):
                url = body.get("url")
                if not isinstance(url, str):
                    raise ApiError(400, "invalid_request_error", "url is required", param="url")
                try:
                    ep = disp.add_endpoint(url, body.get("secret"), body.get("enabled_events"))
                except ValueError as exc:
                    raise ApiError(400, "invalid_request_error", str(exc), param="url") from exc
                self._json(200, {**ep.public(), "secret": ep.secret})
            case ("DELETE", ["webhooks", "endpoints", ep_id]):
                self._json(200, {"id": ep_id, "deleted": disp.remove_endpoint(ep_id)})
            case ("POST", ["webhooks", "chaos"]):
                try:
                    chaos = disp.set_chaos(
                        duplicate_rate=float(body.get("duplicate_rate", 0.0)),
                        max_delay_ms=int(body.get("max_delay_ms", 0)),
                        shuffle=bool(body.get("shuffle", False)),
                        seed=body.get("seed") if isinstance(body.get("seed"), int) else None)
                except (TypeError, ValueError) as exc:
                    raise ApiError(400, "invalid_request_error", str(exc)) from exc
                self._json(200, chaos.public())
            case ("GET", ["webhooks", "pending"]):
                self._json(200, {"pending": disp.pending(q.get("endpoint"))})
            case ("GET", ["webhooks", "stats"]):
                self._json(200, disp.snapshot())
            case ("GET", ["webhooks", "log"]):
                self._json(200, {"data": list(disp.log[-500:])})
            case ("POST", ["faults"]):
                fault = Fault(status=int(body.get("status", 500)),
                              count=int(body.get("count", 1)),
                              path_prefix=str(body.get("path_prefix", "/v1/")),
                              method=body.get("method"), after=bool(body.get("after", False)),
                              mode=str(body.get("mode", "error")))
                with self.server.faults_lock:
                    self.server.faults.append(fault)
                self._json(200, {"faults": len(self.server.faults)})
            case ("DELETE", ["faults"]):
                with self.server.faults_lock:
                    self.server.faults.clear()
                self._json(200, {"faults": 0})
            case ("GET", ["stats"]):
                with sb.lock:
                    self._json(200, {"objects": dict(sb.created_counts), "requests": sb.requests,
                                     "jobs_scheduled": len(sb.jobs),
                                     "webhooks": disp.snapshot()})
            case ("GET", ["objects", kind]):
                md = {k[9:-1]: v for k, v in q.items()
                      if k.startswith("metadata[") and k.endswith("]")}
                ids = sb.count_objects(kind, md)
                self._json(200, {"count": len(ids), "ids": ids})
            case ("POST", ["reset"]):
                sb.reset()
                disp.reset()
                with self.server.faults_lock:
                    self.server.faults.clear()
                self._json(200, {"reset": True})
            case _:
                raise ApiError(404, "invalid_request_error",
                               f"Unrecognized sandbox control ({m}: {path}).")


# ---------------------------------------------------------------- entry points


def start_in_thread(host: str = "127.0.0.1", port: int = 0, webhook_url: str | None = None,
                    webhook_secret: str | None = None, *,
                    backoff: Sequence[float] = DEFAULT_BACKOFF,
                    max_attempts: int = 40) -> tuple[SandboxServer, str]:
    """Start the sandbox in a daemon thread; returns ``(server, base_url)``.

    Stop it with ``server.close_all()``.
    """
    server = SandboxServer(host, port, backoff=tuple(backoff), max_attempts=max_attempts)
    if webhook_url:
        server.dispatcher.add_endpoint(webhook_url, webhook_secret)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="stripe-sandbox", daemon=True)
    thread.start()
    return server, server.base_url


def serve(host: str = "127.0.0.1", port: int = 12111, webhook_url: str | None = None,
          webhook_secret: str | None = None, *, quiet: bool = False) -> None:
    """Run the sandbox in the foreground until interrupted (Ctrl-C)."""
    server = SandboxServer(host, port)
    secret = webhook_secret
    if webhook_url:
        secret = secret or "whsec_" + secrets.token_hex(16)
        server.dispatcher.add_endpoint(webhook_url, secret)
    if not quiet:
        print(f"Stripe sandbox listening on {server.base_url}", flush=True)
        if webhook_url:
            print(f"  delivering webhooks to {webhook_url}", flush=True)
            if not webhook_secret:
                print(f"  webhook signing secret: {secret}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.close_all()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m payments.sandbox",
                                     description="Offline Stripe sandbox (loopback only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)
    serve(args.host, args.port, args.webhook_url, args.webhook_secret, quiet=args.quiet)
    return 0
