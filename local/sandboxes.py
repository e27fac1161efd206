"""Lambda's execution model for the local API tier: one process per concurrent invocation.

Lambda runs each concurrent request in a sandbox of its own, which serves one invocation at a time and keeps
its module state (clients, Powertools' Logger and Metrics) from one invocation to the next. Threads of one
process would share that state: concurrent requests would log each other's keys and flush each other's
metrics. So each sandbox here is a process, forked from a server process that has imported the handler once
(a new sandbox starts warm in milliseconds; its first invocation still reports cold_start like Lambda's).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import platform
import select
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import process as futures_process
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver, popen_forkserver, resource_tracker
from multiprocessing.context import ForkServerContext, ForkServerProcess
from typing import Any

from local.runtime import hold_multiprocessing_dir, stop_signals_held

# What the fork server preloads: the handler, without dying when it refuses its configuration (see the module).
HANDLER_PRELOAD = "local.sandbox_preload"


class _ThreadWakeup(futures_process._ThreadWakeup):
    """CPython's fix for gh-125451 (3.12.8, 3.13.1), which 3.11 never got: a wakeup and a close of an executor's
    wakeup pipe take one lock. Without it, the wakeup the interpreter's exit sends every executor (_python_exit) could
    pass its not-closed check as a sandbox's executor, shut down by LambdaSandboxes.shutdown, closed the pipe: that
    raised EBADF, so _python_exit joined no executor's thread, multiprocessing's exit closed a queue before its thread
    sent an idle sandbox its stop, and the stopped stack waited for that sandbox for ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        super().__init__()

    def close(self) -> None:
        with self._lock:
            super().close()

    def wakeup(self) -> None:
        with self._lock:
            super().wakeup()


if "_lock" not in futures_process._ThreadWakeup.__init__.__code__.co_names:  # a CPython without the fix
    futures_process._ThreadWakeup = _ThreadWakeup


_begun: Any = None  # in a sandbox: its shared count of invocations begun (see LambdaSandboxes._finished)
_terminated = False  # in a sandbox: a SIGTERM landed mid-invocation (see _begin)


def _sandbox_init(server_pid: int, begun: Any = None) -> None:
    global _begun
    _begun = begun
    # Ctrl-C on `make demo`, or a closed terminal's SIGHUP, reaches the whole process group; the server shuts the
    # sandboxes down itself once its requests are answered. (SIGTERM, which `timeout` and systemd send the group,
    # is held only mid-invocation, by _begin: an idle sandbox must still end at the pool's terminate().)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked in the fork server, whose fork this is
    # The function's timeout (see _begin) ends the sandbox through SIGALRM's default action.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    # One write() per log line: sandboxes share the server's stdout, and PYTHONUNBUFFERED would otherwise
    # write each JSON line and its newline separately, letting two sandboxes' lines interleave.
    sys.stdout.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    threading.Thread(target=_exit_with_server, args=(server_pid, os.getppid()), daemon=True).start()


