"""A cheap "may this image contain text?" check, with OpenCV morphology (no model).

:class:`TextPrescreen` answers ``True`` when an 8-bit image holds something shaped like a line of
text, and is tuned for recall: a ``False`` lets the caller skip OCR, so it must be rare on images
with text; a ``True`` on a text-free image only costs an OCR run.

How (per polarity, bright strokes then dark ones):

1. the image's brightest channel (text is white, grey or yellow), or its inverse for dark text
   (MONOCHROME1 shown without inversion, text printed in black);
2. a white top-hat (the image minus its opening by a square larger than any stroke; the
   opening taken on a 3x3-smoothed copy so that noise does not pass) keeps thin bright
   structures and drops flat areas and large shapes (the body, an ultrasound sector);
3. pixels at least ``contrast`` grey levels above their surroundings, joined into connected
   components; components of a character's size and shape are kept (height
   ``min_height``..``max_height``, not much wider than a word, partly filled);
4. characters that sit side by side on one line (similar height, similar top and bottom, gaps
   under about a character's height) are chained; a chain of ``min_chars`` components or more
   is a text line.

It needs OpenCV (the ``ocr`` extra). An instance holds only its settings: share it freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from deid.errors import MissingDependencyError

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["TextPrescreen"]


class TextPrescreen:
    """``prescreen(image) -> bool``: whether a ``uint8`` image may contain text (see the
    module).

    contrast
        Grey levels a stroke must stand above (or below) its surroundings.
    min_height, max_height
        The heights, in pixels, a character may have.
    min_chars
        Components a line needs.
    dark
        Also look for dark strokes on a bright background.
    kernel
        Side of the top-hat square (wider than the widest stroke).
    """

    def __init__(
        self,
        *,
        contrast: int = 50,
        min_height: int = 5,
        max_height: int = 80,
        min_chars: int = 3,
        dark: bool = True,
        kernel: int = 15,
    ) -> None:
        if not 0 < contrast < 255 or not 2 <= min_height <= max_height or min_chars < 2:
            raise ValueError("contrast in 1..254, 2 <= min_height <= max_height, min_chars >= 2")
        if kernel < 3:
            raise ValueError("kernel must be at least 3")
        try:
            import cv2
        except ImportError as exc:
            raise MissingDependencyError("the OCR pre-screen (OpenCV)", "ocr") from exc
        self._cv2: Any = cv2
        self.contrast = contrast
        self.min_height = min_height
        self.max_height = max_height
        self.min_chars = min_chars
        self.dark = dark
        self.kernel = kernel
        self._square = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel, kernel))

    def __repr__(self) -> str:
        return (
            f"TextPrescreen(contrast={self.contrast}, min_height={self.min_height}, "
            f"max_height={self.max_height}, min_chars={self.min_chars}, dark={self.dark})"
        )

    def __call__(self, image: npt.NDArray[np.uint8]) -> bool:
        """Whether ``image`` (``uint8``, grey or RGB) may contain a line of text."""
        return any(self._has_line(grey) for grey in self._polarities(image))

    def candidates(self, image: npt.NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
        """Where text may be in ``image`` (``uint8``, grey or RGB): every group of
        character-shaped strokes of either polarity, as ``(left, top, width, height)``.

        Looser than :meth:`__call__`: a group of one character counts (not a lone bar: a
        "1", a tick, a sliver of a curved edge). The pixel pass reads only these places of a
        frame the pre-screen flagged, so a line left out here is a line left unread."""
        return self.scan(image)[1]

    def scan(self, image: npt.NDArray[np.uint8]) -> tuple[bool, list[tuple[int, int, int, int]]]:
        """``(self(image), self.candidates(image))`` from one pass over the image."""
        flagged = False
        found: list[tuple[int, int, int, int]] = []
        for grey in self._polarities(image):
            for left, top, width, height, members in self._groups(grey, self.contrast):
                flagged = flagged or members >= self.min_chars
                found.append((left, top, width, height))
        return flagged, found

    def _polarities(self, image: npt.NDArray[np.uint8]) -> Iterator[npt.NDArray[np.uint8]]:
        """The bright-stroke image, then (``dark``) the dark-stroke one, made on demand."""
        if image.dtype != np.uint8:
            raise TypeError("the pre-screen takes uint8 images")
        cv2 = self._cv2  # (OpenCV's per-pixel max, min and not: several times numpy's here)
        if image.ndim == 3 and image.shape[2] == 3:
            red, green, blue = cv2.split(np.ascontiguousarray(image))
            yield cv2.max(cv2.max(red, green), blue)
            if self.dark:
                yield cv2.bitwise_not(cv2.min(cv2.min(red, green), blue))
        elif image.ndim == 2:
            grey = np.ascontiguousarray(image)
            yield grey
            if self.dark:
                yield cv2.bitwise_not(grey)
        else:
            raise ValueError("the pre-screen takes (rows, columns) or (rows, columns, 3) images")

    def lines(self, image: npt.NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
        """The line candidates of a grey ``uint8`` image's bright strokes, as
        ``(left, top, width, height)`` (for tuning and tests)."""
        return self._chains(np.ascontiguousarray(image), first_only=False)

    def _has_line(self, grey: npt.NDArray[np.uint8]) -> bool:
        return bool(self._chains(grey, first_only=True))

    def _chains(
        self, grey: npt.NDArray[np.uint8], *, first_only: bool
    ) -> list[tuple[int, int, int, int]]:
        found: list[tuple[int, int, int, int]] = []
        for left, top, width, height, members in self._groups(grey, self.contrast):
            if members >= self.min_chars:
                found.append((left, top, width, height))
                if first_only:
                    break
        return found

    def _groups(
        self, grey: npt.NDArray[np.uint8], contrast: int
    ) -> list[tuple[int, int, int, int, int]]:
        """Groups of side-by-side character-shaped components: ``(left, top, width, height,
        members)``."""
        cv2 = self._cv2
        # the background: an opening of the slightly smoothed image (on the raw image the
        # opening follows the noise's minima and every noise peak looks like a stroke)
        background = cv2.morphologyEx(cv2.blur(grey, (3, 3)), cv2.MORPH_OPEN, self._square)
        # 1 where the stroke stands ``contrast`` or more above the background (>= contrast)
        _, mask = cv2.threshold(cv2.subtract(grey, background), contrast - 1, 1, cv2.THRESH_BINARY)
        stats = component_stats(cv2, mask)
        if not len(stats):
            return []
        left, top, width, height, area = (stats[:, i].astype(np.int64) for i in range(5))
        keep = (
            (height >= self.min_height)
            & (height <= self.max_height)
            & (width <= height * 12)
            & (area >= 0.08 * width * height)
            & ((area <= 0.95 * width * height) | (width * 3 <= height))  # solid: only bars
        )
        if not keep.any():
            return []
        left, top, width, height = left[keep], top[keep], width[keep], height[keep]
        order = np.argsort(left, kind="stable")
        left, top, width, height = left[order], top[order], width[order], height[order]
        return _link(left, top, width, height)


def _link(
    left: npt.NDArray[np.int64],
    top: npt.NDArray[np.int64],
    width: npt.NDArray[np.int64],
    height: npt.NDArray[np.int64],
) -> list[tuple[int, int, int, int, int]]:
    """Groups of side-by-side components (sorted by ``left``): ``(left, top, width, height,
    members)``, in the order of their first member; a group of one bar-shaped component
    (three times as tall as wide or more) is none.

    Two components are linked when the second starts within about one character height of
    the first's right edge (and not more than 2 pixels inside it), their heights are within a
    factor of two, and their tops or bottoms within a quarter of the taller one's height. All
    pairs are tested at once; the groups are the linked pairs' connected sets."""
    count = len(left)
    right = left + width
    bottom = top + height
    # every pair (i, j), j > i, whose left edge lies within i's reach
    reach = right + (1.2 * height).astype(np.int64) + 2
    ends = np.searchsorted(left, reach, side="right")
    spans = np.maximum(ends - np.arange(count) - 1, 0)
    i = np.repeat(np.arange(count), spans)
    offsets = np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    j = i + 1 + offsets
    both = np.maximum(height[j], height[i])
    similar = (np.minimum(height[j], height[i]) * 2 >= both) & (left[j] >= right[i] - 2)
    aligned = (np.abs(top[j] - top[i]) * 4 <= both) | (np.abs(bottom[j] - bottom[i]) * 4 <= both)
    linked = similar & aligned
    parent = list(range(count))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a_index, b_index in zip(i[linked].tolist(), j[linked].tolist(), strict=True):
        a, b = root(a_index), root(b_index)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the root is a group's first member
    groups: dict[int, list[int]] = {}
    for k in range(count):
        groups.setdefault(root(k), []).append(k)
    found: list[tuple[int, int, int, int, int]] = []
    for members in groups.values():
        if len(members) == 1 and width[members[0]] * 3 <= height[members[0]]:
            continue  # a lone bar ("1", "l", a ruler tick, a sliver of a curved edge)
        index = np.asarray(members)
        x0, y0 = int(left[index].min()), int(top[index].min())
        x1, y1 = int(right[index].max()), int(bottom[index].max())
        found.append((x0, y0, x1 - x0, y1 - y0, len(members)))
    return found


