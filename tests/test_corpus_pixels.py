"""Burned-in text in the shared corpus: every ground-truth PHI box is blanked.

``burned_in_truth.json`` (in the corpus) lists, per file, boxes of burned-in text and whether
each is PHI. Every file with PHI goes through the default policy (``upload``: the pixel pass
under ``auto``, RapidOCR, blank all text). A PHI box counts as blanked when the boxes the pixel
pass reports for its frame cover at least ``MIN_COVER`` of its area (the truth boxes are drawn
loosely around the ink), or, for text hidden in bits above Bits Stored, when the output holds no
bit above Bits Stored. Skipped where the corpus or the OCR extra is absent.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread

from deid import Deidentifier, RejectedError
from deid.ocr import available_engines
from tests.conftest import CORPUS, KEY

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(
        not available_engines().get("rapidocr"), reason="the OCR extra is not installed"
    ),
]

MIN_COVER = 0.9

#: Files whose PHI deid does not yet blank and release; each is rejected instead (fail
#: closed), asserted exactly so that a fix or a new gap shows. name -> reject reason.
KNOWN_GAPS: dict[str, str] = {}


def _truth() -> dict[str, list[dict[str, Any]]]:
    path = CORPUS / "burned_in_truth.json"
    if not path.is_file():
        return {}
    data: dict[str, list[dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: [box for box in boxes if box.get("phi")]
        for name, boxes in sorted(data.items())
        if any(box.get("phi") for box in boxes) and name.endswith(".dcm")
    }


TRUTH = _truth()


@pytest.fixture(scope="module")
def engine() -> Deidentifier:
    return Deidentifier("upload", KEY)


def _cover(box: dict[str, Any], blanked: list[list[float]]) -> float:
    frame = int(box.get("frame", 0))
    left, top, width, height = (int(box[k]) for k in ("left", "top", "width", "height"))
    mask = np.zeros((height, width), dtype=bool)
    for f, bl, bt, bw, bh, _ in blanked:
        if int(f) != frame:
            continue
        x0, y0 = max(int(bl) - left, 0), max(int(bt) - top, 0)
        x1, y1 = min(int(bl + bw) - left, width), min(int(bt + bh) - top, height)
        if x0 < x1 and y0 < y1:
            mask[y0:y1, x0:x1] = True
    return float(mask.mean())


_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
         "1.2.840.10008.1.2.4.70"}  # fmt: skip
_JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}


def _no_bits_above_stored(data: bytes) -> bool:
    """The output's frames hold no bit above Bits Stored, decoded without the masking that
    pydicom's decoders apply (native values as stored; JPEG with libjpeg directly)."""
    ds = dcmread(io.BytesIO(data))
    high = ~np.uint32((1 << int(ds.BitsStored)) - 1)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        dtype = np.uint8 if int(ds.BitsAllocated) == 8 else np.dtype("<u2")
        frames = [np.frombuffer(ds.PixelData, dtype=dtype)]
    elif syntax in _JPEG or syntax in _JPEG_LS:
        from pydicom.encaps import generate_frames

        if syntax in _JPEG:
            from libjpeg import decode
        else:
            from jpeg_ls import decode

        count = int(ds.get("NumberOfFrames") or 1)
        frames = [
            decode(np.frombuffer(f, dtype=np.uint8))
            for f in generate_frames(ds.PixelData, number_of_frames=count)
        ]
    else:
        pytest.fail(f"no unmasked decoder for {syntax} in this test")
    return all(not (frame.astype(np.uint32) & high).any() for frame in frames)


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_every_phi_box_is_blanked(corpus: Path, engine: Deidentifier, name: str) -> None:
    data = (CORPUS / name).read_bytes()
    if name in KNOWN_GAPS:
        with pytest.raises(RejectedError) as info:
            engine.deidentify_bytes(data)
        assert info.value.reason.value == KNOWN_GAPS[name]
        return
    result = engine.deidentify_bytes(data)
    pixels = result.audit.pixels
    assert pixels is not None and pixels["cleaned"], name
    covers = []
    for box in TRUTH[name]:
        if "bit" in str(box.get("where", "")):
            assert _no_bits_above_stored(result.data), f"{name}: text in high bits kept"
            covers.append(1.0)
        else:
            covers.append(_cover(box, pixels["boxes"]))
    low = [round(c, 2) for c in covers if c < MIN_COVER]
    assert not low, f"{name}: {len(low)} of {len(covers)} PHI boxes not blanked (cover {low})"


def test_the_truth_file_is_there(corpus: Path) -> None:
    assert len(TRUTH) >= 10
