"""The launcher's pure parts: where it puts things, which ports it binds, how it names a failure. No TorchServe."""

from __future__ import annotations

import contextlib
import functools
import http.client
import http.server
import io
import locale
import logging
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.error
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import psutil
import pytest

import local.runtime
from components.policies import sagemaker_container_env
from local import torchserve
from local.runtime import INVOCATION_TIMEOUT_S, sweep_orphaned_model_dirs
from local.torchserve import (
    WORKER_DIED,
    ManagedEndpoint,
    TorchServeDown,
    TorchServeEndpoint,
    TorchServeError,
    connection_lost,
    describe_exit,
    free_ports,
    last_error,
    management_address,
    serving_env,
    worker_death_cause,
)
from tests.ci import skip_or_fail
from tests.conftest import ROOT, names_of, tar_gz_of
from tests.waiting import HANG_GUARD_S, wait_until

BASE = Path("/tmp/torchserve-x")


@pytest.mark.parametrize(
    ("system", "machine", "base", "address"),
    [
        ("Linux", "x86_64", BASE, "unix:/tmp/torchserve-x/management.sock"),
        ("Linux", "aarch64", BASE, "unix:/tmp/torchserve-x/management.sock"),
        ("Darwin", "x86_64", BASE, "unix:/tmp/torchserve-x/management.sock"),
        # No native transport in TorchServe's jar for these: a unix: address would stop TorchServe at start.
        ("Darwin", "arm64", BASE, "http://127.0.0.1:18080"),
        ("Linux", "ppc64le", BASE, "http://127.0.0.1:18080"),
        # A socket path over macOS's 104-byte sun_path (a long TMPDIR) cannot be bound either.
        ("Linux", "x86_64", Path("/" + "t" * 87), "http://127.0.0.1:18080"),
        ("Linux", "x86_64", Path("/" + "t" * 86), "unix:/" + "t" * 86 + "/management.sock"),
        # Bytes, not characters: 61 characters, but 105 bytes in UTF-8.
        ("Linux", "x86_64", Path("/" + "é" * 44), "http://127.0.0.1:18080"),
    ],
)
def test_management_address(system, machine, base, address):
    """Off the inference port (which checks no Host) wherever TorchServe can listen on a Unix socket."""
    assert management_address(base, 18080, system, machine) == address


def test_every_listener_is_loopback_on_the_given_ports():
    env = serving_env(BASE, 18080, 18082, (17070, 17071))
    assert env["SAGEMAKER_BIND_TO_PORT"] == "18080"
    assert env["TS_INFERENCE_ADDRESS"] == "http://127.0.0.1:18080"
    # The management API where management_address puts it on this machine (test_management_address below).
    assert env["TS_MANAGEMENT_ADDRESS"] == management_address(BASE, 18080, platform.system(), platform.machine())
    assert env["TS_METRICS_ADDRESS"] == "http://127.0.0.1:18082"
    assert env["TS_GRPC_INFERENCE_ADDRESS"] == env["TS_GRPC_MANAGEMENT_ADDRESS"] == "127.0.0.1"
    assert (env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"]) == ("17070", "17071")
    assert not any("0.0.0.0" in value for value in env.values())


@pytest.mark.parametrize(
    "env",
    [
        {"LC_ALL": "C", "LANG": "C.UTF-8"},
        {"LC_CTYPE": "POSIX", "LANG": "C.UTF-8"},
        {"LANG": "C"},
        {},
        {"LC_ALL": "", "LANG": "C"},  # an empty one is unset, as for glibc
        # A locale this machine does not have: the C library, and so the JVM, falls back to the C locale (ASCII),
        # while Python still takes UTF-8. An ssh session from a Mac sends LC_CTYPE=UTF-8, which glibc has not.
        {"LC_CTYPE": "UTF-8"},
        {"LANG": "xx_XX.UTF-8"},
        {"LC_ALL": "C", "LC_CTYPE": "C.UTF-8"},  # LC_ALL wins over LC_CTYPE, for the C library as for the JVM
    ],
)
def test_the_jvm_gets_a_utf8_locale_in_place_of_an_ascii_one(env):
    assert torchserve.utf8_locale(torchserve.ctype_codeset(env)) == {"LC_ALL": "C.UTF-8"}


@pytest.mark.parametrize(
    "env", [{"LC_ALL": "", "LC_CTYPE": "C.UTF-8"}, {"LC_ALL": "C.UTF-8", "LANG": "C"}, {"LANG": "C.UTF-8"}]
)
def test_a_utf8_locale_is_kept(env):
    assert torchserve.ctype_codeset(env) == "UTF-8"
    assert torchserve.utf8_locale("UTF-8") == {}


@pytest.mark.parametrize("codeset", ["ANSI_X3.4-1968", "US-ASCII"])
def test_the_c_librarys_names_for_ascii_get_a_utf8_locale(codeset):
    # glibc's name (ANSI_X3.4-1968) and macOS's (US-ASCII): the C locale on a Mac must not leave the JVM in ASCII.
    assert torchserve.utf8_locale(codeset) == {"LC_ALL": "C.UTF-8"}


def test_a_locale_of_another_charset_is_kept():
    # Not ours to change: Python names files in it too (and ISO-8859-1, like UTF-8, round-trips any byte).
    assert torchserve.utf8_locale("ISO-8859-1") == {}


def test_judging_a_locale_leaves_this_process_in_its_own():
    # setlocale is process-wide: left at the judged one, this process would decode and name files in another charset.
    before = locale.setlocale(locale.LC_CTYPE)
    for env in ({"LC_ALL": "C"}, {"LC_ALL": "C.UTF-8"}, {"LANG": "xx_XX.UTF-8"}):
        torchserve.ctype_codeset(env)
        assert locale.setlocale(locale.LC_CTYPE) == before, env


def test_every_path_is_inside_the_base_dir():
    env = serving_env(BASE, 1, 2, (3, 4))
    for key in ("SAGEMAKER_BASE_DIR", "TMPDIR", "TEMP", "TMP", "LOG_LOCATION", "METRICS_LOCATION"):
        assert Path(env[key]).is_relative_to(BASE), key
    assert not any(value.startswith(("/etc", "/opt")) for value in env.values())


def test_one_worker_modest_heap_and_threads():
    env = serving_env(BASE, 1, 2, (3, 4))
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    assert "-Xmx" in env["JAVA_TOOL_OPTIONS"]
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    # Its output reaches serve.log as written (readiness reads a worker's death there), and no psutil sweep.
    assert env["PYTHONUNBUFFERED"] == "1" and env["TS_DISABLE_SYSTEM_METRICS"] == "true"


def test_torchserve_gets_the_deployed_workers_and_response_timeout():
    # The deployed container's TS_* settings: one worker per model, and a request SageMaker gave up on at 60 s is not
    # held for TorchServe's own 120 s (with the only worker, and every request queued behind it).
    env = serving_env(BASE, 1, 2, (3, 4))
    deployed = sagemaker_container_env("eu-west-1")
    assert env["TS_DEFAULT_WORKERS_PER_MODEL"] == deployed["TS_DEFAULT_WORKERS_PER_MODEL"] == "1"
    timeout = str(int(INVOCATION_TIMEOUT_S))
    assert env["TS_DEFAULT_RESPONSE_TIMEOUT"] == deployed["TS_DEFAULT_RESPONSE_TIMEOUT"] == timeout


def test_free_ports_are_distinct_unprivileged_ports():
    ports = free_ports(4)
    assert len(set(ports)) == 4
    assert all(1024 <= port <= 65535 for port in ports)


LOG = [
    "2026-01-01T00:00:00,000 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - Traceback (most recent call last):",
    "2026-01-01T00:00:00,001 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - json.decoder.JSONDecodeError: Expecting value",
    "2026-01-01T00:00:00,002 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - The above exception was the direct cause",
    "2026-01-01T00:00:00,003 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - inference.ModelLoadError: model metadata"
    " at /m/metadata.json is not valid JSON: Expecting value",
    f"2026-01-01T00:00:00,004 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - {WORKER_DIED}",
    "2026-01-01T00:00:00,005 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - RuntimeError: something after the death",
]


def test_worker_death_is_named_by_the_last_error_before_it():
    assert worker_death_cause(LOG) == (
        "ModelLoadError: model metadata at /m/metadata.json is not valid JSON: Expecting value"
    )


def test_a_failed_load_is_named_by_its_message_with_the_class_when_logged():
    failed = "x MODEL_LOG - Failed to load model model, exception model metadata at /m/metadata.json lacks ['labels']"
    error = "x MODEL_LOG - inference.ModelLoadError: model metadata at /m/metadata.json lacks ['labels']"
    assert worker_death_cause([failed]) == "model metadata at /m/metadata.json lacks ['labels']"
    assert worker_death_cause([failed, "x MODEL_LOG - Traceback", error]) == (
        "ModelLoadError: model metadata at /m/metadata.json lacks ['labels']"
    )


def test_a_worker_death_is_named_by_the_traceback_logged_after_it():
    # What TorchServe 0.12 wrote (ts/model_service_worker.py, the except at its end) for a TMPDIR 72 characters long:
    # the worker's socket, <TMPDIR>/torchserve-xxxxxxxx/tmp/.ts.sock.9000, is over sun_path's 107 bytes.
    prefix = "2026-01-01T00:00:00,000 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - "
    log = [
        prefix + "Listening on port: /t/torchserve-x/tmp/.ts.sock.9000",
        prefix + WORKER_DIED,
        prefix + "Traceback (most recent call last):",
        prefix + '  File "/v/site-packages/ts/model_service_worker.py", line 249, in run_server',
        prefix + "    self.sock.bind(self.sock_name)",
        prefix + "OSError: AF_UNIX path too long",
    ]
    assert worker_death_cause(log) == "OSError: AF_UNIX path too long"


def test_a_worker_death_is_named_by_the_last_error_of_its_chained_traceback_and_no_later_line():
    prefix = "2026-01-01T00:00:00,000 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - "
    log = [
        prefix + "ValueError: logged before the death, by something else",
        prefix + WORKER_DIED,
        prefix + "Traceback (most recent call last):",
        prefix + '  File "/v/site-packages/ts/model_service_worker.py", line 249, in run_server',
        prefix + "OSError: [Errno 98] Address already in use",
        prefix + "",
        prefix + "During handling of the above exception, another exception occurred:",
        prefix + "",
        prefix + "Traceback (most recent call last):",
        prefix + '  File "/v/site-packages/ts/model_service_worker.py", line 260, in run_server',
        prefix + "RuntimeError: the worker could not listen",
        prefix + "Starting a new worker",
        prefix + "KeyError: from the next worker's run",
    ]
    assert worker_death_cause(log) == "RuntimeError: the worker could not listen"


def test_no_worker_death_no_cause():
    assert worker_death_cause(LOG[:4]) is None
    assert worker_death_cause([]) is None


def test_a_death_without_an_error_line_still_reports_a_death():
    # TorchServe's own words (ts/model_service_worker.py), not WORKER_DIED: a typo there must not pass.
    died = "2026-01-01T00:00:00,004 [INFO ] W-9000-model_1.0-stdout MODEL_LOG - Backend worker process died."
    assert worker_death_cause([died]) == "the worker died without logging an error"


def test_last_error_strips_module_and_log_prefix():
    assert last_error(LOG) == "RuntimeError: something after the death"
    assert last_error(["FileNotFoundError: [Errno 2] No such file or directory: 'torchserve'"]) == (
        "FileNotFoundError: [Errno 2] No such file or directory: 'torchserve'"
    )
    assert last_error(["all fine", "Model server started."]) is None
    # TorchServe's frontend is Java: its failures are Exceptions (a port taken by another process, say).
    bound = (
        "2024-05-01T10:00:00,000 [ERROR] main org.pytorch.serve.ModelServer - java.net.BindException: Address in use"
    )
    assert last_error(["Model server started.", bound]) == "BindException: Address in use"


def test_stop_before_start_is_a_no_op_and_log_tail_is_empty():
    ep = TorchServeEndpoint(Path("missing.tar.gz"))
    ep.stop()
    ep.stop()
    assert ep.log_tail() == ""
    assert ep.exit_code() is None, "no toolkit has exited"


def test_a_log_that_is_not_utf8_is_still_read(tmp_path):
    ep = TorchServeEndpoint(Path("missing.tar.gz"))
    ep.base = tmp_path
    (tmp_path / "serve.log").write_bytes(b"MODEL_LOG - cannot open caf\xe9.jpg\ninference.ModelLoadError: bad\n")
    assert ep.log_tail(1) == "inference.ModelLoadError: bad"
    # Java and its workers write in the locale's codeset (\xe9 is é under en_US.ISO-8859-1): what that cannot decode
    # is U+FFFD (under C.UTF-8), never a UnicodeDecodeError.
    name = b"caf\xe9.jpg".decode(locale.getpreferredencoding(False), "replace")
    assert ep.log_tail().startswith(f"MODEL_LOG - cannot open {name}")


def test_the_launcher_script_is_ascii():
    """It reaches the toolkit's Python as a command-line argument, decoded in that process's locale: with this one's
    en_US.ISO-8859-1 and the child's C.UTF-8, the ó of a comment stopped it before it ran ("Unable to decode the
    command from the command line")."""
    assert torchserve._ENTRY.isascii()


def test_memory_before_start_is_refused():
    with pytest.raises(TorchServeError, match="not started"):
        TorchServeEndpoint(Path("missing.tar.gz")).memory_mb()


def torchserves_tmpdir(monkeypatch, tmp: Path, *, mkdtemp=None) -> None:
    """`tmp` made the TMPDIR of local.torchserve alone, where it looks tempfile up: its folders, and its start's sweep
    of the copies stacks killed outright left, go there, while no other thread's temp files move (tempfile.tempdir
    set for the process would move them all). `mkdtemp` stands in for tempfile's, to refuse a folder."""
    tmp.mkdir(exist_ok=True)
    mkdtemp = mkdtemp or functools.partial(tempfile.mkdtemp, dir=tmp)
    monkeypatch.setattr(torchserve, "tempfile", SimpleNamespace(mkdtemp=mkdtemp, gettempdir=lambda: str(tmp)))
    monkeypatch.setattr(torchserve, "sweep_orphaned_model_dirs", functools.partial(sweep_orphaned_model_dirs, tmp))


def test_missing_java_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(TorchServeError, match="java not found"):
        TorchServeEndpoint(Path("missing.tar.gz")).start()


def test_java_home_is_enough_without_java_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")
    monkeypatch.setenv("PATH", "/nonexistent")
    torchserves_tmpdir(monkeypatch, tmp_path)
    with pytest.raises(TorchServeError, match="cannot unpack"):  # past the java check
        TorchServeEndpoint(tmp_path / "missing.tar.gz").start()


def test_an_unreadable_artifact_is_named_and_leaves_no_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    torchserves_tmpdir(monkeypatch, tmp_path)
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(TorchServeError, match=r"cannot unpack the model artifact .*model\.tar\.gz") as failed:
        TorchServeEndpoint(bad).start()
    assert list(tmp_path.iterdir()) == [bad]
    assert "\n" not in str(failed.value)  # tarfile lists every method it tried, one per line: the stack says one


@pytest.mark.parametrize("refused", ["mkdtemp", "mkdir"])  # TorchServe's folder, then its tmp and logs in it
def test_a_temporary_directory_without_a_free_block_or_inode_is_named(tmp_path, monkeypatch, refused):
    """A TMPDIR at df's 100% refuses TorchServe's folders before the unpack, whose no-room line names it: `make demo
    RUNTIME=torchserve` ended in an OSError traceback. A quota (EDQUOT) is said in its own words."""
    import errno

    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    tmp = tmp_path / "tmp"  # not the artifact's directory: the line names the one without room

    def refuse(*_args, **_kwargs):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    if refused == "mkdtemp":
        torchserves_tmpdir(monkeypatch, tmp, mkdtemp=refuse)
    else:  # the folders made in TorchServe's own, through local.torchserve's name for Path (not Path.mkdir itself)

        class RefusingPath(type(Path())):
            mkdir = refuse

        torchserves_tmpdir(monkeypatch, tmp)
        monkeypatch.setattr(torchserve, "Path", RefusingPath)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"")
    with pytest.raises(TorchServeError) as failed:
        TorchServeEndpoint(artifact).start()
    assert str(failed.value) == (
        f"no room in {tmp} to unpack the model artifact {artifact}: Disk quota exceeded; free some there, or set"
        " TMPDIR to a directory with room"
    )
    assert list(tmp.iterdir()) == []


