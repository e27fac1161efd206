"""model/package.py piece by piece: tarball bytes, fingerprint inputs, wheel vetting, weights errors, the CLI.

test_artifact.py checks the built model.tar.gz; these call the builder's functions on small inputs, so each
promise fails on its own and none needs an ONNX export.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import http.client
import importlib.metadata
import io
import os
import pickle
import re
import signal
import stat
import subprocess
import tarfile
import urllib.error
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision

from components.bundle_dir import BundleDirError
from model import package

WHEEL = "onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl"
LINUX_SO = "onnxruntime/capi/onnxruntime_pybind11_state.cpython-312-x86_64-linux-gnu.so"


def _wheel(path: Path, names) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, b"" if name.endswith("/") else name.encode())
    return path


def _listing(tarball: Path) -> list[tuple]:
    with tarfile.open(tarball) as tar:
        return [(m.name, m.type, m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()]


def _read(tarball: Path, name: str) -> bytes:
    with tarfile.open(tarball) as tar:
        return tar.extractfile(name).read()


# --- write_tarball: the bytes depend on the members only ------------------------------------------------------
MEMBERS = {
    "model.pth": b"weights",
    "code/inference.py": b"code",
    "code/vendor/cp312/onnxruntime/__init__.py": b"",
}


def test_tarball_bytes_do_not_depend_on_member_order_or_where_it_is_written(tmp_path):
    first, second = tmp_path / "a" / "model.tar.gz", tmp_path / "b" / "other.tar.gz"
    package.write_tarball(MEMBERS, first)
    package.write_tarball(dict(reversed(MEMBERS.items())), second)
    assert first.read_bytes() == second.read_bytes()
    # gzip header: MTIME 0 and no FNAME flag, or the build time and the temp file's name would be in the bytes
    header = first.read_bytes()[:10]
    assert header[4:8] == b"\0\0\0\0" and not header[3] & gzip.FNAME
    # XFL 2: compressed at the highest level; every cold start downloads and unpacks the artifact
    assert header[8] == 2


def test_tarball_bytes_do_not_depend_on_the_locales_codeset(tmp_path):
    """A code file named in UTF-8 (model/code/données.py) goes in as UTF-8 in any locale: PAX records the name in a
    header of its own. A GNU or ustar archive encodes it in the locale's codeset, and under an ASCII one fails."""
    from tests.conftest import run_in_an_ascii_locale

    members = {**MEMBERS, "code/données.py": b"x"}
    here, ascii_locale = tmp_path / "here.tar.gz", tmp_path / "ascii.tar.gz"
    package.write_tarball(members, here)
    script = (
        "import sys, os; from pathlib import Path; from model import package; "
        f"package.write_tarball({members!a}, Path(os.fsdecode(sys.argv[1])))"
    )
    run_in_an_ascii_locale(script, os.fsencode(ascii_locale))
    assert ascii_locale.read_bytes() == here.read_bytes()
    assert "code/données.py" in [name for name, *_ in _listing(here)]


