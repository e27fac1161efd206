"""How much the web UI's JPEG encoding moves the model's answer, at the qualities the page may use.

    python -m bench.jpeg_quality [IMAGE ...] [--qualities 0.9 0.95]

For each image, headless Chromium runs the page's own `drawUpload` (www/script.js: the crop and downscale to a
256 px shorter side that every upload goes through) and encodes that canvas once as PNG, which is lossless, and
once as JPEG at each quality. The served model path (input_fn + predict_fn from the built artifact) classifies
each encoding. The figure per image is the largest change of any class probability against the PNG, and whether
the top-1 class changes. Defaults to the four sample photos; more images make the figures firmer, e.g. the nine
used for JPEG_QUALITY's comment in www/script.js (scikit-learn's, Matplotlib's and scikit-image's sample data):

    venv/bin/pip download --no-deps -d /tmp/wheels scikit-learn matplotlib scikit-image
    for w in /tmp/wheels/*.whl; do unzip -o -q -j "$w" '*/china.jpg' '*/flower.jpg' '*/grace_hopper.jpg' \\
      '*/motorcycle_left.png' '*/hubble_deep_field.jpg' '*/grass.png' '*/gravel.png' '*/retina.jpg' \\
      '*/clock_motion.png' -d /tmp/images; done   # each wheel has some of them: unzip names the others
    venv/bin/python -m bench.jpeg_quality www/samples/*.jpg /tmp/images/*

Needs Debian's /usr/bin/chromium (make chromium) and the artifact (make model). Exits 1 if Chromium cannot decode an
image (each is named; the others are still measured), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import mimetypes
import shutil
import statistics
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WWW = ROOT / "www"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# Runs in the page: its own module, its own canvas, Chromium's own encoder.
ENCODE_JS = """async ([src, qualities]) => {
  const page = await import("/script.js");
  const img = new Image();
  img.src = src;
  await img.decode();
  const { canvas } = page.drawUpload(img);
  const bytes = async (type, quality) => {
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, type, quality));
    if (!blob) throw new Error(`the canvas could not be encoded as ${type}`);
    let text = "";
    for (const byte of new Uint8Array(await blob.arrayBuffer())) text += String.fromCharCode(byte);
    return btoa(text);
  };
  const jpegs = [];
  for (const quality of qualities) jpegs.push(await bytes("image/jpeg", quality));
  return { png: await bytes("image/png"), jpegs };
}"""


@dataclass(frozen=True)
class Encoding:
    quality: float
    size: int
    max_change: float  # largest |p_jpeg - p_png| over the classes
    same_top1: bool


@dataclass(frozen=True)
class ImageResult:
    name: str
    top1: str
    top1_prob: float
    encodings: tuple[Encoding, ...]


def compare(png_probs, jpeg_probs) -> tuple[float, bool]:
    """Largest probability change, and whether the top-1 class stayed the same."""
    import numpy as np

    return float(np.abs(jpeg_probs - png_probs).max()), int(jpeg_probs.argmax()) == int(png_probs.argmax())


def summary(results: Sequence[ImageResult], quality: float) -> str:
    encodings = [e for r in results for e in r.encodings if e.quality == quality]
    changes = [e.max_change for e in encodings]
    sizes = [e.size / 1024 for e in encodings]
    flips = sum(not e.same_top1 for e in encodings)
    return (
        f"q{quality:g}: largest change per image median {statistics.median(changes):.3f}, "
        f"mean {statistics.mean(changes):.3f}, max {max(changes):.3f}; top-1 changed on {flips} of "
        f"{len(encodings)}; {min(sizes):.1f}-{max(sizes):.1f} KB"
    )


def markdown(results: Sequence[ImageResult], qualities: Sequence[float]) -> str:
    head = "| image | top-1 from the PNG | " + " | ".join(f"q{q:g}: KB, largest change, top-1" for q in qualities)
    lines = [head + " |", "|---|---|" + "---|" * len(qualities)]
    for r in results:
        cells = [
            f"{e.size / 1024:.1f}, {e.max_change:.3f}, {'same' if e.same_top1 else 'changed'}" for e in r.encodings
        ]
        lines.append(f"| {r.name} | {r.top1} {r.top1_prob:.2f} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *(f"- {summary(results, q)}" for q in qualities)])


@contextmanager
def serve_www() -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(WWW))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def measure(images: Sequence[Path], qualities: Sequence[float]) -> tuple[list[ImageResult], list[str]]:
    """Results for the images the browser could decode, and one line per image it could not."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from bench.__main__ import ARTIFACT, extract
    from local.runtime import load_inference_module

    model_dir = extract(ARTIFACT)
    try:  # the artifact's own code and model, as the endpoint serves them
        inference = load_inference_module(model_dir / "code", "jpeg_quality_inference")
        model = inference.model_fn(str(model_dir))
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)

    def probs(data: bytes, content_type: str):
        return inference.predict_fn(inference.input_fn(data, content_type), model).probs

    results, failures = [], []
    with serve_www() as origin, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{origin}/index.html")
            for path in images:
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                src = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
                try:
                    out = page.evaluate(ENCODE_JS, [src, list(qualities)])
                except PlaywrightError as e:  # not an image Chromium can decode, or one it cannot draw
                    failures.append(f"{path}: {str(e).splitlines()[0]}")
                    continue
                png = probs(base64.b64decode(out["png"]), inference.PNG)
                encodings = []
                for quality, encoded in zip(qualities, out["jpegs"], strict=True):
                    jpeg = base64.b64decode(encoded)
                    change, same = compare(png, probs(jpeg, inference.JPEG))
                    encodings.append(Encoding(quality, len(jpeg), change, same))
                top = int(png.argmax())
                results.append(ImageResult(path.name, model.labels[top], float(png[top]), tuple(encodings)))
        finally:
            browser.close()
    return results, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jpeg_quality", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path, help="default: www/samples/*.jpg")
    parser.add_argument(
        "--qualities",
        nargs="+",
        type=float,
        default=[0.9, 0.95],
        help="JPEG qualities to compare with the PNG, each above 0 and at most 1 (default: 0.9 0.95)",
    )
    args = parser.parse_args(argv)
    qualities = list(dict.fromkeys(args.qualities))  # a quality given twice would count its images twice
    images = args.images or sorted((WWW / "samples").glob("*.jpg"))
    problems = [f"{p}: not a file" for p in images if not p.is_file()]
    problems += [f"--qualities {q:g}: must be above 0 and at most 1" for q in qualities if not 0 < q <= 1]
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing: run `make chromium`")
    if not (ROOT / "model" / "dist" / "model.tar.gz").exists():
        problems.append("model/dist/model.tar.gz is missing: run `make model`")
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 2
    results, failures = measure(images, qualities)
    if results:
        print(markdown(results, qualities))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
