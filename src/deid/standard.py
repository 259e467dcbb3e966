"""Cached loaders for the PS3.15 2026c tables shipped in ``deid.profiles``.

Nothing is read at import time: each table is parsed on first use and kept for the life of the
process. A malformed row raises :class:`deid.PolicyError` naming the file and the row.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

from deid.codes import ActionCode, AttributeType, ProfileOption
from deid.errors import PolicyError
from deid.tags import (
    CURVE_PATTERN,
    OVERLAY_COMMENTS_PATTERN,
    OVERLAY_DATA_PATTERN,
    PRIVATE_PATTERN,
    SafePrivateKey,
    is_private_group,
    parse_tag,
    repeating_pattern,
)

E1_1 = "ps3.15-table-e1-1.csv"
E3_10 = "ps3.15-table-e3-10-safe-private.csv"
E3_4 = "ps3.15-table-e3-4-1-structured-content.csv"
CID_7050 = "cid-7050-deidentification-methods.csv"
IOD_TYPES = "iod-attribute-types.csv.gz"
SOP_CLASSES = "sop-class-iod.csv"

#: Coding schemes whose retired designators the standard's Note 3 of E.3.4 asks us to honour.
_SCHEME_ALIASES = {"SRT": "SCT", "SNM3": "SCT", "99SDM": "SCT"}


def read_profile_text(name: str) -> str:
    """Text of a file in ``deid.profiles`` (gzip is undone for ``.gz`` names)."""
    ref = resources.files("deid.profiles").joinpath(name)
    data = ref.read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _rows(name: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(read_profile_text(name)))
    for number, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise PolicyError("wrong number of cells", source=name, key=f"row {number}")
        yield number, row


def _yes(value: str, name: str, number: int, column: str) -> bool:
    if value not in ("Y", "N"):
        raise PolicyError(f"{column} must be Y or N", source=name, key=f"row {number}")
    return value == "Y"


def _code(value: str, name: str, number: int, column: str) -> ActionCode:
    try:
        return ActionCode.parse(value)
    except ValueError:
        raise PolicyError(
            f"unknown action code in {column}", source=name, key=f"row {number}"
        ) from None


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One row of Table E.1-1 (or E.3.4-1): the Basic code and the option codes."""

    tag: str
    name: str
    basic: ActionCode
    options: Mapping[ProfileOption, ActionCode]
    retired: bool
    line: int

    def code_for(
        self, options: frozenset[ProfileOption]
    ) -> tuple[ActionCode, ProfileOption | None]:
        """The code in force with ``options`` and the option it came from (None: Basic).

        Options override the Basic code where their cell is filled. Where several options
        fill the cell (only Retain Device Identity ``K`` against Retain Longitudinal Modified
        Dates ``C`` on device dates, in 2026c), the date shift wins: a device date kept as is
        would give away the real calendar and undo the per-patient shift. Otherwise a
        retaining ``K`` wins over a cleaning ``C``.
        """
        filled = [(self.options[o], o) for o in ProfileOption if o in options and o in self.options]
        if not filled:
            return self.basic, None
        for code, option in filled:
            if option is ProfileOption.RETAIN_LONG_MODIFIED_DATES:
                return code, option
        for code, option in filled:
            if code is ActionCode.K:
                return code, option
        return filled[0]


@dataclass(frozen=True)
class ConfidentialityTable:
    """Table E.1-1, indexed for lookup by tag."""

    rows: tuple[ProfileRow, ...]
    by_tag: Mapping[int, ProfileRow]
    by_pattern: Mapping[str, ProfileRow]

    def lookup(self, tag: int) -> ProfileRow | None:
        """The row that governs ``tag``: exact tag first, then repeating groups, then private."""
        row = self.by_tag.get(tag)
        if row is not None:
            return row
        pattern = repeating_pattern(tag)
        if pattern is not None:
            return self.by_pattern[pattern]
        if is_private_group(tag >> 16):
            return self.by_pattern[PRIVATE_PATTERN]
        return None


