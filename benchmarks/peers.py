"""Peer tools on the attribute path: deid side by side with dicognito, pydicom's ``deid`` recipe
tool and Kitware's dicom-anonymizer, on the same synthetic CT/MR corpus, in the same run.

Each peer is installed into its own virtual environment in a cache folder outside the
repository (default ``$HOME/.cache/deid-dicom/peers``, or ``$DEID_PEERS_CACHE``, or
``--cache``) with ``pip install NAME==VERSION`` from whatever index pip is configured with;
pydicom's ``deid`` has the import name of this project, so nothing is shared. The corpus is
the CT/MR part of ``bench_batch.py``'s archive (``synthetic.py``), written once.

Every tool is timed in a subprocess (the same file run as ``--driver TOOL``, which imports
only the standard library and the tool): three files untimed first, then one timed pass over
every file, each output written to disk with the tool's own save (no fsync). Rounds alternate
the tools, rotating their order, and the median round is reported. Each tool runs with its
default settings, used the way its documentation shows:

``deid``
    ``Deidentifier("upload", key).deidentify_bytes(path.read_bytes())``, output written with
    ``Path.write_bytes`` (this project, run from this checkout's Python).
``pydicom``
    ``dcmread`` + ``save_as``: the floor every tool here sits on.
``dicognito``
    ``Anonymizer()``, then per file ``dcmread`` / ``anonymizer.anonymize(ds)`` / ``save_as``.
``deid-recipe`` (PyPI ``deid``)
    ``replace_identifiers(dicom_files=files, deid=DeidRecipe(), save=True,
    output_folder=..., overwrite=True)``: the default ``deid.dicom`` recipe.
``dicom-anonymizer``
    ``anonymize_dicom_file(src, dst)`` per file (default rules, private tags deleted).

None of them touches pixel data here (deid's ``upload`` skips the pixel pass for plain CT/MR
slices). After the timing, one output of each tool is compared with its input (names, IDs,
UIDs, dates, private tags, pixels) and the table says what changed.

Usage::

    python benchmarks/peers.py [--files N] [--rounds R] [--tools ...] [--cache DIR] [--json out]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: The peers: PyPI name and pinned version (the versions of the local index when written).
PEERS = {
    "dicognito": ("dicognito", "0.19.0"),
    "deid-recipe": ("deid", "0.4.13"),
    "dicom-anonymizer": ("dicom-anonymizer", "2.1.0"),
}
OURS = ("deid", "pydicom")
BENCH_KEY = bytes(range(32))
WARMUP = 3


# -- the driver: runs inside each tool's interpreter (standard library + the tool only) -----


def _driver(tool: str, src: Path, dst: Path) -> dict[str, object]:
    files = sorted(src.rglob("*.dcm"))
    run, version = _tool(tool)
    scratch = dst.with_name(dst.name + "-warm")
    scratch.mkdir(parents=True, exist_ok=True)
    run(files[:WARMUP], scratch)
    dst.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run(files, dst)
    elapsed = time.perf_counter() - start
    return {"tool": tool, "version": version, "files": len(files), "seconds": elapsed}


def _tool(tool: str) -> tuple[Callable[[list[Path], Path], None], str]:
    """The tool's pass over files into a folder, and its version (imports only that tool)."""
    if tool == "deid":
        import deid
        from deid import Deidentifier

        engine = Deidentifier("upload", BENCH_KEY)

        def run(files: list[Path], out: Path) -> None:
            for path in files:
                (out / path.name).write_bytes(engine.deidentify_bytes(path.read_bytes()).data)

        return run, deid.__version__
    if tool == "pydicom":
        import pydicom

        def run(files: list[Path], out: Path) -> None:
            for path in files:
                pydicom.dcmread(path).save_as(out / path.name)

        return run, pydicom.__version__
    if tool == "dicognito":
        from importlib.metadata import version

        import pydicom
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer()

        def run(files: list[Path], out: Path) -> None:
            for path in files:
                with pydicom.dcmread(path) as dataset:
                    anonymizer.anonymize(dataset)
                    dataset.save_as(out / path.name)

        return run, version("dicognito")
    if tool == "deid-recipe":
        import logging
        from importlib.metadata import version

        from deid.config import DeidRecipe
        from deid.dicom import replace_identifiers

        logging.disable(logging.WARNING)
        recipe = DeidRecipe()

        def run(files: list[Path], out: Path) -> None:
            replace_identifiers(
                dicom_files=[str(p) for p in files],
                deid=recipe,
                save=True,
                output_folder=str(out),
                overwrite=True,
            )

        return run, version("deid")
    if tool == "dicom-anonymizer":
        from importlib.metadata import version

        from dicomanonymizer import anonymize_dicom_file

        def run(files: list[Path], out: Path) -> None:
            for path in files:
                anonymize_dicom_file(str(path), str(out / path.name))

        return run, version("dicom-anonymizer")
    raise SystemExit(f"unknown tool {tool!r}")


