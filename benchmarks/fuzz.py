"""Fuzz harness: hostile bytes through ``Deidentifier.deidentify_bytes``.

Seeds are the real files of the shared corpus (``$DEID_CORPUS`` or ``../shared/corpus`` beside
the clone; skipped with a message when absent) and synthetic objects built here (CT with an
overlay plane, private block and nested sequences; implicit VR; RLE multi-frame RGB; a text
SR; a Latin-1 object), all with made-up planted identifiers. Case ``i`` of seed ``S`` is fully
determined by ``(S, i)``: one seed file and one to three mutations chosen by
``random.Random(f"{S}-{i}")`` from these mutators:

truncation at a random offset or at an element boundary, bit flips, byte insertion and
deletion, wrong and huge element lengths (0, off by a few, 0xFFFF, 0xFFFFFFFE, 0xFFFFFFFF),
undefined-length bombs (sequences and items that never end, undefined-length native pixel data),
sequences nested 100 to 10,000 deep, bad or unknown Specific Character Sets (with raw 8-bit and
escape bytes in names), garbage VRs, duplicated and misordered elements, huge Rows x Columns x
Number of Frames claims, and pixel / overlay data lengths that do not match the header.

Every case runs ``Deidentifier("upload", key, ocr=StaticOcr(), prescreen=False)`` in a worker
process: the OCR engine is a test double that finds no text, so the fuzz measures parsing, the
gates, the attribute path and pixel decoding, not OCR. Each worker has an address-space limit
(``RLIMIT_AS``) and each case a wall-clock limit (the worker is killed and replaced when it
runs over). Outcomes:

- ``deidentified``; ``rejected`` (a :class:`deid.DeidError`, counted by reason);
- ``finding``: any other exception, a timeout, a dead worker, a ``MemoryError`` anywhere in
  the chain of a rejection (an allocation sized from a claim, not a limit check), or an error
  message, audit record, warning or log line quoting an identifier of the input (a planted
  value, or one deid collects from the input), or a planted identifier in a released output.

Findings are saved (the mutated bytes and a JSON note) under ``--findings`` (default: a folder
in the system temporary directory), to be replayed with ``--replay FILE``.

    python benchmarks/fuzz.py --cases 100000 --seed 1 --workers 2 --json fuzz.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import resource
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MIB = 1 << 20
KEY = bytes(range(32))
POLICY = "upload"
DEFAULT_TIME_LIMIT = 5.0
DEFAULT_MEMORY_MIB = 3072
MIN_IDENTIFIER = 6  # shorter values (sex, modality, short codes) match too much by chance

#: Made-up identifiers planted in every synthetic seed.
PLANTED = {
    "PatientName": "FUZZMAN^PLANTED^Q",
    "PatientID": "FZID8812345",
    "PatientBirthDate": "19530921",
    "AccessionNumber": "FZACC44871",
    "InstitutionName": "FUZZ VALLEY CLINIC",
    "ReferringPhysicianName": "REFDOC^PLANTED",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77001",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.77002",
    "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.77003",
}
_OTHER_ID = "FZOTHER99321"

_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR"})
_LONG_VRS |= frozenset({b"UT", b"SV", b"UV"})
_ALL_VRS = ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD")
_ALL_VRS += ("OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI")
_ALL_VRS += ("UL", "UN", "UR", "US", "UT", "UV")
_UNDEFINED = 0xFFFFFFFF


# -- seeds ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One top-level element of a seed: where its header and value lie."""

    tag: int
    vr: bytes  # b"" for implicit VR
    start: int  # first byte of the header
    length_at: int
    length_size: int  # 2 or 4
    value_at: int
    length: int  # as encoded (may be 0xFFFFFFFF)
    end: int  # first byte after the element (after its delimiter for undefined lengths)


@dataclass(frozen=True)
class Seed:
    """An input the mutators start from, with its layout and its identifiers."""

    name: str
    data: bytes
    implicit: bool
    little: bool
    elements: tuple[Element, ...]
    identifiers: tuple[str, ...]  # values deid collects from it (and planted ones)
    planted: tuple[str, ...] = ()


