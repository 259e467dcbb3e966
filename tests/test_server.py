"""deid serve: the STOW-RS upload service over real HTTP on loopback (deid.server)."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed")
pytest.importorskip("uvicorn", reason="the server extra is not installed")
httpx = pytest.importorskip("httpx", reason="the server extra is not installed")

import uvicorn  # noqa: E402
from pydicom import dcmread  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from deid import Deidentifier  # noqa: E402
from deid.cli.main import main  # noqa: E402
from deid.keys import write_key_file  # noqa: E402
from deid.ocr import StaticOcr  # noqa: E402
from deid.server import Limits, create_app  # noqa: E402
from deid.server.multipart import (  # noqa: E402
    MultipartError,
    TooManyPartsError,
    parse_media_type,
    part_payload,
    split_multipart,
)
from tests.conftest import KEY  # noqa: E402
from tests.factories import (  # noqa: E402
    ACCESSION,
    BIRTH_DATE,
    FOR_UID,
    INSTITUTION,
    PATIENT_ID,
    PATIENT_NAME,
    SERIES_UID,
    SOP_UID,
    STUDY_UID,
    make_dataset,
    to_bytes,
)

BOUNDARY = "deid-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
PLANTED = (PATIENT_NAME, PATIENT_ID, BIRTH_DATE, ACCESSION, INSTITUTION)
PLANTED_UIDS = (STUDY_UID, SERIES_UID, SOP_UID, FOR_UID)
REFERENCED, FAILED = "00081199", "00081198"
CLASS_UID, INSTANCE_UID, RETRIEVE_URL = "00081150", "00081155", "00081190"
WARNING, FAILURE, COMMENT = "00081196", "00081197", "00000902"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def instance(index: int, **keywords: Any) -> bytes:
    """A small CT object with planted identifiers; its SOP Instance UID extends SOP_UID."""
    return to_bytes(make_dataset(pixels=True, SOPInstanceUID=f"{SOP_UID}.{index}", **keywords))


def multipart(*parts: bytes, boundary: str = BOUNDARY, media: str = "application/dicom") -> bytes:
    chunks = [
        f"--{boundary}\r\nContent-Type: {media}\r\n\r\n".encode() + p + b"\r\n" for p in parts
    ]
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def engine(**kwargs: Any) -> Deidentifier:
    return Deidentifier("upload", KEY, ocr=StaticOcr(), prescreen=False, **kwargs)


class Serving:
    """An ASGI app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Starlette) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def url(out: Path) -> Iterator[str]:
    with Serving(create_app(engine(), out, workers=4)) as base:
        yield base


def post(url: str, body: bytes, content_type: str = CONTENT_TYPE, **headers: str) -> Any:
    return httpx.post(
        f"{url}/studies", content=body, headers={"Content-Type": content_type, **headers}
    )


