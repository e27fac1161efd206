"""Policy rules over the resource graph, in the spirit of Pulumi's AWSGuard pack.

Each rule is a pure function `(resources, ...) -> list[str]` over every resource of the relevant type,
so a bucket, role or distribution added later is covered without touching the rule. A violation
names the resource (URN) and the property, so a failing CI run says what to fix. test_guard.py asserts
each rule returns [] for the real program and a non-empty list for a deliberately bad resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from tests.policy.graph import Res, of_type

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
ENCRYPTION_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
ACL_TYPES = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
OBJECT_TYPES = (
    "aws:s3/bucketObjectv2:BucketObjectv2",
    "aws:s3/bucketObject:BucketObject",
    "aws:s3/objectCopy:ObjectCopy",
)
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
OAI = "aws:cloudfront/originAccessIdentity:OriginAccessIdentity"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT_TYPES = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
)
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
SM_MODEL = "aws:sagemaker/model:Model"
SM_ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
SM_ENDPOINT_CONFIG = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
HTTP_API = "aws:apigatewayv2/api:Api"
STAGE = "aws:apigatewayv2/stage:Stage"
ROUTE = "aws:apigatewayv2/route:Route"
PREDICT_ROUTE = "POST /predict"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DYNAMIC = "pulumi-python:dynamic:Resource"

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
PUBLIC_GRANTEE_URIS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
# Actions with no resource-level permissions, for which "*" is the only valid resource, and the condition each must
# carry instead (None: none exists). PutMetricData is held to the endpoints' metric namespace.
STAR_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken": None,
    "cloudwatch:PutMetricData": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
}
BROAD_MANAGED_POLICIES = (
    "AdministratorAccess",
    "PowerUserAccess",
    "IAMFullAccess",
    "AmazonS3FullAccess",
    "AmazonSageMakerFullAccess",
    "AWSLambda_FullAccess",
    "CloudWatchLogsFullAccess",
    "AmazonAPIGatewayAdministrator",
    "CloudFrontFullAccess",
)
# Which service may assume a role is decided by what the role is used for.
ROLE_USERS: dict[str, tuple[str, str]] = {
    SM_MODEL: ("executionRoleArn", "sagemaker.amazonaws.com"),
    FUNCTION: ("role", "lambda.amazonaws.com"),
}
# Every action a role may be granted, by the service that uses it: what its work needs (components/policies.py says
# why each is there). Written out here, not read from the program: the checks of rule 6 above see wildcards and
# foreign resources only, so sagemaker:DeleteEndpoint granted beside InvokeEndpoint on the stack's own endpoint
# passed them all. IAM compares actions case-insensitively, and so does this.
SERVICE_ACTIONS: dict[str, frozenset[str]] = {
    "sagemaker.amazonaws.com": frozenset(
        {
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "s3:GetObject",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
            "cloudwatch:PutMetricData",
            "kms:Decrypt",
        }
    ),
    "lambda.amazonaws.com": frozenset(
        {"logs:CreateLogStream", "logs:PutLogEvents", "sagemaker:InvokeEndpoint", "kms:Decrypt"}
    ),
}
HTTPS_VIEWER_POLICIES = ("redirect-to-https", "https-only")
MIN_TLS = "TLSv1.2_2021"
HSTS_MIN_AGE_S = 365 * 24 * 3600
SAFE_REFERRER_POLICIES = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")
# Powerful features the UI, which uses none, must deny to every origin, its own included (an empty allowlist).
DENIED_FEATURES = (
    "camera",
    "clipboard-read",
    "display-capture",
    "geolocation",
    "hid",
    "microphone",
    "midi",
    "payment",
    "serial",
    "usb",
)
# Custom headers the UI's responses must carry with exactly this value (lower-case name -> value): it opens no window
# that needs its opener (COOP), and only its own pages load its files (CORP).
ISOLATION_HEADERS = {"cross-origin-opener-policy": "same-origin", "cross-origin-resource-policy": "same-origin"}
PREDICT_SOURCE_SUFFIX = "/*/POST/predict"
OAC_READ_ACTIONS = frozenset({"s3:GetObject"})
# What a viewer may ask of the read-only site: a behaviour forwarding POST/PUT/DELETE to the S3 origin would be kept
# from writing only by rule 4's read-only bucket policy (OAC signs those requests too).
SITE_METHODS = frozenset({"GET", "HEAD"})
CORS_METHODS = frozenset({"POST", "OPTIONS"})
CORS_EXPOSED = frozenset({"retry-after", "x-request-id"})
_KMS_ARN = re.compile(r"arn:aws[a-z-]*:kms:[^\"\\\s,]+")
# S3's regional endpoint, as kms:ViaService names it when S3 decrypts for a caller (.cn in the China regions).
_S3_SERVICE = re.compile(r"^s3\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _document(res: Res, prop: str, problems: list[str]) -> dict[str, Any] | None:
    raw = res.inputs.get(prop)
    try:
        document = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        problems.append(f"{res.label()}: {prop} is not JSON")
        return None
    if not isinstance(document, Mapping):
        problems.append(f"{res.label()}: {prop} is missing or not a policy document, got {raw!r}")
        return None
    return dict(document)


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(s) for s in _as_list(document.get("Statement"))]


def _attached(resources: Sequence[Res], types: Iterable[str], bucket: Res) -> list[Res]:
    """Sub-resources of a bucket: their `bucket` input is the bucket's id (its name)."""
    wanted = tuple(types)
    return [r for r in resources if r.type in wanted and r.inputs.get("bucket") == bucket.id]


def _buckets(resources: Sequence[Res]) -> list[Res]:
    return [r for r in resources if r.type in BUCKET_TYPES]


# ------------------------------------------------------------------------------------------ 1. S3


def public_access_block_violations(resources: Sequence[Res]) -> list[str]:
    """Rule 1: every bucket has a BucketPublicAccessBlock with all four flags true."""
    problems = []
    for bucket in _buckets(resources):
        blocks = _attached(resources, [PUBLIC_ACCESS_BLOCK], bucket)
        if not blocks:
            problems.append(f"{bucket.label()}: no BucketPublicAccessBlock for bucket {bucket.id!r}")
        for block in blocks:
            problems += [
                f"{block.label()}: {flag} = {block.inputs.get(flag)!r}, must be true"
                for flag in PUBLIC_ACCESS_FLAGS
                if block.inputs.get(flag) is not True
            ]
    return problems


