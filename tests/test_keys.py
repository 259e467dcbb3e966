"""Pseudonymizer: keyed UIDs, IDs, names and date shifts; key files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

import pytest

from deid import PolicyError, Pseudonymizer, write_key_file
from tests.conftest import KEY, OTHER_KEY

P = Pseudonymizer(KEY)
UIDS = [f"1.2.826.0.1.3680043.8.498.{n}.{n * 7919 % 1000}" for n in range(500)]
IDS = [f"MRN{n:07d}" for n in range(1000)]


def mac(domain: str, value: str, key: bytes = KEY) -> bytes:
    """HMAC-SHA256 of ``domain NUL value``: the documented construction, computed here."""
    return hmac.new(key, domain.encode() + b"\x00" + value.encode(), hashlib.sha256).digest()


def b32(digest: bytes, length: int) -> str:
    return base64.b32encode(digest).decode()[:length]


# -- known answers: the construction is pinned, so outputs match on every machine ------------


def test_uid_is_2_25_and_the_first_128_bits_of_the_keyed_hash() -> None:
    uid = "1.2.826.0.1.3680043.8.498.1003"
    assert P.uid(uid) == "2.25." + str(int.from_bytes(mac("uid", uid)[:16], "big"))
    assert P.uid(uid + "\x00") == P.uid(f" {uid} ") == P.uid(uid)


def test_ids_names_and_tokens_are_keyed_base32() -> None:
    assert P.patient_id("MRN7781234") == "ID" + b32(mac("patient-id", "MRN7781234"), 14)
    assert P.patient_id(" mrn7781234 ") == P.patient_id("MRN7781234")  # normalised
    assert P.patient_name("MRN7781234", "DOE^JOHN") == "DEID^" + b32(
        mac("patient-id", "MRN7781234"), 14
    )
    assert P.patient_name("", "DOE^JOHN") == "DEID^" + b32(mac("patient-name", "DOE^JOHN"), 14)
    assert P.patient_name(None, "doe^john") == P.patient_name(None, "DOE^JOHN")
    assert P.person_name("SMITH^AL") == "ANON^" + b32(mac("person-name", "SMITH^AL"), 10)
    assert P.token("StudyID", "s 1", 8) == b32(mac("StudyID", "S 1"), 8)
    assert P.token("x", "a  b\x00c") == P.token("x", "A B C")


@pytest.mark.parametrize(("length", "expected"), [(0, 4), (1, 4), (4, 4), (16, 16), (52, 52),
                                                  (99, 52)])  # fmt: skip
def test_token_length_is_clamped_to_4_through_52(length: int, expected: int) -> None:
    token = P.token("d", "v", length)
    assert len(token) == expected
    assert re.fullmatch(r"[A-Z2-7]+", token)


def test_uid_format_and_length_for_many_inputs() -> None:
    seen = set()
    for uid in UIDS:
        new = P.uid(uid)
        assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", new), new
        assert len(new) <= 64
        assert len(new) <= 44  # 2.25. and at most 39 digits of a 128-bit number
        seen.add(new)
    assert len(seen) == len(UIDS)


def test_outputs_are_deterministic_across_instances_and_differ_across_keys() -> None:
    again = Pseudonymizer(bytes(KEY))
    other = Pseudonymizer(OTHER_KEY)
    for uid in UIDS[:50]:
        assert again.uid(uid) == P.uid(uid)
        assert other.uid(uid) != P.uid(uid)
    for pid in IDS[:50]:
        assert again.patient_id(pid) == P.patient_id(pid)
        assert other.patient_id(pid) != P.patient_id(pid)
    assert Pseudonymizer(bytearray(KEY)).uid(UIDS[0]) == P.uid(UIDS[0])


@pytest.mark.parametrize(
    "key",
    [b"", bytes(31), bytes(33), "k" * 32, None, 32, list(range(32))],
    ids=["empty", "31-bytes", "33-bytes", "text", "none", "int", "list"],
)
def test_key_must_be_32_bytes(key: object) -> None:
    with pytest.raises(PolicyError) as caught:
        Pseudonymizer(key)  # type: ignore[arg-type]
    assert str(caught.value) == "<key>: a key must be exactly 32 bytes"


# -- date shifts -------------------------------------------------------------------------------


def test_date_shift_is_within_range_and_never_zero_for_many_ids() -> None:
    shifts = [P.date_shift_days(pid, -3650, -1) for pid in IDS]
    assert all(-3650 <= s <= -1 for s in shifts)
    assert len(set(shifts)) > 800  # spread over the range, not a handful of values
    around_zero = {P.date_shift_days(pid, -5, 5) for pid in IDS}
    assert around_zero == {-5, -4, -3, -2, -1, 1, 2, 3, 4, 5}
    assert {P.date_shift_days(pid, 0, 3) for pid in IDS} == {1, 2, 3}
    assert {P.date_shift_days(pid, -3, 0) for pid in IDS} == {-3, -2, -1}
    assert {P.date_shift_days(pid, 0, 1) for pid in IDS} == {1}
    assert {P.date_shift_days(pid, 7, 7) for pid in IDS} == {7}


def test_date_shift_is_keyed_on_the_normalised_patient_id() -> None:
    shift = P.date_shift_days("MRN7781234", -3650, -1)
    expected = -3650 + int.from_bytes(mac("date-shift", "MRN7781234")[:8], "big") % 3650
    assert shift == expected
    assert P.date_shift_days(" mrn7781234", -3650, -1) == shift
    assert Pseudonymizer(KEY).date_shift_days("MRN7781234", -3650, -1) == shift


@pytest.mark.parametrize(("low", "high"), [(0, 0), (3, 1), (-1, -2)], ids=["zero", "3-1", "-1--2"])
def test_date_shift_range_must_hold_a_nonzero_day(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="range"):
        P.date_shift_days("MRN7781234", low, high)


# -- the key is never shown ------------------------------------------------------------------


def test_repr_and_fingerprint_hide_the_key() -> None:
    text = repr(P) + str(P)
    assert text == 2 * f"Pseudonymizer(fingerprint={P.fingerprint!r})"
    assert re.fullmatch(r"[0-9a-f]{16}", P.fingerprint)
    assert P.fingerprint == mac("fingerprint", "").hex()[:16]
    assert P.fingerprint != Pseudonymizer(OTHER_KEY).fingerprint
    for shown in (KEY.hex(), repr(KEY), KEY.hex()[:16]):
        assert shown not in text
    assert not hasattr(P, "__dict__")  # only the slot: no accidental copies of the key


# -- key files --------------------------------------------------------------------------------


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "site.key", KEY)
    assert path == tmp_path / "site.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="ascii") == f"deid-key-v1:{KEY.hex()}\n"
    loaded = Pseudonymizer.from_file(path)
    assert loaded.fingerprint == P.fingerprint
    assert loaded.uid(UIDS[0]) == P.uid(UIDS[0])
    assert Pseudonymizer.from_file(str(path)).patient_id("X1") == P.patient_id("X1")


def test_key_file_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = write_key_file(tmp_path / "site.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    generated = Pseudonymizer.from_file(path)
    assert generated.fingerprint != P.fingerprint
    assert re.fullmatch(r"deid-key-v1:[0-9a-f]{64}\n", path.read_text(encoding="ascii"))


def test_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "site.key", KEY)
    with pytest.raises(PolicyError) as caught:
        write_key_file(path, OTHER_KEY)
    assert str(caught.value) == f"{path}: refusing to overwrite an existing key file"
    assert path.read_text(encoding="ascii") == f"deid-key-v1:{KEY.hex()}\n"


@pytest.mark.parametrize(
    "key", [bytes(31), "k" * 32, b""], ids=["31-bytes", "text-of-32-characters", "empty"]
)
def test_key_file_with_a_bad_key_is_not_created(tmp_path: Path, key: object) -> None:
    with pytest.raises(PolicyError) as caught:
        write_key_file(tmp_path / "site.key", key)  # type: ignore[arg-type]
    assert "exactly 32 bytes" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


SECRET_HEX = OTHER_KEY.hex()
MALFORMED = {
    "empty": (b"", "not a key file"),
    "no-header": (SECRET_HEX.encode(), "not a key file"),
    "wrong-header": (f"deid-key-v0:{SECRET_HEX}".encode(), "not a key file"),
    "three-parts": (f"deid-key-v1:{SECRET_HEX}:{SECRET_HEX}".encode(), "not a key file"),
    "not-hex": (("deid-key-v1:" + "zz" + SECRET_HEX[2:]).encode(), "key is not hexadecimal"),
    "short": (f"deid-key-v1:{SECRET_HEX[:62]}".encode(), "key must be 32 bytes"),
    "long": (f"deid-key-v1:{SECRET_HEX}00".encode(), "key must be 32 bytes"),
    "not-ascii": (f"deid-key-v1:{SECRET_HEX}é".encode(), "cannot read key file"),
}


@pytest.mark.parametrize(("content", "message"), MALFORMED.values(), ids=MALFORMED)
def test_malformed_key_file_is_a_policy_error_without_the_key_text(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "site.key"
    path.write_bytes(content)
    with pytest.raises(PolicyError) as caught:
        Pseudonymizer.from_file(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: {message}")
    assert caught.value.source == str(path)
    for shown in (SECRET_HEX, SECRET_HEX[:16], SECRET_HEX[2:18], SECRET_HEX[-16:]):
        assert shown not in text
    assert caught.value.__cause__ is None  # no chained error that could quote the file
    assert caught.value.__context__ is None or caught.value.__suppress_context__


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_key_file_is_a_policy_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "site.key"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(PolicyError) as caught:
        Pseudonymizer.from_file(path)
    assert str(caught.value).startswith(f"{path}: cannot read key file (")


def test_derived_keys_differ_by_purpose_and_by_key() -> None:
    from deid import Pseudonymizer

    one, two = Pseudonymizer(bytes(range(32))), Pseudonymizer(bytes(range(1, 33)))
    a = one.derive_key("crosswalk-encryption")
    assert len(a) == 32
    assert a == Pseudonymizer(bytes(range(32))).derive_key("crosswalk-encryption")
    assert a != one.derive_key("crosswalk-lookup")
    assert a != two.derive_key("crosswalk-encryption")
    with pytest.raises(ValueError, match="purpose"):
        one.derive_key("")