def test_tarball_entries_are_sorted_dirs_then_files_root_owned_fixed_modes(tmp_path):
    out = tmp_path / "model.tar.gz"
    package.write_tarball(MEMBERS, out)
    d, f = tarfile.DIRTYPE, tarfile.REGTYPE
    assert _listing(out) == [
        ("code", d, 0o755, 0, 0, 0, "root", "root"),
        ("code/vendor", d, 0o755, 0, 0, 0, "root", "root"),
        ("code/vendor/cp312", d, 0o755, 0, 0, 0, "root", "root"),
        ("code/vendor/cp312/onnxruntime", d, 0o755, 0, 0, 0, "root", "root"),
        ("code/inference.py", f, 0o644, 0, 0, 0, "root", "root"),
        ("code/vendor/cp312/onnxruntime/__init__.py", f, 0o644, 0, 0, 0, "root", "root"),
        ("model.pth", f, 0o644, 0, 0, 0, "root", "root"),
    ]
    assert _read(out, "model.pth") == b"weights"
    # Readable by whoever uploads or serves it, whatever the umask (the temp file it was renamed from was 0600)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_failed_compression_leaves_no_temp_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(package, "gzip", SimpleNamespace(GzipFile=full))
    with pytest.raises(OSError, match="No space left"):
        package.write_tarball(MEMBERS, tmp_path / "model.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_the_temp_file_is_written_beside_the_artifact_not_in_tmpdir(tmp_path, monkeypatch):
    """A rename is atomic only within one file system: a temp file in TMPDIR (often a tmpfs) could not be renamed
    over an artifact on another one. Here TMPDIR is a folder that does not exist: the builder's own tempfile makes
    its temp files there unless told another folder."""
    import tempfile

    def in_tmpdir(*, dir=str(tmp_path / "elsewhere"), **kwargs):
        return tempfile.NamedTemporaryFile(dir=dir, **kwargs)

    monkeypatch.setattr(package, "tempfile", SimpleNamespace(NamedTemporaryFile=in_tmpdir))
    package.write_tarball(MEMBERS, tmp_path / "dist" / "model.tar.gz")
    assert [p.name for p in (tmp_path / "dist").iterdir()] == ["model.tar.gz"]


def test_a_failed_rename_leaves_no_temp_file(tmp_path):
    out = tmp_path / "model.tar.gz"
    out.mkdir()  # a directory where the artifact should go: the rename over it fails
    with pytest.raises(IsADirectoryError):
        package.write_tarball(MEMBERS, out)
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar.gz"]


def test_an_interrupt_while_the_artifact_is_put_in_place_leaves_no_temp_file(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, which main() turns into the same) after the tarball was written, while it was made readable
    and renamed over the artifact, left the whole hidden temp file beside it. The builder's own name for os is
    replaced."""

    def interrupted(path, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(package, "os", SimpleNamespace(chmod=interrupted))
    with pytest.raises(KeyboardInterrupt):
        package.write_tarball(MEMBERS, tmp_path / "model.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_the_temp_file_cannot_be_made_in_is_named_not_the_temp_file(tmp_path, monkeypatch):
    """A read-only model/dist said "Read-only file system: .../model/dist/.model.tar.gz.ki4ls48c.tmp": a hidden name
    the user never gave, of a file that is not there."""
    import errno

    def read_only(*, dir, prefix, suffix, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}ki4ls48c{suffix}"))

    monkeypatch.setattr(package, "tempfile", SimpleNamespace(NamedTemporaryFile=read_only))
    with pytest.raises(OSError) as failed:
        package.write_tarball(MEMBERS, tmp_path / "dist" / "model.tar.gz")
    assert (failed.value.errno, failed.value.filename) == (errno.EROFS, str(tmp_path / "dist"))


def test_an_artifact_that_cannot_be_replaced_is_named_not_the_temp_file(tmp_path, monkeypatch):
    """An immutable model.tar.gz (chattr +i) refused the rename over it, and the error named the temp file."""
    import errno

    def immutable(self, target):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(self), None, str(target))

    class ImmutableTarget(type(Path())):  # the builder's own Path (its temp file's), not Path.replace itself
        replace = immutable

    monkeypatch.setattr(package, "Path", ImmutableTarget)
    out = tmp_path / "model.tar.gz"
    with pytest.raises(OSError) as failed:
        package.write_tarball(MEMBERS, out)
    assert (failed.value.errno, failed.value.filename) == (errno.EPERM, str(out))
    assert list(tmp_path.iterdir()) == []


# --- fingerprint: every input of the build is in it ------------------------------------------------------------
@pytest.fixture
def inputs(tmp_path, monkeypatch):
    """A one-file code/, one calibration photo, a weights file and a wheel, all as small as possible."""
    code, photos = tmp_path / "code", tmp_path / "photos"
    code.mkdir()
    photos.mkdir()
    (code / "inference.py").write_text("# v1\n")
    (photos / "cat.jpg").write_bytes(b"cat v1")
    # The stand-in is only packed: the build's own checks still run the real serving code.
    serving = package._inference_module()
    monkeypatch.setattr(package, "_inference_module", lambda: serving)
    monkeypatch.setattr(package, "CODE_DIR", code)
    monkeypatch.setattr(package, "CALIBRATION_DIR", photos)
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"weights v1")
    wheel = _wheel(tmp_path / WHEEL, [LINUX_SO, "onnxruntime/__init__.py"])
    return SimpleNamespace(code=code, photos=photos, weights=weights, wheel=wheel, tmp=tmp_path)


def _fp(inputs, preset="IMAGENET1K_V1", onnx=True, wheel="default", int8=False):
    wheel = inputs.wheel if wheel == "default" else wheel
    return package.fingerprint(package.WeightsSource(inputs.weights, preset), onnx, wheel, int8)


def _change_builder(inputs, monkeypatch):
    edited = inputs.tmp / "package.py"
    edited.write_text(Path(package.__file__).read_text() + "# edited\n")
    monkeypatch.setattr(package, "__file__", str(edited))


def _another_installed(dist):
    """Another version of `dist` alone: with every library's version changed at once, dropping one of them from the
    fingerprint went unnoticed."""

    def change(inputs, monkeypatch):
        installed = importlib.metadata.version
        version = SimpleNamespace(version=lambda d: "0.0" if d == dist else installed(d))
        monkeypatch.setattr(package, "importlib", SimpleNamespace(metadata=version))

    return change


CHANGES = {
    "weights bytes, same file name": lambda i, m: i.weights.write_bytes(b"weights v2"),
    "a code file's bytes": lambda i, m: (i.code / "inference.py").write_text("# v2\n"),
    "a code file's name": lambda i, m: (i.code / "inference.py").rename(i.code / "handler.py"),
    "the wheel's bytes": lambda i, m: _wheel(i.wheel, [LINUX_SO]),
    "the builder itself": _change_builder,
    "the installed torch": _another_installed("torch"),
    "the installed torchvision": _another_installed("torchvision"),
    "the installed onnx": _another_installed("onnx"),
    # bumped when the artifact's layout changes: the same inputs then build another artifact
    "the build format": lambda i, m: m.setattr(package, "BUILD_FORMAT", package.BUILD_FORMAT + 1),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_changed_input_changes_the_fingerprint(inputs, monkeypatch, change):
    before = _fp(inputs)
    assert _fp(inputs) == before
    change(inputs, monkeypatch)
    assert _fp(inputs) != before


@pytest.mark.parametrize(
    "option", [{"preset": "IMAGENET1K_V2"}, {"onnx": False}, {"wheel": None}, {"int8": True}], ids=str
)
def test_each_build_option_changes_the_fingerprint(inputs, option):
    assert _fp(inputs, **option) != _fp(inputs)


def test_calibration_photos_are_an_input_of_int8_builds_only(inputs):
    fp32, int8 = _fp(inputs), _fp(inputs, int8=True)
    (inputs.photos / "cat.jpg").write_bytes(b"cat v2")
    assert _fp(inputs) == fp32
    assert _fp(inputs, int8=True) != int8
    # With no photos at all the int8 flag alone must still tell the two builds apart.
    (inputs.photos / "cat.jpg").unlink()
    assert _fp(inputs, int8=True) != _fp(inputs)


@pytest.mark.parametrize("dist", ["onnxruntime", "pillow", "numpy"])
def test_the_quantiser_and_calibration_libraries_are_inputs_of_int8_builds_only(inputs, monkeypatch, dist):
    fp32, int8 = _fp(inputs), _fp(inputs, int8=True)
    installed = importlib.metadata.version
    version = SimpleNamespace(version=lambda d: "0.0" if d == dist else installed(d))
    monkeypatch.setattr(package, "importlib", SimpleNamespace(metadata=version))
    assert _fp(inputs) == fp32
    assert _fp(inputs, int8=True) != int8


# --- build: what goes in, and when it is skipped ---------------------------------------------------------------
@pytest.fixture
def stub_build(inputs, monkeypatch):
    """build() with the expensive steps replaced: fake weights, a fake graph, a quantiser that marks its input."""
    seen = {}

    def quantize(graph, meta, photos):
        seen["photos"] = photos
        return b"int8 of " + graph

    monkeypatch.setattr(package, "load_state_dict", lambda source: {})
    monkeypatch.setattr(package, "export_onnx", lambda state, meta: b"fp32 graph")
    monkeypatch.setattr(package, "quantize_int8", quantize)
    inputs.seen = seen
    inputs.source = package.WeightsSource(inputs.weights, "IMAGENET1K_V1")
    inputs.out = inputs.tmp / "dist" / "model.tar.gz"
    return inputs


def test_build_ships_what_the_options_ask_for(stub_build):
    b = stub_build
    package.build(b.source, b.out, onnx=True, ort_wheel=b.wheel, int8=True)
    assert _read(b.out, "model.onnx") == b"int8 of fp32 graph"
    assert b'"precision": "int8"' in _read(b.out, "metadata.json")
    assert b.seen["photos"] == [b.photos / "cat.jpg"]
    assert _read(b.out, f"code/vendor/cp312/{LINUX_SO}") == LINUX_SO.encode()

    package.build(b.source, b.out, onnx=True)
    assert _read(b.out, "model.onnx") == b"fp32 graph"
    assert b'"precision": "fp32"' in _read(b.out, "metadata.json")
    assert not any(name.startswith("code/vendor/") for name, *_ in _listing(b.out))

    package.build(b.source, b.out, onnx=False)
    assert "model.onnx" not in {name for name, *_ in _listing(b.out)}


def test_the_quantiser_takes_the_calibration_photos_in_name_order(stub_build):
    """The fingerprint hashes the photos in name order, and which random crops a photo gets depends on the order
    they come in: in the folder's own order (ext4's hash order, another on each file system) the same inputs could
    build other int8 scales under the same fingerprint."""
    b = stub_build
    for name in ("zebra", "tabby", "robin", "hen", "dog", "ant"):  # written in reverse name order
        (b.photos / f"{name}.jpg").write_bytes(name.encode())
    package.build(b.source, b.out, onnx=True, int8=True)
    assert [p.name for p in b.seen["photos"]] == [
        "ant.jpg",
        "cat.jpg",
        "dog.jpg",
        "hen.jpg",
        "robin.jpg",
        "tabby.jpg",
        "zebra.jpg",
    ]


def test_force_rebuilds_and_an_edited_or_lost_artifact_is_rebuilt(stub_build):
    b = stub_build
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert package.build(b.source, b.out, onnx=False, force=True)[1] is True
    b.out.write_bytes(b.out.read_bytes()[:-1])  # truncated by an interrupted copy: no longer what .sha256 names
    assert package.build(b.source, b.out, onnx=False)[1] is True
    b.out.unlink()
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert package.build(b.source, b.out, onnx=False)[1] is False


def test_the_checksum_file_is_what_sha256sum_checks_and_only_its_exact_hash_counts(stub_build):
    """model.tar.gz.sha256 is sha256sum's own line, so `sha256sum -c` checks a copied artifact; a hash with anything
    stuck to it (an edit, a torn write) no longer names the artifact, which is rebuilt."""
    b = stub_build
    package.build(b.source, b.out, onnx=False)
    recorded = b.out.with_name("model.tar.gz.sha256")
    assert recorded.read_text() == f"{hashlib.sha256(b.out.read_bytes()).hexdigest()}  model.tar.gz\n"
    checked = subprocess.run(["sha256sum", "-c", recorded.name], cwd=b.out.parent, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout) == (0, "model.tar.gz: OK\n")
    digest = recorded.read_text().split()[0]
    recorded.write_text(f"{digest}0  model.tar.gz\n")
    assert package.build(b.source, b.out, onnx=False)[1] is True


@pytest.mark.parametrize("lost", ["model.tar.gz.inputs", "model.tar.gz.sha256"])
def test_a_lost_stamp_or_checksum_rebuilds(stub_build, lost):
    b = stub_build
    assert package.build(b.source, b.out, onnx=False)[1] is True
    (b.out.parent / lost).unlink()
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert package.build(b.source, b.out, onnx=False)[1] is False


@pytest.mark.parametrize("up_to_date", [False, True], ids=["rebuilt", "up to date"])
def test_the_next_build_removes_the_temp_file_of_one_killed_outright(stub_build, up_to_date):
    """kill -9 (or the OOM killer) while the tarball was written left a hidden .model.tar.gz.*.tmp in model/dist, up
    to the artifact's size, and every later build left it there, saying up to date."""
    b = stub_build
    package.build(b.source, b.out, onnx=False)
    if not up_to_date:
        (b.code / "inference.py").write_text("# v2\n")
    leftover = b.out.parent / ".model.tar.gz.k1ll3d9x.tmp"
    leftover.write_bytes(b"half a tarball")
    other = b.out.parent / ".other.tar.gz.k1ll3d9x.tmp"  # another artifact's: its own build removes it
    other.write_bytes(b"")
    assert package.build(b.source, b.out, onnx=False)[1] is not up_to_date
    assert not leftover.exists()
    assert other.exists()


def test_the_temp_file_a_build_writes_is_one_the_next_build_removes(stub_build, monkeypatch):
    """The next build finds a killed one's leftover by write_tarball's hidden temp file name: a temp file named
    otherwise (model.tar.gz.*.tmp, not hidden) stayed in model/dist for good, though a hand-made leftover went."""
    b = stub_build
    real_gzip = gzip.GzipFile
    written: list[Path] = []

    def recording(*args, fileobj, **kwargs):
        written.append(Path(fileobj.name))
        return real_gzip(*args, fileobj=fileobj, **kwargs)

    monkeypatch.setattr(package, "gzip", SimpleNamespace(GzipFile=recording))
    package.build(b.source, b.out, onnx=False)
    [temp] = written
    assert temp.parent == b.out.parent and temp.name.startswith(".")
    temp.write_bytes(b"half a tarball")  # as kill -9 while it was written leaves it
    assert package.build(b.source, b.out, onnx=False)[1] is False
    assert not temp.exists()


def test_build_says_what_it_builds_from_and_when_it_skips_the_build(stub_build, capsys):
    """`make model` shows what it packaged: the weights' id and every option, then whether it was up to date."""
    b = stub_build
    package.build(b.source, b.out, onnx=True, ort_wheel=b.wheel, int8=True)
    package.build(b.source, b.out, onnx=True, ort_wheel=b.wheel, int8=True)
    package.build(b.source, b.out, onnx=True)
    weights = f"weights={b.source.weights_id} preset=IMAGENET1K_V1"
    assert capsys.readouterr().out.splitlines() == [
        f"inputs: {weights} onnx=True int8=True onnxruntime=vendored {WHEEL}",
        f"inputs: {weights} onnx=True int8=True onnxruntime=vendored {WHEEL}",
        "up to date, not rebuilt",
        f"inputs: {weights} onnx=True int8=False onnxruntime=not vendored",
    ]