def corpus_root() -> Path:
    """``$DEID_CORPUS`` or ``../shared/corpus`` beside the clone (as tests/conftest.py)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    return Path(os.environ.get("DEID_CORPUS", default))


def _identifier_values(data: bytes) -> tuple[str, ...]:
    """The identifier values deid collects from ``data`` (best effort; () when unreadable)."""
    from pydicom import dcmread

    from deid.identifiers import collect

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(io.BytesIO(data), force=True)
            items = collect(ds).items
    except Exception:
        return ()
    values = {i.value.strip() for i in items}
    return tuple(sorted(v for v in values if _specific(v)))


def _specific(value: str) -> bool:
    """Long enough, and not one plain word (``inside``, ``DEFAULT``: words messages use too)."""
    if len(value) < MIN_IDENTIFIER:
        return False
    return not (value.isalpha() and value.isascii() and len(value) < 12)


def _layout(data: bytes) -> tuple[bool, bool, tuple[Element, ...]] | None:
    """Encoding and top-level element positions of ``data`` (None when pydicom cannot read it)."""
    from pydicom import dcmread
    from pydicom.dataelem import RawDataElement

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(io.BytesIO(data), force=True)
            implicit, little = ds.original_encoding
            keys = list(ds.keys())
    except Exception:
        return None
    if implicit is None or little is None:
        return None
    elements: list[Element] = []
    for tag in keys:
        raw = ds._dict[tag]
        if not isinstance(raw, RawDataElement):
            continue
        vr = b"" if implicit else str(raw.VR).encode("ascii")
        long_form = implicit or vr in _LONG_VRS
        header = 8 if implicit or not long_form else 12
        start = raw.value_tell - header
        length_at = start + 4 if implicit else (start + 8 if long_form else start + 6)
        size = 4 if long_form else 2
        if start < 0 or data[start : start + 4] != _tag_bytes(tag, little):
            continue
        elements.append(Element(tag, vr, start, length_at, size, raw.value_tell, raw.length, 0))
    ends = [e.start for e in elements[1:]] + [len(data)] if elements else []
    fixed = tuple(
        Element(e.tag, e.vr, e.start, e.length_at, e.length_size, e.value_at, e.length, end)
        for e, end in zip(elements, ends, strict=True)
    )
    return bool(implicit), bool(little), fixed


def _tag_bytes(tag: int, little: bool) -> bytes:
    return struct.pack("<HH" if little else ">HH", tag >> 16, tag & 0xFFFF)


def make_seed(name: str, data: bytes, planted: Sequence[str] = ()) -> Seed:
    layout = _layout(data)
    implicit, little, elements = layout if layout is not None else (False, True, ())
    found = set(_identifier_values(data)) | set(planted)
    return Seed(name, data, implicit, little, elements, tuple(sorted(found)), tuple(planted))


def corpus_seeds(root: Path | None = None, max_bytes: int = 4 * _MIB) -> list[Seed]:
    """Every file of the corpus up to ``max_bytes`` (not only DICOM: the others are inputs too)."""
    root = root if root is not None else corpus_root()
    if not root.is_dir():
        return []
    seeds = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.stat().st_size <= max_bytes:
            seeds.append(make_seed(path.relative_to(root).as_posix(), path.read_bytes()))
    return seeds


def _synthetic_datasets() -> Iterator[tuple[str, Any, bool]]:
    """(name, data set, implicit VR) of the synthetic seeds."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import (
        ComprehensiveSRStorage,
        CTImageStorage,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        RLELossless,
        UltrasoundMultiFrameImageStorage,
    )

    def base(sop_class: str, modality: str, **extra: Any) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = sop_class
        ds.Modality = modality
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        ds.StudyDate = "20240117"
        ds.StudyTime = "093000"
        ds.PatientSex = "F"
        ds.StudyID = "FZSTUDY7"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.77004"
        for keyword, value in extra.items():
            setattr(ds, keyword, value)
        return ds

    def meta(ds: Dataset, syntax: str) -> Dataset:
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = ds.SOPClassUID
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        fm.TransferSyntaxUID = syntax
        ds.file_meta = fm
        return ds

    def image(ds: Dataset, rows: int, columns: int, samples: int, frames: int) -> Dataset:
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, samples
        ds.BitsAllocated = 16 if samples == 1 else 8
        ds.BitsStored = 12 if samples == 1 else 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
        if samples > 1:
            ds.PlanarConfiguration = 0
        if frames > 1:
            ds.NumberOfFrames = frames
        dtype = "<u2" if samples == 1 else "u1"
        count = rows * columns * samples * frames
        ds.PixelData = (np.arange(count) % 200).astype(dtype).tobytes()
        return ds

    ct = image(base(CTImageStorage, "CT", ImageType=["ORIGINAL", "PRIMARY", "AXIAL"]), 16, 16, 1, 1)
    other = Dataset()
    other.PatientID = _OTHER_ID
    other.IssuerOfPatientID = "FUZZ ISSUER"
    ct.OtherPatientIDsSequence = Seq([other])
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D0050", "SRT", "Tissue"
    request = Dataset()
    request.RequestedProcedureID = "FZREQ5531"
    request.ScheduledProcedureStepID = "FZSPS5532"
    request.ReasonForTheRequestedProcedure = f"follow up {PLANTED['PatientName']}"
    request.RequestedProcedureCodeSequence = Seq([code])
    ct.RequestAttributesSequence = Seq([request])
    ct.add_new(0x00091010, "LO", "FUZZ PRIVATE")
    ct.add_new(0x00091011, "LO", PLANTED["PatientID"])
    ct.add_new(0x60000010, "US", 16)
    ct.add_new(0x60000011, "US", 16)
    ct.add_new(0x60000040, "CS", "G")
    ct.add_new(0x60000050, "SS", [1, 1])
    ct.add_new(0x60000100, "US", 1)
    ct.add_new(0x60000102, "US", 0)
    ct.add_new(0x60003000, "OW", b"\x0f\xf0" * 16)
    yield "synthetic/ct_overlay_private", meta(ct, ExplicitVRLittleEndian), False

    implicit = image(base(CTImageStorage, "CT", ImageType=["ORIGINAL", "PRIMARY"]), 8, 8, 1, 1)
    yield "synthetic/ct_implicit", meta(implicit, ImplicitVRLittleEndian), True

    us = meta(
        image(base(UltrasoundMultiFrameImageStorage, "US"), 12, 10, 3, 3), ExplicitVRLittleEndian
    )
    us.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    yield "synthetic/us_rle_multiframe", us, False

    sr = base(ComprehensiveSRStorage, "SR", ValueType="CONTAINER", ContinuityOfContent="SEPARATE")
    text = Dataset()
    text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
    text.TextValue = f"Patient {PLANTED['PatientName']} id {PLANTED['PatientID']}"
    text.ConceptNameCodeSequence = Seq([code])
    sr.ContentSequence = Seq([text])
    yield "synthetic/sr_text", meta(sr, ExplicitVRLittleEndian), False

    latin = base(CTImageStorage, "CT", SpecificCharacterSet="ISO_IR 100")
    latin.PatientName = "MÜLLERFUZZ^JÜRGEN"
    yield "synthetic/latin1_no_pixels", meta(latin, ExplicitVRLittleEndian), False


