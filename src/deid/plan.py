"""Decide, then do: a :class:`Plan` of :class:`Decision` s for every element of a data set.

Planning reads tags and VRs (and the few values a rule needs: UIDs, private creators, content
item concepts) and records, for every element at every sequence depth, which action applies
and why. It changes nothing and decodes no value it does not need. The same plan drives
``deid explain``, the audit counts, and :func:`deid.actions.apply_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from deid.codes import ActionCode, AttributeType, ProfileOption, Rule
from deid.decisions import ITEM_TAG, Decision, Plan, Step, is_well_known_uid
from deid.derived import derived_age
from deid.plancache import (
    CREATOR,
    FIXED,
    LEVEL_LIMIT,
    LEVELS_LIMIT,
    PRIVATE,
    PUBLIC,
    SEQUENCE,
    UID,
    Level,
    Op,
    PlanCache,
    SequenceChoice,
    Template,
    UidChoice,
)
from deid.plancache import Context as _Context
from deid.policy import Policy
from deid.private import KEPT_CREATOR, REMOVED_CREATOR, PrivateRules, PrivateVerdict, creators
from deid.rawitems import convert_sequence
from deid.standard import ProfileRow, confidentiality_table, iod_types, sop_classes
from deid.structured import (
    CONTENT_ITEM_SEQUENCES,
    NESTED_CONTENT_ITEM_SEQUENCES,
    content_item_verdict,
)
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
    peek,
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
        self.levels = cache.levels
        self.templates = cache.templates
        self.meta = cache.meta
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
        # What deciding one public element left for _public: a UID's two decisions (_uid),
        # the context to plan a kept sequence's items in, and whether a value was read.
        self._choice: UidChoice | None = None
        self._descend: _Context | None = None
        self._valued = False

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
        elements = list(meta.items())
        key = tuple((int(tag), held_vr(held, int(tag))) for tag, held in elements)
        known = self.meta.get(key)
        if known is not None:
            self.out.extend(known)  # decided from tags and VRs alone
            return
        start = len(self.out)
        self._plan_file_meta(key)
        if len(self.meta) < LEVELS_LIMIT:
            self.meta[key] = tuple(self.out[start:])

    def _plan_file_meta(self, elements: tuple[tuple[int, str], ...]) -> None:
        for tag, vr in elements:
            keyword = keyword_of(tag)
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
        key: tuple[object, ...] | None = None
        if not ctx.content_items:
            # Content items are decided from their values (Table E.3.4-1): never templated.
            elements = ds._dict
            key = (path, ctx, tuple(map(int, elements)), tuple(map(_VR, elements.values())))
            template = self.templates.get(key)
            if template is not None:
                self._follow(ds, path, tags, ctx, template)
                return
        ops: list[Op] | None = [] if key is not None else None
        value_overrides: dict[int, tuple[ActionCode, str]] = {}
        if ctx.content_items and not self._content_item(ds, path, value_overrides):
            return
        removed_overlays = self._removed_overlay_groups(ds)
        level_creators = creators(ds)
        kept_blocks: set[tuple[int, int]] = set()
        creator_sites: list[_Site] = []
        level = self.levels.get((path, ctx))
        if level is None:
            level = {}
            if len(self.levels) < LEVELS_LIMIT:
                self.levels[(path, ctx)] = level
        out = self.out
        for base_tag, held in list(ds.items()):
            tag = int(base_tag)
            vr = held_vr(held, tag)
            group = tag >> 16
            public = group % 2 == 0 and group not in removed_overlays
            if public and tag not in value_overrides:
                cached = level.get((tag, vr))
                if cached is not None:
                    if isinstance(cached, Decision):
                        out.append(cached)
                    elif isinstance(cached, UidChoice):
                        self._uid_choice(ds, tag, cached)
                    else:
                        out.append(cached.decision)
                        site = _Site(ds, path, tags, tag, cached.decision.keyword, vr)
                        if cached.local_codes:
                            self._local_codes(site)
                        self._items(site, cached.items)
                    if ops is not None:
                        _note(ops, cached, tag, vr)
                    continue
            site = _Site(ds, path, tags, tag, keyword_of(tag), vr)
            if group % 2 == 1:
                if is_private_creator(tag):
                    creator_sites.append(site)
                    if ops is not None:
                        ops.append((CREATOR, tag, vr))
                else:
                    if self._private(site, self.private.decide(tag, level_creators), ctx):
                        kept_blocks.add((group, (tag & 0xFFFF) >> 8))
                    if ops is not None:
                        ops.append((PRIVATE, tag, vr))
            elif not public and (tag & 0xFFFF) != 0x3000:
                self.add(
                    site,
                    ActionCode.X,
                    ActionCode.X,
                    Rule.STRUCTURE,
                    "overlay group removed with its Overlay Data",
                )
                if ops is not None:
                    _note(ops, out[-1], tag, vr)
            elif tag in value_overrides:
                action, reason = value_overrides[tag]
                self._descend = None
                self._emit(site, action, Rule.STRUCTURED, reason, ctx, None)
                self._descend_into(site)
                ops = None
            else:
                self._public(site, ctx, level)
                if ops is not None:
                    entry = level.get((tag, vr))
                    if entry is None:  # decided from a value (or the level is full): per object
                        ops.append((PUBLIC, tag, vr))
                    else:
                        _note(ops, entry, tag, vr)
        self._creators(creator_sites, kept_blocks)
        if ops is not None and key is not None and len(self.templates) < LEVELS_LIMIT:
            self.templates[key] = _compact(ops)

    def _follow(
        self,
        ds: Dataset,
        path: tuple[Step, ...],
        tags: tuple[int, ...],
        ctx: _Context,
        template: Template,
    ) -> None:
        """Plan a level whose tags and VRs match a template: only values are read."""
        out = self.out
        level_creators: dict[tuple[int, int], str] | None = None
        kept_blocks: set[tuple[int, int]] = set()
        creator_sites: list[_Site] = []
        level: Level | None = None
        for op in template:
            kind = op[0]
            if kind == FIXED:
                out.extend(op[1])  # type: ignore[arg-type]
            elif kind == UID:
                self._uid_choice(ds, op[1], op[2])  # type: ignore[arg-type]
            elif kind == SEQUENCE:
                choice: SequenceChoice = op[1]  # type: ignore[assignment]
                tag, vr = op[2], op[3]
                out.append(choice.decision)
                site = _Site(ds, path, tags, tag, choice.decision.keyword, vr)  # type: ignore[arg-type]
                if choice.local_codes:
                    self._local_codes(site)
                self._items(site, choice.items)
            else:
                tag, vr = op[1], op[2]
                site = _Site(ds, path, tags, tag, keyword_of(tag), vr)  # type: ignore[arg-type]
                if kind == PUBLIC:
                    if level is None:
                        level = self.levels.get((path, ctx), {})
                    self._public(site, ctx, level)
                    continue
                if kind == CREATOR:
                    creator_sites.append(site)
                    continue
                if level_creators is None:
                    level_creators = creators(ds)
                if self._private(site, self.private.decide(site.tag, level_creators), ctx):
                    kept_blocks.add((site.tag >> 16, (site.tag & 0xFFFF) >> 8))
        if creator_sites and level_creators is None:
            creators(ds)  # what planning the level reads, as it reads it
        self._creators(creator_sites, kept_blocks)

    def _creators(self, creator_sites: list[_Site], kept_blocks: set[tuple[int, int]]) -> None:
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

    def _public(self, site: _Site, ctx: _Context, level: Level) -> None:
        """Decide a public element; decisions that need no value are remembered per place
        (for a UID remapped unless well known: both decisions, see :meth:`_uid`)."""
        start = len(self.out)
        self._clear_notes()
        self._public_decide(site, ctx)
        # One decision, or (local codes read) a kept sequence's decision and its items'.
        alone = len(self.out) == start + 1 and not self._valued
        local = self._valued and self._descend is not None and self._choice is None
        if local:
            local = all(d.tag == ITEM_TAG for d in self.out[start + 1 :])
        if (alone or local) and len(level) < LEVEL_LIMIT:
            entry: Decision | UidChoice | SequenceChoice = self.out[start]
            if self._choice is not None:
                entry = self._choice
            elif self._descend is not None:
                entry = SequenceChoice(self.out[start], self._descend, local)
            level[(site.tag, site.vr)] = entry
        self._descend_into(site)

    def _clear_notes(self) -> None:
        self._choice = self._descend = None
        self._valued = False

    def _descend_into(self, site: _Site) -> None:
        """Plan the items of a kept sequence, as the decision just made asked."""
        if self._descend is not None:
            ctx, self._descend = self._descend, None
            self._items(site, ctx)

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
            items = ctx.content_items and site.tag in NESTED_CONTENT_ITEM_SEQUENCES
            self._descend = _Context(ctx.clean_text, ctx.dummy_text, items)
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
            self._descend = self._child_context(site, action, rule, option, ctx)

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
        where = (site.path, site.tag, site.keyword, site.vr)
        known = Decision(*where, ActionCode.K, code, Rule.WELL_KNOWN_UID, _WELL_KNOWN)
        remap = Decision(*where, ActionCode.U, code, rule, reason, None, option)
        self._choice = UidChoice(known, remap)
        self._uid_choice(site.ds, site.tag, self._choice)

    def _uid_choice(self, ds: Dataset, tag: int, choice: UidChoice) -> None:
        """Keep well-known UIDs, remap the others (a value picks the decision)."""
        values = self._uid_values(ds, tag)
        known = values and all(is_well_known_uid(str(v)) for v in values)
        self.out.append(choice.known if known else choice.remap)

    def _uid_values(self, ds: Dataset, tag: int) -> list[Any]:
        """The UIDs of an element; read raw when pydicom would write them back unchanged."""
        if self.fast:
            held = stored(ds, tag)
            if isinstance(held, RawDataElement) and raw_vr(held) == "UI":
                codec = self._codec(ds)
                values = read_values(held, "UI", codec) if codec is not None else None
                if values is not None and is_canonical(held, "UI", values, str(codec)):
                    return values
        try:
            value = peek(ds, tag).value
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
        self._valued = True
        convert_sequence(site.ds, site.tag)
        for index, item in enumerate(site.ds[site.tag].value or ()):
            scheme = item.get("CodingSchemeDesignator")
            if isinstance(scheme, str) and (scheme.startswith("99") or scheme.strip() == "L"):
                reason = LOCAL_CODE_REASON
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


_WELL_KNOWN = "well-known UID of the standard: never remapped"
LOCAL_CODE_REASON = "local code (private coding scheme) removed: Clean Descriptors"
_VR = attrgetter("VR")


def _note(ops: list[Op], entry: Decision | UidChoice | SequenceChoice, tag: int, vr: str) -> None:
    """Record one public element's step in a level template being built."""
    if isinstance(entry, Decision):
        ops.append((FIXED, (entry,)))
    elif isinstance(entry, UidChoice):
        ops.append((UID, tag, entry))
    else:
        ops.append((SEQUENCE, entry, tag, vr))


