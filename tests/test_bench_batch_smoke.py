"""Smoke test of benchmarks/bench_batch.py: a tiny archive, 1 and 2 workers, no timing asserts.

The OCR engine is ``static`` (finds no text, loads no model): the pixel pass still runs on the
DX and US files, so the mixed path is exercised without the OCR extra.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydicom import dcmread

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
COUNTS = {"CT": 3, "MR": 2, "DX": 1, "US": 1}
ATTRIBUTE_FILES = COUNTS["CT"] + COUNTS["MR"]
ALL_FILES = sum(COUNTS.values())


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    # kept on sys.path while the module's tests run: the baseline's spawned pool workers
    # import bench_batch by name (spawn hands them the parent's sys.path)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_batch")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def report(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("batch")
    result = bench.run_benchmark(
        COUNTS,
        workers=(1, 2),
        rounds=1,
        dx_scale=0.25,
        us_frames=2,
        work_dir=root,
        keep_outputs=True,
        ocr="static",
        measure_startup=False,  # one pool start per path, not two (kept short)
    )
    return result, root


def _finite(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_every_path_and_worker_count_is_measured(report: tuple[Any, Path]) -> None:
    result, _ = report
    assert result.workers == [1, 2]
    assert [(r.path, r.workers) for r in result.results] == [
        (path, workers) for workers in (1, 2) for path in ("baseline", "attribute", "mixed")
    ]
    for r in result.results:
        expected = ALL_FILES if r.path == "mixed" else ATTRIBUTE_FILES
        assert r.files == r.outcomes["deidentified"] == expected, (r.path, r.workers)
        assert len(r.seconds) == 1
        assert r.startup == []
        assert _finite(r.files_per_s) and _finite(r.mb_per_s) and _finite(r.steady_files_per_s)
        # plain CT/MR slices stay on the fast path; DX and US take the pixel pass
        assert r.outcomes["pixel_pass"] == (COUNTS["DX"] + COUNTS["US"] if r.path == "mixed" else 0)
    ratios = result.ratios()
    assert set(ratios) == {
        "attribute/baseline@1",
        "attribute/baseline@2",
        "mixed/attribute@1",
        "mixed/attribute@2",
        "scaling:baseline",
        "scaling:attribute",
        "scaling:mixed",
    }
    assert all(_finite(value) for value in ratios.values())


def _outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.dcm"))}


@pytest.mark.parametrize("path", ["attribute", "mixed"])
def test_outputs_read_back_deidentified(report: tuple[Any, Path], path: str) -> None:
    _, root = report
    source = root / "in" / path
    planted = set()
    for src in source.rglob("*.dcm"):
        ds = dcmread(src)
        planted |= {str(ds.PatientID), str(ds.PatientName).split("^")[0], str(ds.AccessionNumber)}
    for workers in (1, 2):
        outputs = _outputs(root / "out" / f"{path}-{workers}")
        assert len(outputs) == (ALL_FILES if path == "mixed" else ATTRIBUTE_FILES)
        for name, data in outputs.items():
            ds = dcmread(root / "out" / f"{path}-{workers}" / name)
            assert ds.PatientIdentityRemoved == "YES"
            for value in planted:
                assert value.encode() not in data, (name, value)
    # keyed pseudonyms: the same bytes whatever the number of workers
    digests = [
        {name: hashlib.sha256(data).hexdigest() for name, data in _outputs(folder).items()}
        for folder in (root / "out" / f"{path}-1", root / "out" / f"{path}-2")
    ]
    assert digests[0] == digests[1]


def test_main_prints_tables_and_writes_json(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "batch.json"
    argv = ["--files", "8", "--rounds", "1", "--workers", "1", "--dx-scale", "0.25"]
    argv += ["--us-frames", "1", "--ocr", "static", "--json", str(out)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Path | Files | Workers |" in printed
    assert "| mixed / attribute (target >= 0.5) |" in printed
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["command"].endswith(" ".join(argv))
    assert sum(payload["counts"].values()) >= 8
    assert [r["path"] for r in payload["results"]] == ["baseline", "attribute", "mixed"]
    for r in payload["results"]:
        assert r["startup"] == []
        assert r["steady_files_per_s"] == r["files_per_s"]
    assert _finite(payload["ratios"]["mixed/attribute@1"])


def test_steady_rate_leaves_out_the_startup(bench: ModuleType) -> None:
    result = bench.BatchResult("attribute", 2, 11, 1000, seconds=[3.0, 2.0, 4.0])
    assert result.steady_files_per_s == result.files_per_s == 11 / 3.0
    result.startup = [1.0, 1.0, 1.5]
    assert result.steady_files_per_s == pytest.approx(10 / 2.0)  # median of 10/2, 10/1, 10/2.5
