"""The public surface, the README's promises and the shipped profiles."""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import deid
from deid import ProfileOption, load_policy, named_policies

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_all_is_sorted_and_exact() -> None:
    assert deid.__all__ == sorted(deid.__all__)
    assert deid.__all__ == [
        "ActionCode",
        "AttributeType",
        "AuditRecord",
        "Decision",
        "DeidError",
        "DeidResult",
        "Deidentifier",
        "Limits",
        "MissingDependencyError",
        "Outcome",
        "PixelError",
        "Plan",
        "Policy",
        "PolicyError",
        "ProfileOption",
        "Pseudonymizer",
        "RejectReason",
        "RejectedError",
        "ResidualPhiError",
        "Rule",
        "__dicom_edition__",
        "__version__",
        "build_plan",
        "load_policy",
        "named_policies",
        "write_key_file",
    ]
    for name in deid.__all__:
        assert hasattr(deid, name), name


def test_edition() -> None:
    assert deid.__dicom_edition__ == "2026c"


def test_import_deid_loads_no_table_and_no_heavy_dependency() -> None:
    code = (
        "import sys, deid, deid.standard as s;"
        "assert s.confidentiality_table.cache_info().currsize == 0;"
        "heavy = {'cv2','torch','easyocr','rapidocr_onnxruntime','onnxruntime','dask','tesserocr'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_readme_starts_with_the_two_commands() -> None:
    block = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_options_table_matches_the_named_policies() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| ") and "| 1131" in line]
    assert len(rows) == len(ProfileOption)
    names = ["basic", "upload", "research"]
    assert set(names) <= set(named_policies())
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        option = ProfileOption(cells[0])
        assert cells[1] == option.code
        for name, cell in zip(names, cells[2:], strict=True):
            assert (cell == "✓") == (option in load_policy(name).options), (option, name)


def test_readme_lists_every_reject_reason() -> None:
    for reason in deid.RejectReason:
        assert f"`{reason.value}`" in README, reason


def test_profile_checksums_match_the_profiles_readme() -> None:
    text = resources.files("deid.profiles").joinpath("README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"\| `([^`]+\.csv(?:\.gz)?)` \|.*\| `([0-9a-f]{64})` \|", text))
    assert len(listed) == 6
    for name, digest in listed.items():
        data = resources.files("deid.profiles").joinpath(name).read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        assert hashlib.sha256(data).hexdigest() == digest, name


def test_readme_pixels_table_matches_the_policy_defaults() -> None:
    from dataclasses import fields

    from deid.policy import PixelSettings

    section = README.split("**How** (policy table `[pixels]`):", 1)[1].split("**What", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {
        cells[0].strip("`"): cells[1].strip("`")
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in rows)
    }
    defaults = PixelSettings()
    expected = {}
    for item in fields(PixelSettings):
        value = getattr(defaults, item.name)
        text = getattr(value, "value", value)
        expected[item.name] = f'"{text}"' if isinstance(text, str) else str(text).lower()
    assert documented == expected
