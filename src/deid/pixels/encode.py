"""Writing changed frames back into Pixel Data.

Native data stays native: the Pixel Data bytes are rebuilt with exactly the original layout,
the bytes of untouched frames (and any trailing padding) are copied unchanged.

Encapsulated data: each changed frame is re-encoded, unchanged frames keep their original
fragments byte-for-byte while the transfer syntax stays the same.

- lossless syntaxes with an encoder here stay lossless in the same syntax (RLE Lossless,
  JPEG-LS Lossless, JPEG 2000 Lossless);
- a lossless syntax without an encoder (JPEG Lossless Process 14 / SV1, HTJ2K lossless,
  JPEG 2000 Part 2) is rewritten in the first lossless syntax that can hold the data
  (JPEG-LS Lossless, JPEG 2000 Lossless, RLE Lossless); the result says the syntax changed;
- lossy JPEG baseline is re-encoded with the original quantisation tables and chroma sampling
  (Pillow); lossy JPEG 2000 at the original compression ratio; JPEG-LS near-lossless with the
  original NEAR; ``lossless=True`` writes a lossless syntax instead. Lossy syntaxes without an
  encoder (JPEG Extended 12-bit, HTJ2K lossy) are rewritten losslessly.

Every re-encoded frame is decoded again and compared (lossless: exactly; lossy: outside the
blanked boxes, within :data:`LOSSY_RMS_TOLERANCE`); any difference raises
:class:`deid.PixelError` and leaves the data set as it was.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydicom.uid import UID

from deid.errors import MissingDependencyError, PixelError, is_panic
from deid.pixels.frames import PixelLayout, decoder_for, read_layout

if TYPE_CHECKING:
    import numpy.typing as npt
    from pydicom.dataset import Dataset

    from deid.ocr import TextBox

RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"

#: Lossless syntaxes that have an encoder, in order of preference for a fallback.
LOSSLESS_FALLBACK = (JPEG_LS_LOSSLESS, J2K_LOSSLESS, RLE)
_LOSSLESS_SAME = frozenset({RLE, JPEG_LS_LOSSLESS, J2K_LOSSLESS})
_LOSSY_SAME = frozenset({JPEG_BASELINE, J2K, JPEG_LS_NEAR})
_METHOD = {JPEG_BASELINE: "ISO_10918_1", J2K: "ISO_15444_1", JPEG_LS_NEAR: "ISO_14495_1"}

#: Lossy re-encoding: largest root-mean-square difference outside the blanked boxes, as a
#: fraction of the stored range (0.03 is about 30 dB PSNR).
LOSSY_RMS_TOLERANCE = 0.03


@dataclass(frozen=True, slots=True)
class EncodeResult:
    """What writing the pixels back did."""

    transfer_syntax: str
    original_transfer_syntax: str
    lossy: bool = False
    frames_encoded: tuple[int, ...] = ()
    photometric_interpretation: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """Whether the transfer syntax changed."""
        return self.transfer_syntax != self.original_transfer_syntax


# -- native -------------------------------------------------------------------------------


def native_frame_bytes(frame: npt.NDArray[Any], layout: PixelLayout) -> bytes:
    """The native bytes of one frame (not for Bits Allocated 1)."""
    import numpy as np

    dtype = layout.dtype().newbyteorder("<" if layout.little_endian else ">")
    values = np.asarray(frame)
    if tuple(values.shape) != layout.frame_shape:
        raise PixelError("a frame to write does not have the Image Pixel module's shape")
    if layout.native_422:
        rows, columns = layout.rows, layout.columns
        pairs = np.empty((rows, columns // 2, 4), values.dtype)
        pairs[..., 0] = values[:, 0::2, 0]
        pairs[..., 1] = values[:, 1::2, 0]
        pairs[..., 2] = values[:, 0::2, 1]
        pairs[..., 3] = values[:, 0::2, 2]
        values = pairs
    elif layout.samples_per_pixel > 1 and layout.planar_configuration == 1:
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def native_pixel_data(
    original: bytes,
    layout: PixelLayout,
    frames: Mapping[int, npt.NDArray[Any]],
    *,
    verify: bool = False,
) -> bytes:
    """``original`` native Pixel Data with ``frames`` (index -> stored values) written in.
    ``verify``: each frame is read back from the bytes written for it and compared with the
    values given (:class:`deid.PixelError` where one differs); every frame of ``frames`` is
    taken once (a mapping that builds its frames on demand builds each once)."""
    import numpy as np

    from deid.pixels.frames import native_frame_from_bytes

    if layout.bits_allocated == 1:
        bits = np.unpackbits(np.frombuffer(original, np.uint8), bitorder="little")
        count = layout.rows * layout.columns
        wanted: dict[int, npt.NDArray[Any]] = {}
        for index, frame in frames.items():
            wanted[index] = np.asarray(frame) != 0
            bits[index * count : (index + 1) * count] = wanted[index].reshape(-1)
        packed = np.packbits(bits, bitorder="little").tobytes()
        if verify:
            for index, ink in wanted.items():
                _check_read_back(native_frame_from_bytes(packed, layout, index), ink, index)
        return packed
    # the unchanged stretches of ``original`` and the new frames, joined in one copy
    size = layout.native_frame_bits // 8
    view = memoryview(original)
    pieces: list[bytes | memoryview] = []
    position = 0
    for index in sorted(frames):
        frame = frames[index]
        data = native_frame_bytes(frame, layout)
        if len(data) != size or not 0 <= index < layout.number_of_frames:
            raise PixelError(f"frame {index} does not fit the native Pixel Data")
        if verify:
            _check_read_back(native_frame_from_bytes(data, layout, 0), frame, index)
        pieces += [view[position : index * size], data]
        position = (index + 1) * size
    pieces.append(view[position:])
    return b"".join(pieces)


def _check_read_back(got: npt.NDArray[Any], frame: npt.NDArray[Any], index: int) -> None:
    import numpy as np

    if not np.array_equal(got, np.asarray(frame).astype(got.dtype, copy=False)):
        raise PixelError(f"frame {index} did not read back as written")


# -- encapsulated -------------------------------------------------------------------------


def _fragments(ds: Dataset, layout: PixelLayout) -> list[tuple[bytes, ...]]:
    from pydicom.encaps import generate_fragmented_frames

    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        frames = list(
            generate_fragmented_frames(
                ds.PixelData, number_of_frames=layout.number_of_frames, extended_offsets=extended
            )
        )
    except Exception as exc:
        raise PixelError("the encapsulated Pixel Data cannot be parsed") from exc
    if len(frames) != layout.number_of_frames:
        raise PixelError("(0028,0008) NumberOfFrames does not match the encapsulated frames")
    return frames


def encapsulate_fragments(frames: Sequence[Sequence[bytes]]) -> bytes:
    """Encapsulated Pixel Data: a Basic Offset Table, then each frame's fragments as items
    (odd-length fragments padded to even length with a zero byte)."""
    items: list[bytes] = []
    offsets: list[int] = []
    position = 0
    for fragments in frames:
        offsets.append(position)
        for fragment in fragments:
            data = bytes(fragment) + (b"\x00" if len(fragment) % 2 else b"")
            items.append(struct.pack("<HHI", 0xFFFE, 0xE000, len(data)) + data)
            position += 8 + len(data)
    if position > 0xFFFFFFFF:
        raise PixelError("the re-encoded Pixel Data is too large for a Basic Offset Table")
    table = struct.pack(f"<{len(offsets)}I", *offsets)
    head = struct.pack("<HHI", 0xFFFE, 0xE000, len(table)) + table
    return head + b"".join(items)


def _segment(data: bytes, marker: int) -> bytes | None:
    """The payload of the first JPEG marker segment ``marker`` (e.g. 0xDB, 0xDA)."""
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        code = data[index + 1]
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7 or code == 0xFF:
            index += 1 if code == 0xFF else 2
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if code == marker:
            return data[index + 4 : index + 2 + length]
        if code == 0xDA:
            return None
        index += 2 + length
    return None


#: The IJG (libjpeg) base luminance table at quality 50, natural order.
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


def estimate_jpeg_quality(luminance: Sequence[int]) -> int:
    """The IJG quality (1..100) whose luminance table is closest to ``luminance``
    (64 values, any order that matches the base table's: only their sum is used)."""
    if len(luminance) != 64:
        raise PixelError("a JPEG quantisation table has 64 entries")
    scale = 100.0 * sum(luminance) / sum(_IJG_LUMINANCE)
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return max(1, min(100, round(quality)))


def jpeg_quantisation(frame: bytes) -> list[list[int]]:
    """The quantisation tables of a JPEG codestream, by table id (8-bit precision only)."""
    payload = _segment(frame, 0xDB)
    tables: dict[int, list[int]] = {}
    index = 0
    data = payload or b""
    while index < len(data):
        precision, ident = data[index] >> 4, data[index] & 0x0F
        width = 2 if precision else 1
        values = data[index + 1 : index + 1 + 64 * width]
        tables[ident] = [
            int.from_bytes(values[i : i + width], "big") for i in range(0, len(values), width)
        ]
        index += 1 + 64 * width
    return [tables[k] for k in sorted(tables)]


def jpeg_ls_near(frame: bytes) -> int:
    """The NEAR parameter of a JPEG-LS codestream's first scan (0 = lossless)."""
    payload = _segment(frame, 0xDA)
    if not payload:
        raise PixelError("a JPEG-LS frame has no scan header")
    components = payload[0]
    return int(payload[1 + 2 * components])


def _pillow_jpeg(frame: npt.NDArray[Any], decoded_pi: str, like: bytes) -> bytes:
    """Baseline JPEG of ``frame`` with the quantisation tables and sampling of ``like``."""
    try:
        from PIL import Image, JpegImagePlugin
    except ImportError:
        raise MissingDependencyError("re-encoding JPEG baseline pixel data", "codecs") from None
    import numpy as np

    with Image.open(io.BytesIO(like)) as original:
        tables = getattr(original, "quantization", None)
        sampling = JpegImagePlugin.get_sampling(original)
    options: dict[str, Any] = {}
    if tables:
        options["qtables"] = [list(t) for _, t in sorted(tables.items())]
    else:
        options["quality"] = 90
    data = np.ascontiguousarray(frame, dtype=np.uint8)
    if data.ndim == 2:
        image = Image.fromarray(data)
    else:
        options["subsampling"] = max(sampling, 0)
        if decoded_pi == "RGB":
            image = Image.fromarray(data)
            options["keep_rgb"] = True
        else:
            image = Image.frombytes("YCbCr", (data.shape[1], data.shape[0]), data.tobytes())
    out = io.BytesIO()
    image.save(out, format="JPEG", **options)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class _Target:
    syntax: str
    photometric: str
    lossy: bool
    options: Mapping[str, Any]


def _target_photometric(layout: PixelLayout, syntax: str) -> str:
    decoded = layout.decoded_photometric
    if decoded == "RGB" and layout.photometric_interpretation in ("YBR_RCT", "YBR_ICT"):
        if syntax == J2K_LOSSLESS:
            return "YBR_RCT"
        if syntax == J2K:
            return "YBR_ICT"
        return "RGB"
    if decoded == "YBR_FULL_422" and syntax != JPEG_BASELINE:
        return "YBR_FULL"
    return decoded


def _profile_ok(layout: PixelLayout, syntax: str, photometric: str) -> bool:
    from pydicom.pixels.encoders.base import ENCODING_PROFILES

    for pi, samples, representation, allocated, stored in ENCODING_PROFILES.get(UID(syntax), []):
        if (
            pi == photometric
            and samples == layout.samples_per_pixel
            and layout.pixel_representation in representation
            and layout.bits_allocated in allocated
            and layout.bits_stored in stored
        ):
            return True
    return False


def _encoder_ready(syntax: str) -> bool:
    from pydicom.pixels.encoders.base import get_encoder

    try:
        return bool(get_encoder(syntax).is_available)
    except NotImplementedError:
        return False


def _choose(layout: PixelLayout, lossless: bool, first: bytes) -> tuple[_Target, list[str]]:
    """The syntax to write, its photometric interpretation and options."""
    syntax = layout.transfer_syntax
    notes: list[str] = []
    if syntax in _LOSSLESS_SAME or (syntax in _LOSSY_SAME and not lossless):
        pi = _target_photometric(layout, syntax)
        if syntax == JPEG_BASELINE:
            return _Target(syntax, pi, True, {}), notes
        if (syntax == RLE or _profile_ok(layout, syntax, pi)) and _encoder_ready(syntax):
            options: dict[str, Any] = {}
            if syntax == J2K:
                raw = layout.rows * layout.columns * layout.samples_per_pixel
                raw *= layout.dtype().itemsize
                options["j2k_cr"] = [max(1.0, raw / max(1, len(first)))]
            if syntax == JPEG_LS_NEAR:
                near = jpeg_ls_near(first)
                options["jls_error"] = near
            return _Target(syntax, pi, syntax in _LOSSY_SAME, options), notes
        if syntax in _LOSSLESS_SAME and not _encoder_ready(syntax):
            raise MissingDependencyError(f"re-encoding {UID(syntax).name} pixel data", "codecs")
    for candidate in LOSSLESS_FALLBACK:
        pi = _target_photometric(layout, candidate)
        if (candidate == RLE or _profile_ok(layout, candidate, pi)) and _encoder_ready(candidate):
            notes.append(f"re-encoded from {UID(syntax).name} to {UID(candidate).name}")
            return _Target(candidate, pi, False, {}), notes
    if not any(_encoder_ready(c) for c in LOSSLESS_FALLBACK):
        raise MissingDependencyError("re-encoding compressed pixel data", "codecs")
    raise PixelError(f"no lossless encoder here can hold this {UID(syntax).name} pixel data")


def _encode_frame(
    frame: npt.NDArray[Any], layout: PixelLayout, target: _Target, like: bytes
) -> bytes:
    from pydicom.pixels.encoders.base import get_encoder

    if target.syntax == JPEG_BASELINE:
        return _pillow_jpeg(frame, layout.decoded_photometric, like)
    encoder = get_encoder(target.syntax)
    try:
        return bytes(
            encoder.encode(
                frame,
                validate=target.syntax != RLE or layout.bits_allocated <= 16,
                rows=layout.rows,
                columns=layout.columns,
                samples_per_pixel=layout.samples_per_pixel,
                bits_allocated=layout.bits_allocated,
                bits_stored=layout.bits_stored,
                pixel_representation=layout.pixel_representation,
                photometric_interpretation=target.photometric,
                planar_configuration=0,
                number_of_frames=1,
                **target.options,
            )
        )
    except BaseException as exc:  # Exception, or a Rust encoder's panic
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        raise PixelError(f"a frame cannot be encoded as {UID(target.syntax).name}") from exc


def _compare(
    expected: npt.NDArray[Any],
    got: npt.NDArray[Any],
    layout: PixelLayout,
    lossy: bool,
    boxes: Sequence[TextBox],
) -> bool:
    import numpy as np

    if not lossy:
        return bool(np.array_equal(expected, got))
    if expected.shape != got.shape:
        return False
    outside = np.ones(expected.shape[:2], bool)
    for box in boxes:
        outside[box.top : box.bottom, box.left : box.right] = False
    if not outside.any():
        return True
    diff = expected.astype(np.float64)[outside] - got.astype(np.float64)[outside]
    low, high = layout.stored_range
    rms = float(np.sqrt(np.mean(diff * diff)))
    return rms <= LOSSY_RMS_TOLERANCE * (high - low)


def _update_lossy_history(ds: Dataset, method: str, ratio: float) -> None:
    from pydicom.multival import MultiValue

    ds.LossyImageCompression = "01"
    ratios = ds.get("LossyImageCompressionRatio")
    methods = ds.get("LossyImageCompressionMethod")
    old_ratios = list(ratios) if isinstance(ratios, MultiValue) else ([ratios] if ratios else [])
    old_methods = (
        list(methods) if isinstance(methods, MultiValue) else ([methods] if methods else [])
    )
    ds.LossyImageCompressionRatio = [*old_ratios, f"{ratio:.2f}"]
    ds.LossyImageCompressionMethod = [*old_methods, method]


def write_frames(
    ds: Dataset,
    frames: Mapping[int, npt.NDArray[Any]],
    *,
    layout: PixelLayout | None = None,
    boxes: Mapping[int, Sequence[TextBox]] | None = None,
    lossless: bool = False,
    verify: bool = True,
) -> EncodeResult:
    """Write ``frames`` (index -> stored values, as :func:`deid.pixels.frames.read_frame`
    gives them) into ``ds``'s Pixel Data; see the module for what happens per syntax.

    ``boxes`` (index -> blanked areas) tells lossy verification where differences are allowed.
    """
    layout = layout or read_layout(ds)
    syntax = layout.transfer_syntax
    if not frames:
        return EncodeResult(syntax, syntax, photometric_interpretation=layout.decoded_photometric)
    if not layout.encapsulated:
        ds.PixelData = native_pixel_data(bytes(ds.PixelData), layout, frames, verify=verify)
        return EncodeResult(
            syntax,
            syntax,
            frames_encoded=tuple(sorted(frames)),
            photometric_interpretation=layout.photometric_interpretation,
        )
    return _write_encapsulated(ds, layout, frames, boxes or {}, lossless, verify)


#: The Image Pixel elements a decoder reads (the rest of group 0028, such as windows and
#: LUTs, is not copied: a malformed one there must not fail a frame's decoding).
DECODING_TAGS = (
    0x00280002,  # Samples per Pixel
    0x00280004,  # Photometric Interpretation
    0x00280006,  # Planar Configuration
    0x00280008,  # Number of Frames
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280100,  # Bits Allocated
    0x00280101,  # Bits Stored
    0x00280102,  # High Bit
    0x00280103,  # Pixel Representation
)


def copy_decoding_elements(ds: Dataset, view: Dataset) -> None:
    """Copies of ``ds``'s :data:`DECODING_TAGS` elements into ``view`` (setting the view's
    must not change ``ds``)."""
    import copy

    for tag in DECODING_TAGS:
        if tag in ds:
            view.add(copy.copy(ds[tag]))


def _single_frame_view(ds: Dataset, layout: PixelLayout, target: _Target, data: bytes) -> Any:
    """A small data set holding one encoded frame, to decode it again (with copies of
    ``ds``'s Image Pixel elements: setting the view's must not change ``ds``)."""

    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.dataset import FileMetaDataset

    view = DicomDataset()
    copy_decoding_elements(ds, view)
    view.NumberOfFrames = 1
    view.PhotometricInterpretation = target.photometric
    view.PixelData = encapsulate_fragments([(data,)])
    view["PixelData"].VR = "OB"
    view["PixelData"].is_undefined_length = True
    view.file_meta = FileMetaDataset()
    view.file_meta.TransferSyntaxUID = UID(target.syntax)
    return view


class FrameCoder:
    """Re-encodes encapsulated frames one at a time, each checked by decoding it again, then
    sets what the new encoding changes in the header (:func:`write_frames`; also used frame
    by frame by :mod:`deid.pixels.streamed`).

    ``first``: the first frame's codestream (the target syntax's options come from it).
    """

    def __init__(self, layout: PixelLayout, lossless: bool, first: bytes, verify: bool) -> None:
        from dataclasses import replace

        self.layout = layout
        self.target, self.notes = _choose(layout, lossless, first)
        self.same = self.target.syntax == layout.transfer_syntax
        self.decoder = decoder_for(layout)
        self.check_layout = replace(
            layout,
            transfer_syntax=self.target.syntax,
            photometric_interpretation=self.target.photometric,
            number_of_frames=1,
        )
        self.check_decoder = decoder_for(self.check_layout) if verify else None
        self.written: list[int] = []
        self.raw_bytes = 0
        self.coded_bytes = 0

    def encode(
        self,
        ds: Dataset,
        index: int,
        frame: npt.NDArray[Any],
        like: bytes,
        boxes: Sequence[TextBox],
    ) -> bytes:
        """Frame ``index`` encoded in the target syntax (``like``: its original codestream),
        decoded again and compared (lossless: exactly; lossy: outside ``boxes``)."""
        from deid.pixels.frames import decode_encapsulated

        data = _encode_frame(frame, self.layout, self.target, like)
        if self.check_decoder is not None:
            view = _single_frame_view(ds, self.layout, self.target, data)
            got = decode_encapsulated(self.check_decoder, view, self.check_layout, 0)
            if not _compare(frame, got, self.layout, self.target.lossy, boxes):
                raise PixelError(f"frame {index} did not decode back as it was encoded")
        self.written.append(index)
        self.raw_bytes += frame.size * frame.dtype.itemsize
        self.coded_bytes += len(data)
        return data

    def finish(self, ds: Dataset) -> EncodeResult:
        """Set the header for the new encoding (the new Pixel Data value is the caller's):
        no Extended Offset Table, the syntax, photometric interpretation, planar
        configuration and lossy compression history."""
        from pydicom.dataset import FileMetaDataset

        layout, target = self.layout, self.target
        for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
            if keyword in ds:
                del ds[keyword]
        if not hasattr(ds, "file_meta"):
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(target.syntax)
        if target.photometric != ds.PhotometricInterpretation:
            ds.PhotometricInterpretation = target.photometric
        if not self.same and layout.samples_per_pixel > 1 and target.syntax != RLE:
            ds.PlanarConfiguration = 0
        if target.lossy and self.written:
            ratio = self.raw_bytes / max(1, self.coded_bytes)
            _update_lossy_history(ds, _METHOD[target.syntax], ratio)
        return EncodeResult(
            target.syntax,
            layout.transfer_syntax,
            lossy=target.lossy and bool(self.written),
            frames_encoded=tuple(self.written),
            photometric_interpretation=target.photometric,
            notes=tuple(self.notes),
        )


def _write_encapsulated(
    ds: Dataset,
    layout: PixelLayout,
    frames: Mapping[int, npt.NDArray[Any]],
    boxes: Mapping[int, Sequence[TextBox]],
    lossless: bool,
    verify: bool,
) -> EncodeResult:
    from deid.pixels.frames import decode_encapsulated

    original = _fragments(ds, layout)
    coder = FrameCoder(layout, lossless, b"".join(original[0]), verify)
    encoded: list[tuple[bytes, ...]] = []
    for index, fragments in enumerate(original):
        if coder.same and index not in frames:
            encoded.append(fragments)
            continue
        frame = (
            frames[index]
            if index in frames
            else decode_encapsulated(coder.decoder, ds, layout, index)
        )
        like = b"".join(fragments)
        encoded.append((coder.encode(ds, index, frame, like, boxes.get(index, ())),))
    ds.PixelData = encapsulate_fragments(encoded)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return coder.finish(ds)
