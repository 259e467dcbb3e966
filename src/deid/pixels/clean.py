"""The pixel pass: OCR every frame and overlay, blank what is found, re-encode, verify.

:func:`clean_pixels` works on a data set in place and returns a :class:`PixelReport`
(coordinates, engine and confidence of every blanked box; never any text). It does not set
Burned In Annotation or any other marker: the engine does that once the pass succeeded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from deid.errors import ResidualPhiError
from deid.ocr import OcrEngine, TextBox
from deid.pixels.blank import Blanked, blank_frame, clear_high_bits, fill_areas, fill_values
from deid.pixels.encode import JPEG_BASELINE, EncodeResult, write_frames
from deid.pixels.frames import (
    PixelLayout,
    decode_encapsulated,
    decoder_for,
    frames_with_hidden_bits,
    has_pixels,
    iter_frames,
    native_frame_from_bytes,
    read_layout,
)
from deid.pixels.icons import ICON_IMAGE_SEQUENCE, rebuild_icon, remove_icons
from deid.pixels.normalise import grey_window, to_uint8
from deid.pixels.overlays import (
    OverlayPlane,
    blank_overlay,
    overlay_image,
    overlay_planes,
    remove_overlays,
)
from deid.pixels.regions import (
    Candidate,
    Candidates,
    CropReader,
    Place,
    around,
    candidates_in,
    overlaps,
    plan_places,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from pydicom.dataset import Dataset

Select = Callable[[list[TextBox]], Iterable[TextBox]]
Window = tuple[float, float] | None
Prescreen = Callable[["npt.NDArray[np.uint8]"], bool]

#: How many times a frame with text is read by default (see :func:`clean_pixels`).
ROUNDS = 2

#: A box found again after blanking is accepted when it lies within this many pixels of a
#: blanked area (OCR boxes wobble by a pixel or two on the blanked image).
VERIFY_TOLERANCE = 2

#: Bytes of frames one object's pass keeps to compare frames value by value (no digest to
#: compute): the blanked frames the engine read clean (verification compares the written
#: frames with them; past this, their SHA-256 digests), and, as much again, up to
#: :data:`RECENT` recent distinct frames of a multi-frame object (a frame equal to one of
#: them is not read again).
KEEP_BYTES = 32 << 20
RECENT = 8


@dataclass(frozen=True, slots=True)
class OverlayBlanked:
    """One box cleared in one frame of an overlay plane."""

    group: int
    frame: int
    left: int
    top: int
    width: int
    height: int
    engine: str
    confidence: float


@dataclass(frozen=True, slots=True)
class PixelReport:
    """What the pixel pass did (for the audit: no text, no pixel values)."""

    frames: int = 0
    blanked: tuple[Blanked, ...] = ()
    ocr_calls: int = 0
    frames_skipped: int = 0
    high_bits_cleared: tuple[int, ...] = ()
    overlays_blanked: tuple[OverlayBlanked, ...] = ()
    overlays_removed: tuple[int, ...] = ()
    icons_removed: int = 0
    icon_rebuilt: bool = False
    encode: EncodeResult | None = None
    verified: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def frames_blanked(self) -> tuple[int, ...]:
        """The frames in which at least one box was blanked."""
        return tuple(sorted({b.frame for b in self.blanked}))

    def boxes_by_frame(self) -> dict[int, tuple[Blanked, ...]]:
        """The blanked boxes of each frame that has any."""
        found: dict[int, list[Blanked]] = {}
        for item in self.blanked:
            found.setdefault(item.frame, []).append(item)
        return {frame: tuple(items) for frame, items in sorted(found.items())}


def _digest(array: npt.NDArray[Any]) -> bytes:
    import numpy as np

    digest = hashlib.sha256()  # (faster than BLAKE2b where the CPU has SHA instructions)
    digest.update(repr((array.shape, array.dtype.str)).encode())
    digest.update(np.ascontiguousarray(array).data.cast("B"))
    return digest.digest()


def _equal(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    """Whether ``a`` and ``b`` hold the same values in the same shape and type (a sample of
    values first: frames that differ mostly differ there)."""
    import numpy as np

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.size > 4096:
        step = a.size // 1024
        if not np.array_equal(a.reshape(-1)[::step], b.reshape(-1)[::step]):
            return False
    return bool(np.array_equal(a, b))


def _matches(frame: npt.NDArray[Any], reference: npt.NDArray[Any] | bytes) -> bool:
    if isinstance(reference, bytes):
        return _digest(frame) == reference
    return _equal(frame, reference)


def _alignment(layout: PixelLayout, lossless: bool) -> tuple[int, int]:
    """Box alignment: whole chroma pairs for native 4:2:2, whole JPEG blocks for baseline."""
    if layout.native_422:
        return (2, 1)
    if layout.transfer_syntax == JPEG_BASELINE and not lossless:
        return (8, 8) if layout.samples_per_pixel == 1 else (16, 16)
    return (1, 1)


def blanked(
    decoded: npt.NDArray[Any], layout: PixelLayout, areas: Sequence[TextBox], fill: tuple[int, ...]
) -> npt.NDArray[Any]:
    """A frame as written back: the bits above Bits Stored cleared, ``areas`` (as filled by
    the scan: padded and aligned already) filled with ``fill``."""
    frame, _ = clear_high_bits(decoded, layout)
    if not frame.flags.writeable:
        frame = frame.copy()
    blank_frame(frame, areas, fill)
    result: npt.NDArray[Any] = frame
    return result


class _BlankedFrames(Mapping[int, "npt.NDArray[Any]"]):
    """Changed frames, rebuilt on demand from the original pixels (one decoded at a time)."""

    def __init__(
        self,
        ds: Dataset,
        layout: PixelLayout,
        areas: Mapping[int, list[TextBox]],
        fill: tuple[int, ...],
    ) -> None:
        self._layout = layout
        self._areas = areas
        self._fill = fill
        if layout.encapsulated:
            self._decoder: Any = decoder_for(layout)
            self._ds = ds
            self._raw = b""
        else:
            self._raw = bytes(ds.PixelData)
            self._ds = ds

    def __getitem__(self, index: int) -> npt.NDArray[Any]:
        if index not in self._areas:
            raise KeyError(index)
        if self._layout.encapsulated:
            frame = decode_encapsulated(self._decoder, self._ds, self._layout, index)
        else:
            frame = native_frame_from_bytes(self._raw, self._layout, index)
        return blanked(frame, self._layout, self._areas[index], self._fill)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._areas))

    def __len__(self) -> int:
        return len(self._areas)


def _inside(box: TextBox, areas: Sequence[TextBox], tolerance: int) -> bool:
    return any(
        box.left >= a.left - tolerance
        and box.top >= a.top - tolerance
        and box.right <= a.right + tolerance
        and box.bottom <= a.bottom + tolerance
        for a in areas
    )


def _detect(
    engine: OcrEngine, image: npt.NDArray[np.uint8], select: Select | None
) -> list[TextBox]:
    found = list(engine.detect(image))
    return list(select(found)) if select is not None else found


class _Reads:
    """How the engine reads a frame's 8-bit image: whole (``candidates`` None), or only the
    places ``candidates`` flags, crop by crop with exact reuse (:mod:`deid.pixels.regions`).
    ``calls`` counts the engine's reads."""

    def __init__(
        self, engine: OcrEngine, select: Select | None, candidates: Candidates | None
    ) -> None:
        self.engine = engine
        self.select = select
        self.candidates = candidates
        self.crops = CropReader(engine) if candidates is not None else None
        self._calls = 0
        self._before: set[Candidate] = set()  # the candidates of the last frame read whole
        self.places: list[Place] = []  # the places read in the last frame, every round

    @property
    def calls(self) -> int:
        return self._calls + (self.crops.calls if self.crops is not None else 0)

    def read(
        self, image: npt.NDArray[np.uint8], blanked: Sequence[TextBox] | None = None
    ) -> list[TextBox]:
        """The boxes ``select`` keeps in ``image``. ``blanked``: the areas blanked so far in
        the frame read last. Reading crops, the places read before whose pixels blanking did
        not change are read again (the reads are reused: no engine run); where it changed
        pixels (the places it changed, and next to the blanked areas), what the pre-screen
        still outlines in ``image`` is read, grown and planned anew: the rest of a line the
        detector cut, a word it missed next to one it found, a stroke blanking left or made
        next to a blanked box (a candidate the frame had before in a place blanking did not
        change is not read again: its read stands). A changed place where every stroke was
        blanked is not read again (a candidate of several lines included: the gaps between
        its lines' boxes hold no stroke)."""
        if self.crops is None or self.candidates is None:
            self._calls += 1
            return _detect(self.engine, image, self.select)
        rows, columns = int(image.shape[0]), int(image.shape[1])
        if blanked is None:
            found_at: Sequence[Candidate] = self.candidates(image)
            self._before = set(found_at)
            found = self.crops.read(image, plan_places(found_at, rows, columns))
            self.places = list(self.crops.last_places)
        else:
            # the places blanking did not change (the same pixels: the reads are reused);
            # where it changed pixels (the places it changed, next to the blanked areas),
            # what the pre-screen outlines in the blanked frame, but for the candidates the
            # frame had before in places blanking did not change
            kept = [p for p in self.places if self.crops.known(image, p)]
            changed = [p for p in self.places if p not in kept]
            look = [*changed, *around(blanked, rows, columns)]
            left = [
                c
                for c in candidates_in(self.candidates, image, look)
                if c not in self._before or any(overlaps(c, p) for p in changed)
            ]
            fresh = plan_places(left, rows, columns)
            found = self.crops.read(image, [*kept, *fresh])
            self.places = list(dict.fromkeys(self.crops.last_places))
        return list(self.select(found)) if self.select is not None else found

    def read_again(
        self, image: npt.NDArray[np.uint8], places: Sequence[Place] | None
    ) -> list[TextBox]:
        """The boxes ``select`` keeps in ``image`` (a frame as written), read where its
        frame was read (``places``; the whole frame when reading whole frames)."""
        if self.crops is None or places is None:
            self._calls += 1
            return _detect(self.engine, image, self.select)
        found = self.crops.read(image, places)
        return list(self.select(found)) if self.select is not None else found