def test_a_build_into_folders_that_do_not_exist_yet_makes_them(stub_build):
    b = stub_build
    out = b.tmp / "build" / "models" / "v2" / "model.tar.gz"
    assert package.build(b.source, out, onnx=False)[1] is True
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "model.tar.gz",
        "model.tar.gz.inputs",
        "model.tar.gz.sha256",
    ]


def test_the_leftover_temp_files_of_an_artifact_whose_name_holds_glob_characters_are_its_own(stub_build):
    """The leftovers are found by a pattern made of the artifact's name: "model[v2].tar.gz" as a pattern matches
    "modelv.tar.gz" (another artifact's temp file, removed), and not its own leftovers."""
    b = stub_build
    out = b.out.with_name("model[v2].tar.gz")
    out.parent.mkdir()
    own, other = out.parent / ".model[v2].tar.gz.k1ll3d9x.tmp", out.parent / ".modelv.tar.gz.l1v3b1ld.tmp"
    own.write_bytes(b"half a tarball")
    other.write_bytes(b"another build's")
    assert package.build(b.source, out, onnx=False)[1] is True
    assert not own.exists() and other.exists()


def test_a_leftover_the_next_build_cannot_remove_does_not_stop_it(stub_build):
    """A leftover's name on something unlink() refuses (here a folder) is not the build's to fail over."""
    b = stub_build
    stuck = b.out.parent / ".model.tar.gz.f0ld3r00.tmp"
    (stuck / "inside").mkdir(parents=True)
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert stuck.is_dir()


def test_a_build_without_the_folders_lock_leaves_temp_files_be(stub_build, monkeypatch):
    """Unlocked (a file system without flock), the temp file may be a live build's, which its rename would miss."""
    b = stub_build
    b.out.parent.mkdir()
    live = b.out.parent / ".model.tar.gz.l1v3b1ld.tmp"
    live.write_bytes(b"being written")

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(package, "fcntl", SimpleNamespace(flock=no_flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB))
    package.build(b.source, b.out, onnx=False)
    assert live.exists()


@pytest.mark.parametrize("garbled", ["model.tar.gz.inputs", "model.tar.gz.sha256"])
def test_a_garbled_stamp_or_checksum_rebuilds(stub_build, garbled):
    """Bytes that are no UTF-8 (a disk error, a crash mid-write) stopped every later build with a UnicodeDecodeError
    traceback until the file was deleted by hand."""
    b = stub_build
    assert package.build(b.source, b.out, onnx=False)[1] is True
    (b.out.parent / garbled).write_bytes(b"\xff\xfe\x00garbled")
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert package.build(b.source, b.out, onnx=False)[1] is False


def test_a_stamp_with_anything_stuck_to_the_fingerprint_rebuilds(stub_build):
    """As the .sha256: the stamp is the fingerprint and nothing else (whitespace aside), or the build is stale."""
    b = stub_build
    package.build(b.source, b.out, onnx=False)
    stamp = b.out.with_name("model.tar.gz.inputs")
    fp = stamp.read_text().strip()
    stamp.write_text(f"{fp}0\n")
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert stamp.read_text() == f"{fp}\n"
    stamp.write_text(f"  {fp}  \n\n")
    assert package.build(b.source, b.out, onnx=False)[1] is False


def test_a_failed_build_does_not_make_the_next_one_skip(stub_build, monkeypatch):
    b = stub_build
    package.build(b.source, b.out, onnx=False)
    (b.code / "inference.py").write_text("# v2\n")
    with monkeypatch.context() as m:
        m.setattr(package, "write_tarball", lambda members, out: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError, match="disk full"):
            package.build(b.source, b.out, onnx=False)
    assert package.build(b.source, b.out, onnx=False)[1] is True
    assert _read(b.out, "code/inference.py") == b"# v2\n"


def test_a_folder_that_takes_files_but_cannot_be_listed_still_builds(stub_build, monkeypatch):
    """A drop folder (mode 0733: files may be made there, not listed) took the artifact until the build locked the
    folder, whose opening for the lock needs it readable: the build then stopped at "Permission denied" of a folder
    it can write. Unlocked there, as on a file system without flock."""
    import errno

    b = stub_build
    real_open = os.open

    def unreadable(path, flags, *args, **kwargs):
        if Path(path) == b.out.parent and not flags & (os.O_WRONLY | os.O_RDWR):  # as a non-root user meets it
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    b.out.parent.mkdir(parents=True)
    monkeypatch.setattr(package, "os", SimpleNamespace(**{**vars(os), "open": unreadable}))  # the builder's own os
    assert package.build(b.source, b.out, onnx=False)[1]
    assert _read(b.out, "model.pth")


@pytest.mark.parametrize("stamp", ["model.tar.gz.inputs", "model.tar.gz.sha256"])
def test_a_stamp_the_disk_cannot_hold_is_the_file_named(stub_build, stamp):
    """A write that fails names no file: with model.tar.gz written whole and no room left for its .inputs (a 20 MB
    tmpfs), the build said "No space left on device: .../model.tar.gz", the one file that had been written."""
    import errno

    b = stub_build

    class Full(type(Path())):  # --out's path, whose stamps are its siblings: not Path.write_text itself
        def write_text(self, *args, **kwargs):
            if self.name == stamp:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write() that fails: no file name
            return super().write_text(*args, **kwargs)

    with pytest.raises(OSError) as failed:
        package.build(b.source, Full(b.out), onnx=False)
    assert (failed.value.errno, failed.value.filename) == (errno.ENOSPC, str(b.out.parent / stamp))


def test_a_stamp_write_error_without_an_errno_keeps_its_own_words(stub_build):
    """Only a write error with an errno and no file name is named after the stamp: one in words alone, rebuilt as
    OSError(None, None, stamp), said "[Errno None] None: .../model.tar.gz.inputs" instead of its words."""
    b = stub_build

    class Refused(type(Path())):  # --out's path, whose stamps are its siblings: not Path.write_text itself
        def write_text(self, *args, **kwargs):
            if self.name == "model.tar.gz.inputs":
                raise OSError("quota exceeded")
            return super().write_text(*args, **kwargs)

    with pytest.raises(OSError) as failed:
        package.build(b.source, Refused(b.out), onnx=False)
    assert str(failed.value) == "quota exceeded"


# --- weights ---------------------------------------------------------------------------------------------------
def test_weights_id_names_the_file_and_its_contents(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"one")
    first = package.WeightsSource(path, "IMAGENET1K_V1").weights_id
    path.write_bytes(b"two")
    second = package.WeightsSource(path, "IMAGENET1K_V1").weights_id
    assert first.startswith("file:w.pth@sha256:") and second.startswith("file:w.pth@sha256:") and first != second
    # The contents are named by the first 16 hex digits of their sha256, no fewer.
    assert second == f"file:w.pth@sha256:{hashlib.sha256(b'two').hexdigest()[:16]}"


def test_the_weights_id_reads_the_files_name_as_utf8_whatever_the_locales_codeset(tmp_path):
    """metadata.json records the weights' id, which every prediction names: under LANG=en_US.ISO-8859-1 (Python
    coerces only C and POSIX) a --weights poids-é.pth was recorded as poids-Ã©.pth, and under the C locale without
    coercion (standing in here for any codeset that is not UTF-8) its lone surrogates stopped the build's
    fingerprint with a UnicodeEncodeError. Its bytes read as UTF-8, as the bundles read names."""
    from tests.conftest import run_in_an_ascii_locale

    raw = os.path.join(os.fsencode(tmp_path), "poids-é.pth".encode())  # the bytes on disk, in any locale
    with open(raw, "wb") as f:
        f.write(b"one")
    script = (
        "import sys; from pathlib import Path; from model.package import WeightsSource; "
        "print(ascii(WeightsSource(Path(sys.argv[1]), 'IMAGENET1K_V1').weights_id))"
    )
    expected = f"file:poids-é.pth@sha256:{hashlib.sha256(b'one').hexdigest()[:16]}"
    assert run_in_an_ascii_locale(script, raw) == ascii(expected) + "\n"


def _first_line_on(tmp_path, monkeypatch, stdout: str) -> tuple[int, str, str]:
    """package.main's exit code, what it wrote to `stdout` (the source of a sys.stdout a caller gives it, run with
    io in scope) as ascii(), and its stderr, for poids-δ.pth (not a state_dict). In a Python of its own: sys.stdout
    is the process's, and replaced here it would be every other thread's too."""
    import sys

    monkeypatch.delenv("MODEL_WEIGHTS", raising=False)
    weights = tmp_path / "poids-δ.pth"
    weights.write_bytes(b"not a state_dict")
    script = (
        "import io, sys; from model import package; package.find_ort_wheel = lambda: None; "
        f"output = {stdout}; real, sys.stdout = sys.stdout, output; "
        "code = package.main(sys.argv[1:]); sys.stdout = real; "
        "print(code); print(ascii(output.buffer.getvalue() if hasattr(output, 'buffer') else "
        "output.getvalue() if hasattr(output, 'getvalue') else output.text))"
    )
    argv = ["--weights", str(weights), "--no-onnx", "--out", str(tmp_path / "m.tar.gz")]
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=package.ROOT.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr  # main() returned, whatever its code: it raised nothing
    code, written = done.stdout.splitlines()
    return int(code), written, done.stderr


