"""Average fine-tuned checkpoints that share an ancestor (a model soup).

Runs from one checkpoint that trade one held-out figure for another (one
reads more of HateCheck's flips, another keeps more unedited labels) stay in
one basin of the loss, and the weighted mean of their weights can keep what
each gained at no training cost. Averaging unrelated checkpoints gives
nonsense, so every checkpoint must hold the same tensors with the same
shapes, config and tokenizer; the result records where it came from.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worker.errors import ModelError
from worker.model.carry import SIDE_FILES, WEIGHTS_FILE, require_new_folder

__all__ = ["average_checkpoints"]

PROVENANCE_FILE = "average.json"
# Settings that shape training only: a recovered checkpoint keeps the base
# encoder's dropout, a trained one the run's, and the weights agree anyway.
_TRAINING_ONLY = ("attention_probs_dropout_prob", "hidden_dropout_prob")


def _shares(count: int, weights: Sequence[float] | None) -> list[float]:
    """Each checkpoint's share of the mean, summing to one."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ModelError(f"{len(weights)} weights for {count} checkpoints; give one each")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ModelError(f"weights must be finite, non-negative and not all zero: {list(weights)}")
    total = sum(weights)
    return [w / total for w in weights]


def _same_side_files(checkpoints: Sequence[Path]) -> None:
    """A soup of different architectures or vocabularies is not a model."""
    for name in SIDE_FILES:
        first = checkpoints[0] / name
        if not first.is_file():
            raise ModelError(f"no {name} in checkpoint {checkpoints[0]}")
        for other in checkpoints[1:]:
            if not (other / name).is_file():
                raise ModelError(f"no {name} in checkpoint {other}")
            if _comparable(other / name) != _comparable(first):
                raise ModelError(f"{name} differs between {checkpoints[0]} and {other}")


def _comparable(path: Path) -> Any:
    """A side file as averaging compares it: the config less its training-only settings."""
    if path.name != "config.json":
        return path.read_bytes()
    config = json.loads(path.read_text(encoding="utf-8"))
    return {key: value for key, value in config.items() if key not in _TRAINING_ONLY}


def average_checkpoints(
    checkpoints: Sequence[Path], out: Path, weights: Sequence[float] | None = None
) -> dict[str, Any]:
    """Write the weighted mean of ``checkpoints`` to ``out``; returns its provenance."""
    from safetensors.numpy import load_file, save_file

    if len(checkpoints) < 2:
        raise ModelError("averaging needs at least two checkpoints")
    shares = _shares(len(checkpoints), weights)
    require_new_folder(out, "average")
    for checkpoint in checkpoints:
        if not (checkpoint / WEIGHTS_FILE).is_file():
            raise ModelError(f"no {WEIGHTS_FILE} in checkpoint {checkpoint}")
    _same_side_files(checkpoints)
    loaded = [load_file(str(c / WEIGHTS_FILE)) for c in checkpoints]
    first = loaded[0]
    averaged = {}
    for name, tensor in first.items():
        for checkpoint, other in zip(checkpoints[1:], loaded[1:], strict=True):
            if name not in other or other[name].shape != tensor.shape:
                raise ModelError(f"tensor {name} is missing or shaped differently in {checkpoint}")
        if not np.issubdtype(tensor.dtype, np.floating):
            if any(not np.array_equal(o[name], tensor) for o in loaded[1:]):
                raise ModelError(f"non-float tensor {name} differs between checkpoints")
            averaged[name] = tensor
            continue
        mean = sum(
            share * o[name].astype(np.float64) for share, o in zip(shares, loaded, strict=True)
        )
        averaged[name] = np.asarray(mean).astype(tensor.dtype)
    for checkpoint, other in zip(checkpoints[1:], loaded[1:], strict=True):
        if extra := sorted(set(other) - set(first)):
            raise ModelError(f"{checkpoint} has tensors the first lacks: {extra[:3]}")
    out.mkdir(parents=True, exist_ok=True)
    save_file(averaged, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    for name in SIDE_FILES:
        shutil.copyfile(checkpoints[0] / name, out / name)
    provenance = {
        "checkpoints": [str(c) for c in checkpoints],
        "shares": [round(s, 6) for s in shares],
        "tensors": len(averaged),
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1))
    return provenance
