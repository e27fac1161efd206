"""The Lambda asset as AWS runs it: Python 3.13 (the function's runtime) with the boto3 the runtime brings.

Every other handler test imports handlers/ on this venv's Python 3.11 with this venv's boto3. Lambda instead runs
the asset that components/lambda_bundle.py builds (handlers/ plus the bundled Powertools) on python3.13, with an
AWS SDK that AWS updates on its own schedule and that may be older than ours. Here the asset's files are laid out
as in /var/task, beside a bare Python 3.13 that has nothing but boto3, and one process (one warm container) answers
a series of requests against the fake sagemaker-runtime over real HTTP, with two SDKs: the version this project
pins, and boto3 1.34.145, a July 2024 release from before the python3.13 runtime existed (November 2024). Which
SDK the runtime carries today is not known here; AWS updates it, so it is most likely between the two.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.inference_api import RUNTIME
from components.lambda_bundle import lambda_asset_files
from components.policies import proxy_function_env
from tests.ci import bare_venv

from .conftest import (
    ENDPOINT,
    JPEG,
    PIXELS,
    PNG,
    SITE,
    Reply,
    aws_error_reply,
    b64,
    json_event,
    make_event,
    model_error_reply,
)
from .test_fake_runtime import SUCCESS, TRACEBACK

pytestmark = [pytest.mark.other_python, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
OLDEST_BOTO3 = "1.34.145"

# Runs under the Python 3.13 venv: /var/task first on the path, as Lambda puts it, then the runtime's boto3.
DRIVER = """
import json, sys
task, events_file, out_file = sys.argv[1:4]
sys.path.insert(0, task)
import boto3, botocore
from botocore.retries import standard
from handlers import inference_proxy

class Context:
    function_name = "inference-proxy"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:inference-proxy"

    def __init__(self, number):
        self.aws_request_id = f"lambda-req-{number}"

    def get_remaining_time_in_millis(self):
        return 29_000

with open(events_file) as f:
    events = json.load(f)
responses = [inference_proxy.handler(event, Context(n)) for n, event in enumerate(events)]
with open(out_file, "w") as f:
    json.dump({"python": sys.version.split()[0], "boto3": boto3.__version__, "botocore": botocore.__version__,
               "handler_file": inference_proxy.__file__, "responses": responses,
               "retries_bare_429": hasattr(standard, "ThrottlingStatusCodeChecker")}, f)
"""


@pytest.fixture(scope="module")
def lambda_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function's code as Lambda unpacks it: the archive's files under one directory."""
    task = tmp_path_factory.mktemp("var") / "task"
    for arcname, source in lambda_asset_files(REPO_ROOT / "handlers").items():
        target = task / arcname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return task


def runtime_venv(tmp_path: Path, boto3_version: str) -> Path:
    assert RUNTIME == "python3.13", "this test checks the function's runtime; update it with components.inference_api"
    return bare_venv("3.13", tmp_path / "py313", [f"boto3=={boto3_version}"], "run the Lambda asset on its runtime")


