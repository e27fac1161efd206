"""The payload-2.0 event the local API tier builds, and the Lambda result it turns back into HTTP."""

from __future__ import annotations

import base64
import json
import re
import time
from unittest import mock

import pytest

from components.policies import access_log_format
from components.settings import function_name_for
from handlers.proxy_core import check_event_shape
from local import gateway
from local.server import origin_from_host
from tests.conftest import names_of


def _event(**overrides):
    params = {
        "method": "post",
        "path": "/predict",
        "query_string": "top_k=3&x=1&x=2",
        "headers": [("Content-Type", "image/jpeg"), ("X-Multi", "a"), ("x-multi", "b"), ("Cookie", "a=1; b=2")],
        "body": b"\xff\xd8\xff\x00binary",
        "source_ip": "127.0.0.1",
        "scheme": "http",
        "port": 8000,
        "route_key": "POST /predict",
        "request_id": "req-1",
        "now": 1_700_000_000.0,
    }
    return gateway.build_event(**{**params, **overrides})


def test_event_has_the_payload_2_shape():
    event = _event()
    assert event["version"] == "2.0" and event["routeKey"] == "POST /predict"
    assert event["rawPath"] == "/predict" and event["rawQueryString"] == "top_k=3&x=1&x=2"
    headers = event["headers"]
    assert re.fullmatch(r"Root=1-6553f100-[0-9a-f]{24}", headers.pop("x-amzn-trace-id"))
    assert headers == {
        "content-type": "image/jpeg",
        "x-multi": "a,b",
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-port": "8000",
        "x-forwarded-proto": "http",
    }
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["queryStringParameters"] == {"top_k": "3", "x": "1,2"}
    http = event["requestContext"]["http"]
    assert http == {
        "method": "POST",
        "path": "/predict",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "",
    }
    assert event["requestContext"]["requestId"] == "req-1"
    # local.runtime's placeholder account, as every ARN of the local stack has it, and the local API's id.
    assert (event["requestContext"]["accountId"], event["requestContext"]["apiId"]) == ("000000000000", "local")
    assert event["requestContext"]["timeEpoch"] == 1_700_000_000_000
    assert event["requestContext"]["time"] == "14/Nov/2023:22:13:20 +0000"  # AWS's CLF-style time, in UTC
    assert event["requestContext"]["stage"] == "$default"


def test_the_events_epoch_time_keeps_the_milliseconds():
    # requestContext.timeEpoch is in milliseconds: a request half a second into a second is not at its start.
    assert _event(now=1_700_000_000.5)["requestContext"]["timeEpoch"] == 1_700_000_000_500


def test_the_events_time_is_utc_whatever_the_machines_timezone(monkeypatch):
    """The event's time says +0000: a developer's machine in another timezone must not shift it."""
    import time

    monkeypatch.setenv("TZ", "JST-9")
    time.tzset()
    try:
        assert _event()["requestContext"]["time"] == "14/Nov/2023:22:13:20 +0000"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_gateway_adds_the_forwarding_headers_and_a_trace_id_as_aws_sample_event_has():
    """AWS's sample HTTP API event (aws/aws-lambda-go events/testdata/apigw-v2-request-no-authorizer.json) has
    x-forwarded-for (the sourceIp), x-forwarded-port 443, x-forwarded-proto https and an x-amzn-trace-id."""
    cloud = _event(headers=[], source_ip="198.51.100.4", scheme="https", port=443)["headers"]
    assert (cloud["x-forwarded-for"], cloud["x-forwarded-port"], cloud["x-forwarded-proto"]) == (
        "198.51.100.4",
        "443",
        "https",
    )
    first, second = (_event(headers=[])["headers"]["x-amzn-trace-id"] for _ in range(2))
    assert first != second  # X-Ray's Root=1-<time>-<random>: one a request


