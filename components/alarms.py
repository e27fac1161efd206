"""CloudWatch alarms of the deployed classifier: pure specs (metric, dimensions, threshold, wording) per component.

Every metric name, namespace and dimension below is the one AWS documents for the resource it watches:

- HTTP API: namespace AWS/ApiGateway, metric `5xx` (HTTP APIs spell it so; REST APIs publish `5XXError`), dimension
  ApiId: the API has one stage, and the value `$default` takes as a Stage dimension is not documented.
  https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html
- Lambda: namespace AWS/Lambda, `Errors` and `Throttles` (view with Sum), dimension FunctionName (all versions).
  https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
- Serverless endpoint: namespace AWS/SageMaker, `Invocation5XXErrors` (1 per InvokeEndpoint the model answered 5xx)
  and `ModelLatency` (microseconds), dimensions EndpointName + VariantName. Serverless endpoints publish only the
  metrics on https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-monitoring.html (not, e.g.,
  `InvocationModelErrors`); units on https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html.
  That page's `ServerlessConcurrentExecutionsUtilization` (concurrent executions / MaxConcurrency, no unit; Maximum)
  is the endpoint's own measure of its throttling: a call beyond MaxConcurrency gets ThrottlingException. The proxy's
  EMF `Errors` with ErrorCode `throttled` counts those of its 429s, but carries no stack's name (every stack of this
  program in an account and region publishes into one series), so an alarm on it would fire for another stack.

Every alarm treats missing data as not breaching: these metrics are published only while requests arrive, and an
idle demo must stay OK rather than go to INSUFFICIENT_DATA or ALARM. Descriptions name the log group to read (the
throttles alarm, which has none, the quota to check) and the README section ("Alarms") that says what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.policies import lambda_log_group_name
from components.settings import function_name_for, sns_topic_arn_problem

TREAT_MISSING_DATA = "notBreaching"
GTE = "GreaterThanOrEqualToThreshold"
FIVE_MINUTES_S = 300
RUNBOOK = "README.md, section 'Alarms'"

# API 5xx: a cold start is answered 503 up to 4 times per user (the UI makes 4 attempts on 429/503, over ~20 s), so
# one visitor meeting a cold endpoint must not page; 5 or more in two of three 5-minute windows is a real outage.
API_5XX_THRESHOLD = 5
# The proxy catches every error and answers it itself: any Lambda Error is a crash, timeout or out-of-memory.
LAMBDA_ERRORS_THRESHOLD = 1
# Any throttle means Lambda refused a request outright (the account's concurrency is used up).
LAMBDA_THROTTLES_THRESHOLD = 1
# The proxy makes at most 2 InvokeEndpoint attempts per request, so 3 model 5xx are at least two failed requests.
MODEL_5XX_THRESHOLD = 3
# The endpoint at its MaxConcurrency (utilization 1.0) at some moment in 2 of 3 five-minute windows: requests keep
# arriving while every slot is busy, and each one that does gets ThrottlingException (the proxy's 429, which the page
# retries and no 5xx alarm sees). One visitor, one photo at a time, fills one slot of the default 5.
ENDPOINT_CONCURRENCY_UTILIZATION_THRESHOLD = 1.0
# A warm MobileNet V2 inference takes milliseconds (README "Benchmarks"); an average of 1 s for 15 minutes means the
# model is ~100x slower than it should be, well before the proxy's 10 s read timeout turns it into 504s.
MODEL_LATENCY_THRESHOLD_US = 1_000_000


class AlarmSpecError(ValueError):
    """A spec was handed the wrong dimensions, or the topic is not an SNS topic ARN."""


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch metric alarm, everything but the dimension values (resource outputs, filled in later)."""

    key: str  # suffix of the child resource's name and of the alarm's name
    alarm_name: str
    namespace: str
    metric_name: str
    dimension_names: tuple[str, ...]
    statistic: str
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    description: str
    comparison_operator: str = GTE
    treat_missing_data: str = TREAT_MISSING_DATA


def inference_api_alarms(function_name: str, access_log_group: str, function_log_group: str) -> list[AlarmSpec]:
    """The HTTP API stage's 5xx answers and the proxy Lambda's errors and throttles."""
    return [
        AlarmSpec(
            key="5xx",
            alarm_name=f"{function_name}-api-5xx",
            namespace="AWS/ApiGateway",
            metric_name="5xx",
            dimension_names=("ApiId",),
            statistic="Sum",
            period_s=FIVE_MINUTES_S,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            threshold=API_5XX_THRESHOLD,
            description=(
                f"POST /predict answered {API_5XX_THRESHOLD} or more 5xx in 2 of the last 3 five-minute periods. "
                f"Read the access log {access_log_group} (status, integrationErrorMessage) and the proxy's log "
                f"{function_log_group} (its field error: model_error 502, model_not_ready 503, endpoint_timeout 504). "
                f"Runbook: {RUNBOOK}."
            ),
        ),
        AlarmSpec(
            key="errors",
            alarm_name=f"{function_name}-errors",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimension_names=("FunctionName",),
            statistic="Sum",
            period_s=FIVE_MINUTES_S,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=LAMBDA_ERRORS_THRESHOLD,
            description=(
                f"Lambda {function_name} failed an invocation (crash, timeout or out of memory: the proxy answers "
                f"every error it can catch itself). Read {function_log_group} for 'Task timed out', 'Runtime exited' "
                f"or a traceback. Runbook: {RUNBOOK}."
            ),
        ),
        AlarmSpec(
            key="throttles",
            alarm_name=f"{function_name}-throttles",
            namespace="AWS/Lambda",
            metric_name="Throttles",
            dimension_names=("FunctionName",),
            statistic="Sum",
            period_s=FIVE_MINUTES_S,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=LAMBDA_THROTTLES_THRESHOLD,
            description=(
                f"Lambda throttled invocations of {function_name}: the account's concurrent executions in this region "
                f"are used up (new accounts may have a quota of 10). Check the Lambda 'Concurrent executions' quota "
                f"and other functions' use; lower apiThrottleRateLimit meanwhile. Runbook: {RUNBOOK}."
            ),
        ),
    ]


