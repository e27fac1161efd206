"""ServerlessEndpoint: MobileNet V2 on SageMaker Serverless Inference, from our model.tar.gz."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import alarms, policies
from components.bundle_dir import engine_path
from components.dynamic.endpoint_version import EndpointVersion
from components.dynamic.smoke_check import EndpointSmokeCheck
from components.private_bucket import private_bucket
from components.settings import (
    ENDPOINT_NAME_RE,
    KMS_KEY_ARN_RE,
    LOG_RETENTION_DAYS,
    MAX_CONCURRENCY_RANGE,
    MEMORY_SIZES_MB,
    image_tag_problem,
    is_count,
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")


class ServerlessEndpointArgsError(ValueError):
    """ServerlessEndpointArgs holds a bad value; the message names the field."""


@dataclass(frozen=True)
class ServerlessEndpointArgs:
    endpoint_name: str
    # A model.tar.gz as model/package.py builds it: the container runs its code/inference.py (SAGEMAKER_PROGRAM, in
    # policies.sagemaker_container_env), and with smoke_check on, `pulumi up` fails unless that answers a JPEG sent
    # with Accept application/json;top_k=5 by {"predictions": [{"label": str, "prob": 0..1}, ...]}: 1 to 20 labels,
    # not empty, ranked highest first, their probs summing to at most 1 (smoke_check.parse_topk_reply).
    artifact_path: Path
    artifact_sha256: str
    image_tag: str
    memory_size_mb: int = 2048
    max_concurrency: int = 5
    provisioned_concurrency: int = 0
    log_retention_days: int = 14
    kms_key_arn: str | None = None
    smoke_check: bool = True
    # CloudWatch alarms on the endpoint's 5xx answers, its model latency and its concurrency used up
    # (components/alarms.py).
    alarms: bool = True
    # An existing SNS topic told when an alarm fires and when it clears; None: the alarms only show in the console.
    alarm_topic_arn: str | None = None

    def validate(self) -> None:
        def fail(field: str, allowed: str) -> ServerlessEndpointArgsError:
            return ServerlessEndpointArgsError(
                f"ServerlessEndpointArgs.{field} = {getattr(self, field)!r} is invalid: {allowed}"
            )

        if not ENDPOINT_NAME_RE.match(self.endpoint_name or ""):
            raise fail("endpoint_name", "1..63 chars of [a-zA-Z0-9-], alphanumeric at both ends")
        if not _SHA256_RE.match(self.artifact_sha256 or ""):
            raise fail("artifact_sha256", "64 lower-case hex digits")
        if not Path(self.artifact_path).is_file():
            # Not "run `make model`" alone: that builds model/dist/model.tar.gz, not a path mistyped here, and a
            # program that copied components/ alone has no Makefile.
            raise fail(
                "artifact_path",
                "not an existing file: name the model.tar.gz that model/package.py builds (in this repository, "
                "`make model` writes model/dist/model.tar.gz)",
            )
        # The digest keys the artifact's object and names the Model and configuration: a stale one would put new
        # bytes under the old key, overwritten in place, with nothing rolled out or smoke-checked.
        if policies.file_sha256(Path(self.artifact_path)) != self.artifact_sha256:
            raise fail("artifact_sha256", "not the sha256 of artifact_path's bytes (policies.file_sha256)")
        if problem := image_tag_problem(self.image_tag):
            raise fail("image_tag", problem)
        if not is_count(self.memory_size_mb) or self.memory_size_mb not in MEMORY_SIZES_MB:
            raise fail("memory_size_mb", f"one of {MEMORY_SIZES_MB}")
        lo, hi = MAX_CONCURRENCY_RANGE
        if not is_count(self.max_concurrency) or not lo <= self.max_concurrency <= hi:
            raise fail("max_concurrency", f"{lo}..{hi}")
        if not is_count(self.provisioned_concurrency) or not 0 <= self.provisioned_concurrency <= self.max_concurrency:
            raise fail("provisioned_concurrency", "0..max_concurrency")
        if not is_count(self.log_retention_days) or self.log_retention_days not in LOG_RETENTION_DAYS:
            raise fail("log_retention_days", "a CloudWatch retention value")
        if self.kms_key_arn is not None and not KMS_KEY_ARN_RE.match(self.kms_key_arn):
            raise fail("kms_key_arn", "a KMS key ARN (not an alias), or None")
        if wrong := alarms.alarm_inputs_problem(self.alarms, self.alarm_topic_arn):
            raise fail(*wrong)
        if not isinstance(self.smoke_check, bool):  # "false" is truthy: the check turned off would run
            raise fail("smoke_check", "True or False")


class ServerlessEndpoint(pulumi.ComponentResource):
    endpoint_name: pulumi.Output[str]
    endpoint_arn: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    model_artifact_uri: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: ServerlessEndpointArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()  # before registering: bad args leave nothing half-declared
        super().__init__("mobilenet-serverless:index:ServerlessEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The log group and the alarms carry names that follow the endpoint's, the only input of theirs that replaces
        # them: a rename gives each a new name, so the new one is created first and the old one goes at the end of the
        # update, after the old endpoint that writes to it (the bridge would otherwise delete an explicitly named
        # resource first, pulumi-terraform #465, while the old endpoint still serves and logs).
        renamed_with_endpoint = pulumi.ResourceOptions(parent=self, delete_before_replace=False)
        invoke = pulumi.InvokeOptions(parent=self)

        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        # Region-aware lookup of the AWS Deep Learning Container; its account differs per region.
        image = aws.sagemaker.get_prebuilt_ecr_image_output(
            repository_name=policies.DLC_REPOSITORY, image_tag=args.image_tag, opts=invoke
        )

        private = private_bucket(name, child, args.kms_key_arn)
        bucket, public_access, encryption = private.bucket, private.public_access, private.encryption
        aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(policies.private_bucket_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )

        key = policies.artifact_key(args.artifact_sha256)
        artifact = aws.s3.BucketObjectv2(
            f"{name}-artifact",
            bucket=bucket.id,
            key=key,
            source=pulumi.FileAsset(engine_path(args.artifact_path)),
            content_type="application/gzip",
            server_side_encryption="aws:kms" if args.kms_key_arn else "AES256",
            kms_key_id=args.kms_key_arn,
            # A new model replaces this object (new key); the previous one is kept. When SageMaker rolls an update
            # back, the endpoint keeps running on the previous Model (EndpointVersion keeps that too), and its
            # artifact must stay readable for the endpoint's cold starts (see policies.sagemaker_execution_policy).
            # `pulumi destroy` still removes it: the bucket is force_destroy. Each rollout leaves one more ~20 MB
            # object under models/.
            # A kmsKeyArn change replaces it (same key, uploaded afresh) rather than updating it: in an update the aws
            # provider keeps the optional, computed kmsKeyId of the state when it is unset, and sends the old key's
            # ARN with AES256, which S3 refuses. Retained, the old object is never deleted after the new one is put.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[encryption],
                retain_on_delete=True,
                replace_on_changes=["serverSideEncryption", "kmsKeyId"],
            ),
        )
        model_data_url = pulumi.Output.concat("s3://", bucket.bucket, "/", key)

        # SageMaker writes here itself; declaring it gives it a retention and lets destroy remove it.
        log_group_name = policies.endpoint_log_group_name(args.endpoint_name)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-log-group",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            opts=renamed_with_endpoint,
        )

        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=policies.assume_role_policy("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of endpoint {args.endpoint_name}",
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(partition, region, account_id, image.registry_id, bucket.bucket).apply(
                lambda v: policies.sagemaker_execution_policy(
                    partition=v[0],
                    region=v[1],
                    account_id=v[2],
                    registry_id=v[3],
                    repository=policies.DLC_REPOSITORY,
                    bucket=v[4],
                    endpoint_name=args.endpoint_name,
                    kms_key_arn=args.kms_key_arn,
                )
            ),
            opts=child,
        )

        # Model and EndpointConfiguration are auto-named: a new artifact key replaces both
        # (create-before-delete) while the explicitly named Endpoint is updated in place. Pulumi never deletes
        # them itself (retain_on_delete): EndpointVersion does, once the endpoint no longer runs on them, because
        # after a rolled-back update it still does (see components/dynamic/endpoint_version.py).
        model = aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=role.arn,
            primary_container=aws.sagemaker.ModelPrimaryContainerArgs(
                image=image.registry_path,
                model_data_url=model_data_url,
                environment=region.apply(policies.sagemaker_container_env),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy, artifact], retain_on_delete=True),
        )
        config = aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            production_variants=[
                aws.sagemaker.EndpointConfigurationProductionVariantArgs(
                    variant_name="AllTraffic",
                    model_name=model.name,
                    serverless_config=aws.sagemaker.EndpointConfigurationProductionVariantServerlessConfigArgs(
                        memory_size_in_mb=args.memory_size_mb,
                        max_concurrency=args.max_concurrency,
                        # The API's minimum is 1; "none" is expressed by leaving it out.
                        provisioned_concurrency=args.provisioned_concurrency or None,
                    ),
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        version = EndpointVersion(
            f"{name}-version",
            endpoint_name=args.endpoint_name,
            region=region,
            config_name=config.name,
            model_name=model.name,
            # Deleted before the log group: its delete waits for SageMaker to finish deleting the endpoint, which may
            # log meanwhile, and with the group gone its role would create it again (no retention, in no stack), and
            # the next `pulumi up` would fail creating it (ResourceAlreadyExistsException).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=config.name,
            # Deleted before the version: `pulumi destroy` then retires the configuration and model it ran on.
            # A rename (of what we set, only the name replaces an Endpoint) creates the new endpoint before the
            # old one goes, so something serves throughout. The bridge would otherwise delete an explicitly named
            # resource first (pulumi-terraform #465): minutes with no endpoint while the new one starts.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, version], delete_before_replace=False),
        )

        if args.smoke_check:
            EndpointSmokeCheck(
                f"{name}-smoke-check",
                endpoint_name=endpoint.name,
                region=region,
                log_group=log_group.name,
                trigger=config.name,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[endpoint]),
            )

        if args.alarms:
            dimensions = {
                "EndpointName": endpoint.name,
                # The variant the endpoint actually runs, read back from its configuration.
                "VariantName": config.production_variants.apply(lambda variants: variants[0].variant_name),
            }
            for spec in alarms.serverless_endpoint_alarms(args.endpoint_name, log_group_name):
                aws.cloudwatch.MetricAlarm(
                    f"{name}-alarm-{spec.key}",
                    **alarms.metric_alarm_args(spec, dimensions, args.alarm_topic_arn),
                    # After the log group of the same endpoint name, whose create fails where the alarm's would
                    # overwrite another stack's (see InferenceApi's alarms); the endpoint waits for it too.
                    opts=pulumi.ResourceOptions.merge(
                        renamed_with_endpoint, pulumi.ResourceOptions(depends_on=[log_group])
                    ),
                )

        self.endpoint_name = endpoint.name
        self.endpoint_arn = endpoint.arn
        self.bucket_name = bucket.bucket
        self.model_artifact_uri = model_data_url
        self.log_group_name = log_group.name
        self.register_outputs(
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_arn": self.endpoint_arn,
                "bucket_name": self.bucket_name,
                "model_artifact_uri": self.model_artifact_uri,
                "log_group_name": self.log_group_name,
            }
        )
