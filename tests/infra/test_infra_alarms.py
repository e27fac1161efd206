"""CloudWatch alarms: the pure specs (components/alarms.py), the components' MetricAlarm children under mocks, and
the alarms / alarmTopicArn settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import alarms, policies
from components.inference_api import InferenceApi, InferenceApiArgsError
from components.serverless_endpoint import ServerlessEndpoint, ServerlessEndpointArgsError
from components.settings import CONFIG_KEYS, MAX_CONCURRENCY_RANGE, SettingsError, validate_settings
from tests.infra.conftest import API_ID, REGION, RecordingMocks, settle
from tests.infra.test_infra_components import api_args, endpoint_args

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:ops-alerts"


def by_name(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    return mocks.of_type(ALARM)


# ------------------------------------------------------------------------------------------ pure specs


def test_inference_api_specs() -> None:
    specs = {
        s.key: s
        for s in alarms.inference_api_alarms("fn-proxy", "/aws/apigateway/fn-proxy-access", "/aws/lambda/fn-proxy")
    }
    assert set(specs) == {"5xx", "errors", "throttles"}
    api = specs["5xx"]
    assert (api.namespace, api.metric_name, api.dimension_names) == ("AWS/ApiGateway", "5xx", ("ApiId",))
    assert (api.statistic, api.period_s, api.evaluation_periods, api.datapoints_to_alarm, api.threshold) == (
        "Sum",
        300,
        3,
        2,
        5,
    )
    for key in ("errors", "throttles"):
        spec = specs[key]
        assert (spec.namespace, spec.dimension_names, spec.statistic) == ("AWS/Lambda", ("FunctionName",), "Sum")
        assert (spec.period_s, spec.evaluation_periods, spec.datapoints_to_alarm, spec.threshold) == (300, 1, 1, 1)
    assert (specs["errors"].metric_name, specs["throttles"].metric_name) == ("Errors", "Throttles")
    assert [s.alarm_name for s in specs.values()] == ["fn-proxy-api-5xx", "fn-proxy-errors", "fn-proxy-throttles"]
    # The operator is told where to look: the log groups and the README's runbook.
    assert "/aws/apigateway/fn-proxy-access" in api.description and "/aws/lambda/fn-proxy" in api.description
    assert all("/aws/lambda/fn-proxy" in s.description or "quota" in s.description for s in specs.values())
    assert all("README.md, section 'Alarms'" in s.description for s in specs.values())
    assert "answered 5 or more 5xx" in api.description  # the threshold the alarm fires at, not another one's


def test_serverless_endpoint_specs() -> None:
    specs = {s.key: s for s in alarms.serverless_endpoint_alarms("ep", "/aws/sagemaker/Endpoints/ep")}
    assert set(specs) == {"5xx", "latency", "concurrency"}
    errors, latency, concurrency = specs["5xx"], specs["latency"], specs["concurrency"]
    assert (errors.namespace, errors.metric_name, errors.statistic, errors.threshold) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
        3,
    )
    assert (errors.period_s, errors.evaluation_periods, errors.datapoints_to_alarm) == (300, 1, 1)
    assert (latency.namespace, latency.metric_name, latency.statistic) == ("AWS/SageMaker", "ModelLatency", "Average")
    # ModelLatency is in microseconds: 1 s, for three 5-minute periods in a row.
    assert latency.threshold == 1_000_000
    assert (latency.period_s, latency.evaluation_periods, latency.datapoints_to_alarm) == (300, 3, 3)
    # The endpoint's own throttling measure: a fraction of MaxConcurrency, at 1.0 when every slot is busy. SageMaker
    # publishes it per endpoint, where the proxy's EMF `Errors` series is shared by every stack in the region.
    assert (concurrency.namespace, concurrency.metric_name, concurrency.statistic, concurrency.threshold) == (
        "AWS/SageMaker",
        "ServerlessConcurrentExecutionsUtilization",
        "Maximum",
        1.0,
    )
    assert (concurrency.period_s, concurrency.evaluation_periods, concurrency.datapoints_to_alarm) == (300, 3, 2)
    assert errors.dimension_names == latency.dimension_names == concurrency.dimension_names
    assert errors.dimension_names == ("EndpointName", "VariantName")
    assert (errors.alarm_name, latency.alarm_name, concurrency.alarm_name) == (
        "ep-invocation-5xx",
        "ep-model-latency",
        "ep-concurrency",
    )
    assert "/aws/sagemaker/Endpoints/ep" in errors.description and "/aws/sagemaker/Endpoints/ep" in latency.description
    # Throttled calls never reach the container: the proxy's log has a line for each, and the setting to raise.
    assert "/aws/lambda/ep-proxy" in concurrency.description and "error throttled" in concurrency.description
    # The proxy retries a throttled call once (TOTAL_MAX_ATTEMPTS): a 429, and its line, only when both attempts were
    # refused. "A line for each" refused call sent an operator who found few or none to dismiss the alarm.
    assert "only when the retry is refused too" in concurrency.description
    assert "none if every retry found a slot" in concurrency.description
    assert "maxConcurrency" in concurrency.description and "README.md, section 'Alarms'" in concurrency.description
    # The descriptions state the thresholds the alarms fire at, in the units an operator reads.
    assert "3 or more InvokeEndpoint calls" in errors.description
    # The toolkit returns a failed inference's error and traceback to the caller and logs neither (TorchServe's log
    # holds only 'POST /invocations HTTP/1.1" 500'): the proxy's log, which quotes them, is where to read them.
    assert "/aws/lambda/ep-proxy" in errors.description and "model_error" in errors.description
    assert "tracebacks from inference.py" not in errors.description
    assert "1000 ms or more per inference" in latency.description


def test_every_spec_treats_missing_data_as_not_breaching_and_fits_cloudwatch() -> None:
    specs = [
        *alarms.inference_api_alarms(
            "f" * 64, policies.api_access_log_group_name("f" * 64), policies.lambda_log_group_name("f" * 64)
        ),
        *alarms.serverless_endpoint_alarms("e" * 63, "/aws/sagemaker/Endpoints/x"),
    ]
    for spec in specs:
        assert spec.treat_missing_data == "notBreaching", spec.key
        assert spec.comparison_operator == "GreaterThanOrEqualToThreshold", spec.key
        assert spec.datapoints_to_alarm <= spec.evaluation_periods, spec.key
        assert spec.period_s % 60 == 0 and spec.period_s * spec.evaluation_periods <= 86_400, spec.key
        assert len(spec.alarm_name) <= 255 and len(spec.description) <= 1024, spec.key  # PutMetricAlarm limits
        assert spec.description.endswith(f"Runbook: {alarms.RUNBOOK}."), spec.key  # the module's promise
    # Each name keeps the whole endpoint or function name: two stacks sharing a prefix must not share an alarm (a
    # PutMetricAlarm of one would overwrite the other's). The function's was cut, and every test passed.
    assert {s.alarm_name for s in specs} == {
        "f" * 64 + "-api-5xx",
        "f" * 64 + "-errors",
        "f" * 64 + "-throttles",
        "e" * 63 + "-invocation-5xx",
        "e" * 63 + "-model-latency",
        "e" * 63 + "-concurrency",
    }


def test_the_concurrency_alarm_names_the_highest_max_concurrency() -> None:
    [spec] = [s for s in alarms.serverless_endpoint_alarms("ep", "/g") if s.key == "concurrency"]
    assert f"maxConcurrency setting (up to {MAX_CONCURRENCY_RANGE[1]}," in spec.description


def test_a_description_that_says_what_to_change_names_the_stack_setting() -> None:
    """The latency alarm advising "a larger memory" in place of memorySizeMb passed every test: the operator is told
    the key to set, and each key named is one the stack takes."""
    specs = {
        s.alarm_name: s
        for s in (*alarms.inference_api_alarms("fn", "/a", "/l"), *alarms.serverless_endpoint_alarms("ep", "/g"))
    }
    named = {
        "fn-throttles": "apiThrottleRateLimit",
        "ep-model-latency": "memorySizeMb",
        "ep-concurrency": "maxConcurrency",
    }
    for alarm_name, key in named.items():
        assert key in CONFIG_KEYS and key in specs[alarm_name].description, alarm_name


def test_alarms_must_be_a_bool_not_a_number() -> None:
    # 1 == True in Python: a caller's alarms=1 would pass as on, and 0 as off, though the message asks for a bool.
    assert alarms.alarm_inputs_problem(1, None) == ("alarms", "True or False")
    assert alarms.alarm_inputs_problem(0, None) == ("alarms", "True or False")
    assert alarms.alarm_inputs_problem(True, None) is None and alarms.alarm_inputs_problem(False, None) is None


def test_metric_alarm_args() -> None:
    [spec] = [s for s in alarms.serverless_endpoint_alarms("ep", "/g") if s.key == "5xx"]
    dims = {"EndpointName": "ep", "VariantName": "AllTraffic"}
    quiet = alarms.metric_alarm_args(spec, dims, None)
    assert quiet["alarm_actions"] is None and quiet["ok_actions"] is None
    assert quiet["dimensions"] == dims and quiet["treat_missing_data"] == "notBreaching"
    loud = alarms.metric_alarm_args(spec, dims, TOPIC)
    assert loud["alarm_actions"] == loud["ok_actions"] == [TOPIC]
    with pytest.raises(alarms.AlarmSpecError, match="expected"):
        alarms.metric_alarm_args(spec, {"EndpointName": "ep"}, None)
    # A dimension more names a series CloudWatch does not have: the alarm would never fire.
    with pytest.raises(alarms.AlarmSpecError, match="expected"):
        alarms.metric_alarm_args(spec, {**dims, "Stage": "prod"}, None)
    # As many dimensions, one of them another's: compared by count alone, it passed every test and named no series.
    with pytest.raises(alarms.AlarmSpecError, match="expected"):
        alarms.metric_alarm_args(spec, {"EndpointName": "ep", "Stage": "prod"}, None)
    with pytest.raises(alarms.AlarmSpecError, match="SNS topic ARN"):
        alarms.metric_alarm_args(spec, dims, "arn:aws:sqs:us-east-1:123456789012:queue")
    # "" is no topic either: taken for None, the alarm would be declared without actions and nobody told.
    with pytest.raises(alarms.AlarmSpecError, match="SNS topic ARN"):
        alarms.metric_alarm_args(spec, dims, "")


def test_metric_alarm_args_are_the_specs_own() -> None:
    """Every argument comes from the spec: the comparison and the treatment of missing data taken from the module's
    defaults, which every spec here uses, passed every test, though a spec that sets its own would be ignored."""
    [five_xx] = [s for s in alarms.serverless_endpoint_alarms("ep", "/g") if s.key == "5xx"]
    spec = dataclasses.replace(
        five_xx, comparison_operator="GreaterThanThreshold", treat_missing_data="breaching", datapoints_to_alarm=2
    )
    dims = {"EndpointName": "ep", "VariantName": "AllTraffic"}
    assert alarms.metric_alarm_args(spec, dims, TOPIC) == {
        "name": "ep-invocation-5xx",
        "alarm_description": five_xx.description,
        "namespace": "AWS/SageMaker",
        "metric_name": "Invocation5XXErrors",
        "dimensions": dims,
        "statistic": "Sum",
        "period": 300,
        "evaluation_periods": 1,
        "datapoints_to_alarm": 2,
        "threshold": 3,
        "comparison_operator": "GreaterThanThreshold",
        "treat_missing_data": "breaching",
        "alarm_actions": [TOPIC],
        "ok_actions": [TOPIC],
    }


def test_each_description_states_the_window_its_alarm_fires_in() -> None:
    """The description is what an operator reads: each said another window than its alarm's (3 of 3 periods where
    the alarm fires on 2, 15 minutes where it looks at 5) and passed every test, which read the thresholds alone."""
    [api] = [s for s in alarms.inference_api_alarms("fn", "/a", "/l") if s.key == "5xx"]
    specs = {s.key: s for s in alarms.serverless_endpoint_alarms("ep", "/g")}
    errors, latency, concurrency = specs["5xx"], specs["latency"], specs["concurrency"]
    for spec in (api, concurrency):
        assert spec.period_s == 300, spec.key
        window = f"in {spec.datapoints_to_alarm} of the last {spec.evaluation_periods} five-minute periods"
        assert window in spec.description, spec.key
    assert (errors.evaluation_periods, errors.datapoints_to_alarm) == (1, 1)
    assert f"with a 5xx in {errors.period_s // 60} minutes" in errors.description
    assert latency.datapoints_to_alarm == latency.evaluation_periods  # every period in a row
    assert f"per inference for {latency.period_s * latency.evaluation_periods // 60} minutes" in latency.description


# ------------------------------------------------------------------------------------ components


def test_inference_api_alarms(mocks: RecordingMocks) -> None:
    settle(lambda: InferenceApi("api", api_args()).api_url)
    found = by_name(mocks)
    assert set(found) == {"api-alarm-5xx", "api-alarm-errors", "api-alarm-throttles"}
    api = found["api-alarm-5xx"]
    assert api["name"] == "mobilenet-test-proxy-api-5xx"
    assert (api["namespace"], api["metricName"], api["dimensions"]) == (
        "AWS/ApiGateway",
        "5xx",
        {"ApiId": API_ID},
    )
    assert (api["statistic"], api["period"], api["evaluationPeriods"], api["datapointsToAlarm"]) == ("Sum", 300, 3, 2)
    assert api["threshold"] == 5.0 and api["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for key, metric in (("errors", "Errors"), ("throttles", "Throttles")):
        alarm = found[f"api-alarm-{key}"]
        assert (alarm["namespace"], alarm["metricName"]) == ("AWS/Lambda", metric)
        assert alarm["dimensions"] == {"FunctionName": "mobilenet-test-proxy"}
        assert (alarm["threshold"], alarm["period"], alarm["evaluationPeriods"]) == (1.0, 300, 1)
    for alarm in found.values():
        assert alarm["treatMissingData"] == "notBreaching"
        assert "alarmActions" not in alarm and "okActions" not in alarm
        assert "README.md" in alarm["alarmDescription"]
        # No unit: an alarm given one other than the metric's own matches no data point and never fires.
        assert "unit" not in alarm
    # Each log group is named as what it is: the stage's access log, and the function's own log.
    assert "access log /aws/vendedlogs/apigateway/mobilenet-test-proxy-access " in api["alarmDescription"]
    assert "proxy's log /aws/lambda/mobilenet-test-proxy " in api["alarmDescription"]
    assert "Read /aws/lambda/mobilenet-test-proxy " in found["api-alarm-errors"]["alarmDescription"]


def test_serverless_endpoint_alarms(mocks: RecordingMocks, tmp_path: Path) -> None:
    settle(lambda: ServerlessEndpoint("model", endpoint_args(tmp_path)).endpoint_name)
    found = by_name(mocks)
    assert set(found) == {"model-alarm-5xx", "model-alarm-latency", "model-alarm-concurrency"}
    errors, latency, concurrency = (found[f"model-alarm-{key}"] for key in ("5xx", "latency", "concurrency"))
    assert errors["name"] == "mobilenet-test-invocation-5xx"
    assert latency["name"] == "mobilenet-test-model-latency"
    assert (errors["namespace"], errors["metricName"], errors["statistic"], errors["threshold"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
        3.0,
    )
    assert (latency["metricName"], latency["statistic"], latency["threshold"]) == ("ModelLatency", "Average", 1e6)
    assert (latency["evaluationPeriods"], latency["datapointsToAlarm"]) == (3, 3)
    assert concurrency["name"] == "mobilenet-test-concurrency"
    assert (concurrency["metricName"], concurrency["statistic"], concurrency["threshold"]) == (
        "ServerlessConcurrentExecutionsUtilization",
        "Maximum",
        1.0,
    )
    assert (concurrency["evaluationPeriods"], concurrency["datapointsToAlarm"]) == (3, 2)
    for alarm in (errors, latency, concurrency):
        assert alarm["namespace"] == "AWS/SageMaker"
        assert alarm["dimensions"] == {"EndpointName": "mobilenet-test", "VariantName": "AllTraffic"}
        assert alarm["treatMissingData"] == "notBreaching"
        assert "unit" not in alarm  # ModelLatency is in microseconds: a unit of Milliseconds would never fire
        assert "alarmActions" not in alarm and "okActions" not in alarm
        # Whole, to its last sentence: cut at 512 characters (two of these are longer, though under CloudWatch's 1024),
        # the runbook and the setting to raise were lost, and every test passed.
        assert alarm["alarmDescription"].endswith(f"Runbook: {alarms.RUNBOOK}."), alarm["name"]
    for alarm in (errors, latency):
        assert "/aws/sagemaker/Endpoints/mobilenet-test" in alarm["alarmDescription"]
    assert "/aws/lambda/mobilenet-test-proxy " in concurrency["alarmDescription"]


class RenamingMocks(RecordingMocks):
    """Resources whose outputs differ from their inputs: the alarms must watch what AWS reports, not what was asked."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, outs = super().new_resource(args)
        if args.typ == "aws:lambda/function:Function":
            outs["name"] = "fn-as-created"
        elif args.typ == "aws:sagemaker/endpoint:Endpoint":
            outs["name"] = "endpoint-as-created"
        elif args.typ == "aws:sagemaker/endpointConfiguration:EndpointConfiguration":
            outs["productionVariants"] = [{**outs["productionVariants"][0], "variantName": "variant-as-created"}]
        return rid, outs


