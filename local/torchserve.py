"""Serve a model.tar.gz through AWS's own serving stack: sagemaker-pytorch-inference + TorchServe, on loopback.

This is the software inside the SageMaker PyTorch container, run without the container: the toolkit's
`serve` entry (`serving.main()`), its TorchServe config, its handler service calling our model_fn/input_fn/
predict_fn/output_fn. Everything lives in one temp dir (SAGEMAKER_BASE_DIR=<tmp>, model at <tmp>/model) and
every listener binds 127.0.0.1. Three deliberate changes to the toolkit, all made in `_ENTRY` below:
its config file goes into the temp dir (it hard-codes /etc) and is written in ASCII (the JVM reads it as
ISO-8859-1), and it looks for "its" TorchServe only in its own process group (it scans every process on the
machine and refuses to start beside any other TorchServe, including a stale one from a crashed run).

    python -m local.torchserve model/dist/model.tar.gz [--port 8080]
"""

from __future__ import annotations

import http.client
import io
import locale
import logging
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

from components.command_line import OneLineErrorParser, path_argument, port_number, seconds
from components.policies import TORCHSERVE_ENV, TORCHSERVE_JAVA_OPTIONS
from local.runtime import (
    MODEL_DIR_PREFIX,
    extract_artifact,
    hold_owner_lock,
    no_room_to_unpack,
    out_of_space,
    stop_signals_held,
    sweep_orphaned_model_dirs,
)

# TorchServe is this process's own child on 127.0.0.1: never reached through a proxy. urlopen sends even loopback
# through the shell's HTTP_PROXY/http_proxy unless NO_PROXY names the exact host, and a corporate proxy's 502 to
# every /ping made `make demo RUNTIME=torchserve` wait its whole start-up timeout and fail, with TorchServe ready.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ASCII only, comments too: the toolkit's Python decodes it, a command-line argument, in its own locale, which
# utf8_locale may make C.UTF-8 where this process's is not.
_ENTRY = r"""
import os, shutil, signal, sys, threading, time
import psutil
from sagemaker_pytorch_serving_container import serving, torchserve

torchserve.TS_CONFIG_FILE, launcher = sys.argv[1], int(sys.argv[2])

def own_ts_server_process():
    for _ in range(150):
        for proc in psutil.process_iter(["cmdline", "status"]):
            try:
                if (torchserve.TS_NAMESPACE in (proc.info["cmdline"] or []) and proc.info["status"] != "zombie"
                        and os.getpgid(proc.pid) == os.getpgid(0)):
                    return proc
            except (psutil.Error, OSError):
                pass
        time.sleep(0.2)
    raise RuntimeError("TorchServe's java frontend did not start (see the lines above)")

def watch_launcher():  # the launcher died without stop(): take the whole group down rather than leak java
    while os.getppid() == launcher:
        time.sleep(1)
    os.killpg(0, signal.SIGTERM)
    time.sleep(10)
    os.killpg(0, signal.SIGKILL)

torchserve._retrieve_ts_server_process = own_ts_server_process

# The JVM reads the config as ISO-8859-1 (java.util.Properties), and the toolkit names its handler there by path:
# under a checkout whose path is not ASCII the worker was sent a path that does not exist, and died at every start.
# Written in ASCII, anything else as Java's \uXXXX escapes of its UTF-16 code units.
def java_properties(text):
    raw = text.encode("utf-16-be")
    units = (int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
    return "".join(chr(unit) if unit < 0x80 else "\\u%04x" % unit for unit in units)

generate_properties = torchserve._generate_ts_config_properties
torchserve._generate_ts_config_properties = lambda handler: java_properties(generate_properties(handler))
threading.Thread(target=watch_launcher, daemon=True).start()
try:
    serving.main()
finally:
    if os.getppid() != launcher:  # orphaned: nobody else will remove the temp dir
        shutil.rmtree(os.getcwd(), ignore_errors=True)
"""

log = logging.getLogger("local.torchserve")

