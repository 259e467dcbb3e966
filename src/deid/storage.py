"""Where a run reads and writes: a local folder, or a folder in object storage (fsspec URL).

:class:`Location` is a folder, local (a path) or remote (``s3://bucket/prefix`` and any other
fsspec URL; the ``cloud`` extra installs fsspec and s3fs). It offers what an archive run needs
and nothing more: walk the files under it lazily, read a file, write a file atomically, put an
output under a temporary name and then commit it under its final name, remove leftover
temporaries, and keep a journal.

Atomicity: locally, a temporary file is synced and renamed. In object storage a single PUT is
all-or-nothing, and a temporary object is copied to its final key before the temporary is
deleted (a reader never sees a partial object under a final name). A remote journal is a whole
object rewritten every ``REMOTE_JOURNAL_EVERY`` records (and at the end): a run killed between
two rewrites does the last few inputs again, which gives the same bytes (pseudonyms are keyed).

Credentials and endpoints come from the usual environment of the backend (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...) or from
``storage_options``; they are never written anywhere by deid.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deid.errors import MissingDependencyError

TEMP_PREFIX = ".deid-"
TEMP_SUFFIX = ".tmp"
REMOTE_JOURNAL_EVERY = 50


def is_url(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a remote folder (``scheme://...``; ``file://`` is local)."""
    text = os.fspath(spec)
    return "://" in text and not text.startswith("file://")


def temp_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


class Location:
    """A folder to read from or write into (see the module). Picklable (worker processes)."""

    def __init__(
        self, spec: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> None:
        text = os.fspath(spec)
        self.remote = is_url(text)
        self.options = dict(storage_options or {})
        if text.startswith("file://"):
            text = text[len("file://") :]
        self.spec = text.rstrip("/") if self.remote else text
        self._fs: Any = None
        self._root = ""
        if self.remote:
            self._fs, self._root = _filesystem(self.spec, self.options)

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], state["options"])  # type: ignore[misc]

    def __str__(self) -> str:
        return self.spec

    @property
    def path(self) -> Path:
        """The local folder (only for local locations)."""
        if self.remote:
            raise ValueError("a remote location has no local path")
        return Path(self.spec)

    # -- what is there ---------------------------------------------------------------------------

    def is_dir(self) -> bool:
        return bool(self._fs.isdir(self._root)) if self.remote else self.path.is_dir()

    def is_file(self) -> bool:
        return bool(self._fs.isfile(self._root)) if self.remote else self.path.is_file()

    def exists(self, relative: str) -> bool:
        if self.remote:
            return bool(self._fs.exists(self._key(relative)))
        return (self.path / relative).exists()

    def locate(self, relative: str) -> str:
        """The location of a file inside (a local path or a key), for :meth:`read`."""
        return self._key(relative) if self.remote else str(self.path / relative)

    def _key(self, relative: str) -> str:
        return f"{self._root}/{relative}" if relative else self._root

    def walk(self) -> Iterator[tuple[str, str]]:
        """``(location, relative name)`` of every file under this folder, in name order, one
        folder listed at a time. Local folder links are not followed."""
        if self.remote:
            yield from self._walk_remote(self._root)
        else:
            yield from _walk_local(self.path, self.path)

    def _walk_remote(self, folder: str) -> Iterator[tuple[str, str]]:
        try:
            entries = self._fs.ls(folder, detail=True)
        except (FileNotFoundError, OSError):
            return
        for entry in sorted(entries, key=lambda e: str(e["name"])):
            name = str(entry["name"]).rstrip("/")
            if name == folder:
                continue
            if entry.get("type") == "directory":
                yield from self._walk_remote(name)
            else:
                yield name, name[len(self._root) + 1 :]

    # -- reading and writing ---------------------------------------------------------------------

    def size(self, location: str) -> int:
        """The size in bytes of a file named by :meth:`locate` or :meth:`walk`."""
        if self.remote:
            return int(self._fs.size(location))
        return os.stat(location).st_size

    def read(self, location: str) -> bytes:
        """The bytes of a file named by :meth:`locate` or :meth:`walk`."""
        if self.remote:
            data: bytes = self._fs.cat_file(location)
            return data
        return Path(location).read_bytes()

    def read_text(self, relative: str) -> str:
        return self.read(self.locate(relative)).decode("utf-8")

    def write_atomic(self, relative: str, data: bytes) -> None:
        """Write a whole file so that it is either the old one or the new one, never half."""
        if self.remote:
            self._fs.pipe_file(self._key(relative), data)
            return
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / temp_name()
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def remove(self, relative: str) -> None:
        if self.remote:
            if self._fs.exists(self._key(relative)):
                self._fs.rm_file(self._key(relative))
        else:
            (self.path / relative).unlink(missing_ok=True)

    def make(self) -> None:
        """Create the folder (remote: nothing to do, prefixes need no creation)."""
        if not self.remote:
            self.path.mkdir(parents=True, exist_ok=True)

    # -- outputs: temporary, then committed --------------------------------------------------------

    def put_temporary(self, data: bytes) -> str:
        """Write ``data`` under a new temporary name in this folder (synced); its name."""
        name = temp_name()
        if self.remote:
            self._fs.pipe_file(self._key(name), data)
            return name
        temp = self.path / name
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            temp.unlink(missing_ok=True)
            raise
        return name

    def commit(self, temporary: str, relative: str) -> None:
        """Give a temporary file its final name (replacing a file of that name)."""
        if self.remote:
            self._fs.copy(self._key(temporary), self._key(relative))
            self._fs.rm_file(self._key(temporary))
            return
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path / temporary, target)

    def discard(self, temporary: str) -> None:
        self.remove(temporary)

    def remove_temporaries(self) -> None:
        """Temporary files of a run that was killed (never committed, never recorded)."""
        if self.remote:
            for location, _ in list(self.walk()):
                name = location.rsplit("/", 1)[-1]
                if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                    self._fs.rm_file(location)
            return
        for folder, _, names in os.walk(self.path):
            for name in names:
                if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                    Path(folder, name).unlink(missing_ok=True)

    def journal(self, relative: str) -> Journal:
        return Journal(self, relative)


