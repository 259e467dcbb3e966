"""The fast path of deidentify_bytes (:mod:`deid.fastpath`) gives exactly the general path's
output: bytes, plan (every decision, in order), audit, or the same rejection.

Every object is de-identified by two engines, one with the fast path (the default) and one with
``fast_path = False``; a spy on :func:`deid.fastpath.deidentify_plain` records whether the fast
path produced the result or handed the object to the general path, and the tests assert both
(a comparison that never exercises the fast path would prove nothing).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import struct
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless

import deid.fastpath
from deid import Deidentifier, ResidualPhiError
from deid.codes import ProfileOption
from deid.encoding import _file_meta_bytes
from deid.errors import DeidError
from deid.fastpath import _meta_bytes
from deid.markers import file_meta_for
from deid.policy import Policy, load_policy
from deid.rawtree import parse_part10
from tests.conftest import BENCHMARKS, CORPUS, KEY
from tests.factories import code, item, make_dataset, sequence_of, to_bytes
from tests.strategies import Patient, patients


def _policies() -> list[Policy]:
    out = [load_policy(name) for name in ("upload", "basic", "research")]
    every = frozenset(o for o in ProfileOption if o is not ProfileOption.RETAIN_LONG_FULL_DATES)
    out.append(Policy(options=every, name="every-option", clean_pixel_data="never"))
    full = {ProfileOption.RETAIN_LONG_FULL_DATES, ProfileOption.CLEAN_DESCRIPTORS}
    out.append(Policy(options=frozenset(full), name="full-dates"))
    out.append(Policy(options=frozenset({ProfileOption.RETAIN_UIDS}), name="retain-uids"))
    return out


POLICIES = _policies()


class _Spy:
    """Counts what the fast path did with each object it was given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fast = 0
        self.handed_on = 0
        real = deid.fastpath.deidentify_plain

        def spy(*args: object) -> object:
            result = real(*args)  # type: ignore[arg-type]
            if result is None:
                self.handed_on += 1
            else:
                self.fast += 1
            return result

        monkeypatch.setattr(deid.fastpath, "deidentify_plain", spy)


def _outcome(engine: Deidentifier, data: bytes) -> tuple[object, ...]:
    try:
        result = engine.deidentify_bytes(data)
    except DeidError as exc:
        return (type(exc).__name__, getattr(exc, "reason", None), str(exc))
    return (result.data, result.plan.decisions, result.plan.explain_lines(), result.audit)


class _Pair:
    """The same policy and key, with and without the fast path (plan caches kept per engine,
    as a long-running engine keeps them)."""

    def __init__(self, policy: Policy) -> None:
        self.fast = Deidentifier(policy, KEY)
        self.general = Deidentifier(policy, KEY)
        self.general.fast_path = False

    def check(self, data: bytes) -> tuple[object, ...]:
        expected = _outcome(self.general, data)
        got = _outcome(self.fast, data)
        assert got == expected
        return got


@pytest.fixture(scope="module")
def synthetic() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("synthetic")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("series", ["CT", "MR"])
def test_synthetic_series(series: str, policy: Policy, synthetic, tmp_path, monkeypatch) -> None:
    paths = synthetic.write_series(tmp_path, synthetic.SERIES[series], 4)
    spy = _Spy(monkeypatch)
    pair = _Pair(policy)
    for path in paths:
        got = pair.check(path.read_bytes())
        assert isinstance(got[0], bytes)  # de-identified, not rejected
    # Every file of a plain series takes the fast path (the first one too: its levels are
    # planned by the general planner inside it).
    assert (spy.fast, spy.handed_on) == (len(paths), 0)


