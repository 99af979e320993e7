"""One calibration for all policies: Platt scaling shifted to half its best F1."""

from __future__ import annotations

import numpy as np
import pytest

from worker.errors import ModelError
from worker.model.calibrate import best_threshold, fit_calibration, fit_platt, logit


def _logistic_data(scale: float, bias: float, n: int = 20000) -> tuple[list[float], list[int]]:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, n)
    labels = rng.random(n) < 1 / (1 + np.exp(-(scale * logits + bias)))
    return logits.tolist(), labels.astype(int).tolist()


def test_platt_scaling_recovers_the_generating_scale_and_bias() -> None:
    logits, labels = _logistic_data(0.5, -1.0)
    scale, bias = fit_platt(logits, labels)
    assert scale == pytest.approx(0.5, abs=0.05)
    assert bias == pytest.approx(-1.0, abs=0.08)


def test_platt_scaling_converges_where_most_logits_sit_on_the_flat_tails() -> None:
    # confident logits, a quarter of each class on the wrong side: an undamped
    # Newton step from scale 1 overshoots and the fit ran away to a scale of 9e10
    x = np.array([5.5] * 14 + [-5.0] * 6 + [-6.0] * 15 + [4.0] * 5)
    y = [1] * 20 + [0] * 20
    scale, bias = fit_platt(x.tolist(), y)
    grid = [(a, b) for a in np.linspace(0.01, 1, 100) for b in np.linspace(-2, 2, 81)]

    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.sum(np.logaddexp(0, z) - np.asarray(y) * z))

    assert 0 < scale < 1
    assert loss(scale, bias) <= min(loss(a, b) for a, b in grid) + 1e-9


def test_the_best_threshold_maximises_f1() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2]
    labels = [1, 1, 0, 1, 0, 0]
    assert best_threshold(scores, labels) == 0.6  # flags 4, 3 right: F1 6/7


def _f1(logits: np.ndarray, labels: np.ndarray, scale: float, bias: float) -> float:
    flagged = scale * logits + bias >= 0
    right = int(np.sum(flagged & (labels == 1)))
    return 2 * right / (int(flagged.sum()) + int(labels.sum()))


def test_calibration_puts_half_at_half_the_best_f1_of_the_platt_fit() -> None:
    logits, labels = _logistic_data(0.7, -2.0)
    platt_scale, platt_bias = fit_platt(logits, labels)
    probabilities = 1 / (1 + np.exp(-(platt_scale * np.asarray(logits) + platt_bias)))
    cut = best_threshold(probabilities.tolist(), labels)
    best = _f1(np.asarray(probabilities), np.asarray(labels), 1.0, -cut)
    scale, bias = fit_calibration(logits, labels)
    assert scale == platt_scale
    assert bias == pytest.approx(platt_bias - logit([best / 2])[0])


def test_on_well_calibrated_scores_the_cut_is_as_good_as_the_f1_best_one() -> None:
    logits, labels = _logistic_data(0.7, -2.0)
    x, y = np.asarray(logits), np.asarray(labels)
    scale, bias = fit_calibration(logits, labels)
    best = max(_f1(x, y, 1.0, -cut) for cut in np.linspace(-4, 8, 241))
    assert _f1(x, y, scale, bias) == pytest.approx(best, abs=0.005)


def _bimodal_pairs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Like the model's logits: most pairs far out on either side, few between."""
    confident = np.concatenate([rng.normal(-11, 0.5, 930), rng.normal(11, 0.5, 180)])
    # a few confident mistakes on each side, as the model makes
    sure = np.repeat([0, 1, 0, 1], [900, 30, 20, 160])
    between = rng.uniform(-6, 6, 90)
    unsure = (rng.random(90) < 1 / (1 + np.exp(-0.3 * between))).astype(int)
    return np.concatenate([confident, between]), np.concatenate([sure, unsure])


def test_the_cut_moves_less_between_samples_than_the_pairs_own_f1_best_cut() -> None:
    rng = np.random.default_rng(3)
    ours, argmax = [], []
    for _ in range(40):
        x, y = _bimodal_pairs(rng)
        scale, bias = fit_calibration(x.tolist(), y.tolist())
        ours.append(-bias / scale)
        platt_scale, platt_bias = fit_platt(x.tolist(), y.tolist())
        probabilities = 1 / (1 + np.exp(-(platt_scale * x + platt_bias)))
        cut = best_threshold(probabilities.tolist(), y.tolist())
        argmax.append((logit([cut])[0] - platt_bias) / platt_scale)
    assert np.std(ours) < 0.5 * np.std(argmax)


def test_logit_inverts_the_sigmoid_and_stays_finite() -> None:
    assert logit([0.5])[0] == pytest.approx(0.0)
    assert np.isfinite(logit([0.0, 1.0])).all()


def test_one_class_only_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="both positive and negative"):
        fit_platt([0.1, 0.2], [1, 1])
    with pytest.raises(ModelError, match="one label per logit"):
        fit_platt([0.1], [1, 0])


def test_a_model_worse_than_chance_is_refused() -> None:
    logits, labels = _logistic_data(-1.0, 0.0)
    with pytest.raises(ModelError, match="non-positive scale"):
        fit_platt(logits, labels)
