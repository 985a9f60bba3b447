"""Text is counted the way each network counts it; hashtags are normalised; effective text is assembled."""

from __future__ import annotations

import time

import pytest

from ouipost.platforms.registry import PLATFORMS, get_platform
from ouipost.platforms.text import count_inline_hashtags, count_text, effective_text, normalise_hashtags

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # man, woman, girl, boy joined by ZWJ
FLAG_FR = "\U0001f1eb\U0001f1f7"
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"
KEYCAP_ONE = "1\ufe0f\u20e3"
RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"


@pytest.mark.parametrize("network", list(PLATFORMS))
def test_every_network_counts_plain_text_up_to_its_limit(network: str) -> None:
    spec = get_platform(network)
    # Plain ASCII counts 1 per character under every counting.
    assert count_text("a" * spec.max_characters, spec.text_counting) == spec.max_characters
    over = "a" * (spec.max_characters + 1)
    assert count_text(over, spec.text_counting) == spec.max_characters + 1


# ------------------------------------------------------------------------------------------------ X


def test_x_full_280_ascii_characters_fit() -> None:
    assert count_text("a" * 280, "twitter") == 280


def test_x_counts_cjk_double() -> None:
    assert count_text("中" * 140, "twitter") == 280
    assert count_text("中" * 141, "twitter") == 282
    assert count_text("日本語のテキスト", "twitter") == 16
    assert count_text("한국어", "twitter") == 6


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("\U0001f600", 2),
        (FAMILY, 2),
        (FLAG_FR, 2),
        (THUMBS_UP_MEDIUM, 2),
        (KEYCAP_ONE, 2),
        (RAINBOW_FLAG, 2),
        ("\u00a9", 2),  # © is in twitter-text's emoji table
        ("\u2764\ufe0f", 2),
        ("hi " + FAMILY * 3, 9),
    ],
)
def test_x_counts_every_emoji_as_two(text: str, weight: int) -> None:
    assert count_text(text, "twitter") == weight


def test_x_light_ranges_count_one() -> None:
    # Latin, Cyrillic, Arabic, Devanagari live below U+1100; typographic quotes and dashes in U+2010-201F.
    assert count_text("Ünïcödé русский العربية", "twitter") == 23
    assert count_text("\u2018quoted\u2019 \u2014 \u201cdash\u201d", "twitter") == 17
    assert count_text("\u20ac", "twitter") == 2  # the euro sign is outside the light ranges


def test_x_normalises_to_nfc_first() -> None:
    assert count_text("cafe\u0301", "twitter") == 4  # e + combining accent is one code point after NFC


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("https://example.com/a/very/long/path/that/goes/on/and/on?with=query&and=more", 23),
        ("http://a.co", 23),
        ("see https://example.com ok", 30),
        ("example.com", 23),
        ("www.example.co.uk/path", 23),
        ("two https://a.com/x and https://b.org/y", 55),
        ("go to example.com.", 30),  # the sentence's full stop is not part of the URL
        ("(see example.com)", 29),
        ("en.wikipedia.org/wiki/Foo_(bar)", 23),
        ("mail me at a@example.com", 24),  # an e-mail address is not a URL
        ("index.html and node.js", 22),  # no such TLDs: plain text
        ("http://localhost", 16),
    ],
)
def test_x_counts_every_url_as_23(text: str, weight: int) -> None:
    assert count_text(text, "twitter") == weight


def test_x_over_limit_by_one() -> None:
    text = "a" * 257 + " https://example.com/" + "p" * 300  # 257 + 1 + 23 = 281
    assert count_text(text, "twitter") == 281


def test_x_counting_stays_fast_on_hostile_text() -> None:
    # A URL-like run without end made the twitter-text-parser package spin for minutes.
    start = time.perf_counter()
    for text in ("a." * 20_000, "_a" * 20_000, "https://" + "a." * 20_000, "a-" * 20_000):
        count_text(text, "twitter")
    assert time.perf_counter() - start < 2


# ------------------------------------------------------------------------------------------------ graphemes and bytes


