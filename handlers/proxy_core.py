"""Pure core of the inference proxy: request validation, error table, error mapping, responses.

Nothing here touches AWS, the clock or the environment, so every rule is unit-testable; the Lambda adapter
(handlers/inference_proxy.py) only wires these functions to Powertools and the sagemaker-runtime client.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

# SageMaker Serverless Inference rejects request payloads above 4 MB, so a bigger image can never succeed.
SAGEMAKER_SERVERLESS_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_TOP_K = 5
MAX_TOP_K = 20
# Room for the JSON wrapper, the data: URL prefix, top_k and a little whitespace around a base64 image.
JSON_ENVELOPE_SLACK_BYTES = 8 * 1024
# Arrays and objects ('[' and '{' outside strings) a JSON body may hold. A request is one base64 string and a few
# fields, but the parser builds every array and object of the body at 56-120 bytes each, and a 5.8 MB body (under the
# JSON cap and Lambda's 6 MB event) of nested empty arrays took the proxy from 68 MB to 333 MB: past the function's
# 256 MB, Lambda kills it (API Gateway's 500, the errors alarm). Other values cost less: at most about 20 bytes a
# character (5.8 MB of one-character non-ASCII strings peaked a fresh process at 133 MB; small integers at 49-91 MB).
MAX_JSON_CONTAINERS = 1_000
# The model's first error line is shown to users; anything longer is not a one-line reason any more.
MODEL_MESSAGE_MAX_CHARS = 200
ROUTE_PATH = "/predict"
# CORS for the browser's POST /predict: one definition for the handler's own headers and the HTTP API's
# CorsConfiguration (components.policies), which replaces them in the cloud. The UI reads Retry-After for its
# backoff and shows the request id; API Gateway's own answers (a crashed function's 500) carry only apigw-requestid.
CORS_ALLOW_METHODS = ("POST", "OPTIONS")
CORS_ALLOW_HEADERS = ("content-type",)
CORS_EXPOSE_HEADERS = ("retry-after", "x-request-id", "apigw-requestid")
CORS_MAX_AGE_S = 3600
ALLOWED_METHODS = ", ".join(CORS_ALLOW_METHODS)
# Seconds a client should wait. Throttling clears fast; a serverless cold start takes 10-20 s, but the UI
# retries several times with backoff, so a shorter hint gets the first success sooner.
THROTTLED_RETRY_AFTER_S = 2
NOT_READY_RETRY_AFTER_S = 5

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
SUPPORTED_IMAGE_TYPES = (JPEG, PNG, WEBP)
# Declared types that carry raw image bytes; the magic number decides what they really are.
GENERIC_IMAGE_TYPES = ("application/x-image", "application/octet-stream")
# Non-standard spellings browsers and tools still emit for JPEG.
IMAGE_TYPE_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG}
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    message: str
    retry_after: int | None = None


# The one error table (mirrored in the README). "message" is the default text; a few errors carry a more
# specific message naming the field. invalid_image is 400 by default, 422 when the model says 422.
ERRORS: dict[str, ErrorSpec] = {
    "bad_request": ErrorSpec(400, "The request is malformed; see the API documentation for POST /predict."),
    "invalid_image": ErrorSpec(400, "The model could not read this image; send a valid JPEG, PNG or WebP."),
    "not_found": ErrorSpec(404, "Unknown route; use POST /predict."),
    "method_not_allowed": ErrorSpec(405, "Method not allowed; use POST /predict."),
    "payload_too_large": ErrorSpec(413, "The image is too large; send a smaller one."),
    "unsupported_media_type": ErrorSpec(415, "Unsupported content type; send a JPEG, PNG or WebP image."),
    "throttled": ErrorSpec(429, "The model is busy; retry after a short wait.", THROTTLED_RETRY_AFTER_S),
    "internal_error": ErrorSpec(500, "Internal error; retry, and report the request id if it persists."),
    "model_error": ErrorSpec(502, "The model failed to answer; retry, and report the request id if it persists."),
    "model_not_ready": ErrorSpec(503, "The model is warming up; retry shortly.", NOT_READY_RETRY_AFTER_S),
    "endpoint_timeout": ErrorSpec(504, "The model did not answer in time; retry."),
}


class ApiError(Exception):
    """An answer for the client. `detail` is for the logs only and never reaches the response."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        spec = ERRORS[code]
        self.code = code
        self.status = status if status is not None else spec.status
        self.message = message if message is not None else spec.message
        self.retry_after = spec.retry_after
        self.detail = detail
        super().__init__(f"{self.status} {code}: {self.message}")

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        if self.code == "method_not_allowed":
            headers["allow"] = ALLOWED_METHODS
        return headers


def too_large(limit: int, what: str = "The image") -> ApiError:
    """413 naming the limit in bytes and, for a limit of 1 MiB or more, in MiB: "4,194,304 bytes (4 MiB)"."""
    mib = f"{limit / 1048576:.1f}".removesuffix(".0")
    size = f"{limit:,} bytes" + (f" ({mib} MiB)" if limit >= 1048576 else "")
    return ApiError("payload_too_large", f"{what} is too large; send at most {size}.")


class ConfigError(RuntimeError):
    """The function's environment is wrong; raised at import so Lambda reports it as an init error."""


