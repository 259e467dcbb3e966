"""Per-file recall of the pixel pass on the shared corpus's ground truth (default policy).

Every corpus file with ``phi: true`` boxes in ``burned_in_truth.json`` goes through
``Deidentifier("upload", key)`` (RapidOcr behind the pre-screen, as shipped). A PHI box is
covered when the boxes the pixel pass reports for its frame cover at least 90 % of its area;
boxes of text hidden in bits above Bits Stored count as covered when the pass cleared those
bits. Prints a Markdown table: file, outcome, PHI boxes, covered, the smallest cover.

    .venv/bin/python benchmarks/corpus_recall.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from deid import Deidentifier, RejectedError

MIN_COVER = 0.9
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def cover(box: dict[str, Any], blanked: list[list[float]]) -> float:
    frame = int(box.get("frame", 0))
    left, top, width, height = (int(box[k]) for k in ("left", "top", "width", "height"))
    mask = np.zeros((height, width), dtype=bool)
    for f, bl, bt, bw, bh, _ in blanked:
        if int(f) != frame:
            continue
        x0, y0 = max(int(bl) - left, 0), max(int(bt) - top, 0)
        x1, y1 = min(int(bl + bw) - left, width), min(int(bt + bh) - top, height)
        if x0 < x1 and y0 < y1:
            mask[y0:y1, x0:x1] = True
    return float(mask.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("DEID_CORPUS", DEFAULT_CORPUS))
    )
    args = parser.parse_args(argv)
    truth_file = args.corpus / "burned_in_truth.json"
    if not truth_file.is_file():
        print(f"no ground truth at {truth_file}", file=sys.stderr)
        return 2
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    engine = Deidentifier("upload", os.urandom(32))
    print("| File | Outcome | PHI boxes | Covered | Smallest cover | Seconds |")
    print("|---|---|---:|---:|---:|---:|")
    total = covered_total = 0
    for name, boxes in sorted(truth.items()):
        phi = [b for b in boxes if b.get("phi")]
        if not phi or not name.endswith(".dcm"):
            continue
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = engine.deidentify_bytes((args.corpus / name).read_bytes())
            except RejectedError as exc:
                print(f"| {name} | rejected {exc.reason.value} | {len(phi)} | - | - | - |")
                total += len(phi)
                continue
        seconds = time.perf_counter() - started
        pixels = result.audit.pixels or {}
        covers = [
            1.0
            if "bit" in str(b.get("where", "")) and pixels.get("high_bits_cleared")
            else cover(b, pixels.get("boxes", []))
            for b in phi
        ]
        hit = sum(c >= MIN_COVER for c in covers)
        total += len(phi)
        covered_total += hit
        print(
            f"| {name} | de-identified | {len(phi)} | {hit} | {min(covers):.2f} | {seconds:.1f} |"
        )
    print(f"\n{covered_total}/{total} PHI boxes covered")
    return 0 if covered_total == total else 1


if __name__ == "__main__":
    sys.exit(main())
