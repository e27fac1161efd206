"""The launcher's pure parts: where it puts things, which ports it binds, how it names a failure. No java."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from local.torchserve import (
    WORKER_DIED,
    TorchServeEndpoint,
    TorchServeError,
    free_ports,
    last_error,
    serving_env,
    worker_death_cause,
)

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
