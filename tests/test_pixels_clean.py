"""clean_pixels end to end with StaticOcr: every photometric interpretation, bit depth and
syntax; written to bytes, read back, cleaned, written and read back again."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from deid import ResidualPhiError
from deid.ocr import StaticOcr, TextBox
from deid.pixels import blank_frame, clean_pixels
from tests.test_pixels_support import Spec, build, decode_independently, rewrite

BOX = TextBox(5, 7, 12, 6, 0.9, "SECRET PATIENT NAME")
PAD = 2
# BOX padded by PAD: rows 5..14, columns 3..18
REGION = (slice(5, 15), slice(3, 19))


def expected_fill(spec: Spec, darkest: int = 37) -> tuple[int, ...]:
    """Black per photometric interpretation, worked out here independently."""
    if spec.pi == "MONOCHROME2":
        return (-(1 << (spec.bits_stored - 1)) if spec.signed else 0,)
    if spec.pi == "MONOCHROME1":
        return (
            ((1 << (spec.bits_stored - 1)) - 1) if spec.signed else (1 << spec.bits_stored) - 1,
        )
    if spec.pi == "PALETTE COLOR":
        return (darkest,)
    if spec.pi.startswith("YBR_FULL"):
        return (0, 1 << (spec.bits_stored - 1), 1 << (spec.bits_stored - 1))
    return (0, 0, 0)


def check_exact(
    before: np.ndarray, after: np.ndarray, region: tuple[slice, slice], fill: tuple[int, ...]
) -> None:
    """The region holds ``fill`` in every sample; every other stored value is unchanged."""
    inside = after[region]
    if after.ndim == 2:
        assert np.all(inside == fill[0])
    else:
        for sample, value in enumerate(fill):
            assert np.all(inside[..., sample] == value)
    mask = np.ones(before.shape[:2], bool)
    mask[region] = False
    assert np.array_equal(after[mask], before[mask])
    assert after.dtype.kind == before.dtype.kind


LOSSLESS_CASES = [
    Spec("MONOCHROME2", 8),
    Spec("MONOCHROME2", 10),
    Spec("MONOCHROME2", 12),
    Spec("MONOCHROME2", 16),
    Spec("MONOCHROME2", 12, signed=True),
    Spec("MONOCHROME2", 16, signed=True, frames=2),
    Spec("MONOCHROME2", 8, signed=True),
    Spec("MONOCHROME2", 1, frames=3, rows=21, columns=19),
    Spec("MONOCHROME2", 32, bits_allocated=32),
    Spec("MONOCHROME1", 10),
    Spec("MONOCHROME1", 12, signed=True),
    Spec("MONOCHROME1", 1),
    Spec("RGB", 8, planar=0),
    Spec("RGB", 8, planar=1, frames=2),
    Spec("RGB", 16, planar=1),
    Spec("YBR_FULL", 8),
    Spec("YBR_FULL", 8, planar=1),
    Spec("PALETTE COLOR", 8),
    Spec("PALETTE COLOR", 16),
    Spec("MONOCHROME2", 12, frames=2, syntax=RLELossless),
    Spec("MONOCHROME2", 16, signed=True, syntax=RLELossless),
    Spec("MONOCHROME1", 8, syntax=RLELossless),
    Spec("RGB", 8, frames=2, syntax=RLELossless),
    Spec("YBR_FULL", 8, syntax=RLELossless),
    Spec("PALETTE COLOR", 8, syntax=RLELossless),
    Spec("MONOCHROME2", 12, syntax=JPEGLSLossless),
    Spec("MONOCHROME2", 16, signed=True, syntax=JPEGLSLossless),
    Spec("MONOCHROME2", 10, frames=2, syntax=JPEGLSLossless),
    Spec("RGB", 8, syntax=JPEGLSLossless),
    Spec("PALETTE COLOR", 8, syntax=JPEGLSLossless),
    Spec("MONOCHROME2", 16, syntax=JPEG2000Lossless),
    Spec("MONOCHROME2", 14, signed=True, syntax=JPEG2000Lossless),
    Spec("MONOCHROME1", 12, syntax=JPEG2000Lossless),
    Spec("RGB", 8, syntax=JPEG2000Lossless),
    Spec("YBR_RCT", 8, syntax=JPEG2000Lossless),
]


def _id(spec: Spec) -> str:
    syntax = {
        ExplicitVRLittleEndian: "native",
        RLELossless: "rle",
        JPEGLSLossless: "jls",
        JPEG2000Lossless: "j2kr",
        JPEG2000: "j2k",
        JPEGBaseline8Bit: "jpeg",
    }[spec.syntax]
    sign = "s" if spec.signed else "u"
    planar = f"-pl{spec.planar}" if spec.samples == 3 else ""
    return f"{syntax}-{spec.pi.replace(' ', '_')}{planar}-{sign}{spec.bits_stored}-f{spec.frames}"


@pytest.mark.parametrize("spec", LOSSLESS_CASES, ids=[_id(s) for s in LOSSLESS_CASES])
def test_lossless_blank_is_exact(spec: Spec) -> None:
    ds, before = build(spec)
    syntax = ds.file_meta.TransferSyntaxUID
    report = clean_pixels(ds, StaticOcr([BOX]), pad=PAD)
    out = rewrite(ds)
    assert out.file_meta.TransferSyntaxUID == syntax
    assert report.encode is not None
    assert not report.encode.changed
    assert not report.encode.lossy
    fill = expected_fill(spec)
    for index in range(spec.frames):
        check_exact(before[index], decode_independently(out, index), REGION, fill)
    assert report.frames_blanked == tuple(range(spec.frames))
    assert {(b.left, b.top, b.width, b.height) for b in report.blanked} == {(3, 5, 16, 10)}
    assert all(b.engine == "static" and b.confidence == pytest.approx(0.9) for b in report.blanked)
    assert "SECRET" not in repr(report)
    assert "LossyImageCompression" not in out or spec.syntax == JPEG2000


@pytest.mark.parametrize("spec", LOSSLESS_CASES, ids=[_id(s) for s in LOSSLESS_CASES])
def test_the_blanked_image_of_round_two_is_the_image_of_the_blanked_frame(spec: Spec) -> None:
    # round 2 sets the blanked areas of the frame's 8-bit image to the fill's 8-bit value
    # instead of making the blanked frame's image anew: the same pixels, in every layout
    from deid.pixels.blank import clear_high_bits
    from deid.pixels.clean import _fill_shown
    from deid.pixels.frames import iter_frames, read_layout
    from deid.pixels.normalise import grey_window, to_uint8

    ds, _ = build(spec)
    layout = read_layout(ds)
    frame, _ = clear_high_bits(next(iter(iter_frames(ds, layout))), layout)
    fill = expected_fill(spec)
    window = grey_window(frame, layout, ds)
    scratch = frame.copy()
    areas = blank_frame(scratch, [BOX, TextBox(0, 0, 3, 2)], fill, pad=PAD)
    patched = to_uint8(frame, layout, ds, window=window).copy()
    blank_frame(patched, areas, _fill_shown(frame, layout, ds, fill, window))
    assert np.array_equal(patched, to_uint8(scratch, layout, ds, window=window))


def test_native_ybr_full_422_blanks_whole_chroma_pairs() -> None:
    spec = Spec("YBR_FULL_422", 8, frames=2)
    ds, before = build(spec)
    raw_before = bytes(ds.PixelData)
    clean_pixels(ds, StaticOcr([BOX]), pad=PAD)
    out = rewrite(ds)
    region = (slice(5, 15), slice(2, 20))  # columns 3..18 widened to whole pairs 2..19
    for index in range(2):
        check_exact(before[index], decode_independently(out, index), region, (0, 128, 128))
    # the subsampled bytes outside the widened box are unchanged: same length, same rows
    raw_after = bytes(out.PixelData)
    assert len(raw_after) == len(raw_before)
    row_bytes = spec.columns * 2
    assert raw_after[: 5 * row_bytes] == raw_before[: 5 * row_bytes]


def test_multiframe_changing_clock_gets_its_own_box_per_frame() -> None:
    spec = Spec("MONOCHROME2", 12, frames=3, syntax=RLELossless)
    ds, before = build(spec)
    boxes = [[TextBox(0, 0, 4, 3)], [TextBox(20, 30, 5, 5)], []]
    engine = StaticOcr(per_call=boxes)
    report = clean_pixels(ds, engine, pad=0, verify=False, rounds=1)
    out = rewrite(ds)
    check_exact(before[0], decode_independently(out, 0), (slice(0, 3), slice(0, 4)), (0,))
    check_exact(before[1], decode_independently(out, 1), (slice(30, 35), slice(20, 25)), (0,))
    assert np.array_equal(decode_independently(out, 2), before[2])
    assert report.frames_blanked == (0, 1)
    assert report.encode is not None
    assert report.encode.frames_encoded == (0, 1)


def test_identical_frames_are_read_once() -> None:
    spec = Spec("MONOCHROME2", 8, frames=5)
    ds, before = build(spec)
    frames = np.stack([before[0], before[0], before[1], before[0], before[1]])
    ds.PixelData = frames.tobytes()
    ds = rewrite(ds)
    engine = StaticOcr([BOX])
    report = clean_pixels(ds, engine, pad=PAD, verify=False, rounds=1)
    assert engine.calls == 2
    assert report.ocr_calls == 2
    assert report.frames_blanked == (0, 1, 2, 3, 4)
    verifying = StaticOcr([BOX])
    ds2 = rewrite(ds)
    ds2.PixelData = frames.tobytes()
    report = clean_pixels(ds2, verifying, pad=PAD, verify=True)
    # two distinct frames, each read and read again blanked (round 2, clean): the written
    # frames hold exactly those blanked values (lossless), so verification reads nothing new
    assert verifying.calls == 4
    assert report.ocr_calls == 4


@pytest.mark.parametrize(
    ("recent", "keep", "reads"), [(8, 32 << 20, 4), (1, 32 << 20, 8), (8, 0, 8)]
)
def test_frames_are_matched_to_recent_frames_and_verified_against_kept_ones(
    monkeypatch: pytest.MonkeyPatch, recent: int, keep: int, reads: int
) -> None:
    from deid.pixels import clean as clean_module

    spec = Spec("MONOCHROME2", 8, frames=4)
    ds, before = build(spec)
    frames = np.stack([before[0], before[1], before[0], before[1]])
    ds.PixelData = frames.tobytes()
    ds = rewrite(ds)
    monkeypatch.setattr(clean_module, "RECENT", recent)
    monkeypatch.setattr(clean_module, "KEEP_BYTES", keep)
    engine = StaticOcr([BOX])
    report = clean_pixels(ds, engine, pad=PAD, verify=True)
    # frames 2 and 3 equal frames 0 and 1: with two recent frames kept they are not read
    # again (two reads each for frames 0 and 1: the frame, then blanked); with one, or no
    # bytes to keep frames in, each frame is read. Verification reads nothing: the written
    # frames are the blanked frames read clean, compared value by value, or by digest where
    # none are kept
    assert (engine.calls, report.ocr_calls) == (reads, reads)
    out = rewrite(ds)
    for index in range(4):
        check_exact(frames[index], decode_independently(out, index), REGION, (0,))


def test_prescreen_skips_frames_it_clears() -> None:
    spec = Spec("MONOCHROME2", 8, frames=3)
    ds, before = build(spec)
    seen: list[int] = []

    def prescreen(image: np.ndarray) -> bool:
        seen.append(int(image.shape[0]))
        return len(seen) == 2

    engine = StaticOcr([BOX])
    report = clean_pixels(ds, engine, pad=PAD, prescreen=prescreen, verify=False, rounds=1)
    assert engine.calls == 1
    assert report.frames_skipped == 2
    assert report.frames_blanked == (1,)
    out = rewrite(ds)
    assert np.array_equal(decode_independently(out, 0), before[0])
    check_exact(before[1], decode_independently(out, 1), REGION, (0,))


def test_select_keeps_only_chosen_boxes() -> None:
    spec = Spec("MONOCHROME2", 8)
    ds, before = build(spec)
    other = TextBox(25, 25, 5, 5, 0.2)

    def select(boxes: list[TextBox]) -> list[TextBox]:
        return [b for b in boxes if b.confidence > 0.5]

    report = clean_pixels(ds, StaticOcr([BOX, other]), pad=PAD, select=select)
    out = rewrite(ds)
    check_exact(before[0], decode_independently(out, 0), REGION, (0,))
    assert len(report.blanked) == 1


def test_pixel_padding_value_is_the_monochrome2_fill() -> None:
    spec = Spec("MONOCHROME2", 12, signed=True)
    ds, before = build(spec)
    ds.PixelPaddingValue = -1500
    ds["PixelPaddingValue"].VR = "SS"
    clean_pixels(ds, StaticOcr([BOX]), pad=PAD)
    check_exact(before[0], decode_independently(rewrite(ds), 0), REGION, (-1500,))


def test_high_bits_are_cleared_and_stored_bits_kept() -> None:
    spec = Spec("MONOCHROME2", 12, frames=2)
    ds, before = build(spec)
    hidden = before.copy()
    hidden[1, 10:20, 5:30] |= np.uint16(1 << 14)  # text drawn in bit 14
    ds.PixelData = hidden.astype("<u2").tobytes()
    ds = rewrite(ds)
    report = clean_pixels(ds, StaticOcr(), pad=PAD)
    out = rewrite(ds)
    assert report.high_bits_cleared == (1,)
    assert report.blanked == ()
    assert np.array_equal(decode_independently(out, 1), before[1])
    assert np.array_equal(decode_independently(out, 0), before[0])


def test_high_bits_of_signed_data_are_sign_extended() -> None:
    spec = Spec("MONOCHROME2", 10, signed=True)
    ds, before = build(spec)
    raw = before[0].astype(np.int16).view(np.uint16).copy()
    raw &= np.uint16(0x03FF)  # keep only the 10 stored bits: no sign extension in the file
    raw[0:5, 0:5] |= np.uint16(0x4000)
    ds.PixelData = raw.astype("<u2").tobytes()
    ds = rewrite(ds)
    report = clean_pixels(ds, StaticOcr(), pad=PAD)
    assert report.high_bits_cleared == (0,)
    assert np.array_equal(decode_independently(rewrite(ds), 0), before[0])


@pytest.mark.parametrize(
    ("signed", "values", "expected"),
    [
        (False, [0, 4095, 17], None),  # every value fits 12 bits: the same array, unchanged
        (False, [0, 4096, 17], [0, 0, 17]),
        (False, [0, 0xF00F, 17], [0, 0x00F, 17]),
        (True, [-2048, 2047, -1], None),
        (True, [-2049, 2048, -1], [2047, -2048, -1]),  # sign-extended from bit 11
    ],
)
def test_clear_high_bits_returns_the_frame_itself_when_nothing_is_above_bits_stored(
    signed: bool, values: list[int], expected: list[int] | None
) -> None:
    from deid.pixels.blank import clear_high_bits
    from deid.pixels.frames import read_layout

    ds, _ = build(Spec("MONOCHROME2", 12, signed=signed))
    frame = np.array([values], np.int16 if signed else np.uint16)
    cleaned, changed = clear_high_bits(frame, read_layout(ds))
    if expected is None:
        assert cleaned is frame and not changed
    else:
        assert changed and cleaned.tolist() == [expected]
        assert cleaned.dtype == frame.dtype


def test_residual_text_after_blanking_is_rejected_without_its_text() -> None:
    spec = Spec("MONOCHROME2", 8)
    ds, _ = build(spec)
    still = TextBox(25, 28, 6, 5, 0.8, "SECRET PATIENT NAME")
    engine = StaticOcr(per_call=[[BOX], [still]])
    with pytest.raises(ResidualPhiError) as caught:
        clean_pixels(ds, engine, pad=PAD, rounds=1)
    assert caught.value.hits == ("pixel frame 0",)
    assert "SECRET" not in str(caught.value)


def test_a_box_found_again_inside_the_blanked_area_passes() -> None:
    spec = Spec("MONOCHROME2", 8)
    ds, _ = build(spec)
    engine = StaticOcr(per_call=[[BOX], [TextBox(2, 4, 18, 12)]])  # within the tolerance
    report = clean_pixels(ds, engine, pad=PAD, rounds=1)
    assert report.verified
    assert engine.calls == 2


LOSSY_CASES = [
    Spec("MONOCHROME2", 8, syntax=JPEGBaseline8Bit, smooth=True, rows=48, columns=48),
    Spec("YBR_FULL_422", 8, syntax=JPEGBaseline8Bit, smooth=True, rows=48, columns=48),
    Spec("YBR_FULL", 8, frames=2, syntax=JPEGBaseline8Bit, smooth=True, rows=48, columns=48),
    Spec("MONOCHROME2", 12, syntax=JPEG2000, smooth=True, rows=48, columns=48),
]


@pytest.mark.parametrize("spec", LOSSY_CASES, ids=[_id(s) for s in LOSSY_CASES])
def test_lossy_reencode_keeps_syntax_within_tolerance(spec: Spec) -> None:
    """Lossy: the box (grown to whole 8x8 / 16x16 JPEG blocks for baseline) is black within 2
    levels of luminance (JPEG 2000: mean under 1 %, max under 10 % of the range); outside it the
    RMS difference is under 3 % of the range (the encoder's verification bound); history
    attributes record the lossy step."""
    ds, before = build(spec)
    report = clean_pixels(ds, StaticOcr([BOX]), pad=PAD)
    out = rewrite(ds)
    assert out.file_meta.TransferSyntaxUID == spec.syntax
    assert report.encode is not None and report.encode.lossy and not report.encode.changed
    assert out.LossyImageCompression == "01"
    methods = out["LossyImageCompressionMethod"]
    assert methods.VM == 1
    assert methods.value == ("ISO_10918_1" if spec.syntax == JPEGBaseline8Bit else "ISO_15444_1")
    if spec.syntax == JPEGBaseline8Bit:
        region = (slice(0, 16), slice(0, 32))
        assert {(b.left, b.top, b.width, b.height) for b in report.blanked} == {
            (0, 0, 32, 16) if spec.samples == 3 else (0, 0, 24, 16)
        }
        if spec.samples == 1:
            region = (slice(0, 16), slice(0, 24))
    else:
        region = REGION
    top = (1 << spec.bits_stored) - 1
    for index in range(spec.frames):
        after = decode_independently(out, index).astype(np.int64)
        luma = after[region] if after.ndim == 2 else after[region][..., 0]
        if spec.syntax == JPEGBaseline8Bit:  # whole blocks of one value: exact up to rounding
            assert int(luma.max()) <= 2
        else:  # wavelet ringing from the neighbours reaches into the box, not the old text
            assert float(luma.mean()) <= 0.01 * top
            assert int(luma.max()) <= 0.1 * top
        mask = np.ones(after.shape[:2], bool)
        mask[region] = False
        diff = after[mask] - before[index].astype(np.int64)[mask]
        assert float(np.sqrt(np.mean(diff * diff))) <= 0.03 * top


def test_lossy_jpeg_with_lossless_option_writes_exact_jpeg_ls() -> None:
    spec = Spec("YBR_FULL_422", 8, syntax=JPEGBaseline8Bit, smooth=True, rows=48, columns=48)
    ds, before = build(spec)
    report = clean_pixels(ds, StaticOcr([BOX]), pad=PAD, lossless=True)
    out = rewrite(ds)
    assert report.encode is not None
    assert report.encode.changed and not report.encode.lossy
    assert out.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert out.PhotometricInterpretation == "YBR_FULL"
    check_exact(before[0], decode_independently(out, 0), REGION, (0, 128, 128))


def test_nothing_found_leaves_pixel_data_untouched() -> None:
    spec = Spec("RGB", 8, frames=2, syntax=RLELossless)
    ds, _ = build(spec)
    original = bytes(ds.PixelData)
    report = clean_pixels(ds, StaticOcr(), pad=PAD)
    assert bytes(ds.PixelData) == original
    assert report.encode is not None and report.encode.frames_encoded == ()


def test_a_second_round_blanks_text_found_next_to_the_first() -> None:
    spec = Spec("MONOCHROME2", 8)
    ds, _ = build(spec)
    beside = TextBox(25, 28, 6, 5, 0.8)
    engine = StaticOcr(per_call=[[BOX], [beside], [], [BOX, beside]])
    report = clean_pixels(ds, engine, pad=0, rounds=3)
    # read, read blanked (finds more), read again (clean); the written frame is exactly the
    # frame read clean (lossless), so verification does not read it a fourth time
    assert engine.calls == 3
    assert report.ocr_calls == 3
    assert {(b.left, b.top, b.width, b.height) for b in report.blanked} == {
        (5, 7, 12, 6),
        (25, 28, 6, 5),
    }
    after = decode_independently(rewrite(ds), 0)
    assert np.all(after[7:13, 5:17] == 0)
    assert np.all(after[28:33, 25:31] == 0)


def test_a_lossy_output_is_read_again_by_verification() -> None:
    """Lossy re-encoding changes the stored values: the frame read clean before writing is
    not what was written, so verification reads the written frame."""
    spec = Spec("MONOCHROME2", 8, syntax=JPEGBaseline8Bit, rows=48, columns=48)  # noisy
    ds, _ = build(spec)
    engine = StaticOcr([BOX])
    report = clean_pixels(ds, engine, pad=PAD)
    assert report.encode is not None and report.encode.lossy
    assert engine.calls == 3  # read, read blanked (clean), verify the decoded lossy output
    assert report.ocr_calls == 3
