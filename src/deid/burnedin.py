"""Burned-in text: when the pixel pass runs, and which recognized text it blanks.

When (policy ``clean_pixel_data``):

- ``never``: no pixel pass; the pixel data is released as it is.
- ``always``: every object with pixel data.
- ``auto``: objects at risk (:func:`deid.gates.burned_in_risk`: Burned In Annotation YES,
  modalities and SOP classes that usually carry text, secondary captures) get the pixel pass;
  plain ORIGINAL\\PRIMARY CT and MR slices are skipped; every other object with pixel data is
  pre-screened (a cheap text detector) and gets the pixel pass when it may hold text, whatever
  its Burned In Annotation says.

Which text (policy ``[pixels] text``): ``all`` blanks every box the detector finds;
``identifiers`` (:func:`select_identifier_boxes`) keeps only boxes whose recognized text is
made entirely of allowlisted labels and short measurements, and blanks everything else: dates,
times, names, IDs, unread text, and any word within one OCR error of the object's identifiers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING

from deid.codes import PixelMode, PixelText
from deid.gates import burned_in_risk
from deid.identifiers import Category, Identifiers
from deid.values import get_value

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deid.ocr.base import TextBox
    from deid.policy import Policy

_PIXELS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
#: Modalities whose ORIGINAL\PRIMARY images are reconstructed slices, not screens.
_SLICE_MODALITIES = frozenset({"CT", "MR"})
#: Third Image Type values of CT/MR images that are not plain slices (scouts are annotated).
_NOT_A_SLICE = frozenset({"LOCALIZER", "SCOUT", "SCREEN SAVE", "SCREENSHOT", "SCREEN"})


def has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in _PIXELS)


def pixel_pass_reason(ds: Dataset, policy: Policy) -> str:
    """Why the pixel pass must run on ``ds``; '' when it need not (yet: see
    :func:`needs_prescreen`). Names attributes and defined terms, never a patient's value."""
    return burned_in_risk(ds, policy.clean_pixel_data)


def needs_prescreen(ds: Dataset, policy: Policy) -> bool:
    """Under ``auto``, whether an object not at risk must still be pre-screened for text."""
    if policy.clean_pixel_data is not PixelMode.AUTO or not has_pixels(ds):
        return False
    return not is_plain_slice(ds)


def is_plain_slice(ds: Dataset) -> bool:
    """An ORIGINAL\\PRIMARY CT or MR image that is not a localizer or screen."""
    modality = str(get_value(ds, "Modality") or "").strip().upper()
    if modality not in _SLICE_MODALITIES:
        return False
    raw = ds.get("ImageType") or []
    values = [raw] if isinstance(raw, str) else [str(v) for v in raw]
    values = [v.strip().upper() for v in values]
    if values[:2] != ["ORIGINAL", "PRIMARY"]:
        return False
    return not any(v in _NOT_A_SLICE for v in values[2:])


# -- which recognized text to blank ---------------------------------------------------------


@functools.cache
def allowed_labels() -> frozenset[str]:
    """Labels that name no one (``profiles/labels/burned-in-allowed.txt``)."""
    ref = resources.files("deid.profiles").joinpath("labels", "burned-in-allowed.txt")
    words: set[str] = set()
    for line in ref.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            words.update(w.upper() for w in line.split())
    return frozenset(words)


_MEASUREMENT = re.compile(r"^[+-]?[0-9]{1,3}(?:[.,][0-9]{1,3})?(?:%|X)?$")
_TOKEN = re.compile(r"[A-Za-z]+|[0-9]+(?:[.,][0-9]+)?%?")
_DATE_OR_TIME = re.compile(
    r"[0-9]{1,4}\s*[-/.:]\s*[0-9]{1,2}\s*[-/.:]\s*[0-9]{1,4}"  # 01.09.2012, 12:30:45
    r"|[0-9]{1,2}\s*:\s*[0-9]{2}"  # 12:30
    r"|(?:19|20)[0-9]{6}"  # 20120109
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b",
    re.IGNORECASE,
)
_IDENTIFYING = (
    Category.NAME,
    Category.NAME_PART,
    Category.ID,
    Category.INSTITUTION,
    Category.ADDRESS,
    Category.PHONE,
    Category.OTHER,
)


def select_boxes(
    boxes: Iterable[TextBox], mode: PixelText, identifiers: Identifiers
) -> list[TextBox]:
    """The boxes the policy blanks: all of them, or those :func:`is_identifying` says."""
    listed = list(boxes)
    if mode is PixelText.ALL:
        return listed
    words = _identifier_words(identifiers)
    return [box for box in listed if is_identifying(box.text, words)]


def is_identifying(text: str | None, identifier_words: frozenset[str]) -> bool:
    """Whether recognized text must be blanked under ``text = "identifiers"``.

    Unread text (``None``, empty, or no letter or digit read) is blanked: what cannot be read
    cannot be shown to be safe. Kept: text made only of allowlisted labels and short numbers (at most three
    digits before and after a decimal point) with no date or time shape and no word within one
    edit of an identifier word of the object.
    """
    stripped = (text or "").strip()
    tokens = _TOKEN.findall(stripped)
    if not tokens:
        return True  # nothing legible was read: it cannot be shown to be safe
    if _DATE_OR_TIME.search(stripped):
        return True
    labels = allowed_labels()
    for token in tokens:
        upper = token.upper()
        if _near_identifier(upper, identifier_words):
            return True
        if upper in labels or _MEASUREMENT.match(upper):
            continue
        return True
    return False


def _identifier_words(identifiers: Identifiers) -> frozenset[str]:
    words: set[str] = set()
    for item in identifiers.by_category(*_IDENTIFYING):
        for word in _TOKEN.findall(item.value):
            if len(word) >= 2:
                words.add(word.upper())
    return frozenset(words)


def _near_identifier(token: str, words: frozenset[str]) -> bool:
    """``token`` equals an identifier word or is one OCR error away (for words of 4+)."""
    if token in words:
        return True
    if len(token) < 4:
        return False
    return any(abs(len(word) - len(token)) <= 1 and _within_one(token, word) for word in words)


def _within_one(a: str, b: str) -> bool:
    """Levenshtein distance <= 1."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return False
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]
