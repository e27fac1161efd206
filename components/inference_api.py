"""InferenceApi: HTTP API `POST /predict` -> Python Lambda proxy -> SageMaker InvokeEndpoint."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import alarms, policies
from components.bundle_dir import engine_path
from components.dynamic.http_api_cors import HttpApiCors
from components.settings import (
    ENDPOINT_NAME_RE,
    KMS_KEY_ARN_RE,
    LAMBDA_ARCHITECTURES,
    LAMBDA_MEMORY_RANGE,
    LOG_RETENTION_DAYS,
    PROXY_LOG_LEVELS,
    THROTTLE_BURST_RANGE,
    THROTTLE_RATE_RANGE,
    is_count,
    origin_problem,
)
from handlers.proxy_core import LAMBDA_TIMEOUT_S

_FUNCTION_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
HANDLER = policies.LAMBDA_HANDLER
RUNTIME = policies.LAMBDA_RUNTIME


class InferenceApiArgsError(ValueError):
    """InferenceApiArgs holds a bad value; the message names the field."""


@dataclass(frozen=True)
class InferenceApiArgs:
    function_name: str
    endpoint_name: pulumi.Input[str]
    endpoint_arn: pulumi.Input[str]
    # Archive-relative path -> file: handlers/ plus the bundled Powertools (lambda_bundle.py).
    code_files: Mapping[str, Path]
    # The site's own origin(s); an Output that may resolve after this component is declared.
    site_origins: pulumi.Input[Sequence[str]]
    extra_origins: tuple[str, ...] = ()
    architecture: str = "arm64"
    memory_size_mb: int = 256
    throttle_rate_limit: int = 10
    throttle_burst_limit: int = 20
    log_retention_days: int = 14
    kms_key_arn: str | None = None
    log_level: str = "INFO"
    # CloudWatch alarms on the stage's 5xx and the function's errors and throttles (components/alarms.py).
    alarms: bool = True
    # An existing SNS topic told when an alarm fires and when it clears; None: the alarms only show in the console.
    alarm_topic_arn: str | None = None

    def validate(self) -> None:
        def fail(name: str, allowed: str) -> InferenceApiArgsError:
            return InferenceApiArgsError(f"InferenceApiArgs.{name} = {getattr(self, name)!r} is invalid: {allowed}")

        if not _FUNCTION_NAME_RE.match(self.function_name or ""):
            raise fail("function_name", "1..64 chars of [A-Za-z0-9_-]")
        if not self.code_files:
            raise fail("code_files", "a non-empty mapping of archive path -> file")
        handler_file = HANDLER.rsplit(".", 1)[0].replace(".", "/") + ".py"
        if handler_file not in self.code_files:
            raise fail("code_files", f"must contain the handler module {handler_file}")
        missing = sorted(k for k, p in self.code_files.items() if not Path(p).is_file())
        if missing:
            raise fail("code_files", f"entries must be existing files; missing: {missing[:5]}")
        if self.architecture not in LAMBDA_ARCHITECTURES:
            raise fail("architecture", f"one of {LAMBDA_ARCHITECTURES}")
        for field, (lo, hi) in (
            ("memory_size_mb", LAMBDA_MEMORY_RANGE),
            ("throttle_rate_limit", THROTTLE_RATE_RANGE),
            ("throttle_burst_limit", THROTTLE_BURST_RANGE),
        ):
            if not is_count(value := getattr(self, field)) or not lo <= value <= hi:
                raise fail(field, f"{lo}..{hi}")
        if not is_count(self.log_retention_days) or self.log_retention_days not in LOG_RETENTION_DAYS:
            raise fail("log_retention_days", "a CloudWatch retention value")
        if self.log_level not in PROXY_LOG_LEVELS:
            raise fail("log_level", "one of " + ", ".join(PROXY_LOG_LEVELS))
        if self.kms_key_arn is not None and not KMS_KEY_ARN_RE.match(self.kms_key_arn):
            raise fail("kms_key_arn", "a KMS key ARN (not an alias), or None")
        # Plain values are checked here; Outputs (another component's) only when they resolve.
        plain = {
            field: value
            for field in ("site_origins", "extra_origins")
            if not isinstance(value := getattr(self, field), pulumi.Output)
        }
        for field, value in plain.items():
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise fail(field, "a list of origins")
        try:
            policies.cors_allowed_origins([], plain.get("extra_origins", []))
        except policies.PolicyInputError as exc:
            raise fail("extra_origins", str(exc)) from None
        if not isinstance(self.endpoint_name, pulumi.Output) and not (
            isinstance(self.endpoint_name, str) and ENDPOINT_NAME_RE.match(self.endpoint_name)
        ):
            raise fail("endpoint_name", "1..63 chars of [a-zA-Z0-9-], alphanumeric at both ends")
        for field, value in plain.items():
            if any(isinstance(item, pulumi.Output) for item in value):
                continue
            # As the settings check corsExtraOrigins: an origin spelt otherwise than a browser sends it never matches.
            if problem := next(filter(None, map(origin_problem, value)), None):
                raise fail(field, f"allowed {problem}")
        if wrong := alarms.alarm_inputs_problem(self.alarms, self.alarm_topic_arn):
            raise fail(*wrong)


class InferenceApi(pulumi.ComponentResource):
    api_url: pulumi.Output[str]
    function_name: pulumi.Output[str]

    def __init__(self, name: str, args: InferenceApiArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()  # before registering: bad args leave nothing half-declared
        super().__init__("mobilenet-serverless:index:InferenceApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The log groups and the alarms carry names that follow the function's, the only input of theirs that replaces
        # them: a rename gives each a new name, so the new one is created first and the old one goes at the end of the
        # update, after the old function and stage that write to it (the bridge would otherwise delete an explicitly
        # named resource first, pulumi-terraform #465, while the old function still serves and logs).
        renamed_with_function = pulumi.ResourceOptions(parent=self, delete_before_replace=False)
        invoke = pulumi.InvokeOptions(parent=self)

        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        account_id = aws.get_caller_identity_output(opts=invoke).account_id

        allowed_origins = pulumi.Output.from_input(args.site_origins).apply(
            lambda site: policies.cors_allowed_origins(site, args.extra_origins)
        )

        log_group_name = policies.lambda_log_group_name(args.function_name)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-log-group",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            opts=renamed_with_function,
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=policies.assume_role_policy("lambda.amazonaws.com"),
            description=f"Execution role of Lambda {args.function_name}",
            # A rename (the description names the function) gives the new function a role of its own, created first.
            # Updated in place, the one policy would move its endpoint and log grants to the new names while the old
            # function still serves /predict: each request a 502 (AccessDeniedException), not in its log, until the
            # integration moves. The old role and its policy go at the end of the update, after the old function.
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["description"]),
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(partition, region, account_id, args.endpoint_arn).apply(
                lambda v: policies.lambda_execution_policy(
                    partition=v[0],
                    region=v[1],
                    account_id=v[2],
                    log_group_name=log_group_name,
                    endpoint_arn=v[3],
                    kms_key_arn=args.kms_key_arn,
                )
            ),
            opts=child,
        )

        code = pulumi.AssetArchive(
            {archive: pulumi.FileAsset(engine_path(path)) for archive, path in sorted(args.code_files.items())}
        )
        function = aws.lambda_.Function(
            f"{name}-function",
            name=args.function_name,
            role=role.arn,
            runtime=RUNTIME,
            handler=HANDLER,
            architectures=[args.architecture],
            memory_size=args.memory_size_mb,
            # The function and the API's integration give up at the same moment (29 s, under the HTTP API's 30 s
            # cap), so a cold endpoint surfaces as one clean 504 rather than a dangling call; the handler budgets
            # its SageMaker attempts from the time Lambda says is left.
            timeout=LAMBDA_TIMEOUT_S,
            code=code,
            kms_key_arn=args.kms_key_arn,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables=pulumi.Output.all(args.endpoint_name, allowed_origins).apply(
                    lambda v: policies.proxy_function_env(v[0], v[1], args.log_level)
                )
            ),
            # The group must exist (with its retention) before the first invocation creates it bare. A rename (the
            # name is the only input we set that replaces a function) creates the new function before the old one
            # goes, as for the endpoint: the bridge would delete an explicitly named resource first, and the API
            # would answer 500 until the new one existed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, role_policy], delete_before_replace=False),
        )

        api = aws.apigatewayv2.Api(
            f"{name}-http-api",
            protocol_type="HTTP",
            description="MobileNet V2 classifier: POST /predict",
            # CORS is set by HttpApiCors below, once the site origin exists (see that module).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["corsConfiguration"]),
        )
        HttpApiCors(
            f"{name}-cors",
            api_id=api.id,
            region=region,
            origins=allowed_origins,
            opts=child,
        )
        permission = aws.lambda_.Permission(
            f"{name}-invoke-permission",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="apigateway.amazonaws.com",
            source_arn=api.execution_arn.apply(policies.invoke_permission_source_arn),
            opts=child,
        )
        integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_method="POST",
            integration_uri=function.invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=LAMBDA_TIMEOUT_S * 1000,
            # API Gateway may call a (new) function only once its permission exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]),
        )
        aws.apigatewayv2.Route(
            f"{name}-route",
            api_id=api.id,
            route_key="POST /predict",
            target=integration.id.apply(lambda integration_id: f"integrations/{integration_id}"),
            opts=child,
        )
        access_log_group_name = policies.api_access_log_group_name(args.function_name)
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=access_log_group_name,
            retention_in_days=args.log_retention_days,
            opts=renamed_with_function,
        )
        aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=args.throttle_rate_limit,
                throttling_burst_limit=args.throttle_burst_limit,
            ),
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=access_logs.arn,
                format=policies.access_log_format(),
            ),
            opts=child,
        )
        if args.alarms:
            specs = alarms.inference_api_alarms(args.function_name, access_log_group_name, log_group_name)
            dimensions = {
                "ApiId": api.id,
                "FunctionName": function.name,
            }
            for spec in specs:
                aws.cloudwatch.MetricAlarm(
                    f"{name}-alarm-{spec.key}",
                    **alarms.metric_alarm_args(
                        spec, {d: dimensions[d] for d in spec.dimension_names}, args.alarm_topic_arn
                    ),
                    # Put only once the log groups named after the same function exist. Creating an alarm overwrites
                    # one of that name (PutMetricAlarm), where a log group's create fails: a stack whose function name
                    # another stack of the region holds (one endpointName in both) must fail there, not first take
                    # over that stack's alarm, and delete it with its own destroy. The 5xx alarm, watching the API
                    # alone, would otherwise be put as soon as the API exists (at once, in a rename).
                    opts=pulumi.ResourceOptions.merge(
                        renamed_with_function, pulumi.ResourceOptions(depends_on=[log_group, access_logs])
                    ),
                )

        self.api_url = api.api_endpoint
        self.function_name = function.name  # for `aws logs tail /aws/lambda/<name>` and the README's checks
        self.register_outputs({"api_url": self.api_url, "function_name": self.function_name})
