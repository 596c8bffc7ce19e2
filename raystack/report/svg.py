"""Inline SVG score curves: small, dependency-free, readable in any browser.

    svg = score_curve_svg(frames, scores, threshold=0.7, events=[(120, 180)], labels=[(110, 190)])

Scores are drawn in [0, 1] (the query layer's anomaly scale); event spans are shaded red,
labelled anomalous spans marked in amber along the bottom, the threshold dashed.
"""

from __future__ import annotations

from html import escape

import numpy as np

_W, _H = 760, 170
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 40, 10, 10, 28
# More points than pixels only bloats the page; the max over each bucket keeps spikes.
_MAX_POINTS = 1500


def _downsample(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= _MAX_POINTS:
        return x, y
    edges = np.linspace(0, len(x), _MAX_POINTS + 1).astype(int)
    xs = np.array([x[a:b][np.argmax(y[a:b])] for a, b in zip(edges[:-1], edges[1:]) if b > a])
    ys = np.array([y[a:b].max() for a, b in zip(edges[:-1], edges[1:]) if b > a])
    return xs, ys


def score_curve_svg(
    frames: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float | None = None,
    events: list[tuple[int, int]] = (),
    labels: list[tuple[int, int]] = (),
    n_frames: int | None = None,
    title: str = "",
) -> str:
    """An SVG line chart of one video's scores over its frames (inclusive spans)."""
    frames = np.asarray(frames, dtype=np.float64)
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
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
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for a, b in events:
        parts.append(
            f'<rect class="event" x="{px(a):.1f}" y="{_PAD_T}" width="{max(px(b) - px(a), 1.5):.1f}" '
            f'height="{ph}" fill="#e53935" fill-opacity="0.18"/>'
        )
    for a, b in labels:
        parts.append(
            f'<rect class="label" x="{px(a):.1f}" y="{_PAD_T + ph - 6}" '
            f'width="{max(px(b) - px(a), 1.5):.1f}" height="6" fill="#ff9800"/>'
        )
    if threshold is not None and 0.0 <= threshold <= 1.0:
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_PAD_L + pw}" y1="{py(threshold):.1f}" y2="{py(threshold):.1f}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
        )
    if len(frames):
        xs, ys = _downsample(frames, scores)
        pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, ys))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#1e88e5" stroke-width="1.3"/>')
    for v in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{_PAD_L - 4}" y="{py(v) + 4:.1f}" font-size="10" text-anchor="end">{v:g}</text>'
        )
    for f in np.linspace(0, x_max, 6):
        parts.append(
            f'<text x="{px(f):.1f}" y="{_H - 12}" font-size="10" text-anchor="middle">{int(round(f))}</text>'
        )
    parts.append(
        f'<text x="{_PAD_L + pw / 2:.1f}" y="{_H - 1}" font-size="10" text-anchor="middle">frame</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
