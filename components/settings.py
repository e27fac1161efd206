"""Stack settings: one pure validator shared by the Pulumi program and the local stack.

Every bad value is rejected here, before the program declares a single resource, so a typo in
Pulumi.<stack>.yaml costs a second instead of a half-created SageMaker endpoint. Values arrive as the
strings Pulumi config hands out: from the program's config bag (__main__), or from the stack file read the
same way (load_stack_file: each scalar the text the Pulumi CLI hands the program for it, lists as lists). Tests
also pass native ints and bools, so each field is coerced from both.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT = "mobilenet-serverless"
NAMESPACE = f"{PROJECT}:"

MEMORY_SIZES_MB = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY_RANGE = (1, 200)
# HTTP API account defaults are 10,000 rps steady and 5,000 burst (2,500 and 1,250 in 13 newer Regions: API Gateway
# quotas); a stage cannot exceed its account's. These bounds are the larger defaults: AWS does not document whether
# it refuses a stage set above a smaller account limit or holds it to that limit.
THROTTLE_RATE_RANGE = (1, 10_000)
THROTTLE_BURST_RANGE = (1, 5_000)
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")
LAMBDA_ARCHITECTURES = ("arm64", "x86_64")
LAMBDA_MEMORY_RANGE = (128, 10_240)
# The levels the proxy's Powertools logger is given as LOG_LEVEL (upper case, as Lambda's own log-level setting).
PROXY_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# re.ASCII wherever the matched text goes on to AWS as written: \d alone also matches fullwidth or Arabic-Indic digits,
# which no image tag, ARN or region holds, and AWS refused such a value only halfway through `pulumi up`.
# Serverless Inference has no GPUs, so only CPU images of the PyTorch DLC make sense.
_IMAGE_TAG_RE = re.compile(r"^\d+\.\d+(\.\d+)?-cpu-py3\d+([-.][A-Za-z0-9.]+)*\Z", re.ASCII)
# The pytorch-inference repository also holds the EC2/ECS/EKS flavour of each image (2.6.0-cpu-py312-ec2,
# 2.6-cpu-py312-ubuntu22.04-ec2-v1): its Dockerfile stage `ec2` has no sagemaker-pytorch-inference toolkit and
# starts TorchServe with its own entrypoint, so SAGEMAKER_PROGRAM (inference.py) is never loaded and the endpoint
# fails to start. Only the SageMaker flavour (no suffix, or -sagemaker) can serve the artifact.
_EC2_IMAGE_TAG_RE = re.compile(r"-ec2(-|\Z)")
# SageMaker endpoint names: 1..63 chars (the lookahead: the repeat alone would not bound `a--...--b`),
# alphanumerics and single or repeated hyphens inside.
ENDPOINT_NAME_RE = re.compile(r"^(?=.{1,63}\Z)[a-zA-Z0-9](-*[a-zA-Z0-9])*\Z")
# A top-level label is letters, or an internationalised one in its ASCII (punycode) form: .xn--p1ai is .рф.
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{0,58}[a-z0-9])\Z"
)
# CloudFront only accepts ACM certificates from us-east-1, a region of the aws partition.
CERT_ARN_RE = re.compile(r"^arn:aws:acm:us-east-1:\d{12}:certificate/[A-Za-z0-9-]+\Z", re.ASCII)
KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+\Z", re.ASCII)
# An AWS region's code: us-east-1, us-gov-west-1, cn-north-1, eusc-de-east-1.
REGION = r"[a-z]+(?:-[a-z]+)+-\d+"
# An SNS topic: partition, region, account, name (1..256 of [A-Za-z0-9_-]; a FIFO topic's ends in .fifo).
SNS_TOPIC_ARN_RE = re.compile(
    rf"^arn:(?P<partition>aws(?:-[a-z]+)*):sns:(?P<region>{REGION}):\d{{12}}:"
    r"(?P<name>[A-Za-z0-9_-]{1,256}|[A-Za-z0-9_-]{1,251}\.fifo)\Z",
    re.ASCII,
)
REGION_RE = re.compile(rf"^{REGION}\Z", re.ASCII)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Python's "idna" codec is IDNA 2003, which maps these four to other text (faß.de to fass.de, another site), where a
# browser (UTS #46, nontransitional) encodes them (xn--fa-hia.de): for such a host only its xn-- form is taken.
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")  # ß, final sigma, zero-width non-joiner and joiner
# An origin's host, as urlsplit gives it: a name (an FQDN's trailing dot kept) or an IPv4 address, or an IPv6 one.
_ORIGIN_HOST_RE = re.compile(r"^(?:[a-z0-9_-]+\.)*[a-z0-9_-]+\.?\Z|^[0-9a-f.]*:[0-9a-f:.]*\Z", re.ASCII)


class SettingsError(ValueError):
    """A stack setting is missing, unknown or out of range; the message names key and value."""


@dataclass(frozen=True)
class Settings:
    memory_size_mb: int = 2048
    max_concurrency: int = 5
    provisioned_concurrency: int = 0
    inference_image_tag: str = "2.6.0-cpu-py312"
    lambda_architecture: str = "arm64"
    # 256 MB: the proxy decodes nothing (it forwards bytes); a 4 MB image peaks it at ~70 MB RSS
    # (handler + boto3 + Powertools, measured in one process).
    proxy_memory_size_mb: int = 256
    proxy_log_level: str = "INFO"
    api_throttle_rate_limit: int = 10
    api_throttle_burst_limit: int = 20
    cors_extra_origins: tuple[str, ...] = ()
    log_retention_days: int = 14
    price_class: str = "PriceClass_100"
    custom_domain: str | None = None
    certificate_arn: str | None = None
    kms_key_arn: str | None = None
    smoke_check: bool = True
    endpoint_name: str | None = None
    model_artifact: str = "model/dist/model.tar.gz"
    alarms: bool = True
    alarm_topic_arn: str | None = None


# Config key (camelCase, as in Pulumi.<stack>.yaml) -> Settings field.
CONFIG_KEYS: dict[str, str] = {
    "memorySizeMb": "memory_size_mb",
    "maxConcurrency": "max_concurrency",
    "provisionedConcurrency": "provisioned_concurrency",
    "inferenceImageTag": "inference_image_tag",
    "lambdaArchitecture": "lambda_architecture",
    "proxyMemorySizeMb": "proxy_memory_size_mb",
    "proxyLogLevel": "proxy_log_level",
    "apiThrottleRateLimit": "api_throttle_rate_limit",
    "apiThrottleBurstLimit": "api_throttle_burst_limit",
    "corsExtraOrigins": "cors_extra_origins",
    "logRetentionDays": "log_retention_days",
    "priceClass": "price_class",
    "customDomain": "custom_domain",
    "certificateArn": "certificate_arn",
    "kmsKeyArn": "kms_key_arn",
    "smokeCheck": "smoke_check",
    "endpointName": "endpoint_name",
    "modelArtifact": "model_artifact",
    "alarms": "alarms",
    "alarmTopicArn": "alarm_topic_arn",
}


# The partitions other than aws, by their regions' prefix (botocore's partitions.json, regionRegex).
PARTITION_PREFIXES = (
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("eusc-", "aws-eusc"),
    ("us-iso-", "aws-iso"),
    ("us-isob-", "aws-iso-b"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-isof-", "aws-iso-f"),
)


def partition_for_region(region: str) -> str:
    """The AWS partition a region belongs to (China, GovCloud, the European Sovereign Cloud and the ISO regions have
    their own)."""
    return next((partition for prefix, partition in PARTITION_PREFIXES if region.startswith(prefix)), "aws")


def sns_topic_arn_problem(arn: Any, region: str | None = None) -> str | None:
    """Why `arn` cannot take CloudWatch alarm notifications (None when it can): not a topic ARN, a partition its own
    region is not in, a FIFO topic (it delivers to SQS queues only, never to an operator), or, given the stack's
    region, a topic in another one (an alarm notifies topics of its own region)."""
    match = SNS_TOPIC_ARN_RE.match(arn) if isinstance(arn, str) else None
    if match is None:
        return "an SNS topic ARN arn:<partition>:sns:<region>:<account>:<topic>"
    if partition_for_region(match["region"]) != match["partition"]:
        return (
            f"an ARN whose partition is its region's ({match['region']} is in {partition_for_region(match['region'])})"
        )
    if match["name"].endswith(".fifo"):
        return "a standard SNS topic (a FIFO topic delivers to SQS queues only)"
    if region and match["region"] != region:
        return f"an SNS topic in the stack's region {region} (alarms notify topics of their own region)"
    return None


def image_tag_problem(tag: Any) -> str | None:
    """What a pytorch-inference tag must be (None when it can serve on a serverless endpoint): a CPU tag, of the
    SageMaker flavour of the image."""
    if not isinstance(tag, str) or not _IMAGE_TAG_RE.match(tag):
        return "a pytorch-inference CPU tag like 2.6.0-cpu-py312"
    if _EC2_IMAGE_TAG_RE.search(tag):
        return (
            "a SageMaker tag of pytorch-inference (like 2.6.0-cpu-py312 or 2.6.0-cpu-py312-ubuntu22.04-sagemaker), "
            "not an -ec2 one: the EC2 image has no SageMaker serving toolkit"
        )
    return None


def _fail(key: str, value: Any, allowed: str) -> SettingsError:
    return SettingsError(f"{NAMESPACE}{key} = {value!r} is invalid: allowed {allowed}")


def is_count(value: object) -> bool:
    """An int and not a bool: the components' check of a number a program hands them directly (True for a memory size
    or a throttle is a typo, not 1, and 2.5 or "5" would reach AWS or fail in a comparison naming no field)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(key: str, value: Any, allowed: str) -> int:
    if is_count(value):  # not a bool: `true` for a memory size is a typo, not 1
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        try:
            return int(value)
        except ValueError:  # past Python's 4,300-digit limit on int(): no setting's range reaches that far
            raise _fail(key, value, allowed) from None
    raise _fail(key, value, allowed)


