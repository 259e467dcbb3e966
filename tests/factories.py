"""Build data sets in code. Unknown keywords are rejected, outputs are written and read back."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

#: Planted identifiers: tests assert none of them survives.
PATIENT_NAME = "DOE^JOHNATHAN^Q"
PATIENT_ID = "MRN7781234"
BIRTH_DATE = "19610415"
STUDY_DATE = "20230912"
ACCESSION = "ACC99812"
INSTITUTION = "SAINT ELSEWHERE HOSPITAL"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1002"
SOP_UID = "1.2.826.0.1.3680043.8.498.1003"
FOR_UID = "1.2.826.0.1.3680043.8.498.1004"
#: Every planted value, and the parts of the name: none may appear in anything deid emits.
PLANTED = (
    PATIENT_NAME,
    *PATIENT_NAME.split("^")[:2],
    PATIENT_ID,
    BIRTH_DATE,
    STUDY_DATE,
    ACCESSION,
    INSTITUTION,
    STUDY_UID,
    SERIES_UID,
    SOP_UID,
    FOR_UID,
)


def element_value(ds: Dataset, keyword: str, value: Any) -> None:
    """Set ``keyword`` on ``ds``; unknown keywords raise instead of becoming attributes."""
    if tag_for_keyword(keyword) is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    setattr(ds, keyword, value)


def make_dataset(sop_class: str = CTImageStorage, pixels: bool = False, **keywords: Any) -> Dataset:
    """A small, valid CT-like object with planted identifiers, overridable by keyword."""
    ds = Dataset()
    base: dict[str, Any] = {
        "SOPClassUID": sop_class,
        "SOPInstanceUID": SOP_UID,
        "StudyInstanceUID": STUDY_UID,
        "SeriesInstanceUID": SERIES_UID,
        "FrameOfReferenceUID": FOR_UID,
        "PatientName": PATIENT_NAME,
        "PatientID": PATIENT_ID,
        "PatientBirthDate": BIRTH_DATE,
        "PatientSex": "M",
        "StudyDate": STUDY_DATE,
        "StudyTime": "101500",
        "AccessionNumber": ACCESSION,
        "InstitutionName": INSTITUTION,
        "Modality": "CT",
        "StudyID": "S4411",
    }
    base.update(keywords)
    for keyword, value in base.items():
        if value is not None:
            element_value(ds, keyword, value)
    if pixels:
        ds.Rows = ds.Columns = 16
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = np.arange(256, dtype="<u2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "SCANNER_AE"
    ds.file_meta = meta
    return ds


def sequence_of(*items: Dataset) -> Sequence:
    return Sequence(list(items))


def item(**keywords: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in keywords.items():
        element_value(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def roundtrip(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def vr_of(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return dictionary_VR(tag)


#: Comprehensive SR Storage.
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item."""
    return item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def content_item(
    value_type: str | None,
    concept: tuple[str, str, str] | None = None,
    relationship: str = "CONTAINS",
    **keywords: Any,
) -> Dataset:
    """An SR content item: ``concept`` is (code value, coding scheme, meaning)."""
    ds = item(RelationshipType=relationship, **keywords)
    if value_type is not None:
        ds.ValueType = value_type
    if concept is not None:
        ds.ConceptNameCodeSequence = sequence_of(code(*concept))
    return ds


def sr_document(*items: Dataset, sop_class: str = COMPREHENSIVE_SR, **keywords: Any) -> Dataset:
    """An SR document with planted identifiers: a CONTAINER root holding ``items``."""
    ds = make_dataset(sop_class=sop_class, Modality="SR", **keywords)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = sequence_of(code("126000", "DCM", "Imaging Measurement Report"))
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = sequence_of(*items)
    return ds
