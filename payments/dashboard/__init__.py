"""The creator dashboard: a server-rendered page of balances, activity, earnings and deals.

The creator signs in with a short-lived, single-use link made by an API call with their key
(``POST /v1/creators/me/dashboard_links``); the link opens a short cookie session. Every
figure comes from the ledger, statements and deals services: nothing is computed twice.
"""

from payments.domains import Domain

DOMAIN = Domain(
    name="dashboard",
    models=["payments.dashboard.models"],
    views="payments.dashboard.views",
)
