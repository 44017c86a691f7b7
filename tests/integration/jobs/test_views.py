"""``/v1/admin/jobs``: list the beat's jobs, queue one now (by name, for the workers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from payments.auth import issue_key
from payments.config import Config


def test_list_and_run_a_scheduled_job(base_config: Config, db_session: Session) -> None:
    from payments import create_app

    sent: list[tuple[str, tuple[Any, ...]]] = []
    app = create_app(base_config, enqueue=lambda name, *args, retry=True: sent.append(
        (name, args)))
    client = app.test_client()
    admin = {"Authorization": f"Bearer {issue_key(db_session, 'admin', None)}"}

    listed = client.get("/v1/admin/jobs", headers=admin)
    assert listed.status_code == 200
    jobs = {j["name"]: j for j in listed.get_json()["data"]}
    assert jobs["ledger.mature"] == {"name": "ledger.mature", "task": "ledger.mature",
                                     "every_seconds": 300}
    assert "deals.auto_approve" in jobs

    ran = client.post("/v1/admin/jobs/deals.auto_approve/run", headers=admin)
    assert ran.status_code == 202, ran.get_json()
    assert ran.get_json() == {"name": "deals.auto_approve", "task": "deals.auto_approve",
                              "enqueued": True}
    assert sent == [("deals.auto_approve", ())]

    missing = client.post("/v1/admin/jobs/no.such.job/run", headers=admin)
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "job_not_found"
    creator = client.post("/v1/creators", json={
        "handle": "jobs_c", "display_name": "J", "email": "jobs_c@example.com",
        "kind": "influencer", "country": "US", "default_currency": "usd"}).get_json()
    as_creator = {"Authorization": f"Bearer {creator['api_key']}"}
    assert client.post("/v1/admin/jobs/ledger.mature/run", headers=as_creator).status_code == 403
    assert client.post("/v1/admin/jobs/ledger.mature/run").status_code == 401
    assert sent == [("deals.auto_approve", ())]
