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
    # Text axe may not judge: the picker's label drawn as a button, on its fill, and the chosen file's name on the
    # card. WCAG 1.4.3, from the computed colours.
    ui = make_ui(stub_stack, color_scheme=scheme).open()
    ui.upload(CHELSEA)
    ui.wait_done()
    colours = ui.page.evaluate(
        """() => {
            const rgb = (c) => (c.match(/[\\d.]+/g) || []).slice(0, 3).map(Number);
            const button = getComputedStyle(document.querySelector("label[for=file-input]"));
            const form = document.getElementById("classify-form");
            return { label: rgb(button.color), fill: rgb(button.backgroundColor),
                     name: rgb(getComputedStyle(document.getElementById("file-chosen")).color),
                     card: rgb(getComputedStyle(form).backgroundColor),
                     page: rgb(getComputedStyle(document.body).backgroundColor) };
        }""",
    )
    button = contrast(tuple(colours["label"]), tuple(colours["fill"]))
    name = contrast(tuple(colours["name"]), tuple(colours["card"]))
    assert button >= 4.5 and name >= 4.5, f"button label {button:.2f}:1, file name {name:.2f}:1 ({colours})"
    # In the scheme asked for: a dark page where a light one was asked for had its contrast too.
    assert (relative_luminance(tuple(colours["page"])) > 0.5) == (scheme == "light"), colours


# --------------------------------------------------------------------------------------------------
# By hand: the keyboard

FOCUSED = """() => {
    const e = document.activeElement;
    // The file input is hidden to the eye (its label is the button that is seen): its focus shows on its label.
    const box = e.getBoundingClientRect();
    const shown = box.width <= 1 && box.height <= 1 && e.labels && e.labels.length ? e.labels[0] : e;
    const s = getComputedStyle(shown);
    // The outline is drawn outside the element, on the first ancestor that paints a background.
    let behind = shown.parentElement;
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
    ui.page.wait_for_function("() => window.__said.some((s) => s.text.startsWith('Most likely:'))")
    wait_idle(ui)
    assert len(stub_stack.predict_requests()) == 1
    texts = [s["text"] for s in said(ui)]
    assert "Classifying…" in texts and texts[-1] == "Most likely: stub label one (62.0%).", texts
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


def test_each_step_of_a_retried_request_is_announced_once_in_order(stub_ui: Any, stub_stack: Any) -> None:
    # The errors and the result are announced (above); so must be what comes between them when the model is busy: the
    # wait before the next try, and that try, each once, in the order they happen, and none inside aria-busy.
    stub_stack.script(
        {"status": 429, "body": {"error": "throttled", "message": "busy"}, "headers": {"Retry-After": "1"}}
    )
    ui = stub_ui.open()
    ui.page.evaluate(LISTEN)
    press(ui, SAMPLE_BUTTON, "Enter")
    ui.page.wait_for_function("() => window.__said.some((s) => s.text.startsWith('Most likely:'))")
    wait_idle(ui)
    texts = [" ".join(s["text"].split()) for s in said(ui)]
    expected = [
        "Shrinking the photo…",
        "Classifying…",
        "The model is busy, retrying in",
        "Try 2 of 4…",
        "Most likely: stub label one (62.0%).",
    ]
    assert len(texts) == len(expected) and all(t.startswith(e) for t, e in zip(texts, expected, strict=True)), texts
    assert_heard(said(ui))
    assert_focus_back_on(ui, SAMPLE_BUTTON)


# --------------------------------------------------------------------------------------------------
# The file picker: its label is the button that is seen (WCAG 2.5.3, Label in Name)

PICKER = "#file-input"
PICKER_LABEL = "label[for=file-input]"


def accessibility_node(ui: Any, selector: str) -> dict[str, str]:
    """Chromium's own role, accessible name, description and value of `selector`: what a screen reader is given."""
    cdp = ui.page.context.new_cdp_session(ui.page)
    try:
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        ax = cdp.send("Accessibility.getPartialAXTree", {"nodeId": node, "fetchRelatives": False})["nodes"][0]
    finally:
        cdp.detach()
    keys = ("role", "name", "description", "value")
    return {key: " ".join(str(ax.get(key, {}).get("value", "")).split()) for key in keys}


