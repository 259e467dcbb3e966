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
    """The first value of ``keyword`` as a finite number; ``None`` when absent or unreadable
    (a malformed window is no window: the frame's own range is used)."""
    try:
        value = ds.get(keyword)
    except Exception:  # pydicom on a malformed element (an unknown VR, a wrong length)
        return None
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


def _header_window(ds: Dataset | None) -> tuple[float, float] | None:
    """The header's first Window Center / Width as (low, high), where usable."""
    if ds is None:
        return None
    center = _first_number(ds, "WindowCenter")
    width = _first_number(ds, "WindowWidth")
    if center is not None and width is not None and width >= 1:
        low = center - 0.5 - (width - 1) / 2
        high = center - 0.5 + (width - 1) / 2
        if high > low:
            return low, high
    return None


def _window(values: npt.NDArray[np.float64], ds: Dataset | None) -> tuple[float, float]:
    """(low, high) of the window mapped to 0 .. 255."""
    import numpy as np

    header = _header_window(ds)
    if header is not None:
        return header
    low, high = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return low, high


def _rescale(values: npt.NDArray[np.float64], ds: Dataset | None) -> Any:
    if ds is not None:
        slope = _first_number(ds, "RescaleSlope")
        intercept = _first_number(ds, "RescaleIntercept")
        if slope is not None and slope != 0:
            values = values * slope
        if intercept is not None:
            values = values + intercept
    return values


def _rescaled(frame: npt.NDArray[Any], ds: Dataset | None) -> Any:
    import numpy as np

    return _rescale(frame.astype(np.float64), ds)


class _Levels:
    """A grey frame of at most 16-bit integers as lookup-table indices: ``index`` (the stored
    values, offset to start at 0), ``counts`` (how often each index occurs), ``values`` (the
    rescaled value of each index). Percentiles from the counts, and the 8-bit image through a
    table of one entry per stored value, give exactly what the same arithmetic on every pixel
    gives, in a fraction of the time."""

    def __init__(self, index: npt.NDArray[Any], counts: npt.NDArray[Any], values: Any) -> None:
        self.index = index
        self.counts = counts
        self.values = values

    @classmethod
    def of(cls, frame: npt.NDArray[Any], ds: Dataset | None, count: bool = True) -> _Levels | None:
        """The levels of ``frame``; without ``count`` (the window is known: only the image is
        wanted) ``counts`` is empty and the table runs to the largest index (one pass over
        the pixels for their maximum instead of a histogram)."""
        import numpy as np

        kind, size = frame.dtype.kind, frame.dtype.itemsize
        if kind not in "iu" or size > 2:
            return None
        flat = np.ascontiguousarray(frame).reshape(-1)
        first = 0
        if kind == "i":  # flipping the sign bit maps signed values to unsigned, order kept
            unsigned = np.dtype(f"u{size}")
            first = -(1 << (8 * size - 1))
            flat = flat.view(unsigned) ^ unsigned.type(1 << (8 * size - 1))
        if count:
            counts = _histogram(flat)
            size = counts.size
        else:
            counts = np.zeros(0, np.int64)
            size = int(flat.max()) + 1 if flat.size else 1
        values = _rescale(np.arange(first, first + size, dtype=np.float64), ds)
        return cls(flat.reshape(frame.shape), counts, values)

    def window(self, ds: Dataset | None) -> tuple[float, float]:
        """What :func:`_window` gives on the rescaled frame (numpy's linear percentiles)."""
        import numpy as np

        header = _header_window(ds)
        if header is not None:
            return header
        present = self.counts > 0
        order = np.argsort(self.values[present], kind="stable")
        values = self.values[present][order]
        ends = np.cumsum(self.counts[present][order])
        total = int(ends[-1])
        found: list[float] = []
        for virtual in (total - 1) * np.true_divide(np.asarray((0.5, 99.5)), 100):
            if virtual >= total - 1:
                found.append(float(values[-1]))
                continue
            before = np.floor(virtual)
            a = values[np.searchsorted(ends, int(before), side="right")]
            b = values[np.searchsorted(ends, int(before) + 1, side="right")]
            gamma = virtual - before
            step = b - a
            found.append(float(b - step * (1 - gamma) if gamma >= 0.5 else a + step * gamma))
        low, high = found
        if high <= low:
            low, high = float(values[0]), float(values[-1])
        return low, high

    def image(self, low: float, high: float) -> Any:
        import numpy as np

        scaled = (self.values - low) * (255.0 / (high - low))
        table = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.take(table, self.index)  # (twice as fast as table[self.index])


