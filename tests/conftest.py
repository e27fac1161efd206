"""Fixtures shared by every test area: the built artifact, its extracted model dir, the loaded handlers."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from local.runtime import extract_all, load_inference_module
from tests.proxies import no_proxy_with_loopback

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "model" / "dist" / "model.tar.gz"
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_imagenet.pth"


def unmet_requirements(texts: Iterable[str], version_of: Callable[[str], str | None]) -> list[str]:
    """Each requirement in the requirements-file `texts` that the installed distributions do not meet, with what is
    there instead: "httpx (absent)", "pytest==9.2.0 (9.0.3)". `version_of(name)` is None when it is absent."""
    from packaging.requirements import Requirement

    unmet = []
    for text in texts:
        # pip's format: a line may go on after a backslash, and hold options (--hash) after its requirement. A line
        # that is only options (-r, -e, --index-url) and one whose marker excludes this machine ask for nothing here:
        # Requirement() raised on the first (a traceback in every pytest run), and the second stopped the suite.
        for raw in text.replace("\\\n", " ").splitlines():
            if not (line := re.split(r"(?:^|\s)(?:#|--)", raw, maxsplit=1)[0].strip()) or line.startswith("-"):
                continue
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            version = version_of(requirement.name)
            if version is None or not requirement.specifier.contains(version, prereleases=True):
                unmet.append(f"{requirement.name}{requirement.specifier} ({version or 'absent'})")
    return unmet


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pytest_configure(config: pytest.Config) -> None:
    # `python -m pytest` from another venv (or the system's, which has pytest) ran the suite without the project's
    # requirements: tests failed one by one, a fixture's ModuleNotFoundError here, a log-level test's wrong answer
    # there, as if the code were wrong. A venv a pull behind requirements*.txt did the same. One line says so instead.
    files = ("requirements.txt", "requirements-dev.txt")
    unmet = unmet_requirements([(ROOT / name).read_text() for name in files], installed_version)
    if unmet:
        more = f" and {len(unmet) - 4} more" if len(unmet) > 4 else ""
        pytest.exit(
            f"{sys.executable} lacks what requirements*.txt ask for: {', '.join(unmet[:4])}{more}; "
            "run the project's venv/bin/python -m pytest (`make venv` makes it or brings it up to date)",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    # A run started in the background by a non-interactive shell (`make test &`, `nohup`, some CI runners) inherits
    # SIGINT ignored, so Python installs no KeyboardInterrupt handler and every process the tests start inherits the
    # ignore too: the Ctrl-C tests of the launcher and the sandboxes then failed, as if Ctrl-C were broken. Those
    # tests are about what a terminal's Ctrl-C does, so SIGINT gets its usual handler back; the children's exec resets
    # a handled signal to its default, as after a terminal's start.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Every server the suites start is on loopback, and a shell behind a corporate proxy (HTTP_PROXY, ALL_PROXY, with
    # NO_PROXY unset or only localhost) had the suites' own botocore, urllib and httpx clients send 127.0.0.1 to the
    # proxy: its 502 failed the handler's, the local stack's and the load harness's tests. The proxy itself stays,
    # for what must leave the machine (the pip installs of the other-Python tests).
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = no_proxy_with_loopback(os.environ)


def as_saved_on_a_gpu(saved, path: Path) -> Path:
    """A CPU torch.save (a path or a file object) written to `path` as torch.save on a GPU machine writes it: every
    storage tagged cuda:0, where torch.load puts it back unless told otherwise."""
    with zipfile.ZipFile(saved) as cpu, zipfile.ZipFile(path, "w") as gpu:
        for entry in cpu.infolist():
            data = cpu.read(entry)
            if entry.filename.endswith("/data.pkl"):  # the storages' location, one pickled str: 'cpu' -> 'cuda:0'
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            gpu.writestr(entry.filename, data)
    return path


def tar_gz_of(path: Path, members: dict[str, bytes]) -> Path:
    """A model.tar.gz-like archive at `path` holding exactly `members` (name -> bytes): an odd artifact to test."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def gzip_with_a_bad_block(sound: bytes) -> bytes:
    """A gzip member whose deflate stream holds `sound` whole, then a block of the reserved type 11: reading past
    `sound` fails with zlib.error ("invalid block type"), as a corrupted download's would."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(sound) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return bytes.fromhex("1f8b08000000000000ff") + body + b"\x07"


def build_missing_artifact(weights: str | None) -> None:
    """Build ARTIFACT as `make model` does. A failed build fails the test with the builder's own error line: offline,
    without ../shared, the first model test showed `assert 2 == 0` under this fixture's source, the download error
    that says what to do only in the captured stderr below it."""
    from model import package

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            status = package.main(["--weights", weights] if weights else [])
        except SystemExit as e:  # argparse refusing an argument: its one line, not a traceback through argparse
            status = e.code
    sys.stderr.write(errors.getvalue())
    if status != 0:
        said = [line for line in errors.getvalue().splitlines() if line.strip()]
        why = said[-1] if said else f"python -m model.package exited with {status}"
        pytest.fail(f"{ARTIFACT} is missing and building it as `make model` does failed: {why}", pytrace=False)


def weights_to_build() -> str | None:
    """As `make model` takes MODEL_WEIGHTS: the file it names; set but blank, torchvision's download (the builder's
    default, and how `make model MODEL_WEIGHTS=` asks for it where ../shared has a copy; `--weights " "` was refused
    by argparse); unset, ../shared's copy when there is one, else the download."""
    if "MODEL_WEIGHTS" in os.environ:
        return os.environ["MODEL_WEIGHTS"] if os.environ["MODEL_WEIGHTS"].strip() else None
    return str(SHARED_WEIGHTS) if SHARED_WEIGHTS.exists() else None


