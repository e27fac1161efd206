"""components/policies.py: the exact IAM documents, CSP, CORS, content types and hashes."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from components import policies
from components.policies import PolicyInputError
from components.settings import Settings
from local import torchserve
from tests.conftest import names_of

KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SHA = "ab" * 32
# The current IAM policy language: under the older 2008-10-17 a policy variable such as ${aws:username} is literal text.
POLICY_LANGUAGE = "2012-10-17"


def assert_least_privilege(document: dict[str, Any]) -> None:
    """No Allow on Resource "*" except ecr:GetAuthorizationToken, and cloudwatch:PutMetricData held to the endpoints'
    namespace; wildcards only as a log-stream suffix or ending an S3 key prefix below the bucket (bucket/models/*,
    never bucket/*)."""
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        for resource in resources:
            if resource == "*" and actions == ["cloudwatch:PutMetricData"]:
                assert statement["Condition"] == {
                    "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}
                }, statement
            elif resource == "*":
                assert actions == ["ecr:GetAuthorizationToken"], statement
            elif re.match(r"^arn:aws[a-z-]*:s3:::[^/*]+/[^*]+/\*$", resource):
                continue
            else:
                assert "*" not in resource.removesuffix(":*"), statement


def sagemaker_doc(**overrides: Any) -> dict[str, Any]:
    kwargs = {
        "partition": "aws",
        "region": "eu-west-1",
        "account_id": "123456789012",
        "registry_id": "763104351884",
        "repository": "pytorch-inference",
        "bucket": "model-bucket-1",
        "endpoint_name": "mobilenet-dev",
    }
    return json.loads(policies.sagemaker_execution_policy(**{**kwargs, **overrides}))


def test_sagemaker_execution_policy_is_exact() -> None:
    doc = sagemaker_doc()
    assert doc["Version"] == POLICY_LANGUAGE
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid == {
        "EcrToken": {"Sid": "EcrToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        "PullInferenceImage": {
            "Sid": "PullInferenceImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": "arn:aws:ecr:eu-west-1:763104351884:repository/pytorch-inference",
        },
        "ReadModelArtifact": {
            "Sid": "ReadModelArtifact",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::model-bucket-1/models/*",
        },
        "EndpointLogs": {
            "Sid": "EndpointLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": [
                "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/mobilenet-dev",
                "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/mobilenet-dev:*",
            ],
        },
        "EndpointMetrics": {
            "Sid": "EndpointMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
        },
    }
    assert_least_privilege(doc)


def test_kms_decrypt_is_added_only_for_the_given_key() -> None:
    assert not any("kms" in json.dumps(s) for s in sagemaker_doc()["Statement"])
    # An empty key (an unset kmsKeyArn read as "") is no key: a kms:Decrypt on Resource "" is a policy IAM refuses.
    assert sagemaker_doc(kms_key_arn="") == sagemaker_doc()
    lambda_doc = json.loads(policies.lambda_execution_policy(**LAMBDA_POLICY_ARGS, kms_key_arn=""))
    assert [s["Sid"] for s in lambda_doc["Statement"]] == ["FunctionLogs", "InvokeModelEndpoint"]
    with_key = sagemaker_doc(kms_key_arn=KMS)
    kms = [s for s in with_key["Statement"] if s["Sid"] == "DecryptWithStackKey"]
    assert kms == [
        {
            "Sid": "DecryptWithStackKey",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": KMS,
            # Only through S3 (the key encrypts the model bucket), never a direct kms:Decrypt with the role.
            "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
        }
    ]
    assert_least_privilege(with_key)
    china = sagemaker_doc(partition="aws-cn", region="cn-north-1", kms_key_arn=KMS)
    (statement,) = (s for s in china["Statement"] if s["Sid"] == "DecryptWithStackKey")
    assert statement["Condition"]["StringEquals"]["kms:ViaService"] == "s3.cn-north-1.amazonaws.com.cn"


@pytest.mark.parametrize(
    ("partition", "region", "endpoint"),
    [
        ("aws", "eu-west-1", "s3.eu-west-1.amazonaws.com"),
        ("aws-us-gov", "us-gov-west-1", "s3.us-gov-west-1.amazonaws.com"),
        ("aws-cn", "cn-north-1", "s3.cn-north-1.amazonaws.com.cn"),
        ("aws-eusc", "eusc-de-east-1", "s3.eusc-de-east-1.amazonaws.eu"),
        ("aws-iso", "us-iso-east-1", "s3.us-iso-east-1.c2s.ic.gov"),
        ("aws-iso-b", "us-isob-east-1", "s3.us-isob-east-1.sc2s.sgov.gov"),
        ("aws-iso-e", "eu-isoe-west-1", "s3.eu-isoe-west-1.cloud.adc-e.uk"),
        ("aws-iso-f", "us-isof-south-1", "s3.us-isof-south-1.csp.hci.ic.gov"),
    ],
)
def test_kms_via_service_is_s3s_endpoint_in_every_partition(partition: str, region: str, endpoint: str) -> None:
    """The DNS suffix botocore gives each partition: amazonaws.com outside aws, aws-us-gov and aws-cn named no S3 the
    condition could match, and SageMaker could not decrypt the artifact (and GovCloud is amazonaws.com, not .cn)."""
    import botocore.session

    doc = sagemaker_doc(partition=partition, region=region, kms_key_arn=KMS)
    (statement,) = (s for s in doc["Statement"] if s["Sid"] == "DecryptWithStackKey")
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": endpoint}}
    resolver = botocore.session.get_session().get_component("endpoint_resolver")
    assert endpoint == f"s3.{region}.{resolver.get_partition_dns_suffix(partition)}"


def test_partition_flows_into_every_arn() -> None:
    doc = sagemaker_doc(partition="aws-cn", region="cn-north-1")
    arns = [r for s in doc["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    assert all(a == "*" or a.startswith("arn:aws-cn:") for a in arns)


def test_the_functions_log_arns_are_in_its_own_partition_and_region() -> None:
    """The exact-document test runs in aws/us-east-1, where a partition or region fixed to those reads the same: the
    function could then write no log line anywhere else."""
    china = {"partition": "aws-cn", "region": "cn-north-1"}
    endpoint_arn = "arn:aws-cn:sagemaker:cn-north-1:123456789012:endpoint/ep"
    doc = json.loads(policies.lambda_execution_policy(**{**LAMBDA_POLICY_ARGS, **china, "endpoint_arn": endpoint_arn}))
    (logs,) = (s for s in doc["Statement"] if s["Sid"] == "FunctionLogs")
    group = "arn:aws-cn:logs:cn-north-1:123456789012:log-group:/aws/lambda/fn"
    assert logs["Resource"] == [group, f"{group}:*"]


def test_lambda_execution_policy_is_exact() -> None:
    endpoint_arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mobilenet-dev"
    doc = json.loads(
        policies.lambda_execution_policy(
            partition="aws",
            region="us-east-1",
            account_id="123456789012",
            log_group_name="/aws/lambda/mobilenet-dev-proxy",
            endpoint_arn=endpoint_arn,
            kms_key_arn=KMS,
        )
    )
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/mobilenet-dev-proxy"
    assert doc["Version"] == POLICY_LANGUAGE
    assert doc["Statement"] == [
        {
            "Sid": "FunctionLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [group, f"{group}:*"],
        },
        {
            "Sid": "InvokeModelEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:InvokeEndpoint",
            "Resource": endpoint_arn,
        },
        {"Sid": "DecryptWithStackKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": KMS},
    ]
    assert_least_privilege(doc)


def test_builders_refuse_wildcards_in_resources() -> None:
    with pytest.raises(PolicyInputError, match="endpoint_arn"):
        policies.lambda_execution_policy(
            partition="aws", region="r", account_id="1", log_group_name="/g", endpoint_arn="arn:*"
        )
    with pytest.raises(PolicyInputError, match="bucket"):
        sagemaker_doc(bucket="*")


LAMBDA_POLICY_ARGS = {
    "partition": "aws",
    "region": "us-east-1",
    "account_id": "123456789012",
    "log_group_name": "/aws/lambda/fn",
    "endpoint_arn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
}
# Every name that ends up in an IAM resource, a source ARN or an origin, with the field the error must name.
NAME_BUILDERS = [
    ("endpoint_name", lambda v: sagemaker_doc(endpoint_name=v)),
    ("repository", lambda v: sagemaker_doc(repository=v)),
    ("log_group_name", lambda v: policies.lambda_execution_policy(**{**LAMBDA_POLICY_ARGS, "log_group_name": v})),
    ("endpoint_name", policies.endpoint_log_group_name),
    ("function_name", policies.lambda_log_group_name),
    ("execution_arn", policies.invoke_permission_source_arn),
    ("distribution_arn", lambda v: policies.site_bucket_policy("arn:aws:s3:::site-b", v)),
    ("bucket_arn", lambda v: policies.site_bucket_policy(v, "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE")),
    ("distribution_domain", lambda v: policies.site_origins(v, None)),
    ("region", policies.sagemaker_container_env),
]


@pytest.mark.parametrize("value", ["*", "", 42])
@pytest.mark.parametrize(("field", "build"), NAME_BUILDERS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(NAME_BUILDERS)])
def test_every_name_builder_refuses_a_wildcard_or_empty_name(field: str, build: Any, value: object) -> None:
    """A "*" would widen a grant to every log group, repository or API (or a CloudFront source to any), and an
    empty name is an ARN AWS refuses halfway through a deploy. A name that is no string (a number) is refused naming
    the field too, not a TypeError from looking for "*" in it."""
    with pytest.raises(PolicyInputError, match=field):
        build(value)


def test_assume_role_policy_names_only_the_service() -> None:
    doc = json.loads(policies.assume_role_policy("sagemaker.amazonaws.com"))
    assert doc == {
        "Version": POLICY_LANGUAGE,
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def test_site_bucket_policy_allows_only_the_distribution() -> None:
    dist = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
    doc = json.loads(policies.site_bucket_policy("arn:aws:s3:::site-b", dist))
    assert doc["Version"] == POLICY_LANGUAGE
    allow, deny = doc["Statement"]
    assert allow == {
        "Sid": "CloudFrontReadsSite",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::site-b/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": dist}},
    }
    assert deny == deny_insecure_transport("arn:aws:s3:::site-b")


def deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    """Every principal, every S3 action, the bucket and its objects: a Deny narrowed to one action (GetObject) or
    one principal would still let anyone else write or list over plain HTTP."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def test_model_bucket_policy_grants_nothing() -> None:
    doc = json.loads(policies.private_bucket_policy("arn:aws:s3:::model-b"))
    assert doc["Version"] == POLICY_LANGUAGE
    assert doc["Statement"] == [deny_insecure_transport("arn:aws:s3:::model-b")]
    for bad in ("", "*", "arn:aws:s3:::model-*"):  # a policy S3 refuses, or a Deny that names no one bucket
        with pytest.raises(PolicyInputError, match="bucket_arn"):
            policies.private_bucket_policy(bad)


def test_invoke_permission_is_scoped_to_post_predict() -> None:
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
    assert policies.invoke_permission_source_arn(arn) == f"{arn}/*/POST/predict"


def test_csp_allows_only_the_api_origin_for_fetch() -> None:
    csp = policies.content_security_policy("https://abc.execute-api.us-east-1.amazonaws.com/")
    assert csp == (
        "default-src 'self'; img-src 'self' data: blob:; "
        "connect-src https://abc.execute-api.us-east-1.amazonaws.com; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )
    assert "unsafe" not in csp
    with pytest.raises(PolicyInputError, match="url"):
        policies.content_security_policy("abc.execute-api.us-east-1.amazonaws.com")


def test_csp_names_a_same_origin_api_self_which_also_covers_ipv6_literals() -> None:
    for origin in ("http://[::1]:8775", "http://127.0.0.1:8000"):
        csp = policies.content_security_policy(origin + "/", site_origin=origin)
        assert "connect-src 'self';" in csp and "[" not in csp
    cross = policies.content_security_policy("https://api.example.com", site_origin="https://d1.cloudfront.net")
    assert "connect-src https://api.example.com;" in cross
    # The site is compared by its origin, however it is written (the page's own URL), and an empty one is refused
    # rather than taken for another site.
    page = policies.content_security_policy("http://127.0.0.1:8000/predict", site_origin="http://127.0.0.1:8000/")
    assert "connect-src 'self';" in page
    with pytest.raises(PolicyInputError, match=r"url must be absolute http\(s\), got ''"):
        policies.content_security_policy("https://api.example.com", site_origin="")


def test_permissions_policy_gives_every_powerful_feature_an_empty_allowlist() -> None:
    """The whole list, not only the features tests/policy's rule insists on: a name dropped from it (accelerometer,
    fullscreen, publickey-credentials-get) would give the site's own origin that feature again."""
    members = dict(member.strip().split("=", 1) for member in policies.PERMISSIONS_POLICY.split(","))
    assert members == dict.fromkeys(
        (
            "accelerometer", "autoplay", "browsing-topics", "camera", "clipboard-read", "clipboard-write",
            "display-capture", "encrypted-media", "fullscreen", "gamepad", "geolocation", "gyroscope", "hid",
            "identity-credentials-get", "idle-detection", "local-fonts", "magnetometer", "microphone", "midi",
            "otp-credentials", "payment", "picture-in-picture", "publickey-credentials-create",
            "publickey-credentials-get", "screen-wake-lock", "serial", "usb", "window-management",
            "xr-spatial-tracking",
        ),
        "()",
    )  # fmt: skip


def test_cors_origins_site_first_deduplicated_and_validated() -> None:
    assert policies.cors_allowed_origins(
        ["https://d1.cloudfront.net"], ["http://localhost:8000", "https://d1.cloudfront.net"]
    ) == ["https://d1.cloudfront.net", "http://localhost:8000"]
    for bad in ("*", "https://x.example.com/path", ""):
        with pytest.raises(PolicyInputError, match="allowed origin"):
            policies.cors_allowed_origins([], [bad])
    for bad in ("ftp://x.example.com", "ws://x.example.com", "x.example.com"):
        with pytest.raises(PolicyInputError, match="http"):
            policies.cors_allowed_origins([], [bad])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.example.com",
        "file:///etc/passwd",
        "//api.example.com",
        "api.example.com",
        "https:///x",
        "https:",
        "httpx://api.example.com",  # a scheme that only begins like http's
    ],
)
def test_csp_refuses_an_api_url_that_is_not_absolute_http(url: str) -> None:
    with pytest.raises(PolicyInputError, match="http"):
        policies.content_security_policy(url)


