"""Counting text the way each network counts it, the effective text of a post, hashtags.

Five ways of counting, named by `PlatformSpec.text_counting`:

- ``codepoints``: Unicode code points (Facebook, Instagram, LinkedIn, TikTok "runes", Threads, Pinterest).
- ``twitter``: X's weighted length (twitter-text v3 configuration): the text is NFC-normalised; code
  points in U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and U+2032-U+2037 weigh 1, every other code
  point weighs 2 (CJK included); an emoji, ZWJ sequences, flags and keycaps included, weighs 2 as a
  whole; every URL weighs 23 whatever its length.
- ``graphemes``: extended grapheme clusters, what a reader sees as one character (Bluesky).
- ``utf8_bytes``: the UTF-8 encoding's length (YouTube descriptions; Bluesky's second cap).
- ``mastodon``: code points, but every http(s) URL counts 23 and `@user@server` counts as `@user`
  (`ouipost.platforms.mastodon.counted_length`).

Why not `twitter-text-parser`: it gets emoji, ZWJ sequences and URLs right on short texts, but its URL
regular expression backtracks catastrophically: 4,000 characters of ``a.a.a.`` take 47 s of CPU, which
would let one request freeze the event loop. The rules below are linear in the text's length; the tests
pin their answers to values checked against that library on the cases it handles.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import regex

if TYPE_CHECKING:
    from ouipost.platforms.registry import PlatformSpec

COUNTINGS = ("codepoints", "twitter", "graphemes", "utf8_bytes", "mastodon")

TWITTER_URL_WEIGHT = 23
# twitter-text stops treating longer runs as URLs; they then count character by character.
_TWITTER_MAX_URL_LENGTH = 4096
_TWITTER_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

_GRAPHEME = regex.compile(r"\X")

# Country-code TLDs (IANA, as twitter-text lists them): a domain ending in one of these is a URL on X
# even without a scheme ("setup.py" is Paraguay's).
_CCTLD_NAMES = (
    """ac ad ae af ag ai al am an ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br
    bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg
    eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr
    ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls
    lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl
    no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si
    sj sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tp tr tt tv tw tz ua ug uk
    um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw"""
)
_CCTLDS = frozenset(_CCTLD_NAMES.split())
# Generic TLDs people actually write in posts. twitter-text knows ~1,500; a scheme-less domain on a rare
# one ("example.photography") is counted letter by letter here, a scheme-ful one is always a URL.
_GTLD_NAMES = (
    """com net org info biz edu gov mil int name pro mobi aero asia cat coop jobs museum tel travel xxx
    app dev page xyz online site website shop store tech blog news club live life world today space email
    cloud digital media agency studio design art link one top ltd group global social network solutions
    services company center community foundation academy events games game video tv music film photo
    photos pics gallery fashion style health fitness food recipes cafe restaurant bar pub wine beer
    tours hotel house homes realestate money finance bank capital fund investments market marketing
    consulting software systems technology computer codes tools ninja guru expert works work
    careers team partners ventures fun love lol wtf cool rocks zone plus pw red blue green pink
    black gold city country nyc london berlin paris tokyo amsterdam wiki help support how faq io ai
    church school university college education training courses science energy earth eco bio farm
    garden dog pet vet baby kids family fan fans chat forum"""
)
_GTLDS = frozenset(_GTLD_NAMES.split())

# A URL candidate: optional scheme, dot-separated labels (no nested ambiguity: labels exclude the dot, so
# matching is linear), optional port, optional path/query/fragment up to the next whitespace.
# It may not follow a letter, digit, @, $, # (emails, cashtags, hashtags) or - _ . / (twitter-text's rule
# for scheme-less URLs; applying it to every start also keeps the scan linear on "a_a_a_..." runs).
_URL = regex.compile(
    r"""
    (?<![\p{L}\p{N}@\uFF20$\#\uFF03_./-])
    (?P<scheme>https?://)?
    (?P<domain>[\p{L}\p{N}](?:[\p{L}\p{N}_-]*)(?:\.[\p{L}\p{N}_-]+)+)
    (?P<port>:\d{1,5})?
    (?P<path>[/?\#]\S*)?
    """,
    regex.VERBOSE | regex.IGNORECASE,
)
# A URL does not end on punctuation that closes the sentence around it.
_URL_TRAILING_PUNCT = ".,;:!?'\"\u2018\u2019\u201c\u201d)]}>\u2026"

_HASH_SIGNS = ("#", "\uff03")  # ASCII and full-width, as CJK keyboards type it
_HASHTAG_BODY = regex.compile(r"[\p{L}\p{M}\p{N}_]+")
# Hashtags written inside a text, for per-network hashtag caps (Instagram 30).
_INLINE_HASHTAG = regex.compile(
    r"(?<![\p{L}\p{M}\p{N}_&#\uFF03])[#\uFF03](?=[\p{L}\p{M}\p{N}_]*[\p{L}\p{M}])[\p{L}\p{M}\p{N}_]+"
)
_EMOJI_HINT = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")

COUNTING_LABELS = {
    "codepoints": "counts characters",
    "twitter": "counts URLs as 23 and emoji and CJK characters as 2",
    "graphemes": "counts graphemes",
    "utf8_bytes": "counts UTF-8 bytes",
    "mastodon": "counts URLs as 23",
}


def count_text(text: str, counting: str) -> int:
    """The length of `text` as a network with this `counting` sees it.

    Raises ValueError for a counting that is not one of COUNTINGS. Lone surrogates (possible in JSON)
    count as 3 bytes under utf8_bytes instead of failing.
    """
    if counting == "codepoints":
        return len(text)
    if counting == "twitter":
        return twitter_weighted_length(text)
    if counting == "graphemes":
        return grapheme_count(text)
    if counting == "utf8_bytes":
        return utf8_length(text)
    if counting == "mastodon":
        from ouipost.platforms.mastodon import counted_length  # the network's rule lives with its adapter

        return counted_length(text)
    raise ValueError(f"unknown text counting {counting!r}; expected one of {', '.join(COUNTINGS)}")


def utf8_length(text: str) -> int:
    """Bytes of `text` in UTF-8 (lone surrogates count 3, as a lenient encoder would write them)."""
    return len(text.encode("utf-8", "surrogatepass"))


def grapheme_count(text: str) -> int:
    """Extended grapheme clusters in `text`: a family emoji ZWJ sequence or a flag counts 1."""
    return sum(1 for _ in _GRAPHEME.finditer(text))


def twitter_urls(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of what X treats as URLs in the NFC-normalised `text`."""
    spans: list[tuple[int, int]] = []
    for match in _URL.finditer(text):
        scheme, domain = match.group("scheme"), match.group("domain")
        start, end = match.start(), match.end()
        labels = domain.split(".")
        if "_" in labels[-2] or "_" in labels[-1]:
            continue  # underscores are allowed in subdomains only
        if not scheme:
            # A scheme-less URL needs a known TLD.
            tld = domain.rsplit(".", 1)[1].lower()
            if not tld.isascii() or (tld not in _CCTLDS and tld not in _GTLDS):
                continue
        while end > start and text[end - 1] in _URL_TRAILING_PUNCT:
            # Keep a closing parenthesis that balances one inside the URL (Wikipedia links).
            if text[end - 1] == ")" and text.count("(", start, end) >= text.count(")", start, end):
                break
            end -= 1
        if end - start > _TWITTER_MAX_URL_LENGTH:
            continue
        spans.append((start, end))
    return spans


def _twitter_codepoint_weight(char: str) -> int:
    cp = ord(char)
    for low, high in _TWITTER_LIGHT_RANGES:
        if low <= cp <= high:
            return 1
    return 2


def _twitter_segment_weight(segment: str) -> int:
    weight = 0
    for match in _GRAPHEME.finditer(segment):
        cluster = match.group()
        if _EMOJI_HINT.search(cluster) and _is_emoji_cluster(cluster):
            weight += 2
        else:
            weight += sum(_twitter_codepoint_weight(c) for c in cluster)
    return weight


def _is_emoji_cluster(cluster: str) -> bool:
    # Extended_Pictographic covers emoji and their ZWJ sequences (also text-style ones like ©, which
    # twitter-text's emoji table counts as 2); two regional indicators are a flag; digit/#/* + U+20E3
    # is a keycap.
    if regex.search(r"\p{Extended_Pictographic}", cluster):
        return True
    if len(regex.findall(r"\p{Regional_Indicator}", cluster)) == 2:
        return True
    return "\u20e3" in cluster and cluster[0] in "0123456789#*"


def twitter_weighted_length(text: str) -> int:
    """X's weighted length of `text` (see the module docstring); compare it with max_characters 280."""
    text = unicodedata.normalize("NFC", text)
    weight, position = 0, 0
    for start, end in twitter_urls(text):
        weight += _twitter_segment_weight(text[position:start]) + TWITTER_URL_WEIGHT
        position = end
    return weight + _twitter_segment_weight(text[position:])


def normalise_hashtags(tags: Iterable[object]) -> list[str]:
    """Tags in `#tag` form, deduplicated case-insensitively, keeping the first spelling and the order.

    A leading ``#`` is optional. Raises ValueError naming the tag for an empty tag, a tag with
    whitespace, a tag of digits only (no network links those) or a tag with characters no network accepts
    in a hashtag (anything but letters, combining marks, digits and underscore: ``-``, ``.``, ``!``, a
    second ``#``, emoji...).
    """
    seen: set[str] = set()
    result: list[str] = []
    for raw in tags:
        if not isinstance(raw, str):
            raise ValueError(f"hashtag {raw!r} is not a string")
        tag = unicodedata.normalize("NFC", raw)
        body = tag[1:] if tag[:1] in _HASH_SIGNS else tag
        if not body.strip():
            raise ValueError(f"hashtag {raw!r} is empty")
        if any(c.isspace() for c in body):
            raise ValueError(f"hashtag {raw!r} contains whitespace; write one tag per item")
        if not _HASHTAG_BODY.fullmatch(body):
            bad = "".join(dict.fromkeys(c for c in body if not _HASHTAG_BODY.fullmatch(c)))
            raise ValueError(
                f"hashtag {raw!r} contains {bad!r}; hashtags may hold only letters, digits and underscores"
            )
        if body.isdigit() or not regex.search(r"[\p{L}\p{M}]", body):
            raise ValueError(f"hashtag {raw!r} needs at least one letter; networks do not link number-only tags")
        key = body.casefold()
        if key not in seen:
            seen.add(key)
            result.append(f"#{body}")
    return result


def format_hashtags(tags: Iterable[str]) -> list[str]:
    """Tags as `#tag`, deduplicated case-insensitively, without raising: empty items are skipped.

    For rendering text from stored (already validated) data; use normalise_hashtags on input.
    """
    seen: set[str] = set()
    result: list[str] = []
    for raw in tags:
        body = str(raw).strip()
        body = body[1:] if body[:1] in _HASH_SIGNS else body
        if body and body.casefold() not in seen:
            seen.add(body.casefold())
            result.append(f"#{body}")
    return result


def count_inline_hashtags(text: str) -> int:
    """How many hashtags (``#word`` with at least one letter) `text` contains, repeats included."""
    return len(_INLINE_HASHTAG.findall(text))


def effective_text(content: str | None, hashtags: Sequence[str] | None, link: str | None, spec: PlatformSpec) -> str:
    """The text a network receives: content, then a blank line and the hashtags, then the link.

    Per DESIGN "Effective text per network": the hashtags (joined by spaces) follow the content after a
    blank line; networks without a separate link field get " <link>" appended unless the content already
    contains the link. With nothing before them, hashtags and link are not preceded by a separator.
    Hashtags are formatted leniently (``tag`` → ``#tag``, duplicates dropped); never raises.
    """
    text = content or ""
    tags = format_hashtags(hashtags or [])
    if tags:
        text = f"{text}\n\n{' '.join(tags)}" if text else " ".join(tags)
    if link and not spec.separate_link_field and link not in (content or ""):
        text = f"{text} {link}" if text else link
    return text


__all__ = [
    "COUNTINGS",
    "COUNTING_LABELS",
    "TWITTER_URL_WEIGHT",
    "count_inline_hashtags",
    "count_text",
    "effective_text",
    "format_hashtags",
    "grapheme_count",
    "normalise_hashtags",
    "twitter_urls",
    "twitter_weighted_length",
    "utf8_length",
]
