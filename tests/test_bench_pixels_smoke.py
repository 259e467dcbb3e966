"""Smoke test of benchmarks/bench_pixels.py: a tiny slice end to end, no timing asserts."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from deid.ocr import available_engines

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.skipif(
    not available_engines().get("rapidocr"), reason="the OCR extra is not installed"
)


def test_pixel_benchmark_slice(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        bench = importlib.import_module("bench_pixels")
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path / "pixels.json"
    argv = ["--per-kind", "1", "--text-free", "1", "--kinds", "CT", "US", "--no-corpus"]
    argv.append("--no-easyocr")  # the EasyOCR baseline alone takes minutes
    assert bench.main([*argv, "--json", str(out)]) == 0
    payload = json.loads(out.read_text(encoding="utf-8"))
    rows = payload["rows"]
    assert {row["kind"] for row in rows} == {"CT", "US"}
    for row in rows:
        assert row["frames"] == 2  # one image with text, one without, per kind
        assert 0 < row["found"] <= row["lines"]
        assert 0.0 <= row["recall"] <= 1.0
        assert row["frames_per_s"] > 0
    default = [row for row in rows if row["config"] == "pre-screen + det, full size"]
    assert len(default) == 2
    for row in default:  # the default configuration finds every line and blanks no free pixel
        assert (row["found"], row["blanked_free"]) == (row["lines"], 0)
    passes = payload["pass_rows"]
    assert {(row["config"], row["kind"]) for row in passes} == {
        (config, kind)
        for config in ("pixel pass, whole frames", "pixel pass, places (default)")
        for kind in ("CT", "US")
    }
    for row in passes:
        assert (row["objects"], row["frames"]) == (2, 2)
        assert row["reads"] > 0
    for row in passes:  # the pass as shipped releases both and finds every line
        if row["config"] == "pixel pass, places (default)":
            assert (row["rejected"], row["found"], row["blanked_free"]) == (0, row["lines"], 0)
