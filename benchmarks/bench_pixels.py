"""Pixel path benchmark: text line recall, false blanking and frames/s of the OCR configurations.

Synthetic set (``textimages.py``): per object type, ``--per-kind`` images with text and
``--text-free`` without (the realistic mix is mostly text-free). Per configuration and type:

- line recall: a ground-truth line counts as found when at least ``COVERED`` (95 %) of its ink
  pixels are inside the returned boxes (the boxes' own padding included);
- false blanking: the share of the pixels of text-free frames inside returned boxes;
- frames/s over all frames of the type (with and without text), and over the whole mix.

Corpus (``../shared/corpus/burned_in_truth.json``): every box with ``phi: true`` on a decoded
frame must be covered; a box counts as covered when at least ``CORPUS_COVERED`` (90 %) of its
area is inside the returned boxes (the truth has boxes, not ink masks).

Pixel pass (``--no-pass`` leaves it out): :func:`deid.pixels.clean_pixels` on each synthetic
object as a DICOM data set (``textimages.to_dataset``): pre-screen, reads, the second round,
blanking, writing and verification, as the engine runs it, reading whole frames or only the
places the pre-screen flags (crops; the default). Line recall and false blanking from the
blanked boxes the pass reports, with the lines whose every ink pixel was blanked and the
smallest share of a line's ink blanked (how close a line came to the 95 %); frames/s over
the whole pass; detector reads counted.

The issue's baseline is EasyOCR ``readtext`` on every frame at full size: ``EasyOcr()``
(CRAFT detection, then the English recogniser on every box, as ``readtext`` does) when the
easyocr extra is installed (``make easyocr``). Without it the in-run baseline is RapidOcr
detection + recognition on every frame at full size with no pre-screen.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import textimages
from deid import ResidualPhiError
from deid.ocr import TextBox
from deid.ocr.easy import EasyOcr
from deid.ocr.prescreen import TextPrescreen
from deid.ocr.rapid import RapidOcr

COVERED = 0.95
CORPUS_COVERED = 0.90
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

Detector = Callable[[Any], list[TextBox]]


@dataclass
class Row:
    config: str
    kind: str
    frames: int
    lines: int
    found: int
    free_pixels: int
    blanked_free: int
    seconds: float

    @property
    def recall(self) -> float:
        return self.found / self.lines if self.lines else 1.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else float("inf")


def configurations(threads: int, *, easyocr: bool = True) -> dict[str, Detector]:
    """name -> detector (image -> boxes); the EasyOCR baseline first where installed and
    ``easyocr``."""
    full = RapidOcr(threads=threads)
    half = RapidOcr(scale=0.5, threads=threads)
    reader = RapidOcr(recognize=True, threads=threads)
    prescreen = TextPrescreen()

    def screened(engine: RapidOcr) -> Detector:
        return lambda image: engine.detect(image) if prescreen(image) else []

    baseline: dict[str, Detector] = {}
    if easyocr and EasyOcr.is_available():
        baseline["baseline: EasyOCR readtext, full size, every frame"] = EasyOcr().detect
        rapid_rec = "RapidOcr det+rec, full size, every frame"
    else:
        rapid_rec = "baseline: det+rec, full size, every frame"
    return {
        **baseline,
        rapid_rec: reader.detect,
        "det, full size": full.detect,
        "det, half size": half.detect,
        "pre-screen + det, full size": screened(full),
        "pre-screen + det, half size": screened(half),
    }


def _xywh(boxes: Sequence[TextBox]) -> list[tuple[int, int, int, int]]:
    return [(b.left, b.top, b.width, b.height) for b in boxes]


def run_synthetic(
    detectors: dict[str, Detector], items: Sequence[textimages.TextImage]
) -> list[Row]:
    rows: list[Row] = []
    for config, detect in detectors.items():
        for kind in dict.fromkeys(item.kind for item in items):
            row = Row(config, kind, 0, 0, 0, 0, 0, 0.0)
            for item in (i for i in items if i.kind == kind):
                for frame, image in enumerate(item.frames()):
                    start = time.perf_counter()
                    boxes = detect(image)
                    row.seconds += time.perf_counter() - start
                    row.frames += 1
                    lines = item.frame_lines(frame)
                    if not lines:
                        mask = np.zeros(image.shape[:2], bool)
                        for box in boxes:
                            mask[box.top : box.bottom, box.left : box.right] = True
                        row.free_pixels += mask.size
                        row.blanked_free += int(mask.sum())
                    for line in lines:
                        row.lines += 1
                        row.found += textimages.ink_coverage(line, _xywh(boxes)) >= COVERED
            rows.append(row)
    return rows


# -- the whole pixel pass ---------------------------------------------------------------------


@dataclass
class PassRow(Row):
    reads: int = 0
    objects: int = 0
    rejected: int = 0  # verification still found text: the engine would reject the object
    all_ink: int = 0  # lines with every ink pixel inside the blanked boxes
    least_cover: float = 1.0  # the smallest share of a line's ink inside the blanked boxes


def pass_configurations(threads: int) -> dict[str, Callable[[Any], Any]]:
    """name -> ``data set -> PixelReport``: the pixel pass reading whole frames, and reading
    the pre-screen's places (where this deid has them)."""
    from deid.pixels import clean_pixels
    from deid.policy import PixelSettings

    engine = RapidOcr(threads=threads)
    screen = TextPrescreen()
    pad = PixelSettings().pad  # the policies' default
    passes: dict[str, Callable[[Any], Any]] = {
        "pixel pass, whole frames": lambda ds: clean_pixels(ds, engine, prescreen=screen, pad=pad),
    }
    try:
        from deid.pixels.regions import OneScan
    except ImportError:  # a deid from before crop reading
        return passes

    def places(ds: Any) -> Any:
        once = OneScan(screen.scan)
        return clean_pixels(ds, engine, prescreen=once.flagged, candidates=once.candidates, pad=pad)

    passes["pixel pass, places (default)"] = places
    return passes


