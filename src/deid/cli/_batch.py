"""One ``deid run``: find the inputs, de-identify each, write outputs named from the new UIDs.

Outputs are ``<study>/<series>/<instance>.dcm`` built from the UIDs of the *output* object, never
from an input file name or another header value. A UID that is not digits and dots (possible
only when a policy keeps the original UIDs) cannot name a file: the object is rejected. An
object without a Study or Series Instance UID goes under ``no-study-uid`` / ``no-series-uid``.

Within one run, two inputs that get the same new SOP Instance UID but different bytes (two
objects that share a SOP Instance UID, even in different series) are not both written: the
second is rejected as DUPLICATE_INSTANCE. Two identical inputs give one output, written once
and named in both records. A file of that name left by an earlier run is replaced.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from deid.audit import AuditRecord
from deid.codes import Outcome, RejectReason
from deid.engine import Deidentifier, write_atomic
from deid.errors import RejectedError

NO_STUDY = "no-study-uid"
NO_SERIES = "no-series-uid"
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_MAX_UID = 64


def iter_inputs(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` in a stable order (a file is its own single input).

    Folder links are not followed; FIFOs, sockets and devices are not inputs.
    """
    if not root.is_dir():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path


def _component(uid: str | None, missing: str) -> str | None:
    """``uid`` as a path component; ``missing`` when absent; None when it is not a UID."""
    if uid is None or not uid.strip("\x00 "):
        return missing
    text = uid.strip("\x00 ")
    return text if len(text) <= _MAX_UID and _UID.fullmatch(text) else None


def output_name(record: AuditRecord) -> Path | None:
    """``<study>/<series>/<instance>.dcm`` from the new UIDs, or None when one is not a UID."""
    study = _component(record.study_instance_uid, NO_STUDY)
    series = _component(record.series_instance_uid, NO_SERIES)
    instance = _component(record.sop_instance_uid, "")
    if not study or not series or not instance:
        return None
    return Path(study) / series / f"{instance}.dcm"


class Batch:
    """De-identify inputs one by one into ``dst``; remembers what this run has written."""

    def __init__(self, engine: Deidentifier, dst: Path) -> None:
        self.engine = engine
        self.dst = dst
        self._written: dict[str, bytes] = {}  # new SOP Instance UID -> sha256 of the output

    def _failed(self, outcome: Outcome, reason: RejectReason, detail: str) -> AuditRecord:
        return AuditRecord(
            outcome,
            reason,
            detail,
            policy=self.engine.policy.name,
            key_fingerprint=self.engine.pseudonymizer.fingerprint,
        )

    def process(self, path: Path) -> tuple[AuditRecord, str | None]:
        """The audit record of one input and the output path written (relative), if any."""
        try:
            return self._process(path)
        except RejectedError as exc:
            return self._failed(Outcome.REJECTED, exc.reason, exc.detail), None
        except Exception as exc:  # a bug below us: the object is not released, the run goes on
            detail = f"unexpected error ({type(exc).__name__})"
            return self._failed(Outcome.FAILED, RejectReason.INVALID_DATASET, detail), None

    def _process(self, path: Path) -> tuple[AuditRecord, str | None]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            detail = f"cannot read input ({type(exc).__name__})"
            return self._failed(Outcome.FAILED, RejectReason.NOT_DICOM, detail), None
        result = self.engine.deidentify_bytes(data)
        name = output_name(result.audit)
        if name is None:
            detail = "a new Study, Series or SOP Instance UID is not a valid UID: no file name"
            raise RejectedError(RejectReason.MISSING_UID, detail)
        digest = hashlib.sha256(result.data).digest()
        earlier = self._written.get(name.name)
        if earlier == digest:  # an identical copy of an earlier input: already written
            return result.audit, name.as_posix()
        if earlier is not None:
            detail = "another input of this run has the same SOP Instance UID"
            raise RejectedError(RejectReason.DUPLICATE_INSTANCE, detail)
        try:
            write_atomic(self.dst / name, result.data)
        except RejectedError as exc:
            return self._failed(Outcome.FAILED, exc.reason, exc.detail), None
        self._written[name.name] = digest
        return result.audit, name.as_posix()