@pytest.fixture(scope="session")
def artifact() -> Path:
    """model/dist/model.tar.gz as `make model` builds it (built here if a bare `pytest` runs first).

    Every test of inference.py runs the artifact's copy: one built before model/code last changed would have them
    pass on the old code, so that is refused (a rebuild here could undo a `make model INT8=1`)."""
    from model import package

    if not ARTIFACT.exists():
        build_missing_artifact(weights_to_build())
    with tarfile.open(ARTIFACT) as tar:
        shipped = {
            m.name: tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith("code/") and not m.name.startswith("code/vendor/")
        }
    if shipped != package.code_files():
        pytest.fail(f"{ARTIFACT} holds another model/code than this checkout: run `make model`", pytrace=False)
    return ARTIFACT


@pytest.fixture(scope="session")
def model_dir(artifact, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("model")
    with tarfile.open(artifact) as tar:
        extract_all(tar, target)
    return target


@pytest.fixture(scope="session")
def inference(model_dir):
    return load_inference_module(model_dir / "code")


@pytest.fixture(scope="session")
def classifier(inference, model_dir):
    return inference.model_fn(str(model_dir))


# --- the local stack ---------------------------------------------------------------------------------------
def process_group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies, and processes gone while looked at, are not counted)."""
    import psutil

    alive = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


class LocalStack:
    """`python -m local` in a child process on a free loopback port (what `make demo` runs)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, stage_throttle: bool = False):
        # The suites send requests back to back, far past the stage's 10 a second: only the tests of that
        # throttling keep it.
        throttle = [] if stage_throttle else ["--no-stage-throttle"]
        self.log = tempfile.NamedTemporaryFile(prefix="local-stack-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local", "--port", "0", *throttle, *args],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
        try:
            self.url = self._wait_for_url()
        except BaseException:  # the error carries the output; the caller never gets an object to stop()
            self.stop()  # Ctrl-C while waiting: the stack is in its own session and would outlive us
            raise
        self.endpoint_name = "mobilenet-local"

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def _wait_for_url(self, timeout: float = 120.0) -> str:
        import re
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"site\s+(http://\S+?)/\s", self.output())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"local stack exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.1)
        output = self.output()
        self.stop()  # removes the log
        raise RuntimeError(f"local stack did not start within {timeout} s:\n{output}")

    def set_faults(self, **faults) -> None:
        import httpx

        # Generous: a hang guard for a request to a stack that shares a loaded machine, not a speed check.
        response = httpx.post(f"{self.url}/__local/faults", json=faults, timeout=60)
        response.raise_for_status()

    def clear_faults(self) -> None:
        import httpx

        httpx.delete(f"{self.url}/__local/faults", timeout=60).raise_for_status()

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def live_stack(artifact):
    """The whole local stack with the real model and fault injection enabled; faults cleared after each use."""
    stack = LocalStack("--fault-injection")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack(live_stack):
    """live_stack for one test, with any injected fault removed afterwards."""
    yield live_stack
    live_stack.clear_faults()


def names_of(module, **replaced):
    """`module`'s names with `replaced` instead, for the code under test's own name for that module: the module
    itself patched (tempfile.tempdir, subprocess.run, time.sleep) would be every other test's and thread's too."""
    from types import SimpleNamespace

    return SimpleNamespace(**{**vars(module), **replaced})


def run_in_an_ascii_locale(script: str, argument: bytes) -> str:
    """`script`'s output from a Python whose locale codeset is ASCII: the C locale with coercion and UTF-8 mode off,
    which every glibc has, stands in for any codeset that is not UTF-8 (LANG=en_US.ISO-8859-1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    done = subprocess.run(
        [sys.executable, "-c", script, argument], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
