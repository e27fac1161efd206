"""TorchServe's JVM killed under the torchserve runtime: a retryable "not ready" until it is replaced, as a
serverless endpoint replaces a dead instance, then served again; nothing leaks (JVM, zombie, temp dir).

Runs after test_torchserve*.py (file order), whose endpoints are stopped by then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from handlers.proxy_core import map_client_error
from local.runtime import RuntimeAnswer, SageMakerRuntime, TorchServeContainer
from tests.container.conftest import _live, require_serving_stack
from tests.imagegen import photo_bytes

pytestmark = [pytest.mark.container, pytest.mark.slow]

NAME = "mobilenet-local"
JVM_MAIN_CLASS = "org.pytorch.serve.ModelServer"  # the toolkit's TS_NAMESPACE: how it finds the JVM too
REPLACED_WITHIN_S = 150  # a fresh JVM plus model load takes ~15 s here; generous for a loaded 2-core machine


@pytest.fixture
def runtime(artifact):
    require_serving_stack()
    assert not _live, f"an endpoint from an earlier module is still running at {_live[0].url}"
    rt = SageMakerRuntime(TorchServeContainer(artifact, startup_timeout=120), NAME, max_concurrency=2)
    try:
        yield rt
    finally:
        rt.close()


def invoke(rt: SageMakerRuntime) -> RuntimeAnswer:
    # A private loop, not asyncio.run: that one leaves the thread without a current loop, and the Pulumi mocks
    # of tests/infra (set up at collection, on the loop current then) would find theirs gone.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rt.invoke(NAME, photo_bytes("chelsea.jpg"), "image/jpeg", "application/json"))
    finally:
        loop.close()


def our_jvms() -> list[psutil.Process]:
    """Live TorchServe JVMs in a process group led by a child of this process (one group per stack)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if (
                JVM_MAIN_CLASS in (proc.info["cmdline"] or [])
                and proc.info["status"] != psutil.STATUS_ZOMBIE
                and psutil.Process(os.getpgid(proc.pid)).ppid() == os.getpid()
            ):
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def base_dir(jvm: psutil.Process) -> Path:
    """The stack's temp dir (torchserve-*): the working directory of the launcher leading the JVM's group."""
    return Path(psutil.Process(os.getpgid(jvm.pid)).cwd())


def gone(proc: psutil.Process) -> bool:
    """Exited: a zombie, or reaped (also between the two checks)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_jvm() -> psutil.Process:
    (jvm,) = our_jvms()
    jvm.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not gone(jvm):
        if time.monotonic() > deadline:
            pytest.fail(f"the JVM (pid {jvm.pid}) was still running 10 s after SIGKILL")
        time.sleep(0.05)
    return jvm


def zombie_children() -> list[psutil.Process]:
    """Our own unreaped children. Not grandchildren: the toolkit never waits for the `torchserve --start` script
    it runs (in the container too), which stays its zombie while the toolkit lives."""
    zombies = []
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child)
        except psutil.NoSuchProcess:
            pass
    return zombies


def assert_not_ready(answer: RuntimeAnswer) -> None:
    """SageMaker's answer while a serverless instance is provisioned, which the proxy turns into a retryable 503."""
    assert answer.status == 429, (answer.status, answer.body[:300])
    code = answer.headers["x-amzn-errortype"]
    assert code == "ModelNotReadyException"
    body = json.loads(answer.body)
    mapped = map_client_error(code, answer.status, {"Error": {"Code": code, "Message": body["message"]}, **body})
    assert (mapped.status, mapped.code) == (503, "model_not_ready")
    assert mapped.headers()["retry-after"]


def test_killed_jvm_is_not_ready_then_replaced_without_leaks(runtime, caplog):
    caplog.set_level(logging.WARNING, logger="local.torchserve")
    assert invoke(runtime).status == 200
    old_base = base_dir(our_jvms()[0])

    kill_jvm()
    assert_not_ready(invoke(runtime))  # not ModelError status 0 (the proxy's 504 endpoint_timeout)

    deadline = time.monotonic() + REPLACED_WITHIN_S
    while (answer := invoke(runtime)).status != 200:
        assert_not_ready(answer)
        assert time.monotonic() < deadline, f"not serving again {REPLACED_WITHIN_S} s after the JVM died"
        time.sleep(0.5)
    assert json.loads(answer.body)["predictions"]

    assert not zombie_children()  # the dead launcher was reaped
    assert not old_base.exists()  # the dead stack's temp dir is gone ...
    (jvm,) = our_jvms()  # ... and exactly one JVM serves
    assert base_dir(jvm) != old_base
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # once, however many invocations met the dead stack
    assert "TorchServe stopped serving" in errors[0] and "serve.log" in errors[0]


def test_close_during_the_replacement_leaves_nothing_behind(runtime):
    old_base = base_dir(our_jvms()[0])
    kill_jvm()
    assert_not_ready(invoke(runtime))  # noticed: the replacement starts in the background

    deadline = time.monotonic() + 60
    while not (fresh := [base_dir(jvm) for jvm in our_jvms() if base_dir(jvm) != old_base]):
        assert time.monotonic() < deadline, "no replacement JVM started"
        time.sleep(0.2)
    runtime.close()  # while the fresh stack is still loading the model

    assert not our_jvms()
    assert not zombie_children()
    assert not old_base.exists()
    assert not fresh[0].exists()
