"""Frame-level AUC of the evaluation protocol (docs/evaluation.md), pure numpy + sklearn: the
one AUC of raystack (``raystack eval`` and the benchmarks through it).

    micro = micro_auc([s1, s2], [l1, l2])          # one ROC AUC over all frames concatenated
    macro, skipped = macro_auc([s1, s2], [l1, l2])  # mean of per-video AUCs, single-class skipped
"""

from __future__ import annotations

import numpy as np


def video_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC of one video, or None when it holds only one class (AUC undefined)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def micro_auc(scores: list[np.ndarray], labels: list[np.ndarray]) -> float:
    """The standard frame-level AUC: all frames of all videos concatenated."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([np.asarray(x) for x in labels]) if labels else np.zeros(0)
    if y.size == 0 or y.min() == y.max():
        msg = "micro AUC needs both normal and anomalous frames among the scored frames"
        raise ValueError(msg)
    return float(roc_auc_score(y, np.concatenate([np.asarray(s) for s in scores])))


def macro_auc(scores: list[np.ndarray], labels: list[np.ndarray]) -> tuple[float | None, int]:
    """(mean of per-video AUCs, number of single-class videos skipped)."""
    aucs = [video_auc(s, lab) for s, lab in zip(scores, labels, strict=True)]
    valid = [a for a in aucs if a is not None]
    return (float(np.mean(valid)) if valid else None), len(aucs) - len(valid)


def oracle_choice(a: list[np.ndarray], b: list[np.ndarray], labels: list[np.ndarray]) -> list[int]:
    """VADMamba's clip-level fusion: per video, 0 if stream a has the higher AUC against the
    video's TEST LABELS, else 1. Single-class videos (no AUC) keep stream a. Uses test labels:
    for reproducing the paper only, never a default."""
    out = []
    for sa, sb, lab in zip(a, b, labels, strict=True):
        auc_a, auc_b = video_auc(sa, lab), video_auc(sb, lab)
        out.append(1 if auc_a is not None and auc_b is not None and auc_b > auc_a else 0)
    return out
