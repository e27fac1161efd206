"""`python -m bench.jpeg_quality`: its arithmetic, its refusals, and one real run through Chromium and the model."""

from __future__ import annotations

import numpy as np
import pytest

from bench import jpeg_quality
from bench.jpeg_quality import Encoding, ImageResult, compare, markdown, summary

RESULTS = [
    ImageResult("a.jpg", "tabby", 0.5, (Encoding(0.9, 2048, 0.16, True), Encoding(0.95, 3072, 0.02, True))),
    ImageResult("b.png", "moped", 0.6, (Encoding(0.9, 1024, 0.30, False), Encoding(0.95, 4096, 0.04, True))),
    ImageResult("c.jpg", "palace", 0.7, (Encoding(0.9, 5120, 0.20, True), Encoding(0.95, 6144, 0.06, False))),
]


def test_compare_takes_the_largest_change_of_any_class_and_the_top1():
    png = np.array([0.6, 0.3, 0.1], dtype=np.float32)
    assert compare(png, np.array([0.5, 0.3, 0.2], dtype=np.float32)) == (pytest.approx(0.1), True)
    assert compare(png, np.array([0.3, 0.65, 0.05], dtype=np.float32)) == (pytest.approx(0.35), False)
    assert compare(png, np.array([0.2, 0.5, 0.3], dtype=np.float32)) == (pytest.approx(0.4), False)  # a drop


def test_summary_is_per_quality():
    assert summary(RESULTS, 0.9) == (
        "q0.9: largest change per image median 0.200, mean 0.220, max 0.300; top-1 changed on 1 of 3; 1.0-5.0 KB"
    )
    assert summary(RESULTS, 0.95).startswith("q0.95: largest change per image median 0.040, mean 0.040, max 0.060;")


def test_markdown_has_a_row_per_image_and_a_summary_per_quality():
    lines = markdown(RESULTS, [0.9, 0.95]).splitlines()
    assert lines[0].split(" | ")[2:] == ["q0.9: KB, largest change, top-1", "q0.95: KB, largest change, top-1 |"]
    assert lines[1] == "|---|---|---|---|"  # a column count unlike the header's is no table at all
    assert lines[3] == "| b.png | moped 0.60 | 1.0, 0.300, changed | 4.0, 0.040, same |"
    assert [line[:7] for line in lines[-3:]] == ["", "- q0.9:", "- q0.95"]  # the summary apart from the table


@pytest.mark.parametrize(
    "argv, message",
    [
        (["/nonexistent.jpg"], "/nonexistent.jpg: not a file"),
        (["/"], "/: not a file"),
        (["--qualities", "0"], "--qualities 0: must be above 0"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(argv, message, capsys):
    assert jpeg_quality.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.browser
@pytest.mark.slow
def test_a_real_run_through_the_pages_canvas_and_the_model(tmp_path, capsys):
    from tests.browser.conftest import CHROMIUM, SAMPLES
    from tests.ci import skip_or_fail

    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing", "CI must install Debian's chromium")
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    argv = [str(not_an_image), str(SAMPLES / "chelsea.jpg"), "--qualities", "0.5", "1", "0.5"]
    # The file Chromium cannot decode is named and fails the run, without losing the others' results.
    assert jpeg_quality.main(argv) == 1
    out, err = capsys.readouterr()
    assert f"error: {not_an_image}: " in err and "cannot be decoded" in err
    row = next(line for line in out.splitlines() if line.startswith("| chelsea.jpg |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1].startswith("Egyptian cat")
    # 0.5 given twice is measured once.
    (kb_low, change_low, _), (kb_high, change_high, _) = (cell.split(", ") for cell in cells[2:])
    # Quality does what it says: q1 is bigger and closer to the lossless PNG than q0.5.
    assert float(kb_high) > float(kb_low)
    assert float(change_high) < float(change_low)
