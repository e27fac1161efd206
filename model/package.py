"""Build model/dist/model.tar.gz: MobileNet V2 weights + code/inference.py + metadata, reproducibly.

    python -m model.package                      # torchvision's IMAGENET1K_V2 download (cached in TORCH_HOME)
    python -m model.package --weights FILE.pth   # a local torchvision-format state_dict (or MODEL_WEIGHTS=FILE)

The same inputs give a byte-identical tarball (sorted entries, fixed mtimes and owner, gzip mtime 0), so its
sha256 identifies the model: the infrastructure keys the S3 object by it and a changed model rolls the endpoint.
A build whose inputs are unchanged is skipped (the fingerprint is stored beside the tarball).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import glob
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from components.bundle_dir import BundleDirError, bundle_dir_files
from components.command_line import OneLineErrorParser, encodable, path_argument

ROOT = Path(__file__).resolve().parent
CODE_DIR = ROOT / "code"
DEFAULT_OUT = ROOT / "dist" / "model.tar.gz"
CALIBRATION_DIR = ROOT.parent / "tests" / "fixtures" / "images"
WHEEL_DIR = ROOT / "dist" / "wheels"
# AWS's PyTorch inference image (2.6 CPU) runs Python 3.12 on x86_64 and ships no onnxruntime.
CONTAINER_PYTHON = "cp312"
# Where the onnxruntime wheel is unpacked in the tarball; inference.py puts code/vendor/cpXY on sys.path for its Python.
VENDOR_PREFIX = f"code/vendor/{CONTAINER_PYTHON}/"
ONNX_OPSET = 17
# Parts of the onnxruntime wheel that inference never imports (training/quantisation/transformer tools). Its LICENSE
# and ThirdPartyNotices.txt are never imported either, but stay: the MIT licence asks that its notice go with every
# copy, and the notices file carries the terms of what the extension links in (protobuf, flatbuffers, Eigen, …).
ORT_SKIP = (
    # The C API library (29 MB, 11 MB gzipped): the Python extension does not link it (readelf shows no NEEDED
    # entry) and nothing loads it, so shipping it only slows every cold start's download and unpack.
    "onnxruntime/capi/libonnxruntime.so",
    "onnxruntime/tools/",
    "onnxruntime/transformers/",
    "onnxruntime/quantization/",
    "onnxruntime/datasets/",
)
# The architecture: a torchvision ImageNet classifier (torchvision.models.get_model's name) and its weights enum,
# named as text so that an up-to-date build need not import torchvision. Every use below goes through them; see
# README "Serving another model" for what else is MobileNet V2's.
MODEL_NAME = "mobilenet_v2"
WEIGHTS_ENUM = "MobileNet_V2_Weights"  # torchvision.models.get_model_weights(MODEL_NAME).__name__
# --int8 keeps this many of MobileNet V2's first Convs float (features.0-2; see quantize_int8).
INT8_FLOAT_CONVS = 6
# --int8 calibrates on this many random crops and flips of each photo in CALIBRATION_DIR (see calibration_batches).
CALIBRATION_CROPS_PER_PHOTO = 16
BUILD_FORMAT = 3  # bump when the artifact layout changes, so old fingerprints no longer match

# Preprocessing that matches each weights recipe (torchvision's published transforms).
PRESETS = {
    "IMAGENET1K_V1": {"resize": 256, "crop": 224},
    "IMAGENET1K_V2": {"resize": 232, "crop": 224},
}
# The resamplings model/code/inference.py does (its RESAMPLING), by torchvision's InterpolationMode names.
INTERPOLATIONS = ("bilinear", "bicubic")


class BuildInputError(ValueError):
    """An input the build cannot use (the weights, the onnxruntime wheel, the calibration photos, the options); the
    message names it, and `python -m model.package` prints it as one error line."""


@dataclass(frozen=True)
class WeightsSource:
    path: Path | None  # None: torchvision's own download of the preset
    preset: str

    @property
    def weights_id(self) -> str:
        if self.path is None:
            return f"torchvision:{WEIGHTS_ENUM}.{self.preset}"
        return f"file:{utf8_name(self.path)}@sha256:{sha256_file(self.path)[:16]}"


def utf8_name(path: Path) -> str:
    """The weights file's name as metadata.json records it: its bytes read as UTF-8, as the bundles read names.
    Decoded in the locale's codeset, poids-é.pth was poids-Ã©.pth under LANG=en_US.ISO-8859-1 (Python coerces only C
    and POSIX), and lone surrogates, which no UTF-8 text holds, under C without coercion."""
    raw = os.fsencode(path.name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BuildInputError(
            f"the name of weights file {os.fsencode(path)!r} is not UTF-8, which metadata.json records it in "
            "(the weights' id every prediction names): rename it"
        ) from None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def torchvision_model():
    """MODEL_NAME, randomly initialised: the module the weights must load into."""
    import torchvision

    return torchvision.models.get_model(MODEL_NAME, weights=None)


def torchvision_weights(preset: str):
    """WEIGHTS_ENUM's member for the preset: its download, labels and published transforms."""
    import torchvision

    enum = getattr(torchvision.models, WEIGHTS_ENUM)
    if preset not in enum.__members__:
        raise BuildInputError(
            f"torchvision's {WEIGHTS_ENUM} has no preset {preset} (it has {', '.join(enum.__members__)})"
        )
    return enum[preset]


