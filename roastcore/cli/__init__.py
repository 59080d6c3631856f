"""`python -m roastcore ...`: one argparse tree; each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Each module exposes `register(subparsers)`; its handlers return an exit code.
_AREAS = ("data", "train", "evaluate", "jobs", "study", "legacy", "predict", "forecast", "sweep")


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roastcore", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for area in _AREAS:
        try:
            module = importlib.import_module(f"roastcore.cli.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"roastcore.cli.{area}":
                continue  # area not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, so a closed pipe is caught below, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (`roastcore ... | head -1`): stop quietly, as SIGPIPE would.
        # Point stdout at devnull so the final flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except (CliError, ValueError, FileNotFoundError, KeyError) as exc:
        # Bad input is a message, not a traceback.
        print(f"roastcore {args.command}: error: {exc}", file=sys.stderr)
        return 2
