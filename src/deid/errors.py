"""The exception tree of deid.

::

    DeidError
    ├── PolicyError(DeidError, ValueError)        bad profile/policy/table: file, row, key named
    ├── RejectedError(DeidError)                  object not safe to release; .reason
    │   └── ResidualPhiError                      verification found identifiers in the output
    ├── PixelError(DeidError)                     cannot decode / blank / re-encode
    └── MissingDependencyError(DeidError, ImportError)   names the extra to install

No message ever carries a value taken from a data set: only tags, keywords, reason codes,
counts and file names given by the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deid.codes import RejectReason


class DeidError(Exception):
    """Base class of every error deid raises on purpose."""


class PolicyError(DeidError, ValueError):
    """A policy, profile table or key file is invalid.

    The message names the file (or ``<code>`` for policies built in Python), and the key or
    row at fault.
    """

    def __init__(self, message: str, *, source: str = "<code>", key: str | None = None) -> None:
        self.source = source
        self.key = key
        where = source if key is None else f"{source}: {key}"
        super().__init__(f"{where}: {message}")


class RejectedError(DeidError):
    """The object cannot be released safely; nothing was written.

    ``reason`` is a :class:`deid.RejectReason`; ``detail`` says where (tags, never values).
    """

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        text = reason.value if not detail else f"{reason.value}: {detail}"
        super().__init__(text)


class ResidualPhiError(RejectedError):
    """Verification found an identifier of the input in the output.

    ``hits`` lists where (tag paths and identifier categories, never the values).
    """

    def __init__(self, hits: tuple[str, ...]) -> None:
        from deid.codes import RejectReason

        self.hits = hits
        shown = ", ".join(hits[:5]) + (" ..." if len(hits) > 5 else "")
        super().__init__(RejectReason.RESIDUAL_PHI, f"{len(hits)} hit(s): {shown}")


class PixelError(DeidError):
    """Pixel data cannot be decoded, blanked or re-encoded."""


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust extension's panic (pyo3's ``PanicException``, which derives
    from ``BaseException``, not ``Exception``: a decoder fed hostile bytes may raise it)."""
    return type(exc).__name__ == "PanicException"


class MissingDependencyError(DeidError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, what: str, extra: str) -> None:
        self.extra = extra
        super().__init__(
            f"{what} needs the optional dependencies: pip install 'deid-dicom[{extra}]'"
        )
