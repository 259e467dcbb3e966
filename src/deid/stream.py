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

import io
import itertools
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.uid import UID

from deid.burnedin import needs_prescreen, pixel_pass_reason, run_pixel_pass
from deid.codes import RejectReason
from deid.errors import RejectedError
from deid.pixels.streamed import NotStreamableError, StreamedClean, pieces_chunks
from deid.quiet import unquoted_call
from deid.tags import stored

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deid.burnedin import PixelOutcome
    from deid.engine import Deidentifier, DeidResult
    from deid.identifiers import Identifiers

#: Bytes copied at a time (pixel data).
CHUNK = 1 << 18
#: Bytes read ahead at a time while the header is read.
HEADER_CHUNK = 1 << 16
#: The stand-in for the pixel data value while the header goes through the pipeline: 64 bytes
#: (verification leaves a pixel value of 64 bytes or more out of its byte search) that no
#: identifier can match (no ASCII, and no UTF-8 lead byte).
STAND_IN = bytes(range(0x80, 0xC0))
#: The bytes path leaves the pixel value out of its byte search when at most this many bytes
#: follow it (:func:`deid.verify.find_residual`).
_MAX_TRAILER = 16
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"
_ITEM_OPEN = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_CLOSE = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"


class _WholeObjectError(NotStreamableError):
    """This object takes the whole-object path (never leaves this module)."""


def _read_error(exc: OSError) -> RejectedError:
    return RejectedError(RejectReason.NOT_DICOM, f"cannot read input ({type(exc).__name__})")


class _Input(io.RawIOBase):
    """``src`` as pydicom reads the header: every byte read is kept (so pydicom may seek back),
    counted against ``max_bytes`` and watched for items of undefined length nested too deep
    (the guard of :func:`deid.engine.read_dataset`, counted as the bytes arrive)."""

    def __init__(self, src: BinaryIO, max_bytes: int) -> None:
        super().__init__()
        self.src = src
        self.limit = max_bytes
        self.buffer = bytearray()
        self.eof = False
        self._pos = 0
        self._scanned = 0  # where the next search for item markers starts
        self._pixel_at = -1  # the first Pixel Data tag bytes: no item counts past them
        self._depth = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._pos + offset
        else:
            raise io.UnsupportedOperation("a stream is not read from its end")
        if position < 0:
            raise ValueError("negative position")
        self._pos = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self.fill(None)
            end = len(self.buffer)
        else:
            end = self._pos + size
            self.fill(end)
        data = bytes(self.buffer[self._pos : end])
        self._pos += len(data)
        return data

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def fill(self, end: int | None) -> None:
        """Read from ``src`` until ``end`` bytes are held (``None``: all of it)."""
        while (end is None or len(self.buffer) < end) and not self.eof:
            need = HEADER_CHUNK if end is None else end - len(self.buffer)
            want = min(max(need, HEADER_CHUNK), self.limit + 1 - len(self.buffer))
            try:
                chunk = self.src.read(want)
            except OSError as exc:
                raise _read_error(exc) from None
            if not chunk:
                self.eof = True
                break
            size = len(self.buffer) + len(chunk)
            if size > self.limit:
                raise RejectedError(RejectReason.SIZE_LIMIT, f"{size} bytes (limit {self.limit})")
            self.buffer += chunk
            self._count_items()

    def _count_items(self) -> None:
        """:func:`deid.engine.read_dataset`'s nesting guard on the bytes held, incrementally:
        items of undefined length open at once, counted up to the first Pixel Data tag."""
        from deid.engine import MAX_OPEN_ITEMS

        if self._pixel_at >= 0:
            return
        buffer, start, stop = self.buffer, self._scanned, len(self.buffer)
        pixel = buffer.find(_PIXEL_TAG, max(start - 3, 0), stop)
        if pixel >= 0:
            self._pixel_at = stop = pixel
        events = [(at, 1) for at in _positions(buffer, _ITEM_OPEN, start, stop)]
        events += [(at, -1) for at in _positions(buffer, _ITEM_CLOSE, start, stop)]
        for _, step in sorted(events):
            self._depth = max(self._depth + step, 0)
            if self._depth > MAX_OPEN_ITEMS:
                raise RejectedError(
                    RejectReason.SIZE_LIMIT,
                    f"over {MAX_OPEN_ITEMS} items of undefined length nested "
                    f"(limit {MAX_OPEN_ITEMS})",
                )
        self._scanned = max(start, stop - len(_ITEM_OPEN) + 1)

    def read_rest(self) -> bytes:
        """Everything held and everything left in ``src`` (within ``max_bytes``)."""
        self.fill(None)
        return bytes(self.buffer)


