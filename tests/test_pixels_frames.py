"""Layout validation, frame decoding, normalisation for OCR, missing codecs, and the corpus."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from deid import MissingDependencyError, PixelError
from deid.ocr import StaticOcr, TextBox
from deid.pixels import clean_pixels, iter_frames, read_frame, read_layout, to_uint8, write_frames
from deid.pixels.blank import blank_frame, fill_values
from deid.pixels.normalise import grey_window
from tests.test_pixels_support import Spec, build, decode_independently


@pytest.mark.parametrize(
    ("keyword", "value", "named"),
    [
        ("BitsStored", 17, "(0028,0101) BitsStored"),
        ("HighBit", 14, "(0028,0102) HighBit"),
        ("PixelRepresentation", 2, "(0028,0103) PixelRepresentation"),
        ("SamplesPerPixel", 3, "(0028,0002) SamplesPerPixel"),
        ("PhotometricInterpretation", "HSV", "(0028,0004) PhotometricInterpretation"),
        ("Rows", 0, "(0028,0010) Rows"),
        ("BitsAllocated", 12, "(0028,0100) BitsAllocated"),
    ],
    ids=lambda v: str(v).split(")")[-1].strip() if isinstance(v, str) else None,
)
def test_inconsistent_layout_names_the_attribute_not_the_value(
    keyword: str, value: Any, named: str
) -> None:
    ds, _ = build(Spec("MONOCHROME2", 12))
    setattr(ds, keyword, value)
    with pytest.raises(PixelError) as caught:
        read_layout(ds)
    assert named in str(caught.value)
    assert str(value) not in str(caught.value).replace(named, "")


def test_layout_reads_every_attribute() -> None:
    ds, _ = build(Spec("RGB", 8, planar=1, frames=2, syntax=RLELossless))
    layout = read_layout(ds)
    assert (layout.rows, layout.columns, layout.samples_per_pixel) == (40, 36, 3)
    assert (layout.bits_allocated, layout.bits_stored, layout.high_bit) == (8, 8, 7)
    assert (layout.planar_configuration, layout.number_of_frames) == (1, 2)
    assert layout.transfer_syntax == RLELossless
    assert layout.encapsulated
    assert layout.frame_shape == (40, 36, 3)


def test_short_native_pixel_data_is_a_pixel_error() -> None:
    ds, _ = build(Spec("MONOCHROME2", 16))
    ds.PixelData = bytes(ds.PixelData)[:100]
    with pytest.raises(PixelError, match="shorter"):
        read_frame(ds, read_layout(ds), 0)


def test_frames_are_stored_values_with_high_bits_kept() -> None:
    ds, values = build(Spec("MONOCHROME2", 12))
    raw = values[0].copy()
    raw[0, 0] |= 0x8000
    ds.PixelData = raw.astype("<u2").tobytes()
    frame = read_frame(ds, read_layout(ds), 0)
    assert frame.dtype == np.uint16
    assert int(frame[0, 0]) == int(raw[0, 0])
    assert np.array_equal(frame, raw)


def test_missing_decoder_names_the_codecs_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    ds, _ = build(Spec("MONOCHROME2", 12, syntax=JPEGLSLossless))
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})
    with pytest.raises(MissingDependencyError) as caught:
        next(iter_frames(ds))
    assert caught.value.extra == "codecs"
    assert "deid-dicom[codecs]" in str(caught.value)


def test_missing_pillow_for_jpeg_baseline_names_the_codecs_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds, _ = build(Spec("MONOCHROME2", 8, syntax=JPEGBaseline8Bit, smooth=True))
    original = bytes(ds.PixelData)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(MissingDependencyError) as caught:
        clean_pixels(ds, StaticOcr([TextBox(1, 1, 4, 4)]))
    assert caught.value.extra == "codecs"
    assert bytes(ds.PixelData) == original


# -- normalisation ------------------------------------------------------------------------


def test_header_window_maps_rescaled_values() -> None:
    ds, _ = build(Spec("MONOCHROME2", 12))
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = [40, 400], [400, 1500]
    frame = np.array([[0, 1024 - 160, 1064, 1024 + 240, 4095]], dtype=np.uint16)
    layout = read_layout(ds)
    image = to_uint8(frame, layout, ds)
    assert image.dtype == np.uint8
    assert image.tolist() == [[0, 0, 128, 255, 255]]


def test_percentile_window_keeps_thin_bright_text_white() -> None:
    ds, _ = build(Spec("MONOCHROME2", 16))
    frame = np.full((100, 100), 1000, dtype=np.uint16)
    frame[:50] = 3000
    frame[10, 10:13] = 65535  # three pixels of text: far below the 99.5th percentile's reach
    image = to_uint8(frame, read_layout(ds), ds)
    assert image[10, 10] == 255
    assert image[0, 0] == 255  # 3000 is the 99.5th percentile: top of the window
    assert image[99, 99] == 0


def _reference_grey(frame: np.ndarray, slope: float | None, intercept: float | None) -> Any:
    """The 8-bit image by the plain formula on every pixel (numpy's percentiles)."""
    values = frame.astype(np.float64)
    if slope is not None:
        values = values * slope
    if intercept is not None:
        values = values + intercept
    low, high = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(frame.shape, np.uint8)
    return np.clip(np.rint((values - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("bits", "signed", "slope", "intercept"),
    [
        (8, False, None, None),
        (12, False, 1.0, -1024.0),
        (16, False, 0.5, 3.3),
        (16, True, -0.7, 0.0),
        (8, True, 2.3, -1.0),
    ],
)
@pytest.mark.parametrize("opencv", [False, True], ids=["numpy histogram", "opencv histogram"])
def test_the_lookup_table_gives_what_the_formula_gives_on_every_pixel(
    bits: int,
    signed: bool,
    slope: float | None,
    intercept: float | None,
    opencv: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the frame's histogram through OpenCV where it is imported already, else numpy's
    if opencv:
        monkeypatch.setitem(sys.modules, "cv2", pytest.importorskip("cv2"))
    else:
        monkeypatch.delitem(sys.modules, "cv2", raising=False)
    ds, _ = build(Spec("MONOCHROME2", bits, signed=signed))
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    layout = read_layout(ds)
    rng = np.random.default_rng(bits)
    for size in (1, 7, 999, 4096):
        low, high = layout.stored_range
        frame = rng.integers(low, high, size=(1, size), endpoint=True).astype(layout.dtype())
        frame[0, : size // 3] = frame[0, 0]  # many equal values (flat background)
        expected = _reference_grey(frame, slope, intercept)
        assert np.array_equal(to_uint8(frame, layout, ds), expected)
        # the window given (no histogram: the table runs to the largest stored value)
        window = grey_window(frame, layout, ds)
        assert np.array_equal(to_uint8(frame, layout, ds, window=window), expected)


def test_a_blanked_frame_is_shown_with_its_original_window() -> None:
    ds, _ = build(Spec("MONOCHROME2", 16))
    layout = read_layout(ds)
    frame = np.full((100, 100), 1000, dtype=np.uint16)
    frame[:50] = 3000
    window = grey_window(frame, layout, ds)
    assert window == (1000.0, 3000.0)
    blanked = frame.copy()
    blanked[:2] = 0  # 2 % of the pixels blanked: the frame's own 0.5th percentile moves
    assert grey_window(blanked, layout, ds) == (0.0, 3000.0)
    shown = to_uint8(blanked, layout, ds, window=window)
    assert shown[:2].tolist() == [[0] * 100] * 2
    assert np.array_equal(shown[2:], to_uint8(frame, layout, ds)[2:])  # the rest as before
    assert grey_window(np.zeros((2, 2, 3), np.uint8), read_layout(build(Spec("RGB", 8))[0])) is None


def test_monochrome1_is_inverted_for_ocr() -> None:
    ds, _ = build(Spec("MONOCHROME1", 8))
    frame = np.array([[0, 255]], dtype=np.uint8)
    assert to_uint8(frame, read_layout(ds), ds).tolist() == [[255, 0]]


def test_ybr_is_converted_to_rgb_and_palette_goes_through_its_lut() -> None:
    ds, _ = build(Spec("YBR_FULL", 8))
    frame = np.array([[[0, 128, 128], [255, 128, 128]]], dtype=np.uint8)
    assert to_uint8(frame, read_layout(ds), ds).tolist() == [[[0, 0, 0], [255, 255, 255]]]
    pal, _ = build(Spec("PALETTE COLOR", 8), darkest=37)
    image = to_uint8(np.array([[37, 255]], dtype=np.uint8), read_layout(pal), pal)
    assert image.shape == (1, 2, 3)
    assert image[0, 0].tolist() == [1, 1, 1]
    assert image[0, 1].tolist() == [255, 255, 255]


def test_fill_values_per_photometric_interpretation() -> None:
    cases = {
        Spec("MONOCHROME2", 12, signed=True): (-2048,),
        Spec("MONOCHROME1", 12, signed=True): (2047,),
        Spec("MONOCHROME1", 10): (1023,),
        Spec("RGB", 16): (0, 0, 0),
        Spec("YBR_FULL", 8): (0, 128, 128),
        Spec("PALETTE COLOR", 8): (37,),
        Spec("YBR_RCT", 8, syntax="1.2.840.10008.1.2.4.90"): (0, 0, 0),
    }
    for spec, fill in cases.items():
        ds, _ = build(spec)
        assert fill_values(read_layout(ds), ds) == fill, spec


def test_blank_frame_clips_and_aligns() -> None:
    frame = np.arange(100, dtype=np.int16).reshape(10, 10)
    done = blank_frame(frame, [TextBox(7, 8, 5, 5)], (-7,), pad=1, align=(4, 4))
    assert [(b.left, b.top, b.width, b.height) for b in done] == [(4, 4, 6, 6)]
    assert np.all(frame[4:, 4:] == -7)
    assert np.array_equal(frame[:4].ravel(), np.arange(40))
    with pytest.raises(PixelError):
        blank_frame(frame, [TextBox(0, 0, 1, 1)], (1, 2, 3))


# -- the shared corpus --------------------------------------------------------------------

_LOSSLESS_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
}


def _pixel_files(corpus: Path) -> list[dict[str, Any]]:
    manifest = json.loads((corpus / "manifest.json").read_text())
    return [e for e in manifest if e.get("has_pixel_data") and e["file"].endswith(".dcm")]


@pytest.mark.corpus
def test_every_corpus_frame_decodes_or_fails_cleanly(corpus: Path) -> None:
    decoded = failed = 0
    for entry in _pixel_files(corpus):
        ds = dcmread(corpus / entry["file"], force=True)
        if "PixelData" not in ds:
            continue
        try:
            layout = read_layout(ds)
            for frame in iter_frames(ds, layout):
                assert frame.shape == layout.frame_shape
                decoded += 1
        except (PixelError, MissingDependencyError):
            failed += 1
            assert entry.get("pixel_decode") != "ok" or entry["file"].endswith("liver_deflate.dcm")
    assert decoded > 100
    assert failed <= 8


@pytest.mark.corpus
def test_corpus_files_round_trip_losslessly_per_syntax(corpus: Path) -> None:
    """Up to three files per lossless syntax: blank a box in frame 0, write, read back; every
    other stored value is bit-identical (JPEG Lossless files change to a syntax with an
    encoder)."""
    taken: dict[str, int] = {}
    checked = 0
    for entry in _pixel_files(corpus):
        syntax = entry.get("transfer_syntax_uid")
        if syntax not in _LOSSLESS_SYNTAXES or entry.get("pixel_decode") != "ok":
            continue
        if taken.get(syntax, 0) >= 3 or (entry.get("size") or 0) > 1_500_000:
            continue
        ds = dcmread(corpus / entry["file"], force=True)
        if "PixelData" not in ds or int(ds.get("NumberOfFrames") or 1) > 40:
            continue
        layout = read_layout(ds)
        before = read_frame(ds, layout, 0)
        frame = before.copy()
        fill = fill_values(layout, ds)
        box = TextBox(1, 2, min(9, layout.columns - 1), min(5, layout.rows - 2))
        (area,) = blank_frame(frame, [box], fill)
        result = write_frames(ds, {0: frame}, layout=layout)
        buffer = io.BytesIO()
        dcmwrite(buffer, ds)  # as the corpus file was written (some have no file meta)
        out = dcmread(io.BytesIO(buffer.getvalue()), force=True)
        after = decode_independently(out, 0) if layout.number_of_frames == 1 else None
        if after is None or layout.bits_allocated == 1:
            after = read_frame(out, read_layout(out), 0)
        mask = np.ones(before.shape[:2], bool)
        mask[area.top : area.bottom, area.left : area.right] = False
        assert np.array_equal(after[mask], before[mask]), entry["file"]
        region = after[area.top : area.bottom, area.left : area.right]
        assert np.all(region == (fill[0] if len(fill) == 1 else np.array(fill))), entry["file"]
        assert not result.lossy
        assert result.changed == (syntax in ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"))
        taken[syntax] = taken.get(syntax, 0) + 1
        checked += 1
    assert checked >= 15
    assert {"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80"} <= set(taken)


def test_importing_the_pixel_package_loads_no_ocr_stack() -> None:
    import subprocess

    code = (
        "import sys, deid, deid.pixels, deid.pixels.clean;"
        "print(sorted(m for m in ('cv2', 'onnxruntime') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.corpus
def test_corpus_ground_truth_boxes_are_blanked(corpus: Path) -> None:
    """Every single-frame corpus file with burned-in text, cleaned with its ground-truth boxes
    as the OCR result: each box holds black afterwards (lossless: exactly and every other
    value unchanged; JPEG baseline: luminance within 2 levels of black; JPEG-LS near-lossless:
    within its NEAR; lossy JPEG 2000: within 10 % of the range)."""
    truth = json.loads((corpus / "burned_in_truth.json").read_text())
    cleaned = 0
    for name, boxes in truth.items():
        pixel_boxes = [b for b in boxes if b.get("where", "pixels") == "pixels"]
        if not name.endswith(".dcm") or not pixel_boxes:
            continue
        ds = dcmread(corpus / name, force=True)
        layout = read_layout(ds)
        if layout.number_of_frames != 1:
            continue
        before = read_frame(ds, layout, 0)
        given = [TextBox(b["left"], b["top"], b["width"], b["height"]) for b in pixel_boxes]
        report = clean_pixels(ds, StaticOcr(given), pad=2)
        lossy = report.encode is not None and report.encode.lossy
        after = read_frame(ds, read_layout(ds), 0)
        fill = fill_values(layout, ds)
        mask = np.ones(before.shape[:2], bool)
        for area in report.blanked:
            region = after[area.top : area.bottom, area.left : area.right]
            mask[area.top : area.bottom, area.left : area.right] = False
            if lossy:
                luma = region if region.ndim == 2 else region[..., 0]
                assert int(luma.max()) <= fill[0] + _lossy_bound(ds), name
            else:
                assert np.all(region == (fill[0] if len(fill) == 1 else np.array(fill))), name
        if not lossy:
            assert np.array_equal(after[mask], before[mask]), name
        assert len(report.blanked) == len(given), name
        cleaned += 1
    assert cleaned >= 5


def _lossy_bound(ds: Any) -> int:
    from pydicom.encaps import generate_frames

    from deid.pixels.encode import jpeg_ls_near

    if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.81":
        return jpeg_ls_near(next(generate_frames(ds.PixelData, number_of_frames=1)))
    if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91":  # wavelet ringing
        return ((1 << int(ds.BitsStored)) - 1) // 10
    return 2
