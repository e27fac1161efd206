"""Pure rules of the proxy: request validation, error table and mapping, headers, config, time budget."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from handlers import proxy_core as core
from handlers.proxy_core import ApiError, ConfigError, parse_predict_request
from tests.conftest import names_of

from .conftest import GIF, JPEG, PNG, WEBP, b64

MAX = core.SAGEMAKER_SERVERLESS_MAX_BYTES


def parse(body, content_type="image/jpeg", *, is_base64=True, query=None, max_image_bytes=MAX):
    if isinstance(body, bytes):
        body = b64(body) if is_base64 else body.decode()
    return parse_predict_request(
        body=body,
        is_base64=is_base64,
        content_type=content_type,
        query=query or {},
        max_image_bytes=max_image_bytes,
    )


def parse_json(document, *, query=None, max_image_bytes=MAX, content_type="application/json"):
    return parse(json.dumps(document), content_type, is_base64=False, query=query, max_image_bytes=max_image_bytes)


def rejects(code, status, fn, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    assert (info.value.code, info.value.status) == (code, status), info.value
    return info.value


# ---- the error table --------------------------------------------------------------------------------------


def test_error_table_statuses_are_the_agreed_ones():
    assert {code: spec.status for code, spec in core.ERRORS.items()} == {
        "bad_request": 400,
        "invalid_image": 400,
        "not_found": 404,
        "method_not_allowed": 405,
        "payload_too_large": 413,
        "unsupported_media_type": 415,
        "throttled": 429,
        "internal_error": 500,
        "model_error": 502,
        "model_not_ready": 503,
        "endpoint_timeout": 504,
    }


def test_retry_after_only_on_throttled_and_not_ready_and_allow_only_on_405():
    with_retry_after = {code for code in core.ERRORS if "retry-after" in ApiError(code).headers()}
    assert with_retry_after == {"throttled", "model_not_ready"}
    assert int(ApiError("throttled").headers()["retry-after"]) >= 1
    # Allow belongs to a 405 only (RFC 9110): a 404 for another path is no statement about this one's methods.
    assert {code for code in core.ERRORS if "allow" in ApiError(code).headers()} == {"method_not_allowed"}
    assert ApiError("method_not_allowed").headers()["allow"] == "POST, OPTIONS"


def test_each_default_message_says_what_to_do_next():
    """The table's texts are what a client reads when nothing more specific is said: what went wrong, then what to
    do. A retry can cure every 429 and 5xx; one of ours (500, 502) wants the request id the response carries; a
    request the API cannot route or read points at POST /predict."""
    messages = {code: spec.message for code, spec in core.ERRORS.items()}
    for code, message in messages.items():
        what, _, todo = message.partition("; ")
        assert what and todo.endswith("."), (code, message)
    for code in ("throttled", "internal_error", "model_error", "model_not_ready", "endpoint_timeout"):
        assert "retry" in messages[code], code
    for code in ("internal_error", "model_error"):
        assert "report the request id" in messages[code], code
    for code in ("bad_request", "not_found", "method_not_allowed"):
        assert "POST /predict" in messages[code], code


def test_error_body_is_code_and_message_without_detail():
    error = ApiError("model_error", detail="arn:aws:sagemaker:us-east-1:123456789012:endpoint/x")
    assert error.body() == {"error": "model_error", "message": core.ERRORS["model_error"].message}


# ---- sniffing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "kind"), [(JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")])
def test_sniff_supported_types(data, kind):
    assert core.sniff_image_type(data) == kind


def test_a_webp_header_of_exactly_twelve_bytes_is_sniffed_as_webp():
    # The RIFF header is the whole proof the proxy asks for: the model, not a 415, judges the rest.
    assert core.sniff_image_type(b"RIFF\x00\x00\x00\x00WEBP") == core.WEBP


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (GIF, "GIF"),
        (b"BM\x36\x00\x00\x00", "BMP"),
        (b"II*\x00\x08\x00", "TIFF"),
        (b"MM\x00*\x00\x08", "TIFF"),
        (b"%PDF-1.7\n", "PDF"),
        (b"8BPS\x00\x01", "PSD"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "EPS"),
        (b"\xc5\xd0\xd3\xc6\x1e\x00", "EPS"),  # DOS EPS binary header
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00", "JPEG 2000"),
        (b"\xffO\xffQ\x00\x2f", "JPEG 2000"),  # a bare codestream
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
        (b"\xff\x0a\xfa\x7f", "JPEG XL"),
        (b"qoif\x00\x00\x00\x10", "QOI"),
        (b'<?xml version="1.0"?><svg xmlns="x"/>', "SVG"),
        (b"  <svg>", "SVG"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "a HEIC image"),
        (b"\x00\x00\x00\x18ftypheim\x00\x00", "a HEIC image"),  # multiview, as the endpoint names it
        (b"\x00\x00\x00\x18ftypheis\x00\x00", "a HEIC image"),  # scalable
        (b"\x00\x00\x00\x1cftypavif\x00\x00", "an AVIF image"),  # what phones and browsers save as .avif
        (b"\x00\x00\x00\x1cftypavis\x00\x00", "an AVIF image"),  # an AVIF image sequence
        (b"\x00\x00\x00\x18ftypmif1\x00\x00", "a HEIF image"),
        (b"\x00\x00\x00\x18abcdheic\x00\x00", "not a recognizable image"),  # a brand counts only after 'ftyp'
        (b"hello world", "not a recognizable image"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not a recognizable image"),
        (b"RIFX\x00\x00\x00\x00WEBPVP8 ", "not a recognizable image"),  # a WebP is a RIFF file: both tags count
        (b"RIFF\x00\x00\x00\x00WEBXVP8 ", "not a recognizable image"),  # and all four letters of its form type
        (b"\xff\xd8", "not a recognizable image"),
        (b"\x89PNG\r\n\x1a\x00IHDR", "not a recognizable image"),  # PNG's signature is all eight bytes
    ],
)
def test_unsupported_bytes_are_not_sniffed_and_are_named(data, name):
    assert core.sniff_image_type(data) is None
    assert name in core.describe_unsupported(data)


_EXPORTED_SVG_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    b"<!-- Created with Inkscape (http://www.inkscape.org/) -->\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
)


def test_the_proxy_names_every_refused_format_the_endpoint_names(inference):
    # The two are deployed apart (the function's bundle, the model artifact), so they cannot share the table: a
    # signature or brand added to one only must fail here, or /predict and a direct caller are told different things.
    signatures = [(signature + bytes(16), name) for signature, name in inference.OTHER_IMAGE_SIGNATURES]
    # A brand is named from its box's first 12 bytes: a file cut right after the brand is named too.
    brands = [
        (b"\x00\x00\x00\x18ftyp" + brand + rest, name)
        for brand, name in inference.HEIF_BRANDS.items()
        for rest in (bytes(8), b"")
    ]
    for data, name in signatures + brands:
        assert inference.other_image_format(data) == name
        assert core.describe_unsupported(data) in (f"a {name} image", f"an {name} image"), data
    # Nor names what the endpoint does not: a signature cut short, or its last byte changed, is a format to neither.
    for signature, _ in inference.OTHER_IMAGE_SIGNATURES:
        for near in (signature[:-1], signature[:-1] + bytes([signature[-1] ^ 1])):
            data = near + b"\x01" * 16
            assert (core.describe_unsupported(data) == core.NOT_RECOGNIZED) is (
                inference.other_image_format(data) is None
            ), data
    for markup, named in [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', True),
        (b"  <SVG/>", True),
        (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>', False),  # XML, not SVG
        (b"<html><body><svg/></body></html>", False),
        # An editor's export: prolog, comment and doctype before <svg, which still starts in the first 256 bytes.
        (_EXPORTED_SVG_HEAD + b'<svg xmlns="http://www.w3.org/2000/svg"/>', True),
        # Past them, the markup is not looked at (both read 256 bytes).
        (_EXPORTED_SVG_HEAD + b" " * (256 - len(_EXPORTED_SVG_HEAD)) + b"<svg/>", False),
    ]:
        assert (inference.other_image_format(markup) == "SVG") is named, markup
        assert (core.describe_unsupported(markup) == "an SVG image") is named, markup


# ---- raw bodies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
        (WEBP, "image/webp"),
        (JPEG, "image/jpg"),
        # The README's other JPEG alias, sent by old Internet Explorer uploads.
        (JPEG, "image/pjpeg"),
        (PNG, "application/x-image"),
        (WEBP, "application/octet-stream"),
    ],
)
def test_raw_body_keeps_bytes_and_uses_sniffed_type(data, declared):
    request = parse(data, declared)
    assert request.image == data
    assert request.content_type == core.sniff_image_type(data)
    assert request.top_k == core.DEFAULT_TOP_K


def test_content_type_parameters_and_case_are_ignored():
    assert parse(PNG, "IMAGE/PNG; charset=binary").content_type == "image/png"


def test_raw_declared_type_must_match_bytes():
    error = rejects("bad_request", 400, parse, PNG, "image/jpeg")
    assert "image/jpeg" in error.message and "image/png" in error.message


@pytest.mark.parametrize(
    "declared",
    # text/json is no JSON type the README names (application/json and +json): refused, not parsed as one.
    ["image/gif", "image/svg+xml", "text/plain", "multipart/form-data", "text/json"],
)
def test_unsupported_declared_type_is_415(declared):
    message = rejects("unsupported_media_type", 415, parse, JPEG, declared).message
    # curl --data-binary without -H sends a form type: the answer lists every type the API takes.
    assert "image/jpeg, image/png, image/webp or application/json" in message


def test_a_huge_declared_type_is_quoted_back_truncated():
    message = rejects("unsupported_media_type", 415, parse, JPEG, "image/" + "x" * 5000).message
    assert "image/xxx" in message and "..." in message
    assert len(message) < 200


def test_missing_content_type_is_415_and_says_so():
    assert "Content-Type" in rejects("unsupported_media_type", 415, parse, JPEG, None).message


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "Content-Type is missing"),
        (" ", "Content-Type is empty"),
        (";;;", "Content-Type ';;;' has no media type"),
        (" ;charset=utf-8", "Content-Type ';charset=utf-8' has no media type"),
        (";" + "x" * 5000, f"Content-Type ';{'x' * 59}...' has no media type"),
    ],
)
def test_a_content_type_without_a_media_type_is_told_apart_from_a_missing_one(header, says):
    message = rejects("unsupported_media_type", 415, parse, JPEG, header).message
    assert message == f"{says}; send image/jpeg, image/png, image/webp or application/json."


@pytest.mark.parametrize(
    "encoding", ["gzip", "GZIP", "x-gzip", "deflate", "br", "zstd", "identity, gzip", "gzip," + "z" * 5000]
)
def test_a_compressed_body_is_415_naming_the_coding(encoding):
    # An HTTP API passes the body on compressed: a gzipped JPEG was "not a recognizable image", gzipped JSON "not
    # UTF-8", neither of which the client could act on.
    for body, content_type in ((b64(JPEG), "image/jpeg"), (json.dumps({"image": b64(JPEG)}), "application/json")):
        error = rejects(
            "unsupported_media_type",
            415,
            parse_predict_request,
            body=body,
            is_base64=content_type == "image/jpeg",
            content_type=content_type,
            query={},
            max_image_bytes=MAX,
            content_encoding=encoding,
        )
        assert error.message.startswith("Content-Encoding ") and error.message.endswith("send the body uncompressed.")
        assert len(error.message) < 200


# A token that is no content coding (a charset put in the wrong header) changed no byte of the body.
@pytest.mark.parametrize("encoding", [None, "", " ", "identity", "Identity", "utf-8", "UTF-8, binary"])
def test_an_uncompressed_body_passes_the_content_encoding_check(encoding):
    request = parse_predict_request(
        body=b64(JPEG),
        is_base64=True,
        content_type="image/jpeg",
        query={},
        max_image_bytes=MAX,
        content_encoding=encoding,
    )
    assert request.image == JPEG


@pytest.mark.parametrize(("image", "media_type"), [(JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")])
@pytest.mark.parametrize("declared", ["application/json", "application/vnd.api+json"])
def test_an_image_sent_as_json_is_told_its_type(image, media_type, declared):
    # The careless curl: a raw photo labelled JSON. "The JSON body is not UTF-8" did not say what to change.
    message = rejects("bad_request", 400, parse, image, declared).message
    assert message == f"The body is {media_type} bytes, not JSON; send it with Content-Type {media_type}."


@pytest.mark.parametrize("data", [GIF, b"%PDF-1.4 not an image", b"just some text bytes"])
def test_non_image_bytes_never_pass_even_when_declared_jpeg(data):
    rejects("unsupported_media_type", 415, parse, data, "image/jpeg")


def test_the_415_for_unknown_bytes_reads_as_a_sentence():
    message = rejects("unsupported_media_type", 415, parse, b"just some text bytes", "image/jpeg").message
    assert message == "The data sent is not a recognizable image; send a JPEG, PNG or WebP image."
    assert rejects("unsupported_media_type", 415, parse, GIF, "image/jpeg").message.startswith("The image is a GIF")


@pytest.mark.parametrize("body", [None, ""])
def test_empty_body_is_400(body):
    rejects(
        "bad_request",
        400,
        parse_predict_request,
        body=body,
        is_base64=True,
        content_type="image/jpeg",
        query={},
        max_image_bytes=MAX,
    )


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/json"])
@pytest.mark.parametrize("surrogate", ["\ud800", "\udcff"])
def test_a_text_body_with_a_lone_surrogate_is_400(content_type, surrogate):
    # Only a hand-written event can hold one; UTF-8 cannot encode it (nor may "\udcff" pass as the byte 0xff).
    message = rejects("bad_request", 400, parse, f"\xff\xd8\xff{surrogate}", content_type, is_base64=False).message
    assert message == "The request body is not valid Unicode text (it holds a lone UTF-16 surrogate)."


def test_check_event_text_names_the_field_and_walks_deep_nesting_without_recursion():
    nested = ["\udc80"]
    for _ in range(100_000):
        nested = [nested]
    error = rejects("bad_request", 400, core.check_event_text, {"version": "2.0", "stageVariables": nested})
    assert error.message == "The event's stageVariables is not valid Unicode text (it holds a lone UTF-16 surrogate)."
    core.check_event_text({"body": "chat-été-🐈", "headers": {"a": ["b", {"c": None}]}})
    # A hand-written event's field name is client text: quoted back short and printable, like any other.
    error = rejects("bad_request", 400, core.check_event_text, {"é" + "x" * 100: "\udc80"})
    assert error.message.startswith("The event's ?" + "x" * 59 + "... is not valid Unicode text")


def test_raw_body_over_the_cap_is_413():
    error = rejects("payload_too_large", 413, parse, JPEG + b"x" * 100, max_image_bytes=100)
    assert error.message == "The request body is too large; send at most 100 bytes."
    assert parse(JPEG[:100], max_image_bytes=100).image == JPEG[:100]


def test_the_413_names_a_large_limit_in_mib_too():
    error = core.too_large(4 * 1024 * 1024, "The request body")
    assert error.message == "The request body is too large; send at most 4,194,304 bytes (4 MiB)."
    assert "(1.5 MiB)" in core.too_large(1572864).message
    # MiB from exactly 1 MiB up; below it, bytes only (0.95 MiB would round to a misleading "1 MiB").
    assert core.too_large(1048576).message.endswith("send at most 1,048,576 bytes (1 MiB).")
    assert core.too_large(1_000_000).message.endswith("send at most 1,000,000 bytes.")


def test_oversized_base64_body_is_413_before_decoding():
    # Not valid base64 at all: only a size check that runs first can answer 413 rather than 400. One character past
    # the cap's base64 length, where the check is: 1,000 characters also passed a check that let six times the cap by.
    error = rejects(
        "payload_too_large", 413, parse, "!" * (core.base64_len(100) + 1), is_base64=True, max_image_bytes=100
    )
    assert error.message == "The request body is too large; send at most 100 bytes."
    rejects("bad_request", 400, parse, "!" * core.base64_len(100), is_base64=True, max_image_bytes=100)


def test_invalid_event_base64_is_400():
    rejects("bad_request", 400, parse, "not*base64", is_base64=True)
    # A non-ASCII character is refused by base64 with a plain ValueError, not binascii.Error: still a 400, not a 500.
    rejects("bad_request", 400, parse, "QUJD\u00e9", is_base64=True)
    # A character outside the alphabet is refused, not skipped: skipped, the rest of this body is a valid JPEG.
    encoded = b64(JPEG)
    message = rejects("bad_request", 400, parse, f"{encoded[:8]}*{encoded[8:]}", is_base64=True).message
    assert message == "The request body is not valid base64 (isBase64Encoded)."


def test_top_k_from_query():
    assert parse(JPEG, query={"top_k": "20"}).top_k == 20
    assert parse(JPEG, query={"top_k": "1"}).top_k == 1


@pytest.mark.parametrize(
    "value",
    # "\u0663" is an Arabic-Indic 3 (int() takes it); 5000 digits is past int()'s limit, which raises ValueError. "+5"
    # is no JSON integer either (int() takes it): the query's top_k is written as the body's, a '-' its only sign.
    ["0", "21", "-1", "abc", "", "3,5", "1e3", "5.0", "9999999999", "\u0663", "1" * 5000, "+5"],
)
def test_bad_query_top_k_is_400_naming_top_k(value):
    assert "top_k" in rejects("bad_request", 400, parse, JPEG, query={"top_k": value}).message


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ("21", "21"),
        ("999999", "999999"),
        ("-1", "-1"),
        # Seven digits and more were told "must be an integer from 1 to 20", as if the integer sent were not one.
        ("1234567", "1234567"),
        ("0000021", "21"),
        ("9" * 21, "9999999999... (21 digits)"),
        ("1" * 5000, "1111111111... (5000 digits)"),
        ("-" + "9" * 5000, "-999999999... (5000 digits)"),
    ],
)
def test_an_out_of_range_query_top_k_is_told_its_value(value, got):
    # A query top_k of any length is a number out of range, said (and cut) as the JSON field's is, not "not an integer".
    message = rejects("bad_request", 400, parse, JPEG, query={"top_k": value}).message
    assert message == f"top_k must be between 1 and 20; got {got}."


def test_a_query_top_k_with_leading_zeros_is_its_number():
    assert parse(JPEG, query={"top_k": "0000007"}).top_k == 7
    assert parse(JPEG, query={"top_k": "0" * 30 + "20"}).top_k == 20


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("3,3", "3,3"), ("3,5", "3,5"), ("7," * 40 + "7", "7," * 30 + "...")],
    ids=["same", "different", "long"],
)
def test_a_repeated_query_top_k_is_told_it_came_comma_joined(value, quoted):
    # ?top_k=3&top_k=3 reaches the function as "3,3" (payload 2.0), which was told "must be an integer".
    message = rejects("bad_request", 400, parse, JPEG, query={"top_k": value}).message
    assert message == (
        f"top_k query parameter must be one integer from 1 to 20; got '{quoted}' "
        "(a parameter given more than once arrives comma-joined)."
    )


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_a_bad_query_top_k_is_told_before_the_body_and_its_type_are_looked_at(content_type):
    # The query string is read first: ?top_k=0 is told about top_k whatever the body and its Content-Type (here a
    # missing one, an unsupported one, and JPEG bytes labelled JSON), as it would be with a good body.
    error = rejects("bad_request", 400, parse, JPEG, content_type, query={"top_k": "0"})
    assert error.message == "top_k must be between 1 and 20; got 0."


# ---- JSON bodies ------------------------------------------------------------------------------------------


def test_json_bare_base64():
    request = parse_json({"image": b64(PNG), "top_k": 3})
    assert (request.image, request.content_type, request.top_k) == (PNG, "image/png", 3)


@pytest.mark.parametrize(
    ("data", "media"), [(JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp"), (JPEG, "IMAGE/JPG")]
)
def test_json_data_url(data, media):
    request = parse_json({"image": f"data:{media};base64,{b64(data)}"})
    assert request.image == data and request.content_type == core.sniff_image_type(data)


def test_json_data_url_with_extra_parameters_and_wrapped_base64():
    encoded = b64(JPEG)
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert parse_json({"image": f"data:image/jpeg;name=cat.jpg;base64,{wrapped}"}).image == JPEG


def test_data_url_scheme_and_base64_marker_are_case_insensitive():
    assert parse_json({"image": f"DATA:image/png;BASE64,{b64(PNG)}"}).image == PNG


@pytest.mark.parametrize("content_type", ["application/vnd.api+json", "application/merge-patch+json"])
def test_json_suffix_media_types_are_json(content_type):
    assert parse_json({"image": b64(PNG)}, content_type=content_type).image == PNG


def test_json_with_a_utf8_bom_is_accepted():
    body = "\ufeff" + json.dumps({"image": b64(JPEG)})
    assert parse(body, "application/json", is_base64=False).image == JPEG


def test_text_json_body_with_non_ascii_metadata_is_accepted():
    # API Gateway passes a UTF-8 JSON body as text (isBase64Encoded false); clients' own fields may be any language.
    body = json.dumps({"image": b64(JPEG), "filename": "chat-été-🐈.jpg"}, ensure_ascii=False)
    assert parse(body, "application/json", is_base64=False).image == JPEG


def test_json_content_type_with_charset_and_base64_event_body():
    document = json.dumps({"image": b64(WEBP)}).encode()
    request = parse(document, "application/json; charset=UTF-8", is_base64=True)
    assert request.content_type == "image/webp"


def test_json_data_url_declared_type_must_match_bytes():
    error = rejects("bad_request", 400, parse_json, {"image": f"data:image/png;base64,{b64(JPEG)}"})
    assert "image/png" in error.message


@pytest.mark.parametrize("media", ["image/gif", "text/plain", "image/svg+xml"])
def test_json_data_url_unsupported_type_is_415(media):
    message = rejects("unsupported_media_type", 415, parse_json, {"image": f"data:{media};base64,{b64(GIF)}"}).message
    assert "image/jpeg, image/png or image/webp." in message  # a data: URL can only carry an image


def test_json_data_url_must_be_base64():
    assert "base64" in rejects("bad_request", 400, parse_json, {"image": "data:image/png,rawtext"}).message
    # Even when the data happens to be valid base64: without ";base64" a data: URL is percent-encoded text.
    assert "base64" in rejects("bad_request", 400, parse_json, {"image": f"data:image/png,{b64(PNG)}"}).message
    rejects("bad_request", 400, parse_json, {"image": "data:image/png;base64"})
    # base64 is a parameter of its own, not a word within one.
    named = rejects("bad_request", 400, parse_json, {"image": f"data:image/png;name=base64.png,{b64(PNG)}"})
    assert "base64" in named.message
    # and the last one, as RFC 2397 and the endpoint's inference.py have it.
    late = rejects("bad_request", 400, parse_json, {"image": f"data:image/png;base64;name=cat.png,{b64(PNG)}"})
    assert late.message == "image data: URL must end its parameters with ;base64 (data:image/jpeg;base64,...)."


# A form feed after a data: URL's data is no whitespace its base64 may hold (spaces, tabs, line breaks), as inside it.
@pytest.mark.parametrize(
    "image", ["***", "QUJ", "Q===", b64(JPEG)[:-2] + "-_", "QU JD\x00", f"data:image/jpeg;base64,{b64(JPEG)}\x0c"]
)
def test_json_bad_base64_is_400_naming_image(image):
    assert "image" in rejects("bad_request", 400, parse_json, {"image": image}).message


def test_json_gif_image_is_415():
    rejects("unsupported_media_type", 415, parse_json, {"image": b64(GIF)})


def test_json_non_image_is_415():
    rejects("unsupported_media_type", 415, parse_json, {"image": b64(b"plain text, not pixels")})


@pytest.mark.parametrize("document", [{}, {"image": None}, {"top_k": 5}])
def test_json_missing_image_is_400_naming_image(document):
    assert 'JSON field "image" is required' in rejects("bad_request", 400, parse_json, document).message


@pytest.mark.parametrize("image", [123, ["a"], {"b": 1}, True])
def test_json_image_must_be_a_string(image):
    assert '"image"' in rejects("bad_request", 400, parse_json, {"image": image}).message


@pytest.mark.parametrize("image", ["", "data:image/jpeg;base64,", "  \n "])
def test_json_empty_image_is_400(image):
    # Told it sent nothing, not that its (absent) base64 is invalid.
    error = rejects("bad_request", 400, parse_json, {"image": image})
    assert error.message == "image is empty; send the image as base64."


@pytest.mark.parametrize("document", [[1, 2], "image", 5, None])
def test_json_must_be_an_object(document):
    assert "object" in rejects("bad_request", 400, parse_json, document).message


@pytest.mark.parametrize("text", ["{", "{'image': 1}", "\x00", '{"image": "a"}garbage'])
def test_json_syntax_errors_are_400(text):
    assert "not valid JSON" in rejects("bad_request", 400, parse, text, "application/json", is_base64=False).message


def test_json_not_utf8_is_400():
    rejects("bad_request", 400, parse, b'{"image": "\xff\xfe"}', "application/json", is_base64=True)


def test_deeply_nested_json_is_400_not_a_crash():
    rejects("bad_request", 400, parse, "[" * 100_000 + "]" * 100_000, "application/json", is_base64=False)


def test_json_nested_as_deep_as_the_container_limit_lets_through_is_400_not_a_crash():
    # 100,000 levels never reach the parser (more than 1,000 containers); 1,000 do, and take CPython's parser past
    # its recursion limit where that counts the caller's frames too (3.11), or parse into a list (3.12+).
    depth = core.MAX_JSON_CONTAINERS
    body = "[" * depth + "]" * depth
    message = rejects("bad_request", 400, parse, body, "application/json", is_base64=False).message
    assert message.startswith(("The JSON body is nested too deeply.", "The JSON body must be an object")), message


@pytest.mark.parametrize("unit", ["[]", "{}", "[0]", "[[[]]]", '{"a": []}'])
def test_a_json_body_of_many_arrays_and_objects_is_400_before_it_is_parsed(unit, monkeypatch):
    """Each array or object the parser builds costs 56-120 bytes: 5.8 MB of nested empty arrays, a body the JSON cap and
    Lambda's 6 MB event let through, took the proxy from 68 MB to 333 MB, and Lambda kills a 256 MB function for it.
    Up to the limit ('[' and '{' outside strings) the extra fields are ignored as before."""
    limit = core.MAX_JSON_CONTAINERS
    containers = unit.count("[") + unit.count("{")
    fits = f'{{"image": "{b64(JPEG)}", "extra": [{", ".join([unit] * ((limit - 2) // containers))}]}}'
    assert fits.count("[") + fits.count("{") <= limit
    assert parse(fits, "application/json", is_base64=False).image == JPEG
    over = fits.replace('"extra": [', '"extra": [' + f"{unit}, " * 2, 1)
    assert json.loads(over)["extra"]
    assert over.count("[") + over.count("{") > limit
    # Refused before it is parsed: a parser that ran would build the arrays first.
    monkeypatch.setattr(core, "json", names_of(core.json, loads=lambda *args, **kwargs: pytest.fail("parsed")))
    message = rejects("bad_request", 400, parse, over, "application/json", is_base64=False).message
    assert message.startswith(f"The JSON body holds more than {limit:,} arrays and objects")


def test_the_json_container_limit_is_the_documented_thousand_to_the_one():
    limit = 1_000  # the README's number, not core.MAX_JSON_CONTAINERS: with that, any other limit passed here
    # The body object and "extra" are two; the rest are empty arrays inside "extra".
    fits = f'{{"image": "{b64(JPEG)}", "extra": [{", ".join(["[]"] * (limit - 2))}]}}'
    assert core.json_container_count(fits.encode()) == limit
    assert parse(fits, "application/json", is_base64=False).image == JPEG
    over = fits.replace('"extra": [', '"extra": [[], ', 1)
    message = rejects("bad_request", 400, parse, over, "application/json", is_base64=False).message
    assert message.startswith("The JSON body holds more than 1,000 arrays and objects")
    # A bracket inside a string passes the quick count of every '[' but is no array: still exactly the limit.
    noted = fits.replace('{"image"', '{"note": "[", "image"', 1)
    assert parse(noted, "application/json", is_base64=False).image == JPEG


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (b'{"a": [{}, []], "b": "[{"}', 4),
        (b'{"a": "\\"[[", "b": [[]]}', 3),  # an escaped quote does not end a string
        (b'{"a": "\\\\", "b": [[]]}', 3),  # the quote after an escaped backslash does
        (b'{"a": "[\\"[[[', 1),  # a string left open runs to the end, where the parser stops
        (b'{"a": "[\\', 1),
        (b"[[[]]]\n[", 4),
    ],
)
def test_json_containers_are_counted_outside_strings(text, count):
    assert core.json_container_count(text) == count


def test_brackets_inside_json_strings_are_not_arrays():
    # A data: URL type, or a client's own field, may hold them: the answer is the one they would get anyway.
    brackets = "[{" * core.MAX_JSON_CONTAINERS
    assert parse_json({"image": b64(JPEG), "note": brackets}).image == JPEG
    error = rejects("unsupported_media_type", 415, parse_json, {"image": f"data:{brackets};base64,{b64(JPEG)}"})
    assert "data: URL type" in error.message


def test_unknown_json_fields_are_ignored():
    assert parse_json({"image": b64(JPEG), "filename": "cat.jpg", "extra": {"a": [1]}}).image == JPEG


@pytest.mark.parametrize("top_k", [1, 7, 20])
def test_json_top_k_in_range(top_k):
    assert parse_json({"image": b64(JPEG), "top_k": top_k}).top_k == top_k


@pytest.mark.parametrize("top_k", [0, 21, -1, True, False, 5.0, 1e9, "5", None, [5], 10**30])
def test_json_top_k_out_of_range_or_wrong_type_is_400_naming_top_k(top_k):
    assert "top_k" in rejects("bad_request", 400, parse_json, {"image": b64(JPEG), "top_k": top_k}).message


def test_a_huge_json_top_k_is_quoted_short():
    message = rejects("bad_request", 400, parse_json, {"image": b64(JPEG), "top_k": 10**4000}).message
    assert message == "top_k must be between 1 and 20; got 1000000000... (4001 digits)."
    assert rejects("bad_request", 400, parse_json, {"image": b64(JPEG), "top_k": -5}).message.endswith("got -5.")
    # Twelve digits are still quoted whole; the thirteenth is where the cut starts, and it keeps 10, so no number is
    # cut into a run of 12 (what an account id looks like: tests/hostile takes one in an answer for a leak).
    twelve = rejects("bad_request", 400, parse_json, {"image": b64(JPEG), "top_k": 10**11}).message
    assert twelve.endswith("got 100000000000.")
    thirteen = rejects("bad_request", 400, parse_json, {"image": b64(JPEG), "top_k": 10**12}).message
    assert thirteen.endswith("got 1000000000... (13 digits).")


@pytest.mark.parametrize(
    ("literal", "got"),
    [("1" * 5000, "1111111111... (5000 digits)"), ("-" + "9" * 5000, "-999999999... (5000 digits)")],
)
def test_a_json_top_k_past_int_digit_limit_is_out_of_range_not_invalid_json(literal, got):
    """int() refuses a number past 4300 digits (ValueError), and json.loads passed that on: a valid body with a
    too-large top_k was answered 'The body is not valid JSON.'"""
    text = f'{{"image": "{b64(JPEG)}", "top_k": {literal}}}'
    message = rejects("bad_request", 400, parse, text, "application/json", is_base64=False).message
    assert message == f"top_k must be between 1 and 20; got {got}."


def test_a_huge_integer_in_a_json_field_we_do_not_read_is_ignored():
    text = f'{{"image": "{b64(JPEG)}", "id": {"7" * 5000}}}'
    assert parse(text, "application/json", is_base64=False).image == JPEG


def test_json_top_k_nan_and_infinity_are_400():
    for literal in ("NaN", "Infinity", "1e999"):
        text = f'{{"image": "{b64(JPEG)}", "top_k": {literal}}}'
        rejects("bad_request", 400, parse, text, "application/json", is_base64=False)


def test_query_top_k_applies_to_json_and_must_agree_with_body():
    assert parse_json({"image": b64(JPEG)}, query={"top_k": "4"}).top_k == 4
    assert parse_json({"image": b64(JPEG), "top_k": 4}, query={"top_k": "4"}).top_k == 4
    assert (
        "top_k"
        in rejects("bad_request", 400, parse_json, {"image": b64(JPEG), "top_k": 3}, query={"top_k": "4"}).message
    )


def test_json_image_over_cap_is_413_and_body_over_json_cap_is_413_before_parsing():
    error = rejects("payload_too_large", 413, parse_json, {"image": b64(JPEG + b"x" * 200)}, max_image_bytes=200)
    # The body was within its own cap: the 413 names the image, whose limit is the one the client can act on.
    assert error.message == "The image is too large; send at most 200 bytes."
    # The limit itself, to the byte: the JSON body's own cap is far above it, so only the image's check can tell.
    cap = len(JPEG) + 200
    assert parse_json({"image": b64(JPEG + b"x" * 200)}, max_image_bytes=cap).image == JPEG + b"x" * 200
    rejects("payload_too_large", 413, parse_json, {"image": b64(JPEG + b"x" * 201)}, max_image_bytes=cap)
    huge = "x" * (core.json_body_cap(200) + 1)  # not even JSON: only the size check can answer 413
    error = rejects("payload_too_large", 413, parse, huge, "application/json", is_base64=False, max_image_bytes=200)
    # Over the body's own cap, the 413 names the body and that cap (8,476 bytes here), not the image's 200.
    assert error.message == f"The request body is too large; send at most {core.json_body_cap(200):,} bytes."


def test_an_oversize_image_of_a_refused_format_is_413_in_a_json_body_as_in_a_raw_one():
    # The size is judged before the bytes: a raw body over the cap is refused unread, and so is a JSON body's image,
    # so a client is told the same first thing (too large, not a GIF) however it sent the image.
    gif = GIF + b"x" * 200
    rejects("payload_too_large", 413, parse, gif, "application/octet-stream", max_image_bytes=200)
    error = rejects("payload_too_large", 413, parse_json, {"image": b64(gif)}, max_image_bytes=200)
    assert error.message == "The image is too large; send at most 200 bytes."


def test_the_json_body_cap_is_the_documented_sum_to_the_byte():
    # README: the image's base64 size, room for MIME line breaks (a CRLF, 4 characters in JSON, per 76), plus 8 KiB.
    # For 300 bytes: 400 base64 characters, 6 line breaks, 8,192: 8,616.
    assert core.json_body_cap(300) == 400 + 6 * 4 + 8 * 1024
    text = json.dumps({"image": b64(JPEG), "note": ""})
    fits = text.replace('"note": ""', f'"note": "{"n" * (8_616 - len(text))}"')
    assert parse(fits, "application/json", is_base64=False, max_image_bytes=300).image == JPEG
    over = fits.replace('"note": "', '"note": "n')
    message = rejects("payload_too_large", 413, parse, over, "application/json", is_base64=False, max_image_bytes=300)
    assert "8,616 bytes" in message.message


def test_json_cap_admits_the_largest_allowed_image_as_a_data_url():
    prefix = '{"image": "data:image/jpeg;base64,'
    suffix = '", "top_k": 20, "filename": "some-long-file-name-from-a-phone-camera.jpg"}'
    assert len(prefix) + core.base64_len(MAX) + len(suffix) <= core.json_body_cap(MAX)
    assert core.json_body_cap(MAX) < MAX * 4 // 3 * 1.06  # small slack, not a second image


def test_json_cap_admits_the_largest_allowed_image_as_mime_wrapped_base64():
    # base64.encodebytes and the `base64` CLI wrap at 76 columns; a CRLF is 4 more characters once in JSON.
    image = JPEG + b"\x00" * (MAX - len(JPEG))
    encoded = b64(image)
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    request = parse_json({"image": wrapped})
    assert request.image == image
    over = b64(image + b"\x00\x00\x00")
    over_wrapped = "\r\n".join(over[i : i + 76] for i in range(0, len(over), 76))
    rejects("payload_too_large", 413, parse_json, {"image": over_wrapped})  # 3 bytes over the limit


def test_json_escapes_of_the_base64_alphabet_do_not_count_against_the_cap():
    # .NET's System.Text.Json writes '+' as \u002B by default (dotnet/runtime#35281). An image just under the limit,
    # whose base64 has a '+' in every 64 characters or so, then has a JSON body 8% longer, past the body cap: a 413
    # "send at most 5,894,940 bytes" for a 4.1 MB image the API accepts.
    image = JPEG + bytes(range(256)) * ((MAX - len(JPEG) - 64) // 256)
    text = json.dumps({"image": b64(image)})
    escaped = text.replace("+", "\\u002B")
    assert len(escaped) > core.json_body_cap(MAX) and json.loads(escaped) == json.loads(text)
    assert parse(escaped, "application/json", is_base64=False).image == image
    assert parse(escaped.encode(), "application/vnd.api+json", is_base64=True).image == image


def test_json_escapes_still_count_once_so_an_escaped_oversize_body_is_413():
    cap = core.json_body_cap(200)
    escaped_slashes = "\\/" * (cap + 1)
    rejects("payload_too_large", 413, parse, escaped_slashes, "application/json", is_base64=False, max_image_bytes=200)
    # Beyond what escaping can explain (every character as \uXXXX), refused before anything scans it.
    huge = "\\u002B" * (cap + 1)
    rejects("payload_too_large", 413, parse, huge, "application/json", is_base64=False, max_image_bytes=200)
    message = rejects("payload_too_large", 413, parse, huge * 2, "application/json", max_image_bytes=200).message
    assert f"{cap:,} bytes" in message


def test_a_body_up_to_six_times_the_cap_in_escapes_is_scanned_and_accepted_when_it_unescapes_under_it():
    # Escaping lengthens JSON text at most sixfold (every character as \uXXXX, as an ASCII-only encoder writes a
    # non-ASCII field): only a body longer than that is refused unread; this one stands for exactly the cap.
    cap = core.json_body_cap(len(JPEG))
    text = json.dumps({"image": b64(JPEG), "note": ""})
    note = "\\u00e9" * (cap - len(text))
    body = text.replace('"note": ""', f'"note": "{note}"')
    assert 5 * cap < len(body) <= 6 * cap and core.unescaped_json_len(body.encode()) == cap
    assert parse(body, "application/json", is_base64=False, max_image_bytes=len(JPEG)).image == JPEG


@pytest.mark.parametrize("escape", ["\\/", "\\n", '\\"', "\\\\"])
def test_each_short_json_escape_counts_as_one_character(escape):
    # PHP's json_encode writes every '/' of base64 as \/ by default: the escape is one character of the image.
    cap = core.json_body_cap(len(JPEG))
    text = json.dumps({"image": b64(JPEG), "note": ""})
    body = text.replace('"note": ""', f'"note": "{escape * (cap - len(text))}"')
    assert len(body) > cap and core.unescaped_json_len(body.encode()) == cap
    assert parse(body, "application/json", is_base64=False, max_image_bytes=len(JPEG)).image == JPEG


# Random bytes never begin with an image's magic number, so they were never accepted and the checks below never ran:
# half the inputs now start with one, and a JPEG and a WebP run as explicit examples.
MAGIC = st.sampled_from([JPEG[:3], PNG[:8], WEBP[:12]])


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(st.binary(max_size=64), st.builds(bytes.__add__, MAGIC, st.binary(max_size=64))),
    declared=st.sampled_from(["image/jpeg", "image/png", "application/x-image"]),
)
@example(data=JPEG, declared="image/jpeg")
@example(data=WEBP, declared="application/x-image")
def test_property_anything_accepted_was_sniffed_as_a_supported_image(data, declared):
    try:
        request = parse(data, declared)
    except ApiError as error:
        assert error.status in (400, 413, 415)
        return
    assert request.image == data
    assert core.sniff_image_type(data) == request.content_type in core.SUPPORTED_IMAGE_TYPES


def test_request_repr_never_shows_the_image():
    # Only the image's size: its first bytes are the client's pixels too ("SECR..." of these, which a check for the
    # whole word passed).
    request = parse(JPEG)
    assert (
        repr(request)
        == str(request)
        == f"PredictRequest(image=<{len(JPEG)} bytes>, content_type='image/jpeg', top_k=5)"
    )


def test_endpoint_accept_carries_top_k_as_media_type_parameter():
    assert core.endpoint_accept(7) == "application/json;top_k=7"


# ---- endpoint answers -------------------------------------------------------------------------------------


def test_parse_endpoint_body_keeps_contract_fields_and_top_k():
    raw = json.dumps(
        {
            "predictions": [
                {"label": "tabby", "prob": 0.5, "index": 281},
                {"label": "tiger cat", "prob": 0.25},
                {"label": "Egyptian cat", "prob": 0.125},
            ],
            "model": "mobilenet_v2",
            "weights": "IMAGENET1K_V2",
            "backend": "torchscript",
        }
    ).encode()
    predictions, model = core.parse_endpoint_body(raw, 2)
    assert predictions == [{"label": "tabby", "prob": 0.5}, {"label": "tiger cat", "prob": 0.25}]
    assert model == "mobilenet_v2"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"predictions": []}',
        b'{"predictions": [{"label": 1}]}',
        b'{"predictions": [{"label": 1, "prob": 0.5}]}',
        b'{"predictions": [{"prob": 0.5}]}',
        b'{"predictions": [{"label": "a", "prob": 1.5}]}',
        b'{"predictions": [{"label": "a", "prob": -0.1}]}',
        b'{"predictions": [{"label": "a", "prob": true}]}',
        b'{"predictions": [{"label": "a", "prob": "0.5"}]}',
        b'{"predictions": [{"label": "a"}]}',
        b'{"predictions": ["tabby"]}',  # an item that is no object
        b'{"predictions": [null]}',
        b'{"predictions": {"label": "a", "prob": 0.5}}',  # an object, not a list
        b"\xff",
        b"[" * 100_000,  # deeper than the parser recurses: the model's fault, not our 500
    ],
)
def test_unexpected_endpoint_body_is_model_error(raw):
    rejects("model_error", 502, core.parse_endpoint_body, raw, 5)


# ---- model message sanitizing and error mapping -----------------------------------------------------------

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/lib/python3.12/site-packages/sagemaker_inference/transformer.py", line 142, in transform\n'
    "    result = self._run_handler_function(\n"
    "ValueError: boom"
)


def test_sanitize_keeps_a_plain_first_line():
    text = "cannot identify image file: truncated JPEG\n" + TRACEBACK
    assert core.sanitize_model_message(text) == "cannot identify image file: truncated JPEG"
    # The first line with text: a message that starts with a line break still has its reason shown.
    assert core.sanitize_model_message("\n  \n" + text) == "cannot identify image file: truncated JPEG"
    # And without the spaces that end the line.
    assert core.sanitize_model_message("truncated JPEG \t\n" + TRACEBACK) == "truncated JPEG"


def test_sanitize_drops_tracebacks_and_redacts_paths_arns_and_accounts():
    assert core.sanitize_model_message(TRACEBACK) is None
    assert core.sanitize_model_message(TRACEBACK.lower()) is None  # a traceback is one in any case
    assert core.sanitize_model_message('  File "/opt/ml/model/code/inference.py", line 3') is None
    line = (
        "bad image at /opt/ml/model/code/inference.py for arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"
        " account 123456789012 type image/jpeg"
    )
    cleaned = core.sanitize_model_message(line)
    assert cleaned is not None and cleaned.startswith("bad image at")
    for leaked in ("/opt", "inference.py", "arn:aws", "123456789012"):
        assert leaked not in cleaned
    assert "image/jpeg" in cleaned  # a media type is not a path
    # Nor is a path any less one for being relative: "../../opt/ml/model/model.pt" was shown whole after its dots.
    for relative in ("cannot open ./code/inference.py", "no such file ../../opt/ml/model/model.pt"):
        cleaned = core.sanitize_model_message(relative)
        assert cleaned is not None and cleaned.endswith("[...]")
        assert not any(leaked in cleaned for leaked in ("inference.py", "/opt", "model.pt")), cleaned
    # An account id is exactly 12 digits: a longer number is not one, and is not cut into one.
    assert core.sanitize_model_message("image of 1234567890123 bytes") == "image of 1234567890123 bytes"


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov", "aws-iso-b", "AWS"])
def test_sanitize_redacts_an_arn_of_any_partition_whole(partition):
    line = f"cannot read arn:{partition}:s3:::model-bucket-prod,role=Admin from the artifact"
    assert core.sanitize_model_message(line) == "cannot read [...] from the artifact"


def test_sanitize_redacts_a_path_whole_whatever_its_segments_hold():
    # Paths carry '@', '+' and '~' ("torch-2.1.0+cpu", "hub~tmp", "user@host"): each is part of the path, not where it
    # ends, so nothing after one is shown.
    line = "cannot load /home/sbx_user1051/.cache/torch-2.1.0+cpu/hub~tmp/jane@example/weights.pth now"
    assert core.sanitize_model_message(line) == "cannot load [...] now"


def test_sanitize_redacts_a_windows_path_with_its_drive_letter():
    # A model written or tested on Windows names its files so: the drive is part of the path, not left before it.
    for line in ("cannot open C:\\models\\weights.pth now", "cannot open d:/models/weights.pth now"):
        assert core.sanitize_model_message(line) == "cannot open [...] now", line


def test_sanitize_caps_length_and_rejects_non_text():
    assert core.sanitize_model_message("x" * 5000) == "x" * 197 + "..."  # the whole 200, its last 3 the ellipsis
    # A cut that ends between two words puts the ellipsis after the last word, not after a space.
    assert core.sanitize_model_message("x" * 196 + " " + "y" * 10) == "x" * 196 + "..."
    assert core.sanitize_model_message(None) is None
    assert core.sanitize_model_message(42) is None
    assert core.sanitize_model_message("   ") is None
    assert core.sanitize_model_message("/opt/ml/model") is None
    # Three letters are a reason ("EOF"); what is left of a redacted line with fewer is not.
    assert core.sanitize_model_message("EOF") == "EOF"
    assert core.sanitize_model_message("/opt/ml/model: 42 ok") is None


def test_letters_either_side_of_a_redaction_are_no_three_letter_reason():
    # "ab[...]c" keeps runs of two letters and one, as "/opt/ml/model: 42 ok" keeps "ok": no reason left. The
    # letters on one side of a redaction still count by themselves.
    assert core.sanitize_model_message("ab123456789012c") is None
    assert core.sanitize_model_message("abc123456789012d") == "abc[...]d"


@settings(max_examples=300, deadline=None)
@given(prefix=st.text(max_size=80), suffix=st.text(max_size=80))
@example(prefix="", suffix="Traceback")
@example(prefix="Traceback (most recent call last):", suffix="")
def test_property_sanitized_messages_never_leak(prefix, suffix):
    leaks = "/opt/ml/model/code/inference.py arn:aws:iam::123456789012:role/x 123456789012"
    text = f"{prefix} {leaks} {suffix}\n{TRACEBACK}"
    cleaned = core.sanitize_model_message(text)
    if cleaned is not None:
        assert "\n" not in cleaned and len(cleaned) <= core.MODEL_MESSAGE_MAX_CHARS
        assert "/opt/ml" not in cleaned and "arn:aws:iam" not in cleaned and "123456789012" not in cleaned
        # Nothing of the traceback's lines; the word itself only if the message's own first line holds it
        # (hypothesis found suffix="Traceback": the model's message, not its traceback).
        assert "most recent call last" not in cleaned and "_run_handler_function" not in cleaned
        if "traceback" not in f"{prefix} {suffix}".lower():
            assert "Traceback" not in cleaned


def model_error(status, message):
    return {
        "Error": {"Code": "ModelError", "Message": "Received client error in account 123456789012"},
        "ResponseMetadata": {"HTTPStatusCode": 424},
        "OriginalStatusCode": status,
        "OriginalMessage": message,
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
    }


@pytest.mark.parametrize(
    "code", ["ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"]
)
def test_throttling_is_matched_by_code_even_with_http_400(code):
    error = core.map_client_error(code, 400, {"Error": {"Code": code}})
    assert (error.status, error.code, "retry-after" in error.headers()) == (429, "throttled", True)


@pytest.mark.parametrize("code", ["429", "SlowDown"])
def test_a_429_without_a_code_we_know_is_throttling(code):
    error = core.map_client_error(code, 429, {"Error": {"Code": code, "Message": "Too Many Requests"}})
    assert (error.status, error.code, "retry-after" in error.headers()) == (429, "throttled", True)


@pytest.mark.parametrize("code", ["ModelNotReadyException", "ServiceUnavailable"])
def test_not_ready_is_503_with_retry_after(code):
    error = core.map_client_error(code, 429, {"Error": {"Code": code}})
    assert (error.status, error.code) == (503, "model_not_ready") and "retry-after" in error.headers()


def test_model_error_400_passes_the_first_line_only():
    error = core.map_client_error("ModelError", 424, model_error(400, "image is not decodable\n" + TRACEBACK))
    assert (error.status, error.code, error.message) == (400, "invalid_image", "image is not decodable")


def test_model_error_422_keeps_422():
    error = core.map_client_error("ModelError", 424, model_error(422, "image too small"))
    assert (error.status, error.code, error.message) == (422, "invalid_image", "image too small")


def test_model_error_400_whose_first_line_is_a_traceback_gets_the_generic_message():
    error = core.map_client_error("ModelError", 424, model_error(400, TRACEBACK))
    assert (error.status, error.message) == (400, core.ERRORS["invalid_image"].message)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (413, (413, "payload_too_large")),
        (415, (415, "unsupported_media_type")),
        (406, (502, "model_error")),
        (500, (502, "model_error")),
        (503, (503, "model_not_ready")),  # TorchServe: no worker (yet); /ping is already Healthy
        (502, (502, "model_error")),
        (404, (502, "model_error")),
        (None, (502, "model_error")),
        ("400", (400, "invalid_image")),
        (0, (504, "endpoint_timeout")),  # SageMaker's 60 s invocation limit, not the container's answer
        ("0", (504, "endpoint_timeout")),
        ("", (502, "model_error")),  # no status at all is not SageMaker's timeout (0)
        ("\u0664\u0662\u0662", (502, "model_error")),  # int() reads Arabic-Indic "422"; no HTTP status is written so
    ],
)
def test_model_error_status_mapping(status, expected):
    error = core.map_client_error("ModelError", 424, model_error(status, "something\n" + TRACEBACK))
    assert (error.status, error.code) == expected


def test_model_error_5xx_never_passes_the_model_text():
    error = core.map_client_error("ModelError", 424, model_error(500, "CUDA out of memory at /opt/x.py"))
    assert error.message == core.ERRORS["model_error"].message


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ValidationError", 400, "Request payload length exceeds the limit"),
        # What SageMaker really answers for a serverless payload over its limit, and what its front end
        # answers without an error code (botocore then names the error by the status).
        ("ValidationError", 400, "Request 6b0c1f0e-5e8e-4b7e-9a11-2f4d6c7e8a11 has oversize body."),
        ("413", 413, "HTTP content length exceeded 5246976 bytes."),
        # Each of the words that make a ValidationError a size refusal, alone.
        ("ValidationError", 400, "The request payload exceeds the limit."),
        ("ValidationError", 400, "The request payload is too large."),
        ("ValidationError", 400, "Maximum payload size is 4 MB."),
        ("ValidationError", 400, "Request body of 5000000 bytes refused."),
        ("ValidationError", 400, "Content-Length 5000000 refused."),
    ],
)
def test_endpoint_size_refusals_are_413(code, status, message):
    error = core.map_client_error(code, status, {"Error": {"Code": code, "Message": message}})
    assert (error.status, error.code) == (413, "payload_too_large")
    # The endpoint refused what the proxy let through: the message says whose limit it was.
    assert error.message == "The image is too large for the model endpoint."


def test_validation_error_about_size_is_413_else_502_without_details():
    too_big = {"Error": {"Code": "ValidationError", "Message": "Request payload length exceeds the limit"}}
    assert core.map_client_error("ValidationError", 400, too_big).status == 413
    missing = {"Error": {"Code": "ValidationError", "Message": "Endpoint mobilenet of account 123456789012 not found."}}
    error = core.map_client_error("ValidationError", 400, missing)
    assert (error.status, error.code) == (502, "model_error")
    # Not the table's "retry" text: a missing endpoint does not come back on a retry. Nor "the operator has been
    # told": nothing tells them of one 502 (the API's 5xx alarm wants five in two of three 5-minute periods).
    assert error.message == "The model endpoint is missing or misconfigured; report the request id."
    assert "123456789012" not in json.dumps(error.body()) and "123456789012" in error.detail


@pytest.mark.parametrize("name", ["image-size-demo", "max-bytes", "length-test"])
def test_a_missing_endpoint_named_with_a_size_word_is_not_413(name):
    missing = {"Error": {"Code": "ValidationError", "Message": f"Endpoint {name} of account 123456789012 not found."}}
    error = core.map_client_error("ValidationError", 400, missing)
    assert (error.status, error.code) == (502, "model_error")


def test_a_size_refusal_that_says_not_found_before_its_end_is_still_413():
    # Only a message ending in "not found." is the missing endpoint's; the words elsewhere do not make a size refusal
    # a 502.
    message = "Request 1 has oversize body; a part not found in 4194304 bytes."
    error = core.map_client_error("ValidationError", 400, {"Error": {"Code": "ValidationError", "Message": message}})
    assert (error.status, error.code) == (413, "payload_too_large")


def test_an_aws_message_only_at_the_top_level_of_the_response_is_read():
    # botocore puts a modelled error's members at the response's top level; a Message found only there still decides
    # a size refusal and is logged.
    response = {"Error": {"Code": "ValidationError"}, "Message": "Request 1 has oversize body."}
    error = core.map_client_error("ValidationError", 400, response)
    assert (error.status, error.code) == (413, "payload_too_large")
    assert error.detail == "ValidationError (HTTP 400): Request 1 has oversize body."


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("503", 503, (503, "model_not_ready", True)),
        ("", 503, (503, "model_not_ready", True)),
        ("504", 504, (504, "endpoint_timeout", False)),
        ("502", 502, (502, "model_error", False)),
    ],
)
def test_a_bare_front_end_status_keeps_its_meaning(code, status, expected):
    error = core.map_client_error(code, status, {"Error": {"Code": code, "Message": "Service Unavailable"}})
    assert (error.status, error.code, "retry-after" in error.headers()) == expected


@pytest.mark.parametrize("code", ["InternalFailure", "InternalDependencyException", "AccessDeniedException", ""])
def test_other_client_errors_are_502(code):
    assert core.map_client_error(code, 500, {"Error": {"Code": code}}).status == 502


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ReadTimeoutError(endpoint_url="https://runtime/x"), (504, "endpoint_timeout")),
        (ConnectTimeoutError(endpoint_url="https://runtime/x"), (504, "endpoint_timeout")),
        (EndpointConnectionError(endpoint_url="https://runtime/x"), (503, "model_not_ready")),
        (ConnectionClosedError(endpoint_url="https://runtime/x"), (502, "model_error")),
    ],
)
def test_transport_errors(exc, expected):
    error = core.map_transport_error(exc)
    assert (error.status, error.code) == expected
    assert "runtime/x" not in json.dumps(error.body())
    # The log names the failure's class, which botocore's message alone does not.
    assert error.detail == f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"ResponseMetadata": {"RequestId": "4b1c0d2e-0001"}}, "4b1c0d2e-0001"),
        # No id to give: None, so the log line has no endpoint_request_id rather than an empty one.
        ({"ResponseMetadata": {"RequestId": ""}}, None),
        ({"ResponseMetadata": {"RequestId": 7}}, None),
        ({"ResponseMetadata": {}}, None),
        ({"ResponseMetadata": None}, None),
        ({"ResponseMetadata": "4b1c0d2e-0001"}, None),  # not botocore's mapping: no id, and no AttributeError
        ({}, None),
    ],
)
def test_aws_request_id_is_a_non_empty_string_or_none(response, expected):
    assert core.aws_request_id(response) == expected


@pytest.mark.parametrize("status", [400, 413, 415, 422])
def test_the_logged_detail_of_a_refused_image_is_the_models_reason_without_its_traceback(status):
    # SageMaker's message quotes the container's whole answer, the toolkit's traceback included: for every bad image
    # (a 3-byte body will do) that was 1,000 characters of the same traceback on the proxy's log line.
    original = "body is not a readable JPEG, PNG or WebP image\n" + TRACEBACK * 20
    response = model_error(status, original)
    response["Error"]["Message"] = (
        f'Received client error ({status}) from primary with message "{original}". See https://us-east-1.console.'
        "aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:group=/aws/sagemaker/Endpoints/x in account "
        "123456789012 for more information."
    )
    detail = core.map_client_error("ModelError", 424, response).detail
    assert detail == (
        f'ModelError (HTTP 424): Received client error ({status}) from primary with message "body is not a readable '
        f"JPEG, PNG or WebP image; container status {status}"
    )


def test_a_refused_images_reason_the_client_is_not_shown_is_logged_without_the_traceback_after_it():
    # A first line with nothing to show (a bare path: the client gets the table's message) keeps the traceback out of
    # the log line as a shown reason does.
    original = "/opt/ml/model/code/inference.py\n" + TRACEBACK * 20
    response = model_error(400, original)
    response["Error"]["Message"] = f'Received client error (400) from primary with message "{original}".'
    error = core.map_client_error("ModelError", 424, response)
    assert error.message == core.ERRORS["invalid_image"].message
    assert error.detail == (
        'ModelError (HTTP 424): Received client error (400) from primary with message "/opt/ml/model/code/inference.py'
        "; container status 400"
    )


def test_a_refused_images_long_reason_is_logged_without_the_traceback_after_it():
    # A reason line over 300 characters: cut before its first line was taken, the detail ended in the traceback's end.
    reason = "image is refused: " + "too many things wrong with it, " * 12
    original = reason + "\n" + TRACEBACK * 20
    response = model_error(400, original)
    response["Error"]["Message"] = f'Received client error (400) from primary with message "{original}"'
    detail = core.map_client_error("ModelError", 424, response).detail
    prefix = 'ModelError (HTTP 424): Received client error (400) from primary with message "'
    assert detail == f"{prefix}{reason}; container status 400"


def test_the_logged_detail_of_a_model_crash_keeps_its_traceback():
    # A 5xx is a bug of ours: the traceback SageMaker quotes is the operator's only copy of it.
    original = "RuntimeError: boom\n" + TRACEBACK
    response = model_error(500, original)
    response["Error"]["Message"] = f'Received server error (500) from primary with message "{original}"'
    assert "ValueError: boom" in core.map_client_error("ModelError", 424, response).detail


def test_the_logged_detail_of_a_long_model_crash_keeps_the_frame_that_raised():
    # A plain cut at 1,000 characters dropped a long traceback's end: the frame that raised and the exception.
    frames = "".join(
        f'  File "/opt/ml/model/code/inference.py", line {n}, in step_{n}\n    step()\n' for n in range(60)
    )
    original = "Traceback (most recent call last):\n" + frames + "ZeroDivisionError: division by zero"
    response = model_error(500, original)
    response["Error"]["Message"] = f'Received server error (500) from primary with message "{original}"'
    detail = core.map_client_error("ModelError", 424, response).detail
    assert detail.startswith("ModelError (HTTP 424): Received server error (500) from primary")
    assert "in step_59\n    step()\nZeroDivisionError: division by zero" in detail
    # At most 1,000 characters in all, as the README says, the container status kept at the end.
    assert len(detail) == core.DETAIL_MAX_CHARS == 1000
    assert detail.endswith('ZeroDivisionError: division by zero"; container status 500')


def test_clip_detail_keeps_short_text_whole_and_both_ends_of_long_text():
    assert core.clip_detail("short") == "short"
    assert core.clip_detail("x" * 1000) == "x" * 1000
    clipped = core.clip_detail("a" * 600 + "b" * 1000)
    assert clipped == "a" * 300 + " … " + "b" * 697 and len(clipped) == 1000


def test_the_logged_detail_of_an_aws_error_is_capped():
    # The detail goes to the logs whole: an AWS message (which quotes the model's) must not make a line of any size.
    response = {"Error": {"Code": "ValidationError", "Message": "x" * 5000}}
    assert len(core.map_client_error("ValidationError", 400, response).detail) == 1000
    # The size refusal (413) too, whose message says "exceeds" before the rest.
    response = {"Error": {"Code": "ValidationError", "Message": "Request payload exceeds the limit: " + "x" * 5000}}
    too_large = core.map_client_error("ValidationError", 400, response)
    assert (too_large.status, len(too_large.detail)) == (413, 1000)
    assert len(core.map_transport_error(ReadTimeoutError(endpoint_url="https://runtime/" + "x" * 5000)).detail) == 1000


# ---- headers ----------------------------------------------------------------------------------------------

ALLOWED = frozenset({"https://site.example", "http://127.0.0.1:8080"})


def test_cors_echoes_an_allowed_origin():
    headers = core.cors_headers("https://site.example", ALLOWED)
    assert headers["access-control-allow-origin"] == "https://site.example"
    assert headers["vary"] == "origin"
    assert headers["access-control-allow-methods"] == "POST, OPTIONS"
    assert headers["access-control-allow-headers"] == "content-type"
    exposed = set(re.split(r",\s*", headers["access-control-expose-headers"]))
    assert exposed == {"x-request-id", "retry-after", "apigw-requestid"}


def test_the_handler_and_the_http_api_agree_on_cors():
    """API Gateway replaces the handler's CORS headers with its CorsConfiguration: both must say the same."""
    from components.policies import http_api_cors

    api = http_api_cors(sorted(ALLOWED))
    headers = core.cors_headers("https://site.example", ALLOWED)
    assert headers["access-control-allow-methods"] == ", ".join(api["AllowMethods"])
    assert headers["access-control-allow-headers"] == ", ".join(api["AllowHeaders"])
    assert headers["access-control-expose-headers"] == ", ".join(api["ExposeHeaders"])
    assert headers["access-control-max-age"] == str(api["MaxAge"])
    # Nothing the HTTP API does not grant: its AllowCredentials is false, so the handler sends no
    # access-control-allow-credentials (a site's cookies must never ride along on a cross-origin POST).
    assert api["AllowCredentials"] is False
    assert set(headers) == {
        "vary",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
        "access-control-max-age",
    }


