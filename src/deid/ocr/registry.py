"""The OCR engine registry: names and ``module:attribute`` import paths."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from deid.errors import MissingDependencyError
from deid.ocr.base import OcrEngine

#: Built-in engines: name -> ``module:factory``. Importing a module may need an extra.
_BUILTIN: dict[str, str] = {
    "static": "deid.ocr.static:StaticOcr",
    "rapidocr": "deid.ocr.rapid:RapidOcr",
    "easyocr": "deid.ocr.easy:EasyOcr",
}
_REGISTERED: dict[str, Callable[..., OcrEngine]] = {}


def register(name: str, factory: Callable[..., OcrEngine]) -> None:
    """Make ``factory`` available as ``get_engine(name)``."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError("an engine name is letters, digits, '-' and '_'")
    _REGISTERED[name] = factory


def _resolve(spec: str) -> Callable[..., OcrEngine]:
    if spec in _REGISTERED:
        return _REGISTERED[spec]
    path = _BUILTIN.get(spec, spec)
    if ":" not in path:
        raise ValueError(
            f"unknown OCR engine {spec!r}: use one of {sorted(set(_BUILTIN) | set(_REGISTERED))}"
            " or an import path 'module:attribute'"
        )
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    factory: Callable[..., OcrEngine] = getattr(module, attribute)
    return factory


def get_engine(spec: str, *, recognize: bool = False, **options: Any) -> OcrEngine:
    """Build the engine named ``spec`` (a registered name or ``module:attribute``).

    ``recognize``: the engine must read text (``TextBox.text``), not only find it; passed to
    factories that take a ``recognize`` argument. ``options`` go to the factory as they are.

    Raises :class:`deid.MissingDependencyError` (naming the extra) when the backend's
    dependencies are not installed, ``ValueError`` for an unknown name.
    """
    factory = _resolve(spec)
    if recognize and _takes(factory, "recognize"):
        options["recognize"] = True
    engine = factory(**options)
    if not isinstance(engine, OcrEngine):
        raise TypeError(f"{spec!r} did not build an OcrEngine")
    return engine


def _takes(factory: Callable[..., OcrEngine], name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def available_engines() -> dict[str, bool]:
    """Each built-in and registered engine name, and whether it can be built here."""
    found: dict[str, bool] = {}
    for name in sorted(set(_BUILTIN) | set(_REGISTERED)):
        if name in _REGISTERED:
            found[name] = True
            continue
        module_name, _, attribute = _BUILTIN[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except MissingDependencyError:
            found[name] = False
            continue
        check = getattr(getattr(module, attribute), "is_available", None)
        found[name] = bool(check()) if callable(check) else True
    return found