class FrameScan:
    """What :func:`clean_pixels` finds and blanks, fed one decoded frame at a time (the bytes
    path from the data set, :mod:`deid.pixels.streamed` from a stream).

    After every frame: ``areas`` (index -> areas filled, for frames that change: boxes, or
    bits above Bits Stored), ``blanked``, ``high_bits``, ``calls`` (OCR reads, verification's
    included once it ran), ``skipped`` (frames the pre-screen cleared) and ``read_clean``
    (index -> the blanked frame the engine read and found clean, or its digest past
    :data:`KEEP_BYTES`: verification need not read those exact values again). ``reads`` and
    :meth:`how` are what :func:`verify_frames` needs.

    Identical frames of a multi-frame object are read once: a frame equal, value by value,
    to one of the :data:`RECENT` distinct frames before it gets that frame's boxes.
    """

    def __init__(
        self,
        ds: Dataset,
        layout: PixelLayout,
        engine: OcrEngine,
        *,
        select: Select | None,
        pad: int,
        prescreen: Prescreen | None,
        rounds: int,
        lossless: bool,
        candidates: Candidates | None = None,
    ) -> None:
        self.ds = ds
        self.layout = layout
        self.engine = engine
        self.prescreen = prescreen
        self.pad = pad
        self.rounds = rounds
        self.fill = fill_values(layout, ds)
        self.align = _alignment(layout, lossless)
        self.reads = _Reads(engine, select, candidates)
        # per distinct frame (numbered in order): boxes, grey window, places read (crops),
        # and the blanked frame read clean (or its digest)
        self.found: dict[int, list[TextBox]] = {}
        self.windows: dict[int, Window] = {}
        self.places: dict[int, list[Place]] = {}
        self.clean: dict[int, npt.NDArray[Any] | bytes] = {}
        self._recent: list[tuple[int, npt.NDArray[Any]]] = []  # (number, copy of the frame)
        self._kept = 0  # bytes of the blanked frames kept in ``clean``
        self.frame_windows: dict[int, Window] = {}
        self.frame_places: dict[int, list[Place]] = {}
        self.read_clean: dict[int, npt.NDArray[Any] | bytes] = {}
        self.areas: dict[int, list[TextBox]] = {}
        self.blanked: list[Blanked] = []
        self.high_bits: list[int] = []
        self.skipped = 0

    @property
    def calls(self) -> int:
        return self.reads.calls

    def add(self, index: int, decoded: npt.NDArray[Any], hidden: bool = False) -> None:
        """Scan frame ``index`` (``decoded``: its stored values, which may be changed in place;
        ``hidden``: its codestream keeps bits above Bits Stored)."""
        layout, ds = self.layout, self.ds
        frame, cleared = clear_high_bits(decoded, layout)
        cleared = cleared or hidden
        if cleared:
            self.high_bits.append(index)
        key = self._seen(frame)
        boxes = self.found.get(key)
        if boxes is None:
            window = self.windows[key] = grey_window(frame, layout, ds)
            image = to_uint8(frame, layout, ds, window=window)
            if self.prescreen is not None and not self.prescreen(image):
                boxes = []
                self.skipped += 1
            else:
                boxes = self.reads.read(image)
                how = (layout, ds, self.fill, self.pad, self.align, window)
                extra, clean = _more_rounds(frame, image, boxes, self.reads, self.rounds - 1, how)
                boxes = boxes + extra
                if clean is not None:
                    self._keep_clean(key, clean)
                self.places[key] = self.reads.places
            self.found[key] = boxes
        filled: list[TextBox] = []
        if boxes:
            rows, columns = int(frame.shape[0]), int(frame.shape[1])
            filled = fill_areas(boxes, rows, columns, pad=self.pad, align=self.align)
            name = self.engine.name
            self.blanked.extend(
                Blanked(index, a.left, a.top, a.width, a.height, name, a.confidence) for a in filled
            )
        if filled or cleared:
            self.areas[index] = filled
            self.frame_windows[index] = self.windows.get(key)
            if key in self.places:
                self.frame_places[index] = self.places[key]
            if key in self.clean:
                self.read_clean[index] = self.clean[key]

    def _seen(self, frame: npt.NDArray[Any]) -> int:
        """The number of ``frame``'s values: a recent distinct frame's where it equals one
        (a single frame has none to match), else a new one (kept as a recent frame: at most
        :data:`RECENT`, together within :data:`KEEP_BYTES`)."""
        if self.layout.number_of_frames > 1:
            for number, kept in self._recent[::-1]:
                if _equal(kept, frame):
                    return number
        new = len(self.found)
        if self.layout.number_of_frames > 1 and frame.nbytes <= KEEP_BYTES:
            recent = [*self._recent, (new, frame.copy())][-RECENT:]
            while sum(kept.nbytes for _, kept in recent) > KEEP_BYTES:
                del recent[0]
            self._recent = recent
        return new

    def _keep_clean(self, key: int, clean: npt.NDArray[Any]) -> None:
        """Keeps the blanked frame read clean while :data:`KEEP_BYTES` allows, else its
        digest."""
        if self._kept + clean.nbytes <= KEEP_BYTES:
            self.clean[key] = clean
            self._kept += clean.nbytes
        else:
            self.clean[key] = _digest(clean)

    def boxed(self) -> dict[int, list[TextBox]]:
        """The frames with blanked boxes (those verification reads again)."""
        return {i: a for i, a in self.areas.items() if a}

    def report(self, **rest: Any) -> PixelReport:
        """The pass's report: what the scan found and did, and ``rest`` (overlays, icons,
        encoding, verification)."""
        return PixelReport(
            frames=self.layout.number_of_frames,
            blanked=tuple(self.blanked),
            ocr_calls=self.calls,
            frames_skipped=self.skipped,
            high_bits_cleared=tuple(self.high_bits),
            **rest,
        )

    def verify(self, read: Callable[[int], npt.NDArray[Any]] | None = None) -> None:
        """:func:`verify_frames` on the frames this scan blanked (``read``: the frames as
        written; default from the data set's Pixel Data)."""
        how = (self.frame_windows, self.frame_places)
        verify_frames(self.ds, self.reads, self.boxed(), how, self.read_clean, read=read)


