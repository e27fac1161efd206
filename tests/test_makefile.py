"""The Makefile's own guards, run against a copy of it (nothing is installed)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# The Makefile's settings: make exports a command-line variable to its recipes' environment, so under .ci/run's
# `make test PYTEST_ARGS=...` each make these tests start would read it as the user's.
MAKEFILE_SETTINGS = (ROOT / "Makefile").read_text().split("\nSETTINGS := ", 1)[1].split("\n", 1)[0].split()

# A fake Python's `case` line for the lock `make venv` takes with $(PYTHON) (ONE_VENV_INSTALL_AT_A_TIME): run by this
# Python, it then runs the make that installs the venv.
VENV_LOCK_CASE = f'*fcntl*) exec {shlex.quote(sys.executable)} "$@";;'


def make_env() -> dict[str, str]:
    """This process's environment without what a make that runs the tests passes down (MAKEFLAGS: its command-line
    variables, -n/-k; MAKELEVEL: "Entering directory" lines) or the Makefile's settings."""
    leaked = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", *MAKEFILE_SETTINGS)
    return {k: v for k, v in os.environ.items() if k not in leaked}


def make(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make` on the copied Makefile as a user would run it: under `make test` the outer make's MAKEFLAGS (its
    variables, -n/-k), MAKELEVEL (which adds "Entering directory" lines) and the settings it was given would otherwise
    leak in. `env` adds to that environment what the user's shell exports."""
    # PYTHONPATH: the copied Makefile checks make demo's values with python -m local.arguments, found beside it in a
    # checkout; without it, the check would refuse nothing.
    env = {**make_env(), "PYTHONPATH": str(ROOT), **(env or {})}
    # In its own process group, all of it killed on the timeout: subprocess.run kills make alone, and a `make demo`
    # that started the stack instead of refusing its value left it serving on port 8000 after the test.
    with subprocess.Popen(
        ["make", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_venv_refuses_a_python_older_than_311(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    old_python = tmp_path / "python3.10"
    old_python.write_text(
        "#!/bin/sh\n"
        # Answers the version probe as Python 3.10 would; anything else it is asked would be a venv attempt.
        'case "$*" in *version_info*) exit 1;; *) touch "$(dirname "$0")/was-used"; exit 0;; esac\n'
    )
    old_python.chmod(0o755)
    run = make("venv", f"PYTHON={old_python}", cwd=tmp_path)
    assert run.returncode != 0
    assert f"this project needs Python 3.11 or newer, and {old_python} is not" in run.stderr
    assert not (tmp_path / "was-used").exists()
    assert not (tmp_path / "venv").exists()


def test_venv_left_without_pip_is_made_again(tmp_path):
    """Debian's `python3 -m venv` without python3-venv leaves venv/bin/python but no pip; once the package is
    installed, `make venv` must make the venv again (which installs pip into it), not call the missing pip."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    leftover = tmp_path / "venv" / "bin" / "python"
    leftover.write_text("#!/bin/sh\nexit 0\n")
    leftover.chmod(0o755)
    python = tmp_path / "python3.11"
    python.write_text(
        "#!/bin/sh\n"
        # The version probe passes; `-m venv DIR` gives DIR a pip that records what it was asked.
        f'case "$*" in *version_info*) exit 0;; {VENV_LOCK_CASE} "-m venv "*)\n'
        '  printf \'#!/bin/sh\\necho "$*" >> "$(dirname "$0")/pip.log"\\n\' > "$3/bin/pip"; chmod +x "$3/bin/pip";;\n'
        "esac\n"
    )
    python.chmod(0o755)
    run = make("venv", f"PYTHON={python}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "-r requirements.txt -r requirements-dev.txt" in (tmp_path / "venv" / "bin" / "pip.log").read_text()
    assert (tmp_path / "venv" / ".installed").exists()


def test_two_makes_at_once_install_the_venv_once(tmp_path):
    """`make demo` and `make test` started together after a pull that changed requirements*.txt ran two pips into
    venv/ at once, and one stopped at a pip error ("No such file or directory", a pip traceback): the second make now
    waits for the first, then finds venv/ up to date."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, script in {
        "python": "exit 0\n",  # Python 3.11 or newer
        # A slow pip that notes each run, and a run that began while another was still going.
        "pip": f'echo "$*" >> {tmp_path}/pip.log\n'
        f"mkdir {tmp_path}/pip.running 2>/dev/null || echo overlap >> {tmp_path}/pip.log\n"
        f"sleep 1; rmdir {tmp_path}/pip.running 2>/dev/null; exit 0\n",
    }.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: make("venv", f"PYTHON={sys.executable}", cwd=tmp_path), range(2)))
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    log = (tmp_path / "pip.log").read_text().splitlines()
    assert "overlap" not in log, log
    assert sum("-r requirements.txt" in line for line in log) == 1, log
    assert any("waiting for another make venv" in run.stdout for run in runs), [run.stdout for run in runs]


@pytest.mark.parametrize("ignored", [False, True], ids=["ctrl-c", "sigint-ignored"])
def test_ctrl_c_while_waiting_for_the_venv_lock_prints_no_traceback(tmp_path, ignored):
    """Ctrl-C on the make that waited for another's venv install printed two Python tracebacks (BlockingIOError, then
    "During handling of the above exception" a KeyboardInterrupt) above make's own "Interrupt" line. A make that
    ignores SIGINT (started in the background of a script, under nohup) still waits, then installs. The make that was
    interrupted printed GNU make 4.3's "wait: No child processes.  Stop." instead of "Interrupt" in 3 runs in 100 (12
    in 100 under pytest; a fresh-clone CI failed on it) while the waiter died of the Ctrl-C as soon as make did: make's
    main loop had reaped it before make's SIGINT handler waited for it. A regression shows here as that rate."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "pip"):
        (bin_dir / name).write_text(f"#!/bin/sh\ntouch {tmp_path}/{name}.ran\n")
        (bin_dir / name).chmod(0o755)
    env = make_env()
    lock = os.open(tmp_path, os.O_RDONLY)  # another make installing the venv
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with subprocess.Popen(
            ["make", "venv", f"PYTHON={sys.executable}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            # A terminal's Ctrl-C: SIGINT to the whole foreground group, whose handlers are the defaults.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN if ignored else signal.SIG_DFL),
        ) as proc:
            try:
                assert "waiting for another make venv" in proc.stdout.readline()
                os.killpg(proc.pid, signal.SIGINT)
                if ignored:
                    with pytest.raises(subprocess.TimeoutExpired):
                        proc.wait(timeout=1)
                    fcntl.flock(lock, fcntl.LOCK_UN)  # the other make is done
                _, stderr = proc.communicate(timeout=30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
    finally:
        os.close(lock)
    assert "Traceback" not in stderr, stderr
    if ignored:
        assert proc.returncode == 0, stderr
        assert (tmp_path / "pip.ran").exists()
    else:
        assert proc.returncode != 0
        assert "Interrupt" in stderr, stderr
        assert not (tmp_path / "pip.ran").exists()


@pytest.mark.parametrize(
    ("target", "variable", "flag"),
    [("demo HOST=0.0.0.0", "ALLOW_REMOTE", "--allow-remote"), ("model", "INT8", "--int8")],
)
@pytest.mark.parametrize(
    ("value", "on"),
    [
        ("1", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("NO", False),
        ("off", False),
        ("fAlSe", False),  # any case
        ("", False),
    ],
)
def test_a_yes_no_variable_set_to_0_is_off(tmp_path, target, variable, flag, value, on):
    """ALLOW_REMOTE=0 must not expose the demo beyond this machine, nor INT8=0 ship the int8 graph."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    run = make("-n", *target.split(), f"{variable}={value}", cwd=tmp_path)
    command = run.stdout.strip().splitlines()[-1]
    assert command.startswith("venv/bin/python -m "), run.stdout
    assert (flag in command.split()) == on, command


@pytest.mark.parametrize(("value", "lifted"), [("", False), ("1", False), ("0", True), ("no", True)])
def test_demo_keeps_the_stage_throttle_unless_stage_throttle_is_off(tmp_path, value, lifted):
    """The demo throttles /predict as the deployed stage does unless STAGE_THROTTLE is 0/false/no; unset is on."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    run = make("-n", "demo", *([f"STAGE_THROTTLE={value}"] if value else []), cwd=tmp_path)
    command = run.stdout.strip().splitlines()[-1]
    assert command.startswith("venv/bin/python -m local "), run.stdout
    assert ("--no-stage-throttle" in command.split()) == lifted, command


@pytest.mark.parametrize("ci", ["", "true", "false", "No"])  # CI=false is not CI (README)
def test_chromium_that_apt_cannot_install_skips_the_browser_tests_not_the_whole_run(tmp_path, ci):
    """`make test` as root on a machine whose apt has no chromium (Ubuntu: chromium-browser is a snap) or no network:
    like a machine without root or sudo, the browser tests are skipped (failed under CI) while the rest still runs,
    rather than `make test` stopping at apt-get before any test."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    makefile = tmp_path / "Makefile"
    makefile.write_text(makefile.read_text().replace("/usr/bin/chromium", str(tmp_path / "no-such-chromium")))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, script in {
        "id": "echo 0\n",  # root: no sudo needed
        "apt-get": 'case "$*" in *install*) echo "E: Unable to locate package chromium" >&2; exit 100;; esac\n',
    }.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "CI")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    if ci:
        env["CI"] = ci
    run = subprocess.run(["make", "chromium"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert "the browser tests will be skipped" in run.stderr, run.stderr
    assert (run.returncode != 0) == (ci == "true"), (run.returncode, run.stderr)


def test_a_venv_made_by_an_older_python_is_refused_not_reused(tmp_path):
    """The README's CPU-only torch recipe makes venv/ with `python3` first; where that is 3.10 (Ubuntu 22.04), a
    later `make venv PYTHON=python3.11` passed its version check on python3.11 and then reused the 3.10 venv."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, script in {
        "python": 'case "$*" in *version_info*) exit 1;; esac\n',  # Python 3.10
        "pip": f'echo "$*" >> {tmp_path}/pip.log\n',
    }.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
    python311 = tmp_path / "python3.11"
    python311.write_text(f'#!/bin/sh\ncase "$*" in {VENV_LOCK_CASE} esac\nexit 0\n')
    python311.chmod(0o755)
    run = make("venv", f"PYTHON={python311}", cwd=tmp_path)
    assert run.returncode != 0
    assert "venv/ runs a Python older than 3.11" in run.stderr, run.stderr
    assert not (tmp_path / "pip.log").exists()
    assert not (tmp_path / "venv" / ".installed").exists()


@pytest.mark.parametrize("ci", ["", "true", "0"])
def test_chromium_without_apt_get_asks_no_sudo_password(tmp_path, ci):
    """A machine with sudo but no apt-get (macOS, Fedora): `make test` must not stop for a sudo password only to
    run an apt-get that is not there; the browser tests are skipped with a warning (under CI, it fails)."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    makefile = tmp_path / "Makefile"
    makefile.write_text(makefile.read_text().replace("/usr/bin/chromium", str(tmp_path / "no-such-chromium")))
    bin_dir = tmp_path / "bin"  # the whole PATH: no apt-get on it
    bin_dir.mkdir()
    for name, script in {"id": "echo 1000\n", "sudo": f'echo "$*" >> {tmp_path}/sudo.log\nexit 1\n'}.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "CI")}
    env["PATH"] = str(bin_dir)
    if ci:
        env["CI"] = ci
    run = subprocess.run(
        [shutil.which("make"), "chromium"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert (run.returncode != 0) == (ci == "true"), run.stderr
    assert "the browser tests will be skipped" in run.stderr, run.stderr
    assert not (tmp_path / "sudo.log").exists(), (tmp_path / "sudo.log").read_text()


def test_the_vendored_onnxruntime_is_the_version_the_venv_runs():
    """The artifact vendors ORT_VERSION for the container while tests, the bench and the local stack run the
    requirements.txt pin: were they to drift apart, every figure and agreement check here would be about a runtime
    the endpoint does not run."""
    makefile = (ROOT / "Makefile").read_text()
    vendored = next(line.split(":=")[1].strip() for line in makefile.splitlines() if line.startswith("ORT_VERSION :="))
    pinned = next(
        line.split("==")[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("onnxruntime==")
    )
    assert vendored == pinned


def wheels_folder(tmp_path, pip: str) -> tuple[str, object]:
    """A copied Makefile with an installed venv whose pip runs `pip` (a shell script body): ORT_VERSION and the
    empty model/dist/wheels folder its stamp rule fills."""
    import sys

    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    version = next(
        line.split(":=")[1].strip()
        for line in (tmp_path / "Makefile").read_text().splitlines()
        if line.startswith("ORT_VERSION :=")
    )
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "pip").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/pip.log\n{pip}')
    (bin_dir / "pip").chmod(0o755)
    (tmp_path / "venv" / ".installed").touch()
    stamp_time = (tmp_path / "requirements-dev.txt").stat().st_mtime + 10
    os.utime(tmp_path / "venv" / ".installed", (stamp_time, stamp_time))
    wheels = tmp_path / "model" / "dist" / "wheels"
    wheels.mkdir(parents=True)
    return version, wheels


def recording_python(tmp_path, record: str = 'echo "$*"') -> None:
    """wheels_folder's venv with a python that appends what it is asked to run to python.log (`record`, a shell line
    over "$@"), and runs nothing: a recipe's command line, without building or serving."""
    version, wheels = wheels_folder(tmp_path, pip="exit 1\n")
    (wheels / f".onnxruntime-{version}").touch()
    (wheels / f"onnxruntime-{version}-cp312-cp312-manylinux_2_28_x86_64.whl").touch()  # the stamp's wheel
    python = tmp_path / "venv" / "bin" / "python"
    python.unlink()
    python.write_text(f"#!/bin/sh\n{record} >> {tmp_path}/python.log\n")
    python.chmod(0o755)


def a_wheel(path, text: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("onnxruntime/__init__.py", text * 100)
    return path.read_bytes()


def test_the_pinned_onnxruntime_wheel_is_kept_when_it_cannot_be_downloaded_again(tmp_path):
    """An offline `make model` whose wheels folder holds the pinned wheel but not the stamp (a wheel copied in by
    hand, or `cp model/dist/wheels/*.whl`, which leaves the hidden stamp behind) deleted that wheel before trying to
    download it again, so the artifact silently lost ONNX Runtime. Only other versions may go."""
    version, wheels = wheels_folder(tmp_path, pip="exit 1\n")  # offline
    pinned = wheels / f"onnxruntime-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
    other = wheels / "onnxruntime-1.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    kept = a_wheel(pinned, "# the pinned wheel\n")
    a_wheel(other, "# a wheel of another version\n")
    (wheels / ".onnxruntime-1.0.0").touch()
    run = make(f"model/dist/wheels/.onnxruntime-{version}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pinned.read_bytes() == kept
    assert not other.exists()
    assert (wheels / f".onnxruntime-{version}").exists()
    assert not (wheels / ".onnxruntime-1.0.0").exists(), "another version's stamp was kept"
    assert "could not download" not in run.stderr, run.stderr


def pip_that_downloads(tmp_path, version: str, wheels, reusing_a_file_there: bool = False):
    """Online: a pip that logs its call to pip.log and writes a whole pinned wheel (unless, reusing_a_file_there, one of
    that name is there already). Returns the pinned wheel's path and the bytes pip writes there."""
    good_copy = tmp_path / "good.whl"
    pinned = wheels / f"onnxruntime-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
    fetch = f"cp {good_copy} {pinned}"
    if reusing_a_file_there:
        fetch = f"[ -e {pinned} ] || {fetch}"
    (tmp_path / "venv" / "bin" / "pip").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/pip.log\n{fetch}\n')
    return pinned, a_wheel(good_copy, "# the downloaded wheel\n")


def test_a_pinned_onnxruntime_wheel_that_is_no_zip_is_downloaded_again(tmp_path):
    """A wheel left cut short (a pip download or a copy interrupted before the stamp was written) was kept because
    of its name alone: the stamp was written over it and every later `make model` failed on it ("not a readable
    zip") until it was deleted by hand. Only a wheel that reads whole is kept; a broken one is fetched again."""
    version, wheels = wheels_folder(tmp_path, pip="")
    # pip download reuses a file of the wheel's name that it finds there.
    pinned, good = pip_that_downloads(tmp_path, version, wheels, reusing_a_file_there=True)
    pinned.write_bytes(good[: len(good) // 2])  # cut short
    run = make(f"model/dist/wheels/.onnxruntime-{version}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "pip.log").exists(), "the broken wheel was kept"
    assert pinned.read_bytes() == good, "pip found the broken wheel and took it for the download"
    assert (wheels / f".onnxruntime-{version}").exists()


def test_a_stamp_whose_wheel_is_gone_fetches_the_wheel_again(tmp_path):
    """With the wheel deleted (by hand, or `rm model/dist/wheels/*.whl`, which leaves the hidden stamp), the stamp
    alone kept make from fetching it again: every later artifact was built without ONNX Runtime, with a note only."""
    version, wheels = wheels_folder(tmp_path, pip="")
    pinned, good = pip_that_downloads(tmp_path, version, wheels)
    (wheels / f".onnxruntime-{version}").touch()
    run = make(f"model/dist/wheels/.onnxruntime-{version}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pinned.read_bytes() == good, "the wheel was not fetched again"
    assert (wheels / f".onnxruntime-{version}").exists()
    # With the wheel there, the stamp is up to date again: nothing is fetched.
    (tmp_path / "pip.log").unlink()
    assert make(f"model/dist/wheels/.onnxruntime-{version}", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "pip.log").exists()


EMPTY_SETTINGS = pytest.mark.parametrize(
    ("variable", "says"),
    [
        ("HOST", "error: HOST= is empty: give the address to listen on (default 127.0.0.1)"),
        ("PORT", "error: PORT= is empty: give the port to listen on (default 8000, 0 for a free one)"),
        ("RUNTIME", "error: RUNTIME= is empty: give inprocess or torchserve (default inprocess)"),
    ],
)


@pytest.mark.parametrize("value", ["", " "])
@EMPTY_SETTINGS
def test_demo_with_an_empty_host_port_or_runtime_is_one_error_line_before_any_build(tmp_path, variable, value, says):
    """`make demo HOST=` passed `--host --port 8000`: argparse's usage and "argument --host: expected one argument"
    (`RUNTIME=`: "argument --runtime: expected one argument"). Refused before the venv and the model are built, as
    a lower-case setting is: it refused only after minutes of building them."""
    recording_python(tmp_path)
    later = (tmp_path / "venv" / ".installed").stat().st_mtime + 10
    os.utime(tmp_path / "requirements.txt", (later, later))  # a venv to install again, were it built
    run = make("demo", f"{variable}={value}", cwd=tmp_path)
    assert run.returncode != 0
    assert [line for line in run.stderr.splitlines() if not line.startswith("make:")] == [says], run.stderr
    assert not (tmp_path / "pip.log").exists(), (tmp_path / "pip.log").read_text()
    assert not (tmp_path / "python.log").exists(), (tmp_path / "python.log").read_text()


@pytest.mark.parametrize("value", ["", " "])
@EMPTY_SETTINGS
def test_make_help_with_an_empty_host_port_or_runtime_gives_the_demos_refusal(tmp_path, variable, value, says):
    """`make help PORT=` named the demo at http://127.0.0.1: (HOST=: http://:8000; RUNTIME=: a demo that would
    start), where `make demo PORT=` refuses the blank setting: help says what the demo says."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    run = make(f"{variable}={value}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == f"make demo      {says}", run.stdout


def stdlib_python(tmp_path):
    """A Python with the standard library only, as the system python3 that make demo checks its values with (no
    uvicorn, numpy or boto3): this one without its site-packages."""
    python = tmp_path / "python3-stdlib"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -S "$@"\n')
    python.chmod(0o755)
    return python


def what_python_m_local_says(tmp_path, *settings: str) -> str:
    """What python -m local itself prints (on stderr, exiting 2) run as make demo would run it with these settings:
    its command line as make -n prints it, with the check that would refuse it before that turned off."""
    printed = make("-n", "demo", *settings, "PYTHON=false", cwd=tmp_path).stdout.splitlines()
    argv = shlex.split(next(line for line in printed if line.startswith("venv/bin/python -m local ")))
    run = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    return run.stderr.rstrip("\n")


BAD_DEMO_SETTINGS = pytest.mark.parametrize(
    ("settings", "says"),
    [
        (["PORT=abc"], "argument --port: 'abc' is not a port number: use 1-65535, or 0 for a free one"),
        (["PORT=70000"], "argument --port: 70000 is not a port: use 1-65535, or 0 for a free one"),
        (["PORT=-1"], "argument --port: -1 is not a port: use 1-65535, or 0 for a free one"),
        (["PORT=80'00"], """argument --port: "80'00" is not a port number"""),
        (["HOST=not..valid"], "argument --host: 'not..valid' is not an IP address or host name"),
        (["HOST=my host"], "argument --host: 'my host' is not an IP address or host name"),
        (["RUNTIME=java"], "argument --runtime: invalid choice: 'java' (choose from 'inprocess', 'torchserve')"),
        (["HOST=192.0.2.1"], "refusing to bind 192.0.2.1: the local stack has no authentication."),
        (["HOST=0.0.0.0", "ALLOW_REMOTE=no"], "refusing to bind 0.0.0.0: the local stack has no authentication."),
        (["HOST=myhost.example"], "refusing to bind myhost.example: the local stack has no authentication."),
        (["SERVER_LOG_LEVEL=loud"], "argument --log-level: invalid choice: 'loud' (choose from 'critical', 'error',"),
    ],
)


@BAD_DEMO_SETTINGS
def test_demo_refuses_what_python_m_local_refuses_before_any_build(tmp_path, settings, says):
    """`make demo PORT=abc` (or 70000, RUNTIME=java, HOST=a..b, a HOST not loopback without ALLOW_REMOTE) built the
    venv and the model, minutes on a fresh clone, before python -m local refused the value. It is refused first, in
    python -m local's own words, one line, exit status 2, by a Python with nothing but the standard library."""
    recording_python(tmp_path)
    refusal = what_python_m_local_says(tmp_path, *settings)
    assert refusal.startswith(f"error: {says}"), refusal
    later = (tmp_path / "venv" / ".installed").stat().st_mtime + 10
    os.utime(tmp_path / "requirements.txt", (later, later))  # a venv to install again, were it built
    run = make("demo", *settings, f"PYTHON={stdlib_python(tmp_path)}", cwd=tmp_path)
    assert run.returncode == 2
    assert [line for line in run.stderr.splitlines() if not line.startswith("make:")] == [refusal], run.stderr
    assert "Error 2" in run.stderr  # the recipe's exit status, python -m local's, as make reports it
    assert not (tmp_path / "pip.log").exists(), (tmp_path / "pip.log").read_text()
    assert not (tmp_path / "python.log").exists(), (tmp_path / "python.log").read_text()


@BAD_DEMO_SETTINGS
def test_make_help_with_a_bad_value_gives_the_demos_refusal(tmp_path, settings, says):
    """`make help PORT=abc` named the demo at http://127.0.0.1:abc, where `make demo PORT=abc` refuses it."""
    recording_python(tmp_path)
    refusal = what_python_m_local_says(tmp_path, *settings)
    run = make(*settings, f"PYTHON={stdlib_python(tmp_path)}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == f"make demo      {refusal}", run.stdout


@pytest.mark.parametrize(
    ("settings", "argv"),
    [
        ([], "--host 127.0.0.1 --port 8000 --runtime inprocess"),
        (["HOST=localhost"], "--host localhost --port 8000 --runtime inprocess"),
        (["HOST=LocalHost."], "--host LocalHost. --port 8000 --runtime inprocess"),
        (["HOST=::1"], "--host ::1 --port 8000 --runtime inprocess"),
        (["HOST=0.0.0.0", "ALLOW_REMOTE=1"], "--host 0.0.0.0 --port 8000 --runtime inprocess --allow-remote"),
        (["HOST=192.0.2.1", "ALLOW_REMOTE=yes"], "--host 192.0.2.1 --port 8000 --runtime inprocess --allow-remote"),
        (["PORT=0"], "--host 127.0.0.1 --port 0 --runtime inprocess"),
        (["PORT= 65535 "], "--host 127.0.0.1 --port 65535 --runtime inprocess"),
        (["RUNTIME=TorchServe"], "--host 127.0.0.1 --port 8000 --runtime TorchServe"),
        (["STAGE_THROTTLE=0"], "--host 127.0.0.1 --port 8000 --runtime inprocess --no-stage-throttle"),
        (["SERVER_LOG_LEVEL=info"], "--host 127.0.0.1 --port 8000 --runtime inprocess --log-level info"),
        (["SERVER_LOG_LEVEL=DEBUG"], "--host 127.0.0.1 --port 8000 --runtime inprocess --log-level DEBUG"),
        (["SERVER_LOG_LEVEL= "], "--host 127.0.0.1 --port 8000 --runtime inprocess"),
    ],
)
def test_demo_with_good_values_builds_and_runs_python_m_local_as_before(tmp_path, settings, argv):
    recording_python(tmp_path)
    run = make("demo", *settings, f"PYTHON={stdlib_python(tmp_path)}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "python.log").read_text().splitlines() == ["-m model.package", f"-m local {argv}"]


def test_a_shells_log_level_is_the_functions_not_the_demo_servers(tmp_path):
    """A developer's exported LOG_LEVEL is the Lambda function's level (Powertools reads it in the sandboxes); only
    SERVER_LOG_LEVEL moves python -m local's --log-level."""
    recording_python(tmp_path)
    run = make("demo", f"PYTHON={stdlib_python(tmp_path)}", cwd=tmp_path, env={"LOG_LEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "python.log").read_text().splitlines()[
        -1
    ] == "-m local --host 127.0.0.1 --port 8000 --runtime inprocess"


@pytest.mark.parametrize("python", ["no local/", "no such python", "old"])
def test_a_check_of_the_demos_values_that_cannot_run_refuses_nothing(tmp_path, python):
    """The check needs local/ beside the Makefile and a Python 3 that can import it. One that cannot run (its
    ModuleNotFoundError, bash's "command not found", a SyntaxError) is not the demo's refusal: make demo builds and
    python -m local refuses what it must, as before the check."""
    recording_python(tmp_path)
    env, check = {}, stdlib_python(tmp_path)
    if python == "no local/":
        env = {"PYTHONPATH": str(tmp_path)}  # as a Makefile copied without the checkout
    elif python == "no such python":
        check = tmp_path / "python3.99"
    else:
        check.write_text("#!/bin/sh\necho '  File \"local/arguments.py\", line 10' >&2; echo SyntaxError >&2; exit 1\n")
    run = make("demo", "PORT=abc", f"PYTHON={check}", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "-m local --host 127.0.0.1 --port abc" in (tmp_path / "python.log").read_text()


def test_make_demos_check_of_its_values_imports_the_standard_library_only():
    """The system python3 that checks make demo's values, before the venv is built, has no uvicorn, numpy or boto3: an
    import of one of them (through local.server, say) would have the check refuse nothing."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import local.arguments; "
        "print(*sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'__main__'}))"
    )
    run = subprocess.run([sys.executable, "-S", "-c", code, str(ROOT)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["components", "local"]


@pytest.mark.parametrize("target", ["clean", "lint", "test-fast"])
def test_only_demo_and_help_start_a_python_to_check_the_demos_values(tmp_path, target):
    """make help (make alone) and make demo check the demo's values with a Python; any other make would only wait
    for it."""
    recording_python(tmp_path)
    python = tmp_path / "python3-recording"
    python.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/system-python.log\n')
    python.chmod(0o755)
    assert make("-n", target, f"PYTHON={python}", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "system-python.log").exists(), (tmp_path / "system-python.log").read_text()
    for goals in ([], ["help"], ["-n", "demo"], ["-n", "lint", "demo"]):
        assert make(*goals, f"PYTHON={python}", cwd=tmp_path).returncode == 0
        assert "-m local.arguments" in (tmp_path / "system-python.log").read_text(), goals
        (tmp_path / "system-python.log").unlink()


def test_demo_passes_a_host_with_a_space_as_one_argument(tmp_path):
    """Unquoted, `make demo HOST='not a host'` was refused as "unrecognized arguments: a host"; as one argument
    python -m local says what is wrong with it."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    command = make("-n", "demo", "HOST=not a host", cwd=tmp_path).stdout.strip().splitlines()[-1]
    assert "--host 'not a host' --port '8000'" in command, command


@pytest.mark.parametrize("exported", ["myhost.example", "0.0.0.0"])
def test_demo_binds_loopback_whatever_host_the_shell_exports(tmp_path, exported):
    """tcsh exports HOST, this machine's name, to every program it runs: `make demo` took it for the address to
    bind and refused to start ("refusing to bind myhost.example ... Pass --allow-remote"). Only HOST= on make's
    command line says where the demo listens."""
    recording_python(tmp_path)
    run = make("demo", cwd=tmp_path, env={"HOST": exported})
    assert run.returncode == 0, run.stderr
    assert "-m local --host 127.0.0.1 --port 8000" in (tmp_path / "python.log").read_text()
    (tmp_path / "python.log").unlink()
    run = make("demo", "HOST=::1", cwd=tmp_path, env={"HOST": exported})
    assert run.returncode == 0, run.stderr
    assert "-m local --host ::1 --port 8000" in (tmp_path / "python.log").read_text()


def test_demo_listens_on_8000_whatever_port_the_shell_exports(tmp_path):
    """Hosting platforms export PORT to the app they run: `make demo` took it for its own port. Only PORT= on make's
    command line moves the demo."""
    recording_python(tmp_path)
    run = make("demo", cwd=tmp_path, env={"PORT": "5000"})
    assert run.returncode == 0, run.stderr
    assert "-m local --host 127.0.0.1 --port 8000" in (tmp_path / "python.log").read_text()
    (tmp_path / "python.log").unlink()
    run = make("demo", "PORT=8123", cwd=tmp_path, env={"PORT": "5000"})
    assert run.returncode == 0, run.stderr
    assert "-m local --host 127.0.0.1 --port 8123" in (tmp_path / "python.log").read_text()


@pytest.mark.parametrize(
    ("exported", "argv"), [("PORT=8123", "--host 127.0.0.1 --port 8123"), ("HOST=::1", "--host ::1")]
)
def test_make_e_takes_the_host_or_port_the_shell_exports(tmp_path, exported, argv):
    """The exported HOST and PORT are ignored, save under `make -e`, the Makefile's way (as its comments say) to mean
    them: a shell that sets them for this demo on purpose."""
    recording_python(tmp_path)
    name, value = exported.split("=")
    run = make("-e", "demo", cwd=tmp_path, env={name: value})
    assert run.returncode == 0, run.stderr
    assert f"-m local {argv}" in (tmp_path / "python.log").read_text()


def test_demo_passes_a_runtime_with_a_space_as_one_argument(tmp_path):
    """Unquoted, `make demo RUNTIME='torch serve'` was refused as "unrecognized arguments: serve"; as one argument
    python -m local names the choices."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    command = make("-n", "demo", "RUNTIME=torch serve", cwd=tmp_path).stdout.strip().splitlines()[-1]
    assert "--runtime 'torch serve'" in command, command


@pytest.mark.parametrize("target", ["model", "demo"])
def test_weights_instead_of_model_weights_is_one_error_line_not_the_default_weights(tmp_path, target):
    """`make model WEIGHTS=mine.pth` (the variable is MODEL_WEIGHTS) was ignored: the artifact was built from the
    shared copy or torchvision's download, and the file named looked accepted."""
    recording_python(tmp_path)
    run = make(target, "WEIGHTS=README.md", cwd=tmp_path)
    assert run.returncode != 0
    assert [line for line in run.stderr.splitlines() if not line.startswith("make:")] == [
        "error: WEIGHTS= is not a setting of this Makefile: name a local state_dict with MODEL_WEIGHTS=FILE"
    ], run.stderr
    assert not (tmp_path / "python.log").exists(), (tmp_path / "python.log").read_text()


@pytest.mark.parametrize(
    ("variable", "value"), [("PORT", "8000'"), ("HOST", "it's"), ("HOST", 'a"b'), ("RUNTIME", "torch'serve")]
)
def test_demo_passes_a_value_with_a_quote_as_that_one_argument(tmp_path, variable, value):
    """`make demo PORT=8000'` (a stray quote) ended the recipe's quoting early: bash's "unexpected EOF while looking
    for matching `''" instead of python -m local saying what is wrong with the value. The check of the values
    before the build (python -m local.arguments, on $(PYTHON)) gets them as python -m local does: here it records
    them and refuses nothing, so that the demo runs on."""
    recording_python(tmp_path, record='for a in "$@"; do echo "$a"; done')  # one argument a line
    check = tmp_path / "python3-recording"
    check.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done >> {tmp_path}/check.log\n')
    check.chmod(0o755)
    run = make("demo", f"{variable}={value}", f"PYTHON={check}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for log, module in (("python.log", "local"), ("check.log", "local.arguments")):
        argv = (tmp_path / log).read_text().splitlines()
        argv = argv[argv.index(module) - 1 :]
        assert argv[argv.index(f"--{variable.lower()}") + 1] == value, argv


@pytest.mark.parametrize(
    ("target", "assignment", "ours"),
    [
        ("demo", "port=8001", "PORT"),
        ("demo", "Host=0.0.0.0", "HOST"),
        ("demo", "allow_remote=1", "ALLOW_REMOTE"),
        ("test-fast", "pytest_args=-x", "PYTEST_ARGS"),
        ("model", "model_weights=mine.pth", "MODEL_WEIGHTS"),
        ("model", "int8=1", "INT8"),
        ("demo", "runtime=torchserve", "RUNTIME"),
        ("demo", "stage_throttle=0", "STAGE_THROTTLE"),
        ("demo", "server_log_level=info", "SERVER_LOG_LEVEL"),
        ("demo", "Python=python3.11", "PYTHON"),
    ],
)
def test_one_of_our_variables_in_another_case_is_refused_not_ignored(tmp_path, target, assignment, ours):
    """make's variables are case-sensitive: `make demo port=8001` started the demo on 8000, `make model int8=1`
    built fp32, and nothing said so."""
    recording_python(tmp_path)
    run = make(target, assignment, cwd=tmp_path)
    assert run.returncode == 2
    name = assignment.split("=")[0]
    assert f"*** {name}= is ignored, as make's variables are case-sensitive: use {ours}=.  Stop." in run.stderr
    assert not (tmp_path / "python.log").exists(), (tmp_path / "python.log").read_text()


def test_a_command_line_variable_that_is_not_ours_is_left_alone(tmp_path):
    recording_python(tmp_path)
    run = make("demo", "CI=1", "foo=1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "-m local --host 127.0.0.1 --port 8000 --runtime inprocess" in (tmp_path / "python.log").read_text()


@pytest.mark.parametrize("failing", ["", "ruff check", "ruff format", "-m pytest"])
def test_make_test_builds_lints_and_runs_pytest_and_fails_when_any_step_does(tmp_path, failing):
    """`make test` (what .ci/run runs) builds the model, tries chromium, runs ruff's check and format check, then
    pytest with PYTEST_ARGS, each in turn: a step that fails stops it with a failure, or CI goes green unlinted,
    untested, or with the tests' failures ignored."""
    recording_python(
        tmp_path, record=f'echo "$*" >> {tmp_path}/python.log; case "$*" in *"{failing or "#"}"*) exit 1;; esac'
    )
    (tmp_path / "venv" / "bin" / "ruff").write_text(
        f'#!/bin/sh\necho "ruff $*" >> {tmp_path}/python.log\ncase "ruff $*" in *"{failing or "#"}"*) exit 1;; esac\n'
    )
    (tmp_path / "venv" / "bin" / "ruff").chmod(0o755)
    makefile = tmp_path / "Makefile"
    makefile.write_text(makefile.read_text().replace("/usr/bin/chromium", str(tmp_path / "no-such-chromium")))
    (tmp_path / "bin").mkdir()  # the whole PATH: no apt-get, so the chromium step only warns
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "CI")}
    env["PATH"] = str(tmp_path / "bin")
    run = subprocess.run(
        [shutil.which("make"), "test", "PYTEST_ARGS=-p no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    steps = ["-m model.package", "ruff check .", "ruff format --check .", "-m pytest -p no:cacheprovider"]
    ran = steps[: next((i + 1 for i, step in enumerate(steps) if failing and failing in step), len(steps))]
    assert (tmp_path / "python.log").read_text().splitlines() == ran, run.stderr
    assert (run.returncode != 0) == bool(failing), run.stderr
    assert "the browser tests will be skipped" in run.stderr, run.stderr


@pytest.mark.parametrize("uid", ["0", "1000"])
def test_chromium_is_installed_unattended_as_root_or_through_sudo(tmp_path, uid):
    """`make chromium` runs apt-get update then install with -y and DEBIAN_FRONTEND=noninteractive passed through
    sudo (whose env_reset drops an exported one): no question waits for an answer. Root needs no sudo."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    chromium = tmp_path / "chromium"
    makefile = tmp_path / "Makefile"
    makefile.write_text(makefile.read_text().replace("/usr/bin/chromium", str(chromium)))
    bin_dir = tmp_path / "bin"  # the whole PATH
    bin_dir.mkdir()
    (bin_dir / "env").symlink_to(shutil.which("env"))
    for name, script in {
        "id": f"echo {uid}\n",
        "sudo": f'echo "$*" >> {tmp_path}/sudo.log\nexec {shutil.which("env")} -i PATH="$PATH" "$@"\n',
        "apt-get": f'echo "$* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> {tmp_path}/apt.log\n',
    }.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + script)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "CI")}
    env["PATH"] = str(bin_dir)
    run = subprocess.run(
        [shutil.which("make"), "chromium"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "apt.log").read_text().splitlines() == [
        "update -q DEBIAN_FRONTEND=noninteractive",
        "install -y -q chromium DEBIAN_FRONTEND=noninteractive",
    ]
    assert (tmp_path / "sudo.log").exists() == (uid != "0")


@pytest.mark.parametrize(
    ("shell", "given", "weights"),
    [
        (None, "/weights/mine.pth", "/weights/mine.pth"),
        ("/weights/mine.pth", None, "/weights/mine.pth"),
        (None, None, "shared"),
        (None, "", ""),  # blank names no file: the builder's default, torchvision's download
        ("", None, ""),
    ],
)
def test_an_offline_make_model_warns_of_the_wheel_and_builds_from_the_weights_named(tmp_path, shell, given, weights):
    """`make model` fetches the onnxruntime wheel it vendors before building; offline, it warns and still builds
    (the container serves TorchScript). The builder gets MODEL_WEIGHTS: the file named, else the shared copy; blank
    (on make's command line or from the shell), the download."""
    project, shared = tmp_path / "project", tmp_path / "shared" / "weights" / "mobilenet_v2_imagenet.pth"
    shared.parent.mkdir(parents=True)
    shared.touch()
    project.mkdir()
    version, _ = wheels_folder(project, pip="exit 1\n")  # offline, no wheel yet
    python = project / "venv" / "bin" / "python"
    python.unlink()  # the wheel check (-c) finds no wheel; anything else is recorded with MODEL_WEIGHTS
    python.write_text(f'#!/bin/sh\n[ "$1" != -c ] || exit 1\necho "$* $MODEL_WEIGHTS" >> {project}/python.log\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MODEL_WEIGHTS")}
    run = subprocess.run(
        ["make", "model", *([f"MODEL_WEIGHTS={given}"] if given is not None else [])],
        cwd=project,
        env=env | ({"MODEL_WEIGHTS": shell} if shell is not None else {}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "could not download the onnxruntime wheel" in run.stderr, run.stderr
    assert f"--python-version 3.12 --platform manylinux_2_28_x86_64 -d model/dist/wheels/ onnxruntime=={version}" in (
        (project / "pip.log").read_text()
    )
    weights = str(shared) if weights == "shared" else weights
    assert (project / "python.log").read_text().splitlines() == [f"-m model.package {weights}"]


@pytest.mark.parametrize("requirements", ["requirements.txt", "requirements-dev.txt"])
def test_a_changed_requirements_file_installs_the_venv_again(tmp_path, requirements):
    wheels_folder(tmp_path, pip="")
    later = (tmp_path / "venv" / ".installed").stat().st_mtime + 10
    os.utime(tmp_path / requirements, (later, later))
    run = make("venv", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "-r requirements.txt -r requirements-dev.txt" in (tmp_path / "pip.log").read_text()


def test_clean_keeps_the_downloaded_wheel(tmp_path):
    """`make clean` removes the built model and the tests' files, not the onnxruntime wheel an offline machine
    could not download again."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for path in ("model/dist/model.tar.gz", "model/dist/wheels/onnxruntime.whl", "test-artifacts/shot.png"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    run = make("clean", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "Makefile",
        "model/dist/wheels/onnxruntime.whl",
    ]


def put_rm_first(tmp_path, monkeypatch, script: str) -> None:
    """An `rm` of the test's own first on PATH, for what make's recipes run: `script` is its shell body."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rm").write_text("#!/bin/sh\n" + script)
    (bin_dir / "rm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_clean_that_cannot_remove_the_model_fails_saying_why(tmp_path, monkeypatch):
    """After a `sudo make test` (a model/dist owned by root), `make clean` hid rm's "Permission denied" and exited 0:
    the model stayed, and nothing said so. Root may remove anything, so rm is faked to refuse."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    # A checkout never built has no model/dist: that is no error.
    assert make("clean", cwd=tmp_path).returncode == 0
    (tmp_path / "model" / "dist").mkdir(parents=True)
    (tmp_path / "model" / "dist" / "model.tar.gz").touch()
    put_rm_first(
        tmp_path,
        monkeypatch,
        'for a in "$@"; do case "$a" in *model.tar.gz) echo "rm: cannot remove \'$a\': Permission denied" >&2; exit 1;;'
        f' esac; done\nexec {shutil.which("rm")} "$@"\n',
    )
    run = make("clean", cwd=tmp_path)
    assert run.returncode != 0, run.stderr
    assert "rm: cannot remove 'model/dist/model.tar.gz': Permission denied" in run.stderr, run.stderr


def test_clean_removes_the_rest_when_the_model_cannot_be_removed(tmp_path, monkeypatch):
    """`make clean` stopped at the first rm that failed: a model it could not remove (root-owned, after a
    `sudo make test`) also left test-artifacts/ and .pytest_cache behind. Each goes on its own; clean still fails,
    naming what stayed."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for path in ("model/dist/model.tar.gz", "model/dist/model.tar.gz.sha256", "test-artifacts/shot.png"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / ".pytest_cache").mkdir()
    put_rm_first(  # as rm does: refuses the model, removes every other path it is given
        tmp_path,
        monkeypatch,
        'status=0\nfor a in "$@"; do case "$a" in -*) ;;\n'
        "  *model.tar.gz) echo \"rm: cannot remove '$a': Permission denied\" >&2; status=1;;\n"
        f'  *) {shutil.which("rm")} -rf "$a";; esac; done\nexit $status\n',
    )
    run = make("clean", cwd=tmp_path)
    assert run.returncode != 0, run.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "bin" not in p.parts) == [
        "Makefile",
        "model",
        "model/dist",
        "model/dist/model.tar.gz",
    ]
    assert "error: make clean could not remove model/dist/model.tar.gz" in run.stderr, run.stderr


def test_clean_leaves_a_symlinked_model_dist_and_says_so(tmp_path):
    """model/dist linked to a folder elsewhere (a shared build cache) is not emptied: that folder is not this
    checkout's to delete from. It stays, the rest goes, and clean says what it left."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    linked = tmp_path / "elsewhere"
    for path in ("model.tar.gz", "wheels/onnxruntime.whl"):
        (linked / path).parent.mkdir(parents=True, exist_ok=True)
        (linked / path).touch()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "dist").symlink_to(linked)
    (tmp_path / "test-artifacts").mkdir()
    run = make("clean", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (linked / "model.tar.gz").exists() and (tmp_path / "model" / "dist").is_symlink()
    assert not (tmp_path / "test-artifacts").exists()
    assert f"model/dist links to {linked}: left as it is" in run.stdout, run.stdout


@pytest.mark.parametrize(
    ("target", "commands"),
    [
        ("lint", ["venv/bin/ruff check .", "venv/bin/ruff format --check ."]),
        (
            "test-fast",
            [
                "venv/bin/python -m model.package",
                'venv/bin/python -m pytest -m "not browser and not container and not integration and not other_python"',
            ],
        ),
        ("bench", ["venv/bin/python -m model.package", "venv/bin/python -m bench"]),
        ("loadtest", ["venv/bin/python -m model.package", "venv/bin/python -m bench.loadtest"]),
    ],
)
def test_lint_test_fast_bench_and_loadtest_run_what_they_say(tmp_path, target, commands):
    """`make lint` is ruff's check and format check; `make test-fast` builds the model and leaves out every test
    that needs a browser, TorchServe, the local stack or another Python. `make bench` and `make loadtest` build the
    model first too, as the README says: without it, after a change to inference.py they measure the old artifact."""
    recording_python(tmp_path)
    printed = make("-n", target, cwd=tmp_path).stdout.splitlines()
    assert [line.strip() for line in printed if line.startswith("venv/")] == commands, printed


def test_make_alone_lists_every_target(tmp_path):
    """README: "`make` alone lists every target." A target added without its help line (clean, loadtest) was one
    a newcomer running `make` never heard of."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    run = make(cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    listed = {line.split()[1] for line in run.stdout.splitlines() if line.startswith("make ")}
    phony = set((ROOT / "Makefile").read_text().split("\n.PHONY:", 1)[1].split("\n", 1)[0].split())
    assert len(phony) > 5 and len(listed) > 5  # what the two reads found
    assert sorted(phony - {"help"} - listed) == []


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("::1", "http://[::1]:8000"),  # an IPv6 literal in a URL is bracketed
        (
            "0.0.0.0",
            "http://127.0.0.1:8000",
        ),  # every interface: python -m local names the loopback it reaches itself on
        ("::", "http://[::1]:8000"),
        ("::0", "http://[::1]:8000"),  # every interface too, as ipaddress reads it: python -m local says [::1]
        ("0:0:0:0:0:0:0:0", "http://[::1]:8000"),
        ("::10", "http://[::10]:8000"),  # zeros, not only zeros
        ("192.0.2.10", "http://192.0.2.10:8000"),
        ("localhost", "http://127.0.0.1:8000"),  # the address python -m local binds for it and prints
        ("LocalHost.", "http://127.0.0.1:8000"),
    ],
)
def test_make_help_names_the_demo_url_as_python_m_local_prints_it(tmp_path, host, url):
    """`make help HOST=::1` showed http://::1:8000, no URL at all, where the stack itself prints http://[::1]:8000
    (tests/local/test_server.py's announced-address tests)."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    run = make(f"HOST={host}", "ALLOW_REMOTE=1", cwd=tmp_path)  # which a host not loopback needs
    assert run.returncode == 0, run.stderr
    assert f"the whole stack on {url} (" in run.stdout.splitlines()[0], run.stdout


@pytest.mark.parametrize(
    ("port", "url"), [("0", "http://127.0.0.1:<a free port>"), (" 8001 ", "http://127.0.0.1:8001")]
)
def test_make_help_names_no_port_0_to_open(tmp_path, port, url):
    """`make help PORT=0` named the demo at http://127.0.0.1:0, no address to open: python -m local takes a free port
    and prints it as it starts."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    run = make(f"PORT={port}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"the whole stack on {url} (" in run.stdout.splitlines()[0], run.stdout
