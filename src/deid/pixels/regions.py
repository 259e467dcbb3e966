"""Reading only the places of a frame where text may be: crops, and exact reuse of their reads.

A detector's cost grows with the pixels it is given, and burned-in text fills a small part of
a frame (corner blocks, a banner). When the pre-screen can say *where* text may be
(:meth:`deid.ocr.prescreen.TextPrescreen.candidates`) and the engine finds in a crop what it
finds there in the whole image (``reads_crops``, e.g. :class:`deid.ocr.rapid.RapidOcr`), the
pixel pass reads crops:

1. :func:`plan_places`: each candidate is grown by a margin (:data:`ACROSS` character heights
   left and right, :data:`DOWN` above and below, at least :data:`MARGIN_ACROSS` /
   :data:`MARGIN_DOWN` pixels), and overlapping rectangles are merged until none overlap.
   When the places cover more than :data:`FULL_FRAME_SHARE` of the frame, or there are more
   than :data:`MAX_CANDIDATES` candidates, the whole frame is read instead.
2. :class:`CropReader` cuts each place out of the 8-bit image (grown to a size the engine
   reads without resampling, where it says which: ``crop_size``) and detects in it; an
   engine that frames a crop by its sides (``detect_crop``, e.g. RapidOcr's replicated
   border only where the crop meets the image's edge: inside, the place's margin is the
   image's own context) is told which sides are the image's edges. A box
   that reaches an inner edge of its crop (text may go on past it) grows the crop on that
   side and the crop is read again, until no box does (or, after :data:`MAX_GROWTH` times,
   the whole image is read).
3. Every read is kept by the digest of the crop's pixels: a crop whose pixels are identical
   to one already read (the unchanged text of a loop's frames, a place blanking did not
   touch, the blanked frame read back after writing) gets the stored result without a read.
   Same pixels in, same boxes out: the reuse is exact. The store lives as long as the
   reader, one object's pixel pass.

What is not inside a place is not read: the pre-screen's candidates decide what the detector
sees. They are looser than its text/no-text gate (a single character-shaped stroke group is
a candidate), and the synthetic and corpus recall benchmarks (``benchmarks/bench_pixels.py``,
``benchmarks/corpus_recall.py``) measure the two together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from deid.ocr import OcrEngine, TextBox

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: ``(left, top, width, height)`` of a place where text may be, in the image's pixels.
Candidate = tuple[int, int, int, int]
#: ``image -> candidates``: where text may be in an 8-bit image.
Candidates = Callable[["npt.NDArray[np.uint8]"], Sequence[Candidate]]
#: ``(left, top, right, bottom)``: a rectangle of the image, right and bottom exclusive.
Place = tuple[int, int, int, int]

#: Margin added left and right / above and below each candidate, in candidate heights, and
#: at least in pixels.
ACROSS = 1.0
DOWN = 0.5
MARGIN_ACROSS = 16
MARGIN_DOWN = 8
#: Places covering more of the frame than this are read as the whole frame.
FULL_FRAME_SHARE = 0.5
#: More candidates than this (a noisy or text-filled frame): the whole frame is read.
MAX_CANDIDATES = 256
#: How many times a crop grows because a box reached its edge before the frame is read whole.
MAX_GROWTH = 4
#: A box this close to an inner edge of its crop (in pixels) reaches it.
EDGE = 2
#: Pixels of image around a place that the pre-screen sees when it looks there again (more
#: than its top-hat square and smoothing reach).
CONTEXT = 24


def grow(candidate: Candidate, rows: int, columns: int) -> Place:
    """``candidate`` with its margin (see the module), clipped to the image."""
    left, top, width, height = candidate
    across = max(MARGIN_ACROSS, round(ACROSS * height))
    down = max(MARGIN_DOWN, round(DOWN * height))
    return (
        max(0, left - across),
        max(0, top - down),
        min(columns, left + width + across),
        min(rows, top + height + down),
    )


def merge(places: Iterable[Place]) -> list[Place]:
    """The bounding rectangles of groups of overlapping places, repeated until no two of the
    results overlap (sorted by top, then left)."""
    merged = sorted(set(places), key=lambda p: (p[1], p[0]))
    changed = True
    while changed:
        changed = False
        out: list[Place] = []
        for place in merged:
            for index, other in enumerate(out):
                if _overlap(place, other):
                    out[index] = _union(place, other)
                    changed = True
                    break
            else:
                out.append(place)
        merged = sorted(out, key=lambda p: (p[1], p[0]))
    return merged


def _overlap(a: Place, b: Place) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def overlaps(candidate: Candidate, place: Place) -> bool:
    """Whether ``candidate`` and ``place`` share a pixel."""
    left, top, width, height = candidate
    return _overlap((left, top, left + width, top + height), place)


def _union(a: Place, b: Place) -> Place:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _area(place: Place) -> int:
    return (place[2] - place[0]) * (place[3] - place[1])


def plan_places(candidates: Iterable[Candidate], rows: int, columns: int) -> list[Place]:
    """The places to read in a ``rows`` x ``columns`` image: ``candidates`` grown by their
    margins and merged; ``[whole image]`` when they cover more than
    :data:`FULL_FRAME_SHARE` of it or are more than :data:`MAX_CANDIDATES`; ``[]`` when there
    are none."""
    listed = list(candidates)
    whole = [(0, 0, columns, rows)]
    if len(listed) > MAX_CANDIDATES:
        return whole
    merged = merge(
        p for p in (grow(c, rows, columns) for c in listed) if p[2] > p[0] and p[3] > p[1]
    )
    if sum(_area(p) for p in merged) > FULL_FRAME_SHARE * rows * columns:
        return whole
    return merged


def candidates_near(
    candidates: Candidates, image: npt.NDArray[np.uint8], areas: Iterable[TextBox]
) -> list[Candidate]:
    """``candidates`` of ``image`` looked for only next to ``areas`` (each grown by its
    margin, with :data:`CONTEXT` more pixels of image around it for the search): where a
    blanked frame changed. Candidates elsewhere are those of the frame before blanking."""
    rows, columns = int(image.shape[0]), int(image.shape[1])
    return candidates_in(candidates, image, around(areas, rows, columns))


def candidates_in(
    candidates: Candidates, image: npt.NDArray[np.uint8], places: Iterable[Place]
) -> list[Candidate]:
    """``candidates`` of ``image`` that overlap ``places`` (merged), each place looked at
    with :data:`CONTEXT` more pixels of image around it."""
    rows, columns = int(image.shape[0]), int(image.shape[1])
    found: list[Candidate] = []
    for left, top, right, bottom in merge(places):
        x0, y0 = max(0, left - CONTEXT), max(0, top - CONTEXT)
        x1, y1 = min(columns, right + CONTEXT), min(rows, bottom + CONTEXT)
        for x, y, width, height in candidates(image[y0:y1, x0:x1]):
            place = (x + x0, y + y0, x + x0 + width, y + y0 + height)
            if _overlap(place, (left, top, right, bottom)):
                found.append((x + x0, y + y0, width, height))
    return found


def around(boxes: Iterable[TextBox], rows: int, columns: int) -> list[Place]:
    """Each box grown by its margin, as a place (to read next to text already found)."""
    return [grow((b.left, b.top, b.width, b.height), rows, columns) for b in boxes]


class OneScan:
    """A pre-screen's gate and candidates of an image from one scan of it: ``flagged(image)``
    then ``candidates(image)`` on the same image object scan it once (``scan(image) ->
    (flagged, candidates)``, e.g. :meth:`deid.ocr.prescreen.TextPrescreen.scan`). It keeps
    the last image it scanned: one per object's pixel pass, not shared between threads."""

    def __init__(
        self,
        scan: Callable[[npt.NDArray[np.uint8]], tuple[bool, Sequence[Candidate]]],
    ) -> None:
        self._scan = scan
        self._image: npt.NDArray[np.uint8] | None = None
        self._result: tuple[bool, Sequence[Candidate]] = (False, ())

    def _of(self, image: npt.NDArray[np.uint8]) -> tuple[bool, Sequence[Candidate]]:
        if image is not self._image:
            self._result = self._scan(image)
            self._image = image
        return self._result

    def flagged(self, image: npt.NDArray[np.uint8]) -> bool:
        """Whether the pre-screen flags ``image``."""
        return self._of(image)[0]

    def candidates(self, image: npt.NDArray[np.uint8]) -> Sequence[Candidate]:
        """Where text may be in ``image``."""
        return self._of(image)[1]


