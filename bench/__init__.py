"""`make bench` (__main__.py) and `make loadtest` (loadtest.py)."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP (a CI timeout, a closed terminal) unwind like Ctrl-C, through every `finally`, as exit
    status 128 + the signal: a local stack or TorchServe started in a session of its own, and an unpacked model,
    would otherwise outlive the run. The previous handlers come back after (a CLI's main() also runs in the tests)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
