"""The crosswalk: original identifiers behind pseudonyms, encrypted at rest, for re-identification.

On request (``deid run --crosswalk DIR``), every pseudonym a run gives out for a UID or a
Patient ID is stored in ``DIR/crosswalk.sqlite`` (SQLite: embedded, no server) with the
original value **encrypted** (AES-256-GCM under a key derived from the deid key, with the kind
and the row's lookup id bound in as associated data) and found by a keyed lookup id (an HMAC of
the pseudonym), so the file holds no identifier and no pseudonym in plain text. Authorised staff
holding the key run ``deid reidentify --key-file K --crosswalk DIR PSEUDONYM`` (a report coming
back for a pseudonymised study). Every decrypted value is checked against the keyed function
that made the pseudonym before it is shown.

The same run also writes ``DIR/uid_mapping.csv`` and ``DIR/patid_mapping.csv`` (header
``id_old,id_new``), the files research de-identification challenges (MIDI-B) ask for: these
hold the original identifiers **in plain text**; DIR must be kept like the originals.

Needs the ``crosswalk`` extra (``cryptography``).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deid.errors import MissingDependencyError
from deid.keys import Pseudonymizer

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

STORE_NAME = "crosswalk.sqlite"
UID_CSV = "uid_mapping.csv"
PATID_CSV = "patid_mapping.csv"
UID, PATIENT_ID = "uid", "patient_id"
KINDS = (UID, PATIENT_ID)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS crosswalk (
    lookup BLOB PRIMARY KEY,      -- HMAC(lookup key, kind, pseudonym)
    kind TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL          -- AES-256-GCM(original), associated data: kind, lookup
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Pair = tuple[str, str, str]  # (kind, original, pseudonym)


def _aead(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise MissingDependencyError("the encrypted crosswalk", "crosswalk") from None
    return AESGCM(key)


class CrosswalkStore:
    """``crosswalk.sqlite`` in a folder, opened with the deid key.

    A store made with one key cannot be opened with another (its fingerprint is checked).
    """

    def __init__(self, folder: Path, pseudonymizer: Pseudonymizer) -> None:
        self.folder = folder
        self.pseudonymizer = pseudonymizer
        self._aead = _aead(pseudonymizer.derive_key("crosswalk-encryption"))
        self._lookup_key = pseudonymizer.derive_key("crosswalk-lookup")
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / STORE_NAME)
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('key', ?)", (pseudonymizer.fingerprint,))
            self._db.commit()
        elif row[0] != pseudonymizer.fingerprint:
            self._db.close()
            raise ValueError(f"{folder / STORE_NAME}: made with another key")

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def __enter__(self) -> CrosswalkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _id(self, kind: str, pseudonym: str) -> bytes:
        message = kind.encode("ascii") + b"\x00" + pseudonym.encode("utf-8")
        return hmac.new(self._lookup_key, message, hashlib.sha256).digest()

    def add(self, pairs: Iterable[Pair]) -> int:
        """Store pairs (already stored pseudonyms are left as they are); the count added."""
        added = 0
        for kind, original, pseudonym in pairs:
            if kind not in KINDS:
                raise ValueError(f"unknown crosswalk kind {kind!r}")
            lookup = self._id(kind, pseudonym)
            nonce = secrets.token_bytes(12)
            sealed = self._aead.encrypt(nonce, original.encode("utf-8"), _bound(kind, lookup))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO crosswalk VALUES (?, ?, ?, ?)",
                (lookup, kind, nonce, sealed),
            )
            added += cursor.rowcount
        self._db.commit()
        return added

    def lookup(self, pseudonym: str) -> list[tuple[str, str]]:
        """``(kind, original)`` for a pseudonym (empty when it is not in the store)."""
        found = []
        for kind in KINDS:
            lookup = self._id(kind, pseudonym)
            row = self._db.execute(
                "SELECT nonce, sealed FROM crosswalk WHERE lookup = ?", (lookup,)
            ).fetchone()
            if row is None:
                continue
            original, again = self._open(kind, lookup, row[0], row[1])
            if again != pseudonym:
                raise ValueError("a crosswalk entry does not match its pseudonym")
            found.append((kind, original))
        return found

    def _open(self, kind: str, lookup: bytes, nonce: bytes, sealed: bytes) -> tuple[str, str]:
        """The original of a row and the pseudonym deid gives it (checked against the row)."""
        original = self._aead.decrypt(nonce, sealed, _bound(kind, lookup)).decode("utf-8")
        pseudonym = pseudonym_of(self.pseudonymizer, kind, original)
        if self._id(kind, pseudonym) != lookup:
            raise ValueError("a crosswalk entry does not match its lookup id")
        return original, pseudonym

    def pairs(self, kind: str) -> Iterator[tuple[str, str]]:
        """Every ``(original, pseudonym)`` of one kind (decrypted: for the mapping files)."""
        rows = self._db.execute(
            "SELECT lookup, nonce, sealed FROM crosswalk WHERE kind = ?", (kind,)
        ).fetchall()
        for lookup, nonce, sealed in rows:
            yield self._open(kind, lookup, nonce, sealed)


def _bound(kind: str, lookup: bytes) -> bytes:
    return kind.encode("ascii") + b"\x00" + lookup


def pseudonym_of(pseudonymizer: Pseudonymizer, kind: str, original: str) -> str:
    """The pseudonym deid gives ``original`` (so a crosswalk entry can be checked)."""
    if kind == UID:
        return pseudonymizer.uid(original)
    return pseudonymizer.patient_id(original)


def pairs_of(original: Dataset, output: Dataset, pseudonymizer: Pseudonymizer) -> list[Pair]:
    """The (kind, original, pseudonym) pairs of one object: every UID of the input, at any
    depth, whose keyed pseudonym is in the output; the Patient ID when it was replaced."""
    out_uids: set[str] = set()
    for element in output.iterall():
        if element.VR == "UI":
            out_uids.update(_values(element.value))
    found: dict[Pair, None] = {}
    for element in original.iterall():
        if element.VR != "UI":
            continue
        for value in _values(element.value):
            new = pseudonymizer.uid(value)
            if new in out_uids:
                found[(UID, value, new)] = None
    before = str(original.get("PatientID") or "").strip()
    after = str(output.get("PatientID") or "").strip()
    if before and after and after == pseudonymizer.patient_id(before):
        found[(PATIENT_ID, before, after)] = None
    return list(found)


def _values(value: object) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    texts = []
    for item in items:
        text = str(item or "").strip().rstrip("\x00")
        if text:
            texts.append(text)
    return texts


def write_mapping_files(store: CrosswalkStore) -> None:
    """``uid_mapping.csv`` and ``patid_mapping.csv`` (``id_old,id_new``), sorted."""
    for kind, name in ((UID, UID_CSV), (PATIENT_ID, PATID_CSV)):
        rows = sorted(store.pairs(kind))
        temp = store.folder / f".{name}.{secrets.token_hex(4)}.tmp"
        with open(temp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["id_old", "id_new"])
            writer.writerows(rows)
        temp.replace(store.folder / name)