def test_cors_matches_an_origin_as_normalized_and_echoes_it_trimmed():
    # The allowed origins are normalized (case, a trailing slash, spaces); a header value is matched the same way, and
    # echoed without the stray spaces a browser's exact comparison would fail on.
    headers = core.cors_headers(" HTTPS://Site.Example ", ALLOWED)
    assert headers["access-control-allow-origin"] == "HTTPS://Site.Example"


@pytest.mark.parametrize("origin", [None, "", "https://evil.example", "https://site.example.evil.com", "null"])
def test_cors_refuses_other_origins_but_still_varies(origin):
    assert core.cors_headers(origin, ALLOWED) == {"vary": "origin"}


def test_http_response_is_an_api_gateway_payload_2_response_with_compact_json():
    headers = {"x-request-id": "rid-1"}
    response = core.http_response(200, {"predictions": [{"label": "tabby", "prob": 0.5}], "model": "m"}, headers)
    assert response == {
        "statusCode": 200,
        "headers": {"x-request-id": "rid-1"},
        "body": '{"predictions":[{"label":"tabby","prob":0.5}],"model":"m"}',
        "isBase64Encoded": False,
    }
    assert core.http_response(204, None, headers)["body"] == ""


def test_base_headers():
    headers = core.base_headers("rid-1", None, ALLOWED)
    assert headers["x-request-id"] == "rid-1"
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"


