"""LambdaSandboxes: one process per concurrent invocation, and a sandbox that dies takes down only its own."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import platform
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool, _ExecutorManagerThread
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import psutil
import pytest

from local import sandboxes as sandboxes_module
from local.sandboxes import SANDBOX_IDLE_LIMIT_S, LambdaSandboxes, LambdaTimeout, SandboxStartError
from tests.ci import require_proc, skip_or_fail
from tests.conftest import names_of, process_group_members
from tests.waiting import HANG_GUARD_S, wait_until


def work(event: dict, context) -> int:
    """A stand-in handler (the fork server imports this module by name); returns the sandbox's pid. A gate it waits
    for gives up at the hang guard: a test that failed before opening it would leave pytest joining it at exit."""
    if "started" in event:
        Path(event["started"]).touch()
    if "wait_for" in event:
        wait_until(Path(event["wait_for"]).exists, f"the gate {event['wait_for']}")
    if "touch" in event:
        Path(event["touch"]).write_text("ran")
    if "count" in event:  # one line per run: a second run shows
        with Path(event["count"]).open("a") as runs:
            runs.write("ran\n")
    if event.get("unblock"):  # as a sandbox forked from a fork server started without them blocked would have it
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGHUP})
    if event.get("die"):
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does to a Lambda sandbox
    if event.get("outlive_timeout"):  # disarms the function's timeout, and goes on until it would have stopped it
        time.sleep(signal.setitimer(signal.ITIMER_REAL, 0)[0])
    if "raise" in event:
        raise RuntimeError(event["raise"])
    if event.get("timer"):  # what is left of the timer that stops it at the function's timeout (0.0: none armed)
        return signal.getitimer(signal.ITIMER_REAL)[0]
    return os.getpid()


# An invocation's failure when the OS refuses its sandbox's start (EMFILE): not the handler's, and what helps.
REFUSED_EMFILE = (
    r"^a Lambda sandbox could not start: the OS refused it \(OSError: \[Errno 24\] Too many open files\): "
    r"raise the open-file limit \(ulimit -n\) before starting the stack$"
)


def sandboxes(limit: int, idle_limit_s: float = SANDBOX_IDLE_LIMIT_S) -> LambdaSandboxes:
    return LambdaSandboxes(limit, target=work, preload=__name__, idle_limit_s=idle_limit_s)


@pytest.fixture(autouse=True)
def executors_ended_after_each_test():
    """shutdown() does not wait: each sandbox's executor ends in a thread of its own, which stops its sandbox and
    reads its exit status from the fork server (read_signed). Still running in the next test (in 40 of 68), they
    called its fakes of multiprocessing's functions, which took those calls for the test's own."""
    yield
    wait_until(
        lambda: not any(isinstance(thread, _ExecutorManagerThread) for thread in threading.enumerate()),
        "the test's sandboxes' executors to end (a pool not shut down?)",
    )


@pytest.fixture
def three():
    pool = sandboxes(3)
    yield pool
    pool.shutdown()


@pytest.fixture
def one():
    pool = sandboxes(1)
    yield pool
    pool.shutdown()


def test_a_sandbox_dying_mid_invocation_fails_only_that_invocation(three, tmp_path):
    # Gates, not sleeps: the two others are certainly mid-invocation when the sandbox dies, and the three after
    # it certainly overlap (one that finished early would serve the next and leave a slot unused).
    running, overlap = tmp_path / "running", tmp_path / "overlap"
    slow = [three.submit({"wait_for": str(running)}, None) for _ in range(2)]
    dying = three.submit({"die": True}, None)
    with pytest.raises(BrokenProcessPool):
        dying.result(timeout=60)
    running.touch()
    survivors = {future.result(timeout=60) for future in slow}  # a shared process pool failed these two as well
    assert len(survivors) == 2
    assert three.size == 2, "the dead sandbox no longer counts"
    overlapping = [three.submit({"wait_for": str(overlap)}, None) for _ in range(3)]
    overlap.touch()
    pids = {future.result(timeout=60) for future in overlapping}
    assert len(pids) == 3 and survivors < pids, "its slot went to a new sandbox"
    assert all(psutil.pid_exists(pid) for pid in pids)
    assert three.size == 3


def test_a_handler_exception_keeps_its_sandbox(one):
    first = one.submit({}, None).result(timeout=60)
    with pytest.raises(RuntimeError, match="handler bug"):
        one.submit({"raise": "handler bug"}, None).result(timeout=60)
    assert one.submit({}, None).result(timeout=60) == first
    assert one.size == 1


def test_invocations_beyond_the_limit_wait_for_a_free_sandbox(three, tmp_path):
    go = tmp_path / "go"  # all seven are submitted before any finishes, so the first three start a sandbox each
    futures = [three.submit({"wait_for": str(go)}, None) for _ in range(7)]
    go.touch()
    pids = [future.result(timeout=60) for future in futures]
    assert len(set(pids)) <= 3
    assert three.size == 3


def test_the_sandbox_freed_last_serves_next(three, tmp_path):
    """As in Lambda, the warmest sandbox (the one that finished most recently) takes the next invocation."""
    go = tmp_path / "go"
    later = three.submit({"wait_for": str(go)}, None)
    earlier = three.submit({}, None).result(timeout=60)
    go.touch()
    last = later.result(timeout=60)
    assert earlier != last
    assert three.submit({}, None).result(timeout=60) == last


def test_a_sandbox_that_died_while_idle_is_replaced_before_it_gets_a_request(one):
    first = one.submit({}, None).result(timeout=60)
    [idle] = one._idle
    os.kill(first, signal.SIGKILL)
    # Noticed: the request's start finds it broken and replaces it (before, the next test's rerun covers it).
    wait_until(lambda: idle._broken)
    second = one.submit({}, None).result(timeout=60)
    assert second != first
    assert one.size == 1


def test_a_sandbox_killed_while_idle_keeps_its_slot_until_taken_and_then_leaves_nothing_behind(one):
    """A kill -9 with nothing in flight: its process is reaped at once (no zombie), while its slot waits for the next
    invocation (nothing replaces it before: Lambda too starts an environment for a request), which it serves at the
    first try in a new sandbox; the dead one's executor is let go of then, its queues' semaphores with it."""
    worker = psutil.Process(one.submit({}, None).result(timeout=HANG_GUARD_S))
    [idle] = one._idle
    semaphores = semaphore_files(idle)
    assert semaphores and all(file.exists() for file in semaphores), "not where this test looks for them"
    worker.kill()
    wait_until(lambda: idle._broken, "its executor to notice")
    wait_until(lambda: reaped(worker), "the killed sandbox's process to be reaped")
    assert one.size == 1, "the dead sandbox's slot was lost or doubled"
    served = one.submit({}, None).result(timeout=HANG_GUARD_S)
    assert served != worker.pid and psutil.pid_exists(served)
    assert one.size == 1
    wait_until(lambda: not any(file.exists() for file in semaphores), "the dead sandbox's semaphores to be unlinked")


def test_an_invocation_sent_to_a_sandbox_that_died_unnoticed_runs_in_a_new_one(one, tmp_path):
    first = one.submit({}, None).result(timeout=60)
    os.kill(first, signal.SIGSTOP)  # it cannot take the next call, and its executor sees nothing wrong yet
    try:
        ran = tmp_path / "ran"
        invocation = one.submit({"touch": str(ran)}, None)
    finally:
        os.kill(first, signal.SIGKILL)  # it dies with the call unread, as if it had died just before it came
    second = invocation.result(timeout=60)  # Lambda would have run it in a new sandbox: no 500
    assert second != first and ran.read_text() == "ran"
    assert one.size == 1
    assert one.submit({}, None).result(timeout=60) == second


def on_every_sandbox(monkeypatch, pool: LambdaSandboxes, name: str, method: Callable[..., Any]) -> None:
    """`method` (self first) as `name` of each sandbox of `pool`, those it holds and those it starts from now on
    (through local.sandboxes' own name for ProcessPoolExecutor): ProcessPoolExecutor's own would be every thread's
    and every other pool's."""
    monkeypatch.setattr(sandboxes_module, "ProcessPoolExecutor", type("Hooked", (ProcessPoolExecutor,), {name: method}))
    for sandbox in list(pool._sandboxes):
        monkeypatch.setattr(sandbox, name, functools.partial(method, sandbox))


def submits_return_once_begun(monkeypatch, pool: LambdaSandboxes) -> None:
    """Each invocation handed to a sandbox is begun there before the hand-over returns, as a sandbox quick enough
    may: whether it began must be told by the count taken before."""
    real_submit = ProcessPoolExecutor.submit

    def submit(self, fn, *args, **kwargs):
        inner = real_submit(self, fn, *args, **kwargs)
        if fn is sandboxes_module._begin:
            begun = pool._sandboxes[self]
            wait_until(lambda: begun.value > 0 or inner.done(), "the sandbox to begin the invocation")
        return inner

    on_every_sandbox(monkeypatch, pool, "submit", submit)


@pytest.mark.parametrize("begun_at_once", [False, True], ids=["begun_later", "begun_at_once"])
def test_an_invocation_a_sandbox_began_is_not_run_again_when_it_dies(one, tmp_path, monkeypatch, begun_at_once):
    # Counted, not touched: a rerun would fail too (it dies again) and only its second line would show it.
    if begun_at_once:
        submits_return_once_begun(monkeypatch, one)
    runs = tmp_path / "runs"
    with pytest.raises(BrokenProcessPool):
        one.submit({"count": str(runs), "die": True}, None).result(timeout=60)
    one.submit({}, None).result(timeout=60)
    assert runs.read_text() == "ran\n", "the invocation that died mid-way ran a second time"


@pytest.mark.parametrize("begun_at_once", [False, True], ids=["begun_later", "begun_at_once"])
def test_an_invocation_begun_in_a_replacement_for_a_sandbox_found_dead_is_not_run_again(
    one, tmp_path, monkeypatch, begun_at_once
):
    # The dead sandbox's executor has noticed, so the invocation goes to a new sandbox at once: whether it began
    # is that new sandbox's count, not the dead one's.
    first = one.submit({}, None).result(timeout=60)
    [idle] = one._idle
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: idle._broken)
    if begun_at_once:
        submits_return_once_begun(monkeypatch, one)
    runs = tmp_path / "runs"
    with pytest.raises(BrokenProcessPool):
        one.submit({"count": str(runs), "die": True}, None).result(timeout=60)
    assert runs.read_text() == "ran\n", "the invocation that died mid-way ran a second time"


