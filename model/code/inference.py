"""SageMaker inference handlers for MobileNet V2 (the sagemaker-pytorch-inference-toolkit contract).

The toolkit calls ``model_fn`` once per worker, then ``input_fn -> predict_fn -> output_fn`` per request.
Everything the model needs comes from the artifact's root, as model.package writes it; nothing is downloaded or
installed at start:
- ``metadata.json``: ``model`` (torchvision's name for the network), ``weights`` (an id, echoed in replies),
  ``labels`` (one per class) and ``preprocessing`` (``resize``, ``crop``, ``mean``, ``std``, and ``interpolation``,
  bilinear when absent);
- ``model.pth``: the network's state_dict, as ``torch.save(model.state_dict())`` writes it (needed unless
  ONNX Runtime serves);
- ``model.onnx`` (optional): the same network with the mean and std inside, taking uint8 RGB pixels of shape
  [batch, crop, crop, 3].

Backends, fastest first: ONNX Runtime when ``model.onnx`` is in the artifact and ``onnxruntime`` imports
(the package vendors it under ``code/``), else frozen TorchScript built from ``model.pth``. Preprocessing is
Pillow + numpy for every backend, so torch is only imported when TorchScript serves.

Runs in AWS's PyTorch inference image (torch 2.6 CPU, Python 3.12): only torch, torchvision, Pillow, numpy,
the standard library and the vendored onnxruntime.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import os
import re
import reprlib
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)
# At DEBUG Pillow logs every EXIF tag it reads or writes, values included: a visitor's GPS position, camera and name
# (Artist) from each photo turned in place. A DEBUG root logger (`python -m local --log-level debug` runs this module
# under it) must never put them into the logs, so Pillow is held at INFO, or at the root's level if that is higher.
logging.getLogger("PIL").setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))

# ---------------------------------------------------------------------------------------------------------
# Content types and limits
JSON = "application/json"
JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
X_IMAGE = "application/x-image"
ANY = "*/*"

ACCEPTED_FORMATS = {"JPEG": JPEG, "PNG": PNG, "WEBP": WEBP}
# Names clients use for JPEG (old Internet Explorer's progressive type, and a common misspelling), as the proxy has.
JPEG_ALIASES = ("image/jpg", "image/pjpeg")

# Other image formats, told apart by their magic numbers, so that a 415 names what was sent without handing the
# bytes to another parser (Pillow's EPS plugin alone scanned a 4 MB file of comment lines for about 3 s).
OTHER_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF-", "PDF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"qoif", "QOI"),
)
# ISO base media files (bytes 4-8 'ftyp') name their kind in the major brand.
HEIF_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis"), "HEIC"),
    **dict.fromkeys((b"mif1", b"msf1"), "HEIF"),
    **dict.fromkeys((b"avif", b"avis"), "AVIF"),
}

DEFAULT_TOP_K = 5
MAX_TOP_K = 20
# A 48-megapixel phone photo passes; a decompression bomb (e.g. 30000x30000 in a few KB) does not.
MAX_PIXELS = 50_000_000
# Keep Pillow's own bomb check in line with ours so it raises instead of warning.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
# The pixel limit bounds memory only if rows are free, and they are not: Pillow keeps an 8-byte pointer per row in
# every image it holds, so a 1x50,000,000 PNG (100 KB on the wire) costs 400 MB of pointers per copy, and decoding
# plus converting a grey-with-alpha one added ~1.7 GB to a worker (a 7071x7071 one: ~0.43 GB). libpng's default limit,
# 1,000,000 rows or columns (columns too: EXIF orientation turns them into rows), keeps that under 8 MB a copy.
MAX_SIDE = 1_000_000
# libwebp decodes into a full RGBA canvas and Pillow's decoder keeps two (it goes through the animation API even for
# a still image), plus its own copy: about 15 bytes a pixel against PNG's 8, so a 2 KB 7071x7071 WebP added 767 MB.
# Half the pixel limit keeps a WebP at what the largest PNGs cost (25 MP: ~390 MB); real WebP photos are far smaller.
MAX_WEBP_PIXELS = 25_000_000

# 16-bit grey is scaled, and colour-key or palette transparency composited, in row blocks of at most this many
# pixels (16-bit grey: int64 temporaries of 32 MB each; transparency: RGBA blocks of 16 MB).
BLOCK_PIXELS = 512 * 8192

DRAFT_MIN_FACTOR = 4
# Up to 8:1 the resized image is at most 256x2048 (1.5 MB) and torchvision's pixels come out exactly; beyond it
# the crop is resampled from its box so a 20000x1 image cannot blow up memory.
MAX_RESIZED_SIDE_FACTOR = 8

# libjpeg decodes every scan of a JPEG over the whole image, and a scan that only repeats a progressive pass can be
# a few dozen bytes: a 7000x7000 JPEG costs ~37 ms per scan on 2 vCPUs, so the 50,000 scans 4 MB can hold keep a
# core busy for half an hour, long after SageMaker's 60 s timeout. Encoders write 1 (baseline) to about 10
# (libjpeg's progressive script; mozjpeg's and jpegtran's are of that order); libjpeg-turbo's own tools offer a
# limit for exactly this (djpeg -maxscans, TJPARAM_SCANLIMIT), which Pillow does not expose.
MAX_JPEG_SCANS = 100
# The quick count of FF DA bytes compares this many at a time into two reused buffers: whole-file temporaries are
# fresh pages on every request (three of 3 MB for a phone photo), and faulting them in was half the count's 0.8 ms.
SOS_COUNT_BLOCK = 1 << 18
# Frame headers (SOFn): all of C0-CF but DHT (C4), JPG (C8) and DAC (CC). libjpeg-turbo's jdinput.c reads a file in
# one pass when its first scan holds every component and its frame is not progressive (SOF2, SOF10; it refuses the
# hierarchical ones): baseline, extended or lossless, Huffman or arithmetic coded.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
SEQUENTIAL_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC3, 0xC9, 0xCB})

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow inflates every iCCP chunk (a zlib-compressed colour profile) of a PNG, up to 1 MB each, and keeps only the
# last; unlike its text chunks (64 MB in all) they have no total. A profile of zeros deflates about 1000:1, so 4 MB
# holds 4,000 of them: 4 GB to inflate for a 1x1 image, 9 s of CPU on this 2-vCPU machine. The PNG format allows one
# iCCP chunk (libpng ignores another as a benign error); a file with more is refused before Pillow opens it.
MAX_PNG_ICCP_CHUNKS = 1

BACKEND_CHOICES = ("auto", "onnxruntime", "torchscript")
METADATA_FILE = "metadata.json"
# metadata.json's resize may be at most this many times its crop. Every torchvision classification preset resizes to
# at most 1.15 times its crop (Inception V3: 342, crop 299); a hand-edited 100000 resized every image to gigabytes.
MAX_RESIZE_PER_CROP = 2
# metadata.json's crop may be at most this. The largest torchvision classification preset crops 600 (EfficientNet-B7;
# MobileNet V2 takes any size from 1). A hand-edited 100000 failed model_fn's warm-up allocating 30 GB, naming neither
# the file nor crop, when no ONNX graph's fixed size refused it (the TorchScript fallback traces at any size).
MAX_CROP = 1024
WEIGHTS_FILE = "model.pth"
ONNX_FILE = "model.onnx"


# ---------------------------------------------------------------------------------------------------------
# Named errors. In AWS's container only BaseInferenceToolkitError subclasses keep their HTTP status (anything
# else is a 500 with a traceback), so derive from the toolkit's class when it imports; it always does there.
try:
    from sagemaker_inference.errors import GenericInferenceToolkitError as _ToolkitError
except ImportError:  # local stack, tests, benchmarks

    class _ToolkitError(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str | None = None, phrase: str | None = None):
            self.status_code = status_code
            self.message = message or "Invalid Request"
            self.phrase = phrase or self.message
            super().__init__(status_code, self.message, self.phrase)


class InferenceError(_ToolkitError):
    """A request the model cannot serve; carries the HTTP status the container answers with."""

    status = 400

    def __init__(self, message: str):
        # One short line: the toolkit appends a traceback after the first line, proxies keep only line one.
        # ASCII only (other characters escaped): the message is also the HTTP reason phrase, and TorchServe's
        # worker frames the phrase with its length in characters but sends its UTF-8 bytes, so one non-ASCII
        # character (a top_k of "五", an Accept of top_k=٣) desynchronises the frontend: the request hangs until
        # the response timeout, the worker is killed and reloads the model, and requests queued behind it wait.
        message = " ".join(message.split()).encode("ascii", "backslashreplace").decode("ascii")[:300]
        super().__init__(self.status, message, message)

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(InferenceError):
    status = 400


class InvalidImageError(InferenceError):
    status = 400


class UnsupportedAcceptError(InferenceError):
    status = 406


class ImageTooLargeError(InferenceError):
    status = 413


class UnsupportedContentTypeError(InferenceError):
    status = 415


class ModelLoadError(RuntimeError):
    """model_fn could not build the model; the message names the path it tried."""


# ---------------------------------------------------------------------------------------------------------
# Model
# The resamplings preprocess does, by torchvision's InterpolationMode names: given a Pillow image, torchvision's
# ImageClassification transform resizes with Pillow's filter of that name (antialiased, as Pillow always is), so
# passing the same filter gives its pixels. Every torchvision classification preset is bilinear or bicubic; another
# mode is refused rather than served untested.
RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocessing:
    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # a key of RESAMPLING

    def __post_init__(self) -> None:
        # A size below 1 (or 1.9 or true, which int() took as 1) loaded, then every request failed or was served a
        # one-pixel image.
        for name in ("resize", "crop"):
            size = getattr(self, name)
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"{name} {size!r} is not a whole number above 0")
        if self.crop > MAX_CROP:
            raise ValueError(f"crop {self.crop} is above {MAX_CROP}, the largest crop served")
        if self.resize > MAX_RESIZE_PER_CROP * self.crop:
            raise ValueError(
                f"resize {self.resize} is above {MAX_RESIZE_PER_CROP} times crop {self.crop} "
                f"({MAX_RESIZE_PER_CROP * self.crop})"
            )
        if not isinstance(self.interpolation, str) or self.interpolation not in RESAMPLING:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {', '.join(RESAMPLING)}")
        # A hand-edited metadata.json would otherwise fail inside torch (the TorchScript fallback's normalisation),
        # far from the file, or divide by zero.
        for name, values in (("mean", self.mean), ("std", self.std)):
            if rule := broken_channel_rule(name, values):
                # reprlib: a list of 100,000 values was all in the message, and model_fn logs it as one line.
                raise ValueError(f"{name} {reprlib.repr(list(values))} is not {rule}, one per RGB channel")


def broken_channel_rule(name: str, values: Sequence[Any]) -> str | None:
    """The rule a normalisation's "mean" (3 finite numbers) or "std" (3 finite numbers above 0) breaks, or None.
    model.package checks a preset's values with it before building, so the build and serving cannot disagree."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and _finite(v)]
    positive = name == "std"
    if len(values) == 3 and len(numbers) == 3 and (not positive or min(numbers) > 0):
        return None
    return "3 numbers above 0" if positive else "3 numbers"


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int no float holds: JSON reads one from a 1 and 400 zeros
        return False