def test_dimension_values_are_the_resources_outputs(tmp_path: Path) -> None:
    mocks = RenamingMocks()
    pulumi.runtime.set_mocks(mocks, project="mobilenet-serverless", stack="dev", preview=False)
    settle(
        lambda: pulumi.Output.all(
            ServerlessEndpoint("model", endpoint_args(tmp_path)).endpoint_name, InferenceApi("api", api_args()).api_url
        )
    )
    dims = {name: alarm["dimensions"] for name, alarm in by_name(mocks).items()}
    assert dims == {
        "api-alarm-5xx": {"ApiId": API_ID},
        "api-alarm-errors": {"FunctionName": "fn-as-created"},
        "api-alarm-throttles": {"FunctionName": "fn-as-created"},
        "model-alarm-5xx": {"EndpointName": "endpoint-as-created", "VariantName": "variant-as-created"},
        "model-alarm-latency": {"EndpointName": "endpoint-as-created", "VariantName": "variant-as-created"},
        "model-alarm-concurrency": {"EndpointName": "endpoint-as-created", "VariantName": "variant-as-created"},
    }


def test_topic_gets_alarm_and_ok_actions(mocks: RecordingMocks, tmp_path: Path) -> None:
    settle(
        lambda: pulumi.Output.all(
            ServerlessEndpoint("model", endpoint_args(tmp_path, alarm_topic_arn=TOPIC)).endpoint_name,
            InferenceApi("api", api_args(alarm_topic_arn=TOPIC)).api_url,
        )
    )
    found = by_name(mocks)
    assert len(found) == 6
    for name, alarm in found.items():
        assert alarm["alarmActions"] == [TOPIC] and alarm["okActions"] == [TOPIC], name
        assert "insufficientDataActions" not in alarm, name


