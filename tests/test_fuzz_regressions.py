"""Inputs the fuzz harness (benchmarks/fuzz.py) found, minimised and built in code.

Each ended in something other than a de-identified object or a DeidError (or took a minute, or
quoted a value); each now ends in the rejection asserted here, quickly and quietly.
"""

from __future__ import annotations

import logging
import struct
import time
import warnings

import numpy as np
import pytest
from pydicom import config as pydicom_config
from pydicom.uid import RLELossless

from deid import Deidentifier, RejectedError, RejectReason, ResidualPhiError
from deid.engine import MAX_OPEN_ITEMS
from deid.ocr.static import StaticOcr
from deid.pixels.frames import MAX_FRAME_SAMPLES
from deid.rawitems import MAX_DEPTH
from tests.conftest import KEY
from tests.factories import PATIENT_ID, make_dataset, to_bytes

ENGINE = Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False)
_ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
_ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_SQ = b"\x08\x00\x15\x11SQ\x00\x00"  # (0008,1115) Referenced Series Sequence


def rejection(data: bytes) -> RejectedError:
    with pytest.raises(RejectedError) as caught:
        ENGINE.deidentify_bytes(data)
    return caught.value


@pytest.mark.parametrize("where", ["inside", "at_the_end"])
def test_a_stray_sequence_delimiter_at_the_top_level_is_an_invalid_dataset(where: str) -> None:
    # pydicom cannot convert a top-level (FFFE,E0DD) ("Unknown Value Representation 'NONE'"):
    # the completeness check let that NotImplementedError out of deidentify_bytes.
    data = to_bytes(make_dataset())
    at = data.index(b"\x10\x00\x10\x00PN") if where == "inside" else len(data)
    error = rejection(data[:at] + _SEQUENCE_END + data[at:])
    assert error.reason is RejectReason.INVALID_DATASET
    assert error.detail == "unreadable (NotImplementedError)"


class PanicException(BaseException):
    """What a Rust extension raises when it panics: not an ``Exception``."""


def _rle_object() -> bytes:
    ds = make_dataset(Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.6.1")
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 16, 16, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(256) % 251).astype("u1").tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    return to_bytes(ds)


def _set_us(data: bytes, element: int, value: int) -> bytes:
    """The bytes with (0028,element) US changed in place (explicit VR little endian)."""
    at = data.index(b"\x28\x00" + struct.pack("<H", element) + b"US\x02\x00")
    return data[: at + 8] + struct.pack("<H", value) + data[at + 10 :]


def test_a_decoder_panic_is_a_pixel_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # pylibjpeg-rle panicked ("index out of bounds: the len is 8192 but the index is 8192")
    # on RLE segments cut short by the fuzzer; the panic is a BaseException and escaped every
    # `except Exception` up to the caller. The decoder is replaced by one that panics the same
    # way, so the test does not depend on which RLE plug-in is installed.
    from pydicom.pixels.decoders.base import Decoder

    def panics(*args: object, **kwargs: object) -> None:
        raise PanicException("index out of bounds")

    monkeypatch.setattr(Decoder, "as_array", panics)
    error = rejection(_rle_object())
    assert error.reason is RejectReason.PIXEL_CLEANING_FAILED
    assert error.detail == "frame 0 cannot be decoded from RLE Lossless"


def test_other_base_exceptions_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.pixels.decoders.base import Decoder

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Decoder, "as_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ENGINE.deidentify_bytes(_rle_object())


def test_an_encapsulated_frame_claiming_gigapixels_is_refused_before_decoding() -> None:
    # 65535 x 65535 x 1 is under the per-object pixel limit, but a decoder allocates the
    # whole frame up front: 4 GiB from a 1 KiB object.
    data = _set_us(_set_us(_rle_object(), 0x0010, 0xFFFF), 0x0011, 0xFFFF)
    started = time.perf_counter()
    error = rejection(data)
    assert time.perf_counter() - started < 5
    assert error.reason is RejectReason.SIZE_LIMIT
    samples = 0xFFFF * 0xFFFF
    assert error.detail == (
        f"a frame of {samples} pixel samples (limit {MAX_FRAME_SAMPLES} per decoded frame)"
    )


OPEN_ITEMS_DETAIL = (
    f"over {MAX_OPEN_ITEMS} items of undefined length nested (limit {MAX_OPEN_ITEMS})"
)


