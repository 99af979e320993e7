from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.errors import CopeError
from worker.model.evaluate import (
    binary_metrics,
    precision_recall_curve,
    read_rows,
    threshold_for_precision,
)


def test_metrics_at_the_threshold() -> None:
    metrics = binary_metrics([1, 1, 0, 0, 1], [0.9, 0.4, 0.6, 0.1, 0.8], threshold=0.5)
    assert metrics.precision == pytest.approx(2 / 3)
    assert metrics.recall == pytest.approx(2 / 3)
    assert metrics.f1 == pytest.approx(2 / 3)
    assert metrics.auroc == pytest.approx(5 / 6)
    assert (metrics.n, metrics.positives) == (5, 3)


def test_auroc_counts_ties_as_half_and_needs_both_classes() -> None:
    assert binary_metrics([1, 0], [0.5, 0.5], 0.5).auroc == pytest.approx(0.5)
    assert binary_metrics([1, 1], [0.2, 0.9], 0.5).auroc is None


def test_no_predicted_positives_gives_zero_not_a_crash() -> None:
    metrics = binary_metrics([1, 0], [0.1, 0.2], 0.5)
    assert (metrics.precision, metrics.recall, metrics.f1) == (0.0, 0.0, 0.0)


def test_rows_without_the_label_are_skipped(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "text": "x", "H": 1},
                {"id": "b", "text": "y"},
                {"id": "c", "text": "z", "H": "false"},
            ]
        )
        + "\n"
    )
    rows = read_rows(data, "H")
    assert [(row.row_id, row.label) for row in rows] == [("a", 1), ("c", 0)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{broken", r"d\.jsonl:2: not JSON"),
        ('{"id": "x", "H": 1}', r"d\.jsonl:2: missing or empty 'text'"),
        ('{"id": "x", "text": "  ", "H": 1}', "missing or empty"),
        ('{"id": "x", "text": "t", "H": 7}', "label 7 is not 0/1"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_malformed_row_is_an_error_naming_its_line(
    tmp_path: Path, line: str, message: str
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "ok", "text": "fine", "H": 0}\n' + line + "\n")
    with pytest.raises(CopeError, match=message):
        read_rows(data, "H")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CopeError, match="cannot read"):
        read_rows(tmp_path / "absent.jsonl", "H")


def test_the_pr_curve_has_one_point_per_distinct_score() -> None:
    precision, recall, thresholds = precision_recall_curve([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
    assert thresholds == [0.9, 0.5, 0.1]
    assert precision == [1.0, 2 / 3, 0.5]
    assert recall == [0.5, 1.0, 1.0]


def test_the_threshold_for_a_precision_target_keeps_the_most_recall() -> None:
    labels, scores = [1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.1]
    loose = threshold_for_precision(labels, scores, 0.75)
    assert loose is not None
    assert (loose.threshold, loose.precision, loose.recall) == (0.6, 0.75, 1.0)
    strict = threshold_for_precision(labels, scores, 1.0)
    assert strict is not None
    assert strict.threshold == 0.8
    assert strict.recall == pytest.approx(2 / 3)


def test_an_unreachable_precision_target_gives_none() -> None:
    assert threshold_for_precision([0, 1], [0.9, 0.1], 0.9) is None
    assert threshold_for_precision([0, 0], [0.9, 0.1], 0.5) is None  # no positives at all


def test_the_f1_interval_brackets_the_estimate_and_narrows_with_more_rows() -> None:
    from worker.model.evaluate import binary_metrics, f1_interval

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 80)
    scores = np.where(rng.random(80) < 0.8, labels, 1 - labels).astype(float)  # 80% right
    f1 = binary_metrics(labels.tolist(), scores.tolist(), 0.5).f1
    low, high = f1_interval(labels.tolist(), scores.tolist(), 0.5)
    assert low < f1 < high
    many = f1_interval(np.tile(labels, 25).tolist(), np.tile(scores, 25).tolist(), 0.5)
    assert many[1] - many[0] < (high - low) / 3  # 25 times the rows: about a fifth as wide
    perfect = [1, 0] * 20
    assert f1_interval(perfect, [float(y) for y in perfect], 0.5) == (1.0, 1.0)


def test_the_paired_difference_is_exact_and_its_interval_is_narrower_than_either_model() -> None:
    from worker.model.evaluate import f1_difference_interval, f1_interval

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 81)
    first = np.where(rng.random(81) < 0.8, labels, 1 - labels).astype(bool)
    second = first.copy()
    second[np.flatnonzero((labels == 1) & ~first)[:3]] = True  # three misses mended
    expected = (
        binary_metrics(labels.tolist(), second.astype(float).tolist(), 0.5).f1
        - binary_metrics(labels.tolist(), first.astype(float).tolist(), 0.5).f1
    )
    difference, low, high = f1_difference_interval(labels.tolist(), first.tolist(), second.tolist())
    assert difference == pytest.approx(expected, abs=1e-4)
    assert difference > 0
    assert low <= difference <= high
    alone = f1_interval(labels.tolist(), first.astype(float).tolist(), 0.5)
    assert high - low < alone[1] - alone[0]  # shared errors cancel in the pairing
    assert low >= 0  # mending misses can only raise F1 here, in every resample
    same = f1_difference_interval(labels.tolist(), first.tolist(), first.tolist())
    assert same == (0.0, 0.0, 0.0)


def test_a_paired_difference_of_unequal_lengths_is_refused() -> None:
    from worker.model.evaluate import f1_difference_interval

    with pytest.raises(CopeError, match="same length"):
        f1_difference_interval([1, 0, 1], [True, False, True], [True, False])
