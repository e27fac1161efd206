"""model.tar.gz served by AWS's own stack (sagemaker-pytorch-inference toolkit + TorchServe), as in the container.

What a mock cannot prove: the artifact layout the toolkit expects, the SAGEMAKER_PROGRAM wiring, the
model_fn/input_fn/predict_fn/output_fn contract as the toolkit calls it, and the status codes errors really get.
One endpoint serves the whole module (starting one costs ~10 s).
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import re

import pytest
from PIL import Image

from handlers.proxy_core import map_client_error
from tests.container.conftest import endpoint, management
from tests.imagegen import CAT_LABELS, bomb_png, encode, photo, photo_bytes

pytestmark = [pytest.mark.container, pytest.mark.slow]

JSON = "application/json"


# What the DLC's entrypoint (deep-learning-containers' torchserve-entrypoint.py) sets before the toolkit starts:
# SAGEMAKER_MODEL_SERVER_WORKERS, the deployed 1 overwritten with multiprocessing.cpu_count(). At least 2 here, so that
# one worker is TS_DEFAULT_WORKERS_PER_MODEL's doing: with the launcher's own 1 it was one worker without it too.
DLC_ENTRYPOINT_ENV = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(max(2, multiprocessing.cpu_count()))}


@pytest.fixture(scope="module")
def served(artifact):
    with endpoint(artifact, env=DLC_ENTRYPOINT_ENV) as ep:
        ep.wait_ready()
        yield ep


def predict(ep, body: bytes, content_type: str, accept: str = JSON) -> dict:
    status, headers, raw = ep.invoke(body, content_type, accept)
    assert status == 200, raw[:300]
    assert headers["content-type"] == JSON
    return json.loads(raw)


def top_label(result: dict) -> str:
    return result["predictions"][0]["label"]


def test_cat_photo_is_a_cat_class(served):
    assert top_label(predict(served, photo_bytes("chelsea.jpg"), "image/jpeg")) in CAT_LABELS


def test_espresso_photo_is_espresso(served):
    assert top_label(predict(served, photo_bytes("coffee.jpg"), "image/jpeg")) == "espresso"


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/webp", "WEBP"), ("application/x-image", "JPEG")],
)
def test_each_image_content_type(served, content_type, fmt):
    result = predict(served, encode(photo("chelsea.jpg"), fmt), content_type)
    assert top_label(result) in CAT_LABELS
    assert len(result["predictions"]) == 5


@pytest.mark.parametrize("as_data_url", [False, True], ids=["base64", "data-url"])
def test_json_body_with_base64_image(served, as_data_url):
    b64 = base64.b64encode(photo_bytes("chelsea.jpg")).decode()
    image = f"data:image/jpeg;base64,{b64}" if as_data_url else b64
    result = predict(served, json.dumps({"image": image, "top_k": 2}).encode(), JSON)
    assert top_label(result) in CAT_LABELS
    assert len(result["predictions"]) == 2


def test_accept_top_k_parameter_is_honoured(served):
    # The Lambda proxy sends exactly this Accept; the toolkit must pass the parameter through to output_fn.
    result = predict(served, photo_bytes("chelsea.jpg"), "image/jpeg", accept="application/json;top_k=3")
    assert len(result["predictions"]) == 3
    probs = [p["prob"] for p in result["predictions"]]
    assert probs == sorted(probs, reverse=True)


def test_success_body_names_model_weights_and_backend(served):
    result = predict(served, photo_bytes("chelsea.jpg"), "image/jpeg")
    assert result["model"] == "mobilenet_v2"
    assert result["weights"]
    # On this Python 3.11 venv the artifact's cp312 onnxruntime is skipped and the venv's own one serves.
    assert result["backend"].startswith("onnxruntime-")


def test_missing_accept_gets_json(served):
    # The toolkit substitutes its default accept (application/json) for a missing or */* Accept.
    status, headers, raw = served.invoke(photo_bytes("chelsea.jpg"), "image/jpeg", accept="")
    assert status == 200
    assert headers["content-type"] == JSON
    assert top_label(json.loads(raw)) in CAT_LABELS


def error(ep, body: bytes, content_type: str, accept: str = JSON) -> tuple[int, list[str]]:
    status, _, raw = ep.invoke(body, content_type, accept)
    return status, raw.decode().splitlines()


def test_non_image_is_400_with_a_one_line_message_then_a_traceback(served):
    status, lines = error(served, b"this is not an image at all", "image/jpeg")
    assert status == 400
    assert lines[0] == "body is not a readable JPEG, PNG or WebP image"
    # The toolkit appends the whole traceback (paths included) after the message ...
    assert lines[1].startswith("Traceback (most recent call last)")
    assert any("inference.py" in line for line in lines[2:])


def test_proxy_keeps_only_the_first_line_of_a_real_container_error(served):
    # ... and what keeps it from users is the proxy's "first line only" rule, applied to this real body.
    _, _, raw = served.invoke(b"this is not an image at all", "image/jpeg")
    mapped = map_client_error("ModelError", 424, {"OriginalStatusCode": 400, "OriginalMessage": raw.decode()})
    assert mapped.status == 400
    assert mapped.message == "body is not a readable JPEG, PNG or WebP image"
    assert "Traceback" not in json.dumps(mapped.body())


def test_truncated_jpeg_is_400(served):
    status, lines = error(served, photo_bytes("chelsea.jpg")[:2000], "image/jpeg")
    assert status == 400
    assert "truncated or corrupt" in lines[0] or "not a readable" in lines[0]


def test_bad_json_is_400(served):
    status, lines = error(served, b'{"image": ', JSON)
    assert status == 400
    assert lines[0] == "request body is not valid JSON"


def test_unsupported_content_type_is_415(served):
    status, lines = error(served, b"hello", "text/plain")
    assert status == 415
    assert lines[0].startswith("content type 'text/plain' is not one of")


def test_unsupported_accept_is_406(served):
    status, lines = error(served, photo_bytes("chelsea.jpg"), "image/jpeg", accept="text/html")
    assert status == 406
    assert "ask for application/json" in lines[0]


@pytest.mark.parametrize(
    ("body", "content_type", "accept"),
    [
        (json.dumps({"image": "aGVsbG8=", "top_k": "\u4e94"}, ensure_ascii=False).encode(), JSON, JSON),
        (photo_bytes("coffee.jpg"), "image/jpeg", "application/json;top_k=\u0663"),
    ],
    ids=["json-top_k", "accept-top_k"],
)
def test_an_error_quoting_non_ascii_input_is_answered_and_the_worker_lives_on(served, body, content_type, accept):
    # TorchServe's worker sends the reason phrase prefixed with its length in characters, then its UTF-8 bytes: a
    # non-ASCII phrase desynchronised the frontend: the request either hung until the response timeout (here the
    # client's 15 s: status 0) or got 500 "Worker died.", and the worker was killed and reloaded the model.
    headers = {"Content-Type": content_type, "Accept": accept.encode().decode("latin-1")}
    status, _, raw = served._request("POST", "/invocations", body, headers, timeout=15)
    assert status == 400, raw[:300]
    assert "top_k" in raw.decode().splitlines()[0]
    status, _, _ = served._request(
        "POST", "/invocations", photo_bytes("coffee.jpg"), {"Content-Type": "image/jpeg", "Accept": JSON}, timeout=15
    )
    assert status == 200


def test_decompression_bomb_is_413(served):
    status, lines = error(served, bomb_png(), "image/png")
    assert status == 413
    assert "too many pixels" in lines[0] or "the limit is" in lines[0]


def test_gif_is_415_even_when_declared_as_an_image(served):
    gif = encode(Image.new("RGB", (32, 32), "red"), "GIF")
    status, lines = error(served, gif, "image/jpeg")
    assert status == 415
    assert lines[0].startswith("GIF images are not accepted")


def test_torchserve_runs_one_worker_with_sagemakers_60_s_timeout(served):
    # The toolkit means default_response_timeout=60 but its properties file eats that line (no newline before it),
    # and TorchServe kept 120 s; the DLC's entrypoint sets SAGEMAKER_MODEL_SERVER_WORKERS to the CPU count (as the
    # module's endpoint has it), which TorchServe would run as that many workers: TORCHSERVE_ENV holds both.
    status, raw = management(served, "GET", "/models/model")
    assert status == 200, raw[:300]
    (model,) = json.loads(raw)
    assert model["responseTimeout"] == 60
    assert model["minWorkers"] == model["maxWorkers"] == 1


def test_ping_is_healthy(served):
    status, _, raw = served._request("GET", "/ping")
    assert status == 200
    assert json.loads(raw)["status"] == "Healthy"


def test_memory_counts_the_whole_serving_stack(served):
    # The worker that imported torch and loaded the model is one process of several (launcher, JVM, worker):
    # the group's total must exceed the largest single member's own pages.
    total = served.memory_mb()
    members = served.processes()
    assert len(members) >= 3
    largest_uss = max(p.memory_full_info().uss for p in members) / 2**20
    assert total > largest_uss > 50


def test_a_json_content_type_with_parameters_reaches_input_fn_as_bytes(served):
    # The toolkit decodes only the exact value "application/json" to str; with a charset the body arrives as bytes
    # and json.loads detects UTF-16 itself, and undecodable bytes are input_fn's 400, not the decoder's 500. The
    # in-process runtime (local/runtime.py) must hand over the same thing.
    b64 = base64.b64encode(photo_bytes("chelsea.jpg")).decode()
    utf16 = json.dumps({"image": b64, "top_k": 2}).encode("utf-16")
    assert len(predict(served, utf16, "application/json; charset=utf-16")["predictions"]) == 2
    status, _, raw = served.invoke(b'{"image": "\xff"}', "application/json; charset=utf-8")
    assert status == 400, raw[:300]
    assert raw.startswith(b"request body is not valid JSON\n")


def test_a_body_labelled_form_data_that_is_not_is_torchserves_own_500_before_the_toolkit_runs(served):
    # TorchServe's frontend parses an application/x-www-form-urlencoded body itself (pytorch/serve's
    # InferenceRequestHandler.parseRequest, Netty's form decoder; the type in any case, parameters ignored) before
    # the toolkit or input_fn sees it. A value ("=" onwards) with a "%" not followed by two hex digits, as in most
    # images, is its own 500: a JSON body (quoting the request's bytes, for an image), no message of ours and no
    # traceback. Form data it can parse reaches input_fn, which refuses the type.
    for content_type in ("application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=utf-8"):
        for body in (photo_bytes("coffee.jpg"), b"a=%zz"):
            status, _, raw = served.invoke(body, content_type)
            assert status == 500, raw[:300]
            answer = json.loads(raw)
            assert (answer["code"], answer["type"]) == (500, "ErrorDataDecoderException"), answer
    status, lines = error(served, b"a=b", "application/x-www-form-urlencoded")
    assert status == 415
    assert lines[0].startswith("content type 'application/x-www-form-urlencoded' is not one of")


def test_model_fns_line_naming_the_backend_reaches_the_containers_output(served):
    # What CloudWatch gets is the container's output, where TorchServe copies each line the worker prints as
    # MODEL_LOG: model_fn's one line names the model, the weights, the backend and its threads.
    (line,) = [line for line in served._log_lines() if "model_fn: serving" in line]
    assert re.search(
        r"MODEL_LOG - model_fn: serving mobilenet_v2 \(.+\) with onnxruntime-[\d.]+ on \d+ threads in \d+ ms$", line
    ), line
