"""creatorpay: the Flask application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_smorest import Api
from flask_smorest.arguments import ArgumentsMixin
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.routing import UnicodeConverter

from payments import clock, domains, limits, logs, observe
from payments.auth import SECURITY_SCHEME
from payments.config import Config, load_config
from payments.fields import ErrorSchema, nul_path
from payments.queue import Enqueue, celery_enqueue
from payments.web import EXTENSION

MAX_BODY = 1024 * 1024  # 1 MiB
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def create_app(config: Config | None = None, *, enqueue: Enqueue | None = None) -> Flask:
    """The API with every domain's blueprints (``payments.domains``).

    ``enqueue`` sends Celery tasks by name (default: to ``config.broker_url``).
    """
    config = config or load_config()
    app = Flask(__name__)
    # A NUL in a path segment matches no route (404): no id holds one, and PostgreSQL would
    # refuse to compare it (a 500).
    app.url_map.converters["string"] = app.url_map.converters["default"] = _NoNulConverter
    app.config.update(
        CREATORPAY=config,
        MAX_CONTENT_LENGTH=MAX_BODY,
        API_TITLE="creatorpay",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Swagger UI's assets come from the swagger-ui-bundle package, served by us: the docs
        # page works offline and loads nothing from a CDN.
        OPENAPI_SWAGGER_UI_URL="/docs-assets/",
        # The contract's error shape, documented for every operation.
        API_SPEC_OPTIONS={
            "info": {"description": "Creator monetization and payments API. See docs/api.md."}
        },
    )
    app.extensions[EXTENSION] = {"enqueue": enqueue or celery_enqueue(config.broker_url)}
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logs.configure(config)  # one root handler: JSON or text, context fields, redaction

    from payments import db, errors

    db.init_app(app)
    clock.follow(config.clock_url)

    @app.before_request
    def _check_envelope() -> None:
        # Contract order: routing (404/405) first, then the envelope (413, 415), then auth.
        if request.routing_exception is not None:
            raise request.routing_exception
        if request.method not in _BODY_METHODS:
            return
        length = request.content_length
        if length is not None and length > MAX_BODY:
            raise RequestEntityTooLarge()
        has_body = bool(length) or request.headers.get("Transfer-Encoding") == "chunked"
        if has_body and not request.is_json:
            raise UnsupportedMediaType()

    _serve_swagger_assets(app)
    # webargs would drop unknown query parameters; let each schema's Meta decide (RAISE).
    ArgumentsMixin.ARGUMENTS_PARSER.DEFAULT_UNKNOWN_BY_LOCATION = {}
    # Invalid input is a 400 in our contract (and documented so), not webargs' 422.
    ArgumentsMixin.ARGUMENTS_PARSER.DEFAULT_VALIDATION_STATUS = 400
    _refuse_nul_characters(ArgumentsMixin.ARGUMENTS_PARSER)
    api = CreatorpayApi(app)
    api.spec.components.security_scheme(SECURITY_SCHEME, {
        "type": "http", "scheme": "bearer",
        "description": "An API key: ck_ creator, fk_ fan, bk_ brand, ak_ admin. Each operation "
                       "that needs one names the kinds it takes in x-roles."})
    # After the Api: its own HTTPException handler must not shadow ours.
    errors.init_app(app)
    for module in domains.view_modules():
        for blp in getattr(module, "blueprints", None) or [module.blp]:
            api.register_blueprint(blp)
        init = getattr(module, "init_app", None)
        if init is not None:
            init(app)
    _check_presented_keys(app)
    limits.init_app(app, config)  # after the blueprints: it limits the routes they serve
    # Last, so it is the outermost WSGI layer: request ids, the request line and request
    # metrics for every answer, the webhook fast path's included.
    observe.init_app(app)
    return app


class _NoNulConverter(UnicodeConverter):
    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\x00]")


def _refuse_nul_characters(parser: Any) -> None:
    """Input (JSON bodies, query strings) with a NUL character anywhere is a 400 naming the
    field, at the input stage of the contract's order (once per process)."""
    if getattr(parser, "_creatorpay_nul_check", False):
        return
    load = parser._load_location_data

    def checked(*, schema: Any, req: Any, location: str) -> Any:
        data = load(schema=schema, req=req, location=location)
        path = nul_path(data)
        if path is not None:
            raise ValidationError({path: ["Text may not contain the NUL character."]})
        return data

    parser._load_location_data = checked
    parser._creatorpay_nul_check = True


class CreatorpayApi(Api):  # type: ignore[misc]
    """flask-smorest's Api documenting every error in the contract's shape."""

    ERROR_SCHEMA = ErrorSchema


def _check_presented_keys(app: Flask) -> None:
    """Every ``/v1`` route authenticates a key it is given (see ``auth.check_presented_key``)."""
    from payments.auth import check_presented_key

    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.rule.startswith("/v1/")}
    for endpoint in endpoints:
        app.view_functions[endpoint] = check_presented_key(app.view_functions[endpoint])


def _serve_swagger_assets(app: Flask) -> None:
    from flask import send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs-assets/<path:filename>")
    def _swagger_asset(filename: str) -> Any:
        return send_from_directory(swagger_ui_path, filename)
