"""The whole local stack over HTTP: site, API Gateway + the real handler, and the SageMaker Runtime tier."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from components.policies import CROSS_ORIGIN_OPENER_POLICY, CROSS_ORIGIN_RESOURCE_POLICY, PERMISSIONS_POLICY
from components.settings import load_stack_file
from local.runtime import MODEL_DIR_PREFIX, InProcessContainer
from tests.ci import skip_or_fail
from tests.conftest import ROOT, LocalStack, process_group_members
from tests.imagegen import CAT_LABELS, encode, photo, photo_bytes
from tests.waiting import HANG_GUARD_S, wait_until

pytestmark = pytest.mark.integration


def predict(stack, body: bytes, content_type: str = "image/jpeg", query: str = "", **kw) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/predict{query}", content=body, headers={"content-type": content_type, **kw}, timeout=40
    )


def peak_in_flight(stack, **faults) -> int:
    """The runtime tier's highest count of invocations in flight so far. Read from POST /__local/faults, the only
    way it reports it, so the faults in force are passed to be set again."""
    response = httpx.post(f"{stack.url}/__local/faults", json=faults, timeout=HANG_GUARD_S)
    response.raise_for_status()
    return response.json()["peak_in_flight"]


def runtime_client(stack, attempts: int = 1):
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=stack.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


# --- the API tier with the real model ---------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [("chelsea.jpg", CAT_LABELS), ("coffee.jpg", {"espresso"})])
def test_real_photos_over_http(stack, name, expected):
    response = predict(stack, photo_bytes(name))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"][0]["label"] in expected
    assert len(body["predictions"]) == 5 and body["model"] == "mobilenet_v2"
    assert body["latency_ms"]["total"] >= body["latency_ms"]["endpoint"] > 0
    assert response.headers["x-request-id"]


def test_json_body_data_url_and_top_k(stack):
    image = "data:image/png;base64," + base64.b64encode(encode(photo("coffee.jpg"), "PNG")).decode()
    response = predict(stack, json.dumps({"image": image, "top_k": 3}).encode(), "application/json")
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]][:1] == ["espresso"]
    assert len(response.json()["predictions"]) == 3
    assert len(predict(stack, photo_bytes("coffee.jpg"), query="?top_k=7").json()["predictions"]) == 7


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"not an image at all", "image/jpeg", 415, "unsupported_media_type"),
        (b"hello", "text/plain", 415, "unsupported_media_type"),
        (b"{broken", "application/json", 400, "bad_request"),
        (b'{"image": "***"}', "application/json", 400, "bad_request"),
        # over the 4 MiB endpoint limit, under what Lambda takes once base64-encoded (about 4.7 MB)
        (b"\xff\xd8\xff" + b"\x00" * (4 * 1024 * 1024 + 256 * 1024), "image/jpeg", 413, "payload_too_large"),
        (b"", "image/jpeg", 400, "bad_request"),
    ],
)
def test_handler_errors_over_http(stack, body, content_type, status, error):
    response = predict(stack, body, content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and response.json()["message"]
    assert "Traceback" not in response.text and "/opt/ml" not in response.text


def test_truncated_jpeg_is_rejected_by_the_model_with_its_message(stack):
    response = predict(stack, photo_bytes("coffee.jpg")[:3000])
    assert response.status_code == 400  # the model's own status; 422 only when a model says 422
    assert response.json()["error"] == "invalid_image"
    assert "truncated" in response.json()["message"] and "Traceback" not in response.text


def test_gateway_limits_and_routes(stack):
    # Two limits answer the same 413 and message: API Gateway's 10 MiB on the body (it gives up mid-body and closes
    # the connection) and Lambda's 6 MB on the event, the body base64-encoded (read whole, kept open). Only the
    # connection tells which answered, and 11 MiB is over both: one body between them shows the second is not the
    # first.
    over_the_gateway = predict(stack, b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024))
    assert over_the_gateway.status_code == 413 and over_the_gateway.headers.get("connection") == "close"
    over_lambda = predict(stack, b"\xff\xd8\xff" + b"\x00" * (8 * 1024 * 1024))
    assert over_lambda.status_code == 413 and over_lambda.headers.get("connection") != "close"
    assert over_lambda.json() == over_the_gateway.json() == {"message": "Request Entity Too Large"}
    assert httpx.get(f"{stack.url}/predict", timeout=HANG_GUARD_S).status_code == 404
    assert httpx.put(f"{stack.url}/predict", content=b"x", timeout=HANG_GUARD_S).status_code == 404
    missing = httpx.post(f"{stack.url}/nope", content=b"x", timeout=HANG_GUARD_S)
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}  # API Gateway has no 405


def test_cors_for_the_site_origin_only(stack):
    ok = predict(stack, photo_bytes("coffee.jpg"), origin=stack.url)
    assert ok.headers["access-control-allow-origin"] == stack.url
    assert ok.headers.get_list("vary") == ["origin"], "the function's and the gateway's, once"
    bad = predict(stack, b"nope", "text/plain", origin="https://evil.example")
    assert bad.status_code == 415 and "access-control-allow-origin" not in bad.headers
    preflight = httpx.options(
        f"{stack.url}/predict",
        headers={
            "origin": stack.url,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
        timeout=HANG_GUARD_S,
    )
    assert preflight.status_code == 204 and "POST" in preflight.headers["access-control-allow-methods"]
    # The same page opened as localhost calls the API at 127.0.0.1 (config.js): a cross-origin call it must allow.
    as_localhost = f"http://localhost:{stack.url.rsplit(':', 1)[1]}"
    allowed = predict(stack, photo_bytes("coffee.jpg"), origin=as_localhost)
    assert allowed.headers["access-control-allow-origin"] == as_localhost


# --- the site tier ---------------------------------------------------------------------------------------
def test_config_js_points_at_the_local_api_and_is_not_cached(stack):
    response = httpx.get(f"{stack.url}/config.js", timeout=HANG_GUARD_S)
    assert response.status_code == 200
    assert response.text == f'window.APP_CONFIG = Object.freeze({{"apiUrl": "{stack.url}"}});\n'
    assert response.headers["content-type"].startswith("application/javascript")
    assert "no-cache" in response.headers["cache-control"] and "no-store" in response.headers["cache-control"]


@pytest.mark.parametrize(
    ("path", "content_type"), [("/", "text/html"), ("/script.js", "application/javascript"), ("/style.css", "text/css")]
)
def test_site_files_with_content_types_and_security_headers(stack, path, content_type):
    response = httpx.get(f"{stack.url}{path}", timeout=HANG_GUARD_S)
    assert response.status_code == 200 and response.headers["content-type"].startswith(content_type)
    # config.js names the page's own origin as the API, so the fetch is same-origin: 'self'.
    assert "connect-src 'self';" in response.headers["content-security-policy"]
    assert f'"apiUrl": "{stack.url}"' in httpx.get(f"{stack.url}/config.js", timeout=HANG_GUARD_S).text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["permissions-policy"] == PERMISSIONS_POLICY
    assert response.headers["cross-origin-opener-policy"] == CROSS_ORIGIN_OPENER_POLICY == "same-origin"
    assert response.headers["cross-origin-resource-policy"] == CROSS_ORIGIN_RESOURCE_POLICY == "same-origin"
    # Opened as localhost, the page still calls 127.0.0.1 (config.js), another origin: the CSP names it.
    port = stack.url.rsplit(":", 1)[1]
    as_localhost = httpx.get(f"{stack.url}{path}", headers={"host": f"localhost:{port}"}, timeout=HANG_GUARD_S)
    assert f"connect-src {stack.url};" in as_localhost.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/..%2fREADME.md",  # a real file above www/ of a type the site serves ("..": a dot segment, refused as such)
        "/..%2fmodel%2fcode%2f..%2f..%2fREADME.md",
        "/samples%2f..%2f..%2fREADME.md",
        "/..%2f..%2fetc/passwd",
    ],
)
def test_site_refuses_path_traversal(stack, path):
    # httpx would normalise a literal /../ away before sending; %2f reaches the server as a separator.
    response = httpx.get(f"{stack.url}{path}", timeout=HANG_GUARD_S)
    assert response.status_code == 404, path
    assert response.json() == {"message": "Not Found"} and "mobilenet-serverless" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/index.html%00.png",  # a NUL byte: ValueError in the file system calls
        "/%00",
        "/" + "a" * 300 + ".html",  # a name too long for the file system: OSError (ENAMETOOLONG)
        "/" + "a/" * 2100 + "x.html",  # a path too long for it
    ],
)
def test_site_answers_odd_paths_404_without_a_traceback(stack, path):
    seen = len(stack.output())
    response = httpx.get(f"{stack.url}{path}", timeout=HANG_GUARD_S)
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}, path[:40]
    after = stack.output()[seen:]
    assert "Traceback" not in after and "Exception in ASGI application" not in after, after[-2000:]


def test_site_does_not_serve_dotfiles(stack):
    """The deployed site never publishes dotfiles (policies.site_files); the local one must not serve them."""
    hidden = ROOT / "www" / ".local-stack-test-secret.json"
    hidden_dir = ROOT / "www" / ".local-stack-test-dir"
    try:
        hidden.write_text('{"token": "not for the browser"}')
        hidden_dir.mkdir(exist_ok=True)
        (hidden_dir / "notes.txt").write_text("private")
        for path in (f"/{hidden.name}", f"/{hidden_dir.name}/notes.txt", f"/samples/..%2f{hidden.name}"):
            response = httpx.get(f"{stack.url}{path}", timeout=HANG_GUARD_S)
            assert response.status_code == 404, path
            assert "not for the browser" not in response.text and "private" not in response.text
        assert httpx.get(f"{stack.url}/samples/ATTRIBUTION.md", timeout=HANG_GUARD_S).status_code == 200
    finally:
        hidden.unlink(missing_ok=True)
        (hidden_dir / "notes.txt").unlink(missing_ok=True)
        if hidden_dir.exists():
            hidden_dir.rmdir()


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", "0.0.0.0"]
)
def test_loopback_stack_refuses_a_foreign_host_header_dns_rebinding(stack, host):
    """DNS rebinding: a page on attacker.example re-pointed at 127.0.0.1 is same-origin with the stack, so CORS
    does not stop it; its requests still carry its own name in Host, and a loopback stack refuses them."""
    port = stack.url.rsplit(":", 1)[1]
    rebound = {"host": f"{host}:{port}", "origin": f"http://{host}:{port}"}
    assert httpx.get(f"{stack.url}/", headers=rebound, timeout=HANG_GUARD_S).status_code == 403
    assert httpx.get(f"{stack.url}/config.js", headers=rebound, timeout=HANG_GUARD_S).status_code == 403
    answer = predict(stack, photo_bytes("coffee.jpg"), **rebound)
    assert answer.status_code == 403 and "predictions" not in answer.text
    assert "HOST=0.0.0.0 ALLOW_REMOTE=1" in answer.json()["message"], "says how to serve a forwarder"
    runtime = httpx.post(
        f"{stack.url}/endpoints/mobilenet-local/invocations",
        content=b"junk",
        headers={**rebound, "content-type": "image/jpeg"},
        timeout=HANG_GUARD_S,
    )
    assert runtime.status_code == 403 and "Traceback" not in runtime.text and "/tmp" not in runtime.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "app.localhost", "127.0.0.2", "[::1]"])
def test_loopback_stack_serves_hosts_that_name_this_machine(stack, host):
    port = stack.url.rsplit(":", 1)[1]
    for hostport in (f"{host}:{port}", f"{host}:9000"):  # any port: ssh -L and other forwards keep the name
        assert httpx.get(f"{stack.url}/", headers={"host": hostport}, timeout=HANG_GUARD_S).status_code == 200, hostport
        answer = predict(stack, photo_bytes("coffee.jpg"), host=hostport)
        assert answer.status_code == 200, (hostport, answer.text)


# --- the runtime tier through boto3 and the AWS CLI ---------------------------------------------------------
def test_boto3_invoke_endpoint(stack):
    response = runtime_client(stack).invoke_endpoint(
        EndpointName="mobilenet-local",
        Body=photo_bytes("chelsea.jpg"),
        ContentType="image/jpeg",
        Accept="application/json;top_k=2",
    )
    body = json.loads(response["Body"].read())
    assert body["predictions"][0]["label"] in CAT_LABELS and len(body["predictions"]) == 2
    assert response["ContentType"] == "application/json"


def test_boto3_unknown_endpoint_is_a_validation_error(stack):
    with pytest.raises(ClientError) as err:
        runtime_client(stack).invoke_endpoint(EndpointName="nope", Body=b"x", ContentType="image/jpeg")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_boto3_model_error_carries_the_container_status_and_traceback(stack):
    with pytest.raises(ClientError) as err:
        runtime_client(stack).invoke_endpoint(EndpointName="mobilenet-local", Body=b"junk", ContentType="image/jpeg")
    response = err.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 400
    first, _, rest = response["OriginalMessage"].partition("\n")
    assert "not a readable" in first and "Traceback" in rest  # the toolkit's shape, which the proxy trims


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        # What SageMaker answers (aws/amazon-sagemaker-examples#1026, #1216).
        (
            "TargetModel",
            "model.tar.gz",
            "Endpoint mobilenet-local is not a multi-model endpoint and does not support target model header.",
        ),
        # What SageMaker answers an endpoint that hosts a model, not inference components.
        (
            "InferenceComponentName",
            "component",
            "Inference Component Name header is not allowed for endpoints to "
            "which you dont plan to deploy inference components.",
        ),
        # AWS documents a validation error, not its words (the multi-container direct invocation guide).
        ("TargetContainerHostname", "primary", "is not configured for direct invocation"),
    ],
)
def test_boto3_targeting_a_model_component_or_container_is_a_validation_error(stack, member, value, message):
    """The endpoint runs one model in one container, with no inference components: SageMaker refuses a request
    that targets a model, an inference component or a container by name. The local runtime ran the model."""
    with pytest.raises(ClientError) as err:
        runtime_client(stack).invoke_endpoint(
            EndpointName="mobilenet-local", Body=photo_bytes("coffee.jpg"), ContentType="image/jpeg", **{member: value}
        )
    response = err.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == ("ValidationError", 400)
    assert message in response["Error"]["Message"]


def test_boto3_may_target_the_endpoints_one_variant(stack):
    response = runtime_client(stack).invoke_endpoint(
        EndpointName="mobilenet-local",
        Body=photo_bytes("coffee.jpg"),
        ContentType="image/jpeg",
        TargetVariant="AllTraffic",
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"  # components.serverless_endpoint's variant_name
    assert "espresso" in response["Body"].read().decode()


def test_boto3_oversize_payload(stack):
    with pytest.raises(ClientError) as err:
        runtime_client(stack).invoke_endpoint(
            EndpointName="mobilenet-local", Body=b"\0" * (4 * 1024 * 1024 + 1), ContentType="image/jpeg"
        )
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_aws_cli_invoke_endpoint(stack, tmp_path):
    aws = ROOT / "venv" / "bin" / "aws"
    if not aws.exists():
        skip_or_fail("AWS CLI not installed in the venv", "CI installs it from requirements-dev.txt")
    out = tmp_path / "out.json"
    result = subprocess.run(
        [
            str(aws),
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-url",
            stack.url,
            "--region",
            "us-east-1",
            "--endpoint-name",
            "mobilenet-local",
            "--content-type",
            "image/jpeg",
            "--body",
            f"fileb://{ROOT / 'tests/fixtures/images/coffee.jpg'}",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["predictions"][0]["label"] == "espresso"


def test_throttling_beyond_max_concurrency(stack):
    stack.set_faults(delay_s=1.5)  # hold every slot long enough for the requests to overlap
    client = runtime_client(stack)

    def call(_):
        try:
            client.invoke_endpoint(
                EndpointName="mobilenet-local", Body=photo_bytes("coffee.jpg"), ContentType="image/jpeg"
            )
            return "ok"
        except ClientError as e:
            return (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(8)))
    assert results.count("ok") == 5  # Pulumi.dev.yaml maxConcurrency
    assert results.count(("ThrottlingException", 400)) == 3


def test_throttling_reaches_the_browser_as_429_with_retry_after(stack):
    stack.set_faults(throttle=100)
    response = predict(stack, photo_bytes("coffee.jpg"))
    assert response.status_code == 429 and response.json()["error"] == "throttled"
    assert int(response.headers["retry-after"]) >= 1
    stack.clear_faults()
    assert predict(stack, photo_bytes("coffee.jpg")).status_code == 200


# --- start-up guards ----------------------------------------------------------------------------------------
def test_refuses_a_non_loopback_bind_without_the_flag():
    result = subprocess.run(
        [sys.executable, "-m", "local", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Pass --allow-remote (make demo ALLOW_REMOTE=1)" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "70000"], "70000 is not a port"),
        (["--port", "-1"], "-1 is not a port"),
        (["--port", "http"], "argument --port: 'http' is not a port number: use 1-65535, or 0 for a free one"),
        (["--log-level", "verbose"], "invalid choice: 'verbose'"),
        (["--host", "not a host"], "argument --host: 'not a host' is not an IP address or host name"),
    ],
)
def test_bad_command_line_values_are_usage_errors_not_tracebacks(args, says):
    result = subprocess.run(
        [sys.executable, "-m", "local", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "authentication" not in result.stderr


def test_help_names_the_default_of_every_option_that_takes_a_value(capsys):
    """`python -m local --help` left --port, --runtime, --stack-config and --log-level without their defaults (and
    --runtime, --stack-config without a word of what they are)."""
    from local.__main__ import parse_args

    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for says in (
        "--port PORT default 8000; 0 picks a free port",
        "the model tier: inprocess (default) or torchserve",
        "follows (default: Pulumi.dev.yaml)",
        "log level (default warning)",
    ):
        assert says in text, text


@pytest.mark.parametrize(
    ("env", "region", "says"),
    [
        ({"LOG_LEVEL": "LOUD"}, "us-east-1", "ConfigError: LOG_LEVEL 'LOUD' is not a log level; use DEBUG"),
        ({"ENDPOINT_READ_TIMEOUT_S": "abc"}, "us-east-1", "ConfigError: ENDPOINT_READ_TIMEOUT_S 'abc' must be"),
    ],
)
def test_a_configuration_the_handler_refuses_at_import_stops_the_stack_in_one_line(
    env, region, says, artifact, tmp_path
):
    """The handler reads LOG_LEVEL, ENDPOINT_READ_TIMEOUT_S (a shell's, passed through) and the region at import.
    Its refusal killed the sandboxes' fork server: its traceback, then the server's own ("EOFError: unexpected EOF")."""
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        (ROOT / "Pulumi.dev.yaml").read_text().replace("aws:region: us-east-1", f"aws:region: '{region}'")
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "local", "--port", "0", "--stack-config", str(stack_file)],
        cwd=ROOT,
        env={**os.environ, **env, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr  # one line, no traceback
    assert result.stderr.startswith("error: the Lambda handler cannot start: ") and says in result.stderr
    assert list(tmp.iterdir()) == []  # the unpacked model and the fork server's directory are gone


def test_a_temporary_directory_too_long_for_the_fork_servers_socket_is_named_not_blamed_on_the_handler(
    artifact, tmp_path
):
    """The sandboxes' fork server listens on a Unix socket in the temporary directory, whose path has at most 107
    bytes: with a long TMPDIR the stack stopped with "the Lambda handler cannot start: OSError: AF_UNIX path too
    long", blaming the handler and saying nothing of what to change."""
    tmp = tmp_path / "t"
    tmp = tmp.with_name("t" * (100 - len(str(tmp)) + 1))
    tmp.mkdir()
    assert len(str(tmp)) == 100
    result = subprocess.run(
        [sys.executable, "-m", "local", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"error: the Lambda sandboxes cannot start: the temporary directory {tmp} is too long a path for the Unix"
        " socket of the sandboxes' fork server (AF_UNIX path too long): set TMPDIR to a shorter path\n"
    )
    assert list(tmp.iterdir()) == []  # the unpacked model and the fork server's directory are gone


_FORK_SERVER_REFUSED = """
import errno, runpy, sys
from multiprocessing import forkserver


def refused():  # as the OS refuses the fork server's process past ulimit -u
    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


forkserver.ensure_running = refused
sys.argv = ["local", "--port", "0"]
runpy.run_module("local", run_name="__main__", alter_sys=True)
"""


def test_sandboxes_the_os_refuses_at_the_stacks_start_are_named_once_with_what_helps(artifact, tmp_path):
    """The stack stopped with "the Lambda sandboxes cannot start: a Lambda sandbox could not start: the OS refused
    it ...", saying the same twice."""
    result = subprocess.run(
        [sys.executable, "-c", _FORK_SERVER_REFUSED],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "error: the Lambda sandboxes cannot start: the OS refused it (BlockingIOError: [Errno 11] Resource"
        " temporarily unavailable): raise the process limit (ulimit -u), or end some processes\n"
    )
    assert list(tmp_path.iterdir()) == []  # the unpacked model is gone


def bound_sockets(monkeypatch) -> list:
    """Every socket local.__main__ binds from now on: main() must close it however it returns (it may run
    inside a longer-lived process, as here)."""
    from local import __main__ as cli

    sockets = []
    real_bind = cli.bind

    def bind(host: str, port: int):
        sockets.append(real_bind(host, port))
        return sockets[-1]

    monkeypatch.setattr(cli, "bind", bind)
    return sockets


def loaded_model(monkeypatch) -> list:
    """local.__main__ loads a stand-in for the model (nothing unpacked); the list gets True for each close() of it."""
    from local import __main__ as cli

    closed: list = []

    class Loaded:
        backend = "fake"

        def __init__(self, _artifact):
            pass

        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(cli, "InProcessContainer", Loaded)
    return closed


def test_a_model_that_cannot_start_is_a_one_line_error_exit_1_and_frees_the_port(monkeypatch, capsys, artifact):
    from local import __main__ as cli
    from local.runtime import ModelStartError

    def refused(_artifact):
        raise ModelStartError("model_fn failed: metadata.json has no labels")

    monkeypatch.setattr(cli, "InProcessContainer", refused)
    sockets = bound_sockets(monkeypatch)
    assert cli.main(["--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err == "error: the model endpoint cannot start: model_fn failed: metadata.json has no labels\n"
    assert [sock.fileno() for sock in sockets] == [-1], "the port is still held"


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("Unknown level: 'LOUD'\n  while importing handlers.inference_proxy", "ValueError: Unknown level: 'LOUD'"),
        ("", "ValueError: "),
    ],
)
def test_a_handler_refusal_is_named_by_its_first_line_and_the_model_is_closed(
    monkeypatch, capsys, artifact, message, says
):
    from local import __main__ as cli

    closed = loaded_model(monkeypatch)

    def refused(stack, region):
        raise ValueError(message)

    monkeypatch.setattr(cli, "start_sandboxes", refused)
    sockets = bound_sockets(monkeypatch)
    assert cli.main(["--port", "0"]) == 1
    assert capsys.readouterr().err == f"error: the Lambda handler cannot start: {says}\n"
    assert closed == [True] and [sock.fileno() for sock in sockets] == [-1]


def test_a_failure_once_the_handler_has_started_is_not_blamed_on_it(monkeypatch, capsys, artifact):
    """Only start_sandboxes runs the handler's import: an error after it (the app, the server) is a bug of the local
    stack, raised as it is (with its traceback), and the sandboxes and the model are still shut down."""
    from local import __main__ as cli

    closed = loaded_model(monkeypatch)

    class Sandboxes:
        def shutdown(self) -> None:
            closed.append("sandboxes")

    def broken(*args, **kwargs):
        raise RuntimeError("create_app failed")

    monkeypatch.setattr(cli, "start_sandboxes", lambda stack, region: Sandboxes())
    monkeypatch.setattr(cli, "create_app", broken)
    sockets = bound_sockets(monkeypatch)
    with pytest.raises(RuntimeError, match="create_app failed"):
        cli.main(["--port", "0"])
    assert "the Lambda handler cannot start" not in capsys.readouterr().err
    assert closed == ["sandboxes", True] and [sock.fileno() for sock in sockets] == [-1]


def test_ctrl_c_while_the_model_loads_stops_cleanly(monkeypatch, capsys, artifact):
    import signal

    from local import __main__ as cli

    def interrupted(_artifact):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "InProcessContainer", interrupted)
    sockets = bound_sockets(monkeypatch)
    before = {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS}
    assert cli.main(["--port", "0"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("stopped")
    assert [sock.fileno() for sock in sockets] == [-1], "the port is still held"
    # main() may run inside a longer-lived process (this one): it leaves the signal handlers as it found them.
    assert {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS} == before


@pytest.mark.parametrize(
    ("runtime", "loaded"), [("torchserve", "TorchServeContainer"), ("inprocess", "InProcessContainer")]
)
def test_the_runtime_option_picks_the_model_tier(monkeypatch, tmp_path, runtime, loaded):
    """`make demo RUNTIME=torchserve` must serve through TorchServe (as the SageMaker container), not in-process."""
    from local import __main__ as cli

    picked = []

    def container(name):
        def load(_artifact):
            picked.append(name)
            raise KeyboardInterrupt  # seen which tier loads: stop there

        return load

    for name in ("TorchServeContainer", "InProcessContainer"):
        monkeypatch.setattr(cli, name, container(name))
    bound_sockets(monkeypatch)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"")
    assert cli.main(["--port", "0", "--runtime", runtime, "--artifact", str(artifact)]) == 0
    assert picked == [loaded]


def test_refuses_to_start_when_model_fn_fails(artifact, tmp_path):
    import tarfile

    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(artifact) as src, tarfile.open(broken, "w:gz") as dst:
        for member in src.getmembers():
            if member.name == "metadata.json":
                data = b'{"model": "mobilenet_v2"}'
                member.size = len(data)
                dst.addfile(member, __import__("io").BytesIO(data))
            elif member.isfile():
                dst.addfile(member, src.extractfile(member))
            else:
                dst.addfile(member)
    with pytest.raises(RuntimeError) as err:
        LocalStack("--artifact", str(broken))
    assert "model_fn failed" in str(err.value) and "metadata.json" in str(err.value)


def test_bound_to_every_interface_the_page_calls_the_address_it_was_loaded_from():
    stack = LocalStack("--host", "0.0.0.0", "--allow-remote")
    try:
        assert stack.url.startswith("http://127.0.0.1:")  # the banner's own link still works on this machine
        assert "every interface (REMOTE ACCESS ENABLED" in stack.output()
        port = stack.url.rsplit(":", 1)[1]
        lan = {"host": f"192.0.2.2:{port}"}  # how a browser on another machine addresses us
        config = httpx.get(f"{stack.url}/config.js", headers=lan, timeout=HANG_GUARD_S)
        assert config.status_code == 200 and f'"apiUrl": "http://192.0.2.2:{port}"' in config.text
        page = httpx.get(f"{stack.url}/", headers=lan, timeout=HANG_GUARD_S)
        assert "connect-src 'self';" in page.headers["content-security-policy"]  # = the apiUrl's origin above
        for host in ("evil.example/x", "[:::]:80"):
            forged = httpx.get(f"{stack.url}/config.js", headers={"host": host}, timeout=HANG_GUARD_S)
            assert forged.status_code == 400 and "apiUrl" not in forged.text, host
        garbled = predict(stack, photo_bytes("coffee.jpg"), host="[:::]:80")
        assert garbled.status_code == 200, "a Host the site cannot use does not matter to the API"
        assert "Traceback" not in stack.output()
        assert predict(stack, photo_bytes("coffee.jpg")).json()["predictions"][0]["label"] == "espresso"
    finally:
        stack.stop()


SHELL = {
    "AWS_SESSION_TOKEN": "the-developers-real-session-token",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    "LOCAL_STACK_TEST_SECRET": "ghp_not_for_the_sandbox",
    "POWERTOOLS_LOGGER_SAMPLE_RATE": "0",  # Powertools settings still reach the handler
    "ENDPOINT_READ_TIMEOUT_S": "3",  # and so does the handler's own tunable
}


def test_the_sandbox_environment_is_the_functions_not_the_developers():
    """A Lambda function sees only its own environment. The sandboxes used to inherit the shell's: its tokens,
    a real AWS_SESSION_TOKEN (sent with the dummy key to the runtime), and AWS_IGNORE_CONFIGURED_ENDPOINT_URLS,
    which sent every image to the real SageMaker endpoint instead of the local one."""
    import os

    from components.settings import load_stack_file
    from local.server import StackInfo, sandbox_environment

    stack = StackInfo(
        base_url="http://127.0.0.1:8000",
        endpoint_name="mobilenet-local",
        settings=load_stack_file(ROOT / "Pulumi.dev.yaml"),
        allowed_origins=["http://127.0.0.1:8000"],
    )
    env = sandbox_environment(stack, "eu-west-1", {**SHELL, "PATH": "/usr/bin", "HOME": "/root", "LOG_LEVEL": "DEBUG"})
    assert not {"AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "LOCAL_STACK_TEST_SECRET"} & set(env)
    assert env["ENDPOINT_NAME"] == "mobilenet-local" and env["AWS_ACCESS_KEY_ID"] == "local"
    assert env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://127.0.0.1:8000"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["LOG_LEVEL"] == "DEBUG", "LOG_LEVEL=DEBUG make demo reaches the handler"
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["POWERTOOLS_LOGGER_SAMPLE_RATE"] == "0" and env["ENDPOINT_READ_TIMEOUT_S"] == "3"
    assert env["PATH"] == "/usr/bin" and "HOME" not in env


def test_the_sandbox_environment_has_the_variables_lambda_defines_for_every_function():
    """Lambda sets these in every execution environment, and a function cannot set them itself ("Defined runtime
    environment variables", https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html). Code that tells
    Lambda from elsewhere by them (Powertools' Tracer reads LAMBDA_TASK_ROOT, botocore's user agent AWS_EXECUTION_ENV)
    or names its function by them ran as if not on Lambda. Lambda's Python runtime builds the context's name, memory
    size, version and log group from the same variables (awslambdaric/lambda_context.py), so they agree with it."""
    from components.inference_api import HANDLER, RUNTIME
    from components.policies import lambda_log_group_name
    from components.settings import function_name_for, load_stack_file
    from local.server import StackInfo, sandbox_environment

    settings = load_stack_file(ROOT / "Pulumi.dev.yaml")
    stack = StackInfo("http://127.0.0.1:8000", "mobilenet-local", settings, ["http://127.0.0.1:8000"])
    env = sandbox_environment(stack, "eu-west-1", {"PATH": "/usr/bin"})
    name = function_name_for("mobilenet-local")
    assert {key: env.get(key) for key in DEFINED_BY_LAMBDA} == {
        "_HANDLER": HANDLER,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings.proxy_memory_size_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": lambda_log_group_name(name),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }
    assert env.get("LAMBDA_TASK_ROOT"), "the function's code directory"


DEFINED_BY_LAMBDA = (
    "_HANDLER",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
)


def test_the_sandboxes_log_at_the_stacks_proxy_log_level_unless_the_shell_asks():
    import dataclasses

    from components.settings import load_stack_file
    from local.server import StackInfo, sandbox_environment

    settings = dataclasses.replace(load_stack_file(ROOT / "Pulumi.dev.yaml"), proxy_log_level="WARNING")
    stack = StackInfo("http://127.0.0.1:8000", "mobilenet-local", settings, ["http://127.0.0.1:8000"])
    assert sandbox_environment(stack, "eu-west-1", {"PATH": "/usr/bin"})["LOG_LEVEL"] == "WARNING"
    assert sandbox_environment(stack, "eu-west-1", {"LOG_LEVEL": ""})["LOG_LEVEL"] == "WARNING"
    assert sandbox_environment(stack, "eu-west-1", {"LOG_LEVEL": "DEBUG"})["LOG_LEVEL"] == "DEBUG"


# What the README's Environment section passes from the shell besides PATH, POWERTOOLS_* and LOG_LEVEL: the locale,
# TZ, TMPDIR, the PYTHON* basics, VIRTUAL_ENV and LD_LIBRARY_PATH.
PROCESS_BASICS = {
    "LANG": "en_US.UTF-8",
    "LC_ALL": "C.UTF-8",
    "LC_CTYPE": "C.UTF-8",
    "TZ": "Europe/Paris",
    "TMPDIR": "/var/tmp/stack",
    "PYTHONPATH": "/opt/extra",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
    "VIRTUAL_ENV": "/opt/venv",
    "LD_LIBRARY_PATH": "/opt/lib",
}


def test_the_shells_process_basics_reach_the_sandboxes_but_never_replace_the_functions_own():
    """Each process basic the README lists reaches the handler as the shell set it: only PATH was checked, so any
    other could be left out unnoticed. The shell's POWERTOOLS_* pass too, but not over what the component sets: the
    function's service name, and metrics under MobilenetServerless/local, never the deployed stack's namespace."""
    from components.settings import load_stack_file
    from local.server import StackInfo, sandbox_environment

    stack = StackInfo(
        "http://127.0.0.1:8000", "mobilenet-local", load_stack_file(ROOT / "Pulumi.dev.yaml"), ["http://127.0.0.1:8000"]
    )
    shell = {
        **PROCESS_BASICS,
        "POWERTOOLS_SERVICE_NAME": "the-shells-service",
        "POWERTOOLS_METRICS_NAMESPACE": "MobilenetServerless",
    }
    env = sandbox_environment(stack, "eu-west-1", shell)
    assert {name: env.get(name) for name in PROCESS_BASICS} == PROCESS_BASICS
    assert env["POWERTOOLS_SERVICE_NAME"] == "inference-proxy"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MobilenetServerless/local"


def test_a_stack_started_from_a_shell_with_real_credentials_still_serves_locally():
    """With the shell's AWS_IGNORE_CONFIGURED_ENDPOINT_URLS the handler sent the image to the real SageMaker
    endpoint (a 503 here); the sandboxes must not see it. (What Python in a sandbox sees, also after its fork
    server was started again, is checked in test_sandboxes.py.)"""
    own = LocalStack(env=SHELL)
    try:
        answer = predict(own, photo_bytes("coffee.jpg"))
        assert answer.status_code == 200, answer.text
    finally:
        own.stop()


def test_client_hanging_up_mid_body_leaves_no_traceback(stack):
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(stack.url)
    seen = len(stack.output())  # earlier tests log model tracebacks on purpose
    with socket.create_connection((url.hostname, url.port), timeout=HANG_GUARD_S) as sock:
        # A Host that names this machine: the loopback stack refuses any other before reading the body.
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n")
        sock.sendall(b"Content-Length: 100000\r\n\r\n")
        sock.sendall(b"\xff\xd8\xff" + b"\x00" * 100)
        # The hang-up (the FIN close() sends); no sleep: the server closes its end as it sees it, and reacts to it
        # (where a traceback would be printed) long before the same event loop answers the request below.
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    assert predict(stack, photo_bytes("coffee.jpg")).status_code == 200
    after = stack.output()[seen:]
    assert "Traceback" not in after and "ClientDisconnect" not in after, after


def test_concurrent_requests_keep_their_own_log_keys_and_metrics(stack):
    """Each invocation runs in a sandbox of its own, as in Lambda: Powertools' process-wide Logger and Metrics
    state never mixes two requests (on shared threads it did: a 415 logged another request's image_bytes)."""
    jpeg, gif = photo_bytes("coffee.jpg"), b"GIF89a" + b"\x00" * 64
    bodies = [(jpeg, "image/jpeg") if i % 2 else (gif, "image/gif") for i in range(24)]
    seen = len(stack.output())
    # No more photos in flight than the endpoint admits (MaxConcurrency): a throttled attempt is retried, but on a
    # loaded machine its retry could be throttled too, and a 429 is not what this test is about. The GIFs, which
    # the handler refuses without calling the endpoint, still run in sandboxes beside them.
    endpoint_slots = threading.Semaphore(load_stack_file(ROOT / "Pulumi.dev.yaml").max_concurrency)

    def send(item):
        body, content_type = item
        if content_type == "image/jpeg":
            with endpoint_slots:
                response = predict(stack, body, content_type)
        else:
            response = predict(stack, body, content_type)
        return response.headers["apigw-requestid"], response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = dict(pool.map(send, bodies))
    assert sorted(answers.values()) == [200] * 12 + [415] * 12

    lines = [json.loads(line) for line in stack.output()[seen:].splitlines() if line.startswith("{")]
    finals = [line for line in lines if line.get("message") in ("request done", "request failed")]
    by_request = {}
    for line in finals:
        assert line["correlation_id"] not in by_request, f"two final lines for {line['correlation_id']}"
        by_request[line["correlation_id"]] = line
    assert set(by_request) == set(answers)
    for request_id, status in answers.items():
        line = by_request[request_id]
        assert line["status"] == status
        if status == 200:
            assert line["image_bytes"] == len(jpeg)
        else:
            assert "image_bytes" not in line, f"a 415 logged another request's keys: {line}"
    requests_metric = [line["Requests"] for line in lines if "_aws" in line and "Requests" in line]
    assert requests_metric == [[1.0]] * 24, "one Requests count per invocation, none merged"


def test_the_handlers_line_and_the_runtimes_line_join_on_sagemakers_request_id(stack):
    """`make demo` as it starts (--log-level warning, proxyLogLevel INFO): the handler logs SageMaker's x-amzn-RequestId
    as endpoint_request_id, and the runtime tier logs each answer under that id, for a prediction and an error alike,
    so the two halves of a call are found by its id rather than by their time."""
    seen = len(stack.output())
    ok = predict(stack, photo_bytes("coffee.jpg"))
    stack.set_faults(model_status=500)
    failed = predict(stack, photo_bytes("coffee.jpg"))
    stack.clear_faults()
    assert (ok.status_code, failed.status_code) == (200, 502), failed.text
    output = stack.output()[seen:]
    finals = {
        line["correlation_id"]: line
        for line in (json.loads(text) for text in output.splitlines() if text.startswith("{"))
        if line.get("message") in ("request done", "request failed")
    }
    # An error's line is a WARNING, as the handler's line of the 502 is.
    for response, level, answered in (
        (ok, "INFO", "200"),
        (failed, "WARNING", "424 ModelError (container status 500)"),
    ):
        endpoint_request_id = finals[response.headers["apigw-requestid"]]["endpoint_request_id"]
        assert f"{level} local.runtime: invocation {endpoint_request_id}: {answered} in " in output, output


def test_the_stack_throttles_predict_as_the_stage_is_configured(tmp_path):
    """What `make demo` runs, with the stack config's limits (here 1 request a second, bursts of 5, so that a slow
    machine cannot refill the bucket while the requests arrive): twelve requests at once are more than the bucket
    holds, so API Gateway's own 429s answer the rest before the function runs (the bucket's arithmetic is
    tests/local/test_gateway.py's); a second later it holds a token again. Empty bodies: the handler refuses them
    (400) without invoking the endpoint, so no MaxConcurrency 429 from the runtime tier can pass for the stage's."""
    config = (ROOT / "Pulumi.dev.yaml").read_text()
    assert "apiThrottleRateLimit: 10\n" in config and "apiThrottleBurstLimit: 20\n" in config
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(
        config.replace("apiThrottleRateLimit: 10\n", "apiThrottleRateLimit: 1\n").replace(
            "apiThrottleBurstLimit: 20\n", "apiThrottleBurstLimit: 5\n"
        )
    )
    own = LocalStack("--stack-config", str(stack_file), stage_throttle=True)
    try:
        assert "/predict at 1 requests/s, bursts of 5" in own.output()
        barrier = threading.Barrier(12)

        def empty() -> httpx.Response:
            barrier.wait(timeout=HANG_GUARD_S)
            return predict(own, b"")

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: empty(), range(12)))
        throttled = [a for a in answers if a.status_code == 429]
        assert {a.status_code for a in answers} == {400, 429}, [a.text for a in answers]
        assert len(answers) - len(throttled) >= 5  # the whole burst goes through
        assert all(a.json() == {"message": "Too Many Requests"} and "retry-after" not in a.headers for a in throttled)
        time.sleep(1.0)
        assert predict(own, photo_bytes("coffee.jpg")).status_code == 200
    finally:
        own.stop()


def test_the_log_level_reaches_the_server_and_the_stacks_own_loggers():
    """`--log-level info` shows uvicorn's start-up lines, and sets the level of the stack's own loggers."""
    import logging

    own = LocalStack("--log-level", "info")
    try:
        wait_until(lambda: "INFO:     Started server process" in own.output(), "uvicorn's info lines")
    finally:
        own.stop()
    script = (
        "import logging\n"
        "from local.__main__ import main\n"
        "main(['--log-level', 'DEBUG', '--artifact', '/nonexistent/model.tar.gz'])\n"
        "print(logging.getLogger().level)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == [str(logging.DEBUG)], done.stderr


def test_log_level_info_shows_the_apis_access_log_pairing_the_two_request_ids():
    """`--log-level info`: one access line per API answer, as the deployed stage logs it. A prediction's line names
    the Lambda request id the handler's own lines log (function_request_id); a crashed sandbox's names it too, with
    Lambda's runtime exit as the integration's error, though the handler logged nothing. The page's files log none."""
    own = LocalStack("--log-level", "info", "--fault-injection")
    try:
        ok = predict(own, photo_bytes("coffee.jpg"))
        own.set_faults(sandbox_crash=1)
        crashed = predict(own, photo_bytes("coffee.jpg"))
        page = httpx.get(f"{own.url}/", timeout=HANG_GUARD_S)
        assert (ok.status_code, crashed.status_code, page.status_code) == (200, 500, 200), crashed.text
        wait_until(lambda: own.output().count(" INFO local.access: ") == 2, "the two access lines")
        output = own.output()
    finally:
        own.stop()
    access = {
        line["requestId"]: line
        for line in (
            json.loads(text.split(" INFO local.access: ", 1)[1])
            for text in output.splitlines()
            if " INFO local.access: " in text
        )
    }
    assert set(access) == {ok.headers["apigw-requestid"], crashed.headers["apigw-requestid"]}, output
    # And no line of uvicorn's own access log (`"GET / HTTP/1.1" 200 OK`), for the page or the API.
    assert not re.search(r'"[A-Z]+ /\S* HTTP/1\.1" \d{3}', output), output
    handler_lines = [json.loads(text) for text in output.splitlines() if text.startswith("{")]
    function_request_id = next(
        line["function_request_id"]
        for line in handler_lines
        if line.get("correlation_id") == ok.headers["apigw-requestid"]
    )
    served = access[ok.headers["apigw-requestid"]]
    assert (served["status"], served["routeKey"], served["integrationErrorMessage"]) == ("200", "POST /predict", "-")
    assert served["integrationRequestId"] == function_request_id
    assert served["responseLength"] == str(len(ok.content))
    failed = access[crashed.headers["apigw-requestid"]]
    assert failed["status"] == "500" and failed["integrationRequestId"] != "-"
    assert (
        f"RequestId: {failed['integrationRequestId']} Error: Runtime exited with error: signal: killed"
        in (failed["integrationErrorMessage"])
    )


def test_the_default_log_level_keeps_the_access_log_quiet(stack):
    """`make demo` as it starts (--log-level warning): the access log is INFO, so a prediction adds no line of it."""
    seen = len(stack.output())
    assert predict(stack, photo_bytes("coffee.jpg")).status_code == 200
    stack.set_faults(model_status=500)
    assert predict(stack, photo_bytes("coffee.jpg")).status_code == 502
    # The second call's runtime line, a WARNING, is logged after the first call's access line would have been.
    wait_until(lambda: "WARNING local.runtime: invocation " in stack.output()[seen:], "the runtime tier's WARNING")
    assert "local.access" not in stack.output()[seen:]


def test_ctrl_c_stops_the_stack_cleanly():
    """Ctrl-C on `make demo` reaches the whole process group: a clean exit, no traceback. Started as `make demo |
    tee demo.log` would be, without PYTHONUNBUFFERED: the banner must not wait in stdout's buffer while it serves."""
    import os
    import signal

    own = LocalStack(env={"PYTHONUNBUFFERED": ""})
    try:
        assert predict(own, photo_bytes("coffee.jpg")).status_code == 200
        os.killpg(own.proc.pid, signal.SIGINT)
        assert own.proc.wait(timeout=HANG_GUARD_S) == 0
        output = own.output()
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
        assert output.rstrip().endswith("stopped")
    finally:
        own.stop()


def interrupt_group(proc: subprocess.Popen) -> None:
    """Ctrl-C to a stack started in a session of its own, and its end awaited (killed if it hangs)."""
    import os
    import signal

    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_predict_still_answers_once_nobody_reads_the_stacks_output():
    """`make demo | head -20` for the banner: once head exits, every write to that pipe fails (EPIPE). The server's
    own lines survive it (say()); the function's are only lost, as a log nobody reads is."""
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "local", "--port", "0", "--no-stage-throttle"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    try:
        banner = b""
        while b"Ctrl-C stops" not in banner:
            chunk = proc.stdout.read1(4096)
            assert chunk, f"the stack stopped before its banner:\n{banner.decode(errors='replace')}"
            banner += chunk
        url = re.search(rb"site\s+(http://\S+?)/\s", banner).group(1).decode()
        proc.stdout.close()  # the reader is gone: head has its lines
        response = httpx.post(
            f"{url}/predict", content=photo_bytes("coffee.jpg"), headers={"content-type": "image/jpeg"}, timeout=40
        )
        assert response.status_code == 200, response.text
    finally:
        interrupt_group(proc)


def test_ctrl_c_while_python_imports_the_stack_exits_quietly():
    """A Ctrl-C in the first ~0.3 s of `python -m local`, while its imports still run, printed a KeyboardInterrupt
    traceback (every run that took one between 50 and 250 ms). It lands here during the import of local.gateway, as
    `python -m local` runs it: a quiet exit with the status of a later Ctrl-C (0)."""
    script = (
        "import os, runpy, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C, whatever the parent ignores\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'local.gateway':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        "sys.argv = ['local', '--stack-config', '/nonexistent/Pulumi.dev.yaml']  # never a stack, were it missed\n"
        "runpy.run_module('local', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_sandboxes_exit_with_the_server_even_when_it_is_killed(sig, tmp_path):
    import os
    import shutil
    import signal

    # The stack's temporary files (its unpacked model, multiprocessing's fork server socket folder) go here: a
    # SIGKILL gives it no chance to remove them, and they were left in the machine's /tmp at every test run.
    own = LocalStack(env={"TMPDIR": str(tmp_path)})
    try:
        assert predict(own, photo_bytes("coffee.jpg")).status_code == 200  # a sandbox is running now
        assert any(tmp_path.iterdir()), "the stack keeps its temporary files where TMPDIR says"
        group = own.proc.pid  # start_new_session: the server leads its own process group
        assert len(process_group_members(group)) >= 3, "server, fork server and at least one sandbox"
        os.kill(own.proc.pid, getattr(signal, sig))  # the server alone, not its group
        own.proc.wait(timeout=HANG_GUARD_S)
        # The sandboxes look for their server once a second.
        wait_until(lambda: not process_group_members(group), f"nothing left behind after {sig}")
        if sig == "SIGTERM":  # a stop it handles: it removes what it made
            assert sorted(path.name for path in tmp_path.iterdir()) == []
    finally:
        own.stop()
        for leftover in tmp_path.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


def test_the_next_start_removes_what_a_stack_killed_outright_left_behind(tmp_path):
    """kill -9 runs no cleanup: the unpacked model and multiprocessing's pymp-* directory (the fork server's socket)
    stay in TMPDIR. The next start removes both, their owner locks telling them for a dead stack's; the pymp-*
    directories were left for ever, as nothing told them from another program's, which still stays."""
    import os
    import shutil
    import signal

    try:
        killed = LocalStack(env={"TMPDIR": str(tmp_path)})
        try:
            os.kill(killed.proc.pid, signal.SIGKILL)
            killed.proc.wait(timeout=HANG_GUARD_S)
            wait_until(lambda: not process_group_members(killed.proc.pid), "the killed stack's processes gone")
        finally:
            killed.stop()
        left = sorted(tmp_path.iterdir())
        assert sorted(path.name.split("-")[0] for path in left) == ["mobilenet", "pymp"], left
        another_programs = tmp_path / "pymp-k2x9q4tz"
        another_programs.mkdir()
        following = LocalStack(env={"TMPDIR": str(tmp_path)})
        try:
            now = set(tmp_path.iterdir())
            assert not now & set(left), sorted(now)
            assert another_programs in now
        finally:
            following.stop()
    finally:
        for leftover in tmp_path.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


def test_a_sandbox_killed_mid_request_fails_only_that_request():
    """As in Lambda (Runtime.ExitError): the request whose sandbox died gets API Gateway's 500, the requests in
    other sandboxes finish, and the next request gets a new sandbox."""
    import os
    import signal

    import psutil

    own = LocalStack("--fault-injection")
    try:
        own.set_faults(delay_s=3.0)  # holds each invocation in its sandbox long enough to kill one
        forkserver = next(  # by its command, not its path: a checkout in a directory named forkserver has both
            child
            for child in psutil.Process(own.proc.pid).children()
            if child.cmdline()[-1].startswith("from multiprocessing.forkserver import")
        )
        seen = len(own.output())
        port = int(own.url.rsplit(":", 1)[1])
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = [pool.submit(predict, own, photo_bytes("coffee.jpg")) for _ in range(3)]
            wait_until(lambda: len(forkserver.children()) >= 3, "a sandbox per request")  # the warm one + 2 new
            sandboxes = forkserver.children()
            assert len(sandboxes) == 3, "one sandbox per concurrent request"
            # The newest got the last request. Killed once its handler has called the runtime tier, it is inside
            # its invocation for certain: the slow model holds that call for 3 s. (After a fixed pause instead,
            # the first request's invocation could be over on a loaded machine, and nothing would fail.)
            newest = max(sandboxes, key=lambda sandbox: (sandbox.create_time(), sandbox.pid))
            wait_until(
                lambda: any(c.raddr and c.raddr.port == port for c in newest.net_connections("tcp")),
                "the newest sandbox calling the runtime",
            )
            os.kill(newest.pid, signal.SIGKILL)
            responses = [answer.result() for answer in answers]
        assert sorted(r.status_code for r in responses) == [200, 200, 500]
        failed = next(r for r in responses if r.status_code == 500)
        assert failed.json() == {"message": "Internal Server Error"}
        own.clear_faults()
        assert predict(own, photo_bytes("coffee.jpg")).status_code == 200
        after = own.output()[seen:]
        assert "exited mid-invocation" in after
        assert "Traceback" not in after, after
    finally:
        own.stop()


def test_ctrl_c_with_a_request_in_flight_answers_it_in_json_without_a_traceback():
    """Past the 5 s grace period uvicorn cancels what still runs; that request gets the gateway's JSON 503."""
    import os
    import signal

    own = LocalStack("--fault-injection")
    answers: list[httpx.Response | Exception] = []

    def slow_request() -> None:
        try:
            answers.append(predict(own, photo_bytes("coffee.jpg")))
        except Exception as e:  # reported by the assertion below
            answers.append(e)

    try:
        own.set_faults(delay_s=30)
        client = threading.Thread(target=slow_request)
        client.start()
        # Ctrl-C only once the request is in (a fresh stack's peak starts at 0): sent after a fixed pause it could
        # reach a server that has not accepted the request yet, and the client would get a refused connection.
        wait_until(lambda: peak_in_flight(own, delay_s=30) >= 1, "the request in flight")
        os.killpg(own.proc.pid, signal.SIGINT)
        assert own.proc.wait(timeout=HANG_GUARD_S) == 0
        client.join(timeout=HANG_GUARD_S)
        output = own.output()
        assert "Traceback" not in output and "Exception in ASGI application" not in output, output
        # Its sandbox is ended with it: left running, the handler's call to the runtime tier, closed by then, logged
        # "model_not_ready" (and its Errors metric) after "stopped", for what was a stop.
        assert output.rstrip().endswith("stopped") and "model_not_ready" not in output, output
        # A stop asked for: one line of its own, not uvicorn's "ERROR: Cancel 2 running task(s), timeout graceful
        # shutdown exceeded" (2: the handler's call to the runtime tier counted too).
        assert "ERROR:" not in output and " ERROR " not in output, output
        assert (
            'stopping: the requests still running after 5 s are cut short (API Gateway\'s 503 {"message":"Service'
            ' Unavailable"})\n'
        ) in output, output
        assert len(answers) == 1 and isinstance(answers[0], httpx.Response), answers
        assert answers[0].status_code == 503 and answers[0].json() == {"message": "Service Unavailable"}
    finally:
        own.stop()


def test_only_uvicorns_grace_period_overrun_is_said_as_the_stops_own_line():
    """The rest of uvicorn's log is left as it is."""
    import logging

    from local.__main__ import GraceOverrun

    said: list[str] = []
    overrun = GraceOverrun(5, said.append)

    def record(level: int, msg: str, *args) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, args, None)

    # uvicorn's own words (uvicorn/server.py), as it logs them
    cancel = record(logging.ERROR, "Cancel %s running task(s), timeout graceful shutdown exceeded", 3)
    assert overrun.filter(cancel) is False
    assert said == [
        'stopping: the requests still running after 5 s are cut short (API Gateway\'s 503 {"message":'
        '"Service Unavailable"})'
    ]
    # uvicorn's 0 (its wait ran out as the last answer went out): nothing was cut short, nothing to say
    assert overrun.filter(record(logging.ERROR, cancel.msg, 0)) is False and len(said) == 1
    # but 1 is one request cut short, said as 3 are
    one: list[str] = []
    assert GraceOverrun(5, one.append).filter(record(logging.ERROR, cancel.msg, 1)) is False and one == said
    assert overrun.filter(record(logging.ERROR, "Exception in ASGI application")) is True
    assert overrun.filter(record(logging.INFO, "Shutting down")) is True
    # Both halves of uvicorn's words, not either
    assert overrun.filter(record(logging.ERROR, "Cancel requested by the client")) is True
    assert overrun.filter(record(logging.ERROR, "%s: timeout graceful shutdown exceeded", "lifespan")) is True
    assert len(said) == 1
    # ... unless the drain cut /predict requests short itself: they may be over by the time uvicorn counts
    from local.server import Drain

    drain = Drain()
    drain.cut_short = True
    assert GraceOverrun(5, said.append, drain).filter(record(logging.ERROR, cancel.msg, 0)) is False
    assert len(said) == 2 and said[1] == said[0]


def test_a_client_that_never_sends_its_request_is_dropped(stack):
    """The real server applies the head deadline: a connection that sends nothing does not hold a descriptor."""
    import socket

    from local.server import HEAD_TIMEOUT_S

    host, port = stack.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=HEAD_TIMEOUT_S + HANG_GUARD_S) as conn:
        conn.sendall(b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # half a head, then nothing
        assert conn.recv(1024) == b"", "the server closes it"
    assert predict(stack, photo_bytes("coffee.jpg")).status_code == 200


def test_accept_refusals_are_logged_once_a_second_without_their_traceback_and_say_how_many_were_left_out():
    import logging

    from local.__main__ import AcceptRefusals

    now = [100.0]
    refusals = AcceptRefusals(every_s=1.0, clock=lambda: now[0])

    def refusal():
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            exc_info = sys.exc_info()
        message = "socket.accept() out of system resource\nsocket: <socket fd=7>\nexception: OSError(24)"
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, (), exc_info)

    first = refusal()
    assert refusals.filter(first) is True and first.exc_info is None
    assert first.getMessage().startswith("socket.accept() out of system resource") and "not logged" not in first.msg
    now[0] += 0.5
    assert refusals.filter(refusal()) is False and refusals.filter(refusal()) is False
    now[0] += 0.6
    later = refusal()
    assert refusals.filter(later) is True and "(2 more such refusals not logged)" in later.getMessage()
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved", (), None)
    assert refusals.filter(other) is True and other.msg == "Task exception was never retrieved"


_OPEN_FILES_CAPPED = """
import resource, runpy, sys

resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))  # the hard limit too: the stack raises its soft one to it
sys.argv = ["local", "--port", "0", "--no-stage-throttle"]
runpy.run_module("local", run_name="__main__", alter_sys=True)
"""


def test_connections_past_the_open_file_limit_are_logged_once_each_at_most(tmp_path):
    """Every connection holds a descriptor. Past the limit the OS refuses to accept more, which the log may say, but
    not thousands of times over with a traceback each; and the stack serves again once they close."""
    import os
    import socket

    log = tmp_path / "stack.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _OPEN_FILES_CAPPED],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    held: list[socket.socket] = []
    try:
        wait_until(lambda: "Ctrl-C stops" in log.read_text() or proc.poll() is not None, "the stack to serve")
        url = re.search(r"site\s+(http://\S+?)/\s", log.read_text()).group(1)
        port = int(url.rsplit(":", 1)[1])
        while "out of system resource" not in log.read_text():
            assert len(held) < 1000, "no refusal logged: the limit was not reached"
            held.append(socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S))
        connections = len(held)
        for connection in held:
            connection.close()
        held.clear()
        answer = httpx.post(
            f"{url}/predict", content=photo_bytes("coffee.jpg"), headers={"content-type": "image/jpeg"}, timeout=40
        )
        assert answer.status_code == 200, answer.text
    finally:
        for connection in held:
            connection.close()
        interrupt_group(proc)
    refusals = log.read_text(errors="replace").count("socket.accept() out of system resource")
    assert refusals <= connections, f"{refusals} lines for {connections} connections"


def test_a_stop_signal_just_as_the_model_directory_is_made_leaves_nothing_behind(artifact, tmp_path, monkeypatch):
    """The window the test below hits now and then: `make demo`'s SIGTERM handler raises SystemExit, and landing
    after mkdtemp made the directory but before the container kept its name, it left the directory behind."""
    import signal
    import tempfile
    from types import SimpleNamespace

    import local.runtime

    made: list[str] = []

    def mkdtemp_then_terminated(**kwargs) -> str:
        path = tempfile.mkdtemp(dir=tmp_path, **kwargs)
        made.append(path)
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before this returns, unless the signal is held
        return path

    # The runtime's own tempfile: replaced in the module itself, every other thread's mkdtemp would send the signal
    monkeypatch.setattr(
        local.runtime, "tempfile", SimpleNamespace(**{**vars(tempfile), "mkdtemp": mkdtemp_then_terminated})
    )
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # what local.__main__ installs
    try:
        with pytest.raises(SystemExit):
            InProcessContainer(artifact)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert made and list(tmp_path.iterdir()) == []


def test_a_stop_signal_taken_by_another_thread_as_the_model_directory_is_made_leaves_nothing_behind(
    artifact, tmp_path, monkeypatch
):
    """The same, in a process with other threads (ONNX Runtime's workers, once any model has loaded: under `make
    test`, tests/fuzz's): blocking the signals in this thread only sent SIGTERM to one of them, and Python still ran
    its handler here at once, between mkdtemp and the container keeping the name (the test above then failed about
    one run in three)."""
    import signal
    import socket
    import tempfile
    import threading
    from types import SimpleNamespace

    import local.runtime

    made: list[str] = []
    other = threading.Event()
    bystander = threading.Thread(target=other.wait, daemon=True)  # a thread that does not block SIGTERM
    bystander.start()
    # Written to by the signal's C-level handler in whichever thread takes it, once its Python handler is due: no
    # sleep to guess when the other thread has taken it.
    taken, wakeup = socket.socketpair()
    wakeup.setblocking(False)
    taken.settimeout(HANG_GUARD_S)

    def mkdtemp_then_terminated(**kwargs) -> str:
        path = tempfile.mkdtemp(dir=tmp_path, **kwargs)
        made.append(path)
        os.kill(os.getpid(), signal.SIGTERM)
        assert taken.recv(1) == bytes([signal.SIGTERM])  # taken (by the other thread, if this one blocks it)
        return path  # its handler runs before this returns, here, unless deferred

    # The runtime's own tempfile: replaced in the module itself, every other thread's mkdtemp would send the signal
    monkeypatch.setattr(
        local.runtime, "tempfile", SimpleNamespace(**{**vars(tempfile), "mkdtemp": mkdtemp_then_terminated})
    )

    def terminate(*_) -> None:  # what local.__main__ installs
        sys.exit(0)

    previous = signal.signal(signal.SIGTERM, terminate)
    previous_wakeup = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    try:
        with pytest.raises(SystemExit):
            InProcessContainer(artifact)
        assert signal.getsignal(signal.SIGTERM) is terminate  # put back, and it ran
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        signal.signal(signal.SIGTERM, previous)
        other.set()
        bystander.join()
        taken.close()
        wakeup.close()
    assert made and list(tmp_path.iterdir()) == []


def test_a_stop_ends_a_sandbox_that_is_itself_stopped(tmp_path):
    """README: Ctrl-C, SIGTERM and SIGHUP stop it cleanly at any point, and sandboxes exit with the server. A sandbox
    held by SIGSTOP (or a debugger) reads no stop from its executor; the server must still end it (SIGKILL ends a
    stopped process) rather than wait for it."""
    import contextlib
    import os
    import shutil
    import signal

    import psutil

    own = LocalStack(env={"TMPDIR": str(tmp_path)})
    held = None
    try:
        assert predict(own, photo_bytes("coffee.jpg")).status_code == 200  # the warm sandbox has served
        forkserver = next(  # by its command, not its path: a checkout in a directory named forkserver has both
            child
            for child in psutil.Process(own.proc.pid).children()
            if child.cmdline()[-1].startswith("from multiprocessing.forkserver import")
        )
        [held] = forkserver.children()
        held.send_signal(signal.SIGSTOP)
        os.kill(own.proc.pid, signal.SIGTERM)
        # A hang guard, not a measure: the stop takes well under a second, and it hung for good.
        assert own.proc.wait(timeout=15) == 0, own.output()
        wait_until(lambda: not process_group_members(own.proc.pid), "nothing left behind")
        output = own.output()
        assert output.rstrip().endswith("stopped") and "Traceback" not in output, output
        assert sorted(path.name for path in tmp_path.iterdir()) == []
    finally:
        if held is not None:
            with contextlib.suppress(psutil.Error):
                held.send_signal(signal.SIGCONT)  # so that it can take its stop, or die with the server
        own.stop()
        for leftover in tmp_path.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


@pytest.mark.parametrize("sig", ["SIGHUP", "SIGTERM"])
def test_hangup_or_terminate_leaves_nothing_behind(sig, tmp_path):
    """A closed terminal (SIGHUP) or a SIGTERM, while serving or while the model loads, stops cleanly and takes
    the unpacked model with it."""
    import os
    import signal

    for phase in ("loading", "serving"):
        tmp = tmp_path / phase
        tmp.mkdir()
        log = tmp_path / f"{phase}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "local", "--port", "0"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)},
                start_new_session=True,
            )
        try:
            marker = "loading " if phase == "loading" else "Ctrl-C stops"
            deadline = time.monotonic() + 120
            while marker not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            # Else the signal lands on whatever the stack is doing by the deadline: serving, not loading.
            assert marker in log.read_text() and proc.poll() is None, f"{phase}: no {marker!r}:\n{log.read_text()}"
            os.kill(proc.pid, getattr(signal, sig))
            assert proc.wait(timeout=HANG_GUARD_S) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output = log.read_text()
        assert output.rstrip().endswith("stopped") and "Traceback" not in output, output
        assert not list(tmp.glob(f"{MODEL_DIR_PREFIX}*")), f"{phase}: the unpacked model was left behind"


