"""Engine tests run waits and retries with tiny countdowns (the real ones are seconds)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def fast_engine(settings: Any) -> None:
    settings.WIZARD_WAIT_COUNTDOWN_S = 0.01
    settings.WIZARD_RETRY_BACKOFF_S = 0.01
