"""The local stack's HTTP tiers in process: create_app with a stand-in model container and stand-in Lambda
sandboxes, so the gateway's and the runtime's own answers (the event the function gets, limits, CORS, the Host
guard, the site's headers) are checked in milliseconds, without a model or a fork server."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime
import errno
import gzip
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import h11
import httpx
import pytest
import uvicorn
from starlette.requests import Request
from uvicorn.server import ServerState

from components import policies
from components.command_line import port_number
from components.policies import PERMISSIONS_POLICY, cors_allowed_origins
from components.settings import Settings, load_stack_file
from local import gateway, server
from local import runtime as runtime_module
from local.arguments import host_address, parse_args
from local.runtime import ContainerResponse, ContainerUnavailable, Faults, SageMakerRuntime
from local.sandboxes import LambdaTimeout, SandboxStartError
from local.server import StackInfo, create_app, names_this_machine
from tests.ci import require_ipv6_loopback
from tests.conftest import ROOT, names_of
from tests.waiting import HANG_GUARD_S, wait_until

BASE_URL = "http://127.0.0.1:8000"
CLIENT = ("192.0.2.7", 4321)  # the peer address the app sees
SITE_ORIGIN = BASE_URL
ENDPOINT = "mobilenet-local"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))


class RaisedBySubmit(NamedTuple):
    """A `Sandboxes.result`: submit() itself raises `error`, as LambdaSandboxes does when no sandbox can start."""

    error: BaseException


class Sandboxes:
    """Stands in for LambdaSandboxes: records each event and answers with `result` (the event itself, echoed,
    by default; an exception to raise; RaisedBySubmit; or NEVER for an invocation that does not finish)."""

    NEVER = object()
    CANCELLED = object()

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.contexts: list = []
        self.crashes: list[bool] = []
        self.result: object = None

    def submit(self, event: dict, context, *, crash: bool = False) -> Future:
        self.events.append(event)
        self.contexts.append(context)
        self.crashes.append(crash)
        if isinstance(self.result, RaisedBySubmit):
            raise self.result.error
        future: Future = Future()
        if self.result is self.CANCELLED:
            future.cancel()
        elif isinstance(self.result, BaseException):
            future.set_exception(self.result)
        elif self.result is not self.NEVER:
            echo = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
            future.set_result(self.result or echo)
        return future


class Container:
    """Stands in for the model container: answers `reply` (or raises it) and records what it was given."""

    def __init__(self) -> None:
        self.reply: ContainerResponse | Exception = ContainerResponse(200, "application/json", b'{"ok": true}')
        self.seen: list[tuple[bytes, str, str]] = []

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        self.seen.append((body, content_type, accept))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def close(self) -> None:
        pass


class InProcessStack:
    def __init__(
        self,
        *,
        any_interface: bool = False,
        max_payload_bytes: int = 64,
        base_url: str = BASE_URL,
        fault_injection: bool = False,
        client: tuple[str, int] = CLIENT,
        stage_throttle: gateway.StageThrottle | None = None,
        settings: Settings | None = None,
        drain: server.Drain | None = None,
        endpoint_name: str = ENDPOINT,
    ) -> None:
        self.client = client
        info = StackInfo(
            base_url=base_url,
            endpoint_name=endpoint_name,
            settings=settings or load_stack_file(ROOT / "Pulumi.dev.yaml"),
            allowed_origins=cors_allowed_origins([BASE_URL, "http://localhost:8000"], []),
            any_interface=any_interface,
        )
        self.container = Container()
        self.runtime = SageMakerRuntime(self.container, endpoint_name, 2, max_payload_bytes=max_payload_bytes)
        self.sandboxes = Sandboxes()
        self.app = create_app(
            info,
            self.runtime,
            self.sandboxes,
            fault_injection=fault_injection,
            stage_throttle=stage_throttle,
            drain=drain,
        )

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def predict(self, body=JPEG, headers=(), **kwargs) -> httpx.Response:
        return self.request("POST", "/predict", content=body, headers=with_type(headers), **kwargs)

    def invoke(self, body, headers=(), **kwargs) -> httpx.Response:
        path = f"/endpoints/{ENDPOINT}/invocations"
        return self.request("POST", path, content=body, headers=with_type(headers), **kwargs)


def tempfile_in(directory: Path, **names):
    """The tempfile module as local.runtime looks it up, its TMPDIR `directory` and `names` replaced: tempfile's own
    tempdir (or mkdtemp) set for the process would move (or fail) every other thread's temporary files too."""
    import functools
    import tempfile

    own = {"mkdtemp": functools.partial(tempfile.mkdtemp, dir=directory), "gettempdir": lambda: str(directory)}
    return SimpleNamespace(**{**vars(tempfile), **own, **names})


def with_type(headers) -> list[tuple[str, str]]:
    """`headers` (a dict or pairs, repeats allowed) with Content-Type image/jpeg unless they name one."""
    pairs = list(headers.items() if isinstance(headers, dict) else headers)
    return pairs if any(k.lower() == "content-type" for k, _ in pairs) else [("content-type", "image/jpeg"), *pairs]


@pytest.fixture
def tiers():
    own = InProcessStack()
    yield own
    own.runtime.close()


def asgi(app, method: str, path: str, headers: list[tuple[bytes, bytes]], **scope: Any) -> list[dict]:
    """The messages `app` sends for one request with exactly `headers` and an empty body; `scope`: http_scope's
    other arguments."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(http_scope(method, path, headers, **scope), receive, send))
    return sent


def http_scope(
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    query: bytes = b"",
    http_version: str = "1.1",
    scheme: str = "http",
    server: tuple[str, int] | None = ("127.0.0.1", 8000),
) -> dict:
    """An ASGI HTTP scope as uvicorn gives one, from this test module's client (no `server` when it is None)."""
    return {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": CLIENT,
        **({} if server is None else {"server": server}),
    }


async def stalled_body():
    """A body whose first bytes arrive and whose rest never does."""
    yield b"\xff\xd8\xff"
    await asyncio.Event().wait()


# --- the API tier: what the function is handed ------------------------------------------------------------------
def test_the_function_gets_the_request_as_an_http_api_event(tiers):
    response = tiers.predict(
        headers=[
            ("content-type", "image/jpeg"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("User-Agent", "probe/1.0"),
            ("Cookie", "a=1; b=2"),
        ],
        params=[("top_k", "3"), ("flag", ""), ("x", "1"), ("x", "2")],
    )
    assert response.status_code == 200, response.text
    [event] = tiers.sandboxes.events
    assert response.json() == event
    assert event["routeKey"] == "POST /predict" and event["rawPath"] == "/predict"
    assert event["rawQueryString"] == "top_k=3&flag=&x=1&x=2"
    assert event["queryStringParameters"] == {"top_k": "3", "flag": "", "x": "1,2"}
    assert event["headers"]["x-multi"] == "a,b" and event["headers"]["host"] == "127.0.0.1:8000"
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert event["headers"]["content-length"] == str(len(JPEG))  # every header the client sent, the last one too
    forwarding = ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")
    assert [event["headers"][name] for name in forwarding] == [CLIENT[0], "8000", "http"]
    assert event["headers"]["x-amzn-trace-id"].startswith("Root=1-")
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/predict",
        "protocol": "HTTP/1.1",
        "sourceIp": CLIENT[0],
        "userAgent": "probe/1.0",
    }
    assert context["routeKey"] == "POST /predict" and context["domainName"] == "127.0.0.1:8000"
    # The id the client sees is the one the function logs as its correlation id.
    assert response.headers["apigw-requestid"] == context["requestId"]
    assert event["isBase64Encoded"] is True


@pytest.mark.timeout(60)  # without its own deadline the request would wait for ever
def test_an_integration_that_does_not_answer_in_time_is_api_gateways_503(tiers, monkeypatch):
    monkeypatch.setattr(gateway, "INTEGRATION_TIMEOUT_S", 0.05)
    tiers.sandboxes.result = Sandboxes.NEVER
    response = tiers.predict()
    assert response.status_code == 503 and response.json() == {"message": "Service Unavailable"}


@pytest.mark.timeout(60)
def test_an_integration_that_does_not_answer_in_time_is_logged_with_the_request_id(tiers, monkeypatch, caplog):
    # The handler is still running (it logs nothing yet, and its own timeout ends it unobserved): without this line
    # the client's 503 left no trace in the log at all.
    monkeypatch.setattr(gateway, "INTEGRATION_TIMEOUT_S", 0.05)
    tiers.sandboxes.result = Sandboxes.NEVER
    with caplog.at_level(logging.ERROR, logger="local"):
        response = tiers.predict()
    assert response.status_code == 503
    (record,) = [r for r in caplog.records if r.name == "local"]
    message = record.getMessage()
    assert record.exc_info is None and "\n" not in message, message
    assert message.startswith(f"request {response.headers['apigw-requestid']} (Lambda RequestId "), message
    assert "503" in message, message


class WaitsRecorded:
    """Stands in for local.server's own name for asyncio: each wait_for's timeout is recorded, the rest is asyncio's."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def __getattr__(self, name: str):
        return getattr(asyncio, name)

    async def wait_for(self, awaitable, timeout):
        self.timeouts.append(timeout)
        return await asyncio.wait_for(awaitable, timeout)


@pytest.mark.timeout(60)
def test_the_function_is_waited_for_the_integrations_timeout_and_no_longer(tiers, monkeypatch):
    """The two 503 tests above answer as soon as the (patched) integration timeout passes, but only see that it did:
    a wait one second longer than it answered the same. The wait is the integration's timeout, answered or not."""
    waits = WaitsRecorded()
    monkeypatch.setattr(server, "asyncio", waits)
    deployed = gateway.INTEGRATION_TIMEOUT_S
    assert tiers.predict().status_code == 200
    monkeypatch.setattr(gateway, "INTEGRATION_TIMEOUT_S", 0.05)
    tiers.sandboxes.result = Sandboxes.NEVER
    assert tiers.predict().status_code == 503
    assert waits.timeouts == [deployed, 0.05]


@pytest.mark.parametrize(
    "failure",
    [
        BrokenProcessPool("the sandbox died"),
        RuntimeError("handler bug"),
        LambdaTimeout("Task timed out after 29.00 seconds"),
        SandboxStartError("a Lambda sandbox could not start: its fork server had died"),
    ],
    ids=["sandbox_died", "raised", "timed_out", "no_sandbox"],
)
def test_a_function_that_dies_or_raises_is_api_gateways_500_logged_with_the_request_id_the_client_got(
    tiers, failure, caplog
):
    tiers.sandboxes.result = failure
    with caplog.at_level(logging.ERROR, logger="local"):
        response = tiers.predict()
    assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}
    assert response.headers["content-type"] == "application/json" and response.headers["apigw-requestid"]
    # The handler logs nothing for an invocation that dies, so this line is the only one of that request at the
    # default --log-level warning (the access log is INFO): with the apigw-requestid the client has and, as Lambda's
    # own lines do, Lambda's request id.
    (record,) = [r for r in caplog.records if r.name == "local"]
    first_line = record.getMessage().splitlines()[0]
    assert f"request {response.headers['apigw-requestid']} " in first_line, first_line
    assert re.search(r"RequestId [0-9a-f]{8}-[0-9a-f]{4}-", first_line), first_line


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (BrokenProcessPool("the sandbox died"), "exited"),
        (LambdaTimeout("Task timed out after 29.00 seconds"), "timed out"),
        (SandboxStartError("a Lambda sandbox could not start: its fork server had died"), "could not start"),
        (
            RaisedBySubmit(
                SandboxStartError(
                    "a Lambda sandbox could not start: the OS refused it (OSError: [Errno 24] Too many open files):"
                    " raise the open-file limit (ulimit -n) before starting the stack"
                )
            ),
            "ulimit -n",
        ),
    ],
    ids=["sandbox_died", "timed_out", "no_sandbox", "no_sandbox_at_submit"],
)
def test_a_function_that_dies_times_out_or_gets_no_sandbox_is_logged_in_one_line_without_a_traceback(
    tiers, failure, says, caplog
):
    # The function's own failure, or no sandbox to run it in, not a bug of the stack: one line saying what happened,
    # as Lambda's log does ("Task timed out"), not the traceback logged for a handler that raised.
    tiers.sandboxes.result = failure
    with caplog.at_level(logging.ERROR, logger="local"):
        assert tiers.predict().status_code == 500
    (record,) = [r for r in caplog.records if r.name == "local"]
    assert record.exc_info is None and "\n" not in record.getMessage(), record.getMessage()
    assert says in record.getMessage() and "handler" not in record.getMessage()


# --- the API stage's access log ---------------------------------------------------------------------------------
def access_lines(caplog) -> list[dict]:
    """The access log lines logged so far (on `local.access`, each at INFO), parsed."""
    records = [r for r in caplog.records if r.name == "local.access"]
    assert all(r.levelno == logging.INFO for r in records), records
    return [json.loads(r.getMessage()) for r in records]


def function_error(message: str) -> str:
    return (
        f"The Lambda function returned the following error: {message}. Check your Lambda function code and try again."
    )


def test_an_answer_of_the_function_logs_the_deployed_access_line_with_what_the_client_got(tiers, monkeypatch, caplog):
    # A build_event that took its own time, not the request's, would date the event to 1970 here; and one given the
    # server's clock as it builds the event, or a line dated as it is logged, not at the arrival (AccessRecord's),
    # would date that one.
    monkeypatch.setattr(gateway, "time", SimpleNamespace(time=lambda: 0.0))
    monkeypatch.setattr(server, "time", SimpleNamespace(time=lambda: 0.0, perf_counter=time.perf_counter))
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.predict(headers={"origin": BASE_URL})
    assert response.status_code == 200, response.text
    [line] = access_lines(caplog)
    assert list(line) == list(json.loads(policies.access_log_format()))  # the deployed keys, in the deployed order
    [event], [context] = tiers.sandboxes.events, tiers.sandboxes.contexts
    assert line == {
        "requestId": response.headers["apigw-requestid"],
        "ip": CLIENT[0],
        "requestTime": event["requestContext"]["time"],
        "httpMethod": "POST",
        "routeKey": "POST /predict",
        "status": "200",
        "protocol": "HTTP/1.1",
        "responseLength": str(len(response.content)),
        "integrationErrorMessage": "-",
        "integrationLatency": line["integrationLatency"],
        "integrationRequestId": context.aws_request_id,
    }
    assert line["integrationLatency"].isdigit(), line
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", line["requestTime"]), line
    assert not line["requestTime"].startswith("01/Jan/1970"), line


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "route_key"),
    [
        ("POST", "/nope", {}, 404, "-"),
        ("GET", "/predict", {}, 404, "-"),  # the route is POST /predict only
        ("HEAD", "/predict", {}, 404, "-"),  # HEAD's answer has no body: none of it is sent
        ("POST", "/predict", {"content-type": "image/jpeg"}, 413, "POST /predict"),  # over the (patched) body limit
        ("OPTIONS", "/predict", {"origin": BASE_URL, "access-control-request-method": "POST"}, 204, "-"),
    ],
    ids=["unknown_path", "other_method", "head", "too_large", "preflight"],
)
def test_the_gateways_own_answers_log_their_status_and_no_integration(
    tiers, monkeypatch, caplog, method, path, headers, status, route_key
):
    monkeypatch.setattr(gateway, "MAX_BODY_BYTES", 8)
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.request(method, path, headers=headers, content=JPEG if method == "POST" else None)
    assert response.status_code == status, response.text
    assert_the_gateways_own_line(caplog, response, method, route_key)
    assert tiers.sandboxes.events == []


def assert_the_gateways_own_line(caplog, response: httpx.Response, method: str, route_key: str) -> None:
    """The one access line logged is that of `response`, an answer of the gateway's own: its apigw-requestid, method,
    `route_key`, status and the body bytes the client got (none for HEAD), and `-` for the integration's three."""
    [line] = access_lines(caplog)
    assert line["requestId"] == response.headers["apigw-requestid"]
    assert (line["httpMethod"], line["routeKey"], line["status"]) == (method, route_key, str(response.status_code))
    assert line["responseLength"] == str(len(response.content) if method != "HEAD" else 0)
    integration = ("integrationErrorMessage", "integrationLatency", "integrationRequestId")
    assert [line[key] for key in integration] == ["-", "-", "-"], line


@pytest.mark.parametrize("status", [408, 429, 431], ids=["body_too_slow", "throttled", "headers_too_large"])
def test_the_gateways_refusals_of_a_predict_each_log_one_line_with_the_route_and_no_integration(
    monkeypatch, caplog, status
):
    """The 408, 429 and 431 share the 413's refused() but each has a check of its own before it: each logs its own
    status on the POST /predict route (the route was matched: AWS throttles a stage per route), and no function ran."""
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.05)  # the 408's body stalls past it; the others' arrive whole
    # The 429's: a bucket of one token, never refilled, which a request before the refused one takes.
    throttle = gateway.StageThrottle(rate=1, burst=1, clock=lambda: 0.0) if status == 429 else None
    own = InProcessStack(stage_throttle=throttle)
    try:
        if throttle is not None:
            assert own.predict().status_code == 200
        invoked = len(own.sandboxes.events)
        headers = {"x-big": "a" * (gateway.MAX_HEADER_BYTES + 1)} if status == 431 else {}
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="local.access"):
            response = own.predict(body=stalled_body() if status == 408 else JPEG, headers=headers)
        assert response.status_code == status and set(response.json()) == {"message"}, response.text
        assert_the_gateways_own_line(caplog, response, "POST", "POST /predict")
        assert len(own.sandboxes.events) == invoked
    finally:
        own.runtime.close()


def test_an_injected_sandbox_crash_logs_lambdas_runtime_exit_as_the_integrations_error(tiers, caplog):
    tiers.runtime.faults.sandbox_crash = 1
    tiers.sandboxes.result = BrokenProcessPool("the sandbox died")  # what the killed sandbox's pool raises
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.predict()
    assert response.status_code == 500
    [line] = access_lines(caplog)
    lambda_request_id = tiers.sandboxes.contexts[0].aws_request_id
    assert (line["requestId"], line["status"]) == (response.headers["apigw-requestid"], "500")
    assert line["integrationRequestId"] == lambda_request_id and line["integrationLatency"].isdigit()
    assert line["integrationErrorMessage"] == function_error(
        f"RequestId: {lambda_request_id} Error: Runtime exited with error: signal: killed"
    )


@pytest.mark.parametrize(
    ("failure", "status", "error"),
    [
        (
            BrokenProcessPool("the sandbox died"),
            500,
            "RequestId: {id} Error: Runtime exited without providing a reason",
        ),
        (
            LambdaTimeout("Task timed out after 29.00 seconds"),
            500,
            "RequestId: {id} Error: Task timed out after 29.00 seconds",
        ),
        (RuntimeError("handler bug"), 500, "handler bug"),
        (Sandboxes.NEVER, 503, None),
        (SandboxStartError("a Lambda sandbox could not start: its fork server had died"), 500, None),
    ],
    ids=["sandbox_died", "timed_out", "raised", "integration_timeout", "no_sandbox"],
)
def test_a_failed_invocation_logs_the_integrations_error(tiers, monkeypatch, caplog, failure, status, error):
    monkeypatch.setattr(gateway, "INTEGRATION_TIMEOUT_S", 0.05)
    tiers.sandboxes.result = failure
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.predict()
    assert response.status_code == status
    [line] = access_lines(caplog)
    lambda_request_id = tiers.sandboxes.contexts[0].aws_request_id
    assert line["status"] == str(status) and line["integrationRequestId"] == lambda_request_id
    if status == 503:  # no text is documented for an HTTP API's integration timeout: a REST API's
        assert line["integrationErrorMessage"] == "Endpoint request timed out"
    elif error is None:  # no sandbox: the local reason
        assert line["integrationErrorMessage"] == str(failure)
    else:
        assert line["integrationErrorMessage"] == function_error(error.format(id=lambda_request_id))


def test_a_result_whose_body_is_not_text_is_api_gateways_500_with_its_reason_in_the_access_log(tiers, caplog):
    """The function answered, in a shape API Gateway refuses: its 500, and the access log says why
    (aws/aws-lambda-go#373), not that the function raised; no traceback, as nothing raised in the function."""
    tiers.sandboxes.result = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": {"a": 1}}
    with caplog.at_level(logging.INFO):
        response = tiers.predict()
    assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}, response.text
    [line] = access_lines(caplog)
    assert (line["status"], line["integrationRequestId"]) == ("500", tiers.sandboxes.contexts[0].aws_request_id)
    assert line["integrationErrorMessage"] == (
        "The response from the Lambda function doesn't match the format that API Gateway expects. "
        'Lambda body contains the wrong type for field "body"'
    )
    assert not [r for r in caplog.records if r.exc_info], "a traceback for an answer that raised nothing"


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "ok", "body": "{}"},
        {"statusCode": 200, "headers": ["content-type: application/json"], "body": "{}"},
        {"statusCode": 200, "isBase64Encoded": True, "body": "aGk"},  # no padding: binascii.Error
    ],
    ids=["status-not-a-number", "headers-a-list", "base64-that-is-not"],
)
def test_any_result_api_gateway_refuses_is_its_500_logged_as_a_refused_answer_not_a_raise(tiers, caplog, result):
    """As for a body that is no string (above): the function returned, so nothing raised in it. Its access line
    gave "The Lambda function returned the following error: Incorrect padding. ...", the words of a function error
    (the handler raised), and the server's line said "the Lambda handler raised" over a traceback of the gateway's
    own code. HTTP API's words for an answer it cannot use start "The response from the Lambda function doesn't
    match the format that API Gateway expects" (aws/aws-lambda-go#373; Troubleshooting issues with HTTP API Lambda
    integrations)."""
    tiers.sandboxes.result = result
    with caplog.at_level(logging.INFO):
        response = tiers.predict()
    assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}, response.text
    [line] = access_lines(caplog)
    assert line["integrationErrorMessage"].startswith(
        "The response from the Lambda function doesn't match the format that API Gateway expects."
    ), line
    assert not [r for r in caplog.records if r.exc_info], "a traceback for an answer that raised nothing"


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "headers": {"x-when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}, "body": "{}"},
        {"statusCode": 200, "body": b"{}"},
        {"statusCode": 200, "cookies": {"a=1"}, "body": "{}"},
    ],
    ids=["a-datetime-header", "a-bytes-body", "cookies-a-set"],
)
def test_a_result_json_cannot_carry_fails_the_invocation_as_lambdas_runtime_does(tiers, caplog, result):
    """Lambda's Python runtime serialises what the handler returns, and one it cannot is a function error:
    `raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)))`
    (aws/aws-lambda-python-runtime-interface-client, awslambdaric/lambda_runtime_marshaller.py), so API Gateway gets
    no result at all, answers its 500, and logs Lambda's error. A handler change returning a datetime worked here."""
    tiers.sandboxes.result = result
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.predict()
    assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}, response.text
    [line] = access_lines(caplog)
    assert line["integrationErrorMessage"].startswith(
        "The Lambda function returned the following error: Unable to marshal response: "
    ), line


