"""The runtime tier's own limits, without a model: what SageMaker answers when an invocation runs too long."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from handlers import proxy_core
from local import runtime as runtime_module
from local.runtime import ContainerResponse, ContainerUnavailable, Faults, SageMakerRuntime, model_error
from tests.ci import skip_or_fail
from tests.conftest import ROOT, gzip_with_a_bad_block, names_of, tar_gz_of
from tests.waiting import HANG_GUARD_S


def os_with(**names):
    """The os module as local.runtime looks it up, with some names replaced: patching os itself reaches every thread
    of the process (a server or sandbox of another fixture killing its child would get the fake too)."""
    return SimpleNamespace(**{**{name: getattr(os, name) for name in dir(os) if not name.startswith("__")}, **names})


def tarfile_opening(cls, *without: str):
    """The tarfile module as local.runtime looks it up, its archives opened as `cls` (a TarFile with a method
    replaced) and the names `without` gone: patching TarFile itself reaches every thread of the process too."""
    import tarfile

    names = {name: getattr(tarfile, name) for name in dir(tarfile) if not name.startswith("__") and name not in without}
    return SimpleNamespace(**{**names, "open": cls.open})


@pytest.fixture
def fresh_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What an in-process container changes, put back after the test: sys.path (it puts the artifact's code/ first,
    as the toolkit does), the script's module (each container imports its own afresh), and where the model is
    unpacked (tmp_path, for the test to look in: local.runtime's own tempfile name points there, as tempfile.tempdir
    set for the process would move every other thread's temporary files too)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mobilenet_inference", raising=False)
    temp = SimpleNamespace(mkdtemp=functools.partial(tempfile.mkdtemp, dir=tmp_path), gettempdir=lambda: str(tmp_path))
    monkeypatch.setattr(runtime_module, "tempfile", temp)
    return tmp_path


class StuckContainer:
    """Answers only once the test releases it: whatever the machine's load, it outlasts the invocation limit
    (a container that merely slept longer than the limit could answer first on a starved event loop)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        self.release.wait(timeout=60)
        return ContainerResponse(200, "application/json", b"{}")

    def close(self) -> None:
        pass


def test_an_invocation_past_the_limit_is_sagemakers_status_0_model_error_and_a_504_at_the_proxy() -> None:
    container = StuckContainer()
    runtime = SageMakerRuntime(container, "e", max_concurrency=1, invocation_timeout_s=0.05)
    try:
        answer = asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "application/json"))
    finally:
        container.release.set()
        runtime.close()
    body = json.loads(answer.body)
    assert (answer.status, answer.headers["x-amzn-errortype"]) == (424, "ModelError")
    assert body["OriginalStatusCode"] == 0
    assert body["message"].startswith('Received server error (0) from primary with message "Your invocation timed out')
    assert runtime.in_flight == 0  # the slot is released although the container is still busy

    # What botocore hands the proxy for that answer: a timeout the client may retry, not a broken model.
    parsed = {"Error": {"Code": "ModelError", "Message": body["message"]}, **body}
    error = proxy_core.map_client_error("ModelError", 424, parsed)
    assert (error.status, error.code) == (504, "endpoint_timeout")


class FixedContainer:
    def __init__(self, reply: ContainerResponse | Exception | None = None) -> None:
        self.reply = reply or ContainerResponse(200, "application/json", b"{}")

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    def close(self) -> None:
        pass


def invoke(runtime: SageMakerRuntime, body: bytes = b"x", name: str = "e", headers: dict[str, str] | None = None):
    try:
        return asyncio.run(runtime.invoke(name, body, "image/jpeg", "application/json", headers))
    finally:
        runtime.close()


def test_error_statuses_are_the_ones_botocores_model_gives_their_codes() -> None:
    import botocore.session

    operation = botocore.session.get_session().get_service_model("sagemaker-runtime").operation_model("InvokeEndpoint")
    modelled = {shape.name: shape.metadata["error"]["httpStatusCode"] for shape in operation.error_shapes}
    answers = [
        invoke(SageMakerRuntime(FixedContainer(), "e", 1), name="other"),  # unknown endpoint
        invoke(SageMakerRuntime(FixedContainer(), "e", 1, max_payload_bytes=1), b"xx"),  # oversize
        invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(down=True))),
        invoke(SageMakerRuntime(FixedContainer(ContainerUnavailable("replacing")), "e", 1)),
        invoke(SageMakerRuntime(FixedContainer(ContainerResponse(400, "text/plain", b"bad")), "e", 1)),
    ]
    codes = [answer.headers["x-amzn-errortype"] for answer in answers]
    assert codes == ["ValidationError", "ValidationError", "ServiceUnavailable", "ModelNotReadyException", "ModelError"]
    assert [answer.status for answer in answers] == [modelled[code] for code in codes]
    # Not in botocore's model: SageMaker documents serverless throttling as ThrottlingException over HTTP 400.
    throttled = invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(throttle=1)))
    assert (throttled.status, throttled.headers["x-amzn-errortype"]) == (400, "ThrottlingException")


def test_every_error_answer_is_in_the_json_protocol_botocores_model_names() -> None:
    # SageMaker Runtime's model says rest-json, JSON version 1.1: each error answer has that media type, the error
    # type in x-amzn-ErrorType and its message in a JSON object, whichever check or fault gave it.
    import botocore.session

    metadata = botocore.session.get_session().get_service_model("sagemaker-runtime").metadata
    answers = [
        invoke(SageMakerRuntime(FixedContainer(), "e", 1), name="other"),
        invoke(SageMakerRuntime(FixedContainer(), "e", 1, max_payload_bytes=1), b"xx"),
        invoke(SageMakerRuntime(FixedContainer(), "e", 1), headers={"x-amzn-sagemaker-target-model": "m.tar.gz"}),
        invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(down=True))),
        invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(throttle=1))),
        invoke(SageMakerRuntime(FixedContainer(ContainerUnavailable("replacing")), "e", 1)),
        invoke(SageMakerRuntime(FixedContainer(ContainerResponse(400, "text/plain", b"bad")), "e", 1)),
    ]
    assert metadata["protocol"] == "rest-json"
    for answer in answers:
        assert answer.headers["content-type"] == f"application/x-amz-json-{metadata['jsonVersion']}"
        assert answer.headers["x-amzn-errortype"] and json.loads(answer.body)["message"]


def test_a_content_type_accept_or_custom_attributes_over_1024_characters_is_a_validation_error() -> None:
    import botocore.session

    members = botocore.session.get_session().get_service_model("sagemaker-runtime").operation_model("InvokeEndpoint")
    shapes = members.input_shape.members
    assert [shapes[m].metadata["max"] for m in ("ContentType", "Accept", "CustomAttributes")] == [1024, 1024, 1024]
    assert shapes["CustomAttributes"].serialization["name"] == "X-Amzn-SageMaker-Custom-Attributes"
    for member, content_type, accept, attributes in (
        ("contentType", "image/jpeg" + " " * 1015, "application/json", "a"),
        ("accept", "image/jpeg", "*/*" + " " * 1022, "a"),
        ("customAttributes", "image/jpeg", "application/json", "a" * 1025),
    ):
        headers = {"x-amzn-sagemaker-custom-attributes": attributes}
        runtime = SageMakerRuntime(FixedContainer(), "e", 1)
        try:
            answer = asyncio.run(runtime.invoke("e", b"x", content_type, accept, headers))
        finally:
            runtime.close()
        assert (answer.status, answer.headers["x-amzn-errortype"]) == (400, "ValidationError")
        # AWS's validation words, naming the member that is too long and its limit.
        assert json.loads(answer.body)["message"] == (
            f"1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length "
            "less than or equal to 1024"
        )
        runtime = SageMakerRuntime(FixedContainer(), "e", 1)
        try:  # exactly 1024 is served
            exactly = {"x-amzn-sagemaker-custom-attributes": attributes[:1024]}
            assert asyncio.run(runtime.invoke("e", b"x", content_type[:1024], accept[:1024], exactly)).status == 200
        finally:
            runtime.close()