# The last line of a Python traceback: "inference.ModelLoadError: cannot read model metadata at /x".
_ERROR_LINE = re.compile(r"\b([A-Z]\w*(?:Error|Exception)): (.+)$")
# What TorchServe's Python worker logs when model_fn raised a RuntimeError (ModelLoadError is one) ...
_FAILED_LOAD = re.compile(r"Failed to load model \S+, exception (.+)$")
# ... and, for any exception, when it exits.
WORKER_DIED = "Backend worker process died."


class TorchServeError(RuntimeError):
    """The stack did not start or did not become ready; the message carries the cause and the log tail."""


class TorchServeDown(TorchServeError):
    """A started stack stopped serving (its JVM died) or is being replaced: retryable, and not a timeout."""


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open until every one is picked, so none repeats)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def java_tool_options(system: str) -> str:
    """The JVM's options on the OS `system` (platform.system()). The toolkit's config gives TorchServe's JVM
    -XX:-UseContainerSupport, a flag only Linux's JVM has: elsewhere (macOS) the JVM refused to start ("Unrecognized
    VM option 'UseContainerSupport'") and the stack waited for a frontend that never came. There the JVM is told to
    ignore the flags it lacks."""
    return (
        TORCHSERVE_JAVA_OPTIONS if system == "Linux" else f"{TORCHSERVE_JAVA_OPTIONS} -XX:+IgnoreUnrecognizedVMOptions"
    )


MANAGEMENT_SOCKET = "management.sock"
# Where TorchServe can listen on a Unix socket: Netty needs its native transport for one, and TorchServe 0.12's jar
# carries epoll's for Linux x86_64 and aarch64 and kqueue's for macOS x86_64 only (not Apple silicon's).
UNIX_SOCKET_PLATFORMS = frozenset({("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "x86_64")})
UNIX_SOCKET_PATH_MAX = 103  # bytes: sockaddr_un's sun_path is 104 on macOS (108 on Linux), its NUL included


def management_address(base: Path, port: int, system: str, machine: str) -> str:
    """TorchServe's management API: a socket in `base`, which only this user can open, where the platform has one
    (UNIX_SOCKET_PLATFORMS) and its path fits; else the inference port, where the toolkit puts it. There TorchServe
    checks no Host and the toolkit leaves its token authorization off: a page whose DNS name is re-pointed at
    127.0.0.1 could list the model and set its worker count, each worker another copy of the model. Nothing here
    uses the API."""
    path = base / MANAGEMENT_SOCKET
    if (system, machine) in UNIX_SOCKET_PLATFORMS and len(os.fsencode(path)) <= UNIX_SOCKET_PATH_MAX:
        return f"unix:{path}"
    return f"http://127.0.0.1:{port}"


def serving_env(base: Path, port: int, metrics_port: int, grpc_ports: tuple[int, int]) -> dict[str, str]:
    """What the toolkit and TorchServe read: every path under `base`, every listener on 127.0.0.1."""
    tmp, logs = base / "tmp", base / "logs"
    return {
        "SAGEMAKER_BASE_DIR": str(base),  # the toolkit serves <base>/model
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        # The toolkit writes 0.0.0.0 listeners; its config sets enable_envvars_config=true, so TS_* env wins.
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port}",
        "TS_MANAGEMENT_ADDRESS": management_address(base, port, platform.system(), platform.machine()),
        "TS_METRICS_ADDRESS": f"http://127.0.0.1:{metrics_port}",
        "TS_GRPC_INFERENCE_ADDRESS": "127.0.0.1",
        "TS_GRPC_MANAGEMENT_ADDRESS": "127.0.0.1",
        "TS_GRPC_INFERENCE_PORT": str(grpc_ports[0]),
        "TS_GRPC_MANAGEMENT_PORT": str(grpc_ports[1]),
        "TS_DISABLE_SYSTEM_METRICS": "true",  # a psutil sweep every minute buys nothing here
        # TorchServe's pid file, worker sockets and the JVM's tmpdir follow these.
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "TMP": str(tmp),
        "LOG_LOCATION": str(logs),
        "METRICS_LOCATION": str(logs),
        # The JVM ignores cgroups (-XX:-UseContainerSupport) and would size its heap from the host: the deployed
        # container's cap, so that what is measured here is what runs there.
        "JAVA_TOOL_OPTIONS": java_tool_options(platform.system()),
        **TORCHSERVE_ENV,  # the deployed workers and response timeout
        "OMP_NUM_THREADS": "2",
        "PYTHONUNBUFFERED": "1",
    }


# What the C library, and so the JVM, calls ASCII: glibc's name, and macOS's.
ASCII_CODESETS = frozenset({"ANSI_X3.4-1968", "US-ASCII", "ASCII"})


def utf8_locale(codeset: str) -> dict[str, str]:
    """LC_ALL=C.UTF-8 where the locale's charset (`codeset`, see ctype_codeset) is ASCII: Python takes the C locale
    for UTF-8 (PEP 538/540), the JVM does not, and with LC_ALL=C it could not decode its own class path in a venv
    under a path that is not ASCII ("Could not find or load main class org.pytorch.serve.ModelServer"). So does a
    locale this machine does not have (LANG=en_US.UTF-8 where it is not generated, or the LC_CTYPE=UTF-8 an ssh
    session from a Mac sends): the C library falls back to the C locale. Any other locale is kept."""
    return {"LC_ALL": "C.UTF-8"} if codeset.upper() in ASCII_CODESETS else {}


def ctype_codeset(env: dict[str, str]) -> str:
    """The charset `env`'s locale gives a program that sets it (as the JVM does), as the C library names it; one
    this machine does not have is the C locale's. The C library judges the name, briefly, in this process."""
    name = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "C"  # an empty one is unset, as for glibc
    previous = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, name)
        return locale.nl_langinfo(locale.CODESET)
    except locale.Error:  # no such locale: the JVM's setlocale fails the same way and it runs in the C locale
        return "ANSI_X3.4-1968"
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)


