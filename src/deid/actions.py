"""Apply a :class:`deid.plan.Plan`: one small function per action and VR.

This is the dumb second step: every choice was made by the planner; here values are replaced.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from deid.codes import ActionCode
from deid.descriptors import Scrubber, scrub_value
from deid.keys import Pseudonymizer
from deid.plan import ITEM_TAG, Decision, Plan, Rule, Step, is_well_known_uid
from deid.tags import stored
from deid.values import (
    TEXT_VRS,
    encode_values,
    fast_reading,
    level_codec,
    raw_element,
    raw_vr,
    read_values,
    value_of,
)

DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, object] = {
    "AE": DUMMY_TEXT,
    "AS": "000D",
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UR": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "AT": 0,
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OF": b"\x00\x00\x00\x00",
    "OL": b"\x00\x00\x00\x00",
    "OD": b"\x00" * 8,
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
}
#: Maximum value lengths (characters) of the string VRs with a limit (PS3.5 Table 6.2-1).
MAX_LENGTH = {
    "AE": 16,
    "CS": 16,
    "SH": 16,
    "LO": 64,
    "ST": 1024,
    "LT": 10240,
    "PN": 64,
    "UC": 0,
    "UT": 0,
}

_DA = re.compile(r"^(\d{4})(?:[.]?(\d{2})(?:[.]?(\d{2}))?)?$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*?)([+-]\d{4})?$")


@dataclass
class ApplyContext:
    """What applying needs besides the plan: keys, the original identity and the scrubber."""

    pseudonymizer: Pseudonymizer
    patient_id: str
    patient_name: str
    shift_days: int
    scrubber_factory: Callable[[], Scrubber]
    birth_date: str = ""
    reference_date: str = ""
    _scrubber: Scrubber | None = None

    @property
    def built_scrubber(self) -> Scrubber | None:
        """The scrubber if applying needed one (``None``: not built)."""
        return self._scrubber

    @property
    def scrubber(self) -> Scrubber:
        if self._scrubber is None:
            self._scrubber = self.scrubber_factory()
        return self._scrubber


def apply_plan(ds: Dataset, plan: Plan, ctx: ApplyContext) -> None:
    """Carry out every decision of ``plan`` on ``ds`` (in place); file meta is left alone.

    Text values still raw are read and written back raw (see :mod:`deid.values`), with the
    bytes pydicom would write; everything else goes through pydicom's elements.
    """
    containers: dict[tuple[Step, ...], Dataset | None] = {(): ds}
    removed_items: list[tuple[tuple[Step, ...], int, int]] = []
    codecs: dict[int, str | None] | None = {} if _fast_apply(plan) else None
    for decision in plan.decisions:
        if decision.in_file_meta or decision.action is ActionCode.K:
            continue
        if decision.tag == ITEM_TAG:
            if decision.action is ActionCode.X:
                parent, (seq_tag, index) = decision.path[:-1], decision.path[-1]
                removed_items.append((parent, seq_tag, index))
            continue
        container = _container(ds, decision.path, containers)
        if container is None:
            continue
        held = stored(container, decision.tag)
        if held is None:
            if decision.rule is Rule.DERIVED:
                _derive(container, decision, ctx)
            continue
        if decision.action is ActionCode.X and _plain_delete(decision.tag):
            del container._dict[held.tag]  # what Dataset.__delitem__ does for such a tag
            continue
        if (
            codecs is not None
            and isinstance(held, RawDataElement)
            and _apply_raw(container, held, decision, ctx, codecs)
        ):
            continue
        _apply_one(container, decision, ctx)
    # Remove items deepest first and from the end, so earlier indices stay valid.
    for parent, seq_tag, index in sorted(
        removed_items, key=lambda r: (len(r[0]), r[2]), reverse=True
    ):
        container = _container(ds, parent, containers)
        if container is not None and seq_tag in container:
            sequence = container[seq_tag].value
            if sequence is not None and index < len(sequence):
                del sequence[index]


def _fast_apply(plan: Plan) -> bool:
    """Raw values may be written back raw: pydicom at its defaults, the character set kept."""
    if not fast_reading():
        return False
    return all(d.tag != _CHARSET or d.action is ActionCode.K for d in plan.decisions if not d.path)


_CHARSET = 0x00080005
_PIXEL_KEYWORDS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _plain_delete(tag: int) -> bool:
    """A public element that is not pixel data: deleting it touches nothing else."""
    return not (tag >> 16) % 2 and tag not in _PIXEL_KEYWORDS


def _apply_raw(
    container: Dataset,
    held: RawDataElement,
    decision: Decision,
    ctx: ApplyContext,
    codecs: dict[int, str | None],
) -> bool:
    """Apply a decision to a raw text value without pydicom; False when pydicom must do it."""
    vr = decision.vr
    if decision.action is ActionCode.X or vr not in TEXT_VRS or raw_vr(held) != vr:
        return False
    key = id(container)
    if key not in codecs:
        codecs[key] = level_codec(container)
    codec = codecs[key]
    values = read_values(held, vr, codec) if codec is not None else None
    if values is None:
        return False
    new = _new_value(decision, value_of(values), ctx)
    data = encode_values(new, vr, str(codec))
    if data is None:
        return False
    if data != held.value:
        new_raw = raw_element(held, vr, data)
        if (held.tag >> 16) % 2:
            container[held.tag] = new_raw  # private: pydicom ties it to its creator
        else:
            # What Dataset.__setitem__ does for a public raw text element, in place.
            container._dict[held.tag] = new_raw
    return True


def _new_value(decision: Decision, value: object, ctx: ApplyContext) -> object:
    """The value a Z, D, U or C decision gives a text element holding ``value``."""
    action = decision.action
    if decision.pseudonym:
        return _map_values(value, lambda v: pseudonym(decision, v, ctx))
    if action is ActionCode.Z:
        return None
    if action is ActionCode.D:
        return _dummy(decision, value, ctx)
    if action is ActionCode.U:
        return _map_values(value, lambda v: _remap_uid(v, ctx))
    return _clean(decision, value, ctx)


def _container(
    ds: Dataset, path: tuple[Step, ...], cache: dict[tuple[Step, ...], Dataset | None]
) -> Dataset | None:
    if path in cache:
        return cache[path]
    parent = _container(ds, path[:-1], cache)
    result: Dataset | None = None
    if parent is not None:
        seq_tag, index = path[-1]
        if seq_tag in parent:
            sequence = parent[seq_tag].value
            if sequence is not None and index < len(sequence):
                result = sequence[index]
    cache[path] = result
    return result


def _apply_one(container: Dataset, decision: Decision, ctx: ApplyContext) -> None:
    action, tag, vr = decision.action, decision.tag, decision.vr
    if action is ActionCode.X:
        del container[tag]
        return
    elem = container[tag]
    if vr == "SQ":
        if action is ActionCode.Z:
            elem.value = Sequence()
        return  # D/C/U on a sequence: its items carry their own decisions
    if decision.pseudonym:
        elem.value = _map_values(elem.value, lambda v: pseudonym(decision, v, ctx))
        return
    if action is ActionCode.Z:
        elem.value = None
    elif action is ActionCode.D:
        elem.value = _dummy(decision, elem.value, ctx)
    elif action is ActionCode.U:
        elem.value = _map_values(elem.value, lambda v: _remap_uid(v, ctx))
    elif action is ActionCode.C:
        elem.value = _clean(decision, elem.value, ctx)


def _derive(container: Dataset, decision: Decision, ctx: ApplyContext) -> None:
    """Add a derived element that the input lacks (Patient's Age); nothing when underivable."""
    value = _dummy(decision, None, ctx)
    if value:
        container.add_new(decision.tag, decision.vr, value)


def _map_values(value: object, func: Callable[[str], str]) -> object:
    if value is None or value == "":
        return value
    if isinstance(value, MultiValue | list | tuple):
        return [func(str(v)) for v in value]
    return func(str(value))


def _remap_uid(value: str, ctx: ApplyContext) -> str:
    uid = value.strip().rstrip("\x00")
    if not uid or is_well_known_uid(uid):
        return uid
    return ctx.pseudonymizer.uid(uid)


def pseudonym(decision: Decision, value: str, ctx: ApplyContext) -> str:
    """Keyed pseudonym for a name or an ID, bounded by the VR's length."""
    p = ctx.pseudonymizer
    if decision.keyword == "PatientID":
        return p.patient_id(value)
    if decision.keyword == "PatientName":
        return p.patient_name(ctx.patient_id, value)
    if decision.vr == "PN":
        return p.person_name(value)
    limit = MAX_LENGTH.get(decision.vr) or 16
    return p.token(decision.keyword or f"{decision.tag:08X}", value, min(limit, 16))


def _dummy(decision: Decision, value: object, ctx: ApplyContext) -> object:
    if decision.rule is Rule.DERIVED and decision.keyword == "PatientAge":
        return patient_age(ctx.birth_date, ctx.reference_date)
    if decision.vr == "UI":
        return _map_values(value, lambda v: _remap_uid(v, ctx)) or ctx.pseudonymizer.uid(
            f"dummy:{decision.location}"
        )
    return _DUMMY_BY_VR.get(decision.vr, DUMMY_TEXT)


def _clean(decision: Decision, value: object, ctx: ApplyContext) -> object:
    vr = decision.vr
    if value is None or value == "":
        return value
    if vr == "DA":
        return _map_values(value, lambda v: shift_date(v, ctx.shift_days))
    if vr == "DT":
        return _map_values(value, lambda v: shift_datetime(v, ctx.shift_days))
    if vr == "TM":
        return value  # whole-day shifts leave times as they are
    if vr == "AE":
        return _map_values(value, lambda v: "AE" + ctx.pseudonymizer.token("ae-title", v, 14))
    if vr == "PN":
        return _map_values(value, ctx.pseudonymizer.person_name)
    if vr == "UI":
        return _map_values(value, lambda v: _remap_uid(v, ctx))
    if isinstance(value, str | MultiValue | list):
        cleaned = scrub_value(value, ctx.scrubber)
        return _fit(cleaned, MAX_LENGTH.get(vr, 0))
    return value


def _fit(value: object, limit: int) -> object:
    if not limit:
        return value
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, Iterable):
        return [str(v)[:limit] for v in value]
    return value


