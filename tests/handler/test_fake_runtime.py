"""The handler against an in-process fake sagemaker-runtime over real HTTP: the real botocore client with its
wire format, error parsing, adaptive retries, timeouts and the per-attempt deadline guard."""

from __future__ import annotations

import dataclasses
import json
import socket
from types import SimpleNamespace

import pytest

from .conftest import (
    ENDPOINT,
    JPEG,
    PNG,
    FakeLambdaContext,
    Reply,
    aws_error_reply,
    b64,
    json_event,
    load_proxy,
    make_event,
    model_error_reply,
    response_json,
)

SUCCESS = Reply(
    200,
    json.dumps(
        {
            "predictions": [{"label": "Egyptian cat", "prob": 0.73}, {"label": "tabby", "prob": 0.1}],
            "model": "mobilenet_v2",
            "weights": "IMAGENET1K_V2",
            "backend": "torchscript",
        }
    ).encode(),
)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/lib/python3.12/site-packages/sagemaker_inference/transformer.py", line 142, in transform\n'
    "ValueError: bad"
)


def call(proxy, event, context=None):
    return proxy.handler(event, context or FakeLambdaContext())


def test_raw_bytes_content_type_and_accept_reach_the_endpoint(runtime_proxy, fake_runtime):
    fake_runtime.script(SUCCESS)
    response = call(runtime_proxy, json_event({"image": f"data:image/png;base64,{b64(PNG)}", "top_k": 2}))
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["predictions"][0] == {"label": "Egyptian cat", "prob": 0.73}
    [seen] = fake_runtime.seen
    assert seen.path == f"/endpoints/{ENDPOINT}/invocations"
    assert seen.body == PNG  # raw, not base64: no 4/3 inflation on the way to SageMaker
    assert seen.headers["content-type"] == "image/png"
    assert seen.headers["accept"] == "application/json;top_k=2"


def test_throttling_as_http_400_is_retried_then_answered_429(runtime_proxy, fake_runtime):
    throttled = aws_error_reply(400, "ThrottlingException", "Rate exceeded")
    fake_runtime.script(throttled, throttled)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 429, response["body"]
    assert response["headers"]["retry-after"]
    assert len(fake_runtime.seen) == 2  # botocore retried once (total_max_attempts=2)


def test_throttling_then_success_is_200(runtime_proxy, fake_runtime):
    fake_runtime.script(aws_error_reply(400, "ThrottlingException", "Rate exceeded"), SUCCESS)
    assert call(runtime_proxy, make_event(body=JPEG))["statusCode"] == 200


def test_model_error_wire_format_maps_from_original_status_code(runtime_proxy, fake_runtime):
    fake_runtime.script(model_error_reply(400, "Image could not be decoded\n" + TRACEBACK))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 400
    assert response_json(response) == {"error": "invalid_image", "message": "Image could not be decoded"}
    for leaked in ("Traceback", "/opt/", "arn:aws", "123456789012", "cloudwatch"):
        assert leaked not in response["body"]


def test_model_error_from_a_crash_is_502(runtime_proxy, fake_runtime):
    fake_runtime.script(model_error_reply(500, "RuntimeError: weights missing\n" + TRACEBACK))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502
    assert "weights missing" not in response["body"]


def test_model_error_503_from_torchserve_without_a_worker_is_503_with_retry_after(runtime_proxy, fake_runtime):
    # TorchServe's answer while its worker loads the model or restarts (its /ping is Healthy meanwhile).
    no_worker = (
        '{\n  "code": 503,\n  "type": "ServiceUnavailableException",\n  "message": "Model \\"model\\" has no '
        'worker to serve inference request. Please use scale workers API to add workers."\n}'
    )
    fake_runtime.script(model_error_reply(503, no_worker))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 503, response["body"]
    assert response_json(response)["error"] == "model_not_ready"
    assert response["headers"]["retry-after"]


def test_model_not_ready_is_503(runtime_proxy, fake_runtime):
    fake_runtime.script(aws_error_reply(429, "ModelNotReadyException", "Model not ready"))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"]


