"""Training runs resume exactly where they stopped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from worker.model.train import train
from worker.model.train_config import TrainConfig


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


@pytest.mark.parametrize("twin_weight", [0.0, 1.0])
def test_a_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path,
    data_dir: Path,
    tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    twin_weight: float,
) -> None:
    import torch

    def config(out: Path) -> TrainConfig:
        return replace(_config(out, data_dir, tiny_checkpoint, steps=4), twin_weight=twin_weight)

    straight = train(config(tmp_path / "straight"))
    train(config(tmp_path / "resumed"), stop_at=2)
    resumed = train(config(tmp_path / "resumed"))
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)  # type: ignore[arg-type]
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    starts = [event for event in events if event["event"] == "start"]
    assert [event["step"] for event in starts] == [0, 0, 2]
    assert (resumed / "tokenizer.json").is_file()
    saved = json.loads((resumed / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.0  # the fused attention path


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


def test_the_twin_ranking_loss_pushes_only_the_twins_apart() -> None:
    import torch

    from worker.model.dataset import Pair
    from worker.model.sampling import twin_positions
    from worker.model.train import twin_loss

    chosen = [
        Pair("hate/001", "c1", "text", 1, "hatecheck"),
        Pair("hate/002", "c1", "text", 0, "hatecheck"),
        Pair("hate/003", "c2", "other", 0, "hatecheck"),  # a plain draw, no twin beside it
        Pair("hate/004", "c3", "third", 1, "hatecheck"),
    ]
    twins = twin_positions(chosen, [True, False, True, False])
    assert twins == [(0, 1)]
    wrong = torch.tensor([-2.0, 2.0, 0.0, 0.0], requires_grad=True)
    loss = twin_loss(chosen, [0, 1, 2, 3], wrong, twins)
    loss.backward()
    assert wrong.grad is not None
    assert wrong.grad[0] < 0 < wrong.grad[1]  # descent raises the flip, lowers the twin
    assert wrong.grad[2] == 0
    assert wrong.grad[3] == 0
    right = torch.tensor([2.0, -2.0, 0.0, 0.0])
    assert twin_loss(chosen, [0, 1, 2, 3], right, twins) < 0.05 < loss
    half = twin_loss(chosen, [0, 2, 3], right[[0, 2, 3]], twins)
    assert half.item() == 0.0  # a twin split between passes adds nothing
    wide = twin_loss(chosen, [0, 1, 2, 3], right, twins, margin=6.0)
    assert wide > 1.0  # a gap of 4 falls short of a margin of 6
    assert twin_loss(chosen, [0, 1, 2, 3], right * 3, twins, margin=6.0) < 0.01


def test_a_batch_of_long_texts_is_split_into_passes_of_bounded_windows(
    base_tokenizer_file: Path,
) -> None:
    from worker.model.tokenize import PairTokenizer
    from worker.model.train import row_passes

    tokenizer = PairTokenizer(
        base_tokenizer_file, max_length=64, max_policy_tokens=32, window_stride=8
    )
    policy = "Flag insults."
    batch = [(policy, "word " * length) for length in (5, 300, 40, 2, 120, 7, 600)]
    rows = tokenizer.rows(batch)
    passes = row_passes(rows, max_rows=6)
    groups = [sorted({row.pair_index for row in part}) for part in passes]
    assert [i for group in groups for i in group] == list(range(len(batch)))
    assert [row for part in passes for row in part] == rows
    for group, part in zip(groups, passes, strict=True):
        assert len(part) <= 6 or len(group) == 1  # one pair's windows are never split
    assert any(len(part) > 6 for part in passes)  # 600 words
    assert row_passes(rows, max_rows=1000) == [rows]


def test_teacher_scores_replace_or_blend_with_gold_labels(
    tmp_path: Path, data_dir: Path, tiny_checkpoint: Path
) -> None:
    from dataclasses import replace

    from worker.model.train import _target
    from worker.model.training_data import pair_key, training_data, write_pairs

    config = _config(tmp_path / "run", data_dir, tiny_checkpoint, steps=1)
    data = training_data(config)
    pairs_file = tmp_path / "pairs.jsonl"
    assert write_pairs(data, pairs_file) == len(data.pairs)
    first = json.loads(pairs_file.read_text().splitlines()[0])
    assert set(first) == {"id", "policy", "text", "label"}
    pair = data.pairs[0]
    soft = {pair_key(pair): 0.8}
    assert _target(pair, soft, config) == pytest.approx(0.8)
    half = replace(config, soft_label_weight=0.5)
    assert _target(pair, soft, half) == pytest.approx(0.5 * 0.8 + 0.5 * pair.label)
    assert _target(data.pairs[1], soft, config) == float(data.pairs[1].label)


def test_malformed_teacher_scores_are_a_clear_error(
    tmp_path: Path, data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.errors import CopeError

    scores = tmp_path / "scores.jsonl"
    scores.write_text('{"id": "a", "score": 1.5}\n')
    config = replace(
        _config(tmp_path / "run", data_dir, tiny_checkpoint, steps=1), soft_labels=str(scores)
    )
    with pytest.raises(CopeError, match=r"scores\.jsonl:1"):
        train(config)
