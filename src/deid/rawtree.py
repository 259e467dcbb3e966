"""Read a plain Part 10 file into raw elements without pydicom's reader (for :mod:`deid.fastpath`).

Only the plainest files are read: a 128-byte preamble and ``DICM``, an explicit VR little
endian File Meta Information group, and an explicit VR little endian data set (native or
encapsulated pixel data, not deflated) whose elements all have known VRs, strictly increasing
tags and defined lengths (encapsulated Pixel Data aside: its items are walked as pydicom's
reader walks them), and whose last element ends where the bytes end. The elements are the
:class:`~pydicom.dataelem.RawDataElement` s :func:`pydicom.dcmread` would hold (same tags, VRs,
lengths, values and offsets), in a dict in file order; sequences stay raw (their items are read
by :mod:`deid.rawitems`). Anything else gives ``None`` and the caller reads the file with
pydicom as ever. Nothing here logs or raises with a value.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from deid.rawitems import LONG_VR_BYTES, VR_BYTES, empty_raw_value, sequence_end

__all__ = ["EXPLICIT_LITTLE", "Level", "RawFile", "parse_part10", "to_dataset"]

#: Explicit VR Little Endian, the one transfer syntax read here.
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
_PREAMBLE = 128
_UNDEFINED = 0xFFFFFFFF
_SHORT = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")

_VR_TEXT = {vr: vr.decode("ascii") for vr in VR_BYTES}
# A raw element built from all its fields at once (what RawDataElement(...) builds, without
# the keyword-argument handling of its constructor).
_RAW = RawDataElement
_raw = tuple.__new__
if RawDataElement._fields[7:] != ("is_raw", "is_buffered"):  # not the pydicom this knows

    def _raw(cls: type, fields: tuple) -> RawDataElement:  # type: ignore[type-arg,misc]
        return RawDataElement(*fields[:7])


#: One data set level: tag -> raw element, in file (= tag) order.
Level = dict[BaseTag, RawDataElement]


class RawFile(NamedTuple):
    """A parsed Part 10 file: its File Meta Information and its data set, both raw."""

    meta: Level
    elements: Level


def parse_part10(data: bytes) -> RawFile | None:
    """The raw elements of a plain explicit VR little endian Part 10 file; ``None``: any doubt."""
    if len(data) < _PREAMBLE + 12 or data[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
        return None
    try:
        parsed = _level(data, _PREAMBLE + 4, meta=True)
        if parsed is None:
            return None
        meta, pos = parsed
        syntax = meta.get(BaseTag(0x00020010))
        if syntax is None or not _explicit_little(syntax.value or b""):
            return None
        parsed = _level(data, pos, meta=False)
    except struct.error:
        return None
    if parsed is None or not parsed[0] or parsed[1] != len(data):
        return None
    return RawFile(meta, parsed[0])


def _level(data: bytes, pos: int, *, meta: bool) -> tuple[Level, int] | None:
    """Elements from ``pos``: the group 0002 ones (``meta``), or all up to the end."""
    out: Level = {}
    end = len(data)
    last = -1
    while pos < end:
        group, element, vr, length = _SHORT.unpack_from(data, pos)
        if meta and group != 2:
            break
        tag = group << 16 | element
        text = _VR_TEXT.get(vr)
        if tag <= last or group == 0xFFFE or (not meta and group == 2) or text is None:
            return None
        start = pos + 8
        if vr in LONG_VR_BYTES:
            (length,) = _LENGTH.unpack_from(data, start)
            start += 4
        stop = start + length
        if length == _UNDEFINED:
            if meta:
                return None
            if text == "SQ":  # (pydicom's reader builds the items: the same as these)
                sequence_stop = sequence_end(data, start)
                if sequence_stop is None:
                    return None
                value: bytes | None = data[start : sequence_stop - 8]
                stop = sequence_stop
            elif tag != _PIXEL_DATA or text not in ("OB", "OW"):
                return None
            else:
                fragments_end = _fragments_end(data, start)
                if fragments_end is None:
                    return None
                value = data[start:fragments_end]
                stop = fragments_end + 8
        elif stop > end:
            return None
        else:
            value = data[start:stop] if length else empty_raw_value(text)
        key = BaseTag(tag)
        out[key] = _raw(_RAW, (key, text, length, value, start, False, True, True, False))
        last, pos = tag, stop
    return out, pos


_PIXEL_DATA = 0x7FE00010
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"


def _fragments_end(data: bytes, pos: int) -> int | None:
    """Where the items of encapsulated pixel data starting at ``pos`` end (the offset of the
    sequence delimiter, whose length must be 0), as pydicom's reader walks them; ``None``
    where its reader would scan for the delimiter instead (a malformed item)."""
    end = len(data)
    while pos + 8 <= end:
        tag = data[pos : pos + 4]
        if tag == _SEQUENCE_DELIMITER:
            return pos if data[pos + 4 : pos + 8] == b"\x00\x00\x00\x00" else None
        if tag != _ITEM:
            return None
        (length,) = _LENGTH.unpack_from(data, pos + 4)
        pos += 8 + length
    return None


def _explicit_little(uid: bytes) -> bool:
    """Whether a transfer syntax UID names an explicit VR little endian data set that is not
    deflated (native or encapsulated pixel data)."""
    try:
        syntax = UID(uid.rstrip(b"\x00 ").decode("ascii").strip())
    except UnicodeDecodeError:
        return False
    return (
        syntax.is_transfer_syntax
        and syntax.is_little_endian
        and not syntax.is_implicit_VR
        and not syntax.is_deflated
    )


def to_dataset(parsed: RawFile) -> Dataset:
    """A data set holding the raw elements as :func:`pydicom.dcmread` would (for the checks
    that read a few values through pydicom: gates, limits, the pixel-pass decision)."""
    ds = Dataset(dict(parsed.elements))
    charset = parsed.elements.get(BaseTag(0x00080005))
    encoding: Any = default_encoding
    if charset is not None:  # as dcmread reads it: the element itself stays raw
        encoding = convert_encodings(convert_raw_data_element(charset).value)
    ds.set_original_encoding(False, True, encoding)
    meta = FileMetaDataset()
    meta._dict.update(parsed.meta)  # (group 0002 elements only: read so)
    ds.file_meta = meta
    return ds