def answer_to_a_predict(app) -> bytes:
    """What a `POST /predict` (one small body, `connection: close`) gets off the wire from `app` as served."""
    head = "POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\ncontent-length: 3\r\n"
    with served(app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode() + b"connection: close\r\n\r\n" + JPEG[:3])
        return received_until_closed(conn)


@pytest.mark.parametrize("status", [0, 99, 600, 1000])
def test_a_result_whose_status_is_no_http_status_is_api_gateways_500_not_a_closed_connection(tiers, status):
    """RFC 9110 15: "All valid status codes are within the range of 100 to 599, inclusive", and RFC 9112 4 writes
    one as three digits. A result with one that has no three digits is one API Gateway cannot answer with, so its 500
    {"message":"Internal Server Error"} (Troubleshooting issues with HTTP API Lambda integrations), as for a body
    that is no string: the README's rule, every bad input gets a clear error, never a crash. What AWS does with 600
    is not documented: that 500, or 600 passed on. The client got b"": curl's "Empty reply from server"."""
    tiers.sandboxes.result = {"statusCode": status, "headers": {"content-type": "application/json"}, "body": "{}"}
    raw = answer_to_a_predict(tiers.app)
    assert raw, "the connection closed without an answer"
    answer, body = parsed_answer(raw)
    assert dict(answer.headers)[b"apigw-requestid"]
    if status == 600 and answer.status_code == 600:
        return
    assert answer.status_code == 500 and json.loads(body) == {"message": "Internal Server Error"}


@pytest.mark.parametrize(
    "result",
    [
        {"headers": {"x-note": "a\r\nx-injected: 1"}},
        {"headers": {"x note": "1"}},
        {"headers": {"content-length": "3"}},
        {"cookies": [1]},
    ],
    ids=["crlf-in-a-value", "space-in-a-name", "a-content-length-not-the-bodys", "a-cookie-that-is-no-string"],
)
def test_a_result_whose_headers_http_cannot_carry_still_gets_the_client_one_whole_answer(tiers, result):
    """RFC 9110 5.5: a field value with CR or LF is invalid, and 5.1 allows only a token as a name; RFC 9112 6.3: a
    message whose Content-Length values differ is one no recipient may read. API Gateway frames its own answers, and
    one it cannot make of a result is its 500 {"message":"Internal Server Error"} with its apigw-requestid; what it
    does with such a header is not documented (dropped, or the 500). Either way the client gets one whole answer,
    never b"" nor a plain-text 500 (the README: every bad input a clear error, never a crash)."""
    tiers.sandboxes.result = {"statusCode": 200, "body": "hello world", **result}
    raw = answer_to_a_predict(tiers.app)
    assert raw, "the connection closed without an answer"
    answer, body = parsed_answer(raw)
    headers = dict(answer.headers)
    assert headers.get(b"apigw-requestid") and b"x-injected" not in headers
    assert headers.get(b"content-length") == str(len(body)).encode()
    if answer.status_code == 200:  # the header dropped
        assert body == b"hello world"
    else:
        assert answer.status_code == 500 and json.loads(body) == {"message": "Internal Server Error"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/script.js"),
        ("HEAD", "/style.css"),
        ("GET", "/config.js"),
        ("GET", "/ping"),
        ("POST", f"/endpoints/{ENDPOINT}/invocations"),
    ],
)
def test_the_sites_files_and_the_runtime_tier_log_no_access_line(tiers, caplog, method, path):
    """The page's files are CloudFront's in the cloud (whose logs are off), and the runtime tier is SageMaker's: no
    API Gateway line for them."""
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.request(
            method, path, headers={"content-type": "image/jpeg"}, content=b"x" if method == "POST" else None
        )
    assert response.status_code == 200, response.text
    assert "apigw-requestid" not in response.headers
    assert access_lines(caplog) == []


def test_the_servers_own_400_for_a_garbled_body_logs_no_access_line(tiers, caplog):
    """README: no access line for "the server's own 400". A /predict whose head parsed and whose chunked body then
    did not: the client gets the server's JSON 400 and nothing else."""
    raw = (
        b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        b"transfer-encoding: chunked\r\n\r\nnot a chunk size\r\n"
    )
    # served() stops the server on the way out, which waits for the app to end: its line, if any, is logged by then.
    with (
        caplog.at_level(logging.INFO, logger="local.access"),
        served(tiers.app) as address,
        socket.create_connection(address, timeout=HANG_GUARD_S) as conn,
    ):
        conn.sendall(raw)
        answer, body = parsed_answer(received_until_closed(conn))
    assert answer.status_code == 400 and json.loads(body) == {"message": "Bad Request: not a valid HTTP/1.1 request"}
    assert tiers.sandboxes.events == []
    assert access_lines(caplog) == []


def test_a_predict_whose_client_hangs_up_mid_body_is_not_logged_as_a_413_it_was_sent(tiers, caplog):
    """README: responseLength is "the body bytes sent". A client gone before its body arrived was sent nothing,
    and refused nothing for its size."""
    head = b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\ncontent-length: 20\r\n\r\n"
    with (
        caplog.at_level(logging.INFO, logger="local.access"),
        served(tiers.app) as address,
        socket.create_connection(address, timeout=HANG_GUARD_S) as conn,
    ):
        conn.sendall(head + JPEG[:3])
        conn.shutdown(socket.SHUT_WR)
        assert received_until_closed(conn) == b"", "nobody is left to answer"
    assert tiers.sandboxes.events == []
    lines = access_lines(caplog)
    assert all(line["responseLength"] == "0" for line in lines), lines
    assert "413" not in [line["status"] for line in lines], "logged as a body over the limit"


def test_a_predict_whose_client_hangs_up_mid_body_during_a_stop_logs_no_access_line(caplog):
    """README: no access line for "a POST /predict whose client hung up before its body arrived (nobody is left to
    answer)". At a stop too: its 503 went nowhere, and a line counting its bytes in responseLength said it was sent."""
    drain = server.Drain()
    stack = InProcessStack(drain=drain)
    drain.stopping = True
    pending = [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:  # uvicorn's send drops what it is given once the client is gone
        pass

    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg"), (b"content-length", b"20")]
    try:
        with caplog.at_level(logging.INFO, logger="local.access"):
            asyncio.run(stack.app(http_scope("POST", "/predict", headers), receive, send))
    finally:
        stack.runtime.close()
    assert stack.sandboxes.events == []
    assert access_lines(caplog) == []


def cut_short(app, path: str, body: bytes, started: Callable[[], object]) -> list[dict]:
    """What the app sends for a POST to `path` it is still working on (`started` true) when the stop cancels it."""
    sent: list[dict] = []

    async def run() -> None:
        arrived = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if arrived:
                return arrived.pop()
            await asyncio.Event().wait()

        async def send(message) -> None:
            sent.append(message)

        scope = http_scope("POST", path, [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg")])
        request = asyncio.create_task(app(scope, receive, send))
        await wait_until_async(started)
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request

    asyncio.run(run())
    return sent


def test_a_request_cut_short_at_a_stop_logs_the_gateways_503(tiers, caplog):
    """ShutdownGuard's 503 is the gateway's answer too: logged, with the route and no integration."""
    tiers.sandboxes.result = Sandboxes.NEVER
    with caplog.at_level(logging.INFO, logger="local.access"):
        sent = cut_short(tiers.app, "/predict", JPEG, lambda: tiers.sandboxes.events)
    assert sent[0]["status"] == 503
    [line] = access_lines(caplog)
    assert (line["status"], line["routeKey"], line["integrationRequestId"]) == ("503", "POST /predict", "-")
    assert line["requestId"] == dict(sent[0]["headers"])[b"apigw-requestid"].decode()


def test_a_runtime_call_cut_short_at_a_stop_is_not_logged_as_the_gateways_answer(tiers, caplog):
    """The README's access log: "No line for ... the runtime tier"; its SageMaker Runtime tier: "Every answer
    carries an x-amzn-RequestId". A call cut short at a stop is no answer of API Gateway's: ShutdownGuard gave it the
    gateway's 503 and apigw-requestid, and a stop cutting short 2 /predict requests logged 4 lines, 2 of them the
    handlers' InvokeEndpoint calls (POST, routeKey -). It gets SageMaker's own 503 now."""
    tiers.runtime.faults.delay_s = 3600.0  # the model's answer is still pending when the call is cancelled
    path = f"/endpoints/{ENDPOINT}/invocations"
    with caplog.at_level(logging.INFO, logger="local.access"):
        # Under the stand-in container's 64 B cap.
        sent = cut_short(tiers.app, path, JPEG[:16], lambda: tiers.runtime.in_flight)
    assert access_lines(caplog) == []
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503 and b"apigw-requestid" not in headers, headers
    assert headers[b"x-amzn-errortype"] == b"ServiceUnavailable" and b"x-amzn-requestid" in headers, headers
    assert json.loads(body["body"]) == {"message": "The service is unavailable. Please try again later."}


@pytest.mark.parametrize(
    ("path", "gateways"),
    [("/predict", True), (f"/endpoints/{ENDPOINT}/invocations", False), ("/__local/faults", False)],
)
def test_a_request_cut_short_at_a_stop_is_answered_in_its_tiers_words(path, gateways):
    status, raw, body = server.cut_short_answer(path)
    headers = {name.decode(): value.decode() for name, value in raw}
    assert status == 503
    assert ("apigw-requestid" in headers) is gateways  # what the access log counts as API Gateway's answer
    assert ("x-amzn-requestid" in headers) is (path.startswith("/endpoints/"))
    assert json.loads(body)["message"] == {
        "/predict": "Service Unavailable",
        "/__local/faults": server.STOPPING_MESSAGE,
    }.get(path, "The service is unavailable. Please try again later.")


def test_an_empty_endpoint_name_is_the_runtime_tiers_call_when_cut_short_too(tiers):
    """/endpoints//invocations is served by the runtime tier (SageMaker's ValidationError, with its x-amzn-RequestId),
    so a call there still reading its body at a stop is cut short in SageMaker's words, not the gateway's."""
    path = "/endpoints//invocations"
    response = tiers.request("POST", path, content=b"x", headers=with_type({}))
    assert response.status_code == 400 and response.headers.get("x-amzn-errortype") == "ValidationError"
    assert response.headers.get("x-amzn-requestid") and "apigw-requestid" not in response.headers
    _, raw, _ = server.cut_short_answer(path)
    headers = {name.decode(): value.decode() for name, value in raw}
    assert "x-amzn-requestid" in headers and "apigw-requestid" not in headers, headers


@pytest.mark.parametrize("level", [logging.WARNING, logging.ERROR])
def test_above_info_the_access_line_is_not_even_built(tiers, monkeypatch, caplog, level):
    """The access log is INFO: at the default --log-level warning (or higher) no line is logged, and none is built
    either, so a request costs nothing for a log nobody reads (a guard on WARNING logged nothing more, and built a
    line for every request at warning)."""
    built: list[dict] = []
    monkeypatch.setattr(gateway, "access_log_line", lambda **fields: built.append(fields) or "{}")
    with caplog.at_level(level, logger="local.access"):
        assert tiers.predict().status_code == 200
    assert built == [] and access_lines(caplog) == []
    with caplog.at_level(logging.INFO, logger="local.access"):
        assert tiers.predict().status_code == 200
    assert len(built) == 1


def test_a_request_without_a_peer_address_logs_the_events_source_ip(tiers, caplog):
    """$context.identity.sourceIp is one value: an ASGI server that gives no client (a Unix socket, a peer gone before
    it was asked) gets the event's stand-in address in the access line too, not "-" beside the event's."""
    scope = http_scope("POST", "/predict", [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg")])
    del scope["client"]
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": JPEG, "more_body": False}

    async def send(message) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO, logger="local.access"):
        asyncio.run(tiers.app(scope, receive, send))
    assert sent[0]["status"] == 200
    [event], [line] = tiers.sandboxes.events, access_lines(caplog)
    assert line["ip"] == event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"


async def wait_until_async(condition, timeout_s: float = HANG_GUARD_S) -> None:
    """Yield to the event loop until `condition()` holds (a hang guard, not a timing)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0)


def test_a_body_that_stalls_is_a_json_408_on_both_tiers(tiers, monkeypatch):
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.05)
    api = tiers.predict(body=stalled_body())
    assert api.status_code == 408 and api.json() == {"message": "Request Timeout"}
    runtime = tiers.invoke(stalled_body())
    assert runtime.status_code == 408 and runtime.headers["x-amzn-errortype"] == "RequestTimeoutException"
    assert tiers.sandboxes.events == [] and tiers.container.seen == []


@contextlib.contextmanager
def served(app) -> Iterator[tuple[str, int]]:
    """`app` served as `python -m local` serves it (server.uvicorn_config), at the loopback address yielded."""
    sock = server.bind("127.0.0.1", 0)
    instance = uvicorn.Server(server.uvicorn_config(app, "error"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: instance.started or not thread.is_alive(), "the test server started")
        assert instance.started
        yield sock.getsockname()[:2]
    finally:
        instance.should_exit = True
        thread.join(timeout=HANG_GUARD_S)


def read_answer(conn: socket.socket) -> bytes:
    """One whole answer (its head and Content-Length bytes of body) as it came off the connection."""
    conn.settimeout(HANG_GUARD_S)
    data = b""
    while True:
        head, done, body = data.partition(b"\r\n\r\n")
        if done:
            length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
            if len(body) >= length:
                return data
        chunk = conn.recv(65536)
        assert chunk, f"closed before the answer was whole: {data!r}"
        data += chunk


def received_until_closed(conn: socket.socket) -> bytes:
    """All the server sends until it closes the connection (recv gives b"", or a reset)."""
    conn.settimeout(HANG_GUARD_S)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("path", ["/predict", f"/endpoints/{ENDPOINT}/invocations"])
def test_a_body_that_stalls_is_answered_408_and_its_connection_closed(tiers, monkeypatch, path):
    """RFC 9110 15.5.9: a server that gives up on a body closes the connection ("SHOULD send the close connection
    option"). It stayed open: it read the rest of the late body, then served whatever the client sent next on it."""
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.05)
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\ncontent-length: 20\r\n\r\n"
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode() + JPEG[:3])
        answer, body = parsed_answer(read_answer(conn))
        assert answer.status_code == 408, body
        assert (b"connection", b"close") in answer.headers
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server may have closed already
            conn.sendall(JPEG[3:20] + head.encode() + JPEG[:20])  # the late rest, then a request of its own
        assert received_until_closed(conn) == b"", "the connection served on after the 408"
    assert tiers.sandboxes.events == [] and tiers.container.seen == []


@pytest.mark.parametrize(("path", "status"), [("/predict", 413), (f"/endpoints/{ENDPOINT}/invocations", 400)])
@pytest.mark.parametrize("declared", [True, False], ids=["declared-too-large", "chunked-past-the-limit"])
def test_a_body_over_the_limit_is_refused_and_its_connection_closed(tiers, monkeypatch, path, status, declared):
    """Refused mid-body, the rest of it is still on its way: kept open, the connection would read and drop all of it
    (however large) before serving what the client sent next. RFC 9110 15.5.14 lets a 413 close the connection
    (SageMaker's runtime says 400 ValidationError for a payload over its limit)."""
    monkeypatch.setattr(gateway, "MAX_BODY_BYTES", 16)
    monkeypatch.setattr(tiers.runtime, "max_payload_bytes", 16)
    length = "content-length: 40" if declared else "transfer-encoding: chunked"
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n{length}\r\n\r\n"
    first = JPEG[:20] if declared else b"14\r\n" + JPEG[:20] + b"\r\n"
    rest = JPEG[20:40] if declared else b"14\r\n" + JPEG[20:40] + b"\r\n0\r\n\r\n"
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode() + first)
        answer, body = parsed_answer(read_answer(conn))
        assert answer.status_code == status, body
        assert (b"connection", b"close") in answer.headers
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server may have closed already
            conn.sendall(rest + head.encode() + first)  # the rest, then a request of its own
        assert received_until_closed(conn) == b"", "the connection served on after the refusal"
    assert tiers.sandboxes.events == [] and tiers.container.seen == []


@pytest.mark.parametrize("path", ["/predict", f"/endpoints/{ENDPOINT}/invocations", "/index.html"])
@pytest.mark.parametrize("both", [True, False], ids=["content-length-and-chunked", "chunked-only"])
def test_a_request_framed_by_both_content_length_and_chunked_is_answered_then_its_connection_closed(tiers, path, both):
    """RFC 9112 6.3: such a request is framed by its Transfer-Encoding, and the server MUST close the connection
    after answering it, as a proxy in front that framed it by its Content-Length would take the rest of the chunked
    body for a request of its own (request smuggling). h11 frames it by the chunks but kept the connection open, and
    served the request that followed on it. One framed by its chunks alone keeps it."""
    framing = ("content-length: 4\r\n" if both else "") + "transfer-encoding: chunked\r\n"
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n{framing}\r\n"
    payload = JPEG[:40]  # within the runtime's limit here
    body = b"%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n"
    follower = b"GET /config.js HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nconnection: close\r\n\r\n"
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode() + body + follower)
        sent_back = received_until_closed(conn)
    answer, _ = parsed_answer(sent_back)
    assert ((b"connection", b"close") in answer.headers) is both, answer
    served_after = sent_back.count(b"\r\n\r\nwindow.APP_CONFIG")  # the config.js that followed
    assert served_after == (0 if both else 1), sent_back
    # Framed by its chunks, the whole body reached the tier.
    assert [base64.b64decode(event["body"]) for event in tiers.sandboxes.events] == (
        [payload] if path == "/predict" else []
    )
    assert [seen[0] for seen in tiers.container.seen] == ([payload] if "invocations" in path else [])


@pytest.mark.parametrize("path", ["/predict", f"/endpoints/{ENDPOINT}/invocations"])
def test_a_chunked_body_with_chunk_extensions_and_trailers_reaches_the_tier_as_its_data_alone(tiers, path):
    """RFC 9112 7.1: a recipient ignores chunk extensions it does not know, and trailer fields are no part of the
    content (nor of the event's headers). What a client frames so reaches the function or the model as its bytes."""
    payload = JPEG[:40]  # within the runtime's limit here
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    )
    body = b"".join(b"%x;note=x\r\n" % len(piece) + piece + b"\r\n" for piece in (payload[:25], payload[25:]))
    trailer = b"0\r\nx-trailer: 1\r\nx-digest: abc\r\n\r\n"
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode() + body + trailer)
        answer, _ = parsed_answer(read_answer(conn))
    assert answer.status_code == 200
    events = tiers.sandboxes.events
    assert [base64.b64decode(event["body"]) for event in events] == ([payload] if path == "/predict" else [])
    assert not {"x-trailer", "x-digest"} & {name for event in events for name in event["headers"]}
    assert [seen[0] for seen in tiers.container.seen] == ([payload] if "invocations" in path else [])


@pytest.mark.parametrize(("path", "status"), [("/predict", 413), (f"/endpoints/{ENDPOINT}/invocations", 400)])
def test_a_refusal_closing_a_request_framed_by_both_says_connection_close_once(tiers, monkeypatch, path, status):
    """A refusal that closes the connection for its own reason (a body over the limit), to a request framed by both
    Content-Length and chunks, which closes it too: its one Connection header says close, not one per reason."""
    monkeypatch.setattr(gateway, "MAX_BODY_BYTES", 16)
    monkeypatch.setattr(tiers.runtime, "max_payload_bytes", 16)
    framing = "content-length: 4\r\ntransfer-encoding: chunked\r\n"
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n{framing}\r\n"
    body = b"28\r\n" + JPEG[:40] + b"\r\n0\r\n\r\n"
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode() + body)
        answer, _ = parsed_answer(received_until_closed(conn))
    assert answer.status_code == status
    assert [value for name, value in answer.headers if name == b"connection"] == [b"close"], answer.headers


@pytest.mark.parametrize("path", ["/predict", f"/endpoints/{ENDPOINT}/invocations"])
def test_a_body_sent_only_after_100_continue_reaches_the_tier_whole(tiers, path):
    """curl sends `Expect: 100-continue` for a body over 1 MB and waits for the interim 100 before sending it: a
    server that never sent one would leave it waiting, then sending the photo anyway, on every large upload."""
    payload = JPEG[:40]  # within the runtime's limit here
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        f"expect: 100-continue\r\ncontent-length: {len(payload)}\r\n\r\n"
    )
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode())
        interim = b""
        while b"\r\n\r\n" not in interim:  # nothing of the body is sent until it comes
            chunk = conn.recv(65536)
            assert chunk, f"closed instead of 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 ") and interim.endswith(b"\r\n\r\n"), interim
        conn.sendall(payload)
        answer, _ = parsed_answer(interim + read_answer(conn))  # a client reads past the interim answer
    assert answer.status_code == 200
    assert [base64.b64decode(event["body"]) for event in tiers.sandboxes.events] == (
        [payload] if path == "/predict" else []
    )
    assert [seen[0] for seen in tiers.container.seen] == ([payload] if "invocations" in path else [])