def last_error(log_lines: list[str]) -> str | None:
    """The last 'SomeError: message' in the log, without the log prefix."""
    for line in reversed(log_lines):
        match = _ERROR_LINE.search(line)
        if match:
            return f"{match.group(1)}: {match.group(2).strip()}"
    return None


def worker_death_cause(log_lines: list[str]) -> str | None:
    """Why the first worker died (e.g. model_fn's ModelLoadError naming the path); None while none has died."""
    for i, line in enumerate(log_lines):
        failed = _FAILED_LOAD.search(line)
        if failed:  # the message itself; the traceback with the class name may still be on its way
            message = failed.group(1).strip()
            named = [m.group(0) for m in map(_ERROR_LINE.search, log_lines[i:]) if m and m.group(2).strip() == message]
            return named[0] if named else message
        if WORKER_DIED in line:
            # TorchServe logs the death with exc_info (ts/model_service_worker.py): its traceback follows the line,
            # and that traceback's last error is the cause. Without one, an error logged before it explains it.
            after = _traceback_after(log_lines[i + 1 :])
            return last_error(after) or last_error(log_lines[:i]) or "the worker died without logging an error"
    return None


_TRACEBACK_PARTS = ("Traceback (most recent call last)", "  ", "The above exception", "During handling of the above")


def _traceback_after(log_lines: list[str]) -> list[str]:
    """The traceback that starts on the first of `log_lines`, as far as it goes: its frames, its error lines and
    the lines that chain them; nothing when the first line starts none."""
    if not log_lines or "Traceback (most recent call last)" not in log_lines[0]:
        return []
    block = []
    for line in log_lines:
        message = line.split("MODEL_LOG - ", 1)[-1]
        if not (message == "" or message.startswith(_TRACEBACK_PARTS) or _ERROR_LINE.search(message)):
            break
        block.append(line)
    return block


