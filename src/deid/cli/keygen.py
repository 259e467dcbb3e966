"""``deid keygen PATH``: write a new 256-bit key file readable by its owner only."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deid.keys import Pseudonymizer, write_key_file


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("keygen", help="write a new key file (mode 0600)")
    parser.add_argument("path", help="where to write the key (must not exist)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    path = write_key_file(args.path)
    fingerprint = Pseudonymizer.from_file(path).fingerprint
    sys.stderr.write(f"deid: wrote a new key to {path} (fingerprint {fingerprint}); keep it secret\n")
    return 0
