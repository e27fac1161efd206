"""Pure builders for everything the components declare: IAM documents, CSP and the other security headers, CORS,
content types and cache policies, hashes, names and ARNs, the model container's and the proxy's environments
(site_files and read_site_files also read www/ from disk, file_sha256 and check_artifact the model artifact).

The components only wire these into resources (via Output.all(...).apply(fn) where an input is an
Output), so every security-relevant string is unit-tested here without the Pulumi engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from components.bundle_dir import bundle_dir_files
from handlers.proxy_core import (
    CORS_ALLOW_HEADERS,
    CORS_ALLOW_METHODS,
    CORS_EXPOSE_HEADERS,
    CORS_MAX_AGE_S,
    SAGEMAKER_SERVERLESS_MAX_BYTES,
)

# AWS managed CloudFront cache policies (global, stable IDs; see "Use managed cache policies").
CACHING_OPTIMIZED_POLICY_ID = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"

DLC_REPOSITORY = "pytorch-inference"
CONFIG_JS_KEY = "config.js"
INDEX_KEY = "index.html"
INVALIDATION_PATHS = ("/*",)

# Extension -> Content-Type for what the site ships. An unknown extension is an error, not
# application/octet-stream: a mislabelled script or stylesheet silently breaks under nosniff.
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    # Markdown (the photo credits) as plain text: browsers show text/plain inline, while some offer a
    # text/markdown file as a download instead of displaying it.
    ".md": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".webmanifest": "application/manifest+json",
}


class PolicyInputError(ValueError):
    """An input to a pure builder is malformed; the message names the field."""


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def _require(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value or "*" in value:
        raise PolicyInputError(f"{field} must be a non-empty string without wildcards, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------- names/ARNs


def endpoint_log_group_name(endpoint_name: str) -> str:
    """The log group SageMaker writes an endpoint's container logs to (fixed by the service)."""
    return f"/aws/sagemaker/Endpoints/{_require('endpoint_name', endpoint_name)}"


def lambda_log_group_name(function_name: str) -> str:
    return f"/aws/lambda/{_require('function_name', function_name)}"


def api_access_log_group_name(function_name: str) -> str:
    # HTTP API access logs are delivered as vended logs, which CloudWatch Logs authorises through the region's
    # one resource policy (5,120 characters). Names under /aws/vendedlogs/ share a single entry there, so this
    # stack's stage cannot be the one that fills the policy up and fails with "Insufficient permissions".
    return f"/aws/vendedlogs/apigateway/{_require('function_name', function_name)}-access"


def log_group_arn(partition: str, region: str, account_id: str, name: str) -> str:
    return f"arn:{partition}:logs:{region}:{account_id}:log-group:{name}"


def ecr_repository_arn(partition: str, region: str, registry_id: str, repository: str) -> str:
    return f"arn:{partition}:ecr:{region}:{registry_id}:repository/{repository}"


# Everything under it is a model.tar.gz of this stack (the model bucket holds nothing else).
ARTIFACT_PREFIX = "models/"
# Where SageMaker publishes an endpoint's utilisation metrics (AWS/ namespaces are reserved for AWS itself).
ENDPOINT_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"


def s3_prefix_arn(partition: str, bucket: str, prefix: str) -> str:
    """Every object under a key prefix (never the whole bucket: the prefix must name a folder)."""
    if not _require("prefix", prefix).endswith("/") or prefix.startswith("/"):
        raise PolicyInputError(f"prefix must be a folder like 'models/', got {prefix!r}")
    return f"arn:{partition}:s3:::{_require('bucket', bucket)}/{prefix}*"


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL: what CORS and CSP compare against."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PolicyInputError(f"url must be absolute http(s), got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


# ------------------------------------------------------------------------------------------------ IAM


