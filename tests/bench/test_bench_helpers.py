"""The benchmark's pure helpers: the memory recommendation and the alternating measurement."""

from __future__ import annotations

import pytest

from bench.__main__ import counting_faults, interleaved_medians, page_jpeg_quality, recommend_memory_mb
from components.settings import MEMORY_SIZES_MB
from tests.conftest import names_of


def fake_clock(monkeypatch) -> list[float]:
    """The bench's perf_counter reads clock[0] (seconds), which the test's fakes move on."""
    import bench.__main__ as bench

    clock = [0.0]
    monkeypatch.setattr(bench, "time", names_of(bench.time, perf_counter=lambda: clock[0]))
    return clock


def taking(clock: list[float], *durations_ms: float):
    """A call that moves the fake clock on by the next of durations_ms each time it is made."""
    left = list(durations_ms)
    return lambda: clock.__setitem__(0, clock[0] + left.pop(0) / 1000)


@pytest.mark.parametrize(
    "peak_mb, size",
    [(100, 1024), (682, 1024), (683, 2048), (1400, 3072), (2500, 4096), (3000, 5120), (3900, 6144), (4096, 6144)],
)
def test_memory_recommendation_is_the_smallest_size_with_headroom(peak_mb, size):
    assert recommend_memory_mb(peak_mb) == size
    assert size in MEMORY_SIZES_MB  # the sizes the stack file accepts


@pytest.mark.parametrize("peak_mb", [4097, 9000])
def test_no_memory_size_is_recommended_when_even_the_largest_lacks_the_headroom(peak_mb):
    assert recommend_memory_mb(peak_mb) is None  # not 6144: the row would pass a stack that does not fit


def test_interleaved_medians_alternates_and_settles():
    calls: list[str] = []
    medians = interleaved_medians(
        {"b": lambda: calls.append("b"), "a": lambda: calls.append("a")}, rounds=3, warmup=1, settle=2
    )
    assert set(medians) == {"a", "b"}
    # warm-up once each, then per round: 2 settle calls + 1 measured call, in the order given (not by name)
    assert calls == ["b", "a"] + (["b"] * 3 + ["a"] * 3) * 3


def test_the_measured_call_is_the_one_after_the_settle_calls_and_only_it_is_timed(monkeypatch):
    """settle is there so that the measured call follows calls of its own, not the other side's: the calls' order
    alone cannot tell a settle call after the measured one, or one timed with it, from this."""
    import bench.__main__ as bench

    clock = fake_clock(monkeypatch)

    # each round: a settle call of 100 ms (the first after a switch is slow), then the measured one
    medians = bench.interleaved_medians(
        {"a": taking(clock, 100, 2, 100, 2, 100, 2), "b": taking(clock, 300, 3, 300, 3, 300, 3)},
        rounds=3,
        warmup=0,
        settle=1,
    )
    assert medians == pytest.approx({"a": 2.0, "b": 3.0})


def test_the_default_measurement_warms_up_three_times_and_alternates_without_settling():
    """The defaults are what the 1.2x pair and the local stack's in-process path are measured with: each served call
    right after a model run (no settle call in between), after three unmeasured calls of each."""
    from bench.__main__ import median_ms

    calls: list[str] = []
    interleaved_medians({"ort": lambda: calls.append("ort"), "served": lambda: calls.append("served")}, rounds=2)
    assert calls == ["ort"] * 3 + ["served"] * 3 + ["ort", "served"] * 2
    calls.clear()
    median_ms(lambda: calls.append("path"), repeats=2)
    assert len(calls) == 3 + 2


def test_counting_faults_counts_each_call_that_maps_fresh_pages():
    import mmap

    pages = 1024
    counts: list[int] = []

    def touch_fresh_pages():
        # Private and anonymous, as malloc's memory: no page is mapped until written.
        with mmap.mmap(-1, pages * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) as fresh:
            if hasattr(mmap, "MADV_NOHUGEPAGE"):  # with transparent huge pages "always", one fault could map 2 MB
                fresh.madvise(mmap.MADV_NOHUGEPAGE)
            for page in range(pages):
                fresh[page * mmap.PAGESIZE] = 1

    run = counting_faults(touch_fresh_pages, counts)
    run()
    run()
    assert len(counts) == 2
    assert all(count >= pages for count in counts)  # one fault a page at least, each call counted on its own
    counting_faults(lambda: None, counts)()
    assert counts[2] < pages


def test_served_path_breakdown_times_each_call_after_what_the_served_path_runs_before_it(monkeypatch):
    from types import SimpleNamespace

    import bench.__main__ as bench
    from bench.__main__ import served_path_by_cache_state

    calls: list[str] = []
    spins: list[float] = []
    monkeypatch.setattr(bench, "spin", lambda seconds: (calls.append("spin"), spins.append(seconds)))
    clock = fake_clock(monkeypatch)
    model_s = iter([0.002, 0.002, 0.002, 0.002, 0.008, 0.008])  # each round's predict_fn: timed, then at its end
    batch = object()

    def input_fn(body, content_type):
        calls.append("input_fn")
        return SimpleNamespace(batch=batch)

    def predict_fn(x, model):
        model.run(x.batch)
        clock[0] += next(model_s)
        calls.append("predict_fn")
        return "prediction"

    def output_fn(prediction, accept):
        calls.append("output_fn")

    inference = SimpleNamespace(input_fn=input_fn, predict_fn=predict_fn, output_fn=output_fn, JPEG="j", JSON="a")
    classifier = SimpleNamespace(run=lambda b: calls.append("model" if b is batch else b))
    medians = served_path_by_cache_state(inference, b"jpeg", classifier, rounds=3)

    assert set(medians) == {
        *("input_fn", "predict_fn", "output_fn", "model alone"),
        *("input_fn warm", "output_fn warm", "input_fn read", "output_fn read", "input_fn spin", "output_fn spin"),
    }
    first_round = calls[:18]
    # the served sequence, then the warm pair (input_fn once untimed), then the pair after each read, then the
    # pair after each spin, then the model after itself, then a served request's end so the next round's input_fn
    # follows a model run
    assert first_round == [
        "input_fn", "model", "predict_fn", "output_fn",
        "input_fn", "input_fn", "output_fn",
        "input_fn", "output_fn",
        "spin", "input_fn", "spin", "output_fn",
        "model", "model",
        "model", "predict_fn", "output_fn",
    ]  # fmt: skip
    assert calls[-3:] == ["model", "predict_fn", "output_fn"]
    assert spins == pytest.approx([0.002] * 4 + [0.008] * 2)  # as long as that round's predict_fn, in seconds
    assert medians["predict_fn"] == pytest.approx(2.0)  # ms, the median of 2, 2 and 8 (their mean is 4)


@pytest.mark.parametrize(
    ("ours", "theirs", "bound", "at_most", "ok"),
    [
        (3.6, 3.0, 1.2, True, True),  # exactly 1.2x: "at most 1.2x" is met (3.6 <= 1.2 * 3.0 is False in floats)
        (5.4, 4.5, 1.2, True, True),  # 5.4 / 4.5 is 1.2000000000000002 in floats
        (0.1, 0.3, 3.0, False, True),  # 0.3 / 0.1 is 2.9999999999999996 in floats
        (2.4, 2.0, 1.2, True, True),
        (3.612, 3.0, 1.2, True, False),  # 1.204x
        (3.0, 9.0, 3.0, False, True),  # exactly 3x faster
        (3.0, 8.99, 3.0, False, False),  # 2.997x
        (25.0, 100.0, 4.0, False, True),
        (25.0, 99.9, 4.0, False, False),
        (1.5, 3.0, 0.5, True, True),
    ],
)
def test_target_verdict_is_inclusive_and_the_printed_ratio_never_contradicts_it(ours, theirs, bound, at_most, ok):
    from bench.__main__ import Report

    report = Report()
    ratio = ours / theirs if at_most else theirs / ours
    report.check("row", f"{ours} ms", f"{theirs} ms", ratio, bound, "target", at_most=at_most)
    printed = float(report.rows[0][3].rstrip("x"))
    assert report.rows[0][4].endswith("✅" if ok else "❌")
    assert bool(report.failures) is not ok
    # whoever reads the table can redo the verdict from the printed ratio
    assert (printed <= bound if at_most else printed >= bound) is ok


@pytest.mark.parametrize(
    ("value", "bound", "at_most", "text"),
    [
        (15.04, 15, True, "15.04"),
        (14.96, 15, True, "15.0"),
        (15.0, 15, True, "15.0"),
        (12.3, 15, True, "12.3"),
        (15.00004999, 15, True, "15.00005"),  # as many decimals as the verdict needs, not all of repr()'s
    ],
)
def test_a_figure_judged_against_a_bound_is_printed_on_the_side_of_its_verdict(value, bound, at_most, text):
    from bench.__main__ import shown

    assert shown(value, bound, at_most, digits=1) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(8.5e-7, "8.5e-07"), (9.96e-5, "9.96e-05"), (9.9996e-5, "9.9996e-05"), (1e-4, "1.0e-04"), (1.04e-4, "1.0e-04")],
)
def test_the_agreement_figure_is_printed_on_the_side_of_its_strict_bound(value, text):
    """The fp32 agreement row's target is "< 1e-4": printed with one decimal, 9.96e-5 read "1.0e-04" beside ✅."""
    from bench.__main__ import shown_below

    assert shown_below(value, 1e-4) == text
    assert (float(text) < 1e-4) == (value < 1e-4)


def test_cold_start_is_the_median_total_of_alternated_fresh_processes(monkeypatch):
    import json
    import subprocess
    from types import SimpleNamespace

    import bench.__main__ as bench

    # three served processes: one slow import, one slow load, one normal; sums 2.5, 6.5, 6.5 s -> median 6.5,
    # while the sum of the per-part medians would say 2.5 s, a cold start no run had
    served = iter([(1.0, 1.0), (1.0, 5.0), (5.0, 1.0)])
    order: list[str] = []
    clock = fake_clock(monkeypatch)

    def run(cmd, **kwargs):
        script = cmd[-1]
        order.append(script)
        imports, load = next(served) if script == "served" else (3.0, 3.0)
        clock[0] += imports + load + 0.5 + 0.25  # the process's wall time: 0.25 s more than it measures itself
        sample = {"imports": imports, "load": load, "first": 0.5, "rss_mb": 100.0, "backend": script}
        return SimpleNamespace(returncode=0, stdout=json.dumps(sample) + "\n", stderr="")

    monkeypatch.setattr(bench, "subprocess", names_of(bench.subprocess, run=run))
    medians = bench.cold_runs({"naive": "naive", "served": "served"}, runs=3)
    assert order == ["naive", "served"] * 3  # side by side, not all of one then all of the other
    assert medians["served"]["in_process"] == 6.5 and medians["naive"]["in_process"] == 6.5
    assert medians["served"]["wall"] == pytest.approx(6.75)  # s
    assert (medians["served"]["backend"], medians["naive"]["rss_mb"]) == ("served", 100.0)
    assert bench.subprocess.run is run and subprocess.run is not run  # bench's own name, not every thread's


@pytest.mark.parametrize(("served_s", "ratio", "verdict"), [(1.0, "0.50x", "✅"), (1.1, "0.55x", "❌")])
def test_the_cold_start_rows_put_served_over_naive(monkeypatch, tmp_path, served_s, ratio, verdict):
    import bench.__main__ as bench

    def medians(imports, load, first, wall, rss_mb):
        total = imports + load + first
        return {"imports": imports, "load": load, "first": first, "in_process": total, "wall": wall, "rss_mb": rss_mb}

    runs = {
        "naive": medians(1.5, 0.3, 0.2, 2.5, 900.0) | {"backend": None},
        "served": medians(served_s - 0.5, 0.4, 0.1, 1.25, 300.0) | {"backend": "onnxruntime"},
    }
    monkeypatch.setattr(bench, "cold_scripts", lambda model_dir: {})
    monkeypatch.setattr(bench, "cold_runs", lambda scripts, n: runs)
    report = bench.Report()
    bench.bench_cold_start(report, tmp_path, 5)
    in_process, wall, rss = report.rows
    assert in_process[1:] == (
        f"{served_s:.2f} s (medians {served_s - 0.5:.2f} + 0.40 + 0.10 s)",
        "2.00 s (medians 1.50 + 0.30 + 0.20 s)",
        ratio,
        f"<= 0.5x {verdict}",
    )
    assert wall[1:] == ("1.25 s", "2.50 s", "0.50x", "") and rss[1:] == ("300 MB", "900 MB", "0.33x", "")
    # rows without a target are neither met nor missed
    assert (report.met, len(report.failures)) == ((1, 0) if verdict == "✅" else (0, 1)), report.failures


