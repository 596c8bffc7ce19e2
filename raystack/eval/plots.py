"""PNG plots of an evaluation: the ROC curve, and per-video score curves with the labelled
anomalous spans shaded and the threshold line.

    plot_roc(scores, labels, Path("roc.png"), title="r1 fp: micro AUC 0.912")
    plot_curves([(name, frames, scores, labels), ...], Path("curves.png"), threshold=0.5,
                title="r1 fp")   # -> [curves.png, curves_2.png, ...], 12 videos a page
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VIDEOS_PER_PAGE = 12


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(scores: np.ndarray, labels: np.ndarray, path: Path, *, title: str) -> Path:
    """The micro ROC curve (sklearn's ``roc_curve``) with the chance diagonal."""
    from sklearn.metrics import roc_curve

    plt = _plt()
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=1.5)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges (inclusive) where ``labels`` is 1."""
    on = np.concatenate([[0], np.asarray(labels, np.int8), [0]])
    d = np.diff(on)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True))


def plot_curves(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path, *,
                threshold: float | None, title: str) -> list[Path]:
    """Score curves, one panel per video; ``curves`` holds (name, frames, scores, labels).

    Writes ``path`` and, past :data:`VIDEOS_PER_PAGE` videos, ``<stem>_2.png`` and so on.
    """
    plt = _plt()
    pages = [curves[i: i + VIDEOS_PER_PAGE] for i in range(0, len(curves), VIDEOS_PER_PAGE)]
    written = []
    for p, page in enumerate(pages or [[]]):
        out = path if p == 0 else path.with_name(f"{path.stem}_{p + 1}{path.suffix}")
        n = max(len(page), 1)
        fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n + 0.6), squeeze=False)
        for ax, (name, frames, scores, labels) in zip(axes[:, 0], page, strict=False):
            ax.plot(frames, scores, lw=1, label="anomaly score")
            for k, (s, e) in enumerate(_spans(labels)):
                ax.axvspan(frames[s], frames[e], color="orange", alpha=0.3, lw=0,
                           label="labelled anomalous" if k == 0 else None)
            if threshold is not None:
                ax.axhline(threshold, ls="--", c="grey", lw=0.8, label=f"threshold {threshold:g}")
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel(name, fontsize=7, rotation=0, ha="right")
        axes[0, 0].set_title(f"{title} ({p + 1}/{len(pages) or 1})", fontsize=9)
        axes[0, 0].legend(fontsize=6, loc="upper right")
        axes[-1, 0].set_xlabel("frame")
        fig.tight_layout()
        fig.savefig(out, dpi=90)
        plt.close(fig)
        written.append(out)
    return written
