"""Clean free text: replace the object's own identifiers, phone numbers and e-mail addresses.

A :class:`Scrubber` is built once per data set from its :class:`~deid.identifiers.Identifiers`
and then called for every descriptor. Matching is by *word*: text is cut into runs of letters
and digits, and an identifier matches a run of whole words whose letters and digits, lower-cased
and joined, equal the identifier's (so ``DOE^JOHN``, ``Doe, John`` and ``DOE JOHN`` all match,
while ``LEE`` never matches inside ``SLEEP`` and ``1234`` never inside ``123456``). Words of one
match may be separated by at most six spaces or punctuation characters. Dates are recognised in
their common spellings and compared as calendar dates.

Building a scrubber compiles no regular expression: the patterns here are fixed, and the
identifiers go into sets and dictionaries, so construction stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from deid.identifiers import Category, Identifiers

__all__ = ["Scrubber", "scrub_value"]

Span = tuple[int, int, Category]

_MAX_GAP = 6
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_ORDINAL = r"(?:st|nd|rd|th)?"
_DSEP = r"[ \-/.,]"


def _date_pattern(after_digit: str) -> re.Pattern[str]:
    """The date spellings, on lower-cased text; ``after_digit`` guards the last number."""
    numeric = (
        r"(?<![0-9])(?:"
        r"(?P<c>[0-9]{8})(?:[0-9]{2,6}(?:\.[0-9]{1,6})?)?(?:[+-][0-9]{4})?"
        r"|(?P<ymd>[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2})"
        r"|(?P<xy>[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2}))"
        rf"|(?P<d1>[0-9]{{1,2}}){_ORDINAL}{_DSEP}{{0,3}}(?P<m1>{_MONTH})\.?{_DSEP}{{0,3}}"
        r"(?P<y1>[0-9]{4}|[0-9]{2})"
        rf"){after_digit}"
    )
    named = (
        rf"(?<![a-z])(?P<m2>{_MONTH})\.?{_DSEP}{{0,3}}(?P<d2>[0-9]{{1,2}}){_ORDINAL}"
        rf"{_DSEP}{{1,3}}(?P<y2>[0-9]{{4}}){after_digit}"
    )
    return re.compile(f"{numeric}|{named}")


@dataclass(frozen=True)
class Syntax:
    """How text is cut into words and where a word may end, for decoded text or raw bytes.

    Attributes
    ----------
    word
        One word: a maximal run of letters and digits.
    next_word
        A short run of separators followed by the next word (group 1).
    date
        The date spellings.
    cut_before_nul
        Raw bytes only: a word followed by NUL may end one character early, because the byte
        after a value can be the low byte of the next tag (e.g. ``C`` of group 0043).
    """

    word: re.Pattern[str]
    next_word: re.Pattern[str]
    date: re.Pattern[str]
    cut_before_nul: bool


TEXT = Syntax(
    word=re.compile(r"[^\W_]+"),
    next_word=re.compile(rf"(?:[^\w\x00]|_){{1,{_MAX_GAP}}}([^\W_]+)"),
    date=_date_pattern(r"(?![0-9])"),
    cut_before_nul=False,
)
RAW = Syntax(
    word=re.compile(r"[a-z0-9]+"),
    next_word=re.compile(rf"[\t\n\r !-/:-@\[-`{{-~]{{1,{_MAX_GAP}}}([a-z0-9]+)"),
    date=_date_pattern(r"(?![0-9](?!\x00))"),
    cut_before_nul=True,
)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_PHONE = re.compile(
    r"(?<![\w.+])(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,5}\)[ .-]?)?"
    r"[0-9]{2,5}(?:[ .-][0-9]{2,5}){1,4}(?![\w]|\.[0-9])"
)
_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15


def lower_same_length(text: str) -> str:
    """Lower-case ``text`` keeping every offset (the rare characters that grow stay as is)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(char.lower() if len(char.lower()) == 1 else char for char in text)


def date_candidates(match: re.Match[str]) -> set[str]:
    """The ``YYYYMMDD`` dates a date-shaped match may mean (both orders when ambiguous)."""
    text = match.group()
    if match.group("c") is not None:
        return {text[:8]}
    if match.group("m1") is not None:
        return _named_month(match.group("y1"), match.group("m1"), match.group("d1"))
    if match.group("m2") is not None:
        return _named_month(match.group("y2"), match.group("m2"), match.group("d2"))
    first, second, third = _NUMBER.findall(text)
    if match.group("ymd") is not None:
        return {_ymd(first, second, third)}
    pairs = ((second, first), (first, second))
    return {_ymd(year, month, day) for year in _years(third) for month, day in pairs}


def _named_month(year: str, month: str, day: str) -> set[str]:
    number = str(_MONTHS[month[:3]])
    return {_ymd(full, number, day) for full in _years(year)}


_NUMBER = re.compile(r"[0-9]+")


def _years(year: str) -> tuple[str, ...]:
    return (year,) if len(year) == 4 else (f"19{year}", f"20{year}")


def _ymd(year: str, month: str, day: str) -> str:
    return f"{year}{int(month):02d}{int(day):02d}"


