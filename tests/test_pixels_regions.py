"""Reading only the places the pre-screen flags: planning places, crops, exact reuse, and the
pixel pass reading crops end to end (with an ink-finding stand-in detector)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from deid import ResidualPhiError
from deid.ocr import StaticOcr, TextBox
from deid.pixels import clean_pixels
from deid.pixels.regions import (
    MAX_CANDIDATES,
    CropReader,
    OneScan,
    candidates_near,
    grow,
    merge,
    overlaps,
    plan_places,
)
from tests.test_pixels_support import Spec, build, decode_independently, rewrite


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of every run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def ink_boxes(image: np.ndarray) -> list[TextBox]:
    """One box per block of bright (>= 128) pixels: split where no column holds ink, then
    where no row of that slice does (the test images keep their blocks apart)."""
    grey = image if image.ndim == 2 else image.max(axis=2)
    ink = grey >= 128
    boxes = []
    for c0, c1 in _runs(ink.any(axis=0)):
        for r0, r1 in _runs(ink[:, c0:c1].any(axis=1)):
            boxes.append(TextBox(c0, r0, c1 - c0, r1 - r0))
    return boxes


def ink_candidates(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(b.left, b.top, b.width, b.height) for b in ink_boxes(image)]


class InkEngine:
    """Finds ink blocks; records the shape of every image it is given."""

    name = "ink"
    recognizes = False

    def __init__(self, half: bool = False) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.half = half  # return only the left half of each block (a detector that cuts)

    def detect(self, image: np.ndarray) -> list[TextBox]:
        self.shapes.append(tuple(image.shape))
        boxes = ink_boxes(image)
        if self.half:
            boxes = [TextBox(b.left, b.top, max(1, b.width // 2), b.height) for b in boxes]
        return boxes


# -- planning -----------------------------------------------------------------------------


def test_grow_adds_one_height_across_and_half_down_with_minimums() -> None:
    assert grow((100, 100, 50, 40), 1000, 1000) == (60, 80, 190, 160)
    assert grow((100, 100, 50, 10), 1000, 1000) == (84, 92, 166, 118)  # the minimums: 16, 8
    assert grow((5, 3, 20, 10), 30, 40) == (0, 0, 40, 21)  # clipped to the image


def test_merge_joins_overlapping_places_transitively() -> None:
    places = [(0, 0, 10, 10), (8, 8, 20, 20), (19, 0, 30, 9), (50, 50, 60, 60)]
    # the first two overlap; their union (0, 0, 20, 20) then overlaps the third
    assert merge(places) == [(0, 0, 30, 20), (50, 50, 60, 60)]
    assert merge([(0, 0, 10, 10), (10, 0, 20, 10)]) == [(0, 0, 10, 10), (10, 0, 20, 10)]
    assert merge([]) == []


def test_a_candidate_overlaps_a_place_when_they_share_a_pixel() -> None:
    place = (10, 10, 20, 20)  # right and bottom exclusive
    assert overlaps((19, 19, 1, 1), place)
    assert overlaps((0, 0, 11, 11), place)
    assert not overlaps((20, 10, 5, 5), place)  # starts at the place's right edge
    assert not overlaps((0, 0, 10, 30), place)  # ends where the place starts


def test_plan_places_reads_the_whole_frame_when_places_would_cover_most_of_it() -> None:
    assert plan_places([], 100, 200) == []
    assert plan_places([(20, 20, 30, 10)], 100, 200) == [(4, 12, 66, 38)]
    big = [(0, 0, 150, 60)]  # grown: rows 0..90, columns 0..200: 90 % of the frame
    assert plan_places(big, 100, 200) == [(0, 0, 200, 100)]
    many = [(i * 3 % 190, i % 90, 2, 5) for i in range(MAX_CANDIDATES + 1)]
    assert plan_places(many, 1000, 1000) == [(0, 0, 1000, 1000)]


# -- the crop reader ----------------------------------------------------------------------


def test_crops_are_read_and_boxes_come_back_in_image_pixels() -> None:
    image = np.zeros((100, 300), np.uint8)
    image[20:30, 40:80] = 255
    image[60:70, 200:260] = 255
    engine = InkEngine()
    reader = CropReader(engine)
    boxes = reader.read(image, [(20, 10, 100, 40), (180, 50, 280, 80)])
    assert boxes == [TextBox(40, 20, 40, 10), TextBox(200, 60, 60, 10)]
    assert engine.shapes == [(30, 80), (30, 100)]
    assert (reader.calls, reader.reused) == (2, 0)
    assert reader.last_places == [(20, 10, 100, 40), (180, 50, 280, 80)]


def test_identical_crop_pixels_reuse_the_read_exactly() -> None:
    first = np.zeros((100, 300), np.uint8)
    first[20:30, 40:80] = 255
    second = np.zeros((100, 300), np.uint8)
    second[60:70, 140:180] = 255  # the same block with the same surroundings, elsewhere
    engine = InkEngine()
    reader = CropReader(engine)
    assert reader.read(first, [(20, 10, 100, 40)]) == [TextBox(40, 20, 40, 10)]
    assert reader.read(second, [(120, 50, 200, 80)]) == [TextBox(140, 60, 40, 10)]
    assert (reader.calls, reader.reused) == (1, 1)
    # the reused answer is what a fresh read of that crop gives
    assert CropReader(InkEngine()).read(second, [(120, 50, 200, 80)]) == [TextBox(140, 60, 40, 10)]
    second[75, 150] = 1  # one pixel differs inside the crop: read again
    assert reader.read(second, [(120, 50, 200, 80)]) == [TextBox(140, 60, 40, 10)]
    assert (reader.calls, reader.reused) == (2, 1)


def test_a_box_at_an_inner_edge_grows_the_crop_until_it_is_inside() -> None:
    image = np.zeros((60, 300), np.uint8)
    image[20:30, 10:100] = 255  # a line longer than the place
    engine = InkEngine()
    reader = CropReader(engine)
    boxes = reader.read(image, [(0, 12, 60, 38)])
    # 0..60 (box reaches 60), 0..80 (reaches 80), 0..100 (reaches 100), 0..120: inside
    assert engine.shapes == [(26, 60), (26, 80), (26, 100), (26, 120)]
    assert boxes == [TextBox(10, 20, 90, 10)]
    assert reader.last_places == [(0, 12, 120, 38)]


def test_a_line_that_keeps_reaching_the_edge_ends_in_a_whole_frame_read() -> None:
    image = np.zeros((60, 300), np.uint8)
    image[20:30, 10:290] = 255
    engine = InkEngine()
    reader = CropReader(engine)
    assert reader.read(image, [(0, 12, 60, 38)]) == [TextBox(10, 20, 280, 10)]
    assert engine.shapes[-1] == (60, 300)
    assert len(engine.shapes) == 6  # five growing crops, then the whole image
    assert reader.last_places == [(0, 0, 300, 60)]


def test_crops_grow_to_the_size_the_engine_reads_without_resampling() -> None:
    engine = InkEngine()
    engine.crop_size = lambda rows, columns: (-(-rows // 32) * 32, -(-columns // 32) * 32)  # type: ignore[attr-defined]
    reader = CropReader(engine)
    reader.read(np.zeros((100, 100), np.uint8), [(10, 10, 30, 20)])
    assert engine.shapes == [(32, 32)]
    assert reader.last_places == [(4, 0, 36, 32)]


class SidedEngine(InkEngine):
    """An ink engine that reads crops by their sides (``detect_crop``): records the outer
    sides of every crop, and sizes crops as a framing engine would (32-multiples with 8
    pixels on each outer side)."""

    def __init__(self) -> None:
        super().__init__()
        self.outer: list[tuple[bool, bool, bool, bool]] = []

    def crop_size(
        self, rows: int, columns: int, outer: tuple[bool, bool, bool, bool]
    ) -> tuple[int, int]:
        edge_h, edge_w = 8 * (outer[1] + outer[3]), 8 * (outer[0] + outer[2])
        return -(-(rows + edge_h) // 32) * 32 - edge_h, -(-(columns + edge_w) // 32) * 32 - edge_w

    def detect_crop(self, crop: np.ndarray, outer: tuple[bool, bool, bool, bool]) -> list[TextBox]:
        self.outer.append(outer)
        return self.detect(crop)


def test_crops_are_read_by_their_sides_where_the_engine_can() -> None:
    image = np.zeros((100, 300), np.uint8)
    image[4:14, 4:40] = 255  # in the top-left corner
    image[50:60, 140:180] = 255  # inside
    engine = SidedEngine()
    reader = CropReader(engine)
    boxes = reader.read(image, [(0, 0, 50, 20), (130, 45, 190, 65)])
    assert boxes == [TextBox(4, 4, 36, 10), TextBox(140, 50, 40, 10)]
    # the corner place: 24 + 8 rows -> 32, 50 + 8 columns -> 64; the inner one: 32 x 64
    assert reader.last_places == [(0, 0, 56, 24), (128, 39, 192, 71)]
    assert engine.shapes == [(24, 56), (32, 64)]
    assert engine.outer == [(True, True, False, False), (False, False, False, False)]
    # the same pixels read with other outer sides are another read
    assert reader.known(image, (128, 39, 192, 71))
    assert not reader.known(image[:, 128:], (0, 39, 64, 71))
    reader.read(image[:, 128:], [(0, 39, 64, 71)])
    assert (reader.calls, reader.reused) == (3, 0)


class TogetherEngine(SidedEngine):
    """A sided ink engine that also reads several crops in one call (``detect_crops``)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def detect_crops(
        self, crops: list[tuple[np.ndarray, tuple[bool, bool, bool, bool]]]
    ) -> list[list[TextBox]]:
        self.batches.append(len(crops))
        return [self.detect_crop(crop, outer) for crop, outer in crops]


