"""deid.identifiers: what collect() gathers, from where, once, and without showing values."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from deid.identifiers import Category, Identifier, Identifiers, collect


def values(found: Identifiers, category: Category) -> list[str]:
    return [item.value for item in found.by_category(category)]


def sources(found: Identifiers, category: Category) -> list[str]:
    return [item.source for item in found.by_category(category)]


def roundtrip(ds: Dataset) -> Dataset:
    """Write with a file meta and read back, as the engine sees its input."""
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def test_category_values_are_stable() -> None:
    assert [c.value for c in Category] == [
        "name", "name_part", "id", "date", "institution", "address", "phone", "other",
    ]  # fmt: skip


def test_person_name_forms_and_parts_skip_titles() -> None:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN^PAUL^DR^JR"
    found = collect(roundtrip(ds))
    assert values(found, Category.NAME) == [
        "DOE^JOHN^PAUL^DR^JR",
        "DOE JOHN PAUL",
        "DOE JOHN",
        "JOHN PAUL DOE",
        "JOHN DOE",
    ]
    assert values(found, Category.NAME_PART) == ["DOE", "JOHN", "PAUL"]
    assert set(sources(found, Category.NAME)) == {"PatientName"}


def test_all_component_groups_and_all_values_of_a_multi_valued_name() -> None:
    ds = Dataset()
    ds.OtherPatientNames = ["SMITH^ANNA", "YAMADA^TARO=山田^太郎=やまだ^たろう"]
    found = collect(ds)
    # "SMITH ANNA" is "SMITH^ANNA" again (same words): collected once.
    assert values(found, Category.NAME) == [
        "SMITH^ANNA",
        "ANNA SMITH",
        "YAMADA^TARO",
        "TARO YAMADA",
        "山田^太郎",
        "太郎 山田",
        "やまだ^たろう",
        "たろう やまだ",
    ]
    # Name parts need three characters: the two-character kanji and kana parts are not parts.
    assert values(found, Category.NAME_PART) == [
        "SMITH",
        "ANNA",
        "YAMADA",
        "TARO",
        "やまだ",
        "たろう",
    ]


def test_multi_word_name_parts_give_their_words_but_not_particles() -> None:
    ds = Dataset()
    ds.PatientName = "VAN DER BERG-SMITH^MARY ANN"
    found = collect(ds)
    assert values(found, Category.NAME_PART) == [
        "VAN DER BERG-SMITH",
        "BERG",
        "SMITH",
        "MARY ANN",
        "MARY",
        "ANN",
    ]


def test_ids_everywhere_short_and_zero_ids_ignored() -> None:
    ds = Dataset()
    ds.PatientID = "MRN7781234"
    ds.OtherPatientIDs = ["ALT-1", "ALT55502"]
    ds.OtherPatientIDsSequence = Sequence([Dataset(), Dataset()])
    ds.OtherPatientIDsSequence[0].PatientID = "OTHER-99"
    ds.OtherPatientIDsSequence[0].IssuerOfPatientID = "GENERAL HOSPITAL"
    ds.OtherPatientIDsSequence[1].PatientID = "0000"
    ds.AccessionNumber = "ACC99812"
    ds.StudyID = "12"
    ds.AdmissionID = "ADM-000"
    found = collect(ds)
    assert [(i.value, i.source) for i in found.by_category(Category.ID)] == [
        ("ACC99812", "AccessionNumber"),
        ("MRN7781234", "PatientID"),
        ("ALT-1", "OtherPatientIDs"),
        ("ALT55502", "OtherPatientIDs"),
        ("OTHER-99", "PatientID"),
        ("GENERAL HOSPITAL", "IssuerOfPatientID"),
        ("ADM-000", "AdmissionID"),
    ]


def test_nested_three_levels_deep_and_file_meta() -> None:
    inner = Dataset()
    inner.PatientID = "DEEP-ID-3"
    inner.ContentDate = "20200304"
    inner.PersonName = "DEEP^PERSON"
    middle = Dataset()
    middle.ContentSequence = Sequence([inner])
    outer = Dataset()
    outer.ContentSequence = Sequence([middle])
    ds = Dataset()
    ds.ContentSequence = Sequence([outer])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.add_new(0x00020200, "PN", "META^PERSON")  # a person name in group 0002
    found = collect(ds)
    assert [(i.category.value, i.value, i.source) for i in found] == [
        ("name", "META^PERSON", "(0002,0200)"),
        ("name", "PERSON META", "(0002,0200)"),
        ("name_part", "META", "(0002,0200)"),
        ("name_part", "PERSON", "(0002,0200)"),
        ("date", "20200304", "ContentDate"),
        ("id", "DEEP-ID-3", "PatientID"),
        ("name", "DEEP^PERSON", "PersonName"),
        ("name", "PERSON DEEP", "PersonName"),
        ("name_part", "DEEP", "PersonName"),
    ]


def test_dates_from_every_da_and_the_date_part_of_every_dt() -> None:
    ds = Dataset()
    ds.PatientBirthDate = "19800102"
    ds.StudyDate = "20230912"
    ds.CalibrationDate = ["20230101", "20230102"]
    ds.AcquisitionDateTime = "20230913101500.000000+0100"
    ds.InstanceCreationDate = "20230230"  # not a calendar date
    ds.ContentDate = "2023"  # partial
    ds.SeriesDate = "20230912"  # again
    found = collect(ds)
    assert [(i.value, i.source) for i in found.by_category(Category.DATE)] == [
        ("20230912", "StudyDate"),
        ("20230913", "AcquisitionDateTime"),
        ("19800102", "PatientBirthDate"),
        ("20230101", "CalibrationDate"),
        ("20230102", "CalibrationDate"),
    ]


def test_institution_address_phone_and_other() -> None:
    ds = Dataset()
    ds.InstitutionName = "SAINT ELSEWHERE HOSPITAL"
    ds.InstitutionalDepartmentName = "RADIOLOGY"  # generic: names no place
    ds.InstitutionAddress = "1 MAIN ST BOSTON"
    ds.PatientAddress = "12 ELM STREET"
    ds.PatientTelephoneNumbers = "555-123-4567"
    ds.CountryOfResidence = "FRANCE"
    ds.MilitaryRank = "SERGEANT"
    ds.PatientMotherBirthName = "ROE^MARY"
    ds.PatientInsurancePlanCodeSequence = Sequence([Dataset()])
    ds.PatientInsurancePlanCodeSequence[0].CodeValue = "PLAN-778"
    ds.PatientInsurancePlanCodeSequence[0].CodeMeaning = "Gold plan"
    found = collect(ds)
    assert values(found, Category.INSTITUTION) == ["SAINT ELSEWHERE HOSPITAL"]
    assert values(found, Category.ADDRESS) == ["1 MAIN ST BOSTON", "12 ELM STREET", "FRANCE"]
    assert values(found, Category.PHONE) == ["555-123-4567"]
    assert values(found, Category.OTHER) == ["SERGEANT"]
    assert values(found, Category.ID) == ["PLAN-778"]
    assert values(found, Category.NAME)[:1] == ["ROE^MARY"]


def test_department_with_a_specific_word_is_kept() -> None:
    ds = Dataset()
    ds.InstitutionalDepartmentName = "RADIOLOGY WEST"
    assert values(collect(ds), Category.INSTITUTION) == ["RADIOLOGY WEST"]


def test_placeholders_and_empty_values_are_skipped() -> None:
    ds = Dataset()
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = ""
    ds.OtherPatientIDs = ["UNKNOWN", "N/A"]
    ds.InstitutionName = "   "
    assert collect(ds).items == ()


def test_test_patients_are_not_identifiers() -> None:
    ds = Dataset()
    ds.PatientName = "TEST^PATIENT"
    ds.OtherPatientNames = "DOE^PATIENT"
    found = collect(ds)
    assert values(found, Category.NAME) == ["DOE^PATIENT", "PATIENT DOE"]
    assert values(found, Category.NAME_PART) == ["DOE"]


def test_places_named_after_a_device_maker_are_not_identifiers_but_people_are() -> None:
    ds = Dataset()
    ds.Manufacturer = "TOSHIBA_MEC"
    ds.InstitutionName = "Toshiba"
    ds.ContentCreatorName = "MILVUE"
    ds.ContributingEquipmentSequence = Sequence([Dataset()])
    ds.ContributingEquipmentSequence[0].Manufacturer = "Milvue"
    ds.ContributingEquipmentSequence[0].InstitutionName = "TOSHIBA MILVUE CENTER"
    found = collect(ds)
    assert [(i.category, i.value) for i in found] == [
        (Category.INSTITUTION, "TOSHIBA MILVUE CENTER"),
        (Category.NAME, "MILVUE"),
        (Category.NAME_PART, "MILVUE"),
    ]


def test_placeholder_names_name_nobody_but_real_names_keep_every_part() -> None:
    ds = Dataset()
    ds.PatientName = "BLANK^MARIA"
    ds.OtherPatientNames = ["Anonymous", "O'BRIEN^SEAN"]
    found = collect(ds)
    assert values(found, Category.NAME_PART) == ["BLANK", "MARIA", "O'BRIEN", "BRIEN", "SEAN"]


def test_duplicates_differing_in_case_or_separators_are_collected_once() -> None:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.OtherPatientNames = "doe^john"
    ds.PatientID = "AB-1234"
    ds.OtherPatientIDs = "ab 1234"
    found = collect(ds)
    assert [(i.value, i.source) for i in found.by_category(Category.ID)] == [
        ("AB-1234", "PatientID")
    ]
    assert [(i.value, i.source) for i in found.by_category(Category.NAME)] == [
        ("DOE^JOHN", "PatientName"),
        ("JOHN DOE", "PatientName"),
    ]


def test_undecodable_and_binary_values_are_skipped_without_raising() -> None:
    ds = Dataset(
        {
            Tag(0x00100010): RawDataElement(Tag(0x00100010), "XX", 4, b"abcd", 0, True, True),
            Tag(0x00100020): RawDataElement(Tag(0x00100020), "LO", 8, b"ID123456", 0, True, True),
        }
    )
    ds.add_new(0x00091001, "UN", b"DOE^JOHN")
    found = collect(ds)
    assert [(i.category, i.value) for i in found] == [(Category.ID, "ID123456")]


def test_order_is_deterministic() -> None:
    ds = Dataset()
    ds.PatientID = "MRN7781234"
    ds.PatientName = "DOE^JOHN"
    ds.StudyDate = "20230912"
    assert collect(ds) == collect(ds)


def test_values_never_show_in_repr() -> None:
    ds = Dataset()
    ds.PatientName = "DOE^JOHNATHAN"
    ds.PatientID = "MRN7781234"
    found = collect(ds)
    shown = repr(found) + repr(found.items)
    for planted in ("DOE", "JOHNATHAN", "MRN7781234"):
        assert planted not in shown
    assert repr(found) == "Identifiers(name=2, name_part=2, id=1)"


def test_by_category_without_and_sizes() -> None:
    items = (
        Identifier(Category.NAME, "DOE^JOHN", "PatientName"),
        Identifier(Category.DATE, "19800102", "PatientBirthDate"),
        Identifier(Category.ID, "MRN7781234", "PatientID"),
    )
    found = Identifiers(items)
    assert len(found) == 3
    assert found
    assert not Identifiers(())
    assert found.by_category(Category.DATE, "id") == items[1:]
    assert found.by_category() == ()
    assert found.without("date").items == (items[0], items[2])
    assert found.without(Category.NAME, Category.ID, Category.DATE).items == ()
    assert list(found) == list(items)


def test_unknown_category_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is not a valid Category"):
        Identifiers(()).without("names")
