"""``deid policies``: list the named policies with their options."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deid.policy import load_policy, named_policies


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("policies", help="list the named policies and their options")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    for name in named_policies():
        policy = load_policy(name)
        described = policy.describe()
        sys.stdout.write(f"{name}\n  {policy.description}\n")
        sys.stdout.write(f"  options: {', '.join(described['options']) or '(Basic Profile only)'}\n")
        if described["pseudonymize"]:
            sys.stdout.write(f"  pseudonyms: {', '.join(described['pseudonymize'])}\n")
        if described["overrides"]:
            pairs = ", ".join(f"{k}={v}" for k, v in described["overrides"].items())
            sys.stdout.write(f"  overrides: {pairs}\n")
    return 0
