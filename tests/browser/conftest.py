"""Fixtures for the browser tests: headless Debian Chromium through Playwright, a stub stack, a UI driver.

The stub stack mirrors the deployed shape on purpose: the site and the API are two origins (CloudFront vs
API Gateway), so CORS preflight and exposed headers are exercised, and the site is served with the CDN's
Content-Security-Policy, so an inline script or style in www/ fails here rather than in production.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from components.policies import (
    CORS_EXPOSE_HEADERS,
    CORS_MAX_AGE_S,
    CROSS_ORIGIN_OPENER_POLICY,
    CROSS_ORIGIN_RESOURCE_POLICY,
    PERMISSIONS_POLICY,
    content_security_policy,
)
from components.site_config import CONFIG_JS_CACHE_CONTROL, CONFIG_JS_CONTENT_TYPE, render_config_js
from tests.ci import skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
WWW = PROJECT_ROOT / "www"
SAMPLES = WWW / "samples"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
# How long Playwright (and the stub's gates) wait for what must happen. Only a hang guard, never the thing
# tested: with 5 s, a loaded machine failed a test whose page took longer than that to classify a sample against
# the instantly answering stub. No test relies on a wait running out.
WAIT_MS = 60_000

# Deliberately not ImageNet classes: nothing the stub answers may pass for a model's opinion.
STUB_PREDICTIONS = [
    {"label": "stub label one", "prob": 0.62},
    {"label": "stub label two", "prob": 0.21},
    {"label": "stub label three", "prob": 0.11},
    {"label": "stub label four", "prob": 0.04},
    {"label": "stub label five", "prob": 0.02},
]


# --------------------------------------------------------------------------------------------------
# Chromium / Playwright


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    skip_or_fail(
        f"{CHROMIUM} not found (apt-get install chromium); browser tests need Debian's Chromium",
        "CI must install it (.ci/run does)",
    )


# Module scope, not session: Playwright's sync API keeps its asyncio loop marked as running on the main
# thread while it is alive, which breaks every other asyncio user in the session (Pulumi's mock engine).
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class ConsoleLog:
    """Console errors and uncaught page errors, so a test can assert the page ran clean."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser: Any, console: ConsoleLog) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    new_page = context.new_page()
    new_page.set_default_timeout(WAIT_MS)
    new_page.on("console", lambda msg: console.errors.append(msg.text) if msg.type == "error" else None)
    new_page.on("pageerror", lambda exc: console.errors.append(f"pageerror: {exc}"))
    try:
        yield new_page
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------------------------------------
# Stub stack


@dataclass
class Scripted:
    """One canned answer for POST /predict. `gate`, when given, holds the answer until the test sets it."""

    status: int = 200
    body: Any = None
    # A callable value is called when the answer is sent (e.g. an HTTP-date relative to that moment).
    headers: dict[str, str | Callable[[], str] | None] = field(default_factory=dict)
    gate: threading.Event | None = None
    media_type: str = "text/plain"  # for a str body (a proxy's HTML error page is text/html)
    # False: no CORS headers, as on API Gateway's own refusals before any integration (its stage throttling's 429).
    cors: bool = True
    # Given: the headers and the first half of the body go out at once, the rest only once the test sets it, as from
    # a network that stalls mid-answer. `cut_short`: the rest never comes, the connection closing short of the
    # Content-Length it declared (a connection lost mid-answer).
    body_gate: threading.Event | None = None
    cut_short: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


