"""bench/loadtest.py without a real stack: its pure parts (percentiles, the summary, the banner parser, the fault
verdicts, the table) and its adapters and main() with the stack's process and HTTP calls replaced."""

from __future__ import annotations

import pytest

from bench.loadtest import (
    FaultOutcome,
    FaultSpec,
    LoadSummary,
    Sample,
    error_of,
    judge,
    load_failures,
    parse_site_url,
    percentile,
    render_markdown,
    summarize,
)
from tests.conftest import names_of
from tests.waiting import HANG_GUARD_S


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile(values, 100) == 100.0 and percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0
    assert percentile(values, 0) == 1.0, "the lowest value, not the highest"
    ten = [float(v) for v in range(1, 11)]
    assert (percentile(ten, 50), percentile(ten, 95), percentile(ten, 91)) == (5.0, 10.0, 10.0), "ceil(n * q / 100)"
    thousand = [float(v) for v in range(1, 1001)]
    assert (percentile(thousand, 50), percentile(thousand, 99)) == (500.0, 990.0)


def test_summary_counts_statuses_errors_and_unexpected_answers():
    samples = (
        [Sample(200, 0.1)] * 6
        + [Sample(429, 0.2, "throttled")] * 2
        + [
            Sample(504, 20.0, "endpoint_timeout"),
            Sample(0, 40.0, "ReadTimeout"),
        ]
    )
    summary = summarize(samples, wall_s=2.0, concurrency=8)
    assert summary.requests == 10 and summary.throughput_rps == 5.0 and summary.ok_rps == 3.0
    assert summarize([Sample(200, 0.1)] * 2, wall_s=0.5, concurrency=2).throughput_rps == 4.0  # under a second
    assert summary.statuses == {0: 1, 200: 6, 429: 2, 504: 1}
    assert summary.errors == {"ReadTimeout": 1, "endpoint_timeout": 1, "throttled": 2}
    assert list(summary.errors) == ["ReadTimeout", "endpoint_timeout", "throttled"], "the table's order, not arrival's"
    assert summary.unexpected == 2  # the 504 and the missing answer; 429 is designed
    timeouts = summarize([Sample(504, 20.0, "endpoint_timeout")] * 3 + [Sample(200, 0.1)], wall_s=1.0, concurrency=2)
    assert timeouts.unexpected == 3, "answers outside 200/429, not the statuses they had"
    assert summary.p50_ms == 100.0 and summary.max_ms == 40_000.0
    spread = summarize([Sample(200, ms / 1000) for ms in range(100, 0, -1)], wall_s=1.0, concurrency=1)
    assert (spread.p50_ms, spread.p95_ms, spread.p99_ms, spread.max_ms) == pytest.approx((50, 95, 99, 100))


def test_half_the_answers_200_passes_the_load_and_fewer_fail_it():
    def of(ok: int) -> LoadSummary:
        return summarize([Sample(200, 0.01)] * ok + [Sample(429, 0.5, "throttled")] * (20 - ok), 1.0, concurrency=8)

    assert load_failures(of(10), requested=20, duration_cap_s=60) == []
    assert load_failures(of(10), requested=21, duration_cap_s=60) == ["only 20 of 21 requests within 60 s"]
    assert load_failures(of(10), requested=21, duration_cap_s=120.0) == ["only 20 of 21 requests within 120 s"]
    one_504 = summarize([Sample(200, 0.01)] * 19 + [Sample(504, 20.0, "endpoint_timeout")], 1.0, concurrency=8)
    assert load_failures(one_504, requested=20, duration_cap_s=60) == [
        "1 load answers outside 200/429: {200: 19, 504: 1} {'endpoint_timeout': 1}"
    ]
    assert load_failures(of(9), requested=20, duration_cap_s=60) == [
        "only 9 of 20 load answers were 200: {200: 9, 429: 11} {'throttled': 11}"
    ]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, {"error": "ignored"}, None),
        (400, {"error": "invalid_image", "message": "not an image"}, "invalid_image"),
        (429, {"message": "Too Many Requests"}, "Too Many Requests"),  # API Gateway's own answers have no code
        (500, {}, "?"),
        (500, ["not", "an", "object"], "?"),
        (502, b"<html>Bad Gateway</html>", "non-JSON 502"),
        (204, b"", "non-JSON 204"),  # a success, but not the 200 a prediction is: named like any other answer
    ],
)
def test_a_load_answer_is_named_by_its_code_or_the_gateways_message(status, body, error):
    import httpx

    response = httpx.Response(status, content=body) if isinstance(body, bytes) else httpx.Response(status, json=body)
    assert error_of(response) == error


def test_site_url_from_the_banner():
    banner = "loading ...\n\nmobilenet-serverless local stack\n  site      http://127.0.0.1:41234/\n  api  POST x\n"
    assert parse_site_url(banner) == "http://127.0.0.1:41234"
    assert parse_site_url("loading model.tar.gz ...\n") is None
    assert parse_site_url("see the website http://127.0.0.1:9/\n  site      http://127.0.0.1:41234/\n") == (
        "http://127.0.0.1:41234"
    ), "the banner's own line, not any line that mentions a site"


THROTTLED = FaultSpec("burst", {"throttle": 9}, frozenset({429}), "throttled", needs_retry_after=True)
MODEL_400 = FaultSpec("400", {}, frozenset({400}), "invalid_image", message_must_be="injected: bad")
CRASH = FaultSpec("crash", {}, frozenset({500}), None, message_must_be="Internal Server Error")
MODEL_500 = FaultSpec("500", {}, frozenset({502}), "model_error", message_must_not_contain="injected")


@pytest.mark.parametrize(
    ("spec", "status", "body", "retry_after", "ok"),
    [
        (THROTTLED, 429, {"error": "throttled", "message": "busy"}, "2", True),
        (THROTTLED, 429, {"error": "throttled", "message": "busy"}, None, False),
        (THROTTLED, 503, {"error": "model_not_ready", "message": "warming"}, "5", False),
        (THROTTLED, 429, {"error": "model_not_ready", "message": "warming"}, "5", False),  # right status, wrong code
        (THROTTLED, 429, {"error": "throttled", "message": "busy"}, "1.5", False),  # not whole seconds
        (THROTTLED, 429, {"error": "throttled", "message": ""}, "2", False),
        (THROTTLED, 429, {"message": "Too Many Requests"}, "2", False),  # API Gateway's own 429: no handler code
        (CRASH, 500, {"message": "Internal Server Error"}, None, True),
        (CRASH, 500, {"message": "Lambda died: SIGKILL"}, None, False),
        (CRASH, 500, {"message": "Internal Server Error: Lambda died: SIGKILL"}, None, False),  # exact, not a prefix
        (MODEL_400, 400, {"error": "invalid_image", "message": "injected: bad"}, None, True),
        (MODEL_400, 400, {"error": "invalid_image", "message": "something else"}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": "The model failed"}, None, True),
        (MODEL_500, 502, {"error": "model_error", "message": "injected: worker died"}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": "The model failed: injected: worker died"}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": 'x File "/opt/ml/code/inference.py"'}, None, False),
        (MODEL_500, 502, "not an object", None, False),
        (MODEL_500, 502, {"error": "model_error", "message": "Traceback (most recent call last):"}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": 'File "inference.py", line 3'}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": "cannot open /opt/ml/model"}, None, False),
    ],
)
def test_fault_verdicts(spec, status, body, retry_after, ok):
    verdict, reason = judge(spec, status, body, retry_after)
    assert verdict is ok and (reason == "") is ok


