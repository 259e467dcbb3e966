"""Decide, then do: a :class:`Plan` of :class:`Decision` s for every element of a data set.

Planning reads tags and VRs (and the few values a rule needs: UIDs, private creators, content
item concepts) and records, for every element at every sequence depth, which action applies
and why. It changes nothing and decodes no value it does not need. The same plan drives
``deid explain``, the audit counts, and :func:`deid.actions.apply_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from deid.codes import ActionCode, AttributeType, ProfileOption, Rule
from deid.decisions import ITEM_TAG, Decision, Plan, Step, is_well_known_uid
from deid.policy import Policy
from deid.private import KEPT_CREATOR, REMOVED_CREATOR, PrivateRules, PrivateVerdict, creators
from deid.rawitems import convert_sequence
from deid.standard import ProfileRow, confidentiality_table, iod_types, sop_classes
from deid.structured import CONTENT_ITEM_SEQUENCES, content_item_verdict
from deid.tags import (
    CURVE_PATTERN,
    OVERLAY_DATA_PATTERN,
    held_vr,
    is_private_creator,
    keyword_of,
    repeating_pattern,
    stored,
)
from deid.values import (
    fast_reading,
    get_value,
    is_canonical,
    level_codec,
    raw_vr,
    read_values,
)

__all__ = ["ITEM_TAG", "Decision", "Plan", "Rule", "Step", "build_plan", "is_well_known_uid"]


_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "CS", "UR"})
_FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_KEEPS_ITEMS = frozenset({ActionCode.K, ActionCode.C, ActionCode.D, ActionCode.U})
_CLEANING_OPTIONS = frozenset(
    {
        ProfileOption.CLEAN_DESCRIPTORS,
        ProfileOption.CLEAN_STRUCTURED_CONTENT,
        ProfileOption.CLEAN_GRAPHICS,
        ProfileOption.RETAIN_PATIENT_CHARACTERISTICS,
        ProfileOption.RETAIN_DEVICE_IDENTITY,
    }
)
_STRUCTURE = {
    0x0000: "command element inside a stored object: removed",
    0x0002: "File Meta Information element inside the data set: removed",
    0x0004: "group 0004 outside a DICOMDIR (PS3.15 E.1.1): removed",
}


class _Context(NamedTuple):
    """What the enclosing sequences ask of unlisted elements (a tuple: cheap to hash)."""

    clean_text: bool = False
    dummy_text: bool = False
    content_items: bool = False


@dataclass(frozen=True, slots=True)
class _Site:
    """One element being decided: where it is and what it is."""

    ds: Dataset
    path: tuple[Step, ...]
    tags: tuple[int, ...]
    tag: int
    keyword: str
    vr: str


class _Planner:
    def __init__(self, policy: Policy, sop_class_uid: str, top: Dataset, cache: PlanCache) -> None:
        self.policy = policy
        self.cache = cache
        self.options = policy.options
        self.sop_class_uid = sop_class_uid
        self.table = confidentiality_table()
        self.types = iod_types()
        self.out: list[Decision] = []
        self.private = PrivateRules(ProfileOption.RETAIN_SAFE_PRIVATE in self.options, top)
        self.full_dates = ProfileOption.RETAIN_LONG_FULL_DATES in self.options
        self.modified_dates = ProfileOption.RETAIN_LONG_MODIFIED_DATES in self.options
        self.retain_uids = ProfileOption.RETAIN_UIDS in self.options
        self.fast = fast_reading()
        self._codecs: dict[int, str | None] = {}

    def add(
        self,
        site: _Site,
        action: ActionCode,
        code: ActionCode,
        rule: Rule,
        reason: str,
        *,
        attribute_type: AttributeType | None = None,
        option: ProfileOption | None = None,
        pseudonym: bool = False,
    ) -> None:
        self.out.append(
            Decision(
                site.path,
                site.tag,
                site.keyword,
                site.vr,
                action,
                code,
                rule,
                reason,
                attribute_type,
                option,
                pseudonym,
            )
        )

    # -- entry points -----------------------------------------------------------------

    def plan_file_meta(self, meta: Dataset) -> None:
        for base_tag, held in list(meta.items()):
            tag = int(base_tag)
            vr, keyword = held_vr(held, tag), keyword_of(tag)
            row = self.table.lookup(tag)
            code, option = row.code_for(self.options) if row else (ActionCode.X, None)
            if row is not None and tag == 0x00020003:
                action = ActionCode.K if code is ActionCode.K else ActionCode.U
                reason = _row_reason(row, code, option) + "; File Meta Information is rebuilt"
                rule = Rule.OPTION if option else Rule.TABLE
            else:
                code = action = ActionCode.X
                reason, rule = "File Meta Information replaced (PS3.15 E.1.1)", Rule.STRUCTURE
            self.out.append(
                Decision((), tag, keyword, vr, action, code, rule, reason, in_file_meta=True)
            )

    def plan_dataset(
        self, ds: Dataset, path: tuple[Step, ...], tags: tuple[int, ...], ctx: _Context
    ) -> None:
        value_overrides: dict[int, tuple[ActionCode, str]] = {}
        if ctx.content_items and not self._content_item(ds, path, value_overrides):
            return
        removed_overlays = self._removed_overlay_groups(ds)
        level_creators = creators(ds)
        kept_blocks: set[tuple[int, int]] = set()
        creator_sites: list[_Site] = []
        cache = self.cache
        out = self.out
        for base_tag, held in list(ds.items()):
            tag = int(base_tag)
            vr = held_vr(held, tag)
            group = tag >> 16
            public = group % 2 == 0 and group not in removed_overlays
            if public and vr not in _UNCACHED_VRS and tag not in value_overrides:
                cached = cache.get((path, tag, vr, ctx))
                if cached is not None:
                    out.append(cached)
                    continue
            site = _Site(ds, path, tags, tag, keyword_of(tag), vr)
            if group % 2 == 1:
                if is_private_creator(tag):
                    creator_sites.append(site)
                elif self._private(site, self.private.decide(tag, level_creators), ctx):
                    kept_blocks.add((group, (tag & 0xFFFF) >> 8))
            elif not public and (tag & 0xFFFF) != 0x3000:
                self.add(
                    site,
                    ActionCode.X,
                    ActionCode.X,
                    Rule.STRUCTURE,
                    "overlay group removed with its Overlay Data",
                )
            elif tag in value_overrides:
                action, reason = value_overrides[tag]
                self._emit(site, action, Rule.STRUCTURED, reason, ctx, None)
            else:
                self._public(site, ctx)
        for site in creator_sites:
            kept = (site.tag >> 16, site.tag & 0xFF) in kept_blocks
            verdict = KEPT_CREATOR if kept else REMOVED_CREATOR
            self.add(
                site,
                verdict.action,
                verdict.code,
                verdict.rule,
                verdict.reason,
                option=verdict.option,
            )

    # -- public elements ----------------------------------------------------------------

    def _public(self, site: _Site, ctx: _Context) -> None:
        """Decide a public element; decisions that need no value are remembered per place."""
        if site.vr in _UNCACHED_VRS:
            self._public_decide(site, ctx)
            return
        start = len(self.out)
        self._public_decide(site, ctx)
        if len(self.out) == start + 1 and len(self.cache) < _CACHE_LIMIT:
            self.cache[(site.path, site.tag, site.vr, ctx)] = self.out[start]

    def _public_decide(self, site: _Site, ctx: _Context) -> None:
        group, element = site.tag >> 16, site.tag & 0xFFFF
        if element == 0 or group in (0x0002, 0x0004):
            reason = _STRUCTURE.get(group, "group length: removed")
            self.add(site, ActionCode.X, ActionCode.X, Rule.STRUCTURE, reason)
            return
        override = self.policy.overrides.get(site.tag)
        if override is not None:
            self._emit(site, override, Rule.OVERRIDE, f"policy override {override.value}", ctx)
            return
        row = self.table.lookup(site.tag)
        if row is not None:
            code, option = row.code_for(self.options)
            rule = Rule.OPTION if option else Rule.TABLE
            self._emit(site, code, rule, _row_reason(row, code, option), ctx, option)
        elif group == 0x0000:
            self.add(site, ActionCode.X, ActionCode.X, Rule.STRUCTURE, _STRUCTURE[0])
        else:
            self._unlisted(site, ctx)

    def _unlisted(self, site: _Site, ctx: _Context) -> None:
        vr = site.vr
        if vr == "PN":
            reason = "not listed, but every person name is identifying: emptied"
            pseudo = site.tag in self.policy.pseudonymize
            self.add(site, ActionCode.Z, ActionCode.Z, Rule.PERSON_NAME, reason, pseudonym=pseudo)
        elif vr in _DATE_VRS:
            self._date_by_vr(site)
        elif vr == "UI":
            self._uid(site, ActionCode.U, Rule.UID_VR, "UID by VR: remapped wherever it occurs")
        elif vr == "SQ":
            self.add(
                site, ActionCode.K, ActionCode.K, Rule.UNLISTED, "not listed: kept, items processed"
            )
            self._items(site, _Context(ctx.clean_text, ctx.dummy_text, False))
        elif ctx.dummy_text and vr in _FREE_TEXT_VRS:
            reason = "free text inside a sequence the profile dummies"
            self.add(site, ActionCode.D, ActionCode.D, Rule.CONTEXT, reason)
        elif ctx.clean_text and vr in _TEXT_VRS:
            reason = "text inside a sequence being cleaned: identifiers scrubbed"
            self.add(site, ActionCode.C, ActionCode.C, Rule.CONTEXT, reason)
        else:
            self.add(site, ActionCode.K, ActionCode.K, Rule.UNLISTED, "not listed: kept")

    def _date_by_vr(self, site: _Site) -> None:
        if self.full_dates:
            self.add(
                site,
                ActionCode.K,
                ActionCode.K,
                Rule.DATE_VR,
                "date/time by VR: kept (Retain Longitudinal Full Dates)",
                option=ProfileOption.RETAIN_LONG_FULL_DATES,
            )
        elif self.modified_dates:
            reason = (
                "time by VR: kept, the shift is whole days"
                if site.vr == "TM"
                else "date/time by VR: shifted (Retain Longitudinal Modified Dates)"
            )
            self.add(
                site,
                ActionCode.C,
                ActionCode.C,
                Rule.DATE_VR,
                reason,
                option=ProfileOption.RETAIN_LONG_MODIFIED_DATES,
            )
        else:
            reason = "date/time by VR without a dates option: emptied"
            self.add(site, ActionCode.Z, ActionCode.Z, Rule.DATE_VR, reason)

    def _emit(
        self,
        site: _Site,
        code: ActionCode,
        rule: Rule,
        reason: str,
        ctx: _Context,
        option: ProfileOption | None = None,
    ) -> None:
        """Resolve ``code`` for this place and VR, record it, and descend into kept items."""
        attr_type: AttributeType | None = None
        action = code
        if code.is_compound:
            action, attr_type, note = self.types.resolve(
                code, self.sop_class_uid, (*site.tags, site.tag)
            )
            reason = f"{reason}; {note}"
        if action is ActionCode.C and repeating_pattern(site.tag) in (
            CURVE_PATTERN,
            OVERLAY_DATA_PATTERN,
        ):
            action = ActionCode.X
            reason += "; binary graphics cannot be cleaned without the pixel pass: removed"
        elif action is ActionCode.C and site.vr in _BINARY_VRS:
            action = ActionCode.X
            reason += "; binary value cannot be cleaned: removed"
        if site.vr == "UI" and action in (ActionCode.U, ActionCode.D, ActionCode.C):
            self._uid(site, code, rule, reason, option)
            return
        pseudo = site.tag in self.policy.pseudonymize and action in (ActionCode.Z, ActionCode.D)
        if pseudo:
            reason += "; keyed pseudonym (policy pseudonymize)"
        if site.vr in _DATE_VRS and action is ActionCode.C and not self.modified_dates:
            reason += "; no dates option: value emptied"
            action = ActionCode.Z
        self.add(
            site,
            action,
            code,
            rule,
            reason,
            attribute_type=attr_type,
            option=option,
            pseudonym=pseudo,
        )
        if site.vr == "SQ" and action in _KEEPS_ITEMS:
            self._items(site, self._child_context(site, action, rule, option, ctx))

    def _child_context(
        self,
        site: _Site,
        action: ActionCode,
        rule: Rule,
        option: ProfileOption | None,
        ctx: _Context,
    ) -> _Context:
        if action is ActionCode.D:
            return _Context(ctx.clean_text, True, False)
        if action is not ActionCode.C:
            return _Context(ctx.clean_text, ctx.dummy_text, False)
        cleans_text = option in _CLEANING_OPTIONS or option is None
        items = (
            option is ProfileOption.CLEAN_STRUCTURED_CONTENT and site.tag in CONTENT_ITEM_SEQUENCES
        )
        if option is ProfileOption.CLEAN_DESCRIPTORS or rule is Rule.OVERRIDE:
            self._local_codes(site)
        return _Context(ctx.clean_text or cleans_text, ctx.dummy_text, items)

    def _uid(
        self,
        site: _Site,
        code: ActionCode,
        rule: Rule,
        reason: str,
        option: ProfileOption | None = None,
    ) -> None:
        if self.retain_uids and rule is Rule.UID_VR:
            self.add(
                site,
                ActionCode.K,
                code,
                rule,
                "UID by VR: retained (Retain UIDs)",
                option=ProfileOption.RETAIN_UIDS,
            )
            return
        values = self._uid_values(site)
        if values and all(is_well_known_uid(str(v)) for v in values):
            self.add(
                site,
                ActionCode.K,
                code,
                Rule.WELL_KNOWN_UID,
                "well-known UID of the standard: never remapped",
            )
            return
        self.add(site, ActionCode.U, code, rule, reason, option=option)

    def _uid_values(self, site: _Site) -> list[Any]:
        """The UIDs of an element; read raw when pydicom would write them back unchanged."""
        if self.fast:
            held = stored(site.ds, site.tag)
            if isinstance(held, RawDataElement) and raw_vr(held) == "UI":
                codec = self._codec(site.ds)
                values = read_values(held, "UI", codec) if codec is not None else None
                if values is not None and is_canonical(held, "UI", values, str(codec)):
                    return values
        try:
            value = site.ds[site.tag].value
        except Exception:  # an unreadable UID is remapped like any other (or fails in apply)
            value = None
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    def _codec(self, ds: Dataset) -> str | None:
        key = id(ds)
        if key not in self._codecs:
            self._codecs[key] = level_codec(ds)
        return self._codecs[key]

    def _items(self, site: _Site, ctx: _Context) -> None:
        convert_sequence(site.ds, site.tag)  # pydicom's items, built faster
        value = site.ds[site.tag].value
        for index, item in enumerate(value or ()):
            self.plan_dataset(item, (*site.path, (site.tag, index)), (*site.tags, site.tag), ctx)

    def _item_decision(
        self,
        path: tuple[Step, ...],
        action: ActionCode,
        code: ActionCode,
        rule: Rule,
        reason: str,
        option: ProfileOption | None,
    ) -> None:
        self.out.append(
            Decision(path, ITEM_TAG, "Item", "", action, code, rule, reason, None, option)
        )

    def _local_codes(self, site: _Site) -> None:
        """Clean Descriptors on a code sequence: items of private coding schemes go."""
        convert_sequence(site.ds, site.tag)
        for index, item in enumerate(site.ds[site.tag].value or ()):
            scheme = item.get("CodingSchemeDesignator")
            if isinstance(scheme, str) and (scheme.startswith("99") or scheme.strip() == "L"):
                reason = "local code (private coding scheme) removed: Clean Descriptors"
                self._item_decision(
                    (*site.path, (site.tag, index)),
                    ActionCode.X,
                    ActionCode.C,
                    Rule.CONTEXT,
                    reason,
                    ProfileOption.CLEAN_DESCRIPTORS,
                )

    def _content_item(
        self,
        item: Dataset,
        path: tuple[Step, ...],
        value_overrides: dict[int, tuple[ActionCode, str]],
    ) -> bool:
        """Decide a content item from Table E.3.4-1; False when the whole item goes."""
        verdict = content_item_verdict(item, self.options)
        if verdict is None:
            return True
        reason = (
            verdict.reason if verdict.action is ActionCode.X else verdict.reason + "; item kept"
        )
        self._item_decision(
            path, verdict.action, verdict.code, Rule.STRUCTURED, reason, verdict.option
        )
        if verdict.value_tag is not None:
            value_overrides[verdict.value_tag] = (verdict.code, verdict.reason)
        return verdict.action is not ActionCode.X

    # -- private elements and overlays ----------------------------------------------------

    def _private(self, site: _Site, verdict: PrivateVerdict, ctx: _Context) -> bool:
        """Record a private element's verdict (descending into kept sequences); True if kept."""
        self.add(
            site, verdict.action, verdict.code, verdict.rule, verdict.reason, option=verdict.option
        )
        if verdict.action is ActionCode.K and site.vr == "SQ":
            self._items(site, ctx)
        return verdict.kept

    def _removed_overlay_groups(self, ds: Dataset) -> set[int]:
        groups: set[int] = set()
        for tag in ds.keys():
            group = tag >> 16
            if group > 0x60FF:
                break
            overlay_data = group >= 0x6000 and group % 2 == 0 and (tag & 0xFFFF) == 0x3000
            if overlay_data and self.policy.overrides.get(int(tag)) is not ActionCode.K:
                groups.add(group)
        return groups


