"""Archive runs (deid.runner): discovery, workers, the journal, resume after kill -9, quarantine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from deid import Deidentifier, runner
from deid.codes import Outcome
from deid.keys import write_key_file
from deid.storage import TEMP_PREFIX, TEMP_SUFFIX
from tests.conftest import KEY
from tests.factories import make_dataset, to_bytes

STUDY = "1.2.826.0.1.3680043.8.498.5"


def ct(index: int, size: int = 16) -> bytes:
    ds = make_dataset(
        pixels=True,
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        SOPInstanceUID=f"{STUDY}.{index}",
        SeriesInstanceUID=f"{STUDY}.{index % 3}.0",
        PatientID=f"MRN{index % 4:04d}77",
    )
    if size != 16:
        ds.Rows = ds.Columns = size
        ds.PixelData = bytes(size * size * 2)
    return to_bytes(ds)


def archive(root: Path, count: int, size: int = 16) -> Path:
    for index in range(count):
        folder = root / f"p{index % 4}" / f"s{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:04d}.dcm").write_bytes(ct(index, size))
    (root / "README.txt").write_text("an archive of made-up objects\n", encoding="ascii")
    return root


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def outputs(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(folder).items() if k.endswith(".dcm")}


def audit(folder: Path) -> list[dict[str, object]]:
    text = (folder / runner.AUDIT_NAME).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def engine() -> Deidentifier:
    return Deidentifier("upload", KEY)


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_is_lazy_sorted_and_filtered(tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 8)
    found = runner.discover(src)
    assert iter(found) is found  # a generator: nothing listed up front
    names = [item.relative for item in found]
    assert names == sorted(names)
    assert names[0] == "README.txt" and len(names) == 9
    only = [i.relative for i in runner.discover(src, include=["p1/*"])]
    assert only == ["p1/s1/0001.dcm", "p1/s2/0005.dcm"]
    none_of = [i.relative for i in runner.discover(src, exclude=["*.txt", "p0/*"])]
    assert none_of and not any(n.endswith(".txt") or n.startswith("p0/") for n in none_of)
    assert len(none_of) == 6


def test_folder_links_are_not_followed(tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 2)
    outside = archive(tmp_path / "elsewhere", 3)
    (src / "link").symlink_to(outside, target_is_directory=True)
    assert not any(i.relative.startswith("link") for i in runner.discover(src))


def _dicomdir(folder: Path, files: list[str]) -> Path:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage

    ds = Dataset()
    records = []
    for name in files:
        record = Dataset()
        record.DirectoryRecordType = "IMAGE"
        record.ReferencedFileID = name.split("/")
        records.append(record)
    ds.DirectoryRecordSequence = Sequence(records)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = f"{STUDY}.999"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path = folder / "DICOMDIR"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_dicomdir_input_gives_the_files_it_lists(tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 6)
    path = _dicomdir(src, ["p1/s1/0001.dcm", "p2/s2/0002.dcm", "../outside.dcm", "p1/s1/0001.dcm"])
    assert [i.relative for i in runner.discover(path)] == ["p1/s1/0001.dcm", "p2/s2/0002.dcm"]
    walked = {i.relative: i.skip_reason for i in runner.discover(src)}
    assert walked["DICOMDIR"].startswith("a media directory")


# -- runs -----------------------------------------------------------------------------------------


def test_counts_add_up_and_non_dicom_is_skipped(tmp_path: Path, engine: Deidentifier) -> None:
    src = archive(tmp_path / "in", 6)
    (src / "p0" / "cut.dcm").write_bytes(ct(99)[:-40])
    summary = runner.run(engine, src, tmp_path / "out")
    c = summary.counts
    assert (
        c[Outcome.DEIDENTIFIED],
        c[Outcome.REJECTED],
        c[Outcome.FAILED],
        c[Outcome.SKIPPED],
    ) == (
        6,
        1,
        0,
        1,
    )
    assert summary.total == 8 == len(audit(tmp_path / "out"))
    assert summary.line() == "8 input(s): 6 de-identified, 1 rejected, 0 failed, 1 skipped"
    quarantine = (tmp_path / "out" / runner.QUARANTINE_NAME).read_text(encoding="utf-8")
    assert [json.loads(line) for line in quarantine.splitlines()] == [
        {
            "input": "p0/cut.dcm",
            "outcome": "rejected",
            "reason": "TRUNCATED",
            "detail": "element (7FE0,0010) is shorter than its length",
        }
    ]


def test_workers_give_the_same_outputs_and_audit_as_one_process(
    tmp_path: Path, engine: Deidentifier
) -> None:
    src = archive(tmp_path / "in", 12)
    one = runner.run(engine, src, tmp_path / "one", workers=1)
    two = runner.run(engine, src, tmp_path / "two", workers=2)
    assert one.counts == two.counts
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert audit(tmp_path / "one") == audit(tmp_path / "two")  # input order, not finish order


def test_quarantine_dir_gets_copies_of_rejected_inputs(
    tmp_path: Path, engine: Deidentifier
) -> None:
    src = archive(tmp_path / "in", 2)
    (src / "p0" / "cut.dcm").write_bytes(ct(7)[:-40])
    runner.run(engine, src, tmp_path / "out", quarantine_dir=tmp_path / "q")
    assert tree(tmp_path / "q") == {"p0/cut.dcm": ct(7)[:-40]}


def test_another_policy_or_key_into_the_same_output_is_refused(
    tmp_path: Path, engine: Deidentifier
) -> None:
    src = archive(tmp_path / "in", 2)
    runner.run(engine, src, tmp_path / "out")
    with pytest.raises(runner.RunError, match="another policy, key or input"):
        runner.run(Deidentifier("basic", KEY), src, tmp_path / "out")
    with pytest.raises(runner.RunError, match="another policy, key or input"):
        runner.run(Deidentifier("upload", bytes(32)), src, tmp_path / "out")
    before = outputs(tmp_path / "out")
    summary = runner.run(Deidentifier("basic", KEY), src, tmp_path / "out", restart=True)
    assert summary.resumed == 0 and summary.total == 3
    assert outputs(tmp_path / "out").keys() == before.keys()  # same UIDs: replaced


def test_a_torn_last_line_and_leftover_temp_files_are_cleaned_on_resume(
    tmp_path: Path, engine: Deidentifier
) -> None:
    src = archive(tmp_path / "in", 6)
    reference = tmp_path / "reference"
    runner.run(engine, src, reference)
    out = tmp_path / "out"
    runner.run(engine, src, out)
    lines = (out / runner.AUDIT_NAME).read_bytes().splitlines(keepends=True)
    torn = b"".join(lines[:3]) + lines[3][:20]  # killed while writing the fourth record
    (out / runner.AUDIT_NAME).write_bytes(torn)
    (out / "p1" / f"{TEMP_PREFIX}0123456789abcdef{TEMP_SUFFIX}").parent.mkdir(exist_ok=True)
    (out / "p1" / f"{TEMP_PREFIX}0123456789abcdef{TEMP_SUFFIX}").write_bytes(b"partial")
    (out / f"{TEMP_PREFIX}fedcba9876543210{TEMP_SUFFIX}").write_bytes(b"partial")
    summary = runner.run(engine, src, out)
    assert summary.resumed == 3 and summary.total == 7
    assert tree(out) == tree(reference)


def test_kill_9_at_any_moment_then_rerun_accounts_for_every_input_once(tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 40, size=256)
    key = write_key_file(tmp_path / "site.key", KEY)
    command = [sys.executable, "-m", "deid", "run", str(src), "", "--key-file", str(key)]
    command += ["--workers", "2", "--quiet"]

    def run_to_end(out: Path) -> None:
        argv = [*command[:5], str(out), *command[6:]]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, done.stderr[-500:]

    reference = tmp_path / "reference"
    run_to_end(reference)
    out = tmp_path / "out"
    argv = [*command[:5], str(out), *command[6:]]
    recorded = []
    for wait_for in (3, 15, 30):  # kill three times, at different points
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        journal = out / runner.AUDIT_NAME
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= wait_for:
                break
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)  # the run and its workers, mid-flight
        process.wait()
        recorded.append(journal.read_bytes().count(b"\n") if journal.exists() else 0)
    assert recorded[0] < 41 and recorded == sorted(recorded)  # killed before the end
    run_to_end(out)
    records = audit(out)
    inputs = [str(r["input"]) for r in records]
    assert len(inputs) == len(set(inputs)) == 41  # 40 objects and the README, once each
    assert tree(out) == tree(reference)  # same outputs, same audit, no partial or temp file


def test_the_progress_bar_shows_rates_and_counts_on_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")
    from deid.cli.main import main

    src = archive(tmp_path / "in", 3)
    key = write_key_file(tmp_path / "site.key", KEY)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code = main(["run", str(src), str(tmp_path / "out"), "--key-file", str(key)])
    err = capsys.readouterr().err
    assert code == 0
    assert "file/s" in err and "MB/s" in err
    assert "ok 3 rej 0 fail 0 skip 1" in err
    assert err.rstrip().endswith("3 de-identified, 0 rejected, 0 failed, 1 skipped; audit in "
                                 f"{tmp_path / 'out' / 'audit.jsonl'}")  # fmt: skip
    quiet = main(["run", str(src), str(tmp_path / "q"), "--key-file", str(key), "--quiet"])
    err = capsys.readouterr().err
    assert quiet == 0
    assert "file/s" not in err and "README.txt" not in err
    assert err.count("\n") == 1  # only the summary