def run_passes(
    passes: dict[str, Callable[[Any], Any]], items: Sequence[textimages.TextImage]
) -> list[PassRow]:
    rows: list[PassRow] = []
    datasets = [(item, textimages.to_dataset(item)) for item in items]
    for config, clean in passes.items():
        for kind in dict.fromkeys(item.kind for item in items):
            row = PassRow(config, kind, 0, 0, 0, 0, 0, 0.0)
            for item, original in ((i, d) for i, d in datasets if i.kind == kind):
                ds = copy.deepcopy(original)
                row.objects += 1
                start = time.perf_counter()
                try:
                    report = clean(ds)
                except ResidualPhiError:
                    row.seconds += time.perf_counter() - start
                    row.rejected += 1
                    row.frames += len(item.frames())
                    continue
                row.seconds += time.perf_counter() - start
                row.reads += report.ocr_calls
                boxes = report.boxes_by_frame()
                for frame, image in enumerate(item.frames()):
                    row.frames += 1
                    found = [b.box for b in boxes.get(frame, ())]
                    lines = item.frame_lines(frame)
                    if not lines:
                        mask = np.zeros(image.shape[:2], bool)
                        for box in found:
                            mask[box.top : box.bottom, box.left : box.right] = True
                        row.free_pixels += mask.size
                        row.blanked_free += int(mask.sum())
                    for line in lines:
                        row.lines += 1
                        cover = textimages.ink_coverage(line, _xywh(found))
                        row.found += cover >= COVERED
                        row.all_ink += cover >= 1.0
                        row.least_cover = min(row.least_cover, cover)
            rows.append(row)
    return rows


