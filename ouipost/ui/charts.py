"""Charts drawn on the server as inline SVG: readable without JavaScript, accessible, CSP-clean.

Two shapes cover the analytics pages:
- `line_chart`: one or more series over ordered labels (a timeline), the first series also drawn as
  an area; every point is a <circle> with a <title> (a tooltip that needs no script);
- `bar_chart`: horizontal bars, one group per category and one bar per series (by network, top
  posts), each bar with its value written beside it.

Every chart is `<svg role="img" aria-labelledby=...>` with a <title> and a <desc> that says what the
chart shows in words (totals, the highest point), axis labels and a legend. Colours are SVG
presentation attributes and classes, never `style=""` (the UI's Content-Security-Policy forbids
inline styles). All text is escaped; the result is `Markup`, safe to put in a template as is.
Empty data gives a chart frame saying so; all-zero data draws a flat line on the zero axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# A palette readable on white and by most colour-blind readers (Okabe-Ito).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
AXIS_COLOUR = "#868e96"
GRID_COLOUR = "#e9ecef"
TEXT_COLOUR = "#495057"
TICKS = 4  # intervals on a value axis


@dataclass(frozen=True)
class Series:
    """A named row of values, one per label."""

    name: str
    values: Sequence[float]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times 10^n at or above `value` (1 for zero or less): an axis top."""
    if value <= 0:
        return 1
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10 ** exponent
        if candidate >= value:
            return candidate
    return 10 ** (exponent + 1)


def tick_step(highest: float, *, counts: bool) -> float:
    """The step between the TICKS intervals of an axis reaching `highest`: a nice number, and a
    whole one (at least 1) for counts."""
    step = nice_ceiling(highest / TICKS)
    if counts:
        step = max(1, 5 if step == 2.5 else step)
    return step


def format_number(value: float) -> str:
    """12 -> '12', 1234 -> '1,234', 2.5 -> '2.5', 1500000 -> '1.5M' (axis ticks stay short)."""
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _label_every(count: int, room: int) -> int:
    """Show every n-th x label so that at most `room` labels are written."""
    return max(1, math.ceil(count / max(1, room)))


def _frame(chart_id: str, title: str, description: str, width: int, height: int, body: list[str]) -> Markup:
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="12">'
        f'<title id="{escape(title_id)}">{escape(title)}</title>'
        f'<desc id="{escape(desc_id)}">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, content: str, *, anchor: str = "start", css: str = "", size: int | None = None,
          weight: str | None = None, rotate: float | None = None) -> str:
    extra = f' font-size="{size}"' if size else ""
    extra += f' font-weight="{weight}"' if weight else ""
    extra += f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
    css_attr = f' class="{css}"' if css else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{TEXT_COLOUR}"{css_attr}{extra}>'
            f"{escape(content)}</text>")


def _legend(series_names: Sequence[str], x: float, y: float) -> list[str]:
    parts = ['<g class="legend">']
    for index, name in enumerate(series_names):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}" '
                     f'class="legend-key series-{index}"/>')
        parts.append(_text(x + 14, y, name))
        x += 24 + 7 * len(name)
    parts.append("</g>")
    return parts


