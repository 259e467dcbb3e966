"""Command line: ``deid run | explain | keygen | policies``. Only here do errors become exit codes.

Exit codes: 0 everything de-identified, 1 some inputs rejected, 2 usage or configuration error
(bad arguments, missing key, unknown policy, missing input), 70 an internal error (a bug; only
its type is printed, never its message, which could quote a value).
"""
