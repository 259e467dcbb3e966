"""The fast value layer gives exactly pydicom's values and bytes (deid.values)."""

from __future__ import annotations

import random

import pytest
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from deid.values import TEXT_VRS, encode_values, is_canonical, read_values

_TAG = BaseTag(0x00091010)
_CODECS = ("iso8859", "latin_1", "UTF8", "iso8859_2", "iso_ir_144")
_PIECES = [
    "A", "b", "DOE", "^", "=", "\\", " ", "  ", "\x00", "1.2", ".3", "é", "Ü", "ß", "ж", "中",
    "-", "7", "2024", "\t", "^^", "==",
]  # fmt: skip


def _pydicom_values(raw: RawDataElement, codec: str) -> list[str]:
    value = convert_raw_data_element(raw, encoding=[codec]).value
    items = list(value) if isinstance(value, MultiValue) else [value]
    return [str(item) for item in items]


def _pydicom_bytes(vr: str, value: object, codec: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_data_element(fp, DataElement(_TAG, vr, value), [codec])
    return fp.getvalue()[8:]


def _texts(rng: random.Random, count: int) -> list[str]:
    out = ["", " ", "\x00", "A", "AB", "A\\B", "A \\B ", "A^B=", "=", "\\"]
    for _ in range(count):
        out.append("".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 6))))
    return out


def _raws(vr: str, codec: str, texts: list[str]) -> list[bytes]:
    out: list[bytes] = []
    for text in texts:
        try:
            data = text.encode(codec)
        except UnicodeError:
            continue
        out.append(data)
        out.append(data + b" " if len(data) % 2 else data)
        out.append(data + (b"\x00" if vr == "UI" else b" ") * 2)
    return out


@pytest.mark.parametrize("codec", _CODECS)
@pytest.mark.parametrize("vr", sorted(TEXT_VRS))
def test_read_values_and_canonical_match_pydicom(vr: str, codec: str) -> None:
    rng = random.Random(f"{vr}{codec}")
    for data in _raws(vr, codec, _texts(rng, 150)):
        raw = RawDataElement(_TAG, vr, len(data), data, 0, False, True)
        values = read_values(raw, vr, codec)
        if values is None:
            continue
        expected = _pydicom_values(raw, codec)
        assert values == expected, (vr, codec, data)
        written = _pydicom_bytes(vr, convert_raw_data_element(raw, encoding=[codec]).value, codec)
        assert is_canonical(raw, vr, values, codec) == (written == data), (vr, codec, data)


@pytest.mark.parametrize("codec", _CODECS)
@pytest.mark.parametrize("vr", sorted(TEXT_VRS))
def test_encode_values_matches_pydicom(vr: str, codec: str) -> None:
    rng = random.Random(f"enc{vr}{codec}")
    texts = _texts(rng, 150)
    values: list[object] = [None, [], [""], ["", ""]]
    values += texts
    values += [[rng.choice(texts) for _ in range(rng.randint(1, 3))] for _ in range(60)]
    for value in values:
        data = encode_values(value, vr, codec)
        if data is None:
            continue
        copy = list(value) if isinstance(value, list) else value
        assert data == _pydicom_bytes(vr, copy, codec), (vr, codec, value)


def test_odd_cases_take_pydicoms_path() -> None:
    deferred = RawDataElement(_TAG, "LO", 4, None, 0, False, True)
    assert read_values(deferred, "LO", "latin_1") is None
    escaped = RawDataElement(_TAG, "LO", 4, b"\x1b$B", 0, False, True)
    assert read_values(escaped, "LO", "latin_1") is None
    bad = RawDataElement(_TAG, "LO", 2, b"\xff\xfe", 0, False, True)
    assert read_values(bad, "LO", "UTF8") is None
    big = RawDataElement(_TAG, "LO", 2, b"AB", 0, False, False)
    assert read_values(big, "LO", "latin_1") is None
    assert encode_values([1, 2], "LO", "latin_1") is None
    assert encode_values("\u4e2d", "LO", "latin_1") is None


@pytest.mark.parametrize(
    ("tag", "vr", "value"),
    [
        (0x00280010, "US", b"\x00\x02"),  # Rows 512
        (0x00280011, "US", b"\xff\xff"),
        (0x00280010, "US", b"\x01\x00\x02\x00"),  # two values: pydicom's MultiValue
        (0x00280010, "US", b""),
        (0x00100020, "LO", b"PID 1 "),
    ],
)
def test_get_value_equals_pydicom(tag: int, vr: str, value: bytes) -> None:
    from pydicom.dataset import Dataset

    from deid.tags import keyword_of
    from deid.values import get_value

    ds = Dataset()
    ds._dict[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)
    keyword = keyword_of(tag)
    expected = Dataset()
    expected._dict[BaseTag(tag)] = ds._dict[BaseTag(tag)]
    assert get_value(ds, keyword) == expected.get(keyword)
    assert type(get_value(ds, keyword)) is type(expected.get(keyword))
    assert get_value(ds, "PatientAge") is None  # absent: what ds.get gives
