"""Settings: read once from `OUIPOST_*` environment variables into one typed, validated object.

A missing or malformed value fails at start with a `SettingsError` naming the variable and what is
expected; nothing else in the code reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ouipost.core.forwarded import Network
from ouipost.housekeeping.retention import Retention, load_retention
from ouipost.platforms.registry import NETWORKS
from ouipost.publishing.pacing import PacingConfig, load_pacing

DEFAULT_RATE_LIMITS = {"starter": 60, "professional": 300, "enterprise": 1200}
SECRET_FILE = "secret_key"
MIN_SECRET_LENGTH = 32
# The data dir holds the database, the secret key and media: readable by the service's user only.
PRIVATE_DIR_MODE = 0o700
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what is expected."""


@dataclass(frozen=True)
class NetworkCredentials:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    storage: str = "local"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    sandbox: bool = True
    # Expose the mounted sandbox's /_sandbox/ control routes (request log, faults), to admin tokens only.
    sandbox_control: bool = False
    platform_base_url: str | None = None
    credentials: Mapping[str, NetworkCredentials] = field(default_factory=dict)
    webhook_allow_private: bool = False
    workers: int = 4
    rate_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    # Redis shared by every process for the rate limits (unset: each process counts on its own), and
    # the prefix of the keys written there (several deployments or test runs can share one Redis).
    redis_url: str | None = None
    redis_key_prefix: str = "ouipost:"
    max_json_kb: int = 1024
    max_image_mb: int = 20
    max_video_mb: int = 1024
    max_document_mb: int = 100
    auto_migrate: bool = False
    log_level: str = "INFO"
    # `text` (the default) or `json`: one JSON object per line (ouipost/core/logs.py).
    log_format: str = "text"
    # Bearer token for GET /metrics (unset: loopback clients only), and the directory where this
    # host's processes write their metrics so that one scrape adds them up (ouipost/core/metrics.py).
    metrics_token: str | None = None
    metrics_dir: Path | None = None
    # Reverse proxies whose X-Forwarded-For is believed (OUIPOST_TRUSTED_PROXIES: addresses or
    # networks); a request from one of them is the client's it names (ouipost/core/forwarded.py).
    trusted_proxies: tuple[Network, ...] = ()
    # The admin UI's signed-in sessions end after this many minutes without a request.
    ui_idle_minutes: int = 30
    # Per-account pacing, per-network concurrency and token refresh windows (OUIPOST_PACING*,
    # OUIPOST_REFRESH_WINDOWS; see ouipost/publishing/pacing.py).
    pacing: PacingConfig = field(default_factory=PacingConfig)
    # How long housekeeping keeps each kind of row (OUIPOST_RETENTION; see ouipost/housekeeping/retention.py).
    retention: Retention = field(default_factory=Retention)
    # Seconds between media processing status reads per network (OUIPOST_MEDIA_POLL_SECONDS);
    # a network not named keeps its adapter's own pace.
    media_poll_seconds: Mapping[str, float] = field(default_factory=dict)
    # The first wait before a target is sent again after an error that names no wait (a 5xx, a
    # connection refused); it doubles with each attempt, with jitter, up to an hour.
    publish_backoff_seconds: float = 5.0

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_platform_base_url(self) -> str | None:
        """Where adapters send their calls: the setting, else the in-process sandbox in sandbox mode."""
        if self.platform_base_url:
            return self.platform_base_url
        return f"{self.public_url}/sandbox" if self.sandbox else None

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed (by field name; TypeError for an unknown one)."""
        return replace(self, **changes)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from `env` (default: os.environ). `overrides` win (command-line options).

    Raises SettingsError with one line per problem found.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    reader = _Reader(env, problems)

    data_dir = Path(reader.text("OUIPOST_DATA_DIR", "./data")).expanduser()
    database_url = reader.text("OUIPOST_DATABASE_URL", "") or f"sqlite+aiosqlite:///{data_dir / 'ouipost.db'}"
    if not database_url.startswith(("sqlite+aiosqlite://", "mysql+aiomysql://", "postgresql+asyncpg://")):
        problems.append(
            "OUIPOST_DATABASE_URL must start with sqlite+aiosqlite://, mysql+aiomysql:// or postgresql+asyncpg:// "
            f"(got {_redact_url(database_url)!r})"
        )
    # An empty OUIPOST_HOST means the default, not "every interface" (which is what aiohttp makes of "").
    host = str(overrides.pop("host", None) or reader.text("OUIPOST_HOST", "") or "127.0.0.1")
    port_override = overrides.pop("port", None)
    port = int(port_override) if port_override is not None else reader.integer("OUIPOST_PORT", 8080, 1, 65535)
    public_url = reader.text("OUIPOST_PUBLIC_URL", "") or f"http://{_url_host(host)}:{port}"
    if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).netloc:
        problems.append(f"OUIPOST_PUBLIC_URL must be an http(s) URL (got {public_url!r})")
    public_url = public_url.rstrip("/")

    storage = reader.choice("OUIPOST_STORAGE", "local", ("local", "s3"))
    s3_bucket = reader.text("OUIPOST_S3_BUCKET", "") or None
    if storage == "s3" and not s3_bucket:
        problems.append("OUIPOST_S3_BUCKET is required when OUIPOST_STORAGE=s3")
    s3_endpoint_url = reader.text("OUIPOST_S3_ENDPOINT_URL", "") or None
    if s3_endpoint_url and not _is_endpoint_url(s3_endpoint_url):
        problems.append("OUIPOST_S3_ENDPOINT_URL must be an http(s) URL such as https://s3.example.com "
                        f"(got {_redact_url(s3_endpoint_url)!r})")

    credentials: dict[str, NetworkCredentials] = {}
    for network in NETWORKS:
        cid = reader.text(f"OUIPOST_{network.upper()}_CLIENT_ID", "")
        secret = reader.text(f"OUIPOST_{network.upper()}_CLIENT_SECRET", "")
        if bool(cid) != bool(secret):
            problems.append(
                f"set both OUIPOST_{network.upper()}_CLIENT_ID and OUIPOST_{network.upper()}_CLIENT_SECRET, "
                "or neither"
            )
        elif cid:
            credentials[network] = NetworkCredentials(cid, secret)
    sandbox = reader.boolean("OUIPOST_SANDBOX", default=not credentials)

    platform_base_url = reader.text("OUIPOST_PLATFORM_BASE_URL", "") or None
    if platform_base_url and urlsplit(platform_base_url).scheme not in ("http", "https"):
        problems.append(f"OUIPOST_PLATFORM_BASE_URL must be an http(s) URL (got {platform_base_url!r})")

    rate_limits = _parse_rate_limits(reader.text("OUIPOST_RATE_LIMITS", ""), problems)
    redis_url = reader.text("OUIPOST_REDIS_URL", "") or None
    if redis_url and not _is_redis_url(redis_url):
        problems.append(
            "OUIPOST_REDIS_URL must be a redis://, rediss:// or unix:// URL such as redis://127.0.0.1:6379/0 "
            f"(got {_redact_url(redis_url)!r})"
        )
    try:
        pacing = load_pacing(env)
    except ValueError as exc:
        problems.append(str(exc))
        pacing = PacingConfig()
    try:
        retention = load_retention(env)
    except ValueError as exc:
        problems.append(str(exc))
        retention = Retention()

    settings_kwargs: dict[str, Any] = dict(
        data_dir=data_dir,
        database_url=database_url,
        secret_key="",
        host=host,
        port=port,
        public_url=public_url,
        storage=storage,
        s3_bucket=s3_bucket,
        s3_endpoint_url=s3_endpoint_url,
        s3_region=reader.text("OUIPOST_S3_REGION", "") or None,
        sandbox=sandbox,
        sandbox_control=reader.boolean("OUIPOST_SANDBOX_CONTROL", default=False),
        platform_base_url=platform_base_url,
        credentials=credentials,
        webhook_allow_private=reader.boolean("OUIPOST_WEBHOOK_ALLOW_PRIVATE", default=False),
        workers=reader.integer("OUIPOST_WORKERS", 4, 0, 256),
        rate_limits=rate_limits,
        redis_url=redis_url,
        redis_key_prefix=reader.text("OUIPOST_REDIS_KEY_PREFIX", "") or "ouipost:",
        max_json_kb=reader.integer("OUIPOST_MAX_JSON_KB", 1024, 1, 1024 * 1024),
        max_image_mb=reader.integer("OUIPOST_MAX_IMAGE_MB", 20, 1, 10 * 1024),
        max_video_mb=reader.integer("OUIPOST_MAX_VIDEO_MB", 1024, 1, 100 * 1024),
        max_document_mb=reader.integer("OUIPOST_MAX_DOCUMENT_MB", 100, 1, 10 * 1024),
        auto_migrate=reader.boolean("OUIPOST_AUTO_MIGRATE", default=False),
        log_level=reader.choice("OUIPOST_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        log_format=_log_format(reader.text("OUIPOST_LOG_FORMAT", ""), problems),
        metrics_token=_metrics_token(reader.text("OUIPOST_METRICS_TOKEN", ""), problems),
        trusted_proxies=_networks("OUIPOST_TRUSTED_PROXIES", reader.text("OUIPOST_TRUSTED_PROXIES", ""), problems),
        metrics_dir=Path(reader.text("OUIPOST_METRICS_DIR", "") or data_dir / "metrics").expanduser(),
        ui_idle_minutes=reader.integer("OUIPOST_UI_IDLE_MINUTES", 30, 1, 7 * 24 * 60),
        pacing=pacing,
        retention=retention,
        media_poll_seconds=_parse_media_poll(reader.text("OUIPOST_MEDIA_POLL_SECONDS", ""), problems),
        publish_backoff_seconds=reader.seconds("OUIPOST_PUBLISH_BACKOFF_SECONDS", 5.0, 0.1, 3600.0),
    )
    settings_kwargs.update(overrides)

    secret = reader.text("OUIPOST_SECRET_KEY", "")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        problems.append(f"OUIPOST_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
    if not secret and not str(settings_kwargs["database_url"]).startswith("sqlite"):
        problems.append("OUIPOST_SECRET_KEY is required with a MySQL/MariaDB or PostgreSQL database (32+ characters)")

    if problems:
        raise SettingsError("invalid configuration:\n  - " + "\n  - ".join(problems))
    if not secret:
        secret = _embedded_secret(Path(settings_kwargs["data_dir"]))
    settings_kwargs["secret_key"] = secret
    return Settings(**settings_kwargs)


def _embedded_secret(data_dir: Path) -> str:
    """The embedded default's secret: generated once into the data dir, readable by its owner only."""
    path = data_dir / SECRET_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if len(existing) >= MIN_SECRET_LENGTH:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def _parse_rate_limits(raw: str, problems: list[str]) -> dict[str, int]:
    limits = dict(DEFAULT_RATE_LIMITS)
    if not raw.strip():
        return limits
    for item in raw.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name or not value.strip().isdigit() or int(value) < 1:
            problems.append(
                f"OUIPOST_RATE_LIMITS: {item.strip()!r} is not tier=requests_per_minute "
                "(e.g. starter=60,professional=300,enterprise=1200)"
            )
            continue
        limits[name.strip()] = int(value)
    return limits