def test_a_bare_429_without_an_error_code_is_retried_then_answered_429(runtime_proxy, fake_runtime):
    # A front end (a load balancer, a WAF) may answer 429 with a plain-text body and no x-amzn-ErrorType: botocore
    # then names the error "429". Recent botocore retries it as throttling (ThrottlingStatusCodeChecker, in 1.44);
    # older ones, which a Lambda runtime may carry, give up after one attempt. Either way the answer is a 429.
    from botocore.retries import standard

    bare = Reply(429, b"Too Many Requests", {"Content-Type": "text/plain"})
    fake_runtime.script(bare, bare)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 429, response["body"]
    assert response_json(response)["error"] == "throttled"
    assert response["headers"]["retry-after"]
    assert len(fake_runtime.seen) == (2 if hasattr(standard, "ThrottlingStatusCodeChecker") else 1)


def test_a_bare_503_without_an_error_code_is_retried_then_answered_503(runtime_proxy, fake_runtime):
    # A front end's plain 503 page: botocore names the error "503" and retries it (a transient status).
    bare = Reply(503, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"})
    fake_runtime.script(bare, bare)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 503, response["body"]
    assert response_json(response)["error"] == "model_not_ready"
    assert response["headers"]["retry-after"]
    assert len(fake_runtime.seen) == 2


def test_a_bare_504_without_an_error_code_is_504(runtime_proxy, fake_runtime):
    bare = Reply(504, b"Gateway Timeout", {"Content-Type": "text/plain"})
    fake_runtime.script(bare, bare)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 504, response["body"]
    assert response_json(response)["error"] == "endpoint_timeout"


def test_internal_failure_is_retried_then_502(runtime_proxy, fake_runtime):
    failure = aws_error_reply(500, "InternalFailure", "An internal error occurred")
    fake_runtime.script(failure, failure)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502
    assert len(fake_runtime.seen) == 2


@pytest.mark.parametrize(
    "reply",
    [
        # A ModelError whose OriginalStatusCode is no integer: botocore's int() raises ValueError.
        Reply(
            424,
            b'{"OriginalStatusCode": "4xx", "OriginalMessage": "bad", "Message": "bad"}',
            {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"},
        ),
        # An error whose JSON body is not an object (a front end's): botocore calls .get on it, AttributeError.
        Reply(400, b"null", {"Content-Type": "application/json"}),
        Reply(400, b"[]", {"Content-Type": "application/json"}),
        # An error type that is no text: botocore looks for "#" in it, TypeError.
        Reply(400, b'{"__type": 5}', {"Content-Type": "application/json"}),
    ],
    ids=["model-error-status-not-an-integer", "error-body-null", "error-body-an-array", "error-type-a-number"],
)
def test_an_answer_botocore_cannot_parse_is_a_502_not_a_crash(runtime_proxy, fake_runtime, capsys, reply):
    # The README's 500 is a bug of ours (traceback logged); an answer the endpoint's side got wrong is its 502
    # model_error, as a 2xx body that is not top-k JSON is (RFC 9110 15.6.3: an invalid response from upstream).
    fake_runtime.script(reply, reply)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502, response["body"]
    assert response_json(response)["error"] == "model_error"
    [line] = logged(capsys)
    assert line["error"] == "model_error", line


def test_an_answer_botocore_cannot_parse_still_logs_sagemakers_request_id(runtime_proxy, fake_runtime, capsys):
    """README "Logs and metrics": once SageMaker answered, with a prediction or an error, the line holds its id of the
    call (x-amzn-RequestId). An answer that botocore cannot read is the one most worth an AWS Support case."""
    unreadable = Reply(
        424,
        b'{"OriginalStatusCode": "4xx", "OriginalMessage": "bad", "Message": "bad"}',
        {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"},
    )
    fake_runtime.script(with_request_id(unreadable, "sm-unreadable"))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502 and len(fake_runtime.seen) == 1, response["body"]
    [line] = logged(capsys)
    assert line["error"] == "model_error" and line["detail"].startswith("unreadable answer: ValueError"), line
    assert line.get("endpoint_request_id") == "sm-unreadable", line


@pytest.mark.parametrize("retried", [False, True], ids=["first-answer", "after-a-retried-500"])
def test_an_answer_botocore_cannot_parse_is_logged_with_its_request_id(runtime_proxy, fake_runtime, capsys, retried):
    unreadable = with_request_id(Reply(400, b"null", {"Content-Type": "application/json"}), "sm-unreadable")
    failure = with_request_id(aws_error_reply(500, "InternalFailure", "An internal error occurred"), "sm-first")
    fake_runtime.script(*([failure] if retried else []), unreadable)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502, response["body"]
    [line] = logged(capsys)
    assert line["error"] == "model_error" and line.get("endpoint_request_id") == "sm-unreadable", line


def test_a_value_error_of_our_own_botocore_hook_is_still_the_500_of_a_bug(
    runtime_proxy, fake_runtime, capsys, monkeypatch
):
    """Only botocore's own failures to read an answer are the 502: the same exception raised in one of our hooks
    (the attempt guard) is a bug of ours, the 500 with its traceback logged."""

    def broken(*args):
        raise ValueError("a bug in the guard")

    monkeypatch.setattr(runtime_proxy, "attempt_fits", broken)
    fake_runtime.script(SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 500, response["body"]
    assert response_json(response)["error"] == "internal_error"
    assert fake_runtime.seen == []
    assert "a bug in the guard" in capsys.readouterr().out


def test_read_timeout_is_504(runtime_proxy, fake_runtime, monkeypatch):
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=1.0, read_timeout=0.3))
    held = Reply(200, SUCCESS.body, held=True)
    fake_runtime.script(held, held)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 504, response["body"]
    assert response_json(response)["error"] == "endpoint_timeout"


def with_request_id(reply, request_id):
    return dataclasses.replace(reply, headers={**reply.headers, "x-amzn-RequestId": request_id})


def logged(capsys):
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") in ("request done", "request failed")]


def test_the_log_lines_carry_sagemakers_request_id(runtime_proxy, fake_runtime, capsys):
    """SageMaker's x-amzn-RequestId is the id an AWS Support case asks for: without it, a proxy line was tied to
    SageMaker's side of the call only by its time. Logged for an answer and for an error alike; of a retried call,
    the answer the client's status came from."""
    throttled = aws_error_reply(400, "ThrottlingException", "Rate exceeded")
    fake_runtime.script(
        with_request_id(SUCCESS, "sm-ok"),
        with_request_id(model_error_reply(500, "boom\n" + TRACEBACK), "sm-crash"),
        with_request_id(throttled, "sm-throttled-1"),
        with_request_id(throttled, "sm-throttled-2"),
    )
    for _ in range(3):
        call(runtime_proxy, make_event(body=JPEG))
    lines = logged(capsys)
    assert [(line["status"], line.get("endpoint_request_id")) for line in lines] == [
        (200, "sm-ok"),
        (502, "sm-crash"),
        (429, "sm-throttled-2"),
    ]
    # An answer without the header (as from a front end that sent none) adds no key rather than a guess.
    fake_runtime.script(SUCCESS)
    call(runtime_proxy, make_event(body=JPEG))
    [line] = logged(capsys)
    assert line["status"] == 200 and "endpoint_request_id" not in line


def test_a_retried_calls_last_answer_without_an_id_logs_none_not_the_answer_before_it(
    runtime_proxy, fake_runtime, capsys
):
    """The id is of the answer the client's status came from: a retry answered by a front end that sent no
    x-amzn-RequestId leaves the key out, never the first attempt's id, which is another answer's."""
    failure = aws_error_reply(500, "InternalFailure", "An internal error occurred")
    # The retry's answer is one botocore cannot parse, so its id can only come from the hooks' record.
    unreadable = Reply(
        424,
        b'{"OriginalStatusCode": "4xx", "OriginalMessage": "bad", "Message": "bad"}',
        {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"},
    )
    fake_runtime.script(with_request_id(failure, "sm-first"), unreadable)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502, response["body"]
    assert len(fake_runtime.seen) == 2
    [line] = logged(capsys)
    assert line["detail"].startswith("unreadable answer") and "endpoint_request_id" not in line, line


def test_connection_refused_is_503(proxy_env, capsys):
    # Bound but not listening: connections are refused, and no other process can take the port meanwhile (a port
    # closed again before the call could be listened on by then).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        proxy_env.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{port}")
        proxy = load_proxy()
        response = call(proxy, make_event(body=JPEG))
    assert response["statusCode"] == 503, response["body"]
    assert response_json(response)["error"] == "model_not_ready"
    # No answer came, so there is no SageMaker request id to log.
    [line] = logged(capsys)
    assert line["error"] == "model_not_ready" and "endpoint_request_id" not in line


def test_a_connection_closed_before_any_answer_is_retried_then_502(runtime_proxy, fake_runtime, capsys):
    # botocore's ConnectionClosedError: a connection made, then closed with no answer. Not the 503 of an endpoint
    # that cannot be reached (no connection at all, above); there is no SageMaker id to log.
    fake_runtime.script(Reply(hang_up=True), Reply(hang_up=True))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502, response["body"]
    assert response_json(response)["error"] == "model_error"
    assert len(fake_runtime.seen) == 2
    [line] = logged(capsys)
    assert line["error"] == "model_error" and "endpoint_request_id" not in line, line
    assert line["detail"].startswith("ConnectionClosedError: ")


def test_an_answer_whose_body_is_cut_short_is_502_and_logs_its_id(runtime_proxy, fake_runtime, capsys):
    # The headers promised the whole body and the connection closed halfway: read after InvokeEndpoint returned,
    # so botocore does not retry it, and SageMaker answered, so its id is logged.
    fake_runtime.script(with_request_id(dataclasses.replace(SUCCESS, body_cut=True), "sm-cut"), SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 502, response["body"]
    assert response_json(response)["error"] == "model_error"
    assert len(fake_runtime.seen) == 1
    [line] = logged(capsys)
    assert line["error"] == "model_error" and line.get("endpoint_request_id") == "sm-cut", line


def test_deadline_guard_skips_an_attempt_that_cannot_finish(runtime_proxy, fake_runtime, monkeypatch):
    # Attempts need 0.2 + 0.3 = 0.5 s; 2.4 s left in Lambda leaves 0.4 s after the safety margin.
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=0.2, read_timeout=0.3))
    fake_runtime.script(SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG), FakeLambdaContext(remaining_ms=2_400))
    assert response["statusCode"] == 504
    assert fake_runtime.seen == []


def test_a_call_the_deadline_guard_never_sent_publishes_no_endpoint_latency(
    runtime_proxy, fake_runtime, monkeypatch, capsys
):
    # As above: no attempt fits, nothing reaches the endpoint. CloudWatch takes each value as one sample (Average is
    # Sum / SampleCount), so the time the guard took to refuse would pull EndpointLatency's average and low
    # percentiles down, and its SampleCount would count calls that were never made.
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=0.2, read_timeout=0.3))
    fake_runtime.script(SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG), FakeLambdaContext(remaining_ms=2_400))
    assert response["statusCode"] == 504 and fake_runtime.seen == []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [line for line in lines if "_aws" in line]
    assert [doc["Requests"] for doc in emf if "Requests" in doc] == [[1.0]]  # the request is counted
    assert [doc["ErrorCode"] for doc in emf if "Errors" in doc] == ["endpoint_timeout"]  # and its error
    assert [doc["EndpointLatency"] for doc in emf if "EndpointLatency" in doc] == []


