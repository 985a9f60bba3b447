"""The one interface every network adapter implements, and the outcomes it reports.

An adapter speaks its network's real HTTP API through `PlatformHttp` (which rewrites real hosts to
OUIPOST_PLATFORM_BASE_URL when set, so the same code talks to the sandbox). It never touches the
database: it gets what it needs (`AccountAuth`, `PublishRequest`) and returns plain values, or raises
one of the `PlatformError` subclasses below, which are the only outcomes the worker acts on:

- `PublishResult`              success: remote id + permalink
- `RetryableError`             try again later (`retry_after` seconds when the network said so)
- `TokenExpiredError`          the token is expired/revoked: refresh once, else reconnect
- `PermanentError`             content/permission problem: never retried, shown to the user
- `UnknownOutcomeError`        the request may have reached the network (dropped connection or
                               timeout after sending): never re-sent blindly
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ouipost.core.clock import Clock

if TYPE_CHECKING:
    from ouipost.platforms.http import PlatformHttp


# ---------------------------------------------------------------------------------------------
# Outcomes


class PlatformError(Exception):
    """A network said no, or could not be reached. `code` is the network's own code when known."""

    def __init__(
        self,
        message: str,
        *,
        network: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.network = network
        self.code = code
        self.status = status


class RetryableError(PlatformError):
    """Transient (429, 5xx, connection refused before sending) or deferred (daily quota)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TokenExpiredError(PlatformError):
    """The access token is expired or revoked; refresh once, else the account must reconnect."""


class PermanentError(PlatformError):
    """A content, validation, duplicate or permission error. `reconnect` when scopes are missing."""

    def __init__(self, message: str, *, reconnect: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reconnect = reconnect


class UnknownOutcomeError(PlatformError):
    """The request may or may not have taken effect (connection dropped after sending, timeout)."""


class NotSupportedError(PlatformError):
    """The network (or its API) cannot do this at all, e.g. text-only posts on Instagram."""


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


@dataclass
class AuthorizationRequest:
    """Where to send the user, and the PKCE verifier to keep beside the state (None without PKCE)."""

    url: str
    code_verifier: str | None = None


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None  # aware UTC; None: does not expire
    refresh_expires_at: datetime | None = None
    scopes: list[str] = field(default_factory=list)


@dataclass
class ConnectedIdentity:
    """One publishable identity a grant gives: a Facebook Page, an X user, a YouTube channel..."""

    remote_id: str
    type: str  # page, profile, business, organization, channel, creator
    name: str
    username: str | None
    profile_image: str | None
    token: TokenSet
    permissions: list[str] = field(default_factory=list)
    # Network-specific values the adapter needs later (page_id, pds_url, did, board_id, urn...).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccountAuth:
    """What an adapter receives to act for a connected account (tokens already decrypted)."""

    remote_id: str
    access_token: str
    refresh_token: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


ChunkStream = Callable[[int], AsyncIterator[bytes]]


@dataclass
class MediaFile:
    kind: Literal["image", "video"]
    mime_type: str
    size: int
    url: str  # a signed URL the network can fetch (pull-from-URL flows)
    stream: ChunkStream  # stream(chunk_size) yields the bytes (upload flows)
    filename: str = "media"
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds, videos
    alt_text: str | None = None

    async def read_all(self) -> bytes:
        parts = [chunk async for chunk in self.stream(1 << 20)]
        return b"".join(parts)


@dataclass
class PublishRequest:
    """The post as this network should show it; text is already composed (content, hashtags, link)."""

    text: str
    title: str | None = None
    link: str | None = None  # only for networks with a separate link field
    media: list[MediaFile] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. board_id, privacy_level
    # Unique to this publication (the target) and the same on every attempt: what a network's
    # idempotency key is made of, so that a re-sent request finds its first result and two posts
    # that happen to say the same thing stay two.
    target_key: str | None = None


@dataclass
class PublishResult:
    remote_id: str
    url: str | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostRef:
    """A published post (or thread part) as a reply or a comment must cite it: its id and whatever
    else the network asks for (Bluesky: the record's `cid` in `extra`; Threads and X: nothing)."""

    remote_id: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, result: PublishResult) -> PostRef:
        return cls(result.remote_id, dict(result.extra))


@dataclass
class Insights:
    """A post's metrics under the network's own names, and mapped onto the common four."""

    metrics: dict[str, float]
    impressions: int = 0
    reach: int = 0
    engagement: int = 0
    clicks: int = 0


@dataclass
class AccountStats:
    followers: int | None = None
    following: int | None = None
    posts_total: int | None = None
    demographics: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# The interface


class PlatformAdapter(ABC):
    """One network. Subclasses set the class attributes and implement every abstract method."""

    network: ClassVar[str]
    default_scopes: ClassVar[tuple[str, ...]] = ()
    uses_pkce: ClassVar[bool] = False
    supports_refresh: ClassVar[bool] = True
    #: The attributes that hold the seconds between status reads while the network processes
    #: uploaded media (containers, videos); `poll_media_every` sets them (OUIPOST_MEDIA_POLL_SECONDS).
    media_poll_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, http: PlatformHttp, credentials: ClientCredentials, clock: Clock | None = None) -> None:
        self.http = http
        self.credentials = credentials
        # Token expiries, deadlines and waits (processing polls, rate-limit resets) read this clock,
        # so a test moves time instead of waiting for it (ouipost/core/clock.py).
        self.clock = clock or Clock()

    def poll_media_every(self, seconds: float) -> None:
        """Read the network's media processing status every `seconds` instead of the adapter's
        default pace (which follows the network's advice and its limits on status reads)."""
        for name in self.media_poll_attributes:
            setattr(self, name, seconds)

    # OAuth -------------------------------------------------------------------------------------

    @abstractmethod
    def authorization_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] | None = None
    ) -> AuthorizationRequest:
        """The network's consent URL (real host; `http.url()` rewrites it for the sandbox)."""

    @abstractmethod
    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[ConnectedIdentity]:
        """Trade an authorization code for tokens and list the identities the grant gives.

        Raises PermanentError (code refused), RetryableError, UnknownOutcomeError.
        """

    async def login_with_password(self, identifier: str, password: str) -> ConnectedIdentity:
        """App-password login (Bluesky). Other networks connect through OAuth only."""
        raise NotSupportedError(f"{self.network} connects through OAuth", network=self.network)

    @abstractmethod
    async def refresh_token(self, auth: AccountAuth) -> TokenSet:
        """A fresh token set. TokenExpiredError when the network refuses (reconnect needed)."""

    @abstractmethod
    async def revoke(self, auth: AccountAuth) -> None:
        """Revoke the grant at the network where it has an endpoint for that (best effort)."""

    # Content -----------------------------------------------------------------------------------

    @abstractmethod
    async def publish(self, auth: AccountAuth, post: PublishRequest) -> PublishResult:
        """Publish, running the network's whole media flow; raise a PlatformError otherwise."""

    @abstractmethod
    async def delete(self, auth: AccountAuth, remote_id: str) -> None:
        """Delete a published post. NotSupportedError where the network has no delete."""

    # Follow-ups (threads and first comments) ---------------------------------------------------

    async def reply(
        self, auth: AccountAuth, post: PublishRequest, *, parent: PostRef, root: PostRef
    ) -> PublishResult:
        """Publish `post` as a reply to `parent` in the chain that `root` starts (the next part of a
        thread; `parent` is `root` for the first reply). Networks with reply chains only
        (`PlatformSpec.reply_chains`); `post.target_key` is the part's own idempotency key.
        Raises as `publish` does."""
        raise NotSupportedError(f"{self.network} has no reply chains", network=self.network)

    async def comment(self, auth: AccountAuth, text: str, *, on: PostRef, key: str | None = None) -> PublishResult:
        """Comment `text` on the published post `on` (a first comment). Networks with comments only
        (`PlatformSpec.comments`); on a network with reply chains the comment is a reply by the
        account itself. `key` is the comment's own idempotency key where the network takes one.
        Raises as `publish` does."""
        raise NotSupportedError(f"{self.network} has no comments", network=self.network)

    # Insights ----------------------------------------------------------------------------------

    @abstractmethod
    async def post_insights(self, auth: AccountAuth, remote_id: str) -> Insights:
        """The post's current metrics."""

    @abstractmethod
    async def account_stats(self, auth: AccountAuth) -> AccountStats:
        """Followers and the like for the account, as the network reports them."""
