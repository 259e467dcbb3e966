"""Write-back details, overlays and icons."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import generate_fragmented_frames
from pydicom.pixels.encoders.base import get_encoder
from pydicom.sequence import Sequence
from pydicom.uid import JPEGLSLossless, JPEGLSNearLossless, RLELossless

from deid import PixelError, ResidualPhiError
from deid.ocr import StaticOcr, TextBox
from deid.pixels import clean_pixels, read_frame, read_layout, remove_overlays, write_frames
from deid.pixels import encode as encode_module
from deid.pixels.encode import estimate_jpeg_quality, jpeg_ls_near, jpeg_quantisation
from deid.pixels.icons import remove_icons
from deid.pixels.overlays import overlay_bitmap, overlay_planes
from tests.factories import item
from tests.test_pixels_support import Spec, build, decode_independently, rewrite


def test_unchanged_frames_keep_their_fragments_byte_for_byte() -> None:
    ds, before = build(Spec("MONOCHROME2", 12, frames=3, syntax=RLELossless))
    original = list(generate_fragmented_frames(ds.PixelData, number_of_frames=3))
    clean_pixels(ds, StaticOcr(per_call=[[], [TextBox(3, 3, 5, 5)], []]), pad=0)
    out = rewrite(ds)
    after = list(generate_fragmented_frames(out.PixelData, number_of_frames=3))
    assert after[0] == original[0]
    assert after[2] == original[2]
    assert after[1] != original[1]
    assert np.array_equal(decode_independently(out, 2), before[2])
    assert out.NumberOfFrames == 3  # re-encoding a frame leaves the frame count as it was


def test_native_odd_length_pixel_data_keeps_its_padding() -> None:
    ds, before = build(Spec("MONOCHROME2", 8, rows=3, columns=3))
    assert len(ds.PixelData) == 10
    frame = before[0].copy()
    frame[0, 0] = 0
    write_frames(ds, {0: frame})
    out = rewrite(ds)
    assert len(out.PixelData) == 10
    assert out.PixelData[9:] == b"\x00"
    assert out.PixelData[1:9] == bytes(before[0].reshape(-1)[1:].tolist())


def test_failed_verification_is_a_pixel_error_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds, before = build(Spec("MONOCHROME2", 12, frames=2, syntax=JPEGLSLossless))
    original = bytes(ds.PixelData)
    monkeypatch.setattr(encode_module, "_compare", lambda *args: False)
    with pytest.raises(PixelError, match="frame 0 did not decode back"):
        write_frames(ds, {0: before[0]})
    assert bytes(ds.PixelData) == original


class _Built(Mapping[int, np.ndarray]):
    """Frames built on demand (as the pixel pass's blanked frames): counts every build."""

    def __init__(self, frames: dict[int, np.ndarray]) -> None:
        self.frames = frames
        self.built: list[int] = []

    def __getitem__(self, index: int) -> np.ndarray:
        self.built.append(index)
        return self.frames[index]

    def __iter__(self) -> Iterator[int]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)


@pytest.mark.parametrize("frames", [1, 3])
def test_native_frames_are_built_once_and_read_back_before_they_are_kept(
    monkeypatch: pytest.MonkeyPatch, frames: int
) -> None:
    ds, before = build(Spec("MONOCHROME2", 12, frames=frames))
    original = bytes(ds.PixelData)
    given = _Built({i: before[i] for i in range(frames)})
    write_frames(ds, given)
    assert sorted(given.built) == list(range(frames))  # written and verified: one build each
    out = rewrite(ds)
    assert all(np.array_equal(decode_independently(out, i), before[i]) for i in range(frames))
    # bytes that read back as other values: a pixel error, and the Pixel Data as it was
    ds.PixelData = original
    real = encode_module.native_frame_bytes
    monkeypatch.setattr(encode_module, "native_frame_bytes", lambda f, layout: real(f + 1, layout))
    with pytest.raises(PixelError, match="frame 0 did not read back as written"):
        write_frames(ds, {0: before[0]})
    assert bytes(ds.PixelData) == original


def test_jpeg_quality_is_estimated_from_the_quantisation_table() -> None:
    from PIL import Image

    image = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (64, 1)))
    for quality in (30, 50, 75, 90):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        tables = jpeg_quantisation(out.getvalue())
        assert abs(estimate_jpeg_quality(tables[0]) - quality) <= 1


def test_jpeg_ls_near_is_read_from_the_scan_header() -> None:
    frame = np.arange(64, dtype=np.uint8).reshape(8, 8)
    data = get_encoder(JPEGLSNearLossless).encode(
        frame,
        rows=8,
        columns=8,
        samples_per_pixel=1,
        bits_allocated=8,
        bits_stored=8,
        pixel_representation=0,
        photometric_interpretation="MONOCHROME2",
        number_of_frames=1,
        jls_error=3,
    )
    assert jpeg_ls_near(data) == 3


@pytest.mark.corpus
def test_jpeg_lossless_falls_back_to_jpeg_ls_and_says_so(corpus: Path) -> None:
    path = corpus / "pylibjpeg-data" / "JPEGLosslessP14SV1_1s_1f_u_08_08.dcm"
    if not path.exists():
        pytest.skip("corpus file missing")
    ds = dcmread(path)
    before = read_frame(ds, read_layout(ds), 0)
    report = clean_pixels(ds, StaticOcr([TextBox(10, 10, 30, 12)]), pad=2)
    out = rewrite(ds)
    assert report.encode is not None
    assert report.encode.changed and not report.encode.lossy
    assert report.encode.original_transfer_syntax == "1.2.840.10008.1.2.4.70"
    assert out.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert report.notes and "JPEG-LS Lossless" in report.notes[0]
    after = decode_independently(out, 0)
    assert np.all(after[8:24, 8:42] == 0)
    mask = np.ones(after.shape, bool)
    mask[8:24, 8:42] = False
    assert np.array_equal(after[mask], before[mask])


