"""``deid`` entry point: parse arguments, dispatch to a subcommand, map errors to exit codes.

Exit codes: 0 everything de-identified, 1 some inputs rejected, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from deid._version import __dicom_edition__, __version__
from deid.cli import explain, keygen, policies, run
from deid.errors import DeidError

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

_COMMANDS = (run, explain, keygen, policies)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"deid: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deid", description="De-identify DICOM objects (PS3.15 Annex E).")
    parser.add_argument("--version", action="version",
                        version=f"deid {__version__} (DICOM {__dicom_edition__})")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in _COMMANDS:
        module.add_subparser(sub)
    return parser


def _quiet_dependencies() -> None:
    """pydicom's own warnings and log lines may quote values: keep them off the console."""
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    logging.getLogger("pydicom").propagate = False
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    try:
        from pydicom import config

        config.settings.reading_validation_mode = config.IGNORE
    except (ImportError, AttributeError):  # pragma: no cover
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    _quiet_dependencies()
    try:
        return int(args.handler(args))
    except DeidError as exc:
        sys.stderr.write(f"deid: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("deid: interrupted\n")
        return 130


def entry() -> None:
    raise SystemExit(main())
