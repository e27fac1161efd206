"""`make loadtest`: load and fault injection against the local stack, with a README-ready markdown table.

    python -m bench.loadtest [--requests 1000] [--concurrency 8] [--duration-cap 120] [--url URL [--pid PID]]
                             [--skip-faults] [--skip-broken-artifact]

1. Load: `--requests` POST /predict of a real JPEG from `--concurrency` clients on loopback, bounded by count
   and by `--duration-cap` seconds. Every answer must be 200 or the designed 429 (MaxConcurrency stays at its
   configured value, so concurrency above it exercises throttling). Reports throughput, p50/p95/p99, status
   counts, the runtime tier's peak in-flight invocations and the server's peak memory (PSS, sandboxes
   included).
2. Faults, injected into the runtime tier through POST /__local/faults: slow model, model errors, a throttling
   burst (plus a client that retries with backoff as the UI does), endpoint down. After each one the fault is
   cleared and normal requests must succeed again.
3. A model artifact whose model_fn fails: the stack must refuse to start and name the cause.

Starts its own `python -m local --port 0 --no-stage-throttle --fault-injection --artifact ARTIFACT` unless --url is
given (a stack started with those two flags too: with the stage's throttle, API Gateway's own 429 answers most of the
load). Exit status 1 if a load answer is outside 200/429, a fault's outcome is not the designed one, or the stack
does not recover.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import stop_signals_unwind
from bench.machine import describe as describe_machine
from components.command_line import OneLineErrorParser, path_argument

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests" / "fixtures" / "images" / "coffee.jpg"
ARTIFACT = ROOT / "model" / "dist" / "model.tar.gz"
LOAD_OK = frozenset({200, 429})
# 429 is the designed answer above MaxConcurrency, not a way to pass: at least this share must be classified
# (the handler retries throttles, so a healthy stack answers nearly all with 200; a stack that throttles
# everything would otherwise pass with 0 req/s).
MIN_OK_SHARE = 0.5
# Every client below has trust_env=False: its requests go to a stack on this machine, and httpx sends even 127.0.0.1
# through the shell's HTTP_PROXY/ALL_PROXY unless NO_PROXY names it. A corporate proxy's 502 made `make loadtest` say
# the stack it had just started was "not a local stack started with --fault-injection".
CLIENT_TIMEOUT_S = 40.0  # above API Gateway's 30 s, so a hung request shows as the gateway's answer
STARTUP_TIMEOUT_S = 180.0
MEMORY_SAMPLE_S = 0.05


# ---------------------------------------------------------------------------------------------------------
# Pure parts
@dataclass(frozen=True)
class Sample:
    status: int  # 0: no HTTP answer (connection error, client timeout)
    latency_s: float
    error: str | None = None  # the handler's error code, the gateway's message, or the exception name


@dataclass(frozen=True)
class LoadSummary:
    requests: int
    concurrency: int
    wall_s: float
    throughput_rps: float
    ok_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: dict[str, int]
    unexpected: int
    peak_memory_mb: float | None = None
    peak_in_flight: int | None = None
    max_concurrency: int | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least the first value
    return ordered[int(rank) - 1]


def summarize(samples: list[Sample], wall_s: float, concurrency: int) -> LoadSummary:
    latencies = [s.latency_s * 1000.0 for s in samples]
    statuses = Counter(s.status for s in samples)
    errors = Counter(s.error for s in samples if s.error)
    unexpected = sum(n for status, n in statuses.items() if status not in LOAD_OK)
    wall = max(wall_s, 1e-9)
    return LoadSummary(
        requests=len(samples),
        concurrency=concurrency,
        wall_s=wall_s,
        throughput_rps=len(samples) / wall,
        ok_rps=statuses.get(200, 0) / wall,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=0.0),
        statuses=dict(sorted(statuses.items())),
        errors=dict(sorted(errors.items())),
        unexpected=unexpected,
    )


def load_failures(summary: LoadSummary, requested: int, duration_cap_s: float) -> list[str]:
    """Why the load phase failed (empty when it passed): answers outside 200/429, too few 200s, requests left
    unsent at the cap, or more invocations in flight at once than MaxConcurrency admits."""
    failures = []
    if summary.unexpected:
        failures.append(f"{summary.unexpected} load answers outside 200/429: {summary.statuses} {summary.errors}")
    ok = summary.statuses.get(200, 0)
    if ok < MIN_OK_SHARE * summary.requests or not ok:
        failures.append(f"only {ok} of {summary.requests} load answers were 200: {summary.statuses} {summary.errors}")
    if summary.requests < requested:
        failures.append(f"only {summary.requests} of {requested} requests within {duration_cap_s:.0f} s")
    if (
        summary.peak_in_flight is not None
        and summary.max_concurrency is not None
        and summary.peak_in_flight > summary.max_concurrency
    ):
        failures.append(
            f"runtime tier had {summary.peak_in_flight} invocations in flight, MaxConcurrency is "
            f"{summary.max_concurrency}"
        )
    return failures


def parse_site_url(output: str) -> str | None:
    """The base URL from the local stack's banner line `  site      http://127.0.0.1:PORT/`."""
    match = re.search(r"^\s*site\s+(http://\S+?)/?\s*$", output, re.MULTILINE)
    return match.group(1) if match else None