# -- overlays -----------------------------------------------------------------------------


def _with_overlay(frames: int = 1) -> tuple[object, np.ndarray]:
    ds, _ = build(Spec("MONOCHROME2", 12))
    rows, columns = 21, 19  # 399 bits a frame: frames do not start on a byte
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 1, size=(frames, rows, columns), endpoint=True).astype(np.uint8)
    packed = np.packbits(bits.reshape(-1), bitorder="little").tobytes()
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", columns)
    ds.add_new(0x60000015, "IS", frames)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", packed + (b"\x00" if len(packed) % 2 else b""))
    return rewrite(ds), bits


def test_overlay_bitmap_boxes_are_cleared_exactly_in_every_frame() -> None:
    ds, bits = _with_overlay(frames=2)
    (plane,) = overlay_planes(ds)
    assert (plane.rows, plane.columns, plane.frames) == (21, 19, 2)
    engine = StaticOcr(func=lambda image: [TextBox(4, 5, 6, 3, 0.7)])
    report = clean_pixels(ds, engine, pad=1)
    out = rewrite(ds)
    (plane,) = overlay_planes(out)
    for frame in range(2):
        after = overlay_bitmap(out, plane, frame)
        assert np.all(after[4:9, 3:11] == 0)
        mask = np.ones(after.shape, bool)
        mask[4:9, 3:11] = False
        assert np.array_equal(after[mask], bits[frame][mask])
    assert {
        (o.group, o.frame, o.left, o.top, o.width, o.height) for o in report.overlays_blanked
    } == {
        (0x6000, 0, 3, 4, 8, 5),
        (0x6000, 1, 3, 4, 8, 5),
    }


def test_overlay_text_left_after_blanking_is_rejected() -> None:
    ds, _ = _with_overlay()
    # the overlay is read first (call 1), then again after blanking (call 2)
    engine = StaticOcr(per_call=[[TextBox(4, 4, 3, 3)], [TextBox(12, 12, 3, 3)]])
    with pytest.raises(ResidualPhiError) as caught:
        clean_pixels(ds, engine, pad=0)
    assert caught.value.hits == ("overlay 6000 frame 0",)


def test_remove_overlays_for_clean_graphics() -> None:
    ds, _ = _with_overlay()
    report = clean_pixels(ds, StaticOcr(), overlays="remove")
    assert report.overlays_removed == (0x6000,)
    assert not any(0x6000 <= tag.group <= 0x60FF for tag in rewrite(ds).keys())
    assert remove_overlays(ds) == []


# -- icons --------------------------------------------------------------------------------


def _icon() -> object:
    return item(
        Rows=4,
        Columns=4,
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PixelRepresentation=0,
        PixelData=bytes(range(16)),
    )


def test_icons_are_removed_at_any_depth() -> None:
    ds, _ = build(Spec("MONOCHROME2", 8))
    ds.IconImageSequence = Sequence([_icon()])
    inner = item(IconImageSequence=Sequence([_icon()]))
    ds.ReferencedImageSequence = Sequence([item(ReferencedSOPInstanceUID="1.2.3"), inner])
    ds = rewrite(ds)
    report = clean_pixels(ds, StaticOcr())
    out = rewrite(ds)
    assert report.icons_removed == 2
    assert "IconImageSequence" not in out
    assert all("IconImageSequence" not in i for i in out.ReferencedImageSequence)
    assert remove_icons(out) == 0


def test_icon_rebuilt_from_the_cleaned_first_frame() -> None:
    ds, _ = build(Spec("MONOCHROME2", 8, rows=64, columns=64, smooth=True))
    ds.IconImageSequence = Sequence([_icon()])
    ds = rewrite(ds)
    report = clean_pixels(ds, StaticOcr([TextBox(0, 0, 30, 30)]), pad=2, icons="rebuild")
    out = rewrite(ds)
    assert report.icons_removed == 1 and report.icon_rebuilt
    (icon,) = out.IconImageSequence
    assert (icon.Rows, icon.Columns, icon.BitsAllocated) == (64, 64, 8)
    pixels = np.frombuffer(icon.PixelData, np.uint8).reshape(64, 64)
    assert np.all(pixels[:32, :32] == 0)
    assert int(pixels[40:, 40:].min()) > 0


@pytest.mark.corpus
def test_bits_above_bits_stored_inside_a_codestream_are_dropped(corpus: Path) -> None:
    """A JPEG Lossless frame coded at 16 bits for Bits Stored 8 (overlays in the unused bits):
    decoders mask the extra bits, so the codestream's precision says they are there; the frame
    is rewritten (in JPEG-LS, the JPEG Lossless fallback) at 8 bits."""
    import jpeg_ls
    from pydicom.encaps import generate_frames

    from deid.pixels.frames import codestream_precision

    path = corpus / "dicompixelanon" / "XA_GE_JPEG_02_with_Overlays.dcm"
    if not path.exists():
        pytest.skip("corpus file missing")
    ds = dcmread(path)
    first = next(generate_frames(ds.PixelData, number_of_frames=1))
    assert codestream_precision(first) == 16
    before = read_frame(ds, read_layout(ds), 0)
    report = clean_pixels(ds, StaticOcr())
    assert report.high_bits_cleared == (0,)
    out = rewrite(ds)
    frame = next(generate_frames(out.PixelData, number_of_frames=1))
    assert codestream_precision(frame) == 8
    raw = jpeg_ls.decode(np.frombuffer(frame, np.uint8))
    assert np.array_equal(raw, before)