DESIGNED = {  # what the local stack answers each injected fault with: status, body, Retry-After
    "slow model": (504, {"error": "endpoint_timeout", "message": "The model took too long"}, None),
    "model error 500": (502, {"error": "model_error", "message": "The model failed"}, None),
    "model error 400": (400, {"error": "invalid_image", "message": "injected: image rejected by the model"}, None),
    "throttling burst": (429, {"error": "throttled", "message": "Too many requests"}, "1"),
    "endpoint down": (503, {"error": "model_not_ready", "message": "The model is starting"}, "5"),
    "Lambda sandbox dies": (500, {"message": "Internal Server Error"}, None),
}


# The designed answer's message changed in the way each fault's spec must refuse: the model's own text of a crash
# passed through, and something other than the exact message the client must see.
NEAR_MISS_MESSAGE = {
    "model error 500": "injected: worker died",
    "model error 400": "the model rejected the image",
    "Lambda sandbox dies": "Lambda died: SIGKILL",
}


@pytest.mark.parametrize("name", DESIGNED)
def test_each_fault_passes_its_designed_answer_and_not_a_near_miss(name):
    from bench.loadtest import fault_specs

    spec = next(spec for spec in fault_specs(20.0) if spec.name.split(" (")[0] == name)
    status, body, retry_after = DESIGNED[name]
    assert spec.expected_status == {status}, "one designed status: a slow model's 502 is not its 504"
    assert judge(spec, status, body, retry_after) == (True, "")
    assert not judge(spec, 500 if status != 500 else 502, body, retry_after)[0], "another status"
    if "error" in body:
        assert not judge(spec, status, {**body, "error": "internal_error"}, retry_after)[0], "another error code"
    if name in NEAR_MISS_MESSAGE:
        assert not judge(spec, status, {**body, "message": NEAR_MISS_MESSAGE[name]}, retry_after)[0], "another message"
    if retry_after is not None:
        assert not judge(spec, status, body, None)[0], "a 429 or 503 without Retry-After: the page cannot back off"


def test_markdown_table_has_the_load_figures_and_one_row_per_fault():
    summary = summarize([Sample(429, 0.01, "throttled")] + [Sample(200, 0.05)] * 3, wall_s=1.0, concurrency=8)
    faults = [
        FaultOutcome(
            "slow model", "504 endpoint_timeout", 504, "endpoint_timeout", seconds=20.0, recovered=True, ok=True
        ),
        FaultOutcome("down", "503 model_not_ready", 502, "model_error", recovered=True, note="status 502"),
        FaultOutcome("crash", "500 (gateway)", 500, None, seconds=0.1, recovered=True, ok=True),
    ]
    table = render_markdown(summary, faults, "test cpu, 2 cores")
    assert "| crash | 500 (gateway) | 500 | - | 0.1 s | yes | ok |" in table  # no handler code: the status alone
    assert "| requests / concurrent clients | 4 / 8 |" in table
    assert "| statuses | 200: 3, 429: 1 |" in table and "| answers outside 200/429 | 0 |" in table  # by status
    assert "| slow model | 504 endpoint_timeout | 504 endpoint_timeout | - | 20.0 s | yes | ok |" in table
    assert "FAIL: status 502" in table


def test_markdown_table_has_the_latency_throughput_memory_and_in_flight_figures():
    samples = [Sample(200, ms / 1000) for ms in range(1, 101)] + [Sample(429, 0.2, "throttled")] * 100
    summary = LoadSummary(
        **{**summarize(samples, wall_s=4.0, concurrency=8).__dict__, "peak_memory_mb": 612.4, "peak_in_flight": 3}
    )
    summary = LoadSummary(**{**summary.__dict__, "max_concurrency": 5})
    refused = FaultOutcome("broken artifact", "refuses to start", error="exit 1: model_fn failed", ok=True)
    silent = FaultOutcome("no answer", "504 endpoint_timeout", note="no answer: ReadTimeout")
    served = FaultOutcome("broken, served", "refuses to start", error="exit 0", note="output did not name the cause")
    table = render_markdown(summary, [refused, silent, served], "test cpu, 2 cores")
    assert "| wall time | 4.0 s |" in table and "| throughput (all answers / 200s) | 50.0 / 25.0 req/s |" in table
    assert "| latency p50 / p95 / p99 / max | 100 / 200 / 200 / 200 ms |" in table
    assert "| runtime tier peak in-flight | 3 (MaxConcurrency 5) |" in table
    assert "| server peak memory (PSS, sandboxes included) | 612 MB |" in table
    assert "| broken artifact | refuses to start | exit 1: model_fn failed | - | 0.0 s | no | ok |" in table
    assert "| no answer | 504 endpoint_timeout | no answer: ReadTimeout | - |" in table
    assert "| broken, served | refuses to start | exit 0 | - |" in table  # what happened; why it fails is the verdict's
    lows = summarize(samples[:100], wall_s=1.0, concurrency=8)
    assert "| latency p50 / p95 / p99 / max | 50 / 95 / 99 / 100 ms |" in render_markdown(lows, [], "cpu")
    assert "| runtime tier peak in-flight | n/a |" in render_markdown(lows, [], "cpu")
    assert "| error codes | none |" in render_markdown(lows, [], "cpu")  # every answer a 200
    assert "| fault |" not in render_markdown(lows, [], "cpu"), "--skip-faults --skip-broken-artifact: no empty table"
    assert "| server peak memory (PSS, sandboxes included) | n/a |" in render_markdown(lows, [], "cpu")


