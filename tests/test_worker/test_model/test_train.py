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


@pytest.mark.parametrize(
    ("twin_weight", "kept_anchor_weight"), [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
)
def test_a_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path,
    data_dir: Path,
    tiny_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
    twin_weight: float,
    kept_anchor_weight: float,
) -> None:
    import torch

    def config(out: Path) -> TrainConfig:
        return replace(
            _config(out, data_dir, tiny_checkpoint, steps=4),
            twin_weight=twin_weight,
            kept_anchor_weight=kept_anchor_weight,
        )

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


def test_the_kept_anchor_changes_a_step_that_holds_a_pair_an_edit_left_alone(
    tmp_path: Path, data_dir: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from worker.model.pair_losses import kept_anchors
    from worker.model.sampling import batch_schedule
    from worker.model.training_data import training_data

    plain = replace(_config(tmp_path / "plain", data_dir, tiny_checkpoint, steps=4), batch_size=16)
    anchored = replace(plain, out=str(tmp_path / "anchored"), kept_anchor_weight=5.0)
    data = training_data(plain)
    assert data.unedited  # edited training policies have unedited twins ...
    assert all(twin in data.policy_texts for twin in data.unedited.values())  # ... with texts
    batch = batch_schedule(data, plain, plain.batch_size)
    chosen = [data.pairs[i] for i in batch]
    assert kept_anchors(chosen, [data.flipped[i] for i in batch], data.unedited)
    a, b = _weights(train(plain)), _weights(train(anchored))
    assert any(not torch.equal(a[name], b[name]) for name in a)  # type: ignore[arg-type]
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    plain_step, anchored_step = [e for e in events if e["event"] == "progress"]
    assert plain_step["anchors"] == 0.0 < anchored_step["anchors"]  # each term is logged
    for step in (plain_step, anchored_step):
        terms = step["labels"] + step["twins"] + step["anchors"]
        assert step["loss"] == pytest.approx(terms, abs=1e-3)
