"""GET /api/platforms: the ten networks with every capability field of the reference."""

from __future__ import annotations

from typing import Any

REFERENCE_FIELDS = {
    "id", "name", "supports_images", "supports_videos", "supports_carousel", "supports_stories",
    "max_characters", "max_images", "max_video_duration", "oauth_supported",
}


async def test_all_ten_networks_with_every_reference_field(client: Any, key: Any) -> None:
    resp = await client.get("/api/platforms", headers=key.headers())
    assert resp.status == 200
    platforms = (await resp.json())["data"]["platforms"]
    assert [p["id"] for p in platforms] == [
        "facebook", "instagram", "twitter", "linkedin", "tiktok", "youtube", "pinterest", "threads", "bluesky",
        "mastodon",
    ]
    for platform in platforms:
        assert set(platform) == REFERENCE_FIELDS


async def test_reference_values_for_facebook_instagram_and_x(client: Any, key: Any) -> None:
    platforms = {p["id"]: p for p in (await (await client.get("/api/platforms", headers=key.headers())).json())[
        "data"]["platforms"]}
    assert platforms["facebook"] == {
        "id": "facebook", "name": "Facebook", "supports_images": True, "supports_videos": True,
        "supports_carousel": True, "supports_stories": True, "max_characters": 63206, "max_images": 10,
        "max_video_duration": 240, "oauth_supported": True,
    }
    assert platforms["instagram"]["max_characters"] == 2200 and platforms["instagram"]["max_video_duration"] == 60
    assert platforms["twitter"] == {
        "id": "twitter", "name": "Twitter/X", "supports_images": True, "supports_videos": True,
        "supports_carousel": False, "supports_stories": False, "max_characters": 280, "max_images": 4,
        "max_video_duration": 140, "oauth_supported": True,
    }
    assert platforms["bluesky"]["max_characters"] == 300 and platforms["bluesky"]["oauth_supported"] is False
    assert platforms["threads"]["max_characters"] == 500
    assert platforms["youtube"]["supports_images"] is False
