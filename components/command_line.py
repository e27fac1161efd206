"""What `python -m local` and `python -m model.package` share on the command line. Standard library only."""

from __future__ import annotations

import argparse
from typing import NoReturn


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's parser, but a bad argument is one line that names the option and the value and points to --help.
    argparse printed its whole usage block (five lines for `python -m local`, six for `python -m model.package`)
    above that line, which a newcomer had to find at the bottom. The exit status stays 2; --help is unchanged."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")
