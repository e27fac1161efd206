"""`python -m local`'s command line and the checks of its values that need no more than the standard library.

    python -m local.arguments --host HOST --port PORT --runtime RUNTIME [--allow-remote] ...

refuses, as `python -m local` would and in its words (one line on stderr, exit status 2), the arguments that
command would refuse before it starts anything, and starts nothing. `make demo` runs it with the system Python,
before the venv and the model are built: it refused a bad PORT, HOST or RUNTIME only after minutes of building them.
So nothing here may import beyond the standard library and components.command_line (that Python has no uvicorn,
numpy or boto3; tests/test_makefile.py holds it), nor look a name up: DNS at make's parse time, where `python -m local`
resolves its host only as it binds."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import re
import sys
from pathlib import Path

from components.command_line import OneLineErrorParser, path_argument, port_number

ROOT = Path(__file__).resolve().parent.parent
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RUNTIMES = ("inprocess", "torchserve")

# A host name as RFC 1123 has it: dot-separated labels of ASCII letters, digits and inner hyphens, an optional final
# dot. (re.ASCII: ignoring case, [a-z] also matched the long s and the Kelvin sign.)
_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?", re.IGNORECASE | re.ASCII)


def host_address(value: str) -> str:
    """An IP address or a host name (in lower case: LOCALHOST was refused as a remote bind; localhost., its absolute
    form, as localhost, which glibc resolves from /etc/hosts and the loopback check knows); anything else would be
    refused later for the wrong reason."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value)
        return value
    relative = value.removesuffix(".")  # an absolute name's final dot: not one of DNS's 253 characters
    # The last label not all digits (RFC 3696): 999.1.1.1 is no address and no name.
    if len(relative) <= 253 and _HOST_NAME.fullmatch(value) and not relative.rpartition(".")[2].isdigit():
        name = value.lower()
        return "localhost" if name == "localhost." else name
    raise argparse.ArgumentTypeError(f"{value!r:.60} is not an IP address or host name")


def is_loopback(host: str) -> bool:
    """localhost or a loopback address, an IPv4-mapped one included (how a dual-stack socket shows an IPv4 peer)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser(
        prog="python -m local",
        description="`python -m local` (what `make demo` runs): serve the whole stack on one port until Ctrl-C "
        "(loopback only unless --allow-remote).",
    )
    parser.add_argument(
        "--host", type=host_address, default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=port_number, default=8000, help="default 8000; 0 picks a free port")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host: the stack has no authentication, anyone who reaches it can use it",
    )
    parser.add_argument(
        "--runtime",
        type=str.lower,  # as --log-level: RUNTIME=TorchServe names the one choice it can mean
        choices=RUNTIMES,
        default="inprocess",
        help="the model tier: inprocess (default) or torchserve (as the SageMaker container runs it; needs Java 17+)",
    )
    parser.add_argument(
        "--stack-config",
        type=path_argument,
        default=ROOT / "Pulumi.dev.yaml",
        help="the Pulumi.<stack>.yaml whose settings the stack follows (default: Pulumi.dev.yaml)",
    )
    parser.add_argument(
        "--artifact", type=path_argument, help="model.tar.gz (default: the stack config's modelArtifact)"
    )
    parser.add_argument("--fault-injection", action="store_true", help="enable POST/DELETE /__local/faults (tests)")
    parser.add_argument(
        "--no-stage-throttle",
        dest="stage_throttle",
        action="store_false",
        help="do not apply the stack's apiThrottleRateLimit/apiThrottleBurstLimit to /predict (load tests, benchmarks)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="warning",
        help="the local server's log level (default warning)",
    )
    return parser.parse_args(argv)


def remote_refusal(args: argparse.Namespace) -> str | None:
    """Why the stack must not bind args.host, or None: it has no authentication. Judged on the host as given, with
    no lookup: a name other than localhost is not loopback, whatever it resolves to."""
    if is_loopback(args.host) or args.allow_remote:
        return None
    return (
        f"refusing to bind {args.host}: the local stack has no authentication. "
        "Pass --allow-remote (make demo ALLOW_REMOTE=1) to expose it beyond this machine."
    )


def main(argv: list[str] | None = None) -> int:
    refusal = remote_refusal(parse_args(argv))
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
