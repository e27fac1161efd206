"""Accessibility of the web UI: axe-core in each state a user sees, then by hand what axe cannot judge.

axe-core (the copy axe-playwright-python bundles) runs its WCAG 2.0, 2.1 and 2.2 A and AA rules and its best
practices on the page as it stands: before anything is sent, busy, retrying, with the top 5, beside each kind of
error, in the dark scheme, in forced colours and on a 360 px phone. It is injected with page.evaluate, through the
DevTools protocol, which the page's Content-Security-Policy does not govern: the site keeps the CDN's CSP.

axe checks only part of WCAG and nothing of keyboard use: the second half presses keys, and checks that every
control is reached, shows its focus, classifies on Enter and Space, that the outcome is said in the live region,
and that focus is back on a control afterwards.
"""

from __future__ import annotations

import threading
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from tests.ci import skip_or_fail

pytestmark = pytest.mark.browser

WWW = Path(__file__).resolve().parents[2] / "www"
CHELSEA = WWW / "samples" / "chelsea.jpg"
SAMPLES = [f"samples/{name}.jpg" for name in ("chelsea", "coffee", "astronaut", "rocket")]

# No "wcag22a": axe has no rule for WCAG 2.2's new level A criteria.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations", "incomplete"]}

# Browser context options of each look of the page that the other browser tests emulate too.
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "light": {},
    "dark": {"color_scheme": "dark"},
    "forced-colors": {"forced_colors": "active"},
    "phone-360": {"width": 360, "height": 740},
}

# What axe leaves "incomplete" (needs review) and a person judged, each with the test here that checks what axe
# could not. Any other incomplete fails: judge it, then fix the page or add it here with its reason and check.
REVIEWED_INCOMPLETE = {
    # Chromium paints the enabled Classify button's text in the theme's ButtonText, but still computes
    # -webkit-text-fill-color from the authored colour (--accent-text, white), which axe reads: "1:1, white on the
    # theme's white". test_the_classify_button_is_legible_in_forced_colours measures its pixels instead.
    ("forced-colors", "color-contrast", "#classify-button"),
}

STUB_ERROR = {"error": "internal", "message": "stub failure"}
UNREADABLE = b"this is not a JPEG, just text pretending\n" * 20


@pytest.fixture(scope="module")
def axe() -> Any:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        skip_or_fail(
            "axe-playwright-python is not installed (pip install -r requirements-dev.txt)",
            "CI must install requirements-dev.txt",
        )
    return Axe()


class AxeAudit:
    """Runs axe on one page in each of its states and keeps what it finds, named by state, rule and element."""

    def __init__(self, axe: Any, page: Any, environment: str) -> None:
        self.axe, self.page, self.environment = axe, page, environment
        self.states: list[str] = []
        self.violations: list[str] = []
        self.unreviewed: list[str] = []

    def check(self, state: str) -> None:
        results = self.axe.run(self.page, options=AXE_OPTIONS).response
        self.states.append(state)
        for rule in results["violations"]:
            for node in rule["nodes"]:
                self.violations.append(self._line(state, rule, node))
        for rule in results["incomplete"]:
            for node in rule["nodes"]:
                if (self.environment, rule["id"], ", ".join(node["target"])) not in REVIEWED_INCOMPLETE:
                    self.unreviewed.append(self._line(state, rule, node))

    def _line(self, state: str, rule: dict[str, Any], node: dict[str, Any]) -> str:
        why = "; ".join(check["message"] for check in node["any"] + node["all"] + node["none"])
        return (
            f"[{self.environment}, {state}] {rule['id']} ({rule['impact']}) at {', '.join(node['target'])}: "
            f"{rule['help']}. {why}"
        )

    def assert_clean(self) -> None:
        assert self.states, "axe never ran"
        if self.violations:
            pytest.fail("axe violations:\n" + "\n".join(self.violations), pytrace=False)
        if self.unreviewed:
            pytest.fail(
                "axe needs a person to review these (see REVIEWED_INCOMPLETE):\n" + "\n".join(self.unreviewed),
                pytrace=False,
            )


