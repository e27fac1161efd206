"""Dynamic providers' create/diff/update/delete against moto (botocore Stubber where moto cannot)."""

from __future__ import annotations

import base64
import inspect
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ProfileNotFound, ReadTimeoutError
from botocore.stub import ANY, Stubber
from moto import mock_aws
from PIL import Image
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.dynamic.dynamic import serialize_provider

from components.dynamic import AwsProvider
from components.dynamic.endpoint_version import (
    DELETING_POLL_S,
    DELETING_POLLS,
    EndpointStillDeletingError,
    EndpointVersionError,
    EndpointVersionProvider,
    diff_endpoint_version,
    what_to_retire,
)
from components.dynamic.http_api_cors import (
    CONFLICT_ATTEMPTS,
    HttpApiCorsError,
    HttpApiCorsProvider,
    cors_rules,
    diff_cors,
)
from components.dynamic.invalidation import (
    InvalidationInputError,
    InvalidationProvider,
    diff_invalidation,
    invalidation_batch,
)
from components.dynamic.smoke_check import (
    PROBE_JPEG,
    SmokeCheckError,
    SmokeCheckProvider,
    check_rollout,
    diff_smoke_check,
    failed_endpoint_message,
    parse_topk_reply,
    rollout_failure_message,
    run_smoke_check,
)
from components.policies import PolicyInputError
from handlers.proxy_core import MAX_TOP_K
from tests.infra.conftest import ACCOUNT, REGION, ROOT

GOOD_REPLY = {
    "predictions": [{"label": "Egyptian cat", "prob": 0.73}, {"label": "tabby", "prob": 0.2}],
    "model": "mobilenet_v2",
    "weights": "w",
    "backend": "torchscript",
}
SMOKE_PROPS = {
    "endpoint_name": "mobilenet-test",
    "region": REGION,
    "log_group": "/aws/sagemaker/Endpoints/mobilenet-test",
    "trigger": "config-1",
}


@pytest.fixture
def text_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's InvokeEndpoint decodes the request body as UTF-8 and chokes on a JPEG; the exact binary
    request is checked with botocore's Stubber in test_smoke_check_sends_the_contracted_request."""
    monkeypatch.setattr("components.dynamic.smoke_check.PROBE_JPEG", b"probe-bytes")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def stub_client(service: str) -> Any:
    """A client for botocore's Stubber: fixed dummy credentials, never the environment's."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")


def queue_endpoint_results(*bodies: str, region: str = REGION) -> None:
    """moto's documented way to script sagemaker-runtime InvokeEndpoint replies."""
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={
            "account_id": ACCOUNT,
            "region": region,
            "results": [
                {
                    "Body": body,
                    "ContentType": "application/json",
                    "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": "",
                }
                for body in bodies
            ],
        },
        timeout=10,
    )
    response.raise_for_status()


def serve_config(endpoint_name: str, config_name: str, region: str = REGION) -> None:
    """Make moto's endpoint `endpoint_name` InService on endpoint configuration `config_name` (moto has no
    UpdateEndpoint: the endpoint is re-created)."""
    client = boto3.client("sagemaker", region_name=region)
    image = f"763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    model = f"model-{config_name}"
    if model not in [m["ModelName"] for m in client.list_models()["Models"]]:
        client.create_model(
            ModelName=model,
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
            PrimaryContainer={"Image": image, "ModelDataUrl": "s3://b/models/x/model.tar.gz"},
        )
        client.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                }
            ],
        )
    if endpoint_name in [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]]:
        client.delete_endpoint(EndpointName=endpoint_name)
    client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)


# ------------------------------------------------------------------------------------ smoke check


def config_on_the_same_model(config_name: str, model_name: str) -> None:
    """A new endpoint configuration on an existing Model: what a memory or concurrency change makes."""
    boto3.client("sagemaker", region_name=REGION).create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5},
            }
        ],
    )


def test_probe_is_a_real_small_jpeg() -> None:
    image = Image.open(io.BytesIO(PROBE_JPEG))
    assert image.format == "JPEG" and image.size == (32, 32)
    image.load()  # the whole scan decodes (Image.open reads only the header): a truncated probe fails a healthy model
    assert len(PROBE_JPEG) < 4096


def test_smoke_check_create_update_delete(aws: None, text_probe: None) -> None:
    queue_endpoint_results(json.dumps(GOOD_REPLY), json.dumps(GOOD_REPLY))
    serve_config("mobilenet-test", "config-1")
    provider = SmokeCheckProvider()
    created = provider.create(dict(SMOKE_PROPS))
    assert created.id == "smoke-mobilenet-test"
    assert created.outs["top_label"] == "Egyptian cat" and created.outs["prediction_count"] == 2
    assert created.outs["trigger"] == "config-1"
    serve_config("mobilenet-test", "config-2")
    updated = provider.update(created.id, created.outs, {**SMOKE_PROPS, "trigger": "config-2"})
    assert updated.outs["trigger"] == "config-2" and updated.outs["top_label"] == "Egyptian cat"
    assert provider.delete(created.id, updated.outs) is None


def test_smoke_check_fails_with_log_group_pointer_on_bad_reply(aws: None, text_probe: None) -> None:
    queue_endpoint_results("<html>hello</html>")
    serve_config("mobilenet-test", "config-1")
    with pytest.raises(SmokeCheckError) as err:
        SmokeCheckProvider().create(dict(SMOKE_PROPS))
    message = str(err.value)
    # The endpoint by name: the log group, named as well, has "mobilenet-test" in it too.
    assert "smoke check of SageMaker endpoint 'mobilenet-test' failed: reply is not JSON" in message
    assert f"`aws logs tail /aws/sagemaker/Endpoints/mobilenet-test --region {REGION} --since 30m`" in message
    assert "smokeCheck false" in message
    # The component takes it as an argument and reads no config: a program that copied it has its own setting, or none.
    assert "ServerlessEndpointArgs.smoke_check" in message


def test_a_failed_smoke_check_says_the_endpoint_already_serves_the_model_that_failed_it(
    aws: None, text_probe: None
) -> None:
    """The probe is sent only once DescribeEndpoint shows the endpoint InService on the configuration this deployment
    made (check_rollout): when it then fails, UpdateEndpoint has already moved every request to the model that failed
    it, and a failed `pulumi up` rolls nothing back. The message must say that the endpoint serves it (naming its
    configuration) and how to go back: the previous model.tar.gz as modelArtifact, and `pulumi up`; smokeCheck false
    deploys nothing more, it only stops the check."""
    queue_endpoint_results("<html>hello</html>")
    serve_config("mobilenet-test", "config-1")
    passed = {**SMOKE_PROPS, "top_label": "Egyptian cat", "prediction_count": 2}  # config-1's check, recorded
    serve_config("mobilenet-test", "config-2")  # the rollout took effect: the new model serves every request
    with pytest.raises(SmokeCheckError) as err:
        SmokeCheckProvider().update("smoke-mobilenet-test", passed, {**SMOKE_PROPS, "trigger": "config-2"})
    message = str(err.value)
    assert "reply is not JSON" in message
    assert "deploy anyway" not in message
    assert "'config-2'" in message and "modelArtifact" in message


def test_smoke_check_fails_when_sagemaker_rolled_the_update_back(aws: None, text_probe: None) -> None:
    """A new EndpointConfiguration that fails to start: SageMaker puts the endpoint back InService on the old one and
    the aws provider reports the update as done. The probe would pass against the old model; the check must fail
    the deployment, and say that the configuration the endpoint fell back on is retired once no longer used (the new
    configuration's version recorded it), not send the deployer to delete it by hand."""
    queue_endpoint_results(json.dumps(GOOD_REPLY), json.dumps(GOOD_REPLY))
    serve_config("mobilenet-test", "config-1")
    provider = SmokeCheckProvider()
    created = provider.create(dict(SMOKE_PROPS))
    with pytest.raises(SmokeCheckError) as err:
        provider.update(created.id, created.outs, {**SMOKE_PROPS, "trigger": "config-2"})
    message = str(err.value)
    assert "'config-1'" in message and "'config-2'" in message and "did not take effect" in message
    assert "'config-1' and its Model stay recorded" in message and "nothing to delete by hand" in message
    assert "delete-endpoint-config" not in message


def test_a_rolled_back_update_is_retried_with_a_refresh() -> None:
    """After a rollback the aws provider has recorded the endpoint as running the new configuration
    (terraform-provider-aws #48997; a failed update keeps its planned state too), so a plain `pulumi up` has no diff
    for it and never calls UpdateEndpoint again: the advice must be `pulumi up --refresh`, which reads back the
    configuration the endpoint really runs."""
    description = {"EndpointConfigName": "config-1", "EndpointStatus": "InService", "FailureReason": "capacity"}
    message = rollout_failure_message("mobilenet-test", "config-2", description)
    assert "run `pulumi up --refresh`" in message and "run `pulumi up` again" not in message
    assert "has recorded the endpoint as updated to 'config-2'" in message
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rollout = readme.split("- **Model rollout.**", 1)[1].split("\n- **", 1)[0]
    assert "`pulumi up --refresh`" in rollout


def test_a_failure_without_sagemakers_reason_says_so() -> None:
    """FailureReason is optional in DescribeEndpoint's answer: its absence is named, not printed as None."""
    description = {"EndpointName": "mobilenet-test", "EndpointConfigName": "config-1", "EndpointStatus": "InService"}
    rolled_back = rollout_failure_message("mobilenet-test", "config-2", description)
    assert "did not take effect (SageMaker gave no FailureReason)" in rolled_back
    failed = failed_endpoint_message("mobilenet-test", {**description, "EndpointStatus": "Failed"}, REGION)
    assert "is Failed (SageMaker gave no FailureReason)" in failed


