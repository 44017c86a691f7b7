"""The sandbox clock as other threads see it while an advance runs its jobs.

``POST /_sandbox/clock/advance`` holds the sandbox's lock while it runs what falls due, but
``GET /_sandbox/clock`` (which the app's business clock follows) does not wait for it. A job
emits events the app handles at once; if the clock answered the time before the advance
between two jobs, the app would book a renewal weeks before the renewal happened, and the
statements (which find a month's lines by posting time) would miss it.
"""

from __future__ import annotations

import threading

from payments.sandbox.engine import Sandbox

DAY = 86_400


class Probe(Sandbox):
    """A sandbox with a job that records the clock as another thread reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def _job_probe(self) -> None:
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(self.now()))
        reader.start()
        reader.join()
        self.seen.extend(seen)


def test_between_jobs_of_an_advance_the_clock_answers_the_newest_job_time() -> None:
    sb = Probe()
    start = sb.now()
    sb.schedule(start + 10 * DAY, "probe")
    sb.schedule(start + 20 * DAY, "probe")
    # What advance() does before it moves the offset: run the jobs due on the way.
    assert sb.run_due(until=start + 30 * DAY) == 2
    assert sb.now() >= start + 20 * DAY
    # Each job (and whatever reads the clock while it runs) saw its own due time.
    assert sb.seen[0] >= start + 10 * DAY and sb.seen[1] >= start + 20 * DAY


def test_advance_still_moves_by_exactly_the_seconds_asked() -> None:
    sb = Probe()
    start = sb.now()
    sb.schedule(start + DAY, "probe")
    sb.advance(2 * DAY)
    assert start + 2 * DAY <= sb.now() <= start + 2 * DAY + 5
    sb.advance(DAY)
    assert start + 3 * DAY <= sb.now() <= start + 3 * DAY + 5