# ---- configuration ----------------------------------------------------------------------------------------


def test_load_config_defaults_and_origin_normalization():
    config = core.load_config(
        {"ENDPOINT_NAME": "mobilenet-local", "ALLOWED_ORIGINS": " https://Site.Example/ ,http://127.0.0.1:8080,, "}
    )
    assert config.endpoint_name == "mobilenet-local"
    assert config.max_image_bytes == MAX
    assert config.allowed_origins == ALLOWED


@pytest.mark.parametrize("env", [{}, {"ENDPOINT_NAME": ""}, {"ENDPOINT_NAME": "   "}])
def test_missing_endpoint_name_is_a_clear_config_error(env):
    with pytest.raises(ConfigError, match="ENDPOINT_NAME"):
        core.load_config(env)
    assert issubclass(ConfigError, RuntimeError)


@pytest.mark.parametrize("name", ["bad/name", "-lead", "trail-", "a" + "-b" * 40, "x" * 64])
def test_invalid_endpoint_name_is_a_config_error(name):
    with pytest.raises(ConfigError) as err:
        core.load_config({"ENDPOINT_NAME": name})
    # The init error is all the operator sees: it quotes the value it refused.
    assert str(err.value) == f"ENDPOINT_NAME {name!r} is not a valid SageMaker endpoint name"


