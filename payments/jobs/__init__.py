"""Run a scheduled (beat) job now, on the workers, instead of waiting for its next tick.

The beat intervals are real time, but the sandbox clock jumps days at once: the demo (and an
operator who has just fixed something) asks for ``ledger.mature`` or ``deals.auto_approve``
now. Only the jobs the domains schedule can be asked for, and they are idempotent.
"""

from payments.domains import Domain

DOMAIN = Domain(name="jobs", views="payments.jobs.views")
