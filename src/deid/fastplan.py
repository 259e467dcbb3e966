"""Identifiers and plan of a plain file from its raw elements (for :mod:`deid.fastpath`).

:func:`collect_plain` gathers what :func:`deid.identifiers.collect` gathers, and
:func:`plan_plain` decides what :func:`deid.plan.build_plan` decides, in the same order, from
the raw elements :mod:`deid.rawtree` read and the items :mod:`deid.rawitems` reads, without
building pydicom data sets for the items. The plan follows the level templates the general
planner remembered (:class:`deid.plancache.PlanCache`): a level it has not seen yet is planned
by the general planner at the top level, and anywhere deeper makes the whole object take the
general path (which plans it, so the next object of the series finds it). Anything this
module does not read exactly as the general path does raises :class:`FallbackError`.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from deid.codes import ActionCode, ProfileOption, Rule
from deid.decisions import Decision, Plan, Step, is_well_known_uid
from deid.identifiers import (
    _CODE_VALUE_SEQUENCES,
    _TAG_WANTED,
    _WANTED,
    _WANTED_VRS,
    Identifiers,
    _Collector,
    _raw_visits,
    _tag_wanted,
)
from deid.plan import LOCAL_CODE_REASON, _Planner, _Site, finish_plan, start_plan
from deid.plancache import (
    CREATOR,
    FIXED,
    PRIVATE,
    PUBLIC,
    SEQUENCE,
    UID,
    Context,
    PlanCache,
    SequenceChoice,
)
from deid.policy import Policy
from deid.rawitems import NestingTooDeepError, RawItem, parse_items, sequence_items
from deid.rawtree import Level, RawFile
from deid.tags import element_keyword, is_private_creator, keyword_of, normalise_creator
from deid.values import is_canonical, level_codec, raw_vr, read_values

__all__ = ["FallbackError", "Items", "collect_plain", "plan_plain"]

#: The items of the raw sequences read so far, by ``id`` of the raw element (the writer
#: reuses them): ``(undefined length, elements)`` per item.
Items = dict[int, list[tuple[bool, Level]]]


class FallbackError(Exception):
    """The general path handles this object."""


# -- identifiers ---------------------------------------------------------------------------


def collect_plain(ds: Dataset, parsed: RawFile, codec: str, items: Items) -> Identifiers:
    """:func:`deid.identifiers.collect` of the data set ``ds`` holds (its raw elements are
    ``parsed``'s; ``codec``: its text codec); the items read on the way are left in ``items``."""
    collector = _Collector()
    meta_codec = level_codec(ds.file_meta)
    if meta_codec is None:
        raise FallbackError
    _walk(collector, ds, parsed.meta, meta_codec, items)
    _walk(collector, ds, parsed.elements, codec, items)
    return Identifiers(collector.identifiers())


_Visit = tuple[str, str, int, list[str], bool]


def _walk(collector: _Collector, ds: Dataset, level: Level, codec: str, items: Items) -> None:
    """:meth:`deid.identifiers._Collector.walk` over one top level, every element raw."""
    read_once = _items_read_once(items)
    for key, held in level.items():
        tag = int(key)
        wanted = _TAG_WANTED.get(tag)
        if wanted is None:
            wanted = _tag_wanted(tag)
        vr = held.VR
        if wanted != _WANTED and vr not in _WANTED_VRS:
            continue  # (a CodeValue counts inside code sequences only)
        if vr == "SQ":
            visits: list[_Visit] = []
            nested = element_keyword(tag) in _CODE_VALUE_SEQUENCES
            try:
                if not _raw_visits(held, codec, nested, visits, 0, read_once):
                    raise FallbackError  # pydicom reads the items
            except NestingTooDeepError:
                raise FallbackError from None
            # (The general walk also converts Pixel Representation here, which cannot fail:
            # the fast path takes only a plain 2-byte US one.)
            for visit in visits:
                try:
                    collector._visit_values(*visit)
                except Exception:  # as the general walk: skipped, never reported
                    continue
            continue
        text_vr = raw_vr(held)
        values = read_values(held, text_vr, codec) if text_vr is not None else None
        if text_vr is None or values is None or not is_canonical(held, text_vr, values, codec):
            raise FallbackError  # pydicom converts it
        try:
            collector._visit_values(text_vr, element_keyword(tag), tag, values, False)
        except Exception:
            continue


def _items_read_once(items: Items) -> Callable[[RawDataElement], list[RawItem] | None]:
    """What :func:`deid.identifiers._raw_visits` reads a sequence's items with: the items the
    planner and the writer use (read once, kept in ``items``), or where those cannot be read
    so, :func:`deid.rawitems.sequence_items` (which the general walk uses)."""

    def items_of(raw: RawDataElement) -> list[RawItem] | None:
        parsed = items.get(id(raw))
        if parsed is None:
            parsed = parse_items(raw) if raw.length else []
            if parsed is None:
                return sequence_items(raw)
            items[id(raw)] = parsed
        return [elements for _, elements in parsed]

    return items_of


# -- the plan ------------------------------------------------------------------------------


_VR = attrgetter("VR")
_SCHEME = BaseTag(0x00080102)  # Coding Scheme Designator


def plan_plain(
    ds: Dataset,
    parsed: RawFile,
    policy: Policy,
    cache: dict[str, PlanCache],
    codec: str,
    items: Items,
) -> Plan:
    """:func:`deid.plan.build_plan` of the data set ``ds`` holds; the items read on the way
    are left in ``items``."""
    planner = start_plan(ds, policy, cache)
    _Follower(planner, ds, codec, items).level(parsed.elements, (), (), Context())
    return finish_plan(planner, ds)


class _Follower:
    def __init__(self, planner: _Planner, top: Dataset, codec: str, items: Items) -> None:
        self.planner = planner
        self.top = top
        self.codec = codec
        self.items = items

    def level(
        self, elements: Level, path: tuple[Step, ...], tags: tuple[int, ...], ctx: Context
    ) -> None:
        """:meth:`deid.plan._Planner.plan_dataset` of one level, by its template."""
        planner = self.planner
        if ctx.content_items:
            raise FallbackError  # decided from values, never templated
        key = (path, ctx, tuple(map(int, elements)), tuple(map(_VR, elements.values())))
        template = planner.templates.get(key)
        if template is None:
            if path:
                raise FallbackError
            planner.plan_dataset(self.top, (), (), ctx)
            return
        raws = list(elements.values())
        out = planner.out
        index = 0
        level_creators: dict[tuple[int, int], str] | None = None
        kept_blocks: set[tuple[int, int]] = set()
        creator_sites: list[_Site] = []
        for op in template:
            kind = op[0]
            if kind == FIXED:
                fixed: tuple[Decision, ...] = op[1]  # type: ignore[assignment]
                out.extend(fixed)
                index += len(fixed)
                continue
            raw = raws[index]
            index += 1
            if kind == UID:
                known = self._well_known(raw)
                out.append(op[2].known if known else op[2].remap)  # type: ignore[attr-defined]
            elif kind == SEQUENCE:
                choice: SequenceChoice = op[1]  # type: ignore[assignment]
                tag: int = op[2]  # type: ignore[assignment]
                out.append(choice.decision)
                if choice.local_codes:
                    self._local_codes(raw, path, tag)
                self._items(raw, path, tags, tag, choice.items)
            else:
                tag, vr = op[1], op[2]  # type: ignore[assignment]
                site = _Site(self.top, path, tags, tag, keyword_of(tag), vr)  # type: ignore[arg-type]
                if kind == PUBLIC:
                    if path:
                        raise FallbackError
                    planner._public(site, ctx, planner.levels.get((path, ctx), {}))
                elif kind == CREATOR:
                    creator_sites.append(site)
                elif kind == PRIVATE:
                    if level_creators is None:
                        level_creators = _creators(elements)
                    verdict = planner.private.decide(site.tag, level_creators)
                    planner.add(
                        site,
                        verdict.action,
                        verdict.code,
                        verdict.rule,
                        verdict.reason,
                        option=verdict.option,
                    )
                    if verdict.action is ActionCode.K and site.vr == "SQ":
                        self._items(raw, path, tags, site.tag, ctx)
                    if verdict.kept:
                        kept_blocks.add((site.tag >> 16, (site.tag & 0xFFFF) >> 8))
                else:
                    raise FallbackError
        if index != len(raws):
            raise FallbackError
        planner._creators(creator_sites, kept_blocks)

    def _items(
        self,
        raw: RawDataElement,
        path: tuple[Step, ...],
        tags: tuple[int, ...],
        tag: int,
        ctx: Context,
    ) -> None:
        """:meth:`deid.plan._Planner._items`: plan each item of a kept sequence."""
        for index, (_, elements) in enumerate(self._parsed(raw)):
            self.level(elements, (*path, (tag, index)), (*tags, tag), ctx)

    def _parsed(self, raw: RawDataElement) -> list[tuple[bool, Level]]:
        """A kept sequence's items as the planner reads them (:func:`convert_sequence`)."""
        if raw.VR != "SQ" or raw.value is None:
            raise FallbackError
        items = self.items.get(id(raw))
        if items is None:
            items = parse_items(raw) if raw.length else []
        if items is None:
            raise FallbackError  # pydicom builds these items
        self.items[id(raw)] = items
        return items

    def _local_codes(self, raw: RawDataElement, path: tuple[Step, ...], tag: int) -> None:
        """:meth:`deid.plan._Planner._local_codes`: items of private coding schemes go."""
        for index, (_, elements) in enumerate(self._parsed(raw)):
            scheme = elements.get(_SCHEME)
            if scheme is None:
                continue
            if scheme.VR != "SH":
                raise FallbackError
            values = read_values(scheme, "SH", self.codec)
            if values is None:
                raise FallbackError
            if len(values) == 1 and (values[0].startswith("99") or values[0].strip() == "L"):
                self.planner._item_decision(
                    (*path, (tag, index)),
                    ActionCode.X,
                    ActionCode.C,
                    Rule.CONTEXT,
                    LOCAL_CODE_REASON,
                    ProfileOption.CLEAN_DESCRIPTORS,
                )

    def _well_known(self, raw: RawDataElement) -> bool:
        """:meth:`deid.plan._Planner._uid_choice`: every value a well-known UID."""
        if raw_vr(raw) != "UI":
            raise FallbackError
        values = read_values(raw, "UI", self.codec)
        if values is None or not is_canonical(raw, "UI", values, self.codec):
            raise FallbackError  # pydicom reads it
        return bool(values) and all(is_well_known_uid(v) for v in values)


def _creators(elements: Level) -> dict[tuple[int, int], str]:
    """:func:`deid.private.creators` of one level's raw elements (single-value ASCII LO
    creators; anything else is read by pydicom: the general path)."""
    found: dict[tuple[int, int], str] = {}
    for key, raw in elements.items():
        tag = int(key)
        if not is_private_creator(tag):
            continue
        if raw.VR != "LO" or raw.value is None:
            raise FallbackError
        values = read_values(raw, "LO", "iso8859")
        if values is None or len(values) != 1 or not raw.value.isascii():
            raise FallbackError
        found[(tag >> 16, tag & 0xFF)] = normalise_creator(values[0])
    return found