def acl_violations(resources: Sequence[Res]) -> list[str]:
    """Rule 2: no ACL grants anything (ACLs disabled: BucketOwnerEnforced on every bucket)."""
    problems = []
    for res in resources:
        acl = res.inputs.get("acl")
        if res.type in (*BUCKET_TYPES, *ACL_TYPES, *OBJECT_TYPES) and acl not in (None, "private"):
            problems.append(f"{res.label()}: acl = {acl!r}, only 'private' (or unset) is allowed")
        if res.type in (*BUCKET_TYPES, *ACL_TYPES):
            grants = _as_list(res.inputs.get("grants")) + _as_list(
                (res.inputs.get("accessControlPolicy") or {}).get("grants")
            )
            for grant in grants:
                text = json.dumps(grant, default=str)
                if any(uri in text for uri in PUBLIC_GRANTEE_URIS):
                    problems.append(f"{res.label()}: grants has a public grantee: {text}")
        if res.type in OBJECT_TYPES:
            # An ObjectCopy's ACL is its `grants` list (pulumi-aws 7 has no grant* properties on any object type).
            for prop in ("grants", "grantRead", "grantFullControl", "grantReadAcp", "grantWriteAcp"):
                if res.inputs.get(prop):
                    problems.append(f"{res.label()}: {prop} = {res.inputs[prop]!r}, object ACL grants are not allowed")
    for bucket in _buckets(resources):
        controls = _attached(resources, [OWNERSHIP], bucket)
        if not controls:
            problems.append(f"{bucket.label()}: no BucketOwnershipControls (ACLs stay enabled)")
        for control in controls:
            ownership = (control.inputs.get("rule") or {}).get("objectOwnership")
            if ownership != "BucketOwnerEnforced":
                problems.append(f"{control.label()}: rule.objectOwnership = {ownership!r}, must be BucketOwnerEnforced")
    return problems


def encryption_violations(
    resources: Sequence[Res], kms_key_arn: str | None, sse_s3_allowed: Mapping[str, str] | None = None
) -> list[str]:
    """Rule 3: every bucket encrypts at rest; with a stack KMS key, with that key.

    `sse_s3_allowed` maps bucket logical names to the documented reason they keep SSE-S3 even when a
    KMS key is configured (the site bucket: OAC reading SSE-KMS objects needs the key policy to trust
    CloudFront, and this program does not own the key policy - see components/static_site.py).
    """
    exempt = sse_s3_allowed or {}
    problems = []
    for bucket in _buckets(resources):
        configs = _attached(resources, ENCRYPTION_TYPES, bucket)
        if not configs:
            problems.append(f"{bucket.label()}: no server-side encryption configuration")
        for config in configs:
            rules = _as_list(config.inputs.get("rules"))
            if not rules:
                problems.append(f"{config.label()}: rules is empty")
            for rule in rules:
                default = rule.get("applyServerSideEncryptionByDefault") or {}
                algorithm, key = default.get("sseAlgorithm"), default.get("kmsMasterKeyId")
                where = f"{config.label()}: rules[].applyServerSideEncryptionByDefault"
                if algorithm not in SSE_ALGORITHMS:
                    problems.append(f"{where}.sseAlgorithm = {algorithm!r}, must be one of {SSE_ALGORITHMS}")
                elif kms_key_arn and bucket.name not in exempt:
                    if algorithm != "aws:kms" or key != kms_key_arn:
                        problems.append(
                            f"{where} = ({algorithm!r}, kmsMasterKeyId={key!r}), must be aws:kms with {kms_key_arn}"
                        )
                elif algorithm.startswith("aws:kms") and key and key != kms_key_arn:
                    problems.append(f"{where}.kmsMasterKeyId = {key!r} is not the stack key {kms_key_arn!r}")
    # An object may override the bucket default; it must not downgrade or switch keys.
    buckets_by_id = {b.id: b for b in _buckets(resources)}
    for obj in (r for r in resources if r.type in OBJECT_TYPES):
        algorithm, key = obj.inputs.get("serverSideEncryption"), obj.inputs.get("kmsKeyId")
        bucket = buckets_by_id.get(obj.inputs.get("bucket"))
        if algorithm is None:
            continue
        if algorithm not in SSE_ALGORITHMS:
            problems.append(f"{obj.label()}: serverSideEncryption = {algorithm!r}")
        elif (
            kms_key_arn
            and bucket is not None
            and bucket.name not in exempt
            and (algorithm != "aws:kms" or key != kms_key_arn)
        ):
            problems.append(
                f"{obj.label()}: serverSideEncryption = {algorithm!r}, kmsKeyId = {key!r}, must be aws:kms with "
                f"{kms_key_arn}"
            )
    return problems


