from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint

from payments.accounts import schemas, service
from payments.auth import principal, require
from payments.db import request_session
from payments.errors import PaymentsError, ServiceUnavailable

blp = Blueprint("accounts", __name__, url_prefix="/v1", description="Creators, fans and brands")


def profile_for(creator_id: int) -> dict[str, Any]:
    """The creator profile with tip-goal progress and tiers from the domains that own them."""
    session = request_session()
    creator = service.get_creator(session, creator_id)
    return service.creator_profile(creator, **profile_extras(session, creator))


def profile_extras(session: Any, creator: Any) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for provider in PROFILE_PROVIDERS:
        extras.update(provider(session, creator))
    return extras


# Domains that add to the public profile (tip-goal progress, active tiers) register here.
PROFILE_PROVIDERS: list[Any] = []


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
    def get(self, ref: str) -> dict[str, Any]:
        """A creator's public profile, by handle or id; never the email."""
        session = request_session()
        creator = service.find_creator(session, ref, param="handle")
        return service.creator_profile(creator, **profile_extras(session, creator))


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
        from payments.gateway import GatewayError, TransientGatewayError, idempotency_key
        from payments.gateways import gateway_for

        session = request_session()
        p = principal()
        assert p.owner_id is not None
        creator = service.get_creator(session, p.owner_id)
        gateway = gateway_for(current_app.config["CREATORPAY"])
        base = request.host_url.rstrip("/")
        try:
            account_id = creator.stripe_account_id
            if account_id is None:
                account = gateway.create_account(
                    idempotency_key=idempotency_key("connect", creator.public_id),
                    country=creator.country, email=creator.email,
                    metadata={"creator_id": creator.public_id},
                )
                account_id = account["id"]
                service.link_connected_account(session, creator, account_id)
                session.commit()
            link = gateway.create_account_link(
                account=account_id,
                refresh_url=f"{base}/v1/creators/me/connect",
                return_url=f"{base}/v1/creators/me",
            )
        except TransientGatewayError:
            raise ServiceUnavailable("Stripe is unreachable; try again.",
                                     code="stripe_unavailable") from None
        except GatewayError as exc:
            raise PaymentsError(exc.message, code=exc.code or "stripe_error",
                                status_code=502) from None
        return {"account_id": account_id, "onboarding_url": link["url"]}
