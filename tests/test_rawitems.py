"""Raw sequence items: what deid.rawitems reads and builds is what pydicom's reader gives."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deid.identifiers import collect
from deid.rawitems import convert_sequence, sequence_items
from tests.conftest import CORPUS
from tests.factories import item, make_dataset, sequence_of, to_bytes

_CODE_SEQ = 0x00081032  # Procedure Code Sequence
_REQUEST_SEQ = 0x00400275  # Request Attributes Sequence


def _state(obj: Any) -> Any:
    """Everything pydicom keeps for a data set, sequence or element (buffers by type only)."""
    if isinstance(obj, Dataset):
        fields = [(k, _state(v)) for k, v in vars(obj).items() if k != "_dict"]  # in order
        elements = [(type(k).__name__, int(k), _state(v)) for k, v in obj._dict.items()]
        return ("Dataset", type(obj).__name__, fields, elements)
    if isinstance(obj, Sequence):
        fields = [(k, _state(v)) for k, v in vars(obj).items() if k != "_list"]
        return ("Sequence", fields, [_state(i) for i in obj])
    if isinstance(obj, DataElement):
        return ("DataElement", [(k, _state(v)) for k, v in vars(obj).items()])
    if isinstance(obj, RawDataElement):
        return ("Raw", tuple(obj), type(obj.tag).__name__)
    if isinstance(obj, list):
        return [_state(i) for i in obj]
    if isinstance(obj, io.IOBase | DicomBytesIO):
        return type(obj).__name__
    return (type(obj).__name__, repr(obj))


def _convert_all(ds: Dataset, *, ours: bool) -> None:
    for tag in list(ds.keys()):
        held = ds.get_item(tag)
        if held is None or held.VR != "SQ":
            continue
        if ours:
            convert_sequence(ds, tag)
        for sub in ds[tag].value or ():
            _convert_all(sub, ours=ours)


def _assert_same_as_pydicom(data: bytes) -> None:
    theirs, ours = dcmread(io.BytesIO(data)), dcmread(io.BytesIO(data))
    _convert_all(theirs, ours=False)
    _convert_all(ours, ours=True)
    assert _state(ours) == _state(theirs)


def _nested(**keywords: Any) -> bytes:
    code = item(CodeValue="12345", CodingSchemeDesignator="99LOCAL", CodeMeaning="Café scan")
    request = item(
        RequestedProcedureID="RQ4471",
        ScheduledProcedureStepDescription="FOR DOE^JOHN",
        ScheduledProtocolCodeSequence=sequence_of(code),
    )
    ds = make_dataset(
        pixels=True,
        ProcedureCodeSequence=sequence_of(code, item(CodeValue="X", CodeMeaning="")),
        RequestAttributesSequence=sequence_of(request),
        **keywords,
    )
    return to_bytes(ds)


@pytest.mark.parametrize("charset", [None, "ISO_IR 100", "ISO_IR 192"])
def test_converted_items_equal_pydicoms(charset: str | None) -> None:
    _assert_same_as_pydicom(_nested(SpecificCharacterSet=charset))


def test_items_are_built_without_pydicoms_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = dcmread(io.BytesIO(_nested()))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pydicom's reader was used")

    monkeypatch.setattr("pydicom.filereader.read_sequence_item", refuse)
    convert_sequence(ds, _REQUEST_SEQ)
    assert isinstance(ds.get_item(_REQUEST_SEQ), DataElement)
    assert ds.RequestAttributesSequence[0].RequestedProcedureID == "RQ4471"


def test_implicit_vr_is_left_to_pydicom() -> None:
    ds = make_dataset(ProcedureCodeSequence=sequence_of(item(CodeValue="12345")))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = to_bytes(ds)
    read = dcmread(io.BytesIO(data))
    held = read.get_item(_CODE_SEQ)
    assert isinstance(held, RawDataElement)
    assert sequence_items(held) is None
    convert_sequence(read, _CODE_SEQ)
    assert isinstance(read.get_item(_CODE_SEQ), RawDataElement)  # untouched
    _assert_same_as_pydicom(data)


@pytest.mark.parametrize(
    "items",
    [
        [Dataset()],  # an empty item: pydicom reads it as implicit VR
        [item(SpecificCharacterSet="ISO_IR 100", CodeValue="1")],  # its own character set
    ],
)
def test_odd_items_are_left_to_pydicom(items: list[Dataset]) -> None:
    data = to_bytes(make_dataset(ProcedureCodeSequence=sequence_of(*items)))
    read = dcmread(io.BytesIO(data))
    convert_sequence(read, _CODE_SEQ)
    assert isinstance(read.get_item(_CODE_SEQ), RawDataElement)
    _assert_same_as_pydicom(data)


def test_nested_undefined_length_is_read_for_identifiers_only() -> None:
    inner = sequence_of(item(CodeValue="PLAN8841", CodeMeaning="x"))
    outer = item(PatientInsurancePlanCodeSequence=inner, PatientID="ALT99881")
    outer["PatientInsurancePlanCodeSequence"].is_undefined_length = True
    ds = make_dataset(OtherPatientIDsSequence=sequence_of(outer))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    data = to_bytes(ds)
    read = dcmread(io.BytesIO(data))
    held = read.get_item(0x00101002)
    assert isinstance(held, RawDataElement)
    items = sequence_items(held)
    assert items is not None and len(items) == 1
    convert_sequence(read, 0x00101002)
    assert isinstance(read.get_item(0x00101002), RawDataElement)  # left to pydicom
    # The identifiers are those pydicom's items give.
    fast = collect(dcmread(io.BytesIO(data)))
    slow_ds = dcmread(io.BytesIO(data))
    _convert_all(slow_ds, ours=False)
    assert fast == collect(slow_ds)
    assert {i.value for i in fast} >= {"PLAN8841", "ALT99881"}


def test_truncated_sequence_is_left_to_pydicom() -> None:
    read = dcmread(io.BytesIO(_nested()))
    held = read.get_item(_REQUEST_SEQ)
    assert isinstance(held, RawDataElement) and held.value is not None
    cut = held._replace(value=held.value[:-3], length=held.length - 3)
    assert sequence_items(cut) is None


def test_corpus_conversions_equal_pydicoms(corpus: Any) -> None:
    files = [
        p
        for p in sorted(CORPUS.rglob("*"))
        if p.is_file() and p.suffix.lower() not in {".json", ".md", ".txt", ".csv", ".png", ".py"}
    ]
    checked = 0
    for path in files:
        data = path.read_bytes()
        try:
            dcmread(io.BytesIO(data))
        except Exception:
            continue
        try:
            _assert_same_as_pydicom(data)
        except AssertionError:
            raise
        except Exception:
            continue  # pydicom itself cannot convert it
        checked += 1
    assert checked > 50
