"""Write a de-identified data set as a Part 10 file, copying untouched elements as bytes.

Elements the plan kept at the top level are still the raw bytes pydicom read: they are written
back byte for byte behind a header built here, so kept values are bit-identical and cost no
decoding or re-encoding; the pixel data value is copied once. Changed elements and sequences
go through pydicom's own element writer. Big endian and deflated transfer syntaxes are written
by :func:`pydicom.dcmwrite` as a whole.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import (
    correct_ambiguous_vr_element,
    dcmwrite,
    write_data_element,
    write_file_meta_info,
)
from pydicom.uid import UID, ExplicitVRBigEndian, ImplicitVRLittleEndian

from deid.tags import stored

#: Explicit VRs with a 4-byte length field (PS3.5 Table 7.1-1).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_UNDEFINED = 0xFFFFFFFF
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_DEFLATED = "1.2.840.10008.1.2.1.99"


def encode(ds: Dataset) -> bytes:
    """``ds`` (with its new ``file_meta``) as a Part 10 file with a zero preamble."""
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if ts in (ExplicitVRBigEndian, _DEFLATED) or not ts.is_little_endian:
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()
    implicit = ts == ImplicitVRLittleEndian
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    chunks: list[Any] = [b"\x00" * 128, b"DICM", meta.getvalue()]
    chunks.extend(_elements(ds, implicit))
    return b"".join(chunks)


def _elements(ds: Dataset, implicit: bool) -> list[Any]:
    encodings = ds.get("SpecificCharacterSet", "iso8859") or "iso8859"
    out: list[Any] = []
    writer = _writer(implicit)
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = stored(ds, tag)
        if isinstance(elem, RawDataElement) and bool(elem.is_implicit_VR) == implicit:
            header = raw_header(elem, implicit) if elem.is_little_endian else None
            if header is not None:
                if writer.tell():
                    out.append(writer.getvalue())
                    writer = _writer(implicit)
                out.append(header)
                out.append(elem.value or b"")
                if elem.length == _UNDEFINED:
                    out.append(_SEQUENCE_DELIMITER)
                continue
        elem = ds[tag]
        if elem.VR and " or " in elem.VR:  # built in code (e.g. "OB or OW"): settle it first
            elem = correct_ambiguous_vr_element(elem, ds, True)
        write_data_element(writer, elem, encodings)
    if writer.tell():
        out.append(writer.getvalue())
    return out


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
    tag = struct.pack("<HH", elem.tag >> 16, elem.tag & 0xFFFF)
    if implicit:
        return tag + struct.pack("<L", length)
    vr = elem.VR
    if not vr or len(vr) != 2:
        return None
    if vr in LONG_VRS:
        return tag + vr.encode("ascii") + b"\x00\x00" + struct.pack("<L", length)
    if undefined or length > 0xFFFF:
        return None
    return tag + vr.encode("ascii") + struct.pack("<H", length)
