"""Policies: TOML files, validation errors that name the file and key, the named policies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword

from deid import ActionCode, Policy, PolicyError, ProfileOption, load_policy, named_policies
from deid.codes import PixelRead, PixelText
from deid.policy import options_of

O = ProfileOption  # noqa: E741 (short: the options are spelled out below)
UPLOAD_OPTIONS = frozenset(
    {
        O.RETAIN_SAFE_PRIVATE,
        O.RETAIN_LONG_MODIFIED_DATES,
        O.RETAIN_PATIENT_CHARACTERISTICS,
        O.RETAIN_DEVICE_IDENTITY,
        O.CLEAN_DESCRIPTORS,
        O.CLEAN_STRUCTURED_CONTENT,
        O.CLEAN_GRAPHICS,
    }
)


def tag(keyword: str) -> int:
    found = tag_for_keyword(keyword)
    assert found is not None
    return found


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the named policies (profiles/README.md) ---------------------------------------------------


def test_named_policies_are_basic_research_upload() -> None:
    assert named_policies() == ("basic", "research", "upload")


def test_basic_has_no_options_and_no_pseudonyms() -> None:
    basic = load_policy("basic")
    assert basic.name == "basic"
    assert basic.options == frozenset()
    assert basic.pseudonymize == frozenset()
    assert dict(basic.overrides) == {}
    assert basic.source == "policies/basic.toml"


def test_upload_has_exactly_the_documented_options_and_pseudonyms() -> None:
    upload = load_policy("upload")
    assert upload.options == UPLOAD_OPTIONS
    assert upload.pseudonymize == frozenset({tag("PatientID"), tag("PatientName")})
    assert upload.date_shift_days == (-3650, -1)
    assert dict(upload.overrides) == {}
    assert [o.code for o in options_of(upload)] == [
        "113111", "113109", "113108", "113107", "113105", "113104", "113103",
    ]  # fmt: skip


def test_research_is_upload_plus_accession_and_study_id_pseudonyms() -> None:
    research = load_policy("research")
    assert research.name == "research"
    assert research.options == UPLOAD_OPTIONS
    assert research.pseudonymize == frozenset(
        {tag("PatientID"), tag("PatientName"), tag("AccessionNumber"), tag("StudyID")}
    )
    assert research.date_shift_days == (-3650, -1)


README_OPTIONS = {
    "Retain Safe Private": ProfileOption.RETAIN_SAFE_PRIVATE,
    "Retain Longitudinal Modified Dates": ProfileOption.RETAIN_LONG_MODIFIED_DATES,
    "Retain Patient Characteristics": ProfileOption.RETAIN_PATIENT_CHARACTERISTICS,
    "Retain Device Identity": ProfileOption.RETAIN_DEVICE_IDENTITY,
    "Clean Descriptors": ProfileOption.CLEAN_DESCRIPTORS,
    "Clean Structured Content": ProfileOption.CLEAN_STRUCTURED_CONTENT,
    "Clean Graphics": ProfileOption.CLEAN_GRAPHICS,
}


def test_readme_table_matches_the_named_policies() -> None:
    readme = Path(__file__).resolve().parents[1] / "profiles" / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    rows = {
        cells[1].strip("` "): [c.strip() for c in cells[2:-1]]
        for cells in (line.split("|") for line in lines if line.startswith("| `"))
        if cells[1].strip("` ") in named_policies()
    }
    assert list(rows) == ["basic", "upload", "research"]
    upload = {README_OPTIONS[name] for name in rows["upload"][0].split(", ")}
    assert upload == load_policy("upload").options
    assert rows["upload"][1] == "Patient ID, Patient's Name"
    assert rows["research"][0] == "as `upload`"
    assert rows["research"][1] == "as `upload`, plus Accession Number and Study ID"
    assert rows["basic"][0].startswith("none")
    assert rows["basic"][1].startswith("none")


# -- TOML files --------------------------------------------------------------------------------

FULL = """
name = "site"
description = "A site policy"
extends = "basic"
options = ["retain_safe_private", "clean-descriptors", "Retain Device Identity"]
pseudonymize = ["PatientID", "(0010,0010)"]
keep = ["BodyPartExamined", "(0018,0015)", "StationName"]
date_shift_days = [-30, 30]
clean_pixel_data = "never"
allow_sop_classes = ["1.2.840.10008.5.1.4.1.1.104.1"]
allow_recognizable_visual_features = true