def _parse_media_poll(raw: str, problems: list[str]) -> dict[str, float]:
    """`net=SECONDS` items, `*` for every network: {network: seconds}."""
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            seconds = float(value) if sep else -1.0
        except ValueError:
            seconds = -1.0
        if name not in (*NETWORKS, "*") or not 0.05 <= seconds <= 600:
            problems.append(f"OUIPOST_MEDIA_POLL_SECONDS: {item!r} is not network=seconds (0.05 to 600; a "
                            f"network among {', '.join(NETWORKS)} or *), e.g. instagram=5,tiktok=3")
            continue
        for network in NETWORKS if name == "*" else (name,):
            if name == "*" and network in found:
                continue  # a network named on its own wins over *
            found[network] = seconds
    return found


def _log_format(raw: str, problems: list[str]) -> str:
    value = raw.lower() or "text"
    if value not in ("text", "json"):
        problems.append(f"OUIPOST_LOG_FORMAT must be text or json (got {raw!r})")
        return "text"
    return value


def _networks(name: str, raw: str, problems: list[str]) -> tuple[Network, ...]:
    """Comma-separated addresses or networks (CIDR), IPv4 or IPv6."""
    found: list[Network] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            problems.append(f"{name} must list IP addresses or networks such as 127.0.0.1, ::1 or 10.0.0.0/8 "
                            f"(got {item!r})")
    return tuple(found)