def _positions(data: bytearray, pattern: bytes, start: int, stop: int) -> list[int]:
    found = []
    at = data.find(pattern, start, stop)
    while at >= 0:
        found.append(at)
        at = data.find(pattern, at + 1, stop)
    return found


class _Tail:
    """A non-seekable ``src`` after the pixel element's header: bytes already read past it
    first, then ``src``; counted against ``max_bytes``; nothing kept."""

    def __init__(self, src: BinaryIO, ahead: bytes, used: int, limit: int) -> None:
        self._src = src
        self.pending = bytearray(ahead)
        self._used = used  # bytes of the input before ``ahead``
        self._limit = limit

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of ``src``)."""
        while len(self.pending) < size:
            room = self._limit + 1 - self._used - len(self.pending)
            try:
                chunk = self._src.read(max(min(max(size - len(self.pending), CHUNK), room), 1))
            except OSError as exc:
                raise _read_error(exc) from None
            if not chunk:
                break
            self.pending += chunk
            total = self._used + len(self.pending)
            if total > self._limit:
                raise RejectedError(RejectReason.SIZE_LIMIT, f"{total} bytes (limit {self._limit})")
        data = bytes(self.pending[:size])
        del self.pending[:size]
        self._used += len(data)
        return data

    def rest(self) -> bytes:
        """Everything left (within ``max_bytes``)."""
        parts = []
        while chunk := self.take(CHUNK):
            parts.append(chunk)
        return b"".join(parts)


@dataclass
class PixelValue:
    """Where the pixel data value of a streamed object lies, and how it is framed.

    ``file`` holds the value from ``start`` (``src`` itself when seekable, else the spool):
    ``length`` bytes, up to (not including) an encapsulated value's sequence delimiter.
    ``items``: for encapsulated data, each item's value as (offset in the value, length), the
    Basic Offset Table first, then the fragments. ``vr``: as read ('' for implicit VR).
    """

    file: BinaryIO
    start: int
    length: int = 0
    encapsulated: bool = False
    vr: str = ""
    items: list[tuple[int, int]] = field(default_factory=list)

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The value's bytes ``[start, stop)``, :data:`CHUNK` at a time."""
        end = self.length if stop is None else stop
        position = start
        while position < end:
            size = min(CHUNK, end - position)
            yield self.read(position, size)
            position += size

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes of the value from ``offset``; a short read is a truncated source."""
        try:
            self.file.seek(self.start + offset)
            data = self.file.read(size)
        except OSError as exc:
            raise _read_error(exc) from None
        if len(data) != size:
            raise RejectedError(RejectReason.TRUNCATED, "the pixel data ends early")
        return data


@dataclass
class _Located:
    """The input in parts: ``head`` (up to the pixel element), the element's header bytes,
    the value, its sequence delimiter (encapsulated) and the trailer."""

    head: bytes
    element: bytes
    value: PixelValue
    delimiter: bytes
    trailer: bytes


class _Parts:
    """What one call has read, for the whole-object path should it be needed."""

    def __init__(self, src: BinaryIO, base: int | None, reader: _Input) -> None:
        self.src = src
        self.base = base
        self.reader = reader
        self.head = b""
        self.element = b""
        self.tail: _Tail | None = None
        self.spool: BinaryIO | None = None
        self.located: _Located | None = None
        self.cleaners: list[StreamedClean] = []

    def original(self) -> bytes:
        """The whole input, read again or put back together (within ``max_bytes``)."""
        if self.base is not None:
            try:
                self.src.seek(self.base)
            except OSError as exc:
                raise _read_error(exc) from None
            return _Input(self.src, self.reader.limit).read_rest()
        if self.tail is None:
            return self.reader.read_rest()
        located = self.located
        if located is not None:
            body = b"".join(located.value.chunks())
            return located.head + located.element + body + located.delimiter + located.trailer
        spooled = b""
        if self.spool is not None:
            try:
                self.spool.seek(0)
                spooled = self.spool.read()
            except OSError as exc:
                raise _read_error(exc) from None
        return self.head + self.element + spooled + self.tail.rest()


@unquoted_call
def deidentify_stream(engine: Deidentifier, src: BinaryIO, dst: BinaryIO) -> DeidResult:
    """See :meth:`deid.Deidentifier.deidentify_stream`."""
    base = _tell(src)
    parts = _Parts(src, base, _Input(src, engine.limits.max_bytes))
    try:
        try:
            located = _locate(engine, parts)
            if located is None:
                return _whole(engine, parts.reader.read_rest(), dst)
            return _streamed(engine, located, dst, parts)
        except NotStreamableError:
            return _whole(engine, parts.original(), dst)
    finally:
        for cleaner in parts.cleaners:
            cleaner.close()
        if parts.spool is not None:
            parts.spool.close()


def _tell(stream: BinaryIO) -> int | None:
    """Where a seekable ``stream`` stands now (``None``: not seekable)."""
    try:
        if not stream.seekable():
            return None
        return stream.tell()
    except (OSError, AttributeError, ValueError):
        return None


def _whole(engine: Deidentifier, data: bytes, dst: BinaryIO) -> DeidResult:
    """The whole-object path: the bytes path, its output written to ``dst``."""
    result = engine.deidentify_bytes(data)
    _write(dst, [result.data])
    return _streamed_result(result)


def _streamed_result(result: DeidResult) -> DeidResult:
    """What a streamed call returns: no encoded bytes (they went to ``dst``) and the data
    set without its Pixel Data."""
    dataset = result.dataset
    if _PIXEL_DATA in dataset:
        del dataset[_PIXEL_DATA]
    return replace(result, data=b"")


def _write(dst: BinaryIO, parts: Iterable[bytes]) -> None:
    """Write ``parts`` to ``dst``. On any failure a seekable ``dst`` is truncated back to where
    it stood, and the error is a rejection (a failed write: ``WRITE_FAILED``)."""
    start = _tell(dst)
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


# -- reading ------------------------------------------------------------------------------


def _locate(engine: Deidentifier, parts: _Parts) -> _Located | None:
    """Read the header, check what it claims, find the pixel data value and read the trailer.

    ``None``: the object has no top-level Pixel Data (all of it has then been read).
    Raises :class:`_WholeObjectError` where frame-at-a-time does not apply.
    """
    reader = parts.reader
    try:
        header = dcmread(reader, stop_before_pixels=True)
    except RejectedError:
        raise
    except Exception:
        raise _WholeObjectError() from None  # the bytes path says what is wrong with it
    at = reader.tell()
    reader.fill(at + 12)
    if reader.eof and at >= len(reader.buffer):
        return None
    implicit, little = header.original_encoding
    syntax = _syntax(header)
    if not little or syntax is None or bytes(reader.buffer[at : at + 4]) != _PIXEL_TAG:
        raise _WholeObjectError()
    encapsulated = bool(UID(syntax).is_encapsulated)
    size = 8 if implicit else 12
    if len(reader.buffer) < at + size:
        raise _WholeObjectError()  # ends inside the element header
    vr = "" if implicit else bytes(reader.buffer[at + 4 : at + 6]).decode("latin-1")
    (length,) = struct.unpack_from("<L", reader.buffer, at + size - 4)
    if vr not in ("", "OB", "OW") or encapsulated != (length == _UNDEFINED):
        raise _WholeObjectError()
    if (implicit and encapsulated) or (not encapsulated and length % 2):
        raise _WholeObjectError()
    engine.limits.check_header(header)  # before a byte of pixel data is read
    if not encapsulated:
        engine.limits.check_size(at + size + length)
    parts.head = bytes(reader.buffer[:at])
    parts.element = bytes(reader.buffer[at : at + size])
    if parts.base is not None:
        value, delimiter, trailer = _in_source(parts, at + size, length)
    else:
        value, delimiter, trailer = _spooled(parts, at + size, length)
    value.vr = vr
    parts.located = _Located(parts.head, parts.element, value, delimiter, trailer)
    if value.length < len(STAND_IN):
        raise _WholeObjectError()  # the bytes path searches a value this small: no stand-in
    return parts.located


def _syntax(header: Dataset) -> str | None:
    """The transfer syntax when frame-at-a-time applies to it: little endian, not deflated."""
    meta = getattr(header, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return None
    syntax = UID(str(uid))
    if str(syntax) in (_IMPLICIT_LE, _EXPLICIT_LE):
        return str(syntax)
    try:
        ok = syntax.is_encapsulated and syntax.is_little_endian and not syntax.is_deflated
    except (ValueError, AttributeError):
        return None
    return str(syntax) if ok else None


def _in_source(parts: _Parts, offset: int, length: int) -> tuple[PixelValue, bytes, bytes]:
    """The value in a seekable ``src``, found by its length (native) or by reading only its
    item headers (encapsulated); then the trailer, read to the end."""
    src, limit = parts.src, parts.reader.limit
    assert parts.base is not None
    start = parts.base + offset
    value = PixelValue(src, start, encapsulated=length == _UNDEFINED)
    delimiter = b""
    try:
        if length != _UNDEFINED:
            value.length = length
        else:
            position = start
            while True:
                src.seek(position)
                head = src.read(8)
                if len(head) < 8:
                    raise _WholeObjectError()  # pydicom scans for a delimiter: the bytes path
                (size,) = struct.unpack("<L", head[4:])
                if head[:4] == _SEQUENCE_DELIMITER:
                    value.length = position - start
                    delimiter = head
                    break
                if head[:4] != _ITEM or size == _UNDEFINED:
                    raise _WholeObjectError()
                value.items.append((position + 8 - start, size))
                position += 8 + size
                if offset + position - start > limit:
                    total = offset + position - start
                    raise RejectedError(RejectReason.SIZE_LIMIT, f"{total} bytes (limit {limit})")
        end = start + value.length + len(delimiter)
        if src.seek(0, os.SEEK_END) < end:
            raise _WholeObjectError()  # ends inside the pixel data: the bytes path says how
        src.seek(end)
        tail = _Tail(src, b"", end - parts.base, limit)
        return value, delimiter, tail.rest()
    except OSError as exc:
        raise _read_error(exc) from None


def _spooled(parts: _Parts, offset: int, length: int) -> tuple[PixelValue, bytes, bytes]:
    """The value of a non-seekable ``src``, copied into an anonymous temporary file (no name
    on disk, removed when the call ends) as it is read; then the trailer."""
    reader = parts.reader
    tail = _Tail(parts.src, bytes(reader.buffer[offset:]), offset, reader.limit)
    parts.tail = tail
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by deidentify_stream)
    parts.spool = spool
    value = PixelValue(spool, 0, encapsulated=length == _UNDEFINED)
    delimiter = b""
    try:
        if length != _UNDEFINED:
            left = length
            while left:
                data = tail.take(min(left, CHUNK))
                if not data:
                    raise _WholeObjectError()  # ends inside the pixel data: the bytes path
                spool.write(data)
                left -= len(data)
            value.length = length
        else:
            while True:
                head = tail.take(8)
                if head[:4] == _SEQUENCE_DELIMITER and len(head) == 8:
                    value.length = spool.tell()
                    delimiter = head
                    break
                spool.write(head)
                if len(head) < 8:
                    raise _WholeObjectError()
                (size,) = struct.unpack("<L", head[4:])
                if head[:4] != _ITEM or size == _UNDEFINED:
                    raise _WholeObjectError()
                value.items.append((spool.tell(), size))
                left = size
                while left:
                    data = tail.take(min(left, CHUNK))
                    if not data:
                        raise _WholeObjectError()
                    spool.write(data)
                    left -= len(data)
        spool.flush()
    except OSError as exc:
        raise RejectedError(
            RejectReason.WRITE_FAILED, f"cannot spool the pixel data ({type(exc).__name__})"
        ) from None
    return value, delimiter, tail.rest()


# -- the pipeline and the output ----------------------------------------------------------


def _streamed(engine: Deidentifier, located: _Located, dst: BinaryIO, parts: _Parts) -> DeidResult:
    """The bytes path on the header and trailer with :data:`STAND_IN` for the pixel value,
    then the output written: the encoded header, the pixel data, the encoded trailer."""
    from deid.engine import read_dataset

    value = located.value
    element = located.element[:-4] + struct.pack("<L", len(STAND_IN))
    ds = read_dataset(located.head + element + STAND_IN + located.trailer)
    held = stored(ds, _PIXEL_DATA)
    if value.encapsulated and isinstance(held, RawDataElement):
        ds[_PIXEL_DATA] = held._replace(length=_UNDEFINED)
    stage = _PixelStage(engine, value, parts)
    result = engine._run(ds, pixel_stage=stage)
    out = result.data
    at = out.rfind(STAND_IN)
    if at < 0:
        written: Iterable[bytes] = [out]  # the policy removed the pixel data
    else:
        end = at + len(STAND_IN)
        if engine.verify and len(out) - end > _MAX_TRAILER:
            raise _WholeObjectError()  # the bytes path searches the pixel data too
        stand_in = _UNDEFINED if value.encapsulated else len(STAND_IN)
        if out[at - 4 : at] != struct.pack("<L", stand_in):
            raise _WholeObjectError()  # not the element the stand-in was written for
        pixels = stage.output()
        written = itertools.chain([out[: at - 4], pixels.length_field], pixels.chunks, [out[end:]])
    _write(dst, written)
    return _streamed_result(result)


_PIXEL_DATA = 0x7FE00010


@dataclass
class _Output:
    """The pixel data value to write: its length field as encoded, and its bytes."""

    length_field: bytes
    chunks: Iterable[bytes]


class _PixelStage:
    """The pixel stage of a streamed object, in place of the engine's
    :func:`deid.burnedin.run_pixel_pass` on the whole data set: the same decision, and the
    same pass run frame by frame from the located value (:class:`StreamedClean`)."""

    def __init__(self, engine: Deidentifier, value: PixelValue, parts: _Parts) -> None:
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
                raise _WholeObjectError()
            ds[_PIXEL_DATA] = held._replace(VR="OB")  # as write_frames sets it
        return outcome

    def output(self) -> _Output:
        """The value as it leaves: cleaned frames, or copied as it came in."""
        value = self._value
        pieces = self._cleaner.pieces if self._cleaner is not None else None
        if pieces is None:
            length = _UNDEFINED if value.encapsulated else value.length
            return _Output(struct.pack("<L", length), value.chunks())
        size = sum(piece[2] for piece in pieces)
        length = _UNDEFINED if value.encapsulated else size
        return _Output(struct.pack("<L", length), pieces_chunks(pieces))