def test_new_places_of_an_image_are_read_together_and_then_reused() -> None:
    image = np.zeros((100, 300), np.uint8)
    image[4:14, 4:40] = 255
    image[50:60, 140:180] = 255
    image[50:60, 240:290] = 255  # a line past its place: the grown crop is read alone
    engine = TogetherEngine()
    reader = CropReader(engine)
    places = [(0, 0, 50, 20), (130, 45, 190, 65), (230, 45, 270, 65)]
    boxes = reader.read(image, places)
    alone = CropReader(SidedEngine())
    assert boxes == alone.read(image, places)  # the same boxes as read one by one
    assert reader.last_places == alone.last_places
    assert engine.batches == [3]  # the three fitted places in one call, then the growth
    assert (reader.calls, reader.reused) == (alone.calls, alone.reused) == (4, 0)
    again = reader.read(image, places)  # known pixels: nothing read, every read reused
    assert again == boxes
    assert engine.batches == [3]
    assert (reader.calls, reader.reused) == (4, 4)


def test_candidates_near_looks_only_next_to_the_areas() -> None:
    image = np.zeros((200, 400), np.uint8)
    image[50:60, 100:110] = 255  # next to the blanked area
    image[150:160, 350:360] = 255  # far from it
    seen: list[tuple[int, ...]] = []

    def candidates(sub: np.ndarray) -> list[tuple[int, int, int, int]]:
        seen.append(sub.shape)
        return ink_candidates(sub)

    found = candidates_near(candidates, image, [TextBox(60, 50, 30, 10)])
    assert found == [(100, 50, 10, 10)]
    # the area grown by its margins (16 across, 8 down) and 24 pixels of context around it
    assert seen == [(74, 110)]