def _int_in_range(key: str, value: Any, lo: int, hi: int, bound: str = "") -> int:
    allowed = f"an integer in {lo}..{hi}{bound}"
    number = _as_int(key, value, allowed)
    if not lo <= number <= hi:
        raise _fail(key, value, allowed)
    return number


def _int_choice(key: str, value: Any, choices: tuple[int, ...]) -> int:
    allowed = "one of " + ", ".join(map(str, choices))
    number = _as_int(key, value, allowed)
    if number not in choices:
        raise _fail(key, value, allowed)
    return number


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(key, value, "true or false")


def _as_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(key, value, "one of " + ", ".join(choices))
    return value


def _optional_str(value: Any) -> Any:
    # Pulumi config reports an unset key as None; an empty string in YAML means the same.
    return None if value is None or value == "" else value


def validate_origin(key: str, origin: Any) -> str:
    """An origin is scheme://host[:port] with nothing after it; http only for loopback hosts."""
    if problem := origin_problem(origin):
        raise _fail(key, origin, problem)
    return origin


def origin_problem(origin: Any) -> str | None:
    """What is wrong with `origin` as a CORS origin (validate_origin's rule), as what is allowed; None if nothing."""
    allowed = "https://host[:port] origins (http only for localhost, 127.0.0.1 or [::1]), no path, no wildcard"
    if not isinstance(origin, str) or "*" in origin:
        return allowed
    try:
        parts = urlsplit(origin)  # raises ValueError for a bracket left open, or brackets round no IPv6 address
        parts.port  # noqa: B018 - raises ValueError for a malformed port
        host = parts.hostname
    except ValueError:
        host = None
    if (
        not host
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
        or parts.scheme not in ("https", "http")
        or (parts.scheme == "http" and host not in _LOCAL_HOSTS)
        or parts.port == 0  # no page can be served from port 0, so no browser sends it
        or origin != origin.strip()
    ):
        return allowed
    # CORS (the proxy's and API Gateway's) compares the configured origin with the browser's Origin header, which is
    # always serialized: lower case, an ASCII (punycode) host, no default port. Any other spelling of the same origin
    # is accepted here and deployed, and then never matches: every request from that page fails CORS.
    sent = _serialized_origin(parts.scheme, host, parts.port)
    if sent is None:
        return "a host name of ASCII letters, digits, '-', '_' and '.' (punycode, xn--, for others) or an IP address"
    if origin != sent:
        return f"the origin as a browser sends it, {sent!r} (lower case, punycode, no default port)"
    return None