@pytest.mark.parametrize(
    ("name", "errors"),
    [
        ("a/b", ["pattern"]),  # boto3 sends it as a%2Fb; botocore does not check the pattern
        ("-e", ["pattern"]),
        ("e-", ["pattern"]),
        ("e_1", ["pattern"]),
        ("", ["pattern"]),
        ("e" * 64, ["length"]),
        ("e/" * 40, ["pattern", "length"]),
    ],
)
def test_an_endpoint_name_outside_its_model_is_a_validation_error_before_any_container(name, errors) -> None:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker-runtime").shape_for("EndpointName")
    assert shape.metadata == {"max": 63, "pattern": "^[a-zA-Z0-9](-*[a-zA-Z0-9])*"}
    answer = invoke(SageMakerRuntime(FixedContainer(), "e", 1), name=name)
    assert (answer.status, answer.headers["x-amzn-errortype"]) == (400, "ValidationError")
    wording = {
        "pattern": "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
        "length": "Member must have length less than or equal to 63",
    }
    count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''}"
    # AWS's validation words, one per broken constraint, without the value (a 100 KB name would come back whole).
    assert json.loads(answer.body)["message"] == f"{count} detected: " + "; ".join(
        f"Value at 'endpointName' failed to satisfy constraint: {wording[e]}" for e in errors
    )


def test_every_member_is_validated_before_the_endpoint_is_looked_up_and_counted_in_one_message() -> None:
    """AWS validates the whole input first: an unknown endpoint with a ContentType too long is told the validation
    error, not "not found", and a bad name with a bad header gets both, counted."""

    def answer_to(name: str, content_type: str, accept: str, headers: dict[str, str] | None = None):
        runtime = SageMakerRuntime(FixedContainer(), "e", 1)
        try:
            return asyncio.run(runtime.invoke(name, b"x", content_type, accept, headers))
        finally:
            runtime.close()

    answer = answer_to("other", "image/jpeg" + " " * 1015, "")
    assert json.loads(answer.body)["message"] == (
        "1 validation error detected: Value at 'contentType' failed to satisfy constraint: Member must have length "
        "less than or equal to 1024"
    )
    headers = {"x-amzn-sagemaker-custom-attributes": "café"}
    answer = answer_to("a/b", "image/jpeg", "é/*", headers)
    assert (answer.status, answer.headers["x-amzn-errortype"]) == (400, "ValidationError")
    assert json.loads(answer.body)["message"] == (
        "3 validation errors detected: "
        "Value at 'endpointName' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9](-*[a-zA-Z0-9])*; "
        "Value at 'accept' failed to satisfy constraint: Member must satisfy regular expression pattern: \\p{ASCII}*; "
        "Value at 'customAttributes' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "\\p{ASCII}*"
    )


def test_an_endpoint_name_of_63_characters_in_its_pattern_is_looked_up() -> None:
    for name in ("e" * 63, "a--b-9"):
        answer = invoke(SageMakerRuntime(FixedContainer(), "e", 1), name=name)
        assert json.loads(answer.body)["message"] == f"Endpoint {name} of account {runtime_module.ACCOUNT} not found."


def test_a_payload_of_exactly_the_limit_is_served() -> None:
    # The proxy lets through images of exactly MAX_IMAGE_BYTES (4 MiB); the endpoint must take them.
    assert invoke(SageMakerRuntime(FixedContainer(), "e", 1, max_payload_bytes=4), b"four").status == 200


def test_by_default_the_endpoint_takes_every_image_the_proxy_lets_through_and_no_more() -> None:
    # Both name SageMaker Serverless's 4 MB cap: an image the proxy passes must never meet a ValidationError here.
    limit = proxy_core.SAGEMAKER_SERVERLESS_MAX_BYTES
    assert invoke(SageMakerRuntime(FixedContainer(), "e", 1), b"x" * limit).status == 200
    refused = invoke(SageMakerRuntime(FixedContainer(), "e", 1), b"x" * (limit + 1))
    assert (refused.status, refused.headers["x-amzn-errortype"]) == (400, "ValidationError")


def test_a_model_error_names_a_client_or_server_error_by_the_containers_status() -> None:
    for status, kind in ((400, "client"), (499, "client"), (500, "server"), (503, "server")):
        answer = model_error("e", "eu-west-1", status, b"first line\nTraceback ...")
        body = json.loads(answer.body)
        assert body["message"].startswith(f'Received {kind} error ({status}) from primary with message "first line')
        # The whole of it, traceback included, as SageMaker quotes it: the proxy trims it to the first line, not AWS.
        assert 'with message "first line\nTraceback ...". See https://eu-west-1.' in body["message"]
        assert body["ErrorCode"] == f"{kind.upper()}_ERROR_FROM_MODEL" and body["OriginalStatusCode"] == status
        assert body["LogStreamArn"].startswith("arn:aws:logs:eu-west-1:")


@pytest.mark.parametrize(
    ("region", "partition", "console"),
    [
        ("eu-west-1", "aws", "console.aws.amazon.com"),
        ("cn-north-1", "aws-cn", "console.amazonaws.cn"),
        ("us-gov-west-1", "aws-us-gov", "console.amazonaws-us-gov.com"),
        ("eusc-de-east-1", "aws-eusc", "console.amazonaws-eusc.eu"),
        ("us-iso-east-1", "aws-iso", "console.aws.amazon.com"),  # no public console: the commercial host's link
    ],
)
def test_a_model_errors_log_arn_and_console_link_are_in_its_regions_partition(region, partition, console) -> None:
    # As the local function context's ARN is: one stack's local lines name one partition. The message's link said
    # console.aws.amazon.com in China and GovCloud too, a console where no account of theirs can sign in.
    body = json.loads(model_error("e", region, 500, b"boom").body)
    assert body["LogStreamArn"] == f"arn:{partition}:logs:{region}:000000000000:log-group:/aws/sagemaker/Endpoints/e"
    link = f"https://{region}.{console}/cloudwatch/home?region={region}#logEventViewer:group=/aws/sagemaker/Endpoints/e"
    assert f"See {link} in account 000000000000 for more information." in body["message"]


def test_a_model_errors_message_keeps_its_utf8_text() -> None:
    # The toolkit writes its error body as UTF-8: a model naming a label or a file in it must read the same in
    # OriginalMessage (and a byte that is not UTF-8 is replaced, not an error).
    body = json.loads(model_error("e", "eu-west-1", 400, "café is not a label\n".encode() + b"\xff").body)
    assert body["OriginalMessage"] == "café is not a label\n\ufffd"
    assert 'with message "café is not a label' in body["message"]


def test_a_model_errors_original_message_is_the_containers_whole_body() -> None:
    # A toolkit error body is the message and then the whole traceback, often past a kilobyte: SageMaker hands it
    # on as it came (the proxy keeps only its first line, not AWS).
    frame = '  File "/opt/ml/model/code/inference.py", line 1, in predict_fn\n    raise ValueError(message)\n'
    original = "bad image\nTraceback (most recent call last):\n" + frame * 50
    assert len(original) > 4096
    body = json.loads(model_error("e", "eu-west-1", 400, original.encode()).body)
    assert body["OriginalMessage"] == original
    assert f'with message "{original}". See https://' in body["message"]


def test_a_containers_error_is_logged_in_the_endpoints_own_region() -> None:
    # The ModelError's log group and console link are the endpoint's region's, not us-east-1's (the default).
    failing = FixedContainer(ContainerResponse(500, "text/plain", b"boom"))
    body = json.loads(invoke(SageMakerRuntime(failing, "e", 1, region="eu-west-1")).body)
    assert body["LogStreamArn"].startswith("arn:aws:logs:eu-west-1:") and "?region=eu-west-1#" in body["message"]


def test_an_injected_model_failure_is_a_model_error_of_its_status_and_first_line() -> None:
    # As the toolkit's error body: the fault's message, then a traceback. Without a message of its own, the
    # answer says it was injected, so a load test's failures are not taken for the model's.
    faults = Faults(model_status=503, model_message="GPU fell off the bus")
    injected = invoke(SageMakerRuntime(FixedContainer(ValueError("the model ran")), "e", 1, faults=faults))
    body = json.loads(injected.body)
    assert (injected.status, body["OriginalStatusCode"]) == (424, 503)
    assert body["OriginalMessage"].startswith("GPU fell off the bus\nTraceback (most recent call last):")
    default = json.loads(invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(model_status=400))).body)
    assert default["OriginalMessage"].startswith("injected model failure\nTraceback")


