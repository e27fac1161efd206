"""No secrets in config.js, in the function's environment, in the repository, or in the handler's logs."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.site_config import render_config_js
from tests.conftest import names_of
from tests.handler.conftest import JPEG, FakeLambdaContext, FakeRuntime, load_proxy, make_event, model_error_reply
from tests.infra.conftest import ROOT
from tests.policy import rules
from tests.policy.graph import Graph
from tests.policy.secrets_scan import find_secrets, read_text_or_none, repository_files

CONFIG_JS = re.compile(r"^window\.APP_CONFIG = Object\.freeze\((?P<body>\{.*\})\);\n$", re.DOTALL)


def config_js_keys(text: str) -> dict[str, Any]:
    match = CONFIG_JS.match(text)
    assert match, f"config.js has an unexpected shape: {text!r}"
    return json.loads(match.group("body"))


# ------------------------------------------------------------------------------------------ config.js


@pytest.mark.parametrize(
    "api_url",
    [
        "https://abc123defg.execute-api.us-east-1.amazonaws.com",
        "http://127.0.0.1:8000/",
        "https://api.example.com/Prod",  # a path is case-sensitive: /prod is another stage, or none
        "https://api.example.com/Prod//",  # every trailing slash: one left, the UI would call /Prod//predict
        "HTTPS://api.example.com",  # a scheme is case-insensitive (RFC 3986): a browser fetch()es it as https
    ],
)
def test_config_js_holds_only_the_api_url(api_url: str) -> None:
    assert config_js_keys(render_config_js(api_url)) == {"apiUrl": api_url.rstrip("/")}


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/</script><script>alert(1)",
        # HTML's end tags are case-insensitive: escaping "</script" alone passed every test, and "</SCRIPT>" ends it.
        "https://api.example.com/</SCRIPT><script>alert(1)",
    ],
)
def test_config_js_escapes_a_closing_tag_and_keeps_the_url(url: str) -> None:
    """The closing-tag sequence is escaped, so the file stays harmless even if inlined; JSON reads it back."""
    text = render_config_js(url)
    assert "</" not in text
    assert config_js_keys(text) == {"apiUrl": url}


def test_config_js_is_ascii_whatever_the_url_holds() -> None:
    """Non-ASCII is escaped: the file's bytes mean the same in any charset a browser or proxy decodes them with, and
    a U+2028 line separator cannot end the string early in a pre-ES2019 engine; JSON still reads the URL back."""
    url = "https://api.example.com/caf\u00e9/\u2028\u2029"
    text = render_config_js(url)
    assert text.isascii()
    assert config_js_keys(text) == {"apiUrl": url}


@pytest.mark.parametrize(
    "api_url",
    [
        "ftp://api.example.com",
        "wss://api.example.com",  # the UI fetch()es /predict: a WebSocket URL is no URL it can POST to
        "ws://127.0.0.1:8000",
        "javascript:alert(1)",
        "//api.example.com",
        "https:///predict",  # no host (a browser would take "predict" for one)
        # A port or a user is no host: "netloc" is not empty, and each was rendered into config.js.
        "https://:443",
        "https://user@",
        # fetch() refuses a URL with credentials (a TypeError: no request is sent), and config.js is public.
        "https://user:secret@api.example.com",
        "https://user@api.example.com",  # a user alone is credentials to fetch() too
        "https://api.example.com/?stage=prod",
        "https://api.example.com/#predict",
        # An empty query or fragment is one still: the UI would call https://api.example.com/?/predict, the API's root.
        "https://api.example.com/?",
        "https://api.example.com/Prod#",
    ],
)
def test_config_js_refuses_an_api_url_the_ui_cannot_append_predict_to(api_url: str) -> None:
    with pytest.raises(ValueError, match="api_url must"):
        render_config_js(api_url)


def test_deployed_config_js_holds_only_the_api_url(graph: Graph) -> None:
    [obj] = [r for r in graph.resources if r.type in rules.OBJECT_TYPES and r.inputs.get("key") == "config.js"]
    assert config_js_keys(obj.inputs["content"]) == {"apiUrl": graph.exports["api_url"]}


def test_function_environment_carries_no_credentials(graph: Graph) -> None:
    """Credentials come from the execution role, never from variables (Lambda and the model container)."""
    environments = [
        (f.label(), (f.inputs.get("environment") or {}).get("variables") or {}) for f in graph.of_type(rules.FUNCTION)
    ]
    environments += [
        (m.label(), (m.inputs.get("primaryContainer") or {}).get("environment") or {})
        for m in graph.of_type(rules.SM_MODEL)
    ]
    assert len(environments) == 2
    for label, variables in environments:
        assert not [k for k in variables if re.search(r"(?i)secret|password|token|access_key", k)], (label, variables)
        assert find_secrets("\n".join(f"{k}={v}" for k, v in variables.items())) == [], label


# ----------------------------------------------------------------------------------------- repository

FAKE_KEY_ID = "AKIA" + "Q3EXAMPLEQ3EXAMP"  # split so this file does not trip its own scan
FAKE_SECRET = "Zm9vYmFy" * 5


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"key = '{FAKE_KEY_ID}'", "AWS access key id"),
        ("ASIA" + "ABCDEFGHIJKLMNOP in a log line", "AWS access key id"),
        (f"aws_secret_access_key = {FAKE_SECRET}", "AWS secret access key"),
        (f'"AWS_SECRET_ACCESS_KEY": "{FAKE_SECRET}"', "AWS secret access key"),
        ("-----BEGIN " + "RSA PRIVATE KEY-----", "private key"),
        ("-----BEGIN " + "OPENSSH PRIVATE KEY-----", "private key"),
        ("db_url?pass" + "word=hunter2", "password"),
        ('{"pass' + 'word": "s3cr3t!"}', "password"),
        ("PASS" + "WD=hunter2", "password"),
        ("mysql --p" + "wd=hunter2", "password"),
        (f'monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "{FAKE_SECRET}")', "AWS secret access key"),
        ("-----BEGIN " + "PGP PRIVATE KEY BLOCK-----", "private key"),
    ],
)
def test_scanner_finds_planted_secrets(text: str, kind: str) -> None:
    assert [f.kind for f in find_secrets(f"first line\n{text}\n")] == [kind]
    assert find_secrets(f"first line\n{text}\n")[0].line == 2


@pytest.mark.parametrize(
    "text",
    [
        'aws_secret_access_key="local"',
        "pass" + "word=local",
        "PASS" + "WORD: test",
        "AKIA" + "short",
        "the password field is not shown",  # prose, no assignment
    ],
)
def test_scanner_allows_the_documented_dummies(text: str) -> None:
    assert find_secrets(text) == []


def test_a_finding_does_not_repeat_the_secret() -> None:
    [finding] = find_secrets(f"aws_secret_access_key = {FAKE_SECRET}")
    assert finding.excerpt == FAKE_SECRET[:8] + "..."


def test_repository_files_are_the_tracked_and_the_new_not_ignored_ones(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name in (".gitignore", "tracked.txt", "new.md", "build.log"):
        (tmp_path / name).write_text("*.log\n" if name == ".gitignore" else "text\n")
    subprocess.run(["git", "add", "tracked.txt"], cwd=tmp_path, check=True)
    assert sorted(p.name for p in repository_files(tmp_path)) == [".gitignore", "new.md", "tracked.txt"]


def test_only_a_binary_file_goes_unread(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("pass" + "word=hunter2\n")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    assert read_text_or_none(tmp_path / "notes.txt") == "pass" + "word=hunter2\n"
    assert read_text_or_none(tmp_path / "photo.png") is None


def test_repository_has_no_secrets() -> None:
    files = repository_files(ROOT)
    assert any(p.name == "__main__.py" for p in files) and len(files) > 20
    findings = {}
    for path in files:
        text = read_text_or_none(path)
        if text is not None and (found := find_secrets(text)):
            findings[str(path.relative_to(ROOT))] = [str(f) for f in found]
    assert findings == {}


# ------------------------------------------------------------------------------------------ handler logs

SECRET_ACCESS_KEY = "Q2hlY2tMb2dzRm9yQ3JlZGVudGlhbHMwMTIzNDU2"  # 40 chars, as AWS secret keys are
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFAKE" + "x" * 120


@pytest.mark.parametrize(
    ("log_level", "root_debug"),
    # The root logger at DEBUG is what Lambda's application log level DEBUG sets: botocore then logs the
    # signed canonical request, session token included, unless the handler holds it back.
    [("INFO", False), ("DEBUG", False), ("DEBUG", True)],
)
@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "Image could not be decoded"), (500, "RuntimeError: boom\nTraceback (most recent call last)")],
)
def test_model_error_logs_carry_no_credentials(
    proxy_env: pytest.MonkeyPatch,
    fake_runtime: FakeRuntime,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    log_level: str,
    root_debug: bool,
    status: int,
    message: str,
) -> None:
    """A request the model rejects (ModelError) is logged with its error; the credentials never are."""
    if root_debug:
        caplog.set_level(logging.DEBUG)
    proxy_env.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    proxy_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    proxy_env.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    proxy_env.setenv("LOG_LEVEL", log_level)
    # boto3's default session caches the credentials it resolved first (in an earlier test): the handler's client
    # is built again through the handler's own boto3 name, from a fresh session of its own, so that it really is
    # built from the environment above (boto3.DEFAULT_SESSION reset would be every thread's).
    proxy = load_proxy()
    proxy_env.setattr(proxy, "boto3", names_of(boto3, client=boto3.session.Session().client))
    proxy_env.setattr(proxy, "CLIENT", proxy.build_client(read_timeout=proxy.CONFIG.read_timeout_s))
    fake_runtime.script(model_error_reply(status, message))
    response = proxy.handler(make_event(body=JPEG), FakeLambdaContext())

    assert response["statusCode"] in (400, 502) and len(fake_runtime.seen) == 1
    # The request really was signed with these credentials, so they were in the process to leak.
    assert f"Credential={FAKE_KEY_ID}/" in fake_runtime.seen[0].headers["authorization"]
    out = capsys.readouterr()
    logs = out.out + out.err + caplog.text
    assert "request failed" in logs  # the failure itself is logged...
    for value in (SECRET_ACCESS_KEY, SESSION_TOKEN, SESSION_TOKEN[:32], FAKE_KEY_ID):
        assert value not in logs  # ...without any credential
        assert value not in response["body"]
