"""Charts as inline SVG, readable without colour: every bar and point carries its number as text,
bands are told by their name and a hatch pattern as well as by colour, and each chart has a title
and a description for screen readers (plus the same figures as a table beside it in the page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from html import escape

from markupsafe import Markup

__all__ = ["bars", "columns", "line"]

ROW = 26
"""Height of one horizontal bar's row (px)."""


def bars(title: str, rows: Sequence[tuple[str, float]], *, unit: str = "", width: int = 560) -> Markup:
    """Horizontal bars, one per (label, value), the value written after each bar."""
    if not rows:
        return Markup("")
    label_w, value_w = 190, 70
    top = max((v for _, v in rows), default=0) or 1
    span = width - label_w - value_w
    height = ROW * len(rows) + 8
    out = [_head(title, f"{len(rows)} bars: " + "; ".join(f"{k} {_num(v)}{unit}" for k, v in rows), width, height)]
    for i, (label, value) in enumerate(rows):
        y = 4 + i * ROW
        w = max(1.0, span * value / top) if value else 0
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="lbl">{escape(_cut(label))}</text>'
                   f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{ROW - 8}" class="bar"/>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" class="val">{_num(value)}{escape(unit)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def columns(title: str, points: Sequence[tuple[date, int]], *, width: int = 560, height: int = 160) -> Markup:
    """Vertical bars per day with the count above each non-zero bar and the first and last day below."""
    if not points:
        return Markup("")
    top = max(v for _, v in points) or 1
    n = len(points)
    step = (width - 20) / n
    base = height - 22
    total = sum(v for _, v in points)
    out = [_head(title, f"{total} in {n} days, from {points[0][0]} to {points[-1][0]}", width, height)]
    for i, (day, value) in enumerate(points):
        h = (base - 18) * value / top
        x = 10 + i * step
        out.append(f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                   f'class="bar"><title>{day}: {value}</title></rect>')
        if value:
            out.append(f'<text x="{x + step / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle" '
                       f'class="val">{value}</text>')
    out.append(f'<line x1="10" y1="{base}" x2="{width - 10}" y2="{base}" class="axis"/>'
               f'<text x="10" y="{height - 6}" class="lbl">{points[0][0]}</text>'
               f'<text x="{width - 10}" y="{height - 6}" text-anchor="end" class="lbl">{points[-1][0]}</text></svg>')
    return Markup("".join(out))


def line(title: str, points: Sequence[tuple[datetime, float, str]], *, width: int = 560, height: int = 180) -> Markup:
    """A 0-100 score over time: a line with a marker per score (its shape names its band) and its value."""
    if not points:
        return Markup("")
    left, base, top_y = 34, height - 24, 12
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (t1 - t0) or 1.0

    def xy(at: datetime, score: float) -> tuple[float, float]:
        x = left + (width - left - 16) * ((at.timestamp() - t0) / span if len(points) > 1 else 0.5)
        return x, base - (base - top_y) * max(0.0, min(score, 100.0)) / 100

    said = "; ".join(f"{at:%Y-%m-%d} {_num(s)}{f' {b}' if b else ''}" for at, s, b in points[-12:])
    out = [_head(title, f"{len(points)} scores: {said}", width, height)]
    for mark in (0, 50, 100):
        y = base - (base - top_y) * mark / 100
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="lbl">{mark}</text>')
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(at, s) for at, s, _ in points))
    out.append(f'<polyline points="{path}" class="trend"/>')
    for at, score, band in points:
        x, y = xy(at, score)
        out.append(_marker(x, y, band) + f'<text x="{x:.1f}" y="{y - 9:.1f}" text-anchor="middle" class="val">'
                   f'{_num(score)}</text>')
    out.append(f'<text x="{left}" y="{height - 6}" class="lbl">{points[0][0]:%Y-%m-%d}</text>'
               f'<text x="{width - 10}" y="{height - 6}" text-anchor="end" class="lbl">{points[-1][0]:%Y-%m-%d}</text>'
               "</svg>")
    return Markup("".join(out))


def _marker(x: float, y: float, band: str) -> str:
    """Red a triangle, yellow a diamond, green a circle: the band shows in black and white too."""
    cls = f"pt band-{escape(band or 'none')}"
    if band == "red":
        return f'<polygon points="{x:.1f},{y - 6:.1f} {x - 6:.1f},{y + 5:.1f} {x + 6:.1f},{y + 5:.1f}" class="{cls}"/>'
    if band == "yellow":
        return f'<polygon points="{x:.1f},{y - 6:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 6:.1f} {x - 6:.1f},{y:.1f}" ' \
               f'class="{cls}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" class="{cls}"/>'


def _head(title: str, desc: str, width: int, height: int) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
            f'preserveAspectRatio="xMinYMin meet"><title>{escape(title)}</title><desc>{escape(desc)}</desc>')


def _cut(text: str, most: int = 26) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _num(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