def run_main_on_a_fake_stack(monkeypatch, samples, peak_in_flight=1) -> int:
    """bench.loadtest.main() against --url, its HTTP calls replaced: the exit status for these load answers."""
    import bench.loadtest as lt

    monkeypatch.setattr(lt, "runtime_state", lambda url: {"peak_in_flight": peak_in_flight})
    monkeypatch.setattr(lt, "normal_requests_succeed", lambda url, image, count=3: (True, ""))
    monkeypatch.setattr(lt, "run_load", lambda url, image, requests, concurrency, cap: (samples, 2.0))
    return lt.main(["--url", "http://127.0.0.1:9", "--requests", "20", "--skip-faults", "--skip-broken-artifact"])


def test_a_stack_that_throttles_every_request_fails_the_load(monkeypatch):
    assert run_main_on_a_fake_stack(monkeypatch, [Sample(200, 0.01)] * 19 + [Sample(429, 0.5, "throttled")]) == 0
    assert run_main_on_a_fake_stack(monkeypatch, [Sample(429, 4.0, "throttled")] * 20) == 1  # 0 req/s served


def test_more_invocations_in_flight_than_max_concurrency_fails_the_load(monkeypatch):
    from components.settings import load_stack_file
    from tests.conftest import ROOT

    cap = load_stack_file(ROOT / "Pulumi.dev.yaml").max_concurrency
    assert run_main_on_a_fake_stack(monkeypatch, [Sample(200, 0.01)] * 20, peak_in_flight=cap) == 0
    assert run_main_on_a_fake_stack(monkeypatch, [Sample(200, 0.01)] * 20, peak_in_flight=cap + 1) == 1


def in_dir(make, directory):
    """tempfile's `make` (mkstemp, NamedTemporaryFile) with `directory` for the TMPDIR it would use."""
    return lambda *args, dir=str(directory), **kwargs: make(*args, dir=dir, **kwargs)


@pytest.fixture
def interrupted_startup(monkeypatch, tmp_path):
    """`python -m local` replaced by a process that never prints its banner; Ctrl-C arrives while we wait. Called with
    the module that starts the stack, whose own sys, subprocess and tempfile are replaced."""
    import subprocess
    import sys
    import tempfile

    logs = tmp_path / "tmp"
    logs.mkdir()
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    started: list[subprocess.Popen] = []

    def popen(*args, **kwargs):
        started.append(subprocess.Popen(*args, **kwargs))
        return started[-1]

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    def start_in(module):
        in_logs = {name: in_dir(getattr(tempfile, name), logs) for name in ("mkstemp", "NamedTemporaryFile")}
        monkeypatch.setattr(module, "tempfile", names_of(tempfile, **in_logs))  # the log files land in logs
        monkeypatch.setattr(module, "sys", names_of(sys, executable=str(fake)))
        monkeypatch.setattr(module, "subprocess", names_of(subprocess, Popen=popen))
        return started, interrupted, logs

    yield start_in
    for proc in started:  # whatever the code under test left behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_while_the_loadtest_stack_starts_leaves_no_process_or_log(monkeypatch, interrupted_startup):
    import bench.loadtest
    from bench.loadtest import StackProcess

    started, interrupted, logs = interrupted_startup(bench.loadtest)
    monkeypatch.setattr(StackProcess, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        StackProcess("--fault-injection")
    (proc,) = started
    assert proc.poll() is not None, "the stack outlives the interrupted harness (own session: no SIGINT reached it)"
    assert not list(logs.iterdir()), "its log is left behind"


def test_ctrl_c_while_the_bench_stack_starts_leaves_no_process_or_log(monkeypatch, interrupted_startup):
    import tests.conftest
    from tests.conftest import LocalStack

    started, interrupted, logs = interrupted_startup(tests.conftest)
    monkeypatch.setattr(LocalStack, "_wait_for_url", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LocalStack()
    (proc,) = started
    assert proc.poll() is not None, "the stack outlives the interrupted harness (own session: no SIGINT reached it)"
    assert not list(logs.iterdir()), "its log is left behind"


def test_the_url_option_asks_for_a_stack_without_the_stage_throttle(capsys, monkeypatch):
    """`make demo` throttles /predict as the stage does (10 a second): a stack given with --url must have been
    started with --no-stage-throttle, or API Gateway's own 429 answers most of the load."""
    from bench import loadtest as lt

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: argparse breaks a long flag at its hyphen
    with pytest.raises(SystemExit):
        lt.parse_args(["--help"])
    options = " ".join(capsys.readouterr().out.split()).split("options:", 1)[1]
    url_help = options.split("--url URL", 1)[1].split("--pid", 1)[0]
    assert "--fault-injection" in url_help and "--no-stage-throttle" in url_help, url_help


@pytest.mark.parametrize("listening", [True, False])
def test_a_url_that_is_not_a_fault_injection_stack_is_refused_in_one_line(capsys, listening):
    """`--url` at `make demo`'s stack (no /__local/faults: 404) or at nothing: a one-line error and exit 1, not a
    traceback from httpx."""
    import http.server
    import socket
    import threading

    from bench import loadtest as lt

    class NoFaults(http.server.BaseHTTPRequestHandler):
        def do_DELETE(self):
            body = b'{"message": "Not Found"}'
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    if listening:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoFaults)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
    else:
        # Bound but not listening, and kept so while the harness connects: a connection is refused, and no other
        # program can take the port in between (a port closed before use could be).
        bound = socket.socket()
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
    try:
        assert lt.main(["--url", url, "--skip-faults", "--skip-broken-artifact"]) == 1
    finally:
        if listening:
            server.shutdown()
            server.server_close()
        else:
            bound.close()
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url} ") and "--fault-injection" in err and "Traceback" not in err, err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("option", ["--requests", "--concurrency", "--duration-cap"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_count_or_cap_below_one_is_refused_before_a_stack_starts(capsys, option, value):
    """--concurrency 0 raised ThreadPoolExecutor's ValueError as a traceback once the stack was up; --requests 0
    and --duration-cap 0 ran a load of nothing and failed it."""
    from bench import loadtest as lt

    with pytest.raises(SystemExit) as exit_:
        lt.parse_args([option, value])
    assert exit_.value.code == 2
    assert f"argument {option}: must be above 0, got {value}" in capsys.readouterr().err


def test_a_duration_cap_that_is_not_a_number_is_refused_before_a_stack_starts(capsys):
    """float() takes "nan", which is not above 0 and not at most 0 either: a load capped at nan seconds sends nothing
    (no time is before its deadline) and fails after the stack's start and warm-up."""
    from bench import loadtest as lt

    with pytest.raises(SystemExit) as exit_:
        lt.parse_args(["--duration-cap", "nan"])
    assert exit_.value.code == 2
    assert "argument --duration-cap: must be above 0, got nan" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--requests", "0"], ["--pid", "5"], ["--bogus"]])