def test_the_build_names_its_weights_in_what_the_terminals_codeset_can_write(tmp_path, monkeypatch):
    """poids-δ.pth's id, now its UTF-8 name, under LANG=en_US.ISO-8859-1 (no δ in Latin-1): the build's first line
    must not stop it with a UnicodeEncodeError; the terminal gets "?" for what it cannot show."""
    terminal = "io.TextIOWrapper(io.BytesIO(), encoding='iso-8859-1', write_through=True)"
    code, written, err = _first_line_on(tmp_path, monkeypatch, terminal)
    assert code == 2, err
    assert written.startswith(ascii(b"inputs: weights=file:poids-?.pth@sha256:")[:-1]), written
    assert "is not a torchvision state_dict" in err  # the build went on to read the file


def test_the_build_names_its_weights_whole_on_an_output_that_names_no_codeset(tmp_path, monkeypatch):
    """An output that names no encoding (a StringIO a caller reads the build's lines from) takes any text: read as
    ASCII, poids-δ.pth's id came out as poids-?.pth, another id than the one metadata.json records."""
    assert io.StringIO().encoding is None
    code, written, err = _first_line_on(tmp_path, monkeypatch, "io.StringIO()")
    assert code == 2, err
    assert written.startswith(ascii("inputs: weights=file:poids-δ.pth@sha256:")[:-1]), written
    assert "is not a torchvision state_dict" in err


def test_the_build_names_its_weights_on_an_output_with_no_encoding_attribute(tmp_path, monkeypatch):
    """print() takes any object with a write() for sys.stdout (a caller's own writer, as redirect_stdout allows); one
    with no `encoding` attribute at all names no codeset either, and takes the id whole, not an AttributeError."""
    writer = "type('Writer', (), {'text': '', 'write': lambda self, t: setattr(self, 'text', self.text + t)})()"
    code, written, err = _first_line_on(tmp_path, monkeypatch, writer)
    assert code == 2, err
    assert written.startswith(ascii("inputs: weights=file:poids-δ.pth@sha256:")[:-1]), written
    assert "is not a torchvision state_dict" in err


def test_a_weights_file_whose_name_is_not_utf8_is_an_error_naming_it(tmp_path, monkeypatch, capsys):
    """Its name cannot be recorded as UTF-8 text: the build stopped with a UnicodeEncodeError traceback naming no
    file (a UTF-8 locale), or recorded it in whatever the locale's codeset made of it."""
    monkeypatch.setattr(package, "find_ort_wheel", lambda: None)
    monkeypatch.delenv("MODEL_WEIGHTS", raising=False)
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.pth")
    with open(raw, "wb") as f:
        f.write(b"one")
    out = tmp_path / "m.tar.gz"
    assert package.main(["--weights", os.fsdecode(raw), "--no-onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the name of weights file {raw!r} is not UTF-8") and "Traceback" not in err, err
    assert not out.exists()


def test_state_dict_bytes_depend_only_on_the_values(tmp_path):
    """A float64 file with its keys in another order packages to the same model.pth as the float32 original."""
    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v2().state_dict()
    plain, shuffled = tmp_path / "plain.pth", tmp_path / "shuffled.pth"
    torch.save(state, plain)
    torch.save({k: v.double() if v.is_floating_point() else v for k, v in reversed(state.items())}, shuffled)
    loaded = [package.load_state_dict(package.WeightsSource(p, "IMAGENET1K_V1")) for p in (plain, shuffled)]
    assert list(loaded[1]) == list(state)
    # Every value, the BatchNorms' int64 num_batches_tracked too: model.pth's bytes (and the artifact's sha256, which
    # rolls the endpoint) are those of a float32 state_dict.
    assert {v.dtype for v in loaded[1].values()} == {torch.float32}
    assert package.serialize_state_dict(loaded[0]) == package.serialize_state_dict(loaded[1])


def _load(path: Path):
    return package.load_state_dict(package.WeightsSource(path, "IMAGENET1K_V1"))


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(package.BuildInputError, match=r"weights file .*nope\.pth does not exist$"):
        _load(tmp_path / "nope.pth")


def test_a_saved_model_instead_of_its_state_dict_is_one_line_naming_the_mistake(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(torchvision.models.mobilenet_v2(), path)  # the usual mistake: the model, not .state_dict()
    with pytest.raises(package.BuildInputError) as err:
        _load(path)
    message = str(err.value)
    assert str(path) in message and "not the model" in message and "\n" not in message
    # torch's explanation runs to many lines and says how to load it anyway; what is kept names what it holds
    assert "not a torchvision state_dict (it pickles a torchvision.models.mobilenetv2.MobileNetV2" in message
    assert "weights_only" not in message and "safe_globals" not in message


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 4,  # no pickle: torch's refusal says to retry with weights_only=False
        pickle.dumps(os.system),  # a pickle that would run code: the same advice, unsafe here above all
        b"hello\n",
        b"",
    ],
    ids=["bytes", "pickled-code", "text", "empty"],
)
def test_a_file_that_is_no_torch_save_is_named_without_torchs_advice_to_load_it_unsafely(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(package.BuildInputError) as err:
        _load(path)
    assert str(err.value) == (
        f"weights file {path} is not a torchvision state_dict (it is not a torch.save() file); "
        "save model.state_dict() with torch.save(), not the model"
    )


def test_a_torn_weights_file_says_what_failed_in_one_sentence(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), whole)
    path = tmp_path / "torn.pth"
    path.write_bytes(whole.read_bytes()[:100_000])
    with pytest.raises(package.BuildInputError) as err:
        _load(path)
    message = str(err.value)
    assert message.startswith(f"weights file {path} is not a torchvision state_dict (RuntimeError: PytorchStreamReader")
    assert "failed finding central directory);" in message  # and not torch's guesses that follow it
    assert message.endswith("); save model.state_dict() with torch.save(), not the model")


@pytest.mark.parametrize(
    ("saved", "kind"), [([torch.zeros(1)], "list"), ((torch.zeros(1),), "tuple"), (torch.zeros(1), "Tensor")]
)
def test_a_saved_list_tuple_or_tensor_is_not_a_state_dict(tmp_path, saved, kind):
    path = tmp_path / "saved.pth"
    torch.save(saved, path)
    with pytest.raises(package.BuildInputError, match=rf"saved\.pth holds a {kind}, not a state_dict$"):
        _load(path)


@pytest.mark.parametrize(("gone_count", "more"), [(6, " (+1 more)"), (5, "")])
def test_key_problems_are_labelled_and_long_lists_cut_short(tmp_path, gone_count, more):
    state = torchvision.models.mobilenet_v2().state_dict()
    gone = sorted(state)[:gone_count]
    for key in gone:
        del state[key]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(package.BuildInputError) as err:
        _load(path)
    message = str(err.value)
    assert f"missing keys: {', '.join(gone[:5])}{more}; unexpected keys: extra.weight" in message
    assert all(key not in message for key in gone[5:])


def test_values_that_are_no_tensors_are_named_beside_a_shape_mismatch(tmp_path):
    # A dict saved by other code (a list or a string where a tensor goes) failed the shape check with an
    # AttributeError traceback rather than the build's one-line error.
    state = torchvision.models.mobilenet_v2().state_dict()
    state["features.0.0.weight"] = [1.0, 2.0]
    state["features.0.1.bias"] = "zeros"
    state["classifier.1.bias"] = torch.zeros(3)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(package.BuildInputError) as err:
        _load(path)
    assert str(err.value) == (
        f"weights file {path} does not load strictly into torchvision mobilenet_v2: not tensors: "
        "features.0.0.weight, features.0.1.bias; shape mismatch: classifier.1.bias"
    )


V2_URL = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2.url
OFFLINE_HINT = "offline, pass a local state_dict with --weights FILE or MODEL_WEIGHTS=FILE"


def test_a_state_dict_saved_on_a_gpu_loads_on_a_build_machine_without_one(tmp_path):
    """model.state_dict() of a net trained on a GPU is saved with every tensor tagged cuda:0, and torch.load puts it
    back there: on a machine without CUDA that is a RuntimeError, and the file was refused as no state_dict. The
    tags rewritten here into a CPU save, as torch.save on a GPU machine writes them."""
    state = torchvision.models.mobilenet_v2().state_dict()
    saved = io.BytesIO()
    torch.save(state, saved)
    from tests.conftest import as_saved_on_a_gpu

    loaded = _load(as_saved_on_a_gpu(saved, tmp_path / "trained_on_gpu.pth"))
    assert {v.device.type for v in loaded.values()} == {"cpu"}
    assert all(torch.equal(loaded[k], v.to(torch.float32)) for k, v in state.items())


def with_download(monkeypatch, get_state_dict) -> None:
    """The builder's own torchvision_weights answers the preset's weights as torchvision's does, with
    `get_state_dict` for their download: the enum's get_state_dict itself would be every thread's."""
    real = package.torchvision_weights

    def weights(preset):
        found = real(preset)
        return SimpleNamespace(url=found.url, get_state_dict=get_state_dict)

    monkeypatch.setattr(package, "torchvision_weights", weights)


def download_failure(monkeypatch, error: Exception) -> str:
    """The build's message when torchvision's download of the V2 weights raises `error`."""

    def fail(**kwargs):
        raise error

    with_download(monkeypatch, fail)
    with pytest.raises(package.BuildInputError) as err:
        package.load_state_dict(package.WeightsSource(None, "IMAGENET1K_V2"))
    return str(err.value)


def test_a_failed_download_says_how_to_build_offline(monkeypatch):
    message = download_failure(monkeypatch, urllib.error.URLError("no network"))
    assert f"could not download {V2_URL} (no network)" in message and "--weights FILE" in message


