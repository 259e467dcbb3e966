"""The pixel pass of a streamed object, a frame at a time (used by :mod:`deid.stream`).

:class:`StreamedClean` does what :func:`deid.pixels.clean.clean_pixels` does with the engine's
settings (icons removed, overlay planes cleaned, every frame scanned by the same
:class:`~deid.pixels.clean.FrameScan`, changed frames written back by the rules of
:func:`~deid.pixels.encode.write_frames` and :class:`~deid.pixels.encode.FrameCoder`, blanked
frames read again by :func:`~deid.pixels.clean.verify_frames`), the frames read one at a time
from the pixel data value where the stream located it; ``ds.PixelData`` holds a stand-in.

Two passes over the value, as the bytes path makes two over ``ds.PixelData``: the scan, then,
only when a frame changes, the writing into an anonymous temporary file. Memory holds a frame
or two. Encapsulated frames are taken where pydicom's two frame readers (the decoders' and
the writer's) agree on them: an Extended Offset Table or a Basic Offset Table that point at
item starts, one fragment per frame, or a single frame; anything else, and native data of
Bits Allocated 1 (frames that share bytes), raises :class:`NotStreamableError` and the caller
reads the object whole.
"""

from __future__ import annotations

import itertools
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from deid.errors import DeidError, PixelError
from deid.pixels.clean import ROUNDS, FrameScan, PixelReport, blanked, clean_overlays
from deid.pixels.encode import (
    EncodeResult,
    FrameCoder,
    copy_decoding_elements,
    encapsulate_fragments,
    native_frame_bytes,
)
from deid.pixels.frames import (
    PixelLayout,
    codestream_precision,
    decode_encapsulated,
    decoder_for,
    has_pixels,
    native_frame_from_bytes,
    read_layout,
)
from deid.pixels.icons import remove_icons

if TYPE_CHECKING:
    import numpy.typing as npt
    from pydicom.dataset import Dataset

    from deid.ocr import OcrEngine
    from deid.pixels.clean import Prescreen, Select
    from deid.pixels.regions import Candidates

#: Bytes copied at a time.
CHUNK = 1 << 18
_MAX_OFFSET = 0xFFFFFFFF


class NotStreamableError(DeidError):
    """This object's pixel data cannot be taken a frame at a time: read it whole instead."""


class ValueReader(Protocol):
    """A located pixel data value: its length, its items (encapsulated: (offset, length) of
    each item's value, the Basic Offset Table first) and random reads."""

    length: int
    encapsulated: bool
    items: list[tuple[int, int]]

    def read(self, offset: int, size: int) -> bytes: ...


#: One run of the new value: read(offset, size), offset, size.
Piece = tuple[Callable[[int, int], bytes], int, int]


def pieces_chunks(pieces: Sequence[Piece]) -> Iterator[bytes]:
    """The bytes of ``pieces`` in order, :data:`CHUNK` at a time."""
    for read, offset, size in pieces:
        done = 0
        while done < size:
            step = min(CHUNK, size - done)
            yield read(offset + done, step)
            done += step


