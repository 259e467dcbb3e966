"""Each action on each VR, end to end, with exact output values; date and age helpers.

Every row forces one action on one attribute with a policy override, de-identifies a small CT
object, reads the encoded output back and compares the attribute with the exact value the
action must give.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from deid import ActionCode, Deidentifier, Policy, ProfileOption, Pseudonymizer
from deid.actions import patient_age, shift_date, shift_datetime
from tests.conftest import KEY
from tests.factories import (
    ACCESSION,
    PATIENT_ID,
    PATIENT_NAME,
    item,
    make_dataset,
    roundtrip,
    sequence_of,
)

P = Pseudonymizer(KEY)
MODIFIED_DATES = frozenset({ProfileOption.RETAIN_LONG_MODIFIED_DATES})
#: The per-patient shift of the planted patient under the default range.
SHIFT = P.date_shift_days(PATIENT_ID, *Policy().date_shift_days)
ABSENT = object()
UN_TAG = 0x0018FFF0  # an even-group tag no dictionary knows: read back as UN


def shifted(yyyymmdd: str) -> str:
    """An independent computation of a whole-day shift of a full date."""
    day = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    return (day + dt.timedelta(days=SHIFT)).strftime("%Y%m%d")


@dataclass(frozen=True)
class Attr:
    """An attribute to force actions on: a neutral value (safe to keep) and one holding PHI."""

    keyword: str | int
    vr: str
    neutral: Any
    phi: Any
    empty: Any  # what Z reads back as
    dummy: Any  # what D reads back as
    cleaned: Any = ABSENT  # what C reads back as (from ``phi``); ABSENT: removed


NAME_TEXT = "Pt DOE^JOHNATHAN MRN7781234 born 1961-04-15, call 555-123-4567 ok"
UID = "1.2.826.0.1.3680043.8.498.77"
DT_VALUE = "20200102101112.123456+0100"
BYTES = b"\x01\x02\x03\x04"
DUMMY = "ANONYMIZED"
# VR: keyword, neutral, with PHI, Z gives, D gives, C gives (from the PHI value)
ATTRS = {
    "AE": Attr(
        "RetrieveAETitle", "AE", "AET1", "AET1", "", DUMMY, "AE" + P.token("ae-title", "AET1", 14)
    ),
    "AS": Attr("PatientAge", "AS", "045Y", "045Y", "", "000D", "045Y"),
    "CS": Attr("BodyPartExamined", "CS", "CHEST", "JOHNATHAN", "", DUMMY, "***"),
    "DA": Attr("ContentDate", "DA", "20200102", "20200102", "", "19000101", shifted("20200102")),
    "DS": Attr("SliceThickness", "DS", "2.5", "2.5", None, "0", "2.5"),
    "DT": Attr(
        "AcquisitionDateTime",
        "DT",
        DT_VALUE,
        DT_VALUE,
        "",
        "19000101000000",
        shifted("20200102") + "101112.123456+0100",
    ),
    "IS": Attr("InstanceNumber", "IS", "7", "7", None, "0", "7"),
    "LO": Attr(
        "ProtocolName", "LO", "CT chest", "CT chest, DOE JOHNATHAN", "", DUMMY, "CT chest, ***"
    ),
    "LT": Attr(
        "ImageComments", "LT", "none", NAME_TEXT, "", DUMMY, "Pt *** *** born ***, call *** ok"
    ),
    "PN": Attr("OperatorsName", "PN", "SMITH^AL", "SMITH^AL", "", DUMMY, P.person_name("SMITH^AL")),
    "SH": Attr("StationName", "SH", "CT01", "DOE JOHNATHAN CT", "", DUMMY, "*** CT"),
    "ST": Attr("DerivationDescription", "ST", "resampled", "by JOHNATHAN", "", DUMMY, "by ***"),
    "TM": Attr("SeriesTime", "TM", "101112.5", "101112.5", "", "000000", "101112.5"),
    "UC": Attr("StrainDescription", "UC", "wild type", "of JOHNATHAN", "", DUMMY, "of ***"),
    "UI": Attr("IrradiationEventUID", "UI", UID, UID, "", P.uid(UID), P.uid(UID)),
    "UR": Attr(
        "RetrieveURL",
        "UR",
        "https://a.example/w",
        "https://a.example/JOHNATHAN",
        "",
        DUMMY,
        "https://a.example/***",
    ),
    "UT": Attr(
        "StrainAdditionalInformation", "UT", "none", "on DOE JOHNATHAN", "", DUMMY, "on ***"
    ),
    "US": Attr("PlanarConfiguration", "US", 1, 1, None, 0, 1),
    "SS": Attr("TagAngleSecondAxis", "SS", -5, -5, None, 0, -5),
    "UL": Attr("SimpleFrameList", "UL", 70000, 70000, None, 0, 70000),
    "SL": Attr("ReferencePixelX0", "SL", -7, -7, None, 0, -7),
    "FL": Attr("ExaminedBodyThickness", "FL", 12.5, 12.5, None, 0.0, 12.5),
    "FD": Attr("EventTimeOffset", "FD", 3.25, 3.25, None, 0.0, 3.25),
    "OB": Attr("ICCProfile", "OB", BYTES, BYTES, None, b"\x00\x00"),
    "OW": Attr("RedPaletteColorLookupTableData", "OW", BYTES, BYTES, None, b"\x00\x00"),
    "UN": Attr(UN_TAG, "UN", BYTES, BYTES, None, b"\x00\x00"),
}


def _rows() -> list[Any]:
    rows = []
    for vr, attr in ATTRS.items():
        rows.append(pytest.param(attr, "D", attr.phi, attr.dummy, id=f"D-{vr}"))
        rows.append(pytest.param(attr, "Z", attr.phi, attr.empty, id=f"Z-{vr}"))
        rows.append(pytest.param(attr, "X", attr.phi, ABSENT, id=f"X-{vr}"))
        rows.append(pytest.param(attr, "K", attr.neutral, attr.neutral, id=f"K-{vr}"))
        rows.append(pytest.param(attr, "C", attr.phi, attr.cleaned, id=f"C-{vr}"))
    uid = ATTRS["UI"]
    rows.append(pytest.param(uid, "U", uid.phi, P.uid(uid.phi), id="U-UI"))
    return rows


def _set(ds: Dataset, attr: Attr, value: Any) -> None:
    if isinstance(attr.keyword, int):
        ds.add_new(attr.keyword, attr.vr, value)
    else:
        setattr(ds, attr.keyword, value)


def deidentify(policy: Policy, ds: Dataset) -> Dataset:
    result = Deidentifier(policy, Pseudonymizer(KEY)).deidentify(ds)
    return roundtrip(result.data)


def read_value(out: Dataset, tag: int | str) -> Any:
    """The value read back; DS, IS and PN as their exact text; ABSENT when not there."""
    if tag not in out:
        return ABSENT
    elem = out[tag]
    if elem.VR in ("PN", "DS", "IS") and elem.value is not None:
        return str(elem.value)
    return elem.value


@pytest.mark.parametrize(("attr", "action", "value", "expected"), _rows())
def test_action_on_vr(attr: Attr, action: str, value: Any, expected: Any) -> None:
    options = MODIFIED_DATES if action == "C" else frozenset()
    policy = Policy(options=options, overrides={attr.keyword: action})
    ds = make_dataset()
    _set(ds, attr, value)
    out = deidentify(policy, ds)
    got = read_value(out, attr.keyword)
    if expected is ABSENT:
        assert got is ABSENT
    else:
        assert attr.vr == out[attr.keyword].VR
        assert got == expected
        assert isinstance(got, type(expected))


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("ContentDate", "20200102", ""),
        ("AcquisitionDateTime", "20200102101112", ""),
        ("SeriesTime", "101112", ""),
    ],
    ids=["DA", "DT", "TM"],
)
def test_clean_on_dates_without_a_dates_option_empties(
    keyword: str, value: str, expected: str
) -> None:
    out = deidentify(Policy(overrides={keyword: "C"}), make_dataset(**{keyword: value}))
    assert out[keyword].value == expected


@pytest.mark.parametrize("action", ["D", "Z"])
@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("PatientID", P.patient_id(PATIENT_ID)),
        ("PatientName", P.patient_name(PATIENT_ID, PATIENT_NAME)),
        ("OperatorsName", P.person_name("SMITH^ALICE")),
        ("AccessionNumber", P.token("AccessionNumber", ACCESSION, 16)),
    ],
    ids=["patient-id", "patient-name", "other-person-name", "other-id"],
)
def test_pseudonymized_attribute_gets_its_keyed_pseudonym(
    keyword: str, expected: str, action: str
) -> None:
    policy = Policy(pseudonymize=frozenset({keyword}), overrides={keyword: action})
    out = deidentify(policy, make_dataset(OperatorsName="SMITH^ALICE"))
    assert str(out[keyword].value) == expected


def test_patient_name_pseudonym_without_patient_id_is_keyed_on_the_name() -> None:
    policy = Policy(pseudonymize=frozenset({"PatientName"}))
    out = deidentify(policy, make_dataset(PatientID=None))
    assert str(out.PatientName) == P.patient_name(None, PATIENT_NAME)
    assert str(out.PatientName) == "DEID^" + P.token("patient-name", PATIENT_NAME, 14)
    assert "PatientID" not in out


def test_pseudonyms_are_bounded_by_the_vr_length() -> None:
    assert len(P.patient_id(PATIENT_ID)) == 16
    assert len(P.patient_name(PATIENT_ID, PATIENT_NAME)) == 19
    assert len(P.person_name("SMITH^ALICE")) == 15
    assert len(P.token("AccessionNumber", ACCESSION, 16)) == 16


@pytest.mark.parametrize("action", ["D", "U", "C"])
def test_well_known_uid_is_never_remapped(action: str) -> None:
    out = deidentify(Policy(overrides={"SOPClassUID": action}), make_dataset())
    assert out.SOPClassUID == CTImageStorage


def test_multi_valued_uid_is_remapped_value_by_value() -> None:
    values = ["1.2.826.0.1.3680043.8.498.91", "1.2.826.0.1.3680043.8.498.92"]
    ds = make_dataset()
    ds.add_new(0x00081195, "UI", values)  # Transaction UID, forced U
    out = deidentify(Policy(overrides={"TransactionUID": "U"}), ds)
    assert list(out.TransactionUID) == [P.uid(v) for v in values]


def test_multi_valued_dates_are_shifted_value_by_value() -> None:
    ds = make_dataset(DateOfLastCalibration=["20200102", "20210315"])
    out = deidentify(Policy(options=MODIFIED_DATES, overrides={"DateOfLastCalibration": "C"}), ds)
    assert list(out.DateOfLastCalibration) == [shifted("20200102"), shifted("20210315")]


# -- sequences -------------------------------------------------------------------------------

REF_UID = "1.2.826.0.1.3680043.8.498.55"


def _region(meaning: str, free_text: str) -> Dataset:
    return item(
        CodeValue="51185008",
        CodingSchemeDesignator="SCT",
        CodeMeaning=meaning,
        StrainAdditionalInformation=free_text,  # UT: unlisted free text
        ReferencedSOPInstanceUID=REF_UID,
    )


def _summary(ds: Dataset) -> list[dict[str, str]]:
    return [
        {elem.keyword: str(elem.value) for elem in entry} for entry in ds.AnatomicRegionSequence
    ]


def _expected(meaning: str, free_text: str) -> list[dict[str, str]]:
    return [
        {
            "CodeValue": "51185008",
            "CodingSchemeDesignator": "SCT",
            "CodeMeaning": meaning,
            "ReferencedSOPInstanceUID": P.uid(REF_UID),
            "StrainAdditionalInformation": free_text,
        }
    ]


@pytest.mark.parametrize(
    ("action", "meaning", "text", "expected"),
    [
        ("D", "Chest", "seen by DOE JOHNATHAN", _expected("Chest", "ANONYMIZED")),
        ("Z", "Chest of DOE", "seen by DOE JOHNATHAN", []),
        ("X", "Chest of DOE", "seen by DOE JOHNATHAN", None),
        ("K", "Chest", "none", _expected("Chest", "none")),
        ("C", "Chest of DOE", "seen by DOE JOHNATHAN", _expected("Chest of ***", "seen by ***")),
        ("U", "Chest", "none", _expected("Chest", "none")),
    ],
    ids=["D-SQ", "Z-SQ", "X-SQ", "K-SQ", "C-SQ", "U-SQ"],
)
def test_action_on_sequence(action: str, meaning: str, text: str, expected: Any) -> None:
    ds = make_dataset(AnatomicRegionSequence=sequence_of(_region(meaning, text)))
    out = deidentify(Policy(overrides={"AnatomicRegionSequence": action}), ds)
    if expected is None:
        assert "AnatomicRegionSequence" not in out
    else:
        assert _summary(out) == expected


def test_override_action_codes_are_the_six_simple_ones() -> None:
    assert [a.value for a in ActionCode if not a.is_compound] == ["D", "Z", "X", "K", "C", "U"]


# -- shift_date / shift_datetime --------------------------------------------------------------

SHIFT_DATE = {
    "day-back": ("20200102", -1, "20200101"),
    "leap-day": ("20200301", -1, "20200229"),
    "non-leap": ("20210301", -1, "20210228"),
    "new-year": ("20201231", 1, "20210101"),
    "ten-years": ("20230912", -3650, "20130914"),
    "padded": (" 20200102 ", -2, "20191231"),
    "yyyymm-same-month": ("202003", -14, "202003"),
    "yyyymm-previous-month": ("202003", -15, "202002"),
    "yyyymm-previous-year": ("202001", -15, "201912"),
    "yyyy-same-year": ("2020", -1, "2020"),
    "yyyy-ten-years": ("2020", -3650, "2010"),
    "acr-nema-dots": ("1999.01.02", -2, "19981231"),
    "zero": ("19990102", 0, "19990102"),
}
SHIFT_DATE_JUNK = {
    "empty": "",
    "junk": "junk",
    "iso-dashes": "2020-01-02",
    "month-13": "20201301",
    "feb-30": "20200230",
    "seven-digits": "2020010",
    "nine-digits": "202001021",
    "before-year-1": "00010101",
    "before-year-1000": "10000101",
}
SHIFT_DATETIME = {
    "fraction-offset": ("20200102101112.123456+0100", -2, "20191231101112.123456+0100"),
    "negative-offset": ("20200102101112.123456-0500", 1, "20200103101112.123456-0500"),
    "seconds": ("20200102101112", -1, "20200101101112"),
    "minutes": ("202001021011", -1, "202001011011"),
    "date-only": ("20200102", -1, "20200101"),
    "date-offset": ("20200102+0100", -1, "20200101+0100"),
    "yyyymm": ("202003", -15, "202002"),
    "yyyy": ("2020", -1, "2020"),
    "yyyy-offset": ("2020+0100", -1, "2020+0100"),
}
SHIFT_DATETIME_JUNK = {
    "empty": "",
    "garbage": "garbage",
    "iso": "2020-01-02T10:11",
    "letters": "20200102xx",
    "seven-fraction-digits": "20200102101112.1234567",
    "month-13": "20201301101112",
}


@pytest.mark.parametrize(("value", "days", "expected"), SHIFT_DATE.values(), ids=SHIFT_DATE)
def test_shift_date(value: str, days: int, expected: str) -> None:
    assert shift_date(value, days) == expected


@pytest.mark.parametrize("value", SHIFT_DATE_JUNK.values(), ids=SHIFT_DATE_JUNK)
def test_shift_date_junk_becomes_empty(value: str) -> None:
    assert shift_date(value, -1) == ""


@pytest.mark.parametrize(("value", "days", "expected"), SHIFT_DATETIME.values(), ids=SHIFT_DATETIME)
def test_shift_datetime(value: str, days: int, expected: str) -> None:
    assert shift_datetime(value, days) == expected


@pytest.mark.parametrize("value", SHIFT_DATETIME_JUNK.values(), ids=SHIFT_DATETIME_JUNK)
def test_shift_datetime_junk_becomes_empty(value: str) -> None:
    assert shift_datetime(value, -1) == ""


# -- patient_age ---------------------------------------------------------------------------------

AGES = {
    "same-day": ("20200101", "20200101", "000D"),
    "30-days": ("20200101", "20200131", "030D"),
    "30-days-across-month": ("20200115", "20200214", "030D"),
    "31-days-one-month": ("20200101", "20200201", "001M"),
    "one-month-leap": ("20200131", "20200302", "001M"),
    "23-months": ("20200101", "20211231", "023M"),
    "24-months-two-years": ("20200101", "20220101", "002Y"),
    "day-before-birthday": ("19610415", "20230414", "061Y"),
    "birthday": ("19610415", "20230415", "062Y"),
    "leap-birthday": ("20000229", "20010228", "011M"),
    "200-years": ("19000101", "21000101", "200Y"),
    "capped-999": ("00010101", "99991231", "999Y"),
}
NO_AGE = {
    "reference-before-birth": ("20200102", "20200101"),
    "empty": ("", "20200101"),
    "partial": ("2020", "20200101"),
    "invalid-birth": ("20200230", "20200301"),
    "invalid-reference": ("20200101", "junk!!!!"),
}


@pytest.mark.parametrize(("birth", "on", "expected"), AGES.values(), ids=AGES)
def test_patient_age(birth: str, on: str, expected: str) -> None:
    assert patient_age(birth, on) == expected


@pytest.mark.parametrize(("birth", "on"), NO_AGE.values(), ids=NO_AGE)
def test_patient_age_is_empty_when_it_cannot_be_computed(birth: str, on: str) -> None:
    assert patient_age(birth, on) == ""