def test_a_temporary_directory_refused_for_another_reason_is_that_error(monkeypatch):
    """Only a TMPDIR without room gets the no-room line: one this user may not write to is its own error."""
    import errno

    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one

    def refuse(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(torchserve, "tempfile", SimpleNamespace(mkdtemp=refuse, gettempdir=tempfile.gettempdir))
    with pytest.raises(PermissionError, match="Permission denied"):
        TorchServeEndpoint(Path("model.tar.gz")).start()


def test_a_busy_port_is_named(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(TorchServeError, match=f"port {port} on 127.0.0.1 is in use"):
            TorchServeEndpoint(Path("missing.tar.gz"), port=port).start()


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), True),  # nothing listens
        (http.client.RemoteDisconnected("Remote end closed connection without response"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (urllib.error.URLError(BrokenPipeError(32, "Broken pipe")), True),  # gone while the image was being sent
        (http.client.IncompleteRead(b"{"), True),  # dropped mid-body
        (TimeoutError("timed out"), False),  # a slow answer is a timeout, not a dead server
        (urllib.error.URLError(TimeoutError("timed out")), False),
    ],
)
def test_a_refused_or_dropped_connection_is_lost_and_a_timeout_is_not(error, lost):
    assert connection_lost(error) is lost


def test_a_refused_invocation_is_down_not_status_0():
    # Status 0 means a timeout (SageMaker's "invocation timed out", the proxy's 504); a refusal must not look so.
    # Bound but not listening: refused for certain, where a port freed again could be taken by then.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = TorchServeEndpoint(Path("missing.tar.gz"), port=sock.getsockname()[1])
        with pytest.raises(TorchServeDown, match="no longer answers"):
            endpoint.invoke(b"jpeg", "image/jpeg")
        assert endpoint._request("GET", "/ping", timeout=2) == (0, {}, b"")  # readiness polling still waits


def test_a_body_cut_off_mid_answer_is_down_not_an_exception():
    # The JVM dying while it writes an answer: http.client's IncompleteRead, which is no OSError.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer_half():
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"predictions"')

        thread = threading.Thread(target=answer_half, daemon=True)
        thread.start()
        endpoint = TorchServeEndpoint(Path("missing.tar.gz"), port=server.getsockname()[1])
        with pytest.raises(TorchServeDown, match="no longer answers"):
            endpoint.invoke(b"jpeg", "image/jpeg")
        thread.join(HANG_GUARD_S)


def test_exit_code_reaps_the_toolkit_once_it_exited():
    # Nothing else waits for it: without the reap the death of its JVM would go unnoticed (no replacement).
    ep = TorchServeEndpoint(Path("missing.tar.gz"))
    ep._proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        wait_until(lambda: ep.exit_code() is not None, "the exit to be seen")
        assert ep.exit_code() == 3
    finally:
        ep._proc.kill()
        ep._proc.wait()


def test_an_exit_is_described_by_code_or_signal():
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(-200) == "exited with code -200"