def test_the_endpoint_name_must_match_in_case() -> None:
    # SageMaker takes an endpoint's name in any case at CreateEndpoint, but InvokeEndpoint must match the case kept:
    # a caller that gets an answer here under another case meets "not found" once deployed.
    answer = invoke(SageMakerRuntime(FixedContainer(), "mobilenet-local", 1), name="MobileNet-Local")
    assert (answer.status, answer.headers["x-amzn-errortype"]) == (400, "ValidationError")
    assert json.loads(answer.body)["message"] == "Endpoint MobileNet-Local of account 000000000000 not found."


def test_a_container_being_replaced_names_the_endpoint_that_is_not_ready() -> None:
    answer = invoke(SageMakerRuntime(FixedContainer(ContainerUnavailable("replacing")), "e", 1))
    assert json.loads(answer.body)["message"] == "Endpoint e is not ready yet. Try again later."


def test_the_request_is_checked_before_any_injected_fault_and_down_comes_before_throttling() -> None:
    # An unknown endpoint, a target it does not have or an oversize body is the caller's error whatever state the
    # endpoint is in. An endpoint that is down throttles nothing: the throttled count waits until it is back.
    faults = Faults(down=True, throttle=1)
    runtime = SageMakerRuntime(FixedContainer(), "e", 1, max_payload_bytes=1, faults=faults)
    target = {"x-amzn-sagemaker-target-model": "model.tar.gz"}

    async def answers(down: bool) -> list:
        faults.down = down
        calls = [("other", b"x", target), ("e", b"x", target), ("e", b"xx", {}), ("e", b"x", {})]
        return [await runtime.invoke(name, body, "image/jpeg", "", headers) for name, body, headers in calls]

    try:
        down = asyncio.run(answers(True))
        assert json.loads(down[0].body)["message"] == "Endpoint other of account 000000000000 not found."
        assert "not a multi-model endpoint" in json.loads(down[1].body)["message"]
        assert "has oversize body" in json.loads(down[2].body)["message"]
        assert [(a.status, a.headers["x-amzn-errortype"]) for a in down] == [
            *[(400, "ValidationError")] * 3,
            (503, "ServiceUnavailable"),
        ]
        assert faults.throttle == 1
        back = asyncio.run(answers(False))
        assert (back[3].status, back[3].headers["x-amzn-errortype"]) == (400, "ThrottlingException")
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("header", "says", "fields"),
    [
        (
            "x-amzn-sagemaker-target-model",
            "Endpoint e is not a multi-model endpoint and does not support target model header.",
            {"ErrorCode": "TARGET_MODEL_HEADER_NOT_SUPPORTED"},  # as in aws/amazon-sagemaker-examples#1216
        ),
        (
            "x-amzn-sagemaker-inference-component",
            "Inference Component Name header is not allowed for endpoints to which you dont plan to deploy inference "
            "components. Please remove the Inference Component Name header and try again.",
            {},
        ),
        (
            "x-amzn-sagemaker-target-container-hostname",
            "Endpoint e is not configured for direct invocation: it takes no TargetContainerHostname.",
            {},
        ),
    ],
)
def test_each_target_this_endpoint_does_not_have_is_a_validation_error(header, says, fields) -> None:
    # One model, one container, no inference components: a call naming any of them fails here as it would deployed.
    answer = invoke(SageMakerRuntime(FixedContainer(), "e", 1), headers={header: "x"})
    assert (answer.status, answer.headers["x-amzn-errortype"]) == (400, "ValidationError")
    assert json.loads(answer.body) == {"message": says, **fields}
    # The variant it has, by name, is no target it lacks.
    variant = {"x-amzn-sagemaker-target-variant": "AllTraffic"}
    assert invoke(SageMakerRuntime(FixedContainer(), "e", 1), headers=variant).status == 200


class MeetingContainer(FixedContainer):
    """Answers once `parties` invocations are inside it at the same time. The barrier's timeout is a hang guard,
    not a measure: invocations run one at a time never meet, and break it."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=30)

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        self.barrier.wait()
        return super().invoke(body, content_type, accept)


def test_max_concurrency_invocations_run_in_the_model_at_once() -> None:
    # SageMaker admits MaxConcurrency invocations and runs them together: admitted ones queued behind one model
    # thread would be answered one after another, each within the limit the load test measures against.
    runtime = SageMakerRuntime(MeetingContainer(3), "e", max_concurrency=3)

    async def three():
        return await asyncio.gather(*(runtime.invoke("e", b"x", "image/jpeg", "") for _ in range(3)))

    try:
        assert [answer.status for answer in asyncio.run(three())] == [200, 200, 200]
    finally:
        runtime.close()


def test_injected_throttling_lasts_for_the_number_of_invocations_asked() -> None:
    runtime = SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(throttle=2))

    async def three():
        return [(await runtime.invoke("e", b"x", "image/jpeg", "")).status for _ in range(3)]

    try:
        assert asyncio.run(three()) == [400, 400, 200]
    finally:
        runtime.close()


STUB_INFERENCE = """
try:
    from sagemaker_inference.errors import GenericInferenceToolkitError as InferenceError
except ImportError:
    class InferenceError(Exception):
        def __init__(self, status_code, message):
            self.status_code, self.message = status_code, message

class StatusOfItsOwn(Exception):  # a web framework's exception: a status, but no toolkit error
    status_code, message = 404, "not found"

def model_fn(model_dir):
    return "stub"

