"""deid.verify: the input's identifiers searched in the output's values and bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from deid.errors import ResidualPhiError
from deid.identifiers import Category, Identifiers, collect
from deid.verify import find_residual, verify

PLANTED = ("DOE", "JOHNATHAN", "MRN7781234", "19610415", "20230912", "ELSEWHERE", "ST4455")


def source() -> Dataset:
    """The input: a CT-like object with identifiers at the top, nested and in the file meta."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    ds.PatientName = "DOE^JOHNATHAN"
    ds.PatientID = "MRN7781234"
    ds.PatientBirthDate = "19610415"
    ds.StudyDate = "20230912"
    ds.StudyID = "ST4455"
    ds.InstitutionName = "SAINT ELSEWHERE HOSPITAL"
    ds.OtherPatientNames = "LEE^ANN"
    return ds


def output(**changes: object) -> Dataset:
    """A de-identified output: identifiers replaced; ``changes`` plant leaks."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID("2.25.1234")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "2.25.1234"
    ds.PatientName = "ANON^K9F3"
    ds.PatientID = "K9F3ZQ1X"
    ds.StudyDate = "20230101"
    ds.StudyDescription = "CT CHEST"
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return ds


def written(ds: Dataset) -> tuple[Dataset, bytes]:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    data = buffer.getvalue()
    return dcmread(io.BytesIO(data)), data


def nested(depth: int, **leaf: object) -> Sequence:
    """``depth`` levels of Referenced Study Sequence, the last item holding ``leaf``."""
    item = Dataset()
    for keyword, value in leaf.items():
        setattr(item, keyword, value)
    for _ in range(depth - 1):
        parent = Dataset()
        parent.ReferencedStudySequence = Sequence([item])
        item = parent
    return Sequence([item])


@pytest.fixture(scope="module")
def identifiers() -> Identifiers:
    return collect(source())


def test_clean_output_has_no_hits(identifiers: Identifiers) -> None:
    ds, data = written(output())
    assert find_residual(ds, data, identifiers) == ()
    verify(ds, data, identifiers)  # does not raise


def test_hits_name_tag_path_keyword_and_category(identifiers: Identifiers) -> None:
    ds, _ = written(
        output(
            PatientName="DOE^JOHNATHAN",
            StudyDescription="CT for Johnathan",
            OtherPatientIDs=["X1Y2Z3", "MRN7781234"],
            ReferencedStudySequence=nested(3, StudyDescription="seen 15/04/1961"),
        )
    )
    assert find_residual(ds, None, identifiers) == (
        "(0008,1030) StudyDescription: name_part",
        "(0008,1110)[0]>(0008,1110)[0]>(0008,1110)[0]>(0008,1030) StudyDescription: date",
        "(0010,0010) PatientName: name",
        "(0010,1000) OtherPatientIDs: id",
    )


def test_file_meta_is_searched(identifiers: Identifiers) -> None:
    ds = output()
    ds.file_meta.SourceApplicationEntityTitle = "JOHNATHAN"
    assert find_residual(ds, None, identifiers) == (
        "(0002,0016) SourceApplicationEntityTitle: name_part",
    )


def test_raw_bytes_hit_in_a_private_element(identifiers: Identifiers) -> None:
    ds = output()
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "UN", b"PT MRN7781234")
    ds, data = written(ds)
    offset = data.index(b"MRN7781234")
    assert find_residual(ds, data, identifiers) == (
        "(0009,1001): id",  # a UN value that is text is read as text too
        f"raw bytes @offset {offset} in (0009,1001): id",
    )


def test_raw_value_followed_by_the_next_tag_of_its_group(identifiers: Identifiers) -> None:
    """Group 0043 starts every tag with ``C\\x00``: the byte after a value is a letter."""
    ds = output()
    ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
    ds.add_new(0x00431001, "UN", b"MRN7781234")
    ds.add_new(0x00431002, "UN", b"\x01\x02")
    ds, data = written(ds)
    offset = data.index(b"MRN7781234C\x00")
    assert find_residual(ds, data, identifiers) == (
        "(0043,1001): id",
        f"raw bytes @offset {offset} in (0043,1001): id",
    )


def test_raw_search_skips_short_identifiers_and_covers_utf8_and_latin1() -> None:
    found = collect(source())
    ds = output()
    ds.add_new(0x00091001, "UN", b"\x01LEE")
    ds.add_new(0x00091002, "UN", "M\u00dcLLER".encode())
    ds.add_new(0x00091003, "UN", "m\u00fcller".encode("latin-1"))
    german = Dataset()
    german.PatientName = "M\u00dcLLER^HANS"
    umlaut = collect(german)
    ds, data = written(ds)
    both = Identifiers(found.items + umlaut.by_category(Category.NAME_PART))
    utf8 = data.index("M\u00dcLLER".encode())
    latin1 = data.index("m\u00fcller".encode("latin-1"))
    assert find_residual(ds, data, both) == (
        "(0009,1003): name_part",
        f"raw bytes @offset {utf8} in (0009,1002): name_part",
        f"raw bytes @offset {latin1} in (0009,1003): name_part",
    )


def test_the_digits_of_an_id_glued_to_letters_are_found(identifiers: Identifiers) -> None:
    """``7781234`` of MRN7781234 glued to letters, in a decoded value and in raw bytes; a
    longer run of digits holding it is a number of its own."""
    ds = output(StudyDescription="CT PT7781234", SeriesDescription="ref 77812345")
    ds.add_new(0x00091001, "UN", b"x7781234y")
    ds, data = written(ds)
    decoded = find_residual(ds, None, identifiers)
    assert decoded == ("(0008,1030) StudyDescription: id", "(0009,1001): id")
    text, raw = data.index(b"PT7781234") + 2, data.index(b"x7781234y") + 1
    assert find_residual(ds, data, identifiers) == (
        "(0008,1030) StudyDescription: id",
        "(0009,1001): id",
        f"raw bytes @offset {text} in (0008,1030): id",
        f"raw bytes @offset {raw} in (0009,1001): id",
    )


def test_short_identifiers_are_found_in_decoded_values(identifiers: Identifiers) -> None:
    ds, data = written(output(StudyDescription="seen by Lee"))
    assert find_residual(ds, data, identifiers) == ("(0008,1030) StudyDescription: name_part",)


def test_pixel_value_is_not_searched_where_it_is_found(identifiers: Identifiers) -> None:
    ds = output()
    ds.Rows, ds.Columns = 8, 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    pixels = bytearray(np.zeros(64, dtype="<u2").tobytes())
    pixels[20:32] = b" MRN7781234 "
    ds.PixelData = bytes(pixels)
    ds, data = written(ds)
    assert find_residual(ds, data, identifiers, pixel_value=ds.PixelData) == ()
    offset = data.index(b"MRN7781234")
    assert find_residual(ds, data, identifiers) == (f"raw bytes @offset {offset}: id",)


def test_pixel_value_followed_by_a_short_trailer(identifiers: Identifiers) -> None:
    ds, data = written(output())
    pixels = b"\x00" * 40 + b" MRN7781234 " + b"\x00" * 12
    delimiter = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    encoded = data + pixels + delimiter
    assert find_residual(ds, encoded, identifiers, pixel_value=pixels) == ()
    too_long = data + pixels + delimiter * 3
    offset = too_long.index(b"MRN7781234")
    assert find_residual(ds, too_long, identifiers, pixel_value=pixels) == (
        f"raw bytes @offset {offset}: id",
    )
    mislaid = data + pixels[:-1] + b"\x01" + delimiter
    offset = mislaid.index(b"MRN7781234")
    assert find_residual(ds, mislaid, identifiers, pixel_value=pixels) == (
        f"raw bytes @offset {offset}: id",
    )


def test_skipped_categories_are_not_searched(identifiers: Identifiers) -> None:
    ds, data = written(output(StudyDate="20230912", InstitutionName="SAINT ELSEWHERE HOSPITAL"))
    dated = data.index(b"20230912")
    named = data.index(b"SAINT ELSEWHERE HOSPITAL")
    assert find_residual(ds, data, identifiers) == (
        "(0008,0020) StudyDate: date",
        "(0008,0080) InstitutionName: institution",
        f"raw bytes @offset {dated} in (0008,0020): date",
        f"raw bytes @offset {named} in (0008,0080): institution",
    )
    assert find_residual(ds, data, identifiers, skip=frozenset({Category.DATE})) == (
        "(0008,0080) InstitutionName: institution",
        f"raw bytes @offset {named} in (0008,0080): institution",
    )
    assert find_residual(ds, data, identifiers, skip={"date", "institution"}) == ()


def test_implicit_vr_and_undecodable_elements(identifiers: Identifiers) -> None:
    ds = output()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.add_new(0x00091001, "LO", "MRN7781234")
    assert find_residual(ds, None, identifiers) == ("(0009,1001): id",)
    ds, data = written(ds)
    assert ds[0x00091001].VR == "UN"  # read back without its VR: it is read as text
    offset = data.index(b"MRN7781234")
    assert find_residual(ds, data, identifiers) == (
        "(0009,1001): id",  # a UN value that is text is read as text too
        f"raw bytes @offset {offset} in (0009,1001): id",
    )
    broken = Dataset(
        {Tag(0x00100010): RawDataElement(Tag(0x00100010), "XX", 4, b"abcd", 0, True, True)}
    )
    assert find_residual(broken, None, identifiers) == ()


def test_hits_are_sorted_and_unique(identifiers: Identifiers) -> None:
    ds, _ = written(output(StudyDescription="DOE DOE Doe, 15 Apr 1961, 1961-04-15"))
    assert find_residual(ds, None, identifiers) == (
        "(0008,1030) StudyDescription: date",
        "(0008,1030) StudyDescription: name_part",
    )


def test_no_identifiers_no_hits() -> None:
    ds, data = written(output(StudyDescription="DOE"))
    assert find_residual(ds, data, Identifiers(())) == ()


def test_verify_raises_without_any_value(identifiers: Identifiers) -> None:
    ds = output(
        PatientName="DOE^JOHNATHAN",
        PatientBirthDate="19610415",
        StudyDate="20230912",
        StudyID="ST4455",
        InstitutionName="SAINT ELSEWHERE HOSPITAL",
        ReferencedStudySequence=nested(2, PatientID="MRN7781234"),
    )
    ds, data = written(ds)
    with pytest.raises(ResidualPhiError) as caught:
        verify(ds, data, identifiers)
    error = caught.value
    assert len(error.hits) == 12
    assert error.hits[:6] == (
        "(0008,0020) StudyDate: date",
        "(0008,0080) InstitutionName: institution",
        "(0008,1110)[0]>(0008,1110)[0]>(0010,0020) PatientID: id",
        "(0010,0010) PatientName: name",
        "(0010,0030) PatientBirthDate: date",
        "(0020,0010) StudyID: id",
    )
    assert all(hit.startswith("raw bytes @offset ") for hit in error.hits[6:])
    shown = (str(error) + " ".join(error.hits) + error.detail).upper()
    for planted in PLANTED:
        assert planted not in shown
    assert str(error).startswith("RESIDUAL_PHI: 12 hit(s): (0008,0020) StudyDate: date")


def test_coded_strings_and_ignored_locations_are_not_searched(identifiers: Identifiers) -> None:
    """A defined term equal to a name part, and deid's own marker text, are no leak."""
    ds = output(BodyPartExamined="JOHNATHAN", DeidentificationMethod="JOHNATHAN method")
    ds, data = written(ds)
    assert find_residual(ds, data, identifiers, ignore=("(0012,0063)",)) == ()
    assert find_residual(ds, data, identifiers) == (
        "(0012,0063) DeidentificationMethod: name_part",
        f"raw bytes @offset {data.index(b'JOHNATHAN method')} in (0012,0063): name_part",
    )


