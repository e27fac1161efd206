"""Imported first by the Lambda sandboxes' fork server: gives it, and so every sandbox, only the function's environment.

The server puts that environment in LOCAL_SANDBOX_ENVIRONMENT (JSON) and never changes its own otherwise.
multiprocessing execs the fork server with the server's environment, at the first sandbox and again, on its own,
whenever the fork server has died (ForkServer.ensure_running, called for every new process). Here, before the
handler is imported, the fork server execs itself once more with exactly the function's environment: same pid,
same command line, its listening socket and pipe inherited, and /proc/<pid>/environ clean too.
"""

from __future__ import annotations

import json
import os
import sys

VARIABLE = "LOCAL_SANDBOX_ENVIRONMENT"


def _is_fork_server() -> bool:
    argv = getattr(sys, "orig_argv", [])
    return "-c" in argv and "from multiprocessing.forkserver import main" in argv[-1]


def _reexec_with_function_environment() -> None:
    wanted = os.environ.get(VARIABLE)
    if wanted is None or not _is_fork_server():  # already re-exec'd, or imported anywhere else: nothing to do
        return
    os.execve(sys.executable, sys.orig_argv, json.loads(wanted))  # noqa: S606 (the same command, not a shell)


_reexec_with_function_environment()
