from __future__ import annotations

from collections.abc import Sequence

import pytest

from policy_registry.binocular import binocular_check
from policy_registry.errors import PolicyError

ROWS = [(f"r{i}", text) for i, text in enumerate(["a b", "b", "a", "c", "a c"])]


def _eye(word: str, confidence: float = 0.9) -> object:
    def score(texts: Sequence[str]) -> list[float]:
        return [confidence if word in text.split() else 1 - confidence for text in texts]

    return score


def test_identical_eyes_agree_perfectly() -> None:
    report = binocular_check(ROWS, _eye("a"), _eye("a"))  # type: ignore[arg-type]
    assert (report.agreement_f1, report.cohen_kappa) == (1.0, 1.0)
    assert report.disagreements == []


def test_disagreements_are_listed_widest_first() -> None:
    a = [0.9, 0.2, 0.95, 0.1, 0.7]  # flags r0 r2 r4
    b = [0.8, 0.6, 0.1, 0.2, 0.45]  # flags r0 r1
    report = binocular_check(ROWS, lambda texts: a, lambda texts: b)
    assert report.agreement_f1 == pytest.approx(2 * 1 / (3 + 2))
    assert report.cohen_kappa == pytest.approx((0.4 - 0.48) / (1 - 0.48))
    assert [d.row_id for d in report.disagreements] == ["r2", "r1", "r4"]  # gaps .85 .4 .25
    assert (report.positives_a, report.positives_b) == (3, 2)


def test_an_eye_that_skips_rows_is_an_error() -> None:
    with pytest.raises(PolicyError, match="one score per row"):
        binocular_check(ROWS, _eye("a"), lambda texts: [0.5])  # type: ignore[arg-type]
