"""The local stack: site, API Gateway and SageMaker Runtime tiers in one starlette app on one port.

    python -m local [--host 127.0.0.1] [--port 8000] [--runtime inprocess|torchserve]

- Site: ``www/`` with the CDN's content types and security headers, and ``/config.js`` rendered by the
  same function the StaticSite component uploads, served no-cache.
- API: ``POST /predict`` becomes a payload-2.0 event for the unmodified ``handlers.inference_proxy.handler``.
- Runtime: ``POST /endpoints/{name}/invocations`` serves the built model.tar.gz; the handler reaches it through
  boto3 via ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` with dummy credentials, so the AWS CLI works against it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from components.policies import (
    CONFIG_JS_KEY,
    CONTENT_TYPES,
    CROSS_ORIGIN_OPENER_POLICY,
    CROSS_ORIGIN_RESOURCE_POLICY,
    LAMBDA_HANDLER,
    LAMBDA_RUNTIME,
    PERMISSIONS_POLICY,
    cache_control_for,
    content_security_policy,
    http_api_cors,
    lambda_log_group_name,
    proxy_function_env,
)
from components.settings import Settings, SettingsError, function_name_for, read_stack_config
from components.site_config import CONFIG_JS_CACHE_CONTROL, CONFIG_JS_CONTENT_TYPE, render_config_js
from local import gateway
from local.arguments import ROOT, is_loopback
from local.runtime import (
    Faults,
    RuntimeAnswer,
    SageMakerRuntime,
    answer_level,
    answer_line,
    aws_error,
    service_unavailable,
)
from local.runtime import log as runtime_log
from local.sandboxes import LambdaSandboxes, LambdaTimeout, SandboxStartError

WWW = ROOT / "www"
DEFAULT_ENDPOINT_NAME = "mobilenet-local"
# Concurrent handler invocations, one sandbox process each, started on demand (Lambda's own limit is far
# higher; beyond this many, invocations wait for a free sandbox).
LAMBDA_SANDBOXES = 64
# Slow clients: a connection must finish each request head within HEAD_TIMEOUT_S and its body within
# BODY_TIMEOUT_S, or it is dropped (head) or answered 408 (body). Without them, a few hundred stalled
# connections hold the server's file descriptors (and their buffers) for as long as they like.
HEAD_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0
FAULTS_PATH = "/__local/faults"  # with --fault-injection only
# The body of a POST /__local/faults: a few JSON fields, the longest a model message, far under this.
FAULTS_MAX_BODY_BYTES = 64 * 1024
# And one that stops reading its answers (e.g. pipelines requests and never reads) is dropped once its answer
# has not moved for this long (nginx's send_timeout: between two writes, not for the whole answer, so a slow
# but steady reader of a large answer is never cut).
WRITE_STALL_TIMEOUT_S = 30.0
# How much of an unfinished request head is buffered: heads up to this size reach the gateway tier, which
# answers over 10 KB with API Gateway's JSON 431; beyond it uvicorn answers 400 and closes. h11 checks the size
# only while the head is incomplete after a read (up to 256 KiB): one whose last read completes it passes on.
MAX_HEAD_BUFFER_BYTES = 2 * 1024 * 1024
log = logging.getLogger("local")
# The API stage's access log, one line per API Gateway answer (AccessLog): INFO, so `--log-level info` shows it.
access_log = logging.getLogger("local.access")
# What a proxy adds to say whom it forwards for: a request carrying one did not start on this machine.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

# What CloudFront's response headers policy adds in the cloud (the CSP is built per API origin).
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": PERMISSIONS_POLICY,
    "cross-origin-opener-policy": CROSS_ORIGIN_OPENER_POLICY,
    "cross-origin-resource-policy": CROSS_ORIGIN_RESOURCE_POLICY,
}


@dataclass
class StackInfo:
    base_url: str  # how the stack reaches itself (loopback when bound to every interface)
    endpoint_name: str
    settings: Settings
    allowed_origins: list[str]
    # Bound to 0.0.0.0/::, the address browsers use is not known up front: the page is told to call the API
    # at the origin it was loaded from.
    any_interface: bool = False


# host[:port] as a browser sends it in Host: a name or IPv4 address, or a bracketed IPv6 address; a port up to 65535.
_HOST_HEADER = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4}))?"
)


def origin_from_host(scheme: str, host: str | None) -> str | None:
    """http://<Host header> when it is a plain host[:port], else None (a forged or garbled Host)."""
    if not host or not _HOST_HEADER.fullmatch(host):
        return None
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1 : host.index("]")])
        except ValueError:
            return None
    return f"{scheme}://{host.lower()}"


def bad_host_header() -> Response:
    """The 400 for a page or config.js whose Host header is not a host[:port] (origin_from_host gave None)."""
    return JSONResponse({"message": "Host header is not a host[:port]"}, status_code=400)


def names_this_machine(host: str | None) -> bool:
    """Whether a Host header addresses a loopback stack as a browser on this machine would: localhost (or a
    name under .localhost, which browsers resolve to loopback themselves), or a loopback address; any port,
    for ssh -L and other forwards. A name that merely resolves to 127.0.0.1 is what DNS rebinding sends."""
    if not host or not _HOST_HEADER.fullmatch(host):
        return False
    name = host[1 : host.index("]")] if host.startswith("[") else host.split(":")[0]
    name = name.lower().removesuffix(".")
    return name.endswith(".localhost") or is_loopback(name)


class BodyTimeout(Exception):
    """The client did not send its whole body within BODY_TIMEOUT_S."""


# On the answer to a body given up on (BodyTimeout, or one over the limit): the connection closes after it, as
# RFC 9110 15.5.9 asks of a 408 (15.5.14 allows it for a 413). Kept open, it read the rest of the late body and
# served whatever the client sent next; after a 413 it would read and drop up to gigabytes first.
CLOSE = {"connection": "close"}


