"""The whole shared corpus through ``deid run`` (policy upload, a fixed key) and ``deid explain``.

The run happens once per module; the tests read its audit, its outputs and its stderr.
Skipped where ``../shared/corpus`` (or ``$DEID_CORPUS``) is absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread

from deid import RejectReason
from deid.cli.main import main
from deid.keys import write_key_file
from tests.conftest import CORPUS, KEY

pytestmark = pytest.mark.corpus

_NOT_INPUTS = {".md", ".json", ".zip"}

#: Outcomes checked by hand (see the corpus README and the notes). Files not listed here are
#: still held to every other test in this module.
EXPECTED: dict[str, tuple[str, str | None]] = {
    # not DICOM at all
    "README.md": ("skipped", "NOT_DICOM"),
    "manifest.json": ("skipped", "NOT_DICOM"),
    "burned_in_truth.json": ("skipped", "NOT_DICOM"),
    "presidio/ground_truth.json": ("skipped", "NOT_DICOM"),
    "deid-data/ultrasounds/GREYSCALE_CINE.zip": ("skipped", "NOT_DICOM"),  # a ZIP archive
    "pydicom/no_meta.dcm": ("skipped", "NOT_DICOM"),  # stray byte: one garbage element
    # a media directory, not an image (the files it lists are found by the walk)
    "pydicom/dicomdir/DICOMDIR": ("skipped", "UNSUPPORTED_SOP_CLASS"),
    # cut short inside an element value
    "pydicom/MR_truncated.dcm": ("rejected", "TRUNCATED"),
    "pydicom/rtplan_truncated.dcm": ("rejected", "TRUNCATED"),
    "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm": ("rejected", "TRUNCATED"),
    # Deflated Image Frame Compression: pydicom 3.0.2 cannot write it
    "pydicom-data/liver_deflate.dcm": ("rejected", "UNSUPPORTED_TRANSFER_SYNTAX"),
    # fragments without SOP Class UID and/or SOP Instance UID in the data set
    "pydicom/UN_sequence.dcm": ("rejected", "MISSING_UID"),
    "pydicom/empty_charset_LEI.dcm": ("rejected", "MISSING_UID"),
    "pydicom/meta_missing_tsyntax.dcm": ("rejected", "MISSING_UID"),
    "pydicom/nested_priv_SQ.dcm": ("rejected", "MISSING_UID"),
    "pydicom/no_meta_group_length.dcm": ("rejected", "MISSING_UID"),
    "pydicom/priv_SQ.dcm": ("rejected", "MISSING_UID"),
    "pydicom/charset/chrSQEncoding.dcm": ("rejected", "MISSING_UID"),
    "pydicom/charset/chrSQEncoding1.dcm": ("rejected", "MISSING_UID"),
    "pydicom-data/JLSL_RGB_ILV1.dcm": ("rejected", "MISSING_UID"),
    "pydicom-data/JLSN_RGB_ILV0.dcm": ("rejected", "MISSING_UID"),
    # a second, different object with the SOP Instance UID of a file that comes earlier
    # (JPEG2000-embedded-sequence-delimiter, JPEG-lossy, ExplVR_BigEndNoMeta, chrJapMulti)
    "pydicom/JPEG2000.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    "pydicom/JPGExtended.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    "pydicom/ExplVR_LitEndNoMeta.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    "pydicom/charset/chrJapMultiExplicitIR6.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    # the same MR instance in other transfer syntaxes, after MR_small_RLE.dcm
    "pydicom/MR_small_bigendian.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    "pydicom/MR_small_implicit.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    "pydicom/MR_small_jp2klossless.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    "pydicom/MR_small_jpeg_ls_lossless.dcm": ("rejected", "DUPLICATE_INSTANCE"),
    # SR documents with TEXT items of local concepts (99_OFFIS_DCMTK, 99_OSIRIX, IMSC: one holds
    # a reading physician's licence number), which Table E.3.4-1 cannot judge
    "pydicom/test-SR.dcm": ("rejected", "UNSAFE_STRUCTURED_CONTENT"),
    "pydicom/reportsi.dcm": ("rejected", "UNSAFE_STRUCTURED_CONTENT"),
    "orthanc-tests/MarekLatin2.dcm": ("rejected", "UNSAFE_STRUCTURED_CONTENT"),
    "orthanc-tests/HierarchicalAnonymization/StructuredReports/IM0": (
        "rejected",
        "UNSAFE_STRUCTURED_CONTENT",
    ),
    # an SR of DCM and SNOMED concepts only: cleaned by Clean Structured Content
    "highdicom/sr_document.dcm": ("deidentified", None),
    # plain objects without burned-in text, checked by reading their outputs
    "pydicom/JPEG2000-embedded-sequence-delimiter.dcm": ("deidentified", None),
    "pydicom/ExplVR_BigEndNoMeta.dcm": ("deidentified", None),
    "pydicom/charset/chrFren.dcm": ("deidentified", None),
    # chrFren.dcm plus Other Patient IDs/Names, which are removed: the same output, written once
    "pydicom/charset/chrFrenMulti.dcm": ("deidentified", None),
    "pydicom/charset/chrJapMulti.dcm": ("deidentified", None),
    "pydicom/MR_small_RLE.dcm": ("deidentified", None),
}

#: Must never be released, whatever the reason given.
MUST_BE_REJECTED = {
    # cut short inside the pixel data: pydicom returns an empty data set
    "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm",
}


@dataclass(frozen=True)
class CorpusRun:
    code: int
    stdout: str
    stderr: str
    out: Path
    records: list[dict[str, object]]
    hashes_before: dict[str, str]
    hashes_after: dict[str, str]
    policy: Path

    def by_input(self) -> dict[str, dict[str, object]]:
        return {str(r["input"]): r for r in self.records}


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cli(*argv: str | Path) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()


def _read(path: Path):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():  # odd values kept from real files make pydicom warn
        warnings.simplefilter("ignore")
        return dcmread(path)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set DEID_CORPUS)")
    work = tmp_path_factory.mktemp("corpus-run")
    key = write_key_file(work / "site.key", KEY)
    out = work / "out"
    # The attribute engine over every file: upload, with the pixel gate off (it is tested by
    # test_burned_in_text_is_never_released below, over a run of plain upload).
    policy = work / "attributes.toml"
    policy.write_text('extends = "upload"\nclean_pixel_data = "never"\n', encoding="utf-8")
    before = _hashes(CORPUS)
    code, stdout, stderr = _cli("run", CORPUS, out, "--policy", policy, "--key-file", key)
    after = _hashes(CORPUS)
    text = (out / "audit.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    return CorpusRun(code, stdout, stderr, out, records, before, after, policy)


def _dicom_files() -> list[str]:
    if not CORPUS.is_dir():
        return ["(corpus absent)"]
    return [
        p.relative_to(CORPUS).as_posix()
        for p in sorted(CORPUS.rglob("*"))
        if p.is_file() and p.suffix not in _NOT_INPUTS
    ]


# -- deid run over the corpus ---------------------------------------------------------------


def test_every_input_has_exactly_one_record(corpus, corpus_run) -> None:
    inputs = [str(r["input"]) for r in corpus_run.records]
    assert len(inputs) == len(set(inputs))
    assert set(inputs) == set(corpus_run.hashes_before)
    assert "Traceback" not in corpus_run.stderr


def test_counts_add_up(corpus, corpus_run) -> None:
    outcomes = [r["outcome"] for r in corpus_run.records]
    done = outcomes.count("deidentified")
    rejected, failed = outcomes.count("rejected"), outcomes.count("failed")
    skipped = outcomes.count("skipped")
    assert done + rejected + failed + skipped == len(outcomes)
    summary = (
        f"{len(outcomes)} input(s): {done} de-identified, {rejected} rejected, {failed} failed, "
        f"{skipped} skipped"
    )
    assert summary in corpus_run.stderr
    assert corpus_run.code == (0 if rejected + failed == 0 else 1)
    not_released = [r for r in corpus_run.records if r["outcome"] != "deidentified"]
    listed = re.findall(
        r"^deid: (.+?): (?:rejected|failed|skipped) [A-Z_]+: ", corpus_run.stderr, re.M
    )
    assert listed == [r["input"] for r in not_released]
    assert done > 50


def test_every_output_reads_back_marked_and_named_from_its_uids(corpus, corpus_run) -> None:
    outputs = set()
    for record in corpus_run.records:
        if record["outcome"] != "deidentified":
            continue
        name = str(record["output"])
        outputs.add(name)
        ds = _read(corpus_run.out / name)
        assert ds.PatientIdentityRemoved == "YES", name
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID, name
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID, name
        assert ds.SOPInstanceUID == record["sop_instance_uid"]
        assert name.endswith(f"/{ds.SOPInstanceUID}.dcm")
        study, series = name.split("/")[:2]
        assert study == ds.get("StudyInstanceUID", "no-study-uid")
        assert series == ds.get("SeriesInstanceUID", "no-series-uid")
        assert str(ds.SOPInstanceUID).startswith("2.25.")
    written = {
        p.relative_to(corpus_run.out).as_posix() for p in corpus_run.out.rglob("*") if p.is_file()
    }
    assert written == outputs | {"audit.jsonl", "quarantine.jsonl", ".deid-run.json"}


def test_rejected_inputs_have_a_reason_code_and_no_output(corpus, corpus_run) -> None:
    reasons = {r.value for r in RejectReason}
    for record in corpus_run.records:
        if record["outcome"] == "deidentified":
            assert record["reason"] is None
            continue
        assert record["reason"] in reasons, record["input"]
        assert record["output"] is None
        assert record["sop_instance_uid"] is None


def test_no_input_file_changed(corpus, corpus_run) -> None:
    assert corpus_run.hashes_after == corpus_run.hashes_before


def test_no_output_name_contains_an_input_file_stem(corpus, corpus_run) -> None:
    stems = {Path(name).stem for name in corpus_run.hashes_before}
    for record in corpus_run.records:
        if record["output"] is None:
            continue
        for stem in stems:
            assert stem not in str(record["output"]), (record["input"], stem)


def test_outcomes_checked_by_hand(corpus, corpus_run) -> None:
    got = {
        name: (str(record["outcome"]), record["reason"])
        for name, record in corpus_run.by_input().items()
    }
    assert {name: got.get(name) for name in EXPECTED} == EXPECTED
    for name in MUST_BE_REJECTED:
        assert got[name][0] == "rejected", name
    records = corpus_run.by_input()
    same = ("pydicom/charset/chrFren.dcm", "pydicom/charset/chrFrenMulti.dcm")
    assert records[same[0]]["output"] == records[same[1]]["output"]


def test_burned_in_text_is_never_released_uncleaned(corpus, tmp_path) -> None:
    """Through ``deid run`` (policy upload, the pixel pass on): every file with ground-truth
    PHI in its pixels is released only after the OCR pass cleaned it, or rejected. Which boxes
    were blanked is checked per file in test_corpus_pixels.py."""
    truth = json.loads((CORPUS / "burned_in_truth.json").read_text(encoding="utf-8"))
    key = write_key_file(tmp_path / "site.key", KEY)
    out = tmp_path / "out"
    _cli("run", CORPUS, out, "--policy", "upload", "--key-file", key)
    records = {
        r["input"]: r
        for r in map(json.loads, (out / "audit.jsonl").read_text(encoding="utf-8").splitlines())
    }
    with_phi = {name for name, boxes in truth.items() if any(b.get("phi") for b in boxes)}
    released = {name for name in with_phi if records[name]["outcome"] == "deidentified"}
    for name in released:
        pixels = records[name]["pixels"]
        assert pixels is not None and pixels["cleaned"] and pixels["verified"], name
    # the CT localizer whose header says nothing of its stamped text: the pre-screen caught it
    assert records["presidio/2_ORIGINAL.dcm"]["pixels"]["boxes"]
    rejected = {name: records[name]["reason"] for name in with_phi - released}
    assert rejected == {
        "deid-data/ultrasounds/GREYSCALE_CINE.zip": "NOT_DICOM",  # a ZIP archive: skipped
        "pydicom-data/OBXXXX1A_rle.dcm": "DUPLICATE_INSTANCE",  # same object as OBXXXX1A
    }


# -- deid explain over every DICOM file -----------------------------------------------------


@pytest.mark.parametrize("name", _dicom_files())
def test_explain_never_raises(corpus, corpus_run, name) -> None:
    code, stdout, stderr = _cli("explain", corpus / name, "--policy", corpus_run.policy)
    assert "Traceback" not in stderr
    assert code in (0, 1), stderr
    record = corpus_run.by_input()[name]
    if record["outcome"] == "deidentified":
        assert code == 0
    if code == 0:
        lines = stdout.splitlines()
        assert lines[-1].startswith("# pixels: ")
        count = int(lines[-2].split()[1])
        assert len(lines) == count + 4
        assert all(len(line.split("\t")) == 5 for line in lines[1:-2])
    else:
        assert stdout == ""
        assert f"{name}: rejected " in stderr
