"""Verification of the fast path's output (:mod:`deid.fastpath`): :func:`deid.verify.verify`
over what the writer knows the output holds, with the same matchers and the same split of the
texts, without reading the output back.

Only the answer "no hit anywhere" is given here: any hit (decoded text, kept ASCII text, raw
bytes) raises :class:`deid.fastplan.FallbackError`, and the general path runs, verifies and reports
the object as ever (its messages, its rejection). Nothing here logs or raises with a value.
"""

from __future__ import annotations

from typing import NamedTuple

from deid.descriptors import Scrubber
from deid.fastplan import FallbackError
from deid.identifiers import Identifiers
from deid.markers import MARKER_LOCATIONS
from deid.values import TEXT_VRS, read_values
from deid.verify import (
    _MAX_PLAIN,
    _NOT_PLAIN,
    _NOT_SEARCHED,
    _ignored_here,
    _plain_held_cs,
    _raw_hits,
    _regions,
    _search,
    _textual,
    searches_for,
)

__all__ = ["AsRaw", "Out", "Output", "verify_plain"]

#: What the output holds, per element: (tag, VR, its value's bytes where the general path holds
#: it raw, its text where pydicom holds it decoded, its items where it is a sequence); items are
#: lists of such levels.
Out = tuple[int, str, bytes | None, str | None, "list[list[Out]] | None"]
_Found = tuple[list[tuple[str, int, str]], list[str]]
_DATES = frozenset({"DA", "DT"})


class Output(NamedTuple):
    """The encoded output, what its data set holds, the new file meta's UID texts, and where
    its pixel data is (its value, and whether the output ends with it)."""

    data: bytes
    top: list[Out]
    meta_texts: list[str]
    pixel_value: bytes | None
    pixel_last: bool


def verify_plain(
    output: Output,
    kept: Identifiers,
    scrubber: Scrubber | None,
    shifted_dates: bool,
    codec: str | None,
) -> None:
    """Raise :class:`~deid.fastplan.FallbackError` if :func:`deid.verify.find_residual` could find
    anything of ``kept`` (the identifiers to search, categories already skipped) in the output.
    ``scrubber``: the one applying built, whose matchers are shared (as the general path
    shares them); ``codec``: the codec raw text is decoded with (``None``: latin-1)."""
    if not kept:
        return
    searches = searches_for(kept, scrubber)
    exempt = _DATES if shifted_dates else frozenset()
    found: _Found = ([], [])
    verbatim: _Found = ([], [])
    for text in output.meta_texts:
        found[0].append(("", 0x00020003, "UI"))
        found[1].append(text)
    skipped = _ignored_here("", (*MARKER_LOCATIONS, "(0018,A001)[0]")) or frozenset()
    _gather(output.top, skipped, found, verbatim, codec)
    if any(True for _ in _search(found, searches.text, exempt)):
        raise FallbackError
    if any(True for _ in _search(verbatim, searches.short, exempt)):
        raise FallbackError
    raw, needles = searches.raw, searches.needles
    if raw or needles:
        data = output.data
        regions = _regions(data, output.pixel_value, output.pixel_last)
        if any(True for _ in _raw_hits(data, regions, raw, needles)):
            raise FallbackError


def _gather(
    level: list[Out],
    skipped: frozenset[int],
    found: _Found,
    verbatim: _Found,
    codec: str | None,
) -> None:
    """:func:`deid.verify._gather` over what the output holds; ``codec``: the one raw text is
    decoded with (``None``: read as latin-1, as for a level without a character set)."""
    for tag, vr, raw, decoded, items in level:
        if tag in skipped:
            continue
        if items is not None:
            for item in items:
                _gather(item, frozenset(), found, verbatim, codec)
            continue
        if decoded is not None:
            if decoded:
                found[0].append(("", tag, vr))
                found[1].append(decoded)
            continue
        if vr in _NOT_SEARCHED and (vr != "CS" or _plain_held_cs(_Held(raw))):
            continue
        value = raw or b""
        if vr == "UN":
            text = _textual(value)
            if text:
                found[0].append(("", tag, vr))
                found[1].append(text)
            continue
        if vr in TEXT_VRS and len(value) < _MAX_PLAIN:
            body = value.rstrip(b" \x00")
            if _NOT_PLAIN.search(body) is None:
                if body:
                    verbatim[0].append(("", tag, vr))
                    verbatim[1].append(body.decode("ascii"))
                continue
        if codec is not None and vr in TEXT_VRS:
            values = read_values(AsRaw(value), vr, codec)  # type: ignore[arg-type]
            if values is None:
                raise FallbackError  # pydicom decodes it
            text = "\\".join(values)
        else:
            text = value.decode("latin-1")
        if text:
            found[0].append(("", tag, vr))
            found[1].append(text)


class _Held:
    """What :func:`deid.verify._plain_held_cs` reads of an element: its value."""

    __slots__ = ("value",)

    def __init__(self, value: bytes | None) -> None:
        self.value = value


class AsRaw:
    """The parts of a raw element :func:`deid.values.read_values` reads."""

    __slots__ = ("is_little_endian", "length", "value")

    def __init__(self, value: bytes) -> None:
        self.value, self.length, self.is_little_endian = value, len(value), True
