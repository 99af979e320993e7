"""One decision threshold for every policy: calibrate the model, not each policy.

A per-policy threshold cannot be set for a policy nobody has labelled data
for, so the model's logit is mapped once, for all policies, by
``sigmoid(scale * logit + bias)``: Platt scaling fitted on pairs pooled across
many policies, then shifted so that 0.5 is the pooled F1-best operating point
as the Platt fit sees it (half the best F1, see ``fit_calibration``). The two
numbers live in the manifest (and so in its hash, which every label
records); operators may still override the threshold per policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from worker.errors import ModelError
from worker.model.evaluate import precision_recall_curve

__all__ = ["best_threshold", "fit_calibration", "fit_platt", "logit"]

_EPSILON = 1e-6


def logit(probabilities: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse sigmoid, clipped so 0 and 1 stay finite."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPSILON, 1 - _EPSILON)
    return np.asarray(np.log(p / (1 - p)))


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Overflow-free sigmoid."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))


def fit_platt(
    logits: Sequence[float], labels: Sequence[int], iterations: int = 50
) -> tuple[float, float]:
    """(scale, bias) maximising the likelihood of ``labels`` (Newton's method).

    Each Newton step is halved until the likelihood improves: an undamped
    step overshoots where most logits sit far out on the sigmoid's flat
    tails, and from there it diverged (the 0.22.0 candidate's fit reached a
    scale of 5e12 on ordinary logits). Both classes must be present;
    otherwise no scale is identifiable.
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ModelError("calibration needs one label per logit, and at least one pair")
    if y.min() == y.max():
        raise ModelError("calibration needs both positive and negative pairs")
    features = np.stack([x, np.ones_like(x)], axis=1)

    def loss(w: npt.NDArray[np.float64]) -> float:
        z = features @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    weights = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = _sigmoid(features @ weights)
        gradient = features.T @ (p - y)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        current = loss(weights)
        while loss(weights - step) > current and np.abs(step).max() > 1e-12:
            step = step / 2
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    scale, bias = float(weights[0]), float(weights[1])
    if scale <= 0:
        raise ModelError(
            f"calibration found a non-positive scale {scale:.3g}: "
            "the model is no better than chance on these pairs"
        )
    return scale, bias


def _f1_curve(
    scores: Sequence[float], labels: Sequence[int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """F1 at each distinct score used as the cut (flag when score >= cut), and the cuts."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    p, r = np.asarray(precision), np.asarray(recall)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
    return f1, np.asarray(thresholds, dtype=np.float64)


def best_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The score threshold with the highest F1 (flag when score >= threshold)."""
    f1, thresholds = _f1_curve(scores, labels)
    return float(thresholds[int(np.argmax(f1))])


def fit_calibration(logits: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    """(scale, bias) so that ``sigmoid(scale * logit + bias) >= 0.5`` is the F1-best cut.

    The cut is half the best F1 on the Platt probabilities: for calibrated
    probabilities that is where F1 peaks (Lipton, Elkan and Naryanaswamy,
    2014). The pairs' own F1-best cut is not used: the model's logits are
    bimodal, F1 is flat across the few pairs between the modes, and its argmax
    moved by 2 logits between samples of the same model (0.37.0 and its
    re-export, session 19). Half the best F1 depends only on the smooth Platt
    fit and on the height of the plateau, and so moves a quarter as much.
    """
    scale, bias = fit_platt(logits, labels)
    calibrated = _sigmoid(scale * np.asarray(logits, dtype=np.float64) + bias)
    f1, _ = _f1_curve(calibrated.tolist(), labels)
    return scale, bias - float(logit(float(f1.max()) / 2))