def _serialized_origin(scheme: str, host: str, port: int | None) -> str | None:
    """scheme://host[:port] as browsers put it in the Origin header (urlsplit has already lower-cased both); None
    for a host that IDNA cannot encode, or that no browser sends: one with a space, a control character or a % in it
    (a browser's URL parser refuses the first two and decodes the third), all of which urlsplit lets through, or a
    number that is no IPv4 address (app.123, 256.1.1.1). An IP address is given as browsers write it."""
    if not host.isascii():
        if _IDNA_DEVIATIONS.intersection(host):
            return None
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not _ORIGIN_HOST_RE.match(host) or (host := _ip_address_as_sent(host)) is None:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _ip_address_as_sent(host: str) -> str | None:
    """`host` as a browser's URL parser (WHATWG URL) writes an IP address, None for one it refuses; a name as it is.

    An IPv6 address in its shortest form, hex only. A host whose last label is a number is an IPv4 address: each part
    decimal, 0x hex or (a leading 0) octal, the last one filling the bytes left, so 192.168.001.010 is 192.168.1.8
    and app.123 no host at all. Any other spelling was deployed and matched no page's Origin."""
    if ":" in host:
        try:
            pieces = struct.unpack("!8H", ipaddress.IPv6Address(host).packed)
        except ValueError:
            return None
        run_start, run_length = 0, 1  # the first longest run of two or more zero pieces becomes "::"
        for start in range(8):
            length = next((n for n in range(8 - start) if pieces[start + n]), 8 - start)
            if length > run_length:
                run_start, run_length = start, length
        hexes = [f"{piece:x}" for piece in pieces]
        if run_length == 1:
            return ":".join(hexes)
        return ":".join(hexes[:run_start]) + "::" + ":".join(hexes[run_start + run_length :])
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # an IPv4 address's trailing dot is dropped (a name's is kept)
    if not (labels[-1].isdigit() or _ipv4_part(labels[-1]) is not None):
        return host
    numbers = [_ipv4_part(label) for label in labels]
    if len(numbers) > 4 or None in numbers:
        return None
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    return str(ipaddress.IPv4Address(sum(n << 8 * (3 - i) for i, n in enumerate(leading)) + last))