class WordMatcher:
    """Finds identifiers made of whole words, and dates, in lower-cased text.

    Parameters
    ----------
    entries
        ``(value, category)`` pairs; earlier pairs win when two give the same words.
    dates
        ``YYYYMMDD`` strings.
    syntax
        :data:`TEXT` for decoded text, :data:`RAW` for bytes decoded as latin-1.
    """

    def __init__(
        self, entries: Iterable[tuple[str, Category]], dates: Iterable[str], syntax: Syntax
    ) -> None:
        self._syntax = syntax
        self._dates = frozenset(dates)
        self._words: dict[str, Category] = {}
        self._prefixes: set[str] = set()
        for value, category in entries:
            key = "".join(syntax.word.findall(lower_same_length(value)))
            if key and key not in self._words:
                self._words[key] = category
                self._prefixes.update(key[:end] for end in range(1, len(key) + 1))

    def __bool__(self) -> bool:
        return bool(self._words or self._dates)

    def spans(self, low: str) -> list[Span]:
        """Spans of identifiers and dates in ``low`` (already lower-cased), by start."""
        found = self._word_spans(low) if self._words else []
        if self._dates:
            found.extend(self._date_spans(low))
            found.sort()
        return found

    def _date_spans(self, low: str) -> list[Span]:
        return [
            (match.start(), match.end(), Category.DATE)
            for match in self._syntax.date.finditer(low)
            if not self._dates.isdisjoint(date_candidates(match))
        ]

    def _word_spans(self, low: str) -> list[Span]:
        found: list[Span] = []
        done = 0
        prefixes = self._prefixes
        cut = self._syntax.cut_before_nul
        for word in self._syntax.word.finditer(low):
            start = word.start()
            if start < done:
                continue
            text = word.group()
            if text in prefixes or (cut and text[:-1] in self._words):
                best = self._longest(low, text, word.end())
                if best is not None:
                    found.append((start, best[0], best[1]))
                    done = best[0]
        return found

    def _longest(self, low: str, key: str, end: int) -> tuple[int, Category] | None:
        """The longest identifier made of the word ``key`` (ending at ``end``) and those after."""
        best = None
        next_word = self._syntax.next_word
        while True:
            hit = self._hit(low, key, end)
            if hit is not None:
                best = hit
            if key not in self._prefixes:
                return best
            following = next_word.match(low, end)
            if following is None:
                return best
            key += following.group(1)
            end = following.end()

    def _hit(self, low: str, key: str, end: int) -> tuple[int, Category] | None:
        """The identifier whose words are exactly ``key``, if any.

        In raw bytes, a word followed by NUL may also match without its last character.
        """
        category = self._words.get(key)
        if category is not None:
            return (end, category)
        if self._syntax.cut_before_nul and len(key) > 1 and low[end : end + 1] == "\x00":
            category = self._words.get(key[:-1])
            if category is not None:
                return (end - 1, category)
        return None


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
        dates = (item.value for item in identifiers.items if item.category is Category.DATE)
        entries = [
            (item.value, item.category)
            for item in sorted(identifiers.items, key=lambda item: _PRIORITY[item.category])
            if item.category is not Category.DATE
        ]
        self._matcher = WordMatcher(entries, dates, TEXT)

    def spans(self, text: str) -> list[Span]:
        """``(start, end, category)`` of every identifier in ``text``, by start (no values)."""
        if not self._matcher:
            return []
        return self._matcher.spans(lower_same_length(text))

    def finds(self, text: str) -> tuple[Category, ...]:
        """The categories of the identifiers found in ``text``, in :class:`Category` order.

        Phone numbers and e-mail addresses that are not identifiers of the object are
        scrubbed by :meth:`scrub` but not reported here.
        """
        found = {category for _, _, category in self.spans(text)}
        return tuple(category for category in Category if category in found)

    def scrub(self, text: str) -> str:
        """Return ``text`` with every identifier, phone number and e-mail address replaced."""
        if not text:
            return text
        low = lower_same_length(text)
        spans = [(start, end) for start, end, _ in self._matcher.spans(low)]
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
        return bool(self._matcher)

    def __repr__(self) -> str:
        return "Scrubber(...)"


# Full names before their parts, so that a whole name is replaced once.
_PRIORITY = {
    Category.NAME: 0,
    Category.ID: 1,
    Category.INSTITUTION: 2,
    Category.ADDRESS: 3,
    Category.PHONE: 4,
    Category.OTHER: 5,
    Category.NAME_PART: 6,
    Category.DATE: 7,
}


def _contact_spans(low: str) -> list[tuple[int, int]]:
    """E-mail addresses and phone numbers, whoever they belong to."""
    found = [match.span() for match in _EMAIL.finditer(low)]
    for match in _PHONE.finditer(low):
        digits = sum(char.isdigit() for char in match.group())
        if _MIN_PHONE_DIGITS <= digits <= _MAX_PHONE_DIGITS and not _looks_like_date(match):
            found.append(match.span())
    return found


def _looks_like_date(match: re.Match[str]) -> bool:
    date = TEXT.date.fullmatch(match.group())
    return date is not None and date.group("m2") is None


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

    Strings and person names are scrubbed; a ``MultiValue``, list or tuple is scrubbed item by
    item into the same kind of container; anything else (``None``, bytes, numbers) is returned
    unchanged.
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