def _row_reason(row: ProfileRow, code: ActionCode, option: ProfileOption | None) -> str:
    source = f"option {option.value}" if option else "Basic"
    return f"E.1-1 row {row.line} {row.tag} {row.name}: {source} {code.value}"


#: Decisions that depend only on place, tag, VR and context, for one policy and SOP Class
#: (decisions are immutable: the same one serves every object of the class).
PlanCache = dict[tuple[object, ...], Decision]
_UNCACHED_VRS = frozenset({"SQ", "UI"})
_CACHE_LIMIT = 100_000


def build_plan(ds: Dataset, policy: Policy, cache: dict[str, PlanCache] | None = None) -> Plan:
    """Plan the de-identification of ``ds`` under ``policy``; ``ds`` is not changed.

    ``cache`` (one per policy, e.g. a :class:`deid.Deidentifier`'s) remembers, per SOP Class,
    the decisions that need no value, so a series plans its second object much faster.
    """
    sop_class_uid = str(get_value(ds, "SOPClassUID") or "").strip()
    sop = sop_classes().get(sop_class_uid)
    per_class: PlanCache = {} if cache is None else cache.setdefault(sop_class_uid, {})
    planner = _Planner(policy, sop_class_uid, ds, per_class)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        planner.plan_file_meta(meta)
    planner.plan_dataset(ds, (), (), _Context())
    derived = _derive_age(ds, policy, planner)
    known = sop_class_uid in iod_types().by_sop_class
    return Plan(tuple(planner.out), policy, sop_class_uid, sop.iod if sop else "", known, derived)


