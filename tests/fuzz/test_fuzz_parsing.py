"""Property-based fuzzing of everything that parses client bytes: the proxy's request parsing and error
mapping (handlers/proxy_core.py) and the model's input_fn / output_fn (the artifact's code/inference.py).

The property is always the same: only the named errors come out (ApiError in the proxy, InferenceError in
the model), never anything else, and what is accepted satisfies the contract. Derandomized with a modest
example count so CI runs are stable and quick; `HYPOTHESIS_PROFILE_FUZZ=deep` explores much more.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from handlers import proxy_core as core
from handlers.proxy_core import ApiError
from tests.imagegen import encode, photo

settings.register_profile(
    "ci", max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("deep", max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE_FUZZ", "ci"))

_SMALL = photo("coffee.jpg").resize((40, 40))
SEEDS = [
    encode(_SMALL, "JPEG", quality=80),
    encode(_SMALL, "PNG"),
    encode(_SMALL, "WEBP"),
    encode(_SMALL.convert("L"), "PNG"),
    encode(_SMALL, "GIF"),
]


@st.composite
def mutated_images(draw) -> bytes:
    """A real small image with a few byte flips, a cut, or junk spliced in: gets past the magic-number sniff
    and deep into the decoders, where random bytes never go."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(0, 8))):
        data[rng.randrange(len(data))] = rng.randrange(256)
    operation = draw(st.sampled_from(["none", "truncate", "splice", "extend"]))
    if operation == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif operation == "splice":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    elif operation == "extend":
        data += draw(st.binary(max_size=256))
    return bytes(data)


image_bytes = st.one_of(mutated_images(), st.binary(max_size=512), st.sampled_from(SEEDS))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
top_k_values = st.one_of(st.integers(-5, 30), st.integers(), st.floats(), st.text(max_size=6), st.none(), st.booleans())


@st.composite
def image_fields(draw) -> object:
    data = draw(image_bytes)
    encoded = base64.b64encode(data).decode()
    kind = draw(st.sampled_from(["b64", "data_url", "wrapped", "json_value", "text"]))
    if kind == "b64":
        return encoded
    if kind == "data_url":
        media = draw(
            st.sampled_from(["image/jpeg", "image/png", "image/webp", "image/jpg", "text/plain", "", "IMAGE/PNG"])
        )
        params = draw(st.sampled_from([";base64", ";charset=x;base64", "", ";BASE64"]))
        return f"data:{media}{params},{encoded}"
    if kind == "wrapped":
        return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    if kind == "json_value":
        return draw(json_values)
    return draw(st.text(max_size=64))


@st.composite
def json_documents(draw) -> bytes:
    document = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    if draw(st.booleans()):
        document["image"] = draw(image_fields())
    if draw(st.booleans()):
        document["top_k"] = draw(top_k_values)
    if draw(st.integers(0, 9)) == 0:
        return json.dumps(draw(json_values)).encode()  # not an object at all
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "image/jpeg",
            "image/png",
            "image/webp",
            "image/jpg",
            "image/pjpeg",
            "application/x-image",
            "application/octet-stream",
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd+json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "image/gif",
            "",
            " ; ",
            "IMAGE/PNG;q=1",
        ]
    ),
    st.text(max_size=30),
)
queries = st.dictionaries(
    st.sampled_from(["top_k", "x", "image"]), st.one_of(st.text(max_size=8), st.integers(-3, 30).map(str)), max_size=2
)


def as_event_body(data: bytes, text_mode: bool) -> tuple[str, bool]:
    """How API Gateway hands a body to the Lambda: UTF-8 text as-is, anything else base64 + isBase64Encoded."""
    if text_mode:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode(), True


# --- the proxy's request parsing -----------------------------------------------------------------------------
# The random inputs are almost never a valid request (the derandomized run drew none), so the fuzz test's checks on
# what is accepted never ran: these valid requests (data, text_mode, content_type, query, max_image_bytes) run as its
# explicit examples, and test_the_fuzz_tests_valid_examples_are_accepted keeps them valid.
VALID_REQUESTS = [
    (SEEDS[0], False, "image/jpeg", {"top_k": "3"}, core.SAGEMAKER_SERVERLESS_MAX_BYTES),
    (SEEDS[1], False, "application/octet-stream", {}, 4096),
    (
        json.dumps({"image": base64.b64encode(SEEDS[2]).decode(), "top_k": 20}).encode(),
        True,
        "application/json",
        {},
        4096,
    ),
    (
        json.dumps({"image": "data:image/png;base64," + base64.b64encode(SEEDS[3]).decode()}).encode(),
        True,
        "application/json; charset=utf-8",
        {"top_k": "1"},
        core.SAGEMAKER_SERVERLESS_MAX_BYTES,
    ),
]


