"""Decide, then do: a :class:`Plan` of :class:`Decision` s for every element of a data set.

Planning reads tags, VRs and (for a few rules) values, and records for every element at every
sequence depth which action applies and why. It changes nothing. The same plan drives
``deid explain``, the audit counts, and :func:`deid.actions.apply_plan`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

from deid.codes import ActionCode, AttributeType, ProfileOption
from deid.identifiers import element_vr
from deid.errors import RejectedError
from deid.codes import RejectReason
from deid.policy import Policy
from deid.standard import (
    ConfidentialityTable,
    IodTypes,
    ProfileRow,
    confidentiality_table,
    iod_types,
    lookup_structured_content,
    safe_private_attributes,
    sop_classes,
)
from deid.tags import (
    CURVE_PATTERN,
    OVERLAY_COMMENTS_PATTERN,
    OVERLAY_DATA_PATTERN,
    SafePrivateKey,
    format_tag,
    is_private_creator,
    normalise_creator,
    repeating_pattern,
)

#: Pseudo-tag of a sequence item, for decisions that keep or remove a whole item.
ITEM_TAG = 0xFFFEE000

#: One step into a sequence: (sequence tag, item index).
Step = tuple[int, int]

_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "CS", "UR"})
_FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_SIMPLE = frozenset({ActionCode.D, ActionCode.Z, ActionCode.X, ActionCode.K, ActionCode.C, ActionCode.U})

# Sequences cleaned by Clean Structured Content hold content items (PS3.15 E.3.4).
_CONTENT_ITEM_SEQUENCES = frozenset({0x0040A730, 0x00400555, 0x00400610, 0x0040B020})
# The element that carries a content item's value, by Value Type (PS3.3 C.17.3).
_VALUE_ELEMENT = {
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
_PRIVATE_CHARACTERISTICS = 0x00080300
_DATE_OPTIONS = (ProfileOption.RETAIN_LONG_FULL_DATES, ProfileOption.RETAIN_LONG_MODIFIED_DATES)
_CLEANING_OPTIONS = frozenset(
    {
        ProfileOption.CLEAN_DESCRIPTORS,
        ProfileOption.CLEAN_STRUCTURED_CONTENT,
        ProfileOption.CLEAN_GRAPHICS,
        ProfileOption.RETAIN_PATIENT_CHARACTERISTICS,
        ProfileOption.RETAIN_DEVICE_IDENTITY,
    }
)


class Rule(str, Enum):
    """Where a decision comes from."""

    TABLE = "E.1-1"
    OPTION = "E.1-1 option"
    STRUCTURED = "E.3.4-1"
    SAFE_PRIVATE = "E.3.10-1"
    PRIVATE_CHARACTERISTICS = "private characteristics"
    PRIVATE = "private"
    OVERRIDE = "override"
    PERSON_NAME = "VR PN"
    DATE_VR = "date VR"
    UID_VR = "UID VR"
    WELL_KNOWN_UID = "well-known UID"
    CONTEXT = "context"
    STRUCTURE = "structure"
    DERIVED = "derived"
    UNLISTED = "unlisted"


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one element (or one sequence item) and why. Carries no values.

    ``action`` is always a simple code (D Z X K C U); ``code`` is the code before the
    compound one was resolved by ``attribute_type``. ``pseudonym`` marks a Z or D that writes
    a keyed pseudonym (the standard allows a dummy value for both).
    """

    path: tuple[Step, ...]
    tag: int
    keyword: str
    vr: str
    action: ActionCode
    code: ActionCode
    rule: Rule
    reason: str
    attribute_type: AttributeType | None = None
    option: ProfileOption | None = None
    pseudonym: bool = False
    in_file_meta: bool = False

    @property
    def location(self) -> str:
        """``(0008,1115)[0]>(0008,1155)``; ``meta>(0002,0003)`` in the file meta."""
        parts = [f"{format_tag(t)}[{i}]" for t, i in self.path]
        last = "item" if self.tag == ITEM_TAG else format_tag(self.tag)
        prefix = "meta>" if self.in_file_meta else ""
        return prefix + ">".join([*parts, last])

    def explain(self) -> str:
        """One line: location, keyword, VR, action, why."""
        action = self.action.value + ("*" if self.pseudonym else "")
        return f"{self.location}\t{self.keyword or '-'}\t{self.vr or '-'}\t{action}\t{self.reason}"


