"""Every row of PS3.15 2026c Table E.1-1 is honoured, at the top level and nested.

Expectations are computed here from the CSV files directly (not through deid.standard), so a
mistake in the loader or the planner shows up as a mismatch.
"""

from __future__ import annotations

import csv
import gzip
import io
from importlib import resources

import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from deid import ActionCode, Policy, ProfileOption, build_plan
from tests.factories import make_dataset

OPTIONS = [o.value for o in ProfileOption]
#: An attribute the table does not list: a container for the nested cases.
CONTAINER = 0x00400260  # Performed Protocol Code Sequence


def _csv(name: str) -> list[dict[str, str]]:
    data = resources.files("deid.profiles").joinpath(name).read_bytes()
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


ROWS = _csv("ps3.15-table-e1-1.csv")
SINGLE = [
    r for r in ROWS if r["tag"].startswith("(") and "x" not in r["tag"] and "g" not in r["tag"]
]
_TYPES: dict[tuple[int, ...], int] = {}
for _row in _csv("iod-attribute-types.csv.gz"):
    if _row["sop_class_uid"] == CTImageStorage:
        _path = tuple(int(p.strip("()").replace(",", ""), 16) for p in _row["path"].split(">"))
        _strict = {"1": 3, "1C": 3, "2": 2, "2C": 2, "3": 1}[_row["type"]]
        _TYPES[_path] = max(_TYPES.get(_path, 0), _strict)


def tag_of(row: dict[str, str]) -> int:
    return int(row["tag"].strip("()").replace(",", ""), 16)


def guess_vr(tag: int, name: str) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        vr = ""
    if vr and " or " not in vr:
        return vr
    if vr:
        return vr.split(" or ")[0]
    if name.endswith("Sequence"):
        return "SQ"
    for suffix, guess in (("DateTime", "DT"), ("Date", "DA"), ("Time", "TM"), ("UID", "UI")):
        if name.endswith(suffix):
            return guess
    return "LO"


VALUES: dict[str, object] = {
    "AE": "STATION1",
    "AS": "045Y",
    "CS": "VALUE",
    "DA": "20200101",
    "DS": "1.5",
    "DT": "20200101120000",
    "IS": "7",
    "LO": "some text",
    "LT": "long text",
    "PN": "ROE^RICHARD",
    "SH": "SHORT",
    "ST": "short text",
    "TM": "120000",
    "UC": "unlimited",
    "UI": "1.2.3.4.5.6.7.8.9",
    "UR": "http://example.invalid/a",
    "UT": "unlimited text",
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "UN": b"\x01\x02",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "US": 1,
    "SS": 1,
    "UL": 1,
    "SL": 1,
    "SV": 1,
    "UV": 1,
    "FL": 1.0,
    "FD": 1.0,
    "AT": 0x00100010,
}


def value_for(vr: str) -> object:
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "T-1"
        return Sequence([item])
    return VALUES[vr]


def resolve(code: str, path: tuple[int, ...]) -> str:
    if "/" not in code:
        return code
    strict = _TYPES.get(path)
    if strict is None:
        return "X"
    table = {
        "Z/D": ("D", "Z", "Z"),
        "X/Z": ("D", "Z", "X"),
        "X/D": ("D", "Z", "X"),
        "X/Z/D": ("D", "Z", "X"),
        "X/Z/U*": ("U", "Z", "X"),
    }[code]
    return table[3 - strict]


def refine(action: str, vr: str, group: int, options: set[str]) -> str:
    """deid's documented refinements of a row's action (README, 'Semantics')."""
    if group in (0x0002, 0x0004):
        return "X"  # file meta is rebuilt; group 0004 is removed outside a DICOMDIR (E.1.1)
    if vr == "UI" and action in ("D", "C"):
        return "U"  # a dummy UID is a keyed new UID; well-known UIDs are kept (tested apart)
    if action == "C" and vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return "X"  # binary values cannot be cleaned: removal is the safe end
    if action == "C" and vr in ("DA", "DT", "TM") and "retain_long_modified_dates" not in options:
        return "Z"
    return action


def expected(row: dict[str, str], options: set[str], path: tuple[int, ...], vr: str) -> str:
    code = row["basic"]
    filled = [row[o] for o in OPTIONS if o in options and row[o]]
    if "retain_long_modified_dates" in options and row["retain_long_modified_dates"]:
        code = row["retain_long_modified_dates"]  # the date shift wins (README, Semantics)
    elif filled:
        code = "K" if "K" in filled else filled[0]
    return refine(resolve(code, path), vr, tag_of(row) >> 16, options)


PLANTED = (
    "PatientName", "PatientID", "StudyDate", "InstitutionName", "AccessionNumber",
    "PatientBirthDate", "StudyID", "StudyTime", "PatientSex", "FrameOfReferenceUID",
)  # fmt: skip


def bare_dataset() -> Dataset:
    """The factory object without the attributes the rows themselves plant."""
    ds = make_dataset()
    for keyword in PLANTED:
        del ds[keyword]
    return ds


def plan_for(tag: int, vr: str, options: set[str], nested: bool) -> ActionCode | None:
    ds = bare_dataset()
    target = Dataset()
    target.add_new(tag, vr, value_for(vr))
    if nested:
        ds.add_new(CONTAINER, "SQ", Sequence([target]))
    else:
        for elem in target:
            ds[elem.tag] = elem
    plan = build_plan(ds, Policy(options=frozenset(options)))
    decision = plan.find(tag, ((CONTAINER, 0),) if nested else ())
    return None if decision is None else decision.action


