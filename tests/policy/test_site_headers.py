"""The security headers the browser gets: the local stack's match CloudFront's response headers policy."""

from __future__ import annotations

import re

import httpx
import pytest

from local.server import SECURITY_HEADERS
from tests.conftest import ROOT
from tests.policy import rules
from tests.policy.graph import Graph

ONE_YEAR_S = 365 * 24 * 3600


def cloudfront_headers(config: dict) -> dict[str, str]:
    """The header values CloudFront emits for a ResponseHeadersPolicy securityHeadersConfig."""
    hsts = config["strictTransportSecurity"]
    value = f"max-age={int(hsts['accessControlMaxAgeSec'])}"
    value += "; includeSubDomains" if hsts.get("includeSubdomains") else ""
    value += "; preload" if hsts.get("preload") else ""
    return {
        "strict-transport-security": value,
        "x-content-type-options": "nosniff",
        "x-frame-options": config["frameOptions"]["frameOption"],
        "referrer-policy": config["referrerPolicy"]["referrerPolicy"],
    }


def test_local_stack_adds_the_same_headers_as_cloudfront(graph: Graph) -> None:
    [policy] = graph.of_type(rules.HEADERS_POLICY)
    custom = {item["header"].lower(): item["value"] for item in policy.inputs["customHeadersConfig"]["items"]}
    assert {**cloudfront_headers(dict(policy.inputs["securityHeadersConfig"])), **custom} == SECURITY_HEADERS


def test_csp_checker_rejects_weak_policies() -> None:
    api = "https://abc.execute-api.us-east-1.amazonaws.com"
    good = f"default-src 'self'; connect-src {api}; frame-ancestors 'none'; object-src 'none'"
    assert rules.csp_problems(good, api) == []
    assert rules.csp_problems(good.replace(f"connect-src {api}", f"connect-src {api} https:"), api)
    assert rules.csp_problems(good.replace("frame-ancestors 'none'", "frame-ancestors *"), api)
    assert rules.csp_problems(good + "; script-src 'self' 'unsafe-inline'", api)
    # A third-party script, stylesheet or tracking pixel, or a script from a data: URL.
    assert rules.csp_problems(good + "; script-src 'self' https://cdn.jsdelivr.net", api)
    assert rules.csp_problems(good + "; script-src 'self' data:", api)
    assert rules.csp_problems(good + "; style-src 'self' https://fonts.googleapis.com", api)
    assert rules.csp_problems(good + "; img-src 'self' data: blob: https://tracker.example", api)
    assert rules.csp_problems(good + "; base-uri https://evil.example", api)
    assert rules.csp_problems(good + "; img-src 'self' data: blob:; base-uri 'self'; form-action 'self'", api) == []
    # A second API-like origin in connect-src: only the exact-list check sees it (connect-src names origins).
    other = "https://other.example"
    assert rules.csp_problems(good.replace(f"connect-src {api}", f"connect-src {api} {other}"), api) == [
        f"connect-src = [{api!r}, {other!r}], must be exactly [{api!r}]"
    ]
    # A required directive left out: nothing else in the policy is wrong.
    for directive in ("frame-ancestors 'none'", "object-src 'none'", "default-src 'self'"):
        name, want = directive.split()
        assert rules.csp_problems(good.replace(directive, ""), api) == [f"{name} = None, must be [{want!r}]"]


def test_permissions_policy_checker_rejects_weak_policies() -> None:
    good = ", ".join(f"{name}=()" for name in rules.DENIED_FEATURES)
    assert rules.permissions_policy_problems(good) == []
    assert rules.permissions_policy_problems(good + ", fullscreen=()") == []
    assert rules.permissions_policy_problems("") != []
    assert rules.permissions_policy_problems(good.replace("camera=()", "camera=(self)"))
    assert rules.permissions_policy_problems(good.replace("camera=()", "camera=*"))
    assert rules.permissions_policy_problems(good.replace("microphone=()", "microphone"))
    assert rules.permissions_policy_problems(good.replace("geolocation=(), ", ""))
    assert rules.permissions_policy_problems(good + ', fullscreen=(self "https://evil.example")')
    # Written out, not read from rules: each feature the rule must require, left out in turn.
    features = ("camera", "clipboard-read", "display-capture", "geolocation", "hid")
    features += ("microphone", "midi", "payment", "serial", "usb")
    for feature in features:
        without = ", ".join(f"{name}=()" for name in features if name != feature)
        assert rules.permissions_policy_problems(without) == [f"{feature} is not named, must be {feature}=()"]


def hsts_max_age(value: str) -> int:
    match = re.search(r"max-age=(\d+)", value)
    assert match, value
    return int(match.group(1))


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/", "/index.html", "/script.js", "/style.css"])
def test_local_site_responses_carry_the_security_headers(live_stack, path: str) -> None:
    response = httpx.get(f"{live_stack.url}{path}", timeout=60)
    assert response.status_code == 200
    headers = response.headers
    assert headers.get("x-frame-options") == "DENY", path
    assert headers.get("referrer-policy") in rules.SAFE_REFERRER_POLICIES, path
    hsts = headers.get("strict-transport-security", "")
    assert hsts_max_age(hsts) >= ONE_YEAR_S and "includesubdomains" in hsts.lower(), path
    # Locally the site and the API share one origin, so connect-src is exactly 'self' (which, unlike the
    # origin itself, also holds for a stack reached at an IPv6 literal).
    assert rules.csp_problems(headers.get("content-security-policy", ""), "'self'") == [], path
    assert rules.permissions_policy_problems(headers.get("permissions-policy", "")) == [], path
    assert {name: headers.get(name) for name in rules.ISOLATION_HEADERS} == rules.ISOLATION_HEADERS, path


@pytest.mark.integration
def test_local_config_js_carries_the_security_headers(live_stack) -> None:
    """CloudFront applies the headers policy to /config.js too (its cache behaviour names it)."""
    headers = httpx.get(f"{live_stack.url}/config.js", timeout=60).headers
    missing = [name for name in SECURITY_HEADERS if name not in headers]
    assert missing == [], f"/config.js lacks {missing}"


# The CDN CSP has no unsafe-inline: anything inline in the page would be blocked.
def test_index_html_has_no_inline_script_or_style() -> None:
    html = (ROOT / "www" / "index.html").read_text()
    assert "<style" not in html
    assert " style=" not in html
    assert "<script>" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "no inline event handlers"


# Markup or code built from strings: a label, message or file name from the API or the user would run or become
# elements through any of these (the page renders text with textContent). The CSP's script-src 'self' blocks an
# injected <script> or handler, not the markup itself (a <form>, a <base>, an <img> that leaks a URL).
DOM_SINKS = re.compile(
    r"\.(?:inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|\bFunction\s*\("
    r"|set(?:Timeout|Interval)\s*\(\s*['\"`]|srcdoc|createContextualFragment|parseFromString|javascript:"
    r"|\blocation(?:\.href)?\s*=(?!=)"
)


def test_script_js_builds_no_markup_or_code_from_strings() -> None:
    script = (ROOT / "www" / "script.js").read_text()
    found = [(number, line.strip()) for number, line in enumerate(script.splitlines(), 1) if DOM_SINKS.search(line)]
    assert found == []
    for sink in ("el.innerHTML = s", "x.insertAdjacentHTML('beforeend', s)", "setTimeout('go()', 1)", "location = u"):
        assert DOM_SINKS.search(sink), sink
    assert not DOM_SINKS.search("if (location.href === base.href) label.textContent = text;")