@dataclass(frozen=True)
class Plan:
    """An immutable list of decisions for one data set, and what they were made against."""

    decisions: tuple[Decision, ...]
    policy: Policy
    sop_class_uid: str
    iod: str
    iod_known: bool
    derived_age: bool = False
    _by_location: dict[str, Decision] = field(default_factory=dict, repr=False, compare=False)

    def counts(self) -> dict[str, int]:
        """Number of decisions per action (``D* `` counts pseudonyms apart)."""
        counter: Counter[str] = Counter()
        for d in self.decisions:
            counter[d.action.value + ("*" if d.pseudonym else "")] += 1
        return dict(sorted(counter.items()))

    def find(self, tag: int, path: tuple[Step, ...] = ()) -> Decision | None:
        """The decision for ``tag`` at ``path`` (top level by default)."""
        for d in self.decisions:
            if d.tag == tag and d.path == path and not d.in_file_meta:
                return d
        return None

    def explain_lines(self) -> list[str]:
        head = f"# SOP Class {self.sop_class_uid} ({self.iod or 'IOD unknown'}); policy {self.policy.name}"
        cols = "location\tkeyword\tVR\taction\twhy"
        return [head, cols, *(d.explain() for d in self.decisions)]


def is_well_known_uid(value: str) -> bool:
    """A UID of the standard (SOP classes, transfer syntaxes, coding schemes, ...)."""
    uid = value.strip().rstrip("\x00")
    return uid in UID_dictionary or uid.startswith("1.2.840.10008.")


@dataclass(frozen=True, slots=True)
class _Context:
    """What the enclosing sequences ask of unlisted elements."""

    clean_text: bool = False
    dummy_text: bool = False
    content_items: bool = False