def test_medians_are_medians_of_the_measured_calls_only(monkeypatch):
    import bench.__main__ as bench

    clock = fake_clock(monkeypatch)

    # one warm-up of 500 ms, then 3, 10, 1 ms: median 3 (the mean would be 4.67, the fastest 1; with the warm-up
    # measured, 10)
    assert bench.median_ms(taking(clock, 500, 3, 10, 1), repeats=3, warmup=1) == pytest.approx(3.0)
    medians = bench.interleaved_medians(
        {"a": taking(clock, 500, 2, 1, 20), "b": taking(clock, 900, 3, 30, 4)}, rounds=3, warmup=1, settle=0
    )
    assert medians == pytest.approx({"a": 2.0, "b": 4.0})
    # an even count (the runs' repeats are): the mean of the middle two, neither one of them
    assert bench.median_ms(taking(clock, 500, 3, 10, 1, 4), repeats=4, warmup=1) == pytest.approx(3.5)
    medians = bench.interleaved_medians({"a": taking(clock, 2, 1, 20, 6)}, rounds=4, warmup=0)
    assert medians == pytest.approx({"a": 4.0})


def test_results_the_disk_cannot_hold_leave_the_last_ones_whole(monkeypatch, tmp_path, capsys):
    """On a full disk the table was written in place: the last run's latest.md was lost, and a table cut short (it
    can end on a whole row) was left in its place, under "error: could not write"."""
    import errno
    import pathlib

    bench = stub_sections(monkeypatch, tmp_path)
    out = tmp_path / "latest.md"
    out.write_text("the last run's table\n", encoding="utf-8")

    class HalfThenFull(type(pathlib.Path())):
        def write_text(self, data, *args, **kwargs):
            with open(self, "w", encoding="utf-8") as f:
                f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    out_parsed_as(monkeypatch, bench, HalfThenFull)
    assert bench.main(["--out", str(out)]) == 2
    assert f"error: could not write {out}: No space left on device\n" in capsys.readouterr().err
    assert out.read_bytes() == b"the last run's table\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("bit", [0o040, 0o004], ids=["group", "others"])
def test_results_written_over_the_last_ones_keep_their_file_mode(monkeypatch, tmp_path, bit):
    """The table is written beside latest.md and renamed over it: under umask 077 a latest.md made readable to the
    group (0644) came back 0600 after the next run, and under umask 022 a private one (0600) came back 0644. Written
    in place, as it was before, the file kept its mode. Here latest.md has a mode a new file would not get under
    this process's umask (one read bit flipped): the umask set would be every thread's."""
    import stat

    bench = stub_sections(monkeypatch, tmp_path)
    probe = tmp_path / "new-file"
    probe.write_text("", encoding="utf-8")
    mode = stat.S_IMODE(probe.stat().st_mode) ^ bit  # what a new file gets, but for that bit
    probe.unlink()
    out = tmp_path / "latest.md"
    out.write_text("the last run's table\n", encoding="utf-8")
    out.chmod(mode)
    assert bench.main(["--out", str(out)]) == 0
    assert "| latency row |" in out.read_text(encoding="utf-8")
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_results_sent_to_a_pipe_or_device_go_there_and_leave_it_one(monkeypatch, tmp_path):
    """--out /dev/null or a named pipe: the table written beside it and renamed over it replaced the pipe (as root,
    /dev/null itself) with a regular file, and a reader of the pipe got nothing. What is not a regular file is
    written in place, as before: there is no last table there to keep."""
    import os
    import stat
    import threading

    bench = stub_sections(monkeypatch, tmp_path)
    pipe = tmp_path / "results.fifo"
    os.mkfifo(pipe)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_text(encoding="utf-8")), daemon=True)
    reader.start()
    try:
        assert bench.main(["--out", str(pipe)]) == 0
    finally:
        reader.join(timeout=10)
        if reader.is_alive():  # unblock a reader still waiting for a writer
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert read and "| latency row |" in read[0], read


def test_results_through_a_symlink_are_written_beside_the_file_it_points_to(monkeypatch, tmp_path, capsys):
    """The up-front check asks the folder of the file a symlink --out points to for room, and the table is written
    there and renamed over that file: written beside the link instead, in a folder nothing asked (read-only here),
    the run measured for minutes and ended in "could not write". No test wrote through a link."""
    import errno
    import os
    import pathlib

    bench = stub_sections(monkeypatch, tmp_path)
    (tmp_path / "links").mkdir()
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / "latest.md"
    target.write_text("the last run's table\n", encoding="utf-8")
    out = tmp_path / "links" / "latest.md"
    out.symlink_to(target)

    class ReadOnlyLinks(type(pathlib.Path())):
        def write_text(self, *args, **kwargs):
            if self.parent == out.parent:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
            return super().write_text(*args, **kwargs)

    out_parsed_as(monkeypatch, bench, ReadOnlyLinks)
    assert bench.main(["--out", str(out)]) == 0, capsys.readouterr().err
    assert out.is_symlink() and "| latency row |" in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest.md"]


