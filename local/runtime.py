"""SageMaker Runtime emulation: `POST /endpoints/{name}/invocations` in front of a model container.

Two layers, like AWS:
- a *container* runs the artifact's own ``code/inference.py`` the way the PyTorch inference toolkit does
  (``model_fn`` once, then ``input_fn -> predict_fn -> output_fn``; an error keeps its status only if it is a
  toolkit error, and its body is the message followed by the traceback, as the toolkit writes it);
- the *front* behaves like a serverless endpoint: unknown endpoint name -> ValidationError, a target it does not
  have (TargetModel, InferenceComponentName, TargetContainerHostname) -> ValidationError, 4 MB request cap,
  MaxConcurrency (excess -> ThrottlingException, HTTP 400), 60 s invocation timeout, and any non-2xx answer
  of the container wrapped as ``ModelError`` (HTTP 424) with ``OriginalStatusCode`` / ``OriginalMessage``.
The wire format is what botocore parses (``x-amzn-ErrorType`` + JSON body), so boto3 and the AWS CLI work.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import fcntl
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import signal
import stat
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from components.policies import endpoint_log_group_name, read_to_the_end
from components.settings import partition_for_region
from handlers.proxy_core import SAGEMAKER_SERVERLESS_MAX_BYTES

ACCOUNT = "000000000000"
# One line per InvokeEndpoint answer (answer_line), the SageMaker side of the handler's "request done" line.
log = logging.getLogger("local.runtime")
MAX_PAYLOAD_BYTES = SAGEMAKER_SERVERLESS_MAX_BYTES  # SageMaker Serverless Inference request limit
MAX_HEADER_CHARS = 1024  # InvokeEndpoint ContentType / Accept / CustomAttributes
# InvokeEndpoint's EndpointName, as botocore's sagemaker-runtime model gives it. AWS checks it; botocore does not.
ENDPOINT_NAME_MAX_CHARS = 63
ENDPOINT_NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
_ENDPOINT_NAME_RE = re.compile(ENDPOINT_NAME_PATTERN + r"\Z")
INVOCATION_TIMEOUT_S = 60.0
INVOCATION_TIMEOUT_MESSAGE = (
    b"Your invocation timed out while waiting for a response from container primary. Review the latency metrics "
    b"for each container in Amazon CloudWatch, resolve the issue, and try again."
)
DEFAULT_ACCEPT = "application/json"  # the toolkit's SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT default
# The toolkit decodes exactly these Content-Type values to str (sagemaker_inference.content_types.UTF8_TYPES, compared
# as whole strings): "application/json; charset=utf-8" or "Application/JSON" reach input_fn as bytes, undecoded.
UTF8_TYPES = ("application/json", "text/csv")
# The console's host in each partition (a ModelError links its log group there): what aws-cli's `aws console` builds
# (awscli/customizations/console.py). The ISO partitions' consoles are not public: they keep the commercial host.
CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
    "aws-eusc": "console.amazonaws-eusc.eu",
}


class ModelStartError(RuntimeError):
    """The container could not load the model; the message names the cause."""


@dataclass
class ContainerResponse:
    status: int
    content_type: str
    body: bytes


class Container(Protocol):
    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse: ...

    def close(self) -> None: ...


FORM_URLENCODED = "application/x-www-form-urlencoded"
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def form_decode_error(body: bytes) -> str | None:
    """What Netty's form decoder, in TorchServe's frontend, says of a form body it cannot decode (None: it can), as
    TorchServe 0.12's HttpPostRequestDecoder reads one: names end at '=' or '&', values at '&', a line feed or a
    carriage return and line feed (the rest is its epilogue, never read); in a value, a carriage return that a line
    feed does not follow is "Bad end of line"; a last name with no '=' is never decoded. A decoded name that is
    empty is "empty name", a '%' not followed by two hex digits is "Bad string" in a name and its byte index in a
    value, the bytes quoted as UTF-8. Its words, as TorchServe 0.12 answered each (tests/container/test_torchserve.py,
    and the jar's decoder)."""
    first, in_value = 0, False
    for i, byte in enumerate(body):
        if not in_value and byte in b"=&":
            if problem := _form_name_error(body[first:i]):
                return problem
            in_value, first = byte == ord("="), i + 1
        elif in_value and byte == ord("&"):
            if problem := _form_value_error(body[first:i]):
                return problem
            in_value, first = False, i + 1
        elif in_value and byte == ord("\r") and body[i + 1 : i + 2] not in (b"\n", b""):
            return "Bad end of line"
        elif in_value and byte in b"\r\n":
            return _form_value_error(body[first:i])
    return _form_value_error(body[first:]) if in_value else None


def _form_name_error(name: bytes) -> str | None:
    if _BAD_ESCAPE.search(name):
        return f"Bad string: '{name.decode('utf-8', 'replace')}'"
    return None if name else "java.lang.IllegalArgumentException: empty name"


def _form_value_error(value: bytes) -> str | None:
    if bad := _BAD_ESCAPE.search(value):
        return f"Invalid hex byte at index '{bad.start()}' in string: '{value.decode('utf-8', 'replace')}'"
    return None


def load_inference_module(code_dir: Path, name: str = "mobilenet_inference"):
    """Import an artifact's code/inference.py as the toolkit imports SAGEMAKER_PROGRAM (code/ on sys.path)."""
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(name, code_dir / "inference.py")
    if spec is None or spec.loader is None:
        raise ModelStartError(f"no inference script at {code_dir / 'inference.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def extract_all(tar: tarfile.TarFile, target: Path) -> None:
    """tar.extractall(target, filter="data"), also on a Python whose tarfile has no filters (before 3.11.4: Debian
    12's python3 is 3.11.2), where extractall refused filter= with a TypeError and `make demo` stopped with it.
    There, as the data filter would, only regular files and directories landing inside `target` are taken, without
    setuid, setgid, sticky or group/other-write bits; any other member raises tarfile.TarError naming it."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
        return
    root = os.path.realpath(target)
    members = []
    for member in tar.getmembers():
        path = os.path.realpath(os.path.join(root, member.name))
        if not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"{member.name!r} is not a regular file or a directory")
        if os.path.isabs(member.name) or os.path.commonpath([root, path]) != root:
            raise tarfile.TarError(f"{member.name!r} would be extracted to {path!r}, which is outside the destination")
        member = copy.copy(member)
        member.mode = member.mode & 0o755 | (0o600 if member.isfile() else 0)
        members.append(member)
    tar.extractall(root, members=members)  # noqa: S202 (every member was checked above)


def out_of_space(e: BaseException) -> bool:
    """A write refused for want of room (a full disk, a quota): the destination's doing, never the artifact's."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def no_room_to_unpack(artifact: Path, directory: Path, error: OSError, copied: bool = False) -> str:
    """What a full TMPDIR at start says. It was "cannot unpack the model artifact ...: [Errno 28] No space left on
    device; run `make model` to rebuild it": the artifact was sound, and the full directory was not named. `error`'s
    own words: a quota (EDQUOT) said "No space left on device" of a disk df showed with room. `copied`: a copy of the
    artifact is kept there too (the bench's), which the figure counts: without it, a directory with room for the
    unpacked model but not for both was refused with a figure it had room for."""
    try:  # read again, only now: sizes read before unpacking doubled every start's unpacking time
        with tarfile.open(artifact) as tar:
            unpacked = sum(member.size for member in tar.getmembers())
        size = f" ({unpacked / 1e6:.0f} MB unpacked)"
        if copied:
            total = unpacked + artifact.stat().st_size
            size = f" ({unpacked / 1e6:.0f} MB unpacked, {total / 1e6:.0f} MB with the copy of the artifact kept there)"
    except (OSError, EOFError, zlib.error, tarfile.TarError):
        size = ""
    return (
        f"no room in {directory} to unpack the model artifact {artifact}{size}: {error.strerror or error}; free some"
        " there, or set TMPDIR to a directory with room"
    )


def extract_artifact(artifact: Path, target: Path, error: type[Exception] = ModelStartError) -> Path:
    """Unpack model.tar.gz into target/model and return that directory (both model tiers serve it from there).

    A missing, damaged or escaping artifact (a member outside the directory: tarfile's "data" filter) raises
    `error`, the caller's own type, with one line naming the artifact and the cause.
    """
    model_dir = target / "model"
    model_dir.mkdir(parents=True)
    try:
        with tarfile.open(artifact) as tar:
            extract_all(tar, model_dir)
            read_to_the_end(tar)  # a copy corrupted in place unpacks without an error: its CRC tells
    # A truncated gzip raises EOFError, a corrupt one zlib.error: neither is an OSError or a TarError.
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        if out_of_space(e):
            raise error(no_room_to_unpack(artifact, target.parent, e)) from e
        # One line. A file that is no archive at all (empty, an HTML page, a Git LFS pointer) gets tarfile's list of
        # every method it tried ("- method gz: ReadError('not a gzip file') - method bz2: ..."): said plainly.
        if isinstance(e, tarfile.ReadError) and str(e).startswith("file could not be opened successfully"):
            cause = f"not a tar.gz archive ({artifact.stat().st_size:,} bytes)"
        else:
            cause = " ".join(str(e).split())
        raise error(f"cannot unpack the model artifact {artifact}: {cause}") from e
    return model_dir


def _toolkit_error_types(module) -> tuple[type[BaseException], ...]:
    try:
        from sagemaker_inference.errors import BaseInferenceToolkitError

        return (BaseInferenceToolkitError,)
    except ImportError:  # without the toolkit, the script's own base plays its part
        return (module.InferenceError,)


MODEL_DIR_PREFIX = "mobilenet-model-"
# Held (flock) by the stack that unpacked the model for as long as it lives: the kernel drops the lock when the
# process dies, however it dies, and in any pid namespace that shares the directory.
OWNER_LOCK = ".owner.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and someone else's
        return True
    return True


def hold_owner_lock(directory: Path) -> int:
    """Lock `directory` as ours until the returned descriptor is closed (or the process ends)."""
    pending = directory / f"{OWNER_LOCK}.new"
    fd = os.open(pending, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(pending, directory / OWNER_LOCK)  # a sweeper never sees the lock file unlocked
    return fd


def _owner_gone(directory: Path) -> bool:
    try:
        fd = os.open(directory / OWNER_LOCK, os.O_RDWR)
    except FileNotFoundError:  # its owner has not locked it yet: trust the pid in a model dir's name
        if not directory.name.startswith(MODEL_DIR_PREFIX):  # no pid in it (multiprocessing's): whose, nothing tells
            return False
        pid = directory.name[len(MODEL_DIR_PREFIX) :].split("-", 1)[0]
        return pid.isdigit() and not _pid_alive(int(pid))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: its owner is alive
        return False
    finally:
        os.close(fd)
    return True


def sweep_orphaned_model_dirs(tmp_root: Path | None = None) -> list[Path]:
    """Remove the unpacked models of stacks that were killed outright (kill -9 runs no cleanup), and only
    those: our own directories (not symlinks, not another user's) whose owner lock is free. Returns them."""
    return _sweep_orphans(Path(tmp_root or tempfile.gettempdir()), f"{MODEL_DIR_PREFIX}*-*")


def _sweep_orphans(root: Path, pattern: str) -> list[Path]:
    removed = []
    for path in root.glob(pattern):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or not _owner_gone(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


# multiprocessing.util.get_temp_dir's directories, in one of which the sandboxes' fork server listens: removed at a
# normal exit, left behind (with the socket) by a kill -9, and by their names not told from another program's.
MULTIPROCESSING_DIRS = "pymp-*"
_multiprocessing_dir_lock: int | None = None


def sweep_orphaned_multiprocessing_dirs(tmp_root: Path | None = None) -> list[Path]:
    """Remove the multiprocessing directories of stacks killed outright: our own whose owner lock is free. One
    without a lock is another program's, or a stack's that has not locked it yet, and is left alone."""
    return _sweep_orphans(Path(tmp_root or tempfile.gettempdir()), MULTIPROCESSING_DIRS)


def hold_multiprocessing_dir() -> Path:
    """This process's multiprocessing directory, locked as ours (once, for as long as the process lives, as
    multiprocessing keeps it), after the sweep of those of stacks killed outright."""
    global _multiprocessing_dir_lock
    from multiprocessing import util

    # It makes the directory, then registers its removal at exit: a stop signal between the two left it behind,
    # unlocked. Held back, it lands once the removal is registered.
    with stop_signals_held():
        directory = Path(util.get_temp_dir())
    if _multiprocessing_dir_lock is None:
        sweep_orphaned_multiprocessing_dirs(directory.parent)
        _multiprocessing_dir_lock = hold_owner_lock(directory)
    return directory


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """The handlers of SIGINT, SIGTERM and SIGHUP deferred until the block ends (then the first one that came runs).

    Their Python handlers, not their delivery: the OS hands a signal blocked in this thread to any other thread
    that does not block it (ONNX Runtime's workers, once a model has loaded), and Python then runs the handler in
    the main thread all the same. Only the main thread may set handlers: elsewhere nothing is deferred."""
    if threading.current_thread() is not threading.main_thread() or None in map(signal.getsignal, STOP_SIGNALS):
        yield  # (None: a handler set outside Python, which could not be put back)
        return
    came: list[int] = []
    previous = {}
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, lambda signum, _frame: came.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if came:
            signal.raise_signal(came[0])


class InProcessContainer:
    """The artifact's inference script served in this process, as the toolkit's transformer serves it."""

    def __init__(self, artifact: Path):
        sweep_orphaned_model_dirs()
        self._tmp: Path | None = None
        self._lock_fd: int | None = None
        try:
            # `make demo`'s stop signals raise (KeyboardInterrupt, SystemExit): one landing after mkdtemp made the
            # directory but before its name was kept here would leave the directory behind. Held back until then,
            # it lands inside this try, whose cleanup removes it.
            try:
                with stop_signals_held():
                    self._tmp = Path(tempfile.mkdtemp(prefix=f"{MODEL_DIR_PREFIX}{os.getpid()}-"))
                self._lock_fd = hold_owner_lock(self._tmp)
            except OSError as e:  # a TMPDIR with not a block or inode free: the same line as one with too few
                if out_of_space(e):
                    raise ModelStartError(no_room_to_unpack(Path(artifact), Path(tempfile.gettempdir()), e)) from e
                raise
            self.model_dir = extract_artifact(Path(artifact), self._tmp)
            code_dir = self.model_dir / "code"
            if not (code_dir / "inference.py").is_file():
                raise ModelStartError(f"{artifact} has no code/inference.py")
            try:
                self.module = load_inference_module(code_dir)
            except ModelStartError:
                raise
            except Exception as e:  # a package it imports is missing, a typo: as model_fn's failure, one line
                first = (str(e).splitlines() or [type(e).__name__])[0]
                raise ModelStartError(
                    f"cannot import code/inference.py of {artifact}: {type(e).__name__}: {first}"
                ) from e
            self._toolkit_errors = _toolkit_error_types(self.module)
            try:
                # Held back until model_fn returns: one landing in a C extension's import (`import onnxruntime`)
                # comes out as its ImportError, which model_fn takes for a missing runtime and falls back on.
                with stop_signals_held():
                    self.model = self.module.model_fn(str(self.model_dir))
            except Exception as e:
                first = (str(e).splitlines() or [type(e).__name__])[0]
                raise ModelStartError(f"model_fn failed for {artifact}: {type(e).__name__}: {first}") from e
        except BaseException:
            self.close()
            raise

    @property
    def backend(self) -> str:
        return getattr(self.model, "backend", "unknown")

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        m = self.module
        if content_type.split(";", 1)[0].lower() == FORM_URLENCODED and (refusal := form_decode_error(body)):
            # TorchServe's frontend decodes such a body itself, before the toolkit runs (pytorch/serve's
            # InferenceRequestHandler.parseRequest, Netty's form decoder), and answers what it cannot decode with its
            # own JSON 500. One it can decode reaches input_fn, which refuses the type.
            error = {"code": 500, "type": "ErrorDataDecoderException", "message": refusal}
            return ContainerResponse(500, "application/json", (json.dumps(error, indent=2) + "\n").encode())
        try:
            data: bytes | str = body
            if content_type in UTF8_TYPES:
                data = body.decode("utf-8")
            if not accept or accept == "*/*":
                accept = DEFAULT_ACCEPT
            result = m.output_fn(m.predict_fn(m.input_fn(data, content_type), self.model), accept)
            payload, response_type = result if isinstance(result, tuple) else (result, accept)
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            return ContainerResponse(200, response_type, bytes(payload))
        except Exception as e:
            # The toolkit's own error body: the message, a newline, then the full traceback. Any other exception
            # becomes its GenericInferenceToolkitError(500, str(e)), which says "Invalid Request" for an empty one.
            trace = traceback.format_exc()
            if isinstance(e, self._toolkit_errors):
                status, message = e.status_code, e.message
            else:
                status, message = 500, str(e) or "Invalid Request"
            return ContainerResponse(status, "text/plain", f"{message}\n{trace}".encode())

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class ContainerUnavailable(RuntimeError):
    """No container can serve right now (its model server died and is being replaced)."""


class TorchServeContainer:
    """AWS's toolkit + TorchServe serving the artifact in a child process group (RUNTIME=torchserve).

    If TorchServe dies it is replaced, as a serverless endpoint replaces a dead instance; meanwhile invoke()
    raises ContainerUnavailable, which the front answers as SageMaker does (ModelNotReadyException).
    """

    backend = "torchserve"

    def __init__(self, artifact: Path, startup_timeout: float = 180.0):
        from local.torchserve import ManagedEndpoint, TorchServeDown

        self._down = TorchServeDown
        self._endpoint = ManagedEndpoint(Path(artifact), startup_timeout=startup_timeout)
        try:
            self._endpoint.start()  # stops what it started if this fails, Ctrl-C included
        except Exception as e:
            raise ModelStartError(f"TorchServe could not serve {artifact}: {e}") from e

    def invoke(self, body: bytes, content_type: str, accept: str) -> ContainerResponse:
        try:
            status, headers, payload = self._endpoint.invoke(body, content_type, accept or DEFAULT_ACCEPT)
        except self._down as e:
            raise ContainerUnavailable(str(e)) from e
        lowered = {k.lower(): v for k, v in dict(headers).items()}
        return ContainerResponse(status, lowered.get("content-type", "application/json"), payload)

    def close(self) -> None:
        self._endpoint.stop()


# ---------------------------------------------------------------------------------------------------------
# The SageMaker front
@dataclass
class RuntimeAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def aws_error(status: int, code: str, message: str, *, request_id: str | None = None, **fields) -> RuntimeAnswer:
    """An error as SageMaker Runtime puts it on the wire (rest-json: x-amzn-ErrorType + JSON body). `request_id`:
    the answer's x-amzn-RequestId, for a message that quotes it (a new one otherwise)."""
    body = {"message": message, **fields}
    headers = {"content-type": "application/x-amz-json-1.1", "x-amzn-errortype": code, **request_id_header(request_id)}
    return RuntimeAnswer(status, headers, json.dumps(body).encode())


def input_violations(name: str, content_type: str, accept: str, custom_attributes: str | None) -> str | None:
    """InvokeEndpoint's input validation, which AWS runs before it looks anything up and botocore does not run at all:
    each member outside its botocore model's constraints (a '/' boto3 sent as %2F in the name, a 100 KB name, a
    ContentType, Accept or CustomAttributes over 1024 characters or not ASCII), in AWS's words and counted in one
    message; None when every member holds. Without the values, which AWS quotes for a member not marked sensitive:
    a 100 KB name would come back whole. Longer headers never reach a container there; here a long ContentType or
    Accept would meet TorchServe's HTTP decoder (8 KB of headers), a bare 400 "Invalid HTTP message.", and a long
    CustomAttributes, which reaches neither container, would be served as if it were not there."""
    violations = []
    if not _ENDPOINT_NAME_RE.match(name):
        violations.append(("endpointName", f"Member must satisfy regular expression pattern: {ENDPOINT_NAME_PATTERN}"))
    if len(name) > ENDPOINT_NAME_MAX_CHARS:
        violations.append(("endpointName", f"Member must have length less than or equal to {ENDPOINT_NAME_MAX_CHARS}"))
    for member, value in (("contentType", content_type), ("accept", accept), ("customAttributes", custom_attributes)):
        if not value:
            continue
        if not value.isascii():
            violations.append((member, "Member must satisfy regular expression pattern: \\p{ASCII}*"))
        if len(value) > MAX_HEADER_CHARS:
            violations.append((member, f"Member must have length less than or equal to {MAX_HEADER_CHARS}"))
    if not violations:
        return None
    count = f"{len(violations)} validation error{'s' if len(violations) > 1 else ''}"
    return f"{count} detected: " + "; ".join(
        f"Value at '{member}' failed to satisfy constraint: {violation}" for member, violation in violations
    )


def service_unavailable() -> RuntimeAnswer:
    """SageMaker Runtime's 503 when the endpoint's infrastructure cannot take the call (a fault's `down`, or a call
    cut short as the stack stops)."""
    return aws_error(503, "ServiceUnavailable", "The service is unavailable. Please try again later.")


def refused_target(endpoint: str, headers: Mapping[str, str]) -> RuntimeAnswer | None:
    """InvokeEndpoint's targets that this endpoint (one model, one container, no inference components) does not
    have, refused as SageMaker refuses them; None when the request names none. X-Amzn-SageMaker-Target-Variant is
    not among them: AllTraffic is this endpoint's variant, and what SageMaker answers another name is undocumented
    (so is its answer to InferenceId, EnableExplanations and SessionId, which pass as before)."""
    fields = {}
    if headers.get("x-amzn-sagemaker-target-model"):  # aws/amazon-sagemaker-examples#1026 and #1216: its words
        message = f"Endpoint {endpoint} is not a multi-model endpoint and does not support target model header."
        fields = {"ErrorCode": "TARGET_MODEL_HEADER_NOT_SUPPORTED"}  # beside the message in #1216's answer
    elif headers.get("x-amzn-sagemaker-inference-component"):  # its words, for an endpoint hosting a model
        message = (
            "Inference Component Name header is not allowed for endpoints to which you dont plan to deploy inference "
            "components. Please remove the Inference Component Name header and try again."
        )
    elif headers.get("x-amzn-sagemaker-target-container-hostname"):
        # A validation error, documented ("Invoke a multi-container endpoint with direct invocation"); its words not.
        message = f"Endpoint {endpoint} is not configured for direct invocation: it takes no TargetContainerHostname."
    else:
        return None
    return aws_error(400, "ValidationError", message, **fields)


def request_id_header(request_id: str | None = None) -> dict[str, str]:
    """AWS's id of this request, on every answer: botocore exposes it as ResponseMetadata["RequestId"]."""
    return {"x-amzn-requestid": request_id or str(uuid.uuid4())}


def answer_line(answer: RuntimeAnswer, elapsed_ms: float) -> str:
    """The runtime tier's log line for one answer, named by its x-amzn-RequestId: the handler logs the same id as
    endpoint_request_id, so the two lines of a call join on it. The status, the error type and a ModelError's
    container status; never a body (the image, or the container's message and traceback)."""
    outcome = str(answer.status)
    if error := answer.headers.get("x-amzn-errortype"):
        outcome += f" {error}"
        if error == "ModelError":
            with contextlib.suppress(ValueError, LookupError, TypeError):
                outcome += f" (container status {json.loads(answer.body)['OriginalStatusCode']})"
    return f"invocation {answer.headers.get('x-amzn-requestid')}: {outcome} in {elapsed_ms:.1f} ms"


def answer_level(answer: RuntimeAnswer) -> int:
    """answer_line's level: WARNING for an error, as the handler logs the 5xx every such error but throttling may
    become, so its line of a failed call is never shown without this one (proxyLogLevel WARNING); INFO otherwise."""
    throttled = answer.headers.get("x-amzn-errortype") == "ThrottlingException"  # the handler's 429, at INFO
    return logging.INFO if answer.status < 400 or throttled else logging.WARNING


def model_error(endpoint: str, region: str, original_status: int, original_body: bytes) -> RuntimeAnswer:
    """ModelError (424) wrapping a container's non-2xx answer, with the fields botocore exposes."""
    original = original_body.decode("utf-8", "replace")
    kind = "client" if 400 <= original_status < 500 else "server"
    log_group = endpoint_log_group_name(endpoint)
    partition = partition_for_region(region)
    console = CONSOLE_HOSTS.get(partition, CONSOLE_HOSTS["aws"])
    return aws_error(
        424,
        "ModelError",
        f'Received {kind} error ({original_status}) from primary with message "{original}". See '
        f"https://{region}.{console}/cloudwatch/home?region={region}#logEventViewer:"
        f"group={log_group} in account {ACCOUNT} for more information.",
        ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL",
        OriginalStatusCode=original_status,
        OriginalMessage=original,
        LogStreamArn=f"arn:{partition}:logs:{region}:{ACCOUNT}:log-group:{log_group}",
    )


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int no float holds: JSON reads one from a 1 and 400 zeros
        return False


@dataclass
class Faults:
    """Faults injected by tests and `make loadtest` (only with --fault-injection): the runtime tier's, and one
    in the API tier's Lambda sandboxes."""

    delay_s: float = 0.0  # a slow model: wait this long before answering
    model_status: int = 0  # a failing model: answer with this container status ...
    model_message: str = "injected model failure"  # ... and this first line (a traceback follows it)
    throttle: int = 0  # the next N invocations are throttled
    down: bool = False  # the endpoint's infrastructure is unavailable (503 ServiceUnavailable)
    sandbox_crash: int = 0  # the next N Lambda invocations die in their sandbox (SIGKILL, as out of memory)

    @classmethod
    def from_json(cls, data: object) -> Faults:
        if not isinstance(data, dict):  # a list of names passed the unknown-field check, then had no .items()
            raise ValueError(f"faults must be a JSON object of fields, not {json.dumps(data)[:40]}")
        known = cls.__dataclass_fields__
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}; known: {sorted(known)}")
        # Checked here, not when an invocation meets them: a "5" for delay_s raised TypeError in every invocation.
        for name, value in data.items():
            default = getattr(cls, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if isinstance(default, bool):
                ok, wanted = isinstance(value, bool), "true or false"
            elif isinstance(default, int):
                ok, wanted = number and isinstance(value, int) and value >= 0, "an integer >= 0"
            elif isinstance(default, float):
                ok, wanted = number and _finite(value) and value >= 0, "a number of seconds >= 0"
            else:
                ok, wanted = isinstance(value, str), "a string"
            if name == "model_status" and ok and value != 0 and not 100 <= value <= 599:
                ok, wanted = False, "0 (off) or an HTTP status 100-599"
            if not ok:
                raise ValueError(f"fault {name} must be {wanted}, not {json.dumps(value)[:40]}")
        return cls(**data)


@dataclass
class SageMakerRuntime:
    container: Container
    endpoint_name: str
    max_concurrency: int
    region: str = "us-east-1"
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    invocation_timeout_s: float = INVOCATION_TIMEOUT_S
    faults: Faults = field(default_factory=Faults)
    in_flight: int = 0
    peak_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The model gets threads of its own, one per admitted invocation, so that the concurrency SageMaker would
    # admit is exactly what runs (asyncio's shared default pool is sized for other work).
    _pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="model")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.container.close()

    def _admit(self) -> bool:
        with self._lock:
            if self.in_flight >= self.max_concurrency:
                return False
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return True

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def payload_too_large(self) -> RuntimeAnswer:
        # The id the message quotes is the answer's own: two for one call left an operator grepping for one that
        # neither the runtime tier's line nor the proxy's endpoint_request_id holds.
        request_id = str(uuid.uuid4())
        return aws_error(
            400,
            "ValidationError",
            f"Request {request_id} has oversize body.",  # SageMaker's words
            request_id=request_id,
        )

    async def invoke(
        self, name: str, body: bytes, content_type: str, accept: str, headers: Mapping[str, str] | None = None
    ) -> RuntimeAnswer:
        """`headers`: the request's other InvokeEndpoint headers (lower-case names), those that target a model, a
        component or a container checked (refused_target)."""
        custom_attributes = (headers or {}).get("x-amzn-sagemaker-custom-attributes")
        invalid = input_violations(name, content_type, accept, custom_attributes)
        if invalid:
            return aws_error(400, "ValidationError", invalid)
        if name != self.endpoint_name:
            return aws_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
        refused = refused_target(name, headers or {})
        if refused is not None:
            return refused
        if len(body) > self.max_payload_bytes:
            return self.payload_too_large()
        faults = self.faults
        if faults.down:
            return service_unavailable()
        if faults.throttle > 0:
            faults.throttle -= 1
            return aws_error(400, "ThrottlingException", "Rate exceeded")
        if not self._admit():
            return aws_error(400, "ThrottlingException", "Rate exceeded")
        started = time.perf_counter()
        try:
            if faults.delay_s:
                await asyncio.sleep(min(faults.delay_s, self.invocation_timeout_s))
                if faults.delay_s >= self.invocation_timeout_s:  # the model's answer, injected or not, comes too late
                    raise TimeoutError
            if faults.model_status:
                trace = 'Traceback (most recent call last):\n  File "/opt/ml/model/code/inference.py", line 1'
                answer = ContainerResponse(
                    faults.model_status, "text/plain", f"{faults.model_message}\n{trace}".encode()
                )
            else:
                call = asyncio.get_running_loop().run_in_executor(
                    self._pool, self.container.invoke, body, content_type, accept
                )
                answer = await asyncio.wait_for(
                    call,
                    timeout=max(0.001, self.invocation_timeout_s - (time.perf_counter() - started)),
                )
        except TimeoutError:
            # SageMaker's words and its status 0: no container answer exists to wrap.
            return model_error(self.endpoint_name, self.region, 0, INVOCATION_TIMEOUT_MESSAGE)
        except ContainerUnavailable:
            # A serverless endpoint replacing a dead instance: "not ready, retry", never a ModelError or timeout.
            return aws_error(429, "ModelNotReadyException", f"Endpoint {name} is not ready yet. Try again later.")
        finally:
            self._release()
        model_ms = (time.perf_counter() - started) * 1000
        if not 200 <= answer.status < 300:
            return model_error(self.endpoint_name, self.region, answer.status, answer.body)
        return RuntimeAnswer(
            200,
            {
                "content-type": answer.content_type,
                "x-amzn-invoked-production-variant": "AllTraffic",
                **request_id_header(),
                "server-timing": f"model;dur={model_ms:.1f}",
            },
            answer.body,
        )
