"""The three components under Pulumi mocks: every resource and its key inputs."""

from __future__ import annotations

import ast
import json
import traceback
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components import policies
from components.dynamic.invalidation import CloudFrontInvalidation
from components.dynamic.smoke_check import EndpointSmokeCheck
from components.inference_api import InferenceApi, InferenceApiArgs, InferenceApiArgsError
from components.serverless_endpoint import ServerlessEndpoint, ServerlessEndpointArgs, ServerlessEndpointArgsError
from components.site_config import CONFIG_JS_CACHE_CONTROL, render_config_js
from components.static_site import StaticSite, StaticSiteArgs, StaticSiteArgsError
from tests.conftest import names_of
from tests.infra.conftest import (
    ACCOUNT,
    API_ENDPOINT,
    CF_DOMAIN,
    DLC_ACCOUNT,
    DYNAMIC,
    EXECUTION_ARN,
    REGION,
    ROOT,
    RecordingMocks,
    fake_lambda_asset_files,
    make_artifact,
    make_www,
    settle,
)

KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-1111-2222-333344445555"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mobilenet-test"


def endpoint_args(tmp_path: Path, **overrides: Any) -> ServerlessEndpointArgs:
    artifact, sha = make_artifact(tmp_path / "model")
    base = {
        "endpoint_name": "mobilenet-test",
        "artifact_path": artifact,
        "artifact_sha256": sha,
        "image_tag": "2.6.0-cpu-py312",
    }
    return ServerlessEndpointArgs(**{**base, **overrides})


def api_args(**overrides: Any) -> InferenceApiArgs:
    base = {
        "function_name": "mobilenet-test-proxy",
        "endpoint_name": "mobilenet-test",
        "endpoint_arn": ENDPOINT_ARN,
        "code_files": fake_lambda_asset_files(ROOT / "handlers"),
        "site_origins": ["https://d1.cloudfront.net"],
        "extra_origins": ("http://localhost:8000",),
    }
    return InferenceApiArgs(**{**base, **overrides})


def resources_behind(output: pulumi.Output[Any]) -> pulumi.Output[list[str]]:
    """The names of the resources an output waits for (what a resource or export built on it depends on). Read from
    the SDK's Output.resources() and each resource's _name: an SDK that renames them fails these tests loudly."""
    return pulumi.Output.from_input(output.resources()).apply(lambda found: sorted(r._name for r in found))


def component_shapes() -> dict[str, dict[str, Any]]:
    """Each pulumi.ComponentResource class under components/, read from its source: its file, whether an XxxArgs
    dataclass stands beside it, its __init__'s first two statements and last one, the outputs it annotates and the
    ones it registers."""
    shapes: dict[str, dict[str, Any]] = {}
    for path in sorted((ROOT / "components").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        for name, node in classes.items():
            if "pulumi.ComponentResource" not in map(ast.unparse, node.bases):
                continue
            args = classes.get(f"{name}Args")
            [init] = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
            last = init.body[-1]
            registered = last.value.args[0] if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) else None
            shapes[name] = {
                "file": path.relative_to(ROOT).as_posix(),
                "args": args is not None and "dataclass(frozen=True)" in map(ast.unparse, args.decorator_list),
                "first": [ast.unparse(statement) for statement in init.body[:2]],
                "last": ast.unparse(last.value.func) if isinstance(last, ast.Expr) else None,
                "annotated": {a.target.id for a in node.body if isinstance(a, ast.AnnAssign)},
                "registered": {k.value for k in registered.keys} if isinstance(registered, ast.Dict) else None,
            }
    return shapes


def test_each_component_keeps_the_house_shape() -> None:
    """The house rules for components/ (the team's guide, which the README does not hold): one component per file, a
    frozen XxxArgs dataclass validated before anything registers, the token mobilenet-serverless:index:Xxx,
    register_outputs as the last line, and as attributes exactly the outputs it registers."""
    shapes = component_shapes()
    assert {name: shape["file"] for name, shape in shapes.items()} == {
        "InferenceApi": "components/inference_api.py",
        "ServerlessEndpoint": "components/serverless_endpoint.py",
        "StaticSite": "components/static_site.py",
    }
    for name, shape in shapes.items():
        assert shape["args"], f"{name}Args is not a frozen dataclass beside {name}"
        assert shape["first"] == [
            "args.validate()",
            f"super().__init__('mobilenet-serverless:index:{name}', name, None, opts)",
        ], name
        assert shape["last"] == "self.register_outputs", name
        assert shape["annotated"] == shape["registered"], name


# ------------------------------------------------------------------------------ ServerlessEndpoint


def test_serverless_endpoint_resources(mocks: RecordingMocks, tmp_path: Path) -> None:
    args = endpoint_args(tmp_path)
    outputs = settle(
        lambda: pulumi.Output.all(
            (c := ServerlessEndpoint("model", args)).endpoint_name,
            c.model_artifact_uri,
            c.log_group_name,
            c.endpoint_arn,
        )
    )
    key = f"models/{args.artifact_sha256}/model.tar.gz"
    assert outputs == [
        "mobilenet-test",
        f"s3://model-bucket-a1b2c3/{key}",
        "/aws/sagemaker/Endpoints/mobilenet-test",
        ENDPOINT_ARN,
    ]

    bucket = mocks.one("aws:s3/bucket:Bucket")
    assert bucket["forceDestroy"] is True
    pab = mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    own = mocks.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert own["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    sse = mocks.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    # No bucketKeyEnabled: Bucket Keys serve SSE-KMS only; set here, an update of every stack's buckets.
    assert sse["rules"][0] == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}

    obj = mocks.one("aws:s3/bucketObjectv2:BucketObjectv2")
    assert obj["key"] == key
    assert obj["contentType"] == "application/gzip"
    assert Path(obj["source"].path) == args.artifact_path

    model = mocks.one("aws:sagemaker/model:Model")
    container = model["primaryContainer"]
    assert container["image"] == f"{DLC_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    assert container["modelDataUrl"] == f"s3://model-bucket-a1b2c3/{key}"
    assert container["environment"] == policies.sagemaker_container_env(REGION)
    assert model["executionRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/model-role")
    assert (
        "aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage",
        {"repositoryName": "pytorch-inference", "imageTag": "2.6.0-cpu-py312"},
    ) in [(t, {k: v for k, v in a.items() if k in ("repositoryName", "imageTag")}) for t, a in mocks.calls]

    variant = mocks.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")["productionVariants"]
    assert variant == [
        {
            "variantName": "AllTraffic",
            "modelName": "model-model-a1b2c3",
            "serverlessConfig": {"memorySizeInMb": 2048, "maxConcurrency": 5},
        }
    ]
    endpoint = mocks.one("aws:sagemaker/endpoint:Endpoint")
    assert endpoint == {"name": "mobilenet-test", "endpointConfigName": "model-config-a1b2c3"}
    log_group = mocks.one("aws:cloudwatch/logGroup:LogGroup")
    assert log_group == {"name": "/aws/sagemaker/Endpoints/mobilenet-test", "retentionInDays": 14}

    role = mocks.one("aws:iam/role:Role")
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "managedPolicyArns" not in role
    # The role is auto-named (model-role-...): its description is what ties it to its endpoint in the IAM console.
    assert role["description"] == "SageMaker execution role of endpoint mobilenet-test"
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    # The current artifact and the previous one (an update's old config still cold-starts from it) are readable.
    [read] = [s for s in policy["Statement"] if s["Sid"] == "ReadModelArtifact"]
    assert read["Resource"] == "arn:aws:s3:::model-bucket-a1b2c3/models/*" and key.startswith("models/")
    assert policy == json.loads(
        policies.sagemaker_execution_policy(
            partition="aws",
            region=REGION,
            account_id=ACCOUNT,
            registry_id=DLC_ACCOUNT,
            repository="pytorch-inference",
            bucket="model-bucket-a1b2c3",
            endpoint_name="mobilenet-test",
        )
    )

    smoke = mocks.one(DYNAMIC, "model-smoke-check")
    assert smoke["endpoint_name"] == "mobilenet-test"
    assert smoke["log_group"] == "/aws/sagemaker/Endpoints/mobilenet-test"
    assert smoke["trigger"] == "model-config-a1b2c3"
    assert smoke["region"] == REGION


def test_serverless_endpoint_prod_options(mocks: RecordingMocks, tmp_path: Path) -> None:
    args = endpoint_args(
        tmp_path, memory_size_mb=6144, max_concurrency=10, provisioned_concurrency=3, kms_key_arn=KMS, smoke_check=False
    )
    settle(lambda: ServerlessEndpoint("model", args).endpoint_name)
    serverless = mocks.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")["productionVariants"][0]
    assert serverless["serverlessConfig"] == {"memorySizeInMb": 6144, "maxConcurrency": 10, "provisionedConcurrency": 3}
    sse = mocks.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KMS}
    assert sse["rules"][0]["bucketKeyEnabled"] is True
    obj = mocks.one("aws:s3/bucketObjectv2:BucketObjectv2")
    assert (obj["serverSideEncryption"], obj["kmsKeyId"]) == ("aws:kms", KMS)
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    (kms,) = (st for st in policy["Statement"] if st["Sid"] == "DecryptWithStackKey")
    assert (kms["Action"], kms["Resource"]) == ("kms:Decrypt", KMS)
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    assert (DYNAMIC, "model-smoke-check") not in mocks.resources