def relative_luminance(rgb: tuple[int, ...]) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def wait_message(ui: Any, text: str) -> None:
    """Waits until the live region says `text`: a state's name alone may still be the previous one's."""
    ui.page.wait_for_function(
        "(t) => document.getElementById('status').innerText.toLowerCase().includes(t)", arg=text.lower()
    )


def wait_idle(ui: Any) -> None:
    ui.page.wait_for_selector("#classify-form[aria-busy='false']")


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_axe_finds_nothing_in_any_state(make_ui: Any, stub_stack: Any, axe: Any, environment: str) -> None:
    ui = make_ui(stub_stack, **ENVIRONMENTS[environment]).open()
    audit = AxeAudit(axe, ui.page, environment)
    audit.check("before a photo")

    gate = threading.Event()
    stub_stack.script({"status": 200, "gate": gate})
    try:
        ui.click_sample("chelsea")
        wait_message(ui, "Classifying…")
        audit.check("busy")
    finally:
        gate.set()
    ui.wait_done()
    wait_idle(ui)
    audit.check("top 5 shown")

    stub_stack.script({"status": 500, "body": STUB_ERROR})
    ui.click_sample("rocket")
    wait_message(ui, "internal error")
    wait_idle(ui)
    audit.check("API error")

    ui.page.route("**/predict*", lambda route: route.abort("internetdisconnected"))
    ui.click_sample("astronaut")
    wait_message(ui, "Cannot reach the API")
    wait_idle(ui)
    audit.check("network failure")
    ui.page.unroute("**/predict*")

    ui.upload_bytes("notes.jpg", "image/jpeg", UNREADABLE)
    wait_message(ui, "could not open the file")
    wait_idle(ui)
    audit.check("file refused")

    # Last, and the page closed after it: the retry waits the 8 s asked for, which nothing here needs to see.
    stub_stack.script({"status": 503, "body": {"error": "warming", "message": "x"}, "headers": {"retry-after": "8"}})
    ui.click_sample("coffee")
    ui.wait_state("retrying")
    audit.check("retrying")
    ui.page.close()

    audit.assert_clean()


def test_axe_finds_nothing_on_an_unconfigured_page(page: Any, stub_ui: Any, axe: Any) -> None:
    # A deployment without config.js: the error, with every control disabled.
    page.route("**/config.js", lambda route: route.fulfill(status=200, body="", content_type="text/javascript"))
    ui = stub_ui.open()
    assert ui.page.get_attribute("#status", "data-state") == "error"
    audit = AxeAudit(axe, ui.page, "light")
    audit.check("not configured")
    audit.assert_clean()