_SIGNAL_WHILE_THE_LOOP_IS_BUILT = """
import selectors, signal, sys, types
from asyncio import selector_events

real, sent = selectors.DefaultSelector, []

def interrupted():
    if not sent:  # the first event loop is uvicorn's: a SIGTERM lands while it is being built
        sent.append(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
    return real()

selector_events.selectors = types.SimpleNamespace(**{**vars(selectors), "DefaultSelector": interrupted})
from local.__main__ import main
sys.exit(main(["--port", "0"]))
"""


def test_a_signal_while_uvicorn_builds_its_event_loop_stops_cleanly(tmp_path):
    """Between the banner and uvicorn's own signal handlers, a stop signal raised SystemExit inside the event
    loop's constructor: the half-built loop's __del__ printed a traceback (seen once in CI)."""
    import os

    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_WHILE_THE_LOOP_IS_BUILT],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ctrl-C stops" in output and output.rstrip().endswith("stopped"), output
    for noise in ("Traceback", "Exception ignored", "never awaited"):
        assert noise not in output, output
    assert not list(tmp_path.glob(f"{MODEL_DIR_PREFIX}*")), "the unpacked model was left behind"


def test_model_dirs_of_killed_stacks_are_swept(tmp_path):
    """kill -9 runs no cleanup: the next stack removes directories whose owner is gone, and only those. The
    owner's lock decides (a pid can be reused, or belong to another pid namespace sharing /tmp)."""
    import os

    from local.runtime import hold_owner_lock, sweep_orphaned_model_dirs

    def model_dir(name: str) -> Path:
        path = tmp_path / f"mobilenet-model-{name}"
        (path / "model").mkdir(parents=True)
        return path

    killed = model_dir("424242-aaa")  # its owner locked it, then died: the lock is free
    os.close(hold_owner_lock(killed))
    live = model_dir("1-bbb")  # pid 1 is alive, but what counts is that its owner (this test) holds the lock
    held = hold_owner_lock(live)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    unlocked_dead = model_dir(f"{gone.pid}-ccc")  # no lock file yet: the pid in the name decides
    unlocked_alive = model_dir(f"{os.getpid()}-ddd")
    target = tmp_path / "not-ours"
    (target / "keep").mkdir(parents=True)
    (tmp_path / "mobilenet-model-424243-eee").symlink_to(target)
    other = tmp_path / "mobilenet-modelling-notes"
    other.mkdir()
    try:
        assert sorted(sweep_orphaned_model_dirs(tmp_path)) == sorted([killed, unlocked_dead])
        assert live.exists() and unlocked_alive.exists() and other.exists() and (target / "keep").exists()
    finally:
        os.close(held)