def client_gone() -> Response:
    """The answer to a /predict whose client was gone before its body arrived (a hang-up, or a body the server refused
    with its own 400): nobody reads it, and an answer of the gateway's (a 413, a stop's 503) made an access line of a
    refusal nobody got. Without an apigw-requestid it logs none, as the server's own 400 does not."""
    return Response(status_code=400, headers=CLOSE)


async def read_capped(request: Request, limit: int, timeout: float | None = None) -> bytes | None:
    """The request body, or None as soon as it exceeds `limit` (nothing more is buffered).

    A client that hangs up mid-body gets the same None: it cannot read any answer, and an unhandled
    ClientDisconnect would only print an ASGI traceback. One that stalls raises BodyTimeout.
    """
    try:
        return await read_capped_or_hang_up(request, limit, timeout)
    except ClientDisconnect:
        return None


async def read_capped_or_hang_up(request: Request, limit: int, timeout: float | None = None) -> bytes | None:
    """read_capped, for a caller that tells a client who hung up mid-body (ClientDisconnect) from one over `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S if timeout is None else timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout from None
    return b"".join(chunks)


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on every request head.

    uvicorn times a connection out only between requests (keep-alive, after a response): one that connects and
    sends nothing, or half a head, would be held forever. This one is closed if the head of its next request
    is not complete HEAD_TIMEOUT_S after the connection opened or after that request's first bytes arrived.
    """

    head_timeout = HEAD_TIMEOUT_S
    write_stall_timeout = WRITE_STALL_TIMEOUT_S
    _head_deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None
    _write_buffered = 0  # bytes waiting in the transport when the write deadline was last armed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is None and self._between_requests():
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)
        super().data_received(data)
        if self._head_deadline is not None and not self._between_requests():  # the head is complete
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        for deadline in (self._head_deadline, self._write_deadline):
            if deadline is not None:
                deadline.cancel()
        self._head_deadline = self._write_deadline = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:  # the client's receive window is full
        super().pause_writing()
        if self._write_deadline is None:
            self._arm_write_deadline()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _arm_write_deadline(self) -> None:
        self._write_buffered = self.transport.get_write_buffer_size()
        self._write_deadline = self.loop.call_later(self.write_stall_timeout, self._write_deadline_passed)

    def _write_deadline_passed(self) -> None:
        # Writes stay paused until the buffer drains below the low-water mark, which a large answer to a slow
        # reader takes longer than the deadline to do: what counts is whether the client took any of it. (While
        # paused, uvicorn writes nothing more, so a smaller buffer means bytes went out.)
        if self.transport.get_write_buffer_size() < self._write_buffered:
            self._arm_write_deadline()
        else:
            self._write_stalled()

    def _write_stalled(self) -> None:
        self._write_deadline = None
        self.transport.abort()  # close() would wait for the buffered answer to drain, which is the problem

    def send_400_response(self, msg: str) -> None:
        """What is not HTTP/1.1 at all (a garbled head, a bad Content-Length) gets JSON like every other error,
        not uvicorn's plain text; the connection closes, as nothing after the error can be trusted to parse."""
        if self.cycle is not None and not self.cycle.response_complete:
            # The app may have the request already (a head that parsed, then a garbled body): whatever it still
            # sends goes nowhere, as once the connection is lost. Answering into the finished connection made h11
            # raise LocalProtocolError out of the app's send, and uvicorn log it as an exception in the app.
            self.cycle.disconnected = True
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            # An answer has begun (garbage after a body the app did not read): no 400 can follow it, and
            # h11 would raise LocalProtocolError out of data_received (asyncio's "Fatal error" traceback).
            self.transport.close()
            return
        body = json.dumps({"message": "Bad Request: not a valid HTTP/1.1 request"}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body)):
            self.transport.write(self.conn.send(event))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        """A request asking to upgrade (Upgrade: h2c, websocket) is answered as any other, as CloudFront and API
        Gateway answer it, and logs nothing. uvicorn warned twice for each, telling to install a WebSocket library
        the stack has no use for: 1,000 such requests pipelined on one connection (84 KB) printed 183 KB."""

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


def _respond(answer: gateway.HttpResponse) -> Response:
    response = Response(answer.body, status_code=answer.status)
    for name, value in answer.headers:
        response.headers.append(name, value)
    return response


def _runtime_respond(answer: RuntimeAnswer, *, close: bool = False) -> Response:
    """The SageMaker Runtime's answer; `close` for a body given up on (CLOSE)."""
    return Response(
        answer.body, status_code=answer.status, headers={**answer.headers, **CLOSE} if close else answer.headers
    )


class AbsoluteFormTarget:
    """RFC 9112 3.2.2: a server MUST accept the absolute-form of request-target (`POST http://host:port/predict`,
    what a client sends through an HTTP proxy) and, as its origin, ignore the Host header for the target's own
    authority. uvicorn hands the whole URL over as the path, which no route matches (a JSON 404); this turns it
    into the origin-form path and makes the authority the one Host header, so routing and the Host guard judge
    it exactly as they judge the same request in origin-form. Only `http:` is this plain-HTTP server's scheme;
    asterisk-form and authority-form (OPTIONS *, CONNECT) and other schemes still get the gateway's 404."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        raw = (scope.get("raw_path") or b"") if scope["type"] == "http" else b""
        if raw[:7].lower() == b"http://":
            authority, slash, rest = raw[7:].partition(b"/")
            raw_path = slash + rest or b"/"
            scope = {
                **scope,
                "path": unquote(raw_path.decode("latin-1")),
                "raw_path": raw_path,
                "headers": [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", authority)],
            }
        await self.app(scope, receive, send)


def closing(start: dict) -> dict:
    """An http.response.start message saying `connection: close` (in place of any connection header), which h11 and
    uvicorn then close the connection on."""
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"connection"]
    return {**start, "headers": [*headers, (b"connection", b"close")]}


class CloseAfterAmbiguousFraming:
    """RFC 9112 6.3: a request with both Transfer-Encoding and Content-Length is framed by its chunks (h11 does so),
    and the server MUST close the connection after answering it: a proxy in front that framed it by Content-Length
    would take the rest of the body for a request of its own (request smuggling). h11 and uvicorn kept the
    connection open and served what followed on it. Any answer to it says `connection: close`, which h11 then
    closes on."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        names = {k for k, _ in scope["headers"]} if scope["type"] == "http" else set()
        if not {b"transfer-encoding", b"content-length"} <= names:
            await self.app(scope, receive, send)
            return

        async def closing_send(message) -> None:
            await send(closing(message) if message["type"] == "http.response.start" else message)

        await self.app(scope, receive, closing_send)


