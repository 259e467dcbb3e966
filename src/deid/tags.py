"""Tag patterns of the standard's tables: exact tags, repeating groups and private blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from pydicom.datadict import (  # type: ignore[attr-defined]
    DicomDictionary,
    dictionary_VR,
    keyword_for_tag,
)
from pydicom.dataelem import RawDataElement as _RawDataElement
from pydicom.tag import BaseTag

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset

_EXACT = re.compile(r"^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$")
_SAFE_PRIVATE = re.compile(r"^\(([0-9A-Fa-f]{4}),xx([0-9A-Fa-f]{2})\)$")

CURVE_PATTERN = "(50xx,xxxx)"
OVERLAY_DATA_PATTERN = "(60xx,3000)"
OVERLAY_COMMENTS_PATTERN = "(60xx,4000)"
PRIVATE_PATTERN = "(gggg,eeee) where gggg is odd"
REPEATING_PATTERNS = (
    CURVE_PATTERN,
    OVERLAY_DATA_PATTERN,
    OVERLAY_COMMENTS_PATTERN,
    PRIVATE_PATTERN,
)


def parse_tag(text: str) -> int:
    """Parse ``(gggg,eeee)`` (or ``gggg,eeee`` / ``ggggeeee``) into an int; ``ValueError`` else."""
    cleaned = text.strip()
    match = _EXACT.match(cleaned)
    if match is None:
        bare = cleaned.strip("()").replace(",", "").replace(" ", "")
        if len(bare) != 8 or not all(c in "0123456789abcdefABCDEF" for c in bare):
            raise ValueError(f"not a tag: {text!r}")
        return int(bare, 16)
    return int(match.group(1) + match.group(2), 16)


def format_tag(tag: int) -> str:
    """``(GGGG,EEEE)`` in upper-case hex, as the standard writes tags."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(frozen=True, slots=True)
class SafePrivateKey:
    """A private element independent of where its block sits: (group, creator, low byte)."""

    group: int
    creator: str
    element: int

    @classmethod
    def parse(cls, tag_text: str, creator: str) -> SafePrivateKey:
        match = _SAFE_PRIVATE.match(tag_text.strip())
        if match is None:
            raise ValueError(f"not a private tag pattern: {tag_text!r}")
        return cls(int(match.group(1), 16), normalise_creator(creator), int(match.group(2), 16))


def normalise_creator(creator: str) -> str:
    """Private creators compare after trimming the padding and surrounding spaces."""
    return creator.strip(" \x00")


def is_private_group(group: int) -> bool:
    return group % 2 == 1


def is_private_creator(tag: int) -> bool:
    """(gggg,0010)-(gggg,00FF) in an odd group reserves a block."""
    return is_private_group(tag >> 16) and 0x0010 <= (tag & 0xFFFF) <= 0x00FF


def repeating_pattern(tag: int) -> str | None:
    """The repeating-group row a public tag falls under, if any."""
    group, elem = tag >> 16, tag & 0xFFFF
    if 0x5000 <= group <= 0x50FF and group % 2 == 0:
        return CURVE_PATTERN
    if 0x6000 <= group <= 0x60FF and group % 2 == 0:
        if elem == 0x3000:
            return OVERLAY_DATA_PATTERN
        if elem == 0x4000:
            return OVERLAY_COMMENTS_PATTERN
    return None


def stored(ds: Dataset, tag: int) -> DataElement | RawDataElement | None:
    """An element as stored: raw (not decoded yet) or decoded. Nothing is converted.

    ``ds.get_item(tag)`` without building a ``Tag`` for a valid int tag (a deferred value,
    which deid never asks for, still goes through pydicom).
    """
    if type(tag) is BaseTag or (type(tag) is int and 0 <= tag <= _MAX_TAG):
        held = ds._dict.get(cast("BaseTag", tag))
        if held is None or not isinstance(held, _RawDataElement) or held.value is not None:
            return held
    return cast("DataElement | RawDataElement | None", ds.get_item(tag))


_MAX_TAG = 0xFFFFFFFF


def element_vr(ds: Dataset, tag: int) -> str:
    """The VR of an element without decoding its value (dictionary VR for implicit data)."""
    return held_vr(stored(ds, tag), tag)


def held_vr(elem: DataElement | RawDataElement | None, tag: int) -> str:
    """:func:`element_vr` of an element already in hand (``None``: the dictionary's VR)."""
    vr = elem.VR if elem is not None else None
    if vr:
        return str(vr)
    return dictionary_vr(tag)


def dictionary_vr(tag: int) -> str:
    """The dictionary VR of a tag (repeating groups included); ``UN`` when unknown."""
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return entry[0]
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def keyword_of(tag: int) -> str:
    """:func:`pydicom.datadict.keyword_for_tag` without building a ``Tag`` for listed tags."""
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return entry[4]
    keyword = _OTHER_KEYWORDS.get(tag)
    if keyword is None:
        keyword = keyword_for_tag(tag)  # repeating groups, or '' (private, unknown)
        if len(_OTHER_KEYWORDS) < _OTHER_KEYWORDS_LIMIT:
            _OTHER_KEYWORDS[tag] = keyword
    return keyword


# keyword_for_tag of tags not in the main dictionary (tags only; bounded).
_OTHER_KEYWORDS: dict[int, str] = {}
_OTHER_KEYWORDS_LIMIT = 50_000


def element_keyword(tag: int) -> str:
    """``DataElement.keyword``: the dictionary keyword of a listed tag, else ``''``."""
    entry = DicomDictionary.get(tag)
    return entry[4] if entry is not None else ""