@pytest.mark.parametrize("sig", ["SIGHUP", "SIGTERM"])
def test_closing_the_terminal_answers_the_request_in_flight_and_stops_cleanly(sig):
    """A closed terminal sends SIGHUP to the whole process group, and `timeout` or a service manager (systemd)
    SIGTERM: the sandboxes and the fork server must outlive it until the server has answered what is in flight and
    shut them down itself. (SIGTERM killed them at once: the request in flight got API Gateway's 500.)"""
    import os
    import signal

    own = LocalStack("--fault-injection")
    try:
        # Long enough to be in flight when the hangup lands, short enough to be answered within uvicorn's 5 s
        # grace period with seconds to spare.
        own.set_faults(delay_s=1.5)
        answers = []
        request = threading.Thread(target=lambda: answers.append(predict(own, photo_bytes("coffee.jpg"))))
        request.start()
        # The request is in its sandbox, waiting on the slow model (a fresh stack's peak starts at 0). After a
        # fixed pause instead, a loaded machine could deliver the hangup before the request, which is refused.
        wait_until(lambda: peak_in_flight(own, delay_s=1.5) >= 1, "the request in flight")
        os.killpg(own.proc.pid, getattr(signal, sig))
        request.join(timeout=HANG_GUARD_S)
        assert [a.status_code for a in answers] == [200], [a.text for a in answers]
        assert own.proc.wait(timeout=HANG_GUARD_S) == 0
        output = own.output()
        assert output.rstrip().endswith("stopped") and "Traceback" not in output, output
    finally:
        own.stop()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stop_answers_the_requests_in_flight_and_tells_new_ones_it_is_stopping(sig):
    """The handler of a request in flight calls the runtime tier on the stack's own port: uvicorn's shutdown closed
    that port first, so a handler that called after the stop (a retry, a body still arriving) answered 503 "The model
    is warming up" (8 to 14 of 16 requests in flight). Each request here is in flight for certain: its head is in and
    the app is reading its body (it asked for the body: 100 Continue), which arrives only once the stop has begun."""
    import http.client
    import os
    import signal
    import socket

    import h11

    own = LocalStack()
    body = photo_bytes("coffee.jpg")
    host, port = own.url.removeprefix("http://").rsplit(":", 1)
    clients: list[tuple[socket.socket, h11.Connection]] = []

    def next_event(sock: socket.socket, conn: h11.Connection):
        while (event := conn.next_event()) is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        return event

    try:
        for _ in range(4):  # within MaxConcurrency (5): none is throttled
            sock = socket.create_connection((host, int(port)), timeout=HANG_GUARD_S)
            conn = h11.Connection(h11.CLIENT)
            head = [("host", f"{host}:{port}"), ("content-type", "image/jpeg"), ("content-length", str(len(body)))]
            sock.sendall(
                conn.send(h11.Request(method="POST", target="/predict", headers=[*head, ("expect", "100-continue")]))
            )
            clients.append((sock, conn))
        for sock, conn in clients:
            assert next_event(sock, conn).status_code == 100
        os.killpg(own.proc.pid, getattr(signal, sig))
        wait_until(lambda: "stopping: answering the 4 /predict requests in flight first" in own.output(), "the drain")
        late = predict(own, body)
        assert late.status_code == 503 and late.json() == {"message": "The local stack is stopping."}, late.text
        assert late.headers["apigw-requestid"] and late.headers["connection"] == "close"
        # A photo of a few MB still being sent (http.client sends it all, then reads): answered before it was all
        # read, the close reset the connection, and the client saw the reset, not this answer.
        sending = http.client.HTTPConnection(host, int(port), timeout=HANG_GUARD_S)
        try:
            sending.request(
                "POST", "/predict", body=body + bytes(4_000_000 - len(body)), headers={"content-type": "image/jpeg"}
            )
            large = sending.getresponse()
            assert large.status == 503 and json.loads(large.read()) == {"message": "The local stack is stopping."}
        finally:
            sending.close()
        for sock, conn in clients:
            sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        answers = []
        for sock, conn in clients:
            response, data = next_event(sock, conn), b""
            while type(event := next_event(sock, conn)) is h11.Data:
                data += event.data
            answers.append((response.status_code, data))
        assert [status for status, _ in answers] == [200] * 4, answers
        assert all(json.loads(data)["predictions"] for _, data in answers)
        assert own.proc.wait(timeout=HANG_GUARD_S) == 0
        output = own.output()
        assert output.rstrip().endswith("stopped") and "Traceback" not in output and " ERROR " not in output, output
    finally:
        for sock, _ in clients:
            sock.close()
        own.stop()