@pytest.mark.parametrize(("path", "status"), [("/predict", 413), (f"/endpoints/{ENDPOINT}/invocations", 400)])
def test_a_body_declared_over_the_limit_with_expect_100_continue_is_refused_before_it_is_asked_for(
    tiers, monkeypatch, path, status
):
    """A client that waits for 100 Continue (curl, for a body over 1 MB) never uploads what would be refused: the
    refusal is the first and only answer, and the connection closes."""
    monkeypatch.setattr(gateway, "MAX_BODY_BYTES", 16)
    monkeypatch.setattr(tiers.runtime, "max_payload_bytes", 16)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        "expect: 100-continue\r\ncontent-length: 40\r\n\r\n"
    )
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode())
        sent_back = received_until_closed(conn)
    assert not sent_back.startswith(b"HTTP/1.1 100 "), "the body was asked for"
    answer, _ = parsed_answer(sent_back)
    assert answer.status_code == status and (b"connection", b"close") in answer.headers
    assert tiers.sandboxes.events == [] and tiers.container.seen == []


@pytest.mark.parametrize(("method", "path", "status"), [("POST", "/nope", 404), ("PUT", "/predict", 404)])
def test_a_final_answer_before_an_expected_body_says_it_closes(tiers, method, path, status):
    """RFC 9110 10.1.1: answered without a 100 Continue, a client may skip its body and send its next request, which
    the server would read as that body; the answer says it closes, and it does."""
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        "expect: 100-continue\r\ncontent-length: 40\r\n\r\n"
    )
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode())
        sent_back = received_until_closed(conn)  # returns once the server closes
    answer, _ = parsed_answer(sent_back)
    assert answer.status_code == status and (b"connection", b"close") in answer.headers, sent_back


def test_a_final_answer_before_an_expected_body_listed_with_another_expectation_says_it_closes(tiers):
    """Expect is a list (RFC 9110 10.1.1, #expectation), and h11 waits for the body of any request whose list names
    100-continue: a 404 before its body is asked for must say it closes, as for a bare `Expect: 100-continue`."""
    head = (
        "POST /nope HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        "expect: 100-continue, x-other\r\ncontent-length: 40\r\n\r\n"
    )
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode())
        answer, _ = parsed_answer(read_answer(conn))  # kept open, the connection would wait for the 40 bytes
    assert answer.status_code == 404 and (b"connection", b"close") in answer.headers, answer.headers


def test_an_expected_body_read_after_100_continue_keeps_the_connection(tiers):
    """The body asked for and sent, the connection serves the next request (no close for a body that came)."""
    payload = JPEG
    head = (
        "POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: image/jpeg\r\n"
        f"expect: 100-continue\r\ncontent-length: {len(payload)}\r\n\r\n"
    )
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += conn.recv(1)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        conn.sendall(payload + b"GET /ping HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nconnection: close\r\n\r\n")
        sent_back = received_until_closed(conn)
    assert sent_back.count(b"HTTP/1.1 200 ") == 2 and b"connection: close" not in sent_back.split(b"\r\n\r\n")[0]


def test_the_gateways_own_refusals_carry_its_request_id_but_no_cors(tiers, monkeypatch):
    # API Gateway answers these before any invocation, with its id (which the UI shows). It adds CORS headers only
    # "to the response from an integration" (its HTTP API CORS guide): the local stack must not be kinder.
    monkeypatch.setattr(gateway, "MAX_BODY_BYTES", 100)
    site = {"origin": SITE_ORIGIN}
    answers = {
        413: tiers.predict(body=JPEG + b"x" * 100, headers=site),
        431: tiers.predict(headers={**site, "x-big": "a" * (gateway.MAX_HEADER_BYTES + 1)}),
        404: tiers.request("GET", "/predict", headers=site),
    }
    for status, response in answers.items():
        assert response.status_code == status and set(response.json()) == {"message"}, response.text
        assert len(response.headers["apigw-requestid"]) == 16, status
        assert "access-control-allow-origin" not in response.headers, status
    assert tiers.sandboxes.events == []


def test_past_the_stages_throttle_predict_is_api_gateways_429_before_any_invocation():
    """The stage's token bucket (burst 2, 1 a second here): the third request at once is API Gateway's own 429,
    with its id, no CORS and no Retry-After, and the function never sees it; a second later one goes through.
    Preflights and other routes take no token."""
    clock = SimpleNamespace(now=50.0)
    own = InProcessStack(stage_throttle=gateway.StageThrottle(rate=1, burst=2, clock=lambda: clock.now))
    try:
        site = {"origin": SITE_ORIGIN}
        assert own.request("OPTIONS", "/predict", headers={**site, "access-control-request-method": "POST"}).is_success
        assert own.request("GET", "/predict", headers=site).status_code == 404
        assert [own.predict(headers=site).status_code for _ in range(2)] == [200, 200]
        refused = own.predict(headers=site)
        assert refused.status_code == 429 and refused.json() == {"message": "Too Many Requests"}, refused.text
        assert len(refused.headers["apigw-requestid"]) == 16
        assert "retry-after" not in refused.headers and "access-control-allow-origin" not in refused.headers
        assert len(own.sandboxes.events) == 2
        clock.now += 1.0
        assert own.predict(headers=site).status_code == 200 and len(own.sandboxes.events) == 3
    finally:
        own.runtime.close()


def test_without_a_stage_throttle_predict_takes_any_rate(tiers):
    assert {tiers.predict().status_code for _ in range(40)} == {200}  # twice the dev stack's burst of 20


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/nope"),
        ("POST", "/predict/"),
        ("GET", "/predict/"),
        ("POST", "/config.js"),
        ("PUT", "/index.html"),
        ("POST", "/ping"),  # the container's health check is GET only
    ],
)
def test_a_route_the_api_does_not_have_is_api_gateways_404_with_its_request_id(tiers, method, path):
    # The cloud API has only POST /predict: any other route is API Gateway's 404, which carries apigw-requestid like
    # every answer of its own (README), here as for GET /predict above, and no CORS headers.
    response = tiers.request(method, path, headers={"origin": SITE_ORIGIN})
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}, response.text
    assert len(response.headers.get("apigw-requestid", "")) == 16, response.headers
    assert not [k for k in response.headers if k.startswith("access-control-")]
    assert tiers.sandboxes.events == []


# --- CORS, which API Gateway answers itself --------------------------------------------------------------------
def test_cors_headers_are_the_gateways_not_the_functions(tiers):
    tiers.sandboxes.result = {
        "statusCode": 200,
        "headers": {"access-control-allow-origin": "*", "access-control-max-age": "1"},
        "body": "{}",
    }
    response = tiers.predict(headers={"origin": SITE_ORIGIN})
    cors = {k: v for k, v in response.headers.items() if k.startswith("access-control-")}
    assert cors == {
        "access-control-allow-origin": SITE_ORIGIN,
        "access-control-expose-headers": "retry-after, x-request-id, apigw-requestid",
    }
    assert response.headers["vary"] == "origin"
    foreign = tiers.predict(headers={"origin": "https://evil.example"})
    assert not [k for k in foreign.headers if k.startswith("access-control-")] and "vary" not in foreign.headers


@pytest.mark.parametrize(
    ("functions", "sent"),
    [
        ({"vary": "origin"}, "origin"),  # what the handler sends (proxy_core.cors_headers)
        ({"Vary": "Accept-Encoding, ORIGIN"}, "Accept-Encoding, ORIGIN"),
        ({"vary": "accept"}, "accept, origin"),
        ({"vary": "accept, "}, "accept, origin"),  # an empty item is dropped
        ({}, "origin"),
    ],
)
def test_the_gateways_vary_origin_is_merged_into_the_functions_vary(tiers, functions, sent):
    # The function names Origin in Vary itself: the gateway's own `vary: origin` came on a second line, a duplicate.
    headers = {"content-type": "application/json", **functions}
    tiers.sandboxes.result = {"statusCode": 200, "headers": headers, "body": "{}"}
    response = tiers.predict(headers={"origin": SITE_ORIGIN})
    assert response.status_code == 200
    assert response.headers.get_list("vary") == [sent]


def test_a_preflight_from_the_site_is_allowed_and_from_elsewhere_is_not(tiers):
    ask = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = tiers.request("OPTIONS", "/predict", headers={"origin": "http://localhost:8000", **ask})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:8000"
    assert allowed.headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert allowed.headers["access-control-allow-headers"] == "content-type"
    assert allowed.headers["access-control-max-age"] == "3600"
    refused = tiers.request("OPTIONS", "/predict", headers={"origin": "https://evil.example", **ask})
    assert refused.status_code == 204 and not [k for k in refused.headers if k.startswith("access-control-")]
    assert tiers.sandboxes.events == [], "a preflight never reaches the function"
    # API Gateway's own answer, with its id as on every other (a live HTTP API's OPTIONS 204 carries it); each its own.
    ids = [answer.headers.get("apigw-requestid") or "" for answer in (allowed, refused)]
    assert [len(i) for i in ids] == [16, 16] and ids[0] != ids[1], ids


def test_an_options_request_without_access_control_request_method_gets_no_cors_headers(tiers):
    """AWS (Configure CORS for HTTP APIs): "To return CORS headers, your request must contain an origin header. For
    the OPTIONS method, your request must contain an origin header and an Access-Control-Request-Method header."
    An OPTIONS that names the site's origin but asks for no method is no preflight."""
    answer = tiers.request("OPTIONS", "/predict", headers={"origin": SITE_ORIGIN})
    assert not [name for name in answer.headers if name.startswith("access-control-")], answer.headers
    assert tiers.sandboxes.events == []


def test_a_preflight_is_told_the_apis_allowed_headers_whatever_it_asks_for(tiers):
    # The answer comes from the API's CORS configuration: a page asking to send another header as well is told the
    # configured ones, not its own list back, which would let it send any header it named.
    ask = {"access-control-request-method": "POST", "access-control-request-headers": "content-type, x-api-key"}
    answer = tiers.request("OPTIONS", "/predict", headers={"origin": SITE_ORIGIN, **ask})
    assert answer.status_code == 204 and answer.headers["access-control-allow-headers"] == "content-type"


# --- the runtime tier over HTTP --------------------------------------------------------------------------------
def test_the_runtime_takes_a_body_of_exactly_its_limit_declared_or_streamed(tiers):
    async def streamed(size: int):  # chunked: no Content-Length, so only the streaming count can refuse it
        yield b"x" * size

    limit = tiers.runtime.max_payload_bytes
    assert tiers.invoke(b"x" * limit).status_code == 200
    assert tiers.invoke(streamed(limit)).status_code == 200
    for over in (b"x" * (limit + 1), streamed(limit + 1)):
        refused = tiers.invoke(over)
        assert refused.status_code == 400 and refused.headers["x-amzn-errortype"] == "ValidationError"
        assert refused.json()["message"].endswith("has oversize body.")
        # Refused at the runtime's own limit, its connection closed: not read on to the gateway's larger one.
        assert refused.headers["connection"] == "close"
    assert [len(body) for body, _, _ in tiers.container.seen] == [limit, limit]


def test_the_runtime_passes_content_type_and_accept_through_and_names_the_variant(tiers):
    tiers.container.reply = ContainerResponse(200, "text/csv", b"a,b\n")
    response = tiers.invoke(b"x", headers={"content-type": "application/json", "accept": "text/csv"})
    assert response.status_code == 200 and response.content == b"a,b\n"
    assert response.headers["content-type"] == "text/csv"
    assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert tiers.container.seen == [(b"x", "application/json", "text/csv")]


def test_every_runtime_answer_carries_a_request_id_as_botocore_reads_it_and_is_logged_under_it(tiers, caplog):
    """AWS answers every call with x-amzn-RequestId, which botocore returns as ResponseMetadata["RequestId"]: a
    script that logs it raised KeyError against the local stack. SageMaker's side of a call, as the handler's line
    names it (endpoint_request_id): one line per answer, errors included, without the image or the container's
    message."""
    from botocore.model import ServiceModel
    from botocore.parsers import RestJSONParser
    from botocore.session import get_session

    service = ServiceModel(get_session().get_service_data("sagemaker-runtime"))
    output = service.operation_model("InvokeEndpoint").output_shape
    with caplog.at_level(logging.INFO, logger="local.runtime"):
        answers = [
            tiers.invoke(b"IMAGE-BYTES"),
            tiers.request("POST", "/endpoints/other/invocations", content=b"IMAGE-BYTES", headers=with_type({})),
            tiers.invoke(b"x" * 65),  # over this stack's payload limit
        ]
        tiers.container.reply = ContainerResponse(500, "text/plain", b"CONTAINER-SECRET\nTraceback ...")
        answers.append(tiers.invoke(b"IMAGE-BYTES"))
    ids = []
    for answer in answers:
        raw = {"status_code": answer.status_code, "headers": dict(answer.headers), "body": answer.content}
        parsed = RestJSONParser().parse(raw, output if answer.status_code == 200 else None)
        ids.append(parsed["ResponseMetadata"]["RequestId"])
    assert [a.status_code for a in answers] == [200, 400, 400, 424]
    assert len(set(ids)) == len(ids)
    lines = [r.getMessage() for r in caplog.records if r.name == "local.runtime" and r.levelno >= logging.INFO]
    assert [line.split(" in ")[0] for line in lines] == [
        f"invocation {ids[0]}: 200",
        f"invocation {ids[1]}: 400 ValidationError",
        f"invocation {ids[2]}: 400 ValidationError",
        f"invocation {ids[3]}: 424 ModelError (container status 500)",
    ]
    assert not any(secret in line for line in lines for secret in ("IMAGE", "CONTAINER-SECRET", "xxxx"))


@pytest.mark.parametrize(
    ("env", "server_level", "level"),
    [
        ({"LOG_LEVEL": "INFO"}, logging.WARNING, logging.INFO),  # make demo: shown beside the handler's lines
        ({"LOG_LEVEL": "WARNING"}, logging.WARNING, logging.WARNING),  # proxyLogLevel WARNING: both only of errors
        ({"LOG_LEVEL": "WARNING"}, logging.INFO, logging.INFO),  # --log-level info asks for them
        ({"LOG_LEVEL": "INFO", "POWERTOOLS_LOG_LEVEL": "ERROR"}, logging.WARNING, logging.WARNING),
        ({"LOG_LEVEL": "ERROR", "POWERTOOLS_LOG_LEVEL": "debug"}, logging.WARNING, logging.DEBUG),
        ({}, logging.WARNING, logging.INFO),  # Powertools' default
    ],
)
def test_the_runtime_tier_logs_at_the_handlers_level(env, server_level, level):
    """The runtime's line of a call is the other half of the handler's, joined on endpoint_request_id: at the stack's
    default --log-level (warning) it was never shown, while the handler's line was."""
    assert server.runtime_log_level(env, server_level) == level


def test_a_failed_calls_runtime_line_shows_where_the_handlers_line_of_it_does(tiers, caplog):
    """The handler logs a 5xx at WARNING: with proxyLogLevel WARNING (the runtime tier's level then) its line of a
    failed call held an endpoint_request_id, and the runtime's line of that call, at INFO, was not shown."""
    with caplog.at_level(logging.WARNING, logger="local.runtime"):
        ok = tiers.invoke(b"IMAGE-BYTES")
        tiers.runtime.faults.throttle = 1  # the handler logs a throttled call (its 429) at INFO: so does this tier
        throttled = tiers.invoke(b"IMAGE-BYTES")
        refused = tiers.invoke(b"x" * 65)  # over this stack's payload limit: a 400 that is no throttling
        tiers.container.reply = ContainerResponse(500, "text/plain", b"boom")
        failed = tiers.invoke(b"IMAGE-BYTES")
    assert (ok.status_code, throttled.status_code, refused.status_code, failed.status_code) == (200, 400, 400, 424)
    shown = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "local.runtime" and r.levelno >= logging.WARNING
    ]
    assert [(level, line.split(" in ")[0]) for level, line in shown] == [
        (logging.WARNING, f"invocation {refused.headers['x-amzn-requestid']}: 400 ValidationError"),
        (logging.WARNING, f"invocation {failed.headers['x-amzn-requestid']}: 424 ModelError (container status 500)"),
    ]


def test_a_client_that_hangs_up_mid_body_is_logged_as_such_not_as_an_answer(tiers, monkeypatch, caplog):
    """A 10-byte call cut after 3 bytes was logged `400 ValidationError`, the 4 MB cap's error, under an id no client
    ever saw: an operator read a refused payload where the caller had gone away. The line says how long it waited, in
    milliseconds as every runtime line does (a clock of local.server's own: 0.25 s between the call and the hang-up)."""
    clock = iter([10.0, 10.25])
    monkeypatch.setattr(server, "time", SimpleNamespace(perf_counter=lambda: next(clock), time=time.time))
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    path = f"/endpoints/{ENDPOINT}/invocations"
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg"), (b"content-length", b"10")]
    scope = http_scope("POST", path, headers)
    with caplog.at_level(logging.INFO, logger="local.runtime"):
        asyncio.run(tiers.app(scope, receive, send))
    [line] = [r.getMessage() for r in caplog.records if r.name == "local.runtime"]
    assert "ValidationError" not in line and "the client hung up before its body arrived" in line, line
    assert line.endswith(" (250.0 ms)"), line
    assert tiers.container.seen == []  # the model never ran


def test_a_container_being_replaced_is_model_not_ready(tiers):
    tiers.container.reply = ContainerUnavailable("TorchServe died")
    response = tiers.invoke(b"x")
    assert response.status_code == 429 and response.headers["x-amzn-errortype"] == "ModelNotReadyException"
    assert tiers.runtime.in_flight == 0


# --- the site tier ---------------------------------------------------------------------------------------------
OUTSIDE = "outside.md"  # beside the site's directory, of a type the site serves


@pytest.fixture
def www(tmp_path, monkeypatch):
    site = tmp_path / "www"
    (site / "deep" / ".git").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html>")
    (site / "app.js").write_text("1")
    (site / "notes.xyz").write_text("no known content type")
    (site / "deep" / ".git" / "config.txt").write_text("secret")
    (tmp_path / OUTSIDE).write_text("secret")
    (site / "link.md").symlink_to(tmp_path / OUTSIDE)
    monkeypatch.setattr(server, "WWW", site)
    return site


