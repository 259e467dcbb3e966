"""One shared Deidentifier, 16 threads, 1,000 objects: exactly the outputs of a serial run."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from deid import Deidentifier, RejectedError
from deid.ocr import StaticOcr, TextBox
from tests.conftest import KEY
from tests.factories import make_dataset, to_bytes

US = "1.2.840.10008.5.1.4.1.1.6.1"
ROOT = "1.2.826.0.1.3680043.8.498.9"


def objects(count: int) -> list[bytes]:
    """Several patients, studies and series; CT slices, ultrasound frames with text (the pixel
    pass), and a share that must be rejected (truncated, missing UID)."""
    rng = random.Random(1234)
    out = []
    for index in range(count):
        patient = index % 23
        study, series = f"{ROOT}.{patient}.{index % 3}", f"{ROOT}.{patient}.{index % 3}.{index % 5}"
        keywords: dict[str, object] = {
            "PatientName": f"PATIENT{patient:03d}^GIVEN{patient % 7}",
            "PatientID": f"ID{patient:05d}X",
            "PatientBirthDate": f"19{50 + patient}0{1 + patient % 9}1{patient % 9}",
            "StudyInstanceUID": study,
            "SeriesInstanceUID": series,
            "SOPInstanceUID": f"{series}.{index}",
            "AccessionNumber": f"ACC{index:06d}",
        }
        kind = rng.random()
        if kind < 0.2:
            ds = make_dataset(US, pixels=True, Modality="US", **keywords)
        else:
            ds = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"], **keywords)
        data = to_bytes(ds)
        if kind > 0.95:
            data = data[: len(data) // 2]  # rejected: truncated
        out.append(data)
    return out


def outcome(engine: Deidentifier, data: bytes) -> tuple[str, bytes | str]:
    try:
        result = engine.deidentify_bytes(data)
    except RejectedError as exc:
        return "rejected", str(exc)
    return result.audit.to_json(), result.data


def test_sixteen_threads_give_the_serial_outputs() -> None:
    inputs = objects(1000)
    engine = Deidentifier("upload", KEY, ocr=StaticOcr([TextBox(1, 1, 6, 4)]), prescreen=False)
    serial = [outcome(engine, data) for data in inputs]
    shared = Deidentifier("upload", KEY, ocr=StaticOcr([TextBox(1, 1, 6, 4)]), prescreen=False)
    with ThreadPoolExecutor(16) as pool:
        threaded = list(pool.map(lambda data: outcome(shared, data), inputs))
    assert len(threaded) == len(serial) == 1000
    assert threaded == serial  # nothing lost, nothing mixed up between objects
    kinds = {record if record == "rejected" else "released" for record, _ in serial}
    assert kinds == {"rejected", "released"}
    pixel_passes = sum(1 for record, _ in serial if '"cleaned":true' in record)
    assert pixel_passes > 100