def test_site_origins_put_the_custom_domain_first() -> None:
    assert policies.site_origins("d1.cloudfront.net", None) == ["https://d1.cloudfront.net"]
    assert policies.site_origins("d1.cloudfront.net", "") == ["https://d1.cloudfront.net"]  # not "https://"
    assert policies.site_origins("d1.cloudfront.net", "demo.example.com") == [
        "https://demo.example.com",
        "https://d1.cloudfront.net",
    ]


def test_http_api_cors_document() -> None:
    assert policies.http_api_cors(["https://d1.cloudfront.net"]) == {
        "AllowOrigins": ["https://d1.cloudfront.net"],
        "AllowMethods": ["POST", "OPTIONS"],
        "AllowHeaders": ["content-type"],
        "ExposeHeaders": ["retry-after", "x-request-id", "apigw-requestid"],
        "MaxAge": 3600,
        "AllowCredentials": False,
    }
    with pytest.raises(PolicyInputError, match="at least one"):
        policies.http_api_cors([])
    for bad in ("*", "https://d1.cloudfront.net/"):  # API Gateway would take either: any site, or no browser's Origin
        with pytest.raises(PolicyInputError, match="allowed origin"):
            policies.http_api_cors(["https://d1.cloudfront.net", bad])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("script.js", "application/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("samples/Cat.JPG", "image/jpeg"),
        ("samples/dog.jpeg", "image/jpeg"),
        ("module.mjs", "application/javascript; charset=utf-8"),  # a module script under nosniff needs a JS type
        ("a/b.png", "image/png"),
        ("x.webp", "image/webp"),
        ("icon.svg", "image/svg+xml"),
        ("favicon.ico", "image/x-icon"),
        ("data.json", "application/json"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("samples/ATTRIBUTION.md", "text/plain; charset=utf-8"),
        ("site.webmanifest", "application/manifest+json"),
    ],
)
def test_content_types(path: str, expected: str) -> None:
    assert policies.content_type_for(path) == expected