def test_the_file_pickers_visible_text_is_its_accessible_name(stub_ui: Any) -> None:
    # The browser drew its own button, "Choose File" in the browser's language, which is no part of the input's name
    # (its label's text): a speech user saying what they saw ("click Choose File") was not understood. The input is
    # now hidden to the eye and its label is the button seen, so what is seen is what the control is called.
    ui = stub_ui.open()
    box = ui.page.locator(PICKER).bounding_box()
    assert box is not None and box["width"] <= 1 and box["height"] <= 1, f"the browser's own button shows: {box}"
    label = ui.page.locator(PICKER_LABEL)
    visible = " ".join(label.inner_text().split())
    assert visible == "Choose a photo"
    # What a pointer lands on at the button is the label, whose click opens the picker.
    centre = label.bounding_box()
    assert centre is not None
    hit = ui.page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).htmlFor",
        [centre["x"] + centre["width"] / 2, centre["y"] + centre["height"] / 2],
    )
    assert hit == "file-input"
    node = accessibility_node(ui, PICKER)
    assert node["role"] == "button" and visible in node["name"], node
    assert ui.page.get_by_role("button", name=visible).evaluate_all("(els) => els.map((e) => e.id)") == ["file-input"]


def test_a_click_on_the_pickers_label_opens_the_picker(stub_ui: Any, stub_stack: Any) -> None:
    answer_the_file_picker(stub_ui, str(CHELSEA))
    ui = stub_ui.open()
    ui.page.click(PICKER_LABEL)
    ui.wait_done()
    assert len(stub_stack.predict_requests()) == 1


@pytest.mark.parametrize("key", ["Enter", "Space"])
def test_tab_reaches_the_file_picker_and_the_keyboard_picks_a_file(stub_ui: Any, stub_stack: Any, key: str) -> None:
    # The native control said which file it held, beside its button, and a screen reader read it out; hidden, the
    # page shows the name as its own text, and a screen reader still hears it as the input's value.
    answer_the_file_picker(stub_ui, str(CHELSEA))  # before the page opens: expect_file_chooser raced the key
    ui = stub_ui.open()
    nothing = accessibility_node(ui, PICKER)["value"]
    assert "chelsea" not in nothing
    ui.page.click("h1")
    ui.page.keyboard.press("Tab")
    assert focused(ui)["name"] == "file-input"
    ui.page.keyboard.press(key)
    ui.wait_done()
    wait_idle(ui)
    assert len(stub_stack.predict_requests()) == 1
    assert ui.page.inner_text("#file-chosen") == "Chosen: chelsea.jpg"
    assert accessibility_node(ui, PICKER)["value"] == "chelsea.jpg"
    # Still a form control: the form holds the file under the input's name.
    held = ui.page.evaluate("() => new FormData(document.getElementById('classify-form')).get('image').name")
    assert held == "chelsea.jpg"
    assert focused(ui)["name"] == "file-input", "focus is back on the picker"


# The picker's description: what it offers besides, each a sentence of its own, and never the photo's name, which
# its value says (the line under the button is hidden from screen readers but for a sample, which it then names).
PICKER_DESCRIPTION = (
    "or drop one here, or paste one (Ctrl+V). Any photo this browser can open (JPEG, PNG, WebP…). "
    "Large phone photos are fine."
)
HELD_BY_THE_FORM = "() => new FormData(document.getElementById('classify-form')).get('image').name"
# The file each way of giving one to the page gives, by the UiDriver's method for it ("upload" is the picker).
GIVEN = {"upload": "picked.jpg", "drop": "dropped.jpg", "paste": "pasted.jpg"}