def starts_file(server_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"test-sandboxes-starts-{server_pid}"


def fail_twice_then_start(server_pid: int, begun=None) -> None:
    """A sandbox initializer (run in the sandbox): the first two sandboxes die before they can begin anything,
    as one that cannot even start would; the third starts normally."""
    starts = starts_file(server_pid)
    with starts.open("a") as log:
        log.write("start\n")
    if starts.read_text().count("start") <= 2:
        raise RuntimeError("this sandbox cannot start")
    sandboxes_module._sandbox_init(server_pid, begun)


def test_an_invocation_no_sandbox_could_begin_is_rerun_only_once(one, monkeypatch):
    starts = starts_file(os.getpid())
    starts.unlink(missing_ok=True)
    monkeypatch.setattr(sandboxes_module, "_sandbox_init", fail_twice_then_start)
    try:
        with pytest.raises(BrokenProcessPool):  # a third sandbox would have started, and run it
            one.submit({}, None).result(timeout=60)
        assert starts.read_text() == "start\n" * 2, "one sandbox, then one rerun"
    finally:
        starts.unlink(missing_ok=True)
    monkeypatch.undo()
    assert one.submit({}, None).result(timeout=60)
    assert one.size == 1


def test_a_rerun_keeps_the_dead_sandboxs_slot_from_other_invocations(one, monkeypatch):
    first = one.submit({}, None).result(timeout=60)
    real_shutdown = ProcessPoolExecutor.shutdown
    arrived: list = []

    def shutdown(self, *args, **kwargs):  # the dead sandbox's executor is shut down: a request arrives right then
        if not arrived:
            arrived.append(one.submit({}, None))
        return real_shutdown(self, *args, **kwargs)

    os.kill(first, signal.SIGSTOP)
    try:
        invocation = one.submit({}, None)
        on_every_sandbox(monkeypatch, one, "shutdown", shutdown)
    finally:
        os.kill(first, signal.SIGKILL)
    second = invocation.result(timeout=60)
    assert arrived[0].result(timeout=60) == second, "the request that arrived meanwhile waited for the one slot"
    assert one.size == 1


def test_a_rerun_the_os_refuses_a_sandbox_for_fails_and_frees_its_slot(one, tmp_path, monkeypatch):
    first = one.submit({}, None).result(timeout=60)
    os.kill(first, signal.SIGSTOP)
    try:
        invocation = one.submit({}, None)
        waiting = one.submit({}, None)  # for the only slot
        real_new = one._new_sandbox
        refused: list = []

        def refuse_once():
            if not refused:
                refused.append(True)
                raise OSError(24, "Too many open files")
            return real_new()

        monkeypatch.setattr(one, "_new_sandbox", refuse_once)
    finally:
        os.kill(first, signal.SIGKILL)
    with pytest.raises(SandboxStartError, match=REFUSED_EMFILE):  # never begun, not dead mid-invocation; no hang
        invocation.result(timeout=60)
    assert refused and waiting.result(timeout=60) != first, "the freed slot went to the waiting invocation"
    assert one.size == 1


def test_a_rerun_the_sandboxes_were_shut_down_before_fails_without_hanging(one, monkeypatch):
    first = one.submit({}, None).result(timeout=60)
    os.kill(first, signal.SIGSTOP)
    try:
        invocation = one.submit({}, None)
        real_new = one._new_sandbox

        def shut_down_meanwhile():  # as shutdown() leaves them (it cannot run here: the caller holds the lock)
            one._closed = True
            return real_new()

        monkeypatch.setattr(one, "_new_sandbox", shut_down_meanwhile)
    finally:
        os.kill(first, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):  # the sandbox's own failure: no new one may start
        invocation.result(timeout=60)


def test_a_rerun_its_new_sandbox_refuses_fails_and_frees_its_slot(one, monkeypatch):
    first = one.submit({}, None).result(timeout=60)
    os.kill(first, signal.SIGSTOP)
    try:
        invocation = one.submit({}, None)
        waiting = one.submit({}, None)  # for the only slot
        real_submit = ProcessPoolExecutor.submit
        refused: list = []

        def refuse_once(self, fn, *args, **kwargs):  # the rerun's sandbox started, but cannot take the call
            if work in (fn, *args[:1]) and not refused:
                refused.append(fn)
                raise OSError(24, "Too many open files")
            return real_submit(self, fn, *args, **kwargs)

        on_every_sandbox(monkeypatch, one, "submit", refuse_once)
    finally:
        os.kill(first, signal.SIGKILL)
    with pytest.raises(SandboxStartError, match=REFUSED_EMFILE):
        invocation.result(timeout=60)
    assert waiting.result(timeout=60) != first, "the freed slot went to the waiting invocation"
    assert one.size == 1


def test_a_waiting_invocation_the_caller_cancelled_never_runs(one, tmp_path):
    go = tmp_path / "go"
    busy = one.submit({"wait_for": str(go)}, None)
    given_up = one.submit({"touch": str(tmp_path / "ran")}, None)
    assert given_up.cancel()
    go.touch()
    pid = busy.result(timeout=60)
    assert one.submit({}, None).result(timeout=60) == pid  # the same sandbox again
    assert not (tmp_path / "ran").exists()


def test_a_waiting_invocation_the_caller_cancelled_gets_no_sandbox_when_a_slot_frees(one, tmp_path):
    # A slot a dead sandbox freed goes to the next invocation still wanted: one cancelled must not get a new sandbox
    # (its executor's pipes and shared count), left idle and counted for nothing.
    go = tmp_path / "go"
    dying = one.submit({"wait_for": str(go), "die": True}, None)
    abandoned = one.submit({"touch": str(tmp_path / "ran")}, None)
    assert abandoned.cancel()
    go.touch()
    with pytest.raises(BrokenProcessPool):
        dying.result(timeout=60)
    assert one.size == 0
    assert not (tmp_path / "ran").exists()


def test_a_waiting_invocation_cancelled_just_as_a_sandbox_frees_leaves_that_sandbox_to_the_next(
    one, tmp_path, monkeypatch
):
    """The caller may cancel between the check for a cancelled waiter and the hand-over (a request's future is
    cancelled from the event loop, without the sandboxes' lock): the sandbox taken for it must idle again, or the
    slot is gone for good and every later invocation waits for ever."""
    from concurrent.futures import Future

    class CancelledJustAfterTheCheck(Future):
        def cancelled(self) -> bool:
            seen = super().cancelled()
            self.cancel()  # a waiting one's caller gives up right then (a running one cannot be cancelled)
            return seen

    monkeypatch.setattr(sandboxes_module, "Future", CancelledJustAfterTheCheck)  # the futures submit() returns
    go = tmp_path / "go"
    busy = one.submit({"wait_for": str(go)}, None)
    given_up = one.submit({"touch": str(tmp_path / "ran")}, None)
    go.touch()
    pid = busy.result(timeout=60)
    assert given_up.cancelled()
    assert one.submit({}, None).result(timeout=60) == pid  # the same sandbox again
    assert not (tmp_path / "ran").exists()


def test_an_invocation_a_sandbox_is_running_cannot_be_cancelled(one, tmp_path):
    """Only a waiting invocation can be taken back. A cancelled request cancels its future (asyncio.wrap_future):
    one a sandbox runs must stay running, or its result lands on a cancelled future (InvalidStateError)."""
    go = tmp_path / "go"
    running = one.submit({"wait_for": str(go)}, None)
    assert not running.cancel()
    go.touch()
    assert running.result(timeout=60)


def test_thousands_of_abandoned_waiters_do_not_wedge_the_sandboxes(one, tmp_path):
    """What a long overload leaves behind (each timed-out request cancels its waiter)."""
    # A gate, not a sleep: on a loaded CI machine 3000 submits outlasted a 1 s sleep and one waiter got the sandbox.
    go = tmp_path / "go"
    busy = one.submit({"wait_for": str(go)}, None)
    abandoned = [one.submit({}, None) for _ in range(3000)]
    assert all(future.cancel() for future in abandoned)
    go.touch()
    assert busy.result(timeout=60)
    assert one.submit({}, None).result(timeout=60)
    assert one.size == 1


def test_a_sandbox_the_os_refuses_to_start_fails_its_invocation_and_frees_its_slot(one, monkeypatch):
    real_submit = ProcessPoolExecutor.submit
    refused = []

    def refuse_once(self, fn, *args, **kwargs):
        if work in (fn, *args[:1]) and not refused:  # the handler, as such or as what the sandbox is to run
            refused.append(fn)
            raise OSError(24, "Too many open files")
        return real_submit(self, fn, *args, **kwargs)

    on_every_sandbox(monkeypatch, one, "submit", refuse_once)
    with pytest.raises(SandboxStartError, match=REFUSED_EMFILE) as refused_start:
        one.submit({}, None).result(timeout=60)
    assert isinstance(refused_start.value.__cause__, OSError), "the OS's own error, for a traceback's reader"
    assert one.size == 0
    assert one.submit({}, None).result(timeout=60)
    assert one.size == 1


def test_a_sandbox_the_os_refuses_its_connection_to_the_fork_server_fails_saying_what_helps(one, monkeypatch):
    """The new sandbox's socket or pipes to the fork server (EMFILE): the OS's refusal, not the fork server's, so
    no wait for a fork server to die and no 'its fork server refused it', but what helps. Refused as multiprocessing
    starts the sandbox, below local.sandboxes' own _SandboxPopen (a subclass of it whose base refuses once):
    forkserver.connect_to_new_process replaced would be every thread's fork-server starts."""
    from multiprocessing import popen_forkserver

    refused: list = []

    class RefusedOnce(popen_forkserver.Popen):
        def _launch(self, process_obj):
            if not refused:
                refused.append(process_obj)
                raise OSError(errno.EMFILE, "Too many open files")
            return super()._launch(process_obj)

    sandbox_popen = type("SandboxPopen", (sandboxes_module._SandboxPopen, RefusedOnce), {})
    monkeypatch.setattr(sandboxes_module, "_SandboxPopen", sandbox_popen)
    with pytest.raises(SandboxStartError, match=REFUSED_EMFILE):
        one.submit({}, None).result(timeout=60)
    assert refused and one.size == 0
    assert one.submit({}, None).result(timeout=60)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            OSError(errno.EMFILE, "Too many open files"),
            "(OSError: [Errno 24] Too many open files): raise the open-file limit (ulimit -n) before starting the"
            " stack",
        ),
        (
            OSError(errno.ENFILE, "Too many open files in system"),
            "(OSError: [Errno 23] Too many open files in system): the system's open-file table is full: close some"
            " programs, or raise fs.file-max",
        ),
        (
            BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
            "(BlockingIOError: [Errno 11] Resource temporarily unavailable): raise the process limit (ulimit -u), or"
            " end some processes",
        ),
        (
            OSError(errno.ENOMEM, "Cannot allocate memory"),
            "(OSError: [Errno 12] Cannot allocate memory): free some memory",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),  # a fork server started again, in a full TMPDIR
            f"(OSError: [Errno 28] No space left on device): the temporary directory {tempfile.gettempdir()} has no"
            " room for the sandboxes' fork server's socket: free some space (or inodes) there, or set TMPDIR to"
            " another directory",
        ),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded"),  # the same, in a TMPDIR past the user's quota
            f"(OSError: [Errno {errno.EDQUOT}] Disk quota exceeded): the temporary directory {tempfile.gettempdir()}"
            " has no room for the sandboxes' fork server's socket: free some space (or inodes) there, or set TMPDIR to"
            " another directory",
        ),
        (OSError(errno.EIO, "Input/output error"), "(OSError: [Errno 5] Input/output error)"),  # no advice to give
    ],
    ids=["EMFILE", "ENFILE", "EAGAIN", "ENOMEM", "ENOSPC", "EDQUOT", "other"],
)
def test_a_new_sandbox_the_os_refuses_fails_the_submit_saying_what_was_refused_and_what_helps(
    one, monkeypatch, error, says
):
    """submit() itself makes a new sandbox's executor (its pipes, its shared count): an OSError there reached the
    server as is, logged with a traceback as "the Lambda handler raised", which never ran."""

    def refuse():
        raise error

    monkeypatch.setattr(one, "_new_sandbox", refuse)
    with pytest.raises(SandboxStartError) as refused:
        one.submit({}, None)
    assert str(refused.value) == f"a Lambda sandbox could not start: the OS refused it {says}"
    assert refused.value.__cause__ is error
    monkeypatch.undo()
    assert one.submit({}, None).result(timeout=60)
    assert one.size == 1


_LEAVE_OPEN_FILES = """
import json, os, resource, sys
from local.sandboxes import SandboxStartError

def held_fds():
    held = set()
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            os.fstat(fd)  # not the listing's own descriptor, closed by now
            held.add(fd)
        except OSError:
            pass
    return held

# A limit of 256 open files from the start, then used up as a busy server uses them up: lowered later, the limit
# would also be that of a fork server started again meanwhile.
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
used_up = []

def leave_open_files(free):
    for _ in range(256 - len(held_fds()) - free):
        used_up.append(os.open(os.devnull, os.O_RDONLY))

def free_open_files():
    while used_up:
        os.close(used_up.pop())

def refusal(pool):  # what a new invocation's SandboxStartError said (None: it ran); the used-up files freed
    try:
        pool.submit({}, None).result(timeout=60)
        return None
    except SandboxStartError as error:
        return str(error)
    finally:
        free_open_files()
"""


