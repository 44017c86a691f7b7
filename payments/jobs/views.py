"""``/v1/admin/jobs``: the scheduled jobs, and running one now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from payments import domains
from payments.auth import require
from payments.errors import NotFound
from payments.web import enqueue

blp = Blueprint("jobs", __name__, url_prefix="/v1", description="Scheduled jobs, run on demand")


class JobSchema(Schema):
    name = fields.String(required=True)
    task = fields.String(required=True)
    every_seconds = fields.Integer(allow_none=True)


class JobListSchema(Schema):
    data = fields.List(fields.Nested(JobSchema), required=True)


class JobRunSchema(Schema):
    name = fields.String(required=True)
    task = fields.String(required=True)
    enqueued = fields.Boolean(required=True)


def _jobs() -> dict[str, dict[str, Any]]:
    jobs = {}
    for name, entry in sorted(domains.beat_schedule().items()):
        every = entry.get("schedule")
        jobs[name] = {"name": name, "task": entry["task"],
                      "every_seconds": (int(every.total_seconds())
                                        if isinstance(every, timedelta) else None)}
    return jobs


@blp.route("/admin/jobs")
class Jobs(MethodView):
    @require("admin")
    @blp.response(200, JobListSchema)
    def get(self) -> dict[str, Any]:
        """Every job the beat runs, with its interval."""
        return {"data": list(_jobs().values())}


@blp.route("/admin/jobs/<string:name>/run")
class RunJob(MethodView):
    @require("admin")
    @blp.response(202, JobRunSchema)
    @blp.alt_response(404, description="job_not_found: no scheduled job of that name")
    def post(self, name: str) -> dict[str, Any]:
        """Queue the job for the workers now (it also keeps its schedule). Answers once it
        is queued, not done: watch what it changes (a balance, a milestone)."""
        job = _jobs().get(name)
        if job is None:
            raise NotFound(f"No scheduled job named {name!r}; GET /v1/admin/jobs lists them.",
                           code="job_not_found", param="name")
        entry = domains.beat_schedule()[name]
        enqueue(job["task"], *entry.get("args", ()))
        return {"name": name, "task": job["task"], "enqueued": True}
