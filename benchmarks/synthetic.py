"""Synthetic CT and MR series with realistic headers, built in code.

Every value is made up: names, IDs, UIDs, dates, institutions. The headers carry what a real
scanner writes (about 130 elements at the top level for CT, a little more for MR): the patient,
study, series, equipment, frame of reference, image plane and pixel modules, the modality's own
acquisition module, VOI LUT, a few nested sequences (ReferencedImageSequence,
ProcedureCodeSequence, RequestAttributesSequence, ...) and a private block whose creator mixes
elements listed as safe in PS3.15 Table E.3.10 with elements that are not.

Pixel data is native (Explicit VR Little Endian), 16 bits allocated, one phantom per series with
per-slice noise, so the files have the sizes of real ones (CT 512x512 ~ 513 KiB, MR 256x256
~ 129 KiB) without costing time to generate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

__all__ = ["SERIES", "SeriesSpec", "ct_series", "mr_series", "write_series"]

_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class Patient:
    """The made-up identity planted in a series (tests check none of it survives)."""

    name: str
    patient_id: str
    birth_date: str
    sex: str
    accession: str
    study_id: str
    study_date: str
    institution: str


@dataclass(frozen=True)
class SeriesSpec:
    """What one synthetic series looks like."""

    name: str
    modality: str
    rows: int
    columns: int
    build: Callable[[int, int, random.Random], Iterable[Dataset]]


def _set(ds: Dataset, **values: Any) -> Dataset:
    """Set elements by keyword; an unknown keyword raises instead of becoming an attribute."""
    for keyword, value in values.items():
        if tag_for_keyword(keyword) is None:
            raise KeyError(f"unknown DICOM keyword {keyword!r}")
        setattr(ds, keyword, value)
    return ds


def _item(**values: Any) -> Dataset:
    return _set(Dataset(), **values)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _uid(rng: random.Random) -> str:
    """A made-up UID under the UUID-derived 2.25 root (at most 44 characters)."""
    return f"2.25.{rng.getrandbits(127)}"


_GIVEN = ("JOHN", "MARIA", "AHMED", "LENA", "PIOTR", "AIKO", "CARLOS", "INGRID", "SAMUEL")
_FAMILY = ("HARTWELL", "OKONKWO", "VANDERMEER", "KOWALCZYK", "TANAKA", "FERREIRA", "LINDQVIST")
_INSTITUTIONS = (
    "SAINT ELSEWHERE GENERAL HOSPITAL",
    "NORTHFIELD UNIVERSITY MEDICAL CENTRE",
    "RIVERSIDE COMMUNITY CLINIC",
)


def _patient(rng: random.Random) -> Patient:
    year = rng.randint(1935, 1995)
    return Patient(
        name=f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}^{rng.choice('ABCDEFGHJK')}",
        patient_id=f"MRN{rng.randint(10_000_000, 99_999_999)}",
        birth_date=f"{year:04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        sex=rng.choice("MF"),
        accession=f"ACC{rng.randint(1_000_000, 9_999_999)}",
        study_id=f"S{rng.randint(1000, 9999)}",
        study_date=f"2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        institution=rng.choice(_INSTITUTIONS),
    )


def _common(
    ds: Dataset,
    patient: Patient,
    uids: dict[str, str],
    *,
    index: int,
    modality: str,
    sop_class: str,
) -> None:
    """Modules every image carries: SOP common, patient, study, series, equipment, image."""
    when = f"{10 + index // 3600:02d}{(index // 60) % 60:02d}{index % 60:02d}"
    age = int(patient.study_date[:4]) - int(patient.birth_date[:4])
    _set(
        ds,
        SpecificCharacterSet="ISO_IR 100",
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        InstanceCreationDate=patient.study_date,
        InstanceCreationTime=f"11{when[2:]}.123000",
        SOPClassUID=sop_class,
        SOPInstanceUID=uids["sop"],
        StudyDate=patient.study_date,
        SeriesDate=patient.study_date,
        AcquisitionDate=patient.study_date,
        ContentDate=patient.study_date,
        AcquisitionDateTime=f"{patient.study_date}{when}.250000",
        StudyTime="101522.000000",
        SeriesTime="102003.000000",
        AcquisitionTime=f"{when}.250000",
        ContentTime=f"{when}.262000",
        AccessionNumber=patient.accession,
        Modality=modality,
        Manufacturer="ACME Medical Systems",
        InstitutionName=patient.institution,
        InstitutionAddress="12 Harbour Road, Northfield, NF1 2AB",
        ReferringPhysicianName="WELBY^MARCUS^^DR",
        StationName="ACME-SCAN-07",
        StudyDescription=f"{modality} CHEST ABDOMEN PELVIS",
        ProcedureCodeSequence=Sequence(
            [_code("RPID17", "RADLEX", f"{modality} CHEST ABDOMEN PELVIS WITH CONTRAST")]
        ),
        SeriesDescription=f"AXIAL 1.0 {modality}",
        InstitutionalDepartmentName="RADIOLOGY",
        PhysiciansOfRecord="HOUSE^GREGORY",
        PerformingPhysicianName="QUINN^MICHAELA",
        NameOfPhysiciansReadingStudy="KILDARE^JAMES",
        OperatorsName=["TECH^ALEX", "TECH^SAM"],
        ManufacturerModelName="Lumen 9000",
        ReferencedPerformedProcedureStepSequence=Sequence(
            [
                _item(
                    ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.3",
                    ReferencedSOPInstanceUID=uids["mpps"],
                )
            ]
        ),
        ReferencedImageSequence=Sequence(
            [
                _item(ReferencedSOPClassUID=sop_class, ReferencedSOPInstanceUID=uids[f"loc{i}"])
                for i in range(3)
            ]
        ),
        SourceImageSequence=Sequence(
            [_item(ReferencedSOPClassUID=_SECONDARY_CAPTURE, ReferencedSOPInstanceUID=uids["src"])]
        ),
        DerivationDescription="",
        PatientName=patient.name,
        PatientID=patient.patient_id,
        IssuerOfPatientID="NORTHFIELD-HIS",
        PatientBirthDate=patient.birth_date,
        PatientSex=patient.sex,
        OtherPatientIDsSequence=Sequence(
            [
                _item(
                    PatientID=f"NHS{patient.patient_id[3:]}",
                    IssuerOfPatientID="NHS",
                    TypeOfPatientID="TEXT",
                )
            ]
        ),
        PatientAge=f"{age:03d}Y",
        PatientSize=1.76,
        PatientWeight=81.5,
        PatientAddress="7 Elm Street, Northfield",
        PatientTelephoneNumbers="+44 1632 960123",
        EthnicGroup="",
        AdditionalPatientHistory=f"Follow-up of {patient.name.split('^')[0]} after surgery",
        PatientComments="",
        BodyPartExamined="CHEST",
        DeviceSerialNumber="SN-4471-0092",
        SoftwareVersions=["VA40A", "SP2"],
        ProtocolName=f"ROUTINE {modality} CAP",
        DateOfLastCalibration="20240102",
        TimeOfLastCalibration="071500",
        PatientPosition="HFS",
        StudyInstanceUID=uids["study"],
        SeriesInstanceUID=uids["series"],
        StudyID=patient.study_id,
        SeriesNumber=3,
        AcquisitionNumber=1,
        InstanceNumber=index + 1,
        PatientOrientation=["L", "P"],
        FrameOfReferenceUID=uids["for"],
        PositionReferenceIndicator="XY",
        ImageComments=f"Slice {index + 1}",
        RequestAttributesSequence=Sequence(
            [
                _item(
                    RequestedProcedureID=f"RP{patient.accession[3:]}",
                    ScheduledProcedureStepID=f"SPS{patient.accession[3:]}",
                    ScheduledProcedureStepDescription=f"{modality} CAP",
                    RequestedProcedureDescription=f"{modality} CHEST ABDOMEN PELVIS",
                    ScheduledProtocolCodeSequence=Sequence(
                        [_code("P-CAP", "99ACME", "Chest abdomen pelvis")]
                    ),
                )
            ]
        ),
        PerformedProcedureStepStartDate=patient.study_date,
        PerformedProcedureStepStartTime="101522",
        PerformedProcedureStepID=f"PPS{patient.accession[3:]}",
        PerformedProcedureStepDescription=f"{modality} CAP",
        AnatomicRegionSequence=Sequence([_code("T-D3000", "SRT", "Chest")]),
        IrradiationEventUID=uids["event"] if modality == "CT" else None,
        LossyImageCompression="00",
        BurnedInAnnotation="NO",
        TimezoneOffsetFromUTC="+0100",
    )
    if ds.get("IrradiationEventUID") is None:
        del ds.IrradiationEventUID


def _plane(ds: Dataset, index: int, spacing: float, thickness: float, size: int) -> None:
    z = -120.0 + index * thickness
    half = spacing * size / 2
    _set(
        ds,
        ImagePositionPatient=[f"{-half:.4f}", f"{-half:.4f}", f"{z:.4f}"],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        SliceThickness=f"{thickness:g}",
        SliceLocation=f"{z:.4f}",
        PixelSpacing=[f"{spacing:.6f}", f"{spacing:.6f}"],
    )


def _pixels(ds: Dataset, image: np.ndarray, bits_stored: int) -> None:
    rows, columns = image.shape
    _set(
        ds,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        Rows=rows,
        Columns=columns,
        BitsAllocated=16,
        BitsStored=bits_stored,
        HighBit=bits_stored - 1,
        PixelRepresentation=0,
        PixelData=image.astype("<u2").tobytes(),
    )


def _private(ds: Dataset, creator: str, group: int, elements: dict[int, tuple[str, Any]]) -> None:
    block = ds.private_block(group, creator, create=True)
    for offset, (vr, value) in elements.items():
        block.add_new(offset, vr, value)


def _file_meta(ds: Dataset) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.ImplementationVersionName = "ACME_SCAN_9"
    meta.SourceApplicationEntityTitle = "ACMESCAN07"
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def _phantom(rows: int, columns: int, low: int, high: int) -> np.ndarray:
    """A body-like ellipse with two organs on an air background (uint16)."""
    y, x = np.ogrid[-1 : 1 : rows * 1j, -1 : 1 : columns * 1j]
    image = np.full((rows, columns), low, dtype=np.int32)
    image[(x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1] = (low + high) // 2
    image[((x - 0.35) / 0.2) ** 2 + (y / 0.3) ** 2 <= 1] = high - (high - low) // 5
    image[((x + 0.35) / 0.2) ** 2 + (y / 0.3) ** 2 <= 1] = high - (high - low) // 5
    image[(x / 0.08) ** 2 + ((y + 0.3) / 0.08) ** 2 <= 1] = high
    return image


def _slices(base: np.ndarray, count: int, spread: int, seed: int) -> Iterable[np.ndarray]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        noise = rng.integers(-spread, spread + 1, size=base.shape, dtype=np.int32)
        yield np.clip(base + noise, 0, 4095)


def _series_uids(rng: random.Random) -> dict[str, str]:
    return {
        key: _uid(rng)
        for key in ("study", "series", "for", "mpps", "loc0", "loc1", "loc2", "src", "event")
    }


def ct_series(count: int, size: int, rng: random.Random) -> Iterable[Dataset]:
    """``count`` axial CT slices of ``size`` x ``size``, 12 bits stored in 16."""
    patient = _patient(rng)
    shared = _series_uids(rng)
    base = _phantom(size, size, 24, 2400)
    for index, image in enumerate(_slices(base, count, 20, rng.getrandbits(32))):
        ds = Dataset()
        uids = {**shared, "sop": _uid(rng)}
        _common(ds, patient, uids, index=index, modality="CT", sop_class=CTImageStorage)
        _plane(ds, index, spacing=0.703125, thickness=1.0, size=size)
        _set(
            ds,
            ScanOptions="HELICAL MODE",
            KVP="120",
            DataCollectionDiameter="500",
            ReconstructionDiameter="360",
            DistanceSourceToDetector="1085.6",
            DistanceSourceToPatient="595",
            GantryDetectorTilt="0",
            TableHeight="162.5",
            RotationDirection="CW",
            ExposureTime="500",
            XRayTubeCurrent="285",
            Exposure="142",
            FilterType="BODY FILTER",
            GeneratorPower="34",
            FocalSpots=["1.2"],
            ConvolutionKernel=["B30f"],
            RevolutionTime=0.5,
            SingleCollimationWidth=0.6,
            TotalCollimationWidth=38.4,
            TableSpeed=46.0,
            TableFeedPerRotation=23.0,
            SpiralPitchFactor=0.6,
            CTDIvol=11.82,
            CTDIPhantomTypeCodeSequence=Sequence(
                [_code("113691", "DCM", "IEC Body Dosimetry Phantom")]
            ),
            DataCollectionCenterPatient=[0.0, -162.5, -120.0 + index],
            ReconstructionTargetCenterPatient=[0.0, -162.5, -120.0 + index],
            RescaleIntercept="-1024",
            RescaleSlope="1",
            RescaleType="HU",
            WindowCenter=["40", "-600"],
            WindowWidth=["400", "1200"],
            WindowCenterWidthExplanation=["WINDOW1", "WINDOW2"],
        )
        _pixels(ds, image, bits_stored=12)
        _private(
            ds,
            "GEMS_ACQU_01",
            0x0019,
            {
                0x23: ("DS", "46.0"),  # safe: Table Speed
                0x24: ("DS", "12.5"),  # safe: Mid Scan Time
                0x27: ("DS", "0.5"),  # safe: Rotation Speed
                0x9E: ("LO", "HELICAL"),  # safe: Internal Pulse Sequence Name
                0x10: ("LO", "ACME-SCAN-07 BAY 2"),  # not listed: removed
                0x11: ("SH", "OPER7"),  # not listed: removed
            },
        )
        _private(ds, "GEMS_PARM_01", 0x0043, {0x27: ("SH", "0.600:1"), 0x10: ("US", 4)})
        _file_meta(ds)
        yield ds


def mr_series(count: int, size: int, rng: random.Random) -> Iterable[Dataset]:
    """``count`` axial MR slices of ``size`` x ``size``, 12 bits stored in 16."""
    patient = _patient(rng)
    shared = _series_uids(rng)
    base = _phantom(size, size, 0, 1800)
    for index, image in enumerate(_slices(base, count, 30, rng.getrandbits(32))):
        ds = Dataset()
        uids = {**shared, "sop": _uid(rng)}
        _common(ds, patient, uids, index=index, modality="MR", sop_class=MRImageStorage)
        _plane(ds, index, spacing=0.9375, thickness=3.0, size=size)
        _set(
            ds,
            ScanningSequence=["SE", "IR"],
            SequenceVariant=["SK", "SP", "MP"],
            ScanOptions=["IR", "PFP", "FS"],
            MRAcquisitionType="2D",
            SequenceName="*tir2d1_21",
            AngioFlag="N",
            RepetitionTime="9000",
            EchoTime="81",
            InversionTime="2500",
            NumberOfAverages="1",
            ImagingFrequency="123.25",
            ImagedNucleus="1H",
            EchoNumbers="1",
            MagneticFieldStrength="3",
            SpacingBetweenSlices="3.3",
            NumberOfPhaseEncodingSteps="204",
            EchoTrainLength="21",
            PercentSampling="80",
            PercentPhaseFieldOfView="81.25",
            PixelBandwidth="287",
            ReceiveCoilName="HeadNeck_20",
            TransmitCoilName="Body",
            AcquisitionMatrix=[0, 256, 208, 0],
            InPlanePhaseEncodingDirection="ROW",
            FlipAngle="150",
            VariableFlipAngleFlag="N",
            SAR="1.7",
            dBdt="0",
            WindowCenter="620",
            WindowWidth="1400",
        )
        _pixels(ds, image, bits_stored=12)
        _private(
            ds,
            "Philips Imaging DD 001",
            0x2001,
            {
                0x01: ("FL", 0.0),  # safe: Chemical Shift
                0x03: ("FL", 0.0),  # safe: Diffusion B-Factor
                0x08: ("IS", "1"),  # safe: Phase Number
                0x0B: ("CS", "TRANSVERSAL"),  # safe: Image Plane Orientation
                0x60: ("SL", 1),  # safe: Series Nr Of Stacks
                0x70: ("LO", "PLANNED BY TECH SAM"),  # not listed: removed
            },
        )
        _file_meta(ds)
        yield ds


SERIES: dict[str, SeriesSpec] = {
    "CT": SeriesSpec("CT", "CT", 512, 512, ct_series),
    "MR": SeriesSpec("MR", "MR", 256, 256, mr_series),
}


def write_series(folder: Path, spec: SeriesSpec, count: int, seed: int = 0) -> list[Path]:
    """Write ``count`` files of ``spec`` under ``folder``; return their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{spec.name}:{seed}")
    paths = []
    for index, ds in enumerate(spec.build(count, spec.rows, rng)):
        path = folder / f"{spec.name}{index:04d}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