_OPEN_FILE_LIMIT_SCRIPT = (
    _LEAVE_OPEN_FILES
    + """
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from pathlib import Path
import psutil
from tests.local.test_sandboxes import sandboxes

def main():
    gate, at, free = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    pool = sandboxes(3)
    busy = pool.submit({"wait_for": str(gate)}, None)  # the fork server and one sandbox, kept busy
    fork_server = forkserver._forkserver._forkserver_pid
    new_sandbox = pool._new_sandbox

    def limited_new_sandbox():  # the second sandbox: its executor (its pipes, its shared count), then its process
        if at == "executor":
            leave_open_files(free)
        sandbox = new_sandbox()
        if at == "process":
            leave_open_files(free)
        return sandbox

    pool._new_sandbox = limited_new_sandbox
    try:
        said = refusal(pool)
    finally:
        pool._new_sandbox = new_sandbox
    size = pool.size
    # The next sandbox (a new one after a refused start) comes from the busy one's fork server.
    same_fork_server = psutil.Process(pool.submit({}, None).result(timeout=60)).ppid() == fork_server
    gate.touch()
    try:
        busy.result(timeout=60)
        ran = "ran"
    except BrokenProcessPool as error:
        ran = f"BrokenProcessPool: {error}"
    pool.shutdown()
    print(json.dumps([said, size, same_fork_server, ran]))

if __name__ == "__main__":
    main()
"""
)


def run_script(tmp_path: Path, source: str, *args: str) -> Any:
    """Runs a test script in a fresh interpreter from the project's root (a process of its own to break or limit);
    returns what it printed last, as JSON."""
    import json
    import subprocess
    import sys

    if "/proc/" in source:
        require_proc("what the test script reads there")

    script = tmp_path / "script.py"
    script.write_text(source)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("at", "free"), [("executor", 1), ("process", 1), ("process", 4)], ids=["executor", "connect", "second_pipe"]
)
def test_a_sandbox_start_past_the_open_file_limit_fails_saying_so_and_frees_its_slot(tmp_path, at, free):
    """The real EMFILE, not a monkeypatched one: what a server that reached its open-file limit says. Its executor
    made, the start connects to the fork server and then opens two pipes: refused there, the connect closed unsent
    and the fork server died of it (EOFError), failing the busy sandbox's invocation ('exited mid-invocation')."""
    said, size, same_fork_server, busy = run_script(
        tmp_path, _OPEN_FILE_LIMIT_SCRIPT, str(tmp_path / "go"), at, str(free)
    )
    assert said is not None and re.match(REFUSED_EMFILE, said), said
    assert size == 1, "the refused sandbox holds no slot"
    assert (same_fork_server, busy) == (True, "ran"), "the fork server died of the refused start"


_CONNECT_CHECK_SCRIPT = (
    _LEAVE_OPEN_FILES
    + """
from local.sandboxes import _check_the_connects_fds_are_free

refusals, leaks = [], []
for free in range(6):
    before = held_fds()
    leave_open_files(free)
    try:
        _check_the_connects_fds_are_free()
        refusals.append(None)
    except OSError as error:
        refusals.append(error.errno)
    finally:
        free_open_files()
    leaks.append(sorted(held_fds() - before))
print(json.dumps([refusals, leaks]))
"""
)


def test_the_check_that_a_starts_open_files_are_free_refuses_fewer_than_five_and_leaks_none(tmp_path):
    """Refused at any of its descriptors (the first pipe, the second, the last one), or not refused, it keeps none."""
    refusals, leaks = run_script(tmp_path, _CONNECT_CHECK_SCRIPT)
    assert refusals == [errno.EMFILE] * 5 + [None]
    assert leaks == [[]] * 6


def test_a_sandbox_start_with_just_the_open_files_it_needs_left_starts(tmp_path):
    """Its socket to the fork server and two pipes (5): the check that they are free asks no more."""
    said, size, same_fork_server, busy = run_script(
        tmp_path, _OPEN_FILE_LIMIT_SCRIPT, str(tmp_path / "go"), "process", "5"
    )
    assert (said, size, same_fork_server, busy) == (None, 2, True, "ran")


_RETRY_PAST_THE_OPEN_FILE_LIMIT_SCRIPT = (
    _LEAVE_OPEN_FILES
    + """
import signal
from multiprocessing import forkserver
import psutil
from tests.local.test_sandboxes import sandboxes

def main():
    pool = sandboxes(1)
    real_connect = forkserver.connect_to_new_process
    connects = []

    def connect(fds):  # the fork server died; another start (a thread of its own) started it again, near the limit
        if connects:
            return real_connect(fds)
        forkserver.ensure_running()
        connects.append(forkserver._forkserver._forkserver_pid)
        os.kill(connects[0], signal.SIGKILL)
        os.waitid(os.P_PID, connects[0], os.WEXITED | os.WNOWAIT)  # exited, left for ensure_running to reap
        forkserver.ensure_running()
        leave_open_files(1)
        raise ConnectionRefusedError("the fork server died")

    forkserver.connect_to_new_process = connect
    said = refusal(pool)
    started_again = forkserver._forkserver._forkserver_pid
    same_fork_server = psutil.Process(pool.submit({}, None).result(timeout=60)).ppid() == started_again
    pool.shutdown()
    print(json.dumps([said, same_fork_server]))

if __name__ == "__main__":
    main()
"""
)


def test_a_sandbox_started_again_past_the_open_file_limit_leaves_the_fork_server_started_again_running(tmp_path):
    """Its start's second try, in the fork server started again, checks its open files too: refused halfway through
    the connect, that fork server died as well."""
    said, same_fork_server = run_script(tmp_path, _RETRY_PAST_THE_OPEN_FILE_LIMIT_SCRIPT)
    assert said == (
        "a Lambda sandbox could not start: its fork server had died (ConnectionRefusedError: the fork server died), and"
        " starting it again failed: OSError: [Errno 24] Too many open files: raise the open-file limit (ulimit -n)"
        " before starting the stack"
    )
    assert same_fork_server, "the fork server started again died of the refused start"


_FORK_REFUSED_SCRIPT = """
import errno, json, os
from pathlib import Path

if __name__ != "__main__":  # the fork server, which preloads this script as a module: the OS refuses it every fork
    def fork():
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    os.fork = fork
else:
    from local.sandboxes import LambdaSandboxes, SandboxStartError
    from tests.local.test_sandboxes import work

    script = Path(__file__).resolve()
    os.environ["PYTHONPATH"] += os.pathsep + str(script.parent)  # the fork server's, to find it
    pool = LambdaSandboxes(1, target=work, preload=script.stem)
    try:
        pool.submit({}, None).result(timeout=60)
        said = None
    except SandboxStartError as error:
        said = str(error)
    size = pool.size
    pool.shutdown()
    print(json.dumps([said, size]))
"""


def test_a_sandbox_its_fork_server_cannot_fork_fails_saying_what_helps(tmp_path):
    """CPython's fork server dies of a fork the OS refuses it (EAGAIN past ulimit -u, ENOMEM): the start saw only its
    EOF where the sandbox's pid was to come, twice (the fork server started again is refused too), and said nothing
    of what helps. (Real limits cannot be used: root is not held to ulimit -u.)"""
    said, size = run_script(tmp_path, _FORK_REFUSED_SCRIPT)
    assert said == (
        "a Lambda sandbox could not start: its fork server had died (EOFError: unexpected EOF), and starting it again"
        " failed: EOFError: unexpected EOF: the fork server died after taking the start, most likely forking the"
        " sandbox, as it does when the OS refuses it a process (its traceback names the error): raise the process"
        " limit (ulimit -u), end some processes, or free some memory"
    )
    assert size == 0


def test_an_invocation_waiting_for_the_slot_the_os_refused_a_sandbox_for_runs(one, monkeypatch):
    real_submit = ProcessPoolExecutor.submit
    waiting: list = []

    def refuse_once(self, fn, *args, **kwargs):
        if work in (fn, *args[:1]) and not waiting:
            waiting.append(one.submit({}, None))  # arrives while the refused invocation holds the only slot
            raise OSError(24, "Too many open files")
        return real_submit(self, fn, *args, **kwargs)

    on_every_sandbox(monkeypatch, one, "submit", refuse_once)
    with pytest.raises(SandboxStartError, match=REFUSED_EMFILE):
        one.submit({}, None).result(timeout=60)
    assert waiting[0].result(timeout=60), "it waits for a slot that is free"
    assert one.size == 1


def test_a_waiting_invocation_runs_when_the_one_before_it_is_refused_its_start(one, tmp_path, monkeypatch):
    go = tmp_path / "go"
    busy = one.submit({"wait_for": str(go)}, None)
    first, second = one.submit({}, None), one.submit({}, None)  # both wait for the only sandbox
    real_submit = ProcessPoolExecutor.submit
    refused: list = []

    def refuse_once(self, fn, *args, **kwargs):
        if work in (fn, *args[:1]) and not refused:
            refused.append(fn)
            raise OSError(24, "Too many open files")
        return real_submit(self, fn, *args, **kwargs)

    on_every_sandbox(monkeypatch, one, "submit", refuse_once)
    go.touch()
    assert busy.result(timeout=60)
    with pytest.raises(SandboxStartError, match=REFUSED_EMFILE):
        first.result(timeout=60)
    assert second.result(timeout=60), "the slot the refused start freed goes to the next invocation"
    assert one.size == 1


def test_a_waiting_invocation_fails_when_the_os_refuses_the_sandbox_it_needs(one, tmp_path, monkeypatch):
    go = tmp_path / "go"
    dying = one.submit({"wait_for": str(go), "die": True}, None)  # holds the only sandbox, then frees its slot
    waiting = [one.submit({}, None) for _ in range(2)]
    real_new_sandbox = LambdaSandboxes._new_sandbox

    def refuse(self):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(LambdaSandboxes, "_new_sandbox", refuse)
    go.touch()
    with pytest.raises(BrokenProcessPool):
        dying.result(timeout=60)
    for invocation in waiting:  # each waited for that slot, and nothing else would free one: no hang
        with pytest.raises(SandboxStartError, match=REFUSED_EMFILE) as refused_start:
            invocation.result(timeout=60)
        assert isinstance(refused_start.value.__cause__, OSError)
    monkeypatch.setattr(LambdaSandboxes, "_new_sandbox", real_new_sandbox)
    assert one.submit({}, None).result(timeout=60)
    assert one.size == 1


@pytest.mark.parametrize("step", ["fork server", "executor", "process"])
def test_a_warm_start_the_os_refuses_says_so_without_blaming_the_handler(one, monkeypatch, step):
    """warm() at the stack's start: an OSError there stopped it with "the Lambda handler cannot start: OSError"."""
    from multiprocessing import forkserver

    refusal = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def refuse(*args, **kwargs):
        raise refusal

    real_submit = ProcessPoolExecutor.submit
    if step == "fork server":  # local.sandboxes' own forkserver: forkserver.ensure_running itself is every thread's
        monkeypatch.setattr(sandboxes_module, "forkserver", names_of(forkserver, ensure_running=refuse))
    elif step == "executor":
        monkeypatch.setattr(one, "_new_sandbox", refuse)
    else:
        on_every_sandbox(
            monkeypatch,
            one,
            "submit",
            lambda self, fn, *a: refuse() if fn is sandboxes_module._import_handler else real_submit(self, fn, *a),
        )
    with pytest.raises(SandboxStartError) as refused:
        one.warm()
    assert str(refused.value) == (
        "a Lambda sandbox could not start: the OS refused it (BlockingIOError: [Errno 11] Resource temporarily"
        " unavailable): raise the process limit (ulimit -u), or end some processes"
    )
    assert refused.value.__cause__ is refusal


