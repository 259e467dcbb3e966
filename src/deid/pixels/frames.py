"""Pixel layout and frame-by-frame decoding.

:class:`PixelLayout` is what the Image Pixel module says about the stored pixels, validated once.
:func:`read_frame` / :func:`iter_frames` return the *stored* values of one frame at a time:

- native data is read straight from the Pixel Data bytes (no masking, no sign extension, so the
  bits above Bits Stored are still there and a frame written back unchanged is bit-identical);
  bit-packed (Bits Allocated 1) and native ``YBR_FULL_422`` (expanded to full resolution) too;
- encapsulated data is decoded by pydicom's decoder for the transfer syntax, one frame per call
  (``raw=True``: no colour conversion), so memory holds about one decoded frame at a time.

A frame is ``(rows, columns)`` for one sample per pixel and ``(rows, columns, samples)``
(interleaved) otherwise, in a ``uint``/``int`` dtype as wide as Bits Allocated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.uid import UID

from deid.codes import RejectReason
from deid.errors import MissingDependencyError, PixelError, RejectedError, is_panic

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from pydicom.dataset import Dataset

#: Transfer syntaxes whose decoder undoes a colour transform (YBR_RCT/ICT decode to RGB).
_J2K_FAMILY = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_RCT",
        "YBR_ICT",
        "PALETTE COLOR",
    }
)
_IMPLICIT_LE = "1.2.840.10008.1.2"
#: The most samples one encapsulated frame may claim (a 16384 x 16384 frame). Decoders allocate
#: the whole frame from Rows x Columns x Samples per Pixel before reading the codestream, so a
#: 1 KiB object claiming 65535 x 65535 would otherwise allocate gigabytes (found by fuzzing).
MAX_FRAME_SAMPLES = 1 << 28
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"


@dataclass(frozen=True, slots=True)
class PixelLayout:
    """The stored pixels as the Image Pixel module and the transfer syntax describe them."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int
    number_of_frames: int
    transfer_syntax: str
    encapsulated: bool
    little_endian: bool = True

    @property
    def signed(self) -> bool:
        """Whether stored values are two's complement."""
        return self.pixel_representation == 1

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """The shape of one decoded frame."""
        if self.samples_per_pixel == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples_per_pixel)

    @property
    def stored_range(self) -> tuple[int, int]:
        """The smallest and largest value Bits Stored can hold."""
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1

    @property
    def native_422(self) -> bool:
        """Native ``YBR_FULL_422``: two luminance samples share one chroma pair."""
        return not self.encapsulated and self.photometric_interpretation == "YBR_FULL_422"

    @property
    def decoded_photometric(self) -> str:
        """What the decoded samples are: JPEG 2000 decoders undo YBR_RCT/YBR_ICT to RGB."""
        pi = self.photometric_interpretation
        if pi in ("YBR_RCT", "YBR_ICT") and self.transfer_syntax in _J2K_FAMILY:
            return "RGB"
        return pi

    @property
    def native_frame_bits(self) -> int:
        """Bits one native frame occupies in Pixel Data."""
        samples = 2 if self.native_422 else self.samples_per_pixel
        return self.rows * self.columns * samples * self.bits_allocated

    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype of a decoded frame (container width, signedness)."""
        import numpy as np

        width = 1 if self.bits_allocated <= 8 else (2 if self.bits_allocated <= 16 else 4)
        if self.bits_allocated > 32:
            width = 8
        return np.dtype(f"{'i' if self.signed else 'u'}{width}")


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise PixelError(f"the Image Pixel module has no {keyword}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PixelError(f"{keyword} is not an integer") from None


def transfer_syntax_of(ds: Dataset) -> str:
    """The data set's transfer syntax: file meta, else how it was read."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid)
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    if implicit:
        return _IMPLICIT_LE
    return _EXPLICIT_LE if little else _EXPLICIT_BE


def has_pixels(ds: Dataset) -> bool:
    """Whether the data set holds integer Pixel Data (7FE0,0010)."""
    return "PixelData" in ds