class FakeStack:
    """What ManagedEndpoint uses of a TorchServeEndpoint."""

    def __init__(self, name: str, exit_code: int | None = None):
        self.url, self.base = name, Path(f"/tmp/torchserve-{name}")
        self.code = exit_code
        self.stopped = False

    def exit_code(self):
        return self.code

    def invoke(self, body, content_type, accept):
        return 200, {"Content-Type": "application/json"}, self.url.encode()

    def log_tail(self, n):
        return f"the last {n} lines of {self.url}'s log"

    def stop(self):
        self.stopped = True


# Not only TorchServeError: mkdtemp's OSError (a full /tmp) too, or the replacer stays set and none is tried again.
@pytest.mark.parametrize("error", [TorchServeError, OSError])
def test_a_failed_replacement_keeps_answering_down_and_is_tried_again(monkeypatch, caplog, error):
    dead, fresh = FakeStack("dead", exit_code=-9), FakeStack("fresh")
    launches = iter([error("java exploded"), fresh])

    def launch():
        outcome = next(launches)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    # The launcher's clock, moved by the test: with the real one, a loaded machine could let retry_s pass
    # before the "too early" invocation below, which would then start the second attempt itself.
    now = [1000.0]
    monkeypatch.setattr(torchserve, "time", SimpleNamespace(monotonic=lambda: now[0]))
    managed = ManagedEndpoint(Path("model.tar.gz"), retry_s=1)
    monkeypatch.setattr(managed, "_launch", launch)
    managed._current = dead
    with pytest.raises(TorchServeDown):
        managed.invoke(b"x", "image/jpeg")
    wait_until(lambda: managed._replacer is None)  # the failed attempt
    assert dead.stopped
    with pytest.raises(TorchServeDown):  # too early for another attempt: still down
        managed.invoke(b"x", "image/jpeg")
    assert managed._replacer is None
    now[0] += 1.05
    with pytest.raises(TorchServeDown):  # this one starts the second attempt
        managed.invoke(b"x", "image/jpeg")
    wait_until(lambda: managed._current is not None)
    assert managed.invoke(b"x", "image/jpeg")[2] == b"fresh"
    assert not fresh.stopped, "the replacement it serves was stopped"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "TorchServe stopped serving (the toolkit process was killed by SIGKILL (it exits when TorchServe's JVM does));"
        " starting a new one (invocations get 'not ready' meanwhile)\n"
        "--- last lines of /tmp/torchserve-dead/serve.log ---\nthe last 20 lines of dead's log",
        "TorchServe could not be restarted (an invocation 1 s on tries again): java exploded",
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "TorchServe is serving again at fresh"
    ]
    managed.stop()
    assert fresh.stopped


def test_a_failed_replacement_is_tried_again_10_s_on_by_default(monkeypatch):
    # A start that fails costs seconds of CPU: not retried by every invocation, nor every second.
    now = [1000.0]
    monkeypatch.setattr(torchserve, "time", SimpleNamespace(monotonic=lambda: now[0]))
    launches = []

    def launch():
        launches.append(now[0])
        raise TorchServeError("java exploded")

    managed = ManagedEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(managed, "_launch", launch)
    managed._current = FakeStack("dead", exit_code=1)
    for moved in (0, 9.9, 0.2):
        now[0] += moved
        with pytest.raises(TorchServeDown):
            managed.invoke(b"x", "image/jpeg")
        wait_until(lambda: managed._replacer is None, "the attempt, if any, to end")
    assert launches == pytest.approx([1000.0, 1010.1])
    managed.stop()


def test_an_error_line_is_named_without_the_log_prefix_or_trailing_blanks():
    assert last_error(["x MODEL_LOG - ValueError: bad value   "]) == "ValueError: bad value"
    failed = "x MODEL_LOG - Failed to load model model, exception no labels  "
    unrelated = "x MODEL_LOG - OSError: something else entirely"
    named = "x MODEL_LOG - inference.ModelLoadError: no labels"
    assert worker_death_cause([failed]) == "no labels"
    # The error line whose message is the failed load's, not whichever error comes first after it.
    assert worker_death_cause([failed, unrelated, named]) == "ModelLoadError: no labels"
    # The first such line after the failed load: not an earlier one, nor one logged later with the same message.
    before, after = "x MODEL_LOG - OSError: no labels", "x MODEL_LOG - RuntimeError: no labels"
    assert worker_death_cause([before, failed, named, after]) == "ModelLoadError: no labels"


def test_an_exit_by_sighup_is_a_signal_too():
    assert describe_exit(-1) == "was killed by SIGHUP"


# --- starting and stopping a process group, with a stand-in for the toolkit --------------------------------------
class Launched:
    """Stands in for subprocess.Popen in start(): records what the toolkit would be given and runs, with the same
    options, a process that just waits to be signalled (so stop() acts on a real process group)."""

    calls: ClassVar[list] = []
    procs: ClassVar[list] = []

    def __new__(cls, args, **kwargs):
        cls.calls.append((args, kwargs))
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], **kwargs)
        cls.procs.append(proc)
        return proc


@pytest.fixture
def launched(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")
    torchserves_tmpdir(monkeypatch, tmp_path)
    monkeypatch.setattr(Launched, "calls", [])
    monkeypatch.setattr(Launched, "procs", [])
    # torchserve's own name for the module, not subprocess.Popen itself (the module it named): a thread of another
    # fixture starting a process meanwhile would have started a stand-in.
    module = SimpleNamespace(Popen=Launched, DEVNULL=subprocess.DEVNULL, STDOUT=subprocess.STDOUT)
    monkeypatch.setattr(torchserve, "subprocess", module)
    yield Launched.calls
    # A stand-in that stop() did not end (one started outside its own group, or a cleanup skipped) slept on for ten
    # minutes after the run, and the test passed: it is killed here, and the test fails.
    left = [proc for proc in Launched.procs if proc.poll() is None]
    for proc in left:
        proc.kill()
        proc.wait()
    assert not left, f"{len(left)} stand-in toolkit process(es) outlived the test: stop() left them running"


@pytest.mark.timeout(60)  # a process left outside its own group would make stop() wait for ever
def test_start_runs_the_toolkit_in_its_own_group_with_the_serving_env_and_stop_removes_everything(launched, tmp_path):
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"inference.py": b"# code", "metadata.json": b"{}"})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ep = TorchServeEndpoint(artifact, port=port, env={"OMP_NUM_THREADS": "1", "EXTRA": "x"}).start()
    try:
        [(args, kwargs)] = launched
        base = ep.base
        assert ep.port == port and ep.url == f"http://127.0.0.1:{port}"
        assert args == [
            sys.executable,
            "-c",
            torchserve._ENTRY,
            str(base / "sagemaker-ts.properties"),
            str(os.getpid()),
        ]
        assert kwargs["cwd"] == base and kwargs["start_new_session"] is True
        assert kwargs["stdin"] == subprocess.DEVNULL and kwargs["stderr"] == subprocess.STDOUT
        assert kwargs["stdout"].name == str(base / "serve.log")
        env = kwargs["env"]
        assert env["SAGEMAKER_BIND_TO_PORT"] == str(port) and env["SAGEMAKER_BASE_DIR"] == str(base)
        assert env["OMP_NUM_THREADS"] == "1" and env["EXTRA"] == "x", "the caller's env wins"
        assert env["JAVA_HOME"] == "/opt/any-jre", "this process's environment is passed on (TorchServe's java)"
        assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
        assert (base / "model" / "inference.py").read_bytes() == b"# code"
        assert (base / "tmp").is_dir() and (base / "logs").is_dir()
        assert base.parent == tmp_path and base.name.startswith("torchserve-"), "in TMPDIR, named for what it holds"
        with pytest.raises(TorchServeError, match="already started"):
            ep.start()
        assert len(launched) == 1
        [proc] = ep.processes()
        assert proc.pid == ep._proc.pid and ep.exit_code() is None
    finally:
        ep.stop()
    assert ep.exit_code() == -signal.SIGTERM
    assert not base.exists()


def test_java_on_path_is_enough_without_java_home(launched, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").write_text("#!/bin/sh\n")
    (bin_dir / "java").chmod(0o755)
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(TorchServeError, match="cannot unpack"):  # past the java check
        TorchServeEndpoint(tmp_path / "missing.tar.gz").start()


# The locale the toolkit and its JVM run in is judged with the caller's env in: its LC_ALL=C wins over the shell's.
@pytest.mark.parametrize(("shell", "caller"), [({"LC_ALL": "C"}, {}), ({"LC_ALL": "C.UTF-8"}, {"LC_ALL": "C"})])
def test_the_toolkit_runs_in_a_utf8_locale_where_its_env_would_make_it_ascii(
    launched, tmp_path, monkeypatch, shell, caller
):
    for name, value in shell.items():
        monkeypatch.setenv(name, value)
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"inference.py": b"# code"})
    ep = TorchServeEndpoint(artifact, env=caller).start()
    try:
        [(_, kwargs)] = launched
        assert kwargs["env"]["LC_ALL"] == "C.UTF-8"
    finally:
        ep.stop()


def tarfile_opening(**methods):
    """tarfile as local.runtime looks it up (the unpacking torchserve's start calls), its archives opened as a TarFile
    with `methods` instead: TarFile's own methods replaced would be every thread's archives'."""
    return names_of(tarfile, open=type("Faulty", (tarfile.TarFile,), methods).open)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "escapes"])