def test_a_download_that_fails_its_hash_check_is_one_error_not_a_traceback(monkeypatch):
    # What torch.hub raises, after deleting the download.
    tampered = RuntimeError('invalid hash value (expected "7ebf99e0", got "deadbeef")')
    assert download_failure(monkeypatch, tampered) == (
        f'the download of {V2_URL} failed its hash check (invalid hash value (expected "7ebf99e0", got "deadbeef")); '
        f"{OFFLINE_HINT}"
    )


def test_a_download_cut_off_mid_transfer_is_not_blamed_on_a_cached_copy(tmp_path, monkeypatch):
    # http.client's IncompleteRead (a chunked response cut short) is no OSError; nothing is cached, as torch.hub writes
    # a temporary file and deletes it on failure: the message must not tell the user to delete a file that is not there.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert download_failure(monkeypatch, http.client.IncompleteRead(b"x" * 10, 90)) == (
        f"could not download {V2_URL} (IncompleteRead: IncompleteRead(10 bytes read, 90 more expected)); {OFFLINE_HINT}"
    )


def test_a_download_that_does_not_load_strictly_names_the_preset(monkeypatch):
    # No file to name: torchvision's weights for the preset are another model's (WEIGHTS_ENUM set for another one).
    with_download(monkeypatch, lambda **kw: {"head.weight": torch.zeros(1)})
    with pytest.raises(package.BuildInputError) as err:
        package.load_state_dict(package.WeightsSource(None, "IMAGENET1K_V2"))
    assert str(err.value).startswith(
        "weights file IMAGENET1K_V2 does not load strictly into torchvision mobilenet_v2: missing keys: "
    )
    assert str(err.value).endswith("; unexpected keys: head.weight")


def test_the_download_is_checked_against_its_hash_and_draws_no_progress_bar(monkeypatch):
    """torch.hub checks a download against the hash in its file name only when asked: unasked, one a proxy or a torn
    transfer changed was packaged as the model. Its progress bar is torch's, drawn among the build's own lines."""
    asked = []
    state = torchvision.models.mobilenet_v2().state_dict()

    class Weights:  # the preset's weights enum member, as the builder's own torchvision_weights returns it
        url = V2_URL

        def get_state_dict(self, **kwargs):
            asked.append(kwargs)
            return state

    monkeypatch.setattr(package, "torchvision_weights", lambda preset: Weights())
    loaded = package.load_state_dict(package.WeightsSource(None, "IMAGENET1K_V2"))
    assert asked == [{"progress": False, "check_hash": True}]
    assert list(loaded) == list(state)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 cut short"])
def test_a_damaged_cached_download_is_named_with_what_to_do(tmp_path, monkeypatch, content):
    # torch.hub loads a cached copy without checking its hash, so a damaged one failed every build with torch's
    # traceback; no network is used here, as the cached file exists.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / V2_URL.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    with pytest.raises(package.BuildInputError) as err:
        package.load_state_dict(package.WeightsSource(None, "IMAGENET1K_V2"))
    message = str(err.value)
    assert message.startswith(f"the cached download {cached} is not a readable state_dict (")
    assert message.endswith(f"): delete it to download it again; {OFFLINE_HINT}")
    assert "\n" not in message and "weights_only" not in message


@pytest.mark.parametrize(("preset", "resize"), [("IMAGENET1K_V2", 232), ("IMAGENET1K_V1", 256)])
def test_metadata_follows_the_preset(preset, resize):
    meta = package.metadata(package.WeightsSource(None, preset))
    assert meta["weights"] == f"torchvision:MobileNet_V2_Weights.{preset}"
    assert meta["weights_preset"] == preset
    assert meta["labels"] == torchvision.models.MobileNet_V2_Weights[preset].meta["categories"]
    assert meta["input"] == {"dtype": "uint8", "layout": "NHWC", "channels": "RGB"}
    assert meta["preprocessing"] == {
        "resize": resize,
        "crop": 224,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear",
    }


def test_the_mean_and_std_are_recorded_as_floats_whatever_numbers_the_transforms_hold():
    """metadata.json gives the normalisation as floats, as torchvision's presets give theirs: a preset of whole
    numbers (mean 0, std 1, for a net that normalises its input itself) is recorded as 0.0 and 1.0, not 0 and 1."""
    from torchvision.transforms._presets import ImageClassification

    transforms = ImageClassification(crop_size=224, resize_size=256, mean=(0, 0, 0), std=(1, 1, 1))
    recorded = package.preset_preprocessing("IMAGENET1K_V1", transforms)
    assert (recorded["mean"], recorded["std"]) == ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert {type(v) for v in recorded["mean"] + recorded["std"]} == {float}


def test_int8_calibration_crops_are_the_same_on_every_build():
    """The int8 scales come from these crops: random ones of a fresh seed would give every `make model INT8=1` another
    graph, another sha256 and a rolled endpoint from unchanged inputs."""
    import numpy as np

    meta = package.metadata(package.WeightsSource(None, "IMAGENET1K_V1"))
    photos = sorted(package.CALIBRATION_DIR.glob("*.jpg"))[:1]
    first, second = (list(package.calibration_batches(meta, photos)) for _ in range(2))
    assert len(first) == package.CALIBRATION_CROPS_PER_PHOTO
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], first[1])  # crops of the photo, not one view repeated


def test_half_the_int8_calibration_crops_are_mirrored(tmp_path):
    """Served photos face either way: the calibration sees each photo's crops both ways round, half of them mirrored
    left to right. A photo black on its left half and white on its right: every crop (at least 0.6 of its width)
    holds both halves, black on the left unless mirrored."""
    from PIL import Image

    photo = tmp_path / "halves.png"
    halves = Image.new("RGB", (200, 200), (255, 255, 255))
    halves.paste((0, 0, 0), (0, 0, 100, 200))
    halves.save(photo)
    meta = package.metadata(package.WeightsSource(None, "IMAGENET1K_V1"))
    batches = list(package.calibration_batches(meta, [photo]))
    assert len(batches) == package.CALIBRATION_CROPS_PER_PHOTO
    left, right = [[int(batch[0, :, column].mean()) for batch in batches] for column in (0, -1)]
    mirrored = [(lo, hi) == (255, 0) for lo, hi in zip(left, right, strict=True)]
    assert all((lo, hi) in ((0, 255), (255, 0)) for lo, hi in zip(left, right, strict=True)), (left, right)
    assert mirrored.count(True) == mirrored.count(False), mirrored