def _digest(crop: npt.NDArray[Any]) -> bytes:
    import numpy as np

    digest = hashlib.sha256()  # (faster than BLAKE2b where the CPU has SHA instructions)
    digest.update(repr((crop.shape, crop.dtype.str)).encode())
    digest.update(np.ascontiguousarray(crop).data.cast("B"))
    return digest.digest()


class CropReader:
    """Detects text in places of 8-bit images through ``engine``, one crop per place, keeping
    every read by the digest of its crop's pixels (see the module). ``calls`` counts the
    engine's reads; ``reused`` the reads saved. One reader per object: not thread-safe."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine
        self.calls = 0
        self.reused = 0
        self._fit: Callable[..., tuple[int, int]] | None = getattr(engine, "crop_size", None)
        self._crop: Callable[..., list[TextBox]] | None = getattr(engine, "detect_crop", None)
        self._read: dict[bytes, list[TextBox]] = {}
        self._fresh: set[bytes] = set()  # read together, not yet taken by their place
        self._keys: dict[Place, bytes] | None = None
        self.last_places: list[Place] = []

    def read(self, image: npt.NDArray[np.uint8], places: Iterable[Place]) -> list[TextBox]:
        """Every box found in ``places`` of ``image``, in the image's pixels.
        ``last_places``: the places read in the end (fitted and grown)."""
        rows, columns = int(image.shape[0]), int(image.shape[1])
        fitted = [self._fitted(place, rows, columns) for place in places]
        self._keys = {}  # the keys of this image's places, while it is read
        try:
            self._read_together(image, fitted)
            found: list[TextBox] = []
            self.last_places = []
            for place in fitted:
                found += self._read_place(image, place)
        finally:
            self._keys = None
        return found

    def _read_together(self, image: npt.NDArray[np.uint8], places: Sequence[Place]) -> None:
        """Reads the ``places`` of ``image`` not read before in one call, where the engine
        reads several crops at once (``detect_crops``: same-sized crops in one detector
        run): their reads are then known, as if each had been read alone."""
        together: Callable[..., list[list[TextBox]]] | None = getattr(
            self.engine, "detect_crops", None
        )
        if together is None or self._crop is None or len(places) < 2:
            return
        rows, columns = int(image.shape[0]), int(image.shape[1])
        wanted: dict[bytes, tuple[npt.NDArray[np.uint8], tuple[bool, bool, bool, bool]]] = {}
        for place in places:
            key = self._key(image, place)
            if key not in self._read and key not in wanted:
                left, top, right, bottom = place
                wanted[key] = (image[top:bottom, left:right], _outer(place, rows, columns))
        if len(wanted) < 2:
            return
        for key, boxes in zip(wanted, together(list(wanted.values())), strict=True):
            self._read[key] = list(boxes)
            self.calls += 1
            self._fresh.add(key)

    def known(self, image: npt.NDArray[np.uint8], place: Place) -> bool:
        """Whether ``place`` of ``image`` (as fitted) holds pixels already read."""
        rows, columns = int(image.shape[0]), int(image.shape[1])
        return self._key(image, self._fitted(place, rows, columns)) in self._read

    def _key(self, image: npt.NDArray[np.uint8], place: Place) -> bytes:
        """What a read of ``place`` depends on: its pixels, and which of its sides are the
        image's edges (where the engine frames a crop by its sides, ``detect_crop``)."""
        if self._keys is not None and place in self._keys:
            return self._keys[place]
        left, top, right, bottom = place
        key = _digest(image[top:bottom, left:right])
        if self._crop is not None:
            key += bytes(_outer(place, int(image.shape[0]), int(image.shape[1])))
        if self._keys is not None:
            self._keys[place] = key
        return key

    def _read_place(self, image: npt.NDArray[np.uint8], place: Place) -> list[TextBox]:
        rows, columns = int(image.shape[0]), int(image.shape[1])
        for _ in range(MAX_GROWTH + 1):
            boxes = self._boxes(image, place)
            grown = self._grown(place, boxes, rows, columns)
            if grown == place:
                self.last_places.append(place)
                return boxes
            place = self._fitted(grown, rows, columns)
        place = (0, 0, columns, rows)
        self.last_places.append(place)
        return self._boxes(image, place)

    def _boxes(self, image: npt.NDArray[np.uint8], place: Place) -> list[TextBox]:
        left, top, right, bottom = place
        crop = image[top:bottom, left:right]
        key = self._key(image, place)
        boxes = self._read.get(key)
        fresh = key in self._fresh  # read just now, with other places: not a reuse
        self._fresh.discard(key)
        if boxes is None:
            if self._crop is not None:
                outer = _outer(place, int(image.shape[0]), int(image.shape[1]))
                boxes = list(self._crop(crop, outer))
            else:
                boxes = list(self.engine.detect(crop))
            self.calls += 1
            self._read[key] = boxes
        elif not fresh:
            self.reused += 1
        if left == 0 and top == 0:
            return list(boxes)
        return [
            TextBox(b.left + left, b.top + top, b.width, b.height, b.confidence, b.text)
            for b in boxes
        ]

    @staticmethod
    def _grown(place: Place, boxes: Sequence[TextBox], rows: int, columns: int) -> Place:
        """``place`` grown on every inner side that a box reaches (by two box heights)."""
        left, top, right, bottom = place
        new_left, new_top, new_right, new_bottom = place
        for box in boxes:
            reach = max(MARGIN_ACROSS, 2 * box.height)
            if left > 0 and box.left <= left + EDGE:
                new_left = min(new_left, max(0, left - reach))
            if right < columns and box.right >= right - EDGE:
                new_right = max(new_right, min(columns, right + reach))
            if top > 0 and box.top <= top + EDGE:
                new_top = min(new_top, max(0, top - reach))
            if bottom < rows and box.bottom >= bottom - EDGE:
                new_bottom = max(new_bottom, min(rows, bottom + reach))
        return (new_left, new_top, new_right, new_bottom)

    def _fitted(self, place: Place, rows: int, columns: int) -> Place:
        """``place`` grown (inside the image) to the size the engine reads without
        resampling, where the engine says which (``crop_size``)."""
        if self._fit is None:
            return place
        left, top, right, bottom = place
        if self._crop is not None:
            want_h, want_w = self._fit(bottom - top, right - left, _outer(place, rows, columns))
        else:
            want_h, want_w = self._fit(bottom - top, right - left)
        left, right = _widen(left, right, want_w, columns)
        top, bottom = _widen(top, bottom, want_h, rows)
        return (left, top, right, bottom)


def _outer(place: Place, rows: int, columns: int) -> tuple[bool, bool, bool, bool]:
    """Which sides of ``place`` (left, top, right, bottom) are the image's edges."""
    left, top, right, bottom = place
    return (left == 0, top == 0, right == columns, bottom == rows)


def _widen(start: int, end: int, size: int, limit: int) -> tuple[int, int]:
    """``[start, end)`` grown to ``size`` (half on each side, then whatever fits) within
    ``[0, limit)``."""
    extra = size - (end - start)
    if extra <= 0:
        return start, end
    start = max(0, start - extra // 2)
    end = min(limit, start + size)
    start = max(0, end - size)
    return start, end
