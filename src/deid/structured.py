"""Clean Structured Content: SR content items against Table E.3.4-1 (PS3.15 E.3.4).

Items of Content Sequence, Acquisition Context Sequence, Specimen Preparation Sequence (its
items' Specimen Preparation Step Content Item Sequence) and Waveform Annotation Sequence are
matched on their concept name (coding scheme, code value, retired SNOMED designators honoured)
and Value Type; the row's code, with the policy's options, decides the item: ``X`` removes it
with everything inside, anything else keeps it and applies the code to the element that holds
its value.

:func:`uncleanable_content` says where an SR's content tree holds what this cleaning cannot
make safe (the structured-content gate of :mod:`deid.gates`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from deid.codes import ActionCode, ProfileOption
from deid.rawitems import convert_sequence
from deid.standard import lookup_structured_content, structured_content_schemes
from deid.tags import format_tag, held_vr, stored

#: Sequences whose items are content items (PS3.15 E.3.4).
CONTENT_ITEM_SEQUENCES = frozenset({0x0040A730, 0x00400555, 0x00400610, 0x0040B020})
#: Content item sequences one level down: the items of Specimen Preparation Sequence hold
#: their content items in Specimen Preparation Step Content Item Sequence (PS3.3 C.7.6.22).
NESTED_CONTENT_ITEM_SEQUENCES = frozenset({0x00400612})
CONTENT_SEQUENCE = 0x0040A730
#: The Value Types of PS3.3 C.17.3.2.1 whose values deid's cleaning handles.
VALUE_TYPES = frozenset(
    {
        "CONTAINER", "TEXT", "NUM", "CODE", "DATETIME", "DATE", "TIME", "UIDREF", "PNAME",
        "COMPOSITE", "IMAGE", "WAVEFORM", "SCOORD", "SCOORD3D", "TCOORD",
    }
)  # fmt: skip
#: Values no cleaning can look into (embedded documents, bulk data, unknown VRs).
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Referenced Content Item Identifier: a by-reference item has no Value Type.
_BY_REFERENCE = 0x0040DB73
#: The element that carries a content item's value, by Value Type (PS3.3 C.17.3).
VALUE_ELEMENT = {
    "TEXT": 0x0040A160,
    "PNAME": 0x0040A123,
    "DATE": 0x0040A121,
    "TIME": 0x0040A122,
    "DATETIME": 0x0040A120,
    "UIDREF": 0x0040A124,
    "NUM": 0x0040A300,
    "CODE": 0x0040A168,
    "COMPOSITE": 0x00081199,
    "IMAGE": 0x00081199,
    "WAVEFORM": 0x00081199,
}


@dataclass(frozen=True, slots=True)
class ItemVerdict:
    """The item's fate (``X`` or ``K``), the row's code and the element its code applies to."""

    action: ActionCode
    code: ActionCode
    reason: str
    option: ProfileOption | None
    value_tag: int | None


def content_item_verdict(item: Dataset, options: frozenset[ProfileOption]) -> ItemVerdict | None:
    """The verdict of Table E.3.4-1 for one content item; None when no row matches."""
    value_type = item.get("ValueType")
    names = item.get("ConceptNameCodeSequence")
    if not isinstance(value_type, str) or not names:
        return None
    concept = names[0]
    found = lookup_structured_content(
        str(concept.get("CodingSchemeDesignator", "")),
        str(concept.get("CodeValue", "")),
        value_type,
    )
    if found is None:
        return None
    code, option = found.row.code_for(options)
    reason = f"E.3.4-1 row {found.row.line} ({found.meaning}): {code.value}"
    if option is not None:
        reason += f" ({option.value})"
    if code is ActionCode.X_D:
        code = ActionCode.D
        reason += "; content items have no Type: D keeps the tree valid"
    if code is ActionCode.X:
        return ItemVerdict(ActionCode.X, code, reason, option, None)
    return ItemVerdict(ActionCode.K, code, reason, option, VALUE_ELEMENT.get(value_type.strip()))


def has_content(ds: Dataset) -> bool:
    """Whether ``ds`` holds a document content tree: a top-level Content Sequence with items."""
    if stored(ds, CONTENT_SEQUENCE) is None:
        return False
    convert_sequence(ds, CONTENT_SEQUENCE)
    return bool(ds[CONTENT_SEQUENCE].value)


def uncleanable_content(ds: Dataset, options: frozenset[ProfileOption]) -> str:
    """Where the content tree of ``ds`` holds what Clean Structured Content cannot make safe,
    and what; '' when every item can be cleaned. Items Table E.3.4-1 removes are not looked
    into. The answer names places and tags, never a value.

    Not cleanable: a content item without a Value Type (unless it is a by-reference item) or
    with one deid does not handle (:data:`VALUE_TYPES`); a TEXT item whose concept Table
    E.3.4-1 does not list and whose coding scheme the table does not cover (a local concept:
    its text may name anyone); a public element of a binary or unknown VR (an embedded
    document, bulk data: nothing can be cleaned inside it). Private elements are left to the
    private-attribute rules.
    """
    pending: list[tuple[Dataset, str, bool]] = [
        (item, f"{format_tag(CONTENT_SEQUENCE)}[{index}]", True)
        for index, item in enumerate(ds[CONTENT_SEQUENCE].value or ())
    ]
    pending.reverse()
    while pending:
        item, where, content = pending.pop()
        if content:
            verdict = content_item_verdict(item, options)
            if verdict is not None and verdict.action is ActionCode.X:
                continue  # removed with everything inside
            why = _uncleanable_item(item)
            if why:
                return f"{where}: {why}"
        children: list[tuple[Dataset, str, bool]] = []
        for tag in list(item.keys()):
            if (tag >> 16) % 2:
                continue
            vr = held_vr(stored(item, tag), tag)
            if vr in _BINARY_VRS:
                return f"{where}>{format_tag(tag)}: a value of VR {vr}, which cannot be cleaned"
            if vr != "SQ":
                continue
            convert_sequence(item, tag)
            for index, child in enumerate(item[tag].value or ()):
                path = f"{where}>{format_tag(tag)}[{index}]"
                children.append((child, path, tag == CONTENT_SEQUENCE))
        pending.extend(reversed(children))
    return ""


def _uncleanable_item(item: Dataset) -> str:
    value_type = item.get("ValueType")
    if not isinstance(value_type, str) or not value_type.strip():
        return "" if _BY_REFERENCE in item else "a content item without a Value Type"
    value_type = value_type.strip().upper()
    if value_type not in VALUE_TYPES:
        return "a Value Type the cleaning does not handle"
    if value_type == "TEXT" and not _judged(item):
        return "a TEXT item of a concept Table E.3.4-1 cannot judge (local or none)"
    return ""


def _judged(item: Dataset) -> bool:
    """Whether Table E.3.4-1 lists the item's concept or covers its coding scheme."""
    names = item.get("ConceptNameCodeSequence")
    if not names:
        return False
    concept = names[0]
    scheme = str(concept.get("CodingSchemeDesignator", "") or "").strip()
    value = str(concept.get("CodeValue", "") or "")
    if lookup_structured_content(scheme, value, "TEXT") is not None:
        return True
    return scheme in structured_content_schemes()
