"""Images with burned-in text and exact ground truth, built in code (numpy + Pillow).

Every scene is drawn from a seed (``random.Random(seed)``, ``numpy.random.default_rng(seed)``),
so the same call gives the same pixels on every run with the same fonts installed.

Kinds (``KINDS``):

``CT``
    512 x 512, 12 bits stored (0..4095, HU + 1024): air with noise, a body-like ellipse with a
    bone ring and a table; the OCR image is the header window (W 400, L 40).
``DX``
    2500 rows x 2048 columns (``scale`` shrinks it: tests use 0.25), 12 bits: a chest-like
    scene (bright body, darker lungs, noise) shown with the full range.
``MONO1``
    A DX scene stored as MONOCHROME1 (stored = 4095 - value), text stored at 0 (white when
    displayed). Its OCR image is the stored values mapped *without* the MONOCHROME1 inversion:
    dark text on a bright image, the case a naive normaliser gives.
``US``
    600 rows x 800 columns RGB: a speckled sector, a banner with the patient's name, ID, date
    and time, parameter labels, depth ticks, calipers and a grey bar.
``US-cine``
    ``frames`` US frames with moving speckle and a clock that changes every frame.

Text: Pillow's bundled scalable font (``ImageFont.load_default(size=...)``), the DejaVu TTF
fonts where the system has them, and Pillow's built-in bitmap font scaled 1-3x by pixel
repetition; em sizes 9-40 px; white, grey (12 px and up), yellow (RGB), some outlined in
black. Content:
names (``DOE^JANE``), IDs, dates, times, accession numbers, institutions and scanner labels,
every line at least two characters long.

Ground truth: each :class:`Line` is the tight box of its ink (pixels where the glyph, its
outline included, covers at least half of the pixel) and that ink as a mask, in the
frame's pixel coordinates. Lines never overlap one another.

Every ``make_*`` function takes ``text=False`` for the same scene with no text at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "KINDS",
    "Line",
    "TextImage",
    "ink_coverage",
    "make",
    "make_ct",
    "make_dx",
    "make_mono1",
    "make_us",
    "make_us_cine",
    "synthetic_set",
    "to_dataset",
]

KINDS = ("CT", "DX", "MONO1", "US", "US-cine")

#: Extra TrueType fonts used where present (the set is whatever the machine has).
_TTF_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
)
_INK = 128  # a pixel is ink where the glyph covers at least half of it

_SURNAMES = ("DOE", "SMITH", "GARCIA", "NGUYEN", "OKAFOR", "MUELLER", "ROSSI", "TANAKA")
_GIVEN = ("JANE", "JOHN", "MARIA", "WEI", "AMARA", "KLAUS", "LUCA", "YUKI")
_SITES = ("ST ELSEWHERE HOSP", "GENERAL HOSPITAL", "CITY CLINIC", "MERCY MEDICAL CTR")


@dataclass(frozen=True)
class Line:
    """One line of burned-in text: its ink's tight box, the ink mask, the frame."""

    left: int
    top: int
    width: int
    height: int
    text: str
    ink: npt.NDArray[np.bool_] = field(repr=False, compare=False)
    frame: int = 0
    size: int = 0

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


@dataclass(frozen=True)
class TextImage:
    """One generated object: the OCR input, the stored values and the ground truth.

    ``image`` is ``uint8``: ``(rows, columns)`` grey or ``(rows, columns, 3)`` RGB, with a
    leading frame axis for ``US-cine``. ``stored`` holds the values a DICOM file would store
    (same shape; ``uint16`` for the grey kinds), ``photometric`` and ``bits_stored`` describe
    them.
    """

    name: str
    kind: str
    image: npt.NDArray[np.uint8] = field(repr=False)
    stored: npt.NDArray[np.generic] = field(repr=False)
    photometric: str
    bits_stored: int
    lines: tuple[Line, ...]
    window: tuple[float, float] | None = None

    @property
    def multiframe(self) -> bool:
        return self.kind == "US-cine"

    def frames(self) -> list[npt.NDArray[np.uint8]]:
        """The OCR image of every frame."""
        return list(self.image) if self.multiframe else [self.image]

    def frame_lines(self, frame: int) -> list[Line]:
        return [line for line in self.lines if line.frame == frame]


