"""A frame as an 8-bit image for the OCR engine only (never written back).

Grey data is windowed (the header's first Window Center/Width on rescaled values, else the
0.5/99.5 percentiles, stretched so the brightest value always maps to 255 and thin bright text
stays bright) and MONOCHROME1 inverted; YBR is converted to RGB, PALETTE COLOR goes through its
lookup table, colour data wider than 8 bits is scaled down.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from deid.errors import PixelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from pydicom.dataset import Dataset

    from deid.pixels.frames import PixelLayout


def _first_number(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes | int | float):
        try:
            value = value[0]
        except (TypeError, IndexError):
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _window(values: npt.NDArray[np.float64], ds: Dataset | None) -> tuple[float, float]:
    """(low, high) of the window mapped to 0 .. 255."""
    import numpy as np

    top = float(values.max())
    if ds is not None:
        center = _first_number(ds, "WindowCenter")
        width = _first_number(ds, "WindowWidth")
        if center is not None and width is not None and width >= 1:
            low = center - 0.5 - (width - 1) / 2
            high = center - 0.5 + (width - 1) / 2
            if high > low:
                return low, high
    low, high = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    if high <= low:
        low, high = float(values.min()), top
    return low, high


def _grey(frame: npt.NDArray[Any], layout: PixelLayout, ds: Dataset | None) -> Any:
    import numpy as np

    if layout.bits_allocated == 1:
        image = (frame != 0).astype(np.uint8) * np.uint8(255)
    else:
        values = frame.astype(np.float64)
        if ds is not None:
            slope = _first_number(ds, "RescaleSlope")
            intercept = _first_number(ds, "RescaleIntercept")
            if slope is not None and slope != 0:
                values = values * slope
            if intercept is not None:
                values = values + intercept
        low, high = _window(values, ds)
        if high <= low:
            image = np.zeros(frame.shape, np.uint8)
        else:
            scaled = (values - low) * (255.0 / (high - low))
            image = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if layout.photometric_interpretation == "MONOCHROME1":
        image = np.uint8(255) - image
    return image


def _scale_colour(frame: npt.NDArray[Any], bits: int) -> Any:
    import numpy as np

    if frame.dtype == np.uint8 and bits == 8:
        return frame
    top = float((1 << bits) - 1)
    return np.clip(np.rint(frame.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


def palette_rgb(indices: npt.NDArray[Any], ds: Dataset) -> Any:
    """The 8-bit RGB image of PALETTE COLOR ``indices`` through the data set's LUT."""
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut

    try:
        rgb = apply_color_lut(indices, ds)
    except Exception as exc:
        raise PixelError("the Palette Color Lookup Table cannot be applied") from exc
    if rgb.dtype == np.uint8:
        return rgb
    return (rgb.astype(np.uint32) >> 8).astype(np.uint8)


def to_uint8(
    frame: npt.NDArray[Any], layout: PixelLayout, ds: Dataset | None = None
) -> npt.NDArray[np.uint8]:
    """An 8-bit image of ``frame`` for OCR: ``(rows, columns)`` grey or ``(rows, columns, 3)``."""
    import numpy as np
    from pydicom.pixels.processing import convert_color_space

    pi = layout.decoded_photometric
    if pi in ("MONOCHROME1", "MONOCHROME2"):
        return np.ascontiguousarray(_grey(frame, layout, ds))
    if pi == "PALETTE COLOR":
        if ds is None:
            raise PixelError("PALETTE COLOR needs the data set's lookup table")
        return np.ascontiguousarray(palette_rgb(frame, ds))
    image = _scale_colour(frame, layout.bits_stored)
    if pi in ("YBR_FULL", "YBR_FULL_422"):
        image = convert_color_space(image, "YBR_FULL", "RGB")
    elif pi in ("YBR_RCT", "YBR_ICT"):
        # Only native YBR_RCT/ICT would reach here (not allowed by the standard): treat as YBR.
        image = convert_color_space(image, "YBR_FULL", "RGB")
    return np.ascontiguousarray(image, dtype=np.uint8)
