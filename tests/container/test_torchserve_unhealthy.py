"""How long a broken artifact's /ping stays Healthy: TorchServe's retry window for a dying worker, then 500.

test_torchserve_broken.py sees /ping say Healthy while every worker dies in model_fn, within its first minute. That
holds only while TorchServe still counts the dying worker as recovering: for the model's maxRetryTimeoutInSec
(300 s unless the archive's model-config.yaml says otherwise; measured on the default: 200 at 300 s, 500 at 315 s).
After it, /ping answers 500 Unhealthy for as long as the worker keeps dying. Waiting 300 s is too long for a test, so
this artifact carries a model config (MAR-INF/MANIFEST.json naming model-config.yaml, which TorchServe reads from a
model directory as from a .mar) with a short window; everything else is the broken artifact of the other test.

Runs after test_torchserve_restart.py (file order), whose endpoints are stopped by then.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.container.conftest import broken_copy, endpoint

pytestmark = [pytest.mark.container, pytest.mark.slow]

WINDOW_S = 10
MANIFEST = {
    "runtime": "python",
    "model": {"modelName": "model", "modelVersion": "1.0", "configFile": "model-config.yaml"},
}


@pytest.fixture(scope="module")
def broken_with_short_window(artifact, tmp_path_factory):
    """The broken artifact of test_torchserve_broken.py (model_fn raises), with a WINDOW_S retry window."""
    return broken_copy(
        artifact,
        tmp_path_factory.mktemp("unhealthy") / "model.tar.gz",
        {
            "MAR-INF/MANIFEST.json": json.dumps(MANIFEST).encode(),
            "model-config.yaml": f"maxRetryTimeoutInSec: {WINDOW_S}\n".encode(),
        },
    )


def test_ping_turns_unhealthy_once_the_worker_has_kept_dying_for_the_retry_window(broken_with_short_window):
    pings = []  # (seconds since the first answer, status, "status" field)
    with endpoint(broken_with_short_window) as ep:
        deadline = time.monotonic() + 60 + WINDOW_S
        first = None
        while time.monotonic() < deadline and [p[1] for p in pings[-3:]] != [500] * 3:
            status, _, raw = ep._request("GET", "/ping", timeout=2)
            if status:  # 0: not listening yet
                first = first or time.monotonic()
                pings.append((time.monotonic() - first, status, json.loads(raw)["status"]))
            time.sleep(0.5)
    assert pings, "TorchServe never answered /ping"
    assert pings[0][1:] == (200, "Healthy"), pings[:3]
    unhealthy = [p for p in pings if p[1] != 200]
    assert unhealthy, f"/ping still said Healthy after {pings[-1][0]:.0f} s: {pings[-1]}"
    turned = unhealthy[0][0]
    # Healthy for about the window (the worker's first death comes a few seconds after /ping first answers), then
    # Unhealthy from then on: never Healthy again while the worker keeps dying.
    assert WINDOW_S / 2 <= turned <= WINDOW_S + 30, pings
    assert all(p[1:] == (500, "Unhealthy") for p in pings if p[0] >= turned), pings
