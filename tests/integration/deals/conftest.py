"""A served app, a private sandbox (we move its clock) whose clock the app follows, and a real
Celery worker thread: the whole deal pipeline, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from payments.config import Config
from tests.fixtures.live import LiveApp, stack_on_private_sandbox
from tests.fixtures.sandbox import SandboxHandle


@pytest.fixture
def deal_stack(request: pytest.FixtureRequest, committed_db: Config,
               private_sandbox: SandboxHandle, celery_app: Any,
               base_config: Config) -> Iterator[LiveApp]:
    """Config overrides may come as the fixture's (indirect) parameter."""
    with stack_on_private_sandbox(committed_db, private_sandbox, celery_app, base_config,
                                  **getattr(request, "param", {})) as live:
        yield live
