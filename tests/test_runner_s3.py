"""INPUT and OUTPUT in object storage: a real S3-compatible server (moto in server mode, on
localhost, started by the test), reached through fsspec/s3fs exactly as a real bucket is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from deid import Deidentifier, runner  # noqa: E402
from deid.cli.main import main  # noqa: E402
from deid.keys import write_key_file  # noqa: E402
from deid.storage import TEMP_PREFIX, TEMP_SUFFIX  # noqa: E402
from tests.conftest import KEY  # noqa: E402
from tests.test_runner import archive, audit, outputs  # noqa: E402


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    import s3fs

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    bucket = f"deid-{request.node.name.replace('_', '-')[:40].lower()}"
    fs.mkdir(bucket)
    fs.bucket = bucket
    return fs


def upload(fs: Any, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe_file(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


def remote_tree(fs: Any, prefix: str) -> dict[str, bytes]:
    return {key[len(prefix) + 1 :]: fs.cat_file(key) for key in sorted(fs.find(prefix))}


def test_a_bucket_to_bucket_run_equals_a_local_run(s3: Any, tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 8)
    upload(s3, src, f"{s3.bucket}/in")
    engine = Deidentifier("upload", KEY)
    local = runner.run(engine, src, tmp_path / "local")
    remote = runner.run(engine, f"s3://{s3.bucket}/in", f"s3://{s3.bucket}/out", workers=2)
    assert remote.counts == local.counts
    written = remote_tree(s3, f"{s3.bucket}/out")
    assert {k: v for k, v in written.items() if k.endswith(".dcm")} == outputs(tmp_path / "local")
    records = [json.loads(line) for line in written["audit.jsonl"].decode().splitlines()]
    assert records == audit(tmp_path / "local")
    assert not [key for key in written if key.endswith(TEMP_SUFFIX)]


def test_a_remote_run_resumes_and_cleans_temporaries(s3: Any, tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 8)
    upload(s3, src, f"{s3.bucket}/in")
    engine = Deidentifier("upload", KEY)
    runner.run(engine, src, tmp_path / "local")
    source, target = f"s3://{s3.bucket}/in", f"s3://{s3.bucket}/out"
    first = runner.run(engine, source, target, include=["p0/*"])  # a run cut short
    assert first.total == 2
    s3.pipe_file(f"{s3.bucket}/out/{TEMP_PREFIX}0123456789abcdef{TEMP_SUFFIX}", b"partial")
    rest = runner.run(engine, source, target)
    assert (rest.resumed, rest.total) == (2, 9)
    written = remote_tree(s3, f"{s3.bucket}/out")
    assert {k: v for k, v in written.items() if k.endswith(".dcm")} == outputs(tmp_path / "local")
    assert not [key for key in written if key.endswith(TEMP_SUFFIX)]
    inputs = [json.loads(line)["input"] for line in written["audit.jsonl"].decode().splitlines()]
    assert len(inputs) == len(set(inputs)) == 9


def test_the_cli_reads_and_writes_urls(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = archive(tmp_path / "in", 3)
    upload(s3, src, f"{s3.bucket}/in")
    key = write_key_file(tmp_path / "site.key", KEY)
    source, target = f"s3://{s3.bucket}/in", f"s3://{s3.bucket}/out"
    assert main(["run", source, target, "--key-file", str(key), "--quiet"]) == 0
    assert "3 de-identified, 0 rejected, 0 failed, 1 skipped" in capsys.readouterr().err
    assert len([k for k in s3.find(f"{s3.bucket}/out") if k.endswith(".dcm")]) == 3
    missing = f"s3://{s3.bucket}/nothing-here"
    assert main(["run", missing, target, "--key-file", str(key)]) == 2
    assert "input does not exist" in capsys.readouterr().err
