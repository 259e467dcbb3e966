"""The upload service: a Starlette app taking DICOMweb STOW-RS uploads and de-identifying them.

``POST /studies`` (and ``POST /studies/{study}``) with a ``multipart/related;
type="application/dicom"`` body: every part is de-identified with the configured
:class:`~deid.Deidentifier` in a thread pool, then either written atomically into OUTPUT as
``<study>/<series>/<instance>.dcm`` (the names :func:`deid.runner.output_name` gives, from the new
UIDs) or forwarded to another DICOMweb server with one STOW-RS request. The answer is a STOW-RS
response (:mod:`deid.server.stow`). ``GET /health`` answers ``{"status": "ok"}``.

Every part gets one line in ``OUTPUT/audit.jsonl`` (the record of ``deid run``): ``input`` is
``<request id>/<part number>`` (the request id is also the ``X-Request-ID`` response header),
``output`` the file written (or None), ``output_sha256``. Never a value from the upload: not in
the audit, not in a response, not in a log line, not in a file name.

Bad requests never reach the engine: a media type other than ``multipart/related`` with
``type="application/dicom"`` is 415, a missing or bad boundary or a malformed body 400, an
``Accept`` without ``application/dicom+json`` 406, a body over ``max_body_bytes`` or with more than
``max_parts`` parts 413, a body not received within ``body_timeout`` 408.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom._uid_dict import UID_dictionary
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from deid._version import __version__
from deid.audit import AuditRecord
from deid.codes import Outcome, RejectReason
from deid.engine import Deidentifier
from deid.errors import RejectedError
from deid.runner import AUDIT_NAME, output_name
from deid.server import stow
from deid.server.forward import forward
from deid.server.multipart import (
    DICOM,
    MultipartError,
    TooManyPartsError,
    boundary_of,
    parse_media_type,
    part_payload,
    split_multipart,
)
from deid.server.outputs import AuditLog, PartOutcome, Ticket, write_new

logger = logging.getLogger("deid.server")

_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_ACCEPTED = frozenset({stow.MEDIA_TYPE, "application/json", "application/*", "*/*"})


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the service.

    ``max_body_bytes``: the largest body (413 above it); ``max_parts``: the most parts in one
    body (413); ``body_timeout``: seconds to receive a whole body (408); ``processing_timeout``:
    seconds for the parts of one request to be de-identified and stored (a part not finished by
    then fails with ``TIMEOUT`` and is never written); ``forward_timeout``: seconds for the
    downstream server to answer a forward.
    """

    max_body_bytes: int = 512 * 2**20
    max_parts: int = 1000
    body_timeout: float = 120.0
    processing_timeout: float = 600.0
    forward_timeout: float = 300.0


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Service:
    def __init__(
        self,
        engine: Deidentifier,
        output: Path | None,
        forward: str | None,
        limits: Limits,
        workers: int,
        retrieve_base: str | None,
        forward_headers: Mapping[str, str],
        audit: Path | None,
    ) -> None:
        self.engine = engine
        self.output = output
        self.forward = forward.rstrip("/") if forward else None
        self.limits = limits
        self.workers = workers
        self.retrieve_base = retrieve_base.rstrip("/") if retrieve_base else None
        self.forward_headers = dict(forward_headers)
        self.audit = AuditLog(audit)
        self.pool: cf.ThreadPoolExecutor | None = None
        self.client: Any = None
        self._store_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="deid-serve")
        self.audit.open()
        if self.forward is not None:
            import httpx

            self.client = httpx.AsyncClient(timeout=self.limits.forward_timeout)
        try:
            yield
        finally:
            if self.client is not None:
                await self.client.aclose()
            self.pool.shutdown(wait=True)  # parts in flight finish and are recorded
            self.audit.close()

    # -- endpoints ------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "policy": self.engine.policy.name, "deid_version": __version__}
        )

    async def store(self, request: Request) -> Response:
        request_id = secrets.token_hex(8)
        started = time.monotonic()
        route = "/studies/{study}" if "study" in request.path_params else "/studies"
        counts = ""
        try:
            response, counts = await self._store(request, request_id)
        except _HttpError as exc:
            response = PlainTextResponse(exc.message + "\n", status_code=exc.status)
            if exc.status in (408, 413):
                response.headers["Connection"] = "close"
        except ClientDisconnect:
            response = PlainTextResponse("client disconnected\n", status_code=400)
        except Exception as exc:  # a bug: its message could quote a value, so only its type
            logger.error("request %s failed: internal error (%s)", request_id, type(exc).__name__)
            response = PlainTextResponse("internal error\n", status_code=500)
        response.headers["X-Request-ID"] = request_id
        logger.info(
            "POST %s %d request %s %.0f ms%s",
            route,
            response.status_code,
            request_id,
            (time.monotonic() - started) * 1000,
            counts,
        )
        return response

    async def _store(self, request: Request, request_id: str) -> tuple[Response, str]:
        boundary = _check_media_type(request.headers.get("content-type"))
        _check_accept(request.headers.get("accept"))
        expected_study = _expected_study(self.engine, request.path_params.get("study"))
        body = await self._read_body(request)
        if not body:
            raise _HttpError(400, "empty body")
        try:
            parts = split_multipart(body, boundary, max_parts=self.limits.max_parts)
        except TooManyPartsError as exc:
            raise _HttpError(413, str(exc)) from None
        except MultipartError as exc:
            raise _HttpError(400, str(exc)) from None
        del body
        outcomes = await self._process(parts, request_id, expected_study)
        if self.forward is not None:
            await forward(self.client, self.forward, self.forward_headers, outcomes)
            self._audit_records(outcomes, request_id)
        return self._response(outcomes)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise _HttpError(400, "bad Content-Length")
            if int(declared) > limit:
                raise _HttpError(413, f"body larger than {limit} bytes")
        chunks = bytearray()
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                async for chunk in request.stream():
                    chunks += chunk
                    if len(chunks) > limit:
                        raise _HttpError(413, f"body larger than {limit} bytes")
        except TimeoutError:
            raise _HttpError(408, "the body was not received in time") from None
        return bytes(chunks)

    # -- the parts ------------------------------------------------------------------------

    async def _process(
        self, parts: list[Any], request_id: str, expected_study: set[str] | None
    ) -> list[PartOutcome]:
        loop = asyncio.get_running_loop()
        assert self.pool is not None
        outcomes: dict[int, PartOutcome] = {}
        pending: dict[asyncio.Future[PartOutcome], tuple[int, Ticket]] = {}
        for number, part in enumerate(parts, start=1):
            media = part.content_type
            if media is not None and not _is_dicom(media):
                detail = "the part's media type is not application/dicom"
                outcomes[number] = self._failed(number, RejectReason.NOT_DICOM, detail)
                continue
            try:
                payload = part_payload(part)
            except MultipartError as exc:
                outcomes[number] = self._failed(number, RejectReason.NOT_DICOM, str(exc))
                continue
            ticket = Ticket()
            future = loop.run_in_executor(
                self.pool, self._work, number, payload, request_id, expected_study, ticket
            )
            pending[future] = (number, ticket)
        if self.forward is None:  # forwarded parts are recorded once the forward is answered
            self._audit_records(list(outcomes.values()), request_id)
        if pending:
            done, late = await asyncio.wait(pending, timeout=self.limits.processing_timeout)
            for future in done:
                outcome = future.result()
                outcomes[outcome.part] = outcome
            timed_out: list[PartOutcome] = []
            for future in late:
                number, ticket = pending[future]
                if ticket.cancel():
                    record = self._record(
                        Outcome.FAILED, None, "not finished within the processing timeout"
                    )
                    outcome = PartOutcome(number, record, text="TIMEOUT")
                    timed_out.append(outcome)
                else:  # already committing: let it finish
                    outcome = await future
                outcomes[number] = outcome
            if self.forward is None:
                self._audit_records(timed_out, request_id)
        return [outcomes[n] for n in sorted(outcomes)]

    def _work(
        self,
        number: int,
        payload: bytes,
        request_id: str,
        expected_study: set[str] | None,
        ticket: Ticket,
    ) -> PartOutcome:
        """In a pool thread: de-identify one part, then store it (or keep it to forward).

        Nothing is written or recorded once the request's deadline has cancelled the part."""
        timed_out = PartOutcome(number, self._record(Outcome.FAILED, None, ""), text="TIMEOUT")
        if ticket.state == "cancelled":
            return timed_out
        try:
            result = self.engine.deidentify_bytes(payload)
        except RejectedError as exc:
            outcome = self._failed(number, exc.reason, exc.detail)
        except Exception as exc:  # a bug below us: the part is not released
            detail = f"unexpected error ({type(exc).__name__})"
            outcome = self._failed(number, RejectReason.INVALID_DATASET, detail)
        else:
            if not ticket.begin_commit():
                return timed_out
            outcome = self._release(number, result.audit, result.data, expected_study)
        if not ticket.begin_commit():
            return timed_out
        if self.forward is None:
            self._audit_records([outcome], request_id)
        return outcome

    def _release(
        self, number: int, audit: AuditRecord, data: bytes, expected_study: set[str] | None
    ) -> PartOutcome:
        sop_class = audit.sop_class_uid
        if expected_study is not None and audit.study_instance_uid not in expected_study:
            detail = "the Study Instance UID differs from the study of the request"
            return self._failed(number, RejectReason.INVALID_DATASET, detail, sop_class)
        name = output_name(audit)
        if name is None:
            detail = "a new Study, Series or SOP Instance UID is not a valid UID: no file name"
            return self._failed(number, RejectReason.MISSING_UID, detail, sop_class)
        digest = hashlib.sha256(data).hexdigest()
        if self.forward is not None:
            return PartOutcome(number, audit, name.as_posix(), digest, data)
        assert self.output is not None
        try:
            stored = write_new(self.output / name, data, self._store_lock)
        except OSError as exc:
            detail = f"cannot write output ({type(exc).__name__})"
            return self._failed(number, RejectReason.WRITE_FAILED, detail, sop_class)
        if not stored:
            detail = "another upload with the same SOP Instance UID was stored with other content"
            return self._failed(number, RejectReason.DUPLICATE_INSTANCE, detail, sop_class)
        return PartOutcome(number, audit, name.as_posix(), digest)

    def _record(self, outcome: Outcome, reason: RejectReason | None, detail: str) -> AuditRecord:
        return AuditRecord(
            outcome,
            reason,
            detail,
            policy=self.engine.policy.name,
            key_fingerprint=self.engine.pseudonymizer.fingerprint,
        )

    def _failed(
        self, number: int, reason: RejectReason, detail: str, sop_class: str = ""
    ) -> PartOutcome:
        outcome = Outcome.FAILED if reason is RejectReason.WRITE_FAILED else Outcome.REJECTED
        record = AuditRecord(
            outcome,
            reason,
            detail,
            sop_class_uid=sop_class,
            policy=self.engine.policy.name,
            key_fingerprint=self.engine.pseudonymizer.fingerprint,
        )
        return PartOutcome(number, record)

    def _audit_records(self, outcomes: list[PartOutcome], request_id: str) -> None:
        self.audit.append(
            [
                o.record.to_dict(input=f"{request_id}/{o.part}", output=o.output)
                | {"output_sha256": o.digest if o.output else None}
                for o in outcomes
            ]
        )

    # -- forwarding -----------------------------------------------------------------------

    # -- the answer -----------------------------------------------------------------------

    def _response(self, outcomes: list[PartOutcome]) -> tuple[Response, str]:
        stored: list[stow.Stored] = []
        failed: list[stow.Failed] = []
        for o in outcomes:
            r = o.record
            if o.ok:
                stored.append(
                    stow.Stored(o.part, r.sop_class_uid, r.sop_instance_uid or "", self._url(o))
                )
            else:
                text = r.reason.value if r.reason is not None else (o.text or "FAILED")
                code = stow.failure_code(r.reason)
                known = r.sop_class_uid if r.sop_class_uid in UID_dictionary else None
                failed.append(stow.Failed(o.part, code, text, known))
        studies = {o.record.study_instance_uid for o in outcomes if o.ok}
        top = None
        if self.retrieve_base is not None and self.forward is None and len(studies) == 1:
            top = f"{self.retrieve_base}/studies/{studies.pop()}"
        status = stow.http_status(len(stored), len(failed))
        body = json.dumps(stow.response_body(stored, failed, top), separators=(",", ":"))
        response = Response(body, status_code=status, media_type=stow.MEDIA_TYPE)
        return response, f" parts={len(outcomes)} stored={len(stored)} failed={len(failed)}"

    def _url(self, o: PartOutcome) -> str | None:
        if self.forward is not None:
            return o.retrieve_url  # from the downstream's answer, where it gave one
        if self.retrieve_base is None:
            return None
        r = o.record
        return (
            f"{self.retrieve_base}/studies/{r.study_instance_uid}/series/"
            f"{r.series_instance_uid}/instances/{r.sop_instance_uid}"
        )