def test_new_artifact_gives_new_model_inputs_but_same_endpoint_name(mocks: RecordingMocks, tmp_path: Path) -> None:
    first = endpoint_args(tmp_path / "a")
    settle(lambda: ServerlessEndpoint("model", first).endpoint_name)
    url_a = mocks.one("aws:sagemaker/model:Model")["primaryContainer"]["modelDataUrl"]
    second_artifact = tmp_path / "b.tar.gz"
    second_artifact.write_bytes(first.artifact_path.read_bytes() + b"\0")
    import hashlib

    second = endpoint_args(
        tmp_path / "a",
        artifact_path=second_artifact,
        artifact_sha256=hashlib.sha256(second_artifact.read_bytes()).hexdigest(),
    )
    fresh = RecordingMocks()
    pulumi.runtime.set_mocks(fresh, project="mobilenet-serverless", stack="dev", preview=False)
    settle(lambda: ServerlessEndpoint("model", second).endpoint_name)
    url_b = fresh.one("aws:sagemaker/model:Model")["primaryContainer"]["modelDataUrl"]
    assert url_a != url_b  # ModelDataUrl is a replace-trigger of aws.sagemaker.Model
    assert fresh.one("aws:sagemaker/endpoint:Endpoint")["name"] == "mobilenet-test"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"endpoint_name": "bad_name"}, "endpoint_name"),
        ({"endpoint_name": "a" + "-b" * 40}, "endpoint_name"),
        # None (Settings.endpoint_name when a stack sets none, handed on as it is) is refused naming the field, not
        # met by a TypeError from re.
        ({"endpoint_name": None}, "endpoint_name"),
        ({"artifact_sha256": "xyz"}, "artifact_sha256"),
        ({"artifact_sha256": None}, "artifact_sha256"),
        ({"artifact_sha256": "a" * 64 + "\n"}, "artifact_sha256"),
        # One digit short (a hash cut when pasted) passed here and failed in artifact_key, after the bucket and its
        # guards were declared: refused before any resource, naming the field.
        ({"artifact_sha256": "a" * 63}, "artifact_sha256"),
        # Upper-case hex (PowerShell's Get-FileHash prints it) would pass here and fail in artifact_key, after the
        # bucket and its policy were declared: refused before any resource.
        ({"artifact_sha256": "A" * 64}, "artifact_sha256"),
        ({"artifact_path": Path("/nonexistent/model.tar.gz")}, "artifact_path"),
        ({"image_tag": ""}, "image_tag"),
        ({"image_tag": "2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"}, "image_tag"),  # serverless has no GPU
        ({"image_tag": "2.6.0-cpu-py312-ec2"}, "image_tag"),  # no SageMaker toolkit in the EC2 flavour
        ({"memory_size_mb": 1500}, "memory_size_mb"),
        ({"memory_size_mb": 512}, "memory_size_mb"),  # below serverless's 1024
        ({"memory_size_mb": 7168}, "memory_size_mb"),  # above its 6144
        ({"max_concurrency": 0}, "max_concurrency"),
        # Below 0 the default provisioned_concurrency, 0, exceeds it too: the fault is max_concurrency's, named first.
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"max_concurrency": 201}, "max_concurrency"),
        ({"provisioned_concurrency": 6}, "provisioned_concurrency"),
        ({"provisioned_concurrency": -1}, "provisioned_concurrency"),
        ({"log_retention_days": 2}, "log_retention_days"),
        # Not an int: a string or None was a TypeError from the comparison, naming no field, and True (an int, == 1)
        # passed as 1 slot or 1 day, where the settings refuse `true` for a number; 2.5 slots would reach SageMaker.
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"max_concurrency": "5"}, "max_concurrency"),
        ({"max_concurrency": None}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"provisioned_concurrency": None}, "provisioned_concurrency"),
        ({"provisioned_concurrency": True}, "provisioned_concurrency"),
        ({"log_retention_days": True}, "log_retention_days"),
        ({"memory_size_mb": 2048.0}, "memory_size_mb"),  # == 2048, so `in` took it: SageMaker's field is an integer
        ({"memory_size_mb": "2048"}, "memory_size_mb"),
        ({"kms_key_arn": "alias/my-key"}, "kms_key_arn"),
        ({"kms_key_arn": KMS + "\n"}, "kms_key_arn"),
        ({"kms_key_arn": ""}, "kms_key_arn"),  # neither a key nor None: it would deploy with no key, and no error
    ],
)
def test_serverless_endpoint_args_are_validated(tmp_path: Path, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ServerlessEndpointArgsError, match=rf"ServerlessEndpointArgs\.{field} = "):
        endpoint_args(tmp_path, **overrides).validate()


def test_serverless_endpoint_log_group_name_is_the_log_groups_own_output(mocks: RecordingMocks, tmp_path: Path) -> None:
    """log_group_name is the LogGroup's name as deployed, so whatever reads it waits for the group: the name computed
    from the endpoint's, resolved at once, passed every test, though an export or subscription built on it would be
    declared before the group exists, or after its create failed."""

    def declare() -> pulumi.Output[list[str]]:
        name = ServerlessEndpoint("model", endpoint_args(tmp_path, smoke_check=False)).log_group_name
        return resources_behind(name)

    assert settle(declare) == ["model-log-group"]


def test_an_endpoint_is_named_as_given_whatever_its_case(mocks: RecordingMocks, tmp_path: Path) -> None:
    """SageMaker takes upper-case letters in an endpoint name, and the log group, the role's log grant and the proxy's
    ENDPOINT_NAME all follow the name as given: an endpoint named otherwise (lower-cased) passed every test, as every
    name in them was lower case, though it would log to a group of another name, undeclared and not granted."""
    args = endpoint_args(tmp_path, endpoint_name="MobileNet-Test", smoke_check=False)
    name = settle(lambda: ServerlessEndpoint("model", args).endpoint_name)
    assert name == mocks.one("aws:sagemaker/endpoint:Endpoint")["name"] == "MobileNet-Test"
    assert mocks.one("aws:cloudwatch/logGroup:LogGroup")["name"] == "/aws/sagemaker/Endpoints/MobileNet-Test"


ENDPOINT_NAME_RULE = "1..63 chars of [a-zA-Z0-9-], alphanumeric at both ends"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"endpoint_name": "bad_name"}, "endpoint_name = 'bad_name' is invalid: " + ENDPOINT_NAME_RULE),
        # Empty is no name: without it the model, its role and its log group were declared for an endpoint of none.
        ({"endpoint_name": ""}, "endpoint_name = '' is invalid: " + ENDPOINT_NAME_RULE),
        # Only [a-zA-Z0-9-], but SageMaker takes no hyphen at either end: the message says so.
        ({"endpoint_name": "mobilenet-"}, "endpoint_name = 'mobilenet-' is invalid: " + ENDPOINT_NAME_RULE),
        ({"artifact_sha256": "A" * 64}, f"artifact_sha256 = {'A' * 64!r} is invalid: 64 lower-case hex digits"),
        ({"memory_size_mb": 1500}, "memory_size_mb = 1500 is invalid: one of (1024, 2048, 3072, 4096, 5120, 6144)"),
        ({"max_concurrency": 201}, "max_concurrency = 201 is invalid: 1..200"),
        ({"provisioned_concurrency": 6}, "provisioned_concurrency = 6 is invalid: 0..max_concurrency"),
        ({"log_retention_days": 2}, "log_retention_days = 2 is invalid: a CloudWatch retention value"),
        # An alias names a key too: the message says why this one is refused (the grants need the key's own ARN).
        (
            {"kms_key_arn": "alias/my-key"},
            "kms_key_arn = 'alias/my-key' is invalid: a KMS key ARN (not an alias), or None",
        ),
        # None is allowed too (no topic: the alarms show in the console only), and the message says so.
        (
            {"alarm_topic_arn": "ops-alerts"},
            "alarm_topic_arn = 'ops-alerts' is invalid: an SNS topic ARN "
            "arn:<partition>:sns:<region>:<account>:<topic>, or None",
        ),
    ],
)
def test_serverless_endpoint_args_say_what_a_bad_value_must_be(
    tmp_path: Path, overrides: dict[str, Any], says: str
) -> None:
    """The message is all a caller of the component gets: the field, its value, and the values AWS takes. Each said
    less (a range or the memory sizes left out, "a KMS key ARN" without why an alias is not one) and passed every
    test, which matched the field alone."""
    with pytest.raises(ServerlessEndpointArgsError) as err:
        endpoint_args(tmp_path, **overrides).validate()
    assert str(err.value) == f"ServerlessEndpointArgs.{says}"


