"""``deid run INPUT OUTPUT``: de-identify a file, a folder tree or a DICOMDIR into OUTPUT.

See :mod:`deid.runner` for what OUTPUT holds (outputs named from the new UIDs, the
``audit.jsonl`` journal, ``quarantine.jsonl``) and how a run resumes: the same command again
after a crash or ``kill -9`` finishes the inputs that have no record yet.

Options: ``--workers N`` (default: ``$DEID_WORKERS``, else the CPU count), ``--include`` /
``--exclude GLOB`` (repeatable; on the name relative to INPUT), ``--quarantine-dir DIR`` (copies
of the rejected and failed inputs, for review: they still hold identifiers, so DIR must not be
inside OUTPUT), ``--crosswalk DIR`` (the encrypted crosswalk and the MIDI-B mapping files, see
:mod:`deid.crosswalk`; not inside OUTPUT either), ``--restart`` (forget an earlier run in
OUTPUT), ``--quiet``, ``--executor dask --scheduler tcp://HOST:PORT`` (the inputs spread over
a Dask cluster; INPUT and OUTPUT on storage every worker sees at the same paths; outputs
byte-identical to a local run). A progress bar (tqdm, when installed) shows on a terminal.

The key comes from ``--key-file``, else ``--ephemeral-key`` (a random key, announced on
stderr), else ``$DEID_KEY_FILE``; with none of them the run is refused (exit 2). Exit 0 when
nothing was rejected or failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from deid import runner
from deid.cli._common import (
    EXIT_OK,
    EXIT_REJECTED,
    UsageError,
    add_key_arguments,
    resolve_key,
    say,
)
from deid.codes import Outcome
from deid.engine import Deidentifier
from deid.errors import MissingDependencyError
from deid.policy import load_policy
from deid.storage import Location

WORKERS_ENV = "DEID_WORKERS"


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("run", help="de-identify a file or a folder (recursive)")
    parser.add_argument("input", help="a DICOM file or a folder")
    parser.add_argument("output", help="output folder (created; must not be inside INPUT)")
    parser.add_argument("--policy", default="upload", help="policy name or TOML file (upload)")
    parser.add_argument("--workers", help=f"worker processes (${WORKERS_ENV}, else CPU count)")
    parser.add_argument("--include", action="append", metavar="GLOB", help="only these inputs")
    parser.add_argument("--exclude", action="append", metavar="GLOB", help="not these inputs")
    parser.add_argument("--quarantine-dir", help="copy rejected and failed inputs here")
    parser.add_argument(
        "--crosswalk", metavar="DIR", help="keep the encrypted crosswalk and MIDI-B mappings here"
    )
    parser.add_argument(
        "--executor", choices=("local", "dask"), default="local", help="where to work (local)"
    )
    parser.add_argument("--scheduler", help="the Dask scheduler address (tcp://HOST:PORT)")
    parser.add_argument("--restart", action="store_true", help="forget an earlier run in OUTPUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no per-input lines")
    add_key_arguments(parser, ephemeral="this run")
    parser.set_defaults(handler=handle)


def _prepare_output(src: Path | None, dst: Path) -> None:
    dst_real = dst.resolve()
    src_real = src.resolve() if src is not None else None
    if (
        src is not None
        and src.is_dir()
        and src_real is not None
        and (dst_real == src_real or src_real in dst_real.parents)
    ):
        raise UsageError(f"{dst}: the output folder must not be inside the input folder")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{dst}: cannot create the output folder ({type(exc).__name__})") from None


def _dask_client(executor: str, scheduler: str | None) -> Any:
    """A ``distributed.Client`` for ``--executor dask`` (None for local work)."""
    if executor != "dask":
        if scheduler:
            raise UsageError("--scheduler needs --executor dask")
        return None
    if not scheduler:
        raise UsageError("--executor dask needs --scheduler tcp://HOST:PORT")
    try:
        from distributed import Client
    except ImportError:
        raise MissingDependencyError("--executor dask", "dask") from None
    try:
        return Client(scheduler, timeout=30)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler ({type(exc).__name__})") from None


def _outside(value: str | None, dst: Location, what: str) -> Path | None:
    """A local folder for files that hold identifiers: never inside OUTPUT."""
    if not value:
        return None
    folder = Path(value)
    if dst.remote:  # a local folder is never inside a bucket
        return folder
    real, d_real = folder.resolve(), dst.path.resolve()
    if real == d_real or d_real in real.parents:
        raise UsageError(f"{folder}: the {what} folder must not be inside OUTPUT")
    return folder


def _workers(value: str | None) -> int:
    text = value if value is not None else os.environ.get(WORKERS_ENV) or str(os.cpu_count() or 1)
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise UsageError(f"--workers must be a whole number >= 1 (got {text!r})")
    return workers


def _locations(args: argparse.Namespace) -> tuple[Location, Location]:
    """INPUT and OUTPUT as checked locations (local paths or fsspec URLs)."""
    try:
        src, dst = Location(args.input), Location(args.output)
    except MissingDependencyError:
        raise
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot use the location ({type(exc).__name__})") from None
    if not (src.is_dir() or src.is_file()):
        if src.remote or not src.path.exists():
            raise UsageError(f"{src}: input does not exist")
        raise UsageError(f"{src}: input is neither a regular file nor a folder")
    return src, dst


def handle(args: argparse.Namespace) -> int:
    src, dst = _locations(args)
    workers = _workers(args.workers)
    policy = load_policy(args.policy)
    engine = Deidentifier(policy, resolve_key(args))
    if not dst.remote:
        _prepare_output(src.path if not src.remote else None, dst.path)
    quarantine = _outside(args.quarantine_dir, dst, "quarantine")
    crosswalk = _outside(args.crosswalk, dst, "crosswalk")
    client = _dask_client(args.executor, args.scheduler)
    progress = _Progress(quiet=args.quiet)
    progress.count_in_background(src, args.include or (), args.exclude or ())
    try:
        summary = runner.run(
            engine,
            src,
            dst,
            workers=workers,
            include=args.include or (),
            exclude=args.exclude or (),
            quarantine_dir=quarantine,
            crosswalk_dir=crosswalk,
            restart=args.restart,
            on_result=progress.update,
            client=client,
        )
    except runner.RunError as exc:
        raise UsageError(str(exc)) from None
    finally:
        progress.close()
        if client is not None:
            client.close()
    resumed = f" ({summary.resumed} from an earlier part of this run)" if summary.resumed else ""
    say(f"{summary.line()}{resumed}; audit in {dst.locate(runner.AUDIT_NAME)}")
    bad = summary.counts[Outcome.REJECTED] + summary.counts[Outcome.FAILED]
    return EXIT_OK if bad == 0 else EXIT_REJECTED


class _Progress:
    """A tqdm bar on a terminal (files/s, MB/s, ETA once the inputs are counted, counts); one
    stderr line per input that was not de-identified, unless quiet."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.inputs: int | None = None
        self.started = time.monotonic()
        if quiet or not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(unit="file", dynamic_ncols=True, file=sys.stderr)

    def count_in_background(self, src: Location, include: Any, exclude: Any) -> None:
        """Count the inputs in a second, lazy walk (for the ETA) without holding them."""
        if self.bar is None:
            return

        def count() -> None:
            self.inputs = sum(1 for _ in runner.discover(src, include, exclude))

        threading.Thread(target=count, name="deid-count", daemon=True).start()

    def update(self, record: dict[str, Any], summary: runner.Summary) -> None:
        outcome = record["outcome"]
        if outcome != Outcome.DEIDENTIFIED.value and not self.quiet:
            message = f"{record['input']}: {outcome} {record['reason'] or '-'}: {record['detail']}"
            if self.bar is not None:
                self.bar.write(f"deid: {message}", file=sys.stderr)
            else:
                say(message)
        if self.bar is not None:
            if self.inputs is not None and self.bar.total is None:
                self.bar.total = max(self.inputs - summary.resumed, 0)
            c = summary.counts
            rate = summary.bytes_in / 1e6 / max(time.monotonic() - self.started, 1e-9)
            self.bar.set_postfix_str(
                f"{rate:.1f} MB/s ok {c[Outcome.DEIDENTIFIED]} rej {c[Outcome.REJECTED]} "
                f"fail {c[Outcome.FAILED]} skip {c[Outcome.SKIPPED]}",
                refresh=False,
            )
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