@pytest.mark.parametrize(
    "path", ["upload", "drop", "paste", "sample", "refused upload", "refused drop", "refused paste", "emptied picker"]
)
def test_the_pickers_value_names_the_photo_classify_sends_and_its_description_does_not_repeat_it(
    stub_ui: Any, stub_stack: Any, path: str
) -> None:
    # A screen reader heard the picker's value (the browser's "No file chosen", or the file it held) and then its
    # description, which began with the line under the button: "No photo chosen or drop one here..." run together,
    # "chelsea.jpg ... Chosen: chelsea.jpg" said twice, and after a drop, a paste or a sample, which emptied the
    # picker, "No file chosen ... Chosen: coffee.jpg". A drop or a paste now puts its file in the picker, as a pick
    # does; a sample, whose file the page does not have, leaves it empty and is named by the description.
    ui = stub_ui.open()
    nothing = accessibility_node(ui, PICKER)
    assert nothing["description"] == PICKER_DESCRIPTION, nothing
    # "No photo chosen" under the button is not read after the picker's own "No file chosen".
    assert ui.page.get_attribute("#file-chosen", "aria-hidden") == "true"
    # Another photo first: a drop, a paste, a sample or a refusal must not leave the picker naming it.
    ui.upload_bytes("earlier.jpg", "image/jpeg", CHELSEA.read_bytes())
    ui.wait_done()
    wait_idle(ui)
    way = path.removeprefix("refused ")
    photo = UNREADABLE if path.startswith("refused") else CHELSEA.read_bytes()
    if way in GIVEN:
        getattr(ui, f"{way}_bytes")(GIVEN[way], "image/jpeg", photo)
    elif path == "sample":
        ui.click_sample("coffee")
    else:
        ui.page.set_input_files(PICKER, [])
    if path != "emptied picker":
        ui.wait_state("done", "error")
    wait_idle(ui)
    node = accessibility_node(ui, PICKER)
    held = ui.page.evaluate(HELD_BY_THE_FORM)
    chosen = ui.page.inner_text("#file-chosen")
    if path in GIVEN:
        name = GIVEN[path]
        assert ui.page.get_attribute("#status", "data-state") == "done"
        assert (node["value"], node["description"], held) == (name, PICKER_DESCRIPTION, name), node
        assert chosen == f"Chosen: {name}", "the name stays on screen"
        # Put in the picker by the page, the file is not taken for a new pick: classified once, not shrunk again.
        assert len(stub_stack.predict_requests()) == 2
        assert ui.status_text() == "Most likely: stub label one (62.0%)."
    elif path == "sample":
        assert node["value"] == nothing["value"], "the picker holds no file: it must not name the one sent before"
        assert node["description"] == f"{PICKER_DESCRIPTION} Sample chosen: coffee.jpg", node
        assert held == "" and chosen == "Sample chosen: coffee.jpg"
    else:
        assert ui.page.get_attribute("#status", "data-state") == ("idle" if path == "emptied picker" else "error")
        assert (node["value"], node["description"], held) == (nothing["value"], PICKER_DESCRIPTION, ""), node
        assert chosen == "No photo chosen"
    # The line under the button is read out only where it says what the value does not.
    hidden = ui.page.get_attribute("#file-chosen", "aria-hidden")
    assert hidden == ("false" if path == "sample" else "true"), hidden


def test_where_the_picker_cannot_be_given_a_file_a_drop_is_named_by_the_description(
    stub_ui: Any, stub_stack: Any
) -> None:
    # An engine whose file input's `files` cannot be set (before Safari 14.1 a page cannot make a FileList either):
    # a drop is classified as before, the picker emptied rather than left naming another photo, and the line under
    # the button, naming what is sent, is read out.
    ui = stub_ui
    ui.page.add_init_script("""Object.defineProperty(HTMLInputElement.prototype, "files", { set: undefined });""")
    ui.open()
    nothing = accessibility_node(ui, PICKER)
    ui.upload_bytes("earlier.jpg", "image/jpeg", CHELSEA.read_bytes())
    ui.wait_done()
    wait_idle(ui)
    ui.drop_bytes("dropped.jpg", "image/jpeg", CHELSEA.read_bytes())
    ui.wait_state("done", "error")
    wait_idle(ui)
    assert ui.status_text() == "Most likely: stub label one (62.0%)."
    assert len(stub_stack.predict_requests()) == 2
    node = accessibility_node(ui, PICKER)
    assert node["value"] == nothing["value"] and ui.page.evaluate(HELD_BY_THE_FORM) == "", node
    assert node["description"] == f"{PICKER_DESCRIPTION} Chosen: dropped.jpg", node
    assert ui.page.get_attribute("#file-chosen", "aria-hidden") == "false"


LABEL_RING = """() => {
    const s = getComputedStyle(document.querySelector("label[for=file-input]"));
    return { outline: s.outlineStyle === "none" ? 0 : parseFloat(s.outlineWidth), boxShadow: s.boxShadow };
}"""


