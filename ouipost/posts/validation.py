"""Platform rules a post must obey, shared by create, update, validate and schedule/publish.

Pure functions over plain dataclasses: no database, no HTTP. Every number comes from the registry
(`ouipost.platforms.registry`); errors are human sentences keyed by network, ready for the 422
VALIDATION_ERROR details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ouipost.platforms.registry import PLATFORMS, PlatformSpec
from ouipost.platforms.text import (
    COUNTING_LABELS,
    count_inline_hashtags,
    count_text,
    effective_text,
    normalise_hashtags,
    utf8_length,
)
from ouipost.posts.followups import ThreadMode, thread_media_ids

MediaKind = Literal["image", "video", "document"]

# The registry has no `supports_documents` field yet; LinkedIn is the one network that takes a document
# (PDF) post (platforms.md §4). Move this into PlatformSpec when the registry grows the field.
_DOCUMENT_NETWORKS = frozenset({"linkedin"})


@dataclass(frozen=True)
class MediaInfo:
    """What validation needs to know about one uploaded media item."""

    id: str
    kind: MediaKind | str
    duration: float | None = None  # seconds, videos only
    width: int | None = None
    height: int | None = None


@dataclass
class DraftPost:
    """A post as validation sees it: the shared fields plus per-network overrides.

    `platform_content[network]` may hold content, title, link, hashtags and media_ids; a key that is
    missing or None falls back to the post's value. `extra_hashtags[network]` are the default hashtags of
    an account with auto_hashtags on, added after the post's own.
    """

    content: str | None = ""
    title: str | None = None
    link: str | None = None
    hashtags: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    platform_content: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: list[MediaInfo] = field(default_factory=list)
    extra_hashtags: dict[str, list[str]] = field(default_factory=dict)
    # network -> the target account's own limits under the registry's names, where its server sets
    # them (a Mastodon server's max_characters and max_images, read when the account connected).
    account_limits: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # Follow-ups (ouipost/posts/followups.py): the thread's parts ({content, media_ids?}), its mode
    # (None: "thread") and the first comment; checked by followup_errors.
    thread: Sequence[Mapping[str, Any]] = field(default_factory=list)
    thread_mode: str | None = None
    first_comment: str | None = None


def _override(post: DraftPost, network: str, key: str, default: Any) -> Any:
    value = (post.platform_content.get(network) or {}).get(key)
    return default if value is None else value


def select_media(
    media: Sequence[MediaInfo], media_ids: Sequence[str] | None
) -> tuple[list[MediaInfo], list[str]]:
    """The media a network gets: all of `media`, or those named by `media_ids` in that order.

    Returns (selected, unknown ids): ids not among the post's media are reported, not silently dropped.
    """
    if media_ids is None:
        return list(media), []
    by_id = {m.id: m for m in media}
    selected = [by_id[mid] for mid in dict.fromkeys(media_ids) if mid in by_id]
    unknown = [mid for mid in media_ids if mid not in by_id]
    return selected, unknown


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def media_errors_for(spec: PlatformSpec, media: Sequence[MediaInfo]) -> list[str]:
    """Per-network media rules for `media` as one post on `spec`'s network (counts, kinds, durations).

    Does not check that media is present; see validate_for_networks(require_media=True).
    """
    images = [m for m in media if m.kind == "image"]
    videos = [m for m in media if m.kind == "video"]
    documents = [m for m in media if m.kind == "document"]
    return [
        *(f"media {m.id} is of unknown type {m.kind!r}" for m in media
          if m.kind not in ("image", "video", "document")),
        *_document_errors(spec, documents, mixed=bool(images or videos)),
        *_image_errors(spec, images),
        *_video_errors(spec, videos),
        *_mix_errors(spec, images, videos),
    ]


def _document_errors(spec: PlatformSpec, documents: Sequence[MediaInfo], *, mixed: bool) -> list[str]:
    if not documents:
        return []
    if spec.id not in _DOCUMENT_NETWORKS:
        return [f"{spec.name} does not accept documents"]
    errors = []
    if len(documents) > 1:
        errors.append(f"{_plural(len(documents), 'document')}, {spec.name} takes one document per post")
    if mixed:
        errors.append(f"{spec.name} cannot combine a document with images or video in one post")
    return errors


def _image_errors(spec: PlatformSpec, images: Sequence[MediaInfo]) -> list[str]:
    name = spec.name
    if not images:
        return []
    if not spec.supports_images:
        hint = " (it takes exactly one video)" if spec.supports_videos else ""
        return [f"{name} does not accept images{hint}"]
    if len(images) > spec.max_images:
        return [f"{_plural(len(images), 'image')}, {name} allows at most {spec.max_images}"]
    if len(images) > 1 and not spec.supports_carousel and spec.max_images <= 1:
        return [f"{_plural(len(images), 'image')}, {name} takes one image per post (no carousels)"]
    return []


def _video_errors(spec: PlatformSpec, videos: Sequence[MediaInfo]) -> list[str]:
    name = spec.name
    if not videos:
        return []
    if not spec.supports_videos:
        return [f"{name} does not accept videos"]
    errors = []
    if len(videos) > spec.max_videos:
        errors.append(f"{_plural(len(videos), 'video')}, {name} allows at most {spec.max_videos} per post")
    errors.extend(f"video {v.id} lasts {v.duration:g} s, {name} allows at most {spec.max_video_duration} s"
                  for v in videos if v.duration is not None and v.duration > spec.max_video_duration)
    return errors


def _mix_errors(spec: PlatformSpec, images: Sequence[MediaInfo], videos: Sequence[MediaInfo]) -> list[str]:
    if not (images and videos and spec.supports_images and spec.supports_videos):
        return []
    if not spec.mix_images_and_video:
        return [f"{spec.name} cannot mix images and video in one post"]
    if len(images) + len(videos) > spec.max_images:  # a mixed carousel counts every item
        return [f"{len(images) + len(videos)} items, {spec.name} carousels hold at most {spec.max_images}"]
    return []


def _missing_media_error(spec: PlatformSpec, media: Sequence[MediaInfo]) -> str | None:
    """The error when a network that requires media has none it can use (schedule/publish time)."""
    if not spec.requires_media:
        return None
    if not spec.supports_images:
        # YouTube: a post is exactly one video.
        if not any(m.kind == "video" for m in media):
            return f"{spec.name} needs exactly one video"
        return None
    usable = [m for m in media if m.kind == "image" or (m.kind == "video" and spec.supports_videos)]
    if not usable:
        kinds = "an image or a video" if spec.supports_videos else "an image"
        return f"{spec.name} needs media: attach {kinds}"
    return None


def own_media(post: DraftPost) -> list[MediaInfo]:
    """The media the post itself carries where no platform_content media_ids names them: those
    attached, minus those a thread part names (followups.thread_media_ids), as the worker sends it."""
    in_thread = thread_media_ids(post.thread)
    return [m for m in post.media if m.id not in in_thread] if in_thread else list(post.media)


def _text_errors(spec: PlatformSpec, text: str) -> list[str]:
    errors: list[str] = []
    counted = count_text(text, spec.text_counting)
    if counted > spec.max_characters:
        unit = "bytes" if spec.text_counting == "utf8_bytes" else "characters"
        errors.append(
            f"{counted} of {spec.max_characters} {unit} ({spec.name} {COUNTING_LABELS[spec.text_counting]})"
        )
    if spec.max_bytes is not None:
        size = utf8_length(text)
        if size > spec.max_bytes:
            errors.append(f"{size} of {spec.max_bytes} bytes ({spec.name} also limits the text's UTF-8 size)")
    if spec.max_hashtags is not None:
        tags = count_inline_hashtags(text)
        if tags > spec.max_hashtags:
            errors.append(f"{tags} hashtags, {spec.name} allows at most {spec.max_hashtags}")
    return errors


def validate_network(post: DraftPost, network: str, *, require_media: bool) -> list[str]:
    """The errors of `post` on one network (empty list when it is fine)."""
    spec = PLATFORMS.get(network)
    if spec is None:
        return [f"{network!r} is not a supported network"]
    spec = with_account_limits(spec, post.account_limits.get(network))
    errors: list[str] = []

    content = _override(post, network, "content", post.content) or ""
    link = _override(post, network, "link", post.link)
    title = _override(post, network, "title", post.title)
    raw_tags = list(_override(post, network, "hashtags", post.hashtags)) + list(post.extra_hashtags.get(network, []))
    try:
        tags = normalise_hashtags(raw_tags)
    except ValueError as exc:
        errors.append(str(exc))
        tags = []

    text = effective_text(content, tags, link, spec)
    errors.extend(_text_errors(spec, text))

    if title and spec.max_title is not None and len(title) > spec.max_title:
        errors.append(f"title is {len(title)} of {spec.max_title} characters ({spec.name})")

    errors.extend(option_errors(spec, _override(post, network, "options", None) or {}))

    chosen = _override(post, network, "media_ids", None)  # an override may name a thread part's media too
    media, unknown = select_media(post.media if chosen is not None else own_media(post), chosen)
    if unknown:
        errors.append(f"media_ids not attached to this post: {', '.join(unknown)}")
    errors.extend(media_errors_for(spec, media))

    if require_media:
        missing = _missing_media_error(spec, media)
        if missing:
            errors.append(missing)
        elif not media and not text.strip():
            errors.append("nothing to publish: no text and no media")
    return errors


MAX_OPTION_LENGTH = 500


def option_errors(spec: PlatformSpec, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a post's `options` for this network: names it does not take (every name,
    for a network that takes none), values that are not plain text, numbers or booleans, a value
    outside the network's choices."""
    allowed = dict(entry.partition("=")[::2] for entry in spec.publish_options)
    errors: list[str] = []
    for name, value in options.items():
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "none"
            errors.append(f"option {name!r} is not one {spec.name} takes (it takes: {takes})")
        elif not isinstance(value, str | int | float | bool) or len(str(value)) > MAX_OPTION_LENGTH:
            errors.append(f"option {name!r} must be a text of at most {MAX_OPTION_LENGTH} characters, "
                          "a number or a boolean")
        elif allowed[name] and str(value) not in allowed[name].split("|"):
            errors.append(f"option {name!r} must be one of {', '.join(allowed[name].split('|'))}")
    return errors


