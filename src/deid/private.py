"""Private attributes: removed, or kept by Retain Safe Private (PS3.15 E.3.10).

With the option, a private data element is kept when its (group, private creator, low element
byte) is in Table E.3.10-1, wherever its block sits, or when the object's own Private Data
Element Characteristics Sequence (0008,0300) marks it safe or gives it an action. A creator
element stays only while one element of its block stays.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from deid.codes import ActionCode, ProfileOption, Rule
from deid.standard import safe_private_attributes
from deid.tags import SafePrivateKey, normalise_creator

_CHARACTERISTICS = 0x00080300
_ITEM_ACTIONS = frozenset({ActionCode.D, ActionCode.Z, ActionCode.X, ActionCode.U})
_OPTION = ProfileOption.RETAIN_SAFE_PRIVATE


@dataclass(frozen=True, slots=True)
class PrivateVerdict:
    """What happens to one private element (``code`` is the table's: X, or C with the option)."""

    action: ActionCode
    code: ActionCode
    rule: Rule
    reason: str
    option: ProfileOption | None = None

    @property
    def kept(self) -> bool:
        return self.action is not ActionCode.X


@dataclass(frozen=True, slots=True)
class _Block:
    status: str
    safe: frozenset[int]
    actions: dict[int, ActionCode]


_OUTSIDE = PrivateVerdict(
    ActionCode.X, ActionCode.X, Rule.PRIVATE, "private group element outside any block: removed"
)
_BASIC = PrivateVerdict(ActionCode.X, ActionCode.X, Rule.PRIVATE, "private attribute: Basic X")
_ORPHAN = PrivateVerdict(
    ActionCode.X,
    ActionCode.C,
    Rule.PRIVATE,
    "private element without its creator: removed",
    _OPTION,
)
_UNSAFE = PrivateVerdict(
    ActionCode.X,
    ActionCode.C,
    Rule.PRIVATE,
    "private attribute not known to be safe: removed",
    _OPTION,
)
_MARKED_SAFE = PrivateVerdict(
    ActionCode.K,
    ActionCode.C,
    Rule.PRIVATE_CHARACTERISTICS,
    "marked safe by the object's Private Data Element Characteristics",
    _OPTION,
)
KEPT_CREATOR = PrivateVerdict(
    ActionCode.K, ActionCode.C, Rule.SAFE_PRIVATE, "private creator of a retained block", _OPTION
)
REMOVED_CREATOR = PrivateVerdict(
    ActionCode.X, ActionCode.X, Rule.PRIVATE, "private creator of a removed block"
)


class PrivateRules:
    """Decides private elements for one object under one policy."""

    def __init__(self, retain_safe: bool, top: Dataset) -> None:
        self.retain_safe = retain_safe
        self.blocks: dict[tuple[int, str], _Block] = _characteristics(top) if retain_safe else {}

    def decide(self, tag: int, creators: dict[tuple[int, int], str]) -> PrivateVerdict:
        """The verdict for a private data element (not a creator) given its level's creators."""
        group, element = tag >> 16, tag & 0xFFFF
        if element < 0x1000:
            return _OUTSIDE
        if not self.retain_safe:
            return _BASIC
        creator = creators.get((group, element >> 8))
        if creator is None:
            return _ORPHAN
        row = safe_private_attributes().get(SafePrivateKey(group, creator, element & 0xFF))
        if row is not None:
            reason = f"E.3.10-1 row {row.line}: safe private attribute kept"
            return PrivateVerdict(ActionCode.K, ActionCode.C, Rule.SAFE_PRIVATE, reason, _OPTION)
        block = self.blocks.get((group, creator))
        if block is None:
            return _UNSAFE
        low = element & 0xFF
        if low in block.actions:
            action = block.actions[low]
            reason = (
                f"Deidentification Action {action.value} of the object's "
                "Private Data Element Characteristics"
            )
            return PrivateVerdict(
                action, ActionCode.C, Rule.PRIVATE_CHARACTERISTICS, reason, _OPTION
            )
        if block.status == "SAFE" or (block.status == "MIXED" and low in block.safe):
            return _MARKED_SAFE
        return _UNSAFE


def creators(ds: Dataset) -> dict[tuple[int, int], str]:
    """(group, block byte) -> private creator of one data set level."""
    found: dict[tuple[int, int], str] = {}
    for tag in ds.keys():
        if (tag >> 16) % 2 and 0x0010 <= (tag & 0xFFFF) <= 0x00FF:  # is_private_creator
            try:
                value = ds[tag].value
            except Exception:  # an unreadable creator reserves nothing
                continue
            if isinstance(value, str):
                found[(tag >> 16, tag & 0xFF)] = normalise_creator(value)
    return found


def _characteristics(ds: Dataset) -> dict[tuple[int, str], _Block]:
    element = ds.get(_CHARACTERISTICS)
    blocks: dict[tuple[int, str], _Block] = {}
    for item in (element.value if element is not None else None) or ():
        try:
            group = int(item.get("PrivateGroupReference"))
            creator = normalise_creator(str(item.get("PrivateCreatorReference", "")))
        except (TypeError, ValueError):
            continue
        status = str(item.get("BlockIdentifyingInformationStatus", "")).strip().upper()
        safe = frozenset(v & 0xFF for v in _ints(item.get("NonidentifyingPrivateElements")))
        actions: dict[int, ActionCode] = {}
        for sub in item.get("DeidentificationActionSequence") or ():
            try:
                action = ActionCode.parse(str(sub.get("DeidentificationAction", "")))
            except ValueError:
                continue
            if action in _ITEM_ACTIONS:
                for value in _ints(sub.get("IdentifyingPrivateElements")):
                    actions[value & 0xFF] = action
        blocks[(group, creator)] = _Block(status, safe, actions)
    return blocks


def _ints(value: object) -> list[int]:
    """A US value (single or multi) as ints; anything unreadable gives nothing."""
    if value is None or value == "":
        return []
    values = value if isinstance(value, list | tuple) else getattr(value, "_list", [value])
    out: list[int] = []
    for v in values:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            continue
    return out
