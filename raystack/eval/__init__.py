"""Evaluation with the standard protocol: label loaders, frame-level AUC, fusion, plots."""

from raystack.eval.evaluate import ORACLE_WARNING, EvalResult, evaluate
from raystack.eval.labels import LabelError, labels_for_videos, load_labels_for_run

__all__ = ["ORACLE_WARNING", "EvalResult", "LabelError", "evaluate", "labels_for_videos",
           "load_labels_for_run"]
