"""The training pairs: library policies and generated variants over the labelled data.

Each pair records the edit that flipped its label, if one did, and each
content its traits, because sampling weighs both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from policy_registry import library_policy
from worker.model.dataset import LabelledText, Pair, build_pairs, load_all
from worker.model.export import TOKENIZER_FILE
from worker.model.policy_variants import PolicyVariant, generate_variants, variant_pairs
from worker.model.tokenize import PairTokenizer
from worker.model.train_config import TrainConfig

__all__ = [
    "TrainingData",
    "area_of",
    "pair_key",
    "training_data",
    "training_tokenizer",
    "write_pairs",
]


def area_of(policy_id: str) -> str:
    """The harm area of a library id (``hate``) or a variant id (``hate/007``)."""
    return policy_id.split("/", 1)[0]


def pair_key(pair: Pair) -> str:
    """The id a pair has in a pairs file, and so in a teacher's soft labels."""
    return f"{pair.policy_id}|{pair.content_id}"


@dataclass(frozen=True)
class TrainingData:
    """Training pairs, the policy text of every id, and the edit that flipped each pair.

    ``flipped_by`` is ``""`` for a pair whose label is its content's own;
    ``traits`` holds each content's traits (``hatecheck:ident_pos_nh``) by id;
    ``unedited`` the id of each edited policy's unedited twin, whose text is
    in ``policy_texts``.
    """

    pairs: list[Pair]
    policy_texts: dict[str, str]
    flipped_by: list[str]
    traits: dict[str, frozenset[str]]
    unedited: dict[str, str] = field(default_factory=dict)

    @cached_property
    def flipped(self) -> list[bool]:
        """Whether an edit flipped each pair's label."""
        return [bool(key) for key in self.flipped_by]


def training_tokenizer(config: TrainConfig) -> PairTokenizer:
    """The tokenizer of the run's base checkpoint, at the run's lengths."""
    return PairTokenizer(
        config.base_dir() / TOKENIZER_FILE,
        max_length=config.max_length,
        max_policy_tokens=config.max_policy_tokens,
        window_stride=config.window_stride,
    )


def training_data(config: TrainConfig, tokenizer: PairTokenizer | None = None) -> TrainingData:
    """The train split under the library policies and the seen generated variants."""
    texts = load_all(Path(config.data_dir), config.davidson_limit)
    fits = (tokenizer or training_tokenizer(config)).fits_policy
    variants = generate_variants(config.variants_per_area, seed=config.seed, fits=fits)
    pairs = build_pairs(texts, set(config.policies), "train") + variant_pairs(
        texts,
        variants,
        "train",
        held_out=False,
        per_text=config.variant_pairs_per_text,
        seed=config.seed,
        carriers_per_edit=config.carriers_per_edit,
    )
    policy_texts = {policy_id: library_policy(policy_id) for policy_id in config.policies}
    policy_texts |= {v.variant_id: v.text for v in variants if not v.held_out}
    items = {item.content_id: item for item in texts}
    by_id = {variant.variant_id: variant for variant in variants}
    flipped_by = []
    for pair in pairs:
        variant, item = by_id.get(pair.policy_id), items[pair.content_id]
        decided = variant.labelling(item) if variant else None
        base = item.labels[area_of(pair.policy_id)]
        flipped_by.append(decided[1] if decided and pair.label != base else "")
    twins = {v.variant_id: v.unedited() for v in variants if v.edits and not v.held_out}
    policy_texts |= {twin.variant_id: twin.text for twin in twins.values()}
    if config.twin_policy == "unedited":
        _add_unedited_twins(pairs, flipped_by, twins, items)
    traits = {item.content_id: item.traits for item in texts}
    unedited = {variant_id: twin.variant_id for variant_id, twin in twins.items()}
    return TrainingData(pairs, policy_texts, flipped_by, traits, unedited)


def _add_unedited_twins(
    pairs: list[Pair],
    flipped_by: list[str],
    twins: dict[str, PolicyVariant],
    items: dict[str, LabelledText],
) -> None:
    """Append each flipped pair's content under its own policy without the edit
    (``twins``, by the edited policy's id).

    The two policies differ in the edit's clause alone, the sharpest
    contradictory example there is.
    """
    added: set[tuple[str, str]] = set()
    for pair, edit in list(zip(pairs, flipped_by, strict=True)):
        if not edit:
            continue
        twin = twins[pair.policy_id]
        label = twin.label_for(items[pair.content_id])
        if label is None or (twin.variant_id, pair.content_id) in added:
            continue
        added.add((twin.variant_id, pair.content_id))
        pairs.append(Pair(twin.variant_id, pair.content_id, pair.text, label, pair.source))
        flipped_by.append("")


def write_pairs(data: TrainingData, path: Path) -> int:
    """The training pairs as a pairs file a teacher can label; returns the count."""
    with path.open("w", encoding="utf-8") as handle:
        for pair in data.pairs:
            row = {
                "id": pair_key(pair),
                "policy": data.policy_texts[pair.policy_id],
                "text": pair.text,
                "label": pair.label,
            }
            handle.write(json.dumps(row) + "\n")
    return len(data.pairs)