def input_fn(data, content_type):
    if content_type == "image/x-refused":
        raise InferenceError(415, "not this type")
    if content_type == "image/x-own-status":
        raise StatusOfItsOwn("its own status")
    if content_type == "image/x-label":
        return "café"
    if content_type == "image/x-crash":
        raise RuntimeError("stub crashed")
    if content_type == "image/x-silent":
        raise RuntimeError()
    return type(data).__name__

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    return f"{prediction} {accept}"  # no content type of its own: the toolkit answers in the accept type
"""


@pytest.mark.usefixtures("fresh_script")
def test_the_in_process_container_calls_the_script_as_the_toolkit_does(tmp_path) -> None:
    from local.runtime import InProcessContainer

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()})
    container = InProcessContainer(artifact)
    try:
        # UTF-8 types reach input_fn decoded, others as bytes; no Accept (or */*) is the toolkit's default, JSON.
        assert container.invoke(b"{}", "application/json", "") == ContainerResponse(
            200, "application/json", b"str application/json"
        )
        assert container.invoke(b"\xff", "image/jpeg", "*/*").body == b"bytes application/json"
        assert container.invoke(b"a,b", "text/csv", "text/csv") == ContainerResponse(200, "text/csv", b"str text/csv")
        # output_fn's text is sent as UTF-8, as TorchServe sends it.
        assert container.invoke(b"x", "image/x-label", "").body == "café application/json".encode()
        # Only those exact values: a parameter, other capitals or jsonlines leave the body bytes, as in TorchServe
        # (an invalid UTF-8 body with charset=utf-8 is input_fn's 400 there, not a UnicodeDecodeError's 500).
        for undecoded in ("application/json; charset=utf-8", "Application/JSON", "application/jsonlines", "text/plain"):
            assert container.invoke(b"\xff{}", undecoded, "").body == b"bytes application/json", undecoded
        refused = container.invoke(b"x", "image/x-refused", "")
        assert refused.status == 415 and refused.body.startswith(b"not this type\nTraceback (most recent call last)")
        crashed = container.invoke(b"x", "image/x-crash", "")
        assert crashed.status == 500 and crashed.body.startswith(b"stub crashed\nTraceback (most recent call last)")
        # An exception without a message: the toolkit's GenericInferenceToolkitError says "Invalid Request".
        silent = container.invoke(b"x", "image/x-silent", "")
        assert silent.status == 500 and silent.body.startswith(b"Invalid Request\nTraceback (most recent call last)")
        # Only a toolkit error keeps its status: any other exception is a 500, whatever attributes it has.
        own = container.invoke(b"x", "image/x-own-status", "")
        assert own.status == 500 and own.body.startswith(b"its own status\nTraceback (most recent call last)")
        # Exactly those values are decoded as the toolkit decodes them: a body that is not UTF-8 is its 500, not
        # replaced characters that reach input_fn as if the client had sent them.
        undecodable = container.invoke(b"\xff{}", "application/json", "")
        assert undecodable.status == 500 and undecodable.body.startswith(b"'utf-8' codec can't decode byte 0xff")
    finally:
        container.close()


@pytest.mark.parametrize(
    ("body", "said"),
    [  # what TorchServe 0.12's frontend answered each (its JSON 500's message)
        (b"a=%zz", "Invalid hex byte at index '0' in string: '%zz'"),
        (b"a=b%", "Invalid hex byte at index '1' in string: 'b%'"),
        (b"a=%zz&c=%", "Invalid hex byte at index '0' in string: '%zz'"),
        (b"%zz=b", "Bad string: '%zz'"),
        (b"=&&", "java.lang.IllegalArgumentException: empty name"),
        (b"a=b", None),
        (b"", None),
        (b"a=%e9&b", None),
        # What Netty's decoder in TorchServe 0.12's jar said of each (HttpPostRequestDecoder run on the body).
        (b"a=%ez", "Invalid hex byte at index '0' in string: '%ez'"),  # one hex digit is not an escape
        (b"a=%E9", None),  # upper-case hex is
        (b"a=b&c=%zz", "Invalid hex byte at index '0' in string: '%zz'"),  # any pair, not the first alone
    ],
)
def test_form_decode_error_says_what_torchserves_form_decoder_said(body, said) -> None:
    from local.runtime import form_decode_error

    assert form_decode_error(body) == said


@pytest.mark.parametrize(
    ("body", "said"),
    [  # what Netty's HttpPostRequestDecoder, from TorchServe 0.12's model-server.jar, said of each body
        (b"%zz", None),
        (b"a=b&%zz", None),
        (b"a=b\n%zz", None),
        (b"a=b\rc", "Bad end of line"),
        (b"a=b&&", "java.lang.IllegalArgumentException: empty name"),
        (b"a=\xc3\xa9%zz", "Invalid hex byte at index '2' in string: '\u00e9%zz'"),
    ],
)
def test_form_decode_error_follows_nettys_form_decoder_past_the_first_escape(body, said) -> None:
    from local.runtime import form_decode_error

    assert form_decode_error(body) == said


@pytest.mark.usefixtures("fresh_script")
def test_the_in_process_container_answers_a_body_labelled_form_data_that_is_not_as_torchserve_does(tmp_path) -> None:
    # TorchServe's frontend decodes an application/x-www-form-urlencoded body itself, the type in any case and its
    # parameters ignored, before the toolkit runs (pytorch/serve's InferenceRequestHandler.parseRequest): a value
    # with a "%" not followed by two hex digits, as in most images labelled so, is its own 500, and input_fn never
    # sees the body. The in-process container served it to the script as bytes.
    from local.runtime import InProcessContainer

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()})
    container = InProcessContainer(artifact)
    try:
        for content_type in ("application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=utf-8"):
            answer = container.invoke(b"a=%zz", content_type, "")
            assert answer.status == 500, (content_type, answer)
            assert b"bytes" not in answer.body, content_type  # the stub's input_fn did not run
    finally:
        container.close()


@pytest.mark.usefixtures("fresh_script")
def test_a_media_type_with_a_space_before_its_parameters_is_no_form_to_torchserve(tmp_path) -> None:
    from local.runtime import InProcessContainer

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()})
    container = InProcessContainer(artifact)
    try:
        answer = container.invoke(b"a=%zz", "application/x-www-form-urlencoded ; charset=utf-8", "")
        assert b"ErrorDataDecoderException" not in answer.body, answer
    finally:
        container.close()


@pytest.mark.usefixtures("fresh_script")
def test_the_in_process_container_loads_the_model_once_not_per_invocation(tmp_path) -> None:
    # As the toolkit: model_fn at start, then every invocation predicts with that model (a load per call would
    # read the weights again each time, and answer from a fresh model).
    from local.runtime import InProcessContainer

    script = (
        "LOADS = []\n"
        "def model_fn(model_dir):\n    LOADS.append(model_dir)\n    return len(LOADS)\n"
        "def input_fn(data, content_type):\n    return data\n"
        "def predict_fn(data, model):\n    return model\n"
        "def output_fn(prediction, accept):\n    return f'loads={prediction}'\n"
    )
    container = InProcessContainer(tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": script.encode()}))
    try:
        assert [container.invoke(b"x", "image/jpeg", "").body for _ in range(3)] == [b"loads=1"] * 3
    finally:
        container.close()


def test_torchserves_answer_keeps_its_content_type_and_no_accept_asks_it_for_json(monkeypatch) -> None:
    """TorchServe's header names come in its own case, and the answer's type is kept whatever it is; an invocation
    without Accept asks the toolkit for its default, JSON, as the in-process container answers it."""
    from local import torchserve
    from local.runtime import TorchServeContainer

    asked: list[str] = []
    replies = [{"Content-Type": "text/csv"}, {}]

    class Endpoint:
        def __init__(self, artifact, startup_timeout) -> None:
            pass

        def start(self) -> Endpoint:
            return self

        def invoke(self, body: bytes, content_type: str, accept: str):
            asked.append(accept)
            reply = replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return 200, reply, b"{}"

        def stop(self) -> None:
            pass

    monkeypatch.setattr(torchserve, "ManagedEndpoint", Endpoint)
    container = TorchServeContainer(Path("model.tar.gz"))
    replies.insert(0, RuntimeError("a bug of ours"))  # only TorchServe being down is "not ready": this is no such
    with pytest.raises(RuntimeError, match="a bug of ours") as raised:
        container.invoke(b"x", "image/jpeg", "")
    assert not isinstance(raised.value, ContainerUnavailable)
    asked.clear()
    assert container.invoke(b"x", "image/jpeg", "") == ContainerResponse(200, "text/csv", b"{}")
    assert container.invoke(b"x", "image/jpeg", "text/csv").content_type == "application/json"  # none given
    assert asked == ["application/json", "text/csv"]


def test_torchserve_that_cannot_serve_the_artifact_is_a_model_start_error_naming_it(monkeypatch) -> None:
    # `make demo RUNTIME=torchserve` stops in one line (local.__main__ catches ModelStartError) when TorchServe does
    # not come up, not with a traceback of whatever the launcher raised.
    from local import torchserve
    from local.runtime import ModelStartError, TorchServeContainer

    class Endpoint:
        def __init__(self, artifact, startup_timeout) -> None:
            pass

        def start(self) -> None:
            raise RuntimeError("java 17 or newer is needed")

    monkeypatch.setattr(torchserve, "ManagedEndpoint", Endpoint)
    with pytest.raises(ModelStartError) as refused:
        TorchServeContainer(Path("model.tar.gz"))
    assert str(refused.value) == "TorchServe could not serve model.tar.gz: java 17 or newer is needed"


@pytest.mark.parametrize("content", [b"", b"<html>Not Found</html>", b"version https://git-lfs.github.com/spec/v1\n"])
def test_a_file_that_is_no_archive_is_refused_in_one_line(tmp_path, content) -> None:
    from local.runtime import ModelStartError, extract_artifact

    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(content)
    with pytest.raises(ModelStartError) as refused:
        extract_artifact(artifact, tmp_path / "unpacked")
    # The stack prints it as its one line of error: tarfile's own was every method it tried ("- method gz: ...").
    expected = f"cannot unpack the model artifact {artifact}: not a tar.gz archive ({len(content):,} bytes)"
    assert str(refused.value) == expected


@pytest.mark.usefixtures("fresh_script")
@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("import numpy_not_installed\n", "ModuleNotFoundError: No module named 'numpy_not_installed'"),
        ("def model_fn(model_dir)\n    return None\n", "SyntaxError: "),
        ("raise RuntimeError('no GPU here')\n", "RuntimeError: no GPU here"),
        ("raise RuntimeError('no GPU here\\nsee the log')\n", "RuntimeError: no GPU here"),  # its first line only
    ],
)
def test_an_inference_script_that_cannot_be_imported_is_a_model_start_error(tmp_path, script, says):
    """An artifact whose code/inference.py fails at import (a missing package, a typo) stops the stack as a
    model_fn failure does, in one line naming the cause: it was an uncaught ImportError or SyntaxError, and
    `make demo` printed its traceback. The unpacked model goes too."""
    from local.runtime import InProcessContainer, ModelStartError

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": script.encode()})
    with pytest.raises(ModelStartError, match=r"cannot import code/inference\.py") as refused:
        InProcessContainer(artifact)
    assert says in str(refused.value) and "\n" not in str(refused.value), refused.value
    assert list(tmp_path.iterdir()) == [artifact]


def test_max_concurrency_invocations_in_flight_throttle_the_next_one() -> None:
    runtime = SageMakerRuntime(FixedContainer(), "e", max_concurrency=2)
    runtime.in_flight = 2  # two invocations still running
    throttled = asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "application/json"))
    assert (throttled.status, throttled.headers["x-amzn-errortype"]) == (400, "ThrottlingException")
    # SageMaker's words, the same as an injected throttle's: the handler quotes them in its 429's detail.
    injected = invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(throttle=1)))
    assert json.loads(throttled.body) == json.loads(injected.body) == {"message": "Rate exceeded"}
    runtime.in_flight = 1
    assert invoke(runtime).status == 200


@pytest.mark.parametrize("status", [100, 204, 300, 302, 399])
def test_any_container_answer_outside_2xx_is_a_model_error(status) -> None:
    ok = 200 <= status < 300
    answer = invoke(SageMakerRuntime(FixedContainer(ContainerResponse(status, "text/plain", b"moved")), "e", 1))
    assert answer.status == (200 if ok else 424)
    if not ok:
        assert json.loads(answer.body)["OriginalStatusCode"] == status


def test_an_injected_delay_past_the_limit_times_out_at_the_limit(monkeypatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the runtime's own asyncio.sleep, noting what it was asked to wait
        slept.append(seconds)
        await asyncio.sleep(seconds)

    monkeypatch.setattr(runtime_module, "asyncio", names_of(asyncio, sleep=sleep))
    container = StuckContainer()
    runtime = SageMakerRuntime(container, "e", 1, faults=Faults(delay_s=30.0), invocation_timeout_s=0.05)
    try:
        answer = asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "application/json"))
    finally:
        container.release.set()
        runtime.close()
    assert (answer.status, json.loads(answer.body)["OriginalStatusCode"]) == (424, 0)
    assert slept == [0.05]  # the limit, not the 30 s the fault asked for


def test_an_injected_failure_delayed_past_the_limit_times_out_as_any_slow_model_does() -> None:
    # The injected status is the model's answer: one that would come after the limit is never seen, SageMaker
    # answers its timeout (here it was the injected status, at the limit, as though the model had answered in time).
    faults = Faults(delay_s=30.0, model_status=500)
    runtime = SageMakerRuntime(FixedContainer(), "e", 1, faults=faults, invocation_timeout_s=0.05)
    answer = invoke(runtime)
    assert (answer.status, json.loads(answer.body)["OriginalStatusCode"]) == (424, 0)
    assert json.loads(answer.body)["OriginalMessage"].startswith("Your invocation timed out")
    assert runtime.in_flight == 0
    # One using exactly the whole limit leaves the answer no time either, as a delay before the model does.
    faults = Faults(delay_s=0.05, model_status=500)
    exact = invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=faults, invocation_timeout_s=0.05))
    assert (exact.status, json.loads(exact.body)["OriginalStatusCode"]) == (424, 0)


def test_an_injected_delay_within_the_limit_then_answers_as_the_model_or_the_injected_failure_does() -> None:
    # A slow model, not a timed-out one: after the delay the answer is the model's, or the injected status's.
    slow = Faults(delay_s=0.01)
    assert invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=slow)).status == 200
    slow_and_failing = Faults(delay_s=0.01, model_status=500)
    answer = invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=slow_and_failing))
    assert (answer.status, json.loads(answer.body)["OriginalStatusCode"]) == (424, 500)


def test_the_peak_in_flight_is_the_highest_count_seen_not_the_last() -> None:
    # /__local/faults reports it, and the load test checks the endpoint's cap held by it.
    runtime = SageMakerRuntime(FixedContainer(), "e", max_concurrency=2)
    try:
        runtime.in_flight = 1  # another invocation still running
        assert asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "")).status == 200
        runtime.in_flight = 0
        assert asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "")).status == 200
        assert runtime.peak_in_flight == 2
    finally:
        runtime.close()


def test_an_invocation_gives_back_its_own_slot_and_no_other() -> None:
    # One that ends while another still runs leaves that one counted: the cap then admits only the slots truly free.
    runtime = SageMakerRuntime(FixedContainer(), "e", max_concurrency=2)
    try:
        runtime.in_flight = 1  # another invocation still running
        assert asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "")).status == 200
        assert runtime.in_flight == 1
        runtime.in_flight += 1  # a second one starts: the endpoint is full
        throttled = asyncio.run(runtime.invoke("e", b"x", "image/jpeg", ""))
        assert (throttled.status, throttled.headers["x-amzn-errortype"]) == (400, "ThrottlingException")
    finally:
        runtime.close()


def model_time_on_a_fake_clock(monkeypatch) -> list[float]:
    """The runtime on a fake clock that only its own sleeps advance, at once; returns the time limits it gives the
    model (wait_for's timeouts). Patched on the runtime's module alone: on asyncio itself, the clock would also count
    the sleeps of servers other tests leave running in their threads (39.6 s given for 40 in CI)."""
    from types import SimpleNamespace

    from local import runtime as runtime_module

    clock = [100.0]
    given: list[float] = []

    async def slept(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    async def recorded(awaitable, timeout):
        given.append(timeout)
        return await asyncio.wait_for(awaitable, timeout)

    monkeypatch.setattr(runtime_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    fakes = SimpleNamespace(sleep=slept, wait_for=recorded, get_running_loop=asyncio.get_running_loop)
    monkeypatch.setattr(runtime_module, "asyncio", fakes)
    return given


def test_by_default_the_model_gets_sagemakers_60_seconds(monkeypatch) -> None:
    # The stack builds its runtime without a timeout of its own: the default is what `make demo` gives the model.
    given = model_time_on_a_fake_clock(monkeypatch)
    assert invoke(SageMakerRuntime(FixedContainer(), "e", 1)).status == 200
    assert given == [60.0]


class SlowContainer(FixedContainer):
    """Answers after a short while: well within the invocation limit, never within the 1 ms left after a delay
    that used the rest."""

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        time.sleep(0.2)
        return super().invoke(body, content_type, accept)


def test_an_injected_delay_counts_against_the_invocation_limit() -> None:
    # SageMaker's limit covers the whole invocation: a delay that uses it all leaves the model no time of its own
    # (not a fresh limit after the delay).
    runtime = SageMakerRuntime(SlowContainer(), "e", 1, faults=Faults(delay_s=1.0), invocation_timeout_s=1.0)
    answer = invoke(runtime)
    assert (answer.status, json.loads(answer.body)["OriginalStatusCode"]) == (424, 0)


def test_after_an_injected_delay_the_model_gets_what_is_left_of_the_limit(monkeypatch) -> None:
    # The limit covers the whole invocation: after a 20 s delay the model has 40 s of SageMaker's 60, not 60 afresh.
    given = model_time_on_a_fake_clock(monkeypatch)
    assert invoke(SageMakerRuntime(FixedContainer(), "e", 1, faults=Faults(delay_s=20.0))).status == 200
    assert given == [40.0]


def test_an_artifact_corrupted_in_place_is_refused(tmp_path) -> None:
    """A byte of the weights changed where it lies (a bad disk, a bad copy) unpacks without an error: only gzip's CRC,
    past the archive's end-of-archive blocks, tells. SageMaker's unpacking fails on it, and so must ours."""
    import gzip
    import io
    import tarfile

    from local.runtime import ModelStartError, extract_artifact

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as out:
        weights = tarfile.TarInfo("model.onnx")
        weights.size = 64 * 1024
        out.addfile(weights, io.BytesIO(bytes(range(256)) * 256))
    damaged = bytearray(gzip.compress(tar.getvalue(), compresslevel=0, mtime=0))  # stored: any byte decodes
    damaged[len(damaged) // 2] ^= 0xFF
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(damaged)
    with pytest.raises(ModelStartError, match=f"^cannot unpack the model artifact {artifact}: CRC check failed"):
        extract_artifact(artifact, tmp_path / "unpacked")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("gzip_cut_short", "Compressed file ended before the end-of-stream marker was reached"),  # EOFError
        ("bad_deflate_block", "Error -3 while decompressing data: invalid block type"),  # zlib.error
        ("tar_cut_short", "unexpected end of data"),  # tarfile.ReadError, of an archive that opened
    ],
)
def test_an_artifact_damaged_past_its_first_member_is_refused_naming_the_damage(tmp_path, damage, says) -> None:
    """Damage that tarfile meets only while unpacking (a download cut short, a bad block) is tarfile's or zlib's own
    error, neither an OSError nor a TarError for two of them: it must still stop the start in one line naming the
    artifact and what is wrong with it, not as an archive that is no tar.gz at all (which it opened as)."""
    import gzip
    import io
    import random
    import tarfile

    from local.runtime import ModelStartError, extract_artifact

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as out:
        weights = tarfile.TarInfo("model.onnx")
        weights.size = 256 * 1024
        out.addfile(weights, io.BytesIO(random.Random(0).randbytes(weights.size)))  # incompressible
    if damage == "gzip_cut_short":
        whole = gzip.compress(tar.getvalue(), mtime=0)
        content = whole[: len(whole) // 2]
    elif damage == "bad_deflate_block":  # sound blocks for the first 64 KB, then a block of the reserved type 11
        content = gzip_with_a_bad_block(tar.getvalue()[: 64 * 1024])
    else:
        content = gzip.compress(tar.getvalue()[: 128 * 1024], mtime=0)
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(content)
    with pytest.raises(ModelStartError) as refused:
        extract_artifact(artifact, tmp_path / "unpacked")
    assert str(refused.value) == f"cannot unpack the model artifact {artifact}: {says}"


def test_where_tarfile_has_filters_its_data_filter_unpacks_the_artifact(tmp_path) -> None:
    """The fallback for a tarfile without filters refuses every link; the data filter, which SageMaker's own
    unpacking is closer to, takes one that stays inside the model. Where the filter exists, it is what unpacks."""
    import io
    import tarfile

    from local.runtime import extract_artifact

    if not hasattr(tarfile, "data_filter"):
        skip_or_fail("this Python's tarfile has no filters (before 3.11.4)", "CI's Python must be 3.11.4 or later")
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        script = tarfile.TarInfo("code/inference.py")
        script.size = 1
        tar.addfile(script, io.BytesIO(b"x"))
        link = tarfile.TarInfo("code/handler.py")
        link.type, link.linkname = tarfile.SYMTYPE, "inference.py"
        tar.addfile(link)
    model_dir = extract_artifact(artifact, tmp_path / "unpacked")
    assert (model_dir / "code" / "handler.py").is_symlink()
    assert (model_dir / "code" / "handler.py").read_bytes() == b"x"


def test_no_room_with_a_copy_of_the_artifact_counts_the_copy_too(tmp_path) -> None:
    """The bench keeps a copy of the artifact beside the unpacked model: the room it needs is both, and a figure of
    the unpacked model alone is one the directory may well have had."""
    import errno
    import random

    from local.runtime import no_room_to_unpack

    weights = random.Random(0).randbytes(3_000_000)  # incompressible: the artifact is as large as what it unpacks
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"model.onnx": weights})
    full = OSError(errno.ENOSPC, "No space left on device")
    with_copy = no_room_to_unpack(artifact, tmp_path, full, copied=True)
    assert "(3 MB unpacked, 6 MB with the copy of the artifact kept there): No space left on device;" in with_copy
    assert "(3 MB unpacked): No space left on device;" in no_room_to_unpack(artifact, tmp_path, full)


def test_an_artifact_with_a_member_outside_its_directory_is_refused(tmp_path) -> None:
    from local.runtime import ModelStartError, extract_artifact

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": b"", "../escaped.txt": b"x"})
    with pytest.raises(ModelStartError, match="cannot unpack the model artifact"):
        extract_artifact(artifact, tmp_path / "unpacked")
    assert not (tmp_path / "unpacked" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_quota_reached_while_unpacking_is_called_a_quota_not_a_full_disk(tmp_path, monkeypatch) -> None:
    # EDQUOT (a user's quota on a disk with room) is no room too, and it was reported "No space left on device": df
    # then showed the room, and the quota that refused the write was not named.
    import errno
    import tarfile

    from local.runtime import ModelStartError, extract_artifact

    class Quota(tarfile.TarFile):
        def makefile(self, *_args, **_kwargs):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(runtime_module, "tarfile", tarfile_opening(Quota))
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"model.onnx": b"x"})
    with pytest.raises(ModelStartError) as refused:
        extract_artifact(artifact, tmp_path / "unpacked")
    assert str(refused.value).startswith(f"no room in {tmp_path} to unpack the model artifact {artifact}")
    assert ": Disk quota exceeded; free some there" in str(refused.value), refused.value


@pytest.mark.parametrize(
    "member", ["regular", "setuid", "unreadable", "../escaped.txt", "absolute", "absolute_inside", "symlink"]
)
def test_an_artifact_unpacks_as_the_data_filter_would_where_tarfile_has_no_filters(tmp_path, monkeypatch, member):
    # Before 3.11.4 (Debian 12's python3 is 3.11.2) tarfile has no filters and extractall takes no filter=: `make
    # demo` stopped with "TypeError: TarFile.extractall() got an unexpected keyword argument 'filter'".
    import io
    import os
    import stat
    import tarfile

    from local.runtime import ModelStartError, extract_artifact

    trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}  # 3.12+ warns without one

    class Unfiltered(tarfile.TarFile):
        def extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
            if kwargs:
                raise TypeError(f"TarFile.extractall() got an unexpected keyword argument {next(iter(kwargs))!r}")
            return super().extractall(path, members, numeric_owner=numeric_owner, **trusted)  # noqa: S202 - as tarfile

    monkeypatch.setattr(runtime_module, "tarfile", tarfile_opening(Unfiltered, "data_filter"))
    # absolute_inside: an absolute name that would land inside the destination is refused all the same.
    inside = Path(os.path.realpath(tmp_path / "unpacked" / "model" / "absolute.txt"))
    name = {
        "regular": "code/inference.py",
        "setuid": "code/run",
        "unreadable": "code/weights",
        "absolute": str(tmp_path / "absolute.txt"),
        "absolute_inside": str(inside),
    }
    info = tarfile.TarInfo(name.get(member, member))
    if member == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        # unreadable: as the data filter, the owner may read and write what was unpacked, whatever the archive said.
        info.size, info.mode = 1, {"setuid": 0o6777, "unreadable": 0o000}.get(member, 0o644)
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(b"x"))
    if member in ("regular", "setuid", "unreadable"):
        model_dir = extract_artifact(artifact, tmp_path / "unpacked")
        assert (model_dir / info.name).read_bytes() == b"x"
        mode = {"setuid": 0o755, "unreadable": 0o600}.get(member, 0o644)
        assert stat.S_IMODE((model_dir / info.name).stat().st_mode) == mode
    else:
        with pytest.raises(ModelStartError, match=f"^cannot unpack the model artifact {artifact}: '"):
            extract_artifact(artifact, tmp_path / "unpacked")
        assert sorted(p.name for p in tmp_path.rglob("*") if not p.is_dir()) == ["model.tar.gz"]


@pytest.mark.usefixtures("fresh_script")
@pytest.mark.parametrize(
    ("members", "says"),
    [
        ({"model.onnx": b"x"}, "has no code/inference.py"),
        (
            {"code/inference.py": b"def model_fn(model_dir):\n    raise RuntimeError('no weights\\nsee the log')\n"},
            "model_fn failed for {artifact}: RuntimeError: no weights",
        ),
    ],
    ids=["no_script", "model_fn_raises_two_lines"],
)
def test_an_artifact_the_container_cannot_start_is_refused_in_one_line(tmp_path, members, says):
    from local.runtime import InProcessContainer, ModelStartError

    artifact = tar_gz_of(tmp_path / "model.tar.gz", members)
    with pytest.raises(ModelStartError) as refused:
        InProcessContainer(artifact)
    assert says.format(artifact=artifact) in str(refused.value) and "\n" not in str(refused.value), refused.value
    assert list(tmp_path.iterdir()) == [artifact]


@pytest.mark.usefixtures("fresh_script")
def test_a_closed_container_keeps_no_descriptor_open(tmp_path) -> None:
    import os

    from local.runtime import InProcessContainer

    if not os.path.isdir("/proc/self/fd"):
        skip_or_fail("no /proc/self/fd to count descriptors in (not Linux)", "CI must run on Linux")
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()})
    before = set(os.listdir("/proc/self/fd"))
    InProcessContainer(artifact).close()
    assert set(os.listdir("/proc/self/fd")) == before  # the owner lock went with the directory


@pytest.mark.usefixtures("fresh_script")
def test_a_container_closed_twice_closes_its_lock_once(tmp_path) -> None:
    # A descriptor closed a second time is EBADF, or worse another file's that took its number since.
    import os

    from local.runtime import InProcessContainer

    container = InProcessContainer(tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()}))
    container.close()
    other = os.open(tmp_path / "model.tar.gz", os.O_RDONLY)  # the lowest number free: likely the lock's
    try:
        container.close()
        os.fstat(other)  # still open
    finally:
        os.close(other)


@pytest.mark.usefixtures("fresh_script")
def test_a_container_starting_sweeps_the_model_dirs_of_stacks_killed_outright(tmp_path) -> None:
    import os

    from local.runtime import MODEL_DIR_PREFIX, InProcessContainer, hold_owner_lock

    orphan = tmp_path / f"{MODEL_DIR_PREFIX}424248-ggg"
    (orphan / "model").mkdir(parents=True)
    os.close(hold_owner_lock(orphan))  # its stack was killed: the lock is free
    container = InProcessContainer(tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()}))
    try:
        assert not orphan.exists()
    finally:
        container.close()


def test_a_model_dir_is_swept_only_when_its_owner_is_known_to_be_gone(tmp_path, monkeypatch) -> None:
    # A dead owner's directory goes, from the disk too. When in doubt, keep: a pid that is alive under another
    # user (kill answers EPERM), or a lock that cannot be opened to try it.
    import os

    from local.runtime import MODEL_DIR_PREFIX, OWNER_LOCK, hold_owner_lock, sweep_orphaned_model_dirs

    unlockable = tmp_path / f"{MODEL_DIR_PREFIX}424242-aaa"
    (unlockable / OWNER_LOCK).mkdir(parents=True)  # opening it for writing fails (EISDIR)
    someone_elses = tmp_path / f"{MODEL_DIR_PREFIX}424243-bbb"
    someone_elses.mkdir()
    killed = tmp_path / f"{MODEL_DIR_PREFIX}424244-ccc"
    (killed / "model").mkdir(parents=True)
    os.close(hold_owner_lock(killed))  # locked by its owner, which then died: the lock is free

    def kill(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(runtime_module, "os", os_with(kill=kill))
    assert sweep_orphaned_model_dirs(tmp_path) == [killed] and not killed.exists()
    assert unlockable.exists() and someone_elses.exists()


def test_a_model_dir_not_locked_yet_is_swept_by_the_pid_in_its_name_and_only_a_name_of_ours(tmp_path) -> None:
    # A stack killed between mkdtemp and taking its lock leaves a directory with no lock: the pid in its name (our
    # mkdtemp's prefix, the pid, a dash, mkdtemp's random part) tells whether its owner is gone. A name holding no
    # pid, or not of that shape, is nothing this tells of, and stays; it must not stop the sweep either.
    import os
    import subprocess

    from local.runtime import MODEL_DIR_PREFIX, sweep_orphaned_model_dirs

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    unlocked = tmp_path / f"{MODEL_DIR_PREFIX}{gone.pid}-k2x9q4tz"
    alive = tmp_path / f"{MODEL_DIR_PREFIX}{os.getpid()}-a7c3m1zz"
    no_pid = tmp_path / f"{MODEL_DIR_PREFIX}abc-{gone.pid}"
    no_random_part = tmp_path / f"{MODEL_DIR_PREFIX}{gone.pid}"
    for path in (unlocked, alive, no_pid, no_random_part):
        (path / "model").mkdir(parents=True)
    assert sweep_orphaned_model_dirs(tmp_path) == [unlocked] and not unlocked.exists()
    assert alive.exists() and no_pid.exists() and no_random_part.exists()


def test_a_symlink_named_as_a_model_dir_is_never_followed(tmp_path) -> None:
    # Only our own directories are swept: a link in TMPDIR (anyone may make one there) to an orphaned model dir is
    # neither swept through nor reported as swept.
    import os

    from local.runtime import MODEL_DIR_PREFIX, hold_owner_lock, sweep_orphaned_model_dirs

    elsewhere = tmp_path / "elsewhere"
    orphan = elsewhere / f"{MODEL_DIR_PREFIX}424246-eee"
    (orphan / "model").mkdir(parents=True)
    os.close(hold_owner_lock(orphan))  # its owner died: the lock is free
    link = tmp_path / "tmp" / f"{MODEL_DIR_PREFIX}424247-fff"
    link.parent.mkdir()
    link.symlink_to(orphan, target_is_directory=True)
    assert sweep_orphaned_model_dirs(link.parent) == []
    assert link.is_symlink() and (orphan / "model").is_dir()


def test_a_model_dir_of_another_user_is_never_swept(tmp_path, monkeypatch) -> None:
    # A shared /tmp: another user's directory is theirs to remove, even with its owner lock free.
    import os

    from local.runtime import MODEL_DIR_PREFIX, hold_owner_lock, sweep_orphaned_model_dirs

    theirs = tmp_path / f"{MODEL_DIR_PREFIX}424245-ddd"
    (theirs / "model").mkdir(parents=True)
    os.close(hold_owner_lock(theirs))
    monkeypatch.setattr(runtime_module, "os", os_with(getuid=lambda: theirs.stat().st_uid + 1))  # we are someone else
    assert sweep_orphaned_model_dirs(tmp_path) == [] and theirs.exists()


def test_a_multiprocessing_dir_is_swept_only_when_a_stack_locked_it_and_is_gone(tmp_path) -> None:
    # multiprocessing names its directory pymp-<random>: only a stack's lock tells it is one (the fork server's,
    # left behind by a kill -9) and whether its owner is gone. Any other program's has none and stays, whatever its
    # name holds (here, where a model dir's name has its owner's pid, one that is gone, which for a model dir decides).
    import os
    import subprocess
    import sys

    from local.runtime import hold_owner_lock, sweep_orphaned_multiprocessing_dirs

    def pymp(name: str) -> Path:
        path = tmp_path / f"pymp-{name}"
        path.mkdir()
        (path / "listener-abc").touch()  # stands for the fork server's socket
        return path

    killed = pymp("aaaaaaaa")
    os.close(hold_owner_lock(killed))  # locked by its stack, which then died: the lock is free
    live = pymp("bbbbbbbb")
    held = hold_owner_lock(live)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    another_programs = pymp(f"{'x' * 11}{gone.pid}-y")  # as long a head as "mobilenet-model-"
    try:
        assert sweep_orphaned_multiprocessing_dirs(tmp_path) == [killed] and not killed.exists()
        assert live.exists() and another_programs.exists()
    finally:
        os.close(held)


def test_the_stacks_multiprocessing_dir_is_locked_as_its_own(tmp_path) -> None:
    # In a Python of its own: multiprocessing's temporary directory set here would be every thread's (the fork
    # server's socket is made there).
    import subprocess

    # As multiprocessing's util.get_temp_dir made it (set there, not made by it: its exit handler would remove it).
    made = tmp_path / "pymp-k2x9q4tz"
    made.mkdir()
    script = f"""
import json, os
from multiprocessing import process
from pathlib import Path
from local import runtime
process.current_process()._config["tempdir"] = {str(made)!r}
directory = runtime.hold_multiprocessing_dir()
lock = runtime._multiprocessing_dir_lock
seen = {{
    "directory": str(directory),
    "held": sorted(p.name for p in directory.iterdir()),  # the lock, under its name, and nothing else
    "swept while alive": [str(p) for p in runtime.sweep_orphaned_multiprocessing_dirs(Path({str(tmp_path)!r}))],
    "again": str(runtime.hold_multiprocessing_dir()),
    "same lock": runtime._multiprocessing_dir_lock == lock,  # once per process: not a descriptor per call
}}
os.close(lock)
seen["swept once gone"] = [str(p) for p in runtime.sweep_orphaned_multiprocessing_dirs(Path({str(tmp_path)!r}))]
print(json.dumps(seen))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "directory": str(made),
        "held": [".owner.lock"],
        "swept while alive": [],  # locked by this process, alive
        "again": str(made),
        "same lock": True,
        "swept once gone": [str(made)],  # as once its process is killed
    }


