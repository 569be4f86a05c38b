"""What the static HTML pages roboil writes share (``roboil eval``'s report.html, ``roboil store view``'s page):
their base style, links to the files written beside them, and the inline SVG charts (line charts, a proportion
with its interval, a histogram split by outcome), so a page opens from disk with a double-click: no script
library, nothing fetched from elsewhere."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

# Green border: a successful episode's video, red: a failed one's.
REPORT_CSS = """body{font-family:sans-serif;margin:2em} figure{display:inline-block;margin:4px;text-align:center}
figure.ok video{border:4px solid #2a2} figure.fail video{border:4px solid #c22} video{width:240px}
td,th{padding:2px 10px;text-align:right}"""

BUCKETS = 300  # a line longer than 2 * BUCKETS points keeps each bucket's minimum and maximum
PLOT_W, PLOT_H = 420, 190
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 10, 34
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
         "#17becf"]
SUCCESS_COLOR, FAILURE_COLOR = "#2a2", "#c22"  # as the videos' borders

# The charts' figures and legends (pages add it to REPORT_CSS).
CHART_CSS = """figure.plot{vertical-align:top;width:""" + str(PLOT_W) + """px;text-align:left}
figure.plot svg{display:block;background:#fff} figure.plot figcaption{font-size:12px;line-height:1.5}
.legend{display:block} .legend span{white-space:nowrap;margin-right:8px}
.legend i{display:inline-block;width:14px;height:3px;margin:0 3px 3px 0;vertical-align:middle}"""


def relative_url(path: str | Path, page_dir: Path) -> str:
    """``path`` as an attribute-safe URL relative to the page's directory (works over file:// and HTTP alike)."""
    return html.escape(Path(os.path.relpath(path, page_dir)).as_posix())


# ---- line charts ---------------------------------------------------------------------------------------------


def line_chart(name: str, values: np.ndarray, labels: Sequence[str], legend: Sequence[str] | None = None, *,
               x: np.ndarray | None = None, x_label: str = "step", data: str = "array", aria: str = "",
               note: str = "", log_y: bool = False, marker: tuple[float, str] | None = None) -> str:
    """A figure with one SVG chart: a polyline per column of ``values`` (steps x lines) over ``x`` (increasing;
    default the row index), non-finite values leaving gaps, long lines thinned to each bucket's extremes; axis
    labels, ticks (y: the lowest, middle and highest value), ``name`` as caption with the raw HTML ``note``, and
    ``legend`` (one text per line) beneath. ``labels`` title the lines (hover). ``log_y``: a log10 y axis (values
    <= 0 leave gaps); ``marker``: a dashed vertical line at that x, with its tooltip. ``data`` names the svg's
    ``data-`` attribute holding ``name``."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    steps, lines = values.shape
    if log_y:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    if hi - lo < 1e-12 * max(1.0, abs(lo)):
        lo, hi = lo - max(1.0, abs(lo) * 0.1), hi + max(1.0, abs(hi) * 0.1)
    pad = (hi - lo) * 0.04
    lo, hi = lo - pad, hi + pad
    x0, x1, y0, y1 = LEFT, PLOT_W - RIGHT, PLOT_H - BOTTOM, TOP  # y0: the bottom (lo), y1: the top (hi)
    if x is None:
        last = max(steps - 1, 1)
        first, span = 0.0, float(last)
        x_ticks = [(step, str(step)) for step in sorted({0, last // 2, last} if steps > 1 else {0})]
    else:
        x = np.asarray(x, dtype=np.float64)
        first, final = (float(x.min()), float(x.max())) if steps else (0.0, 1.0)
        if final <= first:
            first, final = first - 1, final + 1
        span = final - first
        whole = bool(np.all(x == np.round(x)))
        x_ticks = [(value, _number_text(value)) for value in nice_ticks(first, final, whole=whole)]

    def sx(at):
        return x0 + (x1 - x0) * (at - first) / span

    def sy(value):
        return y0 + (y1 - y0) * (value - lo) / (hi - lo)

    def position(step):
        return sx(step if x is None else x[step])

    parts = [f"<rect x=\"{x0}\" y=\"{y1}\" width=\"{x1 - x0}\" height=\"{y0 - y1}\" fill=\"none\" stroke=\"#999\"/>"]
    for value in np.linspace(lo + pad, hi - pad, 3) if hi - lo > 2 * pad else [lo, hi]:
        y = sy(value)
        parts.append(f"<line x1=\"{x0 - 4}\" x2=\"{x1}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#e4e4e4\"/>"
                     f"<text x=\"{x0 - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">"
                     f"{_tick(10 ** value if log_y else value)}</text>")
    for at, text in x_ticks:
        px = sx(at)
        parts.append(f"<line x1=\"{px:.1f}\" x2=\"{px:.1f}\" y1=\"{y0}\" y2=\"{y0 + 4}\" stroke=\"#999\"/>"
                     f"<text x=\"{px:.1f}\" y=\"{y0 + 16}\" text-anchor=\"{_anchor(px, text)}\">{text}</text>")
    parts.append(f"<text x=\"{(x0 + x1) / 2:.0f}\" y=\"{PLOT_H - 3}\" text-anchor=\"middle\">{html.escape(x_label)}"
                 f"</text><text transform=\"translate(13 {(y0 + y1) / 2:.0f}) rotate(-90)\" text-anchor=\"middle\">"
                 f"{html.escape(name)}</text>")
    if marker is not None and x is not None and first <= marker[0] <= first + span:
        px = sx(marker[0])
        parts.append(f"<line class=\"marker\" x1=\"{px:.1f}\" x2=\"{px:.1f}\" y1=\"{y1}\" y2=\"{y0}\" stroke=\"#555\" "
                     f"stroke-dasharray=\"4 3\"><title>{html.escape(marker[1])}</title></line>")
    colors = _colors(lines)
    for line in range(lines):
        for run in _finite_runs(finite[:, line]):
            keep = _decimate(values[run, line]) + run.start
            points = " ".join(f"{position(s):.1f},{sy(values[s, line]):.1f}" for s in keep)
            if len(keep) == 1:  # a lone finite value: a dot
                points += f" {position(keep[0]) + 0.5:.1f},{sy(values[keep[0], line]):.1f}"
            parts.append(f"<polyline class=\"dim\" data-dim=\"{line}\" fill=\"none\" stroke=\"{colors[line]}\" "
                         f"stroke-width=\"1.3\" stroke-linejoin=\"round\" points=\"{points}\">"
                         f"<title>{html.escape(labels[line])}</title></polyline>")
    svg = (f"<svg class=\"plot\" data-{data}=\"{html.escape(name)}\" xmlns=\"http://www.w3.org/2000/svg\" "
           f"width=\"{PLOT_W}\" height=\"{PLOT_H}\" viewBox=\"0 0 {PLOT_W} {PLOT_H}\" font-size=\"11\" "
           f"font-family=\"sans-serif\" role=\"img\" aria-label=\"{_attribute(aria or name)}\">"
           + "".join(parts) + "</svg>")
    keys = "" if legend is None else "<span class=\"legend\">" + "".join(
        f"<span><i style=\"background:{colors[line]}\"></i>{html.escape(legend[line])}</span>"
        for line in range(lines)) + "</span>"
    empty = " <span class=\"note\">(no finite values)</span>" if not finite.any() else ""
    return (f"<figure class=\"plot\">{svg}<figcaption><b>{html.escape(name)}</b>{note}{empty}{keys}</figcaption>"
            "</figure>")


def nice_ticks(lo: float, hi: float, most: int = 5, whole: bool = False) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) between ``lo`` and ``hi``: the widest spacing
    giving at least three (at most ``most``), or ``lo`` and ``hi`` themselves where fewer than two fall between.
    ``whole``: whole numbers only (training steps, counts)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    power = 10.0 ** math.floor(math.log10(hi - lo))
    best: list[float] = []
    for step in sorted((m * power * scale for m in (1, 2, 2.5, 5) for scale in (0.01, 0.1, 1)), reverse=True):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        ticks = [round(k * step, 12) for k in range(first, last + 1)]
        if whole and step != round(step):
            continue
        if len(ticks) > most:
            break
        best = ticks
        if len(ticks) >= 3:
            break
    return best if len(best) >= 2 else [lo, hi]


def _finite_runs(mask: np.ndarray) -> list[slice]:
    """The runs of consecutive True in ``mask``, as slices."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _decimate(y: np.ndarray) -> np.ndarray:
    """Indices of the points to draw: all, or for a long line each bucket's minimum and maximum (in step order),
    so spikes survive."""
    n = len(y)
    if n <= 2 * BUCKETS:
        return np.arange(n)
    bounds = np.linspace(0, n, BUCKETS + 1).astype(int)
    keep = {0, n - 1}
    for a, b in zip(bounds[:-1], bounds[1:]):
        keep.update((a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))))
    return np.array(sorted(keep))


