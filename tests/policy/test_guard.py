"""Policy-as-code over the mocked resource graph: one rule per test, for the dev and a prod-like stack.

Each rule (tests/policy/rules.py) is checked twice: it returns [] for the real program, and it reports
the resource and property when one resource of that same graph is made deliberately bad - so a rule
that silently stopped looking would fail here, not pass forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from components.dynamic.http_api_cors import HttpApiCorsProvider
from tests.policy import rules
from tests.policy.graph import ALARM_TOPIC_ARN, KMS_KEY_ARN, Graph, Res

# The site bucket keeps SSE-S3 with a stack KMS key; components/static_site.py says why (OAC reading
# SSE-KMS objects needs a key-policy statement for CloudFront, and the program does not own the key).
SSE_S3_EXEMPT = {"site-bucket": "OAC + SSE-KMS needs the key policy to trust CloudFront (static_site.py)"}
OTHER_KEY = "arn:aws:kms:us-east-1:123456789012:key/ffffffff-0000-0000-0000-000000000000"
CN_KEY = "arn:aws-cn:kms:cn-north-1:123456789012:key/ffffffff-0000-0000-0000-000000000000"
# Written out, not read from rules: a bad case built from the rule's own constant passes whatever the rule says.
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
ONE_YEAR_S = 365 * 24 * 3600
OTHER_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/another-function"
# The stack's own log groups (dev and prod), as the rule must name them.
LOG_GROUP_ARN = "arn:aws:logs:us-east-1:123456789012:log-group:"
DEV_FUNCTION_GROUP = LOG_GROUP_ARN + "/aws/lambda/mobilenet-serverless-dev-proxy"
DEV_ENDPOINT_GROUP = LOG_GROUP_ARN + "/aws/sagemaker/Endpoints/mobilenet-serverless-dev"
PROD_FUNCTION_GROUP = LOG_GROUP_ARN + "/aws/lambda/mobilenet-prod-proxy"
PROD_ACCESS_GROUP = LOG_GROUP_ARN + "/aws/vendedlogs/apigateway/mobilenet-prod-proxy-access"
PROD_ENDPOINT_GROUP = LOG_GROUP_ARN + "/aws/sagemaker/Endpoints/mobilenet-prod"
SECOND_ENDPOINT = "mobilenet-second"
SECOND_ENDPOINT_GROUP = LOG_GROUP_ARN + "/aws/sagemaker/Endpoints/" + SECOND_ENDPOINT


def provider_cors(origins: list[str]) -> dict[str, Any]:
    """The CorsConfiguration HttpApiCorsProvider really sends to UpdateApi for these origins."""
    sent: dict[str, Any] = {}

    class Client:
        def update_api(self, **kwargs: Any) -> None:
            sent.update(kwargs)

    provider = HttpApiCorsProvider()
    provider._client = lambda region: Client()  # type: ignore[method-assign]
    provider.create({"api_id": "abc123defg", "region": "us-east-1", "origins": origins})
    return sent["CorsConfiguration"]


def allowed_origins(graph: Graph) -> list[str]:
    return [*rules.site_origins(graph.resources), *graph.config.get("corsExtraOrigins", [])]


def the_api_origin(graph: Graph) -> str:
    [api] = graph.of_type(rules.HTTP_API)
    return rules.api_origin(api.outputs["apiEndpoint"])


# Each rule as the tests call it: (resources, graph) -> violations.
RULES: dict[str, Callable[[tuple[Res, ...], Graph], list[str]]] = {
    "public_access_block": lambda rs, g: rules.public_access_block_violations(rs),
    "acl": lambda rs, g: rules.acl_violations(rs),
    "encryption": lambda rs, g: rules.encryption_violations(rs, g.config.get("kmsKeyArn"), SSE_S3_EXEMPT),
    "bucket_policy": lambda rs, g: rules.bucket_policy_violations(rs),
    "cloudfront_https": lambda rs, g: rules.cloudfront_https_violations(rs),
    "iam": lambda rs, g: rules.iam_violations(rs),
    "log_retention": lambda rs, g: rules.log_retention_violations(rs, g.config["logRetentionDays"]),
    "stage": lambda rs, g: rules.stage_violations(
        rs, g.config["apiThrottleRateLimit"], g.config["apiThrottleBurstLimit"]
    ),
    "invoke_permission": lambda rs, g: rules.invoke_permission_violations(rs),
    "cors": lambda rs, g: rules.cors_violations(
        rules.cors_documents(rs, provider_cors), list(Graph("", {}, rs, {}).of_type(rules.HTTP_API)), allowed_origins(g)
    ),
    "headers_policy": lambda rs, g: rules.headers_policy_violations(rs, the_api_origin(g)),
    "kms": lambda rs, g: rules.kms_violations(rs, g.config.get("kmsKeyArn")),
    "alarms": lambda rs, g: rules.alarm_violations(
        rs, g.config.get("alarms", True) not in (False, "false"), g.config.get("alarmTopicArn")
    ),
}


def check(rule: str, graph: Graph) -> None:
    violations = RULES[rule](graph.resources, graph)
    assert violations == [], f"[{graph.stack}] rule {rule}:\n" + "\n".join(violations)


# ----------------------------------------------------------------------------- the real program


def test_graph_is_the_whole_program(graph: Graph) -> None:
    """Guards the rules against passing vacuously on an empty or partial graph (at least what the program
    declares today; more is fine, the rules iterate over whatever is there)."""
    minimum = {
        rules.BUCKET_TYPES[0]: 2,
        rules.PUBLIC_ACCESS_BLOCK: 2,
        rules.BUCKET_POLICY: 2,
        rules.ROLE: 2,
        rules.ROLE_POLICY: 2,
        rules.LOG_GROUP: 3,
        rules.DISTRIBUTION: 1,
        rules.HEADERS_POLICY: 1,
        rules.FUNCTION: 1,
        rules.STAGE: 1,
        rules.PERMISSION: 1,
        rules.ROUTE: 1,
        rules.METRIC_ALARM: 5,
    }
    short = {t: len(graph.of_type(t)) for t, n in minimum.items() if len(graph.of_type(t)) < n}
    assert short == {}, f"graph has fewer resources than the program declares: {short}"


def test_rule_01_every_bucket_blocks_public_access(graph: Graph) -> None:
    check("public_access_block", graph)


def test_rule_02_no_public_acl_and_acls_disabled(graph: Graph) -> None:
    check("acl", graph)


def test_rule_03_every_bucket_encrypted_at_rest(graph: Graph) -> None:
    check("encryption", graph)


def test_rule_04_bucket_policies_grant_only_cloudfront_oac_and_deny_plain_http(graph: Graph) -> None:
    check("bucket_policy", graph)


def test_rule_05_cloudfront_https_only_and_oac_origins(graph: Graph) -> None:
    check("cloudfront_https", graph)


def test_rule_06_iam_least_privilege_and_narrow_trust(graph: Graph) -> None:
    check("iam", graph)


def test_rule_07_every_log_group_has_the_configured_retention(graph: Graph) -> None:
    check("log_retention", graph)


def test_rule_08_api_stage_throttled_and_access_logged(graph: Graph) -> None:
    check("stage", graph)


def test_rule_09_lambda_invocable_only_by_post_predict(graph: Graph) -> None:
    check("invoke_permission", graph)


def test_rule_10_api_cors_only_site_and_configured_origins(graph: Graph) -> None:
    check("cors", graph)
    # Both stacks really exercise the origin list: dev has the localhost extra, prod the custom domain.
    expected = {"dev": 2, "prod": 3}[graph.stack]
    assert len(allowed_origins(graph)) == expected


def test_rule_11_cloudfront_security_headers_and_csp(graph: Graph) -> None:
    check("headers_policy", graph)


def test_rule_13_alarms_watch_every_function_stage_and_endpoint(graph: Graph) -> None:
    check("alarms", graph)
    # Both stacks exercise the actions: dev has none, prod notifies its topic.
    actions = {str(a.inputs.get("alarmActions")) for a in graph.of_type(rules.METRIC_ALARM)}
    assert actions == {"None" if graph.stack == "dev" else str([ALARM_TOPIC_ARN])}


def test_rule_12_kms_key_used_where_configured(graph: Graph) -> None:
    check("kms", graph)
    if graph.stack == "prod":
        [fn] = graph.of_type(rules.FUNCTION)
        assert fn.inputs["kmsKeyArn"] == KMS_KEY_ARN


# ----------------------------------------------------------------------------------- each rule can fail


def mutate(graph: Graph, typ: str, name: str, change: Callable[[dict[str, Any]], None]) -> tuple[Res, ...]:
    """The graph with one resource's inputs edited by `change`."""
    out, hit = [], False
    for res in graph.resources:
        if (res.type, res.name) == (typ, name):
            inputs = json.loads(json.dumps(dict(res.inputs), default=str))
            change(inputs)
            res, hit = replace(res, inputs=inputs), True
        out.append(res)
    assert hit, f"no {typ} {name} in the graph"
    return tuple(out)


