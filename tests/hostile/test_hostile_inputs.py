"""The hostile-input corpus (tests/hostile/cases.py) sent over HTTP to the local stack.

Every case must get its designed answer as JSON with nothing internal in it, and the stack must still answer a
normal request right after it (a case that wedges, crashes or poisons the server fails here, not later).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from handlers.proxy_core import ERRORS
from tests.hostile.cases import CASES, GENERATORS, Case, coffee

# What must never reach a client: tracebacks, container paths, source files, ARNs, account ids.
LEAK_MARKERS = ("Traceback", "/opt/ml", 'File "', ".py", "arn:aws")
ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


def leaks(text: str) -> list[str]:
    found = [marker for marker in LEAK_MARKERS if marker in text]
    return found + ACCOUNT_ID.findall(text)


def send(url: str, case: Case) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        try:
            return client.request(case.method, f"{url}{case.path}", content=case.build_body(), headers=case.headers)
        except httpx.TransportError as exc:  # a reset instead of an answer breaks the contract too
            raise AssertionError(f"{case.id}: no HTTP answer: {type(exc).__name__}: {exc}") from exc


def params() -> list:
    # A known bug runs as a strict xfail: the day it is fixed, the XPASS fails and the mark must go.
    def marks(case: Case) -> list:
        return [pytest.mark.xfail(strict=True, raises=AssertionError, reason=case.known_bug)] if case.known_bug else []

    return [pytest.param(case, id=case.id, marks=marks(case)) for case in CASES]


# --- the corpus itself (no stack) ---------------------------------------------------------------------------
def test_corpus_is_large_unique_and_consistent_with_the_error_table():
    assert len(CASES) >= 40
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    for case in CASES:
        assert isinstance(case.body, bytes) or case.body in GENERATORS, case.id
        if case.expected_error is not None:
            spec = ERRORS[case.expected_error]
            allowed = {spec.status, 422} if case.expected_error == "invalid_image" else {spec.status}
            assert case.expected_status in allowed, case.id
        else:
            assert case.expected_status == 200 or case.expected_status in (404, 413, 431), case.id


def test_readme_counts_the_cases():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"`tests/hostile/cases.py` holds {len(CASES)} cases as data" in readme


def test_leak_check_catches_what_it_should():
    assert leaks('Traceback (most recent call last):\n  File "/opt/ml/model/code/inference.py"')
    assert leaks("arn:aws:logs:us-east-1:123456789012:log-group") and leaks("account 123456789012")
    assert not leaks('{"error": "bad_request", "message": "top_k must be between 1 and 20; got 0."}')


# --- over HTTP -----------------------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("case", params())
def test_hostile_case(stack, case: Case):
    response = send(stack.url, case)
    assert not leaks(response.text), f"{case.id}: response leaks {leaks(response.text)}: {response.text[:300]}"
    assert response.status_code == case.expected_status, f"{case.id}: {response.status_code} {response.text[:300]}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict)
    if case.expected_status == 200:
        assert body["predictions"] and all(0.0 <= p["prob"] <= 1.0 for p in body["predictions"])
    elif case.expected_error is None:  # API Gateway's own answer
        assert set(body) == {"message"} and body["message"], body
    else:
        assert set(body) == {"error", "message"}, body
        assert body["error"] == case.expected_error, body
        assert isinstance(body["message"], str) and 0 < len(body["message"]) <= 300

    # The server survived: a normal request right after the hostile one still succeeds.
    after = httpx.post(f"{stack.url}/predict", content=coffee(), headers={"content-type": "image/jpeg"}, timeout=60)
    assert after.status_code == 200, f"after {case.id}: {after.status_code} {after.text[:300]}"
    assert after.json()["predictions"][0]["label"] == "espresso"
