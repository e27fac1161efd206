"""`python -m local` (what `make demo` runs): serve the whole stack on one port until Ctrl-C (loopback only
unless --allow-remote)."""

from __future__ import annotations

import signal
import sys

if __name__ == "__main__":
    # A Ctrl-C while the imports below still run (the first ~0.3 s) raised KeyboardInterrupt out of one of them, with a
    # traceback. It stops quietly instead, as it does once the stack runs (serve() answers it from the model load on).
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

import argparse
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from components.policies import PACKED_CODE, cors_allowed_origins, same_path, stale_artifact_reason
from components.settings import Settings, SettingsError, load_stack_file
from local.arguments import ROOT, is_loopback, parse_args, remote_refusal
from local.gateway import StageThrottle
from local.runtime import (
    STOP_SIGNALS,
    InProcessContainer,
    ModelStartError,
    SageMakerRuntime,
    TorchServeContainer,
)
from local.runtime import log as runtime_log
from local.sandboxes import SandboxStartError
from local.server import (
    DEFAULT_ENDPOINT_NAME,
    Drain,
    DrainingServer,
    StackInfo,
    bind,
    create_app,
    runtime_log_level,
    sandbox_environment,
    stack_region,
    start_sandboxes,
    uvicorn_config,
)


class ZonedFormatter(logging.Formatter):
    """The stack's own lines' time with its UTC offset, as the handler's Powertools lines beside them write theirs
    (2026-12-05 20:24:45,025+0100). Without it, on a machine whose zone is not UTC, they read as another hour than
    those lines, than the events' requestContext.time and than CloudWatch's times, which are UTC."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return super().formatTime(record, datefmt) + time.strftime("%z", self.converter(record.created))


def log_handler() -> logging.Handler:
    handler = logging.StreamHandler()  # stderr, as logging.basicConfig's
    handler.setFormatter(ZonedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def missing_artifact(artifact: Path, named_by: str) -> str:
    """Why `artifact` cannot be served, and what to do: `make model` builds the default one only."""
    if artifact.is_dir():
        return f"model artifact {artifact} ({named_by}) is a directory, not a model.tar.gz"
    if same_path(artifact, ROOT / Settings.model_artifact):
        return f"model artifact {artifact} not found; run `make model`"
    return f"model artifact {artifact} ({named_by}) not found"


def damaged_artifact_advice(artifact: Path, why: str) -> str:
    """What to do about an artifact that does not unpack: `make model` rebuilds the default one, which no longer
    matches its .sha256 (cut short by an interrupted copy, edited), and no other."""
    if same_path(artifact, ROOT / Settings.model_artifact) and why.startswith("cannot unpack the model artifact"):
        return "; run `make model` to rebuild it"
    return ""


def stale_default_artifact(artifact: Path) -> str | None:
    """Why the artifact `make model` writes must not be served: its code/inference.py is not the checkout's (edited,
    or changed by a pull, since it was built), which `python -m local` served without a word."""
    if not same_path(artifact, ROOT / Settings.model_artifact):
        return None  # the user's own: not compared
    return stale_artifact_reason(artifact, ROOT / "model" / PACKED_CODE)


def bind_failure(e: OSError) -> str:
    """Why bind() failed and what to change; another port only when the port is what is wrong. Run by hand or by
    `make demo`, which cannot be told apart here, so both spellings are given."""
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return f"{e.strerror}; give an address of this machine (--host, or make demo HOST=)"
    if e.errno in (errno.EADDRINUSE, errno.EACCES):
        return f"{e.strerror}; try another port (--port, or make demo PORT=)"
    return e.strerror or str(e)


def listening(host: str, port: int, any_interface: bool) -> str:
    if any_interface:
        return f"every interface (REMOTE ACCESS ENABLED: open http://<this machine's address>:{port}/)"
    return f"{host} only{'' if is_loopback(host) else ' (REMOTE ACCESS ENABLED)'}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), handlers=[log_handler()])
    refusal = remote_refusal(args)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    try:
        settings = load_stack_file(args.stack_config)
    except (OSError, SettingsError) as e:  # an OSError's text repeats the path: "[Errno 2] No such file ...: 'x'"
        # So does a file that is no stack config: "x: not valid YAML ...".
        why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e).removeprefix(f"{args.stack_config}: ")
        print(f"error: stack config {args.stack_config}: {why}", file=sys.stderr)
        return 2
    artifact = args.artifact or ROOT / settings.model_artifact
    named_by = "--artifact" if args.artifact else f"modelArtifact in {args.stack_config}"
    try:
        artifact = artifact.resolve()
        found = artifact.is_file()
    # A name too long for the file system; a NUL byte written in the stack file; a symlink loop (RuntimeError from
    # resolve() on Python 3.11 and 3.12, OSError from 3.13).
    except (OSError, ValueError, RuntimeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        print(f"error: model artifact {artifact} ({named_by}) cannot be read: {why}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: {missing_artifact(artifact, named_by)}", file=sys.stderr)
        return 2
    stale = stale_default_artifact(artifact)
    if stale is not None:
        print(f"error: {stale}", file=sys.stderr)
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {bind_failure(e)}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    any_interface = ipaddress.ip_address(host).is_unspecified
    if any_interface:  # 0.0.0.0 or ::: reach ourselves over loopback, tell browsers per request
        host = "::1" if ":" in host else "127.0.0.1"
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown_host}:{port}"
    origins = [base_url]
    if is_loopback(host):  # the same page opened as localhost or 127.0.0.1
        origins.append(f"http://localhost:{port}")
    stack = StackInfo(
        base_url=base_url,
        endpoint_name=settings.endpoint_name or DEFAULT_ENDPOINT_NAME,
        settings=settings,
        allowed_origins=cors_allowed_origins(origins, settings.cors_extra_origins),
        any_interface=any_interface,
    )
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        return serve(args, settings, artifact, sock, stack, listening(host, port, any_interface))
    finally:
        for sig, handler in previous.items():  # main() may run inside a longer-lived process (the tests)
            signal.signal(sig, handler)


def throttled(throttle: StageThrottle | None) -> str:
    if throttle is None:
        return "off (--no-stage-throttle): /predict takes any rate"
    return (
        f"/predict at {throttle.rate:g} requests/s, bursts of {throttle.burst} (apiThrottleRateLimit/BurstLimit), "
        "then API Gateway's 429 (STAGE_THROTTLE=0 or --no-stage-throttle lifts it)"
    )


def say(message: str) -> None:
    """Print to a terminal that may be gone (after SIGHUP, writing to it fails with EIO)."""
    with contextlib.suppress(OSError):
        print(message, flush=True)


class GraceOverrun(logging.Filter):
    """uvicorn's `ERROR: Cancel N running task(s), timeout graceful shutdown exceeded`, logged when requests outlive
    a stop's grace period, said instead as a line of the stop's own: the stop was asked for, the stack answers those
    requests API Gateway's 503, and N counted the runtime-tier calls of the /predict handlers too (5 for 3 requests).
    Every other record of uvicorn's passes."""

    def __init__(self, grace_s: float, announce: Callable[[str], None], drain: Drain | None = None) -> None:
        super().__init__()
        self.grace_s = grace_s
        self.announce = announce
        self.drain = drain

    def filter(self, record: logging.LogRecord) -> bool:
        if not (str(record.msg).startswith("Cancel ") and "timeout graceful shutdown exceeded" in str(record.msg)):
            return True
        # Nothing was cut short, unless the drain did it (DrainingServer: those /predict requests may be over by now).
        if record.args and record.args[0] == 0 and not (self.drain and self.drain.cut_short):
            return False
        self.announce(
            f"stopping: the requests still running after {self.grace_s:g} s are cut short "
            '(API Gateway\'s 503 {"message":"Service Unavailable"})'
        )
        return False


