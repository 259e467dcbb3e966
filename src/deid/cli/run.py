"""``deid run INPUT OUTPUT``: de-identify a file or a folder tree into OUTPUT.

Outputs are named from the new UIDs (``<study>/<series>/<instance>.dcm``), never from input
names or header values. ``OUTPUT/audit.jsonl`` gets one record per input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deid.audit import AuditRecord
from deid.codes import Outcome, RejectReason
from deid.engine import Deidentifier, write_atomic
from deid.errors import PolicyError, RejectedError
from deid.keys import Pseudonymizer
from deid.policy import load_policy

AUDIT_NAME = "audit.jsonl"


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("run", help="de-identify a file or a folder (recursive)")
    parser.add_argument("input", help="a DICOM file or a folder")
    parser.add_argument("output", help="output folder (created)")
    parser.add_argument("--policy", default="upload", help="policy name or TOML file (default: upload)")
    parser.add_argument("--key-file", help="key file from `deid keygen` (else $DEID_KEY_FILE)")
    parser.add_argument("--ephemeral-key", action="store_true",
                        help="use a random key for this run only (pseudonyms cannot be reproduced)")
    parser.set_defaults(handler=handle)


def resolve_key(args: argparse.Namespace) -> Pseudonymizer:
    path = args.key_file or os.environ.get("DEID_KEY_FILE")
    if path:
        return Pseudonymizer.from_file(path)
    if args.ephemeral_key:
        sys.stderr.write("deid: using an ephemeral random key: the mapping cannot be reproduced\n")
        return Pseudonymizer.generate()
    raise PolicyError("no key: give --key-file, set DEID_KEY_FILE, or pass --ephemeral-key", source="run")


def iter_inputs(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order (a file is its own single input)."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def output_name(record: AuditRecord) -> Path:
    return Path(str(record.study_instance_uid)) / str(record.series_instance_uid) / f"{record.sop_instance_uid}.dcm"


def handle(args: argparse.Namespace) -> int:
    src = Path(args.input)
    dst = Path(args.output)
    if not src.exists():
        raise PolicyError("input does not exist", source=str(src))
    policy = load_policy(args.policy)
    engine = Deidentifier(policy, resolve_key(args))
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise PolicyError("output must not be inside the input", source=str(dst))
    dst.mkdir(parents=True, exist_ok=True)
    base = src if src.is_dir() else src.parent
    counts = {outcome: 0 for outcome in Outcome}
    with open(dst / AUDIT_NAME, "a", encoding="utf-8") as audit:
        for path in iter_inputs(src):
            relative = path.relative_to(base).as_posix()
            record, written = _one(engine, path, dst)
            counts[record.outcome] += 1
            if record.outcome is not Outcome.DEIDENTIFIED:
                sys.stderr.write(f"deid: {relative}: {record.outcome.value} {record.reason.value if record.reason else ''}"
                                 f"{': ' + record.detail if record.detail else ''}\n")
            audit.write(json.dumps(record.to_dict(input=relative, output=written), separators=(",", ":")) + "\n")
            audit.flush()
    total = sum(counts.values())
    sys.stderr.write(
        f"deid: {total} input(s): {counts[Outcome.DEIDENTIFIED]} de-identified, "
        f"{counts[Outcome.REJECTED]} rejected, {counts[Outcome.FAILED]} failed\n"
    )
    return 0 if counts[Outcome.DEIDENTIFIED] == total else 1


def _one(engine: Deidentifier, path: Path, dst: Path) -> tuple[AuditRecord, str | None]:
    try:
        result = engine.deidentify_bytes(path.read_bytes())
    except RejectedError as exc:
        return AuditRecord(Outcome.REJECTED, exc.reason, exc.detail, policy=engine.policy.name,
                           key_fingerprint=engine.pseudonymizer.fingerprint), None
    except OSError as exc:
        return AuditRecord(Outcome.FAILED, RejectReason.NOT_DICOM, f"cannot read ({type(exc).__name__})",
                           policy=engine.policy.name), None
    name = output_name(result.audit)
    target = dst / name
    if target.exists() and target.read_bytes() != result.data:
        return AuditRecord(Outcome.REJECTED, RejectReason.DUPLICATE_INSTANCE,
                           "another input has the same SOP Instance UID", policy=engine.policy.name,
                           key_fingerprint=engine.pseudonymizer.fingerprint), None
    try:
        write_atomic(target, result.data)
    except RejectedError as exc:
        return AuditRecord(Outcome.FAILED, exc.reason, exc.detail, policy=engine.policy.name), None
    return result.audit, name.as_posix()
