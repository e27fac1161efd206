"""Who may drive the TorchServe that `RUNTIME=torchserve` starts. Its listener is on loopback, as the stack's own port
is, and the README's "Who can reach it" says a loopback stack answers only requests whose Host names this machine (a
page whose DNS name is re-pointed at 127.0.0.1 still sends its own name). The toolkit puts TorchServe's management
API on that port too, and its properties leave token authorization off: the stack moves it to a Unix socket."""

from __future__ import annotations

import platform

import pytest

from local.torchserve import management_address
from tests.ci import skip_or_fail
from tests.container.conftest import endpoint, management

pytestmark = [pytest.mark.container, pytest.mark.slow]

REBOUND = {"Host": "rebound.attacker.example"}


@pytest.fixture(scope="module")
def served(artifact):
    with endpoint(artifact) as ep:
        ep.wait_ready()
        yield ep


def test_a_request_naming_another_host_cannot_drive_torchserves_management_api(served):
    if not management_address(served.base, served.port, platform.system(), platform.machine()).startswith("unix:"):
        # Apple silicon's: TorchServe's jar has no Unix sockets there, and the API stays where the toolkit puts it.
        skip_or_fail(
            f"TorchServe has no Unix socket for its management API on {platform.system()} {platform.machine()}",
            "run CI on Linux (x86_64 or aarch64)",
        )
    listed = served._request("GET", "/models", headers=REBOUND)
    # The count it has (1 worker), so nothing changes: asked with a larger one, TorchServe starts that many workers,
    # each loading the model.
    scaled = served._request("PUT", "/models/model?min_worker=1&max_worker=1&synchronous=true", headers=REBOUND)
    # Refused, or not answered at all (0: a listener moved off TCP); never served.
    assert not 200 <= listed[0] < 300 and not 200 <= scaled[0] < 300, (
        f"GET /models: {listed[0]}, PUT /models/model: {scaled[0]}"
    )
    # The API is there, on the launcher's Unix socket, which only this user can open.
    assert management(served, "GET", "/models")[0] == 200
