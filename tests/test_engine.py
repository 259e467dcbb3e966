"""The Deidentifier end to end: exact outputs, markers, file meta, rejections, sets, threads."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from deid import (
    Deidentifier,
    Policy,
    PolicyError,
    ProfileOption,
    Pseudonymizer,
    RejectedError,
    RejectReason,
    ResidualPhiError,
    load_policy,
)
from deid.markers import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tests.conftest import KEY
from tests.factories import (
    ACCESSION,
    BIRTH_DATE,
    FOR_UID,
    INSTITUTION,
    PATIENT_ID,
    PATIENT_NAME,
    SERIES_UID,
    SOP_UID,
    STUDY_DATE,
    STUDY_UID,
    item,
    make_dataset,
    roundtrip,
    sequence_of,
    to_bytes,
)

P = Pseudonymizer(KEY)
PLANTED = (
    "DOE",
    "JOHNATHAN",
    PATIENT_ID,
    BIRTH_DATE,
    STUDY_DATE,
    ACCESSION,
    INSTITUTION,
    "ELSEWHERE",
    STUDY_UID,
    SERIES_UID,
    SOP_UID,
)
UPLOAD_CODES = ["113100", "113111", "113109", "113108", "113107", "113105", "113104", "113103"]
ORIGINAL_PIXELS = make_dataset(pixels=True).PixelData


def run(policy: Policy | str, ds: Dataset) -> tuple[Dataset, Any]:
    """De-identify the encoded ``ds``; return the output read back from bytes, and the result."""
    result = Deidentifier(policy, P).deidentify_bytes(to_bytes(ds))
    return roundtrip(result.data), result


def shift_of(patient_id: str, policy: str = "upload") -> int:
    return P.date_shift_days(patient_id, *load_policy(policy).date_shift_days)


def plus_days(yyyymmdd: str, days: int) -> str:
    day = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    return (day + dt.timedelta(days=days)).strftime("%Y%m%d")


# -- identity, UIDs, file meta ------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["upload", "research"])
def test_patient_pseudonyms_are_the_keyed_values(policy: str) -> None:
    out, _ = run(policy, make_dataset(pixels=True))
    assert out.PatientID == P.patient_id(PATIENT_ID)
    assert str(out.PatientName) == P.patient_name(PATIENT_ID, PATIENT_NAME)
    assert out.PatientID == "ID" + P.token("patient-id", PATIENT_ID, 14)
    assert out.PatientBirthDate == ""
    assert "InstitutionName" not in out
    if policy == "research":
        assert out.AccessionNumber == P.token("AccessionNumber", ACCESSION, 16)
        assert out.StudyID == P.token("StudyID", "S4411", 16)
    else:
        assert out.AccessionNumber == ""
        assert out.StudyID == ""


def test_basic_policy_empties_names_ids_and_dates() -> None:
    ds = make_dataset(
        pixels=True, SeriesDate="20230913", ContentDate="20230913", ContentTime="1010"
    )
    out, _ = run("basic", ds)
    emptied = (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "ContentDate",
        "ContentTime",
    )
    assert {k: str(out[k].value) for k in emptied} == dict.fromkeys(emptied, "")
    for keyword in ("InstitutionName", "SeriesDate", "PatientAge"):  # X (Type 3 in CT) or absent
        assert keyword not in out
    assert out.Modality == "CT"
    assert out.PixelData == ORIGINAL_PIXELS


@pytest.mark.parametrize("policy", ["basic", "upload", "research"])
def test_uids_are_keyed_everywhere_and_file_meta_is_new(policy: str) -> None:
    ds = make_dataset(pixels=True)
    out, result = run(policy, ds)
    assert out.SOPInstanceUID == P.uid(SOP_UID)
    assert out.StudyInstanceUID == P.uid(STUDY_UID)
    assert out.SeriesInstanceUID == P.uid(SERIES_UID)
    assert out.FrameOfReferenceUID == P.uid(FOR_UID)
    assert out.SOPClassUID == CTImageStorage
    meta = out.file_meta
    assert sorted(meta.dir()) == [
        "FileMetaInformationGroupLength",
        "FileMetaInformationVersion",
        "ImplementationClassUID",
        "ImplementationVersionName",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
    ]
    assert meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == P.uid(SOP_UID)
    assert meta.MediaStorageSOPClassUID == CTImageStorage
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    assert "SourceApplicationEntityTitle" not in meta
    assert result.data[:128] == b"\x00" * 128
    assert result.data[128:132] == b"DICM"
    assert out.preamble == b"\x00" * 128
    assert out.PixelData == ORIGINAL_PIXELS
    assert b"SCANNER_AE" not in result.data


@pytest.mark.parametrize(
    ("policy", "codes", "longitudinal"),
    [
        (Policy(name="basic"), ["113100"], "REMOVED"),
        ("basic", ["113100"], "REMOVED"),
        ("upload", UPLOAD_CODES, "MODIFIED"),
        ("research", UPLOAD_CODES, "MODIFIED"),
        (
            Policy(options=frozenset({ProfileOption.RETAIN_LONG_FULL_DATES})),
            ["113100", "113106"],
            "UNMODIFIED",
        ),
        (
            Policy(options=frozenset(ProfileOption) - {ProfileOption.RETAIN_LONG_FULL_DATES}),
            [
                "113100",
                "113111",
                "113110",
                "113109",
                "113112",
                "113108",
                "113107",
                "113105",
                "113104",
                "113103",
            ],
            "MODIFIED",
        ),
    ],
    ids=["basic-in-code", "basic", "upload", "research", "full-dates", "every-option"],
)
def test_markers(policy: Policy | str, codes: list[str], longitudinal: str) -> None:
    ds = make_dataset(pixels=True)
    ds.ContributingEquipmentSequence = sequence_of(item(Manufacturer="ACME"))
    out, _ = run(policy, ds)
    assert out.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == codes
    assert {i.CodingSchemeDesignator for i in out.DeidentificationMethodCodeSequence} == {"DCM"}
    assert out.DeidentificationMethodCodeSequence[0].CodeMeaning == (
        "Basic Application Confidentiality Profile"
    )
    assert out.LongitudinalTemporalInformationModified == longitudinal
    method = out.DeidentificationMethod
    methods = [method] if isinstance(method, str) else list(method)
    assert len(methods) == len(codes)
    assert methods[0].endswith("; PS3.15 2026c Basic Profile")
    equipment = out.ContributingEquipmentSequence[-1]
    assert equipment.Manufacturer == "deid"
    purpose = equipment.PurposeOfReferenceCodeSequence
    assert [(c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning) for c in purpose] == [
        ("109104", "DCM", "De-identifying Equipment")
    ]


def test_input_dataset_is_left_unchanged() -> None:
    ds = make_dataset(
        pixels=True,
        StudyDescription="CT for DOE JOHNATHAN",
        RequestAttributesSequence=sequence_of(
            item(RequestedProcedureDescription="for DOE", RequestedProcedureID="RP1")
        ),
    )
    read = dcmread(io.BytesIO(to_bytes(ds)))  # holds raw (not yet decoded) elements
    for original in (ds, read):
        before = snapshot(original)
        meta_before = snapshot(original.file_meta)
        pixels = original.PixelData
        result = Deidentifier("upload", P).deidentify(original)
        assert snapshot(original) == before
        assert snapshot(original.file_meta) == meta_before
        assert original.PixelData is pixels
        assert roundtrip(result.data).PatientID == P.patient_id(PATIENT_ID)
    assert str(ds.PatientName) == PATIENT_NAME
    assert ds.file_meta.SourceApplicationEntityTitle == "SCANNER_AE"


def snapshot(ds: Dataset) -> list[tuple[int, str, Any]]:
    """Every element, at every depth, as (tag, VR, value) with sequences expanded."""
    found: list[tuple[int, str, Any]] = []
    for elem in ds:
        if elem.VR == "SQ":
            found.append((elem.tag, "SQ", [snapshot(entry) for entry in elem.value]))
        else:
            value = elem.value
            found.append((elem.tag, elem.VR, list(value) if elem.VM > 1 else str(value)))
    return found


# -- dates and characteristics ----------------------------------------------------------------


def test_patient_age_is_derived_under_upload() -> None:
    out, result = run("upload", make_dataset())
    assert out.PatientAge == "062Y"  # 1961-04-15 to 2023-09-12
    assert out.PatientBirthDate == ""
    assert result.plan.derived_age
    kept, _ = run("upload", make_dataset(PatientAge="061Y"))
    assert kept.PatientAge == "061Y"
    unborn, _ = run("upload", make_dataset(PatientBirthDate="20240101"))
    assert "PatientAge" not in unborn
    basic, _ = run("basic", make_dataset(PatientAge="061Y"))
    assert "PatientAge" not in basic


def test_date_intervals_are_kept_exactly_under_modified_dates() -> None:
    shift = shift_of(PATIENT_ID)
    assert -3650 <= shift <= -1
    ds = make_dataset(
        SeriesDate=plus_days(STUDY_DATE, 37),
        AcquisitionDateTime=plus_days(STUDY_DATE, 37) + "101112.25+0200",
        SeriesTime="235959",
    )
    out, _ = run("upload", ds)
    assert out.StudyDate == plus_days(STUDY_DATE, shift)
    assert out.SeriesDate == plus_days(STUDY_DATE, 37 + shift)
    assert out.AcquisitionDateTime == plus_days(STUDY_DATE, 37 + shift) + "101112.25+0200"
    assert out.StudyTime == "101500"
    assert out.SeriesTime == "235959"
    study = dt.datetime.strptime(out.StudyDate, "%Y%m%d")
    series = dt.datetime.strptime(out.SeriesDate, "%Y%m%d")
    assert (series - study).days == 37


def test_one_patient_gets_one_shift_across_objects() -> None:
    first, _ = run("upload", make_dataset(StudyDate="20200101", SOPInstanceUID="1.2.3.1"))
    second, _ = run("upload", make_dataset(StudyDate="20210101", SOPInstanceUID="1.2.3.2"))
    shift = shift_of(PATIENT_ID)
    assert first.StudyDate == plus_days("20200101", shift)
    assert second.StudyDate == plus_days("20210101", shift)


# -- writing files, rejections -------------------------------------------------------------------


def test_deidentify_file_writes_atomically(tmp_path: Path) -> None:
    src = tmp_path / "in.dcm"
    src.write_bytes(to_bytes(make_dataset(pixels=True)))
    dst = tmp_path / "out" / "nested" / "out.dcm"
    result = Deidentifier("upload", P).deidentify_file(src, dst)
    assert dst.read_bytes() == result.data
    assert sorted(p.name for p in dst.parent.iterdir()) == ["out.dcm"]
    assert dcmread(dst).SOPInstanceUID == P.uid(SOP_UID)
    dst.write_bytes(b"old")
    Deidentifier("upload", P).deidentify_file(src, dst)  # replaces an existing file
    assert dst.read_bytes() == result.data


def test_deidentify_file_renames_a_complete_temporary_file_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.dcm"
    src.write_bytes(to_bytes(make_dataset(pixels=True)))
    dst = tmp_path / "out.dcm"
    renames: list[tuple[Path, Path, bytes, bool]] = []
    real_replace = os.replace

    def spy(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
        renames.append((Path(a), Path(b), Path(a).read_bytes(), Path(b).exists()))
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", spy)
    result = Deidentifier("upload", P).deidentify_file(src, dst)
    [(temporary, target, content, existed)] = renames
    assert target == dst
    assert temporary.parent == dst.parent
    assert temporary.name.startswith(".deid-")
    assert temporary.name.endswith(".tmp")
    assert content == result.data
    assert not existed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.dcm", "out.dcm"]


def test_failed_write_is_a_rejection_that_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.dcm"
    src.write_bytes(to_bytes(make_dataset(pixels=True)))

    def refuse(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> None:
        raise PermissionError(13, "denied", str(b))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(RejectedError) as caught:
        Deidentifier("upload", P).deidentify_file(src, tmp_path / "out.dcm")
    assert caught.value.reason is RejectReason.WRITE_FAILED
    assert str(caught.value) == "WRITE_FAILED: cannot write output (PermissionError)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.dcm"]


def test_planted_identifier_in_a_kept_attribute_is_rejected_and_nothing_written(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.dcm"
    src.write_bytes(to_bytes(make_dataset(ConvolutionKernel="JOHNATHAN K")))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dst = out_dir / "out.dcm"
    with pytest.raises(ResidualPhiError) as caught:
        Deidentifier("upload", P).deidentify_file(src, dst)
    assert caught.value.reason is RejectReason.RESIDUAL_PHI
    assert any("(0018,1210) ConvolutionKernel" in hit for hit in caught.value.hits)
    assert list(out_dir.iterdir()) == []
    assert_no_planted(caught.value)
    dst.write_bytes(b"previous output")
    with pytest.raises(ResidualPhiError):
        Deidentifier("upload", P).deidentify_file(src, dst)
    assert dst.read_bytes() == b"previous output"
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.dcm"]


def assert_no_planted(exc: BaseException) -> None:
    text = " ".join((str(exc), repr(exc), str(getattr(exc, "detail", ""))))
    for value in PLANTED:  # as a whole word: "DOE" may not appear, "does" may
        assert not re.search(rf"(?<![a-z0-9]){re.escape(value)}(?![a-z0-9])", text, re.I), value


def _without_sop_instance() -> bytes:
    ds = make_dataset(pixels=True)
    del ds.SOPInstanceUID
    return to_bytes(ds)


GOOD = to_bytes(make_dataset(pixels=True))
BAD_INPUTS = {
    "not-dicom": (b"not dicom", RejectReason.NOT_DICOM),
    "too-short": (b"DICM", RejectReason.NOT_DICOM),
    "cut-in-patient-name": (GOOD[: GOOD.index(b"JOHNATHAN") + 4], RejectReason.TRUNCATED),
    "cut-in-patient-id": (GOOD[: GOOD.index(PATIENT_ID.encode()) + 3], RejectReason.TRUNCATED),
    "cut-in-pixel-data": (GOOD[:-100], RejectReason.TRUNCATED),
    # three bytes into the header of (0008,0030) Study Time, explicit VR little endian
    "cut-in-element-header": (GOOD[: GOOD.index(b"\x08\x000\x00TM") + 3], RejectReason.TRUNCATED),
    "no-sop-instance-uid": (_without_sop_instance(), RejectReason.MISSING_UID),
}


@pytest.mark.parametrize(("data", "reason"), BAD_INPUTS.values(), ids=BAD_INPUTS)
def test_bad_input_is_rejected_with_its_reason(
    tmp_path: Path, data: bytes, reason: RejectReason
) -> None:
    engine = Deidentifier("upload", P)
    with pytest.raises(RejectedError) as caught:
        engine.deidentify_bytes(data)
    assert caught.value.reason is reason
    assert type(caught.value) is RejectedError
    assert_no_planted(caught.value)
    src = tmp_path / "in.dcm"
    src.write_bytes(data)
    with pytest.raises(RejectedError) as again:
        engine.deidentify_file(src, tmp_path / "out" / "out.dcm")
    assert again.value.reason is reason
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in.dcm"]


def test_dataset_without_sop_instance_uid_is_rejected() -> None:
    ds = make_dataset()
    del ds.SOPInstanceUID
    with pytest.raises(RejectedError) as caught:
        Deidentifier("upload", P).deidentify(ds)
    assert caught.value.reason is RejectReason.MISSING_UID
    assert_no_planted(caught.value)


def test_missing_input_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(RejectedError) as caught:
        Deidentifier("upload", P).deidentify_file(tmp_path / "nope.dcm", tmp_path / "out.dcm")
    assert caught.value.reason is RejectReason.NOT_DICOM
    assert list(tmp_path.iterdir()) == []


def test_a_key_is_required_and_never_shown() -> None:
    with pytest.raises(PolicyError):
        Deidentifier("upload")
    engine = Deidentifier("upload", KEY)
    assert repr(engine) == f"Deidentifier(policy='upload', key={P.fingerprint!r})"
    assert KEY.hex() not in repr(engine)


# -- a multi-patient, multi-study set with cross references ------------------------------------

ROOT = "1.2.826.0.1.3680043.8.498.7"
STUDY_ROOT_QR = "1.2.840.10008.5.1.4.1.2.2.1"  # a well-known SOP Class for study references


def _uid(*parts: int) -> str:
    return ".".join([ROOT, *map(str, parts)])


def build_set() -> list[Dataset]:
    """3 patients x 2 studies x 2 series x 3 instances, each referencing others."""
    objects = []
    for p in range(3):
        pid = f"PX{p}{p}40{p}7781"
        name = f"FAMILY{'ABC'[p]}^GIVEN{'XYZ'[p]}"
        for s in range(2):
            study = _uid(1, p, s)
            other_study = _uid(1, p, 1 - s)
            for r in range(2):
                series = _uid(2, p, s, r)
                frame = _uid(3, p, s, r)
                for i in range(3):
                    sop = _uid(4, p, s, r, i)
                    ds = make_dataset(
                        sop_class=MRImageStorage if r else CTImageStorage,
                        SOPInstanceUID=sop,
                        StudyInstanceUID=study,
                        SeriesInstanceUID=series,
                        FrameOfReferenceUID=frame,
                        PatientID=pid,
                        PatientName=name,
                        StudyDate=f"20{20 + s}0{p + 1}15",
                        InstanceNumber=i + 1,
                        Modality="MR" if r else "CT",
                    )
                    ds.ReferencedStudySequence = sequence_of(
                        item(
                            ReferencedSOPClassUID=STUDY_ROOT_QR,
                            ReferencedSOPInstanceUID=other_study,
                        )
                    )
                    if i:
                        ds.ReferencedImageSequence = sequence_of(
                            item(
                                ReferencedSOPClassUID=ds.SOPClassUID,
                                ReferencedSOPInstanceUID=_uid(4, p, s, r, 0),
                            )
                        )
                    source = _uid(4, p, s, 1 - r, i)
                    ds.SourceImageSequence = sequence_of(
                        item(
                            ReferencedSOPClassUID=CTImageStorage if r else MRImageStorage,
                            ReferencedSOPInstanceUID=source,
                        )
                    )
                    objects.append(ds)
    return objects


def keep_references() -> Policy:
    upload = load_policy("upload")
    return Policy(
        options=upload.options,
        pseudonymize=upload.pseudonymize,
        date_shift_days=upload.date_shift_days,
        overrides={
            "ReferencedImageSequence": "K",
            "SourceImageSequence": "K",
            "ReferencedStudySequence": "K",
        },
        name="upload-with-references",
    )


def uid_elements(ds: Dataset, path: str = "") -> Iterator[tuple[str, str]]:
    """``(place, value)`` of every UI value at any depth, file meta included."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and not path:
        for elem in meta:
            if elem.VR == "UI" and elem.tag != 0x00020012:  # our Implementation Class UID
                yield f"meta>{elem.tag:08X}", str(elem.value)
    for elem in ds:
        place = f"{path}{elem.tag:08X}"
        if elem.VR == "SQ":
            for index, entry in enumerate(elem.value):
                yield from uid_elements(entry, f"{place}[{index}]>")
        elif elem.VR == "UI" and elem.value:
            yield place, str(elem.value)