def test_alarms_off_creates_none(mocks: RecordingMocks, tmp_path: Path) -> None:
    settle(
        lambda: pulumi.Output.all(
            ServerlessEndpoint("model", endpoint_args(tmp_path, alarms=False)).endpoint_name,
            InferenceApi("api", api_args(alarms=False)).api_url,
        )
    )
    assert by_name(mocks) == {}
    assert mocks.of_type("aws:lambda/function:Function") and mocks.of_type("aws:sagemaker/endpoint:Endpoint")


BAD_TOPICS = [
    "arn:aws:sqs:us-east-1:123456789012:queue",
    "arn:aws:sns:us-east-1:123456789012",
    "arn:aws:sns:us-east-1:12345:topic",
    "arn:aws:sns:us-east-1:12345678901:topic",  # an account ID has 12 digits, not 11
    "arn:aws:sns:us-east-1:123456789012:bad.name",
    "arn:aws:sns:us-east-1:123456789012:" + "t" * 257,
    "arn:aws-cn:sns:us-east-1:123456789012:topic",  # the China partition has no us-east-1
    "arn:aws:sns:cn-north-1:123456789012:topic",
    "arn:aws:sns:us-east-1:123456789012:topic.fifo",
    "arn:aws:sns:us-east-1:123456789012:topic\n",
    "ops-alerts",
]


