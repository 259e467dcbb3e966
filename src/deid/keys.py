"""Keyed pseudonyms: every replacement is HMAC-SHA256 of (secret key, original value).

Same key, same output, on any machine, in any process, in any order, with no shared database.
The key lives on a :class:`Pseudonymizer` the caller owns; it is never printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from deid.errors import PolicyError

KEY_BYTES = 32
_KEY_FILE_HEADER = "deid-key-v1"


def _normalise(value: str) -> str:
    return " ".join(value.replace("\x00", " ").split()).upper()


class Pseudonymizer:
    """Keyed, deterministic replacements for UIDs, IDs, names and date shifts.

    Parameters
    ----------
    key : bytes
        A 256-bit secret. Use :meth:`generate` for a new one or :meth:`from_file` to load one
        written by ``deid keygen``.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise PolicyError(f"a key must be exactly {KEY_BYTES} bytes", source="<key>")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return f"Pseudonymizer(fingerprint={self.fingerprint!r})"

    @classmethod
    def generate(cls) -> Pseudonymizer:
        """A new random key (the mapping cannot be reproduced without saving it)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Pseudonymizer:
        """Load a key file written by :func:`write_key_file` (``deid keygen``)."""
        source = str(path)
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(
                f"cannot read key file ({type(exc).__name__})", source=source
            ) from None
        parts = text.strip().split(":")
        if len(parts) != 2 or parts[0] != _KEY_FILE_HEADER:
            raise PolicyError(
                f"not a key file: expected '{_KEY_FILE_HEADER}:<64 hex digits>'", source=source
            )
        try:
            key = bytes.fromhex(parts[1])
        except ValueError:
            raise PolicyError("key is not hexadecimal", source=source) from None
        if len(key) != KEY_BYTES:
            raise PolicyError(f"key must be {KEY_BYTES} bytes", source=source)
        return cls(key)

    @property
    def fingerprint(self) -> str:
        """A short public fingerprint of the key (safe to log: it reveals nothing of it)."""
        return self._mac("fingerprint", "").hex()[:16]

    def _mac(self, domain: str, value: str) -> bytes:
        message = domain.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def derive_key(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose (``crosswalk-encryption``, ...), derived from this key
        (HMAC-SHA256 with a purpose label: keys for different purposes are unrelated)."""
        if not purpose or not purpose.isascii():
            raise ValueError("a purpose is a non-empty ASCII label")
        return self._mac("derived-key", purpose)

    def uid(self, uid: str) -> str:
        """``2.25.<decimal of 128 bits of HMAC(uid)>`` (PS3.5 B.2, at most 44 characters)."""
        digest = self._mac("uid", uid.strip().rstrip("\x00"))
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def token(self, domain: str, value: str, length: int = 16) -> str:
        """An upper-case base32 token of ``length`` characters keyed on ``value``."""
        digest = self._mac(domain, _normalise(value))
        return base64.b32encode(digest).decode("ascii")[: max(4, min(length, 52))]

    def patient_id(self, value: str) -> str:
        """Pseudonymous Patient ID (16 characters)."""
        return "ID" + self.token("patient-id", value, 14)

    def patient_name(self, patient_id: str | None, name: str) -> str:
        """Pseudonymous Patient's Name; keyed on the Patient ID when there is one.

        One patient then has one pseudonymous name, whatever spelling each object used.
        """
        if patient_id:
            return "DEID^" + self.token("patient-id", patient_id, 14)
        return "DEID^" + self.token("patient-name", name, 14)

    def person_name(self, name: str) -> str:
        """Pseudonym for another person's name (operators, physicians)."""
        return "ANON^" + self.token("person-name", name, 10)

    def date_shift_days(self, patient_id: str, low: int, high: int) -> int:
        """One shift per patient, in ``[low, high]`` whole days, never zero."""
        if low > high:
            raise ValueError("date shift range is empty")
        values = high - low + 1 - (1 if low <= 0 <= high else 0)
        if values <= 0:
            raise ValueError("date shift range holds only zero")
        digest = self._mac("date-shift", _normalise(patient_id))
        n = low + int.from_bytes(digest[:8], "big") % values
        if low <= 0 <= n:
            n += 1
        return n


def write_key_file(path: str | os.PathLike[str], key: bytes | None = None) -> Path:
    """Write a new key file readable by its owner only (mode 0600); refuse to overwrite."""
    key = secrets.token_bytes(KEY_BYTES) if key is None else key
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise PolicyError(f"a key must be exactly {KEY_BYTES} bytes", source=str(path))
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise PolicyError("refusing to overwrite an existing key file", source=str(path)) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"{_KEY_FILE_HEADER}:{key.hex()}\n")
    os.chmod(target, 0o600)
    return target