def test_a_set_keeps_one_new_uid_per_uid_and_every_reference_resolves() -> None:
    inputs = build_set()
    engine = Deidentifier(keep_references(), P)
    outputs = [roundtrip(engine.deidentify_bytes(to_bytes(ds)).data) for ds in inputs]
    mapping: dict[str, set[str]] = defaultdict(set)
    for before, after in zip(inputs, outputs, strict=True):
        old = dict(uid_elements(before))
        new = dict(uid_elements(after))
        assert set(new) == set(old), "a UID was added or removed"
        for place, value in old.items():
            mapping[value].add(new[place])
    well_known = {CTImageStorage, MRImageStorage, STUDY_ROOT_QR, ExplicitVRLittleEndian}
    for original, news in mapping.items():
        if original in well_known:
            assert news == {original}
        else:
            assert news == {P.uid(original)}, original
    remapped = [next(iter(n)) for o, n in mapping.items() if o not in well_known]
    assert len(remapped) == len(set(remapped))  # one UID never stands for two
    assert len(remapped) == 6 + 12 + 12 + 36  # studies, series, frames of reference, instances

    instances = {str(o.SOPInstanceUID) for o in outputs}
    studies = {str(o.StudyInstanceUID) for o in outputs}
    assert len(instances) == 36
    assert len(studies) == 6
    references = 0
    for out in outputs:
        for keyword in ("ReferencedImageSequence", "SourceImageSequence"):
            for ref in out.get(keyword) or []:
                assert ref.ReferencedSOPInstanceUID in instances
                references += 1
        [study_ref] = out.ReferencedStudySequence
        assert study_ref.ReferencedSOPInstanceUID in studies
        assert study_ref.ReferencedSOPInstanceUID != out.StudyInstanceUID
    assert references == 24 + 36
    frames: dict[str, set[str]] = defaultdict(set)
    for out in outputs:
        frames[str(out.SeriesInstanceUID)].add(str(out.FrameOfReferenceUID))
    assert all(len(f) == 1 for f in frames.values())
    assert len({next(iter(f)) for f in frames.values()}) == 12
    patients: dict[str, set[str]] = defaultdict(set)
    for out in outputs:
        patients[str(out.PatientID)].add(str(out.StudyInstanceUID))
    assert sorted(len(s) for s in patients.values()) == [2, 2, 2]


