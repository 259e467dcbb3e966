"""What happens to one part after the engine: its outcome, the commit ticket, the file, the audit.

Nothing here holds or logs a value of the upload: outcomes carry audit records (tags, new UIDs,
reason codes) and the de-identified bytes only.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deid.audit import AuditRecord
from deid.codes import Outcome


@dataclass
class Ticket:
    """Whether a part's result may still be committed: the request's deadline cancels it only
    if it has not started to commit, so a part is either written and reported stored, or
    neither."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    state: str = "pending"  # pending -> committing | cancelled

    def begin_commit(self) -> bool:
        with self.lock:
            if self.state == "cancelled":
                return False
            self.state = "committing"
            return True

    def cancel(self) -> bool:
        with self.lock:
            if self.state == "committing":
                return False
            self.state = "cancelled"
            return True


@dataclass
class PartOutcome:
    """One part, processed: its audit record, where it went, and (to forward) its bytes."""

    part: int
    record: AuditRecord
    output: str | None = None
    digest: str | None = None
    data: bytes | None = None
    text: str | None = None  # the failure text when there is no RejectReason (TIMEOUT)
    retrieve_url: str | None = None  # a forward's: the downstream server's Retrieve URL

    @property
    def ok(self) -> bool:
        return self.record.outcome is Outcome.DEIDENTIFIED


class AuditLog:
    """``audit.jsonl``: one JSON line per part, appended and flushed under a lock."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: Any = None

    def open(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        with self._lock:
            if self._handle is not None:
                self._handle.write(text)
                self._handle.flush()


def write_new(target: Path, data: bytes, lock: threading.Lock) -> bool:
    """Write ``target`` atomically, never replacing other content under its name: False when
    a file of that name holds other bytes (the same bytes again are stored: re-uploads of an
    instance are idempotent)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".deid-{secrets.token_hex(8)}.tmp"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, target)  # atomic, and refuses an existing name
        except FileExistsError:
            return same_bytes(target, data)
        except OSError:  # no hard links on this file system: check and rename under a lock
            with lock:
                if target.exists():
                    return same_bytes(target, data)
                os.replace(temp, target)
        return True
    finally:
        temp.unlink(missing_ok=True)


def same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False
