"""``python -m deid``: the command line (same as the ``deid`` script)."""

from deid.cli.main import entry

entry()
