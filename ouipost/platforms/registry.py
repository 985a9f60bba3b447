"""The one registry of networks: capabilities and limits.

`GET /api/platforms` shows these rows, post validation reads them, and the adapter lookup uses
`adapter` (a dotted path, imported lazily) so that adding a network touches its adapter, its sandbox
module and one row here. Numbers come from shared/platforms.md; where the API reference shows a value
(facebook, instagram, twitter) the reference wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TextCounting = Literal["codepoints", "twitter", "graphemes", "utf8_bytes", "mastodon"]


@dataclass(frozen=True)
class PlatformSpec:
    id: str
    name: str
    supports_images: bool
    supports_videos: bool
    supports_carousel: bool
    supports_stories: bool
    max_characters: int
    max_images: int
    max_video_duration: int  # seconds
    oauth_supported: bool
    # What validation needs beyond the public capability fields.
    text_counting: TextCounting = "codepoints"
    max_bytes: int | None = None  # a second cap in UTF-8 bytes (Bluesky 3,000)
    requires_media: bool = False
    separate_link_field: bool = False  # facebook, linkedin, pinterest carry the link apart from text
    max_title: int | None = None
    min_carousel_items: int = 2
    max_hashtags: int | None = None
    max_videos: int = 1
    mix_images_and_video: bool = False
    adapter: str = ""
    hosts: tuple[str, ...] = field(default_factory=tuple)
    # Accounts live on a server the user names (`instance` when connecting): the OAuth app is
    # registered on each server at first use (ouipost/accounts/instance_apps.py), not configured per network.
    instance_based: bool = False
    # The per-network `options` a post may give (platform_content.<network>.options), as `name` or
    # `name=choice|choice` when only some values exist; validation refuses any other.
    publish_options: tuple[str, ...] = ()
    # Follow-ups after the post (a post's `thread` and `first_comment`): `reply_chains` when a part
    # can reply to the previous one (X, Bluesky, Threads, Mastodon), `comments` when a comment can be
    # left on the post (on a network with reply chains, a reply by the account itself).
    reply_chains: bool = False
    comments: bool = False
    max_comment_characters: int | None = None  # a comment's own cap where it differs from a post's

    def public(self) -> dict[str, object]:
        """The capability fields of the API reference, in its order."""
        return {
            "id": self.id,
            "name": self.name,
            "supports_images": self.supports_images,
            "supports_videos": self.supports_videos,
            "supports_carousel": self.supports_carousel,
            "supports_stories": self.supports_stories,
            "max_characters": self.max_characters,
            "max_images": self.max_images,
            "max_video_duration": self.max_video_duration,
            "oauth_supported": self.oauth_supported,
        }


PLATFORMS: dict[str, PlatformSpec] = {
    spec.id: spec
    for spec in (
        PlatformSpec(
            id="facebook", name="Facebook", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=True, max_characters=63206, max_images=10,
            max_video_duration=240, oauth_supported=True, separate_link_field=True,
            comments=True, max_comment_characters=8000,
            adapter="ouipost.platforms.facebook:FacebookAdapter",
        ),
        PlatformSpec(
            id="instagram", name="Instagram", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=True, max_characters=2200, max_images=10,
            max_video_duration=60, oauth_supported=True, requires_media=True, max_hashtags=30,
            mix_images_and_video=True,
            comments=True, max_comment_characters=2200,
            adapter="ouipost.platforms.instagram:InstagramAdapter",
        ),
        PlatformSpec(
            id="twitter", name="Twitter/X", supports_images=True, supports_videos=True,
            supports_carousel=False, supports_stories=False, max_characters=280, max_images=4,
            max_video_duration=140, oauth_supported=True, text_counting="twitter",
            reply_chains=True, comments=True,
            adapter="ouipost.platforms.twitter:TwitterAdapter",
        ),
        PlatformSpec(
            id="linkedin", name="LinkedIn", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=False, max_characters=3000, max_images=20,
            max_video_duration=1800, oauth_supported=True, separate_link_field=True,
            comments=True, max_comment_characters=1250,
            adapter="ouipost.platforms.linkedin:LinkedInAdapter",
        ),
        PlatformSpec(
            id="tiktok", name="TikTok", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=False, max_characters=2200, max_images=35,
            max_video_duration=600, oauth_supported=True, requires_media=True, max_title=90,
            adapter="ouipost.platforms.tiktok:TikTokAdapter",
        ),
        PlatformSpec(
            id="youtube", name="YouTube", supports_images=False, supports_videos=True,
            supports_carousel=False, supports_stories=False, max_characters=5000, max_images=0,
            max_video_duration=900, oauth_supported=True, text_counting="utf8_bytes",
            requires_media=True, max_title=100,
            comments=True, max_comment_characters=10000,
            adapter="ouipost.platforms.youtube:YouTubeAdapter",
        ),
        PlatformSpec(
            id="pinterest", name="Pinterest", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=False, max_characters=800, max_images=5,
            max_video_duration=900, oauth_supported=True, requires_media=True,
            separate_link_field=True, max_title=100,
            adapter="ouipost.platforms.pinterest:PinterestAdapter",
        ),
        PlatformSpec(
            id="threads", name="Threads", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=False, max_characters=500, max_images=20,
            max_video_duration=300, oauth_supported=True, mix_images_and_video=True,
            reply_chains=True, comments=True,
            adapter="ouipost.platforms.threads:ThreadsAdapter",
        ),
        PlatformSpec(
            id="bluesky", name="Bluesky", supports_images=True, supports_videos=True,
            supports_carousel=True, supports_stories=False, max_characters=300, max_images=4,
            max_video_duration=180, oauth_supported=False, text_counting="graphemes",
            max_bytes=3000,
            reply_chains=True, comments=True,
            adapter="ouipost.platforms.bluesky:BlueskyAdapter",
        ),
        PlatformSpec(
            id="mastodon", name="Mastodon", supports_images=True, supports_videos=True,
            supports_carousel=False, supports_stories=False, max_characters=500, max_images=4,
            # Mastodon caps a video's size (99 MB by default), not its length; the server's own
            # limits (characters, attachments) are read from GET /api/v2/instance when connecting.
            max_video_duration=3600, oauth_supported=True, text_counting="mastodon",
            instance_based=True,
            publish_options=("visibility=public|unlisted|private|direct", "spoiler_text", "sensitive", "language"),
            reply_chains=True, comments=True,
            adapter="ouipost.platforms.mastodon:MastodonAdapter",
        ),
    )
}

NETWORKS: tuple[str, ...] = tuple(PLATFORMS)


def get_platform(network: str) -> PlatformSpec:
    """The spec of `network`; KeyError when it is not one of ours."""
    return PLATFORMS[network]