def pass_table(rows: Sequence[PassRow]) -> str:
    out = [
        "| Pixel pass | Type | Objects | Rejected | Frames | Line recall (released) "
        "| All ink blanked | Least ink cover | False-blanked area | Detector reads | frames/s "
        "| x whole frames |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    whole = {r.kind: r for r in rows if r.config.endswith("whole frames")}
    for r in rows:
        base = whole.get(r.kind)
        ratio = r.frames_per_s / base.frames_per_s if base else float("nan")
        free = f"{100 * r.blanked_free / r.free_pixels:.3f} %" if r.free_pixels else "-"
        out.append(
            f"| {r.config} | {r.kind} | {r.objects} | {r.rejected} | {r.frames} "
            f"| {r.found}/{r.lines} ({100 * r.recall:.1f} %) | {r.all_ink}/{r.lines} "
            f"| {r.least_cover:.3f} | {free} | {r.reads} "
            f"| {r.frames_per_s:.2f} | {ratio:.1f} |"
        )
    configs = list(dict.fromkeys(r.config for r in rows))
    totals = {}
    for config in configs:
        mine = [r for r in rows if r.config == config]
        frames, seconds = sum(r.frames for r in mine), sum(r.seconds for r in mine)
        totals[config] = (
            frames / seconds,
            sum(r.found for r in mine),
            sum(r.lines for r in mine),
            sum(r.reads for r in mine),
            sum(r.rejected for r in mine),
        )
    out += [
        "",
        "| Pixel pass | All types: line recall (released) | Rejected objects | Detector reads "
        "| frames/s | x whole frames |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base_fps = totals[configs[0]][0]
    for config, (fps, found, lines, reads, rejected) in totals.items():
        out.append(
            f"| {config} | {found}/{lines} ({100 * found / max(lines, 1):.2f} %) | {rejected} "
            f"| {reads} | {fps:.2f} | {fps / base_fps:.1f} |"
        )
    return "\n".join(out)


# -- corpus -----------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    from pydicom import dcmread

    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if not n.endswith("/"))
            return dcmread(BytesIO(archive.read(name)))
    return dcmread(path)


def to_uint8(ds: Any, frame: int) -> Any:
    """A simple 8-bit view of one frame: window or 0.5/99.5 percentiles, MONOCHROME1 inverted,
    colour converted to RGB by pydicom, palette through its LUT."""
    from pydicom.pixels import apply_color_lut

    array = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        array = array[frame]
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
        photometric = "RGB"
    if array.ndim == 3:
        if array.dtype != np.uint8:
            array = (array.astype(np.float64) / array.max() * 255.0).astype(np.uint8)
        return np.ascontiguousarray(array)
    values = array.astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.5))
    if high <= low:
        low, high = values.min(), max(values.max(), values.min() + 1)
    image = np.clip((values - low) * 255.0 / (high - low), 0, 255).astype(np.uint8)
    return 255 - image if photometric == "MONOCHROME1" else image


def _covered(truth: dict[str, Any], boxes: Sequence[TextBox], rows: int, columns: int) -> float:
    mask = np.zeros((rows, columns), bool)
    for box in boxes:
        mask[box.top : box.bottom, box.left : box.right] = True
    region = mask[
        truth["top"] : truth["top"] + truth["height"],
        truth["left"] : truth["left"] + truth["width"],
    ]
    return float(region.mean()) if region.size else 0.0


def run_corpus(detectors: dict[str, Detector], corpus: Path) -> list[dict[str, Any]]:
    truth = json.loads((corpus / "burned_in_truth.json").read_text(encoding="utf-8"))
    images: list[tuple[str, Any, list[dict[str, Any]]]] = []
    for name, boxes in truth.items():
        phi = [b for b in boxes if b.get("phi") and "where" not in b]
        if not phi:
            continue
        ds = _read(corpus / name)
        images.append((name, to_uint8(ds, 0), phi))
    results: list[dict[str, Any]] = []
    for config, detect in detectors.items():
        per_file: dict[str, list[int]] = {}
        seconds = 0.0
        for name, image, phi in images:
            start = time.perf_counter()
            found = detect(image)
            seconds += time.perf_counter() - start
            rows, columns = image.shape[:2]
            hits = sum(_covered(b, found, rows, columns) >= CORPUS_COVERED for b in phi)
            per_file[name] = [hits, len(phi)]
        results.append(
            {
                "config": config,
                "files": len(images),
                "phi_boxes": sum(v[1] for v in per_file.values()),
                "covered": sum(v[0] for v in per_file.values()),
                "missed_per_file": {k: v for k, v in per_file.items() if v[0] < v[1]},
                "seconds": seconds,
            }
        )
    return results


