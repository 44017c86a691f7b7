"""The dashboard: one API route that makes a sign-in link, and the HTML pages it opens.

``POST /v1/creators/me/dashboard_links`` (API key, JSON, in the OpenAPI document) answers a
link ``/dashboard/sign-in?token=...``. Its GET checks the token and shows a button; the
button POSTs (no body) and so uses the link up, sets the session cookie (HttpOnly,
SameSite=Strict, path ``/dashboard``) and redirects (303) to ``/dashboard``, so the token
leaves the address bar. A button rather than a redirect on GET: mail scanners and link
previews fetch links, and would use a single-use link up; and a Strict cookie set by a
cross-site navigation would not be sent on its own redirect, whereas the POST is same-site.

The pages answer HTML, errors included (401 for a missing, expired, used or tampered link
or session; 403 for a sign-in posted from another site; 404, 400), never JSON.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlparse

from flask import Blueprint as FlaskBlueprint
from flask import Flask, Response, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from payments.auth import principal, require
from payments.dashboard import service
from payments.db import request_session
from payments.errors import Forbidden, InvalidRequest, NotFound, PaymentsError, Unauthorized
from payments.money import CURRENCIES
from payments.statements import render
from payments.statements import service as statements
from payments.web import app_config

COOKIE = "creatorpay_dashboard"
CSV = "text/csv"
PDF = "application/pdf"
# No script at all; the page's own inline styles and SVG only.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

blp = Blueprint("dashboard", __name__, url_prefix="/v1",
                description="Creator dashboard sign-in links")
pages = FlaskBlueprint("dashboard_pages", __name__, url_prefix="/dashboard",
                       template_folder="templates")


class DashboardLinkSchema(Schema):
    object = fields.String(metadata={"description": "dashboard_link"})
    url = fields.String(metadata={"description": "Open within expires_at; works once"})
    expires_at = fields.Integer(metadata={"description": "Unix seconds"})


@blp.route("/creators/me/dashboard_links")
class DashboardLinks(MethodView):
    @require("creator")
    @blp.response(201, DashboardLinkSchema)
    def post(self) -> dict[str, Any]:
        """A short-lived, single-use sign-in link to the creator's dashboard.

        The link carries a token signed with the server's secret, bound to this creator and
        this API key (revoking the key ends its links and sessions); never the key itself.
        """
        p = principal()
        assert p.owner_id is not None and p.key_id is not None
        link = service.make_link(request_session(), app_config(), p.owner_id, p.key_id)
        url = request.host_url.rstrip("/") + "/dashboard/sign-in?" + urlencode(
            {"token": link.token})
        return {"object": "dashboard_link", "url": url, "expires_at": link.expires_at}


# ----------------------------------------------------------------------------- pages


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.errorhandler(PaymentsError)
def _payments_error(exc: PaymentsError) -> Response:
    return _html(render_template("dashboard/error.html", status=exc.status_code,
                                 code=exc.code, message=exc.message), exc.status_code)


@pages.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    return _html(render_template("dashboard/error.html", status=status,
                                 code=(exc.name or "error").lower().replace(" ", "_"),
                                 message=exc.description or exc.name), status)


def _same_site_post() -> None:
    """A sign-in or sign-out form is posted from our own page, never from another site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise Forbidden("Sign in from the link itself.", code="cross_site_request")
    if origin and origin != "null" and urlparse(origin).netloc != request.host:
        raise Forbidden("Sign in from the link itself.", code="cross_site_request")


def _token() -> str:
    token = request.args.get("token", "")
    if not token or len(token) > 1000:
        raise Unauthorized("This link is not valid.", code="dashboard_link_invalid")
    return token


@pages.get("/sign-in")
def sign_in_page() -> Response:
    """Check the link without using it up, and offer the button that does."""
    token = _token()
    creator = service.check_link(request_session(), app_config(), token)
    return _html(render_template("dashboard/sign_in.html", creator=creator,
                                 action=url_for(".sign_in", token=token)))