@functools.cache
def confidentiality_table() -> ConfidentialityTable:
    """Table E.1-1 of PS3.15 2026c."""
    rows: list[ProfileRow] = []
    by_tag: dict[int, ProfileRow] = {}
    by_pattern: dict[str, ProfileRow] = {}
    for number, raw in _rows(E1_1):
        options = {
            option: _code(raw[option.value], E1_1, number, option.value)
            for option in ProfileOption
            if raw[option.value]
        }
        row = ProfileRow(
            tag=raw["tag"],
            name=raw["name"],
            basic=_code(raw["basic"], E1_1, number, "basic"),
            options=MappingProxyType(options),
            retired=_yes(raw["retired"], E1_1, number, "retired"),
            line=number,
        )
        rows.append(row)
        if raw["tag"] in (
            CURVE_PATTERN,
            OVERLAY_DATA_PATTERN,
            OVERLAY_COMMENTS_PATTERN,
            PRIVATE_PATTERN,
        ):
            by_pattern[raw["tag"]] = row
            continue
        try:
            tag = parse_tag(raw["tag"])
        except ValueError:
            raise PolicyError("unparseable tag", source=E1_1, key=f"row {number}") from None
        if tag in by_tag:
            raise PolicyError("duplicate tag", source=E1_1, key=f"row {number}")
        by_tag[tag] = row
    missing = {
        CURVE_PATTERN,
        OVERLAY_DATA_PATTERN,
        OVERLAY_COMMENTS_PATTERN,
        PRIVATE_PATTERN,
    } - set(by_pattern)
    if missing:
        raise PolicyError(f"missing repeating-group rows {sorted(missing)}", source=E1_1)
    return ConfidentialityTable(tuple(rows), MappingProxyType(by_tag), MappingProxyType(by_pattern))


@dataclass(frozen=True, slots=True)
class SafePrivateRow:
    key: SafePrivateKey
    vr: str
    line: int


@functools.cache
def safe_private_attributes() -> Mapping[SafePrivateKey, SafePrivateRow]:
    """Table E.3.10-1 keyed by (group, creator, low element byte)."""
    out: dict[SafePrivateKey, SafePrivateRow] = {}
    for number, raw in _rows(E3_10):
        try:
            key = SafePrivateKey.parse(raw["tag"], raw["private_creator"])
        except ValueError:
            raise PolicyError(
                "unparseable private tag", source=E3_10, key=f"row {number}"
            ) from None
        out[key] = SafePrivateRow(key, raw["vr"], number)
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class StructuredContentRow:
    scheme: str
    code_value: str
    value_type: str
    meaning: str
    row: ProfileRow


@functools.cache
def structured_content_table() -> Mapping[tuple[str, str, str], StructuredContentRow]:
    """Table E.3.4-1 keyed by (coding scheme, code value, value type)."""
    out: dict[tuple[str, str, str], StructuredContentRow] = {}
    for number, raw in _rows(E3_4):
        options = {
            option: _code(raw[option.value], E3_4, number, option.value)
            for option in ProfileOption
            if raw.get(option.value)
        }
        row = ProfileRow(
            tag=f"{raw['coding_scheme_designator']}:{raw['code_value']}",
            name=raw["code_meaning"],
            basic=_code(raw["basic"], E3_4, number, "basic"),
            options=MappingProxyType(options),
            retired=_yes(raw["retired"], E3_4, number, "retired"),
            line=number,
        )
        key = (raw["coding_scheme_designator"], raw["code_value"], raw["value_type"])
        if key in out:
            raise PolicyError("duplicate concept", source=E3_4, key=f"row {number}")
        out[key] = StructuredContentRow(*key, raw["code_meaning"], row)
    return MappingProxyType(out)


def lookup_structured_content(
    scheme: str, value: str, value_type: str
) -> StructuredContentRow | None:
    """Row of E.3.4-1 for a content item's concept name, honouring retired scheme names."""
    table = structured_content_table()
    scheme = scheme.strip()
    found = table.get((scheme, value.strip(), value_type.strip()))
    if found is None and scheme in _SCHEME_ALIASES:
        found = table.get((_SCHEME_ALIASES[scheme], value.strip(), value_type.strip()))
    return found


@functools.cache
def structured_content_schemes() -> frozenset[str]:
    """The coding schemes whose concepts Table E.3.4-1 judges, with their retired names."""
    schemes = {scheme for scheme, _, _ in structured_content_table()}
    schemes.update(old for old, new in _SCHEME_ALIASES.items() if new in schemes)
    return frozenset(schemes)


@dataclass(frozen=True, slots=True)
class CodedConcept:
    scheme: str
    value: str
    meaning: str