def test_a_damaged_or_escaping_artifact_is_named_and_leaves_nothing(launched, tmp_path, monkeypatch, damage):
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"inference.py": random.Random(0).randbytes(100_000)})
    if damage == "truncated":  # a download cut short: gzip ends early (EOFError)
        artifact.write_bytes(artifact.read_bytes()[:50_000])
    elif damage == "corrupt":  # deflate data that does not decode (zlib.error), as a bad disk or copy gives

        def undecodable(*args, **kwargs):
            raise zlib.error("Error -3 while decompressing data: invalid distance too far back")

        monkeypatch.setattr(local.runtime, "tarfile", tarfile_opening(extractall=undecodable))
    else:  # a member outside the model dir
        artifact = tar_gz_of(tmp_path / "model.tar.gz", {"../escaped.py": b"# not ours"})
    with pytest.raises(TorchServeError, match="cannot unpack the model artifact"):
        TorchServeEndpoint(artifact).start()
    assert launched == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"]


def group_of_stubborn_processes(tmp_path: Path) -> subprocess.Popen:
    """A process group like the serving stack's: a leader, a child that ignores SIGTERM and a zombie child."""
    ready = tmp_path / "ready"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "zombie = subprocess.Popen([sys.executable, '-c', 'import sys'])\n"  # exits at once, never reaped
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, sys, time; "
        'signal.signal(signal.SIGTERM, signal.SIG_IGN); sys.stdout.write("x"); sys.stdout.flush(); '
        "time.sleep(600)'], stdout=subprocess.PIPE)\n"
        "child.stdout.read(1)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    wait_until(ready.exists, "the group to be set up")
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    """What a test's own process group left running is killed, and its leader reaped (a no-op once it is gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.timeout(60)
def test_stop_kills_a_group_that_ignores_sigterm_reaps_it_and_removes_its_dir(tmp_path):
    proc = group_of_stubborn_processes(tmp_path)
    base = tmp_path / "torchserve-x"
    base.mkdir()
    try:
        wait_until(lambda: len(torchserve._group_processes(proc.pid)) == 2, "the zombie to be left out")
        assert proc.pid in {p.pid for p in torchserve._group_processes(proc.pid)}
        torchserve._stop(proc, base, grace=0)
        assert proc.returncode == -signal.SIGKILL, "reaped"
        wait_until(lambda: not torchserve._group_processes(proc.pid), "the group to be gone")
        assert not base.exists()
    finally:
        kill_group(proc)


def test_a_process_gone_between_listing_and_its_group_lookup_is_left_out(monkeypatch):
    import errno

    # Every process listed but this one is gone by the time its group is looked up, through local.torchserve's own
    # os (os.getpgid of a reaped pid raises ProcessLookupError): psutil.process_iter replaced would be every thread's.
    me = os.getpid()

    def getpgid(pid):
        if pid != me:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
        return os.getpgid(pid)

    monkeypatch.setattr(torchserve, "os", names_of(os, getpgid=getpgid))
    assert [proc.pid for proc in torchserve._group_processes(os.getpgid(0))] == [me]


@pytest.mark.timeout(60)
def test_stop_sigterms_the_whole_group_and_lets_it_shut_down_before_the_grace_runs_out(tmp_path):
    # TorchServe's JVM and worker get SIGTERM, not only the toolkit leading their group, and a moment to exit.
    ready, child_done = tmp_path / "ready", tmp_path / "child-done"
    child = (
        "import signal, sys, time\n"
        "def term(*_):\n"
        f"    open({str(child_done)!r}, 'w').close()\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "sys.stdout.write('x'); sys.stdout.flush()\n"
        "time.sleep(600)\n"
    )
    script = (
        "import signal, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE)\n"
        "child.stdout.read(1)\n"
        "def term(*_):\n"
        "    child.wait()\n"  # a leader that shuts down only after its child did, as the toolkit waits for java
        "    time.sleep(0.2)\n"
        "    sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    base = tmp_path / "torchserve-x"
    base.mkdir()
    try:
        wait_until(ready.exists, "the group to be set up")
        torchserve._stop(proc, base)
        assert child_done.exists(), "the leader's child got no SIGTERM"
        assert proc.returncode == 3, "SIGKILLed before it finished shutting down"
        assert not base.exists()
    finally:
        kill_group(proc)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_stop_signal_while_stop_waits_for_the_group_does_not_leave_its_dir(tmp_path, monkeypatch, second):
    """A second Ctrl-C (or `make demo`'s SIGTERM to its whole process group, which make passes on once more) landing
    while stop() waits for TorchServe's group to exit cut the stop short: the unpacked model (28 MB) stayed in /tmp
    and no later start sweeps torchserve-* directories. The signal now waits for the cleanup, then still stops."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # what `python -m local` installs while the model loads
    proc = group_of_stubborn_processes(tmp_path)
    base = tmp_path / "torchserve-x"
    base.mkdir()
    group_alive = torchserve._group_alive
    sent = []

    def alive_then_signalled(pgid):
        if not sent:
            sent.append(second)
            signal.raise_signal(second)  # its handler runs in this (the main) thread, inside stop()'s wait
        return group_alive(pgid)

    monkeypatch.setattr(torchserve, "_group_alive", alive_then_signalled)
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):  # the signal is not lost: it stops after the cleanup
            torchserve._stop(proc, base, grace=0)
        assert sent
        assert not base.exists(), "the unpacked model is left behind"
        assert proc.returncode == -signal.SIGKILL, "the group is killed and reaped"
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        kill_group(proc)


# --- the launched entry (_ENTRY), around a stand-in for AWS's toolkit -------------------------------------------
def stand_in_toolkit(
    tmp_path: Path, namespace: str = "", jvm: str = "import time; time.sleep(600)", before_search: str = ""
) -> dict[str, str]:
    """The environment to run _ENTRY with a toolkit whose serving.main() does what the real one does: starts the
    "JVM" (a process whose command line names the toolkit's TS_NAMESPACE), finds it with
    torchserve._retrieve_ts_server_process(), forwards SIGTERM to it and waits for it; "serving" then holds its pid.
    The "JVM" runs `jvm`; `namespace`, if given, is the toolkit's TS_NAMESPACE; `before_search` (lines of main())
    runs before the search."""
    package = tmp_path / "stand-in" / "sagemaker_pytorch_serving_container"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    namespace = namespace or f"stand-in.ModelServer.{os.getpid()}.{random.randrange(10**9)}"  # matches no other
    (package / "torchserve.py").write_text(
        f"TS_CONFIG_FILE = {str(tmp_path / 'etc-sagemaker-ts.properties')!r}\n"
        f"TS_NAMESPACE = {namespace!r}\n"
        "def _retrieve_ts_server_process():\n"
        "    raise AssertionError('the toolkit searched every process on the machine')\n"
        "def _generate_ts_config_properties(handler_service):\n"
        "    return f'default_service_handler={handler_service}:handle\\n'\n"
    )
    (package / "serving.py").write_text(
        "import os, signal, subprocess, sys\n"
        "from sagemaker_pytorch_serving_container import torchserve\n"
        "def main():\n"
        # Its handler as a checkout under a path that is not ASCII names it; the JVM reads the file as ISO-8859-1.
        # U+0080: the first code unit past ASCII, escaped too.
        "    with open(torchserve.TS_CONFIG_FILE, 'w', encoding='utf-8') as f:\n"
        "        f.write(torchserve._generate_ts_config_properties('/home/józef/\\x80😀/handler_service.py'))\n"
        f"    subprocess.Popen([sys.executable, '-c', {jvm!r}, torchserve.TS_NAMESPACE])\n"
        f"{before_search}"
        "    jvm = torchserve._retrieve_ts_server_process()\n"
        # Forwarded as the toolkit's _add_sigterm_handler does, ignoring an OSError: the JVM got the group's SIGTERM
        # too, and jvm.wait() may have reaped it already (psutil before 7.2.2 waits in waitpid), where psutil's
        # terminate() raised NoSuchProcess and the entry exited 1 in about half the runs.
        "    def forward(*_):\n"
        "        try:\n"
        "            os.kill(jvm.pid, signal.SIGTERM)\n"
        "        except OSError:\n"
        "            pass\n"
        "    signal.signal(signal.SIGTERM, forward)\n"
        "    with open('serving.part', 'w') as f:\n"
        "        f.write(str(jvm.pid))\n"
        "    os.replace('serving.part', 'serving')\n"  # whole: the test reads it once it exists
        "    jvm.wait()\n",
        encoding="utf-8",
    )
    return {**os.environ, "PYTHONPATH": str(package.parent)}


@pytest.mark.timeout(60)
def test_the_entry_finds_its_own_jvm_writes_its_config_in_the_base_dir_and_stops_cleanly(tmp_path):
    base = tmp_path / "torchserve-x"
    base.mkdir()
    config = base / "sagemaker-ts.properties"
    entry = [sys.executable, "-c", torchserve._ENTRY, str(config), str(os.getpid())]
    proc = subprocess.Popen(entry, cwd=base, env=stand_in_toolkit(tmp_path), start_new_session=True)
    try:
        wait_until(lambda: (base / "serving").exists() or proc.poll() is not None, "the stand-in to serve")
        jvm = int((base / "serving").read_text())
        assert jvm in {p.pid for p in torchserve._group_processes(proc.pid)}
        assert config.exists() and not (tmp_path / "etc-sagemaker-ts.properties").exists()
        handler = rb"/home/j\u00f3zef/\u0080\ud83d\ude00/handler_service.py"
        assert config.read_bytes() == b"default_service_handler=" + handler + b":handle\n", "ASCII, as the JVM reads it"
        torchserve._stop(proc, base)
        assert proc.returncode == 0, "SIGTERM reached the JVM, and the entry exited when it did"
        assert not base.exists()
    finally:
        kill_group(proc)


