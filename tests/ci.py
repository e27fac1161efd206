"""What a test does when something it needs is missing from the machine."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest


def skip_or_fail(reason: str, ci_hint: str) -> NoReturn:
    """Skip on a developer's machine; under CI fail, so a green CI run means every test really ran.

    `reason` says what is missing, `ci_hint` what CI must do about it (it is appended under CI only).
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; {ci_hint}", pytrace=False)
    pytest.skip(reason)


def find_python(version: str) -> str | None:
    """A working `pythonX.Y`: on PATH, else under pyenv (as .ci/run looks for it). Each candidate is run, since
    a pyenv shim is on PATH even when no such version stands behind it."""
    pyenv = sorted(map(str, Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")))
    for candidate in [shutil.which(f"python{version}"), *pyenv]:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "--version"], capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.startswith(f"Python {version}."):
                return candidate
    return None
