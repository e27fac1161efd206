"""The web UI against `live_stack`: the real local stack with the real MobileNet V2 behind it.

Every test drives the whole page flow, then checks what only the real model can answer (is it a cat?).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.ci import require_ipv6_loopback
from tests.conftest import LocalStack

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SAMPLES = Path(__file__).resolve().parents[2] / "www" / "samples"
CHELSEA = SAMPLES / "chelsea.jpg"
# ImageNet's domestic and wild cat classes; which one MobileNet picks for Chelsea varies with resizing.
CAT_WORDS = ("cat", "tabby", "lynx", "persian", "siamese")


def is_cat(label: str) -> bool:
    return any(word in label.lower() for word in CAT_WORDS)


def test_upload_cat_photo_top_result_is_a_cat(live_ui: Any, artifacts_dir: Path) -> None:
    ui = live_ui.open()
    ui.upload(CHELSEA)
    ui.wait_done()
    labels = ui.labels()
    assert len(labels) == 5
    assert "Round trip" in ui.page.inner_text("#timing")
    ui.screenshot(artifacts_dir / "ui-result.png")
    assert is_cat(labels[0]), f"top result for the cat photo is {labels[0]!r}; all: {labels}"


def test_result_on_a_360px_phone(make_ui: Any, live_stack: Any, artifacts_dir: Path) -> None:
    ui = make_ui(live_stack, width=360, height=740).open()
    ui.click_sample("chelsea")
    ui.wait_done()
    width = ui.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"page is {width}px wide on a 360px screen"
    ui.screenshot(artifacts_dir / "ui-result-360.png")
    assert is_cat(ui.labels()[0])


def test_espresso_sample_button_shows_espresso(live_ui: Any) -> None:
    ui = live_ui.open()
    ui.click_sample("coffee")
    ui.wait_done()
    labels = ui.labels()
    assert len(labels) == 5
    # Top 3, not top 1: "cup" and "coffee mug" are fair neighbours for a cup seen from above.
    assert any("espresso" in label.lower() for label in labels[:3]), labels


def test_drag_and_drop_cat_photo(live_ui: Any) -> None:
    ui = live_ui.open()
    ui.drop(CHELSEA)
    ui.wait_done()
    labels = ui.labels()
    assert len(labels) == 5
    assert is_cat(labels[0]), labels


def test_non_image_file_shows_error_and_sends_nothing(live_ui: Any, not_an_image: Path) -> None:
    ui = live_ui.open()
    sent = ui.capture_uploads()
    ui.upload(not_an_image)
    assert "could not open the file" in ui.wait_error()
    assert sent == []


def test_12mp_photo_sends_at_most_60kb_and_still_classifies(live_ui: Any, photo_12mp: Path) -> None:
    assert photo_12mp.stat().st_size > 1_000_000, "the fixture must really be a heavy phone photo"
    ui = live_ui.open()
    body = ui.sent_for(photo_12mp)
    assert len(body) <= 60 * 1024, f"sent {len(body)} bytes for a 12-MP photo"
    assert min(ui.jpeg_size(body)) == 256
    assert is_cat(ui.labels()[0]), ui.labels()


def test_the_page_classifies_when_opened_as_localhost(make_ui: Any, live_stack: Any) -> None:
    # The API stays at 127.0.0.1, another origin than the page's: the CSP must name it, not 'self'.
    page_url = live_stack.url.replace("127.0.0.1", "localhost")
    ui = make_ui(SimpleNamespace(url=page_url)).open()
    ui.click_sample("chelsea")
    ui.wait_done()
    assert is_cat(ui.labels()[0])


def test_the_page_classifies_when_reached_at_an_ipv6_address(make_ui: Any, artifact: Any) -> None:
    # An IPv6 literal cannot appear in a CSP source list; a page that named its own API by address was blocked.
    require_ipv6_loopback()
    stack = LocalStack("--host", "::1")
    try:
        assert stack.url.startswith("http://[::1]:")
        ui = make_ui(stack).open()
        ui.click_sample("chelsea")
        ui.wait_done()
        assert is_cat(ui.labels()[0])
    finally:
        stack.stop()