_WARM_SCRIPT = """
from local.sandboxes import LambdaSandboxes

if __name__ == "__main__":
    sandboxes = LambdaSandboxes(1)
    try:
        sandboxes.warm()
    except Exception as error:
        print(type(error).__name__, error)
    finally:
        sandboxes.shutdown()
"""


def run_with_a_stand_in_handler(tmp_path: Path, handler_source: str, script_source: str) -> str:
    """Runs script_source in a fresh interpreter where handlers.inference_proxy is handler_source (the rest of the
    handlers package is the real one); returns the last line it printed."""
    import subprocess
    import sys

    handlers = tmp_path / "shadow" / "handlers"
    handlers.mkdir(parents=True)
    (handlers / "__init__.py").write_text("import pkgutil\n\n__path__ = pkgutil.extend_path(__path__, __name__)\n")
    (handlers / "inference_proxy.py").write_text(handler_source)
    script = tmp_path / "warm.py"
    script.write_text(script_source)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{handlers.parent}{os.pathsep}{root}"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_an_oserror_the_handler_raises_at_import_stays_the_handlers(tmp_path):
    """Only starting the sandbox is the OS's refusal: the handler's own import (run in the sandbox) raising an
    OSError stops the stack blaming the handler, as any other error of its import."""
    said = run_with_a_stand_in_handler(tmp_path, 'raise OSError(5, "Input/output error")\n', _WARM_SCRIPT)
    assert said == "OSError [Errno 5] Input/output error"


_PRELOAD_SCRIPT = """
import json
from multiprocessing import forkserver
from local.sandboxes import LambdaSandboxes

if __name__ == "__main__":
    sandboxes = LambdaSandboxes(1)
    sandboxes.warm()
    fork_server = forkserver._forkserver._forkserver_pid
    sandboxes.shutdown()
    print(json.dumps(fork_server))
"""


def test_the_fork_server_imports_the_handler_once_for_every_sandbox(tmp_path):
    """The sandboxes start warm: the handler is imported in the fork server, which each sandbox is forked from. A
    preload of another module passed every test, as each sandbox then imports the handler itself (warm() does it in
    the first): every sandbox started cold, paying the handler's import on its first invocation."""
    imports = tmp_path / "imports"  # a stand-in inference_proxy notes the pid of each process that imports it
    noting = f"import os\n\nwith open({str(imports)!r}, 'a') as log:\n    log.write(f'{{os.getpid()}}\\n')\n"
    fork_server = int(run_with_a_stand_in_handler(tmp_path, noting, _PRELOAD_SCRIPT))
    assert imports.read_text().split() == [str(fork_server)]


def test_an_executors_wakeup_waits_for_its_close_and_a_close_for_its_wakeup():
    """The interpreter's exit wakes every executor (_python_exit) as shutdown() lets theirs close their wakeup pipes:
    a close between a wakeup's check and its send raised EBADF, no executor's thread was joined, and 1 run in 50 of
    the open-file test below hung at exit on an idle sandbox never sent its stop (CPython's gh-125451, fixed in
    3.12.8 and 3.13.1 only). Here the wakeup is held inside its send while a close starts."""
    from concurrent.futures import process as futures_process

    wakeup = futures_process._ThreadWakeup()
    sending, send = threading.Event(), threading.Event()
    real_send = wakeup._writer.send_bytes

    def held_send(data: bytes) -> None:
        sending.set()
        send.wait(HANG_GUARD_S)
        real_send(data)

    wakeup._writer.send_bytes = held_send
    errors: list[OSError] = []

    def wake() -> None:
        try:
            wakeup.wakeup()
        except OSError as error:
            errors.append(error)

    waker = threading.Thread(target=wake)
    waker.start()
    assert sending.wait(HANG_GUARD_S)
    closer = threading.Thread(target=wakeup.close)
    closer.start()

    def closed_or_waiting() -> bool:
        frame = sys._current_frames().get(closer.ident)
        return frame is None or frame.f_code is sandboxes_module._ThreadWakeup.close.__code__

    wait_until(closed_or_waiting, "the close to close the pipe or wait for the wakeup")
    send.set()
    waker.join(HANG_GUARD_S)
    closer.join(HANG_GUARD_S)
    assert errors == [], "the pipe was closed under the wakeup"
    assert wakeup._closed


def test_shutdown_cancels_waiting_invocations_and_refuses_new_ones(tmp_path):
    pool = sandboxes(1)
    go = tmp_path / "go"
    busy = pool.submit({"wait_for": str(go)}, None)
    waiting = pool.submit({"touch": str(tmp_path / "ran")}, None)
    pool.shutdown()
    assert waiting.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit({}, None)
    go.touch()
    busy.exception(timeout=60)  # it ends either way (finished or cancelled with the executor); it never hangs
    assert not (tmp_path / "ran").exists()


def test_a_stop_lets_an_invocation_in_flight_finish_and_then_ends_its_sandbox(tmp_path):
    """shutdown() without end_invocations is the graceful stop: the caller of an invocation already running is still
    waiting for its answer, which the handler gives; its sandbox ends after it."""
    pool = sandboxes(1)
    started, go = tmp_path / "started", tmp_path / "go"
    busy = pool.submit({"started": str(started), "wait_for": str(go)}, None)
    wait_until(started.exists, "the invocation to begin")
    pool.shutdown()
    go.touch()
    pid = busy.result(timeout=HANG_GUARD_S)
    wait_until(lambda: not psutil.pid_exists(pid), "its sandbox to end")


def test_a_stop_that_gave_up_on_the_invocations_in_flight_ends_their_sandboxes_at_once(tmp_path):
    """A stop whose grace period ran out has answered their callers: a sandbox left to finish its invocation called the
    runtime tier the stop had closed, and logged "model_not_ready" after "stopped". Ended, it runs nothing more."""
    pool = sandboxes(2)
    started, go, ran = tmp_path / "started", tmp_path / "go", tmp_path / "ran"
    busy = pool.submit({"started": str(started), "wait_for": str(go), "touch": str(ran)}, None)
    idle = pool.submit({}, None).result(timeout=HANG_GUARD_S)  # a second sandbox, idle: it ends as before
    wait_until(started.exists, "the invocation to begin")
    pool.shutdown(end_invocations=True)
    assert isinstance(busy.exception(timeout=HANG_GUARD_S / 2), BrokenProcessPool)  # not left waiting for its gate
    go.touch()
    wait_until(lambda: not psutil.pid_exists(idle), "the idle sandbox to end")
    time.sleep(0.5)
    assert not ran.exists()


@pytest.mark.parametrize("how", ["submitted", "dispatched"])
def test_an_invocation_whose_sandbox_is_shut_down_before_it_is_handed_over_fails_saying_so(
    one, tmp_path, monkeypatch, how
):
    """Taken under the lock, a sandbox is handed its invocation outside it: shutdown() can let go of it in between
    (from submit(), or from the dispatch of a waiting invocation as the busy sandbox frees its slot)."""
    go = tmp_path / "go"
    busy = one.submit({"wait_for": str(go)}, None) if how == "dispatched" else None
    real_start = one._start

    def shut_down_first(*args, **kwargs):
        one.shutdown()
        return real_start(*args, **kwargs)

    monkeypatch.setattr(one, "_start", shut_down_first)
    invocation = one.submit({"touch": str(tmp_path / "ran")}, None)
    if busy is not None:
        go.touch()
        busy.result(timeout=60)
    with pytest.raises(RuntimeError) as shut_down:
        invocation.result(timeout=60)
    assert (type(shut_down.value), str(shut_down.value)) == (RuntimeError, "the sandboxes are shut down")
    assert not (tmp_path / "ran").exists()


def blocked_signals(pid: int) -> set[int]:
    """The signals a process blocks (its main thread's mask, as /proc shows it)."""
    require_proc("a process's signal mask")
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    mask = int(next(line for line in status if line.startswith("SigBlk:")).split()[1], 16)
    return {sig for sig in range(1, signal.NSIG) if mask & (1 << (sig - 1))}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_a_terminals_ctrl_c_or_hangup_leaves_a_sandbox_running(one, sig):
    """Both reach the whole process group; the server stops its sandboxes itself once its requests are answered.
    A sandbox has them blocked, from its fork server: here it unblocks them, or the signal would wait unseen and the
    test pass whatever the sandbox does with it (_sandbox_init ignores them all the same)."""
    first = one.submit({"unblock": True}, None).result(timeout=60)
    assert sig not in blocked_signals(first), f"{sig.name} is blocked in the sandbox: this test could not fail"
    os.kill(first, sig)
    assert one.submit({}, None).result(timeout=60) == first, "the sandbox died"
    assert not dead(first)


def test_a_sigterm_to_the_whole_group_lets_a_busy_sandbox_finish_its_invocation(one, tmp_path):
    """`timeout` and service managers (systemd) stop a program with SIGTERM to its whole process group, as a closed
    terminal does with SIGHUP: the server answers what is in flight, then stops the sandboxes itself. The sandbox
    and its fork server died at once instead, and every invocation in flight failed (API Gateway's 500).
    The SIGTERM is not lost: that sandbox takes no further invocation (which runs, once, in a new one), and an
    idle sandbox still ends at a SIGTERM, which its executor's terminate() sends."""
    from multiprocessing import forkserver

    first = one.submit({}, None).result(timeout=60)
    fork_server = forkserver._forkserver._forkserver_pid
    busy = one.submit({"started": str(tmp_path / "started"), "wait_for": str(tmp_path / "go")}, None)
    wait_until((tmp_path / "started").exists, "the invocation to begin")
    os.kill(first, signal.SIGTERM)
    os.kill(fork_server, signal.SIGTERM)
    time.sleep(0.5)  # what the signals do, they do at once
    (tmp_path / "go").touch()
    assert busy.result(timeout=60) == first
    assert not dead(fork_server), "the fork server died of the SIGTERM"
    runs = tmp_path / "runs"
    second = one.submit({"count": str(runs)}, None).result(timeout=60)
    assert second != first and runs.read_text() == "ran\n"
    wait_until(lambda: dead(first), "the sandbox that had the SIGTERM to end")
    os.kill(second, signal.SIGTERM)
    wait_until(lambda: dead(second), "an idle sandbox to end at a SIGTERM")