# What the response headers policy in components/static_site.py has CloudFront add to every site answer.
CDN_SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": PERMISSIONS_POLICY,
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def test_site_files_get_their_cache_policy_and_head_is_served(tiers, www):
    page = tiers.request("GET", "/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    (www / "photo.jpg").write_bytes(b"jpg")  # not the app shell: reused for an hour, as the bucket's object is
    photo = tiers.request("GET", "/photo.jpg")
    assert photo.headers["cache-control"] == policies.cache_control_for("photo.jpg") == "public, max-age=3600"
    assert CDN_SECURITY_HEADERS.items() <= page.headers.items()
    script = tiers.request("GET", "/app.js")
    assert script.headers["cache-control"] == "no-cache"
    head = tiers.request("HEAD", "/app.js")
    assert head.status_code == 200 and head.headers["content-type"].startswith("application/javascript")


def test_an_unchanged_no_cache_file_is_revalidated_with_a_304(tiers, www):
    """README: index.html, script.js and style.css are "revalidated on every load, a 304 when unchanged", as S3
    answers a conditional GET through CloudFront. The local stack sent no ETag, so every load got the whole file."""
    page = tiers.request("GET", "/app.js")
    etag = page.headers["etag"]
    assert page.status_code == 200 and re.fullmatch(r'"[0-9a-f]{32}"', etag)
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = tiers.request("GET", "/app.js", headers={"if-none-match": sent})
        assert again.status_code == 304 and again.content == b"", sent
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-cache", sent
        assert CDN_SECURITY_HEADERS.items() <= again.headers.items(), sent
    (www / "app.js").write_bytes(b"// a new deploy")
    changed = tiers.request("GET", "/app.js", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.content == b"// a new deploy" and changed.headers["etag"] != etag
    assert tiers.request("GET", "/app.js", headers={"if-none-match": '"other"'}).status_code == 200


def test_a_file_whose_name_is_not_ascii_is_served_whatever_the_locales_codeset(tmp_path):
    """pulumi up keys www/café.jpg by its name's bytes read as UTF-8 (components/bundle_dir.py); under
    LANG=en_US.ISO-8859-1 (Python coerces only C and POSIX to UTF-8) the demo looked for caf\\xe9.jpg and answered
    404. The C locale with coercion and UTF-8 mode off stands in for such a locale (every glibc has it)."""
    import os
    import subprocess
    import sys

    site = os.path.join(os.fsencode(tmp_path), b"www")
    os.makedirs(os.path.join(site, "dossier-é".encode()))
    for name in ("index.html", "café.jpg", "dossier-é/a.txt"):
        with open(os.path.join(site, name.encode()), "wb") as f:  # the bytes a checkout has, in any locale
            f.write(name.encode())
    script = f"""
import os
from local import server
from tests.local.test_server import InProcessStack
server.WWW = server.Path(os.fsdecode({site!r}))
stack = InProcessStack()
for path in ("/caf%C3%A9.jpg", "/dossier-%C3%A9/a.txt"):
    answer = stack.request("GET", path)
    print(answer.status_code, ascii(answer.content.decode()))
stack.runtime.close()
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"200 {name!a}" for name in ("café.jpg", "dossier-é/a.txt")]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/notes.xyz"),  # a type the CDN would not publish
        ("GET", "/deep/.git/config.txt"),  # a dotted directory below the top
        ("GET", "/app.js%00.png"),  # a NUL byte
        ("POST", "/app.js"),
        ("DELETE", "/"),
    ],
)
def test_what_the_site_does_not_publish_is_a_json_404(tiers, www, method, path):
    response = tiers.request(method, path)
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}, path


def test_only_containment_stops_an_absolute_path_or_a_symlink_out_of_the_site(tiers, www):
    # Neither has a dotted segment for the dotfile rule to catch: "//abs/path" joins to the absolute path. In a whole
    # URL, as httpx would read "//abs/path" alone as a host ("abs") and a path ("/path"), and send only "/path".
    for path in (f"{BASE_URL}/{www.parent / OUTSIDE}", "/link.md"):
        response = tiers.request("GET", path)
        assert response.status_code == 404 and "secret" not in response.text, path


def test_a_link_is_served_as_the_bucket_would_hold_it(tiers, www, tmp_path, monkeypatch):
    """components/bundle_dir.py publishes an in-site link at its path and refuses one to a hidden file; so does this."""
    (www / ".env.txt").write_text("secret")  # of a type the site serves: only the hidden rule can refuse the link
    (www / "leak.txt").symlink_to(".env.txt")
    (www / "same.js").symlink_to("app.js")
    leak = tiers.request("GET", "/leak.txt")
    assert leak.status_code == 404 and "secret" not in leak.text
    assert tiers.request("GET", "/same.js").text == "1"
    alias = tmp_path / "site-link"
    alias.symlink_to(www, target_is_directory=True)
    monkeypatch.setattr(server, "WWW", alias)  # www/ itself a link (a checkout that links a built site in)
    page = tiers.request("GET", "/")
    assert page.status_code == 200 and page.text == "<!doctype html>"
    assert tiers.request("GET", "/leak.txt").status_code == 404


def test_a_hidden_name_or_a_link_into_a_hidden_folder_is_not_served(tiers, www):
    """bundle_dir_files leaves a hidden name out before looking at its link, and refuses a visible link into a
    hidden folder: neither is in the bucket, whatever the link points at."""
    (www / ".alias.js").symlink_to("app.js")
    (www / "git-config.txt").symlink_to("deep/.git/config.txt")
    for path in ("/.alias.js", "/git-config.txt"):
        response = tiers.request("GET", path)
        assert response.status_code == 404 and "secret" not in response.text, path


def test_a_link_gets_the_type_and_cache_policy_of_its_own_key(tiers, www):
    """The bucket holds a link at its path, with content_type_for and cache_control_for of that key, not of the
    file it points at."""
    (www / "logo.png").write_bytes(b"png")
    (www / "favicon.ico").symlink_to("logo.png")
    (www / "module.mjs").write_text("1")
    (www / "main.js").symlink_to("module.mjs")
    icon = tiers.request("GET", "/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == policies.content_type_for("favicon.ico")
    script = tiers.request("GET", "/main.js")
    assert script.headers["cache-control"] == policies.cache_control_for("main.js") == "no-cache"
    # The key's policy, also where the file it names has the other one (a photo's link to the page).
    (www / "photo.jpg").symlink_to("index.html")
    photo = tiers.request("GET", "/photo.jpg")
    assert photo.headers["cache-control"] == policies.cache_control_for("photo.jpg") == "public, max-age=3600"


def test_a_config_js_left_in_www_is_not_served_by_another_path(tiers, www):
    """site_files never uploads www/config.js, and refuses a link to it (pulumi up stops; test_infra_bundle_dir):
    /config.js/ (pathlib drops the slash) and the link both served that stale file."""
    (www / "config.js").write_text("window.STALE = 1;")
    (www / "settings.js").symlink_to("config.js")
    for path in ("/config.js/", "/settings.js"):
        stale = tiers.request("GET", path)
        assert stale.status_code == 404 and "STALE" not in stale.text, path
    assert "STALE" not in tiers.request("GET", "/config.js").text  # rendered, never the file


@pytest.mark.timeout(60)  # reading the pipe would wait for a writer for ever: a hang guard, not a timing
def test_what_is_not_a_regular_file_is_a_json_404_and_never_read(tiers, www):
    """Only files are in the bucket (bundle_dir_files): a directory or a named pipe with a served type's name is a
    404. Opened, the pipe would block the server until something wrote to it."""
    (www / "folder.js").mkdir()
    os.mkfifo(www / "pipe.txt")
    for path in ("/folder.js", "/pipe.txt"):
        response = tiers.request("GET", path)
        assert response.status_code == 404 and response.json() == {"message": "Not Found"}, path


def test_a_path_that_names_a_file_only_once_normalised_is_a_json_404(tiers, www):
    """The bucket's keys are the files' relative paths as written (components.policies.site_files), and S3 looks
    a key up as the request names it: /app.js/ asks for the key "app.js/", which does not exist (an AccessDenied
    page in the cloud). pathlib's normalisation dropped the extra slashes and served app.js."""
    (www / "sub").mkdir()
    (www / "sub" / "page.html").write_text("<p>sub</p>")
    assert tiers.request("GET", "/sub/page.html").status_code == 200
    for path in ("/app.js/", "/app.js//", "/index.html/", "/sub//page.html", "/sub/page.html/"):
        for method in ("GET", "HEAD"):
            response = tiers.request(method, path)
            assert response.status_code == 404, (method, path)
            assert method == "HEAD" or response.json() == {"message": "Not Found"}, path


def test_config_js_carries_the_security_headers_and_is_never_cached(tiers):
    response = tiers.request("GET", "/config.js")
    assert response.status_code == 200 and f'"apiUrl": "{BASE_URL}"' in response.text
    assert response.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert CDN_SECURITY_HEADERS.items() <= response.headers.items()
    # CloudFront's one headers policy gives it the page's CSP too (the README: the same values on both).
    assert response.headers["content-security-policy"] == tiers.request("GET", "/").headers["content-security-policy"]


def test_bound_to_every_interface_any_host_is_served_and_a_garbled_one_gets_a_json_400():
    own = InProcessStack(any_interface=True)
    try:
        lan = own.request("GET", "/config.js", headers={"host": "192.0.2.2:8000"})
        assert lan.status_code == 200 and '"apiUrl": "http://192.0.2.2:8000"' in lan.text
        for path in ("/config.js", "/"):
            response = own.request("GET", path, headers={"host": "[:::]:80"})
            assert response.status_code == 400, path
            assert response.json() == {"message": "Host header is not a host[:port]"}
    finally:
        own.runtime.close()


def test_coop_is_left_out_only_where_browsers_ignore_it():
    """Browsers ignore Cross-Origin-Opener-Policy on an origin that is not potentially trustworthy (plain http to
    another machine's address: --allow-remote reached from another device), and Chromium logs an error on every page
    load there. The stack leaves it out there only; CORP and the other headers stay."""
    own = InProcessStack(any_interface=True, client=LOOPBACK_CLIENT)
    try:
        for path in ("/", "/config.js"):
            lan = own.request("GET", path, headers={"host": "192.0.2.2:8000"})
            assert "cross-origin-opener-policy" not in lan.headers, path
            expected = {k: v for k, v in CDN_SECURITY_HEADERS.items() if k != "cross-origin-opener-policy"}
            assert expected.items() <= lan.headers.items(), path
            for trustworthy in (
                {"host": "192.0.2.2:8000", "x-forwarded-proto": "https"},  # behind a TLS-terminating forwarder
                {"host": "localhost:8000"},
                {"host": "app.localhost:8000"},
                {"host": "[::1]:8000"},
            ):
                answer = own.request("GET", path, headers=trustworthy)
                assert CDN_SECURITY_HEADERS.items() <= answer.headers.items(), (path, trustworthy)
    finally:
        own.runtime.close()


def test_api_answers_carry_none_of_the_sites_headers(tiers):
    """In the cloud /predict is answered by API Gateway, not CloudFront: no response headers policy applies."""
    answers = [
        tiers.predict(headers={"origin": SITE_ORIGIN}),
        tiers.request("OPTIONS", "/predict", headers={"origin": SITE_ORIGIN, "access-control-request-method": "POST"}),
        tiers.request("GET", "/predict"),
    ]
    for answer in answers:
        assert not set(CDN_SECURITY_HEADERS) & set(answer.headers), (answer.request.method, answer.status_code)


# --- the Host guard (DNS rebinding) ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "ours"),
    [
        ("localhost.", True),  # the fully qualified spelling, trailing dot and all
        ("LOCALHOST.:8000", True),
        ("app.localhost:3000", True),
        ("[::1]:8000", True),
        ("[::ffff:127.0.0.1]:8000", True),  # IPv4-mapped, written with its dotted quad
        ("127.1.2.3", True),
        ("localhost:65535", True),  # a five-digit port
        ("evillocalhost", False),  # not under .localhost
        ("localhost.rebind.example:8000", False),  # a name that only starts with localhost
        ("127.0.0.1:123456", False),  # not a port
        ("127.0.0.1:65536", False),  # five digits, but no port either
        ("127.0.0.1:99999", False),
        ("127.0.0.1:59999", True),
        ("127.0.0.1:65529", True),  # each branch of the 0-65535 pattern held (only 65535 and 59999 were tried)
        ("127.0.0.1:65499", True),
        ("127.0.0.1:64999", True),
        ("127.0.0.1:65540", False),
        ("127.0.0.1:65600", False),
        ("127.0.0.1:70000", False),
        ("127.0.0.1:0", True),
        ("localhost:80:80", False),
        (None, False),
    ],
)
def test_names_this_machine(host, ours):
    assert names_this_machine(host) is ours


def test_the_host_guard_answers_in_json_and_refuses_two_hosts(tiers):
    refused = tiers.request("GET", "/config.js", headers={"host": "rebind.example:8000"})
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/json"
    assert "DNS rebinding" in refused.json()["message"]
    # Started by hand or by make: both ways to serve a forwarder are named.
    assert "--host 0.0.0.0 --allow-remote (make demo HOST=0.0.0.0 ALLOW_REMOTE=1)" in refused.json()["message"]

    def raw(headers: list[tuple[bytes, bytes]]) -> int:
        return asgi(tiers.app, "GET", "/config.js", headers, http_version="1.0")[0]["status"]

    assert raw([(b"host", b"127.0.0.1:8000"), (b"host", b"rebind.example")]) == 403
    assert raw([(b"host", b"rebind.example"), (b"host", b"127.0.0.1:8000")]) == 403
    assert raw([]) == 200, "HTTP/1.0 without Host is served"


# --- the command line --------------------------------------------------------------------------------------------
def test_port_range_and_log_level_spelling():
    assert port_number("65535") == 65535 and port_number("0") == 0
    assert parse_args(["--log-level", "DEBUG"]).log_level == "debug"
    for level in ("critical", "error", "warning", "info", "debug"):  # uvicorn's levels, each of them
        assert parse_args(["--log-level", level]).log_level == level
    assert parse_args(["--runtime", "TorchServe"]).runtime == "torchserve"  # RUNTIME=TorchServe was refused


def test_the_stacks_own_log_lines_carry_their_utc_offset_as_the_handlers_lines_do(monkeypatch, capsys):
    """`python -m local`'s lines (`... WARNING local.runtime: invocation <id>: ...`) gave the local time without a
    zone, beside the handler's Powertools lines, which give the same time with its offset: outside UTC they read as
    another hour than those, and than the UTC times of the events' requestContext.time and of CloudWatch."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    import local.__main__

    # What main() asks logging.basicConfig for, through local.__main__'s own logging name: the root logger's handlers
    # and level themselves are every thread's. The zone is JST (+0900) through each formatter's own converter: TZ
    # set and time.tzset() would be every thread's local time.
    configured = []
    monkeypatch.setattr(local.__main__, "logging", names_of(logging, basicConfig=lambda **kw: configured.append(kw)))

    def in_jst(seconds):
        return time.struct_time((*time.gmtime(seconds + 9 * 3600)[:8], 0, "JST", 9 * 3600))

    # Refused (no --allow-remote) once logging is set up, at --log-level's level.
    assert local.__main__.main(["--host", "192.0.2.1", "--log-level", "DEBUG"]) == 2
    [kwargs] = configured
    assert kwargs["level"] == "DEBUG"
    [handler] = kwargs["handlers"]
    record = logging.LogRecord("local.runtime", logging.WARNING, __file__, 1, "invocation x: 424", None, None)
    record.created, record.msecs = 1_700_000_000.25, 250.0
    powertools = LambdaPowertoolsFormatter()
    powertools.converter = handler.formatter.converter = in_jst
    powertools_time = powertools.formatTime(record)
    assert powertools_time == "2023-11-15 07:13:20,250+0900"
    assert handler.format(record) == f"{powertools_time} WARNING local.runtime: invocation x: 424"
    capsys.readouterr()
    handler.handle(record)  # on stderr, as logging.basicConfig's: stdout holds the banner only
    assert capsys.readouterr() == ("", f"{powertools_time} WARNING local.runtime: invocation x: 424\n")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "abc"], "argument --port: 'abc' is not a port number: use 1-65535, or 0 for a free one"),
        (["--port", "65536"], "argument --port: 65536 is not a port: use 1-65535, or 0 for a free one"),
        (["--port", "80.5"], "argument --port: '80.5' is not a port number: use 1-65535, or 0 for a free one"),
        (["--port", "0x50"], "argument --port: '0x50' is not a port number: use 1-65535, or 0 for a free one"),
        (["--runtime", "java"], "argument --runtime: invalid choice: 'java'"),
        # uvicorn's level, which logging lacks; and logging's, which uvicorn lacks: either was a traceback at start.
        (["--log-level", "trace"], "argument --log-level: invalid choice: 'trace'"),
        (["--log-level", "notset"], "argument --log-level: invalid choice: 'notset'"),
        (["--host"], "argument --host: expected one argument"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        # As a Path, "" is the current folder: "model artifact <cwd> (--artifact) is a directory".
        (["--artifact="], "argument --artifact: the path is empty: name a file, or leave the option out"),
        (["--stack-config", ""], "argument --stack-config: the path is empty"),
    ],
)
def test_a_bad_argument_is_one_line_naming_it_and_pointing_to_help(capsys, args, says):
    """argparse printed its five-line usage block above the one line that said what was wrong."""
    with pytest.raises(SystemExit) as done:
        parse_args(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.endswith("; see `python -m local --help`\n"), err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "::",
        "localhost",
        "my-box.lan",
        "my-box.lan.",
        ".".join(["a" * 63] * 3 + ["b" * 61]),  # 253 characters: DNS's longest name
        ".".join(["a" * 63] * 3 + ["b" * 61]) + ".",  # the same name, absolute: its final dot is no character of it
    ],
)
def test_a_host_is_an_address_or_a_name(host):
    assert host_address(host) == host


@pytest.mark.parametrize("host", ["LOCALHOST", "localhost.", "LocalHost."])
def test_a_host_name_in_capitals_or_absolute_is_localhost_still(monkeypatch, tmp_path, host):
    """Host names are case-insensitive, and a final dot only makes one absolute: `make demo HOST=LOCALHOST` and
    `HOST=localhost.` were refused as a remote bind ("the local stack has no authentication. Pass --allow-remote"),
    and glibc does not resolve localhost. from /etc/hosts ("Name or service not known")."""
    assert host_address(host) == "localhost"
    assert what_main_serves(monkeypatch, tmp_path, "--host", host).where.endswith(" only")


@pytest.mark.parametrize(
    "host",
    [
        "not a host",
        "",
        "999.1.1.1",
        "-box.lan",
        "box-.lan",  # a hyphen ends no label, nor starts one after the first
        "box.-lan",
        "box.lan-",
        "a..lan",
        "[::1]",
        "box:8000",
        "x" * 64,
        "box." + "x" * 64,  # no label of 64, the first or any other
        "999.1.1.1.",  # as absolute, its last label is still all digits
        "box.lan..",  # one final dot makes a name absolute; a second is an empty label
        "my_box.lan",  # RFC 1123 has no underscore in a host name
        # Nor a letter outside ASCII, which case-insensitive matching took for one inside: LOCALHOſT (a long s) was
        # taken as the name localhoſt, then refused as a remote bind; boxK.lan with a Kelvin sign became boxk.lan.
        "LOCALHO\u017fT",
        "box\u212a.lan",
        ".".join(["a" * 63] * 3 + ["b" * 62]),  # 254 characters: one more than DNS's longest name
        ".".join(["a" * 63] * 3 + ["b" * 62]) + ".",  # and absolute
    ],
)
def test_a_host_that_is_no_address_or_name_is_refused_as_such(host):
    """--host 'not a host' was refused as a non-loopback bind ("the local stack has no authentication")."""
    with pytest.raises(argparse.ArgumentTypeError, match=r"is not an IP address or host name$") as refused:
        host_address(host)
    assert len(str(refused.value)) <= 60 + len(" is not an IP address or host name")  # a long one quoted in part


def test_python_m_local_arguments_refuses_on_stderr_only_and_passes_a_good_value_silently(capsys):
    """`python -m local.arguments` gives python -m local's refusal as one line on stderr, exit status 2 (its
    docstring), and a value python -m local takes with exit 0 and nothing printed. make demo reads both streams as
    one (2>&1), so nothing held the stream: a main() printing the refusal to stdout passed every test."""
    from local.arguments import main as check

    assert check(["--host", "192.0.2.1"]) == 2
    refused = capsys.readouterr()
    assert refused.out == "", refused.out
    assert refused.err.startswith("error: refusing to bind 192.0.2.1: the local stack has no authentication. ")
    assert refused.err.count("\n") == 1 and refused.err.endswith("\n"), refused.err
    assert check(["--host", "192.0.2.1", "--allow-remote"]) == 0
    assert capsys.readouterr() == ("", "")


def test_the_remote_refusal_says_how_to_allow_it_by_hand_and_through_make(capsys):
    """The refusal is what a newcomer reads after `make demo HOST=0.0.0.0`: it names both ways to allow the bind, the
    option and make's variable (README: `make demo HOST=0.0.0.0 ALLOW_REMOTE=1`)."""
    from local.arguments import main as check

    assert check(["--host", "0.0.0.0"]) == 2
    assert capsys.readouterr().err == (
        "error: refusing to bind 0.0.0.0: the local stack has no authentication. "
        "Pass --allow-remote (make demo ALLOW_REMOTE=1) to expose it beyond this machine.\n"
    )


def test_python_m_local_starts_the_stack_make_demo_starts(monkeypatch, tmp_path):
    """`make demo` passes its HOST, PORT and RUNTIME; run by hand, `python -m local` must default to the same."""
    import re

    makefile = (ROOT / "Makefile").read_text()
    make = dict(re.findall(r"^(HOST|PORT|RUNTIME) \?= (\S+)$", makefile, re.MULTILINE))
    monkeypatch.chdir(tmp_path)  # run from elsewhere than the project (a default under the current folder passed)
    args = parse_args([])
    assert (args.host, str(args.port), args.runtime) == (make["HOST"], make["PORT"], make["RUNTIME"])
    assert args.stage_throttle and not args.allow_remote and not args.fault_injection
    # As --help says: dev's stack config (whatever the current folder) and the server's warnings only.
    assert (args.stack_config, args.log_level) == (ROOT / "Pulumi.dev.yaml", "warning")


def test_the_banner_says_whether_the_stack_can_be_reached_from_other_machines():
    from local.__main__ import listening

    assert listening("127.0.0.1", 8000, any_interface=False) == "127.0.0.1 only"
    assert listening("::1", 8000, any_interface=False) == "::1 only"
    assert listening("192.0.2.7", 8000, any_interface=False) == "192.0.2.7 only (REMOTE ACCESS ENABLED)"
    assert listening("0.0.0.0", 8123, any_interface=True) == (
        "every interface (REMOTE ACCESS ENABLED: open http://<this machine's address>:8123/)"
    )


def test_the_banner_gives_the_stage_throttle_or_says_it_is_off():
    from local.__main__ import throttled

    assert throttled(None) == "off (--no-stage-throttle): /predict takes any rate"
    assert throttled(gateway.StageThrottle(2.5, 7)).startswith("/predict at 2.5 requests/s, bursts of 7 ")
    assert throttled(gateway.StageThrottle(10.0, 20)).startswith("/predict at 10 requests/s, bursts of 20 ")  # not 10.0


def test_a_message_to_a_terminal_that_is_gone_is_dropped():
    """After SIGHUP closed the terminal, writing "stopped" fails with EIO: the cleanup goes on without it. Here the
    write fails as it does on a pipe no one reads any more (EPIPE), in a Python of its own: sys.stdout is the
    process's, and replaced here it would be every other thread's too."""
    import subprocess
    import sys

    script = (
        "import os, sys; from local.__main__ import say; say('stopped'); "
        "sys.stderr.write('went on\\n'); sys.stderr.flush(); os._exit(0)"  # no retry of the write at exit
    )
    read, write = os.pipe()
    os.close(read)  # gone before the message is written
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (0, "went on\n")


@pytest.mark.parametrize(
    ("soft", "hard", "wanted"),
    [
        (1024, 4096, (4096, 4096)),
        (1024, "infinity", (65536, "infinity")),
        (100_000, "infinity", (100_000, "infinity")),  # never lowered
        (4096, 4096, None),  # nothing to raise
    ],
)
def test_the_open_file_limit_is_raised_to_the_hard_limit(soft, hard, wanted):
    infinity = -1
    set_to = limits_set_by_raise_open_file_limit((soft, infinity if hard == "infinity" else hard))
    expected = None if wanted is None else [infinity if v == "infinity" else v for v in wanted]
    assert set_to == ([] if expected is None else [expected])


