"""``deid explain FILE``: print every decision (location, keyword, VR, action, why), no values.

One line per decision, tab-separated, after a ``#`` header and a column line; a ``#`` summary
ends the output, and a ``# pixels:`` line says whether the pixel pass would look at the object
(and why). Exit 0 when a plan was made, 1 when the object is rejected before planning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deid.burnedin import needs_prescreen, pixel_pass_reason
from deid.cli._common import EXIT_OK, EXIT_REJECTED, UsageError, say
from deid.engine import Deidentifier, read_dataset
from deid.errors import RejectedError
from deid.gates import has_pixels
from deid.keys import Pseudonymizer
from deid.policy import Policy, load_policy

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("explain", help="print the plan for one file (no values)")
    parser.add_argument("file", help="a DICOM file")
    parser.add_argument("--policy", default="upload", help="policy name or TOML file (upload)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    policy = load_policy(args.policy)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({type(exc).__name__})") from None
    # Planning never uses the key; a throwaway one lets us use the engine's gates and guards.
    engine = Deidentifier(policy, Pseudonymizer.generate())
    try:
        ds = read_dataset(data)
        plan = engine.plan(ds)
    except RejectedError as exc:
        say(f"{path}: rejected {exc}")
        return EXIT_REJECTED
    out = sys.stdout
    for line in plan.explain_lines():
        out.write(line + "\n")
    counts = ", ".join(f"{k} {v}" for k, v in plan.counts().items())
    out.write(f"# {len(plan.decisions)} decisions: {counts}\n")
    out.write(f"# pixels: {_pixel_line(ds, policy)}\n")
    return EXIT_OK


def _pixel_line(ds: Dataset, policy: Policy) -> str:
    reason = pixel_pass_reason(ds, policy)
    settings = policy.pixels
    how = f"OCR {settings.engine}, blank {settings.text.value} text"
    if reason:
        return f"pixel pass ({reason}; {how})"
    if needs_prescreen(ds, policy):
        return f"pre-screen every frame, pixel pass where it finds text ({how})"
    if not has_pixels(ds):
        return "no pixel data"
    return f"not looked at (clean_pixel_data = {policy.clean_pixel_data.value})"
