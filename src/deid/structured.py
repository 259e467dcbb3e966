"""Clean Structured Content: SR content items against Table E.3.4-1 (PS3.15 E.3.4).

Items of Content Sequence, Acquisition Context Sequence, Specimen Preparation Sequence and
Waveform Annotation Sequence are matched on their concept name (coding scheme, code value,
retired SNOMED designators honoured) and Value Type; the row's code, with the policy's options,
decides the item: ``X`` removes it with everything inside, anything else keeps it and applies
the code to the element that holds its value.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from deid.codes import ActionCode, ProfileOption
from deid.standard import lookup_structured_content

#: Sequences whose items are content items (PS3.15 E.3.4).
CONTENT_ITEM_SEQUENCES = frozenset({0x0040A730, 0x00400555, 0x00400610, 0x0040B020})
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