ACCOUNT_LIMIT_FIELDS = ("max_characters", "max_images")
UNKNOWN_SERVER_MAX_CHARACTERS = 100_000  # the API's own cap on content


def with_account_limits(spec: PlatformSpec, limits: Mapping[str, Any] | None) -> PlatformSpec:
    """`spec` with the limits an account's server sets (positive integers under ACCOUNT_LIMIT_FIELDS)
    in place of the network's defaults; `spec` itself when there are none."""
    if limits is None and spec.instance_based:
        # No account known (a draft): each server sets its own text limit, often above the default;
        # it is checked once the post's account (and so its server) is known.
        return replace(spec, max_characters=UNKNOWN_SERVER_MAX_CHARACTERS)
    if not limits:
        return spec
    def limit(name: str, default: int) -> int:
        value = limits.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    return replace(spec, max_characters=limit("max_characters", spec.max_characters),
                   max_images=limit("max_images", spec.max_images))


def strictest_limits(pairs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Mapping[str, Any]]:
    """network -> the smallest of each limit over the (network, account limits) pairs: a post sent
    to two servers of one network must fit the stricter of them."""
    out: dict[str, dict[str, Any]] = {}
    for network, limits in pairs:
        merged = out.setdefault(network, {})
        for name in ACCOUNT_LIMIT_FIELDS:
            value = limits.get(name)
            if isinstance(value, int) and value > 0:
                merged[name] = min(value, merged.get(name, value))
    return dict(out)