def test_ignored_item_covers_everything_inside_it(identifiers: Identifiers) -> None:
    ours = Dataset()
    ours.Manufacturer = "JOHNATHAN"
    theirs = Dataset()
    theirs.Manufacturer = "JOHNATHAN"
    ds, data = written(output(ContributingEquipmentSequence=[theirs, ours]))
    hits = find_residual(ds, data, identifiers, ignore=("(0018,A001)[1]",))
    assert hits == (
        "(0018,A001)[0]>(0008,0070) Manufacturer: name_part",
        f"raw bytes @offset {data.index(b'JOHNATHAN')} in (0018,A001)[0]>(0008,0070): name_part",
    )


def test_unknown_text_elements_are_searched_for_short_identifiers(identifiers: Identifiers) -> None:
    ds = output()
    ds.add_new(0x0018FFF0, "UN", b"seen by LEE ")
    ds.add_new(0x0018FFF2, "UN", b"\x01LEE\x02\x00")  # binary: left to the raw search
    ds, data = written(ds)
    assert find_residual(ds, data, identifiers) == ("(0018,FFF0): name_part",)


def test_a_cs_value_that_swallowed_the_next_elements_is_searched() -> None:
    """A wrong length on a kept CS element (fuzz finding) made its value carry the Content
    Sequence after it, with the patient's name inside: CS values are left out of the search
    only when they are well-formed Code Strings."""
    import struct

    from deid import Deidentifier, ResidualPhiError
    from deid.verify import plain_cs
    from tests.conftest import KEY
    from tests.factories import item, make_dataset, sequence_of, to_bytes

    ds = make_dataset(ContinuityOfContent="SEPARATE")
    ds.ContentSequence = sequence_of(item(TextValue="Seen with DOE JOHNATHAN today"))
    data = bytearray(to_bytes(ds))
    header = b"\x40\x00\x50\xa0CS"
    at = data.index(header)
    swallow = len(data) - (at + 8)  # the value now runs to the end: the sequence is inside it
    data[at + 6 : at + 8] = struct.pack("<H", swallow)
    with pytest.raises(ResidualPhiError) as info:
        Deidentifier("upload", KEY).deidentify_bytes(bytes(data))
    assert "(0040,A050)" in str(info.value)
    assert "DOE" not in str(info.value)
    assert plain_cs(b"ORIGINAL\\PRIMARY\\AXIAL") and plain_cs(b"YES ")
    assert not plain_cs(b"DOE^JOHN") and not plain_cs(b"ABCDEFGHIJKLMNOPQ")
