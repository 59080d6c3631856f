"""Every command of `python -m roastcore` formats its help (argparse does it lazily)."""

from __future__ import annotations


def test_every_cli_command_has_working_help():
    """argparse formats help lazily: a stray % in one command's help breaks `roastcore --help`."""
    from roastcore.cli import build_parser

    parser = build_parser()
    parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        assert command.format_help(), name
