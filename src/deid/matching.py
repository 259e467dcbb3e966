"""Whole-word matching of an object's identifiers in text and in raw bytes.

Matching is by *word*, case-insensitive. Text is cut into words (maximal runs of letters and
digits); an identifier is cut the same way, and each of its words also between letters and
digits when both sides have two characters or more (``MRN7781234`` -> ``mrn`` ``7781234``). An
identifier matches a run of whole text words, separated by at most six spaces or punctuation
characters, that spell its words in order, where one text word may join several identifier
words. So ``DOE^JOHN``, ``Doe, John``, ``DOE JOHN`` and ``DOEJOHN`` all match the name, and
``MRN-7781234`` the ID ``MRN7781234``; ``LEE`` never matches inside ``SLEEP``, nor ``1234``
inside ``123456``. Dates are found in their common spellings and compared as calendar dates.

One exception to whole words: the digits of an ID. A run of five digits or more in an ID
(``7781234`` of ``MRN7781234``, ``12345`` of ``12345``) also matches where letters are glued to
it (``ABC12345XYZ``, ``PT7781234``, the bare ``7781234``), but never inside a longer run of
digits (``12345`` stays in ``123456``, a number of its own). Shorter digit runs, letters and
names match as whole words only.

A :class:`WordMatcher` compiles no regular expression (the patterns here are fixed):
identifiers go into a dictionary and a set, so construction stays cheap. Used by
:mod:`deid.descriptors` (cleaning) and :mod:`deid.verify` (searching).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from deid.identifiers import Category, Identifier

__all__ = [
    "RAW",
    "TEXT",
    "Key",
    "Span",
    "Syntax",
    "WordMatcher",
    "identifier_keys",
    "lower_same_length",
]

Span = tuple[int, int, Category]

_MAX_GAP = 6
#: Digit runs of an ID this long or longer also match glued to letters (see the docstring).
_MIN_GLUED_DIGITS = 5
_MIN_PIECE = 2
_MIN_ANCHOR = 3
_YEAR_BEFORE = 24
_YEAR_AFTER = 24
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
_NUMBER = re.compile(r"[0-9]+")
_PIECE = re.compile(r"[0-9]+|[^\W0-9_]+")


def _numeric_date(after_digit: str, year: str) -> re.Pattern[str]:
    """Dates starting with a number, on lower-cased text.

    ``after_digit`` guards the end, ``year`` is the pattern of a year written last. The pattern
    starts with a digit class (and looks back after it) so that the regular expression engine
    skips every position that does not hold a digit.
    """
    return re.compile(
        r"[0-9](?<![0-9][0-9])(?:"
        r"(?P<c>[0-9]{7})(?:[0-9]{2,6}(?:\.[0-9]{1,6})?)?(?:[+-][0-9]{4})?"
        r"|(?P<ymd>[0-9]{3}[-/.][0-9]{1,2}[-/.][0-9]{1,2})"
        rf"|(?P<xy>[0-9]?[-/.][0-9]{{1,2}}[-/.]{year})"
        rf"|(?P<d1>[0-9]?){_ORDINAL}{_DSEP}{{0,3}}(?P<m1>{_MONTH})\.?{_DSEP}{{0,3}}"
        rf"(?P<y1>{year})"
        rf"){after_digit}"
    )


def _named_date(after_digit: str) -> re.Pattern[str]:
    """Dates starting with the month name (``Jan 2, 1980``); the caller checks the start."""
    return re.compile(
        rf"(?P<m2>{_MONTH})\.?{_DSEP}{{0,3}}(?P<d2>[0-9]{{1,2}}){_ORDINAL}"
        rf"{_DSEP}{{1,3}}(?P<y2>[0-9]{{4}}){after_digit}"
    )


def _digit_at(text: str, index: int) -> bool:
    return 0 <= index < len(text) and "0" <= text[index] <= "9"


def _is_ascii_word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _is_text_gap_char(char: str) -> bool:
    return char != "\x00" and not char.isalnum()


# Every byte but ASCII letters and digits becomes a space (to split raw bytes into words).
_ASCII_WORDS = bytes(
    byte if chr(byte).isascii() and chr(byte).isalnum() else 0x20 for byte in range(256)
)
_RAW_GAP = r"\t\n\r !-/:-@\[-`{-~"
_RAW_GAP_CHARS = frozenset(
    "\t\n\r" + "".join(chr(c) for c in range(0x20, 0x7F) if not chr(c).isalnum())
)


@dataclass(frozen=True)
class Syntax:
    """How text is cut into words and where a match may end: decoded text or raw bytes.

    Attributes
    ----------
    word
        One word: a maximal run of letters and digits.
    is_word_char
        Whether a character (or the empty string) is part of a word.
    is_gap_char
        Whether a character may separate the words of one identifier.
    next_word
        A short run of separators followed by the next word (group 1).
    date
        The date spellings that start with a number.
    named_date
        The date spellings that start with the month name.
    short_years
        Whether dates may be written with two-digit years (``02/01/80``).
    cut_before_nul
        Raw bytes only: a word followed by NUL may end one character early, because the byte
        after a value can be the low byte of the next tag (``C`` of group 0043).
    """

    word: re.Pattern[str]
    is_word_char: Callable[[str], bool]
    is_gap_char: Callable[[str], bool]
    next_word: re.Pattern[str]
    date: re.Pattern[str]
    named_date: re.Pattern[str]
    short_years: bool
    cut_before_nul: bool


TEXT = Syntax(
    word=re.compile(r"[^\W_]+"),
    is_word_char=str.isalnum,
    is_gap_char=_is_text_gap_char,
    next_word=re.compile(rf"(?:[^\w\x00]|_){{1,{_MAX_GAP}}}([^\W_]+)"),
    date=_numeric_date(r"(?![0-9])", r"(?:[0-9]{4}|[0-9]{2})"),
    named_date=_named_date(r"(?![0-9])"),
    short_years=True,
    cut_before_nul=False,
)
RAW = Syntax(
    word=re.compile(r"[a-z0-9]+"),
    is_word_char=_is_ascii_word_char,
    is_gap_char=_RAW_GAP_CHARS.__contains__,
    next_word=re.compile(rf"[{_RAW_GAP}]{{1,{_MAX_GAP}}}([a-z0-9]+)"),
    date=_numeric_date(r"(?![0-9](?!\x00))", r"[0-9]{4}"),
    named_date=_named_date(r"(?![0-9](?!\x00))"),
    short_years=False,
    cut_before_nul=True,
)


def lower_same_length(text: str) -> str:
    """Lower-case ``text`` keeping every offset (the rare characters that grow stay as is)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(char.lower() if len(char.lower()) == 1 else char for char in text)


