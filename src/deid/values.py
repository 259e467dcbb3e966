"""A fast value layer: text values of raw elements read and written without pydicom's per-element
conversion.

pydicom turns a :class:`~pydicom.dataelem.RawDataElement` into a
:class:`~pydicom.dataelem.DataElement` the first time a value is asked for (10-20 us each), and
writes a changed value through its element writer. For the string VRs of a little endian data set
whose character set is single-byte or UTF-8, this module does the same work directly, with the
same results:

- :func:`read_values` decodes a raw value into the strings pydicom's converted value would give
  (padding stripped, split on backslash, person names as ``str(PersonName)``);
- :func:`encode_values` encodes a new value into the bytes pydicom's writer would write for it
  (even length: space padding for text, NUL for UI), so that :mod:`deid.encoding` copies it as
  it is;
- :func:`is_canonical` says whether a raw value is exactly what pydicom would write back for its
  own decoded value: only then may an element that deid reads stay raw (pydicom would have
  re-encoded it on writing, and the bytes must not change).

Anything else (sequences, numbers, binary values, ISO 2022 and multi-byte character sets, big
endian, odd padding, values pydicom would warn about on decoding, non-default pydicom settings
or hooks) returns ``None`` and the caller takes pydicom's own path. Nothing here logs or raises
with a value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom import config
from pydicom import hooks as pydicom_hooks
from pydicom.datadict import DicomDictionary, tag_for_keyword  # type: ignore[attr-defined]
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from deid.tags import element_vr, stored

__all__ = [
    "CODECS",
    "TEXT_VRS",
    "encode_values",
    "fast_reading",
    "get_strings",
    "get_value",
    "is_canonical",
    "level_codec",
    "raw_element",
    "raw_vr",
    "read_values",
    "value_of",
]

#: The string VRs this layer reads and writes.
TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR", "SH", "LO", "UC", "ST", "LT", "UT", "PN"}
)
# Decoded with pydicom's default encoding whatever the character set.
_DEFAULT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR"})
# Split on backslash when set from a str (pydicom's ALLOW_BACKSLASH keeps LT, ST, UT whole).
_SINGLE_VRS = frozenset({"ST", "LT", "UT", "UR"})
_DEFAULT_ENCODING = "iso8859"
_ESC = b"\x1b"
#: Python codecs (as pydicom names them) of the single-byte and UTF-8 character sets.
CODECS = frozenset(
    {
        "iso8859",
        "latin_1",
        "iso8859_2",
        "iso8859_3",
        "iso8859_4",
        "iso_ir_126",
        "iso_ir_127",
        "iso_ir_138",
        "iso_ir_144",
        "iso_ir_148",
        "iso_ir_166",
        "UTF8",
    }
)
_LONG_VRS = frozenset({"UC", "UR", "UT"})
_MAX_SHORT = 0xFFFF


def fast_reading() -> bool:
    """Whether pydicom is set up as this layer assumes (its defaults, as deid runs it).

    Under ``RAISE`` validation, with date/time conversion, a data element callback or custom
    conversion hooks, pydicom's results differ: every value then takes pydicom's path.
    """
    return (
        config.settings.reading_validation_mode != config.RAISE
        and not config.datetime_conversion
        and config.data_element_callback is None
        and not config.use_none_as_empty_text_VR_value
        and pydicom_hooks.hooks.raw_element_vr is pydicom_hooks.raw_element_vr
        and pydicom_hooks.hooks.raw_element_value is pydicom_hooks.raw_element_value
        and not pydicom_hooks.hooks.raw_element_kwargs
    )


def level_codec(ds: Dataset) -> str | None:
    """The codec pydicom decodes this level's text with, when this layer can use it."""
    try:
        encodings: Any = ds.original_character_set or ds._character_set
    except Exception:  # an unreadable Specific Character Set: pydicom's path
        return None
    if isinstance(encodings, str):
        return encodings if encodings in CODECS else None
    if len(encodings) != 1 or encodings[0] not in CODECS:
        return None
    return str(encodings[0])


def raw_vr(raw: RawDataElement) -> str | None:
    """The VR pydicom gives a raw element, when it is a string VR this layer handles."""
    vr = raw.VR
    if vr is None:
        tag = raw.tag
        if (tag >> 16) % 2:
            return None
        entry = DicomDictionary.get(tag)
        if entry is None:
            return None
        vr = entry[0]
    return vr if vr in TEXT_VRS else None


def read_values(raw: RawDataElement, vr: str, codec: str) -> list[str] | None:
    """The values pydicom's conversion of ``raw`` holds, as strings; ``None``: use pydicom.

    One string per value (``[""]`` when empty); person names as ``str(PersonName)``.
    """
    data = raw.value
    if data is None or not raw.is_little_endian or raw.length == 0xFFFFFFFF:
        return None
    if raw.length == 0:
        return [""]
    if vr in _DEFAULT_VRS:
        text = data.decode("latin-1")
        if vr == "AE":
            return [value.strip() for value in text.split("\\")]
        if vr == "UR":
            return [text.rstrip()]
        if vr == "UI":  # UID() strips each value
            return [value.strip() for value in text.rstrip(" \x00").split("\\")]
        return text.rstrip(" \x00").split("\\")
    if _ESC in data:
        return None
    if vr == "PN":
        data = data.rstrip(b"\x00 ")
    try:
        text = data.decode(codec)
    except (UnicodeError, LookupError):  # pydicom warns and replaces: let it
        return None
    if vr == "PN":
        return [value.rstrip("=") for value in text.split("\\")]
    if vr in _SINGLE_VRS:
        return [text.rstrip("\x00 ")]
    return [value.rstrip("\x00 ") for value in text.split("\\")]


