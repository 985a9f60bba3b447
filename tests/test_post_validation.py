"""Platform rules for posts: text limits per network, titles, hashtags, media, and per-network overrides."""

from __future__ import annotations

import pytest

from ouipost.platforms.registry import PLATFORMS, get_platform
from ouipost.posts.validation import DraftPost, MediaInfo, media_limit_errors, validate_for_networks

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"


def image(n: int) -> MediaInfo:
    return MediaInfo(id=f"media_img{n}", kind="image", width=1080, height=1080)


def video(n: int = 1, duration: float = 30.0) -> MediaInfo:
    return MediaInfo(id=f"media_vid{n}", kind="video", duration=duration, width=1080, height=1920)


def post(networks: list[str], content: str = "Hello", **fields: object) -> DraftPost:
    return DraftPost(content=content, networks=networks, **fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ text


@pytest.mark.parametrize("network", list(PLATFORMS))
def test_text_at_the_limit_passes_and_one_more_fails(network: str) -> None:
    spec = get_platform(network)
    # A server-based network's own limit is known once the account is; {}: its server sets none.
    known = {"account_limits": {network: {}}} if spec.instance_based else {}
    at_limit = post([network], "a" * spec.max_characters, **known)
    errors = validate_for_networks(at_limit, require_media=False).get(network, [])
    assert not any("characters" in e or "bytes" in e for e in errors)
    over = post([network], "a" * (spec.max_characters + 1), **known)
    errors = validate_for_networks(over, require_media=False)[network]
    assert any(f"{spec.max_characters + 1} of {spec.max_characters}" in e for e in errors)


def test_bluesky_message_says_how_it_counts() -> None:
    errors = validate_for_networks(post(["bluesky"], "x" * 312), require_media=False)
    assert errors == {"bluesky": ["312 of 300 characters (Bluesky counts graphemes)"]}


def test_bluesky_family_emoji_count_one_each() -> None:
    assert validate_for_networks(post(["bluesky"], FAMILY * 100), require_media=False) == {}


def test_bluesky_also_caps_utf8_bytes() -> None:
    # 300 graphemes are fine, but 300 family emoji are 7,500 bytes.
    errors = validate_for_networks(post(["bluesky"], FAMILY * 300), require_media=False)
    assert errors == {"bluesky": ["7500 of 3000 bytes (Bluesky also limits the text's UTF-8 size)"]}


def test_x_counts_cjk_double_and_urls_as_23() -> None:
    assert validate_for_networks(post(["twitter"], "中" * 140), require_media=False) == {}
    errors = validate_for_networks(post(["twitter"], "中" * 141), require_media=False)
    assert errors["twitter"][0].startswith("282 of 280 characters (Twitter/X counts URLs as 23")
    long_url = "https://example.com/" + "x" * 400
    assert validate_for_networks(post(["twitter"], "a" * 250 + " " + long_url), require_media=False) == {}


def test_youtube_description_counts_bytes() -> None:
    errors = validate_for_networks(post(["youtube"], "é" * 2501), require_media=False)
    assert errors["youtube"] == ["5002 of 5000 bytes (YouTube counts UTF-8 bytes)"]


def test_hashtags_and_link_count_towards_the_limit() -> None:
    # 270 + "\n\n#tagged" (9) + " https://ex.com" (1 + 23) = 303 on X; Facebook keeps the link apart.
    draft = post(["twitter", "facebook"], "a" * 270, hashtags=["tagged"], link="https://ex.com")
    errors = validate_for_networks(draft, require_media=False)
    assert list(errors) == ["twitter"]
    assert errors["twitter"][0].startswith("303 of 280")


def test_auto_hashtags_of_an_account_count_too() -> None:
    draft = post(["threads"], "a" * 495, extra_hashtags={"threads": ["brand"]})
    errors = validate_for_networks(draft, require_media=False)
    assert errors["threads"][0].startswith("503 of 500")


def test_instagram_allows_30_hashtags() -> None:
    tags = [f"tag{i}a" for i in range(30)]
    ok = post(["instagram"], "Look", hashtags=tags, media=[image(1)])
    assert validate_for_networks(ok, require_media=True) == {}
    too_many = post(["instagram"], "Look #inline", hashtags=tags, media=[image(1)])
    assert validate_for_networks(too_many, require_media=True) == {
        "instagram": ["31 hashtags, Instagram allows at most 30"]
    }


def test_invalid_hashtag_is_reported_per_network() -> None:
    errors = validate_for_networks(post(["threads"], hashtags=["bad tag"]), require_media=False)
    assert "whitespace" in errors["threads"][0]


# ------------------------------------------------------------------------------------------------ titles


@pytest.mark.parametrize(("network", "limit"), [("youtube", 100), ("pinterest", 100), ("tiktok", 90)])
def test_title_limits(network: str, limit: int) -> None:
    assert validate_for_networks(post([network], title="t" * limit), require_media=False) == {}
    errors = validate_for_networks(post([network], title="t" * (limit + 1)), require_media=False)
    assert errors[network] == [f"title is {limit + 1} of {limit} characters ({get_platform(network).name})"]


# ------------------------------------------------------------------------------------------------ media


def test_x_takes_four_images_not_five() -> None:
    assert validate_for_networks(post(["twitter"], media=[image(i) for i in range(4)]), require_media=True) == {}
    errors = validate_for_networks(post(["twitter"], media=[image(i) for i in range(5)]), require_media=True)
    assert errors == {"twitter": ["5 images, Twitter/X allows at most 4"]}


def test_a_fifth_image_on_a_post_targeting_x_is_refused_at_upload() -> None:
    assert media_limit_errors(["twitter", "facebook"], [image(i) for i in range(4)]) == {}
    errors = media_limit_errors(["twitter", "facebook"], [image(i) for i in range(5)])
    assert errors == {"twitter": ["5 images, Twitter/X allows at most 4"]}


def test_upload_check_respects_per_network_media_selection() -> None:
    media = [image(i) for i in range(6)]
    picked = {"twitter": [m.id for m in media[:4]]}
    assert media_limit_errors(["twitter"], media, platform_media=picked) == {}


def test_instagram_carousel_holds_ten_images() -> None:
    assert validate_for_networks(post(["instagram"], media=[image(i) for i in range(10)]), require_media=True) == {}
    errors = validate_for_networks(post(["instagram"], media=[image(i) for i in range(11)]), require_media=True)
    assert errors["instagram"] == ["11 images, Instagram allows at most 10"]


def test_video_longer_than_the_network_allows() -> None:
    draft = post(["twitter", "tiktok"], media=[video(1, duration=140.5)])
    errors = validate_for_networks(draft, require_media=True)
    assert errors == {"twitter": ["video media_vid1 lasts 140.5 s, Twitter/X allows at most 140 s"]}


def test_video_at_exactly_the_maximum_duration_passes() -> None:
    assert validate_for_networks(post(["instagram"], media=[video(1, duration=60)]), require_media=True) == {}


def test_only_one_video_per_post() -> None:
    errors = validate_for_networks(post(["threads"], media=[video(1), video(2)]), require_media=True)
    assert errors["threads"] == ["2 videos, Threads allows at most 1 per post"]


def test_mixing_images_and_video() -> None:
    mixed = [image(1), video(1)]
    errors = validate_for_networks(post(["twitter", "instagram", "threads", "tiktok"], media=mixed), require_media=True)
    assert errors == {
        "twitter": ["Twitter/X cannot mix images and video in one post"],
        "tiktok": ["TikTok cannot mix images and video in one post"],
    }


def test_mixed_carousel_counts_every_item() -> None:
    media = [*(image(i) for i in range(10)), video(1)]
    errors = validate_for_networks(post(["instagram"], media=media), require_media=True)
    assert errors["instagram"] == ["11 items, Instagram carousels hold at most 10"]


def test_youtube_needs_exactly_one_video_and_no_images() -> None:
    assert validate_for_networks(post(["youtube"], title="Clip", media=[video(1)]), require_media=True) == {}
    no_video = validate_for_networks(post(["youtube"]), require_media=True)
    assert no_video == {"youtube": ["YouTube needs exactly one video"]}
    errors = validate_for_networks(post(["youtube"], media=[image(1)]), require_media=True)
    assert errors["youtube"] == [
        "YouTube does not accept images (it takes exactly one video)", "YouTube needs exactly one video",
    ]
    errors = validate_for_networks(post(["youtube"], media=[video(1), video(2)]), require_media=True)
    assert errors["youtube"] == ["2 videos, YouTube allows at most 1 per post"]


def test_networks_that_need_media_only_complain_when_scheduling() -> None:
    draft = post(["instagram", "tiktok", "pinterest", "twitter"])
    assert validate_for_networks(draft, require_media=False) == {}
    assert validate_for_networks(draft, require_media=True) == {
        "instagram": ["Instagram needs media: attach an image or a video"],
        "tiktok": ["TikTok needs media: attach an image or a video"],
        "pinterest": ["Pinterest needs media: attach an image or a video"],
    }


def test_documents_only_on_linkedin() -> None:
    pdf = MediaInfo(id="media_doc", kind="document")
    errors = validate_for_networks(post(["linkedin", "facebook"], media=[pdf]), require_media=True)
    assert errors == {"facebook": ["Facebook does not accept documents"]}


def test_empty_post_cannot_be_published() -> None:
    assert validate_for_networks(post(["threads"], ""), require_media=False) == {}
    assert validate_for_networks(post(["threads"], ""), require_media=True) == {
        "threads": ["nothing to publish: no text and no media"]
    }


# ------------------------------------------------------------------------------------------------ platform_content


def test_platform_content_overrides_the_text_for_one_network() -> None:
    draft = post(["twitter", "linkedin"], "L" * 1000, platform_content={"twitter": {"content": "Short for X"}})
    assert validate_for_networks(draft, require_media=False) == {}
    draft = post(["twitter", "linkedin"], "Short", platform_content={"linkedin": {"content": "L" * 3001}})
    assert list(validate_for_networks(draft, require_media=False)) == ["linkedin"]


def test_platform_content_overrides_title_link_and_hashtags() -> None:
    draft = post(
        ["pinterest", "threads"], "Pin", title="t" * 101,
        platform_content={"pinterest": {"title": "Short title"}, "threads": {"hashtags": ["x" * 600]}},
        media=[image(1)],
    )
    errors = validate_for_networks(draft, require_media=True)
    assert list(errors) == ["threads"]
    assert errors["threads"][0].startswith("606 of 500")


def test_platform_content_media_ids_select_media_per_network() -> None:
    media = [image(1), image(2), image(3), image(4), image(5), video(1, duration=200)]
    draft = post(
        ["twitter", "instagram", "youtube"], media=media, title="Clip",
        platform_content={
            "twitter": {"media_ids": ["media_img1", "media_img2"]},
            "instagram": {"media_ids": ["media_img1", "media_img2", "media_img3"]},
            "youtube": {"media_ids": ["media_vid1"]},
        },
    )
    assert validate_for_networks(draft, require_media=True) == {}


def test_platform_content_media_ids_must_belong_to_the_post() -> None:
    draft = post(["twitter"], media=[image(1)], platform_content={"twitter": {"media_ids": ["media_other"]}})
    errors = validate_for_networks(draft, require_media=False)
    assert errors == {"twitter": ["media_ids not attached to this post: media_other"]}


def test_an_empty_media_selection_means_no_media_for_that_network() -> None:
    draft = post(["instagram"], media=[image(1)], platform_content={"instagram": {"media_ids": []}})
    assert validate_for_networks(draft, require_media=True) == {
        "instagram": ["Instagram needs media: attach an image or a video"]
    }


def test_unknown_network_is_reported() -> None:
    errors = validate_for_networks(post(["myspace"]), require_media=False)
    assert errors == {"myspace": ["'myspace' is not a supported network"]}


def test_errors_are_keyed_by_network_and_fine_networks_are_absent() -> None:
    draft = post(list(PLATFORMS), "Hello", media=[image(1)])
    errors = validate_for_networks(draft, require_media=True)
    assert set(errors) == {"youtube"}
