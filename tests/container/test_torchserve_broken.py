"""A broken artifact through the same stack: model_fn raises, and only an invocation shows it.

Runs after test_torchserve.py (file order), whose module-scoped endpoint is stopped by then; conftest refuses
to start this one while another is live.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.torchserve import TorchServeError, _warmup_jpeg
from tests.container.conftest import broken_copy, endpoint

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def broken_artifact(artifact, tmp_path_factory):
    """The good tarball with metadata.json replaced by invalid JSON: model_fn raises ModelLoadError."""
    return broken_copy(artifact, tmp_path_factory.mktemp("broken") / "model.tar.gz")


@pytest.fixture(scope="module")
def broken(broken_artifact):
    """What a client sees: /ping, an invocation, the launcher's readiness verdict, /ping again."""
    with endpoint(broken_artifact) as ep:
        deadline = time.monotonic() + 60
        while (ping := ep._request("GET", "/ping", timeout=2))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.25)
        # Queued before the first worker has loaded. TorchServe restarts the dying worker with back-off
        # (1, 1, 2, 3, 5, 8 ... s) and fails a queued request with whichever restart picks it up before dying:
        # usually the first, sometimes a later one, so this waits in the background while readiness is checked.
        with ThreadPoolExecutor(1) as pool:
            invocation = pool.submit(
                ep._request,
                "POST",
                "/invocations",
                _warmup_jpeg(),
                {"Content-Type": "image/jpeg", "Accept": "application/json"},
                45,
            )
            with pytest.raises(TorchServeError) as readiness:
                ep.wait_ready()
            yield {
                "ping_before": ping,
                "readiness": str(readiness.value),
                "invocation": invocation.result(),
                "ping_after": ep._request("GET", "/ping", timeout=5),
                "log": ep.log_tail(100_000),
            }


def test_ping_says_healthy_although_the_model_cannot_load(broken):
    for key in ("ping_before", "ping_after"):
        status, _, raw = broken[key]
        assert status == 200, key
        assert json.loads(raw)["status"] == "Healthy"


def test_an_invocation_gets_500_worker_died_or_waits_while_workers_keep_dying(broken):
    # Exactly what TorchServe answers when the worker dies in model_fn: a JSON 500, not our one-line text.
    # Which restart fails a queued request is a race inside TorchServe; until one does, it waits (on SageMaker
    # the 60 s invocation timeout ends that wait with a ModelError). It is never served.
    status, _, raw = broken["invocation"]
    if status == 0:
        assert broken["log"].count("Retry worker:") >= 2, "no answer in 45 s, yet the worker did not keep dying"
        return
    assert status == 500
    assert json.loads(raw) == {"code": 500, "type": "InternalServerException", "message": "Worker died."}


def test_readiness_wait_names_the_cause_instead_of_hanging(broken):
    message = broken["readiness"]
    first_line = message.splitlines()[0]
    assert "model_fn failed" in first_line
    assert "metadata.json is not valid JSON" in first_line  # model_fn's ModelLoadError message, with the path
    assert "serve.log" in message  # the log tail follows for everything else