def test_deadline_guard_stops_the_retry_but_not_the_first_attempt(runtime_proxy, fake_runtime, monkeypatch):
    # Attempts need 0.2 + 1.0 = 1.2 s and the deadline is 2.0 s away: the first attempt fits, but after its
    # read timeout (>= 1.0 s) a second one cannot, so botocore's retry must not be sent.
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=0.2, read_timeout=1.0))
    held = Reply(200, SUCCESS.body, held=True)
    fake_runtime.script(held, held)
    response = call(runtime_proxy, make_event(body=JPEG), FakeLambdaContext(remaining_ms=4_000))
    assert response["statusCode"] == 504
    assert len(fake_runtime.seen) == 1


def test_a_retry_the_deadline_guard_stops_still_logs_the_answer_before_it(
    runtime_proxy, fake_runtime, monkeypatch, capsys
):
    """SageMaker answered the first attempt (its 500 InternalFailure, which botocore retries) and the guard then
    refused the retry: the line had no endpoint_request_id, though SageMaker had an id for the call it answered,
    the one an AWS Support case about this 504 asks for."""
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=0.2, read_timeout=3.0))
    # Attempts need 3.2 s and the deadline is 4.0 s away (6 s left in Lambda, less its 2 s margin): the first
    # attempt fits, and after its answer, 1 s later, no second one can.
    failure = with_request_id(aws_error_reply(500, "InternalFailure", "oops"), "sm-first")
    fake_runtime.script(dataclasses.replace(failure, delay_s=1.0), SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG), FakeLambdaContext(remaining_ms=6_000))
    assert response["statusCode"] == 504 and len(fake_runtime.seen) == 1, response["body"]
    [line] = logged(capsys)
    assert line["error"] == "endpoint_timeout" and line.get("endpoint_request_id") == "sm-first", line