class StubStack:
    """Site origin (www/ + config.js) and API origin (fake /predict) on two loopback ports."""

    default_predictions = STUB_PREDICTIONS

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Scripted] = deque()
        self._requests: list[RecordedRequest] = []
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        site_sock, api_sock = _bind_loopback(), _bind_loopback()
        self.url = f"http://127.0.0.1:{site_sock.getsockname()[1]}"
        self.api_url = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
        self._serve(self._site_app(), site_sock)
        self._serve(self._api_app(), api_sock)

    # -- test-facing API
    def script(self, *answers: Scripted | dict[str, Any]) -> None:
        """Queue answers for the next POST /predict calls (dicts are Scripted's fields); then the default."""
        queued = [a if isinstance(a, Scripted) else Scripted(**a) for a in answers]
        with self._lock:
            self._queue.extend(queued)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def predict_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    def close(self) -> None:
        for server, thread in self._servers:
            server.should_exit = True
            thread.join(timeout=10)

    # -- apps
    def _site_app(self) -> Starlette:
        # The CSP the StaticSite component gives CloudFront for this API URL, built by the same function: a copy
        # kept here would let the page pass under a policy the CDN no longer serves.
        csp = content_security_policy(self.api_url)

        async def config_js(_: Request) -> Response:
            return Response(
                render_config_js(self.api_url),
                media_type=CONFIG_JS_CONTENT_TYPE,
                headers={"Cache-Control": CONFIG_JS_CACHE_CONTROL},
            )

        return Starlette(
            routes=[
                Route("/config.js", config_js),
                Mount("/", app=StaticFiles(directory=WWW, html=True)),
            ],
            middleware=[
                Middleware(
                    _AddHeaders,
                    headers={
                        "content-security-policy": csp,
                        "permissions-policy": PERMISSIONS_POLICY,
                        "cross-origin-opener-policy": CROSS_ORIGIN_OPENER_POLICY,
                        "cross-origin-resource-policy": CROSS_ORIGIN_RESOURCE_POLICY,
                        "x-content-type-options": "nosniff",
                    },
                )
            ],
        )

    def _api_app(self) -> Starlette:
        async def predict(request: Request) -> Response:
            body = await request.body()
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        request.method,
                        request.url.path,
                        request.url.query,
                        dict(request.headers),
                        body,
                        time.monotonic(),
                    )
                )
                answer = self._queue.popleft() if self._queue else Scripted()
                number = len(self._requests)
            if answer.gate is not None:
                await asyncio.to_thread(answer.gate.wait, WAIT_MS / 1000)
            # A scripted None removes a header (API Gateway's own errors have no x-request-id).
            headers = {"x-request-id": f"stub-req-{number}", **answer.headers}
            headers = {name: value() if callable(value) else value for name, value in headers.items()}
            headers = {name: value for name, value in headers.items() if value is not None}
            if not answer.cors:
                headers[_NO_CORS] = "1"
            if answer.body is None and answer.status == 200:
                payload: Any = {
                    "predictions": STUB_PREDICTIONS,
                    "model": "mobilenet_v2",
                    "latency_ms": {"total": 41.2, "endpoint": 35.0},
                }
            else:
                payload = answer.body
            if isinstance(payload, str):
                response = Response(payload, status_code=answer.status, headers=headers, media_type=answer.media_type)
            else:
                response = JSONResponse(payload, status_code=answer.status, headers=headers)
            if answer.body_gate is None and not answer.cut_short:
                return response
            return _stalled(response, answer.body_gate, answer.cut_short)

        return Starlette(
            routes=[Route("/predict", predict, methods=["POST"])],
            middleware=[
                Middleware(_DropCors),  # outermost: it sees the CORS headers CORSMiddleware added
                Middleware(
                    CORSMiddleware,
                    allow_origins=[self.url],
                    allow_methods=["POST"],
                    allow_headers=["content-type"],
                    expose_headers=list(CORS_EXPOSE_HEADERS),  # what the deployed API exposes
                    max_age=CORS_MAX_AGE_S,
                ),
            ],
        )

    def _serve(self, app: Starlette, sock: socket.socket) -> None:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + WAIT_MS / 1000
        while thread.is_alive() and not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise RuntimeError("stub uvicorn server did not start")
        self._servers.append((server, thread))


class _AddHeaders:
    """ASGI middleware stamping fixed headers on every response, as the CDN's headers policy does."""

    def __init__(self, app: Any, headers: dict[str, str]) -> None:
        self.app = app
        self.raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.raw]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _stalled(response: Response, gate: threading.Event | None, cut_short: bool) -> StreamingResponse:
    """`response` with its body sent in two halves: the second after `gate`, or never when `cut_short`."""
    whole = bytes(response.body)
    half = len(whole) // 2

    async def chunks() -> Any:
        yield whole[:half]
        if gate is not None:
            await asyncio.to_thread(gate.wait, WAIT_MS / 1000)
        if not cut_short:
            yield whole[half:]

    # The declared length stays the whole body's, so an answer cut short is one the browser sees broken off.
    return StreamingResponse(chunks(), status_code=response.status_code, headers=dict(response.headers))


