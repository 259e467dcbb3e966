"""Media types and ``multipart/related`` bodies (RFC 2045, 2046, 2387), as STOW-RS sends them.

Nothing here names a value from a part's content in an error: messages speak of the structure
(missing boundary, no closing delimiter, part count) only.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

DICOM = "application/dicom"

# RFC 2045 token characters and RFC 2046 boundary characters.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BCHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_LWSP = b" \t"


class MultipartError(ValueError):
    """The body or its media type cannot be parsed (HTTP 400); the message names no content."""


class TooManyPartsError(MultipartError):
    """More parts than allowed (HTTP 413)."""


@dataclass(frozen=True)
class MediaType:
    """``type/subtype`` (lower case) and its parameters (names lower case, values unquoted)."""

    type: str
    params: dict[str, str] = field(default_factory=dict)


def parse_media_type(text: str) -> MediaType:
    """Parse a Content-Type value: ``type/subtype *( ";" name "=" (token | quoted-string) )``.

    A ``/`` in an unquoted value is accepted (``type=application/dicom`` is common). Raises
    :class:`MultipartError` when the value is not a media type.
    """
    pos, end = 0, len(text)

    def skip_ws() -> None:
        nonlocal pos
        while pos < end and text[pos] in " \t":
            pos += 1

    skip_ws()
    match = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+)/([!#$%&'*+\-.^_`|~0-9A-Za-z]+)").match(
        text, pos
    )
    if match is None:
        raise MultipartError("the Content-Type is not a media type")
    essence = f"{match.group(1)}/{match.group(2)}".lower()
    pos = match.end()
    params: dict[str, str] = {}
    while True:
        skip_ws()
        if pos >= end:
            break
        if text[pos] != ";":
            raise MultipartError("the Content-Type has a malformed parameter list")
        pos += 1
        skip_ws()
        if pos >= end:
            break  # a trailing ";" is tolerated
        name = _TOKEN.match(text, pos)
        if name is None or name.end() >= end or text[name.end()] != "=":
            raise MultipartError("the Content-Type has a malformed parameter")
        pos = name.end() + 1
        if pos < end and text[pos] == '"':
            value, pos = _quoted(text, pos)
        else:
            raw = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z/]+").match(text, pos)
            if raw is None:
                raise MultipartError("the Content-Type has a parameter without a value")
            value, pos = raw.group(0), raw.end()
        params.setdefault(name.group(0).lower(), value)
    return MediaType(essence, params)


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The quoted-string starting at ``text[pos] == '"'``: its value and the position after."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    raise MultipartError("the Content-Type has an unterminated quoted string")


def boundary_of(media: MediaType) -> str:
    """The ``boundary`` parameter, checked against RFC 2046 (1 to 70 characters)."""
    boundary = media.params.get("boundary")
    if not boundary:
        raise MultipartError("multipart/related needs a boundary parameter")
    if _BCHARS.fullmatch(boundary) is None:
        raise MultipartError("the multipart boundary is not a valid RFC 2046 boundary")
    return boundary


@dataclass(frozen=True)
class Part:
    """One body part: its (lower-cased) headers and its content."""

    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


def split_multipart(body: bytes, boundary: str, *, max_parts: int) -> list[Part]:
    """The parts of a ``multipart/*`` body (preamble and epilogue ignored).

    Delimiters are ``CRLF--boundary`` (a bare ``LF`` is tolerated), optionally followed by
    linear white space; the first may start the body. A body without a delimiter, or without
    the closing ``--boundary--``, is refused, as is one with no part at all.
    """
    dash = b"--" + boundary.encode("ascii")
    parts: list[Part] = []
    pos = _first_delimiter(body, dash)
    while True:
        pos += len(dash)
        if body.startswith(b"--", pos):
            break  # the close delimiter: the rest is the epilogue
        pos = _after_padding(body, pos)
        if pos < 0:
            raise MultipartError("a multipart delimiter is not followed by a line break")
        nxt = _next_delimiter(body, dash, pos)
        stop = nxt - 1 if nxt > pos and body[nxt - 1 : nxt] == b"\r" else nxt
        if len(parts) >= max_parts:
            raise TooManyPartsError(f"more than {max_parts} parts")
        parts.append(_part(body[pos:stop]))
        pos = nxt + 1
    if not parts:
        raise MultipartError("the multipart body has no parts")
    return parts


def _first_delimiter(body: bytes, dash: bytes) -> int:
    """The position of the first delimiter line (the body may start with it)."""
    if body.startswith(dash) and _is_delimiter(body, len(dash)):
        return 0
    try:
        return _next_delimiter(body, dash, 0) + 1
    except MultipartError:
        raise MultipartError("the body holds no multipart delimiter") from None


def _is_delimiter(body: bytes, after: int) -> bool:
    """Whether what follows a ``--boundary`` at ``after`` ends a delimiter line."""
    return body.startswith(b"--", after) or _after_padding(body, after) >= 0


def _next_delimiter(body: bytes, dash: bytes, pos: int) -> int:
    """The position of the ``LF`` before the next delimiter line at or after ``pos``."""
    while True:
        found = body.find(b"\n" + dash, pos)
        if found < 0:
            raise MultipartError("the multipart body has no closing delimiter")
        if _is_delimiter(body, found + 1 + len(dash)):
            return found
        pos = found + 1


def _after_padding(body: bytes, pos: int) -> int:
    """Skip transport padding after a delimiter; the position after its line break, or -1."""
    while pos < len(body) and body[pos] in _LWSP:
        pos += 1
    if body.startswith(b"\r\n", pos):
        return pos + 2
    if body.startswith(b"\n", pos):
        return pos + 1
    return -1


def _part(raw: bytes) -> Part:
    """Split one part into headers (up to the first empty line) and content."""
    if raw.startswith(b"\r\n"):
        return Part({}, raw[2:])
    if raw.startswith(b"\n"):
        return Part({}, raw[1:])
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, content = raw[:crlf], raw[crlf + 4 :]
    elif lf >= 0:
        head, content = raw[:lf], raw[lf + 2 :]
    else:
        raise MultipartError("a part has no blank line after its headers")
    return Part(_headers(head), content)


def _headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    name: str | None = None
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        text = line.decode("latin-1")
        if text[:1] in (" ", "\t") and name is not None:  # a folded header line
            headers[name] += " " + text.strip()
            continue
        key, sep, value = text.partition(":")
        if not sep or _TOKEN.fullmatch(key.strip()) is None:
            raise MultipartError("a part has a malformed header line")
        name = key.strip().lower()
        headers.setdefault(name, value.strip())
    return headers


def part_payload(part: Part) -> bytes:
    """The part's DICOM bytes after its Content-Transfer-Encoding.

    Raises :class:`MultipartError` for an encoding other than binary, 8bit, 7bit or base64, or
    for bad base64.
    """
    encoding = part.headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding in ("binary", "8bit", "7bit", ""):
        return part.content
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(part.content.split()), validate=True)
        except (binascii.Error, ValueError):
            raise MultipartError("a part's base64 content is not valid base64") from None
    raise MultipartError("a part has an unsupported Content-Transfer-Encoding")