def exit_of_a_sandbox_thread(setup: str, fork_server_pid: str) -> tuple[int, str]:
    """_exit_with_server run in a fresh process whose server is itself: exit status 0 is its os._exit(0), 3 that it
    returned; and what it wrote to stderr."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from local import sandboxes\n"
        f"{setup}"
        f"sandboxes._exit_with_server(os.getpid(), {fork_server_pid})\n"
        "sys.exit(3)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


@pytest.mark.parametrize("error", ["ProcessLookupError", "PermissionError"])
def test_a_sandbox_exits_once_its_servers_pid_is_gone_or_someone_elses(error):
    """PermissionError: the server died and its pid went to another user's process (root never sees that). The pid is
    a live process's (this one's): a pidfd opened on it would wait for that process, not the server that had it."""
    server_gone = f"def kill(pid, sig): raise {error}(pid)\nos.kill = kill\n"
    assert exit_of_a_sandbox_thread(server_gone, "os.getppid()") == (0, "")


def test_a_sandbox_whose_fork_server_died_before_it_looked_exits():
    """The fork server's pid, read as the sandbox starts, may be another process's by the time a pidfd is opened on
    it (here a live one that is not the parent): the sandbox was reparented, and exits rather than wait for it."""
    assert exit_of_a_sandbox_thread("", "os.getpid()") == (0, "")


def test_a_sandbox_whose_fork_server_is_gone_as_it_opens_a_pidfd_exits_at_once():
    """The fork server's pid no longer a process's when its pidfd is opened (it died as the sandbox started): exit
    then, not a poll a second later. (5: it polled.)"""
    reaped = (
        "import subprocess, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'pass'])\n"
        "child.wait()\n"
        "def polled(seconds): os._exit(5)\n"
        "time.sleep = polled\n"
    )
    assert exit_of_a_sandbox_thread(reaped, "child.pid") == (0, "")


def test_without_pidfds_a_sandbox_whose_fork_server_died_exits_at_its_next_poll():
    """Where there is no pidfd (macOS, Linux before 5.3) the sandbox polls, once a second: for its fork server too
    (here a live process that is not its parent), or one left by a dead fork server idles for as long as the server
    lives."""
    assert exit_of_a_sandbox_thread("del os.pidfd_open\n", "os.getpid()") == (0, "")


@pytest.mark.parametrize("ends", ["server", "fork server"])
def test_a_sandbox_waits_for_its_server_and_fork_server_without_waking_and_exits_with_either(ends):
    """An idle stack's sandboxes each woke once a second to look for their server (64 after a load test, never
    retired: 1.9% of a CPU, idle, where 0.4% is uvicorn's own). Here the wait may not sleep to poll, and still ends
    when the one that `ends` exits, its zombie unreaped as when a parent reads the server's output to the end."""
    import subprocess
    import sys

    require_proc("a pidfd of the server (Linux's)")
    script = (
        "import os, subprocess, sys, threading, time\n"
        "from local import sandboxes\n"
        "live = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE)\n"
        "ending = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE)\n"
        "def polled(seconds): os._exit(5)\n"
        "time.sleep = polled\n"
        f"server, fork_server = (ending, live) if {ends == 'server'} else (live, ending)\n"
        "threading.Thread(target=sandboxes._exit_with_server, args=(server.pid, fork_server.pid)).start()\n"
        "ending.stdin.close()\n"
        "threading.Event().wait()\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, ""), "5: it polled"


def test_a_server_that_exited_unreaped_is_gone_to_its_sandboxes():
    """A server whose parent reads its output to the end reaps it only once every holder of that pipe (a sandbox
    left behind among them) has closed it: the sandbox must take the zombie for gone, or both wait for ever."""
    import subprocess
    import sys

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, "the child to exit")
        assert sandboxes_module._server_gone(zombie.pid)
        assert not sandboxes_module._server_gone(os.getpid())
    finally:
        zombie.wait()
    assert sandboxes_module._server_gone(zombie.pid)


def test_a_live_server_whose_name_reads_like_a_zombies_state_is_not_gone():
    """/proc/<pid>/stat gives the process's name in parentheses, and a name may hold ") Z " itself (a process
    names itself): its state is the field after the last ")", not the first."""
    import subprocess
    import sys

    require_proc("a process's state")
    named = "open('/proc/self/comm', 'w').write('x) Z (y'); import sys; sys.stdin.read()"
    server = subprocess.Popen([sys.executable, "-c", named], stdin=subprocess.PIPE)
    try:
        wait_until(lambda: psutil.Process(server.pid).name() == "x) Z (y", "the process to name itself")
        assert not sandboxes_module._server_gone(server.pid)
    finally:
        server.stdin.close()
        server.wait()


def test_a_live_server_whose_proc_entry_cannot_be_read_is_not_gone(monkeypatch):
    """Where there is no /proc (macOS) the zombie check cannot look: a server that answers kill(pid, 0) is alive.
    Taken for gone, every sandbox there would exit at its first poll, a second after it started."""

    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    monkeypatch.setattr(sandboxes_module, "open", no_proc, raising=False)  # this module's open, not builtins'
    assert not sandboxes_module._server_gone(os.getpid())


def test_max_sandboxes_must_be_positive():
    with pytest.raises(ValueError, match="max_sandboxes"):
        LambdaSandboxes(0)


@pytest.mark.parametrize("idle_limit_s", [0, -1, float("nan"), float("inf")])
def test_the_idle_limit_must_be_positive(idle_limit_s):
    with pytest.raises(ValueError, match="idle_limit_s"):
        LambdaSandboxes(1, idle_limit_s=idle_limit_s)


def test_the_idle_limit_may_be_the_longest_wait_there_is():
    # threading.TIMEOUT_MAX is a wait the reaper can make: a limit of exactly that (never retire, in effect) is valid.
    pool = LambdaSandboxes(1, idle_limit_s=threading.TIMEOUT_MAX)
    pool.shutdown()


# A retirement a test waits for (with a deadline, not a sleep): short, so the tests do not idle.
IDLE_S = 0.3


def burst(pool: LambdaSandboxes, size: int, tmp_path: Path) -> list[psutil.Process]:
    """`size` concurrent invocations (a gate holds each until all have their own sandbox); their sandboxes' processes,
    each returned to the idle ones in the order listed (each gate opens once the one before has been answered)."""
    gates = [tmp_path / f"gate-{index}" for index in range(size)]
    started = [tmp_path / f"started-{index}" for index in range(size)]
    running = [
        pool.submit({"started": str(begun), "wait_for": str(gate)}, None)
        for begun, gate in zip(started, gates, strict=True)
    ]
    wait_until(lambda: all(begun.exists() for begun in started), "every invocation of the burst to begin")
    processes = []
    for gate, invocation in zip(gates, running, strict=True):
        gate.touch()
        processes.append(psutil.Process(invocation.result(timeout=HANG_GUARD_S)))
    assert len({process.pid for process in processes}) == size, "a sandbox each"
    return processes


def reaped(process: psutil.Process) -> bool:
    """Exited and reaped (by the fork server): not a zombie left behind. (is_running tells a reused pid apart.)"""
    return not process.is_running()


def reaper_wait(pool: LambdaSandboxes) -> FrameType | None:
    """The frame of the reaper's Condition.wait, or None when the reaper is not blocked in it."""
    frame = sys._current_frames().get(pool._reaper.ident) if pool._reaper else None
    while frame is not None and frame.f_code is not threading.Condition.wait.__code__:
        frame = frame.f_back
    return frame


def reaper_waits_for_nothing(pool: LambdaSandboxes) -> bool:
    """Whether the reaper is blocked in its Condition's wait with no deadline: nothing is due to retire, ever."""
    frame = reaper_wait(pool)
    return frame is not None and "timeout" in frame.f_locals and frame.f_locals["timeout"] is None


def test_idle_sandboxes_retire_but_the_most_recently_used_one(tmp_path):
    """A load test's 64 sandboxes held ~1.1 GB PSS for the stack's whole life; Lambda reclaims idle ones. The last one
    used stays, for the next request (see _retire_idle)."""
    pool = sandboxes(4, idle_limit_s=IDLE_S)
    try:
        pool.submit({}, None).result(timeout=HANG_GUARD_S)  # one at a time: one sandbox, nothing to retire
        assert pool._reaper is None, "a thread that had nothing to do"
        *retiring, last = burst(pool, 4, tmp_path)
        wait_until(lambda: pool.size <= 1, "the idle sandboxes to retire")
        assert pool.size == 1, "the most recently used one retired too"
        # Read as the others have retired, the size passed a reaper that retires the kept one too, a moment later
        # when it is due (on a loaded machine it had often retired by then): past that time the reaper must have
        # settled to wait for nothing, the kept one still there.
        with pool._lock:
            [kept_since] = pool._idle.values()
        wait_until(
            lambda: time.monotonic() >= kept_since + IDLE_S and reaper_waits_for_nothing(pool),
            "the reaper to wait for nothing past the kept sandbox's idle limit",
        )
        assert pool.size == 1, "the most recently used one retired too, once past the idle limit"
        wait_until(lambda: all(map(reaped, retiring)), "the retired sandboxes' processes to exit and be reaped")
        assert pool.submit({}, None).result(timeout=HANG_GUARD_S) == last.pid, "not the most recently used one"
        assert pool.size == 1
    finally:
        pool.shutdown()


def test_sandboxes_idle_again_after_a_retirement_retire_too(tmp_path):
    """Left with one sandbox idle, the reaper waits for nothing: a second one idling must wake it. Every test's
    sandboxes retired once only, so a park that started the reaper but never woke it passed them all, where the
    sandboxes of a second load test would have been kept for the stack's life."""
    pool = sandboxes(3, idle_limit_s=IDLE_S)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    try:
        burst(pool, 2, first)
        wait_until(lambda: pool.size <= 1 and reaper_waits_for_nothing(pool), "the reaper to retire and wait")
        *retiring, last = burst(pool, 3, second)
        wait_until(lambda: pool.size <= 1, "the second burst's idle sandboxes to retire")
        wait_until(lambda: all(map(reaped, retiring)), "their processes to exit and be reaped")
        assert pool.submit({}, None).result(timeout=HANG_GUARD_S) == last.pid, "not the most recently used one"
    finally:
        pool.shutdown()


def reaper_deadline(pool: LambdaSandboxes) -> float | None:
    """When the reaper, blocked in its Condition's timed wait, is to look again (time.monotonic()); None if not so."""
    frame = reaper_wait(pool)
    if frame is None or frame.f_back is None or frame.f_locals.get("timeout") is None:
        return None
    return frame.f_back.f_locals["now"] + frame.f_locals["timeout"]


def test_the_reaper_wakes_when_the_oldest_idle_sandbox_is_due(tmp_path):
    """After a retirement the reaper sleeps to the next sandbox due, the oldest idle one left: one that slept to the
    newest retirable one's time retired the others late, by as long as they had idled apart, and every test passed
    (they waited for retirements, however late). Parks spaced by a fraction of the limit, in lower bounds only:
    on a slow machine they may land later, and what is held stays true."""
    limit = 2.0
    pool = sandboxes(4, idle_limit_s=limit)
    gates = [tmp_path / f"gate-{index}" for index in range(4)]
    running = [pool.submit({"wait_for": str(gate)}, None) for gate in gates]
    try:
        wait_until(lambda: pool.size == 4, "a sandbox for each invocation")

        def park(index: int) -> float:
            gates[index].touch()
            running[index].result(timeout=HANG_GUARD_S)
            with pool._lock:
                return list(pool._idle.values())[-1]

        first = park(0)
        wait_until(lambda: time.monotonic() >= first + limit / 2, "half the limit after the first idled")
        second = park(1)
        wait_until(lambda: time.monotonic() >= second + limit / 4, "a quarter of the limit after the second")
        park(2)
        park(3)
        wait_until(lambda: pool.size <= 3, "the first idle sandbox to retire")

        seen: list[tuple[float, float]] = []

        def waiting() -> bool:  # read under the lock, which the reaper holds but in its wait: one consistent look
            with pool._lock:
                deadline = reaper_deadline(pool)
                if deadline is not None:
                    seen.append((deadline, next(iter(pool._idle.values())) + limit))
            return deadline is not None

        wait_until(waiting, "the reaper to wait for the next sandbox due")
        deadline, due = seen[-1]
        assert deadline == pytest.approx(due, abs=1e-6), "the reaper sleeps past the oldest idle sandbox's time"
    finally:
        for gate in gates:
            gate.touch()
        pool.shutdown()


def semaphore_files(sandbox: Any) -> list[Path]:
    """The files of its executor's queues' semaphores (POSIX named semaphores, in /dev/shm on Linux)."""
    if not os.path.isdir("/dev/shm"):
        skip_or_fail("no /dev/shm (Linux's) to find the sandboxes' semaphores in", "CI must run on Linux")
    if sandbox is None:
        return []
    locks = [
        getattr(queue, name)
        for queue in (sandbox._call_queue, sandbox._result_queue)
        for name in ("_rlock", "_wlock", "_sem")
        if getattr(queue, name, None) is not None
    ]
    return [Path("/dev/shm") / f"sem.{lock._semlock.name.lstrip('/')}" for lock in locks]


