"""The runtime tier's own limits, without a model: what SageMaker answers when an invocation runs too long."""

from __future__ import annotations

import asyncio
import json
import time

from handlers import proxy_core
from local.runtime import ContainerResponse, SageMakerRuntime


class SlowContainer:
    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        time.sleep(self.seconds)
        return ContainerResponse(200, "application/json", b"{}")

    def close(self) -> None:
        pass


def test_an_invocation_past_the_limit_is_sagemakers_status_0_model_error_and_a_504_at_the_proxy() -> None:
    runtime = SageMakerRuntime(SlowContainer(0.5), "e", max_concurrency=1, invocation_timeout_s=0.05)
    try:
        answer = asyncio.run(runtime.invoke("e", b"x", "image/jpeg", "application/json"))
    finally:
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
