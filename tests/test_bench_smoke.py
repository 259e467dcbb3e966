"""Smoke test of benchmarks/bench_attributes.py: a tiny slice, end to end, no timing asserts."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom import dcmread

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FILES = 5

#: (results, folder of the inputs, folder of the outputs)
Run = tuple[list[Any], Path, Path]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_attributes")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def run(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("bench")
    results = bench.run_benchmark(FILES, 1, work_dir=root / "work", out_dir=root / "out")
    return results, root / "work" / "in", root / "out"


def _positive_finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_every_path_and_series_is_measured(run: Run) -> None:
    results, _, _ = run
    assert {(r.series, r.path) for r in results} == {
        (series, path)
        for series in ("CT", "MR")
        for path in ("baseline", "deid-upload", "deid-basic")
    }
    for result in results:
        assert result.files == result.outputs == FILES, result.path
        assert len(result.seconds) == 1
        assert _positive_finite(result.ratio), result.path
        assert _positive_finite(result.files_per_s)
        assert _positive_finite(result.mb_per_s)
        assert result.bytes_out > 0


@pytest.mark.parametrize("series", ["CT", "MR"])
@pytest.mark.parametrize("policy", ["upload", "basic"])
def test_each_output_is_deidentified(run: Run, series: str, policy: str) -> None:
    _, inputs, outputs = run
    sources = sorted((inputs / series).glob("*.dcm"))
    written = sorted((outputs / series / f"deid-{policy}").glob("*.dcm"))
    assert len(sources) == FILES
    assert [p.name for p in written] == [p.name for p in sources]
    for src, dst in zip(sources, written, strict=True):
        before, after = dcmread(src), dcmread(dst)
        data = dst.read_bytes()
        assert after.PatientIdentityRemoved == "YES"
        assert after.SOPInstanceUID != before.SOPInstanceUID
        assert after.StudyInstanceUID != before.StudyInstanceUID
        assert after.PixelData == before.PixelData
        for planted in (before.PatientID, before.AccessionNumber, before.InstitutionName):
            assert planted.encode() not in data
        assert str(before.PatientName).split("^")[0].encode() not in data


def test_baseline_outputs_are_the_inputs_rewritten(run: Run) -> None:
    _, inputs, outputs = run
    for series in ("CT", "MR"):
        written = sorted((outputs / series / "baseline").glob("*.dcm"))
        assert len(written) == FILES
        assert dcmread(written[0]).PatientID == dcmread(inputs / series / written[0].name).PatientID


def test_main_prints_the_table_and_writes_json(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--files", "3", "--rounds", "1", "--series", "MR", "--json", str(out)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Series | Files | Path |" in printed
    assert "| MR | 3 | deid-upload |" in printed
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["command"].endswith(" ".join(argv))
    assert [r["path"] for r in payload["results"]] == ["baseline", "deid-upload", "deid-basic"]
    for result in payload["results"]:
        assert result["outputs"] == 3
        assert _positive_finite(result["ratio"])
