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


def _sampling_config(data: Path, base: Path, **overrides: Any) -> TrainConfig:
    """A config for the tests that only build data and draw orders, never train."""
    return replace(_config(Path("unused"), data, base, steps=1), **overrides)


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


def test_batches_draw_flipped_pairs_and_both_labels(data_dir: Path, tiny_checkpoint: Path) -> None:
    from worker.model.train import area_of, training_data, training_order

    config = _sampling_config(data_dir, tiny_checkpoint)
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


def test_flips_drawn_by_edit_weigh_every_edit_of_an_area_alike(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.model.harm_areas import HARM_AREAS
    from worker.model.train import area_of, training_data, training_order

    config = _sampling_config(
        data_dir,
        tiny_checkpoint,
        flip_share=0.5,
        flip_balance="edit",
    )
    data = training_data(config)
    for pair, edit in zip(data.pairs, data.flipped_by, strict=True):
        if edit:
            assert edit in {e.key for e in HARM_AREAS[area_of(pair.policy_id)].edits}
    hate_edits = {edit for edit in data.flipped_by if edit.startswith("hate")}
    assert {edit[len("hate")] for edit in hate_edits} == {"+", "-"}  # inclusions and exclusions
    drawn = Counter(data.flipped_by[i] for i in training_order(data, config, 20000))
    shares = [drawn[edit] for edit in hate_edits]
    assert min(shares) > 0.8 * max(shares)


def test_pooled_flips_are_a_share_of_all_draws_spread_evenly_over_every_edit(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.model.train import area_of, training_data, training_order

    config = _sampling_config(data_dir, tiny_checkpoint, flip_share=0.4, flip_balance="pooled")
    data = training_data(config)
    edits = {
        (area_of(p.policy_id), e) for p, e in zip(data.pairs, data.flipped_by, strict=True) if e
    }
    assert len({area for area, _ in edits}) > 1  # the pool spans areas
    order = training_order(data, config, 20000)
    drawn = Counter((area_of(data.pairs[i].policy_id), data.flipped_by[i]) for i in order)
    shares = [drawn[edit] for edit in edits]
    assert min(shares) > 0.8 * max(shares)
    assert abs(sum(shares) / len(order) - config.flip_share) < 0.03
    by_area = replace(config, flip_balance="edit")
    assert sum(data.flipped[i] for i in training_order(data, by_area, 20000)) < sum(shares) / 2


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


def test_an_unedited_twin_is_the_flips_own_policy_without_the_edit(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.harm_areas import HARM_AREAS
    from worker.model.train import area_of, training_data, training_order

    config = _sampling_config(
        data_dir,
        tiny_checkpoint,
        twin_weight=1.0,
        flip_share=0.5,
        twin_policy="unedited",
    )
    data = training_data(config)
    plain = training_data(replace(config, twin_policy="area"))
    assert data.pairs[: len(plain.pairs)] == plain.pairs  # twins are added, nothing is moved
    added = data.pairs[len(plain.pairs) :]
    assert len(added) == len({(p.policy_id, p.content_id) for p in added}) > 0
    order = training_order(data, config, 3001)
    units = [(order[i], order[i + 1]) for i in range(0, 3000, 2) if data.flipped[order[i]]]
    assert units
    for flip_at, twin_at in units:
        flip, twin = data.pairs[flip_at], data.pairs[twin_at]
        assert twin.policy_id == f"{flip.policy_id}-unedited"
        assert twin.content_id == flip.content_id
        assert twin.label == 1 - flip.label
        edit = next(
            e
            for e in HARM_AREAS[area_of(flip.policy_id)].edits
            if e.key == data.flipped_by[flip_at]
        )
        edited = data.policy_texts[flip.policy_id].splitlines()
        unedited = data.policy_texts[twin.policy_id].splitlines()
        assert set(unedited) <= set(edited)  # the same wording, less the edit
        removed = set(edited) - set(unedited)
        assert any(
            line.startswith(f"- **{name}**") for name in edit.clause.names for line in removed
        )


def test_each_flip_is_drawn_beside_its_twin_and_bucketing_keeps_them_in_one_batch(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.train import (
        area_of,
        length_bucketed,
        training_data,
        training_order,
        twin_positions,
    )

    config = _sampling_config(data_dir, tiny_checkpoint, twin_weight=1.0, flip_share=0.5)
    data = training_data(config)
    order = training_order(data, config, 4001)
    assert len(order) == 4001
    assert order == training_order(data, config, 4001)  # seeded
    flips = [position for position, i in enumerate(order) if data.flipped[i]]
    assert flips
    for position in flips[:-1]:  # the last unit may be cut by the count
        assert position % 2 == 0
        flip, twin = data.pairs[order[position]], data.pairs[order[position + 1]]
        assert not data.flipped[order[position + 1]]
        assert (twin.content_id, area_of(twin.policy_id)) == (
            flip.content_id,
            area_of(flip.policy_id),
        )
        assert twin.label == 1 - flip.label
    lengths = [len(data.policy_texts[p.policy_id]) + len(p.text) for p in data.pairs]
    bucketed = length_bucketed(order[:4000], lengths, 8, seed=2, unit=2)
    assert sorted(bucketed) == sorted(order[:4000])
    found = 0
    for start in range(0, len(bucketed), 8):
        batch = bucketed[start : start + 8]
        twins = twin_positions([data.pairs[i] for i in batch], [data.flipped[i] for i in batch])
        found += len(twins)
        assert all(data.flipped[batch[first]] for first, _ in twins)
    assert found == sum(data.flipped[i] for i in order[:4000])  # no twin split by a batch edge


def test_a_kept_partner_is_a_text_of_the_other_label_under_the_flips_own_policy(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.train import training_data, training_order, twin_positions

    cases = data_dir / "hatecheck" / "test_suite_cases.csv"
    rows = [f"{i},derog_neg_attrib_h,{i},[group] are all liars {i}.,hateful\n" for i in (4, 6, 7)]
    cases.write_text(cases.read_text() + "".join(rows))
    config = _sampling_config(
        data_dir,
        tiny_checkpoint,
        flip_share=0.5,
        flip_balance="pooled",
        twin_weight=1.0,
        twin_policy="unedited",
        variants_per_area=12,
        variant_pairs_per_text=12,
    )
    data = training_data(config)

    def units(share: float) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        order = training_order(data, replace(config, kept_partner_share=share), 4000)
        chosen = [data.pairs[i] for i in order]
        found = twin_positions(chosen, [data.flipped[i] for i in order])
        pairs = [(order[a], order[b]) for a, b in found]
        same_policy = [
            (a, b) for a, b in pairs if data.pairs[a].policy_id == data.pairs[b].policy_id
        ]
        return pairs, same_policy

    _, none = units(0.0)
    assert not none  # without the option every partner is a twin
    pairs, kept = units(1.0)
    assert kept
    for flip, partner in kept:
        a, b = data.pairs[flip], data.pairs[partner]
        assert data.flipped[flip]
        assert not data.flipped[partner]
        assert a.content_id != b.content_id
        assert a.label != b.label
        assert a.source == b.source
    pairs, kept = units(0.5)
    assert 0 < len(kept) < len(pairs)  # the rest keep their twins


def test_the_twin_ranking_loss_pushes_only_the_twins_apart() -> None:
    import torch

    from worker.model.dataset import Pair
    from worker.model.train import twin_loss, twin_positions

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


def test_each_data_set_is_drawn_with_both_labels_evenly(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.model.train import area_of, training_data, training_order

    config = _sampling_config(data_dir, tiny_checkpoint)
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


def test_draw_weights_raise_an_areas_and_a_data_sets_share_of_the_labelled_draws(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.train import area_of, training_data, training_order

    config = _sampling_config(data_dir, tiny_checkpoint, flip_share=0.2, flip_balance="pooled")
    data = training_data(config)

    def shares(weights: tuple[tuple[str, float], ...]) -> tuple[float, float, float]:
        order = training_order(data, replace(config, draw_weights=weights), 20000)
        plain = [data.pairs[i] for i in order if not data.flipped[i]]
        hate = [p for p in plain if area_of(p.policy_id) == "hate"]
        hatecheck = sum(p.source == "hatecheck" for p in hate)
        flips = sum(data.flipped[i] for i in order) / len(order)
        return len(hate) / len(plain), hatecheck / len(hate), flips

    hate, hatecheck, flips = shares(())
    more_hate, same_mix, same_flips = shares((("hate", 3.0),))
    assert more_hate > 2 * hate
    assert abs(same_mix - hatecheck) < 0.05
    _, more_hatecheck, _ = shares((("hate:hatecheck", 4.0),))
    assert more_hatecheck > hatecheck + 0.15
    assert abs(same_flips - flips) < 0.02  # pooled flips keep their own share


def test_an_edits_draw_weight_shares_the_pooled_flips_out_unevenly(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.errors import ModelError
    from worker.model.train import training_data, training_order

    config = _sampling_config(data_dir, tiny_checkpoint, flip_share=0.4, flip_balance="pooled")
    data = training_data(config)
    plain = Counter(data.flipped_by[i] for i in training_order(data, config, 20000))
    heavy = replace(config, draw_weights=(("hate-threats", 3.0),))
    weighted = Counter(data.flipped_by[i] for i in training_order(data, heavy, 20000))
    others = [edit for edit in plain if edit and edit != "hate-threats"]
    assert others
    ratio = weighted["hate-threats"] / (sum(weighted[e] for e in others) / len(others))
    assert 2.5 < ratio < 3.5
    assert abs(weighted[""] - plain[""]) < 0.03 * 20000  # the flips' share is unchanged
    by_source = replace(heavy, flip_balance="source")  # flips not drawn by edit: it names nothing
    with pytest.raises(ModelError, match="hate-threats"):
        training_order(data, by_source, 10)


def test_a_traits_draw_weight_repeats_its_texts_within_their_data_sets_draws(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.errors import ModelError
    from worker.model.train import area_of, training_data, training_order

    cases = data_dir / "hatecheck" / "test_suite_cases.csv"
    cases.write_text(cases.read_text() + "3,ident_pos_nh,4,I love [group].,non-hateful\n")
    config = _sampling_config(data_dir, tiny_checkpoint)
    data = training_data(config)

    def drawn(weights: tuple[tuple[str, float], ...]) -> tuple[Counter[str], float]:
        order = training_order(data, replace(config, draw_weights=weights), 20000)
        hate = [
            data.pairs[i]
            for i in order
            if not data.flipped[i] and area_of(data.pairs[i].policy_id) == "hate"
        ]
        negatives = Counter(p.content_id for p in hate if p.source == "hatecheck" and not p.label)
        return negatives, sum(p.source == "hatecheck" for p in hate) / len(hate)

    plain, share = drawn(())
    boosted, same_share = drawn((("hate:hatecheck:ident_pos_nh", 4.0),))
    before = plain["hatecheck-4"] / plain["hatecheck-3"]  # a positive mention, a quote
    after = boosted["hatecheck-4"] / boosted["hatecheck-3"]
    assert 3.0 < after / before < 5.0
    assert abs(share - same_share) < 0.03  # HateCheck's share of hate draws is unchanged
    for typo in ("hate:hatecheck:ident_poss_nh", "hate:davidson:ident_pos_nh"):
        with pytest.raises(ModelError, match=typo):
            training_order(data, replace(config, draw_weights=((typo, 2.0),)), 10)


def test_a_draw_weight_naming_nothing_in_the_data_is_a_clear_error(
    data_dir: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from worker.errors import ModelError
    from worker.model.train import parse_draw_weights, training_data, training_order

    config = _sampling_config(data_dir, tiny_checkpoint)
    data = training_data(config)
    for typo in ("hat", "hate:hatechek", "hate:hate/probe"):
        with pytest.raises(ModelError, match=typo):
            training_order(data, replace(config, draw_weights=((typo, 2.0),)), 10)
    run = replace(config, out=str(tmp_path / "run"), draw_weights=(("hat", 2.0),))
    with pytest.raises(ModelError, match="hat"):
        train(run)
    assert not (tmp_path / "run").exists()  # refused before a run folder is made
    assert parse_draw_weights(["hate=2", " hate:hatecheck = 0.5"]) == (
        ("hate", 2.0),
        ("hate:hatecheck", 0.5),
    )
    for malformed in ("hate", "hate=", "=2", "hate=lots"):
        with pytest.raises(ModelError, match="AREA"):
            parse_draw_weights([malformed])


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