def _metrics_token(raw: str, problems: list[str]) -> str | None:
    # Sent as `Authorization: Bearer <token>`: one header token, and not guessable in a few tries.
    if not raw:
        return None
    if len(raw) < 16 or any(c.isspace() for c in raw):
        problems.append("OUIPOST_METRICS_TOKEN must be at least 16 characters without spaces")
    return raw


def _is_endpoint_url(url: str) -> bool:
    """What botocore accepts as an endpoint (checked here, so that a bad one is a line among the
    configuration problems, not a traceback when the storage is built)."""
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    try:
        return urlsplit(url).scheme in ("http", "https") and bool(
            is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url))
    except ValueError:  # urlsplit: a malformed IPv6 literal
        return False


def _is_redis_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        return False
    if parts.scheme == "unix":
        return bool(parts.path)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return False
    database = parts.path.strip("/")
    return not database or database.isdigit()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 literal: nothing to find a password in
        return url.split("@")[-1]
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


class _Reader:
    def __init__(self, env: Mapping[str, str], problems: list[str]) -> None:
        self.env = env
        self.problems = problems

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, default).strip()

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be a whole number (got {raw!r})")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low} and {high} (got {value})")
        return value

    def seconds(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number of seconds (got {raw!r})")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low:g} and {high:g} seconds (got {raw})")
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        raw = self.env.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.problems.append(f"{name} must be on/off, true/false, yes/no or 1/0 (got {raw!r})")
        return default

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        raw = self.env.get(name, "").strip() or default
        if raw not in options and raw.upper() not in options:
            self.problems.append(f"{name} must be one of {', '.join(options)} (got {raw!r})")
            return default
        return raw.upper() if raw.upper() in options else raw
