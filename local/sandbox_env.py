"""Imported first by the Lambda sandboxes' fork server: gives it, and so every sandbox, only the function's environment.

The server puts that environment in LOCAL_SANDBOX_ENVIRONMENT (JSON) and never changes its own otherwise.
multiprocessing starts the fork server with the server's environment, at the first sandbox and again, on its own,
whenever the fork server has died (ForkServer.ensure_running, called for every new process). Imported there before
the handler, which reads its configuration at import, this replaces the fork server's environment with exactly the
function's, and every sandbox forked from it inherits that. The fork server is single-threaded while it preloads,
so replacing os.environ there races nothing. (The initial environment block the kernel shows in /proc/<pid>/environ
is not rewritten: Python code in a sandbox, boto3 included, sees only the function's environment.)

It also gives them Lambda's stdout and stderr, which never refuse a write: the sandboxes share the server's, and once
nobody reads those (`make demo | head`, a stopped `tee`, a closed terminal), a print (Powertools' metrics flush)
raised BrokenPipeError (or EIO) in the handler and every request failed. The function's lines are only lost then,
as a log nobody reads is.
"""

from __future__ import annotations

import json
import os
import sys

VARIABLE = "LOCAL_SANDBOX_ENVIRONMENT"


def _is_fork_server() -> bool:
    argv = getattr(sys, "orig_argv", [])
    return "-c" in argv and "from multiprocessing.forkserver import main" in argv[-1]


def _adopt_function_environment() -> None:
    wanted = os.environ.get(VARIABLE)
    if wanted is None or not _is_fork_server():  # imported anywhere else (the server, tests): leave it alone
        return
    os.environ.clear()
    os.environ.update(json.loads(wanted))


class LambdaStream:
    """A text stream whose writes never fail for want of a reader: after one failed (a broken pipe, a closed
    terminal's EIO) it drops what it is given."""

    def __init__(self, stream: object) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except OSError:  # a broken pipe, or EIO from a terminal that was closed (SIGHUP)
                self._gone = True
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError:
                self._gone = True

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _adopt_lambda_streams() -> None:
    if os.environ.get(VARIABLE) is None or not _is_fork_server():
        return
    sys.stdout = LambdaStream(sys.stdout)
    sys.stderr = LambdaStream(sys.stderr)


_adopt_lambda_streams()  # first: the environment's check reads VARIABLE, which it clears
_adopt_function_environment()