def bucket_policy_violations(resources: Sequence[Res]) -> list[str]:
    """Rule 4: Allow only reads, only to CloudFront for one of our distributions (OAC); deny non-TLS on every
    bucket."""
    distribution_arns = {d.outputs.get("arn") for d in of_type(resources, DISTRIBUTION)} - {None}
    problems = []
    for bucket in _buckets(resources):
        policies = _attached(resources, [BUCKET_POLICY], bucket)
        if not policies:
            problems.append(f"{bucket.label()}: no BucketPolicy (non-TLS access is not denied)")
        denies_plain_http = False
        for policy in policies:
            document = _document(policy, "policy", problems)
            for i, statement in enumerate(_statements(document or {})):
                where = f"{policy.label()}: policy.Statement[{i}]"
                principal, condition = statement.get("Principal"), statement.get("Condition") or {}
                if statement.get("Effect") == "Deny":
                    secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
                    # Only a Deny to everyone, of every S3 action, on the bucket and its objects: one narrowed to
                    # GetObject or to one principal leaves the rest (PutObject, ListBucket) open over plain HTTP.
                    arn = bucket.outputs.get("arn")
                    denies_plain_http |= (
                        str(secure).lower() == "false"
                        and principal in ("*", {"AWS": "*"})
                        and "s3:*" in _as_list(statement.get("Action"))
                        and {arn, f"{arn}/*"} <= set(_as_list(statement.get("Resource")))
                    )
                    if principal == "*" and not condition:
                        problems.append(f"{where}: Deny to '*' without a Condition denies everyone")
                    continue
                if "NotPrincipal" in statement or "NotAction" in statement:
                    problems.append(f"{where}: Allow with NotPrincipal/NotAction")
                if principal != {"Service": "cloudfront.amazonaws.com"}:
                    problems.append(f"{where}: Principal = {principal!r}, only the CloudFront service (OAC) may read")
                # Read only: a write or delete action would let any viewer change the site through a distribution
                # that forwards PUT/DELETE (OAC signs those too).
                actions = [str(a) for a in _as_list(statement.get("Action"))]
                if not actions or set(actions) - OAC_READ_ACTIONS:
                    problems.append(f"{where}: Action = {actions!r}, CloudFront may only {sorted(OAC_READ_ACTIONS)}")
                source = (condition.get("StringEquals") or {}).get("AWS:SourceArn")
                if source not in distribution_arns:
                    problems.append(
                        f"{where}: Condition.StringEquals.AWS:SourceArn = {source!r}, "
                        f"must be one of this stack's distributions {sorted(distribution_arns)}"
                    )
        if policies and not denies_plain_http:
            problems.append(f"{bucket.label()}: no Deny statement on aws:SecureTransport = false")
    return problems


# ---------------------------------------------------------------------------------- 5. CloudFront


def cloudfront_https_violations(resources: Sequence[Res]) -> list[str]:
    """Rule 5: viewers on HTTPS only and reading only (GET and HEAD), TLS 1.2_2021 with a custom certificate, S3
    origins through OAC."""
    oac_ids = {o.id for o in of_type(resources, OAC)}
    problems = [
        f"{r.label()}: legacy Origin Access Identity; use Origin Access Control" for r in of_type(resources, OAI)
    ]
    for oac in of_type(resources, OAC):
        for prop, want in (("signingBehavior", "always"), ("signingProtocol", "sigv4")):
            if oac.inputs.get(prop) != want:
                problems.append(f"{oac.label()}: {prop} = {oac.inputs.get(prop)!r}, must be {want!r}")
    for dist in of_type(resources, DISTRIBUTION):
        behaviors = [("defaultCacheBehavior", dist.inputs.get("defaultCacheBehavior") or {})]
        behaviors += [
            (f"orderedCacheBehaviors[{i}]", b) for i, b in enumerate(_as_list(dist.inputs.get("orderedCacheBehaviors")))
        ]
        for where, behavior in behaviors:
            policy = behavior.get("viewerProtocolPolicy")
            if policy not in HTTPS_VIEWER_POLICIES:
                problems.append(f"{dist.label()}: {where}.viewerProtocolPolicy = {policy!r}")
            methods = [str(m) for m in _as_list(behavior.get("allowedMethods"))]
            if set(methods) != SITE_METHODS:
                problems.append(f"{dist.label()}: {where}.allowedMethods = {methods!r}, must be {sorted(SITE_METHODS)}")
        cert = dist.inputs.get("viewerCertificate") or {}
        if cert.get("acmCertificateArn") or cert.get("iamCertificateId"):
            if cert.get("minimumProtocolVersion") != MIN_TLS:
                problems.append(
                    f"{dist.label()}: viewerCertificate.minimumProtocolVersion = "
                    f"{cert.get('minimumProtocolVersion')!r}, must be {MIN_TLS}"
                )
            if cert.get("sslSupportMethod") != "sni-only":
                problems.append(
                    f"{dist.label()}: viewerCertificate.sslSupportMethod = {cert.get('sslSupportMethod')!r}"
                )
        elif not cert.get("cloudfrontDefaultCertificate"):
            problems.append(f"{dist.label()}: viewerCertificate names no certificate")
        origins = _as_list(dist.inputs.get("origins"))
        if not origins:
            problems.append(f"{dist.label()}: origins is empty")
        for i, origin in enumerate(origins):
            where = f"{dist.label()}: origins[{i}]"
            custom = origin.get("customOriginConfig")
            if custom is not None:
                if custom.get("originProtocolPolicy") != "https-only":
                    problems.append(
                        f"{where}.customOriginConfig.originProtocolPolicy = {custom.get('originProtocolPolicy')!r}"
                    )
                continue
            if (origin.get("s3OriginConfig") or {}).get("originAccessIdentity"):
                problems.append(f"{where}.s3OriginConfig.originAccessIdentity is set (legacy OAI)")
            if origin.get("originAccessControlId") not in oac_ids:
                problems.append(
                    f"{where}.originAccessControlId = {origin.get('originAccessControlId')!r}, "
                    f"must be an OriginAccessControl of this stack"
                )
    return problems


# ----------------------------------------------------------------------------------------- 6. IAM


def _policy_documents_with_roles(
    resources: Sequence[Res], problems: list[str]
) -> list[tuple[str, dict[str, Any], Res | None]]:
    """Each identity policy document, where it is, and the role of this stack it is on (None: a standalone Policy,
    or a RolePolicy on a role the stack does not have)."""
    roles = list(of_type(resources, ROLE))

    def role_named(value: Any) -> Res | None:
        return next((r for r in roles if value is not None and value in (r.id, r.outputs.get("name"))), None)

    documents = []
    for res in resources:
        if res.type in (ROLE_POLICY, POLICY):
            doc = _document(res, "policy", problems)
            if doc is not None:
                role = role_named(res.inputs.get("role")) if res.type == ROLE_POLICY else None
                documents.append((f"{res.label()}: policy", doc, role))
        elif res.type == ROLE:
            for i, inline in enumerate(_as_list(res.inputs.get("inlinePolicies"))):
                doc = _document(Res(res.type, res.name, inline, urn=res.urn), "policy", problems)
                if doc is not None:
                    documents.append((f"{res.label()}: inlinePolicies[{i}].policy", doc, res))
    return documents


