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
MODEL_500 = FaultSpec("500", {}, frozenset({502}), "model_error", message_must_not_contain="injected")


@pytest.mark.parametrize(
    ("spec", "status", "body", "retry_after", "ok"),
    [
        (THROTTLED, 429, {"error": "throttled", "message": "busy"}, "2", True),
        (THROTTLED, 429, {"error": "throttled", "message": "busy"}, None, False),
        (THROTTLED, 503, {"error": "model_not_ready", "message": "warming"}, "5", False),
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