def _server_gone(server_pid: int) -> bool:
    try:
        os.kill(server_pid, 0)
    except (ProcessLookupError, PermissionError):  # gone (PermissionError: the pid now is someone else's)
        return True
    # Exited but not reaped (a zombie) is gone too: a parent that reads the server's output until it ends (a pipe
    # this sandbox inherited and holds open) reaps it only then, and both would wait for ever. (No /proc: macOS.)
    try:
        with open(f"/proc/{server_pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _exit_with_server(server_pid: int, fork_server_pid: int) -> None:
    """A killed server (SIGKILL, or no chance to shut down) must not leave its sandboxes behind; nor one that
    left a sandbox behind that its executor could not stop.

    A sandbox whose fork server (its parent, `fork_server_pid`) died is one: its executor reads the sandbox's exit
    status from the fork server, so the first poll after that (every process start polls every child) takes it
    for exited, and terminate() then signals nothing. Its executor is broken (it saw the fork server's pipe close),
    so it exits too, or it would idle, uncounted, for as long as the server lives.

    Waited for on a pidfd of each, which turns readable once its process has exited (a zombie too): a poll woke
    every sandbox once a second for as long as it lived (the 64 of a load test, before idle sandboxes retired, kept
    an idle stack at 1.9% of a CPU, not 0.4%). Polled only where there is no pidfd (macOS, Linux before 5.3)."""
    watched: list[int] = []
    try:
        for pid in (server_pid, fork_server_pid):
            watched.append(os.pidfd_open(pid))
    except ProcessLookupError:  # gone already
        os._exit(0)
    except (AttributeError, OSError):  # no pidfds here
        for fd in watched:
            os.close(fd)
        watched = []
    if watched:
        # A pidfd is of whatever process holds the pid when it is opened: a server or fork server that had died before
        # (its pid reused, another user's) would be waited for in a stranger's process. Checked once, as the poll does.
        if _server_gone(server_pid) or os.getppid() != fork_server_pid:
            os._exit(0)
        exits = select.poll()  # not select.select, which refuses a descriptor past 1023
        for fd in watched:
            exits.register(fd, select.POLLIN)
        exits.poll()
        os._exit(0)
    while True:
        time.sleep(1)
        if _server_gone(server_pid) or os.getppid() != fork_server_pid:
            os._exit(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim; None where the C library has none (macOS, musl)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _return_freed_memory() -> None:
    """Hand the pages this process's allocator holds free back to the OS (glibc's malloc_trim).

    A burst leaves its freed memory in glibc's arenas, the main heap's and those its threads used (the invocations'
    payloads, the sandboxes' queues and threads, the in-process model's decode buffers), kept there for reuse: glibc
    gives back by itself only a heap's free top, none of the free pages under a block still in use. After a burst of
    64 concurrent requests the server process held about 50 MiB of them until it stopped. Called off the request path
    (the reaper); glibc's arenas go on serving meanwhile, each locked only while it is trimmed (5 ms in all, then)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class LambdaTimeout(Exception):
    """The invocation ran past the function's timeout: Lambda stopped it ("Task timed out after N seconds")."""


def _timeout_of(args: tuple) -> float | None:
    """The function's timeout, from the context an invocation is handed (its last argument), if it has one."""
    timeout_s = getattr(args[-1], "timeout_s", None) if args else None
    return float(timeout_s) if timeout_s else None


def _begin(fn: Callable[..., Any], *args: Any) -> Any:
    """Every call a sandbox runs: counted before it starts, so the server knows whether a sandbox that died
    had begun it; and stopped at the function's timeout, as Lambda stops it. The kernel does that (SIGALRM's
    default action ends the process), so a handler stuck in C code or holding the GIL is stopped too, and the
    server sees the sandbox die (see LambdaSandboxes._finished).

    A SIGTERM mid-invocation (to the whole process group: the server stops too, answering what is in flight
    first) waits for the invocation's end; the sandbox then ends as its next call begins, which, not yet counted,
    runs in a new sandbox."""
    global _terminated
    if _terminated:
        os.kill(os.getpid(), signal.SIGTERM)
    signal.signal(signal.SIGTERM, _hold_sigterm)
    if _begun is not None:
        _begun.value += 1
    timeout_s = _timeout_of(args)
    if timeout_s is not None:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn(*args)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if timeout_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _hold_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True


def _import_handler() -> None:
    import handlers.inference_proxy  # noqa: F401  (the fork server's preload skips a failed import: it fails here)


def _crash() -> None:
    """Fault injection: end the sandbox the way the OOM killer ends a Lambda sandbox."""
    os.kill(os.getpid(), signal.SIGKILL)


def _invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from handlers.inference_proxy import handler  # imported by the fork server already: no cost

    return handler(event, context)


@contextlib.contextmanager
def _helpers_start_with_stop_signals_blocked() -> Iterator[None]:
    """In this thread, the resource tracker started (if it is not running) with SIGHUP blocked, then SIGHUP, SIGINT
    and SIGTERM blocked until the block ends: a fork server started in it starts with them blocked.

    The fork server and the resource tracker are exec'd helpers: started with SIGHUP blocked, they keep it
    blocked, so a closed terminal does not kill them under the running sandboxes. Blocked, not ignored, in
    this process: a SIGHUP meanwhile is delivered to the server as soon as they are up.
    The fork server is started with SIGINT blocked too, and so is every sandbox forked from it: Ctrl-C
    reaches the whole process group, and one landing before they ignore it (the fork server once it has
    imported the handler, a sandbox in _sandbox_init) printed a KeyboardInterrupt traceback. (The resource
    tracker blocks SIGINT itself while it starts, then unblocks it in this thread: it is started first.)
    And SIGTERM, which `timeout` and systemd send the whole group: a fork server it killed took its busy sandboxes
    with it (see _exit_with_server). A sandbox unblocks it (_sandbox_init)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class SandboxStartError(RuntimeError):
    """A new sandbox could not start (its fork server died, or cannot run): the handler never ran."""


# What helps when the OS refuses what a new sandbox needs (its process, pipes, shared memory), by errno.
_REFUSAL_REMEDIES = {
    errno.EMFILE: "raise the open-file limit (ulimit -n) before starting the stack",
    errno.ENFILE: "the system's open-file table is full: close some programs, or raise fs.file-max",
    errno.EAGAIN: "raise the process limit (ulimit -u), or end some processes",
    errno.ENOMEM: "free some memory",
}


# What helps when the fork server, started again after it died, dies too where the sandbox's pid was to come
# (EOFError): it took the start and died before answering, most likely forking the sandbox, as it does when the OS
# refuses it that fork (EAGAIN, ENOMEM: CPython's forkserver.main does not catch it); a kill (the OOM killer) looks
# the same. Only its traceback, on the server's stderr, names the error.
_FORK_REFUSED_REMEDY = (
    ": the fork server died after taking the start, most likely forking the sandbox, as it does when the OS refuses"
    " it a process (its traceback names the error): raise the process limit (ulimit -u), end some processes, or free"
    " some memory"
)


def _what_helps(error: BaseException) -> str:
    """What helps with a refusal the OS gave (by its errno), as the end of a message ("": nothing known)."""
    if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        # A fork server started again makes its directory and socket in TMPDIR: full (of data or of inodes, which
        # df -h does not show), it said only "No space left on device", of no device named.
        return (
            f": the temporary directory {tempfile.gettempdir()} has no room for the sandboxes' fork server's socket:"
            " free some space (or inodes) there, or set TMPDIR to another directory"
        )
    remedy = _REFUSAL_REMEDIES.get(getattr(error, "errno", None))  # EOFError has none
    return f": {remedy}" if remedy else ""


def _refused_start(error: OSError) -> SandboxStartError:
    """A sandbox's start the OS refused (EMFILE, ENFILE, EAGAIN, ENOMEM), as the error its invocation fails with: the
    handler never ran, so the log must not blame it, and says what the OS refused and what helps."""
    refused = SandboxStartError(
        f"a Lambda sandbox could not start: the OS refused it ({type(error).__name__}: {error}){_what_helps(error)}"
    )
    refused.__cause__ = error
    return refused


# How long a sandbox's start waits for a fork server that refused it to finish dying (it exits in milliseconds).
FORK_SERVER_EXIT_WAIT_S = 5.0


def _fork_server_gone(pid: int, timeout_s: float) -> bool:
    """Whether the fork server `pid` (this process's child) has exited, or multiprocessing has started another since,
    waiting up to `timeout_s`; without reaping it: ensure_running starts a dead one again only once its own waitpid
    reaps it. (A poll: a child's exit has no waitable handle on every platform. macOS has no os.waitid before
    Python 3.13: there this waits for nothing, and a start retried too soon fails.)"""
    deadline = time.monotonic() + timeout_s
    while hasattr(os, "waitid") and forkserver._forkserver._forkserver_pid == pid:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:  # reaped already (by ensure_running, in another thread)
            break
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _check_the_connects_fds_are_free() -> None:
    """Raises the OS's refusal (EMFILE, ENFILE) unless the descriptors a sandbox's start takes at once are free: its
    socket to the fork server and two pipes (5 descriptors). CPython's connect_to_new_process opens the pipes only
    once connected, and a refusal there closes the socket unsent: the fork server, reading no descriptors (EOFError),
    dies, failing every running sandbox's invocation. Checked, not reserved: another thread can take them before the
    connect does (a narrower window, not none)."""
    taken: list[int] = []
    try:
        for _ in range(2):
            taken.extend(os.pipe())
        taken.append(os.dup(taken[0]))
    finally:
        for fd in taken:
            os.close(fd)


class _SandboxPopen(popen_forkserver.Popen):
    """A sandbox's start: multiprocessing also starts a dead fork server again here, by itself, for the next new
    sandbox (ensure_running in connect_to_new_process), in whatever thread starts it (the server's event loop),
    which has nothing blocked. So every start of the fork server, and not only warm()'s, blocks the stop signals.
    (Held in this thread while a sandbox starts: milliseconds, or the handler's import when the fork server starts
    again. A signal meanwhile goes to another thread, or waits until then: it is not lost.)

    A fork server that died (killed, out of memory) but has not exited yet, or not been reaped, is taken for alive
    by ensure_running: the sandbox's start then fails (ConnectionRefusedError at the connect, or EOFError, "unexpected
    EOF", where the fork server was to send the sandbox's pid) with the sandbox never forked. Lambda would start
    another, so it is started once more, as soon as the fork server can be started again; failing that, the start
    raises SandboxStartError, which does not blame the handler."""

    def _launch(self, process_obj: Any) -> None:
        fork_server = None
        try:
            with _helpers_start_with_stop_signals_blocked():
                # The fork server this start connects to, taken before it can fail (super()._launch finds it alive,
                # or uses one started since): read after the failure, it could be one another sandbox's start (a
                # thread of its own) had started again meanwhile, alive, which this start would then wait
                # FORK_SERVER_EXIT_WAIT_S to see die, and fail.
                forkserver.ensure_running()
                fork_server = forkserver._forkserver._forkserver_pid
                _check_the_connects_fds_are_free()
                super()._launch(process_obj)
        except (ConnectionError, EOFError) as error:
            refused = f"{type(error).__name__}: {error}"
            if self.finalizer is not None:  # the pipes of the start that failed
                self.finalizer()
            # Waited for outside the block on the stop signals: a Ctrl-C meanwhile is not held up.
            if fork_server is not None and not _fork_server_gone(fork_server, FORK_SERVER_EXIT_WAIT_S):
                raise SandboxStartError(
                    f"a Lambda sandbox could not start: its fork server refused it ({refused}) and is still running"
                ) from error
            self._fds = []  # filled again as the process is pickled again
            try:
                with _helpers_start_with_stop_signals_blocked():
                    _check_the_connects_fds_are_free()
                    super()._launch(process_obj)
            except (OSError, EOFError) as again:
                helps = _what_helps(again) or (_FORK_REFUSED_REMEDY if isinstance(again, EOFError) else "")
                raise SandboxStartError(
                    f"a Lambda sandbox could not start: its fork server had died ({refused}), and starting it again "
                    f"failed: {type(again).__name__}: {again}{helps}"
                ) from again


class _SandboxProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _SandboxPopen:
        return _SandboxPopen(process_obj)


class _SandboxContext(ForkServerContext):
    Process = _SandboxProcess


# How long a sandbox may idle before it is retired. AWS Lambda reclaims idle execution environments after some minutes
# (it documents no figure; public measurements give about 5 to 15): each one a load test started holds ~17 MB of its
# own (64 of them about 1.1 GB PSS), which the stack kept for its whole life.
SANDBOX_IDLE_LIMIT_S = 600.0


class LambdaSandboxes:
    """Up to `max_sandboxes` concurrent invocations; more wait for a free sandbox (Lambda would add one).

    Each sandbox is an executor of its own with one worker process, so a sandbox that dies (killed, out of
    memory) fails only the invocation it was running, as in Lambda (Runtime.ExitError), and is replaced; one
    shared process pool would mark itself broken and fail every invocation in flight. A sandbox that dies
    while idle (its process reaped at once, by the fork server) keeps its slot until an invocation takes it, which
    runs in a new sandbox instead (_start), as Lambda would run it, also when it reached the dead one before its
    executor noticed (_finished: it never began there); or until it retires as an idle one does.

    The handler reads its configuration from os.environ at import, so set the environment before the first
    `submit` (which starts the fork server), or pass it to `warm` (which must then start the fork server: it is
    one per process). `target` and `preload` exist for tests: the function each
    invocation runs, and the module the fork server imports once for every sandbox.

    A sandbox idle for `idle_limit_s` is retired (its process exits), as Lambda reclaims an idle execution
    environment, except the most recently used one (see _retire_idle). One thread does it, started once a second
    sandbox idles, and it sleeps until the next sandbox is due: an idle stack has no wake-up of its own.
    """

    def __init__(
        self,
        max_sandboxes: int,
        target: Callable[[Any, Any], Any] = _invoke,
        preload: str = HANDLER_PRELOAD,
        idle_limit_s: float = SANDBOX_IDLE_LIMIT_S,
    ):
        if max_sandboxes < 1:
            raise ValueError(f"max_sandboxes must be at least 1, got {max_sandboxes}")
        if not 0 < idle_limit_s <= threading.TIMEOUT_MAX:  # the reaper waits for it (a longer wait: OverflowError)
            raise ValueError(f"idle_limit_s must be above 0 and at most {threading.TIMEOUT_MAX:g}, got {idle_limit_s}")
        self._context = _SandboxContext()
        self._preload = preload
        self._context.set_forkserver_preload([preload])
        self._max = max_sandboxes
        self._target = target
        self._lock = threading.Lock()
        # Every live sandbox, idle or busy, with its shared count of invocations begun.
        self._sandboxes: dict[ProcessPoolExecutor, Any] = {}
        # The idle ones, each with when it became idle (time.monotonic()), in that order: a stack, whose last, the most
        # recently used sandbox, serves next, as in Lambda; its first is the next to retire.
        self._idle: dict[ProcessPoolExecutor, float] = {}
        self._waiting: deque[tuple[Future, Callable[..., Any], tuple]] = deque()
        self._closed = False
        self._idle_limit_s = idle_limit_s
        self._idle_changed = threading.Condition(self._lock)
        self._reaper: threading.Thread | None = None

    @property
    def size(self) -> int:
        """How many sandboxes are alive (idle or busy)."""
        with self._lock:
            return len(self._sandboxes)

    # --- called with self._lock held ---------------------------------------------------------------------
    def _new_sandbox(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the sandboxes are shut down")
        begun = self._context.RawValue("Q", 0)  # shared memory: readable after the sandbox has died
        sandbox = ProcessPoolExecutor(
            max_workers=1, mp_context=self._context, initializer=_sandbox_init, initargs=(os.getpid(), begun)
        )
        self._sandboxes[sandbox] = begun
        return sandbox

    def _take(self) -> ProcessPoolExecutor | None:
        if self._idle:
            # The reaper is not woken: the first idle sandbox, the next it retires, stays in place. (Left with one
            # idle, it wakes when that first was due to find it kept: one wake-up, not one a request.)
            return self._idle.popitem()[0]
        if len(self._sandboxes) < self._max:
            return self._new_sandbox()
        return None

    def _dispatch(self) -> tuple[list[tuple[ProcessPoolExecutor, Future, Callable[..., Any], tuple]], list]:
        """Pair free sandboxes with waiting invocations; the ones their callers gave up on are dropped. Returns
        what to start, and the (invocation, error) pairs to fail once the lock is released: when the OS refuses a
        new sandbox (EMFILE, ENOMEM), the invocation that needed it fails, as in `submit`, instead of waiting
        for a release that may never come."""
        starts, refused = [], []
        while self._waiting and not self._closed:
            if self._waiting[0][0].cancelled():
                self._waiting.popleft()
                continue
            try:
                free = self._take()
            except OSError as error:
                result, _, _ = self._waiting.popleft()
                if result.set_running_or_notify_cancel():  # runs no callbacks, so safe under the lock
                    refused.append((result, _refused_start(error)))
                continue
            if free is None:
                break
            result, fn, args = self._waiting.popleft()
            if result.set_running_or_notify_cancel():
                starts.append((free, result, fn, args))
            else:
                self._park(free)
        return starts, refused

    def _park(self, sandbox: ProcessPoolExecutor) -> None:
        """`sandbox` idles from now on; the reaper's next retirement moves only when the first idle sandbox it may
        retire is this one's predecessor (the second idles): it is woken then, or started if it has not been."""
        self._idle[sandbox] = time.monotonic()
        if len(self._idle) != 2:
            return
        if self._reaper is not None:
            self._idle_changed.notify()
            return
        reaper = threading.Thread(target=self._retire_idle, name="lambda-sandbox-reaper", daemon=True)
        # The OS's thread limit (RuntimeError: can't start new thread): the sandboxes idle on, and a later park
        # tries again. (The thread waits for the lock this caller holds: it cannot run before the start returns.)
        with contextlib.suppress(RuntimeError):
            reaper.start()
            self._reaper = reaper

    # --- called without the lock -------------------------------------------------------------------------
    def warm(self, env: Mapping[str, str] | None = None) -> None:
        """Start the fork server and one sandbox now, so the first request does not wait for them; a
        configuration the handler refuses at import stops the stack here, with the handler's own error.

        `env`: the sandboxes' whole environment (as a Lambda function has only its own), instead of this
        process's. The fork server imports the handler, which reads it at import, so it is set from the start.
        """
        if env is not None:
            # multiprocessing execs the fork server with this process's environment, again by itself whenever
            # it has died: local.sandbox_env, imported first there, gives it exactly `env` each time.
            # (Clearing os.environ around ensure_running covered only the first start, and raced other threads.)
            from local import sandbox_env

            os.environ[sandbox_env.VARIABLE] = json.dumps(dict(env))
            self._context.set_forkserver_preload([sandbox_env.__name__, self._preload])
        try:
            hold_multiprocessing_dir()  # where the fork server listens: a kill -9 leaves it behind
            with _helpers_start_with_stop_signals_blocked():
                forkserver.ensure_running()
        except OSError as error:
            # The fork server listens on a Unix socket in a directory multiprocessing makes in the temporary
            # directory, which the user chose; the handler is not to blame, and only a shorter path helps.
            if str(error) != "AF_UNIX path too long":  # the OS refused its process (EAGAIN, ENOMEM) or pipes
                raise _refused_start(error) from error
            raise SandboxStartError(
                f"the temporary directory {tempfile.gettempdir()} is too long a path for the Unix socket of the"
                " sandboxes' fork server (AF_UNIX path too long): set TMPDIR to a shorter path"
            ) from error
        try:
            with self._lock:
                sandbox = self._take()
        except OSError as error:
            raise _refused_start(error) from error
        assert sandbox is not None  # max_sandboxes >= 1 and nothing runs yet
        try:
            # The stop signals wait until the sandbox is started: until the fork server has forked it (while it
            # still imports the handler, up to a second). Interrupted before, its executor forgot the process and
            # shutdown() unlinked its queues' semaphores, which the sandbox, forked all the same, then failed to
            # open, printing "FileNotFoundError" from SemLock._rebuild. Once the executor knows it, the stop waits
            # for it to start and exit (this invocation runs the handler's import, done in the fork server).
            with stop_signals_held():
                try:
                    started = sandbox.submit(_import_handler)
                except OSError as error:  # not the handler's import, which fails in `started`
                    raise _refused_start(error) from error
            started.result(timeout=120)
        finally:
            self._release(sandbox)

    def submit(self, event: Any, context: Any, *, crash: bool = False) -> Future:
        """Run the handler in a free sandbox; the future fails with BrokenProcessPool if that sandbox dies
        (`crash`: fault injection, the sandbox dies instead), and with LambdaTimeout if the handler outlives the
        function's timeout (`context.timeout_s`), at which the sandbox is stopped and replaced.

        A sandbox that cannot start (the OS refused its process or pipes, or its fork server died) fails it with
        SandboxStartError, as does submit() itself when the OS refuses a new sandbox's executor: the handler never
        ran. Shut down: submit() raises RuntimeError; an invocation still waiting is cancelled, and one whose
        sandbox was let go of before it was handed over fails with RuntimeError."""
        fn, args = (_crash, ()) if crash else (self._target, (event, context))
        result: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandboxes are shut down")
            try:
                sandbox = self._take()
            except OSError as error:
                raise _refused_start(error) from error
            if sandbox is None:
                self._waiting.append((result, fn, args))
                return result
            result.set_running_or_notify_cancel()  # nobody else has seen it yet
        if not self._start(sandbox, result, fn, args):
            self._release(None)
        return result

    def _start(
        self, sandbox: ProcessPoolExecutor, result: Future, fn: Callable[..., Any], args: tuple, retry: bool = True
    ) -> bool:
        """Hand a running `result` to `sandbox`; False when that failed and the sandbox's slot is free again.
        `retry`: whether a sandbox found dead before it began the invocation may be replaced to run it."""
        # Taken before the sandbox can begin the call and arm the function's timeout (see _begin): it cannot die
        # of that timeout before this deadline.
        timeout_s = _timeout_of(args)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            try:
                begun = self._sandboxes.get(sandbox)
                if begun is None:  # shutdown() let go of it meanwhile
                    raise RuntimeError("the sandboxes are shut down")
                before = begun.value
                inner = sandbox.submit(_begin, fn, *args)
            except BrokenProcessPool:  # it died while idle and its executor noticed: Lambda would use a new one
                sandbox, begun = self._replace(sandbox)
                before = begun.value
                inner = sandbox.submit(_begin, fn, *args)
        except BaseException as error:  # shut down meanwhile, or the OS refused a process (EMFILE, ENOMEM)
            self._discard(sandbox)
            result.set_exception(_refused_start(error) if isinstance(error, OSError) else error)
            return False
        chosen = sandbox
        # Whether the sandbox began this invocation, asked if it dies: its count moved past `before`.
        never_begun = (lambda: begun.value == before) if retry else (lambda: False)
        inner.add_done_callback(lambda done: self._finished(chosen, done, result, fn, args, never_begun, deadline))
        return True

    def _finished(
        self,
        sandbox: ProcessPoolExecutor,
        done: Future,
        result: Future,
        fn: Callable[..., Any],
        args: tuple,
        never_begun: Callable[[], bool],
        deadline: float | None = None,
    ) -> None:
        error = RuntimeError("the sandboxes are shut down") if done.cancelled() else done.exception()
        gone = done.cancelled() or isinstance(error, BrokenProcessPool)
        if isinstance(error, BrokenProcessPool) and never_begun():
            # It died while idle, and the invocation reached it before its executor noticed: the handler never
            # ran, so a new sandbox runs it (once: a sandbox that cannot even start would otherwise loop).
            replacement = None
            with contextlib.suppress(Exception):  # shut down meanwhile: it fails below
                try:
                    replacement, _ = self._replace(sandbox)
                except OSError as refused:  # the OS refused its process (EMFILE, ENOMEM): it fails below, saying so
                    error = _refused_start(refused)
            if replacement is not None:
                if not self._start(replacement, result, fn, args, retry=False):
                    self._release(None)
                return
        if isinstance(error, BrokenProcessPool) and deadline is not None and time.monotonic() >= deadline:
            # Stopped at the function's timeout; Lambda, too, gives the next invocation a new sandbox.
            error = LambdaTimeout(f"Task timed out after {_timeout_of(args):.2f} seconds")
        try:
            if gone:  # it died mid-invocation (or was shut down): Lambda starts a new one for the next request
                self._discard(sandbox)
                self._release(None)
            else:  # the handler returned or raised: the sandbox lives on, as Lambda's does
                self._release(sandbox)
        finally:
            if error is not None:
                result.set_exception(error)
            else:
                result.set_result(done.result())

    def _replace(self, dead: ProcessPoolExecutor) -> tuple[ProcessPoolExecutor, Any]:
        """A new sandbox (and its count) in a dead one's slot, in one step: a slot freed first could be taken by
        another invocation meanwhile, and there would be more sandboxes than the limit. If none can start (shut
        down, or the OS refused), this raises with the slot free."""
        try:
            with self._lock:
                self._sandboxes.pop(dead, None)
                sandbox = self._new_sandbox()
                return sandbox, self._sandboxes[sandbox]
        finally:
            self._discard(dead)

    def _discard(self, sandbox: ProcessPoolExecutor) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox, None)
        with contextlib.suppress(OSError):  # a broken executor may be closing its wakeup pipe right now
            sandbox.shutdown(wait=False, cancel_futures=True)

    def _release(self, sandbox: ProcessPoolExecutor | None) -> None:
        """Give back a sandbox that became free (None: the slot a discarded one left) and start waiting
        invocations on whatever is free. A loop, not recursion: thousands may wait after an overload."""
        closing = None
        with self._lock:
            if sandbox is not None:
                if self._closed:
                    closing = sandbox
                else:
                    self._park(sandbox)
            starts, refused = self._dispatch()
        if closing is not None:
            self._discard(closing)
        while starts or refused:
            for result, error in refused:
                result.set_exception(error)
            freed = [start for start in starts if not self._start(*start)]
            if not freed:
                return
            with self._lock:
                starts, refused = self._dispatch()

    def _retire_idle(self) -> None:
        """The reaper: retire each idle sandbox once it has idled `idle_limit_s`, until shutdown().

        The most recently used one stays, however long it idles. Lambda would reclaim it too, but the stack starts one
        (warm()) so that its first request does not wait for a new sandbox; a demo's next request after a pause
        would otherwise wait again, for ~17 MB saved. It is the last idle one, not the last sandbox: an invocation
        running meanwhile keeps its sandbox, which becomes the most recently used one as it ends.

        A Condition wait, to the exact time the first idle sandbox is due (none: until woken), not a periodic poll:
        an idle stack wakes only for uvicorn's own tick. Retirees leave `_idle` and `_sandboxes` under the lock, so no
        invocation is handed one, and are shut down outside it: a slow shutdown does not hold up a request."""
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    retirable = list(self._idle.items())[:-1]  # oldest first
                    due = [sandbox for sandbox, since in retirable if now - since >= self._idle_limit_s]
                    if due:
                        break
                    self._idle_changed.wait(retirable[0][1] + self._idle_limit_s - now if retirable else None)
                for sandbox in due:
                    del self._idle[sandbox]
                    del self._sandboxes[sandbox]
                # A burst's retirees are due one by one, as each idled (26-40 rounds after 64 requests): its freed
                # memory is returned once, after the last of them, not in each round.
                last_round = len(self._idle) <= 1
            for sandbox in due:
                self._discard(sandbox)  # its worker exits; one that had died idle is shut down all the same
            if last_round:
                _return_freed_memory()

    def shutdown(self, *, end_invocations: bool = False) -> None:
        """Stop every sandbox once its invocation, if any, has ended; `end_invocations`: end those running one now,
        for a stop that has answered their callers already (killed: a sandbox holds SIGTERM mid-invocation)."""
        with self._lock:
            self._closed = True
            self._idle_changed.notify_all()
            reaper = self._reaper
            waiting, self._waiting = self._waiting, deque()
            busy = [sandbox for sandbox in self._sandboxes if sandbox not in self._idle]
            sandboxes, self._idle = list(self._sandboxes), {}
            self._sandboxes.clear()
        for result, _, _ in waiting:
            result.cancel()
        for sandbox in busy if end_invocations else []:
            for process in list((getattr(sandbox, "_processes", None) or {}).values()):
                with contextlib.suppress(OSError):
                    process.kill()
        for sandbox in sandboxes:
            processes = list((getattr(sandbox, "_processes", None) or {}).values())  # shutdown() drops them
            sandbox.shutdown(wait=False, cancel_futures=True)
            # One held by SIGSTOP (a debugger, a shell's job control) would never read that stop, and the server's
            # exit joins its executor: resumed, it takes the stop and exits (a no-op for one that runs).
            for process in processes:
                if process.pid:
                    with contextlib.suppress(OSError):
                        os.kill(process.pid, signal.SIGCONT)
        # The sandboxes it is retiring right now are shut down when this returns, as the others are.
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join()
