"""Time versions of deid's pixel pass against each other, in one process, on the pixel files
of ``bench_batch.py``'s archive (DX radiographs, every other with burned-in text, and US loops).

Each ``--tree NAME=SRC`` is a source folder holding a ``deid`` package (``src`` of a checkout
or of a ``git archive`` export of a commit). Every tree is imported under its own set of
modules (``sys.modules`` is switched to that tree's modules before each of its runs, so lazy
imports inside deid resolve to the same tree) with its own ``Deidentifier`` (policy
``upload``, or the one ``--policy NAME=POLICY`` gives that tree; the policy's OCR engine).
Every pass runs every tree over every file in turn (the order of the trees rotates per
pass); the table gives the median seconds per pass, its range, the ratio to the first tree,
the OCR calls and boxes from the audit, and whether the written bytes equal the first tree's.

::

    python benchmarks/pixel_variants.py --tree before=OLD/src --tree after=src [--passes 3]
        [--policy NAME=POLICY] [--dx N] [--us N] [--dx-scale 0.5] [--us-frames 4]
        [--profile NAME]

``--profile NAME``: one more pass of that tree under cProfile; prints the top functions by
cumulative and by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import importlib
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
KEY = bytes(range(32))


def pixel_files(dx: int, us: int, dx_scale: float, us_frames: int) -> list[tuple[str, bytes]]:
    """The DX and US files of ``bench_batch.py``'s archive, as (name, bytes)."""
    sys.path.insert(0, str(HERE))
    from bench_batch import write_archive

    with tempfile.TemporaryDirectory(prefix="deid-pixel-variants-") as tmp:
        archive = write_archive(
            Path(tmp), {"DX": dx, "US": us}, dx_scale=dx_scale, us_frames=us_frames
        )
        files = [(p.name, p.read_bytes()) for p in sorted(archive.mixed_files)]
    _forget_deid()
    return files


def _forget_deid() -> None:
    for name in list(sys.modules):
        if name == "deid" or name.startswith("deid."):
            del sys.modules[name]


class Tree:
    """One version of deid, imported from ``src``, and its engine."""

    def __init__(self, name: str, src: Path, policy: str = "upload") -> None:
        self.name = name
        _forget_deid()
        sys.path.insert(0, str(src))
        try:
            deid = importlib.import_module("deid")
            self.engine: Any = deid.Deidentifier(policy, KEY)
            importlib.import_module("deid.pixels.clean")
            importlib.import_module("deid.pixels.regions")
        finally:
            sys.path.remove(str(src))
        self.modules: dict[str, ModuleType] = {
            n: m for n, m in sys.modules.items() if n == "deid" or n.startswith("deid.")
        }
        self.seconds: list[float] = []
        self.calls = 0
        self.boxes = 0
        self.outcomes: dict[str, int] = {}
        self.digest = b""

    def use(self) -> None:
        _forget_deid()
        sys.modules.update(self.modules)

    def run(self, files: Sequence[tuple[str, bytes]]) -> float:
        """One pass over ``files``; returns its seconds and keeps what the audit says."""
        self.use()
        calls = boxes = 0
        outcomes: dict[str, int] = {}
        results = []
        start = time.perf_counter()
        for _, data in files:
            results.append(self.engine.deidentify_bytes(data))
        elapsed = time.perf_counter() - start
        digest = hashlib.sha256()
        for result in results:
            audit = result.audit
            outcome = str(getattr(audit.outcome, "value", audit.outcome))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            pixels = audit.pixels or {}
            calls += int(pixels.get("ocr_calls") or 0)
            boxes += len(pixels.get("boxes") or ())
            digest.update(hashlib.sha256(result.data or b"").digest())
        self.calls, self.boxes, self.outcomes = calls, boxes, outcomes
        self.digest = digest.digest()
        return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=SRC")
    parser.add_argument(
        "--policy",
        action="append",
        metavar="NAME=POLICY",
        default=[],
        help="a policy (name or TOML file) for the tree NAME (default: upload)",
    )
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--dx", type=int, default=10, help="DX files (10)")
    parser.add_argument("--us", type=int, default=6, help="US loops (6)")
    parser.add_argument("--dx-scale", type=float, default=0.5)
    parser.add_argument("--us-frames", type=int, default=4)
    parser.add_argument("--profile", metavar="NAME", help="profile one more pass of this tree")
    parser.add_argument("--top", type=int, default=30, help="functions listed by --profile")
    args = parser.parse_args(argv)
    files = pixel_files(args.dx, args.us, args.dx_scale, args.us_frames)
    policies = dict(spec.partition("=")[::2] for spec in args.policy)
    trees = []
    for spec in args.tree:
        name, _, src = spec.partition("=")
        trees.append(Tree(name, Path(src).resolve(), policies.get(name, "upload")))
    for tree in trees:  # untimed warm-up (the model's first runs, lazy tables)
        tree.run(files[:1] + files[-1:])
    for index in range(args.passes):
        shift = index % len(trees)
        for tree in trees[shift:] + trees[:shift]:
            tree.seconds.append(tree.run(files))
            print(f"pass {index + 1} {tree.name}: {tree.seconds[-1]:.2f} s", file=sys.stderr)
    first = statistics.median(trees[0].seconds)
    print("| Tree | s per pass | range | x first | OCR calls | boxes | outcomes | bytes = first |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for tree in trees:
        median = statistics.median(tree.seconds)
        print(
            f"| {tree.name} | {median:.2f} | {min(tree.seconds):.2f}-{max(tree.seconds):.2f} "
            f"| {first / median:.2f} | {tree.calls} | {tree.boxes} | {tree.outcomes} "
            f"| {'yes' if tree.digest == trees[0].digest else 'no'} |"
        )
    if args.profile:
        tree = next(t for t in trees if t.name == args.profile)
        profile = cProfile.Profile()
        tree.use()
        profile.enable()
        tree.run(files)
        profile.disable()
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(args.top)
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