def _object(**changes: object) -> bytes:
    keywords: dict[str, object] = {
        "SpecificCharacterSet": "ISO_IR 100",
        "PatientName": "MÜLLER^JÖRG^^DR=",
        "PatientBirthDate": "19610304",
        "OtherPatientIDs": ["ALT 4471", "X2"],
        "StudyDescription": "Follow-up of MÜLLER",
        "AdditionalPatientHistory": "seen by Jörg Müller on 2023-04-05\\no change",
        "ReferringPhysicianName": ["WELBY^MARCUS", "HOUSE^GREGORY"],
        "InstitutionAddress": "12 Harbour Road",
        "StationName": "ACME-07 ",
        "ImageComments": "",
        "ContentDate": "20230405",
        "AcquisitionDateTime": "20230405101500.25+0100",
        "ReferencedImageSequence": sequence_of(
            item(
                ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                ReferencedSOPInstanceUID="1.2.3.4",
            ),
            item(ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2"),
        ),
        "ProcedureCodeSequence": sequence_of(
            code("LOCAL1", "99LOCAL", "LOCAL SCAN"),
            code("24627-2", "LN", "CT CHEST"),
            code("X7", "L", "LOCAL"),
        ),
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    }
    keywords.update(changes)
    ds = make_dataset(pixels=True, **{k: v for k, v in keywords.items() if v is not None})
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    block.add_new(0x23, "DS", "7.5")  # a safe private attribute (E.3.10-1)
    block.add_new(0x10, "LO", "ACQ NOTE")
    return to_bytes(ds)


@functools.cache
def _variants() -> dict[str, bytes]:
    with warnings.catch_warnings():  # the odd values are on purpose
        warnings.simplefilter("ignore")
        return _build_variants()


def _build_variants() -> dict[str, bytes]:
    return {
        "latin-1": _object(),
        "utf-8": _object(SpecificCharacterSet="ISO_IR 192"),
        "no-charset": _object(
            SpecificCharacterSet=None,
            PatientName="MULLER^JORG",
            StudyDescription="Follow-up of MULLER",
            AdditionalPatientHistory="seen by Jorg Muller",
        ),
        "age-present": _object(PatientAge="061Y"),
        "odd-values": _object(  # what pydicom reads differently from its bytes: handed on
            OtherPatientIDs=["ALT 4471  ", "X2"],
            StudyDescription="Follow-up of MÜLLER  ",
            ContentDate="20230405 ",
        ),
        "ct-localizer": _object(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]),
        "empty-sequence": _object(ReferencedImageSequence=sequence_of()),
        "nested": _object(
            ReferencedStudySequence=sequence_of(
                item(
                    ReferencedSOPInstanceUID="1.2.3.9",
                    ReferencedSeriesSequence=sequence_of(
                        item(SeriesInstanceUID="1.2.3.10", SeriesDescription="MULLER scan")
                    ),
                )
            )
        ),
    }


NAMES = ("age-present", "ct-localizer", "empty-sequence", "latin-1", "nested", "no-charset")
NAMES += ("odd-values", "utf-8")


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("name", NAMES)
def test_built_objects(name: str, policy: Policy, monkeypatch) -> None:
    spy = _Spy(monkeypatch)
    pair = _Pair(policy)
    for _ in range(2):  # the second time every level has its template
        pair.check(_variants()[name])
    assert spy.fast + spy.handed_on == 2


def test_built_objects_take_the_fast_path(monkeypatch) -> None:
    """The plain variants are de-identified by the fast path itself (not all handed on)."""
    spy = _Spy(monkeypatch)
    pair = _Pair(load_policy("basic"))
    for name in ("latin-1", "utf-8", "no-charset", "nested", "empty-sequence", "age-present"):
        pair.check(_variants()[name])
    assert spy.fast == 6
    for name in ("odd-values", "ct-localizer"):
        pair.check(_variants()[name])
    assert spy.handed_on == 2


def _patch_value(data: bytes, tag: int, new: bytes) -> bytes:
    """``data`` with the (short) value of the top-level element ``tag`` replaced by ``new``."""
    parsed = parse_part10(data)
    assert parsed is not None
    raw = parsed.elements[BaseTag(tag)]
    head = raw.value_tell - 8
    vr = raw.VR.encode()
    header = struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(new))
    return data[:head] + header + new + data[raw.value_tell + raw.length :]


