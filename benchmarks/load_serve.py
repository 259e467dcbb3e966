"""Load test of ``deid serve``: concurrent STOW-RS uploads of synthetic CT instances.

The service runs as ``deid serve`` in its own process on loopback (a fresh output folder per
scenario); this process drives it with ``--clients`` threads, each posting
``multipart/related; type="application/dicom"`` bodies of ``--per-request`` instances
(``httpx``). Every ``--reject-every``-th instance is cut short, so the service rejects it
(``TRUNCATED``): both outcomes are exercised. For every scenario:

- **instances/s** = instances / wall seconds (first request sent to last answer received), and
  MB/s of uploaded DICOM bytes;
- **latency** p50 / p95 / p99 of whole requests (ms);
- **nothing lost**: the responses' Referenced + Failed SOP Sequence items, the ``.dcm`` files in
  the output folder and the lines of ``audit.jsonl`` must all add up: instances in = stored +
  rejected, files = stored, audit lines = instances (+ the warm-up request);
- **ratio** = service instances/s ÷ an in-process baseline measured in the same run: the same
  instances through ``Deidentifier.deidentify_bytes`` and an atomic file write, in a thread
  pool of the same size as the service's.

Usage::

    .venv/bin/python benchmarks/load_serve.py [--instances N] [--clients C]
        [--per-request K [K ...]] [--reject-every M] [--workers W] [--policy P] [--json FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydicom.filewriter import dcmwrite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import ct_series

BOUNDARY = "deid-load-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@dataclass
class Result:
    scenario: str
    instances: int
    clients: int
    per_request: int
    requests: int
    seconds: float
    per_second: float
    mb_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    stored: int
    rejected: int
    files: int
    audit_lines: int
    lost: int
    statuses: dict[str, int]


def make_instances(count: int, size: int, reject_every: int, seed: int) -> list[bytes]:
    """``count`` synthetic CT slices as Part 10 bytes; every ``reject_every``-th truncated."""
    rng = random.Random(f"load:{seed}")
    out = []
    for index, ds in enumerate(ct_series(count, size, rng)):
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        data = buffer.getvalue()
        if reject_every and index % reject_every == reject_every - 1:
            data = data[: len(data) // 2]
        out.append(data)
    return out


def body_of(parts: list[bytes]) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return b"".join(head + p + b"\r\n" for p in parts) + f"--{BOUNDARY}--\r\n".encode()


class Service:
    """``deid serve`` in a child process on a free loopback port."""

    def __init__(self, key: Path, output: Path, workers: int, policy: str) -> None:
        command = [sys.executable, "-m", "deid", "serve", "--key-file", str(key)]
        command += ["--output", str(output), "--port", "0", "--workers", str(workers)]
        command += ["--policy", policy, "--max-connections", "1024"]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = self._wait_for_url()
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_url(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "running on http://" in line:
                return line.split("running on ", 1)[1].split()[0]
        raise RuntimeError("deid serve did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def drive(url: str, batches: list[list[bytes]], clients: int) -> tuple[float, list[float], list]:
    """Post every batch with ``clients`` threads; wall seconds, latencies, replies."""
    import httpx

    local = threading.local()

    def one(batch: list[bytes]) -> tuple[float, int, int, int]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
        body = body_of(batch)
        started = time.perf_counter()
        reply = local.client.post(
            f"{url}/studies", content=body, headers={"Content-Type": CONTENT_TYPE}
        )
        elapsed = time.perf_counter() - started
        data = reply.json()
        stored = len(data.get("00081199", {}).get("Value", []))
        failed = len(data.get("00081198", {}).get("Value", []))
        return elapsed, reply.status_code, stored, failed

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        replies = list(pool.map(one, batches))
    wall = time.perf_counter() - started
    return wall, [r[0] for r in replies], replies


def in_process(instances: list[bytes], workers: int, policy: str, key: Path, out: Path) -> float:
    """The baseline: de-identify and write atomically in a thread pool, no HTTP."""
    from deid import Deidentifier, Pseudonymizer
    from deid.engine import write_atomic
    from deid.errors import RejectedError
    from deid.runner import output_name

    engine = Deidentifier(policy, Pseudonymizer.from_file(key))
    engine.deidentify_bytes(instances[0])  # warm-up (plan cache, imports)

    def one(data: bytes) -> None:
        try:
            result = engine.deidentify_bytes(data)
        except RejectedError:
            return
        name = output_name(result.audit)
        assert name is not None
        write_atomic(out / name, result.data)

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, instances))
    return len(instances) / (time.perf_counter() - started)


def scenario(
    name: str,
    instances: list[bytes],
    per_request: int,
    clients: int,
    workers: int,
    policy: str,
    key: Path,
    work: Path,
) -> Result:
    output = work / f"out-{name}"
    service = Service(key, output, workers, policy)
    try:
        warm = drive(service.url, [[instances[0]]], 1)[2][0]
        assert warm[1] == 200, "the warm-up upload was not stored"
        batches = [instances[i : i + per_request] for i in range(0, len(instances), per_request)]
        wall, latencies, replies = drive(service.url, batches, clients)
    finally:
        service.stop()
    stored = sum(r[2] for r in replies)
    rejected = sum(r[3] for r in replies)
    files = sum(1 for _ in output.rglob("*.dcm"))
    audit_lines = len((output / "audit.jsonl").read_text().splitlines()) - 1  # minus warm-up
    statuses: dict[str, int] = {}
    for r in replies:
        statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
    lost = len(instances) - (stored + rejected)
    lost += abs(files - stored) + abs(audit_lines - len(instances))
    ms = np.array(latencies) * 1000
    size = sum(len(d) for d in instances)
    return Result(
        name,
        len(instances),
        clients,
        per_request,
        len(batches),
        wall,
        len(instances) / wall,
        size / 1e6 / wall,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 95)),
        float(np.percentile(ms, 99)),
        stored,
        rejected,
        files,
        audit_lines,
        lost,
        statuses,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--instances", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-request", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--reject-every", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", type=int, default=512, help="CT rows and columns (512)")
    parser.add_argument("--policy", default="upload")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    instances = make_instances(args.instances, args.size, args.reject_every, seed=0)
    expected_rejects = args.instances // args.reject_every if args.reject_every else 0
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="deid-load-") as tmp:
        work = Path(tmp)
        from deid.keys import write_key_file

        key = write_key_file(work / "key")
        baseline_out = work / "baseline"
        baseline = in_process(instances, args.workers, args.policy, key, baseline_out)
        for k in args.per_request:
            name = f"{k}-per-request"
            results.append(
                scenario(name, instances, k, args.clients, args.workers, args.policy, key, work)
            )

    mb = sum(len(d) for d in instances) / 1e6
    print(
        f"{args.instances} CT instances ({args.size}x{args.size}, {mb:.0f} MB, "
        f"{expected_rejects} truncated), {args.clients} clients, {args.workers} service threads; "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print()
    print(
        "| Parts/request | Requests | Wall s | instances/s | MB/s | p50 ms | p95 ms | p99 ms "
        "| Stored | Rejected | Files | Audit | Lost | HTTP | Ratio to in-process |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        http = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()))
        print(
            f"| {r.per_request} | {r.requests} | {r.seconds:.2f} | {r.per_second:.1f} "
            f"| {r.mb_per_second:.1f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} "
            f"| {r.stored} | {r.rejected} | {r.files} | {r.audit_lines} | {r.lost} | {http} "
            f"| **{r.per_second / baseline:.2f}** |"
        )
    print(f"| in-process baseline | - | - | {baseline:.1f} | | | | | | | | | | | 1.00 |")
    if args.json:
        payload = {"baseline_per_second": baseline, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2))
    bad = [r for r in results if r.lost or r.rejected != expected_rejects]
    if bad:
        print(f"LOST OR MISCOUNTED: {[r.scenario for r in bad]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