@pytest.mark.parametrize("topic", [*BAD_TOPICS, ""])  # "" unsets the config key, but is no topic to a component
def test_component_args_refuse_a_bad_topic(tmp_path: Path, topic: str) -> None:
    with pytest.raises(InferenceApiArgsError, match=r"InferenceApiArgs\.alarm_topic_arn = "):
        api_args(alarm_topic_arn=topic).validate()
    with pytest.raises(ServerlessEndpointArgsError, match=r"ServerlessEndpointArgs\.alarm_topic_arn = "):
        endpoint_args(tmp_path, alarm_topic_arn=topic).validate()


def test_component_args_refuse_a_topic_without_alarms(tmp_path: Path) -> None:
    with pytest.raises(InferenceApiArgsError, match=r"alarm_topic_arn = .*None whenever alarms is False"):
        api_args(alarms=False, alarm_topic_arn=TOPIC).validate()
    with pytest.raises(ServerlessEndpointArgsError, match=r"alarm_topic_arn = .*None whenever alarms is False"):
        endpoint_args(tmp_path, alarms=False, alarm_topic_arn=TOPIC).validate()
    with pytest.raises(InferenceApiArgsError, match=r"InferenceApiArgs\.alarms = "):
        api_args(alarms="false").validate()


def test_component_args_tell_a_bad_topic_as_bad_even_without_alarms(tmp_path: Path) -> None:
    """Checked in the settings' order: the topic itself first. Asked the other way round, a bad topic with alarms off
    was told only to be None, and every test passed; the settings say what is wrong with it."""
    with pytest.raises(InferenceApiArgsError, match=r"alarm_topic_arn = 'ops-alerts' is invalid: an SNS topic ARN"):
        api_args(alarms=False, alarm_topic_arn="ops-alerts").validate()
    with pytest.raises(ServerlessEndpointArgsError, match=r"alarm_topic_arn = 'ops-alerts' is invalid: an SNS topic"):
        endpoint_args(tmp_path, alarms=False, alarm_topic_arn="ops-alerts").validate()
    with pytest.raises(SettingsError, match="an SNS topic ARN"):
        validate_settings({"alarms": "false", "alarmTopicArn": "ops-alerts"})


