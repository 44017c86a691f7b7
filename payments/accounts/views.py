from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from payments import domains
from payments.accounts import schemas, service
from payments.auth import principal, require
from payments.db import request_session
from payments.gateway import idempotency_key
from payments.web import call_stripe

blp = Blueprint("accounts", __name__, url_prefix="/v1", description="Creators, fans and brands")


def profile_for(creator_id: int) -> dict[str, Any]:
    """The creator profile with what the other domains add (tip-goal progress, tiers)."""
    session = request_session()
    creator = service.get_creator(session, creator_id)
    return service.creator_profile(creator, **domains.profile_fields(session, creator))


@blp.route("/creators")
class Creators(MethodView):
    @blp.arguments(schemas.CreatorCreateSchema)
    @blp.response(201, schemas.CreatorSignupSchema)
    @blp.alt_response(409, description="Handle taken")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Sign up a creator; the answer carries the API key, shown this once."""
        session = request_session()
        creator, key = service.create_creator(session, data)
        body = service.creator_profile(creator)
        session.commit()
        return {**body, "api_key": key}


@blp.route("/creators/me")
class CreatorMe(MethodView):
    @require("creator")
    @blp.response(200, schemas.CreatorPrivateSchema)
    def get(self) -> dict[str, Any]:
        """The authenticated creator, email included."""
        p = principal()
        assert p.owner_id is not None
        return profile_for(p.owner_id)

    @require("creator")
    @blp.arguments(schemas.CreatorUpdateSchema)
    @blp.response(200, schemas.CreatorPrivateSchema)
    def patch(self, data: dict[str, Any]) -> dict[str, Any]:
        """Update tip settings (in the creator's default currency) and profile fields."""
        session = request_session()
        p = principal()
        assert p.owner_id is not None
        service.update_creator(session, service.get_creator(session, p.owner_id), data)
        session.commit()
        return profile_for(p.owner_id)


@blp.route("/creators/<string:ref>")
class CreatorPublic(MethodView):
    @blp.response(200, schemas.CreatorPublicSchema)
    @blp.alt_response(404, description="No such creator (creator_not_found)")
    def get(self, ref: str) -> dict[str, Any]:
        """A creator's public profile, by handle or id; never the email."""
        session = request_session()
        creator = service.find_creator(session, ref, param="handle")
        return service.creator_profile(creator, **domains.profile_fields(session, creator))


@blp.route("/fans")
class Fans(MethodView):
    @blp.arguments(schemas.FanCreateSchema)
    @blp.response(201, schemas.FanSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Sign up a fan; the answer carries the API key, shown this once."""
        session = request_session()
        fan, key = service.create_fan(session, data)
        session.commit()
        fan.api_key = key  # type: ignore[attr-defined]
        return fan


@blp.route("/brands")
class Brands(MethodView):
    @blp.arguments(schemas.BrandCreateSchema)
    @blp.response(201, schemas.BrandSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Sign up a brand; the answer carries the API key, shown this once."""
        session = request_session()
        brand, key = service.create_brand(session, data)
        session.commit()
        brand.api_key = key  # type: ignore[attr-defined]
        return brand


@blp.route("/creators/me/connect")
class CreatorConnect(MethodView):
    @require("creator")
    @blp.response(200, schemas.ConnectSchema)
    @blp.alt_response(503, description="Stripe unreachable")
    def post(self) -> dict[str, Any]:
        """Create (once) the creator's Stripe connected account and an onboarding link."""
        session = request_session()
        p = principal()
        assert p.owner_id is not None
        creator = service.get_creator(session, p.owner_id)
        base = request.host_url.rstrip("/")
        if creator.stripe_account_id is None:
            call_stripe(
                session,
                lambda gateway: gateway.create_account(
                    idempotency_key=idempotency_key("connect", creator.public_id),
                    country=creator.country, email=creator.email,
                    metadata={"creator_id": creator.public_id},
                ),
                record=lambda account: service.link_connected_account(
                    session, creator, account["id"]),
            )
        account_id = creator.stripe_account_id
        assert account_id is not None
        link = call_stripe(session, lambda gateway: gateway.create_account_link(
            account=account_id,
            refresh_url=f"{base}/v1/creators/me/connect",
            return_url=f"{base}/v1/creators/me",
        ))
        return {"account_id": account_id, "onboarding_url": link["url"]}


admin_blp = Blueprint("accounts_admin", __name__, url_prefix="/v1/admin",
                      description="Operators: creators")


def _admin_view(creator: Any) -> dict[str, Any]:
    session = request_session()
    return {**service.creator_profile(creator, **domains.profile_fields(session, creator)),
            "tips_blocked": creator.tips_blocked_reason is not None,
            "tips_blocked_reason": creator.tips_blocked_reason}


@admin_blp.route("/creators/<string:ref>/block_tips")
class BlockTips(MethodView):
    @require("admin")
    @admin_blp.arguments(schemas.TipsBlockSchema)
    @admin_blp.response(200, schemas.CreatorAdminSchema)
    @admin_blp.alt_response(404, description="No such creator")
    def post(self, data: dict[str, Any], ref: str) -> dict[str, Any]:
        """Stop a creator's tips (fans are told only that tips are off); by handle or id."""
        session = request_session()
        creator = service.block_tips(session, service.find_creator(session, ref, param="ref"),
                                     data["reason"])
        session.commit()
        return _admin_view(creator)


@admin_blp.route("/creators/<string:ref>/unblock_tips")
class UnblockTips(MethodView):
    @require("admin")
    @admin_blp.response(200, schemas.CreatorAdminSchema)
    @admin_blp.alt_response(404, description="No such creator")
    def post(self, ref: str) -> dict[str, Any]:
        """Take tips again."""
        session = request_session()
        creator = service.unblock_tips(session, service.find_creator(session, ref, param="ref"))
        session.commit()
        return _admin_view(creator)


blueprints = [blp, admin_blp]