def date_candidates(match: re.Match[str]) -> set[str]:
    """The ``YYYYMMDD`` dates a date-shaped match may mean (both orders when ambiguous)."""
    text = match.group()
    groups = match.groupdict()
    if groups.get("m2") is not None:
        return _named_month(groups["y2"], groups["m2"], groups["d2"])
    if groups["c"] is not None:
        return {text[:8]}
    numbers = _NUMBER.findall(text)
    if groups["m1"] is not None:
        return _named_month(groups["y1"], groups["m1"], numbers[0])
    first, second, third = numbers
    if groups["ymd"] is not None:
        return {_ymd(first, second, third)}
    pairs = ((second, first), (first, second))
    return {_ymd(year, month, day) for year in _years(third) for month, day in pairs}


def _named_month(year: str, month: str, day: str) -> set[str]:
    number = str(_MONTHS[month[:3]])
    return {_ymd(full, number, day) for full in _years(year)}


def _years(year: str) -> tuple[str, ...]:
    return (year,) if len(year) == 4 else (f"19{year}", f"20{year}")


def _ymd(year: str, month: str, day: str) -> str:
    return f"{year}{int(month):02d}{int(day):02d}"


class Key(NamedTuple):
    """An identifier as the matcher sees it (see :func:`identifier_keys`).

    Attributes
    ----------
    joined
        Its words, lower-cased and joined.
    category
        Its category.
    starts
        The joined runs of its first words that a text word may begin with.
    head, tail
        When its first word is shorter than three characters: that word, and the others
        joined (the identifier is then anchored on ``tail``); else empty.
    length
        Length of the original value.
    ascii
        Whether the original value is ASCII.
    """

    joined: str
    category: Category
    starts: tuple[str, ...]
    head: str
    tail: str
    length: int
    ascii: bool


# Full names before their parts, so that a whole name is one match.
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


def identifier_keys(items: Iterable[Identifier]) -> list[Key]:
    """The keys of every identifier but dates, full names first."""
    keys: list[Key] = []
    for item in sorted(items, key=lambda item: _PRIORITY[item.category]):
        if item.category is not Category.DATE:
            pieces = _pieces(item.value)
            if pieces:
                keys.append(_key(pieces, item))
    return keys


def _pieces(value: str) -> list[str]:
    """The words of ``value``, each cut between letters and digits when both parts have two
    characters or more (``mrn7781234`` -> ``mrn``, ``7781234``)."""
    pieces: list[str] = []
    for word in TEXT.word.findall(lower_same_length(value)):
        if word.isalpha() or word.isdigit():
            pieces.append(word)
            continue
        parts = _PIECE.findall(word)
        if len(parts) > 1 and min(map(len, parts)) >= _MIN_PIECE:
            pieces.extend(parts)
        else:
            pieces.append(word)
    return pieces


