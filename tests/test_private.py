"""Every row of Table E.3.10-1 is honoured under Retain Safe Private, and only those rows."""

from __future__ import annotations

import csv
import io
from importlib import resources

import pytest

from deid import ActionCode, Policy, ProfileOption, build_plan
from tests.factories import make_dataset

SAFE = Policy(options=frozenset({ProfileOption.RETAIN_SAFE_PRIVATE}))
ROWS = list(
    csv.DictReader(
        io.StringIO(
            resources.files("deid.profiles")
            .joinpath("ps3.15-table-e3-10-safe-private.csv")
            .read_text(encoding="utf-8")
        )
    )
)
LISTED = {(r["tag"][1:5].upper(), r["private_creator"], r["tag"][8:10].upper()) for r in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['tag']} {r['private_creator']}")
def test_every_safe_private_row_is_kept_in_block_0x42(row: dict[str, str]) -> None:
    group = int(row["tag"][1:5], 16)
    low = int(row["tag"][8:10], 16)
    ds = make_dataset()
    ds.add_new((group << 16) | 0x0042, "LO", row["private_creator"])
    ds.add_new((group << 16) | 0x4200 | low, "UN", b"\x00\x00")
    # its neighbour in the block, when the table does not list it, goes
    neighbour = (low + 1) & 0xFF
    listed_neighbour = (
        row["tag"][1:5].upper(),
        row["private_creator"],
        f"{neighbour:02X}",
    ) in LISTED
    ds.add_new((group << 16) | 0x4200 | neighbour, "UN", b"\x00\x00")
    plan = build_plan(ds, SAFE)
    assert plan.find((group << 16) | 0x4200 | low).action is ActionCode.K
    assert plan.find((group << 16) | 0x0042).action is ActionCode.K
    expected = ActionCode.K if listed_neighbour else ActionCode.X
    assert plan.find((group << 16) | 0x4200 | neighbour).action is expected
    assert build_plan(ds, Policy()).find((group << 16) | 0x4200 | low).action is ActionCode.X


def test_the_table_has_all_its_rows() -> None:
    assert len(ROWS) == 479
    assert len({(r["tag"], r["private_creator"]) for r in ROWS}) == 479