@dataclass(frozen=True)
class ProxyConfig:
    """The function's settings, from its environment: only load_config builds one, and it sets every field."""

    endpoint_name: str
    allowed_origins: frozenset[str]
    max_image_bytes: int  # SAGEMAKER_SERVERLESS_MAX_BYTES unless MAX_IMAGE_BYTES lowers it
    read_timeout_s: float  # READ_TIMEOUT_S (see "Time budget"); only ever lowered (the local stack's fault tests)


def json_body_cap(max_image_bytes: int) -> int:
    """Largest JSON body worth parsing: the biggest allowed image, base64'd, plus the envelope, plus the line
    breaks of MIME-wrapped base64 (a CRLF every 76 characters, 4 characters once escaped in JSON)."""
    encoded = base64_len(max_image_bytes)
    return encoded + 4 * math.ceil(encoded / 76) + JSON_ENVELOPE_SLACK_BYTES


def base64_len(n: int) -> int:
    return 4 * math.ceil(n / 3)


# A JSON string escape: \uXXXX, or a backslash and the one character it stands for (\/ \\ \" \n ...).
_JSON_ESCAPE = re.compile(rb"\\(?:u[0-9A-Fa-f]{4}|.)", re.DOTALL)
# The most escaping can lengthen JSON text: every character written as \uXXXX.
JSON_ESCAPE_MAX_GROWTH = 6


def unescaped_json_len(data: bytes) -> int:
    """JSON text's length with each escape counted as the one character it stands for. Encoders escape characters of
    the base64 alphabet (.NET's System.Text.Json writes '+' as \\u002B by default), which must not count against the
    image's size."""
    return len(_JSON_ESCAPE.sub(b"_", data))


def normalize_origin(origin: str) -> str:
    # Browsers send Origin as scheme://host[:port] with no path; config values often carry a trailing slash.
    return origin.strip().rstrip("/").lower()


def parse_allowed_origins(raw: str | None) -> frozenset[str]:
    origins = set()
    for item in (raw or "").split(","):
        origin = normalize_origin(item)
        if not origin:
            continue
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigError(
                f"ALLOWED_ORIGINS entry {item.strip()!r} is not an origin; use scheme://host[:port], comma-separated"
            )
        origins.add(origin)
    return frozenset(origins)


# Where Powertools' Logger takes its level from, in the order it reads them: the component sets LOG_LEVEL from
# proxyLogLevel, and the local stack passes a shell's LOG_LEVEL and POWERTOOLS_* on. A name logging does not know
# fails the Logger with "ValueError: Unknown level: 'LOUD'", which names no variable.
LOG_LEVEL_VARIABLES = ("POWERTOOLS_LOG_LEVEL", "LOG_LEVEL")


def check_log_level(environ: Mapping[str, str]) -> None:
    """A ConfigError naming the variable unless the level the Logger will take is one logging knows."""
    # As Powertools picks it: an empty POWERTOOLS_LOG_LEVEL is skipped, but LOG_LEVEL is taken even when empty
    # (and '' fails the Logger as an unknown level); neither set means INFO.
    first, last = LOG_LEVEL_VARIABLES
    variable = first if environ.get(first) else last
    level = environ.get(variable)
    if level is not None and level.upper() not in logging.getLevelNamesMapping():
        raise ConfigError(f"{variable} {level!r} is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL")


def load_config(environ: Mapping[str, str]) -> ProxyConfig:
    endpoint_name = (environ.get("ENDPOINT_NAME") or "").strip()
    if not endpoint_name:
        raise ConfigError("ENDPOINT_NAME is not set; it must name the SageMaker endpoint to invoke")
    if not re.fullmatch(r"(?=.{1,63}$)[a-zA-Z0-9](-*[a-zA-Z0-9])*", endpoint_name):
        raise ConfigError(f"ENDPOINT_NAME {endpoint_name!r} is not a valid SageMaker endpoint name")
    raw_max = (environ.get("MAX_IMAGE_BYTES") or "").strip()
    max_image_bytes = SAGEMAKER_SERVERLESS_MAX_BYTES
    if raw_max:
        # ASCII digits only: str.isdigit() is true for '²', which int() refuses, and int() reads Arabic-Indic digits.
        if not re.fullmatch(r"[0-9]+", raw_max) or not 1 <= int(raw_max) <= SAGEMAKER_SERVERLESS_MAX_BYTES:
            raise ConfigError(
                f"MAX_IMAGE_BYTES {raw_max!r} must be an integer from 1 to {SAGEMAKER_SERVERLESS_MAX_BYTES} "
                "(the SageMaker Serverless request limit)"
            )
        max_image_bytes = int(raw_max)
    raw_read = (environ.get("ENDPOINT_READ_TIMEOUT_S") or "").strip()
    read_timeout_s = READ_TIMEOUT_S
    if raw_read:
        try:
            read_timeout_s = float(raw_read)
        except ValueError:
            read_timeout_s = -1.0
        if not 0.1 <= read_timeout_s <= READ_TIMEOUT_S:
            raise ConfigError(
                f"ENDPOINT_READ_TIMEOUT_S {raw_read!r} must be a number of seconds from 0.1 to {READ_TIMEOUT_S:g} "
                "(the time budget below API Gateway's 30 s is computed for the maximum)"
            )
    check_log_level(environ)
    return ProxyConfig(
        endpoint_name=endpoint_name,
        allowed_origins=parse_allowed_origins(environ.get("ALLOWED_ORIGINS")),
        max_image_bytes=max_image_bytes,
        read_timeout_s=read_timeout_s,
    )


