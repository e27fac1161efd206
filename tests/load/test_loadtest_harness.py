"""The pure parts of bench/loadtest.py: percentiles, the summary, the banner parser, the fault verdicts."""

from __future__ import annotations

import pytest

from bench.loadtest import (
    FaultOutcome,
    FaultSpec,
    Sample,
    judge,
    parse_site_url,
    percentile,
    render_markdown,
    summarize,
)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile(values, 100) == 100.0 and percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0


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
    assert summary.statuses == {0: 1, 200: 6, 429: 2, 504: 1}
    assert summary.errors == {"ReadTimeout": 1, "endpoint_timeout": 1, "throttled": 2}
    assert summary.unexpected == 2  # the 504 and the missing answer; 429 is designed
    assert summary.p50_ms == 100.0 and summary.max_ms == 40_000.0


def test_site_url_from_the_banner():
    banner = "loading ...\n\nmobilenet-serverless local stack\n  site      http://127.0.0.1:41234/\n  api  POST x\n"
    assert parse_site_url(banner) == "http://127.0.0.1:41234"
    assert parse_site_url("loading model.tar.gz ...\n") is None


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
        (CRASH, 500, {"message": "Internal Server Error"}, None, True),
        (CRASH, 500, {"message": "Lambda died: SIGKILL"}, None, False),
        (MODEL_400, 400, {"error": "invalid_image", "message": "injected: bad"}, None, True),
        (MODEL_400, 400, {"error": "invalid_image", "message": "something else"}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": "The model failed"}, None, True),
        (MODEL_500, 502, {"error": "model_error", "message": "injected: worker died"}, None, False),
        (MODEL_500, 502, {"error": "model_error", "message": 'x File "/opt/ml/code/inference.py"'}, None, False),
        (MODEL_500, 502, "not an object", None, False),
    ],
)
def test_fault_verdicts(spec, status, body, retry_after, ok):
    verdict, reason = judge(spec, status, body, retry_after)
    assert verdict is ok and (reason == "") is ok


def test_markdown_table_has_the_load_figures_and_one_row_per_fault():
    summary = summarize([Sample(200, 0.05)] * 3 + [Sample(429, 0.01, "throttled")], wall_s=1.0, concurrency=8)
    faults = [
        FaultOutcome(
            "slow model", "504 endpoint_timeout", 504, "endpoint_timeout", seconds=20.0, recovered=True, ok=True
        ),
        FaultOutcome("down", "503 model_not_ready", 502, "model_error", recovered=True, note="status 502"),
    ]
    table = render_markdown(summary, faults, "test cpu, 2 cores")
    assert "| requests / concurrent clients | 4 / 8 |" in table
    assert "| statuses | 200: 3, 429: 1 |" in table and "| answers outside 200/429 | 0 |" in table
    assert "| slow model | 504 endpoint_timeout | 504 endpoint_timeout | - | 20.0 s | yes | ok |" in table
    assert "FAIL: status 502" in table


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


@pytest.fixture
def interrupted_startup(monkeypatch, tmp_path):
    """`python -m local` replaced by a process that never prints its banner; Ctrl-C arrives while we wait."""
    import subprocess
    import sys
    import tempfile

    logs = tmp_path / "tmp"
    logs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(logs))  # the harness's log files land here
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    yield started, interrupted, logs
    for proc in started:  # whatever the code under test left behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_while_the_loadtest_stack_starts_leaves_no_process_or_log(monkeypatch, interrupted_startup):
    from bench.loadtest import StackProcess

    started, interrupted, logs = interrupted_startup
    monkeypatch.setattr(StackProcess, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        StackProcess("--fault-injection")
    (proc,) = started
    assert proc.poll() is not None, "the stack outlives the interrupted harness (own session: no SIGINT reached it)"
    assert not list(logs.iterdir()), "its log is left behind"


def test_ctrl_c_while_the_bench_stack_starts_leaves_no_process_or_log(monkeypatch, interrupted_startup):
    from tests.conftest import LocalStack

    started, interrupted, logs = interrupted_startup
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
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
    else:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    try:
        assert lt.main(["--url", url, "--skip-faults", "--skip-broken-artifact"]) == 1
    finally:
        if listening:
            server.shutdown()
            server.server_close()
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
    assert f"argument {option}: " in capsys.readouterr().err


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


def test_a_pid_without_a_url_is_refused_before_a_stack_starts(capsys):
    """--pid names the server of a stack given with --url; alone it was ignored, and the harness started a stack of
    its own and ran the whole load and fault run without the memory figure it was asked for."""
    from bench import loadtest as lt

    with pytest.raises(SystemExit) as exit_:
        lt.parse_args(["--pid", "123"])
    assert exit_.value.code == 2
    assert "--pid" in capsys.readouterr().err
