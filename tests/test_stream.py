"""deidentify_stream: byte-identical to deidentify_bytes, fail closed, limits before reading,
memory bounded by a frame or so, not by the object."""

from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    MRImageStorage,
    RLELossless,
)

from deid import Deidentifier, DeidResult, Policy, RejectedError, RejectReason, load_policy
from deid.codes import PixelMode
from deid.limits import Limits
from deid.ocr import StaticOcr, TextBox
from tests.conftest import KEY
from tests.factories import PATIENT_NAME, make_dataset, to_bytes
from tests.test_pixels_support import Spec, build

CT_IMAGE = {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}
US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"


class OneWay(io.RawIOBase):
    """A non-seekable source (a socket, a pipe): read() only, a few bytes short at times."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.read_total = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 7:
            size -= 3  # short reads, as a socket gives
        chunk = self._data.read(size)
        self.read_total += len(chunk)
        return chunk


class Counting(io.BytesIO):
    """A seekable source that counts the bytes read from it."""

    read_total = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_total += len(chunk)
        return chunk


def boxes_where_bright(image: np.ndarray) -> list[TextBox]:
    """OCR stand-in: a box on the upper left quarter of any frame bright there."""
    rows, columns = image.shape[:2]
    box = TextBox(columns // 8, rows // 8, max(1, columns // 4), max(1, rows // 8), 0.9)
    area = image[box.top : box.bottom, box.left : box.right]
    return [box] if area.size and int(area.max()) > 128 else []


def always_policy() -> Policy:
    base = load_policy("upload")
    return Policy(
        options=base.options,
        overrides=base.overrides,
        name="upload-always",
        clean_pixel_data=PixelMode.ALWAYS,
        pixels=base.pixels,
    )


ENGINES: dict[str, Callable[[], Deidentifier]] = {
    "no-text": lambda: Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False),
    "text": lambda: Deidentifier(
        "upload", KEY, ocr=StaticOcr(func=boxes_where_bright), prescreen=False
    ),
    "always": lambda: Deidentifier(
        always_policy(), KEY, ocr=StaticOcr(func=boxes_where_bright), prescreen=False
    ),
    "unverified": lambda: Deidentifier(
        "upload", KEY, ocr=StaticOcr(func=boxes_where_bright), prescreen=False, verify=False
    ),
}


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except RejectedError as error:
        return "rejected", str(error)


def assert_streams_like_bytes(engine: Deidentifier, data: bytes) -> None:
    """Streamed (from a seekable and a non-seekable source) == the bytes path, byte for
    byte, audit for audit; or the same rejection, with nothing written."""
    kind, expected = outcome(lambda: engine.deidentify_bytes(data))
    for source in (io.BytesIO(data), OneWay(data)):
        out = io.BytesIO()
        got_kind, got = outcome(lambda: engine.deidentify_stream(source, out))  # noqa: B023
        assert got_kind == kind
        if kind == "rejected":
            assert got == expected
            assert out.getvalue() == b""
            continue
        assert out.getvalue() == expected.data
        assert got.data == b""
        assert got.audit == expected.audit
        assert got.plan == expected.plan
        assert "PixelData" not in got.dataset


# -- synthetic objects ------------------------------------------------------------------------


def ct_frames(frames: int, rows: int = 32, columns: int = 32, **keywords: Any) -> Dataset:
    """A multi-frame CT object (no pixel pass under auto), values 0..4095 with a bright block
    in the upper left of every other frame."""
    ds = make_dataset(pixels=True, **{**CT_IMAGE, **keywords})
    ds.Rows, ds.Columns = rows, columns
    values = (np.arange(frames * rows * columns) % 4096).astype("<u2")
    values = values.reshape(frames, rows, columns)
    values[::2, rows // 8 : rows // 4, columns // 8 : columns // 4 + columns // 8] = 4000
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = values.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def us_frames(frames: int, syntax: str | None = None, table: str = "basic") -> Dataset:
    """A multi-frame 8-bit ultrasound object (pixel pass under auto), native or encapsulated
    (``table``: basic, empty or extended offset table)."""
    ds = make_dataset(US_STORAGE, pixels=True, Modality="US")
    ds.Rows, ds.Columns = 24, 40
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.NumberOfFrames = frames
    values = (np.arange(frames * 24 * 40) % 120).astype(np.uint8).reshape(frames, 24, 40)
    values[0::2, 3:6, 5:15] = 0  # where the OCR stand-in looks: dark in even frames,
    values[1::2, 3:6, 5:15] = 250  # bright in odd ones
    if syntax is None:
        ds.PixelData = values.tobytes()
        return ds
    encoder = get_encoder(syntax)
    coded = [
        encoder.encode(
            values[index],
            rows=24,
            columns=40,
            samples_per_pixel=1,
            bits_allocated=8,
            bits_stored=8,
            pixel_representation=0,
            photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )
        for index in range(frames)
    ]
    if table == "extended":
        data, offsets, lengths = encapsulate_extended(coded)
        ds.ExtendedOffsetTable = offsets
        ds.ExtendedOffsetTableLengths = lengths
    else:
        data = encapsulate(coded, has_bot=table == "basic")
    ds.PixelData = data
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def with_syntax(ds: Dataset, syntax: str) -> Dataset:
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def trailing(ds: Dataset, padding: int) -> Dataset:
    """Elements after the pixel data: a private block and Data Set Trailing Padding."""
    block = ds.private_block(0x7FE1, "ACME PADDING", create=True)
    block.add_new(0x01, "LO", PATIENT_NAME)
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * padding)
    return ds


def kept_padding() -> Deidentifier:
    """A policy that keeps Data Set Trailing Padding after the pixel data."""
    base = load_policy("upload")
    policy = Policy(
        options=base.options,
        overrides={**base.overrides, 0xFFFCFFFC: "K"},  # type: ignore[dict-item]
        name="keep-padding",
        pixels=base.pixels,
    )
    return Deidentifier(policy, KEY, ocr=StaticOcr(), prescreen=False)


SYNTHETIC: dict[str, Callable[[], Dataset]] = {
    "ct-single": lambda: ct_frames(1),
    "ct-multi-frame": lambda: ct_frames(12),
    "ct-implicit": lambda: with_syntax(ct_frames(5), ImplicitVRLittleEndian),
    "mr-implicit": lambda: with_syntax(
        ct_frames(3, sop_class=MRImageStorage, Modality="MR"), ImplicitVRLittleEndian
    ),
    "ct-big-endian": lambda: with_syntax(ct_frames(3), ExplicitVRBigEndian),
    "ct-deflated": lambda: with_syntax(ct_frames(3), DeflatedExplicitVRLittleEndian),
    "ct-trailing": lambda: trailing(ct_frames(4), 32),
    "us-native": lambda: us_frames(6),
    "us-native-trailing": lambda: trailing(us_frames(4), 4),
    "us-rle-basic-table": lambda: us_frames(6, RLELossless),
    "us-rle-empty-table": lambda: us_frames(6, RLELossless, "empty"),
    "us-rle-extended-table": lambda: us_frames(5, RLELossless, "extended"),
    "us-jpeg-ls": lambda: us_frames(4, JPEGLSLossless),
    "sc-rgb-rle": lambda: build(Spec("RGB", 8, frames=3, syntax=RLELossless))[0],
    "sc-mono-12-bit": lambda: build(Spec("MONOCHROME2", 12, frames=3))[0],
    "sc-ybr-422": lambda: build(Spec("YBR_FULL_422", 8, frames=2))[0],
    "sc-signed-rle": lambda: build(Spec("MONOCHROME2", 12, signed=True, syntax=RLELossless))[0],
}


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_streamed_output_is_byte_identical_to_the_bytes_path(name: str, engine_name: str) -> None:
    assert_streams_like_bytes(ENGINES[engine_name](), to_bytes(SYNTHETIC[name]()))


def test_the_pixel_pass_blanks_frames_as_they_pass() -> None:
    """The streamed pixel pass changes exactly the frames the bytes path changes."""
    engine = ENGINES["text"]()
    data = to_bytes(us_frames(6, RLELossless))
    out = io.BytesIO()
    result = engine.deidentify_stream(OneWay(data), out)
    assert result.audit.pixels is not None
    assert [box[0] for box in result.audit.pixels["boxes"]] == [1, 3, 5]
    assert out.getvalue() == engine.deidentify_bytes(data).data


@pytest.mark.parametrize("padding", [4, 32])
def test_kept_trailing_elements_leave_as_the_bytes_path_writes_them(padding: int) -> None:
    """Up to 16 bytes after the pixel data streamed; more: the whole-object path (the bytes
    path then searches the pixel data too). Output identical either way."""
    assert_streams_like_bytes(kept_padding(), to_bytes(trailing(ct_frames(4), padding)))


@pytest.mark.corpus
@pytest.mark.parametrize("engine_name", ["no-text", "text"])
def test_every_corpus_file_streams_like_the_bytes_path(corpus: Path, engine_name: str) -> None:
    engine = ENGINES[engine_name]()
    files = [
        path
        for path in sorted(corpus.rglob("*"))
        if path.is_file() and path.suffix not in (".json", ".md", ".txt", ".zip")
    ]
    assert len(files) > 100
    for path in files:
        assert_streams_like_bytes(engine, path.read_bytes())


# -- fail closed ------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")  # pydicom's, on RLE
@pytest.mark.parametrize("make_source", [io.BytesIO, OneWay], ids=["seekable", "one-way"])
@pytest.mark.parametrize(
    "name", ["ct-multi-frame", "us-native", "us-rle-basic-table", "us-rle-empty-table"]
)
def test_a_source_truncated_mid_frame_is_rejected_and_dst_left_as_it_was(
    name: str, make_source: Callable[[bytes], Any]
) -> None:
    data = to_bytes(SYNTHETIC[name]())
    cut = data[: len(data) - 700]  # inside the last frames
    engine = ENGINES["text"]()
    with pytest.raises(RejectedError) as bytes_error:
        engine.deidentify_bytes(cut)
    dst = io.BytesIO(b"earlier output")
    dst.seek(0, io.SEEK_END)
    with pytest.raises(RejectedError) as info:
        engine.deidentify_stream(make_source(cut), dst)
    assert info.value.reason is bytes_error.value.reason is RejectReason.TRUNCATED
    assert str(info.value) == str(bytes_error.value)
    assert dst.getvalue() == b"earlier output"


class Shrinking(io.BytesIO):
    """A file cut short by someone else after deid checked its length (read to the end)."""

    def __init__(self, data: bytes, cut: int) -> None:
        super().__init__(data)
        self._cut = cut
        self._ends = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk and size:
            self._ends += 1
            self.truncate(self._cut)  # the trailer was read: now the file shrinks
        return chunk


@pytest.mark.parametrize("pixel_pass", [False, True])
def test_a_source_that_shrinks_while_copied_leaves_dst_as_it_was(pixel_pass: bool) -> None:
    data = to_bytes(ct_frames(40, 64, 64))
    dst = io.BytesIO(b"earlier output")
    dst.seek(0, io.SEEK_END)
    engine = ENGINES["always" if pixel_pass else "no-text"]()
    with pytest.raises(RejectedError) as info:
        engine.deidentify_stream(Shrinking(data, len(data) - 100_000), dst)
    assert info.value.reason is RejectReason.TRUNCATED
    assert dst.getvalue() == b"earlier output"


class FailingWriter(io.BytesIO):
    """A destination that refuses writes past ``limit`` bytes."""

    def __init__(self, limit: int, seekable: bool = True) -> None:
        super().__init__()
        self._limit = limit
        self._seekable = seekable

    def seekable(self) -> bool:
        return self._seekable

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self._limit:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.parametrize("seekable", [True, False])
def test_a_failed_write_is_write_failed_and_a_seekable_dst_is_truncated(seekable: bool) -> None:
    data = to_bytes(ct_frames(40, 64, 64))
    dst = FailingWriter(100_000, seekable)
    with pytest.raises(RejectedError) as info:
        ENGINES["no-text"]().deidentify_stream(io.BytesIO(data), dst)
    assert info.value.reason is RejectReason.WRITE_FAILED
    assert str(info.value) == "WRITE_FAILED: cannot write output (OSError)"
    if seekable:
        assert dst.getvalue() == b""
    else:  # cannot be taken back: the caller discards it (documented)
        assert 0 < len(dst.getvalue()) <= 100_000


class Wandering:
    """OCR stand-in that finds one more box at each call, each one somewhere new: text is
    always found again outside what was blanked."""

    name = "wandering"
    recognizes = True

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> list[TextBox]:
        self.calls += 1
        return [TextBox((7 * self.calls) % 30, (5 * self.calls) % 18, 3, 3, 0.9)]


@pytest.mark.parametrize("syntax", [None, RLELossless], ids=["native", "rle"])
def test_a_frame_that_fails_cleaning_writes_nothing(syntax: str | None) -> None:
    """Text found again after blanking: rejected before a byte of the header is written."""
    data = to_bytes(us_frames(4, syntax))
    with pytest.raises(RejectedError) as expected:
        Deidentifier("upload", KEY, ocr=Wandering(), prescreen=False).deidentify_bytes(data)
    assert str(expected.value) == "RESIDUAL_PHI: 2 hit(s): pixel frame 1, pixel frame 3"
    for source in (io.BytesIO(data), OneWay(data)):
        engine = Deidentifier("upload", KEY, ocr=Wandering(), prescreen=False)
        dst = io.BytesIO(b"earlier output")
        dst.seek(0, io.SEEK_END)
        with pytest.raises(RejectedError) as info:
            engine.deidentify_stream(source, dst)
        assert str(info.value) == str(expected.value)
        assert dst.getvalue() == b"earlier output"


def test_the_spool_leaves_nothing_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-way source's pixel data and the cleaned frames go to anonymous temporary files:
    no name (so none with an identifier), nothing left after the call."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    data = to_bytes(us_frames(6, RLELossless))
    out = io.BytesIO()
    ENGINES["text"]().deidentify_stream(OneWay(data), out)
    with pytest.raises(RejectedError):
        ENGINES["text"]().deidentify_stream(OneWay(data[:-500]), io.BytesIO())
    assert list(spool.iterdir()) == []
    assert out.getvalue() == ENGINES["text"]().deidentify_bytes(data).data


# -- limits: rejected before anything big is read or allocated -------------------------------


def huge_claim(rows: int, columns: int, frames: int, length: int) -> bytes:
    """A small header that claims a huge image, its Pixel Data element claiming ``length``
    bytes and followed by only 64 of them."""
    ds = make_dataset(**CT_IMAGE)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    header = to_bytes(ds)
    return header + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, length) + b"\x00" * 64


@pytest.mark.parametrize(
    ("limits", "claim", "message"),
    [
        (Limits(), (65535, 65535, 1000), "4294836225000 pixel samples (limit 8589934592)"),
        (Limits(max_frames=100), (16, 16, 1000), "1000 frames (limit 100)"),
        (Limits(max_bytes=1 << 20), (16, 16, 1), "bytes (limit 1048576)"),
    ],
    ids=["pixels", "frames", "bytes"],
)
def test_limits_reject_what_the_header_claims_before_reading_pixel_data(
    limits: Limits, claim: tuple[int, int, int], message: str
) -> None:
    data = huge_claim(*claim, length=0xFFFFFFF0)
    engine = Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False, limits=limits)
    for source in (Counting(data), OneWay(data)):
        out = io.BytesIO()
        tracemalloc.start()
        try:
            with pytest.raises(RejectedError) as info:
                engine.deidentify_stream(source, out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert info.value.reason is RejectReason.SIZE_LIMIT
        assert str(info.value).endswith(message)
        assert source.read_total == len(data)  # the header (and the 64 bytes read with it)
        assert peak < 4 << 20
        assert out.getvalue() == b""


def test_items_nested_too_deep_are_refused_as_they_arrive() -> None:
    """Over 64 items of undefined length open at once: refused (as the bytes path refuses
    them) while the header is still being read."""
    opened = (
        b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff"
    ) * 70
    data = to_bytes(make_dataset(**CT_IMAGE))
    data += b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + opened + b"\x00" * (1 << 20)
    engine = ENGINES["no-text"]()
    with pytest.raises(RejectedError) as bytes_error:
        engine.deidentify_bytes(data)
    source = Counting(data)
    with pytest.raises(RejectedError) as info:
        engine.deidentify_stream(source, io.BytesIO())
    assert str(info.value) == str(bytes_error.value)
    assert info.value.reason is RejectReason.SIZE_LIMIT
    assert source.read_total <= 1 << 16


def test_a_stream_over_max_bytes_is_refused_one_byte_past_it() -> None:
    data = to_bytes(ct_frames(100, 64, 64))
    for source in (Counting(data), OneWay(data)):
        with pytest.raises(RejectedError) as info:
            Deidentifier("upload", KEY, limits=Limits(max_bytes=50_000)).deidentify_stream(
                source, io.BytesIO()
            )
        assert info.value.reason is RejectReason.SIZE_LIMIT
        assert source.read_total <= 50_001


# -- memory: one frame and the header, not the object ---------------------------------------


FRAME = 256 * 256 * 2  # bytes of one frame below


@pytest.mark.parametrize(
    ("engine_name", "bound"),
    [("no-text", 3 * FRAME + (1 << 20)), ("always", 3 * FRAME + (4 << 20))],
    ids=["copied", "pixel-pass"],
)
def test_peak_memory_stays_near_a_frame_not_the_object(
    tmp_path: Path, engine_name: str, bound: int
) -> None:
    """100 frames of 128 KiB (12.5 MiB of pixel data) from a file to a file: tracemalloc's
    peak stays under three frames and a little (the header's pipeline, the pixel pass's
    8-bit image and copies), where the bytes path holds the object several times over."""
    src, dst = tmp_path / "in.dcm", tmp_path / "out.dcm"
    src.write_bytes(to_bytes(ct_frames(100, 256, 256)))
    engine = ENGINES[engine_name]()
    with open(src, "rb") as warm_in:  # lazy tables and imports, before measuring
        engine.deidentify_stream(warm_in, io.BytesIO())
    with open(src, "rb") as source, open(dst, "wb") as target:
        tracemalloc.start()
        try:
            engine.deidentify_stream(source, target)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < bound
    assert 4 * peak < 100 * FRAME  # the pixel data is 100 frames
    assert dst.read_bytes() == engine.deidentify_bytes(src.read_bytes()).data


def test_result_of_a_stream() -> None:
    data = to_bytes(ct_frames(3))
    engine = ENGINES["no-text"]()
    out = io.BytesIO()
    result = engine.deidentify_stream(io.BytesIO(data), out)
    assert isinstance(result, DeidResult)
    assert result.data == b""
    assert "PixelData" not in result.dataset
    assert result.dataset.PatientIdentityRemoved == "YES"
    assert out.getvalue()[128:132] == b"DICM"


# -- fuzz findings (benchmarks/fuzz.py --api stream-oneway) ----------------------------------


class Asked(io.RawIOBase):
    """A forward-only source behind ``io.BufferedReader``, as sockets and pipes come: the
    reader allocates every size it is asked for before reading. Records the largest ask."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.largest = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.largest = max(self.largest, len(buffer))
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_header_length_claim_never_sizes_a_read_of_the_source() -> None:
    """An element claiming 4 GiB in the header, then the end of the input: pydicom asks for
    the claimed length; deid asks its source for at most 1 MiB at a time (a buffered one-way
    source would allocate the whole claim first: a MemoryError in the fuzz)."""
    ds = make_dataset(**CT_IMAGE)
    ds.add_new(0x00110010, "LO", "ACME 1")
    ds.add_new(0x00111000, "OB", b"\x01" * 8)
    data = to_bytes(ds)
    head = struct.pack("<HH2sH", 0x0011, 0x1000, b"OB", 0)
    at = data.index(head) + len(head)
    data = data[:at] + struct.pack("<L", 0xFFFFFFF0) + data[at + 4 : at + 12]
    engine = ENGINES["no-text"]()
    expected = outcome(lambda: engine.deidentify_bytes(data))
    asked = Asked(data)
    out = io.BytesIO()
    tracemalloc.start()
    try:
        got = outcome(lambda: engine.deidentify_stream(io.BufferedReader(asked), out))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == expected
    assert expected[0] == "rejected"
    assert asked.largest <= 1 << 20
    assert peak < 8 << 20
    assert out.getvalue() == b""


