"""components/settings.py: defaults, coercion from Pulumi's strings, and every rejection message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components.policies import cors_allowed_origins, proxy_function_env, site_origins
from components.settings import (
    CONFIG_KEYS,
    ENDPOINT_NAME_RE,
    LOG_RETENTION_DAYS,
    MAX_CONCURRENCY_RANGE,
    MAX_EXTRA_ORIGINS_CHARS,
    MEMORY_SIZES_MB,
    Settings,
    SettingsError,
    check_project_namespace,
    cli_scalar_text,
    default_endpoint_name,
    function_name_for,
    is_count,
    load_stack_file,
    validate_settings,
)
from tests.infra.conftest import ROOT

CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-1111-2222-333344445555"
KMS = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_empty_config_gives_documented_defaults() -> None:
    assert validate_settings({}) == Settings(
        memory_size_mb=2048,
        max_concurrency=5,
        provisioned_concurrency=0,
        inference_image_tag="2.6.0-cpu-py312",
        lambda_architecture="arm64",
        proxy_memory_size_mb=256,
        proxy_log_level="INFO",
        api_throttle_rate_limit=10,
        api_throttle_burst_limit=20,
        cors_extra_origins=(),
        log_retention_days=14,
        price_class="PriceClass_100",
        custom_domain=None,
        certificate_arn=None,
        kms_key_arn=None,
        smoke_check=True,
        endpoint_name=None,
        model_artifact="model/dist/model.tar.gz",
        alarms=True,
        alarm_topic_arn=None,
    )


def test_pulumi_config_strings_are_coerced() -> None:
    # pulumi.Config().get returns text; arrays arrive as JSON.
    settings = validate_settings(
        {
            "memorySizeMb": "4096",
            "maxConcurrency": "10",
            "provisionedConcurrency": "2",
            "smokeCheck": "false",
            "corsExtraOrigins": '["https://app.example.com", "http://localhost:8000"]',
            "logRetentionDays": "30",
            "proxyMemorySizeMb": "1024",
            "customDomain": None,  # unset keys come back as None
        }
    )
    assert settings.proxy_memory_size_mb == 1024
    assert (settings.memory_size_mb, settings.max_concurrency, settings.provisioned_concurrency) == (4096, 10, 2)
    assert settings.smoke_check is False
    assert settings.cors_extra_origins == ("https://app.example.com", "http://localhost:8000")
    assert settings.log_retention_days == 30


def test_blank_cors_origins_text_is_no_extra_origins() -> None:
    # `pulumi config set corsExtraOrigins " "` hands over blank text, as an unset array is empty.
    assert validate_settings({"corsExtraOrigins": " \n"}).cors_extra_origins == ()


@pytest.mark.parametrize(
    "text", ['{"origin": "https://a.example.com"}', '["https://a.example.com", "https://a.example.com"]']
)
def test_a_cors_origins_error_quotes_the_json_text_as_written(text: str) -> None:
    # Pulumi hands a structured value over as JSON text; the error shows that text, not Python's repr of its parse.
    with pytest.raises(SettingsError, match="corsExtraOrigins = " + re.escape(repr(text))):
        validate_settings({"corsExtraOrigins": text})


@pytest.mark.parametrize(("text", "expected"), [("True", True), ("TRUE", True), (" true ", True), ("False", False)])
def test_boolean_strings_are_case_insensitive(text: str, expected: bool) -> None:
    assert validate_settings({"smokeCheck": text}).smoke_check is expected


def test_loopback_origins_may_use_http() -> None:
    origins = ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"]
    assert validate_settings({"corsExtraOrigins": origins}).cors_extra_origins == tuple(origins)


def test_origins_spelt_as_browsers_send_them_are_accepted() -> None:
    origins = [
        "https://app.example.com:8443",
        "https://xn--bcher-kva.example",
        "https://classify.example.com",
        "https://app.example.com.",  # a fully qualified name keeps its dot in the Origin
        "https://my_app.internal",
        "https://192.168.1.10:8443",
        "https://[2001:db8::1]:8443",
        "https://[::ffff:c000:201]",
        "https://[2001:db8:0:1:1:1:1:1]",  # one zero piece is not shortened
        "https://10.1.2.3x.example",  # a last label that is no number: a name
        "https://192.168.255.1",  # 255 is a part of an address, not past one
        "https://[2001:db8:1:2:3:4:5:6]",  # no zero piece: no "::" at all
        "https://[2001:db8::]",  # a run of zero pieces to the end: "::" last
    ]
    assert validate_settings({"corsExtraOrigins": origins}).cors_extra_origins == tuple(origins)


def test_the_most_cors_origins_allowed_still_fit_lambdas_4_kb_environment() -> None:
    """The extras travel in the proxy's ALLOWED_ORIGINS beside the site's own origins, and Lambda refuses an
    environment over 4 KB (keys and values): the largest list accepted must fit with the longest of everything else."""
    extras = [f"https://app{i:03d}-{'a' * 40}.example.com" for i in range(200)]
    while len(",".join(extras)) > MAX_EXTRA_ORIGINS_CHARS:
        extras.pop()
    accepted = validate_settings({"corsExtraOrigins": extras}).cors_extra_origins
    site = site_origins("d" * 14 + ".cloudfront.net", ".".join(["a" * 63] * 3) + "." + "b" * 61)  # a 253-char domain
    env = proxy_function_env("e" * 63, cors_allowed_origins(site, accepted), "WARNING")
    assert sum(len(k) + len(v.encode()) for k, v in env.items()) <= 4096
    with pytest.raises(SettingsError, match=r"corsExtraOrigins holds \d+ origins, 3,0\d\d characters; allowed at most"):
        validate_settings({"corsExtraOrigins": [*extras, "https://one-more.example.com"]})


def test_cors_origins_of_exactly_the_limit_are_accepted() -> None:
    # "allowed at most 3,000 in all": 3,000 characters pass, 3,001 do not.
    extras = [f"https://o{i:02d}-{'a' * 50}.example.com" for i in range(40)]
    fits = [*extras[:-1], extras[-1].replace("-a", "-aa", 1)]
    assert len(",".join(fits)) == MAX_EXTRA_ORIGINS_CHARS == 3000
    assert validate_settings({"corsExtraOrigins": fits}).cors_extra_origins == tuple(fits)
    over = [*extras[:-1], extras[-1].replace("-a", "-aaa", 1)]
    with pytest.raises(SettingsError, match=r"holds 40 origins, 3,001 characters; allowed at most 3,000"):
        validate_settings({"corsExtraOrigins": over})


def test_prod_like_config_is_accepted() -> None:
    settings = validate_settings(
        {
            "memorySizeMb": 6144,
            "maxConcurrency": 200,
            "provisionedConcurrency": 200,
            "inferenceImageTag": "2.5.1-cpu-py311-ubuntu22.04-sagemaker",
            "lambdaArchitecture": "x86_64",
            "proxyMemorySizeMb": 10240,
            "proxyLogLevel": "DEBUG",
            "apiThrottleRateLimit": 10000,
            "apiThrottleBurstLimit": 5000,
            "priceClass": "PriceClass_All",
            "customDomain": "classify.example.com",
            "certificateArn": CERT,
            "kmsKeyArn": KMS,
            "smokeCheck": False,
            "endpointName": "mobilenet-prod",
            "logRetentionDays": 3653,
            "alarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops-alerts",
        }
    )
    assert settings.custom_domain == "classify.example.com"
    assert settings.certificate_arn == CERT
    assert settings.kms_key_arn == KMS
    assert settings.endpoint_name == "mobilenet-prod"
    assert settings.alarm_topic_arn == "arn:aws:sns:eu-west-1:123456789012:ops-alerts"
    assert (settings.proxy_memory_size_mb, settings.proxy_log_level) == (10240, "DEBUG")


@pytest.mark.parametrize(
    "tag",
    # The four SageMaker tags the PyTorch 2.6 CPU inference release publishes (its release notes' image URIs).
    [
        "2.6.0-cpu-py312",
        "2.6-cpu-py312",
        "2.6.0-cpu-py312-ubuntu22.04-sagemaker",
        "2.6-cpu-py312-ubuntu22.04-sagemaker-v1",
    ],
)
def test_every_sagemaker_tag_of_the_inference_image_is_accepted(tag: str) -> None:
    assert validate_settings({"inferenceImageTag": tag}).inference_image_tag == tag


def test_the_endpoint_and_log_limits_are_those_aws_api_models_declare() -> None:
    """The memory sizes, MaxConcurrency range and retention days that the settings and ServerlessEndpointArgs accept
    are the SageMaker and CloudWatch Logs APIs' own (botocore's models of them): 731 days (two years) written as 730
    passed every test here (README's table, a copy, alone disagreed), and CloudWatch would refuse the log groups."""
    import botocore.session

    session = botocore.session.get_session()
    serverless = session.get_service_model("sagemaker").shape_for("ProductionVariantServerlessConfig").members
    memory, concurrency = serverless["MemorySizeInMB"], serverless["MaxConcurrency"]
    assert "in 1 GB increments" in memory.documentation
    assert tuple(range(memory.metadata["min"], memory.metadata["max"] + 1, 1024)) == MEMORY_SIZES_MB
    assert (concurrency.metadata["min"], concurrency.metadata["max"]) == MAX_CONCURRENCY_RANGE
    days = session.get_service_model("logs").shape_for("Days").documentation
    listed = re.search(r"Possible values are: ([0-9, and]+)\.", days)
    assert listed is not None, days
    assert tuple(int(value) for value in re.findall(r"[0-9]+", listed.group(1))) == LOG_RETENTION_DAYS


def test_proxy_memory_bounds_are_lambdas_own() -> None:
    assert validate_settings({"proxyMemorySizeMb": 128}).proxy_memory_size_mb == 128
    assert validate_settings({"proxyMemorySizeMb": 10240}).proxy_memory_size_mb == 10240


INVALID = [
    ("memorySizeMb", 1000, "one of 1024, 2048, 3072, 4096, 5120, 6144"),
    ("memorySizeMb", 7168, "one of 1024"),
    ("memorySizeMb", "2gb", "one of 1024"),
    ("memorySizeMb", True, "one of 1024"),
    ("maxConcurrency", 0, "an integer in 1..200"),
    ("maxConcurrency", 201, "an integer in 1..200"),
    ("maxConcurrency", 2.5, "an integer in 1..200"),
    ("maxConcurrency", True, "an integer in 1..200"),  # YAML `yes`/`true` is a typo, not 1
    ("maxConcurrency", "+-5", "an integer in 1..200"),
    ("maxConcurrency", "9" * 5000, "an integer in 1..200"),  # past int()'s digit limit: was its ValueError traceback
    ("maxConcurrency", "1_0", "an integer in 1..200"),  # int() reads it as 10; Go's Atoi (the CLI) refuses it
    ("provisionedConcurrency", -1, "an integer in 0..5"),
    ("provisionedConcurrency", 6, "an integer in 0..5"),
    ("inferenceImageTag", "2.6.0-gpu-py312-cu124", "CPU tag"),
    ("inferenceImageTag", "latest", "CPU tag"),
    ("inferenceImageTag", 2.6, "CPU tag"),  # a native value of another type: refused naming it, not a TypeError
    ("inferenceImageTag", "2.6.0-cpu-py312\n", "CPU tag"),  # `$` would pass it on into the image URI
    ("inferenceImageTag", "2.6.0-cpu-py312-x/y:latest", "CPU tag"),  # another repository's image in the URI
    ("inferenceImageTag", "1.4.0-cpu-py27", "CPU tag"),  # a Python 2 image cannot run inference.py
    ("inferenceImageTag", "2.6.0-cpu-py3", "CPU tag"),  # no minor Python version: no such image
    ("inferenceImageTag", "２.６.０-cpu-py312", "CPU tag"),  # fullwidth digits: \d matched them, no tag has them
    # The EC2/ECS/EKS flavour in the same repository: no SageMaker toolkit, so inference.py is never loaded.
    ("inferenceImageTag", "2.6.0-cpu-py312-ec2", "not an -ec2 one"),
    ("inferenceImageTag", "2.6-cpu-py312-ubuntu22.04-ec2-v1", "not an -ec2 one"),
    ("inferenceImageTag", "2.6.0-cpu-py312-ubuntu22.04-ec2", "not an -ec2 one"),
    ("lambdaArchitecture", "arm", "one of arm64, x86_64"),
    ("lambdaArchitecture", "ARM64", "one of arm64, x86_64"),  # Lambda itself refuses any other spelling
    ("proxyMemorySizeMb", 127, "an integer in 128..10240"),
    ("proxyMemorySizeMb", 10241, "an integer in 128..10240"),
    ("proxyMemorySizeMb", "256MB", "an integer in 128..10240"),
    ("proxyLogLevel", "info", "one of DEBUG, INFO, WARNING, ERROR"),  # Powertools would take it; keep one spelling
    ("proxyLogLevel", "TRACE", "one of DEBUG, INFO, WARNING, ERROR"),
    ("apiThrottleRateLimit", 0, "1..10000"),
    ("apiThrottleRateLimit", 10001, "1..10000"),
    ("apiThrottleBurstLimit", 0, "1..5000"),
    ("apiThrottleBurstLimit", 5001, "1..5000"),
    ("corsExtraOrigins", ["*"], "no wildcard"),
    ("corsExtraOrigins", ["https://*.example.com"], "no wildcard"),
    ("corsExtraOrigins", ["https://app.example.com?x=1"], "no path"),
    ("corsExtraOrigins", ["https://user@app.example.com"], "https://host"),
    ("corsExtraOrigins", [" https://app.example.com"], "https://host"),  # never equals a browser's Origin
    ("corsExtraOrigins", ["https://app.example.com/"], "no path"),
    ("corsExtraOrigins", ["https://app.example.com#top"], "no path"),  # a fragment: not the Origin a browser sends
    ("corsExtraOrigins", ["ftp://app.example.com"], "https://host"),  # no browser sends an ftp:// Origin
    ("corsExtraOrigins", ["http://app.example.com"], "http only for localhost, 127.0.0.1 or [::1])"),
    ("corsExtraOrigins", ["app.example.com"], "https://host"),
    ("corsExtraOrigins", [443], "https://host"),
    ("corsExtraOrigins", ["https://app.example.com:0"], "https://host"),
    # A port urlsplit cannot read: reading .port raises a ValueError, a traceback naming no key unless caught.
    ("corsExtraOrigins", ["https://app.example.com:abc"], "https://host"),
    ("corsExtraOrigins", ["https://app.example.com:65536"], "https://host"),
    ("corsExtraOrigins", ["http://localhost:0"], "https://host"),
    ("corsExtraOrigins", "not json", "a list of origins"),
    ("corsExtraOrigins", "[" + "9" * 5000 + "]", "a list of origins"),  # JSON whose number int() refuses
    ("corsExtraOrigins", {"https://a.example.com": 1}, "a list of origins"),  # not its keys, one by one
    # Accepted once, deployed, and never equal to the Origin header a browser sends (lower case, punycode, no
    # default port): every request from that page would fail CORS.
    ("corsExtraOrigins", ["https://App.example.com"], "as a browser sends it, 'https://app.example.com'"),
    ("corsExtraOrigins", ["HTTPS://app.example.com"], "as a browser sends it, 'https://app.example.com'"),
    ("corsExtraOrigins", ["https://app.example.com:443"], "as a browser sends it, 'https://app.example.com'"),
    ("corsExtraOrigins", ["http://localhost:80"], "as a browser sends it, 'http://localhost'"),
    ("corsExtraOrigins", ["https://app.example.com:"], "as a browser sends it, 'https://app.example.com'"),
    ("corsExtraOrigins", ["https://app.example.com:08443"], "as a browser sends it, 'https://app.example.com:8443'"),
    ("corsExtraOrigins", ["https://bücher.example"], "as a browser sends it, 'https://xn--bcher-kva.example'"),
    # ß, final sigma and the joiners: Python's IDNA 2003 maps them away (faß.de to fass.de, another site) where a
    # browser encodes them (xn--fa-hia.de), so the spelling offered was one no browser sends: the xn-- form is asked.
    ("corsExtraOrigins", ["https://faß.de"], "a host name of ASCII letters, digits, '-', '_' and '.' (punycode, xn--"),
    ("corsExtraOrigins", ["https://σοφς.example"], "a host name of ASCII letters"),
    ("corsExtraOrigins", ["https://a\u200db.example"], "a host name of ASCII letters"),
    ("corsExtraOrigins", ["https://a\u200cb.example"], "a host name of ASCII letters"),  # not ab.example: another site
    # A host IDNA cannot encode (a label of 64 letters, or an empty one): refused naming the key, not UnicodeError's
    # traceback.
    ("corsExtraOrigins", ["https://" + "\u00fc" * 64 + ".example"], "a host name of ASCII letters"),
    ("corsExtraOrigins", ["https://\u00fc..example"], "a host name of ASCII letters"),
    ("corsExtraOrigins", ["https://a.example.com", "https://a.example.com"], "distinct"),
    # Hosts urlsplit takes and no browser ever sends (its URL parser refuses a space or a control character, and
    # decodes %61 to a): deployed, they matched no page's Origin.
    ("corsExtraOrigins", ["https://app example.com"], "a host name of ASCII letters, digits, '-', '_' and '.'"),
    ("corsExtraOrigins", ["https://app\x00.example.com"], "a host name of ASCII letters"),
    ("corsExtraOrigins", ["https://%61pp.example.com"], "a host name of ASCII letters"),
    ("corsExtraOrigins", ["https://[fe80::1%25eth0]"], "or an IP address"),
    # A bracket left open, or brackets round what is no IPv6 address: urlsplit's own ValueError was a traceback.
    ("corsExtraOrigins", ["https://[::1"], "https://host"),
    ("corsExtraOrigins", ["https://[1::2::3]:8443"], "https://host"),
    ("corsExtraOrigins", ["https://[192.0.2.1]"], "https://host"),
    # An IP address as a browser's URL parser writes it (WHATWG URL: octal and hex IPv4 parts, a trailing dot dropped;
    # IPv6 in its shortest form, hex only): written any other way, it was deployed and matched no page's Origin.
    ("corsExtraOrigins", ["https://192.168.001.010"], "as a browser sends it, 'https://192.168.1.8'"),
    ("corsExtraOrigins", ["https://0x7f.1"], "as a browser sends it, 'https://127.0.0.1'"),
    ("corsExtraOrigins", ["https://10.0.0.1.:8443"], "as a browser sends it, 'https://10.0.0.1:8443'"),
    ("corsExtraOrigins", ["https://[0:0:0:0:0:0:0:1]"], "as a browser sends it, 'https://[::1]'"),
    ("corsExtraOrigins", ["https://[2001:db8:0:0:1:0:0:1]"], "as a browser sends it, 'https://[2001:db8::1:0:0:1]'"),
    ("corsExtraOrigins", ["https://[::ffff:192.0.2.1]"], "as a browser sends it, 'https://[::ffff:c000:201]'"),
    ("corsExtraOrigins", ["https://[2001:db8:0:0:0:0:0:0]"], "as a browser sends it, 'https://[2001:db8::]'"),
    # A host ending in a number is read as an IPv4 address, and a browser refuses the URL when it is none.
    ("corsExtraOrigins", ["https://app.123"], "or an IP address"),
    ("corsExtraOrigins", ["https://256.1.1.1"], "or an IP address"),
    ("corsExtraOrigins", ["https://1.1.1.256"], "or an IP address"),  # a last part past its byte
    ("corsExtraOrigins", ["https://1.2.3.4.0"], "or an IP address"),  # five parts: no address (was a shift's traceback)
    ("corsExtraOrigins", ["https://app.0x"], "or an IP address"),  # 0x is the number 0 to a browser's URL parser
    # A last label of digits alone is a number to a browser's URL parser, 09 and 1.2.3.09 octal ones with a 9 in them:
    # no address, so no host at all (not the name app.09, nor int('9', 8)'s traceback).
    ("corsExtraOrigins", ["https://app.09"], "or an IP address"),
    ("corsExtraOrigins", ["https://1.2.3.09"], "or an IP address"),
    ("logRetentionDays", 10, "one of 1, 3, 5, 7, 14"),
    ("priceClass", "PriceClass_300", "PriceClass_100, PriceClass_200, PriceClass_All"),
    ("customDomain", "Not A Domain", "DNS name"),
    ("customDomain", 5, "DNS name"),
    ("customDomain", "Classify.example.com", "lower-case DNS name"),  # browsers send the Origin lower-cased
    ("customDomain", "classify.example.com\n", "lower-case DNS name"),  # a CloudFront alias CloudFront refuses
    # DNS's limits (63-character labels, 253 characters in all), which CloudFront and ACM enforce mid-deploy.
    ("customDomain", "a" * 64 + ".example.com", "lower-case DNS name"),
    ("customDomain", ".".join(["a" * 63] * 3 + ["b" * 62]), "lower-case DNS name"),
    ("customDomain", "demo.x", "lower-case DNS name"),  # no top-level domain has one letter
    ("customDomain", "demo." + "c" * 64, "lower-case DNS name"),  # a top-level label is 63 characters at most too
    ("customDomain", "demo.xn--" + "p" * 60, "lower-case DNS name"),  # so is a punycode one
    ("customDomain", "-demo.example.com", "lower-case DNS name"),  # a label starts and ends alphanumeric
    ("customDomain", "demo-.example.com", "lower-case DNS name"),
    ("customDomain", "192.168.0.10", "lower-case DNS name"),  # an IP address is no CloudFront alias
    ("certificateArn", CERT.replace("us-east-1", "eu-west-1"), "us-east-1"),
    ("certificateArn", 123456789012, "us-east-1"),
    ("certificateArn", CERT + "\n", "us-east-1"),
    ("certificateArn", CERT.replace("123456789012", "12345"), "us-east-1"),  # an account ID has 12 digits
    ("certificateArn", CERT.replace("123456789012", "١٢٣٤٥٦٧٨٩٠١٢"), "us-east-1"),  # of ASCII digits
    ("certificateArn", CERT.replace("certificate/", "certificate/../"), "us-east-1"),
    ("certificateArn", CERT.replace("arn:aws:", "arn:aws-us-gov:"), "us-east-1"),  # us-east-1 is in aws alone
    ("kmsKeyArn", "alias/my-key", "KMS key ARN"),
    ("kmsKeyArn", 1234, "KMS key ARN"),
    ("kmsKeyArn", KMS + "\n", "KMS key ARN"),  # Lambda and S3 would refuse it halfway through the deploy
    ("kmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:alias/my-key", "not an alias"),
    ("kmsKeyArn", KMS.replace("123456789012", "12345"), "KMS key ARN"),
    ("kmsKeyArn", KMS.replace("123456789012", "１２３４５６７８９０１２"), "KMS key ARN"),
    ("kmsKeyArn", KMS.replace("arn:aws:", "arn:azure:"), "KMS key ARN"),
    # A partition the key's region is not in (as alarmTopicArn checks): S3 and Lambda refused it mid-deploy.
    ("kmsKeyArn", KMS.replace("arn:aws:", "arn:awss:"), "an ARN whose partition is its region's (eu-west-1 is in aws)"),
    ("kmsKeyArn", KMS.replace("arn:aws:", "arn:aws-cn:"), "an ARN whose partition is its region's"),
    # No region at all: read as the aws partition's, it would pass the partition check, and with no aws:region set
    # nothing else asks where the key lives.
    ("kmsKeyArn", KMS.replace(":eu-west-1:", "::"), "KMS key ARN"),
    ("smokeCheck", "yes", "true or false"),
    ("smokeCheck", 1, "true or false"),  # an int is no bool, as a bool is no count
    ("endpointName", "bad_name", "[a-zA-Z0-9-]"),
    ("endpointName", 12345, "[a-zA-Z0-9-]"),  # a YAML 12345 read natively; load_stack_file hands over "12345"
    ("endpointName", "x" * 64, "1..63"),
    ("endpointName", "a" + "-b" * 40, "1..63"),  # hyphens once slipped past the length bound
    ("endpointName", "a" + "-" * 62 + "b", "1..63"),
    ("endpointName", "abc\n", "1..63"),  # `$` alone would let a trailing newline through
    ("endpointName", "abc-", "alphanumeric at both ends"),
    ("endpointName", "-abc", "alphanumeric at both ends"),
    ("modelArtifact", "   ", "a path to model.tar.gz"),
    ("modelArtifact", 5, "a path to model.tar.gz"),
    ("alarms", "on", "true or false"),
    ("alarmTopicArn", "arn:aws:sqs:us-east-1:123456789012:q", "an SNS topic ARN"),
    ("alarmTopicArn", "arn:aws:sns:us-east-1:123456789012:q.fifo", "a standard SNS topic"),
    ("alarmTopicArn", "arn:aws:sns:us-east-1:١٢٣٤٥٦٧٨٩٠١٢:q", "an SNS topic ARN"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), INVALID, ids=[f"{k}={v!r}"[:40] for k, v, _ in INVALID])
def test_each_invalid_value_is_rejected_naming_key_value_and_range(key: str, value: object, allowed: str) -> None:
    raw = {key: value}
    if key == "certificateArn":
        raw["customDomain"] = "classify.example.com"
    with pytest.raises(SettingsError) as err:
        validate_settings(raw)
    message = str(err.value)
    assert f"mobilenet-serverless:{key}" in message
    assert repr(value if not isinstance(value, list) else value[-1])[:30] in message or repr(value)[:30] in message
    assert allowed in message


def test_provisioned_concurrency_above_max_concurrency_names_max_concurrency_as_its_bound() -> None:
    """ "allowed an integer in 0..5" read as a limit of the service; the 5 is the stack's own maxConcurrency."""
    with pytest.raises(SettingsError) as err:
        validate_settings({"provisionedConcurrency": "8"})
    allowed = "allowed an integer in 0..5 (up to maxConcurrency)"
    assert str(err.value) == f"mobilenet-serverless:provisionedConcurrency = '8' is invalid: {allowed}"


@pytest.mark.parametrize("domain", ["demo.xn--p1ai", "shop.example.xn--vermgensberatung-pwb", "a.b.example.io"])
def test_custom_domain_accepts_internationalised_top_level_domains(domain: str) -> None:
    """CloudFront takes an IDN alias in its punycode form (.xn--p1ai is .рф); the TLD is not letters only."""
    assert validate_settings({"customDomain": domain, "certificateArn": CERT}).custom_domain == domain


def test_custom_domain_at_dns_length_limits_is_accepted() -> None:
    for domain in ("a" * 63 + ".example.com", ".".join(["a" * 63] * 3 + ["b" * 61])):  # a 63-char label; 253 chars
        assert validate_settings({"customDomain": domain, "certificateArn": CERT}).custom_domain == domain


def test_custom_domain_requires_certificate_and_vice_versa() -> None:
    with pytest.raises(SettingsError, match=r"certificateArn = None .*whenever customDomain is set"):
        validate_settings({"customDomain": "classify.example.com"})
    with pytest.raises(SettingsError, match=r"customDomain = None .*whenever certificateArn is set"):
        validate_settings({"certificateArn": CERT})


def test_kms_key_must_be_in_the_stack_region() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert validate_settings({"kmsKeyArn": key}, region="eu-west-1").kms_key_arn == key
    with pytest.raises(SettingsError, match=r"kmsKeyArn = .* a KMS key in the stack's region us-east-1"):
        validate_settings({"kmsKeyArn": key}, region="us-east-1")


def test_unknown_key_is_rejected_with_the_known_keys() -> None:
    with pytest.raises(SettingsError) as err:
        validate_settings({"memorySizeMB": 2048})
    allowed = ", ".join(CONFIG_KEYS)  # every key, spelt as it is to be set
    assert str(err.value) == f"unknown config key(s) mobilenet-serverless:memorySizeMB; allowed keys: {allowed}"


def test_unknown_keys_are_named_in_sorted_order() -> None:
    """One message for every misspelt key, in an order a reader can scan and a rerun repeats: a set's order follows
    this run's string hashing (eight keys come out sorted by chance once in 40,320 runs)."""
    typos = [f"{letter}Typo" for letter in "hgfedcba"]
    with pytest.raises(SettingsError) as err:
        validate_settings(dict.fromkeys(typos, "1"))
    named = ", ".join(f"mobilenet-serverless:{key}" for key in sorted(typos))
    assert str(err.value).startswith(f"unknown config key(s) {named}; allowed keys: ")


def test_a_renamed_projects_own_keys_are_refused_and_every_other_namespace_left_alone() -> None:
    """Pulumi.yaml's `config:` block and `pulumi config set <key>` put a renamed project's settings under its name."""
    ours = {"mobilenet-serverless:maxConcurrency": "7", "aws:region": "us-east-1", "imgclassx:alarms": "false"}
    check_project_namespace(ours, "imgclass")
    check_project_namespace({**ours, "mobilenet-serverless:endpointName": "x"}, "mobilenet-serverless")
    own = {f"imgclass:{key}": "1" for key in reversed(sorted(CONFIG_KEYS)[:7])}  # named sorted, not as written
    with pytest.raises(SettingsError) as err:
        check_project_namespace({**ours, **own}, "imgclass")
    assert f"{', '.join(sorted(own)[:5])} and 2 more would be ignored" in str(err.value)
    assert "Keep `name: mobilenet-serverless` in Pulumi.yaml" in str(err.value)
    assert "or set each setting as mobilenet-serverless:<key> (`pulumi config set" in str(err.value)  # the other way
    five = dict(list(own.items())[:5])
    with pytest.raises(SettingsError) as err:
        check_project_namespace({**ours, **five}, "imgclass")
    assert f"{', '.join(sorted(five))} would be ignored" in str(err.value)  # every one named, no "and 0 more"


def test_default_endpoint_name_is_valid_and_bounded() -> None:
    assert default_endpoint_name("mobilenet-serverless", "dev") == "mobilenet-serverless-dev"
    long = default_endpoint_name("mobilenet-serverless", "feature_" + "x" * 80)
    assert len(long) <= 63 and not long.endswith("-") and "_" not in long
    with pytest.raises(SettingsError) as err:
        default_endpoint_name("___", "_-_")
    assert str(err.value) == "cannot derive an endpoint name from project '___' and stack '_-_'"  # both named
    # The cut (54 characters, before the hyphen and hash fit_name adds) lands on a hyphen: it is dropped rather than
    # doubled or failing the derivation.
    cut = default_endpoint_name("mobilenet-serverless", "a" * 32 + "-" + "b" * 20)
    assert re.fullmatch("mobilenet-serverless-" + "a" * 32 + "-[0-9a-f]{8}", cut)


def test_endpoint_name_of_63_chars_with_hyphens_is_accepted() -> None:
    name = "a" + "-" * 30 + "b" * 32
    assert len(name) == 63
    assert validate_settings({"endpointName": name}).endpoint_name == name


def test_function_name_fits_lambda_limit() -> None:
    assert function_name_for("mobilenet-serverless-dev") == "mobilenet-serverless-dev-proxy"
    assert len(function_name_for("a" * 63)) == 64


def test_names_cut_to_fit_stay_apart() -> None:
    """Stacks whose names share their first 42 characters (per-branch stacks: feature-...-pr-1234 and -pr-1235) must
    not deploy one endpoint name, nor endpoints of 59..63 characters that differ only at the end one function name:
    the second stack's `pulumi up` would fail on the names the first holds (the endpoint, the function, its log
    groups and alarms). A cut name ends in a hash of the whole; a name that fits is kept, so no stack is renamed."""
    branch = "feature-" + "x" * 34
    first = default_endpoint_name("mobilenet-serverless", branch + "-pr-1234")
    second = default_endpoint_name("mobilenet-serverless", branch + "-pr-1235")
    assert first != second
    assert all(len(name) == 63 and ENDPOINT_NAME_RE.match(name) for name in (first, second))
    assert first.startswith("mobilenet-serverless-" + branch[:33])

    one, two = "a" * 58 + "-one1", "a" * 58 + "-two2"
    proxies = function_name_for(one), function_name_for(two)
    assert proxies[0] != proxies[1]
    assert all(len(name) == 64 and name.endswith("-proxy") and "--" not in name for name in proxies)
    assert function_name_for("a" * 58) == "a" * 58 + "-proxy"


def test_dev_stack_file_loads(tmp_path: Path) -> None:
    settings = load_stack_file(ROOT / "Pulumi.dev.yaml")
    assert settings.lambda_architecture == "arm64"
    assert (settings.proxy_memory_size_mb, settings.proxy_log_level) == (256, "INFO")
    assert settings.cors_extra_origins == ("http://localhost:8000",)
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    assert document["config"]["aws:region"]
    assert set(document["config"]["aws:defaultTags"]["tags"]) == {"project", "stack"}


def test_stack_file_errors_name_the_key(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text("config:\n  aws:region: us-east-1\n  mobilenet-serverless:maxConcurrency: 500\n")
    with pytest.raises(SettingsError, match=r"mobilenet-serverless:maxConcurrency = '500' .*1\.\.200"):
        load_stack_file(stack)
    stack.write_text(f"config:\n  aws:region: us-east-1\n  mobilenet-serverless:kmsKeyArn: {KMS}\n")
    with pytest.raises(SettingsError, match=r"kmsKeyArn = .* region us-east-1"):
        load_stack_file(stack)  # the stack file's aws:region is the one the key must live in
    stack.write_text("config:\n  mobilenet-serverless:kmsKeyArn:\n    secure: AAABAC==\n")
    with pytest.raises(SettingsError, match="secret"):
        load_stack_file(stack)
    stack.write_text("config:\n  mobilenet-serverless:memorySizeMB: 4096\n")  # a misspelt key: not a KeyError
    with pytest.raises(SettingsError, match=r"unknown config key\(s\) mobilenet-serverless:memorySizeMB; allowed"):
        load_stack_file(stack)


@pytest.mark.parametrize(
    "region",
    [
        "us east",
        "5",
        "US-EAST-1",
        "us-east",
        "us-east-",
        "useast-1",
        "us-east-1\n",
        "us-east-１",
        "N. Virginia",
        ["us-east-1"],
    ],
)
def test_an_aws_region_that_is_no_region_code_is_refused_naming_it(tmp_path: Path, region: object) -> None:
    """The local stack loaded the model and then stopped on the handler's "InvalidRegionError: Provided region_name
    'us east' doesn't match a supported format", naming neither aws:region nor the stack file."""
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump({"config": {"aws:region": region}}))
    with pytest.raises(SettingsError) as err:
        load_stack_file(stack)
    assert str(err.value) == f"aws:region = {region!r} is invalid: allowed an AWS region code like us-east-1"
    with pytest.raises(SettingsError, match="aws:region"):
        validate_settings({}, region=region)


@pytest.mark.parametrize(
    "text",
    ["", "# no settings yet\n", "config:\n", "config: {}\n", "encryptionsalt: v1:abc\n"],
    ids=["empty", "comment", "null-config", "empty-config", "no-config-key"],
)
def test_a_stack_file_with_no_settings_gives_the_defaults(tmp_path: Path, text: str) -> None:
    """`pulumi stack init` writes no config block (or none at all) and `pulumi up` deploys the defaults; `make demo`
    on that file must too, not refuse it as "expected a mapping" or "`config:` must be a mapping"."""
    stack = tmp_path / "Pulumi.new.yaml"
    stack.write_text(text)
    assert load_stack_file(stack) == Settings()


@pytest.mark.parametrize("region", [None, ""])
def test_an_unset_or_empty_aws_region_is_no_region(region: str | None) -> None:
    """The program's config gives an unset aws:region as None, and one left empty in the stack file as "" (the CLI
    hands a null over as ""): neither is a region to refuse, nor one a KMS key must live in."""
    assert validate_settings({"kmsKeyArn": KMS}, region=region).kms_key_arn == KMS


@pytest.mark.parametrize("region", ["us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-3", "eusc-de-east-1"])
def test_every_kind_of_aws_region_code_is_accepted(tmp_path: Path, region: str) -> None:
    stack = tmp_path / "Pulumi.ok.yaml"
    stack.write_text(f"config:\n  aws:region: {region}\n")
    assert load_stack_file(stack) == Settings()


@pytest.mark.parametrize(
    ("written", "handed"),
    [
        ("12345", "12345"),
        ("1.10", "1.1"),
        ("1e3", "1000"),
        ("1_000", "1000"),
        ("8.0", "8"),
        ("+5", "5"),
        ("0x10", "16"),
        ("010", "8"),
        ("0123", "83"),
        ("08", "8"),
        ("0o17", "15"),
        ("007", "7"),  # octal too, its leading zeros any number of them
        ("0b101", "5"),
        ("0X10", "16"),  # ParseInt's base prefixes in either case
        ("0O17", "15"),
        ("0B101", "5"),
        (".5", "0.5"),
        (".5e3", "500"),  # yaml.v2 hands a leading-dot scalar to ParseFloat, exponent and all
        ("-0.0", "0"),
        ("5e-5", "0.00005"),
        ("1.5e-7", "1.5e-7"),
        ("1e21", "1e+21"),
        ("1e-6", "0.000001"),  # Go's encoding/json writes an exponent only below 1e-6
        ("-9223372036854775808", "-9223372036854775808"),  # the least int64: an integer to yaml.v2
        ("18446744073709551616", "18446744073709552000"),  # past uint64: a float64 to yaml.v2
        ("99999999999999999999", "100000000000000000000"),
        ("18446744073709551615", "18446744073709551615"),
        # Written with a sign, a number past int64 is a float64 to yaml.v2: ParseUint takes no sign.
        ("+9223372036854775808", "9223372036854776000"),
        ("+18446744073709551615", "18446744073709552000"),
        ("1e400", "1e400"),
        # yaml.v2's YAML 1.1 booleans, each spelling it resolves (resolve.go): any other case is text.
        ("true", "true"),
        ("True", "true"),
        ("TRUE", "true"),
        ("yes", "true"),
        ("Yes", "true"),
        ("YES", "true"),
        ("on", "true"),
        ("On", "true"),
        ("ON", "true"),
        ("y", "true"),
        ("Y", "true"),
        ("false", "false"),
        ("False", "false"),
        ("FALSE", "false"),
        ("no", "false"),
        ("No", "false"),
        ("NO", "false"),
        ("off", "false"),
        ("Off", "false"),
        ("OFF", "false"),
        ("n", "false"),
        ("N", "false"),
        ("oN", "oN"),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        ("2026-02-30", "2026-02-30"),
        ("2.6.0-cpu-py312", "2.6.0-cpu-py312"),
        ("0x", "0x"),
        ("arm64", "arm64"),
    ],
)
def test_a_plain_scalar_is_the_text_the_pulumi_cli_hands_the_program(written: str, handed: str | None) -> None:
    """The CLI reads a stack file with gopkg.in/yaml.v2 (YAML 1.1) and writes a number or boolean back as JSON text
    (sdk/go/common/resource/config/object.go, MarshalString) before the program sees it; a null is "" to it."""
    assert cli_scalar_text(written) == handed


@pytest.mark.parametrize(
    "written", [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"]
)
def test_a_yaml_infinity_or_nan_is_refused_as_the_pulumi_cli_cannot_read_it(written: str) -> None:
    """yaml.v2 reads each spelling of YAML 1.1's infinities and NaN as a float, which the CLI cannot write back as
    JSON and stops on: handed over as text instead, `modelArtifact: +.inf` was a path `make demo` then looked for."""
    with pytest.raises(ValueError, match=re.escape(f"{written} is a YAML float the Pulumi CLI cannot read")):
        cli_scalar_text(written)


def test_the_local_stack_reads_a_stack_file_as_pulumi_up_does(tmp_path: Path) -> None:
    """`make demo` read scalars as the text written while `pulumi up` hands the program YAML 1.1 re-written as JSON:
    `alarms: yes` deployed alarms but was refused locally, and `endpointName: 0123` named the endpoint 83 under
    `pulumi up` and 0123 under `make demo`."""
    stack = tmp_path / "Pulumi.scalars.yaml"
    stack.write_text(
        "config:\n  aws:region: us-east-1\n  mobilenet-serverless:endpointName: 0123\n"
        "  mobilenet-serverless:maxConcurrency: 0x10\n  mobilenet-serverless:alarms: yes\n"
        "  mobilenet-serverless:smokeCheck: off\n  mobilenet-serverless:apiThrottleRateLimit: 1e3\n"
        "  mobilenet-serverless:customDomain: ''\n  mobilenet-serverless:corsExtraOrigins: [https://a.example]\n"
    )
    settings = load_stack_file(stack)
    assert (settings.endpoint_name, settings.max_concurrency) == ("83", 16)
    assert (settings.alarms, settings.smoke_check) == (True, False)
    assert settings.api_throttle_rate_limit == 1000
    assert settings.cors_extra_origins == ("https://a.example",)
    assert settings == validate_settings(
        {
            "endpointName": "83",
            "maxConcurrency": "16",
            "alarms": "true",
            "smokeCheck": "false",
            "apiThrottleRateLimit": "1000",
            "customDomain": "",
            "corsExtraOrigins": '["https://a.example"]',
        },
        region="us-east-1",
    )
    stack.write_text("config:\n  mobilenet-serverless:endpointName: '0123'\n")
    assert load_stack_file(stack).endpoint_name == "0123"  # quoted: the text written, to the CLI too
    stack.write_text("config:\n  mobilenet-serverless:inferenceImageTag: 2.10-cpu-py312\n")
    assert load_stack_file(stack).inference_image_tag == "2.10-cpu-py312"
    stack.write_text("config:\n  mobilenet-serverless:maxConcurrency: .inf\n")
    with pytest.raises(SettingsError, match=r"scalars\.yaml: line 2, column 40: \.inf is a YAML float the Pulumi CLI"):
        load_stack_file(stack)  # the CLI cannot load it: JSON has no infinity


def test_a_stack_files_yaml_merge_key_merges_its_settings(tmp_path: Path) -> None:
    """yaml.v2 merges `<<: *anchor` into the mapping, so `pulumi up` deploys the anchored settings; read as a plain
    key "<<", they were ignored and the local stack ran with the defaults."""
    stack = tmp_path / "Pulumi.merged.yaml"
    stack.write_text(
        "shared: &shared\n  mobilenet-serverless:maxConcurrency: 7\n"
        "config:\n  <<: *shared\n  mobilenet-serverless:alarms: false\n"
    )
    settings = load_stack_file(stack)
    assert (settings.max_concurrency, settings.alarms) == (7, False)


@pytest.mark.parametrize(
    ("line", "shown", "allowed"),
    [
        ("maxConcurrency:", "''", "an integer in ASCII digits"),
        ("maxConcurrency: null", "''", "an integer in ASCII digits"),
        ("maxConcurrency: ' 7'", "' 7'", "an integer in ASCII digits"),
        ("maxConcurrency: '\u0667'", "'\u0667'", "an integer in ASCII digits"),  # an Arabic-Indic 7
        ("alarms: ~", "''", "true or false"),
        ("smokeCheck: 'True'", "'True'", "true or false"),
        ("corsExtraOrigins:", "''", "a YAML list of strings"),
        ("corsExtraOrigins: '[\"https://a.example\"]'", "'[\"https://a.example\"]'", "a YAML list of strings"),
        ("corsExtraOrigins: [~]", "[None]", "a YAML list of strings"),
        ("endpointName: [a]", "['a']", "text"),
        # Go's Atoi refuses an integer past int64 (ErrRange), as the CLI then does.
        ("maxConcurrency: '9223372036854775808'", "'9223372036854775808'", "an integer in ASCII digits"),
    ],
)
def test_a_value_pulumi_up_refuses_for_the_type_pulumi_yaml_declares_is_refused(
    tmp_path: Path, line: str, shown: str, allowed: str
) -> None:
    """Pulumi.yaml types every key, and the CLI refuses a stack value of another type before the program runs
    ("Stack 'dev' with configuration key 'maxConcurrency' must be of type 'integer'"), a key left empty included
    (it is "" to the CLI). `make demo` took such a file: an empty maxConcurrency or alarms ran with the default."""
    stack = tmp_path / "Pulumi.typed.yaml"
    stack.write_text(f"config:\n  mobilenet-serverless:{line}\n", encoding="utf-8")
    key = line.split(":")[0]
    with pytest.raises(SettingsError) as err:
        load_stack_file(stack)
    assert str(err.value).startswith(f"mobilenet-serverless:{key} = {shown} is invalid: allowed {allowed}")
    assert str(err.value).endswith("`pulumi up` refuses anything else, a key left empty included)")


@pytest.mark.parametrize("text", ["9223372036854775807", "-9223372036854775808", "0009223372036854775807"])
def test_an_int64_pulumi_up_takes_is_refused_by_the_settings_range(tmp_path: Path, text: str) -> None:
    """Go's Atoi takes every int64, 19 digits and leading zeros included, so `pulumi up` hands the program these and
    the program refuses them by the setting's range; refused as "an integer in ASCII digits", a number made of such
    digits read as a type error the CLI never gives."""
    stack = tmp_path / "Pulumi.typed.yaml"
    stack.write_text(f"config:\n  mobilenet-serverless:maxConcurrency: '{text}'\n")
    with pytest.raises(SettingsError) as err:
        load_stack_file(stack)
    assert str(err.value) == f"mobilenet-serverless:maxConcurrency = '{text}' is invalid: allowed an integer in 1..200"


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("customDomain:", "custom_domain", None),
        ("endpointName: null", "endpoint_name", None),  # "" to the CLI, which the program reads as unset
        ("smokeCheck: True", "smoke_check", True),  # the CLI reads it as the boolean true
        ("maxConcurrency: !!int 7", "max_concurrency", 7),  # an explicit tag: the CLI hands over "7"
        ("maxConcurrency: !!float 7", "max_concurrency", 7),  # so for !!float: text, never the float 7.0
        ("endpointName: !!timestamp 2001-12-14", "endpoint_name", "2001-12-14"),  # and !!timestamp: no date object
        ("alarms: off", "alarms", False),
        ("maxConcurrency: '+7'", "max_concurrency", 7),  # Go's Atoi takes a sign
        # and leading zeros past its 18-character fast path (ParseInt): pulumi up deployed 7, make demo refused it
        ("maxConcurrency: '00000000000000000007'", "max_concurrency", 7),
        ("corsExtraOrigins: []", "cors_extra_origins", ()),
    ],
)
def test_a_value_of_the_declared_type_is_taken(tmp_path: Path, line: str, field: str, value: object) -> None:
    stack = tmp_path / "Pulumi.typed.yaml"
    stack.write_text(f"config:\n  mobilenet-serverless:{line}\n")
    assert getattr(load_stack_file(stack), field) == value


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"config:\n  12: 5\n  ~: 6\n", "every key under `config:` must be text"),
        (b"config:\n\tmobilenet-serverless:maxConcurrency: 5\n", r"not valid YAML at line 2, column 1: .*'\\t'"),
        (b"config: [\n", "not valid YAML at line 2"),
        (b"config:\n  mobilenet-serverless:customDomain: caf\xe9.example\n", r"not UTF-8 text \(.* at byte 48\)"),
        (b"- config\n", "expected a mapping at the top level"),
        (b"config:\n  - mobilenet-serverless:maxConcurrency\n", "`config:` must be a mapping"),
    ],
    ids=["null-key", "tab", "unclosed", "latin-1", "list", "config-list"],
)
def test_a_malformed_stack_file_is_one_settings_error(tmp_path: Path, content: bytes, message: str) -> None:
    """The local stack reports a SettingsError in one line (local/__main__.py); anything else is a traceback."""
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_bytes(content)
    with pytest.raises(SettingsError, match=message):
        load_stack_file(stack)