def validate_for_networks(post: DraftPost, *, require_media: bool) -> dict[str, list[str]]:
    """Every platform rule for every network `post` targets; {} when the post is fine everywhere.

    Text length (each network's own counting), Bluesky's byte cap, title limits, hashtag caps, media
    counts, kinds, carousels, video durations and mixing, with per-network overrides from
    platform_content (content, title, link, hashtags, media_ids). With `require_media` (schedule and
    publish), networks that cannot post without media (Instagram, TikTok, YouTube, Pinterest) need
    media they accept, and an empty post is refused. Unknown networks get an error of their own.
    """
    errors: dict[str, list[str]] = {}
    for network in dict.fromkeys(post.networks):
        problems = validate_network(post, network, require_media=require_media)
        if problems:
            errors[network] = problems
    errors.update(followup_errors(post))
    return errors


# --- follow-ups: the thread and the first comment ------------------------------------------------

REPLY_CHAIN_NETWORKS = tuple(n for n, s in PLATFORMS.items() if s.reply_chains)
COMMENT_NETWORKS = tuple(n for n, s in PLATFORMS.items() if s.comments and not s.reply_chains)


def _listed(networks: Iterable[str]) -> str:
    return ", ".join(networks)


def _comment_errors(spec: PlatformSpec, text: str) -> list[str]:
    """A comment's length on `spec`'s network: its own cap (max_comment_characters) where it has
    one, else the post's limit, each counted as the network counts a post's text. A cap in
    characters is not counted in bytes: YouTube counts a description's UTF-8 bytes, a comment's
    characters."""
    if spec.max_comment_characters is None:
        return _text_errors(spec, text)
    counting = "codepoints" if spec.text_counting == "utf8_bytes" else spec.text_counting
    counted = count_text(text, counting)
    if counted > spec.max_comment_characters:
        return [f"{counted} of {spec.max_comment_characters} characters in a comment "
                f"({spec.name} {COUNTING_LABELS[counting]})"]
    return []


def _part_key(index: int) -> str:
    return f"thread.{index}"