def test_a_retired_sandbox_leaves_no_semaphore_behind(tmp_path, monkeypatch):
    """Its executor's queues unlink their semaphores once it is shut down (or let go of): a retiree kept and never
    shut down left them in /dev/shm for the stack's life."""
    pool = sandboxes(2, idle_limit_s=IDLE_S)
    semaphore_files(None)  # no /dev/shm: skipped (or failed in CI) here, not in the sandbox's release below
    files: list[Path] = []
    existed: list[bool] = []
    park = pool._park

    def park_the_first_to_idle(sandbox):  # the one that retires, read as it idles: on a busy machine it may have
        if not files:  # retired before the burst returns
            files.extend(semaphore_files(sandbox))
            existed.extend(file.exists() for file in files)
        park(sandbox)

    monkeypatch.setattr(pool, "_park", park_the_first_to_idle)
    try:
        burst(pool, 2, tmp_path)
        assert files and all(existed), "not where this test looks for them"
        wait_until(lambda: pool.size <= 1, "the first sandbox to retire")
        wait_until(lambda: not any(file.exists() for file in files), "its semaphores to be unlinked")
    finally:
        pool.shutdown()


def test_a_sandbox_killed_while_idle_that_was_not_the_last_used_retires_as_an_idle_one_does(tmp_path, monkeypatch):
    """No invocation takes it (the most recently used one serves next), so nothing replaces it: the reaper retires it
    with the live ones, its semaphores with it, and the one kept serves the next invocation."""
    pool = sandboxes(2, idle_limit_s=IDLE_S)
    semaphore_files(None)  # no /dev/shm: skipped (or failed in CI) here, not in the sandbox's release below
    files: list[Path] = []
    killed: list[psutil.Process] = []
    park = pool._park

    def kill_the_first_to_idle(sandbox):  # as it idles: on a busy machine it may retire before the burst returns
        if not killed:
            files.extend(semaphore_files(sandbox))
            [worker] = [psutil.Process(pid) for pid in sandbox._processes]
            worker.kill()
            killed.append(worker)
        park(sandbox)

    monkeypatch.setattr(pool, "_park", kill_the_first_to_idle)
    go = tmp_path / "go"
    try:
        # Not burst(), whose look-up of each sandbox's process can come after the kill.
        (first, second) = running = [pool.submit({"wait_for": str(go)}, None) for _ in range(2)]  # a sandbox each
        go.touch()
        wait_until(lambda: all(invocation.done() for invocation in running), "both invocations to end")
        last = second.result() if killed[0].pid == first.result() else first.result()
        assert files, "not where this test looks for them"
        wait_until(lambda: pool.size <= 1, "the dead sandbox to retire")
        wait_until(lambda: reaped(killed[0]), "the killed sandbox's process to be reaped")
        wait_until(lambda: not any(file.exists() for file in files), "its semaphores to be unlinked")
        assert pool.submit({}, None).result(timeout=HANG_GUARD_S) == last
        assert pool.size == 1
    finally:
        pool.shutdown()


def test_a_request_arriving_as_sandboxes_retire_is_served(tmp_path, monkeypatch):
    """A retiree leaves the idle ones, and the sandboxes counted against the limit, before the reaper lets go of the
    lock to shut it down: two requests arriving in between take the one left and a new one, not the retiree (which
    fails them: shut down), nor wait for the slot it still held (the reaper starts no waiting invocation). With the
    retiree left counted until its shutdown, the second waited for the first to end, and every test passed."""
    pool = sandboxes(2, idle_limit_s=IDLE_S)
    try:
        retiring, last = burst(pool, 2, tmp_path)
        real_discard = pool._discard
        arrived: list = []

        def discard(sandbox):  # the reaper, its retiree taken, before that one's shutdown
            if threading.current_thread() is pool._reaper and not arrived:
                # Both submitted before the test opens their gate (a generator's first would be seen alone).
                arrived.extend([pool.submit({"wait_for": str(tmp_path / "go")}, None) for _ in range(2)])
            real_discard(sandbox)

        monkeypatch.setattr(pool, "_discard", discard)
        wait_until(lambda: arrived, "a retirement")
        (tmp_path / "go").touch()
        served = {invocation.result(timeout=HANG_GUARD_S) for invocation in arrived}
        assert last.pid in served and retiring.pid not in served and len(served) == 2
        wait_until(lambda: reaped(retiring), "the retired sandbox to exit and be reaped")
    finally:
        pool.shutdown()


def test_an_invocation_running_in_a_sandbox_that_idled_long_before_is_not_cut(tmp_path):
    """Only an idle sandbox retires: one that had idled past the limit, then took an invocation, keeps it (and its
    place) while others retire around it, and serves the next one."""
    pool = sandboxes(3, idle_limit_s=IDLE_S)
    try:
        first = pool.submit({}, None).result(timeout=HANG_GUARD_S)
        time.sleep(IDLE_S * 2)  # idle past the limit, kept as the only one (the most recently used)
        started, go = tmp_path / "started", tmp_path / "go"
        running = pool.submit({"started": str(started), "wait_for": str(go)}, None)
        wait_until(started.exists, "the invocation to begin")
        burst(pool, 2, tmp_path)  # two more, idle: the reaper retires one
        wait_until(lambda: pool.size <= 2, "an idle sandbox to retire")
        assert pool.size == 2 and not dead(first), "the running one's sandbox retired"
        go.touch()
        assert running.result(timeout=HANG_GUARD_S) == first
        assert pool.submit({}, None).result(timeout=HANG_GUARD_S) == first, "its sandbox did not live on"
    finally:
        pool.shutdown()


# A thread's uncaught exception (the reaper's) fails the test: pytest only warns of it.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_shutdown_during_a_retirement_ends_every_sandbox_and_the_reaper(tmp_path, monkeypatch):
    shut_down: list = []
    armed = threading.Event()  # once the burst is served

    class Sandbox(ProcessPoolExecutor):  # local.sandboxes' own name for it: ProcessPoolExecutor itself is everyone's
        def shutdown(self, *args, **kwargs):  # the reaper, between taking its retirees and shutting them down
            if armed.is_set() and threading.current_thread() is pool._reaper and not shut_down:
                shut_down.append(self)
                pool.shutdown()
            return super().shutdown(*args, **kwargs)

    monkeypatch.setattr(sandboxes_module, "ProcessPoolExecutor", Sandbox)
    pool = sandboxes(3, idle_limit_s=IDLE_S)
    processes = burst(pool, 3, tmp_path)
    armed.set()
    wait_until(lambda: shut_down, "a retirement")
    reaper = pool._reaper
    wait_until(lambda: not reaper.is_alive(), "the reaper to end")
    assert pool.size == 0
    wait_until(lambda: all(map(reaped, processes)), "every sandbox to exit and be reaped")


def test_a_shutdown_ends_the_reaper_waiting_for_nothing(tmp_path):
    """With one sandbox idle the reaper has nothing due, and waits without a deadline: shutdown() wakes it to end."""
    pool = sandboxes(2, idle_limit_s=IDLE_S)
    try:
        burst(pool, 2, tmp_path)
        wait_until(lambda: pool.size <= 1, "the first sandbox to retire")
        reaper = pool._reaper
    finally:
        stopping = threading.Thread(target=pool.shutdown, daemon=True)
        stopping.start()
        stopping.join(timeout=HANG_GUARD_S)
    assert not stopping.is_alive(), "shutdown() hung, waiting for the reaper"
    assert not reaper.is_alive()


def test_a_retirement_round_hands_the_memory_the_burst_freed_back(tmp_path, monkeypatch):
    """A burst's freed memory stayed in the allocator's arenas for the server's life (50 MiB after 64 concurrent
    requests); the retirement round that leaves one sandbox idle, off the request path, gives it back."""
    pool = sandboxes(3, idle_limit_s=IDLE_S)
    sizes_at_return: list[int] = []
    monkeypatch.setattr(sandboxes_module, "_return_freed_memory", lambda: sizes_at_return.append(pool.size))
    try:
        burst(pool, 3, tmp_path)
        wait_until(lambda: pool.size <= 1, "the idle sandboxes to retire")
        wait_until(lambda: sizes_at_return and sizes_at_return[-1] == 1, "the last round to return the freed memory")
        assert all(size < 3 for size in sizes_at_return), "returned before any sandbox retired"
    finally:
        pool.shutdown()


FREED_IN_A_THREAD = """
import json, threading
from local.sandboxes import _return_freed_memory

def anonymous_kib():
    with open("/proc/self/smaps_rollup") as rollup:
        return next(int(line.split()[1]) for line in rollup if line.startswith("Anonymous:"))

kept = []

def burst():  # 50 MiB in malloc's chunks (past pymalloc's 512 bytes), in the arena of a thread that then ends
    blocks = [bytes(4096) for _ in range(12_800)]
    kept.append(bytes(4096))  # allocated last and kept: what was freed is not the arena's top, which free() gives back
    blocks.clear()

thread = threading.Thread(target=burst)
thread.start()
thread.join()
held = anonymous_kib()
_return_freed_memory()
print(json.dumps([held, anonymous_kib()]))
"""


def test_the_memory_a_finished_threads_arena_holds_free_goes_back_to_the_os(tmp_path):
    """What the reaper's round calls: glibc keeps a thread's freed memory in its arena for ever, unless asked."""
    if platform.libc_ver()[0] != "glibc":
        skip_or_fail("not glibc: its allocator has no malloc_trim, and keeps no arena per thread", "CI runs glibc")
    held, after = run_script(tmp_path, FREED_IN_A_THREAD)
    assert held - after > 25 * 1024, f"{held} KiB of anonymous memory, {after} KiB after (50 MiB were freed)"


def test_the_freed_memory_is_returned_only_where_the_c_library_can(monkeypatch):
    """glibc's malloc_trim, looked up once; none on macOS or musl, where it is a no-op rather than an error."""
    monkeypatch.setattr(sandboxes_module, "platform", SimpleNamespace(libc_ver=lambda *args, **kwargs: ("", "")))
    sandboxes_module._malloc_trim.cache_clear()
    try:
        assert sandboxes_module._malloc_trim() is None
        sandboxes_module._return_freed_memory()
    finally:
        sandboxes_module._malloc_trim.cache_clear()