# ---------------------------------------------------------------------------------------------------------
# Request parsing


@dataclass(frozen=True)
class PredictRequest:
    image: bytes
    content_type: str  # the sniffed real type, one of SUPPORTED_IMAGE_TYPES
    top_k: int

    def __repr__(self) -> str:
        # Never let a stray log line or assertion message print the image.
        return (
            f"PredictRequest(image=<{len(self.image)} bytes>, content_type={self.content_type!r}, top_k={self.top_k})"
        )


def parse_media_type(header: str | None) -> str | None:
    """`Application/JSON; charset=utf-8` -> `application/json`; None when absent or blank."""
    if header is None:
        return None
    media_type = header.split(";", 1)[0].strip().lower()
    return media_type or None


_UNSUPPORTED_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF-", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    # The formats the endpoint names too (model/code/inference.py OTHER_IMAGE_SIGNATURES), so a direct caller and a
    # caller of /predict are told the same.
    (b"8BPS", "PSD"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
)
# ISO base media files (bytes 4-8 'ftyp') name their kind in the major brand; the endpoint's HEIF_BRANDS.
_HEIF_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis"), "a HEIC image"),
    **dict.fromkeys((b"mif1", b"msf1"), "a HEIF image"),
    **dict.fromkeys((b"avif", b"avis"), "an AVIF image"),
}