_S3_PREFIX_WILDCARD = re.compile(r"^arn:aws[a-z-]*:s3:::[^/*]+/[^*]+/\*$")
# The streams of one named log group: ":*" after a log-group ARN, never after any other ARN (an account's every
# SageMaker resource, arn:...:sagemaker:<region>:<account>:*) nor in place of the group's name (log-group:*).
_LOG_STREAMS_WILDCARD = re.compile(r"^arn:aws[a-z-]*:logs:[^:*]+:[^:*]+:log-group:[^:*]+:\*$")


# An AWS managed policy in any partition (arn:aws-cn:, arn:aws-us-gov: too), not only the commercial one.
_AWS_MANAGED_POLICY = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/")


def _artifact_prefix_wildcards(resources: Sequence[Res]) -> set[str]:
    """The one S3 key-prefix wildcard rule 6 allows, for each SageMaker model of the stack: the folder its artifact
    sits in, top level (s3://<bucket>/models/<sha256>/model.tar.gz -> <bucket>/models/*), as ARN suffixes."""
    found = set()
    for model in of_type(resources, SM_MODEL):
        containers = [model.inputs.get("primaryContainer"), *(model.inputs.get("containers") or [])]
        for container in containers:
            url = urlsplit(str((container or {}).get("modelDataUrl") or ""))
            folder, _, rest = url.path.lstrip("/").partition("/")
            if url.scheme == "s3" and url.netloc and folder and rest:
                found.add(f":s3:::{url.netloc}/{folder}/*")
    return found


def _allowed_suffix_removed(resource: str) -> str:
    if _S3_PREFIX_WILDCARD.match(resource):
        return resource.removesuffix("*")
    if _LOG_STREAMS_WILDCARD.match(resource):
        return resource.removesuffix(":*")
    return resource


def _role_users(resources: Sequence[Res], problems: list[str]) -> dict[str, set[str]]:
    """Each role's name -> the services (ROLE_USERS) whose resources run as it; a user naming no role of this stack
    is a problem."""
    roles_by_arn = {r.outputs.get("arn"): r for r in of_type(resources, ROLE)}
    users: dict[str, set[str]] = {}
    for typ, (prop, service) in ROLE_USERS.items():
        for user in of_type(resources, typ):
            role = roles_by_arn.get(user.inputs.get(prop))
            if role is None:
                problems.append(f"{user.label()}: {prop} = {user.inputs.get(prop)!r} is not a role of this stack")
            else:
                users.setdefault(role.name, set()).add(service)
    return users


def _function_log_group(fn: Res) -> str:
    """The log group a function writes: its loggingConfig's, else Lambda's /aws/lambda/<name>."""
    configured = (fn.inputs.get("loggingConfig") or {}).get("logGroup")
    return configured or f"/aws/lambda/{fn.inputs.get('name') or fn.outputs.get('name')}"


def _endpoint_log_group(endpoint: Res) -> str:
    """The log group SageMaker writes an endpoint's container logs to (fixed by the service)."""
    return f"/aws/sagemaker/Endpoints/{endpoint.inputs.get('name') or endpoint.outputs.get('name')}"


def _own_log_groups(resources: Sequence[Res]) -> dict[str, set[str]]:
    """Each role's name -> the ARNs of the declared log groups its users write: a function's own group, and the group
    of each endpoint whose configuration serves a model running as the role. No role writes the API's access log group
    (the logs delivery service does)."""
    roles_by_arn = {r.outputs.get("arn"): r for r in of_type(resources, ROLE)}
    group_arns = {g.inputs.get("name"): str(g.outputs.get("arn")) for g in of_type(resources, LOG_GROUP)}
    owned: dict[str, set[str]] = {}

    def writes(role_arn: Any, group: str) -> None:
        role = roles_by_arn.get(role_arn)
        if role is not None and group in group_arns:
            owned.setdefault(role.name, set()).add(group_arns[group])

    for fn in of_type(resources, FUNCTION):
        writes(fn.inputs.get("role"), _function_log_group(fn))
    models = {m.outputs.get("name") or m.inputs.get("name"): m for m in of_type(resources, SM_MODEL)}
    configs = {c.outputs.get("name") or c.inputs.get("name"): c for c in of_type(resources, SM_ENDPOINT_CONFIG)}
    for endpoint in of_type(resources, SM_ENDPOINT):
        config = configs.get(endpoint.inputs.get("endpointConfigName"))
        for variant in _as_list((config.inputs if config else {}).get("productionVariants")):
            model = models.get(variant.get("modelName"))
            if model is not None:
                writes(model.inputs.get("executionRoleArn"), _endpoint_log_group(endpoint))
    return owned


# Said of an identity policy no role of this stack has inline (a RolePolicy, or the role's inlinePolicies), which rule 6
# credits with no service's needs: a standalone Policy (attached or not), or a RolePolicy on a role the stack lacks.
NO_ROLE = "no role of this stack holds it inline"