def value_of(values: list[str]) -> str | list[str]:
    """The shape of pydicom's value: one string, or a list for several values."""
    return values[0] if len(values) == 1 else values


def encode_values(value: object, vr: str, codec: str) -> bytes | None:
    """The bytes pydicom writes for an element of ``vr`` set to ``value``; ``None``: use pydicom.

    ``value`` is ``None``, a string or a list of strings (the shapes deid writes).
    """
    if value is None:
        return b""
    items: list[str]
    if isinstance(value, str):
        items = value.split("\\") if vr not in _SINGLE_VRS and "\\" in value else [value]
    elif isinstance(value, list | tuple | MultiValue):
        items = list(value)
        if not all(isinstance(item, str) for item in items):
            return None
    else:
        return None
    if len(items) > 1 and vr in _SINGLE_VRS:
        return None
    try:
        if vr in _DEFAULT_VRS:
            if vr == "UI":  # UID() strips each value
                items = [item.strip() for item in items]
            text = "\\".join(items)
            if len(text) % 2:
                text += "\x00" if vr == "UI" else " "
            data = text.encode(_DEFAULT_ENCODING)
        else:
            if vr == "PN":
                items = [item.rstrip("=") for item in items]
            data = b"\\".join([item.encode(codec) for item in items])
            if len(data) % 2:
                data += b" "
    except (UnicodeError, LookupError):
        return None
    if len(data) > _MAX_SHORT and vr not in _LONG_VRS:
        return None
    return data


def is_canonical(raw: RawDataElement, vr: str, values: Iterable[str], codec: str) -> bool:
    """Whether pydicom, having decoded ``raw`` into ``values``, would write the same bytes."""
    if type(values) is list and len(values) == 1 and (vr in _DEFAULT_VRS or codec in CODECS):
        value = values[0]
        if type(value) is str and value.isascii():
            # encode_values for one ASCII value, whose bytes are the same in every codec here
            if vr == "UI":
                value = value.strip()
            elif vr == "PN":
                value = value.rstrip("=")
            data = value.encode("ascii")
            if len(data) % 2:
                data += b"\x00" if vr == "UI" else b" "
            if len(data) > _MAX_SHORT and vr not in _LONG_VRS:
                return False
            return data == raw.value
    return encode_values(list(values), vr, codec) == raw.value


def get_value(ds: Dataset, keyword: str) -> Any:
    """``ds.get(keyword)``: a single text value read raw where pydicom would write it back
    unchanged (see :func:`is_canonical`), else pydicom's own value (converted, as ever)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return ds.get(keyword)
    held: object = stored(ds, tag)
    if held is None:
        return None  # what ds.get gives for an absent element, without its lookups
    if isinstance(held, RawDataElement) and fast_reading():
        vr = raw_vr(held)
        if vr is None and held.VR == "US" and held.length == 2 and held.is_little_endian:
            value = held.value
            if value is not None and len(value) == 2:
                return int.from_bytes(value, "little")  # pydicom's one US value
        codec = level_codec(ds) if vr is not None else None
        if vr is not None and codec is not None:
            values = read_values(held, vr, codec)
            if values is not None and len(values) == 1 and is_canonical(held, vr, values, codec):
                return values[0]
    return peek(ds, tag).value


def get_strings(ds: Dataset, keyword: str) -> list[str] | None:
    """Every value of a text element as pydicom's conversion holds them (``None``: absent),
    read raw where pydicom would write them back unchanged (see :func:`get_value`)."""
    tag = tag_for_keyword(keyword)
    held = stored(ds, tag) if tag is not None else None
    if isinstance(held, RawDataElement) and fast_reading():
        vr = raw_vr(held)
        codec = level_codec(ds) if vr is not None else None
        if vr is not None and codec is not None:
            values = read_values(held, vr, codec)
            if values is not None and is_canonical(held, vr, values, codec):
                return values
    value = get_value(ds, keyword)
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def peek(ds: Dataset, tag: int) -> DataElement:
    """``ds[tag]`` without replacing the raw element ``ds`` holds (sequences excepted).

    Reading a value to decide (identifiers, UIDs) must not change how a kept element leaves:
    stored converted, pydicom would re-encode it (a NUL-padded text gets a space, say).
    """
    held = stored(ds, tag)
    if isinstance(held, RawDataElement) and element_vr(ds, tag) != "SQ":
        return convert_raw_data_element(held, encoding=ds._character_set, ds=ds)
    return ds[tag]


def raw_element(old: RawDataElement, vr: str, data: bytes) -> RawDataElement:
    """A raw element in ``old``'s place and encoding holding ``data``."""
    return RawDataElement(old.tag, vr, len(data), data, 0, old.is_implicit_VR, True)