def _compact(ops: list[Op]) -> Template:
    """Merge runs of fixed decisions into one step each."""
    merged: list[Op] = []
    for op in ops:
        if op[0] == FIXED and merged and merged[-1][0] == FIXED:
            merged[-1] = (FIXED, merged[-1][1] + op[1])  # type: ignore[operator]
        else:
            merged.append(op)
    return tuple(merged)


def _row_reason(row: ProfileRow, code: ActionCode, option: ProfileOption | None) -> str:
    source = f"option {option.value}" if option else "Basic"
    return f"E.1-1 row {row.line} {row.tag} {row.name}: {source} {code.value}"


def build_plan(ds: Dataset, policy: Policy, cache: dict[str, PlanCache] | None = None) -> Plan:
    """Plan the de-identification of ``ds`` under ``policy``; ``ds`` is not changed.

    ``cache`` (one per policy, e.g. a :class:`deid.Deidentifier`'s) remembers, per SOP Class,
    the decisions that need no value, so a series plans its second object much faster.
    """
    planner = start_plan(ds, policy, cache)
    planner.plan_dataset(ds, (), (), _Context())
    return finish_plan(planner, ds)


def start_plan(ds: Dataset, policy: Policy, cache: dict[str, PlanCache] | None) -> _Planner:
    """A planner for ``ds`` with its file meta planned (see :func:`build_plan`)."""
    sop_class_uid = str(get_value(ds, "SOPClassUID") or "").strip()
    per_class = PlanCache() if cache is None else cache.get(sop_class_uid)
    if per_class is None:
        per_class = cache.setdefault(sop_class_uid, PlanCache())  # type: ignore[union-attr]
    planner = _Planner(policy, sop_class_uid, ds, per_class)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        planner.plan_file_meta(meta)
    return planner


def finish_plan(planner: _Planner, ds: Dataset) -> Plan:
    """The plan, once the data set is planned: Patient's Age derived where it must be."""
    policy, sop_class_uid = planner.policy, planner.sop_class_uid
    age = derived_age(ds, policy)
    if age is not None:  # it replaces the decision on Patient's Age, if any
        planner.out = [d for d in planner.out if not (d.tag == age.tag and not d.path)]
        planner.out.append(age)
    known = sop_class_uid in iod_types().by_sop_class
    sop = sop_classes().get(sop_class_uid)
    return Plan(
        tuple(planner.out), policy, sop_class_uid, sop.iod if sop else "", known, age is not None
    )