def dead(pid: int) -> bool:
    """Gone or a zombie. The fork server reaps its children whenever it gets to it, so the pid can vanish
    between two looks at it: one lookup, and its disappearance counts as dead."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_injected_crash_kills_the_sandbox_it_lands_on(one):
    first = one.submit({}, None).result(timeout=60)
    with pytest.raises(BrokenProcessPool):
        one.submit({"touch": "/nonexistent/never-written"}, None, crash=True).result(timeout=60)
    assert dead(first)
    assert one.submit({}, None).result(timeout=60) != first


def test_an_invocation_past_the_functions_timeout_is_stopped_and_its_sandbox_replaced(one, tmp_path):
    # Lambda stops a handler at the function's timeout and gives the next invocation a new sandbox; one left
    # running held its sandbox for as long as it liked (a stuck handler, one slot fewer each time).
    first = one.submit({}, None).result(timeout=60)
    stuck = one.submit({"wait_for": str(tmp_path / "never")}, SimpleNamespace(timeout_s=0.5))
    with pytest.raises(LambdaTimeout, match=r"^Task timed out after 0\.50 seconds$"):
        stuck.result(timeout=HANG_GUARD_S)
    assert dead(first)
    assert one.submit({}, None).result(timeout=60) != first
    assert one.size == 1


def test_the_timer_that_stops_an_invocation_is_armed_at_the_functions_timeout_and_disarmed_after(one):
    """Armed later than the timeout, a stuck handler ran on past it, which Lambda never allows; left armed after the
    call, it ended the idle sandbox later. (What is left of it, read inside the handler: never more than armed.)"""
    left = one.submit({"timer": True}, SimpleNamespace(timeout_s=30)).result(timeout=60)
    assert 0 < left <= 30
    assert one.submit({"timer": True}, None).result(timeout=60) == 0.0  # the same sandbox: nothing armed now


def test_a_handlers_own_error_after_the_functions_timeout_stays_the_handlers(one):
    """Only a sandbox that died is one Lambda stopped at the timeout: an error the handler raised (here past the
    server's deadline, its own timer disarmed) is the handler's, which the log must show, not "Task timed out"."""
    first = one.submit({}, None).result(timeout=60)
    late = one.submit({"outlive_timeout": True, "raise": "handler bug"}, SimpleNamespace(timeout_s=0.2))
    with pytest.raises(RuntimeError, match=r"^handler bug$"):
        late.result(timeout=60)
    assert one.submit({}, None).result(timeout=60) == first, "the sandbox lives on"


def test_a_sandbox_dying_well_within_the_functions_timeout_is_a_crash_not_a_timeout(one):
    # The server hands every invocation a context with the function's timeout: a sandbox killed (out of memory) long
    # before it is Lambda's Runtime.ExitError, not "Task timed out": the log must not send its reader to the timeout.
    with pytest.raises(BrokenProcessPool):
        one.submit({"die": True}, SimpleNamespace(timeout_s=60)).result(timeout=60)
    assert one.submit({}, None).result(timeout=60)
    assert one.size == 1


def test_an_invocation_within_the_functions_timeout_leaves_its_sandbox_running(one):
    context = SimpleNamespace(timeout_s=0.3)
    first = one.submit({}, context).result(timeout=60)
    time.sleep(1.0)  # a timeout left armed after the call would have ended the idle sandbox by now
    assert not dead(first)
    assert one.submit({}, context).result(timeout=60) == first


def test_a_fork_server_multiprocessing_starts_again_blocks_ctrl_c_and_hangup_too(one):
    """multiprocessing starts a dead fork server again on its own, for the next new sandbox, in the thread that
    starts that sandbox (the server's event loop): it had that thread's signal mask, nothing blocked, and a Ctrl-C
    while it imported the handler printed a KeyboardInterrupt traceback, as at the first start before warm()
    blocked them. Every start of the fork server blocks them now."""
    from multiprocessing import forkserver

    one.submit({}, None).result(timeout=60)
    first = forkserver._forkserver._forkserver_pid
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: dead(first), "the fork server to die")
    with pytest.raises(BrokenProcessPool):  # the idle sandbox outlives its fork server: the next one is new
        one.submit({}, None, crash=True).result(timeout=60)
    sandbox = one.submit({}, None).result(timeout=60)
    again = forkserver._forkserver._forkserver_pid
    assert again != first
    assert {signal.SIGINT, signal.SIGHUP} <= blocked_signals(again)
    assert {signal.SIGINT, signal.SIGHUP} <= blocked_signals(sandbox)
    assert not {signal.SIGINT, signal.SIGHUP} & signal.pthread_sigmask(signal.SIG_BLOCK, set()), "left blocked here"


def test_a_sandbox_whose_fork_server_died_exits_though_its_executor_took_it_for_dead(one, tmp_path):
    """A sandbox's executor reads its exit status from the fork server: once that has died, the first poll (every
    process start polls every child) reads 255, and terminate() then signals nothing. Here the waiting invocation's
    new sandbox starts as the busy sandbox's executor fails it, before it terminates that sandbox: the sandbox was
    left running, uncounted, for as long as the server lived (for ever, under `make demo`)."""
    from multiprocessing import forkserver

    first = one.submit({}, None).result(timeout=60)
    [idle] = one._idle
    begun = one._sandboxes[idle]
    busy = one.submit({"wait_for": str(tmp_path / "never")}, None)
    waiting = one.submit({}, None)  # for the only slot
    wait_until(lambda: begun.value == 2, "the sandbox to begin the busy invocation")
    fork_server = forkserver._forkserver._forkserver_pid
    with one._lock:  # the executor's callback (which starts the new sandbox) waits until the fork server is dead
        os.kill(fork_server, signal.SIGKILL)
        wait_until(lambda: dead(fork_server), "the fork server to die")
    with pytest.raises(BrokenProcessPool):
        busy.result(timeout=60)
    assert waiting.result(timeout=60) != first
    wait_until(lambda: dead(first), "the sandbox whose fork server died to exit")


def fork_server_dies_at_the_connect(
    monkeypatch,
    error: type[Exception],
    times: int,
    started_again_meanwhile: bool = False,
    fds_sent: list[list[int]] | None = None,
) -> list[int]:
    """multiprocessing's connect to the fork server, for the next `times` sandbox starts, finds it alive (as
    ensure_running does) and then dead: it is killed there, not yet exited nor reaped, and the connect fails as it
    then does. `started_again_meanwhile`: another sandbox's start (in a thread of its own) then reaps it and starts
    the next fork server, before this start fails. Returns the fork server's pid at each connect; `fds_sent` gets
    the descriptors each connect was to pass to the sandbox."""
    from multiprocessing import forkserver

    real_connect = forkserver.connect_to_new_process
    connects: list[int] = []

    def connect(fds):
        forkserver.ensure_running()  # as the real one begins; it also starts a fork server that was reaped again
        connects.append(forkserver._forkserver._forkserver_pid)
        if fds_sent is not None:
            fds_sent.append(list(fds))
        if len(connects) > times:
            return real_connect(fds)
        os.kill(connects[-1], signal.SIGKILL)
        if started_again_meanwhile:
            assert sandboxes_module._fork_server_gone(connects[-1], timeout_s=HANG_GUARD_S)
            forkserver.ensure_running()
            assert forkserver._forkserver._forkserver_pid != connects[-1]
        raise error("the fork server died")

    monkeypatch.setattr(forkserver, "connect_to_new_process", connect)
    return connects


@pytest.mark.parametrize("error", [ConnectionRefusedError, EOFError])
def test_a_sandbox_started_as_its_fork_server_dies_starts_in_the_one_started_again(one, monkeypatch, error):
    """A fork server killed (or out of memory) is taken for alive until it is reaped: a sandbox started then failed
    (ConnectionRefusedError, or "EOFError: unexpected EOF" where its pid was to come), and its invocation, which it
    never began, with it: a 500 blamed on the handler. Lambda would run it in a new sandbox."""
    fds_sent: list[list[int]] = []
    connects = fork_server_dies_at_the_connect(monkeypatch, error, times=1, fds_sent=fds_sent)
    sandbox = one.submit({}, None).result(timeout=60)
    assert len(connects) == 2 and connects[0] != connects[1], "once more, once the fork server was started again"
    assert psutil.Process(sandbox).ppid() == connects[1]
    # The start again sends the sandbox its own descriptors, not the failed start's beside them (duplicates it holds)
    assert len(fds_sent[1]) == len(fds_sent[0]), fds_sent
    assert {signal.SIGINT, signal.SIGHUP} <= blocked_signals(connects[1]), "started again by the retry, as any start"


@pytest.mark.parametrize("error", [ConnectionRefusedError, EOFError])
def test_a_sandbox_whose_dead_fork_server_another_start_replaced_meanwhile_starts_in_the_new_one(
    one, monkeypatch, error
):
    """The server starts sandboxes in several threads at once (its event loop, and each sandbox's executor thread
    once it is free or dead), most of all as the fork server dies. The fork server to wait for was read after the
    failure: the one another start had just started again, alive, so this start waited 5 s for it to die and failed
    its invocation, which it never began."""
    connects = fork_server_dies_at_the_connect(monkeypatch, error, times=1, started_again_meanwhile=True)
    sandbox = one.submit({}, None).result(timeout=60)
    assert len(connects) == 2 and connects[0] != connects[1], "once more, in the fork server started meanwhile"
    assert psutil.Process(sandbox).ppid() == connects[1]


def test_a_start_whose_fork_server_died_before_sending_its_pid_closes_that_starts_pipes(one, monkeypatch):
    """The fork server took the start, then died ("EOFError: unexpected EOF" where the sandbox's pid was to come): the
    server kept that start's pipes open, until the sandbox started again in its place was done with."""
    from multiprocessing import forkserver

    real_connect, real_read_signed = forkserver.connect_to_new_process, forkserver.read_signed
    first_pipe: list[int] = []
    # Only this test's start (submit starts the sandbox in the calling thread): read_signed also reads a sandbox's
    # exit status (Popen.poll), as an earlier test's executor may still do in a thread of its own, and that sandbox's
    # pipe (closed as it exits) was taken for this start's, so a start that kept its pipes open passed.
    this_test = threading.get_ident()

    def connect(fds):
        forkserver.ensure_running()
        if not first_pipe and threading.get_ident() == this_test:  # it takes the start but forks nothing
            os.kill(forkserver._forkserver._forkserver_pid, signal.SIGSTOP)
        return real_connect(fds)

    def read_signed(fd):
        if not first_pipe and threading.get_ident() == this_test:
            first_pipe.append(os.fstat(fd).st_ino)
            os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)
        return real_read_signed(fd)

    monkeypatch.setattr(forkserver, "connect_to_new_process", connect)
    monkeypatch.setattr(forkserver, "read_signed", read_signed)
    sandbox = one.submit({}, None).result(timeout=60)
    assert first_pipe and psutil.Process(sandbox).is_running()
    require_proc("the descriptors this process holds")
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own descriptor, closed by now
            held.add(os.readlink(f"/proc/self/fd/{fd}"))
    assert f"pipe:[{first_pipe[0]}]" not in held


@pytest.mark.parametrize(
    ("again", "says"),
    [
        (None, r"starting it again failed: ConnectionRefusedError: the fork server died$"),
        (
            OSError(errno.EMFILE, "Too many open files"),
            r"starting it again failed: OSError: \[Errno 24\] Too many open files: raise the open-file limit"
            r" \(ulimit -n\) before starting the stack$",
        ),
        (
            EOFError("unexpected EOF"),  # where the sandbox's pid was to come: it died forking it
            r"starting it again failed: EOFError: unexpected EOF: the fork server died after taking the start, most"
            r" likely forking the sandbox, as it does when the OS refuses it a process \(its traceback names the"
            r" error\): raise the process limit"
            r" \(ulimit -u\), end some processes, or free some memory$",
        ),
    ],
    ids=["fork_server_died_again", "EMFILE", "EOFError"],
)
def test_a_sandbox_that_cannot_start_in_the_fork_server_started_again_fails_its_invocation_saying_so(
    one, monkeypatch, again, says
):
    """Started again, the fork server may die too (at the connect; or where the sandbox's pid was to come, EOFError:
    forking it, which the OS refused, most likely), or the OS refuse the start (then what helps, as for any refusal)."""
    connects = fork_server_dies_at_the_connect(monkeypatch, ConnectionRefusedError, times=1 if again else 2)
    if again is not None:
        from multiprocessing import forkserver

        dies_once = forkserver.connect_to_new_process

        def refused_the_second_time(fds):
            if connects:  # the fork server died at the first: the OS refuses the start once it is started again
                forkserver.ensure_running()
                connects.append(forkserver._forkserver._forkserver_pid)
                raise again
            return dies_once(fds)

        monkeypatch.setattr(forkserver, "connect_to_new_process", refused_the_second_time)
    with pytest.raises(
        SandboxStartError,
        match=r"^a Lambda sandbox could not start: its fork server had died \(ConnectionRefusedError: the fork server"
        r" died\), and " + says,
    ):
        one.submit({}, None).result(timeout=60)
    assert len(connects) == 2, "started once more, not again and again"
    assert one.size == 0
    monkeypatch.undo()
    assert one.submit({}, None).result(timeout=60)


