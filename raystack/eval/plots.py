"""PNG plots of an evaluation: the ROC curve and per-video score curves with labelled spans."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(scores: np.ndarray, labels: np.ndarray, path: Path, *, title: str) -> Path:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=1.5)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path, *,
                threshold: float | None, title: str) -> Path:
    """curves: (name, frames, scores, labels over those frames) per video."""
    plt = _plt()
    n = max(len(curves), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.8 * n), squeeze=False)
    for ax, (name, frames, scores, labels) in zip(axes[:, 0], curves):
        ax.plot(frames, scores, lw=1)
        on = np.concatenate([[0], labels.astype(np.int8), [0]])
        starts, ends = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1) - 1
        for s, e in zip(starts, ends):
            ax.axvspan(frames[s], frames[e], color="orange", alpha=0.3, lw=0)
        if threshold is not None:
            ax.axhline(threshold, ls="--", c="grey", lw=0.8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(name, fontsize=7, rotation=0, ha="right")
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