def test_rollout_check_reports_sagemakers_failure_reason() -> None:
    client = stub_client("sagemaker")
    description = {
        "EndpointName": "mobilenet-test",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mobilenet-test",
        "EndpointConfigName": "config-1",
        "EndpointStatus": "InService",
        "FailureReason": "The primary container for production variant AllTraffic did not pass the ping health check.",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", description, {"EndpointName": "mobilenet-test"})
        stub.add_response("describe_endpoint", description, {"EndpointName": "mobilenet-test"})
        stub.add_response(
            "describe_endpoint", {**description, "EndpointStatus": "Updating"}, {"EndpointName": "mobilenet-test"}
        )
        with pytest.raises(SmokeCheckError, match="did not pass the ping health check"):
            check_rollout(client, "mobilenet-test", "config-2")
        assert check_rollout(client, "mobilenet-test", "config-1")["EndpointConfigName"] == "config-1"
        with pytest.raises(SmokeCheckError, match="is Updating"):
            check_rollout(client, "mobilenet-test", "config-1")
        stub.add_response("describe_endpoint", description, {"EndpointName": "mobilenet-test"})
        assert check_rollout(client, "mobilenet-test", None)["EndpointStatus"] == "InService"  # no config to match
        stub.add_response("describe_endpoint", description, {"EndpointName": "mobilenet-test"})
        with pytest.raises(SmokeCheckError, match="not on 'config-10'"):  # another name, which config-1 begins
            check_rollout(client, "mobilenet-test", "config-10")
        # And the other way round: an endpoint that fell back on config-10 does not serve config-1, whose name it holds.
        stub.add_response(
            "describe_endpoint", {**description, "EndpointConfigName": "config-10"}, {"EndpointName": "mobilenet-test"}
        )
        with pytest.raises(SmokeCheckError, match="on endpoint configuration 'config-10', not on 'config-1'"):
            check_rollout(client, "mobilenet-test", "config-1")


def test_rollout_check_on_a_failed_endpoint_says_to_delete_and_recreate_it() -> None:
    """A first `pulumi up` whose endpoint ended Failed, run again unchanged: the provider's update is a no-op and the
    endpoint stays Failed. The fix is not another `pulumi up` nor `--target-replace` (a replacement is created before
    the old endpoint is deleted, and the name is fixed): delete it, refresh, and create it again."""
    client = stub_client("sagemaker")
    description = {
        "EndpointName": "mobilenet-test",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mobilenet-test",
        "EndpointConfigName": "config-1",
        "EndpointStatus": "Failed",
        "FailureReason": "Failed to extract model data archive from URL s3://bucket/models/x/model.tar.gz.",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", description, {"EndpointName": "mobilenet-test"})
        with pytest.raises(SmokeCheckError) as err:
            check_rollout(client, "mobilenet-test", "config-1")  # on the expected configuration, but Failed
    message = str(err.value)
    assert "is Failed (Failed to extract model data archive" in message
    assert f"aws sagemaker delete-endpoint --endpoint-name mobilenet-test --region {REGION}" in message
    assert f"aws sagemaker wait endpoint-deleted --endpoint-name mobilenet-test --region {REGION}" in message
    assert message.index("delete-endpoint") < message.index("`pulumi refresh`") < message.index("`pulumi up`.")
    assert "/aws/sagemaker/Endpoints/mobilenet-test" in message
    assert "did not take effect" not in message  # not the rolled-back update's advice
    # Failed on another configuration than this deployment's: still Failed, and a refresh would not repair it.
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", description, {"EndpointName": "mobilenet-test"})
        with pytest.raises(SmokeCheckError, match="is Failed") as other:
            check_rollout(client, "mobilenet-test", "config-2")
    assert "did not take effect" not in str(other.value) and "aws sagemaker delete-endpoint" in str(other.value)


def test_an_endpoint_being_deleted_is_not_waited_for_but_made_anew() -> None:
    """An endpoint deleted outside this deployment is Deleting on its configuration: it will never be InService again,
    so waiting for it (the advice for one between states) never ends; it must be gone, leave the state, and be
    created again."""
    client = stub_client("sagemaker")
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", _endpoint("config-1", "Deleting"), {"EndpointName": "mobilenet-test"})
        with pytest.raises(SmokeCheckError) as err:
            check_rollout(client, "mobilenet-test", "config-1")
    message = str(err.value)
    assert "'mobilenet-test' is Deleting" in message and "endpoint-in-service" not in message
    assert "`aws sagemaker wait endpoint-deleted --endpoint-name mobilenet-test`" in message
    assert message.index("endpoint-deleted") < message.index("`pulumi refresh`") < message.index("`pulumi up`")


@pytest.mark.parametrize("status", ["SystemUpdating", "Updating", "OutOfService"])
def test_an_endpoint_between_states_on_the_new_configuration_is_not_called_rolled_back(status: str) -> None:
    """SageMaker's maintenance (SystemUpdating: "does not change any customer-specified values such as ... model"),
    or another update under way, can find the endpoint not InService on the very configuration this deployment
    created. The rollout took effect: the check may fail, but must not say it did not, nor tell the deployer to delete
    the configuration the endpoint runs on (that breaks every later UpdateEndpoint, as endpoint_version.py says)."""
    client = stub_client("sagemaker")
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", _endpoint("config-1", status), {"EndpointName": "mobilenet-test"})
        with pytest.raises(SmokeCheckError) as err:
            check_rollout(client, "mobilenet-test", "config-1")
    message = str(err.value)
    assert f"'mobilenet-test' is {status}" in message
    assert "not on 'config-1'" not in message and "did not take effect" not in message
    assert "delete-endpoint-config --endpoint-config-name config-1" not in message
    # What to do instead: wait for InService, then `pulumi up` again, which runs the check again.
    assert "`aws sagemaker wait endpoint-in-service --endpoint-name mobilenet-test`" in message
    assert message.index("endpoint-in-service") < message.index("run `pulumi up` again")


def test_readme_does_not_recover_a_failed_endpoint_by_a_targeted_replacement() -> None:
    """`pulumi up --target-replace` is create-before-delete (the engine's targeted-replace diff carries no
    delete-before-replace), so on the fixed-name endpoint it fails with "Cannot create already existing endpoint"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("- **An endpoint that failed to create.**", 1)[1].split("\n\n", 1)[0]
    assert "aws sagemaker delete-endpoint --endpoint-name" in section
    assert "aws sagemaker wait endpoint-deleted" in section and "`pulumi refresh`" in section
    assert "Cannot create already existing endpoint" in section
    assert "--target-replace <" not in readme


@pytest.mark.parametrize(
    ("original", "quoted"),
    [
        (
            "Traceback (most recent call last):\n  File x\nFileNotFoundError: model.pt missing",
            "FileNotFoundError: model.pt missing. ",
        ),
        # A long last line goes into `pulumi up`'s error by its start: 300 characters of it.
        ("Traceback\nValueError: " + "x" * 10_000, "ValueError: " + "x" * 288 + ". "),
        # A container that answered with an empty body: its status still, not an IndexError nor SageMaker's wording.
        ("", ". "),
    ],
)
def test_smoke_check_model_error_reports_the_traceback_tail(original: str, quoted: str) -> None:
    # moto cannot produce a ModelError (HTTP 424); botocore's Stubber can, with the modeled fields.
    client = stub_client("sagemaker-runtime")
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received server error (500) from primary",
            http_status_code=424,
            modeled_fields={
                "OriginalStatusCode": 500,
                "OriginalMessage": original,
                "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/e",
            },
        )
        pauses: list[float] = []
        with pytest.raises(SmokeCheckError) as err:
            run_smoke_check(client, "e", "/aws/sagemaker/Endpoints/e", REGION, sleep=pauses.append)
    message = str(err.value)
    assert f"ModelError (container status 500): {quoted}" in message
    assert "/aws/sagemaker/Endpoints/e" in message
    assert pauses == []  # a model that answered with an error is not asked again


def _add_cold_start_error(stub: Stubber, kind: str) -> None:
    if kind == "timeout":  # SageMaker's 60 s limit, as it words it: no container status behind it
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message='Received server error (0) from primary with message "Your invocation timed out while '
            'waiting for a response from container primary."',
            http_status_code=424,
            modeled_fields={"OriginalStatusCode": 0, "OriginalMessage": "Your invocation timed out"},
        )
    else:
        stub.add_client_error("invoke_endpoint", service_error_code="ModelNotReadyException", http_status_code=429)


def test_smoke_check_asks_again_while_a_cold_start_is_in_the_way() -> None:
    from botocore.response import StreamingBody

    client = stub_client("sagemaker-runtime")
    body = json.dumps(GOOD_REPLY).encode()
    pauses: list[float] = []
    with Stubber(client) as stub:
        _add_cold_start_error(stub, "timeout")
        _add_cold_start_error(stub, "not ready")
        stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body))})
        result = run_smoke_check(client, "e", "/g", REGION, pause_s=7, sleep=pauses.append)
        stub.assert_no_pending_responses()
    assert result == {"top_label": "Egyptian cat", "prediction_count": 2}
    assert pauses == [7, 7]


def test_smoke_check_asks_again_while_the_service_is_unavailable() -> None:
    from botocore.response import StreamingBody

    client = stub_client("sagemaker-runtime")
    body = json.dumps(GOOD_REPLY).encode()
    pauses: list[float] = []
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code="ServiceUnavailable", http_status_code=503)
        stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body))})
        assert run_smoke_check(client, "e", "/g", REGION, sleep=pauses.append)["prediction_count"] == 2
    assert pauses == [15.0]


@pytest.mark.parametrize(
    ("code", "aws_message"),
    [
        ("AccessDeniedException", "User is not authorized to perform: sagemaker:InvokeEndpoint"),
        ("ValidationError", f"Endpoint e of account {ACCOUNT} not found."),  # no cold start: waiting changes nothing
    ],
)
def test_smoke_check_failure_quotes_the_aws_error_message(code: str, aws_message: str) -> None:
    client = stub_client("sagemaker-runtime")
    pauses: list[float] = []
    with Stubber(client) as stub:
        stub.add_client_error(
            "invoke_endpoint", service_error_code=code, service_message=aws_message, http_status_code=400
        )
        with pytest.raises(SmokeCheckError) as err:
            run_smoke_check(client, "e", "/g", REGION, sleep=pauses.append)
    assert f"failed: {code}: {aws_message}" in str(err.value)
    assert pauses == []  # asked once


def test_smoke_check_does_not_ask_again_after_a_transport_error() -> None:
    """botocore has already retried a connection or read timeout: the check fails at once, naming the error."""

    class Unreachable:
        def invoke_endpoint(self, **_kwargs: Any) -> Any:
            raise ReadTimeoutError(endpoint_url=f"https://runtime.sagemaker.{REGION}.amazonaws.com")

    pauses: list[float] = []
    with pytest.raises(SmokeCheckError, match="failed: ReadTimeoutError: Read timeout on endpoint URL"):
        run_smoke_check(Unreachable(), "e", "/g", REGION, sleep=pauses.append)
    assert pauses == []


def test_smoke_check_fails_naming_the_log_group_when_the_reply_breaks_off() -> None:
    """A read timeout while the reply's body streams in, after its headers came, is a failure to get a reply like any
    other: the check's message with the log group, not botocore's bare exception."""

    class BrokenBody:
        def read(self) -> bytes:
            raise ReadTimeoutError(endpoint_url=f"https://runtime.sagemaker.{REGION}.amazonaws.com")

    class BreaksOff:
        def invoke_endpoint(self, **_kwargs: Any) -> Any:
            return {"Body": BrokenBody(), "ContentType": "application/json"}

    with pytest.raises(SmokeCheckError, match="failed: ReadTimeoutError: Read timeout on endpoint URL") as err:
        run_smoke_check(BreaksOff(), "e", "/aws/sagemaker/Endpoints/e", REGION, sleep=lambda _s: None)
    assert "`aws logs tail /aws/sagemaker/Endpoints/e" in str(err.value)


def test_smoke_check_quotes_the_start_of_a_long_reply() -> None:
    """An HTML error page or a long JSON document goes into `pulumi up`'s error by its start, not whole (a
    traceback's long last line: test_smoke_check_model_error_reports_the_traceback_tail)."""
    with pytest.raises(ValueError, match="not JSON") as not_json:
        parse_topk_reply(b"<html>" + b"x" * 10_000)
    with pytest.raises(ValueError, match="'predictions' list") as no_list:
        parse_topk_reply(json.dumps({"error": "x" * 10_000}).encode())
    assert len(str(not_json.value)) < 400 and len(str(no_list.value)) < 400


def test_smoke_check_gives_up_on_a_cold_start_that_never_ends() -> None:
    client = stub_client("sagemaker-runtime")
    pauses: list[float] = []
    with Stubber(client) as stub:
        for _ in range(3):
            _add_cold_start_error(stub, "timeout")
        with pytest.raises(SmokeCheckError) as err:
            run_smoke_check(client, "e", "/aws/sagemaker/Endpoints/e", REGION, attempts=3, sleep=pauses.append)
        stub.assert_no_pending_responses()
    assert pauses == [15.0, 15.0]
    message = str(err.value)
    assert "still not answering after 3 attempts 15 s apart" in message and "container status 0" in message
    # The log group is in the stack's region, which need not be the shell's.
    assert f"`aws logs tail /aws/sagemaker/Endpoints/e --region {REGION} --since 30m`" in message
    assert f"CloudWatch log group /aws/sagemaker/Endpoints/e (region {REGION})" in message


def test_the_provider_waits_out_a_cold_start_as_the_readme_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """SageMaker lets an invocation run 60 s, botocore's default read timeout: the probe's client waits longer, so a
    cold start ends on SageMaker's side (an answer, or its ModelError), and the probe is sent up to 4 times, 15 s
    apart."""
    provider = SmokeCheckProvider()
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")
    clients: dict[str, Any] = {}

    def client(service: str, region_name: str | None = None, **kwargs: Any) -> Any:
        made = clients[service] = session.client(service, region_name=region_name, **kwargs)
        stub = Stubber(made)
        if service == "sagemaker":
            stub.add_response("describe_endpoint", _endpoint("config-1"))
        for _ in range(4 if service == "sagemaker-runtime" else 0):
            _add_cold_start_error(stub, "not ready")
        stub.activate()
        return made

    monkeypatch.setattr(provider, "session", lambda: SimpleNamespace(client=client))
    pauses = pauses_recorded(monkeypatch)
    with pytest.raises(SmokeCheckError, match="still not answering after 4 attempts 15 s apart"):
        provider.create(dict(SMOKE_PROPS))
    assert pauses == [15.0, 15.0, 15.0]
    assert clients["sagemaker-runtime"].meta.config.read_timeout > 60
    # A transport error is not asked again by the probe (is_cold_start): botocore must retry it.
    assert clients["sagemaker-runtime"].meta.config.retries["total_max_attempts"] == 4  # 3 retries, as asked


def pauses_recorded(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the provider's smoke check takes between attempts, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(
        "components.dynamic.smoke_check.run_smoke_check",
        lambda *args, **kwargs: run_smoke_check(*args, **kwargs, sleep=pauses.append),
    )
    return pauses


class _RawBody:
    """The raw stream of a botocore AWSResponse made up in a test."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.body


def test_the_provider_sends_a_model_not_ready_probe_again_only_15_s_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "up to 4 attempts, 15 s apart" is what the endpoint sees: botocore's own retries, which resend a
    transport error, leave SageMaker's ModelNotReadyException (HTTP 429) to the probe. Its legacy retry mode resends
    every 429 at once, so each attempt was 4 invocations a second or so apart, 16 in all. Answered below the Stubber
    (botocore's before-send), so that botocore's retries run."""
    provider = SmokeCheckProvider()
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[str] = []

    def not_ready(request: Any, **_kwargs: Any) -> AWSResponse:
        sent.append(request.url)
        headers = {"x-amzn-ErrorType": "ModelNotReadyException", "Content-Type": "application/json"}
        return AWSResponse(request.url, 429, headers, _RawBody(b'{"message": "Model is not ready"}'))

    def client(service: str, region_name: str | None = None, **kwargs: Any) -> Any:
        made = session.client(service, region_name=region_name, **kwargs)
        if service == "sagemaker":
            stub = Stubber(made)
            stub.add_response("describe_endpoint", _endpoint("config-1"))
            stub.activate()
        else:
            made.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", not_ready)
        return made

    monkeypatch.setattr(provider, "session", lambda: SimpleNamespace(client=client))
    pauses = pauses_recorded(monkeypatch)
    with pytest.raises(SmokeCheckError, match="after 4 attempts 15 s apart: ModelNotReadyException"):
        provider.create(dict(SMOKE_PROPS))
    assert pauses == [15.0, 15.0, 15.0]
    assert len(sent) == 4  # one invocation per attempt


def test_the_provider_says_how_to_recover_a_failed_endpoint_before_probing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Failed endpoint fails the probe too, with an error that says nothing of the cure (delete it, refresh, up): the
    endpoint's state is checked first."""
    provider = SmokeCheckProvider()
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")

    def client(service: str, region_name: str | None = None, **kwargs: Any) -> Any:
        made = session.client(service, region_name=region_name, **kwargs)
        stub = Stubber(made)  # the runtime client's has nothing queued: an invocation fails the stub
        if service == "sagemaker":
            stub.add_response("describe_endpoint", {**_endpoint("config-1", "Failed"), "FailureReason": "no model.pt"})
        stub.activate()
        return made

    monkeypatch.setattr(provider, "session", lambda: SimpleNamespace(client=client))
    with pytest.raises(SmokeCheckError, match=r"'mobilenet-test' is Failed \(no model.pt\)") as err:
        provider.create(dict(SMOKE_PROPS))
    assert "aws sagemaker delete-endpoint --endpoint-name mobilenet-test" in str(err.value)


def test_smoke_check_sends_the_contracted_request() -> None:
    client = stub_client("sagemaker-runtime")
    from botocore.response import StreamingBody

    body = json.dumps(GOOD_REPLY).encode()
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
            expected_params={
                "EndpointName": "e",
                "ContentType": "image/jpeg",
                "Accept": "application/json;top_k=5",
                "Body": PROBE_JPEG,
            },
        )
        assert run_smoke_check(client, "e", "/g", REGION) == {"top_label": "Egyptian cat", "prediction_count": 2}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\xfd not UTF-8", "not JSON"),  # a ValueError naming the reply, not a bare UnicodeDecodeError
        (b"[]", "'predictions' list"),
        (b'["predictions"]', "'predictions' list"),  # JSON, but not an object
        (json.dumps({"predictions": 3}).encode(), "'predictions' list"),  # a ValueError, not len()'s TypeError
        (json.dumps({"predictions": {"label": "x", "prob": 0.5}}).encode(), "'predictions' list"),  # one, unlisted
        (json.dumps({"predictions": []}).encode(), f"1..{MAX_TOP_K}"),
        (json.dumps({"predictions": [{"label": "x", "prob": 1}] * (MAX_TOP_K + 1)}).encode(), f"1..{MAX_TOP_K}"),
        (json.dumps({"predictions": [{"label": "", "prob": 0.5}]}).encode(), "label"),
        (json.dumps({"predictions": [{"label": "x", "prob": 1.5}]}).encode(), "prob"),
        (json.dumps({"predictions": [{"label": "x", "prob": True}]}).encode(), "prob"),
        (json.dumps({"predictions": [{"label": "x", "prob": -0.1}]}).encode(), "prob"),
        (json.dumps({"predictions": [{"label": "x", "prob": "0.5"}]}).encode(), "prob"),
        (json.dumps({"predictions": [{"label": 3, "prob": 0.5}]}).encode(), "label"),
        (json.dumps({"predictions": ["x"]}).encode(), "label"),
        (json.dumps({"predictions": [{"label": "x", "prob": 0.5}, {"label": "", "prob": 0.3}]}).encode(), "label"),
        # Well-typed, but no softmax's top-k: unranked, or summing past 1 (logits squashed into 0..1).
        (
            json.dumps({"predictions": [{"label": "a", "prob": 0.2}, {"label": "b", "prob": 0.3}]}).encode(),
            r"not ranked by prob, highest first: 0\.3 follows 0\.2",
        ),
        (
            json.dumps({"predictions": [{"label": "a", "prob": 0.9}, {"label": "b", "prob": 0.2}]}).encode(),
            r"probs sum to 1\.1, more than one softmax can give",
        ),
        # The slack is the rounding of MAX_TOP_K six-decimal probs (about 1e-5), no more: 1.001 is refused too.
        (
            json.dumps({"predictions": [{"label": "a", "prob": 0.6}, {"label": "b", "prob": 0.401}]}).encode(),
            r"probs sum to 1\.001, more than one softmax can give",
        ),
    ],
)
def test_parse_topk_reply_rejects(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_topk_reply(body)


@pytest.mark.parametrize(
    "predictions",
    [
        [{"label": "x", "prob": 0.05}] * MAX_TOP_K,  # the proxy's top_k maximum
        [{"label": "certain", "prob": 1}, {"label": "never", "prob": 0}],  # JSON numbers without a fraction
        [{"label": "certain", "prob": 1.0}, {"label": "never", "prob": 0.0}],  # a softmax that saturates
        [{"label": "a", "prob": 0.4}, {"label": "b", "prob": 0.4}, {"label": "c", "prob": 0.2}],  # a tie, kept in order
        [{"label": "x", "prob": 0.050001}] * MAX_TOP_K,  # 1.00002: each prob's 6-decimal rounding adds up
    ],
)
def test_parse_topk_reply_accepts_the_bounds(predictions: list[dict[str, Any]]) -> None:
    """A reply at the edge of the contract is still a good one: a false alarm fails `pulumi up` on a healthy model."""
    assert parse_topk_reply(json.dumps({"predictions": predictions}).encode()) == predictions


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trigger", "config-2"),
        ("endpoint_name", "mobilenet-renamed"),  # a new endpoint, never probed
        ("region", "eu-west-1"),
        ("log_group", "/aws/sagemaker/Endpoints/mobilenet-renamed"),
    ],
)
def test_smoke_check_diff_reruns_only_when_the_deployment_changes(field: str, value: str) -> None:
    assert diff_smoke_check(SMOKE_PROPS, dict(SMOKE_PROPS)).changes is False
    changed = SmokeCheckProvider().diff("smoke-mobilenet-test", SMOKE_PROPS, {**SMOKE_PROPS, field: value})
    assert changed.changes is True and changed.replaces == []