@pytest.mark.parametrize("name", ["e", "a--b", "a" + "-" * 61 + "b", "x" * 63])
def test_valid_endpoint_names_up_to_63_chars_are_accepted(name):
    assert core.load_config({"ENDPOINT_NAME": name}).endpoint_name == name


@pytest.mark.parametrize("value", ["0", "-5", "abc", "4194305", "1.5"])
def test_max_image_bytes_must_be_within_the_sagemaker_limit(value):
    with pytest.raises(ConfigError) as err:
        core.load_config({"ENDPOINT_NAME": "e", "MAX_IMAGE_BYTES": value})
    # The value refused and the range it must be in, so the fix needs no lookup.
    assert str(err.value) == (
        f"MAX_IMAGE_BYTES {value!r} must be an integer from 1 to 4194304 (the SageMaker Serverless request limit)"
    )


@pytest.mark.parametrize("value", ["\u00b2", "10\u00b3", "\u0661\u0660"])
def test_a_max_image_bytes_of_digits_int_cannot_read_is_a_config_error_naming_it(value):
    # str.isdigit() is true for '²' and '³' (Unicode digits that are not decimal); int() raises ValueError on them.
    with pytest.raises(ConfigError) as err:
        core.load_config({"ENDPOINT_NAME": "e", "MAX_IMAGE_BYTES": value})
    assert str(err.value) == (
        f"MAX_IMAGE_BYTES {value!r} must be an integer from 1 to 4194304 (the SageMaker Serverless request limit)"
    )