def load_state_dict(source: WeightsSource):
    """Return a float32 state_dict that loads strictly into MODEL_NAME, or raise BuildInputError."""
    import torch

    model = torchvision_model()
    if source.path is None:
        weights = torchvision_weights(source.preset)
        offline = "offline, pass a local state_dict with --weights FILE or MODEL_WEIGHTS=FILE"
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except OSError as e:  # URLError, timeouts: no traceback, say what to do instead
            raise BuildInputError(f"could not download {weights.url} ({getattr(e, 'reason', e)}); {offline}") from None
        except Exception as e:
            if isinstance(e, RuntimeError) and str(e).startswith("invalid hash value"):
                # torch.hub deletes the bad download, so the next run fetches it again.
                raise BuildInputError(f"the download of {weights.url} failed its hash check ({e}); {offline}") from None
            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlsplit(weights.url).path).name
            why = _inference_module().load_failure(e)
            if not cached.is_file():  # no copy to blame: the download failed (http.client's errors are no OSError)
                raise BuildInputError(f"could not download {weights.url} ({why}); {offline}") from None
            # A copy torch.hub cached earlier is loaded without a hash check: a cut-short or damaged one fails
            # here on every run until it is removed.
            raise BuildInputError(
                f"the cached download {cached} is not a readable state_dict ({why}): delete it to download it "
                f"again; {offline}"
            ) from None
    else:
        try:
            with warnings.catch_warnings():  # a whole pickled model warns of its pickle protocol before failing
                warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
                state = torch.load(source.path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise BuildInputError(f"weights file {source.path} does not exist") from None
        except Exception as e:
            why = _inference_module().load_failure(e)  # what model_fn says of unreadable weights, too
            raise BuildInputError(
                f"weights file {source.path} is not a torchvision state_dict ({why}); save model.state_dict() with "
                "torch.save(), not the model"
            ) from None
        if not isinstance(state, dict):
            raise BuildInputError(f"weights file {source.path} holds a {type(state).__name__}, not a state_dict")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    # A value that is no tensor (a list, a string: a dict saved by other code) failed the shape check below with an
    # AttributeError traceback.
    not_tensors = sorted(k for k in set(expected) & set(state) if not isinstance(state[k], torch.Tensor))
    mismatched = sorted(
        k for k in set(expected) & set(state) - set(not_tensors) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or not_tensors or mismatched:

        def show(keys):
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        problems = []
        if missing:
            problems.append(f"missing keys: {show(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {show(unexpected)}")
        if not_tensors:
            problems.append(f"not tensors: {show(not_tensors)}")
        if mismatched:
            problems.append(f"shape mismatch: {show(mismatched)}")
        raise BuildInputError(
            f"weights file {source.path or source.preset} does not load strictly into torchvision "
            f"{MODEL_NAME}: {'; '.join(problems)}"
        )
    model.load_state_dict(state, strict=True)
    # Re-serialise in the model's own key order, float32, contiguous: the bytes depend only on the values.
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}


def metadata(source: WeightsSource) -> dict:
    weights = torchvision_weights(source.preset)
    return {
        "model": MODEL_NAME,
        "weights": source.weights_id,
        "weights_preset": source.preset,
        "labels": list(weights.meta["categories"]),
        "input": {"dtype": "uint8", "layout": "NHWC", "channels": "RGB"},
        "preprocessing": preset_preprocessing(source.preset, weights.transforms()),
    }


def preset_preprocessing(preset: str, transforms) -> dict:
    """What metadata.json records for serving: PRESETS[preset]'s sizes, with the resampling, mean and std of the
    transforms torchvision publishes with the preset's weights, checked against them. inference.py resizes with
    Pillow's bilinear or bicubic filter (antialiased, as Pillow always is: torchvision does the same to a PIL image)
    and normalises with the recorded mean and std inside the model, so a preset that wants what serving cannot
    reproduce (another resampling, no antialiasing, sizes other than PRESETS's) is refused here rather than served
    other pixels than its weights were trained on."""
    mode = getattr(transforms, "interpolation", None)
    interpolation = getattr(mode, "value", mode)
    antialias = getattr(transforms, "antialias", None)
    mean, std = (list(getattr(transforms, key, ())) for key in ("mean", "std"))
    ours = {**PRESETS[preset], "mean": mean, "std": std, "interpolation": interpolation}
    differ = [
        f"{key} {getattr(transforms, key + '_size', None)} (this build: {ours[key]})"
        for key in ("resize", "crop")
        if getattr(transforms, key + "_size", None) != [ours[key]]  # torchvision gives the sizes as one-element lists
    ]
    if interpolation not in INTERPOLATIONS:
        differ.append(f"interpolation {interpolation} (this build: {' or '.join(INTERPOLATIONS)})")
    if antialias is not True:  # a tensor resized without it has other pixels than Pillow's, which always antialiases
        differ.append(f"antialias {antialias} (this build: True)")
    broken_channel_rule = _inference_module().broken_channel_rule
    differ += [
        f"{name} {values} (this build: {rule})"
        for name, values in (("mean", mean), ("std", std))
        if (rule := broken_channel_rule(name, values))
    ]
    if differ:
        raise BuildInputError(
            f"torchvision's {WEIGHTS_ENUM}.{preset} preprocesses otherwise than this build would serve: "
            f"{'; '.join(differ)}. PRESETS in model/package.py sets the sizes; model/code/inference.py resizes "
            f"{' or '.join(INTERPOLATIONS)}, antialiased"
        )
    return {**ours, "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def serialize_state_dict(state) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def export_onnx(state, meta: dict) -> bytes:
    """The same weights as an ONNX graph taking uint8 NHWC pixels (normalisation inside, batch axis dynamic).

    The export is deterministic. Normalising inside the graph lets ONNX Runtime do the float work with its own
    vectorised kernels; the request path only decodes and crops.
    """
    import torch

    inference = _inference_module()
    pre = inference.preprocessing_from_metadata(meta["preprocessing"])
    net = torchvision_model()
    net.load_state_dict(state, strict=True)
    model = inference.with_normalisation(net.eval(), pre)
    crop = pre.crop
    buf = io.BytesIO()
    # The TorchScript-based exporter is deprecated but needs no onnxscript and gives byte-stable output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros((1, crop, crop, 3), dtype=torch.uint8),),
            buf,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    return buf.getvalue()


def _inference_module():
    """model/code/inference.py, the serving code itself: the ONNX export wraps the net in its with_normalisation,
    calibration crops go through its decode_image and preprocess (they must see exactly what serving sees), and a
    refused --weights file is described by its load_failure, as model_fn describes one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_package_inference", CODE_DIR / "inference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def calibration_batches(meta: dict, photos: list[Path]):
    """Random crops and flips of real photos, preprocessed as input_fn does, for static int8 calibration."""
    import numpy as np
    from PIL import Image

    inference = _inference_module()
    pre = inference.preprocessing_from_metadata(meta["preprocessing"])
    rng = np.random.default_rng(0)
    for path in photos:
        img = inference.decode_image(path.read_bytes())
        width, height = img.size
        for i in range(CALIBRATION_CROPS_PER_PHOTO):
            scale = rng.uniform(0.6, 1.0)
            w, h = int(width * scale), int(height * scale)
            x, y = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
            crop = img.crop((x, y, x + w, y + h))
            yield inference.preprocess(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else crop, pre)


@contextlib.contextmanager
def disk_full_named(workdir: Path, room: int):
    """An error while `workdir` has less than `room` bytes free is the full disk's: an OSError naming the directory
    `workdir` is in. The quantiser's tools write their models there, and out of room a write error names no file
    (main() named --out, on another disk), onnx's shape inference leaves a model cut short that the next step fails
    to parse (a DecodeError traceback), or ONNX Runtime's InvalidProtobuf. Checked after the failure: the tools
    remove their own temporary files first, so a check of "no room left" would miss it."""
    try:
        yield
    except BuildInputError:  # a refusal of ours says why itself
        raise
    except Exception as e:
        # What the step's own files still hold there counts as room: `room` is what it needs from an empty workdir,
        # and with its two graphs still in it a TMPDIR with room enough read as full on any other failure.
        held = sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file())
        if shutil.disk_usage(workdir).free + held < room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(workdir.parent)) from e
        raise


def quantize_int8(onnx_model: bytes, meta: dict, photos: list[Path]) -> bytes:
    """Static int8 QDQ quantisation (per-channel weights), calibrated on real photos. Opt-in: check agreement."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not photos:
        raise BuildInputError(f"int8 calibration needs photos in {CALIBRATION_DIR}")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = calibration_batches(meta, photos)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {"input": batch}

    # MobileNet V2's calibration (a 14 MB graph) failed with 50 MB free in TMPDIR and passed with 56 MB: some four
    # graphs' worth. A failure with less than that free is the disk's.
    with tempfile.TemporaryDirectory() as tmp, disk_full_named(Path(tmp), 4 * len(onnx_model)):
        fp32, prepared, int8 = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32.write_bytes(onnx_model)
        quant_pre_process(str(fp32), str(prepared))
        # The input normalisation (Transpose, Cast, Mul, Add before the first Conv) stays float: quantising it
        # breaks ONNX Runtime's fused int8 Conv and makes the graph slower than fp32. The first INT8_FLOAT_CONVS
        # Convs (features.0-2: the stem and the first two blocks, at 112x112 and 56x56) stay float too: quantised,
        # they caused most of int8's disagreement with fp32, and float they are faster (an int8 Conv on the 3 input
        # channels is slow).
        nodes = onnx.load(str(prepared)).graph.node
        convs = [i for i, node in enumerate(nodes) if node.op_type == "Conv"]
        if len(convs) <= INT8_FLOAT_CONVS:  # a ViT has one Conv: nodes[: convs[INT8_FLOAT_CONVS]] would fail
            raise BuildInputError(
                f"--int8 keeps the first {INT8_FLOAT_CONVS} Convs float and quantises from the next one on "
                f"(INT8_FLOAT_CONVS in model/package.py, chosen for MobileNet V2), but {meta['model']}'s graph has "
                f"{len(convs)} Conv(s): set INT8_FLOAT_CONVS for this model"
            )
        # Ranges from the 99.999th percentile of |x|, not the extremes: a rare outlier in a calibration crop no
        # longer widens a whole tensor's scale. The calibrator prints its progress on stdout: not ours to show.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(prepared),
                str(int8),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                nodes_to_exclude=[node.name for node in nodes[: convs[INT8_FLOAT_CONVS]]],
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": 99.999},
            )
        return int8.read_bytes()


def check_ort_wheel_name(wheel: Path) -> Version:
    """The wheel's version, if its name says onnxruntime for the container (cpXY, manylinux x86_64)."""
    try:
        name, version, _, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as e:
        raise BuildInputError(f"{wheel.name} is not a wheel file name: {e}") from None
    fits = any(
        t.interpreter == CONTAINER_PYTHON and t.platform.startswith("manylinux") and t.platform.endswith("_x86_64")
        for t in tags
    )
    if name != "onnxruntime" or not fits:
        raise BuildInputError(
            f"{wheel.name} is not an onnxruntime wheel for the container ({CONTAINER_PYTHON}, manylinux x86_64)"
        )
    return version


def find_ort_wheel() -> Path | None:
    """The newest (by version, not by name) container onnxruntime wheel in WHEEL_DIR, if any."""
    wheels = WHEEL_DIR.glob(f"onnxruntime-*-{CONTAINER_PYTHON}-{CONTAINER_PYTHON}-manylinux*_x86_64.whl")
    return max(wheels, key=check_ort_wheel_name, default=None)


def vendored_ort_files(wheel: Path) -> dict[str, bytes]:
    """Unpack the onnxruntime wheel under code/vendor/<python tag>/: importable, nothing installed at start."""
    check_ort_wheel_name(wheel)
    files = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.endswith("/") or name.startswith(ORT_SKIP) or "__pycache__" in name:
                    continue
                files[VENDOR_PREFIX + name] = zf.read(name)
    except zipfile.BadZipFile as e:
        raise BuildInputError(f"onnxruntime wheel {wheel} is not a readable zip: {e}") from None
    # The extension module must be built for the container's Python on Linux x86_64, whatever the name says.
    abi = f"cpython-{CONTAINER_PYTHON[2:]}-x86_64-linux-gnu.so"
    if not any(name.endswith(abi) for name in files):
        raise BuildInputError(f"{wheel} holds no {abi} extension module: not a {CONTAINER_PYTHON} Linux x86_64 build")
    return files


def add_vendored(members: dict[str, bytes], vendored: Mapping[str, bytes]) -> None:
    """Put the unpacked wheel into the artifact's members; model/code may hold nothing where it goes.

    A file of model/code under code/vendor/<python tag>/ would be overwritten by the wheel's or, where the wheel has
    no such file, mixed into its onnxruntime: a half-old runtime that fails (or serves) in the container only."""
    clash = sorted(name for name in members if name.startswith(VENDOR_PREFIX))
    if clash:
        raise BuildInputError(
            f"model/{clash[0]} is under model/{VENDOR_PREFIX}, where the onnxruntime wheel is "
            f"unpacked ({len(clash)} file(s) there): remove that folder"
        )
    members.update(vendored)


def code_files() -> dict[str, bytes]:
    """Every file under model/code (no caches), keyed by its path in the tarball.

    Hidden files and folders are left out at any depth, as from the Lambda asset and the site: a .env holds secrets,
    and a .venv, .mypy_cache or .DS_Store is not the model's and changes between runs, which would change the
    artifact's sha256 (and roll the endpoint) with the model unchanged. A symlink that leaves model/code is an
    error (components/bundle_dir.py, the rule all three bundles follow)."""
    files = {
        f"code/{relative}": path.read_bytes()
        for relative, path in bundle_dir_files(
            CODE_DIR, lambda parts: "__pycache__" in parts or parts[-1].endswith(".pyc")
        ).items()
    }
    if "code/requirements.txt" in files:
        raise BundleDirError("model/code/requirements.txt must not exist: nothing is pip-installed at start")
    return files


def write_tarball(members: dict[str, bytes], out: Path) -> None:
    """Deterministic tar.gz: sorted names, mtime 0, root owner, fixed modes, gzip header without time/name."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(parent) for name in members for parent in Path(name).parents} - {"."})
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(_normalise(info))
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(members[name]), 0o644
            tar.addfile(_normalise(info), io.BytesIO(members[name]))
    out.parent.mkdir(parents=True, exist_ok=True)
    # A temp file of its own beside the target, renamed over it: a failed or interrupted build (or two at once)
    # never leaves a half-written artifact, and the temp file goes with the failure.
    # The temp file's hidden name is no name the user gave: an error that names it names the folder (a read-only
    # model/dist) or the artifact (an immutable one) instead.
    try:
        f = tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False)  # noqa: SIM115 - `with f` below
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(out.parent)) from e
    with f:
        tmp = Path(f.name)
        try:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
                gz.write(raw.getvalue())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    try:
        os.chmod(tmp, 0o644)  # NamedTemporaryFile creates 0600; the artifact is not a secret
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(out)) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def fingerprint(source: WeightsSource, onnx: bool, ort_wheel: Path | None, int8: bool = False) -> str:
    """Hash of every input of the build: weights, preset, code, builder, options, vendored wheel, libraries."""
    digest = hashlib.sha256(f"{BUILD_FORMAT}|{source.weights_id}|{source.preset}|onnx={onnx}|int8={int8}".encode())
    if int8:
        for photo in sorted(CALIBRATION_DIR.glob("*.jpg")):
            digest.update(photo.name.encode() + sha256_file(photo).encode())
    if source.path is None:  # the download is pinned by torchvision's URL/hash; the id names the preset
        digest.update(b"torchvision-download")
    if ort_wheel is not None:
        digest.update(f"|ort={ort_wheel.name}:{sha256_file(ort_wheel)}".encode())
    for name, data in sorted(code_files().items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    digest.update(Path(__file__).read_bytes())
    # The exporters are inputs too: another torch or onnx can write another graph from the same weights. Read from
    # the installed metadata: importing torch would add seconds to every up-to-date `make model`.
    dists = ("torch", "torchvision", "onnx")
    if int8:  # the quantiser, and the decoding and random crops of the calibration photos, set the int8 scales
        dists += ("onnxruntime", "pillow", "numpy")
    for dist in dists:
        digest.update(f"|{dist}={importlib.metadata.version(dist)}".encode())
    return digest.hexdigest()


def build(
    source: WeightsSource,
    out: Path = DEFAULT_OUT,
    *,
    onnx: bool = True,
    ort_wheel: Path | None = None,
    int8: bool = False,
    force: bool = False,
) -> tuple[Path, bool]:
    """Build the tarball; returns (path, built). Skips the work when the fingerprint is unchanged."""
    stamp = out.with_name(out.name + ".inputs")
    fp = fingerprint(source, onnx, ort_wheel, int8)
    inputs = (
        f"inputs: weights={source.weights_id} preset={source.preset} onnx={onnx} int8={int8} "
        f"onnxruntime={'vendored ' + ort_wheel.name if ort_wheel else 'not vendored'}"
    )
    print(encodable(inputs, sys.stdout))  # "?" for what the terminal lacks: the weights' id is UTF-8 (utf8_name)
    with one_build_at_a_time(out) as locked:
        if locked:
            remove_leftover_temp_files(out)
        # Compared as bytes: a stamp or checksum garbled on disk (not UTF-8) is stale, not a UnicodeDecodeError
        # traceback on every later build until it is deleted by hand.
        if not force and _intact(out) and stamp.exists() and stamp.read_bytes().strip() == fp.encode():
            print("up to date, not rebuilt")
            return out, False
        state = load_state_dict(source)
        meta = {**metadata(source), "precision": "int8" if int8 else "fp32"}
        members = {
            "model.pth": serialize_state_dict(state),
            "metadata.json": (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode(),
            **code_files(),
        }
        if onnx:
            members["model.onnx"] = export_onnx(state, meta)
        if int8:
            members["model.onnx"] = quantize_int8(members["model.onnx"], meta, sorted(CALIBRATION_DIR.glob("*.jpg")))
        if ort_wheel is not None:
            add_vendored(members, vendored_ort_files(ort_wheel))
        write_tarball(members, out)
        write_stamp(stamp, fp + "\n")
        write_stamp(out.with_name(out.name + ".sha256"), f"{sha256_file(out)}  {out.name}\n")
        return out, True


@contextlib.contextmanager
def one_build_at_a_time(out: Path):
    """Hold a lock on `out`'s folder: a second build (`make model` and `make model INT8=1` in two terminals) waits,
    then checks its stamp. Two at once, the artifact, its .inputs and its .sha256 could come from different builds,
    the stamp saying "up to date" for the other build's model. The folder itself is locked, so nothing is left there.
    Yields whether the lock is held.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out.parent, os.O_RDONLY)
    except PermissionError:  # a folder files may be made in but not listed (0733): built unlocked, as before
        fd = None
    if fd is None:
        yield False
        return
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another build in {out.parent} to finish ...", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock (some NFS mounts): built unlocked, as before
            locked = False
        yield locked
    finally:
        os.close(fd)


