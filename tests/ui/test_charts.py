"""The SVG charts of the analytics pages: shape for known data, labels, escaping, empty and all-zero
data, accessibility and no inline styles (CSP)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from markupsafe import Markup

from ouipost.ui.charts import Series, bar_chart, format_number, line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: Markup) -> ET.Element:
    return ET.fromstring(str(markup))


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_nice_ceiling_and_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 12, 240, 251, 999, 1001)] == [1, 0.5, 1, 10, 20, 250, 500, 1000,
                                                                                   2000]
    assert [format_number(v) for v in (0, 12, 1234, 2.5, 0.126, 1_500_000)] == ["0", "12", "1,234", "2.5", "0.13",
                                                                                "1.5M"]


def test_a_line_chart_has_one_point_per_label_per_series_and_axis_labels() -> None:
    labels = ["2025-03-28", "2025-03-29", "2025-03-30", "2025-03-31"]
    svg = line_chart("timeline", "Impressions and engagement", labels, [
        Series("Impressions", [500, 1000, 0, 400]), Series("Engagement", [45, 50, 0, 40]),
    ], x_title="Day", y_title="Count")
    root = parse(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "timeline-title timeline-desc"
    assert root.find(f"{SVG}title").text == "Impressions and engagement"
    desc = root.find(f"{SVG}desc").text
    assert "Impressions: 1,900 in all, highest 1,000 on 2025-03-29." in desc
    groups = [g for g in root.iter(f"{SVG}g") if g.get("data-series")]
    assert [g.get("data-series") for g in groups] == ["Impressions", "Engagement"]
    for group in groups:
        assert len(group.findall(f"{SVG}circle")) == 4
        assert len(group.find(f"{SVG}polyline").get("points").split()) == 4
    assert len(list(root.iter(f"{SVG}polygon"))) == 1  # the area under the first series
    words = texts(root)
    assert all(label in words for label in labels)
    assert {"Day", "Count", "Impressions", "Engagement", "0", "1,000"} <= set(words)  # axis top is 1,000
    tooltips = [t.text for t in root.iter(f"{SVG}title")]
    assert "Impressions, 2025-03-29: 1,000" in tooltips


def test_a_long_timeline_writes_a_readable_number_of_x_labels() -> None:
    labels = [f"2025-01-{d:02d}" for d in range(1, 31)] + [f"2025-02-{d:02d}" for d in range(1, 29)]
    root = parse(line_chart("long", "Long", labels, [Series("Impressions", list(range(58)))]))
    written = [t for t in texts(root) if t.startswith("2025-")]
    assert 2 <= len(written) <= 10 and written[0] == "2025-01-01"
    assert len(root.findall(f".//{SVG}circle")) == 58


def test_a_bar_chart_has_one_bar_per_category_and_series_with_values() -> None:
    svg = bar_chart("networks", "By network", ["Bluesky", "LinkedIn", "Twitter/X"], [
        Series("Impressions", [0, 600, 1300]), Series("Engagement", [0, 60, 75]),
    ], value_title="Count")
    root = parse(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if "bar" in (r.get("class") or "").split()]
    assert len(bars) == 6
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == 0 and widths[4] > widths[2] > 0  # Twitter/X's impressions are the longest bar
    words = texts(root)
    assert {"Bluesky", "LinkedIn", "Twitter/X", "1,300", "75", "Count"} <= set(words)
    assert "Impressions: highest 1,300 for Twitter/X." in root.find(f"{SVG}desc").text


def test_text_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script> & "quotes"'
    line = str(line_chart("c1", evil, [evil], [Series(evil, [1])]))
    bars = str(bar_chart("c2", evil, [evil], [Series(evil, [3]), Series("b", [1])]))
    for markup in (line, bars):
        assert "<script>" not in markup
        assert "&lt;script&gt;" in markup
        ET.fromstring(markup)  # still well-formed XML


def test_empty_data_says_so_and_all_zero_data_stays_on_the_axis() -> None:
    for svg in (line_chart("e1", "Nothing", [], []), bar_chart("e2", "Nothing", [], [Series("a", [])])):
        root = parse(svg)
        assert "No data for this period" in texts(root) and root.get("role") == "img"
    root = parse(line_chart("z", "Zeros", ["a", "b", "c"], [Series("Impressions", [0, 0, 0])]))
    ys = {c.get("cy") for c in root.iter(f"{SVG}circle")}
    assert len(ys) == 1  # flat, on the zero line
    assert "Impressions: none." in root.find(f"{SVG}desc").text
    assert "nan" not in str(root.attrib) and "inf" not in ET.tostring(root, encoding="unicode")
    assert [t for t in texts(root) if t.isdigit()] == ["0", "1", "2", "3", "4"]  # whole-number ticks
    fractions = parse(line_chart("f", "Rates", ["a", "b"], [Series("Rate", [0.2, 0.4])], counts=False))
    assert {"0.1", "0.4"} <= set(texts(fractions))  # rates keep fractional ticks
    single = parse(line_chart("one", "One day", ["2025-03-28"], [Series("Impressions", [5])]))
    assert len(list(single.iter(f"{SVG}circle"))) == 1


def test_no_inline_styles_or_scripts() -> None:
    markup = str(line_chart("a", "A", ["x", "y"], [Series("s", [1, 2])])) + str(
        bar_chart("b", "B", ["x"], [Series("s", [1])]))
    assert not re.search(r"\sstyle=", markup) and "<script" not in markup and "onload" not in markup
