"""What the planner remembers per policy and SOP Class: the decisions that need no value.

A decision depends on the element's place (sequence path), tag, VR and the context the
enclosing sequences set, except for two kinds, remembered with what completes them: a UID is
kept when every value is a well-known UID of the standard and remapped otherwise
(:class:`UidChoice`), and a kept sequence's items are planned in turn
(:class:`SequenceChoice`). Everything here is immutable, so one entry serves every object.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """A kept sequence's decision and the context its items are planned in."""

    decision: Decision
    items: Context


#: Per data set level (sequence path and context), then per tag and VR: the decision, or
#: what completes it. Bounded: at most LEVELS_LIMIT levels of LEVEL_LIMIT entries each.
Level = dict[tuple[int, str], Decision | UidChoice | SequenceChoice]
PlanCache = dict[tuple[object, ...], Level]
LEVELS_LIMIT = 500
LEVEL_LIMIT = 500
