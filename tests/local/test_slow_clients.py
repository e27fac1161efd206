"""Slow and stalled clients cannot hold the local stack's connections: a deadline on each request head (the
server's protocol) and on each body (read_capped), with deadlines shortened so the tests run in seconds."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local import server

HEAD_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5  # on /stall only; /echo's body deadline is a mere hang guard
HANG_GUARD_S = 60.0  # how long a test waits for what must happen: never the thing measured


WRITE_STALL_TIMEOUT_S = 0.5
BIG = 16 * 1024 * 1024  # far more than the socket buffers on both sides can hold


class ShortHeadDeadline(server.HeadDeadlineProtocol):
    head_timeout = HEAD_TIMEOUT_S
    write_stall_timeout = WRITE_STALL_TIMEOUT_S
    stalled = threading.Event()  # set when the server drops a connection whose writes stalled
    paused = threading.Event()  # set when writing to a client first has to wait for it
    moved_on = threading.Event()  # set when the write deadline passes and finds the answer has moved

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused.set()

    def _write_deadline_passed(self) -> None:
        progressed = self.transport.get_write_buffer_size() < self._write_buffered
        super()._write_deadline_passed()
        if progressed:
            self.moved_on.set()

    def _write_stalled(self) -> None:
        super()._write_stalled()
        self.stalled.set()


async def big(request: Request) -> Response:
    return Response(b"x" * BIG, media_type="application/octet-stream")


async def echo(request: Request) -> JSONResponse:
    # A body that must not time out gets far longer than any load could stretch the test's pauses; a body that
    # must (/stall) gets a short deadline that its client never meets.
    timeout = BODY_TIMEOUT_S if request.url.path == "/stall" else HANG_GUARD_S
    try:
        body = await server.read_capped(request, 1024, timeout=timeout)
    except server.BodyTimeout:
        return JSONResponse({"message": "Request Timeout"}, status_code=408)
    return JSONResponse({"size": None if body is None else len(body)})


@pytest.fixture(scope="module")
def url():
    sock = server.bind("127.0.0.1", 0)
    routes = [Route("/echo", echo, methods=["POST"]), Route("/stall", echo, methods=["POST"]), Route("/big", big)]
    config = uvicorn.Config(Starlette(routes=routes), http=ShortHeadDeadline, log_level="error")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG_GUARD_S
    while thread.is_alive() and not instance.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert instance.started, "the test server did not start"
    host, port = sock.getsockname()[:2]
    yield host, port
    instance.should_exit = True
    thread.join(timeout=10)


def connect(url) -> socket.socket:
    conn = socket.create_connection(url, timeout=10)
    return conn


def closed_by_server(conn: socket.socket, within: float) -> bool:
    """True when the server closes the connection (recv gives b"" or a reset) within `within` seconds."""
    conn.settimeout(within)
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def request_head(length: int, path: str = "/echo") -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: {length}\r\n\r\n".encode()


def read_response(conn: socket.socket) -> bytes:
    conn.settimeout(HANG_GUARD_S)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_connection_that_sends_nothing_is_closed(url):
    with connect(url) as conn:
        assert closed_by_server(conn, within=HANG_GUARD_S)


def test_a_connection_that_sends_half_a_head_is_closed(url):
    with connect(url) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\nx-slow: ")
        assert closed_by_server(conn, within=HANG_GUARD_S)


def test_the_head_deadline_does_not_cut_a_complete_request_or_its_body(url):
    """Once the head is in, only the body deadline applies; and a kept-alive connection serves a second request."""
    with connect(url) as conn:
        conn.sendall(request_head(4))
        time.sleep(HEAD_TIMEOUT_S * 0.6)
        conn.sendall(b"ab")
        time.sleep(HEAD_TIMEOUT_S * 0.6)  # over the head deadline in total
        conn.sendall(b"cd")
        first = read_response(conn)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b'{"size":4}'), first
        conn.sendall(request_head(2) + b"ok")
        second = read_response(conn)
        assert second.startswith(b"HTTP/1.1 200") and second.endswith(b'{"size":2}'), second


def test_a_slow_second_head_on_a_kept_alive_connection_is_closed(url):
    with connect(url) as conn:
        conn.sendall(request_head(2) + b"ok")
        assert read_response(conn).startswith(b"HTTP/1.1 200")
        conn.sendall(b"POST /echo HTTP/1.1\r\nho")
        assert closed_by_server(conn, within=HANG_GUARD_S)


def test_a_stalled_body_gets_a_json_408(url):
    with connect(url) as conn:
        conn.sendall(request_head(1000, "/stall") + b"abc")
        response = read_response(conn)
        assert response.startswith(b"HTTP/1.1 408"), response
        assert response.endswith(b'{"message":"Request Timeout"}'), response


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: ten\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello on the plain port
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        # Framings a proxy in front could read otherwise (request smuggling): refused, never guessed at.
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1, 2\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: identity\r\ncontent-length: 1\r\n\r\nx",
        b"GET /a\x00b HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nx-note: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ],
    ids=[
        "bad-length",
        "two-lengths",
        "tls",
        "header-without-colon",
        "length-list-of-two-values",
        "unsupported-transfer-coding",
        "transfer-encoding-twice",
        "identity-transfer-coding",
        "nul-in-target",
        "nul-in-header-value",
        "http-1.1-without-host",
    ],
)
def test_what_is_not_http_gets_a_json_400_and_a_closed_connection(url, raw):
    with connect(url) as conn:
        conn.sendall(raw)
        response = read_response(conn)
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), response
        assert b"content-type: application/json" in head.lower(), response
        assert json.loads(body) == {"message": "Bad Request: not a valid HTTP/1.1 request"}
        assert closed_by_server(conn, within=HANG_GUARD_S)


def test_garbage_after_an_answer_closes_the_connection_quietly(url, caplog):
    # /echo answers a body over its cap before reading the rest; h11 then finds the rest is no chunked body.
    # An answer has been sent, so no 400 can follow it: sending one raised in data_received, and asyncio logged
    # the failure as a fatal error with its traceback.
    with connect(url) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n800\r\n" + b"a" * 2048)
        assert read_response(conn).endswith(b'{"size":null}')
        conn.sendall(b"\r\nnot a chunk size\r\n")
        assert closed_by_server(conn, within=HANG_GUARD_S)  # asyncio logs before it closes
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def download(conn: socket.socket) -> int:
    """Bytes received until the server closes or resets the connection."""
    conn.settimeout(HANG_GUARD_S)
    total = 0
    try:
        while chunk := conn.recv(1 << 20):
            total += len(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return total


def test_a_client_that_stops_reading_is_dropped(url, monkeypatch):
    monkeypatch.setattr(ShortHeadDeadline, "stalled", threading.Event())
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small receive window
    with conn:
        conn.connect(url)
        conn.sendall(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        # Reads nothing until the server has given up: a fixed pause, outlasted by a slow server, would let
        # the reading below resume the writes and cancel the deadline.
        assert ShortHeadDeadline.stalled.wait(HANG_GUARD_S), "the stalled answer was never dropped"
        assert download(conn) < BIG, "the server gave up on the stalled answer"


def test_a_client_that_reads_gets_the_whole_answer(url, monkeypatch):
    # The write deadline runs from the first full buffer until the answer drains (pause_writing to
    # resume_writing), so the short one would time the 16 MB transfer itself: a loaded machine could miss it.
    monkeypatch.setattr(ShortHeadDeadline, "write_stall_timeout", HANG_GUARD_S)
    with connect(url) as conn:
        conn.sendall(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert download(conn) > BIG  # head + body: a reader that keeps up is never cut


def receive(conn: socket.socket, size: int) -> int:
    """Reads at least `size` bytes (fewer if the server closes first); returns how many."""
    conn.settimeout(HANG_GUARD_S)
    got = 0
    while got < size and (chunk := conn.recv(1 << 20)):
        got += len(chunk)
    return got


def test_a_slow_reader_of_a_large_answer_is_not_cut(url, monkeypatch):
    # The deadline is on progress, not on the whole transfer: this client takes part of the answer within the
    # deadline, then nothing until the deadline has passed (and seen that progress), then the rest. Cutting
    # it would need the deadline to count from the first full buffer, which is what used to happen.
    for name in ("stalled", "paused", "moved_on"):
        monkeypatch.setattr(ShortHeadDeadline, name, threading.Event())
    # Long enough that taking 6 MB over loopback never misses it; it is waited out once.
    monkeypatch.setattr(ShortHeadDeadline, "write_stall_timeout", 2.0)
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with conn:
        conn.connect(url)
        conn.sendall(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert ShortHeadDeadline.paused.wait(HANG_GUARD_S), "the answer never filled the buffers"
        # More than the server's socket send buffer can hold (Linux caps it at 4 MB by default), so the
        # server's own buffer has to shrink.
        first = receive(conn, 6 << 20)
        assert ShortHeadDeadline.moved_on.wait(HANG_GUARD_S), "the deadline did not see the answer move"
        assert not ShortHeadDeadline.stalled.is_set()
        assert first + download(conn) > BIG  # head + body
    assert not ShortHeadDeadline.stalled.is_set()
