"""The command line: serve | worker | migrate | create-admin | create-key.

Bad arguments exit 2 with argparse's usage message; an action that fails exits 1 with one line
saying why. Every command reads the same settings as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ouipost.bootstrap import StartupError, first_start, first_start_banner, prepare_database
from ouipost.config import Settings, SettingsError, load_settings
from ouipost.core.clock import Clock, isoformat
from ouipost.core.logs import configure_logging
from ouipost.db.engine import create_engine
from ouipost.db.migrations import MigrationError, MigrationStatus, count_between, migration_status, upgrade
from ouipost.db.rows import UserRow
from ouipost.http.web import AccessLogger
from ouipost.identity import api_keys, users
from ouipost.server import run_app


class CommandFailed(Exception):
    """The action failed for a reason the user can act on (exit 1)."""


def build_parser() -> argparse.ArgumentParser:
    # `run.py` in the checkout, `ouipost` as the installed console command: messages name the one used.
    prog = "ouipost" if Path(sys.argv[0]).name == "ouipost" else "run.py"
    parser = argparse.ArgumentParser(prog=prog, description="Oui Post: social media publishing API")
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
    parser.add_argument("--processes", type=_positive_int, default=1, metavar="N",
                        help="API processes sharing the port (SO_REUSEPORT), watched by this one; N > 1 needs "
                             "MySQL/MariaDB or PostgreSQL (default 1)")


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


def _quiet_late_sqlite_replies(args: threading.ExceptHookArgs) -> None:
    """aiosqlite's worker thread may answer after the command's event loop has closed (a database
    file that could not be opened, then the one-line error and exit): nobody waits for that answer,
    and its traceback would follow the one line the command printed. Every other thread error is
    reported as usual."""
    late = (isinstance(args.exc_value, RuntimeError) and "Event loop is closed" in str(args.exc_value)
            and args.thread is not None and "_connection_worker_thread" in args.thread.name)
    if not late:
        threading.__excepthook__(args)


def main(argv: Sequence[str] | None = None) -> int:
    threading.excepthook = _quiet_late_sqlite_replies
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
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        # The database did not answer (or refused us): one line, not the driver's traceback.
        print(f"{parser.prog} {args.command}: {_database_failure(settings, exc)}", file=sys.stderr)
        return 1


def _database_failure(settings: Settings, exc: BaseException) -> str:
    """One line naming the database (password hidden) and the driver's reason."""
    url = make_url(settings.database_url)
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    port = {"mysql": 3306, "postgresql": 5432}.get(url.get_backend_name())
    where = f"{url.host or 'localhost'}:{url.port or port}" if port else url.database
    return (f"cannot use the database {url.render_as_string(hide_password=True)} ({where}): "
            f"{str(reason).strip() or type(reason).__name__}; check OUIPOST_DATABASE_URL")


def _share_metrics(settings: Settings) -> None:
    """Counters in the host's shared metrics directory, so that one scrape adds up every process."""
    from ouipost.core.metrics import setup_multiprocess

    directory = settings.metrics_dir or settings.data_dir / "metrics"
    try:
        setup_multiprocess(directory)
    except OSError as exc:
        raise CommandFailed(f"cannot use the metrics directory {directory}: {exc.strerror or exc}; "
                            "check OUIPOST_METRICS_DIR") from None


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from ouipost.app import create_app

    if args.processes > 1:
        return serve_processes(settings, args)

    # The port first: a busy port must not cost a first start its one-time credentials.
    sock = _bind(settings.host, settings.port)
    try:
        banner = asyncio.run(_prepare_once(settings))
        if args.no_workers:
            settings = settings.with_overrides(workers=0)
        app = create_app(settings)
    except BaseException:
        sock.close()
        raise
    _announce(settings, _address(sock), banner)
    # ouipost.server.run_app: aiohttp's run_app with protocol errors answered in the JSON envelope.
    run_app(
        app, host=settings.host, port=settings.port, sock=sock,
        access_log_class=AccessLogger, access_log=logging.getLogger("ouipost.access"),
    )
    return 0


