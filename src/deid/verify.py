"""Residual-PHI scan: search the output for the identifiers of the input.

Two searches, both by whole words (see :mod:`deid.descriptors`):

- every decoded string value (text, person names, multi-values) at every sequence depth and
  in the file meta, reported by tag path, keyword and category;
- the encoded bytes, pixel data value excluded when it can be located, for identifiers of at
  least four characters as ASCII / latin-1 and UTF-8, reported by offset and category.

A hit names where and what kind, never the value.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from deid.descriptors import RAW, TEXT, WordMatcher, identifier_keys, lower_same_length
from deid.errors import ResidualPhiError
from deid.identifiers import Category, Identifier, Identifiers
from deid.tags import format_tag

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement

__all__ = ["find_residual", "verify"]

_MIN_RAW_LENGTH = 4
_MAX_TRAILER = 16
# Binary and numeric VRs hold no text to decode; their bytes are still searched raw.
_NO_TEXT_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "US", "SS", "UL", "SL", "FL", "FD", "AT",
     "SV", "UV", "IS", "DS", "SQ"}
)  # fmt: skip


def verify(
    ds: Dataset,
    encoded: bytes | None,
    identifiers: Identifiers,
    *,
    skip: Collection[Category | str] = frozenset(),
    pixel_value: bytes | None = None,
) -> None:
    """Raise :class:`~deid.errors.ResidualPhiError` when the output holds an identifier.

    Parameters are those of :func:`find_residual`.

    Raises
    ------
    ResidualPhiError
        With the hits (tag paths, offsets and categories; never values).
    """
    hits = find_residual(ds, encoded, identifiers, skip=skip, pixel_value=pixel_value)
    if hits:
        raise ResidualPhiError(hits)


def find_residual(
    ds: Dataset,
    encoded: bytes | None,
    identifiers: Identifiers,
    *,
    skip: Collection[Category | str] = frozenset(),
    pixel_value: bytes | None = None,
) -> tuple[str, ...]:
    """Find the identifiers of the input in the output.

    Parameters
    ----------
    ds
        The output data set.
    encoded
        The output as written (``None``: decoded values only).
    identifiers
        The identifiers of the input (see :func:`deid.identifiers.collect`).
    skip
        Categories not searched, e.g. ``DATE`` when dates are kept or shifted, ``INSTITUTION``
        when institution identity is retained.
    pixel_value
        The pixel data value as written: when ``encoded`` ends with it (or with it and a
        trailer of at most 16 bytes), those bytes are not searched.

    Returns
    -------
    tuple of str
        Sorted, unique hits such as ``"(0010,0010) PatientName: name"``,
        ``"(0008,1115)[0]>(0008,1030) StudyDescription: name_part"`` or
        ``"raw bytes @offset 1234: id"``.
    """
    kept = identifiers.without(*skip)
    if not kept:
        return ()
    keys = identifier_keys(kept.items)
    dates = [item.value for item in kept.items if item.category is Category.DATE]
    text = WordMatcher(keys, dates, TEXT)
    hits = sorted(set(_decoded_hits(ds, text)))
    if encoded:
        raw_keys = (key for key in keys if key.ascii and key.length >= _MIN_RAW_LENGTH)
        raw = WordMatcher(raw_keys, dates, RAW)
        needles = _non_ascii_needles(kept.items)
        found = sorted(set(_raw_hits(encoded, pixel_value, raw, needles)))
        hits.extend(f"raw bytes @offset {offset}: {category}" for offset, category in found)
    return tuple(hits)


# -- decoded values ------------------------------------------------------------------------


def _decoded_hits(ds: Dataset, matcher: WordMatcher) -> Iterator[str]:
    """Search all decoded text values at once, joined by NUL (no match crosses a NUL)."""
    places: list[tuple[str, int]] = []
    texts: list[str] = []
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _gather(file_meta, "", places, texts)
    _gather(ds, "", places, texts)
    if not texts or not matcher:
        return
    starts: list[int] = []
    position = 0
    for text in texts:
        starts.append(position)
        position += len(text) + 1
    for start, _, category in matcher.spans(lower_same_length("\x00".join(texts))):
        path, tag = places[bisect.bisect_right(starts, start) - 1]
        keyword = keyword_for_tag(tag)
        name = f" {keyword}" if keyword else ""
        yield f"{path}{format_tag(tag)}{name}: {category.value}"


def _gather(ds: Dataset, path: str, places: list[tuple[str, int]], texts: list[str]) -> None:
    """Append every text value of ``ds`` and its sequences, with where it sits."""
    for stored in list(ds.values()):
        elem = _convert(ds, stored.tag) if isinstance(stored, RawDataElement) else stored
        if elem is None:
            continue
        vr = elem.VR
        if vr in _NO_TEXT_VRS:
            if vr == "SQ":
                prefix = f"{path}{format_tag(elem.tag)}"
                for index, item in enumerate(elem.value or ()):
                    _gather(item, f"{prefix}[{index}]>", places, texts)
            continue
        value = elem.value
        text = value if type(value) is str else _text(value)
        if text:
            places.append((path, elem.tag))
            texts.append(text)


def _convert(ds: Dataset, tag: int) -> DataElement | None:
    """The element, decoded; ``None`` when it cannot be (the raw search still covers it)."""
    try:
        return ds[tag]
    except Exception:  # pydicom raises on malformed values
        return None


def _text(value: object) -> str:
    """A value as text: strings, person names, dates and times; multi-values joined by ``\\``."""
    if isinstance(value, str):
        return value
    if isinstance(value, PersonName):
        return _person_name(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return str(value)
    if isinstance(value, (MultiValue, list, tuple)):
        return "\\".join(_text(item) for item in value)
    return ""


def _person_name(value: PersonName) -> str:
    try:
        return str(value)
    except Exception:  # undecodable bytes: the raw search still covers them
        return ""


# -- encoded bytes -------------------------------------------------------------------------


def _raw_hits(
    encoded: bytes,
    pixel_value: bytes | None,
    matcher: WordMatcher,
    needles: dict[str, Category],
) -> Iterator[tuple[int, str]]:
    """``(offset, category)`` of identifiers in the encoded bytes outside the pixel value."""
    if not matcher and not needles:
        return
    for start, stop in _regions(encoded, pixel_value):
        data = encoded[start:stop]
        for offset, _, category in matcher.byte_spans(data):
            yield start + offset, category.value
        if needles:
            low = data.decode("latin-1").lower()
            for offset, category in _find_needles(low, needles):
                yield start + offset, category.value


def _non_ascii_needles(items: Iterable[Identifier]) -> dict[str, Category]:
    """Identifiers with non-ASCII letters, as latin-1 and as UTF-8 bytes (read as latin-1)."""
    needles: dict[str, Category] = {}
    for item in items:
        if item.value.isascii() or len(item.value) < _MIN_RAW_LENGTH:
            continue
        for variant in (item.value, item.value.upper(), item.value.lower()):
            for codec in ("latin-1", "utf-8"):
                try:
                    data = variant.encode(codec)
                except UnicodeEncodeError:
                    continue
                needles.setdefault(data.decode("latin-1").lower(), item.category)
    return needles


def _find_needles(low: str, needles: dict[str, Category]) -> Iterator[tuple[int, Category]]:
    """Exact occurrences with an ASCII letter or digit on neither side."""
    for needle, category in needles.items():
        at = low.find(needle)
        while at >= 0:
            end = at + len(needle)
            if not _is_alnum(low, at - 1) and not _is_alnum(low, end):
                yield at, category
            at = low.find(needle, at + 1)


def _is_alnum(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isascii() and text[index].isalnum()


def _regions(encoded: bytes, pixel_value: bytes | None) -> list[tuple[int, int]]:
    """The byte ranges to search: all of ``encoded`` but the pixel value when it is found."""
    size = len(encoded)
    if pixel_value:
        length = len(pixel_value)
        for trailer in range(min(_MAX_TRAILER, size - length) + 1):
            end = size - trailer
            if encoded.endswith(pixel_value, 0, end):
                return [(0, end - length), (end, size)] if trailer else [(0, end - length)]
    return [(0, size)]
