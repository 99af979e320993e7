"""Draw orders: which pairs training sees, how often, and beside which partner."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from worker.model.train_config import TrainConfig


def _sampling_config(data: Path, base: Path, **overrides: Any) -> TrainConfig:
    """A config for tests that only build data and draw orders, never train."""
    settings: dict[str, Any] = {
        "out": "unused",
        "policies": ("hate", "sexual", "offensive-language"),
        "data_dir": str(data),
        "base": str(base),
        "steps": 1,
        "batch_size": 4,
        "max_length": 512,
    }
    return TrainConfig(**(settings | overrides))


def test_batches_draw_flipped_pairs_and_both_labels(data_dir: Path, tiny_checkpoint: Path) -> None:
    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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


def test_a_draw_seed_draws_afresh_from_the_same_pairs_and_held_out_policies(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.sampling import batch_schedule
    from worker.model.training_data import training_data

    config = _sampling_config(data_dir, tiny_checkpoint, twin_weight=1.0)
    data = training_data(config)
    assert batch_schedule(data, replace(config, draw_seed=config.seed), 400) == batch_schedule(
        data, config, 400
    )  # by default the draws follow the run's seed
    fresh = replace(config, draw_seed=config.seed + 1)
    again = training_data(fresh)
    assert again.pairs == data.pairs  # same pairs, so the same policies are held out
    assert again.policy_texts == data.policy_texts
    assert batch_schedule(again, fresh, 400) != batch_schedule(data, config, 400)


def test_flips_drawn_by_edit_weigh_every_edit_of_an_area_alike(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.model.harm_areas import HARM_AREAS
    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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

    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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


def test_an_unedited_twin_is_the_flips_own_policy_without_the_edit(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.harm_areas import HARM_AREAS
    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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
    from worker.model.sampling import length_bucketed, training_order, twin_positions
    from worker.model.training_data import area_of, training_data

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
    from worker.model.sampling import training_order, twin_positions
    from worker.model.training_data import training_data

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


def test_each_data_set_is_drawn_with_both_labels_evenly(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from collections import Counter

    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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
    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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
    from worker.model.sampling import training_order
    from worker.model.training_data import training_data

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
    from worker.model.sampling import training_order
    from worker.model.training_data import area_of, training_data

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
    from worker.model.sampling import training_order
    from worker.model.train import parse_draw_weights, train
    from worker.model.training_data import training_data

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


def test_length_bucketing_regroups_pairs_without_losing_or_repeating_any() -> None:
    from worker.model.sampling import BUCKET_BATCHES, length_bucketed

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


def test_draw_counts_add_up_to_the_schedule_and_show_a_data_sets_weight(
    data_dir: Path, tiny_checkpoint: Path
) -> None:
    from worker.model.sampling import batch_schedule, draw_counts
    from worker.model.training_data import training_data

    config = _sampling_config(data_dir, tiny_checkpoint, twin_weight=1.0, flip_share=0.3)
    data = training_data(config)
    order = batch_schedule(data, config, 4000)
    counts = draw_counts(data, order)
    assert counts["draws"] == len(order) == sum(a["draws"] for a in counts["by_area"].values())
    for area in counts["by_area"].values():
        assert area["draws"] == sum(sum(k.values()) for k in area["by_source"].values())
    flipped = sum(
        kinds["flipped"] for a in counts["by_area"].values() for kinds in a["by_source"].values()
    )
    assert counts["flipped"] == flipped == sum(counts["by_edit"].values()) > 0
    assert all(name.startswith("hatecheck:") for name in counts["by_trait"] if "_nh" in name)
    for kind in ("0", "1", "flipped"):  # traits count by label as data sets do
        assert counts["by_trait"]["source:hatecheck"][kind] == sum(
            a["by_source"].get("hatecheck", {}).get(kind, 0) for a in counts["by_area"].values()
        )
    assert counts["by_trait"]["source:hatecheck"]["flipped"] > 0

    def hatecheck_under_hate(weight: float) -> int:
        weighted = replace(config, draw_weights=(("hate:hatecheck", weight),))
        sources = draw_counts(data, batch_schedule(data, weighted, 4000))["by_area"]["hate"]
        return int(sources["by_source"]["hatecheck"]["0"] + sources["by_source"]["hatecheck"]["1"])

    assert hatecheck_under_hate(4.0) > hatecheck_under_hate(1.0) > hatecheck_under_hate(0.25)


def test_describe_draws_prints_the_schedule_and_makes_no_run_folder(
    data_dir: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from worker.errors import ModelError
    from worker.model.train import main

    run = tmp_path / "run"
    options = ["--steps", "5", "--batch-size", "4", "--data-dir", str(data_dir)]
    options += ["--base", str(tiny_checkpoint), "--policies", "hate,sexual,offensive-language"]
    main([str(run), "--describe-draws", *options])
    described = json.loads(capsys.readouterr().out)
    assert described["draws"] == 20
    assert sum(area["draws"] for area in described["by_area"].values()) == 20
    assert not run.exists()
    with pytest.raises(ModelError, match="hat"):
        main([str(run), "--describe-draws", "--draw-weight", "hat=2", *options])
    assert not run.exists()