def test_the_classify_button_is_legible_in_forced_colours(make_ui: Any, stub_stack: Any) -> None:
    # What REVIEWED_INCOMPLETE says axe cannot tell: the text's pixels against the button's, inside its border.
    from PIL import Image

    ui = make_ui(stub_stack, forced_colors="active").open()
    ui.click_sample("chelsea")
    ui.wait_done()
    wait_idle(ui)
    ui.page.mouse.move(0, 0)  # no hover colour
    box = ui.page.locator("#classify-button").bounding_box()
    assert box is not None
    inset = 3  # the 1 px theme border, and its antialiasing
    clip = {
        "x": box["x"] + inset,
        "y": box["y"] + inset,
        "width": box["width"] - 2 * inset,
        "height": box["height"] - 2 * inset,
    }
    with Image.open(BytesIO(ui.page.screenshot(clip=clip))) as shot:
        levels = shot.convert("L").getextrema()
    ratio = contrast((levels[0],) * 3, (levels[1],) * 3)
    assert ratio >= 4.5, f"the Classify label is {ratio:.2f}:1 against its button in forced colours"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_file_pickers_text_has_contrast(make_ui: Any, stub_stack: Any, scheme: str) -> None:
    # Text axe cannot see, as the browser draws it, not the page: the picker button's label (::file-selector-button)
    # on its fill, and the chosen file's name on the card. WCAG 1.4.3, from the computed colours.
    ui = make_ui(stub_stack, color_scheme=scheme).open()
    colours = ui.page.eval_on_selector(
        "#file-input",
        """(e) => {
            const rgb = (c) => (c.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
            const button = getComputedStyle(e, "::file-selector-button");
            return { label: rgb(button.color), fill: rgb(button.backgroundColor),
                     name: rgb(getComputedStyle(e).color), card: rgb(getComputedStyle(e.form).backgroundColor) };
        }""",
    )
    button = contrast(tuple(colours["label"]), tuple(colours["fill"]))
    name = contrast(tuple(colours["name"]), tuple(colours["card"]))
    assert button >= 4.5 and name >= 4.5, f"button label {button:.2f}:1, file name {name:.2f}:1 ({colours})"


# --------------------------------------------------------------------------------------------------
# By hand: the keyboard

FOCUSED = """() => {
    const e = document.activeElement;
    const s = getComputedStyle(e);
    // The outline is drawn outside the element, on the first ancestor that paints a background.
    let behind = e.parentElement;
    while (behind && getComputedStyle(behind).backgroundColor.replace(/\\s/g, "").match(/^rgba\\(.*,0\\)$|transparent/))
        behind = behind.parentElement;
    const rgb = (c) => (c.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
    return {
        name: e === document.body
            ? "<body>"
            : e.id || e.dataset.src || `${e.tagName.toLowerCase()}[href=${e.getAttribute("href")}]`,
        focusVisible: e.matches(":focus-visible"),
        outline: { style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: rgb(s.outlineColor) },
        boxShadow: s.boxShadow,
        behind: rgb(getComputedStyle(behind || document.documentElement).backgroundColor),
    };
}"""

LISTEN = """() => {
    // What the live region says, in order, and whether anything kept it from being read out at that moment.
    window.__said = [];
    const status = document.getElementById("status");
    new MutationObserver(() => window.__said.push({
        text: status.innerText.trim(),
        muted: Boolean(status.closest("[aria-hidden='true'], [aria-busy='true'], [hidden]")),
    })).observe(status, { subtree: true, childList: true, characterData: true });
}"""


def focused(ui: Any) -> dict[str, Any]:
    return ui.page.evaluate(FOCUSED)


def said(ui: Any) -> list[dict[str, Any]]:
    return ui.page.evaluate("() => window.__said")


@pytest.mark.parametrize("environment", ["light", "dark", "forced-colors"])
def test_tab_reaches_every_control_in_order_with_a_visible_focus(
    make_ui: Any, stub_stack: Any, environment: str
) -> None:
    ui = make_ui(stub_stack, **ENVIRONMENTS[environment]).open()
    ui.click_sample("chelsea")  # a photo, so Classify is enabled too
    ui.wait_done()
    wait_idle(ui)
    ui.page.click("h1")  # Tab now starts from the top of the page
    seen = []
    for _ in range(7):
        ui.page.keyboard.press("Tab")
        seen.append(focused(ui))
    names = [f["name"] for f in seen]
    assert names == ["file-input", "classify-button", *SAMPLES, "a[href=samples/ATTRIBUTION.md]"], names
    for f in seen:
        assert f["focusVisible"], f"{f['name']} does not match :focus-visible after Tab"
        ring = (f["outline"]["style"] != "none" and f["outline"]["width"] >= 2) or f["boxShadow"] != "none"
        assert ring, f"{f['name']} has no focus outline or box-shadow: {f}"
        if environment != "forced-colors":  # there the theme's own colours are the user's choice
            ratio = contrast(tuple(f["outline"]["color"]), tuple(f["behind"]))
            assert ratio >= 3, f"{f['name']}'s focus outline is {ratio:.2f}:1 against what is behind it (WCAG 1.4.11)"


