"""The sandbox: a local imitation of the ten networks' HTTP APIs, with faults on demand.

Each network lives in `ouipost/sandbox/<network>.py` and exposes:

    NETWORK: str                      # registry id, e.g. "facebook"
    HOSTS: tuple[str, ...]            # real hosts it imitates, e.g. ("graph.facebook.com", ...)
    ANY_HOST_PATHS: tuple[str, ...]   # optional: paths it answers under any other host (Mastodon)
    def setup(app: web.Application, sandbox: Sandbox) -> None
        # add routes at host-prefixed paths: f"/{host}/v25.0/{{page_id}}/feed"
    def fault_response(kind: str, sandbox: Sandbox) -> web.StreamResponse
        # the network's own answer for "rate_limit", "expire_token" and "server_error"; networks
        # whose rate-limit answer says how long to wait also take `wait` (seconds), which they
        # express in their own headers (Retry-After, x-rate-limit-reset, RateLimit-Reset, ...)

The app below routes `/{host}/...` to those handlers, records every request, applies faults
(rate limit, expired token, 5xx, slow answer, dropped connection before or after handling, an
answer that never comes) and exposes a control API under `/_sandbox/` so tests in other processes can
steer it (`POST /_sandbox/settings {"network", "settings"}` sets the knobs a network module reads
from its `network_state`: processing delays, per-user limits, quotas, as each module's docstring
lists them). A fault applies to every matching request, or at random to a share of them (`rate`), for
fault drills, or from the (after+1)-th (`after`: the third create of a thread is `after: 2`); the
record says which fault answered and, for a rate limit with a `wait`, the earliest
moment the network allows the call again (`notes["retry_not_before"]`).

The record never keeps a secret: the Authorization header keeps only its scheme, and tokens, codes,
PKCE verifiers, client secrets, passwords and signatures in the query or body read "[redacted]"
(they are checked by the handlers, never by reading the record). The control API can be left out
(`control=False`) or put behind a guard (`control_guard`, awaited before each control call, raising
to refuse it): the API server mounts the sandbox with control off unless OUIPOST_SANDBOX_CONTROL=1,
and then only for admin tokens. The standalone sandbox (tests, benchmarks) keeps it open.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, Literal

from aiohttp import web

from ouipost.core.clock import Clock
from ouipost.platforms.registry import NETWORKS

FaultKind = Literal["rate_limit", "expire_token", "server_error", "slow", "drop", "drop_after", "timeout"]
FAULT_KINDS: tuple[str, ...] = ("rate_limit", "expire_token", "server_error", "slow", "drop", "drop_after",
                                "timeout")


@dataclass
class Fault:
    network: str
    kind: FaultKind
    remaining: int | None = 1  # None: until cleared
    path_contains: str | None = None
    method: str | None = None
    delay: float = 0.0  # seconds, for "slow" and "timeout"
    id: int = 0
    rate: float | None = None  # the share of matching requests it hits at random; None: every one
    wait: float | None = None  # "rate_limit": seconds the network asks to wait (None: its usual answer)
    after: int = 0  # matching requests that pass untouched before it applies (the 3rd create: after=2)

    def matches(self, network: str, method: str, path: str) -> bool:
        if self.network not in (network, "*"):
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self.path_contains and self.path_contains not in path)


@dataclass
class RecordedRequest:
    id: int
    network: str
    method: str
    path: str  # host-prefixed, without the mount prefix: "/graph.facebook.com/v25.0/1/feed"
    query: dict[str, str]
    content_type: str
    body: Any  # parsed JSON / form fields, or {"bytes": n} for binary
    authorization: str | None
    at: float
    status: int | None = None
    fault: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Publication:
    """A post that exists on a sandbox network (what 'reached the network' means in tests)."""

    network: str
    account_id: str
    remote_id: str
    text: str
    media: list[dict[str, Any]]
    at: float
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TokenInfo:
    network: str
    subject: str  # the user/identity the token acts for
    scopes: list[str]
    expires_at: float | None
    kind: str = "access"  # access | refresh
    revoked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Sandbox:
    """All sandbox state. One per sandbox app; tests may hold it directly when in-process."""

    def __init__(self, clock: Clock | None = None, *, seed: int | None = None) -> None:
        # The networks' time: the one Clock, moved forward by `clock_offset` (POST /_sandbox/clock)
        # when a test must see a token or a rate-limit window expire without waiting for it.
        self._clock = clock or Clock()
        self._random = random.Random(seed)  # which requests random-rate faults hit
        self.clock_offset = 0.0
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.publications: list[Publication] = []
        self._by_remote_id: dict[tuple[str, str], Publication] = {}  # publication() without a scan
        self.tokens: dict[str, TokenInfo] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.state: dict[str, dict[str, Any]] = {}  # per network module, free-form
        self._ids = itertools.count(1)
        self._fault_ids = itertools.count(1)

    # time --------------------------------------------------------------------------------------
    def now(self) -> float:
        """Epoch seconds on the networks' clock."""
        return self._clock.now().timestamp() + self.clock_offset

    # ids and tokens ----------------------------------------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def new_token(self, network: str, subject: str, scopes: Iterable[str], ttl: float | None,
                  *, kind: str = "access", prefix: str = "", **extra: Any) -> str:
        token = f"{prefix}{network[:2]}_{kind[0]}_{secrets.token_urlsafe(24)}"
        expires = None if ttl is None else self.now() + ttl
        self.tokens[token] = TokenInfo(network, subject, list(scopes), expires, kind, extra=extra)
        return token

    def token(self, network: str, token: str | None, *, kind: str = "access") -> TokenInfo | None:
        """The live token's info, or None when unknown, of another network, expired or revoked."""
        if not token:
            return None
        info = self.tokens.get(token)
        if info is None or info.network != network or info.kind != kind or info.revoked:
            return None
        if info.expires_at is not None and info.expires_at <= self.now():
            return None
        return info

    def expire_tokens(self, network: str) -> None:
        for info in self.tokens.values():
            if info.network == network and info.kind == "access":
                info.expires_at = self.now() - 1

    def new_code(self, network: str, **data: Any) -> str:
        code = f"{network[:2]}_code_{secrets.token_urlsafe(18)}"
        self.codes[code] = {"network": network, "issued_at": self.now(), **data}
        return code

    def take_code(self, network: str, code: str | None, ttl: float = 600) -> dict[str, Any] | None:
        """Consume an authorization code: single use, network-bound, expires after ttl seconds."""
        data = self.codes.pop(code or "", None)
        if data is None or data["network"] != network or self.now() - data["issued_at"] > ttl:
            return None
        return data

    # publications ------------------------------------------------------------------------------
    def publish(self, network: str, account_id: str, remote_id: str, text: str,
                media: list[dict[str, Any]] | None = None, **extra: Any) -> Publication:
        pub = Publication(network, account_id, remote_id, text, media or [], self.now(), extra=extra)
        self.publications.append(pub)
        self._by_remote_id[(network, remote_id)] = pub
        return pub

    def publication(self, network: str, remote_id: str) -> Publication | None:
        pub = self._by_remote_id.get((network, remote_id))
        return pub if pub is not None and not pub.deleted else None

    # faults ------------------------------------------------------------------------------------
    def add_fault(self, network: str, kind: FaultKind, *, count: int | None = 1,
                  path_contains: str | None = None, method: str | None = None,
                  delay: float = 0.0, rate: float | None = None, wait: float | None = None,
                  after: int = 0) -> Fault:
        """Add a fault. `count` matching requests get it (None: until cleared), once `after` matching
        requests went by untouched; with `rate`, each matching request gets it with that probability
        (the others go on to the next fault, then to the handler). Raises ValueError for an unknown
        kind, a rate outside (0, 1] or a negative `after`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        if rate is not None and not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], not {rate!r}")
        if after < 0:
            raise ValueError(f"after must be 0 or more, not {after!r}")
        fault = Fault(network, kind, count, path_contains, method, delay, next(self._fault_ids), rate, wait, after)
        self.faults.append(fault)
        return fault

    def take_fault(self, network: str, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(network, method, path):
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if fault.rate is not None and self._random.random() >= fault.rate:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()
        self.publications.clear()
        self._by_remote_id.clear()
        self.tokens.clear()
        self.codes.clear()
        self.state.clear()
        self.clock_offset = 0.0

    def network_state(self, network: str) -> dict[str, Any]:
        return self.state.setdefault(network, {})


SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
_RECORD_KEY = web.RequestKey("sandbox_record", RecordedRequest)
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")


def units_under_way(sandbox: Sandbox, at: float, unit_seconds: float) -> int:
    """Units of time since `at` on the sandbox clock, counting the one under way: 1 from the moment
    of publishing, 2 once a whole unit has passed... Insights grow by it, so that a post read just
    after publishing already has its first figures (as a real post gets its first views at once);
    nothing before `at` counts (0)."""
    age = sandbox.now() - at
    return 0 if age < 0 else int(age // unit_seconds) + 1


def record_of(request: web.Request) -> RecordedRequest | None:
    """The recorded entry of this request, so a handler can add notes (e.g. multipart fields)."""
    return request.get(_RECORD_KEY)


def load_network_modules(networks: Iterable[str] = NETWORKS) -> list[ModuleType]:
    modules = []
    for network in networks:
        try:
            modules.append(importlib.import_module(f"ouipost.sandbox.{network}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"ouipost.sandbox.{network}":
                raise
    return modules


ControlGuard = Callable[[web.Request], Awaitable[None]]
_Handler = Callable[[web.Request], Awaitable[web.Response]]


def create_sandbox_app(
    sandbox: Sandbox | None = None, networks: Iterable[str] = NETWORKS, *, control: bool = True,
    control_guard: ControlGuard | None = None,
) -> web.Application:
    """The sandbox as an aiohttp app: mount it at /sandbox or run it standalone.

    `control=False` leaves out the `/_sandbox/` control routes (they answer 404); `control_guard` is
    awaited before each control call and refuses it by raising (for example an HTTP 401).
    """
    sandbox = sandbox or Sandbox()
    modules = load_network_modules(networks)
    by_host: dict[str, ModuleType] = {host: mod for mod in modules for host in mod.HOSTS}
    # Networks with no fixed host (Mastodon: any server) claim the paths they list under any host.
    any_host = [(mod, prefixes) for mod in modules if (prefixes := getattr(mod, "ANY_HOST_PATHS", ()))]

    @web.middleware
    async def faults_and_records(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = _host_path(request)
        host = path.split("/", 2)[1] if path.startswith("/") else ""
        module = by_host.get(host)
        if module is None and host:
            rest = path[len(host) + 1:]
            module = next((mod for mod, prefixes in any_host if rest.startswith(prefixes)), None)
        if module is None:
            return await handler(request)
        record = await _record(request, module.NETWORK, path)
        sandbox.requests.append(record)
        request[_RECORD_KEY] = record
        fault = sandbox.take_fault(module.NETWORK, request.method, path)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "drop":
                _drop(request)
                raise asyncio.CancelledError  # nothing was handled
            elif fault.kind in ("rate_limit", "expire_token", "server_error"):
                if fault.kind == "expire_token":
                    sandbox.expire_tokens(module.NETWORK)
                if fault.kind == "rate_limit" and fault.wait is not None:
                    response = module.fault_response(fault.kind, sandbox, wait=fault.wait)
                    record.notes["retry_not_before"] = record.at + fault.wait
                else:
                    response = module.fault_response(fault.kind, sandbox)
                record.status = response.status
                return response
        response = await handler(request)
        record.status = response.status
        if fault is not None and fault.kind in ("drop_after", "timeout"):
            # The handler's effects happened; the client never hears about them ("timeout": it
            # waits `delay` seconds for an answer first, as behind a gateway that gives up).
            if fault.kind == "timeout":
                await asyncio.sleep(fault.delay)
            _drop(request)
            raise asyncio.CancelledError
        return response

    app = web.Application(middlewares=[faults_and_records], client_max_size=1 << 31)
    app[SANDBOX_KEY] = sandbox
    # Always open, control or not: a separate worker checks the sandbox it was told to call answers.
    app.router.add_get(HEALTH_PATH, _health)
    if control:
        _add_control_routes(app, sandbox, control_guard, {mod.NETWORK: mod for mod in modules})
    for module in modules:
        module.setup(app, sandbox)
    return app


HEALTH_PATH = "/_sandbox/health"


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "sandbox": True})


def _host_path(request: web.Request) -> str:
    """The request path relative to the sandbox app (works mounted as a sub-app or standalone)."""
    prefix = request.app.get(_PREFIX_KEY, "")
    path = request.path
    return path[len(prefix):] if prefix and path.startswith(prefix) else path


_PREFIX_KEY = web.AppKey("sandbox_prefix", str)


def set_mount_prefix(app: web.Application, prefix: str) -> None:
    app[_PREFIX_KEY] = prefix.rstrip("/")


async def _record(request: web.Request, network: str, path: str) -> RecordedRequest:
    ctype = request.content_type or ""
    body: Any = None
    if request.can_read_body:
        if ctype in _BODY_TYPES:
            raw = await request.read()  # cached: handlers can still call .json()/.post()
            if ctype == "application/json":
                try:
                    body = redact(await request.json())
                except ValueError:
                    body = {"invalid_json": True, "bytes": len(raw)}
            else:
                body = redact(dict((await request.post()).items()))
        else:
            body = {"bytes": request.content_length}
    authorization = request.headers.get("Authorization")
    return RecordedRequest(
        id=len(request.app[SANDBOX_KEY].requests) + 1,
        network=network,
        method=request.method,
        path=path,
        query=redact(dict(request.query)),
        content_type=ctype,
        body=body,
        # The scheme tells tests what kind of credential was sent; the credential itself stays out.
        authorization=None if authorization is None else f"{authorization.partition(' ')[0]} {REDACTED}".strip(),
        at=request.app[SANDBOX_KEY].now(),
    )


REDACTED = "[redacted]"
# Names of query, form and JSON fields that carry credentials in the ten networks' APIs.
SECRET_FIELDS = frozenset({
    "access_token", "refresh_token", "id_token", "token", "input_token", "fb_exchange_token", "code",
    "code_verifier", "client_secret", "client_assertion", "appsecret_proof", "password", "app_password",
    "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "policy",
})


def redact(value: Any) -> Any:
    """`value` with every field named in SECRET_FIELDS (at any depth) replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


