"""Forwarding: the de-identified parts of a request sent on with one STOW-RS request."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from deid.audit import AuditRecord
from deid.codes import Outcome, RejectReason
from deid.server import stow
from deid.server.multipart import DICOM
from deid.server.outputs import PartOutcome


async def forward(
    client: Any, base: str, headers: Mapping[str, str], outcomes: list[PartOutcome]
) -> None:
    """Send the de-identified parts to the downstream server in one STOW-RS request and
    mark those it did not store as failed."""
    sending = [o for o in outcomes if o.ok and o.data is not None]
    if not sending:
        return
    boundary = f"deid-{secrets.token_hex(16)}"
    chunks: list[bytes] = []
    for o in sending:
        assert o.data is not None
        chunks += [
            f"--{boundary}\r\nContent-Type: {DICOM}\r\n\r\n".encode("ascii"),
            o.data,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    headers = {
        **headers,
        "Content-Type": f'multipart/related; type="{DICOM}"; boundary={boundary}',
        "Accept": stow.MEDIA_TYPE,
    }
    sent = [o.record.sop_instance_uid or "" for o in sending]
    try:
        reply = await client.post(f"{base}/studies", content=b"".join(chunks), headers=headers)
    except Exception as exc:
        _failed(sending, f"forward failed ({type(exc).__name__})")
        return
    failed: set[int] | None
    urls: dict[str, str] = {}
    if reply.status_code == 200:
        failed = set()
    elif reply.status_code in (202, 409):
        failed = stow.failed_parts(_json(reply.content), sent)
    else:
        failed = None
    if reply.status_code in (200, 202):
        urls = stow.retrieve_urls(_json(reply.content))
    if failed is None:
        _failed(sending, f"forward failed (HTTP {reply.status_code})")
        return
    for index, o in enumerate(sending):
        o.data = None
        if index in failed:
            _failed([o], "the downstream server did not store it")
        elif o.record.sop_instance_uid in urls:
            o.retrieve_url = urls[o.record.sop_instance_uid]


def _failed(outcomes: list[PartOutcome], detail: str) -> None:
    for o in outcomes:
        o.data = None
        o.record = AuditRecord(
            Outcome.FAILED,
            RejectReason.WRITE_FAILED,
            detail,
            sop_class_uid=o.record.sop_class_uid,
            policy=o.record.policy,
            key_fingerprint=o.record.key_fingerprint,
        )
        o.output = o.digest = None


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None