def audit(out: Path) -> list[dict[str, Any]]:
    lines = (out / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def stored_files(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list(body.get(tag, {}).get("Value", []))


def value(item: dict[str, Any], tag: str) -> Any:
    return item[tag]["Value"][0]


def assert_no_identifier(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED + PLANTED_UIDS:
            assert planted not in text


def assert_clean_outputs(out: Path, reply: Any) -> None:
    """No planted identifier in the response, its headers, the audit, file names or files."""
    headers = "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
    names = "\n".join(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert_no_identifier(reply.text, headers, (out / "audit.jsonl").read_text(), names)
    for path in stored_files(out):
        data = path.read_bytes()
        for planted in PLANTED + PLANTED_UIDS:
            assert planted.encode() not in data


# -- uploads ------------------------------------------------------------------------------------


def test_a_single_instance_is_stored_under_its_new_uids(url: str, out: Path) -> None:
    reply = post(url, multipart(instance(1)))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/dicom+json"
    body = reply.json()
    assert list(body) == [REFERENCED]
    [item] = items(body, REFERENCED)
    assert list(item) == [CLASS_UID, INSTANCE_UID, WARNING]
    assert value(item, CLASS_UID) == CT_IMAGE
    assert value(item, WARNING) == 0xB000  # coercion: de-identification changed the object
    [path] = stored_files(out)
    ds = dcmread(path)
    assert path.relative_to(out).as_posix() == (
        f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    )
    assert ds.SOPInstanceUID == value(item, INSTANCE_UID)
    assert ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) != PATIENT_NAME
    [record] = audit(out)
    assert record["input"] == f"{reply.headers['x-request-id']}/1"
    assert record["output"] == path.relative_to(out).as_posix()
    assert record["outcome"] == "deidentified"
    assert record["sop_instance_uid"] == ds.SOPInstanceUID
    assert_clean_outputs(out, reply)


def test_several_instances_in_one_body(url: str, out: Path) -> None:
    reply = post(url, multipart(*(instance(i) for i in range(5))))
    assert reply.status_code == 200
    uids = [value(i, INSTANCE_UID) for i in items(reply.json(), REFERENCED)]
    assert len(set(uids)) == 5
    assert sorted(p.stem for p in stored_files(out)) == sorted(uids)
    assert [r["input"].rsplit("/", 1)[1] for r in sorted(audit(out), key=lambda r: r["input"])] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    assert_clean_outputs(out, reply)


def test_mixed_accepted_and_rejected_parts_answer_202(url: str, out: Path) -> None:
    good = [instance(i) for i in range(3)]
    truncated = instance(9)[:-100]
    body = (
        multipart(good[0], truncated, good[1], b"%PDF-1.4 not an image at all", good[2])[
            : -len(f"--{BOUNDARY}--\r\n")
        ]
        + f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\n".encode()
        + instance(8)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    reply = post(url, body)
    assert reply.status_code == 202
    body_json = reply.json()
    assert list(body_json) == [FAILED, REFERENCED]
    failed = items(body_json, FAILED)
    assert [value(f, COMMENT) for f in failed] == [
        "part 2: TRUNCATED",
        "part 4: NOT_DICOM",
        "part 6: NOT_DICOM",
    ]
    assert [value(f, FAILURE) for f in failed] == [0xC000, 0xC000, 0xC000]
    assert all(INSTANCE_UID not in f for f in failed)  # the uploaded UID is never echoed
    assert len(items(body_json, REFERENCED)) == 3
    assert len(stored_files(out)) == 3
    records = {r["input"].rsplit("/", 1)[1]: r for r in audit(out)}
    assert sorted(records) == ["1", "2", "3", "4", "5", "6"]
    assert [records[n]["outcome"] for n in "123456"] == [
        "deidentified",
        "rejected",
        "deidentified",
        "rejected",
        "deidentified",
        "rejected",
    ]
    assert [records[n]["reason"] for n in "246"] == ["TRUNCATED", "NOT_DICOM", "NOT_DICOM"]
    assert_clean_outputs(out, reply)


def test_nothing_stored_answers_409(url: str, out: Path) -> None:
    reply = post(url, multipart(b"", b"not dicom" * 10))
    assert reply.status_code == 409
    body = reply.json()
    assert list(body) == [FAILED]
    assert [value(f, COMMENT) for f in items(body, FAILED)] == [
        "part 1: NOT_DICOM",
        "part 2: NOT_DICOM",
    ]
    assert stored_files(out) == []
    assert [r["outcome"] for r in audit(out)] == ["rejected", "rejected"]


def test_an_unsupported_sop_class_fails_with_its_standard_class_uid(url: str, out: Path) -> None:
    pdf = make_dataset(sop_class="1.2.840.10008.5.1.4.1.1.104.1")  # Encapsulated PDF
    reply = post(url, multipart(to_bytes(pdf)))
    assert reply.status_code == 409
    [failed] = items(reply.json(), FAILED)
    assert value(failed, FAILURE) == 0x0122
    assert value(failed, COMMENT) == "part 1: UNSUPPORTED_SOP_CLASS"


def test_uploading_the_same_instance_again_is_idempotent(url: str, out: Path) -> None:
    first = post(url, multipart(instance(1)))
    again = post(url, multipart(instance(1)))
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == again.json()
    assert len(stored_files(out)) == 1
    other = post(url, multipart(instance(1, StudyDescription="ANOTHER")))
    assert other.status_code == 409
    [failed] = items(other.json(), FAILED)
    assert value(failed, FAILURE) == 0x0111
    assert value(failed, COMMENT) == "part 1: DUPLICATE_INSTANCE"
    assert value(failed, CLASS_UID) == CT_IMAGE  # a standard SOP Class UID is no identifier
    assert len(stored_files(out)) == 1


def test_post_to_a_study_checks_each_instance_against_it(url: str, out: Path) -> None:
    reply = httpx.post(
        f"{url}/studies/{STUDY_UID}",
        content=multipart(instance(1), instance(2, StudyInstanceUID=STUDY_UID + ".9")),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert reply.status_code == 202
    [failed] = items(reply.json(), FAILED)
    assert value(failed, COMMENT) == "part 2: INVALID_DATASET"
    assert value(failed, FAILURE) == 0xC000
    assert len(items(reply.json(), REFERENCED)) == 1
    assert len(stored_files(out)) == 1
    assert_clean_outputs(out, reply)


def test_retrieve_urls_are_given_under_a_configured_base(out: Path) -> None:
    app = create_app(engine(), out, retrieve_base="https://wado.example/dicom-web/")
    with Serving(app) as base:
        reply = post(base, multipart(instance(1), instance(2)))
    assert reply.status_code == 200
    body = reply.json()
    ds = dcmread(stored_files(out)[0])
    assert value(body, RETRIEVE_URL) == (
        f"https://wado.example/dicom-web/studies/{ds.StudyInstanceUID}"
    )
    for item in items(body, REFERENCED):
        uid = value(item, INSTANCE_UID)
        assert value(item, RETRIEVE_URL) == (
            f"https://wado.example/dicom-web/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/instances/{uid}"
        )


def test_the_health_endpoint(url: str) -> None:
    reply = httpx.get(f"{url}/health")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok"
    assert reply.json()["policy"] == "upload"


# -- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        pytest.param("", multipart(b"x"), 415, id="no-content-type"),
        pytest.param("application/dicom", b"x" * 200, 415, id="bare-dicom"),
        pytest.param(
            f'multipart/form-data; boundary="{BOUNDARY}"', multipart(b"x"), 415, id="form-data"
        ),
        pytest.param(
            f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
            multipart(b"{}"),
            415,
            id="json-metadata",
        ),
        pytest.param('multipart/related; type="application/dicom"', b"x", 400, id="no-boundary"),
        pytest.param(
            'multipart/related; type="application/dicom"; boundary="a\x01b"',
            b"x",
            400,
            id="bad-boundary",
        ),
        pytest.param("multipart/related; boundary", b"x", 400, id="malformed-params"),
        pytest.param(CONTENT_TYPE, b"", 400, id="empty-body"),
        pytest.param(CONTENT_TYPE, b"no delimiter here", 400, id="no-delimiter"),
        pytest.param(CONTENT_TYPE, multipart(b"abc")[:-30], 400, id="no-close-delimiter"),
        pytest.param(CONTENT_TYPE, f"--{BOUNDARY}--\r\n".encode(), 400, id="no-parts"),
    ],
)
def test_bad_requests(url: str, out: Path, content_type: str, body: bytes, status: int) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    reply = httpx.post(f"{url}/studies", content=body, headers=headers)
    assert reply.status_code == status
    assert stored_files(out) == []
    assert audit(out) == []


def test_other_bad_requests(url: str, out: Path) -> None:
    assert post(url, multipart(instance(1)), Accept="application/dicom+xml").status_code == 406
    assert post(url, multipart(instance(1)), Accept="application/*").status_code == 200
    assert httpx.get(f"{url}/studies").status_code == 405
    bad_study = httpx.post(
        f"{url}/studies/not-a-uid",
        content=multipart(instance(1)),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert bad_study.status_code == 400
    assert "not-a-uid" not in bad_study.text


def test_body_size_and_part_limits(out: Path) -> None:
    limits = Limits(max_body_bytes=40_000, max_parts=3)
    with Serving(create_app(engine(), out, limits=limits)) as base:
        one = instance(1)
        assert post(base, multipart(one)).status_code == 200
        big = multipart(*(instance(i) for i in range(2, 40)))
        assert len(big) > 40_000
        assert post(base, big).status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
            yield big

        reply = httpx.post(
            f"{base}/studies", content=chunked(), headers={"Content-Type": CONTENT_TYPE}
        )
        assert reply.status_code == 413
        four = multipart(b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10)
        assert post(base, four).status_code == 413
    assert len(stored_files(out)) == 1
    assert len(audit(out)) == 1


def test_a_body_not_received_in_time_answers_408(out: Path) -> None:
    with Serving(create_app(engine(), out, limits=Limits(body_timeout=0.3))) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            head = (
                f"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {CONTENT_TYPE}\r\n"
                "Content-Length: 1000\r\n\r\n"
            )
            conn.sendall(head.encode() + b"--" + BOUNDARY.encode())
            answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 ")


class SlowEngine(Deidentifier):
    def deidentify_bytes(self, data: bytes) -> Any:
        time.sleep(0.6)
        return super().deidentify_bytes(data)


def test_parts_not_done_within_the_processing_timeout_fail_and_are_not_written(
    out: Path,
) -> None:
    slow = SlowEngine("upload", KEY, ocr=StaticOcr(), prescreen=False)
    with Serving(create_app(slow, out, limits=Limits(processing_timeout=0.2))) as base:
        reply = post(base, multipart(instance(1)))
        time.sleep(0.8)  # the worker finishes, sees the cancelled ticket, writes nothing
    assert reply.status_code == 409
    [failed] = items(reply.json(), FAILED)
    assert value(failed, COMMENT) == "part 1: TIMEOUT"
    assert value(failed, FAILURE) == 0x0110
    assert stored_files(out) == []
    [record] = audit(out)
    assert (record["outcome"], record["reason"]) == ("failed", None)


# -- concurrency --------------------------------------------------------------------------------


def test_concurrent_uploads_lose_nothing(url: str, out: Path) -> None:
    def client(c: int) -> tuple[int, int, int]:
        parts = [instance(c * 100 + i) for i in range(10)]
        parts[c % 10] = parts[c % 10][:-50]  # one truncated part per client
        reply = post(url, multipart(*parts))
        body = reply.json()
        return reply.status_code, len(items(body, REFERENCED)), len(items(body, FAILED))

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    assert results == [(202, 9, 1)] * 8
    assert len(stored_files(out)) == 72
    records = audit(out)
    assert len(records) == 80
    assert sum(r["outcome"] == "deidentified" for r in records) == 72
    assert len({r["input"] for r in records}) == 80
    assert {r["output"] for r in records if r["output"]} == {
        p.relative_to(out).as_posix() for p in stored_files(out)
    }


# -- forwarding ---------------------------------------------------------------------------------


class Downstream:
    """A stand-in DICOMweb server: keeps what it receives; refuses the second instance."""

    def __init__(self, refuse_second: bool) -> None:
        self.received: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.refuse_second = refuse_second
        self.app = Starlette(routes=[Route("/dicom-web/studies", self.stow, methods=["POST"])])

    async def stow(self, request: Request) -> Response:
        media = parse_media_type(request.headers["content-type"])
        parts = split_multipart(await request.body(), media.params["boundary"], max_parts=100)
        uids = [str(dcmread(io.BytesIO(p.content)).SOPInstanceUID) for p in parts]
        self.received += [p.content for p in parts]
        self.headers.append(dict(request.headers))
        ok = [u for n, u in enumerate(uids) if not (self.refuse_second and n == 1)]
        body: dict[str, Any] = {
            REFERENCED: {
                "vr": "SQ",
                "Value": [
                    {
                        INSTANCE_UID: {"vr": "UI", "Value": [u]},
                        RETRIEVE_URL: {"vr": "UR", "Value": [f"https://pacs.example/{u}"]},
                    }
                    for u in ok
                ],
            }
        }
        if self.refuse_second:
            body[FAILED] = {
                "vr": "SQ",
                "Value": [{INSTANCE_UID: {"vr": "UI", "Value": [uids[1]]}, FAILURE: 0xA700}],
            }
        return JSONResponse(body, status_code=202 if self.refuse_second else 200)


@pytest.mark.parametrize("refuse_second", [False, True], ids=["all-stored", "one-refused"])
def test_forwarding_to_a_dicomweb_server(out: Path, refuse_second: bool) -> None:
    downstream = Downstream(refuse_second)
    with Serving(downstream.app) as target:
        app = create_app(
            engine(),
            out,
            forward=f"{target}/dicom-web/",
            forward_headers={"Authorization": "Bearer test-token"},
        )
        with Serving(app) as base:
            reply = post(base, multipart(instance(1), instance(2), b"junk" * 10))
    assert reply.status_code == 202
    body = reply.json()
    assert len(downstream.received) == 2
    assert downstream.headers[0]["authorization"] == "Bearer test-token"
    for data in downstream.received:
        for planted in PLANTED + PLANTED_UIDS:
            assert planted.encode() not in data
    sent = [str(dcmread(io.BytesIO(d)).SOPInstanceUID) for d in downstream.received]
    stored = items(body, REFERENCED)
    comments = [value(f, COMMENT) for f in items(body, FAILED)]
    if refuse_second:
        assert [value(i, INSTANCE_UID) for i in stored] == [sent[0]]
        assert comments == ["part 2: WRITE_FAILED", "part 3: NOT_DICOM"]
    else:
        assert [value(i, INSTANCE_UID) for i in stored] == sent
        assert comments == ["part 3: NOT_DICOM"]
    assert [value(i, RETRIEVE_URL) for i in stored] == [
        f"https://pacs.example/{value(i, INSTANCE_UID)}" for i in stored
    ]
    assert stored_files(out) == []  # forwarded, not kept
    outcomes = [r["outcome"] for r in sorted(audit(out), key=lambda r: r["input"])]
    assert outcomes == (
        ["deidentified", "failed", "rejected"]
        if refuse_second
        else ["deidentified", "deidentified", "rejected"]
    )
    assert_clean_outputs(out, reply)


def test_an_unreachable_forward_target_fails_every_instance(out: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Serving(create_app(engine(), out, forward=f"http://127.0.0.1:{port}")) as base:
        reply = post(base, multipart(instance(1), instance(2)))
    assert reply.status_code == 409
    assert [value(f, COMMENT) for f in items(reply.json(), FAILED)] == [
        "part 1: WRITE_FAILED",
        "part 2: WRITE_FAILED",
    ]
    assert [r["detail"] for r in audit(out)] == ["forward failed (ConnectError)"] * 2


# -- logs ---------------------------------------------------------------------------------------


def test_log_lines_carry_no_identifier(out: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Serving(create_app(engine(), out)) as base:
        post(base, multipart(instance(1), instance(2)[:-30]))
        httpx.post(
            f"{base}/studies/{STUDY_UID}",
            content=multipart(instance(3)),
            headers={"Content-Type": CONTENT_TYPE},
        )
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("deid", "uvicorn"))]
    assert any(line.startswith("POST /studies/{study} 200 ") for line in lines)
    assert_no_identifier(*lines)


# -- the multipart parser -----------------------------------------------------------------------


def test_media_type_parameters() -> None:
    media = parse_media_type(
        'Multipart/Related ; Type="application/dicom"; BOUNDARY="a b\\"c"; start=x;'
    )
    assert media.type == "multipart/related"
    assert media.params == {"type": "application/dicom", "boundary": 'a b"c', "start": "x"}
    assert parse_media_type("multipart/related; type=application/dicom").params == {
        "type": "application/dicom"
    }
    for bad in ("", "multipart", 'multipart/related; boundary="open', "a/b; =x", "a/b x"):
        with pytest.raises(MultipartError):
            parse_media_type(bad)


def test_multipart_edge_cases() -> None:
    body = (
        b"preamble to ignore\r\n--b \t\r\n"  # transport padding after the delimiter
        b"Content-Type: application/dicom;\r\n transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n"
        b"one\r\n--bx is not a delimiter\r\n"  # the boundary followed by other characters
        b"\r\n--b\n"  # a bare LF
        b"\nno headers\n"
        b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(b"\x00\x01")
        + b"\r\n"
        b"--b--\r\nepilogue"
    )
    parts = split_multipart(body, "b", max_parts=10)
    assert [p.content for p in parts[:2]] == [b"one\r\n--bx is not a delimiter\r\n", b"no headers"]
    assert parts[0].headers == {
        "content-type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    }
    assert parts[1].headers == {}
    assert part_payload(parts[2]) == b"\x00\x01"
    with pytest.raises(TooManyPartsError):
        split_multipart(body, "b", max_parts=2)
    with pytest.raises(MultipartError, match="closing delimiter"):
        split_multipart(b"--b\r\n\r\ncontent", "b", max_parts=10)


# -- the command line ---------------------------------------------------------------------------


def test_serve_without_the_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code = main(["serve", "--output", str(tmp_path / "o"), "--ephemeral-key"])
    assert code == 2
    assert "pip install 'deid-dicom[server]'" in capsys.readouterr().err


def test_serve_refuses_bad_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--output", str(tmp_path / "o"), "--ephemeral-key", "--max-parts", "0"])
    assert code == 2
    assert "--max-parts must be greater than 0" in capsys.readouterr().err


def test_deid_serve_end_to_end(tmp_path: Path) -> None:
    key = write_key_file(tmp_path / "key")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "deid", "serve", "--key-file", str(key), "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--output", str(out), "--workers", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        base = None
        assert proc.stderr is not None
        for line in proc.stderr:
            if "running on http://" in line:
                base = line.split("running on ", 1)[1].split()[0]
                break
        assert base is not None
        reply = post(base, multipart(instance(1)))
        assert reply.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert len(stored_files(out)) == 1
    assert_no_identifier(rest)


def test_import_deid_and_the_cli_load_no_server_dependency() -> None:
    code = (
        "import sys, deid, deid.cli.main as m; m.build_parser();"
        "print(sorted({'starlette','uvicorn','httpx','deid.server'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