class _Window:
    """The value as the file-like buffer pydicom's encapsulation readers take."""

    def __init__(self, value: ValueReader) -> None:
        self._value = value
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._value.length)[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self._value.length if size < 0 else min(self._pos + size, self._value.length)
        if end <= self._pos:
            return b""
        data = self._value.read(self._pos, end - self._pos)
        self._pos = end
        return data


class _Spool:
    """An anonymous temporary file (no name on disk) holding written frames."""

    def __init__(self) -> None:
        self.file: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    def append(self, data: bytes) -> int:
        """Write ``data`` at the end; where it starts."""
        self.file.seek(0, 2)
        at = self.file.tell()
        self.file.write(data)
        return at

    def read(self, offset: int, size: int) -> bytes:
        self.file.seek(offset)
        data = self.file.read(size)
        if len(data) != size:
            raise PixelError("the written pixel data cannot be read back")
        return data

    def close(self) -> None:
        self.file.close()


class StreamedClean:
    """:func:`deid.pixels.clean.clean_pixels` for a streamed object (call it in its place).

    After the call, ``pieces`` is ``None`` when the pixel data is left as it came in, else the
    new value's runs in order (from the source value and the spool); ``encapsulated_output``
    says the new value is encapsulated (undefined length, VR OB). :meth:`close` removes the
    spool.
    """

    def __init__(self, value: ValueReader) -> None:
        self.value = value
        self.pieces: list[Piece] | None = None
        self._spool: _Spool | None = None

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __call__(
        self,
        ds: Dataset,
        engine: OcrEngine,
        *,
        select: Select | None = None,
        pad: int = 2,
        prescreen: Prescreen | None = None,
        lossless: bool = False,
        candidates: Candidates | None = None,
    ) -> PixelReport:
        if pad < 0:
            raise ValueError("pad must be zero or positive")
        icons_removed = remove_icons(ds)
        overlay_done = clean_overlays(ds, engine, select, pad, True)
        if not has_pixels(ds):
            return PixelReport(
                overlays_blanked=overlay_done, icons_removed=icons_removed, verified=True
            )
        layout = read_layout(ds)
        scan = FrameScan(
            ds,
            layout,
            engine,
            select=select,
            pad=pad,
            prescreen=prescreen,
            rounds=ROUNDS,
            lossless=lossless,
            candidates=candidates,
        )
        frames = _Frames(self.value, ds, layout)
        for index, decoded, hidden in frames.scan():
            scan.add(index, decoded, hidden)
        if not scan.areas:
            result = EncodeResult(
                layout.transfer_syntax,
                layout.transfer_syntax,
                photometric_interpretation=layout.decoded_photometric,
            )
            read: Callable[[int], npt.NDArray[Any]] | None = None
        else:
            self._spool = _Spool()
            if layout.encapsulated:
                result, read = self._write_encapsulated(ds, frames, scan, lossless)
            else:
                result, read = self._write_native(frames, scan)
        if scan.boxed():
            assert read is not None
            scan.verify(read)
        return scan.report(
            overlays_blanked=overlay_done,
            icons_removed=icons_removed,
            encode=result,
            verified=True,
            notes=result.notes,
        )

    def _write_native(
        self, frames: _Frames, scan: FrameScan
    ) -> tuple[EncodeResult, Callable[[int], npt.NDArray[Any]]]:
        """:func:`deid.pixels.encode.write_frames` for native data: changed frames into the
        spool, read back and compared; the rest of the value copied as it came in."""
        import numpy as np

        spool, layout, value = self._spool, frames.layout, self.value
        assert spool is not None
        size = frames.frame_size
        at: dict[int, int] = {}
        for index in sorted(scan.areas):
            frame = blanked(frames.native(index), layout, scan.areas[index], scan.fill)
            data = native_frame_bytes(frame, layout)
            got = native_frame_from_bytes(data, layout, 0)
            if not np.array_equal(got, np.asarray(frame).astype(got.dtype)):
                raise PixelError(f"frame {index} did not read back as written")
            at[index] = spool.append(data)
        pieces: list[Piece] = []
        for index in range(layout.number_of_frames):
            if index in at:
                pieces.append((spool.read, at[index], size))
            elif pieces and pieces[-1][0] == value.read:
                read, offset, length = pieces[-1]
                pieces[-1] = (read, offset, length + size)
            else:
                pieces.append((value.read, index * size, size))
        rest = value.length - layout.number_of_frames * size
        if rest:
            pieces.append((value.read, layout.number_of_frames * size, rest))
        self.pieces = pieces
        result = EncodeResult(
            layout.transfer_syntax,
            layout.transfer_syntax,
            frames_encoded=tuple(sorted(scan.areas)),
            photometric_interpretation=layout.photometric_interpretation,
        )

        def read_written(index: int) -> npt.NDArray[Any]:
            return native_frame_from_bytes(spool.read(at[index], size), layout, 0)

        return result, read_written

    def _write_encapsulated(
        self, ds: Dataset, frames: _Frames, scan: FrameScan, lossless: bool
    ) -> tuple[EncodeResult, Callable[[int], npt.NDArray[Any]]]:
        """:func:`deid.pixels.encode.write_frames` for encapsulated data, a frame at a time:
        the new value (Basic Offset Table, then every frame's items) goes to the spool."""
        spool, layout = self._spool, frames.layout
        assert spool is not None
        if frames.count != layout.number_of_frames:
            raise PixelError("(0028,0008) NumberOfFrames does not match the encapsulated frames")
        every = frames.fragmented()
        first = next(every)
        coder = FrameCoder(layout, lossless, b"".join(first), True)
        table = struct.pack("<HHI", 0xFFFE, 0xE000, 4 * frames.count)
        spool.append(table + bytes(4 * frames.count))
        offsets: list[int] = []
        position = 0
        coded: dict[int, tuple[int, int]] = {}
        for index, fragments in enumerate(itertools.chain([first], every)):
            offsets.append(position)
            if coder.same and index not in scan.areas:
                out: tuple[bytes, ...] = fragments
            else:
                frame = frames.decode(fragments, index)
                if index in scan.areas:
                    frame = blanked(frame, layout, scan.areas[index], scan.fill)
                like = b"".join(fragments)
                data = coder.encode(ds, index, frame, like, scan.areas.get(index, ()))
                out = (data,)
            for fragment in out:
                padded = fragment + (b"\x00" if len(fragment) % 2 else b"")
                start = spool.append(struct.pack("<HHI", 0xFFFE, 0xE000, len(padded)) + padded)
                if len(out) == 1:
                    coded[index] = (start + 8, len(padded))
                position += 8 + len(padded)
        if position > _MAX_OFFSET:
            raise PixelError("the re-encoded Pixel Data is too large for a Basic Offset Table")
        spool.file.seek(8)
        spool.file.write(struct.pack(f"<{len(offsets)}I", *offsets))
        total = 8 + 4 * frames.count + position
        self.pieces = [(spool.read, 0, total)]
        result = coder.finish(ds)
        written = read_layout(ds)
        decoder = decoder_for(written)

        def read_written(index: int) -> npt.NDArray[Any]:
            offset, length = coded[index]
            view = frame_view(ds, written.transfer_syntax, spool.read(offset, length))
            return decode_encapsulated(decoder, view, written, 0, label=index)

        return result, read_written


def frame_view(ds: Dataset, syntax: str, data: bytes) -> Dataset:
    """A data set holding one encapsulated frame (``data``) with a copy of ``ds``'s Image
    Pixel module, for a decoder (``ds`` is left as it was)."""
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    view = DicomDataset()
    copy_decoding_elements(ds, view)
    view.NumberOfFrames = 1
    view.PixelData = encapsulate_fragments([(data,)])
    view["PixelData"].VR = "OB"
    view["PixelData"].is_undefined_length = True
    view.file_meta = FileMetaDataset()
    view.file_meta.TransferSyntaxUID = UID(syntax)
    return view


class _Frames:
    """The frames of a located value, as the bytes path would read them from the data set."""

    def __init__(self, value: ValueReader, ds: Dataset, layout: PixelLayout) -> None:
        self.value = value
        self.ds = ds
        self.layout = layout
        self.frame_size = layout.native_frame_bits // 8
        if layout.encapsulated:
            self.extended = _extended(ds)
            count = _frame_count(value, self.extended, layout.number_of_frames)
            if count is None:
                raise NotStreamableError("frames not found where pydicom's readers agree")
            self.count = count
            self.decoder = decoder_for(layout)
        else:
            if layout.bits_allocated == 1:
                raise NotStreamableError("bit-packed frames share bytes")
            needed = (layout.native_frame_bits * layout.number_of_frames + 7) // 8
            if value.length < needed:
                raise PixelError(
                    "(7FE0,0010) PixelData is shorter than the Image Pixel module needs"
                )
            self.count = layout.number_of_frames

    def native(self, index: int) -> npt.NDArray[Any]:
        size = self.frame_size
        return native_frame_from_bytes(self.value.read(index * size, size), self.layout, 0)

    def fragmented(self) -> Iterator[tuple[bytes, ...]]:
        """Each frame's fragments, read one frame at a time."""
        from pydicom.encaps import generate_fragmented_frames

        frames = generate_fragmented_frames(
            _Window(self.value),
            number_of_frames=self.layout.number_of_frames,
            extended_offsets=self.extended,
        )
        while True:
            try:
                fragments = next(frames)
            except StopIteration:
                return
            except DeidError:
                raise
            except Exception as exc:
                raise PixelError("the encapsulated Pixel Data cannot be parsed") from exc
            yield fragments

    def decode(self, fragments: tuple[bytes, ...], index: int) -> npt.NDArray[Any]:
        view = frame_view(self.ds, self.layout.transfer_syntax, b"".join(fragments))
        return decode_encapsulated(self.decoder, view, self.layout, 0, label=index)

    def scan(self) -> Iterator[tuple[int, npt.NDArray[Any], bool]]:
        """(index, stored values, hidden bits) of every frame the header counts."""
        layout = self.layout
        if not layout.encapsulated:
            for index in range(layout.number_of_frames):
                yield index, self.native(index), False
            return
        every = self.fragmented()
        name = _syntax_name(layout.transfer_syntax)
        for index in range(layout.number_of_frames):
            fragments = next(every, None)
            if fragments is None:
                raise PixelError(f"frame {index} cannot be decoded from {name}")
            hidden = False
            if layout.bits_stored < layout.bits_allocated:
                precision = codestream_precision(b"".join(fragments)[:4096])
                hidden = precision is not None and precision > layout.bits_stored
            yield index, self.decode(fragments, index), hidden


def _syntax_name(syntax: str) -> str:
    from pydicom.uid import UID

    return str(UID(syntax).name)


def _extended(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return None


def _frame_count(
    value: ValueReader, extended: tuple[bytes, bytes] | None, number_of_frames: int
) -> int | None:
    """How many frames the value holds, where the frames are found the same way by
    :func:`pydicom.encaps.get_frame` (decoding) and :func:`generate_fragmented_frames`
    (writing, hidden bits); ``None`` where they might not be."""
    items = value.items
    if len(items) < 2:
        return None
    fragments = items[1:]
    first = fragments[0][0]
    starts = {offset - first: length for offset, length in fragments}
    table_offset, table_length = items[0]
    table: list[int] = []
    if table_length:
        if table_length % 4:
            return None
        raw = value.read(table_offset, table_length)
        table = list(struct.unpack(f"<{table_length // 4}L", raw))
        if table[0] != 0 or any(b <= a for a, b in itertools.pairwise(table)):
            return None
        if any(offset not in starts for offset in table):
            return None
    if extended is not None:
        offsets, lengths = (_unpack_q(extended[0]), _unpack_q(extended[1]))
        if offsets is None or lengths is None or len(offsets) != len(lengths):
            return None
        if len(offsets) != len(fragments) or (table and table != offsets):
            return None
        if any(starts.get(o) != n for o, n in zip(offsets, lengths, strict=True)):
            return None
        return len(offsets)
    if table:
        return len(table)
    if len(fragments) == 1 or number_of_frames == 1:
        return 1
    if len(fragments) == number_of_frames:
        return number_of_frames
    return None


def _unpack_q(data: object) -> list[int] | None:
    if not isinstance(data, bytes) or len(data) % 8:
        return None
    return list(struct.unpack(f"<{len(data) // 8}Q", data))