def test_smoke_check_is_not_run_again_for_the_result_it_recorded() -> None:
    """Pulumi diffs the new inputs against the outputs the last check recorded, which carry its result: an unchanged
    deployment must not probe the endpoint again on every `pulumi up`."""
    recorded = {**SMOKE_PROPS, "top_label": "Egyptian cat", "prediction_count": 2}
    for news in (dict(SMOKE_PROPS), {**SMOKE_PROPS, "top_label": None, "prediction_count": None}):
        assert SmokeCheckProvider().diff("smoke-mobilenet-test", recorded, news).changes is False


def test_smoke_check_without_a_trigger_records_none(aws: None, text_probe: None) -> None:
    """A check given no configuration to match (check_rollout's None) records none, so the next `pulumi up` with the
    same inputs does not probe again."""
    queue_endpoint_results(json.dumps(GOOD_REPLY))
    serve_config("mobilenet-test", "config-1")
    news = {**SMOKE_PROPS, "trigger": None}
    created = SmokeCheckProvider().create(dict(news))
    assert created.outs["trigger"] is None
    assert diff_smoke_check(created.outs, news).changes is False


@pytest.mark.parametrize("missing", ["endpoint_name", "region", "log_group"])
def test_smoke_check_requires_inputs(aws: None, missing: str) -> None:
    with pytest.raises(SmokeCheckError, match=f"{missing} is required"):
        SmokeCheckProvider().create({**SMOKE_PROPS, missing: ""})


