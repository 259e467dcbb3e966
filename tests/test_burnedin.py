"""When the pixel pass runs, and which recognized text ``text = "identifiers"`` blanks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydicom.dataset import Dataset

from deid import load_policy
from deid.burnedin import (
    allowed_labels,
    is_identifying,
    is_plain_slice,
    needs_prescreen,
    pixel_pass_reason,
    select_boxes,
)
from deid.codes import PixelMode, PixelText
from deid.identifiers import Category, Identifier, Identifiers
from deid.ocr import TextBox
from deid.policy import Policy
from tests.factories import make_dataset

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
PT_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def policy(mode: str) -> Policy:
    return Policy(clean_pixel_data=mode)  # type: ignore[arg-type]


def ct(**keywords: object) -> Dataset:
    base: dict[str, object] = {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}
    base.update(keywords)
    return make_dataset(pixels=True, **base)


@pytest.mark.parametrize(
    ("keywords", "plain"),
    [
        ({}, True),
        ({"Modality": "MR"}, True),
        ({"ImageType": ["ORIGINAL", "PRIMARY"]}, True),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, False),
        ({"ImageType": ["DERIVED", "PRIMARY", "AXIAL"]}, False),
        ({"ImageType": ["ORIGINAL", "SECONDARY"]}, False),
        ({"ImageType": None}, False),
        ({"Modality": "PT"}, False),
        ({"Modality": "US"}, False),
    ],
    ids=[
        "ct-axial",
        "mr",
        "two-values",
        "localizer",
        "derived",
        "secondary",
        "no-type",
        "pt",
        "us",
    ],
)
def test_plain_slices_are_original_primary_ct_and_mr(keywords: dict, plain: bool) -> None:
    ds = ct(**keywords)  # ImageType None: the factory leaves it out
    assert is_plain_slice(ds) is plain


def test_auto_passes_risky_objects_and_prescreens_the_rest() -> None:
    auto = policy("auto")
    assert pixel_pass_reason(ct(), auto) == ""
    assert not needs_prescreen(ct(), auto)
    assert pixel_pass_reason(ct(BurnedInAnnotation="YES"), auto) == "Burned In Annotation YES"
    us = make_dataset(US_STORAGE, pixels=True, Modality="US")
    assert pixel_pass_reason(us, auto) == "modality US"
    pet = make_dataset(PT_STORAGE, pixels=True, Modality="PT", BurnedInAnnotation="NO")
    assert pixel_pass_reason(pet, auto) == ""
    assert needs_prescreen(pet, auto)  # the header's NO is not taken on trust
    localizer = ct(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    assert needs_prescreen(localizer, auto)
    assert not needs_prescreen(make_dataset(pixels=False, Modality="PT"), auto)


def test_always_and_never() -> None:
    assert pixel_pass_reason(ct(), policy("always")) == "clean_pixel_data = always"
    assert not needs_prescreen(ct(), policy("always"))
    never = policy("never")
    assert pixel_pass_reason(ct(BurnedInAnnotation="YES"), never) == ""
    assert not needs_prescreen(make_dataset(PT_STORAGE, pixels=True, Modality="PT"), never)
    assert load_policy("upload").clean_pixel_data is PixelMode.AUTO


WORDS = frozenset({"DAVIDSON", "DOUGLAS", "7781234"})


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("L", False),
        ("R", False),
        ("Semi-Upright", False),
        ("PORTABLE", False),
        ("10 cm", False),
        ("2.5 mm", False),
        ("120 kV", False),
        ("W 400 L 40", False),
        ("DAVIDSON", True),
        ("DAV1DSON", True),  # one OCR error away from the name
        ("DOUGLA", True),  # one letter lost
        ("SMITH", True),  # a word that is no label may be a name
        ("DOB: 06.16.1976", True),
        ("01.09.2012", True),
        ("2012-09-01", True),
        ("20120901", True),
        ("12:30", True),
        ("12 Jan", True),
        ("MRN 7781234", True),
        ("1234", True),  # four digits: may be an ID
        ("", True),
        ("  ", True),
        ("---", True),
        (None, True),
    ],
)
def test_identifiers_mode_keeps_only_labels_and_short_numbers(
    text: str | None, blank: bool
) -> None:
    assert is_identifying(text, WORDS) is blank


def test_select_boxes_all_keeps_every_box_identifiers_filters() -> None:
    boxes = [
        TextBox(0, 0, 10, 10, 0.9, "L"),
        TextBox(20, 0, 40, 10, 0.8, "DOE JANE"),
        TextBox(0, 20, 10, 10, 0.7, None),
    ]
    ids = Identifiers((Identifier(Category.NAME, "DOE^JANE", "PatientName"),))
    assert select_boxes(boxes, PixelText.ALL, ids) == boxes
    assert select_boxes(boxes, PixelText.IDENTIFIERS, ids) == boxes[1:]


def test_allowed_labels_come_from_the_profile_file() -> None:
    labels = allowed_labels()
    assert {"L", "R", "PORTABLE", "CM", "MM"} <= labels
    assert all(word == word.upper() and word.isalpha() for word in labels)
    assert "DOE" not in labels


class _CropEngine:
    name = "crops"
    recognizes = False
    reads_crops = True

    def detect(self, image: object) -> list[TextBox]:
        return []


class _Screen:
    def __init__(self) -> None:
        self.scans = 0

    def __call__(self, image: object) -> bool:
        return True

    def scan(self, image: object) -> tuple[bool, list[tuple[int, int, int, int]]]:
        self.scans += 1
        return True, [(1, 2, 3, 4)]


def test_crops_are_read_only_with_a_screen_that_scans_and_an_engine_that_reads_crops() -> None:
    from deid.burnedin import _screen
    from deid.ocr import StaticOcr

    screen = _Screen()
    assert _screen(screen, StaticOcr()) == (screen, None)  # whole frames
    assert _screen(None, _CropEngine()) == (None, None)
    plain = lambda image: True  # noqa: E731 - a gate that cannot say where
    assert _screen(plain, _CropEngine()) == (plain, None)
    gate, where = _screen(screen, _CropEngine())
    assert gate is not None and where is not None
    image = object()
    assert (gate(image), list(where(image))) == (True, [(1, 2, 3, 4)])
    assert screen.scans == 1  # one scan for the gate and the candidates of an image


class _Recording:
    """A crop-reading engine that finds nothing and records the shape of every image it reads."""

    name = "recording"
    recognizes = False
    reads_crops = True

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image: npt.NDArray[np.uint8]) -> list[TextBox]:
        self.shapes.append(tuple(image.shape))
        return []


def _us_frame() -> Dataset:
    import numpy as np

    ds = make_dataset(US_STORAGE, pixels=True, Modality="US")
    ds.Rows, ds.Columns = 96, 320
    ds.PixelData = (np.arange(96 * 320, dtype="<u2") % 4096).tobytes()
    return ds


@pytest.mark.parametrize(
    ("read", "shapes"),
    [("places", [(14, 20)]), ("frames", [(96, 320)])],
)
def test_policy_read_frames_makes_the_engine_read_whole_frames(
    read: str, shapes: list[tuple[int, ...]]
) -> None:
    from deid.burnedin import run_pixel_pass
    from deid.identifiers import Identifiers

    # One candidate, (1, 2, 3, 4): its place is rows 0-14, columns 0-20 (grown by 16 across, 8 down)
    engine, screen = _Recording(), _Screen()
    settings = {"read": read}
    outcome = run_pixel_pass(
        _us_frame(),
        Policy(pixels=settings),  # type: ignore[arg-type]
        Identifiers(()),
        engine=lambda: engine,
        prescreen=lambda: screen,
    )
    assert outcome is not None and outcome.cleaned
    assert outcome.report.ocr_calls == 1
    assert engine.shapes == shapes