def synthetic_seeds() -> list[Seed]:
    from pydicom.filewriter import dcmwrite

    seeds = []
    for name, ds, implicit in _synthetic_datasets():
        if "SOPInstanceUID" in ds and ds.file_meta.get("MediaStorageSOPInstanceUID") is None:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True, implicit_vr=implicit or None)
        planted = [*PLANTED.values(), _OTHER_ID]
        if name.startswith("synthetic/latin1"):
            planted = [v for v in planted if v != PLANTED["PatientName"]] + ["MÜLLERFUZZ"]
        seeds.append(make_seed(name, buffer.getvalue(), planted))
    return seeds


# -- mutators -------------------------------------------------------------------------------------

Mutator = Callable[[random.Random, Seed, bytes], bytes]


def _pick(rng: random.Random, seed: Seed, data: bytes) -> Element | None:
    """An element of the seed still wholly inside ``data`` (mutations keep earlier offsets)."""
    inside = [e for e in seed.elements if e.end <= len(data)]
    return rng.choice(inside) if inside else None


def _find(seed: Seed, data: bytes, *tags: int) -> list[Element]:
    return [e for e in seed.elements if e.tag in tags and e.end <= len(data)]


def _pack_length(seed: Seed, size: int, value: int) -> bytes:
    order = "<" if seed.little else ">"
    return struct.pack(
        order + ("H" if size == 2 else "I"), value & (0xFFFF if size == 2 else _UNDEFINED)
    )


def _encode(seed: Seed, tag: int, vr: str, value: bytes) -> bytes:
    """One element in the seed's encoding."""
    order = "<" if seed.little else ">"
    head = _tag_bytes(tag, seed.little)
    if seed.implicit:
        return head + struct.pack(order + "I", len(value)) + value
    if vr.encode() in _LONG_VRS:
        return head + vr.encode() + b"\0\0" + struct.pack(order + "I", len(value)) + value
    return head + vr.encode() + struct.pack(order + "H", len(value) & 0xFFFF) + value


def _insert_sorted(seed: Seed, data: bytes, tag: int, encoded: bytes) -> bytes:
    """Insert ``encoded`` where element ``tag`` belongs (replacing one with that tag)."""
    for e in seed.elements:
        if e.end > len(data):
            break
        if e.tag == tag:
            return data[: e.start] + encoded + data[e.end :]
        if e.tag > tag:
            return data[: e.start] + encoded + data[e.start :]
    if seed.elements and seed.elements[-1].end <= len(data):
        at = seed.elements[-1].end
        return data[:at] + encoded + data[at:]
    return data + encoded


