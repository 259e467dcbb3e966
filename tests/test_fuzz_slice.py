"""A fixed slice of the fuzz harness (benchmarks/fuzz.py) in the normal test run: zero findings.

6,000 cases of run seed 7 (about a minute on two cores): corpus files and synthetic objects,
mutated, each de-identified in a worker process with a time and memory limit. Every case must
end de-identified or as a DeidError; without the corpus only the synthetic seeds are used.
A second, smaller slice goes through ``deidentify_stream`` from a forward-only source, each
case also checked against ``deidentify_bytes`` (same bytes, or a rejection on both sides).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CASES = 6000
RUN_SEED = 7


@pytest.fixture(scope="module")
def fuzz() -> Iterator[ModuleType]:
    # On the path while the module runs: the worker processes (spawned) import it too.
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("fuzz")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_cases_are_the_same_bytes_every_time(fuzz: ModuleType) -> None:
    seeds = fuzz.synthetic_seeds()
    first = [fuzz.make_case(seeds, RUN_SEED, i) for i in range(50)]
    again = [fuzz.make_case(fuzz.synthetic_seeds(), RUN_SEED, i) for i in range(50)]
    assert [c.data for c in first] == [c.data for c in again]
    assert [c.mutators for c in first] == [c.mutators for c in again]
    assert len({c.data for c in first}) > 40


def test_a_slice_of_the_fuzz_ends_without_findings(fuzz: ModuleType, tmp_path: Path) -> None:
    report = fuzz.fuzz(CASES, RUN_SEED, workers=2, time_limit=10.0, findings_dir=tmp_path)
    assert report.findings == []
    assert report.cases == CASES
    assert sum(report.outcomes.values()) == CASES
    assert set(report.outcomes) <= {"deidentified", "rejected"}
    assert report.outcomes["deidentified"] > 0
    assert sum(report.reasons.values()) == report.outcomes["rejected"]
    assert list(tmp_path.iterdir()) == []


STREAM_CASES = 1500


def test_a_slice_through_the_stream_path_ends_without_findings(
    fuzz: ModuleType, tmp_path: Path
) -> None:
    report = fuzz.fuzz(
        STREAM_CASES, RUN_SEED + 1, workers=2, time_limit=10.0, findings_dir=tmp_path,
        api="stream-oneway",
    )  # fmt: skip
    assert report.findings == []
    assert report.cases == STREAM_CASES
    assert set(report.outcomes) <= {"deidentified", "rejected"}
    assert report.outcomes["deidentified"] > 0
    assert list(tmp_path.iterdir()) == []


def test_the_standard_uids_are_no_quoted_identifiers(fuzz: ModuleType) -> None:
    """A piece of a SOP Class UID in an audit record is a constant, not a quoted value; a
    piece of any other UID still counts."""
    audit = '{"sop_class_uid":"1.2.840.10008.5.1.4.1.1.1","study":"1.2.3.40.1000.5"}'
    assert fuzz._quoted([audit.replace("1.2.3.40.1000.5", "2.25.7")], ["0.1000"]) is None
    assert fuzz._quoted([audit], ["0.1000"]) == "0.1000"