def labels_from_metadata(values: Any) -> list[str]:
    """metadata.json's "labels": a list of non-blank strings, one per class (repeats are fine: ImageNet's names 134
    and 517 both "crane"). A string was split into characters, a number or null was served as the label, and a blank
    one ("  ") as an empty-looking answer; TypeError or ValueError names the field (and the index)."""
    if not isinstance(values, list):
        raise TypeError(f"labels {reprlib.repr(values)} is not a list")
    for i, label in enumerate(values):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"labels[{i}] {reprlib.repr(label)} is not a non-blank string")
    return values


def preprocessing_from_metadata(values: Mapping[str, Any]) -> Preprocessing:
    """metadata.json's "preprocessing" object (model.package writes it) as a Preprocessing. An artifact built before
    "interpolation" was read (or without it) resizes bilinear, as every build before then did.

    A missing key raises KeyError, a value of the wrong kind TypeError or ValueError; load_classifier names the file.
    """
    return Preprocessing(
        resize=values["resize"],
        crop=values["crop"],
        mean=tuple(values["mean"]),
        std=tuple(values["std"]),
        interpolation=values.get("interpolation", "bilinear"),
    )


@dataclass
class Classifier:
    """What model_fn returns: a backend callable on uint8 NHWC batches plus what the handlers need.

    Normalisation ((x / 255 - mean) / std, HWC -> CHW) is part of the model itself, in both backends: the
    request path hands over the cropped pixels as they are, and ONNX Runtime does the float work.
    """

    run: Any  # Callable[[np.ndarray], np.ndarray] -> logits (N, classes)
    backend: str
    labels: list[str]
    preprocessing: Preprocessing
    model_name: str
    weights_id: str