class _Planner:
    def __init__(self, policy: Policy, sop_class_uid: str) -> None:
        self.policy = policy
        self.options = policy.options
        self.sop_class_uid = sop_class_uid
        self.table: ConfidentialityTable = confidentiality_table()
        self.types: IodTypes = iod_types()
        self.out: list[Decision] = []
        self.safe_private = ProfileOption.RETAIN_SAFE_PRIVATE in self.options
        self.private_characteristics: dict[tuple[int, str], _BlockCharacteristics] = {}
        self.full_dates = ProfileOption.RETAIN_LONG_FULL_DATES in self.options
        self.modified_dates = ProfileOption.RETAIN_LONG_MODIFIED_DATES in self.options
        self.retain_uids = ProfileOption.RETAIN_UIDS in self.options

    # -- entry points -----------------------------------------------------------------

    def plan_file_meta(self, meta: Dataset) -> None:
        for tag in meta.keys():
            tag = int(tag)
            vr, keyword = element_vr(meta, tag), keyword_for_tag(tag)
            row = self.table.lookup(tag)
            if row is not None and tag == 0x00020003:
                code, option = row.code_for(self.options)
                action = ActionCode.K if code is ActionCode.K else ActionCode.U
                reason = _row_reason(row, code, option) + "; File Meta Information is rebuilt"
                rule = Rule.OPTION if option else Rule.TABLE
            else:
                code = action = ActionCode.X
                reason = "File Meta Information replaced (PS3.15 E.1.1)"
                rule = Rule.STRUCTURE
            self.out.append(Decision((), tag, keyword, vr, action, code, rule, reason, in_file_meta=True))

    def plan_dataset(self, ds: Dataset, path: tuple[Step, ...], tags: tuple[int, ...], ctx: _Context) -> None:
        if not path and self.safe_private:
            self._read_private_characteristics(ds)
        removed_overlays = self._removed_overlay_groups(ds)
        creators = _creators(ds)
        kept_blocks: set[tuple[int, int]] = set()
        creator_elements: list[tuple[int, str, str]] = []
        value_overrides = self._content_item(ds, path, ctx) if ctx.content_items else None
        if value_overrides is False:
            return
        for base_tag in ds.keys():
            tag = int(base_tag)
            vr = element_vr(ds, tag)
            keyword = keyword_for_tag(tag)
            group = tag >> 16
            if group % 2 == 1:
                if is_private_creator(tag):
                    creator_elements.append((tag, keyword, vr))
                    continue
                kept = self._private(ds, tag, vr, creators, path, tags, ctx)
                if kept:
                    kept_blocks.add((group, (tag & 0xFFFF) >> 8))
                continue
            if (group >> 8) == 0x60 and group in removed_overlays and (tag & 0xFFFF) != 0x3000:
                self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.X, Rule.STRUCTURE,
                          "overlay group removed with its Overlay Data")
                continue
            if isinstance(value_overrides, dict) and tag in value_overrides:
                action, reason = value_overrides[tag]
                self._emit_resolved(ds, tag, keyword, vr, action, action, Rule.STRUCTURED, reason, path, tags, ctx, None)
                continue
            self._public(ds, tag, keyword, vr, path, tags, ctx)
        for tag, keyword, vr in creator_elements:
            block = (tag >> 16, tag & 0xFF)
            if block in kept_blocks:
                self._add(path, tag, keyword, vr, ActionCode.K, ActionCode.C, Rule.SAFE_PRIVATE,
                          "private creator of a retained block (E.3.10)", option=ProfileOption.RETAIN_SAFE_PRIVATE)
            else:
                self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.X, Rule.PRIVATE,
                          "private creator of a removed block")

    # -- public elements ----------------------------------------------------------------

    def _public(self, ds: Dataset, tag: int, keyword: str, vr: str, path: tuple[Step, ...],
                tags: tuple[int, ...], ctx: _Context) -> None:
        group, elem_no = tag >> 16, tag & 0xFFFF
        if elem_no == 0 or group in (0x0002, 0x0004):
            what = {
                0x0002: "File Meta Information element inside the data set",
                0x0004: "group 0004 outside a DICOMDIR (PS3.15 E.1.1)",
            }.get(group, "group length")
            self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.X, Rule.STRUCTURE, f"{what}: removed")
            return
        override = self.policy.overrides.get(tag)
        if override is not None:
            self._emit_resolved(ds, tag, keyword, vr, override, override, Rule.OVERRIDE,
                                f"policy override {override.value}", path, tags, ctx, None)
            return
        row = self.table.lookup(tag)
        if row is not None:
            code, option = row.code_for(self.options)
            rule = Rule.OPTION if option else Rule.TABLE
            self._emit_resolved(ds, tag, keyword, vr, code, code, rule, _row_reason(row, code, option),
                                path, tags, ctx, option)
            return
        if group == 0x0000:
            self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.X, Rule.STRUCTURE,
                      "command element inside a stored object: removed")
            return
        self._unlisted(ds, tag, keyword, vr, path, tags, ctx)

    def _unlisted(self, ds: Dataset, tag: int, keyword: str, vr: str, path: tuple[Step, ...],
                  tags: tuple[int, ...], ctx: _Context) -> None:
        add = self._add
        if vr == "PN":
            pseudo = tag in self.policy.pseudonymize
            add(path, tag, keyword, vr, ActionCode.Z, ActionCode.Z, Rule.PERSON_NAME,
                "not listed, but every person name is identifying: emptied", pseudonym=pseudo)
        elif vr in _DATE_VRS:
            if self.full_dates:
                add(path, tag, keyword, vr, ActionCode.K, ActionCode.K, Rule.DATE_VR,
                    "date/time by VR: kept (Retain Longitudinal Full Dates)",
                    option=ProfileOption.RETAIN_LONG_FULL_DATES)
            elif self.modified_dates:
                add(path, tag, keyword, vr, ActionCode.C, ActionCode.C, Rule.DATE_VR,
                    "date/time by VR: shifted (Retain Longitudinal Modified Dates)"
                    if vr != "TM" else "time by VR: kept, the shift is whole days",
                    option=ProfileOption.RETAIN_LONG_MODIFIED_DATES)
            else:
                add(path, tag, keyword, vr, ActionCode.Z, ActionCode.Z, Rule.DATE_VR,
                    "date/time by VR without a dates option: emptied")
        elif vr == "UI":
            self._uid(ds, tag, keyword, path, ActionCode.U, Rule.UID_VR,
                      "UID by VR: remapped wherever it occurs", None)
        elif vr == "SQ":
            add(path, tag, keyword, vr, ActionCode.K, ActionCode.K, Rule.UNLISTED,
                "not listed: kept, items processed")
            self._items(ds, tag, path, tags, _Context(ctx.clean_text, ctx.dummy_text, False))
        elif ctx.dummy_text and vr in _FREE_TEXT_VRS:
            add(path, tag, keyword, vr, ActionCode.D, ActionCode.D, Rule.CONTEXT,
                "free text inside a sequence the profile dummies")
        elif ctx.clean_text and vr in _TEXT_VRS:
            add(path, tag, keyword, vr, ActionCode.C, ActionCode.C, Rule.CONTEXT,
                "text inside a sequence being cleaned: identifiers scrubbed")
        else:
            add(path, tag, keyword, vr, ActionCode.K, ActionCode.K, Rule.UNLISTED, "not listed: kept")

    def _emit_resolved(self, ds: Dataset, tag: int, keyword: str, vr: str, code: ActionCode,
                       table_code: ActionCode, rule: Rule, reason: str, path: tuple[Step, ...],
                       tags: tuple[int, ...], ctx: _Context, option: ProfileOption | None) -> None:
        attr_type: AttributeType | None = None
        action = code
        if code.is_compound:
            action, attr_type, note = self._resolve(code, (*tags, tag))
            reason = f"{reason}; {note}"
        pattern = repeating_pattern(tag)
        if pattern in (CURVE_PATTERN, OVERLAY_DATA_PATTERN) and action is ActionCode.C:
            action = ActionCode.X
            reason += "; binary graphics cannot be cleaned without the pixel pass: removed"
        elif action is ActionCode.C and vr in _BINARY_VRS:
            action = ActionCode.X
            reason += "; binary value cannot be cleaned: removed"
        if vr == "UI" and action in (ActionCode.U, ActionCode.D, ActionCode.C):
            self._uid(ds, tag, keyword, path, table_code, rule, reason, option)
            return
        pseudo = tag in self.policy.pseudonymize and action in (ActionCode.Z, ActionCode.D)
        if pseudo:
            reason += "; keyed pseudonym (policy pseudonymize)"
        if vr in _DATE_VRS and action is ActionCode.C and not self.modified_dates:
            reason += "; no dates option: value emptied"
            action = ActionCode.Z
        self._add(path, tag, keyword, vr, action, table_code, rule, reason, attr_type, option, pseudo)
        if vr == "SQ" and action in (ActionCode.K, ActionCode.C, ActionCode.D, ActionCode.U):
            child = _Context(ctx.clean_text, ctx.dummy_text, False)
            if action is ActionCode.D:
                child = _Context(ctx.clean_text, True, False)
            elif action is ActionCode.C:
                cleans_text = option in _CLEANING_OPTIONS or option is None
                items = (option is ProfileOption.CLEAN_STRUCTURED_CONTENT and tag in _CONTENT_ITEM_SEQUENCES)
                child = _Context(ctx.clean_text or cleans_text, ctx.dummy_text, items)
                if option is ProfileOption.CLEAN_DESCRIPTORS or rule is Rule.OVERRIDE:
                    self._local_codes(ds, tag, path)
            self._items(ds, tag, path, tags, child)

    def _uid(self, ds: Dataset, tag: int, keyword: str, path: tuple[Step, ...], code: ActionCode,
             rule: Rule, reason: str, option: ProfileOption | None) -> None:
        if self.retain_uids and rule is Rule.UID_VR:
            self._add(path, tag, keyword, "UI", ActionCode.K, code, rule,
                      "UID by VR: retained (Retain UIDs)", option=ProfileOption.RETAIN_UIDS)
            return
        try:
            value = ds[tag].value
        except Exception:
            value = None
        values = [] if value is None else [value] if isinstance(value, str) else list(value)
        if values and all(is_well_known_uid(str(v)) for v in values):
            self._add(path, tag, keyword, "UI", ActionCode.K, code, Rule.WELL_KNOWN_UID,
                      "well-known UID of the standard: never remapped")
            return
        self._add(path, tag, keyword, "UI", ActionCode.U, code, rule, reason, option=option)

    def _resolve(self, code: ActionCode, tag_path: tuple[int, ...]) -> tuple[ActionCode, AttributeType | None, str]:
        attr_type, known = self.types.type_of(self.sop_class_uid, tag_path)
        iod = "this IOD" if known else "any IOD (SOP Class unknown)"
        if attr_type is None:
            return ActionCode.X, None, f"not defined at this place in {iod}: removed (E.1.1)"
        strict = attr_type.strictness
        choice = {
            ActionCode.Z_D: (ActionCode.D, ActionCode.Z, ActionCode.Z),
            ActionCode.X_Z: (ActionCode.D, ActionCode.Z, ActionCode.X),
            ActionCode.X_D: (ActionCode.D, ActionCode.Z, ActionCode.X),
            ActionCode.X_Z_D: (ActionCode.D, ActionCode.Z, ActionCode.X),
            ActionCode.X_Z_U: (ActionCode.U, ActionCode.Z, ActionCode.X),
        }[code][3 - strict]
        return choice, attr_type, f"Type {attr_type.value} in {iod} -> {choice.value}"

    def _items(self, ds: Dataset, tag: int, path: tuple[Step, ...], tags: tuple[int, ...], ctx: _Context) -> None:
        value = ds[tag].value
        if value is None:
            return
        for index, item in enumerate(value):
            self.plan_dataset(item, (*path, (tag, index)), (*tags, tag), ctx)

    def _local_codes(self, ds: Dataset, tag: int, path: tuple[Step, ...]) -> None:
        """Clean Descriptors on a code sequence: items of private coding schemes go."""
        for index, item in enumerate(ds[tag].value or ()):
            scheme = item.get("CodingSchemeDesignator")
            if isinstance(scheme, str) and (scheme.startswith("99") or scheme.strip() == "L"):
                self._add((*path, (tag, index)), ITEM_TAG, "Item", "", ActionCode.X, ActionCode.C,
                          Rule.CONTEXT, "local code (private coding scheme) removed: Clean Descriptors",
                          option=ProfileOption.CLEAN_DESCRIPTORS)

    # -- Clean Structured Content --------------------------------------------------------------

    def _content_item(self, item: Dataset, path: tuple[Step, ...], ctx: _Context) -> dict[int, tuple[ActionCode, str]] | bool:
        """Decide a content item from Table E.3.4-1; False when the whole item goes."""
        value_type = item.get("ValueType")
        names = item.get("ConceptNameCodeSequence")
        if not isinstance(value_type, str) or not names:
            return {}
        concept = names[0]
        found = lookup_structured_content(
            str(concept.get("CodingSchemeDesignator", "")), str(concept.get("CodeValue", "")), value_type
        )
        if found is None:
            return {}
        code, option = found.row.code_for(self.options)
        reason = f"E.3.4-1 row {found.row.line} ({found.meaning}): {code.value}"
        if option is not None:
            reason += f" ({option.value})"
        if code is ActionCode.X_D:
            code = ActionCode.D
            reason += "; content items have no Type: D keeps the tree valid"
        if code is ActionCode.X:
            self._add(path, ITEM_TAG, "Item", "", ActionCode.X, ActionCode.X, Rule.STRUCTURED, reason, option=option)
            return False
        self._add(path, ITEM_TAG, "Item", "", ActionCode.K, code, Rule.STRUCTURED,
                  reason + "; item kept", option=option)
        value_tag = _VALUE_ELEMENT.get(value_type.strip())
        if value_tag is None:
            return {}
        return {value_tag: (code, reason)}

    # -- private elements ----------------------------------------------------------------

    def _read_private_characteristics(self, ds: Dataset) -> None:
        element = ds.get(_PRIVATE_CHARACTERISTICS)
        for item in (element.value if element is not None else None) or ():
            try:
                group = int(item.get("PrivateGroupReference"))
                creator = normalise_creator(str(item.get("PrivateCreatorReference", "")))
            except (TypeError, ValueError):
                continue
            status = str(item.get("BlockIdentifyingInformationStatus", "")).strip().upper()
            safe = {int(v) & 0xFF for v in _as_list(item.get("NonidentifyingPrivateElements"))}
            actions: dict[int, ActionCode] = {}
            for sub in item.get("DeidentificationActionSequence") or ():
                try:
                    action = ActionCode.parse(str(sub.get("DeidentificationAction", "")))
                except ValueError:
                    continue
                if action in _SIMPLE:
                    for v in _as_list(sub.get("IdentifyingPrivateElements")):
                        actions[int(v) & 0xFF] = action
            self.private_characteristics[(group, creator)] = _BlockCharacteristics(status, frozenset(safe), actions)

    def _private(self, ds: Dataset, tag: int, vr: str, creators: dict[tuple[int, int], str],
                 path: tuple[Step, ...], tags: tuple[int, ...], ctx: _Context) -> bool:
        """Decide one private data element; True when it (and so its creator) is kept."""
        group, elem_no = tag >> 16, tag & 0xFFFF
        keyword = ""
        if elem_no < 0x0010 or (elem_no > 0x00FF and elem_no < 0x1000):
            self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.X, Rule.PRIVATE,
                      "private group element outside any block: removed")
            return False
        creator = creators.get((group, elem_no >> 8))
        if not self.safe_private:
            self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.X, Rule.PRIVATE,
                      "private attribute: Basic X")
            return False
        if creator is None:
            self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.C, Rule.PRIVATE,
                      "private element without its creator: removed", option=ProfileOption.RETAIN_SAFE_PRIVATE)
            return False
        key = SafePrivateKey(group, creator, elem_no & 0xFF)
        safe_row = safe_private_attributes().get(key)
        option = ProfileOption.RETAIN_SAFE_PRIVATE
        if safe_row is not None:
            self._add(path, tag, keyword, vr, ActionCode.K, ActionCode.C, Rule.SAFE_PRIVATE,
                      f"E.3.10-1 row {safe_row.line}: safe private attribute kept", option=option)
            self._private_items(ds, tag, vr, path, tags, ctx)
            return True
        block = self.private_characteristics.get((group, creator))
        if block is not None:
            low = elem_no & 0xFF
            if low in block.actions:
                action = block.actions[low]
                self._add(path, tag, keyword, vr, action, ActionCode.C, Rule.PRIVATE_CHARACTERISTICS,
                          f"Deidentification Action {action.value} of the object's Private Data Element Characteristics",
                          option=option)
                return action is not ActionCode.X
            if block.status == "SAFE" or (block.status == "MIXED" and low in block.safe):
                self._add(path, tag, keyword, vr, ActionCode.K, ActionCode.C, Rule.PRIVATE_CHARACTERISTICS,
                          "marked safe by the object's Private Data Element Characteristics", option=option)
                self._private_items(ds, tag, vr, path, tags, ctx)
                return True
        self._add(path, tag, keyword, vr, ActionCode.X, ActionCode.C, Rule.PRIVATE,
                  "private attribute not known to be safe: removed", option=option)
        return False

    def _private_items(self, ds: Dataset, tag: int, vr: str, path: tuple[Step, ...],
                       tags: tuple[int, ...], ctx: _Context) -> None:
        if vr == "SQ":
            self._items(ds, tag, path, tags, ctx)

    def _removed_overlay_groups(self, ds: Dataset) -> set[int]:
        groups: set[int] = set()
        for tag in ds.keys():
            group = tag >> 16
            if group > 0x60FF:
                break
            if 0x6000 <= group <= 0x60FF and group % 2 == 0 and (tag & 0xFFFF) == 0x3000:
                override = self.policy.overrides.get(int(tag))
                if override not in (ActionCode.K,):
                    groups.add(group)
        return groups

    # -- bookkeeping ---------------------------------------------------------------------

    def _add(self, path: tuple[Step, ...], tag: int, keyword: str, vr: str, action: ActionCode,
             code: ActionCode, rule: Rule, reason: str, attribute_type: AttributeType | None = None,
             option: ProfileOption | None = None, pseudonym: bool = False) -> None:
        self.out.append(Decision(path, int(tag), keyword, vr, action, code, rule, reason,
                                 attribute_type, option, pseudonym))


