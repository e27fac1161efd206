"""A missing prerequisite skips on a developer's machine and fails under CI (so CI cannot go green by skipping)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.ci import find_python, skip_or_fail
from tests.conftest import ROOT


def outcome_of(reason: str, ci_hint: str) -> tuple[type[BaseException], str]:
    # Caught as BaseException: a skip escaping from these tests would report them as skipped, not failed.
    with pytest.raises(BaseException) as outcome:
        skip_or_fail(reason, ci_hint)
    return outcome.type, str(outcome.value)


def test_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert outcome_of("java missing", "CI must install it") == (pytest.skip.Exception, "java missing")


@pytest.mark.parametrize("value", ["", "0", "false", "False", "NO", "off", " no "])
def test_ci_set_to_a_no_is_not_ci(monkeypatch, value):
    """README: CI set to empty, 0, false, no or off (any case) is not CI, as the Makefile's yes/no variables: CI=false
    on a developer's machine made every missing tool a failure."""
    monkeypatch.setenv("CI", value)
    assert outcome_of("java missing", "CI must install it") == (pytest.skip.Exception, "java missing")


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_fails_under_ci_with_what_ci_must_do(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert outcome_of("java missing", "CI must install it") == (
        pytest.fail.Exception,
        "java missing; CI must install it",
    )


@pytest.mark.parametrize("value", ["", " ", "false", "fAlSe", "no no", "0 off", "true", "No 1", "yes", "n"])
def test_ci_is_read_as_the_makefiles_on_reads_it(monkeypatch, value):
    """The chromium target fails a run under CI by the Makefile's `on`, tests/ci.py by under_ci: both must say the
    same of any value, or `make test` fails on a missing chromium while the browser tests skip (or the reverse)."""
    from tests.ci import under_ci

    make = shutil.which("make")
    if make is None:
        skip_or_fail("no make on this machine", "CI must install it")
    probe = 'ci-probe: ; @echo "[$(call on,$(CI))]"'
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    run = subprocess.run(
        [make, "-s", "--no-print-directory", "--eval", probe, "ci-probe"],
        cwd=ROOT,
        env={**env, "CI": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    monkeypatch.setenv("CI", value)
    assert under_ci() == (run.stdout.strip() != "[]"), run.stdout


def fake_python(path, version: str, works: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!/bin/sh\necho '{version} (main)'\n" if works else "#!/bin/sh\necho 'no such version' >&2\nexit 127\n"
    )
    path.chmod(0o755)
    return str(path)


def test_find_python_skips_a_shim_without_a_version_behind_it(tmp_path, monkeypatch):
    fake_python(tmp_path / "shims" / "python3.99", "3.99.0", works=False)
    pyenv = fake_python(tmp_path / "home" / ".pyenv" / "versions" / "3.99.2" / "bin" / "python3.99", "3.99.2")
    monkeypatch.setenv("PATH", str(tmp_path / "shims"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_python("3.99") == pyenv


def test_find_python_prefers_the_one_on_path(tmp_path, monkeypatch):
    on_path = fake_python(tmp_path / "bin" / "python3.99", "3.99.1")
    fake_python(tmp_path / "home" / ".pyenv" / "versions" / "3.99.2" / "bin" / "python3.99", "3.99.2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_python("3.99") == on_path


def test_find_python_takes_pyenvs_newest_patch_release(tmp_path, monkeypatch):
    versions = tmp_path / "home" / ".pyenv" / "versions"
    for release in ("3.99.9", "3.99.11", "3.99.10"):  # neither string order, up or down, puts 3.99.11 first
        fake_python(versions / release / "bin" / "python3.99", release)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_python("3.99") == str(versions / "3.99.11" / "bin" / "python3.99")


def tool(path, script: str):
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def run_ci_on_a_fake_machine(
    tmp_path,
    known: str,
    referred: str = "",
    chromium: bool = True,
    root_or_sudo: bool | str = True,
    free_mb: int | str | None = 80_000,
    installed: bool = False,
    lacking: tuple[str, ...] = ("java",),
    make_status: int = 0,
    home: bool = True,
    home_dir: str = "home",
):
    """.ci/run on a machine whose apt has the packages `known` and merely knows the names `referred` (another
    package's relations name them); without /usr/bin/chromium unless `chromium`; run by a user who is neither root
    nor has sudo unless `root_or_sudo` ("sudo": a user with sudo); with `free_mb` free on its disk, and a venv already
    installed if `installed`; lacking what `lacking` names of java, make, python3-venv and python3.13 (apt installs
    each), with a `make test` that exits `make_status`, and with HOME (`home_dir`) set unless not `home`. Returns the
    `apt-get install` command lines, the run, and whether it went on to `make test`."""
    project, bin_dir = tmp_path / "project", tmp_path / "bin"
    (project / ".ci").mkdir(parents=True)
    usr_bin_chromium = tmp_path / "usr-bin-chromium"  # stands in for /usr/bin/chromium
    if chromium:
        tool(usr_bin_chromium, "echo Chromium 99\n")
    (project / ".ci" / "run").write_text(
        (ROOT / ".ci" / "run").read_text().replace("/usr/bin/chromium", str(usr_bin_chromium))
    )
    if installed:
        (project / "venv").mkdir()
        (project / "venv" / ".installed").touch()
    bin_dir.mkdir()
    # df -Pm as coreutils prints it: a header line, then the file system's line with the MB available fourth.
    tool(
        bin_dir / "df",
        'echo "Filesystem 1048576-blocks Used Available Capacity Mounted on"\n'
        f'echo "/dev/vda 258020 22132 {free_mb} 22% /"\n'
        if free_mb is not None
        else 'echo "df: .: Function not implemented" >&2\nexit 1\n',
    )
    for name in ("bash", "ls", "sort", "head", "dirname", "env", "chmod"):
        (bin_dir / name).symlink_to(shutil.which(name))
    log, made = tmp_path / "apt.log", tmp_path / "make.log"
    if root_or_sudo == "sudo":
        tool(bin_dir / "id", "echo 1000\n")
    if root_or_sudo:
        if root_or_sudo != "sudo":
            (bin_dir / "id").symlink_to(shutil.which("id"))
        # sudo as Debian's sudoers sets it up (env_reset): the command gets PATH, not the caller's environment.
        tool(bin_dir / "sudo", f'exec {shutil.which("env")} -i PATH="$PATH" "$@"\n')
    else:
        tool(bin_dir / "id", "echo 1000\n")
    # python3 with venv unless it lacks python3-venv (then only the package's marker gives it one).
    venv_marker = tmp_path / ("python3-venv" if "python3-venv" in lacking else "bin")
    tool(bin_dir / "python3", f'case "$*" in *ensurepip*) [ -e {venv_marker} ] || exit 1;; esac\necho Python 3.11.0\n')
    tool(tmp_path / "make", f'echo "$*" > {made}\nexit {make_status}\n')
    if "java" not in lacking:
        tool(bin_dir / "java", 'echo "openjdk 99"\n')
    if "make" not in lacking:
        (bin_dir / "make").symlink_to(tmp_path / "make")
    # apt-cache as apt's: `show` prints a package it has; a name it only knows from another package's relations
    # (Depends, Breaks...) succeeds printing nothing; any other name fails.
    tool(
        bin_dir / "apt-cache",
        'for p in "$@"; do :; done\n'
        f'case " {known} " in *" $p "*) echo "Package: $p"; echo "Version: 1"; exit 0;; esac\n'
        f'case " {referred} " in *" $p "*) exit 0;; esac\nexit 100\n',
    )
    # apt-get as apt: an unknown package fails the install; a JRE puts java on PATH, chromium /usr/bin/chromium.
    tool(
        bin_dir / "apt-get",
        f'echo "$*" >> {log}\necho "$1 DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> {tmp_path}/apt-env.log\n'
        '[ "$1" = install ] || exit 0\n'
        f'for p in "$@"; do case "$p" in -*|install) ;; *) case " {known} make " in *" $p "*) ;; '
        f'*) echo "E: Unable to locate package $p" >&2; exit 100;; esac;; esac; done\n'
        f'case "$*" in *jre-headless*) printf \'#!/bin/sh\\necho "openjdk 99"\\n\' > {bin_dir}/java; '
        f"chmod +x {bin_dir}/java;; esac\n"
        f'case " $* " in *" chromium "*) printf \'#!/bin/sh\\necho Chromium 99\\n\' > {usr_bin_chromium}; '
        f"chmod +x {usr_bin_chromium};; esac\n"
        f'case " $* " in *" make "*) {shutil.which("ln")} -s {tmp_path}/make {bin_dir}/make;; esac\n'
        f'case " $* " in *" python3-venv "*) {shutil.which("touch")} {venv_marker};; esac\n'
        f'case " $* " in *" python3.13-venv "*) {shutil.which("cp")} {bin_dir}/python3.12 {bin_dir}/python3.13;; '
        "esac\n",
    )
    for version in ("3.12", "3.13"):
        if f"python{version}" not in lacking:
            fake_python(bin_dir / f"python{version}", f"{version}.0")
    run = subprocess.run(
        ["bash", str(project / ".ci" / "run")],
        env={"PATH": str(bin_dir)} | ({"HOME": str(tmp_path / home_dir)} if home else {}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    installs = (
        [line.split() for line in log.read_text().splitlines() if line.startswith("install")] if log.exists() else []
    )
    return installs, run, made.exists() and made.read_text().startswith("test ")


@pytest.mark.parametrize(
    ("known", "referred", "java"),
    [
        (
            "openjdk-17-jre-headless python3.12-venv python3.13-venv chromium",
            "",
            "openjdk-17-jre-headless",
        ),  # Debian 12
        (
            "default-jre-headless python3.13-venv chromium",
            "",
            "default-jre-headless",
        ),  # Debian 13: no openjdk-17 at all
        # ... though another package may still name it (ca-certificates-java's Breaks does on Debian 12, for
        # openjdk-11 and 8): `apt-cache show` then succeeds printing nothing, and `apt-get install` refuses it.
        ("default-jre-headless python3.13-venv chromium", "openjdk-17-jre-headless", "default-jre-headless"),
    ],
)
def test_ci_run_asks_apt_only_for_a_java_it_has(tmp_path, known, referred, java):
    """.ci/run on a machine without java: openjdk-17 where the distribution has it, else its default JRE (Debian 13
    has no Java 17, and one unknown package fails the whole `apt-get install`)."""
    installs, run, tested = run_ci_on_a_fake_machine(tmp_path, known, referred)
    assert len(installs) == 1 and java in installs[0], (installs, run.stderr)
    assert "Unable to locate package" not in run.stderr
    assert tested, run.stderr


@pytest.mark.parametrize("chromium_on_debian", [True, False])
def test_ci_run_asks_apt_for_chromium_only_where_the_distribution_has_it(tmp_path, chromium_on_debian):
    """Debian packages chromium; Ubuntu has no `chromium` package (its chromium-browser installs the snap, which the
    tests do not use), and asking for it failed the whole install (Java and Python 3.12 too) and so the run."""
    known = "openjdk-17-jre-headless python3.12-venv" + (" chromium" if chromium_on_debian else "")
    installs, run, tested = run_ci_on_a_fake_machine(
        tmp_path, known, referred="" if chromium_on_debian else "chromium", chromium=False
    )
    assert len(installs) == 1 and "openjdk-17-jre-headless" in installs[0], (installs, run.stderr)
    assert ("chromium" in installs[0]) == chromium_on_debian, installs
    assert "Unable to locate package" not in run.stderr
    assert chromium_on_debian or "the browser tests cannot run" in run.stderr, run.stderr
    assert tested, run.stderr


def test_no_ipv6_loopback_skips_outside_ci_and_fails_under_it(monkeypatch):
    import socket
    from types import SimpleNamespace

    import tests.ci

    class NoIPv6:
        def __init__(self, *_):
            raise OSError(97, "Address family not supported by protocol")

    # tests.ci's own socket: socket.socket itself replaced would refuse every other thread's sockets too
    monkeypatch.setattr(tests.ci, "socket", SimpleNamespace(**{**vars(socket), "socket": NoIPv6}))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no IPv6 loopback"):
        tests.ci.require_ipv6_loopback()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must give it one"):
        tests.ci.require_ipv6_loopback()


def test_every_skip_goes_through_skip_or_fail():
    """README: with CI set, every missing prerequisite fails its tests instead of skipping them. A bare skip (a
    container without IPv6 skipped two tests under CI) would let CI go green without running them."""
    import re

    bare = re.compile(r"pytest\.skip\(|pytest\.mark\.skipif|pytest\.importorskip|unittest\.skip")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path != ROOT / "tests" / "ci.py" and path != ROOT / "tests" / "test_ci.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if bare.search(line)
    ]
    assert offenders == []


def test_ci_run_without_root_or_sudo_names_what_to_install(tmp_path):
    """A machine that lacks java (or make) and lets no one install it: one line naming the packages, not bash's
    'sudo: command not found' from the middle of the script."""
    installs, run, tested = run_ci_on_a_fake_machine(
        tmp_path, "openjdk-17-jre-headless python3.12-venv chromium", root_or_sudo=False
    )
    assert run.returncode == 1 and not installs and not tested
    assert "error: this machine lacks default-jre-headless" in run.stderr, run.stderr
    assert "not found" not in run.stderr, run.stderr


@pytest.mark.parametrize(
    "free_mb, installed, goes_on",
    [(8191, False, False), (8192, False, True), (10, True, True), ("-", False, True), (None, False, True)],
)
def test_ci_run_stops_at_once_without_the_disk_a_new_venv_needs(tmp_path, free_mb, installed, goes_on):
    """A runner with too little disk failed 30 s in, half-way through pip's install ("No space left on device"):
    .ci/run says how much it needs before installing anything. A venv already installed needs no more, and where df
    tells no number (a file system it cannot size) the install goes ahead, as before the check."""
    installs, run, tested = run_ci_on_a_fake_machine(
        tmp_path, "openjdk-17-jre-headless python3.12-venv chromium", free_mb=free_mb, installed=installed
    )
    assert tested == goes_on, run.stderr
    assert "integer expression" not in run.stderr, run.stderr  # bash's complaint on a df line with no number
    if not goes_on:
        assert run.returncode == 1 and not installs
        assert (
            f"error: 8192 MB must be free beside the project for its venv, and {tmp_path / 'project'} has "
            f"{free_mb} MB free" in run.stderr
        ), run.stderr


def test_a_run_started_with_sigint_ignored_still_tests_what_ctrl_c_does():
    """A background start by a non-interactive shell (`make test &`, nohup) ignores SIGINT in pytest and in every
    process it starts: the launcher's and the sandboxes' Ctrl-C tests failed as if Ctrl-C were broken. conftest gives
    SIGINT its handler back; one of those tests, run that way, must pass."""
    import signal
    import sys

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/container/test_launcher.py",
            "-k",
            "second_stop_signal and 2",
        ],
        cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert "1 passed" in run.stdout


@pytest.mark.parametrize(
    ("lacking", "packages"),
    [("make", "make"), ("python3-venv", "python3-venv"), ("python3.13", "python3.13 python3.13-venv")],
)
def test_ci_run_installs_what_a_fresh_runner_lacks_after_an_apt_update_without_a_prompt(tmp_path, lacking, packages):
    """A fresh runner may lack make, python3-venv (Debian splits it out) or python3.13: `apt-get install` of them,
    once, after the `apt-get update` a fresh image's empty package lists need, and with -y (no tty to say yes on)."""
    known = "make python3-venv python3.13 python3.13-venv"
    _, run, tested = run_ci_on_a_fake_machine(tmp_path, known, lacking=(lacking,))
    apt = (tmp_path / "apt.log").read_text().splitlines()
    assert apt == ["update -q", f"install -y -q --no-install-recommends {packages}"], run.stderr
    assert tested, run.stderr


def test_ci_run_fails_when_make_test_does(tmp_path):
    """CI's verdict is `make test`'s: a run whose tests fail must not end green."""
    _, run, tested = run_ci_on_a_fake_machine(tmp_path, "", lacking=(), make_status=2)
    assert tested and run.returncode == 2, run.stderr


@pytest.mark.parametrize("root_or_sudo", [True, "sudo"])
def test_ci_run_keeps_apt_get_from_asking_questions_even_through_sudo(tmp_path, root_or_sudo):
    """Every apt-get runs with DEBIAN_FRONTEND=noninteractive (a debconf question, tzdata's, hangs an unattended
    run): an exported one never reached apt-get through sudo, whose env_reset drops it."""
    _, run, tested = run_ci_on_a_fake_machine(tmp_path, "openjdk-17-jre-headless", root_or_sudo=root_or_sudo)
    assert tested, run.stderr
    assert (tmp_path / "apt-env.log").read_text().splitlines() == [
        "update DEBIAN_FRONTEND=noninteractive",
        "install DEBIAN_FRONTEND=noninteractive",
    ]


def test_ci_run_goes_on_without_home(tmp_path):
    """A runner may start it with no HOME (`env -i`, a service manager): looking for pyenv's Pythons under HOME
    stopped the run at once ("HOME: unbound variable", from `set -u`) on a machine that needed nothing from pyenv."""
    _, run, tested = run_ci_on_a_fake_machine(tmp_path, "", lacking=(), home=False)
    assert "unbound variable" not in run.stderr, run.stderr
    assert tested and run.returncode == 0, run.stderr


def test_ci_run_finds_pyenvs_python_under_a_home_with_a_space(tmp_path):
    """A HOME such as "/home/Åsa Berg": pyenv's python3.12 there was split into two words at the space, neither of
    which ran, and the run warned that the tests needing it would fail (and had apt install another, where it could).
    find_python, which the tests use, found it."""
    fake_python(tmp_path / "Åsa Berg" / ".pyenv" / "versions" / "3.12.1" / "bin" / "python3.12", "3.12.1")
    installs, run, tested = run_ci_on_a_fake_machine(
        tmp_path, "python3.12-venv", lacking=("python3.12",), home_dir="Åsa Berg"
    )
    assert "python3.12" not in run.stderr and not installs, (installs, run.stderr)
    assert tested and run.returncode == 0, run.stderr


def test_ci_run_stops_when_apt_get_cannot_install(tmp_path):
    """An install that fails (here: python3-venv unknown to apt) stops the run with apt-get's status, before the
    tests, rather than going on to fail them for a reason far from the cause."""
    _, run, tested = run_ci_on_a_fake_machine(tmp_path, "", lacking=("python3-venv",))
    assert run.returncode == 100 and not tested, run.stderr
    assert "Unable to locate package python3-venv" in run.stderr, run.stderr


def test_every_checkout_has_lf_line_ends_and_leaves_the_photos_alone():
    """With core.autocrlf on (Git for Windows' default) a checkout got CRLF: bash then refuses .ci/run, and the
    artifact, the function's code and the site's files change bytes, so a deploy from it rolls the endpoint."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        skip_or_fail("not a git checkout with git on PATH", "CI must run from a git clone")
    files = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    names = [f.decode() for f in files if f]
    attrs = subprocess.run(
        [git, "-c", "core.autocrlf=true", "check-attr", "text", "eol", "--", *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    found: dict[str, dict[str, str]] = {}
    for line in attrs:
        name, attr, value = line.rsplit(": ", 2)
        found.setdefault(name, {})[attr] = value
    wrong = {
        name: found[name]
        for name in names
        if found[name] != ({"text": "unset", "eol": "lf"} if name.endswith(".jpg") else {"text": "auto", "eol": "lf"})
    }
    assert not wrong, wrong
    assert any(name.endswith(".jpg") for name in names)


def test_a_model_that_cannot_be_built_fails_with_the_builders_error_line(monkeypatch, capsys):
    """`pytest tests/model` with no model/dist and no ../shared, offline: one line that says what to do."""
    from model import package
    from tests.conftest import build_missing_artifact

    def offline_build(argv):
        print(
            "error: could not download https://x/m.pth (no network); offline, pass MODEL_WEIGHTS=FILE", file=sys.stderr
        )
        return 2

    monkeypatch.setattr(package, "main", offline_build)
    with pytest.raises(pytest.fail.Exception) as failed:
        build_missing_artifact(None)
    assert not failed.value.pytrace
    assert str(failed.value).endswith(
        "is missing and building it as `make model` does failed: "
        "error: could not download https://x/m.pth (no network); offline, pass MODEL_WEIGHTS=FILE"
    )
    assert "could not download" in capsys.readouterr().err  # still in the captured output, with what came before


def test_a_weights_path_the_builder_refuses_fails_with_its_one_line(capsys):
    """argparse refuses a blank --weights with SystemExit: the fixture showed it as a traceback through argparse."""
    from tests.conftest import build_missing_artifact

    with pytest.raises(pytest.fail.Exception) as failed:
        build_missing_artifact(" ")
    assert not failed.value.pytrace
    assert str(failed.value).endswith(
        "failed: error: argument --weights: the path is empty: name a file, or leave the option out for its default; "
        "see `python -m model.package --help`"
    )


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_a_blank_model_weights_asks_the_fixture_for_the_download_as_make_model(monkeypatch, tmp_path, blank):
    """Set but blank, MODEL_WEIGHTS names no file: the builder and `make model` download torchvision's weights, even
    where ../shared has a copy; the fixture built from the copy."""
    import tests.conftest

    monkeypatch.setattr(tests.conftest, "SHARED_WEIGHTS", tmp_path / "shared.pth")
    (tmp_path / "shared.pth").write_bytes(b"")
    monkeypatch.setenv("MODEL_WEIGHTS", blank)
    assert tests.conftest.weights_to_build() is None  # torchvision's download
    monkeypatch.delenv("MODEL_WEIGHTS")
    assert tests.conftest.weights_to_build() == str(tmp_path / "shared.pth")
    (tmp_path / "shared.pth").unlink()
    assert tests.conftest.weights_to_build() is None
    monkeypatch.setenv("MODEL_WEIGHTS", "~/mine.pth")
    assert tests.conftest.weights_to_build() == "~/mine.pth"


def test_an_interpreter_without_the_requirements_is_named_with_what_it_lacks():
    """`python -m pytest` from another venv stops at once on this list, not on one test's ModuleNotFoundError."""
    from tests.conftest import unmet_requirements

    installed = {"pytest": "9.0.3", "boto3": "1.40.0", "torch": "2.14.1+cpu", "moto": "5.2.5"}
    texts = [
        "# a comment\ntorch==2.14.1\nboto3>=1.35  # a trailing comment\n\nhttpx==0.28.1\n",
        "pytest==9.2.0\nmoto[server]==5.2.5\n",
    ]
    assert unmet_requirements(texts, installed.get) == ["httpx==0.28.1 (absent)", "pytest==9.2.0 (9.0.3)"]


def test_the_venv_running_these_tests_meets_the_requirements():
    """Else conftest's guard against a foreign interpreter would stop `make test` itself."""
    from tests.conftest import installed_version, unmet_requirements

    texts = [(ROOT / name).read_text() for name in ("requirements.txt", "requirements-dev.txt")]
    assert unmet_requirements(texts, installed_version) == []


def test_requirement_lines_pip_reads_do_not_crash_the_check_or_ask_for_what_this_machine_does_not_install():
    """requirements*.txt are pip's files: an include, an option, a hash or a marker line there made every pytest run
    stop in conftest with an InvalidRequirement traceback, and a marker for another platform (or Python) was asked
    for here, where pip installs nothing for it."""
    from tests.conftest import unmet_requirements

    installed = {"torch": "2.14.1+cpu", "boto3": "1.40.0", "jmespath": "1.1.0"}
    texts = [
        "-r requirements.txt\n--index-url https://example.invalid/simple\n-e .\n",
        "torch==2.14.1 --hash=sha256:0123\nboto3>=1.35 \\\n    --hash=sha256:4567\n",
        'pywin32>=306; sys_platform == "win32"\njmespath==1.1.0; python_version >= "3.8"\n',
        'tomli>=2; python_version < "3.0"\nhttpx==0.28.1; python_version >= "3.8"\n',
    ]
    assert unmet_requirements(texts, installed.get) == ["httpx==0.28.1 (absent)"]
