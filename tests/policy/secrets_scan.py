"""A small secret scanner for the repository: pure `find_secrets(text)` plus the `git ls-files` walk."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Dummy values the local stack and the tests use on purpose (documented in the README).
ALLOWED_DUMMY_VALUES = frozenset({"local", "test"})

ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
SECRET_ACCESS_KEY = re.compile(
    r"(?i)aws_?secret_?access_?key[\"']?\s*[:=,]\s*[\"']?(?P<value>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
)
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
PASSWORD_ASSIGNMENT = re.compile(r"(?i)\b(?:password|passwd|pwd)[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"',;&)}]+)")


@dataclass(frozen=True)
class Finding:
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.excerpt}"


def _redact(text: str) -> str:
    """Enough of a match to find it, not enough to leak it again through the test report."""
    return text[:8] + "..." if len(text) > 8 else text


def find_secrets(text: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        findings += [Finding(number, "AWS access key id", _redact(m.group(0))) for m in ACCESS_KEY_ID.finditer(line)]
        findings += [
            Finding(number, "AWS secret access key", _redact(m.group("value")))
            for m in SECRET_ACCESS_KEY.finditer(line)
        ]
        findings += [Finding(number, "private key", m.group(0)) for m in PRIVATE_KEY.finditer(line)]
        findings += [
            Finding(number, "password", _redact(m.group("value")))
            for m in PASSWORD_ASSIGNMENT.finditer(line)
            if m.group("value") not in ALLOWED_DUMMY_VALUES
        ]
    return findings


def repository_files(root: Path) -> list[Path]:
    """Tracked files plus new, not-ignored ones (so a secret is caught before its first commit)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8", "surrogateescape")
    return [root / name for name in listed.split("\0") if name and (root / name).is_file()]


def read_text_or_none(path: Path) -> str | None:
    """The file as text, or None for a binary file (NUL in the first 8 KiB)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")