[overrides]
"(0008,1030)" = "X"
StationName = "z"
IrradiationEventUID = "U"

[pixels]
text = "identifiers"
engine = "mysite.ocr:Engine"
pad = 5
lossless = true
read = "frames"
"""


def test_full_policy_file(tmp_path: Path) -> None:
    path = write(tmp_path, "site.toml", FULL)
    policy = load_policy(path)
    assert policy.name == "site"
    assert policy.description == "A site policy"
    assert policy.source == str(path)
    assert policy.options == {O.RETAIN_SAFE_PRIVATE, O.CLEAN_DESCRIPTORS, O.RETAIN_DEVICE_IDENTITY}
    assert policy.pseudonymize == {tag("PatientID"), tag("PatientName")}
    assert dict(policy.overrides) == {
        0x00180015: ActionCode.K,
        0x00081030: ActionCode.X,
        tag("StationName"): ActionCode.Z,  # overrides win over keep
        tag("IrradiationEventUID"): ActionCode.U,
    }
    assert policy.date_shift_days == (-30, 30)
    assert policy.describe() == {
        "name": "site",
        "description": "A site policy",
        "options": ["clean_descriptors", "retain_device_identity", "retain_safe_private"],
        "overrides": {
            "(0008,1030)": "X",
            "(0008,1010)": "Z",
            "(0008,3010)": "U",
            "(0018,0015)": "K",
        },
        "pseudonymize": ["PatientID", "PatientName"],
        "date_shift_days": [-30, 30],
        "clean_pixel_data": "never",
        "allow_sop_classes": ["1.2.840.10008.5.1.4.1.1.104.1"],
        "allow_recognizable_visual_features": True,
        "pixels": {
            "text": "identifiers",
            "engine": "mysite.ocr:Engine",
            "pad": 5,
            "lossless": True,
            "read": "frames",
        },
    }
    assert load_policy(str(path)) == policy


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, "my-site.toml", "")).name == "my-site"


def test_extends_a_named_policy_and_adds_to_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "child.toml",
        'extends = "upload"\noptions = ["retain_uids"]\npseudonymize = ["StudyID"]\n'
        'keep = ["StationName"]\n',
    )
    child = load_policy(path)
    assert child.options == UPLOAD_OPTIONS | {O.RETAIN_UIDS}
    assert child.pseudonymize == {tag("PatientID"), tag("PatientName"), tag("StudyID")}
    assert dict(child.overrides) == {tag("StationName"): ActionCode.K}
    assert child.date_shift_days == (-3650, -1)
    assert child.name == "child"


def test_extends_a_file_beside_the_extending_file(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    write(folder, "base.toml", 'options = ["clean_graphics"]\ndate_shift_days = [-9, -2]\n')
    write(folder, "child.toml", 'extends = "base.toml"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the file, not to the working directory
    child = load_policy(folder / "child.toml")
    assert child.options == {O.CLEAN_GRAPHICS}
    assert child.date_shift_days == (-9, -2)


# -- errors name the file and the key --------------------------------------------------------------

BAD = {
    "unknown-key": ("colour = 'red'\n", "colour", "unknown key(s) ['colour']"),
    "unknown-option": ("options = ['retain_everything']\n", "options", "'retain_everything'"),
    "options-not-a-list": ("options = 'clean_graphics'\n", "options", "must be a list"),
    "option-not-a-string": ("options = [3]\n", "options", "options must be strings"),
    "conflicting-dates": (
        "options = ['retain_long_full_dates', 'retain_long_modified_dates']\n",
        "options",
        "exclude each other",
    ),
    "unknown-keyword-in-keep": ("keep = ['NotAKeyword']\n", "keep", "'NotAKeyword'"),
    "bad-tag-in-keep": ("keep = ['(00ZZ,0010)']\n", "keep", "not a tag"),
    "unknown-keyword-in-overrides": (
        "[overrides]\nNotAKeyword = 'X'\n",
        "overrides",
        "'NotAKeyword'",
    ),
    "bad-tag-in-overrides": ("[overrides]\n'(0010,00GG)' = 'X'\n", "overrides", "not a tag"),
    "bad-action": ("[overrides]\nStudyDescription = 'Q'\n", "overrides.StudyDescription", "'Q'"),
    "compound-action": (
        "[overrides]\n'(0008,1030)' = 'X/Z'\n",
        "overrides.(0008,1030)",
        "one of D Z X K C U",
    ),
    "action-not-a-string": (
        "[overrides]\nStudyDescription = 1\n",
        "overrides.StudyDescription",
        "action must be a string",
    ),
    "uid-action-on-text": (
        "[overrides]\nStudyDescription = 'U'\n",
        "overrides.StudyDescription",
        "not VR LO",
    ),
    "overrides-not-a-table": ("overrides = ['X']\n", "overrides", "must be a table"),
    "unknown-pseudonym": ("pseudonymize = ['Nope']\n", "pseudonymize", "'Nope'"),
    "zero-shift": ("date_shift_days = [0, 0]\n", "date_shift_days", "not only 0"),
    "reversed-shift": ("date_shift_days = [5, 1]\n", "date_shift_days", "low <= high"),
    "float-shift": ("date_shift_days = [-1.5, 2]\n", "date_shift_days", "whole days"),
    "three-shifts": ("date_shift_days = [1, 2, 3]\n", "date_shift_days", "[low, high]"),
    "name-not-a-string": ("name = 3\n", "name", "must be a string"),
    "extends-not-a-string": ("extends = 5\n", "extends", "must be a policy name or file"),
    "pixels-not-a-table": ("pixels = 'all'\n", "pixels", "must be a table"),
    "allow-sop-not-a-uid": (
        "allow_sop_classes = ['PDF']\n",
        "allow_sop_classes",
        "must be a list of UIDs",
    ),
    "allow-sop-a-string": ("allow_sop_classes = '1.2'\n", "allow_sop_classes", "must be a list"),
    "allow-rvf-word": (
        "allow_recognizable_visual_features = 'yes'\n",
        "allow_recognizable_visual_features",
        "must be true or false",
    ),
    "pixels-unknown-key": ("[pixels]\nspeed = 1\n", "pixels.speed", "unknown key(s) ['speed']"),
    "pixels-bad-text": ("[pixels]\ntext = 'names'\n", "pixels.text", "one of all, identifiers"),
    "pixels-empty-engine": ("[pixels]\nengine = ' '\n", "pixels.engine", "an engine name"),
    "pixels-engine-number": ("[pixels]\nengine = 3\n", "pixels.engine", "an engine name"),
    "pixels-pad-too-big": ("[pixels]\npad = 65\n", "pixels.pad", "0-64"),
    "pixels-pad-negative": ("[pixels]\npad = -1\n", "pixels.pad", "0-64"),
    "pixels-pad-bool": ("[pixels]\npad = true\n", "pixels.pad", "0-64"),
    "pixels-lossless-word": ("[pixels]\nlossless = 'yes'\n", "pixels.lossless", "true or false"),
    "pixels-read-word": ("[pixels]\nread = 'crops'\n", "pixels.read", "one of places, frames"),
    "pixels-read-bool": ("[pixels]\nread = true\n", "pixels.read", "one of places, frames"),
    "pixels-read-list": ("[pixels]\nread = ['frames']\n", "pixels.read", "one of places, frames"),
}


@pytest.mark.parametrize(("text", "key", "message"), BAD.values(), ids=BAD)
def test_bad_policy_file_names_the_file_and_the_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    error = caught.value
    assert error.source == str(path)
    assert error.key == key
    assert str(error).startswith(f"{path}: {key}: ")
    assert message in str(error)
    assert isinstance(error, ValueError)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.toml", "options = [\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: invalid TOML: ")


@pytest.mark.parametrize("spec", ["no-such-policy", "missing.toml"])
def test_unknown_policy_names_what_was_asked(tmp_path: Path, spec: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError) as caught:
        load_policy(spec)
    assert str(caught.value).startswith(f"{spec}: ")
    if spec == "no-such-policy":
        assert str(caught.value).endswith("named policies are basic, research, upload")


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", f'extends = "{first}"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(first)
    assert caught.value.key == "extends"
    assert "cycle" in str(caught.value)
    assert caught.value.source == str(tmp_path / "b.toml")


def test_a_policy_extending_itself_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}: extends: policies extend each other in a cycle"


def test_extending_a_missing_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "child.toml", 'extends = "gone.toml"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{tmp_path / 'gone.toml'}: cannot read policy (")


# -- policies in code -----------------------------------------------------------------------------


def test_policy_in_code_accepts_tags_keywords_and_enums() -> None:
    policy = Policy(
        options=["clean_graphics", O.RETAIN_UIDS],
        overrides={0x00081030: "x", "StationName": ActionCode.K, "(0018,0015)": "D"},
        pseudonymize=["AccessionNumber", 0x00200010],
    )
    assert policy.options == {O.CLEAN_GRAPHICS, O.RETAIN_UIDS}
    assert dict(policy.overrides) == {
        0x00081030: ActionCode.X,
        tag("StationName"): ActionCode.K,
        0x00180015: ActionCode.D,
    }
    assert policy.pseudonymize == {tag("AccessionNumber"), 0x00200010}
    assert policy.name == "custom"
    assert policy.source == "<code>"
    assert policy.with_options("clean_descriptors").options == policy.options | {
        O.CLEAN_DESCRIPTORS
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": {0x00081030: "Q"}}, "<code>: overrides.(0008,1030): unknown action 'Q'"),
        ({"overrides": {0x00100030: "U"}}, "<code>: overrides.(0010,0030): U (a new UID) applies"),
        ({"overrides": {2**32: "X"}}, "<code>: overrides: tag out of range"),
        ({"overrides": {True: "X"}}, "<code>: overrides: tags must be keywords"),
        ({"options": ["nope"]}, "<code>: options: unknown option 'nope'"),
        ({"date_shift_days": (True, 3)}, "<code>: date_shift_days: must be"),
        ({"options": [O.RETAIN_LONG_FULL_DATES, O.RETAIN_LONG_MODIFIED_DATES]}, "<code>: options:"),
    ],
    ids=["bad-action", "uid-on-date", "tag-range", "bool-tag", "option", "bool-shift", "dates"],
)
def test_policy_in_code_is_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


def test_uid_action_is_allowed_on_uids_sequences_and_private_tags() -> None:
    policy = Policy(
        overrides={"SOPInstanceUID": "U", "ReferencedImageSequence": "U", 0x00291010: "U"}
    )
    assert set(policy.overrides.values()) == {ActionCode.U}


def test_policy_is_immutable() -> None:
    policy = load_policy("upload")
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.overrides[0x00100010] = ActionCode.K  # type: ignore[index]
    assert load_policy(policy) is policy


@pytest.mark.parametrize("value", ["sometimes", 1, ["auto"]], ids=["word", "number", "list"])
def test_clean_pixel_data_must_be_a_mode(tmp_path: Path, value: object) -> None:
    text = f"clean_pixel_data = {value!r}".replace("'", '"')
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: clean_pixel_data: ")


def test_pixel_settings_inherit_and_override(tmp_path: Path) -> None:
    write(tmp_path, "parent.toml", "[pixels]\ntext = 'identifiers'\npad = 7\n")
    child = write(tmp_path, "child.toml", "extends = 'parent.toml'\n[pixels]\npad = 1\n")
    settings = load_policy(child).pixels
    assert (settings.text, settings.engine, settings.pad, settings.lossless, settings.read) == (
        PixelText.IDENTIFIERS,
        "rapidocr",
        1,
        False,
        PixelRead.PLACES,
    )
    frames = write(tmp_path, "frames.toml", "extends = 'child.toml'\n[pixels]\nread = 'frames'\n")
    assert load_policy(frames).pixels.read is PixelRead.FRAMES
    assert load_policy(frames).pixels.pad == 1


def test_shipped_policies_blank_all_text_with_rapidocr() -> None:
    for name in ("basic", "upload", "research"):
        settings = load_policy(name).pixels
        assert (settings.text, settings.engine, settings.pad, settings.lossless, settings.read) == (
            PixelText.ALL,
            "rapidocr",
            3,
            False,
            PixelRead.PLACES,
        )


def test_policies_pickle_and_stay_read_only() -> None:
    import pickle

    for name in ("basic", "upload", "research"):
        policy = load_policy(name)
        copy = pickle.loads(pickle.dumps(policy))
        assert copy == policy
        with pytest.raises(TypeError):
            copy.overrides[0x00100010] = ActionCode.K  # type: ignore[index]