def _key(pieces: list[str], item: Identifier) -> Key:
    starts: list[str] = []
    joined = ""
    for piece in pieces:
        joined += piece
        starts.append(joined)
    head = tail = ""
    if len(pieces) > 1 and len(pieces[0]) < _MIN_ANCHOR:
        head = pieces[0]
        del starts[0]
        for piece in pieces[1:]:
            tail += piece
            starts.append(tail)
    value = item.value
    return Key(joined, item.category, tuple(starts), head, tail, len(value), value.isascii())


class WordMatcher:
    """Finds identifiers made of whole words, and dates, in lower-cased text.

    Parameters
    ----------
    keys
        The identifiers (:func:`identifier_keys`); the first wins when two spell the same.
    dates
        ``YYYYMMDD`` strings.
    syntax
        :data:`TEXT` for decoded text, :data:`RAW` for bytes decoded as latin-1.

    Notes
    -----
    Candidates are found from the distinct words of the text, so text without any word that
    starts an identifier costs one pass of the word pattern. A first word shorter than three
    characters (``1`` of ``1 MAIN ST``) would make every such word of the text (UID parts) a
    candidate: those identifiers are anchored on their second word instead, and the first
    word is checked before it.
    """

    def __init__(self, keys: Iterable[Key], dates: Iterable[str], syntax: Syntax) -> None:
        self._syntax = syntax
        self._words: dict[str, Category] = {}
        self._heads: dict[str, list[tuple[str, Category]]] = {}
        self._prefixes: set[str] = set()
        for key in keys:
            self._prefixes.update(key.starts)
            if key.joined not in self._words:
                self._words[key.joined] = key.category
                if key.head:
                    self._heads.setdefault(key.tail, []).append((key.head, key.category))
        # The digit runs of IDs that match glued to letters, with their category.
        self._digits: dict[str, Category] = {}
        for key in keys:
            if key.category is Category.ID:
                for run in _NUMBER.findall(key.joined):
                    if len(run) >= _MIN_GLUED_DIGITS:
                        self._digits.setdefault(run, key.category)
        self._dates = frozenset(dates)
        years = {date[:4] for date in self._dates}
        if syntax.short_years:
            years.update(date[2:4] for date in self._dates)
        self._years = tuple(sorted(years))

    def __bool__(self) -> bool:
        return bool(self._words or self._dates)

    def spans(self, low: str) -> list[Span]:
        """Spans of identifiers and dates in ``low`` (already lower-cased), by start."""
        found = self._word_spans(low, self._distinct_words(low)) if self._words else []
        for run in self._digits:
            if run in low:
                found = self._add_glued(low, found)
                break
        if self._dates:
            found.extend(self._date_spans(low))
            found.sort()
        return found

    def _distinct_words(self, low: str) -> set[str]:
        if low.isascii():  # the same words, found faster
            return set(low.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split())
        return set(self._syntax.word.findall(low))

    def byte_spans(self, data: bytes) -> list[Span]:
        """Spans (byte offsets) of ASCII identifiers and dates in raw bytes, by start.

        A first pass over the bytes, at C speed, looks for a word that can start an identifier
        and for the years of the dates; the bytes are decoded for matching only when one is
        there.
        """
        lowered = data.lower()
        found: list[Span] = []
        if self._words:
            words = set(lowered.translate(_ASCII_WORDS).decode("ascii").split())
            if not words.isdisjoint(self._prefixes) or self._cut_candidates(words):
                found = self._word_spans(lowered.decode("latin-1"), words)
        if self._digits and any(run.encode("ascii") in lowered for run in self._digits):
            found = self._add_glued(lowered.decode("latin-1"), found)
        if self._dates and any(year.encode("ascii") in lowered for year in self._years):
            found.extend(self._date_spans(lowered.decode("latin-1")))
            found.sort()
        return found

    def _cut_candidates(self, words: set[str]) -> bool:
        """Whether a word, less its last character, spells an identifier (see ``Syntax``)."""
        if not self._syntax.cut_before_nul:
            return False
        stems = {word[:-1] for word in words}
        return not (self._words.keys().isdisjoint(stems) and self._heads.keys().isdisjoint(stems))

    # -- digits of IDs glued to letters ----------------------------------------------------

    def _add_glued(self, low: str, found: list[Span]) -> list[Span]:
        """``found`` and the ID digit runs that stand outside it, by start."""
        glued = [
            span
            for span in self._glued_spans(low)
            if not any(start < span[1] and span[0] < end for start, end, _ in found)
        ]
        return sorted(found + glued) if glued else found

    def _glued_spans(self, low: str) -> list[Span]:
        """Every occurrence of an ID's digit run with no ASCII digit on either side (in raw
        bytes the byte after may be a digit followed by NUL: the low byte of the next tag,
        as for words)."""
        found: list[Span] = []
        cut = self._syntax.cut_before_nul
        for run, category in self._digits.items():
            at = low.find(run)
            while at >= 0:
                end = at + len(run)
                if not _digit_at(low, at - 1) and (
                    not _digit_at(low, end) or (cut and low[end + 1 : end + 2] == "\x00")
                ):
                    found.append((at, end, category))
                at = low.find(run, at + 1)
        return found

    # -- dates ----------------------------------------------------------------------------

    def _date_spans(self, low: str) -> list[Span]:
        """Dates, searched only around the occurrences of their years."""
        dates = self._dates
        found: set[Span] = set()
        for start, stop in self._year_windows(low):
            for match in self._syntax.date.finditer(low, start, stop):
                if not dates.isdisjoint(date_candidates(match)):
                    found.add((match.start(), match.end(), Category.DATE))
            for match in self._syntax.named_date.finditer(low, start, stop):
                at = match.start()
                if at and "a" <= low[at - 1] <= "z":
                    continue
                if not dates.isdisjoint(date_candidates(match)):
                    found.add((at, match.end(), Category.DATE))
        return sorted(found)

    def _year_windows(self, low: str) -> list[tuple[int, int]]:
        """Merged ranges around each year occurrence wide enough for any date spelling."""
        windows: list[tuple[int, int]] = []
        for year in self._years:
            at = low.find(year)
            while at >= 0:
                stop = at + len(year) + _YEAR_AFTER
                while stop < len(low) and low[stop].isdigit():
                    stop += 1
                windows.append((max(0, at - _YEAR_BEFORE), stop))
                at = low.find(year, at + 1)
        merged: list[tuple[int, int]] = []
        for start, stop in sorted(windows):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
            else:
                merged.append((start, stop))
        return merged

    # -- words ----------------------------------------------------------------------------

    def _word_spans(self, low: str, words: set[str]) -> list[Span]:
        found: list[Span] = []
        done = 0
        for start, word in self._first_words(low, words):
            if start < done:
                continue
            best = self._longest(low, start, word)
            if best is not None:
                found.append(best)
                done = best[1]
        return found

    def _first_words(self, low: str, words: set[str]) -> list[tuple[int, str]]:
        """Where a word that may start an identifier stands, by position.

        ``words`` are the distinct words of ``low``; only those that begin an identifier are
        located.
        """
        syntax = self._syntax
        starts = words & self._prefixes
        if syntax.cut_before_nul:
            starts.update(
                word for word in words if word[:-1] in self._words or word[:-1] in self._heads
            )
        found: list[tuple[int, str]] = []
        is_word = syntax.is_word_char
        for word in starts:
            size = len(word)
            at = low.find(word)
            while at >= 0:
                end = at + size
                if not (at and is_word(low[at - 1])) and not is_word(low[end : end + 1]):
                    found.append((at, word))
                at = low.find(word, end)
        found.sort()
        return found

    def _longest(self, low: str, start: int, key: str) -> Span | None:
        """The longest identifier made of the word ``key`` at ``start`` and those after."""
        best = None
        end = start + len(key)
        next_word = self._syntax.next_word
        while True:
            hit = self._hit(low, start, key, end)
            if hit is not None:
                best = hit
            if key not in self._prefixes:
                return best
            following = next_word.match(low, end)
            if following is None:
                return best
            key += following.group(1)
            end = following.end()

    def _hit(self, low: str, start: int, key: str, end: int) -> Span | None:
        """The identifier spelled exactly by ``key``, if any.

        In raw bytes, words followed by NUL may also match without their last character.
        """
        found = self._lookup(low, start, key, end)
        if found is None and self._syntax.cut_before_nul and low[end : end + 1] == "\x00":
            found = self._lookup(low, start, key[:-1], end - 1)
        return found

    def _lookup(self, low: str, start: int, key: str, end: int) -> Span | None:
        category = self._words.get(key)
        if category is not None:
            return (start, end, category)
        for head, category in self._heads.get(key, ()):
            begin = self._head_start(low, start, head)
            if begin is not None:
                return (begin, end, category)
        return None

    def _head_start(self, low: str, start: int, head: str) -> int | None:
        """Where the word ``head`` starts when it stands before ``start`` across a short gap."""
        is_gap = self._syntax.is_gap_char
        gap = start
        while gap > 0 and start - gap < _MAX_GAP and is_gap(low[gap - 1]):
            gap -= 1
        begin = gap - len(head)
        if gap == start or begin < 0 or low[begin:gap] != head:
            return None
        if begin and self._syntax.is_word_char(low[begin - 1]):
            return None
        return begin
