"""``deid serve --output DIR``: a DICOMweb STOW-RS upload service that de-identifies everything.

``POST /studies`` and ``POST /studies/{study}`` take ``multipart/related;
type="application/dicom"`` bodies; every part is de-identified with ``--policy`` and the key, then
written into DIR as ``<study>/<series>/<instance>.dcm`` (new UIDs), or with ``--forward URL``
sent on to another DICOMweb server. ``GET /health`` answers ``{"status": "ok"}``. Every part gets
a line in ``DIR/audit.jsonl``. See :mod:`deid.server` for the response and the limits.

The key comes from ``--key-file``, ``--ephemeral-key`` or ``$DEID_KEY_FILE`` as for ``deid run``.
``$DEID_FORWARD_AUTHORIZATION``, when set, is sent as the ``Authorization`` header of forwards
(kept off the command line, where other users of the machine could read it). The service binds
``127.0.0.1`` unless ``--host`` says otherwise; put it behind a TLS-terminating reverse proxy, or
give ``--ssl-certfile`` and ``--ssl-keyfile``. Needs the ``server`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deid.cli._common import EXIT_OK, UsageError, add_key_arguments, resolve_key, say
from deid.cli.run import WORKERS_ENV, _workers
from deid.engine import Deidentifier
from deid.errors import MissingDependencyError
from deid.policy import load_policy

FORWARD_AUTH_ENV = "DEID_FORWARD_AUTHORIZATION"
_MIB = 2**20
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def add_subparser(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run a DICOMweb STOW-RS upload service")
    parser.add_argument("--output", required=True, help="folder for outputs and audit.jsonl")
    parser.add_argument("--forward", metavar="URL", help="send outputs to this DICOMweb base URL")
    parser.add_argument("--policy", default="upload", help="policy name or TOML file (upload)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (8080)")
    parser.add_argument("--workers", help=f"de-identifying threads (${WORKERS_ENV}, else CPUs)")
    parser.add_argument("--max-body-mb", type=int, default=512, help="largest body in MiB (512)")
    parser.add_argument("--max-parts", type=int, default=1000, help="most parts per body (1000)")
    parser.add_argument(
        "--body-timeout", type=float, default=120.0, help="seconds to receive a body (120)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to process one request (600)"
    )
    parser.add_argument(
        "--max-connections", type=int, default=64, help="open connections before 503 (64)"
    )
    parser.add_argument("--retrieve-base", metavar="URL", help="WADO-RS base for Retrieve URLs")
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    add_key_arguments(parser, ephemeral="this process")
    parser.set_defaults(handler=handle)


def _positive(value: float, option: str) -> None:
    if value <= 0:
        raise UsageError(f"{option} must be greater than 0")


def handle(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from deid.server import Limits, create_app
    except ImportError:
        raise MissingDependencyError("deid serve", "server") from None
    for value, option in (
        (args.max_body_mb, "--max-body-mb"),
        (args.max_parts, "--max-parts"),
        (args.body_timeout, "--body-timeout"),
        (args.timeout, "--timeout"),
        (args.max_connections, "--max-connections"),
    ):
        _positive(value, option)
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    workers = _workers(args.workers)
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{output}: cannot create the output folder ({type(exc).__name__})"
        ) from None
    engine = Deidentifier(load_policy(args.policy), resolve_key(args))
    token = os.environ.get(FORWARD_AUTH_ENV)
    headers = {"Authorization": token} if token else {}
    limits = Limits(
        max_body_bytes=args.max_body_mb * _MIB,
        max_parts=args.max_parts,
        body_timeout=args.body_timeout,
        processing_timeout=args.timeout,
    )
    try:
        app = create_app(
            engine,
            output,
            args.forward,
            limits=limits,
            workers=workers,
            retrieve_base=args.retrieve_base,
            forward_headers=headers,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,  # uvicorn's access line quotes the path, which may hold a Study UID
        server_header=False,
        limit_concurrency=args.max_connections,
        timeout_graceful_shutdown=int(args.timeout),
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    target = "forwarding to the --forward URL" if args.forward else f"writing into {output}"
    key = engine.pseudonymizer.fingerprint
    say(f"serving STOW-RS with policy {engine.policy.name!r} (key {key}), {target}")
    with _ServiceLogging():
        _server_class(uvicorn.Server)(config).run()
    say("stopped")
    return EXIT_OK


def _server_class(base: type[Any]) -> type[Any]:
    """uvicorn's Server, stopping gracefully on SIGINT and SIGTERM *without* raising the signal
    again afterwards: a service told to stop has done its job (exit 0)."""

    class _Server(base):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            saved = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in saved.items():
                    signal.signal(sig, handler)

    return _Server


class _ServiceLogging:
    """Log lines of the service and of uvicorn on stderr while it runs (restored after)."""

    names = ("deid.server", "uvicorn.error")

    def __enter__(self) -> None:
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter("deid serve: %(levelname)s %(message)s"))
        self.saved = []
        for name in self.names:
            log = logging.getLogger(name)
            self.saved.append((log, log.level, log.propagate))
            log.addHandler(self.handler)
            log.setLevel(logging.INFO)
            log.propagate = False

    def __exit__(self, *exc: object) -> None:
        for log, level, propagate in self.saved:
            log.removeHandler(self.handler)
            log.setLevel(level)
            log.propagate = propagate