@pytest.mark.timeout(60)
def test_the_entry_skips_a_process_gone_between_listing_and_its_group_lookup(tmp_path):
    # The entry scans every process on the machine: one that exits meanwhile has no group to look up any more.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process any more
    listed_gone_first = (
        "    import psutil, types\n"
        "    listing = psutil.process_iter\n"
        "    info = {'cmdline': [torchserve.TS_NAMESPACE], 'status': 'running'}\n"
        f"    gone = types.SimpleNamespace(pid={gone.pid}, info=info)\n"
        "    psutil.process_iter = lambda attrs: iter([gone, *listing(attrs)])\n"
    )
    base = tmp_path / "torchserve-x"
    base.mkdir()
    entry = [sys.executable, "-c", torchserve._ENTRY, str(base / "ts.properties"), str(os.getpid())]
    env = stand_in_toolkit(tmp_path, before_search=listed_gone_first)
    proc = subprocess.Popen(entry, cwd=base, env=env, start_new_session=True)
    try:
        wait_until(lambda: (base / "serving").exists() or proc.poll() is not None, "the stand-in to serve")
        assert (base / "serving").exists(), f"the entry {describe_exit(proc.returncode)} while it searched"
        assert int((base / "serving").read_text()) in {p.pid for p in torchserve._group_processes(proc.pid)}
        torchserve._stop(proc, base)
        assert proc.returncode == 0
    finally:
        kill_group(proc)