@pytest.mark.parametrize("resolve", ["this Python's", "Python 3.13's"])
def test_results_path_that_is_a_symlink_loop_is_an_error_line_not_a_traceback(monkeypatch, tmp_path, capsys, resolve):
    # Resolved to write beside its target, a --out whose symlinks loop raised RuntimeError after the whole run: a
    # traceback, and no missed targets or summary. Written in place it was "could not write"; it is now refused up
    # front, where the table's folder is checked, and a loop made during the run is still an OSError. From Python
    # 3.13, Path.resolve() returns a loop as it is instead of raising: the check passed, the run measured for minutes
    # and then replaced the link with the table.
    import errno
    import os
    import pathlib

    as_3_13 = resolve == "Python 3.13's"

    class Resolving(type(pathlib.Path())):  # --out's own resolve(): pathlib.Path.resolve itself is every thread's
        if as_3_13:

            def resolve(self, strict=False):
                return type(self)(os.path.realpath(self))

    bench = stub_sections(monkeypatch, tmp_path)
    out_parsed_as(monkeypatch, bench, Resolving)
    out = Resolving(tmp_path / "latest.md")
    out.symlink_to(out)
    assert bench.main(["--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: Too many levels of symbolic links\n"
    with pytest.raises(OSError) as looped:
        bench.write_whole(out, "table\n")
    assert (looped.value.errno, looped.value.filename) == (errno.ELOOP, str(out))


@pytest.mark.parametrize("out", ["file/latest.md", "."])  # under a file; a directory
def test_an_unwritable_results_path_is_refused_before_measuring(monkeypatch, tmp_path, capsys, out):
    import bench.__main__ as bench

    measured: list[str] = []
    monkeypatch.setattr(bench, "bench_latency", lambda *a: measured.append("latency") or {})
    (tmp_path / "file").write_text("")
    assert bench.main(["--quick", "--out", str(tmp_path / out)]) == 2
    assert measured == []  # refused up front, not after minutes of measuring
    assert "error: --out" in capsys.readouterr().err


def test_an_out_that_is_a_symlink_is_checked_where_the_table_is_written(monkeypatch, tmp_path, capsys):
    """The table is written beside the file --out points to: a latest.md linked to a read-only folder passed the
    up-front check of the link's own folder, and the run measured for minutes before "could not write"."""
    import errno
    import os

    measured: list[str] = []
    bench = stub_sections(monkeypatch, tmp_path, latency=lambda *a: measured.append("latency") or {})
    (tmp_path / "read-only").mkdir()
    out = tmp_path / "results" / "latest.md"
    out.parent.mkdir()
    out.symlink_to(tmp_path / "read-only" / "latest.md")
    real = bench.tempfile.TemporaryFile

    def refused(*args, dir=None, **kwargs):
        if os.fspath(dir) == str(tmp_path / "read-only"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(bench, "tempfile", names_of(bench.tempfile, TemporaryFile=refused))
    assert bench.main(["--quick", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: Read-only file system\n"
    assert measured == []


@pytest.mark.parametrize(
    "why", ["Read-only file system", "Permission denied", "Operation not permitted", "Disk quota exceeded"]
)
def test_a_results_folder_that_refuses_files_is_refused_up_front_with_the_reason(monkeypatch, tmp_path, capsys, why):
    """A read-only bench/results said only "cannot write .../latest.md", where every later write error in bench/
    gives the refusal's own words. The folder is asked to hold a file, as the table's is written beside it."""
    import errno
    import os

    code = {os.strerror(n): n for n in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)}[why]
    measured: list[str] = []
    bench = stub_sections(monkeypatch, tmp_path, latency=lambda *a: measured.append("latency") or {})
    out = tmp_path / "results" / "latest.md"

    def refused(*args, dir=None, **kwargs):
        assert os.fspath(dir) == str(out.parent)
        raise OSError(code, why, str(dir))

    monkeypatch.setattr(bench, "tempfile", names_of(bench.tempfile, TemporaryFile=refused))
    assert bench.main(["--quick", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: {why}\n"
    assert measured == []


@pytest.mark.parametrize("kind", ["pipe", "device"])
def test_an_out_that_is_a_pipe_or_a_device_is_not_refused_for_its_folder(monkeypatch, tmp_path, capsys, kind):
    """--out /dev/null as a user: the up-front check made its probe file in /dev, which only root may, and refused
    the run ("Permission denied"), though the table is written to a pipe or a device in place, not beside it."""
    import errno
    import os
    import threading

    bench = stub_sections(monkeypatch, tmp_path)
    folder = tmp_path / "dev"
    folder.mkdir()
    if kind == "pipe":
        out = folder / "pipe"
        os.mkfifo(out)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(out.read_bytes()), daemon=True)
        reader.start()
    else:
        out = folder / "null"
        out.symlink_to("/dev/null")
    real = bench.tempfile.TemporaryFile

    def refused(*args, dir=None, **kwargs):  # a user's view of /dev: root makes files anywhere
        if os.fspath(dir) in (str(folder), "/dev"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(bench, "tempfile", names_of(bench.tempfile, TemporaryFile=refused))
    try:
        assert bench.main(["--quick", "--out", str(out)]) == 0
    finally:
        if kind == "pipe" and not got:  # the reader waits for a writer: a refused run never opened the pipe
            reader.join(timeout=10)
            if reader.is_alive():
                os.close(os.open(out, os.O_WRONLY | os.O_NONBLOCK))
                reader.join(timeout=10)
    assert "error" not in capsys.readouterr().err
    if kind == "pipe":
        assert b"latency row" in got[0]


def test_a_device_the_user_cannot_write_is_refused_up_front(monkeypatch, tmp_path, capsys):
    import os

    bench = stub_sections(monkeypatch, tmp_path)
    out = tmp_path / "null"
    out.symlink_to("/dev/null")
    monkeypatch.setattr(
        bench, "os", names_of(bench.os, access=lambda path, mode: not (str(path) == "/dev/null" and mode == os.W_OK))
    )
    assert bench.main(["--quick", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: Permission denied\n"


@pytest.mark.parametrize("refused_at", ["write", "fsync"])  # a local disk refuses the write, NFS may wait for fsync
def test_a_results_folder_with_inodes_but_no_free_blocks_is_refused_up_front(monkeypatch, tmp_path, capsys, refused_at):
    """A disk at 100% with inodes left took the up-front check's empty file, and the run measured for minutes before
    "error: could not write". The check now writes and syncs some KB there, as much as a table or more."""
    import errno
    import os

    measured: list[str] = []
    bench = stub_sections(monkeypatch, tmp_path, latency=lambda *a: measured.append("latency") or {})
    out = tmp_path / "results" / "latest.md"
    real_file, real_fsync = bench.tempfile.TemporaryFile, os.fsync
    probes: list = []
    no_room = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class NoFreeBlock:  # the file is made (an inode is free); its first byte finds no block
        def __init__(self, *args, **kwargs):
            self.file = real_file(*args, **kwargs)
            probes.append(self.file.fileno())

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def close(self):
            self.file.close()

        def write(self, data):
            if data and refused_at == "write":
                raise no_room
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

    def fsync(fd):
        if fd in probes and refused_at == "fsync":
            raise no_room
        real_fsync(fd)

    monkeypatch.setattr(bench, "tempfile", names_of(bench.tempfile, TemporaryFile=NoFreeBlock))
    monkeypatch.setattr(bench, "os", names_of(bench.os, fsync=fsync))
    assert bench.main(["--quick", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: No space left on device\n"
    assert measured == [] and probes


def test_a_pipe_inside_a_cell_does_not_split_the_markdown_row():
    import re

    from bench.__main__ import Report

    report = Report()
    report.add("fp32 agreement", "max |dp| 1.2e-06, top-5 order same", target="< 1e-4, same order", ok=True)
    report.notes.append("a note")
    header, blank, columns, rule, row, *notes = report.markdown("h").splitlines()
    assert (header, blank) == ("h", "") and rule == "|---|---|---|---|---|"
    assert columns == "| figure | ours | baseline | ratio | target |"
    assert notes == ["", "- a note"]
    cells = re.split(r"(?<!\\)\|", row)[1:-1]  # how Markdown tables split: on unescaped pipes
    assert len(cells) == 5 and cells[-1].strip() == "< 1e-4, same order ✅"
    assert cells[1].strip() == r"max \|dp\| 1.2e-06, top-5 order same"  # escaped: Markdown shows the figure's "|"


def test_a_ratio_measured_on_a_contended_machine_is_neither_met_nor_passed():
    from bench.__main__ import Report, disturbed

    # the run of 2026-12-01 22:12: served 9.6 vs ORT 8.5 ms in the pair (1.13x), the model alone 2.40 ms after
    assert disturbed(2.6, 2.4) is None
    assert disturbed(3.0, 2.0) is None and disturbed(2.0, 2.9) is None  # 1.5x is the most trusted, either way round
    assert "ORT took 2.0 ms in the served/ORT pair and 3.1 ms measured again" in disturbed(2.0, 3.1)
    assert disturbed(5.2, 7.9, "the served path").startswith("the machine was contended: the served path took 5.2 ms")
    report = Report()
    report.check("served vs ORT", "9.6 ms", "8.5 ms", 9.6 / 8.5, 1.2, "<= 1.2x", unreliable=disturbed(8.5, 2.40))
    assert "✅" not in report.rows[0][4] and "unreliable" in report.rows[0][4]
    assert report.failures and "contended" in report.failures[0]
    # its ratio met the bound, but the row is not counted met as well as missed
    assert report.summary() == "targets: 0 met, 1 missed, 0 skipped (not measured)"


def test_the_payload_row_encodes_at_the_pages_own_quality(tmp_path):
    assert page_jpeg_quality() == 95  # www/script.js's JPEG_QUALITY, which the browser tests pin too
    script = tmp_path / "script.js"
    script.write_text("export const TOP_K = 5;\nexport const JPEG_QUALITY = 0.57;\n")
    assert page_jpeg_quality(script) == 57  # 0.57 * 100 is 56.99999999999999 in floats
    script.write_text("const JPEG_QUALITY = 0.9;\n")
    with pytest.raises(ValueError, match="no JPEG_QUALITY"):
        page_jpeg_quality(script)


@pytest.mark.parametrize(
    ("returncode", "stderr", "says"),
    [
        (-9, "", "killed by signal 9"),  # the kernel's OOM killer: no word on stderr
        (
            1,
            "Traceback (most recent call last):\n  ...\ninference.PayloadTooLarge: 50000001 pixels\n",
            "PayloadTooLarge",
        ),
    ],
)
def test_a_hostile_decode_that_fails_fails_the_run(monkeypatch, tmp_path, returncode, stderr, says):
    """The decode whose memory is judged against memorySizeMb dies (out of memory) or is refused: that is neither a
    pass (the run used to exit 0 without the judged row) nor a crash after minutes of measuring."""
    import subprocess

    from PIL import Image

    import bench.__main__ as bench

    monkeypatch.setattr(bench, "hostile_images", lambda: {"tiny PNG": (lambda: Image.new("RGB", (8, 8)), "PNG", {})})
    monkeypatch.setattr(
        bench,
        "subprocess",
        names_of(bench.subprocess, run=lambda argv, **_: subprocess.CompletedProcess(argv, returncode, "", stderr)),
    )
    report, ctx = bench.Report(), {}
    bench.bench_hostile_image_memory(report, tmp_path, ctx)
    assert "bomb_mb" not in ctx
    assert len(report.failures) == 1 and says in report.failures[0], report.failures
    assert report.rows[-1][4].endswith("❌"), report.rows


def test_the_worst_hostile_decode_is_the_one_that_adds_the_most_memory(monkeypatch, tmp_path):
    import json
    import subprocess

    import numpy as np
    from PIL import Image

    import bench.__main__ as bench

    def noise():  # ~30 KB as PNG: KB of 1024 bytes and of 1000 differ
        return Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8))

    images = {"noisy PNG": (noise, "PNG", {}), "noisy JPEG": (noise, "JPEG", {"quality": 95})}
    monkeypatch.setattr(bench, "hostile_images", lambda: images)
    added_mb = {"png": 50.0, "jpeg": 300.0}

    def run(argv, **_):
        mb = next(mb for ext, mb in added_mb.items() if f"bench-hostile.{ext}" in argv[-1])
        return subprocess.CompletedProcess(argv, 0, json.dumps({"before": 100.0, "after": 100.0 + mb}) + "\n", "")

    monkeypatch.setattr(bench, "subprocess", names_of(bench.subprocess, run=run))
    report, ctx = bench.Report(), {}
    bench.bench_hostile_image_memory(report, tmp_path, ctx)
    kb = {ext: (tmp_path / f"bench-hostile.{ext}").stat().st_size / 1024 for ext in added_mb}
    assert (ctx["bomb_mb"], ctx["bomb_name"]) == (300.0, "noisy JPEG")
    (row,) = report.rows
    assert row[0].startswith(f"decode the worst of 2 small hostile images, a noisy JPEG ({kb['jpeg']:.0f} KB): ")
    assert row[1] == "+300 MB"
    assert report.notes[0].endswith(f"noisy PNG ({kb['png']:.0f} KB) +50 MB, noisy JPEG ({kb['jpeg']:.0f} KB) +300 MB")


@pytest.mark.parametrize(("sent", "shown", "verdict"), [(60 * 1024, "60.0", "✅"), (60 * 1024 + 1, "60.001", "❌")])
def test_the_payload_row_is_the_pages_upload_against_the_files_base64_json(monkeypatch, sent, shown, verdict):
    import base64
    import io
    import json

    from PIL import Image

    import bench.__main__ as bench

    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buf, "JPEG")
    # 230,778 bytes (Pillow ignores what follows the JPEG): base64 307,704 bytes, 300.49 KiB; its JSON 300.50 KiB
    big = buf.getvalue() + bytes(230_778 - len(buf.getvalue()))
    encoded: list[tuple] = []
    monkeypatch.setattr(bench, "jpeg", lambda img, quality=90: encoded.append((img.size, quality)) or b"x" * sent)
    report = bench.Report()
    bench.bench_payload(report, {"big": big})
    assert encoded == [((341, 256), 95)]  # the page's shorter side and JPEG_QUALITY
    original = len(json.dumps({"image": base64.b64encode(big).decode()}))
    (row,) = report.rows
    assert row[1:] == (f"{shown} KB", "301 KB", f"{original / sent:.2f}x", f"<= 60 KB {verdict}")
    assert report.notes[0].endswith("(shorter side 256, q0.95)")


def test_the_rows_send_the_coffee_photo_as_the_page_uploads_it(monkeypatch):
    """The latency and local stack rows time a request of the 256 px JPEG the page sends, not one of another size."""
    import io

    from PIL import Image

    import bench.__main__ as bench

    monkeypatch.setattr(bench, "big_photo_bytes", lambda: b"the 12 MP photo")
    photos = bench.request_photos()
    assert photos["big"] == b"the 12 MP photo"
    with Image.open(io.BytesIO(photos["small_jpeg"])) as small, Image.open(bench.PHOTOS / "coffee.jpg") as coffee:
        assert small.format == "JPEG" and min(small.size) == 256
        assert small.size == tuple(round(side * 256 / min(coffee.size)) for side in coffee.size)


def test_a_serving_stack_that_fails_under_the_memory_benchmark_fails_the_run(monkeypatch):
    import bench.__main__ as bench
    import local.torchserve

    class Broken:
        def __init__(self, *_):
            pass

        def __enter__(self):
            raise local.torchserve.TorchServeError("the model endpoint cannot start: model_fn failed\ndetails")

        def __exit__(self, *_):
            return False

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Broken)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    report = bench.Report()
    measured_container_memory(bench, report, {"big": b"", "small_jpeg": b""})
    assert report.failures == [
        "serving stack peak memory (toolkit + TorchServe JVM + worker, PSS): failed: "
        "the model endpoint cannot start: model_fn failed (measured)"  # no " vs " before a baseline it never had
    ]
    assert report.rows[-2][4].endswith("❌"), report.rows
    # the worst case judged from that peak is in the table too, not measured
    assert report.rows[-1][1] == "skipped: the serving stack's peak was not measured", report.rows
    assert len(report.skipped) == 1


def measured_container_memory(bench, report, ctx: dict) -> None:
    """The serving stack's peak, as the run measures it first, and its rows, as the table prints them last."""
    bench.bench_container_peak(ctx)
    bench.bench_container_memory(report, ctx)


def out_parsed_as(monkeypatch, bench, path_type) -> None:
    """main()'s --out parsed as a `path_type`, a Path subclass holding the fake, through bench's own table_file:
    pathlib.Path's own write_text or resolve replaced would be every thread's."""
    table_file = bench.table_file
    monkeypatch.setattr(bench, "table_file", lambda value: path_type(table_file(value)))


def stub_sections(monkeypatch, tmp_path, **sections):
    """main() with every measuring section a stub (or the given ones), an extracted model that is an empty folder,
    and the table written under tmp_path: the CLI's verdicts without minutes of measuring."""
    import bench.__main__ as bench

    def latency(report, *_):
        report.add("latency row", "1.0 ms", target="<= 2 ms", ok=True)
        return {"meta": {}, "classifier": None, "inference": None}

    monkeypatch.setattr(bench, "extract", lambda _: tmp_path / "model")
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(bench, "request_photos", lambda: {"big": b"", "small_jpeg": b""})
    monkeypatch.setattr(bench, "bench_latency", latency)
    for name in (
        *("int8", "cold_start", "preprocessing", "hostile_image_memory", "payload", "local_stack"),
        *("container_peak", "container_memory"),
    ):
        monkeypatch.setattr(bench, f"bench_{name}", lambda *_: None)
    for name, fn in sections.items():
        monkeypatch.setattr(bench, f"bench_{name}", fn)
    return bench


def test_an_artifact_built_from_another_inference_py_exits_2_before_measuring(monkeypatch, tmp_path, capsys):
    """The README's exit status 2 named a missing or damaged artifact and an --out that cannot be written, not this:
    `python -m bench` after an edit to model/code/inference.py, without `make model`, would measure the old code."""
    import io
    import tarfile

    bench = stub_sections(monkeypatch, tmp_path)
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        packed = b"# the code the artifact was built from\n"
        member = tarfile.TarInfo("code/inference.py")
        member.size = len(packed)
        tar.addfile(member, io.BytesIO(packed))
    checkout = tmp_path / "inference.py"
    checkout.write_text("# the checkout's code, edited since\n", encoding="utf-8")
    monkeypatch.setattr(bench, "ARTIFACT", artifact)
    monkeypatch.setattr(bench, "CHECKOUT_CODE", checkout)
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and not (tmp_path / "latest.md").exists()
    checkout.write_bytes(packed)  # the same code: measured
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 0


def test_a_serving_stack_that_cannot_start_without_java_is_a_skipped_target_that_fails_the_run(
    monkeypatch, tmp_path, capsys
):
    """Without java the memory rows cannot be measured: not met either, so the run exits 1 (it exited 0), each row
    says why, and the summary counts them."""
    import bench.__main__ as real

    bench = stub_sections(
        monkeypatch, tmp_path, container_peak=real.bench_container_peak, container_memory=real.bench_container_memory
    )
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: None))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 1
    out, err = capsys.readouterr()
    skipped = [line for line in out.splitlines() if "skipped: no java on PATH" in line]
    assert len(skipped) == 2 and all(line.endswith("⚠️ skipped |") for line in skipped), out
    assert "\nskipped targets (not measured, so not met):\n  serving stack peak memory" in err
    assert "latency row" in out and (tmp_path / "latest.md").read_text(encoding="utf-8") == out
    assert err.rstrip().splitlines()[-1] == "targets: 1 met, 0 missed, 2 skipped (not measured)", err


def test_a_run_whose_targets_are_all_met_exits_0_and_says_so(monkeypatch, tmp_path, capsys):
    bench = stub_sections(monkeypatch, tmp_path)
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 0
    assert capsys.readouterr().err.strip() == "targets: 1 met, 0 missed, 0 skipped (not measured)"


def test_the_headings_date_is_the_utc_date_as_the_docs_give_the_runs_times(monkeypatch, tmp_path, capsys):
    """bench/history.md and the README give the runs' times of day in UTC, and the README's "Latest run" line starts
    with the heading's date, which was the local one: around midnight outside UTC, the day before or after."""
    import time

    bench = stub_sections(monkeypatch, tmp_path)
    try:
        # 14 h ahead of UTC and 12 h behind: at any hour one of them is on another day than UTC.
        for zone in ("AHEAD-14", "BEHIND+12"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            before = time.strftime("%Y-%m-%d", time.gmtime())
            assert bench.main(["--out", str(tmp_path / "latest.md")]) == 0
            utc_days = {before, time.strftime("%Y-%m-%d", time.gmtime())}  # a run that crossed midnight: either
            heading = capsys.readouterr().out.splitlines()[0]
            assert heading.removeprefix("Benchmark (")[:10] in utc_days, (zone, heading)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_heading_names_the_machine_the_run_was_measured_on(monkeypatch, tmp_path, capsys):
    """The heading is all that says which host and software a table was measured on (two hosts both "AMD EPYC" gave
    different figures: bench/machine.py), yet only its date was held: a heading without machine() passed."""
    import re

    bench = stub_sections(monkeypatch, tmp_path)
    monkeypatch.setattr(bench, "machine", lambda: "AMD EPYC (family 25, model 17; AVX-512), 2 vCPU, 2 threads")
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 0
    heading = capsys.readouterr().out.splitlines()[0]
    machine = re.escape("AMD EPYC (family 25, model 17; AVX-512), 2 vCPU, 2 threads")
    assert re.fullmatch(rf"Benchmark \(\d{{4}}-\d\d-\d\d, {machine}; medians; \d+ s run\)", heading), heading


def test_out_expands_a_tilde_and_refuses_an_empty_path(monkeypatch, tmp_path, capsys):
    """`--out=~/latest.md` (a ~ no shell expands) wrote the table under a new folder named ~ in the current one, and
    `--out ""` was the current folder: "cannot write ."."""
    bench = stub_sections(monkeypatch, tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--out=~/latest.md"]) == 0
    assert (tmp_path / "home" / "latest.md").is_file() and not (tmp_path / "~").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        bench.main(["--out", ""])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --out: the path is empty")


@pytest.mark.parametrize("made", [True, False])
def test_out_naming_a_folder_is_refused_naming_a_file_to_give(monkeypatch, tmp_path, capsys, made):
    """`--out results/` for a folder not made yet wrote the table, after the whole run, to a file named results."""
    bench = stub_sections(monkeypatch, tmp_path)
    if made:
        (tmp_path / "results").mkdir()
    with pytest.raises(SystemExit) as exited:
        bench.main(["--out", f"{tmp_path}/results/"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"error: argument --out: {tmp_path}/results/ names a folder: name the file to write the table to, such as "
        f"{tmp_path}/results/latest.md; see `python -m bench --help`\n"
    )
    assert (tmp_path / "results").is_dir() == made


def test_a_refused_argument_is_one_line(capsys):
    """argparse printed its usage line above the error; `python -m local` and `python -m model.package` say it in
    one line."""
    import bench.__main__ as bench

    with pytest.raises(SystemExit) as exited:
        bench.main(["--bogus"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --bogus; see `python -m bench --help`\n"


def test_help_gives_the_exit_statuses(capsys):
    import bench.__main__ as bench

    with pytest.raises(SystemExit) as exited:
        bench.main(["--help"])
    assert exited.value.code == 0
    assert "1 a target missed or not measured" in capsys.readouterr().out


def undescribed_options(help_text: str) -> list[str]:
    """The options argparse's --help lists without a word of what they are."""
    options = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [
        line.split()[0]
        for line, following in zip(options, [*options[1:], ""], strict=True)
        # argparse puts the description after the option on its line, or alone on the next, indented further.
        if line.startswith("  -") and len(line.strip().split("  ")) == 1 and not following.startswith("    ")
    ]


@pytest.mark.parametrize("module", ["bench.__main__", "bench.loadtest", "bench.jpeg_quality"])
def test_help_describes_every_option(module, capsys):
    """`python -m bench --help` listed `--out OUT` with no word of what it is or where the table goes by default;
    `python -m bench.loadtest --help` its --requests, --concurrency and both --skip options, bench.jpeg_quality its
    --qualities."""
    import importlib

    with pytest.raises(SystemExit) as exited:
        importlib.import_module(module).main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "\n  --" in text and undescribed_options(text) == [], text
    if module == "bench.__main__":
        assert "bench/results/latest.md" in text


def test_undescribed_options_finds_a_bare_option():
    text = "usage: x\n\noptions:\n  -h, --help  show this help message and exit\n  --bare BARE\n  --told  said\n"
    assert undescribed_options(text) == ["--bare"]


class Serving:  # a serving stack that starts and answers, at a steady 1000 MB
    def __init__(self, *_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False

    def memory_mb(self):
        return 1000.0

    def invoke(self, body, content_type):
        return 200, {}, b"[]"


def test_a_serving_stack_that_refuses_the_photos_fails_the_memory_row(monkeypatch):
    import bench.__main__ as bench
    import local.torchserve

    class Refusing(Serving):  # started, but answers every photo 415: nothing decoded, so no peak worth judging
        def invoke(self, body, content_type):
            return 415, {}, b"{}"

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Refusing)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    report = bench.Report()
    measured_container_memory(bench, report, {"big": b"", "small_jpeg": b"", "bomb_mb": 500.0, "bomb_name": "PNG"})
    assert report.rows[-2][1:] == ("failed: invocation answered 415", "", "", "measured ❌"), report.rows
    assert report.met == 0 and len(report.skipped) == 1


def test_the_worst_case_row_is_skipped_not_dropped_when_no_hostile_decode_was_measured(monkeypatch):
    import bench.__main__ as bench
    import local.torchserve

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Serving)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    report = bench.Report()
    measured_container_memory(bench, report, {"big": b"", "small_jpeg": b""})  # no "bomb_mb": that decode failed
    assert report.rows[-2][1] == "1000 MB" and report.rows[-2][4].endswith("✅"), report.rows
    assert report.rows[-1][1] == "skipped: the hostile images' decode was not measured", report.rows
    assert len(report.skipped) == 1 and report.met == 1


@pytest.mark.parametrize(
    ("bomb_mb", "worst", "verdict"),
    # 2048.4 MB, over the bound, was printed as "2048 MB" beside its ❌
    [(748.0, "2048 MB", "✅"), (748.4, "2048.4 MB", "❌"), (749.0, "2049 MB", "❌")],
)
def test_the_serving_stack_peak_is_its_largest_sample(monkeypatch, bomb_mb, worst, verdict):
    import threading

    import bench.__main__ as bench
    import local.torchserve
    from tests.waiting import HANG_GUARD_S

    sampled_twice = threading.Event()
    samples = iter([1300.0, 1000.0])

    class Peaking(Serving):  # 1300 MB on the first sample, 1000 MB after
        def memory_mb(self):
            mb = next(samples, None)
            if mb is None:
                sampled_twice.set()
            return mb or 1000.0

        def invoke(self, body, content_type):
            assert sampled_twice.wait(HANG_GUARD_S)
            sent.append(body)
            return super().invoke(body, content_type)

    sent: list[bytes] = []

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Peaking)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    report = bench.Report()
    ctx = {"big": b"3 MB photo", "small_jpeg": b"256 px", "bomb_mb": bomb_mb, "bomb_name": "PNG"}
    measured_container_memory(bench, report, ctx)
    assert sent == [b"3 MB photo"] * 10 + [b"256 px"] * 10
    assert report.rows[-2][1] == "1300 MB" and report.rows[-2][4].endswith("2048; Pulumi.dev.yaml has 2048 ✅")
    # the worst case, judged inclusively against memorySizeMb 2048
    assert report.rows[-1][1] == worst and report.rows[-1][4].endswith(verdict), report.rows


@pytest.mark.parametrize(
    ("peak_mb", "printed", "size", "verdict"), [(1365.3, "1365 MB", 2048, "✅"), (1365.4, "1365.4 MB", 3072, "❌")]
)
def test_the_serving_stack_peak_is_printed_on_the_side_of_its_verdict(monkeypatch, peak_mb, printed, size, verdict):
    """A 1365.4 MB peak needs 2048.1 MB with the 1.5x headroom, more than Pulumi.dev.yaml's 2048: printed as "1365 MB",
    it read as fitting (1365 x 1.5 = 2047.5) beside its ❌."""
    import bench.__main__ as bench
    import local.torchserve

    class Steady(Serving):
        def memory_mb(self):
            return peak_mb

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Steady)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    report = bench.Report()
    measured_container_memory(bench, report, {"big": b"", "small_jpeg": b""})
    assert report.rows[-2][1] == printed, report.rows
    assert report.rows[-2][4].endswith(f"1.5x peak: {size}; Pulumi.dev.yaml has 2048 {verdict}"), report.rows


def test_a_section_that_raises_mid_run_is_a_failed_row_and_the_table_is_kept(monkeypatch, tmp_path, capsys):
    """A section that raised after minutes of measuring used to end the run in a traceback: no table, no file, and
    every figure already measured lost. Now it is a failed row with its error, the others still run, and exit 1."""

    def cold_start(*_):
        raise RuntimeError("the served cold-start process failed: MemoryError\nTraceback (most recent call last):")

    ran: list[str] = []
    bench = stub_sections(
        monkeypatch, tmp_path, cold_start=cold_start, local_stack=lambda *_: ran.append("local stack")
    )
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 1
    out, err = capsys.readouterr()
    assert "| latency row | 1.0 ms |" in out and (tmp_path / "latest.md").read_text(encoding="utf-8") == out
    row = next(line for line in out.splitlines() if line.startswith("| cold start |"))
    assert "failed: RuntimeError: the served cold-start process failed: MemoryError" in row and row.endswith("❌ |")
    assert ran == ["local stack"]  # the sections after it still measured
    assert "Traceback" in err  # the detail, for whoever debugs it
    assert "\nmissed targets:\n  cold start: failed: RuntimeError: the served cold-start process failed" in err
    assert err.rstrip().splitlines()[-1] == "targets: 1 met, 1 missed, 0 skipped (not measured)", err


@pytest.mark.parametrize("missed", [False, True])
def test_a_table_that_cannot_be_written_after_measuring_exits_2_and_is_still_printed(
    monkeypatch, tmp_path, capsys, missed
):
    """2 as the help's exit statuses say, a missed target or not: the 1 of a missed target hid the lost table."""
    import shutil

    out = tmp_path / "results"
    out.mkdir()

    def cold_start(report, *_):
        shutil.rmtree(out)  # gone mid-run
        if missed:
            report.add("cold start row", "9 s", target="<= 1 s", ok=False)

    bench = stub_sections(monkeypatch, tmp_path, cold_start=cold_start)
    assert bench.main(["--out", str(out / "latest.md")]) == 2
    printed, err = capsys.readouterr()
    assert "| latency row | 1.0 ms |" in printed and f"error: could not write {out / 'latest.md'}" in err


def test_sections_that_need_a_failed_one_are_skipped_with_the_reason(monkeypatch, tmp_path, capsys):
    def latency(*_):
        raise OSError("no space left on device")

    ran: list[str] = []
    bench = stub_sections(
        monkeypatch,
        tmp_path,
        latency=latency,
        cold_start=lambda *_: ran.append("cold start"),
        preprocessing=lambda *_: ran.append("preprocessing"),
        payload=lambda *_: ran.append("payload"),
    )
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 1
    out, err = capsys.readouterr()
    assert ran == ["cold start", "payload"]  # the ones that do not need the latency section's model
    assert "failed: OSError: no space left on device" in out
    assert "| preprocessing | skipped: needs the latency of one image section, which failed |" in out
    assert "| int8 (opt-in) | skipped: needs the latency of one image section, which failed |" in out
    assert err.rstrip().splitlines()[-1] == "targets: 0 met, 1 missed, 3 skipped (not measured)", err


def test_a_cold_start_process_that_fails_says_which_and_why_on_its_first_line(monkeypatch):
    import subprocess

    import bench.__main__ as bench

    stderr = "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'onnxruntime'\n"
    monkeypatch.setattr(
        bench,
        "subprocess",
        names_of(bench.subprocess, run=lambda argv, **_: subprocess.CompletedProcess(argv, 1, "", stderr)),
    )
    with pytest.raises(RuntimeError) as failed:
        bench.cold_runs({"served": "script"}, runs=1)
    first, *rest = str(failed.value).splitlines()
    assert first == "the served cold-start process failed: ModuleNotFoundError: No module named 'onnxruntime'"
    assert rest[0] == "Traceback (most recent call last):"


def test_java_from_java_home_alone_is_enough_to_measure_the_serving_stack(monkeypatch):
    """TorchServe runs $JAVA_HOME/bin/java when JAVA_HOME is set (README: java on PATH, or JAVA_HOME): the bench
    skipped the memory rows, failing the run, whenever java was not on PATH too."""
    import bench.__main__ as bench
    import local.torchserve

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Serving)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: None))
    monkeypatch.setenv("JAVA_HOME", "/opt/jdk-17")
    report = bench.Report()
    measured_container_memory(bench, report, {"big": b"", "small_jpeg": b"", "bomb_mb": 500.0, "bomb_name": "PNG"})
    assert not report.skipped and report.met == 2, report.rows


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_a_run_stopped_by_a_signal_removes_the_unpacked_model(tmp_path, stop):
    """A CI timeout (SIGTERM) or a closed terminal (SIGHUP) killed the run outright: the unpacked model (85 MB) was
    left in /tmp, and a local stack or TorchServe it had started, each in a session of its own, kept running."""
    import signal
    import subprocess
    import sys

    from bench.__main__ import ROOT

    script = f"""
import sys, time
from pathlib import Path
import bench.__main__ as bench
model = Path({str(tmp_path)!r}) / "model"
bench.extract = lambda _: model.mkdir() or model
def latency(*_):
    print("measuring", flush=True)
    time.sleep(60)
bench.bench_container_peak = lambda *_: None
bench.bench_latency = latency
sys.exit(bench.main(["--out", {str(tmp_path / "latest.md")!r}]))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "measuring"
        proc.send_signal(getattr(signal, stop))
        assert proc.wait(timeout=30) == 128 + getattr(signal, stop)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert not (tmp_path / "model").exists()


def test_the_serving_stack_is_sampled_before_the_run_maps_torch_and_its_rows_print_last(tmp_path):
    """PSS divides each shared page among the processes mapping it. Sampled last, beside a bench process that had
    mapped torch, torchvision and ONNX Runtime from the files the worker maps (the latency rows), the stack's peak
    read 68-146 MB below the stack alone, and the serverless memory was sized from that row. In a fresh process, as
    `make bench` runs: this one may have imported torch already. The photos are made for real (Pillow, numpy), and
    bench_container_peak runs for real, imports and all (local.torchserve): only the stack it starts is a stub."""
    import json
    import subprocess
    import sys

    from bench.__main__ import ROOT, STACK_MEMORY

    script = f"""
import json, os, sys
from pathlib import Path
import bench.__main__ as bench
import local.torchserve
model = Path({str(tmp_path)!r}) / "model"
bench.extract = lambda _: model.mkdir() or model
bench.PROC_STATUS = Path(sys.executable)  # a file that exists: the peak is sampled here, not skipped
os.environ["JAVA_HOME"] = "/opt/jdk-17"
mapped = set()
class Stack:
    def __init__(self, *_):
        pass
    def __enter__(self):
        return self
    def __exit__(self, *_):
        return False
    def memory_mb(self):
        mapped.update(name for name in ("onnxruntime", "torch", "torchvision") if name in sys.modules)
        return 1000.0
    def invoke(self, body, content_type):
        return 200, {{}}, b"[]"
local.torchserve.TorchServeEndpoint = Stack
def latency(report, *_):
    import onnxruntime, torch, torchvision  # as bench_latency's served model and its reference import them
    report.add("latency row", "1.0 ms")
    return {{"meta": {{}}, "classifier": None, "inference": None}}
bench.bench_latency = latency
for name in ("int8", "cold_start", "preprocessing", "hostile_image_memory", "payload", "local_stack"):
    setattr(bench, "bench_" + name, lambda *_: None)
bench.main(["--out", {str(tmp_path / "latest.md")!r}])
print(json.dumps(sorted(mapped)))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [], "the serving stack was sampled beside torch"
    figures = [line.split(" | ")[0] for line in (tmp_path / "latest.md").read_text(encoding="utf-8").splitlines()]
    worst_case = "  serving stack peak + the worst hostile image's decode"
    assert figures[-3:] == ["| latency row", f"| {STACK_MEMORY}, 3 MB photos", f"| {worst_case}"], figures


def test_a_locale_that_is_not_utf8_gets_the_table_and_the_file(tmp_path):
    """Under en_US.ISO-8859-1 (Python coerces only C and POSIX to UTF-8) print() raised UnicodeEncodeError on the
    verdicts' ✅/❌ once everything was measured: a traceback, no table, no file. The C locale with coercion and
    UTF-8 mode off stands in for it here (ASCII, a codeset every glibc has), where write_text() fails alike."""
    import os
    import subprocess
    import sys

    from bench.__main__ import ROOT

    script = f"""
import sys
from pathlib import Path
import bench.__main__ as bench
model = Path({str(tmp_path)!r}) / "model"
bench.extract = lambda _: model.mkdir() or model
def latency(report, *_):
    report.add("met row", "1.0 ms", target="<= 2 ms", ok=True)
    report.add("missed row", "3.0 ms", target="<= 2 ms", ok=False)
    return {{}}
bench.bench_latency = latency
for name in ("int8", "cold_start", "preprocessing", "hostile_image_memory", "payload", "local_stack"):
    setattr(bench, "bench_" + name, lambda *_: None)
bench.bench_container_peak = bench.bench_container_memory = lambda *_: None
sys.exit(bench.main(["--out", {str(tmp_path / "latest.md")!r}]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert done.returncode == 1, done.stderr.decode(errors="replace")  # the missed row, not a traceback
    assert b"| met row | 1.0 ms |  |  | <= 2 ms ? |" in done.stdout, done.stdout
    written = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "| met row | 1.0 ms |  |  | <= 2 ms ✅ |" in written
    assert "| missed row | 3.0 ms |  |  | <= 2 ms ❌ |" in written
    assert b"missed targets:\n  missed row: 3.0 ms (<= 2 ms)" in done.stderr


def test_the_stop_signal_handlers_are_put_back_after_a_run(monkeypatch, tmp_path, capsys):
    import signal

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    bench = stub_sections(monkeypatch, tmp_path)
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


@pytest.mark.parametrize("same", [False, True])
def test_an_artifact_built_from_other_code_than_the_checkouts_is_not_measured(monkeypatch, tmp_path, capsys, same):
    """`python -m bench` (not `make bench`, which builds first) after an edit to inference.py measured the old code
    in model/dist/model.tar.gz without a word, for a table that then went into the README."""
    import bench.__main__ as bench
    from tests.conftest import tar_gz_of

    checkout_code = tmp_path / "inference.py"
    checkout_code.write_bytes(b"new\n")
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": b"new\n" if same else b"old\n"})
    monkeypatch.setattr(bench, "ARTIFACT", artifact)
    monkeypatch.setattr(bench, "CHECKOUT_CODE", checkout_code)
    if same:  # on to the next check, which an --out that is a folder fails before any measuring
        assert bench.main(["--out", str(tmp_path)]) == 2
        assert "Is a directory" in capsys.readouterr().err
        return
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
    assert capsys.readouterr().err == (
        f"error: model artifact {artifact} was built from another code/inference.py than {checkout_code} holds now: "
        "run `make model` to rebuild it\n"
    )


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_an_int8_artifact_is_refused_before_any_measuring_and_unpacked_nowhere(
    monkeypatch, tmp_path, capsys, precision
):
    """`make bench INT8=1` (or `python -m bench` after `make model INT8=1`) measured the int8 graph as "ONNX Runtime
    fp32", then quantised it again for the int8 row, which ONNX Runtime refused (two nodes of one name): a failed row
    and exit 1 after minutes. The README's int8 figures are the fp32 artifact's, quantised by the bench."""
    import json

    import bench.__main__ as bench
    from tests.conftest import tar_gz_of

    code = tmp_path / "inference.py"
    code.write_bytes(b"code\n")
    meta = json.dumps({"model": "mobilenet_v2", "precision": precision}).encode()
    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"code/inference.py": b"code\n", "metadata.json": meta})
    monkeypatch.setattr(bench, "ARTIFACT", artifact)
    monkeypatch.setattr(bench, "CHECKOUT_CODE", code)
    unpacked, extract = [], bench.extract
    monkeypatch.setattr(bench, "extract", lambda path: unpacked.append(extract(path)) or unpacked[-1])

    def measured(*_args, **_kwargs):
        raise RuntimeError("measured")

    monkeypatch.setattr(bench, "run_sections", measured)
    if precision == "fp32":  # past the check: the sections run
        with pytest.raises(RuntimeError, match="measured"):
            bench.main(["--out", str(tmp_path / "latest.md")])
    else:
        assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
        assert capsys.readouterr().err == (
            "error: the model artifact is int8 (built with INT8=1): the bench measures the fp32 graph and quantises"
            " it for its int8 row itself; run `make bench` without INT8=1, which rebuilds the fp32 artifact first\n"
        )
    [model_dir] = unpacked
    assert not model_dir.exists()  # removed whichever way the run ended


def test_a_missing_artifact_is_an_error_line_like_every_other(monkeypatch, tmp_path, capsys):
    """`python -m bench` before `make model`: the one refusal of the bench that did not start with "error:"."""
    import bench.__main__ as bench

    monkeypatch.setattr(bench, "ARTIFACT", tmp_path / "model.tar.gz")
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
    assert capsys.readouterr().err == "error: model/dist/model.tar.gz is missing: run `make model`\n"


def tempfile_in(directory, **names):
    """The tempfile module as bench.__main__ looks it up, its TMPDIR `directory` and `names` replaced: tempfile's own
    tempdir (or mkdtemp) set for the process would move (or fail) every other thread's temporary files too."""
    import functools
    import tempfile
    from types import SimpleNamespace

    own = {"mkdtemp": functools.partial(tempfile.mkdtemp, dir=directory), "gettempdir": lambda: str(directory)}
    return SimpleNamespace(**{**vars(tempfile), **own, **names})


def test_a_full_temporary_directory_is_named_and_make_model_not_advised(monkeypatch, tmp_path, capsys):
    """A TMPDIR too full for the unpacked model said "cannot unpack model/dist/model.tar.gz: [Errno 28] No space
    left on device: run `make model`": the artifact was sound, and the full directory was not named. The figure counts
    the copy of the artifact the run keeps beside the unpacked model: with room for the "60 MB unpacked" the line
    gave, but not for the 20 MB copy too, it was refused with a figure it had room for."""
    import errno
    import os
    import tarfile
    from types import SimpleNamespace

    import bench.__main__ as bench
    from tests.conftest import tar_gz_of

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"model.onnx": os.urandom(3_000_000)})  # ~3 MB compressed too
    monkeypatch.setattr(bench, "ARTIFACT", artifact)

    class NoRoom(tarfile.TarFile):
        def makefile(self, *_args, **_kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench, "tarfile", SimpleNamespace(**{**vars(tarfile), "open": NoRoom.open}))
    monkeypatch.setattr(bench, "tempfile", tempfile_in(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
    assert capsys.readouterr().err == (
        f"error: no room in {tmp_path / 'tmp'} to unpack the model artifact {artifact} (3 MB unpacked, 6 MB with the"
        " copy of the artifact kept there): No space left on device; free some there, or set TMPDIR to a directory"
        " with room\n"
    )
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_temporary_directory_too_full_for_even_a_directory_is_named_too(monkeypatch, tmp_path, capsys):
    # Not a block or inode free: the directory to unpack into is refused first, and that said "cannot unpack
    # model/dist/model.tar.gz: [Errno 28] ...: run `make model`" again.
    import errno

    import bench.__main__ as bench

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "tmp" / "bench-model-x"))

    monkeypatch.setattr(bench, "tempfile", tempfile_in(tmp_path / "tmp", mkdtemp=full))
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no room in {tmp_path / 'tmp'} to unpack the model artifact {bench.ARTIFACT} ("), err


def test_an_artifact_that_cannot_be_unpacked_is_refused_and_leaves_nothing_behind(monkeypatch, tmp_path, capsys):
    """A damaged model.tar.gz (a truncated copy; `python -m bench` does not rebuild it as `make bench` does) ended in
    an EOFError traceback and left the part already unpacked in /tmp."""

    import bench.__main__ as bench

    truncated = tmp_path / "model.tar.gz"
    truncated.write_bytes(bench.ARTIFACT.read_bytes()[:200_000])
    monkeypatch.setattr(bench, "ARTIFACT", truncated)
    monkeypatch.setattr(bench, "tempfile", tempfile_in(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 2
    assert "error: cannot unpack" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_serving_stack_too_big_for_the_largest_memory_size_fails_its_row(monkeypatch):
    from types import SimpleNamespace

    import bench.__main__ as bench
    import local.torchserve

    class Huge(Serving):
        def memory_mb(self):
            return 4500.0  # x1.5 = 6750 MB: more than the largest serverless size

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Huge)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    # configured at the largest size: only the missing headroom can fail the row (it passed before, at 6144)
    monkeypatch.setattr(bench, "load_stack_file", lambda _: SimpleNamespace(memory_size_mb=6144))
    report = bench.Report()
    measured_container_memory(bench, report, {"big": b"", "small_jpeg": b"", "bomb_mb": 500.0, "bomb_name": "PNG"})
    assert report.rows[-2][1] == "4500 MB" and report.rows[-2][4].endswith("❌"), report.rows
    assert "none (the largest, 6144, is too small)" in report.rows[-2][4]
    assert len(report.failures) == 1 and report.met == 1  # 4500 + 500 MB fits in 6144: only the headroom fails


def test_photos_that_cannot_be_made_skip_the_sections_that_send_them(monkeypatch, tmp_path, capsys):
    def photos():
        raise FileNotFoundError("tests/fixtures/images/chelsea.jpg")

    ran: list[str] = []
    bench = stub_sections(
        monkeypatch,
        tmp_path,
        cold_start=lambda *_: ran.append("cold start"),
        hostile_image_memory=lambda *_: ran.append("hostile images"),
        payload=lambda *_: ran.append("payload"),
        container_peak=lambda *_: ran.append("serving stack peak"),
    )
    monkeypatch.setattr(bench, "request_photos", photos)
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 1
    out, err = capsys.readouterr()
    assert ran == ["cold start", "hostile images"]  # the two that make their own inputs
    assert "| request photos | failed: FileNotFoundError: tests/fixtures/images/chelsea.jpg |" in out
    assert "| payload | skipped: needs the request photos section, which failed |" in out
    # The memory once, in its place at the end: no skipped "serving stack peak" row near the top as well.
    assert "| serving stack peak |" not in out
    assert "| serving stack memory | skipped: needs the request photos section, which failed |" in out
    assert err.rstrip().splitlines()[-1] == "targets: 0 met, 1 missed, 6 skipped (not measured)", err


def test_a_serving_stack_peak_that_raises_is_one_failed_row_where_its_rows_print(monkeypatch, tmp_path, capsys):
    """The serving stack's peak is sampled first and its rows print last: an error of its own (not the stack's, whose
    rows say it) is one failed memory row at the end, not a failed "serving stack peak" row near the top and a skipped
    memory row below it, and the run fails as for a missed target."""

    def peak(_):
        raise ImportError("cannot import name 'TorchServeEndpoint'\ndetails")

    bench = stub_sections(monkeypatch, tmp_path, container_peak=peak)
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 1
    out, err = capsys.readouterr()
    assert "| serving stack peak |" not in out
    assert out.rstrip().splitlines()[-1] == (
        "| serving stack memory | failed: ImportError: cannot import name 'TorchServeEndpoint' |  |  | measured ❌ |"
    )
    assert err.rstrip().splitlines()[-1] == "targets: 1 met, 1 missed, 0 skipped (not measured)", err


@pytest.mark.parametrize(("argv", "repeats", "runs"), [(["--quick"], 10, 3), ([], 40, 5)])
def test_quick_is_a_run_of_fewer_repeats(monkeypatch, tmp_path, capsys, argv, repeats, runs):
    # Still an odd number of cold starts: --quick's median of 2 was their mean.
    asked: list[int] = []
    cold: list[int] = []

    def latency(report, model_dir, n, small_jpeg):
        asked.append(n)
        return {}

    bench = stub_sections(monkeypatch, tmp_path, latency=latency, cold_start=lambda _, __, n: cold.append(n))
    bench.main([*argv, "--out", str(tmp_path / "latest.md")])
    assert (asked, cold) == ([repeats], [runs])


def test_an_int8_failure_takes_only_its_own_rows(monkeypatch, tmp_path, capsys):
    """int8 is opt-in and only reported: it ran inside the latency section, so its failure skipped every section
    that needs that one (preprocessing, payload, the local stack, the serving stack's memory)."""

    def int8(*_):
        raise RuntimeError("quantizer refused the graph")

    ran: list[str] = []
    bench = stub_sections(
        monkeypatch,
        tmp_path,
        int8=int8,
        preprocessing=lambda *_: ran.append("preprocessing"),
        local_stack=lambda *_: ran.append("local stack"),
        container_memory=lambda *_: ran.append("serving stack memory"),
    )
    assert bench.main(["--out", str(tmp_path / "latest.md")]) == 1
    out, _ = capsys.readouterr()
    assert ran == ["preprocessing", "local stack", "serving stack memory"]
    assert "| int8 (opt-in) | failed: RuntimeError: quantizer refused the graph |" in out
    assert "latency row" in out and "skipped" not in out


def test_int8_speed_is_timed_in_turn_with_the_served_fp32_session(tmp_path):
    """The int8 row's ratio was set against fp32's time from the latency pair: measured earlier in the run and right
    after the served path's glue, while int8 ran back to back later. Both sides are now timed here, in turn. In a
    Python of its own: bench_int8 imports onnxruntime inside it, with no name of bench's to replace, and
    onnxruntime.InferenceSession replaced here would be every thread's."""
    import json
    import subprocess
    import sys

    import bench.__main__ as bench

    script = f"""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime

import bench.__main__ as bench
from model import package
from tests.conftest import names_of

clock = [0.0]
bench.time = names_of(bench.time, perf_counter=lambda: clock[0])  # the bench's perf_counter reads clock[0]
calls = []
probs = np.arange(10, dtype=np.float32)[None]

def takes(name, ms, out):
    def run(*_):
        calls.append(name)
        clock[0] += ms / 1000
        return out

    return run

class Session:  # its top 5 [1, 0, 9, 8, 7] against fp32's [9, 8, 7, 6, 5]: top-1 differs, 3 of 5 shared
    def __init__(self, *_, **__):
        self.run = takes("int8", 2.0, [np.roll(probs, 2)])

package.quantize_int8 = lambda onnx, meta, photos: b"int8 graph"
onnxruntime.InferenceSession = Session
Path({str(tmp_path / "model.onnx")!r}).write_bytes(b"fp32 graph")
classifier = SimpleNamespace(preprocessing=None, run=takes("fp32", 4.0, probs))
inference = SimpleNamespace(
    ort_session_options=lambda ort, threads: None, decode_image=lambda data: data, preprocess=lambda img, pre: img
)
report = bench.Report()
bench.bench_int8(report, Path({str(tmp_path)!r}), {{}}, classifier, inference, repeats=3)
print(json.dumps({{"calls": calls[-12:], "rows": [list(row) for row in report.rows]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=bench.ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ran = json.loads(done.stdout.splitlines()[-1])
    assert ran["calls"] == ["fp32", "int8"] * 6  # the timed rounds: side by side, not one block after the other
    rows = ran["rows"]
    assert rows[0][1:4] == ["2.0 ms", "4.0 ms fp32", "2.00x"], rows
    photos = len(list(bench.PHOTOS.glob("*.jpg")))
    assert rows[1][1] == f"top-1 0/{photos}, top-5 overlap {3 * photos}/{5 * photos}", rows


@pytest.mark.parametrize("before", [None, "onnxruntime"])
def test_the_torchscript_backend_switch_is_undone_however_its_load_ends(monkeypatch, before):
    """The cold-start section runs after a failed latency section now: a MODEL_BACKEND=torchscript left behind by a
    TorchScript load that raised would make it measure the fallback instead of the served backend."""
    import os

    from bench.__main__ import environ_set

    if before is None:
        monkeypatch.delenv("MODEL_BACKEND", raising=False)
    else:
        monkeypatch.setenv("MODEL_BACKEND", before)
    with pytest.raises(RuntimeError), environ_set("MODEL_BACKEND", "torchscript"):
        assert os.environ["MODEL_BACKEND"] == "torchscript"
        raise RuntimeError("the TorchScript load failed")
    assert os.environ.get("MODEL_BACKEND") == before


def test_the_naive_baselines_build_the_artifacts_own_architecture(tmp_path):
    """The eager model and transforms (latency, preprocessing) and the naive cold-start process follow
    metadata.json's model and preset, so the baselines run for an artifact of another torchvision classifier."""
    import json
    import subprocess
    import sys

    import torch
    import torchvision

    import bench.__main__ as bench

    meta = {"model": "resnet18", "weights_preset": "IMAGENET1K_V1"}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "model.pth")
    eager, transform = bench.torchvision_reference(meta)
    eager.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    assert (transform.resize_size, transform.crop_size) == ([256], [224])
    # the preset metadata.json names, not the architecture's default (mobilenet_v2's IMAGENET1K_V2 resizes to 232)
    _, v1 = bench.torchvision_reference({"model": "mobilenet_v2", "weights_preset": "IMAGENET1K_V1"})
    assert v1.resize_size == [256]
    naive = subprocess.run(
        [sys.executable, "-c", bench.cold_scripts(tmp_path)["naive"]], capture_output=True, text=True
    )
    assert naive.returncode == 0, naive.stderr
    assert set(json.loads(naive.stdout)) == {"imports", "load", "first", "rss_mb"}


def test_the_local_stack_rows_reach_the_stack_directly_whatever_the_shells_proxy_says(monkeypatch):
    # Behind a corporate proxy, httpx sent 127.0.0.1 to it, and every local stack row failed on the proxy's 502.
    import json
    from types import SimpleNamespace

    import bench.__main__ as bench
    import tests.conftest
    from tests.proxies import behind_a_proxy, http_server

    answer = json.dumps({"latency_ms": {"total": 2.0, "endpoint": 1.0}}).encode()
    timing = {"server-timing": "event;dur=0.1, handler;dur=1.5"}
    with behind_a_proxy(monkeypatch) as via_proxy, http_server(200, answer, timing) as (url, seen):
        monkeypatch.setattr(tests.conftest, "LocalStack", lambda *_: SimpleNamespace(url=url, stop=lambda: None))
        inference = SimpleNamespace(input_fn=lambda *a: None, predict_fn=lambda *a: None, output_fn=lambda *a: None)
        report = bench.Report()
        bench.bench_local_stack(report, {"small_jpeg": b"jpeg", "inference": inference, "classifier": None}, 1)
    assert via_proxy == [] and seen and set(seen) == {"POST /predict"}
    throughput = [row for row in report.rows if row[0].startswith("throughput")]
    assert throughput and all(row[4].endswith("✅") for row in throughput), throughput


def test_the_local_stack_rows_leave_no_connection_open(monkeypatch):
    """The round-trip rows' client was never closed: its keep-alive connection stayed open on the stack through the
    throughput passes, and `python -X dev -m bench` said "ResourceWarning: unclosed <socket.socket ...>"."""
    import gc
    import json
    import warnings
    from types import SimpleNamespace

    import bench.__main__ as bench
    import tests.conftest
    from tests.proxies import http_server

    answer = json.dumps({"latency_ms": {"total": 2.0, "endpoint": 1.0}}).encode()
    timing = {"server-timing": "event;dur=0.1, handler;dur=1.5"}
    inference = SimpleNamespace(input_fn=lambda *a: None, predict_fn=lambda *a: None, output_fn=lambda *a: None)
    with http_server(200, answer, timing) as (url, _), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        monkeypatch.setattr(tests.conftest, "LocalStack", lambda *_: SimpleNamespace(url=url, stop=lambda: None))
        ctx = {"small_jpeg": b"jpeg", "inference": inference, "classifier": None}
        bench.bench_local_stack(bench.Report(), ctx, 1)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_the_rows_measured_after_a_rebuild_measure_the_model_the_run_started_with(monkeypatch, tmp_path, capsys):
    """`make model INT8=1` in another terminal during `make bench`: the local stack's and the serving stack's rows
    started from model/dist/model.tar.gz as it was by then, in one table with the rows of the model unpacked at the
    start, and nothing said which model a row measured."""
    from pathlib import Path
    from types import SimpleNamespace

    import bench.__main__ as real
    import local.torchserve
    import tests.conftest
    from tests.conftest import tar_gz_of

    artifact = tar_gz_of(tmp_path / "model.tar.gz", {"metadata.json": b"the model the run started with"})
    started_with = artifact.read_bytes()
    served: list[bytes] = []

    def latency(report, *_):
        inference = SimpleNamespace(input_fn=lambda *a: None, predict_fn=lambda *a: None, output_fn=lambda *a: None)
        return {"inference": inference, "classifier": None}

    def rebuild():  # as the build writes it: a whole new file renamed over the old, before either stack starts
        tar_gz_of(tmp_path / "rebuilt.tar.gz", {"metadata.json": b"rebuilt"}).replace(artifact)
        return {"big": b"", "small_jpeg": b""}

    def local_stack(*args):  # python -m local serves --artifact, or else the stack config's, here bench.ARTIFACT
        named = Path(args[args.index("--artifact") + 1]) if "--artifact" in args else real.ARTIFACT
        served.append(named.read_bytes())
        raise RuntimeError("seen enough")

    class Endpoint:
        def __init__(self, artifact, **_):
            served.append(Path(artifact).read_bytes())

        def __enter__(self):
            raise local.torchserve.TorchServeError("seen enough")

        def __exit__(self, *_):
            return False

    extract = real.extract
    bench = stub_sections(
        monkeypatch,
        tmp_path,
        latency=latency,
        local_stack=real.bench_local_stack,
        container_peak=real.bench_container_peak,
        container_memory=real.bench_container_memory,
    )
    monkeypatch.setattr(bench, "request_photos", rebuild)
    monkeypatch.setattr(bench, "extract", extract)
    monkeypatch.setattr(bench, "ARTIFACT", artifact)
    monkeypatch.setattr(tests.conftest, "LocalStack", local_stack)
    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", Endpoint)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    bench.main(["--out", str(tmp_path / "latest.md")])
    assert len(served) == 2, capsys.readouterr().err
    assert served == [started_with, started_with], "a row measured the rebuilt model"


def test_without_proc_the_memory_rows_say_so_and_the_cold_start_keeps_its_timings(monkeypatch, tmp_path):
    """macOS has no /proc/self/status: the cold-start processes died on opening it (the section failed, its timings
    lost), the hostile decodes likewise, and the serving stack was started for minutes to end in psutil's
    AttributeError (no PSS there). The peak is None, the timings stay, and the memory rows say why they are missing."""
    import json
    import subprocess
    import sys
    from types import SimpleNamespace

    import bench.__main__ as bench
    import local.torchserve

    def peak() -> str:  # as each measuring script takes it, in a fresh process
        script = bench.peak_rss_source() + "print(peak_rss_mb())"
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout

    assert float(peak()) > 1  # MB: Linux's
    monkeypatch.setattr(bench, "PROC_STATUS", tmp_path / "no-proc" / "status")
    assert peak() == "None\n"

    def run(cmd, **kwargs):
        sample = {"imports": 1.0, "load": 1.0, "first": 0.5, "rss_mb": None, "backend": "onnxruntime"}
        return SimpleNamespace(returncode=0, stdout=json.dumps(sample) + "\n", stderr="")

    monkeypatch.setattr(bench, "subprocess", names_of(bench.subprocess, run=run))
    report = bench.Report()
    medians = bench.cold_runs({"naive": "naive", "served": "served"}, runs=3)
    assert medians["served"]["in_process"] == 2.5 and medians["served"]["rss_mb"] is None
    monkeypatch.setattr(bench, "cold_scripts", lambda model_dir: {})
    monkeypatch.setattr(bench, "cold_runs", lambda scripts, n: medians)
    bench.bench_cold_start(report, tmp_path, 3)
    assert report.rows[0][1].startswith("2.50 s") and report.rows[-1][1] == f"not measured: {bench.NO_PROC_STATUS}"

    def started(*_):
        raise AssertionError("the serving stack was started, to be measured without /proc")

    monkeypatch.setattr(local.torchserve, "TorchServeEndpoint", started)
    monkeypatch.setattr(bench, "shutil", names_of(bench.shutil, which=lambda _: "/usr/bin/java"))
    monkeypatch.setattr(bench, "hostile_images", lambda: started())
    ctx: dict = {"big": b"", "small_jpeg": b""}
    bench.bench_hostile_image_memory(report, tmp_path, ctx)
    measured_container_memory(bench, report, ctx)
    assert "bomb_mb" not in ctx and len(report.skipped) == 3, report.skipped
    assert all(row[1] == f"skipped: {bench.NO_PROC_STATUS}" for row in report.rows[-3:]), report.rows


def test_a_section_further_down_a_broken_chain_says_what_became_of_the_one_it_needs(capsys):
    """Two steps from a failed section the reason names the step between, as failed or skipped: a section needing one
    printed later that failed takes its failure (a failed row), and one needing that row reads "which failed"; one
    needing a skipped row reads "which was skipped". Every chain the bench has today is one step long, so swapping the
    two words survived every test (the mutation audit)."""
    from bench.__main__ import run_sections

    rows: list[tuple[str, str, str]] = []

    class Rows:
        def add(self, name: str, value: str, target: str, ok: bool) -> None:
            rows.append(("row", name, value))

        def skip(self, name: str, why: str, target: str) -> None:
            rows.append(("skipped", name, why))

    def fails() -> None:
        raise OSError("no space left on device")

    run_sections(
        Rows(),
        [
            ("photos", (), fails),
            ("payload", ("photos",), lambda: None),
            ("payload check", ("payload",), lambda: None),
            ("sampled peak", (), fails),
            ("memory", ("sampled peak",), lambda: None),
            ("memory check", ("memory",), lambda: None),
        ],
        rows_printed_later={"sampled peak"},
    )
    assert rows == [
        ("row", "photos", "failed: OSError: no space left on device"),
        ("skipped", "payload", "needs the photos section, which failed"),
        ("skipped", "payload check", "needs the payload section, which was skipped"),
        ("row", "memory", "failed: OSError: no space left on device"),
        ("skipped", "memory check", "needs the memory section, which failed"),
    ]
    assert capsys.readouterr().err.count("Traceback") == 2


def test_throughput_is_judged_up_to_max_concurrency_and_not_above(monkeypatch):
    """At or below MaxConcurrency every answer must be a 200; above it 429s are the design, so no verdict."""
    import json
    from types import SimpleNamespace

    import bench.__main__ as bench
    import tests.conftest
    from tests.proxies import http_server

    answer = json.dumps({"latency_ms": {"total": 2.0, "endpoint": 1.0}}).encode()
    timing = {"server-timing": "event;dur=0.1, handler;dur=1.5"}
    inference = SimpleNamespace(input_fn=lambda *a: None, predict_fn=lambda *a: None, output_fn=lambda *a: None)
    monkeypatch.setattr(bench, "load_stack_file", lambda path: SimpleNamespace(max_concurrency=2))
    with http_server(200, answer, timing) as (url, _):
        monkeypatch.setattr(tests.conftest, "LocalStack", lambda *_: SimpleNamespace(url=url, stop=lambda: None))
        report = bench.Report()
        bench.bench_local_stack(report, {"small_jpeg": b"jpeg", "inference": inference, "classifier": None}, 1)
    throughput = [row for row in report.rows if row[0].startswith("throughput")]
    assert [row[0].split(",")[1] for row in throughput] == [" 1 client(s)", " 2 client(s)", " 4 client(s)"]
    assert [row[4].endswith("✅") for row in throughput] == [True, True, False]
    assert throughput[2][4] == "all 200: 600/600", throughput  # 5 passes of 30 a client: counted, not judged


@pytest.mark.parametrize(
    ("tv_ms", "ours_top", "ratio", "verdicts"),
    [(40.0, 1, "4.00x", ("✅", "✅")), (39.96, 1, "3.996x", ("❌", "✅")), (40.0, 2, "4.00x", ("✅", "❌"))],
)
def test_the_12_mp_preprocessing_is_judged_at_4x_faster_with_the_same_top_1(
    monkeypatch, tv_ms, ours_top, ratio, verdicts
):
    import io
    from types import SimpleNamespace

    import numpy as np
    import torch
    from PIL import Image

    import bench.__main__ as bench

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
    medians = iter([{"tv": tv_ms, "ours": 10.0}, {"tv": 2.0, "ours": 1.0}])
    # each measured once, for the page-fault note; the times are the figures the verdict is judged on
    monkeypatch.setattr(
        bench, "interleaved_medians", lambda fns, *_, **__: [fn() for fn in fns.values()] and next(medians)
    )
    big = buf.getvalue() + bytes(3_100_000 - len(buf.getvalue()))  # the photo's size; Pillow ignores what follows
    ctx = {
        "big": big,
        "small_jpeg": buf.getvalue(),
        "inference": SimpleNamespace(decode_image=lambda data, draft_to: None, preprocess=lambda img, pre: None),
        "classifier": SimpleNamespace(
            preprocessing=SimpleNamespace(resize=256),
            labels=["cat", "dog", "cup"],
            run=lambda batch: np.eye(3, dtype=np.float32)[[ours_top]],
        ),
        "transform": lambda img: torch.zeros(3, 4, 4),
        "eager": lambda x: torch.tensor([[0.0, 1.0, 0.0]]),  # torchvision's top-1: dog
    }
    report = bench.Report()
    bench.bench_preprocessing(report, ctx, 1)
    speed, top1, small = report.rows
    assert speed[0] == "preprocess a 4000x3000 JPEG (3.1 MB) to the input tensor"  # as the README's table: MB of 10^6
    assert speed[1:] == ("10.0 ms", f"{tv_ms:.1f} ms torchvision", ratio, f">= 4x faster {verdicts[0]}")
    assert top1[1:] == (["cat", "dog", "cup"][ours_top], "dog", "", f"unchanged {verdicts[1]}")
    assert small[1:] == ("1.00 ms", "2.00 ms torchvision", "2.00x", "")


def served_path_parts(alone_ms: float) -> dict[str, float]:
    """served_path_by_cache_state's medians, the model alone at alone_ms (what the contention check reads)."""
    parts = dict.fromkeys(("input_fn", "predict_fn", "output_fn"), 1.0) | {"model alone": alone_ms}
    for name in ("input_fn", "output_fn"):
        parts |= {f"{name} warm": 0.5, f"{name} read": 0.5, f"{name} spin": 0.5}
    return parts


@pytest.mark.parametrize(
    ("ort_ms", "served_ms", "alone_ms", "naive_ms", "beside_naive_ms", "served", "naive"),
    [
        (3.0, 3.6, 3.0, 10.8, 3.6, "1.20x <= 1.2x ✅", "3.00x >= 3x faster ✅"),  # each exactly at its bound: met
        (3.0, 3.63, 3.0, 10.7, 3.6, "1.21x <= 1.2x ❌", "2.97x >= 3x faster ❌"),
        (
            3.0,
            3.6,
            4.6,
            10.8,
            3.6,
            "1.20x <= 1.2x ⚠️ unreliable",
            "3.00x >= 3x faster ✅",
        ),  # the model alone 1.53x: contended
        # the served path 1.5x slower beside the naive path than beside ORT: still judged
        (3.0, 3.6, 3.0, 16.2, 5.4, "1.20x <= 1.2x ✅", "3.00x >= 3x faster ✅"),
        # 1.53x slower there: contended, the miss not decided (run 48 came to about 1.5x: 7.8 against 5.2 ms)
        (3.0, 3.6, 3.0, 13.8, 5.5, "1.20x <= 1.2x ✅", "2.51x >= 3x faster ⚠️ unreliable"),
    ],
)
def test_the_served_path_is_judged_at_1_2x_ort_and_3x_faster_than_the_naive_path(
    monkeypatch, model_dir, ort_ms, served_ms, alone_ms, naive_ms, beside_naive_ms, served, naive
):
    """The latency section's two targets, on the real artifact with its timings given: no test ran its verdicts (the
    mutation audit: their bounds and the contention checks could change unnoticed)."""
    import sys

    import bench.__main__ as bench

    medians = iter(
        [
            {"ort": ort_ms, "served": served_ms},
            {"eager": 12.0, "naive_path": naive_ms, "torchscript": 6.0, "served": beside_naive_ms},
        ]
    )
    monkeypatch.setattr(bench, "interleaved_medians", lambda fns, *_, **__: next(medians))
    monkeypatch.setattr(bench, "served_path_by_cache_state", lambda *_: served_path_parts(alone_ms))
    monkeypatch.setattr(sys, "path", list(sys.path))  # bench_latency puts the model's code first
    imported = sys.modules.get("inference")
    try:
        report = bench.Report()
        bench.bench_latency(report, model_dir, 1, (bench.PHOTOS / "coffee.jpg").read_bytes())
    finally:
        sys.modules.pop("inference", None)
        if imported is not None:
            sys.modules["inference"] = imported
    eager, scripted, ort = report.rows[:3]
    assert eager[:2] == ("1 image, model only: naive eager torchvision", "12.0 ms")
    # each backend's speed-up over eager: how many times faster, not slower
    assert scripted[1:] == ("6.0 ms", "12.0 ms eager", "2.00x", "") and "TorchScript" in scripted[0]
    assert ort[1:] == ("3.0 ms", "12.0 ms eager", "4.00x", "") and "ONNX Runtime" in ort[0]
    (vs_ort,) = [row for row in report.rows if row[0].startswith("served path (") and "vs ORT fp32" in row[0]]
    (vs_naive,) = [row for row in report.rows if row[0].startswith("served path vs naive eager path")]
    assert (" ".join(vs_ort[3:]), " ".join(vs_naive[3:])) == (served, naive)
    undecided = [line for line in report.failures if "not decided" in line]
    assert len(undecided) == served.endswith("unreliable") + naive.endswith("unreliable")
    if naive.endswith("unreliable"):
        assert "the served path took 3.6 ms in the served/ORT pair and 5.5 ms measured again" in undecided[0]
    assert report.rows[-1][4] == "< 1e-4, same order ✅"
    (inside,) = [note for note in report.notes if note.startswith("inside the served path")]
    assert "The 1.2x target leaves 0.60 ms." in inside  # what the served path may add to ORT's 3.0 ms: a fifth


def latency_inference(monkeypatch, model_dir):
    """The artifact's inference module, as bench_latency's `import inference` will find it (a fresh one: it imports
    the model's own), for a test to patch."""
    import sys

    from local.runtime import load_inference_module

    monkeypatch.setattr(sys, "path", list(sys.path))  # the model's code goes first
    inference = load_inference_module(model_dir / "code", "bench_latency_inference")
    monkeypatch.setitem(sys.modules, "inference", inference)
    return inference


def test_the_latency_targets_time_the_whole_served_path_against_the_model_alone(monkeypatch, model_dir):
    """What each side of the two latency targets runs, and in what order. The 1.2x pair: ORT's run alone against
    input_fn + predict_fn + output_fn, three warm-ups each, then five rounds a repeat in turn with no settle call (each
    served call right after a model run, as in a served process). The 3x row's four sides: five settle calls after
    each switch (eager torch leaves the served path slower for several calls). Every test stubbed these timings
    whole, so the served path without output_fn, the ORT side timing predict_fn, or the settle calls dropped all
    passed (the mutation audit)."""
    import bench.__main__ as bench

    inference = latency_inference(monkeypatch, model_dir)
    calls: list[str] = []

    def spied(name, fn):
        return lambda *args: calls.append(name) or fn(*args)

    for name in ("input_fn", "predict_fn", "output_fn"):
        monkeypatch.setattr(inference, name, spied(name, getattr(inference, name)))
    model_fn = inference.model_fn

    def spied_model_fn(path):
        classifier = model_fn(path)
        classifier.run = spied("model", classifier.run)
        return classifier

    monkeypatch.setattr(inference, "model_fn", spied_model_fn)
    measured: list[tuple[list[str], dict[str, list[str]]]] = []
    real = bench.interleaved_medians

    def interleaved(fns, *args, **kwargs):
        order: list[str] = []
        first: dict[str, list[str]] = {}

        def side(name, fn):
            def run():
                order.append(name)
                calls.clear()
                fn()
                first.setdefault(name, list(calls))

            return run

        real({name: side(name, fn) for name, fn in fns.items()}, *args, **kwargs)
        measured.append((order, first))
        return dict.fromkeys(fns, 1.0)

    monkeypatch.setattr(bench, "interleaved_medians", interleaved)
    monkeypatch.setattr(bench, "served_path_by_cache_state", lambda *_: served_path_parts(1.0))
    bench.bench_latency(bench.Report(), model_dir, 1, (bench.PHOTOS / "coffee.jpg").read_bytes())

    (pair, pair_runs), (baselines, baseline_runs) = measured
    served = ["input_fn", "predict_fn", "model", "output_fn"]
    assert pair_runs == {"ort": ["model"], "served": served}
    assert pair == ["ort"] * 3 + ["served"] * 3 + ["ort", "served"] * 5
    sides = ("eager", "naive_path", "torchscript", "served")
    assert baseline_runs == {"eager": [], "naive_path": [], "torchscript": [], "served": served}
    assert baselines == [name for name in sides for _ in range(3)] + [name for name in sides for _ in range(6)]


def local_stack_on_a_fake_clock(monkeypatch, post_ms, status=lambda n: 200) -> dict:
    """bench_local_stack's ctx, with the stack and the clock faked: the in-process path takes 3 ms after three
    warm-up calls of 100 ms, and the stack answers the n-th POST (from 0, in the order taken) after post_ms(n) ms,
    with status(n). The stack is an HTTP server of the test's own on 127.0.0.1, which moves the clock on as it takes
    each POST: httpx.Client replaced (bench_local_stack imports httpx inside it) would be every thread's."""
    import http.server
    import json
    import threading
    from types import SimpleNamespace

    import tests.conftest

    clock = fake_clock(monkeypatch)
    paths: list[int] = []

    def output_fn(*_):
        paths.append(1)
        clock[0] += (100.0 if len(paths) <= 3 else 3.0) / 1000

    posts, lock = [0], threading.Lock()  # the throughput passes post from several threads
    answer = json.dumps({"latency_ms": {"total": 2.0, "endpoint": 1.0}}).encode()

    class Stack(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            with lock:
                clock[0] += post_ms(posts[0]) / 1000
                n, posts[0] = posts[0], posts[0] + 1
            self.send_response(status(n))
            self.send_header("server-timing", "event;dur=0.1, handler;dur=1.5")
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_):  # not on stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stack)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop():
        server.shutdown()
        server.server_close()

    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(tests.conftest, "LocalStack", lambda *_: SimpleNamespace(url=url, stop=stop))
    inference = SimpleNamespace(input_fn=lambda *a: None, predict_fn=lambda *a: None, output_fn=output_fn)
    return {"small_jpeg": b"jpeg", "inference": inference, "classifier": None}


@pytest.mark.parametrize(
    ("rtt_ms", "shown", "verdict"),
    # 18.000000000001: an overhead a float's hair over 15 ms, met at the bound as every target's is (meets)
    [(18.0, "15.0", "✅"), (18.000000000001, "15.0", "✅"), (18.04, "15.04", "❌")],
)
def test_the_local_stack_overhead_is_the_round_trip_minus_the_in_process_path_at_most_15_ms(
    monkeypatch, rtt_ms, shown, verdict
):
    """The overhead row's verdict ran in no test (its round trips were real, a few ms against 15): its bound, what it
    judged and the warm-ups left out of both medians could all change unnoticed. On a fake clock: a round trip takes
    rtt_ms after five of 500 ms."""
    import bench.__main__ as bench

    ctx = local_stack_on_a_fake_clock(monkeypatch, lambda n: 500.0 if n < 5 else rtt_ms)
    report = bench.Report()
    bench.bench_local_stack(report, ctx, 1)
    overhead = report.rows[0]
    assert overhead[0] == "local stack: HTTP round trip through /predict minus in-process path"
    assert overhead[1:] == (f"{shown} ms", f"{rtt_ms:.1f} ms RTT, 3.0 ms in process", "", f"<= 15 ms {verdict}")


def test_the_throughput_rows_give_the_median_pass_and_the_range(monkeypatch):
    """Short passes are noisy, hence five a level and their median: with one pass of the five twice as fast as the
    others, the mean (60 req/s) passed every test as well as the median (50), as every test's passes ran alike."""
    import bench.__main__ as bench

    # 8 round trips, then the widest level's warm-up pass (4 x 30), then the 1-client pass that comes first: 10 ms a
    # request there, 20 ms everywhere else
    ctx = local_stack_on_a_fake_clock(monkeypatch, lambda n: 10.0 if 128 <= n < 158 else 20.0)
    report = bench.Report()
    bench.bench_local_stack(report, ctx, 1)
    throughput = [row for row in report.rows if row[0].startswith("throughput")]
    assert [row[1] for row in throughput] == ["50.0 req/s (50-100)", "50.0 req/s (50-50)", "50.0 req/s (50-50)"]
    assert throughput[0][2] == "p50 20.0 ms, p99 20.0 ms" and throughput[0][4] == "all 200: 150/150 ✅"


def test_one_answer_in_a_level_that_is_not_a_200_fails_its_throughput_row(monkeypatch):
    """At or below MaxConcurrency (5 in Pulumi.dev.yaml) every answer must be a 200: one 503 in the 150 of the
    1-client passes fails that row, not a share of them; and its p99 is the 99th percentile of the 200s."""
    import bench.__main__ as bench

    # 8 round trips and the widest level's warm-up pass (4 x 30), then the 1-client pass that comes first
    slow = (140, 141)  # 2 of the 149 200s at 100 ms: the p99 (the 148th), not the p95 (the 142nd)
    ctx = local_stack_on_a_fake_clock(
        monkeypatch, lambda n: 100.0 if n in slow else 20.0, status=lambda n: 503 if n == 130 else 200
    )
    report = bench.Report()
    bench.bench_local_stack(report, ctx, 1)
    throughput = [row for row in report.rows if row[0].startswith("throughput")]
    assert [row[4] for row in throughput] == ["all 200: 149/150 ❌", "all 200: 300/300 ✅", "all 200: 600/600 ✅"]
    assert throughput[0][2] == "p50 20.0 ms, p99 100.0 ms"  # of the 200s' latencies
    # and its rate counts the 200s: 29 in the first pass's 760 ms, 38 a second (all 30 would be 39)
    assert throughput[0][1] == "50.0 req/s (38-50)"


@pytest.mark.parametrize(
    ("served", "says", "verdict"),
    [
        ("same", "top-5 order same", "✅"),
        ("top two swapped", "top-5 order DIFFERENT", "❌"),  # each within 1e-9 of eager's, the order not
        ("top one 2e-4 up", "max |dp| 2.0e-04, top-5 order same", "❌"),
    ],
)
def test_fp32_agreement_needs_both_the_probabilities_within_1e_4_and_the_same_top_5_order(
    monkeypatch, model_dir, served, says, verdict
):
    """The real model agrees on every photo, so neither half of the row's verdict had a test that could fail it: here
    eager torchvision's logits are given, and the served probabilities are those or one change to them."""
    from types import SimpleNamespace

    import torch

    import bench.__main__ as bench

    logits = torch.linspace(0.0, 1e-3, 1000).reshape(1, -1)  # distinct, each probability ~1e-3

    class Eager:
        def load_state_dict(self, state):
            pass

        def eval(self):
            pass

        def __call__(self, batch):
            return logits

    monkeypatch.setattr(bench, "torchvision_reference", lambda meta: (Eager(), lambda img: torch.zeros(3, 224, 224)))
    probs = torch.softmax(logits, 1).numpy()[0].copy()
    if served == "top two swapped":
        probs[[999, 998]] = probs[[998, 999]]
    elif served == "top one 2e-4 up":
        probs[999] += 2e-4
    inference = latency_inference(monkeypatch, model_dir)
    monkeypatch.setattr(inference, "predict_fn", lambda x, model: SimpleNamespace(probs=probs))
    monkeypatch.setattr(bench, "interleaved_medians", lambda fns, *_, **__: dict.fromkeys(fns, 1.0))
    monkeypatch.setattr(bench, "served_path_by_cache_state", lambda *_: served_path_parts(1.0))
    report = bench.Report()
    bench.bench_latency(report, model_dir, 1, (bench.PHOTOS / "coffee.jpg").read_bytes())
    agreement = report.rows[-1]
    assert agreement[0].startswith("fp32 agreement, end to end")
    assert agreement[1].endswith(says) and agreement[4] == f"< 1e-4, same order {verdict}", agreement
