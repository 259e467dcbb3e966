"""`make demo`: make sample DICOM files with made-up identifiers, de-identify them, show the change.

Usage: python scripts/demo.py OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundImageStorage,
)

from deid.cli.main import main as deid_main
from deid.keys import write_key_file

STUDY = "1.2.826.0.1.3680043.8.498.77001"


def _sample(index: int, sop_class: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{STUDY}.{index}.1"
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = f"{STUDY}.{index}"
    ds.FrameOfReferenceUID = f"{STUDY}.99"
    ds.Modality = modality
    ds.PatientName = "SAMPLE^JANE^Q"
    ds.PatientID = "DEMO-0042"
    ds.PatientBirthDate = "19700314"
    ds.PatientSex = "F"
    ds.StudyDate = "20240607"
    ds.StudyTime = "093000"
    ds.AccessionNumber = "ACC-DEMO-1"
    ds.InstitutionName = "Example General Hospital"
    ds.ReferringPhysicianName = "WHO^DOCTOR"
    ds.StationName = "CT-ROOM-3"
    ds.StudyDescription = "CHEST CT for SAMPLE JANE"
    ds.SeriesDescription = f"{modality} series {index}"
    ds.ImageComments = "Patient DEMO-0042 seen 06/07/2024"
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = f"{STUDY}.{index}.0"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x00090010, "LO", "DEMO PRIVATE")
    ds.add_new(0x00091001, "LO", "private note about SAMPLE^JANE")
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(64 * 64, dtype="<u2") % 4096).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _ultrasound(index: int) -> Dataset:
    """An ultrasound frame with the patient's name, ID and date burned into its banner."""
    from PIL import Image, ImageDraw, ImageFont

    ds = _sample(index, UltrasoundImageStorage, "US")
    del ds.FrameOfReferenceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyDescription = "ABDOMEN US"
    rows, columns = 240, 320
    rng = np.random.default_rng(7)
    image = Image.fromarray((rng.random((rows, columns)) * 60).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    draw.text((8, 6), "SAMPLE^JANE  DEMO-0042", fill=255, font=font)
    draw.text((8, 28), "06/07/2024 09:31", fill=230, font=font)
    draw.ellipse((90, 80, 250, 220), fill=120)
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = np.asarray(image, dtype=np.uint8).tobytes()
    return ds


def _show(before: Dataset, after: Dataset) -> None:
    keywords = sorted(
        {e.keyword for e in before if e.keyword} | {e.keyword for e in after if e.keyword}
    )
    width = max(len(k) for k in keywords) + 1
    print(f"{'attribute':{width}} {'before':40} after")
    for keyword in keywords:
        if keyword == "PixelData":
            continue
        old = before.get(keyword)
        new = after.get(keyword)
        old_text = "-" if old is None else _short(old)
        new_text = "(removed)" if new is None else _short(new)
        if old_text != new_text:
            print(f"{keyword:{width}} {old_text:40} {new_text}")
    private_before = sum(1 for e in before if e.tag.is_private)
    private_after = sum(1 for e in after if e.tag.is_private)
    print(f"{'private elements':{width}} {private_before:<40} {private_after}")


def _short(value: object) -> str:
    text = f"<{len(value)} item(s)>" if isinstance(value, Sequence) else str(value)
    return text if len(text) <= 38 else text[:35] + "..."


def main(out: Path) -> int:
    inputs = out / "input"
    outputs = out / "output"
    inputs.mkdir(parents=True, exist_ok=True)
    samples = [
        _sample(1, CTImageStorage, "CT"),
        _sample(2, CTImageStorage, "CT"),
        _sample(3, MRImageStorage, "MR"),
        _ultrasound(4),
    ]
    for n, ds in enumerate(samples, start=1):
        ds.save_as(inputs / f"sample{n}.dcm", enforce_file_format=True)
    key = out / "demo.key"
    if not key.exists():
        write_key_file(key)
    print(f"de-identifying {len(samples)} sample files with the default policy (upload)\n")
    code = deid_main(
        ["run", str(inputs), str(outputs), "--policy", "upload", "--key-file", str(key)]
    )
    records = [json.loads(line) for line in (outputs / "audit.jsonl").read_text().splitlines()]
    first = next(r for r in records if r["output"])
    before = dcmread(inputs / first["input"])
    after = dcmread(outputs / first["output"])
    print(f"\n{first['input']} -> {first['output']}\n")
    _show(before, after)
    for record in records:
        pixels = record.get("pixels")
        if pixels and pixels["boxes"]:
            print(
                f"\n{record['input']}: burned-in text ({pixels['reason']}): "
                f"{len(pixels['boxes'])} box(es) blanked by {pixels['engine']} OCR, "
                f"verified: {pixels['verified']}; Burned In Annotation is now NO"
            )
    print(f"\naudit: {outputs / 'audit.jsonl'} ({len(records)} records); explain any file with:")
    print(f"  .venv/bin/deid explain {inputs / first['input']}")
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output")))