def _is_dicom(media: str) -> bool:
    try:
        return parse_media_type(media).type == DICOM
    except MultipartError:
        return False


def _check_media_type(value: str | None) -> str:
    """The boundary of a ``multipart/related; type="application/dicom"`` body, else 415/400."""
    if not value:
        raise _HttpError(415, 'expected multipart/related; type="application/dicom"')
    try:
        media = parse_media_type(value)
    except MultipartError as exc:
        raise _HttpError(400, str(exc)) from None
    if media.type != "multipart/related":
        raise _HttpError(415, 'expected multipart/related; type="application/dicom"')
    kind = media.params.get("type")
    if kind is not None and kind.strip().lower() != DICOM:
        raise _HttpError(415, 'only type="application/dicom" parts are accepted')
    try:
        return boundary_of(media)
    except MultipartError as exc:
        raise _HttpError(400, str(exc)) from None


def _check_accept(value: str | None) -> None:
    """406 unless the client takes ``application/dicom+json`` (no Accept: it does)."""
    if not value or not value.strip():
        return
    for item in value.split(","):
        kind, _, params = item.strip().partition(";")
        quality = re.search(r"(?:^|;)\s*q\s*=\s*([0-9.]+)", params)
        if kind.strip().lower() in _ACCEPTED and not (quality and float(quality.group(1)) == 0):
            return
    raise _HttpError(406, f"the response is {stow.MEDIA_TYPE}")