def _retyped(tag: int, vr: bytes) -> bytes:
    """A CT object whose ``tag`` (US, 2 bytes) says VR ``vr`` instead."""
    data = to_bytes(ct_frames(2))
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"US"
    assert data.count(head) == 1
    return data.replace(head, head[:4] + vr)


@pytest.mark.parametrize(
    ("tag", "vr"),
    [(0x00280011, b"UL"), (0x00280010, b"ZZ")],
    ids=["columns-UL-of-2-bytes", "rows-unknown-VR"],
)
def test_a_header_value_pydicom_cannot_read_is_the_bytes_path_rejection(
    tag: int, vr: bytes
) -> None:
    """pydicom raises reading Columns (a UL of two bytes) or Rows (VR ZZ) for the limits:
    a rejection, as on the bytes path, not pydicom's exception."""
    data = _retyped(tag, vr)
    engine = ENGINES["no-text"]()
    with pytest.raises(RejectedError) as bytes_error:
        engine.deidentify_bytes(data)
    assert bytes_error.value.reason is RejectReason.INVALID_DATASET
    for source in (io.BytesIO(data), OneWay(data)):
        out = io.BytesIO()
        with pytest.raises(RejectedError) as info:
            engine.deidentify_stream(source, out)
        assert info.value.reason is RejectReason.INVALID_DATASET
        assert out.getvalue() == b""


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless])
def test_a_malformed_window_element_does_not_fail_decoding_a_streamed_frame(syntax: str) -> None:
    """Window Width with an unknown VR: the bytes path decodes frames without reading it, and
    so does the streamed pass (its one-frame views copy only what a decoder reads)."""
    ds = us_frames(4, syntax)
    ds.add_new(0x00281051, "DS", "400")
    data = to_bytes(ds)
    head = struct.pack("<HH", 0x0028, 0x1051) + b"DS"
    assert data.count(head) == 1
    data = data.replace(head, head[:4] + b"ZZ")
    engine = ENGINES["text"]()
    assert engine.deidentify_bytes(data).audit.pixels is not None
    assert_streams_like_bytes(engine, data)
