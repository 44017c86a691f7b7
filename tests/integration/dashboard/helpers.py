"""Helpers for the dashboard tests: a creator with money booked, links, reading the page."""

from __future__ import annotations

import secrets
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

from payments.db import session_scope
from payments.ledger import service as ledger
from payments.money import split_fee

RATE = Decimal("0.10")


def signup(client: Any, currency: str = "usd") -> dict[str, Any]:
    handle = "d_" + secrets.token_hex(4)
    r = client.post("/v1/creators", json={
        "handle": handle, "display_name": "Creator " + handle, "email": f"{handle}@example.com",
        "kind": "influencer", "country": "US", "default_currency": currency})
    assert r.status_code == 201, r.get_data(as_text=True)
    return dict(r.get_json())


def creator_id(public_id: str) -> int:
    from sqlalchemy import select

    from payments.accounts.models import Creator

    with session_scope() as s:
        found = s.scalar(select(Creator.id).where(Creator.public_id == public_id))
        assert found is not None
        return int(found)


def earning(cid: int, kind: str, gross: int, fee: int, at: int, currency: str = "usd") -> None:
    """An earning as the tip/invoice/deal flows post it (the journal conventions of
    docs/ledger.md), through the ledger's public API."""
    prefix = {"tip": "tip", "subscription": "invoice", "deal": "deal_release"}[kind]
    ref = {"tip": "tip_", "subscription": "in_", "deal": "ms_"}[kind] + secrets.token_hex(6)
    with session_scope() as s:
        ledger.post_many(s, ledger.earning_journals(
            cid, currency, gross=gross, processor_fee=fee,
            platform_fee=split_fee(gross, RATE)[0], key=f"{prefix}:{ref}", kind=kind,
            source=(kind, ref), effective_at=at))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Figures(HTMLParser):
    """Every element with ``data-figure`` (and ``data-currency``): its amount and text."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[tuple[str, str], dict[str, Any]] = {}
        self.error: dict[str, str] | None = None
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-figure" in a and "data-currency" in a:
            self._open = (a["data-currency"], a["data-figure"])
            self.figures[self._open] = {"amount": int(a["data-amount"]), "text": ""}
        if a.get("id") == "error":
            self.error = a

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.figures[self._open]["text"] += data.strip()

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def read_page(html: str) -> Figures:
    parser = Figures()
    parser.feed(html)
    return parser