def test_one_scan_serves_the_gate_and_the_candidates() -> None:
    calls: list[int] = []

    def scan(image: np.ndarray) -> tuple[bool, list[tuple[int, int, int, int]]]:
        calls.append(id(image))
        return True, [(1, 2, 3, 4)]

    once = OneScan(scan)
    image = np.zeros((8, 8), np.uint8)
    assert once.flagged(image) is True
    assert once.candidates(image) == [(1, 2, 3, 4)]
    assert len(calls) == 1
    once.candidates(np.zeros((8, 8), np.uint8))  # another image: scanned
    assert len(calls) == 2


# -- the pixel pass reading crops ---------------------------------------------------------

ROWS, COLUMNS = 120, 200
STATIC = (slice(10, 20), slice(10, 60))  # a name: the same on every frame
CLOCK = (slice(10, 20), slice(150, 190))  # a clock: its digits change every frame
PAD = 2


def loop(frames: int) -> tuple[Any, np.ndarray]:
    """An RGB loop: dark noise-free background, a static bright block, a clock block whose
    outline is fixed and whose inside changes every frame."""
    spec = Spec("RGB", 8, frames=frames, rows=ROWS, columns=COLUMNS)
    ds, _ = build(spec)
    values = np.full((frames, ROWS, COLUMNS, 3), 30, np.uint8)
    for index in range(frames):
        values[index][STATIC] = 255
        clock = values[index][CLOCK]
        clock[0, :], clock[-1, :], clock[:, 0], clock[:, -1] = 255, 255, 255, 255
        clock[2:8, 3 + 4 * index : 5 + 4 * index] = 255  # the "digit" of this frame
    ds.PixelData = values.tobytes()
    return rewrite(ds), values


