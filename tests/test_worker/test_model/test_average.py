"""Averaged checkpoints are the weighted mean of compatible ones, and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from worker.errors import ModelError
from worker.model.average import average_checkpoints


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def _shifted(source: Path, folder: Path, by: float) -> Path:
    """A copy of ``source`` with every float weight moved by ``by``."""
    from safetensors.numpy import save_file

    shutil.copytree(source, folder)
    moved = {
        name: tensor + np.asarray(by, dtype=tensor.dtype)
        if np.issubdtype(tensor.dtype, np.floating)
        else tensor
        for name, tensor in _weights(source).items()
    }
    save_file(moved, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_the_average_is_the_weighted_mean_and_loads_as_a_classifier(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from worker.model.export import load_torch_classifier

    other = _shifted(tiny_checkpoint, tmp_path / "other", 1.0)
    out = tmp_path / "soup"
    provenance = average_checkpoints([tiny_checkpoint, other], out, weights=[3, 1])
    assert provenance["shares"] == [0.75, 0.25]
    assert json.loads((out / "average.json").read_text()) == provenance
    before, after = _weights(tiny_checkpoint), _weights(out)
    assert set(after) == set(before)
    for name, tensor in before.items():
        assert after[name].dtype == tensor.dtype
        assert np.allclose(after[name], tensor + 0.25, atol=1e-6), name
    load_torch_classifier(out)


def test_equal_shares_by_default(tiny_checkpoint: Path, tmp_path: Path) -> None:
    other = _shifted(tiny_checkpoint, tmp_path / "other", 2.0)
    average_checkpoints([tiny_checkpoint, other], tmp_path / "soup")
    name, tensor = next(iter(_weights(tiny_checkpoint).items()))
    assert np.allclose(_weights(tmp_path / "soup")[name], tensor + 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "1 weights for 2 checkpoints"),
        ([1.0, -1.0], "non-negative"),
        ([0.0, 0.0], "not all zero"),
    ],
)
def test_bad_weights_are_refused_before_anything_is_written(
    tiny_checkpoint: Path, tmp_path: Path, weights: list[float], message: str
) -> None:
    other = _shifted(tiny_checkpoint, tmp_path / "other", 1.0)
    with pytest.raises(ModelError, match=message):
        average_checkpoints([tiny_checkpoint, other], tmp_path / "soup", weights=weights)
    assert not (tmp_path / "soup").exists()


def test_checkpoints_of_different_shapes_or_vocabularies_are_refused(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import save_file

    reshaped = _shifted(tiny_checkpoint, tmp_path / "reshaped", 0.0)
    weights = _weights(reshaped)
    name = next(n for n, t in weights.items() if t.ndim == 2)
    weights[name] = weights[name][:-1]
    save_file(weights, str(reshaped / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelError, match=f"tensor {name} is missing or shaped differently"):
        average_checkpoints([tiny_checkpoint, reshaped], tmp_path / "soup-1")

    resized = _shifted(tiny_checkpoint, tmp_path / "resized", 0.0)
    config = json.loads((resized / "config.json").read_text())
    (resized / "config.json").write_text(json.dumps(config | {"num_attention_heads": 1}))
    with pytest.raises(ModelError, match=r"config\.json differs"):
        average_checkpoints([tiny_checkpoint, resized], tmp_path / "soup-0")

    retokenized = _shifted(tiny_checkpoint, tmp_path / "retokenized", 0.0)
    (retokenized / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match=r"tokenizer\.json differs"):
        average_checkpoints([tiny_checkpoint, retokenized], tmp_path / "soup-2")

    with pytest.raises(ModelError, match="at least two"):
        average_checkpoints([tiny_checkpoint], tmp_path / "soup-3")
    with pytest.raises(ModelError, match=r"no model\.safetensors"):
        average_checkpoints([tiny_checkpoint, tmp_path / "missing"], tmp_path / "soup-4")


def test_a_folder_that_holds_files_is_never_written_over(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    other = _shifted(tiny_checkpoint, tmp_path / "other", 1.0)
    before = (other / "model.safetensors").read_bytes()
    with pytest.raises(ModelError, match="not empty"):
        average_checkpoints([tiny_checkpoint, other], other)
    assert (other / "model.safetensors").read_bytes() == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("someone's notes")
    with pytest.raises(ModelError, match="is a file"):
        average_checkpoints([tiny_checkpoint, other], a_file)
    assert a_file.read_text() == "someone's notes"


def test_checkpoints_that_differ_only_in_training_dropout_average(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A recovered checkpoint keeps dropout 0.1, a trained one the run's 0.0."""
    trained = _shifted(tiny_checkpoint, tmp_path / "trained", 0.5)
    config = json.loads((trained / "config.json").read_text())
    config["attention_probs_dropout_prob"] = 0.0
    (trained / "config.json").write_text(json.dumps(config, indent=2))
    average_checkpoints([tiny_checkpoint, trained], tmp_path / "soup")
    first = _weights(tiny_checkpoint)
    name = next(n for n, t in first.items() if np.issubdtype(t.dtype, np.floating))
    assert np.allclose(_weights(tmp_path / "soup")[name], first[name] + 0.25, atol=1e-6)