def error_of(response: httpx.Response) -> str | None:
    if response.status_code == 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"non-JSON {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or "?")
    return "?"


@dataclass(frozen=True)
class FaultSpec:
    name: str
    faults: dict  # what POST /__local/faults gets
    expected_status: frozenset[int]
    expected_error: str | None  # the handler's code; None for the gateway's own answer
    needs_retry_after: bool = False
    message_must_be: str | None = None  # the exact message, when the model's first line must pass through
    message_must_not_contain: str | None = None  # text that must not reach the client


@dataclass
class FaultOutcome:
    name: str
    expected: str
    status: int | None = None
    error: str | None = None
    message: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    recovered: bool = False
    ok: bool = False
    note: str = ""


def judge(spec: FaultSpec, status: int, body: object, retry_after: str | None) -> tuple[bool, str]:
    """Whether an answer to an injected fault is the designed one; the reason when it is not."""
    if status not in spec.expected_status:
        return False, f"status {status}, expected {sorted(spec.expected_status)}"
    if not isinstance(body, dict):
        return False, "body is not a JSON object"
    error = body.get("error") if spec.expected_error is not None else None
    if spec.expected_error is not None and error != spec.expected_error:
        return False, f"error {error!r}, expected {spec.expected_error!r}"
    message = str(body.get("message") or "")
    if not message:
        return False, "no message"
    if "Traceback" in message or 'File "' in message or "/opt/ml" in message:
        return False, f"message leaks internals: {message[:120]!r}"
    if spec.message_must_be is not None and message != spec.message_must_be:
        return False, f"message {message!r}, expected {spec.message_must_be!r}"
    if spec.message_must_not_contain and spec.message_must_not_contain in message:
        return False, f"message passes the model's text through: {message!r}"
    if spec.needs_retry_after and not (retry_after or "").isdigit():
        return False, f"Retry-After {retry_after!r}, expected whole seconds"
    return True, ""


def fault_specs(read_timeout_s: float) -> list[FaultSpec]:
    return [
        FaultSpec(
            "slow model (delay past the handler's read timeout)",
            {"delay_s": read_timeout_s + 1.0},
            frozenset({504}),
            "endpoint_timeout",
        ),
        FaultSpec(
            "model error 500 (the container crashes)",
            {"model_status": 500, "model_message": "injected: worker died"},
            frozenset({502}),
            "model_error",
            message_must_not_contain="injected",
        ),
        FaultSpec(
            "model error 400 (the model rejects the image)",
            {"model_status": 400, "model_message": "injected: image rejected by the model"},
            frozenset({400}),
            "invalid_image",
            message_must_be="injected: image rejected by the model",
        ),
        FaultSpec("throttling burst", {"throttle": 50}, frozenset({429}), "throttled", needs_retry_after=True),
        FaultSpec("endpoint down", {"down": True}, frozenset({503}), "model_not_ready", needs_retry_after=True),
        FaultSpec(
            "Lambda sandbox dies (killed, out of memory)",
            {"sandbox_crash": 1},
            frozenset({500}),
            None,
            message_must_be="Internal Server Error",
        ),
    ]


