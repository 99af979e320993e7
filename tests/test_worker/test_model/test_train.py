"""Training runs resume exactly where they stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.model.train import TrainConfig, train


def _config(out: Path, data: Path, base: Path, steps: int) -> TrainConfig:
    return TrainConfig(
        out=str(out),
        policies=("hate", "sexual", "offensive-language"),
        data_dir=str(data),
        base=str(base),
        steps=steps,
        batch_size=4,
        warmup_steps=1,
        checkpoint_every=1,
        max_length=512,
    )


def _weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return dict(load_file(str(folder / "model.safetensors")))


def test_a_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path,
    data_dir: Path,
    tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import torch

    straight = train(_config(tmp_path / "straight", data_dir, tiny_checkpoint, steps=4))
    train(_config(tmp_path / "resumed", data_dir, tiny_checkpoint, steps=4), stop_at=2)
    resumed = train(_config(tmp_path / "resumed", data_dir, tiny_checkpoint, steps=4))
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)  # type: ignore[arg-type]
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    starts = [event for event in events if event["event"] == "start"]
    assert [event["step"] for event in starts] == [0, 0, 2]
    assert (resumed / "tokenizer.json").is_file()


def test_a_trained_checkpoint_exports(
    tmp_path: Path,
    data_dir: Path,
    tiny_checkpoint: Path,
) -> None:
    from worker.model.export import export_model

    checkpoint = train(_config(tmp_path / "run", data_dir, tiny_checkpoint, steps=1))
    result = export_model(
        checkpoint,
        tmp_path / "model",
        name="t",
        version="1",
        max_length=512,
        max_policy_tokens=400,
        threshold=0.5,
        variants=("int8",),
    )
    assert set(result.manifest.variants) == {"int8"}