def _announce(settings: Settings, bound: str, banner: str | None, processes: int = 1) -> None:
    """The start-up lines: where it listens, the sandbox warning, the first start's credentials."""
    public = "" if bound == settings.public_url else f", public URL {settings.public_url}"
    several = f" with {processes} API processes" if processes > 1 else ""
    print(f"Oui Post listening on {bound}{several} (database: {_db_kind(settings)}{public}, "
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


def serve_processes(settings: Settings, args: argparse.Namespace) -> int:
    """`serve --processes N`: migrations and the first start's admin once, here, then N API
    processes on the port, kept running by ouipost.supervisor until SIGTERM/SIGINT."""
    from ouipost.supervisor import Supervisor

    _check_processes(settings, args.processes)
    # The port first, as one process does: held (bound, not listening) for as long as this runs,
    # so that nothing else takes it while the API processes start or are started again.
    holder = _hold_port(settings.host, settings.port)
    try:
        banner = asyncio.run(_prepare_once(settings))
        if not settings.redis_url:
            logging.getLogger("ouipost.supervisor").warning(
                "OUIPOST_REDIS_URL is not set: each of the %d API processes enforces the rate limits on its own, "
                "so a key can make up to %d times its limit; set OUIPOST_REDIS_URL to share them (/admin/health "
                "shows this under rate_limits)", args.processes, args.processes)

        def on_ready(pids: list[int]) -> None:
            _announce(settings, _address(holder), banner, args.processes)

        supervisor = Supervisor(_serve_child, (settings.host, settings.port, args.no_workers), args.processes,
                                on_ready=on_ready)
        status = supervisor.run()
    finally:
        holder.close()
    if supervisor.failure:
        raise CommandFailed(supervisor.failure)
    return status


def _check_processes(settings: Settings, processes: int) -> None:
    """What `--processes N` (N > 1) cannot work with, as CommandFailed naming the fix."""
    if settings.is_sqlite:
        raise CommandFailed(
            f"--processes {processes} needs MySQL/MariaDB or PostgreSQL (OUIPOST_DATABASE_URL=mysql+aiomysql://... "
            "or postgresql+asyncpg://...): SQLite "
            "lets one process write at a time, so more API processes would only wait on each other's locks; "
            "use --processes 1 with SQLite")
    if settings.sandbox and not settings.platform_base_url:
        raise CommandFailed(
            f"--processes {processes} with the built-in sandbox: each process would imitate the networks on "
            "its own (an account connected through one is unknown to the others). Run one sandbox "
            "(python -m ouipost.sandbox --port 9000) and set OUIPOST_PLATFORM_BASE_URL=http://127.0.0.1:9000, "
            "or set network credentials (or OUIPOST_SANDBOX=0)")
    if not hasattr(socket, "SO_REUSEPORT"):
        raise CommandFailed(f"--processes {processes} needs SO_REUSEPORT, which this system lacks; run one "
                            "process per port behind a load balancer, or gunicorn (docs/deployment.md)")


async def _prepare_once(settings: Settings) -> str | None:
    """Migrations (as `serve` allows them) and the first start's credentials; the banner or None."""
    engine = create_engine(settings.database_url)
    try:
        await prepare_database(engine, settings)
        info = await first_start(engine, Clock())
    finally:
        await engine.dispose()
    return first_start_banner(info, settings.public_url) if info else None


def _serve_child(host: str, port: int, no_workers: bool, link: Any) -> None:
    """One API process of `serve --processes N` (in a fresh interpreter, see ouipost.supervisor):
    the same settings as its parent's, its own SO_REUSEPORT socket, no migration, no first start.
    Says ready once the app is set up, or why it cannot start (then exits 1)."""
    from ouipost.app import create_app

    try:
        settings = load_settings(host=host, port=port)
        configure_logging(settings.log_level, settings.log_format)
        _share_metrics(settings)
        if no_workers:
            settings = settings.with_overrides(workers=0)
        sock = _bind(settings.host, settings.port, reuse_port=True)
        try:
            app = create_app(settings)
        except BaseException:
            sock.close()
            raise
    except (SettingsError, CommandFailed) as exc:
        link.failed(str(exc))
        sys.exit(1)
    except Exception as exc:
        link.failed(f"{type(exc).__name__}: {exc}")
        raise
    app.on_startup.append(link.on_startup)  # last: runs once the app's own start-up is done
    run_app(
        app, host=settings.host, port=settings.port, sock=sock,
        access_log_class=AccessLogger, access_log=logging.getLogger("ouipost.access"),
    )


async def prepare_gunicorn_worker() -> Settings:
    """What a gunicorn worker needs before it builds the app (ouipost.app.gunicorn_app): the settings
    from the environment, logs, and the host's shared metrics directory, as `serve` sets them up.
    Migrations are not applied (every worker would race to apply them): a schema that is not up to
    date, like bad settings, stops the worker with the reason logged in one line (run `ouipost
    migrate` first; `create-admin` and `create-key` make the first admin and key)."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        _share_metrics(settings)
        engine = create_engine(settings.database_url)
        try:
            status = await migration_status(engine)
        finally:
            await engine.dispose()
        if status.pending:
            raise StartupError(f"the database schema is not up to date (at {', '.join(status.current) or 'nothing'}, "
                               f"needs {', '.join(status.heads)}): run `ouipost migrate` first")
    except (SettingsError, StartupError, MigrationError, CommandFailed) as exc:
        logging.getLogger("ouipost").error("cannot start: %s", exc)
        raise
    except DBAPIError as exc:
        logging.getLogger("ouipost").error("cannot start: %s", _database_failure(settings, exc))
        raise
    return settings


def _hold_port(host: str, port: int) -> socket.socket:
    """host:port checked free (CommandFailed otherwise), then held by a socket that is bound with
    SO_REUSEPORT alone and never listens: the API processes' sockets (SO_REUSEPORT, same user) may
    join it, a program without SO_REUSEPORT cannot take the port, and it takes no connection."""
    _bind(host, port).close()  # free: nobody listens there, not even a SO_REUSEPORT group of another run
    return _bind(host, port, reuse_port=True, reuse_address=False, listen=False)


def _bind(
    host: str, port: int, *, reuse_port: bool = False, reuse_address: bool = True, listen: bool = True,
) -> socket.socket:
    """A listening socket on host:port (the first address `host` resolves to), or CommandFailed with
    one line when the port is taken or the address cannot be used. `reuse_port`: SO_REUSEPORT, so
    that the API processes of `serve --processes N` each listen on the same port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CommandFailed(f"cannot listen on {host!r}: {exc.strerror}; check --host or OUIPOST_HOST") from None
    sock = socket.socket(family, kind, proto)
    try:
        if reuse_address:
            # As aiohttp does: a restart may bind while the last run's connections are in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(128)  # listening makes the port ours: nobody else may bind it from now on
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CommandFailed(f"port {port} is in use; use --port or OUIPOST_PORT") from None
        raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror}; check --host or OUIPOST_HOST") from None
    return sock


