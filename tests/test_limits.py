"""Per-call limits, the fail-closed SOP Class and visual-features gates, and the stream API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from deid import Deidentifier, Policy, RejectedError, RejectReason
from deid.limits import Limits
from deid.ocr import StaticOcr
from tests.conftest import KEY
from tests.factories import PATIENT_NAME, item, make_dataset, sequence_of, to_bytes

CT_IMAGE = {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}


def engine(**kwargs: object) -> Deidentifier:
    return Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False, **kwargs)  # type: ignore[arg-type]


def rejected(deid: Deidentifier, data: bytes) -> RejectedError:
    with pytest.raises(RejectedError) as info:
        deid.deidentify_bytes(data)
    assert PATIENT_NAME.split("^")[0] not in str(info.value)
    return info.value


def test_too_many_bytes_is_refused_before_parsing() -> None:
    data = to_bytes(make_dataset(pixels=True, **CT_IMAGE))
    error = rejected(engine(limits=Limits(max_bytes=len(data) - 1)), data)
    assert error.reason is RejectReason.SIZE_LIMIT
    assert str(error) == f"SIZE_LIMIT: {len(data)} bytes (limit {len(data) - 1})"
    assert engine(limits=Limits(max_bytes=len(data))).deidentify_bytes(data).data


def test_a_huge_pixel_claim_is_refused_without_allocating() -> None:
    ds = make_dataset(pixels=True, Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.3.1")
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000  # 4.3e12 samples claimed; the pixel data holds 512 bytes
    error = rejected(engine(), to_bytes(ds))
    assert error.reason is RejectReason.SIZE_LIMIT
    assert str(error) == f"SIZE_LIMIT: {65535 * 65535 * 1000} pixel samples (limit {8 << 30})"


def test_too_many_frames() -> None:
    ds = make_dataset(pixels=True, **CT_IMAGE)
    ds.NumberOfFrames = 51
    error = rejected(engine(limits=Limits(max_frames=50)), to_bytes(ds))
    assert str(error) == "SIZE_LIMIT: 51 frames (limit 50)"


def test_sequences_nested_too_deep() -> None:
    ds = make_dataset(pixels=True, **CT_IMAGE)
    inner = item(CodeMeaning="x")
    for _ in range(5):  # 6 levels of items in all
        inner = item(ConceptNameCodeSequence=sequence_of(inner))
    ds.ConceptNameCodeSequence = sequence_of(inner)
    data = to_bytes(ds)
    error = rejected(engine(limits=Limits(max_depth=5)), data)
    assert str(error) == "SIZE_LIMIT: sequences nested 6 deep (limit 5)"
    assert engine(limits=Limits(max_depth=6)).deidentify_bytes(data).data


@pytest.mark.parametrize("name", ["max_bytes", "max_frames", "max_pixels", "max_depth"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_limits_must_be_positive_whole_numbers(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        Limits(**{name: value})  # type: ignore[arg-type]


def test_the_nesting_bounds_before_pydicom_are_one_ceiling_the_call_limit_stays_under() -> None:
    from deid.encoding import MAX_WRITE_DEPTH
    from deid.engine import MAX_OPEN_ITEMS
    from deid.limits import NESTING_CEILING
    from deid.rawitems import MAX_DEPTH

    assert MAX_OPEN_ITEMS == MAX_WRITE_DEPTH == MAX_DEPTH == NESTING_CEILING == 64
    assert Limits(max_depth=NESTING_CEILING).max_depth == 64
    with pytest.raises(ValueError, match="max_depth must be at most 64"):
        Limits(max_depth=NESTING_CEILING + 1)


@pytest.mark.parametrize(
    ("sop_class", "what"),
    [
        ("1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF"),
        ("1.2.840.10008.5.1.4.1.1.104.2", "Encapsulated CDA"),
        ("1.2.840.10008.5.1.4.1.1.104.3", "Encapsulated STL"),
        ("1.2.840.10008.5.1.4.1.1.104.4", "Encapsulated OBJ"),
        ("1.2.840.10008.5.1.4.1.1.104.5", "Encapsulated MTL"),
        ("1.2.840.10008.5.1.4.1.1.66", "Raw Data"),
        ("1.3.12.2.1107.5.9.1", "a private SOP Class"),
    ],
)
def test_unsafe_sop_classes_are_rejected_unless_allowed(sop_class: str, what: str) -> None:
    data = to_bytes(make_dataset(sop_class))
    error = rejected(engine(), data)
    assert error.reason is RejectReason.UNSUPPORTED_SOP_CLASS
    assert str(error).startswith(f"UNSUPPORTED_SOP_CLASS: {what}")
    allowed = Policy(name="p", allow_sop_classes=[sop_class])  # type: ignore[arg-type]
    result = Deidentifier(allowed, KEY).deidentify_bytes(data)
    assert result.audit.outcome.value == "deidentified"
    assert result.audit.sop_class_uid == sop_class


def test_recognizable_visual_features_are_rejected_unless_allowed() -> None:
    data = to_bytes(make_dataset(pixels=True, RecognizableVisualFeatures="YES", **CT_IMAGE))
    error = rejected(engine(), data)
    assert error.reason is RejectReason.RECOGNIZABLE_VISUAL_FEATURES
    allowed = Policy(name="p", allow_recognizable_visual_features=True)
    assert Deidentifier(allowed, KEY, ocr=StaticOcr()).deidentify_bytes(data).data


def test_stream_in_stream_out() -> None:
    data = to_bytes(make_dataset(pixels=True, **CT_IMAGE))
    out = io.BytesIO()
    result = engine().deidentify_stream(io.BytesIO(data), out)
    assert out.getvalue() == engine().deidentify_bytes(data).data
    assert result.data == b""  # the output went to the stream


def test_a_stream_over_the_limit_is_refused_after_reading_only_the_limit() -> None:
    class Counting(io.BytesIO):
        read_total = 0

        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            Counting.read_total += len(chunk)
            return chunk

    data = to_bytes(make_dataset(pixels=True, **CT_IMAGE)) * 50
    out = io.BytesIO()
    with pytest.raises(RejectedError) as info:
        engine(limits=Limits(max_bytes=1000)).deidentify_stream(Counting(data), out)
    assert info.value.reason is RejectReason.SIZE_LIMIT
    assert Counting.read_total == 1001  # one byte past the limit, never the whole upload
    assert out.getvalue() == b""


def test_a_rejected_stream_writes_nothing() -> None:
    out = io.BytesIO()
    with pytest.raises(RejectedError):
        engine().deidentify_stream(io.BytesIO(b"not a DICOM object at all" * 10), out)
    assert out.getvalue() == b""


def test_limits_per_call_bind_that_call_only() -> None:
    """One shared Deidentifier; each call may bring its own limits (bytes, file, stream)."""
    ds = make_dataset(pixels=True, **CT_IMAGE)
    ds.NumberOfFrames = 2
    data = to_bytes(ds)
    shared = engine()
    tight = Limits(max_frames=1)
    message = "SIZE_LIMIT: 2 frames (limit 1)"
    with pytest.raises(RejectedError) as info:
        shared.deidentify_bytes(data, limits=tight)
    assert str(info.value) == message
    with pytest.raises(RejectedError) as info:
        shared.deidentify_stream(io.BytesIO(data), io.BytesIO(), limits=tight)
    assert str(info.value) == message
    with pytest.raises(RejectedError) as info:
        shared.deidentify(make_dataset(pixels=True, NumberOfFrames=2, **CT_IMAGE), limits=tight)
    assert str(info.value) == message
    assert shared.limits == Limits()
    assert shared.deidentify_bytes(data).data  # the next call: the Deidentifier's limits
    with pytest.raises(TypeError):
        shared.deidentify_bytes(data, limits={"max_frames": 1})  # type: ignore[arg-type]


def test_a_file_over_max_bytes_is_refused_from_its_size_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = to_bytes(make_dataset(pixels=True, **CT_IMAGE))
    src = tmp_path / "in.dcm"
    src.write_bytes(data)
    monkeypatch.setattr(Path, "read_bytes", _never_read)
    with pytest.raises(RejectedError) as info:
        engine().deidentify_file(src, tmp_path / "out.dcm", limits=Limits(max_bytes=1000))
    assert str(info.value) == f"SIZE_LIMIT: {len(data)} bytes (limit 1000)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.dcm"]


def test_an_archive_file_over_max_bytes_is_rejected_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deid import runner
    from deid.storage import Location

    src = tmp_path / "in"
    src.mkdir()
    data = to_bytes(make_dataset(pixels=True, **CT_IMAGE))
    (src / "big.dcm").write_bytes(data)
    original = Location.read

    def read(self: Location, location: str) -> bytes:
        if location.endswith("big.dcm"):
            _never_read()
        return original(self, location)

    monkeypatch.setattr(Location, "read", read)
    summary = runner.run(engine(limits=Limits(max_bytes=1000)), src, tmp_path / "out")
    assert summary.line() == "1 input(s): 0 de-identified, 1 rejected, 0 failed, 0 skipped"
    (record,) = [
        json.loads(line)
        for line in (tmp_path / "out" / runner.QUARANTINE_NAME).read_text().splitlines()
    ]
    assert record == {
        "input": "big.dcm",
        "outcome": "rejected",
        "reason": "SIZE_LIMIT",
        "detail": f"{len(data)} bytes (limit 1000)",
    }


def _never_read(*args: object) -> bytes:
    raise AssertionError("read before the size was checked")