def test_a_truncated_artifact_is_refused_without_a_traceback(artifact, tmp_path):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
    with pytest.raises(RuntimeError) as err:
        LocalStack("--artifact", str(truncated), env={"TMPDIR": str(tmp_path)})
    assert "cannot unpack the model artifact" in str(err.value) and "Traceback" not in str(err.value)
    assert not list(tmp_path.glob(f"{MODEL_DIR_PREFIX}*"))


def test_a_stop_signal_just_after_the_model_loads_still_removes_it(monkeypatch, capsys):
    """Between the model loading and the `try` whose cleanup closes it, `make demo`'s stop signals raised out of
    serve() (the SIGTERM/SIGHUP handler's SystemExit): no "stopped", and the unpacked model left behind. That
    window held reading the stack file again for aws:region (a YAML parse, milliseconds)."""
    import signal

    from local import __main__ as cli

    closed = loaded_model(monkeypatch)

    def terminated(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)  # lands as the runtime tier is set up around the loaded model

    monkeypatch.setattr(cli, "SageMakerRuntime", terminated)
    sockets = bound_sockets(monkeypatch)
    before = {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS}
    assert cli.main(["--port", "0"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("stopped")
    assert closed == [True], "the loaded model was not closed"
    assert [sock.fileno() for sock in sockets] == [-1], "the port is still held"
    assert {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS} == before


def test_ctrl_c_pressed_twice_stops_without_a_traceback():
    """A second Ctrl-C while uvicorn shuts down makes it skip the rest of its graceful shutdown, the ASGI lifespan's
    end among them: the cancelled lifespan task printed "ERROR: Traceback ... CancelledError" from starlette.
    The app has no startup or shutdown of its own to run."""
    import os
    import signal

    own = LocalStack()
    try:
        os.killpg(own.proc.pid, signal.SIGINT)
        time.sleep(0.02)  # a double press: the first stop takes a quarter of a second or more
        os.killpg(own.proc.pid, signal.SIGINT)
        assert own.proc.wait(timeout=HANG_GUARD_S) == 0
        output = own.output()
        assert output.rstrip().endswith("stopped") and "Traceback" not in output, output
    finally:
        own.stop()


def test_a_stop_signal_during_the_cleanup_does_not_cut_it_short(monkeypatch, capsys, artifact):
    """A second Ctrl-C (or a SIGTERM) while the sandboxes shut down must not leave the model loaded."""
    import signal

    from local import __main__ as cli

    closed = []

    loaded_model(monkeypatch)  # closed by the runtime, which holds it

    class Runtime:
        def __init__(self, *args, **kwargs):
            pass

        def close(self) -> None:
            closed.append("runtime")

    class Sandboxes:
        def shutdown(self) -> None:
            closed.append("sandboxes")
            signal.raise_signal(signal.SIGTERM)  # lands while they stop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C as the app is put together

    monkeypatch.setattr(cli, "SageMakerRuntime", Runtime)
    monkeypatch.setattr(cli, "start_sandboxes", lambda stack, region: Sandboxes())
    monkeypatch.setattr(cli, "create_app", interrupted)
    sockets = bound_sockets(monkeypatch)
    before = {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS}
    assert cli.main(["--port", "0"]) == 0
    assert closed == ["sandboxes", "runtime"], "the cleanup stopped half-way"
    assert [sock.fileno() for sock in sockets] == [-1], "the port is still held"
    assert capsys.readouterr().out.rstrip().endswith("stopped")
    assert {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS} == before


def test_a_stop_signal_as_the_model_begins_to_load_ends_the_process_as_a_clean_stop(monkeypatch, artifact):
    """SIGTERM (or SIGHUP) as the loading line is said, before the `try` that catches it, ends the process through
    the handler's SystemExit: its status is 0, a stop, as everywhere else, not a failure for a supervisor to act on."""
    import signal

    from local import __main__ as cli

    def say(message: str) -> None:
        if message.startswith("loading "):
            signal.raise_signal(signal.SIGTERM)  # its handler runs here, before say returns

    monkeypatch.setattr(cli, "say", say)
    sockets = bound_sockets(monkeypatch)
    before = {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS}
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main(["--port", "0"])
    finally:
        for sock in sockets:  # the process would end here, and the port with it
            sock.close()
    assert stopped.value.code == 0
    assert {sig: signal.getsignal(sig) for sig in cli.STOP_SIGNALS} == before


def test_a_process_started_during_the_cleanup_can_still_be_stopped(monkeypatch, artifact):
    """The cleanup holds off a second stop signal with a handler that does nothing, not by ignoring it: an ignored
    signal stays ignored across exec, so a process started meanwhile (a fork server started again) could not be
    stopped by Ctrl-C, SIGTERM or SIGHUP."""
    from local import __main__ as cli

    loaded_model(monkeypatch)
    ignoring: list[int] = []
    probe = (
        "import signal, sys\n"
        "sys.exit(any(signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)))"
    )

    class Sandboxes:
        def shutdown(self) -> None:
            ignoring.append(subprocess.run([sys.executable, "-c", probe], timeout=60).returncode)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C as the app is put together

    monkeypatch.setattr(cli, "start_sandboxes", lambda stack, region: Sandboxes())
    monkeypatch.setattr(cli, "create_app", interrupted)
    assert cli.main(["--port", "0"]) == 0
    assert ignoring == [0], "a process started during the cleanup ignores the stop signals"


@pytest.mark.parametrize(
    ("flags", "fault_injection", "throttled"),
    [((), False, True), (("--fault-injection", "--no-stage-throttle"), True, False)],
)
def test_the_app_has_fault_injection_and_no_stage_throttle_only_when_the_command_line_asks(
    monkeypatch, tmp_path, flags, fault_injection, throttled
):
    from local import __main__ as cli

    loaded_model(monkeypatch)
    seen = {}

    class Runtime:
        def __init__(self, *args, **kwargs):
            pass

        def close(self) -> None:
            pass

    class Sandboxes:
        def shutdown(self) -> None:
            pass

    def create_app(stack, runtime, sandboxes, **options):
        seen.update(fault_injection=options["fault_injection"], throttled=options["stage_throttle"] is not None)
        raise KeyboardInterrupt  # seen what it is given: stop before serving

    monkeypatch.setattr(cli, "SageMakerRuntime", Runtime)
    monkeypatch.setattr(cli, "start_sandboxes", lambda stack, region: Sandboxes())
    monkeypatch.setattr(cli, "create_app", create_app)
    bound_sockets(monkeypatch)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"")
    assert cli.main(["--port", "0", "--artifact", str(artifact), *flags]) == 0
    assert seen == {"fault_injection": fault_injection, "throttled": throttled}


def test_the_runtime_tier_and_the_sandboxes_are_in_the_stack_files_region(monkeypatch, tmp_path):
    """The runtime's region names the function's ARN (arn:aws:lambda:<region>:...) and a ModelError's log stream."""
    from local import __main__ as cli

    loaded_model(monkeypatch)
    seen = {}

    class Runtime:
        def __init__(self, *args, region=None, **kwargs):
            seen["runtime"] = region

        def close(self) -> None:
            pass

    def start_sandboxes(stack, region):
        seen["sandboxes"] = region
        raise KeyboardInterrupt  # seen where they run: stop before serving

    monkeypatch.setattr(cli, "SageMakerRuntime", Runtime)
    monkeypatch.setattr(cli, "start_sandboxes", start_sandboxes)
    bound_sockets(monkeypatch)
    stack_file = tmp_path / "Pulumi.x.yaml"
    stack_file.write_text(
        (ROOT / "Pulumi.dev.yaml").read_text().replace("aws:region: us-east-1", "aws:region: eu-west-1")
    )
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"")
    assert cli.main(["--port", "0", "--stack-config", str(stack_file), "--artifact", str(artifact)]) == 0
    assert seen == {"runtime": "eu-west-1", "sandboxes": "eu-west-1"}


def test_the_stack_raises_its_open_file_limit_to_the_hard_limit(monkeypatch, artifact):
    """Every connection holds a descriptor: a desktop's usual soft limit of 1024 would refuse connections under load."""
    import resource

    from local import __main__ as cli

    def interrupted(_artifact):
        raise KeyboardInterrupt  # stops main() as soon as serving begins

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    if hard != resource.RLIM_INFINITY and hard <= lowered:
        skip_or_fail(f"the hard limit ({hard}) leaves nothing to raise", "CI needs a hard open-file limit above 256")
    monkeypatch.setattr(cli, "InProcessContainer", interrupted)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert cli.main(["--port", "0"]) == 0
        raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert raised == (65536 if hard == resource.RLIM_INFINITY else hard)
