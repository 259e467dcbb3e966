"""Streaming: one object from a binary stream to another, its pixel data never whole in memory.

:meth:`deid.Deidentifier.deidentify_stream` runs here. A call goes:

1. **Header.** Everything before the top-level Pixel Data element (7FE0,0010) is read through
   pydicom (``stop_before_pixels``) as it arrives, counted against ``Limits.max_bytes`` and
   the nested-items guard of :func:`deid.engine.read_dataset`; the frame and pixel counts it
   claims (:meth:`deid.limits.Limits.check_header`) and the length the Pixel Data element
   claims are checked before a byte of pixel data is read.
2. **Pixel data located, not loaded.** In a seekable ``src`` the value is found by its length
   (native) or by reading only its item headers (encapsulated); a non-seekable ``src`` is
   copied on the way into an anonymous temporary file (the *spool*: no name on disk, removed
   when the call ends). What follows the pixel data (trailing elements: padding, private
   groups, signatures) is read into memory, within ``max_bytes``.
3. **The bytes path, on a stand-in.** Header and trailer, with a 64-byte stand-in for the pixel
   data value, go through the very pipeline of :meth:`deid.Deidentifier.deidentify_bytes`
   (same reading checks, gates, plan, markers, encoding and verification), so the output is
   byte-identical to it. When the pixel pass must run on the object it runs frame by frame
   from the located value (:mod:`deid.pixels.streamed`).
4. **Written last.** Only an object that passed everything is written to ``dst``: the encoded
   header, the pixel data copied (or its cleaned frames) chunk by chunk, the encoded trailer.

Where frame-at-a-time does not apply the call falls back to the whole-object path (the bytes
read so far and the rest, within ``max_bytes``): deflated and big-endian transfer syntaxes,
files without a preamble or with an odd pixel element (odd length, a VR other than OB/OW,
Float Pixel Data), encapsulated data whose items pydicom itself would not walk, pixel data
under 64 bytes, and objects whose kept elements after the pixel data exceed 16 bytes (the
bytes path then searches the pixel data for identifiers too).

Fail closed: every check runs before the first byte is written. Should writing then fail (the
source shrinks under the call, ``dst`` refuses a write), a seekable ``dst`` is truncated back to
where it started, and the call raises :class:`deid.RejectedError`. A non-seekable ``dst`` cannot
be taken back: **the caller must discard it when the call raises**.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from pydicom.dataelem import RawDataElement

from deid.burnedin import needs_prescreen, pixel_pass_reason, run_pixel_pass
from deid.codes import RejectReason
from deid.errors import DeidError, RejectedError
from deid.pixels.streamed import NotStreamableError, StreamedClean, pieces_chunks
from deid.quiet import unquoted_call
from deid.streaminput import (
    STAND_IN,
    UNDEFINED,
    Located,
    Parts,
    PixelValue,
    WholeObjectError,
    locate,
    tell,
)
from deid.tags import stored

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deid.burnedin import PixelOutcome
    from deid.engine import Deidentifier, DeidResult
    from deid.identifiers import Identifiers
    from deid.limits import Limits

#: The bytes path leaves the pixel value out of its byte search when at most this many bytes
#: follow it (:func:`deid.verify.find_residual`).
_MAX_TRAILER = 16
_PIXEL_DATA = 0x7FE00010


@unquoted_call
def deidentify_stream(
    engine: Deidentifier, src: BinaryIO, dst: BinaryIO, limits: Limits
) -> DeidResult:
    """See :meth:`deid.Deidentifier.deidentify_stream` (``limits``: the call's)."""
    from deid.engine import rejection

    base = tell(src)
    parts = Parts(src, base, limits)
    try:
        try:
            located = locate(engine, parts)
            if located is None:
                return _whole(engine, parts.reader.read_rest(), dst, limits)
            return _streamed(engine, located, dst, parts)
        except NotStreamableError:
            return _whole(engine, parts.original(), dst, limits)
    except DeidError:
        raise
    except BaseException as exc:  # pydicom on a malformed header value, say: as the bytes path
        raise rejection("stream", exc) from None
    finally:
        for cleaner in parts.cleaners:
            cleaner.close()
        if parts.spool is not None:
            parts.spool.close()


def _whole(engine: Deidentifier, data: bytes, dst: BinaryIO, limits: Limits) -> DeidResult:
    """The whole-object path: the bytes path, its output written to ``dst``."""
    result = engine.deidentify_bytes(data, limits=limits)
    _write(dst, [result.data])
    return _streamed_result(result)


def _streamed_result(result: DeidResult) -> DeidResult:
    """What a streamed call returns: no encoded bytes (they went to ``dst``) and the data
    set without its Pixel Data."""
    dataset = result.dataset
    if _PIXEL_DATA in dataset:
        del dataset[_PIXEL_DATA]
    return type(result)(dataset, b"", result.plan, result.audit)


def _write(dst: BinaryIO, parts: Iterable[bytes]) -> None:
    """Write ``parts`` to ``dst``. On any failure a seekable ``dst`` is truncated back to where
    it stood, and the error is a rejection (a failed write: ``WRITE_FAILED``)."""
    start = tell(dst)
    try:
        for part in parts:
            dst.write(part)
        dst.flush()
    except BaseException as exc:
        _take_back(dst, start)
        if isinstance(exc, RejectedError):
            raise  # a source that ended early (TRUNCATED), say
        if isinstance(exc, Exception):
            raise RejectedError(
                RejectReason.WRITE_FAILED, f"cannot write output ({type(exc).__name__})"
            ) from None
        raise


def _take_back(dst: BinaryIO, start: int | None) -> None:
    """Truncate a seekable ``dst`` back to ``start``: nothing of a failed call is left."""
    if start is None:
        return
    try:
        dst.seek(start)
        dst.truncate()
        dst.flush()
    except (OSError, ValueError):
        pass


def _streamed(engine: Deidentifier, located: Located, dst: BinaryIO, parts: Parts) -> DeidResult:
    """The bytes path on the header and trailer with :data:`STAND_IN` for the pixel value,
    then the output written: the encoded header, the pixel data, the encoded trailer."""
    from deid.engine import read_dataset

    value = located.value
    element = located.element[:-4] + struct.pack("<L", len(STAND_IN))
    ds = read_dataset(located.head + element + STAND_IN + located.trailer)
    held = stored(ds, _PIXEL_DATA)
    if value.encapsulated and isinstance(held, RawDataElement):
        ds[_PIXEL_DATA] = held._replace(length=UNDEFINED)
    stage = _PixelStage(engine, value, parts)
    result = engine._run(ds, pixel_stage=stage, limits=parts.limits)
    out = result.data
    at = out.rfind(STAND_IN)
    if at < 0:
        written: Iterable[bytes] = [out]  # the policy removed the pixel data
    else:
        end = at + len(STAND_IN)
        if engine.verify and len(out) - end > _MAX_TRAILER:
            raise WholeObjectError()  # the bytes path searches the pixel data too
        stand_in = UNDEFINED if value.encapsulated else len(STAND_IN)
        if out[at - 4 : at] != struct.pack("<L", stand_in):
            raise WholeObjectError()  # not the element the stand-in was written for
        pixels = stage.output()
        written = itertools.chain([out[: at - 4], pixels.length_field], pixels.chunks, [out[end:]])
    _write(dst, written)
    return _streamed_result(result)


@dataclass
class _Output:
    """The pixel data value to write: its length field as encoded, and its bytes."""

    length_field: bytes
    chunks: Iterable[bytes]


class _PixelStage:
    """The pixel stage of a streamed object, in place of the engine's
    :func:`deid.burnedin.run_pixel_pass` on the whole data set: the same decision, and the
    same pass run frame by frame from the located value (:class:`StreamedClean`)."""

    def __init__(self, engine: Deidentifier, value: PixelValue, parts: Parts) -> None:
        self._engine = engine
        self._value = value
        self._parts = parts
        self._cleaner: StreamedClean | None = None

    def __call__(self, ds: Dataset, identifiers: Identifiers) -> PixelOutcome | None:
        engine = self._engine
        policy = engine.policy
        if not pixel_pass_reason(ds, policy) and not needs_prescreen(ds, policy):
            return None
        cleaner = StreamedClean(self._value)
        self._parts.cleaners.append(cleaner)
        outcome = run_pixel_pass(
            ds, policy, identifiers, engine._ocr_engine, engine._prescreen_func, clean=cleaner
        )
        self._cleaner = cleaner
        held = stored(ds, _PIXEL_DATA)
        if cleaner.pieces is not None and self._value.encapsulated:
            if not isinstance(held, RawDataElement) or held.value != STAND_IN:
                raise WholeObjectError()
            ds[_PIXEL_DATA] = held._replace(VR="OB")  # as write_frames sets it
        return outcome

    def output(self) -> _Output:
        """The value as it leaves: cleaned frames, or copied as it came in."""
        value = self._value
        pieces = self._cleaner.pieces if self._cleaner is not None else None
        if pieces is None:
            length = UNDEFINED if value.encapsulated else value.length
            return _Output(struct.pack("<L", length), value.chunks())
        size = sum(piece[2] for piece in pieces)
        length = UNDEFINED if value.encapsulated else size
        return _Output(struct.pack("<L", length), pieces_chunks(pieces))
