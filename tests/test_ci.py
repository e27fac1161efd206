"""A missing prerequisite skips on a developer's machine and fails under CI (so CI cannot go green by skipping)."""

from __future__ import annotations

import pytest

from tests.ci import skip_or_fail


def outcome_of(reason: str, ci_hint: str) -> tuple[type[BaseException], str]:
    # Caught as BaseException: a skip escaping from these tests would report them as skipped, not failed.
    with pytest.raises(BaseException) as outcome:
        skip_or_fail(reason, ci_hint)
    return outcome.type, str(outcome.value)


def test_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert outcome_of("java missing", "CI must install it") == (pytest.skip.Exception, "java missing")


@pytest.mark.parametrize("value", ["true", "1"])
def test_fails_under_ci_with_what_ci_must_do(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert outcome_of("java missing", "CI must install it") == (
        pytest.fail.Exception,
        "java missing; CI must install it",
    )
