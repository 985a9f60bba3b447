"""The command line: serve | worker | migrate | create-admin | create-key.

Bad arguments exit 2 with argparse's usage message; an action that fails exits 1 with one line
saying why. Every command reads the same settings as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ouipost import api_keys, users
from ouipost.bootstrap import StartupError, first_start, first_start_banner, prepare_database
from ouipost.clock import Clock, isoformat
from ouipost.config import Settings, SettingsError, load_settings
from ouipost.db.engine import create_engine
from ouipost.db.migrations import MigrationError, upgrade
from ouipost.logs import configure_logging
from ouipost.server import run_app
from ouipost.web import AccessLogger


class CommandFailed(Exception):
    """The action failed for a reason the user can act on (exit 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Oui Post: social media publishing API")
    sub = parser.add_subparsers(dest="command", metavar="{serve,worker,migrate,create-admin,create-key}")

    serve = sub.add_parser("serve", help="serve the API, admin API, admin UI and media (default)")
    _serve_options(serve)

    worker = sub.add_parser("worker", help="run a standalone worker process (SIGTERM/SIGINT stop it gracefully)")
    worker.add_argument("--concurrency", type=_positive_int, default=4, help="jobs run at once (default 4)")
    worker.add_argument("--queues", default="", help="comma-separated queues to take jobs from (default: all)")
    worker.add_argument("--batch-size", type=_positive_int, default=50, help="most jobs claimed at once (default 50)")
    worker.add_argument("--lease-seconds", type=_positive_float, default=30.0,
                        help="how long a dead worker's jobs wait before another takes them (default 30)")
    worker.add_argument("--poll-interval", type=_positive_float, default=1.0,
                        help="seconds an idle worker sleeps between looks for due jobs (default 1)")
    worker.add_argument("--grace-seconds", type=_positive_float, default=8.0,
                        help="on stop, how long running jobs may finish before they are released (default 8)")
    worker.add_argument("--metrics-port", type=_port, help="also serve GET /metrics on this port (for hosts "
                        "without an API process; OUIPOST_METRICS_TOKEN applies)")
    worker.add_argument("--metrics-host", default="127.0.0.1", help="interface of --metrics-port (default 127.0.0.1)")

    sub.add_parser("migrate", help="apply pending database migrations")

    admin = sub.add_parser("create-admin", help="create an admin user")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True, help=f"at least {users.MIN_PASSWORD_LENGTH} characters")
    admin.add_argument("--name", default="Administrator")
    admin.add_argument("--role", default="admin", choices=users.ROLES)

    key = sub.add_parser("create-key", help="create an API key and print it once")
    key.add_argument("--name", required=True)
    key.add_argument("--tier", default="starter", help="rate-limit tier (default starter)")
    key.add_argument("--workspace", action="append", default=[], metavar="WS_ID",
                     help="a workspace the key may reach (repeatable)")
    key.add_argument("--permission", action="append", choices=api_keys.PERMISSIONS, metavar="PERMISSION",
                     help="grant only these permissions (repeatable; default: all)")
    key.add_argument("--json", action="store_true", help="print the whole record as JSON")
    return parser


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (OUIPOST_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="port to listen on (OUIPOST_PORT, default 8080)")
    parser.add_argument("--no-workers", action="store_true", help="do not run embedded workers")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def _port(value: str) -> int:
    number = _positive_int(value)
    if number > 65535:
        raise argparse.ArgumentTypeError("must be between 1 and 65535")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # `run.py` and `run.py --port 9000` mean serve
    args = parser.parse_args(argv)
    if args.command == "create-admin":
        if not users.is_valid_email(args.email):
            parser.error(f"--email: {args.email!r} is not an e-mail address")
        if len(args.password) < users.MIN_PASSWORD_LENGTH:
            parser.error(f"--password: use at least {users.MIN_PASSWORD_LENGTH} characters")
    try:
        overrides: dict[str, Any] = {}
        if args.command == "serve":
            overrides = {"host": args.host, "port": args.port}
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
        if args.command == "create-key" and args.tier not in settings.rate_limits:
            parser.error(f"--tier: choose from {', '.join(settings.rate_limits)}")
        configure_logging(settings.log_level, settings.log_format)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step is noise
        if args.command in ("serve", "worker"):
            _share_metrics(settings)
        handler = {
            "serve": serve, "worker": worker, "migrate": migrate,
            "create-admin": create_admin, "create-key": create_key,
        }[args.command]
        return handler(settings, args)
    except (SettingsError, StartupError, MigrationError, CommandFailed) as exc:
        print(f"run.py {args.command}: {exc}", file=sys.stderr)
        return 1