def test_a_stop_signal_while_multiprocessing_makes_its_dir_leaves_it_to_multiprocessing_to_remove(tmp_path) -> None:
    # util.get_temp_dir makes the directory, then registers its removal at exit: a Ctrl-C between the two left an
    # empty pymp-* directory, unlocked (so no later start removes it either), in TMPDIR for good. get_temp_dir
    # imports tempfile itself, so only tempfile.mkdtemp can be replaced: in a Python of its own, as here it would be
    # every other thread's mkdtemp too. Its exit removes the directory, as multiprocessing's does.
    import subprocess

    from tests.conftest import ROOT

    script = """if True:
        import signal, sys, tempfile
        from multiprocessing import process, util
        from local import runtime

        made = []
        real_mkdtemp = tempfile.mkdtemp

        def mkdtemp_then_ctrl_c(*args, **kwargs):
            made.append(real_mkdtemp(*args, **kwargs))
            signal.raise_signal(signal.SIGINT)
            return made[-1]

        tempfile.mkdtemp = mkdtemp_then_ctrl_c
        try:
            runtime.hold_multiprocessing_dir()
        except KeyboardInterrupt:
            pass
        else:
            sys.exit("no KeyboardInterrupt")
        [directory] = made
        removals = [f for f in list(util._finalizer_registry.values()) if directory in (f._args or ())]
        assert process.current_process()._config["tempdir"] == directory and len(removals) == 1, removals
        print(directory)
    """
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert done.returncode == 0, done.stderr
    directory = done.stdout.strip()
    assert Path(directory).parent == tmp_path
    assert not os.path.exists(directory)