def limits_set_by_raise_open_file_limit(limits: tuple[int, int], refusal: str = "", refused_above: int = -1) -> list:
    """The limits local.__main__'s raise_open_file_limit set, run in a Python of its own whose resource module is a
    fake reporting `limits` (soft, hard; -1 is RLIM_INFINITY): a fake in this process's sys.modules would be every
    thread's import of resource. setrlimit raises `refusal` (an expression) for a soft limit above
    `refused_above`."""
    import subprocess
    import sys

    script = f"""
import errno, json, sys, types
set_to = []
def setrlimit(which, limits):
    if {bool(refusal)!r} and limits[0] > {refused_above!r}:
        raise {refusal or "None"}
    set_to.append(list(limits))
sys.modules["resource"] = types.SimpleNamespace(
    RLIMIT_NOFILE=7, RLIM_INFINITY=-1, getrlimit=lambda which: {tuple(limits)!r}, setrlimit=setrlimit
)
from local.__main__ import raise_open_file_limit
raise_open_file_limit()  # no ValueError, no OSError
print(json.dumps(set_to))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "refusal",
    [
        'ValueError("not allowed to raise maximum limit")',  # macOS, above its own cap
        'OSError(errno.EFAULT, "Bad address")',  # any errno but EINVAL and EPERM comes as an OSError
    ],
)
def test_an_open_file_limit_the_system_refuses_to_raise_is_kept(refusal):
    assert limits_set_by_raise_open_file_limit((256, -1), refusal) == []


def test_an_open_file_limit_above_macos_cap_falls_back_to_its_open_max():
    """macOS reports no hard limit but refuses more than its per-process cap (10240 on many Macs): the demo kept the
    256 descriptors it started with."""
    refusal = 'ValueError("current limit exceeds maximum limit")'
    assert limits_set_by_raise_open_file_limit((256, -1), refusal, refused_above=10240) == [[10240, -1]]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (b"config:\n\tmobilenet-serverless:maxConcurrency: 5\n", "not valid YAML at line 2, column 1: found character"),
        (b"config: [\n", "not valid YAML at line 2, column 1: expected the node content"),
        (b"config:\n  mobilenet-serverless:endpointName: caf\xe9\n", "not UTF-8 text"),
        (b"- config\n", "expected a mapping at the top level"),
    ],
)
def test_a_stack_file_that_is_not_yaml_is_a_one_line_error(tmp_path, capsys, text, says):
    from local.__main__ import main

    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_bytes(text)
    assert main(["--port", "0", "--stack-config", str(stack_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: stack config {stack_file}: {says}") and err.count("\n") == 1, err
    assert err.count(str(stack_file)) == 1, err  # it read "error: stack config x: x: not valid YAML ..."


@pytest.mark.parametrize(("name", "says"), [("Pulumi.prod.yaml", "No such file or directory"), (".", "Is a directory")])
def test_a_stack_file_that_cannot_be_read_is_named_once_with_the_reason(tmp_path, capsys, name, says):
    """It read "error: stack config x: [Errno 2] No such file or directory: 'x'", the path twice and an errno."""
    from local.__main__ import main

    stack_file = tmp_path / name
    assert main(["--port", "0", "--stack-config", str(stack_file)]) == 2
    assert capsys.readouterr().err == f"error: stack config {stack_file}: {says}\n"


def test_a_stack_file_aws_region_that_is_no_region_code_is_a_one_line_error_before_the_model_loads(
    monkeypatch, tmp_path, capsys
):
    from local import __main__ as cli

    monkeypatch.setattr(cli, "InProcessContainer", lambda _artifact: pytest.fail("the model was loaded"))
    stack_file = tmp_path / "Pulumi.x.yaml"
    dev = (ROOT / "Pulumi.dev.yaml").read_text()
    stack_file.write_text(dev.replace("aws:region: us-east-1", "aws:region: us east"))
    assert cli.main(["--port", "0", "--stack-config", str(stack_file)]) == 2
    says = "aws:region = 'us east' is invalid: allowed an AWS region code like us-east-1"
    assert capsys.readouterr().err == f"error: stack config {stack_file}: {says}\n"


def what_main_serves(monkeypatch, tmp_path, *args: str) -> SimpleNamespace:
    """main() up to serving, which is replaced: the stack it describes, where it listens, the port it bound."""
    from local import __main__ as cli

    seen: dict = {}

    def serve(args, settings, artifact, sock, stack, where) -> int:
        seen.update(port=sock.getsockname()[1], stack=stack, where=where)
        sock.close()
        return 0

    monkeypatch.setattr(cli, "serve", serve)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"")
    assert cli.main(["--port", "0", "--artifact", str(artifact), *args]) == 0
    return SimpleNamespace(**seen)


def what_main_runs(monkeypatch, tmp_path, *args: str, while_serving=None) -> SimpleNamespace:
    """main() through serving, with stand-ins for the model, the Lambda sandboxes and uvicorn's server (whose run()
    calls `while_serving(server)`, or returns at once): what it built, what it said, what it closed."""
    from local import __main__ as cli

    seen = SimpleNamespace(closed=[], stops_asked=[])

    class Model:
        backend = "fake"

        def __init__(self, _artifact) -> None:
            pass

        def close(self) -> None:
            seen.closed.append("model")

    class Sandboxes:
        def shutdown(self, end_invocations: bool = False) -> None:
            seen.closed.append("invocations ended" if end_invocations else "sandboxes")

    def start_sandboxes(stack, region):
        seen.sandbox_region = region
        return Sandboxes()

    def create_app(stack, runtime, sandboxes, **options):
        seen.stack, seen.runtime, seen.app_options = stack, runtime, options
        return server.create_app(stack, runtime, sandboxes, **options)

    class Server:
        def __init__(self, config, drain, announce, give_up) -> None:
            self.config, self.give_up = config, give_up
            seen.server_log_level = config.log_level

        def handle_exit(self, sig, frame) -> None:
            seen.stops_asked.append(sig)

        def run(self, sockets) -> None:
            if while_serving is not None:
                while_serving(self)

    monkeypatch.setattr(cli, "InProcessContainer", Model)
    monkeypatch.setattr(cli, "start_sandboxes", start_sandboxes)
    monkeypatch.setattr(cli, "create_app", create_app)
    monkeypatch.setattr(cli, "DrainingServer", Server)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"")
    seen.status = cli.main(["--port", "0", "--artifact", str(artifact), *args])
    return seen


def test_the_banner_gives_the_stacks_urls_and_what_it_serves_with(monkeypatch, tmp_path, capsys):
    """What `make demo` prints once it serves: the URLs to open or call, and the stack config's limits."""
    ran = what_main_runs(monkeypatch, tmp_path)
    assert ran.status == 0
    base_url = ran.stack.base_url
    # The dev stack's values as its file has them: a copier who re-measures memorySizeMb keeps this test passing.
    dev = load_stack_file(ROOT / "Pulumi.dev.yaml")
    assert capsys.readouterr().out == (
        "loading model.tar.gz into the inprocess runtime tier ...\n"
        "\nmobilenet-serverless local stack (config Pulumi.dev.yaml, model backend fake)\n"
        f"  site      {base_url}/\n"
        f"  api       POST {base_url}/predict\n"
        f"  runtime   POST {base_url}/endpoints/mobilenet-local/invocations (MaxConcurrency {dev.max_concurrency},"
        f" serverless memory {dev.memory_size_mb} MB)\n"
        f"  throttle  /predict at {dev.api_throttle_rate_limit} requests/s, bursts of {dev.api_throttle_burst_limit}"
        " (apiThrottleRateLimit/BurstLimit), then API Gateway's 429 (STAGE_THROTTLE=0 or --no-stage-throttle lifts"
        " it)\n"
        "  listening on 127.0.0.1 only; Ctrl-C stops\n"
        "\nstopped\n"
    )
    what_main_runs(monkeypatch, tmp_path, "--no-stage-throttle")
    assert "  throttle  off (--no-stage-throttle): /predict takes any rate\n" in capsys.readouterr().out


def test_the_options_and_the_stack_config_reach_the_tiers(monkeypatch, tmp_path):
    """The stack config's region and MaxConcurrency reach the runtime tier and the sandboxes; --fault-injection
    and --log-level reach the app and uvicorn; and the open-file limit is raised before serving."""
    import local.__main__

    # local.__main__'s own raise_open_file_limit (the tests above hold what it sets): a fake resource module in
    # sys.modules would be every thread's import of it.
    raised = []
    monkeypatch.setattr(local.__main__, "raise_open_file_limit", lambda: raised.append("raised"))
    stack_file = tmp_path / "Pulumi.x.yaml"
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    for key, value in (("aws:region", "eu-west-1"), ("mobilenet-serverless:maxConcurrency", "3")):
        text, count = re.subn(rf"(?m)^(\s*{key}:).*$", rf"\g<1> {value}", text)
        assert count == 1, key  # the dev stack's file sets each, whatever its value
    stack_file.write_text(text)
    ran = what_main_runs(monkeypatch, tmp_path, "--stack-config", str(stack_file))
    assert (ran.sandbox_region, ran.runtime.region, ran.runtime.max_concurrency) == ("eu-west-1", "eu-west-1", 3)
    assert (ran.app_options["fault_injection"], ran.server_log_level) == (False, "warning")
    assert raised == ["raised"]
    ran = what_main_runs(monkeypatch, tmp_path, "--fault-injection", "--log-level", "DEBUG")
    assert (ran.app_options["fault_injection"], ran.server_log_level) == (True, "debug")


def test_while_it_serves_a_stop_signal_asks_the_server_to_stop_and_after_it_nothing_is_left_changed(
    monkeypatch, tmp_path, capsys
):
    """Ctrl-C, SIGTERM and SIGHUP (uvicorn handles no SIGHUP) stop the server gracefully; its grace-period overrun
    is said as the stop's own line; the runtime tier logs at the handler's level (INFO, dev's proxyLogLevel) under
    --log-level warning. Once main() returns (it may run in a longer-lived process, as here) the model and the
    sandboxes are closed, and the signal handlers, uvicorn's log and the runtime tier's level are as they were."""
    import signal

    from local.runtime import STOP_SIGNALS

    uvicorn_log, runtime_log = logging.getLogger("uvicorn.error"), logging.getLogger("local.runtime")
    cancel = "Cancel %s running task(s), timeout graceful shutdown exceeded"
    during = {}

    def serving(stack_server) -> None:
        for sig in sorted(STOP_SIGNALS):
            signal.raise_signal(sig)
        uvicorn_log.error(cancel, 2)
        stack_server.give_up()  # the grace period over: the sandboxes still running those requests are ended
        during["runtime logs INFO"] = runtime_log.isEnabledFor(logging.INFO)

    for name in ("LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"):  # a shell's would set the handler's level, and so this one
        monkeypatch.delenv(name, raising=False)
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    ran = what_main_runs(monkeypatch, tmp_path, while_serving=serving)
    assert ran.status == 0 and ran.stops_asked == sorted(STOP_SIGNALS)
    assert during == {"runtime logs INFO": True}
    assert "stopping: the requests still running after 5 s are cut short" in capsys.readouterr().out
    assert ran.closed == ["invocations ended", "sandboxes", "model"]
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before
    assert runtime_log.level == logging.NOTSET
    kept = []
    handler = logging.Handler()
    handler.emit = kept.append
    uvicorn_log.addHandler(handler)
    try:
        uvicorn_log.error(cancel, 2)
    finally:
        uvicorn_log.removeHandler(handler)
    assert len(kept) == 1, "uvicorn's log is still filtered after main() returned"


def test_the_runtime_tier_logs_at_the_handlers_level_from_the_shell_or_at_the_stacks_lower_one(
    monkeypatch, tmp_path, caplog
):
    """The runtime tier's line for an invocation pairs with the handler's: a shell's LOG_LEVEL=DEBUG, which the
    sandboxes get, shows both at DEBUG under the default --log-level; and so does a root level of DEBUG (what
    --log-level debug sets) under dev's proxyLogLevel INFO. Read from the stack file alone, or at WARNING whatever
    the root's, the runtime tier stayed at INFO while the handler (or the server) logged at DEBUG."""
    runtime_log = logging.getLogger("local.runtime")
    during = []

    def serving(stack_server) -> None:
        during.append(runtime_log.isEnabledFor(logging.DEBUG))

    monkeypatch.delenv("POWERTOOLS_LOG_LEVEL", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    what_main_runs(monkeypatch, tmp_path, while_serving=serving)
    monkeypatch.delenv("LOG_LEVEL")
    what_main_runs(monkeypatch, tmp_path, while_serving=serving)
    caplog.set_level(logging.DEBUG)
    what_main_runs(monkeypatch, tmp_path, while_serving=serving)
    assert during == [True, False, True]


def test_a_loopback_stack_is_announced_at_its_address_and_takes_the_page_opened_as_localhost(monkeypatch, tmp_path):
    served = what_main_serves(monkeypatch, tmp_path)
    base_url = f"http://127.0.0.1:{served.port}"
    assert (served.stack.base_url, served.where, served.stack.any_interface) == (base_url, "127.0.0.1 only", False)
    # Then the config's extras (dev's corsExtraOrigins: http://localhost:8000, never the free port picked here).
    assert served.stack.allowed_origins == [base_url, f"http://localhost:{served.port}", "http://localhost:8000"]
    assert served.stack.endpoint_name == "mobilenet-local"


@pytest.mark.parametrize("host", ["localhost", "LocalHost."])
def test_a_stack_bound_by_the_name_localhost_is_announced_at_its_ipv4_address(monkeypatch, tmp_path, host):
    """As `make help HOST=localhost` names it (url_host): a name is bound over IPv4."""
    served = what_main_serves(monkeypatch, tmp_path, "--host", host)
    assert served.stack.base_url == f"http://127.0.0.1:{served.port}" and served.where == "127.0.0.1 only"


def test_a_stack_on_a_lan_address_does_not_take_a_page_opened_as_localhost(monkeypatch, tmp_path):
    """Reached at a LAN address, localhost:<port> is a page of whatever runs on the browser's own machine."""
    from local import __main__ as cli

    lan = SimpleNamespace(getsockname=lambda: ("192.0.2.10", 8123), close=lambda: None)
    monkeypatch.setattr(cli, "bind", lambda host, port: lan)
    served = what_main_serves(monkeypatch, tmp_path, "--host", "192.0.2.10", "--allow-remote")
    assert served.stack.allowed_origins == ["http://192.0.2.10:8123", "http://localhost:8000"]  # dev's extra


def test_an_ipv6_stack_is_announced_at_its_bracketed_address(monkeypatch, tmp_path):
    require_ipv6_loopback()
    served = what_main_serves(monkeypatch, tmp_path, "--host", "::1")
    assert served.stack.base_url == f"http://[::1]:{served.port}" and served.where == "::1 only"


@pytest.mark.parametrize(("host", "loopback"), [("0.0.0.0", "127.0.0.1"), ("::", "[::1]")])
def test_a_stack_on_every_interface_reaches_itself_over_loopback_of_the_same_family(
    monkeypatch, tmp_path, host, loopback
):
    if ":" in host:
        require_ipv6_loopback()
    served = what_main_serves(monkeypatch, tmp_path, "--host", host, "--allow-remote")
    assert served.stack.base_url == f"http://{loopback}:{served.port}" and served.stack.any_interface
    assert served.where.startswith("every interface (REMOTE ACCESS ENABLED")


def test_the_endpoint_is_named_as_the_stack_config_names_it(monkeypatch, tmp_path):
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text(
        (ROOT / "Pulumi.dev.yaml")
        .read_text()
        .replace("config:\n", "config:\n  mobilenet-serverless:endpointName: my-classifier\n", 1)
    )
    served = what_main_serves(monkeypatch, tmp_path, "--stack-config", str(stack_file))
    assert served.stack.endpoint_name == "my-classifier"


@pytest.mark.parametrize("where", ["--artifact", "modelArtifact"])
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_artifact_named_elsewhere_than_make_model_builds_is_not_fixed_by_make_model(tmp_path, capsys, where, kind):
    """`make model` builds model/dist/model.tar.gz only: "not found; run `make model`" for another path (or for a
    directory) sent the user to a build that does not fix it."""
    from local.__main__ import main

    artifact = tmp_path / ("model.tar.gz" if kind == "missing" else "dist")
    if kind == "directory":
        artifact.mkdir()
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text(
        (ROOT / "Pulumi.dev.yaml").read_text()
        + (f"  mobilenet-serverless:modelArtifact: {artifact}\n" if where == "modelArtifact" else "")
    )
    extra = ["--artifact", str(artifact)] if where == "--artifact" else []
    assert main(["--port", "0", "--stack-config", str(stack_file), *extra]) == 2
    named_by = "--artifact" if where == "--artifact" else f"modelArtifact in {stack_file}"
    what = "not found" if kind == "missing" else "is a directory, not a model.tar.gz"
    assert capsys.readouterr().err == f"error: model artifact {artifact} ({named_by}) {what}\n"


@pytest.mark.parametrize(
    ("where", "written", "why"),
    [
        ("--artifact", "a" * 300 + ".tar.gz", "File name too long"),
        ("modelArtifact", "a" * 300 + ".tar.gz", "File name too long"),
        # YAML's "\0" escape: argv cannot hold a NUL byte, a stack file can. Python 3.13 says "lstat: embedded null
        # character in path" where 3.11 and 3.12 say "embedded null byte".
        ("modelArtifact", "model\\0.tar.gz", "embedded null"),
    ],
)
def test_an_artifact_path_the_system_cannot_look_up_is_an_error_line_not_a_traceback(
    tmp_path, capsys, where, written, why
):
    """A name longer than the file system allows made `Path.is_file()` raise ENAMETOOLONG, and a NUL byte written
    in the stack file made it raise ValueError: the stack ended in a traceback instead of naming the path."""
    from local.__main__ import main

    artifact = tmp_path / written.replace("\\0", "\0")
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text(
        (ROOT / "Pulumi.dev.yaml").read_text()
        + (f'  mobilenet-serverless:modelArtifact: "{tmp_path}/{written}"\n' if where == "modelArtifact" else "")
    )
    extra = ["--artifact", str(artifact)] if where == "--artifact" else []
    assert main(["--port", "0", "--stack-config", str(stack_file), *extra]) == 2
    named_by = "--artifact" if where == "--artifact" else f"modelArtifact in {stack_file}"
    err = capsys.readouterr().err
    prefix = f"error: model artifact {artifact} ({named_by}) cannot be read: "
    assert err.startswith(prefix) and why in err.removeprefix(prefix) and err.count("\n") == 1 and err.endswith("\n")
    assert err.count(str(artifact)) == 1, err  # not again in the reason: "[Errno 36] File name too long: '...'"


def test_a_home_folder_in_a_path_option_is_expanded(monkeypatch, tmp_path, capsys):
    """bash leaves `--artifact=~/x` (and a quoted ~) alone: the file was looked for in ./~/ and was "not found"."""
    from local.__main__ import main

    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["--port", "0", "--stack-config=~/Pulumi.x.yaml"]) == 2
    assert capsys.readouterr().err == f"error: stack config {tmp_path / 'Pulumi.x.yaml'}: No such file or directory\n"
    assert main(["--port", "0", "--artifact=~/model.tar.gz"]) == 2
    missing = (tmp_path / "model.tar.gz").resolve()
    assert capsys.readouterr().err == f"error: model artifact {missing} (--artifact) not found\n"
    (tmp_path / "Pulumi.x.yaml").write_text((ROOT / "Pulumi.dev.yaml").read_text())
    what_main_serves(monkeypatch, tmp_path, "--stack-config=~/Pulumi.x.yaml")  # read, and served


@pytest.mark.parametrize("named", [[], ["--artifact", "model/dist/model.tar.gz"]])
def test_the_artifact_make_model_builds_says_run_make_model_when_missing(tmp_path, capsys, monkeypatch, named):
    from local import __main__ as cli

    monkeypatch.setattr(cli, "ROOT", tmp_path)  # a checkout whose model/dist holds no model.tar.gz yet
    monkeypatch.chdir(tmp_path)  # and named from its root as it is written, relative
    assert cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml"), *named]) == 2
    expected = tmp_path / "model" / "dist" / "model.tar.gz"
    assert capsys.readouterr().err == f"error: model artifact {expected} not found; run `make model`\n"


@pytest.mark.parametrize("named", [[], ["--artifact", "elsewhere.tar.gz"]])
def test_a_damaged_artifact_says_run_make_model_only_for_the_one_it_builds(tmp_path, capsys, monkeypatch, named):
    """`python -m local` on a model.tar.gz cut short (an interrupted copy) said only why it did not unpack; `make
    model` rebuilds the one in model/dist, as it no longer matches its .sha256, and no other."""
    from local import __main__ as cli

    monkeypatch.setattr(cli, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    for artifact in (tmp_path / "model" / "dist" / "model.tar.gz", tmp_path / "elsewhere.tar.gz"):
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_bytes(gzip.compress(b"a tarball cut short" * 1000)[:100])
    assert cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml"), *named]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the model endpoint cannot start: cannot unpack the model artifact "), err
    assert err.endswith("; run `make model` to rebuild it\n") is (not named), err


