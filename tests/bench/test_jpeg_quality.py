"""`python -m bench.jpeg_quality`: its arithmetic, its refusals, and one real run through Chromium and the model."""

from __future__ import annotations

from types import SimpleNamespace

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


def test_summary_sizes_are_the_smallest_and_largest_whatever_the_images_order():
    # The largest JPEG of a run need not be its last image's: a summary that took the last one passed every test.
    results = [
        ImageResult(name, "tabby", 0.5, (Encoding(0.9, size, 0.1, True),))
        for name, size in [("a.jpg", 3072), ("b.jpg", 6144), ("c.jpg", 1024), ("d.jpg", 2048)]
    ]
    assert summary(results, 0.9).endswith("; 1.0-6.0 KB")


def test_markdown_has_a_row_per_image_and_a_summary_per_quality():
    lines = markdown(RESULTS, [0.9, 0.95]).splitlines()
    assert lines[0].split(" | ")[2:] == ["q0.9: KB, largest change, top-1", "q0.95: KB, largest change, top-1 |"]
    assert lines[1] == "|---|---|---|---|"  # a column count unlike the header's is no table at all
    assert lines[3] == "| b.png | moped 0.60 | 1.0, 0.300, changed | 4.0, 0.040, same |"
    assert [line[:7] for line in lines[-3:]] == ["", "- q0.9:", "- q0.95"]  # the summary apart from the table