class AcceptRefusals(logging.Filter):
    """asyncio's `socket.accept() out of system resource`, logged with a traceback when the open-file limit refuses a
    connection, at most once a `every_s` seconds, without the traceback, saying how many it left out. Past EMFILE,
    asyncio's accept loop (CPython 3.11-3.13, selector_events._accept_connection) logs it once per slot of uvicorn's
    backlog (2048) and arms as many retries, each of which logs as many again: tens of thousands of tracebacks a
    second, for a stack that serves again once the connections close. Every other record passes."""

    def __init__(self, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self.last: float | None = None
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        now = self.clock()
        if self.last is not None and now - self.last < self.every_s:
            self.left_out += 1
            return False
        self.last, left_out, self.left_out = now, self.left_out, 0
        record.exc_info = record.exc_text = None
        record.msg = (
            "socket.accept() out of system resource: the open-file limit refuses new connections until some close"
            + (f" ({left_out} more such refusals not logged)" if left_out else "")
        )
        record.args = ()
        return True


def serve(
    args: argparse.Namespace, settings: Settings, artifact: Path, sock: socket.socket, stack: StackInfo, where: str
) -> int:
    """Load the model, start the sandboxes and serve until stopped; every exit path cleans up."""
    raise_open_file_limit()
    region = stack_region(args.stack_config)  # read now: once the model is loaded, only the `try` below may run
    # SIGTERM and SIGHUP (a closed terminal, a dropped ssh session) unwind like Ctrl-C, through every `finally`:
    # the unpacked model, the sandboxes and TorchServe's JVM go with the process, even while the model loads.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(0))
    say(f"loading {artifact.name} into the {args.runtime} runtime tier ...")
    try:
        container = (TorchServeContainer if args.runtime == "torchserve" else InProcessContainer)(artifact)
    except ModelStartError as e:
        print(
            f"error: the model endpoint cannot start: {e}{damaged_artifact_advice(artifact, str(e))}", file=sys.stderr
        )
        sock.close()
        return 1
    except (KeyboardInterrupt, SystemExit):  # stopped while the model loads: the same clean stop as once it serves
        sock.close()
        say("stopped")
        return 0
    runtime = sandboxes = overrun = None
    uvicorn_log = logging.getLogger("uvicorn.error")
    refusals = AcceptRefusals()
    logging.getLogger("asyncio").addFilter(refusals)
    try:  # a stop signal from here on lands in this `try`, whose `finally` closes the loaded model
        runtime = SageMakerRuntime(container, stack.endpoint_name, settings.max_concurrency, region=region)
        sandboxes = start_sandboxes(stack, region)
        runtime_log.setLevel(
            runtime_log_level(sandbox_environment(stack, region, os.environ), logging.getLogger().getEffectiveLevel())
        )
        throttle = (
            StageThrottle(settings.api_throttle_rate_limit, settings.api_throttle_burst_limit)
            if args.stage_throttle
            else None
        )
        drain = Drain()
        app = create_app(
            stack, runtime, sandboxes, fault_injection=args.fault_injection, stage_throttle=throttle, drain=drain
        )
        server = DrainingServer(
            uvicorn_config(app, args.log_level),
            drain,
            announce=say,
            give_up=lambda: sandboxes.shutdown(end_invocations=True),
        )
        overrun = GraceOverrun(server.config.timeout_graceful_shutdown, say, drain)
        uvicorn_log.addFilter(overrun)
        # uvicorn shuts down gracefully on SIGINT and SIGTERM while it serves, then raises them again with these
        # handlers back: exit through `finally` so the sandboxes stop too, without a KeyboardInterrupt traceback
        # for the Ctrl-C that ends `make demo`. It does not handle SIGHUP: give it the same graceful shutdown.
        # Installed before it runs: a signal that lands while it builds its event loop only asks it to stop
        # (raising there left a half-built loop, whose __del__ printed a traceback).
        for sig in STOP_SIGNALS:
            signal.signal(sig, server.handle_exit)
        base_url = stack.base_url
        say(
            f"\nmobilenet-serverless local stack (config {args.stack_config.name}, model backend {container.backend})\n"
            f"  site      {base_url}/\n"
            f"  api       POST {base_url}/predict\n"
            f"  runtime   POST {base_url}/endpoints/{stack.endpoint_name}/invocations "
            f"(MaxConcurrency {settings.max_concurrency}, serverless memory {settings.memory_size_mb} MB)\n"
            f"  throttle  {throttled(throttle)}\n"
            f"  listening on {where}; Ctrl-C stops\n"
        )
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            server.run(sockets=[sock])
        say("stopped")
    except (KeyboardInterrupt, SystemExit):  # stopped while the sandboxes start
        say("stopped")
    except Exception as e:  # the handler refused its configuration at import (a shell's LOG_LEVEL, aws:region)
        if sandboxes is not None:
            raise
        first = (str(e).splitlines() or [""])[0]
        if isinstance(e, SandboxStartError):  # not the handler's doing (a TMPDIR too long, the OS refusing them)
            first = first.removeprefix("a Lambda sandbox could not start: ")  # said once is enough
            print(f"error: the Lambda sandboxes cannot start: {first}", file=sys.stderr)
        else:
            print(f"error: the Lambda handler cannot start: {type(e).__name__}: {first}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C (or signal) must not cut the cleanup short and leave the JVM or the model behind. A
        # do-nothing handler, not SIG_IGN: an ignored signal would stay ignored in any process started meanwhile.
        for sig in STOP_SIGNALS:
            signal.signal(sig, lambda *_: None)
        if sandboxes is not None:
            sandboxes.shutdown()
        if runtime is not None:
            runtime.close()  # the container with it
        else:
            container.close()
        sock.close()
        logging.getLogger("asyncio").removeFilter(refusals)  # main() may run inside a longer-lived process
        if overrun is not None:  # main() may run inside a longer-lived process (the tests)
            uvicorn_log.removeFilter(overrun)
        runtime_log.setLevel(logging.NOTSET)
    return 0


MACOS_OPEN_MAX = 10240  # <sys/syslimits.h>


def raise_open_file_limit() -> None:
    """Every connection holds a descriptor: take the hard limit rather than a desktop's usual 1024."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        # macOS refuses more than its per-process cap (kern.maxfilesperproc, 10240 on many Macs), which its hard
        # limit ("unlimited") does not show: the demo kept the 256 it starts with. Then OPEN_MAX, as its setrlimit(2)
        # advises.
        for limit in dict.fromkeys((target, min(target, MACOS_OPEN_MAX))):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), hard))
                return
            except (ValueError, OSError):
                continue


if __name__ == "__main__":
    sys.exit(main())