def padded(region: tuple[slice, slice]) -> tuple[slice, slice]:
    rows, columns = region
    return (
        slice(max(0, rows.start - PAD), rows.stop + PAD),
        slice(max(0, columns.start - PAD), columns.stop + PAD),
    )


def test_a_loop_is_read_in_crops_and_unchanged_text_is_read_once() -> None:
    ds, before = loop(5)
    engine = InkEngine()
    report = clean_pixels(ds, engine, pad=PAD, prescreen=lambda _: True, candidates=ink_candidates)
    # frame 0: the name's and the clock's places; round 2 reads nothing (both places
    # changed, but every candidate in them lies inside a blanked box and nothing new
    # appeared next to the boxes); frames 1-4: only the clock's place (the name's crop is the
    # same pixels as in frame 0); verification: the written frames are the blanked frames
    # read clean (lossless), nothing more to read
    assert report.ocr_calls == 2 + 4
    assert len(engine.shapes) == 6
    assert all(shape[:2] != (ROWS, COLUMNS) for shape in engine.shapes)  # only crops
    out = rewrite(ds)
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    for index in range(5):
        after = decode_independently(out, index)
        expected = before[index].copy()
        expected[padded(STATIC)] = 0
        expected[padded(CLOCK)] = 0
        assert np.array_equal(after, expected)  # the boxes blanked, every other value kept
    assert report.frames_blanked == (0, 1, 2, 3, 4)


def test_round_two_reads_again_where_a_candidate_was_left_unblanked() -> None:
    ds, _ = loop(1)
    engine = InkEngine(half=True)  # finds the left half of each block
    report = clean_pixels(
        ds, engine, pad=0, prescreen=lambda _: True, candidates=ink_candidates, verify=False
    )
    # round 1 blanks the left halves of the name (columns 10-60) and the clock (150-190);
    # both candidates reach outside the blanked halves: their places are read again, and
    # round 2 blanks the left half of what is left of each
    assert [(b.left, b.top, b.width, b.height) for b in report.blanked] == [
        (10, 10, 25, 10),
        (150, 10, 20, 10),
        (35, 10, 12, 10),
        (170, 10, 10, 10),
    ]
    assert report.ocr_calls == 4
    assert all(shape[:2] != (ROWS, COLUMNS) for shape in engine.shapes)  # only crops


