"""Generated policies: valid, distinct, reproducible, and labelled as their edits say."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from policy_registry.documents import parse_policy
from worker.errors import ModelError
from worker.model.dataset import LabelledText, load_all, split_of
from worker.model.harm_areas import HARM_AREAS, INTERPRETATION_LINES
from worker.model.policy_variants import (
    PolicyVariant,
    edit_probes,
    generate_variants,
    variant_pairs,
)


@pytest.fixture(scope="module")
def variants() -> list[PolicyVariant]:
    return generate_variants(per_area=30, seed=5)


RECLAIMED = LabelledText(
    "hatecheck",
    "hc-reclaimed",
    "we are proud",
    {"hate": 0},
    frozenset({"source:hatecheck", "hatecheck:slur_reclaimed_nh"}),
)


def _hatecheck(functionality: str, hateful: int) -> LabelledText:
    return LabelledText(
        "hatecheck",
        f"hc-{functionality}",
        "text",
        {"hate": hateful},
        frozenset({"source:hatecheck", f"hatecheck:{functionality}"}),
    )


def _variant(*edit_keys: str) -> PolicyVariant:
    edits = tuple(edit for edit in HARM_AREAS["hate"].edits if edit.key in edit_keys)
    return PolicyVariant("hate/x", "hate", "text", edits, held_out=True)


def test_hundreds_of_distinct_valid_policies_across_every_area(
    variants: list[PolicyVariant],
) -> None:
    assert len(variants) == 30 * len(HARM_AREAS)
    assert len({variant.text for variant in variants}) == len(variants)
    for variant in variants:
        document = parse_policy(variant.text)
        assert document.label_code
    per_area = Counter(variant.area for variant in variants)
    assert set(per_area.values()) == {30}


def test_generation_is_reproducible_and_the_seed_matters(variants: list[PolicyVariant]) -> None:
    again = generate_variants(per_area=30, seed=5)
    assert [v.text for v in again] == [v.text for v in variants]
    other = generate_variants(per_area=30, seed=6)
    assert [v.text for v in other] != [v.text for v in variants]


def test_wordings_and_whole_areas_are_held_out(variants: list[PolicyVariant]) -> None:
    privacy = [variant for variant in variants if variant.area == "privacy"]
    assert privacy
    assert all(variant.held_out for variant in privacy)
    for area in ("hate", "violence", "sexual"):
        held = [v.held_out for v in variants if v.area == area]
        assert 0 < sum(held) < len(held)


def test_a_budget_check_drops_policies_that_do_not_fit() -> None:
    short = generate_variants(per_area=5, seed=1, fits=lambda text: len(text) < 1400)
    assert all(len(variant.text) < 1400 for variant in short)


def test_an_include_edit_flips_only_the_cases_it_names() -> None:
    reclaimed = _variant("hate+reclaimed")
    assert reclaimed.label_for(_hatecheck("slur_reclaimed_nh", 0)) == 1
    assert reclaimed.label_for(_hatecheck("slur_homonym_nh", 0)) is None
    assert reclaimed.label_for(_hatecheck("ident_neutral_nh", 0)) == 0
    assert reclaimed.label_for(_hatecheck("slur_h", 1)) == 1


def test_an_exclude_edit_only_lowers_positives() -> None:
    no_threats = _variant("hate-threats")
    assert no_threats.label_for(_hatecheck("threat_dir_h", 1)) == 0
    assert no_threats.label_for(_hatecheck("derog_impl_h", 1)) == 1
    assert no_threats.label_for(_hatecheck("counter_quote_nh", 0)) == 0


def test_exclusions_drawn_from_hatecheck_and_openai_subcategories_lower_only_their_cases() -> None:
    no_dehumanization = _variant("hate-dehumanization")
    assert no_dehumanization.label_for(_hatecheck("derog_dehum_h", 1)) == 0
    assert no_dehumanization.label_for(_hatecheck("derog_neg_emote_h", 1)) == 1
    assert _variant("hate-feelings").label_for(_hatecheck("derog_neg_emote_h", 1)) == 0
    minors = next(e for e in HARM_AREAS["sexual"].edits if e.key == "sexual-minors")
    sexual = PolicyVariant("sexual/x", "sexual", "text", (minors,), held_out=True)
    involving_minors = LabelledText(
        "openai", "o1", "t", {"sexual": 1}, frozenset({"source:openai", "openai:S", "openai:S3"})
    )
    adult = LabelledText("openai", "o2", "t", {"sexual": 1}, frozenset({"source:openai"}))
    unsure = LabelledText("pyrit", "p1", "t", {"sexual": 1}, frozenset({"source:pyrit"}))
    assert sexual.label_for(involving_minors) == 0
    assert sexual.label_for(adult) == 1
    assert sexual.label_for(unsure) is None


def test_an_edit_that_replaces_an_include_drops_it_from_the_text() -> None:
    for variant in generate_variants(per_area=60, seed=2):
        if any(edit.key == "hate-threats" for edit in variant.edits):
            assert "Calls for harm" not in variant.text
            assert "**Threats**" not in variant.text


def test_the_unedited_twin_keeps_the_wording_and_drops_only_the_edits() -> None:
    edited = [v for v in generate_variants(per_area=40, seed=4) if v.edits]
    assert {edit.section for v in edited for edit in v.edits} == {"includes", "excludes"}
    for variant in edited:
        twin = variant.unedited()
        assert not twin.edits
        assert twin.area == variant.area
        assert twin.text.split("#### Includes")[0] == variant.text.split("#### Includes")[0]
        parse_policy(twin.text)
        edit_bullets = {
            f"- **{name}**: {wording}"
            for edit in variant.edits
            for name in edit.clause.names
            for wording in edit.clause.wordings
        }
        bullets = [line for line in variant.text.splitlines() if line.startswith("- **")]
        twin_lines = set(twin.text.splitlines())
        assert any(line in edit_bullets for line in bullets)
        assert not twin_lines & edit_bullets
        assert {line for line in bullets if line not in edit_bullets} <= twin_lines
        assert len(twin.text) < len(variant.text)  # fits wherever the policy does
        assert twin.text.endswith("\n")
        assert not twin.text.rstrip().endswith("#### Excludes")
    plain = next(v for v in generate_variants(per_area=5, seed=4) if not v.edits)
    assert plain.unedited() is plain


def test_every_edit_of_an_area_is_carried_about_equally_often() -> None:
    carried = Counter(
        edit.key for variant in generate_variants(per_area=300, seed=3) for edit in variant.edits
    )
    hate = [carried[edit.key] for edit in HARM_AREAS["hate"].edits]
    assert min(hate) > 0.6 * max(hate)


def test_an_edit_leaves_no_sentence_that_says_the_opposite() -> None:
    contradicting = [e for spec in HARM_AREAS.values() for e in spec.edits if e.contradicts]
    assert {e.key for e in contradicting} >= {"hate+quotes", "hate-questions", "offensive+hate"}
    everywhere = " ".join(
        [
            *INTERPRETATION_LINES,
            *(line for spec in HARM_AREAS.values() for line in spec.overviews),
            *(line for spec in HARM_AREAS.values() for line in spec.interpretation),
        ]
    )
    for edit in contradicting:
        assert all(s in everywhere for s in edit.contradicts)  # no sentence drifts out of sync
    carriers: Counter[str] = Counter()
    for variant in generate_variants(per_area=80, seed=6):
        for edit in variant.edits:
            carriers[edit.key] += 1
            assert not any(sentence in variant.text for sentence in edit.contradicts)
        parse_policy(variant.text)
    assert all(carriers[edit.key] for edit in contradicting)
    plain = [v for v in generate_variants(per_area=80, seed=6) if v.area == "hate" and not v.edits]
    assert any("Questions and opinions can be hateful" in v.text for v in plain)


def test_probes_carry_one_edit_each_and_never_repeat_a_generated_policy() -> None:
    variants = generate_variants(per_area=40, seed=0)
    probes = edit_probes("hate", 3, [v.text for v in variants], seed=0)
    assert Counter(p.edits[0].key for p in probes) == {e.key: 3 for e in HARM_AREAS["hate"].edits}
    assert all(len(p.edits) == 1 and p.held_out and p.area == "hate" for p in probes)
    assert len({p.variant_id for p in probes}) == len({p.text for p in probes}) == len(probes)
    assert not {p.text for p in probes} & {v.text for v in variants}
    assert probes == edit_probes("hate", 3, [v.text for v in variants], seed=0)
    for probe in probes:
        parse_policy(probe.text)
    assert edit_probes("hate", 0, []) == []
    with pytest.raises(ModelError, match="at least 0"):
        edit_probes("hate", -1, [])
    with pytest.raises(ModelError, match="known area"):
        edit_probes("gardening", 2, [])


def test_a_text_without_a_label_for_the_area_gets_none() -> None:
    assert _variant().label_for(LabelledText("x", "x", "t", {"sexual": 1})) is None


def test_pairs_keep_held_out_policies_and_validation_content_out_of_training(
    data_dir: Path, variants: list[PolicyVariant]
) -> None:
    texts = load_all(data_dir)
    train = variant_pairs(texts, variants, "train", held_out=False, seed=1)
    held = {variant.variant_id for variant in variants if variant.held_out}
    assert train
    assert not {pair.policy_id for pair in train} & held
    assert all(split_of(pair.content_id) == "train" for pair in train)
    assert not any(pair.policy_id.startswith("privacy/") for pair in train)


def test_pairs_include_a_carrier_of_each_edit_that_speaks_of_a_text(
    variants: list[PolicyVariant],
) -> None:
    split = split_of(RECLAIMED.content_id)
    pairs = variant_pairs([RECLAIMED], variants, split, held_out=split == "validation")
    by_id = {variant.variant_id: variant for variant in variants}
    assert {pair.label for pair in pairs} == {0, 1}
    flipped = [pair for pair in pairs if pair.label == 1]
    assert all(
        any(edit.key == "hate+reclaimed" for edit in by_id[pair.policy_id].edits)
        for pair in flipped
    )


def test_more_carriers_put_a_flipped_text_under_several_policies_sharing_the_edit(
    variants: list[PolicyVariant],
) -> None:
    split = split_of(RECLAIMED.content_id)
    held = split == "validation"
    one = variant_pairs([RECLAIMED], variants, split, held_out=held)
    three = variant_pairs([RECLAIMED], variants, split, held_out=held, carriers_per_edit=3)
    carriers = {
        variant.variant_id
        for variant in variants
        if variant.area == "hate"
        and variant.held_out == held
        and any(edit.key == "hate+reclaimed" for edit in variant.edits)
    }
    flipped = {pair.policy_id for pair in three if pair.label == 1}
    assert len(carriers) >= 2
    assert len(flipped) == min(3, len(carriers))
    assert flipped <= carriers
    assert set(one) <= set(three)  # the one-carrier pairs of a seed stay


def test_a_text_whose_edit_no_policy_carries_still_gets_its_plain_pairs(
    variants: list[PolicyVariant],
) -> None:
    split = split_of(RECLAIMED.content_id)
    held = split == "validation"
    without = [
        v
        for v in variants
        if v.area == "hate"
        and v.held_out == held
        and all(edit.key != "hate+reclaimed" for edit in v.edits)
    ]
    assert without
    pairs = variant_pairs([RECLAIMED], without, split, held_out=held)
    assert pairs
    assert {pair.label for pair in pairs} == {0}  # reclaimed slurs are not hate by default


def test_fewer_than_one_carrier_per_edit_is_refused(variants: list[PolicyVariant]) -> None:
    with pytest.raises(ModelError, match="carriers per edit"):
        variant_pairs([], variants, "train", held_out=False, carriers_per_edit=0)
