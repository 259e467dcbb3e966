"""``deid policies``: list the named policies with their options."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deid.cli._common import EXIT_OK
from deid.codes import ProfileOption
from deid.policy import load_policy, named_policies


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("policies", help="list the named policies and their options")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    out = sys.stdout
    for name in named_policies():
        policy = load_policy(name)
        described = policy.describe()
        out.write(f"{name}\n  {policy.description}\n")
        out.write(f"  options: {', '.join(described['options']) or '(Basic Profile only)'}\n")
        if ProfileOption.RETAIN_LONG_MODIFIED_DATES in policy.options:
            low, high = described["date_shift_days"]
            out.write(f"  date shift: {low} to {high} days per patient\n")
        if described["pseudonymize"]:
            out.write(f"  pseudonyms: {', '.join(described['pseudonymize'])}\n")
        if described["overrides"]:
            pairs = ", ".join(f"{k}={v}" for k, v in described["overrides"].items())
            out.write(f"  overrides: {pairs}\n")
    return EXIT_OK