def remove_leftover_temp_files(out: Path) -> None:
    """Remove write_tarball's temp files left beside `out` by builds killed outright (kill -9, the OOM killer), which
    no handler can clean up after: each stayed in model/dist, hidden, up to the artifact's size, and every later
    build, up to date or not, left it there. Only with the folder's lock held: a live build writing one waits on it."""
    for leftover in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # not ours to fail the build over: it was to be left anyway
            leftover.unlink()


def write_stamp(path: Path, text: str) -> None:
    """A write that fails (a full disk) names no file, and main() then named --out: the artifact, written whole."""
    try:
        path.write_text(text)
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e


def _intact(out: Path) -> bool:
    """The artifact is there and still the file its .sha256 names (a truncated or edited one is rebuilt)."""
    recorded = out.with_name(out.name + ".sha256")
    if not (out.is_file() and recorded.is_file()):
        return False
    return recorded.read_bytes().split(maxsplit=1)[:1] == [sha256_file(out).encode()]


# `timeout`, a cancelled CI job or a closed terminal stop a build with SIGTERM or SIGHUP, not Ctrl-C: killed by them,
# it left write_tarball's hidden temp file (up to the artifact's size) in model/dist, and said nothing.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def stops_unwind():
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so every `finally` and cleanup runs; the handlers
    before are back afterwards (main() may run inside a longer-lived process, as in the tests)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def out_argument(value: str) -> Path:
    """--out as given: a trailing slash names a folder, which a Path drops, so `--out build/` wrote a file named
    build (and reported it as the artifact). So does a last part "." (`--out build/.` is the Path build) or ".."."""
    path = path_argument(value)
    if value.endswith("/") or value.endswith(os.sep) or os.path.basename(value) in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"{value} names a folder: name the file to write, like {path / 'model.tar.gz'}"
        )
    return path


