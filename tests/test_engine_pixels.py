"""The pixel stage of the engine: when it runs, what it blanks, markers and audit."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from deid import Deidentifier, Policy, RejectedError, RejectReason, ResidualPhiError
from deid.codes import CLEAN_PIXEL_DATA_CODE
from deid.ocr import StaticOcr, TextBox
from tests.conftest import KEY
from tests.factories import make_dataset, roundtrip

US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"


def us_image(**keywords: object) -> Dataset:
    """A 64 x 96 8-bit MONOCHROME2 ultrasound image, every pixel value distinct per row."""
    ds = make_dataset(US_STORAGE, pixels=True, Modality="US", **keywords)
    ds.Rows, ds.Columns = 64, 96
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    pixels = (np.arange(64 * 96, dtype=np.uint32) % 200 + 30).astype(np.uint8)
    ds.PixelData = pixels.tobytes()
    return ds


def pixels_of(ds: Dataset) -> np.ndarray:
    return np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(64, 96)


def test_risky_object_is_blanked_marked_and_audited() -> None:
    ds = us_image(BurnedInAnnotation="YES")
    before = pixels_of(ds).copy()
    ocr = StaticOcr([TextBox(10, 5, 20, 8, 0.875)])
    engine = Deidentifier("upload", KEY, ocr=ocr, prescreen=False)
    result = engine.deidentify(ds)
    out = roundtrip(result.data)
    after = pixels_of(out)
    # pad 3 (the policy's default): rows 2..15, columns 7..32 are black (0), nothing else moved
    inside = np.zeros_like(before, dtype=bool)
    inside[2:16, 7:33] = True
    assert (after[inside] == 0).all()
    assert np.array_equal(after[~inside], before[~inside])
    assert out.BurnedInAnnotation == "NO"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes[:2] == ["113100", CLEAN_PIXEL_DATA_CODE]
    assert "Clean Pixel Data Option" in out.DeidentificationMethod
    pixels = result.audit.pixels
    assert pixels is not None
    assert pixels["reason"] == "Burned In Annotation YES"
    assert pixels["cleaned"] is True
    assert pixels["engine"] == "static"
    assert pixels["boxes"] == [[0, 7, 2, 26, 14, 0.875]]
    assert pixels["verified"] is True
    assert ds.BurnedInAnnotation == "YES"  # the caller's data set is left as it was
    assert np.array_equal(pixels_of(ds), before)


def test_text_found_again_after_blanking_rejects_the_object() -> None:
    ds = us_image()
    # every read finds text somewhere new: the two cleaning rounds blank what they see, and
    # the verification read still finds text outside every blanked box
    places = [TextBox(10, 5, 20, 8), TextBox(40, 30, 20, 8), TextBox(70, 50, 20, 8)]
    calls: list[int] = []

    def found(image: np.ndarray) -> list[TextBox]:
        calls.append(1)
        return [places[min(len(calls), 3) - 1]]

    ocr = StaticOcr(func=found)
    engine = Deidentifier("upload", KEY, ocr=ocr, prescreen=False)
    with pytest.raises(ResidualPhiError) as info:
        engine.deidentify(ds)
    assert info.value.reason is RejectReason.RESIDUAL_PHI
    assert "pixel frame 0" in str(info.value)


def test_identifiers_mode_blanks_names_and_keeps_labels() -> None:
    ds = us_image()
    boxes = [TextBox(2, 2, 10, 8, 0.9, "L"), TextBox(40, 30, 40, 10, 0.9, "DOE JOHNATHAN")]
    policy = Policy(name="ids", pixels={"text": "identifiers"})  # type: ignore[arg-type]
    before = pixels_of(ds).copy()
    result = Deidentifier(policy, KEY, ocr=StaticOcr(boxes), prescreen=False).deidentify(ds)
    after = pixels_of(roundtrip(result.data))
    inside = np.zeros_like(before, dtype=bool)
    inside[27:43, 37:83] = True
    assert (after[inside] == 0).all()
    assert np.array_equal(after[~inside], before[~inside])  # "L" stays


def test_identifiers_mode_needs_an_engine_that_reads() -> None:
    class DetectOnly(StaticOcr):
        recognizes = False  # type: ignore[assignment]

    policy = Policy(name="ids", pixels={"text": "identifiers"})  # type: ignore[arg-type]
    engine = Deidentifier(policy, KEY, ocr=DetectOnly(), prescreen=False)
    with pytest.raises(RejectedError) as info:
        engine.deidentify(us_image())
    assert info.value.reason is RejectReason.BURNED_IN_TEXT
    assert "needs an OCR engine that reads text" in str(info.value)


def test_plain_ct_slice_is_not_looked_at() -> None:
    ds = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    ocr = StaticOcr([TextBox(0, 0, 4, 4)])
    result = Deidentifier("upload", KEY, ocr=ocr).deidentify(ds)
    assert ocr.calls == 0
    assert result.audit.pixels is None
    assert roundtrip(result.data).PixelData == ds.PixelData


def test_prescreened_object_without_text_is_left_untouched_and_unmarked() -> None:
    ds = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    ocr = StaticOcr([TextBox(0, 0, 4, 4)])
    result = Deidentifier("upload", KEY, ocr=ocr, prescreen=lambda image: False).deidentify(ds)
    out = roundtrip(result.data)
    assert ocr.calls == 0
    assert out.PixelData == ds.PixelData
    assert "BurnedInAnnotation" not in out
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert CLEAN_PIXEL_DATA_CODE not in codes
    assert result.audit.pixels is not None
    assert (result.audit.pixels["cleaned"], result.audit.pixels["frames_skipped"]) == (False, 1)


def test_prescreen_finding_text_sends_the_frame_to_ocr() -> None:
    ds = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    ocr = StaticOcr([TextBox(0, 0, 4, 4)])
    result = Deidentifier("upload", KEY, ocr=ocr, prescreen=lambda image: True).deidentify(ds)
    # detection, then a second read of the blanked frame, which finds nothing new; the written
    # (native) frame holds exactly those values, so verification needs no third read
    assert ocr.calls == 2
    out = roundtrip(result.data)
    assert out.BurnedInAnnotation == "NO"
    values = np.frombuffer(out.PixelData, dtype="<u2").reshape(16, 16)
    assert (values[:7, :7] == 0).all()  # box 4 x 4 at the corner, padded by 3
    original = np.arange(256, dtype="<u2").reshape(16, 16)
    assert np.array_equal(values[7:, :], original[7:, :])
    assert np.array_equal(values[:, 7:], original[:, 7:])


def test_a_missing_decoder_or_bad_pixels_reject_as_pixel_cleaning_failed() -> None:
    ds = us_image()
    ds.PixelData = ds.PixelData[: 64 * 96 - 200]  # shorter than the Image Pixel module needs
    engine = Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False)
    with pytest.raises(RejectedError) as info:
        engine.deidentify(ds)
    assert info.value.reason is RejectReason.PIXEL_CLEANING_FAILED
    assert "DOE" not in str(info.value)


def test_never_policy_releases_pixels_as_they_are_without_ocr() -> None:
    ds = us_image(BurnedInAnnotation="YES")
    ocr = StaticOcr([TextBox(0, 0, 4, 4)])
    result = Deidentifier(Policy(clean_pixel_data="never"), KEY, ocr=ocr).deidentify(ds)  # type: ignore[arg-type]
    assert ocr.calls == 0
    assert roundtrip(result.data).PixelData == ds.PixelData


def test_engine_is_built_once_from_the_policy_name(monkeypatch) -> None:
    built: list[int] = []

    def factory() -> StaticOcr:
        built.append(1)
        return StaticOcr()

    from deid.ocr import register

    register("test-once", factory)
    policy = Policy(name="p", pixels={"engine": "test-once"})  # type: ignore[arg-type]
    engine = Deidentifier(policy, KEY, prescreen=False)
    for _ in range(3):
        engine.deidentify(us_image())
    assert built == [1]


def test_a_pickled_deidentifier_builds_its_engine_again() -> None:
    import pickle

    from deid.ocr import register

    register("test-pickle", StaticOcr)
    policy = Policy(name="p", pixels={"engine": "test-pickle"})  # type: ignore[arg-type]
    engine = Deidentifier(policy, KEY, prescreen=False)
    first = engine.deidentify(us_image()).data
    copy = pickle.loads(pickle.dumps(engine))
    assert copy._ocr is None  # built again on first use in the new process
    assert copy.deidentify(us_image()).data == first
    assert isinstance(copy._ocr, StaticOcr)


def test_threads_share_one_engine() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from deid.ocr import register

    built: list[StaticOcr] = []

    def factory() -> StaticOcr:
        built.append(StaticOcr([TextBox(10, 5, 20, 8)]))
        return built[-1]

    register("test-threads", factory)
    policy = Policy(name="p", pixels={"engine": "test-threads"})  # type: ignore[arg-type]
    engine = Deidentifier(policy, KEY, prescreen=False)
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda _: engine.deidentify(us_image()).data, range(8)))
    assert len(built) == 1
    assert len(set(outputs)) == 1


def test_float_pixel_data_at_risk_is_rejected_not_marked_clean() -> None:
    """No OCR path reads Float Pixel Data: an object that needs the pass is refused rather
    than marked Clean Pixel Data unread."""
    ds = make_dataset(US_STORAGE, Modality="US")
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.BitsAllocated = 1, 32
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.FloatPixelData = np.zeros(64, dtype="<f4").tobytes()
    with pytest.raises(RejectedError) as info:
        Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False).deidentify(ds)
    assert info.value.reason is RejectReason.PIXEL_CLEANING_FAILED
    assert str(info.value).endswith("float pixel data cannot be checked for burned-in text "
                                    "(modality US)")  # fmt: skip