def assume_role_policy(service: str) -> str:
    return _json(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def _log_statement(sid: str, group_arn: str, actions: list[str]) -> dict[str, Any]:
    # The bare group ARN covers group-level calls; ":*" covers its streams.
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": [group_arn, f"{group_arn}:*"]}


def _kms_statement(kms_key_arn: str | None, via_service: str | None = None) -> list[dict[str, Any]]:
    if not kms_key_arn:
        return []
    statement: dict[str, Any] = {
        "Sid": "DecryptWithStackKey",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": kms_key_arn,
    }
    if via_service:  # the key may be used only through that service, never called directly with the role
        statement["Condition"] = {"StringEquals": {"kms:ViaService": via_service}}
    return [statement]


# Each partition's DNS suffix for service endpoints (botocore's partitions.json); aws and aws-us-gov use
# amazonaws.com. A suffix of amazonaws.com in aws-eusc or an ISO partition names no S3 endpoint there, so the key's
# kms:ViaService condition never matched and the endpoint could not decrypt its own model.
PARTITION_DNS_SUFFIXES = {
    "aws-cn": "amazonaws.com.cn",
    "aws-eusc": "amazonaws.eu",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
    "aws-iso-e": "cloud.adc-e.uk",
    "aws-iso-f": "csp.hci.ic.gov",
}


def s3_service_endpoint(partition: str, region: str) -> str:
    """S3's regional endpoint host, the value S3 puts in kms:ViaService when it decrypts for a caller."""
    return f"s3.{region}.{PARTITION_DNS_SUFFIXES.get(partition, 'amazonaws.com')}"


def sagemaker_execution_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    registry_id: str,
    repository: str,
    bucket: str,
    endpoint_name: str,
    kms_key_arn: str | None = None,
) -> str:
    """What the serverless endpoint's container needs, and nothing else.

    The artifact grant covers the stack's own model prefix, not the current key: a serverless endpoint
    downloads its artifact again on every cold start, and while an update rolls out (or rolls back) the previous
    EndpointConfig still starts instances from the previous key, after this policy has moved to the new one.
    """
    statements: list[dict[str, Any]] = [
        # GetAuthorizationToken has no resource-level permissions: "*" is the only valid resource.
        {"Sid": "EcrToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "PullInferenceImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Resource": ecr_repository_arn(partition, region, registry_id, _require("repository", repository)),
        },
        {
            "Sid": "ReadModelArtifact",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": s3_prefix_arn(partition, bucket, ARTIFACT_PREFIX),
        },
        _log_statement(
            "EndpointLogs",
            log_group_arn(partition, region, account_id, endpoint_log_group_name(endpoint_name)),
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
        ),
        # AWS's minimum for a CreateModel execution role includes PutMetricData without saying what uses it; a field
        # report (instance endpoints) says utilisation metrics go missing without it, and MemoryUtilization is the
        # figure to size memorySizeMb by. It has no resource-level permissions: the namespace condition keeps it to
        # the endpoints' own namespace.
        {
            "Sid": "EndpointMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": ENDPOINT_METRICS_NAMESPACE}},
        },
        # The key only encrypts the model bucket: SageMaker reads the artifact through S3.
        *_kms_statement(kms_key_arn, via_service=s3_service_endpoint(partition, region)),
    ]
    return _json({"Version": "2012-10-17", "Statement": statements})


def lambda_execution_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    log_group_name: str,
    endpoint_arn: str,
    kms_key_arn: str | None = None,
) -> str:
    """Logs to its own group and InvokeEndpoint on exactly one endpoint."""
    statements: list[dict[str, Any]] = [
        _log_statement(
            "FunctionLogs",
            log_group_arn(partition, region, account_id, _require("log_group_name", log_group_name)),
            ["logs:CreateLogStream", "logs:PutLogEvents"],
        ),
        {
            "Sid": "InvokeModelEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:InvokeEndpoint",
            "Resource": _require("endpoint_arn", endpoint_arn),
        },
        *_kms_statement(kms_key_arn),
    ]
    return _json({"Version": "2012-10-17", "Statement": statements})