def connection_lost(error: Exception) -> bool:
    """Refused or dropped (nothing listens any more: the JVM died), as opposed to timed out.

    urllib wraps a failed connect in URLError(reason=...); a connection dropped mid-answer surfaces as
    RemoteDisconnected / ConnectionResetError (ConnectionErrors both), or IncompleteRead mid-body.
    """
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    return isinstance(reason, ConnectionError | http.client.HTTPException)


def describe_exit(code: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL', from a Popen returncode."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with code {code}"


def _warmup_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 96, 64)).save(buf, "JPEG")
    return buf.getvalue()


def _group_processes(pgid: int) -> list:
    """The live (non-zombie) processes of process group `pgid`: the toolkit, java and its workers."""
    import psutil  # a dependency of the toolkit and TorchServe

    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (psutil.Error, OSError):
            pass
    return members


def _group_alive(pgid: int) -> bool:
    return bool(_group_processes(pgid))


def _stop(proc: subprocess.Popen, base: Path, grace: float = 15) -> None:
    """SIGTERM exactly the group we started (java, its workers, the toolkit), SIGKILL it after `grace`.

    A second Ctrl-C, or the SIGTERM make passes on to `make demo` after its group got one, waits until the group is
    gone and its directory removed (it often lands here: this runs while the first one unwinds a start)."""
    with stop_signals_held():
        deadline = time.monotonic() + grace
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
                proc.poll()  # reap the toolkit's process so it stops counting
            if _group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)