def test_a_retry_that_got_no_answer_logs_the_answer_before_it(runtime_proxy, fake_runtime, monkeypatch, capsys):
    # The first attempt answered 503 ServiceUnavailable, the retry timed out before any header: the one answer's id.
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=1.0, read_timeout=0.3))
    unavailable = aws_error_reply(503, "ServiceUnavailable", "The service is unavailable. Please try again later.")
    fake_runtime.script(with_request_id(unavailable, "sm-unavailable"), Reply(200, SUCCESS.body, held=True))
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 504 and len(fake_runtime.seen) == 2, response["body"]
    [line] = logged(capsys)
    assert line["error"] == "endpoint_timeout" and line.get("endpoint_request_id") == "sm-unavailable", line


def test_an_answer_whose_body_timed_out_after_a_retry_logs_its_own_id(runtime_proxy, fake_runtime, monkeypatch, capsys):
    """The first attempt answered 500 InternalFailure (retried), the second 200 with its headers, and its body then
    timed out: the id logged is the second answer's, the call the client's 504 came from, not the first's."""
    monkeypatch.setattr(runtime_proxy, "CLIENT", runtime_proxy.build_client(connect_timeout=1.0, read_timeout=0.3))
    failure = with_request_id(aws_error_reply(500, "InternalFailure", "oops"), "sm-first")
    stalled = dataclasses.replace(with_request_id(SUCCESS, "sm-second"), body_held=True)
    fake_runtime.script(failure, stalled)
    response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 504 and len(fake_runtime.seen) == 2, response["body"]
    [line] = logged(capsys)
    assert line["error"] == "endpoint_timeout" and line.get("endpoint_request_id") == "sm-second", line