def _deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def private_bucket_policy(bucket_arn: str) -> str:
    """The model bucket: no public grant at all, only TLS access by principals IAM already allows."""
    return _json({"Version": "2012-10-17", "Statement": [_deny_insecure_transport(_require("bucket_arn", bucket_arn))]})


def site_bucket_policy(bucket_arn: str, distribution_arn: str) -> str:
    """Reads of site objects by CloudFront on behalf of this one distribution (OAC), over TLS only."""
    bucket_arn = _require("bucket_arn", bucket_arn)
    return _json(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CloudFrontReadsSite",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                    "Action": "s3:GetObject",
                    "Resource": f"{bucket_arn}/*",
                    "Condition": {"StringEquals": {"AWS:SourceArn": _require("distribution_arn", distribution_arn)}},
                },
                _deny_insecure_transport(bucket_arn),
            ],
        }
    )


def invoke_permission_source_arn(execution_arn: str) -> str:
    """Only POST /predict on any stage of this one API may invoke the function."""
    return f"{_require('execution_arn', execution_arn)}/*/POST/predict"


# ------------------------------------------------------------------------------------- web security

# Powerful features the page never uses, each with an empty allowlist, so that not even the site's own origin may
# use them: script that got past the CSP, or a future dependency, cannot turn on the camera or ask for a payment.
# The page needs none of them: a file input (with or without `capture`), drag and drop, paste (the event's
# clipboardData, not navigator.clipboard), fetch, canvas and createImageBitmap are not gated by Permissions-Policy.
# Only names Chromium recognises: an unknown one logs a warning on every page load.
PERMISSIONS_POLICY_DENIED = (
    "accelerometer",
    "autoplay",
    "browsing-topics",
    "camera",
    "clipboard-read",
    "clipboard-write",
    "display-capture",
    "encrypted-media",
    "fullscreen",
    "gamepad",
    "geolocation",
    "gyroscope",
    "hid",
    "identity-credentials-get",
    "idle-detection",
    "local-fonts",
    "magnetometer",
    "microphone",
    "midi",
    "otp-credentials",
    "payment",
    "picture-in-picture",
    "publickey-credentials-create",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "window-management",
    "xr-spatial-tracking",
)
# The Permissions-Policy header both the CDN (a custom header of the response headers policy, which has no field
# for it) and the local stack send.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in PERMISSIONS_POLICY_DENIED)
# The page opens no window and needs no handle on the one that opened it (no popup, OAuth or payment flow), so it
# shares a browsing context group with no other origin: a page that opens it keeps no reference to it (no
# reverse tab-nabbing, no counting its frames). Browsers ignore it on an origin that is not potentially trustworthy
# (plain http other than loopback), where Chromium logs an error on every load: the local stack sends it only where
# it counts.
CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# The site's files are loaded only by its own pages (index.html, config.js, script.js, style.css, samples/*), so no
# other site may pull them in as no-cors subresources (<img>, <script>). It gates no-cors loads only, not a
# CORS-mode fetch(), and the API's answers (from API Gateway, not CloudFront) do not carry it.
CROSS_ORIGIN_RESOURCE_POLICY = "same-origin"


def content_security_policy(api_url: str, site_origin: str | None = None) -> str:
    """CSP for the UI: everything same-origin except fetch() to the API origin.

    An API on the site's own origin is `'self'`: CSP has no syntax for IPv6 literals, so a stack reached at
    http://[::1]:8000 could not name itself, and browsers would drop the source and block every fetch.
    """
    api_origin = origin_of(api_url)
    directives = [
        ("default-src", "'self'"),
        ("img-src", "'self' data: blob:"),
        ("connect-src", "'self'" if site_origin is not None and api_origin == origin_of(site_origin) else api_origin),
        ("style-src", "'self'"),
        ("script-src", "'self'"),
        ("frame-ancestors", "'none'"),
        ("base-uri", "'self'"),
        ("form-action", "'self'"),
        ("object-src", "'none'"),
    ]
    return "; ".join(f"{name} {value}" for name, value in directives)


