"""The pixel pass end to end with the real default engine (RapidOCR + the pre-screen) on
generated images with exact ink ground truth: every line's ink is black in the output, every
pixel outside the blanked boxes is unchanged, and the markers say so."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread

from deid import Deidentifier
from deid.ocr import available_engines
from tests.conftest import KEY
from tests.factories import to_bytes

pytestmark = pytest.mark.skipif(
    not available_engines().get("rapidocr"), reason="the OCR extra is not installed"
)


@pytest.fixture(scope="module")
def engine() -> Deidentifier:
    return Deidentifier("upload", KEY)


def _stored(ds: Any) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames") or 1)
    dtype = np.uint8 if int(ds.BitsAllocated) == 8 else np.dtype("<u2")
    shape = (frames, int(ds.Rows), int(ds.Columns), int(ds.SamplesPerPixel))
    return np.frombuffer(ds.PixelData, dtype=dtype).reshape(shape)


@pytest.mark.parametrize(
    ("kind", "seed", "header_says"),
    [
        ("US", 11, "YES"),
        ("US-cine", 12, "YES"),
        ("MONO1", 13, "YES"),
        ("CT", 14, "NO"),  # the header denies it: only the pre-screen catches this one
    ],
)
def test_every_line_is_blanked_and_nothing_else_changes(
    engine: Deidentifier, textimages: ModuleType, kind: str, seed: int, header_says: str
) -> None:
    item = textimages.make_us_cine(seed, frames=3) if kind == "US-cine" else None
    item = item or textimages.make(kind, seed, scale=0.5)
    ds = textimages.to_dataset(item)
    ds.BurnedInAnnotation = header_says
    if kind == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    data = to_bytes(ds)
    result = engine.deidentify_bytes(data)
    before = _stored(dcmread(io.BytesIO(data)))
    out = dcmread(io.BytesIO(result.data))
    after = _stored(out)
    pixels = result.audit.pixels
    assert pixels is not None and pixels["cleaned"] and pixels["verified"]
    blanked = np.zeros(after.shape[:3], dtype=bool)
    for frame, left, top, width, height, _ in pixels["boxes"]:
        blanked[frame, top : top + height, left : left + width] = True
    black = (1 << item.bits_stored) - 1 if item.photometric == "MONOCHROME1" else 0
    for line in item.lines:
        region = (line.frame, slice(line.top, line.bottom), slice(line.left, line.right))
        ink = line.ink
        assert (after[region][ink] == black).all(), (kind, line.frame, line.size)
    assert np.array_equal(after[~blanked], before[~blanked])
    assert out.BurnedInAnnotation == "NO"
    if kind == "US-cine":  # the clock changes on every frame: each frame was read
        assert {b[0] for b in pixels["boxes"]} == {0, 1, 2}


def test_identifiers_mode_reads_text_and_keeps_labels(textimages: ModuleType) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from deid import Policy, load_policy

    rows, columns = 240, 320
    image = Image.fromarray(np.full((rows, columns), 20, dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=18)
    draw.text((10, 10), "DOE JOHNATHAN", fill=255, font=font)  # the patient's name
    draw.text((180, 200), "PORTABLE", fill=255, font=font)  # a label that names no one
    ds = textimages.to_dataset(textimages.make("US", 1))
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    del ds.PlanarConfiguration
    ds.Rows, ds.Columns = rows, columns
    ds.PatientName = "DOE^JOHNATHAN"
    ds.PixelData = np.asarray(image, dtype=np.uint8).tobytes()
    options = load_policy("upload").options
    policy = Policy(name="ids", options=options, pixels={"text": "identifiers"})  # type: ignore[arg-type]
    result = Deidentifier(policy, KEY).deidentify(ds)
    after = np.frombuffer(dcmread(io.BytesIO(result.data)).PixelData, np.uint8)
    after = after.reshape(rows, columns)
    before = np.asarray(image, dtype=np.uint8)
    assert (after[10:30, 10:150][before[10:30, 10:150] > 100] == 0).all()  # name: ink black
    assert np.array_equal(after[190:230, 170:300], before[190:230, 170:300])  # label kept
    assert result.audit.pixels is not None
    assert len(result.audit.pixels["boxes"]) == 1


def test_a_policy_can_choose_easyocr(textimages: ModuleType) -> None:
    """The product owner's engine end to end: `[pixels] engine = "easyocr"`."""
    if not available_engines().get("easyocr"):
        pytest.skip("the easyocr extra is not installed")
    from deid import Policy, load_policy

    item = textimages.make("US", 21)
    ds = textimages.to_dataset(item)
    options = load_policy("upload").options
    policy = Policy(name="easy", options=options, pixels={"engine": "easyocr"})  # type: ignore[arg-type]
    result = Deidentifier(policy, KEY).deidentify_bytes(to_bytes(ds))
    pixels = result.audit.pixels
    assert pixels is not None and pixels["engine"] == "easyocr" and pixels["verified"]
    after = _stored(dcmread(io.BytesIO(result.data)))
    for line in item.lines:
        region = (line.frame, slice(line.top, line.bottom), slice(line.left, line.right))
        assert (after[region][line.ink] == 0).all(), line.size
