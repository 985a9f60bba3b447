"""Threads and first comments (issue 17 part 1) in the post API: the request fields, their rules per
network (ouipost.posts.validation.followup_errors), what is stored and shown, and refusals that
change nothing."""

from __future__ import annotations

from typing import Any

from ouipost.posts.validation import DraftPost, MediaInfo, followup_errors, validate_for_networks

CHAINS = "twitter, threads, bluesky, mastodon"


def image(n: int) -> MediaInfo:
    return MediaInfo(id=f"media_img{n}", kind="image", width=1080, height=1080)


def draft(networks: list[str], **fields: Any) -> DraftPost:
    return DraftPost(**{"content": "Hello", **fields}, networks=networks)


# --- the rules, on plain drafts --------------------------------------------------------------------


def test_no_followups_no_errors() -> None:
    assert followup_errors(draft(["twitter", "linkedin", "tiktok"])) == {}


def test_a_thread_on_networks_without_reply_chains_is_one_message_naming_them() -> None:
    errors = followup_errors(draft(["twitter", "linkedin", "pinterest"], thread=[{"content": "More"}]))
    assert errors == {"thread": [
        f"A thread is published as a reply chain on {CHAINS} only, not on linkedin, pinterest; thread_mode "
        '"first_comment" leaves the first part as a comment on networks that take comments '
        "(facebook, instagram, linkedin, youtube)"]}


def test_thread_mode_first_comment_where_there_are_no_comments_names_those_networks() -> None:
    post = draft(["linkedin", "tiktok", "pinterest"], thread=[{"content": "More"}], thread_mode="first_comment")
    assert followup_errors(post) == {"thread_mode": [
        'thread_mode "first_comment" leaves the first part as a comment, and there are no comments on '
        "tiktok, pinterest: remove the thread or those networks"]}
    fine = draft(["linkedin", "twitter"], thread=[{"content": "More"}, {"content": "Again"}],
                 thread_mode="first_comment")
    assert followup_errors(fine) == {}


def test_each_part_is_a_post_on_reply_chain_networks() -> None:
    errors = followup_errors(draft(["twitter", "bluesky"], thread=[
        {"content": "a" * 280}, {"content": "a" * 281}, {"content": "😀" * 141}, {"content": "b" * 301}]))
    assert set(errors) == {"thread.1", "thread.2", "thread.3"}
    assert errors["thread.1"] == ["281 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters "
                                  "as 2)"]
    assert errors["thread.2"][0].startswith("282 of 280 characters (Twitter/X")
    assert errors["thread.3"] == [
        "301 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters as 2)",
        "301 of 300 characters (Bluesky counts graphemes)"]


def test_a_part_text_is_counted_as_written_without_the_post_hashtags_or_link() -> None:
    post = draft(["bluesky"], hashtags=["#launch"], link="https://example.com/a-long-page",
                 thread=[{"content": "c" * 300}])
    assert followup_errors(post) == {}


def test_mastodon_parts_use_the_server_limit_once_the_account_is_known() -> None:
    thread = [{"content": "m" * 600}]
    assert followup_errors(draft(["mastodon"], thread=thread)) == {}  # a draft: no server known yet
    known = draft(["mastodon"], thread=thread, account_limits={"mastodon": {"max_characters": 500}})
    assert followup_errors(known) == {"thread.0": ["600 of 500 characters (Mastodon counts URLs as 23)"]}


def test_part_media_must_be_attached_and_fit_the_network() -> None:
    media = [image(n) for n in range(6)]
    post = draft(["twitter"], media=media, thread=[
        {"content": "ok", "media_ids": ["media_img0"]},
        {"content": "five", "media_ids": [f"media_img{n}" for n in range(5)]},
        {"content": "stranger", "media_ids": ["media_elsewhere"]},
    ])
    errors = followup_errors(post)
    assert errors == {
        "thread.1": ["5 images, Twitter/X allows at most 4"],
        "thread.2": ["media_ids not attached to this post: media_elsewhere"],
    }


def test_the_first_part_as_a_comment_is_text_only_and_a_comment_long() -> None:
    post = draft(["linkedin", "facebook"], media=[image(1)], thread_mode="first_comment",
                 thread=[{"content": "l" * 1251, "media_ids": ["media_img1"]}, {"content": "x" * 5000}])
    assert followup_errors(post) == {"thread.0": [
        "comments carry text only on LinkedIn: the first part is a comment there, remove its media_ids",
        "1251 of 1250 characters in a comment (LinkedIn counts characters)",
        "comments carry text only on Facebook: the first part is a comment there, remove its media_ids",
    ]}


def test_first_comment_where_there_are_none_and_its_length_per_network() -> None:
    post = draft(["linkedin", "twitter", "tiktok", "pinterest"], first_comment="f" * 1251)
    assert followup_errors(post) == {"first_comment": [
        "A first comment cannot be left on tiktok, pinterest (there are no comments there): remove first_comment "
        "or those networks",
        "1251 of 1250 characters in a comment (LinkedIn counts characters)",
        "1251 of 280 characters (Twitter/X counts URLs as 23 and emoji and CJK characters as 2)",
    ]}
    assert followup_errors(draft(["linkedin"], first_comment="f" * 1250)) == {}
    assert followup_errors(draft(["bluesky"], first_comment="f" * 300)) == {}


def test_a_youtube_comment_counts_characters_not_the_description_bytes() -> None:
    assert followup_errors(draft(["youtube"], first_comment="é" * 10_000)) == {}
    assert followup_errors(draft(["youtube"], first_comment="é" * 10_001)) == {"first_comment": [
        "10001 of 10000 characters in a comment (YouTube counts characters)"]}


def test_the_post_own_media_leave_out_the_media_of_the_thread() -> None:
    media = [image(n) for n in range(6)]  # 4 for the post, 2 for the thread
    thread = [{"content": "more", "media_ids": ["media_img4", "media_img5"]}]
    assert validate_for_networks(draft(["twitter"], media=media, thread=thread), require_media=False) == {}
    assert "twitter" in validate_for_networks(draft(["twitter"], media=media), require_media=False)
    # An override names what the network gets, a part's media included.
    chosen = draft(["twitter"], media=media, thread=thread,
                   platform_content={"twitter": {"media_ids": ["media_img4"]}})
    assert validate_for_networks(chosen, require_media=False) == {}


def test_followup_errors_ride_along_with_the_network_errors() -> None:
    post = draft(["twitter"], content="a" * 281, first_comment="b" * 281)
    errors = validate_for_networks(post, require_media=False)
    assert set(errors) == {"twitter", "first_comment"}
