"""Batch throughput: ``deid.runner.run`` over a synthetic archive with 1 and N workers.

Writes a synthetic archive into a temporary folder, once per run:

- CT and MR series (``synthetic.py``: realistic headers, 512x512 / 256x256, 16 bits),
- DX radiographs (``textimages.make_dx``: 2500 x 2048 at ``--dx-scale 1``, 12 bits; every other
  one with burned-in text, the rest text-free),
- multi-frame US cine loops (``textimages.make_us_cine``: 800 x 600 RGB, ``--us-frames``
  frames, a banner with the patient's name and a clock on every frame),

DX and US get patient, study and series headers like the CT/MR series (made-up values). The
default mix is **62 % CT, 30 % MR, 5 % DX, 3 % multi-frame US by file count**: an archive
counted in instances is mostly CT and MR slices (a CT study alone is hundreds of them), while
a radiograph is one instance and an US loop a few.

Then times, in the same process, rotating the order from round to round (median reported):

``baseline``
    A plain pydicom ``dcmread`` + ``dcmwrite`` of every CT/MR file, each output written like the
    runner writes (temporary name, fsync, rename), in a process pool of the same size
    (``spawn``) for N workers, in this process for 1.
``attribute``
    ``deid.runner.run(engine, src, dst, workers=W)`` over the CT/MR files only (plain slices
    skip the pixel pass: the attribute path).
``mixed``
    ``deid.runner.run`` over the whole archive (CT/MR + DX + US).

Every timed run writes into a fresh output folder (removed afterwards, not timed) and includes
what the run costs a user: for N workers, starting the worker processes (``spawn``: each
imports deid and, on the first pixel file, loads the OCR model). Ratios:

- ``attribute / baseline``: files/s of the attribute path over the baseline's, same workers;
- ``mixed / attribute``: files/s of the whole archive over the attribute-only rate, same
  workers (target >= 0.5: the OCR gate must keep most files on the fast path);
- ``N / 1``: files/s with N workers over files/s with 1 (scaling), for each path.

Usage::

    python benchmarks/bench_batch.py [--files N] [--workers N] [--rounds R] [--mix CT MR DX US]
                                     [--dx-scale S] [--us-frames F] [--policy P] [--json out]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime
import gc
import io
import json
import math
import multiprocessing
import os
import platform
import random
import shlex
import shutil
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
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite

import deid
from deid import Deidentifier
from deid.engine import write_atomic
from deid.runner import AUDIT_NAME, run
from synthetic import SERIES, write_series
from textimages import make_dx, make_us_cine, to_dataset

#: A fixed, public benchmark key (never use a published key for real data).
BENCH_KEY = bytes(range(32))
#: Default shares of the archive by file count (CT, MR, DX, US multi-frame).
MIX = {"CT": 0.62, "MR": 0.30, "DX": 0.05, "US": 0.03}
BASELINE, ATTRIBUTE, MIXED = "baseline", "attribute", "mixed"
PATHS = (BASELINE, ATTRIBUTE, MIXED)


# -- the archive -----------------------------------------------------------------------------


@dataclass
class Archive:
    """The files written for one run: CT/MR under ``attribute``, all of them under ``mixed``."""

    root: Path
    counts: dict[str, int]
    attribute_files: list[Path] = field(default_factory=list)
    mixed_files: list[Path] = field(default_factory=list)

    @property
    def attribute(self) -> Path:
        return self.root / "attribute"

    @property
    def mixed(self) -> Path:
        return self.root / "mixed"


def split_counts(files: int, mix: dict[str, float]) -> dict[str, int]:
    """``files`` split by ``mix`` (largest remainders), every kind with a share getting >= 1."""
    total = sum(mix.values())
    exact = {kind: files * share / total for kind, share in mix.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    for kind in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True):
        if sum(counts.values()) >= files:
            break
        counts[kind] += 1
    for kind, share in mix.items():
        if share > 0 and counts[kind] == 0:
            counts[kind] = 1
    return counts


_GIVEN = ("ANNA", "BORIS", "CHIDI", "DANA", "EMIL", "FATIMA", "GUNNAR", "HANA")
_FAMILY = ("ABERNATHY", "BALOGUN", "CASTELLANOS", "DROZDOV", "EKSTROM", "FUJIWARA")


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(127)}"


def _with_headers(ds: Dataset, rng: random.Random, study: dict[str, str], index: int) -> Dataset:
    """Patient, study and series headers on a ``textimages.to_dataset`` data set (made up)."""
    ds.PatientName = study["name"]
    ds.PatientID = study["patient_id"]
    ds.PatientBirthDate = study["birth_date"]
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study["study_uid"]
    ds.SeriesInstanceUID = study["series_uid"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study["date"]
    ds.StudyTime = ds.ContentTime = "101500"
    ds.AccessionNumber = study["accession"]
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.InstitutionName = "LAKESIDE REGIONAL HOSPITAL"
    ds.ReferringPhysicianName = "WHITFIELD^GRACE"
    ds.Manufacturer = "SYNTHETIC"
    ds.StationName = "ROOM-7"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.FrameOfReferenceUID = _uid(rng)
    return ds


def _study(rng: random.Random) -> dict[str, str]:
    return {
        "name": f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}",
        "patient_id": f"PID{rng.randrange(10**7):07d}",
        "birth_date": f"19{rng.randrange(30, 99)}0{rng.randrange(1, 10)}1{rng.randrange(10)}",
        "accession": f"ACC{rng.randrange(10**8):08d}",
        "date": f"2024{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}",
        "study_uid": _uid(rng),
        "series_uid": _uid(rng),
    }


def _write_images(
    folder: Path,
    kind: str,
    count: int,
    make: Callable[[int, bool], object],
    text: Callable[[int], bool],
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"bench-batch:{kind}")
    study = _study(rng)
    paths = []
    for index in range(count):
        if index % 4 == 0:  # a new study every few images
            study = _study(rng)
        ds = _with_headers(to_dataset(make(index, text(index))), rng, study, index)  # type: ignore[arg-type]
        path = folder / f"{kind}{index:04d}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def write_archive(
    root: Path,
    counts: dict[str, int],
    *,
    dx_scale: float = 1.0,
    us_frames: int = 8,
    log: Callable[[str], None] = lambda line: None,
) -> Archive:
    """Write the archive under ``root``: ``attribute/{CT,MR}`` and ``mixed/{CT,MR,DX,US}``
    (``mixed``'s CT/MR are hard links to the same files where the file system allows)."""
    archive = Archive(root, dict(counts))
    for name in ("CT", "MR"):
        if counts.get(name, 0):
            start = time.perf_counter()
            paths = write_series(archive.attribute / name, SERIES[name], counts[name])
            archive.attribute_files.extend(paths)
            log(f"{name}: wrote {len(paths)} files in {time.perf_counter() - start:.1f} s")
    for path in archive.attribute_files:
        target = archive.mixed / path.relative_to(archive.attribute)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        archive.mixed_files.append(target)
    makers: dict[str, tuple[Callable[[int, bool], object], Callable[[int], bool]]] = {
        "DX": (lambda i, t: make_dx(7000 + i, scale=dx_scale, text=t), lambda i: i % 2 == 0),
        "US": (lambda i, t: make_us_cine(9000 + i, frames=us_frames, text=t), lambda i: True),
    }
    for name, (make, text) in makers.items():
        if counts.get(name, 0):
            start = time.perf_counter()
            paths = _write_images(archive.mixed / name, name, counts[name], make, text)
            archive.mixed_files.extend(paths)
            log(f"{name}: wrote {len(paths)} files in {time.perf_counter() - start:.1f} s")
    return archive


# -- the timed paths -------------------------------------------------------------------------


def _baseline_one(job: tuple[str, str]) -> int:
    """``dcmread`` + ``dcmwrite`` one file; written like the runner writes. Returns bytes out."""
    src, dst = job
    ds = dcmread(io.BytesIO(Path(src).read_bytes()))
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    data = buffer.getvalue()
    write_atomic(Path(dst), data)
    return len(data)


def baseline(files: Sequence[Path], src: Path, dst: Path, workers: int) -> dict[str, int]:
    """The plain pydicom read + write of ``files`` into ``dst`` (a pool for workers > 1)."""
    jobs = [(str(path), str(dst / path.relative_to(src))) for path in files]
    if workers == 1:
        sizes = [_baseline_one(job) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")  # as the runner starts its workers
        with cf.ProcessPoolExecutor(workers, context) as pool:
            sizes = list(pool.map(_baseline_one, jobs, chunksize=1))
    return {"deidentified": len(sizes), "pixel_pass": 0, "ocr_calls": 0}


def deid_run(engine: Deidentifier, src: Path, dst: Path, workers: int) -> dict[str, int]:
    """``deid.runner.run``; returns the outcome counts and how many files took the pixel pass."""
    summary = run(engine, src, dst, workers=workers)
    counts: dict[str, int] = {o.value: n for o, n in summary.counts.items()}
    pixel_pass = ocr_calls = 0
    for line in (dst / AUDIT_NAME).read_text(encoding="utf-8").splitlines():
        pixels = json.loads(line).get("pixels")
        if pixels:
            pixel_pass += 1
            ocr_calls += int(pixels.get("ocr_calls") or 0)
    return counts | {"pixel_pass": pixel_pass, "ocr_calls": ocr_calls}


# -- measuring -------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """Timings of one path with one number of workers."""

    path: str
    workers: int
    files: int
    bytes_in: int
    seconds: list[float] = field(default_factory=list)
    #: Per round, the same path over a single CT file with the same workers (N > 1 only):
    #: starting the pool (spawn, imports, the engine unpickled) and one file.
    startup: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def files_per_s(self) -> float:
        return self.files / self.median

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / 1e6 / self.median

    @property
    def steady_files_per_s(self) -> float:
        """Files/s once the workers run: (files - 1) / (seconds - startup), median of rounds
        (= files/s for 1 worker, which runs in this process, warmed up)."""
        if not self.startup or self.files < 2:
            return self.files_per_s
        rates = [
            (self.files - 1) / max(total - start, 1e-9)
            for total, start in zip(self.seconds, self.startup, strict=True)
        ]
        return statistics.median(rates)

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {
            "median_s": self.median,
            "files_per_s": self.files_per_s,
            "mb_per_s": self.mb_per_s,
            "steady_files_per_s": self.steady_files_per_s,
            "min_files_per_s": self.files / max(self.seconds),
            "max_files_per_s": self.files / min(self.seconds),
        }


@dataclass
class BatchReport:
    counts: dict[str, int]
    workers: list[int]
    rounds: int
    policy: str
    results: list[BatchResult]

    def get(self, path: str, workers: int) -> BatchResult | None:
        for result in self.results:
            if (result.path, result.workers) == (path, workers):
                return result
        return None

    def ratio(self, path: str, over: str, workers: int) -> float:
        top, bottom = self.get(path, workers), self.get(over, workers)
        if top is None or bottom is None:
            return math.nan
        return top.steady_files_per_s / bottom.steady_files_per_s

    def scaling(self, path: str) -> float:
        low, high = self.get(path, min(self.workers)), self.get(path, max(self.workers))
        if low is None or high is None or low is high:
            return math.nan
        return high.steady_files_per_s / low.steady_files_per_s

    def ratios(self) -> dict[str, float]:
        found = {}
        for workers in self.workers:
            found[f"attribute/baseline@{workers}"] = self.ratio(ATTRIBUTE, BASELINE, workers)
            found[f"mixed/attribute@{workers}"] = self.ratio(MIXED, ATTRIBUTE, workers)
        if len(self.workers) > 1:
            for path in PATHS:
                found[f"scaling:{path}"] = self.scaling(path)
        return found


def run_benchmark(
    counts: dict[str, int],
    *,
    workers: Sequence[int] = (1, os.cpu_count() or 1),
    rounds: int = 3,
    policy: str = "upload",
    dx_scale: float = 0.5,
    us_frames: int = 4,
    work_dir: Path | None = None,
    keep_outputs: bool = False,
    ocr: str | None = None,
    measure_startup: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> BatchReport:
    """Write the archive under ``work_dir`` (a temporary folder by default) and time every path
    with every number of workers ``rounds`` times. With ``keep_outputs`` the last round's
    outputs stay under ``work_dir/out/<path>-<workers>``. ``ocr``: the OCR engine's name (default:
    the policy's; ``"static"`` finds no text and costs nothing, for tests). ``measure_startup``:
    time the 1-file run of every N-worker path (steady files/s; without it, = files/s)."""
    workers = sorted(set(workers))
    with tempfile.TemporaryDirectory(prefix="deid-bench-batch-") as tmp:
        root = work_dir or Path(tmp)
        archive = write_archive(
            root / "in", counts, dx_scale=dx_scale, us_frames=us_frames, log=log
        )
        engine = Deidentifier(policy, BENCH_KEY, ocr=ocr)
        sources = {
            BASELINE: (archive.attribute, archive.attribute_files),
            ATTRIBUTE: (archive.attribute, archive.attribute_files),
            MIXED: (archive.mixed, archive.mixed_files),
        }

        def one(
            path: str, count: int, dst: Path, where: dict[str, tuple[Path, list[Path]]] = sources
        ) -> dict[str, int]:
            src, files = where[path]
            if path == BASELINE:
                return baseline(files, src, dst, count)
            return deid_run(engine, src, dst, count)

        warm_up(engine, archive, root / "warm")
        single = root / "single"
        first = archive.attribute_files[0]
        (single / first.parent.name).mkdir(parents=True)
        shutil.copyfile(first, single / first.parent.name / first.name)
        single_src = {path: (single, [single / first.parent.name / first.name]) for path in PATHS}
        configs = [(path, count) for count in workers for path in PATHS]
        results = {
            (path, count): BatchResult(
                path,
                count,
                len(sources[path][1]),
                sum(p.stat().st_size for p in sources[path][1]),
            )
            for path, count in configs
        }
        out = root / "out"
        for round_ in range(rounds):
            shift = round_ % len(configs)
            for path, count in configs[shift:] + configs[:shift]:
                dst = out / f"{path}-{count}"
                shutil.rmtree(dst, ignore_errors=True)
                result = results[(path, count)]
                if count > 1 and measure_startup:
                    gc.collect()
                    start = time.perf_counter()
                    one(path, count, out / "single", single_src)
                    result.startup.append(time.perf_counter() - start)
                    shutil.rmtree(out / "single")
                gc.collect()
                start = time.perf_counter()
                outcomes = one(path, count, dst)
                elapsed = time.perf_counter() - start
                result.seconds.append(elapsed)
                result.outcomes = outcomes
                log(
                    f"round {round_ + 1}/{rounds} {path:9} workers={count}: {elapsed:6.2f} s "
                    f"({result.files / elapsed:.1f} files/s)"
                )
                if not (keep_outputs and round_ == rounds - 1):
                    shutil.rmtree(dst, ignore_errors=True)
        return BatchReport(dict(counts), workers, rounds, policy, [results[c] for c in configs])


def warm_up(engine: Deidentifier, archive: Archive, folder: Path) -> None:
    """One file of each kind through every path in this process, untimed (imports, lazy
    tables, the OCR model of ``engine`` for the 1-worker runs)."""
    src = folder / "in"
    firsts: dict[Path, Path] = {}
    for path in archive.mixed_files:
        firsts.setdefault(path.parent, path)
    for path in firsts.values():
        target = src / path.relative_to(archive.mixed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    baseline(sorted(src.rglob("*.dcm")), src, folder / BASELINE, 1)
    deid_run(engine, src, folder / MIXED, 1)
    shutil.rmtree(folder)


# -- reporting -------------------------------------------------------------------------------


def markdown_tables(report: BatchReport) -> str:
    lines = [
        "| Path | Files | Workers | Median s | files/s | MB/s | files/s range "
        "| Startup s | Steady files/s | Pixel pass (OCR calls) | Outcomes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report.results:
        low, high = r.files / max(r.seconds), r.files / min(r.seconds)
        outcomes = ", ".join(f"{k} {v}" for k, v in r.outcomes.items() if v and k in _OUTCOMES)
        pixel = (
            "-" if r.path == BASELINE else f"{r.outcomes['pixel_pass']} ({r.outcomes['ocr_calls']})"
        )
        startup = f"{statistics.median(r.startup):.2f}" if r.startup else "-"
        lines.append(
            f"| {r.path} | {r.files} | {r.workers} | {r.median:.2f} | {r.files_per_s:.1f} "
            f"| {r.mb_per_s:.1f} | {low:.1f}-{high:.1f} | {startup} "
            f"| {r.steady_files_per_s:.1f} | {pixel} | {outcomes} |"
        )
    for r in report.results:
        if r.outcomes.get("deidentified", 0) != r.files:
            lines.append(
                f"\n**Warning: {r.path} with {r.workers} worker(s) de-identified "
                f"{r.outcomes.get('deidentified', 0)} of {r.files} files; its rates do not count.**"
            )
    lines += [
        "",
        "| Ratio (steady files/s) | " + " | ".join(f"{w} worker(s)" for w in report.workers) + " |",
    ]
    lines.append("|---|" + "---:|" * len(report.workers))
    for label, top, bottom in (
        ("attribute / baseline", ATTRIBUTE, BASELINE),
        ("mixed / attribute (target >= 0.5)", MIXED, ATTRIBUTE),
    ):
        cells = " | ".join(f"{report.ratio(top, bottom, w):.2f}" for w in report.workers)
        lines.append(f"| {label} | {cells} |")
    if len(report.workers) > 1:
        low, high = min(report.workers), max(report.workers)
        lines += ["", f"| Scaling {high} / {low} workers | steady files/s ratio |", "|---|---:|"]
        for path in PATHS:
            lines.append(f"| {path} | {report.scaling(path):.2f} |")
    return "\n".join(lines)


_OUTCOMES = ("deidentified", "rejected", "failed", "skipped")


def environment() -> dict[str, object]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "deid": deid.__version__,
        "pydicom": pydicom.__version__,
        "numpy": np.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="files in the archive (200)")
    parser.add_argument(
        "--mix",
        type=float,
        nargs=4,
        metavar=("CT", "MR", "DX", "US"),
        default=list(MIX.values()),
        help="shares by file count (0.62 0.30 0.05 0.03)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="N: runs with 1 and N workers (CPU count)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (3)")
    parser.add_argument("--policy", default="upload", help="deid policy (upload)")
    parser.add_argument(
        "--dx-scale", type=float, default=0.5, help="DX size (0.5: 1250x1024; 1: 2500x2048)"
    )
    parser.add_argument("--us-frames", type=int, default=4, help="frames per US loop (4)")
    parser.add_argument("--ocr", help="OCR engine name (default: the policy's)")
    parser.add_argument("--work-dir", type=Path, help="keep the archive and last outputs here")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.files < 1 or args.rounds < 1 or args.workers < 1 or args.us_frames < 1:
        parser.error("--files, --rounds, --workers and --us-frames must be at least 1")
    counts = split_counts(args.files, dict(zip(MIX, args.mix, strict=True)))

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    log(f"archive: {counts}")
    report = run_benchmark(
        counts,
        workers=(1, args.workers),
        rounds=args.rounds,
        policy=args.policy,
        dx_scale=args.dx_scale,
        us_frames=args.us_frames,
        work_dir=args.work_dir,
        keep_outputs=args.work_dir is not None,
        ocr=args.ocr,
        log=log,
    )
    env = environment()
    command = shlex.join(
        ["python", "benchmarks/bench_batch.py", *(sys.argv[1:] if argv is None else argv)]
    )
    mix = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(
        f"`{command}` - {env['date']}, {env['cpus']} CPUs, Python {env['python']}, "
        f"pydicom {env['pydicom']}, deid {env['deid']}; policy {args.policy}; archive: {mix}; "
        f"median of {args.rounds} rounds\n"
    )
    print(markdown_tables(report))
    if args.json is not None:
        payload = {
            "command": command,
            "environment": env,
            "counts": counts,
            "policy": args.policy,
            "rounds": args.rounds,
            "workers": report.workers,
            "dx_scale": args.dx_scale,
            "us_frames": args.us_frames,
            "ocr": args.ocr or "policy default",
            "results": [r.as_dict() for r in report.results],
            "ratios": report.ratios(),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