def _histogram(flat: npt.NDArray[Any]) -> Any:
    """``numpy.bincount`` of ``flat`` (unsigned 8- or 16-bit values): through OpenCV's
    ``calcHist`` where the OCR stack has imported it already (three times as fast on a
    radiograph; counts are exact below 2**24 pixels), else numpy's."""
    import sys

    import numpy as np

    cv2 = sys.modules.get("cv2")
    if cv2 is None or not flat.size or flat.size >= 1 << 24:
        return np.bincount(flat)
    size = int(flat.max()) + 1
    try:
        counts = cv2.calcHist([flat.reshape(1, -1)], [0], None, [size], [0, size])
    except Exception:  # an OpenCV that lacks this: numpy's
        return np.bincount(flat)
    return np.rint(counts.reshape(-1)).astype(np.int64)


def grey_window(
    frame: npt.NDArray[Any], layout: PixelLayout, ds: Dataset | None = None
) -> tuple[float, float] | None:
    """The ``(low, high)`` values :func:`to_uint8` maps to 0 and 255 for this grey frame
    (``None`` for colour and 1-bit frames, which have no window)."""
    if layout.decoded_photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    if layout.bits_allocated == 1:
        return None
    header = _header_window(ds)
    if header is not None:
        return header
    levels = _Levels.of(frame, ds)
    if levels is not None:
        return levels.window(ds)
    return _window(_rescaled(frame, ds), ds)


def _grey(
    frame: npt.NDArray[Any],
    layout: PixelLayout,
    ds: Dataset | None,
    window: tuple[float, float] | None,
) -> Any:
    import numpy as np

    if layout.bits_allocated == 1:
        image = (frame != 0).astype(np.uint8) * np.uint8(255)
    elif (levels := _Levels.of(frame, ds, count=_counted(window, ds))) is not None:
        low, high = levels.window(ds) if window is None else window
        image = np.zeros(frame.shape, np.uint8) if high <= low else levels.image(low, high)
    else:
        values = _rescaled(frame, ds)
        low, high = _window(values, ds) if window is None else window
        if high <= low:
            image = np.zeros(frame.shape, np.uint8)
        else:
            scaled = (values - low) * (255.0 / (high - low))
            image = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if layout.photometric_interpretation == "MONOCHROME1":
        image = np.uint8(255) - image
    return image


def _counted(window: tuple[float, float] | None, ds: Dataset | None) -> bool:
    """Whether the frame's histogram is needed: for its window, when neither the caller nor
    the header gives one."""
    return window is None and _header_window(ds) is None


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
    frame: npt.NDArray[Any],
    layout: PixelLayout,
    ds: Dataset | None = None,
    *,
    window: tuple[float, float] | None = None,
) -> npt.NDArray[np.uint8]:
    """An 8-bit image of ``frame`` for OCR: ``(rows, columns)`` grey or ``(rows, columns, 3)``.

    ``window``: for grey frames, the ``(low, high)`` to use instead of the frame's own (a
    blanked frame is shown as its original was: :func:`grey_window` of the original)."""
    import numpy as np
    from pydicom.pixels.processing import convert_color_space

    pi = layout.decoded_photometric
    if pi in ("MONOCHROME1", "MONOCHROME2"):
        return np.ascontiguousarray(_grey(frame, layout, ds, window))
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