@pytest.mark.parametrize("after_a_death", [False, True], ids=["running", "just_started_again"])
def test_a_sandbox_its_fork_server_refuses_though_alive_fails_its_invocation_saying_so(one, monkeypatch, after_a_death):
    """Only a fork server that died is started again: one still running once the wait for its exit ends is not, and
    the start fails without hanging and without blaming the handler or a death that did not happen. Also when this
    start is the one that starts it, the last one having died: the fork server refusing is that new one."""
    from multiprocessing import forkserver

    if after_a_death:
        idle = one.submit({}, None).result(timeout=60)
        last = forkserver._forkserver._forkserver_pid
        os.kill(last, signal.SIGKILL)
        assert sandboxes_module._fork_server_gone(last, timeout_s=HANG_GUARD_S)  # exited, and not reaped yet
        # Its idle sandbox exits too, within a second: until then, an executor that has not yet seen the fork
        # server's pipe close would still hand it this start's invocation, which it would run.
        wait_until(lambda: dead(idle), "the idle sandbox to exit with its fork server")

    def refuse(fds):
        forkserver.ensure_running()
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(forkserver, "connect_to_new_process", refuse)
    monkeypatch.setattr(sandboxes_module, "FORK_SERVER_EXIT_WAIT_S", 0.05)
    with pytest.raises(
        SandboxStartError, match=r"refused it \(ConnectionRefusedError: refused\) and is still running$"
    ):
        one.submit({}, None).result(timeout=60)
    assert one.size == 0


def test_a_start_waits_for_its_dead_fork_server_to_exit_and_leaves_it_for_multiprocessing_to_reap(one):
    """ensure_running starts a fork server again only once its own waitpid reaps the dead one: reaped here, it
    would raise ChildProcessError; not waited for, it is taken for alive again."""
    from multiprocessing import forkserver

    one.submit({}, None).result(timeout=60)
    fork_server = forkserver._forkserver._forkserver_pid
    assert not sandboxes_module._fork_server_gone(fork_server, timeout_s=0.05), "it is alive"
    os.kill(fork_server, signal.SIGKILL)
    assert sandboxes_module._fork_server_gone(fork_server, timeout_s=HANG_GUARD_S)
    assert psutil.Process(fork_server).status() == psutil.STATUS_ZOMBIE, "exited, and not reaped"


def test_a_dead_fork_server_another_thread_reaped_already_is_gone():
    """ensure_running, in another sandbox's start, may reap the dead fork server before this start looks: its
    waitid then raises ChildProcessError. Taken for alive, the start waited out FORK_SERVER_EXIT_WAIT_S and failed,
    "refused it ... and is still running". (In a process of its own: multiprocessing's fork server is one a process.)"""
    import subprocess
    import sys

    script = (
        "import subprocess, sys\n"
        "from multiprocessing import forkserver\n"
        "from local import sandboxes\n"
        "child = subprocess.Popen([sys.executable, '-c', 'pass'])\n"
        "child.wait()  # reaped\n"
        "forkserver._forkserver._forkserver_pid = child.pid\n"
        "print(sandboxes._fork_server_gone(child.pid, timeout_s=0.05))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True\n", "")


def shown_env(event: dict, context) -> dict:
    """A stand-in handler: what the sandbox's environment holds of the keys asked for."""
    return {k: os.environ.get(k) for k in event["keys"]}


_RESTART_SCRIPT = """
import json, os, signal, sys, time
from multiprocessing import forkserver
from local.sandboxes import LambdaSandboxes
from tests.local.test_sandboxes import shown_env

def main():
    os.environ["SHELL_SECRET"] = "ghp_from_the_shell"
    env = {"PATH": os.environ["PATH"], "FUNCTION_ONLY": "yes", "ENDPOINT_NAME": "mobilenet-local",
           "AWS_DEFAULT_REGION": "us-east-1"}
    sandboxes = LambdaSandboxes(1, target=shown_env, preload="tests.local.test_sandboxes")
    sandboxes.warm(env=env)
    hangup_blocked = signal.SIGHUP in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    keys = {"keys": ["SHELL_SECRET", "FUNCTION_ONLY"]}
    seen = [sandboxes.submit(keys, None).result(timeout=60)]
    first = forkserver._forkserver._forkserver_pid
    os.kill(first, signal.SIGKILL)
    while True:  # reaped by ensure_running's waitpid, or still a zombie: either way it serves no more
        try:
            os.kill(first, 0)
            if open(f"/proc/{first}/stat").read().split()[2] == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.05)
    try:  # the idle sandbox outlives its fork server: retire it so that the next invocation needs a new one
        sandboxes.submit(keys, None, crash=True).result(timeout=60)
    except Exception:
        pass
    seen.append(sandboxes.submit(keys, None).result(timeout=60))
    sandboxes.shutdown()
    print(json.dumps([*seen, hangup_blocked]))

if __name__ == "__main__":
    main()
"""


def test_a_fork_server_started_again_still_gives_the_sandboxes_only_the_functions_environment(tmp_path):
    """multiprocessing starts a dead fork server again on its own, for the next new sandbox (ensure_running in
    connect_to_new_process), with this process's environment: the sandboxes then had the developer's shell and
    none of the function's environment."""
    before, after, hangup_blocked = run_script(tmp_path, _RESTART_SCRIPT)
    assert before == {"SHELL_SECRET": None, "FUNCTION_ONLY": "yes"}
    assert after == before
    assert not hangup_blocked, "warm() left SIGHUP blocked (it blocks it only while the fork server starts)"


def whole_env(event: dict, context) -> list[dict]:
    """A stand-in handler: the sandbox's whole environment, as Python in it and a process it starts (env) see it."""
    import subprocess

    started = subprocess.run(["env"], capture_output=True, text=True, check=True, timeout=60).stdout
    return [dict(os.environ), dict(line.split("=", 1) for line in started.splitlines())]


_WHOLE_ENV_SCRIPT = """
import json, os
from local.sandboxes import LambdaSandboxes
from tests.local.test_sandboxes import whole_env

if __name__ == "__main__":
    os.environ["SHELL_SECRET"] = "ghp_from_the_shell"
    env = {"PATH": os.environ["PATH"], "FUNCTION_ONLY": "yes", "ENDPOINT_NAME": "mobilenet-local",
           "AWS_DEFAULT_REGION": "us-east-1"}
    sandboxes = LambdaSandboxes(1, target=whole_env, preload="tests.local.test_sandboxes")
    sandboxes.warm(env=env)
    seen, started = sandboxes.submit({}, None).result(timeout=60)
    sandboxes.shutdown()
    print(json.dumps([env, seen, started]))
"""


def test_a_sandboxs_environment_is_exactly_the_functions(tmp_path):
    """Not a variable more: the JSON the server hands the fork server its environment in (LOCAL_SANDBOX_ENVIRONMENT)
    stays out of it, as any variable of the server's does. Only chosen keys were checked, so the handler could see
    a copy of its whole environment under another name, which no Lambda function has. A process the handler starts
    (a subprocess, a library's helper) inherits the real environment, not os.environ's mapping: one rebinding
    os.environ to the function's dict left the shell's there."""
    env, seen, started = run_script(tmp_path, _WHOLE_ENV_SCRIPT)
    assert seen == env
    assert started == env


def test_only_the_fork_server_adopts_the_functions_environment():
    """Imported anywhere else (the server, a test), local.sandbox_env leaves the environment alone."""
    import json
    import subprocess
    import sys

    from local import sandbox_env

    script = (
        "import json, os; from local import sandbox_env; "
        "print(json.dumps([os.environ.get(name) for name in ('ONLY', 'SHELL_VALUE', sandbox_env.VARIABLE)]))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SHELL_VALUE": "kept", sandbox_env.VARIABLE: json.dumps({"ONLY": "function"})}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [None, "kept", env[sandbox_env.VARIABLE]], "nothing changed, the variable neither"


_CTRL_C_AS_THE_SANDBOXES_START = """
import os, sys, time
from pathlib import Path

GATES, PHASE = Path(os.environ["GATES"]), os.environ["PHASE"]


def held(name, until="go"):
    (GATES / name).touch()
    while not (GATES / until).exists():
        time.sleep(0.01)


if __name__ == "ctrl_c_at_start" and PHASE == "preload":  # the fork server imports this module: its preload
    held("fork server preloads")

# A sandbox imports the server's script first, then unpickles its queues (their semaphores) and its initializer.
if __name__ == "__mp_main__" and PHASE == "preload":
    held("sandbox forked", until="server stopped")  # it opens the semaphores once the server has taken the Ctrl-C

if __name__ == "__mp_main__" and PHASE == "bootstrap":
    from local import sandboxes

    init = sandboxes._sandbox_init

    def held_init(*args):
        held("sandbox starts")
        init(*args)

    sandboxes._sandbox_init = held_init

if __name__ == "__main__":
    from multiprocessing import forkserver
    from local.sandboxes import LambdaSandboxes
    from tests.local.test_sandboxes import work

    read_signed = forkserver.read_signed

    def reading_the_pid(fd):  # where Popen waits for the fork server to fork the sandbox
        (GATES / "server waits").touch()
        return read_signed(fd)

    forkserver.read_signed = reading_the_pid
    env = {"PATH": os.environ["PATH"], "ENDPOINT_NAME": "mobilenet-local", "AWS_DEFAULT_REGION": "us-east-1",
           "GATES": str(GATES), "PHASE": PHASE}
    pool = LambdaSandboxes(1, target=work, preload="ctrl_c_at_start")
    try:
        pool.warm(env=env)
    except KeyboardInterrupt:  # as start_sandboxes and `python -m local` take it
        pool.shutdown()
        (GATES / "server stopped").touch()
        print("stopped")
"""


@pytest.mark.parametrize(
    ("phase", "held"),
    [("preload", ["fork server preloads", "server waits"]), ("bootstrap", ["sandbox starts"])],
)
def test_ctrl_c_while_the_first_sandbox_starts_stops_without_a_traceback(phase, held, tmp_path):
    """`make demo`'s Ctrl-C reaches the whole process group, the fork server and a sandbox still starting
    included. Each phase is held where the signal landed in most Ctrl-Cs about a second after "loading": the fork
    server, importing the handler, printed a KeyboardInterrupt traceback; a sandbox not yet in its initializer
    printed one as 'Exception in initializer'; and the server, interrupted while the fork server forked its first
    sandbox, forgot that process and shutdown() unlinked its queues' semaphores: the sandbox, forked all the same,
    died unpickling them (FileNotFoundError in SemLock._rebuild)."""
    import subprocess
    import sys

    gates = tmp_path / "gates"
    gates.mkdir()
    script = tmp_path / "ctrl_c_at_start.py"
    script.write_text(_CTRL_C_AS_THE_SANDBOXES_START)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{tmp_path}", "GATES": str(gates), "PHASE": phase}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        wait_until(lambda: all((gates / name).exists() for name in held), f"{phase}: {held}")
        os.killpg(proc.pid, signal.SIGINT)
        (gates / "go").touch()
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert (proc.returncode, err) == (0, ""), err
    assert out == "stopped\n"
    wait_until(
        lambda: not process_group_members(proc.pid), "the fork server, the resource tracker and the sandbox to exit"
    )


def test_without_proc_the_tests_that_read_it_are_skipped_saying_so(monkeypatch, tmp_path):
    """macOS has no /proc: these tests failed there with FileNotFoundError (in a script, a traceback), as if the
    sandboxes were at fault."""
    import tests.ci

    monkeypatch.delenv("CI", raising=False)
    # tests.ci's own os: os.path.isdir itself replaced would be every other thread's too
    no_proc = SimpleNamespace(**{**vars(os.path), "isdir": lambda path: path != "/proc/self" and os.path.isdir(path)})
    monkeypatch.setattr(tests.ci, "os", SimpleNamespace(**{**vars(os), "path": no_proc}))
    for reads_proc in (lambda: blocked_signals(os.getpid()), lambda: run_script(tmp_path, _RESTART_SCRIPT)):
        with pytest.raises(pytest.skip.Exception, match=r"^no /proc \(Linux's; macOS has none\) to read "):
            reads_proc()
