"""Training runs resume exactly where they stopped."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

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


def test_batches_draw_flipped_pairs_and_both_labels(data_dir: Path, tiny_checkpoint: Path) -> None:
    from worker.model.train import area_of, training_data, training_order

    config = _config(Path("unused"), data_dir, tiny_checkpoint, steps=1)
    data = training_data(config)
    assert any(data.flipped)
    assert set(data.policy_texts) >= {pair.policy_id for pair in data.pairs}
    order = training_order(data, config, 2000)
    assert order == training_order(data, config, 2000)  # seeded
    drawn = [data.pairs[i] for i in order]
    hate = [pair for pair in drawn if area_of(pair.policy_id) == "hate"]
    assert {pair.label for pair in hate} == {0, 1}
    flips = sum(data.flipped[i] for i in order)
    assert 0 < flips < len(order) // 2
    for share_asked in (config.flip_share, 0.3):
        drawn_again = training_order(data, replace(config, flip_share=share_asked), 20000)
        in_hate = [i for i in drawn_again if area_of(data.pairs[i].policy_id) == "hate"]
        share = sum(data.flipped[i] for i in in_hate) / len(in_hate)
        assert abs(share - share_asked) < 0.03  # of the area's draws, not diluted by data sets


@pytest.mark.parametrize(
    "impossible",
    [{"flip_share": 1.5}, {"flip_share": -0.1}, {"steps": 0}, {"batch_size": 0}],
)
def test_an_impossible_training_setting_is_refused_before_any_work(
    tmp_path: Path, impossible: dict[str, Any]
) -> None:
    from worker.errors import ModelError

    valid = TrainConfig(out=str(tmp_path), policies=("hate",))
    with pytest.raises(ModelError, match="must be"):
        replace(valid, **impossible)
    assert not any(tmp_path.iterdir())


def test_each_data_set_is_drawn_with_both_labels_evenly(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.model.train import area_of, training_data, training_order

    config = _config(Path("unused"), data_dir, tiny_checkpoint, steps=1)
    data = training_data(config)
    drawn = [i for i in training_order(data, config, 20000) if not data.flipped[i]]
    rates: dict[str, Counter[int]] = {}
    for index in drawn:
        pair = data.pairs[index]
        if area_of(pair.policy_id) == "hate":
            rates.setdefault(pair.source, Counter())[pair.label] += 1
    two_sided = {source: c for source, c in rates.items() if len(c) == 2 and sum(c.values()) > 200}
    assert {"hatecheck", "davidson"} <= set(two_sided)
    for source, counts in two_sided.items():
        assert 0.4 < counts[1] / sum(counts.values()) < 0.6, source


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


def test_length_bucketing_regroups_pairs_without_losing_or_repeating_any() -> None:
    from worker.model.train import BUCKET_BATCHES, length_bucketed

    rng = random.Random(3)
    lengths = [rng.randint(50, 2000) for _ in range(1000)]
    order = [rng.randrange(1000) for _ in range(16 * BUCKET_BATCHES * 5 + 7)]
    bucketed = length_bucketed(order, lengths, 16, seed=1)
    assert sorted(bucketed) == sorted(order)
    assert bucketed == length_bucketed(order, lengths, 16, seed=1)

    def padded(sequence: list[int]) -> int:
        batches = [sequence[i : i + 16] for i in range(0, len(sequence), 16)]
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)

    assert padded(bucketed) < 0.8 * padded(order)
    block = 16 * BUCKET_BATCHES
    assert sorted(bucketed[:block]) == sorted(order[:block])  # pairs stay in their block


def test_teacher_scores_replace_or_blend_with_gold_labels(
    tmp_path: Path, data_dir: Path, tiny_checkpoint: Path
) -> None:
    from dataclasses import replace

    from worker.model.train import _target, pair_key, training_data, write_pairs

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