@pytest.mark.parametrize(("now", "epoch"), [(1_700_000_000.9, "6553f100"), (86_400.0, "00015180")])
def test_the_trace_ids_time_is_eight_hex_digits_of_the_requests_epoch_second(now, epoch):
    # X-Ray's trace id is Root=1-<8 hex digits>-<24 hex digits>: the request's epoch second, zero-padded, whatever
    # the clock the gateway is given.
    trace = _event(headers=[], now=now)["headers"]["x-amzn-trace-id"]
    assert re.fullmatch(rf"Root=1-{epoch}-[0-9a-f]{{24}}", trace), trace


def test_a_client_cannot_make_the_gateways_forwarding_headers_say_something_else():
    spoofed = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("x-forwarded-for", "127.0.0.1"),
        ("X-Forwarded-Port", "4431"),
        ("X-Forwarded-Proto", "https"),
        ("X-Amzn-Trace-Id", "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c"),
    ]
    headers = _event(headers=spoofed, source_ip="192.0.2.7", scheme="http", port=8000)["headers"]
    # What the client said comes first; the last entry is always the connection's peer.
    assert headers["x-forwarded-for"] == "203.0.113.9,127.0.0.1, 192.0.2.7"
    assert (headers["x-forwarded-port"], headers["x-forwarded-proto"]) == ("8000", "http")
    assert headers["x-amzn-trace-id"] == "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c"  # a client's trace is kept


def test_an_empty_forwarded_for_from_the_client_leaves_the_peer_alone():
    # A client's blank X-Forwarded-For names nobody: the header is the peer, not ", <peer>" with an empty first entry.
    headers = _event(headers=[("X-Forwarded-For", "")], source_ip="192.0.2.7")["headers"]
    assert headers["x-forwarded-for"] == "192.0.2.7"


def test_a_request_without_host_names_the_domain_localhost():
    # HTTP/1.0 may leave Host out (the server serves it): the event still names a domain, as AWS's always does.
    context = _event(headers=[])["requestContext"]
    assert (context["domainName"], context["domainPrefix"]) == ("localhost", "localhost")


def test_binary_bodies_are_base64_and_text_bodies_are_not():
    binary = _event()
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\xd8\xff\x00binary"
    text = _event(headers=[("content-type", "application/json; charset=utf-8")], body=b'{"image": "x"}')
    assert text["isBase64Encoded"] is False and text["body"] == '{"image": "x"}'
    utf8 = _event(headers=[("content-type", "text/plain")], body="café".encode())
    assert utf8["isBase64Encoded"] is False and utf8["body"] == "café"  # its text, not its bytes read as latin-1
    not_utf8 = _event(headers=[("content-type", "application/json")], body=b"\xff\xfe")
    assert not_utf8["isBase64Encoded"] is True


def test_empty_body_and_no_query_are_omitted():
    event = _event(body=b"", query_string="", headers=[])
    assert "body" not in event and "queryStringParameters" not in event and "cookies" not in event
    assert event["isBase64Encoded"] is False
    # A Cookie header's empty pairs (a trailing ';', '; ;') are no cookies.
    assert _event(headers=[("Cookie", "a=1; ;b=2;")])["cookies"] == ["a=1", "b=2"]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"method": "GET", "body": b"", "query_string": "", "headers": []},
        {"method": "OPTIONS", "body": b"", "headers": [("Origin", "http://127.0.0.1:8080")]},
        {"headers": [("content-type", "application/json")], "body": b'{"image": "x"}', "stage": "prod"},
        {"path": "/other", "query_string": "a&b=&top_k=1"},
    ],
)
def test_every_event_the_gateway_builds_passes_the_proxys_shape_check(overrides):
    check_event_shape(_event(**overrides))  # a 400 bad_request would be raised for a shape the proxy refuses


def test_the_event_names_the_stage_and_the_api_it_is_given():
    # The local stack takes the defaults ($default, "local"); a caller naming its own gets them in the event.
    context = _event(stage="prod", api_id="a1b2c3d4e5")["requestContext"]
    assert (context["stage"], context["apiId"]) == ("prod", "a1b2c3d4e5")


