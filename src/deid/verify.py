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
import functools
import re
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING

from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from deid.descriptors import Scrubber
from deid.errors import ResidualPhiError
from deid.identifiers import Category, Identifier, Identifiers
from deid.matching import RAW, TEXT, WordMatcher, identifier_keys, lower_same_length
from deid.offsets import element_spans
from deid.rawitems import convert_sequence
from deid.tags import format_tag, held_vr, keyword_of
from deid.values import TEXT_VRS, fast_reading, level_codec, raw_vr, read_values

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
    ignore: Collection[str] = (),
    shifted_dates: bool = False,
    scrubber: Scrubber | None = None,
    pixel_at_end: bool = False,
) -> None:
    """Raise :class:`~deid.errors.ResidualPhiError` when the output holds an identifier.

    Parameters are those of :func:`find_residual`.

    Raises
    ------
    ResidualPhiError
        With the hits (tag paths, offsets and categories; never values).
    """
    hits = find_residual(
        ds,
        encoded,
        identifiers,
        skip=skip,
        pixel_value=pixel_value,
        ignore=ignore,
        shifted_dates=shifted_dates,
        scrubber=scrubber,
        pixel_at_end=pixel_at_end,
    )
    if hits:
        raise ResidualPhiError(hits)


def find_residual(
    ds: Dataset,
    encoded: bytes | None,
    identifiers: Identifiers,
    *,
    skip: Collection[Category | str] = frozenset(),
    pixel_value: bytes | None = None,
    ignore: Collection[str] = (),
    shifted_dates: bool = False,
    scrubber: Scrubber | None = None,
    pixel_at_end: bool = False,
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
    ignore
        Locations (``"(0012,0063)"``, ``"(0018,A001)[2]"``: an element or an item and all in
        it) not searched: what deid itself wrote (its markers), whose text is fixed.
    shifted_dates
        Every DA and DT value of the output was shifted (Retain Longitudinal Modified
        Dates): a date found in a DA or DT element is a shifted date that happens to equal
        an original one, not a leak; found anywhere else it is one.
    scrubber
        A :class:`~deid.descriptors.Scrubber` already built for the same identifiers (after
        ``skip``): its keys and text matcher are reused instead of built again.
    pixel_at_end
        The caller knows that ``encoded`` ends with ``pixel_value`` (it wrote it last): the
        bytes are not compared again.

    Coded strings (VR CS: defined terms such as Image Type) are not searched when they are
    well-formed (:func:`plain_cs`): a patient whose name is a defined term would otherwise
    reject every image. A CS value that is not a Code String is searched like text. A raw-byte
    hit is attributed to the element whose value holds it; hits in ignored elements and
    well-formed CS values are dropped.

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
    searches = searches_for(kept, scrubber)
    text = searches.text
    ignored = tuple(ignore)
    exempt = _DATE_VRS if shifted_dates else frozenset()
    # Kept plain-ASCII values are first searched decoded only for what the raw search cannot
    # find (see _gather); when either search finds anything, they are searched in full, so
    # that the hits are those of one full decoded search.
    narrow = bool(encoded) and fast_reading() and _verbatim(ds)
    found_texts, verbatim = _texts(ds, ignored, narrow)
    decoded = set(_search(found_texts, text, exempt))
    again = False
    if verbatim is not None:
        again = any(True for _ in _search(verbatim, searches.short, exempt))
    found: list[tuple[int, str]] = []
    if encoded:
        raw, needles = searches.raw, searches.needles
        regions = _regions(encoded, pixel_value, pixel_at_end) if raw or needles else []
        found = sorted(set(_raw_hits(encoded, regions, raw, needles)))
    if verbatim is not None and (again or found):
        decoded = set(_search(_texts(ds, ignored, False)[0], text, exempt))
    hits = sorted(decoded)
    if found:
        hits.extend(_attribute(encoded or b"", found, ignored, exempt))
    return tuple(hits)


def searches_for(kept: Identifiers, scrubber: Scrubber | None) -> _Searches:
    """The matchers of ``kept``: those of ``scrubber`` where it was built from the same
    identifiers (kept on it for the next search), else new ones."""
    shared = scrubber is not None and scrubber.items == kept.items
    searches = scrubber.searches if scrubber is not None and shared else None
    if not isinstance(searches, _Searches):
        searches = _Searches(kept.items, scrubber if shared else None)
        if scrubber is not None and shared:
            scrubber.searches = searches
    return searches


class _Searches:
    """The matchers of one set of identifiers (kept on the scrubber built from the same)."""

    def __init__(self, items: tuple[Identifier, ...], scrubber: Scrubber | None) -> None:
        dates = [item.value for item in items if item.category is Category.DATE]
        if scrubber is not None:
            keys, self.text = scrubber.keys, scrubber.matcher
        else:
            keys = identifier_keys(items)
            self.text = WordMatcher(keys, dates, TEXT)
        raw_keys = [key for key in keys if key.ascii and key.length >= _MIN_RAW_LENGTH]
        self.raw = WordMatcher(raw_keys, dates, RAW)
        # What the raw search cannot find, for kept values (see _gather).
        short_keys = [key for key in keys if not key.ascii or key.length < _MIN_RAW_LENGTH]
        self.short = WordMatcher(short_keys, dates, TEXT)
        self.needles = _non_ascii_needles(items)


_DATE_VRS = frozenset({"DA", "DT"})


def _exempt(category: str, vr: str, exempt: frozenset[str]) -> bool:
    return category == Category.DATE.value and vr in exempt


def _ignored(location: str, ignore: tuple[str, ...]) -> bool:
    return any(location == p or location.startswith((p + ">", p + "[")) for p in ignore)


def _attribute(
    encoded: bytes, found: list[tuple[int, str]], ignore: tuple[str, ...], exempt: frozenset[str]
) -> list[str]:
    """Name the element behind each raw hit; drop hits in ignored and CS elements."""
    spans = element_spans(encoded)
    out: list[str] = []
    for offset, category in found:
        inside = [s for s in spans if s[0] <= offset < s[1]]
        if not inside:
            out.append(f"raw bytes @offset {offset}: {category}")
            continue
        start, end, location, vr = max(inside, key=lambda s: s[0])
        coded = vr == "CS" and plain_cs(encoded[start:end])
        if coded or _ignored(location, ignore) or _exempt(category, vr, exempt):
            continue
        out.append(f"raw bytes @offset {offset} in {location}: {category}")
    return sorted(set(out))


# -- decoded values ------------------------------------------------------------------------


def _verbatim(ds: Dataset) -> bool:
    """Whether the encoded output holds every raw element's value as its bytes, in plain
    little-endian framing (not deflated, not byte-swapped)."""
    file_meta = getattr(ds, "file_meta", None)
    ts = str(getattr(file_meta, "TransferSyntaxUID", "") or "")
    return ts in _VERBATIM_SYNTAXES


_VERBATIM_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})


