"""``deid explain FILE``: print every decision (location, keyword, VR, action, why), no values.

One line per decision, tab-separated, after a ``#`` header and a column line; a ``#`` summary
ends the output. Exit 0 when a plan was made, 1 when the object is rejected before planning
or would be rejected by the pixel gate (the plan is printed all the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deid.cli._common import EXIT_OK, EXIT_REJECTED, UsageError, say
from deid.engine import Deidentifier, read_dataset
from deid.errors import RejectedError
from deid.gates import burned_in_risk
from deid.keys import Pseudonymizer
from deid.policy import load_policy


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
    risk = burned_in_risk(ds, policy.clean_pixel_data)
    if risk:
        say(f"{path}: would be rejected BURNED_IN_TEXT: burned-in text possible ({risk})")
        return EXIT_REJECTED
    return EXIT_OK