# ----------------------------------------------------------------------------------- invalidation


def _distribution() -> str:
    client = boto3.client("cloudfront")
    config = {
        "CallerReference": "test",
        "Comment": "test",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [{"Id": "o", "DomainName": "b.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "o",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
        },
    }
    return client.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def _invalidations(distribution_id: str) -> list[dict[str, Any]]:
    client = boto3.client("cloudfront")
    summaries = client.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items", [])
    return [client.get_invalidation(DistributionId=distribution_id, Id=s["Id"])["Invalidation"] for s in summaries]


def test_invalidation_create_update_delete(aws: None) -> None:
    dist = _distribution()
    provider = InvalidationProvider()
    props = {"distribution_id": dist, "content_hash": "a" * 64, "paths": ["/*"]}
    created = provider.create(dict(props))
    # The ID Pulumi records: the engine fails a create that returns an empty one ("returned empty resource.ID").
    assert created.id == f"{dist}-{'a' * 16}"
    assert created.outs["invalidation_id"]
    [first] = _invalidations(dist)
    assert first["InvalidationBatch"]["Paths"] == {"Quantity": 1, "Items": ["/*"]}
    assert first["InvalidationBatch"]["CallerReference"].startswith("a" * 32)

    updated = provider.update(created.id, created.outs, {**props, "content_hash": "b" * 64})
    assert updated.outs["content_hash"] == "b" * 64
    assert updated.outs["invalidation_id"] != created.outs["invalidation_id"]
    assert len(_invalidations(dist)) == 2

    assert provider.delete(created.id, updated.outs) is None
    assert len(_invalidations(dist)) == 2  # invalidations are events; delete creates nothing


def test_invalidation_calls_the_cloudfront_of_the_stacks_partition(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """CloudFront is one endpoint per partition: boto3 picks it from the client's region, so without the stack's a
    deployer whose default region is elsewhere (an aws-cn stack deployed from a machine set to us-east-1) called the
    commercial endpoint with China credentials."""
    dist = _distribution()
    provider = InvalidationProvider()
    asked: list[str | None] = []
    real = provider.client

    def client(service: str, region: str | None = None, **kwargs: Any) -> Any:
        asked.append(region)
        return real(service, region=region, **kwargs)

    monkeypatch.setattr(provider, "client", client)
    created = provider.create({"distribution_id": dist, "content_hash": "a" * 64, "region": "eu-west-1"})
    assert asked == ["eu-west-1"] and created.outs["region"] == "eu-west-1"
    china = real("cloudfront", region="cn-north-1").meta.endpoint_url
    assert china.endswith(".amazonaws.com.cn") and real("cloudfront", region="eu-west-1").meta.endpoint_url == (
        "https://cloudfront.amazonaws.com"
    )


def test_invalidation_of_new_paths_for_unchanged_content_is_a_new_batch(aws: None) -> None:
    # CloudFront refuses a CallerReference it has seen with a different batch (InvalidationBatchAlreadyExists): the
    # same content hash must not give the same reference.
    dist = _distribution()
    provider = InvalidationProvider()
    props = {"distribution_id": dist, "content_hash": "a" * 64, "paths": ["/*"]}
    created = provider.create(dict(props))
    news = {**props, "paths": ["/index.html", "/config.js"]}
    assert diff_invalidation(created.outs, news).changes is True
    updated = provider.update(created.id, created.outs, news)
    assert updated.outs["paths"] == news["paths"]
    batches = {i["Id"]: i["InvalidationBatch"] for i in _invalidations(dist)}
    first, second = batches[created.outs["invalidation_id"]], batches[updated.outs["invalidation_id"]]
    assert second["Paths"] == {"Quantity": 2, "Items": ["/index.html", "/config.js"]}
    assert first["CallerReference"] != second["CallerReference"]


def test_invalidation_batch_counts_its_paths() -> None:
    # CloudFront rejects a batch whose Quantity disagrees with its Items (moto does not check).
    batch = invalidation_batch(["/index.html", "/config.js"], "ref")
    assert batch == {"Paths": {"Quantity": 2, "Items": ["/index.html", "/config.js"]}, "CallerReference": "ref"}


@pytest.mark.parametrize("paths", [[], ["index.html"], ["/*", ""], ["/*", None]])
def test_invalidation_refuses_paths_cloudfront_would_reject(paths: list[str]) -> None:
    with pytest.raises(InvalidationInputError, match="absolute paths") as refused:
        invalidation_batch(paths, "ref")
    assert str(refused.value).endswith(f", got {paths!r}")  # names what it got


def test_invalidation_diff_only_on_hash_or_target_change() -> None:
    old = {"distribution_id": "E1", "content_hash": "h1", "paths": ["/*"], "invalidation_id": "I1"}
    same = diff_invalidation(old, {"distribution_id": "E1", "content_hash": "h1", "paths": ["/*"]})
    assert same.changes is False
    new_hash = diff_invalidation(old, {**old, "content_hash": "h2"})
    assert new_hash.changes is True and new_hash.replaces == []
    new_dist = diff_invalidation(old, {**old, "distribution_id": "E2"})
    assert new_dist.changes is True and new_dist.replaces == ["distribution_id"]


def test_invalidation_without_paths_invalidates_everything(aws: None) -> None:
    """The provider's own fallback, for inputs that name no paths: everything, recorded as such."""
    dist = _distribution()
    created = InvalidationProvider().create({"distribution_id": dist, "content_hash": "a" * 64})
    assert created.outs["paths"] == ["/*"]
    [batch] = [i["InvalidationBatch"] for i in _invalidations(dist)]
    assert batch["Paths"] == {"Quantity": 1, "Items": ["/*"]}


@pytest.mark.parametrize("missing", ["distribution_id", "content_hash"])
def test_invalidation_requires_inputs(aws: None, missing: str) -> None:
    with pytest.raises(InvalidationInputError, match=f"^{missing} is required, got ''$"):
        InvalidationProvider().create({"distribution_id": "E1", "content_hash": "a" * 64, missing: ""})


# ------------------------------------------------------------------------------------- API CORS


def test_http_api_cors_create_update_delete(aws: None) -> None:
    client = boto3.client("apigatewayv2")
    api_id = client.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    provider = HttpApiCorsProvider()
    props = {"api_id": api_id, "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    created = provider.create(dict(props))
    assert created.id == f"{api_id}-cors"  # never empty: the engine fails a create that returns no ID
    cors = client.get_api(ApiId=api_id)["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://d1.cloudfront.net"]
    assert cors["AllowMethods"] == ["POST", "OPTIONS"] and cors["AllowHeaders"] == ["content-type"]
    assert cors["ExposeHeaders"] == ["retry-after", "x-request-id", "apigw-requestid"]

    news = {**props, "origins": ["https://d1.cloudfront.net", "http://localhost:8000"]}
    assert diff_cors(created.outs, news).changes is True
    assert diff_cors(created.outs, dict(props)).changes is False
    provider.update(created.id, created.outs, news)
    assert client.get_api(ApiId=api_id)["CorsConfiguration"]["AllowOrigins"] == news["origins"]

    provider.delete(created.id, news)
    assert "CorsConfiguration" not in client.get_api(ApiId=api_id)
    client.delete_api(ApiId=api_id)
    provider.delete(created.id, news)  # the API is already gone: still not an error


def test_http_api_cors_records_the_cors_it_set(aws: None) -> None:
    """The state holds the origins and rules UpdateApi was given: the rules so that a program whose rules differ from
    those a stack was deployed with puts its own on the next `pulumi up` (the diff compares the recorded rules with the
    program's), the origins as set, each once."""
    client = boto3.client("apigatewayv2")
    api_id = client.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    provider = HttpApiCorsProvider()
    origin = "https://d1.cloudfront.net"
    props = {"api_id": api_id, "region": REGION, "origins": [origin, origin]}
    created = provider.create(dict(props))
    live = client.get_api(ApiId=api_id)["CorsConfiguration"]
    assert live["AllowOrigins"] == [origin]
    recorded = {"api_id": api_id, "region": REGION, "origins": [origin], "rules": cors_rules(live)}
    assert created.outs == recorded
    assert provider.update(created.id, created.outs, dict(props)).outs == recorded


def test_http_api_cors_refresh_sees_a_console_edit_and_up_restores_it(aws: None) -> None:
    client = boto3.client("apigatewayv2")
    api_id = client.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    props = {"api_id": api_id, "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    provider = HttpApiCorsProvider()
    created = provider.create(dict(props))
    assert provider.read(created.id, created.outs).outs["origins"] == ["https://d1.cloudfront.net"]
    client.delete_cors_configuration(ApiId=api_id)  # someone clears CORS in the console
    refreshed = provider.read(created.id, created.outs)
    assert refreshed.id == created.id and refreshed.outs["origins"] == []
    assert diff_cors(refreshed.outs, props).changes is True  # so the next `pulumi up` re-applies it
    client.delete_api(ApiId=api_id)
    assert provider.read(created.id, created.outs).id == ""  # the API is gone: refresh drops the resource


def test_http_api_cors_refresh_sees_a_console_edit_of_the_other_rules(aws: None) -> None:
    # The README: "pulumi refresh reads the API's CORS back, so a change made in the console is undone by the next
    # pulumi up". Without ExposeHeaders x-request-id the page loses the request id on every error.
    client = boto3.client("apigatewayv2")
    api_id = client.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    props = {"api_id": api_id, "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    provider = HttpApiCorsProvider()
    created = provider.create(dict(props))
    assert diff_cors(provider.read(created.id, created.outs).outs, props).changes is False
    live = client.get_api(ApiId=api_id)["CorsConfiguration"]
    for edit in (
        {"ExposeHeaders": ["retry-after"]},
        {"AllowHeaders": ["content-type", "authorization"]},
        {"MaxAge": live["MaxAge"] + 1},
        {"AllowCredentials": True},
    ):
        client.update_api(ApiId=api_id, CorsConfiguration={**live, **edit})
        assert provider.diff(created.id, provider.read(created.id, created.outs).outs, props).changes is True, edit
    # Names as API Gateway may spell them back (other case, other order) are not drift.
    respelled = {
        "AllowMethods": ["options", "post"],
        "AllowHeaders": [h.title() for h in live["AllowHeaders"]],
        "ExposeHeaders": [h.upper() for h in live["ExposeHeaders"][::-1]],
    }
    client.update_api(ApiId=api_id, CorsConfiguration={**live, **respelled})
    assert diff_cors(provider.read(created.id, created.outs).outs, props).changes is False
    # Nor is a false AllowCredentials left out of the answer.
    client.delete_cors_configuration(ApiId=api_id)
    client.update_api(ApiId=api_id, CorsConfiguration={k: v for k, v in live.items() if k != "AllowCredentials"})
    assert "AllowCredentials" not in client.get_api(ApiId=api_id)["CorsConfiguration"]
    assert diff_cors(provider.read(created.id, created.outs).outs, props).changes is False
    # A state written before the rules were recorded is not drift either.
    legacy = {k: v for k, v in created.outs.items() if k != "rules"}
    assert diff_cors(legacy, props).changes is False


def test_http_api_cors_refresh_of_origins_in_another_order_is_not_drift(aws: None) -> None:
    """CORS matches the browser's Origin against a set: the order of AllowOrigins means nothing, and the aws
    provider's own cors_configuration keeps allow_origins as an unordered, case-insensitive set (as it does the
    header and method names) because GetApi need not answer them in the order they were put. A refresh that reads
    them back in another order must leave the next `pulumi up` with nothing to do, or every refresh is followed by
    an update of the API's CORS."""
    client = boto3.client("apigatewayv2")
    api_id = client.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    origins = ["https://classify.example.com", "https://d1.cloudfront.net", "http://localhost:8000"]
    props = {"api_id": api_id, "region": REGION, "origins": origins}
    provider = HttpApiCorsProvider()
    created = provider.create(dict(props))
    live = client.get_api(ApiId=api_id)["CorsConfiguration"]
    client.update_api(ApiId=api_id, CorsConfiguration={**live, "AllowOrigins": sorted(origins)})
    refreshed = provider.read(created.id, created.outs).outs
    assert refreshed["origins"] == sorted(origins) != origins
    assert diff_cors(refreshed, props).changes is False
    # A different set of origins still is a change, in either direction.
    assert diff_cors(refreshed, {**props, "origins": origins[1:]}).changes is True
    assert diff_cors(refreshed, {**props, "origins": [*origins, "https://other.example.com"]}).changes is True
    # Nor is another case: scheme and host are case-insensitive.
    upper = [o.upper() for o in origins]
    client.update_api(ApiId=api_id, CorsConfiguration={**live, "AllowOrigins": upper})
    refreshed = provider.read(created.id, created.outs).outs
    assert refreshed["origins"] == upper != sorted(upper)  # recorded as GetApi answers them, not reordered
    assert diff_cors(refreshed, props).changes is False


@pytest.mark.parametrize(("field", "value"), [("api_id", "xyz789"), ("region", "eu-west-1")])
def test_http_api_cors_on_another_api_is_a_new_resource(field: str, value: str) -> None:
    """Another API (a replaced one, or one in another region) gets its CORS from a new resource, and the old
    resource's delete removes the CORS it set on the old API: after the new one is in place, as the old API (created
    before the new one, deleted after it) still serves the pages already open during the update, whose calls need
    that CORS."""
    old = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    moved = diff_cors(old, {**old, field: value})
    assert moved.changes is True and moved.replaces == [field]
    assert moved.delete_before_replace is False


# API Gateway's answer to a second change to one API while another is under way (HTTP 409).
CONCURRENT_MODIFICATION = "Unable to complete operation due to concurrent modification. Please try again later."


def _stubbed_cors_provider(monkeypatch: pytest.MonkeyPatch) -> tuple[HttpApiCorsProvider, Stubber, list[float]]:
    client = stub_client("apigatewayv2")
    provider = HttpApiCorsProvider()
    pauses: list[float] = []
    monkeypatch.setattr(provider, "_client", lambda _region: client)
    monkeypatch.setattr(provider, "pause", pauses.append, raising=False)
    return provider, Stubber(client), pauses


def _add_conflict(stub: Stubber, operation: str, message: str = CONCURRENT_MODIFICATION) -> None:
    stub.add_client_error(
        operation, service_error_code="ConflictException", service_message=message, http_status_code=409
    )


def test_http_api_cors_waits_out_a_concurrent_change_to_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi destroy` deletes this resource together with the API's stage and route (nothing depends on any of
    them), and API Gateway refuses a second change to one API while another is under way: the aws provider retries
    that ConflictException on every apigatewayv2 call, and so must this provider (botocore does not)."""
    provider, stub, pauses = _stubbed_cors_provider(monkeypatch)
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    with stub:
        _add_conflict(stub, "update_api")
        _add_conflict(stub, "update_api")
        stub.add_response("update_api", {}, {"ApiId": "abc123", "CorsConfiguration": ANY})
        created = provider.create(dict(props))
        _add_conflict(stub, "delete_cors_configuration")
        stub.add_response("delete_cors_configuration", {}, {"ApiId": "abc123"})
        provider.delete(created.id, created.outs)
        stub.assert_no_pending_responses()
    assert created.outs["origins"] == ["https://d1.cloudfront.net"]
    assert pauses == [2.0, 4.0, 2.0]  # each call starts its own schedule


def test_the_deployed_providers_really_pause_between_attempts() -> None:
    """The tests record the pauses instead of sleeping them; the provider host must sleep them, or every attempt
    meant to outlast a concurrent change or a cold start is spent within a second."""
    assert HttpApiCorsProvider().pause is time.sleep
    assert EndpointVersionProvider().pause is time.sleep
    assert inspect.signature(run_smoke_check).parameters["sleep"].default is time.sleep


def test_http_api_cors_gives_up_on_an_api_that_stays_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, stub, pauses = _stubbed_cors_provider(monkeypatch)
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    with stub:
        for _ in range(CONFLICT_ATTEMPTS):
            _add_conflict(stub, "update_api")
        with pytest.raises(ClientError, match="ConflictException"):
            provider.create(dict(props))
        stub.assert_no_pending_responses()
    # Doubling from 2 s, capped at 15 s: about a minute and a quarter before giving up.
    assert pauses == [2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0][: CONFLICT_ATTEMPTS - 1]
    assert len(pauses) == CONFLICT_ATTEMPTS - 1 and 60 <= sum(pauses) <= 90


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ConflictException", "An API with that name already exists"),  # a conflict that waiting does not end
        ("BadRequestException", "Invalid CORS origin"),
        ("TooManyRequestsException", CONCURRENT_MODIFICATION),  # the right words under another code
    ],
)
def test_http_api_cors_does_not_ask_again_after_other_errors(
    monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    provider, stub, pauses = _stubbed_cors_provider(monkeypatch)
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    with stub:
        stub.add_client_error("update_api", service_error_code=code, service_message=message, http_status_code=400)
        with pytest.raises(ClientError, match=code):
            provider.update("abc123-cors", dict(props), dict(props))
        stub.assert_no_pending_responses()
    assert pauses == []


def test_http_api_cors_refresh_and_delete_fail_unless_the_api_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only NotFoundException means the API is gone. A throttled GetApi must fail `pulumi refresh`, not report the
    resource deleted as if its API were; a throttled DeleteCorsConfiguration must fail the delete, not forget a CORS
    configuration it never removed."""
    provider, stub, _pauses = _stubbed_cors_provider(monkeypatch)
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    with stub:
        stub.add_client_error("get_api", service_error_code="TooManyRequestsException", http_status_code=429)
        with pytest.raises(ClientError, match="TooManyRequestsException"):
            provider.read("abc123-cors", dict(props))
        stub.add_client_error(
            "delete_cors_configuration", service_error_code="TooManyRequestsException", http_status_code=429
        )
        with pytest.raises(ClientError, match="TooManyRequestsException"):
            provider.delete("abc123-cors", dict(props))
        stub.assert_no_pending_responses()


def test_http_api_cors_waits_out_a_concurrent_change_however_its_message_is_cased(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, stub, pauses = _stubbed_cors_provider(monkeypatch)
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    with stub:
        _add_conflict(stub, "update_api", CONCURRENT_MODIFICATION.upper())
        stub.add_response("update_api", {}, {"ApiId": "abc123", "CorsConfiguration": ANY})
        provider.create(dict(props))
        stub.assert_no_pending_responses()
    assert pauses == [2.0]


def test_http_api_cors_raises_an_error_without_an_answer_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timeout or a dropped connection carries no API Gateway answer to read a ConflictException from: it fails the
    update as itself, neither asked again nor hidden behind an AttributeError raised looking for that answer."""
    provider = HttpApiCorsProvider()
    pauses: list[float] = []
    timeout = ReadTimeoutError(endpoint_url=f"https://apigateway.{REGION}.amazonaws.com")

    def update_api(**_kwargs: Any) -> None:
        raise timeout

    monkeypatch.setattr(provider, "_client", lambda _region: SimpleNamespace(update_api=update_api))
    monkeypatch.setattr(provider, "pause", pauses.append, raising=False)
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://d1.cloudfront.net"]}
    with pytest.raises(ReadTimeoutError) as raised:
        provider.update("abc123-cors", dict(props), dict(props))
    assert raised.value is timeout and pauses == []


@pytest.mark.parametrize("origins", [{"origins": []}, {"origins": None}, {}])
def test_http_api_cors_refuses_no_origins_before_calling_aws(
    monkeypatch: pytest.MonkeyPatch, origins: dict[str, Any]
) -> None:
    provider, stub, pauses = _stubbed_cors_provider(monkeypatch)
    with stub:
        with pytest.raises(PolicyInputError, match=r"^origins must name at least one allowed origin$"):
            provider.create({"api_id": "abc123", "region": REGION, **origins})
        stub.assert_no_pending_responses()
    assert pauses == []


@pytest.mark.parametrize("missing", ["api_id", "region"])
def test_http_api_cors_requires_api_id_and_region(aws: None, missing: str) -> None:
    props = {"api_id": "abc123", "region": REGION, "origins": ["https://a.example.com"]}
    with pytest.raises(HttpApiCorsError, match=f"^{missing} is required, got ''$"):
        HttpApiCorsProvider().create({**props, missing: ""})


# ------------------------------------------------------------------------------------- endpoint version


def _sagemaker_names(region: str = REGION) -> tuple[set[str], set[str]]:
    client = boto3.client("sagemaker", region_name=region)
    configs = {c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]}
    return configs, {m["ModelName"] for m in client.list_models()["Models"]}


def _version(config: str, model: str | None = None) -> dict[str, str]:
    return {
        "endpoint_name": "mobilenet-test",
        "region": REGION,
        "config_name": config,
        "model_name": model or f"model-{config}",
    }


def test_a_version_the_endpoint_moved_off_is_retired(aws: None) -> None:
    serve_config("mobilenet-test", "config-1")
    serve_config("mobilenet-test", "config-2")  # the rollout succeeded
    provider = EndpointVersionProvider()
    provider.delete("config-1", _version("config-1"))
    assert _sagemaker_names() == ({"config-2"}, {"model-config-2"})
    provider.delete("config-1", _version("config-1"))  # a retried delete finds nothing left: no error


def test_a_half_retired_version_retires_its_model(aws: None) -> None:
    """A retirement cut short between its two deletes (or a configuration deleted by hand): the retried delete finds
    the configuration gone and must still delete the Model."""
    serve_config("mobilenet-test", "config-1")
    serve_config("mobilenet-test", "config-2")
    boto3.client("sagemaker", region_name=REGION).delete_endpoint_config(EndpointConfigName="config-1")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    assert _sagemaker_names() == ({"config-2"}, {"model-config-2"})


def test_a_version_the_endpoint_fell_back_on_is_kept(aws: None) -> None:
    """SageMaker rolled the update to config-2 back: the endpoint still runs on config-1, whose version Pulumi
    deletes at the start of the next `pulumi up`. Deleting config-1 would break every later UpdateEndpoint."""
    serve_config("mobilenet-test", "config-2")  # created, then given up on
    serve_config("mobilenet-test", "config-1")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    assert _sagemaker_names() == ({"config-1", "config-2"}, {"model-config-1", "model-config-2"})


def test_a_memory_change_retires_the_configuration_but_keeps_the_shared_model(aws: None) -> None:
    client = boto3.client("sagemaker", region_name=REGION)
    serve_config("mobilenet-test", "config-1")
    config_on_the_same_model("config-2", "model-config-1")
    client.delete_endpoint(EndpointName="mobilenet-test")
    client.create_endpoint(EndpointName="mobilenet-test", EndpointConfigName="config-2")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    assert _sagemaker_names() == ({"config-2"}, {"model-config-1"})


def test_a_rename_with_a_memory_change_keeps_the_model_the_renamed_endpoint_runs(aws: None) -> None:
    """endpointName and memorySizeMb changed in one `pulumi up`: the Endpoint is replaced (new name, on config-2,
    which keeps the Model) and so is the version (new configuration). The old endpoint is deleted first, so the old
    version finds no endpoint under its name; the Model is still the renamed endpoint's, and deleting it would
    break every later configuration built on it (CreateEndpointConfig: 'Could not find model')."""
    client = boto3.client("sagemaker", region_name=REGION)
    serve_config("mobilenet-test", "config-1")
    config_on_the_same_model("config-2", "model-config-1")
    client.create_endpoint(EndpointName="mobilenet-renamed", EndpointConfigName="config-2")
    client.delete_endpoint(EndpointName="mobilenet-test")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    assert _sagemaker_names() == ({"config-2"}, {"model-config-1"})


def test_destroy_retires_a_configuration_the_endpoint_still_ran_when_its_version_went(aws: None) -> None:
    """An update made config-2 and its version, then failed before the endpoint ran on config-2: UpdateEndpoint
    refused (a quota), another resource failing first (the engine starts no step after an error), an interrupt, or
    SageMaker's rollback. The next `pulumi up` deletes the replaced version config-1 before anything else (the
    engine runs pending deletes first: pulumi/pulumi tests/integration/double_pending_delete/step3), finds the
    endpoint on config-1 and rightly keeps it; then it moves the endpoint to config-2. Nothing tracks config-1 and
    model-config-1 any more: no later rollout retires them, and `pulumi destroy` leaves them in the account."""
    provider = EndpointVersionProvider()
    serve_config("mobilenet-test", "config-1")
    version_1 = provider.create(_version("config-1")).outs
    serve_config("mobilenet-test", "config-2")  # the failed update made config-2 ...
    serve_config("mobilenet-test", "config-1")  # ... and the endpoint still runs on config-1
    version_2 = provider.create(_version("config-2")).outs
    provider.delete("config-1", version_1)  # the next `pulumi up`: its pending delete keeps config-1
    assert _sagemaker_names() == ({"config-1", "config-2"}, {"model-config-1", "model-config-2"})
    serve_config("mobilenet-test", "config-2")  # ... and that update moves the endpoint
    boto3.client("sagemaker", region_name=REGION).delete_endpoint(EndpointName="mobilenet-test")  # `pulumi destroy`
    provider.delete("config-2", version_2)
    assert _sagemaker_names() == (set(), set())


def test_a_version_deleted_while_the_endpoint_runs_what_it_superseded_keeps_that(aws: None) -> None:
    """The record of what a version superseded retires nothing the endpoint still runs: a rollout that never took
    effect (its version deleted as the stack goes back) leaves the endpoint's configuration and Model alone."""
    serve_config("mobilenet-test", "config-1")
    provider = EndpointVersionProvider()
    serve_config("mobilenet-test", "config-2")
    serve_config("mobilenet-test", "config-1")  # rolled back: the endpoint runs config-1
    version_2 = provider.create(_version("config-2")).outs
    assert version_2["superseded_config"] == "config-1"
    provider.delete("config-2", version_2)
    assert _sagemaker_names() == ({"config-1"}, {"model-config-1"})


def test_a_gone_endpoint_keeps_what_another_endpoint_runs_on(aws: None) -> None:
    serve_config("other", "config-1")  # another endpoint (by hand) on this very configuration
    EndpointVersionProvider().delete("config-1", _version("config-1"))  # mobilenet-test does not exist
    assert _sagemaker_names() == ({"config-1"}, {"model-config-1"})


@pytest.mark.parametrize("middle_config", ["config-1", "config-2"])
def test_a_gone_endpoint_keeps_what_any_endpoint_of_the_region_runs_on(aws: None, middle_config: str) -> None:
    """Every endpoint listed counts, not only the last one looked at: the one on this version (its configuration,
    or config-2 on its Model) is created between two others, so it is neither first nor last in any listing."""
    client = boto3.client("sagemaker", region_name=REGION)
    serve_config("mobilenet-test", "config-1")
    client.delete_endpoint(EndpointName="mobilenet-test")
    config_on_the_same_model("config-2", "model-config-1")
    serve_config("aaa-other", "config-a")
    client.create_endpoint(EndpointName="mmm-other", EndpointConfigName=middle_config)
    serve_config("zzz-other", "config-z")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    configs, models = _sagemaker_names()
    assert ("config-1" in configs) == (middle_config == "config-1")
    assert "model-config-1" in models
    assert {"config-2", "config-a", "config-z"} <= configs and {"model-config-a", "model-config-z"} <= models


def test_a_gone_endpoint_keeps_a_model_another_endpoints_second_variant_runs(aws: None) -> None:
    """An endpoint made by hand with two variants (an A/B test), the second on this version's Model: the Model stays,
    whichever variant it serves."""
    client = boto3.client("sagemaker", region_name=REGION)
    serve_config("mobilenet-test", "config-1")
    client.delete_endpoint(EndpointName="mobilenet-test")
    serve_config("ab-test", "config-a")
    variant = {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}
    client.create_endpoint_config(
        EndpointConfigName="config-ab",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "model-config-a", **variant},
            {"VariantName": "B", "ModelName": "model-config-1", **variant},
        ],
    )
    client.delete_endpoint(EndpointName="ab-test")
    client.create_endpoint(EndpointName="ab-test", EndpointConfigName="config-ab")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    configs, models = _sagemaker_names()
    assert "config-1" not in configs and "model-config-1" in models


def test_a_gone_endpoint_keeps_its_model_while_another_endpoint_runs_on_a_deleted_configuration(aws: None) -> None:
    """Another endpoint of the region runs on a configuration someone deleted (#40048, or by hand): which Model it
    runs is unknown, so this version's Model stays, as when its own endpoint does; its configuration is retired."""
    client = boto3.client("sagemaker", region_name=REGION)
    serve_config("mobilenet-test", "config-1")
    client.delete_endpoint(EndpointName="mobilenet-test")
    serve_config("other", "config-2")
    client.delete_endpoint_config(EndpointConfigName="config-2")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    assert _sagemaker_names() == (set(), {"model-config-1", "model-config-2"})


def test_destroy_retires_the_last_version_after_the_endpoint(aws: None) -> None:
    serve_config("mobilenet-test", "config-1")
    boto3.client("sagemaker", region_name=REGION).delete_endpoint(EndpointName="mobilenet-test")
    EndpointVersionProvider().delete("config-1", _version("config-1"))
    assert _sagemaker_names() == (set(), set())


def test_a_version_still_retires_when_the_running_configuration_is_already_gone(aws: None) -> None:
    """The endpoint runs on a configuration that no longer exists (deleted by hand, or by the program before
    EndpointVersion: terraform-provider-aws #40048). DescribeEndpointConfig on it answers ValidationException
    'Could not find endpoint configuration'; the version's delete must not fail on it (a pending delete that fails
    aborts every later `pulumi up` at its start), and, not knowing which Model the endpoint runs, keeps the Model."""
    serve_config("mobilenet-test", "config-2")  # config-2: the version being retired
    serve_config("mobilenet-test", "config-1")  # the endpoint runs on config-1 ...
    boto3.client("sagemaker", region_name=REGION).delete_endpoint_config(EndpointConfigName="config-1")  # ... gone
    EndpointVersionProvider().delete("config-2", _version("config-2"))
    assert _sagemaker_names() == (set(), {"model-config-1", "model-config-2"})


@pytest.mark.parametrize(
    ("running", "expected"),
    [
        (None, (True, True)),
        (("InService", "config-2", {"model-2"}), (True, True)),
        (("InService", "config-2", {"model-1"}), (True, False)),
        (("InService", "config-2", {"model-2", "model-1"}), (True, False)),  # its second variant runs it
        (("InService", "config-2", {"model-10"}), (True, True)),  # names, not substrings
        (("InService", "config-1", {"model-1"}), (False, False)),
        (("Updating", "config-2", {"model-2"}), (False, False)),
        (("RollingBack", "config-2", {"model-2"}), (False, False)),
        (("Failed", "config-2", {"model-2"}), (True, True)),
        (("OutOfService", "config-2", {"model-2"}), (True, True)),
    ],
)
def test_what_to_retire(running: Any, expected: tuple[bool, bool]) -> None:
    assert what_to_retire("config-1", "model-1", running) == expected


def test_a_shadow_variants_model_counts_and_an_inference_component_variant_names_none() -> None:
    """Another endpoint of the region, shadow-testing this version's Model beside a variant that hosts inference
    components (no ModelName): the Model is one it runs, and the variant without one is no KeyError."""
    described = {
        "ProductionVariants": [{"VariantName": "components"}],
        "ShadowProductionVariants": [{"VariantName": "shadow", "ModelName": "model-1"}],
    }
    client = SimpleNamespace(describe_endpoint_config=lambda **_: described, exceptions=SimpleNamespace())
    endpoint = {"EndpointStatus": "InService", "EndpointConfigName": "config-ab"}
    running = EndpointVersionProvider._running(client, endpoint, "config-1", "model-1")
    assert running == ("InService", "config-ab", frozenset({"model-1"}))
    assert what_to_retire("config-1", "model-1", running) == (True, False)


def test_endpoint_version_diff_replaces_only_for_a_new_configuration_or_model() -> None:
    old = _version("config-1")
    assert diff_endpoint_version(old, dict(old)).changes is False
    for field, value in (("config_name", "config-2"), ("model_name", "m2")):
        # changes=False is DIFF_NONE to the engine, which then replaces nothing whatever `replaces` says
        new_version = diff_endpoint_version(old, {**old, field: value})
        assert new_version.changes is True and new_version.replaces == [field], field
    for field, value in (("endpoint_name", "renamed"), ("region", "eu-west-1")):
        moved = diff_endpoint_version(old, {**old, field: value})
        assert moved.changes is True and moved.replaces == [], field
    # The old version is deleted after the endpoint moved to the new one; deleted first, it would find the endpoint
    # still on it and keep it for good.
    assert diff_endpoint_version(old, {**old, "config_name": "config-2"}).delete_before_replace is False


@pytest.mark.parametrize("missing", ["endpoint_name", "region", "config_name", "model_name"])
def test_endpoint_version_requires_inputs(aws: None, missing: str) -> None:
    with pytest.raises(EndpointVersionError, match=f"^{missing} is required, got ''$"):
        EndpointVersionProvider().create({**_version("config-1"), missing: ""})
    assert EndpointVersionProvider().create(_version("config-1")).id == "config-1"
    with pytest.raises(EndpointVersionError, match=f"^{missing} is required, got ''$"):
        EndpointVersionProvider().update("config-1", _version("config-1"), {**_version("config-1"), missing: ""})


def test_endpoint_version_records_every_field_its_delete_reads(aws: None) -> None:
    """Pulumi hands the delete the outs create or update returned, not the program's inputs: one left out of them
    (model_name) failed every later delete with a KeyError, and a renamed endpoint or another region recorded by
    the update is where the delete looks. So is what the endpoint ran when the version was created, which an update
    keeps (a first rollout, whose endpoint does not exist yet, records none)."""
    version = _version("config-1")
    assert EndpointVersionProvider().create(dict(version)).outs == version
    moved = {**version, "endpoint_name": "mobilenet-renamed", "region": "eu-west-1"}
    assert EndpointVersionProvider().update("config-1", version, dict(moved)).outs == moved
    serve_config("mobilenet-test", "config-1")
    created = EndpointVersionProvider().create(_version("config-2")).outs
    superseded = {"superseded_config": "config-1", "superseded_models": ["model-config-1"]}
    assert created == {**_version("config-2"), **superseded}
    moved = {**_version("config-2"), "endpoint_name": "mobilenet-renamed"}
    assert EndpointVersionProvider().update("config-2", created, dict(moved)).outs == {**moved, **superseded}
    assert EndpointVersionProvider().create(_version("config-1")).outs == _version("config-1")  # what it runs


def _stubbed_version_provider(monkeypatch: pytest.MonkeyPatch) -> tuple[EndpointVersionProvider, Stubber]:
    client = stub_client("sagemaker")
    provider = EndpointVersionProvider()
    monkeypatch.setattr(provider, "client", lambda *_args, **_kwargs: client)
    return provider, Stubber(client)


def _endpoint(config: str, status: str = "InService") -> dict[str, Any]:
    return {
        "EndpointName": "mobilenet-test",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mobilenet-test",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("ThrottlingException", "Rate exceeded"),
        ("AccessDeniedException", "not authorized to perform: sagemaker:DescribeEndpoint"),
        ("ValidationException", "1 validation error detected"),  # not "Could not find": the endpoint may exist
        ("ResourceNotFound", "Could not find the account"),  # the right words under another code
    ],
)
def test_a_version_is_kept_when_the_endpoint_cannot_be_described(
    monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    """Only "the endpoint does not exist" lets a version retire without knowing what it runs on; any other
    failure must fail the delete (Pulumi retries it) rather than delete a configuration the endpoint may use."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_client_error("describe_endpoint", service_error_code=code, service_message=message)
        with pytest.raises(ClientError, match=code):
            provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()  # and nothing was deleted (an unstubbed delete would fail the stub)


def test_a_version_is_kept_when_the_running_configuration_cannot_be_described(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_response("describe_endpoint", _endpoint("config-2"), {"EndpointName": "mobilenet-test"})
        stub.add_client_error("describe_endpoint_config", service_error_code="ThrottlingException")
        with pytest.raises(ClientError, match="ThrottlingException"):
            provider.delete("config-1", _version("config-1"))


@pytest.mark.parametrize("status", ["Updating", "SystemUpdating", "RollingBack", "Creating"])
def test_a_version_is_kept_while_the_endpoint_is_between_states(monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_response("describe_endpoint", _endpoint("config-2", status), {"EndpointName": "mobilenet-test"})
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "config-2",
                "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/config-2",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "model-config-2"}],
                "CreationTime": "2026-01-01T00:00:00Z",
            },
        )
        provider.delete("config-1", _version("config-1"))  # an unstubbed delete call would raise here
        stub.assert_no_pending_responses()


def test_destroy_waits_for_an_endpoint_sagemaker_is_still_deleting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aws provider's Endpoint delete returns once DescribeEndpoint says Deleting (its waiter counts that status
    as gone), so on `pulumi destroy` the version finds the endpoint still Deleting on this very configuration. Kept
    then, the configuration and Model were left behind by every destroy, and the endpoint's name was not yet free for
    the next `pulumi up` when the destroy ended."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    pauses: list[float] = []
    monkeypatch.setattr(provider, "pause", pauses.append)
    deleting = _endpoint("config-1", "Deleting")
    with stub:
        for _ in range(3):
            stub.add_response("describe_endpoint", deleting, {"EndpointName": "mobilenet-test"})
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": []})
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "config-1"})
        stub.add_response("delete_model", {}, {"ModelName": "model-config-1"})
        provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()
    assert pauses == [DELETING_POLL_S] * 3


def test_an_endpoint_deleting_too_long_fails_the_delete_naming_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is deleted while it may still run on them, and the error says what is left and how to finish; the
    version stays in the state, so running `pulumi destroy` again retires them."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    pauses: list[float] = []
    monkeypatch.setattr(provider, "pause", pauses.append)
    deleting = _endpoint("config-1", "Deleting")
    with stub:
        for _ in range(DELETING_POLLS + 1):
            stub.add_response("describe_endpoint", deleting, {"EndpointName": "mobilenet-test"})
        with pytest.raises(EndpointStillDeletingError) as failure:
            provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()  # an unstubbed delete call would have failed the stub
    assert len(pauses) == DELETING_POLLS
    assert sum(pauses) == 600  # 10 minutes, as the aws provider's own wait (and the README) say
    # Held whole: each command must name this endpoint, configuration or model, and the stack's region.
    assert str(failure.value) == (
        "SageMaker endpoint 'mobilenet-test' is still Deleting after 10 minutes, so its endpoint configuration "
        "'config-1' and model 'model-config-1' were not deleted. Once it is gone (`aws sagemaker wait "
        f"endpoint-deleted --endpoint-name mobilenet-test --region {REGION}`), run the `pulumi destroy` (or `pulumi "
        "up`) again: it retries this. Or delete them: `aws sagemaker delete-endpoint-config --endpoint-config-name "
        f"config-1 --region {REGION}`, `aws sagemaker delete-model --model-name model-config-1 --region {REGION}`."
    )


def test_a_failing_retirement_fails_the_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only "already gone" is success; any other refusal must surface, or Pulumi forgets a version it never deleted."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": []})
        stub.add_client_error("delete_endpoint_config", "AccessDeniedException", "not authorized")
        with pytest.raises(ClientError, match="AccessDeniedException"):
            provider.delete("config-1", _version("config-1"))


def test_a_gone_endpoint_and_a_gone_configuration_are_told_however_sagemaker_cases_could_not_find(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SageMaker's "Could not find" is read in any case: an answer cased otherwise is still the endpoint gone (the
    version retires) and the configuration already deleted (the Model is still deleted), not an error that fails every
    later `pulumi destroy` or `pulumi up` at its start."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": []})
        stub.add_client_error("delete_endpoint_config", "ValidationException", "COULD NOT FIND endpoint configuration")
        stub.add_response("delete_model", {}, {"ModelName": "model-config-1"})
        provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()