_Found = tuple[list[tuple[str, int, str]], list[str]]


def _texts(ds: Dataset, ignore: tuple[str, ...], narrow: bool) -> tuple[_Found, _Found | None]:
    """The decoded text values with where they sit; with ``narrow``, kept plain-ASCII raw
    values apart (see :func:`_gather`)."""
    found: _Found = ([], [])
    verbatim: _Found | None = ([], []) if narrow else None
    fast = fast_reading()
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _gather(file_meta, "", found[0], found[1], ignore, fast)
    _gather(ds, "", found[0], found[1], ignore, fast, verbatim)
    return found, verbatim


def _search(found: _Found, matcher: WordMatcher, exempt: frozenset[str]) -> Iterator[str]:
    """Search all the texts at once, joined by NUL (no match crosses a NUL)."""
    places, texts = found
    if not texts or not matcher:
        return
    starts: list[int] = []
    position = 0
    for text in texts:
        starts.append(position)
        position += len(text) + 1
    for start, _, category in matcher.spans(lower_same_length("\x00".join(texts))):
        path, tag, vr = places[bisect.bisect_right(starts, start) - 1]
        if _exempt(category.value, vr, exempt):
            continue
        keyword = keyword_of(tag)
        name = f" {keyword}" if keyword else ""
        yield f"{path}{format_tag(tag)}{name}: {category.value}"