def test_unknown_extension_is_an_error_naming_the_file() -> None:
    """The file, its extension and every extension the site may ship: what to rename it to, or where to add its type."""
    with pytest.raises(PolicyInputError) as err:
        policies.content_type_for("tool.exe")
    assert str(err.value) == (
        "www file 'tool.exe' has no known content type (extension '.exe'); known: .css, .html, .ico, .jpeg, .jpg, .js, "
        ".json, .md, .mjs, .png, .svg, .txt, .webmanifest, .webp"
    )
    with pytest.raises(PolicyInputError, match=r"^www file 'LICENSE' has no known content type \(extension ''\)"):
        policies.content_type_for("LICENSE")  # no extension at all: the same refusal, not an IndexError


def test_site_files_skip_config_js_and_dotfiles(tmp_path: Path) -> None:
    # Finder and editors drop dotfiles in every folder, not only at the top (._a.jpg is AppleDouble metadata).
    for rel in (
        "index.html",
        "config.js",
        ".DS_Store",
        "samples/a.jpg",
        ".git/x.txt",
        "samples/._a.jpg",
        "samples/.x.swp",
        "samples/config.js",  # only the top-level config.js is the rendered one
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list(policies.site_files(tmp_path)) == ["index.html", "samples/a.jpg", "samples/config.js"]
    (tmp_path / "notes.docx").write_bytes(b"x")
    with pytest.raises(PolicyInputError, match=r"notes\.docx"):
        policies.site_files(tmp_path)


def test_site_files_refuse_a_symlink_out_of_www_as_a_policy_input_error(tmp_path: Path) -> None:
    """__main__ reports a PolicyInputError as its message: any other error is a Python traceback from `pulumi up`."""
    (tmp_path / "secret.txt").write_text("not the site's")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>hi</p>")
    (tmp_path / "www" / "notes.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(PolicyInputError, match=r"notes\.txt is a symlink"):
        policies.site_files(tmp_path / "www")


def test_site_files_refuse_a_missing_www_dir(tmp_path: Path) -> None:
    # Not an empty site: a wrong path must fail the program rather than publish nothing.
    with pytest.raises(PolicyInputError, match="www_dir"):
        policies.site_files(tmp_path / "missing")
    (tmp_path / "www.zip").write_bytes(b"PK")  # a file is no www/ either, and is refused as such
    with pytest.raises(PolicyInputError, match=r"www_dir .*/www\.zip is not a directory\Z"):
        policies.site_files(tmp_path / "www.zip")
    (tmp_path / "site" / "sub").mkdir(parents=True)
    (tmp_path / "site" / "sub" / "index.html").write_text("<p>not the root's</p>")
    (tmp_path / "site" / ".index.html").write_text("hidden, never published")
    with pytest.raises(PolicyInputError, match=r"www_dir .*/site has no index\.html, the page the site serves at /"):
        policies.site_files(tmp_path / "site")  # the distribution's default root object would be a 403 page


def test_site_content_hash_changes_exactly_with_content() -> None:
    files = {"index.html": b"<p>hi</p>", "script.js": b"1"}
    base = policies.site_content_hash(files, "cfg")
    assert policies.site_content_hash(dict(reversed(files.items())), "cfg") == base  # order-independent
    assert policies.site_content_hash({**files, "script.js": b"2"}, "cfg") != base
    assert policies.site_content_hash(files, "cfg2") != base
    assert policies.site_content_hash({**files, "new.css": b""}, "cfg") != base
    assert policies.site_content_hash({"index.html": b"<p>hi</p>"}, "cfg") != base
    # A file renamed alone (same bytes and headers, same place in the key order) is a new site: the old name is
    # deleted from the bucket, and only the invalidation takes it out of the edge caches.
    assert policies.site_content_hash({"index.html": b"<p>hi</p>", "site.js": b"1"}, "cfg") != base
    # Framing: moving bytes from one file to the next is a different site.
    moved = policies.site_content_hash({"a.js": b"1", "b.js": b"2"}, "")
    assert policies.site_content_hash({"a.js": b"12", "b.js": b""}, "") != moved


def test_site_content_hash_changes_with_a_header_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Edge caches keep the old Content-Type or Cache-Control with the old bytes: a new header needs invalidating.
    files = {"samples/ATTRIBUTION.md": b"# Credits", "script.js": b"1"}
    base = policies.site_content_hash(files, "cfg")
    monkeypatch.setitem(policies.CONTENT_TYPES, ".md", "text/markdown; charset=utf-8")
    changed_type = policies.site_content_hash(files, "cfg")
    assert changed_type != base
    monkeypatch.setattr(policies, "cache_control_for", lambda key: "no-cache")
    assert policies.site_content_hash(files, "cfg") not in (base, changed_type)


def test_artifact_key_is_content_addressed(tmp_path: Path) -> None:
    assert policies.artifact_key(SHA) == f"models/{SHA}/model.tar.gz"
    with pytest.raises(PolicyInputError, match="sha256"):
        policies.artifact_key("ABC")
    for bad in (SHA.upper(), "g" * 64, "ab" * 31 + "a/"):  # right length, not lower-case hex
        with pytest.raises(PolicyInputError, match="sha256"):
            policies.artifact_key(bad)
    for bad in (SHA[:-2], SHA + "ab"):  # lower-case hex, not a sha256's length
        with pytest.raises(PolicyInputError, match="sha256"):
            policies.artifact_key(bad)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"abc")
    assert policies.file_sha256(artifact) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    # The whole file, past its first read: a rebuilt artifact differing only in its last byte is a new key (the same
    # key would keep the deployed Model and EndpointConfig on the old one).
    big = bytes(3 << 20)
    artifact.write_bytes(big)
    assert policies.file_sha256(artifact) == hashlib.sha256(big).hexdigest()
    artifact.write_bytes(big[:-1] + b"\x01")
    assert policies.file_sha256(artifact) == hashlib.sha256(big[:-1] + b"\x01").hexdigest()
    with pytest.raises(policies.ArtifactMissingError, match="make model"):
        policies.file_sha256(tmp_path / "missing.tar.gz")


def test_the_default_artifact_path_holding_no_regular_file_says_make_model(tmp_path: Path) -> None:
    """A socket (or a FIFO, whose open() would wait forever) where `make model` writes the artifact: check_artifact
    leaves that path to file_sha256, which says to build it instead of opening it (an OSError traceback, or a hang)."""
    import socket

    built_by_make = tmp_path / "model.tar.gz"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(built_by_make))
        policies.check_artifact(built_by_make, built_by_make=built_by_make)
        with pytest.raises(policies.ArtifactMissingError, match=r"does not exist; run `make model` first\Z"):
            policies.file_sha256(built_by_make)


