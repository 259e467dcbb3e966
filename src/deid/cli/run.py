"""``deid run INPUT OUTPUT``: de-identify a file or a folder tree into OUTPUT.

``OUTPUT/audit.jsonl`` holds one JSON record per input of *this* run: ``input`` (relative to
INPUT), ``output`` (relative to OUTPUT, null when nothing was written), ``outcome``, ``reason``,
the new UIDs and the number of decisions per action; never a value. A re-run into the same
OUTPUT rewrites ``audit.jsonl`` (records are never duplicated) and replaces the outputs it
produces again; other files already in OUTPUT are left alone and are not in the new audit.

The key comes from ``--key-file``, else ``--ephemeral-key`` (a random key, announced on
stderr), else ``$DEID_KEY_FILE``; with none of them the run is refused (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from deid.cli._batch import Batch, iter_inputs
from deid.cli._common import EXIT_OK, EXIT_REJECTED, UsageError, say
from deid.codes import Outcome
from deid.engine import Deidentifier
from deid.keys import Pseudonymizer
from deid.policy import load_policy

AUDIT_NAME = "audit.jsonl"
KEY_ENV = "DEID_KEY_FILE"


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("run", help="de-identify a file or a folder (recursive)")
    parser.add_argument("input", help="a DICOM file or a folder")
    parser.add_argument("output", help="output folder (created; must not be inside INPUT)")
    parser.add_argument("--policy", default="upload", help="policy name or TOML file (upload)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--key-file", help=f"key file from `deid keygen` (else ${KEY_ENV})")
    keys.add_argument(
        "--ephemeral-key",
        action="store_true",
        help="use a random key for this run only (the mapping cannot be reproduced)",
    )
    parser.set_defaults(handler=handle)


def resolve_key(args: argparse.Namespace) -> Pseudonymizer:
    """--key-file, else --ephemeral-key, else $DEID_KEY_FILE; else a usage error."""
    if args.key_file:
        return Pseudonymizer.from_file(args.key_file)
    if args.ephemeral_key:
        say("using an ephemeral random key: the mapping cannot be reproduced")
        return Pseudonymizer.generate()
    if os.environ.get(KEY_ENV):
        return Pseudonymizer.from_file(os.environ[KEY_ENV])
    raise UsageError(f"no key: give --key-file, set ${KEY_ENV}, or pass --ephemeral-key")


def _prepare_output(src: Path, dst: Path) -> None:
    src_real, dst_real = src.resolve(), dst.resolve()
    if src.is_dir() and (dst_real == src_real or src_real in dst_real.parents):
        raise UsageError(f"{dst}: the output folder must not be inside the input folder")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{dst}: cannot create the output folder ({type(exc).__name__})") from None


def handle(args: argparse.Namespace) -> int:
    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise UsageError(f"{src}: input does not exist")
    if not (src.is_dir() or src.is_file()):
        raise UsageError(f"{src}: input is neither a regular file nor a folder")
    policy = load_policy(args.policy)
    engine = Deidentifier(policy, resolve_key(args))
    _prepare_output(src, dst)
    base = src if src.is_dir() else src.parent
    batch = Batch(engine, dst)
    counts = dict.fromkeys(Outcome, 0)
    try:
        audit = open(dst / AUDIT_NAME, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{dst / AUDIT_NAME}: cannot write ({type(exc).__name__})") from None
    with audit:
        for path in iter_inputs(src):
            relative = path.relative_to(base).as_posix()
            record, written = batch.process(path)
            counts[record.outcome] += 1
            if record.outcome is not Outcome.DEIDENTIFIED:
                reason = record.reason.value if record.reason else "-"
                say(f"{relative}: {record.outcome.value} {reason}: {record.detail}")
            line = json.dumps(record.to_dict(input=relative, output=written), separators=(",", ":"))
            audit.write(line + "\n")
            audit.flush()
    total = sum(counts.values())
    say(
        f"{total} input(s): {counts[Outcome.DEIDENTIFIED]} de-identified, "
        f"{counts[Outcome.REJECTED]} rejected, {counts[Outcome.FAILED]} failed; "
        f"audit in {dst / AUDIT_NAME}"
    )
    return EXIT_OK if counts[Outcome.DEIDENTIFIED] == total else EXIT_REJECTED
