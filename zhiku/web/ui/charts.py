"""Charts as inline SVG, drawn on the server: no chart library, no script.

Each function takes ``(label, value)`` pairs and returns the ``<svg>`` as :class:`markupsafe.Markup`;
every label and title is escaped here, so a model or day named like markup stays text. Colours are
presentation attributes, not ``style``, so the page's Content-Security-Policy needs no inline styles.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

BAR_COLOUR = "#3b6fd8"
ERROR_COLOUR = "#c43c3c"
AXIS_COLOUR = "#8a8f98"
TEXT_COLOUR = "#3c4048"
FONT = 'font-family="sans-serif" font-size="11"'


def nice_max(value: float) -> float:
    """The axis top: ``value`` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if value <= 1:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # unreachable: value < 10 * power


def format_number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}"


def column_chart(points: Sequence[tuple[str, float]], *, title: str, colour: str = BAR_COLOUR,
                 width: int = 560, height: int = 200, unit: str = "") -> Markup:
    """Vertical bars, one per point (e.g. per day), with the axis top and every few labels shown."""
    left, right, top, bottom = 44, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_max(max((v for _, v in points), default=0))
    parts = [_open(width, height, title),
             _line(left, top + plot_h, left + plot_w, top + plot_h),
             _text(left - 4, top + 4, format_number(top_value) + unit, anchor="end"),
             _text(left - 4, top + plot_h, "0", anchor="end")]
    if not points:
        parts.append("</svg>")
        return Markup("".join(parts))
    slot = plot_w / len(points)
    bar_w = max(1.0, slot * 0.7)
    label_every = max(1, round(len(points) / 8))
    for i, (label, value) in enumerate(points):
        bar_h = plot_h * value / top_value
        x = left + i * slot + (slot - bar_w) / 2
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" '
                     f'fill="{colour}"><title>{escape(label)}: {escape(format_number(value) + unit)}</title></rect>')
        if i % label_every == 0:
            parts.append(_text(left + i * slot + slot / 2, height - 10, label, anchor="middle"))
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(points: Sequence[tuple[str, float]], *, title: str, colour: str = BAR_COLOUR, width: int = 560,
              unit: str = "") -> Markup:
    """Horizontal bars, one row per point (e.g. per model), labelled with the name and the value."""
    row, label_w, value_w, pad = 20, 170, 56, 6
    height = pad * 2 + row * max(1, len(points))
    plot_w = width - label_w - value_w
    top_value = max((v for _, v in points), default=0) or 1
    parts = [_open(width, height, title)]
    for i, (label, value) in enumerate(points):
        y = pad + i * row
        bar_w = max(1.0, plot_w * value / top_value) if value else 0.0
        shown = label if len(label) <= 26 else label[:25] + "…"
        parts.append(_text(label_w - 6, y + 14, shown, anchor="end"))
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bar_w:.1f}" height="{row - 6}" fill="{colour}">'
                     f'<title>{escape(label)}: {escape(format_number(value) + unit)}</title></rect>')
        parts.append(_text(label_w + bar_w + 4, y + 14, format_number(value) + unit, anchor="start"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
            f'width="100%" preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>")


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{AXIS_COLOUR}" stroke-width="1"/>'


def _text(x: float, y: float, text: str, *, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{TEXT_COLOUR}" {FONT}>{escape(text)}</text>'