def test_a_directory_is_no_artifact(tmp_path: Path) -> None:
    # exists() would take it, and the upload would fail in the engine, after the bucket was created.
    with pytest.raises(
        ServerlessEndpointArgsError, match=r"ServerlessEndpointArgs\.artifact_path = .* not an existing file"
    ):
        endpoint_args(tmp_path, artifact_path=tmp_path).validate()


def test_a_missing_artifact_names_what_builds_one_not_only_make_model(tmp_path: Path) -> None:
    """It said "an existing model.tar.gz (run `make model`)": for a mistyped path that builds model/dist/model.tar.gz
    and leaves the path as wrong, and a program that copied components/ alone (components/__init__.py) has no
    Makefile. The message names the field, the path, the builder, and `make model` as this repository's way."""
    missing = tmp_path / "kept" / "deployed.tar.gz"
    with pytest.raises(ServerlessEndpointArgsError) as err:
        endpoint_args(tmp_path, artifact_path=missing).validate()
    assert str(err.value) == (
        f"ServerlessEndpointArgs.artifact_path = {missing!r} is invalid: not an existing file: name the model.tar.gz "
        "that model/package.py builds (in this repository, `make model` writes model/dist/model.tar.gz)"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        # SageMaker Serverless takes a MaxConcurrency of 1..200, and a ProvisionedConcurrency up to it.
        {"max_concurrency": 1},
        {"max_concurrency": 200},
        {"max_concurrency": 200, "provisioned_concurrency": 200},
        {"max_concurrency": 5, "provisioned_concurrency": 5},
        # Serverless memory sizes: 1024..6144 MB in 1 GB steps, the smallest and the largest.
        {"memory_size_mb": 1024},
        {"memory_size_mb": 6144},
    ],
)
def test_serverless_endpoint_args_accept_the_limits_aws_accepts(tmp_path: Path, overrides: dict[str, Any]) -> None:
    endpoint_args(tmp_path, **overrides).validate()


def test_an_artifact_sha256_that_is_not_the_artifacts_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ServerlessEndpointArgsError, match=r"ServerlessEndpointArgs\.artifact_sha256 = "):
        endpoint_args(tmp_path, artifact_sha256="a" * 64).validate()


@pytest.mark.parametrize("smoke_check", ["false", 0])
def test_smoke_check_must_be_a_bool_as_alarms_must(tmp_path: Path, smoke_check: Any) -> None:
    with pytest.raises(ServerlessEndpointArgsError, match=r"ServerlessEndpointArgs\.smoke_check = "):
        endpoint_args(tmp_path, smoke_check=smoke_check).validate()


# ---------------------------------------------------------------------------------- InferenceApi