# -- fonts and text -----------------------------------------------------------------------

FontMaker = Callable[[int], tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, int]]


@cache
def _ttf_paths() -> tuple[str, ...]:
    return tuple(path for path in _TTF_CANDIDATES if Path(path).is_file())


def _fonts() -> list[tuple[str, FontMaker]]:
    """(name, size -> (font, pixel repetition)) for every font this machine can render."""
    makers: list[tuple[str, FontMaker]] = [
        ("pillow", lambda size: (ImageFont.load_default(size=size), 1)),
        ("bitmap", lambda size: (ImageFont.load_default_imagefont(), max(1, min(3, size // 11)))),
    ]
    for path in _ttf_paths():
        makers.append((Path(path).stem, lambda size, p=path: (ImageFont.truetype(p, size=size), 1)))
    return makers


def _render(
    text: str, font_name: str, size: int, outline: bool
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(fill coverage, outline coverage) in [0, 1], cropped to the ink."""
    maker = dict(_fonts())[font_name]
    font, repeat = maker(size)
    stroke = 1 if outline and font_name != "bitmap" else 0
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    width, height = int(right - left) + 4, int(bottom - top) + 4
    fill = Image.new("L", (width, height), 0)
    ImageDraw.Draw(fill).text((2 - left, 2 - top), text, font=font, fill=255)
    both = Image.new("L", (width, height), 0)
    ImageDraw.Draw(both).text(
        (2 - left, 2 - top), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    inner = np.asarray(fill, np.float32) / 255.0
    outer = np.asarray(both, np.float32) / 255.0
    if repeat > 1:
        inner = np.kron(inner, np.ones((repeat, repeat), np.float32))
        outer = np.kron(outer, np.ones((repeat, repeat), np.float32))
    rows = np.flatnonzero((outer * 255 >= _INK).any(axis=1))
    cols = np.flatnonzero((outer * 255 >= _INK).any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    ring = np.clip(outer[crop] - inner[crop], 0.0, 1.0)
    return inner[crop], ring if stroke else np.zeros_like(ring)


class _Canvas:
    """Places lines without overlap and composes them into one frame."""

    def __init__(self, rows: int, columns: int) -> None:
        self.rows, self.columns = rows, columns
        self.taken: list[tuple[int, int, int, int]] = []
        self.lines: list[tuple[Line, npt.NDArray[np.float32], npt.NDArray[np.float32]]] = []

    def fits(self, top: int, left: int, height: int, width: int) -> bool:
        if top < 0 or left < 0 or top + height > self.rows or left + width > self.columns:
            return False
        return all(
            top + height + 2 <= t or t + h + 2 <= top or left + width + 2 <= x or x + w + 2 <= left
            for t, x, h, w in self.taken
        )

    def place(
        self,
        text: str,
        font: str,
        size: int,
        outline: bool,
        top: int,
        left: int,
        frame: int = 0,
    ) -> Line | None:
        fill, stroke = _render(text, font, size, outline)
        height, width = fill.shape
        if left < 0:  # right-aligned from the right edge
            left = self.columns + left - width
        if not self.fits(top, left, height, width):
            return None
        ink = (np.maximum(fill, stroke) * 255) >= _INK
        line = Line(left, top, width, height, text, ink, frame, size)
        self.taken.append((top, left, height, width))
        self.lines.append((line, fill, stroke))
        return line


def _compose(
    canvas: _Canvas,
    base: npt.NDArray[np.float32],
    colours: Sequence[Sequence[float]],
) -> None:
    """Blend each placed line into ``base`` (rows x columns x channels), in place."""
    for (line, fill, stroke), colour in zip(canvas.lines, colours, strict=True):
        region = base[line.top : line.bottom, line.left : line.right]
        value = np.asarray(colour, np.float32)
        dark = np.zeros_like(value)
        region *= 1.0 - np.maximum(fill, stroke)[..., None]
        region += stroke[..., None] * dark + fill[..., None] * value


def _identity(rng: random.Random) -> dict[str, str]:
    year, month, day = rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28)
    study = (rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28))
    hour, minute, second = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return {
        "name": f"{rng.choice(_SURNAMES)}^{rng.choice(_GIVEN)}",
        "id": f"ID {rng.randint(10_000_000, 99_999_999)}",
        "mrn": f"MRN {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "dob": rng.choice((f"DOB {year}-{month:02d}-{day:02d}", f"{day:02d}.{month:02d}.{year}")),
        "date": rng.choice(
            (
                f"{study[0]}-{study[1]:02d}-{study[2]:02d}",
                f"{study[1]:02d}/{study[2]:02d}/{study[0]}",
            )
        ),
        "time": f"{hour:02d}:{minute:02d}:{second:02d}",
        "acc": f"ACC A{rng.randint(10_000, 99_999)}",
        "site": rng.choice(_SITES),
    }


def _block(
    canvas: _Canvas,
    rng: random.Random,
    texts: Sequence[str],
    corner: str,
    size: int,
    font: str,
    outline: bool,
    margin: int,
    frame: int = 0,
) -> list[Line]:
    """Stack ``texts`` in a corner ('tl', 'tr', 'bl', 'br'); lines that do not fit are left
    out."""
    placed: list[Line] = []
    step = max(size + 4, int(size * 1.35))
    count = len(texts)
    for index, text in enumerate(texts):
        row = margin + index * step
        if corner[0] == "b":
            row = canvas.rows - margin - (count - index) * step
        left = margin if corner[1] == "l" else -margin
        line = canvas.place(text, font, size, outline, row, left, frame)
        if line is not None:
            placed.append(line)
    return placed


def _pick_font(rng: random.Random) -> str:
    return rng.choice([name for name, _ in _fonts()])


# -- grey scenes ----------------------------------------------------------------------------


def _ct_scene(np_rng: np.random.Generator, rows: int, columns: int) -> npt.NDArray[np.float32]:
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cy, cx = rows * 0.52, columns * 0.5
    ry, rx = rows * np_rng.uniform(0.30, 0.38), columns * np_rng.uniform(0.38, 0.45)
    r = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
    scene = np.full((rows, columns), 24.0, np.float32)  # air, HU -1000
    scene[r <= 1.0] = 1064.0  # soft tissue, HU 40
    scene[(r > 0.80) & (r <= 0.86)] = 1900.0  # a bone ring
    lungs = (((y - cy) / (ry * 0.5)) ** 2 + ((np.abs(x - cx) - rx * 0.42) / (rx * 0.3)) ** 2) <= 1
    scene[lungs] = 180.0
    table = slice(int(cy + ry + rows * 0.05), int(cy + ry + rows * 0.07))
    scene[table, int(columns * 0.3) : int(columns * 0.7)] = 1150.0
    scene += np_rng.normal(0.0, 18.0, scene.shape).astype(np.float32)
    return np.clip(scene, 0, 4095)


def _dx_scene(np_rng: np.random.Generator, rows: int, columns: int) -> npt.NDArray[np.float32]:
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cy, cx = rows * 0.5, columns * 0.5
    body = ((y - cy) / (rows * 0.48)) ** 2 + ((x - cx) / (columns * 0.42)) ** 2 <= 1
    scene = np.full((rows, columns), 300.0, np.float32)
    scene[body] = 2600.0 + 400.0 * (y[body] / rows)
    for side in (-1, 1):
        lung = (
            ((y - cy * 0.9) / (rows * 0.3)) ** 2
            + ((x - cx - side * columns * 0.18) / (columns * 0.13)) ** 2
        ) <= 1
        scene[lung] = 1300.0
    spine = (np.abs(x - cx) < columns * 0.03) & body
    scene[spine] = 3300.0
    scene += np_rng.normal(0.0, 60.0, scene.shape).astype(np.float32)
    return np.clip(scene, 0, 4095)


def _grey_image(
    name: str,
    kind: str,
    scene: npt.NDArray[np.float32],
    canvas: _Canvas,
    levels: Sequence[float],
    window: tuple[float, float],
    photometric: str = "MONOCHROME2",
) -> TextImage:
    base = scene[..., None].copy()
    _compose(canvas, base, [(level,) for level in levels])
    stored_float = base[..., 0]
    if photometric == "MONOCHROME1":
        stored_float = 4095.0 - stored_float
    stored = np.clip(np.rint(stored_float), 0, 4095).astype(np.uint16)
    low, high = window
    image = np.clip((stored.astype(np.float32) - low) / (high - low) * 255.0, 0, 255)
    return TextImage(
        name,
        kind,
        np.rint(image).astype(np.uint8),
        stored,
        photometric,
        12,
        tuple(line for line, _, _ in canvas.lines),
        window,
    )


def _grey_text(
    rng: random.Random, canvas: _Canvas, sizes: tuple[int, int], margin: int, scanner: list[str]
) -> list[float]:
    """Corner blocks of identity and scanner text; returns each line's level in [0, 1]."""
    who = _identity(rng)
    blocks = [
        ("tl", [who["name"], who["id"], who["dob"]]),
        ("tr", [who["site"], who["date"], who["time"]]),
        ("bl", scanner),
        ("br", [who["acc"], who["mrn"]]),
    ]
    levels: list[float] = []
    for corner, texts in blocks:
        size = rng.randint(*sizes)
        font = _pick_font(rng)
        outline = rng.random() < 0.25
        level = rng.choice((1.0, 1.0, 0.8, 0.65)) if size >= 12 else 1.0
        placed = _block(canvas, rng, texts, corner, size, font, outline, margin)
        levels += [level] * len(placed)
    return levels


def make_ct(seed: int, *, text: bool = True) -> TextImage:
    """A CT slice (see the module)."""
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    scene = _ct_scene(np_rng, 512, 512)
    canvas = _Canvas(512, 512)
    levels: list[float] = []
    if text:
        scanner = [f"KV {rng.choice((80, 100, 120))}", f"MA {rng.randint(50, 400)}", "W 400 L 40"]
        levels = _grey_text(rng, canvas, (9, 24), rng.randint(4, 12), scanner)
    low, high = 864.0, 1264.0  # W 400 L 40 on HU + 1024
    stored_levels = [high + (4095.0 - high) * lv if lv == 1.0 else low + 400 * lv for lv in levels]
    return _grey_image(f"CT-{seed}", "CT", scene, canvas, stored_levels, (low, high))


def _dx(seed: int, scale: float, text: bool, kind: str) -> TextImage:
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    rows, columns = round(2500 * scale), round(2048 * scale)
    scene = _dx_scene(np_rng, rows, columns)
    canvas = _Canvas(rows, columns)
    levels: list[float] = []
    if text:
        scanner = [rng.choice(("PORTABLE", "SEMI-UPRIGHT", "SUPINE")), "AP", "CHEST"]
        low, high = (9, 40) if scale >= 0.5 else (9, 20)
        levels = _grey_text(rng, canvas, (low, high), rng.randint(8, int(40 * scale) + 8), scanner)
    stored_levels = [4095.0 * lv for lv in levels]
    photometric = "MONOCHROME1" if kind == "MONO1" else "MONOCHROME2"
    return _grey_image(
        f"{kind}-{seed}", kind, scene, canvas, stored_levels, (0.0, 4095.0), photometric
    )


def make_dx(seed: int, *, scale: float = 1.0, text: bool = True) -> TextImage:
    """A chest DX, 2500 x 2048 times ``scale`` (see the module)."""
    return _dx(seed, scale, text, "DX")


def make_mono1(seed: int, *, scale: float = 0.5, text: bool = True) -> TextImage:
    """A MONOCHROME1 DX; its OCR image is not inverted (dark text, see the module)."""
    return _dx(seed, scale, text, "MONO1")


# -- ultrasound -----------------------------------------------------------------------------

_YELLOW = (255.0, 230.0, 0.0)
_WHITE = (255.0, 255.0, 255.0)
_GREY = (170.0, 170.0, 170.0)


def _us_background(
    np_rng: np.random.Generator, rows: int, columns: int, shift: int
) -> npt.NDArray[np.float32]:
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    apex_y, apex_x = 70.0, columns / 2
    radius = np.hypot(y - apex_y, x - apex_x)
    angle = np.degrees(np.arctan2(x - apex_x, y - apex_y))
    sector = (radius > 20) & (radius < rows - 90) & (np.abs(angle) < 36)
    speckle = np_rng.rayleigh(40.0, (rows, columns + 64)).astype(np.float32)
    speckle = np.roll(speckle, shift, axis=1)[:, :columns]
    blurred = Image.fromarray(np.clip(speckle, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(1.2)
    )
    tissue = np.asarray(blurred, np.float32) * (1.0 - radius / (rows * 1.6))
    grey = np.where(sector, tissue, 0.0).astype(np.float32)
    # depth ticks at the right edge of the sector, a grey bar, two calipers
    for depth in range(100, rows - 100, 50):
        grey[depth : depth + 2, int(apex_x + 300) : int(apex_x + 310)] = 200.0
    grey[150:400, columns - 30 : columns - 18] = np.linspace(255, 0, 250)[:, None]
    for cy, cx in ((250, 360), (330, 450)):
        grey[cy - 6 : cy + 7, cx] = 230.0
        grey[cy, cx - 6 : cx + 7] = 230.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[34:36, :, :] = 90.0  # the banner's rule
    return rgb


def _us_frame(
    rng: random.Random,
    np_rng: np.random.Generator,
    text: bool,
    who: dict[str, str],
    style: tuple[str, int, str, int, bool],
    frame: int,
    clock: str | None,
) -> tuple[npt.NDArray[np.uint8], list[Line]]:
    rows, columns = 600, 800
    base = _us_background(np_rng, rows, columns, shift=frame * 3)
    canvas = _Canvas(rows, columns)
    colours: list[tuple[float, float, float]] = []
    if text:
        font, size, side_font, side_size, outline = style
        banner = [
            (who["name"], 8),
            (who["id"], 8 + size * 9),
            (who["date"], columns - 8 - size * 18),
        ]
        for words, left in banner:
            if canvas.place(words, font, size, outline, 6, left, frame) is not None:
                colours.append(_WHITE)
        if clock is not None and canvas.place(clock, font, size, outline, 6, -8, frame):
            colours.append(_YELLOW)
        side = ["GN 52", "DR 60", "FR 27", "12.0CM", who["site"]]
        step = max(side_size + 4, int(side_size * 1.4))
        for index, words in enumerate(side):
            top = 48 + index * step
            if canvas.place(words, side_font, side_size, False, top, 8, frame) is not None:
                colours.append(_GREY if index < 4 else _WHITE)
    image = base.copy()
    _compose(canvas, image, colours)
    lines = [line for line, _, _ in canvas.lines]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), lines


def _us_style(rng: random.Random) -> tuple[str, int, str, int, bool]:
    outline = rng.random() < 0.3
    return (_pick_font(rng), rng.randint(9, 16), _pick_font(rng), rng.randint(9, 14), outline)


def make_us(seed: int, *, text: bool = True) -> TextImage:
    """An 800 x 600 RGB ultrasound image (see the module)."""
    return _us(seed, text, frames=1)


def make_us_cine(seed: int, *, frames: int = 8, text: bool = True) -> TextImage:
    """A multi-frame ultrasound cine whose clock changes every frame (see the module)."""
    return _us(seed, text, frames=frames)


def _us(seed: int, text: bool, frames: int) -> TextImage:
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    who = _identity(rng)
    style = _us_style(rng)
    start = rng.randint(0, 86_000)
    images: list[npt.NDArray[np.uint8]] = []
    lines: list[Line] = []
    for frame in range(frames):
        seconds = start + frame
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        frame_rng = random.Random(seed)  # the same layout on every frame
        image, found = _us_frame(frame_rng, np_rng, text, who, style, frame, clock)
        images.append(image)
        lines += found
    kind = "US" if frames == 1 else "US-cine"
    stack = images[0] if frames == 1 else np.stack(images)
    return TextImage(f"{kind}-{seed}", kind, stack, stack.copy(), "RGB", 8, tuple(lines))


# -- sets, scoring, DICOM -------------------------------------------------------------------


def make(kind: str, seed: int, *, text: bool = True, scale: float = 1.0) -> TextImage:
    """One image of ``kind`` (``scale`` applies to DX and MONO1)."""
    if kind == "CT":
        return make_ct(seed, text=text)
    if kind == "DX":
        return make_dx(seed, scale=scale, text=text)
    if kind == "MONO1":
        return make_mono1(seed, scale=scale * 0.5, text=text)
    if kind == "US":
        return make_us(seed, text=text)
    if kind == "US-cine":
        return make_us_cine(seed, text=text)
    raise ValueError(f"unknown kind {kind!r}: use one of {KINDS}")


def synthetic_set(
    per_kind: int,
    *,
    seed: int = 0,
    kinds: Iterable[str] = KINDS,
    text_free: int | None = None,
    dx_scale: float = 1.0,
) -> list[TextImage]:
    """``per_kind`` images with text and ``text_free`` (default: as many) without, per kind."""
    free = per_kind if text_free is None else text_free
    found: list[TextImage] = []
    for offset, kind in enumerate(kinds):
        for index in range(per_kind + free):
            found.append(
                make(kind, seed + 1000 * offset + index, text=index < per_kind, scale=dx_scale)
            )
    return found


def ink_coverage(line: Line, boxes: Iterable[tuple[int, int, int, int]]) -> float:
    """The fraction of ``line``'s ink pixels inside the union of ``boxes``
    (each ``(left, top, width, height)`` in the frame's pixels)."""
    covered = np.zeros(line.ink.shape, bool)
    for left, top, width, height in boxes:
        x0, y0 = max(left, line.left), max(top, line.top)
        x1, y1 = min(left + width, line.right), min(top + height, line.bottom)
        if x0 < x1 and y0 < y1:
            covered[y0 - line.top : y1 - line.top, x0 - line.left : x1 - line.left] = True
    total = int(line.ink.sum())
    return float((covered & line.ink).sum()) / total if total else 1.0


def to_dataset(item: TextImage) -> object:
    """A minimal native (Explicit VR Little Endian) DICOM data set holding ``item.stored``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = {
        "CT": "1.2.840.10008.5.1.4.1.1.2",
        "DX": "1.2.840.10008.5.1.4.1.1.1.1",
        "MONO1": "1.2.840.10008.5.1.4.1.1.1",
        "US": "1.2.840.10008.5.1.4.1.1.6.1",
        "US-cine": "1.2.840.10008.5.1.4.1.1.3.1",
    }[item.kind]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    uid = generate_uid(entropy_srcs=[item.name])
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
    ds.Modality = {"CT": "CT", "DX": "DX", "MONO1": "CR"}.get(item.kind, "US")
    ds.PatientName, ds.PatientID = "SYNTHETIC^TEXT", item.name
    ds.BurnedInAnnotation = "YES" if item.lines else "NO"
    stored = item.stored
    frames = stored.shape[0] if item.multiframe else 1
    ds.Rows, ds.Columns = stored.shape[1:3] if item.multiframe else stored.shape[:2]
    ds.PhotometricInterpretation = item.photometric
    if item.photometric == "RGB":
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
    else:
        ds.SamplesPerPixel = 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, item.bits_stored, item.bits_stored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if item.kind == "CT":
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds
