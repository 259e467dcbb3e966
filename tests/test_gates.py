"""Fail-closed gates: what is rejected before anything is decided, and why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG4HP41,
    CTImageStorage,
    JPIPHTJ2KReferenced,
    KeyObjectSelectionDocumentStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from deid import Deidentifier, MissingDependencyError, Policy, RejectedError, RejectReason
from deid.actions import DUMMY_TEXT
from deid.codes import PixelMode
from deid.engine import read_dataset
from deid.gates import burned_in_risk, check
from deid.ocr import OcrEngine
from deid.policy import load_policy
from tests.conftest import KEY
from tests.factories import (
    ACCESSION,
    COMPREHENSIVE_SR,
    PATIENT_NAME,
    PLANTED,
    content_item,
    item,
    make_dataset,
    roundtrip,
    sequence_of,
    sr_document,
    to_bytes,
)


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


def test_an_object_the_pixel_pass_only_prescreens_is_rejected_without_an_ocr_engine() -> None:
    ds = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    assert burned_in_risk(ds, PixelMode.AUTO) == ""  # not at risk: pre-screened, needs OCR
    with pytest.raises(RejectedError) as info:
        Deidentifier("upload", KEY, ocr="tests.test_gates:no_ocr_installed").deidentify(ds)
    assert info.value.reason is RejectReason.BURNED_IN_TEXT


# -- transfer syntaxes the pixel pass cannot read -------------------------------------------


def video_us_image() -> Dataset:
    ds = make_dataset(sop_class=UltrasoundImageStorage, pixels=True, Modality="US")
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def test_video_that_needs_the_pixel_pass_is_an_unsupported_transfer_syntax() -> None:
    ds = video_us_image()
    engine = Deidentifier("upload", KEY, ocr="tests.test_gates:no_ocr_installed")
    with pytest.raises(RejectedError) as info:
        engine.deidentify(ds)  # refused before any OCR engine is built
    assert info.value.reason is RejectReason.UNSUPPORTED_TRANSFER_SYNTAX
    assert str(info.value) == (
        "UNSUPPORTED_TRANSFER_SYNTAX: the pixel pass cannot read MPEG-4 AVC/H.264 High Profile "
        "/ Level 4.1 pixel data (modality US)"
    )
    released = Deidentifier(Policy(clean_pixel_data="never"), KEY).deidentify(ds)  # type: ignore[arg-type]
    assert roundtrip(released.data).PixelData == ds.PixelData


def test_pixel_data_referenced_by_url_is_rejected_while_the_policy_looks_at_pixels() -> None:
    ds = make_dataset(Modality="US", Rows=16, Columns=16, BitsAllocated=8, SamplesPerPixel=1)
    ds.file_meta.TransferSyntaxUID = JPIPHTJ2KReferenced
    ds.PixelDataProviderURL = "https://pacs.invalid/jpip/1"
    with pytest.raises(RejectedError) as info:
        Deidentifier("upload", KEY).deidentify(ds)
    assert info.value.reason is RejectReason.UNSUPPORTED_TRANSFER_SYNTAX
    assert str(info.value) == (
        "UNSUPPORTED_TRANSFER_SYNTAX: pixel data referenced by URL (JPIP): the pixel pass "
        'cannot check it (clean_pixel_data = "never" to release)'
    )
    never = Policy(clean_pixel_data="never")  # type: ignore[arg-type]
    assert Deidentifier(never, KEY).deidentify(ds).audit.outcome.value == "deidentified"


# -- structured content (PS3.15 E.3.4) -------------------------------------------------------

FINDING = ("121071", "DCM", "Finding")
LOCAL_TEXT = ("R-17", "99LOCAL", "Reading physician licence")
SURNAME = PATIENT_NAME.split("^")[0]


def rejection(policy: Policy | str, ds: Dataset) -> RejectedError:
    with pytest.raises(RejectedError) as info:
        Deidentifier(policy, KEY).deidentify(ds)
    error = info.value
    assert not any(value in str(error) for value in PLANTED), str(error)
    return error


def test_sr_content_under_a_policy_without_clean_structured_content_is_rejected() -> None:
    ds = sr_document(content_item("TEXT", FINDING, TextValue="mass"))
    error = rejection("basic", ds)
    assert error.reason is RejectReason.UNSAFE_STRUCTURED_CONTENT
    assert str(error) == (
        "UNSAFE_STRUCTURED_CONTENT: SR content is cleaned only under clean_structured_content "
        "(PS3.15 E.3.4): the Basic Profile's dummy Content Sequence keeps its codes and numbers "
        "(allow_sop_classes to accept)"
    )
    allowed = Policy(name="p", allow_sop_classes=[COMPREHENSIVE_SR])  # type: ignore[arg-type]
    out = roundtrip(Deidentifier(allowed, KEY).deidentify(ds).data)
    assert out.ContentSequence[0].TextValue == DUMMY_TEXT  # the Basic Profile's D, as it goes


def test_sr_content_of_standard_concepts_is_cleaned_under_upload() -> None:
    finding = content_item("TEXT", FINDING, TextValue=f"mass, seen with {SURNAME}")
    accession = content_item("TEXT", ("121022", "DCM", "Accession Number"), TextValue=ACCESSION)
    observer = content_item("PNAME", ("121008", "DCM", "Person Observer Name"), PersonName="R^J")
    ds = sr_document(
        content_item(
            "CONTAINER",
            ("121070", "DCM", "Findings"),
            ContentSequence=sequence_of(finding, accession, observer),
        )
    )
    out = roundtrip(Deidentifier("upload", KEY).deidentify(ds).data)
    items = out.ContentSequence[0].ContentSequence
    assert [i.ValueType for i in items] == ["TEXT", "PNAME"]  # Accession Number: E.3.4-1 X
    assert items[0].TextValue == "mass, seen with ***"
    assert items[1].PersonName == DUMMY_TEXT


def test_a_text_item_of_a_local_concept_is_rejected_with_its_place() -> None:
    local = content_item("TEXT", LOCAL_TEXT, TextValue="0000000")
    findings = content_item(
        "CONTAINER",
        ("121070", "DCM", "Findings"),
        ContentSequence=sequence_of(content_item("TEXT", FINDING, TextValue="ok"), local),
    )
    ds = sr_document(findings)
    error = rejection("upload", ds)
    assert error.reason is RejectReason.UNSAFE_STRUCTURED_CONTENT
    assert str(error) == (
        "UNSAFE_STRUCTURED_CONTENT: SR content cannot be cleaned: (0040,A730)[0]>(0040,A730)[1]: "
        "a TEXT item of a concept Table E.3.4-1 cannot judge (local or none) "
        "(allow_sop_classes to accept)"
    )
    allowed = replace(load_policy("upload"), allow_sop_classes=frozenset({COMPREHENSIVE_SR}))
    assert Deidentifier(allowed, KEY).deidentify(ds).audit.outcome.value == "deidentified"


def _private_item() -> Dataset:
    ds = content_item("TEXT", FINDING, TextValue="ok")
    ds.add_new(0x00410010, "LO", "SITE PRIVATE")
    ds.add_new(0x00411001, "OB", b"anything at all")
    return ds


def _unknown_public_element() -> Dataset:
    ds = content_item("TEXT", FINDING, TextValue="ok")
    ds.add_new(0x00669999, "UN", b"text nobody can read")
    return ds


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (
            content_item(None, FINDING, TextValue="x"),
            "(0040,A730)[0]: a content item without a Value Type",
        ),
        (
            content_item("TABLE", FINDING),
            "(0040,A730)[0]: a Value Type the cleaning does not handle",
        ),
        (
            content_item("TEXT", None, TextValue="x"),
            "(0040,A730)[0]: a TEXT item of a concept Table E.3.4-1 cannot judge (local or none)",
        ),
        (
            content_item("COMPOSITE", ("121079", "DCM", "Baseline"), EncapsulatedDocument=b"%PDF"),
            "(0040,A730)[0]>(0042,0011): a value of VR OB, which cannot be cleaned",
        ),
        (
            _unknown_public_element(),
            "(0040,A730)[0]>(0066,9999): a value of VR UN, which cannot be cleaned",
        ),
    ],
    ids=["no-value-type", "unknown-value-type", "text-without-concept", "embedded", "unknown-vr"],
)
def test_content_the_cleaning_cannot_handle(content: Dataset, where: str) -> None:
    error = rejection("upload", sr_document(content))
    assert error.reason is RejectReason.UNSAFE_STRUCTURED_CONTENT
    assert str(error) == (
        f"UNSAFE_STRUCTURED_CONTENT: SR content cannot be cleaned: {where} "
        "(allow_sop_classes to accept)"
    )


def test_text_that_came_encoded_as_un_is_beyond_the_scrubber() -> None:
    """An explicit VR file may hold Text Value as UN: the plan cannot read it as text and
    would keep it (verification finds only the object's own identifiers in it)."""
    content = content_item("TEXT", ("121073", "DCM", "Impression"), TextValue="x")
    content["TextValue"].VR = "UN"
    content["TextValue"].value = b"seen by a colleague"
    data = to_bytes(sr_document(content))
    with pytest.raises(RejectedError) as info:
        Deidentifier("upload", KEY).deidentify_bytes(data)
    assert str(info.value) == (
        "UNSAFE_STRUCTURED_CONTENT: SR content cannot be cleaned: (0040,A730)[0]>(0040,A160): "
        "a value of VR UN, which cannot be cleaned (allow_sop_classes to accept)"
    )


@pytest.mark.parametrize(
    "content",
    [
        content_item(None, relationship="INFERRED FROM", ReferencedContentItemIdentifier=[1, 1]),
        content_item("TEXT", ("G-D705", "SRT", "Volume"), TextValue="x"),  # retired SNOMED name
        content_item(  # a local item inside one that Table E.3.4-1 removes: never looked at
            "TEXT",
            ("121022", "DCM", "Accession Number"),
            TextValue=ACCESSION,
            ContentSequence=sequence_of(content_item("TEXT", LOCAL_TEXT, TextValue="x")),
        ),
        content_item(
            "CODE",
            ("L-1", "99LOCAL", "Grade"),
            ConceptCodeSequence=sequence_of(
                item(CodeValue="2", CodingSchemeDesignator="99LOCAL", CodeMeaning="moderate")
            ),
        ),
        content_item(
            "NUM",
            ("L-2", "99LOCAL", "Length"),
            MeasuredValueSequence=sequence_of(item(NumericValue="12.5")),
        ),
        _private_item(),  # private elements: the private-attribute rules remove them
    ],
    ids=["by-reference", "srt-alias", "inside-removed", "local-code", "local-num", "private"],
)
def test_content_the_cleaning_handles(content: Dataset) -> None:
    result = Deidentifier("upload", KEY).deidentify(sr_document(content))
    assert result.audit.outcome.value == "deidentified"


@pytest.mark.parametrize(
    ("action", "passes"), [("X", True), ("Z", True), ("K", False), ("C", False)]
)
def test_an_override_on_content_sequence(action: str, passes: bool) -> None:
    upload = load_policy("upload")
    policy = replace(upload, overrides={**upload.overrides, 0x0040A730: action})
    ds = sr_document(content_item("TEXT", LOCAL_TEXT, TextValue="x"))
    if passes:
        out = roundtrip(Deidentifier(policy, KEY).deidentify(ds).data)
        assert not out.get("ContentSequence")
        return
    error = rejection(policy, ds)
    assert str(error) == (
        f"UNSAFE_STRUCTURED_CONTENT: SR content under a policy override {action} on Content "
        "Sequence is not cleaned by Table E.3.4-1 (allow_sop_classes to accept)"
    )


def test_key_object_selection_is_an_sr_document_too() -> None:
    description = content_item(
        "TEXT", ("113012", "DCM", "Key Object Description"), TextValue=f"for {SURNAME}"
    )
    ds = sr_document(description, sop_class=KeyObjectSelectionDocumentStorage)
    assert rejection("basic", ds).reason is RejectReason.UNSAFE_STRUCTURED_CONTENT
    out = roundtrip(Deidentifier("upload", KEY).deidentify(ds).data)
    assert out.ContentSequence[0].TextValue == "for ***"  # Clean Descriptors C


def test_objects_without_a_document_content_tree_pass_the_gate() -> None:
    empty = sr_document()
    check(empty, load_policy("basic"))
    local = content_item("TEXT", LOCAL_TEXT, TextValue="x")
    ct = make_dataset(AcquisitionContextSequence=sequence_of(local))
    check(ct, load_policy("basic"))


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("pydicom/test-SR.dcm", "(0040,A730)[1]>(0040,A730)[0]"),  # 99_OFFIS_DCMTK "Text Code"
        ("pydicom/reportsi.dcm", "(0040,A730)[2]"),  # 99_OFFIS_DCMTK organization name
        ("orthanc-tests/MarekLatin2.dcm", "(0040,A730)[1]"),  # IMSC: a department
        ("orthanc-tests/HierarchicalAnonymization/StructuredReports/IM0", "(0040,A730)[0]"),
        ("highdicom/sr_document.dcm", None),  # DCM and SNOMED concepts only
    ],
)
def test_corpus_sr_documents(corpus: Path, name: str, where: str | None) -> None:
    data = (corpus / name).read_bytes()
    sop_class = str(read_dataset(data).SOPClassUID)
    if where is None:
        assert Deidentifier("upload", KEY).deidentify_bytes(data).audit.outcome.value == (
            "deidentified"
        )
        return
    with pytest.raises(RejectedError) as info:
        Deidentifier("upload", KEY).deidentify_bytes(data)
    assert str(info.value) == (
        f"UNSAFE_STRUCTURED_CONTENT: SR content cannot be cleaned: {where}: a TEXT item of a "
        "concept Table E.3.4-1 cannot judge (local or none) (allow_sop_classes to accept)"
    )
    with pytest.raises(RejectedError) as info:
        Deidentifier("basic", KEY).deidentify_bytes(data)
    assert info.value.reason is RejectReason.UNSAFE_STRUCTURED_CONTENT
    allowed = replace(load_policy("upload"), allow_sop_classes=frozenset({sop_class}))
    assert Deidentifier(allowed, KEY).deidentify_bytes(data).audit.outcome.value == "deidentified"
