"""What `python -m local`, `python -m local.torchserve`, `python -m model.package`, `python -m bench` and
`python -m bench.loadtest` share on the command line. Standard library only."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's parser, but a bad argument is one line that names the option and the value and points to --help.
    argparse printed its whole usage block (five lines for `python -m local`, six for `python -m model.package`)
    above that line, which a newcomer had to find at the bottom. The exit status stays 2; --help is unchanged."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def path_argument(value: str) -> Path:
    """A path from the command line (or from a Makefile variable passed on), with ~ expanded: bash expands it at the
    start of a word only, so `--weights=~/x.pth`, a quoted "~/x.pth" or sh's `make model MODEL_WEIGHTS=~/x.pth`
    arrived as typed, and the file was looked for in a folder named ~ under the current one: "does not exist" for a
    path that looked right. An empty one is refused: as a Path it is the current folder, so `--weights=` (or
    `--weights "$UNSET"`) was "weights file <the current folder> is not a regular file"."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the path is empty: name a file, or leave the option out for its default")
    return Path(os.path.expanduser(value))


PORTS = "use 1-65535, or 0 for a free one"


def port_number(value: str) -> int:
    """A TCP port, refused in one line when it is none: bind() raised OverflowError, a traceback, for 99999."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number: {PORTS}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: {PORTS}")
    return port


def seconds(value: str) -> float:
    """A duration above zero: float() took -5 and nan, and a timeout of either gave up before waiting at all."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a duration: use a number of seconds above 0")
    return number


def encodable(text: str, stream) -> str:
    """text as `stream` can write it, "?" for what its encoding lacks. Under a locale whose codeset is not UTF-8
    (en_US.ISO-8859-1; Python coerces only C and POSIX), print() raised UnicodeEncodeError: on the bench's verdicts
    (✅, ❌) after the whole run, leaving neither table nor file, and on the build's line naming poids-δ.pth."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return text.encode(encoding, "replace").decode(encoding)
