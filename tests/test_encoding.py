"""The writer: kept elements leave as the bytes they came in, changed ones are re-encoded."""

from __future__ import annotations

import io
import struct

from pydicom import dcmread

from deid import Deidentifier, Policy
from tests.conftest import KEY
from tests.factories import make_dataset, to_bytes


def _element(data: bytes, tag: int) -> bytes:
    """Header and value of an explicit VR little endian element with a 2-byte length."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    at = data.index(head)
    length = struct.unpack("<H", data[at + 6 : at + 8])[0]
    return data[at : at + 8 + length]


def test_kept_values_are_bit_identical_even_when_oddly_padded() -> None:
    data = bytearray(to_bytes(make_dataset(pixels=True, Manufacturer="ACME", KVP="120")))
    # Manufacturer padded with NUL instead of a space: unusual, valid to keep as is
    manufacturer = _element(bytes(data), 0x00080070)
    at = bytes(data).index(manufacturer)
    data[at + 8 : at + 8 + 4] = b"ACM\x00"
    source = bytes(data)
    out = Deidentifier(Policy(clean_pixel_data="never"), KEY).deidentify_bytes(source).data
    for tag in (0x00080070, 0x00180060, 0x00280010, 0x00080060):
        assert _element(source, tag) in out, f"{tag:08X}"
    pixels = dcmread(io.BytesIO(source)).PixelData
    assert out.endswith(pixels)


def test_changed_values_are_re_encoded_and_read_back() -> None:
    source = to_bytes(make_dataset(StudyDescription="CT for DOE"))
    result = Deidentifier("upload", KEY).deidentify_bytes(source)
    out = dcmread(io.BytesIO(result.data))
    assert out.StudyDescription == "CT for ***"
    assert result.data[:128] == b"\x00" * 128 and result.data[128:132] == b"DICM"
    assert _element(source, 0x00081030) not in result.data
