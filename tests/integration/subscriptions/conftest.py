"""A live stack on a sandbox of the test's own: its clock moves only for this test's
subscriptions, and its Events API holds only this test's events."""

from __future__ import annotations

import pytest

from tests.fixtures.live import LiveApp


@pytest.fixture
def subs_stack(private_stack: LiveApp) -> LiveApp:
    return private_stack