def iam_violations(resources: Sequence[Res]) -> list[str]:
    """Rule 6: least privilege on every identity policy (each role logging only to its own service's log group), no
    broad managed policy, narrow trust."""
    problems: list[str] = []
    endpoint_arns = {str(e.outputs.get("arn")) for e in of_type(resources, SM_ENDPOINT)}
    group_arns = {str(g.outputs.get("arn")) for g in of_type(resources, LOG_GROUP)}
    expected = _role_users(resources, problems)
    owned = _own_log_groups(resources)
    documents = _policy_documents_with_roles(resources, problems)
    artifact_folders = _artifact_prefix_wildcards(resources)
    for where, document, role in documents:
        for i, statement in enumerate(_statements(document)):
            if statement.get("Effect") != "Allow":
                continue
            at = f"{where}.Statement[{i}]"
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{at}: Allow with NotAction/NotResource")
            actions = [str(a) for a in _as_list(statement.get("Action"))]
            resources_ = [str(r) for r in _as_list(statement.get("Resource"))]
            # Any wildcard in an action, not only "*" or "s3:*": "s3:Get*" grants GetBucketPolicy and GetObjectAcl too.
            wild = [a for a in actions if "*" in a or "?" in a]
            if wild:
                problems.append(f"{at}: Action wildcard {wild}")
            if "*" in resources_ and not set(actions) <= STAR_RESOURCE_ACTIONS.keys():
                problems.append(
                    f"{at}: Resource '*' with {sorted(set(actions) - STAR_RESOURCE_ACTIONS.keys())}; "
                    f"only {sorted(STAR_RESOURCE_ACTIONS)} may use '*'"
                )
            elif "*" in resources_:
                for action in actions:
                    wanted = STAR_RESOURCE_ACTIONS[action]
                    if wanted is not None and statement.get("Condition") != wanted:
                        problems.append(
                            f"{at}: {action} on Resource '*' needs Condition {wanted}, "
                            f"not {statement.get('Condition')!r}"
                        )
            # Invoking a model is this stack's business only: another stack's endpoint (or one named by hand,
            # before it exists) is no wildcard, so the checks above would let it through.
            # Another service's ARN listed with the endpoint (its log group, in a statement that also logs) is not
            # one the function invokes.
            invoked = sorted(r for r in set(resources_) - endpoint_arns if r.split(":")[2:3] in ([], ["sagemaker"]))
            if any(a.lower().startswith("sagemaker:invoke") for a in actions) and invoked and "*" not in invoked:
                problems.append(f"{at}: invokes {invoked}, not an endpoint of this stack")
            # Logging, likewise, only to the stack's own groups (or their streams): another function's group is no
            # wildcard either, and a role writing there could forge its logs.
            logged = [r for r in resources_ if r.split(":")[2:3] == ["logs"]]
            foreign = [r for r in logged if _allowed_suffix_removed(r) not in group_arns]
            if foreign:
                problems.append(f"{at}: logs to {foreign}, not a log group of this stack")
            # And each role only to its own service's group: the endpoint's role writing the function's group could
            # forge the proxy's logs, and no role writes the API's access logs.
            own = owned.get(role.name, set()) if role is not None else set()
            others = [r for r in logged if r not in foreign and _allowed_suffix_removed(r) not in own]
            if others:
                if role is None:
                    whose = NO_ROLE + ", so it may write none"
                else:
                    users = sorted(expected.get(role.name, ()))
                    whose = f"the role's user ({users or 'no service of this stack'}) writes only {sorted(own)}"
                problems.append(f"{at}: logs to {others}, not its own log group; {whose}")
            # A wildcard inside an ARN is allowed only as a log group's ":*" stream suffix, or ending an S3 key
            # prefix below the bucket (bucket/models/*; never bucket/*).
            partial = [r for r in resources_ if r != "*" and "*" in _allowed_suffix_removed(r)]
            if partial:
                problems.append(f"{at}: Resource wildcard {partial}")
            # And that prefix only as the endpoint's read of its own artifacts' folder: the same wildcard on another
            # bucket's objects, or on another folder of its own bucket, is wider than a rollout or a rollback reads.
            wide = [
                r
                for r in resources_
                if _S3_PREFIX_WILDCARD.match(r) and not any(r.endswith(folder) for folder in artifact_folders)
            ]
            if wide:
                problems.append(f"{at}: Resource wildcard {wide}, not the folder of this stack's model artifacts")
    managed = [
        (res, arn)
        for res in resources
        if res.type in (ROLE, *ATTACHMENT_TYPES)
        for prop in ("managedPolicyArns", "policyArn", "policyArns")
        for arn in _as_list(res.inputs.get(prop))
    ]
    for res, arn in managed:
        if str(arn).rsplit("/", 1)[-1] in BROAD_MANAGED_POLICIES or _AWS_MANAGED_POLICY.match(str(arn)):
            problems.append(f"{res.label()}: attaches AWS managed policy {arn}; grant exactly what is needed inline")
    for where, document, role in documents:
        services = expected.get(role.name, set()) if role is not None else set()
        needed = {a.lower() for service in services for a in SERVICE_ACTIONS.get(service, ())}
        for i, statement in enumerate(_statements(document)):
            actions = [str(a) for a in _as_list(statement.get("Action"))]
            extra = sorted(a for a in actions if a.lower() not in needed)
            if statement.get("Effect") == "Allow" and extra:
                if role is None:
                    problems.append(f"{where}.Statement[{i}]: grants {extra}, though {NO_ROLE}")
                else:
                    users = sorted(services) or "no service of this stack"
                    problems.append(
                        f"{where}.Statement[{i}]: grants {extra}, which the role's user ({users}) never needs"
                    )
    for role in of_type(resources, ROLE):
        document = _document(role, "assumeRolePolicy", problems)
        want = expected.get(role.name)
        if not want:
            problems.append(f"{role.label()}: no SageMaker model or Lambda function uses this role")
        for i, statement in enumerate(_statements(document or {})):
            if statement.get("Effect") != "Allow":
                continue
            at = f"{role.label()}: assumeRolePolicy.Statement[{i}]"
            principal = statement.get("Principal")
            services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
            if not isinstance(principal, Mapping) or set(principal) != {"Service"}:
                problems.append(f"{at}: Principal = {principal!r}, only a service principal may assume the role")
            elif want and set(services) != want:
                problems.append(f"{at}: trusts {sorted(services)}, the role is used by {sorted(want)}")
            if _as_list(statement.get("Action")) != ["sts:AssumeRole"]:
                problems.append(f"{at}: Action = {statement.get('Action')!r}, must be sts:AssumeRole")
    return problems


# --------------------------------------------------------------------------------------- 7. logs


def log_retention_violations(resources: Sequence[Res], retention_days: int) -> list[str]:
    """Rule 7: every log group expires (the configured retention); every writer's group is declared.

    Lambda and SageMaker create their log group on first write with no retention when it does not
    exist, so each function and endpoint must have its group declared here.
    """
    groups = list(of_type(resources, LOG_GROUP))
    problems = [
        f"{g.label()}: retentionInDays = {g.inputs.get('retentionInDays')!r}, must be {retention_days}"
        for g in groups
        if g.inputs.get("retentionInDays") is None or g.inputs["retentionInDays"] != retention_days
    ]
    names = {g.inputs.get("name") for g in groups}
    for fn in of_type(resources, FUNCTION):
        want = _function_log_group(fn)
        if want not in names:
            problems.append(f"{fn.label()}: its log group {want!r} is not declared (it would never expire)")
    for endpoint in of_type(resources, SM_ENDPOINT):
        want = _endpoint_log_group(endpoint)
        if want not in names:
            problems.append(f"{endpoint.label()}: its log group {want!r} is not declared (it would never expire)")
    return problems