def clean_pixels(
    ds: Dataset,
    engine: OcrEngine,
    *,
    select: Select | None = None,
    pad: int = 2,
    prescreen: Prescreen | None = None,
    verify: bool = True,
    lossless: bool = False,
    overlays: Literal["clean", "remove"] = "clean",
    icons: Literal["remove", "rebuild"] = "remove",
    rounds: int = ROUNDS,
    candidates: Candidates | None = None,
) -> PixelReport:
    """Find text with ``engine`` in every frame and overlay plane of ``ds`` and blank it.

    For each frame (identical frames are OCR'd once; a frame for which ``prescreen(image)``
    returns ``False`` is taken as text-free): clear the bits above Bits Stored, normalise to
    8 bits, detect, keep the boxes ``select`` returns (default: all), grow them by ``pad`` and
    fill them with black in the stored values. Overlay planes are cleaned the same way (or
    removed with ``overlays="remove"``); icon images are removed (``icons="rebuild"``: a new
    top-level icon is made from the cleaned first frame where there was one). The pixels are
    then written back (:func:`deid.pixels.encode.write_frames`; ``lossless=True`` never
    writes a lossy syntax).

    ``rounds``: how many times a frame with text is read: after each blanking the engine reads
    the blanked frame again and boxes outside the blanked areas are blanked too (blanking
    shifts the OCR window, and detectors find text next to text they found), up to ``rounds``
    reads in all; ``1`` reads once.

    With ``verify`` the engine runs again on every blanked frame and overlay, read back from
    the written pixels; a box ``select`` keeps that is not inside a blanked area raises
    :class:`deid.ResidualPhiError` naming the frames.

    ``candidates`` (``image -> [(left, top, width, height), ...]``, e.g.
    :meth:`deid.ocr.prescreen.TextPrescreen.candidates`): where text may be in a frame's
    8-bit image. With it the engine reads only those places, as crops
    (:mod:`deid.pixels.regions`; for engines whose detection is local, ``reads_crops``), in
    every round and in verification; a crop whose pixels are identical to one already read
    in this object (the unchanged text of a loop's frames, a blanked frame read back) reuses
    that read. Pixels of a frame outside its candidates' places are not read by the engine.
    A later round reads the places read before where blanking changed nothing (the reads are
    reused), and, where it changed something (the places it changed, next to the blanked
    boxes), only around what the pre-screen still outlines in the blanked frame (a place
    whose every stroke was blanked is not read again); verification reads the written frame
    at the places of the frame's last round. The 8-bit image of
    a blanked frame (later rounds, verification) uses the grey window of its original.
    ``ocr_calls`` counts every engine run, one per crop. Overlay planes are always read whole.
    """
    if pad < 0:
        raise ValueError("pad must be zero or positive")
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    had_icon = ICON_IMAGE_SEQUENCE in ds
    icons_removed = remove_icons(ds)
    if overlays == "remove":
        removed = tuple(remove_overlays(ds))
        overlay_done: tuple[OverlayBlanked, ...] = ()
    else:
        removed = ()
        overlay_done = clean_overlays(ds, engine, select, pad, verify)
    if not has_pixels(ds):
        return PixelReport(
            overlays_blanked=overlay_done,
            overlays_removed=removed,
            icons_removed=icons_removed,
            verified=verify,
        )
    layout = read_layout(ds)
    scan = FrameScan(
        ds,
        layout,
        engine,
        select=select,
        pad=pad,
        prescreen=prescreen,
        rounds=rounds,
        lossless=lossless,
        candidates=candidates,
    )
    hidden = frames_with_hidden_bits(ds, layout)
    for index, decoded in enumerate(iter_frames(ds, layout)):
        scan.add(index, decoded, index in hidden)
    result = write_frames(
        ds,
        _BlankedFrames(ds, layout, scan.areas, scan.fill),
        layout=layout,
        boxes=scan.areas,
        lossless=lossless,
        verify=True,
    )
    if verify:
        scan.verify()
    icon_rebuilt = False
    if icons == "rebuild" and had_icon:
        new_layout = read_layout(ds)
        first = next(iter_frames(ds, new_layout))
        rebuild_icon(ds, to_uint8(first, new_layout, ds))
        icon_rebuilt = True
    return scan.report(
        overlays_blanked=overlay_done,
        overlays_removed=removed,
        icons_removed=icons_removed,
        icon_rebuilt=icon_rebuilt,
        encode=result,
        verified=verify,
        notes=result.notes,
    )


