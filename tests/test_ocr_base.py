"""deid.ocr without a model: TextBox, StaticOcr, the registry, missing dependencies, imports."""

from __future__ import annotations

import builtins
import subprocess
import sys
from typing import Any, ClassVar

import numpy as np
import pytest

from deid.errors import MissingDependencyError
from deid.ocr import OcrEngine, StaticOcr, TextBox, available_engines, get_engine, register
from deid.ocr import rapid as rapid_module
from deid.ocr.easy import EasyOcr
from deid.ocr.prescreen import TextPrescreen
from deid.ocr.rapid import RapidOcr

GREY = np.zeros((40, 60), np.uint8)


# -- TextBox ---------------------------------------------------------------------------------


def test_textbox_edges_and_defaults() -> None:
    box = TextBox(3, 4, 10, 5)
    assert (box.right, box.bottom, box.confidence, box.text) == (13, 9, 1.0, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, 0, 5), "positive width and height"),
        ((0, 0, 5, -1), "positive width and height"),
        ((-1, 0, 5, 5), "starts inside the image"),
        ((0, -2, 5, 5), "starts inside the image"),
    ],
    ids=["zero-width", "negative-height", "negative-left", "negative-top"],
)
def test_textbox_rejects_impossible_boxes(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TextBox(*args)


def test_textbox_padded_is_clipped_to_the_image() -> None:
    assert TextBox(2, 3, 10, 4, 0.5).padded(3, 9, 14) == TextBox(0, 0, 14, 9, 0.5)
    assert TextBox(5, 5, 2, 2).padded(1, 100, 100) == TextBox(4, 4, 4, 4)
    assert TextBox(5, 5, 2, 2).padded(0, 6, 6) == TextBox(5, 5, 1, 1)


def test_textbox_scaled_rounds_outwards() -> None:
    assert TextBox(3, 5, 3, 3).scaled(2.0) == TextBox(6, 10, 6, 6)
    assert TextBox(3, 5, 3, 3).scaled(0.5) == TextBox(1, 2, 2, 2)
    assert TextBox(1, 1, 1, 1).scaled(0.1) == TextBox(0, 0, 1, 1)


def test_textbox_repr_hides_the_text() -> None:
    box = TextBox(1, 2, 3, 4, 0.25, "DOE^JANE")
    assert repr(box) == (
        "TextBox(left=1, top=2, width=3, height=4, confidence=0.250, text=<hidden>)"
    )
    assert "DOE" not in repr([box]) and "DOE" not in str(box)
    assert repr(TextBox(1, 2, 3, 4)) == (
        "TextBox(left=1, top=2, width=3, height=4, confidence=1.000)"
    )


def test_textbox_is_frozen() -> None:
    box = TextBox(1, 2, 3, 4)
    with pytest.raises(AttributeError):
        box.left = 0  # type: ignore[misc]


# -- StaticOcr -------------------------------------------------------------------------------


def test_static_ocr_returns_its_boxes_clipped() -> None:
    engine = StaticOcr([TextBox(50, 30, 20, 20), TextBox(70, 0, 5, 5), TextBox(1, 1, 2, 2)])
    assert engine.detect(GREY) == [TextBox(50, 30, 10, 10), TextBox(1, 1, 2, 2)]
    assert engine.calls == 1
    assert (StaticOcr.name, StaticOcr.recognizes) == ("static", True)
    assert isinstance(engine, OcrEngine)


def test_static_ocr_per_call_then_nothing() -> None:
    first, second = [TextBox(0, 0, 4, 4)], [TextBox(1, 1, 2, 2), TextBox(5, 5, 1, 1)]
    engine = StaticOcr(per_call=[first, second])
    assert [engine.detect(GREY) for _ in range(3)] == [first, second, []]
    assert engine.calls == 3


def test_static_ocr_func_sees_the_image() -> None:
    seen: list[tuple[int, ...]] = []

    def boxes(image: Any) -> list[TextBox]:
        seen.append(image.shape)
        return [TextBox(0, 0, 100, 100)]

    rgb = np.zeros((8, 6, 3), np.uint8)
    assert StaticOcr(func=boxes).detect(rgb) == [TextBox(0, 0, 6, 8)]
    assert seen == [(8, 6, 3)]


def test_static_ocr_rejects_two_sources_and_foreign_boxes() -> None:
    with pytest.raises(TypeError, match="one of boxes, per_call or func"):
        StaticOcr([TextBox(0, 0, 1, 1)], per_call=[[]])
    with pytest.raises(TypeError, match="must be TextBox objects"):
        StaticOcr([(0, 0, 1, 1)])  # type: ignore[list-item]


# -- registry ----------------------------------------------------------------------------------


def test_get_engine_by_name_and_by_path() -> None:
    box = TextBox(0, 0, 2, 2)
    assert get_engine("static", boxes=[box]).detect(GREY) == [box]
    assert get_engine("deid.ocr.static:StaticOcr", boxes=[box]).detect(GREY) == [box]


def test_get_engine_unknown_name() -> None:
    expected = r"unknown OCR engine 'nope': use one of \['easyocr', 'rapidocr', 'static'\]"
    with pytest.raises(ValueError, match=expected):
        get_engine("nope")


def test_get_engine_unknown_module_and_attribute() -> None:
    with pytest.raises(ModuleNotFoundError):
        get_engine("deid.no_such_module:Engine")
    with pytest.raises(AttributeError):
        get_engine("deid.ocr.static:NoSuchEngine")


def test_get_engine_rejects_what_is_not_an_engine() -> None:
    with pytest.raises(TypeError, match="did not build an OcrEngine"):
        get_engine("builtins:object")


class _Upper:
    name: ClassVar[str] = "upper"
    recognizes: ClassVar[bool] = False

    def detect(self, image: Any) -> list[TextBox]:
        return [TextBox(0, 0, 1, 1)]


def test_register_and_available_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    from deid.ocr import registry

    monkeypatch.setattr(registry, "_REGISTERED", {})
    register("upper-case_1", _Upper)
    assert get_engine("upper-case_1").detect(GREY) == [TextBox(0, 0, 1, 1)]
    found = available_engines()
    assert set(found) == {"easyocr", "rapidocr", "static", "upper-case_1"}
    assert found["static"] is True and found["upper-case_1"] is True
    assert found["rapidocr"] is RapidOcr.is_available()
    assert found["easyocr"] is EasyOcr.is_available()
    with pytest.raises(ValueError, match="letters, digits"):
        register("bad name", _Upper)


# -- missing dependencies ----------------------------------------------------------------------


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import name`` fail for each of ``names`` (as if not installed)."""
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".", 1)[0] in names:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


@pytest.mark.parametrize("missing", ["onnxruntime", "cv2"])
def test_rapidocr_without_its_dependencies_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    _hide(monkeypatch, missing)
    with pytest.raises(MissingDependencyError) as caught:
        RapidOcr()
    assert caught.value.extra == "ocr"
    message = str(caught.value)
    assert "pip install 'deid-dicom[ocr]'" in message
    assert "pip install --no-deps rapidocr-onnxruntime==1.4.4" in message
    assert isinstance(caught.value, ImportError)
    with pytest.raises(MissingDependencyError, match=r"deid-dicom\[ocr\]"):
        get_engine("rapidocr")


def test_rapidocr_without_the_model_files_names_the_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("onnxruntime", reason="needs the ocr extra (onnxruntime)")
    pytest.importorskip("cv2", reason="needs the ocr extra (opencv-python-headless)")
    monkeypatch.setattr(rapid_module, "MODEL_PACKAGE", "deid_no_such_model_package")
    assert RapidOcr.is_available() is False
    with pytest.raises(MissingDependencyError, match=r"rapidocr-onnxruntime==1\.4\.4"):
        RapidOcr()


def test_prescreen_without_opencv_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "cv2")
    with pytest.raises(MissingDependencyError, match=r"deid-dicom\[ocr\]") as caught:
        TextPrescreen()
    assert caught.value.extra == "ocr"


def test_rapidocr_checks_its_options_before_importing() -> None:
    for options, message in [
        ({"max_side": 16}, "max_side"),
        ({"scale": 0.0}, "scale"),
        ({"threshold": 1.0}, "threshold"),
        ({"box_threshold": -0.1}, "box_threshold"),
        ({"pad": -1}, "pad"),
        ({"threads": 0}, "threads"),
    ]:
        with pytest.raises(ValueError, match=message):
            RapidOcr(**options)


def test_importing_deid_imports_no_ocr_or_image_stack() -> None:
    """onnxruntime, OpenCV and torch are never imported; pydicom itself imports Pillow and
    pylibjpeg where they are installed (its decoder plug-ins), so for those the test asserts
    that deid adds nothing to what ``import pydicom`` already loaded."""
    heavy = ["onnxruntime", "cv2", "PIL", "pylibjpeg", "torch", "rapidocr_onnxruntime"]
    code = (
        "import sys, pydicom; before = set(sys.modules); "
        "import deid, deid.ocr, deid.ocr.rapid, deid.ocr.prescreen; "
        f"heavy = {heavy!r}; "
        "print(sorted(m for m in heavy if m in sys.modules and m not in before)); "
        "print(sorted(m for m in heavy[:2] + heavy[4:] if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]


def test_get_engine_asks_for_recognition_only_where_a_factory_takes_it() -> None:
    from deid.ocr import StaticOcr, get_engine, register

    seen: list[bool] = []

    def reader(*, recognize: bool = False) -> StaticOcr:
        seen.append(recognize)
        return StaticOcr()

    register("test-reader", reader)
    get_engine("test-reader", recognize=True)
    get_engine("test-reader")
    assert seen == [True, False]
    assert isinstance(get_engine("static", recognize=True), StaticOcr)  # takes no such option
