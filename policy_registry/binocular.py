"""The binocular check: do two independent labelers agree under a draft policy?

CoPE refines a policy until independent labelers agree on it (the paper aims
at F1 >= 0.9); where they disagree, the policy is ambiguous. Each "eye" is a
callable from texts to scores in [0, 1], so this module knows no model: the
worker's CLI supplies the classifier, gold labels, a teacher's scores or the
classifier under a paraphrase of the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policy_registry.errors import PolicyError

__all__ = ["Disagreement", "Eye", "Report", "binocular_check"]

Eye = Callable[[Sequence[str]], Sequence[float]]


@dataclass(frozen=True)
class Disagreement:
    row_id: str
    text: str
    score_a: float
    score_b: float


@dataclass(frozen=True)
class Report:
    n: int
    agreement_f1: float
    cohen_kappa: float
    positives_a: int
    positives_b: int
    disagreements: list[Disagreement]


def _kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    share_a, share_b = sum(a) / n, sum(b) / n
    expected = share_a * share_b + (1 - share_a) * (1 - share_b)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def _f1(a: Sequence[bool], b: Sequence[bool]) -> float:
    both = sum(x and y for x, y in zip(a, b, strict=True))
    flagged = sum(a) + sum(b)
    return 1.0 if flagged == 0 else 2 * both / flagged


def binocular_check(
    rows: Sequence[tuple[str, str]], eye_a: Eye, eye_b: Eye, threshold: float = 0.5
) -> Report:
    """Score (id, text) rows with both eyes; agreement and the disagreements, surest first.

    The F1 is symmetric (each eye's flags against the other's); disagreements
    are ordered by how far apart the two scores are, so the cases where the
    policy is read most differently come first.
    """
    texts = [text for _, text in rows]
    scores_a, scores_b = list(eye_a(texts)), list(eye_b(texts))
    if not (len(scores_a) == len(scores_b) == len(rows)):
        raise PolicyError("each eye must return one score per row")
    flags_a = [score >= threshold for score in scores_a]
    flags_b = [score >= threshold for score in scores_b]
    disagreements = sorted(
        (
            Disagreement(row_id, text, a, b)
            for (row_id, text), a, b, fa, fb in zip(
                rows, scores_a, scores_b, flags_a, flags_b, strict=True
            )
            if fa != fb
        ),
        key=lambda d: -abs(d.score_a - d.score_b),
    )
    return Report(
        n=len(rows),
        agreement_f1=_f1(flags_a, flags_b),
        cohen_kappa=_kappa(flags_a, flags_b) if rows else 1.0,
        positives_a=sum(flags_a),
        positives_b=sum(flags_b),
        disagreements=disagreements,
    )