def test_bluesky_counts_a_family_emoji_as_one_grapheme() -> None:
    assert count_text(FAMILY, "graphemes") == 1
    assert count_text(FLAG_FR + THUMBS_UP_MEDIUM + KEYCAP_ONE, "graphemes") == 3
    assert count_text("cafe\u0301", "graphemes") == 4
    assert count_text("\r\n", "graphemes") == 1


def test_bluesky_limit_of_300_graphemes() -> None:
    assert count_text(FAMILY * 300, "graphemes") == 300
    assert count_text(FAMILY * 301, "graphemes") == 301


def test_bluesky_300_graphemes_can_exceed_3000_bytes() -> None:
    text = FAMILY * 300
    assert count_text(text, "graphemes") == 300
    assert count_text(text, "utf8_bytes") == 300 * 25  # 4 emoji x 4 bytes + 3 ZWJ x 3 bytes


def test_utf8_bytes() -> None:
    assert count_text("a", "utf8_bytes") == 1
    assert count_text("\u00e9", "utf8_bytes") == 2
    assert count_text("中", "utf8_bytes") == 3
    assert count_text("\U0001f600", "utf8_bytes") == 4
    assert count_text("\ud83d", "utf8_bytes") == 3  # a lone surrogate from JSON does not crash


def test_codepoints() -> None:
    assert count_text(FAMILY, "codepoints") == 7
    assert count_text("中文", "codepoints") == 2


def test_unknown_counting_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown text counting"):
        count_text("x", "words")


# ------------------------------------------------------------------------------------------------ hashtags


def test_hashtags_get_a_hash_and_keep_the_first_spelling() -> None:
    assert normalise_hashtags(["Summer", "#summer", "SUMMER", "#Beach", "été", "#Été", "a_1"]) == [
        "#Summer", "#Beach", "#été", "#a_1",
    ]


def test_full_width_hash_sign_is_accepted() -> None:
    assert normalise_hashtags(["\uff03東京"]) == ["#東京"]


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("two words", "whitespace"),
        ("tab\there", "whitespace"),
        ("", "empty"),
        ("#", "empty"),
        ("   ", "empty"),
        ("rock-n-roll", "'-'"),
        ("hello!", "'!'"),
        ("##double", "'#'"),
        ("dot.com", "'.'"),
        ("2024", "letter"),
        ("fun\U0001f600", "\U0001f600"),
    ],
)
def test_bad_hashtags_are_refused_with_a_reason(tag: str, problem: str) -> None:
    with pytest.raises(ValueError, match="hashtag") as error:
        normalise_hashtags(["fine", tag])
    assert problem in str(error.value)


def test_inline_hashtags_are_counted() -> None:
    assert count_inline_hashtags("#one two #three #3 a#b &#39; #x_1") == 3


# ------------------------------------------------------------------------------------------------ effective text


def test_effective_text_adds_hashtags_after_a_blank_line_then_the_link() -> None:
    text = effective_text("New post", ["#a", "b"], "https://ex.com/p", get_platform("twitter"))
    assert text == "New post\n\n#a #b https://ex.com/p"


def test_networks_with_a_link_field_keep_the_link_out_of_the_text() -> None:
    for network in ("facebook", "linkedin", "pinterest"):
        assert effective_text("Hello", ["#x"], "https://ex.com", get_platform(network)) == "Hello\n\n#x"


def test_link_already_in_the_content_is_not_repeated() -> None:
    spec = get_platform("threads")
    assert effective_text("Read https://ex.com now", [], "https://ex.com", spec) == "Read https://ex.com now"
    assert effective_text("Hello", [], "https://ex.com", spec) == "Hello https://ex.com"


def test_effective_text_without_hashtags_or_link_is_the_content() -> None:
    assert effective_text("Just text", [], None, get_platform("bluesky")) == "Just text"


def test_effective_text_with_empty_content_has_no_leading_separator() -> None:
    spec = get_platform("instagram")
    assert effective_text("", ["#a"], None, spec) == "#a"
    assert effective_text(None, [], "https://ex.com", spec) == "https://ex.com"
