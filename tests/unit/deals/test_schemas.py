"""Deal input schemas: strict, integer money, the contract's platforms and dates (no I/O)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from payments.deals.models import PLATFORMS
from payments.deals.schemas import (
    DealCreateSchema,
    DealResolveSchema,
    MilestoneSubmitSchema,
)
from payments.money import allocate


def body(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "creator": "chef_ana", "title": "Launch", "brief": "Cook with it", "currency": "JPY",
        "milestones": [{"title": "Reel", "platform": "instagram", "deliverable": "1 reel",
                        "amount": 5000, "due_date": "2027-01-31"}]}
    base.update(change)
    return base


def test_a_proposal_loads_with_defaults() -> None:
    data = DealCreateSchema().load(body())
    assert data["currency"] == "jpy" and data["review_days"] == 7
    assert data["milestones"][0]["due_date"] == date(2027, 1, 31)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_contract_platform_is_accepted(platform: str) -> None:
    ms = dict(body()["milestones"][0], platform=platform)
    assert DealCreateSchema().load(body(milestones=[ms]))["milestones"][0]["platform"] == platform


@pytest.mark.parametrize(("change", "field"), [
    ({"review_days": "7"}, "review_days"),
    ({"review_days": 91}, "review_days"),
    ({"milestones": []}, "milestones"),
    ({"milestones": [dict(body()["milestones"][0], amount=True)]}, "milestones"),
    ({"milestones": [dict(body()["milestones"][0], amount=1e3)]}, "milestones"),
    ({"milestones": [dict(body()["milestones"][0], due_date="2027-02-30")]}, "milestones"),
    ({"milestones": [dict(body()["milestones"][0], platform="Instagram")]}, "milestones"),
    ({"milestones": [dict(body()["milestones"][0], colour="red")]}, "milestones"),
    ({"currency": "kwd"}, "currency"),
    ({"terms": "x"}, "terms"),
])
def test_bad_proposals_fail_validation(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        DealCreateSchema().load(body(**change))
    assert field in err.value.messages


def test_resolution_takes_zero_but_no_fractions() -> None:
    assert DealResolveSchema().load({"creator_amount": 0, "brand_refund_amount": 10}) == {
        "creator_amount": 0, "brand_refund_amount": 10}
    for bad in (-1, 1.5, "3", None):
        with pytest.raises(ValidationError):
            DealResolveSchema().load({"creator_amount": bad, "brand_refund_amount": 0})


def test_proof_is_an_http_url() -> None:
    assert MilestoneSubmitSchema().load({"proof_url": "https://tiktok.com/@a/video/1"})
    for bad in ("ftp://x.com/a", "javascript:alert(1)", "not a url"):
        with pytest.raises(ValidationError):
            MilestoneSubmitSchema().load({"proof_url": bad})


@given(st.integers(0, 10**9), st.lists(st.integers(1, 10**9), min_size=1, max_size=20))
def test_fee_shares_always_sum_to_the_fee(fee: int, amounts: list[int]) -> None:
    shares = allocate(fee, amounts)
    assert sum(shares) == fee and all(s >= 0 for s in shares)
