"""Peak memory and throughput of ``deidentify_stream`` against ``deidentify_bytes``.

Writes one large multi-frame object into a temporary folder (a synthetic CT header from
``synthetic.py`` made multi-frame: ``--frames`` frames of ``--size`` x ``--size``, 16 bits
allocated, native Explicit VR Little Endian; 512 x 512 x 400 frames = 200 MiB by default),
then de-identifies it, each run in a **fresh subprocess**, by two paths:

``bytes``
    ``Path.read_bytes`` -> ``Deidentifier.deidentify_bytes`` -> the output written to a file
    (what ``deidentify_file`` does).
``stream``
    ``open(src, "rb")`` / ``open(dst, "wb")`` -> ``Deidentifier.deidentify_stream``.

and, with ``--pass static``, under ``clean_pixel_data = "always"`` with the ``static`` OCR
engine (finds no text, loads no model): every frame is decoded and scanned, the pixel pass's
frame-at-a-time path, without OCR time.

Each child first de-identifies a 2-frame object of the same header (lazy tables and imports,
untimed), then measures one call: the **tracemalloc peak** (Python allocations during the call,
in a child of its own, as tracemalloc slows the call down), the **RSS high-water mark** of the
call (Linux: the process's peak reset through ``/proc/self/clear_refs`` before the call, read
from ``VmHWM`` after; elsewhere ``ru_maxrss``) less the RSS at its start, and the wall time.
Both outputs are compared byte for byte. Ratios are stream / bytes from the same run: peak
memory, and throughput (bytes time / stream time; median of ``--rounds`` rounds, the order of
the two paths alternating).

Usage::

    python benchmarks/bench_stream.py [--size 512] [--frames 400] [--rounds 3]
                                      [--pass none|static] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.filewriter import dcmwrite

HERE = Path(__file__).resolve().parent
KEY = bytes(range(32))
MIB = 1 << 20


def write_object(path: Path, size: int, frames: int, seed: int = 0) -> int:
    """A multi-frame CT object of ``frames`` frames, written frame by frame; its size."""
    sys.path.insert(0, str(HERE))
    try:
        import synthetic
    finally:
        sys.path.remove(str(HERE))
    ds = next(iter(synthetic.ct_series(1, size, random.Random(seed))))
    del ds.PixelData
    ds.NumberOfFrames = frames
    with open(path, "wb") as handle:
        dcmwrite(handle, ds, enforce_file_format=True)
        frame_bytes = size * size * 2
        handle.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, frame_bytes * frames))
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 4096, size=(size, size), dtype=np.uint16)
        for index in range(frames):
            handle.write(((base + index) & 0x0FFF).astype("<u2").tobytes())
    return path.stat().st_size


def _engine(mode: str) -> Any:
    from deid import Deidentifier, Policy, load_policy
    from deid.codes import PixelMode
    from deid.ocr import StaticOcr

    if mode == "none":
        return Deidentifier("upload", KEY)
    base = load_policy("upload")
    policy = Policy(
        options=base.options,
        overrides=base.overrides,
        name="upload-always",
        clean_pixel_data=PixelMode.ALWAYS,
        pixels=base.pixels,
    )
    return Deidentifier(policy, KEY, ocr=StaticOcr(), prescreen=False)


def _run(path_kind: str, engine: Any, src: Path, dst: Path) -> None:
    if path_kind == "bytes":
        result = engine.deidentify_bytes(src.read_bytes())
        dst.write_bytes(result.data)
        return
    with open(src, "rb") as source, open(dst, "wb") as target:
        engine.deidentify_stream(source, target)


def _hwm_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def child(args: argparse.Namespace) -> None:
    """One measured call in this (fresh) process; prints a JSON line."""
    engine = _engine(args.pass_)
    small = Path(args.warm)
    _run(args.path, engine, small, small.with_suffix(".out"))
    rss_start = _status("VmRSS") or 0
    reset = _hwm_reset()
    if args.trace:
        tracemalloc.start()
        _run(args.path, engine, Path(args.src), Path(args.dst))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps({"tracemalloc_peak": peak}))
        return
    start = time.perf_counter()
    _run(args.path, engine, Path(args.src), Path(args.dst))
    seconds = time.perf_counter() - start
    hwm = _status("VmHWM") if reset else None
    if hwm is None:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rss_hwm": hwm, "rss_start": rss_start}))


def _spawn(path_kind: str, mode: str, src: Path, dst: Path, warm: Path, trace: bool) -> Any:
    command = [sys.executable, __file__, "--child", path_kind, "--pass", mode]
    command += ["--src", str(src), "--dst", str(dst), "--warm", str(warm)]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def measure(size: int, frames: int, rounds: int, mode: str, folder: Path) -> dict[str, Any]:
    src = folder / "object.dcm"
    warm = folder / "warm.dcm"
    total = write_object(src, size, frames)
    write_object(warm, size, 2)
    out: dict[str, Any] = {"bytes": {}, "stream": {}}
    times: dict[str, list[float]] = {"bytes": [], "stream": []}
    digests: dict[str, str] = {}
    for round_ in range(rounds):
        order = ["bytes", "stream"] if round_ % 2 == 0 else ["stream", "bytes"]
        for kind in order:
            dst = folder / f"out-{kind}.dcm"
            run = _spawn(kind, mode, src, dst, warm, trace=False)
            times[kind].append(run["seconds"])
            growth = run["rss_hwm"] - run["rss_start"]
            out[kind]["rss_growth"] = max(out[kind].get("rss_growth", 0), growth)
            digests[kind] = _digest(dst)
            dst.unlink()
    for kind in ("bytes", "stream"):
        dst = folder / f"out-{kind}.dcm"
        traced = _spawn(kind, mode, src, dst, warm, trace=True)
        out[kind]["tracemalloc_peak"] = traced["tracemalloc_peak"]
        dst.unlink(missing_ok=True)
        out[kind]["seconds"] = statistics.median(times[kind])
        out[kind]["range"] = [min(times[kind]), max(times[kind])]
        out[kind]["mb_s"] = total / 1e6 / out[kind]["seconds"]
    out["identical"] = digests["bytes"] == digests["stream"]
    out["input_bytes"] = total
    out["frame_bytes"] = size * size * 2
    out["ratio_throughput"] = out["bytes"]["seconds"] / out["stream"]["seconds"]
    out["ratio_tracemalloc"] = out["stream"]["tracemalloc_peak"] / out["bytes"]["tracemalloc_peak"]
    out["ratio_rss"] = out["stream"]["rss_growth"] / max(1, out["bytes"]["rss_growth"])
    return out


def table(result: dict[str, Any], args: argparse.Namespace) -> str:
    frame = result["frame_bytes"]
    lines = [
        f"{args.frames} frames of {args.size}x{args.size}x16 bit "
        f"({result['input_bytes'] / MIB:.1f} MiB; a frame {frame / MIB:.2f} MiB), "
        f"pixel pass: {args.pass_}, outputs identical: {result['identical']}",
        "",
        "| Path | tracemalloc peak MiB | RSS growth MiB | Median s | s range | MB/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in ("bytes", "stream"):
        row = result[kind]
        lines.append(
            f"| {kind} | {row['tracemalloc_peak'] / MIB:.1f} | {row['rss_growth'] / MIB:.1f} "
            f"| {row['seconds']:.2f} | {row['range'][0]:.2f}-{row['range'][1]:.2f} "
            f"| {row['mb_s']:.0f} |"
        )
    lines += [
        "",
        f"stream / bytes: tracemalloc peak {result['ratio_tracemalloc']:.3f}, "
        f"RSS growth {result['ratio_rss']:.3f}, throughput {result['ratio_throughput']:.2f}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pass", dest="pass_", choices=("none", "static"), default="none")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=("bytes", "stream"), help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--dst", help=argparse.SUPPRESS)
    parser.add_argument("--warm", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.path = args.child
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="deid-bench-stream-") as folder:
        result = measure(args.size, args.frames, args.rounds, args.pass_, Path(folder))
    result["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    print(table(result, args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