_NO_CORS = "x-stub-no-cors"


class _DropCors:
    """ASGI middleware removing the CORS headers from an answer scripted with cors=False (marked by _NO_CORS)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_without_cors(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if any(name.lower() == _NO_CORS.encode() for name, _ in headers):
                    kept = [(n, v) for n, v in headers if not n.lower().startswith(b"access-control-")]
                    message = {**message, "headers": [(n, v) for n, v in kept if n.lower() != _NO_CORS.encode()]}
            await send(message)

        await self.app(scope, receive, send_without_cors)


def _bind_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@pytest.fixture(scope="session")
def _stub_servers() -> Iterator[StubStack]:
    stack = StubStack()
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def stub_stack(_stub_servers: StubStack) -> Iterator[StubStack]:
    _stub_servers.reset()
    yield _stub_servers
    _stub_servers.reset()


# ==================================================================================================
# ==================================================================================================
# UI driver


class UiDriver:
    """The page's moves as the tests need them; selectors live here, not in every test."""

    STATUS = "#status"

    def __init__(self, page: Any, stack: Any, timeout_ms: int) -> None:
        self.page = page
        self.stack = stack
        self.timeout_ms = timeout_ms
        page.set_default_timeout(timeout_ms)

    def open(self) -> UiDriver:
        self.page.goto(f"{self.stack.url.rstrip('/')}/")
        self.page.wait_for_selector("html[data-ready='true'], #status[data-state='error']")
        return self

    def capture_uploads(self) -> list[bytes]:
        """Bodies of the POST /predict requests as the browser sends them.

        Through page.route because Chromium does not report a fetch() Blob body in request events
        (request.post_data_buffer is None there); the interception layer does see the bytes.
        """
        bodies: list[bytes] = []

        def record(route: Any) -> None:
            if route.request.method == "POST":
                bodies.append(route.request.post_data_buffer or b"")
            route.continue_()

        self.page.route(re.compile(r"/predict(\?|$)"), record)
        return bodies

    def upload(self, path: Path) -> None:
        self.page.set_input_files("#file-input", str(path))

    def sent_for(self, path: Path) -> bytes:
        """Upload `path`, wait for the result and return the one request body the page sent for it."""
        sent = self.capture_uploads()
        self.upload(path)
        self.wait_done()
        [body] = sent
        return body

    def upload_bytes(self, name: str, mime: str, data: bytes) -> None:
        self.page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])

    def _data_transfer(self, name: str, mime: str, data: bytes) -> Any:
        return self.page.evaluate_handle(
            """([b64, name, type]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, { type }));
                return dt;
            }""",
            [base64.b64encode(data).decode("ascii"), name, mime],
        )

    def drop(self, path: Path, mime: str = "image/jpeg") -> None:
        self.drop_bytes(path.name, mime, path.read_bytes())

    def drop_bytes(self, name: str, mime: str, data: bytes) -> None:
        """Unlike set_input_files, which fills in a type from the name, keeps an empty `mime` empty."""
        dt = self._data_transfer(name, mime, data)
        self.page.dispatch_event("#drop-zone", "dragenter", {"dataTransfer": dt})
        self.page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": dt})
        self.page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dt})

    def paste(self, path: Path, mime: str = "image/jpeg") -> None:
        self.paste_bytes(path.name, mime, path.read_bytes())

    def paste_bytes(self, name: str, mime: str, data: bytes) -> None:
        dt = self._data_transfer(name, mime, data)
        self.page.evaluate(
            """(dt) => document.dispatchEvent(
                new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }))""",
            dt,
        )

    def click_sample(self, name: str) -> None:
        self.page.click(f"button.sample[data-src='samples/{name}.jpg']")

    def wait_state(self, *states: str) -> str:
        selector = ", ".join(f"{self.STATUS}[data-state='{s}']" for s in states)
        self.page.wait_for_selector(selector)
        return self.page.get_attribute(self.STATUS, "data-state") or ""

    def wait_done(self) -> None:
        state = self.wait_state("done", "error")
        assert state == "done", f"expected results, page shows error: {self.status_text()!r}"

    def wait_error(self) -> str:
        state = self.wait_state("done", "error")
        assert state == "error", "expected an error, page shows results"
        return self.status_text()

    def status_text(self) -> str:
        return " ".join(self.page.inner_text(self.STATUS).split())

    def is_hidden(self, selector: str) -> bool:
        """Whether the element `selector` names is hidden. Playwright's page.is_hidden is also True for a selector
        that matches nothing (a renamed id), so that is a failure here instead."""
        assert self.page.query_selector(selector) is not None, f"nothing on the page matches {selector}"
        return self.page.is_hidden(selector)

    def labels(self) -> list[str]:
        return self.page.locator("#predictions .prediction-label").all_inner_texts()

    def percents(self) -> list[str]:
        return self.page.locator("#predictions .prediction-value").all_inner_texts()

    def controls_disabled(self) -> list[bool]:
        return self.page.eval_on_selector_all(
            "#file-input, #classify-button, button.sample", "(els) => els.map((e) => e.disabled)"
        )

    @staticmethod
    def jpeg_size(data: bytes) -> tuple[int, int]:
        with Image.open(BytesIO(data)) as im:
            assert im.format == "JPEG", f"body is {im.format}, not JPEG"
            return im.size

    @staticmethod
    def jpeg_quality(data: bytes) -> int | None:
        """The libjpeg quality (1-100) whose quantization tables `data` carries; None for non-standard tables."""
        with Image.open(BytesIO(data)) as im:
            tables = im.quantization
        for quality in range(100, 0, -1):
            reference = BytesIO()
            Image.new("RGB", (8, 8)).save(reference, "JPEG", quality=quality)
            with Image.open(reference) as ref:
                if ref.quantization == tables:
                    return quality
        return None

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def make_ui(browser: Any, console: ConsoleLog) -> Iterator[Any]:
    """Factory for a driver on its own browser context, e.g. a 360 px phone viewport."""
    contexts: list[Any] = []

    def make(
        stack: Any, width: int = 1100, height: int = 900, timeout_ms: int = WAIT_MS, **context_options: Any
    ) -> UiDriver:
        """`context_options` go to new_context as they are, e.g. color_scheme="dark", forced_colors="active"."""
        context = browser.new_context(
            viewport={"width": width, "height": height}, device_scale_factor=1, **context_options
        )
        contexts.append(context)
        new_page = context.new_page()
        new_page.on("pageerror", lambda exc: console.errors.append(f"pageerror: {exc}"))
        return UiDriver(new_page, stack, timeout_ms=timeout_ms)

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def stub_ui(page: Any, stub_stack: StubStack) -> UiDriver:
    return UiDriver(page, stub_stack, timeout_ms=WAIT_MS)