def checkout_in(tmp_path, monkeypatch, code: bytes | None) -> tuple[Any, Path]:
    """A checkout at tmp_path as the launcher sees it (its ROOT and working folder), whose model/code/inference.py
    holds `code` (None: no model/ at all); the launcher's module, and where `make model` writes the artifact."""
    from local import __main__ as cli

    monkeypatch.setattr(cli, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    if code is not None:
        (tmp_path / "model" / "code").mkdir(parents=True)
        (tmp_path / "model" / "code" / "inference.py").write_bytes(code)
        (tmp_path / "model" / "dist").mkdir()
    return cli, tmp_path / "model" / "dist" / "model.tar.gz"


def serving_recorded(cli, monkeypatch) -> list[Path]:
    """The artifacts the launcher went on to serve, instead of serving them."""
    served: list[Path] = []
    monkeypatch.setattr(cli, "serve", lambda args, settings, artifact, sock, *_: served.append(artifact) or 0)
    return served


@pytest.mark.parametrize("precision", ["fp32", "int8", None])
def test_the_artifact_make_model_builds_from_other_code_than_the_checkouts_is_refused(
    tmp_path, capsys, monkeypatch, precision
):
    """model/code/inference.py edited (or changed by a pull) and `python -m local` run without `make model` first
    (`make demo` builds first): the old code in model/dist/model.tar.gz was served without a word. An int8 build is
    rebuilt as int8; an artifact with no precision in its metadata.json is fp32's."""
    import json

    from tests.conftest import tar_gz_of

    cli, artifact = checkout_in(tmp_path, monkeypatch, b"def model_fn(model_dir):\n    return 2\n")
    checkout_code = tmp_path / "model" / "code" / "inference.py"
    metadata = {"model": "mobilenet_v2"} | ({"precision": precision} if precision else {})
    tar_gz_of(
        artifact,
        {
            "code/inference.py": b"def model_fn(model_dir):\n    return 1\n",
            "code/vendor/cp312/x.py": b"",
            "metadata.json": json.dumps(metadata).encode(),
        },
    )
    assert cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml")]) == 2
    rebuild = "make model INT8=1" if precision == "int8" else "make model"
    assert capsys.readouterr().err == (
        f"error: model artifact {artifact} was built from another code/inference.py than {checkout_code} holds now: "
        f"run `{rebuild}` to rebuild it\n"
    )


@pytest.mark.parametrize("case", ["same code", "another path", "no code/inference.py"])
def test_an_artifact_is_served_when_its_code_is_the_checkouts_or_it_is_not_the_one_make_model_builds(
    tmp_path, monkeypatch, case
):
    """Only the artifact `make model` writes is compared: --artifact (or modelArtifact) naming another file is the
    user's own, kept on purpose (a deployed.tar.gz), and one without code/inference.py is no build of this checkout
    (the model load says what is wrong with it, as before)."""
    from tests.conftest import tar_gz_of

    cli, default = checkout_in(tmp_path, monkeypatch, b"new\n")
    served = serving_recorded(cli, monkeypatch)
    members = {"code/inference.py": b"new\n" if case == "same code" else b"old\n"}
    artifact = tar_gz_of(tmp_path / "kept.tar.gz" if case == "another path" else default, members)
    if case == "no code/inference.py":
        tar_gz_of(artifact, {"model.onnx": b"\0"})
    named = ["--artifact", str(artifact)] if case == "another path" else []
    assert cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml"), *named]) == 0
    assert served == [artifact]


@pytest.mark.parametrize("loop_at", ["model/dist", "kept.tar.gz"])
def test_a_symlink_loop_is_an_error_line_not_a_traceback(tmp_path, capsys, monkeypatch, loop_at):
    """A loop where model/dist should be (`ln -s dist model/dist`) stopped `python -m local --artifact kept.tar.gz`
    with a RuntimeError traceback from Path.resolve() (Python 3.11 and 3.12), though the artifact named was whole;
    a loop at --artifact itself did too, where a missing or unreadable one is one line."""
    from tests.conftest import tar_gz_of

    cli, _ = checkout_in(tmp_path, monkeypatch, None)
    served = serving_recorded(cli, monkeypatch)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "dist").symlink_to("dist")
    artifact = tar_gz_of(tmp_path / "kept.tar.gz", {"code/inference.py": b"old\n"})
    if loop_at == "kept.tar.gz":
        artifact.unlink()
        artifact.symlink_to("kept.tar.gz")
    status = cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml"), "--artifact", str(artifact)])
    err = capsys.readouterr().err
    if loop_at == "model/dist":
        assert (status, served, err) == (0, [artifact], "")
    else:
        assert status == 2 and served == [] and err.startswith(f"error: model artifact {artifact} (--artifact) "), err
        assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_a_full_temporary_directory_at_start_names_it_and_does_not_blame_the_artifact(tmp_path, capsys, monkeypatch):
    """A TMPDIR with no room for the unpacked model stopped `make demo` with "cannot unpack the model artifact
    ...: [Errno 28] No space left on device; run `make model` to rebuild it": the artifact was sound, a rebuild
    changed nothing, and the full directory was not named. Nothing unpacked is left behind."""
    import io
    import tarfile

    from local import __main__ as cli

    monkeypatch.setattr(cli, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    artifact = tmp_path / "model" / "dist" / "model.tar.gz"  # the one `make model` builds
    artifact.parent.mkdir(parents=True)
    with tarfile.open(artifact, "w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = 3_000_000
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    tmp = tmp_path / "tmp"
    tmp.mkdir()

    class NoRoom(tarfile.TarFile):
        def makefile(self, *_args, **_kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

    # The runtime's own tempfile and tarfile: TMPDIR and TarFile set for the process would be every thread's
    monkeypatch.setattr(runtime_module, "tempfile", tempfile_in(tmp))
    monkeypatch.setattr(runtime_module, "tarfile", SimpleNamespace(**{**vars(tarfile), "open": NoRoom.open}))
    assert cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: the model endpoint cannot start: no room in {tmp} to unpack the model artifact {artifact} (3 MB "
        "unpacked): No space left on device; free some there, or set TMPDIR to a directory with room\n"
    ), err
    assert list(tmp.iterdir()) == []


def test_a_temporary_directory_too_full_for_even_a_directory_names_it_in_one_line(tmp_path, capsys, monkeypatch):
    """A TMPDIR with not a block (or inode) free refuses the directory the model unpacks into, before any byte of
    it: that ended `make demo` in an OSError traceback, not the line a TMPDIR with a little room got."""

    from local import __main__ as cli
    from tests.conftest import tar_gz_of

    monkeypatch.setattr(cli, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    artifact = tmp_path / "model" / "dist" / "model.tar.gz"
    artifact.parent.mkdir(parents=True)
    tar_gz_of(artifact, {"model.onnx": b"\0" * 3_000_000})
    tmp = tmp_path / "tmp"
    tmp.mkdir()

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "mobilenet-model-1-x"))

    monkeypatch.setattr(runtime_module, "tempfile", tempfile_in(tmp, mkdtemp=full))  # the runtime's own tempfile
    assert cli.main(["--port", "0", "--stack-config", str(ROOT / "Pulumi.dev.yaml")]) == 1
    assert capsys.readouterr().err == (
        f"error: the model endpoint cannot start: no room in {tmp} to unpack the model artifact {artifact} (3 MB "
        "unpacked): No space left on device; free some there, or set TMPDIR to a directory with room\n"
    )


def test_a_missing_artifact_or_a_busy_port_is_a_one_line_error_and_exit_2(tmp_path, capsys):
    from local.__main__ import main

    missing = tmp_path / "model.tar.gz"
    assert main(["--port", "0", "--artifact", str(missing)]) == 2
    assert capsys.readouterr().err == f"error: model artifact {missing} (--artifact) not found\n"
    missing.write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port), "--artifact", str(missing)]) == 2
    err = capsys.readouterr().err
    # Run by hand or by make: the flag and the make variable (PORT= alone meant nothing to `python -m local`).
    busy_port = "Address already in use; try another port (--port, or make demo PORT=)"
    assert err == f"error: cannot listen on 127.0.0.1:{port}: {busy_port}\n"


def test_a_port_below_1024_without_the_privilege_is_told_to_change_the_port():
    from local.__main__ import bind_failure

    said = bind_failure(OSError(errno.EACCES, "Permission denied"))  # --port 80 as a user
    assert said == "Permission denied; try another port (--port, or make demo PORT=)"


@pytest.mark.parametrize(
    "error",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),  # a host name that does not resolve
        OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),  # an address of another machine
    ],
)
def test_a_host_that_cannot_be_bound_is_told_to_change_the_host_not_the_port(error):
    from local.__main__ import bind_failure

    said = bind_failure(error)
    assert said == f"{error.strerror}; give an address of this machine (--host, or make demo HOST=)"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        # --host ::1 where IPv6 is off: neither the port nor the address is what to change.
        (
            OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol"),
            "Address family not supported by protocol",
        ),
        (OSError("bind refused"), "bind refused"),  # no errno, no strerror: its own text
    ],
)
def test_any_other_bind_error_is_given_as_it_is_without_advice(error, says):
    from local.__main__ import bind_failure

    assert bind_failure(error) == says


def test_the_region_comes_from_the_stack_file(tmp_path):
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text("config:\n  aws:region: eu-west-1\n")
    assert server.stack_region(stack_file) == "eu-west-1"
    stack_file.write_text("encryptionsalt: x\n")
    assert server.stack_region(stack_file) == "us-east-1"
    assert server.stack_region(tmp_path / "missing.yaml") == "us-east-1"


def test_ctrl_c_while_the_sandboxes_warm_stops_the_ones_already_started(monkeypatch):
    # KeyboardInterrupt is no Exception: the sandbox process already forked must still be stopped, or it outlives
    # the stack that main() returns from (main may run inside a longer-lived process, as in these tests).
    stopped = []

    class Warming:
        def __init__(self, size: int) -> None:
            pass

        def warm(self, env) -> None:
            raise KeyboardInterrupt

        def shutdown(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(server, "LambdaSandboxes", Warming)
    stack = StackInfo(BASE_URL, ENDPOINT, load_stack_file(ROOT / "Pulumi.dev.yaml"), [BASE_URL])
    with pytest.raises(KeyboardInterrupt):
        server.start_sandboxes(stack, "us-east-1")
    assert stopped == [True]


@pytest.mark.parametrize(
    "text", [b"config:\n\tmobilenet-serverless:maxConcurrency: 5\n", b"config: [1]\n", b"aws:region: caf\xe9\n"]
)
def test_a_stack_file_the_settings_refuse_still_gives_a_region(tmp_path, text):
    # main() reports such a file itself before serving (test_a_stack_file_that_is_not_yaml_is_a_one_line_error);
    # the region, read again later, must not turn it into a traceback.
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_bytes(text)
    assert server.stack_region(stack_file) == "us-east-1"


def test_an_ipv6_host_is_bound_as_ipv6():
    require_ipv6_loopback()
    with server.bind("::1", 0) as sock:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::1"


# --- read_capped: the body, its limits and its deadline ------------------------------------------------------------
def body_request(messages: list[dict], headers: list[tuple[bytes, bytes]] = ()) -> Request:
    """A request whose body arrives as `messages` (ASGI receive events); after them, receive never returns."""
    pending = list(messages)

    async def receive() -> dict:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": list(headers)}
    return Request(scope, receive)


def test_a_body_declared_over_the_limit_is_refused_before_any_of_it_is_read():
    # Nothing of it ever arrives: refusing it must not wait for the body (or its deadline).
    request = body_request([], [(b"content-length", b"11")])
    assert asyncio.run(server.read_capped(request, 10, timeout=HANG_GUARD_S)) is None


def test_a_client_that_hangs_up_mid_body_gets_none_not_what_it_sent():
    request = body_request([{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}])
    assert asyncio.run(server.read_capped(request, 10)) is None


@pytest.mark.timeout(60)  # the default deadline, were it used, is far longer than this hang guard
def test_the_callers_body_deadline_overrides_the_default(monkeypatch):
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 3600.0)
    request = body_request([{"type": "http.request", "body": b"abc", "more_body": True}])
    with pytest.raises(server.BodyTimeout):
        asyncio.run(server.read_capped(request, 10, timeout=0.01))


# --- the shutdown guard: requests cancelled when Ctrl-C's grace period ends -----------------------------------
def run_guarded(app, send_fails: bool = False, error: Exception | None = None) -> list[dict]:
    """What server.ShutdownGuard sends for `app` on an HTTP request (its own send raising `error`, by default an
    OSError, when `send_fails`)."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if send_fails:
            raise error or OSError("the connection is gone")
        sent.append(message)

    asyncio.run(server.ShutdownGuard(app)({"type": "http"}, receive, send))
    return sent


def test_a_request_cancelled_before_it_answered_gets_the_gateways_json_503():
    async def cancelled(scope, receive, send):
        raise asyncio.CancelledError

    start, body = run_guarded(cancelled)
    assert start["status"] == 503 and (b"content-type", b"application/json") in start["headers"]
    assert json.loads(body["body"]) == {"message": "Service Unavailable"}
    # API Gateway's id, as on the gateway's every other answer (the page shows it when x-request-id is absent): this
    # one had none. One per request, as the others'.
    ids = [value for name, value in start["headers"] if name == b"apigw-requestid"]
    assert len(ids) == 1 and re.fullmatch(rb"[0-9a-f]{16}", ids[0]), start["headers"]
    assert (b"apigw-requestid", ids[0]) not in run_guarded(cancelled)[0]["headers"]


def test_a_request_cancelled_mid_answer_gets_no_second_answer():
    async def half_answered(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise asyncio.CancelledError

    assert [m["type"] for m in run_guarded(half_answered)] == ["http.response.start", "http.response.body"]


def test_a_cancelled_request_whose_client_is_gone_ends_quietly():
    async def cancelled(scope, receive, send):
        raise asyncio.CancelledError

    assert run_guarded(cancelled, send_fails=True) == []  # no exception escapes into uvicorn's log


def test_a_cancelled_lifespan_is_sent_no_http_answer():
    """uvicorn's second Ctrl-C cancels the lifespan's task (where lifespan is on): it gets no HTTP 503, which an ASGI
    server cannot take on a lifespan channel; only an http request cut short is answered."""
    sent: list[dict] = []

    async def cancelled(scope, receive, send):
        raise asyncio.CancelledError

    async def receive():
        return {"type": "lifespan.shutdown"}

    async def send(message):
        sent.append(message)

    asyncio.run(server.ShutdownGuard(cancelled)({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert sent == []


@pytest.mark.parametrize(
    "error",
    [
        h11.LocalProtocolError("Can't send data when our state is MUST_CLOSE"),
        RuntimeError("Unexpected ASGI message 'http.response.start' sent, after response already completed."),
    ],
    ids=["h11", "asgi_server"],
)
def test_a_cancelled_request_that_cannot_be_answered_for_any_reason_ends_quietly(error):
    """Not only a gone client's OSError: whatever its send raises (h11 refusing to answer into a connection in the
    wrong state, an ASGI server's own refusal), the stop's answer is given up on, and nothing escapes into the log."""

    async def cancelled(scope, receive, send):
        raise asyncio.CancelledError

    assert run_guarded(cancelled, send_fails=True, error=error) == []


# --- the drain: a stop answers the /predict requests in flight before uvicorn closes the port ----------------------
def draining_server(uvicorn_shutdown: Callable) -> type[server.DrainingServer]:
    """server.DrainingServer, the uvicorn.Server.shutdown its own ends with `uvicorn_shutdown(self, sockets)`: a class
    between the two takes it, as uvicorn.Server's own shutdown replaced would be every server's in the process."""

    class UvicornShutdown(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            await uvicorn_shutdown(self, sockets)

    class Draining(server.DrainingServer, UvicornShutdown):
        pass

    return Draining


def stop_with_a_request_in_flight(
    drain: server.Drain,
    request_s: float,
    give_up=lambda: None,
    force_exit: bool = False,
    grace: float = 0.2,
    announce=lambda _: None,
    uvicorn_shutdown: Callable = lambda self, sockets=None: asyncio.sleep(0),
) -> None:
    """server.DrainingServer stopped with one /predict request in flight that takes `request_s`, uvicorn's own
    shutdown `uvicorn_shutdown`."""
    instance = draining_server(uvicorn_shutdown)(
        uvicorn.Config(app=None, timeout_graceful_shutdown=grace), drain, announce=announce, give_up=give_up
    )
    instance.force_exit = force_exit

    async def stop() -> None:
        async def request() -> None:
            with drain.tracking():
                await asyncio.sleep(request_s)

        running = asyncio.create_task(request())
        await asyncio.sleep(0)  # in flight
        await instance.shutdown()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    asyncio.run(stop())


def drained(request_s: float, grace: float = 0.5, force_exit: bool = False) -> tuple[list, list[str]]:
    """What uvicorn's own shutdown finds once server.DrainingServer has drained one /predict request in flight that
    takes `request_s`: (stopping, requests still in flight, the grace period left it), and what was announced."""
    seen, said = [], []
    drain = server.Drain()

    async def uvicorn_shutdown(self, sockets=None) -> None:
        seen.append((drain.stopping, len(drain.requests), self.config.timeout_graceful_shutdown))

    stop_with_a_request_in_flight(
        drain, request_s, force_exit=force_exit, grace=grace, announce=said.append, uvicorn_shutdown=uvicorn_shutdown
    )
    return seen, said


def test_once_a_stop_has_begun_predict_says_so_and_runs_no_function_while_the_runtime_still_answers(caplog):
    drain = server.Drain()
    stack = InProcessStack(drain=drain)
    drain.stopping = True
    try:
        with caplog.at_level(logging.INFO, logger="local.access"):
            response = stack.predict(headers={"origin": BASE_URL})
        assert response.status_code == 503 and response.json() == {"message": "The local stack is stopping."}
        # Logged as ShutdownGuard's 503 is: the route's, with no integration.
        assert_the_gateways_own_line(caplog, response, "POST", "POST /predict")
        # The gateway's own answer: its id, no CORS headers; and the connection closes, as the server is going away.
        assert len(response.headers["apigw-requestid"]) == 16 and response.headers["connection"] == "close"
        assert not any(name.startswith("access-control-") for name in response.headers)
        assert stack.sandboxes.events == []
        assert stack.invoke(b"x").status_code == 200  # what the handlers still in flight call
    finally:
        stack.runtime.close()  # its model thread, idle for the rest of the run otherwise


def test_a_predict_request_is_in_flight_for_the_drain_until_it_is_answered():
    """What a stop waits for: a /predict request running its function is in drain.requests until its answer (left
    out, a stop found nothing in flight and closed the port under the handlers still calling the runtime tier)."""
    drain = server.Drain()
    stack = InProcessStack(drain=drain)
    invocations: list[Future] = []
    submit = stack.sandboxes.submit
    stack.sandboxes.submit = lambda *args, **kwargs: invocations.append(submit(*args, **kwargs)) or invocations[-1]
    stack.sandboxes.result = Sandboxes.NEVER

    async def predict_while_looking() -> tuple[set, httpx.Response]:
        transport = httpx.ASGITransport(app=stack.app, client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            answer = asyncio.create_task(client.post("/predict", content=JPEG, headers=with_type(())))
            await wait_until_async(lambda: invocations)
            in_flight = set(drain.requests)
            invocations[0].set_result({"statusCode": 200, "body": "done"})
            return in_flight, await answer

    try:
        in_flight, response = asyncio.run(predict_while_looking())
    finally:
        stack.runtime.close()
    assert len(in_flight) == 1 and response.status_code == 200 and response.text == "done"
    assert drain.requests == set()


def test_a_predict_request_cancelled_before_its_answer_is_in_flight_no_more():
    """However a /predict request ends, the drain stops waiting for it: one cancelled while its function ran (as at a
    stop) and left in drain.requests would hold the next stop for the whole grace period, for a task long done."""
    drain = server.Drain()
    stack = InProcessStack(drain=drain)
    stack.sandboxes.result = Sandboxes.NEVER

    async def cancel_in_flight() -> int:
        transport = httpx.ASGITransport(app=stack.app, client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            answer = asyncio.create_task(client.post("/predict", content=JPEG, headers=with_type(())))
            await wait_until_async(lambda: stack.sandboxes.events)
            in_flight = len(drain.requests)
            answer.cancel()
            await asyncio.wait([answer])
            return in_flight

    try:
        in_flight = asyncio.run(cancel_in_flight())
    finally:
        stack.runtime.close()
    assert in_flight == 1
    assert drain.requests == set()


def test_once_a_stop_has_begun_predict_takes_the_whole_body_before_it_says_so():
    # Answered with Connection: close while a photo of a few MB was still arriving, the close reset the connection
    # and a client still sending (http.client, a browser's fetch) saw that reset, not the 503 (5 of 5 at 4 MB).
    drain = server.Drain()
    stack = InProcessStack(drain=drain)
    drain.stopping = True
    chunks, events = [b"\xff" * 65536] * 64, []

    async def receive():
        events.append("body")
        return {"type": "http.request", "body": chunks.pop(), "more_body": bool(chunks)}

    async def send(message):
        events.append(message["type"])

    size = str(sum(map(len, chunks))).encode()
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg"), (b"content-length", size)]
    scope = http_scope("POST", "/predict", headers)
    asyncio.run(stack.app(scope, receive, send))
    assert chunks == [] and events.index("http.response.start") == events.count("body")
    assert stack.sandboxes.events == []


def test_a_stop_waits_for_the_request_in_flight_and_leaves_uvicorn_the_rest_of_the_grace_period():
    [(stopping, in_flight, left)], said = drained(request_s=0.1)
    assert stopping and in_flight == 0 and 0.0 < left <= 0.4
    assert said == ["stopping: answering the 1 /predict request in flight first (at most 0.5 s)"]


def test_a_stop_announces_how_many_requests_it_waits_for_and_no_limit_without_a_grace_period():
    said, drain = [], server.Drain()
    draining = draining_server(lambda self, sockets=None: asyncio.sleep(0))
    instance = draining(uvicorn.Config(app=None, timeout_graceful_shutdown=None), drain, said.append)

    async def stop() -> None:
        async def request() -> None:
            with drain.tracking():
                await asyncio.sleep(0.05)

        running = [asyncio.create_task(request()) for _ in range(2)]
        await asyncio.sleep(0)  # both in flight
        await instance.shutdown()
        await asyncio.gather(*running)

    asyncio.run(stop())
    assert said == ["stopping: answering the 2 /predict requests in flight first"]
    assert not drain.cut_short and drain.requests == set()


def test_a_request_outliving_the_grace_period_is_left_to_uvicorn_with_none_of_it_left():
    # One grace period in all: uvicorn then cancels what still runs at once (ShutdownGuard answers it), not after
    # waiting a second grace period of its own.
    [(stopping, in_flight, left)], _ = drained(request_s=3600)
    assert stopping and in_flight == 1 and left == 0.0


def test_answers_the_drain_let_through_get_time_to_be_written_even_at_the_deadline():
    # A drain that ended in the grace period's last moments left uvicorn 0 s, and it cancelled the answers it was
    # still writing; what still runs at the deadline is left to uvicorn with nothing more.
    assert server.grace_left_to_uvicorn(0.0, drained=True) == server.ANSWER_WRITE_S > 0
    assert server.grace_left_to_uvicorn(-0.01, drained=True) == server.ANSWER_WRITE_S
    assert server.grace_left_to_uvicorn(3.0, drained=True) == 3.0
    assert server.grace_left_to_uvicorn(-0.01, drained=False) == 0.0
    assert server.grace_left_to_uvicorn(0.3, drained=False) == 0.3


def test_a_second_ctrl_c_does_not_wait_for_the_requests_in_flight():
    [(stopping, in_flight, left)], said = drained(request_s=3600, force_exit=True)
    assert stopping and in_flight == 1 and left > 0.4 and said == []


@pytest.mark.parametrize("force_exit", [False, True])
def test_requests_given_up_on_are_cancelled_then_their_sandboxes_ended_before_the_port_closes(force_exit):
    """Left to run past the stop, a /predict request's handler called the runtime tier uvicorn's shutdown had closed,
    and logged "model_not_ready" after "stopped". Its request is cancelled first (ShutdownGuard's 503), as a sandbox
    ended first would fail it with a 500; and all of it before uvicorn's own shutdown closes the port."""
    events = []
    drain = server.Drain()

    async def uvicorn_shutdown(self, sockets=None) -> None:
        events.append(("uvicorn", drain.cut_short))

    give_up = lambda: events.append(("give_up", [task.cancelling() for task in drain.requests]))  # noqa: E731
    stop_with_a_request_in_flight(drain, 3600, give_up, force_exit=force_exit, uvicorn_shutdown=uvicorn_shutdown)
    assert events == [("give_up", [1]), ("uvicorn", True)]


def test_a_drained_stop_ends_no_sandbox():
    given_up = []
    drain = server.Drain()
    stop_with_a_request_in_flight(drain, 0.05, lambda: given_up.append("give_up"))
    assert given_up == [] and not drain.cut_short


@pytest.mark.parametrize(("scheme", "port"), [("http", "80"), ("https", "443")])
def test_without_a_server_address_the_event_names_the_schemes_default_port(tiers, scheme, port):
    # ASGI leaves `server` out where the server has no address to give (a Unix socket behind a forwarder): the
    # port the client connected to is then the scheme's own, not 80 for https.
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg")]
    sent = asgi(tiers.app, "POST", "/predict", headers, scheme=scheme, server=None)
    assert sent[0]["status"] == 200, sent
    (event,) = tiers.sandboxes.events
    assert event["headers"]["x-forwarded-port"] == port and event["headers"]["x-forwarded-proto"] == scheme


def test_the_lifespan_protocol_passes_through_the_middleware(tiers):
    # uvicorn runs ASGI's lifespan first (a scope without headers): a middleware that read them raised KeyError,
    # and uvicorn would take the app for one without lifespan support and never run its startup.
    sent: list[str] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(tiers.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_function_result_with_several_cookies_sets_each_one(tiers):
    tiers.sandboxes.result = {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2"], "body": "{}"}
    response = tiers.predict()
    assert response.status_code == 200 and response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]


# --- the API tier's own answers ---------------------------------------------------------------------------------
def test_only_post_reaches_the_function(tiers):
    for method in ("GET", "PUT", "DELETE"):
        response = tiers.request(method, "/predict")
        assert response.status_code == 404 and response.json() == {"message": "Not Found"}, method
    assert tiers.sandboxes.events == []


def test_a_request_head_of_exactly_the_limit_is_served_and_one_byte_more_is_431(tiers):
    """API Gateway's 10 KB: the request line counts method, path and query plus 12 (two spaces, HTTP/1.1, CRLF),
    each header its name and value plus 4 (': ', CRLF)."""

    def status(pad: int) -> int:
        headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/jpeg"), (b"x-pad", b"p" * pad)]
        sent = asgi(tiers.app, "POST", "/predict", headers, query=b"top_k=3")
        return sent[0]["status"]

    fixed = len("POST") + len("/predict") + len("top_k=3") + 12
    fixed += (4 + 14 + 4) + (12 + 10 + 4) + (5 + 4)
    assert status(gateway.MAX_HEADER_BYTES - fixed) == 200
    assert status(gateway.MAX_HEADER_BYTES - fixed + 1) == 431
    assert len(tiers.sandboxes.events) == 1


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "DELETE", "X" * 50_000], ids=["GET", "OPTIONS", "DELETE", "50KB"])
def test_a_head_over_the_gateways_limit_is_431_whatever_the_method(tiers, method):
    """The 10 KB is the API's quota, not the POST route's: a preflight, a GET (no route: 404 under the limit) or a
    50 KB method name over it gets the JSON 431 before any route is looked for."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"origin", b"http://127.0.0.1:8000"),
        (b"access-control-request-method", b"POST"),
        (b"x-pad", b"p" * (gateway.MAX_HEADER_BYTES if len(method) < 100 else 0)),
    ]
    sent = asgi(tiers.app, method, "/predict", headers)
    assert sent[0]["status"] == 431, sent[0]
    assert json.loads(b"".join(part.get("body", b"") for part in sent[1:])) == {
        "message": "Request Header Fields Too Large"
    }
    assert tiers.sandboxes.events == []


def test_a_head_over_the_gateways_limit_off_predict_is_not_the_apis_431(tiers):
    """Only /predict is the API's: a method no route lists, with a head over 10 KB, on any other path is the 404 of
    a route not found, as the site's files and the runtime tier have no such limit (README, "a request to /predict,
    whatever its method, gets the gateway tier's JSON 431")."""
    sent = asgi(tiers.app, "X" * 50_000, "/nope", [(b"host", b"127.0.0.1:8000")])
    assert sent[0]["status"] == 404, sent[0]
    assert tiers.sandboxes.events == []


