"""The hostile-input corpus, as data: one `Case` per request, with the answer the local stack must give.

`body` is literal bytes, or the name of a generator in `GENERATORS` (built lazily: some are megabytes, and the
decompression bomb takes a moment to compress). `expected_error` is the handler's error code; None means the
answer is API Gateway's own ({"message": ...}) or a success. Images the model can read are expected to
succeed (200): odd is not hostile. `known_bug` marks a case whose expected answer is right but which the
stack does not give yet (reported to the lead); the test runs it as a strict xfail, so a fix shows up.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image

from tests.imagegen import (
    animated_gif,
    baseline_many_scans_jpeg,
    bomb_png,
    encode,
    many_scans_jpeg,
    palette_png_with_long_trns,
    photo,
    photo_bytes,
    png_with_colour_profiles,
    polyglot,
    truncated,
    with_exif_orientation,
)

JPEG_CT = {"content-type": "image/jpeg"}
PNG_CT = {"content-type": "image/png"}
JSON_CT = {"content-type": "application/json"}
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    expected_status: int
    expected_error: str | None
    body: bytes | str = b""  # bytes, or a GENERATORS name
    method: str = "POST"
    path: str = "/predict"
    headers: dict[str, str | bytes] = field(default_factory=lambda: dict(JPEG_CT))
    known_bug: str | None = None

    def build_body(self) -> bytes:
        return GENERATORS[self.body]() if isinstance(self.body, str) else self.body


# --- generators (cached: several cases share one image) -------------------------------------------------------
@cache
def coffee() -> bytes:
    return photo_bytes("coffee.jpg")


@cache
def small_jpeg() -> bytes:
    return encode(photo("coffee.jpg").resize((64, 64)), "JPEG", quality=85)


@cache
def small_png() -> bytes:
    return encode(photo("coffee.jpg").resize((64, 64)), "PNG")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def json_body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def sixteen_bit_png() -> bytes:
    ramp = np.linspace(0, 65535, 96 * 96, dtype=np.uint16).reshape(96, 96)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    data = encode(img, "PNG")
    assert data[24:26] == b"\x10\x00", "IHDR must say 16 bits per sample, greyscale"
    return data


def deeply_nested() -> bytes:
    # Past any sane recursion limit: json.loads must fail cleanly, not blow the stack.
    return b'{"image": "' + b64(small_jpeg()).encode() + b'", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def moderately_nested() -> bytes:
    return b'{"image": "' + b64(small_jpeg()).encode() + b'", "meta": ' + b"[" * 200 + b"]" * 200 + b"}"


def many_arrays() -> bytes:
    # 1.9 million empty arrays beside a good image: 5.7 MB, under every size cap; parsed, they took the proxy from
    # 68 MB to over 300 MB, past the function's memory.
    return b'{"image": "' + b64(small_jpeg()).encode() + b'", "meta": [' + b"[]," * 1_900_000 + b"[]]}"


def multipart() -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="coffee.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + small_jpeg() + b"\r\n--XyZ--\r\n"
    )


GENERATORS: dict[str, Callable[[], bytes]] = {
    "coffee": coffee,
    "small_jpeg": small_jpeg,
    "truncated_jpeg": lambda: truncated(coffee(), 0.3),
    "truncated_png": lambda: truncated(small_png(), 0.5),
    "one_pixel_png": lambda: encode(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"),
    "one_pixel_jpeg": lambda: encode(Image.new("RGB", (1, 1), (200, 30, 30)), "JPEG"),
    "bomb_png": bomb_png,
    "over_limit_png": lambda: bomb_png(8_000, 8_000),  # 64 Mpx: over the model's 50 Mpx, under Pillow's 2x
    "extreme_aspect_png": lambda: encode(Image.new("RGB", (20_000, 1), (10, 120, 10)), "PNG"),
    "animated_gif": animated_gif,
    "cmyk_jpeg": lambda: encode(photo("coffee.jpg").resize((128, 128)).convert("CMYK"), "JPEG"),
    "sixteen_bit_png": sixteen_bit_png,
    "rgba_png": lambda: encode(photo("coffee.jpg").resize((64, 64)).convert("RGBA"), "PNG"),
    "webp": lambda: encode(photo("coffee.jpg").resize((64, 64)), "WEBP"),
    "exif_orientation_9": lambda: with_exif_orientation(photo("coffee.jpg").resize((96, 96)), 9),
    "exif_orientation_65535": lambda: with_exif_orientation(photo("coffee.jpg").resize((96, 96)), 65535),
    "polyglot": polyglot,
    "bmp": lambda: encode(Image.new("RGB", (8, 8)), "BMP"),
    "tiff": lambda: encode(Image.new("RGB", (8, 8)), "TIFF"),
    "pdf": lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    "svg": lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
    "html": lambda: b"<!doctype html><script>alert(1)</script>",
    "header_only_jpeg": lambda: b"\xff\xd8\xff",
    # 0.5 MB that libjpeg took 37 s to decode (each scan is decoded over all 49 Mpx); 4 MB would take half an hour.
    "many_scans_jpeg": lambda: many_scans_jpeg(1_000, 7_000),
    # Not counted (single pass): libjpeg ends at the second scan with an error, so the other 23 cost nothing.
    "baseline_many_scans_jpeg": lambda: baseline_many_scans_jpeg(25, 3_000),
    # A 1x1 PNG of 3,900 colour profiles (4 MB) that Pillow inflated to 4 GB, 9 s of CPU per request.
    "iccp_flood_png": lambda: png_with_colour_profiles(3_900),
    "long_trns_png": palette_png_with_long_trns,
    "body_4_25mb": lambda: b"\xff\xd8\xff\xe0" + b"\x00" * (4 * MB + MB // 4),
    "json_5_5mb": lambda: json_body(image=b64(b"\xff\xd8\xff\xe0" + b"\x00" * (4 * MB + 64 * 1024))),
    "body_5mb": lambda: b"\xff\xd8\xff\xe0" + b"\x00" * (5 * MB),
    "body_12mb": lambda: b"\xff\xd8\xff\xe0" + b"\x00" * (12 * MB),
    "json_6mb": lambda: json_body(image=b64(b"\xff\xd8\xff\xe0" + b"\x00" * (4 * MB + 512 * 1024))),
    "multipart": multipart,
    "json_ok": lambda: json_body(image=b64(small_jpeg())),
    "json_mime_wrapped": lambda: json_body(image="\n".join(b64(small_jpeg())[i : i + 76] for i in range(0, 9999, 76))),
    "json_bom": lambda: b"\xef\xbb\xbf" + json_body(image=b64(small_jpeg())),
    "json_base64_of_text": lambda: json_body(image=b64(b"hello, I am definitely an image")),
    "json_data_url_text_plain": lambda: json_body(image="data:text/plain;base64," + b64(small_jpeg())),
    "json_data_url_mismatch": lambda: json_body(image="data:image/png;base64," + b64(small_jpeg())),
    "json_data_url_not_base64": lambda: json_body(image="data:image/jpeg,%FF%D8%FF"),
    "json_data_url_no_comma": lambda: json_body(image="data:image/jpeg;base64"),
    "json_unknown_fields": lambda: json_body(image=b64(small_jpeg()), client="ui/1.2", extra={"a": [1, 2, None]}),
    "json_unicode_fields": lambda: json_body(
        image=b64(small_jpeg()), **{"名前": "猫 🐈", "ключ": "\u202eevil\u200b", "ctl": "\x00\x07\x1b[31m"}
    ),
    "json_unicode_in_image": lambda: json_body(image="ÿØÿà" + "🐈" * 8),
    "json_control_chars_in_image": lambda: json_body(image="\x00\x01\x02\x1b[2J"),
    "json_lone_surrogate_in_image": lambda: b'{"image": "\\ud800\\udfff\\ud800"}',
    "json_raw_control_char": lambda: b'{"image": "/9j/\x01\x02"}',
    "json_data_url_huge_type": lambda: json_body(image="data:" + "x\n\x1b[31m" * 20_000 + ";base64,AAAA"),
    "json_not_utf8": lambda: b'{"image": "\xff\xfe\xfd"}',
    "deeply_nested": deeply_nested,
    "moderately_nested": moderately_nested,
    "many_arrays": many_arrays,
    "json_top_k_1e9": lambda: b'{"image": "' + b64(small_jpeg()).encode() + b'", "top_k": 1e9}',
    "json_big_int_top_k": lambda: b'{"image": "' + b64(small_jpeg()).encode() + b'", "top_k": ' + b"9" * 5000 + b"}",
}


def top_k_case(value: object, status: int = 400, error: str | None = "bad_request") -> Case:
    return Case(
        id=f"json_top_k_{value!r}".replace(" ", ""),
        description=f"JSON top_k = {value!r}",
        headers=dict(JSON_CT),
        body=json.dumps({"image": b64(small_jpeg()), "top_k": value}).encode(),
        expected_status=status,
        expected_error=error,
    )


def build_cases() -> list[Case]:
    bad, ok, ct415 = "bad_request", None, "unsupported_media_type"
    cases = [
        # --- empty and whitespace bodies
        Case("empty_jpeg_body", "zero-byte body declared image/jpeg", 400, bad, b""),
        Case("empty_json_body", "zero-byte body declared application/json", 400, bad, b"", headers=dict(JSON_CT)),
        Case("whitespace_json", "only whitespace as JSON", 400, bad, b" \n\t\r ", headers=dict(JSON_CT)),
        Case("whitespace_raw", "only whitespace declared image/jpeg", 415, ct415, b"   \n  "),
        # --- JSON shape
        Case("invalid_json", "truncated JSON object", 400, bad, b'{"image": "abc', headers=dict(JSON_CT)),
        Case("json_array", "a JSON array instead of an object", 400, bad, b"[1, 2]", headers=dict(JSON_CT)),
        Case("json_scalar", "a JSON string instead of an object", 400, bad, b'"/9j/4AAQ"', headers=dict(JSON_CT)),
        Case("json_no_image", "JSON without the image field", 400, bad, b'{"top_k": 5}', headers=dict(JSON_CT)),
        Case("json_image_null", "image is null", 400, bad, b'{"image": null}', headers=dict(JSON_CT)),
        Case("json_image_number", "image is a number", 400, bad, b'{"image": 12345}', headers=dict(JSON_CT)),
        Case("json_image_list", "image is a list", 400, bad, b'{"image": ["/9j/"]}', headers=dict(JSON_CT)),
        Case("json_image_object", "image is an object", 400, bad, b'{"image": {"b64": "x"}}', headers=dict(JSON_CT)),
        Case(
            "json_image_empty",
            "image is an empty string (a zero-byte file)",
            400,
            bad,
            b'{"image": ""}',
            headers=dict(JSON_CT),
        ),
        Case(
            "invalid_base64", "image is not base64", 400, bad, b'{"image": "***not base64***"}', headers=dict(JSON_CT)
        ),
        Case(
            "base64_bad_padding", "base64 with broken padding", 400, bad, b'{"image": "/9j/4A="}', headers=dict(JSON_CT)
        ),
        Case("base64_urlsafe", "URL-safe base64 alphabet", 400, bad, b'{"image": "_9j_4AAQ-"}', headers=dict(JSON_CT)),
        Case("base64_of_text", "valid base64 of plain text", 415, ct415, "json_base64_of_text", headers=dict(JSON_CT)),
        Case(
            "data_url_text_plain",
            "data: URL declaring text/plain around a JPEG",
            415,
            ct415,
            "json_data_url_text_plain",
            headers=dict(JSON_CT),
        ),
        Case(
            "data_url_type_mismatch",
            "data: URL declaring image/png around a JPEG",
            400,
            bad,
            "json_data_url_mismatch",
            headers=dict(JSON_CT),
        ),
        Case(
            "data_url_not_base64",
            "percent-encoded data: URL",
            400,
            bad,
            "json_data_url_not_base64",
            headers=dict(JSON_CT),
        ),
        Case("data_url_no_comma", "data: URL without data", 400, bad, "json_data_url_no_comma", headers=dict(JSON_CT)),
        Case(
            "data_url_huge_type",
            "data: URL whose media type is 160 KB of newlines and ANSI escapes",
            415,
            ct415,
            "json_data_url_huge_type",
            headers=dict(JSON_CT),
        ),
        Case("json_not_utf8", "JSON body that is not UTF-8", 400, bad, "json_not_utf8", headers=dict(JSON_CT)),
        Case(
            "json_raw_control_char",
            "raw control characters inside a JSON string",
            400,
            bad,
            "json_raw_control_char",
            headers=dict(JSON_CT),
        ),
        Case(
            "json_unicode_in_image",
            "non-ASCII and emoji in the image field",
            400,
            bad,
            "json_unicode_in_image",
            headers=dict(JSON_CT),
        ),
        Case(
            "json_control_chars_in_image",
            "escaped control characters in the image field",
            400,
            bad,
            "json_control_chars_in_image",
            headers=dict(JSON_CT),
        ),
        Case(
            "json_lone_surrogate",
            "lone UTF-16 surrogates in the image field",
            400,
            bad,
            "json_lone_surrogate_in_image",
            headers=dict(JSON_CT),
        ),
        Case(
            "deeply_nested_json",
            "100,000 nested arrays in an unknown field",
            400,
            bad,
            "deeply_nested",
            headers=dict(JSON_CT),
        ),
        Case(
            "many_arrays_json",
            "1.9 million empty arrays (5.7 MB) in an unknown field",
            400,
            bad,
            "many_arrays",
            headers=dict(JSON_CT),
        ),
        Case(
            "moderately_nested_json",
            "200 nested arrays in an unknown field (ignored)",
            200,
            ok,
            "moderately_nested",
            headers=dict(JSON_CT),
        ),
        Case(
            "json_unknown_fields",
            "unknown JSON fields are ignored",
            200,
            ok,
            "json_unknown_fields",
            headers=dict(JSON_CT),
        ),
        Case(
            "json_unicode_fields",
            "unicode, bidi and control characters in unknown fields",
            200,
            ok,
            "json_unicode_fields",
            headers=dict(JSON_CT),
        ),
        Case(
            "json_mime_wrapped_base64",
            "base64 wrapped at 76 columns",
            200,
            ok,
            "json_mime_wrapped",
            headers=dict(JSON_CT),
        ),
        Case("json_with_bom", "UTF-8 BOM before the JSON", 200, ok, "json_bom", headers=dict(JSON_CT)),
        Case(
            "json_as_vendor_type",
            "application/vnd.api+json is JSON too",
            200,
            ok,
            "json_ok",
            headers={"content-type": "application/vnd.api+json"},
        ),
        # --- top_k
        top_k_case(0),
        top_k_case(-1),
        top_k_case(21),
        top_k_case("abc"),
        top_k_case(None),
        top_k_case(True),
        top_k_case(5.0),
        top_k_case(20, 200, None),
        Case("json_top_k_1e9", "top_k = 1e9 (a float)", 400, bad, "json_top_k_1e9", headers=dict(JSON_CT)),
        Case("json_top_k_5000_digits", "top_k with 5000 digits", 400, bad, "json_big_int_top_k", headers=dict(JSON_CT)),
        Case("query_top_k_0", "?top_k=0", 400, bad, "small_jpeg", path="/predict?top_k=0"),
        Case("query_top_k_abc", "?top_k=abc", 400, bad, "small_jpeg", path="/predict?top_k=abc"),
        Case("query_top_k_1e9", "?top_k=1e9", 400, bad, "small_jpeg", path="/predict?top_k=1e9"),
        Case(
            "query_top_k_repeated",
            "?top_k=1&top_k=2 (joined as '1,2')",
            400,
            bad,
            "small_jpeg",
            path="/predict?top_k=1&top_k=2",
        ),
        Case(
            "query_and_json_top_k_differ",
            "?top_k=3 with JSON top_k 4",
            400,
            bad,
            json.dumps({"image": b64(small_jpeg()), "top_k": 4}).encode(),
            path="/predict?top_k=3",
            headers=dict(JSON_CT),
        ),
        # --- bytes that are not (acceptable) images
        Case("text_as_jpeg", "plain text declared image/jpeg", 415, ct415, b"definitely not an image"),
        Case("html_as_png", "HTML declared image/png", 415, ct415, "html", headers=dict(PNG_CT)),
        Case("pdf_as_jpeg", "a PDF declared image/jpeg", 415, ct415, "pdf"),
        Case("svg_as_png", "an SVG declared image/png", 415, ct415, "svg", headers=dict(PNG_CT)),
        Case(
            "bmp_as_octet_stream",
            "a BMP as application/octet-stream",
            415,
            ct415,
            "bmp",
            headers={"content-type": "application/octet-stream"},
        ),
        Case(
            "tiff_as_x_image",
            "a TIFF as application/x-image",
            415,
            ct415,
            "tiff",
            headers={"content-type": "application/x-image"},
        ),
        Case(
            "animated_gif",
            "an animated GIF declared image/gif",
            415,
            ct415,
            "animated_gif",
            headers={"content-type": "image/gif"},
        ),
        Case("animated_gif_as_jpeg", "an animated GIF declared image/jpeg", 415, ct415, "animated_gif"),
        Case("jpeg_declared_png", "a JPEG declared image/png", 400, bad, "small_jpeg", headers=dict(PNG_CT)),
        Case("polyglot", "JPEG magic followed by HTML/JS", 400, "invalid_image", "polyglot"),
        Case("header_only_jpeg", "a 3-byte file: just the JPEG magic", 400, "invalid_image", "header_only_jpeg"),
        Case("truncated_jpeg", "the first 30% of a JPEG", 400, "invalid_image", "truncated_jpeg"),
        Case("many_scans_jpeg", "a 7000x7000 JPEG of 1,000 scans (0.5 MB)", 400, "invalid_image", "many_scans_jpeg"),
        Case(
            "baseline_many_scans_jpeg",
            "a 3000x3000 baseline JPEG whose one scan repeats 25 times (3.5 MB)",
            400,
            "invalid_image",
            "baseline_many_scans_jpeg",
        ),
        Case(
            "iccp_flood_png",
            "a 1x1 PNG of 3,900 colour profiles (4 MB; PNG allows one)",
            400,
            "invalid_image",
            "iccp_flood_png",
            headers=dict(PNG_CT),
        ),
        Case("truncated_png", "the first half of a PNG", 400, "invalid_image", "truncated_png", headers=dict(PNG_CT)),
        Case(
            "decompression_bomb",
            "30000x30000 1-bit PNG of a few KB",
            413,
            "payload_too_large",
            "bomb_png",
            headers=dict(PNG_CT),
        ),
        Case(
            "over_pixel_limit",
            "8000x8000 1-bit PNG (64 Mpx > 50 Mpx)",
            413,
            "payload_too_large",
            "over_limit_png",
            headers=dict(PNG_CT),
        ),
        # --- odd but valid images: the model reads them
        Case("one_pixel_png", "a 1x1 PNG", 200, ok, "one_pixel_png", headers=dict(PNG_CT)),
        Case("long_trns_png", "a palette PNG with 300 alphas (tRNS)", 200, ok, "long_trns_png", headers=dict(PNG_CT)),
        Case("one_pixel_jpeg", "a 1x1 JPEG", 200, ok, "one_pixel_jpeg"),
        Case("extreme_aspect", "a 20000x1 PNG", 200, ok, "extreme_aspect_png", headers=dict(PNG_CT)),
        Case("cmyk_jpeg", "a CMYK JPEG", 200, ok, "cmyk_jpeg"),
        Case("sixteen_bit_png", "a 16-bit greyscale PNG", 200, ok, "sixteen_bit_png", headers=dict(PNG_CT)),
        Case("rgba_png", "a PNG with alpha", 200, ok, "rgba_png", headers=dict(PNG_CT)),
        Case("webp", "a WebP", 200, ok, "webp", headers={"content-type": "image/webp"}),
        Case("exif_orientation_9", "EXIF orientation 9 (undefined)", 200, ok, "exif_orientation_9"),
        Case("exif_orientation_65535", "EXIF orientation 65535", 200, ok, "exif_orientation_65535"),
        Case(
            "image_jpg_alias",
            "image/jpg (non-standard spelling)",
            200,
            ok,
            "small_jpeg",
            headers={"content-type": "image/jpg"},
        ),
        Case(
            "uppercase_content_type",
            "IMAGE/JPEG; charset=binary",
            200,
            ok,
            "small_jpeg",
            headers={"content-type": "IMAGE/JPEG; charset=binary"},
        ),
        # --- sizes
        Case("body_4_25mb", "a 4.25 MB body (over the 4 MB endpoint limit)", 413, "payload_too_large", "body_4_25mb"),
        Case(
            "json_5_5mb",
            "a 5.5 MB JSON body (image over 4 MB once decoded)",
            413,
            "payload_too_large",
            "json_5_5mb",
            headers=dict(JSON_CT),
        ),
        # API Gateway base64-encodes a raw body into the event, and Lambda refuses events over 6 MiB: the
        # function never runs, and API Gateway answers 413 itself.
        Case("body_5mb", "a 5 MB body (over Lambda's 6 MiB event once base64-encoded)", 413, None, "body_5mb"),
        Case(
            "json_6mb",
            "a 6 MB JSON body (over Lambda's 6 MiB event)",
            413,
            None,
            "json_6mb",
            headers=dict(JSON_CT),
        ),
        Case("body_12mb", "a 12 MB body (over API Gateway's 10 MB)", 413, None, "body_12mb"),
        # --- content types
        Case(
            "text_plain", "a JPEG declared text/plain", 415, ct415, "small_jpeg", headers={"content-type": "text/plain"}
        ),
        Case(
            "multipart_form",
            "a multipart/form-data upload",
            415,
            ct415,
            "multipart",
            headers={"content-type": "multipart/form-data; boundary=XyZ"},
        ),
        Case(
            "form_urlencoded",
            "application/x-www-form-urlencoded",
            415,
            ct415,
            b"image=%2F9j%2F",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        Case("no_content_type", "no Content-Type header", 415, ct415, "small_jpeg", headers={}),
        Case(
            "empty_content_type", "an empty Content-Type header", 415, ct415, "small_jpeg", headers={"content-type": ""}
        ),
        Case(
            "content_type_with_ctl",
            "Content-Type 'image/jpeg\\x7f'",
            415,
            ct415,
            "small_jpeg",
            headers={"content-type": "image/jpeg\x7f"},
        ),
        Case(
            "content_type_60kb",
            "a 60 KB Content-Type (over the gateway's 10 KB header quota)",
            431,
            None,
            b"x",
            headers={"content-type": "a/" + "b" * 60_000},
        ),
        Case(
            "content_type_5kb",
            "a 5 KB Content-Type: refused, and not echoed back whole",
            415,
            ct415,
            b"x",
            headers={"content-type": "a/" + "b" * 5_000},
        ),
        # --- methods, paths, headers
        Case("get_predict", "GET /predict", 404, None, method="GET", headers={}),
        Case("put_predict", "PUT /predict", 404, None, "small_jpeg", method="PUT"),
        Case("delete_predict", "DELETE /predict", 404, None, method="DELETE", headers={}),
        Case("patch_predict", "PATCH /predict", 404, None, "small_jpeg", method="PATCH"),
        Case(
            "propfind_predict", "PROPFIND /predict (a method no route lists)", 404, None, method="PROPFIND", headers={}
        ),
        Case("post_unknown_path", "POST /v1/predict", 404, None, "small_jpeg", path="/v1/predict"),
        Case("post_predict_subpath", "POST /predict/x", 404, None, "small_jpeg", path="/predict/x"),
        Case(
            "post_predict_trailing_slash",
            "POST /predict/ (no such route in the cloud)",
            404,
            None,
            "small_jpeg",
            path="/predict/",
        ),
        Case("post_root", "POST /", 404, None, "small_jpeg", path="/"),
        Case(
            "huge_header_ok",
            "an 8 KB custom header (under the limits)",
            200,
            ok,
            "small_jpeg",
            headers={**JPEG_CT, "x-padding": "a" * 8 * 1024},
        ),
        Case(
            "many_headers_ok",
            "100 custom headers",
            200,
            ok,
            "small_jpeg",
            headers={**JPEG_CT, **{f"x-h{i}": "v" * 50 for i in range(100)}},
        ),
        Case(
            "unicode_header",
            "latin-1 bytes in a header value",
            200,
            ok,
            "small_jpeg",
            headers={**JPEG_CT, "x-note": b"caf\xe9 \x80\xff"},
        ),
        Case(
            "header_64kb",
            "a 64 KB header value (over API Gateway's 10 KB request line + headers quota)",
            431,
            None,
            "small_jpeg",
            headers={**JPEG_CT, "x-padding": "b" * 64 * 1024},
        ),
        Case(
            "header_1mb",
            "a 1 MB header value",
            431,
            None,
            "small_jpeg",
            headers={**JPEG_CT, "x-padding": "c" * 1024 * 1024},
        ),
    ]
    return cases


CASES = build_cases()