def line_chart(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *, x_title: str = "",
    y_title: str = "", width: int = 720, height: int = 300, counts: bool = True,
) -> Markup:
    """A line chart of `series` over `labels` (the first series filled as an area). With `counts`
    (whole numbers) the axis ticks are whole numbers too."""
    if not labels or not series:
        return _empty(chart_id, title, width, height)
    left, right, top, bottom = 64, 44, 34, 58  # room for the last x label's second half
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max((max(s.values, default=0) for s in series), default=0)
    y_max = TICKS * tick_step(highest, counts=counts)
    count = len(labels)

    def x_at(index: int) -> float:
        return left + (plot_w / 2 if count == 1 else plot_w * index / (count - 1))

    def y_at(value: float) -> float:
        return top + plot_h - plot_h * (value / y_max)

    body: list[str] = [*_legend([s.name for s in series], left, 18)]
    body.append('<g class="axis y-axis">')
    for tick in range(TICKS + 1):
        value = y_max * tick / TICKS
        y = y_at(value)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>')
        body.append(_text(left - 6, y + 4, format_number(value), anchor="end", css="tick"))
    body.append("</g>")
    body.append(f'<line class="axis-line" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
                f'stroke="{AXIS_COLOUR}"/>')
    every = _label_every(count, max(2, plot_w // 70))
    body.append('<g class="axis x-axis">')
    for index, label in enumerate(labels):
        if index % every == 0:
            body.append(_text(x_at(index), top + plot_h + 16, label, anchor="middle", css="tick"))
    body.append("</g>")
    if x_title:
        body.append(_text(left + plot_w / 2, height - 8, x_title, anchor="middle", css="axis-title"))
    if y_title:
        body.append(_text(14, top + plot_h / 2, y_title, anchor="middle", css="axis-title", rotate=-90))

    for number, one in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        points = [(x_at(i), y_at(float(v))) for i, v in enumerate(one.values)]
        joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        if number == 0 and len(points) > 1:
            base = top + plot_h
            area = f"{points[0][0]:.1f},{base:.1f} {joined} {points[-1][0]:.1f},{base:.1f}"
            body.append(f'<polygon class="area series-{number}" points="{area}" fill="{colour}" fill-opacity="0.12"/>')
        body.append(f'<g class="series series-{number}" data-series="{escape(one.name)}">')
        body.append(f'<polyline points="{joined}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), label, value in zip(points, labels, one.values, strict=False):
            body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                        f"<title>{escape(one.name)}, {escape(label)}: {escape(format_number(value))}</title></circle>")
        body.append("</g>")
    return _frame(chart_id, title, _describe_line(labels, series), width, height, body)


def _describe_line(labels: Sequence[str], series: Sequence[Series]) -> str:
    parts = [f"{len(labels)} points from {labels[0]} to {labels[-1]}."]
    for one in series:
        total = sum(one.values)
        if total:
            peak = max(range(len(one.values)), key=lambda i: one.values[i])
            parts.append(f"{one.name}: {format_number(total)} in all, highest {format_number(one.values[peak])} "
                         f"on {labels[peak]}.")
        else:
            parts.append(f"{one.name}: none.")
    return " ".join(parts)


def bar_chart(
    chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series], *, value_title: str = "",
    width: int = 720, label_width: int = 200,
) -> Markup:
    """Horizontal bars: one group per category, one bar per series in it, values written beside."""
    if not categories or not series:
        return _empty(chart_id, title, width, 120)
    bar_h, gap = 16, 12
    group_h = bar_h * len(series) + gap
    top, bottom = 34, 36 if value_title else 16
    height = top + group_h * len(categories) + bottom
    left, right = label_width, 70
    plot_w = width - left - right
    highest = max((max(s.values, default=0) for s in series), default=0)
    x_max = nice_ceiling(highest)
    body: list[str] = [*_legend([s.name for s in series], left, 18)] if len(series) > 1 else []
    body.append(f'<line class="axis-line" x1="{left}" y1="{top - 4}" x2="{left}" y2="{height - bottom}" '
                f'stroke="{AXIS_COLOUR}"/>')
    for index, category in enumerate(categories):
        y0 = top + index * group_h
        shown = category if len(category) <= label_width // 7 else category[: label_width // 7 - 1] + "…"
        body.append(_text(left - 8, y0 + group_h / 2, shown, anchor="end", css="category"))
        for number, one in enumerate(series):
            value = float(one.values[index]) if index < len(one.values) else 0.0
            bar_w = plot_w * value / x_max
            y = y0 + number * bar_h
            colour = PALETTE[number % len(PALETTE)]
            body.append(
                f'<rect class="bar series-{number}" x="{left}" y="{y:.1f}" width="{bar_w:.1f}" height="{bar_h - 3}" '
                f'fill="{colour}"><title>{escape(category)}, {escape(one.name)}: {escape(format_number(value))}'
                f"</title></rect>"
            )
            body.append(_text(left + bar_w + 4, y + bar_h - 5, format_number(value), css="value", size=11))
    if value_title:
        body.append(_text(left + plot_w / 2, height - 8, value_title, anchor="middle", css="axis-title"))
    return _frame(chart_id, title, _describe_bars(categories, series), width, height, body)


def _describe_bars(categories: Sequence[str], series: Sequence[Series]) -> str:
    parts = [f"{len(categories)} categories."]
    for one in series:
        if any(one.values):
            best = max(range(len(one.values)), key=lambda i: one.values[i])
            parts.append(f"{one.name}: highest {format_number(one.values[best])} for {categories[best]}.")
        else:
            parts.append(f"{one.name}: none.")
    return " ".join(parts)


def _empty(chart_id: str, title: str, width: int, height: int) -> Markup:
    body = [
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="{GRID_COLOUR}"/>',
        _text(width / 2, height / 2, "No data for this period", anchor="middle", css="empty-note"),
    ]
    return _frame(chart_id, title, "No data to show.", width, height, body)
