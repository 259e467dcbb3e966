"""Icon Image Sequence (0088,0200): remove it at any depth, or rebuild one from a clean image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deid.errors import PixelError

if TYPE_CHECKING:
    import numpy.typing as npt
    from pydicom.dataset import Dataset

ICON_IMAGE_SEQUENCE = 0x00880200


def remove_icons(ds: Dataset) -> int:
    """Delete every Icon Image Sequence in ``ds`` and its sequences. Returns how many."""
    removed = 0
    if ICON_IMAGE_SEQUENCE in ds:
        del ds[ICON_IMAGE_SEQUENCE]
        removed += 1
    for tag in list(ds.keys()):
        if _is_sequence(ds, tag):
            for item in ds[tag].value or ():
                removed += remove_icons(item)
    return removed


def _is_sequence(ds: Dataset, tag: Any) -> bool:
    """Whether ``tag`` holds a sequence, without converting a raw element that does not."""
    from pydicom.datadict import dictionary_VR

    element = ds.get_item(tag)
    vr = getattr(element, "VR", None)
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return False
    return str(vr) == "SQ"


def _downscale(image: npt.NDArray[Any], size: int) -> Any:
    """Block-average ``image`` so that its longer side is at most ``size``."""
    import numpy as np

    rows, columns = int(image.shape[0]), int(image.shape[1])
    step = max(1, -(-max(rows, columns) // size))
    out_rows, out_columns = max(1, rows // step), max(1, columns // step)
    cropped = image[: out_rows * step, : out_columns * step].astype(np.float64)
    shape = (out_rows, step, out_columns, step, *image.shape[2:])
    return np.rint(cropped.reshape(shape).mean(axis=(1, 3))).astype(np.uint8)


def build_icon(image: npt.NDArray[Any], size: int = 64) -> Dataset:
    """An Icon Image Sequence item from an 8-bit ``image`` (grey -> MONOCHROME2, RGB -> RGB)
    already cleaned, downscaled so the longer side is at most ``size`` pixels."""
    import numpy as np
    from pydicom.dataset import Dataset as DicomDataset

    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise PixelError("an icon is built from an 8-bit grey or RGB image")
    if image.ndim == 3 and image.shape[2] != 3:
        raise PixelError("an icon is built from an 8-bit grey or RGB image")
    small = np.ascontiguousarray(_downscale(image, size))
    item = DicomDataset()
    item.SamplesPerPixel = 1 if small.ndim == 2 else 3
    item.PhotometricInterpretation = "MONOCHROME2" if small.ndim == 2 else "RGB"
    if small.ndim == 3:
        item.PlanarConfiguration = 0
    item.Rows, item.Columns = int(small.shape[0]), int(small.shape[1])
    item.BitsAllocated = 8
    item.BitsStored = 8
    item.HighBit = 7
    item.PixelRepresentation = 0
    data = small.tobytes()
    item.PixelData = data + (b"\x00" if len(data) % 2 else b"")
    item["PixelData"].VR = "OB"
    return item


def rebuild_icon(ds: Dataset, image: npt.NDArray[Any], size: int = 64) -> None:
    """Replace the top-level Icon Image Sequence with one built from ``image``."""
    from pydicom.sequence import Sequence

    ds.IconImageSequence = Sequence([build_icon(image, size)])