def test_a_refused_argument_is_one_line(capsys, argv):
    """argparse printed its five-line usage block above the error, which then came last; `python -m local` and
    `python -m model.package` say it in one line."""
    from bench import loadtest as lt

    with pytest.raises(SystemExit) as exit_:
        lt.parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.endswith("; see `python -m bench.loadtest --help`\n"), err
    assert err.count("\n") == 1, err


def test_artifact_expands_a_tilde(monkeypatch, tmp_path):
    """`--artifact=~/model.tar.gz` (a ~ no shell expands) was looked for under a folder named ~ in the current one."""
    from bench import loadtest as lt

    monkeypatch.setenv("HOME", str(tmp_path))
    assert lt.parse_args(["--artifact=~/model.tar.gz"]).artifact == tmp_path / "model.tar.gz"


@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_url_is_refused_rather_than_taken_for_no_url(capsys, monkeypatch, url):
    """`--url "$URL"` with URL unset started a stack of its own and ran the whole load against it, as if no --url had
    been given."""
    from bench import loadtest as lt

    monkeypatch.setattr(lt, "run", lambda args: pytest.fail(f"ran the load test against {args.url!r}"))
    with pytest.raises(SystemExit) as exit_:
        lt.main(["--url", url])
    assert exit_.value.code == 2
    assert "argument --url: the URL is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "kind"), [("--requests", "int"), ("--concurrency", "int"), ("--duration-cap", "float")]
)
def test_a_count_or_cap_that_is_no_number_is_named_by_its_type(capsys, option, kind):
    from bench import loadtest as lt

    with pytest.raises(SystemExit) as exit_:
        lt.parse_args([option, "many"])
    assert exit_.value.code == 2
    assert f"argument {option}: invalid {kind} value: 'many'" in capsys.readouterr().err


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_a_loadtest_stopped_by_a_signal_stops_the_stack_it_started(tmp_path, stop):
    """A CI timeout (SIGTERM) or a closed terminal (SIGHUP) killed the harness outright, and the stack it had
    started, in a session of its own so that no terminal signal reaches it, went on serving with the model loaded."""
    import os
    import signal
    import subprocess
    import sys

    from bench.loadtest import ROOT

    pid_file = tmp_path / "stack.pid"
    script = f"""
import subprocess, sys, time
import bench.loadtest as lt

class Stack:  # a stand-in for `python -m local`: a process in its own session, stopped only by stop()
    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
        open({str(pid_file)!r}, "w").write(str(self.proc.pid))
        self.url, self.pid = "http://127.0.0.1:9", self.proc.pid
    def stop(self):
        self.proc.kill()
        self.proc.wait()

def measuring(url):
    print("measuring", flush=True)
    time.sleep(60)

lt.StackProcess, lt.runtime_state = Stack, measuring
sys.exit(lt.main(["--requests", "1"]))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "starting the local stack ..."
        assert proc.stdout.readline().strip() == "measuring"
        proc.send_signal(getattr(signal, stop))
        assert proc.wait(timeout=30) == 128 + getattr(signal, stop)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    stack_pid = int(pid_file.read_text())
    try:
        os.kill(stack_pid, 0)
    except ProcessLookupError:
        return
    os.kill(stack_pid, signal.SIGKILL)
    pytest.fail("the stack the loadtest started outlived it")


def test_the_stack_the_loadtest_starts_serves_the_artifact_it_was_given(monkeypatch, tmp_path, capsys):
    """`--artifact PATH` named the base of the broken-artifact case only: the load itself ran against
    model/dist/model.tar.gz whatever was asked, so `--artifact int8.tar.gz` measured the fp32 model."""
    from bench import loadtest as lt

    asked: list[tuple[str, ...]] = []

    class NoStack:  # records what `python -m local` would have been given, and does not start
        url = None

        def __init__(self, *args: str):
            asked.append(args)

        def output(self) -> str:
            return "not started"

        def stop(self) -> None:
            pass

    monkeypatch.setattr(lt, "StackProcess", NoStack)
    artifact = tmp_path / "other.tar.gz"
    assert lt.main(["--artifact", str(artifact), "--skip-faults", "--skip-broken-artifact"]) == 1
    (args,) = asked
    assert "--fault-injection" in args
    assert list(args[args.index("--artifact") :][:2]) == ["--artifact", str(artifact)], args


@pytest.mark.parametrize("pid", ["123", "0"])
def test_a_pid_without_a_url_is_refused_before_a_stack_starts(capsys, pid):
    """--pid names the server of a stack given with --url; alone it was ignored, and the harness started a stack of
    its own and ran the whole load and fault run without the memory figure it was asked for."""
    from bench import loadtest as lt

    with pytest.raises(SystemExit) as exit_:
        lt.parse_args(["--pid", pid])
    assert exit_.value.code == 2
    assert "--pid" in capsys.readouterr().err


def test_a_stack_that_exits_before_its_banner_is_no_url_and_its_output_is_kept(monkeypatch, tmp_path):
    """A refused start (broken artifact, busy port): StackProcess says so at once instead of waiting out its
    startup timeout, and keeps the output that names the cause until stop()."""
    import sys
    import tempfile

    import bench.loadtest
    from bench.loadtest import StackProcess

    monkeypatch.setattr(bench.loadtest, "tempfile", names_of(tempfile, mkstemp=in_dir(tempfile.mkstemp, tmp_path)))
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "error: the model endpoint cannot start: model_fn failed"\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setattr(bench.loadtest, "sys", names_of(sys, executable=str(fake)))
    stack = StackProcess("--artifact", "broken.tar.gz", timeout=HANG_GUARD_S)
    assert stack.url is None and stack.proc.wait(timeout=HANG_GUARD_S) == 1
    assert stack.proc.args[1:] == ["-m", "local", "--port", "0", "--no-stage-throttle", "--artifact", "broken.tar.gz"]
    assert stack.output() == "error: the model endpoint cannot start: model_fn failed\n"
    stack.stop()
    assert list(tmp_path.iterdir()) == [fake], "its log is left behind"


class FakeProcess:
    """A psutil.Process of a fixed PSS (None: it exited between the listing and the look)."""

    def __init__(self, pss_mb: float | None, children: tuple = (), grandchildren: tuple = ()):
        self.pss_mb, self.direct, self.grandchildren = pss_mb, list(children), list(grandchildren)

    def children(self, recursive: bool = False) -> list:
        return self.direct + (self.grandchildren if recursive else [])

    def memory_full_info(self):
        import types

        import psutil

        if self.pss_mb is None:
            raise psutil.NoSuchProcess(1)
        return types.SimpleNamespace(pss=int(self.pss_mb * 1024 * 1024), rss=int(self.pss_mb * 3 * 1024 * 1024))


def test_memory_is_the_peak_pss_of_the_server_and_all_its_descendants_in_mib():
    """Forked sandboxes share most of their pages: their PSS sums to the memory used, their RSS would not."""
    import os

    from bench.loadtest import MemorySampler

    sampler = MemorySampler(os.getpid())
    sampler._root = FakeProcess(100, children=[FakeProcess(20), FakeProcess(None)], grandchildren=[FakeProcess(5)])
    assert sampler.sample() == 125 * 1024 * 1024
    sizes = iter([300, 900, 200])

    def sample() -> int:
        size = next(sizes) * 1024 * 1024
        if size == 200 * 1024 * 1024:
            sampler._halt.set()  # the last sample: run() returns after it
        return size

    sampler.sample = sample
    sampler.start()
    sampler.join(timeout=HANG_GUARD_S)  # it ends after the last sample
    assert not sampler.is_alive() and sampler.peak_bytes == 900 * 1024 * 1024
    assert sampler.stop() == 900.0


def test_memory_without_pss_is_not_measured_rather_than_0_mb():
    """psutil gives PSS on Linux only: on macOS the sampler's thread died of an AttributeError (a traceback mid-run)
    and the table said "server peak memory ... 0 MB"."""
    import dataclasses
    import os
    import types

    from bench.loadtest import MemorySampler, render_markdown, summarize

    class MacProcess(FakeProcess):
        def memory_full_info(self):  # psutil's fields there: no pss
            return types.SimpleNamespace(rss=300 * 1024 * 1024, vms=0, pfaults=0, pageins=0, uss=100 * 1024 * 1024)

    sampler = MemorySampler(os.getpid())
    sampler._root = MacProcess(None, children=[MacProcess(None)])
    sampler.start()
    sampler.join(timeout=HANG_GUARD_S)
    assert not sampler.is_alive()
    peak = sampler.stop()
    assert peak is None
    summary = dataclasses.replace(summarize([], 1.0, 1), peak_memory_mb=peak)
    assert "| server peak memory (PSS, sandboxes included) | n/a |" in render_markdown(summary, [], "a Mac")


THROTTLED_ANSWER = {"error": "throttled", "message": "busy"}


@pytest.fixture
def fake_stack_calls(monkeypatch):
    """bench.loadtest's calls to the stack replaced: what it did, in order (`answers`: what /predict answers)."""
    import time

    import httpx

    import bench.loadtest as lt

    calls: list = []
    answers: list = []

    def post(url, **kwargs):
        calls.append("predict")
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(lt, "set_faults", lambda url, faults: calls.append(("set", faults)))
    monkeypatch.setattr(lt, "runtime_state", lambda url: calls.append("clear") or {})
    monkeypatch.setattr(lt, "httpx", names_of(httpx, post=post))
    monkeypatch.setattr(lt, "post_image", lambda client, url, image: post(url))
    monkeypatch.setattr(lt, "time", names_of(time, sleep=lambda s: calls.append(("sleep", s))))
    return calls, answers


