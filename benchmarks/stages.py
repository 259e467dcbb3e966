"""Per-stage timings of the attribute path: each stage of ``Deidentifier._run`` timed on its own.

Runs the stages of :meth:`deid.Deidentifier._run` one after the other on every file of a
synthetic series (``synthetic.py``), timing each, and prints milliseconds per file (median of
the rounds) beside a plain pydicom read + write of the same files.

Usage::

    python benchmarks/stages.py [--series CT] [--policy upload] [--files 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pydicom import dcmread
from pydicom.filewriter import dcmwrite

from deid import Deidentifier
from deid.codes import ProfileOption
from deid.encoding import encode_with_last
from deid.engine import _for_verification, _pixel_value, _skipped, read_dataset
from deid.identifiers import collect
from deid.markers import add_markers, new_file_meta, transfer_syntax
from deid.plan import build_plan
from deid.verify import verify
from synthetic import SERIES, write_series

KEY = bytes(range(32))


def _stages(engine: Deidentifier, data: bytes, times: dict[str, float]) -> None:
    from deid import gates
    from deid.actions import apply_plan

    clock = time.perf_counter
    t0 = clock()
    ds = read_dataset(data)
    t1 = clock()
    gates.check(ds, engine.policy)
    t2 = clock()
    identifiers = collect(ds)
    t3 = clock()
    plan = build_plan(ds, engine.policy, engine._plan_cache)
    t4 = clock()
    context = engine._context(ds, identifiers)
    apply_plan(ds, plan, context)
    t5 = clock()
    ts = transfer_syntax(ds)
    marked = add_markers(ds, engine.policy)
    ds.file_meta = new_file_meta(ds, ts)
    ds.preamble = b"\x00" * 128
    t6 = clock()
    encoded, last = encode_with_last(ds)
    t7 = clock()
    pixels = _pixel_value(ds)
    verify(
        ds,
        encoded,
        _for_verification(identifiers, engine.policy),
        skip=_skipped(engine.policy),
        pixel_value=pixels,
        pixel_at_end=pixels is not None and last is pixels,
        ignore=marked,
        shifted_dates=ProfileOption.RETAIN_LONG_MODIFIED_DATES in engine.policy.options,
        scrubber=context.built_scrubber,
    )
    t8 = clock()
    plan.counts()
    t9 = clock()
    for name, start, stop in (
        ("read", t0, t1),
        ("gates", t1, t2),
        ("collect", t2, t3),
        ("plan", t3, t4),
        ("apply", t4, t5),
        ("markers+meta", t5, t6),
        ("encode", t6, t7),
        ("verify", t7, t8),
        ("counts", t8, t9),
    ):
        times[name] += stop - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", default="CT", choices=sorted(SERIES))
    parser.add_argument("--policy", default="upload")
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    engine = Deidentifier(args.policy, KEY)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_series(Path(tmp), SERIES[args.series], args.files)
        blobs = [p.read_bytes() for p in paths]
    for data in blobs[:3]:
        engine.deidentify_bytes(data)
    rounds: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        times: dict[str, float] = defaultdict(float)
        for data in blobs:
            _stages(engine, data, times)
        start = time.perf_counter()
        for data in blobs:
            engine.deidentify_bytes(data)
        times["(whole deid)"] = time.perf_counter() - start
        start = time.perf_counter()
        for data in blobs:
            buffer = io.BytesIO()
            dcmwrite(buffer, dcmread(io.BytesIO(data)), enforce_file_format=True)
        times["(baseline)"] = time.perf_counter() - start
        for name, value in times.items():
            rounds[name].append(value)
    total = 0.0
    for name, values in rounds.items():
        ms = statistics.median(values) / len(blobs) * 1e3
        if not name.startswith("("):
            total += ms
        print(f"{name:>14} {ms:6.3f} ms/file")
    print(f"{'sum of stages':>14} {total:6.3f} ms/file")


if __name__ == "__main__":
    main()