# -- thread safety --------------------------------------------------------------------------------


def _many(count: int) -> list[bytes]:
    inputs = []
    for n in range(count):
        ds = make_dataset(
            pixels=n % 2 == 0,
            SOPInstanceUID=_uid(9, n),
            SeriesInstanceUID=_uid(8, n % 7),
            PatientID=f"TP{n % 13:03d}X{n % 5}",
            PatientName=f"THREADER{'ABCDEFGHIJKLM'[n % 13]}^PAT",
            StudyDate=f"2019{n % 12 + 1:02d}{n % 28 + 1:02d}",
            StudyDescription=f"study {n} for THREADER{'ABCDEFGHIJKLM'[n % 13]}",
        )
        inputs.append(to_bytes(ds))
    return inputs


def test_one_deidentifier_shared_by_16_threads_gives_the_serial_outputs() -> None:
    inputs = _many(200)
    engine = Deidentifier("upload", P)
    serial = [engine.deidentify_bytes(data).data for data in inputs]
    assert len(set(serial)) == 200
    with ThreadPoolExecutor(max_workers=16) as pool:
        threaded = list(pool.map(lambda data: engine.deidentify_bytes(data).data, inputs))
    assert threaded == serial
    fresh = Deidentifier("upload", Pseudonymizer(KEY))
    assert [fresh.deidentify_bytes(data).data for data in inputs[:5]] == serial[:5]
    assert roundtrip(serial[3]).StudyDescription == "study 3 for ***"


