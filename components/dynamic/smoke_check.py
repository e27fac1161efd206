"""Post-deploy smoke check: one real inference through the endpoint.

The PyTorch container answers /ping with 200 even when model_fn failed, so an InService endpoint
proves nothing; only a well-formed top-k reply does. A failure fails `pulumi up` and names the
endpoint's log group, where the container's traceback is.

Before probing, it checks that the endpoint really serves the endpoint configuration this deployment created:
when a new configuration fails to start, SageMaker rolls the update back and the endpoint returns to InService on
the previous configuration with a FailureReason (DescribeEndpoint), and the aws provider's update reports success
(terraform-provider-aws #46663, #48997). Probing then would pass against the old model and `pulumi up` would
report a rollout that did not happen.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, UpdateResult

from components.dynamic import AwsProvider
from components.policies import endpoint_log_group_name
from handlers.proxy_core import MAX_TOP_K  # a reply's most predictions: the proxy's, not a copy free to drift

# A 32x32 JPEG (a dark disc on orange), small enough to embed and a real decode for the model.
PROBE_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAoHBwgHBgoICAgLCgoLDhgQDg0NDh0VFhEYIx8lJCIfIiEmKzcvJik0KSEiMEExNDk7"
    "Pj4+JS5ESUM8SDc9Pjv/2wBDAQoLCw4NDhwQEBw7KCIoOzs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7"
    "Ozs7Ozs7Ozv/wAARCAAgACADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF"
    "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW"
    "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi"
    "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC"
    "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm"
    "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq"
    "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCeqt5qVnYY+03Cxk9F5J+uBzjjrRqV59g0+a5xuKL8ox3PAz7ZNefzzy3MzzTOXkc5Zj3r"
    "x8Ph/a6vY9nEYj2Wi3O+tNXsL6Ty7e5Vn/ukFSfoD16dquV5mrMjh0YqynIIOCDXd6FqD6lpqyy/61GKOcYBI7/kR+OaeIw3s1zR"
    "2Fh8T7V8slqS6vaPfaXPbxn52XK+5ByB+OMV5+ysjlHUqynBBGCDXplZ2oaFY6lJ5sqskvGXjOCQPXt/XijDYhU/dlsGJw7q2lHc"
    "4Ou58O2UtlpQWYFXlcyFCMFc4AH5DP40WXh3T7KYTKryupBUyHO0+wAH61qVWJxKqLljsThsM6b5pbn/2Q=="
)
PROBE_TOP_K = 5
# A serverless cold start (image pull + model load) can take most of the 60 s invocation limit.
READ_TIMEOUT_S = 70
# A first invocation whose cold start outlasts that limit fails (ModelError with status 0, or ModelNotReady)
# while the container goes on starting; a healthy endpoint must not fail `pulumi up` for it, so the probe is
# sent again. At most about 5 minutes: 4 attempts of up to 60 s, 15 s apart.
COLD_START_ATTEMPTS = 4
COLD_START_PAUSE_S = 15.0
_NOT_READY_CODES = frozenset({"ModelNotReadyException", "ServiceUnavailable"})


class SmokeCheckError(RuntimeError):
    """The deployed endpoint did not answer the probe with top-k JSON."""


# Each prob is a float32 softmax value rounded to 6 decimals (inference.top_k_predictions): MAX_TOP_K of them can
# exceed 1 by MAX_TOP_K x 5e-7 of rounding and a few float32 ulps; anything past this is no softmax's top-k.
PROB_SUM_SLACK = 1e-4


def parse_topk_reply(body: bytes) -> list[dict[str, Any]]:
    """Return the predictions of a valid reply; raise ValueError saying what is wrong otherwise."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"reply is not JSON: {body[:200]!r}") from exc
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or not 1 <= len(predictions) <= MAX_TOP_K:
        raise ValueError(f"reply has no 'predictions' list of 1..{MAX_TOP_K} entries: {str(document)[:200]}")
    for item in predictions:
        label, prob = (item.get("label"), item.get("prob")) if isinstance(item, dict) else (None, None)
        if (
            not isinstance(label, str)
            or not label
            or isinstance(prob, bool)
            or not isinstance(prob, int | float)
            or not 0.0 <= prob <= 1.0
        ):
            raise ValueError(f"prediction {item!r} is not {{label: str, prob: 0..1}}")
    # A top-k of one softmax is ranked and sums to at most 1: an output_fn that lost its ranking or its softmax
    # (logits squashed into 0..1, another image's probabilities) still passes the checks above.
    probs = [item["prob"] for item in predictions]
    for earlier, later in itertools.pairwise(probs):
        if later > earlier:
            raise ValueError(f"predictions are not ranked by prob, highest first: {later} follows {earlier}")
    if sum(probs) > 1.0 + PROB_SUM_SLACK:
        raise ValueError(f"prediction probs sum to {sum(probs):.6g}, more than one softmax can give (1)")
    return predictions