def sniff_image_type(data: bytes) -> str | None:
    """The supported image type the magic number proves, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


NOT_RECOGNIZED = "not a recognizable image"


def describe_unsupported(data: bytes) -> str:
    """A human name for bytes we refuse, so the 415 message says what was actually sent."""
    for signature, name in _UNSUPPORTED_SIGNATURES:
        if data.startswith(signature):
            return f"a {name} image"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[data[8:12]]
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):  # the endpoint's rule
        return "an SVG image"
    return NOT_RECOGNIZED


def decode_base64(text: str, field: str) -> bytes:
    """Strict standard base64; whitespace (MIME-style line breaks, spaces, tabs) is tolerated, nothing else is."""
    compact = re.sub(r"[ \t\r\n]+", "", text)
    if not compact:
        raise ApiError("bad_request", f"{field} is empty; send the image as base64.")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("bad_request", f"{field} is not valid base64 (standard alphabet, padded with '=').") from None


_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),", re.IGNORECASE)


def split_data_url(value: str) -> tuple[str | None, str]:
    """'data:image/png;base64,AAAA' -> ('image/png', 'AAAA'); a bare base64 string -> (None, value)."""
    if value[:5].lower() != "data:":
        return None, value
    match = _DATA_URL.match(value)
    if match is None:
        raise ApiError("bad_request", "image is a data: URL without a ',' before the data.")
    params = [p.strip().lower() for p in match.group("params").split(";") if p.strip()]
    if "base64" not in params:
        raise ApiError("bad_request", "image data: URL must be base64-encoded (data:image/jpeg;base64,...).")
    # RFC 2397 puts ";base64" last; after it, a parameter would make the data percent-encoded text. The endpoint's
    # inference.py reads it so, and the proxy must not pass what a direct invocation refuses.
    if params[-1] != "base64":
        raise ApiError(
            "bad_request", "image data: URL must end its parameters with ;base64 (data:image/jpeg;base64,...)."
        )
    declared = match.group("type").strip().lower() or None
    return declared, value[match.end() :]


@dataclass(frozen=True)
class LongJsonInteger:
    """A JSON integer literal too long for any field we read. int() refuses one past 4300 digits (ValueError: the
    body would be called invalid JSON) and takes quadratic time up to there, so it is kept as its text."""

    literal: str


MAX_JSON_INT_CHARS = 20  # a top_k (1..MAX_TOP_K) is far shorter; any int64 fits


def _json_int(literal: str) -> int | LongJsonInteger:
    return int(literal) if len(literal) <= MAX_JSON_INT_CHARS else LongJsonInteger(literal)


def parse_top_k(value: Any, source: str) -> int:
    """JSON: an integer (not bool/float/string); query string: decimal digits, maybe signed. Range 1..MAX_TOP_K."""
    if source == "query":
        text = value.strip() if isinstance(value, str) else ""
        if not re.fullmatch(r"-?[0-9]+", text):
            if isinstance(value, str) and "," in value:
                # Payload 2.0 comma-joins a repeated parameter: ?top_k=3&top_k=3 arrives as "3,3", and was told it
                # "must be an integer" though each value was one.
                raise ApiError(
                    "bad_request",
                    f"top_k query parameter must be one integer from 1 to {MAX_TOP_K}; got "
                    f"'{printable_excerpt(value)}' (a parameter given more than once arrives comma-joined).",
                )
            raise ApiError("bad_request", f"top_k query parameter must be an integer from 1 to {MAX_TOP_K}.")
        # Any length is an integer out of range (1234567 was told "must be an integer"); a long one is kept as
        # text, as the JSON field's is, since int() is quadratic and refuses one past 4300 digits.
        sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
        value = _json_int(sign + (digits.lstrip("0") or "0"))
        number = value if isinstance(value, int) else None
    elif isinstance(value, LongJsonInteger):
        number = None  # out of range, however many digits it has
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError("bad_request", f"top_k must be an integer from 1 to {MAX_TOP_K}.")
        number = value
    if number is None or not 1 <= number <= MAX_TOP_K:
        # Quote only the start of a long one, 10 digits: a number is not cut into 12, what an account id looks like.
        digits = value.literal if number is None else str(number)
        got = digits if len(digits) <= 12 else f"{digits[:10]}... ({len(digits.lstrip('-'))} digits)"
        raise ApiError("bad_request", f"top_k must be between 1 and {MAX_TOP_K}; got {got}.")
    return number


def check_image(data: bytes, declared: str | None, max_image_bytes: int) -> str:
    """Size and magic-number checks shared by raw and JSON bodies; returns the sniffed type."""
    if not data:
        raise ApiError("bad_request", "The image is empty.")
    if len(data) > max_image_bytes:
        raise too_large(max_image_bytes)
    sniffed = sniff_image_type(data)
    if sniffed is None:
        what = describe_unsupported(data)
        # "The image is a GIF image", but not "The image is not a recognizable image".
        sent = "The data sent is" if what == NOT_RECOGNIZED else "The image is"
        raise ApiError("unsupported_media_type", f"{sent} {what}; send a JPEG, PNG or WebP image.")
    if declared in SUPPORTED_IMAGE_TYPES and declared != sniffed:
        raise ApiError(
            "bad_request", f"The image was declared as {declared} but its bytes are {sniffed}; fix the type."
        )
    return sniffed


def _declared_image_type(media_type: str | None) -> str | None:
    if media_type is None:
        return None
    return IMAGE_TYPE_ALIASES.get(media_type, media_type)


def printable_excerpt(value: str, limit: int = 60) -> str:
    """Client text quoted back in a message: printable ASCII only, and short."""
    cleaned = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in value[: limit + 1])
    return cleaned[:limit] + "..." if len(cleaned) > limit else cleaned


# A lone UTF-16 surrogate. No UTF-8 text decodes to one, so API Gateway never sends it, but a hand-written event (`aws
# lambda invoke`, a console test event) can, as a JSON "\ud800" escape; such a str cannot be encoded as UTF-8, so it
# can neither be sent on, nor written to the logs, nor returned in a header.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_UNICODE = "is not valid Unicode text (it holds a lone UTF-16 surrogate)"


def is_unicode_text(value: str) -> bool:
    """False when the str holds a lone surrogate (UTF-8 cannot encode it)."""
    return value.isascii() or _LONE_SURROGATE.search(value) is None


def check_event_text(event: Mapping[str, Any]) -> None:
    """400 for an event with a lone surrogate in any key or value, naming its top-level field."""
    for name, value in event.items():
        if not is_unicode_text(name):
            raise ApiError("bad_request", f"A field name of the event {_NOT_UNICODE}.")
        pending = [value]  # iterative: a deeply nested hand-written event must not overflow the stack
        while pending:
            item = pending.pop()
            if isinstance(item, dict):
                pending.extend(item.keys())
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, str) and not is_unicode_text(item):
                raise ApiError("bad_request", f"The event's {printable_excerpt(name)} {_NOT_UNICODE}.")


_NOT_AN_EVENT = "The event is not an API Gateway HTTP API (payload format 2.0) event"


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, as the invoker wrote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _not_an_event(field: str, problem: str) -> ApiError:
    return ApiError("bad_request", f"{_NOT_AN_EVENT}: {field} {problem}.")


def _check_string_map(event: Mapping[str, Any], field: str) -> None:
    """An optional object of string values (absent or null: none), as headers and queryStringParameters are."""
    value = event.get(field)
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _not_an_event(field, f"must be an object of strings, not {_json_type(value)}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise _not_an_event(f"{field}.{printable_excerpt(str(name))}", f"must be a string, not {_json_type(item)}")


def check_event_shape(event: Any) -> None:
    """400 for an event whose shape is not what API Gateway sends (payload format 2.0), naming the field.

    Only the fields the handler reads are checked, with their types; anything else (fields AWS adds over time, a
    cookies or stageVariables field) passes. Optional fields may be absent or null, as API Gateway leaves out body,
    queryStringParameters and cookies when the request has none. Only a hand-written event (`aws lambda invoke`, a
    console test, another service invoking the function) can fail this: it is the invoker's error, not ours.
    """
    if not isinstance(event, Mapping):
        raise ApiError("bad_request", f"{_NOT_AN_EVENT}: the event must be a JSON object, not {_json_type(event)}.")
    context = event.get("requestContext")
    if context is None:
        raise _not_an_event("requestContext.http.method", "is missing")
    if not isinstance(context, Mapping):
        raise _not_an_event("requestContext", f"must be an object, not {_json_type(context)}")
    http = context.get("http")
    if http is None:
        raise _not_an_event("requestContext.http.method", "is missing")
    if not isinstance(http, Mapping):
        raise _not_an_event("requestContext.http", f"must be an object, not {_json_type(http)}")
    method = http.get("method")
    if method is None:
        raise _not_an_event("requestContext.http.method", "is missing")
    if not isinstance(method, str):
        raise _not_an_event("requestContext.http.method", f"must be a string (POST), not {_json_type(method)}")
    for name in ("stage", "requestId"):
        value = context.get(name)
        if value is not None and not isinstance(value, str):
            raise _not_an_event(f"requestContext.{name}", f"must be a string, not {_json_type(value)}")
    raw_path = event.get("rawPath")
    if raw_path is None:
        raise _not_an_event("rawPath", "is missing")
    if not isinstance(raw_path, str):
        raise _not_an_event("rawPath", f"must be a string (/predict), not {_json_type(raw_path)}")
    _check_string_map(event, "headers")
    _check_string_map(event, "queryStringParameters")
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise _not_an_event("body", f"must be a string (base64 when isBase64Encoded is true), not {_json_type(body)}")
    encoded = event.get("isBase64Encoded")
    if encoded is not None and not isinstance(encoded, bool):
        raise _not_an_event("isBase64Encoded", f"must be true or false, not {_json_type(encoded)}")


def _check_declared(declared: str | None, where: str, accepted: str = "image/jpeg, image/png or image/webp") -> None:
    if declared is not None and declared not in SUPPORTED_IMAGE_TYPES + GENERIC_IMAGE_TYPES:
        raise ApiError(
            "unsupported_media_type", f"{where} {printable_excerpt(declared)} is not supported; send {accepted}."
        )


def _event_body_bytes(body: str | None, is_base64: bool, cap: int, *, json_text: bool = False) -> bytes:
    """The request body as bytes, refusing (413) anything over `cap` before decoding it. For `json_text`, each JSON
    escape counts as one character, and only a body longer than escaping could explain is refused unscanned."""
    limit = cap * JSON_ESCAPE_MAX_GROWTH if json_text else cap
    if body is None or body == "":
        raise ApiError("bad_request", "The request body is empty; send an image.")
    if is_base64:
        if len(body) > base64_len(limit):
            raise too_large(cap, "The request body")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("bad_request", "The request body is not valid base64 (isBase64Encoded).") from None
    else:
        # API Gateway only passes text bodies un-encoded; UTF-8 is what it decoded them from.
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError("bad_request", f"The request body {_NOT_UNICODE}.") from None
    if len(data) > cap and (len(data) > limit or not json_text or unescaped_json_len(data) > cap):
        raise too_large(cap, "The request body")
    if not data:
        raise ApiError("bad_request", "The request body is empty; send an image.")
    return data


# A JSON string, or one left open, which runs to the end (the parser stops there): the closing quote is optional, so
# every match succeeds and the scan stays linear (a quote that could fail would be tried again from each later quote).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)


def json_container_count(data: bytes) -> int:
    """The '[' and '{' of JSON text outside its strings: the arrays and objects a parser would build from it."""
    outside = _JSON_STRING.sub(b"", data)
    return outside.count(b"[") + outside.count(b"{")


def _parse_json_object(data: bytes) -> dict[str, Any]:
    # Before the parser builds them; only a body with that many '[' and '{' anywhere needs the string-aware count.
    limit = MAX_JSON_CONTAINERS
    if data.count(b"[") + data.count(b"{") > limit and json_container_count(data) > limit:
        raise ApiError(
            "bad_request",
            f"The JSON body holds more than {limit:,} arrays and objects ('[' and '{{'); "
            'send {"image": "<base64>", "top_k": 5}.',
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError("bad_request", "The JSON body is not UTF-8.") from None
    try:
        document = json.loads(text, parse_int=_json_int)
    except RecursionError:
        raise ApiError("bad_request", "The JSON body is nested too deeply.") from None
    except ValueError:
        raise ApiError("bad_request", "The body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise ApiError("bad_request", 'The JSON body must be an object: {"image": "<base64>", "top_k": 5}.')
    return document


def _no_media_type(header: str | None) -> str:
    """What is wrong with a Content-Type that parse_media_type found no type in."""
    if header is None:
        return "Content-Type is missing"
    if not header.strip():
        return "Content-Type is empty"
    return f"Content-Type '{printable_excerpt(header.strip())}' has no media type"


# The content codings IANA registers (HTTP Content Coding Registry), identity aside: each changes the body's bytes.
CONTENT_CODINGS = frozenset(
    (
        "aes128gcm",
        "br",
        "compress",
        "dcb",
        "dcz",
        "deflate",
        "exi",
        "gzip",
        "pack200-gzip",
        "x-compress",
        "x-gzip",
        "zstd",
    )
)


def check_content_encoding(header: str | None) -> None:
    """415 for a compressed body. An HTTP API passes the body on as sent, so a gzipped JPEG or JSON body would be
    refused for what its compressed bytes look like ("not a recognizable image", "not UTF-8"), not for the coding.
    A token that is no coding (`Content-Encoding: utf-8`, a charset in the wrong header) changed no byte: the body
    is judged as sent, as it was before this check."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    if any(coding in CONTENT_CODINGS for coding in codings):
        raise ApiError(
            "unsupported_media_type",
            f"Content-Encoding {printable_excerpt(header.strip())} is not supported; send the body uncompressed.",
        )