def test_project_schema_matches_the_validator() -> None:
    """Pulumi.yaml documents every key with a type and description, with the validator's defaults."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "mobilenet-serverless"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == "venv"
    assert project["description"]
    schema = {key: entry for key, entry in project["config"].items() if ":" not in key}
    assert set(schema) == set(CONFIG_KEYS)
    # Provider settings for every stack: only values (the CLI refuses a schema for another namespace's keys).
    provider = {key: entry for key, entry in project["config"].items() if ":" in key}
    assert provider == {"aws:defaultTags": {"value": {"tags": {"project": "mobilenet-serverless"}}}}
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["aws:defaultTags"]["tags"]
    assert dev["project"] == "mobilenet-serverless", "a stack's own defaultTags replace the project's: keep the tag"
    defaults = Settings()
    for key, field in CONFIG_KEYS.items():
        entry = schema[key]
        assert entry["type"] in ("integer", "string", "boolean", "array"), key
        assert entry["description"].strip(), key
        expected = getattr(defaults, field)
        if expected is None:
            # The CLI makes a typed key without a default required in every stack; "" means unset.
            assert entry["default"] == "", key
        else:
            assert entry["default"] == (list(expected) if isinstance(expected, tuple) else expected), key
    # The project defaults themselves pass validation.
    validate_settings({k: v["default"] for k, v in schema.items() if "default" in v})


def test_a_signed_integer_string_is_accepted_and_a_negative_one_refused_by_range() -> None:
    assert validate_settings({"maxConcurrency": "+7"}).max_concurrency == 7
    assert validate_settings({"maxConcurrency": " 7\n"}).max_concurrency == 7  # as " true " is a boolean
    assert validate_settings({"maxConcurrency": 8.0}).max_concurrency == 8  # 2.5 is refused
    assert is_count(validate_settings({"maxConcurrency": 8.0}).max_concurrency)  # 8, not 8.0, which components refuse
    with pytest.raises(SettingsError, match=r"maxConcurrency = '-1' is invalid: allowed an integer in 1\.\.200"):
        validate_settings({"maxConcurrency": "-1"})


def test_default_endpoint_name_drops_leading_separators() -> None:
    assert default_endpoint_name("_mobilenet", "dev") == "mobilenet-dev"
    assert default_endpoint_name("mobilenet", "dev_") == "mobilenet-dev"
    assert default_endpoint_name("mobilenet", "pr_.12") == "mobilenet-pr-12"  # a run of separators is one hyphen


def test_function_name_never_doubles_the_hyphen_at_the_cut() -> None:
    # Cut to 49 characters (58 with fit_name's hyphen and hash), the name ends in a hyphen: it is dropped.
    name = function_name_for("a" * 48 + "-" + "b" * 14)
    assert re.fullmatch("a" * 48 + "-[0-9a-f]{8}-proxy", name) and "--" not in name