def test_sequences_in_output_are_sequences() -> None:
    out, _ = run("upload", make_dataset())
    assert isinstance(out.DeidentificationMethodCodeSequence, Sequence)


# -- dates in places where no date should be ---------------------------------------------


@pytest.mark.parametrize(
    ("policy", "planted", "rejected"),
    [
        ("upload", BIRTH_DATE, True),  # the birth date is always removed
        ("upload", STUDY_DATE, True),  # modified dates: no original date may stay anywhere
        (Policy(options=frozenset({"retain_long_full_dates"})), BIRTH_DATE, True),
        (Policy(options=frozenset({"retain_long_full_dates"})), STUDY_DATE, False),
    ],
    ids=["upload-birth", "upload-study", "full-dates-birth", "full-dates-study"],
)
def test_an_original_date_in_a_kept_attribute(policy: Any, planted: str, rejected: bool) -> None:
    ds = make_dataset(ConvolutionKernel=planted)
    engine = Deidentifier(policy, KEY)
    if rejected:
        with pytest.raises(ResidualPhiError) as info:
            engine.deidentify(ds)
        assert info.value.hits[0] == "(0018,1210) ConvolutionKernel: date"
        assert planted not in str(info.value)
    else:
        out = dcmread(io.BytesIO(engine.deidentify(ds).data))
        assert out.ConvolutionKernel == planted
        assert out.StudyDate == STUDY_DATE


def test_a_shifted_date_equal_to_an_original_date_is_no_leak() -> None:
    """Study 20230912 shifted by the patient's shift can equal another original date."""
    shift = Pseudonymizer(KEY).date_shift_days(PATIENT_ID, -3650, -1)
    study = dt.date(2023, 9, 12)
    other = (study + dt.timedelta(days=shift)).strftime("%Y%m%d")
    ds = make_dataset(SeriesDate=other)  # its own shifted value differs; StudyDate's equals it
    out = dcmread(io.BytesIO(Deidentifier("upload", KEY).deidentify(ds).data))
    assert out.StudyDate == other