def test_inference_api_resources(mocks: RecordingMocks) -> None:
    args = api_args()
    api_url, function_name = settle(
        lambda: pulumi.Output.all((a := InferenceApi("api", args)).api_url, a.function_name)
    )
    assert api_url == API_ENDPOINT and function_name == "mobilenet-test-proxy"

    fn = mocks.one("aws:lambda/function:Function")
    assert fn["name"] == "mobilenet-test-proxy"
    assert fn["runtime"] == "python3.13"
    assert fn["architectures"] == ["arm64"]
    assert fn["memorySize"] == 256 and fn["timeout"] == 29
    assert fn["handler"] == "handlers.inference_proxy.handler"
    # No reservation: the function draws on the account's unreserved concurrency (the throttles alarm's runbook). A
    # reservation of 0 would throttle every invocation, and the API would never answer a prediction.
    assert fn.get("reservedConcurrentExecutions") is None
    assert fn["environment"]["variables"] == {
        "ENDPOINT_NAME": "mobilenet-test",
        "ALLOWED_ORIGINS": "https://d1.cloudfront.net,http://localhost:8000",
        "MAX_IMAGE_BYTES": "4194304",
        "POWERTOOLS_SERVICE_NAME": "inference-proxy",
        "POWERTOOLS_METRICS_NAMESPACE": "MobilenetServerless",
        "LOG_LEVEL": "INFO",
    }
    assert "kmsKeyArn" not in fn
    archive = fn["code"]
    assert set(archive.assets) == set(args.code_files)
    assert "handlers/inference_proxy.py" in archive.assets
    assert all(Path(asset.path).is_file() for asset in archive.assets.values())

    groups = mocks.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert groups["api-log-group"] == {"name": "/aws/lambda/mobilenet-test-proxy", "retentionInDays": 14}
    assert groups["api-access-logs"]["retentionInDays"] == 14

    role = mocks.one("aws:iam/role:Role")
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    # CreateFunction takes the role's ARN: its id (the name) passed every other test here (a mutation audit's #74).
    assert fn["role"] == f"arn:aws:iam::{ACCOUNT}:role/api-role-a1b2c3"  # the mocks' auto-name for api-role
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    invoke = [s for s in policy["Statement"] if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert invoke == [
        {
            "Sid": "InvokeModelEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:InvokeEndpoint",
            "Resource": ENDPOINT_ARN,
        }
    ]
    logs = next(s for s in policy["Statement"] if s["Sid"] == "FunctionLogs")
    assert logs["Resource"][0] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/mobilenet-test-proxy"

    api = mocks.one("aws:apigatewayv2/api:Api")
    assert api["protocolType"] == "HTTP"
    assert api["description"] == "MobileNet V2 classifier: POST /predict"  # how the console's list of APIs names it
    # The API has no custom domain: its execute-api endpoint (api_url, the one config.js names) is the only way in.
    assert api.get("disableExecuteApiEndpoint") in (None, False)
    assert "corsConfiguration" not in api
    cors = mocks.one(DYNAMIC, "api-cors")
    assert (cors["api_id"], cors["region"], cors["origins"]) == (
        "abc123defg",
        REGION,
        ["https://d1.cloudfront.net", "http://localhost:8000"],
    )

    integration = mocks.one("aws:apigatewayv2/integration:Integration")
    assert integration["integrationType"] == "AWS_PROXY"
    assert integration["integrationMethod"] == "POST"  # Lambda's Invoke API; any other method fails every call
    assert integration["payloadFormatVersion"] == "2.0"
    assert integration["timeoutMilliseconds"] == 29000
    assert integration["integrationUri"].endswith(":function:mobilenet-test-proxy/invocations")
    route = mocks.one("aws:apigatewayv2/route:Route")
    assert route["routeKey"] == "POST /predict"
    assert route["target"] == "integrations/api-integration-id"

    stage = mocks.one("aws:apigatewayv2/stage:Stage")
    assert stage["name"] == "$default" and stage["autoDeploy"] is True
    assert stage["defaultRouteSettings"] == {"throttlingRateLimit": 10, "throttlingBurstLimit": 20}
    assert stage["accessLogSettings"]["destinationArn"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/apigateway/mobilenet-test-proxy-access"
    )
    assert json.loads(stage["accessLogSettings"]["format"]) == json.loads(policies.access_log_format())

    permission = mocks.one("aws:lambda/permission:Permission")
    assert permission == {
        "action": "lambda:InvokeFunction",
        "function": "mobilenet-test-proxy",
        "principal": "apigateway.amazonaws.com",
        "sourceArn": f"{EXECUTION_ARN}/*/POST/predict",
    }


def test_inference_api_function_name_is_the_functions_own_output(mocks: RecordingMocks) -> None:
    """function_name (the proxy_function_name export) is the Function's name as deployed, so whatever reads it waits
    for the function: the name given in the args, resolved at once, passed every test, though a resource or export
    built on it would be declared before the function exists, or after its create failed."""

    def declare() -> pulumi.Output[list[str]]:
        name = InferenceApi("api", api_args()).function_name
        return resources_behind(name)

    assert settle(declare) == ["api-function"]


def test_the_permission_and_the_stage_wait_for_the_function_and_the_log_group_they_name(mocks: RecordingMocks) -> None:
    """AWS refuses a permission on a function that does not exist yet (ResourceNotFoundException) and a stage whose
    access logs go to a group that does not (BadRequestException): each names its target through the target's output.
    The function's name as given in the args, or the group's ARN built from its name, passed every test (the values
    are the same), though on a first deploy the permission or the stage would then race the resource it names."""
    props: dict[str, Any] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        props[args.name] = args.props

    def declare() -> pulumi.Output[list[list[str]]]:
        pulumi.runtime.register_stack_transformation(record)
        InferenceApi("api", api_args())
        permission_function = props["api-invoke-permission"]["function"]
        stage_destination = props["api-stage"]["access_log_settings"].destination_arn
        return pulumi.Output.all(resources_behind(permission_function), resources_behind(stage_destination))

    assert settle(declare) == [["api-function"], ["api-access-logs"]]


def test_the_stages_access_log_format_fits_the_http_apis_template_limits(mocks: RecordingMocks) -> None:
    """What AWS takes as an HTTP API stage's access log format: at most 3 KB by the quota ("Access log template size",
    not adjustable: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html), and at most
    1,024 characters by the API's own model (apigatewayv2 AccessLogSettings.Format is StringWithLengthBetween1And1024,
    botocore/data/apigatewayv2/2018-11-29/service-2.json), holding $context.requestId ("The format must include at
    least $context.requestId", the same shape's documentation). Held to the stricter of the two lengths, as the stage
    receives the format."""
    settle(lambda: InferenceApi("api", api_args()).api_url)
    log_format = mocks.one("aws:apigatewayv2/stage:Stage")["accessLogSettings"]["format"]
    assert "$context.requestId" in log_format
    assert "\n" not in log_format  # "a single line format"
    assert 1 <= len(log_format) <= 1024


def test_inference_api_with_kms_and_x86(mocks: RecordingMocks) -> None:
    args = api_args(
        kms_key_arn=KMS,
        architecture="x86_64",
        throttle_rate_limit=50,
        throttle_burst_limit=60,
        memory_size_mb=1024,
        log_level="ERROR",
    )
    settle(lambda: InferenceApi("api", args).api_url)
    fn = mocks.one("aws:lambda/function:Function")
    assert fn["kmsKeyArn"] == KMS and fn["architectures"] == ["x86_64"]
    assert fn["memorySize"] == 1024 and fn["environment"]["variables"]["LOG_LEVEL"] == "ERROR"
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    assert {"Sid": "DecryptWithStackKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": KMS} in policy[
        "Statement"
    ]
    # Each limit its own setting: the burst is not derived from the rate (every other case had burst = 2 x rate).
    assert mocks.one("aws:apigatewayv2/stage:Stage")["defaultRouteSettings"] == {
        "throttlingRateLimit": 50,
        "throttlingBurstLimit": 60,
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"function_name": "x" * 65}, "function_name"),
        ({"function_name": "proxy\n"}, "function_name"),
        ({"function_name": "proxy.v2"}, "function_name"),  # Lambda takes letters, digits, hyphens, underscores only
        # Empty is no name (Lambda's minimum is 1): accepted, the role, its policy and a log group "/aws/lambda/" were
        # declared for it, and CreateFunction failed after them. None was a TypeError from re, naming no field.
        ({"function_name": ""}, "function_name"),
        ({"function_name": None}, "function_name"),
        ({"code_files": {}}, "code_files"),
        ({"code_files": {"handlers/other.py": ROOT / "handlers" / "__init__.py"}}, "code_files"),
        ({"code_files": {"handlers/inference_proxy.py": Path("/nonexistent.py")}}, "code_files"),
        # exists() would take a directory: Pulumi would fail to archive it in the engine, after the role was created.
        ({"code_files": {"handlers/inference_proxy.py": ROOT / "handlers"}}, "code_files"),
        ({"architecture": "arm"}, "architecture"),
        ({"memory_size_mb": 127}, "memory_size_mb"),
        ({"memory_size_mb": 10241}, "memory_size_mb"),
        ({"log_retention_days": 2}, "log_retention_days"),
        ({"throttle_rate_limit": 0}, "throttle_rate_limit"),
        ({"throttle_rate_limit": 10001}, "throttle_rate_limit"),
        ({"throttle_burst_limit": 0}, "throttle_burst_limit"),
        ({"throttle_burst_limit": 9999}, "throttle_burst_limit"),
        # Not an int, as the settings hand them (and ServerlessEndpointArgs asks): None or "256" failed in a comparison
        # naming no field, True passed as 1 request a second, and 256.5 MB reached Lambda, which takes whole MB.
        ({"memory_size_mb": "256"}, "memory_size_mb"),
        ({"memory_size_mb": 256.5}, "memory_size_mb"),
        ({"throttle_rate_limit": True}, "throttle_rate_limit"),
        ({"throttle_rate_limit": None}, "throttle_rate_limit"),
        ({"throttle_burst_limit": 20.0}, "throttle_burst_limit"),
        ({"log_retention_days": 14.0}, "log_retention_days"),
        ({"extra_origins": ("*",)}, "extra_origins"),
        ({"log_level": "TRACE"}, "log_level"),
        ({"log_level": "info"}, "log_level"),  # upper case only, as the stack's proxyLogLevel and Lambda's own setting
        ({"kms_key_arn": "arn:aws:kms:us-east-1:123456789012:alias/my-key"}, "kms_key_arn"),
        ({"kms_key_arn": ""}, "kms_key_arn"),  # neither a key nor None: the function would deploy without a key
    ],
)
def test_inference_api_args_are_validated(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InferenceApiArgsError, match=rf"InferenceApiArgs\.{field} = "):
        api_args(**overrides).validate()


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"architecture": "arm"}, "architecture = 'arm' is invalid: one of ('arm64', 'x86_64')"),
        # No files at all: the bundle is missing, not only its handler module.
        ({"code_files": {}}, "code_files = {} is invalid: a non-empty mapping of archive path -> file"),
        ({"memory_size_mb": 10241}, "memory_size_mb = 10241 is invalid: 128..10240"),
        ({"throttle_rate_limit": 10001}, "throttle_rate_limit = 10001 is invalid: 1..10000"),
        ({"throttle_burst_limit": 5001}, "throttle_burst_limit = 5001 is invalid: 1..5000"),
        ({"function_name": "proxy.v2"}, "function_name = 'proxy.v2' is invalid: 1..64 chars of [A-Za-z0-9_-]"),
        ({"log_retention_days": 2}, "log_retention_days = 2 is invalid: a CloudWatch retention value"),
        # In lower case, the level a caller meant is there: the message says which spelling Lambda takes.
        ({"log_level": "info"}, "log_level = 'info' is invalid: one of DEBUG, INFO, WARNING, ERROR"),
        # An alias names a key too: the message says why this one is refused (the grants need the key's own ARN).
        (
            {"kms_key_arn": "arn:aws:kms:us-east-1:123456789012:alias/my-key"},
            "kms_key_arn = 'arn:aws:kms:us-east-1:123456789012:alias/my-key' is invalid: a KMS key ARN (not an alias), "
            "or None",
        ),
    ],
)
def test_inference_api_args_say_what_a_bad_value_must_be(overrides: dict[str, Any], says: str) -> None:
    """The message is all a caller of the component gets: the field, its value, and the values AWS takes. A range
    named wrong (the burst's as the rate's 1..10000) or not at all passed every test, as did a wrong "x86"."""
    with pytest.raises(InferenceApiArgsError) as err:
        api_args(**overrides).validate()
    assert str(err.value) == f"InferenceApiArgs.{says}"


def test_an_endpoint_name_given_as_text_is_validated_naming_the_field() -> None:
    with pytest.raises(InferenceApiArgsError, match=r"InferenceApiArgs\.endpoint_name = 'bad_name' is invalid"):
        api_args(endpoint_name="bad_name").validate()


@pytest.mark.parametrize("name", [None, 7])
def test_an_endpoint_name_that_is_not_text_is_refused_naming_the_field(name: Any) -> None:
    with pytest.raises(InferenceApiArgsError, match=rf"InferenceApiArgs\.endpoint_name = {name!r} is invalid"):
        api_args(endpoint_name=name).validate()


def test_site_origins_that_resolve_later_are_left_to_when_they_do() -> None:
    """A list holding an Output (another component's URL) is not judged now: its value is not known yet."""
    api_args(site_origins=[pulumi.Output.from_input("https://d1.cloudfront.net")]).validate()
    api_args(site_origins=["https://d1.cloudfront.net"]).validate()


def test_a_site_file_that_cannot_be_read_is_named_in_one_line(tmp_path: Path) -> None:
    """One that went away since site_files listed it (or that the deployer may not read: root reads any, so not
    tried here) stops the program naming it, as a PolicyInputError (a user error: no traceback), not an OSError."""
    www = make_www(tmp_path / "www")
    files = policies.site_files(www)
    (www / "index.html").unlink()
    # The reason alone after the name: OSError's own text would name the file a second time ("[Errno 2] ...: '...'").
    with pytest.raises(
        policies.PolicyInputError,
        match=r"^www file '.*/index\.html' cannot be read: No such file or directory$",
    ):
        policies.read_site_files(files)


def test_site_origins_given_as_a_list_are_validated_naming_the_field() -> None:
    with pytest.raises(InferenceApiArgsError, match=r"InferenceApiArgs\.site_origins = \['d1\.cloudfront\.net'\]"):
        api_args(site_origins=["d1.cloudfront.net"]).validate()
    # Every one, not the first alone: a custom domain's origin comes first (policies.site_origins).
    with pytest.raises(InferenceApiArgsError) as err:
        api_args(site_origins=["https://app.example.com", "https://D1.cloudfront.net"]).validate()
    assert str(err.value).endswith(
        "is invalid: allowed the origin as a browser sends it, 'https://d1.cloudfront.net' (lower case, punycode, "
        "no default port)"
    )


