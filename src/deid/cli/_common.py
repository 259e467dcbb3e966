"""What the subcommands share: exit codes, the usage error, stderr messages, quiet dependencies."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from deid.keys import Pseudonymizer

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer killed by SIGPIPE


KEY_ENV = "DEID_KEY_FILE"


class UsageError(Exception):
    """Bad arguments or environment (missing input, output not creatable): exit code 2.

    The message names the path given by the caller, never a value read from a data set.
    """


def say(message: str) -> None:
    """One line on stderr, prefixed with ``deid:``."""
    sys.stderr.write(f"deid: {message}\n")


@contextlib.contextmanager
def quiet_dependencies() -> Iterator[None]:
    """Keep pydicom's warnings and log lines (which may quote values) off the console.

    Everything is restored on exit, so that ``main()`` can be called in-process (tests).
    """
    from pydicom import config

    pydicom_logger = logging.getLogger("pydicom")
    old_level, old_propagate = pydicom_logger.level, pydicom_logger.propagate
    old_mode = config.settings.reading_validation_mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom_logger.setLevel(logging.CRITICAL + 1)
        pydicom_logger.propagate = False
        config.settings.reading_validation_mode = config.IGNORE
        try:
            yield
        finally:
            config.settings.reading_validation_mode = old_mode
            pydicom_logger.setLevel(old_level)
            pydicom_logger.propagate = old_propagate


def add_key_arguments(parser: Any, *, ephemeral: str | None) -> None:
    """``--key-file`` (else ``$DEID_KEY_FILE``) and, where ``ephemeral`` says what for,
    ``--ephemeral-key``: the one way every command that needs the key takes it."""
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--key-file", help=f"key file from `deid keygen` (else ${KEY_ENV})")
    if ephemeral is not None:
        keys.add_argument(
            "--ephemeral-key",
            action="store_true",
            help=f"use a random key for {ephemeral} only (the mapping cannot be reproduced)",
        )


def resolve_key(args: Any) -> Pseudonymizer:
    """--key-file, else --ephemeral-key (where offered), else $DEID_KEY_FILE; else a usage
    error."""
    if args.key_file:
        return Pseudonymizer.from_file(args.key_file)
    if getattr(args, "ephemeral_key", False):
        say("using an ephemeral random key: the mapping cannot be reproduced")
        return Pseudonymizer.generate()
    if os.environ.get(KEY_ENV):
        return Pseudonymizer.from_file(os.environ[KEY_ENV])
    ephemeral = ", or pass --ephemeral-key" if hasattr(args, "ephemeral_key") else ""
    raise UsageError(f"no key: give --key-file or set ${KEY_ENV}{ephemeral}")
