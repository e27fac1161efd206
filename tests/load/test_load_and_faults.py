"""A smaller in-suite version of `make loadtest`: concurrent load and injected runtime faults on the local stack.

Correctness only (statuses, error codes, headers, recovery), never speed; every loop is bounded by count and
by wall time. The slow-model fault runs on a stack whose handler read timeout is lowered to 1 s.
"""

from __future__ import annotations

import pytest

from bench.loadtest import (
    IMAGE,
    LOAD_OK,
    broken_artifact,
    fault_specs,
    normal_requests_succeed,
    retry_like_the_ui,
    run_fault,
    run_load,
    runtime_state,
    summarize,
)
from components.settings import load_stack_file
from handlers.proxy_core import READ_TIMEOUT_S
from tests.conftest import ROOT, LocalStack

pytestmark = pytest.mark.integration

MAX_CONCURRENCY = load_stack_file(ROOT / "Pulumi.dev.yaml").max_concurrency
SPECS = {spec.name.split(" (")[0]: spec for spec in fault_specs(READ_TIMEOUT_S)}


@pytest.fixture(scope="module")
def image() -> bytes:
    return IMAGE.read_bytes()


def test_concurrent_load_answers_only_200_or_429(stack, image):
    runtime_state(stack.url)  # reset the peak in-flight counter's view: it only grows, we compare after
    samples, wall = run_load(stack.url, image, requests=200, concurrency=8, duration_cap_s=90)
    summary = summarize(samples, wall, concurrency=8)
    assert set(summary.statuses) <= LOAD_OK, f"{summary.statuses} {summary.errors}"
    assert summary.requests == 200, f"only {summary.requests} answers within the cap"
    assert summary.statuses.get(200, 0) >= 100, summary.statuses
    assert runtime_state(stack.url)["peak_in_flight"] <= MAX_CONCURRENCY  # the endpoint's cap held
    assert normal_requests_succeed(stack.url, image)[0]


@pytest.mark.parametrize("name", ["throttling burst", "endpoint down", "Lambda sandbox dies"])
def test_fault_gets_its_designed_answer_and_the_stack_recovers(stack, image, name):
    outcome = run_fault(stack.url, image, SPECS[name])
    assert outcome.ok, (
        f"{outcome.status} {outcome.error} {outcome.message!r} Retry-After={outcome.retry_after}: {outcome.note}"
    )
    assert outcome.recovered


def test_model_error_500_hides_the_model_text_and_400_passes_its_first_line(stack, image):
    crash, reject = (
        run_fault(stack.url, image, SPECS["model error 500"]),
        run_fault(stack.url, image, SPECS["model error 400"]),
    )
    assert (crash.status, crash.error) == (502, "model_error") and "injected" not in crash.message
    assert (reject.status, reject.error) == (400, "invalid_image")
    assert reject.message == "injected: image rejected by the model"  # first line only: no traceback
    assert crash.ok and reject.ok, (crash.note, reject.note)  # what `make loadtest` judges, recovery included


def test_throttling_burst_then_a_retrying_client_gets_through(stack, image):
    outcome = retry_like_the_ui(stack.url, image, throttled_attempts=3)
    assert outcome.ok, outcome.note
    assert outcome.retry_after is not None and int(outcome.retry_after) >= 1


def test_slow_model_is_a_504_and_the_stack_stays_healthy(image):
    # The handler's read timeout lowered to 1 s (ENDPOINT_READ_TIMEOUT_S) so the fault takes seconds, not 20.
    quick = LocalStack("--fault-injection", env={"ENDPOINT_READ_TIMEOUT_S": "1"})
    try:
        slow = next(spec for spec in fault_specs(1.0) if spec.name.startswith("slow model"))
        outcome = run_fault(quick.url, image, slow)
        assert (outcome.status, outcome.error) == (504, "endpoint_timeout"), outcome.note
        assert outcome.recovered and outcome.ok
    finally:
        quick.stop()


@pytest.mark.slow
def test_corrupt_onnx_model_refuses_to_start_naming_the_cause(artifact, tmp_path):
    broken = broken_artifact(artifact, tmp_path / "broken.tar.gz")
    with pytest.raises(RuntimeError) as err:
        LocalStack("--artifact", str(broken))
    message = str(err.value)
    assert "exited with 1" in message and "model_fn failed" in message and "model.onnx" in message
    assert "site " not in message  # it never announced itself as serving