def test_round_two_reads_nothing_where_blanking_wiped_out_a_candidate_of_several_lines() -> None:
    ds, _ = loop(1)
    values = decode_independently(ds, 0).copy()
    values[26:36, 10:40] = 255  # a second, shorter line under the name
    ds.PixelData = values.tobytes()
    engine = InkEngine()

    def block(image: np.ndarray) -> list[tuple[int, int, int, int]]:
        # one candidate for the name's two lines (as the pre-screen's group of a block)
        found = ink_candidates(image)
        lines = [c for c in found if c[0] < 100]
        if not lines:
            return found
        x0, y0 = min(c[0] for c in lines), min(c[1] for c in lines)
        x1 = max(c[0] + c[2] for c in lines)
        y1 = max(c[1] + c[3] for c in lines)
        return [(x0, y0, x1 - x0, y1 - y0), *(c for c in found if c[0] >= 100)]

    report = clean_pixels(ds, engine, pad=PAD, prescreen=lambda _: True, candidates=block)
    # the block's candidate (columns 10-60, rows 10-36) is in no blanked box, nor in the two
    # together (rows 22-23 between the lines are left), but nothing the pre-screen outlines
    # is left there: round 2 reads nothing
    assert [(b.left, b.top, b.width, b.height) for b in report.blanked] == [
        (8, 8, 54, 14),
        (8, 24, 54, 14),
        (148, 8, 44, 14),
    ]
    assert report.ocr_calls == 2  # the block's place and the clock's, once each


def test_crops_blank_exactly_what_whole_frames_blank() -> None:
    ds_crops, _ = loop(3)
    ds_whole, _ = loop(3)
    clean_pixels(
        ds_crops, InkEngine(), pad=PAD, prescreen=lambda _: True, candidates=ink_candidates
    )
    whole = InkEngine()
    clean_pixels(ds_whole, whole, pad=PAD, prescreen=lambda _: True)
    assert all(shape[:2] == (ROWS, COLUMNS) for shape in whole.shapes)
    assert bytes(ds_crops.PixelData) == bytes(ds_whole.PixelData)


def test_text_outside_the_candidates_places_is_not_read() -> None:
    ds, before = loop(1)
    values = before.copy()
    values[0][90:100, 20:60] = 255  # text the candidates do not list
    ds.PixelData = values.tobytes()
    engine = InkEngine()

    def only_the_top(image: np.ndarray) -> list[tuple[int, int, int, int]]:
        return [c for c in ink_candidates(image) if c[1] < 50]

    clean_pixels(ds, engine, pad=PAD, prescreen=lambda _: True, candidates=only_the_top)
    after = decode_independently(rewrite(ds), 0)
    assert np.array_equal(after[90:100, 20:60], values[0][90:100, 20:60])
    assert all(shape[0] < 60 for shape in engine.shapes)  # its rows were never given


def test_text_left_after_the_rounds_still_fails_verification_when_reading_crops() -> None:
    ds, _ = loop(1)
    # a detector that finds only the left half of each block: every round leaves a half
    with pytest.raises(ResidualPhiError, match="pixel frame 0"):
        clean_pixels(
            ds, InkEngine(half=True), pad=0, prescreen=lambda _: True, candidates=ink_candidates
        )


def test_a_frame_the_prescreen_clears_is_not_read() -> None:
    ds, before = loop(2)
    engine = InkEngine()
    report = clean_pixels(ds, engine, pad=PAD, prescreen=lambda _: False, candidates=ink_candidates)
    assert (report.ocr_calls, report.frames_skipped, engine.shapes) == (0, 2, [])
    out = rewrite(ds)
    assert np.array_equal(decode_independently(out, 1), before[1])


def test_static_ocr_without_candidates_reads_whole_frames() -> None:
    ds, _ = loop(1)
    engine = StaticOcr([TextBox(10, 10, 50, 10)])
    report = clean_pixels(ds, engine, pad=PAD)
    assert report.ocr_calls == 2  # the frame, then the blanked frame (round 2)