def parse_predict_request(
    *,
    body: str | None,
    is_base64: bool,
    content_type: str | None,
    query: Mapping[str, str],
    max_image_bytes: int,
    content_encoding: str | None = None,
) -> PredictRequest:
    """Validate a POST /predict request completely, before any AWS call.

    Raw bodies: image/jpeg, image/png, image/webp (or application/x-image / octet-stream); JSON bodies:
    {"image": "<base64 or data: URL>", "top_k": N}. Unknown JSON fields are ignored so clients can add
    their own metadata. top_k may also come as ?top_k=N; if both are given they must agree. The body must not be
    compressed (Content-Encoding).
    """
    query_top_k = parse_top_k(query["top_k"], "query") if "top_k" in query else None
    check_content_encoding(content_encoding)
    media_type = parse_media_type(content_type)
    if media_type is None:
        raise ApiError(
            "unsupported_media_type",
            f"{_no_media_type(content_type)}; send image/jpeg, image/png, image/webp or application/json.",
        )

    if media_type == JSON_TYPE or media_type.endswith("+json"):
        data = _event_body_bytes(body, is_base64, json_body_cap(max_image_bytes), json_text=True)
        labelled = sniff_image_type(data)  # no JSON text starts with an image's magic number
        if labelled is not None:
            # curl -H 'content-type: application/json' --data-binary @photo.jpg was told "The JSON body is not UTF-8."
            raise ApiError(
                "bad_request", f"The body is {labelled} bytes, not JSON; send it with Content-Type {labelled}."
            )
        document = _parse_json_object(data)
        if "image" not in document or document["image"] is None:
            raise ApiError("bad_request", 'JSON field "image" is required (base64 or a data: URL).')
        if not isinstance(document["image"], str):
            raise ApiError("bad_request", 'JSON field "image" must be a string (base64 or a data: URL).')
        declared, encoded = split_data_url(document["image"])
        declared = _declared_image_type(declared)
        _check_declared(declared, "The data: URL type")
        image = decode_base64(encoded, "image")
        sniffed = check_image(image, declared, max_image_bytes)
        top_k = query_top_k if query_top_k is not None else DEFAULT_TOP_K
        if "top_k" in document:
            body_top_k = parse_top_k(document["top_k"], "json")
            if query_top_k is not None and query_top_k != body_top_k:
                raise ApiError("bad_request", "top_k differs between the query string and the JSON body.")
            top_k = body_top_k
        return PredictRequest(image=image, content_type=sniffed, top_k=top_k)

    declared = _declared_image_type(media_type)
    _check_declared(declared, "Content-Type", "image/jpeg, image/png, image/webp or application/json")
    image = _event_body_bytes(body, is_base64, max_image_bytes)
    sniffed = check_image(image, declared, max_image_bytes)
    return PredictRequest(image=image, content_type=sniffed, top_k=query_top_k or DEFAULT_TOP_K)


