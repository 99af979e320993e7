"""Accuracy of the classifier under one policy on a labelled JSONL file.

Pure metrics (precision, recall, F1, AUROC) plus the reader behind
``cope eval``, whose interface other tools rely on. Rows without the label
field are skipped; a malformed row is an error that names its line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worker.errors import CopeError

__all__ = [
    "EvalRow",
    "Metrics",
    "binary_metrics",
    "f1_difference_interval",
    "f1_interval",
    "json_objects",
    "precision_recall_curve",
    "read_rows",
    "read_scores",
    "read_texts",
    "threshold_for_precision",
    "write_pr_plot",
]


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


def json_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) for each non-blank JSONL line; a bad line names itself."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CopeError(f"cannot read {path}: {exc}") from exc
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
        yield where, record


def _text(record: dict[str, Any], field: str, where: str) -> str:
    text = record.get(field)
    if not isinstance(text, str) or not text.strip():
        raise CopeError(f"{where}: missing or empty {field!r}")
    return text


def read_rows(
    path: Path, label_field: str, text_field: str = "text", id_field: str = "id"
) -> list[EvalRow]:
    """Labelled rows of a JSONL file; rows lacking the label field are skipped."""
    return [
        EvalRow(
            str(record.get(id_field, "line-" + where.rsplit(":", 1)[1])),
            _text(record, text_field, where),
            _label(record[label_field], where),
        )
        for where, record in json_objects(path)
        if label_field in record
    ]


def read_texts(path: Path, text_field: str = "text", id_field: str = "id") -> list[tuple[str, str]]:
    """(id, text) of every row of a JSONL file."""
    return [
        (
            str(record.get(id_field, "line-" + where.rsplit(":", 1)[1])),
            _text(record, text_field, where),
        )
        for where, record in json_objects(path)
    ]


def read_scores(path: Path) -> dict[str, float]:
    """{id: score} from a JSONL file of {"id", "score"} with scores in [0, 1] (a teacher's)."""
    scores = {}
    for where, record in json_objects(path):
        score = record.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise CopeError(f"{where}: score {score!r} is not a number in [0, 1]")
        scores[str(record.get("id"))] = float(score)
    return scores


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


def f1_interval(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% bootstrap interval of F1 at the threshold (rows resampled with replacement).

    Some headline figures rest on a few dozen texts (any-category on 81),
    where two models 0.03 apart may not differ at all; the interval says so.
    """
    y = np.asarray(labels, dtype=np.int64)
    flagged = np.asarray(scores, dtype=np.float64) >= threshold
    rows = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    low, high = np.percentile(_resampled_f1(y, flagged, rows), [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def f1_difference_interval(
    labels: Sequence[int],
    flagged_first: Sequence[bool],
    flagged_second: Sequence[bool],
    resamples: int = 5000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """F1 of the second labelling minus the first's, with a paired 95% bootstrap interval.

    Two models scored on the same few dozen texts share most of their
    errors; resampling the texts once for both keeps that pairing, so the
    interval is of the difference itself and much narrower than two
    separate intervals would suggest.
    """
    y = np.asarray(labels, dtype=np.int64)
    first = np.asarray(flagged_first, dtype=bool)
    second = np.asarray(flagged_second, dtype=bool)
    if not len(y) == len(first) == len(second):
        raise CopeError("labels and both labellings must be the same length")
    every = np.arange(len(y))[None, :]
    observed = _resampled_f1(y, second, every) - _resampled_f1(y, first, every)
    rows = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    differences = _resampled_f1(y, second, rows) - _resampled_f1(y, first, rows)
    low, high = np.percentile(differences, [2.5, 97.5])
    return round(float(observed[0]), 4), round(float(low), 4), round(float(high), 4)


def _resampled_f1(y: Any, flagged: Any, rows: Any) -> Any:
    """F1 of each resample, one per row of indices (0 where nothing is flagged or positive)."""
    hits = (flagged[rows] & (y[rows] == 1)).sum(axis=1)
    both = flagged[rows].sum(axis=1) + y[rows].sum(axis=1)
    return np.divide(2 * hits, both, out=np.zeros(len(rows)), where=both > 0)


def precision_recall_curve(
    labels: Sequence[int], scores: Sequence[float]
) -> tuple[list[float], list[float], list[float]]:
    """(precision, recall, threshold) at every distinct score, highest threshold first."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    cut = np.append(s[1:] != s[:-1], True)  # last index of each run of equal scores
    true_positives = np.cumsum(y)[cut]
    flagged = np.arange(1, len(y) + 1)[cut]
    precision = (true_positives / flagged).tolist()
    recall = (true_positives / max(1, int(y.sum()))).tolist()
    return precision, recall, s[cut].tolist()


def threshold_for_precision(
    labels: Sequence[int], scores: Sequence[float], target: float
) -> Metrics | None:
    """The lowest threshold whose precision reaches ``target``: the most recall it allows.

    The shipped calibration puts 0.5 at the F1-best cut of label-balanced pairs;
    on real traffic, where a harm may be 1 event in 30, that cut flags too much.
    An operator measures their own labelled sample and sets the threshold this
    returns as the policy's override. None when no threshold reaches the target.
    """
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    reaching = [i for i, value in enumerate(precision) if value >= target and recall[i] > 0]
    if not reaching:
        return None
    best = max(reaching, key=lambda i: (recall[i], thresholds[i]))
    return binary_metrics(labels, scores, thresholds[best])


def write_pr_plot(
    path: Path, labels: Sequence[int], scores: Sequence[float], threshold: float, title: str
) -> Path:
    """A precision-recall curve PNG with the operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = precision_recall_curve(labels, scores)
    at = binary_metrics(labels, scores, threshold)
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(recall, precision, color="#4477aa", label="model")
    axes.scatter(
        [at.recall],
        [at.precision],
        color="#cc3311",
        zorder=3,
        label=f"threshold {threshold:g}: P {at.precision:.2f} R {at.recall:.2f} F1 {at.f1:.2f}",
    )
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title, fontsize=9)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