def with_valid_requests(test):
    for data, text_mode, content_type, query, max_image_bytes in VALID_REQUESTS:
        test = example(
            data=data,
            text_mode=text_mode,
            raw_text=None,
            content_type=content_type,
            query=query,
            max_image_bytes=max_image_bytes,
        )(test)
    return test


@pytest.mark.parametrize(("data", "text_mode", "content_type", "query", "max_image_bytes"), VALID_REQUESTS)
def test_the_fuzz_tests_valid_examples_are_accepted(data, text_mode, content_type, query, max_image_bytes):
    body, is_base64 = as_event_body(data, text_mode)
    core.parse_predict_request(
        body=body, is_base64=is_base64, content_type=content_type, query=query, max_image_bytes=max_image_bytes
    )


@PROFILE
@given(
    data=st.one_of(image_bytes, json_documents(), st.binary(max_size=256)),
    text_mode=st.booleans(),
    raw_text=st.one_of(st.none(), st.text(max_size=64)),
    content_type=content_types,
    query=queries,
    max_image_bytes=st.one_of(st.just(core.SAGEMAKER_SERVERLESS_MAX_BYTES), st.integers(1, 4096)),
)
@with_valid_requests
def test_parse_predict_request_raises_only_api_errors(data, text_mode, raw_text, content_type, query, max_image_bytes):
    body, is_base64 = as_event_body(data, text_mode) if raw_text is None else (raw_text, False)
    try:
        request = core.parse_predict_request(
            body=body, is_base64=is_base64, content_type=content_type, query=query, max_image_bytes=max_image_bytes
        )
    except ApiError as error:
        spec = core.ERRORS[error.code]
        assert error.status == spec.status and error.code != "internal_error" and error.message
        return
    assert request.content_type in core.SUPPORTED_IMAGE_TYPES
    assert core.sniff_image_type(request.image) == request.content_type
    assert 0 < len(request.image) <= max_image_bytes
    assert 1 <= request.top_k <= core.MAX_TOP_K


# --- the proxy's mapping of what the endpoint says --------------------------------------------------------------
LEAKY_PIECES = [
    "Traceback (most recent call last):",
    'File "/opt/ml/model/code/inference.py", line 3',
    "arn:aws:sagemaker:us-east-1:123456789012:endpoint/mobilenet",
    "123456789012",
    "/opt/ml/model/code/inference.py",
    "/home/model-server/tmp/models/x.py",
    "C:\\models\\inference.py",
    "image is truncated",
    "CUDA out of memory",
]


@PROFILE
@given(
    pieces=st.lists(st.one_of(st.sampled_from(LEAKY_PIECES), st.text(max_size=12)), max_size=8),
    separators=st.lists(st.sampled_from([" ", "\n", ": ", " (", " '", ' "', "=", ", "]), min_size=8, max_size=8),
)
def test_sanitized_model_messages_never_leak(pieces, separators):
    text = "".join(f"{piece}{sep}" for piece, sep in zip(pieces, separators, strict=False))
    cleaned = core.sanitize_model_message(text)
    if cleaned is None:
        return
    assert "\n" not in cleaned and len(cleaned) <= core.MODEL_MESSAGE_MAX_CHARS
    # "Traceback" mid-line is only a word; the traceback's own lines (File "...", paths) are what must go.
    for marker in ('File "', "/opt/ml", "arn:aws", "/home/model-server", "C:\\models"):
        assert marker not in cleaned, (text, cleaned)
    assert not re.search(r"(?<!\d)\d{12}(?!\d)", cleaned), (text, cleaned)


original_statuses = st.one_of(
    st.none(), st.integers(-1, 999), st.sampled_from(["400", "500", "", "abc"]), st.floats(), st.booleans()
)


