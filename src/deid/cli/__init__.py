"""Command line: ``deid run | explain | keygen | policies``. Only here do errors become exit codes."""
