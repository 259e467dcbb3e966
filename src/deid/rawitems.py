"""Read the items of a raw sequence without building pydicom data sets.

pydicom turns a raw sequence element into a :class:`~pydicom.sequence.Sequence` of
:class:`~pydicom.dataset.Dataset` s the first time its value is asked for (tens of
microseconds per item). Collecting identifiers only needs the items' raw elements, so
:func:`sequence_items` splits the value of an explicit VR little endian sequence into items,
each a ``{tag: RawDataElement}`` as pydicom's reader would hold it, and nested sequences stay
raw the same way.

Only plainly encoded values are read: anything pydicom reads in a way of its own (implicit VR
inside an explicit data set, unknown VRs, undefined-length values other than sequences,
delimiters where none belong, items that do not end where their length says, a Specific
Character Set inside an item, the same tag twice) gives ``None``, and the caller converts the
sequence with pydicom as ever. Nothing here logs or raises with a value.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, NamedTuple, cast

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from deid.tags import stored
from deid.values import fast_reading

__all__ = ["MAX_DEPTH", "NestingTooDeepError", "as_if_converted", "convert_sequence"]
__all__ += ["LONG_VR_BYTES", "VR_BYTES", "empty_raw_value", "parse_items", "sequence_end"]
__all__ += ["sequence_items"]

RawItem = dict[BaseTag, RawDataElement]

_VRS = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
        b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
    }
)  # fmt: skip
# VRs with a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED = 0xFFFFFFFF
#: Sequences are read here at most this deep; deeper raises :class:`NestingTooDeepError` (a
#: 10,000-deep nest, read again level by level, took a minute: found by fuzzing).
MAX_DEPTH = 64
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_CHARSET = 0x00080005
_TAG_LENGTH = struct.Struct("<HHL")
_SHORT = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")


class NestingTooDeepError(Exception):
    """Sequences are nested deeper than :data:`MAX_DEPTH`."""


class _UnsupportedError(Exception):
    """The bytes are not plainly encoded: pydicom reads them."""


class _Item(NamedTuple):
    start: int  # offset of the item tag in the sequence value
    undefined: bool  # undefined length (ends with an item delimiter)
    elements: RawItem


def sequence_items(raw: RawDataElement) -> list[RawItem] | None:
    """The items of a raw explicit VR little endian sequence; ``None``: let pydicom read it.

    A nested sequence of undefined length is held with its items' bytes as its value (the
    sequence delimiter left out) and its undefined length.
    """
    items = _parse(raw, strict=False)
    return None if items is None else [item.elements for item in items]


def convert_sequence(ds: Dataset, tag: int) -> None:
    """Convert a raw sequence of ``ds`` in place as ``ds[tag]`` would, building its items
    without pydicom's reader; nothing is done where pydicom's own path is needed.

    The items are the data sets pydicom's reader builds (same elements, encodings, offsets
    and flags), made by copying the state of one new :class:`~pydicom.dataset.Dataset`.
    """
    raw = stored(ds, tag)
    if not isinstance(raw, RawDataElement) or not raw.length or not fast_reading():
        return  # (an empty sequence is read as a list first: pydicom's path)
    items = _parse(raw, strict=True)
    if items is None:
        return
    try:
        encodings: Any = ds.original_character_set or ds._character_set
    except Exception:  # an unreadable Specific Character Set: pydicom's path
        return
    encodings = encodings or [default_encoding]  # as pydicom's convert_value passes them
    if isinstance(encodings, str):
        encodings = [encodings]
    template = _template()
    if template is None:
        return  # not the pydicom this was written for
    offset = raw.value_tell
    datasets: list[Dataset] = []
    for item in items:
        new = Dataset.__new__(Dataset)
        state = vars(new)
        state.update(template)
        state.update(
            _parent_encoding=encodings,
            _dict=item.elements,
            _private_blocks={},
            _pixel_array_opts={"use_pdh": False},
            _pixel_id={},
            _read_implicit=False,
            _read_little=True,
            _read_charset=encodings,
            is_undefined_length_sequence_item=item.undefined,
            seq_item_tell=item.start + offset,
            file_tell=item.start + offset,
        )
        datasets.append(new)
    sequence = Sequence(datasets)
    sequence.is_undefined_length = False
    ds[tag] = DataElement(
        raw.tag, "SQ", sequence, raw.value_tell, raw.length == _UNDEFINED, already_converted=True
    )
    # (__setitem__ propagated Pixel Representation, as pydicom's __getitem__ does)


def as_if_converted(ds: Dataset) -> None:
    """What converting one of its sequences does to ``ds`` itself: pydicom reads its Pixel
    Representation (converting that element) into ``ds._pixel_rep``. May raise as pydicom's
    conversion does."""
    ds._set_pixel_representation(_NOT_A_SEQUENCE)  # (the items' part is skipped)


_NOT_A_SEQUENCE = DataElement(0x00080000, "UL", 0)

# What Dataset.__init__ sets (pydicom 3.0); anything else: pydicom's path.
_DATASET_STATE = frozenset(
    {
        "_parent_encoding", "_dict", "is_decompressed", "_read_little", "_read_implicit",
        "_read_charset", "_is_little_endian", "_is_implicit_VR",
        "is_undefined_length_sequence_item", "_private_blocks", "_pixel_array",
        "_pixel_array_opts", "_pixel_id",
    }
)  # fmt: skip


@functools.cache
def _template() -> dict[str, object] | None:
    """The state ``Dataset.__init__`` gives every data set (what each item sets itself as
    ``None``); ``None`` if it is not the state this module knows (pydicom builds the items)."""
    state = vars(Dataset())
    if set(state) != _DATASET_STATE:
        return None
    fixed = {key: value for key, value in state.items() if key not in _PER_ITEM}
    if not all(value is None or isinstance(value, bool | str) for value in fixed.values()):
        return None
    # In Dataset.__init__'s order (each item replaces the per-item values in place).
    return {key: fixed.get(key) for key in state}


_PER_ITEM = frozenset(
    {"_parent_encoding", "_dict", "_private_blocks", "_pixel_array_opts", "_pixel_id"}
)


def _parse(raw: RawDataElement, *, strict: bool) -> list[_Item] | None:
    """``strict``: also ``None`` for empty items and nested sequences of undefined length
    (pydicom reads those with state of their own)."""
    data = raw.value
    if data is None or raw.is_implicit_VR or not raw.is_little_endian or raw.VR != "SQ":
        return None
    try:
        items, end = _items(data, 0, len(data), strict)
    except (_UnsupportedError, struct.error):
        return None
    return items if end == len(data) else None


def _items(
    data: bytes, pos: int, end: int | None, strict: bool, depth: int = 0
) -> tuple[list[_Item], int]:
    """Items from ``pos`` to ``end`` (``None``: up to a sequence delimiter, consumed)."""
    if depth > MAX_DEPTH:
        raise NestingTooDeepError
    items: list[_Item] = []
    while end is None or pos < end:
        group, element, length = _TAG_LENGTH.unpack_from(data, pos)
        tag = group << 16 | element
        start = pos
        pos += 8
        if tag == _SEQUENCE_END and end is None:
            if length:
                raise _UnsupportedError
            return items, pos
        if tag != _ITEM:
            raise _UnsupportedError
        if length == _UNDEFINED:
            elements, pos = _elements(data, pos, None, strict, depth)
        else:
            stop = pos + length
            if stop > len(data) or (end is not None and stop > end):
                raise _UnsupportedError
            elements, pos = _elements(data, pos, stop, strict, depth)
        if strict and not elements:
            raise _UnsupportedError  # pydicom may read an empty item as implicit VR
        items.append(_Item(start, length == _UNDEFINED, elements))
    if pos != end:
        raise _UnsupportedError
    return items, pos


def _elements(
    data: bytes, pos: int, end: int | None, strict: bool, depth: int
) -> tuple[RawItem, int]:
    """The elements of one item from ``pos`` to ``end`` (``None``: up to an item delimiter)."""
    item: RawItem = {}
    size = len(data)
    while end is None or pos < end:
        group, element, vr, length = _SHORT.unpack_from(data, pos)
        tag = group << 16 | element
        if tag == _ITEM_END and end is None:
            if vr != b"\x00\x00" or length:
                raise _UnsupportedError
            return item, pos + 8
        if group == 0xFFFE or tag == _CHARSET or tag in item or vr not in _VRS:
            raise _UnsupportedError
        start = pos + 8
        if vr in _LONG_VRS:
            (length,) = _LENGTH.unpack_from(data, start)
            start += 4
        text = vr.decode("ascii")
        value: bytes | None
        if length == _UNDEFINED:
            if vr != b"SQ" or strict:
                raise _UnsupportedError
            _, stop = _items(data, start, None, strict, depth + 1)
            value = data[start : stop - 8]
        else:
            stop = start + length
            if stop > size or (end is not None and stop > end):
                raise _UnsupportedError
            value = data[start:stop] if length else empty_raw_value(text)
        key = BaseTag(tag)
        item[key] = RawDataElement(key, text, length, value, start, False, True)
        pos = stop
    if pos != end:
        raise _UnsupportedError
    return item, pos


def empty_raw_value(vr: str) -> bytes | None:
    """The value pydicom's reader gives a raw element of length 0."""
    return cast("bytes | None", empty_value_for_VR(vr, raw=True))


#: The explicit VRs read here, and those with a 4-byte length (as their two bytes).
VR_BYTES, LONG_VR_BYTES = _VRS, _LONG_VRS


def sequence_end(data: bytes, pos: int) -> int | None:
    """Where a sequence of undefined length whose items start at ``pos`` ends (after its
    delimiter), its items read as :func:`convert_sequence` reads them; ``None`` otherwise."""
    try:
        return _items(data, pos, None, True)[1]
    except (_UnsupportedError, struct.error):
        return None


def parse_items(raw: RawDataElement) -> list[tuple[bool, RawItem]] | None:
    """The items :func:`convert_sequence` builds, as ``(undefined length, elements)``;
    ``None`` where it leaves the sequence to pydicom."""
    if not raw.length or not fast_reading():
        return None
    items = _parse(raw, strict=True)
    return None if items is None else [(item.undefined, item.elements) for item in items]
