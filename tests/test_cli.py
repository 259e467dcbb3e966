"""The command line, in-process: ``main([...])`` with capsys and tmp_path.

Covers every subcommand and exit code, key resolution, output naming from the new UIDs, the
audit file, explain output, and bad inputs (never a traceback, a partial output or a changed
input).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filewriter import dcmwrite
from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian

from deid import Deidentifier, Pseudonymizer, load_policy, named_policies
from deid.cli.main import main
from deid.engine import read_dataset
from deid.keys import write_key_file
from deid.runner import NO_SERIES, NO_STUDY
from tests.conftest import KEY
from tests.factories import (
    ACCESSION,
    PATIENT_ID,
    PATIENT_NAME,
    PLANTED,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    item,
    make_dataset,
    sequence_of,
    to_bytes,
)

AUDIT_KEYS = [
    "input",
    "output",
    "outcome",
    "reason",
    "detail",
    "sop_class_uid",
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "policy",
    "key_fingerprint",
    "actions",
    "pixels",
    "deid_version",
    "dicom_edition",
    "output_sha256",
]

PSEUDO = Pseudonymizer(KEY)
#: What every run writes beside the outputs (deid.runner).
RUN_FILES = {"audit.jsonl", "quarantine.jsonl", ".deid-run.json"}


# -- helpers -------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def assert_no_planted(*texts: str) -> None:
    for text in texts:
        for value in PLANTED:
            assert value not in text, "a planted identifier reached the output text"


def expected_name(study: str = STUDY_UID, series: str = SERIES_UID, sop: str = SOP_UID) -> str:
    return f"{PSEUDO.uid(study)}/{PSEUDO.uid(series)}/{PSEUDO.uid(sop)}.dcm"


def read_audit(out: Path) -> list[dict[str, object]]:
    lines = (out / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def element(group: int, elem: int, value: bytes, length: int | None = None) -> bytes:
    """One implicit VR little endian element (``length`` overrides, e.g. 0xFFFFFFFF)."""
    return struct.pack("<HHI", group, elem, len(value) if length is None else length) + value


def implicit_head() -> bytes:
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return to_bytes(ds)


def undefined_length_sequence() -> bytes:
    """Request Attributes Sequence (0040,0275), undefined lengths, one item with identifiers."""
    body = element(0x0008, 0x0050, ACCESSION.encode()) + element(0x0040, 0x1001, b"RP1 ")
    undefined = 0xFFFFFFFF
    return (
        element(0x0040, 0x0275, b"", undefined)
        + element(0xFFFE, 0xE000, b"", undefined)
        + body
        + element(0xFFFE, 0xE00D, b"")
        + element(0xFFFE, 0xE0DD, b"")
    )


def no_file_meta() -> bytes:
    ds = make_dataset(pixels=True)
    del ds.file_meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def with_vr(vr: bytes) -> bytes:
    """The factory object with Patient's Name's VR replaced by ``vr`` (explicit VR LE)."""
    data = to_bytes(make_dataset(pixels=True))
    at = data.find(b"\x10\x00\x10\x00PN")
    return data[: at + 4] + vr + data[at + 6 :]


def charset(name: str, old: bytes, new: bytes) -> bytes:
    """Specific Character Set ``name`` (spelled in bytes: pydicom will not write an unknown one)."""
    assert len(old) == len(new)
    data = to_bytes(make_dataset(SpecificCharacterSet="ISO_IR 100")).replace(old, new)
    return data.replace(b"ISO_IR 100", name.encode("ascii").ljust(10))


GOOD = to_bytes(make_dataset(pixels=True))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_key_file(tmp_path / "site.key", KEY)


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEID_KEY_FILE", raising=False)


@pytest.fixture
def one_file(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "scan-0001.dcm"
    path.write_bytes(GOOD)
    return path


# -- deid run: one file --------------------------------------------------------------------


def test_run_names_the_output_from_the_new_uids(capsys, tmp_path, one_file, key_file) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "run", one_file, out, "--key-file", key_file)
    assert code == 0
    assert files_under(out) == {expected_name(), *RUN_FILES}
    assert "scan-0001" not in expected_name()
    written = dcmread(out / expected_name())
    assert written.PatientIdentityRemoved == "YES"
    assert written.SOPInstanceUID == PSEUDO.uid(SOP_UID)
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    assert_no_planted(stdout, stderr, (out / "audit.jsonl").read_text(encoding="utf-8"))


def test_run_audit_record_has_exact_keys_and_values(capsys, tmp_path, one_file, key_file) -> None:
    out = tmp_path / "out"
    assert cli(capsys, "run", one_file, out, "--key-file", key_file)[0] == 0
    [record] = read_audit(out)
    assert list(record) == AUDIT_KEYS
    expected = Deidentifier("upload", KEY).deidentify(read_dataset(GOOD)).audit
    assert record == {
        "input": "scan-0001.dcm",
        "output": expected_name(),
        "outcome": "deidentified",
        "reason": None,
        "detail": "",
        "sop_class_uid": CTImageStorage,
        "study_instance_uid": PSEUDO.uid(STUDY_UID),
        "series_instance_uid": PSEUDO.uid(SERIES_UID),
        "sop_instance_uid": PSEUDO.uid(SOP_UID),
        "policy": "upload",
        "key_fingerprint": PSEUDO.fingerprint,
        "actions": expected.actions,
        "pixels": expected.pixels,
        "deid_version": expected.deid_version,
        "dicom_edition": "2026c",
        "output_sha256": hashlib.sha256((out / expected_name()).read_bytes()).hexdigest(),
    }
    assert sum(record["actions"].values()) > 10  # type: ignore[union-attr]
    # A CT without Image Type is no plain slice: pre-screened, found free of text, untouched.
    pixels = record["pixels"]
    assert isinstance(pixels, dict)
    assert (pixels["cleaned"], pixels["boxes"], pixels["ocr_calls"]) == (False, [], 0)
    assert pixels["reason"] == "not a plain ORIGINAL\\PRIMARY CT or MR slice: pre-screened"


def test_run_leaves_the_input_unchanged_and_no_temp_files(
    capsys, tmp_path, one_file, key_file
) -> None:
    before = snapshot(one_file.parent)
    assert cli(capsys, "run", one_file.parent, tmp_path / "out", "--key-file", key_file)[0] == 0
    assert snapshot(one_file.parent) == before
    assert not list(tmp_path.rglob(".deid-*.tmp"))


def test_object_without_study_and_series_uid_goes_under_placeholders(
    capsys, tmp_path, key_file
) -> None:
    src = tmp_path / "bare.dcm"
    src.write_bytes(to_bytes(make_dataset(StudyInstanceUID=None, SeriesInstanceUID=None)))
    out = tmp_path / "out"
    assert cli(capsys, "run", src, out, "--key-file", key_file)[0] == 0
    name = f"{NO_STUDY}/{NO_SERIES}/{PSEUDO.uid(SOP_UID)}.dcm"
    assert files_under(out) == {name, *RUN_FILES}
    [record] = read_audit(out)
    assert record["output"] == name
    assert record["study_instance_uid"] is None


def test_a_kept_uid_that_is_not_a_uid_never_becomes_a_path(capsys, tmp_path, key_file) -> None:
    policy = tmp_path / "keep.toml"
    policy.write_text('name = "keep"\nextends = "upload"\noptions = ["retain_uids"]\n', "utf-8")
    with warnings.catch_warnings():  # pydicom warns about the invalid UID it is asked to write
        warnings.simplefilter("ignore")
        data = to_bytes(make_dataset(SOPInstanceUID="1.2.3.4/../../escaped"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.dcm").write_bytes(data)
    out = tmp_path / "out"
    argv = ("run", tmp_path / "in", out, "--key-file", key_file, "--policy", policy)
    code, _, stderr = cli(capsys, *argv)
    assert code == 1
    [record] = read_audit(out)
    assert (record["outcome"], record["reason"], record["output"]) == (
        "rejected",
        "MISSING_UID",
        None,
    )
    assert "not a valid UID" in stderr
    assert files_under(out) == {*RUN_FILES}
    assert files_under(tmp_path) == {
        "site.key", "keep.toml", "in/x.dcm", *(f"out/{name}" for name in RUN_FILES)
    }  # fmt: skip


# -- deid run: a folder with bad files ------------------------------------------------------


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(GOOD)
    other = make_dataset(
        SOPInstanceUID="1.2.826.0.1.3680043.8.498.2003",
        SeriesInstanceUID="1.2.826.0.1.3680043.8.498.2002",
    )
    (folder / "sub" / "b.dcm").write_bytes(to_bytes(other))
    (folder / "notes.txt").write_text("not a DICOM file at all\n" * 4, encoding="ascii")
    (folder / "sub" / "cut.dcm").write_bytes(GOOD[:-100])
    return folder


def test_folder_with_bad_files_exits_1_and_lists_them(capsys, tmp_path, mixed_folder, key_file):
    out = tmp_path / "out"
    before = snapshot(mixed_folder)
    code, stdout, stderr = cli(capsys, "run", mixed_folder, out, "--key-file", key_file)
    assert code == 1
    second = expected_name(
        series="1.2.826.0.1.3680043.8.498.2002", sop="1.2.826.0.1.3680043.8.498.2003"
    )
    assert files_under(out) == {expected_name(), second, *RUN_FILES}
    records = {r["input"]: r for r in read_audit(out)}
    assert list(records) == ["a.dcm", "notes.txt", "sub/b.dcm", "sub/cut.dcm"]
    assert records["a.dcm"]["output"] == expected_name()
    assert records["sub/b.dcm"]["output"] == second
    for name, reason, outcome in (
        ("notes.txt", "NOT_DICOM", "skipped"),
        ("sub/cut.dcm", "TRUNCATED", "rejected"),
    ):
        assert records[name]["outcome"] == outcome
        assert records[name]["reason"] == reason
        assert records[name]["output"] is None
        assert records[name]["study_instance_uid"] is None
        assert records[name]["actions"] == {}
        assert list(records[name]) == AUDIT_KEYS
        assert f"{name}: {outcome} {reason}" in stderr
    assert "a.dcm:" not in stderr
    assert "4 input(s): 2 de-identified, 1 rejected, 0 failed, 1 skipped" in stderr
    assert snapshot(mixed_folder) == before
    assert not list(tmp_path.rglob(".deid-*.tmp"))
    assert_no_planted(stdout, stderr, (out / "audit.jsonl").read_text(encoding="utf-8"))


def test_rerun_of_a_finished_run_changes_nothing(capsys, tmp_path, mixed_folder, key_file):
    out = tmp_path / "out"
    assert cli(capsys, "run", mixed_folder, out, "--key-file", key_file)[0] == 1
    first_audit = (out / "audit.jsonl").read_bytes()
    first = {name: (out / name).read_bytes() for name in files_under(out)}
    assert cli(capsys, "run", mixed_folder, out, "--key-file", key_file)[0] == 1
    assert len(read_audit(out)) == 4
    assert (out / "audit.jsonl").read_bytes() == first_audit
    assert {name: (out / name).read_bytes() for name in files_under(out)} == first


def test_two_objects_with_one_sop_instance_uid_are_not_both_written(capsys, tmp_path, key_file):
    src = tmp_path / "in"
    src.mkdir()
    (src / "1.dcm").write_bytes(GOOD)
    (src / "2.dcm").write_bytes(to_bytes(make_dataset(pixels=True, PatientSex="F")))
    (src / "3.dcm").write_bytes(GOOD)  # an exact copy: the same output, written once
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "run", src, out, "--key-file", key_file)
    assert code == 1
    records = read_audit(out)
    assert [(r["input"], r["outcome"], r["reason"]) for r in records] == [
        ("1.dcm", "deidentified", None),
        ("2.dcm", "rejected", "DUPLICATE_INSTANCE"),
        ("3.dcm", "deidentified", None),
    ]
    assert records[0]["output"] == records[2]["output"] == expected_name()
    assert files_under(out) == {expected_name(), *RUN_FILES}
    assert dcmread(out / expected_name()).PatientSex == "M"
    assert "2.dcm: rejected DUPLICATE_INSTANCE" in stderr


def test_one_sop_instance_uid_in_two_series_is_a_duplicate(capsys, tmp_path, key_file) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "1.dcm").write_bytes(GOOD)
    moved = make_dataset(pixels=True, SeriesInstanceUID="1.2.826.0.1.3680043.8.498.3002")
    (src / "2.dcm").write_bytes(to_bytes(moved))
    out = tmp_path / "out"
    assert cli(capsys, "run", src, out, "--key-file", key_file)[0] == 1
    assert [r["reason"] for r in read_audit(out)] == [None, "DUPLICATE_INSTANCE"]
    assert files_under(out) == {expected_name(), *RUN_FILES}


def test_empty_input_folder_is_success_with_an_empty_audit(capsys, tmp_path, key_file) -> None:
    (tmp_path / "in").mkdir()
    code, _, stderr = cli(capsys, "run", tmp_path / "in", tmp_path / "out", "--key-file", key_file)
    assert code == 0
    assert (tmp_path / "out" / "audit.jsonl").read_text(encoding="utf-8") == ""
    assert "0 input(s)" in stderr


# -- bad inputs -----------------------------------------------------------------------------

BAD_INPUTS: dict[str, tuple[Callable[[], bytes], str | None]] = {
    # name: (bytes, expected reason; None when the object is de-identified)
    "empty": (lambda: b"", "NOT_DICOM"),
    "text": (lambda: b"patient list, not DICOM\n" * 8, "NOT_DICOM"),
    "json": (lambda: json.dumps({"PatientName": "x" * 40}).encode(), "NOT_DICOM"),
    "truncated-in-pixel-data": (lambda: GOOD[:-100], "TRUNCATED"),
    "truncated-in-a-value": (lambda: GOOD[: GOOD.find(PATIENT_ID.encode()) + 3], "TRUNCATED"),
    "no-file-meta": (no_file_meta, None),
    "unknown-vr": (lambda: with_vr(b"ZZ"), "INVALID_DATASET"),
    "wrong-vr": (lambda: with_vr(b"US"), "INVALID_DATASET"),
    "unknown-charset": (
        lambda: charset("ISO_IR 999", b"JOHNATHAN", "JOHNÄTHAN".encode("latin-1")),
        None,
    ),
    "invalid-utf8": (lambda: charset("ISO_IR 192", b"JOHNATHAN", b"JOHN\xff\xfeHAN"), None),
    "undefined-length-sequence": (lambda: implicit_head() + undefined_length_sequence(), None),
    "undefined-length-text": (
        lambda: (
            implicit_head()
            + element(0x0040, 0x0280, b"REQUEST COMMENT ", 0xFFFFFFFF)
            + element(0xFFFE, 0xE0DD, b"")
        ),
        None,
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_reported_not_raised(capsys, tmp_path, key_file, name) -> None:
    make, reason = BAD_INPUTS[name]
    src = tmp_path / "in"
    src.mkdir()
    (src / f"{name}.dcm").write_bytes(make())
    before = snapshot(src)
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "run", src, out, "--key-file", key_file)
    [record] = read_audit(out)
    assert snapshot(src) == before
    assert not list(tmp_path.rglob(".deid-*.tmp"))
    assert_no_planted(stdout, stderr, (out / "audit.jsonl").read_text(encoding="utf-8"))
    if reason is None:
        assert code == 0
        assert record["outcome"] == "deidentified"
        written = out / str(record["output"])
        assert files_under(out) == {str(record["output"]), *RUN_FILES}
        data = written.read_bytes()
        assert all(value.encode() not in data for value in PLANTED)
        with warnings.catch_warnings():  # an unknown character set is kept, and warned about
            warnings.simplefilter("ignore")
            assert dcmread(written).PatientIdentityRemoved == "YES"
    else:
        skipped = reason == "NOT_DICOM"  # not DICOM at all: skipped, and the run succeeds
        outcome = "skipped" if skipped else "rejected"
        assert code == (0 if skipped else 1)
        assert (record["outcome"], record["reason"], record["output"]) == (outcome, reason, None)
        assert files_under(out) == {*RUN_FILES}
        assert f"{name}.dcm: {outcome} {reason}" in stderr


#: Objects that end early, each rejected as TRUNCATED.
CUT_SHORT = {
    "sequence-without-delimiter": lambda: implicit_head() + undefined_length_sequence()[:-8],
    "item-without-delimiter": lambda: implicit_head() + undefined_length_sequence()[:-16],
    "text-without-delimiter": lambda: (
        implicit_head() + element(0x0040, 0x0280, b"REQUEST COMMENT ", 0xFFFFFFFF)
    ),
    "cut-inside-an-element-header": lambda: GOOD[: GOOD.find(PATIENT_NAME.encode()) + 18],
}


@pytest.mark.parametrize("name", list(CUT_SHORT))
def test_cut_short_input_is_never_released(capsys, tmp_path, key_file, name) -> None:
    src = tmp_path / f"{name}.dcm"
    src.write_bytes(CUT_SHORT[name]())
    out = tmp_path / "out"
    code = cli(capsys, "run", src, out, "--key-file", key_file)[0]
    [record] = read_audit(out)
    assert code == 1
    assert (record["outcome"], record["reason"]) == ("rejected", "TRUNCATED")
    assert files_under(out) == {*RUN_FILES}


def test_unexpected_error_in_one_object_fails_it_and_the_run_goes_on(
    capsys, tmp_path, mixed_folder, key_file, monkeypatch
) -> None:
    real = Deidentifier.deidentify_bytes

    def flaky(self: Deidentifier, data: bytes):  # type: ignore[no-untyped-def]
        if data.startswith(b"not a DICOM"):
            raise TypeError(PATIENT_NAME)  # a bug whose message quotes a value
        return real(self, data)

    monkeypatch.setattr(Deidentifier, "deidentify_bytes", flaky)
    out = tmp_path / "out"
    code, stdout, stderr = cli(capsys, "run", mixed_folder, out, "--key-file", key_file)
    assert code == 1
    records = {r["input"]: r for r in read_audit(out)}
    assert records["notes.txt"]["outcome"] == "failed"
    assert records["notes.txt"]["detail"] == "unexpected error (TypeError)"
    assert records["a.dcm"]["outcome"] == "deidentified"
    assert "notes.txt: failed INVALID_DATASET: unexpected error (TypeError)" in stderr
    assert_no_planted(stdout, stderr, (out / "audit.jsonl").read_text(encoding="utf-8"))


def test_write_failure_is_reported_as_failed(capsys, tmp_path, one_file, key_file, monkeypatch):
    from deid import runner

    def refuse(dst: object, temporary: str, relative: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(runner, "_move_into_place", refuse)
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "run", one_file, out, "--key-file", key_file)
    assert code == 1
    [record] = read_audit(out)
    assert (record["outcome"], record["reason"], record["output"]) == (
        "failed",
        "WRITE_FAILED",
        None,
    )
    assert "scan-0001.dcm: failed WRITE_FAILED" in stderr


def test_internal_error_outside_an_object_exits_70_without_traceback(
    capsys, tmp_path, one_file, key_file, monkeypatch
) -> None:
    from deid.cli import run

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError(PATIENT_NAME)

    monkeypatch.setattr(run.runner, "discover", broken)
    code, stdout, stderr = cli(capsys, "run", one_file, tmp_path / "out", "--key-file", key_file)
    assert code == 70
    assert "internal error (ValueError)" in stderr
    assert_no_planted(stdout, stderr)


# -- key resolution -------------------------------------------------------------------------


def test_key_from_the_environment(capsys, tmp_path, one_file, key_file, monkeypatch) -> None:
    monkeypatch.setenv("DEID_KEY_FILE", str(key_file))
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "run", one_file, out)
    assert code == 0
    assert files_under(out) == {expected_name(), *RUN_FILES}
    assert "ephemeral" not in stderr


def test_key_file_flag_wins_over_the_environment(capsys, tmp_path, one_file, key_file, monkeypatch):
    monkeypatch.setenv("DEID_KEY_FILE", str(write_key_file(tmp_path / "other.key")))
    out = tmp_path / "out"
    assert cli(capsys, "run", one_file, out, "--key-file", key_file)[0] == 0
    assert files_under(out) == {expected_name(), *RUN_FILES}


@pytest.mark.parametrize("with_env", [False, True], ids=["no-env", "env-set"])
def test_ephemeral_key_is_announced(capsys, tmp_path, one_file, key_file, monkeypatch, with_env):
    if with_env:  # the explicit flag wins over the environment
        monkeypatch.setenv("DEID_KEY_FILE", str(key_file))
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "run", one_file, out, "--ephemeral-key")
    assert code == 0
    assert "ephemeral random key: the mapping cannot be reproduced" in stderr
    [record] = read_audit(out)
    assert record["key_fingerprint"] != PSEUDO.fingerprint
    assert record["output"] != expected_name()
    assert (out / str(record["output"])).is_file()


def test_no_key_is_refused_and_nothing_is_written(capsys, tmp_path, one_file) -> None:
    out = tmp_path / "out"
    code, _, stderr = cli(capsys, "run", one_file, out)
    assert code == 2
    assert "no key" in stderr
    assert "--ephemeral-key" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "content", [None, "not a key\n", "deid-key-v1:abcd\n"], ids=["missing", "garbage", "short"]
)
def test_bad_key_file_is_a_usage_error(capsys, tmp_path, one_file, content) -> None:
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_text(content, encoding="ascii")
    code, _, stderr = cli(capsys, "run", one_file, tmp_path / "out", "--key-file", path)
    assert code == 2
    assert str(path) in stderr


def test_key_file_and_ephemeral_key_exclude_each_other(capsys, tmp_path, one_file, key_file):
    argv = ("run", one_file, tmp_path / "out", "--key-file", key_file, "--ephemeral-key")
    code, _, stderr = cli(capsys, *argv)
    assert code == 2
    assert "not allowed with" in stderr


# -- usage errors ---------------------------------------------------------------------------


def test_missing_input_is_a_usage_error(capsys, tmp_path, key_file) -> None:
    code, _, stderr = cli(
        capsys, "run", tmp_path / "nope", tmp_path / "out", "--key-file", key_file
    )
    assert code == 2
    assert "nope: input does not exist" in stderr
    assert not (tmp_path / "out").exists()


def test_input_that_is_a_fifo_is_a_usage_error(capsys, tmp_path, key_file) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, stderr = cli(capsys, "run", fifo, tmp_path / "out", "--key-file", key_file)
    assert code == 2
    assert "neither a regular file nor a folder" in stderr


def test_fifo_inside_the_input_folder_is_skipped(capsys, tmp_path, one_file, key_file) -> None:
    os.mkfifo(one_file.parent / "pipe")
    out = tmp_path / "out"
    assert cli(capsys, "run", one_file.parent, out, "--key-file", key_file)[0] == 0
    assert [r["input"] for r in read_audit(out)] == ["scan-0001.dcm"]


def test_unknown_policy_is_a_usage_error(capsys, tmp_path, one_file, key_file) -> None:
    argv = ("run", one_file, tmp_path / "out", "--key-file", key_file, "--policy", "nosuch")
    code, _, stderr = cli(capsys, *argv)
    assert code == 2
    assert "no such policy" in stderr
    assert all(name in stderr for name in named_policies())
    assert not (tmp_path / "out").exists()


def test_policy_from_a_toml_file(capsys, tmp_path, one_file, key_file) -> None:
    policy = tmp_path / "site.toml"
    policy.write_text('name = "site"\nextends = "basic"\n', encoding="utf-8")
    out = tmp_path / "out"
    argv = ("run", one_file, out, "--key-file", key_file, "--policy", policy)
    assert cli(capsys, *argv)[0] == 0
    [record] = read_audit(out)
    assert record["policy"] == "site"


def test_invalid_policy_file_is_a_usage_error(capsys, tmp_path, one_file, key_file) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text('name = "bad"\noptions = ["no_such_option"]\n', encoding="utf-8")
    argv = ("run", one_file, tmp_path / "out", "--key-file", key_file, "--policy", policy)
    code, _, stderr = cli(capsys, *argv)
    assert code == 2
    assert "bad.toml" in stderr


def test_output_inside_the_input_is_refused(capsys, tmp_path, one_file, key_file) -> None:
    out = one_file.parent / "out"
    code, _, stderr = cli(capsys, "run", one_file.parent, out, "--key-file", key_file)
    assert code == 2
    assert "must not be inside the input" in stderr
    assert not out.exists()


def test_output_that_is_a_file_is_a_usage_error(capsys, tmp_path, one_file, key_file) -> None:
    out = tmp_path / "taken"
    out.write_text("x", encoding="ascii")
    code, _, stderr = cli(capsys, "run", one_file, out, "--key-file", key_file)
    assert code == 2
    assert "cannot create the output folder" in stderr


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["run"], ["run", "only-input"], ["explain"], ["keygen"], ["run", "--x"]],
    ids=["nothing", "unknown-command", "run-no-args", "run-one-arg", "explain", "keygen", "flag"],
)
def test_bad_arguments_exit_2(capsys, argv) -> None:
    code, _, stderr = cli(capsys, *argv)
    assert code == 2
    assert "usage:" in stderr


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_exit_0(capsys, flag) -> None:
    code, stdout, _ = cli(capsys, flag)
    assert code == 0
    assert "deid" in stdout


# -- deid explain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "policy", "line"),
    [
        (
            {"Modality": "US", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.6.1"},
            "upload",
            "# pixels: pixel pass (modality US; OCR rapidocr, blank all text)",
        ),
        (
            {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]},
            "upload",
            "# pixels: not looked at (clean_pixel_data = auto)",
        ),
        ({"Modality": "US"}, "never", "# pixels: not looked at (clean_pixel_data = never)"),
    ],
    ids=["risky", "plain-slice", "never"],
)
def test_explain_says_what_the_pixel_pass_would_do(
    capsys, tmp_path, changes: dict, policy: str, line: str
) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(to_bytes(make_dataset(pixels=True, **changes)))
    if policy == "never":
        (tmp_path / "never.toml").write_text('clean_pixel_data = "never"\n', encoding="utf-8")
        policy = str(tmp_path / "never.toml")
    code, stdout, _ = cli(capsys, "explain", path, "--policy", policy)
    assert code == 0
    assert stdout.splitlines()[-1] == line


def test_explain_without_pixel_data(capsys, tmp_path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(to_bytes(make_dataset(pixels=False)))
    code, stdout, _ = cli(capsys, "explain", path)
    assert (code, stdout.splitlines()[-1]) == (0, "# pixels: no pixel data")


def test_explain_prints_one_line_per_decision_and_no_values(capsys, tmp_path, one_file) -> None:
    code, stdout, stderr = cli(capsys, "explain", one_file)
    assert code == 0
    plan = Deidentifier("upload", KEY).plan(read_dataset(GOOD))
    lines = stdout.splitlines()
    assert lines[0].startswith(f"# SOP Class {CTImageStorage} ")
    assert lines[0].endswith("policy upload")
    assert lines[1] == "location\tkeyword\tVR\taction\twhy"
    body = lines[2:-2]
    assert body == [d.explain() for d in plan.decisions]
    assert all(len(line.split("\t")) == 5 for line in body)
    assert lines[-2].startswith(f"# {len(plan.decisions)} decisions: ")
    assert lines[-1] == (
        "# pixels: pre-screen every frame, pixel pass where it finds text "
        "(OCR rapidocr, blank all text)"
    )
    assert any(line.startswith("(0010,0010)\tPatientName\tPN\t") for line in body)
    assert_no_planted(stdout, stderr)


def test_explain_with_another_policy(capsys, one_file) -> None:
    code, stdout, _ = cli(capsys, "explain", one_file, "--policy", "basic")
    assert code == 0
    assert stdout.splitlines()[0].endswith("policy basic")
    plan = Deidentifier(load_policy("basic"), KEY).plan(read_dataset(GOOD))
    assert stdout.splitlines()[2:-2] == [d.explain() for d in plan.decisions]


def test_explain_sequences_and_file_meta(capsys, tmp_path) -> None:
    ds = make_dataset()
    ds.RequestAttributesSequence = sequence_of(item(AccessionNumber=ACCESSION))
    path = tmp_path / "seq.dcm"
    path.write_bytes(to_bytes(ds))
    code, stdout, _ = cli(capsys, "explain", path)
    assert code == 0
    assert "\n(0040,0275)[0]>(0008,0050)\tAccessionNumber\tSH\t" in stdout
    assert "\nmeta>(0002,0003)\tMediaStorageSOPInstanceUID\tUI\tU\t" in stdout
    assert_no_planted(stdout)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"plain text, not DICOM\n" * 4, "NOT_DICOM"), (GOOD[:-100], "TRUNCATED")],
    ids=["not-dicom", "truncated"],
)
def test_explain_rejected_file_exits_1(capsys, tmp_path, content, reason) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(content)
    code, stdout, stderr = cli(capsys, "explain", path)
    assert code == 1
    assert stdout == ""
    assert f"x.dcm: rejected {reason}" in stderr


def test_explain_missing_file_or_bad_policy_exits_2(capsys, tmp_path, one_file) -> None:
    code, _, stderr = cli(capsys, "explain", tmp_path / "nope.dcm")
    assert (code, "nope.dcm: no such file" in stderr) == (2, True)
    code, _, stderr = cli(capsys, "explain", one_file, "--policy", "nosuch")
    assert (code, "no such policy" in stderr) == (2, True)


# -- deid keygen ----------------------------------------------------------------------------


def test_keygen_writes_an_owner_only_key(capsys, tmp_path) -> None:
    path = tmp_path / "new.key"
    code, stdout, stderr = cli(capsys, "keygen", path)
    assert code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = Pseudonymizer.from_file(path)
    assert key.fingerprint in stderr
    secret = path.read_text(encoding="ascii").strip().split(":")[1]
    assert secret not in stdout + stderr
    assert Pseudonymizer.from_file(path).uid("1.2.3") == key.uid("1.2.3")


def test_keygen_refuses_to_overwrite(capsys, tmp_path, key_file) -> None:
    before = key_file.read_bytes()
    code, _, stderr = cli(capsys, "keygen", key_file)
    assert code == 2
    assert "refusing to overwrite" in stderr
    assert key_file.read_bytes() == before


def test_keygen_into_a_missing_folder_is_a_usage_error(capsys, tmp_path) -> None:
    code, _, stderr = cli(capsys, "keygen", tmp_path / "no" / "such" / "k.key")
    assert code == 2
    assert "cannot write key file (FileNotFoundError)" in stderr


def test_two_keys_differ(capsys, tmp_path) -> None:
    assert cli(capsys, "keygen", tmp_path / "a.key")[0] == 0
    assert cli(capsys, "keygen", tmp_path / "b.key")[0] == 0
    a = Pseudonymizer.from_file(tmp_path / "a.key")
    b = Pseudonymizer.from_file(tmp_path / "b.key")
    assert a.fingerprint != b.fingerprint


# -- deid policies --------------------------------------------------------------------------


def test_policies_lists_every_named_policy_with_its_options(capsys) -> None:
    code, stdout, _ = cli(capsys, "policies")
    assert code == 0
    names = [line for line in stdout.splitlines() if line and not line.startswith(" ")]
    assert names == list(named_policies())
    for name in named_policies():
        policy = load_policy(name)
        section = stdout.split(f"{name}\n", 1)[1]
        options = ", ".join(policy.describe()["options"]) or "(Basic Profile only)"
        assert f"  options: {options}\n" in section
    assert "date shift: -3650 to -1 days per patient" in stdout


# -- main() is safe to call in-process ------------------------------------------------------


def test_main_restores_global_state(capsys, one_file, tmp_path, key_file) -> None:
    import logging

    from pydicom import config

    mode = config.settings.reading_validation_mode
    level = logging.getLogger("pydicom").level
    filters = list(warnings.filters)
    assert cli(capsys, "run", one_file, tmp_path / "out", "--key-file", key_file)[0] == 0
    assert config.settings.reading_validation_mode == mode
    assert logging.getLogger("pydicom").level == level
    assert warnings.filters == filters


def test_closed_stdout_exits_quietly(capsys, one_file, monkeypatch) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr("sys.stdout", Closed())
    code = main(["explain", str(one_file)])
    assert code == 141
    assert "Traceback" not in capsys.readouterr().err


def test_interrupt_exits_130(capsys, tmp_path, one_file, key_file, monkeypatch) -> None:
    from deid.cli import run

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run.runner, "discover", interrupted)
    code, _, stderr = cli(capsys, "run", one_file, tmp_path / "out", "--key-file", key_file)
    assert code == 130
    assert "interrupted" in stderr


def test_console_script_entry_point(tmp_path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("deid")
    if not script.exists():
        pytest.skip("the deid console script is not installed beside this interpreter")
    done = subprocess.run(
        [str(script), "keygen", str(tmp_path / "k.key")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "fingerprint" in done.stderr
    argv = [str(script), "policies", "--nope"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
