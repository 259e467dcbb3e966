"""Overlay planes (60xx): read a bitmap for OCR, blank boxes in it, or remove the planes.

Only planes held in Overlay Data (60xx,3000) with Overlay Bits Allocated 1 are bitmaps here;
overlays kept in unused bits of Pixel Data are cleared with the high bits of the frame
(:func:`deid.pixels.blank.clear_high_bits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deid.errors import PixelError
from deid.ocr import TextBox
from deid.pixels.blank import clip_box

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from pydicom.dataset import Dataset

_DATA = 0x3000


@dataclass(frozen=True, slots=True)
class OverlayPlane:
    """One overlay plane's geometry."""

    group: int
    rows: int
    columns: int
    frames: int

    @property
    def name(self) -> str:
        """The plane's group as the standard writes it, e.g. ``6000``."""
        return f"{self.group:04X}"


def overlay_groups(ds: Dataset) -> list[int]:
    """The even groups 6000-601E that have any element in ``ds``."""
    groups = {tag.group for tag in ds.keys() if 0x6000 <= tag.group <= 0x601E}
    return sorted(g for g in groups if g % 2 == 0)


def overlay_planes(ds: Dataset) -> list[OverlayPlane]:
    """The planes that hold an Overlay Data bitmap."""
    planes: list[OverlayPlane] = []
    for group in overlay_groups(ds):
        if (group << 16 | _DATA) not in ds:
            continue
        rows = ds.get((group, 0x0010))
        columns = ds.get((group, 0x0011))
        allocated = ds.get((group, 0x0100))
        if rows is None or columns is None:
            raise PixelError(f"overlay {group:04X} has Overlay Data but no Overlay Rows/Columns")
        if allocated is not None and allocated.value not in (1, None, ""):
            raise PixelError(f"overlay {group:04X}: OverlayBitsAllocated is not 1")
        frames_element = ds.get((group, 0x0015))
        frames = int(frames_element.value) if frames_element and frames_element.value else 1
        planes.append(OverlayPlane(group, int(rows.value), int(columns.value), max(1, frames)))
    return planes


def _bits(ds: Dataset, plane: OverlayPlane) -> Any:
    import numpy as np

    data = ds[plane.group << 16 | _DATA].value
    if not isinstance(data, bytes | bytearray):
        raise PixelError(f"overlay {plane.name}: OverlayData is not a byte string")
    bits = np.unpackbits(np.frombuffer(bytes(data), np.uint8), bitorder="little")
    if bits.size < plane.rows * plane.columns * plane.frames:
        raise PixelError(f"overlay {plane.name}: OverlayData is shorter than its size needs")
    return bits


def overlay_bitmap(ds: Dataset, plane: OverlayPlane, frame: int = 0) -> npt.NDArray[np.uint8]:
    """Frame ``frame`` of the plane as a 0/1 ``uint8`` array (rows, columns)."""
    if not 0 <= frame < plane.frames:
        raise PixelError(f"overlay {plane.name}: frame index out of range")
    count = plane.rows * plane.columns
    bits = _bits(ds, plane)
    return bits[frame * count : (frame + 1) * count].reshape(plane.rows, plane.columns).copy()  # type: ignore[no-any-return]


def overlay_image(ds: Dataset, plane: OverlayPlane, frame: int = 0) -> npt.NDArray[np.uint8]:
    """The plane as a 0/255 grey image for OCR."""
    import numpy as np

    bitmap = overlay_bitmap(ds, plane, frame)
    return (bitmap * np.uint8(255)).astype(np.uint8)


def blank_overlay(
    ds: Dataset,
    plane: OverlayPlane,
    boxes: Mapping[int, Iterable[TextBox]],
    *,
    pad: int = 0,
) -> dict[int, list[TextBox]]:
    """Clear the bits inside ``boxes`` (overlay frame -> boxes, padded by ``pad``) and write the
    bitmap back; every other bit, and any trailing padding, is kept. Returns what was cleared."""
    import numpy as np

    bits = _bits(ds, plane)
    count = plane.rows * plane.columns
    done: dict[int, list[TextBox]] = {}
    for frame, frame_boxes in boxes.items():
        if not 0 <= frame < plane.frames:
            raise PixelError(f"overlay {plane.name}: frame index out of range")
        view = bits[frame * count : (frame + 1) * count].reshape(plane.rows, plane.columns)
        for box in frame_boxes:
            clipped = clip_box(box, plane.rows, plane.columns, pad)
            if clipped is None:
                continue
            view[clipped.top : clipped.bottom, clipped.left : clipped.right] = 0
            done.setdefault(frame, []).append(clipped)
    ds[plane.group << 16 | _DATA].value = np.packbits(bits, bitorder="little").tobytes()
    return done


def remove_overlays(ds: Dataset) -> list[int]:
    """Delete every element of the overlay groups 6000-601E (Clean Graphics). Returns the
    groups removed."""
    groups = overlay_groups(ds)
    for tag in [t for t in ds.keys() if t.group in groups]:
        del ds[tag]
    return groups
