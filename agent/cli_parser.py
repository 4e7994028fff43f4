"""An argparse parser whose usage errors are one line, like every other error of the CLIs.

argparse's default prints the whole usage block (11 lines for `facetrack-agent run`) before the
message; a user who mistyped a flag needs the message and where to read more.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """`prog: error: MESSAGE (see `prog --help`)` on stderr, exit status 2. Sub-command parsers made
    with `add_subparsers` are of the same class, so they behave the same."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