@pytest.mark.parametrize("value", ["https://d1.cloudfront.net", None, {"https://d1.cloudfront.net"}])
def test_site_origins_that_are_not_a_list_are_told_so(value: Any) -> None:
    """One origin as text (each of its characters was judged an origin), none, or a set (in no order: the CORS list
    and ALLOWED_ORIGINS would change from run to run) is not a list: the message says so."""
    with pytest.raises(InferenceApiArgsError) as err:
        api_args(site_origins=value).validate()
    assert str(err.value) == f"InferenceApiArgs.site_origins = {value!r} is invalid: a list of origins"


@pytest.mark.parametrize(("field", "value"), [("site_origins", 5), ("extra_origins", None), ("extra_origins", 5)])
def test_origins_that_are_no_list_at_all_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InferenceApiArgsError, match=rf"InferenceApiArgs\.{field} = {value!r} is invalid"):
        api_args(**{field: value}).validate()


def test_an_extra_origin_a_browser_never_sends_is_refused_naming_the_field() -> None:
    with pytest.raises(InferenceApiArgsError, match=r"InferenceApiArgs\.extra_origins = "):
        api_args(extra_origins=("https://app.example.com:443",)).validate()


def test_missing_code_files_are_each_named() -> None:
    """The message is all a caller gets to fix a bundle with: it names every missing entry (up to five), not the
    first alone, so one run shows what a wrong directory left out. The five are the first in path order, whatever the
    mapping's order: in this one's, unsorted, they would be f, e, d, c and b."""
    handler = ROOT / "handlers" / "inference_proxy.py"
    gone = {f"handlers/{n}.py": Path(f"/nonexistent/{n}.py") for n in ("f", "e", "d", "c", "b", "a")}
    with pytest.raises(InferenceApiArgsError) as err:
        api_args(code_files={"handlers/inference_proxy.py": handler, **gone}).validate()
    names = ["handlers/a.py", "handlers/b.py", "handlers/c.py", "handlers/d.py", "handlers/e.py"]
    assert str(err.value).endswith(f"is invalid: entries must be existing files; missing: {names}")


def test_code_files_without_the_handler_name_the_module_lambda_loads() -> None:
    handler_less = {"handlers/other.py": ROOT / "handlers" / "__init__.py"}
    with pytest.raises(InferenceApiArgsError) as err:
        api_args(code_files=handler_less).validate()
    assert str(err.value).endswith("is invalid: must contain the handler module handlers/inference_proxy.py")


def test_a_bad_extra_origin_is_reported_as_the_args_error_alone() -> None:
    """The policy module's error is in the message: chained under it as its cause, a caller (or `pulumi up`'s
    traceback) saw the same complaint twice, the first from a module the caller never called."""
    with pytest.raises(InferenceApiArgsError) as err:
        api_args(extra_origins=("*",)).validate()
    assert str(err.value) == (
        "InferenceApiArgs.extra_origins = ('*',) is invalid: allowed origin must be scheme://host[:port], got '*'"
    )
    assert "PolicyInputError" not in "".join(traceback.format_exception(err.value))


@pytest.mark.parametrize(
    "overrides",
    [
        # Lambda's longest name: what function_name_for makes of a 63-character endpoint name.
        {"function_name": "f" * 64},
        # Every character Lambda takes in a name, as the message names them: a program of its own that declares the
        # component (components/__init__.py) may name its function with underscores.
        {"function_name": "Proxy_v2-a"},
        {"memory_size_mb": 128},
        {"memory_size_mb": 10240},
        # An HTTP API stage may use the whole account default: 10,000 requests/s, bursts of 5,000.
        {"throttle_rate_limit": 1, "throttle_burst_limit": 1},
        {"throttle_rate_limit": 10000, "throttle_burst_limit": 5000},
    ],
)
def test_inference_api_args_accept_the_limits_aws_accepts(overrides: dict[str, Any]) -> None:
    api_args(**overrides).validate()


# ------------------------------------------------------------------------------------ StaticSite


