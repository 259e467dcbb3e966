"""The Deidentifier: gates -> identifiers -> plan -> apply -> markers -> encode -> verify.

A :class:`Deidentifier` holds only immutable configuration (policy, key), so one instance can
be shared by many threads. Every call works on its own data set.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from deid import gates
from deid.actions import ApplyContext, apply_plan
from deid.audit import AuditRecord
from deid.burnedin import PixelOutcome, run_pixel_pass
from deid.codes import ActionCode, Outcome, PixelText, ProfileOption, RejectReason
from deid.derived import reference_date
from deid.descriptors import Scrubber
from deid.encoding import encode_with_last
from deid.errors import (
    DeidError,
    MissingDependencyError,
    PolicyError,
    RejectedError,
    is_panic,
)
from deid.identifiers import Category, Identifiers, collect
from deid.keys import Pseudonymizer
from deid.limits import Limits
from deid.markers import add_markers, new_file_meta, transfer_syntax
from deid.ocr.base import OcrEngine
from deid.ocr.registry import get_engine
from deid.plan import Plan, build_plan
from deid.plancache import PlanCache
from deid.policy import Policy, load_policy
from deid.quiet import unquoted_call
from deid.tags import stored
from deid.values import get_value
from deid.verify import verify

if TYPE_CHECKING:
    from deid.pixels.clean import Prescreen

logger = logging.getLogger("deid")
_T = TypeVar("_T")
#: What runs the pixel stage of one object (see ``Deidentifier._run``).
PixelStage = Callable[[Dataset, Identifiers], PixelOutcome | None]


class DeidResult:
    """A de-identified object: the data set, its encoded bytes, the plan and the audit record.

    ``dataset`` is the de-identified data set; where the object took the fast path
    (:mod:`deid.fastpath`) it is read from ``data`` the first time it is asked for.
    """

    __slots__ = ("_dataset", "audit", "data", "plan")

    def __init__(self, dataset: Dataset | None, data: bytes, plan: Plan, audit: AuditRecord):
        self._dataset = dataset
        self.data = data
        self.plan = plan
        self.audit = audit

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = unquoted_call(dcmread)(io.BytesIO(self.data))
        return self._dataset

    def __repr__(self) -> str:
        return f"DeidResult(data=<{len(self.data)} bytes>, audit={self.audit!r})"


class Deidentifier:
    """De-identify DICOM objects with one policy and one key.

    Parameters
    ----------
    policy : Policy, str or Path
        A :class:`deid.Policy`, the name of a shipped policy (``"upload"``, ``"basic"``,
        ``"research"``) or a TOML file.
    key : Pseudonymizer or bytes
        The secret behind every pseudonym. Required: there is no random default.
    verify : bool
        Search every output for the input's identifiers before releasing it (default True).
    ocr : OcrEngine or str, optional
        The OCR engine of the pixel pass, or its name / ``module:attribute`` path; by default
        the policy's ``[pixels] engine``, built on first use. Without one installed, objects
        that need the pixel pass are rejected (``BURNED_IN_TEXT``).
    prescreen : callable or bool
        A cheap ``(uint8 image) -> bool`` text test run before OCR on every frame (frames it
        clears are not OCR'd). ``True`` (default): deid's pre-screen when its dependencies are
        installed; ``False``: every frame goes to the OCR engine.
    limits : Limits, optional
        What one object may claim (bytes, frames, pixels, sequence depth): checked before
        anything is allocated for it; over a limit is ``SIZE_LIMIT`` (:mod:`deid.limits`).
    """

    def __init__(
        self,
        policy: Policy | str | Path = "upload",
        key: Pseudonymizer | bytes | None = None,
        *,
        verify: bool = True,
        ocr: OcrEngine | str | None = None,
        prescreen: Prescreen | bool = True,
        limits: Limits | None = None,
    ) -> None:
        self.policy = load_policy(policy)
        if key is None:
            raise PolicyError("a key is required (Pseudonymizer or 32 bytes)", source="<key>")
        self.pseudonymizer = key if isinstance(key, Pseudonymizer) else Pseudonymizer(key)
        self.verify = verify
        self.limits = limits if limits is not None else Limits()
        self._ocr_spec: OcrEngine | str = ocr if ocr is not None else self.policy.pixels.engine
        self._ocr: OcrEngine | None = None if isinstance(ocr, str | None) else ocr
        self._prescreen_spec = prescreen
        self._prescreen: Prescreen | None = None
        self._prescreen_built = False
        self._lock = threading.Lock()
        # Value-free decisions per SOP Class (see build_plan); only ever added to, each
        # entry computed from the policy alone, so sharing it between threads is safe.
        self._plan_cache: dict[str, PlanCache] = {}

    def __getstate__(self) -> dict[str, object]:
        """Pickled for worker processes without the built engine and lock (rebuilt there)."""
        state = dict(self.__dict__)
        state["_lock"] = None
        if isinstance(state["_ocr_spec"], str):
            state["_ocr"] = None
        state["_prescreen"], state["_prescreen_built"] = None, False
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Deidentifier(policy={self.policy.name!r}, key={self.pseudonymizer.fingerprint!r})"

    # -- public API -------------------------------------------------------------------

    @unquoted_call
    def plan(self, ds: Dataset) -> Plan:
        """The plan for ``ds`` (nothing is changed; the pixel gate is not applied)."""
        gates.check_structure(ds)
        return _guard("plan", lambda: build_plan(ds, self.policy))

    def deidentify(self, ds: Dataset, *, limits: Limits | None = None) -> DeidResult:
        """De-identify a copy of ``ds``; ``ds`` itself is left as it was.

        ``limits`` (every ``deidentify*`` method): this call's :class:`~deid.limits.Limits`
        in place of the Deidentifier's (one shared instance can hold each caller to its own).
        """
        return self._run(_clone(ds), limits=self._limits(limits))

    def deidentify_bytes(self, data: bytes, *, limits: Limits | None = None) -> DeidResult:
        """De-identify an encoded DICOM object (Part 10 file, or a bare data set)."""
        bound = self._limits(limits)
        if isinstance(data, bytes | bytearray | memoryview):
            bound.check_size(len(data))
            if self.fast_path:
                result = self._run_plain(bytes(data), bound)
                if result is not None:
                    return result
        return self._run(read_dataset(data), limits=bound)

    def deidentify_stream(
        self, src: BinaryIO, dst: BinaryIO, *, limits: Limits | None = None
    ) -> DeidResult:
        """Read one object from ``src``, de-identify it and write the result to ``dst``, the
        pixel data a chunk or a frame at a time (:mod:`deid.stream`): peak memory stays near
        the header plus one frame, and the bytes written are those of :meth:`deidentify_bytes`.

        The limits are applied to what the header claims before any pixel data is read, and
        the input is refused as soon as it passes ``limits.max_bytes``. A non-seekable ``src``
        has its pixel data copied to an anonymous temporary file on the way. Deflated and big
        endian objects, and the few others :mod:`deid.stream` lists, are read whole (within
        ``max_bytes``) and go through :meth:`deidentify_bytes`.

        Nothing is written to ``dst`` until the object passed every check; should writing
        fail, a seekable ``dst`` is truncated back to where it stood. **A non-seekable ``dst``
        must be discarded by the caller when this raises.** ``dst`` is not closed.

        The result's ``data`` is empty (the output went to ``dst``) and its ``dataset`` holds
        the de-identified attributes without the Pixel Data.
        """
        from deid.stream import deidentify_stream

        return deidentify_stream(self, src, dst, self._limits(limits))

    def deidentify_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        limits: Limits | None = None,
    ) -> DeidResult:
        """Read ``src``, write the result to ``dst`` atomically; nothing is written on rejection.
        A file over ``limits.max_bytes`` is refused from its size, before it is read."""
        bound = self._limits(limits)
        try:
            bound.check_size(os.stat(src).st_size)
            data = Path(src).read_bytes()
        except OSError as exc:
            raise RejectedError(
                RejectReason.NOT_DICOM, f"cannot read input ({type(exc).__name__})"
            ) from None
        result = self.deidentify_bytes(data, limits=bound)
        write_atomic(Path(dst), result.data)
        return result

    # -- the pipeline -----------------------------------------------------------------

    #: Plain files go through :mod:`deid.fastpath` (same output, less work); False: every
    #: object takes the general path (tests compare the two).
    fast_path = True

    @unquoted_call
    def _run_plain(self, data: bytes, bound: Limits) -> DeidResult | None:
        from deid.fastpath import deidentify_plain

        return deidentify_plain(self, data, bound)

    def _limits(self, limits: Limits | None) -> Limits:
        if limits is None:
            return self.limits
        if not isinstance(limits, Limits):
            raise TypeError("limits must be a deid.Limits")
        return limits

    @unquoted_call
    def _run(
        self, ds: Dataset, pixel_stage: PixelStage | None = None, limits: Limits | None = None
    ) -> DeidResult:
        """The pipeline; ``pixel_stage`` replaces the pixel pass (:mod:`deid.stream`);
        ``limits``: the call's (default: the Deidentifier's)."""
        bound = limits if limits is not None else self.limits
        stage = "gate"
        try:
            gates.check(ds, self.policy)
            bound.check_header(ds)
            stage = "collect"
            identifiers = collect(ds)
            stage = "plan"
            plan = build_plan(ds, self.policy, self._plan_cache)
            bound.check_depth(plan)
            stage = "apply"
            context = self._context(ds, identifiers)
            apply_plan(ds, plan, context)
            stage = "pixels"
            pixels = (pixel_stage or self._pixel_pass)(ds, identifiers)
            stage = "mark"
            ts = transfer_syntax(ds)
            marked = add_markers(ds, self.policy, pixels=pixels is not None and pixels.cleaned)
            ds.file_meta = new_file_meta(ds, ts)
            ds.preamble = b"\x00" * 128
            stage = "encode"
            data, last = encode_with_last(ds)
            if self.verify:
                stage = "verify"
                checked = _for_verification(identifiers, self.policy)
                pixel_bytes = _pixel_value(ds)
                verify(
                    ds,
                    data,
                    checked,
                    skip=_skipped(self.policy),
                    pixel_value=pixel_bytes,
                    pixel_at_end=pixel_bytes is not None and last is pixel_bytes,
                    ignore=marked,
                    shifted_dates=ProfileOption.RETAIN_LONG_MODIFIED_DATES in self.policy.options,
                    scrubber=context.built_scrubber,
                )
            stage = "audit"
            audit = AuditRecord(
                outcome=Outcome.DEIDENTIFIED,
                sop_class_uid=plan.sop_class_uid,
                study_instance_uid=_str(get_value(ds, "StudyInstanceUID")),
                series_instance_uid=_str(get_value(ds, "SeriesInstanceUID")),
                sop_instance_uid=_str(get_value(ds, "SOPInstanceUID")),
                policy=self.policy.name,
                key_fingerprint=self.pseudonymizer.fingerprint,
                actions=plan.counts(),
                pixels=pixels.audit() if pixels is not None else None,
            )
        except DeidError:
            raise
        except BaseException as exc:  # a Rust extension's panic is not an Exception
            raise rejection(stage, exc) from None
        return DeidResult(ds, data, plan, audit)

    def _pixel_pass(self, ds: Dataset, identifiers: Identifiers) -> PixelOutcome | None:
        return run_pixel_pass(ds, self.policy, identifiers, self._ocr_engine, self._prescreen_func)

    def _ocr_engine(self) -> OcrEngine:
        """The OCR engine, built once (a missing backend raises MissingDependencyError)."""
        if self._ocr is not None:
            return self._ocr
        with self._lock:
            if self._ocr is None:
                spec = self._ocr_spec
                reads = self.policy.pixels.text is PixelText.IDENTIFIERS
                self._ocr = spec if not isinstance(spec, str) else get_engine(spec, recognize=reads)
            return self._ocr

    def _prescreen_func(self) -> Prescreen | None:
        """The pre-screen, built once; None when disabled or its dependencies are missing."""
        if self._prescreen_built:
            return self._prescreen
        with self._lock:
            if not self._prescreen_built:
                spec = self._prescreen_spec
                if spec is True:
                    self._prescreen = _default_prescreen()
                elif spec is not False:
                    self._prescreen = spec
                self._prescreen_built = True
            return self._prescreen

    def _context(self, ds: Dataset, identifiers: Identifiers) -> ApplyContext:
        patient_id = _str(get_value(ds, "PatientID")) or ""
        name = _str(get_value(ds, "PatientName")) or ""
        low, high = self.policy.date_shift_days
        shift = self.pseudonymizer.date_shift_days(patient_id or name, low, high)
        return ApplyContext(
            pseudonymizer=self.pseudonymizer,
            patient_id=patient_id,
            patient_name=name,
            shift_days=shift,
            scrubber_factory=lambda: Scrubber(identifiers),
            birth_date=(_str(get_value(ds, "PatientBirthDate")) or "").strip(),
            reference_date=reference_date(ds),
        )


def _default_prescreen() -> Prescreen | None:
    try:
        from deid.ocr.prescreen import TextPrescreen
    except (ImportError, MissingDependencyError):
        return None
    try:
        return TextPrescreen()
    except MissingDependencyError:
        return None


def _str(value: object) -> str | None:
    if value is None:
        return None
    return str(value)


def _guard(stage: str, func: Callable[[], _T]) -> _T:
    """Run one stage; any unexpected error becomes a rejection that names no value."""
    try:
        return func()
    except DeidError:
        raise
    except Exception as exc:
        raise rejection(stage, exc) from None


def rejection(stage: str, exc: BaseException) -> RejectedError:
    """What an unexpected error in ``stage`` becomes: a rejection whose message names no value
    (the object is not released). ``exc`` itself is raised again when it is neither an
    ``Exception`` nor a Rust extension's panic (``KeyboardInterrupt``, ``SystemExit``)."""
    if not isinstance(exc, Exception) and not is_panic(exc):
        raise exc
    logger.debug("stage %s failed: %s", stage, type(exc).__name__)
    return RejectedError(RejectReason.INVALID_DATASET, f"{stage} failed ({type(exc).__name__})")