def test_lambda_result_becomes_http():
    result = {"statusCode": 429, "headers": {"Retry-After": "2"}, "body": '{"error": "throttled"}', "cookies": ["c=1"]}
    answer = gateway.response_from_lambda(result)
    assert answer.status == 429 and answer.body == b'{"error": "throttled"}'
    assert ("retry-after", "2") in answer.headers and ("set-cookie", "c=1") in answer.headers
    encoded = gateway.response_from_lambda({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True})
    assert encoded.body == b"hi"


def test_a_results_status_and_header_values_are_taken_as_json_gives_them():
    """A function's JSON may give the status as text and a header's value as a number: the answer has the status as
    a number and each value as text. Starlette writes a header's value with str.encode: a number passed on raised
    AttributeError there, and the function's answer became a traceback."""
    answer = gateway.response_from_lambda({"statusCode": "201", "headers": {"X-Count": 3}})
    assert answer.status == 201
    assert answer.headers == [("x-count", "3")]


def test_a_result_whose_body_is_not_text_is_refused_as_api_gateway_refuses_it():
    """API Gateway answers a result whose body is not a string with its own 500 (aws/aws-lambda-go#373): the body of
    {"statusCode": 200, "body": {"predictions": []}} was sent as Python's repr, {'predictions': []}, with a 200."""
    for body in ({"predictions": []}, {}, [1], 42, 0, True):
        with pytest.raises(gateway.MalformedResult, match=r'wrong type for field "body"$'):
            gateway.response_from_lambda({"statusCode": 200, "body": body})
    assert gateway.response_from_lambda({"statusCode": 200, "body": None}).body == b""  # null is no body, as absent


def test_a_result_not_marked_base64_is_its_text_in_utf8():
    # isBase64Encoded false (not merely absent) leaves a body that happens to be valid base64 as it is, and text is
    # sent as its UTF-8 bytes, as Lambda hands API Gateway JSON.
    plain = gateway.response_from_lambda({"statusCode": 200, "body": "aGk=", "isBase64Encoded": False})
    assert plain.body == b"aGk="
    assert gateway.response_from_lambda({"statusCode": 200, "body": "café ✓"}).body == "café ✓".encode()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "Not Found"),
        (408, "Request Timeout"),
        (413, "Request Entity Too Large"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
    ],
)
def test_gateway_errors_use_the_gateway_shape(status, message):
    answer = gateway.gateway_error(status)
    assert answer.status == status and answer.body == f'{{"message":"{message}"}}'.encode()
    assert answer.headers == [("content-type", "application/json")]


def test_lambda_context_counts_down():
    context = gateway.LambdaContext(aws_request_id="r", timeout_s=29.0, started=1000.0)
    # gateway's own time: time.monotonic itself replaced would stop every other thread's clock too
    with mock.patch.object(gateway, "time", names_of(time, monotonic=lambda: 1003.5)):
        assert context.get_remaining_time_in_millis() == 25_500
    with mock.patch.object(gateway, "time", names_of(time, monotonic=lambda: 1040.0)):
        assert context.get_remaining_time_in_millis() == 0  # never negative


def test_the_function_context_names_a_long_endpoints_function_as_the_program_does():
    context = gateway.function_context("r", endpoint_name="e" * 63, region="us-gov-west-1", memory_limit_in_mb=256)
    assert context.function_name == function_name_for("e" * 63)  # __main__.py's name for the deployed function
    assert len(context.function_name) == 64 and context.function_name.endswith("-proxy")
    assert context.invoked_function_arn == (
        f"arn:aws-us-gov:lambda:us-gov-west-1:000000000000:function:{context.function_name}"
    )
    assert context.function_version == "$LATEST"  # an unqualified invocation's, as the API's integration makes
    assert context.log_group_name == f"/aws/lambda/{context.function_name}"  # not the default endpoint's function's
    assert context.log_stream_name  # Lambda always names one (code may log it or build a console link)