def test_static_site_resources(mocks: RecordingMocks, tmp_path: Path) -> None:
    www = make_www(tmp_path / "www")
    (www / "config.js").write_text("window.APP_CONFIG = {};")  # a local leftover must not be uploaded
    args = StaticSiteArgs(api_url=API_ENDPOINT, www_dir=www)
    site_url, origins, dist_id = settle(
        lambda: pulumi.Output.all((s := StaticSite("site", args)).site_url, s.site_origins, s.distribution_id)
    )
    assert site_url == f"https://{CF_DOMAIN}"
    assert origins == [f"https://{CF_DOMAIN}"]
    assert dist_id == "E2EXAMPLE"

    bucket = mocks.one("aws:s3/bucket:Bucket")
    assert bucket["forceDestroy"] is True
    pab = mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(
        pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    assert mocks.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"
    }
    sse = mocks.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"

    oac = mocks.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert (oac["originAccessControlOriginType"], oac["signingBehavior"], oac["signingProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    # The consoles list OACs and distributions by these: without them, a stack's are told apart by ids alone.
    assert oac["description"] == "CloudFront reads the private site bucket"

    headers_policy = mocks.one("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy")
    # The console's list of policies shows the comment: what the policy sends, next to each stack's policy.
    assert headers_policy["comment"] == (
        "HSTS, CSP (connect-src = API origin only), nosniff, no framing, no powerful features, COOP, CORP"
    )
    headers = headers_policy["securityHeadersConfig"]
    assert headers["contentSecurityPolicy"] == {
        "contentSecurityPolicy": policies.content_security_policy(API_ENDPOINT),
        "override": True,
    }
    assert (
        "connect-src https://abc123defg.execute-api.us-east-1.amazonaws.com;"
        in headers["contentSecurityPolicy"]["contentSecurityPolicy"]
    )
    assert headers["strictTransportSecurity"] == {
        "accessControlMaxAgeSec": 63072000,
        "includeSubdomains": True,
        "preload": True,
        "override": True,
    }
    assert headers["contentTypeOptions"] == {"override": True}
    assert headers["frameOptions"] == {"frameOption": "DENY", "override": True}
    assert headers["referrerPolicy"] == {"referrerPolicy": "strict-origin-when-cross-origin", "override": True}
    # Permissions-Policy, COOP and CORP have no securityHeadersConfig field: custom headers, overriding any the origin
    # sends.
    assert headers_policy["customHeadersConfig"] == {
        "items": [
            {"header": "Permissions-Policy", "value": policies.PERMISSIONS_POLICY, "override": True},
            {"header": "Cross-Origin-Opener-Policy", "value": "same-origin", "override": True},
            {"header": "Cross-Origin-Resource-Policy", "value": "same-origin", "override": True},
        ]
    }
    # Within CloudFront's quotas on them ("Quotas on headers" in the developer guide): at most 10 custom headers per
    # policy, a name of at most 256 characters, a value of at most 1,783, and 10,240 for all names and values.
    items = headers_policy["customHeadersConfig"]["items"]
    assert len(items) <= 10
    assert all(len(item["header"]) <= 256 and len(item["value"]) <= 1783 for item in items)
    assert sum(len(item["header"]) + len(item["value"]) for item in items) <= 10240

    dist = mocks.one("aws:cloudfront/distribution:Distribution")
    assert dist["httpVersion"] == "http2and3"
    assert dist["comment"] == "mobilenet-serverless web UI"
    assert dist["defaultRootObject"] == "index.html"
    assert dist["priceClass"] == "PriceClass_100"
    assert dist["isIpv6Enabled"] is True and dist["enabled"] is True
    assert dist["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}
    assert "aliases" not in dist
    assert dist["origins"] == [
        {
            "originId": "site-bucket",
            "domainName": f"site-bucket-a1b2c3.s3.{REGION}.amazonaws.com",
            "originAccessControlId": "site-oac-id",
        }
    ]
    assert dist["restrictions"] == {"geoRestriction": {"restrictionType": "none"}}
    # CloudFront refuses a distribution whose cache behaviour targets an origin it does not have.
    behaviours = [dist["defaultCacheBehavior"], *dist["orderedCacheBehaviors"]]
    assert {b["targetOriginId"] for b in behaviours} == {o["originId"] for o in dist["origins"]}
    default = dist["defaultCacheBehavior"]
    assert default["viewerProtocolPolicy"] == "redirect-to-https"
    # GET/HEAD only: the site takes no writes, and any other method would be forwarded, OAC-signed, to the bucket.
    assert default["allowedMethods"] == default["cachedMethods"] == ["GET", "HEAD"]
    assert default["compress"] is True
    assert default["cachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"  # Managed-CachingOptimized
    assert default["responseHeadersPolicyId"] == "site-headers-id"
    [config_behavior] = dist["orderedCacheBehaviors"]
    assert config_behavior["pathPattern"] == "/config.js"
    assert config_behavior["cachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # Managed-CachingDisabled
    assert config_behavior["viewerProtocolPolicy"] == "redirect-to-https"
    assert config_behavior["responseHeadersPolicyId"] == "site-headers-id"
    assert config_behavior["allowedMethods"] == config_behavior["cachedMethods"] == ["GET", "HEAD"]
    assert config_behavior["compress"] is True

    policy = json.loads(mocks.one("aws:s3/bucketPolicy:BucketPolicy")["policy"])
    assert policy == json.loads(
        policies.site_bucket_policy(
            "arn:aws:s3:::site-bucket-a1b2c3", f"arn:aws:cloudfront::{ACCOUNT}:distribution/E2EXAMPLE"
        )
    )

    objects = {o["key"]: o for o in mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2").values()}
    assert set(objects) == {"index.html", "script.js", "style.css", "samples/cat.jpg", "config.js"}
    # Each into the site's bucket, by its name (a Bucket's id); any other name is a bucket S3 has not got.
    assert {o["bucket"] for o in objects.values()} == {"site-bucket-a1b2c3"}
    assert mocks.one("aws:s3/bucketPolicy:BucketPolicy")["bucket"] == "site-bucket-a1b2c3"
    assert objects["index.html"]["contentType"] == "text/html; charset=utf-8"
    assert objects["script.js"]["contentType"] == "application/javascript; charset=utf-8"
    assert objects["style.css"]["contentType"] == "text/css; charset=utf-8"
    assert objects["samples/cat.jpg"]["contentType"] == "image/jpeg"
    # The app shell is revalidated on every load, so a deploy shows at once and whole; photos may be reused an hour.
    for key in ("index.html", "script.js", "style.css"):
        assert objects[key]["cacheControl"] == "no-cache", key
    assert objects["samples/cat.jpg"]["cacheControl"] == "public, max-age=3600"
    assert Path(objects["index.html"]["source"].path) == www / "index.html"
    config_js = objects["config.js"]
    assert config_js["content"] == render_config_js(API_ENDPOINT)
    assert config_js["cacheControl"] == CONFIG_JS_CACHE_CONTROL
    # Spelt out rather than read from site_config: the script must run under nosniff and never be cached.
    assert config_js["contentType"] == "application/javascript; charset=utf-8"
    assert {"no-cache", "no-store"} <= {d.strip() for d in config_js["cacheControl"].split(",")}
    assert "source" not in config_js

    invalidation = mocks.one(DYNAMIC, "site-invalidation")
    assert invalidation["distribution_id"] == "E2EXAMPLE"
    assert invalidation["paths"] == ["/*"]
    assert invalidation["region"] == REGION  # the partition's CloudFront endpoint, not the deployer's default region
    expected_hash = policies.site_content_hash(
        policies.read_site_files(policies.site_files(www)), render_config_js(API_ENDPOINT)
    )
    assert invalidation["content_hash"] == expected_hash


def test_an_invalidation_declared_without_paths_invalidates_everything(mocks: RecordingMocks) -> None:
    """The default paths are the resource's inputs, not only the provider's fallback: an input left empty would be
    compared with the ["/*"] the provider records, a new invalidation on every `pulumi up`. Its invalidation_id is an
    output of the resource."""

    def declare() -> pulumi.Output[Any]:
        invalidation = CloudFrontInvalidation("inv", distribution_id="E2EXAMPLE", content_hash="a" * 64)
        return invalidation.invalidation_id

    assert settle(declare) is None  # no invalidation under the mocks, but the output exists
    assert mocks.one(DYNAMIC, "inv")["paths"] == list(policies.INVALIDATION_PATHS) == ["/*"]


def test_a_smoke_checks_top_label_is_an_output(mocks: RecordingMocks) -> None:
    """The label the probe got back is an output of the resource, as its class declares, not only a field of the
    state."""

    def declare() -> pulumi.Output[Any]:
        check = EndpointSmokeCheck("check", endpoint_name="e", region=REGION, log_group="/g", trigger="config-1")
        return check.top_label

    assert settle(declare) is None  # no probe under the mocks, but the output exists
    assert mocks.one(DYNAMIC, "check")["trigger"] == "config-1"


def test_a_symlinked_site_file_is_uploaded_with_its_keys_headers(mocks: RecordingMocks, tmp_path: Path) -> None:
    """The browser asks for the link's key, so the key sets Content-Type and Cache-Control (as it does in the
    invalidation's content hash), not the name of the file it points at: script.js linked to app.mjs is still app
    shell, revalidated on every load rather than kept an hour, and favicon.ico linked to logo.png is image/x-icon.
    style.css linked to theme.txt is a stylesheet, app shell too, not text kept an hour as its target's name says."""
    files = {"index.html": b"<p>", "app.mjs": b"run()", "logo.png": b"\x89PNG", "theme.txt": b"body{}"}
    www = make_www(tmp_path / "www", files)
    (www / "script.js").symlink_to("app.mjs")
    (www / "style.css").symlink_to("theme.txt")
    (www / "favicon.ico").symlink_to("logo.png")
    settle(lambda: StaticSite("site", StaticSiteArgs(api_url=API_ENDPOINT, www_dir=www)).site_url)
    objects = {o["key"]: o for o in mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2").values()}
    assert Path(objects["script.js"]["source"].path) == (www / "app.mjs").resolve()
    assert objects["script.js"]["contentType"] == "application/javascript; charset=utf-8"
    assert objects["script.js"]["cacheControl"] == "no-cache"
    assert objects["favicon.ico"]["contentType"] == "image/x-icon"
    assert (objects["style.css"]["contentType"], objects["style.css"]["cacheControl"]) == (
        "text/css; charset=utf-8",
        "no-cache",
    )


def test_each_site_file_is_one_object_named_after_its_whole_key(mocks: RecordingMocks, tmp_path: Path) -> None:
    """An object's logical name is its component's name and its key, path and all. A name built otherwise (the folder
    separator replaced, say) gives samples/a.jpg and samples-a.jpg one name, and changes the name of every file in a
    folder from one release to the next: Pulumi then puts the new object before deleting the old, which holds the
    same key, so the deploy ends by deleting the file it has just uploaded."""
    files = {"index.html": b"<p>", "samples/a.jpg": b"\xff\xd8a", "samples-a.jpg": b"\xff\xd8b"}
    settle(
        lambda: (
            StaticSite("site", StaticSiteArgs(api_url=API_ENDPOINT, www_dir=make_www(tmp_path / "www", files))).site_url
        )
    )
    objects = mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert {name: o["key"] for name, o in objects.items()} == {f"site-file-{key}": key for key in (*files, "config.js")}


class DeclarationCountingMocks(RecordingMocks):
    """The mocks, also listing every (type, name) declared: they take a second declaration of one name, recorded over
    the first, where Pulumi's engine refuses it ("Duplicate resource URN")."""

    def __init__(self) -> None:
        super().__init__()
        self.declared: list[tuple[str, str]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.declared.append((args.typ, args.name))
        return super().new_resource(args)


def test_each_site_file_is_declared_once(tmp_path: Path) -> None:
    """index.html goes up on its own, after every file it may load. Declared with the other files as well, it is two
    resources of one name: `pulumi up` stops on the duplicate URN, and the site is never deployed."""
    mocks = DeclarationCountingMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)
    www = make_www(tmp_path / "www")
    settle(lambda: StaticSite("site", StaticSiteArgs(api_url=API_ENDPOINT, www_dir=www)).site_url)
    objects = [name for typ, name in mocks.declared if typ == "aws:s3/bucketObjectv2:BucketObjectv2"]
    keys = ("config.js", "index.html", "samples/cat.jpg", "script.js", "style.css")
    assert sorted(objects) == [f"site-file-{key}" for key in keys]
    assert len(set(mocks.declared)) == len(mocks.declared)


def test_static_site_custom_domain(mocks: RecordingMocks, tmp_path: Path) -> None:
    args = StaticSiteArgs(
        api_url=API_ENDPOINT,
        www_dir=make_www(tmp_path / "www"),
        price_class="PriceClass_All",
        custom_domain="classify.example.com",
        certificate_arn=CERT,
    )
    site_url, origins = settle(lambda: pulumi.Output.all((s := StaticSite("site", args)).site_url, s.site_origins))
    assert site_url == "https://classify.example.com"
    assert origins == ["https://classify.example.com", f"https://{CF_DOMAIN}"]
    dist = mocks.one("aws:cloudfront/distribution:Distribution")
    assert dist["aliases"] == ["classify.example.com"]
    assert dist["priceClass"] == "PriceClass_All"
    assert dist["viewerCertificate"] == {
        "acmCertificateArn": CERT,
        "sslSupportMethod": "sni-only",
        "minimumProtocolVersion": "TLSv1.2_2021",
    }


def test_static_site_names_fit_cloudfront_with_the_longest_bucket_name(mocks: RecordingMocks, tmp_path: Path) -> None:
    """The OAC and the response headers policy are named after the bucket, which S3 lets be 63 characters long;
    CloudFront takes at most 64 for an OAC's name and 128 for a policy's, and refuses a longer one."""
    name = "s" * 49  # the mocks name its bucket f"{name}-bucket-a1b2c3": 63 characters
    settle(lambda: StaticSite(name, StaticSiteArgs(api_url=API_ENDPOINT, www_dir=make_www(tmp_path / "www"))).site_url)
    bucket = f"{name}-bucket-a1b2c3"
    assert len(bucket) == 63
    oac = mocks.one("aws:cloudfront/originAccessControl:OriginAccessControl")["name"]
    headers = mocks.one("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy")["name"]
    assert len(oac) <= 64 and len(headers) <= 128
    assert oac.startswith(bucket) and headers.startswith(bucket)  # still one per bucket, so one per site


def test_static_site_comments_fit_cloudfront(mocks: RecordingMocks, tmp_path: Path) -> None:
    """CloudFront takes at most 128 characters for a response headers policy's comment and for a distribution's ("The
    comment cannot be longer than 128 characters": ResponseHeadersPolicyConfig.Comment and DistributionConfig.Comment
    in botocore/data/cloudfront/2020-05-31/service-2.json), and refuses a longer one. The policy's comment lists what
    it sends, so it grows with each header added; as the resources receive them, custom domain or not."""
    for name, domain in (("site", None), ("custom", "classify.example.com")):
        args = StaticSiteArgs(
            api_url=API_ENDPOINT,
            www_dir=make_www(tmp_path / name / "www"),
            custom_domain=domain,
            certificate_arn=CERT if domain else None,
        )
        settle(lambda args=args, name=name: StaticSite(name, args).site_url)
    policies_ = mocks.of_type("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy").values()
    distributions = mocks.of_type("aws:cloudfront/distribution:Distribution").values()
    comments = [p["comment"] for p in policies_] + [d["comment"] for d in distributions]
    assert len(comments) == 4 and all(comments)
    assert all(len(comment) <= 128 for comment in comments), [len(c) for c in comments]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"www_dir": Path("/nonexistent-www")}, "www_dir"),
        ({"www_dir": Path(__file__)}, "www_dir"),  # a file: site_files would fail later without naming the field
        ({"price_class": "PriceClass_1"}, "price_class"),
        ({"custom_domain": "a.example.com"}, "certificate_arn"),
        ({"certificate_arn": CERT}, "certificate_arn"),  # a certificate for no domain would be silently unused
        ({"custom_domain": "", "certificate_arn": CERT}, "certificate_arn"),  # an empty domain is no domain either
        (
            {"custom_domain": "a.example.com", "certificate_arn": CERT.replace("us-east-1", "eu-west-1")},
            "certificate_arn",
        ),
        ({"custom_domain": "App.Example.com", "certificate_arn": CERT}, "custom_domain"),
        ({"custom_domain": "https://a.example.com", "certificate_arn": CERT}, "custom_domain"),
        ({"custom_domain": "a.example.com\n", "certificate_arn": CERT}, "custom_domain"),
        ({"custom_domain": "a.example.com", "certificate_arn": CERT + "\n"}, "certificate_arn"),
    ],
)
def test_static_site_args_are_validated(tmp_path: Path, overrides: dict[str, Any], field: str) -> None:
    base = {"api_url": API_ENDPOINT, "www_dir": make_www(tmp_path / "www")}
    with pytest.raises(StaticSiteArgsError, match=rf"StaticSiteArgs\.{field} = "):
        StaticSiteArgs(**{**base, **overrides}).validate()


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (
            {"www_dir": Path("/nonexistent-www")},
            "www_dir = PosixPath('/nonexistent-www') is invalid: an existing directory",
        ),
        (
            {"price_class": "PriceClass_1"},
            "price_class = 'PriceClass_1' is invalid: one of ('PriceClass_100', 'PriceClass_200', 'PriceClass_All')",
        ),
        # A certificate from another region is a real ACM ARN: the message says which region CloudFront takes.
        (
            {"custom_domain": "a.example.com", "certificate_arn": CERT.replace("us-east-1", "eu-west-1")},
            f"certificate_arn = {CERT.replace('us-east-1', 'eu-west-1')!r} is invalid: "
            "an ACM certificate ARN in us-east-1",
        ),
        # A domain without its certificate: the message says the two go together.
        (
            {"custom_domain": "a.example.com"},
            "certificate_arn = None is invalid: set exactly when custom_domain is set",
        ),
        # Capitals make a DNS name all the same: the message says the field takes lower case only.
        (
            {"custom_domain": "App.Example.com", "certificate_arn": CERT},
            "custom_domain = 'App.Example.com' is invalid: a lower-case DNS name",
        ),
        # The value's repr, so a trailing newline (a value read from a file) shows.
        (
            {"custom_domain": "a.example.com\n", "certificate_arn": CERT},
            "custom_domain = 'a.example.com\\n' is invalid: a lower-case DNS name",
        ),
    ],
)
def test_static_site_args_say_what_a_bad_value_must_be(tmp_path: Path, overrides: dict[str, Any], says: str) -> None:
    """The message is all a caller of the component gets: the field, its value as written, and what AWS takes. The
    price classes, the region and lower case left out, or the value printed without its repr, passed every test."""
    base = {"api_url": API_ENDPOINT, "www_dir": make_www(tmp_path / "www")}
    with pytest.raises(StaticSiteArgsError) as err:
        StaticSiteArgs(**{**base, **overrides}).validate()
    assert str(err.value) == f"StaticSiteArgs.{says}"


def test_an_api_url_given_as_text_is_validated_naming_the_field(tmp_path: Path) -> None:
    args = StaticSiteArgs(api_url="not a url", www_dir=make_www(tmp_path / "www"))
    with pytest.raises(StaticSiteArgsError, match=r"StaticSiteArgs\.api_url = 'not a url' is invalid"):
        args.validate()


@pytest.mark.parametrize("api_url", [None, 7])
def test_an_api_url_that_is_not_text_is_refused_naming_the_field(tmp_path: Path, api_url: Any) -> None:
    args = StaticSiteArgs(api_url=api_url, www_dir=make_www(tmp_path / "www"))
    with pytest.raises(StaticSiteArgsError, match=rf"StaticSiteArgs\.api_url = {api_url!r} is invalid"):
        args.validate()


def _invalidation_hash(
    tmp_path: Path, files: dict[str, bytes], api_url: str, price_class: str = "PriceClass_100"
) -> str:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)
    www = tmp_path / f"www-{len(list(tmp_path.iterdir()))}"
    make_www(www, files)
    settle(lambda: StaticSite("site", StaticSiteArgs(api_url=api_url, www_dir=www, price_class=price_class)).site_url)
    return mocks.one(DYNAMIC, "site-invalidation")["content_hash"]


