"""A training run's settings are checked before any work starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from worker.model.train_config import TrainConfig


@pytest.mark.parametrize(
    "impossible",
    [
        {"flip_balance": "sideways"},
        {"twin_policy": "cousin"},
        {"flip_share": 1.5},
        {"flip_share": -0.1},
        {"steps": 0},
        {"batch_size": 0},
        {"twin_weight": -1.0},
        {"attention_dropout": 1.0},
        {"twin_weight": 1.0, "batch_size": 5},
        {"draw_weights": (("hate", 0.0),)},
        {"draw_weights": (("hate", float("inf")),)},
        {"draw_weights": (("hate", float("nan")),)},
        {"draw_weights": (("hate:hatecheck", -2.0),)},
        {"draw_weights": (("hate:hatecheck:x:y", 2.0),)},
        {"draw_weights": (("hate::x", 2.0),)},
        {"draw_weights": ((":hatecheck", 2.0),)},
        {"carriers_per_edit": 0},
        {"twin_margin": -1.0},
        {"kept_partner_share": 1.5},
        {"kept_anchor_weight": -1.0},
        {"kept_anchor_weight": float("nan")},
        {"kept_partner_share": 0.5},  # without a twin weight no partner is ever drawn
        {"twin_margin": float("nan")},
    ],
)
def test_an_impossible_training_setting_is_refused_before_any_work(
    tmp_path: Path, impossible: dict[str, Any]
) -> None:
    from worker.errors import ModelError

    valid = TrainConfig(out=str(tmp_path), policies=("hate",))
    with pytest.raises(ModelError, match="must be"):
        replace(valid, **impossible)
    assert not any(tmp_path.iterdir())