def test_origin_from_host_accepts_only_host_and_port():
    assert origin_from_host("http", "192.0.2.2:8000") == "http://192.0.2.2:8000"
    assert origin_from_host("http", "Demo.LAN") == "http://demo.lan"
    assert origin_from_host("http", "[2001:db8::1]:8000") == "http://[2001:db8::1]:8000"
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters: DNS's longest name
    assert origin_from_host("http", f"{longest}:8000") == f"http://{longest}:8000"
    bad_hosts = (
        longest + "c",
        "evil.example/x",
        "a b",
        "host:port",
        "x:1:2",
        '"><script>',
        "user@host",
        "[:::]",
        "[1:2:3:4:5:6:7:8:9]",
        "demo.lan:",  # a colon without a port
        ".demo.lan",  # a name starts with a letter or digit
        "[fe80::1%25eth0]",  # a zone id: hex digits, colons and dots only
    )
    for bad in (None, "", *bad_hosts):
        assert origin_from_host("http", bad) is None, bad


def test_with_listed_merges_a_list_header_whatever_the_case_of_its_name():
    # Vary's name as a function may spell it: one line, lower-cased, the gateway's value added once.
    headers = [("content-type", "application/json"), ("Vary", "Accept, ORIGIN"), ("VARY", "accept-encoding")]
    merged = gateway.with_listed(headers, "vary", "origin")
    assert sorted(merged) == [("content-type", "application/json"), ("vary", "Accept, ORIGIN, accept-encoding")]
    # Items are split at the commas alone: "accept,origin" already names Origin.
    assert gateway.with_listed([("vary", "accept,origin")], "vary", "origin") == [("vary", "accept, origin")]


def test_lambdas_event_limit_counts_the_serialised_event():
    limit = gateway.LAMBDA_MAX_EVENT_BYTES
    assert not gateway.event_too_large({"body": "A" * (limit - 1024), "isBase64Encoded": True})
    assert gateway.event_too_large({"body": "A" * limit, "isBase64Encoded": True})
    # A newline is two bytes once escaped: 3.2 M of them are over the limit although the body is half of it.
    assert gateway.event_too_large({"body": "\n" * 3_200_000, "isBase64Encoded": False})
    # Headers count too (their 10 KB quota is checked before the event is built, on raw bytes).
    headers = {"user-agent": "\xff" * 9000}
    assert gateway.event_too_large({"body": "A" * (limit - 12_000), "headers": headers, "isBase64Encoded": True})


def test_text_is_told_from_binary_by_media_type_and_its_case():
    for text_type in (
        "text/plain; charset=utf-8",
        "Application/JSON",
        "application/json ; charset=utf-8",  # a space before the parameters
        "application/xml",
        "application/javascript",
    ):
        event = _event(headers=[("content-type", text_type)], body=b"{}")
        assert event["isBase64Encoded"] is False and event["body"] == "{}", text_type
    for binary_type in ("image/jpeg", "application/octet-stream", "", "image/png; charset=utf-8"):
        assert gateway.is_text_body(binary_type, b"{}") is False, binary_type


def test_a_type_that_only_starts_like_text_is_not_of_the_text_family():
    # text/* is the family: "text" without a subtype, or a type whose name merely begins with it, is not.
    for binary_type in ("text", "textual/plain", "texts/csv"):
        assert gateway.is_text_body(binary_type, b"{}") is False, binary_type


def test_only_text_types_and_three_application_types_pass_as_text_as_on_aws():
    """What a live HTTP API does (ministackorg/ministack#766): a form body, a +json or +xml type, or a type that only
    starts like application/json is base64-encoded, valid UTF-8 or not. The function sees what it would see on AWS,
    and Lambda's 6 MiB event limit counts the base64 (4/3 of the body), as it does there."""
    for binary_type in (
        "application/x-www-form-urlencoded",
        "application/vnd.api+json",
        "application/problem+json",
        "image/svg+xml",
        "application/json-patch+json",
        "application/jsonl",
        None,
    ):
        headers = [] if binary_type is None else [("content-type", binary_type)]
        event = _event(headers=headers, body=b"top_k=3")
        assert event["isBase64Encoded"] is True, binary_type
        assert base64.b64decode(event["body"]) == b"top_k=3", binary_type


