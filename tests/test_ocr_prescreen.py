"""TextPrescreen on generated images: every text image flagged, text-free ones not."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("cv2", reason="the pre-screen needs OpenCV (the ocr extra)")

from deid.ocr.prescreen import TextPrescreen


@pytest.fixture(scope="module")
def prescreen() -> TextPrescreen:
    return TextPrescreen()


CASES = [
    ("CT", 0, 1.0),
    ("CT", 1, 1.0),
    ("CT", 2, 1.0),
    ("DX", 0, 0.25),
    ("DX", 1, 0.5),
    ("MONO1", 0, 0.5),
    ("MONO1", 1, 1.0),
    ("US", 0, 1.0),
    ("US", 1, 1.0),
]


@pytest.mark.parametrize(("kind", "seed", "scale"), CASES)
def test_flags_text_and_clears_the_same_scene_without(
    prescreen: TextPrescreen, textimages: ModuleType, kind: str, seed: int, scale: float
) -> None:
    with_text = textimages.make(kind, seed, scale=scale)
    without = textimages.make(kind, seed, scale=scale, text=False)
    assert with_text.lines and not without.lines
    assert (prescreen(with_text.image), prescreen(without.image)) == (True, False)


def test_every_cine_frame_is_flagged(prescreen: TextPrescreen, textimages: ModuleType) -> None:
    item = textimages.make_us_cine(3, frames=3)
    assert [prescreen(frame) for frame in item.frames()] == [True, True, True]
    free = textimages.make_us_cine(3, frames=3, text=False)
    assert [prescreen(frame) for frame in free.frames()] == [False, False, False]


def test_dark_text_is_found(textimages: ModuleType) -> None:
    item = textimages.make_mono1(4, scale=0.5)  # dark text on a bright image
    assert TextPrescreen(dark=True)(item.image) is True
    dark_line = np.full((60, 200), 230, np.uint8)
    for index in range(5):
        dark_line[20:30, 10 + index * 7 : 13 + index * 7] = 20
    assert TextPrescreen(dark=True)(dark_line) is True
    assert TextPrescreen(dark=True)(np.full((60, 200), 230, np.uint8)) is False


def test_lines_are_the_text_lines(prescreen: TextPrescreen) -> None:
    image = np.zeros((60, 200), np.uint8)
    for index in range(5):  # five 3 x 10 "characters" 4 pixels apart
        image[20:30, 10 + index * 7 : 13 + index * 7] = 255
    image[45:47, 100:190] = 255  # a rule: too thin to be a character
    assert prescreen.lines(image) == [(10, 20, 31, 10)]
    assert prescreen(image) is True
    image[20:30, 24:60] = 0  # two characters left: not a line
    assert prescreen.lines(image) == []
    assert prescreen(image) is False


def test_flat_and_noisy_images_are_clear(prescreen: TextPrescreen) -> None:
    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(120, 12, (256, 256)), 0, 255).astype(np.uint8)
    assert prescreen(np.zeros((64, 64), np.uint8)) is False
    assert prescreen(np.full((64, 64, 3), 200, np.uint8)) is False
    assert prescreen(noise) is False


def test_rejects_other_inputs(prescreen: TextPrescreen) -> None:
    with pytest.raises(TypeError, match="uint8"):
        prescreen(np.zeros((8, 8), np.uint16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(rows, columns, 3\)"):
        prescreen(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="min_chars"):
        TextPrescreen(min_chars=1)
    assert repr(prescreen) == (
        "TextPrescreen(contrast=50, min_height=5, max_height=80, min_chars=3, dark=True)"
    )


def test_candidates_are_groups_of_character_strokes_not_lone_bars(
    prescreen: TextPrescreen,
) -> None:
    image = np.zeros((120, 300), np.uint8)
    for index in range(5):  # a line of five 3 x 10 "characters"
        image[20:30, 10 + index * 7 : 13 + index * 7] = 255
    image[60:70, 200:203] = 255  # one "L" on its own
    image[67:70, 200:208] = 255
    image[90:105, 100:101] = 255  # a lone bar: a tick or a "1"
    flagged, found = prescreen.scan(image)
    assert flagged is prescreen(image) is True
    assert prescreen.candidates(image) == found
    # bright strokes: the line and the "L", not the bar (the dark strokes' pass also sees
    # the gaps between bright strokes: candidates around the same places)
    assert found[:2] == [(10, 20, 31, 10), (200, 60, 8, 10)]
    assert (100, 90, 1, 15) not in found
    image[20:30, 10:50] = 0  # no line left: not flagged, the "L" is still a candidate
    flagged, found = prescreen.scan(image)
    assert flagged is prescreen(image) is False
    assert found[0] == (200, 60, 8, 10)


def test_dark_strokes_are_candidates_too(prescreen: TextPrescreen) -> None:
    image = np.full((60, 200), 230, np.uint8)
    image[20:30, 50:53] = 20  # a dark "L" on a bright background
    image[27:30, 50:58] = 20
    assert (50, 20, 8, 10) in prescreen.candidates(image)
    assert (50, 20, 8, 10) not in TextPrescreen(dark=False).candidates(image)


def test_labels_are_16_bit_only_where_every_component_fits() -> None:
    import cv2

    from deid.ocr.prescreen import label_type

    mask = np.zeros((300, 300), np.uint8)
    mask[::2, ::2] = 1  # 22,500 one-pixel components
    assert label_type(cv2, mask) == cv2.CV_16U
    sixteen = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_16U)
    full = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    assert sixteen[0] == full[0] == 22_501
    assert np.array_equal(sixteen[2], full[2])
    big = np.zeros((600, 600), np.uint8)
    big[::2, ::2] = 1  # 90,000 components: more than 16-bit labels hold
    assert label_type(cv2, big) == cv2.CV_32S


def _sparse_mask(seed: int, rows: int = 400, columns: int = 300) -> np.ndarray:
    """Blobs in bands of rows, with empty rows between some (fewer and more than the band
    gap), a blob across two bands' gap, and noise pixels."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((rows, columns), np.uint8)
    for top in (5, 40, 48, 150, 151, 300):
        for _ in range(12):
            y, x = top + int(rng.integers(0, 10)), int(rng.integers(0, columns - 12))
            mask[y : y + int(rng.integers(1, 9)), x : x + int(rng.integers(1, 12))] = 1
    mask[60:140, 250:252] = 1  # a tall bar: one component across what would be bands
    mask[140:170][rng.random((30, columns)) < 0.01] = 1  # noise in one band
    mask[:, :3] = 0
    return mask


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("whole", [0.7, 0.0, 1.0], ids=["default", "always whole", "banded"])
def test_components_labelled_band_by_band_are_those_of_the_whole_mask(
    seed: int, whole: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from deid.ocr import prescreen as module

    monkeypatch.setattr(module, "WHOLE_SHARE", whole)
    mask = _sparse_mask(seed)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    expected = sorted(map(tuple, stats[1:, :5].tolist()))
    assert sorted(map(tuple, module.component_stats(cv2, mask).tolist())) == expected
    assert module.component_stats(cv2, np.zeros((20, 30), np.uint8)).shape == (0, 5)