def failure_message(
    endpoint_name: str, log_group: str, region: str, reason: str, config_name: str | None = None
) -> str:
    """The probe is sent only once the endpoint is InService on the new configuration (check_rollout): by then it
    serves the model that failed, and a failed `pulumi up` rolls nothing back. So the message says how to go back,
    not how to deploy anyway."""
    on = f" on endpoint configuration {config_name!r}" if config_name else ""
    return (
        f"smoke check of SageMaker endpoint {endpoint_name!r} failed: {reason}. "
        f"The endpoint already serves this model{on}: a failed `pulumi up` rolls nothing back. "
        f"The container's logs are in CloudWatch log group {log_group} (region {region}); "
        f"`aws logs tail {log_group} --region {region} --since 30m` shows model_fn errors. To go back, set "
        "mobilenet-serverless:modelArtifact (ServerlessEndpointArgs.artifact_path) to the previous model.tar.gz (the "
        "bucket keeps each one under models/<sha256>/) and run `pulumi up`; mobilenet-serverless:smokeCheck false "
        "(ServerlessEndpointArgs.smoke_check) only skips this check."
    )


def _error_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        original = response.get("OriginalMessage")
        status = response.get("OriginalStatusCode")
        code = response.get("Error", {}).get("Code")
        if original is not None:
            # The real container puts a whole traceback here; its last line is the useful one.
            last = str(original).strip().splitlines()[-1:] or [""]
            return f"{code} (container status {status}): {last[0][:300]}"
        return f"{code}: {response.get('Error', {}).get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


def is_cold_start(exc: Exception) -> bool:
    """Did the endpoint fail to answer because it is still starting (as opposed to a model that answered badly)?"""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False  # transport errors: botocore has already retried them
    code = response.get("Error", {}).get("Code")
    # SageMaker's own timeout has no container answer behind it: "Received server error (0) ... timed out".
    return code in _NOT_READY_CODES or (code == "ModelError" and str(response.get("OriginalStatusCode")) == "0")


def run_smoke_check(
    client: Any,
    endpoint_name: str,
    log_group: str,
    region: str,
    attempts: int = COLD_START_ATTEMPTS,
    pause_s: float = COLD_START_PAUSE_S,
    sleep: Callable[[float], None] = time.sleep,
    config_name: str | None = None,
) -> dict[str, Any]:
    """Invoke and validate, asking again while a cold start is in the way; `client` is a sagemaker-runtime
    client (a moto or stubbed one in tests)."""
    for attempt in range(1, attempts + 1):
        try:
            reply = client.invoke_endpoint(
                EndpointName=endpoint_name,
                ContentType="image/jpeg",
                Accept=f"application/json;top_k={PROBE_TOP_K}",
                Body=PROBE_JPEG,
            )
            body = reply["Body"].read()
            break
        except Exception as exc:  # any failure to get a reply fails the deploy the same way
            cold_start = is_cold_start(exc)
            if cold_start and attempt < attempts:
                sleep(pause_s)
                continue
            reason = _error_reason(exc)
            if cold_start:
                reason = f"still not answering after {attempts} attempts {pause_s:.0f} s apart: {reason}"
            raise SmokeCheckError(failure_message(endpoint_name, log_group, region, reason, config_name)) from exc
    try:
        predictions = parse_topk_reply(body)
    except ValueError as exc:
        raise SmokeCheckError(failure_message(endpoint_name, log_group, region, str(exc), config_name)) from exc
    return {"top_label": predictions[0]["label"], "prediction_count": len(predictions)}


def rollout_failure_message(endpoint_name: str, expected_config: str, description: dict[str, Any]) -> str:
    actual = description.get("EndpointConfigName")
    status = description.get("EndpointStatus")
    reason = description.get("FailureReason") or "SageMaker gave no FailureReason"
    return (
        f"SageMaker endpoint {endpoint_name!r} is {status} on endpoint configuration {actual!r}, not on "
        f"{expected_config!r} that this deployment created: the update did not take effect ({reason}). "
        "The endpoint still serves the previous model, which stays: the program deletes an EndpointConfiguration "
        "and its Model only once the endpoint runs on another one. Fix the cause (see the endpoint's log group), then "
        "run `pulumi up --refresh`: the aws provider has recorded the endpoint as updated to "
        f"{expected_config!r}, so a plain `pulumi up` sees nothing to change and does not ask SageMaker again (only "
        "a new model or setting, which makes a new configuration, is rolled out without the refresh). "
        f"{actual!r} and its Model stay recorded (by the new configuration's version): the program deletes them once "
        "the endpoint runs on another configuration, at a later rollout or `pulumi destroy`; nothing to delete by hand."
    )