def test_what_the_fast_path_hands_on(monkeypatch) -> None:
    """Odd lengths, implicit VR and non-plain files go to the general path; a top-level
    sequence of undefined length (whose items pydicom's reader builds) takes the fast path:
    the same outputs either way."""
    spy = _Spy(monkeypatch)
    plain = _variants()["latin-1"]
    # Odd lengths: Station Name is kept under upload (Retain Device Identity), so pydicom
    # would pad it on writing; Study Description is cleaned (written anew either way).
    odd_kept = _patch_value(plain, 0x00081010, b"ACME-07")
    odd_changed = _patch_value(plain, 0x00081030, b"Follow-up")
    ds = dcmread(io.BytesIO(plain))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = to_bytes(ds)
    undefined = _undefined_sequence(plain)
    pair = _Pair(load_policy("upload"))
    for data in (plain, odd_kept, odd_changed, implicit, undefined, plain[:-3], b"\x00" * 200):
        pair.check(data)
    assert (spy.fast, spy.handed_on) == (3, 4)
    # The undefined lengths (sequence and items) leave as they came.
    got = pair.check(undefined)
    assert isinstance(got[0], bytes)
    assert _ITEM + b"\xff\xff\xff\xff" in got[0]
    assert _ITEM_END + _SEQUENCE_END in got[0]
    assert spy.fast == 4


_ITEM = b"\xfe\xff\x00\xe0"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _undefined_sequence(data: bytes) -> bytes:
    """``data`` with its top-level sequences and their items written with undefined
    lengths."""
    ds = dcmread(io.BytesIO(data))
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for each in elem.value:
                each.is_undefined_length_sequence_item = True
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    return to_bytes(ds)


def test_a_residual_identifier_is_left_to_the_general_path(monkeypatch) -> None:
    """Any verification hit hands the object on: the general path rejects it as ever."""
    spy = _Spy(monkeypatch)
    leaky = _variants()["latin-1"]
    # Convolution Kernel is not in Table E.1-1 (kept): a Patient ID typed into it must stop
    # the object.
    ds = dcmread(io.BytesIO(leaky))
    ds.PatientID = "PID99812"
    ds.ConvolutionKernel = "PID99812"
    data = to_bytes(ds)
    pair = _Pair(load_policy("basic"))
    got = pair.check(data)
    assert got[0] == "ResidualPhiError"
    assert spy.handed_on == 1 and spy.fast == 0
    with pytest.raises(ResidualPhiError):
        Deidentifier("basic", KEY).deidentify_bytes(data)


def test_a_name_in_kept_nested_text_is_caught(monkeypatch) -> None:
    """A residual inside a sequence item (an unlisted, kept text element) is found by the
    fast path's verification too (which then hands the object on)."""
    spy = _Spy(monkeypatch)
    ds = dcmread(io.BytesIO(_variants()["latin-1"]))
    ds.PatientName = "MULLER^JORG"
    ds.AnatomicRegionSequence = sequence_of(code("T-D3000", "SRT", "JORG chest"))
    pair = _Pair(load_policy("basic"))
    got = pair.check(to_bytes(ds))
    assert got[0] == "ResidualPhiError"
    assert "(0008,2218)[0]>(0008,0104) CodeMeaning: name_part" in str(got[2])
    ds.PatientName = "MÜLLER^JÖRG"  # not ASCII: found decoded, and as latin-1 bytes
    ds.AnatomicRegionSequence = sequence_of(code("T-D3000", "SRT", "Jörg chest"))
    got = pair.check(to_bytes(ds))
    assert got[0] == "ResidualPhiError"
    assert (spy.fast, spy.handed_on) == (0, 2)


def test_the_result_dataset_is_read_from_the_output(monkeypatch) -> None:
    spy = _Spy(monkeypatch)
    result = Deidentifier("basic", KEY).deidentify_bytes(_variants()["latin-1"])
    assert spy.fast == 1
    assert result.dataset.PatientIdentityRemoved == "YES"
    assert result.dataset.SOPInstanceUID == result.audit.sop_instance_uid
    assert str(result.dataset.PatientName) == ""
    assert repr(result).startswith(f"DeidResult(data=<{len(result.data)} bytes>, audit=")