def unwritable_out(out: Path) -> str | None:
    """Why --out cannot be written, if it cannot for its path alone; found only once built otherwise (some 20 s), in
    an OSError's words: "Is a directory" for the temp file beside a folder named as --out, "File exists" (or "Not a
    directory") for a parent path that runs through a file."""
    if out.is_dir():
        return f"--out {out} is a directory: name the file to write, like {out / 'model.tar.gz'}"
    # The nearest parent that exists must be a folder (the missing ones below it are made).
    parent = next((p for p in out.parents if p.exists() or p.is_symlink()), None)
    if parent is not None and not parent.is_dir():
        what = "a file, not" if parent.is_file() else "a broken symlink, not" if parent.is_symlink() else "not"
        return f"--out {out} cannot be written: {parent} is {what} a folder"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(
        prog="python -m model.package",
        description=f"Build model/dist/model.tar.gz: {MODEL_NAME} weights + code/inference.py + metadata, "
        "reproducibly.",
    )
    parser.add_argument(
        "--weights",
        type=path_argument,
        help=f"local torchvision-format {MODEL_NAME} state_dict (default: torchvision's download; env MODEL_WEIGHTS)",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="weights recipe, which fixes labels and preprocessing "
        "(default: IMAGENET1K_V2 for the download, IMAGENET1K_V1 (resize 256) for a local file)",
    )
    parser.add_argument(
        "--out",
        type=out_argument,
        default=DEFAULT_OUT,
        help=f"the model.tar.gz to write, with its .sha256 and .inputs beside it "
        f"(default: {os.path.relpath(DEFAULT_OUT, ROOT.parent)})",
    )
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="ship model.pth only (TorchScript)")
    parser.add_argument(
        "--onnxruntime-wheel",
        type=path_argument,
        help=f"{CONTAINER_PYTHON} manylinux x86_64 onnxruntime wheel to vendor under code/ "
        f"(default: the newest in {WHEEL_DIR.relative_to(ROOT.parent)}, if any)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="opt-in: ship a static int8 (QDQ) ONNX graph calibrated on the test photos; "
        "check its agreement with `make bench` first",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs are unchanged")
    args = parser.parse_args(argv)
    # Unless --weights is given: MODEL_WEIGHTS, which `make model` passes on (its own variable, or the shell's), and a
    # refused file names which of the two it came from. Empty or blank, it is unset.
    named_by, env_weights = "--weights", os.environ.get("MODEL_WEIGHTS", "")
    if args.weights is None and env_weights.strip():
        named_by, args.weights = "MODEL_WEIGHTS", path_argument(env_weights)
    weights = args.weights.resolve() if args.weights else None
    preset = args.preset or ("IMAGENET1K_V1" if weights else "IMAGENET1K_V2")
    try:
        # Inside the try: a misnamed file in the wheel directory is an error line, not a traceback.
        wheel = args.onnxruntime_wheel or (find_ort_wheel() if args.onnx else None)
        if weights is not None and weights.exists() and not weights.is_file():
            raise BuildInputError(f"weights file {weights} ({named_by}) is not a regular file")
        if weights is not None and not weights.is_file():
            raise BuildInputError(f"weights file {weights} ({named_by}) does not exist")
        if wheel is not None and not wheel.is_file():
            raise BuildInputError(
                f"onnxruntime wheel {wheel} {'is not a regular file' if wheel.exists() else 'does not exist'}"
            )
        if (wheel is not None or args.int8) and not args.onnx:
            raise BuildInputError("--onnxruntime-wheel and --int8 need the ONNX graph; drop --no-onnx")
        if args.onnxruntime_wheel is not None:  # not after the weights load and the export, some 10 s later
            check_ort_wheel_name(args.onnxruntime_wheel)
        if (why := unwritable_out(args.out)) is not None:
            raise BuildInputError(why)
        with stops_unwind():
            out, _ = build(
                WeightsSource(weights, preset),
                args.out.resolve(),
                onnx=args.onnx,
                ort_wheel=wheel,
                int8=args.int8,
                force=args.force,
            )
    except (BuildInputError, BundleDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable or odd --out, a full disk: say which file, no traceback
        print(f"error: {e.strerror or e}: {e.filename or args.out}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the previous artifact, if any, is untouched
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    if args.onnx and wheel is None:
        print(
            "note: no onnxruntime wheel vendored; the SageMaker container will serve TorchScript",
            file=sys.stderr,
        )
    print(f"artifact: {out}\nsize: {out.stat().st_size:,} bytes\nsha256: {sha256_file(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