def _more_rounds(
    frame: npt.NDArray[Any],
    image: npt.NDArray[np.uint8],
    boxes: list[TextBox],
    reads: _Reads,
    rounds: int,
    how: tuple[PixelLayout, Dataset, tuple[int, ...], int, tuple[int, int], Window],
) -> tuple[list[TextBox], npt.NDArray[Any] | None]:
    """Boxes found by reading the blanked frame again (up to ``rounds`` more reads), and the
    blanked frame when its last read found nothing new (verification need not read those
    exact stored values again). ``image``: the frame's 8-bit image (with ``window``): the
    blanked frame's is that image with the blanked areas set to the fill's 8-bit value (the
    8-bit image is a function of each stored value alone, the window given), not a new one."""
    if rounds <= 0 or not boxes:
        return [], None
    layout, ds, fill, pad, align, window = how
    scratch = frame.copy()
    areas = blank_frame(scratch, boxes, fill, pad=pad, align=align)
    shown = _fill_shown(frame, layout, ds, fill, window)
    blanked_image = image.copy()
    blank_frame(blanked_image, areas, shown)
    extra: list[TextBox] = []
    for _ in range(rounds):
        again = reads.read(blanked_image, areas)
        new = [box for box in again if not _inside(box, areas, VERIFY_TOLERANCE)]
        if not new:
            return extra, scratch
        extra.extend(new)
        done = blank_frame(scratch, new, fill, pad=pad, align=align)
        areas.extend(done)
        blanked_image = blanked_image.copy()  # (the reads keep the image they were given)
        blank_frame(blanked_image, done, shown)
    return extra, None


