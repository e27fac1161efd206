"""A shell behind a corporate proxy, for the tests of clients that must reach this machine's own servers directly."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Not "[::1]": httpx.Client() raises InvalidURL on it. urllib and botocore match neither spelling to a URL's [::1].
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def no_proxy_with_loopback(env: Mapping[str, str]) -> str:
    """NO_PROXY for the suites and every process they start: the shell's names (NO_PROXY's, then no_proxy's) and
    this machine's loopback names."""
    names: list[str] = []
    for value in (env.get("NO_PROXY", ""), env.get("no_proxy", "")):
        names += [name.strip() for name in value.split(",") if name.strip() and name.strip() not in names]
    if "*" in names:  # no proxy for any host, loopback included; urllib reads it so only alone
        return "*"
    return ",".join(names + [name for name in LOOPBACK_NAMES if name not in names])


@contextlib.contextmanager
def http_server(
    status: int = 200, body: bytes = b"{}", headers: dict[str, str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering every GET/POST/DELETE with `status` and `body`: its URL, and the request lines it
    got ("POST /predict"; a proxy's line names the absolute URL it was asked for)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each keep-alive answer waits out the client's delayed ACK (40 ms)
        wbufsize = -1  # head and body in one write, flushed after each request

        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(f"{self.command} {self.path}")
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = answer

        def log_message(self, *args) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
        finally:
            httpd.shutdown()


@contextlib.contextmanager
def behind_a_proxy(monkeypatch: pytest.MonkeyPatch, no_proxy: str | None = "localhost") -> Iterator[list[str]]:
    """Every proxy variable of the shell naming a proxy that answers 502, and NO_PROXY `no_proxy` (localhost, which
    does not name 127.0.0.1; None leaves it as it is): the request lines the proxy got."""
    with http_server(502, b"proxy says no", {"Content-Type": "text/plain"}) as (url, seen):
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, url)
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
            monkeypatch.setenv("no_proxy", no_proxy)
        yield seen