def test_event_carries_the_path_callers_address_host_agent_and_blank_query_values():
    event = _event(
        query_string="flag&empty=&x=1",
        headers=[("Host", "api.example.com"), ("User-Agent", "probe/1.0")],
        source_ip="192.0.2.7",
        path="/v2/Predict",
    )
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/v2/Predict"  # in its own case
    assert event["queryStringParameters"] == {"flag": "", "empty": "", "x": "1"}
    context = event["requestContext"]
    assert context["http"]["sourceIp"] == "192.0.2.7" and context["http"]["userAgent"] == "probe/1.0"
    assert (context["domainName"], context["domainPrefix"]) == ("api.example.com", "api")


def test_the_events_path_is_the_requests_own_trailing_slash_and_all():
    # rawPath and requestContext.http.path are the path as the request named it: a route's own matching may ignore a
    # trailing slash, the event does not drop it.
    for path in ("/predict/", "/a//b"):
        event = _event(path=path)
        assert event["rawPath"] == event["requestContext"]["http"]["path"] == path


def test_query_parameters_are_decoded_and_the_raw_query_string_is_as_sent():
    """On AWS rawQueryString stays percent-encoded (a Rust lambda_http function builds its URI from it, and a decoded
    space made it refuse the request: ministackorg/ministack#1035), and queryStringParameters hold the decoded values
    (aws/aws-lambda-dotnet#1901)."""
    event = _event(query_string="q=a%20b%2Cc&n%C3%A9=%C3%A9t%C3%A9")
    assert event["rawQueryString"] == "q=a%20b%2Cc&n%C3%A9=%C3%A9t%C3%A9"
    assert event["queryStringParameters"] == {"q": "a b,c", "né": "été"}
    # A query of separators alone has no parameters: the field is left out, as for no query at all.
    assert "queryStringParameters" not in _event(query_string="&")


def test_a_result_without_status_code_is_inferred_as_a_200_json_body():
    # Payload 2.0: API Gateway takes any other valid JSON as the body of a 200 application/json answer.
    answer = gateway.response_from_lambda({"predictions": []})
    assert (answer.status, answer.headers, answer.body) == (
        200,
        [("content-type", "application/json")],
        b'{"predictions": []}',
    )


def test_a_result_without_a_body_is_an_empty_answer():
    for result in ({"statusCode": 204}, {"statusCode": 204, "body": None}, {"statusCode": 204, "body": ""}):
        assert gateway.response_from_lambda(result).body == b"", result


def test_the_limits_are_the_documented_quotas():
    """The tests above measure against the constants, so only this pins their values: HTTP API's "Total combined
    size of request line and header values: 10240 bytes" (http-api-quotas.html), and Lambda's 6 MB synchronous
    payload, which it enforces as 6 MiB ("Request must be smaller than 6291456 bytes for the InvokeFunction
    operation")."""
    assert gateway.MAX_HEADER_BYTES == 10_240
    assert gateway.LAMBDA_MAX_EVENT_BYTES == 6_291_456
    assert gateway.MAX_BODY_BYTES == 10_485_760  # HTTP API's 10 MB payload quota, counted in MiB as the others


def test_multi_value_headers_are_not_part_of_payload_2():
    # Format 2.0 has no multiValueHeaders; the cloud drops them, so a handler relying on them must not work here.
    result = {"statusCode": 200, "headers": {"X-One": "1"}, "multiValueHeaders": {"X-Two": ["a", "b"]}, "body": ""}
    assert gateway.response_from_lambda(result).headers == [("x-one", "1")]


def test_lambdas_event_limit_is_inclusive_and_counts_compact_json():
    envelope = len('{"body":""}')
    assert not gateway.event_too_large({"body": "A" * (gateway.LAMBDA_MAX_EVENT_BYTES - envelope)})
    assert gateway.event_too_large({"body": "A" * (gateway.LAMBDA_MAX_EVENT_BYTES - envelope + 1)})