# ------------------------------------------------------------------------------------------ settings


def test_settings_defaults_and_accepted_topics() -> None:
    assert (validate_settings({}).alarms, validate_settings({}).alarm_topic_arn) == (True, None)
    assert validate_settings({"alarms": "false"}).alarms is False
    assert validate_settings({"alarmTopicArn": ""}).alarm_topic_arn is None  # Pulumi.yaml's default means unset
    for region, topic in (
        ("us-east-1", TOPIC),
        ("eu-west-1", "arn:aws:sns:eu-west-1:123456789012:Ops_Alerts-1"),
        ("cn-north-1", "arn:aws-cn:sns:cn-north-1:123456789012:ops"),
        ("us-gov-west-1", "arn:aws-us-gov:sns:us-gov-west-1:123456789012:ops"),
        ("us-east-1", "arn:aws:sns:us-east-1:123456789012:" + "t" * 256),
    ):
        assert validate_settings({"alarmTopicArn": topic}, region=region).alarm_topic_arn == topic


# A region of every partition but aws, aws-cn and aws-us-gov (botocore's partitions.json), with its partition.
OTHER_PARTITIONS = [
    ("eusc-de-east-1", "aws-eusc"),
    ("us-iso-east-1", "aws-iso"),
    ("us-isob-east-1", "aws-iso-b"),
    ("eu-isoe-west-1", "aws-iso-e"),
    ("us-isof-south-1", "aws-iso-f"),
]