def failed_endpoint_message(endpoint_name: str, description: dict[str, Any], region: str | None = None) -> str:
    """A Failed endpoint (its creation failed, and `pulumi up` was run again unchanged: the provider's update of it is
    then a no-op that reports success) serves nothing, and no `pulumi up` repairs it: a replacement creates the new
    endpoint before deleting the old one, and SageMaker refuses a second endpoint of the same fixed name ("Cannot
    create already existing endpoint"). It must be deleted, then dropped from the state, then created again."""
    reason = description.get("FailureReason") or "SageMaker gave no FailureReason"
    where = f" --region {region}" if region else ""
    return (
        f"SageMaker endpoint {endpoint_name!r} is Failed ({reason}); it serves nothing. Another `pulumi up` leaves "
        "it so (its update is a no-op while its configuration is unchanged), and `pulumi up --target-replace` fails "
        "(a replacement is created before the old endpoint is deleted, and SageMaker refuses a second endpoint of the "
        f"same name). Fix the cause (the endpoint's log group {endpoint_log_group_name(endpoint_name)}), then delete "
        "it and let Pulumi create it again: "
        f"`aws sagemaker delete-endpoint --endpoint-name {endpoint_name}{where}`, "
        f"`aws sagemaker wait endpoint-deleted --endpoint-name {endpoint_name}{where}`, "
        "`pulumi refresh` (the endpoint leaves the state), `pulumi up`."
    )


def check_rollout(client: Any, endpoint_name: str, expected_config: str | None) -> dict[str, Any]:
    """DescribeEndpoint: the endpoint must be InService on `expected_config` (when given); `client` is a sagemaker
    client. Returns the description."""
    description = client.describe_endpoint(EndpointName=endpoint_name)
    if description.get("EndpointStatus") == "Failed":
        region = getattr(getattr(client, "meta", None), "region_name", None)
        raise SmokeCheckError(failed_endpoint_message(endpoint_name, description, region))
    on_expected = not expected_config or description.get("EndpointConfigName") == expected_config
    if not on_expected:
        raise SmokeCheckError(rollout_failure_message(endpoint_name, expected_config or "", description))
    if description.get("EndpointStatus") != "InService":
        raise SmokeCheckError(not_in_service_message(endpoint_name, description))
    return description


def not_in_service_message(endpoint_name: str, description: dict[str, Any]) -> str:
    """On the configuration this deployment made, but not InService (SageMaker's own maintenance, SystemUpdating,
    which "does not change any customer-specified values such as ... model", or another update under way): the
    rollout took effect, and its configuration is the one the endpoint runs on, never to be deleted. One being
    deleted (by hand, or by another tool) will never be InService again: it must be gone and made anew."""
    if description.get("EndpointStatus") == "Deleting":
        return (
            f"SageMaker endpoint {endpoint_name!r} is Deleting (deleted outside this deployment), so it will not "
            "serve again and its smoke check cannot run. Once it is gone (`aws sagemaker wait endpoint-deleted "
            f"--endpoint-name {endpoint_name}`), run `pulumi refresh` (the endpoint leaves the state), then "
            "`pulumi up`, which creates it again and runs the check."
        )
    return (
        f"SageMaker endpoint {endpoint_name!r} is {description.get('EndpointStatus')} on endpoint configuration "
        f"{description.get('EndpointConfigName')!r}, the one this deployment made, not InService, so its smoke check "
        f"cannot run now. Wait for it (`aws sagemaker wait endpoint-in-service --endpoint-name {endpoint_name}`), "
        "then run `pulumi up` again, which runs the check again (a check that failed is never recorded as passed)."
    )


def diff_smoke_check(olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
    """Re-run when what it probes changes: the endpoint configuration (a new artifact or setting makes a new one), or
    the endpoint itself (renamed or in another region, so a new endpoint never probed) or its log group."""
    keys = ("endpoint_name", "region", "log_group", "trigger")
    changed = [k for k in keys if olds.get(k) != news.get(k)]
    return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)


class SmokeCheckProvider(AwsProvider):
    def _check(self, props: dict[str, Any]) -> dict[str, Any]:
        from botocore.config import Config

        for field in ("endpoint_name", "region", "log_group"):
            if not props.get(field):
                raise SmokeCheckError(f"{field} is required, got {props.get(field)!r}")
        # `trigger` is the name of the EndpointConfiguration the endpoint was just updated to.
        serving = check_rollout(
            self.client("sagemaker", region=props["region"]), props["endpoint_name"], props.get("trigger")
        )
        client = self.client(
            "sagemaker-runtime",
            region=props["region"],
            config=Config(read_timeout=READ_TIMEOUT_S, retries={"max_attempts": 3, "mode": "standard"}),
        )
        result = run_smoke_check(
            client,
            props["endpoint_name"],
            props["log_group"],
            props["region"],
            config_name=serving.get("EndpointConfigName"),
        )
        keep = {k: props.get(k) for k in ("endpoint_name", "region", "log_group", "trigger")}
        return {**keep, **result}

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._check(props)
        return CreateResult(id_=f"smoke-{outs['endpoint_name']}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_smoke_check(olds, news)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._check(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class EndpointSmokeCheck(Resource):
    top_label: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        endpoint_name: pulumi.Input[str],
        region: pulumi.Input[str],
        log_group: pulumi.Input[str],
        trigger: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            SmokeCheckProvider(),
            name,
            {
                "endpoint_name": endpoint_name,
                "region": region,
                "log_group": log_group,
                "trigger": trigger,
                "top_label": None,
                "prediction_count": None,
            },
            opts,
        )
