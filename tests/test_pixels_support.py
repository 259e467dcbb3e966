"""Builders for the pixel tests: images in every photometric interpretation and syntax.

(Named ``test_pixels_*`` so it sits with the tests it serves; it holds one self-check.)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from tests.factories import make_dataset, roundtrip, to_bytes

ROWS, COLUMNS = 40, 36


@dataclass(frozen=True)
class Spec:
    """One test image: photometric interpretation, bits, sign, frames, syntax."""

    pi: str
    bits_stored: int
    signed: bool = False
    frames: int = 1
    planar: int = 0
    syntax: str = ExplicitVRLittleEndian
    bits_allocated: int | None = None
    smooth: bool = False
    rows: int = ROWS
    columns: int = COLUMNS

    @property
    def allocated(self) -> int:
        if self.bits_allocated is not None:
            return self.bits_allocated
        return 1 if self.bits_stored == 1 else (8 if self.bits_stored <= 8 else 16)

    @property
    def samples(self) -> int:
        return 1 if self.pi in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR") else 3

    @property
    def dtype(self) -> np.dtype[Any]:
        width = {1: 1, 8: 1, 16: 2, 32: 4}[self.allocated]
        return np.dtype(f"{'i' if self.signed else 'u'}{width}")

    @property
    def shape(self) -> tuple[int, ...]:
        if self.samples == 1:
            return (self.frames, self.rows, self.columns)
        return (self.frames, self.rows, self.columns, 3)


def stored_values(spec: Spec, seed: int = 7) -> np.ndarray:
    """Distinct frames of stored values covering the whole stored range."""
    rng = np.random.default_rng(seed)
    if spec.signed:
        low, high = -(1 << (spec.bits_stored - 1)), (1 << (spec.bits_stored - 1)) - 1
    else:
        low, high = 0, (1 << spec.bits_stored) - 1
    if spec.smooth:
        r = np.linspace(0.0, 1.0, spec.rows)[:, None]
        c = np.linspace(0.0, 1.0, spec.columns)[None, :]
        base = 0.2 + 0.3 * r + 0.3 * c
        frames = [base + 0.05 * f for f in range(spec.frames)]
        grey = np.stack(frames)
        if spec.samples == 3:
            grey = np.stack([grey, 1.0 - grey, 0.5 + 0.0 * grey], axis=-1)
        values = np.rint(low + grey * (high - low))
    else:
        values = rng.integers(low, high, size=spec.shape, endpoint=True)
    if spec.pi.startswith("YBR") and spec.smooth:
        values[..., 1:] = np.clip(values[..., 1:], 96, 160)
    return values.astype(spec.dtype)


def palette_lut(ds: Dataset, bits: int, darkest: int) -> None:
    """A palette with 2**bits entries, brightest everywhere except at ``darkest``."""
    entries = 1 << bits
    table = np.full(entries, 0xFFFF if bits > 8 else 0xFF, dtype=np.uint16)
    table[: entries // 2] = np.linspace(20, 200, entries // 2).astype(np.uint16)
    table[darkest] = 1
    lut_bits = 16
    descriptor = [0 if entries == 65536 else entries, 0, lut_bits]
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", descriptor)
        setattr(
            ds,
            f"{colour}PaletteColorLookupTableData",
            (table.astype("<u2") * (257 if bits <= 8 else 1)).tobytes(),
        )


def native_bytes(values: np.ndarray, spec: Spec) -> bytes:
    if spec.allocated == 1:
        data = np.packbits(values.reshape(-1).astype(np.uint8), bitorder="little").tobytes()
    elif spec.pi == "YBR_FULL_422":
        pairs = np.empty((spec.frames, spec.rows, spec.columns // 2, 4), values.dtype)
        pairs[..., 0] = values[:, :, 0::2, 0]
        pairs[..., 1] = values[:, :, 1::2, 0]
        pairs[..., 2] = values[:, :, 0::2, 1]
        pairs[..., 3] = values[:, :, 0::2, 2]
        data = pairs.astype(spec.dtype.newbyteorder("<")).tobytes()
    elif spec.samples == 3 and spec.planar == 1:
        data = values.transpose(0, 3, 1, 2).astype(spec.dtype.newbyteorder("<")).tobytes()
    else:
        data = values.astype(spec.dtype.newbyteorder("<")).tobytes()
    return data + (b"\x00" if len(data) % 2 else b"")


def pillow_jpeg(frame: np.ndarray, pi: str, quality: int = 85) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    if frame.ndim == 2:
        Image.fromarray(frame).save(out, format="JPEG", quality=quality)
    else:
        image = Image.frombytes("YCbCr", (frame.shape[1], frame.shape[0]), frame.tobytes())
        sampling = 1 if pi == "YBR_FULL_422" else 0
        image.save(out, format="JPEG", quality=quality, subsampling=sampling)
    return out.getvalue()


def build(spec: Spec, *, darkest: int = 37, seed: int = 7) -> tuple[Dataset, np.ndarray]:
    """A data set (written and read back) and the stored values it decodes to."""
    values = stored_values(spec, seed)
    ds = make_dataset(SecondaryCaptureImageStorage, Modality="OT")
    ds.Rows, ds.Columns = spec.rows, spec.columns
    ds.SamplesPerPixel = spec.samples
    ds.PhotometricInterpretation = spec.pi
    ds.BitsAllocated = spec.allocated
    ds.BitsStored = spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = int(spec.signed)
    if spec.samples == 3:
        ds.PlanarConfiguration = spec.planar
    if spec.frames > 1:
        ds.NumberOfFrames = spec.frames
    if spec.pi == "PALETTE COLOR":
        palette_lut(ds, spec.bits_stored, darkest)
    syntax = UID(spec.syntax)
    if not syntax.is_encapsulated:
        ds.PixelData = native_bytes(values, spec)
        ds["PixelData"].VR = "OB" if spec.allocated <= 8 else "OW"
    else:
        frames: list[bytes] = []
        for index in range(spec.frames):
            frame = values[index]
            if syntax == JPEGBaseline8Bit:
                frames.append(pillow_jpeg(frame, spec.pi))
                continue
            from pydicom.pixels.encoders.base import get_encoder

            options: dict[str, Any] = {}
            pi = spec.pi
            if syntax == JPEG2000:
                options["j2k_cr"] = [4]
            frames.append(
                get_encoder(syntax).encode(
                    frame,
                    rows=spec.rows,
                    columns=spec.columns,
                    samples_per_pixel=spec.samples,
                    bits_allocated=spec.allocated,
                    bits_stored=spec.bits_stored,
                    pixel_representation=int(spec.signed),
                    photometric_interpretation=pi,
                    planar_configuration=0,
                    number_of_frames=1,
                    **options,
                )
            )
        ds.PixelData = encapsulate(frames, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        if syntax in (JPEGBaseline8Bit, JPEG2000):
            ds.LossyImageCompression = "01"
    ds.file_meta.TransferSyntaxUID = syntax
    back = roundtrip(to_bytes(ds))
    if (
        syntax.is_encapsulated or spec.pi == "YBR_FULL_422"
    ):  # what the encoder actually stored (lossy or not)
        values = np.stack([decode_independently(back, i) for i in range(spec.frames)])
    return back, values


def decode_independently(ds: Dataset, index: int) -> np.ndarray:
    """Frame ``index`` decoded by pydicom (stored values, no colour conversion); bit-packed
    frames are unpacked here (pydicom's frame index needs byte-aligned frames)."""
    if ds.BitsAllocated == 1:
        bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")
        count = ds.Rows * ds.Columns
        return bits[index * count : (index + 1) * count].reshape(ds.Rows, ds.Columns)
    return pixel_array(ds, index=index, raw=True)


def rewrite(ds: Dataset) -> Dataset:
    return roundtrip(to_bytes(ds))


LOSSLESS_SYNTAXES = (RLELossless, JPEGLSLossless, JPEG2000Lossless)


def test_builder_roundtrips_native_values() -> None:
    spec = Spec("RGB", 8, planar=1, frames=2)
    ds, values = build(spec)
    assert np.array_equal(decode_independently(ds, 1), values[1])
    assert ds.PlanarConfiguration == 1
    with pytest.raises(KeyError, match="unknown DICOM keyword"):
        make_dataset(NotAKeyword=1)