@pytest.mark.parametrize("boto3_version", [importlib.metadata.version("boto3"), OLDEST_BOTO3])
def test_the_lambda_asset_serves_on_its_runtime(boto3_version, lambda_task, fake_runtime, tmp_path):
    venv = runtime_venv(tmp_path, boto3_version)
    bare_429 = Reply(429, b"Too Many Requests", {"Content-Type": "text/plain"})
    throttled = aws_error_reply(400, "ThrottlingException", "Rate exceeded")
    held = Reply(200, SUCCESS.body, held=True)
    bad_image = model_error_reply(400, "Image could not be decoded\n" + TRACEBACK)
    cases = [
        # (event, replies the fake runtime gives it, status, error code)
        (make_event(body=JPEG, request_id="req-jpeg"), [SUCCESS], 200, None),
        (json_event({"image": f"data:image/png;base64,{b64(PNG)}", "top_k": 2}), [SUCCESS], 200, None),
        (make_event(body=JPEG), [bad_image], 400, "invalid_image"),
        (make_event(body=JPEG), [model_error_reply(500, "RuntimeError: boom\n" + TRACEBACK)], 502, "model_error"),
        (make_event(body=JPEG), [throttled, throttled], 429, "throttled"),
        (make_event(body=JPEG), [aws_error_reply(429, "ModelNotReadyException", "not ready")], 503, "model_not_ready"),
        (make_event(body=JPEG), [held, held], 504, "endpoint_timeout"),
        # Last to reach the runtime: botocore from 1.44 on retries a bare 429, older ones do not, and a second
        # reply it leaves unused must not answer a later request.
        (make_event(body=JPEG), [bare_429, bare_429], 429, "throttled"),
        (json_event({"image": "not base64!"}), [], 400, None),
        (make_event(body=b"GIF89a" + PIXELS, content_type="image/gif"), [], 415, None),
        (make_event(method="GET"), [], 405, "method_not_allowed"),
    ]
    events = []
    for event, replies, _, _ in cases:
        events.append(event)
        fake_runtime.script(*replies)
    events_file, out_file = tmp_path / "events.json", tmp_path / "out.json"
    events_file.write_text(json.dumps(events))
    env = {
        "PATH": os.environ["PATH"],
        **proxy_function_env(ENDPOINT, [SITE]),
        # Short, so the held replies time out quickly (two attempts); the budget logic is the same.
        "ENDPOINT_READ_TIMEOUT_S": "0.5",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": fake_runtime.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", DRIVER, str(lambda_task), str(events_file), str(out_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,  # not the repository: handlers/ must come from the asset
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out_file.read_text())
    assert report["python"].startswith("3.13.")
    assert report["boto3"] == boto3_version
    assert Path(report["handler_file"]).is_relative_to(lambda_task)

    statuses = [response["statusCode"] for response in report["responses"]]
    codes = [json.loads(response["body"]).get("error") for response in report["responses"]]
    assert statuses == [status for _, _, status, _ in cases], codes
    for code, (_, _, status, wanted) in zip(codes, cases, strict=True):
        # The named code where a case names one; otherwise only that every refusal carries one.
        assert code == wanted if wanted else (code is None) == (status == 200)
    first = report["responses"][0]
    assert json.loads(first["body"])["predictions"][0] == {"label": "Egyptian cat", "prob": 0.73}
    assert first["headers"]["access-control-allow-origin"] == SITE
    assert all(r["headers"].get("retry-after") for r in report["responses"] if r["statusCode"] in (429, 503))

    # What reached the runtime: raw bytes with their type and the requested top_k, each throttled request tried
    # twice by botocore (the bare 429 only where this botocore retries it), nothing sent for requests refused
    # before the call.
    seen = fake_runtime.seen
    assert seen[0].path == f"/endpoints/{ENDPOINT}/invocations"
    assert (seen[0].body, seen[0].headers["content-type"]) == (JPEG, "image/jpeg")
    assert (seen[1].body, seen[1].headers["accept"]) == (PNG, "application/json;top_k=2")
    bare_429_attempts = 2 if report["retries_bare_429"] else 1
    assert len(seen) == 1 + 1 + 1 + 1 + 2 + 1 + 2 + bare_429_attempts

    # The logs: one JSON object per line, each request's id on its line, never the image.
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert any(line.get("request_id") == "req-jpeg" for line in lines)
    assert PIXELS.decode() not in run.stdout
    # Base64: b64(PIXELS) is no substring of b64(JPEG) or b64(PNG) (their headers are not a multiple of 3 bytes
    # long, unlike the GIF's), so only a window of each image's own encoding shows a logged event or image.
    for image in (JPEG, PNG, PIXELS):
        assert b64(image)[-40:] not in run.stdout
    # Nothing crashed (the container's own traceback, relayed by SageMaker, is logged for the operator, never answered).
    assert "Traceback" not in run.stderr
    assert not any("Traceback" in response["body"] for response in report["responses"])