def reference_date(ds: Dataset) -> str:
    """The study's date (YYYYMMDD) for Patient's Age: Study, Series, Acquisition, Content."""
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        value = str(get_value(ds, keyword) or "").strip()
        if len(value) == 8 and value.isdigit():
            return value
    return ""


def _derive_age(ds: Dataset, policy: Policy, planner: _Planner) -> bool:
    """Retain Patient Characteristics: compute Patient's Age before the birth date goes."""
    if ProfileOption.RETAIN_PATIENT_CHARACTERISTICS not in policy.options:
        return False
    if str(get_value(ds, "PatientAge") or "").strip():
        return False
    birth = str(get_value(ds, "PatientBirthDate") or "").strip()
    if len(birth) != 8 or not birth.isdigit() or not reference_date(ds):
        return False
    planner.out = [d for d in planner.out if not (d.tag == 0x00101010 and not d.path)]
    site = _Site(ds, (), (), 0x00101010, "PatientAge", "AS")
    reason = (
        "computed from Patient's Birth Date and the study date before the birth date is "
        "removed (Retain Patient Characteristics)"
    )
    planner.add(
        site,
        ActionCode.D,
        ActionCode.K,
        Rule.DERIVED,
        reason,
        option=ProfileOption.RETAIN_PATIENT_CHARACTERISTICS,
    )
    return True
