"""The suites behind a corporate proxy: their own clients reach this machine's servers directly."""

from __future__ import annotations

import urllib.request

import pytest

from tests.proxies import behind_a_proxy, http_server, no_proxy_with_loopback


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "127.0.0.1,localhost,::1"),
        ({"NO_PROXY": "localhost"}, "localhost,127.0.0.1,::1"),
        ({"no_proxy": " .corp.example , localhost,"}, ".corp.example,localhost,127.0.0.1,::1"),
        (
            {"NO_PROXY": "a.example,::1", "no_proxy": "b.example,a.example"},
            "a.example,::1,b.example,127.0.0.1,localhost",
        ),
        # "*" bypasses every proxy only alone: urllib (so botocore and pip) took "*,127.0.0.1,..." for a list
        # naming a host "*", and sent pip's downloads to the proxy the shell had said not to use.
        ({"NO_PROXY": "*"}, "*"),
        ({"NO_PROXY": "a.example", "no_proxy": " * "}, "*"),
    ],
)
def test_no_proxy_keeps_the_shells_names_and_adds_the_loopback_ones(env, expected):
    assert no_proxy_with_loopback(env) == expected
    if expected == "*":
        assert urllib.request.proxy_bypass_environment("pypi.org", {"no": expected})


def test_the_suites_clients_reach_loopback_directly_whatever_the_shells_proxy_says(monkeypatch):
    # The shell's proxy variables as they are under a corporate proxy; NO_PROXY as the suites' start left it.
    import boto3
    import httpx

    with behind_a_proxy(monkeypatch, no_proxy=None) as via_proxy, http_server() as (url, seen):
        with urllib.request.urlopen(f"{url}/urllib", timeout=10) as answer:  # noqa: S310 (our own loopback server)
            assert answer.status == 200
        assert httpx.get(f"{url}/httpx", timeout=10).status_code == 200
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        runtime.invoke_endpoint(EndpointName="botocore", Body=b"jpeg", ContentType="image/jpeg")
    assert via_proxy == []
    assert seen == ["GET /urllib", "GET /httpx", "POST /endpoints/botocore/invocations"]


def test_the_readme_tells_a_proxy_user_the_exceptions_the_suites_add():
    # Behind a proxy, the README's curl and AWS CLI commands for 127.0.0.1 got the proxy's answer, and the README
    # said nothing of it.
    from tests.conftest import ROOT
    from tests.proxies import LOOPBACK_NAMES

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    names = ",".join(LOOPBACK_NAMES)
    assert f"`export NO_PROXY={names} no_proxy={names}`" in readme