def serverless_endpoint_alarms(endpoint_name: str, log_group: str) -> list[AlarmSpec]:
    """The endpoint's 5xx answers, a sustained slow model and its concurrency used up."""
    dims = ("EndpointName", "VariantName")
    proxy_log = lambda_log_group_name(function_name_for(endpoint_name))
    return [
        AlarmSpec(
            key="5xx",
            alarm_name=f"{endpoint_name}-invocation-5xx",
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimension_names=dims,
            statistic="Sum",
            period_s=FIVE_MINUTES_S,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            threshold=MODEL_5XX_THRESHOLD,
            description=(
                f"SageMaker endpoint {endpoint_name} answered {MODEL_5XX_THRESHOLD} or more InvokeEndpoint calls "
                f"with a 5xx in 5 minutes (the model container failed). The toolkit returns a failed inference's "
                f"error and traceback to the caller and logs neither: read them in the detail of the model_error "
                f"lines of the proxy's log {proxy_log}. {log_group} shows worker restarts, out of memory and "
                f"model_fn failures. Runbook: {RUNBOOK}."
            ),
        ),
        AlarmSpec(
            key="latency",
            alarm_name=f"{endpoint_name}-model-latency",
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",  # microseconds
            dimension_names=dims,
            statistic="Average",
            period_s=FIVE_MINUTES_S,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            threshold=MODEL_LATENCY_THRESHOLD_US,
            description=(
                f"SageMaker endpoint {endpoint_name}: the model took on average "
                f"{MODEL_LATENCY_THRESHOLD_US // 1000} ms or more per inference for 15 minutes (ModelLatency is in "
                f"microseconds; cold starts are counted in OverheadLatency, not here). Read {log_group} for the "
                f"backend the model started with (a TorchScript fallback is slower) and consider a larger "
                f"memorySizeMb. Runbook: {RUNBOOK}."
            ),
        ),
        AlarmSpec(
            key="concurrency",
            alarm_name=f"{endpoint_name}-concurrency",
            namespace="AWS/SageMaker",
            metric_name="ServerlessConcurrentExecutionsUtilization",  # a fraction of MaxConcurrency
            dimension_names=dims,
            statistic="Maximum",
            period_s=FIVE_MINUTES_S,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            threshold=ENDPOINT_CONCURRENCY_UTILIZATION_THRESHOLD,
            description=(
                f"SageMaker endpoint {endpoint_name} ran at its MaxConcurrency (every concurrent slot busy) in 2 of "
                f"the last 3 five-minute periods: a call beyond it is refused with ThrottlingException. The proxy "
                f"retries it once and answers 429 throttled only when the retry is refused too (the page then "
                f"retries), so no 5xx alarm fires. The proxy's log {proxy_log} has a 'request failed' line with "
                f"error throttled for each such 429, at INFO; none if every retry found a slot. Raise the "
                f"maxConcurrency setting (up to 200, within the account's serverless concurrency quota). "
                f"Runbook: {RUNBOOK}."
            ),
        ),
    ]


def alarm_inputs_problem(alarms: Any, topic_arn: str | None) -> tuple[str, str] | None:
    """(field, what it must be) when a component's `alarms` / `alarm_topic_arn` inputs are wrong, else None."""
    if not isinstance(alarms, bool):
        return "alarms", "True or False"
    if topic_arn is not None and (problem := sns_topic_arn_problem(topic_arn)):
        return "alarm_topic_arn", f"{problem}, or None"
    if topic_arn is not None and not alarms:
        return "alarm_topic_arn", "None whenever alarms is False"
    return None


def metric_alarm_args(spec: AlarmSpec, dimensions: Mapping[str, Any], topic_arn: str | None) -> dict[str, Any]:
    """Keyword arguments of aws.cloudwatch.MetricAlarm for `spec`; `dimensions` maps each of the spec's dimension
    names to its value (a resource output). With a topic, it is told both when the alarm fires and when it clears."""
    if set(dimensions) != set(spec.dimension_names):
        raise AlarmSpecError(
            f"alarm {spec.key}: dimensions {sorted(dimensions)}, expected {list(spec.dimension_names)}"
        )
    if topic_arn is not None and (problem := sns_topic_arn_problem(topic_arn)):
        raise AlarmSpecError(f"alarm topic {topic_arn!r}: {problem}")
    actions = [topic_arn] if topic_arn else None
    return {
        "name": spec.alarm_name,
        "alarm_description": spec.description,
        "namespace": spec.namespace,
        "metric_name": spec.metric_name,
        "dimensions": dict(dimensions),
        "statistic": spec.statistic,
        "period": spec.period_s,
        "evaluation_periods": spec.evaluation_periods,
        "datapoints_to_alarm": spec.datapoints_to_alarm,
        "threshold": spec.threshold,
        "comparison_operator": spec.comparison_operator,
        "treat_missing_data": spec.treat_missing_data,
        "alarm_actions": actions,
        "ok_actions": actions,
    }
