"""``creatorpay demo``: the mission, walked through against a running ``make run`` stack.

Everything goes over HTTP, as a client would: the public API (``/v1/...``), the admin API
with the admin key ``creatorpay dev`` keeps in ``var/admin_key``, the sandbox's Stripe API
(to make a fan's card start failing, as a bank would) and its controls (the clock, disputes,
onboarding). Each run signs up its own creators, fans and brand, so runs never collide.

Then it reads the books back and checks them: every monthly statement adds up and chains to
the next, balances equal the statement closings, the figures are what the demo paid (less
Stripe's fees, read from Stripe's balance transactions, and the platform's), the trial
balance is zero per currency, ``ledger verify`` is clean and every day reconciles with
Stripe. Exit 0 when all hold, 1 when any does not, 2 when the stack is not up.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import requests
from rich.console import Console
from rich.table import Table

from payments.money import currency as currency_info
from payments.money import split_fee

T = TypeVar("T")
DAY = 86_400
STATEMENT_FIGURES = ("tips", "subscriptions", "deals", "processor_fees", "platform_fees",
                     "refunds", "disputes", "adjustments", "payouts")
STRIPE_KEY = "sk_test_creatorpay_demo"  # the sandbox takes any sk_test_ key
CHECK_GROUPS = {
    "flows": "every flow ended where it should (tips, renewals, deal, refund, dispute, payout)",
    "statements": "every statement: opening + activity = closing; each opens at the last closing",
    "balances": "each creator's balance equals the last statement's closing, per currency",
    "figures": "statement figures = what the demo paid, less Stripe's fees (its balance "
               "transactions) and the platform's",
    "trial balance": "the trial balance is zero per currency",
    "ledger verify": "ledger verify: every balance equals its entries, every journal balances",
    "reconciliation": "every day of the run reconciles with Stripe, no webhook event failed",
}


class StackDown(Exception):
    """The API or the sandbox does not answer: nothing to demonstrate against."""

    hint = "Run `make run` in another terminal first, then `make demo`."


class NoAdminKey(StackDown):
    hint = ("`creatorpay dev` (`make run`) keeps one in $CREATORPAY_VAR_DIR/admin_key; or "
            "pass --admin-key (`creatorpay admin create-key` makes one).")


class DemoFailed(Exception):
    """A step could not be done (an unexpected answer, a timeout)."""


def default_admin_key(var_dir: Path) -> str | None:
    path = var_dir / "admin_key"
    return path.read_text().strip() if path.exists() else None


def amount_text(amount: int, currency: str, code: bool = True) -> str:
    """Minor units shown in major units, exactly (no float on the way)."""
    exp = currency_info(currency).exponent
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp) if exp else (abs(amount), 0)
    text = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
    return f"{sign}{text} {currency.upper()}" if code else f"{sign}{text}"


@dataclass
class Expected:
    """What the demo paid in, per (creator handle, currency): the statement must say so."""

    figures: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def add(self, handle: str, currency: str, figure: str, amount: int) -> None:
        row = self.figures.setdefault((handle, currency), dict.fromkeys(STATEMENT_FIGURES, 0))
        row[figure] += amount


class Demo:
    def __init__(self, api_url: str, sandbox_url: str, admin_key: str | None,
                 console: Console, platform_fee_rate: Decimal, timeout: float = 120.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.sandbox_url = sandbox_url.rstrip("/")
        self.admin_key = admin_key
        self.console = console
        self.fee_rate = platform_fee_rate
        self.timeout = timeout
        self.http = requests.Session()
        self.run = secrets.token_hex(3)
        self.expected = Expected()
        self.failures: list[str] = []
        self.checks: dict[str, list[bool]] = {}  # group -> outcomes, in CHECK_GROUPS order
        self.started_at = 0  # sandbox time when the demo began

    # -- HTTP -----------------------------------------------------------------------------

    def api(self, method: str, path: str, key: str | None = None, *,
            expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        r = self._request(method, self.api_url + path, headers=headers, **kwargs)
        if r.status_code == 429:
            raise DemoFailed(
                f"{method} {path} was rate limited ({r.json()['error']['message']}). Each run "
                "signs up 5 accounts and the stack allows 20 sign-ups an hour from one "
                "address: wait, or restart it with `CREATORPAY_RATE_LIMITS=off make run`.")
        if r.status_code not in expect:
            raise DemoFailed(f"{method} {path} answered {r.status_code}: {r.text[:400]}")
        return r.json() if r.content else None

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.http.request(method, url, timeout=60, **kwargs)
        except requests.RequestException as exc:
            raise DemoFailed(f"{method} {url}: no answer ({type(exc).__name__}: {exc})") from None

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.api(method, path, self.admin_key, **kwargs)

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self._request(method, f"{self.sandbox_url}/_sandbox{path}", json=body)
        if r.status_code >= 300:
            raise DemoFailed(f"sandbox {method} {path} answered {r.status_code}: {r.text[:400]}")
        return r.json() if r.content else None

    def stripe(self, method: str, path: str, data: dict[str, str] | None = None) -> Any:
        """The sandbox's Stripe REST API (form-encoded, as Stripe's)."""
        r = self._request(method, self.sandbox_url + path, data=data,
                          headers={"Authorization": f"Bearer {STRIPE_KEY}"})
        if r.status_code >= 300:
            raise DemoFailed(f"Stripe {method} {path} answered {r.status_code}: {r.text[:400]}")
        return r.json()

    def now(self) -> int:
        return int(self.control("GET", "/clock")["now"])

    # -- progress and checks --------------------------------------------------------------

    @contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        """One line per step: a spinner while it runs, then a tick and what it showed."""
        notes: list[str] = []
        started = time.monotonic()
        with self.console.status(f"{title}..."):
            yield notes
        took = time.monotonic() - started
        detail = f" [dim]{'; '.join(notes)}[/dim]" if notes else ""
        self.console.print(f"[green]✓[/green] {title}{detail} [dim]({took:.1f}s)[/dim]")

    def wait(self, what: str, predicate: Callable[[], T | None],
             nudge: Callable[[], None] | None = None, timeout: float | None = None) -> T:
        """Poll ``predicate`` until it is truthy (the worker has booked the events).

        ``nudge`` is called every couple of seconds meanwhile (ask a job to run again: the
        app reads the sandbox clock through a one-second cache).
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        last_nudge = time.monotonic()
        if nudge:
            nudge()
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out waiting for {what}")
            if nudge and time.monotonic() - last_nudge > 2:
                nudge()
                last_nudge = time.monotonic()
            time.sleep(0.2)

    def poll(self, what: str, path: str, key: str, done: Callable[[dict[str, Any]], bool],
             nudge: Callable[[], None] | None = None) -> dict[str, Any]:
        """GET ``path`` until ``done`` holds for the answer; answer it."""

        def fetch() -> dict[str, Any] | None:
            got: dict[str, Any] = self.api("GET", path, key)
            return got if done(got) else None

        return self.wait(what, fetch, nudge)

    def check(self, name: str, ok: bool, detail: str = "", group: str = "flows") -> bool:
        self.checks.setdefault(group, []).append(ok)
        if not ok:
            self.failures.append(f"{name}: {detail}" if detail else name)
            self.console.print(f"[bold red]✗ {name}[/bold red] {detail}")
        return ok

    def settled(self) -> bool:
        """Every webhook delivered and every stored event applied by the worker."""
        if self.control("GET", "/webhooks/pending")["pending"]:
            return False
        waiting = self.admin("GET", "/v1/admin/webhook-events",
                             params={"status": "received", "limit": 1})
        return not waiting["data"]

    def wait_settled(self) -> None:
        self.wait("the worker to book Stripe's events", self.settled)

    def advance(self, seconds: int) -> None:
        self.control("POST", "/clock/advance", {"seconds": seconds})
        self.wait_settled()

    def advance_to(self, ts: int) -> None:
        now = self.now()
        if ts + 60 > now:
            self.advance(ts + 60 - now)

    def run_job(self, name: str) -> None:
        self.admin("POST", f"/v1/admin/jobs/{name}/run", expect=(202,))

    # -- Stripe's own figures -------------------------------------------------------------

    def stripe_fee_of_intent(self, payment_intent: str) -> int:
        pi = self.stripe("GET", f"/v1/payment_intents/{payment_intent}"
                         "?expand[]=latest_charge.balance_transaction")
        return int(pi["latest_charge"]["balance_transaction"]["fee"])

    def stripe_fee_of_invoice(self, invoice: str) -> int:
        payments = self.stripe("GET", f"/v1/invoice_payments?invoice={invoice}")["data"]
        paid = [p for p in payments if p["status"] == "paid"]
        if len(paid) != 1:
            raise DemoFailed(f"invoice {invoice} has {len(paid)} paid payments")
        return self.stripe_fee_of_intent(paid[0]["payment"]["payment_intent"])

    # -- the actors -----------------------------------------------------------------------

    def sign_up_creator(self, handle: str, name: str, kind: str, currency: str,
                        **extra: Any) -> dict[str, Any]:
        creator = self.api("POST", "/v1/creators", json={
            "handle": handle, "display_name": name, "email": f"{handle}@example.com",
            "kind": kind, "country": "US", "default_currency": currency, **extra})
        key = creator["api_key"]
        account = self.api("POST", "/v1/creators/me/connect", key)["account_id"]
        self.control("POST", f"/accounts/{account}/onboard")
        # Payouts only when the creator asks, so the figures below are the demo's own.
        self.api("PATCH", "/v1/creators/me/payout-settings", key, json={"schedule": "manual"})
        return dict(creator)

    def email(self, name: str) -> str:
        return f"{name.lower().replace(' ', '.')}.{self.run}@example.com"

    def sign_up_fan(self, name: str) -> dict[str, Any]:
        return dict(self.api("POST", "/v1/fans", json={"email": self.email(name),
                                                        "display_name": name}))

    def tip(self, fan: dict[str, Any] | str, creator: dict[str, Any], amount: int,
            currency: str, message: str, card: str = "pm_card_visa") -> dict[str, Any]:
        """A tip from a signed-up fan, or from a guest named by ``fan`` (with an email)."""
        body = {"creator": creator["handle"], "amount": amount, "currency": currency,
                "message": message, "payment_method": card}
        if isinstance(fan, str):
            body |= {"name": fan, "email": self.email(fan)}
            return dict(self.api("POST", "/v1/tips", json=body))
        return dict(self.api("POST", "/v1/tips", fan["api_key"], json=body))

    def expect_earning(self, handle: str, currency: str, figure: str, gross: int,
                       stripe_fee: int) -> int:
        platform_fee, _ = split_fee(gross, self.fee_rate)
        self.expected.add(handle, currency, figure, gross)
        self.expected.add(handle, currency, "processor_fees", -stripe_fee)
        self.expected.add(handle, currency, "platform_fees", -platform_fee)
        return gross - stripe_fee - platform_fee

    def balances(self, creator: dict[str, Any]) -> dict[str, dict[str, int]]:
        got = self.api("GET", "/v1/creators/me/balance", creator["api_key"])["balances"]
        return {b["currency"]: b for b in got}

    # -- the walk-through -----------------------------------------------------------------

    def preflight(self) -> None:
        answers = []
        for url in (self.api_url + "/readyz", self.sandbox_url + "/_sandbox/clock"):
            try:
                answers.append(self.http.get(url, timeout=30))
            except requests.RequestException as exc:
                raise StackDown(f"nothing answers at {url}: {type(exc).__name__}") from None
        ready, clock = answers
        if ready.status_code != 200:
            raise StackDown(f"{self.api_url}/readyz answered {ready.status_code}: {ready.text}")
        if clock.status_code != 200:
            raise StackDown(f"{self.sandbox_url} is not the sandbox ({clock.status_code})")
        if not self.admin_key:
            raise NoAdminKey("no admin key")
        r = self.http.get(self.api_url + "/v1/admin/trial-balance", timeout=30,
                          headers={"Authorization": f"Bearer {self.admin_key}"})
        if r.status_code != 200:
            raise NoAdminKey(f"the stack refused the admin key ({r.status_code})")

    def skip_past_the_ledger(self) -> None:
        """Start after the ledger's days when the sandbox has forgotten them.

        The sandbox keeps its state in memory: after ``make run`` is restarted its clock is
        back at the wall clock and it knows none of the events the database remembers. Days
        the ledger already holds would then never reconcile, so this run starts after them.
        """
        events = self.admin("GET", "/v1/admin/webhook-events", params={"limit": 100})["data"]
        if not events:
            return
        for event in events:
            r = self._request("GET", f"{self.sandbox_url}/v1/events/{event['id']}",
                              headers={"Authorization": f"Bearer {STRIPE_KEY}"})
            if r.status_code == 200:
                return  # the same sandbox: its days and the ledger's agree
        newest = max(int(e["created"]) for e in events)
        now = self.now()
        if newest >= now - now % DAY:
            self.advance(newest - newest % DAY + DAY + 3600 - now)
        self.console.print("[yellow]The sandbox was restarted (the ledger's events are "
                           "unknown to it): this run starts on a day after them.")

    def walk(self) -> None:
        run = self.run
        self.skip_past_the_ledger()
        self.started_at = self.now()
        with self.step("Two creators sign up and connect their Stripe accounts") as notes:
            self.doctor = self.sign_up_creator(
                f"dr_lim_{run}", "Dr. Mei Lim", "kol", "usd", profession="doctor")
            self.star = self.sign_up_creator(f"ava_{run}", "Ava Stone", "influencer", "usd")
            for c in (self.doctor, self.star):
                self.poll("the connected account to be able to take payouts",
                          "/v1/creators/me/payout-settings", c["api_key"],
                          lambda s: bool(s["payouts_enabled"]))
            notes.append(f"{self.doctor['handle']} (KOL, doctor, local audience), "
                         f"{self.star['handle']} (influencer, global)")

        with self.step("Fans tip in two currencies") as notes:
            # Ben and Dee sign up (they subscribe below); Ana and Chen tip as guests.
            self.fans = [self.sign_up_fan(n) for n in ("Ben Reader", "Dee Viewer")]
            ben = self.fans[0]
            ana, chen = "Ana Patient", "Chen Fan"
            tips: list[tuple[dict[str, Any] | str, dict[str, Any], int, str, str]] = [
                (ana, self.doctor, 1500, "usd", "thank you for the clear advice"),
                (ben, self.doctor, 2500, "usd", "my mum's check-up went fine"),
                (chen, self.star, 2000, "eur", "greetings from Berlin"),
                (ana, self.star, 1000, "usd", "love the travel videos"),
            ]
            self.tips = [self.tip(f, c, a, cur, m) for f, c, a, cur, m in tips]
            self.wait_settled()
            nets: dict[tuple[str, str], int] = {}
            for t, (_, c, amount, cur, _) in zip(self.tips, tips, strict=True):
                got = self.api("GET", f"/v1/tips/{t['id']}", c["api_key"])
                self.check(f"tip {t['id']} succeeded", got["status"] == "succeeded",
                           got["status"])
                fee = self.stripe_fee_of_intent(t["payment_intent"])
                net = self.expect_earning(c["handle"], cur, "tips", amount, fee)
                nets[c["handle"], cur] = nets.get((c["handle"], cur), 0) + net
            for c in (self.doctor, self.star):
                for (handle, cur), net in nets.items():
                    if handle == c["handle"]:
                        pending = self.balances(c).get(cur, {}).get("pending")
                        self.check(f"{handle} pending {cur} = tips less Stripe's and the "
                                   "platform's fees", pending == net,
                                   f"ledger {pending}, expected {net}", group="figures")
            notes.append(", ".join(amount_text(a, cur) for _, _, a, cur, _ in tips))

        with self.step("Fans subscribe to membership tiers") as notes:
            self.doctor_tier = self.api("POST", "/v1/tiers", self.doctor["api_key"], json={
                "name": "Clinic notes", "amount": 900, "currency": "usd", "interval": "month"})
            self.star_tier = self.api("POST", "/v1/tiers", self.star["api_key"], json={
                "name": "Backstage", "amount": 500, "currency": "eur", "interval": "month"})
            ben, dee = self.fans
            self.subs = [
                (ben, self.doctor, self.api("POST", "/v1/subscriptions", ben["api_key"], json={
                    "tier": self.doctor_tier["id"], "payment_method": "pm_card_visa"})),
                (dee, self.star, self.api("POST", "/v1/subscriptions", dee["api_key"], json={
                    "tier": self.star_tier["id"], "payment_method": "pm_card_visa"})),
            ]
            self.wait_settled()
            for fan, _, sub in self.subs:
                got = self.api("GET", f"/v1/subscriptions/{sub['id']}", fan["api_key"])
                self.check(f"subscription {sub['id']} active", got["status"] == "active",
                           got["status"])
            notes.append("Clinic notes 9.00 USD/month, Backstage 5.00 EUR/month")

        with self.step("A brand funds a sponsored-post deal into escrow") as notes:
            brand = self.api("POST", "/v1/brands", json={
                "name": f"Glow Skincare {run}", "email": f"deals.{run}@glow.example",
                "country": "US"})
            self.brand = brand
            due = time.strftime("%Y-%m-%d", time.gmtime(self.now() + 30 * DAY))
            deal = self.api("POST", "/v1/deals", brand["api_key"], json={
                "creator": self.star["handle"], "title": "Summer serum launch",
                "brief": "One reel and one story about the new serum.", "currency": "usd",
                "review_days": 3, "milestones": [
                    {"title": "Launch reel", "platform": "instagram", "deliverable": "60 s reel",
                     "amount": 30000, "due_date": due},
                    {"title": "Story", "platform": "instagram", "deliverable": "3 frames",
                     "amount": 20000, "due_date": due}]})
            self.api("POST", f"/v1/deals/{deal['id']}/accept", self.star["api_key"], json={})
            self.api("POST", f"/v1/deals/{deal['id']}/fund", brand["api_key"],
                     json={"payment_method": "pm_card_visa"})
            self.deal = self.poll("the deal to be funded", f"/v1/deals/{deal['id']}",
                                  brand["api_key"], lambda d: d["status"] == "funded")
            escrow = self.deal["escrow"]
            self.check("escrow holds the whole deal", escrow["funded"] == 50000
                       and escrow["remaining"] == 50000, str(escrow))
            notes.append(f"{amount_text(escrow['funded'], 'usd')} held for "
                         f"{self.star['handle']}")

        with self.step("The creator delivers; the brand approves the reel") as notes:
            deal_id = self.deal["id"]
            reel, story = self.deal["milestones"]
            for ms in (reel, story):
                self.api("POST", f"/v1/deals/{deal_id}/milestones/{ms['id']}/submit",
                         self.star["api_key"], json={"proof_url": f"https://example.com/{ms['id']}"})
            self.api("POST", f"/v1/deals/{deal_id}/milestones/{reel['id']}/approve",
                     self.brand["api_key"], json={})
            notes.append("the story waits for the brand's review (3 days)")

        with self.step("A tip is partly refunded") as notes:
            refunded_tip = self.tips[1]  # Ben's 25.00 USD to the doctor
            self.api("POST", f"/v1/tips/{refunded_tip['id']}/refund", self.doctor["api_key"],
                     json={"amount": 1000, "reason": "requested_by_customer"})
            got = self.poll("the refund to be booked", f"/v1/tips/{refunded_tip['id']}",
                            self.doctor["api_key"],
                            lambda t: t["status"] == "partially_refunded" and self.settled())
            platform_part, _ = split_fee(1000, self.fee_rate)
            self.expected.add(self.doctor["handle"], "usd", "refunds", -(1000 - platform_part))
            self.check("tip shows 10.00 USD refunded", got["amount_refunded"] == 1000,
                       str(got["amount_refunded"]))
            notes.append(f"10.00 USD of {refunded_tip['id']}; the platform gives back its fee "
                         "on that part")

        with self.step("A fan's bank disputes a tip, and the dispute is lost") as notes:
            disputed = self.tip("Chen Fan", self.star, 3000, "usd", "great video",
                                card="pm_card_createDispute")
            got = self.poll("the dispute to reach the tip", f"/v1/tips/{disputed['id']}",
                            self.star["api_key"], lambda t: bool(t["dispute"]))
            dispute_id = got["dispute"]["id"]
            self.control("POST", f"/disputes/{dispute_id}/close", {"outcome": "lost"})
            self.wait("the lost dispute to be booked", lambda: (
                self.settled() and self.api("GET", f"/v1/tips/{disputed['id']}",
                                            self.star["api_key"])["dispute"]["status"] == "lost"))
            fee = self.stripe_fee_of_intent(disputed["payment_intent"])
            self.expect_earning(self.star["handle"], "usd", "tips", 3000, fee)
            dispute = self.stripe("GET", f"/v1/disputes/{dispute_id}")
            for txn in dispute["balance_transactions"]:
                self.expected.add(self.star["handle"], "usd", "disputes", int(txn["net"]))
            notes.append(f"30.00 USD and Stripe's dispute fee come back from "
                         f"{self.star['handle']}")

        with self.step("Three days pass: the story is approved automatically") as notes:
            self.advance(3 * DAY + 120)
            story_id = self.deal["milestones"][1]["id"]
            self.deal = self.poll(
                "the review period to lapse", f"/v1/deals/{self.deal['id']}",
                self.brand["api_key"], lambda d: d["status"] == "completed" and self.settled(),
                nudge=lambda: self.run_job("deals.auto_approve"))
            by = {ms["id"]: ms["released_by"] for ms in self.deal["milestones"]}
            self.check("the reel was released by the brand, the story automatically",
                       by == {self.deal["milestones"][0]["id"]: "brand", story_id: "auto"},
                       str(by))
            escrow = self.deal["escrow"]
            self.check("escrow fully released", escrow["released"] == 50000
                       and escrow["remaining"] == 0, str(escrow))
            for ms in self.deal["milestones"]:
                platform_fee, _ = split_fee(ms["amount"], Decimal(str(
                    self.deal["platform_fee_rate"])))
                self.check(f"milestone {ms['id']} platform fee", ms["platform_fee"]
                           == platform_fee, f"{ms['platform_fee']} != {platform_fee}")
                self.check(f"milestone {ms['id']} creator amount", ms["creator_amount"]
                           == ms["amount"] - ms["platform_fee"] - ms["processor_fee"])
                self.expected.add(self.star["handle"], "usd", "deals", ms["amount"])
                self.expected.add(self.star["handle"], "usd", "platform_fees",
                                  -ms["platform_fee"])
                self.expected.add(self.star["handle"], "usd", "processor_fees",
                                  -ms["processor_fee"])
            notes.append("deal completed: "
                         + ", ".join(f"{ms['title']} by {ms['released_by']}"
                                     for ms in self.deal["milestones"]))

        with self.step("A fan's card starts failing before the renewal") as notes:
            ben, _, sub = self.subs[0]
            invoice = self.stripe("GET", f"/v1/invoices/{sub['latest_invoice']}")
            stripe_sub = self.stripe("GET", f"/v1/subscriptions/{invoice['subscription']}")
            self.good_card = stripe_sub["default_payment_method"]
            bad = self.stripe("POST", "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
                              {"customer": stripe_sub["customer"]})
            self.stripe("POST", f"/v1/subscriptions/{stripe_sub['id']}",
                        {"default_payment_method": bad["id"]})
            self.stripe_sub_id = stripe_sub["id"]
            notes.append(f"{ben['display_name']}'s card now declines")

        with self.step("A month passes: subscriptions renew, one renewal fails") as notes:
            period_end = max(s["current_period_end"] for _, _, s in self.subs)
            self.advance_to(period_end)
            ben, _, ben_sub = self.subs[0]
            dee, _, dee_sub = self.subs[1]
            ben_now = self.api("GET", f"/v1/subscriptions/{ben_sub['id']}", ben["api_key"])
            dee_now = self.api("GET", f"/v1/subscriptions/{dee_sub['id']}", dee["api_key"])
            self.check("the failing card leaves the subscription past_due",
                       ben_now["status"] == "past_due", ben_now["status"])
            self.check("the other subscription renewed", dee_now["status"] == "active"
                       and sum(i["status"] == "paid" for i in dee_now["invoices"]) == 2,
                       str([(i["id"], i["status"]) for i in dee_now["invoices"]]))
            notes.append(f"{dee['display_name']} renewed; {ben['display_name']} past_due")

        with self.step("The fan fixes the card: Stripe's retry recovers the renewal") as notes:
            self.stripe("POST", f"/v1/subscriptions/{self.stripe_sub_id}",
                        {"default_payment_method": self.good_card})
            failing = next(i for i in ben_now["invoices"] if i["status"] == "open")
            retry_at = self.stripe("GET", f"/v1/invoices/{failing['id']}")["next_payment_attempt"]
            self.advance_to(int(retry_at))
            ben_now = self.api("GET", f"/v1/subscriptions/{ben_sub['id']}", ben["api_key"])
            paid = next(i for i in ben_now["invoices"] if i["id"] == failing["id"])
            self.check("the subscription is active again", ben_now["status"] == "active",
                       ben_now["status"])
            self.check("the retried invoice is paid on its second attempt",
                       (paid["status"], paid["attempt_count"]) == ("paid", 2), str(paid))
            for fan, creator, sub in self.subs:
                seen = self.api("GET", f"/v1/subscriptions/{sub['id']}", fan["api_key"])
                for inv in seen["invoices"]:
                    if inv["status"] == "paid" and inv["amount_paid"]:
                        self.expect_earning(creator["handle"], seen["currency"], "subscriptions",
                                            inv["amount_paid"],
                                            self.stripe_fee_of_invoice(inv["id"]))
            notes.append(f"invoice {failing['id']} paid after {paid['attempt_count']} attempts")

        with self.step("The hold period ends; the doctor is paid out") as notes:
            doctor = self.doctor
            # Earnings older than the hold (7 days) are available; the renewal is still held.
            self.wait("earnings to mature", lambda: self.balances(doctor)["usd"]["available"],
                      nudge=lambda: self.run_job("ledger.mature"))
            self.wait("the maturation to settle", self._maturation_done(doctor),
                      nudge=lambda: self.run_job("ledger.mature"))
            available = self.balances(doctor)["usd"]["available"]
            payout = self.api("POST", "/v1/creators/me/payouts", doctor["api_key"],
                              json={"currency": "usd"},
                              headers={"Idempotency-Key": f"demo-payout-{run}"})
            self.check("the payout takes everything available", payout["amount"] == available,
                       f"{payout['amount']} != {available}")
            self.expected.add(doctor["handle"], "usd", "payouts", -payout["amount"])
            # The connected account pays out at the next UTC midnight; it lands 2 days later.
            now = self.now()
            self.advance(DAY - now % DAY + 2 * DAY + 3600)
            got = self.poll("the payout to arrive", f"/v1/creators/me/payouts/{payout['id']}",
                            doctor["api_key"], lambda p: p["status"] == "paid")
            bal = self.balances(doctor)["usd"]
            self.check("paid out equals the payout", bal["paid_out"] == payout["amount"]
                       and bal["in_transit"] == 0, str(bal))
            notes.append(f"{amount_text(got['amount'], 'usd')} to {got['destination']}, "
                         f"{got['status']}")

    def _maturation_done(self, creator: dict[str, Any]) -> Callable[[], bool]:
        """Maturation runs in batches: wait until two reads a nudge apart agree."""
        seen: list[int] = []

        def stable() -> bool:
            seen.append(self.balances(creator)["usd"]["available"])
            return len(seen) >= 2 and seen[-1] == seen[-2] and self.settled()

        return stable

    # -- the books ------------------------------------------------------------------------

    def statements(self, creator: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every month's statement per currency, oldest first."""
        key = creator["api_key"]
        listed = self.api("GET", "/v1/creators/me/statements", key,
                          params={"limit": 100})["data"]
        by_currency: dict[str, list[dict[str, Any]]] = {}
        for entry in sorted(listed, key=lambda s: (s["currency"], s["period"])):
            full = self.api("GET", f"/v1/creators/me/statements/{entry['period']}", key,
                            params={"currency": entry["currency"], "lines_limit": 1})
            by_currency.setdefault(entry["currency"], []).append(full)
        return by_currency

    def report(self) -> None:
        self.console.rule("[bold]The books")
        for creator in (self.doctor, self.star):
            self.creator_tables(creator)
        self.trial_balance_table()
        self.verify_ledger()
        self.reconciliation_table()
        self.checks_table()

    def creator_tables(self, creator: dict[str, Any]) -> None:
        handle = creator["handle"]
        balances = self.balances(creator)
        table = Table(title=f"{handle}: balance", title_justify="left")
        for col in ("currency", "pending", "available", "reserved", "in_transit", "paid_out",
                    "owed"):
            table.add_column(col, justify="left" if col == "currency" else "right")
        for cur, b in sorted(balances.items()):
            owed = b["pending"] + b["available"] + b["reserved"]
            table.add_row(cur, *(amount_text(b[k], cur) for k in (
                "pending", "available", "reserved", "in_transit", "paid_out")),
                amount_text(owed, cur))
        self.console.print(table)

        statements = self.statements(creator)
        # One column per month and currency, one row per figure: narrow enough for a terminal.
        columns = [(cur, st) for cur, months in sorted(statements.items()) for st in months]
        table = Table(title=f"{handle}: monthly statements", title_justify="left")
        table.add_column("")
        for cur, st in columns:
            table.add_column(f"{st['period']} {cur}", justify="right")
        for figure in ("opening_balance", *STATEMENT_FIGURES, "closing_balance"):
            label = {"opening_balance": "opening", "closing_balance": "closing"}.get(
                figure, figure.replace("_", " "))
            table.add_row(label, *(amount_text(st[figure], cur, code=False)
                                   for cur, st in columns),
                          end_section=figure in ("opening_balance", "payouts"))
        for cur, months in sorted(statements.items()):
            previous_closing = 0
            totals = dict.fromkeys(STATEMENT_FIGURES, 0)
            for st in months:
                activity = sum(st[f] for f in STATEMENT_FIGURES)
                self.check(f"{handle} {st['period']} {cur}: opening + activity = closing",
                           st["opening_balance"] + activity == st["closing_balance"],
                           f"{st['opening_balance']} + {activity} != {st['closing_balance']}",
                           group="statements")
                self.check(f"{handle} {st['period']} {cur}: opens at last month's closing",
                           st["opening_balance"] == previous_closing,
                           f"{st['opening_balance']} != {previous_closing}",
                           group="statements")
                previous_closing = st["closing_balance"]
                for f in STATEMENT_FIGURES:
                    totals[f] += st[f]
            b = balances.get(cur, {})
            owed = b.get("pending", 0) + b.get("available", 0) + b.get("reserved", 0)
            self.check(f"{handle} {cur}: balance equals the last statement's closing",
                       owed == previous_closing, f"balance {owed}, closing {previous_closing}",
                       group="balances")
            expected = self.expected.figures.get((handle, cur), dict.fromkeys(
                STATEMENT_FIGURES, 0))
            for f in STATEMENT_FIGURES:
                self.check(f"{handle} {cur} {f}: the ledger says what the demo paid",
                           totals[f] == expected[f], f"statements {totals[f]}, "
                           f"expected {expected[f]}", group="figures")
        for (h, cur) in self.expected.figures:
            if h == handle:
                self.check(f"{handle} has {cur} statements", cur in statements,
                           group="statements")
        self.console.print(table)

    def trial_balance_table(self) -> None:
        tb = self.admin("GET", "/v1/admin/trial-balance")
        table = Table(title="trial balance (platform accounts; creators' summed)",
                      title_justify="left")
        for col in ("account", "currency", "balance"):
            table.add_column(col, justify="right" if col == "balance" else "left")
        rows: dict[tuple[str, str], int] = {}
        for a in tb["accounts"]:
            name = a["purpose"] if a["owner"] == "platform" else f"creators: {a['purpose']}"
            rows[name, a["currency"]] = rows.get((name, a["currency"]), 0) + a["balance"]
        for (name, cur), bal in sorted(rows.items(), key=lambda r: (r[0][1], r[0][0])):
            table.add_row(name, cur, amount_text(bal, cur))
        for t in tb["totals"]:
            ok = self.check(f"trial balance {t['currency']} is zero", t["total"] == 0,
                            str(t["total"]), group="trial balance")
            table.add_row("[bold]total[/bold]", t["currency"],
                          f"[{'green' if ok else 'red'}]{amount_text(t['total'], t['currency'])}")
        self.console.print(table)

    def verify_ledger(self) -> None:
        report = self.admin("GET", "/v1/admin/ledger/verify")
        ok = self.check("ledger verify", report["ok"], str(
            {k: v for k, v in report.items() if v and k != "totals"}), group="ledger verify")
        if ok:
            self.console.print(f"[green]ledger verify: OK[/green]: {report['accounts']} "
                               f"accounts, {report['journals']} journals, {report['entries']} "
                               "entries; every balance equals its entries")

    def reconciliation_table(self) -> None:
        first, last = self.started_at // DAY, self.now() // DAY
        table = Table(title="reconciliation with Stripe, per day of this run",
                      title_justify="left")
        for col in ("date", "currency", "stripe net", "ledger net", "difference", "verdict"):
            table.add_column(col, justify="left" if col in ("date", "currency", "verdict")
                             else "right")
        for day in range(first, last + 1):
            date = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
            rep = self.admin("GET", "/v1/admin/reconciliation", params={"date": date})
            problems = rep["differences"] + rep["payouts"] + [
                c for c in rep["clearing"] if c["balance"] != c.get("expected", 0)]
            self.check(f"reconciliation {date} clean", rep["clean"] and not problems,
                       str(problems)[:600], group="reconciliation")
            for c in rep["currencies"]:
                if c["stripe_net"] or c["ledger_net"] or c["difference"]:
                    table.add_row(date, c["currency"], amount_text(c["stripe_net"], c["currency"]),
                                  amount_text(c["ledger_net"], c["currency"]),
                                  amount_text(c["difference"], c["currency"]),
                                  "[green]clean[/green]" if rep["clean"] else "[red]differs[/red]")
        self.console.print(table)
        failed = self.admin("GET", "/v1/admin/webhook-events",
                            params={"status": "failed", "limit": 5})["data"]
        self.check("no webhook event failed", not failed,
                   str([(e["id"], e["type"], e["error"]) for e in failed]),
                   group="reconciliation")

    def checks_table(self) -> None:
        table = Table(title="checks", title_justify="left")
        table.add_column("")
        table.add_column("what was checked")
        table.add_column("passed", justify="right")
        for group, outcomes in sorted(self.checks.items(),
                                      key=lambda g: list(CHECK_GROUPS).index(g[0])):
            ok = all(outcomes)
            table.add_row("[green]✓[/green]" if ok else "[bold red]✗[/bold red]",
                          CHECK_GROUPS[group], f"{sum(outcomes)}/{len(outcomes)}")
        self.console.print(table)


def run_demo(api_url: str, sandbox_url: str, admin_key: str | None,
             platform_fee_rate: Decimal, console: Console | None = None) -> int:
    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = 120  # piped (CI, a log file): do not squeeze the tables to 80
    demo = Demo(api_url, sandbox_url, admin_key, console, platform_fee_rate)
    try:
        demo.preflight()
    except NoAdminKey as exc:
        console.print(f"[bold red]creatorpay demo: {exc}[/bold red]. {exc.hint}")
        return 2
    except StackDown as exc:
        console.print(f"[bold red]creatorpay demo: the stack is not up[/bold red] ({exc})")
        console.print(exc.hint)
        return 2
    started = time.monotonic()
    console.rule(f"[bold]creatorpay demo[/bold] (run {demo.run}) against {demo.api_url}")
    try:
        demo.walk()
        demo.report()
    except DemoFailed as exc:
        console.print(f"[bold red]✗ the demo could not go on:[/bold red] {exc}")
        return 1
    took = time.monotonic() - started
    total = sum(len(outcomes) for outcomes in demo.checks.values())
    if demo.failures:
        console.print(f"[bold red]{len(demo.failures)} of {total} checks failed:[/bold red]")
        for failure in demo.failures:
            console.print(f"[red]  ✗ {failure}[/red]")
        return 1
    console.print(f"[bold green]All {total} checks passed[/bold green]: every figure "
                  f"reconciles ({took:.0f}s).")
    return 0