@PROFILE
@given(
    code=st.one_of(
        st.sampled_from(
            [
                "ModelError",
                "ThrottlingException",
                "ValidationError",
                "ServiceUnavailable",
                "ModelNotReadyException",
                "InternalFailure",
                "AccessDeniedException",
            ]
        ),
        st.text(max_size=20),
    ),
    http_status=st.one_of(st.none(), st.integers(100, 599)),
    message=st.text(max_size=80),
    original_status=original_statuses,
    original_message=st.one_of(st.none(), st.text(max_size=120), st.sampled_from(LEAKY_PIECES)),
)
def test_map_client_error_always_answers_from_the_table(code, http_status, message, original_status, original_message):
    # The shape botocore parses a sagemaker-runtime error into (OriginalStatusCode is an integer in the model).
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": http_status},
        "OriginalStatusCode": original_status,
        "OriginalMessage": original_message,
    }
    error = core.map_client_error(code, http_status, response)
    assert error.code in core.ERRORS and error.code != "internal_error"
    assert "Traceback" not in error.message and "arn:aws" not in error.message and "/opt/ml" not in error.message


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("a/" + "b" * 5000, b"x"),
        ("application/json", json.dumps({"image": "data:" + "x\n\x1b[31m" * 500 + ";base64,AAAA"})),
    ],
    ids=["long_content_type", "data_url_type_with_newlines"],
)
def test_error_messages_stay_one_short_line(content_type, body):
    with pytest.raises(ApiError) as err:
        core.parse_predict_request(
            body=body if isinstance(body, str) else body.decode(),
            is_base64=False,
            content_type=content_type,
            query={},
            max_image_bytes=core.SAGEMAKER_SERVERLESS_MAX_BYTES,
        )
    assert err.value.code == "unsupported_media_type"
    message = err.value.message
    assert len(message) <= 300 and not any(ord(c) < 32 for c in message), message[:120]


def test_model_error_with_a_superscript_digit_status_is_still_mapped():
    error = core.map_client_error("ModelError", 424, {"OriginalStatusCode": "²", "OriginalMessage": "x"})
    assert error.code == "model_error"


# --- the model's input_fn / output_fn -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(inference, classifier):
    """The artifact's inference module with model_fn done (input_fn needs the loaded preprocessing)."""
    return inference


model_content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "image/jpeg",
            "image/png",
            "image/webp",
            "application/x-image",
            "application/json",
            "application/json; charset=utf-8",
            "IMAGE/JPEG",
            "image/gif",
            "text/csv",
            "",
            "application/octet-stream",
        ]
    ),
    st.text(max_size=24),
)


@PROFILE
@given(data=st.one_of(image_bytes, json_documents()), content_type=model_content_types, as_text=st.booleans())
def test_input_fn_raises_only_inference_errors(model, data, content_type, as_text):
    # The toolkit hands UTF-8 media types (JSON) over as str and everything else as bytes.
    body: bytes | str = data
    media = (content_type or "").split(";")[0].strip().lower()
    if as_text and media == "application/json":
        with contextlib.suppress(UnicodeDecodeError):
            body = data.decode("utf-8")
    try:
        result = model.input_fn(body, content_type)
    except model.InferenceError as error:
        assert 400 <= error.status_code < 500 and error.message and "\n" not in error.message
        return
    assert result.batch.shape == (1, 224, 224, 3) and str(result.batch.dtype) == "uint8"
    assert result.top_k is None or 1 <= result.top_k <= model.MAX_TOP_K


@pytest.fixture(scope="module")
def a_prediction(model, classifier):
    return model.predict_fn(model.input_fn(SEEDS[0], "image/jpeg"), classifier)


@PROFILE
@given(
    accept=st.one_of(
        st.none(),
        st.sampled_from(
            [
                "application/json",
                "*/*",
                "application/json;top_k=3",
                "text/html, application/json",
                "application/json;top_k=abc",
                "application/json;top_k=0",
                "text/csv",
                "application/*;top_k=99",
            ]
        ),
        st.text(max_size=40),
        st.builds(lambda k: f"application/json;top_k={k}", st.text(max_size=8)),
    )
)
def test_output_fn_raises_only_inference_errors(model, a_prediction, accept):
    try:
        body, content_type = model.output_fn(a_prediction, accept)
    except model.InferenceError as error:
        assert error.status_code in (400, 406)
        return
    assert content_type == "application/json"
    predictions = json.loads(body)["predictions"]
    assert 1 <= len(predictions) <= model.MAX_TOP_K


def test_input_fn_str_body_under_an_image_type_is_an_inference_error(model):
    with pytest.raises(model.InferenceError):
        model.input_fn("\u0101 not latin-1", "image/jpeg")