class TorchServeEndpoint:
    """One SageMaker-style endpoint (/ping, /invocations) for `artifact`, as a context manager."""

    def __init__(
        self, artifact: Path, *, port: int | None = None, startup_timeout: float = 120, env: dict | None = None
    ):
        self.artifact = Path(artifact)
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.base: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._finalizer = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TorchServeEndpoint:
        if self._proc is not None:
            raise TorchServeError("endpoint already started")
        if not shutil.which("java") and not os.environ.get("JAVA_HOME"):  # TorchServe honours either
            raise TorchServeError("java not found on PATH (nor JAVA_HOME): TorchServe needs Java 17 or newer")
        if self.port and not _port_free(self.port):
            raise TorchServeError(f"port {self.port} on 127.0.0.1 is in use")
        try:
            self.base = Path(tempfile.mkdtemp(prefix="torchserve-"))
        except OSError as e:  # a TMPDIR with not a block or inode free: the line the unpack gives one with too few
            if out_of_space(e):
                raise TorchServeError(no_room_to_unpack(self.artifact, Path(tempfile.gettempdir()), e)) from e
            raise
        try:
            for sub in ("tmp", "logs"):
                (self.base / sub).mkdir()
            extract_artifact(self.artifact, self.base, TorchServeError)
        # A refused artifact, or Ctrl-C or `make demo`'s SIGTERM/SIGHUP (SystemExit): nothing runs yet for stop().
        except BaseException as e:
            shutil.rmtree(self.base, ignore_errors=True)
            if out_of_space(e):  # its folders, made before the unpack (which names the directory itself)
                raise TorchServeError(no_room_to_unpack(self.artifact, self.base.parent, e)) from e
            raise
        ports = free_ports(4)
        self.port = self.port or ports[0]
        env = {**os.environ, **serving_env(self.base, self.port, ports[1], (ports[2], ports[3])), **self.extra_env}
        env.update(utf8_locale(ctype_codeset(env)))
        # The toolkit runs the `torchserve` script by name: find the one installed beside this Python.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        config = self.base / "sagemaker-ts.properties"
        with open(self.base / "serve.log", "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(config), str(os.getpid())],
                cwd=self.base,  # the toolkit's model store is <cwd>/.sagemaker/ts/models
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals exactly this group
            )
        self._finalizer = weakref.finalize(self, _stop, self._proc, self.base)
        return self

    def wait_ready(self) -> None:
        """Bounded: /ping 200 and a warm-up invocation answered 200, i.e. a worker has run model_fn.

        /ping says Healthy even when every worker dies in model_fn, and a request queued behind a dying worker
        waits for its next restart (back-off grows to minutes), so the log is read for a dead worker as well.
        """
        deadline = time.monotonic() + self.startup_timeout
        jpeg = _warmup_jpeg()
        while True:
            if self._proc.poll() is not None:
                self._fail(f"the serving stack exited with code {self._proc.returncode} before it was ready")
            self._await_worker_death(deadline=0)
            if self._request("GET", "/ping", timeout=2)[0] == 200:
                status, _, body = self._request(
                    "POST", "/invocations", jpeg, {"Content-Type": "image/jpeg", "Accept": "application/json"}, 5
                )
                if status == 200:
                    return
                if status not in (0, 503):  # 0: still queued behind the loading worker; 503: no worker yet
                    self._await_worker_death(deadline=time.monotonic() + 5)  # the worker's log lags its death
                    self._fail(f"warm-up invocation got {status}: {body[:200]!r}")
            if time.monotonic() > deadline:
                self._fail(f"not ready after {self.startup_timeout:g} s")
            time.sleep(0.25)

    def _await_worker_death(self, deadline: float) -> None:
        """Raise naming the cause once the log shows a worker died (checks once when the deadline has passed)."""
        while True:
            cause = worker_death_cause(self._log_lines())
            if cause:
                self._fail(f"the model server worker died loading the model (model_fn failed): {cause}", False)
            if time.monotonic() >= deadline:
                return
            time.sleep(0.2)

    def _fail(self, what: str, add_last_error: bool = True) -> None:
        error = last_error(self._log_lines()) if add_last_error else None
        raise TorchServeError(
            f"{what}{f' (last error logged: {error})' if error else ''}\n"
            f"--- last lines of {self.base}/serve.log ---\n{self.log_tail(40)}"
        )

    def processes(self) -> list:
        """The serving stack's live processes (toolkit launcher, JVM, worker): the group it was started in."""
        if self._proc is None:
            raise TorchServeError("endpoint not started")
        return _group_processes(self._proc.pid)  # start_new_session: the launcher leads the group

    def memory_mb(self) -> float:
        """Memory of the whole serving stack: its processes' PSS summed.

        PSS, not RSS: the launcher and the worker map the same torch libraries, which RSS would count twice.
        """
        import psutil

        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_full_info().pss
            except (psutil.Error, OSError):  # exited since it was listed
                continue
        return total / 2**20

    def invoke(
        self, body: bytes, content_type: str, accept: str = "application/json"
    ) -> tuple[int, dict[str, str], bytes]:
        """The answer, status 0 for a timeout; raises TorchServeDown when the connection is refused or dropped."""
        headers = {"Content-Type": content_type, "Accept": accept}
        return self._request("POST", "/invocations", body, headers, down_raises=True)

    def exit_code(self) -> int | None:
        """The toolkit process's exit code (it exits when the JVM does), None while it runs; reaps it."""
        return self._proc.poll() if self._proc is not None else None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict | None = None,
        timeout=60,
        down_raises: bool = False,
    ):
        # Our own loopback http URL, never user input.
        req = urllib.request.Request(self.url + path, data=body, headers=headers or {}, method=method)  # noqa: S310
        try:
            with _DIRECT.open(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()
        except (OSError, http.client.HTTPException) as e:  # not listening yet, reset while starting, or a timeout
            if down_raises and connection_lost(e):  # once it served, a refusal means the JVM is gone
                raise TorchServeDown(f"TorchServe's JVM no longer answers at {self.url}: {e}") from e
            return 0, {}, b""

    def _log_lines(self) -> list[str]:
        try:
            return (self.base / "serve.log").read_text(errors="replace").splitlines()
        except (OSError, TypeError):  # TypeError: not started, no base dir
            return []

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self._log_lines()[-n:])

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs once; also runs at interpreter exit if nobody called stop()

    def __enter__(self) -> TorchServeEndpoint:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ManagedEndpoint:
    """A TorchServeEndpoint replaced when it dies, as a serverless endpoint replaces a dead instance.

    A dead stack (the toolkit exited, or nothing answers) is noticed by the invocation that meets it: one ERROR
    with the log tail, then a background thread reaps the dead process group, removes its temp dir and starts
    a fresh stack. Until that one is ready, invoke() raises TorchServeDown at once (the caller answers a
    retryable "not ready", not a timeout); a failed replacement is logged and tried again by an invocation
    `retry_s` later. Thread-safe: invocations run concurrently.
    """

    def __init__(self, artifact: Path, *, startup_timeout: float = 120, retry_s: float = 10):
        self.artifact = Path(artifact)
        self.startup_timeout = startup_timeout
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._current: TorchServeEndpoint | None = None  # None while down
        self._starting: TorchServeEndpoint | None = None  # so that stop() can stop it too
        self._replacer: threading.Thread | None = None
        self._next_try = 0.0
        self._closed = False
        self._copy_dir: Path | None = None
        self._copy_lock: int | None = None

    def start(self) -> ManagedEndpoint:
        """The first stack, started and awaited in the caller's thread: its failure is the caller's. Replacements
        start from a copy of the artifact taken now: the file itself may be rebuilt meanwhile (`make model INT8=1`
        in another terminal) or removed (`make clean`), and a replaced instance serves the model it was made with.
        The first stack unpacks that copy too: a rebuild landing between the copy and its unpack had it serve
        another model than every stack that replaced it."""
        given = self.artifact
        copy = self._keep_a_copy()
        self.artifact = copy or given
        try:
            self._current = self._launch()
        except TorchServeError as e:
            self._drop_copy()
            self.artifact = given
            # The copy went in, the unpack did not: the figure counts both, as the start needs both.
            if copy is not None and out_of_space(e.__cause__):
                raise self._no_room(e.__cause__) from e.__cause__
            if copy is not None and str(copy) in str(e):  # a damaged artifact: named as given, not as the copy
                raise TorchServeError(str(e).replace(str(copy), str(given))) from e.__cause__
            raise
        except BaseException:
            self._drop_copy()
            self.artifact = given
            raise
        return self

    def _keep_a_copy(self) -> Path | None:
        """A copy of the artifact in a model directory of this process, locked: the next start removes it if this
        process is killed outright, as this start removes those of stacks killed so."""
        sweep_orphaned_model_dirs()
        try:
            with stop_signals_held():
                self._copy_dir = Path(tempfile.mkdtemp(prefix=f"{MODEL_DIR_PREFIX}{os.getpid()}-"))
            self._copy_lock = hold_owner_lock(self._copy_dir)
            copy = self._copy_dir / self.artifact.name
            shutil.copyfile(self.artifact, copy)
            return copy
        except OSError as e:
            self._drop_copy()
            if out_of_space(e):
                raise self._no_room(e) from e
            return None  # no file to copy: the first start says what is wrong with it
        except BaseException:
            self._drop_copy()
            raise

    def _no_room(self, error: OSError) -> TorchServeError:
        """A TMPDIR without room for the copy and the unpacked model together: the line's figure counts both."""
        return TorchServeError(no_room_to_unpack(self.artifact, Path(tempfile.gettempdir()), error, copied=True))

    def _drop_copy(self) -> None:
        if self._copy_dir is not None:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            self._copy_dir = None
        if self._copy_lock is not None:
            os.close(self._copy_lock)
            self._copy_lock = None

    def invoke(
        self, body: bytes, content_type: str, accept: str = "application/json"
    ) -> tuple[int, dict[str, str], bytes]:
        endpoint = self._current
        if endpoint is None:
            self._replace(None)  # after a failed replacement, once retry_s has passed
            raise TorchServeDown("TorchServe is being replaced")
        code = endpoint.exit_code()
        if code is not None:
            self._lost(endpoint, f"the toolkit process {describe_exit(code)} (it exits when TorchServe's JVM does)")
            raise TorchServeDown("TorchServe died; it is being replaced")
        try:
            return endpoint.invoke(body, content_type, accept)
        except TorchServeDown as e:
            self._lost(endpoint, str(e))
            raise

    def _lost(self, endpoint: TorchServeEndpoint, why: str) -> None:
        with self._lock:
            if self._current is not endpoint:  # closed, or another invocation met the dead stack first
                return
            self._current = None
        log.error(
            "TorchServe stopped serving (%s); starting a new one (invocations get 'not ready' meanwhile)\n"
            "--- last lines of %s/serve.log ---\n%s",
            why,
            endpoint.base,
            endpoint.log_tail(20),
        )
        self._replace(endpoint)

    def _replace(self, dead: TorchServeEndpoint | None) -> None:
        with self._lock:
            waiting = dead is None and time.monotonic() < self._next_try
            if self._closed or self._replacer is not None or waiting:
                return
            # A daemon: an exit without stop() must not wait for a start; the group watches its launcher anyway.
            self._replacer = threading.Thread(
                target=self._replacement, args=(dead,), name="torchserve-replace", daemon=True
            )
            self._replacer.start()

    def _replacement(self, dead: TorchServeEndpoint | None) -> None:
        fresh = None
        try:
            if dead is not None:
                dead.stop()  # reap its group and remove its temp dir before another JVM starts
            fresh = self._launch()
        except Exception as e:  # never escapes the thread: invocations keep getting "not ready"; say why
            if not self._closed:
                log.error(
                    "TorchServe could not be restarted (an invocation %.0f s on tries again): %s", self.retry_s, e
                )
        with self._lock:
            self._replacer = None
            if fresh is None:
                self._next_try = time.monotonic() + self.retry_s
            elif not self._closed:
                self._current, fresh = fresh, None
                log.warning("TorchServe is serving again at %s", self._current.url)
        if fresh is not None:  # closed while it started
            fresh.stop()

    def _launch(self) -> TorchServeEndpoint:
        endpoint = TorchServeEndpoint(self.artifact, startup_timeout=self.startup_timeout)
        with self._lock:
            if self._closed:
                raise TorchServeDown("the endpoint is closed")
            self._starting = endpoint
        try:
            endpoint.start()
            if self._closed:  # stop() ran while the process was being created and found nothing to stop
                raise TorchServeDown("the endpoint is closed")
            endpoint.wait_ready()  # fails fast if stop() stops it meanwhile
            return endpoint
        except BaseException:  # Ctrl-C while it starts, too: never leave the JVM behind
            endpoint.stop()
            raise
        finally:
            with self._lock:
                self._starting = None

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            endpoints, replacer = (self._current, self._starting), self._replacer
            self._current = None
        for endpoint in endpoints:
            if endpoint is not None:
                endpoint.stop()
        if replacer is not None:
            replacer.join(timeout=30)  # it is stopping the dead stack, or giving up on the one stop() stopped
        self._drop_copy()


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(prog="python -m local.torchserve", description=__doc__.split("\n")[0])
    parser.add_argument("artifact", type=path_argument, help="the model.tar.gz to serve")
    parser.add_argument("--port", type=port_number, help="default: a free port (as 0), printed at start")
    parser.add_argument(
        "--startup-timeout", type=seconds, default=120, help="seconds for /ping and a warm-up answer (default 120)"
    )
    args = parser.parse_args(argv)
    try:
        with TorchServeEndpoint(args.artifact, port=args.port, startup_timeout=args.startup_timeout) as endpoint:
            print(f"serving {args.artifact} at {endpoint.url}/invocations (ping: {endpoint.url}/ping); Ctrl-C stops")
            print(f"logs: {endpoint.base}/serve.log")
            while endpoint._proc.poll() is None:
                time.sleep(1)
            print(endpoint.log_tail(), file=sys.stderr)
            return 1
    except TorchServeError as e:
        print(e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
