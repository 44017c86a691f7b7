"""Accounts: sign-up of creators, fans and brands; creator lookups and tip settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payments.accounts.models import Brand, Creator, Fan
from payments.auth import issue_key
from payments.clock import now_ts
from payments.errors import Conflict, InvalidRequest, NotFound
from payments.money import currency


def create_creator(session: Session, data: dict[str, Any]) -> tuple[Creator, str]:
    if session.scalar(select(Creator.id).where(Creator.handle == data["handle"])) is not None:
        raise Conflict(
            f"The handle {data['handle']!r} is taken.", code="handle_taken", param="handle"
        )
    creator = Creator(
        handle=data["handle"],
        display_name=data["display_name"],
        email=data["email"],
        kind=data["kind"],
        profession=data.get("profession"),
        country=data["country"],
        default_currency=data["default_currency"],
        suggested_amounts=[],
    )
    session.add(creator)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Lost a race for the same handle.
        raise Conflict(
            f"The handle {data['handle']!r} is taken.", code="handle_taken", param="handle"
        ) from None
    return creator, issue_key(session, "creator", creator.id)


def create_fan(session: Session, data: dict[str, Any]) -> tuple[Fan, str]:
    fan = Fan(email=data["email"], display_name=data["display_name"])
    session.add(fan)
    session.flush()
    return fan, issue_key(session, "fan", fan.id)


def create_brand(session: Session, data: dict[str, Any]) -> tuple[Brand, str]:
    brand = Brand(name=data["name"], email=data["email"], country=data["country"])
    session.add(brand)
    session.flush()
    return brand, issue_key(session, "brand", brand.id)


def find_creator(session: Session, ref: str, param: str = "creator") -> Creator:
    """A creator by handle or public id; unknown is a 404 naming ``param``."""
    if not isinstance(ref, str) or not ref:
        raise NotFound("No such creator.", code="creator_not_found", param=param)
    column = Creator.public_id if ref.startswith("cr_") else Creator.handle
    creator = session.scalar(select(Creator).where(column == ref))
    if creator is None:
        raise NotFound(f"No such creator: {ref!r}.", code="creator_not_found", param=param)
    return creator


def get_creator(session: Session, creator_id: int) -> Creator:
    creator = session.get(Creator, creator_id)
    if creator is None:
        raise NotFound("No such creator.", code="creator_not_found")
    return creator


def get_fan(session: Session, fan_id: int) -> Fan:
    fan = session.get(Fan, fan_id)
    if fan is None:
        raise NotFound("No such fan.", code="fan_not_found")
    return fan


def min_tip_amount(creator: Creator, currency_code: str) -> int:
    """The creator's minimum applies in their default currency; others use Stripe's minimum."""
    stripe_min = currency(currency_code).min_charge
    if currency_code == creator.default_currency and creator.min_tip_amount is not None:
        return max(creator.min_tip_amount, stripe_min)
    return stripe_min


def update_creator(session: Session, creator: Creator, data: dict[str, Any]) -> Creator:
    stripe_min = currency(creator.default_currency).min_charge
    if "min_tip_amount" in data:
        value = data["min_tip_amount"]
        if value is not None and value < stripe_min:
            raise InvalidRequest(
                f"min_tip_amount must be at least {stripe_min} (Stripe's minimum charge in "
                f"{creator.default_currency}).",
                code="amount_too_small",
                param="min_tip_amount",
            )
        creator.min_tip_amount = value
    if "suggested_amounts" in data:
        floor = min_tip_amount(creator, creator.default_currency)
        for i, amount in enumerate(data["suggested_amounts"]):
            if amount < floor:
                raise InvalidRequest(
                    f"Suggested amounts must be at least the minimum tip ({floor}).",
                    code="amount_too_small",
                    param=f"suggested_amounts.{i}",
                )
        creator.suggested_amounts = list(data["suggested_amounts"])
    if "tip_goal" in data:
        goal = data["tip_goal"]
        creator.tip_goal_amount = goal["amount"] if goal else None
        creator.tip_goal_title = goal["title"] if goal else None
    for name in ("display_name", "profession"):
        if name in data:
            setattr(creator, name, data[name])
    session.flush()
    return creator


def creator_profile(
    creator: Creator, *, goal_progress: int = 0, tiers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The public view of a creator (never the email)."""
    goal = None
    if creator.tip_goal_amount is not None:
        goal = {
            "amount": creator.tip_goal_amount,
            "currency": creator.default_currency,
            "title": creator.tip_goal_title,
            "progress": goal_progress,
        }
    return {
        "public_id": creator.public_id,
        "handle": creator.handle,
        "display_name": creator.display_name,
        "kind": creator.kind,
        "profession": creator.profession,
        "country": creator.country,
        "default_currency": creator.default_currency,
        "created": creator.created,
        "email": creator.email,
        "stripe_account_id": creator.stripe_account_id,
        "tip_settings": {
            "currency": creator.default_currency,
            "min_tip_amount": min_tip_amount(creator, creator.default_currency),
            "suggested_amounts": list(creator.suggested_amounts or []),
            "tip_goal": goal,
        },
        "tiers": tiers or [],
    }


def link_connected_account(session: Session, creator: Creator, account_id: str) -> Creator:
    """Remember the creator's Stripe connected account (payouts are transfers to it)."""
    if creator.stripe_account_id not in (None, account_id):
        raise Conflict("The creator already has another connected account.",
                       code="account_exists")
    creator.stripe_account_id = account_id
    session.flush()
    return creator


def block_tips(session: Session, creator: Creator, reason: str) -> Creator:
    """An admin stops a creator's tips (fraud, a takedown); the reason stays with operators."""
    creator.tips_blocked_reason = reason
    creator.tips_blocked_at = now_ts()
    session.flush()
    return creator


def unblock_tips(session: Session, creator: Creator) -> Creator:
    creator.tips_blocked_reason = None
    creator.tips_blocked_at = None
    session.flush()
    return creator
