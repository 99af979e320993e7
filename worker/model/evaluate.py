"""Accuracy of the classifier under one policy on a labelled JSONL file.

Pure metrics (precision, recall, F1, AUROC) plus the reader behind
``cope eval``, whose interface other tools rely on. Rows without the label
field are skipped; a malformed row is an error that names its line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worker.errors import CopeError

__all__ = ["EvalRow", "Metrics", "binary_metrics", "read_rows"]


@dataclass(frozen=True, slots=True)
class EvalRow:
    row_id: str
    text: str
    label: int


@dataclass(frozen=True)
class Metrics:
    n: int
    positives: int
    precision: float
    recall: float
    f1: float
    auroc: float | None
    threshold: float


def _label(value: object, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return int(value.strip().lower() in ("1", "true"))
    raise CopeError(f"{where}: label {value!r} is not 0/1 or true/false")


def read_rows(
    path: Path, label_field: str, text_field: str = "text", id_field: str = "id"
) -> list[EvalRow]:
    """Labelled rows of a JSONL file; rows lacking the label field are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CopeError(f"cannot read {path}: {exc}") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CopeError(f"{where}: not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise CopeError(f"{where}: expected a JSON object")
        if label_field not in record:
            continue
        text = record.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise CopeError(f"{where}: missing or empty {text_field!r}")
        row_id = str(record.get(id_field, f"line-{number}"))
        rows.append(EvalRow(row_id, text, _label(record[label_field], where)))
    return rows


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum formula (ties count half)."""
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if positives == 0 or negatives == 0:
        return None
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> Metrics:
    """Precision, recall, F1 at the threshold, and AUROC."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    predicted = s >= threshold
    true_positives = int((predicted & (y == 1)).sum())
    precision = true_positives / int(predicted.sum()) if predicted.any() else 0.0
    recall = true_positives / int(y.sum()) if y.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(
        n=len(y),
        positives=int(y.sum()),
        precision=precision,
        recall=recall,
        f1=f1,
        auroc=_auroc(y, s),
        threshold=threshold,
    )