# -- report -----------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    baseline = {r.kind: r for r in rows if r.config.startswith("baseline")}
    out = [
        "| Config | Type | Frames | Line recall | False-blanked area | frames/s | x baseline |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = baseline.get(r.kind)
        ratio = r.frames_per_s / base.frames_per_s if base else float("nan")
        free = f"{100 * r.blanked_free / r.free_pixels:.3f} %" if r.free_pixels else "-"
        out.append(
            f"| {r.config} | {r.kind} | {r.frames} | {r.found}/{r.lines} "
            f"({100 * r.recall:.1f} %) | {free} | {r.frames_per_s:.2f} | {ratio:.1f} |"
        )
    out.append("")
    out.append("| Config | All types: line recall | False-blanked area | frames/s | x baseline |")
    out.append("|---|---:|---:|---:|---:|")
    configs = list(dict.fromkeys(r.config for r in rows))
    totals = {}
    for config in configs:
        mine = [r for r in rows if r.config == config]
        frames, seconds = sum(r.frames for r in mine), sum(r.seconds for r in mine)
        lines, found = sum(r.lines for r in mine), sum(r.found for r in mine)
        free, blanked = sum(r.free_pixels for r in mine), sum(r.blanked_free for r in mine)
        totals[config] = (frames / seconds, found, lines, blanked / free if free else 0.0)
    base_fps = totals[configs[0]][0]
    for config, (fps, found, lines, free) in totals.items():
        out.append(
            f"| {config} | {found}/{lines} ({100 * found / lines:.2f} %) | {100 * free:.3f} % "
            f"| {fps:.2f} | {fps / base_fps:.1f} |"
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=3, help="images with text per type")
    parser.add_argument("--text-free", type=int, default=9, help="text-free images per type")
    parser.add_argument("--kinds", nargs="+", default=list(textimages.KINDS))
    parser.add_argument("--dx-scale", type=float, default=1.0, help="DX size (1.0: 2500x2048)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--no-pass", action="store_true", help="leave out the pixel pass")
    parser.add_argument("--only-pass", action="store_true", help="only the pixel pass")
    parser.add_argument(
        "--no-easyocr", action="store_true", help="RapidOcr det+rec as the baseline (quicker)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    items = textimages.synthetic_set(
        args.per_kind,
        seed=args.seed,
        kinds=args.kinds,
        text_free=args.text_free,
        dx_scale=args.dx_scale,
    )
    detectors = {} if args.only_pass else configurations(args.threads, easyocr=not args.no_easyocr)
    for detect in detectors.values():  # first-call warm-up, untimed
        detect(items[0].frames()[0])
    rows = run_synthetic(detectors, items)
    command = " ".join(
        ["benchmarks/bench_pixels.py", *(argv if argv is not None else sys.argv[1:])]
    )
    print(f"Command: {command}")
    print(f"Python {platform.python_version()}, {platform.machine()}, threads={args.threads}")
    if rows:
        print()
        print(table(rows))
    pass_rows: list[PassRow] = []
    if not args.no_pass:
        passes = pass_configurations(args.threads)
        for clean in passes.values():  # first-call warm-up, untimed
            clean(textimages.to_dataset(items[0]))
        pass_rows = run_passes(passes, items)
        print()
        print(pass_table(pass_rows))
    corpus: list[dict[str, Any]] = []
    if detectors and not args.no_corpus and (CORPUS / "burned_in_truth.json").is_file():
        corpus = run_corpus(detectors, CORPUS)
        print()
        print("| Config | Corpus files | PHI boxes covered | Missed (file: covered/boxes) |")
        print("|---|---:|---:|---|")
        for result in corpus:
            missed = ", ".join(f"{k}: {v[0]}/{v[1]}" for k, v in result["missed_per_file"].items())
            print(
                f"| {result['config']} | {result['files']} | "
                f"{result['covered']}/{result['phi_boxes']} | {missed or '-'} |"
            )
    if args.json:
        payload = {
            "command": command,
            "rows": [
                asdict(r) | {"recall": r.recall, "frames_per_s": r.frames_per_s} for r in rows
            ],
            "pass_rows": [
                asdict(r) | {"recall": r.recall, "frames_per_s": r.frames_per_s} for r in pass_rows
            ],
            "corpus": corpus,
        }
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