def shift_date(value: str, days: int) -> str:
    """Shift a DA value by whole days; partial dates keep their precision; junk becomes ''."""
    text = value.strip()
    if len(text) == 8 and text.isascii() and text.isdigit():  # YYYYMMDD, without the pattern
        try:
            shifted = dt.date(int(text[:4]), int(text[4:6]), int(text[6:])) + dt.timedelta(days)
        except (ValueError, OverflowError):
            return ""
        if shifted.year < 1000:
            return ""
        return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"
    match = _DA.match(text)
    if match is None:
        return ""
    year, month, day = match.group(1), match.group(2), match.group(3)
    try:
        base = dt.date(int(year), int(month or 7), int(day or (15 if month else 2)))
        shifted = base + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    if day:
        return shifted.strftime("%Y%m%d") if shifted.year >= 1000 else ""
    if month:
        return f"{shifted.year:04d}{shifted.month:02d}"
    return f"{shifted.year:04d}"


def shift_datetime(value: str, days: int) -> str:
    """Shift the date part of a DT value; time, fraction and UTC offset are kept."""
    text = value.strip()
    match = _DT.match(text)
    if match is None:
        return ""
    year, month, day, rest, offset = match.groups()
    date_part = shift_date(year + (month or "") + (day or ""), days)
    if not date_part:
        return ""
    if rest and not re.fullmatch(r"\d{0,6}(\.\d{1,6})?", rest):
        return ""
    return date_part + (rest or "") + (offset or "")


def patient_age(birth: str, reference: str) -> str:
    """Patient's Age (AS) from two YYYYMMDD dates: days under a month, months under two years."""
    try:
        born = dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
        on = dt.date(int(reference[:4]), int(reference[4:6]), int(reference[6:8]))
    except (ValueError, IndexError):
        return ""
    if on < born:
        return ""
    days = (on - born).days
    months = (on.year - born.year) * 12 + on.month - born.month - (1 if on.day < born.day else 0)
    if days < 31:
        return f"{days:03d}D"
    if months < 24:
        return f"{months:03d}M"
    return f"{min(months // 12, 999):03d}Y"
