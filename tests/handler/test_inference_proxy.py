"""The Lambda handler end to end with a botocore Stubber in place of SageMaker: routing, validation before
any AWS call, error mapping, headers, logging hygiene and metrics."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import types
import warnings
from types import SimpleNamespace

import botocore
import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from botocore.response import StreamingBody
from botocore.stub import Stubber

from handlers.proxy_core import json_body_cap

from .conftest import (
    ENDPOINT,
    GIF,
    JPEG,
    PIXELS,
    PNG,
    REPO_ROOT,
    SITE,
    WEBP,
    FakeLambdaContext,
    NoCallClient,
    b64,
    json_event,
    load_proxy,
    make_event,
    response_json,
)

PREDICTIONS = [
    {"label": "tabby", "prob": 0.5},
    {"label": "tiger cat", "prob": 0.2},
    {"label": "Egyptian cat", "prob": 0.1},
    {"label": "lynx", "prob": 0.05},
    {"label": "Persian cat", "prob": 0.01},
]
MODEL_BODY = {"predictions": PREDICTIONS, "model": "mobilenet_v2", "weights": "IMAGENET1K_V2", "backend": "eager"}
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/lib/python3.12/site-packages/sagemaker_inference/transformer.py", line 142\n'
    "PIL.UnidentifiedImageError: cannot identify image file"
)


def endpoint_answer(document=MODEL_BODY):
    raw = json.dumps(document).encode()
    return {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"}


@pytest.fixture
def stub(proxy):
    with Stubber(proxy.CLIENT) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def no_call(proxy, monkeypatch):
    client = NoCallClient()
    monkeypatch.setattr(proxy, "CLIENT", client)
    return client


def call(proxy, event, context=None):
    return proxy.handler(event, context or FakeLambdaContext())


def assert_common_headers(response, request_id="req-abc-123"):
    headers = response["headers"]
    assert headers["x-request-id"] == request_id
    assert headers["access-control-allow-origin"] == SITE
    assert headers["vary"] == "origin"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert "x-request-id" in headers["access-control-expose-headers"]


def header_names(response) -> set[str]:
    """The response's header names in lower case: HTTP names are case-insensitive, and a check for one spelling
    alone passed an `Access-Control-Allow-Origin` the browser honours all the same."""
    return {name.lower() for name in response["headers"]}


def assert_error(response, status, code, request_id="req-abc-123"):
    assert response["statusCode"] == status, response["body"]
    body = response_json(response)
    assert set(body) == {"error", "message"} and body["error"] == code and body["message"]
    assert response["headers"]["content-type"] == "application/json"
    assert_common_headers(response, request_id)
    return body


# ---- success ----------------------------------------------------------------------------------------------


def test_raw_jpeg_body_is_forwarded_as_raw_bytes(proxy, stub):
    stub.add_response(
        "invoke_endpoint",
        endpoint_answer(),
        {"EndpointName": ENDPOINT, "Body": JPEG, "ContentType": "image/jpeg", "Accept": "application/json;top_k=3"},
    )
    response = call(proxy, make_event(body=JPEG, query={"top_k": "3"}))
    assert response["statusCode"] == 200, response["body"]
    body = response_json(response)
    assert body["predictions"] == PREDICTIONS[:3]
    assert body["model"] == "mobilenet_v2"
    assert set(body["latency_ms"]) == {"total", "endpoint"}
    assert body["latency_ms"]["total"] >= body["latency_ms"]["endpoint"] >= 0
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    assert_common_headers(response)


def test_total_latency_is_the_whole_invocation_and_endpoint_latency_the_call(proxy, stub, monkeypatch, capsys):
    # A fake clock: the handler's invocation clock steps 1.23456 s per reading, the endpoint call's 0.01234 s.
    readings = {"monotonic": 0.0, "perf_counter": 0.0}

    def clock(name, step):
        def read():
            readings[name] += step
            return readings[name]

        return read

    fake_time = SimpleNamespace(monotonic=clock("monotonic", 1.23456), perf_counter=clock("perf_counter", 0.01234))
    monkeypatch.setattr(proxy, "time", fake_time)
    stub.add_response("invoke_endpoint", endpoint_answer())
    latency = response_json(call(proxy, make_event(body=JPEG)))["latency_ms"]
    # Milliseconds to one decimal, as the README's example: the invocation clock read at the start, when Lambda's
    # remaining time is read (the deadline counts it from then) and at the end: two steps; the call's clock once
    # before it and once after.
    assert latency == {"total": 2469.1, "endpoint": 12.3}
    # The EndpointLatency metric is the same call's time, in the milliseconds its unit declares (unrounded).
    [metric] = [doc["EndpointLatency"] for doc in _log_lines(capsys.readouterr().out) if "EndpointLatency" in doc]
    assert metric == [pytest.approx(12.34)]


def test_json_data_url_png_is_decoded_once_and_sent_with_the_sniffed_type(proxy, stub):
    stub.add_response(
        "invoke_endpoint",
        endpoint_answer(),
        {"EndpointName": ENDPOINT, "Body": PNG, "ContentType": "image/png", "Accept": "application/json;top_k=5"},
    )
    response = call(proxy, json_event({"image": f"data:image/png;base64,{b64(PNG)}"}))
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["predictions"] == PREDICTIONS


def test_json_bare_base64_webp_with_top_k_in_body(proxy, stub):
    stub.add_response(
        "invoke_endpoint",
        endpoint_answer(),
        {"EndpointName": ENDPOINT, "Body": WEBP, "ContentType": "image/webp", "Accept": "application/json;top_k=20"},
    )
    event = json_event({"image": b64(WEBP), "top_k": 20}, content_type="application/json; charset=utf-8")
    response = call(proxy, event)
    assert response["statusCode"] == 200, response["body"]


def test_json_body_that_api_gateway_base64_encoded(proxy, stub):
    stub.add_response(
        "invoke_endpoint",
        endpoint_answer(),
        {"EndpointName": ENDPOINT, "Body": JPEG, "ContentType": "image/jpeg", "Accept": "application/json;top_k=2"},
    )
    event = make_event(body=json.dumps({"image": b64(JPEG), "top_k": 2}).encode(), content_type="application/json")
    assert event["isBase64Encoded"] is True
    assert call(proxy, event)["statusCode"] == 200


def test_named_stage_prefix_is_routed(proxy, stub):
    stub.add_response("invoke_endpoint", endpoint_answer())
    assert call(proxy, make_event(body=JPEG, stage="prod"))["statusCode"] == 200


def test_a_trailing_slash_is_the_same_route(proxy, stub):
    # A client that writes the endpoint as ".../predict/" (a base URL joined with a slash) reaches the same function.
    stub.add_response("invoke_endpoint", endpoint_answer())
    assert call(proxy, make_event(path="/predict/", body=JPEG))["statusCode"] == 200


def test_a_named_stage_path_without_the_stage_prefix_is_routed(proxy, stub):
    # A custom domain's API mapping leaves the stage out of rawPath: only a leading "/prod/" is the stage's.
    stub.add_response("invoke_endpoint", endpoint_answer())
    event = make_event(body=JPEG, stage="prod")
    event["rawPath"] = "/predict"
    assert call(proxy, event)["statusCode"] == 200


def test_a_stage_whose_name_begins_the_route_is_not_cut_from_it(proxy, stub):
    # Only a leading "/<stage>/" is the stage's: a stage named "pred" under a custom domain (no stage in rawPath)
    # must not have "/predict" cut to "ict".
    stub.add_response("invoke_endpoint", endpoint_answer())
    event = make_event(body=JPEG, stage="pred")
    event["rawPath"] = "/predict"
    assert call(proxy, event)["statusCode"] == 200


@pytest.mark.parametrize("path", ["//predict", "/None/predict"])
def test_an_event_without_a_stage_is_the_default_stages(proxy, no_call, path):
    # The $default stage puts no prefix on rawPath: an event naming no stage has nothing cut from "//predict", nor
    # from "/None/predict" (a missing stage is not one named "None").
    event = make_event(path=path, body=JPEG)
    del event["requestContext"]["stage"]
    assert_error(call(proxy, event), 404, "not_found")


def test_request_id_falls_back_to_the_lambda_request_id(proxy, stub):
    stub.add_response("invoke_endpoint", endpoint_answer())
    response = call(proxy, make_event(body=JPEG, request_id=None), FakeLambdaContext(aws_request_id="lambda-1"))
    assert response["headers"]["x-request-id"] == "lambda-1"


def test_without_any_request_id_each_invocation_gets_its_own(proxy, no_call):
    # Neither API Gateway's id nor Lambda's: each answer still carries an id of its own, one a user can quote.
    context = FakeLambdaContext(aws_request_id="")
    ids = [call(proxy, make_event(body=GIF, request_id=None), context)["headers"]["x-request-id"] for _ in range(2)]
    assert all(ids) and ids[0] != ids[1], ids


def test_the_local_origin_from_allowed_origins_is_echoed(proxy, stub):
    stub.add_response("invoke_endpoint", endpoint_answer())
    response = call(proxy, make_event(body=JPEG, origin="http://127.0.0.1:8080"))
    assert response["headers"]["access-control-allow-origin"] == "http://127.0.0.1:8080"


def test_origin_header_name_is_matched_case_insensitively(proxy, stub):
    # Payload 2.0 lower-cases header names; a hand-built or test event may not.
    stub.add_response("invoke_endpoint", endpoint_answer())
    event = make_event(body=JPEG, origin=None, headers={"Origin": "http://127.0.0.1:8080"})
    response = call(proxy, event)
    assert response["headers"]["access-control-allow-origin"] == "http://127.0.0.1:8080"


def test_only_the_origin_header_is_the_origin(proxy, no_call):
    # A header that merely ends in "origin" (a proxy's x-forwarded-origin) names no browser origin: no CORS grant.
    event = make_event(body=GIF, origin=None, headers={"x-forwarded-origin": SITE})
    response = call(proxy, event)
    assert response["statusCode"] == 415
    assert "access-control-allow-origin" not in header_names(response)


# ---- errors decided before any AWS call -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        (make_event(body=b"plain text, definitely not pixels"), 415, "unsupported_media_type"),
        (make_event(body=GIF, content_type="image/gif"), 415, "unsupported_media_type"),
        (make_event(body=GIF), 415, "unsupported_media_type"),
        (make_event(body=JPEG, content_type="text/plain"), 415, "unsupported_media_type"),
        (make_event(body=JPEG, content_type=None), 415, "unsupported_media_type"),
        (make_event(body=JPEG, headers={"content-encoding": "gzip"}), 415, "unsupported_media_type"),
        # Header names in any case, as a hand-written event may spell them (API Gateway lower-cases them).
        (make_event(body=JPEG, headers={"Content-Encoding": "gzip"}), 415, "unsupported_media_type"),
        (make_event(body=None), 400, "bad_request"),
        (make_event(body=b""), 400, "bad_request"),
        (make_event(body="@@not base64@@", base64_body=True), 400, "bad_request"),
        (json_event({"image": "***not base64***"}), 400, "bad_request"),
        (json_event({"image": f"data:image/png;base64,{b64(JPEG)}"}), 400, "bad_request"),
        (json_event({"image": f"data:image/gif;base64,{b64(GIF)}"}), 415, "unsupported_media_type"),
        (json_event([1, 2, 3]), 400, "bad_request"),
        (make_event(body="[" * 50_000, content_type="application/json"), 400, "bad_request"),
        (make_event(body=JPEG, query={"top_k": "0"}), 400, "bad_request"),
        (make_event(body=JPEG, query={"top_k": "21"}), 400, "bad_request"),
        (json_event({"image": b64(JPEG), "top_k": 21}), 400, "bad_request"),
        (json_event({"image": b64(JPEG), "top_k": True}), 400, "bad_request"),
        (json_event({"image": b64(JPEG), "top_k": 1e9}), 400, "bad_request"),
        (make_event(path="/other", body=JPEG), 404, "not_found"),
        # What a route widened to ANY /{proxy+} would hand over: only /predict itself is the route.
        (make_event(path="/predict/extra", body=JPEG), 404, "not_found"),
        (make_event(path="/predictions", body=JPEG), 404, "not_found"),
        # The $default stage puts no prefix on rawPath: "/$default/" is a path of its own, not a stage to strip.
        (make_event(path="/$default/predict", body=JPEG), 404, "not_found"),
        (make_event(path="/", method="GET", body=None), 404, "not_found"),
        # A preflight is answered for the route only: another path gets no CORS grant for it.
        (make_event(path="/other", method="OPTIONS", body=None, content_type=None), 404, "not_found"),
        (make_event(method="GET", body=None), 405, "method_not_allowed"),
        (make_event(method="PUT", body=JPEG), 405, "method_not_allowed"),
        # Allow names POST and OPTIONS only: a HEAD (what a route widened to ANY hands over) is no POST to answer.
        (make_event(method="HEAD", body=JPEG), 405, "method_not_allowed"),
    ],
    ids=lambda value: value if isinstance(value, int | str) else "",
)
def test_rejected_before_any_aws_call(proxy, no_call, event, status, code):
    response = call(proxy, event)
    assert_error(response, status, code)
    assert no_call.calls == 0


def test_405_carries_allow(proxy, no_call):
    response = call(proxy, make_event(method="DELETE", body=None))
    assert response["headers"]["allow"] == "POST, OPTIONS"


def test_top_k_errors_name_the_field(proxy, no_call):
    body = assert_error(call(proxy, json_event({"image": b64(JPEG), "top_k": "five"})), 400, "bad_request")
    assert "top_k" in body["message"]


def test_oversize_raw_body_is_413_with_the_default_4mb_cap(proxy, no_call):
    big = JPEG + b"\x00" * (4 * 1024 * 1024)
    body = assert_error(call(proxy, make_event(body=big)), 413, "payload_too_large")
    assert "4,194,304 bytes (4 MiB)" in body["message"]


def test_oversize_json_body_is_413(proxy, no_call):
    big = JPEG + b"\x00" * (4 * 1024 * 1024)
    assert_error(call(proxy, json_event({"image": b64(big)})), 413, "payload_too_large")


def test_a_json_body_of_nested_arrays_under_every_size_cap_is_a_json_400(proxy, no_call):
    # 5.6 MB of nested empty arrays: under the JSON body cap and Lambda's 6 MB event, and 333 MB of Python objects
    # once parsed, which Lambda kills a 256 MB function for.
    body = '{"image": "' + b64(JPEG) + '", "extra": [' + ("[" * 100 + "]" * 100 + ",") * 28_000 + "[]]}"
    event = make_event(body=body, content_type="application/json")
    cap = json_body_cap(proxy.CONFIG.max_image_bytes)
    assert len(body) <= cap and len(json.dumps(event)) < 6 * 1024 * 1024
    body = assert_error(call(proxy, event), 400, "bad_request")
    assert "arrays and objects" in body["message"]


def test_max_image_bytes_env_lowers_the_cap(proxy_env, capsys, monkeypatch):
    proxy_env.setenv("MAX_IMAGE_BYTES", "1000")
    proxy = load_proxy()
    monkeypatch.setattr(proxy, "CLIENT", NoCallClient())
    body = assert_error(call(proxy, make_event(body=JPEG + b"\x00" * 1000)), 413, "payload_too_large")
    assert "1,000 bytes" in body["message"]


# ---- preflight and CORS -----------------------------------------------------------------------------------


def test_preflight_from_an_allowed_origin(proxy, no_call):
    response = call(proxy, make_event(method="OPTIONS", body=None, content_type=None))
    assert response["statusCode"] == 204 and response["body"] == ""
    headers = response["headers"]
    assert headers["access-control-allow-origin"] == SITE
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"]
    assert headers["x-request-id"] == "req-abc-123"
    assert "content-type" not in header_names(response)  # a 204 has no body to type


def test_preflight_from_another_origin_gets_no_cors_grant(proxy, no_call):
    response = call(proxy, make_event(method="OPTIONS", body=None, origin="https://evil.example"))
    assert response["statusCode"] == 204
    assert "access-control-allow-origin" not in header_names(response)


def test_errors_for_other_origins_carry_no_cors_grant(proxy, no_call):
    response = call(proxy, make_event(body=GIF, origin="https://evil.example"))
    assert response["statusCode"] == 415
    assert "access-control-allow-origin" not in header_names(response)
    assert response["headers"]["vary"] == "origin"
    assert response["headers"]["x-request-id"] == "req-abc-123"


# ---- endpoint errors (Stubber) ----------------------------------------------------------------------------


def test_throttling_exception_reported_as_http_400_is_429_with_retry_after(proxy, stub):
    stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", http_status_code=400)
    response = call(proxy, make_event(body=JPEG))
    assert_error(response, 429, "throttled")
    assert int(response["headers"]["retry-after"]) >= 1


def test_model_not_ready_is_503_with_retry_after(proxy, stub):
    stub.add_client_error("invoke_endpoint", "ModelNotReadyException", "Model is not ready", http_status_code=429)
    response = call(proxy, make_event(body=JPEG))
    assert_error(response, 503, "model_not_ready")
    assert int(response["headers"]["retry-after"]) >= 1


# invalid_image is 400 in the table and 422 when the model says 422: the response takes the error's status.
@pytest.mark.parametrize("status", [400, 422])
def test_model_error_passes_only_the_models_first_line(proxy, stub, status):
    stub.add_client_error(
        "invoke_endpoint",
        "ModelError",
        f"Received client error ({status}) from primary with message ... in account 123456789012",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": status,
            "OriginalMessage": "Image could not be decoded: truncated file\n" + TRACEBACK,
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
        },
    )
    response = call(proxy, make_event(body=JPEG))
    body = assert_error(response, status, "invalid_image")
    assert body["message"] == "Image could not be decoded: truncated file"
    for leaked in ("Traceback", "/opt/", "arn:aws", "123456789012"):
        assert leaked not in response["body"]


def test_model_crash_is_502_with_a_generic_message(proxy, stub):
    stub.add_client_error(
        "invoke_endpoint",
        "ModelError",
        "Received server error (500)",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": 500, "OriginalMessage": "RuntimeError: boom\n" + TRACEBACK},
    )
    response = call(proxy, make_event(body=JPEG))
    body = assert_error(response, 502, "model_error")
    assert "boom" not in body["message"] and "Traceback" not in response["body"]


def test_unknown_endpoint_is_502_and_hides_the_account(proxy, stub):
    stub.add_client_error(
        "invoke_endpoint",
        "ValidationError",
        f"Endpoint {ENDPOINT} of account 123456789012 not found.",
        http_status_code=400,
    )
    response = call(proxy, make_event(body=JPEG))
    assert_error(response, 502, "model_error")
    assert "123456789012" not in response["body"] and ENDPOINT not in response["body"]


def test_sagemaker_front_end_413_is_413(proxy, stub):
    # SageMaker's front end refuses an oversize body with a bare 413 and no error code: only the status tells.
    stub.add_client_error("invoke_endpoint", "", "HTTP content length exceeded 6291456 bytes.", http_status_code=413)
    assert_error(call(proxy, make_event(body=JPEG)), 413, "payload_too_large")


def test_endpoint_answer_that_breaks_the_contract_is_502(proxy, stub):
    stub.add_response("invoke_endpoint", endpoint_answer({"unexpected": True}))
    assert_error(call(proxy, make_event(body=JPEG)), 502, "model_error")


# ---- transport failures and crashes (fake client) ---------------------------------------------------------


class RaisingClient:
    def __init__(self, exc):
        self.exc = exc

    def invoke_endpoint(self, **_):
        raise self.exc


def test_read_timeout_is_504(proxy, monkeypatch):
    from botocore.exceptions import ReadTimeoutError

    monkeypatch.setattr(proxy, "CLIENT", RaisingClient(ReadTimeoutError(endpoint_url="https://runtime/x")))
    assert_error(call(proxy, make_event(body=JPEG)), 504, "endpoint_timeout")


def test_unexpected_exception_is_a_json_500_without_traceback(proxy, monkeypatch, capsys):
    monkeypatch.setattr(proxy, "CLIENT", RaisingClient(KeyError("/var/task/handlers/secret.py")))
    response = call(proxy, make_event(body=JPEG))
    body = assert_error(response, 500, "internal_error")
    assert "/var/task" not in response["body"] and "Traceback" not in body["message"]
    out = capsys.readouterr().out
    assert "Traceback" in out  # ...but the operator gets it in the logs
    # ...and the Errors metric counts it, so an alarm on Errors sees a crashing handler too.
    assert [doc["ErrorCode"] for doc in _log_lines(out) if "Errors" in doc] == ["internal_error"]


# ---- an event of the wrong shape: only a hand-written one (aws lambda invoke, a console test, another service) ----

NOT_AN_EVENT = "The event is not an API Gateway HTTP API (payload format 2.0) event: "


MISSING = object()


def _reshaped(path, value, event=None):
    """`event` (by default a valid JPEG request) with its field at the dotted `path` set to `value` (MISSING: gone)."""
    event = make_event(body=JPEG) if event is None else event
    *parents, name = path.split(".")
    target = event
    for parent in parents:
        target = target[parent]
    if value is MISSING:
        target.pop(name, None)
    else:
        target[name] = value
    return event


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("requestContext", MISSING, "requestContext.http.method is missing."),
        ("requestContext", "ctx", "requestContext must be an object, not a string."),
        ("requestContext.http", MISSING, "requestContext.http.method is missing."),
        ("requestContext.http", ["POST"], "requestContext.http must be an object, not an array."),
        ("requestContext.http.method", MISSING, "requestContext.http.method is missing."),
        ("requestContext.http.method", 5, "requestContext.http.method must be a string (POST), not a number."),
        ("requestContext.stage", 5, "requestContext.stage must be a string, not a number."),
        ("rawPath", MISSING, "rawPath is missing."),
        ("rawPath", 5, "rawPath must be a string (/predict), not a number."),
        # JSON's 2.5 is a Python float: a number too, never "float".
        ("rawPath", 2.5, "rawPath must be a string (/predict), not a number."),
        ("headers", ["a"], "headers must be an object of strings, not an array."),
        ("headers", "content-type: image/jpeg", "headers must be an object of strings, not a string."),
        ("headers.content-type", 5, "headers.content-type must be a string, not a number."),
        ("headers.user-agent", None, "headers.user-agent must be a string, not null."),
        ("queryStringParameters", ["top_k"], "queryStringParameters must be an object of strings, not an array."),
        ("queryStringParameters", {"top_k": 3}, "queryStringParameters.top_k must be a string, not a number."),
        ("body", 5, "body must be a string (base64 when isBase64Encoded is true), not a number."),
        ("body", {"image": "..."}, "body must be a string (base64 when isBase64Encoded is true), not an object."),
        ("body", True, "body must be a string (base64 when isBase64Encoded is true), not a boolean."),
        # Truthy, so bool() would have base64-decoded a text body: the field must be a real boolean.
        ("isBase64Encoded", "yes", "isBase64Encoded must be true or false, not a string."),
        ("isBase64Encoded", "false", "isBase64Encoded must be true or false, not a string."),
        ("isBase64Encoded", 1, "isBase64Encoded must be true or false, not a number."),
    ],
)
def test_an_event_of_the_wrong_shape_is_400_naming_the_field(proxy, no_call, capsys, path, value, message):
    event = _reshaped(path, value)
    response = call(proxy, event)
    if path == "headers":  # no Origin to grant CORS to: the rest as for any 400
        headers = response["headers"]
        assert "access-control-allow-origin" not in header_names(response) and headers["vary"] == "origin"
        assert (headers["x-request-id"], headers["content-type"]) == ("req-abc-123", "application/json")
        body = response_json(response)
    else:
        request_id = "lambda-req-789" if path == "requestContext" else "req-abc-123"  # no requestId to send back
        body = assert_error(response, 400, "bad_request", request_id)  # x-request-id and CORS, as other 400s
    assert response["statusCode"] == 400
    assert body == {"error": "bad_request", "message": NOT_AN_EVENT + message}
    assert no_call.calls == 0
    out = capsys.readouterr().out
    [failed] = [line for line in _log_lines(out) if line.get("message") == "request failed"]
    assert (failed["level"], failed["status"], failed["error"]) == ("INFO", 400, "bad_request")
    assert failed["request_id"] == response["headers"]["x-request-id"]  # the id the client can quote
    assert "unhandled error" not in out and "Traceback" not in out
    _assert_no_payload(out, JPEG)


class AnsweringClient:
    def invoke_endpoint(self, **_):
        return endpoint_answer()


READ_FIELDS = (
    "requestContext",
    "requestContext.http",
    "requestContext.http.method",
    "requestContext.stage",
    "requestContext.requestId",
    "rawPath",
    "headers",
    "headers.content-type",
    "headers.origin",
    "queryStringParameters",
    "queryStringParameters.top_k",
    "body",
    "isBase64Encoded",
    "cookies",
)
JSON_VALUES = (MISSING, None, True, 0, 1.5, "", "x", [], ["x"], {}, {"x": "y"})


def test_no_json_value_in_any_field_the_handler_reads_is_a_500(proxy, monkeypatch, capsys):
    monkeypatch.setattr(proxy, "CLIENT", AnsweringClient())
    for path in READ_FIELDS:
        for value in JSON_VALUES:
            event = _reshaped(path, value, make_event(body=JPEG, query={"top_k": "3"}))
            response = call(proxy, event)
            assert response["statusCode"] != 500, (path, value, response["body"])
    assert "unhandled error" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"rawPath": "/predict"}, "requestContext.http.method is missing."),
        ({"not": "an api gateway event"}, "requestContext.http.method is missing."),
        ({}, "requestContext.http.method is missing."),
        # Payload format 1.0 (a REST API's, or an HTTP API integration set to 1.0) has httpMethod and path instead.
        ({"httpMethod": "POST", "path": "/predict", "requestContext": {}}, "requestContext.http.method is missing."),
        ([make_event(body=JPEG)], "the event must be a JSON object, not an array."),
        ("POST /predict", "the event must be a JSON object, not a string."),
        (5, "the event must be a JSON object, not a number."),
        (None, "the event must be a JSON object, not null."),
    ],
    ids=["rawPath-only", "unrelated", "empty", "payload-1.0", "array", "string", "number", "null"],
)
def test_an_event_that_is_no_http_api_event_at_all_is_400(proxy, no_call, capsys, event, message):
    response = call(proxy, event)
    assert response["statusCode"] == 400
    assert response_json(response) == {"error": "bad_request", "message": NOT_AN_EVENT + message}
    assert response["headers"]["x-request-id"] == "lambda-req-789"
    assert no_call.calls == 0
    out = capsys.readouterr().out
    assert "unhandled error" not in out
    # Counted as a request as well as an error: an Errors count above Requests would read as more than all failing.
    assert [doc["Requests"] for doc in _log_lines(out) if "Requests" in doc] == [[1.0]]


def test_a_request_id_that_is_not_a_string_is_not_sent_back(proxy, no_call):
    response = call(proxy, make_event(body=JPEG, request_id={"id": 1}))
    assert response["statusCode"] == 400
    assert "requestContext.requestId must be a string, not an object." in response_json(response)["message"]
    assert response["headers"]["x-request-id"] == "lambda-req-789"


@pytest.mark.parametrize(
    "event",
    [
        # What API Gateway leaves out when the request has none, or may add over time: all valid.
        {**make_event(body=JPEG), "queryStringParameters": None, "cookies": None, "stageVariables": None},
        {**make_event(body=JPEG), "cookies": ["a=b"], "stageVariables": {"x": "y"}, "pathParameters": {}},
        {**make_event(body=JPEG), "someFieldAwsAddsLater": [1, {"x": None}], "version": "2.1"},
        _reshaped("requestContext.stage", MISSING),
        _reshaped("isBase64Encoded", MISSING, json_event({"image": b64(JPEG)})),
        make_event(
            body=JPEG, method="post", query={"top_k": "5"}, content_type=None, headers={"Content-Type": "image/jpeg"}
        ),
    ],
    ids=["nulls", "cookies-and-more", "new-fields", "no-stage", "no-base64-flag", "lower-case-method"],
)
def test_fields_api_gateway_may_leave_out_or_add_are_not_refused(proxy, stub, event):
    stub.add_response("invoke_endpoint", endpoint_answer())
    response = call(proxy, event)
    assert response["statusCode"] == 200, response["body"]


def test_no_headers_and_no_request_id_are_not_shape_errors(proxy, no_call):
    event = _reshaped("requestContext.requestId", MISSING, _reshaped("headers", MISSING))
    response = call(proxy, event)
    assert response["statusCode"] == 415 and response["headers"]["x-request-id"] == "lambda-req-789"
    assert response_json(response)["message"].startswith("Content-Type is missing")


def test_a_get_without_body_or_query_is_a_405_not_a_shape_error(proxy, no_call):
    event = make_event(method="GET", body=None, content_type=None)
    assert "body" not in event and "queryStringParameters" not in event
    assert_error(call(proxy, event), 405, "method_not_allowed")


def test_a_bug_after_the_shape_check_is_still_a_500(proxy, no_call, monkeypatch, capsys):
    def broken(**_):
        raise TypeError("a bug in the handler")

    monkeypatch.setattr(proxy, "parse_predict_request", broken)
    body = assert_error(call(proxy, make_event(body=JPEG)), 500, "internal_error")
    assert "bug" not in body["message"]
    assert "Traceback" in capsys.readouterr().out


# ---- lone surrogates: API Gateway cannot send one, a hand-written event (aws lambda invoke, a console test) can ----

LONE = "\ud800"


def _lambda_marshal(response):
    """What the Lambda runtime does with the answer on Python 3.12 and 3.13: JSON without ASCII escapes, then UTF-8."""
    return json.dumps(response, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (make_event(body='{"image": "' + LONE + '"}', content_type="application/json"), "body"),
        (make_event(body="\xff\xd8\xff\udcff", content_type="image/jpeg"), "body"),
        (make_event(body=JPEG, headers={"x-note": "\udfff"}), "headers"),
        (make_event(body=JPEG, headers={f"x-{LONE}": "1"}), "headers"),
        (make_event(body=JPEG, path=f"/predict{LONE}"), "rawPath"),
        (make_event(body=JPEG, query={"top_k": f"3{LONE}"}), "rawQueryString"),
        ({**make_event(body=JPEG), "cookies": [f"a={LONE}"]}, "cookies"),
        ({**make_event(body=JPEG), f"x{LONE}": 1}, "field name"),
    ],
    ids=["json-body", "raw-body", "header-value", "header-name", "path", "query", "nested", "key"],
)
def test_a_lone_surrogate_anywhere_in_the_event_is_400_and_logged(proxy, no_call, capsys, event, field):
    response = call(proxy, event)
    body = assert_error(response, 400, "bad_request")
    assert field in body["message"] and "surrogate" in body["message"]
    assert no_call.calls == 0
    _lambda_marshal(response)
    captured = capsys.readouterr()
    assert "Logging error" not in captured.err
    [failed] = [line for line in _log_lines(captured.out) if line.get("message") == "request failed"]
    assert (failed["status"], failed["error"]) == (400, "bad_request")


def test_a_request_id_with_a_lone_surrogate_is_replaced_by_the_lambda_one(proxy, no_call, capsys):
    # Sent back in x-request-id it would break the runtime's UTF-8 encoding of the answer; as the correlation id it
    # would have every log line of the invocation dropped.
    response = call(proxy, make_event(body=JPEG, request_id=f"req-{LONE}"))
    assert response["statusCode"] == 400
    assert response["headers"]["x-request-id"] == "lambda-req-789"
    _lambda_marshal(response)
    captured = capsys.readouterr()
    assert "Logging error" not in captured.err
    [failed] = [line for line in _log_lines(captured.out) if line.get("message") == "request failed"]
    assert failed["request_id"] == "lambda-req-789" and failed["correlation_id"] == f"req-{LONE}"


# ---- configuration at import ------------------------------------------------------------------------------


def test_missing_endpoint_name_fails_the_import_with_a_clear_error(proxy_env, capsys):
    proxy_env.delenv("ENDPOINT_NAME")
    from handlers.proxy_core import ConfigError

    with pytest.raises(ConfigError, match="ENDPOINT_NAME"):
        load_proxy()


def test_client_is_built_once_at_import_and_reused(proxy, stub):
    client = proxy.CLIENT
    stub.add_response("invoke_endpoint", endpoint_answer())
    stub.add_response("invoke_endpoint", endpoint_answer())
    call(proxy, make_event(body=JPEG))
    call(proxy, make_event(body=JPEG))
    assert proxy.CLIENT is client


def test_client_retry_and_timeout_settings(proxy):
    config = proxy.CLIENT.meta.config
    assert config.retries["mode"] == "adaptive"
    assert config.retries["total_max_attempts"] == 2
    assert (config.connect_timeout, config.read_timeout) == (2.0, 10.0)


def test_read_timeout_env_lowers_the_clients_read_timeout(proxy_env, capsys):
    proxy_env.setenv("ENDPOINT_READ_TIMEOUT_S", "1.5")  # what the local stack's fault tests set
    assert load_proxy().CLIENT.meta.config.read_timeout == 1.5


def test_the_deadline_guard_runs_after_the_adaptive_rate_limiters_wait(proxy):
    """The limiter may sleep up to 2 s before an attempt: the guard must judge the attempt after that sleep."""
    handlers = proxy.CLIENT.meta.events._emitter._handlers.prefix_search("before-send.sagemaker-runtime.InvokeEndpoint")
    names = [getattr(h, "__qualname__", repr(h)) for h in handlers]
    limiter = names.index("ClientRateLimiter.on_sending_request")
    guard = next(i for i, name in enumerate(names) if name.endswith("guard_attempt"))
    assert limiter < guard, names


# ---- logs and metrics -------------------------------------------------------------------------------------


def _log_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _assert_no_payload(text, *payloads):
    assert PIXELS.decode() not in text
    # Nor as hex, the other way bytes turn into log text (bytes.hex(), a debugging dump of the first bytes).
    assert PIXELS.hex()[:40] not in text
    for payload in payloads:
        encoded = b64(payload)
        # Any 40-character window of the base64 would do; check a few.
        for start in (0, len(encoded) // 3, len(encoded) - 41):
            assert encoded[start : start + 40] not in text


def test_logs_carry_the_request_id_and_never_the_payload(proxy_env, capsys):
    proxy_env.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")  # must not make the handler log the event
    proxy = load_proxy()
    with Stubber(proxy.CLIENT) as stub:
        stub.add_response("invoke_endpoint", endpoint_answer())
        stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", http_status_code=400)
        call(proxy, make_event(body=JPEG))
        call(proxy, json_event({"image": f"data:image/png;base64,{b64(PNG)}"}))
        call(proxy, json_event({"image": b64(GIF)}))
        call(proxy, json_event({"image": f"data:image/jpeg;base64,{b64(PNG)}"}))
    out = capsys.readouterr().out
    _assert_no_payload(out, JPEG, PNG, GIF)
    logs = [line for line in _log_lines(out) if "level" in line]
    assert logs, out
    assert all(line.get("correlation_id") == "req-abc-123" for line in logs)
    assert {line.get("status") for line in logs} >= {200, 429, 415, 400}


def enabled_once_loaded_under_root_level(level: int, names: tuple[str, ...], at: int) -> dict[str, bool]:
    """Whether each logger in `names` logs at level `at` once the handler is loaded as Lambda's runtime loads it,
    with the root logger at `level` (its application log level), judged while the root is still so: what botocore's
    loggers inherit is judged under the level they inherit from. In a Python of its own, with this environment: the
    root logger's level set here would be every thread's."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = f"""