@pytest.mark.parametrize(("region", "partition"), OTHER_PARTITIONS)
def test_a_topic_of_every_region_aws_region_accepts_is_accepted(region: str, partition: str) -> None:
    """aws:region takes eusc-de-east-1 and the ISO regions, but a topic there (its ARN in its own partition) was
    refused as "an SNS topic ARN arn:<aws|aws-cn|aws-us-gov>:...": alarms could not notify anyone in them. The
    partition must still be the region's."""
    topic = f"arn:{partition}:sns:{region}:123456789012:ops"
    assert validate_settings({"alarmTopicArn": topic}, region=region).alarm_topic_arn == topic
    with pytest.raises(SettingsError, match=f"{region} is in {partition}"):
        validate_settings({"alarmTopicArn": f"arn:aws:sns:{region}:123456789012:ops"}, region=region)


@pytest.mark.parametrize(
    ("raw", "region", "allowed"),
    [
        *(({"alarmTopicArn": t}, None, "") for t in BAD_TOPICS),
        ({"alarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops"}, "us-east-1", "in the stack's region us-east-1"),
        ({"alarmTopicArn": "arn:aws:sns:us-east-1:123456789012:t.fifo"}, None, "a standard SNS topic"),
        # 256 characters at most, .fifo included: one longer is no topic at all, not a FIFO one.
        ({"alarmTopicArn": f"arn:aws:sns:us-east-1:123456789012:{'t' * 251}.fifo"}, None, "a standard SNS topic"),
        ({"alarmTopicArn": f"arn:aws:sns:us-east-1:123456789012:{'t' * 252}.fifo"}, None, "an SNS topic ARN arn:"),
        ({"alarmTopicArn": "arn:aws:sns:cn-north-1:123456789012:t"}, None, "cn-north-1 is in aws-cn"),
        ({"alarmTopicArn": TOPIC, "alarms": False}, None, "unset whenever alarms is false"),
        ({"alarmTopicArn": 42}, None, "an SNS topic ARN"),
        ({"alarms": "yes"}, None, "true or false"),
    ],
    ids=lambda v: repr(v)[:50] if not isinstance(v, dict) else "-".join(f"{k}={v[k]!r}"[:40] for k in v),
)
def test_bad_alarm_settings_are_refused_naming_the_key(raw: dict[str, Any], region: str | None, allowed: str) -> None:
    with pytest.raises(SettingsError) as err:
        validate_settings(raw, region=region)
    key = "alarms" if "alarmTopicArn" not in raw else "alarmTopicArn"
    message = str(err.value)
    assert f"mobilenet-serverless:{key} = {raw[key]!r} is invalid" in message
    assert allowed in message


