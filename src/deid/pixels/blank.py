"""Blanking boxes in the stored values of a frame, and clearing bits above Bits Stored.

The fill is black for the photometric interpretation, in stored values:

- MONOCHROME2: Pixel Padding Value when the header gives one inside the stored range, else
  the smallest value Bits Stored can hold; MONOCHROME1: the largest;
- RGB (and YBR_RCT/ICT, which decode to RGB): 0 in every sample;
- YBR_FULL / YBR_FULL_422: Y = 0, Cb = Cr = the middle of the range;
- PALETTE COLOR: the index whose lookup-table entry is darkest.

Only the pixels inside the boxes change; every other stored value stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deid.errors import PixelError
from deid.ocr import TextBox

if TYPE_CHECKING:
    import numpy.typing as npt
    from pydicom.dataset import Dataset

    from deid.pixels.frames import PixelLayout


@dataclass(frozen=True, slots=True)
class Blanked:
    """One box blanked in one frame (for the audit: coordinates, engine, confidence)."""

    frame: int
    left: int
    top: int
    width: int
    height: int
    engine: str
    confidence: float

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.top + self.height

    @property
    def box(self) -> TextBox:
        """The blanked area as a :class:`TextBox` (no text)."""
        return TextBox(self.left, self.top, self.width, self.height, self.confidence)


def _padding_value(ds: Dataset, layout: PixelLayout) -> int | None:
    value = ds.get("PixelPaddingValue")
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    low, high = layout.stored_range
    if layout.signed and number > high:
        number -= 1 << layout.bits_stored  # read as US where the data are signed
    return number if low <= number <= high else None


def darkest_palette_index(ds: Dataset, layout: PixelLayout) -> int:
    """The stored index whose palette entry is darkest (lowest luma; first on ties)."""
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut

    top = min(layout.stored_range[1], 65535)
    indices = np.arange(top + 1, dtype=np.uint16 if layout.bits_allocated > 8 else np.uint8)
    try:
        rgb = apply_color_lut(indices, ds).astype(np.float64)
    except Exception as exc:
        raise PixelError("the Palette Color Lookup Table cannot be applied") from exc
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return int(np.argmin(luma))


def fill_values(layout: PixelLayout, ds: Dataset | None = None) -> tuple[int, ...]:
    """The black fill, one stored value per sample of a decoded frame."""
    pi = layout.decoded_photometric
    low, high = layout.stored_range
    if layout.bits_allocated == 1:
        return (0,) if pi == "MONOCHROME2" else (1,)
    if pi == "MONOCHROME2":
        padding = _padding_value(ds, layout) if ds is not None else None
        return (low if padding is None else padding,)
    if pi == "MONOCHROME1":
        return (high,)
    if pi == "PALETTE COLOR":
        if ds is None:
            raise PixelError("PALETTE COLOR needs the data set's lookup table")
        return (darkest_palette_index(ds, layout),)
    if pi in ("YBR_FULL", "YBR_FULL_422"):
        middle = 1 << (layout.bits_stored - 1)
        return (0, middle, middle)
    return (0,) * layout.samples_per_pixel


def clip_box(box: TextBox, rows: int, columns: int, pad: int = 0) -> TextBox | None:
    """``box`` grown by ``pad`` and clipped to the frame; ``None`` when nothing is left."""
    if box.left >= columns or box.top >= rows:
        return None
    return box.padded(pad, rows, columns)


def align_box(box: TextBox, rows: int, columns: int, across: int, down: int) -> TextBox:
    """``box`` grown outwards to multiples of ``across`` x ``down`` pixels (clipped)."""
    left = box.left - box.left % across
    top = box.top - box.top % down
    right = min(columns, -(-box.right // across) * across)
    bottom = min(rows, -(-box.bottom // down) * down)
    return TextBox(left, top, right - left, bottom - top, box.confidence, box.text)


def blank_frame(
    frame: npt.NDArray[Any],
    boxes: Iterable[TextBox],
    fill: tuple[int, ...],
    *,
    pad: int = 0,
    align: tuple[int, int] = (1, 1),
) -> list[TextBox]:
    """Fill each box (grown by ``pad``, then aligned to ``align`` = (across, down) pixels) with
    ``fill`` in every sample of ``frame``, in place. Returns the areas actually filled."""
    import numpy as np

    rows, columns = int(frame.shape[0]), int(frame.shape[1])
    samples = 1 if frame.ndim == 2 else int(frame.shape[2])
    if len(fill) != samples:
        raise PixelError("the fill has a value per sample of the frame")
    info = np.iinfo(frame.dtype) if frame.dtype.kind in "iu" else None
    if info is not None and any(not info.min <= v <= info.max for v in fill):
        raise PixelError("the fill value does not fit the frame's data type")
    # one value for every sample where they are equal (black RGB), else sample by sample:
    # numpy fills a block from a scalar many times faster than it broadcasts a vector
    uniform = samples == 1 or len(set(fill)) == 1
    done = fill_areas(boxes, rows, columns, pad=pad, align=align)
    for area in done:
        block = frame[area.top : area.bottom, area.left : area.right]
        if uniform:
            block[...] = fill[0]
        else:
            for sample, value in enumerate(fill):
                block[..., sample] = value
    return done


def fill_areas(
    boxes: Iterable[TextBox],
    rows: int,
    columns: int,
    *,
    pad: int = 0,
    align: tuple[int, int] = (1, 1),
) -> list[TextBox]:
    """The areas :func:`blank_frame` fills in a ``rows`` x ``columns`` frame for ``boxes``
    (each grown by ``pad``, aligned, clipped; boxes outside the frame left out)."""
    done: list[TextBox] = []
    for box in boxes:
        clipped = clip_box(box, rows, columns, pad)
        if clipped is None:
            continue
        if align != (1, 1):
            clipped = align_box(clipped, rows, columns, *align)
        done.append(clipped)
    return done


def clear_high_bits(frame: npt.NDArray[Any], layout: PixelLayout) -> tuple[Any, bool]:
    """``frame`` with every bit above Bits Stored cleared (signed values sign-extended from
    Bits Stored, the stored bits kept), and whether anything changed."""
    import numpy as np

    if layout.bits_stored >= 8 * frame.dtype.itemsize or layout.bits_allocated == 1:
        return frame, False
    shift = 8 * frame.dtype.itemsize - layout.bits_stored
    if frame.size:  # every value within Bits Stored's range: nothing to clear (no new array)
        low, high = (
            (-(1 << (layout.bits_stored - 1)), (1 << (layout.bits_stored - 1)) - 1)
            if layout.signed
            else (0, (1 << layout.bits_stored) - 1)
        )
        if int(frame.min()) >= low and int(frame.max()) <= high:
            return frame, False
    if layout.signed:
        signed = frame.astype(frame.dtype)
        cleaned = np.right_shift(np.left_shift(signed, shift), shift)
    else:
        mask = (1 << layout.bits_stored) - 1
        cleaned = np.bitwise_and(frame, np.array(mask, dtype=frame.dtype))
    changed = not np.array_equal(cleaned, frame)
    return (cleaned if changed else frame), changed