def quantized_with_shape_inference(tmp_path, step: str, usage: str, meta: dict | None = None) -> dict:
    """What package.quantize_int8 of a 1000-byte graph raised (its type's name and its errno, strerror, filename,
    message), run in a Python of its own where onnx's shape inference step (quant_pre_process) is `step`, the source
    of a function of (source, target) that may use workdir and photo; the builder's own TMPDIR is workdir
    (tmp_path/tmp), and its own shutil.disk_usage is `usage`, the source of a function of the path. quantize_int8
    imports quant_pre_process inside it, with no name of the builder's to replace, and onnxruntime's own replaced
    here would be every thread's."""
    import json
    import subprocess
    import sys
    import textwrap

    workdir, photo = tmp_path / "tmp", tmp_path / "photo.jpg"
    workdir.mkdir(exist_ok=True)
    script = f"""
import errno, json, tempfile
from pathlib import Path
from types import SimpleNamespace
from onnxruntime.quantization import shape_inference
from model import package
workdir, photo = Path({str(workdir)!r}), Path({str(photo)!r})
{textwrap.dedent(step)}
{textwrap.dedent(usage)}
shape_inference.quant_pre_process = step
package.tempfile = SimpleNamespace(TemporaryDirectory=lambda: tempfile.TemporaryDirectory(dir=workdir))
package.shutil = SimpleNamespace(disk_usage=usage)
try:
    package.quantize_int8(b"x" * 1000, {meta or {}!r}, [photo])
    print("null")
except Exception as e:
    fields = {{name: getattr(e, name, None) for name in ("errno", "strerror", "filename")}}
    print(json.dumps({{"type": type(e).__name__, "message": str(e), **fields}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=package.ROOT.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("free", [0, 4 * 1000])
def test_int8_calibration_failing_in_a_full_tmpdir_names_it(tmp_path, free):
    """With TMPDIR too full for the quantiser's models, `make model INT8=1` ended in a protobuf DecodeError traceback
    (onnx's shape inference had left a model cut short there), or said "No space left on device: <--out>", a path
    on another disk with room. Simulated: the step fails as it did, and the disk has less than four graphs' worth
    free; with that much free, the failure is not the disk's and passes on as it is."""
    cut_short = """
        def step(_source, _target, *_args, **_kwargs):
            from google.protobuf.message import DecodeError

            raise DecodeError("Error parsing message with type 'onnx.ModelProto'")
    """
    raised = quantized_with_shape_inference(
        tmp_path, cut_short, f"def usage(_path): return SimpleNamespace(free={free})"
    )
    if free:
        assert raised["type"] == "DecodeError"
        return
    assert (raised["errno"], raised["strerror"], raised["filename"]) == (
        28,
        "No space left on device",
        str(tmp_path / "tmp"),
    )
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize(("free", "full"), [(2999, True), (3000, False)], ids=["a byte short", "room to the byte"])
def test_int8_calibration_asks_for_four_graphs_worth_of_room_counting_its_own_files(tmp_path, monkeypatch, free, full):
    """Four graphs' worth (4000 bytes for a 1000-byte one), the step's own files still in TMPDIR counting as room: a
    step that fails with its fp32.onnx (1000 bytes) written there and 2999 bytes free was short of room; with 3000
    free it had room to the byte, and its own error passes on. Not a graph at all, these bytes fail the step.
    TMPDIR and the disk's free space are the builder's own names for them, replaced."""
    import tempfile

    workdir = tmp_path / "tmp"
    workdir.mkdir()
    monkeypatch.setattr(
        package, "tempfile", SimpleNamespace(TemporaryDirectory=lambda: tempfile.TemporaryDirectory(dir=workdir))
    )
    monkeypatch.setattr(package, "shutil", SimpleNamespace(disk_usage=lambda _path: SimpleNamespace(free=free)))
    with pytest.raises(Exception) as failed:
        package.quantize_int8(b"x" * 1000, {}, [tmp_path / "photo.jpg"])
    disk_full = isinstance(failed.value, OSError) and failed.value.errno == errno.ENOSPC
    assert disk_full == full, repr(failed.value)
    if full:
        assert failed.value.filename == str(workdir)
    assert list(workdir.iterdir()) == []


def test_int8_refusing_a_graph_in_a_full_tmpdir_says_why_not_that_the_disk_is_full(tmp_path):
    """A refusal of the build's own (a graph with too few Convs to keep the first ones float) says why itself however
    little TMPDIR holds: called a full disk, it sent the user to free room, and the next build said the same."""
    prepared = """
        def step(_source, target, *_args, **_kwargs):
            import onnx

            one_conv = onnx.ModelProto(graph=onnx.GraphProto(node=[onnx.NodeProto(op_type="Conv", name="conv")]))
            Path(target).write_bytes(one_conv.SerializeToString())
    """
    raised = quantized_with_shape_inference(
        tmp_path, prepared, "def usage(_path): return SimpleNamespace(free=0)", {"model": "vit_b_16"}
    )
    assert raised["type"] == "BuildInputError"
    assert re.search(r"but vit_b_16's graph has 1 Conv\(s\)", raised["message"]), raised


def test_int8_calibration_failing_for_another_reason_with_room_is_not_called_a_full_disk(tmp_path):
    """Free space is read after the failure, with the step's own graphs (fp32.onnx, pre.onnx) still in TMPDIR: a
    TMPDIR with room for the whole calibration, failing on an unreadable calibration photo, said "No space left on
    device: <TMPDIR>" and named no photo. Simulated: the disk has room for four graphs before the build, and the
    failure comes once two are written."""
    written_then_refused = """
        def step(source, target, *_args, **_kwargs):
            Path(target).write_bytes(Path(source).read_bytes())
            raise PermissionError(errno.EACCES, "Permission denied", str(photo))
    """
    usage = """
        def usage(_path):  # the room there was before the build, less what the build holds there now
            held = sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file())
            return SimpleNamespace(free=4 * 1000 - held)
    """
    raised = quantized_with_shape_inference(tmp_path, written_then_refused, usage)
    assert (raised["type"], raised["filename"]) == ("PermissionError", str(tmp_path / "photo.jpg"))


def test_int8_without_calibration_photos_is_refused():
    with pytest.raises(package.BuildInputError, match=f"int8 calibration needs photos in {package.CALIBRATION_DIR}"):
        package.quantize_int8(b"", {}, [])


# --- the onnxruntime wheel -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "onnxruntime-1.31.1-cp312-cp312-musllinux_1_2_x86_64.whl",  # Alpine's libc, not the container's glibc
        "onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_aarch64.whl",  # Graviton
        "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",  # another Python
        "onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl",  # another distribution
    ],
)
def test_a_wheel_name_for_another_platform_is_refused_by_name(tmp_path, name):
    with pytest.raises(package.BuildInputError, match=f"^{name} is not an onnxruntime wheel for the container"):
        package.check_ort_wheel_name(tmp_path / name)


def test_the_wheel_version_comes_from_its_name(tmp_path):
    assert str(package.check_ort_wheel_name(tmp_path / WHEEL)) == "1.31.1"
    # One fitting tag is enough (a wheel's compressed tag set may list other Pythons too)
    multi = "onnxruntime-1.31.1-cp311.cp312-cp311.cp312-manylinux_2_28_x86_64.whl"
    assert str(package.check_ort_wheel_name(tmp_path / multi)) == "1.31.1"


def test_find_ort_wheel_picks_the_newest_by_version_not_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(package, "WHEEL_DIR", tmp_path)
    for version in ("1.9.0", "1.31.1", "1.22.0"):
        (tmp_path / f"onnxruntime-{version}-cp312-cp312-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert package.find_ort_wheel() == tmp_path / WHEEL


def test_find_ort_wheel_ignores_other_pythons_and_finds_none_in_an_empty_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(package, "WHEEL_DIR", tmp_path)
    assert package.find_ort_wheel() is None
    (tmp_path / "onnxruntime-1.40.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    (tmp_path / WHEEL).write_bytes(b"")
    assert package.find_ort_wheel() == tmp_path / WHEEL


def test_find_ort_wheel_leaves_wheels_for_other_platforms_and_distributions_be(tmp_path, monkeypatch):
    """model/dist/wheels may hold what pip download fetched for other machines beside the container's wheel: they are
    not the container's, and not misnamed either (those are refused by name)."""
    monkeypatch.setattr(package, "WHEEL_DIR", tmp_path)
    for other in (
        "onnxruntime-1.40.0-cp312-cp312-manylinux_2_28_aarch64.whl",
        "onnxruntime-1.40.0-cp312-cp312-musllinux_1_2_x86_64.whl",
        "onnxruntime-1.40.0-cp312-cp312-macosx_13_0_universal2.whl",
        "onnxruntime_gpu-1.40.0-cp312-cp312-manylinux_2_28_x86_64.whl",
    ):
        (tmp_path / other).write_bytes(b"")
    assert package.find_ort_wheel() is None
    (tmp_path / WHEEL).write_bytes(b"")
    assert package.find_ort_wheel() == tmp_path / WHEEL


def test_vendored_files_are_the_runtime_only_under_the_python_tag(tmp_path):
    wheel = _wheel(
        tmp_path / WHEEL,
        [
            "onnxruntime/",
            "onnxruntime/__init__.py",
            "onnxruntime/__pycache__/__init__.cpython-312.pyc",
            LINUX_SO,
            "onnxruntime/capi/libonnxruntime.so",
            "onnxruntime/capi/libonnxruntime_providers_shared.so",
            "onnxruntime/LICENSE",
            "onnxruntime/ThirdPartyNotices.txt",
            "onnxruntime/tools/convert.py",
            "onnxruntime/transformers/optimizer.py",
            "onnxruntime/quantization/quantize.py",
            "onnxruntime/datasets/sigmoid.onnx",
            "onnxruntime-1.31.1.dist-info/METADATA",
        ],
    )
    files = package.vendored_ort_files(wheel)
    # Only the C API library itself goes, not the library beside it that the extension names; the MIT licence and the
    # third-party notices go with every copy of the wheel.
    assert sorted(files) == [
        "code/vendor/cp312/onnxruntime-1.31.1.dist-info/METADATA",
        "code/vendor/cp312/onnxruntime/LICENSE",
        "code/vendor/cp312/onnxruntime/ThirdPartyNotices.txt",
        "code/vendor/cp312/onnxruntime/__init__.py",
        "code/vendor/cp312/onnxruntime/capi/libonnxruntime_providers_shared.so",
        f"code/vendor/cp312/{LINUX_SO}",
    ]
    assert files[f"code/vendor/cp312/{LINUX_SO}"] == LINUX_SO.encode()


def test_vendoring_checks_the_wheel_name_and_that_it_is_a_zip(tmp_path):
    """--onnxruntime-wheel reaches vendored_ort_files without find_ort_wheel's glob: the name is checked there too."""
    gpu = _wheel(tmp_path / "onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl", [LINUX_SO])
    with pytest.raises(package.BuildInputError, match="is not an onnxruntime wheel for the container"):
        package.vendored_ort_files(gpu)
    (tmp_path / "zip" / WHEEL).parent.mkdir()
    (tmp_path / "zip" / WHEEL).write_bytes(b"<html>a proxy's error page</html>")
    with pytest.raises(package.BuildInputError, match=re.escape(f"{tmp_path / 'zip' / WHEEL} is not a readable zip")):
        package.vendored_ort_files(tmp_path / "zip" / WHEEL)


def test_a_wheel_without_the_container_extension_module_is_refused(tmp_path):
    """A macOS build renamed to the Linux wheel's name: the name passes, the extension module does not."""
    mac = _wheel(tmp_path / WHEEL, ["onnxruntime/__init__.py", "onnxruntime/capi/onnxruntime_pybind11_state.so"])
    with pytest.raises(package.BuildInputError, match=r"holds no cpython-312-x86_64-linux-gnu\.so extension module"):
        package.vendored_ort_files(mac)


def test_model_code_may_not_hold_a_requirements_txt(tmp_path, monkeypatch):
    (tmp_path / "inference.py").write_text("a")
    (tmp_path / "requirements.txt").write_text("onnxruntime\n")
    monkeypatch.setattr(package, "CODE_DIR", tmp_path)
    with pytest.raises(BundleDirError, match=r"requirements\.txt must not exist"):
        package.code_files()


def test_a_requirements_txt_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "inference.py").write_text("a")
    (tmp_path / "requirements.txt").write_text("onnxruntime\n")
    monkeypatch.setattr(package, "CODE_DIR", tmp_path)
    assert package.main(["--out", str(tmp_path / "out" / "model.tar.gz")]) == 2
    assert capsys.readouterr().err.startswith("error: model/code/requirements.txt must not exist")


def test_code_files_skip_directories_and_caches(tmp_path, monkeypatch):
    (tmp_path / "sub" / "__pycache__").mkdir(parents=True)
    (tmp_path / "inference.py").write_text("a")
    (tmp_path / "sub" / "helper.py").write_text("b")
    (tmp_path / "sub" / "__pycache__" / "helper.cpython-312.pyc").write_text("c")
    (tmp_path / "sub" / "__pycache__" / "helper.cpython-312.pyc.140012361725952").write_text("e")  # a crash's temp
    (tmp_path / "stale.pyc").write_text("d")
    monkeypatch.setattr(package, "CODE_DIR", tmp_path)
    assert package.code_files() == {"code/inference.py": b"a", "code/sub/helper.py": b"b"}


def test_code_files_skip_hidden_files_and_folders_at_any_depth(tmp_path, monkeypatch):
    """As from the Lambda asset and the site: a .env is a secret, and a .venv, tool cache or .DS_Store would change
    the artifact's sha256 (and roll the endpoint) with the model unchanged. A hidden folder above model/code is no
    reason to skip anything."""
    code = tmp_path / ".checkout" / "code"
    (code / "sub").mkdir(parents=True)
    (code / "inference.py").write_text("a")
    (code / "sub" / "helper.py").write_text("b")
    monkeypatch.setattr(package, "CODE_DIR", code)
    before = package.code_files()
    assert before == {"code/inference.py": b"a", "code/sub/helper.py": b"b"}
    for hidden in (".env", ".DS_Store", ".venv/lib/x.py", ".mypy_cache/3.12/x.json", "sub/.hidden/y.py", "sub/.x.swp"):
        (code / hidden).parent.mkdir(parents=True, exist_ok=True)
        (code / hidden).write_text("secret")
    assert package.code_files() == before


# --- main(): the options it hands on, and how it fails ---------------------------------------------------------
@pytest.fixture
def cli(tmp_path, monkeypatch):
    """main() with build() recorded instead of run, no MODEL_WEIGHTS and no wheel in model/dist/wheels."""
    state = SimpleNamespace(found=None)
    monkeypatch.setattr(package, "find_ort_wheel", lambda: state.found)
    monkeypatch.delenv("MODEL_WEIGHTS", raising=False)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"w")
    calls = []

    def fake_build(source, out, **kwargs):
        calls.append(SimpleNamespace(source=source, out=out, **kwargs))
        out.write_bytes(b"x")
        return out, True

    monkeypatch.setattr(package, "build", fake_build)
    out = ["--out", str(tmp_path / "m.tar.gz")]
    state.__dict__.update(calls=calls, weights=weights, out=out, tmp=tmp_path)
    return state


