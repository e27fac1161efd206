"""StaticSite: the web UI from www/ on a private S3 bucket behind CloudFront (Origin Access Control)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import policies
from components.bundle_dir import engine_path
from components.dynamic.invalidation import CloudFrontInvalidation
from components.private_bucket import private_bucket
from components.settings import CERT_ARN_RE, HOSTNAME_RE, PRICE_CLASSES
from components.site_config import CONFIG_JS_CACHE_CONTROL, CONFIG_JS_CONTENT_TYPE, render_config_js

_ORIGIN_ID = "site-bucket"


class StaticSiteArgsError(ValueError):
    """StaticSiteArgs holds a bad value; the message names the field."""


@dataclass(frozen=True)
class StaticSiteArgs:
    api_url: pulumi.Input[str]
    www_dir: Path
    price_class: str = "PriceClass_100"
    custom_domain: str | None = None
    certificate_arn: str | None = None

    def validate(self) -> None:
        def fail(name: str, allowed: str) -> StaticSiteArgsError:
            return StaticSiteArgsError(f"StaticSiteArgs.{name} = {getattr(self, name)!r} is invalid: {allowed}")

        if not Path(self.www_dir).is_dir():
            raise fail("www_dir", "an existing directory")
        try:  # what the site would fail on once declared: no index.html, a file of no known type, an unreadable one
            policies.read_site_files(policies.site_files(Path(self.www_dir)))
        except policies.PolicyInputError as exc:
            raise fail("www_dir", str(exc)) from None
        if not isinstance(self.api_url, pulumi.Output):  # an Output (the API's) is rendered when it resolves
            if not isinstance(self.api_url, str):
                raise fail("api_url", "the API's https URL")
            try:
                render_config_js(self.api_url)
            except ValueError as exc:
                raise fail("api_url", str(exc)) from None
        if self.price_class not in PRICE_CLASSES:
            raise fail("price_class", f"one of {PRICE_CLASSES}")
        if bool(self.custom_domain) != bool(self.certificate_arn):
            raise fail("certificate_arn", "set exactly when custom_domain is set")
        if self.certificate_arn and not CERT_ARN_RE.match(self.certificate_arn):
            raise fail("certificate_arn", "an ACM certificate ARN in us-east-1")
        if self.custom_domain and not HOSTNAME_RE.match(self.custom_domain):
            raise fail("custom_domain", "a lower-case DNS name")


def _object_name(prefix: str, key: str) -> str:
    return f"{prefix}-file-{key}"


class StaticSite(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    distribution_id: pulumi.Output[str]
    site_url: pulumi.Output[str]
    site_origins: pulumi.Output[list[str]]

    def __init__(self, name: str, args: StaticSiteArgs, opts: pulumi.ResourceOptions | None = None):
        args.validate()  # before registering: bad args leave nothing half-declared
        super().__init__("mobilenet-serverless:index:StaticSite", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        files = policies.site_files(Path(args.www_dir))  # walks www/ at program time; fails on odd files
        api_url = pulumi.Output.from_input(args.api_url)

        # SSE-S3, not the stack's KMS key: the content is public through CloudFront anyway, and OAC
        # reading SSE-KMS objects needs a statement in the key's policy, which this program does not own.
        private = private_bucket(name, child)
        bucket, public_access, encryption = private.bucket, private.public_access, private.encryption

        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            name=bucket.bucket.apply(lambda b: f"{b}-oac"[:64]),
            description="CloudFront reads the private site bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        headers = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers",
            name=bucket.bucket.apply(lambda b: f"{b}-headers"[:128]),
            comment="HSTS, CSP (connect-src = API origin only), nosniff, no framing, no powerful features, COOP, CORP",
            security_headers_config=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs(
                content_security_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentSecurityPolicyArgs(
                    content_security_policy=api_url.apply(policies.content_security_policy),
                    override=True,
                ),
                strict_transport_security=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigStrictTransportSecurityArgs(
                    access_control_max_age_sec=63072000,
                    include_subdomains=True,
                    preload=True,
                    override=True,
                ),
                content_type_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentTypeOptionsArgs(
                    override=True
                ),
                frame_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigFrameOptionsArgs(
                    frame_option="DENY", override=True
                ),
                referrer_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigReferrerPolicyArgs(
                    referrer_policy="strict-origin-when-cross-origin", override=True
                ),
            ),
            custom_headers_config=aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigArgs(
                items=[
                    aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                        header="Permissions-Policy", value=policies.PERMISSIONS_POLICY, override=True
                    ),
                    aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                        header="Cross-Origin-Opener-Policy", value=policies.CROSS_ORIGIN_OPENER_POLICY, override=True
                    ),
                    aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                        header="Cross-Origin-Resource-Policy",
                        value=policies.CROSS_ORIGIN_RESOURCE_POLICY,
                        override=True,
                    ),
                ]
            ),
            opts=child,
        )

        if args.custom_domain:
            viewer_certificate = aws.cloudfront.DistributionViewerCertificateArgs(
                acm_certificate_arn=args.certificate_arn,
                ssl_support_method="sni-only",
                minimum_protocol_version="TLSv1.2_2021",
            )
        else:
            viewer_certificate = aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True)
        distribution = aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            default_root_object=policies.INDEX_KEY,
            price_class=args.price_class,
            aliases=[args.custom_domain] if args.custom_domain else None,
            comment="mobilenet-serverless web UI",
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=_ORIGIN_ID,
                    domain_name=bucket.bucket_regional_domain_name,
                    origin_access_control_id=oac.id,
                )
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=_ORIGIN_ID,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD"],
                cached_methods=["GET", "HEAD"],
                compress=True,
                cache_policy_id=policies.CACHING_OPTIMIZED_POLICY_ID,
                response_headers_policy_id=headers.id,
            ),
            ordered_cache_behaviors=[
                # config.js carries the API URL, which a replaced API changes: never cached at the edge.
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=f"/{policies.CONFIG_JS_KEY}",
                    target_origin_id=_ORIGIN_ID,
                    viewer_protocol_policy="redirect-to-https",
                    allowed_methods=["GET", "HEAD"],
                    cached_methods=["GET", "HEAD"],
                    compress=True,
                    cache_policy_id=policies.CACHING_DISABLED_POLICY_ID,
                    response_headers_policy_id=headers.id,
                )
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            viewer_certificate=viewer_certificate,
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, distribution.arn).apply(
                lambda v: policies.site_bucket_policy(v[0], v[1])
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )

        object_opts = pulumi.ResourceOptions(parent=self, depends_on=[encryption])

        def site_object(key: str, path: Path, opts: pulumi.ResourceOptions) -> aws.s3.BucketObjectv2:
            return aws.s3.BucketObjectv2(
                _object_name(name, key),
                bucket=bucket.id,
                key=key,
                source=pulumi.FileAsset(engine_path(path)),
                content_type=policies.content_type_for(key),
                cache_control=policies.cache_control_for(key),
                opts=opts,
            )

        objects: list[pulumi.Resource] = [
            site_object(key, path, object_opts) for key, path in files.items() if key != policies.INDEX_KEY
        ]
        config_js = api_url.apply(render_config_js)
        objects.append(
            aws.s3.BucketObjectv2(
                _object_name(name, policies.CONFIG_JS_KEY),
                bucket=bucket.id,
                key=policies.CONFIG_JS_KEY,
                content=config_js,
                content_type=CONFIG_JS_CONTENT_TYPE,
                cache_control=CONFIG_JS_CACHE_CONTROL,
                opts=object_opts,
            )
        )
        # The page goes up last, once every file it may load is in place: uploaded beside them, a new index.html
        # could name a file not yet put, and S3's 403 for it is kept by CloudFront for 10 s whatever its
        # Cache-Control, a broken page for every visitor at that edge until the invalidation.
        objects.append(
            site_object(
                policies.INDEX_KEY,
                files[policies.INDEX_KEY],
                pulumi.ResourceOptions(parent=self, depends_on=[encryption, *objects]),
            )
        )

        site_bytes = policies.read_site_files(files)
        content_hash = config_js.apply(lambda js: policies.site_content_hash(site_bytes, js))
        CloudFrontInvalidation(
            f"{name}-invalidation",
            distribution_id=distribution.id,
            content_hash=content_hash,
            paths=list(policies.INVALIDATION_PATHS),
            region=aws.get_region_output(opts=pulumi.InvokeOptions(parent=self)).region,
            opts=pulumi.ResourceOptions(parent=self, depends_on=objects),
        )

        self.bucket_name = bucket.bucket
        self.distribution_id = distribution.id
        self.site_origins = distribution.domain_name.apply(
            lambda domain: policies.site_origins(domain, args.custom_domain)
        )
        self.site_url = self.site_origins.apply(lambda origins: origins[0])
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "distribution_id": self.distribution_id,
                "site_url": self.site_url,
                "site_origins": self.site_origins,
            }
        )
