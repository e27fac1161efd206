"""What a test does when something it needs is missing from the machine."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

# What CI set to says "not CI", in any case, as the Makefile's yes/no variables (its `on`): CI=false on a developer's
# machine (a shell profile, a copied job's environment) made every missing tool fail the run instead of skipping.
NOT_CI = frozenset({"", "0", "false", "no", "off"})


def under_ci() -> bool:
    # Word by word, as `on` filters its words out: CI="no no" was CI here and not to the Makefile's chromium target.
    return any(word.lower() not in NOT_CI for word in os.environ.get("CI", "").split())


def skip_or_fail(reason: str, ci_hint: str) -> NoReturn:
    """Skip on a developer's machine; under CI fail, so a green CI run means every test really ran.

    `reason` says what is missing, `ci_hint` what CI must do about it (it is appended under CI only).
    """
    if under_ci():
        pytest.fail(f"{reason}; {ci_hint}", pytrace=False)
    pytest.skip(reason)


def require_proc(what: str) -> None:
    """Skip (fail under CI) where there is no /proc (macOS): `what` is what the test reads there. Read anyway,
    `make test-fast` on a Mac failed such a test with FileNotFoundError, as if the code under test were wrong."""
    if not os.path.isdir("/proc/self"):
        skip_or_fail(f"no /proc (Linux's; macOS has none) to read {what} in", "CI must run on Linux")


def require_ipv6_loopback() -> None:
    """Skip (fail under CI) unless this machine can bind ::1; a container often has IPv6 switched off."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as e:
        skip_or_fail(f"no IPv6 loopback on this machine: {e}", "CI must give it one (::1)")


def find_python(version: str) -> str | None:
    """A working `pythonX.Y` that can make a venv: on PATH, else pyenv's newest X.Y.* (the order .ci/run uses). Each
    candidate is run, since a pyenv shim is on PATH even when no such version stands behind it."""

    def patch_release(path: Path) -> tuple[int, ...]:
        return tuple(int(part) if part.isdigit() else -1 for part in path.parts[-3].split("."))

    pyenv = sorted(
        Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"), key=patch_release, reverse=True
    )
    for candidate in [shutil.which(f"python{version}"), *map(str, pyenv)]:
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import ensurepip, sys, venv; print(sys.version)"], capture_output=True, text=True
            )
            if probe.returncode == 0 and probe.stdout.startswith(f"{version}."):
                return candidate
    return None


def bare_venv(version: str, target: Path, packages: Sequence[str], purpose: str) -> Path:
    """A new venv at `target` on Python `version` with only `packages` pip-installed; skips (fails under CI) when
    that Python is missing or the packages cannot be installed. `purpose` completes "CI must bring one to ..."."""
    interpreter = find_python(version)
    if interpreter is None:
        skip_or_fail(f"no Python {version} on this machine", f"CI must bring one to {purpose}")
    made = subprocess.run([interpreter, "-m", "venv", str(target)], capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        skip_or_fail(
            f"{interpreter} cannot make a venv: {made.stderr.strip()[-300:]}", f"CI must bring one to {purpose}"
        )
    install = subprocess.run(
        [str(target / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *packages],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        skip_or_fail(
            f"cannot install {' '.join(packages)} for Python {version}: {install.stderr.strip()[-300:]}",
            "CI must reach a package index",
        )
    return target