def test_max_image_bytes_can_be_lowered():
    assert core.load_config({"ENDPOINT_NAME": "e", "MAX_IMAGE_BYTES": "1048576"}).max_image_bytes == 1048576


@pytest.mark.parametrize("value", ["1", str(MAX)])
def test_max_image_bytes_accepts_both_ends_of_the_range(value):
    assert core.load_config({"ENDPOINT_NAME": "e", "MAX_IMAGE_BYTES": value}).max_image_bytes == int(value)


def test_endpoint_read_timeout_defaults_to_the_budgeted_maximum():
    assert core.load_config({"ENDPOINT_NAME": "e"}).read_timeout_s == core.READ_TIMEOUT_S


def test_settings_are_trimmed_and_a_blank_one_is_unset():
    # A value pasted with a stray space or newline (a .env file, the console's field) means what it says.
    config = core.load_config({"ENDPOINT_NAME": " e-1\n", "MAX_IMAGE_BYTES": " ", "ENDPOINT_READ_TIMEOUT_S": "  "})
    assert config.endpoint_name == "e-1"
    assert config.max_image_bytes == MAX
    assert config.read_timeout_s == core.READ_TIMEOUT_S


@pytest.mark.parametrize("value", ["0.1", "3", " 10 ", "10.0"])
def test_endpoint_read_timeout_can_be_lowered(value):
    assert core.load_config({"ENDPOINT_NAME": "e", "ENDPOINT_READ_TIMEOUT_S": value}).read_timeout_s == float(value)