# --------------------------------------------------------------------------------------- 8-10. API


def stage_violations(resources: Sequence[Res], rate_limit: float, burst_limit: float) -> list[str]:
    """Rule 8: every HTTP API has a stage, throttled as configured, with access logs to a declared group."""
    group_arns = {g.outputs.get("arn") for g in of_type(resources, LOG_GROUP)}
    stages = list(of_type(resources, STAGE))
    problems = [
        f"{api.label()}: no Stage for API {api.id!r}"
        for api in of_type(resources, HTTP_API)
        if not any(s.inputs.get("apiId") == api.id for s in stages)
    ]
    for stage in stages:
        settings = stage.inputs.get("defaultRouteSettings") or {}
        for prop, want in (("throttlingRateLimit", rate_limit), ("throttlingBurstLimit", burst_limit)):
            value = settings.get(prop)
            if not value or value <= 0 or value != want:
                problems.append(f"{stage.label()}: defaultRouteSettings.{prop} = {value!r}, must be {want}")
        for i, route in enumerate(_as_list(stage.inputs.get("routeSettings"))):
            for prop in ("throttlingRateLimit", "throttlingBurstLimit"):
                if prop in route and not route[prop] > 0:
                    problems.append(f"{stage.label()}: routeSettings[{i}].{prop} = {route[prop]!r}")
        logs = stage.inputs.get("accessLogSettings") or {}
        if logs.get("destinationArn") not in group_arns:
            problems.append(
                f"{stage.label()}: accessLogSettings.destinationArn = {logs.get('destinationArn')!r}, "
                "must be a log group of this stack"
            )
        if not logs.get("format"):
            problems.append(f"{stage.label()}: accessLogSettings.format is empty")
    return problems


def invoke_permission_violations(resources: Sequence[Res]) -> list[str]:
    """Rule 9: only API Gateway, only POST /predict of our API, may invoke a function; no function URL, and the API
    routes nothing else (a catch-all would be kept from the function only by the permission's sourceArn)."""
    execution_arns = {a.outputs.get("executionArn") for a in of_type(resources, HTTP_API)}
    problems = [
        f"{u.label()}: function URL with authorizationType = {u.inputs.get('authorizationType')!r} bypasses the API"
        for u in of_type(resources, FUNCTION_URL)
    ]
    problems += [
        f"{r.label()}: routeKey = {r.inputs.get('routeKey')!r}, the API serves only {PREDICT_ROUTE!r}"
        for r in of_type(resources, ROUTE)
        if r.inputs.get("routeKey") != PREDICT_ROUTE
    ]
    for perm in of_type(resources, PERMISSION):
        source = str(perm.inputs.get("sourceArn") or "")
        if perm.inputs.get("principal") != "apigateway.amazonaws.com":
            problems.append(f"{perm.label()}: principal = {perm.inputs.get('principal')!r}")
        if perm.inputs.get("action") != "lambda:InvokeFunction":
            problems.append(f"{perm.label()}: action = {perm.inputs.get('action')!r}, must be lambda:InvokeFunction")
        if (
            not source.endswith(PREDICT_SOURCE_SUFFIX)
            or source.removesuffix(PREDICT_SOURCE_SUFFIX) not in execution_arns
        ):
            problems.append(
                f"{perm.label()}: sourceArn = {source!r}, must be <this API's execution ARN>{PREDICT_SOURCE_SUFFIX}"
            )
    return problems


def cors_documents(resources: Sequence[Res], render: Callable[[list[str]], Mapping[str, Any]]) -> list[tuple[Res, Any]]:
    """Every CORS configuration the program sets: on an Api itself, or through the HttpApiCors resource.

    `render` turns the dynamic resource's recorded origins into the CorsConfiguration its provider
    sends to UpdateApi (test_guard passes the provider's own code path).
    """
    found: list[tuple[Res, Any]] = []
    for api in of_type(resources, HTTP_API):
        if api.inputs.get("corsConfiguration"):
            config = api.inputs["corsConfiguration"]
            found.append(
                (
                    api,
                    {
                        "AllowOrigins": config.get("allowOrigins"),
                        "AllowMethods": config.get("allowMethods"),
                        "ExposeHeaders": config.get("exposeHeaders"),
                        "AllowHeaders": config.get("allowHeaders"),
                        "AllowCredentials": config.get("allowCredentials"),
                    },
                )
            )
    for res in of_type(resources, DYNAMIC):
        if "api_id" in res.inputs and "origins" in res.inputs:
            found.append((res, render(list(res.inputs["origins"]))))
    return found


def cors_violations(
    configs: Sequence[tuple[Res, Mapping[str, Any]]], apis: Sequence[Res], allowed: Sequence[str]
) -> list[str]:
    """Rule 10: each API's CORS allows exactly the site origin(s) + configured extras, POST/OPTIONS,
    exposes retry-after and x-request-id, no credentials and no "*"."""
    problems = []
    covered = {res.inputs.get("api_id") or res.id for res, _ in configs}
    problems += [
        f"{api.label()}: no CORS configuration (browsers cannot call it)" for api in apis if api.id not in covered
    ]
    for res, config in configs:
        origins = [str(o) for o in _as_list(config.get("AllowOrigins"))]
        if any("*" in o for o in origins) or set(origins) != set(allowed):
            problems.append(f"{res.label()}: AllowOrigins = {origins}, must be exactly {sorted(allowed)}")
        methods = {str(m).upper() for m in _as_list(config.get("AllowMethods"))}
        if methods != CORS_METHODS:
            problems.append(f"{res.label()}: AllowMethods = {sorted(methods)}, must be {sorted(CORS_METHODS)}")
        headers = [str(h) for h in _as_list(config.get("AllowHeaders"))]
        if "*" in headers:
            problems.append(f"{res.label()}: AllowHeaders = {headers} allows any header")
        exposed = {str(h).lower() for h in _as_list(config.get("ExposeHeaders"))}
        if not exposed >= CORS_EXPOSED:
            problems.append(f"{res.label()}: ExposeHeaders = {sorted(exposed)}, must include {sorted(CORS_EXPOSED)}")
        if config.get("AllowCredentials"):
            problems.append(f"{res.label()}: AllowCredentials = true, the UI sends no credentials")
    return problems