def _ipv4_part(label: str) -> int | None:
    """One part of an IPv4 address as WHATWG URL reads it (decimal, 0x hex, 0 octal), None for no number."""
    if label.startswith("0x"):
        radix, digits = 16, label[2:]
    elif len(label) > 1 and label.startswith("0"):
        radix, digits = 8, label[1:]
    else:
        radix, digits = 10, label
    if not label or any(c not in "0123456789abcdef"[:radix] for c in digits):
        return None
    return int(digits, radix) if digits else 0


# The origins reach the proxy in its ALLOWED_ORIGINS variable, and Lambda refuses a function whose environment
# (keys and values together) is over 4 KB: the rest of it, the site's own origin included, takes under 1 KB.
MAX_EXTRA_ORIGINS_CHARS = 3000


def _origins(key: str, value: Any) -> tuple[str, ...]:
    written = value  # errors quote what the user wrote, not the parse of it
    if isinstance(value, str):
        # Pulumi config returns structured values as JSON text.
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:  # not JSON, or a number in it past Python's 4,300-digit limit on int()
            raise _fail(key, value, "a list of origins") from None
    if not isinstance(value, list | tuple):
        raise _fail(key, written, "a list of origins")
    origins = tuple(validate_origin(key, item) for item in value)
    if len(set(origins)) != len(origins):
        raise _fail(key, written, "a list of distinct origins")
    size = len(",".join(origins))
    if size > MAX_EXTRA_ORIGINS_CHARS:
        raise SettingsError(
            f"{NAMESPACE}{key} holds {len(origins)} origins, {size:,} characters; allowed at most "
            f"{MAX_EXTRA_ORIGINS_CHARS:,} in all (they travel in the proxy function's environment, which Lambda "
            "caps at 4 KB)"
        )
    return origins


