"""A missing prerequisite skips on a developer's machine and fails under CI (so CI cannot go green by skipping)."""

from __future__ import annotations

import pytest

from tests.ci import find_python, skip_or_fail


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


def fake_python(path, version: str, works: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!/bin/sh\necho '{version} (main)'\n" if works else "#!/bin/sh\necho 'no such version' >&2\nexit 127\n"
    )
    path.chmod(0o755)
    return str(path)


def test_find_python_skips_a_shim_without_a_version_behind_it(tmp_path, monkeypatch):
    fake_python(tmp_path / "shims" / "python3.99", "3.99.0", works=False)
    pyenv = fake_python(tmp_path / "home" / ".pyenv" / "versions" / "3.99.2" / "bin" / "python3.99", "3.99.2")
    monkeypatch.setenv("PATH", str(tmp_path / "shims"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_python("3.99") == pyenv


def test_find_python_prefers_the_one_on_path(tmp_path, monkeypatch):
    on_path = fake_python(tmp_path / "bin" / "python3.99", "3.99.1")
    fake_python(tmp_path / "home" / ".pyenv" / "versions" / "3.99.2" / "bin" / "python3.99", "3.99.2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_python("3.99") == on_path


def test_find_python_takes_pyenvs_newest_patch_release(tmp_path, monkeypatch):
    versions = tmp_path / "home" / ".pyenv" / "versions"
    for release in ("3.99.9", "3.99.11", "3.99.10"):  # neither string order, up or down, puts 3.99.11 first
        fake_python(versions / release / "bin" / "python3.99", release)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_python("3.99") == str(versions / "3.99.11" / "bin" / "python3.99")
