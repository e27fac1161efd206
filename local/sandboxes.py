"""Lambda's execution model for the local API tier: one process per concurrent invocation.

Lambda runs each concurrent request in a sandbox of its own, which serves one invocation at a time and keeps
its module state (clients, Powertools' Logger and Metrics) from one invocation to the next. Threads of one
process would share that state: concurrent requests would log each other's keys and flush each other's
metrics. So each sandbox here is a process, forked from a server process that has imported the handler once
(a new sandbox starts warm in milliseconds; its first invocation still reports cold_start like Lambda's).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

HANDLER_MODULE = "handlers.inference_proxy"


def _sandbox_init(server_pid: int) -> None:
    # Ctrl-C on `make demo` reaches the whole process group; the server shuts the sandboxes down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One write() per log line: sandboxes share the server's stdout, and PYTHONUNBUFFERED would otherwise
    # write each JSON line and its newline separately, letting two sandboxes' lines interleave.
    sys.stdout.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True).start()


def _exit_with_server(server_pid: int) -> None:
    """A killed server (SIGKILL, or no chance to shut down) must not leave its sandboxes behind."""
    while True:
        time.sleep(1)
        try:
            os.kill(server_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone (PermissionError: the pid now is someone else's)
            os._exit(0)


def _import_handler() -> None:
    import handlers.inference_proxy  # noqa: F401  (the fork server's preload swallows import errors)


def _invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from handlers.inference_proxy import handler  # imported by the fork server already: no cost

    return handler(event, context)


class LambdaSandboxes:
    """Up to `max_sandboxes` concurrent invocations; more wait for a free sandbox (Lambda would add one).

    The handler reads its configuration from os.environ at import, so set the environment before the first
    `submit` (which starts the fork server).
    """

    def __init__(self, max_sandboxes: int):
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([HANDLER_MODULE])
        self._max = max_sandboxes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._max, mp_context=self._context, initializer=_sandbox_init, initargs=(os.getpid(),)
        )

    def warm(self) -> None:
        """Start the fork server and one sandbox now, so the first request does not wait for them; a
        configuration the handler refuses at import stops the stack here, with the handler's own error."""
        self._pool.submit(_import_handler).result(timeout=120)

    def submit(self, event: dict[str, Any], context: Any) -> Future:
        try:
            return self._pool.submit(_invoke, event, context)
        except BrokenProcessPool:  # a sandbox died (killed, out of memory): Lambda replaces it, so do we
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(_invoke, event, context)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