def validate_settings(raw: Mapping[str, Any], region: Any = None) -> Settings:
    """Validate un-prefixed config keys into Settings; raise SettingsError naming key, value, range.

    region: the stack's aws:region, when known (refused unless a region code); a KMS key must live there (S3 and
    Lambda refuse others), and so must the alarms' SNS topic.
    """
    region = _optional_str(region)
    if region is not None and (not isinstance(region, str) or not REGION_RE.match(region)):
        # The local stack's handler would stop on it (botocore's InvalidRegionError) after the model loads, without
        # naming the setting; the program would pass it on to the AWS provider.
        raise SettingsError(f"aws:region = {region!r} is invalid: allowed an AWS region code like us-east-1")
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise SettingsError(
            f"unknown config key(s) {', '.join(NAMESPACE + k for k in unknown)}; allowed keys: {', '.join(CONFIG_KEYS)}"
        )
    values = {k: v for k, v in raw.items() if _optional_str(v) is not None}
    defaults = Settings()
    out: dict[str, Any] = {}

    def get(key: str) -> Any:
        return values.get(key, getattr(defaults, CONFIG_KEYS[key]))

    out["memory_size_mb"] = _int_choice("memorySizeMb", get("memorySizeMb"), MEMORY_SIZES_MB)
    out["max_concurrency"] = _int_in_range("maxConcurrency", get("maxConcurrency"), *MAX_CONCURRENCY_RANGE)
    out["provisioned_concurrency"] = _int_in_range(  # the top is the stack's, not the service's: say where it is from
        "provisionedConcurrency", get("provisionedConcurrency"), 0, out["max_concurrency"], " (up to maxConcurrency)"
    )

    tag = get("inferenceImageTag")
    if problem := image_tag_problem(tag):
        raise _fail("inferenceImageTag", tag, problem)
    out["inference_image_tag"] = tag
    out["lambda_architecture"] = _as_choice("lambdaArchitecture", get("lambdaArchitecture"), LAMBDA_ARCHITECTURES)
    out["proxy_memory_size_mb"] = _int_in_range("proxyMemorySizeMb", get("proxyMemorySizeMb"), *LAMBDA_MEMORY_RANGE)
    out["proxy_log_level"] = _as_choice("proxyLogLevel", get("proxyLogLevel"), PROXY_LOG_LEVELS)
    out["api_throttle_rate_limit"] = _int_in_range(
        "apiThrottleRateLimit", get("apiThrottleRateLimit"), *THROTTLE_RATE_RANGE
    )
    out["api_throttle_burst_limit"] = _int_in_range(
        "apiThrottleBurstLimit", get("apiThrottleBurstLimit"), *THROTTLE_BURST_RANGE
    )
    out["cors_extra_origins"] = _origins("corsExtraOrigins", get("corsExtraOrigins"))

    out["log_retention_days"] = _int_choice("logRetentionDays", get("logRetentionDays"), LOG_RETENTION_DAYS)
    out["price_class"] = _as_choice("priceClass", get("priceClass"), PRICE_CLASSES)

    domain = values.get("customDomain")
    if domain is not None and (not isinstance(domain, str) or not HOSTNAME_RE.match(domain)):
        raise _fail("customDomain", domain, "a lower-case DNS name like demo.example.com")
    cert = values.get("certificateArn")
    if cert is not None and (not isinstance(cert, str) or not CERT_ARN_RE.match(cert)):
        raise _fail("certificateArn", cert, "an ACM certificate ARN in us-east-1 (CloudFront requires it)")
    if domain is not None and cert is None:
        raise _fail("certificateArn", cert, "a us-east-1 ACM certificate ARN whenever customDomain is set")
    if cert is not None and domain is None:
        raise _fail("customDomain", domain, "a DNS name whenever certificateArn is set")
    out["custom_domain"], out["certificate_arn"] = domain, cert

    kms = values.get("kmsKeyArn")
    if kms is not None and (not isinstance(kms, str) or not KMS_KEY_ARN_RE.match(kms)):
        raise _fail("kmsKeyArn", kms, "a KMS key ARN arn:aws:kms:<region>:<account>:key/<id> (not an alias)")
    if kms is not None and partition_for_region(kms.split(":")[3]) != kms.split(":")[1]:
        key_region = kms.split(":")[3]
        raise _fail(
            "kmsKeyArn",
            kms,
            f"an ARN whose partition is its region's ({key_region} is in {partition_for_region(key_region)})",
        )
    if kms is not None and region and kms.split(":")[3] != region:
        raise _fail("kmsKeyArn", kms, f"a KMS key in the stack's region {region} (S3 and Lambda need one there)")
    out["kms_key_arn"] = kms
    out["smoke_check"] = _as_bool("smokeCheck", get("smokeCheck"))

    name = values.get("endpointName")
    if name is not None and (not isinstance(name, str) or not ENDPOINT_NAME_RE.match(name)):
        raise _fail("endpointName", name, "1..63 chars of [a-zA-Z0-9-], alphanumeric at both ends")
    out["endpoint_name"] = name

    artifact = get("modelArtifact")
    if not isinstance(artifact, str) or not artifact.strip():
        raise _fail("modelArtifact", artifact, "a path to model.tar.gz")
    out["model_artifact"] = artifact

    out["alarms"] = _as_bool("alarms", get("alarms"))
    topic = values.get("alarmTopicArn")
    if topic is not None and (problem := sns_topic_arn_problem(topic, region)):
        raise _fail("alarmTopicArn", topic, problem)
    if topic is not None and not out["alarms"]:
        raise _fail("alarmTopicArn", topic, "unset whenever alarms is false (there are no alarms to notify it)")
    out["alarm_topic_arn"] = topic
    return Settings(**out)