def answer_the_file_picker(ui: Any, files: Any) -> None:
    """Answers the next file picker with `files`. Registered before the page opens: Playwright starts intercepting
    pickers when the first listener is added, without waiting, and Enter (which opens it on key down, unlike Space
    on key up) then sometimes beat it, even on a bare page with nothing but a file input."""
    ui.page.once("filechooser", lambda chooser: chooser.set_files(files))


def assert_heard(changes: list[dict[str, Any]]) -> None:
    muted = [change["text"] for change in changes if change["muted"]]
    assert not muted, f"the live region changed inside an aria-busy, aria-hidden or hidden element: {muted}"


def assert_focus_back_on(ui: Any, control: str) -> None:
    after = focused(ui)
    assert after["name"] != "<body>", "focus was lost (on <body>) after the request"
    assert after["name"] == control.lstrip("#") or control.endswith(f"'{after['name']}']"), after
    assert after["focusVisible"], f"focus is back on {control}, but not shown"


def press(ui: Any, selector: str, key: str) -> None:
    """Focuses `selector`, as Tab would (its focus shown), and presses `key`."""
    ui.page.focus(selector)
    assert focused(ui)["focusVisible"]
    ui.page.keyboard.press(key)


SAMPLE_BUTTON = "button.sample[data-src='samples/coffee.jpg']"


@pytest.mark.parametrize("key", ["Enter", "Space"])
@pytest.mark.parametrize("control", ["#file-input", "#classify-button", SAMPLE_BUTTON])
def test_enter_and_space_classify_announce_the_result_and_keep_focus(
    stub_ui: Any, stub_stack: Any, control: str, key: str
) -> None:
    if control == "#file-input":
        answer_the_file_picker(stub_ui, str(CHELSEA))
    ui = stub_ui.open()
    if control == "#classify-button":  # it sends the photo chosen before
        ui.upload(CHELSEA)
        ui.wait_done()
        wait_idle(ui)
        stub_stack.reset()
    ui.page.evaluate(LISTEN)
    press(ui, control, key)
    ui.page.wait_for_function("() => window.__said.some((s) => s.text.startsWith('Done:'))")
    wait_idle(ui)
    assert len(stub_stack.predict_requests()) == 1
    texts = [s["text"] for s in said(ui)]
    assert "Classifying…" in texts and texts[-1] == "Done: most likely stub label one (62.0%).", texts
    assert_heard(said(ui))
    assert_focus_back_on(ui, control)


@pytest.mark.parametrize("failure", ["API error", "network failure", "file refused"])
def test_errors_are_announced_and_focus_stays_on_the_control(stub_ui: Any, stub_stack: Any, failure: str) -> None:
    ui = stub_ui
    if failure == "file refused":
        answer_the_file_picker(ui, [{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": UNREADABLE}])
    ui.open()
    if failure == "API error":
        stub_stack.script({"status": 500, "body": STUB_ERROR})
        control, expected = SAMPLE_BUTTON, "The server hit an internal error: stub failure"
    elif failure == "network failure":
        ui.upload(CHELSEA)
        ui.wait_done()
        wait_idle(ui)
        ui.page.route("**/predict*", lambda route: route.abort("internetdisconnected"))
        control, expected = "#classify-button", "Cannot reach the API"
    else:
        control, expected = "#file-input", "could not open the file"
    ui.page.evaluate(LISTEN)
    press(ui, control, "Enter")
    ui.page.wait_for_function("(t) => window.__said.some((s) => s.text.includes(t))", arg=expected)
    wait_idle(ui)
    assert ui.page.get_attribute("#status", "data-state") == "error"
    assert_heard(said(ui))
    assert_focus_back_on(ui, control)