def _fill_shown(
    frame: npt.NDArray[Any],
    layout: PixelLayout,
    ds: Dataset,
    fill: tuple[int, ...],
    window: Window,
) -> tuple[int, ...]:
    """The 8-bit image's value(s) of a pixel holding ``fill`` (the frame's window)."""
    import numpy as np

    shape = (1, 1) if frame.ndim == 2 else (1, 1, len(fill))
    pixel = np.asarray(fill, dtype=frame.dtype).reshape(shape)
    shown = to_uint8(pixel, layout, ds, window=window)
    return tuple(int(v) for v in shown.reshape(-1))


def verify_frames(
    ds: Dataset,
    reads: _Reads,
    areas: Mapping[int, list[TextBox]],
    how: tuple[Mapping[int, Window], Mapping[int, list[Place]]],
    read_clean: Mapping[int, npt.NDArray[Any] | bytes] | None = None,
    read: Callable[[int], npt.NDArray[Any]] | None = None,
) -> None:
    """Read every blanked frame back from the written pixel data, shown with its original's
    grey window and read where the pass read it (whole, or its places); raise on text left
    outside the blanked areas. A frame whose stored values are exactly those of the blanked
    frame the engine already read and found clean (``read_clean``: index -> that frame, or
    its SHA-256 digest) is not read again (same input, same answer: lossless outputs).
    ``read`` (index -> stored values) reads a frame as written (default: from ``ds``'s Pixel
    Data). ``reads.calls`` counts the reads made."""
    windows, places = how
    if not areas:
        return
    layout = read_layout(ds)
    if read is None:
        read = _written_frames(ds, layout)
    seen: dict[bytes, bool] = {}
    hits: list[str] = []
    for index in sorted(areas):
        frame = read(index)
        reference = read_clean.get(index) if read_clean is not None else None
        if reference is not None and _matches(frame, reference):
            continue
        key = _digest(frame) + repr((areas[index], windows.get(index), places.get(index))).encode()
        clean = seen.get(key)
        if clean is None:
            image = to_uint8(frame, layout, ds, window=windows.get(index))
            again = reads.read_again(image, places.get(index))
            clean = all(_inside(box, areas[index], VERIFY_TOLERANCE) for box in again)
            seen[key] = clean
        if not clean:
            hits.append(f"pixel frame {index}")
    if hits:
        raise ResidualPhiError(tuple(hits))