def test_a_head_far_over_the_gateways_limit_still_gets_its_json_431_from_the_served_stack(tiers):
    """The served stack buffers heads up to MAX_HEAD_BUFFER_BYTES so that one over API Gateway's 10 KB reaches the
    gateway tier and gets its JSON 431: left at h11's 16 KB, a head that does not arrive whole in one read (asyncio
    reads at most 256 KB at a time) got uvicorn's 400 instead."""
    pad = "p" * (1024 * 1024)
    head = f"POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-length: 0\r\nx-pad: {pad}\r\n\r\n"
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(head.encode())
        answer, body = parsed_answer(read_answer(conn))
    assert answer.status_code == 431, body
    assert json.loads(body) == {"message": "Request Header Fields Too Large"}
    assert tiers.sandboxes.events == []


def test_the_served_stack_closes_a_connection_whose_head_never_completes(tiers, monkeypatch):
    """uvicorn_config serves with HeadDeadlineProtocol (test_slow_clients.py checks the protocol under a config of its
    own): with uvicorn's default protocol half a head held its connection for as long as the client liked."""
    monkeypatch.setattr(server.HeadDeadlineProtocol, "head_timeout", 0.2)
    with served(tiers.app) as address, socket.create_connection(address, timeout=HANG_GUARD_S) as conn:
        conn.sendall(b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n")
        assert conn.recv(65536) == b"", "closed without an answer"  # TimeoutError after the hang guard otherwise


def test_a_bound_port_takes_connections_before_the_stack_serves():
    # bind() listens at once: a page or script connecting while the model still loads waits for its answer; an
    # unlistened port refused it (ECONNREFUSED), as if no stack were starting.
    with server.bind("127.0.0.1", 0) as sock, socket.create_connection(sock.getsockname()[:2], timeout=HANG_GUARD_S):
        pass


def test_a_body_over_the_gateways_limit_is_413_before_the_function(tiers, monkeypatch):
    async def streamed(size: int):  # chunked: no Content-Length, so only the streaming count can refuse it
        yield b"x" * size

    monkeypatch.setattr(gateway, "MAX_BODY_BYTES", 16)
    assert tiers.predict(b"x" * 16).status_code == 200
    assert tiers.predict(streamed(16)).status_code == 200
    for over in (b"x" * 17, streamed(17)):
        response = tiers.predict(over)
        assert response.status_code == 413 and response.json() == {"message": "Request Entity Too Large"}
    assert len(tiers.sandboxes.events) == 2


def test_an_event_over_lambdas_limit_is_413_and_the_function_never_runs(tiers, monkeypatch, caplog):
    monkeypatch.setattr(gateway, "LAMBDA_MAX_EVENT_BYTES", 1000)  # a small body, base64-encoded into the event
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.predict(b"x" * 1000)
    assert response.status_code == 413 and response.json() == {"message": "Request Entity Too Large"}
    assert response.headers["apigw-requestid"] and tiers.sandboxes.events == []
    # Its access line: the route matched, and no invocation, so no integration request id or latency.
    assert_the_gateways_own_line(caplog, response, "POST", "POST /predict")


def test_an_invocation_waiting_for_its_sandbox_to_start_holds_up_no_other_request(tiers, monkeypatch):
    """A new sandbox's start waits for the Lambda fork server to send its pid: one that does not answer (SIGSTOP, a
    debugger) froze the whole stack, /ping, the site, the runtime tier the running sandboxes call, and Ctrl-C, as the
    invocation was handed over on the event loop (chaos review). Only that invocation may wait."""
    started, release, gave_up = threading.Event(), threading.Event(), threading.Event()
    hand_over = tiers.sandboxes.submit

    def slow_start(event, context, *, crash=False):
        started.set()
        if not release.wait(HANG_GUARD_S):
            gave_up.set()  # nobody released it: what answered meanwhile waited for this
        return hand_over(event, context, crash=crash)

    monkeypatch.setattr(tiers.sandboxes, "submit", slow_start)
    answers: list[httpx.Response] = []
    with served(tiers.app) as (host, port):
        url = f"http://{host}:{port}"
        headers = {"content-type": "image/jpeg"}
        predicting = threading.Thread(
            target=lambda: answers.append(httpx.post(f"{url}/predict", content=JPEG, headers=headers, timeout=90))
        )
        predicting.start()
        try:
            assert started.wait(HANG_GUARD_S), "the invocation never reached the sandboxes"
            # An event loop held by slow_start answers /ping only once slow_start gives up waiting.
            assert httpx.get(f"{url}/ping", timeout=2 * HANG_GUARD_S).status_code == 200
            assert not gave_up.is_set(), "/ping answered only once the invocation's hand-over ended"
        finally:
            release.set()
            predicting.join(HANG_GUARD_S)
    assert [answer.status_code for answer in answers] == [200]


def test_a_result_over_lambdas_response_limit_is_api_gateways_500(tiers):
    """Lambda's synchronous response is capped at 6 MB (Lambda quotas, "Invocation payload (request and response)"):
    a bigger one fails the invocation with "Response payload size exceeded maximum allowed payload size (6291556
    bytes)" (DataBiosphere/azul#8192, where API Gateway's log gives it as the integration error;
    aws/aws-lambda-dotnet#1815), a function error, which an HTTP API answers with its 500. The handler's answers are
    small; a handler changed to echo a large body worked here and failed deployed."""
    tiers.sandboxes.result = {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "A" * 6_291_556}
    response = tiers.predict()
    assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}


def test_an_injected_sandbox_crash_hits_exactly_that_many_invocations(tiers):
    # Two: with one, a count set to 0 at the first crash rather than counted down passed as well.
    tiers.runtime.faults.sandbox_crash = 2
    for _ in range(3):
        tiers.predict()
    assert tiers.sandboxes.crashes == [True, True, False] and tiers.runtime.faults.sandbox_crash == 0


def test_an_injected_sandbox_crash_waits_for_an_invocation_past_what_never_reaches_the_function(tiers, monkeypatch):
    # A crash fault is spent on an invocation: an event over Lambda's limit invokes nothing, so the next one crashes.
    tiers.runtime.faults.sandbox_crash = 1
    monkeypatch.setattr(gateway, "LAMBDA_MAX_EVENT_BYTES", 1000)
    assert tiers.predict(b"x" * 1000).status_code == 413
    monkeypatch.undo()
    tiers.predict()
    assert tiers.sandboxes.crashes == [True] and tiers.runtime.faults.sandbox_crash == 0


def test_server_timing_names_the_gateways_time_and_the_functions(tiers, monkeypatch, caplog):
    clock = iter([10.0, 10.25, 10.5, 12.0])  # started, event built, function invoked, function answered
    monkeypatch.setattr(server, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    with caplog.at_level(logging.INFO, logger="local.access"):
        response = tiers.predict()
    assert response.headers["server-timing"] == "event;dur=250.00, handler;dur=1750.00"
    # The access log's integrationLatency is the invocation's time alone, as API Gateway's is Lambda's.
    assert access_lines(caplog)[0]["integrationLatency"] == "1500"


def test_the_function_is_given_its_deployed_timeout(tiers):
    """The handler budgets its endpoint calls on the remaining time: the function's timeout, as deployed."""
    from handlers.proxy_core import LAMBDA_TIMEOUT_S

    tiers.predict()
    assert 0 < tiers.sandboxes.contexts[0].get_remaining_time_in_millis() <= LAMBDA_TIMEOUT_S * 1000


def test_the_function_is_given_its_deployed_name_arn_region_and_memory_size():
    """Powertools logs the context's name, ARN and memory size with every line: the stack's, as deployed (the name
    the program gives the function, the stack's region and partition, proxyMemorySizeMb). The name follows the stack's
    endpointName: with every test on mobilenet-local, a name fixed to it passed."""
    settings = dataclasses.replace(load_stack_file(ROOT / "Pulumi.dev.yaml"), proxy_memory_size_mb=512)
    own = InProcessStack(settings=settings, endpoint_name="photos-prod")
    own.runtime.region = "cn-north-1"
    try:
        assert own.predict().status_code == 200
        context = own.sandboxes.contexts[0]
        assert context.memory_limit_in_mb == "512"
        assert context.function_name == "photos-prod-proxy"
        assert context.invoked_function_arn == "arn:aws-cn:lambda:cn-north-1:000000000000:function:photos-prod-proxy"
        assert context.log_group_name == "/aws/lambda/photos-prod-proxy"
    finally:
        own.runtime.close()


def test_a_request_cancelled_while_the_function_runs_is_answered_503_in_json(tiers):
    tiers.sandboxes.result = Sandboxes.CANCELLED  # what uvicorn does to requests still running at shutdown
    response = tiers.predict()
    assert response.status_code == 503 and response.json() == {"message": "Service Unavailable"}


# --- the runtime tier and the odd routes ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["other", "mobilenet"])  # a prefix of the endpoint's name is another name
def test_the_runtime_refuses_an_endpoint_it_does_not_serve(tiers, name):
    response = tiers.request("POST", f"/endpoints/{name}/invocations", content=b"x", headers=with_type({}))
    assert response.status_code == 400 and response.headers["x-amzn-errortype"] == "ValidationError"
    assert f"Endpoint {name} of" in response.json()["message"] and tiers.container.seen == []


def test_an_endpoint_name_with_a_slash_is_a_validation_error_like_any_other_name(tiers):
    """README: any other name than the endpoint's gets ValidationError (HTTP 400), and every answer of the runtime
    tier carries an x-amzn-RequestId. boto3 sends EndpointName="a/b" percent-encoded, as /endpoints/a%2Fb/invocations
    (a name SageMaker's EndpointName pattern does not allow; botocore does not check the pattern itself)."""
    response = tiers.request("POST", "/endpoints/a%2Fb/invocations", content=b"x", headers=with_type({}))
    assert response.status_code == 400 and response.headers.get("x-amzn-errortype") == "ValidationError", response.text
    assert response.headers.get("x-amzn-requestid")
    assert tiers.container.seen == []


@pytest.mark.parametrize("path", ["/endpoints/a/b/invocations", "/endpoints/a%2Fb/invocations/invocations"])
def test_a_path_of_more_segments_than_invoke_endpoints_is_no_route(tiers, path):
    """Only an encoded slash belongs to the name: a path whose name would take a segment of its own is no
    InvokeEndpoint call, and gets API Gateway's 404 as any other path does."""
    response = tiers.request("POST", path, content=b"x", headers=with_type({}))
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}, response.text
    assert "x-amzn-requestid" not in response.headers and tiers.container.seen == []


def test_the_runtime_is_handed_the_requests_headers_and_refuses_a_target_it_does_not_have(tiers):
    """InvokeEndpoint's headers reach the runtime tier: one naming a target model (a multi-model endpoint's) is
    refused as SageMaker refuses it, and the model never runs."""
    response = tiers.invoke(b"x", headers={"x-amzn-sagemaker-target-model": "other.tar.gz"})
    assert response.status_code == 400 and response.headers["x-amzn-errortype"] == "ValidationError"
    assert "does not support target model header" in response.json()["message"] and tiers.container.seen == []
    assert response.json()["ErrorCode"] == "TARGET_MODEL_HEADER_NOT_SUPPORTED"  # the body's field too, end to end


def test_ping_is_200_as_the_containers(tiers):
    assert tiers.request("GET", "/ping").status_code == 200


LOOPBACK_CLIENT = ("127.0.0.1", 4321)
JSON_TYPE = {"content-type": "application/json"}


def test_fault_injection_is_served_only_when_asked_for():
    assert InProcessStack().request("POST", "/__local/faults", json={"throttle": 1}).status_code == 404
    own = InProcessStack(fault_injection=True, client=LOOPBACK_CLIENT)
    try:
        set_ = own.request("POST", "/__local/faults", json={"sandbox_crash": 2})
        assert set_.status_code == 200 and set_.json()["faults"]["sandbox_crash"] == 2
        assert own.runtime.faults.sandbox_crash == 2
        assert own.request("GET", "/__local/faults").status_code == 404  # POST and DELETE only
        cleared = own.request("DELETE", "/__local/faults")
        assert cleared.status_code == 200 and cleared.json()["faults"]["sandbox_crash"] == 0
        ill_typed = (
            b'{"delay_s": "5"}',
            b'{"throttle": "x"}',
            b'{"model_status": "500"}',
            b'{"down": "no"}',
            b'{"down": 1}',
        )
        fractions = (b'{"throttle": 1.5}', b'{"sandbox_crash": 2.0}')  # counts are whole numbers
        wrong = (b'{"delay_s": -1}', b'{"delay_s": 1e999}', b'{"throttle": true}', b'{"model_status": 99}')
        no_float_holds = b'{"delay_s": 1' + b"0" * 400 + b"}"  # json reads a whole number of any length as an int
        out_of_range = (b'{"throttle": -1}', b'{"sandbox_crash": -2}', b'{"model_status": 600}')
        # A list of known names; nested too deep (within the route's 64 KiB cap).
        not_objects = (b"[]", b'["delay_s"]', b"null", b"[" * 60_000)
        for bad in (
            b"1",
            b"[1]",
            b'{"nope": 1}',
            b"not json",
            *not_objects,
            *ill_typed,
            *fractions,
            *wrong,
            *out_of_range,
            no_float_holds,
            b'{"model_message": 5}',
        ):
            refused = own.request("POST", "/__local/faults", content=bad, headers=JSON_TYPE)
            assert refused.status_code == 400 and refused.json()["message"], bad
            assert own.runtime.faults == Faults(), bad  # nothing of a refused spec is kept
            if bad.startswith(b'{"') and b"nope" not in bad:  # a known field of a wrong value: the field is named
                assert refused.json()["message"].startswith(f"fault {next(iter(json.loads(bad)))} must be "), bad
        accepted = own.request("POST", "/__local/faults", json={"delay_s": 1, "model_status": 599, "down": False})
        assert accepted.status_code == 200 and own.runtime.faults.delay_s == 1
        lowest = own.request("POST", "/__local/faults", json={"model_status": 100})
        assert lowest.status_code == 200 and own.runtime.faults.model_status == 100
        off = own.request("POST", "/__local/faults", json={"model_status": 0})  # 0 is "off", not a status
        assert off.status_code == 200 and own.runtime.faults.model_status == 0
        none = own.request("POST", "/__local/faults", json={"delay_s": 0, "throttle": 0, "sandbox_crash": 0})
        assert none.status_code == 200 and own.runtime.faults == Faults()  # 0 is each one's "off"
        bare = own.request("POST", "/__local/faults", json={"model_status": 500, "model_message": ""})
        assert bare.status_code == 200 and own.runtime.faults.model_message == ""  # as asked, not the default
        # A refused value is quoted in its first 40 characters of JSON, not echoed whole.
        long = own.request("POST", "/__local/faults", json={"delay_s": "9" * 100})
        assert long.json()["message"] == f'fault delay_s must be a number of seconds >= 0, not "{"9" * 39}'
        listed = own.request("POST", "/__local/faults", json=["delay_s"] * 20)
        assert (
            listed.json()["message"]
            == f"faults must be a JSON object of fields, not {json.dumps(['delay_s'] * 20)[:40]}"
        )
    finally:
        own.runtime.close()


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_faults_are_refused_from_another_machine_and_without_a_json_body(peer):
    """Test machinery only this machine drives: with --allow-remote another host reaches the stack, and any web
    page the developer opens may POST text/plain to it (a simple request, no preflight), but not JSON."""
    remote = InProcessStack(fault_injection=True)  # the peer is 192.0.2.7
    local = InProcessStack(fault_injection=True, client=(peer, 4321))
    try:
        for method, kwargs in (("POST", {"json": {"down": True}}), ("DELETE", {})):
            refused = remote.request(method, "/__local/faults", **kwargs)
            assert refused.status_code == 403 and "this machine" in refused.json()["message"], method
        assert remote.runtime.faults == Faults()
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": content_type} if content_type else {}
            cross_site = local.request("POST", "/__local/faults", content=b'{"down": true}', headers=headers)
            assert cross_site.status_code == 415 and cross_site.json()["message"], content_type
        assert local.runtime.faults == Faults()
        sent = local.request(
            "POST", "/__local/faults", content=b'{"down": true}', headers={"content-type": "Application/JSON ; x=1"}
        )
        assert sent.status_code == 200 and local.runtime.faults.down
    finally:
        remote.runtime.close()
        local.runtime.close()


def test_faults_are_refused_when_the_peer_is_unknown():
    """No peer address (an ASGI server on a Unix socket): nothing shows the request came from this machine."""
    own = InProcessStack(fault_injection=True, client=None)
    try:
        refused = own.request("POST", "/__local/faults", json={"down": True})
        assert refused.status_code == 403 and "this machine" in refused.json()["message"]
        assert own.runtime.faults == Faults()
    finally:
        own.runtime.close()


