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
from collections import deque
from collections.abc import Callable
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

    Each sandbox is an executor of its own with one worker process, so a sandbox that dies (killed, out of
    memory) fails only the invocation it was running, as in Lambda (Runtime.ExitError), and is replaced; one
    shared process pool would mark itself broken and fail every invocation in flight.

    The handler reads its configuration from os.environ at import, so set the environment before the first
    `submit` (which starts the fork server). `target` and `preload` exist for tests: the function each
    invocation runs, and the module the fork server imports once for every sandbox.
    """

    def __init__(self, max_sandboxes: int, target: Callable[[Any, Any], Any] = _invoke, preload: str = HANDLER_MODULE):
        if max_sandboxes < 1:
            raise ValueError(f"max_sandboxes must be at least 1, got {max_sandboxes}")
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([preload])
        self._max = max_sandboxes
        self._target = target
        self._lock = threading.Lock()
        self._sandboxes: set[ProcessPoolExecutor] = set()  # every live sandbox, idle or busy
        self._idle: list[ProcessPoolExecutor] = []  # a stack: the most recently used sandbox serves next, as in Lambda
        self._waiting: deque[tuple[Future, Any, Any]] = deque()
        self._closed = False

    @property
    def size(self) -> int:
        """How many sandboxes are alive (idle or busy)."""
        with self._lock:
            return len(self._sandboxes)

    def _new_sandbox(self) -> ProcessPoolExecutor:
        sandbox = ProcessPoolExecutor(
            max_workers=1, mp_context=self._context, initializer=_sandbox_init, initargs=(os.getpid(),)
        )
        self._sandboxes.add(sandbox)
        return sandbox

    def _take(self) -> ProcessPoolExecutor | None:
        if self._idle:
            return self._idle.pop()
        if len(self._sandboxes) < self._max:
            return self._new_sandbox()
        return None

    def warm(self) -> None:
        """Start the fork server and one sandbox now, so the first request does not wait for them; a
        configuration the handler refuses at import stops the stack here, with the handler's own error."""
        with self._lock:
            sandbox = self._take()
        assert sandbox is not None  # max_sandboxes >= 1 and nothing runs yet
        try:
            sandbox.submit(_import_handler).result(timeout=120)
        finally:
            self._release(sandbox)

    def submit(self, event: Any, context: Any) -> Future:
        """Run the handler in a free sandbox; the future fails with BrokenProcessPool if that sandbox dies."""
        result: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandboxes are shut down")
            sandbox = self._take()
            if sandbox is None:
                self._waiting.append((result, event, context))
                return result
        self._start(sandbox, result, event, context)
        return result

    def _start(self, sandbox: ProcessPoolExecutor, result: Future, event: Any, context: Any) -> None:
        if not result.set_running_or_notify_cancel():  # the caller gave up while it waited for a sandbox
            self._release(sandbox)
            return
        try:
            inner = sandbox.submit(self._target, event, context)
        except BrokenProcessPool:  # it died while idle: Lambda never hands a request to a dead sandbox
            with self._lock:
                self._sandboxes.discard(sandbox)  # a broken executor has already shut itself down
                sandbox = self._new_sandbox()
            inner = sandbox.submit(self._target, event, context)
        except RuntimeError as e:  # shut down meanwhile
            result.set_exception(e)
            return
        inner.add_done_callback(lambda done: self._finished(sandbox, done, result))

    def _finished(self, sandbox: ProcessPoolExecutor, done: Future, result: Future) -> None:
        if done.cancelled():  # only shutdown() cancels, before the sandbox took the invocation
            self._release(sandbox)
            result.set_exception(RuntimeError("the sandboxes are shut down"))
            return
        error = done.exception()
        if isinstance(error, BrokenProcessPool):  # the sandbox died mid-invocation: Lambda starts a new one
            with self._lock:
                self._sandboxes.discard(sandbox)  # a broken executor has already shut itself down
            self._release(None)
        else:
            self._release(sandbox)
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(done.result())

    def _release(self, sandbox: ProcessPoolExecutor | None) -> None:
        """Hand a sandbox that became free (or the room a dead one left) to the invocations waiting for one."""
        starts = []
        with self._lock:
            if sandbox is not None:
                if self._closed:
                    sandbox.shutdown(wait=False, cancel_futures=True)
                else:
                    self._idle.append(sandbox)
            while self._waiting and not self._closed:
                free = self._take()
                if free is None:
                    break
                starts.append((free, *self._waiting.popleft()))
        for free, result, event, context in starts:
            self._start(free, result, event, context)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, deque()
            sandboxes, self._idle = list(self._sandboxes), []
            self._sandboxes.clear()
        for result, _, _ in waiting:
            result.cancel()
        for sandbox in sandboxes:
            sandbox.shutdown(wait=False, cancel_futures=True)