@dataclass(frozen=True)
class ModelInput:
    batch: np.ndarray  # (1, crop, crop, 3) uint8 RGB
    top_k: int | None


@dataclass(frozen=True)
class Prediction:
    probs: np.ndarray  # (classes,) float32
    top_k: int | None
    model: Classifier


CGROUP_ROOT = "/sys/fs/cgroup"


def _read_words(path: str) -> list[str] | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().split()
    except (OSError, ValueError):
        return None


def _cgroup_v2_dirs(root: str, proc_cgroup: str) -> list[str]:
    """This process's cgroup v2 directory under root and each of its ancestors, leaf first. Inside a container
    with its own cgroup namespace the path is "/", so that is root alone."""
    path = "/"
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    path = line[3:].strip()
    except (OSError, ValueError):
        pass
    parts = [part for part in path.split("/") if part and part != ".."]
    return [os.path.join(root, *parts[:depth]) for depth in range(len(parts), -1, -1)]


def _quota_cpus(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    try:
        return quota_us / period_us
    except OverflowError:  # no kernel writes such a quota; unlimited, for all practical purposes
        return None


def cgroup_cpu_limit(root: str = CGROUP_ROOT, proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPUs a cgroup CPU quota grants this process, or None when there is no quota or it cannot be read.

    cgroup v2: the tightest `cpu.max` ("max 100000" or "150000 100000") of the process's cgroup and its ancestors.
    v1: `cpu.cfs_quota_us` over `cpu.cfs_period_us` where the cpu controller is mounted (a container's own cgroup).
    A quota does not show in the CPU affinity: a container may see 8 CPUs and be allowed 2 of them, and 8 threads
    sized from the affinity would then be throttled by the kernel in the middle of a run.
    """
    limits = []
    for directory in _cgroup_v2_dirs(root, proc_cgroup):
        words = _read_words(os.path.join(directory, "cpu.max"))
        if words and len(words) == 2:
            limits.append(_quota_cpus(*words))
    if not limits:
        for v1 in ("cpu", "cpu,cpuacct"):
            quota = _read_words(os.path.join(root, v1, "cpu.cfs_quota_us"))  # -1: none
            period = _read_words(os.path.join(root, v1, "cpu.cfs_period_us"))
            if quota and period:
                limits.append(_quota_cpus(quota[0], period[0]))
                break
    return min((limit for limit in limits if limit is not None), default=None)


def _threads() -> int:
    """Threads for the model: the CPUs this process may run on, or fewer when a CPU quota allows fewer. A
    fractional quota rounds up (1.5 CPUs -> 2 threads), as the JVM counts CPUs in a container."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def load_metadata(model_dir: str) -> dict[str, Any]:
    path = os.path.join(model_dir, METADATA_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except OSError as e:
        raise ModelLoadError(f"cannot read model metadata at {path}: {e.strerror}") from e
    except ValueError as e:
        raise ModelLoadError(f"model metadata at {path} is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise ModelLoadError(f"model metadata at {path} is a JSON {type(meta).__name__}, not an object")
    missing = {"model", "weights", "labels", "preprocessing"} - meta.keys()
    if missing:
        raise ModelLoadError(f"model metadata at {path} lacks {sorted(missing)}")
    for key in ("model", "weights"):  # each reply names them; "model" is torchvision's name for the fallback
        if not isinstance(meta[key], str) or not meta[key]:
            raise ModelLoadError(f"model metadata at {path}: {key} is {meta[key]!r}, not a non-empty string")
    return meta


def _add_vendored_packages() -> None:
    """Put code/vendor/cpXY (model.package unpacks the onnxruntime wheel there) on sys.path for this Python."""
    vendor = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "vendor", f"cp{sys.version_info[0]}{sys.version_info[1]}"
    )
    if os.path.isdir(vendor) and vendor not in sys.path:
        sys.path.insert(0, vendor)


# CPU flags (as /proc/cpuinfo names them) that ONNX Runtime's MLAS dispatches its u8 x s8 kernels on (its
# platform.cpp): AVX-512 is MLAS's "core" set, whose kernel replaces the AVX-VNNI one.
AVX512_CORE_CPU_FLAGS = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first CPU's flags, or none where there is no /proc/cpuinfo (macOS) or it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def int8_products_saturate(flags: frozenset[str]) -> bool:
    """Whether ONNX Runtime's u8 x s8 kernels clip on this x86 CPU: its AVX2 and AVX-512 kernels add each pair of
    products in 16 bits (vpmaddubsw), and a pair of large ones does not fit; its VNNI kernels add them in 32.
    A virtual CPU may report AVX-VNNI without AVX-512 VNNI: beside AVX-512 the AVX-VNNI kernel is not the one used.
    AMX does not count: MLAS gives its tiles the int8 GEMMs only, and the Convs with symmetric s8 weights (every int8
    1x1 Conv here) run its ConvSym kernels, VNNI or vpmaddubsw, AMX or not."""
    if "avx2" not in flags:
        return False
    return "avx512_vnni" not in flags if flags >= AVX512_CORE_CPU_FLAGS else "avx_vnni" not in flags


def ort_session_options(ort, threads: int | None = None, flags: frozenset[str] | None = None):
    """ONNX Runtime options for one image at a time on a small CPU-only instance (flags: this CPU's, by default)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or _threads()
    opts.inter_op_num_threads = 1
    # Workers that spin between the graph's parallel sections skip a futex wake-up per operator (a run is
    # about a fifth faster on 2 vCPUs), but idle workers would go on spinning for tens of ms after Run() and
    # steal the CPU that the next request's JPEG decode (or TorchServe's frontend) needs: stop them the moment
    # Run() returns.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    if int8_products_saturate(cpu_flags() if flags is None else flags):
        # The opt-in int8 graph's clipped sums left it agreeing with fp32 about a third as well as on a VNNI CPU
        # (README: int8 (opt-in)). This has ONNX Runtime shift the int8 weights to u8 and use its exact u8 x u8
        # kernels instead, about a tenth slower; an fp32 graph has no such kernel and is not changed. Not set on
        # VNNI CPUs: their products are exact already, and ONNX Runtime would apply it there too, giving
        # up their faster kernels.
        opts.add_session_config_entry("session.x64quantprecision", "1")
    return opts


def _onnxruntime_backend(onnx_path: str, crop: int):
    _add_vendored_packages()
    # ONNX Runtime's telemetry is on by default on Linux (its Privacy.md): it would write a device id under
    # $HOME and try to reach Microsoft from inside the endpoint. An operator may still turn it on explicitly.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort  # absent or not loadable -> ImportError -> TorchScript fallback

    opts = ort_session_options(ort)
    session = ort.InferenceSession(onnx_path, sess_options=opts, providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    # Otherwise a graph exported another way (float32, NCHW: torchvision's usual export) failed model_fn's warm-up
    # with ONNX Runtime's own error, or was said to take "3x224 pixels".
    shape = list(graph_input.shape or [])
    if (
        graph_input.type != "tensor(uint8)"
        or len(shape) != 4
        or any(isinstance(size, int) and size != want for size, want in ((shape[0], 1), (shape[3], 3)))
    ):
        raise ModelLoadError(
            f"the ONNX graph at {onnx_path} takes {graph_input.type} of shape {shape}, not uint8 pixels of shape "
            "[batch, height, width, 3] as model.package exports it"
        )
    # Otherwise a hand-edited crop failed model_fn's warm-up with ONNX Runtime's own error, naming neither. Each
    # size the graph fixes must be the crop, also where it fixes one and not the other.
    height, width = shape[1:3]
    if any(isinstance(size, int) and size != crop for size in (height, width)):
        metadata_path = os.path.join(os.path.dirname(onnx_path), METADATA_FILE)
        raise ModelLoadError(
            f"model metadata at {metadata_path} has crop {crop}, but the ONNX graph at {onnx_path} takes "
            f"{height!r}x{width!r} pixels"
        )
    input_name = graph_input.name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return run, f"onnxruntime-{ort.__version__}"


def with_normalisation(model, pre: Preprocessing):
    """Wrap a torchvision classifier so it takes uint8 NHWC pixels, as model.package exports it to ONNX."""
    import torch

    class Normalised(torch.nn.Module):
        def __init__(self, net: torch.nn.Module):
            super().__init__()
            std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
            mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
            self.net = net
            self.register_buffer("scale", 1.0 / (255.0 * std))
            self.register_buffer("shift", -mean / std)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.net(pixels.permute(0, 3, 1, 2).float() * self.scale + self.shift)

    return Normalised(model).eval()


def load_failure(e: Exception) -> str:
    """torch.load's refusal in a few words (model.package says the same of a --weights file). Not its advice (load
    with weights_only=False, or allow the globals the file names), which would run whatever code the file pickles."""
    text = str(e)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:  # a whole model, or anything else pickled with its classes
        return f"it pickles a {refused[1]}; only tensors are loaded"
    # No pickle torch reads (UnpicklingError), no legacy magic number (KeyError), an empty file (EOFError).
    if "Weights only load failed" in text or isinstance(e, KeyError | EOFError):
        return "it is not a torch.save() file"
    first = text.strip().splitlines()[0].split(". ")[0][:200] if text.strip() else ""  # a torn zip: what failed
    return f"{type(e).__name__}: {first}"


def _torchscript_backend(weights_path: str, model_name: str, num_classes: int, pre: Preprocessing):
    import torch
    import torchvision

    torch.set_num_threads(_threads())
    try:  # metadata.json's "model" is torchvision.models.get_model's name (model.package's MODEL_NAME)
        model = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes)
    except ValueError as e:  # "Unknown model ..."
        raise ModelLoadError(f"weights at {weights_path} are for {model_name!r}, which torchvision cannot build") from e
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ModelLoadError(f"model weights not found at {weights_path}") from e
    except Exception as e:  # truncated zip, not a state_dict: torch's message names no file and runs many lines
        raise ModelLoadError(f"model weights at {weights_path} are not a readable state_dict: {load_failure(e)}") from e
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as e:  # TypeError: a saved tensor or list, not a state_dict
        first = str(e).splitlines()[0]
        raise ModelLoadError(f"weights at {weights_path} do not fit {model_name}: {first}") from e
    example = torch.zeros((1, pre.crop, pre.crop, 3), dtype=torch.uint8)
    # The default DLC's torch 2.6 serves this with torch.jit current; a newer torch (the venv's, under the local
    # stack) warns that trace, trace_method, freeze and optimize_for_inference are deprecated for torch.compile or
    # torch.export, which are no drop-in here (a compiler toolchain and a long first compile; an unfrozen graph).
    # Those four alone are ignored, for the process as decode_image's are: catch_warnings is not thread-safe.
    warnings.filterwarnings(
        "ignore", r"`torch\.jit\.(trace|trace_method|freeze|optimize_for_inference)` is deprecated", FutureWarning
    )
    with torch.inference_mode():
        traced = torch.jit.trace(with_normalisation(model.eval(), pre), example)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            # Decoded images arrive read-only (a view of Pillow's buffer); torch wants a writable array.
            return frozen(torch.from_numpy(batch if batch.flags.writeable else batch.copy())).numpy()

    return run, f"torchscript-{torch.__version__}"


def load_classifier(model_dir: str) -> Classifier:
    """Load the classifier from an extracted model.tar.gz and warm it up. Fails loudly, naming the path."""
    started = time.perf_counter()
    if not os.path.isdir(model_dir):
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    meta = load_metadata(model_dir)
    try:
        labels = labels_from_metadata(meta["labels"])
        preprocessing = preprocessing_from_metadata(meta["preprocessing"])
    except (KeyError, TypeError, ValueError) as e:  # a bare KeyError 'resize' would not say which file
        path = os.path.join(model_dir, METADATA_FILE)
        raise ModelLoadError(f"model metadata at {path} has unusable labels or preprocessing: {e!r}") from e
    weights_path = os.path.join(model_dir, WEIGHTS_FILE)
    onnx_path = os.path.join(model_dir, ONNX_FILE)
    backend_choice = os.environ.get("MODEL_BACKEND", "auto").strip().lower() or "auto"
    if backend_choice not in BACKEND_CHOICES:
        raise ModelLoadError(f"MODEL_BACKEND={backend_choice!r} is not one of {', '.join(BACKEND_CHOICES)}")
    if backend_choice == "onnxruntime" and not os.path.isfile(onnx_path):
        raise ModelLoadError(f"MODEL_BACKEND=onnxruntime but there is no ONNX graph at {onnx_path}")

    run = backend = None
    if backend_choice in ("auto", "onnxruntime") and os.path.isfile(onnx_path):
        try:
            run, backend = _onnxruntime_backend(onnx_path, preprocessing.crop)
        except ImportError as e:
            if backend_choice == "onnxruntime":
                raise ModelLoadError(f"onnxruntime requested but cannot import: {e}") from e
            logger.warning("onnxruntime unavailable (%s); falling back to TorchScript", e)
    if run is None:
        if not os.path.isfile(weights_path):
            raise ModelLoadError(f"model weights not found at {weights_path}")
        run, backend = _torchscript_backend(weights_path, meta["model"], len(labels), preprocessing)

    classifier = Classifier(
        run=run,
        backend=backend,
        labels=labels,
        preprocessing=preprocessing,
        model_name=meta["model"],
        weights_id=meta["weights"],
    )
    # Warm-up so the first request is not the slow one (allocations, kernel selection, lazy init).
    warm = np.zeros((1, preprocessing.crop, preprocessing.crop, 3), dtype=np.uint8)
    logits = classifier.run(warm)
    if logits.shape != (1, len(labels)):
        raise ModelLoadError(f"model in {model_dir} gave shape {logits.shape}, expected (1, {len(labels)})")
    # A mean or std float32 cannot hold (1e300, or a std of 1e-40, which is above 0) passes the rule above but makes
    # the TorchScript fallback's normalisation infinite: every answer would be "prob": NaN, which is not JSON.
    if not np.isfinite(logits).all():
        raise ModelLoadError(
            f"model in {model_dir} gave non-finite logits for a black image: its weights, or the mean and std in "
            f"{os.path.join(model_dir, METADATA_FILE)}, are not finite in float32"
        )
    logger.info(
        "model_fn: serving %s (%s) with %s on %d threads in %.0f ms",
        classifier.model_name,
        classifier.weights_id,
        backend,
        _threads(),
        (time.perf_counter() - started) * 1000,
    )
    return classifier


# ---------------------------------------------------------------------------------------------------------
# Decoding and preprocessing (pure functions)
def parse_media_type(value: str | None) -> tuple[str, dict[str, str]]:
    """'Application/JSON; charset=utf-8' -> ('application/json', {'charset': 'utf-8'})."""
    if not value:
        return "", {}
    main, *params = value.split(";")
    parsed = {}
    for param in params:
        key, sep, val = param.partition("=")
        if sep:
            parsed[key.strip().lower()] = val.strip().strip('"')
    return main.strip().lower(), parsed


def parse_top_k(value: Any, source: str) -> int:
    # bool is an int subclass; 1e9 arrives as float; both are refused, as are strings like "5".
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise InvalidRequestError(f"{source} must be an integer from 1 to {MAX_TOP_K}, got {value!r:.40}")
    return value


def decode_base64_image(text: str) -> bytes:
    """Decode a bare base64 string or a data: URL of an accepted image type."""
    if text[:5].lower() == "data:":
        header, sep, text = text.partition(",")
        is_base64 = header.lower().endswith(";base64")
        media_type, _ = parse_media_type(header[5 : -len(";base64")] if is_base64 else header[5:])
        if not sep or not is_base64:
            raise InvalidRequestError("data: URL must be base64 encoded ('data:image/jpeg;base64,...')")
        if media_type not in (JPEG, PNG, WEBP, X_IMAGE, *JPEG_ALIASES):  # the raw bodies' image types
            raise UnsupportedContentTypeError(
                f"data: URL media type {media_type or '(none)'!r} is not image/jpeg, image/png or image/webp"
            )
    try:
        # Line breaks and spaces are allowed, as in MIME (76-column) base64 and `base64` CLI output.
        return base64.b64decode(re.sub(r"[ \t\r\n]+", "", text), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequestError("'image' is not valid base64") from e


@dataclass(frozen=True)
class LongJsonInteger:
    """A JSON integer literal too long for any field we read. int() refuses one past 4300 digits (ValueError: the
    body would be called invalid JSON) and takes quadratic time up to there, so it is kept as its text."""

    literal: str

    def __repr__(self) -> str:  # parse_top_k quotes the value: the number as it was sent
        return self.literal


MAX_JSON_INT_CHARS = 20  # a top_k (1..MAX_TOP_K) is far shorter; any int64 fits


def _json_int(literal: str) -> int | LongJsonInteger:
    return int(literal) if len(literal) <= MAX_JSON_INT_CHARS else LongJsonInteger(literal)


def decode_json_request(body: str | bytes) -> tuple[bytes, int | None]:
    if isinstance(body, str):  # the toolkit decoded it as UTF-8; a byte-order mark survives that
        body = body.removeprefix("\ufeff")
    try:
        payload = json.loads(body, parse_int=_json_int)
    except (ValueError, RecursionError) as e:
        raise InvalidRequestError("request body is not valid JSON") from e
    if not isinstance(payload, dict):
        raise InvalidRequestError('JSON body must be an object like {"image": "<base64>", "top_k": 5}')
    image = payload.get("image")
    if not isinstance(image, str) or not image:
        raise InvalidRequestError("JSON field 'image' must be a non-empty base64 string or data: URL")
    top_k = parse_top_k(payload["top_k"], "top_k") if "top_k" in payload else None
    return decode_base64_image(image), top_k


def _row_blocks(img: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """(top, those rows of img) in blocks of at most BLOCK_PIXELS pixels, top to bottom."""
    rows = max(1, BLOCK_PIXELS // img.width)
    for top in range(0, img.height, rows):
        yield top, img.crop((0, top, img.width, min(top + rows, img.height)))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode -> RGB. Written for memory: a 190 KB PNG can hold 49 MP, so no full-size float or
    RGBA temporaries beyond the one Pillow already decoded (a 7000x7000 RGBA PNG peaks ~0.5 GB, not ~1 GB)."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    alphas = img.info.get("transparency")
    if img.mode == "P" and isinstance(alphas, bytes) and len(alphas) > 256:
        # A tRNS chunk longer than any palette (the PNG spec forbids it; libpng and browsers ignore it): no pixel
        # can use what is past entry 256, and Pillow's convert raises "palette index out of range" on it.
        img.info["transparency"] = alphas[:256]
    if img.mode == "P" and isinstance(alphas, int) and alphas > 255:
        # Pillow names the one transparent entry of such a tRNS (all 255 but a single 0) by its index: past entry
        # 255 it is no pixel's, and Pillow's convert raised "palette index out of range" (a 400 for a good image).
        del img.info["transparency"]
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: scale to 8 bits (Pillow's own convert clips at 255 instead). Row blocks of at most
        # 4 MP (512 rows of 8192) keep the integer temporaries small, however wide the image: blocks of a fixed
        # 512 rows made a 97 KB 1,000,000x50 PNG one 400 MB int64 block and added 1.2 GB to a worker. x // 257 is
        # what float division then truncation gave. A tRNS colour key (one 16-bit grey level) is transparent, so
        # on white like every other transparency here.
        key = alphas if isinstance(alphas, int) else None
        grey = np.empty((img.height, img.width), dtype=np.uint8)
        for top, rows in _row_blocks(img):
            block = np.asarray(rows, dtype=np.int64)
            scaled = np.clip(block // 257, 0, 255)
            if key is not None:
                scaled[block == key] = 255
            grey[top : top + block.shape[0]] = scaled
        # No mode argument: a 2-D uint8 array is "L" to every Pillow, and Pillow 11.3 deprecates the argument.
        return Image.fromarray(grey).convert("RGB")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8)).convert("RGB")
    # "transparency" is a PNG tRNS chunk: palette alpha, or one colour key of an RGB or greyscale image.
    if img.mode == "LA":
        # Grey with alpha: composite in grey (Pillow stores LA at 4 bytes a pixel, as RGBA) and widen to RGB
        # last, the same pixels as through RGBA without its full-size copy: a 7071x7071 one adds 431 MB, not 574.
        grey = Image.new("L", img.size, 255)
        grey.paste(img, (0, 0), img)
        return grey.convert("RGB")
    if img.mode in ("RGBA", "PA", "RGBa", "La") or "transparency" in img.info:
        # Composite over white by pasting through the image's own alpha: one RGB buffer, not three RGBA ones.
        white = Image.new("RGB", img.size, (255, 255, 255))
        if img.mode == "RGBA":
            white.paste(img, (0, 0), img)
            return white
        # Palette alpha or a colour key: Pillow's convert applies it, a block of rows at a time, so there is no
        # full-size RGBA copy (a 157 KB 7071x7071 RGB PNG with a tRNS colour key added 574 MB that way, 431 MB
        # for a palette or grey one).
        for top, rows in _row_blocks(img):
            block = rows.convert("RGBA")
            white.paste(block, (0, top), block)
        return white
    return img.convert("RGB")


def _jpeg_markers(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset of its segment) for each marker of a JPEG up to its first EOI, found as libjpeg finds them:
    marker segments skipped by their length, entropy-coded data up to the next 0xFF that is not stuffing (0x00) or a
    restart marker, fill bytes (0xFF 0xFF) and junk between segments skipped."""
    i, end = 2, len(data)
    while True:
        j = data.find(b"\xff", i)
        if j < 0:
            return
        k = j + 1
        while k < end and data[k] == 0xFF:
            k += 1
        if k >= end:
            return
        marker, i = data[k], k + 1
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # stuffing, TEM, RSTn, a stray SOI
            continue
        if marker == 0xD9:  # EOI: libjpeg reads nothing after it (an MPO's further pictures included)
            return
        yield marker, i
        if i + 2 > end:
            return
        i += max(2, int.from_bytes(data[i : i + 2], "big"))  # the segment (for SOS its header; its data follows)


def jpeg_scan_count(data: bytes, limit: int = MAX_JPEG_SCANS) -> int:
    """The start-of-scan markers of a JPEG up to its first EOI, walked as libjpeg does. Stops counting once past
    `limit`."""
    count = 0
    for marker, _ in _jpeg_markers(data):
        if marker == 0xDA:
            count += 1
            if count > limit:
                break
    return count


def single_pass_jpeg(data: bytes) -> bool:
    """Whether libjpeg reads this JPEG in one pass: a sequential frame (SOF0, 1, 3, 9 or 11) whose first scan holds
    every component, as cameras and browsers write them. libjpeg then ends at any later SOS marker with an error
    (JERR_EOI_EXPECTED, Pillow's "broken data stream"), so further scans cost nothing: 200 repeated scans of a
    7000x7000 one are refused in the time of one."""
    frame = None
    for marker, i in _jpeg_markers(data):
        if marker in SOF_MARKERS:
            if frame is not None:  # libjpeg refuses a second frame header (JERR_SOF_DUPLICATE)
                return False
            frame = (marker, data[i + 7] if i + 7 < len(data) else None)  # length, precision, height, width, Nf
        elif marker == 0xDA:
            components = data[i + 2] if i + 2 < len(data) else None  # length, then Ns
            sequential = frame is not None and frame[0] in SEQUENTIAL_SOF_MARKERS
            return sequential and components is not None and components == frame[1]
    return False


def ff_da_count(data: bytes, block: int = SOS_COUNT_BLOCK) -> int:
    """How often the bytes FF DA occur in data: every start-of-scan marker, and the same bytes anywhere else."""
    octets = np.frombuffer(data, dtype=np.uint8)
    starts = max(len(octets) - 1, 0)  # where a pair can start
    is_ff, is_da = np.empty(min(block, starts), dtype=bool), np.empty(min(block, starts), dtype=bool)
    pairs = 0
    for first in range(0, starts, block):
        size = min(block, starts - first)
        ff, da = is_ff[:size], is_da[:size]
        np.equal(octets[first : first + size], 0xFF, out=ff)
        np.equal(octets[first + 1 : first + 1 + size], 0xDA, out=da)  # one byte on: a pair may span two blocks
        pairs += int(np.count_nonzero(np.logical_and(ff, da, out=ff)))
    return pairs


def too_many_scans(data: bytes) -> bool:
    # A single-pass JPEG has nothing to count (single_pass_jpeg walks its headers only: 0.4-0.9 ms less on a 3 MB
    # photo, 3% of its preprocessing). Every SOS marker is the bytes FF DA: only a file with more of them than the
    # limit needs the walk (in Python). Counted with numpy: 0.4 ms on a 3 MB photo, where bytes.count takes 2.7 ms.
    if single_pass_jpeg(data):
        return False
    return ff_da_count(data) > MAX_JPEG_SCANS and jpeg_scan_count(data) > MAX_JPEG_SCANS


def png_chunk_count(data: bytes, kind: bytes, limit: int) -> int:
    """The chunks of type `kind` in a PNG, walked as Pillow reads them: a 4-byte length, the type, the data and a
    4-byte CRC each, from the signature up to IEND (nothing after it is read) or the end of the data. Stops counting
    once past `limit`."""
    count, i, end = 0, len(PNG_SIGNATURE), len(data)
    while count <= limit and i + 8 <= end:
        chunk_type = data[i + 4 : i + 8]
        if chunk_type == b"IEND":
            break
        if chunk_type == kind:
            count += 1
        i += 12 + int.from_bytes(data[i : i + 4], "big")
    return count


def too_many_colour_profiles(data: bytes) -> bool:
    # Only a file holding the bytes "iCCP" more than once needs the walk (in Python: a PNG written in libpng's 8 KB
    # IDAT chunks has hundreds of chunks).
    limit = MAX_PNG_ICCP_CHUNKS
    return data.count(b"iCCP") > limit and png_chunk_count(data, b"iCCP", limit) > limit


def decode_image(data: bytes, draft_to: int | None = None) -> Image.Image:
    """Bytes -> upright RGB Pillow image; refuses non-images, truncated files and decompression bombs."""
    # Pillow warns of each oddity of a file on stderr, which the container sends to CloudWatch, and the
    # catch_warnings below makes Python forget which it has shown: a 0.8 MB EXIF block of 65,535 bad tags was 42,000
    # log lines for every request. Whatever Pillow warns of, the image is decoded or refused all the same.
    # Set for the process, not in a catch_warnings of its own: that is not thread-safe, and among the local stack's
    # model threads a decode ending first put the filters back under one still running, whose warnings then printed.
    # Set on every call, as a test runner puts its own filters back after each test.
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    if not data:
        raise InvalidImageError("empty body: send a JPEG, PNG or WebP image")
    if data.startswith(PNG_SIGNATURE) and too_many_colour_profiles(data):  # Image.open inflates them already
        raise InvalidImageError("PNG has more than one colour profile (iCCP chunk), which PNG forbids; re-encode it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the three accepted decoders are tried: faster, and no other parser sees hostile bytes.
            img = Image.open(io.BytesIO(data), formats=tuple(ACCEPTED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"image has too many pixels (limit {MAX_PIXELS:,})") from e
    except UnidentifiedImageError as e:
        other = other_image_format(data)
        if other:
            raise UnsupportedContentTypeError(f"{other} images are not accepted; send JPEG, PNG or WebP") from e
        raise InvalidImageError("body is not a readable JPEG, PNG or WebP image") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise InvalidImageError("body is not a readable JPEG, PNG or WebP image") from e
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(f"image is {width}x{height}; the limit is {MAX_PIXELS:,} pixels")
    if max(width, height) > MAX_SIDE:
        raise ImageTooLargeError(f"image is {width}x{height}; the limit is {MAX_SIDE:,} pixels a side")
    if img.format == "WEBP" and width * height > MAX_WEBP_PIXELS:
        raise ImageTooLargeError(
            f"WebP image is {width}x{height}; the limit for WebP is {MAX_WEBP_PIXELS:,} pixels (send a JPEG or PNG)"
        )
    if img.format in ("JPEG", "MPO") and too_many_scans(data):
        raise InvalidImageError(
            f"JPEG has more than {MAX_JPEG_SCANS} scans (progressive passes); re-encode it as a normal JPEG"
        )
    key = img.info.get("transparency")
    if img.format == "PNG" and img.mode == "L" and isinstance(key, int) and img.tile:
        # A grey tRNS level is written at the file's depth, which Pillow keeps while it widens 2- and 4-bit pixels
        # to 8 bits (2-bit 1 is 85): widen the level the same way. A level the depth cannot hold is invalid (the
        # PNG spec) and is taken to match no pixel; libpng only warns and masks it to the depth, and Pillow would
        # match it modulo 256, so neither is a standard to follow for such a file.
        top = {"L;2": 3, "L;4": 15}.get(img.tile[0][3], 255)
        if key > top:
            del img.info["transparency"]
        else:
            img.info["transparency"] = key * (255 // top)
    if img.format == "PNG" and isinstance(key, tuple) and img.tile and img.tile[0][3] == "RGB;16B":
        # A 16-bit RGB tRNS colour: Pillow keeps the pixels' high bytes and its convert then matched the key's low
        # bytes, so the transparent colour stayed and an unrelated one (the key's low bytes as high bytes) turned
        # white. Compare high bytes with high bytes (libpng compares all 16 bits, which the pixels no longer hold).
        img.info["transparency"] = tuple(value >> 8 for value in key)
    # MPO: the multi-picture JPEG many phones write (Pillow names it apart; it decodes the first picture).
    if img.format in ("JPEG", "MPO"):
        if draft_to and min(width, height) >= DRAFT_MIN_FACTOR * draft_to:
            # DCT-domain downscale while decoding: a 12 MP photo decodes at 1/8 size, several times faster. Only for
            # images at least 4x the target, so the decoded size stays >= the target and the antialiased
            # resize still does the last step (drafting a 512 px image straight to 256 visibly changes results).
            img.draft("RGB", (draft_to, draft_to))
        # The whole body in one read, not Pillow's 64 KB ones: libjpeg then never suspends for more input, nor
        # Pillow joins what it left to the next read. 0.6-0.75 ms (2%) off a 3 MB photo on an Intel Xeon host
        # (none measured on a Zen 4 one), same pixels. The body is in memory already; the read holds one copy of
        # it while it decodes, as the 64 KB reads did in pieces.
        img.decodermaxblock = max(img.decodermaxblock, len(data))
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise InvalidImageError("image data is truncated or corrupt") from e
    try:
        # Not a WebP's: Chromium (the web UI's decode) and libwebp's tools show a WebP as stored (WebKit turns it),
        # so turning it here made the page and a curl of the same file classify it on different sides in Chromium.
        if img.format != "WEBP":
            ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a broken EXIF block must not fail an otherwise good image
        logger.info("ignoring unreadable EXIF orientation")
    try:
        return _to_rgb(img)
    except (OSError, ValueError) as e:  # what Pillow's conversions raise on inconsistent colour data
        raise InvalidImageError("image colour data is corrupt (palette or transparency)") from e


def other_image_format(data: bytes) -> str | None:
    """Name the format of an image we do not accept (GIF, BMP, HEIC...), for a 415 that says what was sent."""
    for signature, name in OTHER_IMAGE_SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return HEIF_BRANDS[data[8:12]]
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def preprocess(img: Image.Image, pre: Preprocessing) -> np.ndarray:
    """Resize (shorter side) and centre-crop like torchvision's ImageClassification transform -> (1, H, W, 3) uint8.

    Resize-then-crop, with the preset's Pillow filter (pre.interpolation), gives torchvision's pixels exactly. Only
    when the resized image would be very long (an extreme aspect ratio) is the crop resampled straight from its box
    in the source image instead, without materialising a huge resized image: the same pixels up to one rounding step
    bilinear; bicubic's negative lobes carry a rounding step a little further (at most 3 levels on random noise).
    """
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = pre.resize, int(pre.resize * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    crop_w, crop_h = min(pre.crop, new_w), min(pre.crop, new_h)
    left, top = round((new_w - crop_w) / 2.0), round((new_h - crop_h) / 2.0)
    crop = (left, top, left + crop_w, top + crop_h)
    if (new_w, new_h) == (width, height):  # already at the target size (the web UI sends exactly that): crop only
        img = img.crop(crop)
    elif new_long <= MAX_RESIZED_SIDE_FACTOR * new_short:
        img = img.resize((new_w, new_h), RESAMPLING[pre.interpolation]).crop(crop)
    else:
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
        img = img.resize((crop_w, crop_h), RESAMPLING[pre.interpolation], box=box)
    if (crop_w, crop_h) != (pre.crop, pre.crop):  # image smaller than the crop: pad like center_crop does
        padded = Image.new("RGB", (pre.crop, pre.crop))
        padded.paste(img, ((pre.crop - crop_w) // 2, (pre.crop - crop_h) // 2))
        img = padded
    return np.asarray(img, dtype=np.uint8)[None]  # normalisation happens inside the model


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k_predictions(probs: np.ndarray, labels: list[str], k: int) -> list[dict[str, Any]]:
    k = min(k, probs.shape[-1])
    idx = np.argpartition(-probs, k - 1)[:k]
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    return [{"label": labels[i], "prob": round(float(probs[i]), 6)} for i in idx]


# ---------------------------------------------------------------------------------------------------------
# The toolkit's four functions (one model per worker process).
_model: Classifier | None = None


def _raw_image(body: bytes | bytearray | str) -> tuple[bytes, None]:
    if isinstance(body, str):  # the toolkit only decodes UTF-8 types to str; anything odd fails as a bad image
        body = body.encode("latin-1", "replace")
    return bytes(body), None


INPUT_DECODERS = {
    JSON: decode_json_request,
    JPEG: _raw_image,
    PNG: _raw_image,
    WEBP: _raw_image,
    X_IMAGE: _raw_image,
} | dict.fromkeys(JPEG_ALIASES, _raw_image)


def _unsupported_content_type(header: str | None, media_type: str) -> str:
    accepted = ", ".join(INPUT_DECODERS)
    if not media_type and header and header.strip():  # ';;;', ';charset=utf-8': parameters, no type before them
        return f"content type {header.strip()!r:.60} has no media type; send one of: {accepted}"
    return f"content type {media_type or '(none)'!r} is not one of: {accepted}"


def model_fn(model_dir: str) -> Classifier:
    """Load the model once per worker; input_fn needs its preprocessing, which the toolkit won't pass."""
    global _model
    _model = load_classifier(model_dir)
    return _model


def input_fn(request_body: bytes | bytearray | str, request_content_type: str | None) -> ModelInput:
    """Request body -> (1, 224, 224, 3) uint8 pixels plus the top_k the request asked for."""
    media_type, _ = parse_media_type(request_content_type)
    decoder = INPUT_DECODERS.get(media_type)
    if decoder is None:
        raise UnsupportedContentTypeError(_unsupported_content_type(request_content_type, media_type))
    if _model is None:
        raise ModelLoadError("input_fn called before model_fn")
    data, top_k = decoder(request_body)
    pre = _model.preprocessing
    img = decode_image(data, draft_to=pre.resize)
    return ModelInput(batch=preprocess(img, pre), top_k=top_k)


def predict_fn(input_data: ModelInput, model: Classifier) -> Prediction:
    """Softmax probabilities for one image (the backends never build autograd graphs)."""
    logits = model.run(input_data.batch)
    return Prediction(probs=softmax(logits[0].astype(np.float32)), top_k=input_data.top_k, model=model)


def _accept_top_k(accept: str | None) -> int | None:
    """'application/json;top_k=3' -> 3; accept lists ('text/html, application/json') are honoured, a range
    refused with q=0 is not acceptable (the most specific range that matches JSON decides, as RFC 9110 says),
    and a top_k on any range that matches counts ('*/*, application/json;top_k=2')."""
    if not accept:
        return None
    matching = [parse_media_type(candidate) for candidate in accept.split(",")]
    matching = [(media_type, params) for media_type, params in matching if media_type in JSON_RANGES]
    if not matching or _is_refused(min(matching, key=lambda m: JSON_RANGES.index(m[0]))[1].get("q")):
        raise UnsupportedAcceptError(f"Accept {accept!r:.60} is not supported; ask for application/json")
    for _, params in matching:
        if "top_k" in params and not _is_refused(params.get("q")):
            raw = params["top_k"]
            # int() would also take "1_0", non-ASCII digits, and refuse (ValueError) over 4300 digits.
            if not (raw.isascii() and raw.isdigit()):
                raise InvalidRequestError(f"Accept parameter top_k must be an integer, got {raw!r:.20}")
            # Leading zeros are the same number (0000003 is 3), but one out of range is refused quoting what was
            # sent: 0100 was refused as "got 100", and only one of 7 digits or more as it came.
            digits = raw.lstrip("0") or "0"
            in_range = len(digits) <= len(str(MAX_TOP_K)) and 1 <= int(digits) <= MAX_TOP_K
            return parse_top_k(int(digits) if in_range else LongJsonInteger(raw), "Accept parameter top_k")
    return None


def _is_refused(q: str | None) -> bool:
    """q=0 (RFC 9110: 'not acceptable'); a garbled q is ignored rather than refused."""
    try:
        return q is not None and float(q) == 0.0
    except ValueError:
        return False


# The ranges that accept JSON, most specific first.
JSON_RANGES = (JSON, "application/*", ANY)
# Every accepted range is answered in JSON (an Accept that refuses JSON is a 406 before this).
OUTPUT_ENCODERS = {JSON: json.dumps}


def output_fn(prediction: Prediction, accept: str | None) -> tuple[str, str]:
    """Top-k JSON; returns (body, content type) so the response carries a clean media type."""
    accept_top_k = _accept_top_k(accept)
    k = prediction.top_k or accept_top_k or DEFAULT_TOP_K
    model = prediction.model
    body = {
        "predictions": top_k_predictions(prediction.probs, model.labels, k),
        "model": model.model_name,
        "weights": model.weights_id,
        "backend": model.backend,
    }
    return OUTPUT_ENCODERS[JSON](body), JSON