def fit_name(name: str, limit: int) -> str:
    """`name` when it has at most `limit` characters; else its start, a hyphen and 8 hex digits of its sha256.

    A plain cut gave two stacks whose names share their start (per-branch stacks, feature-...-pr-1234 and -1235) one
    endpoint name, and endpoints that differ only past the cut one proxy function: the second `pulumi up` failed on
    names the first stack holds. A name that fits is kept as it is, so no existing stack is renamed.
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return name[: limit - len(digest) - 1].rstrip("-") + "-" + digest


def default_endpoint_name(project: str, stack: str) -> str:
    """A deterministic endpoint name, so the role's log-group ARN is known before the endpoint exists."""
    cleaned = re.sub(r"[^a-zA-Z0-9-]+", "-", f"{project}-{stack}").strip("-")
    cleaned = fit_name(cleaned, 63)
    if not cleaned or not ENDPOINT_NAME_RE.match(cleaned):
        raise SettingsError(f"cannot derive an endpoint name from project {project!r} and stack {stack!r}")
    return cleaned


def strip_namespace(config: Mapping[str, Any], secret_keys: Collection[str] = ()) -> dict[str, Any]:
    """Keep this project's keys of a stack's config (a stack file's `config:` block, or the program's whole
    config bag), without the namespace prefix. All of them, known or not: validate_settings refuses a
    misspelt key (memorySizeMB) instead of letting the default deploy.

    secret_keys: the keys Pulumi marks secret. A stack file holds a secret as {secure: ...}, but the program is
    handed it decrypted, as plain text, and only this list says it was one."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith(NAMESPACE):
            if key in secret_keys or (isinstance(value, Mapping) and "secure" in value):
                raise SettingsError(
                    f"{key} is a Pulumi secret; this program has no secret settings: set it without --secret"
                )
            out[key.removeprefix(NAMESPACE)] = value
    return out


def check_project_namespace(config: Mapping[str, Any], project: str) -> None:
    """Refuse the keys of a project renamed in Pulumi.yaml that sit under its own name: `pulumi config set
    maxConcurrency 10` stores `<project>:maxConcurrency`, and Pulumi.yaml's `config:` block declares its settings
    there too, while this program reads `mobilenet-serverless:<key>` only. Each of them would be ignored, and the
    stack deployed with the default (no KMS key, alarms on, another endpoint name) without a word."""
    if project == PROJECT:
        return
    own = sorted(key for key in config if key.startswith(f"{project}:"))
    if own:
        shown = ", ".join(own[:5]) + (f" and {len(own) - 5} more" if len(own) > 5 else "")
        raise SettingsError(
            f"Pulumi.yaml names this project {project!r}, and this program reads its settings only as "
            f"{NAMESPACE}<key>: {shown} would be ignored. Keep `name: {PROJECT}` in Pulumi.yaml (stacks of one "
            f"account need only distinct stack names), or set each setting as {NAMESPACE}<key> "
            f"(`pulumi config set {NAMESPACE}maxConcurrency 10`) and take the settings out of Pulumi.yaml's `config:`"
        )


# How the Pulumi CLI reads a plain (unquoted) scalar of a stack file: gopkg.in/yaml.v2, YAML 1.1's resolution
# (sdk/go/common/encoding/marshal.go, yaml.v2 resolve.go), after which config.Value re-writes a number or a boolean
# as JSON text (sdk/go/common/resource/config/object.go, MarshalString). A quoted scalar stays the text written.
_CLI_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_CLI_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_CLI_FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_CLI_NOT_FINITE = frozenset(
    {".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"}
)
# Go's strconv.ParseInt(s, 0, 64): a 0x, 0o or 0b prefix, or a leading 0 for octal (017 is 15).
_CLI_INT_RE = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)\Z", re.ASCII)
_CLI_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z", re.ASCII)
_CLI_DOT_FLOAT_RE = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?\Z", re.ASCII)


def cli_scalar_text(plain: str) -> str | None:
    """The text `pulumi up` hands the program for a plain (unquoted) scalar of a stack file; None for a null, which
    the CLI hands over as "" (both unset to validate_settings). A ValueError for .inf or .nan, which the CLI cannot
    load at all (JSON has no infinity).

    YAML 1.1 as yaml.v2 reads it, re-written as JSON: 12345 is "12345" but 1.10 is "1.1", 1e3 and 1_000 are "1000",
    8.0 is "8", 0x10 is "16", 010 is "8", yes and on are "true"."""
    if plain in _CLI_NULLS:
        return None
    if plain in _CLI_TRUE or plain in _CLI_FALSE:
        return "true" if plain in _CLI_TRUE else "false"
    if plain in _CLI_NOT_FINITE:
        raise ValueError(f"{plain} is a YAML float the Pulumi CLI cannot read (JSON has no infinity or NaN)")
    number: int | float | None = None
    if plain.startswith("."):
        number = float(plain) if _CLI_DOT_FLOAT_RE.match(plain) else None
    elif plain[:1] in "+-0123456789":
        digits = plain.replace("_", "")
        number = _cli_int(digits)
        if number is None and _CLI_FLOAT_RE.match(digits):
            number = float(digits)
    if number is None or (isinstance(number, float) and not math.isfinite(number)):  # past float64: Go keeps text
        return plain
    return str(number) if isinstance(number, int) else _json_float(number)


def _cli_int(digits: str) -> int | None:
    match = _CLI_INT_RE.match(digits)
    if match is None:
        return None
    sign, body = match.groups()
    value = int(body, 8 if body[:1] == "0" and body[1:2].isdigit() else 0)  # Python's base 0 refuses 017
    value = -value if sign == "-" else value
    # An int64 (ParseInt), else an unsigned one written without a sign (ParseUint), else not an integer to yaml.v2.
    return value if -(2**63) <= value < 2**63 or (not sign and value < 2**64) else None


def _json_float(number: float) -> str:
    """A float64 as Go's encoding/json writes it: shortest digits, an exponent only below 1e-6 or from 1e21 on.
    Zero is "0": yaml.v2 writes -0.0 back as -0, which it then reads as the integer 0."""
    if number == 0:
        return "0"
    if not 1e-6 <= abs(number) < 1e21:
        text = repr(number)
        return text[:-2] + text[-1] if text[-4:-1] == "e-0" else text  # Go writes e-07 as e-7
    return format(Decimal(repr(number)).normalize(), "f")


def _pulumi_config_loader() -> type:
    import yaml

    plain_tag = "tag:mobilenet-serverless:cli-plain"

    class Loader(yaml.SafeLoader):
        """Each plain scalar becomes the text the Pulumi CLI hands the program for it (cli_scalar_text), so that
        `make demo` reads a stack file as `pulumi up` does: `endpointName: 12345` is the name "12345", not an int
        refused as a non-name, and `alarms: yes` is true. Explicit tags (!!int 5) stay the text written."""

        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is yaml.ScalarNode and implicit[0] and value != "<<":  # << stays YAML's merge key
                return plain_tag
            return super().resolve(kind, value, implicit)

    def construct_plain(loader: Any, node: Any) -> str | None:
        try:
            return cli_scalar_text(node.value)
        except ValueError as e:  # read_stack_config names the file
            mark = node.start_mark
            raise SettingsError(f"line {mark.line + 1}, column {mark.column + 1}: {e}") from None

    Loader.add_constructor(plain_tag, construct_plain)
    for tag in ("bool", "int", "float", "timestamp"):
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", yaml.SafeLoader.construct_scalar)
    return Loader


def read_stack_config(path: str | Path) -> Mapping[str, Any]:
    """The `config:` block of a Pulumi.<stack>.yaml, each scalar the text the Pulumi CLI hands the program for it;
    a SettingsError for a file that is not such a YAML mapping, an OSError for one that cannot be read."""
    import yaml  # deferred: only the local stack and tests read YAML stack files

    try:
        text = Path(path).read_text(encoding="utf-8")
        document = yaml.load(text, Loader=_pulumi_config_loader()) or {}  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as e:
        raise SettingsError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except SettingsError as e:  # a value the CLI cannot read
        raise SettingsError(f"{path}: {e}") from e
    except yaml.YAMLError as e:  # a tab, an unclosed bracket: one line saying where, not the parser's traceback
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SettingsError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from e
    if not isinstance(document, Mapping):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError(f"{path}: `config:` must be a mapping")
    if not all(isinstance(key, str) for key in config):
        raise SettingsError(f"{path}: every key under `config:` must be text, like mobilenet-serverless:maxConcurrency")
    return config


# Go's Atoi: ASCII digits after an optional sign, leading zeros any number of them (past 18 characters it is
# ParseInt, which takes "00000000000000000007" as 7); the significant digits, captured, are what int() is given.
_ATOI_RE = re.compile(r"([+-]?)0*([0-9]{1,19})\Z", re.ASCII)


def cli_type_problem(key: str, value: Any) -> str | None:
    """What `pulumi up` requires of a stack file's value for `key` (as read_stack_config gives it) before the program
    runs; None when the value has it. The CLI checks each value against the type Pulumi.yaml declares for the key
    (its Settings default's type; sdk/go/common/workspace/project.go, ValidateConfigValue): an integer is text Go's
    Atoi parses (ASCII digits, an optional sign, no space), a boolean exactly true or false, an array a YAML list of
    strings. A key left empty or null is "" to the CLI (workspace/loaders.go), which only a string key takes."""
    default = getattr(Settings(), CONFIG_KEYS[key])
    if isinstance(default, bool):
        if value in ("true", "false"):
            return None
        kind = "true or false (a boolean; quoted, only in lower case)"
    elif isinstance(default, int):
        atoi = _ATOI_RE.match(value) if isinstance(value, str) else None
        if atoi and -(2**63) <= int(atoi[1] + atoi[2]) < 2**63:
            return None
        kind = "an integer in ASCII digits"
    elif isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return None
        kind = "a YAML list of strings"
    elif value is None or isinstance(value, str):
        return None
    else:
        kind = "text"
    return f"{kind}, the type Pulumi.yaml gives the key (`pulumi up` refuses anything else, a key left empty included)"


def load_stack_file(path: str | Path) -> Settings:
    """Read a Pulumi.<stack>.yaml without the Pulumi CLI, refuse what the CLI refuses, and validate the rest like the
    program does."""
    config = read_stack_config(path)
    raw = strip_namespace(config)
    for key, value in raw.items():
        if key in CONFIG_KEYS and (problem := cli_type_problem(key, value)):
            raise _fail(key, "" if value is None else value, problem)  # the CLI reads a null as ""
    return validate_settings(raw, region=config.get("aws:region"))


def function_name_for(endpoint_name: str) -> str:
    """The proxy Lambda's name: the endpoint's, suffixed, within Lambda's 64-character limit (fit_name: two endpoints
    never share one)."""
    suffix = "-proxy"
    return fit_name(endpoint_name, 64 - len(suffix)) + suffix