def mutate_all(
    graph: Graph, typ: str, names: tuple[str, ...], change: Callable[[dict[str, Any]], None]
) -> tuple[Res, ...]:
    """The graph with each named resource's inputs edited by `change`."""
    for name in names:
        graph = replace(graph, resources=mutate(graph, typ, name, change))
    return graph.resources


def with_policy(statements_edit: Callable[[list[dict[str, Any]]], None]) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        document = json.loads(inputs["policy"])
        statements_edit(document["Statement"])
        inputs["policy"] = json.dumps(document)

    return change


def merged_with(statement: dict[str, Any], resource: str) -> dict[str, Any]:
    """`statement` (the function's log statement) with `resource` and the invoke statement's action added: one
    statement that both logs and invokes."""
    return {
        "Action": [*statement["Action"], "sagemaker:InvokeEndpoint"],
        "Resource": [*statement["Resource"], resource],
    }


def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set inputs[a][b]... = value ("a.b.0.c"; a missing leaf is created, None deletes it)."""

    def change(inputs: dict[str, Any]) -> None:
        node: Any = inputs
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(leaf) if isinstance(node, list) else leaf
        if value is None:
            del node[key]
        else:
            node[key] = value

    return change


def _trust_principal(principal: Any) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        document = json.loads(inputs["assumeRolePolicy"])
        document["Statement"][0]["Principal"] = principal
        inputs["assumeRolePolicy"] = json.dumps(document)

    return change


def without(graph: Graph, name: str) -> tuple[Res, ...]:
    """The graph without the resource named `name`."""
    return tuple(r for r in graph.resources if r.name != name)


def _trust_action(action: Any) -> Callable[[dict[str, Any]], None]:
    def change(inputs: dict[str, Any]) -> None:
        document = json.loads(inputs["assumeRolePolicy"])
        document["Statement"][0]["Action"] = action
        inputs["assumeRolePolicy"] = json.dumps(document)

    return change


def add(graph: Graph, *extra: Res) -> tuple[Res, ...]:
    return (*graph.resources, *extra)


# The program's endpoint and what serves it, by logical name: the role and its policy, the model, its configuration,
# and the endpoint's log group.
ENDPOINT_CHAIN = ("model-role", "model-role-policy", "model-model", "model-config", "model-endpoint", "model-log-group")


def with_a_second_endpoint(graph: Graph, own_role: bool) -> tuple[Res, ...]:
    """The graph with a second endpoint, SECOND_ENDPOINT, beside the program's: a copy of its chain, each name and
    ARN renamed (model-... to second-...). `own_role`: the copy has its own role and policy, logging to its own
    group; else its model runs as the first endpoint's role, whose policy then logs to both endpoints' groups."""
    [endpoint] = graph.of_type(rules.SM_ENDPOINT)
    chain = ENDPOINT_CHAIN if own_role else ENDPOINT_CHAIN[2:]
    renames = {endpoint.inputs["name"]: SECOND_ENDPOINT, **{n: n.replace("model-", "second-", 1) for n in chain}}

    def copied(res: Res) -> Res:
        text = json.dumps([res.name, res.id, dict(res.inputs), dict(res.outputs), res.urn], default=str)
        for old, new in renames.items():
            text = text.replace(old, new)
        name, rid, inputs, outputs, urn = json.loads(text)
        return Res(res.type, name, inputs, rid, outputs, urn)

    second = [copied(r) for r in graph.resources if r.name in chain]
    assert len(second) == len(chain), f"the program's endpoint is not served by {chain}"
    if own_role:
        return (*graph.resources, *second)
    both = with_policy(lambda st: st[3]["Resource"].extend([SECOND_ENDPOINT_GROUP, SECOND_ENDPOINT_GROUP + ":*"]))
    return (*mutate(graph, rules.ROLE_POLICY, "model-role-policy", both), *second)


def cors_on_api(graph: Graph, **overrides: Any) -> tuple[Res, ...]:
    """The graph with CORS also set on the Api itself: an allowed configuration, changed by `overrides`."""
    config = {
        "allowOrigins": allowed_origins(graph),
        "allowMethods": ["POST", "OPTIONS"],
        "exposeHeaders": ["retry-after", "x-request-id"],
        **overrides,
    }
    return mutate(graph, rules.HTTP_API, "api-http-api", set_path("corsConfiguration", config))


# AWS's managed SecurityHeadersPolicy: no CSP, no Permissions-Policy.
MANAGED_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"


S3 = "aws:s3/"
BAD_CASES: list[tuple[str, str, str, Callable[[Graph], tuple[Res, ...]], str]] = [
    # (id, stack, rule, bad graph, text the violation must contain)
    (
        "pab-flag-false",
        "dev",
        "public_access_block",
        lambda g: mutate(
            g, rules.PUBLIC_ACCESS_BLOCK, "model-bucket-public-access", set_path("restrictPublicBuckets", False)
        ),
        "model-bucket-public-access: restrictPublicBuckets = False",
    ),
    (
        "pab-block-public-acls-false",
        "dev",
        "public_access_block",
        lambda g: mutate(g, rules.PUBLIC_ACCESS_BLOCK, "site-bucket-public-access", set_path("blockPublicAcls", False)),
        "site-bucket-public-access: blockPublicAcls = False",
    ),
    (
        "pab-ignore-public-acls-false",
        "prod",
        "public_access_block",
        lambda g: mutate(
            g, rules.PUBLIC_ACCESS_BLOCK, "site-bucket-public-access", set_path("ignorePublicAcls", False)
        ),
        "site-bucket-public-access: ignorePublicAcls = False",
    ),
    (
        "pab-flag-unset",
        "dev",
        "public_access_block",
        lambda g: mutate(
            g, rules.PUBLIC_ACCESS_BLOCK, "model-bucket-public-access", set_path("blockPublicPolicy", None)
        ),
        "model-bucket-public-access: blockPublicPolicy = None, must be true",
    ),
    (
        "new-bucket-without-pab",
        "dev",
        "public_access_block",
        lambda g: add(g, Res(rules.BUCKET_TYPES[0], "logs-bucket", {}, "logs-bucket-x", urn="urn:logs-bucket")),
        "urn:logs-bucket: no BucketPublicAccessBlock",
    ),
    (
        "public-read-object",
        "dev",
        "acl",
        lambda g: mutate(
            g, S3 + "bucketObjectv2:BucketObjectv2", "site-file-index.html", set_path("acl", "public-read")
        ),
        "site-file-index.html: acl = 'public-read'",
    ),
    (
        "bucket-acl-resource",
        "dev",
        "acl",
        lambda g: add(g, Res(rules.ACL_TYPES[0], "site-acl", {"bucket": "site-bucket-a1b2c3", "acl": "public-read"})),
        "site-acl: acl = 'public-read'",
    ),
    (
        "public-grant-on-bucket",
        "dev",
        "acl",
        lambda g: mutate(
            g,
            rules.BUCKET_TYPES[0],
            "site-bucket",
            set_path("grants", [{"type": "Group", "uri": ALL_USERS, "permissions": ["READ"]}]),
        ),
        "site-bucket: grants has a public grantee",
    ),
    (
        "public-grant-in-acl-resource",
        "dev",
        "acl",
        lambda g: add(
            g,
            Res(
                rules.ACL_TYPES[1],
                "site-acl-grants",
                {
                    "bucket": "site-bucket-a1b2c3",
                    "accessControlPolicy": {
                        "grants": [{"grantee": {"type": "Group", "uri": AUTHENTICATED_USERS}, "permission": "READ"}]
                    },
                },
            ),
        ),
        "site-acl-grants: grants has a public grantee",
    ),
    (
        "object-grant-read",
        "dev",
        "acl",
        lambda g: mutate(
            g,
            S3 + "bucketObjectv2:BucketObjectv2",
            "site-file-index.html",
            set_path("grantRead", f"uri={ALL_USERS}"),
        ),
        "site-file-index.html: grantRead = ",
    ),
    (
        "public-read-bucket",
        "dev",
        "acl",
        lambda g: mutate(g, rules.BUCKET_TYPES[0], "site-bucket", set_path("acl", "public-read")),
        "site-bucket: acl = 'public-read'",
    ),
    (
        "object-grant-full-control",
        "dev",
        "acl",
        lambda g: mutate(
            g, S3 + "bucketObjectv2:BucketObjectv2", "model-artifact", set_path("grantFullControl", f"uri={ALL_USERS}")
        ),
        "model-artifact: grantFullControl = ",
    ),
    (
        "object-grant-read-acp",
        "dev",
        "acl",
        lambda g: mutate(
            g, S3 + "bucketObjectv2:BucketObjectv2", "model-artifact", set_path("grantReadAcp", f"uri={ALL_USERS}")
        ),
        "model-artifact: grantReadAcp = ",
    ),
    (
        # Only BucketOwnerEnforced (this rule's other half) keeps it harmless: whoever it names may rewrite the ACL.
        "object-grant-write-acp",
        "dev",
        "acl",
        lambda g: mutate(
            g, S3 + "bucketObjectv2:BucketObjectv2", "model-artifact", set_path("grantWriteAcp", f"uri={ALL_USERS}")
        ),
        "model-artifact: grantWriteAcp = ",
    ),
    (
        "object-copy-public-grant",
        "dev",
        "acl",
        lambda g: add(
            g,
            Res(
                rules.OBJECT_TYPES[2],
                "site-file-copy",
                {
                    "bucket": "site-bucket-a1b2c3",
                    "key": "copy.html",
                    "source": "site-bucket-a1b2c3/index.html",
                    "grants": [{"type": "Group", "uri": ALL_USERS, "permissions": ["READ"]}],
                },
            ),
        ),
        "site-file-copy: grants = ",
    ),
    (
        "no-ownership-controls",
        "dev",
        "acl",
        lambda g: without(g, "site-bucket-ownership"),
        "site-bucket: no BucketOwnershipControls",
    ),
    (
        "ownership-preferred",
        "dev",
        "acl",
        lambda g: mutate(
            g, rules.OWNERSHIP, "site-bucket-ownership", set_path("rule.objectOwnership", "BucketOwnerPreferred")
        ),
        "rule.objectOwnership = 'BucketOwnerPreferred'",
    ),
    (
        "no-encryption-config",
        "dev",
        "encryption",
        lambda g: without(g, "model-bucket-encryption"),
        "model-bucket: no server-side encryption configuration",
    ),
    (
        "encryption-rules-empty",
        "dev",
        "encryption",
        lambda g: mutate(g, rules.ENCRYPTION_TYPES[0], "model-bucket-encryption", set_path("rules", [])),
        "model-bucket-encryption: rules is empty",
    ),
    (
        "foreign-key-without-a-stack-key",
        "dev",
        "encryption",
        lambda g: mutate(
            g,
            rules.ENCRYPTION_TYPES[0],
            "model-bucket-encryption",
            set_path(
                "rules.0.applyServerSideEncryptionByDefault", {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": OTHER_KEY}
            ),
        ),
        f"kmsMasterKeyId = {OTHER_KEY!r} is not the stack key",
    ),
    (
        "object-unknown-encryption",
        "dev",
        "encryption",
        lambda g: mutate(
            g, S3 + "bucketObjectv2:BucketObjectv2", "model-artifact", set_path("serverSideEncryption", "none")
        ),
        "model-artifact: serverSideEncryption = 'none'",
    ),
    (
        "no-sse",
        "dev",
        "encryption",
        lambda g: mutate(
            g,
            rules.ENCRYPTION_TYPES[0],
            "model-bucket-encryption",
            set_path("rules.0.applyServerSideEncryptionByDefault.sseAlgorithm", "none"),
        ),
        "sseAlgorithm = 'none'",
    ),
    (
        "kms-bucket-downgraded-to-sse-s3",
        "prod",
        "encryption",
        lambda g: mutate(
            g,
            rules.ENCRYPTION_TYPES[0],
            "model-bucket-encryption",
            set_path("rules.0.applyServerSideEncryptionByDefault", {"sseAlgorithm": "AES256"}),
        ),
        "must be aws:kms with " + KMS_KEY_ARN,
    ),
    (
        "kms-bucket-downgraded-keeping-the-key-id",
        "prod",
        "encryption",
        lambda g: mutate(
            g,
            rules.ENCRYPTION_TYPES[0],
            "model-bucket-encryption",
            set_path("rules.0.applyServerSideEncryptionByDefault.sseAlgorithm", "AES256"),
        ),
        "('AES256', kmsMasterKeyId=" + repr(KMS_KEY_ARN) + "), must be aws:kms with",
    ),
    (
        "kms-bucket-other-key",
        "prod",
        "encryption",
        lambda g: mutate(
            g,
            rules.ENCRYPTION_TYPES[0],
            "model-bucket-encryption",
            set_path("rules.0.applyServerSideEncryptionByDefault.kmsMasterKeyId", OTHER_KEY),
        ),
        f"('aws:kms', kmsMasterKeyId={OTHER_KEY!r}), must be aws:kms with",
    ),
    (
        "object-other-key",
        "prod",
        "encryption",
        lambda g: mutate(g, S3 + "bucketObjectv2:BucketObjectv2", "model-artifact", set_path("kmsKeyId", OTHER_KEY)),
        "model-artifact: serverSideEncryption = 'aws:kms', kmsKeyId = ",
    ),
    (
        "object-downgraded-keeping-the-key-id",
        "prod",
        "encryption",
        lambda g: mutate(
            g, S3 + "bucketObjectv2:BucketObjectv2", "model-artifact", set_path("serverSideEncryption", "AES256")
        ),
        f"model-artifact: serverSideEncryption = 'AES256', kmsKeyId = {KMS_KEY_ARN!r}, must be aws:kms",
    ),
    (
        "no-bucket-policy",
        "dev",
        "bucket_policy",
        lambda g: without(g, "site-bucket-policy"),
        "site-bucket: no BucketPolicy",
    ),
    (
        "deny-everyone-unconditionally",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(
                lambda st: st.append(
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:DeleteObject",
                        "Resource": "arn:aws:s3:::site-bucket-a1b2c3/*",
                    }
                )
            ),
        ),
        "Deny to '*' without a Condition denies everyone",
    ),
    (
        "public-principal",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(lambda st: st[0].update(Principal="*", Condition=None)),
        ),
        "site-bucket-policy: policy.Statement[0]: Principal = '*'",
    ),
    (
        "cloudfront-allow-not-action",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g, rules.BUCKET_POLICY, "site-bucket-policy", with_policy(lambda st: st[0].update(NotAction="s3:PutObject"))
        ),
        "site-bucket-policy: policy.Statement[0]: Allow with NotPrincipal/NotAction",
    ),
    (
        "cloudfront-any-distribution",
        "dev",
        "bucket_policy",
        lambda g: mutate(g, rules.BUCKET_POLICY, "site-bucket-policy", with_policy(lambda st: st[0].pop("Condition"))),
        "site-bucket-policy: policy.Statement[0]: Condition.StringEquals.AWS:SourceArn = None",
    ),
    (
        "other-distribution",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(
                lambda st: st[0]["Condition"]["StringEquals"].update(
                    {"AWS:SourceArn": "arn:aws:cloudfront::999999999999:distribution/EOTHER"}
                )
            ),
        ),
        "AWS:SourceArn = 'arn:aws:cloudfront::999999999999:distribution/EOTHER'",
    ),
    (
        "cloudfront-writes-site",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(lambda st: st[0].update(Action=["s3:GetObject", "s3:PutObject"])),
        ),
        "site-bucket-policy: policy.Statement[0]: Action = ['s3:GetObject', 's3:PutObject']",
    ),
    (
        "cloudfront-any-s3-action",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g, rules.BUCKET_POLICY, "site-bucket-policy", with_policy(lambda st: st[0].update(Action="s3:*"))
        ),
        "site-bucket-policy: policy.Statement[0]: Action = ['s3:*']",
    ),
    (
        "no-tls-deny",
        "dev",
        "bucket_policy",
        lambda g: mutate(g, rules.BUCKET_POLICY, "model-bucket-policy", with_policy(lambda st: st.clear())),
        "no Deny statement on aws:SecureTransport",
    ),
    (
        # s3:TlsVersion is absent from a plain-HTTP request, so this Deny never applies to one.
        "tls-deny-on-tls-version-only",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "model-bucket-policy",
            with_policy(lambda st: st[0].update(Condition={"NumericLessThan": {"s3:TlsVersion": "1.2"}})),
        ),
        "model-bucket: no Deny statement on aws:SecureTransport",
    ),
    (
        "tls-deny-of-bucket-only",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(lambda st: st[1].update(Resource=[r for r in st[1]["Resource"] if not r.endswith("/*")])),
        ),
        "site-bucket: no Deny statement on aws:SecureTransport",
    ),
    (
        "cloudfront-allow-not-principal",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(lambda st: st[0].update(NotPrincipal={"AWS": "arn:aws:iam::123456789012:root"})),
        ),
        "site-bucket-policy: policy.Statement[0]: Allow with NotPrincipal/NotAction",
    ),
    (
        "tls-deny-of-reads-only",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g, rules.BUCKET_POLICY, "model-bucket-policy", with_policy(lambda st: st[0].update(Action="s3:GetObject"))
        ),
        "model-bucket: no Deny statement on aws:SecureTransport",
    ),
    (
        "tls-deny-of-one-principal",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "site-bucket-policy",
            with_policy(lambda st: st[1].update(Principal={"Service": "cloudfront.amazonaws.com"})),
        ),
        "site-bucket: no Deny statement on aws:SecureTransport",
    ),
    (
        "tls-deny-of-objects-only",
        "dev",
        "bucket_policy",
        lambda g: mutate(
            g,
            rules.BUCKET_POLICY,
            "model-bucket-policy",
            with_policy(lambda st: st[0].update(Resource=[r for r in st[0]["Resource"] if r.endswith("/*")])),
        ),
        "model-bucket: no Deny statement on aws:SecureTransport",
    ),
    (
        "oac-unsigned",
        "dev",
        "cloudfront_https",
        lambda g: mutate(g, rules.OAC, "site-oac", set_path("signingBehavior", "never")),
        "site-oac: signingBehavior = 'never', must be 'always'",
    ),
    (
        "certificate-without-sni",
        "prod",
        "cloudfront_https",
        lambda g: mutate(g, rules.DISTRIBUTION, "site-cdn", set_path("viewerCertificate.sslSupportMethod", "vip")),
        "viewerCertificate.sslSupportMethod = 'vip'",
    ),
    (
        "no-certificate",
        "dev",
        "cloudfront_https",
        lambda g: mutate(g, rules.DISTRIBUTION, "site-cdn", set_path("viewerCertificate", {})),
        "site-cdn: viewerCertificate names no certificate",
    ),
    (
        "no-origins",
        "dev",
        "cloudfront_https",
        lambda g: mutate(g, rules.DISTRIBUTION, "site-cdn", set_path("origins", [])),
        "site-cdn: origins is empty",
    ),
    (
        "legacy-oai-origin",
        "dev",
        "cloudfront_https",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path("origins.0.s3OriginConfig", {"originAccessIdentity": "origin-access-identity/cloudfront/E1"}),
        ),
        "origins[0].s3OriginConfig.originAccessIdentity is set (legacy OAI)",
    ),
    (
        "allow-all-viewer-protocol",
        "dev",
        "cloudfront_https",
        lambda g: mutate(
            g, rules.DISTRIBUTION, "site-cdn", set_path("orderedCacheBehaviors.0.viewerProtocolPolicy", "allow-all")
        ),
        "orderedCacheBehaviors[0].viewerProtocolPolicy = 'allow-all'",
    ),
    (
        "default-behaviour-forwards-every-method",
        "dev",
        "cloudfront_https",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path(
                "defaultCacheBehavior.allowedMethods", ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
            ),
        ),
        "site-cdn: defaultCacheBehavior.allowedMethods = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'], "
        "must be ['GET', 'HEAD']",
    ),
    (
        # CloudFront's only other read set; the program does not set it, and the rule allows what the program sets.
        "config-js-behaviour-adds-options",
        "prod",
        "cloudfront_https",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path("orderedCacheBehaviors.0.allowedMethods", ["GET", "HEAD", "OPTIONS"]),
        ),
        "site-cdn: orderedCacheBehaviors[0].allowedMethods = ['GET', 'HEAD', 'OPTIONS'], must be ['GET', 'HEAD']",
    ),
    (
        "legacy-oai-resource",
        "dev",
        "cloudfront_https",
        lambda g: add(g, Res(rules.OAI, "site-oai", {"comment": "site"}, urn="urn:site-oai")),
        "urn:site-oai: legacy Origin Access Identity",
    ),
    (
        "allow-all-viewer-protocol-by-default",
        "prod",
        "cloudfront_https",
        lambda g: mutate(
            g, rules.DISTRIBUTION, "site-cdn", set_path("defaultCacheBehavior.viewerProtocolPolicy", "allow-all")
        ),
        "defaultCacheBehavior.viewerProtocolPolicy = 'allow-all'",
    ),
    (
        "iam-certificate-old-tls",
        "prod",
        "cloudfront_https",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path(
                "viewerCertificate",
                {"iamCertificateId": "ASCAEXAMPLE", "minimumProtocolVersion": "TLSv1", "sslSupportMethod": "sni-only"},
            ),
        ),
        "viewerCertificate.minimumProtocolVersion = 'TLSv1'",
    ),
    (
        "old-tls",
        "prod",
        "cloudfront_https",
        lambda g: mutate(
            g, rules.DISTRIBUTION, "site-cdn", set_path("viewerCertificate.minimumProtocolVersion", "TLSv1")
        ),
        "viewerCertificate.minimumProtocolVersion = 'TLSv1'",
    ),
    (
        "origin-without-oac",
        "dev",
        "cloudfront_https",
        lambda g: mutate(g, rules.DISTRIBUTION, "site-cdn", set_path("origins.0.originAccessControlId", None)),
        "origins[0].originAccessControlId = None",
    ),
    (
        "origin-with-another-oac",
        "dev",
        "cloudfront_https",
        lambda g: mutate(g, rules.DISTRIBUTION, "site-cdn", set_path("origins.0.originAccessControlId", "E2OTHEROAC")),
        "origins[0].originAccessControlId = 'E2OTHEROAC', must be an OriginAccessControl of this stack",
    ),
    (
        "match-viewer-custom-origin",
        "dev",
        "cloudfront_https",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path("origins.0.customOriginConfig", {"originProtocolPolicy": "match-viewer"}),
        ),
        "customOriginConfig.originProtocolPolicy = 'match-viewer'",
    ),
    (
        "http-custom-origin",
        "dev",
        "cloudfront_https",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path("origins.0.customOriginConfig", {"originProtocolPolicy": "http-only"}),
        ),
        "customOriginConfig.originProtocolPolicy = 'http-only'",
    ),
    (
        "star-resource",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE_POLICY, "api-role-policy", with_policy(lambda st: st[1].update(Resource="*"))),
        "api-role-policy: policy.Statement[1]: Resource '*' with ['sagemaker:InvokeEndpoint']",
    ),
    (
        "invokes-another-endpoint",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(
                lambda st: st[1].update(Resource="arn:aws:sagemaker:us-east-1:123456789012:endpoint/another-stack")
            ),
        ),
        "api-role-policy: policy.Statement[1]: invokes ['arn:aws:sagemaker:us-east-1:123456789012:endpoint/"
        "another-stack'], not an endpoint of this stack",
    ),
    (
        "invokes-another-endpoint-in-a-statement-that-also-logs",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(
                lambda st: st[0].update(merged_with(st[0], "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"))
            ),
        ),
        "api-role-policy: policy.Statement[0]: invokes ['arn:aws:sagemaker:us-east-1:123456789012:endpoint/x'], not",
    ),
    *[
        (
            f"logs-to-another-group-{which}",
            "dev",
            "iam",
            lambda g, i=i: mutate(
                g,
                rules.ROLE_POLICY,
                "api-role-policy",
                with_policy(lambda st: st[0]["Resource"].__setitem__(i, OTHER_GROUP + ("", ":*")[i])),
            ),
            f"api-role-policy: policy.Statement[0]: logs to ['{OTHER_GROUP}{('', ':*')[i]}'], not a log group of this",
        )
        for i, which in enumerate(("group", "streams"))
    ],
    (
        "endpoint-role-logs-to-the-functions-group",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(lambda st: st[3].update(Resource=[DEV_FUNCTION_GROUP, DEV_FUNCTION_GROUP + ":*"])),
        ),
        f"model-role-policy: policy.Statement[3]: logs to ['{DEV_FUNCTION_GROUP}', '{DEV_FUNCTION_GROUP}:*'], not "
        f"its own log group; the role's user (['sagemaker.amazonaws.com']) writes only ['{DEV_ENDPOINT_GROUP}']",
    ),
    (
        "function-role-also-logs-to-the-access-log-group",
        "prod",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(lambda st: st[0]["Resource"].append(PROD_ACCESS_GROUP + ":*")),
        ),
        f"api-role-policy: policy.Statement[0]: logs to ['{PROD_ACCESS_GROUP}:*'], not its own log group; the role's "
        f"user (['lambda.amazonaws.com']) writes only ['{PROD_FUNCTION_GROUP}']",
    ),
    (
        "endpoint-serving-another-model-leaves-the-model-role-no-log-group",
        "prod",
        "iam",
        lambda g: mutate(
            g, rules.SM_ENDPOINT_CONFIG, "model-config", set_path("productionVariants.0.modelName", "another-model")
        ),
        f"model-role-policy: policy.Statement[3]: logs to ['{PROD_ENDPOINT_GROUP}', '{PROD_ENDPOINT_GROUP}:*'], not "
        "its own log group; the role's user (['sagemaker.amazonaws.com']) writes only []",
    ),
    (
        "endpoint-of-a-configuration-not-in-the-stack-leaves-the-model-role-no-log-group",
        "prod",
        "iam",
        lambda g: mutate(g, rules.SM_ENDPOINT, "model-endpoint", set_path("endpointConfigName", "another-config")),
        f"model-role-policy: policy.Statement[3]: logs to ['{PROD_ENDPOINT_GROUP}', '{PROD_ENDPOINT_GROUP}:*'], not "
        "its own log group; the role's user (['sagemaker.amazonaws.com']) writes only []",
    ),
    (
        "endpoint-log-group-undeclared-is-no-group-of-the-stack-for-its-role",
        "dev",
        "iam",
        lambda g: without(g, "model-log-group"),
        f"model-role-policy: policy.Statement[3]: logs to ['{DEV_ENDPOINT_GROUP}', '{DEV_ENDPOINT_GROUP}:*'], not a "
        "log group of this stack",
    ),
    (
        "policy-on-no-role-logs-to-the-functions-group",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                rules.POLICY,
                "extra-policy",
                {
                    "policy": json.dumps(
                        {
                            "Statement": [
                                {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": DEV_FUNCTION_GROUP}
                            ]
                        }
                    )
                },
            ),
        ),
        f"extra-policy: policy.Statement[0]: logs to ['{DEV_FUNCTION_GROUP}'], not its own log group; no role of "
        "this stack holds it inline, so it may write none",  # was "the role's user (no service of this stack)"
    ),
    (
        "policy-on-another-stacks-role-grants-logging",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                rules.ROLE_POLICY,
                "foreign-policy",
                {
                    "role": "another-stacks-role",
                    "policy": json.dumps(
                        {
                            "Statement": [
                                {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": DEV_FUNCTION_GROUP}
                            ]
                        }
                    ),
                },
            ),
        ),
        "foreign-policy: policy.Statement[0]: grants ['logs:PutLogEvents'], though no role of this stack holds it "
        "inline",  # was "which the role's user (no service of this stack) never needs"
    ),
    (
        "second-endpoints-role-also-logs-to-the-first-endpoints-group",
        "dev",
        "iam",
        lambda g: mutate(
            replace(g, resources=with_a_second_endpoint(g, own_role=True)),
            rules.ROLE_POLICY,
            "second-role-policy",
            with_policy(lambda st: st[3]["Resource"].append(DEV_ENDPOINT_GROUP + ":*")),
        ),
        f"second-role-policy: policy.Statement[3]: logs to ['{DEV_ENDPOINT_GROUP}:*'], not its own log group; the "
        f"role's user (['sagemaker.amazonaws.com']) writes only ['{SECOND_ENDPOINT_GROUP}']",
    ),
    (
        "metrics-any-namespace",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE_POLICY, "model-role-policy", with_policy(lambda st: st[4].pop("Condition"))),
        "model-role-policy: policy.Statement[4]: cloudwatch:PutMetricData on Resource '*' needs Condition",
    ),
    (
        "star-resource-beside-the-ecr-token",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(lambda st: st[0].update(Action=["ecr:GetAuthorizationToken", "s3:GetObject"])),
        ),
        "model-role-policy: policy.Statement[0]: Resource '*' with ['s3:GetObject']",
    ),
    (
        "metrics-namespace-condition-a-wildcard",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(lambda st: st[4].update(Condition={"StringLike": {"cloudwatch:namespace": "*"}})),
        ),
        "model-role-policy: policy.Statement[4]: cloudwatch:PutMetricData on Resource '*' needs Condition",
    ),
    (
        "invokes-another-endpoint-in-lower-case",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(
                lambda st: st[1].update(
                    Action="sagemaker:invokeendpoint",
                    Resource="arn:aws:sagemaker:us-east-1:123456789012:endpoint/another-stack",
                )
            ),
        ),
        "api-role-policy: policy.Statement[1]: invokes ['arn:aws:sagemaker:us-east-1:123456789012:endpoint/",
    ),
    (
        "deletes-its-own-endpoint",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(lambda st: st[1].update(Action=["sagemaker:InvokeEndpoint", "sagemaker:DeleteEndpoint"])),
        ),
        "api-role-policy: policy.Statement[1]: grants ['sagemaker:DeleteEndpoint'], which the role's user "
        "(['lambda.amazonaws.com']) never needs",
    ),
    (
        "writes-the-model-artifact",
        "prod",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(lambda st: st[2].update(Action=["s3:GetObject", "S3:PutObject"])),
        ),
        "model-role-policy: policy.Statement[2]: grants ['S3:PutObject'], which the role's user "
        "(['sagemaker.amazonaws.com']) never needs",
    ),
    (
        "model-role-invokes-the-endpoint",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(lambda st: st[2].update(Action="sagemaker:InvokeEndpoint")),
        ),
        "model-role-policy: policy.Statement[2]: grants ['sagemaker:InvokeEndpoint'], which the role's user "
        "(['sagemaker.amazonaws.com']) never needs",
    ),
    (
        "service-wildcard-action",
        "dev",
        "iam",
        lambda g: mutate(
            g, rules.ROLE_POLICY, "model-role-policy", with_policy(lambda st: st[2].update(Action="s3:*"))
        ),
        "Action wildcard ['s3:*']",
    ),
    (
        "partial-action-wildcard",
        "dev",
        "iam",
        lambda g: mutate(
            g, rules.ROLE_POLICY, "model-role-policy", with_policy(lambda st: st[2].update(Action="s3:Get*"))
        ),
        "model-role-policy: policy.Statement[2]: Action wildcard ['s3:Get*']",
    ),
    (
        "whole-bucket-wildcard",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(lambda st: st[2].update(Resource="arn:aws:s3:::model-bucket-a1b2c3/*")),
        ),
        "Resource wildcard ['arn:aws:s3:::model-bucket-a1b2c3/*']",
    ),
    (
        "every-log-group",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(lambda st: st[0].update(Resource="arn:aws:logs:us-east-1:123456789012:log-group:*")),
        ),
        "Resource wildcard ['arn:aws:logs:us-east-1:123456789012:log-group:*']",
    ),
    (
        "account-wide-arn",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(lambda st: st[1].update(Resource="arn:aws:sagemaker:us-east-1:123456789012:*")),
        ),
        "Resource wildcard ['arn:aws:sagemaker:us-east-1:123456789012:*']",
    ),
    (
        "managed-read-only-in-another-partition",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "api-read-only-cn",
                {"role": "api-role-a1b2c3", "policyArn": "arn:aws-cn:iam::aws:policy/ReadOnlyAccess"},
            ),
        ),
        "attaches AWS managed policy arn:aws-cn:iam::aws:policy/ReadOnlyAccess",
    ),
    (
        "allow-not-resource",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(
                lambda st: st.append({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::b/k"})
            ),
        ),
        "api-role-policy: policy.Statement[2]: Allow with NotAction/NotResource",
    ),
    (
        "role-managed-policy-arns",
        "dev",
        "iam",
        lambda g: mutate(
            g, rules.ROLE, "api-role", set_path("managedPolicyArns", ["arn:aws:iam::aws:policy/ReadOnlyAccess"])
        ),
        "api-role: attaches AWS managed policy arn:aws:iam::aws:policy/ReadOnlyAccess",
    ),
    (
        "exclusive-attachments",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
                "api-exclusive",
                {"roleName": "api-role-a1b2c3", "policyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"]},
            ),
        ),
        "api-exclusive: attaches AWS managed policy",
    ),
    (
        "policy-attachment",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                "aws:iam/policyAttachment:PolicyAttachment",
                "model-admin",
                {"roles": ["model-role-a1b2c3"], "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            ),
        ),
        "model-admin: attaches AWS managed policy",
    ),
    (
        "managed-full-access",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "model-s3-full",
                {"role": "model-role-a1b2c3", "policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"},
            ),
        ),
        "attaches AWS managed policy arn:aws:iam::aws:policy/AmazonS3FullAccess",
    ),
    (
        "managed-read-only",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "api-read-only",
                {"role": "api-role-a1b2c3", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
            ),
        ),
        "attaches AWS managed policy arn:aws:iam::aws:policy/ReadOnlyAccess",
    ),
    (
        "managed-admin-in-another-partition",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "api-admin",
                {"role": "api-role-a1b2c3", "policyArn": "arn:aws-cn:iam::aws:policy/AdministratorAccess"},
            ),
        ),
        "attaches AWS managed policy arn:aws-cn:iam::aws:policy/AdministratorAccess",
    ),
    (
        "allow-not-action",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "api-role-policy",
            with_policy(
                lambda st: st.append({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b/k"})
            ),
        ),
        ": Allow with NotAction/NotResource",
    ),
    (
        "role-inline-policy-wildcard",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE,
            "api-role",
            set_path(
                "inlinePolicies",
                [
                    {
                        "name": "extra",
                        "policy": json.dumps(
                            {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/k"}]}
                        ),
                    }
                ],
            ),
        ),
        "api-role: inlinePolicies[0].policy.Statement[0]: Action wildcard ['s3:*']",
    ),
    (
        "model-role-of-another-stack",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.SM_MODEL,
            "model-model",
            set_path("executionRoleArn", "arn:aws:iam::123456789012:role/someone-else"),
        ),
        "executionRoleArn = 'arn:aws:iam::123456789012:role/someone-else' is not a role of this stack",
    ),
    (
        "model-runs-as-the-functions-role",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.SM_MODEL,
            "model-model",
            set_path("executionRoleArn", "arn:aws:iam::123456789012:role/api-role-a1b2c3"),
        ),
        "api-role: assumeRolePolicy.Statement[0]: trusts ['lambda.amazonaws.com'], the role is used by "
        "['lambda.amazonaws.com', 'sagemaker.amazonaws.com']",
    ),
    (
        "unused-role",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                rules.ROLE,
                "spare-role",
                {"assumeRolePolicy": "{}"},
                "spare-role-x",
                {"arn": "arn:aws:iam::123456789012:role/spare"},
            ),
        ),
        "spare-role: no SageMaker model or Lambda function uses this role",
    ),
    (
        "trust-action-not-assume-role",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE, "api-role", _trust_action("sts:AssumeRoleWithWebIdentity")),
        "api-role: assumeRolePolicy.Statement[0]: Action = 'sts:AssumeRoleWithWebIdentity'",
    ),
    (
        "policy-not-json",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE_POLICY, "api-role-policy", set_path("policy", "{not json")),
        "api-role-policy: policy is not JSON",
    ),
    (
        "policy-not-a-document",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE_POLICY, "api-role-policy", set_path("policy", "[]")),
        "api-role-policy: policy is missing or not a policy document",
    ),
    (
        "wrong-trust",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE, "api-role", _trust_principal({"Service": "sagemaker.amazonaws.com"})),
        "api-role: assumeRolePolicy.Statement[0]: trusts ['sagemaker.amazonaws.com']",
    ),
    (
        "trust-an-extra-service",
        "dev",
        "iam",
        lambda g: mutate(
            g,
            rules.ROLE,
            "api-role",
            _trust_principal({"Service": ["lambda.amazonaws.com", "sagemaker.amazonaws.com"]}),
        ),
        "api-role: assumeRolePolicy.Statement[0]: trusts ['lambda.amazonaws.com', 'sagemaker.amazonaws.com']",
    ),
    (
        "trust-an-extra-action",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE, "model-role", _trust_action(["sts:AssumeRole", "sts:TagSession"])),
        "model-role: assumeRolePolicy.Statement[0]: Action = ['sts:AssumeRole', 'sts:TagSession']",
    ),
    (
        "customer-managed-policy-wildcard",
        "dev",
        "iam",
        lambda g: add(
            g,
            Res(
                rules.POLICY,
                "extra-policy",
                {
                    "policy": json.dumps(
                        {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/k"}]}
                    )
                },
            ),
        ),
        "extra-policy: policy.Statement[0]: Action wildcard ['s3:*']",
    ),
    (
        "trust-any-account",
        "dev",
        "iam",
        lambda g: mutate(g, rules.ROLE, "model-role", _trust_principal({"AWS": "*"})),
        "model-role: assumeRolePolicy.Statement[0]: Principal = {'AWS': '*'}",
    ),
    (
        "endpoint-log-group-missing",
        "dev",
        "log_retention",
        lambda g: without(g, "model-log-group"),
        "model-endpoint: its log group '/aws/sagemaker/Endpoints/",
    ),
    (
        "retention-unset",
        "dev",
        "log_retention",
        lambda g: mutate(g, rules.LOG_GROUP, "api-access-logs", set_path("retentionInDays", None)),
        "api-access-logs: retentionInDays = None",
    ),
    (
        "retention-above-config",
        "dev",
        "log_retention",
        lambda g: mutate(g, rules.LOG_GROUP, "model-log-group", set_path("retentionInDays", 3653)),
        "model-log-group: retentionInDays = 3653, must be 14",
    ),
    (
        "retention-not-config",
        "prod",
        "log_retention",
        lambda g: mutate(g, rules.LOG_GROUP, "model-log-group", set_path("retentionInDays", 14)),
        "model-log-group: retentionInDays = 14, must be 90",
    ),
    (
        "function-logs-to-an-undeclared-group",
        "dev",
        "log_retention",
        lambda g: mutate(g, rules.FUNCTION, "api-function", set_path("loggingConfig", {"logGroup": "/custom/proxy"})),
        "api-function: its log group '/custom/proxy' is not declared",
    ),
    (
        "function-group-missing",
        "dev",
        "log_retention",
        lambda g: mutate(g, rules.LOG_GROUP, "api-log-group", set_path("name", "/aws/lambda/something-else")),
        "its log group '/aws/lambda/mobilenet-serverless-dev-proxy' is not declared",
    ),
    (
        "api-without-stage",
        "dev",
        "stage",
        lambda g: without(g, "api-stage"),
        "api-http-api: no Stage for API 'abc123defg'",
    ),
    (
        "burst-above-config",
        "prod",
        "stage",
        lambda g: mutate(g, rules.STAGE, "api-stage", set_path("defaultRouteSettings.throttlingBurstLimit", 2000)),
        "api-stage: defaultRouteSettings.throttlingBurstLimit = 2000, must be 200",
    ),
    (
        "route-throttle-zero",
        "dev",
        "stage",
        lambda g: mutate(
            g,
            rules.STAGE,
            "api-stage",
            set_path("routeSettings", [{"routeKey": "POST /predict", "throttlingRateLimit": 0}]),
        ),
        "api-stage: routeSettings[0].throttlingRateLimit = 0",
    ),
    (
        "access-log-without-format",
        "dev",
        "stage",
        lambda g: mutate(g, rules.STAGE, "api-stage", set_path("accessLogSettings.format", "")),
        "api-stage: accessLogSettings.format is empty",
    ),
    (
        "no-throttle",
        "dev",
        "stage",
        lambda g: mutate(g, rules.STAGE, "api-stage", set_path("defaultRouteSettings", None)),
        "defaultRouteSettings.throttlingRateLimit = None",
    ),
    (
        "no-access-log",
        "dev",
        "stage",
        lambda g: mutate(g, rules.STAGE, "api-stage", set_path("accessLogSettings", None)),
        "accessLogSettings.destinationArn = None",
    ),
    (
        "any-route",
        "dev",
        "invoke_permission",
        lambda g: mutate(
            g,
            rules.PERMISSION,
            "api-invoke-permission",
            set_path("sourceArn", "arn:aws:execute-api:us-east-1:123456789012:abc123defg/*"),
        ),
        "sourceArn = 'arn:aws:execute-api:us-east-1:123456789012:abc123defg/*'",
    ),
    (
        "another-apis-predict",
        "dev",
        "invoke_permission",
        lambda g: mutate(
            g,
            rules.PERMISSION,
            "api-invoke-permission",
            set_path("sourceArn", "arn:aws:execute-api:us-east-1:123456789012:otherapi99/*/POST/predict"),
        ),
        "sourceArn = 'arn:aws:execute-api:us-east-1:123456789012:otherapi99/*/POST/predict'",
    ),
    (
        "invoke-by-any-principal",
        "dev",
        "invoke_permission",
        lambda g: mutate(g, rules.PERMISSION, "api-invoke-permission", set_path("principal", "*")),
        "api-invoke-permission: principal = '*'",
    ),
    (
        "invoke-permission-any-action",
        "dev",
        "invoke_permission",
        lambda g: mutate(g, rules.PERMISSION, "api-invoke-permission", set_path("action", "lambda:*")),
        "api-invoke-permission: action = 'lambda:*', must be lambda:InvokeFunction",
    ),
    *[
        (
            f"catch-all-route-{which}",
            "dev",
            "invoke_permission",
            lambda g, key=key: mutate(g, rules.ROUTE, "api-route", set_path("routeKey", key)),
            f"api-route: routeKey = {key!r}, the API serves only 'POST /predict'",
        )
        for which, key in (("default", "$default"), ("any-proxy", "ANY /{proxy+}"))
    ],
    (
        "function-url",
        "dev",
        "invoke_permission",
        lambda g: add(g, Res(rules.FUNCTION_URL, "open-url", {"authorizationType": "NONE"})),
        "open-url: function URL with authorizationType = 'NONE'",
    ),
    (
        "cors-foreign-origin",
        "dev",
        "cors",
        lambda g: mutate(g, rules.DYNAMIC, "api-cors", set_path("origins", ["https://evil.example.com"])),
        "AllowOrigins = ['https://evil.example.com']",
    ),
    (
        "cors-extra-foreign-origin",
        "prod",
        "cors",
        lambda g: mutate(
            g, rules.DYNAMIC, "api-cors", set_path("origins", [*allowed_origins(g), "https://evil.example.com"])
        ),
        "api-cors: AllowOrigins = [",
    ),
    (
        "cors-on-api-star",
        "dev",
        "cors",
        lambda g: mutate(
            g,
            rules.HTTP_API,
            "api-http-api",
            set_path("corsConfiguration", {"allowOrigins": ["*"], "allowMethods": ["*"]}),
        ),
        "api-http-api: AllowOrigins = ['*']",
    ),
    (
        "cors-on-api-hides-retry-after",
        "dev",
        "cors",
        lambda g: mutate(
            g,
            rules.HTTP_API,
            "api-http-api",
            set_path(
                "corsConfiguration",
                {
                    "allowOrigins": allowed_origins(g),
                    "allowMethods": ["POST", "OPTIONS"],
                    "exposeHeaders": ["x-request-id"],
                },
            ),
        ),
        "api-http-api: ExposeHeaders = ['x-request-id'], must include ['retry-after', 'x-request-id']",
    ),
    (
        "cors-on-api-deletes",
        "dev",
        "cors",
        lambda g: cors_on_api(g, allowMethods=["POST", "OPTIONS", "DELETE"]),
        "api-http-api: AllowMethods = ['DELETE', 'OPTIONS', 'POST']",
    ),
    (
        "cors-on-api-any-header",
        "dev",
        "cors",
        lambda g: cors_on_api(g, allowHeaders=["*"]),
        "api-http-api: AllowHeaders = ['*'] allows any header",
    ),
    (
        "cors-on-api-credentials",
        "dev",
        "cors",
        lambda g: cors_on_api(g, allowCredentials=True),
        "api-http-api: AllowCredentials = true",
    ),
    (
        "cors-missing",
        "dev",
        "cors",
        lambda g: tuple(r for r in g.resources if r.name != "api-cors"),
        "api-http-api: no CORS configuration",
    ),
    (
        "csp-connect-any",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.HEADERS_POLICY,
            "site-headers",
            set_path(
                "securityHeadersConfig.contentSecurityPolicy.contentSecurityPolicy",
                "default-src 'self'; connect-src *; frame-ancestors 'none'; object-src 'none'",
            ),
        ),
        "connect-src = ['*']",
    ),
    (
        "frame-sameorigin",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.HEADERS_POLICY,
            "site-headers",
            set_path("securityHeadersConfig.frameOptions.frameOption", "SAMEORIGIN"),
        ),
        "'frameOption': 'SAMEORIGIN'",
    ),
    (
        "short-hsts",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.HEADERS_POLICY,
            "site-headers",
            set_path("securityHeadersConfig.strictTransportSecurity.accessControlMaxAgeSec", 86400),
        ),
        "strictTransportSecurity = ",
    ),
    (
        "hsts-a-second-short-of-a-year",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.HEADERS_POLICY,
            "site-headers",
            set_path("securityHeadersConfig.strictTransportSecurity.accessControlMaxAgeSec", ONE_YEAR_S - 1),
        ),
        "strictTransportSecurity = ",
    ),
    (
        "permissions-policy-allows-camera",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig.items.0.value", "camera=(self)")
        ),
        "camera=(self), must be camera=()",
    ),
    (
        "permissions-policy-missing",
        "prod",
        "headers_policy",
        lambda g: mutate(g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig", None)),
        "customHeadersConfig has no Permissions-Policy",
    ),
    (
        "permissions-policy-not-overriding",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig.items.0.override", False)
        ),
        "Permissions-Policy.override is not true",
    ),
    (
        "coop-allows-popups",
        "prod",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig.items.1.value", "unsafe-none")
        ),
        "Cross-Origin-Opener-Policy = 'unsafe-none', must be 'same-origin'",
    ),
    (
        "corp-missing",
        "dev",
        "headers_policy",
        lambda g: mutate(g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig.items.2", None)),
        "customHeadersConfig has no cross-origin-resource-policy",
    ),
    (
        "corp-cross-origin",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig.items.2.value", "cross-origin")
        ),
        "Cross-Origin-Resource-Policy = 'cross-origin', must be 'same-origin'",
    ),
    (
        "coop-not-overriding",
        "prod",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("customHeadersConfig.items.1.override", False)
        ),
        "Cross-Origin-Opener-Policy.override is not true",
    ),
    (
        "behaviour-without-headers",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g, rules.DISTRIBUTION, "site-cdn", set_path("orderedCacheBehaviors.0.responseHeadersPolicyId", None)
        ),
        "cache behaviour '/config.js' has responseHeadersPolicyId = None",
    ),
    (
        "default-behaviour-without-headers",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g, rules.DISTRIBUTION, "site-cdn", set_path("defaultCacheBehavior.responseHeadersPolicyId", None)
        ),
        "cache behaviour 'default' has responseHeadersPolicyId = None",
    ),
    (
        "behaviour-with-another-headers-policy",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.DISTRIBUTION,
            "site-cdn",
            set_path("orderedCacheBehaviors.0.responseHeadersPolicyId", MANAGED_HEADERS),
        ),
        f"cache behaviour '/config.js' has responseHeadersPolicyId = {MANAGED_HEADERS!r}, not a policy of this stack",
    ),
    (
        "hsts-without-subdomains",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.HEADERS_POLICY,
            "site-headers",
            set_path("securityHeadersConfig.strictTransportSecurity.includeSubdomains", False),
        ),
        "needs max age >= 1 year and includeSubdomains",
    ),
    (
        "no-nosniff",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("securityHeadersConfig.contentTypeOptions", None)
        ),
        "securityHeadersConfig.contentTypeOptions is not set (nosniff)",
    ),
    (
        "referrer-unsafe-url",
        "dev",
        "headers_policy",
        lambda g: mutate(
            g,
            rules.HEADERS_POLICY,
            "site-headers",
            set_path("securityHeadersConfig.referrerPolicy.referrerPolicy", "unsafe-url"),
        ),
        "securityHeadersConfig.referrerPolicy = 'unsafe-url'",
    ),
    (
        "csp-missing",
        "prod",
        "headers_policy",
        lambda g: mutate(
            g, rules.HEADERS_POLICY, "site-headers", set_path("securityHeadersConfig.contentSecurityPolicy", None)
        ),
        "securityHeadersConfig.contentSecurityPolicy is not set",
    ),
    *[
        (
            f"{header}-not-overriding",
            "dev",
            "headers_policy",
            lambda g, header=header: mutate(
                g, rules.HEADERS_POLICY, "site-headers", set_path(f"securityHeadersConfig.{header}.override", False)
            ),
            f"securityHeadersConfig.{header}.override is not true",
        )
        for header in (
            "strictTransportSecurity",
            "contentTypeOptions",
            "frameOptions",
            "referrerPolicy",
            "contentSecurityPolicy",
        )
    ],
    (
        "lambda-without-key",
        "prod",
        "kms",
        lambda g: mutate(g, rules.FUNCTION, "api-function", set_path("kmsKeyArn", None)),
        "api-function: kmsKeyArn = None",
    ),
    (
        "role-cannot-decrypt",
        "prod",
        "kms",
        lambda g: mutate(g, rules.ROLE_POLICY, "model-role-policy", with_policy(lambda st: st.pop())),
        "model-role: no inline policy allows kms:Decrypt",
    ),
    (
        "key-named-elsewhere",
        "prod",
        "kms",
        lambda g: mutate(g, rules.LOG_GROUP, "api-log-group", set_path("kmsKeyId", OTHER_KEY)),
        f"api-log-group: references KMS key {OTHER_KEY!r}, not the stack key",
    ),
    (
        "role-decrypt-denied",
        "prod",
        "kms",
        lambda g: mutate(g, rules.ROLE_POLICY, "api-role-policy", with_policy(lambda st: st[-1].update(Effect="Deny"))),
        "api-role: no inline policy allows kms:Decrypt",
    ),
    (
        "role-decrypts-with-the-key-and-another",
        "prod",
        "kms",
        lambda g: mutate(
            g, rules.ROLE_POLICY, "api-role-policy", with_policy(lambda st: st[-1].update(Resource=[KMS_KEY_ARN, "*"]))
        ),
        "api-role: no inline policy allows kms:Decrypt",
    ),
    (
        "model-role-decrypts-directly",
        "prod",
        "kms",
        lambda g: mutate(g, rules.ROLE_POLICY, "model-role-policy", with_policy(lambda st: st[-1].pop("Condition"))),
        "model-role-policy: policy.Statement[5]: kms:Decrypt with Condition None, must be StringEquals kms:ViaService",
    ),
    (
        "model-role-decrypts-through-lambda",
        "prod",
        "kms",
        lambda g: mutate(
            g,
            rules.ROLE_POLICY,
            "model-role-policy",
            with_policy(
                lambda st: st[-1].update(
                    Action="KMS:Decrypt",  # IAM reads actions case-insensitively
                    Condition={"StringEquals": {"kms:ViaService": "lambda.us-east-1.amazonaws.com"}},
                )
            ),
        ),
        "model-role-policy: policy.Statement[5]: kms:Decrypt with Condition {'StringEquals': {'kms:ViaService': "
        "'lambda.",
    ),
    (
        "key-of-another-partition-named-elsewhere",
        "prod",
        "kms",
        lambda g: mutate(g, rules.LOG_GROUP, "api-log-group", set_path("kmsKeyId", CN_KEY)),
        f"api-log-group: references KMS key {CN_KEY!r}, not the stack key",
    ),
    (
        "foreign-key",
        "prod",
        "kms",
        lambda g: mutate(g, rules.SM_ENDPOINT_CONFIG, "model-config", set_path("kmsKeyArn", OTHER_KEY)),
        "model-config: kmsKeyArn = ",
    ),
    (
        "alarm-missing-data-breaching",
        "dev",
        "alarms",
        lambda g: mutate(g, rules.METRIC_ALARM, "api-alarm-5xx", set_path("treatMissingData", "breaching")),
        "api-alarm-5xx: treatMissingData = 'breaching'",
    ),
    (
        "alarm-without-ok-action",
        "prod",
        "alarms",
        lambda g: mutate(g, rules.METRIC_ALARM, "model-alarm-latency", set_path("okActions", None)),
        "model-alarm-latency: okActions = None",
    ),
    (
        "alarm-without-alarm-action",
        "prod",
        "alarms",
        lambda g: mutate(g, rules.METRIC_ALARM, "api-alarm-errors", set_path("alarmActions", None)),
        "api-alarm-errors: alarmActions = None",
    ),
    (
        "alarm-actions-disabled",
        "prod",
        "alarms",
        lambda g: mutate(g, rules.METRIC_ALARM, "model-alarm-5xx", set_path("actionsEnabled", False)),
        "model-alarm-5xx: actionsEnabled = False, the alarm would never notify",
    ),
    (
        "stage-not-watched",
        "dev",
        "alarms",
        lambda g: without(g, "api-alarm-5xx"),
        "api-stage: no alarm on AWS/ApiGateway ApiId = 'abc123defg'",
    ),
    (
        "stage-alarm-in-another-namespace",
        "dev",
        "alarms",
        lambda g: mutate(g, rules.METRIC_ALARM, "api-alarm-5xx", set_path("namespace", "AWS/Lambda")),
        "api-stage: no alarm on AWS/ApiGateway ApiId = 'abc123defg'",
    ),
    (
        "function-not-watched",
        "dev",
        "alarms",
        lambda g: tuple(
            r for r in g.resources if not (r.type == rules.METRIC_ALARM and r.name.startswith("api-alarm-"))
        ),
        "api-function: no alarm on AWS/Lambda FunctionName = 'mobilenet-serverless-dev-proxy'",
    ),
    (
        "endpoint-alarms-on-another-endpoint",
        "prod",
        "alarms",
        lambda g: mutate_all(
            g,
            rules.METRIC_ALARM,
            ("model-alarm-5xx", "model-alarm-latency", "model-alarm-concurrency"),
            set_path("dimensions.EndpointName", "someone-elses"),
        ),
        "model-endpoint: no alarm on AWS/SageMaker EndpointName = 'mobilenet-prod'",
    ),
]


@pytest.mark.parametrize(
    ("stack", "rule", "bad", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_rule_reports_a_bad_resource(
    graphs: Mapping[str, Graph], stack: str, rule: str, bad: Callable[[Graph], tuple[Res, ...]], expected: str
) -> None:
    graph = graphs[stack]
    assert RULES[rule](graph.resources, graph) == []  # the good baseline, so the hit below is the edit's
    violations = RULES[rule](bad(graph), graph)
    assert any(expected in v for v in violations), f"{rule} missed the bad resource; it said {violations}"


def test_an_hsts_age_of_exactly_a_year_passes(graphs: Mapping[str, Graph]) -> None:
    """The rule's limit is inclusive: with the two-year age the program sets, `>` would pass as `>=` does."""
    graph = graphs["dev"]
    age = set_path("securityHeadersConfig.strictTransportSecurity.accessControlMaxAgeSec", ONE_YEAR_S)
    assert RULES["headers_policy"](mutate(graph, rules.HEADERS_POLICY, "site-headers", age), graph) == []