def endpoint_accept(top_k: int) -> str:
    # The model's output_fn reads top_k from the Accept media-type parameters (shared contract).
    return f"{JSON_TYPE};top_k={top_k}"


# ---------------------------------------------------------------------------------------------------------
# Endpoint answers


def parse_endpoint_body(raw: bytes, top_k: int) -> tuple[list[dict[str, Any]], str]:
    """Check the model's success body and keep only what the API promises; a surprise is a model error."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise ApiError("model_error", detail="endpoint answered 2xx with a body that is not JSON") from None
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or not predictions:
        raise ApiError("model_error", detail="endpoint answer has no non-empty 'predictions' list")
    cleaned = []
    for item in predictions[:top_k]:
        label = item.get("label") if isinstance(item, dict) else None
        prob = item.get("prob") if isinstance(item, dict) else None
        if (
            not isinstance(label, str)
            or isinstance(prob, bool)
            or not isinstance(prob, int | float)
            or not 0.0 <= prob <= 1.0
        ):
            raise ApiError("model_error", detail="endpoint prediction is not {label: str, prob: 0..1}")
        cleaned.append({"label": label, "prob": float(prob)})
    model = document.get("model")
    return cleaned, model if isinstance(model, str) else "unknown"


_ARN = re.compile(r"arn:aws[a-z-]*:\S*", re.IGNORECASE)
_ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")
# A path with at least one segment, not preceded by a word char (so "image/jpeg" survives); after "./" or "../" too.
_PATH = re.compile(r"(?<!\w)(?:[A-Za-z]:)?(?:[/\\][\w.@+~-]+)+[/\\]?")
_REDACTED = "[...]"


def sanitize_model_message(text: Any) -> str | None:
    """The first line of a container error body, safe to show: no traceback, path, ARN or account id.

    None when nothing useful is left, so the caller falls back to the table's generic message.
    """
    if not isinstance(text, str):
        return None
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first or first.lower().startswith("traceback") or 'file "' in first.lower():
        return None
    first = _ARN.sub(_REDACTED, first)
    first = _ACCOUNT_ID.sub(_REDACTED, first)
    first = _PATH.sub(_REDACTED, first)
    if len(first) > MODEL_MESSAGE_MAX_CHARS:
        first = first[: MODEL_MESSAGE_MAX_CHARS - 3].rstrip() + "..."
    # Each marker as a space, not dropped: "ab[...]c" has no three letters in a row, and dropping it made "abc".
    if not re.search(r"[A-Za-z]{3}", first.replace(_REDACTED, " ")):
        return None
    return first


THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})
# Substrings, not words: SageMaker says "Request <id> has oversize body." for a serverless payload over its limit.
_SIZE_WORDS = re.compile(r"length|size|too large|exceed|bytes", re.IGNORECASE)
_NOT_FOUND = re.compile(r"\bnot found\.?\s*$", re.IGNORECASE)


DETAIL_MAX_CHARS = 1_000
DETAIL_HEAD_CHARS = 300


def clip_detail(text: str, limit: int = DETAIL_MAX_CHARS, head: int = DETAIL_HEAD_CHARS) -> str:
    """At most `limit` characters of a logged detail: its start and its end. The start names the error; a traceback
    that SageMaker quotes ends with the frame that raised and the exception, which a plain cut dropped."""
    if len(text) <= limit:
        return text
    gap = " … "
    return text[:head] + gap + text[len(text) - (limit - head - len(gap)) :]


def map_client_error(error_code: str, http_status: int | None, response_dict: Mapping[str, Any]) -> ApiError:
    """Map a sagemaker-runtime ClientError to the client-facing error. `response_dict` is the parsed
    botocore response (ModelError carries OriginalStatusCode / OriginalMessage at its top level).

    Match on the error code first: SageMaker reports ThrottlingException as HTTP 400 and ModelNotReadyException
    as HTTP 429. A 429 with no code we know (botocore then names the error "429") is throttling, as recent
    botocore's retries judge it (1.44 retries it; the Lambda runtime's botocore may be older and not retry).
    """
    aws_message = str((response_dict.get("Error") or {}).get("Message") or response_dict.get("Message") or "")
    whole = f"{error_code} (HTTP {http_status}): {aws_message}"
    detail = clip_detail(whole)
    if error_code in THROTTLING_CODES:
        return ApiError("throttled", detail=detail)
    if http_status == 413:  # SageMaker's front end: a bare "HTTP content length exceeded ... bytes."
        return ApiError("payload_too_large", "The image is too large for the model endpoint.", detail=detail)
    if error_code in ("ModelNotReadyException", "ServiceUnavailable"):
        return ApiError("model_not_ready", detail=detail)
    if http_status == 429:
        return ApiError("throttled", detail=detail)
    if error_code == "ModelError":
        return _map_model_error(response_dict, whole)
    if error_code == "ValidationError":
        # "Endpoint <name> of account <id> not found." quotes the endpoint's name, which may contain "size".
        if _SIZE_WORDS.search(aws_message) and not _NOT_FOUND.search(aws_message):
            return ApiError("payload_too_large", "The image is too large for the model endpoint.", detail=detail)
        # Nothing tells the operator at once: the API's 5xx alarm needs five in two of three 5-minute periods.
        return ApiError(
            "model_error", "The model endpoint is missing or misconfigured; report the request id.", detail=detail
        )
    # A front end's bare 503/504 (no error code: botocore names the error by its status), after botocore's retry:
    # unavailable and timed out like their coded counterparts, not the model failing to answer.
    if http_status == 503:
        return ApiError("model_not_ready", detail=detail)
    if http_status == 504:
        return ApiError("endpoint_timeout", detail=detail)
    return ApiError("model_error", detail=detail)


def _map_model_error(response_dict: Mapping[str, Any], whole: str) -> ApiError:
    """`whole`: the AWS error's text, uncut (its logged detail is cut here)."""
    status = response_dict.get("OriginalStatusCode")
    if isinstance(status, str) and status.isdecimal() and status.isascii():
        status = int(status)
    message = sanitize_model_message(response_dict.get("OriginalMessage"))
    if status in (400, 413, 415, 422):
        # The model refused the client's input: its reason is the first line. What follows (the toolkit's traceback,
        # which SageMaker quotes) says nothing more, and made a 3-byte body's log line 2.2 KB instead of 1.2 KB.
        whole = whole.splitlines()[0]
    # Clipped with the status: the README promises a detail of at most DETAIL_MAX_CHARS, and the end keeps it.
    detail = clip_detail(f"{whole}; container status {status}")
    if status == 0:
        # SageMaker's own 60 s limit ran out ("Received server error (0) ... Your invocation timed out while
        # waiting for a response from container"), typically a cold start: a timeout, worth a retry.
        return ApiError("endpoint_timeout", detail=detail)
    if status in (400, 422):
        return ApiError("invalid_image", message, status=status, detail=detail)
    if status == 413:
        return ApiError("payload_too_large", message or "The image is too large for the model.", detail=detail)
    if status == 415:
        return ApiError("unsupported_media_type", message, detail=detail)
    if status == 503:
        # TorchServe's "Model ... has no worker to serve inference request": its /ping already says Healthy
        # while a worker still loads the model or restarts after dying (local/torchserve.py meets the same 503
        # in its warm-up), so SageMaker routes requests to it. That heals by waiting: 503 with Retry-After.
        return ApiError("model_not_ready", detail=detail)
    # 406 means our Accept contract with the model broke; 5xx and anything else are the model's fault.
    return ApiError("model_error", detail=detail)