def _colors(n: int) -> list[str]:
    if n <= len(TAB10):
        return TAB10[:n]
    return [f"hsl({round(i * 360 / n)},70%,{40 + 12 * (i % 2)}%)" for i in range(n)]


def _anchor(x: float, text: str) -> str:
    """An axis label's text-anchor at ``x``: centred, unless that would cut it at the chart's edge."""
    half = 3.1 * len(text)  # about half its width in digits at font-size 11
    return "end" if x + half > PLOT_W else "start" if x - half < 0 else "middle"


def _attribute(text: str) -> str:
    """``text`` for a double-quoted attribute (apostrophes kept as they are)."""
    return html.escape(text).replace("&#x27;", "'")


def _tick(value: float) -> str:
    """3 significant digits, in a short scientific form (1.23e5, not 1.23e+05); where that takes more than 6
    characters (0.000475), 2 digits (4.7e-4), so it fits beside the axis."""
    text = f"{0.0 if abs(value) < 1e-12 else value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    if len(text.lstrip("-")) <= 6:
        return text
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _number_text(value: float) -> str:
    """An axis number: whole numbers in full (step 30000, not 3e+04), others to 3 significant digits."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return _tick(value)


# ---- a proportion and its interval ---------------------------------------------------------------------------

INTERVAL_H = 78
INTERVAL_X0, INTERVAL_X1 = 22, PLOT_W - 22  # where 0 and 1 lie


def interval_chart(name: str, rate: float, lo: float, hi: float, caption: str) -> str:
    """A figure with one SVG: a 0..1 axis (ticks every 0.25), the interval ``lo``..``hi`` as a band with end caps
    and ``rate`` as a dot labelled with its value; ``caption`` is raw HTML."""
    x0, x1 = INTERVAL_X0, INTERVAL_X1
    axis, band_top, band_h = 52, 22, 18

    def sx(value):
        return x0 + (x1 - x0) * min(max(value, 0.0), 1.0)

    parts = []
    for value in (0, 0.25, 0.5, 0.75, 1):
        px = sx(value)
        parts.append(f"<line class=\"grid\" x1=\"{px:.2f}\" x2=\"{px:.2f}\" y1=\"{band_top - 6}\" y2=\"{axis}\" "
                     f"stroke=\"#e4e4e4\"/><line class=\"tick\" data-value=\"{value:g}\" x1=\"{px:.2f}\" "
                     f"x2=\"{px:.2f}\" y1=\"{axis}\" y2=\"{axis + 4}\" stroke=\"#999\"/>"
                     f"<text x=\"{px:.2f}\" y=\"{axis + 16}\" text-anchor=\"middle\">{value:g}</text>")
    parts.append(f"<line x1=\"{x0}\" x2=\"{x1}\" y1=\"{axis}\" y2=\"{axis}\" stroke=\"#999\"/>")
    left, right, mid = sx(lo), sx(hi), band_top + band_h / 2
    parts.append(f"<rect class=\"interval\" x=\"{left:.2f}\" y=\"{band_top}\" width=\"{right - left:.2f}\" "
                 f"height=\"{band_h}\" fill=\"#9ecae1\" fill-opacity=\"0.8\"><title>95% interval "
                 f"{lo:.3f}&ndash;{hi:.3f}</title></rect>")
    for px in (left, right):
        parts.append(f"<line class=\"cap\" x1=\"{px:.2f}\" x2=\"{px:.2f}\" y1=\"{band_top - 3}\" "
                     f"y2=\"{band_top + band_h + 3}\" stroke=\"#1f77b4\" stroke-width=\"2\"/>")
    point = sx(rate)
    anchor = "start" if point < x0 + 15 else "end" if point > x1 - 15 else "middle"
    parts.append(f"<circle class=\"rate\" cx=\"{point:.2f}\" cy=\"{mid}\" r=\"5\" fill=\"#08306b\">"
                 f"<title>{html.escape(name)} {rate:.3f}</title></circle>"
                 f"<text x=\"{point:.2f}\" y=\"{band_top - 8}\" text-anchor=\"{anchor}\" font-weight=\"bold\">"
                 f"{rate:.2f}</text>")
    svg = (f"<svg class=\"plot interval\" data-chart=\"{html.escape(name)}\" xmlns=\"http://www.w3.org/2000/svg\" "
           f"width=\"{PLOT_W}\" height=\"{INTERVAL_H}\" viewBox=\"0 0 {PLOT_W} {INTERVAL_H}\" font-size=\"11\" "
           f"font-family=\"sans-serif\" role=\"img\" aria-label=\"{html.escape(name)} {rate:.2f}, 95% interval "
           f"{lo:.2f} to {hi:.2f}\">" + "".join(parts) + "</svg>")
    return f"<figure class=\"plot\">{svg}<figcaption><b>{html.escape(name)}</b> {caption}</figcaption></figure>"


# ---- a histogram split by outcome ----------------------------------------------------------------------------


def outcome_histogram(name: str, values: Sequence[float], successes: Sequence[bool], bins: int | None = None) -> str:
    """A figure with one SVG histogram of ``values``, each bin's bar stacked: failures (red) below successes
    (green); each drawn bar carries its ``data-count`` and bin edges. Non-finite values are left out (and said)."""
    values = np.asarray(values, dtype=np.float64)
    successes = np.asarray(successes, dtype=bool)
    finite = np.isfinite(values)
    shown, won = values[finite], successes[finite]
    if shown.size:
        lo, hi = float(shown.min()), float(shown.max())
        if hi - lo < 1e-9 * max(1.0, abs(lo)):
            lo, hi = lo - 0.5, hi + 0.5
        bins = bins or max(1, min(30, math.ceil(2 * shown.size ** (1 / 3))))  # Rice's rule
    else:
        lo, hi, bins = 0.0, 1.0, 1
    edges = np.linspace(lo, hi, bins + 1)
    failed_counts = np.histogram(shown[~won], edges)[0]
    won_counts = np.histogram(shown[won], edges)[0]
    most = max(1, int((failed_counts + won_counts).max()))
    count_ticks = nice_ticks(0, most, whole=True)
    spacing = int(count_ticks[1] - count_ticks[0]) if len(count_ticks) > 1 else most
    top = spacing * math.ceil(most / spacing)  # the axis ends on a tick, not on a count beside one
    x0, x1, y0, y1 = LEFT, PLOT_W - RIGHT, PLOT_H - BOTTOM, TOP

    def sx(value):
        return x0 + (x1 - x0) * (value - lo) / (hi - lo)

    def sy(count):
        return y0 - (y0 - y1) * count / top

    parts = [f"<rect x=\"{x0}\" y=\"{y1}\" width=\"{x1 - x0}\" height=\"{y0 - y1}\" fill=\"none\" stroke=\"#999\"/>"]
    for count in range(0, top + 1, spacing):
        y = sy(count)
        parts.append(f"<line x1=\"{x0 - 4}\" x2=\"{x1}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#e4e4e4\"/>"
                     f"<text x=\"{x0 - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{count}</text>")
    for value in nice_ticks(lo, hi):
        px, text = sx(value), _number_text(value)
        parts.append(f"<line x1=\"{px:.1f}\" x2=\"{px:.1f}\" y1=\"{y0}\" y2=\"{y0 + 4}\" stroke=\"#999\"/>"
                     f"<text x=\"{px:.1f}\" y=\"{y0 + 16}\" text-anchor=\"{_anchor(px, text)}\">{text}</text>")
    parts.append(f"<text x=\"{(x0 + x1) / 2:.0f}\" y=\"{PLOT_H - 3}\" text-anchor=\"middle\">{html.escape(name)}"
                 f"</text><text transform=\"translate(13 {(y0 + y1) / 2:.0f}) rotate(-90)\" text-anchor=\"middle\">"
                 "episodes</text>")
    for b in range(bins):
        left, right = sx(edges[b]), sx(edges[b + 1])
        gap = min(1.0, (right - left) / 4)
        below = 0
        for css, color, outcomes, count in (("fail", FAILURE_COLOR, ("failure", "failures"), int(failed_counts[b])),
                                            ("ok", SUCCESS_COLOR, ("success", "successes"), int(won_counts[b]))):
            if not count:
                continue
            closing = "]" if b == bins - 1 else ")"
            parts.append(
                f"<rect class=\"bar {css}\" data-count=\"{count}\" data-lo=\"{float(edges[b])!r}\" "
                f"data-hi=\"{float(edges[b + 1])!r}\" "
                f"x=\"{left + gap:.2f}\" y=\"{sy(below + count):.2f}\" width=\"{right - left - 2 * gap:.2f}\" "
                f"height=\"{sy(below) - sy(below + count):.2f}\" fill=\"{color}\"><title>{count} "
                f"{outcomes[count != 1]}, {html.escape(name)} in [{_tick(edges[b])}, "
                f"{_tick(edges[b + 1])}{closing}</title></rect>")
            below += count
    svg = (f"<svg class=\"plot histogram\" data-chart=\"{html.escape(name)}\" xmlns=\"http://www.w3.org/2000/svg\" "
           f"width=\"{PLOT_W}\" height=\"{PLOT_H}\" viewBox=\"0 0 {PLOT_W} {PLOT_H}\" font-size=\"11\" "
           f"font-family=\"sans-serif\" role=\"img\" aria-label=\"histogram of {html.escape(name)}\">"
           + "".join(parts) + "</svg>")
    left_out = int((~finite).sum())
    note = (f" <span class=\"note\">({left_out} episode{'' if left_out == 1 else 's'} with a non-finite "
            f"{html.escape(name)} not shown)</span>") if left_out else ""
    legend = (f"<span class=\"legend\"><span><i style=\"background:{SUCCESS_COLOR}\"></i>success ({int(won.sum())})"
              f"</span><span><i style=\"background:{FAILURE_COLOR}\"></i>failure ({int((~won).sum())})</span></span>")
    return (f"<figure class=\"plot\">{svg}<figcaption><b>{html.escape(name)}</b> per episode{note}{legend}"
            "</figcaption></figure>")