def test_a_statement_that_logs_and_invokes_its_own_endpoint_passes(graphs: Mapping[str, Graph]) -> None:
    """The invoke check judges the endpoints a statement lists, not the log groups beside them."""
    graph = graphs["dev"]
    [endpoint] = graph.of_type(rules.SM_ENDPOINT)
    merged = with_policy(lambda st: st[0].update(merged_with(st[0], str(endpoint.outputs["arn"]))))
    assert RULES["iam"](mutate(graph, rules.ROLE_POLICY, "api-role-policy", merged), graph) == []


@pytest.mark.parametrize("own_role", [True, False], ids=["a-role-each", "one-role-for-both"])
def test_two_endpoints_each_logging_to_its_own_group_pass(graphs: Mapping[str, Graph], own_role: bool) -> None:
    """Each endpoint's group is its own model's role's, found through its own configuration; a role serving both
    endpoints writes both groups."""
    graph = graphs["dev"]
    assert RULES["iam"](with_a_second_endpoint(graph, own_role), graph) == []


def test_with_alarms_off_every_alarm_is_reported(graphs: Mapping[str, Graph]) -> None:
    """The stacks run with alarms on; the rule's other branch, judged on the same alarms."""
    violations = rules.alarm_violations(graphs["dev"].resources, False, None)
    assert len(violations) == len(graphs["dev"].of_type(rules.METRIC_ALARM))
    assert any(v.endswith("api-alarm-5xx: an alarm although alarms is false") for v in violations)


def test_every_rule_has_a_bad_case() -> None:
    assert {c[2] for c in BAD_CASES} == set(RULES)


@pytest.mark.parametrize(
    "resource",
    ["arn:aws:s3:::another-stacks-bucket/models/*", "arn:aws:s3:::model-bucket-a1b2c3/other/*"],
    ids=["another-bucket", "another-prefix"],
)
def test_a_prefix_wildcard_outside_the_endpoints_own_models_prefix_is_reported(
    graphs: Mapping[str, Graph], resource: str
) -> None:
    """The endpoint's read grant is on its own bucket's models/ prefix: the same wildcard on another bucket's objects,
    or on another prefix of its own bucket, is wider than a rollout or a rollback needs."""
    graph = graphs["dev"]
    bad = mutate(graph, rules.ROLE_POLICY, "model-role-policy", with_policy(lambda st: st[2].update(Resource=resource)))
    assert any(resource in v for v in RULES["iam"](bad, graph)), f"iam passed a read of {resource}"
