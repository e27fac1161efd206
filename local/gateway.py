"""API Gateway HTTP API emulation: the payload-2.0 event the Lambda receives, and its response back to HTTP.

Pure functions, so the event shape is tested without a server. What AWS documents and this mirrors:
header names lower-cased and repeated headers comma-joined; `rawPath`/`rawQueryString`; `requestContext.http`;
a request id; the headers API Gateway adds itself (x-forwarded-for/-port/-proto, x-amzn-trace-id: see
_gateway_headers); `isBase64Encoded` true for bodies that are not of a text media type (what AWS does, not
documents: see _TEXT_TYPES); 10 MB request cap; 10 KB of request line and headers; Lambda's 6 MiB event limit
(event_too_large); the integration timeout (29 s, as deployed); the stage's throttling (StageThrottle); the stage's
access log line (access_log_line).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from components.policies import access_log_format, lambda_log_group_name
from components.settings import function_name_for, partition_for_region
from handlers.proxy_core import LAMBDA_TIMEOUT_S
from local.runtime import ACCOUNT

MAX_BODY_BYTES = 10 * 1024 * 1024
# Lambda refuses a synchronous invocation whose event (JSON) exceeds this many bytes, and API Gateway then answers
# 413 itself: a raw image body is base64-encoded into the event, so from about 4.7 MB it never reaches the function,
# though API Gateway accepts 10 MB.
LAMBDA_MAX_EVENT_BYTES = 6 * 1024 * 1024
# Lambda's synchronous response limit, as its error gives it: "Response payload size exceeded maximum allowed payload
# size (6291556 bytes)." (Lambda quotas, "Invocation payload (request and response)").
LAMBDA_MAX_RESPONSE_BYTES = 6_291_556
MAX_HEADER_BYTES = 10 * 1024  # request line + headers
PROTOCOL = "HTTP/1.1"  # the event's requestContext.http.protocol and the access log's $context.protocol
INTEGRATION_TIMEOUT_S = float(LAMBDA_TIMEOUT_S)  # what components.inference_api configures on the integration
# The gateway's own answers, in its own shape ({"message": ...}), for what never reaches the Lambda.
GATEWAY_ERRORS = {
    404: "Not Found",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
# The media types an HTTP API passes to the function as text; AWS does not document the list. Observed on live AWS
# (ministackorg/ministack#766): text/* and exactly these three. Everything else is base64-encoded, a missing type and
# application/x-www-form-urlencoded included, so also the +json/+xml types (application/vnd.api+json, image/svg+xml).
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


def is_text_body(content_type: str | None, body: bytes) -> bool:
    """A body of a text media type (text/*, application/json, application/xml, application/javascript) that is
    valid UTF-8 passes as text; everything else is base64-encoded."""
    media = (content_type or "").split(";")[0].strip().lower()
    if not (media.startswith("text/") or media in _TEXT_TYPES):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _gateway_headers(joined: dict[str, str], *, source_ip: str, scheme: str, port: int, now: float) -> None:
    """The headers API Gateway adds to the ones the client sent. AWS's own sample of an HTTP API event
    (aws/aws-lambda-go, events/testdata/apigw-v2-request-no-authorizer.json) has, besides the client's:
        "x-amzn-trace-id": "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c",
        "x-forwarded-for": "1.2.3.4",  (= requestContext.http.sourceIp)
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https"
    In the cloud the scheme and port are always https and 443; here they are those of the connection (the scheme a
    TLS-terminating forwarder on this machine names: server.LoopbackForwardedProto). What an HTTP API does with such
    headers when the client sent them is not documented. Port and scheme are the gateway's own, whatever the client
    said (a REST API was seen to replace a client's `X-Forwarded-Port: 4431` and `X-Forwarded-Proto: http`:
    ustayready/fireprox#12). X-Forwarded-For gets the TCP peer appended to what the client sent, as AWS documents for
    its load balancers' default mode ("the load balancer appends the client IP address to the existing header") and
    as REST APIs were seen to do: the last entry is always the gateway's. A client's own trace id is kept."""
    sent = joined.get("x-forwarded-for")
    joined["x-forwarded-for"] = f"{sent}, {source_ip}" if sent else source_ip
    joined["x-forwarded-port"] = str(port)
    joined["x-forwarded-proto"] = scheme
    if "x-amzn-trace-id" not in joined:  # X-Ray's format: Root=1-<epoch seconds, 8 hex>-<24 random hex>
        joined["x-amzn-trace-id"] = f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}"


def request_time(now: float) -> str:
    """A request's time as API Gateway gives it (the event's requestContext.time, $context.requestTime): CLF, in UTC,
    whatever the machine's zone."""
    return datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def build_event(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    scheme: str,
    port: int,
    route_key: str,
    request_id: str | None = None,
    stage: str = "$default",
    api_id: str = "local",
    now: float | None = None,
) -> dict:
    """The event API Gateway HTTP API (payload format 2.0) hands to a Lambda proxy integration. `source_ip`,
    `scheme` and `port` are the connection's: its peer, and the scheme and port the client connected with."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = time.time() if now is None else now
    _gateway_headers(joined, source_ip=source_ip, scheme=scheme, port=port, now=now)
    request_id = request_id or new_request_id()
    text = is_text_body(joined.get("content-type"), body)
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query_string,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": joined.get("host", "localhost"),
            "domainPrefix": joined.get("host", "localhost").split(".")[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": PROTOCOL,
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": bool(body) and not text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = body.decode("utf-8") if text else base64.b64encode(body).decode("ascii")
    return event


class StageThrottle:
    """The stage's route throttling, as API Gateway documents it: a token bucket of `burst` tokens (full at the
    start), refilled at `rate` tokens a second; a request that finds no token is API Gateway's own 429."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"stage throttling needs rate > 0 and burst >= 1, got rate {rate}, burst {burst}")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = float(burst), clock()

    def admit(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


# A result whose body is not a string is refused: API Gateway answers its own 500, and its access log gives this as
# $context.integrationErrorMessage (tried on AWS by aws-lambda-go's maintainer: aws/aws-lambda-go#373).
MALFORMED = "The response from the Lambda function doesn't match the format that API Gateway expects."
WRONG_BODY_TYPE = f'{MALFORMED} Lambda body contains the wrong type for field "body"'
# RFC 9110 5.1 (a name is a token) and 5.5 (no CR, LF or NUL in a value): what HTTP cannot carry.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
# API Gateway frames its own answers: a function's framing headers are not passed on.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class MalformedResult(ValueError):
    """A Lambda result API Gateway refuses: its own 500 for the client, the reason for the access log."""


class LambdaFunctionError(RuntimeError):
    """The invocation failed in Lambda after the handler returned (a result JSON cannot carry, or one over the
    response limit): a function error, API Gateway's 500; the message is Lambda's errorMessage."""


def marshal(result: object) -> object:
    """The result as Lambda hands it to API Gateway: serialised as UTF-8 JSON by the runtime (awslambdaric's
    lambda_runtime_marshaller: "Unable to marshal response: ..."; a lone surrogate cannot be UTF-8), within the
    response limit, and read back."""
    try:
        payload = json.dumps(result, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as e:  # UnicodeEncodeError is a ValueError
        raise LambdaFunctionError(f"Unable to marshal response: {e}") from None
    if len(payload) > LAMBDA_MAX_RESPONSE_BYTES:
        raise LambdaFunctionError(
            f"Response payload size exceeded maximum allowed payload size ({LAMBDA_MAX_RESPONSE_BYTES} bytes)."
        )
    return json.loads(payload)


def _status(value: object) -> int:
    """statusCode as API Gateway takes it: a number, or a string of digits ("201"), of an HTTP status (RFC 9110 15)."""
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3
    if digits or (isinstance(value, float) and value.is_integer()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise MalformedResult(f"{MALFORMED} statusCode {value!r} is no HTTP status")
    return value


def _header_value(name: str, value: object) -> str | None:
    """A header value in JSON's words (a number, true or false), None for null (left out); refused otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = json.dumps(value)
    if not isinstance(value, str) or _BAD_VALUE.search(value):
        raise MalformedResult(f"{MALFORMED} header {name!r} has a value HTTP cannot carry")
    return value


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def response_from_lambda(result: object) -> HttpResponse:
    """Turn a Lambda proxy result (payload 2.0) into the HTTP response API Gateway sends. Raises
    LambdaFunctionError for what Lambda itself fails, MalformedResult for what API Gateway refuses."""
    result = marshal(result)
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0 infers a 200 JSON answer from anything else, a string being the body itself (AWS's table of
        # format 2.0 responses); our handler never relies on it.
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], body.encode("utf-8"))
    status = _status(result["statusCode"])
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedResult(WRONG_BODY_TYPE)
    body = body or ""
    if result.get("isBase64Encoded") is True:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResult(f"{MALFORMED} the body is marked isBase64Encoded and is not base64") from None
    else:
        raw = body.encode("utf-8")
    given = result.get("headers") or {}
    cookies = result.get("cookies") or []
    if not isinstance(given, dict) or not isinstance(cookies, list):
        raise MalformedResult(f"{MALFORMED} headers must be an object and cookies an array")
    # Format 2.0 has no multiValueHeaders (repeated values go comma-joined in headers, cookies in cookies).
    headers = []
    for name, value in given.items():
        if not _HEADER_NAME.fullmatch(name):
            raise MalformedResult(f"{MALFORMED} header name {name!r} is no HTTP token")
        text = _header_value(name, value)
        if text is not None and name.lower() not in _FRAMING:
            headers.append((name.lower(), text))
    for cookie in cookies:
        if not isinstance(cookie, str) or _BAD_VALUE.search(cookie):
            raise MalformedResult(f"{MALFORMED} a cookie is no string HTTP can carry")
        headers.append(("set-cookie", cookie))
    return HttpResponse(status, headers, raw)


def with_listed(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """`headers` with `value` in the list header `name` (Vary) and that header on one line: the values of every
    `name` line and then `value`, each once (compared case-insensitively, as Vary's field names are). A client saw
    `vary: origin` twice, the function's and the gateway's."""
    listed: list[str] = []
    for item in [part.strip() for k, v in headers if k.lower() == name for part in v.split(",")] + [value]:
        if item and item.lower() not in {seen.lower() for seen in listed}:
            listed.append(item)
    return [(k, v) for k, v in headers if k.lower() != name] + [(name, ", ".join(listed))]


def event_too_large(event: dict) -> bool:
    # Serialised every time: escapes and UTF-8 (a newline is two bytes, a control character six, a latin-1 header
    # byte two) make any shortcut on the body's length wrong. A few tens of microseconds for a normal request.
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()) > LAMBDA_MAX_EVENT_BYTES


def new_request_id() -> str:
    """An id for one request, as API Gateway gives each its `apigw-requestid` (and the event's requestId)."""
    return uuid.uuid4().hex[:16]


def gateway_error(status: int) -> HttpResponse:
    # Compact, as an HTTP API writes them: AWS's troubleshooting page quotes {"message":"Internal Server Error"}
    # (the REST API's bodies, {"message": "Internal server error"}, differ in both spacing and case).
    body = json.dumps({"message": GATEWAY_ERRORS[status]}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


@dataclass
class CognitoIdentity:
    """The context's identity: for an API Gateway invocation Lambda's Python runtime gives both ids as None."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass
class LambdaContext:
    """Lambda's context object with the attributes a deployed function's has. The handler reads aws_request_id and
    the remaining time, Powertools' logger the name, memory size, ARN and request id; the version, the log group
    and stream, the identity and the client context are for any other code, as in Lambda. The memory size is text, as
    Lambda's Python runtime reads it from AWS_LAMBDA_FUNCTION_MEMORY_SIZE (awslambdaric/lambda_context.py). The
    remaining time counts down from `timeout_s`."""

    aws_request_id: str
    function_name: str = "mobilenet-local-proxy"
    function_version: str = "$LATEST"
    memory_limit_in_mb: str = "256"
    timeout_s: float = float(LAMBDA_TIMEOUT_S)
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:mobilenet-local-proxy"
    log_group_name: str = "/aws/lambda/mobilenet-local-proxy"
    log_stream_name: str = "local"
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: None = None
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def function_context(aws_request_id: str, *, endpoint_name: str, region: str, memory_limit_in_mb: int) -> LambdaContext:
    """The context the deployed proxy gets: its name (the endpoint's, as the program names it), ARN, log group and
    memory size in the stack's region. Powertools logs them with every line, so local lines read like deployed ones
    (the account is a placeholder)."""
    name = function_name_for(endpoint_name)
    return LambdaContext(
        aws_request_id=aws_request_id,
        function_name=name,
        memory_limit_in_mb=str(memory_limit_in_mb),
        invoked_function_arn=f"arn:{partition_for_region(region)}:lambda:{region}:{ACCOUNT}:function:{name}",
        log_group_name=lambda_log_group_name(name),
    )


@dataclass(frozen=True)
class Integration:
    """What the Lambda integration did for one request, as the stage's access log tells it."""

    request_id: str  # Lambda's request id of the invocation ($context.integration.requestId)
    latency_ms: int  # the invocation's time ($context.integrationLatency)
    error: str | None = None  # $context.integrationErrorMessage, for an invocation that failed


def function_error(error_message: str) -> str:
    """$context.integrationErrorMessage of an invocation that failed with a function error (the handler raised, timed
    out, or its runtime exited): Lambda's errorMessage in HTTP API's words. AWS documents the variable, not this text;
    it is what HTTP API access logs show, e.g. for a timeout (Dynatrace's API Gateway log guide): "The Lambda function
    returned the following error: RequestId: 01fe3839-... Error: Task timed out after 5.00 seconds. Check your Lambda
    function code and try again." """
    return (
        f"The Lambda function returned the following error: {error_message}. "
        "Check your Lambda function code and try again."
    )


def access_log_line(
    *,
    request_id: str,
    source_ip: str | None,
    now: float,
    method: str,
    route_key: str | None,
    status: int,
    response_length: int,
    integration: Integration | None = None,
) -> str:
    """The deployed stage's access log line for one request: the keys of components.policies.access_log_format(), in
    its order, each with the value of its $context variable. As HTTP API substitutes the variables' text into the
    format, every value is a string ("200", not 200), and one with no value is "-": the route key of a request no
    route matched, and the integration's three of a request that never reached the function. `now`: when the request
    arrived (the event's requestContext.time is the same). A variable the deployed format gains that this does not
    know raises, so the local line cannot silently lack a deployed field."""
    variables = {
        "$context.requestId": request_id,
        "$context.identity.sourceIp": source_ip,
        "$context.requestTime": request_time(now),
        "$context.httpMethod": method,
        "$context.routeKey": route_key,
        "$context.status": str(status),
        "$context.protocol": PROTOCOL,
        "$context.responseLength": str(response_length),
        "$context.integrationErrorMessage": integration.error if integration else None,
        "$context.integrationLatency": str(integration.latency_ms) if integration else None,
        "$context.integration.requestId": integration.request_id if integration else None,
    }
    line = {}
    for key, variable in json.loads(access_log_format()).items():
        if variable not in variables:
            raise ValueError(f"the deployed access log's {key!r} is {variable}, which the local gateway does not give")
        value = variables[variable]
        line[key] = "-" if value is None else value
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))
