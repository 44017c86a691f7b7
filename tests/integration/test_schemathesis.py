"""Schemathesis against our own ``/openapi.json``, in-process on the WSGI app, every operation.

Each operation is called with a key of a role that may call it (from the authorization
matrix's table; rotated when several may), with data that fits the schema (positive) and
data that does not (negative), its path parameters now random and now the ``world``'s real
ids, so the handler runs and not only the 404. Every answer must be:

- not a ``5xx`` (a ``503`` only where Stripe is unreachable on purpose: never here);
- documented: its status is listed for the operation, or is one every ``/v1`` operation may
  answer (``DEFAULT_STATUSES``, the ``default`` error response in the document);
- of the documented content type and matching the documented schema (errors too).

Each case runs in a savepoint rolled back afterwards, like the matrix. Money: every Stripe
call goes to the world's private sandbox (test mode, no real money), and the world holds no
matured balance, so a payout can only be refused; the examples per operation are capped to
keep a leg near a minute.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from payments.db import db
from tests.fixtures.summary import report
from tests.fixtures.world import World
from tests.integration.test_authorization import EXPECTED, route_key

# Any /v1 operation may answer these without listing them (the document's `default`
# response, in the contract's error shape): no or bad key, wrong role, envelope, limits,
# the database unavailable.
DEFAULT_STATUSES = {401, 403, 405, 413, 415, 429, 503}
# Examples per operation and mode; CREATORPAY_SCHEMATHESIS_SCALE=5 for a deeper local run,
# CREATORPAY_SCHEMATHESIS_SEED=<n> for other cases than CI's (which are the same every run).
SCALE = float(os.environ.get("CREATORPAY_SCHEMATHESIS_SCALE", "1"))
SEED = os.environ.get("CREATORPAY_SCHEMATHESIS_SEED")
EXAMPLES = {"positive": max(1, round(20 * SCALE)), "negative": max(1, round(10 * SCALE))}


def documented_status(ctx: Any, response: Any, case: Any) -> bool | None:
    responses = case.operation.definition.raw.get("responses", {})
    status = response.status_code
    if str(status) in responses or status in DEFAULT_STATUSES:
        return None
    raise AssertionError(
        f"{case.operation.label} answered {status}, which it does not document "
        f"(documented: {sorted(responses)}); body: {response.text[:300]}")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, documented_status, negative_data_rejection]


def roles_for(method: str, path: str) -> list[str]:
    """Roles that get past authorization on this operation (in the matrix's table)."""
    key = route_key(method.upper(), path.replace("{", "<").replace("}", ">"))
    assert key in EXPECTED, f"{key} has no line in test_authorization.EXPECTED: add one"
    expected = EXPECTED[key]
    return [role for role, status in expected.items()
            if status not in (401, 403) and role != "revoked"] or ["none"]


def real_path_values(w: World) -> dict[str, str]:
    from tests.integration.test_authorization import path_values

    return path_values(w)


def test_every_operation_fits_its_schema(world: World) -> None:
    w = world
    schema = schemathesis.openapi.from_wsgi("/openapi.json", w.app)
    # We send the keys (a role the operation takes); left on, schemathesis would draw the
    # bearer header itself, and drop it for its negative cases (401s, not bad input).
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    real = real_path_values(w)
    refs = {"creator": w.handles["creator"], "tier": w.ids["tier_b"]}
    conn = db._bound  # noqa: SLF001 - each case in a savepoint of the test's connection
    cases: Counter[str] = Counter()
    failures: dict[str, str] = {}
    empty: list[str] = []
    statuses: Counter[str] = Counter()
    started = time.monotonic()

    def fuzz(operation: Any, mode: str, examples: int) -> None:
        roles = roles_for(operation.method, operation.path)

        @(seed(int(SEED)) if SEED else (lambda test: test))
        @settings(max_examples=examples, deadline=None, derandomize=SEED is None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)),
               data=st.data())
        def run(case: Any, data: st.DataObject) -> None:
            role = data.draw(st.sampled_from(roles))
            if case.path_parameters and data.draw(st.booleans()):
                case.path_parameters = {
                    k: real.get(k, v) for k, v in case.path_parameters.items()}
            if mode == "positive" and isinstance(case.body, dict) and data.draw(st.booleans()):
                # Name the world's objects where the body names one (not only 404s); a
                # negative case keeps its body as drawn, so what makes it invalid stays.
                case.body = {k: refs[k] if k in refs and isinstance(v, str) else v
                             for k, v in case.body.items()}
            savepoint = conn.begin_nested()
            try:
                response = case.call(headers=w.headers(role))
                cases[operation.label] += 1
                statuses[f"{response.status_code // 100}xx"] += 1
                case.validate_response(response, checks=CHECKS)
            finally:
                savepoint.rollback()

        try:
            run()
        except Unsatisfiable:
            if mode == "positive":
                raise
            # Nothing can break the schema of an operation that takes no input (or only
            # path strings): there is no negative case to send.
            empty.append(operation.label)

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            try:
                fuzz(operation, mode, examples)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every one is tried
                failures.setdefault(f"{operation.label} ({mode})", str(exc)[:1500])

    total = sum(cases.values())
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
    report("schemathesis", f"{len(operations)} operations, {total} cases ({answers}; "
           f"{len(empty)} operations take no input a negative case could break; "
           f"{time.monotonic() - started:.0f} s)")
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert len(cases) == len(operations), {o.label for o in operations} - set(cases)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="payments.errors")
