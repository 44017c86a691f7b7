"""Products and prices (a family of ``Sandbox``; see ``engine.py``)."""

from __future__ import annotations

from payments.sandbox.core import SandboxCore, route
from payments.sandbox.model import (
    Ctx,
    Obj,
    invalid,
    p_bool,
    p_currency,
    p_dict,
    p_int,
    p_metadata,
    p_req,
    p_str,
)


class ProductsMixin(SandboxCore):
    """Products and one-off or recurring prices."""

    # ---------------------------------------------------------------- products

    @route("POST", "/v1/products",
           params={"name", "description", "metadata", "active", "id", "statement_descriptor",
                   "unit_label", "type", "tax_code", "url", "images", "default_price_data"})
    def create_product(self, ctx: Ctx, p: Obj) -> Obj:
        pid = p_str(p, "id")
        if pid and pid in self.objects:
            raise invalid("Product already exists.", "id", "resource_already_exists")
        obj = self._new("product", None if pid else "prod", name=p_req(p, "name"),
                        description=p_str(p, "description"), metadata=p_metadata(p),
                        active=p_bool(p, "active", True), default_price=None, images=[],
                        marketing_features=[], package_dimensions=None, shippable=None,
                        statement_descriptor=p_str(p, "statement_descriptor"), tax_code=None,
                        unit_label=p_str(p, "unit_label"), url=None, type="service")
        if pid:
            obj["id"] = pid
        obj["updated"] = obj["created"]
        self._store(obj, ctx.account)
        self.emit("product.created", obj, ctx)
        return obj

    @route("GET", "/v1/products/<ident>")
    def retrieve_product(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("product", ident)

    @route("POST", "/v1/products/<ident>",
           params={"name", "description", "metadata", "active", "default_price"})
    def update_product(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        obj = self._get("product", ident)
        prev: Obj = {}
        for k in ("name", "description"):
            if k in p:
                prev[k] = obj[k]
                obj[k] = p_str(p, k, required=k == "name")
        if "active" in p:
            prev["active"] = obj["active"]
            obj["active"] = p_bool(p, "active")
        if "default_price" in p:
            prev["default_price"] = obj["default_price"]
            obj["default_price"] = self._get("price", p_str(p, "default_price"),
                                             param="default_price")["id"]
        if "metadata" in p:
            prev["metadata"] = obj["metadata"]
            obj["metadata"] = p_metadata(p, obj["metadata"])
        obj["updated"] = self.now()
        self.emit("product.updated", obj, ctx, previous=prev)
        return obj

    @route("GET", "/v1/products")
    def list_products(self, ctx: Ctx, p: Obj) -> Obj:
        return self._list("product", p, "/v1/products", None, False)

    # ---------------------------------------------------------------- prices

    @route("POST", "/v1/prices",
           params={"currency", "unit_amount", "product", "product_data", "recurring", "metadata",
                   "nickname", "lookup_key", "active", "tax_behavior", "billing_scheme"})
    def create_price(self, ctx: Ctx, p: Obj) -> Obj:
        currency = p_currency(p)
        amount = p_int(p, "unit_amount", required=True, minimum=0)
        product = p_str(p, "product")
        if product:
            self._get("product", product, param="product")
        else:
            pdata = p_dict(p, "product_data")
            if not pdata:
                raise invalid("Missing required param: product.", "product", "parameter_missing")
            product = self.create_product(ctx, {"name": pdata.get("name", ""),
                                                "metadata": pdata.get("metadata", {})})["id"]
        rec = p_dict(p, "recurring")
        recurring: Obj | None = None
        if rec:
            interval = rec.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid recurring[interval]", "recurring[interval]")
            count = p_int(rec, "interval_count", minimum=1) or 1
            recurring = {"interval": interval, "interval_count": count, "meter": None,
                         "usage_type": "licensed",
                         "trial_period_days": p_int(rec, "trial_period_days")}
        obj = self._new("price", "price", active=p_bool(p, "active", True),
                        billing_scheme="per_unit", currency=currency, custom_unit_amount=None,
                        lookup_key=p_str(p, "lookup_key"), metadata=p_metadata(p),
                        nickname=p_str(p, "nickname"), product=product, recurring=recurring,
                        tax_behavior=p_str(p, "tax_behavior") or "unspecified", tiers_mode=None,
                        transform_quantity=None,
                        type="recurring" if recurring else "one_time", unit_amount=amount,
                        unit_amount_decimal=str(amount))
        self._store(obj, ctx.account)
        self.emit("price.created", obj, ctx)
        return obj

    @route("GET", "/v1/prices/<ident>")
    def retrieve_price(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        return self._get("price", ident)

    @route("POST", "/v1/prices/<ident>", params={"metadata", "active", "nickname"})
    def update_price(self, ctx: Ctx, p: Obj, ident: str) -> Obj:
        obj = self._get("price", ident)
        prev: Obj = {}
        if "active" in p:
            prev["active"] = obj["active"]
            obj["active"] = p_bool(p, "active")
        if "nickname" in p:
            prev["nickname"] = obj["nickname"]
            obj["nickname"] = p_str(p, "nickname")
        if "metadata" in p:
            prev["metadata"] = obj["metadata"]
            obj["metadata"] = p_metadata(p, obj["metadata"])
        self.emit("price.updated", obj, ctx, previous=prev)
        return obj

    @route("GET", "/v1/prices")
    def list_prices(self, ctx: Ctx, p: Obj) -> Obj:
        product = p_str(p, "product")
        return self._list("price", p, "/v1/prices",
                          (lambda o: o["product"] == product) if product else None, False)
