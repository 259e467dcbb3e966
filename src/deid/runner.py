"""Archive runs: find inputs lazily, de-identify them in worker processes, journal every outcome.

A run reads INPUT (a file, a folder tree, or a DICOMDIR) and writes into OUTPUT; both may be
folders in object storage (fsspec URLs such as ``s3://bucket/prefix``, :mod:`deid.storage`):

- ``<study>/<series>/<instance>.dcm``: the de-identified objects, named from their new UIDs
  (:func:`output_name`). Every output is written under a temporary name in OUTPUT, then
  committed under its name, so no partial file ever has an output's name.
- ``audit.jsonl``: the journal. One record per input, appended (and flushed) as soon as the
  input's output is in place: ``input`` (relative to INPUT), ``output``, ``outcome``, ``reason``,
  the new UIDs, action counts, the pixel pass, and ``output_sha256``. Never a value.
- ``quarantine.jsonl``: the rejected and failed inputs (input, outcome, reason, detail),
  rewritten from the journal when the run ends.
- ``.deid-run.json``: what the run is (policy, key fingerprint, a keyed hash of INPUT).

**Resume.** Running the same command again after a crash or ``kill -9`` at any moment reads the
journal, drops a torn last line, removes leftover temporary files and processes only the inputs
that have no record: every input is accounted for exactly once and the outputs are the bytes an
uninterrupted run writes (pseudonyms are keyed, so a re-done input gives the same bytes). A run
with another policy, key or INPUT into the same OUTPUT is refused unless ``restart=True``.

**Order.** Workers run in parallel, but results are taken in input order, so which of two
inputs sharing a SOP Instance UID is written (the first; the second is DUPLICATE_INSTANCE) does
not depend on timing.

Inputs that are not DICOM are *skipped* (recorded with reason NOT_DICOM); DICOMDIR files met in
a folder are skipped too (the files they reference are found by the walk). Given a DICOMDIR as
INPUT, the run takes the files it references. In every run
``deidentified + rejected + failed + skipped == inputs``.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import fnmatch
import hashlib
import json
import multiprocessing
import pickle
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deid.audit import AuditRecord
from deid.codes import Outcome, RejectReason
from deid.engine import Deidentifier
from deid.errors import MissingDependencyError, RejectedError
from deid.quiet import unquoted_call
from deid.storage import Location

if TYPE_CHECKING:
    from deid.crosswalk import CrosswalkStore, Pair

AUDIT_NAME = "audit.jsonl"
QUARANTINE_NAME = "quarantine.jsonl"
MANIFEST_NAME = ".deid-run.json"
_DICOMDIR = "DICOMDIR"
NO_STUDY = "no-study-uid"
NO_SERIES = "no-series-uid"
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_MAX_UID = 64


class RunError(Exception):
    """The run cannot start (OUTPUT holds another run, INPUT unusable); names paths only."""


@dataclass(frozen=True, slots=True)
class Input:
    """One input: where it is and its name relative to INPUT (as recorded in the audit)."""

    path: str  # a local path or an object key, read with Location.read
    relative: str
    skip_reason: str = ""  # set for inputs recorded as skipped without being read


@dataclass
class Summary:
    """Counts over every input of the run (earlier, resumed parts included)."""

    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    resumed: int = 0
    bytes_in: int = 0  # bytes read by this invocation (not the resumed part)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.total} input(s): {c[Outcome.DEIDENTIFIED]} de-identified, "
            f"{c[Outcome.REJECTED]} rejected, {c[Outcome.FAILED]} failed, "
            f"{c[Outcome.SKIPPED]} skipped"
        )


# -- output names ---------------------------------------------------------------------------------


def _component(uid: str | None, missing: str) -> str | None:
    """``uid`` as a path component; ``missing`` when absent; None when it is not a UID."""
    if uid is None or not uid.strip("\x00 "):
        return missing
    text = uid.strip("\x00 ")
    return text if len(text) <= _MAX_UID and _UID.fullmatch(text) else None


def output_name(record: AuditRecord) -> Path | None:
    """``<study>/<series>/<instance>.dcm`` from the new UIDs (never an input name or another
    header value), or None when one is not a UID (possible only when a policy keeps the
    original UIDs): such an object is rejected. Missing Study / Series UIDs give
    ``no-study-uid`` / ``no-series-uid``."""
    study = _component(record.study_instance_uid, NO_STUDY)
    series = _component(record.series_instance_uid, NO_SERIES)
    instance = _component(record.sop_instance_uid, "")
    if not study or not series or not instance:
        return None
    return Path(study) / series / f"{instance}.dcm"


# -- discovery ------------------------------------------------------------------------------------


def discover(
    root: Location | Path | str, include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> Iterator[Input]:
    """The inputs under ``root`` in a stable order, found lazily (one folder listed at a time).

    ``root`` is a folder, a file or a DICOMDIR, local or in object storage (a DICOMDIR only
    locally). ``include`` / ``exclude``: glob patterns on the relative name (``*`` crosses
    folders); a file is an input when it matches some include pattern (or none are given) and
    no exclude pattern. Folder links are not followed; FIFOs, sockets and devices are not inputs.
    """
    root = root if isinstance(root, Location) else Location(root)
    include, exclude = tuple(include), tuple(exclude)
    if not root.remote and root.path.is_file() and root.path.name.upper() == _DICOMDIR:
        yield from _dicomdir_inputs(root.path, include, exclude)
        return
    if not root.is_dir():
        yield Input(root.locate(""), root.spec.rstrip("/").rsplit("/", 1)[-1])
        return
    for location, relative in root.walk():
        if not _wanted(relative, include, exclude):
            continue
        if relative.rsplit("/", 1)[-1].upper() == _DICOMDIR:
            yield Input(location, relative, "a media directory: the files it lists are inputs")
        else:
            yield Input(location, relative)


def _wanted(relative: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    if include and not any(fnmatch.fnmatchcase(relative, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(relative, p) for p in exclude)


def _dicomdir_inputs(
    path: Path, include: tuple[str, ...], exclude: tuple[str, ...]
) -> Iterator[Input]:
    """The files a DICOMDIR references, relative to its folder, in record order, once each."""
    from pydicom import dcmread

    try:
        directory = dcmread(path, force=True)
        records = list(directory.get("DirectoryRecordSequence") or [])
    except Exception:
        raise RunError(f"{path}: not a readable DICOMDIR") from None
    base = path.parent.resolve()
    seen: set[str] = set()
    for record in records:
        parts = record.get("ReferencedFileID")
        if not parts:
            continue
        parts = [parts] if isinstance(parts, str) else [str(p) for p in parts]
        target = base.joinpath(*parts)
        try:
            inside = target.resolve().is_relative_to(base)
        except OSError:
            inside = False
        relative = "/".join(parts)
        if not inside or relative in seen or not _wanted(relative, include, exclude):
            continue  # a reference out of the media folder is not followed
        seen.add(relative)
        yield Input(str(target), relative)


# -- one input, in a worker ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """What a worker did with one input; the output waits under ``temp`` for the parent."""

    relative: str
    source: str
    record: AuditRecord
    temp: str | None = None
    name: str | None = None
    digest: str | None = None
    size: int = 0
    pairs: tuple[Pair, ...] = ()  # crosswalk pairs (original identifiers: never logged)


#: In a worker process: its Deidentifier, built once from the parent's pickled engine.
_WORKER: dict[str, Deidentifier] = {}


def _init_worker(state: bytes) -> None:
    _WORKER["engine"] = pickle.loads(state)


def _work_in_worker(job: tuple[Input, Location, Location, bool]) -> Done:
    item, src, dst, crosswalk = job
    return process_one(_WORKER["engine"], item, src, dst, crosswalk=crosswalk)


def _work_on_cluster(
    state: bytes, item: Input, src: Location, dst: Location, crosswalk: bool
) -> Done:
    """A Dask task: the engine is unpickled once per worker process (cached by digest)."""
    digest = hashlib.sha256(state).hexdigest()
    engine = _WORKER.get(digest)
    if engine is None:
        engine = _WORKER[digest] = pickle.loads(state)
    return process_one(engine, item, src, dst, crosswalk=crosswalk)


def process_one(
    engine: Deidentifier, item: Input, src: Location, dst: Location, *, crosswalk: bool = False
) -> Done:
    """De-identify one input of ``src``; the output goes to a temporary file in ``dst``.

    ``crosswalk``: also return the (kind, original, pseudonym) pairs of the object."""

    def ended(outcome: Outcome, reason: RejectReason | None, detail: str) -> Done:
        return Done(item.relative, item.path, _record(engine, outcome, reason, detail))

    if item.skip_reason:  # a DICOMDIR met in a folder
        return ended(Outcome.SKIPPED, RejectReason.UNSUPPORTED_SOP_CLASS, item.skip_reason)
    try:
        engine.limits.check_size(src.size(item.path))  # before a byte is read
        data = src.read(item.path)
    except RejectedError as exc:
        return ended(Outcome.REJECTED, exc.reason, exc.detail)
    except OSError as exc:
        return ended(Outcome.FAILED, RejectReason.NOT_DICOM, f"cannot read input ({_name(exc)})")
    try:
        result = engine.deidentify_bytes(data)
    except RejectedError as exc:
        skipped = exc.reason is RejectReason.NOT_DICOM
        return ended(Outcome.SKIPPED if skipped else Outcome.REJECTED, exc.reason, exc.detail)
    except Exception as exc:  # a bug below us: the object is not released, the run goes on
        detail = f"unexpected error ({_name(exc)})"
        return ended(Outcome.FAILED, RejectReason.INVALID_DATASET, detail)
    name = output_name(result.audit)
    if name is None:
        detail = "a new Study, Series or SOP Instance UID is not a valid UID: no file name"
        return ended(Outcome.REJECTED, RejectReason.MISSING_UID, detail)
    try:
        temp = dst.put_temporary(result.data)
    except OSError as exc:
        detail = f"cannot write output ({_name(exc)})"
        return ended(Outcome.FAILED, RejectReason.WRITE_FAILED, detail)
    digest = hashlib.sha256(result.data).hexdigest()
    pairs = tuple(_pairs(engine, data, result.dataset)) if crosswalk else ()
    return Done(
        item.relative, item.path, result.audit, temp, name.as_posix(), digest, len(data), pairs
    )


@unquoted_call  # (reading values outside a deid call, pydicom may quote them in warnings)
def _pairs(engine: Deidentifier, data: bytes, output: Any) -> list[Pair]:
    from deid.crosswalk import pairs_of
    from deid.engine import read_dataset

    return pairs_of(read_dataset(data), output, engine.pseudonymizer)


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _record(
    engine: Deidentifier, outcome: Outcome, reason: RejectReason | None, detail: str
) -> AuditRecord:
    return AuditRecord(
        outcome,
        reason,
        detail,
        policy=engine.policy.name,
        key_fingerprint=engine.pseudonymizer.fingerprint,
    )


# -- the run ---------------------------------------------------------------------------------------


class _Journal:
    """``audit.jsonl``: what earlier parts of the run recorded, and new records appended."""

    def __init__(self, dst: Location) -> None:
        self.file = dst.journal(AUDIT_NAME)
        self.done: set[str] = set()
        self.written: dict[str, str] = {}  # instance file name -> sha256
        self.summary = Summary()

    def load(self) -> None:
        for line in self.file.load().splitlines():
            self._count(json.loads(line))
            self.summary.resumed += 1

    def _count(self, record: dict[str, Any]) -> None:
        self.done.add(str(record["input"]))
        self.summary.counts[Outcome(record["outcome"])] += 1
        if record.get("output") and record.get("output_sha256"):
            name = str(record["output"]).rsplit("/", 1)[-1]
            self.written[name] = str(record["output_sha256"])

    def append(self, record: dict[str, Any]) -> None:
        self.file.append(json.dumps(record, separators=(",", ":")) + "\n")
        self._count(record)


def run(
    engine: Deidentifier,
    src: Location | Path | str,
    dst: Location | Path | str,
    *,
    workers: int = 1,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    quarantine_dir: Path | None = None,
    crosswalk_dir: Path | None = None,
    restart: bool = False,
    on_result: Callable[[dict[str, Any], Summary], None] | None = None,
    client: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Summary:
    """De-identify everything under ``src`` into ``dst`` (see the module); resumable.

    ``workers``: processes (1: in this process). ``client``: a ``distributed.Client``; the
    inputs are then de-identified on its Dask cluster (``workers`` is then how many tasks per
    cluster worker are kept in flight); INPUT and OUTPUT must be on storage every worker sees
    at the same paths. The outputs are byte-identical to a local run. ``crosswalk_dir``: keep
    the encrypted crosswalk and write the mapping files there (:mod:`deid.crosswalk`).
    ``src`` and ``dst`` may be fsspec URLs (``s3://bucket/prefix``; :mod:`deid.storage`), with
    ``storage_options`` for their file system. ``on_result`` is called in input order with
    each new audit record (progress, messages). Returns the counts over the whole run.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    source = src if isinstance(src, Location) else Location(src, storage_options)
    target = dst if isinstance(dst, Location) else Location(dst, storage_options)
    store = _open_store(crosswalk_dir, engine)
    try:
        target.make()
        _check_manifest(engine, source, target, restart)
        target.remove_temporaries()
        journal = _Journal(target)
        journal.load()
        try:
            found = discover(source, include, exclude)
            todo = (item for item in found if item.relative not in journal.done)
            crosswalk = store is not None
            results = (
                _cluster_results(client, engine, todo, source, target, workers, crosswalk)
                if client is not None
                else _results(engine, todo, source, target, workers, crosswalk)
            )
            for done in results:
                record = _settle(done, source, target, journal, quarantine_dir)
                if store is not None and record["outcome"] == Outcome.DEIDENTIFIED.value:
                    store.add(done.pairs)  # before the journal: a resume never loses a pair
                journal.append(record)
                journal.summary.bytes_in += done.size
                if on_result is not None:
                    on_result(record, journal.summary)
        finally:
            journal.file.close()
        _write_quarantine(target)
        if store is not None:
            from deid.crosswalk import write_mapping_files

            write_mapping_files(store)
    finally:
        if store is not None:
            store.close()
    return journal.summary


def _open_store(folder: Path | None, engine: Deidentifier) -> CrosswalkStore | None:
    if folder is None:
        return None
    from deid.crosswalk import CrosswalkStore

    try:
        return CrosswalkStore(folder, engine.pseudonymizer)
    except MissingDependencyError as exc:
        raise RunError(f"{exc}") from None
    except (OSError, ValueError, sqlite3.Error) as exc:
        raise RunError(f"{folder}: cannot open the crosswalk ({exc})") from None


def _results(
    engine: Deidentifier,
    items: Iterator[Input],
    src: Location,
    dst: Location,
    workers: int,
    crosswalk: bool,
) -> Iterator[Done]:
    """Each input's :class:`Done`, in input order; at most ``2 * workers`` in flight."""
    if workers == 1:
        for item in items:
            yield process_one(engine, item, src, dst, crosswalk=crosswalk)
        return
    context = multiprocessing.get_context("spawn")  # no fork of threads (OCR runtimes)
    state = pickle.dumps(engine)
    pending: collections.deque[tuple[Input, cf.Future[Done]]] = collections.deque()
    pool = cf.ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(state,))
    try:
        for item in items:
            job = (item, src, dst, crosswalk)
            pending.append((item, pool.submit(_work_in_worker, job)))
            while len(pending) >= 2 * workers:
                yield _take(engine, pending.popleft())
        while pending:
            yield _take(engine, pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _cluster_results(
    client: Any,
    engine: Deidentifier,
    items: Iterator[Input],
    src: Location,
    dst: Location,
    per_worker: int,
    crosswalk: bool,
) -> Iterator[Done]:
    """As :func:`_results`, on a Dask cluster: the pickled engine is sent to every worker once
    (scattered), tasks are submitted in input order and taken in input order."""
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * workers * max(1, per_worker)
    state = client.scatter(pickle.dumps(engine), broadcast=True, hash=False)
    pending: collections.deque[tuple[Input, Any]] = collections.deque()
    try:
        for item in items:
            future = client.submit(_work_on_cluster, state, item, src, dst, crosswalk, pure=False)
            pending.append((item, future))
            while len(pending) >= window:
                yield _take(engine, pending.popleft())
        while pending:
            yield _take(engine, pending.popleft())
    finally:
        for _, future in pending:
            future.cancel()
        state.release()


def _take(engine: Deidentifier, entry: tuple[Input, Any]) -> Done:
    item, future = entry
    try:
        done: Done = future.result()
        return done
    except Exception as exc:  # the worker died (a crash in a decoder): this input fails
        detail = f"worker process failed ({type(exc).__name__})"
        record = _record(engine, Outcome.FAILED, RejectReason.INVALID_DATASET, detail)
        return Done(item.relative, item.path, record)


def _settle(
    done: Done, src: Location, dst: Location, journal: _Journal, quarantine_dir: Path | None
) -> dict[str, Any]:
    """Put the output in place (or refuse a duplicate) and build the journal record."""
    record, output, digest = done.record, None, None
    if done.temp is not None and done.name is not None:
        earlier = journal.written.get(done.name.rsplit("/", 1)[-1])
        if earlier is not None and earlier != done.digest:
            _discard(dst, done.temp)
            record = _duplicate(record)
        else:
            try:
                _move_into_place(dst, done.temp, done.name)
                output, digest = done.name, done.digest
            except OSError as exc:
                _discard(dst, done.temp)
                record = AuditRecord(
                    Outcome.FAILED,
                    RejectReason.WRITE_FAILED,
                    f"cannot write output ({type(exc).__name__})",
                    policy=record.policy,
                    key_fingerprint=record.key_fingerprint,
                )
    if quarantine_dir is not None and record.outcome in (Outcome.REJECTED, Outcome.FAILED):
        _copy_to_quarantine(src, done.source, done.relative, quarantine_dir)
    return record.to_dict(input=done.relative, output=output) | {"output_sha256": digest}


def _move_into_place(dst: Location, temporary: str, relative: str) -> None:
    dst.commit(temporary, relative)


def _discard(dst: Location, temporary: str) -> None:
    with contextlib.suppress(OSError):  # else removed by the next run's cleanup
        dst.discard(temporary)


def _duplicate(record: AuditRecord) -> AuditRecord:
    return AuditRecord(
        Outcome.REJECTED,
        RejectReason.DUPLICATE_INSTANCE,
        "another input of this run has the same SOP Instance UID",
        sop_class_uid=record.sop_class_uid,
        policy=record.policy,
        key_fingerprint=record.key_fingerprint,
    )


def _copy_to_quarantine(src: Location, origin: str, relative: str, quarantine: Path) -> None:
    target = quarantine / relative
    try:
        data = src.read(origin)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError:
        pass  # the quarantine record still names the input


def _write_quarantine(dst: Location) -> None:
    lines = []
    for line in dst.read_text(AUDIT_NAME).splitlines():
        record = json.loads(line)
        if record["outcome"] in (Outcome.REJECTED.value, Outcome.FAILED.value):
            kept = {k: record[k] for k in ("input", "outcome", "reason", "detail")}
            lines.append(json.dumps(kept, separators=(",", ":")) + "\n")
    dst.write_atomic(QUARANTINE_NAME, "".join(lines).encode("utf-8"))


def _manifest(engine: Deidentifier, src: Location) -> dict[str, Any]:
    where_text = src.spec if src.remote else str(src.path.resolve())
    where = engine.pseudonymizer.token("run-input", where_text, 32)
    policy = json.dumps(engine.policy.describe(), sort_keys=True).encode("utf-8")
    return {
        "format": 1,
        "policy": engine.policy.name,
        "policy_sha256": hashlib.sha256(policy).hexdigest(),
        "key_fingerprint": engine.pseudonymizer.fingerprint,
        "input": where,
    }


def _check_manifest(engine: Deidentifier, src: Location, dst: Location, restart: bool) -> None:
    wanted = _manifest(engine, src)
    if dst.exists(MANIFEST_NAME) and not restart:
        try:
            found = json.loads(dst.read_text(MANIFEST_NAME))
        except (OSError, ValueError):
            found = None
        if found != wanted:
            raise RunError(
                f"{dst}: holds a run with another policy, key or input; "
                "use another output folder or restart"
            )
        return
    if restart:
        dst.remove(AUDIT_NAME)
        dst.remove(QUARANTINE_NAME)
    elif dst.exists(AUDIT_NAME):
        raise RunError(f"{dst}: holds an audit without a run manifest; restart to start over")
    dst.write_atomic(MANIFEST_NAME, (json.dumps(wanted, indent=1) + "\n").encode("utf-8"))
