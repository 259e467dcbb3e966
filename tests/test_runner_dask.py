"""deid run on a Dask cluster (a LocalCluster of 2 worker processes): byte-identical outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster

from deid import Deidentifier, runner
from deid.cli.main import main
from deid.keys import write_key_file
from tests.conftest import KEY
from tests.test_runner import archive, audit, outputs


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


def test_a_cluster_run_is_byte_identical_to_a_local_run(cluster: Any, tmp_path: Path) -> None:
    src = archive(tmp_path / "in", 10)
    (src / "p0" / "cut.dcm").write_bytes((src / "p0" / "s0" / "0000.dcm").read_bytes()[:-40])
    engine = Deidentifier("upload", KEY)
    with Client(cluster) as client:
        on_cluster = runner.run(engine, src, tmp_path / "dask", client=client)
    local = runner.run(engine, src, tmp_path / "local")
    assert on_cluster.counts == local.counts
    assert on_cluster.total == 12
    assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")
    assert audit(tmp_path / "dask") == audit(tmp_path / "local")


def test_the_cli_sends_the_work_to_a_scheduler(
    cluster: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = archive(tmp_path / "in", 4)
    key = write_key_file(tmp_path / "site.key", KEY)
    argv = ["run", str(src), str(tmp_path / "out"), "--key-file", str(key), "--quiet"]
    code = main([*argv, "--executor", "dask", "--scheduler", cluster.scheduler_address])
    assert code == 0
    assert "4 de-identified, 0 rejected, 0 failed, 1 skipped" in capsys.readouterr().err
    assert len(outputs(tmp_path / "out")) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--executor", "dask"], "--executor dask needs --scheduler"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    ],
)
def test_executor_flags_are_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    src = archive(tmp_path / "in", 1)
    key = write_key_file(tmp_path / "site.key", KEY)
    code = main(["run", str(src), str(tmp_path / "out"), "--key-file", str(key), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