def test_a_fault_whose_stack_does_not_recover_fails_and_says_why(monkeypatch, fake_stack_calls):
    import httpx

    import bench.loadtest as lt

    calls, answers = fake_stack_calls
    answers.append(httpx.Response(429, json=THROTTLED_ANSWER, headers={"retry-after": "2"}))
    recovery = "normal request after the fault: 503 down"
    monkeypatch.setattr(lt, "normal_requests_succeed", lambda url, image: calls.append("normal") or (False, recovery))
    outcome = lt.run_fault("http://127.0.0.1:9", b"jpeg", THROTTLED)
    assert outcome.expected == "429 throttled"
    assert (outcome.status, outcome.error, outcome.retry_after) == (429, "throttled", "2")
    assert not outcome.recovered and not outcome.ok and outcome.note == recovery
    assert calls == [("set", {"throttle": 9}), "predict", "clear", "normal"], "cleared before the normal requests"


def test_a_fault_without_an_answer_fails_and_is_cleared(fake_stack_calls):
    import httpx

    import bench.loadtest as lt

    calls, answers = fake_stack_calls
    answers.append(httpx.ReadTimeout("timed out"))
    outcome = lt.run_fault("http://127.0.0.1:9", b"jpeg", THROTTLED)
    assert not outcome.ok and outcome.status is None and outcome.note == "no answer: ReadTimeout"
    assert calls == [("set", {"throttle": 9}), "predict", "clear"], "the fault is not left set"


@pytest.mark.parametrize(
    ("statuses", "ok", "sleeps"),
    [
        ([429, 429, 200], True, [2.0, 2.0]),  # Retry-After 2 outweighs the 1 s backoff, then equals the 2 s one
        ([200], False, []),  # the injected burst did not throttle anything
        ([429] * 4, False, [2.0, 2.0, 4.0]),  # the page's 4 attempts, and no wait after the last
        ([429, 503], False, [2.0]),  # the burst ended in another error: no more tries, and not through
    ],
)
def test_a_retrying_client_passes_only_through_429s_then_a_200(fake_stack_calls, statuses, ok, sleeps):
    import httpx

    import bench.loadtest as lt

    calls, answers = fake_stack_calls
    for status in statuses:
        body = THROTTLED_ANSWER if status == 429 else {}
        answers.append(httpx.Response(status, json=body, headers={"retry-after": "2"}))
    outcome = lt.retry_like_the_ui("http://127.0.0.1:9", b"jpeg", throttled_attempts=2)
    assert outcome.ok is ok and outcome.error == f"after {len(statuses)} tries ({statuses})"
    assert outcome.status == statuses[-1], "the table's observed status is where the retries ended"
    assert [call[1] for call in calls if isinstance(call, tuple) and call[0] == "sleep"] == sleeps
    assert calls[0] == ("set", {"throttle": 2}) and calls[-1] == "clear"


