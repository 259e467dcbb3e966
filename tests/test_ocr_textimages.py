"""benchmarks/textimages.py: deterministic scenes and exact ground truth."""

from __future__ import annotations

from io import BytesIO
from types import ModuleType

import numpy as np
import pytest
from pydicom import dcmread


@pytest.mark.parametrize(
    ("kind", "shape", "dtype"),
    [
        ("CT", (512, 512), np.uint16),
        ("DX", (625, 512), np.uint16),
        ("MONO1", (312, 256), np.uint16),
        ("US", (600, 800, 3), np.uint8),
        ("US-cine", (8, 600, 800, 3), np.uint8),
    ],
)
def test_scenes_are_deterministic_and_shaped(
    textimages: ModuleType, kind: str, shape: tuple[int, ...], dtype: type
) -> None:
    first = textimages.make(kind, 11, scale=0.25)
    again = textimages.make(kind, 11, scale=0.25)
    assert first.image.shape == first.stored.shape == shape
    assert first.image.dtype == np.uint8 and first.stored.dtype == dtype
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.stored, again.stored)
    assert [(x.left, x.top, x.width, x.height, x.text) for x in first.lines] == [
        (x.left, x.top, x.width, x.height, x.text) for x in again.lines
    ]
    assert not np.array_equal(first.image, textimages.make(kind, 12, scale=0.25).image)


@pytest.mark.parametrize("kind", ["CT", "DX", "MONO1", "US", "US-cine"])
def test_lines_are_inside_apart_and_inked(textimages: ModuleType, kind: str) -> None:
    item = textimages.make(kind, 5, scale=0.5)
    rows, columns = item.frames()[0].shape[:2]
    assert len(item.lines) >= 8
    for frame in range(len(item.frames())):
        lines = item.frame_lines(frame)
        for line in lines:
            assert 0 <= line.left < line.right <= columns and 0 <= line.top < line.bottom <= rows
            assert line.ink.shape == (line.height, line.width)
            # the box is the ink's tight box
            assert line.ink[0].any() and line.ink[-1].any()
            assert line.ink[:, 0].any() and line.ink[:, -1].any()
            assert len(line.text) >= 2
        for a in lines:
            for b in lines:
                if a is not b:
                    apart = a.right <= b.left or b.right <= a.left
                    assert apart or a.bottom <= b.top or b.bottom <= a.top
    assert textimages.make(kind, 5, scale=0.5, text=False).lines == ()


def test_ink_coverage_counts_ink_pixels(textimages: ModuleType) -> None:
    ink = np.zeros((4, 10), bool)
    ink[:, :5] = True  # 20 ink pixels on the left half
    line = textimages.Line(100, 50, 10, 4, "AB", ink)
    assert textimages.ink_coverage(line, []) == 0.0
    assert textimages.ink_coverage(line, [(100, 50, 10, 4)]) == 1.0
    assert textimages.ink_coverage(line, [(105, 0, 100, 100)]) == 0.0
    assert textimages.ink_coverage(line, [(0, 0, 103, 52)]) == 6 / 20
    assert textimages.ink_coverage(line, [(0, 0, 103, 52), (0, 0, 102, 200)]) == 10 / 20


def test_to_dataset_round_trips_the_stored_values(textimages: ModuleType) -> None:
    for item in (textimages.make("CT", 1), textimages.make_us_cine(1, frames=2)):
        buffer = BytesIO()
        ds = textimages.to_dataset(item)
        ds.save_as(buffer, enforce_file_format=True)
        back = dcmread(BytesIO(buffer.getvalue()))
        assert np.array_equal(back.pixel_array, item.stored)
        assert back.BurnedInAnnotation == "YES"