def read_layout(ds: Dataset) -> PixelLayout:
    """Read and validate the Image Pixel module of ``ds``.

    Raises :class:`PixelError` naming the attribute at fault (never its value).
    """
    if not has_pixels(ds):
        raise PixelError("the data set has no Pixel Data")
    syntax = transfer_syntax_of(ds)
    uid = UID(syntax)
    if not uid.is_transfer_syntax:
        raise PixelError("(0002,0010) TransferSyntaxUID is not a known transfer syntax")
    rows = _int(ds, "Rows")
    columns = _int(ds, "Columns")
    samples = _int(ds, "SamplesPerPixel", 1)
    allocated = _int(ds, "BitsAllocated")
    stored = _int(ds, "BitsStored", allocated)
    high = _int(ds, "HighBit", stored - 1)
    representation = _int(ds, "PixelRepresentation", 0)
    planar = _int(ds, "PlanarConfiguration", 0) if samples > 1 else 0
    frames = _int(ds, "NumberOfFrames", 1) or 1
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if rows <= 0:
        raise PixelError("(0028,0010) Rows must be positive")
    if columns <= 0:
        raise PixelError("(0028,0011) Columns must be positive")
    if frames < 0:
        raise PixelError("(0028,0008) NumberOfFrames must be positive")
    if allocated not in (1, 8, 16, 32, 64) and not uid.is_encapsulated:
        raise PixelError("(0028,0100) BitsAllocated is not 1 or a multiple of 8")
    if allocated <= 0 or allocated > 64:
        raise PixelError("(0028,0100) BitsAllocated is out of range")
    if not 1 <= stored <= allocated:
        raise PixelError("(0028,0101) BitsStored is inconsistent with BitsAllocated")
    if high != stored - 1:
        raise PixelError("(0028,0102) HighBit is not BitsStored - 1")
    if representation not in (0, 1):
        raise PixelError("(0028,0103) PixelRepresentation is not 0 or 1")
    if pi not in _PHOTOMETRIC:
        raise PixelError("(0028,0004) PhotometricInterpretation is not supported")
    expected_samples = 1 if pi in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR") else 3
    if samples != expected_samples:
        raise PixelError(
            "(0028,0002) SamplesPerPixel is inconsistent with PhotometricInterpretation"
        )
    if planar not in (0, 1):
        raise PixelError("(0028,0006) PlanarConfiguration is not 0 or 1")
    if representation == 1 and samples > 1:
        raise PixelError("(0028,0103) PixelRepresentation must be 0 for colour data")
    if pi == "YBR_FULL_422" and not uid.is_encapsulated and columns % 2:
        raise PixelError("(0028,0011) Columns must be even for YBR_FULL_422")
    if allocated == 1 and samples != 1:
        raise PixelError("(0028,0100) BitsAllocated 1 needs one sample per pixel")
    return PixelLayout(
        rows=rows,
        columns=columns,
        samples_per_pixel=samples,
        bits_allocated=allocated,
        bits_stored=stored,
        high_bit=high,
        pixel_representation=representation,
        photometric_interpretation=pi,
        planar_configuration=planar,
        number_of_frames=frames,
        transfer_syntax=syntax,
        encapsulated=bool(uid.is_encapsulated),
        little_endian=syntax != _EXPLICIT_BE,
    )


def _native_buffer(ds: Dataset, layout: PixelLayout) -> bytes:
    data = ds.PixelData
    if not isinstance(data, bytes | bytearray):
        raise PixelError("(7FE0,0010) PixelData is not a byte string")
    needed = (layout.native_frame_bits * layout.number_of_frames + 7) // 8
    if len(data) < needed:
        raise PixelError("(7FE0,0010) PixelData is shorter than the Image Pixel module needs")
    return bytes(data)


def _native_dtype(layout: PixelLayout) -> np.dtype[Any]:
    dtype = layout.dtype()
    return dtype.newbyteorder("<" if layout.little_endian else ">")