class Journal:
    """An append-only text file of records: appended and flushed per record locally; a whole
    object rewritten every :data:`REMOTE_JOURNAL_EVERY` records remotely."""

    def __init__(self, location: Location, relative: str) -> None:
        self.location = location
        self.relative = relative
        self._handle: Any = None
        self._lines: list[str] = []
        self._unsaved = 0

    def load(self) -> str:
        """The complete records so far; a line cut by a crash is dropped (and removed)."""
        if not self.location.exists(self.relative):
            self.location.write_atomic(self.relative, b"")
            text = ""
        else:
            data = self.location.read(self.location.locate(self.relative))
            keep = data[: data.rfind(b"\n") + 1]
            if len(keep) != len(data):
                self.location.write_atomic(self.relative, keep)
            text = keep.decode("utf-8")
        if self.location.remote:
            self._lines = text.splitlines(keepends=True)
        else:
            self._handle = open(self.location.path / self.relative, "a", encoding="utf-8")  # noqa: SIM115
        return text

    def append(self, line: str) -> None:
        if self._handle is not None:
            self._handle.write(line)
            self._handle.flush()
            return
        self._lines.append(line)
        self._unsaved += 1
        if self._unsaved >= REMOTE_JOURNAL_EVERY:
            self.save()

    def save(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            return
        self.location.write_atomic(self.relative, "".join(self._lines).encode("utf-8"))
        self._unsaved = 0

    def close(self) -> None:
        self.save()
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _walk_local(folder: Path, root: Path) -> Iterator[tuple[str, str]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk_local(Path(entry.path), root)
            elif entry.is_file():
                yield entry.path, Path(entry.path).relative_to(root).as_posix()
        except OSError:
            continue


def _filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise MissingDependencyError("an object-storage location", "cloud") from None
    try:
        fs, root = url_to_fs(url, **options)
    except ImportError:
        raise MissingDependencyError("an object-storage location", "cloud") from None
    return fs, str(root).rstrip("/")