def test_a_faults_body_that_stalls_is_answered_408_and_one_over_the_cap_413(monkeypatch):
    """The README: "Stalled clients cannot hold the server's descriptors: ... It must complete its body within 60 s,
    else JSON 408". The faults route read its body with `await request.body()`: a stalled one held the connection for
    ever (seen on a running stack: no answer after 90 s), and a body of any size was buffered whole. It now reads as
    /predict does, and closes the connection after either refusal (RFC 9110 15.5.9)."""
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.05)
    own = InProcessStack(fault_injection=True, client=LOOPBACK_CLIENT)

    async def send(content) -> httpx.Response | None:
        transport = httpx.ASGITransport(app=own.app, client=own.client)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            request = client.post("/__local/faults", content=content, headers=JSON_TYPE)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANG_GUARD_S):
                    return await request
            return None

    async def over_the_cap():  # streamed, with no Content-Length to refuse it by
        yield b'{"model_message": "'
        yield b"x" * server.FAULTS_MAX_BODY_BYTES
        yield b'"}'

    try:
        stalled = asyncio.run(send(stalled_body()))
        # Held until the test's guard, it is None, or the 503 ShutdownGuard gives the guard's cancellation.
        status = None if stalled is None else stalled.status_code
        assert status == 408, f"{status}: the stalled body held the request until the test's guard"
        assert stalled.json() == {"message": "Request Timeout"} and stalled.headers["connection"] == "close"
        large = asyncio.run(send(over_the_cap()))
        assert (large.status_code, large.json()) == (413, {"message": "Request Entity Too Large"})
        assert large.headers["connection"] == "close"
        assert own.runtime.faults == Faults()
        # Just under the cap is read as usual.
        message = "x" * (server.FAULTS_MAX_BODY_BYTES - len('{"model_message": ""}'))
        fits = asyncio.run(send(json.dumps({"model_message": message}).encode()))
        assert fits.status_code == 200 and own.runtime.faults.model_message == message
    finally:
        own.runtime.close()


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_a_faults_body_of_64_kib_is_read_and_one_byte_more_is_413(streamed):
    """The README's cap is 64 KiB: a body of exactly 65,536 bytes sets its faults, and one of 65,537 is refused, whether
    its Content-Length says so or it arrives in chunks (the test above measures against the constant, so it held any
    cap)."""
    cap = 64 * 1024  # the README's figure, not server.FAULTS_MAX_BODY_BYTES
    own = InProcessStack(fault_injection=True, client=LOOPBACK_CLIENT)

    def body_of(size: int):
        body = json.dumps({"model_message": "x" * (size - len('{"model_message": ""}'))}).encode()
        assert len(body) == size
        if not streamed:
            return body

        async def chunks():
            yield body[: size // 2]
            yield body[size // 2 :]

        return chunks()

    try:
        over = own.request("POST", "/__local/faults", content=body_of(cap + 1), headers=JSON_TYPE)
        assert (over.status_code, over.json()) == (413, {"message": "Request Entity Too Large"}), over.text
        assert own.runtime.faults == Faults()
        fits = own.request("POST", "/__local/faults", content=body_of(cap), headers=JSON_TYPE)
        assert fits.status_code == 200 and len(own.runtime.faults.model_message) == cap - len('{"model_message": ""}')
    finally:
        own.runtime.close()


@pytest.mark.parametrize(
    "header",
    [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "127.0.0.1"),  # what the client said: a forwarder appends, or passes it on as it is
        ("forwarded", "for=203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
    ],
)
def test_faults_are_refused_through_a_forwarder_on_this_machine(header):
    """Behind a reverse proxy or port forwarder on this machine every peer is loopback: the forwarding header says
    the request came from elsewhere, and naming this machine in it proves nothing either."""
    forwarded = InProcessStack(fault_injection=True, client=LOOPBACK_CLIENT)
    try:
        refused = forwarded.request("POST", "/__local/faults", json={"down": True}, headers=dict([header]))
        assert refused.status_code == 403 and "this machine" in refused.json()["message"], header
        assert forwarded.runtime.faults == Faults()
    finally:
        forwarded.runtime.close()


def test_x_forwarded_proto_counts_from_a_loopback_peer_only():
    codespace = {"host": "name-8000.app.github.dev", "x-forwarded-proto": "https"}
    for client, scheme in ((LOOPBACK_CLIENT, "https"), (CLIENT, "http")):
        stack = InProcessStack(any_interface=True, client=client)
        try:
            config_js = stack.request("GET", "/config.js", headers=codespace)
            assert f'"apiUrl": "{scheme}://name-8000.app.github.dev"' in config_js.text, client
            page = stack.request("GET", "/", headers=codespace)
            assert "connect-src 'self';" in page.headers["content-security-policy"], client
        finally:
            stack.runtime.close()


def test_x_forwarded_proto_is_http_or_https_and_the_nearest_forwarder_s_wins():
    """Any other value (or one a client put before the forwarder's own) would become the page's API origin."""
    stack = InProcessStack(any_interface=True, client=LOOPBACK_CLIENT)
    host = ("host", "name-8000.app.github.dev")
    try:
        for headers, scheme in (
            ([host, ("x-forwarded-proto", "javascript")], "http"),
            ([host, ("x-forwarded-proto", "ws")], "http"),
            ([host, ("x-forwarded-proto", "wss")], "http"),
            ([host, ("x-forwarded-proto", "client-sent"), ("x-forwarded-proto", "https")], "https"),
        ):
            config_js = stack.request("GET", "/config.js", headers=headers)
            assert f'"apiUrl": "{scheme}://name-8000.app.github.dev"' in config_js.text, headers
    finally:
        stack.runtime.close()


def test_the_served_app_sees_the_socket_peer_whatever_x_forwarded_for_says(monkeypatch):
    """As `python -m local` serves it (server.uvicorn_config): uvicorn's default would take the client from
    X-Forwarded-For (from any peer with FORWARDED_ALLOW_IPS=*, a common setting in container images, so another
    machine could pass for this one), where API Gateway's sourceIp is the TCP connection's source; the header is
    passed on to the function as a header."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    stack = InProcessStack(fault_injection=True, any_interface=True)
    sock = server.bind("127.0.0.1", 0)
    instance = uvicorn.Server(server.uvicorn_config(stack.app, "error"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: instance.started or not thread.is_alive(), "the test server started")
        assert instance.started
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        spoofed = with_type([("x-forwarded-for", "203.0.113.9")])
        response = httpx.post(f"{url}/predict", content=JPEG, headers=spoofed, timeout=HANG_GUARD_S)
        assert response.status_code == 200, response.text
        [event] = stack.sandboxes.events
        assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
        # Passed on, with the connection's peer appended as the gateway's own entry.
        assert event["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        port = str(sock.getsockname()[1])
        assert (event["headers"]["x-forwarded-port"], event["headers"]["x-forwarded-proto"]) == (port, "http")
        # A forwarder on this machine that terminates TLS (Codespaces) still gets an https page calling https.
        codespace = {"host": "name-8000.app.github.dev", "x-forwarded-proto": "https"}
        config_js = httpx.get(f"{url}/config.js", headers=codespace, timeout=HANG_GUARD_S)
        assert '"apiUrl": "https://name-8000.app.github.dev"' in config_js.text
        # And the function is told the scheme the browser used, as API Gateway tells it https.
        behind = httpx.post(f"{url}/predict", content=JPEG, headers=with_type(codespace), timeout=HANG_GUARD_S)
        assert behind.status_code == 200, behind.text
        assert stack.sandboxes.events[-1]["headers"]["x-forwarded-proto"] == "https"
    finally:
        instance.should_exit = True
        thread.join(timeout=HANG_GUARD_S)
        stack.runtime.close()


# --- the site tier: odd names, and the page's CSP ------------------------------------------------------------------
def test_an_upper_case_extension_has_its_content_type_and_a_name_too_long_is_a_json_404(tiers, www):
    (www / "SHOUT.JS").write_text("1")
    shout = tiers.request("GET", "/SHOUT.JS")
    assert shout.status_code == 200 and shout.headers["content-type"].startswith("application/javascript")
    too_long = tiers.request("GET", "/" + "a" * 300 + ".html")  # the file system refuses the name (OSError)
    assert too_long.status_code == 404 and too_long.json() == {"message": "Not Found"}


def test_the_page_may_call_its_own_origin_as_self_and_the_api_by_name_from_another(tiers, www):
    same = tiers.request("GET", "/")
    assert "connect-src 'self';" in same.headers["content-security-policy"]
    other = tiers.request("GET", "/", headers={"host": "localhost:8000"})  # the API stays at 127.0.0.1
    assert f"connect-src {BASE_URL};" in other.headers["content-security-policy"]


def test_config_js_is_javascript():
    own = InProcessStack()
    try:
        response = own.request("GET", "/config.js")
        assert response.headers["content-type"].startswith("application/javascript")
    finally:
        own.runtime.close()


def test_bound_to_one_lan_address_its_own_host_is_served():
    # --allow-remote on one interface: the Host guard is for loopback binds, where rebinding is the threat.
    own = InProcessStack(base_url="http://192.0.2.2:8000")
    try:
        response = own.request("GET", "/config.js", headers={"host": "192.0.2.2:8000"})
        assert response.status_code == 200 and '"apiUrl": "http://192.0.2.2:8000"' in response.text
    finally:
        own.runtime.close()


# --- the protocol's deadlines: none left running once met or once the connection is gone -------------------------
class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"peername": CLIENT, "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class TimerLog:
    """The running loop, with a record of the timers the protocol starts."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timers: list[tuple[str, asyncio.TimerHandle]] = []
        self.delays: dict[str, float] = {}  # each timer's delay, by its callback's name

    def call_later(self, delay, callback, *args):
        handle = self.loop.call_later(delay, callback, *args)
        self.timers.append((callback.__name__, handle))
        self.delays[callback.__name__] = delay
        return handle

    def pending(self) -> list[str]:
        return [name for name, handle in self.timers if not handle.cancelled()]

    def __getattr__(self, name):
        return getattr(self.loop, name)


def test_the_protocols_deadlines_stop_once_met_and_when_the_connection_is_lost():
    async def scenario() -> None:
        answer = asyncio.Event()

        async def app(scope, receive, send):
            await answer.wait()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        loop = TimerLog(asyncio.get_running_loop())
        config = uvicorn.Config(app, lifespan="off", log_level="error")
        protocol = server.HeadDeadlineProtocol(config, ServerState(), app_state={}, _loop=loop)
        lost = False
        try:
            protocol.connection_made(Transport())
            assert loop.pending() == ["_head_too_slow"]
            protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert loop.pending() == [], "a complete head leaves no head deadline running"
            protocol.pause_writing()
            assert loop.pending() == ["_write_deadline_passed"]
            # Each deadline is its own: a reader paused for longer than a head may take is not dropped for it.
            assert loop.delays == {
                "_head_too_slow": server.HEAD_TIMEOUT_S,
                "_write_deadline_passed": server.WRITE_STALL_TIMEOUT_S,
            }
            protocol.resume_writing()
            assert loop.pending() == [], "writing again leaves no write deadline running"
            answer.set()
            async with asyncio.timeout(HANG_GUARD_S):
                while not protocol.cycle.response_complete:
                    await asyncio.sleep(0)
            protocol.data_received(b"GET / HTTP/1.1\r\n")  # the next request's first bytes
            protocol.pause_writing()
            assert loop.pending() == ["_head_too_slow", "_write_deadline_passed"]
            protocol.connection_lost(None)
            lost = True
            assert loop.pending() == [], "a lost connection leaves no deadline running"
        finally:
            # A failed check must not leave the app waiting for its answer or for paused writes to drain: the
            # loop's shutdown would wait for it, and the test would hang instead of failing.
            answer.set()
            if not lost:
                protocol.connection_lost(None)

    asyncio.run(scenario())


# --- what is not HTTP/1.1: one JSON 400 that a client can parse, and the connection closed by the server ---------
class RecordingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data) -> None:
        self.written += data


def parsed_answer(raw: bytes) -> tuple[h11.Response, bytes]:
    """The answer as a strict HTTP/1.1 client reads it: by its Content-Length, up to the server's close."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    client.receive_data(b"")  # the server closed: a body shorter than announced is an error here
    head, body = None, b""
    while (event := client.next_event()) is not h11.NEED_DATA:
        if isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    assert head is not None, raw
    return head, body


def run_protocol(scenario) -> None:
    """Run `scenario(protocol, transport, answer)` on a HeadDeadlineProtocol whose app answers 204 once `answer`
    is set; the app never reads the body."""

    async def main() -> None:
        answer = asyncio.Event()

        async def app(scope, receive, send):
            await answer.wait()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        config = uvicorn.Config(app, lifespan="off", log_level="critical")
        protocol = server.HeadDeadlineProtocol(config, ServerState(), app_state={}, _loop=asyncio.get_running_loop())
        transport = RecordingTransport()
        protocol.connection_made(transport)
        try:
            await scenario(protocol, transport, answer)
        finally:
            answer.set()
            protocol.connection_lost(None)

    asyncio.run(main())


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        # A head that parsed, then a body that is no chunked body: the request is under way (the app has it and
        # has not answered), and it still gets the 400.
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nnot a chunk size\r\n",
    ],
    ids=["garbled-head", "garbled-body"],
)
def test_what_is_not_http_gets_one_parseable_json_400_and_the_server_closes(raw):
    async def scenario(protocol, transport, answer) -> None:
        protocol.data_received(raw)
        assert transport.closed, "the server closes the connection itself, not some deadline later"
        head, body = parsed_answer(transport.written)
        assert (head.status_code, head.reason) == (400, b"Bad Request")  # the status line uvicorn's own 400 had
        headers = {name: value for name, value in head.headers}
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"connection"] == b"close", "the client is told nothing more will be read"
        assert json.loads(body) == {"message": "Bad Request: not a valid HTTP/1.1 request"}

    run_protocol(scenario)


@pytest.mark.parametrize("upgrade", [b"h2c", b"websocket"])
def test_a_request_asking_to_upgrade_is_answered_and_logs_nothing(caplog, upgrade):
    # uvicorn warned twice for each one (the second line: install a WebSocket library), a client's to repeat at will.
    async def scenario(protocol, transport, answer) -> None:
        protocol.logger = logging.getLogger("tests.local.uvicorn")  # uvicorn's own, left at the level it warns at
        with caplog.at_level(logging.WARNING, logger="tests.local.uvicorn"):
            protocol.data_received(
                b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: " + upgrade + b"\r\n"
                b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
            )
            answer.set()
            async with asyncio.timeout(HANG_GUARD_S):
                while not protocol.cycle.response_complete:
                    await asyncio.sleep(0)
        assert transport.written.startswith(b"HTTP/1.1 204 ")
        assert caplog.records == []

    run_protocol(scenario)


def test_an_app_answering_a_request_the_server_already_refused_is_not_an_error():
    """A head that parses, then a garbled body in the same packet: the 400 goes out while the app has the request.
    An app that answers without reading the body (static files, the gateway's 404 and 431) then answered into a
    finished connection: h11 raised LocalProtocolError out of its send, and uvicorn logged the traceback."""
    failures: list[BaseException] = []
    finished = asyncio.Event()

    async def app(scope, receive, send):
        try:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        except Exception as error:
            failures.append(error)
        finally:
            finished.set()

    async def scenario() -> None:
        config = uvicorn.Config(app, lifespan="off", log_level="critical")
        protocol = server.HeadDeadlineProtocol(config, ServerState(), app_state={}, _loop=asyncio.get_running_loop())
        transport = RecordingTransport()
        protocol.connection_made(transport)
        try:
            protocol.data_received(
                b"GET / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nnot a chunk size\r\n"
            )
            async with asyncio.timeout(HANG_GUARD_S):
                await finished.wait()
            assert failures == []
            head, _ = parsed_answer(transport.written)
            assert head.status_code == 400, "the one answer is the 400"
        finally:
            protocol.connection_lost(None)

    asyncio.run(scenario())


def test_garbage_after_an_answer_closes_the_connection_and_sends_nothing_more():
    async def scenario(protocol, transport, answer) -> None:
        protocol.data_received(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello")
        answer.set()
        async with asyncio.timeout(HANG_GUARD_S):
            while not protocol.cycle.response_complete:
                await asyncio.sleep(0)
        answered = transport.written
        assert parsed_answer(answered)[0].status_code == 204
        protocol.data_received(b"\r\nnot a chunk size\r\n")
        assert transport.closed, "nothing after it can be trusted to parse"
        assert transport.written == answered, "no 400 can follow an answer"

    run_protocol(scenario)


# --- the listening socket and the stack file ------------------------------------------------------------------
def test_accepted_connections_send_at_once_and_a_restart_can_rebind_at_once():
    async def nodelay_of_an_accepted_connection(sock: socket.socket) -> int:
        accepted = asyncio.get_running_loop().create_future()

        def on_connect(reader, writer):
            accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = await asyncio.start_server(on_connect, sock=sock)
        async with listener:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            async with asyncio.timeout(HANG_GUARD_S):
                nodelay = await accepted
            writer.close()
        return nodelay

    sock = server.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    # No ~40 ms wait for the client's delayed ACK: asyncio sets TCP_NODELAY on what this socket accepts.
    assert asyncio.run(nodelay_of_an_accepted_connection(sock)) != 0
    # The server closed first, so its side of that connection lingers in TIME_WAIT; a restart binds anyway.
    with server.bind("127.0.0.1", port) as again:
        # Not inherited: a child started without close_fds would otherwise hold the port after the stack stops.
        assert not again.get_inheritable()


def test_a_port_that_cannot_be_bound_leaves_no_socket_open():
    """`python -X dev -m local --port <busy>` said "ResourceWarning: unclosed <socket.socket ...>" under its error
    line: the socket whose bind() failed was never closed (and main() runs inside longer-lived processes)."""
    import gc
    import warnings

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            try:
                server.bind("127.0.0.1", busy.getsockname()[1])
            except OSError as e:
                assert e.errno == errno.EADDRINUSE
            else:
                pytest.fail("bound a port that is in use")
            gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_the_region_is_read_as_the_settings_are(tmp_path):
    """A stack file is read as Pulumi reads it (components/settings.py): a tag written like an impossible date is
    the text written, so load_stack_file takes it, and the region must be read from it too, not a ValueError."""
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text(
        "config:\n  aws:region: eu-west-1\n  aws:defaultTags:\n    tags:\n      reviewed: 2026-02-30\n"
    )
    load_stack_file(stack_file)
    assert server.stack_region(stack_file) == "eu-west-1"


@pytest.mark.parametrize(
    "text",
    ["", "config:\n", "config:\n  aws:region:\n", "config:\n  aws:region: ''\n"],
    ids=["empty", "null", "blank", "quoted"],
)
def test_a_stack_file_without_a_region_means_us_east_1(tmp_path, text):
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text(text)
    assert server.stack_region(stack_file) == "us-east-1"


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "post", "get", "options"])
@pytest.mark.parametrize("path", ["/predict", "/", "/index.html", "/ping", "/endpoints/mobilenet-local/invocations"])
def test_any_method_token_gets_the_gateways_json_404_not_a_plain_text_405(tiers, method, path):
    sent = asgi(tiers.app, method, path, [(b"host", b"127.0.0.1:8000")])
    assert sent[0]["status"] == 404, (method, path)
    assert json.loads(sent[1]["body"]) == {"message": "Not Found"}
    assert len(dict(sent[0]["headers"]).get(b"apigw-requestid", b"")) == 16  # like every answer of its own
    assert tiers.sandboxes.events == []


@pytest.mark.parametrize(
    "target", ["*", "127.0.0.1:8000", "predict", "https://127.0.0.1:8000/predict", "ftp://127.0.0.1:8000/predict"]
)
def test_a_request_target_that_is_not_a_path_gets_the_gateways_json_404(tiers, target):
    # uvicorn hands absolute-form, asterisk-form and authority-form targets over as the scope's path unchanged;
    # only an http: absolute-form target names this plain-HTTP server (see the next tests).
    sent = asgi(tiers.app, "POST", target, [(b"host", b"127.0.0.1:8000")])
    assert sent[0]["status"] == 404 and dict(sent[0]["headers"])[b"content-type"] == b"application/json"
    assert json.loads(sent[1]["body"]) == {"message": "Not Found"}


def served_raw(app, raw: bytes) -> tuple[h11.Response, bytes]:
    """The answer of `app` behind the server's own HTTP/1.1 protocol to the bytes `raw`, as a client reads it."""

    async def main() -> tuple[h11.Response, bytes]:
        config = uvicorn.Config(app, lifespan="off", log_level="critical")
        protocol = server.HeadDeadlineProtocol(config, ServerState(), app_state={}, _loop=asyncio.get_running_loop())
        transport = RecordingTransport()
        protocol.connection_made(transport)
        try:
            protocol.data_received(raw)
            async with asyncio.timeout(HANG_GUARD_S):
                while protocol.cycle is None or not protocol.cycle.response_complete:
                    await asyncio.sleep(0)
            return parsed_answer(transport.written)
        finally:
            protocol.connection_lost(None)

    return asyncio.run(main())


def served_event(app, target: bytes) -> dict:
    """The event the function is handed for a POST of JPEG to `target`, sent as the bytes a client writes."""
    raw = (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1:8000\r\n" % target
        + b"content-type: image/jpeg\r\ncontent-length: %d\r\n\r\n" % len(JPEG)
        + JPEG
    )
    head, body = served_raw(app, raw)
    assert head.status_code == 200, body
    return json.loads(body)


def test_an_absolute_form_request_target_is_routed_like_its_path(tiers):
    # RFC 9112 3.2.2: a server MUST accept absolute-form (what a client sends through an HTTP proxy). The same
    # request in origin-form reaches the function; this one got the gateway's 404.
    event = served_event(tiers.app, b"HTTP://127.0.0.1:8000/predict?top_k=3")
    assert (event["rawPath"], event["rawQueryString"]) == ("/predict", "top_k=3")
    assert event["requestContext"]["http"]["path"] == "/predict"
    assert base64.b64decode(event["body"]) == JPEG
    site, page = served_raw(tiers.app, b"GET http://localhost:8000 HTTP/1.1\r\nhost: localhost:8000\r\n\r\n")
    assert site.status_code == 200 and b"<html" in page.lower(), "an empty path is /"


def test_a_percent_encoded_path_reaches_the_function_decoded(tiers):
    # An HTTP API hands the function its path decoded, in rawPath as in requestContext.http.path (live captures,
    # cited in middleapi/standard-server#93: REST APIs and function URLs keep the encoding, HTTP APIs do not).
    event = served_event(tiers.app, b"/%70redict")
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/predict"


def test_an_absolute_form_target_is_percent_decoded_as_its_origin_form_is(tiers):
    # uvicorn decodes an origin-form path (/%69ndex.html is /index.html): the same path in absolute-form names the
    # same file.
    host = b"host: 127.0.0.1:8000\r\n\r\n"
    origin, page = served_raw(tiers.app, b"GET /%69ndex.html HTTP/1.1\r\n" + host)
    absolute, same = served_raw(tiers.app, b"GET http://127.0.0.1:8000/%69ndex.html HTTP/1.1\r\n" + host)
    assert origin.status_code == absolute.status_code == 200 and same == page and b"<html" in page.lower()


@pytest.mark.parametrize(
    ("authority", "host", "status"),
    [
        (b"rebind.example:8000", b"127.0.0.1:8000", 403),  # the target's authority is the host that counts
        (b"127.0.0.1:8000", b"rebind.example:8000", 200),  # and the Host header is ignored (RFC 9112 3.2.2)
        (b"user@127.0.0.1:8000", b"127.0.0.1:8000", 403),  # userinfo: not a plain host[:port]
        (b"", b"127.0.0.1:8000", 403),  # no authority at all
    ],
)
def test_the_host_guard_judges_the_authority_of_an_absolute_form_target(tiers, authority, host, status):
    raw = b"GET http://%s/config.js HTTP/1.1\r\nhost: %s\r\n\r\n" % (authority, host)
    head, body = served_raw(tiers.app, raw)
    assert head.status_code == status, body
    if status == 403:
        assert "DNS rebinding" in json.loads(body)["message"]
    else:
        assert b'"apiUrl": "http://127.0.0.1:8000"' in body
