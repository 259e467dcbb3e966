"""The pixel pass: find burned-in text in every frame, overlay and icon, blank it, re-encode.

One concept per module (none imports a codec, OpenCV or Pillow at import time):

- :mod:`~deid.pixels.frames`: :class:`PixelLayout`, frame-by-frame decoding of stored values;
- :mod:`~deid.pixels.normalise`: a frame as an 8-bit image for OCR only;
- :mod:`~deid.pixels.blank`: black fill per photometric interpretation, blanking boxes,
  clearing bits above Bits Stored;
- :mod:`~deid.pixels.encode`: writing frames back (native, or re-encoded per syntax);
- :mod:`~deid.pixels.overlays`: overlay planes 60xx;
- :mod:`~deid.pixels.icons`: Icon Image Sequence;
- :mod:`~deid.pixels.regions`: reading only the places the pre-screen flags, as crops, with
  exact reuse of identical crops;
- :mod:`~deid.pixels.clean`: :func:`clean_pixels`, the orchestrator, and :class:`PixelReport`.
"""

from deid.pixels.blank import Blanked, blank_frame, clear_high_bits, fill_values
from deid.pixels.clean import OverlayBlanked, PixelReport, clean_pixels
from deid.pixels.encode import EncodeResult, write_frames
from deid.pixels.frames import PixelLayout, iter_frames, read_frame, read_layout
from deid.pixels.icons import remove_icons
from deid.pixels.normalise import to_uint8
from deid.pixels.overlays import remove_overlays

__all__ = [
    "Blanked",
    "EncodeResult",
    "OverlayBlanked",
    "PixelLayout",
    "PixelReport",
    "blank_frame",
    "clean_pixels",
    "clear_high_bits",
    "fill_values",
    "iter_frames",
    "read_frame",
    "read_layout",
    "remove_icons",
    "remove_overlays",
    "to_uint8",
    "write_frames",
]