def aws_request_id(response: Mapping[str, Any]) -> str | None:
    """SageMaker's id of the call that answered (its x-amzn-RequestId header, botocore's ResponseMetadata RequestId),
    on a success or an error: what AWS Support asks for. None when the answer carried none."""
    metadata = response.get("ResponseMetadata")
    request_id = metadata.get("RequestId") if isinstance(metadata, Mapping) else None
    return request_id if isinstance(request_id, str) and request_id else None


def map_transport_error(exc: Exception) -> ApiError:
    """botocore transport failures (after its retries): a timeout is 504, an unreachable endpoint 503."""
    detail = clip_detail(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return ApiError("endpoint_timeout", detail=detail)
    if isinstance(exc, EndpointConnectionError):
        return ApiError("model_not_ready", detail=detail)
    return ApiError("model_error", detail=detail)


# ---------------------------------------------------------------------------------------------------------
# Time budget
#
# API Gateway cuts every integration at 30 s and the Lambda timeout is 29 s, so InvokeEndpoint, retries
# included, must be over well before that. Per attempt: connect <= 2 s + read <= 10 s = 12 s. Two attempts
# in botocore's adaptive mode. Between them botocore sleeps rand() x 1 s after throttling (x 0.05 s after
# other errors), up to 5 s more if a response carries x-amz-retry-after, and the adaptive rate limiter may
# wait up to 2 s per attempt for a token (its floor is 0.5 requests/s). Unguarded that adds up to
# 12 + 6 + 2 + 2 + 12 = 34 s, too much, so a before-send hook starts an attempt only if a full attempt
# still fits before the deadline = min(handler start + 25 s, Lambda end - 2 s). Worst case: InvokeEndpoint
# returns <= 25 s after the handler started, >= 4 s before the Lambda timeout and 5 s before API Gateway's.
# That holds for answers that do not trickle in: the read timeout bounds each wait for more bytes (urllib3's
# "between consecutive read operations"), not an attempt, and the guard only decides whether one starts.
# The common slow case (one read timeout, short backoff, a second attempt) is 12 + 0.05 + 12 = 24.05 s, so
# the guard does not cut it. A serverless cold start (10-20 s) keeps going on SageMaker's side after the
# first attempt times out; the second attempt may meet that container once warm, or (the first request still
# pending) start another cold start: AWS does not say which, so both attempts are kept inside the budget.

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
TOTAL_MAX_ATTEMPTS = 2
INVOKE_BUDGET_S = 25.0
LAMBDA_SAFETY_MARGIN_S = 2.0
API_GATEWAY_LIMIT_S = 30.0
# The function's timeout and the API's integration timeout (components.inference_api deploys both from this).
LAMBDA_TIMEOUT_S = 29


def invoke_deadline(start: float, remaining_ms: int | None, read_at: float | None = None) -> float:
    """Monotonic-clock deadline for the whole InvokeEndpoint call, retries included: `INVOKE_BUDGET_S` after the
    handler's `start`, and at most Lambda's end less the margin, `remaining_ms` counted from when it was read
    (`read_at`, `start` if not given): counted from `start` after validation, it took that time off twice."""
    deadline = start + INVOKE_BUDGET_S
    if remaining_ms is not None:
        read = start if read_at is None else read_at
        deadline = min(deadline, read + remaining_ms / 1000.0 - LAMBDA_SAFETY_MARGIN_S)
    return deadline


def attempt_fits(now: float, deadline: float, attempt_s: float) -> bool:
    return now + attempt_s <= deadline


# ---------------------------------------------------------------------------------------------------------
# Responses


def cors_headers(origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    """CORS for an allowed Origin; `vary: origin` always, so caches never mix answers for two origins."""
    headers = {"vary": "origin"}
    if origin and normalize_origin(origin) in allowed:
        headers.update(
            {
                "access-control-allow-origin": origin.strip(),
                "access-control-allow-methods": ALLOWED_METHODS,
                "access-control-allow-headers": ", ".join(CORS_ALLOW_HEADERS),
                "access-control-expose-headers": ", ".join(CORS_EXPOSE_HEADERS),
                "access-control-max-age": str(CORS_MAX_AGE_S),
            }
        )
    return headers


def base_headers(request_id: str, origin: str | None, allowed: frozenset[str]) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "x-request-id": request_id,
        **cors_headers(origin, allowed),
    }


def http_response(status: int, payload: Mapping[str, Any] | None, headers: Mapping[str, str]) -> dict[str, Any]:
    """An API Gateway payload-2.0 response; payload None means no body (204)."""
    return {
        "statusCode": status,
        "headers": dict(headers),
        "body": "" if payload is None else json.dumps(payload, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error_response(error: ApiError, headers: Mapping[str, str]) -> dict[str, Any]:
    return http_response(error.status, error.body(), {**headers, **error.headers()})
