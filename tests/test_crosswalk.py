"""The encrypted crosswalk: deid run --crosswalk, the MIDI-B mapping files, deid reidentify."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from deid import Deidentifier, Pseudonymizer, runner
from deid.cli.main import main
from deid.crosswalk import (
    PATIENT_ID,
    STORE_NAME,
    UID,
    CrosswalkStore,
)
from deid.keys import write_key_file
from tests.conftest import KEY, OTHER_KEY
from tests.factories import (
    FOR_UID,
    SOP_UID,
    STUDY_UID,
    make_dataset,
    to_bytes,
)
from tests.factories import (
    PATIENT_ID as ORIGINAL_ID,
)

P = Pseudonymizer(KEY)


def folder_of_two(root: Path) -> Path:
    root.mkdir()
    first = make_dataset(pixels=True, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    (root / "a.dcm").write_bytes(to_bytes(first))
    second = make_dataset(
        pixels=True,
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        SOPInstanceUID="1.2.826.0.1.3680043.8.498.1009",
    )
    (root / "b.dcm").write_bytes(to_bytes(second))
    return root


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_run_writes_the_mapping_files_and_an_encrypted_store(tmp_path: Path) -> None:
    src = folder_of_two(tmp_path / "in")
    cross = tmp_path / "crosswalk"
    runner.run(Deidentifier("upload", KEY), src, tmp_path / "out", crosswalk_dir=cross)
    uids = read_csv(cross / "uid_mapping.csv")
    assert uids[0] == ["id_old", "id_new"]
    pairs = dict(uids[1:])
    for original in (STUDY_UID, SOP_UID, "1.2.826.0.1.3680043.8.498.1009", FOR_UID):
        assert pairs[original] == P.uid(original)
    assert "1.2.840.10008.5.1.4.1.1.2" not in pairs  # a well-known UID is not a pseudonym
    assert uids[1:] == sorted(uids[1:])
    assert read_csv(cross / "patid_mapping.csv") == [
        ["id_old", "id_new"],
        [ORIGINAL_ID, P.patient_id(ORIGINAL_ID)],
    ]
    # the store holds neither the originals nor the pseudonyms in plain text
    raw = (cross / STORE_NAME).read_bytes()
    for text in (STUDY_UID, ORIGINAL_ID, P.uid(STUDY_UID), P.patient_id(ORIGINAL_ID)):
        assert text.encode() not in raw
    with CrosswalkStore(cross, P) as store:
        assert store.lookup(P.uid(STUDY_UID)) == [(UID, STUDY_UID)]
        assert store.lookup(P.patient_id(ORIGINAL_ID)) == [(PATIENT_ID, ORIGINAL_ID)]
        assert store.lookup("2.25.1") == []


def test_reidentify_prints_the_original_for_key_holders(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = folder_of_two(tmp_path / "in")
    key = write_key_file(tmp_path / "site.key", KEY)
    cross = tmp_path / "crosswalk"
    argv = ["run", str(src), str(tmp_path / "out"), "--key-file", str(key)]
    assert main([*argv, "--crosswalk", str(cross)]) == 0
    capsys.readouterr()
    pseudonyms = [P.uid(STUDY_UID), P.patient_id(ORIGINAL_ID)]
    assert main(["reidentify", *pseudonyms, "--crosswalk", str(cross), "--key-file", str(key)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{pseudonyms[0]}\tuid\t{STUDY_UID}",
        f"{pseudonyms[1]}\tpatient_id\t{ORIGINAL_ID}",
    ]
    code = main(["reidentify", "2.25.99", "--crosswalk", str(cross), "--key-file", str(key)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert "2.25.99: not in the crosswalk" in captured.err
    other = write_key_file(tmp_path / "other.key", OTHER_KEY)
    code = main(["reidentify", pseudonyms[0], "--crosswalk", str(cross), "--key-file", str(other)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert "made with another key" in captured.err


def test_a_tampered_entry_is_refused(tmp_path: Path) -> None:
    from cryptography.exceptions import InvalidTag

    cross = tmp_path / "crosswalk"
    with CrosswalkStore(cross, P) as store:
        store.add([(UID, STUDY_UID, P.uid(STUDY_UID)), (UID, SOP_UID, P.uid(SOP_UID))])
        target = store._id(UID, P.uid(STUDY_UID))
        source = store._id(UID, P.uid(SOP_UID))
    db = sqlite3.connect(cross / STORE_NAME)
    nonce, sealed = db.execute(
        "SELECT nonce, sealed FROM crosswalk WHERE lookup = ?", (source,)
    ).fetchone()
    # the other row's sealed value moved under this pseudonym: it is bound to its own row
    db.execute(
        "UPDATE crosswalk SET nonce = ?, sealed = ? WHERE lookup = ?", (nonce, sealed, target)
    )
    db.commit()
    db.close()
    with CrosswalkStore(cross, P) as store:
        with pytest.raises(InvalidTag):
            store.lookup(P.uid(STUDY_UID))
        assert store.lookup(P.uid(SOP_UID)) == [(UID, SOP_UID)]


def test_crosswalk_folder_inside_output_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = folder_of_two(tmp_path / "in")
    key = write_key_file(tmp_path / "site.key", KEY)
    out = tmp_path / "out"
    code = main(["run", str(src), str(out), "--key-file", str(key), "--crosswalk", str(out / "x")])
    assert code == 2
    assert "must not be inside OUTPUT" in capsys.readouterr().err


def test_resumed_run_keeps_every_pair_once(tmp_path: Path) -> None:
    src = folder_of_two(tmp_path / "in")
    cross = tmp_path / "crosswalk"
    engine = Deidentifier("upload", KEY)
    runner.run(engine, src, tmp_path / "out", crosswalk_dir=cross)
    first = read_csv(cross / "uid_mapping.csv")
    runner.run(engine, src, tmp_path / "out", crosswalk_dir=cross)  # nothing left to do
    assert read_csv(cross / "uid_mapping.csv") == first
