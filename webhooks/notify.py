"""Tell the workers there is inbox work, without paying a task per event.

After the endpoint commits a new row it calls ``notify()``, which only sets a flag. One
background thread per process turns flags into ``webhooks.drain`` tasks, at most one per
``WINDOW`` seconds (the first at once after a quiet spell); a drain task processes every due
row, in batches. Each enqueue happens after the commit of every row that asked for it, so no
row is left without a drain after it.
A broker that is down never delays the answer: the flag stays set and the thread retries,
and the beat sweeper re-drives anything older in any case.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# Seconds between two drain tasks from one web process (at most 20 per second). A drain runs
# until no row is due, so under load one task per window keeps the workers busy; each extra
# task costs an enqueue here and a claim query on a worker. An event waits at most one window
# longer than the drain already running when it arrived.
WINDOW = 0.05
RETRY = 1.0


class Notifier:
    def __init__(self, send: Callable[[], None], window: float = WINDOW) -> None:
        self._send = send
        self._window = window
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self.sent = 0

    def use(self, send: Callable[[], None]) -> None:
        """Send drains with ``send`` from now on."""
        self._send = send

    def notify(self) -> None:
        self._ensure_thread()
        if not self._wanted.is_set():  # under load it mostly is: skip the Condition
            self._wanted.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="inbox-notifier",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                self._send()
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - the broker is down: keep the wish
                log.warning("could not enqueue webhooks.drain (%s); retrying", exc)
                self._wanted.set()
                time.sleep(RETRY)
                continue
            time.sleep(self._window)


def _not_configured() -> None:
    raise RuntimeError("the inbox notifier has no enqueue function (create_app sets one)")


# One per process; ``webhooks.views.init_app`` hands it the app's enqueue function.
notifier = Notifier(_not_configured)
