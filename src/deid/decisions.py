"""The plan's vocabulary: :class:`Decision` (one element, its action and why) and :class:`Plan`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from operator import attrgetter

from pydicom.uid import UID_dictionary  # type: ignore[attr-defined]

from deid.codes import ActionCode, AttributeType, ProfileOption, Rule
from deid.policy import Policy
from deid.tags import format_tag

#: Pseudo-tag of a sequence item, for decisions that keep or remove a whole item.
ITEM_TAG = 0xFFFEE000

#: One step into a sequence: (sequence tag, item index).
Step = tuple[int, int]


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

    def counts(self) -> dict[str, int]:
        """Number of decisions per action (``D*``/``Z*``: keyed pseudonyms)."""
        pairs = Counter(map(_ACTION_PSEUDONYM, self.decisions))
        counter: Counter[str] = Counter()
        for (action, pseudonym), count in pairs.items():
            counter[action.value + ("*" if pseudonym else "")] += count
        return dict(sorted(counter.items()))

    def find(self, tag: int, path: tuple[Step, ...] = ()) -> Decision | None:
        """The decision for ``tag`` at ``path`` (top level by default)."""
        for d in self.decisions:
            if d.tag == tag and d.path == path and not d.in_file_meta:
                return d
        return None

    def explain_lines(self) -> list[str]:
        iod = self.iod or "IOD unknown"
        head = f"# SOP Class {self.sop_class_uid} ({iod}); policy {self.policy.name}"
        return [head, "location\tkeyword\tVR\taction\twhy", *(d.explain() for d in self.decisions)]


_ACTION_PSEUDONYM = attrgetter("action", "pseudonym")


def is_well_known_uid(value: str) -> bool:
    """A UID of the standard (SOP classes, transfer syntaxes, coding schemes, ...)."""
    uid = value.strip().rstrip("\x00")
    return uid in UID_dictionary or uid.startswith("1.2.840.10008.")
