"""Keep pydicom from quoting the values deid works on, in deid's own threads only.

pydicom validates values as it converts them; in its default ``WARN`` mode an invalid value is
reported by a warning *and* a ``pydicom`` log line that quote it ("Invalid value for VR TM:
'...'"), which would carry a birth date or an ID out of a library call (DESIGN §1.9). The CLI
silences pydicom for the whole process; a library cannot, because other threads and the
caller's own use of pydicom keep pydicom's settings.

So :func:`unquoted` marks the current thread as working inside deid, and pydicom's
``config.settings`` reads its validation modes as ``IGNORE`` in such a thread where the caller's
setting is ``WARN``. Every other thread, and the caller's code outside deid, sees its own
settings unchanged; ``RAISE`` is kept (an invalid value then rejects the object). The settings
object gets a subclass of its class once (behaviour-preserving outside deid's calls); nothing
is ever set or restored around a call, so concurrent calls cannot undo each other.

pydicom's own log lines made in such a thread are dropped too (a filter on the ``pydicom``
loggers): besides values, they quote file offsets and raw tag bytes of the object ("Unknown
tag bytes ... at position 0x..."), and an offset's digits can spell an ID (a fuzz finding on
the stream path). Log lines of other threads, and deid's own, pass. The same holds for
pydicom's ``warn_and_log`` (a log line and a warning, e.g. "Unknown encoding '...'" quoting a
Specific Character Set value, which a wrong length can fill with the next elements' values):
the modules of pydicom that use it get a wrapper that does nothing inside a deid call.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from pydicom import config

_P = ParamSpec("_P")
_R = TypeVar("_R")
_inside = threading.local()
_lock = threading.Lock()


def _quiet(mode: int) -> int:
    depth: int = getattr(_inside, "depth", 0)
    return config.IGNORE if mode == config.WARN and depth else mode


class _Settings(config.Settings):
    """pydicom's settings, read as IGNORE instead of WARN in threads inside a deid call."""

    @property
    def reading_validation_mode(self) -> int:
        return _quiet(super().reading_validation_mode)

    @reading_validation_mode.setter
    def reading_validation_mode(self, value: int) -> None:
        self._reading_validation_mode = value  # what pydicom's own setter does

    @property
    def writing_validation_mode(self) -> int:
        return _quiet(super().writing_validation_mode)

    @writing_validation_mode.setter
    def writing_validation_mode(self, value: int) -> None:
        self._writing_validation_mode = value


class _OutsideOnly(logging.Filter):
    """Pass a log record unless it was made inside a deid call in this thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_inside, "depth", 0)


_OUTSIDE_ONLY = _OutsideOnly()


def _filter_pydicom_logs() -> None:
    """The filter on ``pydicom`` and every ``pydicom.*`` logger made so far (a logger's
    filters do not see what its children log)."""
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith("pydicom.")]
    for name in ("pydicom", *names):
        logger = logging.getLogger(name)
        if _OUTSIDE_ONLY not in logger.filters:
            logger.addFilter(_OUTSIDE_ONLY)


def _outside_only(func: Callable[..., None]) -> Callable[..., None]:
    """``func`` (pydicom's ``warn_and_log``) outside deid calls; nothing inside them."""

    @functools.wraps(func)
    def call(msg: str, category: type[Warning] | None = None, stacklevel: int = 1) -> None:
        if not getattr(_inside, "depth", 0):
            func(msg, category, stacklevel + 1)

    call.__deid_quiet__ = True  # type: ignore[attr-defined]
    return call


def _wrap_warn_and_log() -> None:
    """Give every pydicom module that holds ``warn_and_log`` the wrapper (once each)."""
    for name, module in list(sys.modules.items()):
        if name != "pydicom" and not name.startswith("pydicom."):
            continue
        func = getattr(module, "warn_and_log", None)
        if callable(func) and not getattr(func, "__deid_quiet__", False):
            module.warn_and_log = _outside_only(func)  # type: ignore[attr-defined]


# How many loggers and modules existed when the filter and the wrappers were last put on (a
# new pydicom.* logger or module needs them).
_seen = [-1, -1]


def _install() -> None:
    settings = config.settings
    loggers, modules = len(logging.Logger.manager.loggerDict), len(sys.modules)
    if isinstance(settings, _Settings) and [loggers, modules] == _seen:
        return
    with _lock:
        _filter_pydicom_logs()
        _wrap_warn_and_log()
        _seen[:] = [loggers, modules]
        if type(config.settings) is config.Settings:
            config.settings.__class__ = _Settings


@contextlib.contextmanager
def unquoted() -> Iterator[None]:
    """Run the body with pydicom's value warnings off in this thread (nestable)."""
    _install()
    _inside.depth = getattr(_inside, "depth", 0) + 1
    try:
        yield
    finally:
        _inside.depth -= 1


def unquoted_call(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate ``func`` to run inside :func:`unquoted`."""

    @functools.wraps(func)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with unquoted():
            return func(*args, **kwargs)

    return call
