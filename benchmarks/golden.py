"""Golden outputs: prove that a performance change leaves every output byte as it was.

De-identifies a broad, deterministic set of inputs under several policies with a fixed key and
records, per (input, policy): the SHA-256 of the output bytes (or the rejection's class, reason
and message), ``plan.counts()``, the SHA-256 of ``plan.explain_lines()``, the audit counts, and
the SHA-256 of the explain lines of ``Deidentifier.plan`` on the input as read. Inputs:

- the benchmark's synthetic CT and MR series (``synthetic.py``, two seeds);
- every file under the shared corpus (``../shared/corpus`` or ``$DEID_CORPUS``), recursively;
- random patients from the test suite's hypothesis strategy (derandomized: the same every run);
- the test suite's factory-built objects, in several character sets and transfer syntaxes.

Nothing of the corpus is copied: only hashes are written (no values of any file).

Usage::

    python benchmarks/golden.py record golden.json      # before a change
    python benchmarks/golden.py check golden.json       # after: exit 1 on any difference

``record`` also writes the drawn patients to ``golden.hypothesis.json``, which ``check``
reads back (draws are not stable across versions of the code).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deid import Deidentifier
from deid.codes import ProfileOption
from deid.errors import DeidError
from deid.policy import Policy, load_policy
from synthetic import SERIES, write_series

ROOT = Path(__file__).resolve().parents[1]
KEY = bytes(range(32))
CORPUS = Path(os.environ.get("DEID_CORPUS", ROOT.parent / "shared" / "corpus"))


def policies() -> list[Policy]:
    """The three shipped policies, the same with the pixel gate off, and two option mixes."""
    out = [load_policy(n) for n in ("basic", "upload", "research")]
    out += [
        dataclasses.replace(load_policy(n), name=f"{n}-nopixel", clean_pixel_data="never")
        for n in ("basic", "upload", "research")
    ]
    every = frozenset(o for o in ProfileOption if o is not ProfileOption.RETAIN_LONG_FULL_DATES)
    out.append(Policy(options=every, name="every-option", clean_pixel_data="never"))
    full = {ProfileOption.RETAIN_LONG_FULL_DATES, ProfileOption.CLEAN_DESCRIPTORS}
    out.append(Policy(options=frozenset(full), name="full-dates", clean_pixel_data="never"))
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def synthetic_inputs(folder: Path) -> Iterator[tuple[str, bytes]]:
    for seed, count in ((0, 12), (7, 4)):
        for name, spec in SERIES.items():
            for path in write_series(folder / f"{name}{seed}", spec, count, seed=seed):
                yield f"synthetic/{name}/{seed}/{path.name}", path.read_bytes()


def corpus_inputs() -> Iterator[tuple[str, bytes]]:
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}: skipped", file=sys.stderr)
        return
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        yield f"corpus/{path.relative_to(CORPUS)}", path.read_bytes()


def hypothesis_inputs(count: int) -> Iterator[tuple[str, bytes]]:
    from hypothesis import HealthCheck, given, settings
    from tests.strategies import Patient, patients

    found: list[bytes] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(patient=patients())
    def draw(patient: Patient) -> None:
        found.append(patient.encoded())

    draw()
    seen: set[str] = set()
    for data in found:
        digest = _sha(data)
        if digest not in seen:
            seen.add(digest)
            yield f"hypothesis/{digest[:16]}", data


def factory_inputs() -> Iterator[tuple[str, bytes]]:
    from tests.factories import item, make_dataset, sequence_of, to_bytes
    from tests.test_fast_path import _odd_object

    for charset in ("ISO_IR 100", "ISO_IR 192"):
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            yield f"factory/odd/{charset}/{syntax}", _odd_object(charset, syntax)
    yield "factory/plain", to_bytes(make_dataset())
    yield "factory/pixels", to_bytes(make_dataset(pixels=True))
    nested = make_dataset(
        pixels=True,
        ContentSequence=sequence_of(
            item(
                ValueType="TEXT",
                TextValue="seen by DOE on 19610415",
                ConceptNameCodeSequence=sequence_of(
                    item(CodeValue="121106", CodingSchemeDesignator="DCM", CodeMeaning="Comment")
                ),
            ),
            item(ValueType="PNAME", PersonName="DOE^JOHN"),
        ),
        OtherPatientIDsSequence=sequence_of(item(PatientID="X123456", IssuerOfPatientID="HOSP")),
        ReferencedStudySequence=sequence_of(
            item(
                ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                ReferencedSOPInstanceUID="1.2.826.0.1.3680043.8.498.77",
            )
        ),
    )
    yield "factory/nested", to_bytes(nested)


def outcome(engine: Deidentifier, data: bytes) -> dict[str, object]:
    try:
        result = engine.deidentify_bytes(data)
    except DeidError as exc:
        reason = getattr(exc, "reason", None)
        return {
            "error": type(exc).__name__,
            "reason": str(getattr(reason, "value", reason)),
            "message": str(exc),
        }
    record: dict[str, object] = {
        "output": _sha(result.data),
        "dataset_keys": len(result.dataset),
        "counts": result.plan.counts(),
        "explain": _sha("\n".join(result.plan.explain_lines()).encode()),
        "audit": result.audit.actions,
        "audit_json": _sha(result.audit.to_json().encode()),
    }
    try:
        ds = dcmread(io.BytesIO(data), force=True)
        plan = engine.plan(ds)
        record["plan_explain"] = _sha("\n".join(plan.explain_lines()).encode())
        record["plan_counts"] = plan.counts()
    except DeidError as exc:
        record["plan_error"] = type(exc).__name__
    except Exception as exc:
        record["plan_error"] = type(exc).__name__
    return record


def run(
    hypothesis_count: int, drawn: dict[str, bytes] | None
) -> tuple[dict[str, dict[str, object]], dict[str, bytes]]:
    engines = [(p.name, Deidentifier(p, KEY)) for p in policies()]
    results: dict[str, dict[str, object]] = {}
    if drawn is None:
        drawn = dict(hypothesis_inputs(hypothesis_count))
    with tempfile.TemporaryDirectory() as tmp:
        sources = [
            synthetic_inputs(Path(tmp)),
            corpus_inputs(),
            factory_inputs(),
            iter(drawn.items()),
        ]
        for source in sources:
            for name, data in source:
                entry: dict[str, object] = {"input": _sha(data)}
                for policy_name, engine in engines:
                    entry[policy_name] = outcome(engine, data)
                results[name] = entry
    return results, drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["record", "check"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--hypothesis", type=int, default=150, help="random patients drawn")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # tests.strategies, tests.factories
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    # Hypothesis draws differ from one version of the code to the next (even derandomized):
    # the patients drawn on recording are kept beside the golden file and read back to check.
    drawn_file = args.file.with_suffix(".hypothesis.json")
    drawn = None
    if args.mode == "check":
        drawn = {k: bytes.fromhex(v) for k, v in json.loads(drawn_file.read_text()).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results, drawn = run(args.hypothesis, drawn)
    cases = sum(len(v) - 1 for v in results.values())
    if args.mode == "record":
        args.file.write_text(json.dumps(results, indent=1, sort_keys=True))
        drawn_file.write_text(json.dumps({k: v.hex() for k, v in drawn.items()}))
        print(f"recorded {len(results)} inputs, {cases} cases -> {args.file}")
        return 0
    golden = json.loads(args.file.read_text())
    differences = 0
    for name in sorted(set(golden) | set(results)):
        old, new = golden.get(name), results.get(name)
        if old != new:
            differences += 1
            if old is None or new is None:
                print(f"DIFF {name}: only in {'new' if old is None else 'golden'}")
                continue
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    print(f"DIFF {name} [{key}]: {old.get(key)} != {new.get(key)}")
    print(f"checked {len(results)} inputs, {cases} cases: {differences} inputs differ")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