def native_frame_from_bytes(
    raw: bytes | bytearray, layout: PixelLayout, index: int
) -> npt.NDArray[Any]:
    """Decode frame ``index`` of the native Pixel Data bytes ``raw``."""
    import numpy as np

    if layout.bits_allocated == 1:
        count = layout.rows * layout.columns
        start = index * count
        first, last = start // 8, (start + count + 7) // 8
        bits = np.unpackbits(np.frombuffer(raw, np.uint8, last - first, first), bitorder="little")
        offset = start - first * 8
        return bits[offset : offset + count].reshape(layout.rows, layout.columns).copy()
    size = layout.native_frame_bits // 8
    dtype = _native_dtype(layout)
    flat = np.frombuffer(raw, dtype, size // dtype.itemsize, index * size)
    frame = flat.astype(dtype.newbyteorder("="))
    if layout.native_422:
        pairs = frame.reshape(layout.rows, layout.columns // 2, 4)
        full = np.empty((layout.rows, layout.columns, 3), frame.dtype)
        full[:, 0::2, 0] = pairs[..., 0]
        full[:, 1::2, 0] = pairs[..., 1]
        full[:, :, 1] = np.repeat(pairs[..., 2], 2, axis=1)
        full[:, :, 2] = np.repeat(pairs[..., 3], 2, axis=1)
        return full
    if layout.samples_per_pixel == 1:
        return frame.reshape(layout.rows, layout.columns)
    if layout.planar_configuration == 1:
        planes = frame.reshape(layout.samples_per_pixel, layout.rows, layout.columns)
        return np.ascontiguousarray(planes.transpose(1, 2, 0))
    return frame.reshape(layout.rows, layout.columns, layout.samples_per_pixel)


def can_decode(syntax: str) -> bool:
    """Whether pydicom has a pixel decoder for ``syntax`` (native syntaxes need none); its
    plug-ins may still be missing (:func:`decoder_for` says so)."""
    from pydicom.pixels.decoders.base import get_decoder

    uid = UID(syntax)
    if not uid.is_encapsulated:
        return True
    try:
        get_decoder(uid)
    except NotImplementedError:
        return False
    return True


def decoder_for(layout: PixelLayout) -> Any:
    """pydicom's decoder for an encapsulated syntax; raises when none can run here."""
    from pydicom.pixels.decoders.base import get_decoder

    uid = UID(layout.transfer_syntax)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise PixelError(f"no decoder exists for the transfer syntax {uid.name}") from None
    if not decoder.is_available:
        raise MissingDependencyError(f"decoding {uid.name} pixel data", "codecs")
    return decoder


def read_frame(ds: Dataset, layout: PixelLayout, index: int) -> npt.NDArray[Any]:
    """The stored values of frame ``index`` (0-based)."""
    if not 0 <= index < layout.number_of_frames:
        raise PixelError("frame index out of range")
    if not layout.encapsulated:
        return native_frame_from_bytes(_native_buffer(ds, layout), layout, index)
    decoder = decoder_for(layout)
    return decode_encapsulated(decoder, ds, layout, index)


def decode_encapsulated(
    decoder: Any, ds: Dataset, layout: PixelLayout, index: int, *, label: int | None = None
) -> npt.NDArray[Any]:
    """Decode one encapsulated frame of ``ds`` with ``decoder`` (``label``: the frame number
    errors name, when ``ds`` holds the frame alone)."""
    from pydicom.pixels.utils import as_pixel_options

    name = index if label is None else label

    samples = layout.rows * layout.columns * layout.samples_per_pixel
    if samples > MAX_FRAME_SAMPLES:
        raise RejectedError(
            RejectReason.SIZE_LIMIT,
            f"a frame of {samples} pixel samples (limit {MAX_FRAME_SAMPLES} per decoded frame)",
        )
    try:
        options = as_pixel_options(ds)
        array, _ = decoder.as_array(ds, index=index, raw=True, **options)
    except MissingDependencyError:
        raise
    except BaseException as exc:  # Exception, or a Rust decoder's panic
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        syntax = UID(layout.transfer_syntax).name
        raise PixelError(f"frame {name} cannot be decoded from {syntax}") from exc
    return _checked(array, layout, name)


def _checked(array: npt.NDArray[Any], layout: PixelLayout, index: int) -> npt.NDArray[Any]:
    if tuple(array.shape) != layout.frame_shape:
        raise PixelError(f"frame {index} decoded to a shape the Image Pixel module does not give")
    dtype = layout.dtype()
    if array.dtype != dtype:
        array = array.astype(dtype)
    if not array.flags.writeable:
        array = array.copy()
    return array


def iter_frames(ds: Dataset, layout: PixelLayout | None = None) -> Iterator[npt.NDArray[Any]]:
    """Yield the stored values of every frame, one at a time."""
    layout = layout or read_layout(ds)
    if not layout.encapsulated:
        raw = _native_buffer(ds, layout)
        for index in range(layout.number_of_frames):
            yield native_frame_from_bytes(raw, layout, index)
        return
    decoder = decoder_for(layout)
    for index in range(layout.number_of_frames):
        yield decode_encapsulated(decoder, ds, layout, index)


def codestream_precision(data: bytes) -> int | None:
    """The sample precision a JPEG, JPEG-LS or JPEG 2000 codestream declares (``None`` when
    it cannot be read). A precision above Bits Stored means bits the decoders mask away are
    still in the file (e.g. overlays kept in unused bits)."""
    if data[:2] == b"\xff\x4f":  # JPEG 2000 codestream: SIZ follows SOC
        if len(data) > 42 and data[2:4] == b"\xff\x51":
            components = int.from_bytes(data[40:42], "big")
            sizes = [data[42 + 3 * i] for i in range(components) if 42 + 3 * i < len(data)]
            return max((s & 0x7F) + 1 for s in sizes) if sizes else None
        return None
    if data[:2] != b"\xff\xd8":
        return None
    index = 2
    while index + 4 < len(data):
        if data[index] != 0xFF:
            return None
        code = data[index + 1]
        if code == 0xFF:
            index += 1
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if code in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int(data[index + 4])
        if code == 0xF7:  # JPEG-LS SOF55
            return int(data[index + 4])
        if code == 0xDA:
            return None
        index += 2 + length
    return None


def frames_with_hidden_bits(ds: Dataset, layout: PixelLayout) -> set[int]:
    """Encapsulated frames whose codestream precision exceeds Bits Stored."""
    if not layout.encapsulated or layout.bits_stored >= layout.bits_allocated:
        return set()
    from pydicom.encaps import generate_frames

    found: set[int] = set()
    try:
        frames = generate_frames(ds.PixelData, number_of_frames=layout.number_of_frames)
        for index, data in enumerate(frames):
            precision = codestream_precision(bytes(data[:4096]))
            if precision is not None and precision > layout.bits_stored:
                found.add(index)
    except Exception as exc:
        raise PixelError("the encapsulated Pixel Data cannot be parsed") from exc
    return found