@pytest.fixture
def live_ui(page: Any, live_stack: Any) -> UiDriver:
    return UiDriver(page, live_stack, timeout_ms=WAIT_MS)


def _noisy_photo(tmp_path_factory: pytest.TempPathFactory, size: tuple[int, int], name: str) -> Path:
    """chelsea upscaled to `size`, with sensor-like noise: as heavy to encode as a real phone photo."""
    with Image.open(SAMPLES / "chelsea.jpg") as src:
        big = src.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    noise = Image.effect_noise(size, 40).convert("RGB")
    photo = Image.blend(big, noise, 0.12)
    path = tmp_path_factory.mktemp("photos") / name
    photo.save(path, "JPEG", quality=95)
    return path


@pytest.fixture(scope="session")
def photo_12mp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x3000 JPEG like a phone's (several MB)."""
    return _noisy_photo(tmp_path_factory, (4000, 3000), "phone-12mp.jpg")


@pytest.fixture(scope="session")
def panorama_12mp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 MP 8:1 phone panorama (9800x1225): 2048x256 whole at the upload size, four times a 4:3 photo."""
    return _noisy_photo(tmp_path_factory, (9800, 1225), "panorama-12mp.jpg")


@pytest.fixture(scope="session")
def not_an_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "notes.jpg"  # an image name, so only decoding can tell
    path.write_text("this is not a JPEG, just text pretending\n" * 20)
    return path
