"""The table loaders: lookups, caching, and fail-closed parsing of a damaged table."""

from __future__ import annotations

import pytest

from deid import ActionCode, AttributeType, PolicyError, ProfileOption, standard
from deid.tags import SafePrivateKey


def test_lookup_exact_repeating_and_private() -> None:
    table = standard.confidentiality_table()
    assert table.lookup(0x00100010).name == "Patient's Name"
    assert table.lookup(0x50020005).tag == "(50xx,xxxx)"  # any curve element of any curve group
    assert table.lookup(0x601E3000).tag == "(60xx,3000)"
    assert table.lookup(0x60024000).tag == "(60xx,4000)"
    assert table.lookup(0x60020010) is None  # overlay rows: unlisted, decided by the group rule
    assert table.lookup(0x00291010).tag == "(gggg,eeee) where gggg is odd"
    assert table.lookup(0x00280010) is None  # Rows: not listed


def test_code_for_options_and_the_one_conflict() -> None:
    calibration = standard.confidentiality_table().lookup(0x00181200)  # Date of Last Calibration
    assert calibration.code_for(frozenset()) == (ActionCode.X, None)
    device = ProfileOption.RETAIN_DEVICE_IDENTITY
    modified = ProfileOption.RETAIN_LONG_MODIFIED_DATES
    assert calibration.code_for(frozenset({device})) == (ActionCode.K, device)
    assert calibration.code_for(frozenset({device, modified})) == (ActionCode.C, modified)


def test_iod_types_known_and_unknown_sop_class() -> None:
    types = standard.iod_types()
    ct = "1.2.840.10008.5.1.4.1.1.2"
    assert types.type_of(ct, (0x00181000,)) == (AttributeType.TYPE_3, True)
    assert types.type_of(ct, (0x00400260, 0x00181000)) == (None, True)
    # unknown SOP Class: the strictest Type of any IOD at that place (Enhanced Equipment: 1)
    assert types.type_of("1.2.3", (0x00181000,)) == (AttributeType.TYPE_1, False)
    assert types.resolve(ActionCode.X_Z_D, ct, (0x00181000,))[0] is ActionCode.X
    assert types.resolve(ActionCode.X_Z_D, "1.2.3", (0x00181000,))[0] is ActionCode.D


def test_safe_private_structured_content_and_codes() -> None:
    safe = standard.safe_private_attributes()
    assert SafePrivateKey(0x7053, "Philips PET Private Group", 0x00) in safe
    row = standard.lookup_structured_content("DCM", "121022", "TEXT")
    assert row is not None and row.meaning == "Accession Number"
    assert row.row.basic is ActionCode.X
    # retired SNOMED designators are looked up as SCT (Note 3 of E.3.4)
    sct = next(k for k in standard.structured_content_table() if k[0] == "SCT")
    assert standard.lookup_structured_content("SRT", sct[1], sct[2]) is not None
    assert standard.method_codes()["113100"].meaning == (
        "Basic Application Confidentiality Profile"
    )
    assert standard.sop_classes()["1.2.840.10008.5.1.4.1.1.2"].iod == "CT Image"


@pytest.mark.parametrize(
    ("loader", "name", "text", "key"),
    [
        (
            standard.confidentiality_table,
            standard.E1_1,
            "tag,name,retired,in_std_comp_iod,basic,"
            + ",".join(o.value for o in ProfileOption)
            + '\n"(0010,0010)",Patient\'s Name,N,Y,Q'
            + "," * 10
            + "\n",
            "row 2",
        ),
        (
            standard.confidentiality_table,
            standard.E1_1,
            'tag,name,retired,in_std_comp_iod,basic\n"(0010,0010)",x,N,Y,Z,extra\n',
            "row 2",
        ),
        (
            standard.safe_private_attributes,
            standard.E3_10,
            'tag,private_creator,vr,vm,meaning\n"(7053,1000)",ACME,DS,1,x\n',
            "row 2",
        ),
    ],
    ids=["unknown-code", "extra-cell", "unparseable-private-tag"],
)
def test_a_damaged_table_fails_closed_naming_file_and_row(
    monkeypatch: pytest.MonkeyPatch, loader, name: str, text: str, key: str
) -> None:
    loader.cache_clear()
    monkeypatch.setattr(standard, "read_profile_text", lambda _name: text)
    try:
        with pytest.raises(PolicyError) as info:
            loader()
        assert info.value.source == name
        assert info.value.key == key
    finally:
        monkeypatch.undo()
        loader.cache_clear()
    assert loader()  # the real table loads again