@pytest.mark.parametrize(
    ("url", "code", "ok", "choked_on"),
    [
        (None, 1, True, "model.onnx"),
        (None, 0, False, "model.onnx"),
        ("http://127.0.0.1:9", None, False, "model.onnx"),
        ("http://127.0.0.1:9", 1, False, "model.onnx"),
        (None, 1, False, "metadata.json"),  # refused, but for another cause than the broken model
    ],
)
def test_a_broken_artifact_passes_only_if_the_stack_refuses_to_start_naming_the_cause(
    monkeypatch, tmp_path, url, code, ok, choked_on
):
    import tempfile
    import types
    from pathlib import Path

    import bench.loadtest as lt

    monkeypatch.setattr(lt, "tempfile", names_of(tempfile, mkdtemp=in_dir(tempfile.mkdtemp, tmp_path)))
    stopped = []

    class Refusing:
        def __init__(self, *args):
            self.workdir = Path(args[1]).parent
            self.url, self.proc = url, types.SimpleNamespace(poll=lambda: code)

        def output(self) -> str:
            return (
                "loading broken.tar.gz (model.onnx) into the inprocess runtime tier ...\n"
                f"error: the model endpoint cannot start: model_fn failed: {self.workdir}/model/{choked_on}: garbage\n"
            )

        def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(lt, "broken_artifact", lambda source, target: target)
    monkeypatch.setattr(lt, "StackProcess", Refusing)
    outcome = lt.broken_artifact_refusal(tmp_path / "model.tar.gz")
    assert outcome.ok is ok and outcome.recovered is ok and stopped == [True]
    if url is not None:
        assert outcome.note == f"started and serves at {url}"
    elif not ok:
        assert outcome.note.startswith("output did not name the cause:\nloading broken.tar.gz"), outcome.note
    cause = f"the model endpoint cannot start: model_fn failed: /model/{choked_on}: garbage"
    assert outcome.error == f"exit {code}: {cause}"
    assert list(tmp_path.iterdir()) == [], "its work directory is left behind"


def test_a_stack_that_does_not_start_fails_the_run_with_its_output_and_is_stopped(monkeypatch, capsys):
    import bench.loadtest as lt

    stopped = []

    class NotStarting:
        url = None

        def __init__(self, *args):
            pass

        def output(self) -> str:
            return "error: cannot listen on 127.0.0.1:0: Too many open files\n"

        def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(lt, "StackProcess", NotStarting)
    assert lt.main(["--skip-faults", "--skip-broken-artifact"]) == 1
    assert stopped == [True], "its log is left behind"
    err = capsys.readouterr().err
    assert err == "error: the local stack did not start:\nerror: cannot listen on 127.0.0.1:0: Too many open files\n\n"


def test_a_stack_that_fails_normal_requests_fails_the_run_before_the_load(monkeypatch, capsys):
    import bench.loadtest as lt

    monkeypatch.setattr(lt, "runtime_state", lambda url: {})
    monkeypatch.setattr(lt, "normal_requests_succeed", lambda url, image, count=3: (False, "503 model_not_ready"))
    monkeypatch.setattr(lt, "run_load", lambda *args: pytest.fail("a load on a stack that does not answer"))
    assert lt.main(["--url", "http://127.0.0.1:9", "--skip-faults", "--skip-broken-artifact"]) == 1
    assert capsys.readouterr().err == "error: the stack does not answer normal requests: 503 model_not_ready\n"


@pytest.mark.parametrize("failing", [None, "endpoint down", "throttling burst, client retries with backoff", "broken"])
def test_every_fault_gets_a_row_and_any_that_fails_fails_the_run(monkeypatch, capsys, failing):
    import bench.loadtest as lt

    urls = []

    def state(url):
        urls.append(url)
        return {"peak_in_flight": 1}

    def outcome(name: str) -> FaultOutcome:
        return FaultOutcome(name, "designed", ok=name != failing, recovered=True, note="" if name != failing else "why")

    class Sampler:
        def __init__(self, pid):
            assert pid == 4242
            self.started = False

        def start(self) -> None:
            self.started = True

        def stop(self) -> float:
            assert self.started, "stopped without having sampled"  # threading.Thread.join: RuntimeError
            return 321.0

    monkeypatch.setattr(lt, "runtime_state", state)
    monkeypatch.setattr(lt, "normal_requests_succeed", lambda url, image, count=3: (True, ""))
    monkeypatch.setattr(lt, "run_load", lambda url, image, requests, concurrency, cap: ([Sample(200, 0.01)] * 5, 1.0))
    monkeypatch.setattr(lt, "MemorySampler", Sampler)
    monkeypatch.setattr(lt, "run_fault", lambda url, image, spec: outcome(spec.name.split(" (")[0]))
    retrying = "throttling burst, client retries with backoff"
    monkeypatch.setattr(lt, "retry_like_the_ui", lambda url, image, throttled_attempts: outcome(retrying))
    monkeypatch.setattr(lt, "broken_artifact_refusal", lambda artifact: outcome("broken"))
    assert lt.main(["--url", "http://127.0.0.1:9/", "--pid", "4242", "--requests", "5"]) == (1 if failing else 0)
    assert set(urls) == {"http://127.0.0.1:9"}, "the URL without its trailing slash"
    out, err = capsys.readouterr()
    assert "| server peak memory (PSS, sandboxes included) | 321 MB |" in out
    names = [spec.name.split(" (")[0] for spec in lt.fault_specs(1.0)]
    for name in [*names, retrying, "broken"]:
        assert f"| {name} | designed |" in out
    assert err == (f"FAIL: fault '{failing}': why\n" if failing else "")


def test_the_load_stops_at_its_cap_and_a_refused_connection_is_an_answer_of_0():
    import socket

    from bench.loadtest import run_load

    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        samples, _ = run_load(url, b"jpeg", requests=3, concurrency=2, duration_cap_s=HANG_GUARD_S)
        assert sorted((sample.status, sample.error) for sample in samples) == [(0, "ConnectError")] * 3
        assert run_load(url, b"jpeg", requests=3, concurrency=2, duration_cap_s=0)[0] == [], "past the cap"


def test_a_request_that_times_out_is_an_answer_of_0_named_by_its_exception(monkeypatch):
    import httpx

    import bench.loadtest as lt

    def post(client, url, image):
        raise httpx.ReadTimeout("timed out")

    monkeypatch.setattr(lt, "post_image", post)
    samples, _ = lt.run_load("http://127.0.0.1:9", b"jpeg", requests=2, concurrency=1, duration_cap_s=HANG_GUARD_S)
    assert [(sample.status, sample.error) for sample in samples] == [(0, "ReadTimeout")] * 2


def test_a_hung_request_gets_the_gateways_answer_before_the_clients_timeout():
    from bench.loadtest import CLIENT_TIMEOUT_S
    from local.gateway import INTEGRATION_TIMEOUT_S

    assert CLIENT_TIMEOUT_S > INTEGRATION_TIMEOUT_S


def test_the_load_runs_its_clients_at_once(monkeypatch):
    import threading

    import httpx

    import bench.loadtest as lt

    both = threading.Barrier(2, timeout=HANG_GUARD_S)

    def post(client, url, image):
        both.wait()  # returns only once both clients are in a request
        return httpx.Response(200, json={})

    monkeypatch.setattr(lt, "post_image", post)
    samples, _ = lt.run_load("http://127.0.0.1:9", b"jpeg", requests=4, concurrency=2, duration_cap_s=HANG_GUARD_S)
    assert [sample.status for sample in samples] == [200] * 4


