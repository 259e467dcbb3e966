"""Invariants over random patients: no identifier survives, outputs are keyed and stateless."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings

from deid import Deidentifier, Pseudonymizer, ResidualPhiError
from deid.markers import IMPLEMENTATION_CLASS_UID
from tests.conftest import KEY, OTHER_KEY
from tests.factories import roundtrip
from tests.strategies import Patient, blank, patients

P = Pseudonymizer(KEY)
ENGINE = Deidentifier("upload", P)
OTHER = Deidentifier("upload", Pseudonymizer(OTHER_KEY))
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
LEAKS = settings(PROPERTY, max_examples=150)
UID = re.compile(rb"2\.25\.[0-9]+")


def outcome(engine: Deidentifier, patient: Patient) -> bytes | None:
    """The output bytes, or None when verification rejected the object."""
    try:
        return engine.deidentify_bytes(patient.encoded()).data
    except ResidualPhiError:
        return None


@LEAKS
@given(patient=patients())
def test_no_input_identifier_survives_in_the_output_bytes(patient: Patient) -> None:
    data = outcome(ENGINE, patient)
    if data is None:
        return  # rejected: acceptable, nothing was released
    out = roundtrip(data)
    pseudo_id = P.patient_id(patient.patient_id)
    pseudo_name = P.patient_name(patient.patient_id, patient.name)
    assert out.PatientID == pseudo_id
    assert str(out.PatientName) == pseudo_name
    assert out.PatientBirthDate == ""
    searched = blank(data, [pseudo_id, pseudo_name]).lower()
    for value in patient.identifiers():
        assert value.lower().encode("ascii") not in searched, f"leaked: {value!r}"


@PROPERTY
@given(patient=patients())
def test_same_key_gives_the_same_bytes(patient: Patient) -> None:
    first = outcome(ENGINE, patient)
    again = outcome(Deidentifier("upload", Pseudonymizer(KEY)), patient)
    assert first == again


@PROPERTY
@given(patient=patients())
def test_different_keys_share_no_pseudonym(patient: Patient) -> None:
    ours, theirs = outcome(ENGINE, patient), outcome(OTHER, patient)
    assume(ours is not None and theirs is not None)
    assert ours is not None
    assert theirs is not None
    mine, other = roundtrip(ours), roundtrip(theirs)
    assert mine.PatientID != other.PatientID
    assert str(mine.PatientName) != str(other.PatientName)
    uids = set(UID.findall(ours)) - {IMPLEMENTATION_CLASS_UID.encode()}
    assert len(uids) == 4  # study, series, instance (also in file meta), frame of reference
    assert uids.isdisjoint(UID.findall(theirs))


@PROPERTY
@given(first=patients(), second=patients())
def test_no_state_is_carried_between_calls(first: Patient, second: Patient) -> None:
    engine = Deidentifier("upload", Pseudonymizer(KEY))
    once = outcome(engine, first)
    outcome(engine, second)
    twice = outcome(engine, first)
    assert once == twice
    assert outcome(Deidentifier("upload", Pseudonymizer(KEY)), first) == once
