"""Fixtures for the Lambda proxy tests: API Gateway v2 events, a fake Lambda context, the handler module
reloaded under a controlled environment, and an in-process fake sagemaker-runtime HTTP server."""

from __future__ import annotations

import base64
import importlib
import json
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The handler is imported as the package `handlers`, exactly as Lambda will ("handlers.inference_proxy").
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

ENDPOINT = "mobilenet-test"
SITE = "https://d111111abcdef8.cloudfront.net"
# A marker inside every test image, so log tests can prove no payload bytes leaked.
PIXELS = b"SECRET-PIXELS-0123456789" * 8
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + PIXELS
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + PIXELS
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + PIXELS
GIF = b"GIF89a\x01\x00\x01\x00" + PIXELS


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_event(
    *,
    method: str = "POST",
    path: str = "/predict",
    body: bytes | str | None = None,
    content_type: str | None = "image/jpeg",
    base64_body: bool | None = None,
    query: dict[str, str] | None = None,
    origin: str | None = SITE,
    request_id: str | None = "req-abc-123",
    stage: str = "$default",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload-2.0 event. Bytes bodies are base64'd the way API Gateway does."""
    all_headers = {"host": "api.example.com", "user-agent": "pytest"}
    if content_type is not None:
        all_headers["content-type"] = content_type
    if origin is not None:
        all_headers["origin"] = origin
    all_headers.update(headers or {})
    if isinstance(body, bytes):
        encoded = base64_body if base64_body is not None else True
        body_text: str | None = b64(body) if encoded else body.decode("utf-8")
    else:
        encoded = bool(base64_body)
        body_text = body
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "api.example.com",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": "pytest",
        },
        "routeKey": "POST /predict",
        "stage": stage,
        "time": "25/Nov/2025:10:00:00 +0000",
        "timeEpoch": 1764064800000,
    }
    if request_id is not None:
        request_context["requestId"] = request_id
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": path if stage == "$default" else f"/{stage}{path}",
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": all_headers,
        "requestContext": request_context,
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if body_text is not None:
        event["body"] = body_text
    return event


def json_event(document: Any, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("content_type", "application/json")
    return make_event(body=json.dumps(document), **kwargs)


@dataclass
class FakeLambdaContext:
    function_name: str = "inference-proxy"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:inference-proxy"
    aws_request_id: str = "lambda-req-789"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def response_json(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The Lambda's environment with dummy credentials; nothing can reach AWS."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
        "MAX_IMAGE_BYTES",
        "POWERTOOLS_LOGGER_LOG_EVENT",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("ALLOWED_ORIGINS", f"{SITE}, http://127.0.0.1:8080/")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "inference-proxy")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MobilenetServerlessTest")
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    return monkeypatch


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def load_proxy() -> Any:
    """(Re)import the handler module so its module-scope config reads the current environment."""
    if "handlers.inference_proxy" in sys.modules:
        module = importlib.reload(sys.modules["handlers.inference_proxy"])
    else:
        module = importlib.import_module("handlers.inference_proxy")
    # Powertools binds its log handler to the sys.stdout of the first import, and pytest swaps sys.stdout
    # between test phases: write wherever sys.stdout points at the moment of each log call.
    module.logger.registered_handler.stream = _CurrentStdout()
    return module


@pytest.fixture
def proxy(proxy_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return load_proxy()


class NoCallClient:
    """Stands in for the sagemaker-runtime client where validation must stop a request first."""

    def __init__(self) -> None:
        self.calls = 0

    def invoke_endpoint(self, **_: Any) -> Any:
        self.calls += 1
        raise AssertionError("InvokeEndpoint must not be called for this request")


# --------------------------------------------------------------------------------------------------------
# In-process fake sagemaker-runtime: real botocore HTTP, retries, timeouts and error parsing.


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    # Sent only when the test ends: a reply that outlasts any read timeout, however loaded the machine (one that
    # was merely late could still arrive before a starved client noticed its timeout).
    held: bool = False
    delay_s: float = 0.0  # sent this late: an answer that uses up time without reaching a read timeout
    # Its status and headers sent at once, its body only when the test ends: an answer whose body times out.
    body_held: bool = False
    # Its status and headers (a Content-Length for the whole body) and half its body, then the connection closes.
    body_cut: bool = False
    # The connection closes after the request is read, before any status line.
    hang_up: bool = False


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


def model_error_reply(original_status: int, original_message: str) -> Reply:
    """ModelError exactly as SageMaker sends it: HTTP 424 wrapping the container's status and body."""
    document = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/mobilenet-test",
        "Message": f'Received client error ({original_status}) from primary with message "{original_message}". '
        "See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
        "group=/aws/sagemaker/Endpoints/mobilenet-test in account 123456789012 for more information.",
        "OriginalMessage": original_message,
        "OriginalStatusCode": original_status,
    }
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"}
    return Reply(424, json.dumps(document).encode(), headers)


def aws_error_reply(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        json.dumps({"message": message}).encode(),
        {"Content-Type": "application/json", "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"},
    )


class FakeRuntime:
    def __init__(self) -> None:
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.seen: list[Seen] = []
        self.release = threading.Event()  # sends the held replies
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                runtime.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                try:
                    reply = runtime.replies.get_nowait()
                except queue.Empty:
                    reply = Reply(500, b'{"message": "fake runtime: no scripted reply"}')
                if reply.held:
                    runtime.release.wait(timeout=60)
                elif reply.delay_s:
                    runtime.release.wait(timeout=reply.delay_s)
                if reply.hang_up:
                    return  # this HTTP/1.0 server then closes the connection
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.body_held:
                        runtime.release.wait(timeout=60)
                    self.wfile.write(reply.body[: len(reply.body) // 2] if reply.body_cut else reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (read timeout); that is the point of the test

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for serve_forever to look at its flag, which it does once per poll_interval: at the
        # default 0.5 s, every test using this fixture spent up to half a second in its teardown.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def script(self, *replies: Reply) -> None:
        for reply in replies:
            self.replies.put(reply)


@pytest.fixture
def fake_runtime(proxy_env: pytest.MonkeyPatch) -> Iterator[FakeRuntime]:
    runtime = FakeRuntime()
    runtime.thread.start()
    proxy_env.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    yield runtime
    runtime.release.set()
    runtime.server.shutdown()
    runtime.server.server_close()


@pytest.fixture
def runtime_proxy(fake_runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]) -> Any:
    """The handler module whose boto3 client talks HTTP to the fake runtime."""
    return load_proxy()
