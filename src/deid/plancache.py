"""What the planner remembers per policy and SOP Class: the decisions that need no value.

A decision depends on the element's place (sequence path), tag, VR and the context the
enclosing sequences set, except for two kinds, remembered with what completes them: a UID is
kept when every value is a well-known UID of the standard and remapped otherwise
(:class:`UidChoice`), and a kept sequence's items are planned in turn
(:class:`SequenceChoice`). Everything here is immutable, so one entry serves every object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from deid.decisions import Decision


class Context(NamedTuple):
    """What the enclosing sequences ask of unlisted elements (a tuple: cheap to hash)."""

    clean_text: bool = False
    dummy_text: bool = False
    content_items: bool = False


@dataclass(frozen=True, slots=True)
class UidChoice:
    """A UID's two possible decisions at one place: its values pick one."""

    known: Decision
    remap: Decision


@dataclass(frozen=True, slots=True)
class SequenceChoice:
    """A kept sequence's decision and the context its items are planned in; ``local_codes``:
    its items of private coding schemes are removed (Clean Descriptors), read per object."""

    decision: Decision
    items: Context
    local_codes: bool = False


#: Per data set level (sequence path and context), then per tag and VR: the decision, or
#: what completes it. Bounded: at most LEVELS_LIMIT levels of LEVEL_LIMIT entries each.
Level = dict[tuple[int, str], Decision | UidChoice | SequenceChoice]
LEVELS_LIMIT = 500
LEVEL_LIMIT = 500

#: One step of a level template (see :class:`PlanCache`), by its first member:
#: ``(FIXED, decisions)`` appends decisions that need no value; ``(UID, tag, choice)`` picks a
#: UID's decision by its values; ``(SEQUENCE, choice, tag, vr)`` appends a kept sequence's
#: decision and plans its items; ``(PRIVATE, tag, vr)`` decides a private element (its block's
#: creator and the object's Private Data Element Characteristics are read per object);
#: ``(CREATOR, tag, vr)`` is a private creator, decided after its level; ``(PUBLIC, tag, vr)``
#: is a public element decided per object (one whose place's level is full). A code sequence
#: under Clean Descriptors is a ``SEQUENCE`` step whose choice reads its local codes.
FIXED, UID, SEQUENCE, PRIVATE, CREATOR, PUBLIC = range(6)
Op = tuple[object, ...]
Template = tuple[Op, ...]


@dataclass(slots=True)
class PlanCache:
    """What one policy remembers for one SOP Class.

    ``levels``: per data set level (sequence path and context), per tag and VR, the decision
    or what completes it. ``templates``: per level *and its exact list of tags and VRs*, the
    whole level as a list of steps, so a series whose objects share their structure plans a
    level without deciding each element again. Keys hold tags, VRs and sequence indices only,
    never a value. ``meta``: the decisions of a File Meta Information group, per its tags and
    VRs. All are bounded by LEVELS_LIMIT entries.
    """

    levels: dict[tuple[object, ...], Level] = field(default_factory=dict)
    templates: dict[tuple[object, ...], Template] = field(default_factory=dict)
    #: Per File Meta Information group (its tags and VRs): its decisions.
    meta: dict[tuple[tuple[int, str], ...], tuple[Decision, ...]] = field(default_factory=dict)