@functools.cache
def method_codes() -> Mapping[str, CodedConcept]:
    """CID 7050 (and CID 7005 109104) by code value."""
    out: dict[str, CodedConcept] = {}
    for _number, raw in _rows(CID_7050):
        out[raw["code_value"]] = CodedConcept(
            raw["coding_scheme_designator"], raw["code_value"], raw["code_meaning"]
        )
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class SopClass:
    uid: str
    name: str
    iod: str
    retired: bool


@functools.cache
def sop_classes() -> Mapping[str, SopClass]:
    """Storage SOP Class UID → IOD name (empty where the IOD is not in PS3.3)."""
    out: dict[str, SopClass] = {}
    for number, raw in _rows(SOP_CLASSES):
        out[raw["sop_class_uid"]] = SopClass(
            raw["sop_class_uid"],
            raw["sop_class_name"],
            raw["iod"],
            _yes(raw["retired"], SOP_CLASSES, number, "retired"),
        )
    return MappingProxyType(out)


#: A path of tags from the top level: sequence tags then the attribute's own tag.
TagPath = tuple[int, ...]


@dataclass(frozen=True)
class IodTypes:
    """Types of the compound-code attributes, per SOP Class and path; strictest wins."""

    by_sop_class: Mapping[str, Mapping[TagPath, AttributeType]]
    any_iod: Mapping[TagPath, AttributeType] = field(default_factory=dict)

    def type_of(
        self, sop_class_uid: str | None, path: TagPath
    ) -> tuple[AttributeType | None, bool]:
        """(Type, IOD known). Type None: the attribute is not defined at ``path``.

        For an unknown SOP Class the strictest Type any IOD gives at that path is returned,
        so whatever the object really is, it stays valid.
        """
        table = self.by_sop_class.get(sop_class_uid or "")
        if table is None:
            return self.any_iod.get(path), False
        return table.get(path), True

    def resolve(
        self, code: ActionCode, sop_class_uid: str | None, path: TagPath
    ) -> tuple[ActionCode, AttributeType | None, str]:
        """A compound code's simple action at ``path``, the Type it was read from, and why.

        Type 1/1C gives D (U for X/Z/U*: the sequence stays, its UIDs are remapped), Type
        2/2C gives Z, Type 3 gives X; an attribute the IOD does not define there is removed
        (E.1.1 allows it).
        """
        attr_type, known = self.type_of(sop_class_uid, path)
        iod = "this IOD" if known else "any IOD (SOP Class unknown)"
        if attr_type is None:
            return ActionCode.X, None, f"not defined at this place in {iod}: removed (E.1.1)"
        choice = _COMPOUND[code][3 - attr_type.strictness]
        return choice, attr_type, f"Type {attr_type.value} in {iod} -> {choice.value}"


#: Table E.1-1a by the strictness of the Type: 3 (Type 1/1C), 2 (Type 2/2C), 1 (Type 3).
_COMPOUND = {
    ActionCode.Z_D: (ActionCode.D, ActionCode.Z, ActionCode.Z),
    ActionCode.X_Z: (ActionCode.D, ActionCode.Z, ActionCode.X),
    ActionCode.X_D: (ActionCode.D, ActionCode.Z, ActionCode.X),
    ActionCode.X_Z_D: (ActionCode.D, ActionCode.Z, ActionCode.X),
    ActionCode.X_Z_U: (ActionCode.U, ActionCode.Z, ActionCode.X),
}


def _stricter(a: AttributeType | None, b: AttributeType) -> AttributeType:
    if a is None or b.strictness > a.strictness:
        return b
    return a


@functools.cache
def iod_types() -> IodTypes:
    """The IOD attribute Types table (PS3.3 2026b) for compound-code resolution."""
    by_sop: dict[str, dict[TagPath, AttributeType]] = {}
    any_iod: dict[TagPath, AttributeType] = {}
    for number, raw in _rows(IOD_TYPES):
        try:
            path = tuple(parse_tag(part) for part in raw["path"].split(">"))
            type_ = AttributeType(raw["type"])
        except ValueError:
            raise PolicyError(
                "unparseable path or type", source=IOD_TYPES, key=f"row {number}"
            ) from None
        uid = raw["sop_class_uid"]
        if uid:
            table = by_sop.setdefault(uid, {})
            table[path] = _stricter(table.get(path), type_)
        any_iod[path] = _stricter(any_iod.get(path), type_)
    return IodTypes(
        MappingProxyType({k: MappingProxyType(v) for k, v in by_sop.items()}),
        MappingProxyType(any_iod),
    )
