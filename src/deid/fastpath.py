"""The fast path of :meth:`deid.Deidentifier.deidentify_bytes`: a plain file de-identified from
its raw elements, giving exactly the bytes, plan and audit of the general path.

The general path (``engine._run``) reads the file with pydicom, applies the plan to pydicom's
data set and writes it back, element by element. Most files are plainer than that machinery
needs: explicit VR little endian, single-byte or UTF-8 text, defined lengths, no pixel pass.
For those, this module

1. reads the file with :mod:`deid.rawtree` (a few tens of microseconds);
2. runs the same gates, limits, identifier collection and planner as the general path, on a
   data set holding those raw elements;
3. writes the output in one walk over the raw elements and the plan's decisions: kept values
   copied as bytes, text values changed by :mod:`deid.actions`' own functions and encoded by
   :mod:`deid.values`, items re-encoded as :mod:`deid.encoding` writes them, the markers and
   the new file meta as the general path builds them;
4. verifies the output with :mod:`deid.verify`'s own matchers over the same texts and bytes.

Whenever anything is not what this module knows how to write exactly as the general path
would (a non-text value to change, an odd length, a content tree, an unexpected error, *any*
verification hit) it gives ``None`` and the caller runs the general path, which then decides,
rejects and reports as ever. Nothing is written, logged or raised with a value here.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from pydicom.uid import UID

from deid import gates
from deid.audit import AuditRecord
from deid.burnedin import needs_prescreen, pixel_pass_reason
from deid.codes import ActionCode, Outcome, ProfileOption
from deid.decisions import ITEM_TAG, Decision, Plan
from deid.encoding import LONG_VRS, raw_header
from deid.encoding import _header as encoding_header
from deid.fastplan import FallbackError, Items, collect_plain, plan_plain
from deid.fastverify import AsRaw, Out, Output, verify_plain
from deid.markers import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    _encoded_markers,
    _policy_key,
    transfer_syntax,
)
from deid.rawitems import parse_items
from deid.rawtree import Level, RawFile, parse_part10, to_dataset
from deid.tags import is_private_creator
from deid.values import TEXT_VRS, encode_values, fast_reading, level_codec, read_values, value_of
from deid.verify import _NOT_SEARCHED, _simple_charset

if TYPE_CHECKING:
    from deid.actions import ApplyContext
    from deid.engine import Deidentifier, DeidResult
    from deid.limits import Limits

__all__ = ["deidentify_plain"]


_CHARSET = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103
#: Attributes the pixel-pass decision reads: kept as they are, the decision made on the input
#: is the one the general path makes on its output.
_PIXEL_DECISION_TAGS = (0x00080008, 0x00080016, 0x00080060, 0x00280301)
#: The input holds one of these: the markers are merged by pydicom (the general path).
_MERGED_MARKERS = (0x00120063, 0x00120064, 0x0018A001)
_CONTENT_SEQUENCE = 0x0040A730
_PRIVATE_CHARACTERISTICS = 0x00080300
_SOP_CLASS, _SOP_INSTANCE = 0x00080016, 0x00080018
_STUDY, _SERIES = 0x0020000D, 0x0020000E
_PIXEL_TAGS = gates.PIXEL_TAGS
_ITEM = b"\xfe\xff\x00\xe0"
_ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_UNDEFINED_LENGTH = b"\xff\xff\xff\xff"
_UNDEFINED = 0xFFFFFFFF
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_LENGTH = struct.Struct("<L")
_SEQUENCE_HEADER = struct.Struct("<HH4sL")
_SHORT_HEADER = struct.Struct("<HH2sH")
_MIN_PIXELS = 64
_KEEP = ActionCode.K
#: VRs whose values verification does not read (numbers and binary values: the raw-byte scan
#: covers them); CS is read (a malformed code string is searched).
_UNSEARCHED = _NOT_SEARCHED - {"CS"}
_KEEPS_ITEMS = frozenset({ActionCode.K, ActionCode.C, ActionCode.D, ActionCode.U})
_CHANGES_TEXT = frozenset({ActionCode.Z, ActionCode.D, ActionCode.C, ActionCode.U})


def deidentify_plain(engine: Deidentifier, data: bytes, bound: Limits) -> DeidResult | None:
    """The result :meth:`~deid.Deidentifier.deidentify_bytes` gives for ``data``, computed
    from its raw elements; ``None`` when the general path must decide."""
    if not fast_reading():
        return None
    parsed = parse_part10(data)
    if parsed is None:
        return None
    try:
        run = _Run(engine, parsed, bound)
        run.source = data
        return run.run()
    except Exception:  # FallbackError, or anything unexpected: the general path decides
        return None


class _Run:
    def __init__(self, engine: Deidentifier, parsed: RawFile, bound: Limits) -> None:
        self.engine = engine
        self.policy = engine.policy
        self.parsed = parsed
        self.bound = bound
        self.codec = ""
        self.search_codec: str | None = None
        self.decisions: dict[tuple[object, int], Decision] = {}
        self.context: ApplyContext | None = None
        self.items: Items = {}
        self.source = b""

    def run(self) -> DeidResult:
        from deid.engine import DeidResult, _for_verification, _skipped

        engine, policy, elements = self.engine, self.policy, self.parsed.elements
        ds = to_dataset(self.parsed)
        gates.check(ds, policy)
        self.bound.check_header(ds)
        if pixel_pass_reason(ds, policy) or needs_prescreen(ds, policy):
            raise FallbackError
        codec = level_codec(ds)
        if codec is None:
            raise FallbackError
        self.codec = codec
        # How verification reads raw text at every level (items inherit the character set).
        self.search_codec = None if _simple_charset(ds) else codec
        if any(tag in elements for tag in (*_MERGED_MARKERS, _CONTENT_SEQUENCE)):
            raise FallbackError
        if _PRIVATE_CHARACTERISTICS in elements:
            raise FallbackError
        pixel_rep = elements.get(BaseTag(_PIXEL_REPRESENTATION))
        if pixel_rep is not None and (pixel_rep.VR != "US" or pixel_rep.length != 2):
            raise FallbackError
        identifiers = collect_plain(ds, self.parsed, codec, self.items)
        plan = plan_plain(ds, self.parsed, policy, engine._plan_cache, codec, self.items)
        self.bound.check_depth(plan)
        self.context = engine._context(ds, identifiers)
        self.decisions = {(d.path, d.tag): d for d in plan.decisions if not d.in_file_meta}
        self._check_plan(plan)
        body, top, pixel_last = self._write_top(plan)
        sop_class = _single_uid(top, _SOP_CLASS)
        sop_instance = _single_uid(top, _SOP_INSTANCE)
        if sop_class is None or sop_instance is None:
            raise FallbackError
        syntax = str(transfer_syntax(ds))
        header = _meta_bytes(sop_class, sop_instance, syntax)
        data = b"".join([b"\x00" * 128, b"DICM", header, *body])
        if engine.verify:
            meta_texts = [str(UID(sop_class)), str(UID(sop_instance)), syntax]
            checked = _for_verification(identifiers, policy)
            pixel_value = _pixel_value(elements, self.decisions)
            assert self.context is not None
            verify_plain(
                Output(data, top, meta_texts, pixel_value, pixel_last),
                checked.without(*_skipped(policy)),
                self.context.built_scrubber,
                ProfileOption.RETAIN_LONG_MODIFIED_DATES in policy.options,
                self.search_codec,
            )
        audit = AuditRecord(
            outcome=Outcome.DEIDENTIFIED,
            sop_class_uid=plan.sop_class_uid,
            study_instance_uid=_single_uid(top, _STUDY),
            series_instance_uid=_single_uid(top, _SERIES),
            sop_instance_uid=sop_instance,
            policy=policy.name,
            key_fingerprint=engine.pseudonymizer.fingerprint,
            actions=plan.counts(),
            pixels=None,
        )
        return DeidResult(None, data, plan, audit)

    # -- checks ---------------------------------------------------------------------------

    def _check_plan(self, plan: Plan) -> None:
        """What the general path would do through pydicom: not done here."""
        decisions = self.decisions
        charset = decisions.get(((), _CHARSET))
        if charset is not None and charset.action is not ActionCode.K:
            raise FallbackError  # every value is then converted by pydicom
        for tag in _PIXEL_DECISION_TAGS:
            decision = decisions.get(((), tag))
            if decision is not None and decision.action is not ActionCode.K:
                raise FallbackError
        for decision in plan.decisions:
            if decision.tag == ITEM_TAG and decision.action is not ActionCode.X:
                raise FallbackError  # content items (Clean Structured Content)

    # -- writing --------------------------------------------------------------------------

    def _write_top(self, plan: Plan) -> tuple[list[bytes | memoryview], list[Out], bool]:
        """The data set's bytes (in chunks), what it holds, and whether it ends with the
        pixel data's value."""
        extras: dict[int, tuple[list[bytes], Out | None]] = {}
        if plan.derived_age:
            self._derive(extras)
        for marker in _encoded_markers(_policy_key(self.policy), False, False):
            header = raw_header(marker, False)
            if header is None:
                raise FallbackError
            extras[int(marker.tag)] = ([header, marker.value or b""], None)
        chunks, top, last = self._level((), self.parsed.elements, self.source, extras)
        pixel = self.parsed.elements.get(BaseTag(0x7FE00010))
        # (encapsulated: the general writer's last chunk is the delimiter after the value)
        ends_with_pixels = last == 0x7FE00010 and pixel is not None and pixel.length != _UNDEFINED
        return chunks, top, ends_with_pixels

    def _derive(self, entries: dict[int, tuple[list[bytes], Out | None]]) -> None:
        """Patient's Age where the input has none (written in tag order with the markers)."""
        from deid.actions import _dummy

        decision = self.decisions[((), 0x00101010)]
        if 0x00101010 in self.parsed.elements:
            return  # (changed in place, as any text value)
        assert self.context is not None
        value = _dummy(decision, None, self.context)
        if not value:
            return
        data = encode_values(value, "AS", self.codec)
        if data is None:
            raise FallbackError
        header = _SHORT_HEADER.pack(0x0010, 0x1010, b"AS", len(data))
        entries[0x00101010] = ([header, data], (0x00101010, "AS", None, str(value), None))

    def _element(
        self, path: tuple[tuple[int, int], ...], tag: int, raw: RawDataElement
    ) -> tuple[list[bytes], Out] | bool:
        """One element's bytes and content as the general path writes it; ``False``: removed,
        ``True``: written as it was read (header and value, see :meth:`_level`)."""
        decision = self.decisions.get((path, tag))
        if decision is None:
            raise FallbackError
        action, vr = decision.action, raw.VR
        if not tag & 0xFFFF and tag >> 16 > 6:
            return False  # group lengths are not written (and are planned X)
        if action is ActionCode.X:
            return False
        if vr == "SQ":
            return self._sequence(path, tag, raw, action)
        if path and (raw.value is None or tag == 0x7FE00010):
            raise FallbackError  # pydicom writes such an item
        if action is ActionCode.K and not is_private_creator(tag):
            return self._kept(path, raw)
        if vr not in TEXT_VRS or vr != decision.vr:
            raise FallbackError  # pydicom changes (or re-encodes) it
        values = read_values(raw, vr, self.codec)
        if values is None:
            raise FallbackError
        if action is ActionCode.K:  # a private creator: pydicom converted it (to read it)
            data = encode_values(value_of(values), vr, self.codec)
            if data is None:
                raise FallbackError
            return self._fresh(tag, vr, data, "\\".join(values))
        if action not in _CHANGES_TEXT:
            raise FallbackError
        from deid.actions import _new_value

        assert self.context is not None
        new = _new_value(decision, value_of(values), self.context)
        data = encode_values(new, vr, self.codec)
        if data is None:
            raise FallbackError
        if data == raw.value:
            return self._kept(path, raw)
        return self._fresh(tag, vr, data, None)

    @staticmethod
    def _kept(path: tuple[tuple[int, int], ...], raw: RawDataElement) -> bool:
        """A kept value: written with a header built from its length, which is the header it
        was read with (see :meth:`_level`); at the top level an odd length is padded by
        pydicom's writer (in items it is copied as it is)."""
        if not path and raw.length % 2 and raw.length != _UNDEFINED:
            raise FallbackError
        return True

    @staticmethod
    def _fresh(tag: int, vr: str, data: bytes, decoded: str | None) -> tuple[list[bytes], Out]:
        """A value the general path holds re-encoded: ``decoded`` when pydicom holds it
        decoded (verification reads its text), else raw."""
        if vr not in LONG_VRS and len(data) > 0xFFFF:
            raise FallbackError
        raw = None if decoded is not None else data
        return [_header(tag, vr, len(data)), data], (tag, vr, raw, decoded, None)

    def _sequence(
        self, path: tuple[tuple[int, int], ...], tag: int, raw: RawDataElement, action: ActionCode
    ) -> tuple[list[bytes], Out]:
        """A sequence as :func:`deid.encoding.sequence_bytes` writes pydicom's converted one."""
        undefined = raw.length == _UNDEFINED
        if (undefined and path) or raw.value is None:
            raise FallbackError  # (read strictly, items hold no sequence of undefined length)
        items = self.items.get(id(raw))
        if items is None:
            items = parse_items(raw) if raw.length else []
        if items is None:
            raise FallbackError  # pydicom builds the items: the general path
        if action is ActionCode.Z:
            items_out: list[list[Out]] = []
            content = b""
        elif action in _KEEPS_ITEMS:
            parts: list[bytes] = []
            items_out = []
            for index, (undefined, elements) in enumerate(items):
                step = (*path, (tag, index))
                removed = self.decisions.get((step, ITEM_TAG))
                if removed is not None and removed.action is ActionCode.X:
                    continue
                body_chunks, level, _ = self._level(step, elements, raw.value, {})
                body = b"".join(body_chunks)
                if undefined:
                    parts += [_ITEM, _UNDEFINED_LENGTH, body, _ITEM_DELIMITER]
                else:
                    parts += [_ITEM, _LENGTH.pack(len(body)), body]
                items_out.append(level)
            content = b"".join(parts)
        else:
            raise FallbackError
        if undefined:  # as pydicom's reader marks it, and its writer writes it
            header = _SEQUENCE_HEADER.pack(tag >> 16, tag & 0xFFFF, b"SQ\x00\x00", _UNDEFINED)
            return [header, content, _SEQUENCE_DELIMITER], (tag, "SQ", None, None, items_out)
        header = _SEQUENCE_HEADER.pack(tag >> 16, tag & 0xFFFF, b"SQ\x00\x00", len(content))
        return [header, content], (tag, "SQ", None, None, items_out)

    def _level(
        self,
        path: tuple[tuple[int, int], ...],
        elements: Level,
        source: bytes,
        extras: dict[int, tuple[list[bytes], Out | None]],
    ) -> tuple[list[bytes | memoryview], list[Out], int]:
        """One level's bytes in tag order (``extras``: elements written in, replacing any of
        the same tag), what it holds, and the tag written last.

        Elements written as they were read are copied from ``source`` (the bytes their offsets
        point into) in runs: their header, rebuilt from tag, VR and length as the general path
        does, is the one they were read with (a 4-byte length's two reserved bytes zero)."""
        view = memoryview(source)
        decisions = self.decisions
        top = not path
        chunks: list[bytes | memoryview] = []
        outs: list[Out] = []
        pending = sorted(extras)
        next_extra = pending[0] if pending else _NO_TAG
        run_start = run_end = -1
        last = -1
        for key, raw in elements.items():
            tag = int(key)
            if tag <= last:
                raise FallbackError  # written in tag order by the general path
            while next_extra <= tag:
                if run_end >= 0:
                    chunks.append(view[run_start:run_end])
                    run_start = run_end = -1
                chunks.extend(extras[next_extra][0])
                out = extras[next_extra][1]
                if out is not None:
                    outs.append(out)
                last_extra, next_extra = next_extra, _next(pending)
                last = last_extra
            if tag == last:
                continue  # replaced by an extra
            last = tag
            # The common case inline: a kept value (not a sequence, creator or group length).
            decision = decisions.get((path, tag))
            vr: str = raw.VR or ""  # (explicit VR: always set)
            if (
                decision is not None
                and decision.action is _KEEP
                and vr != "SQ"
                and tag & 0xFFFF
                and not (tag & 0x10000 and (tag & 0xFFFF) <= 0xFF)
                and raw.value is not None
                and ((top and not raw.length % 2) or (not top and tag != 0x7FE00010))
            ):
                written: tuple[list[bytes], Out] | bool = True
            else:
                written = self._element(path, tag, raw)
            if written is False:
                continue
            if written is True:
                long = vr in LONG_VRS
                start = raw.value_tell - (12 if long else 8)
                if long and source[start + 6 : start + 8] != b"\x00\x00":
                    if run_end >= 0:
                        chunks.append(view[run_start:run_end])
                        run_start = run_end = -1
                    chunks += [_header(tag, vr, raw.length), raw.value or b""]
                    if raw.length == _UNDEFINED:
                        chunks.append(_SEQUENCE_DELIMITER)
                elif start == run_end:
                    run_end = _end(raw)
                else:
                    if run_end >= 0:
                        chunks.append(view[run_start:run_end])
                    run_start, run_end = start, _end(raw)
                if vr not in _UNSEARCHED:  # (what verification never reads: left out)
                    outs.append((tag, vr, raw.value or b"", None, None))
                continue
            if run_end >= 0:
                chunks.append(view[run_start:run_end])
                run_start = run_end = -1
            chunks.extend(written[0])
            outs.append(written[1])
        if run_end >= 0:
            chunks.append(view[run_start:run_end])
        while next_extra != _NO_TAG:
            chunks.extend(extras[next_extra][0])
            out = extras[next_extra][1]
            if out is not None:
                outs.append(out)
            last, next_extra = next_extra, _next(pending)
        return chunks, outs, last