@contextlib.contextmanager
def orphaned_entry(tmp_path: Path, **stand_in) -> Iterator[tuple[int, Path]]:
    """Runs _ENTRY (around stand_in_toolkit(tmp_path, **stand_in)) from a launcher process, as `make demo` does, and
    kills the launcher with SIGKILL once the stand-in serves (no stop() runs): the entry's process group and its
    dir; whatever of the group is left is killed on exit."""
    base = tmp_path / "torchserve-x"
    base.mkdir()
    launcher = (
        "import os, subprocess, sys, time\n"
        f"entry = [sys.executable, '-c', {torchserve._ENTRY!r}, 'ts.properties', str(os.getpid())]\n"
        f"proc = subprocess.Popen(entry, cwd={str(base)!r}, start_new_session=True)\n"
        "print(proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = stand_in_toolkit(tmp_path, **stand_in)
    with subprocess.Popen([sys.executable, "-c", launcher], env=env, stdout=subprocess.PIPE) as parent:
        pgid = int(parent.stdout.readline())
        try:
            try:
                wait_until((base / "serving").exists, "the stand-in to serve")
            finally:
                parent.kill()
            yield pgid, base
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@pytest.mark.timeout(60)
def test_an_entry_whose_launcher_died_stops_its_group_and_removes_its_dir(tmp_path):
    # `make demo` killed with SIGKILL (or its Python crashing) never calls stop(): the group must not outlive it.
    with orphaned_entry(tmp_path) as (pgid, base):
        wait_until(lambda: not torchserve._group_processes(pgid), "the orphaned group to stop")
        wait_until(lambda: not base.exists(), "the orphaned group's dir to be removed")


@pytest.mark.timeout(60)
def test_an_orphaned_group_whose_jvm_ignores_sigterm_is_killed(tmp_path):
    # SIGTERM is only asked: a JVM stuck in its shutdown must not outlive `make demo` either (SIGKILL after 10 s).
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    with orphaned_entry(tmp_path, jvm=stubborn) as (pgid, _):
        wait_until(lambda: not torchserve._group_processes(pgid), "the orphaned group to be killed")


@pytest.mark.timeout(60)
def test_the_entry_takes_its_own_groups_jvm_not_another_torchserve_on_the_machine(tmp_path):
    # Another TorchServe (another checkout's demo, or a stale one from a crashed run) already runs: the entry must
    # neither take it for its own JVM nor, at stop(), forward it a SIGTERM.
    base = tmp_path / "torchserve-x"
    base.mkdir()
    namespace = f"stand-in.ModelServer.{os.getpid()}.{random.randrange(10**9)}"
    env = stand_in_toolkit(tmp_path, namespace)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", namespace], start_new_session=True)
    entry = [sys.executable, "-c", torchserve._ENTRY, str(base / "ts.properties"), str(os.getpid())]
    proc = subprocess.Popen(entry, cwd=base, env=env, start_new_session=True)
    try:
        wait_until(lambda: (base / "serving").exists() or proc.poll() is not None, "the stand-in to serve")
        jvm = int((base / "serving").read_text())
        assert jvm != other.pid and jvm in {p.pid for p in torchserve._group_processes(proc.pid)}
        torchserve._stop(proc, base)
        assert other.poll() is None, "the other TorchServe was stopped"
    finally:
        kill_group(proc)
        kill_group(other)


# --- readiness, with the toolkit's answers scripted ---------------------------------------------------------------
class Toolkit:
    """Stands in for the launched process (poll/returncode)."""

    def __init__(self, returncode=None):
        self.returncode = returncode

    def poll(self):
        return self.returncode


def scripted(tmp_path: Path, answers: dict, *, returncode=None, log=(), startup_timeout: float = 60):
    """An endpoint whose toolkit is `returncode` (None: running), whose serve.log holds `log`, and whose /ping
    and /invocations answer the next status of answers["GET"] / answers["POST"] (the last one repeats)."""
    ep = TorchServeEndpoint(Path("model.tar.gz"), port=1, startup_timeout=startup_timeout)
    ep.base = tmp_path
    (tmp_path / "serve.log").write_text("".join(f"{line}\n" for line in log))
    ep._proc = Toolkit(returncode)
    ep.asked = []

    def request(method, path, body=None, headers=None, timeout=60, down_raises=False):
        ep.asked.append((method, path, headers, body))
        statuses = answers[method]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return status, {}, b'{"code": %d}' % status

    ep._request = request
    return ep


def test_ready_once_a_warm_up_is_answered_after_no_worker_yet(tmp_path):
    ep = scripted(tmp_path, {"GET": [0, 200], "POST": [0, 503, 200]})
    ep.wait_ready()
    posts = [asked for asked in ep.asked if asked[0] == "POST"]
    assert len(posts) == 3 and posts[0][2] == {"Content-Type": "image/jpeg", "Accept": "application/json"}
    from PIL import Image

    assert Image.open(io.BytesIO(posts[0][3])).format == "JPEG", "the warm-up is an image the model takes"


def test_a_toolkit_that_exited_fails_readiness_with_its_code_last_error_and_log(tmp_path):
    log = ["Traceback (most recent call last):", "FileNotFoundError: no torchserve", "the last line"]
    ep = scripted(tmp_path, {"GET": [0], "POST": [0]}, returncode=3, log=log, startup_timeout=0)
    with pytest.raises(TorchServeError) as failed:
        ep.wait_ready()
    first, *rest = str(failed.value).splitlines()
    assert first == (
        "the serving stack exited with code 3 before it was ready (last error logged: FileNotFoundError: no torchserve)"
    )
    assert rest[-3:] == log and "serve.log" in rest[0]


def test_a_dead_worker_fails_readiness_at_once_even_before_ping(tmp_path):
    log = ["inference.ModelLoadError: bad metadata", WORKER_DIED]
    ep = scripted(tmp_path, {"GET": [0], "POST": [0]}, log=log, startup_timeout=0)
    with pytest.raises(TorchServeError) as failed:
        ep.wait_ready()
    assert str(failed.value).splitlines()[0] == (  # the cause once, not repeated as the "last error logged"
        "the model server worker died loading the model (model_fn failed): ModelLoadError: bad metadata"
    )


@pytest.mark.timeout(60)  # a missed deadline would poll for ever
def test_no_answer_until_the_deadline_fails_readiness(tmp_path):
    ep = scripted(tmp_path, {"GET": [0], "POST": [0]}, startup_timeout=0)
    with pytest.raises(TorchServeError, match="not ready after 0 s"):
        ep.wait_ready()


# 0.25: rounded to whole seconds, such a timeout was reported as "not ready after 0 s".
@pytest.mark.parametrize(("timeout", "said"), [(10, "10 s"), (0.25, "0.25 s")])
def test_readiness_gives_up_once_the_startup_timeout_has_passed(tmp_path, monkeypatch, timeout, said):
    now = [0.0]  # a clock that moves only when wait_ready sleeps
    clock = SimpleNamespace(monotonic=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(torchserve, "time", clock)
    ep = scripted(tmp_path, {"GET": [0], "POST": [0]}, startup_timeout=timeout)
    with pytest.raises(TorchServeError, match=re.escape(f"not ready after {said}")):
        ep.wait_ready()
    assert timeout < now[0] <= timeout + 1, f"gave up at {now[0]} s"


def test_a_failed_warm_up_waits_for_the_worker_death_its_log_shows_late(tmp_path):
    ep = scripted(tmp_path, {"GET": [200], "POST": [500]})
    reads = []

    def log_lines():  # the death is written after the 500 was answered: the second look finds it
        reads.append(1)
        return ["inference.ModelLoadError: bad weights", WORKER_DIED] if len(reads) > 2 else []

    ep._log_lines = log_lines
    with pytest.raises(TorchServeError, match=r"model_fn failed\): ModelLoadError: bad weights"):
        ep.wait_ready()


def test_a_failed_warm_up_without_a_death_is_named_by_its_status(tmp_path):
    ep = scripted(tmp_path, {"GET": [200], "POST": [500]}, startup_timeout=0)
    ep._await_worker_death = lambda deadline: None  # the worker's log never shows a death
    with pytest.raises(TorchServeError, match=re.escape("""warm-up invocation got 500: b'{"code": 500}'""")):
        ep.wait_ready()


def test_a_ping_not_answered_200_is_not_ready_and_sends_no_warm_up(tmp_path):
    # TorchServe's /ping answers 500 "Unhealthy" until its model is registered: no warm-up is sent to it meanwhile.
    ep = scripted(tmp_path, {"GET": [500], "POST": [200]}, startup_timeout=0)
    with pytest.raises(TorchServeError, match="not ready after 0 s"):
        ep.wait_ready()
    assert [asked[0] for asked in ep.asked] == ["GET"]


@pytest.mark.parametrize("hangs", ["GET", "POST"])
def test_a_stack_that_never_answers_is_given_up_on_within_a_warm_up_of_the_startup_timeout(
    tmp_path, monkeypatch, hangs
):
    """A JVM that takes connections and answers none: each /ping and warm-up waits out its own timeout (the clock is
    moved by that much), and one as long as an invocation's would have the start-up timeout overshot by a minute."""
    now = [0.0]
    clock = SimpleNamespace(monotonic=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(torchserve, "time", clock)
    ep = scripted(tmp_path, {"GET": [200], "POST": [0]}, startup_timeout=10)
    answers = ep._request

    def request(method, path, body=None, headers=None, timeout=60, down_raises=False):
        if method != hangs:
            return answers(method, path, body, headers, timeout, down_raises)
        now[0] += timeout  # no answer: its whole timeout passes
        return 0, {}, b""

    ep._request = request
    with pytest.raises(TorchServeError, match="not ready after 10 s"):
        ep.wait_ready()
    assert 10 < now[0] <= 16, f"gave up at {now[0]} s"


def test_a_failure_shows_the_last_40_lines_of_the_log_it_names(tmp_path):
    log = [f"line {i}" for i in range(1, 51)]
    ep = scripted(tmp_path, {"GET": [0], "POST": [0]}, log=log, startup_timeout=0)
    with pytest.raises(TorchServeError) as failed:
        ep.wait_ready()
    _, header, *tail = str(failed.value).splitlines()
    assert header == f"--- last lines of {tmp_path}/serve.log ---"
    assert tail == log[-40:]


def test_a_long_warm_up_answer_is_cut_to_200_bytes_in_the_failure(tmp_path):
    ep = scripted(tmp_path, {"GET": [200], "POST": [500]}, startup_timeout=0)
    ep._await_worker_death = lambda deadline: None
    ep._request = lambda method, *args, **kwargs: (200, {}, b"") if method == "GET" else (500, {}, b"x" * 300)
    with pytest.raises(TorchServeError) as failed:
        ep.wait_ready()
    assert str(failed.value).splitlines()[0] == f"warm-up invocation got 500: {b'x' * 200!r}"


def test_with_stops_the_endpoint_when_it_does_not_become_ready_and_on_exit(monkeypatch):
    events = []
    monkeypatch.setattr(TorchServeEndpoint, "start", lambda self: events.append("start"))
    monkeypatch.setattr(TorchServeEndpoint, "stop", lambda self: events.append("stop"))
    monkeypatch.setattr(TorchServeEndpoint, "wait_ready", lambda self: events.append("ready"))
    with TorchServeEndpoint(Path("model.tar.gz")):
        assert events == ["start", "ready"]
    assert events == ["start", "ready", "stop"]

    def not_ready(self):
        raise TorchServeError("not ready")

    events.clear()
    monkeypatch.setattr(TorchServeEndpoint, "wait_ready", not_ready)
    with pytest.raises(TorchServeError, match="not ready"), TorchServeEndpoint(Path("model.tar.gz")):
        pass
    assert events == ["start", "stop"]

    def interrupted(self):  # Ctrl-C while the model loads
        raise KeyboardInterrupt

    events.clear()
    monkeypatch.setattr(TorchServeEndpoint, "wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt), TorchServeEndpoint(Path("model.tar.gz")):
        pass
    assert events == ["start", "stop"]


@pytest.mark.parametrize(
    ("status", "answer"),
    [(200, b"label,probability\ntabby,0.9\n"), (415, b"content type 'text/plain' is not one of ...")],
)
def test_an_answer_or_http_error_is_its_status_headers_and_body_and_the_request_is_sent_as_given(status, answer):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers["Content-Type"], self.headers["Accept"], body))
            self.send_response(status)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            endpoint = TorchServeEndpoint(Path("model.tar.gz"), port=httpd.server_address[1])
            answered = endpoint.invoke(b"hello", "text/plain", accept="text/csv")
        finally:
            httpd.shutdown()
    assert answered[0] == status and answered[2] == answer
    assert answered[1]["Content-Type"] == "text/csv" and answered[1]["Content-Length"] == str(len(answer))
    assert seen == [("/invocations", "text/plain", "text/csv", b"hello")]


def test_torchserve_is_reached_directly_whatever_the_shells_proxy_says(monkeypatch):
    # A developer behind a corporate proxy: its 502 answered every /ping, and the stack failed after its start-up
    # timeout with TorchServe ready. NO_PROXY=localhost does not cover 127.0.0.1 for urllib.
    from tests.proxies import behind_a_proxy, http_server

    with behind_a_proxy(monkeypatch) as via_proxy, http_server() as (url, to_torchserve):
        endpoint = TorchServeEndpoint(Path("model.tar.gz"), port=int(url.rsplit(":", 1)[1]))
        assert endpoint._request("GET", "/ping", timeout=5)[0] == 200
    assert (to_torchserve, via_proxy) == (["GET /ping"], [])


def test_torchserve_is_reached_directly_when_the_proxy_was_set_before_the_import(monkeypatch):
    # The shell's proxy is there before `make demo` imports anything: an opener built from the environment at import
    # (urllib's default ProxyHandler) passed the test above, whose proxy comes later, and sent /ping to the proxy.
    from tests.proxies import behind_a_proxy, http_server

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from local.torchserve import TorchServeEndpoint\n"
        "print(TorchServeEndpoint(Path('m.tar.gz'), port=int(sys.argv[1]))._request('GET', '/ping', timeout=5)[0])\n"
    )
    with behind_a_proxy(monkeypatch) as via_proxy, http_server() as (url, to_torchserve):
        ran = subprocess.run(
            [sys.executable, "-c", script, url.rsplit(":", 1)[1]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_S,
        )
    assert ran.returncode == 0, ran.stderr
    assert (ran.stdout.strip(), to_torchserve, via_proxy) == ("200", ["GET /ping"], [])


def test_memory_sums_the_pss_of_the_processes_still_there(monkeypatch):
    class Proc:
        def __init__(self, pss):
            self.pss = pss

        def memory_full_info(self):
            if self.pss is None:
                raise psutil.NoSuchProcess(1)
            return SimpleNamespace(pss=self.pss, rss=10 * 2**30)

    ep = TorchServeEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(ep, "processes", lambda: [Proc(3 * 2**20), Proc(None), Proc(2**19)])
    assert ep.memory_mb() == 3.5


def test_main_serves_until_the_stack_exits_and_names_failures(monkeypatch, capsys, tmp_path):
    opened = []

    class Endpoint:
        url, base = "http://127.0.0.1:1", tmp_path

        def __init__(self, artifact, *, port, startup_timeout):
            opened.append((artifact, port, startup_timeout))
            self._proc = SimpleNamespace(poll=lambda: None if len(slept) < 2 else 1)  # runs two seconds, then exits

        def __enter__(self):
            if opened[-1][1] == 2:
                raise TorchServeError("warm-up invocation got 500")
            if opened[-1][1] == 3:
                raise KeyboardInterrupt
            return self

        def __exit__(self, *exc):
            pass

        def log_tail(self):
            return "the JVM died"

    slept = []
    monkeypatch.setattr(torchserve, "TorchServeEndpoint", Endpoint)
    monkeypatch.setattr(torchserve, "time", SimpleNamespace(sleep=slept.append))
    assert torchserve.main(["m.tar.gz", "--port", "1", "--startup-timeout", "7"]) == 1
    assert opened == [(Path("m.tar.gz"), 1, 7.0)]
    assert slept == [1, 1], "served while the stack ran"
    out, err = capsys.readouterr()
    assert "the JVM died" in err
    assert "serving m.tar.gz at http://127.0.0.1:1/invocations (ping: http://127.0.0.1:1/ping); Ctrl-C stops" in out
    assert f"logs: {tmp_path}/serve.log" in out, "where to look when it fails"
    assert torchserve.main(["m.tar.gz", "--port", "2"]) == 1
    assert opened[-1][2] == 120, "the default startup timeout"
    assert "warm-up invocation got 500" in capsys.readouterr().err
    assert torchserve.main(["m.tar.gz", "--port", "3"]) == 0


# A port: bind() raised OverflowError for 99999, a traceback from _port_free instead of a word about --port.
# A timeout: float() took -5 and nan, and the stack gave up at once, as "not ready after -5 s", before /ping was asked.
@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--port", "99999", "99999 is not a port: use 1-65535, or 0 for a free one"),
        ("--port", "80a", "'80a' is not a port number: use 1-65535, or 0 for a free one"),
        ("--startup-timeout", "-5", "-5 is not a duration: use a number of seconds above 0"),
        ("--startup-timeout", "0", "0 is not a duration: use a number of seconds above 0"),
        ("--startup-timeout", "nan", "nan is not a duration: use a number of seconds above 0"),
        ("--startup-timeout", "inf", "inf is not a duration: use a number of seconds above 0"),
        ("--startup-timeout", "soon", "'soon' is not a number of seconds"),
    ],
)
def test_main_refuses_an_option_value_that_is_none_in_one_line(monkeypatch, capsys, option, value, said):
    monkeypatch.setattr(torchserve, "TorchServeEndpoint", lambda *a, **k: pytest.fail(f"started with {option} {value}"))
    with pytest.raises(SystemExit) as exit_:
        torchserve.main(["m.tar.gz", option, value])
    assert exit_.value.code == 2
    help_ = "see `python -m local.torchserve --help`"
    assert capsys.readouterr().err == f"error: argument {option}: {said}; {help_}\n"


# --- ManagedEndpoint: replacing a dead stack ------------------------------------------------------------------
class DownStack(FakeStack):
    """A stack whose process still runs but whose JVM no longer answers."""

    def invoke(self, body, content_type, accept):
        raise TorchServeDown(f"TorchServe's JVM no longer answers at {self.url}")