def test_the_integration_timeout_is_the_functions_and_within_http_apis_maximum():
    from handlers.proxy_core import LAMBDA_TIMEOUT_S

    assert gateway.INTEGRATION_TIMEOUT_S == LAMBDA_TIMEOUT_S <= 30


def test_lambdas_event_limit_counts_non_ascii_text_by_its_utf8_bytes():
    """The event is measured as the UTF-8 JSON Lambda receives: an "é" is two bytes, not a six-byte \\u00e9 escape."""
    envelope = len('{"body":""}')
    chars = (gateway.LAMBDA_MAX_EVENT_BYTES - envelope) // 2
    assert not gateway.event_too_large({"body": "\u00e9" * chars})
    assert gateway.event_too_large({"body": "\u00e9" * (chars + 1)})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stage_throttle_is_a_token_bucket_full_at_the_start_refilled_at_the_rate():
    clock = Clock()
    throttle = gateway.StageThrottle(rate=2, burst=3, clock=clock)
    assert [throttle.admit() for _ in range(4)] == [True, True, True, False]  # the burst, then nothing
    clock.now += 0.49  # 0.98 of a token
    assert not throttle.admit()
    clock.now += 0.01  # a whole one, counted from the last look, not from the last admission
    assert throttle.admit() and not throttle.admit()
    clock.now += 60  # a long pause refills to the burst, never beyond it
    assert [throttle.admit() for _ in range(4)] == [True, True, True, False]


def test_a_refused_request_takes_no_token():
    clock = Clock()
    throttle = gateway.StageThrottle(rate=1, burst=1, clock=clock)
    assert throttle.admit()
    for _ in range(4):  # refused retries in quick succession do not push the next admission further out
        clock.now += 0.125
        assert not throttle.admit()
    clock.now += 0.5
    assert throttle.admit()


@pytest.mark.parametrize(("rate", "burst"), [(0, 20), (-1, 20), (10, 0)])
def test_stage_throttle_refuses_limits_that_admit_nothing(rate, burst):
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        gateway.StageThrottle(rate=rate, burst=burst)


# --- the stage's access log line --------------------------------------------------------------------------------
def _access_line(**overrides) -> dict:
    params = {
        "request_id": "req-1",
        "source_ip": "192.0.2.7",
        "now": 1_700_000_000.0,
        "method": "POST",
        "route_key": "POST /predict",
        "status": 200,
        "response_length": 321,
        "integration": gateway.Integration("lambda-1", 42),
    }
    return json.loads(gateway.access_log_line(**{**params, **overrides}))


def test_the_access_line_has_the_deployed_formats_keys_in_its_order():
    assert list(_access_line()) == list(json.loads(access_log_format()))
    assert list(_access_line(integration=None, route_key=None)) == list(json.loads(access_log_format()))


def test_the_access_line_gives_each_value_as_http_api_substitutes_its_variable():
    # Text, as the format's "$context.status" in quotes gives it: "200", not 200.
    assert _access_line() == {
        "requestId": "req-1",
        "ip": "192.0.2.7",
        "requestTime": "14/Nov/2023:22:13:20 +0000",
        "httpMethod": "POST",
        "routeKey": "POST /predict",
        "status": "200",
        "protocol": "HTTP/1.1",
        "responseLength": "321",
        "integrationErrorMessage": "-",
        "integrationLatency": "42",
        "integrationRequestId": "lambda-1",
    }


def test_the_access_line_is_the_deployed_formats_text_with_each_variable_substituted():
    # HTTP API writes the format's own text with each $context variable replaced: as compact as the format, and a
    # non-ASCII error message as itself, not \u-escaped (a line that only parses the same would read otherwise).
    error = gateway.function_error("RequestId: lambda-1 Error: naïve résumé")
    line = gateway.access_log_line(
        request_id="req-1",
        source_ip="192.0.2.7",
        now=1_700_000_000.0,
        method="POST",
        route_key="POST /predict",
        status=500,
        response_length=35,
        integration=gateway.Integration("lambda-1", 42, error),
    )
    values = json.loads(line)
    substituted = access_log_format()
    for key, variable in json.loads(access_log_format()).items():
        substituted = substituted.replace(f'"{variable}"', f'"{values[key]}"')
    assert line == substituted
    assert "naïve résumé" in line and values["integrationErrorMessage"] == error