@pytest.mark.parametrize("value", ["0", "0.05", "-1", "10.5", "60", "inf", "nan", "abc"])
def test_endpoint_read_timeout_outside_the_budget_is_a_config_error(value):
    # Above READ_TIMEOUT_S two attempts no longer fit before API Gateway's 30 s.
    with pytest.raises(ConfigError) as err:
        core.load_config({"ENDPOINT_NAME": "e", "ENDPOINT_READ_TIMEOUT_S": value})
    assert str(err.value) == (
        f"ENDPOINT_READ_TIMEOUT_S {value!r} must be a number of seconds from 0.1 to 10 "
        "(the time budget below API Gateway's 30 s is computed for the maximum)"
    )


@pytest.mark.parametrize(
    "value",
    # A browser's Origin never holds a space, so an entry with one (a typo) would never match and CORS would fail.
    ["site.example", "ftp://x.example", "https://x.example/path", "https://x .example"],
)
def test_allowed_origins_must_be_origins(value):
    with pytest.raises(ConfigError) as err:
        core.load_config({"ENDPOINT_NAME": "e", "ALLOWED_ORIGINS": f"https://ok.example, {value}"})
    # The entry at fault, among the others, as written.
    assert str(err.value) == (
        f"ALLOWED_ORIGINS entry {value!r} is not an origin; use scheme://host[:port], comma-separated"
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL 'LOUD' is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ({"LOG_LEVEL": "10"}, "LOG_LEVEL '10' is not a log level"),
        ({"POWERTOOLS_LOG_LEVEL": "verbose", "LOG_LEVEL": "INFO"}, "POWERTOOLS_LOG_LEVEL 'verbose' is not a log level"),
        ({"POWERTOOLS_LOG_LEVEL": "", "LOG_LEVEL": "chatty"}, "LOG_LEVEL 'chatty' is not a log level"),
        # Powertools skips an empty POWERTOOLS_LOG_LEVEL, not an empty LOG_LEVEL: "Unknown level: ''".
        ({"LOG_LEVEL": ""}, "LOG_LEVEL '' is not a log level"),
        # Nor a known name with a space around it (a .env file's stray blank): " INFO" is "Unknown level" too.
        ({"LOG_LEVEL": " INFO"}, "LOG_LEVEL ' INFO' is not a log level"),
    ],
)
def test_a_log_level_powertools_cannot_use_is_a_config_error_naming_the_variable(env, says, monkeypatch):
    """`LOG_LEVEL=verbose make demo` stopped with "ValueError: Unknown level: 'VERBOSE'" from Powertools' Logger,
    naming no variable; every value refused here is refused by the Logger too. (Not TRACE: uvicorn, imported by other
    tests, adds it to logging's levels, and the Logger then takes it as well.)"""
    with pytest.raises(ConfigError) as err:
        core.load_config({"ENDPOINT_NAME": "e", **env})
    assert says in str(err.value)
    with pytest.raises(ValueError, match="Unknown level"):
        powertools_logger(monkeypatch, env)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"POWERTOOLS_LOG_LEVEL": ""},
        {"LOG_LEVEL": "debug"},
        {"LOG_LEVEL": "Warning"},
        {"POWERTOOLS_LOG_LEVEL": "ERROR"},
        # Powertools takes POWERTOOLS_LOG_LEVEL first and never reads a LOG_LEVEL behind it (a shell's, say).
        {"POWERTOOLS_LOG_LEVEL": "ERROR", "LOG_LEVEL": "LOUD"},
    ],
)
def test_a_log_level_powertools_can_use_is_accepted(env, monkeypatch):
    core.load_config({"ENDPOINT_NAME": "e", **env})
    powertools_logger(monkeypatch, env)