@dataclass(frozen=True, slots=True)
class _BlockCharacteristics:
    status: str
    safe: frozenset[int]
    actions: dict[int, ActionCode]


def _as_list(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, int | str):
        return [value]
    return list(value)  # type: ignore[call-overload]


def _creators(ds: Dataset) -> dict[tuple[int, int], str]:
    found: dict[tuple[int, int], str] = {}
    for tag in ds.keys():
        if is_private_creator(tag):
            try:
                value = ds[tag].value
            except Exception:
                continue
            if isinstance(value, str):
                found[(tag >> 16, tag & 0xFF)] = normalise_creator(value)
    return found


def _row_reason(row: ProfileRow, code: ActionCode, option: ProfileOption | None) -> str:
    source = f"option {option.value}" if option else "Basic"
    return f"E.1-1 row {row.line} {row.tag} {row.name}: {source} {code.value}"


def _reference_date(ds: Dataset) -> str | None:
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        value = ds.get(keyword)
        if isinstance(value, str) and len(value.strip()) == 8 and value.strip().isdigit():
            return value.strip()
    return None


def build_plan(ds: Dataset, policy: Policy) -> Plan:
    """Plan the de-identification of ``ds`` under ``policy``; ``ds`` is not changed."""
    sop_class_uid = str(ds.get("SOPClassUID", "") or "").strip()
    sop = sop_classes().get(sop_class_uid)
    planner = _Planner(policy, sop_class_uid)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        planner.plan_file_meta(meta)
    planner.plan_dataset(ds, (), (), _Context())
    derived = _derive_age(ds, policy, planner)
    known = sop_class_uid in iod_types().by_sop_class
    return Plan(tuple(planner.out), policy, sop_class_uid, sop.iod if sop else "", known, derived)


def _derive_age(ds: Dataset, policy: Policy, planner: _Planner) -> bool:
    """Retain Patient Characteristics: compute Patient's Age before the birth date goes."""
    if ProfileOption.RETAIN_PATIENT_CHARACTERISTICS not in policy.options:
        return False
    if str(ds.get("PatientAge", "") or "").strip():
        return False
    birth = str(ds.get("PatientBirthDate", "") or "").strip()
    if len(birth) != 8 or not birth.isdigit() or _reference_date(ds) is None:
        return False
    planner.out = [d for d in planner.out if not (d.tag == 0x00101010 and not d.path)]
    planner._add((), 0x00101010, "PatientAge", "AS", ActionCode.D, ActionCode.K, Rule.DERIVED,
                 "computed from Patient's Birth Date and the study date before the birth date is removed "
                 "(Retain Patient Characteristics)", option=ProfileOption.RETAIN_PATIENT_CHARACTERISTICS)
    return True


def iter_top_level(plan: Plan) -> Iterator[Decision]:
    """Decisions on top-level elements of the data set (not file meta)."""
    return (d for d in plan.decisions if not d.path and not d.in_file_meta)