def test_a_gone_endpoint_whose_region_cannot_be_listed_keeps_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not knowing whether a renamed endpoint runs on them, nothing is deleted: the delete fails (Pulumi retries)."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_client_error("list_endpoints", "AccessDeniedException", "not authorized")
        with pytest.raises(ClientError, match="AccessDeniedException"):
            provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()


def _summary(name: str) -> dict[str, Any]:
    """One entry of a ListEndpoints answer."""
    return {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
        "EndpointStatus": "InService",
    }


def test_a_listed_endpoint_deleted_since_the_listing_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": [_summary("other")]})
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint other.")
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "config-1"})
        stub.add_response("delete_model", {}, {"ModelName": "model-config-1"})
        provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()  # the version was retired


def test_an_endpoint_listed_after_one_deleted_since_the_listing_keeps_the_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint gone since the listing ends the look at it, not at the rest of the page: the next one listed runs
    on this very configuration, so nothing is deleted."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    other = {**_endpoint("config-1"), "EndpointName": "other"}
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": [_summary("gone"), _summary("other")]})
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint gone.")
        stub.add_response("describe_endpoint", other, {"EndpointName": "other"})
        provider.delete("config-1", _version("config-1"))  # an unstubbed delete call would raise here
        stub.assert_no_pending_responses()


