"""LambdaSandboxes: one process per concurrent invocation, and a sandbox that dies takes down only its own."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import wait
from concurrent.futures.process import BrokenProcessPool

import psutil
import pytest

from local.sandboxes import LambdaSandboxes


def work(event, context):
    """A stand-in handler (the fork server imports this module by name): sleep, then report the sandbox's pid."""
    action, seconds = event
    time.sleep(seconds)
    if action == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does to a Lambda sandbox
    return os.getpid()


@pytest.fixture
def sandboxes():
    pool = LambdaSandboxes(3, target=work, preload=__name__)
    yield pool
    pool.shutdown()


def wait_until_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(pid), f"sandbox {pid} still exists"


def test_a_sandbox_dying_mid_invocation_fails_only_that_invocation(sandboxes):
    slow = [sandboxes.submit(("sleep", 2.0), None) for _ in range(2)]
    dying = sandboxes.submit(("die", 0.3), None)
    wait([*slow, dying], timeout=60)
    with pytest.raises(BrokenProcessPool):
        dying.result()
    survivors = {future.result() for future in slow}  # a shared process pool failed these two as well
    assert len(survivors) == 2
    after = sandboxes.submit(("sleep", 0.0), None).result(timeout=60)
    assert psutil.pid_exists(after)
    assert sandboxes.size <= 3


def test_invocations_beyond_the_limit_wait_for_a_free_sandbox(sandboxes):
    futures = [sandboxes.submit(("sleep", 0.3), None) for _ in range(7)]
    pids = [future.result(timeout=60) for future in futures]
    assert len(set(pids)) <= 3
    assert sandboxes.size == 3


def test_a_sandbox_that_died_while_idle_is_replaced_before_it_gets_a_request(sandboxes):
    first = sandboxes.submit(("sleep", 0.0), None).result(timeout=60)
    os.kill(first, signal.SIGKILL)
    wait_until_gone(first)  # reaped only once its executor has marked itself broken
    second = sandboxes.submit(("sleep", 0.0), None).result(timeout=60)
    assert second != first
    assert sandboxes.size == 1


def test_a_waiting_invocation_the_caller_cancelled_never_runs():
    pool = LambdaSandboxes(1, target=work, preload=__name__)
    try:
        busy = pool.submit(("sleep", 0.5), None)
        given_up = pool.submit(("sleep", 0.0), None)
        assert given_up.cancel()
        assert busy.result(timeout=60)
        assert pool.submit(("sleep", 0.0), None).result(timeout=60) == busy.result()  # the same sandbox again
    finally:
        pool.shutdown()


def test_shutdown_cancels_waiting_invocations_and_refuses_new_ones():
    pool = LambdaSandboxes(1, target=work, preload=__name__)
    busy = pool.submit(("sleep", 0.5), None)
    waiting = pool.submit(("sleep", 0.0), None)
    pool.shutdown()
    assert waiting.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(("sleep", 0.0), None)
    busy.exception(timeout=60)  # it ends either way (finished or cancelled with the executor); it never hangs


def test_max_sandboxes_must_be_positive():
    with pytest.raises(ValueError, match="max_sandboxes"):
        LambdaSandboxes(0)