@pytest.mark.parametrize("status", [204, 302, 400, 429, 503])
def test_after_a_fault_only_200s_are_normal_answers(monkeypatch, status):
    import httpx

    import bench.loadtest as lt

    answers = [httpx.Response(200, json={}), httpx.Response(status, json={"message": "no"})]
    monkeypatch.setattr(lt, "post_image", lambda client, url, image: answers.pop(0))
    assert lt.normal_requests_succeed("http://127.0.0.1:9", b"jpeg") == (
        False,
        f'normal request after the fault: {status} {{"message":"no"}}',
    )


@pytest.mark.parametrize("pid", ["gone", "-1", "0"])
def test_a_pid_that_cannot_be_measured_is_refused_in_one_line_before_any_request(monkeypatch, capsys, pid):
    """`--url URL --pid PID` with a PID that is no process: psutil's NoSuchProcess was a traceback after the
    warm-up requests. (0 was taken for no --pid at all: the whole run went on without the memory figure.)"""
    import subprocess
    import sys

    import bench.loadtest as lt

    if pid == "gone":
        exited = subprocess.Popen([sys.executable, "-c", "pass"])
        exited.wait()
        pid = str(exited.pid)
    monkeypatch.setattr(lt, "runtime_state", lambda url: pytest.fail("a request before the pid was checked"))
    assert lt.main(["--url", "http://127.0.0.1:9", "--pid", pid, "--skip-faults", "--skip-broken-artifact"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --pid {pid}: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_the_load_tests_clients_reach_the_stack_directly_whatever_the_shells_proxy_says(monkeypatch):
    # Behind a corporate proxy, httpx sent 127.0.0.1 to it: its 502 made `make loadtest` call the stack it had just
    # started "not a local stack started with --fault-injection".
    import bench.loadtest as lt
    from tests.proxies import behind_a_proxy, http_server

    spec = FaultSpec("none", {"model_delay_s": 0}, frozenset({200}), None)
    with behind_a_proxy(monkeypatch) as via_proxy, http_server() as (url, seen):
        assert lt.runtime_state(url) == {}
        lt.set_faults(url, {"throttle": 1})
        samples, _ = lt.run_load(url, b"jpeg", requests=2, concurrency=1, duration_cap_s=30)
        assert lt.normal_requests_succeed(url, b"jpeg", 1) == (True, "")
        assert lt.run_fault(url, b"jpeg", spec).status == 200
        assert lt.retry_like_the_ui(url, b"jpeg", 0, max_tries=1).status == 200
    assert [s.status for s in samples] == [200, 200]
    assert via_proxy == [] and len(seen) == 14


@pytest.mark.parametrize(("status", "designed"), [(200, True), (429, True), (0, False), (500, False), (503, False)])
def test_only_200_and_429_are_designed_load_answers(status, designed):
    """A 503 (the model not ready) or a 500 under load is a failure, not throttling: 429 is the designed refusal."""
    summary = summarize([Sample(200, 0.01), Sample(status, 0.01, None if status == 200 else "code")], 1.0, 2)
    assert summary.unexpected == (0 if designed else 1)
    assert (load_failures(summary, requested=2, duration_cap_s=60) == []) is designed


def test_a_load_that_sent_nothing_within_its_cap_says_no_answer_was_200():
    empty = summarize([], wall_s=60.0, concurrency=8)
    assert load_failures(empty, requested=20, duration_cap_s=60) == [
        "only 0 of 0 load answers were 200: {} {}",
        "only 0 of 20 requests within 60 s",
    ]


def test_a_fault_answer_that_is_not_a_json_object_is_named_as_such():
    """The table's FAIL line says what was wrong with the answer: a JSON string body read "no message"."""
    for spec in (CRASH, MODEL_500):
        assert judge(spec, 502 if spec is MODEL_500 else 500, "Internal Server Error", None) == (
            False,
            "body is not a JSON object",
        )


def test_the_slow_model_fault_outlasts_the_handlers_read_timeout():
    """Delayed exactly by the read timeout, the model's answer and the handler's timeout race: 504 or 200."""
    from bench.loadtest import fault_specs

    (slow,) = [spec for spec in fault_specs(7.0) if spec.name.startswith("slow model")]
    assert slow.faults["delay_s"] > 7.0


def test_a_wrong_answer_to_a_fault_is_what_fails_it_even_when_the_stack_does_not_recover(monkeypatch, fake_stack_calls):
    import httpx

    import bench.loadtest as lt

    _, answers = fake_stack_calls
    answers.append(httpx.Response(200, json={"predictions": []}))  # the burst throttled nothing
    not_recovered = (False, "normal request after the fault: 503")
    monkeypatch.setattr(lt, "normal_requests_succeed", lambda url, image: not_recovered)
    outcome = lt.run_fault("http://127.0.0.1:9", b"jpeg", THROTTLED)
    assert not outcome.ok and outcome.note == "status 200, expected [429]"


@pytest.mark.parametrize("prefix", ["", "./"])  # "./": an artifact packed as `tar -czf model.tar.gz -C dir .`
def test_the_broken_artifact_has_no_model_pth_and_a_model_onnx_that_is_not_one(tmp_path, prefix):
    """With model.pth left in, model_fn could fall back to TorchScript and the stack start: the case would then test
    nothing about a model_fn that fails."""
    import tarfile

    from bench.loadtest import broken_artifact
    from tests.conftest import tar_gz_of

    source = tar_gz_of(
        tmp_path / "model.tar.gz",
        {
            f"{prefix}{name}": data
            for name, data in {
                "model.onnx": b"\x08\x07onnx",
                "model.pth": b"weights",
                "metadata.json": b"{}",
                "code/inference.py": b"#",
            }.items()
        },
    )
    broken = broken_artifact(source, tmp_path / "broken.tar.gz")
    with tarfile.open(broken) as tar:
        files = {m.name.lstrip("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert sorted(files) == ["code/inference.py", "metadata.json", "model.onnx"]
    assert files["model.onnx"].startswith(b"this is not an ONNX model")
    assert (files["metadata.json"], files["code/inference.py"]) == (b"{}", b"#")


def test_a_stack_that_does_not_report_its_peak_in_flight_fails_nothing_and_reads_n_a():
    """run() reads the peak from the stack's DELETE /__local/faults answer with .get(): a stack that does not report it
    (a server of another version given with --url) has it unmeasured, which is no failure, and MaxConcurrency is still
    named beside it."""
    import dataclasses

    served = summarize([Sample(200, 0.01)] * 4, wall_s=1.0, concurrency=2)
    summary = dataclasses.replace(served, peak_in_flight=None, max_concurrency=5)
    assert load_failures(summary, requested=4, duration_cap_s=60.0) == []
    assert "| runtime tier peak in-flight | n/a (MaxConcurrency 5) |" in render_markdown(summary, [], "cpu")
    nothing_reached = dataclasses.replace(served, peak_in_flight=0, max_concurrency=5)
    assert "| runtime tier peak in-flight | 0 (MaxConcurrency 5) |" in render_markdown(nothing_reached, [], "cpu")
    unbounded = dataclasses.replace(served, peak_in_flight=3, max_concurrency=None)  # no MaxConcurrency to exceed
    assert load_failures(unbounded, requested=4, duration_cap_s=60.0) == []
    assert "| runtime tier peak in-flight | 3 |" in render_markdown(unbounded, [], "cpu")


def test_a_retrying_client_without_retry_after_backs_off_from_one_second_doubling(fake_stack_calls):
    """A 429 without Retry-After (API Gateway's own throttle sends none) is retried after 1 s, 2 s, 4 s as the page
    does: not at once, which only hammers a throttled stack."""
    import httpx

    import bench.loadtest as lt

    calls, answers = fake_stack_calls
    answers.extend([httpx.Response(429, json={"message": "Too Many Requests"})] * 3 + [httpx.Response(200, json={})])
    outcome = lt.retry_like_the_ui("http://127.0.0.1:9", b"jpeg", throttled_attempts=3)
    assert outcome.ok and outcome.retry_after is None
    assert [call[1] for call in calls if isinstance(call, tuple) and call[0] == "sleep"] == [1.0, 2.0, 4.0]


def test_a_retry_after_longer_than_the_pages_cap_ends_the_tries_as_the_page_does(fake_stack_calls):
    """The page stops and says when to come back rather than undercut a Retry-After over its cap; a client that
    retried sooner would pass the fault where a visitor's page gets no answer."""
    import httpx

    import bench.loadtest as lt

    calls, answers = fake_stack_calls
    answers.extend([httpx.Response(429, json=THROTTLED_ANSWER, headers={"retry-after": "9"}), httpx.Response(200)])
    outcome = lt.retry_like_the_ui("http://127.0.0.1:9", b"jpeg", throttled_attempts=1)
    assert not outcome.ok and outcome.error == "after 1 tries ([429])" and outcome.retry_after == "9"
    assert [call for call in calls if isinstance(call, tuple) and call[0] == "sleep"] == []


@pytest.mark.parametrize(
    ("retry", "retry_after", "seconds"),
    [
        (1, None, 1.0),
        (2, None, 2.0),
        (4, None, 8.0),
        (5, None, 8.0),  # capped
        (1, "3", 3.0),  # at least what the server asks
        (3, " 3 ", 4.0),  # or the backoff, when longer
        (1, " 3 ", 3.0),  # the number within the spaces: the page's parseRetryAfter trims them
        (1, "8", 8.0),
        (1, "9", None),  # over the cap: no retry
        (1, "Wed, 21 Oct 2026 07:28:00 GMT", 1.0),  # an HTTP-date: the proxy sends none; taken as absent
        (1, "\u0663", 1.0),  # a digit, but not ASCII: float() would take it, HTTP does not
        (1, "-5", 1.0),
    ],
)
def test_the_retrying_clients_waits_are_the_pages(retry, retry_after, seconds):
    from bench.loadtest import ui_retry_delay_s

    assert ui_retry_delay_s(retry, retry_after) == seconds


def test_the_retrying_clients_attempts_and_cap_are_script_js_constants():
    """Copies of www/script.js's MAX_ATTEMPTS and MAX_RETRY_DELAY_MS: one changed alone would have the load test tell
    what another page does."""
    from bench.loadtest import ROOT, UI_MAX_ATTEMPTS, UI_MAX_RETRY_DELAY_S
    from tests.test_docs import script_constants

    page = script_constants((ROOT / "www" / "script.js").read_text(encoding="utf-8"))
    assert (page["MAX_ATTEMPTS"], page["MAX_RETRY_DELAY_MS"]) == (UI_MAX_ATTEMPTS, UI_MAX_RETRY_DELAY_S * 1000)


def test_a_fault_the_gateway_answers_expects_the_gateways_answer(monkeypatch, fake_stack_calls):
    """The table's "expected" column for the fault with no handler code (the sandbox crash): API Gateway's own 500."""
    import httpx

    import bench.loadtest as lt

    _, answers = fake_stack_calls
    answers.append(httpx.Response(500, json={"message": "Internal Server Error"}))
    monkeypatch.setattr(lt, "normal_requests_succeed", lambda url, image: (True, ""))
    outcome = lt.run_fault("http://127.0.0.1:9", b"jpeg", CRASH)
    assert outcome.expected == "500 (gateway)" and outcome.ok


def test_the_warm_up_sends_requests_and_a_stack_that_fails_them_fails_the_run(monkeypatch, capsys):
    """Two normal requests before the load: a stack whose model is not ready answers them 503, and the run stops there
    instead of measuring a load of 503s."""
    import httpx

    import bench.loadtest as lt

    sent = []

    def post(client, url, image):
        sent.append(url)
        return httpx.Response(503, json={"error": "model_not_ready", "message": "starting"})

    monkeypatch.setattr(lt, "runtime_state", lambda url: {})
    monkeypatch.setattr(lt, "post_image", post)
    monkeypatch.setattr(lt, "run_load", lambda *args: pytest.fail("a load on a stack that does not answer"))
    assert lt.main(["--url", "http://127.0.0.1:9", "--skip-faults", "--skip-broken-artifact"]) == 1
    assert sent == ["http://127.0.0.1:9"]
    assert capsys.readouterr().err.startswith("error: the stack does not answer normal requests: ")


def test_the_tables_header_names_the_python_it_ran_on():
    import platform

    from bench.loadtest import machine_description

    assert machine_description().endswith(f", Python {platform.python_version()}")


def test_a_server_gone_mid_load_adds_nothing_and_keeps_the_peak_measured_before():
    """The server exiting (or its pid gone) under load: that sample is 0 bytes, so the peak sampled before stands; None
    would stop the sampler and the table would say the memory was never measured ("n/a")."""
    import os

    import psutil

    from bench.loadtest import MemorySampler

    class Gone(FakeProcess):
        def children(self, recursive: bool = False) -> list:
            raise psutil.NoSuchProcess(1)

    sampler = MemorySampler(os.getpid())
    sampler._root = Gone(100)
    assert sampler.sample() == 0