def test_cli_defaults_to_the_v2_download(cli):
    assert package.main(cli.out) == 0
    assert cli.calls[0].source == package.WeightsSource(None, "IMAGENET1K_V2")


@pytest.mark.parametrize("value", ["", " ", "file"])
def test_cli_reads_model_weights_from_the_environment(cli, monkeypatch, value):
    monkeypatch.setenv("MODEL_WEIGHTS", str(cli.weights) if value == "file" else value)
    assert package.main(cli.out) == 0
    expected = (cli.weights.resolve(), "IMAGENET1K_V1") if value == "file" else (None, "IMAGENET1K_V2")
    assert (cli.calls[0].source.path, cli.calls[0].source.preset) == expected


@pytest.mark.parametrize("how", ["--weights=~/w.pth", "MODEL_WEIGHTS=~/w.pth"])
def test_cli_expands_a_home_folder_in_every_path_it_is_given(cli, monkeypatch, how):
    """bash leaves `--weights=~/w.pth` (and a quoted ~) alone: the file was looked for in ./~/ and "did not exist"."""
    monkeypatch.setenv("HOME", str(cli.tmp))
    wheel = _wheel(cli.tmp / WHEEL, [LINUX_SO])
    weights = [how] if how.startswith("--") else []
    if not weights:
        monkeypatch.setenv(*how.split("=", 1))
    assert package.main([*weights, f"--onnxruntime-wheel=~/{WHEEL}", "--out=~/m.tar.gz"]) == 0
    assert cli.calls[0].source.path == cli.weights.resolve()
    assert (cli.calls[0].ort_wheel, cli.calls[0].out) == (wheel, (cli.tmp / "m.tar.gz").resolve())


@pytest.mark.parametrize("how", ["--weights", "MODEL_WEIGHTS"])
def test_cli_takes_a_path_with_outer_spaces_as_typed(cli, monkeypatch, how):
    """POSIX names may begin or end with a space: only an all-blank path is refused, any other is not trimmed, so the
    file read is the file named (trimmed, the path names another file, or none)."""
    spaced = cli.tmp / " w.pth "
    spaced.write_bytes(b"spaced")
    weights = [how, str(spaced)] if how.startswith("--") else []
    if not weights:
        monkeypatch.setenv(how, str(spaced))
    assert package.main([*weights, *cli.out]) == 0
    assert cli.calls[0].source.path == spaced.resolve()


@pytest.mark.parametrize("how", ["--weights=~/nope.pth", "MODEL_WEIGHTS=~/nope.pth"])
def test_cli_a_missing_weights_file_given_under_home_names_the_path_tried(cli, monkeypatch, capsys, how):
    monkeypatch.setenv("HOME", str(cli.tmp))
    weights = [how] if how.startswith("--") else []
    if not weights:
        monkeypatch.setenv(*how.split("=", 1))
    assert package.main([*weights, *cli.out]) == 2
    named_by = "--weights" if weights else "MODEL_WEIGHTS"
    says = f"weights file {(cli.tmp / 'nope.pth').resolve()} ({named_by}) does not exist"
    assert capsys.readouterr().err == f"error: {says}\n"
    assert not cli.calls


def test_cli_a_refused_weights_file_names_where_it_was_given(cli, monkeypatch, capsys):
    """`make model` passes MODEL_WEIGHTS on, the Makefile's or the shell's: "weights file X does not exist" did not
    say where X came from to someone who never typed --weights."""
    monkeypatch.setenv("MODEL_WEIGHTS", str(cli.tmp / "stale.pth"))
    assert package.main(cli.out) == 2
    says = f"weights file {(cli.tmp / 'stale.pth').resolve()} (MODEL_WEIGHTS) does not exist"
    assert capsys.readouterr().err == f"error: {says}\n"
    assert package.main(["--weights", str(cli.tmp), *cli.out]) == 2  # --weights wins over MODEL_WEIGHTS
    assert capsys.readouterr().err == f"error: weights file {cli.tmp.resolve()} (--weights) is not a regular file\n"
    assert not cli.calls


def test_cli_preset_overrides_the_default_for_a_file(cli):
    assert package.main(["--weights", str(cli.weights), "--preset", "IMAGENET1K_V2", *cli.out]) == 0
    assert cli.calls[0].source.preset == "IMAGENET1K_V2"


def test_cli_vendors_the_wheel_it_finds_unless_told_no_onnx(cli, capsys):
    cli.found = wheel = _wheel(cli.tmp / WHEEL, [LINUX_SO])
    assert package.main(cli.out) == 0
    assert (cli.calls[-1].onnx, cli.calls[-1].ort_wheel) == (True, wheel)
    assert package.main(["--no-onnx", *cli.out]) == 0
    assert (cli.calls[-1].onnx, cli.calls[-1].ort_wheel) == (False, None)
    assert "note:" not in capsys.readouterr().err


def test_cli_notes_when_the_container_will_serve_torchscript(cli, capsys):
    assert package.main(cli.out) == 0
    assert "no onnxruntime wheel vendored" in capsys.readouterr().err


NEEDS_ONNX = "--onnxruntime-wheel and --int8 need the ONNX graph; drop --no-onnx"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--onnxruntime-wheel", "{tmp}/nope/" + WHEEL], "onnxruntime wheel {tmp}/nope/" + WHEEL + " does not exist"),
        (["--no-onnx", "--int8"], NEEDS_ONNX),
        (["--no-onnx", "--onnxruntime-wheel", "{tmp}/" + WHEEL], NEEDS_ONNX),
    ],
)
def test_cli_refuses_options_that_cannot_build(cli, capsys, flags, says):
    cli.found = _wheel(cli.tmp / WHEEL, [LINUX_SO])
    argv = [f.format(tmp=cli.tmp) for f in flags]
    assert package.main([*argv, *cli.out]) == 2
    assert capsys.readouterr().err == f"error: {says.format(tmp=cli.tmp)}\n"
    assert not cli.calls


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--preset", "V3"], "argument --preset: invalid choice: 'V3'"),
        (["--out"], "argument --out: expected one argument"),
        (["--weight-file", "w.pth"], "unrecognized arguments: --weight-file w.pth"),
        # As a Path, "" is the current folder: "weights file <cwd> is not a regular file", "--out . is a directory".
        (["--weights="], "argument --weights: the path is empty: name a file, or leave the option out"),
        (["--out", ""], "argument --out: the path is empty"),
        (["--onnxruntime-wheel", " "], "argument --onnxruntime-wheel: the path is empty"),
    ],
)
def test_cli_a_bad_argument_is_one_line_naming_it_and_pointing_to_help(cli, capsys, args, says):
    """argparse printed its six-line usage block above the one line that said what was wrong."""
    with pytest.raises(SystemExit) as done:
        package.main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.endswith("; see `python -m model.package --help`\n"), err
    assert err.count("\n") == 1, err
    assert not cli.calls


