"""One way for tests to wait for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable

# Only ends a hang: a loaded CI machine has been seen 20x slower than an idle one, so no test may rely on it.
HANG_GUARD_S = 60.0


def wait_until(condition: Callable[[], object], what: str = "the condition", timeout: float = HANG_GUARD_S) -> None:
    """Polls `condition` until it holds; fails naming `what` once `timeout` has passed without it."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)
