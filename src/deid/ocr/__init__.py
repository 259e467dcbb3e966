"""OCR engines behind one Protocol (DESIGN §1.7).

This package imports nothing heavy: a backend's own dependencies (onnxruntime, OpenCV, ...)
are imported when the backend is built, and a missing one raises
:class:`deid.MissingDependencyError` naming the extra to install.

- :class:`TextBox`: one detected text region (pixel box, confidence, text or ``None``).
- :class:`OcrEngine`: the Protocol, one method ``detect(image) -> list[TextBox]``.
- :class:`StaticOcr`: boxes given up front (a test double, public like httpx's MockTransport).
- :func:`get_engine` / :func:`register`: the registry, by name or ``module:attribute`` path.
"""

from deid.ocr.base import OcrEngine, TextBox
from deid.ocr.registry import available_engines, get_engine, register
from deid.ocr.static import StaticOcr

__all__ = ["OcrEngine", "StaticOcr", "TextBox", "available_engines", "get_engine", "register"]
