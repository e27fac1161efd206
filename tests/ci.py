"""What a test does when something it needs is missing from the machine."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_or_fail(reason: str, ci_hint: str) -> NoReturn:
    """Skip on a developer's machine; under CI fail, so a green CI run means every test really ran.

    `reason` says what is missing, `ci_hint` what CI must do about it (it is appended under CI only).
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; {ci_hint}", pytrace=False)
    pytest.skip(reason)
