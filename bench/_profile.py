"""Profiling for the benchmarks (``--profile DIR``): yappi in every gunicorn worker and every
Celery pool process, each process's stats written to ``DIR`` when it exits, then printed as
one table of the functions with the most CPU per part.

    gunicorn --config python:bench._profile ...   # our gunicorn settings, profiled
    celery -A bench._profile worker ...            # the ``tasks`` app, profiled

Both read ``CREATORPAY_BENCH_PROFILE_DIR``. yappi (``pip install yappi``) counts every
thread's CPU time, which cProfile cannot in gunicorn's threaded workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from payments.gunicorn_conf import accesslog, child_exit, logconfig_dict  # noqa: F401
from tasks import app  # noqa: F401 - ``celery -A bench._profile``

DIR_ENV = "CREATORPAY_BENCH_PROFILE_DIR"


def _start() -> None:
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)


def _save(part: str) -> None:
    import yappi

    yappi.stop()
    out = Path(os.environ[DIR_ENV]) / f"{part}-{os.getpid()}.pstat"
    yappi.get_func_stats().save(str(out), type="pstat")


# gunicorn hooks
def post_worker_init(_worker: Any) -> None:
    _start()


def worker_exit(_server: Any, _worker: Any) -> None:
    _save("web")


# Celery: the pool process (not the parent) runs the tasks.
if os.environ.get(DIR_ENV):
    from celery.signals import worker_process_init, worker_process_shutdown

    worker_process_init.connect(lambda **_: _start(), weak=False)
    worker_process_shutdown.connect(lambda **_: _save("celery"), weak=False)


def report(directory: Path, top: int = 25) -> None:
    """The functions with the most CPU of their own, and the most in total, per part."""
    import pstats

    for part in ("web", "celery"):
        files = sorted(str(p) for p in directory.glob(f"{part}-*.pstat"))
        if not files:
            print(f"profile: no {part} stats in {directory}")
            continue
        stats = pstats.Stats(*files)
        print(f"\n=== profile: {part} ({len(files)} processes) by own time")
        stats.sort_stats("tottime").print_stats(top)
        print(f"=== profile: {part} by cumulative time")
        stats.sort_stats("cumulative").print_stats(top)