def _written_frames(ds: Dataset, layout: PixelLayout) -> Callable[[int], npt.NDArray[Any]]:
    """Frames as written in ``ds``'s Pixel Data, by index."""
    if layout.encapsulated:
        decoder = decoder_for(layout)
        return lambda index: decode_encapsulated(decoder, ds, layout, index)
    raw = bytes(ds.PixelData)
    return lambda index: native_frame_from_bytes(raw, layout, index)


def clean_overlays(
    ds: Dataset, engine: OcrEngine, select: Select | None, pad: int, verify: bool
) -> tuple[OverlayBlanked, ...]:
    done: list[OverlayBlanked] = []
    planes = overlay_planes(ds)
    for plane in planes:
        found: dict[bytes, list[TextBox]] = {}
        per_frame: dict[int, list[TextBox]] = {}
        for frame in range(plane.frames):
            image = overlay_image(ds, plane, frame)
            key = _digest(image)
            if key not in found:
                found[key] = _detect(engine, image, select) if image.any() else []
            if found[key]:
                per_frame[frame] = found[key]
        if not per_frame:
            continue
        cleared = blank_overlay(ds, plane, per_frame, pad=pad)
        for frame, areas in sorted(cleared.items()):
            done.extend(
                OverlayBlanked(
                    plane.group, frame, a.left, a.top, a.width, a.height, engine.name, a.confidence
                )
                for a in areas
            )
        if verify:
            _verify_overlay(ds, plane, engine, select, cleared)
    return tuple(done)


def _verify_overlay(
    ds: Dataset,
    plane: OverlayPlane,
    engine: OcrEngine,
    select: Select | None,
    cleared: Mapping[int, list[TextBox]],
) -> None:
    hits: list[str] = []
    for frame, areas in sorted(cleared.items()):
        image = overlay_image(ds, plane, frame)
        if not image.any():
            continue
        again = _detect(engine, image, select)
        if not all(_inside(box, areas, VERIFY_TOLERANCE) for box in again):
            hits.append(f"overlay {plane.name} frame {frame}")
    if hits:
        raise ResidualPhiError(tuple(hits))
