"""__main__.py under mocks: dev and prod-like stacks, outputs, fail-fast config, real asset paths."""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import pathlib
import re
import runpy
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from packaging.requirements import Requirement

import tests.infra.conftest
from components import lambda_bundle, policies, static_site
from components.bundle_dir import BundleDirError
from components.settings import strip_namespace
from tests.ci import skip_or_fail
from tests.conftest import names_of
from tests.infra.conftest import (
    ACCOUNT,
    API_ENDPOINT,
    CF_DOMAIN,
    DLC_ACCOUNT,
    DYNAMIC,
    PROGRAM_IMPORTS,
    REGION,
    ROOT,
    RecordingMocks,
    comparable_inputs,
    fake_lambda_asset_files,
    make_artifact,
    run_main,
)
from tests.infra.test_infra_policies import assert_least_privilege

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-1111-2222-333344445555"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ops-alerts"
EXPORTS = {
    "site_url",
    "api_url",
    "proxy_function_name",
    "endpoint_name",
    "endpoint_log_group",
    "model_artifact_uri",
    "distribution_id",
    "site_bucket_name",
    "model_bucket_name",
}


def dev_config() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    return strip_namespace(document["config"])


def test_dev_stack(program: Any, mocks: RecordingMocks) -> None:
    outputs = program(**dev_config())
    assert set(outputs) == EXPORTS
    assert outputs["site_url"] == f"https://{CF_DOMAIN}"
    assert outputs["api_url"] == API_ENDPOINT
    assert outputs["proxy_function_name"] == "mobilenet-serverless-dev-proxy"
    assert outputs["endpoint_name"] == "mobilenet-serverless-dev"
    assert outputs["endpoint_log_group"] == "/aws/sagemaker/Endpoints/mobilenet-serverless-dev"
    assert outputs["model_artifact_uri"].startswith("s3://model-bucket-a1b2c3/models/")
    assert outputs["distribution_id"] == "E2EXAMPLE"
    assert (outputs["site_bucket_name"], outputs["model_bucket_name"]) == ("site-bucket-a1b2c3", "model-bucket-a1b2c3")

    components = {name: typ for (typ, name) in mocks.resources if typ.startswith("mobilenet-serverless:index:")}
    assert components == {
        "model": "mobilenet-serverless:index:ServerlessEndpoint",
        "api": "mobilenet-serverless:index:InferenceApi",
        "site": "mobilenet-serverless:index:StaticSite",
    }
    fn = mocks.one("aws:lambda/function:Function")
    assert fn["name"] == "mobilenet-serverless-dev-proxy"
    assert fn["memorySize"] == 256 and fn["environment"]["variables"]["LOG_LEVEL"] == "INFO"
    assert fn["environment"]["variables"]["ALLOWED_ORIGINS"] == f"https://{CF_DOMAIN},http://localhost:8000"
    assert fn["environment"]["variables"]["ENDPOINT_NAME"] == "mobilenet-serverless-dev"
    assert mocks.one(DYNAMIC, "api-cors")["origins"] == [f"https://{CF_DOMAIN}", "http://localhost:8000"]
    assert (DYNAMIC, "model-smoke-check") in mocks.resources
    # The proxy may invoke the stack's endpoint, named by its ARN (a bare name is a Resource no request matches).
    proxy_policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "api-role-policy")["policy"])
    [invoke] = [s for s in proxy_policy["Statement"] if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert invoke["Resource"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mobilenet-serverless-dev"
    # Every IAM document the program declares is least-privilege.
    for inputs in mocks.of_type("aws:iam/rolePolicy:RolePolicy").values():
        assert_least_privilege(json.loads(inputs["policy"]))
    assert all("managedPolicyArns" not in r for r in mocks.of_type("aws:iam/role:Role").values())


def test_prod_like_stack(program: Any, mocks: RecordingMocks) -> None:
    outputs = program(
        memorySizeMb=4096,
        maxConcurrency=10,
        provisionedConcurrency=2,
        lambdaArchitecture="x86_64",
        proxyMemorySizeMb=512,
        proxyLogLevel="WARNING",
        apiThrottleRateLimit=100,
        apiThrottleBurstLimit=200,
        corsExtraOrigins=["https://admin.example.com"],
        logRetentionDays=90,
        priceClass="PriceClass_All",
        customDomain="classify.example.com",
        certificateArn=CERT,
        kmsKeyArn=KMS,
        smokeCheck=False,
        endpointName="mobilenet-prod",
        alarmTopicArn=TOPIC,
        inferenceImageTag="2.5.1-cpu-py311-ubuntu22.04-sagemaker",
    )
    assert outputs["site_url"] == "https://classify.example.com"
    image = mocks.one("aws:sagemaker/model:Model")["primaryContainer"]["image"]
    assert image == (
        f"{DLC_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/pytorch-inference:2.5.1-cpu-py311-ubuntu22.04-sagemaker"
    )
    assert outputs["endpoint_name"] == "mobilenet-prod"
    variant = mocks.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")["productionVariants"][0]
    assert variant["serverlessConfig"] == {"memorySizeInMb": 4096, "maxConcurrency": 10, "provisionedConcurrency": 2}
    fn = mocks.one("aws:lambda/function:Function")
    assert fn["architectures"] == ["x86_64"] and fn["kmsKeyArn"] == KMS
    assert fn["memorySize"] == 512 and fn["environment"]["variables"]["LOG_LEVEL"] == "WARNING"
    assert fn["environment"]["variables"]["ALLOWED_ORIGINS"] == (
        f"https://classify.example.com,https://{CF_DOMAIN},https://admin.example.com"
    )
    stage = mocks.one("aws:apigatewayv2/stage:Stage")
    assert stage["defaultRouteSettings"] == {"throttlingRateLimit": 100, "throttlingBurstLimit": 200}
    assert {g["retentionInDays"] for g in mocks.of_type("aws:cloudwatch/logGroup:LogGroup").values()} == {90}
    dist = mocks.one("aws:cloudfront/distribution:Distribution")
    assert dist["aliases"] == ["classify.example.com"] and dist["priceClass"] == "PriceClass_All"
    assert (DYNAMIC, "model-smoke-check") not in mocks.resources
    alarms = mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm").values()
    assert len(alarms) == 6 and all(a["alarmActions"] == a["okActions"] == [TOPIC] for a in alarms)
    assert "mobilenet-prod-invocation-5xx" in {a["name"] for a in alarms}
    for inputs in mocks.of_type("aws:iam/rolePolicy:RolePolicy").values():
        document = json.loads(inputs["policy"])
        assert_least_privilege(document)
        assert any(s.get("Action") == "kms:Decrypt" and s["Resource"] == KMS for s in document["Statement"])


# Lambda sets these itself and refuses a function whose configuration names one ("The keys for these environment
# variables are reserved and can't be set in your function configuration":
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html, "Defined runtime environment variables").
LAMBDA_RESERVED_ENV = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ",
    }
)  # fmt: skip


def test_every_environment_variable_is_one_createmodel_and_createfunction_take(
    program: Any, mocks: RecordingMocks
) -> None:
    """The Model's container environment and the proxy's, as the mocks receive them, against botocore's service models
    (botocore/data/sagemaker/2017-07-24 ContainerDefinition.Environment: at most 100 entries, keys
    [a-zA-Z_][a-zA-Z0-9_]* and keys and values of at most 1,024 characters; botocore/data/lambda/2015-03-31
    Environment.Variables: keys [a-zA-Z]([a-zA-Z0-9_])+) and Lambda's reserved keys. A key the builders got wrong (a
    hyphen, a leading digit or underscore, AWS_REGION for the handler's region) failed only CreateModel or
    CreateFunction, halfway through the first `pulumi up`."""
    import botocore.session

    program(**dev_config())
    session = botocore.session.get_session()
    model_env = session.get_service_model("sagemaker").shape_for("ContainerDefinition").members["Environment"]
    lambda_env = session.get_service_model("lambda").shape_for("Environment").members["Variables"]

    env = mocks.one("aws:sagemaker/model:Model")["primaryContainer"]["environment"]
    assert env == policies.sagemaker_container_env(REGION)  # the builder's, as deployed
    assert 1 <= len(env) <= model_env.metadata["max"]
    for key, value in env.items():
        assert re.fullmatch(model_env.key.metadata["pattern"], key), key
        assert len(key) <= model_env.key.metadata["max"] and isinstance(value, str), key
        assert len(value) <= model_env.value.metadata["max"], key

    variables = mocks.one("aws:lambda/function:Function")["environment"]["variables"]
    assert "ENDPOINT_NAME" in variables  # the proxy's environment, not an empty one
    for key, value in variables.items():
        assert re.fullmatch(lambda_env.key.metadata["pattern"], key), key
        assert key not in LAMBDA_RESERVED_ENV and isinstance(value, str), key