@pages.post("/sign-in")
def sign_in() -> BaseResponse:
    _same_site_post()
    session = request_session()
    config = app_config()
    grant = service.open_link(session, config, _token())
    session.commit()
    response = redirect(url_for(".dashboard"), code=303)
    response.set_cookie(COOKIE, grant.cookie, max_age=config.dashboard_session_ttl,
                        path="/dashboard", httponly=True, samesite="Strict",
                        secure=request.is_secure)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@pages.post("/sign-out")
def sign_out() -> Response:
    _same_site_post()
    session = request_session()
    service.sign_out(session, app_config(), request.cookies.get(COOKIE))
    session.commit()
    response = _html(render_template("dashboard/error.html", status=200, code="signed_out",
                                     message="You are signed out."))
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="Strict",
                           secure=request.is_secure)
    return response


@pages.get("")
def dashboard() -> Response:
    session = request_session()
    creator = service.session_creator(session, app_config(), request.cookies.get(COOKIE))
    data = service.page(session, creator)
    return _html(render_template("dashboard/dashboard.html", d=data,
                                 charts=[chart(c) for c in data["charts"]],
                                 kinds=service.EARNING_KINDS))


@pages.get("/statements/<string:period>.<string:fmt>")
def statement_file(period: str, fmt: str) -> Response:
    """The month's statement as CSV or PDF, made by the statements service and renderers."""
    session = request_session()
    creator = service.session_creator(session, app_config(), request.cookies.get(COOKIE))
    if fmt not in ("csv", "pdf"):
        raise NotFound("Statements come as .csv or .pdf.", code="not_found")
    statements.check_period(creator, period)
    currency = (request.args.get("currency") or creator.default_currency).strip().lower()
    if currency not in CURRENCIES or set(request.args) - {"currency"}:
        raise InvalidRequest("Unknown currency or parameter.", param="currency")
    name = f"statement-{creator.handle}-{period}-{currency}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"',
               "Cache-Control": "no-store"}
    if fmt == "csv":
        lines = list(statements.lines(session, creator.id, currency, period))
        return Response(render.csv_lines(lines), mimetype=CSV, headers=headers)
    body = statements.statement(session, creator, currency, period)
    return Response(render.pdf(body, creator.display_name, creator.handle), mimetype=PDF,
                    headers=headers)


# ----------------------------------------------------------------------------- the chart

CHART_W, CHART_H, PLOT_TOP, PLOT_BOTTOM, LEFT = 960, 200, 22, 172, 8
BAR_W, BAR_GAP = 22, 4


def chart(data: dict[str, Any]) -> dict[str, Any]:
    """Integer geometry of the grouped bar chart (months x kinds); heights scale to the
    largest figure, in whole pixels (no float: the figures are integers)."""
    months = data["months"]
    kinds = [k for k, _ in service.EARNING_KINDS]
    top = max([m[k] for m in months for k in kinds] + [1])
    plot_h = PLOT_BOTTOM - PLOT_TOP
    slot = (CHART_W - LEFT) // max(len(months), 1)
    group = len(kinds) * BAR_W + (len(kinds) - 1) * BAR_GAP
    bars, labels = [], []
    for i, month in enumerate(months):
        x0 = LEFT + i * slot + (slot - group) // 2
        labels.append({"x": LEFT + i * slot + slot // 2, "period": month["period"]})
        for j, kind in enumerate(kinds):
            amount = month[kind]
            h = max(amount, 0) * plot_h // top
            bars.append({"x": x0 + j * (BAR_W + BAR_GAP), "y": PLOT_BOTTOM - h, "h": h,
                         "w": BAR_W, "kind": kind, "period": month["period"],
                         "amount": amount})
    return {"currency": data["currency"], "width": CHART_W, "height": CHART_H,
            "baseline": PLOT_BOTTOM, "top": top, "bars": bars, "labels": labels,
            "months": months}


def _money(amount: int, currency: str) -> str:
    return render.money(int(amount), currency)


def init_app(app: Flask) -> None:
    app.add_template_filter(_money, "money")
    app.add_template_filter(lambda ts: statements.period_of(int(ts)) if ts else "", "month")
    from datetime import UTC, datetime

    app.add_template_filter(
        lambda ts: datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M"), "when")
    app.register_blueprint(pages)
