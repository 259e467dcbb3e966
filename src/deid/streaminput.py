"""Reading a streamed object (:mod:`deid.stream`): its header as it arrives, then where its
pixel data value lies, without loading it.

:class:`Input` feeds ``src`` to pydicom while the header is read: every byte is kept (pydicom
seeks back), counted against ``Limits.max_bytes``, and watched for items of undefined length
nested deeper than :func:`deid.engine.read_dataset` allows. :func:`locate` then checks what
the header claims (:meth:`deid.limits.Limits.check_header`, the Pixel Data element's length)
and finds the value: by its length or its item headers in a seekable ``src``, or by copying
it into an anonymous temporary file from a non-seekable one; then reads the trailer. Where
frame-at-a-time does not apply it raises :class:`WholeObjectError` and :class:`Parts` gives
the whole input back for the bytes path.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from pydicom import dcmread
from pydicom.uid import UID

from deid.codes import RejectReason
from deid.errors import RejectedError
from deid.pixels.streamed import NotStreamableError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from deid.engine import Deidentifier
    from deid.limits import Limits
    from deid.pixels.streamed import StreamedClean

#: Bytes copied at a time (pixel data).
CHUNK = 1 << 18
#: Bytes read ahead at a time while the header is read.
HEADER_CHUNK = 1 << 16
#: The most asked of a source in one read call.
MAX_READ = 1 << 20
#: The stand-in for the pixel data value while the header goes through the pipeline: 64 bytes
#: (verification leaves a pixel value of 64 bytes or more out of its byte search) that no
#: identifier can match (no ASCII, and no UTF-8 lead byte).
STAND_IN = bytes(range(0x80, 0xC0))
UNDEFINED = 0xFFFFFFFF
_PIXEL_TAG = b"\xe0\x7f\x10\x00"
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"
_ITEM_OPEN = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_CLOSE = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"


class WholeObjectError(NotStreamableError):
    """This object takes the whole-object path (raised and caught inside deid.stream)."""


def read_error(exc: OSError) -> RejectedError:
    return RejectedError(RejectReason.NOT_DICOM, f"cannot read input ({type(exc).__name__})")


class Input(io.RawIOBase):
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
            # Never ask ``src`` for what a header claims: a buffered one-way source allocates
            # the size asked for before it reads (a 4 GiB length claim, a MemoryError).
            want = min(max(need, HEADER_CHUNK), self.limit + 1 - len(self.buffer), MAX_READ)
            try:
                chunk = self.src.read(want)
            except OSError as exc:
                raise read_error(exc) from None
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
                want = min(max(size - len(self.pending), CHUNK), room, MAX_READ)
                chunk = self._src.read(max(want, 1))
            except OSError as exc:
                raise read_error(exc) from None
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
            raise read_error(exc) from None
        if len(data) != size:
            raise RejectedError(RejectReason.TRUNCATED, "the pixel data ends early")
        return data


@dataclass
class Located:
    """The input in parts: ``head`` (up to the pixel element), the element's header bytes,
    the value, its sequence delimiter (encapsulated) and the trailer."""

    head: bytes
    element: bytes
    value: PixelValue
    delimiter: bytes
    trailer: bytes


class Parts:
    """What one call has read, for the whole-object path should it be needed."""

    def __init__(self, src: BinaryIO, base: int | None, limits: Limits) -> None:
        self.src = src
        self.base = base
        self.limits = limits
        self.reader = Input(src, limits.max_bytes)
        self.head = b""
        self.element = b""
        self.tail: _Tail | None = None
        self.spool: BinaryIO | None = None
        self.located: Located | None = None
        self.cleaners: list[StreamedClean] = []

    def original(self) -> bytes:
        """The whole input, read again or put back together (within ``max_bytes``)."""
        if self.base is not None:
            try:
                self.src.seek(self.base)
            except OSError as exc:
                raise read_error(exc) from None
            return Input(self.src, self.reader.limit).read_rest()
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
                raise read_error(exc) from None
        return self.head + self.element + spooled + self.tail.rest()


def tell(stream: BinaryIO) -> int | None:
    """Where a seekable ``stream`` stands now (``None``: not seekable)."""
    try:
        if not stream.seekable():
            return None
        return stream.tell()
    except (OSError, AttributeError, ValueError):
        return None


def locate(engine: Deidentifier, parts: Parts) -> Located | None:
    """Read the header, check what it claims, find the pixel data value and read the trailer.

    ``None``: the object has no top-level Pixel Data (all of it has then been read).
    Raises :class:`WholeObjectError` where frame-at-a-time does not apply.
    """
    reader = parts.reader
    try:
        header = dcmread(reader, stop_before_pixels=True)
    except RejectedError:
        raise
    except Exception:
        raise WholeObjectError() from None  # the bytes path says what is wrong with it
    at = reader.tell()
    reader.fill(at + 12)
    if reader.eof and at >= len(reader.buffer):
        return None
    implicit, little = header.original_encoding
    syntax = _syntax(header)
    if not little or syntax is None or bytes(reader.buffer[at : at + 4]) != _PIXEL_TAG:
        raise WholeObjectError()
    encapsulated = bool(UID(syntax).is_encapsulated)
    size = 8 if implicit else 12
    if len(reader.buffer) < at + size:
        raise WholeObjectError()  # ends inside the element header
    vr = "" if implicit else bytes(reader.buffer[at + 4 : at + 6]).decode("latin-1")
    (length,) = struct.unpack_from("<L", reader.buffer, at + size - 4)
    if vr not in ("", "OB", "OW") or encapsulated != (length == UNDEFINED):
        raise WholeObjectError()
    if (implicit and encapsulated) or (not encapsulated and length % 2):
        raise WholeObjectError()
    parts.limits.check_header(header)  # before a byte of pixel data is read
    if not encapsulated:
        parts.limits.check_size(at + size + length)
    parts.head = bytes(reader.buffer[:at])
    parts.element = bytes(reader.buffer[at : at + size])
    if parts.base is not None:
        value, delimiter, trailer = _in_source(parts, at + size, length)
    else:
        value, delimiter, trailer = _spooled(parts, at + size, length)
    value.vr = vr
    parts.located = Located(parts.head, parts.element, value, delimiter, trailer)
    if value.length < len(STAND_IN):
        raise WholeObjectError()  # the bytes path searches a value this small: no stand-in
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


def _in_source(parts: Parts, offset: int, length: int) -> tuple[PixelValue, bytes, bytes]:
    """The value in a seekable ``src``, found by its length (native) or by reading only its
    item headers (encapsulated); then the trailer, read to the end."""
    src, limit = parts.src, parts.reader.limit
    assert parts.base is not None
    start = parts.base + offset
    value = PixelValue(src, start, encapsulated=length == UNDEFINED)
    delimiter = b""
    try:
        if length != UNDEFINED:
            value.length = length
        else:
            position = start
            while True:
                src.seek(position)
                head = src.read(8)
                if len(head) < 8:
                    raise WholeObjectError()  # pydicom scans for a delimiter: the bytes path
                (size,) = struct.unpack("<L", head[4:])
                if head[:4] == _SEQUENCE_DELIMITER:
                    value.length = position - start
                    delimiter = head
                    break
                if head[:4] != _ITEM or size == UNDEFINED:
                    raise WholeObjectError()
                value.items.append((position + 8 - start, size))
                position += 8 + size
                if offset + position - start > limit:
                    total = offset + position - start
                    raise RejectedError(RejectReason.SIZE_LIMIT, f"{total} bytes (limit {limit})")
        end = start + value.length + len(delimiter)
        if src.seek(0, os.SEEK_END) < end:
            raise WholeObjectError()  # ends inside the pixel data: the bytes path says how
        src.seek(end)
        tail = _Tail(src, b"", end - parts.base, limit)
        return value, delimiter, tail.rest()
    except OSError as exc:
        raise read_error(exc) from None


def _spooled(parts: Parts, offset: int, length: int) -> tuple[PixelValue, bytes, bytes]:
    """The value of a non-seekable ``src``, copied into an anonymous temporary file (no name
    on disk, removed when the call ends) as it is read; then the trailer."""
    reader = parts.reader
    tail = _Tail(parts.src, bytes(reader.buffer[offset:]), offset, reader.limit)
    parts.tail = tail
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by deidentify_stream)
    parts.spool = spool
    value = PixelValue(spool, 0, encapsulated=length == UNDEFINED)
    delimiter = b""
    try:
        if length != UNDEFINED:
            left = length
            while left:
                data = tail.take(min(left, CHUNK))
                if not data:
                    raise WholeObjectError()  # ends inside the pixel data: the bytes path
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
                    raise WholeObjectError()
                (size,) = struct.unpack("<L", head[4:])
                if head[:4] != _ITEM or size == UNDEFINED:
                    raise WholeObjectError()
                value.items.append((spool.tell(), size))
                left = size
                while left:
                    data = tail.take(min(left, CHUNK))
                    if not data:
                        raise WholeObjectError()
                    spool.write(data)
                    left -= len(data)
        spool.flush()
    except OSError as exc:
        raise RejectedError(
            RejectReason.WRITE_FAILED, f"cannot spool the pixel data ({type(exc).__name__})"
        ) from None
    return value, delimiter, tail.rest()


# -- the pipeline and the output ----------------------------------------------------------
