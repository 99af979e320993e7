"""One calibration for all policies: Platt scaling shifted to the F1-best cut."""

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


def test_after_calibration_half_is_the_f1_best_cut() -> None:
    logits, labels = _logistic_data(0.7, -2.0)
    scale, bias = fit_calibration(logits, labels)
    calibrated = 1 / (1 + np.exp(-(scale * np.asarray(logits) + bias)))
    cut = best_threshold(calibrated.tolist(), labels)
    assert cut == pytest.approx(0.5, abs=1e-6)


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