# -- the harness (this checkout's Python) ------------------------------------------------------


def default_cache() -> Path:
    found = os.environ.get("DEID_PEERS_CACHE")
    return Path(found) if found else Path.home() / ".cache" / "deid-dicom" / "peers"


def ensure_venv(cache: Path, tool: str, log: Callable[[str], None]) -> Path:
    """The peer's interpreter, creating its venv and installing it when missing."""
    name, version = PEERS[tool]
    folder = cache / f"{tool}-{version}"
    python = folder / "bin" / "python"
    marker = folder / ".installed"
    if marker.exists() and python.exists():
        return python
    log(f"{tool}: creating {folder.name} and installing {name}=={version}")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(folder)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{name}=={version}"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker.write_text(f"{name}=={version}\n", encoding="utf-8")
    return python


def time_tool(python: Path, tool: str, src: Path, dst: Path) -> dict[str, object]:
    """One timed pass of ``tool`` in a fresh subprocess, outside this repository's imports."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # each interpreter sees its own packages only
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--driver", tool, str(src), str(dst)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # never import the local source tree as 'deid' by accident
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def characterise(src: Path, dst: Path) -> dict[str, object]:
    """What a tool changed in one output (the first CT file), as yes/no facts."""
    from pydicom import dcmread

    before, after = dcmread(src), dcmread(dst)

    def changed(keyword: str) -> str:
        if keyword not in before:
            return "-"
        if keyword not in after:
            return "removed"
        return "changed" if after[keyword].value != before[keyword].value else "kept"

    privates = sum(1 for e in before if e.tag.is_private)
    kept_private = sum(1 for e in after if e.tag.is_private)
    return {
        "PatientName": changed("PatientName"),
        "PatientID": changed("PatientID"),
        "StudyInstanceUID": changed("StudyInstanceUID"),
        "SOPInstanceUID": changed("SOPInstanceUID"),
        "StudyDate": changed("StudyDate"),
        "InstitutionName": changed("InstitutionName"),
        "private": f"{kept_private}/{privates} kept",
        "pixels": "identical" if after.PixelData == before.PixelData else "changed",
        "PatientIdentityRemoved": str(after.get("PatientIdentityRemoved", "-")),
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--driver"]:
        tool, src, dst = args[1:4]
        print(json.dumps(_driver(tool, Path(src), Path(dst))))
        return 0
    return harness(args)


def harness(argv: list[str]) -> int:
    import datetime
    import platform
    import shlex
    import shutil
    import statistics

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_batch import MIX, split_counts
    from synthetic import SERIES, write_series

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="bench_batch archive size (200)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (3)")
    parser.add_argument("--tools", nargs="+", default=[*OURS, *PEERS], help="tools to time")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="peer venvs here")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.tools) - set(OURS) - set(PEERS))
    if unknown:
        parser.error(f"unknown tool(s) {unknown}")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    counts = split_counts(args.files, MIX)
    pythons = {tool: Path(sys.executable) for tool in OURS}
    for tool in args.tools:
        if tool in PEERS:
            pythons[tool] = ensure_venv(args.cache, tool, log)
    tools = list(args.tools)
    seconds: dict[str, list[float]] = {tool: [] for tool in tools}
    versions: dict[str, str] = {}
    facts: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="deid-peers-") as tmp:
        src = Path(tmp) / "in"
        for name in ("CT", "MR"):
            write_series(src / name, SERIES[name], counts[name])
        files = sorted(src.rglob("*.dcm"))
        size = sum(p.stat().st_size for p in files)
        log(f"corpus: CT {counts['CT']}, MR {counts['MR']} ({size / 1e6:.1f} MB)")
        for round_ in range(args.rounds):
            shift = round_ % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                dst = Path(tmp) / "out" / tool
                shutil.rmtree(dst, ignore_errors=True)
                shutil.rmtree(dst.with_name(tool + "-warm"), ignore_errors=True)
                result = time_tool(pythons[tool], tool, src, dst)
                if result["files"] != len(files):
                    raise SystemExit(f"{tool}: saw {result['files']} files, not {len(files)}")
                seconds[tool].append(float(result["seconds"]))  # type: ignore[arg-type]
                versions[tool] = str(result["version"])
                log(f"round {round_ + 1} {tool:17} {result['seconds']:.2f} s")
                if round_ == args.rounds - 1:
                    first = files[0]
                    written = dst / first.name
                    outputs = sorted(dst.glob("*.dcm"))
                    if len(outputs) != len(files) or not written.exists():
                        raise SystemExit(f"{tool}: wrote {len(outputs)} of {len(files)} files")
                    facts[tool] = characterise(first, written)
    rates = {tool: len(files) / statistics.median(s) for tool, s in seconds.items()}
    peers = [rates[t] for t in tools if t in PEERS]
    fastest = max(peers) if peers else float("nan")
    env = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    command = shlex.join(["python", "benchmarks/peers.py", *argv])
    print(
        f"`{command}` - {env['date']}, {env['cpus']} CPUs, Python {env['python']}; "
        f"{len(files)} files ({size / 1e6:.1f} MB); median of {args.rounds} rounds\n"
    )
    print(
        "| Tool | Version | files/s | MB/s | files/s range | x pydicom | deid / tool |\n"
        "|---|---|---:|---:|---:|---:|---:|"
    )
    for tool in tools:
        s = seconds[tool]
        low, high = len(files) / max(s), len(files) / min(s)
        vs_pydicom = rates[tool] / rates["pydicom"] if "pydicom" in rates else float("nan")
        ours = rates["deid"] / rates[tool] if "deid" in rates else float("nan")
        print(
            f"| {tool} | {versions[tool]} | {rates[tool]:.1f} "
            f"| {size / 1e6 / statistics.median(s):.1f} | {low:.1f}-{high:.1f} "
            f"| {vs_pydicom:.2f} | {ours:.2f} |"
        )
    if "deid" in rates and peers:
        print(f"\ndeid / fastest peer: **{rates['deid'] / fastest:.2f}** (target >= 3)")
    keys = list(next(iter(facts.values())))
    print("\n| Tool | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for tool in tools:
        print(f"| {tool} | " + " | ".join(str(facts[tool][k]) for k in keys) + " |")
    if args.json is not None:
        payload = {
            "command": command,
            "environment": env,
            "files": len(files),
            "bytes": size,
            "counts": {"CT": counts["CT"], "MR": counts["MR"]},
            "rounds": args.rounds,
            "versions": versions,
            "seconds": seconds,
            "files_per_s": rates,
            "deid_over_fastest_peer": rates["deid"] / fastest if "deid" in rates else None,
            "what_changed": facts,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
