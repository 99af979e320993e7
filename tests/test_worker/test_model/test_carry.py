"""Packed checkpoints travel within the device tool's limits and come back intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worker.errors import ModelError
from worker.model.carry import main, pack, unpack


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_a_packed_checkpoint_unpacks_to_nearly_the_same_weights(
    tiny_checkpoint: Path, tmp_path: Path, precision: str
) -> None:
    from worker.model.export import load_torch_classifier

    written = pack(tiny_checkpoint, tmp_path / "packed", precision)  # type: ignore[arg-type]
    unpack(tmp_path / "packed", tmp_path / "restored")
    before, after = _weights(tiny_checkpoint), _weights(tmp_path / "restored")
    assert set(before) == set(after)
    for name, tensor in before.items():
        assert after[name].dtype == np.float32
        row_max = np.abs(tensor).max(axis=-1, keepdims=True) if tensor.ndim == 2 else 1.0
        tolerance = row_max / 127 if precision == "int8" else np.abs(tensor) / 1000 + 1e-7
        assert np.all(np.abs(after[name] - tensor) <= tolerance + 1e-7), name
    full = sum(t.size * 4 for t in before.values())
    assert written < full / (1.9 if precision == "fp16" else 3.0)
    assert (tmp_path / "restored" / "tokenizer.json").is_file()
    load_torch_classifier(tmp_path / "restored")


def test_chunks_respect_the_size_limit_and_a_damaged_chunk_is_refused(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    packed = tmp_path / "packed"
    pack(tiny_checkpoint, packed, "fp16", chunk_mib=1)
    index = json.loads((packed / "carry.json").read_text())
    assert len(index["chunks"]) > 1
    assert all((packed / c["file"]).stat().st_size <= 1 << 20 for c in index["chunks"])
    damaged = packed / index["chunks"][1]["file"]
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelError, match="does not match its hash"):
        unpack(packed, tmp_path / "restored")
    damaged.unlink()
    with pytest.raises(ModelError, match=r"missing weights\.01\.bin"):
        unpack(packed, tmp_path / "restored")


def test_bad_arguments_are_clear_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no model\.safetensors"):
        main(["pack", str(tmp_path), str(tmp_path / "out"), "fp16"])
    with pytest.raises(SystemExit, match="unknown precision 'fp8'"):
        main(["pack", str(tiny_checkpoint), str(tmp_path / "out"), "fp8"])
    with pytest.raises(SystemExit, match="cannot unpack"):
        main(["unpack", str(tmp_path / "nothing"), str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="pack CHECKPOINT"):
        main(["shrink"])