class CloseBeforeAnUnsentBody:
    """RFC 9110 10.1.1: a server answering an `Expect: 100-continue` request with a final status before it read the
    body SHOULD say whether it will close or go on reading; a client told nothing may skip the body and send its next
    request, which the server then read as that body. Such an answer (a 404, 429, 431 or the Host guard's 403: an
    answer that asked for the body does not count) says `connection: close`, which uvicorn then closes on."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        # As h11 reads it (has_expect_100_continue): listed among any others, in any case, on HTTP/1.1 only.
        expects = (
            scope["type"] == "http"
            and scope.get("http_version") != "1.0"
            and any(
                b"100-continue" in (item.strip().lower() for item in v.split(b","))
                for k, v in scope["headers"]
                if k == b"expect"
            )
        )
        if not expects:
            await self.app(scope, receive, send)
            return
        asked = False  # the app asked for the body: uvicorn sent 100 Continue, and the client sends it

        async def receiving():
            nonlocal asked
            asked = True
            return await receive()

        async def closing_send(message) -> None:
            await send(closing(message) if message["type"] == "http.response.start" and not asked else message)

        await self.app(scope, receiving, closing_send)


class LoopbackForwardedProto:
    """A forwarder on this machine that terminates TLS (Codespaces' port forwarding, a reverse proxy) names the
    browser's scheme in X-Forwarded-Proto: config.js and the CSP must say https://<its host>, or the https page would
    call an http API, which the browser blocks. Taken from a loopback peer only, as uvicorn's proxy handling did; the
    client address stays the socket's peer (uvicorn_config turns that handling off)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client and is_loopback(client[0]):
            protos = [v.decode("latin-1").strip() for k, v in scope["headers"] if k == b"x-forwarded-proto"]
            if protos and protos[-1] in ("http", "https"):
                scope = {**scope, "scheme": protos[-1]}
        await self.app(scope, receive, send)


class LoopbackHostGuard:
    """DNS rebinding: a page on attacker.example whose name is then re-pointed at 127.0.0.1 is same-origin with
    this server, so CORS stops nothing and it can drive /predict and the runtime (and read its tracebacks).
    Bound to loopback, only requests whose Host names this machine are served; a rebound page still sends its
    own name. (Bound to other interfaces with --allow-remote, the stack is open by choice and Host is free.)"""

    def __init__(self, app, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope, receive, send) -> None:
        if self.enabled and scope["type"] == "http":
            hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
            # HTTP/1.0 without Host is no browser; HTTP/1.1 without one never gets here (h11 refuses it).
            if len(hosts) > 1 or (hosts and not names_this_machine(hosts[0])):
                message = (
                    "Forbidden: the Host header does not name this machine (a DNS rebinding guard). Behind a "
                    "forwarder that keeps its own Host, start the stack with --host 0.0.0.0 --allow-remote (make "
                    "demo HOST=0.0.0.0 ALLOW_REMOTE=1)."
                )
                body = json.dumps({"message": message}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 403, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@dataclass
class AccessRecord:
    """What a request's access log line needs that only the gateway tier knows: AccessLog puts one in the request's
    scope (under ACCESS_RECORD), the gateway tier fills it in."""

    arrived: float = field(default_factory=time.time)  # $context.requestTime, and the event's requestContext.time
    route_key: str | None = None  # None: no route matched (a preflight, another method or path)
    integration: gateway.Integration | None = None  # None: the function was never invoked


ACCESS_RECORD = "local.access_record"


def source_ip_of(scope) -> str:
    """$context.identity.sourceIp, the event's requestContext.http.sourceIp and the access log's ip alike: the socket's
    peer, or this machine for an ASGI server that gives none (a Unix socket, a peer gone before it was asked)."""
    client = scope.get("client")
    return client[0] if client else "127.0.0.1"


def access_record(request: Request) -> AccessRecord:
    return request.scope[ACCESS_RECORD]


class AccessLog:
    """The API stage's access log: one line (gateway.access_log_line) on `local.access` at INFO for each answer of API
    Gateway's, told by the `apigw-requestid` it carries (the function's answers, the gateway's own refusals and 404s,
    its CORS preflights, its 503s at a stop). The other tiers' answers carry none and log none: the site's files and
    config.js (CloudFront's, whose logs are off in the cloud), the runtime tier, /__local/faults, the Host guard's 403.
    Logged once the answer is sent, or the client gone; responseLength counts the body bytes sent (none for HEAD)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = AccessRecord()
        status, request_id, sent = 0, None, 0

        async def logged_send(message) -> None:
            nonlocal status, request_id, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                ids = [v for k, v in message.get("headers", []) if k.lower() == b"apigw-requestid"]
                request_id = ids[0].decode("latin-1") if ids else None
            await send(message)
            if message["type"] == "http.response.body" and scope["method"] != "HEAD":
                sent += len(message.get("body", b""))

        try:
            await self.app({**scope, ACCESS_RECORD: record}, receive, logged_send)
        finally:
            if request_id is not None and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    gateway.access_log_line(
                        request_id=request_id,
                        source_ip=source_ip_of(scope),
                        now=record.arrived,
                        method=scope["method"],
                        route_key=record.route_key,
                        status=status,
                        response_length=sent,
                        integration=record.integration,
                    )
                )


def etag_of(body: bytes) -> str:
    """A site file's ETag, as S3 gives an object put in one part without SSE-KMS: the MD5 of its bytes, quoted."""
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def if_none_match_hits(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (RFC 9110 13.1.2: `*`, or any listed tag, compared weakly)."""
    tags = [tag.strip() for tag in (header or "").split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags if tag)


# The decoded path: a name boto3 sent as a%2Fb is a/b here, and an empty one (EndpointName="") is //.
RUNTIME_PATH = re.compile(r"/endpoints/.*/invocations")
RAW_RUNTIME_PATH = re.compile(rb"/endpoints/([^/]*)/invocations")


def invoked_endpoint_name(scope) -> str | None:
    """The EndpointName an InvokeEndpoint path names, percent-decoded from the path as sent (boto3 sends a '/' in it
    as %2F, which the decoded path cannot tell from two segments); None for a path of more segments, no route."""
    match = RAW_RUNTIME_PATH.fullmatch(scope.get("raw_path") or scope["path"].encode())
    return unquote(match.group(1).decode("latin-1")) if match else None


def cut_short_answer(path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """What a request cancelled at a stop is answered (status, raw headers, body), in its tier's words: the runtime
    tier's InvokeEndpoint gets SageMaker's 503 (with its x-amzn-RequestId; no line in the API's access log), the
    faults route a plain JSON 503, and the API (/predict, the one route that waits) its gateway's 503 with an
    apigw-requestid."""
    if RUNTIME_PATH.fullmatch(path):
        answer = service_unavailable()
        status, headers, body = answer.status, list(answer.headers.items()), answer.body
    elif path == FAULTS_PATH:
        status, headers = 503, [("content-type", "application/json")]
        body = json.dumps({"message": STOPPING_MESSAGE}).encode()
    else:
        answer = gateway.gateway_error(503)
        status, headers, body = (
            answer.status,
            [*answer.headers, ("apigw-requestid", gateway.new_request_id())],
            answer.body,
        )
    return status, [(name.encode(), value.encode()) for name, value in headers], body


class ShutdownGuard:
    """Requests still running when Ctrl-C's grace period ends are cancelled by uvicorn; answer them (503, in their
    tier's words: cut_short_answer) instead of uvicorn's traceback and plain-text 500."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if scope["type"] != "http" or started:
                return
            status, headers, body = cut_short_answer(scope.get("path", ""))
            try:
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            except Exception:  # the connection is already gone: nothing left to tell
                log.debug("could not answer a request cancelled at shutdown")


# What a POST /predict gets once a stop has begun (DrainingServer): no function runs for it any more.
STOPPING_MESSAGE = "The local stack is stopping."


class Drain:
    """What a graceful stop waits for: the /predict requests in flight (their tasks), and whether it has begun."""

    def __init__(self) -> None:
        self.stopping = False
        self.cut_short = False  # the stop gave up on requests still in flight (grace period over, or a second Ctrl-C)
        self.requests: set[asyncio.Task] = set()

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        task = asyncio.current_task()
        self.requests.add(task)
        try:
            yield
        finally:
            self.requests.discard(task)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, whose graceful stop first answers the /predict requests in flight.

    Their handler, in a sandbox, calls the runtime tier on this same port; uvicorn's own shutdown closes the port
    first, so a handler that called after it (a retry after a throttled attempt, a body still arriving) found it
    closed and answered 503 "The model is warming up" (8 to 14 of 16 requests in flight, on a stop). So the port stays
    open while they run, and a new /predict gets a 503 saying the stack is stopping. The drain and uvicorn's own
    wait share one grace period, after which what still runs is cancelled (ShutdownGuard answers it); a second
    Ctrl-C (uvicorn's force_exit) ends the drain at once. `give_up` then ends the Lambda sandboxes still running the
    /predict requests given up on, before the port closes."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Drain,
        announce: Callable[[str], None] = print,
        give_up: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.announce = announce
        self.give_up = give_up

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        grace = self.config.timeout_graceful_shutdown
        deadline = loop.time() + (float("inf") if grace is None else grace)
        self.drain.stopping = True
        if self.drain.requests and not self.force_exit:
            count = len(self.drain.requests)
            self.announce(
                f"stopping: answering the {count} /predict request{'s' if count != 1 else ''} in flight first"
                + ("" if grace is None else f" (at most {grace:g} s)")
            )
        while self.drain.requests and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.drain.requests:
            # Their handlers still call the runtime tier on this port, which uvicorn's shutdown closes: left to run,
            # each then logged its call's failure after "stopped" (model_not_ready, the endpoint unreachable), for
            # what was a stop, and the exit waited for them. So they are cancelled now, as uvicorn would cancel them,
            # then their sandboxes ended: in that order, as a sandbox's end would fail its request first, with a 500.
            self.drain.cut_short = True
            for task in list(self.drain.requests):
                task.cancel()
            self.give_up()
        if grace is not None:
            self.config.timeout_graceful_shutdown = grace_left_to_uvicorn(
                deadline - loop.time(), drained=not self.drain.requests
            )
        await super().shutdown(sockets)


# Time to write the answers of requests the drain saw finish: a drain ending in the grace period's last moments
# left uvicorn a wait of 0, and it cancelled them mid-write ("Cancel 0 running task(s)" when none was left).
ANSWER_WRITE_S = 0.25


def grace_left_to_uvicorn(left_s: float, *, drained: bool) -> float:
    """The wait uvicorn's own shutdown gets after the drain: what is left of the one grace period, and at least
    ANSWER_WRITE_S once every /predict request has its answer."""
    return max(left_s, ANSWER_WRITE_S if drained else 0.0)


def create_app(
    stack: StackInfo,
    runtime: SageMakerRuntime,
    sandboxes: LambdaSandboxes,
    *,
    fault_injection: bool = False,
    stage_throttle: gateway.StageThrottle | None = None,
    drain: Drain | None = None,
) -> Starlette:
    """`drain`: what a DrainingServer serving the app waits for at a stop."""
    drain = Drain() if drain is None else drain
    cors = http_api_cors(stack.allowed_origins)
    bound_to_loopback = not stack.any_interface and is_loopback(urlsplit(stack.base_url).hostname or "")

    def page_origin(request: Request) -> str | None:
        """Where the page should send /predict: this server as the browser addressed it."""
        if not stack.any_interface:
            return stack.base_url
        # scope, not request.url: building the URL parses Host, and a garbled one would raise there.
        return origin_from_host(request.scope["scheme"], request.headers.get("host"))

    def cors_headers(origin: str | None) -> dict[str, str]:
        # API Gateway answers CORS itself for an API with a CORS configuration, for every response.
        if not origin or origin not in cors["AllowOrigins"]:
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": ", ".join(cors["ExposeHeaders"]),
            "vary": "origin",
        }

    def refusal(status: int, request_id: str | None = None, *, close: bool = False) -> Response:
        """API Gateway's own answer before any invocation: its id, as on every answer, but no CORS headers (AWS adds
        those "to the response from an integration", and there is none; a browser page sees a network error, as it
        would in the cloud). `close` for a body given up on (CLOSE)."""
        answer = gateway.gateway_error(status)
        answer.headers.append(("apigw-requestid", request_id or gateway.new_request_id()))
        if close:
            answer.headers.extend(CLOSE.items())
        return _respond(answer)

    async def predict(request: Request) -> Response:
        if request.method != "POST":
            return await gateway_tier(request)
        access_record(request).route_key = "POST /predict"  # the API's one route; any other method has none
        if drain.stopping:  # API Gateway's own answer (see refused below), for a stop the cloud does not have
            # Its body first: closed with part of it unread, the connection is reset, and a client still sending a
            # photo of a few MB saw that reset instead of this answer. (uvicorn cancels a body slower than the stop.)
            try:
                await read_capped_or_hang_up(request, gateway.MAX_BODY_BYTES)
            except BodyTimeout:
                pass
            except ClientDisconnect:
                return client_gone()
            answer = gateway.HttpResponse(
                503, [("content-type", "application/json")], json.dumps({"message": STOPPING_MESSAGE}).encode()
            )
            answer.headers.extend([("apigw-requestid", gateway.new_request_id()), *CLOSE.items()])
            return _respond(answer)
        with drain.tracking():
            return await gateway_tier(request)

    async def gateway_tier(request: Request) -> Response:
        origin = request.headers.get("origin")
        request_id = gateway.new_request_id()
        record = access_record(request)

        def refused(status: int, *, close: bool = False) -> Response:
            return refusal(status, request_id, close=close)

        # The 10 KB quota is the API's, not a route's: a head over it is refused whatever its method (a preflight,
        # a GET, a 50 KB method name) before any route is looked for.
        if header_bytes(request) > gateway.MAX_HEADER_BYTES:
            return refused(431)
        if request.method == "OPTIONS":  # API Gateway answers it itself, with its id as on every answer of its own
            # Only a preflight gets CORS headers: AWS's "For the OPTIONS method, your request must contain an origin
            # header and an Access-Control-Request-Method header" (Configure CORS for HTTP APIs).
            asks = request.headers.get("access-control-request-method")
            preflight = cors_headers(origin) if asks else {}
            if preflight:
                preflight.update(
                    {
                        "access-control-allow-methods": ", ".join(cors["AllowMethods"]),
                        "access-control-allow-headers": ", ".join(cors["AllowHeaders"]),
                        "access-control-max-age": str(cors["MaxAge"]),
                    }
                )
            return Response(status_code=204, headers={**preflight, "apigw-requestid": request_id})
        if request.method != "POST":  # the cloud API has only the POST /predict route
            return refused(404)
        if stage_throttle is not None and not stage_throttle.admit():
            return refused(429)  # no Retry-After: API Gateway sends none
        started = time.perf_counter()
        try:
            body = await read_capped_or_hang_up(request, gateway.MAX_BODY_BYTES)
        except BodyTimeout:
            return refused(408, close=True)
        except ClientDisconnect:
            return client_gone()
        if body is None:
            return refused(413, close=True)
        event = gateway.build_event(
            method=request.method,
            path=request.scope["path"],
            query_string=request.scope["query_string"].decode("latin-1"),
            headers=request.headers.items(),
            body=body,
            source_ip=source_ip_of(request.scope),
            scheme=request.scope["scheme"],  # LoopbackForwardedProto's, behind a TLS-terminating forwarder here
            port=(request.scope.get("server") or ("", 0))[1] or (443 if request.scope["scheme"] == "https" else 80),
            route_key="POST /predict",
            request_id=request_id,
            now=record.arrived,
        )
        built = time.perf_counter()
        context = gateway.function_context(
            str(uuid.uuid4()),
            endpoint_name=stack.endpoint_name,
            region=runtime.region,
            memory_limit_in_mb=stack.settings.proxy_memory_size_mb,
        )
        invoked: float | None = None  # when the function was invoked, if it was
        failed: str | None = None  # why the invocation failed, if it did (the access log's integrationErrorMessage)
        if gateway.event_too_large(event):  # Lambda's RequestEntityTooLarge: the function never runs
            answer = gateway.gateway_error(413)
        else:
            crash = runtime.faults.sandbox_crash > 0
            if crash:
                runtime.faults.sandbox_crash -= 1
            invoked = time.perf_counter()

            async def invoke() -> object:
                # Handed over off the event loop: a new sandbox's start waits for the fork server, and one that does
                # not answer (SIGSTOP, a debugger) would hold up every connection, not only this invocation.
                handed_over = await asyncio.to_thread(sandboxes.submit, event, context, crash=crash)
                return await asyncio.wrap_future(handed_over)

            try:
                result = await asyncio.wait_for(invoke(), timeout=gateway.INTEGRATION_TIMEOUT_S)
                answer = gateway.response_from_lambda(result)
            # The handler logged nothing for these, so each line names the request: the client's apigw-requestid
            # (the access log's requestId, at --log-level info) and, as Lambda's own lines do, Lambda's request id.
            except TimeoutError:  # the handler runs on, to the function's timeout, which nobody is told of then
                log.error(
                    "request %s (Lambda RequestId %s): the Lambda function did not answer within the integration's "
                    "%g s (API Gateway answers 503); it runs on to its own timeout",
                    request_id,
                    context.aws_request_id,
                    gateway.INTEGRATION_TIMEOUT_S,
                )
                answer = gateway.gateway_error(503)
                # No text is documented for an HTTP API's integration timeout: this is a REST API's, its 504's message.
                failed = "Endpoint request timed out"
            except LambdaTimeout as timed_out:  # a function error: API Gateway's 500, as for any other
                log.error(
                    "request %s (Lambda RequestId %s): the Lambda function timed out (%s; API Gateway answers 500); "
                    "its sandbox is replaced",
                    request_id,
                    context.aws_request_id,
                    timed_out,
                )
                answer = gateway.gateway_error(500)
                failed = gateway.function_error(f"RequestId: {context.aws_request_id} Error: {timed_out}")
            # No sandbox to run it in (the handler never ran), or the function answered in a shape API Gateway refuses.
            except (SandboxStartError, gateway.MalformedResult) as refused:
                log.error(
                    "request %s (Lambda RequestId %s): %s (API Gateway answers 500)",
                    request_id,
                    context.aws_request_id,
                    refused,
                )
                answer = gateway.gateway_error(500)
                # A malformed result's reason is AWS's access-log text; Lambda's own failure to start an environment
                # has none documented here, so the local reason stands in.
                failed = str(refused)
            except gateway.LambdaFunctionError as failure:  # Lambda failed it after the handler returned
                log.error(
                    "request %s (Lambda RequestId %s): the Lambda invocation failed: %s (API Gateway answers 500)",
                    request_id,
                    context.aws_request_id,
                    failure,
                )
                answer = gateway.gateway_error(500)
                failed = gateway.function_error(str(failure))
            except BrokenProcessPool:  # Lambda's Runtime.ExitError: this invocation fails, a new sandbox serves next
                log.error(
                    "request %s (Lambda RequestId %s): the Lambda sandbox exited mid-invocation (API Gateway answers "
                    "500); it will be replaced",
                    request_id,
                    context.aws_request_id,
                )
                answer = gateway.gateway_error(500)
                # Lambda's errorMessage for a runtime that exited: an injected crash is a SIGKILL, as the OOM killer's;
                # the stack does not learn why any other sandbox died.
                why = "with error: signal: killed" if crash else "without providing a reason"
                failed = gateway.function_error(f"RequestId: {context.aws_request_id} Error: Runtime exited {why}")
            except Exception as raised:
                log.exception(
                    "request %s (Lambda RequestId %s): the Lambda handler raised (API Gateway answers 500)",
                    request_id,
                    context.aws_request_id,
                )
                answer = gateway.gateway_error(500)
                failed = gateway.function_error(str(raised))  # Lambda's errorMessage: the exception's str()
        done = time.perf_counter()
        if invoked is not None:
            record.integration = gateway.Integration(context.aws_request_id, round((done - invoked) * 1000), failed)
        answer.headers = [(k, v) for k, v in answer.headers if not k.startswith("access-control-")]
        for name, value in cors_headers(origin).items():
            if name == "vary":  # the function names Origin in its own Vary already (proxy_core.cors_headers)
                answer.headers = gateway.with_listed(answer.headers, name, value)
            else:
                answer.headers.append((name, value))
        answer.headers.append(("apigw-requestid", request_id))
        answer.headers.append(
            (
                "server-timing",
                f"event;dur={(built - started) * 1000:.2f}, handler;dur={(done - built) * 1000:.2f}",
            )
        )
        return _respond(answer)

    async def invocations(request: Request) -> Response:
        name = invoked_endpoint_name(request.scope)
        if name is None:  # /endpoints/a/b/invocations: no InvokeEndpoint path, as no other path is
            return route_not_found()
        started = time.perf_counter()
        close = True  # after a body given up on
        try:
            body = await read_capped_or_hang_up(request, runtime.max_payload_bytes)
        except BodyTimeout:
            answer = aws_error(408, "RequestTimeoutException", "The request body did not arrive in time.")
        except ClientDisconnect:
            # Nobody reads an answer now: logged as the 4 MB cap's ValidationError, it read as a refused payload.
            elapsed_ms = (time.perf_counter() - started) * 1000
            runtime_log.info(
                f"invocation not answered: the client hung up before its body arrived ({elapsed_ms:.1f} ms)"
            )
            return _runtime_respond(runtime.payload_too_large(), close=True)
        else:
            if body is None:
                answer = runtime.payload_too_large()
            else:
                close = False
                answer = await runtime.invoke(
                    name,
                    body,
                    request.headers.get("content-type", ""),
                    request.headers.get("accept", ""),
                    request.headers,
                )
        runtime_log.log(answer_level(answer), answer_line(answer, (time.perf_counter() - started) * 1000))
        return _runtime_respond(answer, close=close)

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    def security_headers(request: Request) -> dict[str, str]:
        """SECURITY_HEADERS, without COOP where the browser would ignore it: an origin that is not potentially
        trustworthy (plain http to another host than this machine, as with --allow-remote from another device),
        where Chromium also logs an error on every page load. CloudFront serves only https."""
        if request.scope["scheme"] == "https" or names_this_machine(request.headers.get("host")):
            return SECURITY_HEADERS
        return {k: v for k, v in SECURITY_HEADERS.items() if k != "cross-origin-opener-policy"}

    async def config_js(request: Request) -> Response:
        origin = page_origin(request)
        if origin is None:
            return bad_host_header()
        return Response(
            render_config_js(origin),
            headers={
                **security_headers(request),
                # The distribution's one response headers policy covers /config.js too (CSP and all), as the README
                # says; a browser ignores a CSP on a script, but a reader comparing the two stacks' answers does not.
                "content-security-policy": content_security_policy(
                    origin, site_origin=origin_from_host(request.scope["scheme"], request.headers.get("host"))
                ),
                "content-type": CONFIG_JS_CONTENT_TYPE,
                "cache-control": CONFIG_JS_CACHE_CONTROL,
            },
        )

    def route_not_found() -> Response:
        """API Gateway's 404 for a route the API does not have (any other path, or a method other than POST on
        /predict)."""
        return refusal(404)

    async def site(request: Request) -> Response:
        relative = request.path_params.get("path", "") or "index.html"
        # Dotfiles are never published (components.policies.site_files), so they are not served either.
        hidden = any(part.startswith(".") for part in relative.split("/"))
        try:
            # As components/bundle_dir.py bundles it: a link is published at its own path when it resolves to a file
            # inside www/ that is neither hidden nor left out itself (www/ itself may be a link), and nothing else
            # is. The object's key is the link's path, so its type and cache policy are the key's, not those of the
            # file it names.
            root = WWW.resolve()
            # The key's file is the one whose name's bytes are the key in UTF-8, as bundle_dir_files reads names:
            # under LANG=en_US.ISO-8859-1, /café.jpg looked for caf\xe9.jpg and was a 404.
            path = (root / os.fsdecode(relative.encode("utf-8"))).resolve()
            inside = path.is_relative_to(root) and not any(p.startswith(".") for p in path.relative_to(root).parts)
            content_type = CONTENT_TYPES.get(PurePosixPath(relative).suffix.lower())
            missing = (
                hidden
                or not inside
                or not path.is_file()
                or content_type is None
                # S3 looks the key up as the request names it: pathlib would drop a trailing or doubled slash, and
                # /app.js/ (the key "app.js/") is not in the bucket, whose keys are the files' paths as written.
                or PurePosixPath(relative).as_posix() != relative
                # A config.js left in www/ is not uploaded (site_files), and a link to it stops pulumi up.
                or CONFIG_JS_KEY in (relative, path.relative_to(root).as_posix())
            )
            if missing or request.method not in ("GET", "HEAD"):  # any other route: what API Gateway answers
                return route_not_found()
            body = path.read_bytes()
        # A NUL byte (ValueError), a name too long for the file system or an unreadable file (OSError): it is
        # not a file this site serves, not an unhandled 500 with a traceback in the log.
        except (OSError, ValueError):
            return route_not_found()
        origin = page_origin(request)
        if origin is None:
            return bad_host_header()
        headers = {
            **security_headers(request),
            # 'self' when config.js names the origin the browser used; the API's origin when it does not (the
            # page opened as localhost, the API bound to 127.0.0.1).
            "content-security-policy": content_security_policy(
                origin, site_origin=origin_from_host(request.scope["scheme"], request.headers.get("host"))
            ),
            "content-type": content_type,
            "cache-control": cache_control_for(relative),
            "etag": etag_of(body),
        }
        # A no-cache file is revalidated on every load: unchanged, S3 (through CloudFront) answers the browser's
        # If-None-Match with a 304 and no body, as the README says of index.html, script.js and style.css.
        if if_none_match_hits(request.headers.get("if-none-match"), headers["etag"]):
            return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "content-type"})
        return Response(body, headers=headers)

    async def faults(request: Request) -> Response:
        # Test machinery, not part of the emulated cloud: only this machine may drive it (with --allow-remote the
        # stack is reachable from others), and only with a JSON body. A page in the developer's browser may POST
        # text/plain to any origin without asking first, but JSON needs a preflight, which this route never grants.
        # The socket's peer, and no header a forwarder adds: behind a reverse proxy or port forwarder on this machine
        # (Codespaces, nginx) every peer is loopback, and where the request came from is only in that header.
        forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
        if forwarded or not is_loopback(request.client.host if request.client else ""):
            message = "Forbidden: /__local/faults takes requests from this machine only"
            return JSONResponse({"message": message}, status_code=403)
        media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if request.method == "POST" and media_type != "application/json":
            message = "Unsupported Media Type: send the faults as application/json"
            return JSONResponse({"message": message}, status_code=415)
        if request.method == "DELETE":
            runtime.faults = Faults()
        else:
            # Read as /predict reads its body: a stalled one held the connection for ever, and any size was buffered.
            try:
                body = await read_capped(request, FAULTS_MAX_BODY_BYTES)
            except BodyTimeout:
                return JSONResponse({"message": gateway.GATEWAY_ERRORS[408]}, status_code=408, headers=CLOSE)
            if body is None:
                return JSONResponse({"message": gateway.GATEWAY_ERRORS[413]}, status_code=413, headers=CLOSE)
            try:
                runtime.faults = Faults.from_json(json.loads(body))
            # RecursionError: JSON nested deeper than the parser's recursion limit.
            except (ValueError, TypeError, RecursionError) as e:
                return JSONResponse({"message": str(e)}, status_code=400)
        return JSONResponse({"faults": runtime.faults.__dict__, "peak_in_flight": runtime.peak_in_flight})

    async def unrouted(request: Request, exc: Exception) -> Response:
        """What no route takes is the gateway's JSON 404 (API Gateway has no 405), not starlette's plain text: a
        method no route lists (PROPFIND, TRACE, a lower-case "post"), or a request target that is not a path
        (`*`, an authority, an absolute-form URL of another scheme than http:), which uvicorn passes on as the
        path. On /predict it is the API's: a head over the API's 10 KB quota gets its 431 first, as in gateway_tier."""
        if request.scope["path"] == "/predict" and header_bytes(request) > gateway.MAX_HEADER_BYTES:
            return refusal(431)
        return route_not_found()

    routes = [
        Route("/predict", predict, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        Route("/endpoints/{name:path}/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/config.js", config_js, methods=["GET"]),
    ]
    if fault_injection:
        routes.append(Route(FAULTS_PATH, faults, methods=["POST", "DELETE"]))
    routes.append(Route("/{path:path}", site, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: unrouted},
        middleware=[
            Middleware(CloseAfterAmbiguousFraming),
            Middleware(CloseBeforeAnUnsentBody),
            Middleware(LoopbackForwardedProto),
            Middleware(AbsoluteFormTarget),
            Middleware(LoopbackHostGuard, enabled=bound_to_loopback),
            Middleware(AccessLog),  # outside ShutdownGuard, whose 503 is the gateway's too
            Middleware(ShutdownGuard),
        ],
    )


def header_bytes(request: Request) -> int:
    """Request line plus headers, as API Gateway counts them against its 10 KB limit."""
    line = len(request.method) + len(request.scope["path"]) + len(request.scope["query_string"]) + 12
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers.raw)


# What the sandboxes take from this process's environment; everything else (the developer's tokens, a real
# AWS_SESSION_TOKEN, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, ...) stays out, as a Lambda function gets only its own.
SANDBOX_ENV_PASSTHROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONWARNINGS",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "ENDPOINT_READ_TIMEOUT_S",  # the handler's own tunable, which a function's environment may set too
)


def sandbox_environment(stack: StackInfo, region: str, parent: Mapping[str, str]) -> dict[str, str]:
    """The Lambda sandboxes' whole environment: what the InferenceApi component gives the function, dummy
    credentials and the local runtime's URL, and only the process basics of `parent` (plus POWERTOOLS_*)."""
    env = {k: v for k, v in parent.items() if k in SANDBOX_ENV_PASSTHROUGH or k.startswith("POWERTOOLS_")}
    env.update(
        {
            **proxy_function_env(
                stack.endpoint_name,
                stack.allowed_origins,
                # The stack's proxyLogLevel, unless LOG_LEVEL=DEBUG make demo asks for more for this run.
                log_level=parent.get("LOG_LEVEL") or stack.settings.proxy_log_level,
                metrics_namespace="MobilenetServerless/local",
            ),
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": stack.base_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            # No ~/.aws either: its profile could name other credentials or ignore the endpoint URL above.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **lambda_defined_environment(stack),
        }
    )
    return env


def lambda_defined_environment(stack: StackInfo) -> dict[str, str]:
    """The variables Lambda defines in every function's environment ("Defined runtime environment variables",
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html), as the deployed proxy gets them: code
    that tells Lambda from elsewhere by them (botocore's user agent reads AWS_EXECUTION_ENV) or names its function by
    them runs as deployed. They agree with the context function_context gives the handler."""
    name = function_name_for(stack.endpoint_name)
    return {
        "_HANDLER": LAMBDA_HANDLER,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{LAMBDA_RUNTIME}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(stack.settings.proxy_memory_size_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": lambda_log_group_name(name),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(ROOT),  # the project: the bundle's handlers/ and its packages, as /var/task holds them
    }


def runtime_log_level(sandbox_env: Mapping[str, str], server_level: int) -> int:
    """The level of the runtime tier's logger: its line for an invocation carries the id the handler's line logs as
    endpoint_request_id, so both show at the handler's level (Powertools reads POWERTOOLS_LOG_LEVEL, then LOG_LEVEL),
    whatever --log-level (the server's own level) says, or at --log-level's if that is lower."""
    name = sandbox_env.get("POWERTOOLS_LOG_LEVEL") or sandbox_env.get("LOG_LEVEL") or "INFO"
    return min(server_level, logging.getLevelNamesMapping().get(name.upper(), logging.INFO))


def start_sandboxes(stack: StackInfo, region: str) -> LambdaSandboxes:
    """Sandboxes running the unmodified Lambda handler with the environment the InferenceApi component gives it."""
    sandboxes = LambdaSandboxes(LAMBDA_SANDBOXES)
    try:
        sandboxes.warm(env=sandbox_environment(stack, region, os.environ))
    except BaseException:  # the handler refused its configuration, or Ctrl-C: stop the sandbox that was started
        sandboxes.shutdown()
        raise
    return sandboxes


def uvicorn_config(app: Starlette, log_level: str) -> uvicorn.Config:
    """How `python -m local` serves the app.

    Without proxy headers: uvicorn's default takes the client from X-Forwarded-For sent by the addresses in
    FORWARDED_ALLOW_IPS, an environment variable that container images often set to `*`. Then another machine's
    `X-Forwarded-For: 127.0.0.1` passed for this machine on /__local/faults, and a local client's header became the
    event's sourceIp, which API Gateway takes from the TCP connection. request.client is the socket's peer
    (X-Forwarded-Proto from a loopback peer is still honoured: LoopbackForwardedProto).
    """
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,  # uvicorn's own: the API's access log is AccessLog's, in the deployed stage's format
        timeout_graceful_shutdown=5,
        # The app has no startup or shutdown to run. A second Ctrl-C skips the lifespan's end, and its cancelled
        # task printed starlette's "ERROR: Traceback ... CancelledError".
        lifespan="off",
        http=HeadDeadlineProtocol,
        # Let oversized headers reach the gateway tier, which answers them in JSON as API Gateway would.
        h11_max_incomplete_event_size=MAX_HEAD_BUFFER_BYTES,
        proxy_headers=False,
    )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every response written in two parts waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # not inheritable (Python's default): one server process; no child needs the port
    except BaseException:  # a busy port: the caller gets the error, not the socket, so nobody else can close it
        sock.close()
        raise
    return sock


def stack_region(stack_file: Path) -> str:
    # Read as load_stack_file reads it (as the Pulumi CLI does): safe_load would raise a ValueError for a value
    # written like an impossible date, in a file the settings took.
    try:
        config = read_stack_config(stack_file)
    except (OSError, SettingsError):
        return "us-east-1"
    return str(config.get("aws:region") or "us-east-1")