# A network setting is a plain JSON value (a number, a flag, a text, a list or a map of such).
_SETTING_TYPES = (bool, int, float, str, list, dict, type(None))


def _add_control_routes(app: web.Application, sandbox: Sandbox, guard: ControlGuard | None,
                        by_network: Mapping[str, ModuleType]) -> None:
    def guarded(handler: _Handler) -> _Handler:
        if guard is None:
            return handler

        async def check_then_handle(request: web.Request) -> web.Response:
            await guard(request)
            return await handler(request)

        return check_then_handle

    async def add_fault(request: web.Request) -> web.Response:
        data = await request.json()
        try:
            fault = sandbox.add_fault(
                data["network"], data["kind"], count=data.get("count", 1),
                path_contains=data.get("path_contains"), method=data.get("method"),
                delay=float(data.get("delay", 0)),
                rate=None if data.get("rate") is None else float(data["rate"]),
                wait=None if data.get("wait") is None else float(data["wait"]),
                after=int(data.get("after", 0)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": f"bad fault: {exc}"}, status=400)
        return web.json_response(asdict(fault), status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        sandbox.faults.clear()
        return web.json_response({"cleared": True})

    async def list_requests(request: web.Request) -> web.Response:
        network = request.query.get("network")
        items = [asdict(r) for r in sandbox.requests if not network or r.network == network]
        return web.json_response({"requests": items})

    async def list_publications(request: web.Request) -> web.Response:
        network = request.query.get("network")
        items = [asdict(p) for p in sandbox.publications if not network or p.network == network]
        return web.json_response({"publications": items})

    async def reset(request: web.Request) -> web.Response:
        sandbox.reset()
        return web.json_response({"reset": True})

    async def update_settings(request: web.Request) -> web.Response:
        data = await request.json()
        try:
            network, values = data["network"], data["settings"]
            if network not in by_network or not isinstance(values, dict) or not all(
                    isinstance(name, str) and isinstance(value, _SETTING_TYPES) for name, value in values.items()):
                raise ValueError("network must be a sandbox network and settings an object of plain values")
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"bad settings: {exc}"}, status=400)
        sandbox.network_state(network).update(values)
        return web.json_response({"network": network, "settings": values})

    async def clock(request: web.Request) -> web.Response:
        data = await request.json()
        sandbox.clock_offset += float(data.get("advance", 0))
        return web.json_response({"now": sandbox.now(), "offset": sandbox.clock_offset})

    app.router.add_post("/_sandbox/faults", guarded(add_fault))
    app.router.add_delete("/_sandbox/faults", guarded(clear_faults))
    app.router.add_get("/_sandbox/requests", guarded(list_requests))
    app.router.add_get("/_sandbox/publications", guarded(list_publications))
    app.router.add_post("/_sandbox/reset", guarded(reset))
    app.router.add_post("/_sandbox/clock", guarded(clock))
    app.router.add_post("/_sandbox/settings", guarded(update_settings))
