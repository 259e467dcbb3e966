"""``deid explain FILE``: print every decision (location, keyword, VR, action, why), no values."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from deid.engine import read_dataset
from deid.errors import RejectedError
from deid.plan import build_plan
from deid.policy import load_policy


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("explain", help="print the plan for one file (no values)")
    parser.add_argument("file", help="a DICOM file")
    parser.add_argument("--policy", default="upload", help="policy name or TOML file (default: upload)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    try:
        ds = read_dataset(Path(args.file).read_bytes())
        plan = build_plan(ds, policy)
    except OSError as exc:
        sys.stderr.write(f"deid: {args.file}: cannot read ({type(exc).__name__})\n")
        return 1
    except RejectedError as exc:
        sys.stderr.write(f"deid: {args.file}: rejected: {exc}\n")
        return 1
    for line in plan.explain_lines():
        sys.stdout.write(line + "\n")
    counts = ", ".join(f"{k} {v}" for k, v in plan.counts().items())
    sys.stdout.write(f"# {len(plan.decisions)} decisions: {counts}\n")
    return 0
