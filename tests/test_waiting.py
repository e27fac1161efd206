"""tests/waiting.py: a wait that never comes fails, naming what it waited for."""

import pytest

from tests.waiting import wait_until


def test_a_condition_that_never_holds_fails_naming_it():
    with pytest.raises(AssertionError, match=r"not within 0\.05 s: the sandbox to die"):
        wait_until(lambda: False, "the sandbox to die", timeout=0.05)


def test_a_condition_that_comes_true_ends_the_wait():
    calls = iter([False, False, True])
    wait_until(lambda: next(calls))  # a poll after it came true would raise StopIteration
    assert list(calls) == [], "the wait ended before the condition came true"
