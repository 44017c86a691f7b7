"""The dashboard's chart geometry (integers only) and its settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.config import ConfigError, load_config
from payments.dashboard.views import PLOT_BOTTOM, PLOT_TOP, chart

KINDS = ("tips", "subscriptions", "deals")


def months(*rows: tuple[int, int, int]) -> dict[str, object]:
    return {"currency": "usd", "months": [
        {"period": f"2026-{i + 1:02d}", **dict(zip(KINDS, row, strict=True))}
        for i, row in enumerate(rows)]}


def test_bars_scale_to_the_largest_figure_and_carry_their_amounts() -> None:
    c = chart(months((1000, 500, 0), (250, 0, 2000)))
    bars = {(b["period"], b["kind"]): b for b in c["bars"]}
    full = PLOT_BOTTOM - PLOT_TOP
    assert bars[("2026-02", "deals")]["h"] == full
    assert bars[("2026-01", "tips")]["h"] == full // 2
    assert bars[("2026-01", "subscriptions")]["h"] == full // 4
    assert bars[("2026-01", "deals")]["h"] == 0
    assert {b["amount"] for b in c["bars"]} == {1000, 500, 0, 250, 2000}
    assert [lbl["period"] for lbl in c["labels"]] == ["2026-01", "2026-02"]


@given(st.lists(st.tuples(*[st.integers(-10**12, 10**12)] * 3), min_size=1, max_size=12))
def test_geometry_is_whole_pixels_inside_the_plot(rows: list[tuple[int, int, int]]) -> None:
    c = chart(months(*rows))
    for bar in c["bars"]:
        for k in ("x", "y", "h", "w"):
            assert type(bar[k]) is int
        assert 0 <= bar["h"] <= PLOT_BOTTOM - PLOT_TOP
        assert bar["y"] + bar["h"] == PLOT_BOTTOM
        assert bar["x"] >= 0 and bar["x"] + bar["w"] <= c["width"]
    # No two bars overlap.
    spans = sorted((b["x"], b["x"] + b["w"]) for b in c["bars"])
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_settings_and_their_errors() -> None:
    config = load_config({})
    assert config.secret_key is None
    assert (config.dashboard_link_ttl, config.dashboard_session_ttl) == (600, 3600)
    secret = "s" * 40
    config = load_config({"CREATORPAY_SECRET_KEY": secret, "CREATORPAY_DASHBOARD_LINK_TTL": "60",
                          "CREATORPAY_DASHBOARD_SESSION_TTL": "900"})
    assert (config.secret_key, config.dashboard_link_ttl, config.dashboard_session_ttl) == (
        secret, 60, 900)
    assert secret not in repr(config)
    for env, needle in ((("SECRET_KEY", "short"), "SECRET_KEY"),
                        (("DASHBOARD_LINK_TTL", "5"), "DASHBOARD_LINK_TTL"),
                        (("DASHBOARD_SESSION_TTL", "ten"), "DASHBOARD_SESSION_TTL")):
        with pytest.raises(ConfigError, match=needle):
            load_config({"CREATORPAY_" + env[0]: env[1]})