#: Bands of the mask separated by fewer empty rows than this are labelled together (one
#: OpenCV call per band has a cost of its own); where the bands' boxes cover more than
#: ``WHOLE_SHARE`` of the mask, it is labelled whole.
BAND_GAP = 16
WHOLE_SHARE = 0.7


def component_stats(cv2: Any, mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """``connectedComponentsWithStats(mask, 8)``'s statistics of every component but the
    background (left, top, width, height, area per row), labelled band by band: no
    component crosses a row without a set pixel (8-connected neighbours are at most one row
    apart), so the rows of the mask that hold set pixels are cut into bands at the empty
    rows between them and each band is labelled within the box of its set pixels (the whole
    mask at once where that leaves little out). The same
    components as labelling the whole mask, in an order of their own (callers sort them),
    and on a sparse mask (a radiograph's strokes, an ultrasound frame's text and speckle) a
    fraction of the pixels to scan."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return np.zeros((0, 5), np.int32)
    cuts = np.flatnonzero(np.diff(rows) > BAND_GAP)
    starts = rows[np.concatenate(([0], cuts + 1))]
    ends = rows[np.concatenate((cuts, [rows.size - 1]))] + 1
    boxes = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        x, y, width, height = cv2.boundingRect(mask[start:end])
        boxes.append((x, start + y, width, height))
    if sum(w * h for _, _, w, h in boxes) > WHOLE_SHARE * mask.size:
        boxes = [(0, 0, int(mask.shape[1]), int(mask.shape[0]))]  # little to leave out
    found: list[npt.NDArray[np.int32]] = []
    for x, y, width, height in boxes:
        part = mask[y : y + height, x : x + width]
        count, _, stats, _ = cv2.connectedComponentsWithStats(
            part, connectivity=8, ltype=label_type(cv2, part)
        )
        if count > 1:
            placed = stats[1:, :5].astype(np.int32)
            placed[:, 0] += x
            placed[:, 1] += y
            found.append(placed)
    return np.concatenate(found) if found else np.zeros((0, 5), np.int32)


def label_type(cv2: Any, mask: npt.NDArray[np.uint8]) -> int:
    """The label type for connected components of ``mask``: 16-bit where the labels surely fit
    (fewer set pixels than 65535, so fewer components), which OpenCV labels about three times
    as fast as 32-bit, with the same components and statistics."""
    return int(cv2.CV_16U if cv2.countNonZero(mask) < 65535 else cv2.CV_32S)