def test_what_has_no_value_is_a_dash_as_in_http_api_access_logs():
    line = _access_line(route_key=None, status=404, response_length=23, integration=None, source_ip=None)
    assert line["routeKey"] == line["ip"] == "-"
    assert [line["integrationErrorMessage"], line["integrationLatency"], line["integrationRequestId"]] == ["-"] * 3
    assert (line["status"], line["responseLength"]) == ("404", "23")
    assert _access_line(response_length=0)["responseLength"] == "0"  # an empty answer's length is 0, not absent


def test_the_access_line_names_the_method_as_the_request_sent_it():
    # $context.httpMethod is the method used: a `post` that no route took (the gateway's 404) is logged as `post`,
    # not as a POST that met a 404. The event's requestContext.http.method is build_event's own, upper-cased.
    line = _access_line(method="post", route_key=None, status=404, integration=None)
    assert (line["httpMethod"], line["routeKey"], line["status"]) == ("post", "-", "404")


def test_a_failed_invocation_carries_its_error_and_the_lambda_request_id():
    error = gateway.function_error('RequestId: lambda-1 Error: Task timed out after 29.00 seconds "quoted"')
    line = _access_line(status=500, integration=gateway.Integration("lambda-1", 29_000, error))
    assert line["integrationErrorMessage"] == (
        "The Lambda function returned the following error: RequestId: lambda-1 Error: Task timed out after 29.00 "
        'seconds "quoted". Check your Lambda function code and try again.'
    )
    assert (line["status"], line["integrationLatency"], line["integrationRequestId"]) == ("500", "29000", "lambda-1")


def test_the_access_lines_time_is_the_events_and_utc_whatever_the_machines_timezone(monkeypatch):
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    try:
        now = 1_700_000_000.5
        assert _access_line(now=now)["requestTime"] == _event(now=now)["requestContext"]["time"]
        assert _access_line(now=now)["requestTime"] == "14/Nov/2023:22:13:20 +0000"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_field_the_deployed_format_gains_shows_up_locally_or_fails(monkeypatch):
    deployed = json.loads(access_log_format())
    with_id_again = {**deployed, "again": "$context.requestId"}
    monkeypatch.setattr(gateway, "access_log_format", lambda: json.dumps(with_id_again))
    assert list(_access_line()) == [*deployed, "again"] and _access_line()["again"] == "req-1"
    with_unknown = {**deployed, "stage": "$context.stage"}
    monkeypatch.setattr(gateway, "access_log_format", lambda: json.dumps(with_unknown))
    with pytest.raises(ValueError, match=r"'stage' is \$context\.stage"):
        _access_line()


def test_a_string_result_without_status_code_is_the_body_itself():
    """Payload 2.0's inference, as AWS's table shows it: the function's output "Hello from Lambda!" is interpreted as
    {"statusCode": 200, "body": "Hello from Lambda!", "headers": {"Content-Type": "application/json"}}: the string is
    the body, not its JSON text (https://docs.aws.amazon.com/apigateway/latest/developerguide/
    http-api-develop-integrations-lambda.html, "Lambda function response for format 2.0")."""
    answer = gateway.response_from_lambda("Hello from Lambda!")
    assert (answer.status, answer.headers, answer.body) == (
        200,
        [("content-type", "application/json")],
        b"Hello from Lambda!",
    )


def test_the_contexts_memory_size_is_text_as_lambdas_python_runtime_gives_it():
    """Lambda's Python runtime builds the context from its environment: `self.memory_limit_in_mb =
    os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")` (aws/aws-lambda-python-runtime-interface-client,
    awslambdaric/lambda_context.py), so it is "256", not 256. Powertools' Logger passes it through as every line's
    function_memory_size (aws_lambda_powertools/logging/lambda_context.py), so a local line said 256 where the
    deployed one says "256", though function_context promises local lines that read like deployed ones."""
    from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model

    context = gateway.function_context("r", endpoint_name="mobilenet-local", region="us-east-1", memory_limit_in_mb=256)
    assert context.memory_limit_in_mb == "256"
    assert build_lambda_context_model(context).function_memory_size == "256"


