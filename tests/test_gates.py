"""Fail-closed gates: what is rejected before anything is decided, and why."""

from __future__ import annotations

import pytest
from pydicom.uid import CTImageStorage, SecondaryCaptureImageStorage, UltrasoundImageStorage

from deid import Deidentifier, MissingDependencyError, Policy, RejectedError, RejectReason
from deid.codes import PixelMode
from deid.gates import burned_in_risk, check
from deid.ocr import OcrEngine
from tests.conftest import KEY
from tests.factories import PATIENT_NAME, make_dataset


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"BurnedInAnnotation": "YES"}, "Burned In Annotation YES"),
        ({"Modality": "US"}, "modality US"),
        ({"Modality": "DX"}, "modality DX"),
        ({"Modality": "OT"}, "modality OT"),
        (
            {"sop_class": SecondaryCaptureImageStorage},
            "a SOP Class of captured or annotated images",
        ),
        (
            {"sop_class": UltrasoundImageStorage, "Modality": "CT"},
            "a SOP Class of captured or annotated images",
        ),
        (
            {"ImageType": ["DERIVED", "SECONDARY"]},
            "Image Type SECONDARY (a derived or captured image)",
        ),
    ],
    ids=["flag", "us", "dx", "ot", "secondary-capture", "us-sop-class", "secondary-image"],
)
def test_objects_at_risk_of_burned_in_text(changes: dict[str, object], reason: str) -> None:
    changes = dict(changes)
    sop_class = str(changes.pop("sop_class", CTImageStorage))
    ds = make_dataset(sop_class=sop_class, pixels=True, **changes)
    assert burned_in_risk(ds, PixelMode.AUTO) == reason
    assert burned_in_risk(ds, PixelMode.NEVER) == ""
    with pytest.raises(RejectedError) as info:
        Deidentifier("upload", KEY, ocr="tests.test_gates:no_ocr_installed").deidentify(ds)
    assert info.value.reason is RejectReason.BURNED_IN_TEXT
    assert reason in str(info.value)
    assert "no OCR engine is installed (pip install 'deid-dicom[ocr]')" in str(info.value)
    assert "DOE" not in str(info.value)


def no_ocr_installed() -> OcrEngine:
    """An engine factory as a registry path: what a missing backend raises."""
    raise MissingDependencyError("the test OCR engine", "ocr")


def test_plain_ct_and_objects_without_pixels_pass_the_pixel_gate() -> None:
    ct = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    assert burned_in_risk(ct, PixelMode.AUTO) == ""
    assert burned_in_risk(ct, PixelMode.ALWAYS) == "clean_pixel_data = always"
    no_pixels = make_dataset(Modality="US", BurnedInAnnotation="YES")
    assert burned_in_risk(no_pixels, PixelMode.ALWAYS) == ""
    check(ct, Policy())


def test_never_releases_the_pixels_as_they_are() -> None:
    ds = make_dataset(pixels=True, Modality="US", BurnedInAnnotation="YES")
    result = Deidentifier(Policy(clean_pixel_data="never"), KEY).deidentify(ds)
    assert result.dataset.PixelData == ds.PixelData
    assert result.dataset.BurnedInAnnotation == "YES"  # no pixel pass: the flag stays true


def test_a_risky_modality_value_is_not_echoed_when_it_is_not_a_defined_term() -> None:
    ds = make_dataset(pixels=True, Modality="US")
    ds.Modality = PATIENT_NAME[:4]  # junk in Modality is not a modality: no risk by modality
    assert burned_in_risk(ds, PixelMode.AUTO) == ""


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"SOPInstanceUID": ""}, RejectReason.MISSING_UID),
        ({"SOPClassUID": "1.2.840.10008.1.3.10"}, RejectReason.UNSUPPORTED_SOP_CLASS),
    ],
    ids=["no-instance-uid", "dicomdir"],
)
def test_structural_gates(changes: dict[str, object], reason: RejectReason) -> None:
    ds = make_dataset(**changes)
    with pytest.raises(RejectedError) as info:
        check(ds, Policy())
    assert info.value.reason is reason


def test_an_unwritable_transfer_syntax_is_rejected() -> None:
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.8.1"  # unknown to pydicom 3.0
    with pytest.raises(RejectedError) as info:
        check(ds, Policy())
    assert info.value.reason is RejectReason.UNSUPPORTED_TRANSFER_SYNTAX
