"""Fixtures for the policy tests: the program's resource graph per stack config (run once each), and the
handler fixtures of tests/handler reused for the log-hygiene check."""

from __future__ import annotations

from pathlib import Path

import pytest

# Re-exported so tests here can request them by name (pytest finds fixtures in a conftest's namespace).
from tests.handler.conftest import fake_runtime, proxy_env, runtime_proxy  # noqa: F401
from tests.policy.graph import PROD_CONFIG, Graph, dev_config, run_program


@pytest.fixture(scope="session")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Graph]:
    """Both stacks, each program run once per session (a run takes a few seconds of CPU)."""
    work = Path(tmp_path_factory.mktemp("policy-program"))
    return {
        "dev": run_program("dev", dev_config(), work / "dev"),
        "prod": run_program("prod", PROD_CONFIG, work / "prod"),
    }


@pytest.fixture(params=["dev", "prod"])
def graph(request: pytest.FixtureRequest, graphs: dict[str, Graph]) -> Graph:
    """The dev stack (Pulumi.dev.yaml) and a prod-like one (custom domain, certificate, KMS, provisioned
    concurrency, extra CORS origin); every rule test runs against both."""
    return graphs[request.param]
