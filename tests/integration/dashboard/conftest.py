"""A served app on a private sandbox (whose clock the app follows) and a real worker: the
dashboard's figures come from real tips and a real funded deal."""

from __future__ import annotations

import pytest

from tests.fixtures.live import LiveApp


@pytest.fixture
def dashboard_stack(private_stack: LiveApp) -> LiveApp:
    return private_stack
