"""Decisions on attributes deid computes: Patient's Age from the birth date and study date."""

from __future__ import annotations

from pydicom.dataset import Dataset

from deid.codes import ActionCode, ProfileOption, Rule
from deid.decisions import Decision
from deid.policy import Policy
from deid.values import get_value

_PATIENT_AGE = 0x00101010
_REASON = (
    "computed from Patient's Birth Date and the study date before the birth date is "
    "removed (Retain Patient Characteristics)"
)


def reference_date(ds: Dataset) -> str:
    """The study's date (YYYYMMDD) for Patient's Age: Study, Series, Acquisition, Content."""
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        value = str(get_value(ds, keyword) or "").strip()
        if len(value) == 8 and value.isdigit():
            return value
    return ""


def derived_age(ds: Dataset, policy: Policy) -> Decision | None:
    """Retain Patient Characteristics: compute Patient's Age before the birth date goes
    (``None``: nothing to derive)."""
    if ProfileOption.RETAIN_PATIENT_CHARACTERISTICS not in policy.options:
        return None
    if str(get_value(ds, "PatientAge") or "").strip():
        return None
    birth = str(get_value(ds, "PatientBirthDate") or "").strip()
    if len(birth) != 8 or not birth.isdigit() or not reference_date(ds):
        return None
    return Decision(
        (),
        _PATIENT_AGE,
        "PatientAge",
        "AS",
        ActionCode.D,
        ActionCode.K,
        Rule.DERIVED,
        _REASON,
        option=ProfileOption.RETAIN_PATIENT_CHARACTERISTICS,
    )