def test_an_invocation_that_finds_the_jvm_gone_has_the_stack_replaced_once(monkeypatch, caplog):
    gate = threading.Event()
    launches = []

    def launch():
        launches.append(1)
        gate.wait(HANG_GUARD_S)
        return FakeStack("fresh")

    dead = DownStack("dead")
    managed = ManagedEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(managed, "_launch", launch)
    managed._current = dead
    with pytest.raises(TorchServeDown, match="no longer answers"):
        managed.invoke(b"x", "image/jpeg")
    replacer = managed._replacer
    assert replacer is not None, "a replacement was started"
    wait_until(lambda: launches, "the replacement to start")
    # Meanwhile: invocations get "not ready" at once, and one that met the same dead stack starts nothing.
    with pytest.raises(TorchServeDown, match="being replaced"):
        managed.invoke(b"x", "image/jpeg")
    managed._lost(dead, "met it too")
    managed._next_try = 0.0  # even past any retry time: one replacement at a time
    with pytest.raises(TorchServeDown):
        managed.invoke(b"x", "image/jpeg")
    gate.set()
    replacer.join(HANG_GUARD_S)
    assert managed.invoke(b"x", "image/jpeg")[2] == b"fresh"
    assert launches == [1] and dead.stopped
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no longer answers" in errors[0], errors
    managed.stop()


def test_a_toolkit_that_exited_with_code_0_is_a_dead_stack_too(monkeypatch, caplog):
    # Its JVM stopped by a SIGTERM from outside the stack: the toolkit exits 0, and nothing serves any more.
    dead, fresh = FakeStack("dead", exit_code=0), FakeStack("fresh")
    managed = ManagedEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(managed, "_launch", lambda: fresh)
    managed._current = dead
    with pytest.raises(TorchServeDown, match="died"):
        managed.invoke(b"x", "image/jpeg")
    wait_until(lambda: managed._current is not None, "the replacement")
    assert dead.stopped and managed.invoke(b"x", "image/jpeg")[2] == b"fresh"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "(the toolkit process exited with code 0 (it exits" in errors[0], errors
    managed.stop()


def test_a_replacement_in_a_daemon_thread_does_not_hold_up_the_interpreters_exit():
    script = (
        "import threading, time\n"
        "from pathlib import Path\n"
        "from local.torchserve import ManagedEndpoint, TorchServeDown\n"
        "managed = ManagedEndpoint(Path('model.tar.gz'))\n"
        "started = threading.Event()\n"
        "def launch():\n"
        "    started.set()\n"
        "    threading.Event().wait()\n"  # a start that never finishes
        "managed._launch = launch\n"
        "try:\n"
        "    managed.invoke(b'x', 'image/jpeg')\n"
        "except TorchServeDown:\n"
        "    pass\n"
        "started.wait(60)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=HANG_GUARD_S, capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("outcome", ["started", "gave up"])
def test_a_replacement_that_ends_after_stop_is_stopped_not_served_and_logs_no_error(monkeypatch, caplog, outcome):
    # Ctrl-C while a dead stack is replaced: the start it cuts short is no failure to report.
    fresh = FakeStack("fresh")
    managed = ManagedEndpoint(Path("model.tar.gz"))

    def launch():  # ends only once stop() has begun
        wait_until(lambda: managed._closed, "stop() to begin")
        if outcome == "gave up":
            raise TorchServeDown("the endpoint is closed")  # as _launch does once stop() has begun
        return fresh

    monkeypatch.setattr(managed, "_launch", launch)
    managed._current = FakeStack("dead", exit_code=1)
    with pytest.raises(TorchServeDown):
        managed.invoke(b"x", "image/jpeg")
    managed.stop()  # returns once the replacement has ended
    assert fresh.stopped is (outcome == "started") and managed._current is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("TorchServe stopped serving"), errors


def test_after_stop_nothing_is_started_again(monkeypatch):
    launches = []
    managed = ManagedEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(managed, "_launch", lambda: launches.append(1))
    live = FakeStack("live")
    managed._current = live
    managed.stop()
    assert live.stopped
    with pytest.raises(TorchServeDown):
        managed.invoke(b"x", "image/jpeg")
    assert managed._replacer is None and launches == []


class LaunchedStack:
    """Stands in for the TorchServeEndpoint that ManagedEndpoint._launch creates; its hooks act mid-start."""

    made: ClassVar[list] = []
    on_start = on_ready = None

    def __init__(self, artifact, *, startup_timeout):
        self.startup_timeout = startup_timeout
        self.started = self.stopped = False
        self.made.append(self)

    def start(self):
        if self.on_start:
            self.on_start()
        self.started = True  # stop() before this point finds no process to stop

    def wait_ready(self):
        if self.on_ready:
            self.on_ready()
        if self.stopped:
            raise TorchServeError("stopped while it started")

    def stop(self):
        self.stopped = self.started


@pytest.fixture
def launching(monkeypatch):
    monkeypatch.setattr(LaunchedStack, "made", [])
    monkeypatch.setattr(torchserve, "TorchServeEndpoint", LaunchedStack)
    return LaunchedStack


def test_start_serves_the_first_stack_or_raises_its_failure_in_the_callers_thread(monkeypatch):
    managed = ManagedEndpoint(Path("model.tar.gz"))
    stack = FakeStack("first")
    monkeypatch.setattr(managed, "_launch", lambda: stack)
    assert managed.start() is managed and managed.invoke(b"x", "image/jpeg")[2] == b"first"

    def fail():
        raise TorchServeError("the model server worker died loading the model")

    broken = ManagedEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(broken, "_launch", fail)
    with pytest.raises(TorchServeError, match="died loading the model"):
        broken.start()


@pytest.mark.parametrize("rebuilt", ["while it serves", "between the copy and the first unpack"])
def test_a_replacement_serves_the_model_the_stack_started_with_not_one_rebuilt_since(tmp_path, monkeypatch, rebuilt):
    """`make model INT8=1` in another terminal while `make demo RUNTIME=torchserve` runs: a TorchServe that died was
    replaced from model/dist/model.tar.gz as it was by then, and the demo went on serving the other model under the
    banner of the first (or, after `make clean`, could not be replaced at all). A serverless endpoint replaces an
    instance with the model it was created with. The first stack unpacked model/dist/model.tar.gz itself, a few ms
    after the copy was taken: a rebuild landing in between had it serve another model than its replacements."""
    tmp = tmp_path / "tmp"
    torchserves_tmpdir(monkeypatch, tmp)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"the model the demo started with")

    class Stack(FakeStack):  # answers with the bytes of the artifact it was started from
        def __init__(self, artifact, *, startup_timeout):
            super().__init__(Path(artifact).read_bytes().decode())

        def start(self):
            return self

        def wait_ready(self):
            pass

    def rebuild():
        written = tmp_path / ".model.tar.gz.tmp"
        written.write_bytes(b"a model rebuilt since")
        written.replace(artifact)  # as the build writes it

    monkeypatch.setattr(torchserve, "TorchServeEndpoint", Stack)
    managed = ManagedEndpoint(artifact)
    if rebuilt == "between the copy and the first unpack":
        keep_a_copy = managed._keep_a_copy

        def copy_then_rebuild():
            copy = keep_a_copy()
            rebuild()
            return copy

        monkeypatch.setattr(managed, "_keep_a_copy", copy_then_rebuild)
    managed.start()
    try:
        assert managed.invoke(b"x", "image/jpeg")[2] == b"the model the demo started with"
        if rebuilt == "while it serves":
            rebuild()
        managed._current.code = -9  # its JVM died
        with pytest.raises(TorchServeDown):
            managed.invoke(b"x", "image/jpeg")
        wait_until(lambda: managed._current is not None, "the replacement")
        assert managed.invoke(b"x", "image/jpeg")[2] == b"the model the demo started with"
    finally:
        managed.stop()
    assert list(tmp.iterdir()) == [], "the copy outlived the endpoint"


def test_a_damaged_artifact_is_named_as_given_not_as_the_copy_the_first_start_unpacked(tmp_path, monkeypatch):
    """The first stack unpacks the copy kept in TMPDIR: its refusal must not name that copy, removed by then."""
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    tmp = tmp_path / "tmp"
    torchserves_tmpdir(monkeypatch, tmp)
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(TorchServeError) as refusal:
        ManagedEndpoint(bad).start()
    assert str(refusal.value) == f"cannot unpack the model artifact {bad}: not a tar.gz archive (13 bytes)"
    assert list(tmp.iterdir()) == []


def test_the_copy_a_stack_killed_outright_left_is_removed_at_the_next_start(tmp_path, monkeypatch):
    """A `kill -9` runs no cleanup: the copy of the artifact stays in TMPDIR until the next start removes it, as it
    does the unpacked models of such stacks (README: Stopping)."""
    from local.runtime import MODEL_DIR_PREFIX

    torchserves_tmpdir(monkeypatch, tmp_path)
    left = tmp_path / f"{MODEL_DIR_PREFIX}999999999-killed"  # no such pid, no owner lock
    left.mkdir()
    (left / "model.tar.gz").write_bytes(b"copy")
    artifact = tmp_path / "artifact.tar.gz"
    artifact.write_bytes(b"model")
    managed = ManagedEndpoint(artifact)
    monkeypatch.setattr(managed, "_launch", lambda: FakeStack("first"))
    managed.start()
    try:
        assert not left.exists()
    finally:
        managed.stop()


