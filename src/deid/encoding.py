"""Write a de-identified data set as a Part 10 file, copying untouched elements as bytes.

Elements the plan kept at the top level are still the raw bytes pydicom read: they are written
back byte for byte behind a header built here, so kept values are bit-identical and cost no
decoding or re-encoding; the pixel data value is copied once. Sequences whose items hold only
raw elements (and text values :mod:`deid.values` encodes) are written here the way pydicom's
writer writes them; anything else goes through pydicom's own element writer. Big endian and
deflated transfer syntaxes are written by :func:`pydicom.dcmwrite` as a whole.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from typing import Any

from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import (
    correct_ambiguous_vr_element,
    dcmwrite,
    write_data_element,
    write_file_meta_info,
)
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import VR

from deid.codes import RejectReason
from deid.errors import RejectedError
from deid.values import CODECS, TEXT_VRS, encode_values, fast_reading

#: Explicit VRs with a 4-byte length field (PS3.5 Table 7.1-1).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_CHARSET = 0x00080005
_ITEM = b"\xfe\xff\x00\xe0"
_ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_UNDEFINED_LENGTH = b"\xff\xff\xff\xff"
_UNDEFINED = 0xFFFFFFFF
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_DEFLATED = "1.2.840.10008.1.2.1.99"
# Element headers (PS3.5 7.1): implicit VR; explicit VR with a 2-byte or a 4-byte length.
_IMPLICIT_HEADER = struct.Struct("<HHL")
_SHORT_HEADER = struct.Struct("<HH2sH")
_LONG_HEADER = struct.Struct("<HH2s2xL")


def encode(ds: Dataset) -> bytes:
    """``ds`` (with its new ``file_meta``) as a Part 10 file with a zero preamble."""
    return encode_with_last(ds)[0]


def encode_with_last(ds: Dataset) -> tuple[bytes, object]:
    """:func:`encode`, and the object whose bytes were written last (``None``: unknown)."""
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if ts in (ExplicitVRBigEndian, _DEFLATED) or not ts.is_little_endian:
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue(), None
    implicit = ts == ImplicitVRLittleEndian
    header = _file_meta_bytes(ds.file_meta)
    if header is None:
        meta = DicomBytesIO()
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        header = meta.getvalue()
    chunks: list[Any] = [b"\x00" * 128, b"DICM", header]
    chunks.extend(_elements(ds, implicit))
    return b"".join(chunks), chunks[-1]


def _elements(ds: Dataset, implicit: bool) -> list[Any]:
    encodings = ds.get("SpecificCharacterSet", "iso8859") or "iso8859"
    codec = _codec(encodings)
    out: list[Any] = []
    writer = _writer(implicit)
    for tag, elem in sorted(ds.items(), key=_tag_order):
        if not tag & 0xFFFF and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        chunks: list[bytes] | None = None
        if isinstance(elem, RawDataElement) and bool(elem.is_implicit_VR) == implicit:
            header = raw_header(elem, implicit) if elem.is_little_endian else None
            if header is not None:
                chunks = [header, elem.value or b""]
                if elem.length == _UNDEFINED:
                    chunks.append(_SEQUENCE_DELIMITER)
        elif isinstance(elem, DataElement) and elem.VR == "SQ":
            chunks = sequence_bytes(elem, implicit, codec)
        elif isinstance(elem, DataElement):
            data = _text_bytes(elem, codec)
            if data is not None:
                chunks = [_header(tag, str(elem.VR), len(data), implicit), data]
        if chunks is not None:
            if writer.tell():
                out.append(writer.getvalue())
                writer = _writer(implicit)
            out.extend(chunks)
            continue
        decoded: DataElement | RawDataElement = ds[tag]
        if decoded.VR == "SQ":
            check_writable(decoded.value)
        if decoded.VR and " or " in decoded.VR:  # built in code (e.g. "OB or OW"): settle it
            decoded = correct_ambiguous_vr_element(decoded, ds, True)
        write_data_element(writer, decoded, encodings)
    if writer.tell():
        out.append(writer.getvalue())
    return out


#: Sequence levels deid lets pydicom write (its writer recurses, and wraps an error with the
#: whole traceback at every level: time and memory grow with the square of the depth).
MAX_WRITE_DEPTH = 64
_KNOWN_VRS = frozenset(str(vr.value) for vr in VR)


def check_writable(items: object) -> None:
    """Walk a sequence pydicom is about to write, level by level without recursion, and refuse
    what its recursive writer would fail on deep inside (where each level wraps the error in
    the whole traceback so far: time and memory explode): items holding item or delimiter
    tags as elements and elements of an unknown VR (INVALID_DATASET), and nesting over
    :data:`MAX_WRITE_DEPTH` (SIZE_LIMIT)."""
    stack: list[tuple[Dataset, int]] = [(item, 1) for item in _items_of(items)]
    while stack:
        level, depth = stack.pop()
        for tag in list(level.keys()):
            if tag >> 16 == 0xFFFE:
                raise RejectedError(
                    RejectReason.INVALID_DATASET, "an item holds an item or delimiter tag"
                )
            held = level.get_item(tag, keep_deferred=True)
            vr: str | None = getattr(held, "VR", None)  # None: implicit VR, settled on reading
            if vr is not None and vr not in _KNOWN_VRS:
                raise RejectedError(
                    RejectReason.INVALID_DATASET, "an element of an unknown VR inside a sequence"
                )
            if vr != "SQ":
                continue
            if depth >= MAX_WRITE_DEPTH:
                raise RejectedError(
                    RejectReason.SIZE_LIMIT,
                    f"sequences nested over {MAX_WRITE_DEPTH} deep (limit {MAX_WRITE_DEPTH})",
                )
            stack.extend((item, depth + 1) for item in _items_of(level[tag].value))


def _items_of(value: object) -> list[Dataset]:
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [item for item in value if isinstance(item, Dataset)]
    return []


def _file_meta_bytes(meta: FileMetaDataset) -> bytes | None:
    """``write_file_meta_info(enforce_standard=True)`` for a new group (text and OB values,
    no group length yet), with the same effect on ``meta``; ``None``: pydicom writes it."""
    if not fast_reading() or _GROUP_LENGTH in meta:
        return None
    validate_file_meta(meta, enforce_standard=True)  # may add elements, as pydicom's does
    chunks: list[bytes] = []
    for tag, elem in sorted(meta.items(), key=_tag_order):
        if not isinstance(elem, DataElement):
            return None
        vr = str(elem.VR)
        value = elem.value
        if vr == "OB" and isinstance(value, bytes) and len(value) % 2 == 0:
            data: bytes | None = value
        else:
            data = _text_bytes(elem, "iso8859")
        if data is None:
            return None
        chunks += [_header(tag, vr, len(data), False), data]
    body = b"".join(chunks)
    meta.FileMetaInformationGroupLength = len(body)
    return _header(_GROUP_LENGTH, "UL", 4, False) + struct.pack("<L", len(body)) + body


_GROUP_LENGTH = 0x00020000


def _tag_order(item: tuple[int, object]) -> int:
    return int(item[0])


def _codec(encodings: object) -> str | None:
    """The one codec pydicom's writer encodes text with, when :mod:`deid.values` handles it."""
    try:
        converted = convert_encodings(encodings)  # type: ignore[arg-type]
    except Exception:
        return None
    return converted[0] if len(converted) == 1 and converted[0] in CODECS else None