def _deep(depth: int, *, defined_outside: bool) -> bytes:
    """A CT object whose Referenced Series Sequence nests ``depth`` sequences of undefined
    length; ``defined_outside``: the outermost one has a defined length (pydicom then leaves
    it raw when reading, and deid's identifier walk reads it)."""
    inner = (_SQ + b"\xff\xff\xff\xff" + _ITEM) * (depth - 1)
    inner += (_ITEM_END + _SEQUENCE_END) * (depth - 1)
    items = _ITEM + inner + _ITEM_END
    if defined_outside:
        element = _SQ + struct.pack("<I", len(items)) + items
    else:
        element = _SQ + b"\xff\xff\xff\xff" + items + _SEQUENCE_END
    data = to_bytes(make_dataset())
    at = data.index(b"\x10\x00\x10\x00PN")  # (0010,0010): the first tag after (0008,1115)
    return data[:at] + element + data[at:]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 1000, 10_000], ids=lambda d: f"depth{d}")
def test_sequences_nested_thousands_deep_are_refused_quickly(depth: int) -> None:
    # The fuzzer's case (10,000 levels inside a defined-length sequence) took 52 s: every level
    # was read again from its bytes, each read going 10,000 levels down.
    # Now refused before pydicom reads anything: the items of undefined length are counted
    # on the bytes (deid.engine.MAX_OPEN_ITEMS); the identifier walk's own bound stays as a
    # second line for nests of defined-length items.
    started = time.perf_counter()
    error = rejection(_deep(depth, defined_outside=True))
    assert time.perf_counter() - started < 5
    assert error.reason is RejectReason.SIZE_LIMIT
    assert error.detail == OPEN_ITEMS_DETAIL


def test_a_deep_nest_pydicom_would_read_itself_is_refused_before_it_does() -> None:
    # pydicom's reader recurses into each item of undefined length and scans for its
    # delimiter: the fuzzer's case (implicit VR, a deep nest) took 11 s in dcmread alone.
    started = time.perf_counter()
    error = rejection(_deep(10_000, defined_outside=False))
    assert time.perf_counter() - started < 1
    assert error.reason is RejectReason.SIZE_LIMIT
    assert error.detail == OPEN_ITEMS_DETAIL


def test_items_of_undefined_length_up_to_the_bound_are_read() -> None:
    # 64 open items are read; the object is then refused by the call's own depth limit (32)
    error = rejection(_deep(MAX_OPEN_ITEMS, defined_outside=False))
    assert error.detail == f"sequences nested {MAX_OPEN_ITEMS - 1} deep (limit 32)"
    error = rejection(_deep(MAX_OPEN_ITEMS + 1, defined_outside=False))
    assert error.detail == OPEN_ITEMS_DETAIL


def test_an_item_holding_an_item_tag_is_refused_before_pydicom_writes_it() -> None:
    # pydicom's writer failed deep inside and wrapped the error with the whole traceback at
    # every level (quadratic): the fuzzer's case took over 30 s. deid walks the sequence first.
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from deid.encoding import check_writable

    inner = Dataset()
    inner.add_new(0xFFFEE000, "UN", b"")
    outer = Dataset()
    outer.ReferencedSeriesSequence = Sequence([inner])
    with pytest.raises(RejectedError) as info:
        check_writable(Sequence([outer]))
    assert info.value.reason is RejectReason.INVALID_DATASET
    assert info.value.detail == "an item holds an item or delimiter tag"


def test_pydicom_does_not_quote_an_invalid_value_during_a_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # With a multi-byte character set deid hands values to pydicom, whose default WARN mode
    # warned and logged "Invalid value for VR TM: '25MRN...'" from inside a library call.
    monkeypatch.setattr(pydicom_config.settings, "reading_validation_mode", pydicom_config.WARN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = make_dataset(SpecificCharacterSet="ISO 2022 IR 87", StudyTime="25" + PATIENT_ID)
        data = to_bytes(ds)
    caplog.set_level(logging.DEBUG, logger="pydicom")
    caplog.clear()  # building the input above logged the value itself
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Modified Dates keep times, and this "time" holds the Patient ID's digits glued to
        # letters and digits: verification finds them (the object is not released).
        with pytest.raises(ResidualPhiError):
            ENGINE.deidentify_bytes(data)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert [s for s in said if PATIENT_ID in s] == []
    assert pydicom_config.settings.reading_validation_mode == pydicom_config.WARN


def test_an_unknown_vr_deep_in_a_sequence_is_refused_before_pydicom_writes_it() -> None:
    # A bit flip turned SQ into "SU" fourteen levels down: pydicom's writer failed there and
    # each level wrapped the message and traceback of the level below (more than 5 s).
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from deid.encoding import check_writable

    inner = Dataset()
    inner[0x00081115] = RawDataElement(0x00081115, "SU", 4, b"\x00\x00\x00\x00", 0, False, True)
    outer = Dataset()
    outer.ReferencedSeriesSequence = Sequence([inner])
    with pytest.raises(RejectedError) as info:
        check_writable(Sequence([outer]))
    assert info.value.reason is RejectReason.INVALID_DATASET
    assert info.value.detail == "an element of an unknown VR inside a sequence"