def test_the_model_is_uploaded_under_the_sha256_of_the_artifact_it_names(
    program: Any, mocks: RecordingMocks, tmp_path: Path
) -> None:
    """The artifact's key, and so the Model's URI, is the digest of the file modelArtifact names: a new build is a new
    object the endpoint is rebuilt on. Keyed by another file's digest (make model's, where modelArtifact names
    another), a changed model would be uploaded over the old key and the endpoint left on the old model."""
    outputs = program()
    sha256 = hashlib.sha256((tmp_path / "model" / "model.tar.gz").read_bytes()).hexdigest()
    assert outputs["model_artifact_uri"] == f"s3://model-bucket-a1b2c3/{policies.artifact_key(sha256)}"


def test_default_names_carry_the_stack(program: Any) -> None:
    """Two stacks of the project in one account (dev, staging) must not share an endpoint or its proxy: without an
    endpointName the names are the stack's own."""
    pulumi.runtime.set_mocks(RecordingMocks(), project="mobilenet-serverless", stack="staging", preview=False)
    outputs = program()
    assert outputs["endpoint_name"] == "mobilenet-serverless-staging"
    assert outputs["proxy_function_name"] == "mobilenet-serverless-staging-proxy"


def test_two_stacks_in_one_account_share_no_name_the_program_sets(program: Any) -> None:
    """dev and prod in one account and region: a name the program sets itself (not one of Pulumi's auto-names, which
    end in a random suffix) that both stacks set alike fails the second `pulumi up` creating it (a log group, the
    endpoint, the function), or hands it the first stack's (an alarm: PutMetricAlarm overwrites one of that name, and
    the second stack's destroy deletes it). IAM names are global to the account: no role is named. Only names scoped
    to something of the stack's own may repeat: the stage's `$default` (one per API), and the origin access control
    and response headers policy (named after the stack's auto-named site bucket)."""

    def names(stack: str) -> dict[tuple[str, str], str]:
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack=stack, preview=False)
        program()
        return {key: inputs["name"] for key, inputs in mocks.resources.items() if "name" in inputs}

    dev, prod = names("dev"), names("prod")
    assert dev.keys() == prod.keys()
    assert not [key for key in dev if key[0] in ("aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy")]
    scoped = {"api-stage", "site-oac", "site-headers"}
    assert {name for _, name in dev} >= scoped
    bucket = "site-bucket-a1b2c3"  # the mocks' auto-name of the site bucket, alike in both stacks
    assert all(value.startswith(bucket) for (_, name), value in dev.items() if name in ("site-oac", "site-headers"))
    shared = sorted(name for (typ, name), value in dev.items() if name not in scoped and prod[(typ, name)] == value)
    assert shared == []
    assert len(dev) - len(scoped) == 11  # 3 log groups, 6 alarms, the function and the endpoint


def test_a_renamed_stack_keeps_every_fixed_name_when_endpointname_holds_the_old_one(program: Any) -> None:
    """`pulumi stack rename dev prod` changes pulumi.get_stack(), and with it the default endpoint name: the next
    `pulumi up` would rename the endpoint, the proxy, their log groups (the old ones deleted with their logs) and the
    alarms. README: set endpointName to the old name first, and every fixed name stays as it was."""

    def fixed_names(stack: str, **config: Any) -> dict[str, str]:
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack=stack, preview=False)
        program(**config)
        return {name: inputs["name"] for (_, name), inputs in mocks.resources.items() if "name" in inputs}

    before = fixed_names("dev")
    assert {"model-endpoint", "api-function", "model-log-group", "api-access-logs", "api-alarm-5xx"} <= set(before)
    renamed = fixed_names("prod")
    assert sorted(name for name in before if renamed[name] != before[name])  # the default follows the stack
    assert fixed_names("prod", endpointName=before["model-endpoint"]) == before


def test_a_setting_under_a_renamed_projects_own_name_stops_the_program(
    program: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second team copies the project as `imgclass`: `pulumi config set kmsKeyArn ...` stores imgclass:kmsKeyArn,
    which the program, reading mobilenet-serverless:<key> only, ignored, and deployed without the key, in silence."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="imgclass", stack="prod", preview=False)
    # How the engine hands the program a stack's config: PULUMI_CONFIG, which get_config_env reads at each call.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"imgclass:kmsKeyArn": KMS}))
    with pytest.raises(pulumi.RunError) as err:
        program()
    assert "Pulumi.yaml names this project 'imgclass'" in str(err.value)
    assert "imgclass:kmsKeyArn would be ignored" in str(err.value)
    assert mocks.resources == {}


def test_a_renamed_project_with_its_settings_under_mobilenet_serverless_deploys(
    program: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set as mobilenet-serverless:<key>, a renamed project's settings are read; its names carry its own name."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="imgclass", stack="prod", preview=False)
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"aws:region": REGION}))  # as the engine hands it over
    outputs = program(maxConcurrency=7)
    assert outputs["endpoint_name"] == "imgclass-prod"
    variant = mocks.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")["productionVariants"][0]
    assert variant["serverlessConfig"]["maxConcurrency"] == 7


def test_every_component_records_the_outputs_it_exposes(program: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a component registers is what the stack's state (`pulumi stack export`, the console) shows for it:
    every output it declares, under its own name."""
    registered: dict[pulumi.ComponentResource, dict[str, Any]] = {}
    register = pulumi.ComponentResource.register_outputs

    def record(component: pulumi.ComponentResource, outputs: dict[str, Any]) -> None:
        registered[component] = dict(outputs)
        register(component, outputs)

    def subclasses(cls: type) -> list[type]:
        return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]

    # On each of this project's components (every ComponentResource subclass of components/, as __main__.py imports
    # them): pulumi.ComponentResource's own register_outputs replaced would be every thread's.
    for component_class in subclasses(pulumi.ComponentResource):
        if component_class.__module__.startswith("components."):
            monkeypatch.setattr(component_class, "register_outputs", record)
    program()
    assert {type(c).__name__ for c in registered} == {"ServerlessEndpoint", "InferenceApi", "StaticSite"}
    for component, outputs in registered.items():
        declared = {name for name, kind in type(component).__annotations__.items() if kind.startswith("pulumi.Output")}
        assert set(outputs) == declared, type(component).__name__
        assert all(outputs[name] is getattr(component, name) for name in declared), type(component).__name__


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"memorySizeMb": 1000}, "mobilenet-serverless:memorySizeMb = '1000' is invalid"),
        (
            {"provisionedConcurrency": 9},
            "mobilenet-serverless:provisionedConcurrency = '9' is invalid: allowed an integer in 0..5",
        ),
        ({"corsExtraOrigins": ["*"]}, "mobilenet-serverless:corsExtraOrigins = '*' is invalid"),
        ({"proxyMemorySizeMb": 64}, "mobilenet-serverless:proxyMemorySizeMb = '64' is invalid"),
        ({"customDomain": "classify.example.com"}, "mobilenet-serverless:certificateArn = None is invalid"),
        ({"alarmTopicArn": "ops-alerts"}, "mobilenet-serverless:alarmTopicArn = 'ops-alerts' is invalid"),
    ],
)
def test_invalid_config_fails_before_any_resource(
    program: Any, mocks: RecordingMocks, config: dict[str, Any], message: str
) -> None:
    """A pulumi.RunError: `pulumi up` prints it as its message alone, any other exception as a whole traceback."""
    with pytest.raises(pulumi.RunError) as err:
        program(**config)
    assert message in str(err.value)
    assert mocks.resources == {}


def test_a_second_run_declares_every_resource_with_the_same_inputs(tmp_path: Path) -> None:
    """A `pulumi up` with nothing changed must plan no changes: no input may come from the clock, a random source, the
    order of a set (it follows the process's hash seed) or the order a directory lists in. The program runs twice,
    in two processes with different hash seeds, and every resource's inputs are compared (assets by content)."""
    artifact, _ = make_artifact(tmp_path / "model")
    script = (
        "import json, sys; from tests.infra.conftest import declare_dev_stack; "
        "json.dump(declare_dev_stack(sys.argv[1]), open(sys.argv[2], 'w'))"
    )
    runs = []
    for seed in ("1", "2"):
        out = tmp_path / f"inputs-{seed}.json"
        done = subprocess.run(
            [sys.executable, "-c", script, str(artifact), str(out)],
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(out.read_text()))
    first, second = runs
    assert len(first) > 40 and "aws:lambda/function:Function::api-function" in first
    assert sorted(first) == sorted(second)
    assert [key for key in first if first[key] != second[key]] == []


def test_a_site_file_error_fails_the_program_instead_of_hanging(program: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """StaticSite walks www/ after the API's function and CORS already wait on the site's origins (a deferred
    output): an error there must fail the program with its message, not leave the engine waiting forever. Were the
    origins left unresolved, run_main fails at once saying so (this test hung until pytest's timeout)."""
    monkeypatch.delitem(policies.CONTENT_TYPES, ".css")  # as if www/ held a file of a type the site cannot serve
    raised: list[BaseException] = []
    run_path = runpy.run_path

    def recorded(*args: Any, **kwargs: Any) -> Any:
        try:
            return run_path(*args, **kwargs)
        except BaseException as error:
            raised.append(error)
            raise

    # run_main's own runpy (tests/infra/conftest.py's): runpy.run_path itself is every thread's
    monkeypatch.setattr(tests.infra.conftest, "runpy", names_of(runpy, run_path=recorded))
    with pytest.raises(pulumi.RunError, match=r"'style\.css' has no known content type"):
        program()
    # The program's own exception, the one `pulumi up` prints (any but a RunError as a Python traceback), not only
    # the registrations failed with it.
    assert [type(error) for error in raised] == [pulumi.RunError], raised


def test_misspelt_key_in_the_stack_fails_instead_of_deploying_the_default(program: Any, mocks: RecordingMocks) -> None:
    with pytest.raises(pulumi.RunError, match=r"unknown config key\(s\) mobilenet-serverless:memorySizeMB"):
        program(memorySizeMB=4096)
    assert mocks.resources == {}


def test_misspelt_key_only_in_the_engines_config_env_fails_too(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Config may reach the program only as the PULUMI_CONFIG bag; pulumi.Config reads it there, so must the check.
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"mobilenet-serverless:memorySizeMB": "4096"}))
    with pytest.raises(pulumi.RunError, match=r"unknown config key\(s\) mobilenet-serverless:memorySizeMB"):
        program()
    assert mocks.resources == {}


def test_a_value_set_for_the_program_wins_over_the_engines_config_env(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key in both: the value set (set_all_config, as an Automation API program's) is the one pulumi.Config reads,
    so it is the one validated and deployed, not the PULUMI_CONFIG bag's."""
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"mobilenet-serverless:memorySizeMb": "4096"}))
    program(memorySizeMb=3072)
    variant = mocks.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration")["productionVariants"][0]
    assert variant["serverlessConfig"]["memorySizeInMb"] == 3072