def test_the_copy_is_locked_as_its_stacks_while_it_serves_and_the_lock_goes_with_stop(tmp_path, monkeypatch):
    """The owner lock tells another start's sweep the copy is in use (whatever pid namespace it runs in); stop()
    releases it with the copy, leaving no descriptor open behind a stack that is gone."""
    import fcntl

    from local.runtime import OWNER_LOCK

    tmp = tmp_path / "tmp"
    torchserves_tmpdir(monkeypatch, tmp)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"model")
    managed = ManagedEndpoint(artifact)
    monkeypatch.setattr(managed, "_launch", lambda: FakeStack("first"))
    managed.start()
    try:
        [copy_dir] = tmp.iterdir()
        lock = os.open(copy_dir / OWNER_LOCK, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # held: another start's sweep leaves the copy alone
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            managed.stop()
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once stop() is done (the file is gone by then)
        finally:
            os.close(lock)
    finally:
        managed.stop()


@pytest.mark.parametrize("during", ["the copy", "the first start"])
def test_a_stop_signal_during_the_first_start_leaves_no_copy_of_the_artifact(tmp_path, monkeypatch, during):
    """Ctrl-C while the artifact is copied or the first stack loads: start() raises, nothing will stop() the endpoint,
    and the copy must go with it (a live process's copy is no orphan: no later start would remove it)."""
    tmp = tmp_path / "tmp"
    torchserves_tmpdir(monkeypatch, tmp)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"model")
    managed = ManagedEndpoint(artifact)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    if during == "the copy":
        monkeypatch.setattr(torchserve, "shutil", names_of(torchserve.shutil, copyfile=interrupted))
    else:
        monkeypatch.setattr(managed, "_launch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        managed.start()
    assert list(tmp.iterdir()) == []


@pytest.mark.timeout(60)
def test_the_copy_of_a_stack_killed_outright_is_kept_while_it_runs_and_swept_once_it_is_gone(tmp_path):
    """The copy's directory as a real start names it (the sweep test above makes one up): a sweep by another start
    leaves it while its process runs, and removes it once a `kill -9` took that process."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"model")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from local.torchserve import ManagedEndpoint\n"
        "managed = ManagedEndpoint(Path(sys.argv[1]))\n"
        "managed._launch = lambda: None\n"
        "managed.start()\n"
        "print(managed.artifact, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    with subprocess.Popen(
        [sys.executable, "-c", script, str(artifact)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            copy = Path(child.stdout.readline().strip())
            assert copy.parent.parent == tmp and copy.read_bytes() == b"model"
            assert sweep_orphaned_model_dirs(tmp) == []
        finally:
            child.kill()
    assert sweep_orphaned_model_dirs(tmp) == [copy.parent]


@pytest.mark.parametrize("refused", ["the copy", "the unpack"])
def test_a_temporary_directory_without_room_counts_the_copy_in_the_figure(tmp_path, monkeypatch, refused):
    """The copy a torchserve stack keeps of its artifact needs room beside the unpacked model. With 70 MB free the 20
    MB copy went in and the 60 MB unpack did not, and the line gave "60 MB unpacked", a figure the directory had room
    for, when the start needs both; a copy refused too was named with the unpacked size alone."""
    import errno

    from tests.conftest import tar_gz_of

    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    tmp = tmp_path / "tmp"
    torchserves_tmpdir(monkeypatch, tmp)
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"model.onnx": os.urandom(3_000_000)})  # ~3 MB compressed too

    def no_room(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if refused == "the copy":
        monkeypatch.setattr(torchserve, "shutil", names_of(torchserve.shutil, copyfile=no_room))
    else:
        monkeypatch.setattr(local.runtime, "tarfile", tarfile_opening(makefile=no_room))
    with pytest.raises(TorchServeError) as refusal:
        ManagedEndpoint(artifact).start()
    assert str(refusal.value) == (
        f"no room in {tmp} to unpack the model artifact {artifact} (3 MB unpacked, 6 MB with the copy of the artifact"
        " kept there): No space left on device; free some there, or set TMPDIR to a directory with room"
    )
    assert list(tmp.iterdir()) == []


def test_no_room_for_the_unpack_where_no_copy_could_be_kept_counts_no_copy(tmp_path, monkeypatch):
    """A TMPDIR that takes no lock (flock refused, as some network filesystems do) keeps no copy: when the unpack
    then finds no room, the figure is the unpacked model's alone, not one with a copy that is not there."""
    import errno

    from local import runtime

    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    tmp = tmp_path / "tmp"
    torchserves_tmpdir(monkeypatch, tmp)
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"model.onnx": os.urandom(3_000_000)})

    def no_lock(_directory):
        raise OSError(errno.ENOLCK, "No locks available")

    def no_room(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torchserve, "hold_owner_lock", no_lock)
    monkeypatch.setattr(runtime, "extract_all", no_room)
    with pytest.raises(TorchServeError) as refusal:
        ManagedEndpoint(artifact).start()
    assert str(refusal.value) == (
        f"no room in {tmp} to unpack the model artifact {artifact} (3 MB unpacked): No space left on device; free"
        " some there, or set TMPDIR to a directory with room"
    )
    assert list(tmp.iterdir()) == []


def test_launch_passes_the_startup_timeout_and_returns_the_ready_stack(launching):
    managed = ManagedEndpoint(Path("model.tar.gz"), startup_timeout=7)
    stack = managed._launch()
    assert launching.made == [stack] and stack.startup_timeout == 7 and stack.started and not stack.stopped


@pytest.mark.parametrize("error", [TorchServeError, KeyboardInterrupt])  # Ctrl-C while it loads, too
def test_a_launch_that_fails_stops_what_it_started(launching, monkeypatch, error):
    def fail():
        raise error("warm-up invocation got 500")

    monkeypatch.setattr(launching, "on_ready", staticmethod(fail))
    with pytest.raises(error, match="warm-up"):
        ManagedEndpoint(Path("model.tar.gz"))._launch()
    [stack] = launching.made
    assert stack.stopped


@pytest.mark.parametrize("when", ["on_start", "on_ready"])
def test_stop_during_a_launch_stops_the_stack_being_started(launching, monkeypatch, when):
    managed = ManagedEndpoint(Path("model.tar.gz"))
    monkeypatch.setattr(launching, when, staticmethod(managed.stop))
    with pytest.raises(TorchServeError):
        managed._launch()
    [stack] = launching.made
    assert stack.started and stack.stopped
    with pytest.raises(TorchServeDown, match="closed"):  # and none is started after it
        managed._launch()
    assert len(launching.made) == 2 and not launching.made[1].started


def test_stopping_a_stack_that_is_already_gone_only_removes_its_dir(tmp_path):
    # The replacement path: exit_code() has reaped the dead toolkit, and no process of its group is left.
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    base = tmp_path / "torchserve-x"
    base.mkdir()
    torchserve._stop(proc, base)
    assert not base.exists()


def test_an_invocation_that_times_out_is_status_0_not_down():
    # Status 0 is the caller's "invocation timed out"; only a refused or dropped connection means the JVM is gone.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # the connection is made (queued), the answer never comes
        endpoint = TorchServeEndpoint(Path("missing.tar.gz"), port=sock.getsockname()[1])
        answer = endpoint._request("POST", "/invocations", b"jpeg", {}, timeout=0.01, down_raises=True)
    assert answer == (0, {}, b"")


def test_an_invocation_gives_up_when_the_runtime_does(monkeypatch):
    # The runtime stops waiting after its invocation timeout; the thread it ran invoke() in must not hang on.
    seen = []

    def urlopen(req, timeout):
        seen.append(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(torchserve._DIRECT, "open", urlopen)
    assert TorchServeEndpoint(Path("missing.tar.gz"), port=1).invoke(b"jpeg", "image/jpeg") == (0, {}, b"")
    assert seen == [INVOCATION_TIMEOUT_S]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_stop_signal_while_the_artifact_unpacks_leaves_no_temp_dir(tmp_path, monkeypatch, stop):
    """Ctrl-C (KeyboardInterrupt) or `make demo`'s SIGTERM/SIGHUP handler (SystemExit) landing while the model is
    unpacked (a quarter of a second on every start) must take the unpacked model with it: no stop() can, as
    nothing has been started yet, and no later start sweeps torchserve-* directories."""
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    torchserves_tmpdir(monkeypatch, tmp_path)
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("model.onnx"), io.BytesIO(b""))

    def interrupted(self, path, *args, **kwargs):
        (Path(path) / "model.onnx").write_bytes(b"half")
        raise stop

    monkeypatch.setattr(local.runtime, "tarfile", tarfile_opening(extractall=interrupted))
    with pytest.raises(stop):
        TorchServeEndpoint(artifact).start()
    assert list(tmp_path.iterdir()) == [artifact]


def test_the_jvm_starts_on_an_os_whose_jvm_lacks_the_toolkits_linux_only_flag(monkeypatch):
    """The toolkit's config gives the JVM -XX:-UseContainerSupport, which only Linux's JVM knows: on macOS java
    refused to start ("Unrecognized VM option"). Simulated here with a flag this JVM lacks; on Linux the options are
    the deployed container's."""
    assert torchserve.java_tool_options("Linux") == torchserve.TORCHSERVE_JAVA_OPTIONS
    java = shutil.which("java") or skip_or_fail("no java on PATH", "CI installs a JRE")
    monkeypatch.setattr(torchserve, "platform", names_of(torchserve.platform, system=lambda: "Darwin"))
    env = {**os.environ, "JAVA_TOOL_OPTIONS": serving_env(BASE, 1, 2, (3, 4))["JAVA_TOOL_OPTIONS"]}
    ran = subprocess.run(
        [java, "-XX:-UseNoSuchFlagOnThisOS", "-version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    ran = subprocess.run([java, "-XX:-UseNoSuchFlagOnThisOS", "-version"], capture_output=True, text=True, timeout=60)
    assert "Unrecognized VM option 'UseNoSuchFlagOnThisOS'" in ran.stderr  # what macOS's JVM says of the toolkit's
