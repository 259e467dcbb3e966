"""``deid keygen PATH``: write a new 256-bit key file readable by its owner only."""

from __future__ import annotations

import argparse
from typing import Any

from deid.cli._common import EXIT_OK, UsageError, say
from deid.keys import Pseudonymizer, write_key_file


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("keygen", help="write a new key file (mode 0600)")
    parser.add_argument("path", help="where to write the key (must not exist)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        path = write_key_file(args.path)  # refuses to overwrite (PolicyError: exit 2)
    except OSError as exc:
        raise UsageError(f"{args.path}: cannot write key file ({type(exc).__name__})") from None
    fingerprint = Pseudonymizer.from_file(path).fingerprint
    say(f"wrote a new key to {path} (fingerprint {fingerprint}); keep it secret")
    return EXIT_OK