def test_invalidation_trigger_changes_exactly_when_content_changes(tmp_path: Path) -> None:
    files = {"index.html": b"<p>v1</p>", "script.js": b"run()"}
    base = _invalidation_hash(tmp_path, files, API_ENDPOINT)
    # Same content (fresh directory, other settings): same trigger, so no invalidation on `pulumi up`.
    assert _invalidation_hash(tmp_path, files, API_ENDPOINT) == base
    assert _invalidation_hash(tmp_path, files, API_ENDPOINT, price_class="PriceClass_All") == base
    # Any content change: a new trigger.
    assert _invalidation_hash(tmp_path, {**files, "index.html": b"<p>v2</p>"}, API_ENDPOINT) != base
    assert _invalidation_hash(tmp_path, {**files, "new.css": b""}, API_ENDPOINT) != base
    assert _invalidation_hash(tmp_path, files, "https://other.execute-api.us-east-1.amazonaws.com") != base


class OtherRegionMocks(RecordingMocks):
    """The mocks with the stack in eu-west-1 (getRegion's answer; resource ARNs keep the default region)."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:index/getRegion:getRegion":
            self.calls.append((args.token, dict(args.args)))
            return {"name": "eu-west-1", "region": "eu-west-1", "id": "eu-west-1"}, []
        return super().call(args)


def test_regional_inputs_follow_the_stacks_region(tmp_path: Path) -> None:
    """The dynamic providers build their boto3 clients for the region they are handed, and the model container
    is told its region: none of them may take the mocks' default region for granted."""
    mocks = OtherRegionMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)
    settle(
        lambda: pulumi.Output.all(
            ServerlessEndpoint("model", endpoint_args(tmp_path)).endpoint_name, InferenceApi("api", api_args()).api_url
        )
    )
    assert_regional_inputs_in(mocks, "eu-west-1")


def assert_regional_inputs_in(mocks: RecordingMocks, region: str) -> None:
    regions = {name: mocks.one(DYNAMIC, name)["region"] for name in ("api-cors", "model-version", "model-smoke-check")}
    assert regions == dict.fromkeys(regions, region)
    assert mocks.one("aws:sagemaker/model:Model")["primaryContainer"]["environment"]["SAGEMAKER_REGION"] == region