# The page's retry rule (www/script.js: MAX_ATTEMPTS, MAX_RETRY_DELAY_MS, retryDelayMs), so the retrying fault shows
# what a visitor's page gets through: a client that retried sooner than Retry-After asks would pass where the page
# would still be waiting.
UI_MAX_ATTEMPTS = 4
UI_MAX_RETRY_DELAY_S = 8.0


def ui_retry_delay_s(retry: int, retry_after: str | None) -> float | None:
    """Seconds before retry number `retry` (1: the first) as the page waits, without its jitter (this is one client):
    at least what Retry-After asks, doubling from 1 s otherwise, capped; None when Retry-After asks for more than the
    cap (the page stops and says when to come back). Only delta-seconds count: the proxy sends no HTTP-date."""
    text = (retry_after or "").strip()
    asked = float(text) if text.isascii() and text.isdigit() else 0.0
    if asked > UI_MAX_RETRY_DELAY_S:
        return None
    return min(UI_MAX_RETRY_DELAY_S, max(asked, 2.0 ** (retry - 1)))


def render_markdown(summary: LoadSummary, faults: list[FaultOutcome], machine: str) -> str:
    statuses = ", ".join(f"{status}: {n}" for status, n in summary.statuses.items())
    errors = ", ".join(f"{code}: {n}" for code, n in summary.errors.items()) or "none"
    memory = f"{summary.peak_memory_mb:.0f} MB" if summary.peak_memory_mb is not None else "n/a"
    in_flight = "n/a" if summary.peak_in_flight is None else str(summary.peak_in_flight)
    if summary.max_concurrency is not None:
        in_flight += f" (MaxConcurrency {summary.max_concurrency})"
    lines = [
        f"Load through the local stack ({machine})",
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests / concurrent clients | {summary.requests} / {summary.concurrency} |",
        f"| wall time | {summary.wall_s:.1f} s |",
        f"| throughput (all answers / 200s) | {summary.throughput_rps:.1f} / {summary.ok_rps:.1f} req/s |",
        f"| latency p50 / p95 / p99 / max | {summary.p50_ms:.0f} / {summary.p95_ms:.0f} / {summary.p99_ms:.0f} / "
        f"{summary.max_ms:.0f} ms |",
        f"| statuses | {statuses} |",
        f"| error codes | {errors} |",
        f"| answers outside 200/429 | {summary.unexpected} |",
        f"| runtime tier peak in-flight | {in_flight} |",
        f"| server peak memory (PSS, sandboxes included) | {memory} |",
    ]
    if faults:
        lines += [
            "",
            "| fault | expected | observed | Retry-After | time | recovered | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for f in faults:
            observed = f"{f.status} {f.error or ''}".strip() if f.status is not None else (f.error or f.note or "-")
            verdict = "ok" if f.ok else f"FAIL: {f.note}"
            lines.append(
                f"| {f.name} | {f.expected} | {observed} | {f.retry_after or '-'} | {f.seconds:.1f} s | "
                f"{'yes' if f.recovered else 'no'} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    return f"{describe_machine()}, Python {platform.python_version()}"


# ---------------------------------------------------------------------------------------------------------
# Adapters: the stack process, the memory sampler, HTTP
class StackProcess:
    """`python -m local` in its own process group on a free loopback port."""

    def __init__(self, *args: str, timeout: float = STARTUP_TIMEOUT_S):
        fd, log = tempfile.mkstemp(prefix="loadtest-stack-", suffix=".log")
        self.log = Path(log)
        with os.fdopen(fd, "wb") as out:
            self.proc = subprocess.Popen(
                # The load is the stack's capacity and MaxConcurrency's throttling, not the stage's 10 a second.
                [sys.executable, "-m", "local", "--port", "0", "--no-stage-throttle", *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        try:
            self.url = self._wait(timeout)
        except BaseException:
            # Ctrl-C while waiting: the stack is in its own session, so the terminal's SIGINT never reached it,
            # and the caller gets no object to stop().
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait(self, timeout: float) -> str | None:
        """The URL once the banner is printed; None if the process exits first (start refused)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            url = parse_site_url(self.output())
            if url:
                return url
            if self.proc.poll() is not None:
                return None
            time.sleep(0.1)
        output = self.output()  # before stop(), which removes the log
        self.stop()
        raise RuntimeError(f"local stack did not start within {timeout:g} s:\n{output}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.unlink(missing_ok=True)


class MemorySampler(threading.Thread):
    """Peak memory of a process and all its children (PSS summed: forked sandboxes share most of their pages,
    which RSS would count once per process), sampled every MEMORY_SAMPLE_S seconds."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self._psutil = psutil
        try:
            self._root = psutil.Process(pid)
        except (psutil.Error, ValueError) as e:  # gone, another user's, or not a pid at all (-1)
            raise ValueError(str(e)) from None
        self._halt = threading.Event()
        self.peak_bytes: int | None = 0

    def sample(self) -> int | None:
        """The bytes in use now; None where psutil gives no PSS (it reads it from Linux's /proc: macOS has none)."""
        total = 0
        try:
            for proc in [self._root, *self._root.children(recursive=True)]:
                with contextlib.suppress(self._psutil.Error):  # a child may exit between the two calls
                    pss = getattr(proc.memory_full_info(), "pss", None)
                    if pss is None:
                        return None
                    total += pss
        except self._psutil.Error:
            return 0
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            size = self.sample()
            if size is None:  # the AttributeError killed this thread mid-run, and the table said "0 MB"
                self.peak_bytes = None
                return
            self.peak_bytes = max(self.peak_bytes or 0, size)
            self._halt.wait(MEMORY_SAMPLE_S)

    def stop(self) -> float | None:
        """The peak in MiB, None when it could not be measured (the table says n/a)."""
        self._halt.set()
        self.join(timeout=2)
        return None if self.peak_bytes is None else self.peak_bytes / (1024 * 1024)


def post_image(client: httpx.Client, url: str, image: bytes) -> httpx.Response:
    return client.post(f"{url}/predict", content=image, headers={"content-type": "image/jpeg"})


def runtime_state(url: str) -> dict:
    """DELETE /__local/faults: clears any fault and reports the runtime tier's peak in-flight count."""
    response = httpx.delete(f"{url}/__local/faults", timeout=10, trust_env=False)
    response.raise_for_status()
    return response.json()


def set_faults(url: str, faults: dict) -> None:
    httpx.post(f"{url}/__local/faults", json=faults, timeout=10, trust_env=False).raise_for_status()


def run_load(url: str, image: bytes, requests: int, concurrency: int, duration_cap_s: float) -> tuple[list, float]:
    """`requests` POSTs from `concurrency` clients, stopping early at the wall-clock cap."""
    tickets = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + duration_cap_s

    def worker() -> list[Sample]:
        samples = []
        with httpx.Client(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
            while time.monotonic() < deadline:
                with lock:
                    if next(tickets) >= requests:
                        break
                began = time.perf_counter()
                try:
                    response = post_image(client, url, image)
                    samples.append(Sample(response.status_code, time.perf_counter() - began, error_of(response)))
                except httpx.HTTPError as exc:
                    samples.append(Sample(0, time.perf_counter() - began, type(exc).__name__))
        return samples

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        results = [sample for future in futures for sample in future.result()]
    return results, time.perf_counter() - started


def normal_requests_succeed(url: str, image: bytes, count: int = 3) -> tuple[bool, str]:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
        for _ in range(count):
            response = post_image(client, url, image)
            if response.status_code != 200:
                return False, f"normal request after the fault: {response.status_code} {response.text[:120]}"
    return True, ""


def run_fault(url: str, image: bytes, spec: FaultSpec) -> FaultOutcome:
    expected = f"{'/'.join(map(str, sorted(spec.expected_status)))} {spec.expected_error or '(gateway)'}"
    outcome = FaultOutcome(spec.name, expected)
    set_faults(url, spec.faults)
    began = time.perf_counter()
    try:
        response = httpx.post(
            f"{url}/predict",
            content=image,
            headers={"content-type": "image/jpeg"},
            timeout=CLIENT_TIMEOUT_S,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        outcome.note = f"no answer: {type(exc).__name__}"
        runtime_state(url)
        return outcome
    finally:
        outcome.seconds = time.perf_counter() - began
    try:
        body = response.json()
    except ValueError:
        body = None
    outcome.status = response.status_code
    outcome.retry_after = response.headers.get("retry-after")
    if isinstance(body, dict):
        outcome.error = body.get("error")
        outcome.message = body.get("message")
    ok, outcome.note = judge(spec, response.status_code, body, outcome.retry_after)
    runtime_state(url)  # clear
    outcome.recovered, recovery_note = normal_requests_succeed(url, image)
    outcome.ok = ok and outcome.recovered
    outcome.note = outcome.note or recovery_note
    return outcome


def retry_like_the_ui(
    url: str, image: bytes, throttled_attempts: int, max_tries: int = UI_MAX_ATTEMPTS
) -> FaultOutcome:
    """A client that waits as the page does (ui_retry_delay_s: never sooner than Retry-After) gets through a burst."""
    outcome = FaultOutcome("throttling burst, client retries with backoff", "429s then 200")
    set_faults(url, {"throttle": throttled_attempts})
    began = time.perf_counter()
    statuses = []
    with httpx.Client(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
        for attempt in range(1, max_tries + 1):
            response = post_image(client, url, image)
            statuses.append(response.status_code)
            if response.status_code != 429:
                break
            outcome.retry_after = response.headers.get("retry-after")
            delay = ui_retry_delay_s(attempt, outcome.retry_after)
            if attempt == max_tries or delay is None:
                break
            time.sleep(delay)
    outcome.seconds = time.perf_counter() - began
    outcome.status, outcome.error = statuses[-1], f"after {len(statuses)} tries ({statuses})"
    runtime_state(url)
    outcome.recovered = statuses[-1] == 200
    outcome.ok = outcome.recovered and statuses[0] == 429
    outcome.note = "" if outcome.ok else f"statuses {statuses}"
    return outcome


def broken_artifact(source: Path, target: Path) -> Path:
    """A copy of the artifact whose model.onnx is garbage and whose model.pth is gone: model_fn must fail."""
    with tarfile.open(source) as src, tarfile.open(target, "w:gz", compresslevel=1) as dst:
        for member in src.getmembers():
            if member.name.lstrip("./") == "model.pth":
                continue
            if member.name.lstrip("./") == "model.onnx":
                junk = b"this is not an ONNX model" * 8
                member.size = len(junk)
                dst.addfile(member, io.BytesIO(junk))
            elif member.isfile():
                dst.addfile(member, src.extractfile(member))
            else:
                dst.addfile(member)
    return target


def broken_artifact_refusal(artifact: Path) -> FaultOutcome:
    outcome = FaultOutcome("artifact whose model_fn fails", "refuses to start, names the cause")
    workdir = Path(tempfile.mkdtemp(prefix="loadtest-broken-"))
    began = time.perf_counter()
    try:
        broken = broken_artifact(artifact, workdir / "broken.tar.gz")
        stack = StackProcess("--artifact", str(broken))
        output = stack.output()
        code = stack.proc.poll()
        if stack.url is not None:
            outcome.note = f"started and serves at {stack.url}"
        stack.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    outcome.seconds = time.perf_counter() - began
    cause = next((line for line in output.splitlines() if "model_fn failed" in line), "")
    cause = cause.replace(str(workdir), "").replace("error: ", "", 1).strip()
    outcome.error = f"exit {code}: {cause[:160]}" if cause else f"exit {code}"
    # Refused (non-zero exit, never served) and the error line names model_fn and what it choked on.
    outcome.ok = stack.url is None and code not in (None, 0) and "model.onnx" in cause
    outcome.recovered = outcome.ok
    if not outcome.ok and not outcome.note:
        outcome.note = f"output did not name the cause:\n{output[-600:]}"
    return outcome


# ---------------------------------------------------------------------------------------------------------
def positive(kind):
    """An argparse type: a number of `kind` above 0 (a load of 0 requests, clients or seconds measures nothing)."""

    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid int value" message
    return parse


def stack_url(text: str) -> str:
    """An argparse type: --url, not blank. An empty one (`--url "$URL"` with URL unset) read as no --url at all: the
    harness started a stack of its own and ran the whole load and fault run against that one instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the URL is empty: name a running stack, or leave --url out to start one")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="python -m bench.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=positive(int), default=1000, help="requests sent in the load phase (default: 1000)"
    )
    parser.add_argument(
        "--concurrency", type=positive(int), default=8, help="clients sending them at once (default: 8)"
    )
    parser.add_argument(
        "--duration-cap", type=positive(float), default=120.0, help="seconds; the load stops there (default: 120)"
    )
    parser.add_argument(
        "--url",
        type=stack_url,
        help="an already running local stack, started with --fault-injection --no-stage-throttle (with the stage's "
        "throttle, as `make demo` runs by default, API Gateway's own 429 answers most of the load)",
    )
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, for the memory figure")
    parser.add_argument(
        "--skip-faults",
        action="store_true",
        help="skip the injected faults after the load (slow model, model errors, throttling, model down, a crash)",
    )
    parser.add_argument(
        "--skip-broken-artifact",
        action="store_true",
        help="skip starting a stack on an artifact whose model_fn fails, which must refuse to start",
    )
    parser.add_argument(
        "--artifact",
        type=path_argument,  # `--artifact=~/m.tar.gz` was looked for under a folder named ~ in the current one
        default=ARTIFACT,
        help="the model artifact the stack started here serves (not one given with --url), and the one the "
        "broken-artifact case is made from (default: model/dist/model.tar.gz)",
    )
    args = parser.parse_args(argv)
    if args.pid is not None and not args.url:
        parser.error("--pid goes with --url (that stack's server); the stack started here is measured anyway")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with stop_signals_unwind():  # the stack runs in a session of its own: a CI timeout must not leave it serving
        return run(args)


def run(args: argparse.Namespace) -> int:
    from components.settings import load_stack_file
    from handlers.proxy_core import READ_TIMEOUT_S

    max_concurrency = load_stack_file(ROOT / "Pulumi.dev.yaml").max_concurrency
    image = IMAGE.read_bytes()
    stack = None
    if args.url:
        url, pid = args.url.rstrip("/"), args.pid
    else:
        print("starting the local stack ...", flush=True)
        stack = StackProcess("--fault-injection", "--artifact", str(args.artifact))
        if stack.url is None:
            print(f"error: the local stack did not start:\n{stack.output()}", file=sys.stderr)
            stack.stop()  # removes its log
            return 1
        url, pid = stack.url, stack.pid
    try:
        try:  # before anything else: a wrong --pid would otherwise be a traceback after the warm-up
            sampler = MemorySampler(pid) if pid is not None else None
        except ValueError as e:
            print(f"error: --pid {pid}: {e}", file=sys.stderr)
            return 1
        try:
            runtime_state(url)
        except httpx.HTTPError as e:  # `make demo`'s stack has no /__local/faults (404), or nothing listens
            print(
                f"error: {url} is not a local stack started with --fault-injection --no-stage-throttle: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                file=sys.stderr,
            )
            return 1
        normal_ok, note = normal_requests_succeed(url, image, 2)  # warm-up, and a sanity check
        if not normal_ok:
            print(f"error: the stack does not answer normal requests: {note}", file=sys.stderr)
            return 1
        if sampler:
            sampler.start()
        print(f"load: {args.requests} requests, {args.concurrency} clients, cap {args.duration_cap:.0f} s", flush=True)
        samples, wall = run_load(url, image, args.requests, args.concurrency, args.duration_cap)
        summary = summarize(samples, wall, args.concurrency)
        state = runtime_state(url)
        peak_memory = sampler.stop() if sampler else None
        summary = LoadSummary(
            **{
                **summary.__dict__,
                "peak_memory_mb": peak_memory,
                "peak_in_flight": state.get("peak_in_flight"),
                "max_concurrency": max_concurrency,
            }
        )
        faults: list[FaultOutcome] = []
        if not args.skip_faults:
            for spec in fault_specs(READ_TIMEOUT_S):
                print(f"fault: {spec.name} ...", flush=True)
                faults.append(run_fault(url, image, spec))
            faults.append(retry_like_the_ui(url, image, throttled_attempts=3))
        if not args.skip_broken_artifact:
            print("fault: broken artifact ...", flush=True)
            faults.append(broken_artifact_refusal(args.artifact))
    finally:
        if stack is not None:
            stack.stop()

    print()
    print(render_markdown(summary, faults, machine_description()))
    failures = load_failures(summary, args.requests, args.duration_cap)
    failures += [f"fault '{f.name}': {f.note}" for f in faults if not f.ok]
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
