"""What decides a training run, checked before any work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from worker.errors import ModelError
from worker.model.dataset import DEFAULT_DATA_DIR
from worker.model.export import base_checkpoint_dir

__all__ = ["TrainConfig"]

FLIP_BALANCES = ("source", "edit", "pooled")
TWIN_POLICIES = ("area", "unedited")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run; stored beside its checkpoints."""

    out: str
    policies: tuple[str, ...]
    data_dir: str = str(DEFAULT_DATA_DIR)
    base: str = ""
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 3e-5
    warmup_steps: int = 50
    max_length: int = 512
    max_policy_tokens: int = 400
    window_stride: int = 64
    checkpoint_every: int = 50
    seed: int = 13
    draw_seed: int | None = None
    davidson_limit: int = 4000
    variants_per_area: int = 40
    variant_pairs_per_text: int = 2
    carriers_per_edit: int = 1
    flip_share: float = 0.15
    flip_balance: str = "source"
    twin_weight: float = 0.0
    twin_margin: float = 0.0
    kept_partner_share: float = 0.0
    kept_anchor_weight: float = 0.0
    twin_policy: str = "area"
    draw_weights: tuple[tuple[str, float], ...] = ()
    attention_dropout: float = 0.0
    unrelated_weight: float = 0.25
    init_from: str = ""
    soft_labels: str = ""
    soft_label_weight: float = 1.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_share <= 1.0:
            raise ModelError(f"flip share must be between 0 and 1, got {self.flip_share}")
        if self.flip_balance not in FLIP_BALANCES:
            raise ModelError(
                f"flip balance must be one of {', '.join(FLIP_BALANCES)}, got {self.flip_balance!r}"
            )
        if self.twin_policy not in TWIN_POLICIES:
            raise ModelError(
                f"twin policy must be one of {', '.join(TWIN_POLICIES)}, got {self.twin_policy!r}"
            )
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ModelError("steps, batch size and checkpoint interval must be at least 1")
        if self.carriers_per_edit < 1:
            raise ModelError(f"carriers per edit must be at least 1, got {self.carriers_per_edit}")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ModelError(f"attention dropout must be in [0, 1), got {self.attention_dropout}")
        if not 0.0 <= self.kept_partner_share <= 1.0:
            raise ModelError(
                f"kept partner share must be between 0 and 1, got {self.kept_partner_share}"
            )
        if self.kept_partner_share > 0 and self.twin_weight <= 0:
            raise ModelError("a kept partner share must be used with a twin weight above 0")
        if not 0.0 <= self.kept_anchor_weight < math.inf:
            raise ModelError(
                f"kept anchor weight must be at least 0, got {self.kept_anchor_weight}"
            )
        if not 0.0 <= self.twin_margin < math.inf:
            raise ModelError(f"twin margin must be at least 0, got {self.twin_margin}")
        if self.twin_weight < 0 or (self.twin_weight > 0 and self.batch_size % 2):
            raise ModelError("twin weight must be at least 0, with an even batch size")
        for key, weight in self.draw_weights:
            if not 0 < weight < math.inf or key.count(":") > 2 or not all(key.split(":")):
                raise ModelError(
                    "draw weights must be AREA, EDIT, AREA:DATASET or AREA:DATASET:TRAIT=W, "
                    f"W above 0; got {key}={weight}"
                )

    def order_seed(self) -> int:
        """The seed of the draw order: ``draw_seed`` if given, else ``seed``.

        ``seed`` also decides the generated policies and which are held out,
        so a run continuing another with the same recipe needs a seed of its
        own to draw afresh rather than replay the draws its start was
        trained on.
        """
        return self.seed if self.draw_seed is None else self.draw_seed

    def base_dir(self) -> Path:
        """The base encoder's folder: ``base`` if given, else the packaged MiniLM."""
        return Path(self.base) if self.base else base_checkpoint_dir()
