"""Shared by the container tests: is the serving stack runnable here, and the endpoint lifecycle."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import io
import platform
import shutil
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

from local.torchserve import MANAGEMENT_SOCKET, TorchServeEndpoint, management_address
from tests.ci import skip_or_fail

# Endpoints these tests started and have not stopped: two must never run at once (CPU, and AWS's toolkit
# refuses a second TorchServe on the machine unless the launcher scopes its search, which it does).
_live: list[TorchServeEndpoint] = []


def broken_copy(artifact: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    """The good tarball with metadata.json replaced by invalid JSON (model_fn raises ModelLoadError), plus `extra`
    members; written to target."""
    replaced = {"metadata.json": b"{not json", **(extra or {})}
    with tarfile.open(artifact) as src, tarfile.open(target, "w:gz", compresslevel=1) as dst:
        for member in src.getmembers():
            if member.name not in replaced:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, data in replaced.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return target


def require_serving_stack() -> None:
    """Skip with the reason when java or the toolkit is missing; under CI that is a failure instead."""
    missing = []
    if not shutil.which("java"):
        missing.append("java (Java 17 or newer, e.g. apt-get install openjdk-17-jre-headless)")
    for module in ("sagemaker_pytorch_serving_container", "ts"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"python module {module} (pip install -r requirements-dev.txt)")
    if not missing:
        return
    skip_or_fail(
        "TorchServe container tests need " + " and ".join(missing), "CI must provide it (.ci/run installs Java)"
    )


@contextlib.contextmanager
def endpoint(artifact: Path, env: dict[str, str] | None = None) -> Iterator[TorchServeEndpoint]:
    """A started (not yet ready) endpoint, stopped on exit; refuses to overlap another one. `env`: variables for the
    toolkit's process, over the launcher's."""
    require_serving_stack()
    assert not _live, f"an endpoint from an earlier module is still running at {_live[0].url}"
    ep = TorchServeEndpoint(artifact, startup_timeout=120, env=env).start()
    _live.append(ep)
    try:
        yield ep
    finally:
        ep.stop()
        _live.remove(ep)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.socket_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def management(ep: TorchServeEndpoint, method: str, path: str) -> tuple[int, bytes]:
    """TorchServe's management API, which the launcher serves on a Unix socket in its directory where the platform
    has one (local.torchserve.management_address), else on the inference port."""
    address = management_address(ep.base, ep.port, platform.system(), platform.machine())
    if address.startswith("http:"):
        status, _, body = ep._request(method, path)
        return status, body
    conn = _UnixConnection(ep.base / MANAGEMENT_SOCKET)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()