def _expected_study(engine: Deidentifier, study: str | None) -> set[str] | None:
    """The new Study Instance UIDs a part of ``POST /studies/{study}`` may have: the keyed
    pseudonym of ``study`` (or ``study`` itself, for policies that keep UIDs)."""
    if study is None:
        return None
    if len(study) > 64 or _UID.fullmatch(study) is None:
        raise _HttpError(400, "the study in the path is not a UID")
    return {engine.pseudonymizer.uid(study), study}


def create_app(
    deidentifier: Deidentifier,
    output: Path | str | None = None,
    forward: str | None = None,
    *,
    limits: Limits | None = None,
    workers: int | None = None,
    retrieve_base: str | None = None,
    forward_headers: Mapping[str, str] | None = None,
    audit: Path | str | None = None,
) -> Starlette:
    """The ASGI app of the upload service.

    Parameters
    ----------
    deidentifier : Deidentifier
        The engine every part goes through (shared by the pool's threads).
    output : Path, optional
        Where de-identified objects are written (``<study>/<series>/<instance>.dcm``) and
        ``audit.jsonl`` is appended. Required unless ``forward`` is given.
    forward : str, optional
        A DICOMweb base URL: the de-identified parts of each request are sent there with one
        STOW-RS ``POST {forward}/studies`` instead of being written into ``output``.
    limits : Limits
        Body size, part count and timeouts (:class:`Limits`).
    workers : int
        Threads de-identifying parts (default: the CPU count).
    retrieve_base : str, optional
        The WADO-RS base URL under which OUTPUT is served, for Retrieve URLs in responses.
    forward_headers : mapping
        Extra headers of forwarded requests (e.g. ``Authorization``).
    audit : Path, optional
        The audit file (default ``OUTPUT/audit.jsonl``; none when forwarding without OUTPUT).
    """
    if output is None and forward is None:
        raise ValueError("give an output folder, a forward URL, or both")
    if forward is not None and not forward.startswith(("http://", "https://")):
        raise ValueError("the forward URL must be http:// or https://")
    folder = Path(output) if output is not None else None
    audit_path = Path(audit) if audit is not None else None
    if audit_path is None and folder is not None:
        audit_path = folder / AUDIT_NAME
    service = _Service(
        deidentifier,
        folder,
        forward,
        limits or Limits(),
        workers or os.cpu_count() or 1,
        retrieve_base,
        forward_headers or {},
        audit_path,
    )
    routes = [
        Route("/health", service.health, methods=["GET"]),
        Route("/studies", service.store, methods=["POST"]),
        Route("/studies/{study}", service.store, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=service.lifespan)