def followup_errors(post: DraftPost) -> dict[str, list[str]]:
    """What the post's follow-ups break on its networks, keyed `thread` (the thread as a whole),
    `thread.N` (part N, from 0), `thread_mode` and `first_comment`; {} when none.

    A thread is a reply chain on networks with reply chains (each part checked as a post there: its
    text as written, counted as the network counts, and its own media, which must be attached to
    the post); elsewhere it is refused, unless thread_mode is "first_comment", where the first part
    is a comment (text only, the network's comment length) on networks that take comments. The
    first comment is refused on networks without comments and must fit their comment length.
    Unknown networks are left to validate_network.
    """
    specs = [with_account_limits(PLATFORMS[n], post.account_limits.get(n))
             for n in dict.fromkeys(post.networks) if n in PLATFORMS]
    errors = _Errors()
    if post.thread:
        _thread_errors(post, specs, errors)
    if post.first_comment:
        _first_comment_errors(post.first_comment, specs, errors)
    return errors.by_key


class _Errors:
    """Messages by key, each once."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        found = self.by_key.setdefault(key, [])
        if message not in found:
            found.append(message)


def _thread_errors(post: DraftPost, specs: Sequence[PlatformSpec], errors: _Errors) -> None:
    mode = post.thread_mode or ThreadMode.THREAD
    no_chains = [s.id for s in specs if not s.reply_chains]
    if mode == ThreadMode.THREAD and no_chains:
        errors.add("thread", f"A thread is published as a reply chain on {_listed(REPLY_CHAIN_NETWORKS)} only, "
                             f"not on {_listed(no_chains)}; thread_mode \"first_comment\" leaves the first part as a "
                             f"comment on networks that take comments ({_listed(COMMENT_NETWORKS)})")
    if mode == ThreadMode.FIRST_COMMENT:
        silent = [s.id for s in specs if not s.reply_chains and not s.comments]
        if silent:
            errors.add("thread_mode", f"thread_mode \"first_comment\" leaves the first part as a comment, and there "
                                      f"are no comments on {_listed(silent)}: remove the thread or those networks")
    for index, part in enumerate(post.thread):
        _part_errors(post, index, part, specs, mode, errors)


def _part_errors(post: DraftPost, index: int, part: Mapping[str, Any], specs: Sequence[PlatformSpec], mode: str,
                 errors: _Errors) -> None:
    """Part `index` as a post where it is a reply, as a comment where it is the first comment."""
    key, content = _part_key(index), part.get("content") or ""
    media, unknown = select_media(post.media, list(part.get("media_ids") or []))
    if unknown:
        errors.add(key, f"media_ids not attached to this post: {', '.join(unknown)}")
    for spec in specs:
        if spec.reply_chains:
            problems = [*_text_errors(spec, content), *media_errors_for(spec, media)]
        elif index == 0 and spec.comments and mode == ThreadMode.FIRST_COMMENT:
            problems = _comment_errors(spec, content)
            if part.get("media_ids"):
                problems = [f"comments carry text only on {spec.name}: the first part is a comment there, "
                            "remove its media_ids", *problems]
        else:
            problems = []
        for problem in problems:
            errors.add(key, problem)


def _first_comment_errors(comment: str, specs: Sequence[PlatformSpec], errors: _Errors) -> None:
    no_comments = [s.id for s in specs if not s.comments]
    if no_comments:
        errors.add("first_comment", f"A first comment cannot be left on {_listed(no_comments)} (there are no "
                                    "comments there): remove first_comment or those networks")
    for spec in specs:
        if spec.comments:
            for problem in _comment_errors(spec, comment):
                errors.add("first_comment", problem)


def media_limit_errors(
    networks: Iterable[str],
    media: Sequence[MediaInfo],
    *,
    platform_media: Mapping[str, Sequence[str] | None] | None = None,
    account_limits: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, list[str]]:
    """Upload-time check: would the post's media (new upload included) break a network's media limits?

    `media` is every media item of the post after the upload; `platform_media[network]` narrows a
    network to the media_ids of its platform_content; `account_limits[network]` are the limits of
    the target account's server where it sets them (a Mastodon server's max_images). A 5th image on
    a post targeting X is an error here. Missing media is not checked (a draft may still be
    incomplete). Unknown networks are ignored: validate_for_networks reports them.
    """
    errors: dict[str, list[str]] = {}
    for network in dict.fromkeys(networks):
        spec = PLATFORMS.get(network)
        if spec is None:
            continue
        spec = with_account_limits(spec, (account_limits or {}).get(network))
        selected, _ = select_media(media, (platform_media or {}).get(network))
        problems = media_errors_for(spec, selected)
        if problems:
            errors[network] = problems
    return errors


__all__ = [
    "DraftPost",
    "MediaInfo",
    "followup_errors",
    "media_errors_for",
    "media_limit_errors",
    "own_media",
    "select_media",
    "validate_for_networks",
    "validate_network",
]