def powertools_logger(monkeypatch, env: dict[str, str]):
    """Powertools' Logger as the handler makes it, in an environment whose log level variables are `env`'s."""
    from aws_lambda_powertools import Logger

    for variable in (*core.LOG_LEVEL_VARIABLES, "AWS_LAMBDA_LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    # A service of its own each time: Powertools configures a service's logger once and skips the level check for
    # every later Logger of that service, so only the first value checked here reached it (in the order run).
    return Logger(service=f"log-level-check-{uuid.uuid4().hex}")


# ---- time budget ------------------------------------------------------------------------------------------


def test_invoke_budget_ends_well_before_lambda_and_api_gateway_limits():
    assert core.INVOKE_BUDGET_S + 2 <= core.LAMBDA_TIMEOUT_S < core.API_GATEWAY_LIMIT_S
    # The README's promise: InvokeEndpoint is over 5 s before API Gateway's hard limit, time to answer the client.
    assert core.INVOKE_BUDGET_S + 5 <= core.API_GATEWAY_LIMIT_S
    assert core.invoke_deadline(100.0, None) == 100.0 + core.INVOKE_BUDGET_S
    assert core.invoke_deadline(100.0, 29_000) <= 100.0 + core.LAMBDA_TIMEOUT_S - 2


def test_invoke_deadline_counts_the_remaining_lambda_time_from_when_it_was_read():
    # Read 1 s after the start (validation took that long): Lambda ends 6 s after the start, not 5.
    assert core.invoke_deadline(10.0, 5_000, read_at=11.0) == pytest.approx(11.0 + 5.0 - core.LAMBDA_SAFETY_MARGIN_S)
    # The budget is still counted from the start.
    assert core.invoke_deadline(10.0, 60_000, read_at=11.0) == 10.0 + core.INVOKE_BUDGET_S


def test_invoke_deadline_respects_a_short_remaining_lambda_time():
    assert core.invoke_deadline(10.0, 5_000) == pytest.approx(10.0 + 5.0 - core.LAMBDA_SAFETY_MARGIN_S)
    # To the millisecond, not whole seconds: 14,999 ms left is 12.999 s for an attempt, not 12.
    assert core.invoke_deadline(10.0, 14_999) == pytest.approx(10.0 + 14.999 - core.LAMBDA_SAFETY_MARGIN_S)


def test_the_common_retry_case_fits_the_budget_so_the_guard_does_not_cut_it():
    attempt = core.CONNECT_TIMEOUT_S + core.READ_TIMEOUT_S
    non_throttle_backoff = 0.05
    assert core.TOTAL_MAX_ATTEMPTS >= 2
    assert attempt + non_throttle_backoff + attempt <= core.INVOKE_BUDGET_S
    assert core.attempt_fits(now=attempt + non_throttle_backoff, deadline=core.INVOKE_BUDGET_S, attempt_s=attempt)


def test_attempt_fits():
    assert core.attempt_fits(0.0, 12.0, 12.0)
    assert not core.attempt_fits(0.1, 12.0, 12.0)


# ---- documented values and boundaries no other test pins --------------------------------------------------


def test_retry_after_values_are_the_documented_ones():
    """README's error table: throttled says Retry-After 2, model_not_ready 5 (a cold start takes longer)."""
    assert ApiError("throttled").headers()["retry-after"] == "2"
    assert ApiError("model_not_ready").headers()["retry-after"] == "5"
    not_ready = core.map_client_error("ModelNotReadyException", 429, {"Error": {"Code": "ModelNotReadyException"}})
    assert not_ready.headers()["retry-after"] == "5"
    assert core.map_transport_error(EndpointConnectionError(endpoint_url="https://x")).headers()["retry-after"] == "5"


def test_json_base64_may_hold_spaces_and_tabs_as_the_model_accepts():
    """The model's decode_base64_image drops spaces and tabs as well as line breaks; the proxy must not refuse what
    the model would read (`base64` CLI output, hand-indented JSON)."""
    encoded = b64(JPEG)
    spaced = " ".join(encoded[i : i + 8] for i in range(0, len(encoded), 8))
    tabbed = "\t".join(encoded[i : i + 12] for i in range(0, len(encoded), 12))
    assert parse_json({"image": spaced}).image == JPEG
    assert parse_json({"image": "data:image/jpeg;base64," + tabbed}).image == JPEG


def test_query_top_k_ignores_surrounding_whitespace():
    assert parse(JPEG, query={"top_k": " 7 "}).top_k == 7
    assert parse_json({"image": b64(PNG)}, query={"top_k": "3\n"}).top_k == 3


def test_printable_excerpt_truncates_only_past_the_limit_and_masks_del():
    assert core.printable_excerpt("a" * 60) == "a" * 60
    assert core.printable_excerpt("a" * 61) == "a" * 60 + "..."
    assert core.printable_excerpt("ok\x7f\x1b\u00e9") == "ok???"
    assert core.printable_excerpt(" ok~\x1f") == " ok~?"  # space and tilde are the printable range's ends


@pytest.mark.parametrize("prob", [0.0, 0, 1.0, 1])
def test_endpoint_probabilities_at_the_bounds_are_kept(prob):
    """A probability that underflowed to 0.0 (or saturated to 1.0) is a valid answer, not a model error."""
    raw = json.dumps({"predictions": [{"label": "tabby", "prob": prob}], "model": "mobilenet_v2"}).encode()
    predictions, model = core.parse_endpoint_body(raw, 5)
    assert (predictions, model) == ([{"label": "tabby", "prob": float(prob)}], "mobilenet_v2")
    # A float whatever the model wrote: the client's JSON says 1.0, not 1 (a typed client's schema wants a number
    # with a fraction, and the UI prints what it gets).
    assert json.dumps(predictions[0]["prob"]) == json.dumps(float(prob))


@pytest.mark.parametrize("model", [123, ["mobilenet_v2"], {"name": "x"}, True, None])
def test_endpoint_model_name_that_is_not_a_string_is_unknown(model):
    raw = json.dumps({"predictions": [{"label": "tabby", "prob": 0.5}], "model": model}).encode()
    assert core.parse_endpoint_body(raw, 5)[1] == "unknown"


def test_sanitize_keeps_exactly_200_characters_and_cuts_201():
    """README: model messages pass through as at most 200 characters."""
    limit = 200  # the README's number, not core.MODEL_MESSAGE_MAX_CHARS: with that, any other limit passed here
    exact = "word " * (limit // 5)
    exact = exact[: limit - 1] + "x"
    assert len(exact) == limit and core.sanitize_model_message(exact) == exact
    longer = exact + "y"
    cut = core.sanitize_model_message(longer)
    assert cut is not None and len(cut) <= limit and cut.endswith("...")


def test_no_remaining_lambda_time_leaves_no_room_for_an_attempt():
    """A context reporting 0 ms left (the local LambdaContext clamps at 0) must not fall back to the 25 s budget."""
    deadline = core.invoke_deadline(10.0, 0)
    assert deadline == pytest.approx(10.0 - core.LAMBDA_SAFETY_MARGIN_S)
    assert not core.attempt_fits(10.0, deadline, core.CONNECT_TIMEOUT_S + core.READ_TIMEOUT_S)


def test_model_error_413_and_415_pass_their_first_line_like_400():
    too_big = core.map_client_error("ModelError", 424, model_error(413, "image has 60000000 pixels\n" + TRACEBACK))
    assert (too_big.status, too_big.message) == (413, "image has 60000000 pixels")
    unsupported = core.map_client_error("ModelError", 424, model_error(415, "GIF images are not supported\n"))
    assert (unsupported.status, unsupported.message) == (415, "GIF images are not supported")
    # Without a usable line, a 413 still says it was the model that found the image too large.
    fallback = core.map_client_error("ModelError", 424, model_error(413, TRACEBACK))
    assert fallback.message == "The image is too large for the model."


@pytest.mark.parametrize("data", [b"<SVG xmlns='http://www.w3.org/2000/svg'/>", b"\n  <?XML version='1.0'?><Svg/>"])
def test_svg_is_named_whatever_the_case_of_its_markup(data):
    assert "an SVG image" in rejects("unsupported_media_type", 415, parse, data, "application/octet-stream").message


def test_json_data_url_without_a_media_type_is_sniffed():
    """RFC 2397 allows `data:;base64,...`: no declared type, so the magic number alone decides."""
    request = parse_json({"image": "data:;base64," + b64(PNG)})
    assert (request.image, request.content_type) == (PNG, "image/png")