def cors_allowed_origins(site_origins: Iterable[str], extra_origins: Iterable[str]) -> list[str]:
    """The site's own origin(s) first, then configured extras, without duplicates or wildcards."""
    out: list[str] = []
    for origin in [*site_origins, *extra_origins]:
        if not origin or "*" in origin or origin != origin_of(origin):
            raise PolicyInputError(f"allowed origin must be scheme://host[:port], got {origin!r}")
        if origin not in out:
            out.append(origin)
    return out


def site_origins(distribution_domain: str, custom_domain: str | None) -> list[str]:
    origins = [f"https://{_require('distribution_domain', distribution_domain)}"]
    if custom_domain:
        origins.insert(0, f"https://{custom_domain}")
    return origins


def access_log_format() -> str:
    """API Gateway HTTP API access log line: one JSON object of $context variables."""
    fields = {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "integrationErrorMessage": "$context.integrationErrorMessage",
        "integrationLatency": "$context.integrationLatency",
        # Lambda's request id for the invocation (its x-amzn-RequestId): a crashed, timed-out or out-of-memory function
        # leaves only Lambda's own lines ("RequestId: ... Error: Runtime exited"), which name that id, not this one.
        "integrationRequestId": "$context.integration.requestId",
    }
    return json.dumps(fields, separators=(",", ":"))


# ----------------------------------------------------------------------------------- site content


