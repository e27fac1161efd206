"""Lambda proxy: API Gateway HTTP API (payload 2.0) POST /predict -> SageMaker InvokeEndpoint.

Thin adapter over handlers.proxy_core (all rules live there). Routing is a small hand-written check rather
than Powertools' APIGatewayHttpResolver: the resolver answers unknown methods with 404 instead of 405 + Allow,
and keeping every answer (errors, preflight, 404) flowing through one error table and one header builder is
simpler without it. Powertools supplies the event data class, the JSON Logger and EMF Metrics.

Module scope runs once per Lambda container: configuration from the environment (a bad one fails init with
a message naming the variable) and the sagemaker-runtime client, reused across invocations.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import logging
import os
import time
import uuid
from typing import Any

import boto3
import botocore
from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from handlers.proxy_core import (
    CONNECT_TIMEOUT_S,
    ERRORS,
    READ_TIMEOUT_S,
    ROUTE_PATH,
    TOTAL_MAX_ATTEMPTS,
    ApiError,
    PredictRequest,
    attempt_fits,
    aws_request_id,
    base_headers,
    check_event_shape,
    check_event_text,
    clip_detail,
    endpoint_accept,
    error_response,
    http_response,
    invoke_deadline,
    is_unicode_text,
    load_config,
    map_client_error,
    map_transport_error,
    parse_endpoint_body,
    parse_predict_request,
)

CONFIG = load_config(os.environ)

# At DEBUG botocore logs each request's parameters (the image included), the response bodies, and the signed
# canonical request (the session token included): a DEBUG root logger (or Lambda's application log level) must
# never put payloads or credentials into the logs, so all of botocore is held at INFO or above. Never below the
# root logger's level when this module loads (Lambda's runtime has set it by then: WARNING unless an application log
# level is configured), or botocore's INFO lines ("Found credentials in environment variables.") would appear.
logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "inference-proxy"
# ensure_ascii back on (Powertools turns it off): a lone surrogate from a hand-written event (its request id is the
# correlation id) cannot be encoded as UTF-8, and stdout would drop the whole line for a "--- Logging error ---".
logger = Logger(service=SERVICE, json_serializer=functools.partial(json.dumps, default=str, separators=(",", ":")))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "MobilenetServerless", service=SERVICE)


@dataclasses.dataclass
class _Call:
    """One InvokeEndpoint call as botocore's hooks see it: the deadline the before-send hook holds each attempt to,
    how many attempts it let go (none when it refused the first), and SageMaker's id of each answer they got, in
    order (the before-parse hook's record, made before botocore parses the answer, which may fail)."""

    deadline: float | None
    sent: int = 0
    answered: list[str | None] = dataclasses.field(default_factory=list)


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("invoke_call", default=None)


class InvokeBudgetExceeded(Exception):
    """Raised by the before-send hook: another attempt would not finish before the deadline.

    Deliberately not a botocore ConnectionError/HTTPClientError, so botocore does not retry it.
    """


def build_client(*, connect_timeout: float = CONNECT_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S) -> Any:
    """A sagemaker-runtime client whose every attempt must fit the current invocation's deadline.

    The endpoint URL honours AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME (boto3 reads it), which the local stack sets.
    """
    client = boto3.client(
        "sagemaker-runtime",
        config=Config(
            retries={"mode": "adaptive", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )
    attempt_s = connect_timeout + read_timeout

    def guard_attempt(**_: Any) -> None:
        call = _CALL.get()
        if call is None:
            return
        if call.deadline is not None and not attempt_fits(time.monotonic(), call.deadline, attempt_s):
            raise InvokeBudgetExceeded(f"an attempt needs {attempt_s:.1f} s and the deadline is closer")
        call.sent += 1

    def note_answer(response_dict: Any = None, **_: Any) -> None:
        # Botocore emits before-parse for every HTTP answer an attempt gets, before its parser reads it: the id of an
        # answer whose retry was then refused by the guard or got no answer, or that botocore could not parse, which
        # the exception does not carry. (Its headers are case-insensitive, as botocore's own parsers read them.)
        call = _CALL.get()
        headers = response_dict.get("headers") if isinstance(response_dict, dict) else None
        request_id = headers.get("x-amzn-requestid") if headers is not None else None
        if call is not None:  # None for an answer without one: an earlier answer's id is not this one's
            call.answered.append(request_id if isinstance(request_id, str) and request_id else None)

    # On the generic event, registered after the adaptive mode's rate limiter: botocore runs handlers of a more
    # specific event name first, which would approve an attempt before the limiter's wait (up to 2 s) was spent.
    # The client only ever calls InvokeEndpoint.
    client.meta.events.register("before-send", guard_attempt)
    client.meta.events.register("before-parse", note_answer)
    return client


CLIENT = build_client(read_timeout=CONFIG.read_timeout_s)


def _remaining_ms(context: Any) -> int | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return getter() if callable(getter) else None


def _request_id(event: dict[str, Any], context: Any) -> str:
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = request_context.get("requestId") if isinstance(request_context, dict) else None
    if not isinstance(request_id, str) or not is_unicode_text(request_id):
        request_id = None  # a hand-written event's: it could not be sent back in x-request-id
    return str(request_id or getattr(context, "aws_request_id", None) or uuid.uuid4())


def _origin(event: dict[str, Any]) -> str | None:
    headers = event.get("headers") if isinstance(event, dict) else None
    if not isinstance(headers, dict):
        return None
    # Payload 2.0 lower-cases header names, but tests and other callers may not.
    for name, value in headers.items():
        if name.lower() == "origin" and isinstance(value, str):
            return value
    return None


def _log_last_answer(call: _Call) -> None:
    """The id of the last answer SageMaker gave this call, for a failure that is not an answer. Nothing when no
    attempt got one: the key stays out of the line (or keeps the id of an answer whose body then timed out)."""
    if call.answered and call.answered[-1]:
        logger.append_keys(endpoint_request_id=call.answered[-1])


BOTOCORE_DIR = os.path.dirname(os.path.abspath(botocore.__file__))
# What botocore's parsers raise on an answer they cannot read (a ModelError whose OriginalStatusCode is no integer,
# an error body of JSON null): not BotoCoreErrors, so they are caught apart.
UNREADABLE_ANSWER_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError)


def _raised_in(tb: Any, directory: str) -> bool:
    """Whether the innermost frame of traceback `tb` runs a file under `directory`."""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(directory + os.sep)


def _invoke(request: PredictRequest, start: float, context: Any) -> tuple[bytes, float]:
    """Call the endpoint; returns (body, endpoint milliseconds). Raises ApiError for every failure."""
    remaining = _remaining_ms(context)
    call = _Call(deadline=invoke_deadline(start, remaining, time.monotonic()))
    token = _CALL.set(call)
    began = time.perf_counter()
    never_sent = False
    try:
        response = CLIENT.invoke_endpoint(
            EndpointName=CONFIG.endpoint_name,
            Body=request.image,
            ContentType=request.content_type,
            Accept=endpoint_accept(request.top_k),
        )
        # The last attempt's id; logged before the body is read, which may still time out.
        logger.append_keys(endpoint_request_id=aws_request_id(response))
        body = response["Body"].read()
    except ClientError as exc:
        logger.append_keys(endpoint_request_id=aws_request_id(exc.response))
        error = exc.response.get("Error") or {}
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        raise map_client_error(str(error.get("Code") or ""), status, exc.response) from None
    except InvokeBudgetExceeded as exc:
        never_sent = not call.sent
        _log_last_answer(call)  # of the attempt whose retry the guard refused; none if it refused the first
        raise ApiError("endpoint_timeout", detail=str(exc)) from None
    except BotoCoreError as exc:
        _log_last_answer(call)  # this attempt got none (or its body timed out); an earlier one may have
        raise map_transport_error(exc) from None
    except UNREADABLE_ANSWER_ERRORS as exc:
        if not _raised_in(exc.__traceback__, BOTOCORE_DIR):
            raise  # a bug of ours (in a hook, say): the 500 with its traceback
        # An invalid answer from upstream (RFC 9110 15.6.3), as a 2xx body that is not top-k JSON is.
        _log_last_answer(call)
        raise ApiError("model_error", detail=clip_detail(f"unreadable answer: {type(exc).__name__}: {exc}")) from None
    finally:
        endpoint_ms = (time.perf_counter() - began) * 1000.0
        if not never_sent:  # a call the deadline guard refused outright never reached the endpoint: no latency sample
            metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=endpoint_ms)
        _CALL.reset(token)
    return body, endpoint_ms


def _path(event: APIGatewayProxyEventV2) -> str:
    # A named stage prefixes rawPath ("/prod/predict"); the $default stage does not.
    raw_path = event.get("rawPath") or ""
    stage = (event.get("requestContext") or {}).get("stage") or "$default"
    if stage != "$default" and raw_path.startswith(f"/{stage}/"):
        return raw_path[len(stage) + 1 :]
    return raw_path


def _route(event: APIGatewayProxyEventV2, headers: dict[str, str], start: float, context: Any) -> dict[str, Any]:
    if _path(event).rstrip("/") != ROUTE_PATH:
        raise ApiError("not_found")
    method = (event.http_method or "").upper()
    if method == "OPTIONS":
        preflight = {k: v for k, v in headers.items() if k != "content-type"}
        return http_response(204, None, preflight)
    if method != "POST":
        raise ApiError("method_not_allowed")

    request = parse_predict_request(
        body=event.body,
        is_base64=bool(event.is_base64_encoded),
        content_type=event.headers.get("content-type"),
        content_encoding=event.headers.get("content-encoding"),
        query=event.query_string_parameters,
        max_image_bytes=CONFIG.max_image_bytes,
    )
    logger.append_keys(image_bytes=len(request.image), image_type=request.content_type, top_k=request.top_k)
    raw, endpoint_ms = _invoke(request, start, context)
    predictions, model = parse_endpoint_body(raw, request.top_k)
    total_ms = (time.monotonic() - start) * 1000.0
    payload = {
        "predictions": predictions,
        "model": model,
        "latency_ms": {"total": round(total_ms, 1), "endpoint": round(endpoint_ms, 1)},
    }
    return http_response(200, payload, headers)


def _count_error(code: str) -> None:
    # A separate EMF document so the ErrorCode dimension does not attach to EndpointLatency.
    with single_metric(
        name="Errors",
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={"service": SERVICE},
    ) as metric:
        metric.add_dimension(name="ErrorCode", value=code)


def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    start = time.monotonic()
    # Counted on every invocation, which also means the EMF flush always has a metric to publish.
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    request_id = _request_id(event, context)
    headers = base_headers(request_id, _origin(event), CONFIG.allowed_origins)
    logger.append_keys(request_id=request_id)
    try:
        check_event_shape(event)
        check_event_text(event)
        response = _route(APIGatewayProxyEventV2(event), headers, start, context)
    except ApiError as error:
        response = error_response(error, headers)
        _count_error(error.code)
        # 5xx is ours or the model's to fix (alarm on it); 4xx is the caller's and stays at INFO.
        log = logger.warning if error.status >= 500 else logger.info
        # The client's message when it is more than the table's: one code covers many rules (bad_request's missing
        # field, bad base64, mislabelled bytes ...), and it is all that tells them apart. It quotes at most a short
        # printable excerpt of a header or field, or the model's one-line reason (in the detail too), never the image.
        reason = error.message if error.message != ERRORS[error.code].message else None
        log(
            "request failed",
            extra={"status": error.status, "error": error.code, "reason": reason, "detail": error.detail},
        )
        return response
    except Exception:
        # Log the traceback for us; the client gets the generic JSON answer and the request id.
        logger.exception("unhandled error", extra={"status": 500, "error": "internal_error"})
        _count_error("internal_error")
        return error_response(ApiError("internal_error"), headers)
    logger.info("request done", extra={"status": response["statusCode"]})
    return response


# log_event=False explicitly: POWERTOOLS_LOGGER_LOG_EVENT=true must never put an image into the logs.
handler = logger.inject_lambda_context(
    metrics.log_metrics(_handle, raise_on_empty_metrics=False),
    log_event=False,
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP,
    clear_state=True,
)
