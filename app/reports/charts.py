"""Charts drawn on the server as SVG (no script, nothing from outside), with Japanese labels and
an accessible name; every chart is shown next to a table of its numbers."""
from __future__ import annotations

from markupsafe import Markup, escape

# Colours that stay apart in print and for common colour-vision differences (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 720, 280, 48, 56, 16, 16


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 5:
            return step * 5 if step * 5 >= value else value
    return value


def _frame(title: str, labels: list[str], top: float, unit: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" class="chart">', f"<title>{escape(title)}</title>"]
    for i in range(6):
        value = top * i / 5
        y = TOP + plot_h - plot_h * i / 5
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        shown = f"{value:.0f}" if top >= 5 else f"{value:.1f}"
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{shown}</text>')
    parts.append(f'<text x="4" y="{TOP + 4}" font-size="11">{escape(unit)}</text>')
    step = plot_w / max(1, len(labels))
    for i, label in enumerate(labels):
        x = LEFT + step * i + step / 2
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" text-anchor="middle">{escape(label)}</text>')
    return parts


def _legend(names: list[str]) -> list[str]:
    parts, x = [], LEFT
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{HEIGHT - 22}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{HEIGHT - 13}" font-size="11">{escape(name)}</text>')
        x += 24 + 12 * len(name)
    return parts


def stacked_bars(title: str, labels: list[str], series: dict[str, list[float]], unit: str = "件") -> Markup:
    names = list(series)
    totals = [sum(series[n][i] for n in names) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    parts = _frame(title, labels, top, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels))
    for i in range(len(labels)):
        base = 0.0
        for j, name in enumerate(names):
            value = series[name][i]
            if not value:
                continue
            h = plot_h * value / top
            y = TOP + plot_h - plot_h * base / top - h
            parts.append(f'<rect x="{LEFT + step * i + step * 0.15:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(labels[i])} '
                         f'{escape(name)}: {value:g}{escape(unit)}</title></rect>')
            base += value
    parts += _legend(names)
    parts.append("</svg>")
    return Markup("".join(parts))


def lines(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str) -> Markup:
    names = list(series)
    values = [v for n in names for v in series[n] if v is not None]
    top = _nice_max(max(values, default=0))
    parts = _frame(title, labels, top, unit)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(labels))
    for j, name in enumerate(names):
        colour = PALETTE[j % len(PALETTE)]
        points = [(LEFT + step * i + step / 2, TOP + plot_h - plot_h * v / top, v)
                  for i, v in enumerate(series[name]) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, v in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(name)}: '
                         f'{v:.1f}{escape(unit)}</title></circle>')
    parts += _legend(names)
    parts.append("</svg>")
    return Markup("".join(parts))