def content_type_for(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in CONTENT_TYPES:
        raise PolicyInputError(
            f"www file {path!r} has no known content type (extension {suffix!r}); "
            f"known: {', '.join(sorted(CONTENT_TYPES))}"
        )
    return CONTENT_TYPES[suffix]


def site_files(www_dir: Path) -> dict[str, Path]:
    """Every file to upload, keyed by its S3 key (posix relative path), sorted.

    A config.js left in www/ by the local stack is skipped: the deployed one is rendered from the API
    URL. Dotfiles (editor droppings, .DS_Store) are never published, and a symlink that leaves www/ is an
    error (components/bundle_dir.py): it would publish whatever it points at.
    """
    if not www_dir.is_dir():
        raise PolicyInputError(f"www_dir {www_dir} is not a directory")
    files = bundle_dir_files(www_dir, lambda parts: parts == (CONFIG_JS_KEY,), PolicyInputError)
    if INDEX_KEY not in files:  # the distribution's default root object: without it / is an S3 AccessDenied page
        raise PolicyInputError(f"www_dir {www_dir} has no {INDEX_KEY}, the page the site serves at /")
    for rel in files:
        content_type_for(rel)  # fail at program time, not as a broken page
    return files


def site_content_hash(files: Mapping[str, bytes], config_js: str) -> str:
    """sha256 over every (key, headers, bytes) of the site plus the rendered config.js.

    The Content-Type and Cache-Control each file is uploaded with are part of it: edge caches keep a file's old
    headers as well as its old bytes, so a changed header alone needs the invalidation too. (config.js is never
    cached at the edge.) Lengths are framed in so that moving bytes between fields cannot collide.
    """
    digest = hashlib.sha256()
    entries = {key: (f"{content_type_for(key)}\n{cache_control_for(key)}", data) for key, data in files.items()}
    entries[CONFIG_JS_KEY] = ("", config_js.encode("utf-8"))
    for key in sorted(entries):
        headers, data = entries[key]
        for field in (key.encode("utf-8"), headers.encode("utf-8"), data):
            digest.update(len(field).to_bytes(8, "big") + field)
    return digest.hexdigest()


def read_site_files(files: Mapping[str, Path]) -> dict[str, bytes]:
    """Each file's bytes; one the deployer cannot read (or that went away since site_files) is a PolicyInputError
    naming it, which stops `pulumi up` in one line rather than a PermissionError's traceback."""
    contents = {}
    for key, path in files.items():
        try:
            contents[key] = path.read_bytes()
        except OSError as exc:
            raise PolicyInputError(f"www file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    return contents


# ------------------------------------------------------------------------------------------ model


class ArtifactMissingError(FileNotFoundError):
    """The model artifact has not been built."""


def read_to_the_end(tar: tarfile.TarFile) -> None:
    """Read what is left of a tar's compressed stream. gzip checks its CRC and length only at the end of the stream,
    past the end-of-archive blocks where tarfile stops: bytes overwritten in place mostly decode to other bytes, and
    8 bytes overwritten at random passed the walk of every header 190 times in 200. A bad CRC raises BadGzipFile."""
    while tar.fileobj.read(1 << 20):
        pass


def check_artifact(path: Path, built_by_make: Path | None = None, built_from: Path | None = None) -> None:
    """What modelArtifact names is a whole tar.gz, as `make model` writes: a directory failed as "does not exist", and
    any other file (modelArtifact: README.md, `gzip README.md`, a copy cut short or corrupted in place) was uploaded as
    the model, for the endpoint to fail minutes into `pulumi up`. The local stack refuses them all before it serves.

    built_by_make: the file `make model` writes. Only when that one is missing is "run `make model`" the fix: any other
    missing path (a typo in modelArtifact pointing at a kept deployed.tar.gz) was told to run it, which builds a new
    model elsewhere and leaves the setting as wrong as it was.

    built_from: the checkout's model/code/inference.py, which built_by_make must hold (see stale_artifact): after an
    edit, `pulumi up` without `make model` deployed the old code without a word. Any other path is the user's own.

    A path the system cannot read (permission denied, a name too long, a NUL byte) is a PolicyInputError naming
    modelArtifact too: `pulumi up` showed such an OSError or ValueError as a Python traceback."""
    try:
        _check_artifact(path, built_by_make, built_from)
    except (ArtifactMissingError, PolicyInputError):
        raise
    except (OSError, ValueError) as e:  # os.stat() raises ValueError for a NUL byte
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise PolicyInputError(
            f"model artifact {path} cannot be read ({why}): set modelArtifact to a model.tar.gz this user can read"
        ) from e


def _check_artifact(path: Path, built_by_make: Path | None, built_from: Path | None) -> None:
    if path.is_dir():
        raise PolicyInputError(f"model artifact {path} is a directory: set modelArtifact to the model.tar.gz in it")
    if not path.is_file():
        if built_by_make is not None and not same_path(path, built_by_make):
            raise ArtifactMissingError(
                f"model artifact {path} does not exist: set modelArtifact to an existing model.tar.gz "
                f"(`make model` builds {built_by_make})"
            )
        return  # file_sha256 says it does not exist, and to run `make model`
    with path.open("rb") as f:
        if f.read(2) != b"\x1f\x8b":
            raise PolicyInputError(
                f"model artifact {path} is not a tar.gz archive: set modelArtifact to the file `make model` builds"
            )
    # Every header read, to the end-of-archive blocks: a gzip of anything else or a truncated copy fails here.
    try:
        with tarfile.open(path, "r:gz") as tar:
            for _member in tar:
                pass
            read_to_the_end(tar)
    # A truncated gzip raises EOFError, a corrupt one zlib.error: neither is an OSError or a TarError.
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise PolicyInputError(
            f"model artifact {path} is not a whole tar.gz archive ({' '.join(str(e).split())}): set modelArtifact to "
            "the file `make model` builds, or build it again"
        ) from e
    if built_from is not None and built_by_make is not None and same_path(path, built_by_make):
        stale = stale_artifact_reason(path, built_from)
        if stale is not None:
            raise PolicyInputError(stale)


# What `make model` copies into the artifact from model/code/inference.py, and where it records an int8 build
# ("precision"; the .inputs stamp beside it holds only a hash).
PACKED_CODE = "code/inference.py"
PACKED_METADATA = "metadata.json"
STALE_CHECK_MEMBERS = (PACKED_CODE, PACKED_METADATA)


def code_is_stale(packed_code: bytes | None, checkout_code: Path) -> bool:
    """Whether the artifact `make model` writes holds another code/inference.py than the checkout's. One without it
    (a stand-in of the tests) and a checkout without model/code (nothing to build it from) have nothing to compare.
    Only inference.py: the rest of the artifact changes with the weights and options of a build, which the artifact
    cannot be checked against here (`make model` judges them by its .inputs stamp)."""
    if packed_code is None:
        return False
    try:
        return packed_code != checkout_code.read_bytes()
    except OSError:
        return False


def stale_artifact(artifact: Path, checkout_code: Path, metadata: bytes | None) -> str:
    """The one line that refuses a stale artifact: both files, and the build that brings it up to date (INT8=1 for
    an int8 one: a plain `make model` would swap in the fp32 graph as well)."""
    try:
        int8 = json.loads(metadata or b"{}").get("precision") == "int8"
    except (ValueError, AttributeError):  # a stand-in's metadata.json, or one that is no JSON object
        int8 = False
    return (
        f"model artifact {artifact} was built from another code/inference.py than {checkout_code} holds now: "
        f"run `make model{' INT8=1' if int8 else ''}` to rebuild it"
    )


def stale_artifact_reason(artifact: Path, checkout_code: Path) -> str | None:
    """stale_artifact's line if `artifact`'s code/inference.py is not `checkout_code`'s, else None (`pulumi up`, the
    local stack, the bench): read only up to that member when it matches (the first file in the tarball), on to
    metadata.json for the advice when it does not. A damaged archive is None: what reads it whole says what is wrong
    with it."""
    packed: dict[str, bytes] = {}
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            for member in tar:
                if member.name not in STALE_CHECK_MEMBERS or not member.isfile():
                    continue
                packed[member.name] = tar.extractfile(member).read()
                if PACKED_CODE in packed and not code_is_stale(packed[PACKED_CODE], checkout_code):
                    return None
                if len(packed) == len(STALE_CHECK_MEMBERS):
                    break
    # A truncated gzip raises EOFError, a corrupt one zlib.error.
    except (OSError, EOFError, zlib.error, tarfile.TarError):
        return None
    if not code_is_stale(packed.get(PACKED_CODE), checkout_code):
        return None
    return stale_artifact(artifact, checkout_code, packed.get(PACKED_METADATA))


def same_path(a: Path, b: Path) -> bool:
    """Whether two spellings name one file. os.path.realpath, not Path.resolve(): a symlink loop where model/dist
    should be (`ln -s dist model/dist`) raised RuntimeError from resolve() on Python 3.11 and 3.12, a traceback in
    `pulumi up` though modelArtifact named another file; realpath leaves the looping part as it is."""
    return os.path.realpath(a) == os.path.realpath(b)


def file_sha256(path: Path) -> str:
    if not path.is_file():
        raise ArtifactMissingError(f"model artifact {path} does not exist; run `make model` first")
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def artifact_key(sha256: str) -> str:
    """Content-addressed key: a new artifact is a new object, hence a new Model and EndpointConfig."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise PolicyInputError(f"sha256 must be 64 lower-case hex digits, got {sha256!r}")
    return f"{ARTIFACT_PREFIX}{sha256}/model.tar.gz"


# TorchServe's JVM heap cap. The toolkit starts it with -XX:-UseContainerSupport, so the JVM sizes its default heap
# (a quarter of RAM) from whatever memory the machine reports, not from the endpoint's memory size. The serving
# stack's peak that the recommended memory size rests on (make bench) is measured with this cap.
TORCHSERVE_JAVA_OPTIONS = "-Xmx512m"

# TorchServe settings by environment (its config has enable_envvars_config=true, and TS_* env wins over the file).
# Workers: the DLC's entrypoint (torchserve-entrypoint.py) overwrites SAGEMAKER_MODEL_SERVER_WORKERS with the CPU
# count, so only TS_DEFAULT_WORKERS_PER_MODEL holds it at one. Response timeout: the toolkit (2.0.25) appends
# default_response_timeout=60 to its default-ts.properties, whose last line has no newline, so TorchServe reads
# "enable_model_api=truedefault_response_timeout=60" and keeps its own 120 s: a request that SageMaker gave up on
# at 60 s would hold the only worker (and every request queued behind it) for another minute before TorchServe
# restarts it.
TORCHSERVE_ENV = {"TS_DEFAULT_WORKERS_PER_MODEL": "1", "TS_DEFAULT_RESPONSE_TIMEOUT": "60"}


def sagemaker_container_env(region: str) -> dict[str, str]:
    """Environment for the PyTorch DLC's sagemaker-inference toolkit.

    One worker: a serverless endpoint's memory is shared by all TorchServe workers, and every extra
    worker holds its own copy of the model. OMP_NUM_THREADS is left unset: vCPUs scale with the
    configured memory and torch already sizes its pool to the vCPUs the microVM exposes.
    """
    return {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": _require("region", region),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        **TORCHSERVE_ENV,
        "JAVA_TOOL_OPTIONS": TORCHSERVE_JAVA_OPTIONS,
    }


# The proxy function's handler and runtime: the component deploys them, the local stack's sandboxes name them in the
# variables Lambda defines for every function.
LAMBDA_HANDLER = "handlers.inference_proxy.handler"
LAMBDA_RUNTIME = "python3.13"


def proxy_function_env(
    endpoint_name: str,
    allowed_origins: Iterable[str],
    log_level: str = "INFO",
    metrics_namespace: str = "MobilenetServerless",
) -> dict[str, str]:
    """The Lambda proxy's environment, as handlers.proxy_core.load_config and Powertools read it: one builder for
    the deployed function and the local stack's sandboxes."""
    return {
        "ENDPOINT_NAME": _require("endpoint_name", endpoint_name),
        "ALLOWED_ORIGINS": ",".join(allowed_origins),
        "MAX_IMAGE_BYTES": str(SAGEMAKER_SERVERLESS_MAX_BYTES),
        "POWERTOOLS_SERVICE_NAME": "inference-proxy",
        "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
        "LOG_LEVEL": log_level,
    }


# ----------------------------------------------------------------------------------------- CORS/cache


def http_api_cors(origins: Iterable[str]) -> dict[str, Any]:
    """apigatewayv2 CorsConfiguration (boto3 casing) for the browser's POST /predict.

    API Gateway replaces the function's CORS headers with these, so they must expose what the UI reads.
    """
    allowed = cors_allowed_origins(origins, [])
    if not allowed:
        raise PolicyInputError("origins must name at least one allowed origin")
    return {
        "AllowOrigins": allowed,
        "AllowMethods": list(CORS_ALLOW_METHODS),
        "AllowHeaders": list(CORS_ALLOW_HEADERS),
        "ExposeHeaders": list(CORS_EXPOSE_HEADERS),
        "MaxAge": CORS_MAX_AGE_S,
        "AllowCredentials": False,
    }


# The page's shell: revalidated on every load (a 304 when unchanged), as a fresh index.html beside an hour-old
# script.js or style.css (a deploy that changed them together) would look up elements that are no longer there.
# Told by what a file is served as, with its suffix read as content_type_for reads it (any case): a Script.JS or an
# app.mjs module is JavaScript too, and an hour-old copy of one would break a fresh page just the same.
APP_SHELL_TYPES = frozenset({"text/html", "application/javascript", "text/css"})
APP_SHELL_SUFFIXES = frozenset(s for s, t in CONTENT_TYPES.items() if t.split(";")[0] in APP_SHELL_TYPES)


def cache_control_for(key: str) -> str:
    """The app shell is revalidated on every load so a deploy shows at once, whole; other assets (the sample
    photos) may be reused for an hour."""
    if key == CONFIG_JS_KEY:
        raise PolicyInputError("config.js has its own no-cache policy (site_config.CONFIG_JS_CACHE_CONTROL)")
    return "no-cache" if PurePosixPath(key).suffix.lower() in APP_SHELL_SUFFIXES else "public, max-age=3600"
