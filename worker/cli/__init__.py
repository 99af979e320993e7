"""The ``cope`` command line: one entry point, a subcommand per job.

Every deliberate failure is a :class:`CopeError`; it is printed as one clear
line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from worker.cli import model_cmds, policy_cmds, stream_cmds
from worker.errors import CopeError

__all__ = ["build_parser", "main"]

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (model_cmds, stream_cmds, policy_cmds):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a CopeError becomes a one-line message and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CopeError as exc:
        print(f"cope: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a COPE_* setting out of range
        print(f"cope: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"cope: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