def test_the_context_has_every_property_lambda_documents_for_python():
    """AWS's list (https://docs.aws.amazon.com/lambda/latest/dg/python-context.html) includes `identity` and
    `client_context`. For an API Gateway invocation Lambda's runtime gives an identity whose two ids are None and no
    client context (awslambdaric/lambda_context.py: `make_obj_from_dict(CognitoIdentity, {})`, and
    `make_obj_from_dict(ClientContext, None)` is None)."""
    context = gateway.function_context("r", endpoint_name="mobilenet-local", region="us-east-1", memory_limit_in_mb=256)
    assert context.client_context is None
    assert (context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id) == (None, None)


@pytest.mark.parametrize(
    ("result", "json_text"),
    [
        ({"headers": {"x-flag": True}}, "true"),
        ({"headers": {"x-none": None}}, None),
        ({"headers": {"x-list": ["a", "b"]}}, "a,b"),
        ({"headers": {"x-object": {"a": 1}}}, None),
        ({"cookies": "a=b"}, "a=b"),
    ],
    ids=["true", "null", "list", "object", "cookies-a-string"],
)
def test_a_results_values_never_reach_the_client_as_pythons_text_of_them(result, json_text):
    """The result is JSON (Lambda hands API Gateway the function's return serialised), and API Gateway is no Python:
    whatever it makes of a header value that is no string or number, or of `cookies` that is no array (AWS's format
    has "cookies": ["cookie1", "cookie2"], http-api-develop-integrations-lambda.html), it is not "True", "None",
    "['a', 'b']" or three Set-Cookie headers "a", "=" and "b". Acceptable: the result refused (its 500, as for a body
    of the wrong type, aws/aws-lambda-go#373), or the value in JSON's words (`json_text`), or the header left out."""
    try:
        answer = gateway.response_from_lambda({"statusCode": 200, "body": "", **result})
    except gateway.MalformedResult:
        return
    sent = [(k, v) for k, v in answer.headers if k.startswith("x-") or k == "set-cookie"]
    assert sent in ([], [(sent[0][0], json_text)] if sent else []), sent


@pytest.mark.parametrize("result", [{"statusCode": 200, "body": "\ud800"}, "a lone \udfff"], ids=["body", "string"])
def test_a_result_utf_8_cannot_carry_fails_as_lambdas_marshalling_does(result):
    """Lambda's runtime sends the result as UTF-8 JSON: a lone surrogate cannot be encoded, and the invocation fails
    ("Unable to marshal response: ..."), a function error, rather than reaching the client as bytes no UTF-8 reader
    accepts."""
    with pytest.raises(gateway.LambdaFunctionError, match=r"^Unable to marshal response: .*surrogates not allowed"):
        gateway.response_from_lambda(result)


def test_every_cookie_header_goes_to_cookies_and_every_result_cookie_is_a_set_cookie_of_its_own():
    """AWS's payload 2.0: "All cookie headers in the request are combined with commas and added to the cookies field.
    In the response to the client, each cookie becomes a set-cookie header" (http-api-develop-integrations-lambda.html).
    A client may send Cookie on several lines (HTTP/2 splits it so), and Set-Cookie cannot be comma-joined (RFC 6265
    3: "Origin servers SHOULD NOT fold multiple Set-Cookie header fields into a single header field")."""
    event = _event(headers=[("Cookie", "a=1"), ("content-type", "image/jpeg"), ("cookie", "b=2; c=3")])
    assert event["cookies"] == ["a=1", "b=2", "c=3"] and "cookie" not in event["headers"]
    result = {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT"]}
    answer = gateway.response_from_lambda(result)
    assert [v for k, v in answer.headers if k == "set-cookie"] == result["cookies"]