def test_a_listed_endpoint_that_cannot_be_described_keeps_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """It may run on this version: the delete fails (Pulumi retries) and nothing is deleted."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": [_summary("other")]})
        stub.add_client_error("describe_endpoint", "ThrottlingException", "Rate exceeded")
        with pytest.raises(ClientError, match="ThrottlingException"):
            provider.delete("config-1", _version("config-1"))
        stub.assert_no_pending_responses()  # an unstubbed delete call would have failed the stub


def test_an_endpoint_on_a_later_page_of_the_listing_keeps_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """ListEndpoints answers at most 100 per page (10 by default): every page is read."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    other = {**_endpoint("config-1"), "EndpointName": "other"}
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": [], "NextToken": "page-2"})
        stub.add_response("list_endpoints", {"Endpoints": [_summary("other")]}, {"NextToken": "page-2"})
        stub.add_response("describe_endpoint", other, {"EndpointName": "other"})
        provider.delete("config-1", _version("config-1"))  # an unstubbed delete call would raise here
        stub.assert_no_pending_responses()


def test_a_listed_endpoint_sagemaker_is_deleting_does_not_keep_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """The version's own endpoint is waited for while it is Deleting; one it lists is not, and counts as running on
    config-1. After an endpointName change it is this stack's old endpoint: the version, updated in place, names the
    new one. `pulumi destroy` soon after that rename (the old endpoint was deleted at its end, the aws provider
    returning once Deleting), or after a rename whose new endpoint was refused (the old and the new maxConcurrency must
    fit in the quota together, README): the version finds no endpoint of the new name, lists the old one still
    Deleting on config-1, and keeps config-1 and its Model, which nothing tracks after the destroy. An endpoint being
    deleted runs nothing again (SageMaker has no undo for DeleteEndpoint)."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    monkeypatch.setattr(provider, "pause", lambda _seconds: None)
    version = {**_version("config-1"), "endpoint_name": "mobilenet-renamed"}
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-renamed.")
        stub.add_response(
            "list_endpoints", {"Endpoints": [{**_summary("mobilenet-test"), "EndpointStatus": "Deleting"}]}
        )
        stub.add_response("describe_endpoint", _endpoint("config-1", "Deleting"), {"EndpointName": "mobilenet-test"})
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "config-1"})
        stub.add_response("delete_model", {}, {"ModelName": "model-config-1"})
        provider.delete("config-1", version)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("status", ["Failed", "OutOfService", "Creating", "Updating"])
def test_a_listed_endpoint_keeps_the_model_it_runs_whatever_its_status(
    monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    """A rename with a memory change whose renamed endpoint failed to start on config-2 (the same Model): recovering
    it recreates it on config-2, which needs the Model. Any endpoint of the region on it counts, in service or not."""
    provider, stub = _stubbed_version_provider(monkeypatch)
    renamed = {**_endpoint("config-2", status), "EndpointName": "mobilenet-renamed"}
    with stub:
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint mobilenet-test.")
        stub.add_response("list_endpoints", {"Endpoints": [_summary("mobilenet-renamed")]})
        stub.add_response("describe_endpoint", renamed, {"EndpointName": "mobilenet-renamed"})
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "config-2",
                "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/config-2",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "model-config-1"}],
                "CreationTime": "2026-01-01T00:00:00Z",
            },
            {"EndpointConfigName": "config-2"},
        )
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": "config-1"})
        provider.delete("config-1", _version("config-1"))  # an unstubbed delete_model would raise here
        stub.assert_no_pending_responses()


# ------------------------------------------------------------------------------------- credentials


def configured(provider: AwsProvider, **config: str) -> AwsProvider:
    """What the provider host does after unpickling a provider: configure it with the stack's configuration."""
    provider.configure(ConfigureRequest(Config(config, "mobilenet-serverless")))
    return provider