def sequence_bytes(elem: DataElement, implicit: bool, codec: str | None) -> list[bytes] | None:
    """A sequence element as pydicom's writer writes it (little endian), without pydicom.

    Items whose elements are all raw (or sequences of such, or text values
    :func:`deid.values.encode_values` writes) are copied; anything else gives ``None`` and
    pydicom writes the whole sequence.
    """
    parts: list[bytes] = []
    for item in elem.value or ():
        body = _item_body(item, implicit, codec)
        if body is None:
            return None
        if getattr(item, "is_undefined_length_sequence_item", False):
            parts += [_ITEM, _UNDEFINED_LENGTH, body, _ITEM_DELIMITER]
        else:
            parts += [_ITEM, struct.pack("<L", len(body)), body]
    content = b"".join(parts)
    undefined = bool(elem.is_undefined_length)
    length = struct.pack("<L", _UNDEFINED if undefined else len(content))
    tag = struct.pack("<HH", elem.tag >> 16, elem.tag & 0xFFFF)
    header = tag + length if implicit else tag + b"SQ\x00\x00" + length
    return [header, content, _SEQUENCE_DELIMITER] if undefined else [header, content]


def _item_body(item: Dataset, implicit: bool, codec: str | None) -> bytes | None:
    """The encoded elements of one sequence item, as pydicom's ``write_dataset`` writes them."""
    if item.original_encoding != (implicit, True) or _CHARSET in item:
        return None
    try:
        if item.original_character_set != item._character_set:
            return None  # pydicom would decode and re-encode every element
    except Exception:
        return None
    chunks: list[bytes] = []
    for tag, elem in sorted(item.items(), key=_tag_order):
        if not tag & 0xFFFF and tag >> 16 > 6:
            continue
        if isinstance(elem, RawDataElement):
            header = _item_raw_header(elem, implicit)
            if header is None:
                return None
            chunks += [header, elem.value or b""]
            if elem.length == _UNDEFINED:
                chunks.append(_SEQUENCE_DELIMITER)
        elif elem.VR == "SQ":
            nested = sequence_bytes(elem, implicit, codec)
            if nested is None:
                return None
            chunks += nested
        else:
            data = _text_bytes(elem, codec)
            if data is None:
                return None
            chunks += [_header(elem.tag, str(elem.VR), len(data), implicit), data]
    return b"".join(chunks)