_NO_TAG = 1 << 33


def _end(raw: RawDataElement) -> int:
    """Where a raw element read by :mod:`deid.rawtree` ends in its source (encapsulated Pixel
    Data: after its sequence delimiter)."""
    if raw.length == _UNDEFINED:
        return raw.value_tell + len(raw.value or b"") + 8
    return raw.value_tell + raw.length


def _meta_bytes(sop_class_uid: str, sop_instance_uid: str, syntax: str) -> bytes:
    """The new File Meta Information group as the general path writes it
    (:func:`deid.markers.new_file_meta` written by :func:`deid.encoding._file_meta_bytes`)."""
    parts: list[bytes] = []
    for tag, vr, value in (
        (0x00020002, "UI", sop_class_uid),
        (0x00020003, "UI", sop_instance_uid),
        (0x00020010, "UI", syntax),
        (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
        (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),
    ):
        data = encode_values(str(UID(value)) if vr == "UI" else value, vr, "iso8859")
        if not data:
            raise FallbackError  # (an empty UID fails pydicom's validation: the general path)
        parts += [_header(tag, vr, len(data)), data]
    body = _META_VERSION + b"".join(parts)
    return _header(0x00020000, "UL", 4) + _LENGTH.pack(len(body)) + body


_META_VERSION = struct.pack("<HH2s2xL", 0x0002, 0x0001, b"OB", 2) + b"\x00\x01"


def _next(pending: list[int]) -> int:
    """The next tag of ``pending`` (consumed from the front); past the last, ``_NO_TAG``."""
    pending.pop(0)
    return pending[0] if pending else _NO_TAG


def _header(tag: int, vr: str, length: int) -> bytes:
    """An explicit VR little endian element header, as the general writer builds it."""
    return encoding_header(tag, vr, length, False)


def _single_uid(level: list[Out], tag: int) -> str | None:
    """The one UID an output element holds, as :func:`deid.values.get_value` reads it."""
    for out_tag, vr, raw, _, _ in level:
        if out_tag == tag:
            if vr != "UI" or raw is None:
                raise FallbackError
            values = read_values(AsRaw(raw), "UI", "iso8859")  # type: ignore[arg-type]
            if values is None or len(values) != 1:
                raise FallbackError
            return values[0]
    return None


def _pixel_value(elements: Level, decisions: dict[tuple[object, int], Decision]) -> bytes | None:
    """What :func:`deid.engine._pixel_value` finds in the output: the first pixel data element
    kept, when its value is bytes of 64 or more."""
    for tag in _PIXEL_TAGS:
        raw = elements.get(BaseTag(tag))
        decision = decisions.get(((), tag))
        if raw is not None and decision is not None and decision.action is not ActionCode.X:
            value = raw.value
            if isinstance(value, bytes) and len(value) >= _MIN_PIXELS:
                return value
    return None
