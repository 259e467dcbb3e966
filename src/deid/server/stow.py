"""The STOW-RS response (PS3.18 §10.5.3): per-instance outcomes as ``application/dicom+json``.

Stored instances go into the Referenced SOP Sequence (0008,1199) under their *new* UIDs, each
with Warning Reason (0008,1196) ``0xB000`` (Coercion of Data Elements: de-identification changed
the object) and a Retrieve URL (0008,1190) where one is known. Rejected instances go into the
Failed SOP Sequence (0008,1198) with a Failure Reason (0008,1197) code and an Error Comment
(0000,0902) ``part N: REASON`` naming the part (1-based, in body order) and deid's
:class:`~deid.RejectReason`. A failed item never carries the uploaded SOP Instance UID (it is an
identifier); its Referenced SOP Class UID is given only when it is a well-known (standard) UID.

HTTP status: 200 when every instance was stored, 202 when some were and some failed, 409 when
none was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deid.codes import RejectReason

MEDIA_TYPE = "application/dicom+json"

#: Failure Reason (0008,1197) codes: PS3.4 Annex B / PS3.7 Annex C status codes used by STOW-RS.
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
#: Warning Reason (0008,1196): Coercion of Data Elements.
COERCION = 0xB000

_FAILURE_CODES: dict[RejectReason, int] = {
    RejectReason.NOT_DICOM: CANNOT_UNDERSTAND,
    RejectReason.TRUNCATED: CANNOT_UNDERSTAND,
    RejectReason.INVALID_DATASET: CANNOT_UNDERSTAND,
    RejectReason.MISSING_UID: DOES_NOT_MATCH,
    RejectReason.UNSUPPORTED_SOP_CLASS: SOP_CLASS_NOT_SUPPORTED,
    RejectReason.UNSUPPORTED_TRANSFER_SYNTAX: TRANSFER_SYNTAX_NOT_SUPPORTED,
    RejectReason.RESIDUAL_PHI: PROCESSING_FAILURE,
    RejectReason.WRITE_FAILED: OUT_OF_RESOURCES,
    RejectReason.DUPLICATE_INSTANCE: DUPLICATE_SOP_INSTANCE,
    RejectReason.BURNED_IN_TEXT: PROCESSING_FAILURE,
    RejectReason.PIXEL_CLEANING_FAILED: PROCESSING_FAILURE,
}

_REFERENCED_SOP_SEQUENCE = "00081199"
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_CLASS_UID = "00081150"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_RETRIEVE_URL = "00081190"
_WARNING_REASON = "00081196"
_FAILURE_REASON = "00081197"
_ERROR_COMMENT = "00000902"


def failure_code(reason: RejectReason | None) -> int:
    """The Failure Reason code for a deid rejection reason (0x0110 when there is none)."""
    return _FAILURE_CODES.get(reason, PROCESSING_FAILURE) if reason else PROCESSING_FAILURE


@dataclass(frozen=True)
class Stored:
    """An instance stored (or forwarded) under its new UIDs."""

    part: int
    sop_class_uid: str
    sop_instance_uid: str
    retrieve_url: str | None = None


@dataclass(frozen=True)
class Failed:
    """An instance not stored: the part number, the failure code and deid's reason text."""

    part: int
    code: int
    reason: str
    sop_class_uid: str | None = None  # only a well-known (standard) SOP Class UID


def _element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def response_body(
    stored: list[Stored], failed: list[Failed], retrieve_url: str | None = None
) -> dict[str, Any]:
    """The Store Instances Response Module in the DICOM JSON model, keys in tag order."""
    body: dict[str, Any] = {}
    if retrieve_url is not None:
        body[_RETRIEVE_URL] = _element("UR", retrieve_url)
    if failed:
        items = []
        for item in sorted(failed, key=lambda f: f.part):
            comment = f"part {item.part}: {item.reason}"
            entry: dict[str, Any] = {_ERROR_COMMENT: _element("LO", comment)}
            if item.sop_class_uid:
                entry[_REFERENCED_SOP_CLASS_UID] = _element("UI", item.sop_class_uid)
            entry[_FAILURE_REASON] = _element("US", item.code)
            items.append(entry)
        body[_FAILED_SOP_SEQUENCE] = _element("SQ", *items)
    if stored:
        items = []
        for ok in sorted(stored, key=lambda s: s.part):
            entry = {
                _REFERENCED_SOP_CLASS_UID: _element("UI", ok.sop_class_uid),
                _REFERENCED_SOP_INSTANCE_UID: _element("UI", ok.sop_instance_uid),
            }
            if ok.retrieve_url is not None:
                entry[_RETRIEVE_URL] = _element("UR", ok.retrieve_url)
            entry[_WARNING_REASON] = _element("US", COERCION)
            items.append(entry)
        body[_REFERENCED_SOP_SEQUENCE] = _element("SQ", *items)
    return body


def http_status(stored: int, failed: int) -> int:
    """200 all stored, 202 some stored and some failed, 409 none stored."""
    if failed == 0:
        return 200
    return 202 if stored else 409


def failed_parts(body: Any, sent: list[str]) -> set[int] | None:
    """Which of the ``sent`` instances (new SOP Instance UIDs, in part order) a downstream
    STOW-RS response lists as failed: by Referenced SOP Instance UID, else by an Error Comment
    ``part N: ...`` (as this service writes). None when the body is not such a response."""
    if not isinstance(body, dict):
        return None
    seq = body.get(_FAILED_SOP_SEQUENCE, {})
    if not isinstance(seq, dict):
        return None
    index = {uid: n for n, uid in enumerate(sent)}
    values = seq.get("Value", [])
    if not isinstance(values, list):
        return None
    failed: set[int] = set()
    for item in values:
        found = _failed_index(item, index, len(sent))
        if found is None:
            return None
        failed.add(found)
    return failed


def _failed_index(item: Any, index: dict[str, int], count: int) -> int | None:
    if not isinstance(item, dict):
        return None
    uid = _first(item, _REFERENCED_SOP_INSTANCE_UID)
    if isinstance(uid, str):
        return index.get(uid)
    comment = _first(item, _ERROR_COMMENT)
    if isinstance(comment, str) and comment.startswith("part "):
        number = comment[5:].partition(":")[0]
        if number.isdigit() and 1 <= int(number) <= count:
            return int(number) - 1
    return None


def _first(item: dict[str, Any], tag: str) -> Any:
    element = item.get(tag)
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    return values[0] if isinstance(values, list) and values else None


def retrieve_urls(body: Any) -> dict[str, str]:
    """SOP Instance UID -> Retrieve URL from a downstream STOW-RS response (where given)."""
    urls: dict[str, str] = {}
    seq = body.get(_REFERENCED_SOP_SEQUENCE) if isinstance(body, dict) else None
    items = seq.get("Value") if isinstance(seq, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        uid, url = _first(item, _REFERENCED_SOP_INSTANCE_UID), _first(item, _RETRIEVE_URL)
        if isinstance(uid, str) and isinstance(url, str):
            urls[uid] = url
    return urls
