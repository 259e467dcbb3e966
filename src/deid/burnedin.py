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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from pydicom.uid import UID

from deid.codes import PixelMode, PixelRead, PixelText, RejectReason
from deid.errors import MissingDependencyError, PixelError, RejectedError
from deid.gates import burned_in_risk, has_pixels, image_type
from deid.identifiers import Category, Identifiers
from deid.values import get_value

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deid.ocr.base import OcrEngine, TextBox
    from deid.pixels.clean import PixelReport, Prescreen
    from deid.pixels.regions import Candidates
    from deid.policy import Policy

#: Modalities whose ORIGINAL\PRIMARY images are reconstructed slices, not screens.
_SLICE_MODALITIES = frozenset({"CT", "MR"})
#: Third Image Type values of CT/MR images that are not plain slices (scouts are annotated).
_NOT_A_SLICE = frozenset({"LOCALIZER", "SCOUT", "SCREEN SAVE", "SCREENSHOT", "SCREEN"})


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
    values = image_type(ds)
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
    cannot be shown to be safe. Kept: text made only of allowlisted labels and short numbers
    (at most three digits before and after a decimal point) with no date or time shape and no
    word within one edit of an identifier word of the object.
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


# -- the pixel stage of the engine ------------------------------------------------------------


@dataclass(frozen=True)
class PixelOutcome:
    """What the pixel stage did to one object.

    ``cleaned``: the OCR pass ran on the object and its verification passed, so the markers
    may say so (Clean Pixel Data, Burned In Annotation NO). An object that was only
    pre-screened, and found free of text, is not ``cleaned``: its pixels are untouched.
    """

    reason: str
    cleaned: bool
    engine: str
    report: PixelReport

    def audit(self) -> dict[str, Any]:
        """JSON-ready summary: coordinates, engine and confidences, never text or pixels."""
        report = self.report
        encode = report.encode
        return {
            "reason": self.reason,
            "cleaned": self.cleaned,
            "engine": self.engine,
            "frames": report.frames,
            "ocr_calls": report.ocr_calls,
            "frames_skipped": report.frames_skipped,
            "boxes": [
                [b.frame, b.left, b.top, b.width, b.height, round(b.confidence, 3)]
                for b in report.blanked
            ],
            "overlay_boxes": [
                [o.group, o.frame, o.left, o.top, o.width, o.height, round(o.confidence, 3)]
                for o in report.overlays_blanked
            ],
            "overlays_removed": list(report.overlays_removed),
            "icons_removed": report.icons_removed,
            "high_bits_cleared": list(report.high_bits_cleared),
            "transfer_syntax": encode.transfer_syntax if encode else None,
            "transfer_syntax_changed": bool(encode and encode.changed),
            "lossy_reencoded": bool(encode and encode.lossy),
            "verified": report.verified,
        }


def run_pixel_pass(
    ds: Dataset,
    policy: Policy,
    identifiers: Identifiers,
    engine: Callable[[], OcrEngine],
    prescreen: Callable[[], Prescreen | None],
    clean: Callable[..., PixelReport] | None = None,
) -> PixelOutcome | None:
    """The pixel stage: ``None`` when the policy does not look at this object's pixels.

    ``engine`` and ``prescreen`` build (or return the cached) OCR engine and pre-screen; a
    missing OCR engine rejects the object (``BURNED_IN_TEXT``: fail closed). So does a transfer
    syntax no pixel decoder exists for (``UNSUPPORTED_TRANSFER_SYNTAX``: MPEG and HEVC video,
    JPIP-referenced frames), before any engine is built. Pixel data that cannot be decoded,
    blanked or re-encoded rejects it too (``PIXEL_CLEANING_FAILED``).
    ``clean``: what runs the pass (default :func:`deid.pixels.clean.clean_pixels`; a streamed
    object's frames come from its stream, :mod:`deid.pixels.streamed`).
    """
    from deid.pixels.clean import clean_pixels
    from deid.pixels.frames import can_decode, transfer_syntax_of

    if clean is None:
        clean = clean_pixels

    reason = pixel_pass_reason(ds, policy)
    if not reason and not needs_prescreen(ds, policy):
        return None
    why = reason or "not a plain ORIGINAL\\PRIMARY CT or MR slice: pre-screened"
    if "PixelData" not in ds:  # Float / Double Float Pixel Data: no OCR path for them
        raise RejectedError(
            RejectReason.PIXEL_CLEANING_FAILED,
            f"float pixel data cannot be checked for burned-in text ({why})",
        )
    syntax = transfer_syntax_of(ds)
    if not can_decode(syntax):  # video, or frames kept elsewhere: nothing can read them
        raise RejectedError(
            RejectReason.UNSUPPORTED_TRANSFER_SYNTAX,
            f"the pixel pass cannot read {UID(syntax).name} pixel data ({why})",
        )
    try:
        ocr = engine()
    except MissingDependencyError as exc:
        raise RejectedError(
            RejectReason.BURNED_IN_TEXT,
            f"pixel data may carry burned-in text ({why}) and no OCR engine is installed "
            f"(pip install 'deid-dicom[{exc.extra}]')",
        ) from None
    mode = policy.pixels.text
    if mode is PixelText.IDENTIFIERS and not ocr.recognizes:
        raise RejectedError(
            RejectReason.BURNED_IN_TEXT,
            f'text = "identifiers" needs an OCR engine that reads text; {ocr.name} only detects',
        )
    select = None
    if mode is PixelText.IDENTIFIERS:
        words = _identifier_words(identifiers)

        def select(boxes: list[TextBox]) -> list[TextBox]:
            return [box for box in boxes if is_identifying(box.text, words)]

    screen = prescreen()
    gate, where = _screen(screen, ocr, policy.pixels.read)
    try:
        report = clean(
            ds,
            ocr,
            select=select,
            pad=policy.pixels.pad,
            prescreen=gate,
            lossless=policy.pixels.lossless,
            candidates=where,
        )
    except MissingDependencyError as exc:
        raise RejectedError(
            RejectReason.PIXEL_CLEANING_FAILED,
            f"pixel data needs a decoder or encoder: pip install 'deid-dicom[{exc.extra}]'",
        ) from None
    except PixelError as exc:
        raise RejectedError(RejectReason.PIXEL_CLEANING_FAILED, str(exc)) from None
    # Only pre-screened and nothing flagged: no OCR ran, the pixels were not looked at by it.
    cleaned = bool(reason) or report.ocr_calls > 0 or bool(report.overlays_blanked)
    return PixelOutcome(why, cleaned, ocr.name, report)


def _screen(
    screen: Prescreen | None, ocr: OcrEngine, read: PixelRead = PixelRead.PLACES
) -> tuple[Prescreen | None, Candidates | None]:
    """The pre-screen's gate, and where the engine reads: only the places the pre-screen
    flags when the policy reads places (``[pixels] read``), the pre-screen can say where
    (``scan``) and the engine's detection is local (``reads_crops``), from one scan per
    image; else ``None`` (whole frames)."""
    if read is PixelRead.FRAMES:
        return screen, None
    scan = getattr(screen, "scan", None)
    if screen is None or not callable(scan) or not getattr(ocr, "reads_crops", False):
        return screen, None
    from deid.pixels.regions import OneScan

    once = OneScan(scan)
    return once.flagged, once.candidates
