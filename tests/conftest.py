"""Shared fixtures: a fixed key, the corpus location, and quiet pydicom."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from pydicom import config as pydicom_config

from deid import Pseudonymizer

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

#: The shared corpus of real public files (../shared/corpus beside the clone), or $DEID_CORPUS.
CORPUS = Path(
    os.environ.get("DEID_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)


@pytest.fixture(autouse=True)
def _one_worker_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`deid run` defaults to one worker per CPU; tests that want processes say --workers."""
    monkeypatch.setenv("DEID_WORKERS", "1")


@pytest.fixture(autouse=True)
def _restore_the_ocr_registry() -> Iterator[None]:
    """Engines a test registers do not outlive it."""
    from deid.ocr import registry

    saved = dict(registry._REGISTERED)
    yield
    registry._REGISTERED.clear()
    registry._REGISTERED.update(saved)


@pytest.fixture(scope="session", autouse=True)
def _quiet_pydicom_validation():
    """pydicom warns (with values) on odd values in real files; tests assert on outcomes."""
    old = pydicom_config.settings.reading_validation_mode
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    yield
    pydicom_config.settings.reading_validation_mode = old


#: benchmarks/ (text image generator, synthetic series), imported by tests that need it.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def textimages() -> ModuleType:
    """benchmarks/textimages.py: images with burned-in text and exact ink ground truth."""
    pytest.importorskip("PIL", reason="the text image generator needs Pillow (dev extra)")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("textimages")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def key() -> Pseudonymizer:
    return Pseudonymizer(KEY)


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set DEID_CORPUS)")
    return CORPUS