def truncate_random(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


def truncate_boundary(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    e = _pick(rng, seed, data)
    if e is None:
        return truncate_random(rng, seed, data)
    cut = rng.choice(
        [e.start, e.start + rng.randrange(1, 8), e.value_at, e.end, e.end - 1, e.value_at + 1]
    )
    return data[: max(0, min(cut, len(data)))]


def bit_flips(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    # Half the time near a header (where a flip changes structure, not a pixel).
    for _ in range(rng.randint(1, 8)):
        e = _pick(rng, seed, data) if rng.random() < 0.5 else None
        at = e.start + rng.randrange(12) if e is not None else rng.randrange(len(out))
        if at < len(out):
            out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def insert_bytes(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    e = _pick(rng, seed, data)
    at = e.start if e is not None and rng.random() < 0.5 else rng.randrange(len(data) + 1)
    junk = rng.choice(
        [
            rng.randbytes(rng.randint(1, 16)),
            b"\xfe\xff\x00\xe0\xff\xff\xff\xff",  # an item of undefined length
            b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # a stray sequence delimiter
            b"\x00" * rng.randint(1, 8),
        ]
    )
    return data[:at] + junk + data[at:]


def delete_bytes(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 16) :]


def wrong_length(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    e = _pick(rng, seed, data)
    if e is None:
        return bit_flips(rng, seed, data)
    length = e.length if e.length != _UNDEFINED else 0
    value = rng.choice(
        [
            *(0, 1, length + 1, length - 1, length + 2, length * 2, 0xFFFF, 0xFFFFFFFE),
            *(_UNDEFINED, rng.randrange(1 << 32), len(data) - e.value_at + rng.randint(-2, 2)),
        ]
    )
    if e.length_size == 2:
        value = value & 0xFFFF
    return (
        data[: e.length_at]
        + _pack_length(seed, e.length_size, value)
        + data[e.length_at + e.length_size :]
    )


def undefined_length(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """An undefined length where it is not allowed, or a sequence/item that never ends."""
    choice = rng.randrange(3)
    long_ones = [e for e in seed.elements if e.length_size == 4 and e.end <= len(data)]
    if choice == 0 and long_ones:
        e = rng.choice(long_ones)
        return data[: e.length_at] + _pack_length(seed, 4, _UNDEFINED) + data[e.length_at + 4 :]
    order = "<" if seed.little else ">"
    items = b"".join(
        _tag_bytes(0xFFFEE000, seed.little) + struct.pack(order + "I", _UNDEFINED)
        for _ in range(rng.choice([1, 3, 1000]))
    )
    if seed.implicit:
        head = _tag_bytes(0x00081115, seed.little) + struct.pack(order + "I", _UNDEFINED)
    else:
        head = (
            _tag_bytes(0x00081115, seed.little) + b"SQ\0\0" + struct.pack(order + "I", _UNDEFINED)
        )
    bomb = head + items + (rng.randbytes(rng.randint(0, 32)) if choice == 2 else b"")
    if rng.random() < 0.5:
        return data + bomb  # at the end: nothing ever closes it
    return _insert_sorted(seed, data, 0x00081115, bomb)


def deep_nesting(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Sequences nested 100 to 10,000 deep (undefined or defined lengths, closed or not)."""
    depth = rng.choice([100, 1000, 10_000])
    order = "<" if seed.little else ">"
    sq = _tag_bytes(0x00081115, seed.little)
    sq_head = sq + (b"" if seed.implicit else b"SQ\0\0")
    item = _tag_bytes(0xFFFEE000, seed.little)
    if rng.random() < 0.6:
        undefined = struct.pack(order + "I", _UNDEFINED)
        opening = (sq_head + undefined + item + undefined) * depth
        closing = (_tag_bytes(0xFFFEE00D, seed.little) + b"\0" * 4) + (
            _tag_bytes(0xFFFEE0DD, seed.little) + b"\0" * 4
        )
        body = opening + (closing * depth if rng.random() < 0.7 else b"")
    else:
        body = _encode(seed, 0x00100020, "LO", b"INNER")
        for _ in range(depth):
            body = item + struct.pack(order + "I", len(body)) + body
            body = sq_head + struct.pack(order + "I", len(body)) + body
        body = body[len(sq_head) + 4 :]  # the outermost sequence header is added below
        body = sq_head + struct.pack(order + "I", len(body)) + body
    return _insert_sorted(seed, data, 0x00081115, body)


def bad_charset(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    value = rng.choice(
        [
            b"ISO_IR 999",
            b"ISO 2022 IR 87\\ISO 2022 IR 999",
            b"\\\\\\",
            b"GB18030\\ISO_IR 192",
            b"ISO_IR 192\\ISO 2022 IR 100",
            rng.randbytes(8),
            b"",
            b"ISO 2022 IR 13\\ISO 2022 IR 87",
        ]
    )
    if len(value) % 2:
        value += b" "
    out = data  # the later tag first: the offsets of earlier elements stay valid
    if rng.random() < 0.6:
        name = rng.choice([b"\x1b$B\x1b(J\xff\xfe", b"\xc3\x28\xa0\xa1", b"\x1b%G\x80\x81"])
        name += PLANTED["PatientName"].encode()
        if len(name) % 2:
            name += b" "
        out = _insert_sorted(seed, out, 0x00100010, _encode(seed, 0x00100010, "PN", name))
    return _insert_sorted(seed, out, 0x00080005, _encode(seed, 0x00080005, "CS", value))


def garbage_vr(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    explicit = [e for e in seed.elements if e.vr and e.end <= len(data)]
    if not explicit:
        return bit_flips(rng, seed, data)
    e = rng.choice(explicit)
    vr = rng.choice([rng.choice(_ALL_VRS).encode(), rng.randbytes(2), b"\0\0", b"ZZ", b"sq"])
    return data[: e.start + 4] + vr + data[e.start + 6 :]


def duplicate_or_misorder(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    inside = [e for e in seed.elements if e.end <= len(data)]
    if len(inside) < 2:
        return bit_flips(rng, seed, data)
    if rng.random() < 0.5:
        e = rng.choice(inside)
        chunk = data[e.start : e.end]
        at = rng.choice([e.end, rng.choice(inside).start])
        return data[:at] + chunk + data[at:]
    i = rng.randrange(len(inside) - 1)
    a, b = inside[i], inside[i + 1]
    if a.end != b.start:
        return data
    return data[: a.start] + data[b.start : b.end] + data[a.start : a.end] + data[b.end :]


def _set_us(seed: Seed, data: bytes, tag: int, value: int) -> bytes:
    order = "<" if seed.little else ">"
    encoded = _encode(seed, tag, "US", struct.pack(order + "H", value & 0xFFFF))
    return _insert_sorted(seed, data, tag, encoded)


def huge_dimensions(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    rows = rng.choice([0xFFFF, 0x8000, 0, 1, 4096])
    columns = rng.choice([0xFFFF, 0x8000, 0, 1, 4096])
    frames = rng.choice([b"1000", b"999999", b"-1", b"0", b"2147483648", b"1e9 "])
    out = _set_us(seed, data, 0x00280011, columns)  # the later tag first (see bad_charset)
    out = _set_us(seed, out, 0x00280010, rows)
    if rng.random() < 0.7:
        frames = frames if len(frames) % 2 == 0 else frames + b" "
        out = _insert_sorted(seed, out, 0x00280008, _encode(seed, 0x00280008, "IS", frames))
    return out


def pixel_mismatch(rng: random.Random, seed: Seed, data: bytes) -> bytes:
    """Pixel / overlay data whose length or layout disagrees with the header."""
    targets = _find(seed, data, 0x7FE00010, 0x60003000)
    choice = rng.randrange(4)
    if choice == 0 and targets:
        e = rng.choice(targets)
        if e.length == _UNDEFINED:
            return data[: e.end - rng.randint(1, 12)]
        keep = rng.choice([0, 1, e.length // 2, max(e.length - 1, 0), e.length + 2])
        value = data[e.value_at : e.value_at + min(keep, e.length)]
        value += b"\0" * max(0, keep - e.length)
        return (
            data[: e.length_at]
            + _pack_length(seed, e.length_size, len(value))
            + data[e.length_at + e.length_size : e.value_at]
            + value
            + data[e.end :]
        )
    if choice == 1:
        tag = rng.choice([0x00280100, 0x00280101, 0x00280102, 0x00280002, 0x00280103])
        return _set_us(seed, data, tag, rng.choice([0, 1, 7, 12, 32, 64, 0xFFFF]))
    if choice == 2:
        tag = rng.choice([0x60000010, 0x60000011, 0x60000100, 0x60000102])
        return _set_us(seed, data, tag, rng.choice([0, 1, 0xFFFF, 4096]))
    photometric = rng.choice([b"PALETTE COLOR", b"YBR_FULL_422", b"RGB ", b"MONOCHROME1 ", b"XYZ "])
    if len(photometric) % 2:
        photometric += b" "
    return _insert_sorted(seed, data, 0x00280004, _encode(seed, 0x00280004, "CS", photometric))


MUTATORS: dict[str, Mutator] = {
    "truncate_random": truncate_random,
    "truncate_boundary": truncate_boundary,
    "bit_flips": bit_flips,
    "insert_bytes": insert_bytes,
    "delete_bytes": delete_bytes,
    "wrong_length": wrong_length,
    "undefined_length": undefined_length,
    "deep_nesting": deep_nesting,
    "bad_charset": bad_charset,
    "garbage_vr": garbage_vr,
    "duplicate_or_misorder": duplicate_or_misorder,
    "huge_dimensions": huge_dimensions,
    "pixel_mismatch": pixel_mismatch,
}


@dataclass(frozen=True)
class Case:
    index: int
    seed: Seed
    mutators: tuple[str, ...]
    data: bytes


def make_case(seeds: Sequence[Seed], run_seed: int, index: int) -> Case:
    """Case ``index`` of the run ``run_seed``: the same bytes on every machine."""
    rng = random.Random(f"{run_seed}-{index}")
    seed = seeds[rng.randrange(len(seeds))]
    count = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
    names = tuple(rng.choice(list(MUTATORS)) for _ in range(count))
    data = seed.data
    for name in names:
        data = MUTATORS[name](rng, seed, data)
    return Case(index, seed, names, data)


# -- running one case -----------------------------------------------------------------------------


@dataclass
class Result:
    index: int
    outcome: str  # deidentified | rejected | finding
    reason: str = ""  # RejectReason value, or the finding's kind
    detail: str = ""  # exception type or what was found (finding notes are saved, not shown)
    seconds: float = 0.0
    rss_kib: int = 0


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(record.getMessage())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_DOTTED = re.compile(r"[0-9]+(?:\.[0-9]+)+")


def _without_standard_uids(text: str) -> str:
    """``text`` less the UIDs of the standard (a SOP Class in an audit record): they are
    constants, and a mangled case can make an "identifier" of a piece of one (``0.1000``)."""
    from pydicom.uid import UID_dictionary

    return _DOTTED.sub(lambda m: "" if m.group(0) in UID_dictionary else m.group(0), text)


def _quoted(texts: Sequence[str], identifiers: Sequence[str]) -> str | None:
    """The first identifier that appears in one of ``texts`` (case-insensitive), the
    standard's own UIDs left out."""
    lowered = [_without_standard_uids(t).lower() for t in texts]
    for value in identifiers:
        needle = value.lower()
        if any(needle in t for t in lowered):
            return value
    return None


class _OneWay(io.RawIOBase):
    """A source that can only be read forward (a socket, a pipe): no seek, no tell."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _call(engine: Any, api: str, data: bytes, sink: io.BytesIO) -> Any:
    """Run one case through ``api``: ``bytes`` (deidentify_bytes), ``stream`` (a seekable
    source) or ``stream-oneway`` (a forward-only source); streams write into ``sink``."""
    if api == "bytes":
        result = engine.deidentify_bytes(data)
        sink.write(result.data)
        return result
    source: Any = io.BytesIO(data) if api == "stream" else io.BufferedReader(_OneWay(data))
    return engine.deidentify_stream(source, sink)


APIS = ("bytes", "stream", "stream-oneway")


def _like_bytes(engine: Any, data: bytes, written: bytes, outcome: Result) -> Result:
    """A streamed case must end as ``deidentify_bytes`` ends: the same output bytes, or a
    rejection on both sides (a stream that releases what the bytes path rejects is a hole)."""
    from deid.errors import DeidError

    try:
        expected: bytes | None = engine.deidentify_bytes(data).data
    except DeidError:
        expected = None
    except Exception:  # the bytes path's own finding (its fuzz run reports it)
        return outcome
    if outcome.outcome == "deidentified" and expected is None:
        return Result(outcome.index, "finding", "stream_differs", "released; bytes path rejects")
    if outcome.outcome == "deidentified" and written != expected:
        return Result(outcome.index, "finding", "stream_differs", "other bytes than bytes path")
    if outcome.outcome == "rejected" and expected is not None:
        return Result(outcome.index, "finding", "stream_differs", "rejected; bytes path releases")
    return outcome


def run_case(
    engine: Any,
    index: int,
    data: bytes,
    identifiers: Sequence[str],
    planted: Sequence[str],
    api: str = "bytes",
) -> Result:
    """One case in this process: the outcome, never raising."""
    from deid.errors import DeidError

    own = set(_identifier_values(data))  # what deid itself finds in these bytes
    ids = sorted(set(identifiers) | own, key=len, reverse=True)
    capture = _Capture()
    loggers = [logging.getLogger("deid"), logging.getLogger("pydicom")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    start = time.perf_counter()
    texts: list[str] = []
    named = 0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sink = io.BytesIO()
            try:
                result = _call(engine, api, data, sink)
            except DeidError as exc:
                memory = any(isinstance(e, MemoryError) for e in _chain(exc))
                texts = [str(exc), str(getattr(exc, "detail", ""))]
                reason = getattr(exc, "reason", None)
                outcome = Result(index, "rejected", getattr(reason, "value", type(exc).__name__))
                if memory:
                    outcome = Result(
                        index, "finding", "memory", f"MemoryError under {outcome.reason}"
                    )
                elif sink.getvalue():  # fail closed: a rejected object writes nothing
                    outcome = Result(index, "finding", "partial_output", outcome.reason)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # also a Rust extension's panic
                outcome = Result(index, "finding", "exception", type(exc).__name__)
                texts = [str(exc)]
            else:
                texts = [result.audit.to_json()]
                outcome = Result(index, "deidentified")
                # A planted value deid still sees as an identifier must not be released. (A
                # flipped tag can turn one into an unknown attribute: that is not counted.)
                written = sink.getvalue()
                leaked = [p for p in planted if p in own and p.encode("utf-8") in written]
                if leaked:
                    outcome = Result(index, "finding", "output_leak", "planted value in output")
            if api != "bytes" and outcome.outcome != "finding":
                outcome = _like_bytes(engine, data, sink.getvalue(), outcome)
        named = len(texts)
        texts += [str(w.message) for w in caught] + capture.lines
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(capture)
            lg.setLevel(level)
            lg.propagate = propagate
    outcome.seconds = time.perf_counter() - start
    if outcome.outcome != "finding":
        hit = _quoted(texts, ids)
        if hit is not None:
            where = "message" if outcome.outcome == "rejected" else "audit"
            if not any(hit.lower() in t.lower() for t in texts[:named]):
                where = "warning_or_log"
            outcome = Result(index, "finding", f"leak_{where}", outcome.reason, outcome.seconds)
    outcome.rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return outcome


def make_engine() -> Any:
    from deid import Deidentifier
    from deid.ocr.static import StaticOcr

    return Deidentifier(POLICY, KEY, ocr=StaticOcr(), prescreen=False)


def _worker(conn: multiprocessing.connection.Connection, memory_mib: int, api: str) -> None:
    if memory_mib > 0:
        limit = memory_mib * _MIB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    engine = make_engine()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        index, data, identifiers, planted = job
        conn.send(run_case(engine, index, data, identifiers, planted, api))


# -- the pool -------------------------------------------------------------------------------------


@dataclass
class _Slot:
    process: Any
    conn: multiprocessing.connection.Connection
    case: Case | None = None
    started: float = 0.0


class Pool:
    """Worker processes, one case each at a time, killed and replaced on timeouts and crashes."""

    def __init__(
        self, workers: int, time_limit: float, memory_mib: int, api: str = "bytes"
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.time_limit = time_limit
        self.memory_mib = memory_mib
        self.api = api
        self.slots = [self._start() for _ in range(workers)]

    def _start(self) -> _Slot:
        parent, child = self._context.Pipe()
        args = (child, self.memory_mib, self.api)
        process = self._context.Process(target=_worker, args=args, daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def _replace(self, slot: _Slot) -> _Slot:
        slot.process.kill()
        slot.process.join()
        slot.conn.close()
        return self._start()

    def run(self, cases: Iterator[Case]) -> Iterator[tuple[Case, Result]]:
        pending = True
        while True:
            for i, slot in enumerate(self.slots):
                if slot.case is None and pending:
                    case = next(cases, None)
                    if case is None:
                        pending = False
                        continue
                    try:
                        slot.conn.send(
                            (case.index, case.data, case.seed.identifiers, case.seed.planted)
                        )
                    except (BrokenPipeError, OSError):
                        fresh = self.slots[i] = self._replace(slot)
                        fresh.conn.send(
                            (case.index, case.data, case.seed.identifiers, case.seed.planted)
                        )
                    self.slots[i].case, self.slots[i].started = case, time.perf_counter()
            busy = [s for s in self.slots if s.case is not None]
            if not busy:
                return
            first_deadline = min(s.started for s in busy) + self.time_limit
            timeout = max(0.0, first_deadline - time.perf_counter())
            ready = multiprocessing.connection.wait([s.conn for s in busy], timeout=timeout)
            now = time.perf_counter()
            for i, slot in enumerate(self.slots):
                case = slot.case
                if case is None:
                    continue
                if slot.conn in ready:
                    try:
                        result: Result = slot.conn.recv()
                    except (EOFError, OSError):
                        slot.process.join(timeout=5)
                        code = slot.process.exitcode
                        self.slots[i] = self._replace(slot)
                        yield (
                            case,
                            Result(
                                case.index, "finding", "crash", f"exit {code}", now - slot.started
                            ),
                        )
                        continue
                    slot.case = None
                    yield case, result
                elif now - slot.started >= self.time_limit:
                    self.slots[i] = self._replace(slot)
                    yield (
                        case,
                        Result(
                            case.index,
                            "finding",
                            "timeout",
                            f">{self.time_limit:g}s",
                            now - slot.started,
                        ),
                    )

    def close(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(Exception):
                slot.conn.send(None)
        for slot in self.slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()


# -- a run ----------------------------------------------------------------------------------------


@dataclass
class Report:
    cases: int = 0
    seconds: float = 0.0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    max_case_seconds: float = 0.0
    max_rss_mib: float = 0.0
    seeds: int = 0
    corpus_seeds: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "seconds": round(self.seconds, 1),
            "cases_per_second": round(self.cases / self.seconds, 1) if self.seconds else 0.0,
            "outcomes": dict(sorted(self.outcomes.items())),
            "reasons": dict(sorted(self.reasons.items())),
            "findings": self.findings,
            "max_case_seconds": round(self.max_case_seconds, 3),
            "max_worker_rss_mib": round(self.max_rss_mib, 1),
            "seeds": self.seeds,
            "corpus_seeds": self.corpus_seeds,
        }


def default_findings_dir() -> Path:
    return Path(tempfile.gettempdir()) / "deid-fuzz-findings"


def fuzz(
    cases: int,
    seed: int = 0,
    *,
    start: int = 0,
    workers: int = 2,
    time_limit: float = DEFAULT_TIME_LIMIT,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    findings_dir: Path | None = None,
    use_corpus: bool = True,
    max_seed_bytes: int = 4 * _MIB,
    progress: Callable[[Report], None] | None = None,
    api: str = "bytes",
) -> Report:
    """Run cases ``start .. start + cases - 1`` of run ``seed`` through ``api`` (see
    :data:`APIS`); save findings; the report."""
    if api not in APIS:
        raise ValueError(f"api must be one of {', '.join(APIS)}")
    found = corpus_seeds(max_bytes=max_seed_bytes) if use_corpus else []
    seeds = synthetic_seeds() + found
    report = Report(seeds=len(seeds), corpus_seeds=len(found))
    target = findings_dir if findings_dir is not None else default_findings_dir()
    generated = (make_case(seeds, seed, i) for i in range(start, start + cases))
    began = time.perf_counter()
    pool = Pool(workers, time_limit, memory_mib, api)
    try:
        for case, result in pool.run(generated):
            report.cases += 1
            report.outcomes[result.outcome] += 1
            report.max_case_seconds = max(report.max_case_seconds, result.seconds)
            report.max_rss_mib = max(report.max_rss_mib, result.rss_kib / 1024)
            if result.outcome == "rejected":
                report.reasons[result.reason] += 1
            if result.outcome == "finding":
                report.findings.append(_save(target, seed, case, result))
            if progress is not None and report.cases % 1000 == 0:
                report.seconds = time.perf_counter() - began
                progress(report)
    finally:
        pool.close()
    report.seconds = time.perf_counter() - began
    return report


def _save(folder: Path, run_seed: int, case: Case, result: Result) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    first = result.detail.split()[0] if result.detail else "none"
    stem = f"s{run_seed}-c{case.index}-{result.reason}-{first}"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    note = {
        "index": case.index,
        "run_seed": run_seed,
        "seed_file": case.seed.name,
        "mutators": list(case.mutators),
        "kind": result.reason,
        "detail": result.detail,
        "seconds": round(result.seconds, 3),
        "bytes": str(folder / f"{stem}.bin"),
    }
    (folder / f"{stem}.bin").write_bytes(case.data)
    (folder / f"{stem}.json").write_text(json.dumps(note, indent=1) + "\n")
    return note


def replay(path: Path, api: str = "bytes") -> Result:
    """Run one saved case in this process (no limits), for debugging a finding."""
    data = path.read_bytes()
    return run_case(make_engine(), -1, data, (), list(PLANTED.values()), api)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first case index (to split runs)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)))
    parser.add_argument("--time-limit-per-case", type=float, default=DEFAULT_TIME_LIMIT)
    parser.add_argument("--memory-mib", type=int, default=DEFAULT_MEMORY_MIB)
    parser.add_argument("--findings", type=Path, default=None)
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--replay", type=Path, default=None, help="run one saved case and exit")
    parser.add_argument(
        "--api",
        choices=APIS,
        default="bytes",
        help="deidentify_bytes, or deidentify_stream from a seekable or a forward-only source",
    )
    args = parser.parse_args(argv)
    if args.replay is not None:
        print(json.dumps(replay(args.replay, args.api).__dict__))
        return 0
    if not args.no_corpus and not corpus_root().is_dir():
        print(f"fuzz: corpus not found at {corpus_root()} (set DEID_CORPUS); synthetic seeds only")

    def progress(report: Report) -> None:
        rate = report.cases / report.seconds if report.seconds else 0.0
        print(
            f"fuzz: {report.cases} cases, {rate:.1f}/s, {len(report.findings)} finding(s)",
            file=sys.stderr,
            flush=True,
        )

    report = fuzz(
        args.cases,
        args.seed,
        start=args.start,
        workers=args.workers,
        time_limit=args.time_limit_per_case,
        memory_mib=args.memory_mib,
        findings_dir=args.findings,
        use_corpus=not args.no_corpus,
        progress=progress,
        api=args.api,
    )
    summary = report.as_dict()
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    shown = dict(summary, findings=len(report.findings))
    print(json.dumps(shown, indent=1))
    for note in report.findings[:20]:
        print(f"finding: {note['kind']} {note['detail']} ({note['seed_file']}, {note['mutators']})")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