class ProviderRegionMocks(RecordingMocks):
    """getRegion answers with the region of the provider the lookup went through (the default one: REGION), and
    getPrebuiltEcrImage with that region's registry."""

    def provider_region(self, provider: str | None) -> str:
        """The region of the provider a lookup or a resource went through, given as its reference."""
        name = provider.split("::")[-2] if provider else ""  # the URN's name: ...::ireland::<id>
        return self.resources.get(("pulumi:providers:aws", name), {}).get("region", REGION)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        region = self.provider_region(args.provider)
        if args.token == "aws:index/getRegion:getRegion":
            self.calls.append((args.token, dict(args.args)))
            return {"name": region, "region": region, "id": region}, []
        if args.token == "aws:sagemaker/getPrebuiltEcrImage:getPrebuiltEcrImage":
            image, _ = super().call(args)
            return {**image, "registryPath": image["registryPath"].replace(f".{REGION}.", f".{region}.")}, []
        return super().call(args)


def test_regional_inputs_follow_the_provider_a_component_is_given(tmp_path: Path) -> None:
    """Components declared with another region's provider (opts.providers) create their resources there, so their
    lookups must go through it too: the stack's region would point the dynamic providers and the model container
    at the wrong one."""
    mocks = ProviderRegionMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)

    def declare() -> pulumi.Output[Any]:
        opts = pulumi.ResourceOptions(providers=[aws.Provider("ireland", region="eu-west-1")])
        return pulumi.Output.all(
            ServerlessEndpoint("model", endpoint_args(tmp_path), opts).endpoint_name,
            InferenceApi("api", api_args(), opts).api_url,
        )

    settle(declare)
    assert_regional_inputs_in(mocks, "eu-west-1")
    # The image too: SageMaker pulls a model's image from its own region's registry only. Looked up through the
    # default provider, the image passed every test (the mocks answered one region for all), though CreateModel in
    # eu-west-1 would be handed us-east-1's registry, and `pulumi up` would fail there.
    image = mocks.one("aws:sagemaker/model:Model")["primaryContainer"]["image"]
    assert image == f"{DLC_ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"


CN_ACCOUNT = "210987654321"


class ProviderAccountMocks(ProviderRegionMocks):
    """getPartition and getCallerIdentity answer for the provider the lookup went through, as getRegion does: one in
    a China region is in the aws-cn partition, and its credentials are another account's (China accounts are apart)."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        china = self.provider_region(args.provider).startswith("cn-")
        if args.token == "aws:index/getPartition:getPartition" and china:
            self.calls.append((args.token, dict(args.args)))
            return {"partition": "aws-cn", "dnsSuffix": "amazonaws.com.cn", "id": "aws-cn"}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity" and china:
            self.calls.append((args.token, dict(args.args)))
            arn = f"arn:aws-cn:iam::{CN_ACCOUNT}:user/test"
            return {"accountId": CN_ACCOUNT, "arn": arn, "userId": "AIDTEST", "id": CN_ACCOUNT}, []
        return super().call(args)


def test_the_proxys_log_grant_follows_the_account_and_partition_of_the_provider_it_is_given() -> None:
    """The proxy's policy names its log group by ARN: partition, region and account must all be the ones the function
    runs in. Looked up through the default provider instead of the component's (opts.providers), the partition and
    account passed every test, as every mock answered alike: a component given another account's or partition's
    provider would grant logs on a group of the stack's own account, and the function could write none of its logs."""
    mocks = ProviderAccountMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)

    def declare() -> pulumi.Output[Any]:
        opts = pulumi.ResourceOptions(providers=[aws.Provider("beijing", region="cn-north-1")])
        return InferenceApi("api", api_args(), opts).api_url

    settle(declare)
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "FunctionLogs")
    assert logs["Resource"][0] == f"arn:aws-cn:logs:cn-north-1:{CN_ACCOUNT}:log-group:/aws/lambda/mobilenet-test-proxy"


class ProviderPartitionBucketMocks(ProviderAccountMocks):
    """A bucket made through a China region's provider has an aws-cn ARN, as S3 reports it."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, outs = super().new_resource(args)
        china = self.provider_region(args.provider).startswith("cn-")
        if args.typ == "aws:s3/bucket:Bucket" and china:
            outs["arn"] = f"arn:aws-cn:s3:::{outs['bucket']}"
        return rid, outs


def test_the_endpoints_grants_follow_the_account_and_partition_of_the_provider_it_is_given(tmp_path: Path) -> None:
    """As for the proxy: the SageMaker role's policy names its log group, image repository and artifact prefix by ARN,
    and the bucket's policy names the bucket. Looked up through the default provider instead of the component's, the
    partition and account passed every test: a component given a China region's provider would grant its role logs
    and the artifact in the aws partition and the stack's own account, and the endpoint could neither log nor start."""
    mocks = ProviderPartitionBucketMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)

    def declare() -> pulumi.Output[Any]:
        opts = pulumi.ResourceOptions(providers=[aws.Provider("beijing", region="cn-north-1")])
        return ServerlessEndpoint("model", endpoint_args(tmp_path), opts).endpoint_name

    settle(declare)
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    assert policy == json.loads(
        policies.sagemaker_execution_policy(
            partition="aws-cn",
            region="cn-north-1",
            account_id=CN_ACCOUNT,
            registry_id=DLC_ACCOUNT,
            repository="pytorch-inference",
            bucket="model-bucket-a1b2c3",
            endpoint_name="mobilenet-test",
        )
    )
    bucket_policy = json.loads(mocks.one("aws:s3/bucketPolicy:BucketPolicy")["policy"])
    assert bucket_policy == json.loads(policies.private_bucket_policy("arn:aws-cn:s3:::model-bucket-a1b2c3"))


@pytest.mark.parametrize("component", ["endpoint", "api", "site"])
def test_components_refuse_bad_args_before_declaring_anything(
    mocks: RecordingMocks, tmp_path: Path, component: str
) -> None:
    declared: list[str] = []

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        declared.append(args.name)

    def declare() -> Any:
        pulumi.runtime.register_stack_transformation(record)
        if component == "endpoint":
            return ServerlessEndpoint("model", endpoint_args(tmp_path, memory_size_mb=1500)).endpoint_name
        if component == "api":
            return InferenceApi("api", api_args(architecture="arm")).api_url
        site = StaticSiteArgs(api_url=API_ENDPOINT, www_dir=make_www(tmp_path / "www"), price_class="PriceClass_1")
        return StaticSite("site", site).site_url

    errors = (ServerlessEndpointArgsError, InferenceApiArgsError, StaticSiteArgsError)
    with pytest.raises(errors):
        settle(declare)
    assert declared == [], "the component registered itself (or children) before validating its args"
    assert mocks.resources == {}


def test_a_www_dir_the_site_cannot_serve_is_refused_before_declaring_anything(
    mocks: RecordingMocks, tmp_path: Path
) -> None:
    declared: list[str] = []

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        declared.append(args.name)

    www = make_www(tmp_path / "www")
    (www / "index.html").unlink()

    def declare() -> Any:
        pulumi.runtime.register_stack_transformation(record)
        return StaticSite("site", StaticSiteArgs(api_url=API_ENDPOINT, www_dir=www)).site_url

    with pytest.raises(StaticSiteArgsError, match=r"StaticSiteArgs\.www_dir = "):
        settle(declare)
    assert declared == []


def test_a_www_file_that_cannot_be_read_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate() reads every file site_files lists, as StaticSite will: one that cannot be read (the deployer may not,
    or it went away since it was listed; root reads any, so the read is of a path that is gone) is the args' error."""
    import components.static_site as static_site

    www = make_www(tmp_path / "www")
    gone = www / "gone.html"

    def read_one_gone(files: dict[str, Path]) -> dict[str, bytes]:
        return policies.read_site_files({**files, "gone.html": gone})

    monkeypatch.setattr(static_site, "policies", names_of(policies, read_site_files=read_one_gone))
    with pytest.raises(StaticSiteArgsError) as err:
        StaticSiteArgs(api_url=API_ENDPOINT, www_dir=www).validate()
    assert str(err.value).startswith(f"StaticSiteArgs.www_dir = {www!r} is invalid: www file {str(gone)!r} cannot be ")


def test_components_settle_after_an_earlier_test_left_the_thread_without_a_loop(request, tmp_path: Path) -> None:
    """`pytest tests/local/test_server.py tests/infra` failed 9 tests and errored 83: asyncio.run (the local
    stack's tests use it) ends by setting no loop, Pulumi then made a new one, and the root stack resource's futures
    belonged to the first."""
    import asyncio

    from tests.infra.conftest import ENGINE_LOOP

    asyncio.run(asyncio.sleep(0))
    request.getfixturevalue("mocks")
    # The loop itself, not only a settle: once any earlier test has settled, the root resource's futures are done and
    # a settle on a new loop passes, so in this file's order the settle below could not fail without the fix.
    assert asyncio.get_event_loop() is ENGINE_LOOP
    assert settle(lambda: ServerlessEndpoint("model", endpoint_args(tmp_path)).endpoint_name) == "mobilenet-test"