def test_a_whole_quality_is_named_as_the_command_line_takes_it():
    # q1, as `--qualities 1` and the page's own 0.95 are written: not q1.0; and a size in KB to the tenth, not floored.
    text = markdown([ImageResult("a.jpg", "tabby", 0.5, (Encoding(1.0, 1536, 0.01, True),))], [1.0])
    lines = text.splitlines()
    assert lines[0] == "| image | top-1 from the PNG | q1: KB, largest change, top-1 |"
    assert lines[2] == "| a.jpg | tabby 0.50 | 1.5, 0.010, same |"
    assert lines[-1].startswith("- q1: largest change per image median 0.010,")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["/nonexistent.jpg"], "/nonexistent.jpg: not a file"),
        (["/"], "/: not a file"),
        (["--qualities", "0"], "--qualities 0: must be above 0"),
        (["--qualities", "1.5"], "--qualities 1.5: must be above 0 and at most 1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(argv, message, capsys):
    assert jpeg_quality.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """main() on a machine that has Chromium and the artifact, with the run itself recorded instead of made."""
    (tmp_path / "model" / "dist").mkdir(parents=True)
    (tmp_path / "model" / "dist" / "model.tar.gz").write_bytes(b"")
    (tmp_path / "chromium").write_bytes(b"")
    monkeypatch.setattr(jpeg_quality, "ROOT", tmp_path)
    monkeypatch.setattr(jpeg_quality, "WWW", tmp_path / "www")
    monkeypatch.setattr(jpeg_quality, "CHROMIUM", tmp_path / "chromium")
    run = SimpleNamespace(calls=[], results=[], failures=[])

    def measure(images, qualities):
        run.calls.append((list(images), list(qualities)))
        return run.results, run.failures

    monkeypatch.setattr(jpeg_quality, "measure", measure)
    return run


def test_by_default_the_sample_photos_are_measured_in_order_at_both_qualities(offline, tmp_path):
    samples = tmp_path / "www" / "samples"
    samples.mkdir(parents=True)
    names = ["k", "c", "p", "a", "m", "e", "x", "b", "h", "t", "d", "r"]  # neither sorted nor reversed
    for name in names:
        (samples / f"{name}.jpg").write_bytes(b"")
    (samples / "logo.png").write_bytes(b"")  # not a sample photo
    assert jpeg_quality.main([]) == 0
    # The table's rows in a fixed order whatever order the folder lists them in, and the qualities --help names.
    assert offline.calls == [([samples / f"{name}.jpg" for name in sorted(names)], [0.9, 0.95])]


def test_a_missing_browser_and_model_are_both_named_before_anything_starts(offline, tmp_path, capsys):
    (tmp_path / "chromium").unlink()
    (tmp_path / "model" / "dist" / "model.tar.gz").unlink()
    assert jpeg_quality.main(["/nonexistent.jpg", "--qualities", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: /nonexistent.jpg: not a file",
        "error: --qualities 2: must be above 0 and at most 1",
        f"error: {tmp_path / 'chromium'} is missing: run `make chromium`",
        "error: model/dist/model.tar.gz is missing: run `make model`",
    ]
    assert offline.calls == []


def test_qualities_are_measured_in_the_order_given_each_once(offline, tmp_path, capsys):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"")
    assert jpeg_quality.main([str(photo), "--qualities", "1", "0.5", "1"]) == 0
    assert offline.calls == [([photo], [1, 0.5])]  # the table's columns as the command line gives them
    assert jpeg_quality.main([str(photo), "--qualities", "2", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --qualities 2: must be above 0 and at most 1"]


def test_qualities_given_no_value_are_refused(offline, capsys):
    with pytest.raises(SystemExit) as exited:  # not a run that measures nothing at no quality
        jpeg_quality.main(["--qualities"])
    assert exited.value.code == 2
    assert "--qualities: expected at least one argument" in capsys.readouterr().err
    assert offline.calls == []


def test_a_run_where_no_image_could_be_decoded_names_them_without_a_table(offline, capsys):
    offline.failures = ["a.heic: cannot be decoded", "b.tiff: cannot be decoded"]
    assert jpeg_quality.main([]) == 1  # the summary of no image at all is no median: no traceback either
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["error: a.heic: cannot be decoded", "error: b.tiff: cannot be decoded"]


def test_the_page_is_served_on_loopback_quietly_and_only_while_it_is_measured(capsys):
    import socket
    import threading
    import urllib.request

    from tests.waiting import HANG_GUARD_S

    before = set(threading.enumerate())
    with jpeg_quality.serve_www() as origin:
        with urllib.request.urlopen(f"{origin}/script.js", timeout=10) as response:  # noqa: S310 (its own server)
            assert response.read() == (jpeg_quality.WWW / "script.js").read_bytes()
        port = int(origin.rsplit(":", 1)[1])
        with pytest.raises(OSError):  # only the loopback address: not every interface the machine has
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
    assert capsys.readouterr().err == ""  # no request line in the middle of the run's own errors
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=HANG_GUARD_S)
        assert not thread.is_alive(), f"{thread.name} still serves a closed socket"


@pytest.mark.browser
@pytest.mark.slow
def test_a_real_run_through_the_pages_canvas_and_the_model(tmp_path, monkeypatch, capsys):
    import functools
    import tempfile
    from types import SimpleNamespace

    import bench.__main__
    import local.runtime
    from tests.browser.conftest import CHROMIUM, SAMPLES
    from tests.ci import skip_or_fail

    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is missing", "CI must install Debian's chromium")
    temp = tmp_path / "temp"
    temp.mkdir()
    # Where the artifact is unpacked (~80 MB): bench.__main__'s own tempfile (its extract()), as tempfile.tempdir set
    # for the process would move every other thread's temporary files too.
    unpack_here = {"mkdtemp": functools.partial(tempfile.mkdtemp, dir=temp), "gettempdir": lambda: str(temp)}
    monkeypatch.setattr(bench.__main__, "tempfile", SimpleNamespace(**{**vars(tempfile), **unpack_here}))
    load, sent, answers = local.runtime.load_inference_module, [], []

    def recording(*args):  # the served model path, noting each body it is given (and its type) and each answer
        inference = load(*args)
        input_fn, predict_fn = inference.input_fn, inference.predict_fn
        monkeypatch.setattr(inference, "input_fn", lambda data, kind: sent.append((data, kind)) or input_fn(data, kind))
        monkeypatch.setattr(inference, "predict_fn", lambda *a: answers.append(predict_fn(*a)) or answers[-1])
        return inference

    monkeypatch.setattr(local.runtime, "load_inference_module", recording)
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    no_pixels = tmp_path / "empty.svg"  # Chromium decodes it; the page refuses to draw it (a RangeError)
    no_pixels.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="0" height="0"></svg>')
    argv = [str(not_an_image), str(no_pixels), str(SAMPLES / "chelsea.jpg"), "--qualities", "0.5", "1", "0.5"]
    # The files Chromium cannot decode or the page cannot draw are named and fail the run, without losing the
    # others' results.
    assert jpeg_quality.main(argv) == 1
    out, err = capsys.readouterr()
    # One line each, and nothing else: not the page's JavaScript stack, nor a line per request the page made.
    undecoded, undrawn = err.splitlines()  # the first in Chromium's words, which may change with its version
    assert undecoded.startswith(f"error: {not_an_image}: ") and undecoded.endswith("cannot be decoded.")
    assert undrawn == f"error: {no_pixels}: Page.evaluate: RangeError: image size must be positive, got 0x0"
    row = next(line for line in out.splitlines() if line.startswith("| chelsea.jpg |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # The top-1 and its probability are the PNG's (a mutant giving the first class's probability passed every test).
    assert cells[1] == f"Egyptian cat {answers[0].probs.max():.2f}"
    # 0.5 given twice is measured once.
    (kb_low, change_low, _), (kb_high, change_high, top1_high) = (cell.split(", ") for cell in cells[2:])
    # The figures are against the lossless PNG, sent as one: a JPEG at quality 1 in its place (closer to each JPEG
    # than the PNG is) passed every test. Each JPEG is sent as one, as the page sends it.
    assert [kind for _, kind in sent] == ["image/png", "image/jpeg", "image/jpeg"]
    assert [data[:3] for data, _ in sent] == [b"\x89PN", b"\xff\xd8\xff", b"\xff\xd8\xff"]  # PNG's, JPEG's
    # The size is the JPEG's the model was given (after the PNG), not that of its base64 on the way from the page.
    assert len(sent) == 3 and [kb_low, kb_high] == [f"{len(data) / 1024:.1f}" for data, _ in sent[1:]]
    # Quality does what it says: q1 is bigger and closer to the lossless PNG than q0.5.
    assert float(kb_high) > float(kb_low)
    assert float(change_high) < float(change_low)
    # q1 moves no probability by 0.01 here: the top-1 cell says it stayed (a mutant that said "changed" passed).
    assert top1_high == "same"
    assert list(temp.iterdir()) == []  # the unpacked artifact removed
