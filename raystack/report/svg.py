"""Inline SVG score curves: small, dependency-free, readable in any browser.

    svg = score_curve_svg(frames, scores, fps=25.0, threshold=0.7,
                          events=[(120, 180, "ev-1")], labels=[(110, 190)], start=t0)

The x axis is in seconds (frame / fps), the unit events are listed in; with ``start`` (the
video's wall-clock start, UTC) a second row of ticks gives the time of day. Without fps it
falls back to frames and says so. Scores are drawn in [0, 1] (the query layer's anomaly
scale); each event span is a shaded red rectangle with an ``id`` (the page's CSS highlights
the one the URL points at), labelled anomalous spans are amber along the bottom, the
threshold dashed.
"""

from __future__ import annotations

import datetime as dt
from html import escape

import numpy as np

_W, _H = 760, 184
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 40, 30, 10, 42
# More points than pixels only bloats the page; the max over each bucket keeps spikes.
_MAX_POINTS = 1500


def _downsample(x: np.ndarray, y: np.ndarray, limit: int = _MAX_POINTS) -> tuple[np.ndarray, ...]:
    if len(x) <= limit:
        return x, y
    edges = np.linspace(0, len(x), limit + 1).astype(int)
    starts = edges[:-1][edges[1:] > edges[:-1]]
    peak = np.maximum.reduceat(y, starts)
    # The frame of each bucket's maximum: the first index in it reaching that maximum.
    ends = [*starts[1:], len(y)]
    idx = np.array([a + int(np.argmax(y[a:b])) for a, b in zip(starts, ends, strict=True)])
    return x[idx], peak


def _clock(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%H:%M:%S")


def score_curve_svg(
    frames: np.ndarray,
    scores: np.ndarray,
    *,
    fps: float | None = None,
    start: dt.datetime | None = None,
    threshold: float | None = None,
    events: list[tuple[int, int, str]] = (),
    labels: list[tuple[int, int]] = (),
    n_frames: int | None = None,
    title: str = "",
) -> str:
    """An SVG line chart of one video's scores; spans are inclusive frame ranges."""
    frames = np.asarray(frames, dtype=np.float64)
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    per = 1.0 / fps if fps and fps > 0 else 1.0  # seconds per frame (1: the axis is frames)
    x_max = float(n_frames - 1 if n_frames else (frames.max() if len(frames) else 1.0))
    x_max = max(x_max, 1.0)
    pw, ph = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def px(f: float) -> float:
        return _PAD_L + pw * f / x_max

    def py(s: float) -> float:
        return _PAD_T + ph * (1.0 - s)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="{escape(title)}">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{pw}" height="{ph}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for a, b, anchor in events:
        parts.append(
            f'<a href="#row-{anchor}"><rect class="event" id="{anchor}" x="{px(a):.1f}" '
            f'y="{_PAD_T}" width="{max(px(b) - px(a), 1.5):.1f}" height="{ph}"><title>event '
            f'{escape(anchor)}: {a * per:.2f}-{b * per:.2f} {"s" if fps else "frames"}</title>'
            "</rect></a>"
        )
    for a, b in labels:
        parts.append(
            f'<rect class="label" x="{px(a):.1f}" y="{_PAD_T + ph - 6}" '
            f'width="{max(px(b) - px(a), 1.5):.1f}" height="6" fill="#ff9800"/>'
        )
    if threshold is not None and 0.0 <= threshold <= 1.0:
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_PAD_L + pw}" y1="{py(threshold):.1f}" '
            f'y2="{py(threshold):.1f}" stroke="#555" stroke-dasharray="4 3"/>'
        )
    if len(frames):
        xs, ys = _downsample(frames, scores)
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, ys, strict=True))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1e88e5" stroke-width="1.3"/>')
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{_PAD_L - 4}" y="{py(v) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{v:g}</text>')
    for f in np.linspace(0, x_max, 6):
        sec = f * per
        text = f"{sec:.1f}" if fps and x_max * per < 60 else f"{sec:.0f}"
        parts.append(f'<text x="{px(f):.1f}" y="{_H - 28}" font-size="10" '
                     f'text-anchor="middle">{text}</text>')
        if start is not None and fps:
            parts.append(f'<text class="clock" x="{px(f):.1f}" y="{_H - 16}" font-size="10" '
                         f'fill="#666" text-anchor="middle">'
                         f'{_clock(start + dt.timedelta(seconds=sec))}</text>')
    axis = "time (s)" if fps else "frame (no fps known)"
    if start is not None and fps:
        t0 = start.astimezone(dt.UTC)
        axis += f"; clock: UTC, start {t0:%Y-%m-%d %H:%M:%S} (file mtime - duration)"
    parts.append(f'<text x="{_PAD_L + pw / 2:.1f}" y="{_H - 3}" font-size="10" '
                 f'text-anchor="middle">{escape(axis)}</text>')
    parts.append("</svg>")
    return "".join(parts)