@pytest.mark.parametrize("route", ["environment", "set_all_config"])
def test_a_secret_setting_fails_instead_of_deploying_its_value_in_plain_text(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    """`pulumi up` hands the program a secret decrypted, its key listed only in PULUMI_CONFIG_SECRET_KEYS (or, for an
    Automation API program, in set_all_config's secret keys). Read as a plain value, `pulumi config set --secret
    endpointName ...` was deployed, and exported as endpoint_name, in plain text; the local stack refused that file."""
    key = "mobilenet-serverless:endpointName"
    if route == "environment":
        monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([key]))
    else:
        pulumi.runtime.set_all_config({}, [key])
    try:
        with pytest.raises(pulumi.RunError) as err:
            program(endpointName="my-endpoint")
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert str(err.value) == f"{key} is a Pulumi secret; this program has no secret settings: set it without --secret"
    assert mocks.resources == {}


def test_kms_key_from_another_region_fails_before_any_resource(program: Any, mocks: RecordingMocks) -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with pytest.raises(pulumi.RunError, match="kmsKeyArn"):
        program(kmsKeyArn=key)
    assert mocks.resources == {}


def test_a_missing_artifact_set_in_modelartifact_names_the_setting(
    program: Any, mocks: RecordingMocks, tmp_path: Path
) -> None:
    """A modelArtifact naming a file that is not there (a typo in the README's kept deployed.tar.gz) said "run `make
    model` first", which builds model/dist/model.tar.gz and leaves the setting pointing at nothing."""
    missing = tmp_path / "deployed.tar.gz"
    with pytest.raises(pulumi.RunError) as err:
        program(modelArtifact=str(missing))
    assert str(err.value) == (
        f"model artifact {missing} does not exist: set modelArtifact to an existing model.tar.gz "
        f"(`make model` builds {ROOT / 'model/dist/model.tar.gz'})"
    )
    assert mocks.resources == {}


@pytest.mark.parametrize(
    ("name", "why"),
    # Python 3.13 words the NUL byte "embedded null character in path" where 3.11 and 3.12 say "embedded null byte".
    [("model.tar.gz", "Permission denied"), ("m" * 256 + ".tar.gz", "File name too long"), ("a\0b", "embedded null")],
    ids=["permission-denied", "name-too-long", "nul-byte"],
)
def test_a_modelartifact_the_system_cannot_read_names_the_setting_without_a_traceback(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, why: str
) -> None:
    """os.stat() or open() refusing the path (another user's file, a 256-character name, a NUL byte written as "\\0"
    in the stack file) raised an OSError or a ValueError, which `pulumi up` prints as a Python traceback."""
    artifact = tmp_path / name
    if why == "Permission denied":  # the tests may run as root, whom no file refuses
        artifact, _ = make_artifact(tmp_path)

        class Refusing(type(Path())):  # __main__.py's own Path, which its artifact path is made of
            def open(self, *args: Any, **kwargs: Any) -> Any:
                if self == artifact:
                    raise PermissionError(13, "Permission denied", str(self))
                return super().open(*args, **kwargs)

        monkeypatch.setitem(PROGRAM_IMPORTS, "pathlib", names_of(pathlib, Path=Refusing))
    with pytest.raises(pulumi.RunError) as err:
        program(modelArtifact=str(artifact))
    message = str(err.value)
    # The system's reason alone ("Permission denied"), not str() of the error, which repeats the path in it.
    assert message.startswith(f"model artifact {artifact} cannot be read ({why}"), message
    assert message.endswith("): set modelArtifact to a model.tar.gz this user can read")
    assert mocks.resources == {}


@pytest.mark.parametrize("spelling", ["model/dist/model.tar.gz", "./model/dist/../dist/model.tar.gz"])
def test_a_missing_default_artifact_says_make_model(tmp_path: Path, spelling: str) -> None:
    """The file `make model` builds, however modelArtifact spells it: building it is the fix."""
    built_by_make = tmp_path / "model/dist/model.tar.gz"
    (tmp_path / "model/dist").mkdir(parents=True)
    policies.check_artifact(tmp_path / spelling, built_by_make=built_by_make)  # no opinion: file_sha256 reports it
    policies.check_artifact(tmp_path / spelling)  # nor with no file `make model` builds to compare it with
    with pytest.raises(policies.ArtifactMissingError, match=r"does not exist; run `make model` first\Z"):
        policies.file_sha256(tmp_path / spelling)


def test_the_artifact_make_model_builds_from_other_code_than_the_checkouts_fails_before_any_resource(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch, artifact: Path
) -> None:
    """model/code/inference.py edited (or changed by a pull) and `pulumi up` run without `make model` first: the old
    code in model/dist/model.tar.gz was deployed without a word. The edit is simulated: the checkout is not written."""
    checkout_code = ROOT / "model" / "code" / "inference.py"

    class Edited(type(Path())):  # __main__.py's own Path, which the checkout's code path is made of
        def read_bytes(self) -> bytes:
            return super().read_bytes() + (b"# edited\n" if self == checkout_code else b"")

    monkeypatch.setitem(PROGRAM_IMPORTS, "pathlib", names_of(pathlib, Path=Edited))
    with tarfile.open(artifact) as tar:
        int8 = json.loads(tar.extractfile("metadata.json").read()).get("precision") == "int8"  # a `make model INT8=1`
    with pytest.raises(pulumi.RunError) as err:
        program(modelArtifact="model/dist/model.tar.gz")
    assert str(err.value) == (
        f"model artifact {artifact} was built from another code/inference.py than {checkout_code} holds now: "
        f"run `make model{' INT8=1' if int8 else ''}` to rebuild it"
    )
    assert mocks.resources == {}