def _for_verification(identifiers: Identifiers, policy: Policy) -> Identifiers:
    """The identifiers the policy promises are gone.

    Attributes a policy override keeps are not searched for. With Retain Longitudinal Full
    Dates the original dates stay, except the birth date, which the profile always removes.
    """
    kept = {keyword_for_tag(t) for t, a in policy.overrides.items() if a is ActionCode.K}
    full_dates = ProfileOption.RETAIN_LONG_FULL_DATES in policy.options
    return Identifiers(
        tuple(
            i
            for i in identifiers.items
            if i.source not in kept
            and not (full_dates and i.category is Category.DATE and i.source not in _BIRTH)
        )
    )


_BIRTH = frozenset({"PatientBirthDate", "PatientBirthDateInAlternativeCalendar"})


def _skipped(policy: Policy) -> frozenset[Category]:
    if ProfileOption.RETAIN_INSTITUTION_IDENTITY in policy.options:
        return frozenset({Category.INSTITUTION, Category.ADDRESS})
    return frozenset()


def _pixel_value(ds: Dataset) -> bytes | None:
    for tag in gates.PIXEL_TAGS:
        if tag in ds:
            value = ds[tag].value
            if isinstance(value, bytes) and len(value) >= 64:
                return value
    return None


@unquoted_call
def read_dataset(data: bytes) -> Dataset:
    """Parse bytes into a data set, classifying failures as rejections (no values named)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("data must be bytes")
    raw = bytes(data)
    if len(raw) < 8:
        raise RejectedError(RejectReason.NOT_DICOM, "fewer than 8 bytes")
    _check_open_items(raw)
    ds: Dataset
    try:
        ds = dcmread(io.BytesIO(raw))
    except InvalidDicomError:
        ds = _read_forced(raw)
    except (EOFError, struct.error, OverflowError, MemoryError, OSError):
        # Reading from memory, an OSError is pydicom running out of bytes (a sequence or an
        # item without its delimiter): the object ends early.
        raise RejectedError(RejectReason.TRUNCATED, "ends inside an element") from None
    except Exception as exc:
        raise RejectedError(
            RejectReason.INVALID_DATASET, f"unreadable ({type(exc).__name__})"
        ) from None
    try:
        _check_complete(ds, raw)
    except DeidError:
        raise
    except Exception as exc:  # an element pydicom cannot convert (a stray delimiter tag, ...)
        raise RejectedError(
            RejectReason.INVALID_DATASET, f"unreadable ({type(exc).__name__})"
        ) from None
    return ds


#: Items of undefined length open at once that deid lets pydicom read: its reader recurses into
#: them and scans for each one's delimiter, so a deep nest costs time with the square of its
#: depth before anything else can look at it.
MAX_OPEN_ITEMS = 64
_ITEM_OPEN = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_CLOSE = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


def _check_open_items(raw: bytes) -> None:
    """Refuse (SIZE_LIMIT) a header with more than :data:`MAX_OPEN_ITEMS` undefined-length
    items open at once, counted on the bytes before pydicom reads them (up to the Pixel Data
    tag, little endian; encapsulated fragments have defined lengths and do not count)."""
    end = raw.find(_PIXEL_DATA_TAG)
    header = raw if end < 0 else raw[:end]
    if header.count(_ITEM_OPEN) <= MAX_OPEN_ITEMS:
        return
    events = [(at, 1) for at in _positions(header, _ITEM_OPEN)]
    events += [(at, -1) for at in _positions(header, _ITEM_CLOSE)]
    depth = 0
    for _, step in sorted(events):
        depth = max(depth + step, 0)
        if depth > MAX_OPEN_ITEMS:
            raise RejectedError(
                RejectReason.SIZE_LIMIT,
                f"over {MAX_OPEN_ITEMS} items of undefined length nested (limit {MAX_OPEN_ITEMS})",
            )


def _positions(data: bytes, pattern: bytes) -> list[int]:
    found = []
    at = data.find(pattern)
    while at >= 0:
        found.append(at)
        at = data.find(pattern, at + 1)
    return found


def _read_forced(raw: bytes) -> Dataset:
    try:
        ds = dcmread(io.BytesIO(raw), force=True)
    except (EOFError, struct.error):
        raise RejectedError(
            RejectReason.NOT_DICOM, "no DICOM preamble and not a readable data set"
        ) from None
    except Exception:
        raise RejectedError(
            RejectReason.NOT_DICOM, "no DICOM preamble and not a readable data set"
        ) from None
    try:
        ok = "SOPClassUID" in ds and len(ds) > 2
    except Exception:
        ok = False
    if not ok:
        raise RejectedError(RejectReason.NOT_DICOM, "no DICOM preamble and no SOP Class UID")
    return ds


_UNDEFINED = 0xFFFFFFFF
_DEFLATED = "1.2.840.10008.1.2.1.99"


def _check_complete(ds: Dataset, data: bytes) -> None:
    """Reject data sets that stop early; nothing is decoded (kept values stay raw bytes)."""
    keys = list(ds.keys())
    if not keys:
        meta = getattr(ds, "file_meta", None)
        reason = RejectReason.TRUNCATED if meta else RejectReason.NOT_DICOM
        raise RejectedError(reason, "no data set elements")
    for tag in keys:
        elem = stored(ds, tag)
        if (
            isinstance(elem, RawDataElement)
            and elem.length != _UNDEFINED
            and elem.value is not None
            and len(elem.value) < elem.length
        ):
            raise RejectedError(
                RejectReason.TRUNCATED, f"element {_fmt(tag)} is shorter than its length"
            )
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("TransferSyntaxUID", "")) == _DEFLATED:
        return  # offsets are those of the inflated stream
    last = stored(ds, keys[-1])
    if not isinstance(last, RawDataElement) or last.value is None:
        return
    end = last.value_tell + len(last.value) + (8 if last.length == _UNDEFINED else 0)
    if end != len(data):
        raise RejectedError(
            RejectReason.TRUNCATED, "the data set does not end with a complete element"
        )


def _fmt(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _clone(ds: Dataset) -> Dataset:
    """A structural copy: new data sets and sequences, shared immutable values (no pixel copy)."""
    new = Dataset()
    for tag in ds.keys():
        item = stored(ds, tag)
        if isinstance(item, RawDataElement):
            new[tag] = item
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            copy = type(elem)(elem.tag, "SQ", Sequence([_clone(i) for i in (elem.value or [])]))
            new[tag] = copy
        else:
            new[tag] = type(elem)(
                elem.tag, elem.VR, elem.value, is_undefined_length=elem.is_undefined_length
            )
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        new.file_meta = meta
    implicit, little = ds.original_encoding
    new.set_original_encoding(implicit, little, ds.original_character_set)
    return new


def write_atomic(dst: Path, data: bytes) -> None:
    """Write to a random temporary name beside ``dst``, fsync, then rename into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".deid-{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RejectedError(
            RejectReason.WRITE_FAILED, f"cannot write output ({type(exc).__name__})"
        ) from None