def _share_metrics(settings: Settings) -> None:
    """Counters in the host's shared metrics directory, so that one scrape adds up every process."""
    from ouipost.metrics import setup_multiprocess

    directory = settings.metrics_dir or settings.data_dir / "metrics"
    try:
        setup_multiprocess(directory)
    except OSError as exc:
        raise CommandFailed(f"cannot use the metrics directory {directory}: {exc.strerror or exc}; "
                            "check OUIPOST_METRICS_DIR") from None


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from ouipost.app import create_app

    async def prepare() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            await prepare_database(engine, settings)
            info = await first_start(engine, Clock())
        finally:
            await engine.dispose()
        return first_start_banner(info, settings.public_url) if info else None

    banner = asyncio.run(prepare())
    if args.no_workers:
        settings = settings.with_overrides(workers=0)
    app = create_app(settings)
    print(f"Oui Post listening on {settings.public_url} (database: {_db_kind(settings)}, "
          f"sandbox: {'on' if settings.sandbox else 'off'})", flush=True)
    if settings.sandbox and not _is_loopback(settings.host):
        warning = (
            f"WARNING: sandbox mode is on and the server listens on {settings.host}, not only on this machine: "
            "every network is imitated, nothing reaches a real one. Set network credentials (or "
            "OUIPOST_SANDBOX=0) for real use, or listen on 127.0.0.1."
        )
        logging.getLogger("ouipost").warning(warning)
        print(warning, file=sys.stderr, flush=True)
    if banner:
        print(banner, flush=True)
    # ouipost.server.run_app: aiohttp's run_app with protocol errors answered in the JSON envelope.
    run_app(
        app, host=settings.host, port=settings.port,
        access_log_class=AccessLogger, access_log=logging.getLogger("ouipost.access"),
    )
    return 0


def _is_loopback(host: str) -> bool:
    """Whether `host` (an address or name to listen on) reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another name: it may resolve to any interface


def worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the worker loop until SIGTERM/SIGINT, then finish or release running jobs and exit 0."""
    import aiohttp

    from ouipost import __version__
    from workers.registry import load_handlers
    from workers.worker import Worker

    try:
        handlers = load_handlers()
    except (ImportError, ValueError) as exc:
        raise CommandFailed(str(exc)) from exc
    queues = [name.strip() for name in args.queues.split(",") if name.strip()] or None

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await prepare_database(engine, settings)
            async with aiohttp.ClientSession(headers={"User-Agent": f"OuiPost/{__version__}"}) as http:
                job_worker = Worker(
                    engine, handlers, queues=queues, concurrency=args.concurrency, clock=Clock(),
                    settings=settings, http=http, batch_size=args.batch_size, lease_seconds=args.lease_seconds,
                    poll_interval=args.poll_interval, grace_seconds=args.grace_seconds,
                )
                for signum in (signal.SIGTERM, signal.SIGINT):
                    asyncio.get_running_loop().add_signal_handler(signum, job_worker.stop)
                print(f"Oui Post worker {job_worker.id} running (database: {_db_kind(settings)}, concurrency "
                      f"{args.concurrency}, queues: {', '.join(queues) if queues else 'all'})", flush=True)
                metrics_runner = await _worker_metrics(args, settings, engine)
                await job_worker.run()
                if metrics_runner is not None:
                    await metrics_runner.cleanup()
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


async def _worker_metrics(args: argparse.Namespace, settings: Settings, engine: Any) -> Any:
    """The worker's own /metrics listener when --metrics-port is given (CommandFailed when the port
    cannot be bound), else None."""
    if args.metrics_port is None:
        return None
    from ouipost.metrics import start_metrics_server

    try:
        return await start_metrics_server(args.metrics_host, args.metrics_port, settings, engine, Clock())
    except OSError as exc:
        raise CommandFailed(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                            f"{exc.strerror or exc}; check --metrics-port") from None


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            status = await upgrade(engine)
        finally:
            await engine.dispose()
        return ", ".join(status.current)

    print(f"database is at revision {asyncio.run(run())}")
    return 0


def create_admin(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        engine = create_engine(settings.database_url)
        try:
            await prepare_database(engine, settings)
            async with engine.begin() as conn:
                if await users.find_by_email(conn, args.email):
                    raise CommandFailed(f"a user with e-mail {args.email} already exists")
                return await users.create_user(
                    conn, email=args.email, password=args.password, name=args.name, role=args.role,
                    now=Clock().now(),
                )
        finally:
            await engine.dispose()

    user = asyncio.run(run())
    print(f"created {user['role']} {user['email']} ({user['id']})")
    return 0


def create_key(settings: Settings, args: argparse.Namespace) -> int:
    from ouipost.workspaces import get_workspace

    async def run() -> api_keys.NewKey:
        engine = create_engine(settings.database_url)
        try:
            await prepare_database(engine, settings)
            async with engine.begin() as conn:
                for workspace_id in args.workspace:
                    if await get_workspace(conn, workspace_id) is None:
                        raise CommandFailed(f"no workspace {workspace_id}")
                return await api_keys.create_key(
                    conn, name=args.name, tier=args.tier, permissions=args.permission,
                    workspace_ids=args.workspace, now=Clock().now(),
                )
        finally:
            await engine.dispose()

    new = asyncio.run(run())
    if args.json:
        record = {**new.record, "api_key": new.secret, "workspaces": list(dict.fromkeys(args.workspace))}
        for field in ("created_at", "updated_at", "last_used_at"):
            record[field] = isoformat(record[field])
        print(json.dumps(record, indent=2))
    else:
        print(f"created key {new.record['id']} ({new.record['name']}, tier {new.record['tier']}); "
              "it is shown once:")
        print(new.secret)
    return 0


def _db_kind(settings: Settings) -> str:
    return "SQLite (embedded)" if settings.is_sqlite else "MySQL/MariaDB"