def _text_bytes(elem: DataElement, codec: str | None) -> bytes | None:
    """A decoded text element's value as pydicom writes it; ``None`` for anything else."""
    vr = str(elem.VR)
    if codec is None or vr not in TEXT_VRS or not fast_reading():
        return None
    value = elem.value
    if isinstance(value, MultiValue):
        value = list(value)
    data = encode_values(value, vr, codec)
    if data is None or (vr not in LONG_VRS and len(data) > 0xFFFF):
        return None
    return data


def _item_raw_header(elem: RawDataElement, implicit: bool) -> bytes | None:
    """pydicom's header for a raw element inside an item (values copied as they are)."""
    if elem.value is None or elem.tag == 0x7FE00010 or not elem.is_little_endian:
        return None
    undefined = elem.length == _UNDEFINED
    if implicit:
        length = _UNDEFINED if undefined else len(elem.value)
        return struct.pack("<HHL", elem.tag >> 16, elem.tag & 0xFFFF, length)
    vr = elem.VR
    if not vr or len(vr) != 2:
        return None
    if vr not in LONG_VRS and (undefined or len(elem.value) > 0xFFFF):
        return None
    return _header(elem.tag, vr, _UNDEFINED if undefined else len(elem.value), implicit)


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return _IMPLICIT_HEADER.pack(tag >> 16, tag & 0xFFFF, length)
    if len(vr) == 2:  # (encoded as ASCII: two bytes, or UnicodeEncodeError as below)
        header = _LONG_HEADER if vr in LONG_VRS else _SHORT_HEADER
        return header.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if vr in LONG_VRS:
        return head + vr.encode("ascii") + b"\x00\x00" + struct.pack("<L", length)
    return head + vr.encode("ascii") + struct.pack("<H", length)


def _writer(implicit: bool) -> DicomBytesIO:
    writer = DicomBytesIO()
    writer.is_little_endian, writer.is_implicit_VR = True, implicit
    return writer


def raw_header(elem: RawDataElement, implicit: bool) -> bytes | None:
    """Tag, VR and length of a raw element as they are written; None if it cannot be kept."""
    value = elem.value or b""
    undefined = elem.length == _UNDEFINED
    length = _UNDEFINED if undefined else len(value)
    if len(value) % 2:
        return None  # odd length on read: let pydicom pad it
    tag = elem.tag
    if implicit:
        return _IMPLICIT_HEADER.pack(tag >> 16, tag & 0xFFFF, length)
    vr = elem.VR
    if not vr or len(vr) != 2:
        return None
    if vr in LONG_VRS:
        return _LONG_HEADER.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
    if undefined or length > 0xFFFF:
        return None
    return _SHORT_HEADER.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
