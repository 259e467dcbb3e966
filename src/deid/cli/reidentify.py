"""``deid reidentify --crosswalk DIR PSEUDONYM...``: the original behind a pseudonym.

For authorised staff holding the deid key (``--key-file`` or ``$DEID_KEY_FILE``): looks each
pseudonym (a UID or a Patient ID given out by ``deid run --crosswalk DIR``) up in the encrypted
crosswalk and prints ``PSEUDONYM<TAB>KIND<TAB>ORIGINAL`` on stdout, one line per match. This is
the one command that prints identifiers, on purpose. Exit 0 when every pseudonym was found, 1
when some were not (named on stderr), 2 on a usage error (no key, no crosswalk, wrong key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deid.cli._common import (
    EXIT_OK,
    EXIT_REJECTED,
    UsageError,
    add_key_arguments,
    resolve_key,
    say,
)
from deid.crosswalk import STORE_NAME, CrosswalkStore
from deid.errors import MissingDependencyError


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("reidentify", help="the originals behind pseudonyms (crosswalk)")
    parser.add_argument("pseudonym", nargs="+", help="a pseudonymous UID or Patient ID")
    parser.add_argument("--crosswalk", required=True, help="the folder of `deid run --crosswalk`")
    add_key_arguments(parser, ephemeral=None)  # only the run's own key can open it
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    pseudonymizer = resolve_key(args)
    folder = Path(args.crosswalk)
    if not (folder / STORE_NAME).is_file():
        raise UsageError(f"{folder}: no crosswalk here ({STORE_NAME})")
    try:
        store = CrosswalkStore(folder, pseudonymizer)
    except MissingDependencyError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    missing = []
    with store:
        for pseudonym in args.pseudonym:
            found = store.lookup(pseudonym.strip())
            if not found:
                missing.append(pseudonym)
            for kind, original in found:
                sys.stdout.write(f"{pseudonym}\t{kind}\t{original}\n")
    for pseudonym in missing:
        say(f"{pseudonym}: not in the crosswalk")
    return EXIT_OK if not missing else EXIT_REJECTED