def test_a_symlink_loop_where_model_dist_should_be_does_not_stop_another_artifact(tmp_path: Path) -> None:
    """`ln -s dist model/dist` (a loop): comparing the paths with Path.resolve() raised RuntimeError on Python 3.11,
    a traceback in `pulumi up` though modelArtifact named another, whole artifact."""
    from tests.conftest import tar_gz_of

    (tmp_path / "model").mkdir()
    (tmp_path / "model/dist").symlink_to("dist")
    kept = tar_gz_of(tmp_path / "deployed.tar.gz", {"code/inference.py": b"old\n"})
    policies.check_artifact(
        kept, built_by_make=tmp_path / "model/dist/model.tar.gz", built_from=tmp_path / "model/code/inference.py"
    )
    with pytest.raises(policies.ArtifactMissingError, match="does not exist"):
        policies.check_artifact(tmp_path / "typo.tar.gz", built_by_make=tmp_path / "model/dist/model.tar.gz")


def test_the_artifact_make_model_builds_through_a_symlinked_model_dist_is_compared_too(tmp_path: Path) -> None:
    """model/dist a symlink (to a shared build folder): modelArtifact resolves through it, and the file `make model`
    writes must be recognised however either side is spelt, or its stale code is deployed without a word."""
    from tests.conftest import tar_gz_of

    checkout_code = tmp_path / "model/code/inference.py"
    checkout_code.parent.mkdir(parents=True)
    checkout_code.write_bytes(b"new\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "model/dist").symlink_to(tmp_path / "shared")
    built_by_make = tmp_path / "model/dist/model.tar.gz"
    tar_gz_of(built_by_make, {"code/inference.py": b"old\n"})
    for spelling in (built_by_make, tmp_path / "shared/model.tar.gz"):
        with pytest.raises(policies.PolicyInputError, match=r"was built from another code/inference\.py"):
            policies.check_artifact(spelling, built_by_make=built_by_make, built_from=checkout_code)
    policies.check_artifact(built_by_make, built_by_make=built_by_make)  # no checkout code given: nothing to compare


@pytest.mark.parametrize(
    ("case", "refused"),
    [
        ("fp32", "`make model`"),
        ("int8", "`make model INT8=1`"),
        ("same code", None),
        ("another path", None),  # the user's own (a kept deployed.tar.gz): not compared
        ("no code/inference.py", None),  # no build of this checkout, as the tests' stand-ins: not compared
        ("no model/code in the checkout", None),  # nothing to build it from: not compared (not called stale)
        ("metadata.json no JSON object", "`make model`"),  # read as no precision, not an AttributeError
        ("metadata.json without precision", "`make model`"),  # none recorded: fp32, the build `make model` makes
        ("code/inference.py no file", None),  # a directory of that name: nothing to compare, not an AttributeError
        ("changed past its first 4 KiB", "`make model`"),  # the whole file compared, not its head
        ("the same code past 4 KiB", None),  # read whole, or every longer inference.py would be called stale
    ],
)
def test_only_the_artifact_make_model_builds_is_compared_with_the_checkouts_code(
    tmp_path: Path, case: str, refused: str | None
) -> None:
    from tests.conftest import tar_gz_of

    checkout_code = tmp_path / "model/code/inference.py"
    checkout_code.parent.mkdir(parents=True)
    checkout_code.write_bytes(b"new\n")
    built_by_make = tmp_path / "model/dist/model.tar.gz"
    built_by_make.parent.mkdir(parents=True)
    path = tmp_path / "deployed.tar.gz" if case == "another path" else built_by_make
    members = {"code/inference.py": b"new\n" if case == "same code" else b"old\n", "code/vendor/x.py": b""}
    members["metadata.json"] = json.dumps({"precision": "int8" if case == "int8" else "fp32"}).encode()
    if case in ("changed past its first 4 KiB", "the same code past 4 KiB"):
        checkout_code.write_bytes(bytes(8192) + b"new\n")
        members["code/inference.py"] = bytes(8192) + (b"old\n" if case.startswith("changed") else b"new\n")
    if case == "metadata.json no JSON object":
        members["metadata.json"] = b'["int8"]'
    if case == "metadata.json without precision":
        members["metadata.json"] = b"{}"
    if case in ("no code/inference.py", "code/inference.py no file"):
        del members["code/inference.py"]
    if case == "no model/code in the checkout":
        checkout_code.unlink()
        checkout_code.parent.rmdir()
    tar_gz_of(path, members)
    if case == "code/inference.py no file":
        with tarfile.open(path, "w:gz") as tar:
            directory = tarfile.TarInfo("code/inference.py")
            directory.type = tarfile.DIRTYPE
            tar.addfile(directory)
    if refused is None:
        policies.check_artifact(path, built_by_make=built_by_make, built_from=checkout_code)
        return
    with pytest.raises(policies.PolicyInputError) as err:
        policies.check_artifact(path, built_by_make=built_by_make, built_from=checkout_code)
    assert str(err.value) == (
        f"model artifact {path} was built from another code/inference.py than {checkout_code} holds now: "
        f"run {refused} to rebuild it"
    )


def test_a_damaged_artifact_is_not_called_stale(tmp_path: Path) -> None:
    """The local stack and the bench ask stale_artifact_reason before anything unpacks the artifact: one cut short is
    None (what reads it whole says what is wrong with it), not an EOFError traceback."""
    from tests.conftest import gzip_with_a_bad_block, tar_gz_of

    checkout_code = tmp_path / "inference.py"
    checkout_code.write_bytes(b"new\n")
    members = {"code/inference.py": b"old\n", "weights.bin": os.urandom(256 * 1024), "metadata.json": b"{}"}
    whole = tar_gz_of(tmp_path / "whole.tar.gz", members)
    assert policies.stale_artifact_reason(whole, checkout_code) is not None  # read on past the code, to metadata.json
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert policies.stale_artifact_reason(cut, checkout_code) is None
    # Corrupt deflate data past the code (zlib.error) and a gzip of no tar (tarfile.ReadError): None as well.
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(gzip_with_a_bad_block(gzip.decompress(whole.read_bytes())[: 128 * 1024]))
    assert policies.stale_artifact_reason(corrupt, checkout_code) is None
    no_tar = tmp_path / "no-tar.tar.gz"
    no_tar.write_bytes(gzip.compress((ROOT / "README.md").read_bytes()))
    assert policies.stale_artifact_reason(no_tar, checkout_code) is None


@pytest.mark.parametrize(
    "refusal",
    [
        lambda_bundle.BundleError("aws-lambda-powertools has no RECORD: reinstall it with pip"),
        BundleDirError("handlers/creds is a symlink that leaves handlers/ (-> /root/.aws/credentials)"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_lambda_asset_the_bundle_refuses_is_its_message_without_a_traceback(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    """`pulumi up` runs the program under pulumi-language-python-exec, which logs a pulumi.RunError as its message and
    any other exception as the whole traceback: the refusal the user can act on was the last line of a traceback."""

    def refuse(*_args: Any, **_kwargs: Any) -> dict[str, Path]:
        raise refusal

    monkeypatch.setattr(sys.modules["components.lambda_bundle"], "lambda_asset_files", refuse)
    with pytest.raises(pulumi.RunError) as err:
        program()
    assert str(err.value) == str(refusal)
    assert mocks.resources == {}


def test_an_artifact_that_changes_while_the_program_reads_it_is_its_message_without_a_traceback(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `make model` while `pulumi up` reads the artifact: the program's digest is no longer the file's, which
    ServerlessEndpointArgs.validate() refuses before any resource. The user can act on it (run `pulumi up` again), so
    it is a pulumi.RunError's message alone, not a traceback ending in ServerlessEndpointArgsError."""
    real = policies.file_sha256
    calls: list[Path] = []

    def read_before_the_change(path: Path) -> str:
        calls.append(path)
        return "0" * 64 if len(calls) == 1 else real(path)  # the program's read, then validate()'s

    monkeypatch.setattr(policies, "file_sha256", read_before_the_change)
    with pytest.raises(pulumi.RunError) as err:
        program()
    assert str(err.value).startswith("ServerlessEndpointArgs.artifact_sha256 = '" + "0" * 64), err.value
    assert len(calls) == 2 and mocks.resources == {}


def test_an_error_the_user_cannot_act_on_keeps_its_traceback(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only USER_ERRORS become a pulumi.RunError's message alone: anything else (here the OS failing a read the bundle
    did not expect to fail) is a fault in the program or the machine, whose traceback is what finds it."""
    failure = OSError(5, "Input/output error")

    def fail(*_args: Any, **_kwargs: Any) -> dict[str, Path]:
        raise failure

    monkeypatch.setattr(sys.modules["components.lambda_bundle"], "lambda_asset_files", fail)
    with pytest.raises(OSError) as err:
        program()
    assert err.value is failure
    assert mocks.resources == {}


def test_an_interruption_while_declaring_the_components_fails_instead_of_hanging(
    program: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BaseException that is no Exception (Ctrl-C's KeyboardInterrupt, SystemExit) raised while the site is declared
    must resolve the API's deferred site origins too: caught as an Exception only, they were left unresolved and
    `pulumi up` would wait on them forever (run_main says so at once)."""

    class Interrupted(BaseException):
        pass

    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise Interrupted

    monkeypatch.setattr(static_site, "StaticSite", interrupted)
    with pytest.raises(Interrupted):
        program()


@pytest.mark.parametrize("kind", ["directory", "not an archive", "compress(1)"])
def test_an_artifact_that_is_no_tar_gz_fails_before_any_resource(
    program: Any, mocks: RecordingMocks, tmp_path: Path, kind: str
) -> None:
    """`modelArtifact: README.md` was uploaded as the model (the endpoint would fail minutes into `pulumi up`), and a
    directory "does not exist; run `make model` first"."""
    artifact = tmp_path / "dist"
    if kind == "directory":
        artifact.mkdir()
        says = f"model artifact {artifact} is a directory: set modelArtifact to the model.tar.gz in it"
    else:  # README.md, or a model.tar.Z (compress(1)'s magic shares gzip's first byte, 0x1f)
        artifact.write_bytes(b"\x1f\x9d\x90" * (kind == "compress(1)") + (ROOT / "README.md").read_bytes())
        says = f"model artifact {artifact} is not a tar.gz archive: set modelArtifact to the file `make model` builds"
    with pytest.raises(pulumi.RunError) as err:
        program(modelArtifact=str(artifact))
    assert str(err.value) == says
    assert mocks.resources == {}


@pytest.mark.parametrize(
    "kind",
    [
        "gzip, no tar",
        "cut short",
        "cut in its last file",
        "a whole gzip of a tar cut short",
        "corrupt deflate data",
        "then no gzip member",
        "overwritten",
        "overwritten past the archive's end",
    ],
)
def test_a_gzip_artifact_that_is_no_whole_tar_fails_before_any_resource(
    program: Any, mocks: RecordingMocks, tmp_path: Path, kind: str
) -> None:
    """The gzip magic alone let `gzip README.md` and a copy cut short or corrupt through, to be uploaded as the model
    (the endpoint would fail minutes into `pulumi up`), while `make demo` refuses them as no archive it can unpack."""
    from tests.conftest import gzip_with_a_bad_block

    artifact = tmp_path / "model.tar.gz"
    if kind == "gzip, no tar":
        artifact.write_bytes(gzip.compress((ROOT / "README.md").read_bytes()))
    elif kind == "cut short":
        whole, _ = make_artifact(tmp_path / "built")
        artifact.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    else:  # its first header whole: a check that read only the first member passed each of these
        weights = tmp_path / "weights.bin"
        weights.write_bytes(os.urandom(256 * 1024))  # random: the gzip stream stays as long as the file
        with tarfile.open(tmp_path / "model.tar", "w") as tar:
            tar.add(ROOT / "model" / "code" / "inference.py", arcname="code/inference.py")
            tar.add(weights, arcname="weights.bin")
        head = (tmp_path / "model.tar").read_bytes()[: 128 * 1024]
        if kind == "cut in its last file":
            whole = gzip.compress((tmp_path / "model.tar").read_bytes())
            artifact.write_bytes(whole[: 3 * len(whole) // 4])
        elif kind == "a whole gzip of a tar cut short":  # its gzip stream whole: only the walk of headers finds it
            cut = (tmp_path / "model.tar").read_bytes()
            artifact.write_bytes(gzip.compress(cut[: 3 * len(cut) // 4]))
        elif kind == "corrupt deflate data":  # then a deflate block of the reserved type: zlib.error
            artifact.write_bytes(gzip_with_a_bad_block(head))
        elif kind == "then no gzip member":  # bytes where the next gzip member should start: BadGzipFile, an OSError
            artifact.write_bytes(gzip.compress(head, mtime=0) + b"no gzip member")
        elif kind == "overwritten past the archive's end":
            # A tar written with a large blocking factor (`tar -b 4096` pads its last record to 2 MiB): a byte of the
            # padding changed, more than a megabyte past the end-of-archive blocks. Only gzip's CRC at the very end
            # of the stream tells, and a single read past those blocks stopped short of it.
            padded = (tmp_path / "model.tar").read_bytes() + bytes(2 << 20)
            damaged = bytearray(gzip.compress(padded, compresslevel=0, mtime=0))
            damaged[damaged.rindex(bytes(4096)) + 2048] ^= 0xFF  # stored: a zero of the padding, not a block header
            artifact.write_bytes(damaged)
        else:  # a byte of the weights changed in place: stored, not deflated, it decodes; only the CRC tells
            damaged = bytearray(gzip.compress((tmp_path / "model.tar").read_bytes(), compresslevel=0, mtime=0))
            # A byte of the weights themselves, found in the stored stream: the middle byte of the gzip fell on a
            # stored block's header, a zlib.error to any read, and a check that stopped at the end-of-archive blocks
            # (never reaching gzip's CRC past them) passed every test.
            damaged[damaged.index(weights.read_bytes()[128 * 1024 : 128 * 1024 + 16])] ^= 0xFF
            artifact.write_bytes(damaged)
    with pytest.raises(pulumi.RunError) as err:
        program(modelArtifact=str(artifact))
    says = f"model artifact {artifact} is not a whole tar.gz archive ("
    assert str(err.value).startswith(says), err.value
    assert str(err.value).endswith("): set modelArtifact to the file `make model` builds, or build it again")
    assert "\n" not in str(err.value)
    assert mocks.resources == {}


def test_relative_artifact_path_resolves_against_the_project_root(mocks: RecordingMocks) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_main(mocks, {"modelArtifact": "model/dist/does-not-exist.tar.gz"})
    assert str(ROOT / "model/dist/does-not-exist.tar.gz") in str(err.value)


def test_the_program_finds_its_files_from_any_working_directory(
    program: Any, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """www/ and handlers/ are the project's, wherever the program is run from (as modelArtifact is, above)."""
    monkeypatch.chdir(tmp_path)
    program()
    [index] = [o for o in mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2").values() if o["key"] == "index.html"]
    assert index["source"].path == str(ROOT / "www" / "index.html")


def test_the_lambda_asset_is_asked_for_the_handlers_and_powertools(
    program: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests' stub bundles the handler sources only, whatever it is asked for: a program asking for no
    distributions would deploy a function whose first import of aws_lambda_powertools fails."""
    asked: list[tuple[Path, tuple[str, ...]]] = []

    def record(handler_dir: Path, distributions: Any = lambda_bundle.BUNDLED_DISTRIBUTIONS) -> dict[str, Path]:
        asked.append((handler_dir, tuple(distributions)))
        return fake_lambda_asset_files(handler_dir)

    monkeypatch.setattr(sys.modules["components.lambda_bundle"], "lambda_asset_files", record)
    program()
    assert asked == [(ROOT / "handlers", ("aws-lambda-powertools",))]


def test_every_real_asset_path_exists(program: Any, mocks: RecordingMocks) -> None:
    program()
    sources = [
        o["source"].path for o in mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2").values() if "source" in o
    ]
    code = mocks.one("aws:lambda/function:Function")["code"].assets
    paths = [*sources, *(asset.path for asset in code.values())]
    assert len(sources) >= 4 and code
    missing = [p for p in paths if not Path(p).is_file()]
    assert missing == []
    # The real www/ tree is uploaded in full (minus config.js, which is rendered).
    keys = {o["key"] for o in mocks.of_type("aws:s3/bucketObjectv2:BucketObjectv2").values()}
    assert set(policies.site_files(ROOT / "www")) | {"config.js"} <= keys
    assert {"index.html", "script.js", "style.css"} <= keys


def test_real_lambda_bundle() -> None:
    """The bundle the program ships has the handler and Powertools, all files real."""
    files = lambda_bundle.lambda_asset_files(ROOT / "handlers")
    assert "handlers/inference_proxy.py" in files
    assert any(k.startswith("aws_lambda_powertools/") for k in files)
    assert all(Path(p).is_file() for p in files.values())


def test_every_distribution_in_the_lambda_asset_is_pinned_at_the_installed_version() -> None:
    """The asset holds the deploy venv's copy of Powertools and of what it requires (jmespath, typing-extensions). Each
    must be pinned (==) in requirements.txt at the version the venv holds: a venv made later (a CI runner, another
    machine) would otherwise install a newer one, and a `pulumi up` with nothing changed in the repository would
    update the function's code."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if requirement := line.split("#", 1)[0].strip():
            parsed = Requirement(requirement)
            pins[lambda_bundle.canonical_name(parsed.name)] = str(parsed.specifier)
    bundled = lambda_bundle.resolve_distributions(lambda_bundle.BUNDLED_DISTRIBUTIONS)
    assert {lambda_bundle.canonical_name(dist.metadata["Name"]) for dist in bundled} >= {"aws-lambda-powertools"}
    unpinned = [
        f"{dist.metadata['Name']} {dist.version} (requirements.txt: {pins.get(name) or 'absent'})"
        for dist in bundled
        if pins.get(name := lambda_bundle.canonical_name(dist.metadata["Name"])) != f"=={dist.version}"
    ]
    assert unpinned == []


def test_resource_options_order_the_deploy_and_parent_every_child(program: Any, mocks: RecordingMocks) -> None:
    """Options the mocks never see (parent, depends_on, ignore_changes), read through a stack transformation.

    Each depends_on below orders something AWS would otherwise race: an endpoint writing logs before its log
    group exists (AWS would create one without retention), a model or function created before its role's
    policy is attached, objects uploaded before the bucket's encryption, a bucket policy before the public
    access block, an invalidation before the new files, a new index.html before a file it loads (S3's 403 for the
    missing file, which CloudFront keeps 10 s whatever its Cache-Control).
    """
    seen: dict[str, tuple[str, str | None, set[str], list[str] | None]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        deps = (opts.depends_on or []) if opts else []
        deps = deps if isinstance(deps, list) else [deps]
        parent = opts.parent._name if opts and opts.parent else None  # type: ignore[attr-defined]
        names = {d._name for d in deps}  # type: ignore[attr-defined]
        seen[args.name] = (args.type_, parent, names, opts.ignore_changes if opts else None)

    program(transformation=record)
    components = {name for name, (typ, *_) in seen.items() if typ.startswith("mobilenet-serverless:index:")}
    assert components == {"model", "api", "site"}
    for name, (_, parent, _, _) in seen.items():
        if name not in components:
            assert parent in components and name.startswith(f"{parent}-"), f"{name} is not a child of its component"

    def deps(name: str) -> set[str]:
        return seen[name][2]

    assert deps("model-endpoint") >= {"model-log-group", "model-version"}
    assert deps("model-version") >= {"model-log-group"}  # the log group outlives the endpoint's deletion
    assert deps("model-model") >= {"model-artifact", "model-role-policy"}
    assert deps("model-artifact") >= {"model-bucket-encryption"}
    assert deps("model-bucket-policy") >= {"model-bucket-public-access"}
    assert deps("model-smoke-check") >= {"model-endpoint"}
    assert deps("api-function") >= {"api-log-group", "api-role-policy"}
    assert deps("api-integration") >= {"api-invoke-permission"}
    assert deps("site-bucket-policy") >= {"site-bucket-public-access"}
    files = {name for name in seen if name.startswith("site-file-")}
    assert "site-file-config.js" in files and "site-file-index.html" in files
    assert all(deps(name) >= {"site-bucket-encryption"} for name in files)
    assert deps("site-invalidation") >= files
    assert deps("site-file-index.html") >= files - {"site-file-index.html"}
    # The CORS rules are applied by the api-cors dynamic resource; without this a refresh would wipe them.
    assert seen["api-http-api"][3] == ["corsConfiguration"]


def test_no_resource_is_declared_inside_an_apply(program: Any) -> None:
    """House style: a component declares every child in its __init__, never in an apply(). One declared in an apply
    runs only once its inputs are known: `pulumi preview` does not show it where they are not, and its own outputs
    cannot feed what was declared before it. A child is declared inside an apply when no component's __init__ is on
    the stack that declares it (the engine runs an apply's callback later, from its loop). The dev stack and the
    default one; a child moved into an apply (the invalidation, on content_hash) fails it."""
    children: list[str] = []
    outside: list[str] = []

    def in_a_component_init(frame: Any) -> bool:
        while frame is not None:
            component = frame.f_locals.get("self") if frame.f_code.co_name == "__init__" else None
            if isinstance(component, pulumi.ComponentResource):
                return True
            frame = frame.f_back
        return False

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        if isinstance(args.resource, pulumi.ComponentResource):
            return
        children.append(args.name)
        if not in_a_component_init(sys._getframe()):
            outside.append(args.name)

    program(transformation=record, **dev_config())
    program(transformation=record)
    assert {"model-smoke-check", "api-cors", "site-file-config.js", "site-invalidation"} <= set(children)
    assert outside == []


def unlisted_classes(table: str, classes: set[tuple[str, bool]]) -> list[str]:
    """The classes (name, is a component) that the README's Terraform table does not name: a resource class as code
    (`aws.cloudwatch.MetricAlarm`, `BucketPolicy`), a component in its Component column."""
    return sorted(
        name
        for name, component in classes
        if (f"| {name} |" not in table if component else not re.search(rf"[`.]{name}`", table))
    )


def test_the_terraform_table_names_every_class_the_program_declares(program: Any) -> None:
    """The table says the program creates everything and lists it by component; the six alarms (MetricAlarm, three
    per component, on by default) were in no row, so a reader taking the table for the stack's inventory missed them.
    Every class declared by the dev stack, read through a stack transformation."""
    classes: set[tuple[str, bool]] = set()

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        classes.add((type(args.resource).__name__, isinstance(args.resource, pulumi.ComponentResource)))

    program(transformation=record, **dev_config())
    assert {("MetricAlarm", False), ("EndpointVersion", False), ("StaticSite", True)} <= classes
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("\n## Terraform original → this program\n", 1)[1].split("\n## ")[0]
    assert unlisted_classes(table, classes) == []
    assert unlisted_classes(table.replace("MetricAlarm", "Alarm"), classes) == ["MetricAlarm"]  # the check can fail
    assert unlisted_classes(table.replace("| StaticSite |", "| Site |"), classes) == ["StaticSite"]


def test_no_resource_is_protected_or_retained_so_destroy_removes_the_stack(program: Any) -> None:
    """README: `pulumi destroy` deletes the stack's resources, buckets and log groups included. A protected resource
    fails the destroy (and every replacement of it), and one retained on delete is left behind in the account: the
    site's bucket, its guards or its files with no stack to remove them. Only the model's artifact, Model and
    EndpointConfiguration are retained, on purpose (components/serverless_endpoint.py: EndpointVersion deletes the
    last two once no endpoint runs on them; the bucket's force_destroy takes the artifacts). Options the mocks never
    see, read through a stack transformation."""
    flags: dict[str, tuple[bool | None, bool | None]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        flags[args.name] = (opts.protect, opts.retain_on_delete) if opts else (None, None)

    program(transformation=record)
    assert {"site-bucket", "site-bucket-public-access", "model-bucket", "site-file-index.html"} <= set(flags)
    assert [name for name, (protect, _) in flags.items() if protect] == []
    assert {name for name, (_, retain) in flags.items() if retain} == {"model-artifact", "model-model", "model-config"}


def test_no_alarm_is_put_before_the_log_groups_named_after_the_same_function_or_endpoint(program: Any) -> None:
    """Two stacks of a region that want one name (one endpointName in both, or `<project>-<stack>` spelt alike): a
    log group's create fails on the name the other stack holds, an alarm's create (PutMetricAlarm) overwrites the
    other stack's alarm without a word, and the second stack's destroy then deletes it. So every alarm waits for the
    log groups whose names it shares: the API's 5xx alarm, whose only dimension is the API, was put as soon as the
    API existed, alongside those creates (at once in an endpointName change, where the API is already there)."""
    deps: dict[str, set[str]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        found = (args.opts.depends_on or []) if args.opts else []
        deps[args.name] = {d._name for d in (found if isinstance(found, list) else [found])}  # type: ignore[attr-defined]

    program(transformation=record)
    alarms = sorted(name for name in deps if "-alarm-" in name)
    assert len(alarms) == 6
    for name in alarms:
        groups = {"api-log-group", "api-access-logs"} if name.startswith("api-") else {"model-log-group"}
        assert deps[name] >= groups, name


def test_everything_an_endpoint_rename_replaces_is_created_before_the_old_one_is_deleted(
    program: Any, mocks: RecordingMocks
) -> None:
    """An endpointName change renames, and so replaces, every resource whose fixed name follows it: the endpoint, the
    proxy (its name follows the endpoint's), their log groups and the alarms. The bridge replaces an explicitly named
    resource delete-first (pulumi-terraform #465) unless told otherwise: the endpoint would leave nothing serving while
    the new one starts, and an old log group would go while its endpoint or function still writes to it for the whole
    update (SageMaker's role may create it again, bare: no retention, in no stack). Every new name differs from the
    old, so create-first is safe for all of them; README's quota note counts both endpoints during the overlap."""
    dbr: dict[str, bool | None] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        dbr[args.name] = args.opts.delete_before_replace if args.opts else None

    def fixed_names() -> dict[str, str]:
        return {name: inputs["name"] for (_, name), inputs in mocks.resources.items() if "name" in inputs}

    program(transformation=record)
    before = fixed_names()
    mocks.resources.clear()
    program(transformation=record, endpointName="classifier-renamed")
    after = fixed_names()
    renamed = sorted(name for name in before if after[name] != before[name])
    assert {"model-endpoint", "api-function", "model-log-group", "api-log-group", "api-access-logs"} <= set(renamed)
    assert {"model-alarm-5xx", "api-alarm-errors"} <= set(renamed)
    assert not {after[name] for name in renamed} & set(before.values())  # no new name is an old one
    # Explicitly False: None would leave the bridge's delete-first.
    assert {name: dbr[name] for name in renamed} == dict.fromkeys(renamed, False)


def test_a_rename_gives_the_proxy_a_new_role_so_the_old_function_keeps_its_grants(
    program: Any, mocks: RecordingMocks
) -> None:
    """Until the API's integration moves to the renamed function, the old one serves /predict with the old endpoint
    and log group. The proxy's role is shared by both and its policy names exactly one endpoint and one log group:
    updated in place it would deny the old function both (a 502 AccessDeniedException for each request, and no log
    of it). So the role is replaced with the function: the new one (and its policy, which names the role by id, a
    replacing input) is created first, and the old one keeps its grants until the old function is deleted."""
    options: dict[str, pulumi.ResourceOptions | None] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        options[args.name] = args.opts

    def role_and_policy() -> tuple[dict[str, Any], dict[str, Any]]:
        inputs = comparable_inputs(mocks)
        return inputs["aws:iam/role:Role::api-role"], inputs["aws:iam/rolePolicy:RolePolicy::api-role-policy"]

    program(transformation=record)
    role_before, policy_before = role_and_policy()
    mocks.resources.clear()
    program(transformation=record, endpointName="classifier-renamed")
    role_after, policy_after = role_and_policy()
    assert policy_after["policy"] != policy_before["policy"]  # the grants move to the new endpoint and log group
    assert policy_after["role"] == "api-role-a1b2c3"  # the role's id (the mocks' name for it)
    changed = sorted(k for k in role_before.keys() | role_after.keys() if role_before.get(k) != role_after.get(k))
    assert changed
    opts = options["api-role"]
    assert opts is not None and set(changed) <= set(opts.replace_on_changes or [])
    assert opts.delete_before_replace is not True  # auto-named: the new role first


def test_pulumi_never_deletes_what_a_rolled_back_endpoint_may_still_run_on(program: Any, mocks: RecordingMocks) -> None:
    """After SageMaker rolls an update back, the endpoint runs on the previous Model, EndpointConfiguration and
    artifact, which Pulumi would delete (at the end of the update, or the start of the next). So Pulumi never
    deletes them itself: the version resource retires the Model and configuration once unused, and the
    force_destroy bucket takes the artifacts on `pulumi destroy`."""
    retained: dict[str, bool] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        retained[args.name] = bool(args.opts and args.opts.retain_on_delete)

    program(transformation=record)
    assert {name for name, keep in retained.items() if keep} == {"model-artifact", "model-model", "model-config"}
    assert mocks.one("aws:s3/bucket:Bucket", "model-bucket")["forceDestroy"] is True
    version = mocks.one("pulumi-python:dynamic:Resource", "model-version")
    assert version["endpoint_name"] == mocks.one("aws:sagemaker/endpoint:Endpoint", "model-endpoint")["name"]
    assert version["config_name"] == "model-config-a1b2c3" and version["model_name"] == "model-model-a1b2c3"
    assert version["region"] == REGION


def test_a_kms_change_uploads_the_artifact_afresh_under_the_same_key(program: Any, mocks: RecordingMocks) -> None:
    """kmsKeyArn set or unset changes only the artifact object's encryption inputs, under the same content-addressed
    key. The aws provider updates such an object in place with a new PutObject, and its kmsKeyId is optional and
    computed: unset, it keeps the old key's ARN from the state, so going back to SSE-S3 sends that ARN with AES256,
    which S3 refuses (400 InvalidArgument "Server Side Encryption with AWS KMS managed key requires HTTP header
    x-amz-server-side-encryption : aws:kms"), and `pulumi up` cannot proceed. A change to either input replaces the
    object instead: the new one is uploaded from its own inputs, over the same key, and the old one is retained
    (never deleted), so the replacement cannot remove the object it has just written."""
    options: list[pulumi.ResourceOptions] = []

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        if args.name == "model-artifact":
            options.append(args.opts)

    def artifact() -> dict[str, Any]:
        return comparable_inputs(mocks)["aws:s3/bucketObjectv2:BucketObjectv2::model-artifact"]

    program(transformation=record, kmsKeyArn=KMS)
    with_key = artifact()
    mocks.resources.clear()
    program(transformation=record)
    without_key = artifact()
    assert with_key["key"] == without_key["key"] and with_key["source"] == without_key["source"]
    changed = sorted(k for k in with_key.keys() | without_key.keys() if with_key.get(k) != without_key.get(k))
    assert changed == ["kmsKeyId", "serverSideEncryption"]
    # SSE-S3 said outright: serverSideEncryption is optional and computed too, so left unset it would keep the state's
    # aws:kms, nothing would be replaced, and the artifact would stay under the key the role may no longer decrypt.
    assert without_key["serverSideEncryption"] == "AES256" and "kmsKeyId" not in without_key
    assert options
    for opts in options:
        assert set(changed) <= set(opts.replace_on_changes or [])
        assert opts.retain_on_delete is True


# The container environment of the Model every release before EndpointVersion deployed (f37e4a0's parent), which
# the program kept through f2bb135. Pulumi deletes a replaced resource as its state says (pulumi/pulumi#13428), and
# such a stack's state has the Model and EndpointConfiguration without retain_on_delete: its first `pulumi up` after
# an upgrade must replace neither, so it must come from a commit that declares this very Model.
BEFORE_ENDPOINT_VERSION_ENV = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "SAGEMAKER_REGION": REGION,
    "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    "TS_DEFAULT_WORKERS_PER_MODEL": "1",
}
UPGRADE_NOTE = "- **Upgrading a stack deployed before `EndpointVersion`.**"


def upgrade_note(readme: str) -> str:
    start = readme.index(UPGRADE_NOTE)
    end = readme.find("\n- **", start + 1)
    return readme[start : end if end > 0 else None]


def upgrade_note_problem(note: str, environment: dict[str, str]) -> tuple[str | None, str | None]:
    """(what the README's upgrade note gets wrong for a Model declared with `environment`, or None; the commit it
    sends the first `pulumi up` to, or None)."""
    changed = sorted(
        k
        for k in environment.keys() | BEFORE_ENDPOINT_VERSION_ENV.keys()
        if environment.get(k) != BEFORE_ENDPOINT_VERSION_ENV.get(k)
    )
    if not changed:
        return None, None  # this release replaces nothing: its own first `pulumi up` will do
    step = re.search(r"`git switch --detach ([0-9a-f]{7,40})`", note)
    if step is None:
        return (
            f"this release's Model differs in {changed}, so its first `pulumi up` replaces it: the note must "
            "send that step to a commit that declares the deployed one (`git switch --detach <commit>`)",
            None,
        )
    unnamed = [k for k in changed if f"`{k}`" not in note]
    if unnamed:
        return f"the note does not name {unnamed}, which replace the Model", step.group(1)
    return None, step.group(1)


def container_env_keys(source: str) -> set[str]:
    """The keys of the dict literal policies.sagemaker_container_env returns in `source`."""
    [function] = [n for n in ast.walk(ast.parse(source)) if getattr(n, "name", None) == "sagemaker_container_env"]
    [returned] = [n.value for n in ast.walk(function) if isinstance(n, ast.Return)]
    assert isinstance(returned, ast.Dict) and None not in returned.keys, "not a plain dict literal"
    return {key.value for key in returned.keys}


def test_the_upgrade_note_takes_a_stack_from_before_endpoint_version_through_its_own_model(
    program: Any, mocks: RecordingMocks
) -> None:
    """The note said the first `pulumi up` with the same artifact shows nothing replaced; since c2ec234 (the JVM's
    heap) and 738abf7 (TorchServe's response timeout) this release's Model has another container environment, so
    that `pulumi up` replaced the Model and EndpointConfiguration and Pulumi deleted the old ones itself, the very
    thing the note is there to avoid (after a rolled-back update, under the endpoint still running on them)."""
    program(**dev_config())
    environment = mocks.one("aws:sagemaker/model:Model")["primaryContainer"]["environment"]
    problem, commit = upgrade_note_problem(upgrade_note((ROOT / "README.md").read_text(encoding="utf-8")), environment)
    assert problem is None
    if commit is None:
        return
    sources = {}
    for path in ("components/policies.py", "components/serverless_endpoint.py"):
        try:
            shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True)
        except FileNotFoundError:
            skip_or_fail("no git on this machine to read the upgrade note's commit", "CI runs in a clone and needs git")
        if shown.returncode != 0:
            shallow = subprocess.run(
                ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True
            )
            if shallow.stdout.strip() == "true":
                return  # a shallow clone (CI's `--depth 1`) has no older commit to read: the README's part ran above
            skip_or_fail(
                f"{commit} is not in this checkout's history: {shown.stderr.strip()}", "CI must run in a clone"
            )
        sources[path] = shown.stdout
    assert container_env_keys(sources["components/policies.py"]) == set(BEFORE_ENDPOINT_VERSION_ENV)
    assert "EndpointVersion(" in sources["components/serverless_endpoint.py"]


def test_an_upgrade_note_that_replaces_the_deployed_model_is_caught() -> None:
    before = "- **Upgrading a stack deployed before `EndpointVersion`.** Run the first `pulumi up` after upgrading."
    head = {**BEFORE_ENDPOINT_VERSION_ENV, "JAVA_TOOL_OPTIONS": "-Xmx512m"}
    problem, _ = upgrade_note_problem(before, head)
    assert problem is not None and "['JAVA_TOOL_OPTIONS']" in problem
    stepped = f"{before} `git switch --detach f2bb135` adds `TS_DEFAULT_RESPONSE_TIMEOUT`"
    assert upgrade_note_problem(stepped, head) == (
        "the note does not name ['JAVA_TOOL_OPTIONS'], which replace the Model",
        "f2bb135",
    )
    workers = {**BEFORE_ENDPOINT_VERSION_ENV, "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}  # a changed value replaces it too
    assert "['SAGEMAKER_MODEL_SERVER_WORKERS']" in str(upgrade_note_problem(before, workers)[0])
    assert upgrade_note_problem(before, dict(BEFORE_ENDPOINT_VERSION_ENV)) == (None, None)
    assert container_env_keys("def sagemaker_container_env(r):\n    return {'A': r, 'B': '1'}\n") == {"A", "B"}


# The dev stack's resources as the engine names them (type, logical name, parent component): a logical name is part
# of the URN, so renaming one replaces the resource on every stack already deployed (a bucket with its objects, a log
# group with its logs, an endpoint with a cold start). Change this list only with an `aliases` option, or knowingly.
DEV_STACK_RESOURCES = {
    ("mobilenet-serverless:index:ServerlessEndpoint", "model", None),
    ("mobilenet-serverless:index:InferenceApi", "api", None),
    ("mobilenet-serverless:index:StaticSite", "site", None),
    *(
        (typ, name, "ServerlessEndpoint")
        for typ, name in [
            ("aws:s3/bucket:Bucket", "model-bucket"),
            ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "model-bucket-ownership"),
            ("aws:s3/bucketPolicy:BucketPolicy", "model-bucket-policy"),
            ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "model-bucket-public-access"),
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "model-bucket-encryption",
            ),
            ("aws:s3/bucketObjectv2:BucketObjectv2", "model-artifact"),
            ("aws:iam/role:Role", "model-role"),
            ("aws:iam/rolePolicy:RolePolicy", "model-role-policy"),
            ("aws:cloudwatch/logGroup:LogGroup", "model-log-group"),
            ("aws:sagemaker/model:Model", "model-model"),
            ("aws:sagemaker/endpointConfiguration:EndpointConfiguration", "model-config"),
            ("aws:sagemaker/endpoint:Endpoint", "model-endpoint"),
            ("pulumi-python:dynamic:Resource", "model-version"),
            ("pulumi-python:dynamic:Resource", "model-smoke-check"),
            ("aws:cloudwatch/metricAlarm:MetricAlarm", "model-alarm-5xx"),
            ("aws:cloudwatch/metricAlarm:MetricAlarm", "model-alarm-latency"),
            ("aws:cloudwatch/metricAlarm:MetricAlarm", "model-alarm-concurrency"),
        ]
    ),
    *(
        (typ, name, "InferenceApi")
        for typ, name in [
            ("aws:iam/role:Role", "api-role"),
            ("aws:iam/rolePolicy:RolePolicy", "api-role-policy"),
            ("aws:cloudwatch/logGroup:LogGroup", "api-log-group"),
            ("aws:cloudwatch/logGroup:LogGroup", "api-access-logs"),
            ("aws:lambda/function:Function", "api-function"),
            ("aws:lambda/permission:Permission", "api-invoke-permission"),
            ("aws:apigatewayv2/api:Api", "api-http-api"),
            ("aws:apigatewayv2/integration:Integration", "api-integration"),
            ("aws:apigatewayv2/route:Route", "api-route"),
            ("aws:apigatewayv2/stage:Stage", "api-stage"),
            ("pulumi-python:dynamic:Resource", "api-cors"),
            ("aws:cloudwatch/metricAlarm:MetricAlarm", "api-alarm-5xx"),
            ("aws:cloudwatch/metricAlarm:MetricAlarm", "api-alarm-errors"),
            ("aws:cloudwatch/metricAlarm:MetricAlarm", "api-alarm-throttles"),
        ]
    ),
    *(
        (typ, name, "StaticSite")
        for typ, name in [
            ("aws:s3/bucket:Bucket", "site-bucket"),
            ("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "site-bucket-ownership"),
            ("aws:s3/bucketPolicy:BucketPolicy", "site-bucket-policy"),
            ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "site-bucket-public-access"),
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "site-bucket-encryption",
            ),
            ("aws:cloudfront/originAccessControl:OriginAccessControl", "site-oac"),
            ("aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy", "site-headers"),
            ("aws:cloudfront/distribution:Distribution", "site-cdn"),
            ("pulumi-python:dynamic:Resource", "site-invalidation"),
        ]
    ),
}


def test_the_dev_stacks_resources_keep_their_names_types_and_parents(program: Any) -> None:
    """A mutation audit renamed `{name}-bucket-ownership` and only the policy guard noticed; a renamed resource is a
    replaced one on every deployed stack. The site's files (one `site-file-<key>` each, www/'s to come and go) are
    held by their prefix and parent only."""
    seen = []

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        parent = args.opts.parent if args.opts else None
        seen.append((args.type_, args.name, type(parent).__name__ if parent else None))

    program(transformation=record, **dev_config())
    files = {row for row in seen if row[1].startswith("site-file-")}
    assert len(seen) == len(set(seen))  # no logical name twice: the engine refuses a duplicate URN
    assert set(seen) - files == DEV_STACK_RESOURCES
    assert {"site-file-index.html", "site-file-script.js", "site-file-style.css"} <= {name for _, name, _ in files}
    assert {(typ, parent) for typ, _, parent in files} == {("aws:s3/bucketObjectv2:BucketObjectv2", "StaticSite")}