def site_origins(resources: Sequence[Res]) -> list[str]:
    """https://<alias> and https://<distribution domain> of every distribution."""
    origins = []
    for dist in of_type(resources, DISTRIBUTION):
        origins += [f"https://{alias}" for alias in _as_list(dist.inputs.get("aliases"))]
        origins.append(f"https://{dist.outputs.get('domainName')}")
    return origins


# ----------------------------------------------------------------------------- 11. response headers


def parse_csp(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0].lower()] = tokens[1:]
    return directives


def csp_problems(policy: str, api_origin: str) -> list[str]:
    """What is wrong with a CSP for the UI (shared by the CloudFront rule and the local-stack check)."""
    csp = parse_csp(policy)
    problems = []
    if csp.get("connect-src") != [api_origin]:
        problems.append(f"connect-src = {csp.get('connect-src')}, must be exactly [{api_origin!r}]")
    for name, want in (("frame-ancestors", ["'none'"]), ("object-src", ["'none'"]), ("default-src", ["'self'"])):
        if csp.get(name) != want:
            problems.append(f"{name} = {csp.get(name)}, must be {want}")
    for name, sources in csp.items():
        bad = [s for s in sources if s in ("*", "'unsafe-inline'", "'unsafe-eval'", "http:", "https:")]
        if bad:
            problems.append(f"{name} allows {bad}")
        # The page loads nothing from anywhere else: beyond connect-src (the API), a directive names only the
        # site itself ('self', 'none'), and only images may also come from data: and blob: (the preview).
        allowed = {"'self'", "'none'", *(("data:", "blob:") if name == "img-src" else ())}
        foreign = [s for s in sources if name != "connect-src" and s not in allowed and s not in bad]
        if foreign:
            problems.append(f"{name} allows {foreign}, only {sorted(allowed)}")
    return problems


def parse_permissions_policy(policy: str) -> dict[str, str]:
    """feature -> allowlist of a Permissions-Policy header (a structured-field dictionary: `camera=()`)."""
    features: dict[str, str] = {}
    for member in policy.split(","):
        name, _, allowlist = member.partition("=")
        if name.strip():
            features[name.strip().lower()] = allowlist.strip()
    return features


def permissions_policy_problems(policy: str) -> list[str]:
    """What is wrong with a Permissions-Policy for the UI (shared by the CloudFront rule and the local-stack check):
    each of DENIED_FEATURES must have an empty allowlist, and nothing it names may be allowed to anyone."""
    features = parse_permissions_policy(policy)
    problems = []
    for name in DENIED_FEATURES:
        if name not in features:
            problems.append(f"{name} is not named, must be {name}=()")
    for name, allowlist in features.items():
        if allowlist != "()":
            problems.append(f"{name}={allowlist}, must be {name}=() (the page uses no powerful feature)")
    return problems


def headers_policy_violations(resources: Sequence[Res], api_origin: str) -> list[str]:
    """Rule 11: every cache behaviour serves HSTS, nosniff, DENY framing, a safe referrer policy, a
    CSP whose connect-src is only the API origin, a Permissions-Policy denying every powerful feature, and
    same-origin Cross-Origin-Opener-Policy and Cross-Origin-Resource-Policy."""
    policies = {p.id: p for p in of_type(resources, HEADERS_POLICY)}
    problems = []
    for dist in of_type(resources, DISTRIBUTION):
        behaviors = [dist.inputs.get("defaultCacheBehavior") or {}, *_as_list(dist.inputs.get("orderedCacheBehaviors"))]
        for behavior in behaviors:
            if behavior.get("responseHeadersPolicyId") not in policies:
                problems.append(
                    f"{dist.label()}: cache behaviour {behavior.get('pathPattern', 'default')!r} has "
                    f"responseHeadersPolicyId = {behavior.get('responseHeadersPolicyId')!r}, not a policy of this stack"
                )
    for policy in policies.values():
        config = policy.inputs.get("securityHeadersConfig") or {}
        at = f"{policy.label()}: securityHeadersConfig"
        hsts = config.get("strictTransportSecurity") or {}
        if not (hsts.get("accessControlMaxAgeSec") or 0) >= HSTS_MIN_AGE_S or hsts.get("includeSubdomains") is not True:
            problems.append(f"{at}.strictTransportSecurity = {hsts}, needs max age >= 1 year and includeSubdomains")
        if not config.get("contentTypeOptions"):
            problems.append(f"{at}.contentTypeOptions is not set (nosniff)")
        if (config.get("frameOptions") or {}).get("frameOption") != "DENY":
            problems.append(f"{at}.frameOptions = {config.get('frameOptions')}, must be DENY")
        referrer = (config.get("referrerPolicy") or {}).get("referrerPolicy")
        if referrer not in SAFE_REFERRER_POLICIES:
            problems.append(f"{at}.referrerPolicy = {referrer!r}, must be one of {SAFE_REFERRER_POLICIES}")
        csp = (config.get("contentSecurityPolicy") or {}).get("contentSecurityPolicy")
        if not csp:
            problems.append(f"{at}.contentSecurityPolicy is not set")
        else:
            problems += [f"{at}.contentSecurityPolicy: {p}" for p in csp_problems(csp, api_origin)]
        for name in (
            "strictTransportSecurity",
            "contentTypeOptions",
            "frameOptions",
            "referrerPolicy",
            "contentSecurityPolicy",
        ):
            if (config.get(name) or {}).get("override") is not True:
                problems.append(f"{at}.{name}.override is not true (an origin header could replace it)")
        # securityHeadersConfig has no field for it: a custom header.
        custom = _as_list((policy.inputs.get("customHeadersConfig") or {}).get("items"))
        permissions = [item for item in custom if str(item.get("header", "")).lower() == "permissions-policy"]
        if not permissions:
            problems.append(f"{policy.label()}: customHeadersConfig has no Permissions-Policy")
        for item in permissions:
            at = f"{policy.label()}: customHeadersConfig Permissions-Policy"
            problems += [f"{at}: {p}" for p in permissions_policy_problems(str(item.get("value") or ""))]
            if item.get("override") is not True:
                problems.append(f"{at}.override is not true (an origin header could replace it)")
        for name, wanted in ISOLATION_HEADERS.items():
            found = [item for item in custom if str(item.get("header", "")).lower() == name]
            if not found:
                problems.append(f"{policy.label()}: customHeadersConfig has no {name}")
            for item in found:
                at = f"{policy.label()}: customHeadersConfig {item.get('header')}"
                if str(item.get("value") or "").strip().lower() != wanted:
                    problems.append(f"{at} = {item.get('value')!r}, must be {wanted!r}")
                if item.get("override") is not True:
                    problems.append(f"{at}.override is not true (an origin header could replace it)")
    return problems


