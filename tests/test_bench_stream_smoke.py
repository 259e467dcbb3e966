"""Smoke test of benchmarks/bench_stream.py: a tiny object, every child run, no timing asserts."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydicom import dcmread

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_stream")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_object_is_what_it_says(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "object.dcm"
    size = bench.write_object(path, 32, 5)
    ds = dcmread(path)
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (32, 32, 5)
    assert len(ds.PixelData) == 32 * 32 * 2 * 5
    assert size == path.stat().st_size


@pytest.mark.parametrize("mode", ["none", "static"])
def test_a_tiny_run_measures_both_paths(bench: ModuleType, tmp_path: Path, mode: str) -> None:
    out = tmp_path / "result.json"
    argv = ["--size", "32", "--frames", "4", "--rounds", "1", "--pass", mode, "--json", str(out)]
    assert bench.main(argv) == 0  # 0: the two outputs were identical
    result = json.loads(out.read_text())
    assert result["identical"] is True
    assert result["frame_bytes"] == 32 * 32 * 2
    for kind in ("bytes", "stream"):
        assert result[kind]["tracemalloc_peak"] > 0
        assert result[kind]["seconds"] > 0
        assert result[kind]["rss_growth"] >= 0
