"""The fast value layer changes nothing: outputs equal those with it switched off.

Every object is de-identified twice, once as deid runs and once with
:func:`deid.values.fast_reading` false everywhere (every value then goes through pydicom's
elements, as before the layer existed); bytes, plans, audits and rejections must be equal.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deid import Deidentifier
from deid.codes import ProfileOption
from deid.errors import DeidError
from deid.policy import Policy, load_policy
from tests.conftest import CORPUS, KEY
from tests.factories import item, make_dataset, sequence_of, to_bytes

_USERS = (
    "deid.identifiers",
    "deid.plan",
    "deid.actions",
    "deid.verify",
    "deid.encoding",
    "deid.rawitems",
    "deid.fastpath",
)


def _policies() -> list[Policy]:
    out = [dataclasses.replace(load_policy(n), clean_pixel_data="never") for n in ("upload",)]
    out += [load_policy("basic"), load_policy("research")]
    every = frozenset(o for o in ProfileOption if o is not ProfileOption.RETAIN_LONG_FULL_DATES)
    out.append(Policy(options=every, name="every-option", clean_pixel_data="never"))
    full = {ProfileOption.RETAIN_LONG_FULL_DATES, ProfileOption.CLEAN_DESCRIPTORS}
    out.append(Policy(options=frozenset(full), name="full-dates"))
    return out


def _outcome(engine: Deidentifier, data: bytes) -> tuple[object, ...]:
    try:
        result = engine.deidentify_bytes(data)
    except DeidError as exc:
        return (type(exc).__name__, str(exc))
    return (result.data, tuple(result.plan.explain_lines()), result.audit)


def _both(data: bytes, policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Deidentifier(policy, KEY)
    fast = _outcome(engine, data)
    with monkeypatch.context() as patch:
        for module in (*_USERS, "deid.values"):
            patch.setattr(f"{module}.fast_reading", lambda: False)
        slow = _outcome(Deidentifier(policy, KEY), data)
    assert fast == slow


def _odd_object(charset: str, transfer_syntax: str) -> bytes:
    ds = make_dataset(
        pixels=True,
        SpecificCharacterSet=charset,
        PatientName="MÜLLER^JÖRG^^DR=",
        OtherPatientIDs=["ALT 4471  ", "X2"],
        StudyDescription="Follow-up of MÜLLER  ",
        AdditionalPatientHistory="seen by Jörg Müller on 2023-04-05\\no change",
        ReferringPhysicianName=["WELBY^MARCUS", "HOUSE^GREGORY"],
        InstitutionAddress="12 Harbour Road",
        StationName="ACME-07 ",
        ImageComments="",
        ContentDate="20230405 ",
        AcquisitionDateTime="20230405101500.25+0100",
        ReferencedImageSequence=sequence_of(
            item(
                ReferencedSOPClassUID="1.2.840.10008.5.1.4.1.1.2",
                ReferencedSOPInstanceUID="1.2.3.4",
            )
        ),
        ProcedureCodeSequence=sequence_of(
            item(CodeValue="LOCAL1", CodingSchemeDesignator="99LOCAL", CodeMeaning="LOCAL SCAN")
        ),
    )
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    return to_bytes(ds)


@pytest.mark.parametrize("policy", _policies(), ids=lambda p: p.name)
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_built_objects(policy: Policy, charset: str, syntax: str, monkeypatch) -> None:
    _both(_odd_object(charset, syntax), policy, monkeypatch)


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    names = ("charset", "CT_small", "MR_small", "SC_rgb", "chr", "rtplan", "ExplVR")
    return sorted(
        p
        for p in CORPUS.rglob("*.dcm")
        if p.is_file() and any(n in str(p.relative_to(CORPUS)) for n in names)
    )[:60]


@pytest.mark.corpus
@pytest.mark.parametrize("policy", _policies()[:2], ids=lambda p: p.name)
def test_corpus_files(corpus, policy: Policy, monkeypatch) -> None:
    files = _corpus_files()
    assert files
    with warnings.catch_warnings():  # odd values kept from real files make pydicom warn
        warnings.simplefilter("ignore")
        for path in files:
            _both(path.read_bytes(), policy, monkeypatch)