@pytest.mark.parametrize("environment", ["light", "dark", "forced-colors"])
def test_the_pickers_focus_shows_on_its_label(make_ui: Any, stub_stack: Any, environment: str) -> None:
    # The focused input is clipped to nothing, its outline with it: the ring is drawn on the label it is shown by.
    from PIL import Image, ImageChops

    ui = make_ui(stub_stack, **ENVIRONMENTS[environment]).open()
    label = ui.page.locator(PICKER_LABEL)
    box = label.bounding_box()
    assert box is not None
    around = {"x": box["x"] - 8, "y": box["y"] - 8, "width": box["width"] + 16, "height": box["height"] + 16}
    ui.page.click("h1")
    assert ui.page.evaluate(LABEL_RING) == {"outline": 0, "boxShadow": "none"}, "a ring without focus"
    unfocused = ui.page.screenshot(clip=around)
    ui.page.keyboard.press("Tab")
    assert focused(ui)["name"] == "file-input" and focused(ui)["focusVisible"]
    ring = ui.page.evaluate(LABEL_RING)
    assert ring["outline"] >= 2 or ring["boxShadow"] != "none", ring
    # Drawn, not only computed: the pixels around the button change.
    with Image.open(BytesIO(unfocused)) as before, Image.open(BytesIO(ui.page.screenshot(clip=around))) as after:
        diff = ImageChops.difference(before.convert("L"), after.convert("L"))
        assert diff.point(lambda level: 255 if level > 64 else 0).getbbox() is not None, "no ring on screen"


def picker_looks(ui: Any) -> dict[str, Any]:
    return ui.page.eval_on_selector(
        PICKER_LABEL,
        """(label) => { const s = getComputedStyle(label);
            return { cursor: s.cursor, opacity: Number(s.opacity), color: s.color, border: s.borderTopColor }; }""",
    )


@pytest.mark.parametrize("environment", ["light", "forced-colors"])
def test_the_picker_looks_and_acts_disabled_while_busy(make_ui: Any, stub_stack: Any, environment: str) -> None:
    ui = make_ui(stub_stack, **ENVIRONMENTS[environment]).open()
    idle = picker_looks(ui)
    choosers: list[Any] = []
    ui.page.on("filechooser", lambda chooser: choosers.append(chooser))
    gate = threading.Event()
    stub_stack.script({"status": 200, "gate": gate})
    try:
        ui.click_sample("chelsea")
        wait_message(ui, "Classifying…")
        assert ui.page.is_disabled(PICKER)
        busy = picker_looks(ui)
        assert busy["cursor"] == "not-allowed", busy
        assert busy["opacity"] < 1 or busy["color"] != idle["color"], f"looks the same busy: {busy} vs {idle}"
        ui.page.click(PICKER_LABEL, force=True)  # force: Playwright would wait for the input to be enabled
    finally:
        gate.set()
    ui.wait_done()
    wait_idle(ui)
    assert picker_looks(ui) == idle
    # A chooser the busy click had opened would have come first.
    with ui.page.expect_file_chooser():
        ui.page.click(PICKER_LABEL)
    assert len(choosers) == 1, "the picker opened while the page was busy"
    assert len(stub_stack.predict_requests()) == 1


def test_the_picker_keeps_a_visible_edge_in_forced_colours(make_ui: Any, stub_stack: Any) -> None:
    # Contrast themes replace backgrounds: a button drawn only by its fill, as the label is, would be bare text.
    from PIL import Image

    ui = make_ui(stub_stack, forced_colors="active").open()
    label = ui.page.locator(PICKER_LABEL)
    edge = label.evaluate("(e) => { const s = getComputedStyle(e); return [s.borderLeftStyle, s.borderLeftWidth]; }")
    assert edge[0] != "none" and edge[1] != "0px", edge
    box = label.bounding_box()
    assert box is not None
    middle = round(box["y"] + box["height"] / 2)
    left = round(box["x"])
    row = {"x": left - 4, "y": middle, "width": 8, "height": 1}  # 4 px of card, then the label's left edge
    with Image.open(BytesIO(ui.page.screenshot(clip=row))) as shot:
        pixels = [shot.convert("RGB").getpixel((x, 0)) for x in range(8)]
    best = max(contrast(pixels[0], p) for p in pixels[3:6])
    assert best >= 3, f"the picker's edge is {best:.2f}:1 against the card in forced colours: {pixels}"


def test_the_bars_do_not_move_where_less_motion_is_asked_for(make_ui: Any, stub_stack: Any) -> None:
    # WCAG 2.3.3: a system set to reduce motion gets the bars at their width at once, not growing to it.
    ui = make_ui(stub_stack, reduced_motion="reduce").open()
    ui.click_sample("chelsea")
    ui.wait_done()
    durations = ui.page.eval_on_selector_all(
        "#predictions .bar-fill", "(bars) => bars.map((b) => getComputedStyle(b).transitionDuration)"
    )
    assert durations == ["0s"] * 5, durations
