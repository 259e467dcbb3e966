"""Clean free text: replace the object's own identifiers, phone numbers and e-mail addresses.

A :class:`Scrubber` is built once per data set from its :class:`~deid.identifiers.Identifiers`
and then called for every descriptor. What counts as an occurrence of an identifier is
:mod:`deid.matching`'s whole-word rule.
"""

from __future__ import annotations

import re
from typing import TypeVar, cast

from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from deid.identifiers import Category, Identifiers
from deid.matching import TEXT, Span, WordMatcher, identifier_keys, lower_same_length

__all__ = ["Scrubber", "scrub_value"]


class Scrubber:
    """Replaces the identifiers of one object, phone numbers and e-mail addresses in text.

    Parameters
    ----------
    identifiers
        The identifiers of the object (see :func:`deid.identifiers.collect`).
    replacement
        What each occurrence becomes.
    """

    def __init__(self, identifiers: Identifiers, *, replacement: str = "***") -> None:
        self.replacement = replacement
        #: What it was built from, for :mod:`deid.verify` to reuse (same items: same keys).
        self.items = identifiers.items
        self.keys = identifier_keys(identifiers.items)
        dates = (item.value for item in identifiers.items if item.category is Category.DATE)
        self.matcher = WordMatcher(self.keys, dates, TEXT)
        #: Built by :mod:`deid.verify` from the same keys (one object's life, like this one).
        self.searches: object = None

    def spans(self, text: str) -> list[Span]:
        """``(start, end, category)`` of every identifier in ``text``, by start (no values)."""
        if not self.matcher or not text:
            return []
        return self.matcher.spans(lower_same_length(text))

    def finds(self, text: str) -> tuple[Category, ...]:
        """The categories of the identifiers found in ``text``, in :class:`Category` order.

        Phone numbers and e-mail addresses that are not identifiers of the object are
        replaced by :meth:`scrub` but not reported here.
        """
        found = {category for _, _, category in self.spans(text)}
        return tuple(category for category in Category if category in found)

    def scrub(self, text: str) -> str:
        """Return ``text`` with every identifier, phone number and e-mail address replaced."""
        if not text:
            return text
        low = lower_same_length(text)
        spans = [(start, end) for start, end, _ in self.matcher.spans(low)]
        spans.extend(_contact_spans(low))
        if not spans:
            return text
        pieces: list[str] = []
        position = 0
        for start, end in _merge(spans):
            pieces.append(text[position:start])
            pieces.append(self.replacement)
            position = end
        pieces.append(text[position:])
        return "".join(pieces)

    def __bool__(self) -> bool:
        return bool(self.matcher)

    def __repr__(self) -> str:
        return "Scrubber(...)"


_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_PHONE = re.compile(
    r"(?<![\w.+])(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,5}\)[ .-]?)?"
    r"[0-9]{2,6}(?:[ .-][0-9]{2,8}){1,4}(?![\w]|\.[0-9])"
)
_NOT_SPACE = re.compile(r"\S+")
_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15


def _contact_spans(low: str) -> list[tuple[int, int]]:
    """E-mail addresses and phone numbers, whoever they belong to."""
    found = [match.span() for match in _EMAIL.finditer(low)] if "@" in low else []
    if sum(map(low.count, _ASCII_DIGITS)) >= _MIN_PHONE_DIGITS:  # else no number is long enough
        found.extend(_phone_spans(low, 0, len(low), split=True))
    return found


_ASCII_DIGITS = "0123456789"


def _phone_spans(low: str, start: int, end: int, *, split: bool) -> list[tuple[int, int]]:
    """Phone-shaped numbers of 7 to 15 digits that hold no date.

    A run too long to be one number (numbers separated by spaces) is searched word by word.
    """
    found: list[tuple[int, int]] = []
    for match in _PHONE.finditer(low, start, end):
        digits = sum(char.isdigit() for char in match.group())
        if digits > _MAX_PHONE_DIGITS and split:
            for word in _NOT_SPACE.finditer(low, match.start(), match.end()):
                found.extend(_phone_spans(low, word.start(), word.end(), split=False))
        elif digits >= _MIN_PHONE_DIGITS and not _holds_date(match.group()):
            found.append(match.span())
    return found


def _holds_date(text: str) -> bool:
    """Whether a phone-shaped number holds a date with separators (``2020-03-04``)."""
    return any(date.group("c") is None for date in TEXT.date.finditer(text))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans covering the same characters."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


_V = TypeVar("_V")


def scrub_value(value: _V, scrubber: Scrubber) -> _V:
    """Scrub a data element value, keeping its shape.

    A string or person name is scrubbed; a ``MultiValue``, list or tuple of them is scrubbed
    item by item into the same kind of container; anything else (``None``, bytes, numbers,
    multi-values of numbers) is returned unchanged.
    """
    if isinstance(value, PersonName):
        return cast(_V, PersonName(scrubber.scrub(str(value))))
    if isinstance(value, str):
        return cast(_V, scrubber.scrub(value))
    if isinstance(value, MultiValue | list | tuple) and all(
        isinstance(item, str | PersonName) for item in value
    ):
        items = [scrub_value(item, scrubber) for item in value]
        if isinstance(value, MultiValue):
            names = bool(items) and all(isinstance(item, PersonName) for item in items)
            return cast(_V, MultiValue(PersonName if names else str, items))
        return cast(_V, type(value)(items))
    return value
