"""Attribute-path throughput: de-identification against a plain pydicom read + write.

Writes a synthetic CT series (512x512, 16 bits) and an MR series (256x256) into a temporary
folder (see ``synthetic.py``), then times, over the same files in the same process:

``baseline``
    ``Path.read_bytes`` -> ``pydicom.dcmread`` -> ``pydicom.dcmwrite`` to a ``BytesIO``.
``deid-upload`` / ``deid-basic``
    ``Path.read_bytes`` -> ``Deidentifier(policy, key).deidentify_bytes`` (which parses,
    plans, applies, marks, encodes and verifies: these plain files take the fast path,
    :mod:`deid.fastpath`).

Both sides read the same bytes from disk and end with the encoded output in memory. With
``--write DIR`` both sides also write every output under ``DIR`` with
:func:`deid.engine.write_atomic` (temporary name, fsync, rename): the deid side is then exactly
``Deidentifier.deidentify_file``.

Each round runs every path once over every file; the order of the paths rotates from round to
round and the median round is reported, so that drift of a shared machine hits all paths alike.
``ratio`` is deid files/s divided by baseline files/s of the same series (1.0: de-identifying
costs nothing more than reading and writing the file; 0.8: it costs 25 % more).

Usage::

    python benchmarks/bench_attributes.py [--files N] [--rounds R] [--json out.json]
                                          [--series CT MR] [--policies upload basic]
                                          [--write DIR] [--profile]

``--profile`` runs cProfile over one pass of the deid path instead of the table.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import math
import os
import platform
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom import dcmread
from pydicom.filewriter import dcmwrite

import deid
from deid import Deidentifier
from deid.engine import write_atomic
from synthetic import SERIES, write_series

#: A fixed, public benchmark key (never use a published key for real data).
BENCH_KEY = bytes(range(32))
BASELINE = "baseline"
POLICIES = ("upload", "basic")

#: One pass over a list of files: returns (outputs produced, bytes written out).
Pass = Callable[[Sequence[Path]], tuple[int, int]]


@dataclass
class PathResult:
    """Timings of one path over one series."""

    series: str
    path: str
    files: int
    bytes_in: int
    bytes_out: int
    outputs: int
    seconds: list[float] = field(default_factory=list)
    ratio: float = math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def files_per_s(self) -> float:
        return self.files / self.median

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / 1e6 / self.median

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.update(
            median_s=self.median,
            files_per_s=self.files_per_s,
            mb_per_s=self.mb_per_s,
            min_files_per_s=self.files / max(self.seconds),
            max_files_per_s=self.files / min(self.seconds),
        )
        return data


# -- the paths -----------------------------------------------------------------------------


def _sink(out_dir: Path | None, name: str) -> Callable[[Path, bytes], None]:
    if out_dir is None:
        return lambda src, data: None
    folder = out_dir / name
    return lambda src, data: write_atomic(folder / src.name, data)


def baseline_pass(out_dir: Path | None = None) -> Pass:
    """Read bytes, ``dcmread``, ``dcmwrite`` to memory (and write like deid when asked)."""
    sink = _sink(out_dir, BASELINE)

    def run(paths: Sequence[Path]) -> tuple[int, int]:
        count = size = 0
        for src in paths:
            data = src.read_bytes()
            ds = dcmread(io.BytesIO(data))
            buffer = io.BytesIO()
            dcmwrite(buffer, ds, enforce_file_format=True)
            encoded = buffer.getvalue()
            sink(src, encoded)
            count += 1
            size += len(encoded)
        return count, size

    return run


def deid_pass(engine: Deidentifier, out_dir: Path | None = None) -> Pass:
    """Read bytes, ``deidentify_bytes`` (and write atomically when asked: ``deidentify_file``)."""
    name = f"deid-{engine.policy.name}"
    folder = None if out_dir is None else out_dir / name

    def run(paths: Sequence[Path]) -> tuple[int, int]:
        count = size = 0
        for src in paths:
            if folder is None:
                result = engine.deidentify_bytes(src.read_bytes())
            else:
                result = engine.deidentify_file(src, folder / src.name)
            count += 1
            size += len(result.data)
        return count, size

    return run


def make_passes(out_dir: Path | None = None, policies: Sequence[str] = POLICIES) -> dict[str, Pass]:
    passes = {BASELINE: baseline_pass(out_dir)}
    for policy in policies:
        passes[f"deid-{policy}"] = deid_pass(Deidentifier(policy, BENCH_KEY), out_dir)
    return passes


# -- measuring -----------------------------------------------------------------------------


def measure(
    series: str,
    paths: Sequence[Path],
    passes: dict[str, Pass],
    rounds: int,
    *,
    warmup: int = 3,
) -> list[PathResult]:
    """Time every pass over ``paths`` ``rounds`` times, rotating the order of the passes."""
    bytes_in = sum(p.stat().st_size for p in paths)
    for run in passes.values():  # caches, lazy tables, first-call imports: not timed
        run(paths[:warmup])
    results = {name: PathResult(series, name, len(paths), bytes_in, 0, 0) for name in passes}
    names = list(passes)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            outputs, bytes_out = passes[name](paths)
            elapsed = time.perf_counter() - start
            result = results[name]
            result.seconds.append(elapsed)
            result.outputs, result.bytes_out = outputs, bytes_out
    base = results[BASELINE].files_per_s
    for result in results.values():
        result.ratio = result.files_per_s / base
    return list(results.values())


def run_benchmark(
    files: int,
    rounds: int,
    *,
    series: Sequence[str] = tuple(SERIES),
    policies: Sequence[str] = POLICIES,
    work_dir: Path | None = None,
    out_dir: Path | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> list[PathResult]:
    """Generate the series under ``work_dir`` (a temporary folder by default) and time them."""
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as tmp:
        root = work_dir or Path(tmp)
        results: list[PathResult] = []
        for name in series:
            start = time.perf_counter()
            paths = write_series(root / "in" / name, SERIES[name], files)
            log(f"{name}: wrote {len(paths)} files in {time.perf_counter() - start:.1f} s")
            target = None if out_dir is None else out_dir / name
            passes = make_passes(target, policies)
            results.extend(measure(name, paths, passes, rounds))
            log(f"{name}: timed {len(passes)} paths x {rounds} rounds")
        return results


# -- reporting -----------------------------------------------------------------------------


def markdown_table(results: Sequence[PathResult]) -> str:
    lines = [
        "| Series | Files | Path | Median s | ms/file | files/s | MB/s | files/s range | Ratio |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        low, high = r.files / max(r.seconds), r.files / min(r.seconds)
        lines.append(
            f"| {r.series} | {r.files} | {r.path} | {r.median:.3f} "
            f"| {1000 * r.median / r.files:.2f} | {r.files_per_s:.1f} "
            f"| {r.mb_per_s:.1f} | {low:.1f}-{high:.1f} | {r.ratio:.2f} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "deid": deid.__version__,
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
    }


def profile_deid(files: int, series: str, policy: str, top: int, out: Path | None) -> str:
    """cProfile one pass of ``deid-<policy>`` over ``series``; the top functions by cumulative."""
    with tempfile.TemporaryDirectory(prefix="deid-prof-") as tmp:
        paths = write_series(Path(tmp), SERIES[series], files)
        run = deid_pass(Deidentifier(policy, BENCH_KEY))
        run(paths[:3])
        profiler = cProfile.Profile()
        profiler.enable()
        run(paths)
        profiler.disable()
    if out is not None:
        profiler.dump_stats(out)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="files per series (200)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per path (5)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--series", nargs="+", choices=sorted(SERIES), default=list(SERIES))
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument(
        "--write", type=Path, metavar="DIR", help="both sides write every output under DIR"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the deid path instead of the table"
    )
    parser.add_argument("--profile-out", type=Path, help="save the cProfile stats here")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    args = parser.parse_args(argv)
    if args.files < 1 or args.rounds < 1:
        parser.error("--files and --rounds must be at least 1")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.profile:
        for name in args.series:
            print(profile_deid(args.files, name, args.policies[0], args.top, args.profile_out))
        return 0
    results = run_benchmark(
        args.files,
        args.rounds,
        series=args.series,
        policies=args.policies,
        out_dir=args.write,
        log=log,
    )
    env = environment()
    command = shlex.join(
        ["python", "benchmarks/bench_attributes.py", *(sys.argv[1:] if argv is None else argv)]
    )
    mode = "outputs written with write_atomic" if args.write else "outputs kept in memory"
    print(
        f"`{command}` - {env['date']}, {env['cpus']} CPUs, Python {env['python']}, "
        f"pydicom {env['pydicom']}, numpy {env['numpy']}, deid {env['deid']}; {mode}; "
        f"median of {args.rounds} rounds\n"
    )
    print(markdown_table(results))
    if args.json is not None:
        payload = {
            "command": command,
            "environment": env,
            "files": args.files,
            "rounds": args.rounds,
            "mode": "write" if args.write else "memory",
            "results": [r.as_dict() for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