@functools.lru_cache(maxsize=1024)
def _ignored_here(path: str, ignore: tuple[str, ...]) -> frozenset[int] | None:
    """The tags of this level that ``ignore`` names (``None``: the whole level is ignored).

    Same as :func:`_ignored` on each element's location ``path + (gggg,eeee)``, without
    formatting one: an ignored item or sequence above covers the level, an exact location
    names one tag.
    """
    tags: set[int] = set()
    for pattern in ignore:
        if path.startswith((pattern + ">", pattern + "[")):
            return None
        if pattern.startswith(path):
            rest = pattern[len(path) :]
            try:
                tag = int(rest[1:5] + rest[6:10], 16) if len(rest) == 11 else -1
            except ValueError:
                continue
            if tag >= 0 and format_tag(tag) == rest:
                tags.add(tag)
    return frozenset(tags)


def _gather(
    ds: Dataset,
    path: str,
    places: list[tuple[str, int, str]],
    texts: list[str],
    ignore: tuple[str, ...],
    fast: bool = False,
    kept: _Found | None = None,
) -> None:
    """Append every text value of ``ds`` and its sequences, with where it sits.

    Raw (undecoded) values of single-byte or UTF-8 data sets are read as latin-1 text, which
    keeps every ASCII identifier findable without pydicom's decoding; others are decoded
    (text values still raw as pydicom would, by :mod:`deid.values`).

    With ``kept`` (fast reading, written as read), a raw text value of a single-byte or UTF-8
    level that is one printable ASCII value under 12288 bytes (no backslash, no control
    character; padding aside) goes there instead, as its bytes less trailing padding: the
    same words as its decoded value, and the output holds its bytes as read, so that the
    raw-byte search finds every ASCII identifier of four characters or more in it (no
    header byte before a value of that size is a letter or digit).
    """
    skipped = _ignored_here(path, ignore)
    if skipped is None:
        return
    simple = _simple_charset(ds)
    codec = level_codec(ds) if fast and not simple else None
    narrow = kept is not None and (simple or codec is not None)
    for base_tag, held in list(ds.items()):
        tag = int(base_tag)
        if skipped and tag in skipped:
            continue
        vr = held_vr(held, tag)
        if vr in _NOT_SEARCHED and (vr != "CS" or _plain_held_cs(held)):
            continue
        if vr == "UN":
            text = _textual(held.value if held is not None else None)
            if text:
                places.append((path, tag, vr))
                texts.append(text)
            continue
        if narrow and vr in TEXT_VRS and isinstance(held, RawDataElement):
            raw = held.value
            if raw is not None and len(raw) < _MAX_PLAIN:
                body = raw.rstrip(b" \x00")
                if _NOT_PLAIN.search(body) is None:
                    if body and kept is not None:
                        kept[0].append((path, tag, vr))
                        kept[1].append(body.decode("ascii"))
                    continue
        values = None
        if codec is not None and isinstance(held, RawDataElement) and raw_vr(held) == vr:
            values = read_values(held, vr, codec)
        if values is not None:
            text = "\\".join(values)
        elif simple and vr != "SQ" and isinstance(held, RawDataElement):
            text = held.value.decode("latin-1") if held.value else ""
        else:
            if vr == "SQ":
                convert_sequence(ds, tag)  # pydicom's items, built faster
            elem = _convert(ds, tag)
            if elem is None:
                continue
            if vr == "SQ":
                location = f"{path}{format_tag(tag)}"
                for index, item in enumerate(elem.value or ()):
                    _gather(item, f"{location}[{index}]>", places, texts, ignore, fast, kept)
                continue
            value = elem.value
            text = value if type(value) is str else _text(value)
        if text:
            places.append((path, tag, vr))
            texts.append(text)