# --------------------------------------------------------------------------------------- the program


def test_program_default_has_six_quiet_alarms(program: Any, mocks: RecordingMocks) -> None:
    program()
    found = by_name(mocks)
    assert {a["name"] for a in found.values()} == {
        "mobilenet-serverless-dev-proxy-api-5xx",
        "mobilenet-serverless-dev-proxy-errors",
        "mobilenet-serverless-dev-proxy-throttles",
        "mobilenet-serverless-dev-invocation-5xx",
        "mobilenet-serverless-dev-model-latency",
        "mobilenet-serverless-dev-concurrency",
    }
    assert all("alarmActions" not in a for a in found.values())


def test_program_passes_the_topic_to_every_alarm(program: Any, mocks: RecordingMocks) -> None:
    program(alarmTopicArn=TOPIC)
    found = by_name(mocks)
    assert len(found) == 6
    assert all(a["alarmActions"] == a["okActions"] == [TOPIC] for a in found.values())


def test_program_alarms_false_creates_none(program: Any, mocks: RecordingMocks) -> None:
    program(alarms=False)
    assert by_name(mocks) == {}
    assert mocks.of_type("aws:sagemaker/endpoint:Endpoint")


def test_program_refuses_a_topic_in_another_region_before_any_resource(program: Any, mocks: RecordingMocks) -> None:
    with pytest.raises(pulumi.RunError, match=r"mobilenet-serverless:alarmTopicArn = .*stack's region us-east-1"):
        program(alarmTopicArn="arn:aws:sns:eu-west-1:123456789012:ops")
    assert mocks.resources == {}
