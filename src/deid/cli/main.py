"""``deid`` entry point: parse arguments, dispatch to a subcommand, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from deid._version import __dicom_edition__, __version__
from deid.cli import explain, keygen, policies, reidentify, run, serve
from deid.cli._common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    quiet_dependencies,
    say,
)
from deid.errors import DeidError

_COMMANDS = (run, explain, reidentify, keygen, policies, serve)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        say(f"error: {message}")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deid", description="De-identify DICOM objects (PS3.15 Annex E).")
    parser.add_argument(
        "--version", action="version", version=f"deid {__version__} (DICOM {__dicom_edition__})"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in _COMMANDS:
        module.add_subparser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already reported)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with quiet_dependencies():
            return int(args.handler(args))
    except (UsageError, DeidError) as exc:
        say(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:  # `deid explain FILE | head`: the reader has gone
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: its message could quote a value, so only its type
        say(f"internal error ({type(exc).__name__}); please report it")
        return EXIT_INTERNAL


def _discard_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (in-process callers, tests)
        pass


def entry() -> None:
    raise SystemExit(main())