def _address(sock: socket.socket) -> str:
    """The URL of what `sock` is really bound to, e.g. http://0.0.0.0:8080."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


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
    from workers.registry import load_handlers
    from workers.resources import worker_resources
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
            clock = Clock()
            async with worker_resources(settings, engine, clock) as resources:
                http = resources.http
                job_worker = Worker(
                    engine, handlers, queues=queues, concurrency=args.concurrency, clock=clock,
                    resources=resources, batch_size=args.batch_size, lease_seconds=args.lease_seconds,
                    poll_interval=args.poll_interval, grace_seconds=args.grace_seconds,
                )
                for signum in (signal.SIGTERM, signal.SIGINT):
                    asyncio.get_running_loop().add_signal_handler(signum, job_worker.stop)
                await _check_sandbox(settings, http)
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


async def _check_sandbox(settings: Settings, http: Any) -> None:
    """In sandbox mode a separate worker calls the sandbox that `serve` mounts at its public URL; it
    knows that URL only from the settings. When it does not answer, say so once, naming the URL and
    the settings to fix: every publish would otherwise fail quietly with RETRIES_EXHAUSTED."""
    import aiohttp

    from ouipost.sandbox.core import HEALTH_PATH

    if not settings.sandbox or settings.platform_base_url:
        return
    url = f"{settings.effective_platform_base_url}{HEALTH_PATH}"
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status == 200:
                return
            problem = f"it answers HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    logging.getLogger("ouipost.worker").error(
        "sandbox mode: this worker sends every network call to the sandbox at %s, which does not answer "
        "(%s). Start `run.py serve` first, or give this worker the same OUIPOST_PUBLIC_URL (or OUIPOST_PORT) "
        "as serve: a serve started with --port N needs OUIPOST_PORT=N here.",
        settings.effective_platform_base_url, problem,
    )


async def _worker_metrics(args: argparse.Namespace, settings: Settings, engine: Any) -> Any:
    """The worker's own /metrics listener when --metrics-port is given (CommandFailed when the port
    cannot be bound), else None."""
    if args.metrics_port is None:
        return None
    from ouipost.http.metrics import start_metrics_server

    try:
        return await start_metrics_server(args.metrics_host, args.metrics_port, settings, engine, Clock())
    except OSError as exc:
        raise CommandFailed(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                            f"{exc.strerror or exc}; check --metrics-port") from None


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending migrations and say what was done: from an empty database, from an older
    revision, or nothing (the unchanged line, so that scripts can compare runs)."""
    async def run() -> tuple[MigrationStatus, MigrationStatus]:
        engine = create_engine(settings.database_url)
        try:
            before = await migration_status(engine)
            return before, await upgrade(engine)
        finally:
            await engine.dispose()

    before, after = asyncio.run(run())
    now_at = ", ".join(after.current)
    applied = count_between(before, after)
    plural = "migration" if applied == 1 else "migrations"
    if not before.current:
        print(f"empty database: applied {applied} {plural}, now at {now_at}")
    elif applied:
        print(f"applied {applied} {plural} (was at {', '.join(before.current)}), now at {now_at}")
    else:
        print(f"database is at revision {now_at}")
    return 0


def create_admin(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> UserRow:
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
    from ouipost.identity.workspaces import get_workspace

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
        record: dict[str, Any] = {
            **new.record, "api_key": new.secret, "workspaces": list(dict.fromkeys(args.workspace)),
        }
        for field in ("created_at", "updated_at", "last_used_at"):
            record[field] = isoformat(record[field])
        print(json.dumps(record, indent=2))
    else:
        # A key without workspaces sees nothing: say so where the newcomer reads, not only in the docs.
        reach = ", ".join(dict.fromkeys(args.workspace)) or "no workspace (add --workspace ws_...)"
        print(f"created key {new.record['id']} ({new.record['name']}, tier {new.record['tier']}, "
              f"reaches {reach}); it is shown once:")
        print(new.secret)
    return 0


def _db_kind(settings: Settings) -> str:
    if settings.is_sqlite:
        return "SQLite (embedded)"
    return "PostgreSQL" if settings.database_url.startswith("postgresql") else "MySQL/MariaDB"