# --------------------------------------------------------------------------------------- 12. KMS


def kms_violations(resources: Sequence[Res], kms_key_arn: str | None) -> list[str]:
    """Rule 12: with a stack key, the Lambda environment uses it and every role may decrypt with it (the model's role
    only through S3); no resource names any other key. (Bucket encryption with the key is rule 3.)

    The SageMaker EndpointConfiguration does not set kmsKeyArn in this program: a serverless variant
    has no ML storage volume for it to encrypt. If it is ever set, it must be the stack key.
    """
    problems = []
    for fn in of_type(resources, FUNCTION):
        if fn.inputs.get("kmsKeyArn") != kms_key_arn:
            problems.append(f"{fn.label()}: kmsKeyArn = {fn.inputs.get('kmsKeyArn')!r}, must be {kms_key_arn!r}")
    for config in of_type(resources, SM_ENDPOINT_CONFIG):
        key = config.inputs.get("kmsKeyArn")
        if key is not None and key != kms_key_arn:
            problems.append(f"{config.label()}: kmsKeyArn = {key!r}, must be the stack key {kms_key_arn!r}")
    if kms_key_arn:
        granted: dict[str, bool] = {}
        for policy in of_type(resources, ROLE_POLICY):
            doc = json.loads(policy.inputs.get("policy") or "{}")
            ok = any(
                s.get("Effect") == "Allow"
                and "kms:Decrypt" in _as_list(s.get("Action"))
                and _as_list(s.get("Resource")) == [kms_key_arn]
                for s in _statements(doc)
            )
            granted[str(policy.inputs.get("role"))] = granted.get(str(policy.inputs.get("role")), False) or ok
        for role in of_type(resources, ROLE):
            if not granted.get(role.id):
                problems.append(f"{role.label()}: no inline policy allows kms:Decrypt on {kms_key_arn}")
    # The model's role reads the key only through S3 (the artifact): a Decrypt it could call directly would let the
    # container (which parses untrusted images) decrypt anything under the stack key.
    users = _role_users(resources, [])
    for where, document, role in _policy_documents_with_roles(resources, []):
        if role is None or "sagemaker.amazonaws.com" not in users.get(role.name, ()):
            continue
        for i, s in enumerate(_statements(document)):
            if s.get("Effect") != "Allow" or "kms:decrypt" not in {str(a).lower() for a in _as_list(s.get("Action"))}:
                continue
            # Further conditions only narrow it (they are ANDed).
            via = ((s.get("Condition") or {}).get("StringEquals") or {}).get("kms:ViaService")
            if not (isinstance(via, str) and _S3_SERVICE.match(via)):
                problems.append(
                    f"{where}.Statement[{i}]: kms:Decrypt with Condition {s.get('Condition')!r}, "
                    "must be StringEquals kms:ViaService = s3.<region>.amazonaws.com (the key only through S3)"
                )
    # Any KMS key ARN anywhere in the inputs must be the configured one.
    for res in resources:
        for key in sorted(set(_KMS_ARN.findall(json.dumps(dict(res.inputs), default=str)))):
            if key != kms_key_arn:
                problems.append(f"{res.label()}: references KMS key {key!r}, not the stack key {kms_key_arn!r}")
    return problems


# ------------------------------------------------------------------------------------ 13. alarms

# What must be watched, per resource type: (namespace, the dimension naming it, where its value is read).
WATCHED: tuple[tuple[str, str, str, Callable[[Res], Any]], ...] = (
    (FUNCTION, "AWS/Lambda", "FunctionName", lambda r: r.outputs.get("name") or r.inputs.get("name")),
    (STAGE, "AWS/ApiGateway", "ApiId", lambda r: r.inputs.get("apiId")),
    (SM_ENDPOINT, "AWS/SageMaker", "EndpointName", lambda r: r.outputs.get("name") or r.inputs.get("name")),
)


def alarm_violations(resources: Sequence[Res], enabled: bool, topic_arn: str | None) -> list[str]:
    """Rule 13: every alarm says how to treat missing data (notBreaching: an idle stack must stay OK) and notifies
    exactly the configured topic, on ALARM and on OK; with alarms on, every function, API stage and endpoint has
    an alarm on its own metrics; with alarms off there are none."""
    alarms = list(of_type(resources, METRIC_ALARM))
    if not enabled:
        return [f"{a.label()}: an alarm although alarms is false" for a in alarms]
    want = [topic_arn] if topic_arn else None
    problems = []
    for alarm in alarms:
        if alarm.inputs.get("treatMissingData") != "notBreaching":
            problems.append(
                f"{alarm.label()}: treatMissingData = {alarm.inputs.get('treatMissingData')!r}, must be 'notBreaching'"
            )
        for prop in ("alarmActions", "okActions"):
            if (alarm.inputs.get(prop) or None) != want:
                problems.append(f"{alarm.label()}: {prop} = {alarm.inputs.get(prop)!r}, must be {want!r}")
        # Unset is true: with it false the alarm changes state but never runs its actions (the topic hears nothing).
        if alarm.inputs.get("actionsEnabled") is False:
            problems.append(f"{alarm.label()}: actionsEnabled = False, the alarm would never notify")
    watched = {
        (a.inputs.get("namespace"), name, value)
        for a in alarms
        for name, value in (a.inputs.get("dimensions") or {}).items()
    }
    for typ, namespace, dimension, value_of in WATCHED:
        for res in of_type(resources, typ):
            if (namespace, dimension, value_of(res)) not in watched:
                problems.append(f"{res.label()}: no alarm on {namespace} {dimension} = {value_of(res)!r}")
    return problems


def api_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
