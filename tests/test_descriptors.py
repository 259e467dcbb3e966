"""deid.descriptors: scrubbing free text of the object's identifiers, phones and e-mails."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DSfloat, PersonName

from deid.descriptors import Scrubber, scrub_value
from deid.identifiers import Category, Identifier, Identifiers, collect


def scrubber_for(**keywords: object) -> Scrubber:
    ds = Dataset()
    for keyword, value in keywords.items():
        setattr(ds, keyword, value)
    return Scrubber(collect(ds))


def ids(*items: tuple[Category, str]) -> Identifiers:
    return Identifiers(tuple(Identifier(category, value, "test") for category, value in items))


@pytest.fixture(scope="module")
def patient() -> Scrubber:
    return scrubber_for(
        PatientName="DOE^JOHN",
        PatientID="MRN7781234",
        PatientBirthDate="19800102",
        InstitutionName="SAINT ELSEWHERE HOSPITAL",
        PatientAddress="1 MAIN ST",
        StudyID="1234",
    )


def test_keeps_the_rest_of_the_text_exactly(patient: Scrubber) -> None:
    text = "CT CHEST W/O CONTRAST for DOE^JOHN"
    assert patient.scrub(text) == "CT CHEST W/O CONTRAST for ***"
    assert patient.scrub("  two  spaces,\ttab\nand DOE  ") == "  two  spaces,\ttab\nand ***  "
    assert patient.scrub("") == ""


@pytest.mark.parametrize(
    "spelling",
    ["DOE^JOHN", "John Doe", "Doe, John", "DOE JOHN", "doe_john", "DOEJOHN", "Doe,  John"],
)
def test_name_spellings(patient: Scrubber, spelling: str) -> None:
    assert patient.scrub(f"seen: {spelling}.") == "seen: ***."
    assert patient.finds(spelling) == (Category.NAME,)


@pytest.mark.parametrize(
    "spelling",
    [
        "19800102",
        "1980-01-02",
        "1980/01/02",
        "1980.01.02",
        "02/01/1980",
        "01/02/1980",
        "02.01.1980",
        "02-01-1980",
        "2 Jan 1980",
        "Jan 2, 1980",
        "January 2 1980",
        "02-JAN-1980",
        "2nd January 1980",
        "1980-1-2",
        "02/01/80",
        "19800102153000",
    ],
)
def test_date_spellings(patient: Scrubber, spelling: str) -> None:
    assert patient.scrub(f"born {spelling} here") == "born *** here"
    assert patient.finds(spelling) == (Category.DATE,)


@pytest.mark.parametrize(
    "text",
    [
        "1980-01-03",
        "03/01/1980",
        "3 Jan 1980",
        "119800102",
        "Jan 2, 1981",
        "janitor 2 1980",
    ],
)
def test_other_dates_are_kept(patient: Scrubber, text: str) -> None:
    assert patient.finds(text) == ()
    assert patient.scrub(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ID 1234.", "ID ***."),
        ("ID 123456", "ID 123456"),
        ("ID A1234", "ID A1234"),
        ("ID 12345", "ID 12345"),
        ("SLEEP DOE", "SLEEP ***"),
        ("DOEJOHNSON", "DOEJOHNSON"),
        ("JOHNNY", "JOHNNY"),
        ("MRN-7781234", "***"),
        ("mrn 7781234", "***"),
        ("mrn7781234x", "mrn***x"),  # the ID's digits, glued to letters
        ("7781234", "***"),
    ],
)
def test_word_boundaries(patient: Scrubber, text: str, expected: str) -> None:
    assert patient.scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ABC12345XYZ", "ABC***XYZ"),
        ("PT12345", "PT***"),
        ("12345abc, 12345", "***abc, ***"),
        ("acc_12345_b", "acc_***_b"),
        ("x7781234y", "x***y"),  # the digit run of MRN7781234
        ("1.2.840.12345.1", "1.2.840.***.1"),  # a whole word, as before
    ],
)
def test_the_digits_of_an_id_glued_to_letters_are_scrubbed(text: str, expected: str) -> None:
    scrubber = Scrubber(ids((Category.ID, "12345"), (Category.ID, "MRN7781234")))
    assert scrubber.scrub(text) == expected
    assert scrubber.finds(text) == (Category.ID,)


@pytest.mark.parametrize(
    "text",
    [
        "12345678",  # a longer number holds the ID's digits: a number of its own
        "123456",
        "012345",
        "A12345678B",
        "1.2.840.123456.1",
        "ID 1234",  # and not the 4-digit run of an ID (B1234): too short to tell apart
        "A1234",
    ],
)
def test_digit_runs_that_only_contain_an_id_are_kept(text: str) -> None:
    scrubber = Scrubber(ids((Category.ID, "12345"), (Category.ID, "B1234")))
    assert scrubber.scrub(text) == text
    assert scrubber.finds(text) == ()


def test_only_ids_match_glued_and_names_still_need_whole_words() -> None:
    scrubber = Scrubber(ids((Category.PHONE, "55512345"), (Category.NAME_PART, "LEE")))
    assert scrubber.finds("x55512345y") == ()
    assert scrubber.scrub("LEE1 and SLEEP") == "LEE1 and SLEEP"


def test_name_part_inside_a_longer_word_is_not_a_name() -> None:
    scrubber = Scrubber(ids((Category.NAME_PART, "LEE")))
    assert scrubber.scrub("SLEEP study, LEE, lee-ann, Lees") == "SLEEP study, ***, ***-ann, Lees"


def test_short_first_word_is_checked_before_the_rest(patient: Scrubber) -> None:
    assert patient.scrub("lives at 1 Main St.") == "lives at ***."
    assert patient.scrub("lives at 1main st") == "lives at ***"
    assert patient.scrub("MAIN ST") == "MAIN ST"
    assert patient.scrub("21 MAIN ST") == "21 MAIN ST"
    assert patient.finds("1, Main St") == (Category.ADDRESS,)


def test_institution_and_categories_in_enum_order(patient: Scrubber) -> None:
    text = "Saint Elsewhere Hospital, MRN7781234, Doe"
    assert patient.scrub(text) == "***, ***, ***"
    assert patient.finds(text) == (Category.NAME_PART, Category.ID, Category.INSTITUTION)
    assert patient.finds("nothing here") == ()


def test_case_insensitive_beyond_ascii() -> None:
    scrubber = scrubber_for(PatientName="MÜLLER^JÜRGEN")
    assert scrubber.scrub("Dr. müller and JÜRGEN Müller") == "Dr. *** and ***"


def test_phones_and_emails_are_scrubbed_whoever_they_belong_to() -> None:
    scrubber = Scrubber(Identifiers(()))
    text = "call 555-123-4567, +1 (555) 123-4567 or 555.123.4567; mail john.doe@example.org"
    assert scrubber.scrub(text) == "call ***, *** or ***; mail ***"
    assert scrubber.scrub("tel 0049 30 1234567 / 01 23 45 67 89") == "tel *** / ***"
    assert scrubber.finds(text) == ()


@pytest.mark.parametrize(
    "text",
    [
        "1.2.840.10008.5.1.4.1.1.2",
        "120 kVp 250 mAs",
        "slice 1.25 mm",
        "2020-03-04",
        "12.03.2020",
        "Series 3 of 12",
        "20200304 1234",
        "a@b",
    ],
)
def test_numbers_that_are_not_phones_are_kept(text: str) -> None:
    assert Scrubber(Identifiers(())).scrub(text) == text


def test_replacement_and_repr() -> None:
    scrubber = Scrubber(ids((Category.NAME, "DOE^JOHN")), replacement="[X]")
    assert scrubber.scrub("Doe John, DOE^JOHN") == "[X], [X]"
    assert "DOE" not in repr(scrubber)
    assert scrubber
    assert not Scrubber(Identifiers(()))


def test_spans_give_positions_and_categories_only(patient: Scrubber) -> None:
    assert patient.spans("x DOE^JOHN 19800102") == [
        (2, 10, Category.NAME),
        (11, 19, Category.DATE),
    ]


def test_scrub_value_keeps_the_shape(patient: Scrubber) -> None:
    multi = MultiValue(str, ["for DOE", "CHEST", "MRN7781234"])
    cleaned = scrub_value(multi, patient)
    assert isinstance(cleaned, MultiValue)
    assert list(cleaned) == ["for ***", "CHEST", "***"]
    assert scrub_value(["DOE", "x"], patient) == ["***", "x"]
    assert scrub_value(("DOE", "x"), patient) == ("***", "x")
    assert scrub_value("DOE JOHN", patient) == "***"
    name = scrub_value(PersonName("DOE^JOHN"), patient)
    assert isinstance(name, PersonName)
    assert str(name) == "***"
    names = scrub_value(MultiValue(PersonName, ["DOE^JOHN", "ROE^JANE"]), patient)
    assert isinstance(names, MultiValue)
    assert all(isinstance(item, PersonName) for item in names)
    assert [str(item) for item in names] == ["***", "ROE^JANE"]


def test_scrub_value_leaves_other_values_alone(patient: Scrubber) -> None:
    numbers = MultiValue(DSfloat, ["1.5", "2.5"])
    assert scrub_value(numbers, patient) is numbers
    assert scrub_value(None, patient) is None
    assert scrub_value(b"DOE", patient) == b"DOE"
    assert scrub_value(1234, patient) == 1234


def test_construction_is_cheap() -> None:
    items = [(Category.NAME, f"FAMILY{n}^GIVEN{n}") for n in range(10)]
    items += [(Category.ID, f"ID-{n:06d}") for n in range(10)]
    items += [(Category.DATE, f"1980010{n}") for n in range(1, 10)]
    identifiers = ids(*items)
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        Scrubber(identifiers)
        best = min(best, time.perf_counter() - start)
    assert best < 1e-3


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_SEPARATOR = st.sampled_from([" ", ", ", "^", "-", "\n", " / ", "."])


@settings(max_examples=150, deadline=None)
@given(
    planted=st.lists(_WORD.filter(lambda w: len(w) >= 3), min_size=1, max_size=5),
    filler=st.lists(_WORD.filter(bool), max_size=8),
    separators=st.lists(_SEPARATOR, min_size=13, max_size=13),
    categories=st.lists(st.sampled_from([Category.NAME_PART, Category.ID]), min_size=5),
)
def test_property_no_planted_value_survives(
    planted: list[str],
    filler: list[str],
    separators: list[str],
    categories: list[Category],
) -> None:
    scrubber = Scrubber(ids(*zip(categories, planted, strict=False)))
    words = [word for pair in zip(filler, planted, strict=False) for word in pair]
    words += filler[len(planted) :] + planted[len(filler) :] + [planted[0].swapcase()]
    text = "".join(word + separators[n % len(separators)] for n, word in enumerate(words))
    cleaned = scrubber.scrub(text).lower()
    for value in planted:
        pattern = rf"(?<![0-9a-z]){re.escape(value.lower())}(?![0-9a-z])"
        assert re.search(pattern, cleaned) is None