@pytest.fixture
def deploy_profile(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A named profile in private config files, beside credentials in the environment."""
    (tmp_path / "credentials").write_text(
        "[deploy]\naws_access_key_id = deploy-profile-key\naws_secret_access_key = deploy-secret\n"
    )
    (tmp_path / "config").write_text(f"[profile deploy]\nregion = {REGION}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    return "deploy"


def test_the_stacks_aws_profile_wins_over_the_environments_credentials(
    deploy_profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "environment-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    def access_key(provider: AwsProvider) -> str:
        return provider.session().get_credentials().access_key

    assert access_key(configured(InvalidationProvider(), **{"aws:profile": deploy_profile})) == "deploy-profile-key"
    assert access_key(configured(InvalidationProvider())) == "environment-key"  # boto3's default chain
    # `pulumi config set aws:profile ""` leaves the aws provider on its default chain: boto3 took "" for a profile
    # named so, and every create, update and delete raised ProfileNotFound.
    assert access_key(configured(InvalidationProvider(), **{"aws:profile": ""})) == "environment-key"
    assert access_key(InvalidationProvider()) == "environment-key"  # not configured (tests, older engines)


def test_every_provider_calls_aws_with_the_stacks_profile(aws: None, deploy_profile: str, text_probe: None) -> None:
    client = boto3.client("apigatewayv2")
    api_id = client.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    calls = {
        HttpApiCorsProvider: {"api_id": api_id, "region": REGION, "origins": ["https://d1.cloudfront.net"]},
        InvalidationProvider: {"distribution_id": _distribution(), "content_hash": "a" * 64, "paths": ["/*"]},
        SmokeCheckProvider: SMOKE_PROPS,
    }
    queue_endpoint_results(json.dumps(GOOD_REPLY))
    serve_config("mobilenet-test", "config-1")
    for provider_class, props in calls.items():
        with pytest.raises(ProfileNotFound, match="gone"):
            configured(provider_class(), **{"aws:profile": "gone"}).create(dict(props))
        assert configured(provider_class(), **{"aws:profile": deploy_profile}).create(dict(props)).outs
    # The version resource calls AWS only when it retires a configuration.
    with pytest.raises(ProfileNotFound, match="gone"):
        configured(EndpointVersionProvider(), **{"aws:profile": "gone"}).delete("config-1", _version("config-1"))
    configured(EndpointVersionProvider(), **{"aws:profile": deploy_profile}).delete("config-1", _version("config-1"))


def test_every_provider_calls_aws_in_the_region_it_is_given(aws: None, text_probe: None) -> None:
    """The stack's aws:region, not the environment's default region (us-east-1 here): a provider calling the default
    would update, probe or retire nothing of this stack, or fail on resources it cannot find there."""
    region = "eu-west-1"
    apis = boto3.client("apigatewayv2", region_name=region)
    api_id = apis.create_api(Name="t", ProtocolType="HTTP")["ApiId"]
    cors, cors_props = HttpApiCorsProvider(), {"api_id": api_id, "region": region, "origins": ["https://d1.example"]}
    created = cors.create(dict(cors_props))
    assert apis.get_api(ApiId=api_id)["CorsConfiguration"]["AllowOrigins"] == ["https://d1.example"]
    assert cors.read(created.id, created.outs).id == created.id
    cors.delete(created.id, created.outs)
    assert "CorsConfiguration" not in apis.get_api(ApiId=api_id)

    queue_endpoint_results(json.dumps(GOOD_REPLY), region=region)
    serve_config("mobilenet-test", "config-1", region)
    assert SmokeCheckProvider().create({**SMOKE_PROPS, "region": region}).outs["top_label"] == "Egyptian cat"

    serve_config("mobilenet-test", "config-2", region)
    EndpointVersionProvider().delete("config-1", {**_version("config-1"), "region": region})
    assert _sagemaker_names(region) == ({"config-2"}, {"model-config-2"})


# ------------------------------------------------------------------------------------- pickling


def test_providers_survive_pulumis_serialization_in_a_fresh_process() -> None:
    """Pulumi dill-pickles the provider; the dynamic-provider host unpickles it from the project root."""
    providers = (InvalidationProvider(), SmokeCheckProvider(), HttpApiCorsProvider(), EndpointVersionProvider())
    blobs = [serialize_provider(p) for p in providers]
    script = (  # the calls pulumi.dynamic.__main__.get_provider makes (that module starts a server on import)
        "import base64, sys, dill\n"
        "from pulumi.dynamic import ConfigureRequest\n"
        "from pulumi.dynamic.config import Config\n"
        "for blob in sys.argv[1:]:\n"
        "    provider = dill.loads(base64.b64decode(blob))\n"
        "    provider.configure(ConfigureRequest(Config({'aws:profile': 'deploy'}, 'mobilenet-serverless')))\n"
        "    print(type(provider).__module__ + '.' + type(provider).__name__, provider.profile)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *blobs], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.splitlines() == [
        "components.dynamic.invalidation.InvalidationProvider deploy",
        "components.dynamic.smoke_check.SmokeCheckProvider deploy",
        "components.dynamic.http_api_cors.HttpApiCorsProvider deploy",
        "components.dynamic.endpoint_version.EndpointVersionProvider deploy",
    ]
    assert all(base64.b64decode(b) for b in blobs)
