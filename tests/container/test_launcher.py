"""The launcher's pure parts: where it puts things, which ports it binds, how it names a failure. No java."""

from __future__ import annotations

import http.client
import logging
import socket
import tempfile
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest

from local import torchserve
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
    serving_env,
    worker_death_cause,
)
from tests.waiting import wait_until

BASE = Path("/tmp/torchserve-x")


def test_every_listener_is_loopback_on_the_given_ports():
    env = serving_env(BASE, 18080, 18082, (17070, 17071))
    assert env["SAGEMAKER_BIND_TO_PORT"] == "18080"
    assert env["TS_INFERENCE_ADDRESS"] == env["TS_MANAGEMENT_ADDRESS"] == "http://127.0.0.1:18080"
    assert env["TS_METRICS_ADDRESS"] == "http://127.0.0.1:18082"
    assert env["TS_GRPC_INFERENCE_ADDRESS"] == env["TS_GRPC_MANAGEMENT_ADDRESS"] == "127.0.0.1"
    assert (env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"]) == ("17070", "17071")
    assert not any("0.0.0.0" in value for value in env.values())


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


def test_no_worker_death_no_cause():
    assert worker_death_cause(LOG[:4]) is None
    assert worker_death_cause([]) is None


def test_a_death_without_an_error_line_still_reports_a_death():
    assert worker_death_cause([f"x MODEL_LOG - {WORKER_DIED}"]) == "the worker died without logging an error"


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


def test_memory_before_start_is_refused():
    with pytest.raises(TorchServeError, match="not started"):
        TorchServeEndpoint(Path("missing.tar.gz")).memory_mb()


def test_missing_java_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(TorchServeError, match="java not found"):
        TorchServeEndpoint(Path("missing.tar.gz")).start()


def test_an_unreadable_artifact_is_named_and_leaves_no_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/opt/any-jre")  # get past the java check without needing one
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(TorchServeError, match=r"cannot unpack the model artifact .*model\.tar\.gz"):
        TorchServeEndpoint(bad).start()
    assert list(tmp_path.iterdir()) == [bad]


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


def test_an_exit_is_described_by_code_or_signal():
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(-200) == "exited with code -200"


class FakeStack:
    """What ManagedEndpoint uses of a TorchServeEndpoint."""

    def __init__(self, name: str, exit_code: int | None = None):
        self.url = self.base = name
        self.code = exit_code
        self.stopped = False

    def exit_code(self):
        return self.code

    def invoke(self, body, content_type, accept):
        return 200, {"Content-Type": "application/json"}, self.url.encode()

    def log_tail(self, n):
        return f"last lines of {self.url}"

    def stop(self):
        self.stopped = True


def test_a_failed_replacement_keeps_answering_down_and_is_tried_again(monkeypatch, caplog):
    dead, fresh = FakeStack("dead", exit_code=-9), FakeStack("fresh")
    launches = iter([TorchServeError("java exploded"), fresh])

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
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    assert "was killed by SIGKILL" in errors[0] and "last lines of dead" in errors[0]
    assert "could not be restarted" in errors[1] and "java exploded" in errors[1]
    managed.stop()
    assert fresh.stopped