def test_the_deadline_is_the_lambdas_end_less_its_margin_however_long_validation_took(
    runtime_proxy, fake_runtime, monkeypatch
):
    """README: an attempt starts only if it fits before min(start + 25 s, Lambda end - 2 s). Here Lambda ends 15.5 s
    after the handler starts and validation takes 1 s: an attempt of 12 s that starts then ends at 13 s, before the
    13.5 s deadline, so it must be sent. The handler's clock (its own name `time`) is a fake one, so nothing waits."""
    clock = SimpleNamespace(now=1000.0)
    end = clock.now + 15.5
    monkeypatch.setattr(
        runtime_proxy, "time", SimpleNamespace(monotonic=lambda: clock.now, perf_counter=lambda: clock.now)
    )
    parse = runtime_proxy.parse_predict_request

    def slow_parse(**kwargs):
        clock.now += 1.0  # validation takes a second
        return parse(**kwargs)

    monkeypatch.setattr(runtime_proxy, "parse_predict_request", slow_parse)
    context = SimpleNamespace(**vars(FakeLambdaContext()))
    context.get_remaining_time_in_millis = lambda: int((end - clock.now) * 1000)
    fake_runtime.script(SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG), context)
    assert response["statusCode"] == 200, response["body"]
    assert len(fake_runtime.seen) == 1


def test_default_budget_allows_the_retry(runtime_proxy, fake_runtime):
    fake_runtime.script(aws_error_reply(500, "InternalFailure", "oops"), SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG), FakeLambdaContext(remaining_ms=29_000))
    assert response["statusCode"] == 200
    assert len(fake_runtime.seen) == 2


@pytest.mark.parametrize("extra", [{}, {"get_remaining_time_in_millis": 29_000}], ids=["missing", "a-value"])
def test_a_context_without_a_remaining_time_is_bounded_by_the_budget_alone(runtime_proxy, fake_runtime, extra):
    # A caller's context (a test's, a tool's) may lack get_remaining_time_in_millis, or hold a value by that name
    # rather than the method: the handler's own budget then bounds the call (the value is not called, which was a
    # TypeError and a 500), which is sent rather than refused as out of time before its first attempt.
    context = SimpleNamespace(**vars(FakeLambdaContext()), **extra)  # its fields, without the method
    fake_runtime.script(SUCCESS)
    response = call(runtime_proxy, make_event(body=JPEG), context)
    assert response["statusCode"] == 200, response["body"]
    assert len(fake_runtime.seen) == 1


def test_debug_logging_never_records_the_image(runtime_proxy, fake_runtime, caplog):
    import logging

    fake_runtime.script(SUCCESS)
    with caplog.at_level(logging.DEBUG):  # root at DEBUG, as LOG_LEVEL=DEBUG or Lambda's log level would set
        response = call(runtime_proxy, make_event(body=JPEG))
    assert response["statusCode"] == 200, response["body"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert JPEG[:16] not in text.encode("latin-1", "replace") and repr(JPEG[:16])[2:-1] not in text
