"""`make bench`: every performance figure side by side in one run, medians of repeated runs, with ratios.

    python -m bench [--quick] [--out bench/results/latest.md]

Measures (all on this machine, in this run):
1. latency of one image: naive eager torchvision, frozen TorchScript, ONNX Runtime fp32 (model only), and the
   path the endpoint serves (input_fn + predict_fn + output_fn on a 256 px JPEG);
2. cold start in a fresh process (imports, build/load, first inference) and its peak RSS, naive vs served;
3. preprocessing of a 4000x3000 JPEG and of a 256 px JPEG: torchvision transforms vs the served decoder;
4. payload: the original design's base64 JSON vs what the browser sends (downscaled JPEG);
5. local stack overhead: HTTP round trip through /predict minus the in-process path, and where the time goes;
6. throughput through the local stack at 1, 2 and 4 concurrent clients with the configured MaxConcurrency;
7. memory of the whole serving stack (toolkit + TorchServe + worker) and the serverless memory size it needs
   (measured first, before this process maps torch: see bench_container_peak).
Speed targets are checked here, never by timed tests. Exit status 1 if a target is missed or cannot be measured
(skipped), as EXIT_STATUS says.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import stop_signals_unwind
from bench.loadtest import percentile
from bench.machine import describe as describe_machine
from components.command_line import OneLineErrorParser, encodable, path_argument
from components.policies import PACKED_CODE, stale_artifact_reason
from components.settings import MEMORY_SIZES_MB, load_stack_file
from local.runtime import extract_all, load_inference_module, no_room_to_unpack, out_of_space
from tests.imagegen import normalize

ROOT = Path(__file__).resolve().parent.parent
EXIT_STATUS = """exit status: 0 every target met; 1 a target missed or not measured (a row that failed, or one
skipped with its reason, such as the serving stack's memory without java); 2 the model artifact missing or
damaged, built from another inference.py than the checkout's or int8 (INT8=1), or --out not writable"""
ARTIFACT = ROOT / "model" / "dist" / "model.tar.gz"
CHECKOUT_CODE = ROOT / "model" / PACKED_CODE  # what ARTIFACT must hold as code/inference.py
PHOTOS = ROOT / "tests" / "fixtures" / "images"
# Every side gets the threads the served session takes: the CPUs this process may use, within a CPU quota.
THREADS = load_inference_module(ROOT / "model" / "code", "bench_threads")._threads()


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def minor_page_faults() -> int:
    """Page faults this process has taken without reading a disk: mostly fresh memory mapped in page by page."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def counting_faults(fn: Callable[[], object], counts: list[int]) -> Callable[[], None]:
    """fn, appending to counts the minor page faults each call takes."""

    def run() -> None:
        before = minor_page_faults()
        fn()
        counts.append(minor_page_faults() - before)

    return run


def interleaved_medians(fns: dict, rounds: int, warmup: int = 3, settle: int = 0) -> dict[str, float]:
    """Median ms of each callable, measured in alternation: every round runs each once, so a noisy neighbour
    or a CPU frequency change hits all of them alike and the ratios between them stay meaningful.

    settle: unmeasured calls after each switch. A served process never runs eager torch, but here an eager
    call leaves the served path slower for several calls after it (torch's OpenMP workers, its caches): on
    2 vCPUs +17% on the first call, +10% after two settle calls, within noise after five.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(settle):
                fn()
            started = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> str:
    import onnxruntime
    import torch

    return (
        f"{describe_machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, {THREADS} threads"
    )


def meets(value: float, bound: float, at_most: bool) -> bool:
    """The issue's "at most"/"at least" on a measured figure, inclusive at the bound: a ratio of exactly 1.2 meets
    "<= 1.2x" (3.6 / 3.0 and 2.4 / 2.0 alike; `3.6 <= 1.2 * 3.0` is False in floating point)."""
    slack = 1e-9 * max(abs(bound), 1.0)
    return value <= bound + slack if at_most else value >= bound - slack


def shown(value: float, bound: float, at_most: bool, digits: int = 2) -> str:
    """value with `digits` decimals, or more when that rounding would land on the other side of the bound than
    the verdict: 1.204 against <= 1.2 shows as 1.204, never as a failing "1.20"."""
    verdict = meets(value, bound, at_most)
    for d in range(digits, 10):
        text = f"{value:.{d}f}"
        if meets(float(text), bound, at_most) == verdict:
            return text
    return repr(value)


def shown_below(value: float, bound: float) -> str:
    """value in scientific notation, with more digits when one would round it onto the other side of a strict
    "< bound" than its verdict: 9.96e-5 against < 1e-4 shows as 9.96e-05, never as a passing "1.0e-04"."""
    for d in range(1, 10):
        text = f"{value:.{d}e}"
        if (float(text) < bound) == (value < bound):
            return text
    return repr(value)


CONTENTION_FACTOR = 1.5


def disturbed(pair_ms: float, again_ms: float, what: str = "ORT") -> str | None:
    """Why a ratio cannot be trusted: the same code, measured twice in this run, differs by more than
    CONTENTION_FACTOR. A neighbour's job adds time to both sides of a pair alike and pulls the ratio
    towards 1, so a contended machine passes "<= 1.2x" that a quiet one misses (seen: ORT 8.5 ms in the pair,
    2.4 ms in the breakdown, ratio 1.13x "met" while the breakdown said ~1.4x), and pushes ">= 3x faster" towards
    a miss (run 48: the served path 7.8 ms beside the naive path, 5.2 ms beside ORT, 2.46x against 2.90x and 2.69x
    in the two runs before it on the same code)."""
    if max(pair_ms, again_ms) <= CONTENTION_FACTOR * min(pair_ms, again_ms):
        return None
    return (
        f"the machine was contended: {what} took {pair_ms:.1f} ms in the served/ORT pair and {again_ms:.1f} ms "
        "measured again in this run; rerun on a quieter machine"
    )


@dataclass
class Report:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # figure, ours, baseline, ratio, target
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # targets this run could not measure: not met either
    met: int = 0

    def add(
        self,
        figure: str,
        ours: str,
        baseline: str = "",
        ratio: float | None = None,
        target: str = "",
        ok: bool | None = None,
    ) -> None:
        verdict = "" if ok is None else (" ✅" if ok else " ❌")
        self.rows.append((figure, ours, baseline, "" if ratio is None else f"{ratio:.2f}x", target + verdict))
        self._record(figure, ours, baseline, target, ok)

    def check(
        self,
        figure: str,
        ours: str,
        baseline: str,
        ratio: float,
        bound: float,
        target: str,
        at_most: bool = True,
        unreliable: str | None = None,
    ) -> None:
        """A row whose verdict is its ratio against the bound, the ratio printed as precisely as the verdict needs.
        unreliable: why this run's measurement cannot decide the target (then it is neither met nor passed)."""
        ok = meets(ratio, bound, at_most)
        verdict = " ⚠️ unreliable" if unreliable else (" ✅" if ok else " ❌")
        self.rows.append((figure, ours, baseline, f"{shown(ratio, bound, at_most)}x", target + verdict))
        if unreliable:
            self.failures.append(f"{figure}: {ours} vs {baseline} ({target}) not decided: {unreliable}")
        else:
            self._record(figure, ours, baseline, target, ok)

    def skip(self, figure: str, why: str, target: str) -> None:
        """A target this run could not measure (no java for the serving stack, say): the row says why, and the run
        fails as for a missed target, since nothing showed it met."""
        self.rows.append((figure, f"skipped: {why}", "", "", f"{target} ⚠️ skipped"))
        self.skipped.append(f"{figure} ({target}): {why}")

    def _record(self, figure: str, ours: str, baseline: str, target: str, ok: bool | None) -> None:
        if ok is False:
            self.failures.append(f"{figure}: {ours}{f' vs {baseline}' if baseline else ''} ({target})")
        elif ok:
            self.met += 1

    def summary(self) -> str:
        return f"targets: {self.met} met, {len(self.failures)} missed, {len(self.skipped)} skipped (not measured)"

    def markdown(self, header: str) -> str:
        lines = [header, "", "| figure | ours | baseline | ratio | target |", "|---|---|---|---|---|"]
        # A "|" inside a cell ("max |dp|") would end it: the row would get 7 cells and Markdown drop the verdict.
        lines += [f"| {' | '.join(cell.replace('|', chr(92) + '|') for cell in row)} |" for row in self.rows]
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)


class NoRoomToUnpack(Exception):
    """The artifact is sound, the temporary directory full: `make model` would not help."""


# The artifact as the run found it, kept in the unpacked model's folder: the rows that start a stack (the local
# stack's, the serving stack's) serve this copy, not model/dist/model.tar.gz, which may be rebuilt meanwhile
# (`make model INT8=1` in another terminal) and would have them measure another model than the rows before them.
ARTIFACT_COPY = ".model.tar.gz"


def extract(artifact: Path) -> Path:
    try:
        target = Path(tempfile.mkdtemp(prefix="bench-model-"))
    except OSError as e:  # not a block or inode free: the same line as too few for the model
        if out_of_space(e):
            raise NoRoomToUnpack(no_room_to_unpack(artifact, Path(tempfile.gettempdir()), e, copied=True)) from e
        raise
    try:
        shutil.copyfile(artifact, target / ARTIFACT_COPY)
        with tarfile.open(target / ARTIFACT_COPY) as tar:
            extract_all(tar, target)
    except BaseException as e:  # a truncated artifact, a full disk, a stop signal: nothing else would remove it
        shutil.rmtree(target, ignore_errors=True)
        if out_of_space(e):
            raise NoRoomToUnpack(no_room_to_unpack(artifact, target.parent, e, copied=True)) from e
        raise
    return target


def precision_refusal(model_dir: Path) -> str | None:
    """Why the unpacked artifact is not one the bench measures, or None. Its rows are the fp32 graph's, and its int8
    row quantises that graph itself: an int8 artifact (`make bench INT8=1`, or `python -m bench` after `make model
    INT8=1`) had its int8 graph labelled "ONNX Runtime fp32", and quantised again it was refused by ONNX Runtime (two
    nodes of one name), a failed row and exit 1 after minutes of measuring."""
    try:
        precision = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8")).get("precision", "fp32")
    except (OSError, ValueError, AttributeError):
        return None  # the sections that read it say what is wrong with it
    if precision == "fp32":
        return None
    return (
        f"the model artifact is {precision} (built with INT8=1): the bench measures the fp32 graph and quantises it"
        " for its int8 row itself; run `make bench` without INT8=1, which rebuilds the fp32 artifact first"
    )


def jpeg(img, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def big_photo_bytes() -> bytes:
    """A 4000x3000 photo of about 3 MB (the cat, upscaled, with grain so it compresses like a phone photo)."""
    import numpy as np
    from PIL import Image

    with Image.open(PHOTOS / "chelsea.jpg") as img:
        big = img.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(0).integers(-12, 13, (3000, 4000, 3), dtype=np.int16)
    grainy = np.clip(np.asarray(big, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return jpeg(Image.fromarray(grainy), quality=90)  # 3.1 MB


def request_photos() -> dict:
    """The bodies the rows send: the 3 MB photo and the coffee photo as the 256 px JPEG the page uploads. Pillow and
    numpy only, which this process maps from its imports: the serving stack's peak is sampled with them, first."""
    from PIL import Image

    with Image.open(PHOTOS / "coffee.jpg") as img:
        small_jpeg = jpeg(short_side(img.convert("RGB"), 256))
    return {"big": big_photo_bytes(), "small_jpeg": small_jpeg}


def short_side(img, size: int):
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    return img.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)


# ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def environ_set(name: str, value: str) -> Iterator[None]:
    """os.environ[name] = value inside the block; what it was before (or nothing) after, however the block ends."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def torchvision_reference(meta: dict):
    """The naive baseline's eager model (random weights: load model.pth into it) and torchvision's transforms, for the
    artifact's own architecture and preset: metadata.json's "model" is torchvision.models.get_model's name."""
    import torchvision

    model = torchvision.models.get_model(meta["model"], weights=None)
    return model, torchvision.models.get_model_weights(meta["model"])[meta["weights_preset"]].transforms()


def bench_latency(report: Report, model_dir: Path, repeats: int, small_jpeg: bytes) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(model_dir / "code"))
    import inference

    torch.set_num_threads(THREADS)
    classifier = inference.model_fn(str(model_dir))
    meta = json.loads((model_dir / "metadata.json").read_text())
    eager, transform = torchvision_reference(meta)
    eager.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    eager.eval()
    with environ_set("MODEL_BACKEND", "torchscript"):  # not for the cold-start section, which runs next regardless
        scripted = inference.load_classifier(str(model_dir))

    batch = inference.preprocess(inference.decode_image(small_jpeg), classifier.preprocessing)  # uint8 NHWC
    tensor = torch.from_numpy(normalize(batch, classifier.preprocessing))  # what eager torchvision takes

    def naive_model():
        with torch.no_grad():
            eager(tensor)

    def naive_path():  # the original design: PIL + torchvision transforms + eager model + top-5
        img = Image.open(io.BytesIO(small_jpeg)).convert("RGB")
        with torch.no_grad():
            probs = torch.softmax(eager(transform(img).unsqueeze(0)), 1)[0]
        top = torch.topk(probs, 5)
        json.dumps(
            [{"label": meta["labels"][i], "prob": float(p)} for p, i in zip(top.values, top.indices, strict=True)]
        )

    def served_path():
        inference.output_fn(
            inference.predict_fn(inference.input_fn(small_jpeg, "image/jpeg"), classifier), "application/json"
        )

    # The pair the 1.2x target compares, alternated so that machine noise hits both alike, in the same run.
    pair = interleaved_medians({"ort": lambda: classifier.run(batch), "served": served_path}, rounds=repeats * 5)
    ort_ms, served_ms = pair["ort"], pair["served"]
    baselines = interleaved_medians(
        {
            "eager": naive_model,
            "naive_path": naive_path,
            "torchscript": lambda: scripted.run(batch),
            "served": served_path,
        },
        rounds=repeats,
        settle=5,
    )
    eager_ms, naive_path_ms, ts_ms = (baselines[k] for k in ("eager", "naive_path", "torchscript"))
    served_vs_naive_ms = baselines["served"]

    report.add("1 image, model only: naive eager torchvision", f"{eager_ms:.1f} ms")
    report.add(
        "1 image, model only: frozen TorchScript (fallback)",
        f"{ts_ms:.1f} ms",
        f"{eager_ms:.1f} ms eager",
        eager_ms / ts_ms,
    )
    report.add(
        "1 image, model only: ONNX Runtime fp32", f"{ort_ms:.1f} ms", f"{eager_ms:.1f} ms eager", eager_ms / ort_ms
    )
    parts = served_path_by_cache_state(inference, small_jpeg, classifier, repeats * 5)
    report.check(
        "served path (input_fn+predict_fn+output_fn, 256 px JPEG) vs ORT fp32 model only",
        f"{served_ms:.1f} ms",
        f"{ort_ms:.1f} ms",
        served_ms / ort_ms,
        1.2,
        "<= 1.2x",
        unreliable=disturbed(ort_ms, parts["model alone"]),
    )
    report.check(
        "served path vs naive eager path (PIL + torchvision transforms + eager + top-5)",
        f"{served_vs_naive_ms:.1f} ms",
        f"{naive_path_ms:.1f} ms",
        naive_path_ms / served_vs_naive_ms,
        3.0,
        ">= 3x faster",
        at_most=False,
        unreliable=disturbed(served_ms, served_vs_naive_ms, "the served path"),
    )
    report.notes.append(
        f"inside the served path (medians): input_fn {parts['input_fn']:.2f} ms + predict_fn "
        f"{parts['predict_fn']:.2f} ms (the model alone, run after itself: {parts['model alone']:.2f} ms) + "
        f"output_fn {parts['output_fn']:.2f} ms. Outside the model that is "
        f"{parts['input_fn'] + parts['output_fn']:.2f} ms, each call right after a model run; the same two calls "
        f"take {parts['input_fn warm'] + parts['output_fn warm']:.2f} ms back to back (warm caches) and "
        f"{parts['input_fn read'] + parts['output_fn read']:.2f} ms right after reading 16 MB, "
        f"{parts['input_fn spin'] + parts['output_fn spin']:.2f} ms right after spinning in a Python loop as long "
        "as a model run. "
        f"The 1.2x target leaves {0.2 * ort_ms:.2f} ms. Backend {classifier.backend} (this venv's wheel, the "
        f"version the artifact vendors for Python 3.12), {inference._threads()} intra-op threads"
    )

    # fp32 agreement, end to end: each photo's bytes through input_fn + predict_fn, against torchvision's own
    # transforms + the eager model (same top-5 order, probabilities within 1e-4). Comparing the backends on the
    # same pixels alone would hide a preprocessing difference.
    worst, same_order = 0.0, True
    for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"):
        data = (PHOTOS / name).read_bytes()
        with Image.open(io.BytesIO(data)) as img, torch.no_grad():
            ref = torch.softmax(eager(transform(img.convert("RGB")).unsqueeze(0)), 1).numpy()[0]
        got = np.asarray(inference.predict_fn(inference.input_fn(data, "image/jpeg"), classifier).probs).reshape(-1)
        worst = max(worst, float(np.abs(ref - got).max()))
        same_order &= list(np.argsort(-ref)[:5]) == list(np.argsort(-got)[:5])
    report.add(
        "fp32 agreement, end to end (photo bytes -> served probabilities) vs torchvision transforms + eager, 4 photos",
        f"max |dp| {shown_below(worst, 1e-4)}, top-5 order {'same' if same_order else 'DIFFERENT'}",
        target="< 1e-4, same order",
        ok=worst < 1e-4 and same_order,
    )
    return {
        "meta": meta,
        "served_ms": served_ms,
        "inference": inference,
        "classifier": classifier,
        "transform": transform,
        "eager": eager,
    }


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def served_path_by_cache_state(inference, small_jpeg: bytes, classifier, rounds: int) -> dict:
    """Median ms of input_fn, predict_fn and output_fn inside the served path, and of input_fn and output_fn
    back to back (warm caches), right after reading 16 MB, and right after spinning as long as a model run.

    In the served path input_fn follows the previous request's model run and output_fn this one's; a run
    streams ~14 MB of weights through the core's L2 and runs a lot of other code. The warm figures say what
    the work itself costs; the 16 MB read separates plain data-cache eviction from the rest a run disturbs, and
    the spin (a Python loop that reads the clock and touches nothing else) separates what the run does to the
    caches from what merely the time does on a shared host.
    """
    import numpy as np

    sixteen_mb = np.ones(4 << 20, dtype=np.float32)
    samples: dict[str, list[float]] = defaultdict(list)

    def timed(name, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        samples[name].append((time.perf_counter() - started) * 1000)
        return result

    for _ in range(rounds):
        x = timed("input_fn", inference.input_fn, small_jpeg, inference.JPEG)
        p = timed("predict_fn", inference.predict_fn, x, classifier)
        timed("output_fn", inference.output_fn, p, inference.JSON)
        inference.input_fn(small_jpeg, inference.JPEG)
        timed("input_fn warm", inference.input_fn, small_jpeg, inference.JPEG)
        timed("output_fn warm", inference.output_fn, p, inference.JSON)
        sixteen_mb.sum()
        timed("input_fn read", inference.input_fn, small_jpeg, inference.JPEG)
        sixteen_mb.sum()
        timed("output_fn read", inference.output_fn, p, inference.JSON)
        spin(samples["predict_fn"][-1] / 1000)
        timed("input_fn spin", inference.input_fn, small_jpeg, inference.JPEG)
        spin(samples["predict_fn"][-1] / 1000)
        timed("output_fn spin", inference.output_fn, p, inference.JSON)
        classifier.run(x.batch)
        timed("model alone", classifier.run, x.batch)  # after a model run, as the 1.2x baseline measures it
        inference.output_fn(inference.predict_fn(x, classifier), inference.JSON)  # how a served request ends
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_int8(report: Report, model_dir: Path, meta: dict, classifier, inference, repeats: int):
    """The opt-in int8 graph (`model.package --int8`): its speed and its agreement with fp32 on the real photos."""
    import numpy as np
    import onnxruntime as ort

    from model import package

    photos = sorted(PHOTOS.glob("*.jpg"))
    int8 = package.quantize_int8((model_dir / "model.onnx").read_bytes(), meta, photos)
    opts = inference.ort_session_options(ort, THREADS)  # the served session's options, for a fair comparison
    session = ort.InferenceSession(int8, sess_options=opts, providers=["CPUExecutionProvider"])
    top1 = top5 = 0
    for path in photos:
        batch = inference.preprocess(inference.decode_image(path.read_bytes()), classifier.preprocessing)
        fp32 = np.argsort(-classifier.run(batch)[0])[:5]
        q = np.argsort(-session.run(None, {"input": batch})[0][0])[:5]
        top1 += int(fp32[0] == q[0])
        top5 += len(set(fp32) & set(q))
    batch = inference.preprocess(inference.decode_image(photos[0].read_bytes()), classifier.preprocessing)
    # In turn with the served fp32 session, as the README's int8 figures were measured. The latency pair's fp32
    # figure ran after the served path's glue and earlier in the run: set against int8's, timed back to back here,
    # the ratio also counted the glue's toll on the model and the host's drift between the two.
    speed = interleaved_medians(
        {"fp32": lambda: classifier.run(batch), "int8": lambda: session.run(None, {"input": batch})}, repeats * 2
    )
    report.add(
        "opt-in int8 static QDQ (ORT), model only",
        f"{speed['int8']:.1f} ms",
        f"{speed['fp32']:.1f} ms fp32",
        speed["fp32"] / speed["int8"],
    )
    report.add(
        "  int8 agreement with fp32 on the real photos",
        f"top-1 {top1}/{len(photos)}, top-5 overlap {top5}/{5 * len(photos)}",
        target="opt-in only",
    )


# A process's peak memory, as its scripts below measure it (None where there is no /proc/self/status, as on macOS).
# VmHWM, not ru_maxrss: ru_maxrss is inherited from the (torch-laden) parent across exec.
PROC_STATUS = Path("/proc/self/status")
NO_PROC_STATUS = "no /proc/self/status (macOS has none): peak memory and PSS are read from Linux's /proc"
PEAK_RSS_MB = """
def peak_rss_mb():
    try:
        status = open({status!r})
    except FileNotFoundError:
        return None
    with status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
"""


def peak_rss_source() -> str:
    """The scripts' peak_rss_mb(), reading PROC_STATUS as it is now (a test names a missing one, as on macOS)."""
    return PEAK_RSS_MB.format(status=str(PROC_STATUS))


COLD_NAIVE = """
import json, sys, time
{peak_rss_mb}
t0 = time.perf_counter()
import torch, torchvision
torch.set_num_threads({threads})
t1 = time.perf_counter()
model = torchvision.models.get_model({model!r})
model.load_state_dict(torch.load({weights!r}, weights_only=True))
model.eval()
t2 = time.perf_counter()
with torch.no_grad():
    model(torch.zeros(1, 3, 224, 224))
t3 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "load": t2 - t1, "first": t3 - t2,
                  "rss_mb": peak_rss_mb()}}))
"""

COLD_SERVED = """
import json, os, sys, time
{peak_rss_mb}
t0 = time.perf_counter()
sys.path.insert(0, {code!r})
import inference
inference._add_vendored_packages()
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
try:  # model_fn's first step: an import, so it is counted with the imports, not the load
    import onnxruntime
except ImportError:
    pass
t1 = time.perf_counter()
model = inference.model_fn({model_dir!r})
t2 = time.perf_counter()
body = open({photo!r}, "rb").read()
inference.output_fn(inference.predict_fn(inference.input_fn(body, "image/jpeg"), model), "application/json")
t3 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "load": t2 - t1, "first": t3 - t2, "backend": model.backend,
                  "rss_mb": peak_rss_mb()}}))
"""


def cold_runs(scripts: dict[str, str], runs: int) -> dict[str, dict]:
    """Medians over `runs` fresh processes of each script, alternated (a, b, a, b, ...) so that machine drift hits
    both sides of the ratio alike. "in_process" is the median of each process's imports + load + first, not the
    sum of the three medians (which need not be the total of any run)."""
    samples: dict[str, list[dict]] = {name: [] for name in scripts}
    for _ in range(runs):
        for name, script in scripts.items():
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "OMP_NUM_THREADS": str(THREADS)},
            )
            wall = time.perf_counter() - started
            if out.returncode != 0:  # the first line says which process, the rest is its own traceback
                lines = out.stderr.strip().splitlines() or [f"exit status {out.returncode}"]
                raise RuntimeError(f"the {name} cold-start process failed: {lines[-1]}\n{out.stderr}")
            sample = json.loads(out.stdout.strip().splitlines()[-1])
            sample["wall"] = wall
            sample["in_process"] = sample["imports"] + sample["load"] + sample["first"]
            samples[name].append(sample)
    keys = ("imports", "load", "first", "in_process", "rss_mb", "wall")

    def median(k: str, runs_of: list[dict]) -> float | None:  # rss_mb None: not measured (no /proc, macOS)
        values = [s[k] for s in runs_of]
        return None if None in values else statistics.median(values)

    return {
        name: {k: median(k, runs_of) for k in keys} | {"backend": runs_of[0].get("backend")}
        for name, runs_of in samples.items()
    }


def cold_scripts(model_dir: Path) -> dict[str, str]:
    """The two cold-start processes' scripts for the unpacked artifact; the naive one builds its own architecture."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    return {
        "naive": COLD_NAIVE.format(
            threads=THREADS, model=meta["model"], weights=str(model_dir / "model.pth"), peak_rss_mb=peak_rss_source()
        ),
        "served": COLD_SERVED.format(
            code=str(model_dir / "code"),
            model_dir=str(model_dir),
            photo=str(PHOTOS / "coffee.jpg"),
            peak_rss_mb=peak_rss_source(),
        ),
    }


def bench_cold_start(report: Report, model_dir: Path, runs: int) -> None:
    medians = cold_runs(cold_scripts(model_dir), runs)
    naive, served = medians["naive"], medians["served"]
    in_process = {"naive": naive["in_process"], "served": served["in_process"]}
    ratio = in_process["served"] / in_process["naive"]

    def breakdown(s):
        return f"medians {s['imports']:.2f} + {s['load']:.2f} + {s['first']:.2f} s"

    report.check(
        "cold start in process (imports + build/load + 1st request; served load includes model_fn's warm-up run)",
        f"{in_process['served']:.2f} s ({breakdown(served)})",
        f"{in_process['naive']:.2f} s ({breakdown(naive)})",
        ratio,
        0.5,
        "<= 0.5x",
    )
    report.add(
        "cold start, whole fresh process (wall, incl. interpreter)",
        f"{served['wall']:.2f} s",
        f"{naive['wall']:.2f} s",
        served["wall"] / naive["wall"],
    )
    if served["rss_mb"] is None or naive["rss_mb"] is None:
        report.add("peak RSS of that process", f"not measured: {NO_PROC_STATUS}")
    else:
        report.add(
            "peak RSS of that process",
            f"{served['rss_mb']:.0f} MB",
            f"{naive['rss_mb']:.0f} MB",
            served["rss_mb"] / naive["rss_mb"],
        )
    report.notes.append(f"cold start: medians of {runs} fresh processes each; served backend {served['backend']}")


BOMB_MEMORY = """
import json, sys
sys.path.insert(0, {code!r})
import inference
{peak_rss_mb}
body = open({png!r}, "rb").read()
pre = inference.Preprocessing(256, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
before = peak_rss_mb()
inference.preprocess(inference.decode_image(body, 256), pre)
print(json.dumps({{"before": before, "after": peak_rss_mb()}}))
"""


def hostile_images() -> dict:
    """Small files that decode to the most memory the limits allow (50 MP, 1,000,000 a side, 25 MP of WebP), one
    per decoder path that holds full-size copies: name -> (Pillow image factory, format, save parameters)."""
    from PIL import Image

    def rgba_png():
        img = Image.new("RGBA", (7000, 7000), (0, 0, 0, 0))
        img.paste((200, 30, 30, 255), (1000, 1000, 6000, 6000))
        return img

    def grey_alpha(width, height):
        img = Image.new("LA", (width, height), (0, 0))
        img.paste((200, 255), (width // 7, height // 7, width - width // 7, height - height // 7))
        return img

    def palette_png():
        img = Image.new("P", (7071, 7071), 0)
        img.putpalette([0, 0, 0, 200, 30, 30])
        img.paste(1, (1000, 1000, 6000, 6000))
        img.info["transparency"] = 0
        return img

    def webp():
        img = Image.new("RGBA", (5000, 5000), (0, 0, 0, 0))
        img.paste((200, 30, 30, 255), (700, 700, 4300, 4300))
        return img

    def cmyk_jpeg():
        # Progressive: libjpeg keeps every coefficient of the whole image until the last scan, and CMYK has four
        # components at full resolution. Short side 1000, under the 4x draft threshold: decoded at full size.
        img = Image.new("CMYK", (50_000, 1_000), (0, 0, 0, 0))
        img.paste((0, 200, 200, 30), (7_000, 140, 43_000, 860))
        return img

    return {
        "7000x7000 transparent PNG": (rgba_png, "PNG", {}),
        "7071x7071 grey+alpha PNG": (lambda: grey_alpha(7071, 7071), "PNG", {}),
        "50x1,000,000 grey+alpha PNG": (lambda: grey_alpha(50, 1_000_000), "PNG", {}),
        "7071x7071 palette PNG with transparency": (palette_png, "PNG", {"transparency": 0}),
        "5000x5000 transparent lossless WebP": (webp, "WEBP", {"lossless": True}),
        "50,000x1,000 progressive CMYK JPEG": (cmyk_jpeg, "JPEG", {"progressive": True, "quality": 90}),
    }


def bench_hostile_image_memory(report: Report, model_dir: Path, ctx: dict) -> None:
    """A 49 MP transparent PNG is ~200 KB on the wire (the 4 MB request cap does not bound pixels): what the worst
    such file's decode adds to a worker's memory has to fit beside the serving stack. Each is decoded in a fresh
    process."""
    if not PROC_STATUS.exists():
        report.skip("decode small hostile images: memory each adds to a worker", NO_PROC_STATUS, "measured")
        return
    added: dict[str, tuple[float, int]] = {}
    for name, (make, fmt, params) in hostile_images().items():
        path = model_dir / f"bench-hostile.{fmt.lower()}"
        make().save(path, fmt, **params)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                BOMB_MEMORY.format(code=str(model_dir / "code"), png=str(path), peak_rss_mb=peak_rss_source()),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:  # refused, or killed (the OOM killer leaves nothing on stderr): not measured
            why = out.stderr.strip().splitlines() or [
                f"killed by signal {-out.returncode}" if out.returncode < 0 else f"exit status {out.returncode}"
            ]
            report.add(f"decode a {name}", f"failed: {why[-1]}", target="measured", ok=False)
            return
        sample = json.loads(out.stdout.strip().splitlines()[-1])
        added[name] = (sample["after"] - sample["before"], path.stat().st_size)
    worst = max(added, key=lambda name: added[name][0])
    ctx["bomb_mb"], ctx["bomb_name"] = added[worst][0], worst
    report.add(
        f"decode the worst of {len(added)} small hostile images, a {worst} ({added[worst][1] / 1024:.0f} KB): "
        "memory it adds to a worker (judged with the serving stack's peak below)",
        f"+{ctx['bomb_mb']:.0f} MB",
    )
    report.notes.append(
        "hostile images, memory each decode adds to a worker: "
        + ", ".join(f"{name} ({size / 1024:.0f} KB) +{mb:.0f} MB" for name, (mb, size) in added.items())
    )


STACK_MEMORY = "serving stack peak memory (toolkit + TorchServe JVM + worker, PSS)"
MEMORY_HEADROOM = 1.5


def recommend_memory_mb(peak_mb: float, headroom: float = MEMORY_HEADROOM) -> int | None:
    """Smallest serverless memory size that holds the measured peak with headroom (allocator, page cache); None
    when not even the largest does."""
    return next((size for size in MEMORY_SIZES_MB if size >= peak_mb * headroom), None)


@dataclass
class NotMeasured:
    """Why bench_container_peak has no peak: failed, the stack did not serve (a missed target); else this machine
    cannot run or sample it (no java, no /proc: a skipped one)."""

    why: str
    failed: bool


def bench_container_peak(ctx: dict) -> None:
    """Peak memory of the whole serving stack the container runs (the toolkit's launcher, TorchServe's JVM and
    a Python worker that imports torch before our model), under 3 MB photos, summed over its process group:
    what the memory size has to hold, which the served process alone understates. Conservative here: this
    venv's torch is a CUDA build, larger in memory than the container's CPU build. Into ctx["stack_peak"] (MB, or
    NotMeasured), for bench_container_memory's rows.

    Run before this process imports torch, torchvision or onnxruntime: PSS divides each shared page among all the
    processes mapping it, and this one, mapping the libraries the worker maps, took 68-146 MB of the stack's
    share (README, Serverless memory). The stack is stopped when this returns (its process group gone after
    SIGTERM, or SIGKILLed after 15 s), so the timed rows after it do not share the CPUs with a JVM."""
    from local.torchserve import TorchServeEndpoint, TorchServeError

    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):  # TorchServe runs $JAVA_HOME/bin/java if set
        ctx["stack_peak"] = NotMeasured("no java on PATH (nor JAVA_HOME): TorchServe needs Java 17 or newer", False)
        return
    if not PROC_STATUS.exists():  # psutil's PSS too: started, TorchServe's minutes would end in an AttributeError
        ctx["stack_peak"] = NotMeasured(NO_PROC_STATUS, False)
        return

    samples: list[float] = []
    done = threading.Event()
    try:
        # Started and ready (model_fn + a warm-up run).
        with TorchServeEndpoint(ctx.get("artifact", ARTIFACT)) as endpoint:

            def sample() -> None:  # during the requests, not between them: decoding is the transient peak
                while not done.is_set():
                    samples.append(endpoint.memory_mb())
                    done.wait(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                for body in [ctx["big"]] * 10 + [ctx["small_jpeg"]] * 10:
                    status, _, _ = endpoint.invoke(body, "image/jpeg")
                    if status != 200:
                        raise TorchServeError(f"invocation answered {status}")
            finally:
                done.set()
                sampler.join()
    except TorchServeError as e:  # the memory size cannot be judged: the run must not pass
        ctx["stack_peak"] = NotMeasured((str(e).splitlines() or [type(e).__name__])[0], True)
        return
    ctx["stack_peak"] = max(samples)


def bench_container_memory(report: Report, ctx: dict) -> None:
    """The serving stack's rows, in the table's last place, from the peak bench_container_peak measured first."""
    configured = load_stack_file(ROOT / "Pulumi.dev.yaml").memory_size_mb
    size_target = f"memorySizeMb >= {MEMORY_HEADROOM}x peak; Pulumi.dev.yaml has {configured}"
    worst_case = "  serving stack peak + the worst hostile image's decode"
    worst_target = f"<= memorySizeMb {configured} (Pulumi.dev.yaml)"
    peak = ctx["stack_peak"]
    if isinstance(peak, NotMeasured) and peak.failed:  # the memory size cannot be judged: the run must not pass
        report.add(STACK_MEMORY, f"failed: {peak.why}", target="measured", ok=False)
        report.skip(worst_case, "the serving stack's peak was not measured", worst_target)
        return
    if isinstance(peak, NotMeasured):
        report.skip(STACK_MEMORY, peak.why, size_target)
        report.skip(worst_case, peak.why, worst_target)
        return
    size = recommend_memory_mb(peak)
    report.add(
        f"{STACK_MEMORY}, 3 MB photos",
        f"{shown(peak, configured / MEMORY_HEADROOM, True, 0)} MB",
        target=f"memorySizeMb >= {MEMORY_HEADROOM}x peak: "
        f"{size or f'none (the largest, {MEMORY_SIZES_MB[-1]}, is too small)'}; Pulumi.dev.yaml has {configured}",
        ok=size is not None and configured >= size,
    )
    if "bomb_mb" in ctx:  # a worker decoding that image at the stack's peak: the worst case the size must hold
        report.add(
            f"  serving stack peak + the {ctx['bomb_name']}'s decode",
            f"{shown(peak + ctx['bomb_mb'], configured, True, 0)} MB",
            target=worst_target,
            ok=meets(peak + ctx["bomb_mb"], configured, True),
        )
    else:
        report.skip(worst_case, "the hostile images' decode was not measured", worst_target)


def bench_preprocessing(report: Report, ctx: dict, repeats: int) -> None:
    import torch
    from PIL import Image

    inference, classifier, transform = ctx["inference"], ctx["classifier"], ctx["transform"]
    big = ctx["big"]

    def tv(data):
        return transform(Image.open(io.BytesIO(data)).convert("RGB")).unsqueeze(0).numpy()

    def ours(data):
        return inference.preprocess(
            inference.decode_image(data, draft_to=classifier.preprocessing.resize), classifier.preprocessing
        )

    # Alternated (torchvision's resize runs on torch's OpenMP threads, hence the settle call). Faults counted
    # because torchvision's time falls in two groups from run to run, and they tell which one a run is in.
    faults: dict[str, list[int]] = {"tv": [], "ours": []}
    big_ms = interleaved_medians(
        {
            "tv": counting_faults(lambda: tv(big), faults["tv"]),
            "ours": counting_faults(lambda: ours(big), faults["ours"]),
        },
        repeats,
        warmup=1,
        settle=1,
    )
    small = ctx["small_jpeg"]
    small_ms = interleaved_medians({"tv": lambda: tv(small), "ours": lambda: ours(small)}, repeats * 4, settle=1)
    tv_big, ours_big, tv_small, ours_small = big_ms["tv"], big_ms["ours"], small_ms["tv"], small_ms["ours"]
    with torch.no_grad():
        top_tv = int(ctx["eager"](torch.from_numpy(tv(big))).argmax())
    top_ours = int(classifier.run(ours(big)).argmax())
    report.check(
        f"preprocess a 4000x3000 JPEG ({len(big) / 1e6:.1f} MB) to the input tensor",
        f"{ours_big:.1f} ms",
        f"{tv_big:.1f} ms torchvision",
        tv_big / ours_big,
        4.0,
        ">= 4x faster",
        at_most=False,
    )
    report.add(
        "  top-1 on that photo, ours vs torchvision",
        f"{classifier.labels[top_ours]}",
        f"{classifier.labels[top_tv]}",
        target="unchanged",
        ok=top_ours == top_tv,
    )
    report.add(
        "preprocess a 256 px JPEG", f"{ours_small:.2f} ms", f"{tv_small:.2f} ms torchvision", tv_small / ours_small
    )
    report.notes.append(
        f"12 MP preprocessing, page faults a call (medians): torchvision {statistics.median(faults['tv']):.0f}, "
        f"ours {statistics.median(faults['ours']):.0f}. torchvision decodes the photo at full size, into two images of "
        "4 bytes a pixel; when the C allocator hands their pages back to the kernel after a call, the next call maps "
        "them in again, one fault a page, and whether it does depends on what else the process's heap holds: "
        "torchvision's time can differ by that from run to run"
    )


def page_jpeg_quality(script: Path = ROOT / "www" / "script.js") -> int:
    """The quality the web page encodes its upload at (its JPEG_QUALITY), as Pillow's 1-100 scale."""
    found = re.search(r"^export const JPEG_QUALITY = (0\.\d+);$", script.read_text(encoding="utf-8"), re.MULTILINE)
    if not found:
        raise ValueError(f"no JPEG_QUALITY in {script}")  # mid-run: a failed row, not an exit that loses the table
    return round(float(found.group(1)) * 100)


def bench_payload(report: Report, ctx: dict) -> None:
    from PIL import Image

    big = ctx["big"]
    original = len(json.dumps({"image": base64.b64encode(big).decode()}))
    quality = page_jpeg_quality()
    with Image.open(io.BytesIO(big)) as img:
        sent = len(jpeg(short_side(img.convert("RGB"), 256), quality=quality))
    report.add(
        "payload for a 12 MP photo: browser-downscaled JPEG vs base64 JSON of the file",
        f"{shown(sent / 1024, 60, True, 1)} KB",
        f"{original / 1024:.0f} KB",
        original / sent,
        "<= 60 KB",
        sent <= 60 * 1024,
    )
    report.notes.append(
        "payload: the browser test (tests/browser) asserts <= 60 KB on the request the page "
        f"actually sends; this row is Pillow's equivalent of the page's canvas (shorter side 256, q{quality / 100:g})"
    )


def bench_local_stack(report: Report, ctx: dict, repeats: int) -> None:
    import httpx

    from tests.conftest import LocalStack

    body = ctx["small_jpeg"]
    inference, classifier = ctx["inference"], ctx["classifier"]
    in_process = median_ms(
        lambda: inference.output_fn(
            inference.predict_fn(inference.input_fn(body, "image/jpeg"), classifier), "application/json"
        ),
        repeats * 2,
    )
    # Without the stage's 10 requests a second: the stack's own speed is what is measured.
    stack = LocalStack("--artifact", str(ctx.get("artifact", ARTIFACT)))
    try:
        # Not through the shell's HTTP_PROXY: httpx proxies even 127.0.0.1 unless NO_PROXY names it.
        with httpx.Client(timeout=30, trust_env=False) as client:
            timings = []

            def once():
                started = time.perf_counter()
                r = client.post(f"{stack.url}/predict", content=body, headers={"content-type": "image/jpeg"})
                rtt = (time.perf_counter() - started) * 1000
                assert r.status_code == 200, r.text
                server = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
                timings.append(
                    (
                        rtt,
                        float(server["event"]),
                        float(server["handler"]),
                        r.json()["latency_ms"]["total"],
                        r.json()["latency_ms"]["endpoint"],
                    )
                )

            for _ in range(5):
                once()
            timings.clear()
            for _ in range(repeats * 3):
                once()
            rtt, event, handler, _total, endpoint = (statistics.median(col) for col in zip(*timings, strict=True))
        overhead = rtt - in_process
        report.add(
            "local stack: HTTP round trip through /predict minus in-process path",
            f"{shown(overhead, 15, True, 1)} ms",
            f"{rtt:.1f} ms RTT, {in_process:.1f} ms in process",
            target="<= 15 ms",
            ok=meets(overhead, 15, True),
        )
        report.notes.append(
            f"where the time goes (medians): client->server HTTP + ASGI {rtt - handler - event:.1f} ms, "
            f"event build {event:.2f} ms, handler sandbox {handler:.1f} ms (of which IPC to the sandbox "
            f"process and the handler's own parsing/validation/logging {handler - endpoint:.1f} ms), boto3 "
            f"InvokeEndpoint incl. HTTP to the runtime tier "
            f"{endpoint - in_process:.1f} ms, model path in the runtime tier ~{in_process:.1f} ms"
        )
        max_concurrency = load_stack_file(ROOT / "Pulumi.dev.yaml").max_concurrency
        levels = (1, 2, 4)
        rates: dict[int, list[float]] = defaultdict(list)
        latencies: dict[int, list[float]] = defaultdict(list)
        oks: dict[int, int] = defaultdict(int)
        sent: dict[int, int] = defaultdict(int)

        def run_pass(clients: int) -> tuple[float, list[float]]:
            count, done = 30 * clients, []

            def worker(n):
                with httpx.Client(timeout=30, trust_env=False) as c:
                    for _ in range(n):
                        started = time.perf_counter()
                        r = c.post(f"{stack.url}/predict", content=body, headers={"content-type": "image/jpeg"})
                        if r.status_code == 200:
                            done.append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(worker, [count // clients] * clients))
            sent[clients] += count
            return len(done) / (time.perf_counter() - started), done

        run_pass(max(levels))  # starts every sandbox the widest level needs, so no pass pays for that
        sent.clear()
        # Short passes are noisy on 2 vCPUs: several per level, in alternating order so drift hits all alike.
        for order in (levels, levels[::-1], levels, levels[::-1], levels):
            for clients in order:
                rate, done = run_pass(clients)
                rates[clients].append(rate)
                latencies[clients].extend(done)
                oks[clients] += len(done)
        for clients in levels:
            lat = sorted(latencies[clients])
            report.add(
                f"throughput through the local stack, {clients} client(s), MaxConcurrency {max_concurrency} "
                f"(Pulumi.dev.yaml), stage throttle off, median of {len(rates[clients])} passes",
                f"{statistics.median(rates[clients]):.1f} req/s ({min(rates[clients]):.0f}-{max(rates[clients]):.0f})",
                f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms",
                # At or below MaxConcurrency nothing may be throttled or fail: every answer a 200.
                target=f"all 200: {oks[clients]}/{sent[clients]}",
                ok=oks[clients] == sent[clients] if clients <= max_concurrency else None,
            )
    finally:
        stack.stop()


PHOTOS_MADE, STACK_PEAK = "request photos", "serving stack peak"
LATENCY, PREPROCESSING = "latency of one image", "preprocessing"


def run_sections(
    report: Report,
    sections: list[tuple[str, tuple[str, ...], Callable[[], object]]],
    rows_printed_later: Collection[str] = (),
) -> None:
    """Each (name, sections it needs, run) in turn. One that raises after minutes of measuring is a failed row (its
    traceback on stderr) and the run goes on, so the table keeps every figure already measured; one that needs a
    section that failed or was skipped is skipped with that reason.

    A section in rows_printed_later has no row of its own: the one that needs it prints its figures (the serving
    stack's peak, sampled first, printed last), and takes its failure or its reason to be skipped: with a row of its
    own, photos that could not be made listed the memory twice, a skipped "serving stack peak" near the top and a
    skipped "serving stack memory" at the end."""
    broken: dict[str, tuple[bool, str]] = {}  # what a section needing a broken one is: failed or skipped, and why
    for name, needs, run in sections:
        missing = next((need for need in needs if need in broken), None)
        if missing and name in rows_printed_later:
            broken[name] = broken[missing]
            continue
        if missing:
            failed, why = broken[missing]
            if failed:
                report.add(name, f"failed: {why}", target="measured", ok=False)
            else:
                report.skip(name, why, "measured")
            broken[name] = (False, f"needs the {name} section, which {'failed' if failed else 'was skipped'}")
            continue
        try:
            run()
        except Exception as e:
            traceback.print_exc()
            first = (str(e).strip().splitlines() or [""])[0]
            error = f"{type(e).__name__}{': ' + first if first else ''}"
            if name in rows_printed_later:
                broken[name] = (True, error)
                continue
            report.add(name, f"failed: {error}", target="measured", ok=False)
            broken[name] = (False, f"needs the {name} section, which failed")


# What the up-front check of --out writes: a few times the table (4.5 KB with every row, 2026-12-05).
TABLE_ROOM = 16 * 1024


def written_at(out: Path) -> Path:
    """The file a write to `out` reaches: through its symlinks, as a write in place went. Symlinks that loop are an
    OSError (ELOOP), as the write in place gave: Python before 3.13 raises RuntimeError for them, 3.13's resolve()
    returns them as they are."""
    try:
        target = out.resolve()
    except RuntimeError:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(out)) from None
    if target.is_symlink():
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(out))
    return target


def written_in_place(target: Path) -> bool:
    """A pipe or a device (--out /dev/null): written where it is. Renamed over, it became a regular file (as root,
    /dev/null did), and it holds no last table to keep. The up-front check asks of it what this write needs."""
    return target.exists() and not target.is_file()


def write_whole(out: Path, text: str) -> None:
    """`out` gets the whole text (UTF-8: Markdown, whatever the locale's codeset) or stays as it was. Written in place,
    a full disk left a table cut short where the last run's had been, under "error: could not write"."""
    target = written_at(out)
    if written_in_place(target):
        target.write_text(text, encoding="utf-8")
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if target.exists():  # its mode, as a write in place kept it: a latest.md made group-readable stays so
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def table_file(value: str) -> Path:
    """--out's file. A path that ends in / names a folder even before it is made: `--out results/` wrote the table,
    after the whole run, to a file named results."""
    path = path_argument(value)
    if value.endswith("/"):
        raise argparse.ArgumentTypeError(
            f"{value} names a folder: name the file to write the table to, such as {value}latest.md"
        )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0],
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    # path_argument (in table_file): `--out=~/latest.md` (no shell expands that ~) made a folder named ~ in the current
    # one.
    parser.add_argument(
        "--out",
        type=table_file,
        default=ROOT / "bench" / "results" / "latest.md",
        help="the file the results table (Markdown) is written to (default: bench/results/latest.md)",
    )
    args = parser.parse_args(argv)
    if not ARTIFACT.exists():
        print("error: model/dist/model.tar.gz is missing: run `make model`", file=sys.stderr)
        return 2
    # `python -m bench` (not `make bench`, which builds first) after an edit to inference.py measured the old code.
    stale = stale_artifact_reason(ARTIFACT, CHECKOUT_CODE)
    if stale is not None:
        print(f"error: {stale}", file=sys.stderr)
        return 2
    try:  # before minutes of measuring, not after
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(args.out))
        # A file made there, as the table is written beside its target: its refusal gives the reason (a read-only
        # file system, a quota), where os.access() said only no. Beside the file a symlink --out points to, as
        # write_whole() writes it, not beside the link. Written to and synced: a disk with inodes but no free
        # blocks took an empty file, and the run ended minutes later with "could not write".
        target = written_at(args.out)
        if written_in_place(target):
            # Its folder (/dev) is no user's to make files in, and opening a pipe here would wait for its reader.
            if not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
        else:
            with tempfile.TemporaryFile(dir=target.parent) as probe:
                probe.write(bytes(TABLE_ROOM))
                probe.flush()
                os.fsync(probe.fileno())
    except OSError as e:
        print(f"error: --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    # A median of 2 cold starts is their mean, one slow process's share and all: 3 is the fewest that takes a median.
    repeats, runs = (10, 3) if args.quick else (40, 5)
    report = Report()
    started = time.perf_counter()
    ctx: dict = {}
    with stop_signals_unwind():
        try:
            model_dir = extract(ARTIFACT)  # ~80 MB per run (its copy too): removed however the run ends
            ctx["artifact"] = model_dir / ARTIFACT_COPY
        except NoRoomToUnpack as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:  # EOFError: a truncated gzip
            print(f"error: cannot unpack {ARTIFACT}: {' '.join(str(e).split())}: run `make model`", file=sys.stderr)
            return 2
        try:
            refusal = precision_refusal(model_dir)
            if refusal is not None:
                print(f"error: {refusal}", file=sys.stderr)
                return 2
            run_sections(
                report,
                [
                    (PHOTOS_MADE, (), lambda: ctx.update(request_photos())),
                    # First, before this process maps torch (bench_container_peak); its rows print last.
                    (STACK_PEAK, (PHOTOS_MADE,), lambda: bench_container_peak(ctx)),
                    (
                        LATENCY,
                        (PHOTOS_MADE,),
                        lambda: ctx.update(bench_latency(report, model_dir, repeats, ctx["small_jpeg"])),
                    ),
                    (
                        "int8 (opt-in)",
                        (LATENCY,),
                        lambda: bench_int8(
                            report, model_dir, ctx["meta"], ctx["classifier"], ctx["inference"], repeats
                        ),
                    ),
                    ("cold start", (), lambda: bench_cold_start(report, model_dir, runs)),
                    (PREPROCESSING, (LATENCY,), lambda: bench_preprocessing(report, ctx, max(5, repeats // 2))),
                    ("hostile images' decode memory", (), lambda: bench_hostile_image_memory(report, model_dir, ctx)),
                    ("payload", (PHOTOS_MADE,), lambda: bench_payload(report, ctx)),
                    ("local stack", (LATENCY,), lambda: bench_local_stack(report, ctx, repeats)),
                    ("serving stack memory", (STACK_PEAK,), lambda: bench_container_memory(report, ctx)),
                ],
                rows_printed_later=(STACK_PEAK,),
            )
        finally:
            shutil.rmtree(model_dir, ignore_errors=True)
    # The UTC date, as bench/history.md and the README give the runs' times of day: a local one named the day before
    # or after them around midnight outside UTC.
    day = time.strftime("%Y-%m-%d", time.gmtime())
    header = f"Benchmark ({day}, {machine()}; medians; {time.perf_counter() - started:.0f} s run)"
    text = report.markdown(header)
    print(encodable(text, sys.stdout))
    written = True
    try:
        write_whole(args.out, text + "\n")
    except OSError as e:
        print(f"error: could not write {args.out}: {e.strerror or e}", file=sys.stderr)
        written = False
    if report.failures:
        print("\nmissed targets:\n  " + "\n  ".join(report.failures), file=sys.stderr)
    if report.skipped:
        print("\nskipped targets (not measured, so not met):\n  " + "\n  ".join(report.skipped), file=sys.stderr)
    print(f"\n{report.summary()}", file=sys.stderr)
    return 2 if not written else 1 if report.failures or report.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