def test_container_is_unlisted() -> None:
    assert all(tag_of(r) != CONTAINER for r in SINGLE)
    assert len(SINGLE) == 652


@pytest.mark.parametrize("row", SINGLE, ids=lambda r: f"{r['tag']} {r['name']}")
def test_basic_row_top_level_and_nested(row: dict[str, str]) -> None:
    tag = tag_of(row)
    vr = guess_vr(tag, row["name"])
    if tag >> 16 == 0x0002:
        # A File Meta row applies in the file meta (where the element lives); in the data
        # set body a group 0002 element is misplaced and removed (refine() says X).
        ds = make_dataset()
        ds.file_meta.add_new(tag, vr, value_for(vr))
        meta = {d.tag: d for d in build_plan(ds, Policy()).decisions if d.in_file_meta}
        assert meta[tag].action.value == row["basic"]
    got_top = plan_for(tag, vr, set(), nested=False)
    got_nested = plan_for(tag, vr, set(), nested=True)
    assert got_top is not None and got_nested is not None
    assert got_top.value == expected(row, set(), (tag,), vr)
    assert got_nested.value == expected(row, set(), (CONTAINER, tag), vr)


OPTION_CASES = [
    (option, row)
    for option in OPTIONS
    for row in SINGLE
    if row[option] and tag_of(row) >> 16 != 0x0002
]


@pytest.mark.parametrize(
    ("option", "row"), OPTION_CASES, ids=lambda v: v if isinstance(v, str) else f"{v['tag']}"
)
def test_option_cell_overrides_basic(option: str, row: dict[str, str]) -> None:
    tag = tag_of(row)
    vr = guess_vr(tag, row["name"])
    got = plan_for(tag, vr, {option}, nested=False)
    assert got is not None
    assert got.value == expected(row, {option}, (tag,), vr)


PAIRS = [
    (a, b)
    for i, a in enumerate(OPTIONS)
    for b in OPTIONS[i + 1 :]
    if {a, b} != {"retain_long_full_dates", "retain_long_modified_dates"}
]
ALL_ROWS = [r for r in SINGLE if tag_of(r) >> 16 not in (0x0002, 0x0000)]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=lambda v: v)
def test_every_pair_of_options_on_every_row(first: str, second: str) -> None:
    """Every row in one object, planned under two options at once: each gets its expected code."""
    _check_all_rows({first, second})


@pytest.mark.parametrize(
    "dates", ["retain_long_full_dates", "retain_long_modified_dates"], ids=["full", "modified"]
)
def test_all_options_at_once_on_every_row(dates: str) -> None:
    other = {"retain_long_full_dates", "retain_long_modified_dates"} - {dates}
    _check_all_rows(set(OPTIONS) - other)


def _check_all_rows(options: set[str]) -> None:
    ds = bare_dataset()
    vrs = {}
    for row in ALL_ROWS:
        tag = tag_of(row)
        vrs[tag] = guess_vr(tag, row["name"])
        ds.add_new(tag, vrs[tag], value_for(vrs[tag]))
    plan = build_plan(ds, Policy(options=frozenset(options)))
    got = {d.tag: d.action.value for d in plan.decisions if not d.path and not d.in_file_meta}
    wrong = [
        row["tag"]
        for row in ALL_ROWS
        if got[tag_of(row)] != expected(row, options, (tag_of(row),), vrs[tag_of(row)])
    ]
    assert wrong == []


COMPOUND_ROWS = [r for r in SINGLE if "/" in r["basic"] and tag_of(r) >> 16 != 0x0002]
SOP_CLASSES = {
    "enhanced-ct": "1.2.840.10008.5.1.4.1.1.2.1",
    "mr": "1.2.840.10008.5.1.4.1.1.4",
    "us": "1.2.840.10008.5.1.4.1.1.6.1",
    "comprehensive-sr": "1.2.840.10008.5.1.4.1.1.88.33",
    "rt-plan": "1.2.840.10008.5.1.4.1.1.481.5",
    "gsps": "1.2.840.10008.5.1.4.1.1.11.1",
}


def _types_for(sop_class: str) -> dict[tuple[int, ...], int]:
    types: dict[tuple[int, ...], int] = {}
    for row in _csv("iod-attribute-types.csv.gz"):
        if row["sop_class_uid"] == sop_class:
            path = tuple(int(p.strip("()").replace(",", ""), 16) for p in row["path"].split(">"))
            strict = {"1": 3, "1C": 3, "2": 2, "2C": 2, "3": 1}[row["type"]]
            types[path] = max(types.get(path, 0), strict)
    return types


@pytest.mark.parametrize("name", list(SOP_CLASSES))
def test_every_compound_code_against_the_iod_types_of_other_iods(name: str) -> None:
    sop_class = SOP_CLASSES[name]
    types = _types_for(sop_class)
    table = {"Z/D": "DZZ", "X/Z": "DZX", "X/D": "DZX", "X/Z/D": "DZX", "X/Z/U*": "UZX"}
    assert len(COMPOUND_ROWS) == 50
    wrong = []
    for row in COMPOUND_ROWS:
        tag = tag_of(row)
        vr = guess_vr(tag, row["name"])
        ds = make_dataset(sop_class=sop_class)
        if tag in ds:
            del ds[tag]
        ds.add_new(tag, vr, value_for(vr))
        got = build_plan(ds, Policy()).find(tag)
        strict = types.get((tag,))
        want = "X" if strict is None else table[row["basic"]][3 - strict]
        want = refine(want, vr, tag >> 16, set())
        if got is None or got.action.value != want:
            wrong.append(row["tag"])
    assert wrong == []