def test_cli_a_folder_as_weights_is_one_error_line(cli, capsys):
    assert package.main(["--weights", str(cli.tmp), *cli.out]) == 2
    assert capsys.readouterr().err == f"error: weights file {cli.tmp.resolve()} (--weights) is not a regular file\n"
    assert not cli.calls


def test_cli_weights_that_are_neither_a_file_nor_a_folder_are_not_said_to_be_missing(cli, capsys):
    """A named pipe (or /dev/null, a socket) is there but is no regular file: "does not exist" sent the user looking
    for a typo in a path that exists."""
    fifo = cli.tmp / "weights.pipe"
    os.mkfifo(fifo)
    assert package.main(["--weights", str(fifo), *cli.out]) == 2
    assert capsys.readouterr().err == f"error: weights file {fifo.resolve()} (--weights) is not a regular file\n"
    assert not cli.calls


def test_cli_a_folder_as_the_onnxruntime_wheel_is_not_said_to_be_missing(cli, capsys):
    assert package.main(["--onnxruntime-wheel", str(cli.tmp), *cli.out]) == 2
    assert capsys.readouterr().err == f"error: onnxruntime wheel {cli.tmp} is not a regular file\n"
    assert not cli.calls


def test_cli_a_misnamed_onnxruntime_wheel_is_refused_before_the_build(cli, capsys):
    """It was vetted once the weights were loaded and the graph exported: some 10 s, then one error line."""
    wheel = _wheel(cli.tmp / "onnxruntime.whl", [LINUX_SO])
    assert package.main(["--onnxruntime-wheel", str(wheel), *cli.out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: onnxruntime.whl is not a wheel file name") and err.count("\n") == 1, err
    assert not cli.calls


def test_cli_a_folder_as_out_is_one_error_line_before_the_build(cli, capsys):
    """It built for some 20 s, then said "error: Is a directory: <the temp file beside it>"."""
    assert package.main(["--out", str(cli.tmp)]) == 2
    expected = f"--out {cli.tmp} is a directory: name the file to write, like {cli.tmp / 'model.tar.gz'}"
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not cli.calls


@pytest.mark.parametrize("ending", ["/", "/.", "/./", "/.."])
@pytest.mark.parametrize("exists", [True, False])
def test_cli_an_out_with_a_trailing_slash_names_a_folder_not_the_file(cli, capsys, exists, ending):
    """A Path drops the slash (and a last "."): `--out build/` (or build/.) wrote a file named build, and said so as
    if all were well."""
    folder = cli.tmp / "build"
    if exists:
        folder.mkdir()
    with pytest.raises(SystemExit) as done:
        package.main(["--out", f"{folder}{ending}"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    says = f"error: argument --out: {folder}{ending} names a folder: name the file to write, like {folder}"
    assert err.startswith(says), err
    assert not cli.calls and folder.exists() == exists


def test_cli_interrupted_says_nothing_was_written(cli, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(package, "build", interrupted)
    assert package.main(cli.out) == 130
    assert capsys.readouterr().err == "interrupted: nothing was written\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_cli_stopped_by_a_signal_while_writing_leaves_no_temp_file(cli, monkeypatch, capsys, sig):
    """`timeout 60 make demo INT8=1`, a cancelled CI job or a closed terminal stop the build with SIGTERM or SIGHUP:
    killed while the tarball was written, it left a hidden .model.tar.gz.*.tmp in model/dist and said nothing."""
    out = cli.tmp / "dist" / "model.tar.gz"
    real_gzip = gzip.GzipFile

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), sig)
        return real_gzip(*args, **kwargs)

    def build(source, out, **kwargs):
        package.write_tarball(MEMBERS, out)
        return out, True

    monkeypatch.setattr(package, "gzip", SimpleNamespace(GzipFile=signalled))
    monkeypatch.setattr(package, "build", build)
    ignored: list[int] = []

    def handler(signum, frame):  # the test's own: without the fix, the signal gets this and the build goes on
        ignored.append(signum)

    before = signal.signal(sig, handler)
    try:
        assert package.main(["--out", str(out)]) == 130
        assert signal.getsignal(sig) is handler, "main() left its handler behind"
    finally:
        signal.signal(sig, before)
    assert capsys.readouterr().err == "interrupted: nothing was written\n"
    assert list(out.parent.iterdir()) == [] and not ignored


def test_cli_file_error_names_the_file(cli, monkeypatch, capsys):
    locked = cli.tmp / "locked"

    def build(source, out, **kwargs):
        raise PermissionError(13, "Permission denied", str(locked))

    monkeypatch.setattr(package, "build", build)
    assert package.main(["--out", str(locked / "m.tar.gz")]) == 2
    assert capsys.readouterr().err == f"error: Permission denied: {locked}\n"


@pytest.mark.parametrize("below", ["m.tar.gz", "sub/dir/m.tar.gz"])
def test_cli_an_out_whose_parent_is_a_file_says_so_before_the_build(cli, capsys, below):
    """It built for some 20 s, then said "error: File exists: <the file>" (or "Not a directory" deeper down)."""
    blocker = cli.tmp / "file"
    blocker.write_text("")
    out = blocker / below
    assert package.main(["--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out} cannot be written: {blocker} is a file, not a folder\n"
    assert not cli.calls


def test_cli_an_out_through_a_broken_symlink_says_so(cli, capsys):
    link = cli.tmp / "gone"
    link.symlink_to(cli.tmp / "nowhere")
    assert package.main(["--out", str(link / "m.tar.gz")]) == 2
    says = f"--out {link / 'm.tar.gz'} cannot be written: {link} is a broken symlink, not a folder"
    assert capsys.readouterr().err == f"error: {says}\n"
    assert not cli.calls


def test_cli_help_says_what_out_is_and_its_default(capsys):
    """--help listed a bare `--out OUT`: not that it names the file (not a folder), nor where it goes unless given."""
    with pytest.raises(SystemExit):
        package.main(["--help"])
    assert re.search(
        r"--out OUT +the model\.tar\.gz to write, .*\(default: model/dist/model\.tar\.gz\)",
        " ".join(capsys.readouterr().out.split()),
    )


def test_cli_help_names_the_model_it_builds(capsys, monkeypatch):
    """--help said "MobileNet V2 weights" with MODEL_NAME changed to another architecture."""
    monkeypatch.setattr(package, "MODEL_NAME", "resnet18")
    with pytest.raises(SystemExit):
        package.main(["--help"])
    help_text = capsys.readouterr().out
    assert "Build model/dist/model.tar.gz: resnet18 weights + code/inference.py" in help_text
    assert "MobileNet" not in help_text


def test_cli_resolves_a_relative_out_and_weights_and_reports_the_absolute_out(cli, monkeypatch, capsys):
    monkeypatch.chdir(cli.tmp)
    assert package.main(["--out", "rel.tar.gz", "--weights", "w.pth"]) == 0
    assert cli.calls[0].out == cli.tmp.resolve() / "rel.tar.gz"
    assert cli.calls[0].source.path == cli.weights.resolve()
    assert f"artifact: {cli.tmp.resolve() / 'rel.tar.gz'}\n" in capsys.readouterr().out


def test_cli_reports_the_artifact_its_size_and_its_whole_sha256(cli, monkeypatch, capsys):
    """The last lines of `make model`: the sha256 is the whole one sha256sum gives (the S3 object is keyed by it)."""
    written = b"x" * 1234

    def build(source, out, **kwargs):
        out.write_bytes(written)
        return out, True

    monkeypatch.setattr(package, "build", build)
    out = cli.tmp / "m.tar.gz"
    assert package.main(["--no-onnx", "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"artifact: {out.resolve()}\nsize: 1,234 bytes\nsha256: {hashlib.sha256(written).hexdigest()}\n"
    )


def test_cli_a_misnamed_file_in_the_wheel_dir_is_one_error_line(tmp_path, monkeypatch, capsys):
    # A layout like the repo's (the help text names the wheel dir relative to the project root)
    monkeypatch.delenv("MODEL_WEIGHTS", raising=False)
    monkeypatch.setattr(package, "ROOT", tmp_path / "model")
    monkeypatch.setattr(package, "WHEEL_DIR", tmp_path / "model" / "dist" / "wheels")
    package.WHEEL_DIR.mkdir(parents=True)
    bad = "onnxruntime-latest-cp312-cp312-manylinux_2_28_x86_64.whl"  # renamed by hand: no version
    (package.WHEEL_DIR / bad).write_bytes(b"")
    monkeypatch.setattr(package, "build", lambda *args, **kwargs: pytest.fail("built with an unusable wheel"))
    assert package.main(["--out", str(tmp_path / "m.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad} is not a wheel file name") and len(err.splitlines()) == 1


def test_model_code_may_hold_nothing_where_the_wheel_is_unpacked():
    members = {"code/inference.py": b"a", "code/vendor/other/x.py": b"kept"}
    package.add_vendored(members, {"code/vendor/cp312/onnxruntime/__init__.py": b"wheel"})
    assert members == {
        "code/inference.py": b"a",
        "code/vendor/other/x.py": b"kept",
        "code/vendor/cp312/onnxruntime/__init__.py": b"wheel",
    }
    stale = {"code/inference.py": b"a", "code/vendor/cp312/onnxruntime/old.py": b"stale"}
    with pytest.raises(package.BuildInputError, match=r"model/code/vendor/cp312/onnxruntime/old\.py is under .*remove"):
        package.add_vendored(stale, {"code/vendor/cp312/onnxruntime/__init__.py": b"wheel"})
