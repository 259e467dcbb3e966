"""Per-call limits: what an upload may claim before anything is allocated for it.

A header can claim 65535 x 65535 pixels in 1000 frames; deid checks such claims against
:class:`Limits` from the header values alone, before any pixel data is decoded or any buffer
sized from them, and rejects with ``SIZE_LIMIT``. Messages give the numbers, never a value of
the patient's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deid.codes import RejectReason
from deid.errors import RejectedError
from deid.values import get_value

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deid.decisions import Plan

_GIB = 1 << 30
#: How deep deid lets pydicom read or write nested sequences, whatever the call's limits. Not
#: a caller limit: pydicom's reader and writer recurse once per level, and hostile nests cost
#: time with the square of their depth there (fuzz findings), so the bound is checked before
#: pydicom sees the data, in three places that run before a :class:`Limits` check could:
#: items of undefined length open at once on the bytes (``deid.engine.MAX_OPEN_ITEMS``), the
#: identifier walk (``deid.rawitems.MAX_DEPTH``) and a sequence about to be written
#: (``deid.encoding.MAX_WRITE_DEPTH``), each equal to this (a test holds them to it). The
#: caller's ``max_depth`` is the limit that binds; it may not exceed this ceiling.
NESTING_CEILING = 64


@dataclass(frozen=True)
class Limits:
    """Limits of one call (a Deidentifier's defaults suit uploads and archives alike).

    ``max_bytes``: size of the encoded input. ``max_frames``: Number of Frames.
    ``max_pixels``: Rows x Columns x Samples per Pixel x frames. ``max_depth``: sequence
    nesting (items within items), at most :data:`NESTING_CEILING`.
    """

    max_bytes: int = 4 * _GIB
    max_frames: int = 50_000
    max_pixels: int = 8 * _GIB
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_frames", "max_pixels", "max_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1")
        if self.max_depth > NESTING_CEILING:
            raise ValueError(f"max_depth must be at most {NESTING_CEILING}")

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise RejectedError(RejectReason.SIZE_LIMIT, f"{size} bytes (limit {self.max_bytes})")

    def check_header(self, ds: Dataset) -> None:
        """Frame and pixel counts the header claims, before any pixel data is touched."""
        frames = _count(get_value(ds, "NumberOfFrames"), 1)
        if frames > self.max_frames:
            raise RejectedError(
                RejectReason.SIZE_LIMIT, f"{frames} frames (limit {self.max_frames})"
            )
        rows = _count(get_value(ds, "Rows"), 0)
        columns = _count(get_value(ds, "Columns"), 0)
        samples = _count(get_value(ds, "SamplesPerPixel"), 1)
        pixels = rows * columns * samples * frames
        if pixels > self.max_pixels:
            raise RejectedError(
                RejectReason.SIZE_LIMIT, f"{pixels} pixel samples (limit {self.max_pixels})"
            )

    def check_depth(self, plan: Plan) -> None:
        """Sequence nesting of the planned object (every element is planned, at every depth)."""
        deepest = max((len(d.path) for d in plan.decisions), default=0)
        if deepest > self.max_depth:
            raise RejectedError(
                RejectReason.SIZE_LIMIT,
                f"sequences nested {deepest} deep (limit {self.max_depth})",
            )


def _count(value: object, default: int) -> int:
    """A count from a header value (IS/US); 0 for junk, ``default`` when absent."""
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip() or default)
    except ValueError:
        return 0
    return max(number, 0)