import json, logging
logging.getLogger().setLevel({level})
import handlers.inference_proxy
print(json.dumps({{name: logging.getLogger(name).isEnabledFor({at}) for name in {list(names)!r}}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_holding_botocore_back_never_switches_on_its_info_lines(proxy_env):
    """Lambda's runtime leaves the root logger at WARNING (no application log level set): holding botocore back from
    DEBUG must not lower it to INFO under that, which put a plain-text "Found credentials in environment variables."
    among the JSON lines at every cold start."""
    names = ("botocore.credentials",)
    assert enabled_once_loaded_under_root_level(logging.WARNING, names, logging.INFO) == dict.fromkeys(names, False)


def test_a_debug_root_logger_at_load_never_switches_on_botocores_debug_lines(proxy_env):
    """Lambda's application log level DEBUG sets the root logger so before the module loads: botocore, which
    inherits it, would log each InvokeEndpoint's parameters (the image), the response bodies and the signed canonical
    request (the session token) at DEBUG. Held at INFO instead; not at the root's level, as WARNING is held above.
    Judged while the root is still at DEBUG: a botocore logger left unset inherits the root's level only then."""
    names = ("botocore", "botocore.endpoint", "botocore.parsers", "botocore.auth")
    assert enabled_once_loaded_under_root_level(logging.DEBUG, names, logging.DEBUG) == dict.fromkeys(names, False)


# One process as one Lambda container: its first invocation, then its second (Powertools keeps the cold start in a
# module global of its own, which a test in this process cannot reset).
CONTAINER = """
import json, sys
from handlers import inference_proxy
from tests.handler.conftest import FakeLambdaContext, make_event

for number in (1, 2):
    event = make_event(method="OPTIONS", body=None, request_id=f"apigw-{number}")
    inference_proxy.handler(event, FakeLambdaContext(aws_request_id=f"lambda-{number}"))
"""


def test_every_line_marks_the_cold_start_and_names_lambdas_request_id(proxy_env):
    """README: a sandbox's first invocation logs cold_start: true; every line carries Lambda's request id
    (function_request_id), which the access log's integrationRequestId names. Only Lambda's first invocation of a
    container is cold: a slow first answer is told from a slow endpoint by it."""
    run = subprocess.run(
        [sys.executable, "-c", CONTAINER], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in _log_lines(run.stdout) if "level" in line]
    assert [(line["request_id"], line["function_request_id"], line["cold_start"]) for line in lines] == [
        ("apigw-1", "lambda-1", True),
        ("apigw-2", "lambda-2", False),
    ]


def test_logs_name_the_request_id_the_client_was_given(proxy, stub, capsys):
    # Without API Gateway's request id the correlation id is empty and the client is given Lambda's request id:
    # the log line must carry that same id, or a user's x-request-id finds nothing in CloudWatch.
    stub.add_response("invoke_endpoint", endpoint_answer())
    response = call(proxy, make_event(body=JPEG, request_id=None), FakeLambdaContext(aws_request_id="lambda-1"))
    assert response["headers"]["x-request-id"] == "lambda-1"
    [done] = [line for line in _log_lines(capsys.readouterr().out) if line.get("message") == "request done"]
    assert done["request_id"] == "lambda-1"


def test_each_invocation_logs_only_its_own_keys_and_5xx_at_warning(proxy_env, capsys):
    proxy = load_proxy()
    with Stubber(proxy.CLIENT) as stub:
        stub.add_response("invoke_endpoint", endpoint_answer())
        stub.add_client_error("invoke_endpoint", "ModelError", "boom", http_status_code=424)
        call(proxy, make_event(body=JPEG, request_id="first"))
        call(proxy, make_event(body=b"GIF89a not accepted", content_type="image/gif", request_id="second"))
        call(proxy, make_event(body=JPEG, request_id="third"))
    lines = {line["correlation_id"]: line for line in _log_lines(capsys.readouterr().out) if "status" in line}
    first, second, third = lines["first"], lines["second"], lines["third"]
    assert (first["level"], first["status"], first["image_bytes"]) == ("INFO", 200, len(JPEG))
    assert (first["image_type"], first["top_k"]) == ("image/jpeg", 5)
    # The 415 is refused before parsing: no image keys, and none left over from the previous invocation.
    assert (second["level"], second["status"]) == ("INFO", 415) and "image_bytes" not in second
    assert (third["level"], third["status"], third["error"]) == ("WARNING", 502, "model_error")
    assert third["detail"].startswith("ModelError"), "the operator's detail is logged (never sent to the client)"


def test_a_refusal_is_logged_with_the_reason_the_client_was_given(proxy, no_call, capsys):
    # One error code covers many rules (bad_request: a missing field, bad base64, a type the bytes belie, ...;
    # unsupported_media_type: a compressed body, a GIF, no type): a rise in one is told apart only by the reason.
    events = [
        json_event({"top_k": 3}),
        json_event({"image": "not base64!"}),
        json_event({"image": f"data:image/png;base64,{b64(JPEG)}"}),
        make_event(body=JPEG, content_type="image/gif"),
        make_event(body=GIF, content_type="application/octet-stream"),
    ]
    answers = [response_json(call(proxy, event))["message"] for event in events]
    failed = [line for line in _log_lines(capsys.readouterr().out) if line.get("message") == "request failed"]
    assert [line.get("reason") for line in failed] == answers
    assert len(set(answers)) == len(answers)
    assert no_call.calls == 0


@pytest.mark.parametrize(
    ("code", "http_status", "fields", "status", "error", "level"),
    [
        # The concurrency alarm's description and README row: each 429 throttled has its line, at INFO.
        ("ThrottlingException", 400, {}, 429, "throttled", "INFO"),
        # The model refused the image: the client's to fix, whatever status the model chose.
        (
            "ModelError",
            424,
            {"OriginalStatusCode": 422, "OriginalMessage": "Image too small"},
            422,
            "invalid_image",
            "INFO",
        ),
        (
            "ModelError",
            424,
            {"OriginalStatusCode": 503, "OriginalMessage": "no worker"},
            503,
            "model_not_ready",
            "WARNING",
        ),
        (
            "ModelError",
            424,
            {"OriginalStatusCode": 0, "OriginalMessage": "timed out"},
            504,
            "endpoint_timeout",
            "WARNING",
        ),
    ],
    ids=["429", "model-422", "model-503", "model-timeout"],
)
def test_a_failed_requests_line_is_at_info_below_500_and_at_warning_from_it(
    proxy, stub, capsys, code, http_status, fields, status, error, level
):
    # README "Logs": 5xx at WARNING, 4xx at INFO, by the status the client got (not by who caused it).
    stub.add_client_error("invoke_endpoint", code, "message", http_status_code=http_status, modeled_fields=fields)
    assert call(proxy, make_event(body=JPEG))["statusCode"] == status
    [failed] = [line for line in _log_lines(capsys.readouterr().out) if line.get("message") == "request failed"]
    assert (failed["level"], failed["status"], failed["error"]) == (level, status, error)


def test_a_generic_answer_adds_no_reason_to_the_log(proxy, stub, capsys):
    stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", http_status_code=400)
    call(proxy, make_event(body=JPEG))
    [failed] = [line for line in _log_lines(capsys.readouterr().out) if line.get("message") == "request failed"]
    assert (failed["error"], failed["detail"]) == ("throttled", "ThrottlingException (HTTP 400): Rate exceeded")
    assert "reason" not in failed, "the error code already says all the table's message says"


def test_unhandled_error_logs_do_not_contain_the_payload(proxy, monkeypatch, capsys):
    monkeypatch.setattr(proxy, "CLIENT", RaisingClient(RuntimeError("boom")))
    call(proxy, make_event(body=JPEG))
    _assert_no_payload(capsys.readouterr().out, JPEG)


def test_the_unhandled_errors_line_carries_the_status_and_error_code_the_client_got(proxy, monkeypatch, capsys):
    # README "Logs and metrics": a line holds the status and the error code. Every other answer's line does ("request
    # done", "request failed"), so an on-call query for the 5xx the API alarm counted filters on status >= 500.
    monkeypatch.setattr(proxy, "CLIENT", RaisingClient(RuntimeError("boom")))
    response = call(proxy, make_event(body=JPEG))
    assert_error(response, 500, "internal_error")
    [line] = [line for line in _log_lines(capsys.readouterr().out) if line.get("message") == "unhandled error"]
    assert line["level"] == "ERROR" and "Traceback" in line["exception"]
    assert (line.get("status"), line.get("error")) == (500, "internal_error")


def test_metrics_report_endpoint_latency_and_errors_by_code(proxy, stub, capsys):
    stub.add_response("invoke_endpoint", endpoint_answer())
    stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", http_status_code=400)
    call(proxy, make_event(body=JPEG))
    call(proxy, make_event(body=JPEG))
    emf = [line for line in _log_lines(capsys.readouterr().out) if "_aws" in line]
    latency = [doc for doc in emf if "EndpointLatency" in doc]
    assert len(latency) == 2
    assert latency[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MobilenetServerlessTest"
    errors = [doc for doc in emf if "Errors" in doc]
    assert [doc["ErrorCode"] for doc in errors] == ["throttled"]
    assert [doc["Errors"] for doc in errors] == [[1.0]]  # one error counted once, not a zero the alarm never sums
    assert ["ErrorCode", "service"] in [sorted(d) for d in errors[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]


def test_each_metric_is_published_in_its_unit(proxy, stub, capsys):
    # CloudWatch keeps a metric's unit with each datum: EndpointLatency's values are milliseconds, and an alarm or a
    # statistic asked for in one unit does not see data published in another.
    stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", http_status_code=400)
    call(proxy, make_event(body=JPEG))
    emf = [line for line in _log_lines(capsys.readouterr().out) if "_aws" in line]
    units = {m["Name"]: m["Unit"] for doc in emf for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"Requests": "Count", "EndpointLatency": "Milliseconds", "Errors": "Count"}


def test_a_containers_first_invocation_publishes_only_the_documented_metrics(proxy, stub, capsys, monkeypatch):
    # README: Requests, EndpointLatency and Errors, each a custom metric billed by the month. Powertools tracks the
    # cold start once per process, so no later test's invocation is a container's first: this one is made so.
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    stub.add_response("invoke_endpoint", endpoint_answer())
    assert call(proxy, make_event(body=JPEG))["statusCode"] == 200
    emf = [line for line in _log_lines(capsys.readouterr().out) if "_aws" in line]
    assert {m["Name"] for doc in emf for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == {
        "Requests",
        "EndpointLatency",
    }


def test_service_name_and_metrics_namespace_default_to_the_documented_ones(proxy_env, capsys, monkeypatch):
    """README: POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE default to inference-proxy and
    MobilenetServerless (every other test sets both, so neither default was ever used)."""
    proxy_env.delenv("POWERTOOLS_SERVICE_NAME")
    proxy_env.delenv("POWERTOOLS_METRICS_NAMESPACE")
    proxy = load_proxy()
    monkeypatch.setattr(proxy, "CLIENT", NoCallClient())
    call(proxy, make_event(method="OPTIONS", body=None))
    lines = _log_lines(capsys.readouterr().out)
    [emf] = [line for line in lines if "_aws" in line]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MobilenetServerless"
    assert emf["service"] == "inference-proxy"
    assert {line["service"] for line in lines if "level" in line} == {"inference-proxy"}


def test_the_errors_metric_carries_the_default_service_dimension(proxy_env, capsys, monkeypatch):
    # Powertools gives a single metric the service dimension only from POWERTOOLS_SERVICE_NAME; without it the Errors
    # count must still carry the service dimension that Requests and EndpointLatency carry, or they no longer line up.
    proxy_env.delenv("POWERTOOLS_SERVICE_NAME")
    proxy = load_proxy()
    monkeypatch.setattr(proxy, "CLIENT", NoCallClient())
    call(proxy, make_event(method="GET", body=None))
    [errors] = [line for line in _log_lines(capsys.readouterr().out) if "Errors" in line]
    assert errors["service"] == "inference-proxy"
    assert ["ErrorCode", "service"] in [sorted(d) for d in errors["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]


def test_the_errors_metric_is_in_the_default_namespace_too(proxy_env, capsys, monkeypatch):
    # Errors is a metric of its own (single_metric): without POWERTOOLS_METRICS_NAMESPACE it must still be published
    # in the handler's namespace, beside Requests, and the client still get its error.
    proxy_env.delenv("POWERTOOLS_METRICS_NAMESPACE")
    proxy = load_proxy()
    monkeypatch.setattr(proxy, "CLIENT", NoCallClient())
    assert_error(call(proxy, make_event(method="GET", body=None)), 405, "method_not_allowed")
    [errors] = [line for line in _log_lines(capsys.readouterr().out) if "Errors" in line]
    assert errors["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MobilenetServerless"


def test_a_service_name_set_in_the_environment_names_the_logs_and_metrics(proxy_env, capsys, monkeypatch):
    proxy_env.setenv("POWERTOOLS_SERVICE_NAME", "another-proxy")
    proxy = load_proxy()
    monkeypatch.setattr(proxy, "CLIENT", NoCallClient())
    call(proxy, make_event(method="GET", body=None))
    lines = _log_lines(capsys.readouterr().out)
    assert {line["service"] for line in lines if "level" in line} == {"another-proxy"}
    assert [line["service"] for line in lines if "_aws" in line] == ["another-proxy", "another-proxy"]


def test_every_invocation_publishes_a_request_count_so_the_flush_is_never_empty(proxy, no_call, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Powertools warns (not fails) on an empty flush; we want neither
        response = call(proxy, make_event(method="OPTIONS", body=None))
    assert response["statusCode"] == 204
    emf = [line for line in _log_lines(capsys.readouterr().out) if "_aws" in line]
    assert [doc["Requests"] for doc in emf] == [[1.0]]


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        (make_event(body=GIF, content_type="image/gif"), 415, "unsupported_media_type"),
        (json_event({"image": "not base64!"}), 400, "bad_request"),
        (make_event(method="OPTIONS", body=None), 204, None),
    ],
    ids=["415", "400", "preflight"],
)
def test_a_request_that_never_calls_the_endpoint_publishes_no_endpoint_latency(
    proxy, no_call, capsys, event, status, code
):
    # EndpointLatency is the InvokeEndpoint call's time: a request answered before any call has none, and a sample for
    # it would pull the metric's average toward 0 ms. It is counted in Requests, and a refusal in Errors by its code.
    assert call(proxy, event)["statusCode"] == status
    emf = [line for line in _log_lines(capsys.readouterr().out) if "_aws" in line]
    names = [m["Name"] for doc in emf for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert sorted(names) == sorted(["Requests"] + (["Errors"] if code else []))
    assert [doc["ErrorCode"] for doc in emf if "Errors" in doc] == ([code] if code else [])
    assert no_call.calls == 0


def raised_from(filename: str) -> BaseException:
    """A ValueError whose innermost frame runs `filename` (compiled under that name; no such file need exist)."""
    try:
        types.FunctionType(compile("raise ValueError('unreadable')", filename, "exec"), {})()
    except ValueError as exc:
        return exc
    raise AssertionError("not raised")


def test_only_a_frame_in_botocores_own_directory_is_an_unreadable_answer(proxy):
    """The 502 is for botocore's parsers alone: a frame in another library beside it (urllib3, or a package whose
    name merely begins with botocore's) raised something of ours or theirs, the 500 of a bug."""
    botocore_dir = os.path.dirname(os.path.abspath(botocore.__file__))
    assert proxy._raised_in(raised_from(f"{botocore_dir}/parsers.py").__traceback__, proxy.BOTOCORE_DIR)
    for elsewhere in (f"{botocore_dir}_stubs/parsers.py", f"{botocore_dir}/../urllib3/util/url.py"):
        assert not proxy._raised_in(raised_from(elsewhere).__traceback__, proxy.BOTOCORE_DIR), elsewhere