@pytest.mark.parametrize(
    "uids",
    [
        ("1.2.840.10008.5.1.4.1.1.2", "2.25.123"),
        ("1.2.840.10008.5.1.4.1.1.4", "2.25.1234"),
        ("1.2.840.10008.5.1.4.1.1.7 ", " 1.2.3.4.5"),
    ],
)
def test_the_file_meta_bytes_are_those_of_the_general_writer(uids: tuple[str, str]) -> None:
    for syntax in (ExplicitVRLittleEndian, JPEG2000Lossless):
        meta = file_meta_for(*uids, UID(syntax))
        assert _meta_bytes(*uids, syntax) == _file_meta_bytes(meta)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(patient=patients())
def test_random_patients(patient: Patient) -> None:
    pair = _Pair(load_policy("upload"))
    data = patient.encoded()
    pair.check(data)
    pair.check(data)


@pytest.mark.corpus
@pytest.mark.parametrize("policy", POLICIES[:3], ids=lambda p: p.name)
def test_corpus(corpus, policy: Policy, monkeypatch) -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix.lower() == ".dcm")
    assert files
    spy = _Spy(monkeypatch)
    pair = _Pair(dataclasses.replace(policy, clean_pixel_data="never"))
    with warnings.catch_warnings():  # odd values kept from real files make pydicom warn
        warnings.simplefilter("ignore")
        for path in files:
            data = path.read_bytes()
            pair.check(data)
            pair.check(data)
    assert spy.fast > 0 and spy.handed_on > 0


def test_parse_part10_reads_what_dcmread_reads() -> None:
    data = _variants()["utf-8"]
    parsed = parse_part10(data)
    assert parsed is not None
    ds = dcmread(io.BytesIO(data))
    for tag, raw in parsed.elements.items():
        held = ds._dict[tag]
        if isinstance(held, RawDataElement):
            assert raw == held
    assert list(parsed.elements) == list(ds._dict)
    assert list(parsed.meta) == list(ds.file_meta._dict)


def test_parse_part10_refuses_what_it_does_not_know() -> None:
    data = _variants()["latin-1"]
    assert parse_part10(data[:-1]) is None  # the last element is cut short
    assert parse_part10(data + b"\x00\x00") is None  # stray bytes after the last element
    assert parse_part10(b"\x00" * 128 + b"DICX" + data[132:]) is None
    assert parse_part10(Path(__file__).read_bytes()) is None


def test_a_kept_private_creator_is_written_as_pydicom_rewrites_it(monkeypatch) -> None:
    """The general planner reads creators through pydicom, which re-encodes a kept one on
    writing (trailing NULs become the usual padding): the fast path writes the same bytes."""
    spy = _Spy(monkeypatch)
    data = _patch_value(_variants()["latin-1"], 0x00190010, b"GEMS_ACQU_01\x00\x00")
    got = _Pair(load_policy("upload")).check(data)
    assert isinstance(got[0], bytes)
    assert b"GEMS_ACQU_01\x00\x00" not in got[0] and b"GEMS_ACQU_01" in got[0]
    assert spy.fast == 1


def _encapsulated(fragments: list[bytes]) -> bytes:
    """The latin-1 variant with its pixel data encapsulated (JPEG 2000 syntax; the fragment
    bytes are opaque here: no pixel pass runs on a plain CT slice)."""
    from pydicom.encaps import encapsulate

    ds = dcmread(io.BytesIO(_variants()["latin-1"]))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return to_bytes(ds)


def test_encapsulated_pixel_data(monkeypatch) -> None:
    spy = _Spy(monkeypatch)
    data = _encapsulated([b"\xff\x4f" + bytes(range(256)) * 4, b"\x01\x02" * 50])
    pair = _Pair(load_policy("upload"))
    got = pair.check(data)
    assert isinstance(got[0], bytes)
    parsed = parse_part10(data)
    assert parsed is not None
    pixels = parsed.elements[BaseTag(0x7FE00010)]
    # The pixel data leaves as it came: header, items and delimiter, at the end.
    assert got[0].endswith(data[pixels.value_tell - 12 :])
    assert spy.fast == 1
    # A malformed item (not an item tag where one must be) is pydicom's to read.
    broken = data[: pixels.value_tell] + b"\x00\x00\x00\x00" + data[pixels.value_tell + 4 :]
    assert parse_part10(broken) is None
    pair.check(broken)
    assert spy.handed_on == 1