def test_stop_signals_are_held_back_until_the_block_ends_then_the_first_that_came_runs() -> None:
    import signal

    from local.runtime import stop_signals_held

    ran: list[int] = []
    handlers = {
        sig: signal.signal(sig, lambda signum, _frame: ran.append(signum)) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        with stop_signals_held():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
            assert ran == []
        assert ran == [signal.SIGTERM]  # one stop is enough: the first asked for it
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_outside_the_main_thread_stop_signals_are_not_held_and_nothing_fails() -> None:
    # Only the main thread may set a handler (elsewhere signal.signal raises ValueError): a container started in
    # another thread must start all the same.
    from local.runtime import stop_signals_held

    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with stop_signals_held():
                pass
        except BaseException as e:  # reported below, in the main thread
            errors.append(e)

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()
    assert errors == []


class ClockedContainer(FixedContainer):
    """Takes `seconds` of a fake clock to answer."""

    def __init__(self, clock: list[float], seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        self.clock[0] += self.seconds
        return super().invoke(body, content_type, accept)


def test_a_runtime_answer_names_the_models_time_in_server_timing(monkeypatch) -> None:
    from types import SimpleNamespace

    from local import runtime as runtime_module

    clock = [100.0]
    monkeypatch.setattr(runtime_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    answer = invoke(SageMakerRuntime(ClockedContainer(clock, 0.25), "e", 1))
    assert answer.status == 200 and answer.headers["server-timing"] == "model;dur=250.0"  # milliseconds


def test_the_runtime_tiers_line_gives_its_time_in_milliseconds() -> None:
    from local.runtime import RuntimeAnswer, answer_line

    answer = RuntimeAnswer(200, {"x-amzn-requestid": "r-1"}, b"")
    assert answer_line(answer, 1234.56) == "invocation r-1: 200 in 1234.6 ms"


def test_the_runtime_tiers_line_of_a_model_error_without_its_container_status_still_names_the_error() -> None:
    # The line is logged for every answer: a ModelError body it cannot read the container status from (not JSON, no
    # such field, not an object) gives the line without it, never an exception in the request that logs it.
    from local.runtime import RuntimeAnswer, answer_line

    for body in (b"not json", b"{}", b"[424]"):
        answer = RuntimeAnswer(424, {"x-amzn-requestid": "r-1", "x-amzn-errortype": "ModelError"}, body)
        assert answer_line(answer, 5.0) == "invocation r-1: 424 ModelError in 5.0 ms", body
    answer = model_error("e", "us-east-1", 503, b"busy")
    answer.headers["x-amzn-requestid"] = "r-2"
    assert answer_line(answer, 5.0) == "invocation r-2: 424 ModelError (container status 503) in 5.0 ms"


def test_without_the_toolkit_the_scripts_own_error_base_keeps_its_status(tmp_path) -> None:
    # The toolkit is optional for the in-process runtime: without it, the script's own InferenceError is what keeps
    # a status (415 stays 415), and any other exception is still a 500 (not taken for a toolkit error). In a Python
    # of its own: the toolkit's import made to fail here (sys.modules) would fail every thread's import of it.
    import subprocess

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": STUB_INFERENCE.encode()})
    script = f"""
import sys, tempfile
from pathlib import Path
sys.modules["sagemaker_inference.errors"] = None  # import raises ImportError
tempfile.tempdir = {str(tmp_path)!r}  # where the model is unpacked
from local.runtime import InProcessContainer
container = InProcessContainer(Path({str(artifact)!r}))
try:
    refused, crashed = (container.invoke(b"x", kind, "") for kind in ("image/x-refused", "image/x-crash"))
    print(refused.status, crashed.status, crashed.body.startswith(b"stub crashed\\n"))
finally:
    container.close()
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["415", "500", "True"]


@pytest.mark.usefixtures("fresh_script")
def test_the_inference_script_imports_its_own_modules_from_code(tmp_path, monkeypatch) -> None:
    # The toolkit puts code/ on sys.path before importing SAGEMAKER_PROGRAM: a script may import a module beside it.
    from local.runtime import InProcessContainer

    monkeypatch.delitem(sys.modules, "stub_helpers", raising=False)
    script = b"from stub_helpers import *\n"
    helpers = STUB_INFERENCE.encode()
    members = {"code/inference.py": script, "code/stub_helpers.py": helpers}
    container = InProcessContainer(tar_gz_of(tmp_path / "model.tar.gz", members))
    try:
        assert container.invoke(b"{}", "application/json", "").body == b"str application/json"
    finally:
        container.close()


def test_an_oversize_body_is_refused_in_sagemakers_words() -> None:
    answer = invoke(SageMakerRuntime(FixedContainer(), "e", 1, max_payload_bytes=1), body=b"xx")
    assert (answer.status, answer.headers["x-amzn-errortype"]) == (400, "ValidationError")
    assert re.fullmatch(r"Request [0-9a-f-]{36} has oversize body\.", json.loads(answer.body)["message"])


def test_an_oversize_bodys_message_names_the_request_id_its_header_carries() -> None:
    """SageMaker's message quotes the id of the request it refuses; two ids for one call (the message's in the
    proxy's detail, the header's as its endpoint_request_id and in the runtime tier's line) had an operator grep for
    one that no other line holds."""
    answer = invoke(SageMakerRuntime(FixedContainer(), "e", 1, max_payload_bytes=1), body=b"xx")
    message = json.loads(answer.body)["message"]
    assert message == f"Request {answer.headers['x-amzn-requestid']} has oversize body."


@pytest.mark.usefixtures("fresh_script")
def test_a_ctrl_c_while_model_fn_imports_a_c_extension_still_stops_the_start(tmp_path) -> None:
    """A Ctrl-C during `import onnxruntime` in model_fn comes out of the extension's init as ImportError
    ("initialization failed"), which model_fn takes for a missing runtime: it fell back to TorchScript, and the stack
    the user had just stopped kept loading and served. The signal now waits for model_fn, then stops the start."""
    import signal

    from local.runtime import InProcessContainer

    script = STUB_INFERENCE.replace(
        'def model_fn(model_dir):\n    return "stub"\n',
        "def model_fn(model_dir):\n"
        "    import signal\n"
        "    try:\n"
        "        try:  # as pybind11's module init does with an exception raised while it runs\n"
        "            signal.raise_signal(signal.SIGINT)\n"
        "        except KeyboardInterrupt:\n"
        "            raise ImportError('initialization failed') from None\n"
        "    except ImportError:\n"
        "        return 'fallback'  # as inference.py falls back to TorchScript\n"
        '    return "stub"\n',
    )
    assert script != STUB_INFERENCE
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            InProcessContainer(tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": script.encode()}))
    finally:
        signal.signal(signal.SIGINT, handler)
    assert list(tmp_path.iterdir()) == [tmp_path / "model.tar.gz"]  # the unpacked model went with it