_NOT_SEARCHED = frozenset({"CS"} | _NO_TEXT_VRS - {"SQ", "UN"})
_CS_VALUE = re.compile(rb"[A-Z0-9 _]{0,16}")


def plain_cs(value: bytes) -> bool:
    """Whether ``value`` is a well-formed Code String: upper-case letters, digits, space and
    underscore, at most 16 of them per value (PS3.5 6.2). Only such values are left out of the
    search; anything else in a CS element (a wrong length that swallowed the next elements, a
    name typed into a coded field) is searched like text."""
    body = value.rstrip(b" \x00")
    return all(_CS_VALUE.fullmatch(part.strip(b" ")) for part in body.split(b"\\"))


def _plain_held_cs(held: object) -> bool:
    value = getattr(held, "value", None)
    if value is None:
        return True
    if isinstance(value, bytes | bytearray):
        return plain_cs(bytes(value))
    parts = [value] if isinstance(value, str) else [str(v) for v in value]
    try:
        return plain_cs("\\".join(parts).encode("ascii"))
    except UnicodeEncodeError:
        return False


_MAX_PLAIN = 0x3000  # a 2-byte length's high byte stays below "0"
_NOT_PLAIN = re.compile(rb"[^ -\[\]-~]")  # a byte that is not printable ASCII, or a backslash
_MAX_UN_TEXT = 4096
_PRINTABLE = frozenset(range(0x20, 0x7F)) | frozenset(range(0xA0, 0x100)) | {0, 9, 10, 13}


def _textual(value: object) -> str:
    """A UN value that is text (a VR this dictionary does not know) read as latin-1; else ''.

    Binary UN values are left to the raw search: short identifiers would match by chance.
    """
    if not isinstance(value, bytes) or not value or len(value) > _MAX_UN_TEXT:
        return ""
    if not all(byte in _PRINTABLE for byte in value):
        return ""
    return value.decode("latin-1")


_SIMPLE_CHARSETS = frozenset(
    {"", "iso8859", "ISO_IR 6", "ISO 2022 IR 6", "ISO_IR 192"}
    | {f"ISO_IR {n}" for n in (100, 101, 109, 110, 144, 126, 127, 138, 148, 203, 166, 13)}
)


def _simple_charset(ds: Dataset) -> bool:
    """Whether raw text of ``ds`` can be read byte by byte (no ISO 2022 escapes, no GB)."""
    try:
        charset = ds._character_set
    except Exception:
        return False
    values = [charset] if isinstance(charset, str) else list(charset)
    return all(str(v).strip() in _SIMPLE_CHARSETS for v in values)


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
    regions: list[tuple[int, int]],
    matcher: WordMatcher,
    needles: dict[str, Category],
) -> Iterator[tuple[int, str]]:
    """``(offset, category)`` of identifiers in the ``regions`` of the encoded bytes."""
    if not matcher and not needles:
        return
    for start, stop in regions:
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


def _regions(
    encoded: bytes, pixel_value: bytes | None, at_end: bool = False
) -> list[tuple[int, int]]:
    """The byte ranges to search: all of ``encoded`` but the pixel value when it is found
    (``at_end``: known to end ``encoded``, as the first end tried below would find)."""
    size = len(encoded)
    if pixel_value:
        length = len(pixel_value)
        if at_end and length <= size:
            return [(0, size - length)]
        for trailer in range(min(_MAX_TRAILER, size - length) + 1):
            end = size - trailer
            if encoded.endswith(pixel_value, 0, end):
                return [(0, end - length), (end, size)] if trailer else [(0, end - length)]
    return [(0, size)]