def test_container_env_runs_inference_py_with_one_worker() -> None:
    env = policies.sagemaker_container_env("eu-west-1")
    assert env["SAGEMAKER_PROGRAM"] == "inference.py"
    assert env["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert env["SAGEMAKER_REGION"] == "eu-west-1"
    assert env["SAGEMAKER_CONTAINER_LOG_LEVEL"] == "20"  # logging.INFO
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == env["TS_DEFAULT_WORKERS_PER_MODEL"] == "1"
    # The toolkit's default_response_timeout=60 never reaches TorchServe (it is glued to the line before it).
    assert env["TS_DEFAULT_RESPONSE_TIMEOUT"] == "60"
    local = torchserve.serving_env(Path("/srv"), 8080, 8082, (7070, 7071))
    assert {k: local[k] for k in policies.TORCHSERVE_ENV} == policies.TORCHSERVE_ENV


def test_container_env_caps_the_jvm_heap_as_the_memory_figures_were_measured(monkeypatch) -> None:
    # The toolkit's -XX:-UseContainerSupport sizes the default heap from the machine, not the endpoint's memory.
    deployed = policies.sagemaker_container_env("eu-west-1")["JAVA_TOOL_OPTIONS"]
    assert deployed == "-Xmx512m"
    monkeypatch.setattr(
        torchserve, "platform", names_of(torchserve.platform, system=lambda: "Linux")
    )  # the container's (macOS adds a flag)
    local = torchserve.serving_env(Path("/srv"), 8080, 8082, (7070, 7071))["JAVA_TOOL_OPTIONS"]
    assert local == deployed


def test_access_log_format_is_json_with_the_required_fields() -> None:
    fields = json.loads(policies.access_log_format())
    assert set(fields) == {
        "requestId", "ip", "requestTime", "httpMethod", "routeKey", "status",
        "protocol", "responseLength", "integrationErrorMessage", "integrationLatency", "integrationRequestId",
    }  # fmt: skip
    # API Gateway refuses a format with a line break anywhere but at its end ("Access Log format must be single line").
    assert "\n" not in policies.access_log_format()
    # Each field the $context variable it is named for (not, say, status from $context.integrationStatus); only the
    # client's address and the function's request id are named apart.
    named_apart = {"ip": "$context.identity.sourceIp", "integrationRequestId": "$context.integration.requestId"}
    assert {k: v for k, v in fields.items() if v != named_apart.get(k, f"$context.{k}")} == {}


def test_access_log_ties_the_clients_request_id_to_the_functions() -> None:
    # A crashed, timed-out or out-of-memory invocation logs no line of the handler's, so nothing in /aws/lambda/<fn>
    # holds the apigw-requestid the client saw: only Lambda's own lines, under Lambda's request id. The access log
    # line is where the two meet.
    fields = json.loads(policies.access_log_format())
    assert fields["requestId"] == "$context.requestId"
    assert fields["integrationRequestId"] == "$context.integration.requestId"


def test_cache_control() -> None:
    for shell in ("index.html", "script.js", "style.css"):
        assert policies.cache_control_for(shell) == "no-cache", shell
    # Whatever content_type_for serves as the page's HTML, script or style, in any case: an hour-old module or
    # Script.JS beside a fresh index.html breaks the page as an old script.js would.
    for shell in ("app.mjs", "Script.JS", "about.HTML", "print.Css"):
        assert policies.content_type_for(shell).startswith(("text/html", "application/javascript", "text/css")), shell
        assert policies.cache_control_for(shell) == "no-cache", shell
    for asset in ("samples/a.jpg", "samples/B.JPG", "manifest.json", "html.png"):
        assert policies.cache_control_for(asset) == "public, max-age=3600", asset
    with pytest.raises(PolicyInputError, match=r"config\.js"):
        policies.cache_control_for("config.js")
    # Only the top-level config.js is the rendered one: a script of the same name below it is published (site_files)
    # and cached as the shell's other scripts are, not refused when the site is hashed.
    assert policies.cache_control_for("samples/config.js") == "no-cache"
    assert policies.site_content_hash({"samples/config.js": b"1"}, "cfg") != policies.site_content_hash({}, "cfg")


def test_s3_prefix_arn_names_a_folder_never_the_whole_bucket() -> None:
    assert policies.s3_prefix_arn("aws", "b", "models/") == "arn:aws:s3:::b/models/*"
    for bad in ("", "models", "/models/", "*/", "models/*"):
        with pytest.raises(policies.PolicyInputError, match=r"^prefix must be "):  # the field, not the bucket
            policies.s3_prefix_arn("aws", "b", bad)


def test_proxy_function_env_is_what_the_handler_reads() -> None:
    """One environment for the deployed function and the local sandboxes; the handler's own parser accepts it."""
    from handlers.proxy_core import SAGEMAKER_SERVERLESS_MAX_BYTES, load_config

    env = policies.proxy_function_env("mobilenet-dev", ["https://a.example", "http://localhost:8000"], "WARNING")
    assert env == {
        "ENDPOINT_NAME": "mobilenet-dev",
        "ALLOWED_ORIGINS": "https://a.example,http://localhost:8000",
        "MAX_IMAGE_BYTES": str(SAGEMAKER_SERVERLESS_MAX_BYTES),
        "POWERTOOLS_SERVICE_NAME": "inference-proxy",
        "POWERTOOLS_METRICS_NAMESPACE": "MobilenetServerless",
        "LOG_LEVEL": "WARNING",
    }
    config = load_config(env)
    assert config.endpoint_name == "mobilenet-dev" and config.max_image_bytes == SAGEMAKER_SERVERLESS_MAX_BYTES
    with pytest.raises(PolicyInputError, match="endpoint_name"):
        policies.proxy_function_env("", [])
    # A caller that names no level (the runtime tests' sandboxes) gets proxyLogLevel's default.
    assert policies.proxy_function_env("mobilenet-dev", [])["LOG_LEVEL"] == Settings().proxy_log_level == "INFO"


def test_api_access_logs_are_named_as_vended_logs() -> None:
    # Outside /aws/vendedlogs/ each group adds its own entry to the region's size-capped log resource policy.
    assert policies.api_access_log_group_name("fn-proxy") == "/aws/vendedlogs/apigateway/fn-proxy-access"
    with pytest.raises(PolicyInputError, match="function_name"):
        policies.api_access_log_group_name("")


def test_site_content_hash_frames_fields_so_concatenations_cannot_collide() -> None:
    # Unframed, both sites would hash the same bytes: "a.txt" <headers> "Xconfig.js" "config.js" "" "".
    # (The framing check above moves a byte between files, which changes the unframed stream too.)
    one = policies.site_content_hash({"a.txt": b"Xconfig.js"}, "")
    other = policies.site_content_hash({"a.txt": b"X"}, "config.js")
    assert one != other
