"""mobilenet-serverless: read and validate config, compose the three components, export outputs."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pulumi
from pulumi.runtime import config as runtime_config

from components import policies
from components.bundle_dir import BundleDirError
from components.inference_api import InferenceApi, InferenceApiArgs, InferenceApiArgsError
from components.lambda_bundle import BundleError, lambda_asset_files
from components.serverless_endpoint import ServerlessEndpoint, ServerlessEndpointArgs, ServerlessEndpointArgsError
from components.settings import (
    Settings,
    SettingsError,
    check_project_namespace,
    default_endpoint_name,
    function_name_for,
    strip_namespace,
    validate_settings,
)
from components.static_site import StaticSite, StaticSiteArgs, StaticSiteArgsError

ROOT = Path(__file__).resolve().parent


def _reraise(error: BaseException) -> NoReturn:
    raise error


# What the user can fix (a stack setting, the artifact not built, a file a bundle refuses): its message says what to
# do. `pulumi up` prints a pulumi.RunError as that message alone, and any other exception as a Python traceback.
# StaticSiteArgsError: www/ is the user's (a file of no known type, no index.html, one that cannot be read).
# ServerlessEndpointArgsError: the artifact changed while `pulumi up` read it (a `make model` meanwhile), so its
# digest is no longer the file's; InferenceApiArgsError likewise for what the settings cannot already refuse.
USER_ERRORS = (
    SettingsError,
    policies.ArtifactMissingError,
    policies.PolicyInputError,
    BundleDirError,
    BundleError,
    StaticSiteArgsError,
    ServerlessEndpointArgsError,
    InferenceApiArgsError,
)


def _reported(error: BaseException) -> BaseException:
    return pulumi.RunError(str(error)) if isinstance(error, USER_ERRORS) else error


# Everything that can be wrong with the config or the local build fails here, before any resource.
try:
    # The whole config bag (the engine's PULUMI_CONFIG, overridden by set values), so that unknown keys fail too.
    config_bag = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    # A secret arrives decrypted: read as a plain value, it would be deployed and exported in plain text.
    secret_keys = {*runtime_config.get_config_secret_keys_env(), *filter(runtime_config.is_config_secret, config_bag)}
    check_project_namespace(config_bag, pulumi.get_project())
    settings = validate_settings(strip_namespace(config_bag, secret_keys), region=pulumi.Config("aws").get("region"))
    endpoint_name = settings.endpoint_name or default_endpoint_name(pulumi.get_project(), pulumi.get_stack())
    artifact_path = ROOT / settings.model_artifact  # an absolute modelArtifact stays as it is
    policies.check_artifact(
        artifact_path, built_by_make=ROOT / Settings.model_artifact, built_from=ROOT / "model" / policies.PACKED_CODE
    )
    artifact_sha256 = policies.file_sha256(artifact_path)
    code_files = lambda_asset_files(ROOT / "handlers")
except USER_ERRORS as error:
    raise _reported(error) from error

try:
    model = ServerlessEndpoint(
        "model",
        ServerlessEndpointArgs(
            endpoint_name=endpoint_name,
            artifact_path=artifact_path,
            artifact_sha256=artifact_sha256,
            image_tag=settings.inference_image_tag,
            memory_size_mb=settings.memory_size_mb,
            max_concurrency=settings.max_concurrency,
            provisioned_concurrency=settings.provisioned_concurrency,
            log_retention_days=settings.log_retention_days,
            kms_key_arn=settings.kms_key_arn,
            smoke_check=settings.smoke_check,
            alarms=settings.alarms,
            alarm_topic_arn=settings.alarm_topic_arn,
        ),
    )
except USER_ERRORS as error:
    raise _reported(error) from error

# The API's CORS needs the site origin and the site's CSP needs the API origin; the site origin is
# handed to the API as a deferred output (the resources themselves stay acyclic, see http_api_cors).
site_origins, resolve_site_origins = pulumi.deferred_output()
try:
    api = InferenceApi(
        "api",
        InferenceApiArgs(
            function_name=function_name_for(endpoint_name),
            endpoint_name=model.endpoint_name,
            endpoint_arn=model.endpoint_arn,
            code_files=code_files,
            site_origins=site_origins,
            extra_origins=settings.cors_extra_origins,
            architecture=settings.lambda_architecture,
            memory_size_mb=settings.proxy_memory_size_mb,
            log_level=settings.proxy_log_level,
            throttle_rate_limit=settings.api_throttle_rate_limit,
            throttle_burst_limit=settings.api_throttle_burst_limit,
            log_retention_days=settings.log_retention_days,
            kms_key_arn=settings.kms_key_arn,
            alarms=settings.alarms,
            alarm_topic_arn=settings.alarm_topic_arn,
        ),
    )
    site = StaticSite(
        "site",
        StaticSiteArgs(
            api_url=api.api_url,
            www_dir=ROOT / "www",
            price_class=settings.price_class,
            custom_domain=settings.custom_domain,
            certificate_arn=settings.certificate_arn,
        ),
    )
except BaseException as error:
    # The engine waits for every pending registration before it reports a program error, and the function's
    # environment and the CORS resource wait on these origins: left unresolved, `pulumi up` would hang instead of
    # failing. Resolving them with the same error fails those registrations and lets the error be reported.
    reported = _reported(error)
    resolve_site_origins(pulumi.Output.from_input(reported).apply(_reraise))
    if reported is error:
        raise
    raise reported from error
resolve_site_origins(site.site_origins)

pulumi.export("site_url", site.site_url)
pulumi.export("api_url", api.api_url)
pulumi.export("proxy_function_name", api.function_name)
pulumi.export("endpoint_name", model.endpoint_name)
pulumi.export("endpoint_log_group", model.log_group_name)
pulumi.export("model_artifact_uri", model.model_artifact_uri)
pulumi.export("distribution_id", site.distribution_id)
pulumi.export("site_bucket_name", site.bucket_name)
pulumi.export("model_bucket_name", model.bucket_name)
