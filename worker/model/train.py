"""Fine-tune the pair classifier on contradictory examples, resumably.

CPU training is slow (seconds per step), so a run is a series of short
sessions: every ``checkpoint_every`` steps the model, optimizer, scheduler,
sampler position and RNG states are written atomically to ``OUT/last``, and a
new run with the same ``OUT`` continues from there. A pair whose content spans
several windows is scored as the maximum over its windows, exactly as the
runtime scores it, so training and serving agree.

Pairs come from the library policies and from generated variants
(``policy_variants``); batches are drawn evenly across harm areas and labels,
with a share of the pairs whose label an include or exclude edit flipped,
because those are the pairs that can only be learnt by reading the policy.
With ``twin_weight`` above zero every flipped pair is drawn beside its
twin (the same content under a policy of the same area that keeps the other
label; with ``twin_policy="unedited"`` the very same policy without the
edit) in one batch, and a ranking term asks the flipped policy's score to
sit on the right side of the twin's: the two differ only in the policy, so
the prior on the content cancels and only reading the edit lowers the loss.
Teacher soft labels, where given, replace or blend with the gold labels.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from policy_registry import library_policy
from worker.errors import ModelError
from worker.model.dataset import (
    DEFAULT_DATA_DIR,
    UNRELATED_AREAS,
    LabelledText,
    Pair,
    build_pairs,
    contradicted_share,
    load_all,
)
from worker.model.evaluate import read_scores
from worker.model.export import TOKENIZER_FILE, base_checkpoint_dir, load_torch_classifier
from worker.model.policy_variants import (
    PolicyVariant,
    generate_variants,
    unedited_id,
    variant_pairs,
)
from worker.model.runtime import pad_batch
from worker.model.tokenize import PairTokenizer, TokenRow

__all__ = ["TrainConfig", "TrainingData", "pair_key", "train", "training_data"]

LAST = "last"
BUCKET_BATCHES = 8
SINGLE_LABEL_WEIGHT = 0.2
FLIP_BALANCES = ("source", "edit", "pooled")
TWIN_POLICIES = ("area", "unedited")
MAX_ROWS_PER_PASS = 32
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run; stored beside its checkpoints."""

    out: str
    policies: tuple[str, ...]
    data_dir: str = str(DEFAULT_DATA_DIR)
    base: str = ""
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 3e-5
    warmup_steps: int = 50
    max_length: int = 512
    max_policy_tokens: int = 400
    window_stride: int = 64
    checkpoint_every: int = 50
    seed: int = 13
    davidson_limit: int = 4000
    variants_per_area: int = 40
    variant_pairs_per_text: int = 2
    carriers_per_edit: int = 1
    flip_share: float = 0.15
    flip_balance: str = "source"
    twin_weight: float = 0.0
    twin_margin: float = 0.0
    kept_partner_share: float = 0.0
    twin_policy: str = "area"
    draw_weights: tuple[tuple[str, float], ...] = ()
    attention_dropout: float = 0.0
    unrelated_weight: float = 0.25
    init_from: str = ""
    soft_labels: str = ""
    soft_label_weight: float = 1.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_share <= 1.0:
            raise ModelError(f"flip share must be between 0 and 1, got {self.flip_share}")
        if self.flip_balance not in FLIP_BALANCES:
            raise ModelError(
                f"flip balance must be one of {', '.join(FLIP_BALANCES)}, got {self.flip_balance!r}"
            )
        if self.twin_policy not in TWIN_POLICIES:
            raise ModelError(
                f"twin policy must be one of {', '.join(TWIN_POLICIES)}, got {self.twin_policy!r}"
            )
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ModelError("steps, batch size and checkpoint interval must be at least 1")
        if self.carriers_per_edit < 1:
            raise ModelError(f"carriers per edit must be at least 1, got {self.carriers_per_edit}")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ModelError(f"attention dropout must be in [0, 1), got {self.attention_dropout}")
        if not 0.0 <= self.kept_partner_share <= 1.0:
            raise ModelError(
                f"kept partner share must be between 0 and 1, got {self.kept_partner_share}"
            )
        if self.kept_partner_share > 0 and self.twin_weight <= 0:
            raise ModelError("a kept partner share must be used with a twin weight above 0")
        if not 0.0 <= self.twin_margin < math.inf:
            raise ModelError(f"twin margin must be at least 0, got {self.twin_margin}")
        if self.twin_weight < 0 or (self.twin_weight > 0 and self.batch_size % 2):
            raise ModelError("twin weight must be at least 0, with an even batch size")
        for key, weight in self.draw_weights:
            if not 0 < weight < math.inf or key.count(":") > 2 or not all(key.split(":")):
                raise ModelError(
                    "draw weights must be AREA, EDIT, AREA:DATASET or AREA:DATASET:TRAIT=W, "
                    f"W above 0; got {key}={weight}"
                )


def _log(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


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
    ``traits`` holds each content's traits (``hatecheck:ident_pos_nh``) by id.
    """

    pairs: list[Pair]
    policy_texts: dict[str, str]
    flipped_by: list[str]
    traits: dict[str, frozenset[str]]

    @cached_property
    def flipped(self) -> list[bool]:
        """Whether an edit flipped each pair's label."""
        return [bool(key) for key in self.flipped_by]


def _tokenizer(config: TrainConfig) -> PairTokenizer:
    base = Path(config.base) if config.base else base_checkpoint_dir()
    return PairTokenizer(
        base / TOKENIZER_FILE,
        max_length=config.max_length,
        max_policy_tokens=config.max_policy_tokens,
        window_stride=config.window_stride,
    )


def training_data(config: TrainConfig, tokenizer: PairTokenizer | None = None) -> TrainingData:
    """The train split under the library policies and the seen generated variants."""
    texts = load_all(Path(config.data_dir), config.davidson_limit)
    fits = (tokenizer or _tokenizer(config)).fits_policy
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
    if config.twin_policy == "unedited":
        policy_texts |= _add_unedited_twins(pairs, flipped_by, by_id, items)
    traits = {item.content_id: item.traits for item in texts}
    return TrainingData(pairs, policy_texts, flipped_by, traits)


def _add_unedited_twins(
    pairs: list[Pair],
    flipped_by: list[str],
    variants: dict[str, PolicyVariant],
    items: dict[str, LabelledText],
) -> dict[str, str]:
    """Append each flipped pair's content under its own policy without the edit.

    The two policies differ in the edit's clause alone, the sharpest
    contradictory example there is. Returns the twins' policy texts by id.
    """
    texts: dict[str, str] = {}
    added: set[tuple[str, str]] = set()
    for pair, edit in list(zip(pairs, flipped_by, strict=True)):
        if not edit:
            continue
        twin = variants[pair.policy_id].unedited()
        label = twin.label_for(items[pair.content_id])
        if label is None or (twin.variant_id, pair.content_id) in added:
            continue
        added.add((twin.variant_id, pair.content_id))
        texts[twin.variant_id] = twin.text
        pairs.append(Pair(twin.variant_id, pair.content_id, pair.text, label, pair.source))
        flipped_by.append("")
    return texts


def _source_weights(
    groups: dict[tuple[str, str, str], list[int]],
    boost: dict[str, float] | None = None,
) -> dict[str, tuple[list[str], list[float]]]:
    """Per area, its data sets and their draw weights: sqrt of size, less if one-sided,
    times the ``area:dataset`` entry of ``boost`` where there is one."""
    boost = boost or {}
    by_area: dict[str, tuple[list[str], list[float]]] = {}
    for area in sorted({area for area, _, _ in groups}):
        names = sorted({source for a, source, _ in groups if a == area})
        weights = []
        for name in names:
            size = sum(len(groups.get((area, name, kind), [])) for kind in ("0", "1", "flip"))
            both = (area, name, "0") in groups and (area, name, "1") in groups
            weight = math.sqrt(size) * (1.0 if both else SINGLE_LABEL_WEIGHT)
            weights.append(weight * boost.get(f"{area}:{name}", 1.0))
        by_area[area] = (names, weights)
    return by_area


def _checked_draw_weights(
    config: TrainConfig, data: TrainingData, groups: dict[tuple[str, str, str], list[int]]
) -> dict[str, float]:
    """The run's draw weights by key, each naming an area, an edit whose flips are drawn
    by edit, an area's labelled data set, or a trait of that data set's texts.

    A key that names nothing would silently change nothing, so it is an error.
    """
    by_edit = config.flip_balance in ("edit", "pooled")
    known = {area for area, _, _ in groups}
    for area, source, kind in groups:
        if kind != "flip":
            known.add(f"{area}:{source}")
        elif by_edit:
            known.add(source)
    weights = dict(config.draw_weights)
    if any(key.count(":") == 2 for key in weights):
        known |= {
            f"{area}:{trait}"
            for (area, source, kind), members in groups.items()
            if kind != "flip"
            for trait in {t for i in members for t in data.traits[data.pairs[i].content_id]}
            if trait.startswith(f"{source}:")
        }
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ModelError(
            f"draw weight for {', '.join(unknown)}: no such area, edit drawn by edit, "
            f"area:dataset or area:dataset:trait in the training data "
            f"(areas: {', '.join(sorted({a for a, _, _ in groups}))})"
        )
    return weights


def _weigh_traits(
    data: TrainingData,
    groups: dict[tuple[str, str, str], list[int]],
    weights: dict[str, float],
    rng: random.Random,
) -> None:
    """Repeat, in each labelled group's walk, the pairs whose content has a weighted trait.

    A weight of 2.5 puts such a pair in the walk twice or three times, three
    half the time; the group's share of draws stays as its size decided.
    """
    for (area, source, kind), members in groups.items():
        prefix = f"{area}:{source}:"
        wanted = {key[len(area) + 1 :]: w for key, w in weights.items() if key.startswith(prefix)}
        if kind == "flip" or not wanted:
            continue
        walk = []
        for index in members:
            traits = data.traits[data.pairs[index].content_id]
            weight = max((w for trait, w in wanted.items() if trait in traits), default=1.0)
            walk += [index] * (int(weight) + (rng.random() < weight % 1))
        rng.shuffle(walk)
        members[:] = walk or members  # every weight below 1 and no luck


def _unflipped_by(
    data: TrainingData, key: Callable[[Pair], tuple[str, str, int]]
) -> dict[tuple[str, str, int], list[int]]:
    """Positions of the pairs no edit flipped, by ``key``: where a flip finds its partner."""
    index: dict[tuple[str, str, int], list[int]] = {}
    for position, (pair, flip) in enumerate(zip(data.pairs, data.flipped, strict=True)):
        if not flip:
            index.setdefault(key(pair), []).append(position)
    return index


def twin_positions(chosen: Sequence[Pair], flipped: Sequence[bool]) -> list[tuple[int, int]]:
    """A batch's (flipped, partner) positions: aligned neighbours with opposite labels,
    either one content in one area (a twin) or one policy (a kept partner).

    Recognised from the pairs themselves, so a unit cut at the end of the
    schedule, or two plain draws side by side, is never taken for twins.
    """
    found = []
    for first in range(0, len(chosen) - 1, 2):
        a, b = chosen[first], chosen[first + 1]
        if (
            flipped[first]
            and not flipped[first + 1]
            and a.label != b.label
            and (
                a.policy_id == b.policy_id
                or (a.content_id == b.content_id and area_of(a.policy_id) == area_of(b.policy_id))
            )
        ):
            found.append((first, first + 1))
    return found


def training_order(data: TrainingData, config: TrainConfig, count: int) -> list[int]:
    """``count`` pair indices, drawn so that neither data set nor policy gives the label away.

    Each draw takes an area (unrelated ones at ``unrelated_weight``), then
    either a pair an edit flipped (``flip_share`` of the area's draws) or a
    data set and one of its labels evenly. Flips come from a data set that
    has them (``flip_balance="source"``) or from one of the area's edits
    evenly (``"edit"``), so that exclusions, which few texts speak of, weigh
    as much as inclusions that flip thousands of tweets. With ``"pooled"``
    flips are ``flip_share`` of all draws, taken evenly from every edit of
    every area: an area's share of draws no longer caps how often its edits
    are seen, which left each hate edit a few dozen draws in a 400-step run.
    Labels are balanced within each data set because the sets differ in
    style (HateCheck's short templates are mostly hateful, Davidson's tweets
    mostly not): balancing only across an area taught the model that a short,
    clean sentence is hate. A set holding one label in an area is drawn
    at ``SINGLE_LABEL_WEIGHT`` for the same reason. Each group is walked in a
    shuffled order before any pair repeats.

    With twins on (``twin_weight`` > 0) the order is made of two-pair units:
    a flipped pair and its twin, or two other draws. The twin is any pair of
    the same content and area with the other label (``twin_policy="area"``)
    or the flip's own policy without the edit (``"unedited"``). With
    ``kept_partner_share`` above 0 that share of flips is drawn instead beside
    another text of the same data set under the flip's very policy, whose
    label the edit left as the other one: a twin shows that the clause
    matters, a kept partner which texts it covers, so that "a policy with an
    exclusion flags less" stops paying.

    ``draw_weights`` multiply an area's chance (``hate``) or a data set's
    within its area (``hate:hatecheck``) for the labelled draws: under hate
    policies HateCheck's positive statements about groups were drawn about
    once in a thousand draws. Pooled flips keep their own share, which an
    edit's weight (``hate-threats``) shares out unevenly when flips are drawn
    by edit. A trait's weight (``hate:hatecheck:ident_pos_nh``) repeats the
    texts that have it within their data set's draws: the non-hateful group
    mentions HateCheck holds are a few among thousands of negatives.
    """
    rng = random.Random(config.seed)
    groups: dict[tuple[str, str, str], list[int]] = {}
    by_edit = config.flip_balance in ("edit", "pooled")
    pooled = config.flip_balance == "pooled"
    for index, (pair, edit) in enumerate(zip(data.pairs, data.flipped_by, strict=True)):
        kind = "flip" if edit else str(pair.label)
        group = edit if edit and by_edit else pair.source
        groups.setdefault((area_of(pair.policy_id), group, kind), []).append(index)
    for members in groups.values():
        rng.shuffle(members)
    areas = sorted({area for area, _, _ in groups})
    boost = _checked_draw_weights(config, data, groups)
    weights = [
        (config.unrelated_weight if area in UNRELATED_AREAS else 1.0) * boost.get(area, 1.0)
        for area in areas
    ]
    cursor = dict.fromkeys(groups, 0)
    order: list[int] = []
    flipping = _source_weights({key: v for key, v in groups.items() if key[2] == "flip"})
    if by_edit:
        flipping = {
            area: (names, [boost.get(name, 1.0) for name in names])
            for area, (names, _) in flipping.items()
        }
    labelled = _source_weights({key: v for key, v in groups.items() if key[2] != "flip"}, boost)
    _weigh_traits(data, groups, boost, rng)
    every_edit = sorted((area, name) for area, (names, _) in flipping.items() for name in names)
    edit_weights = [boost.get(name, 1.0) for _, name in every_edit]
    edits_weighted = any(weight != 1.0 for weight in edit_weights)  # else earlier runs' stream
    twins = (
        _unflipped_by(data, lambda p: (p.content_id, area_of(p.policy_id), p.label))
        if config.twin_weight > 0
        else None
    )
    unedited_at = (
        {(p.policy_id, p.content_id): i for i, p in enumerate(data.pairs)}
        if twins is not None and config.twin_policy == "unedited"
        else {}
    )
    kept_partners = (
        _unflipped_by(data, lambda p: (p.policy_id, p.source, p.label))
        if twins is not None and config.kept_partner_share > 0
        else {}
    )
    waiting: list[int] = []  # with twins on, a lone draw until a second fills its unit
    while len(order) + len(waiting) < count:
        area = rng.choices(areas, weights)[0]
        can_flip = bool(every_edit) if pooled else area in flipping
        if can_flip and (area not in labelled or rng.random() < config.flip_share):
            kind = "flip"
            if pooled and edits_weighted:
                area, source = rng.choices(every_edit, edit_weights)[0]
            elif pooled:
                area, source = rng.choice(every_edit)
            else:
                source = rng.choices(*flipping[area])[0]
        else:
            source = rng.choices(*labelled[area])[0]
            kind = rng.choice([k for k in ("0", "1") if (area, source, k) in groups])
        members = groups[(area, source, kind)]
        drawn = members[cursor[(area, source, kind)] % len(members)]
        cursor[(area, source, kind)] += 1
        if twins is None:
            order.append(drawn)
            continue
        pair = data.pairs[drawn]
        if kind == "flip" and kept_partners and rng.random() < config.kept_partner_share:
            kept = kept_partners.get((pair.policy_id, pair.source, 1 - pair.label))
            if kept:
                order += [drawn, rng.choice(kept)]
                continue
        partners = twins.get((pair.content_id, area, 1 - pair.label)) if kind == "flip" else None
        exact = (
            unedited_at.get((unedited_id(pair.policy_id), pair.content_id)) if partners else None
        )
        if partners and exact is not None:
            partners = [exact]
        if partners:
            order += [drawn, rng.choice(partners)]
        else:
            waiting.append(drawn)
            if len(waiting) == 2:
                order += waiting
                waiting = []
    return (order + waiting)[:count]


def length_bucketed(
    order: list[int], lengths: list[int], batch_size: int, seed: int, unit: int = 1
) -> list[int]:
    """``order`` regrouped so each batch holds pairs of similar length.

    A batch is padded to its longest row, and on a CPU padding costs as much
    as text: sorting each block of ``BUCKET_BATCHES`` batches by length and
    then shuffling the batches cuts the tokens computed by about a quarter
    while every pair keeps its place within a few batches. Runs of ``unit``
    pairs (twins) move as one, so a unit that divides the batch size is never
    split between batches.
    """
    rng = random.Random(seed)
    units = [order[i : i + unit] for i in range(0, len(order), unit)]
    block = batch_size * BUCKET_BATCHES // unit
    regrouped: list[int] = []
    for start in range(0, len(units), block):
        by_length = sorted(units[start : start + block], key=lambda u: max(lengths[i] for i in u))
        chunk = [index for members in by_length for index in members]
        batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        regrouped.extend(index for batch in batches for index in batch)
    return regrouped


def batch_schedule(data: TrainingData, config: TrainConfig, count: int) -> list[int]:
    """The run's pair order: drawn by ``training_order``, then length-bucketed
    with twins kept together; batch ``k`` is the ``k``-th ``batch_size`` slice."""
    lengths = [len(data.policy_texts[p.policy_id]) + len(p.text) for p in data.pairs]
    return length_bucketed(
        training_order(data, config, count),
        lengths,
        config.batch_size,
        config.seed,
        unit=2 if config.twin_weight > 0 else 1,
    )


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


def _save(model: Any, state: dict[str, Any], folder: Path, tokenizer_file: Path) -> None:
    """Write a checkpoint to a temporary folder, then swap it in."""
    import torch

    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(str(temporary))
    shutil.copyfile(tokenizer_file, temporary / TOKENIZER_FILE)
    torch.save(state, temporary / STATE_FILE)
    shutil.rmtree(folder, ignore_errors=True)
    temporary.rename(folder)


def _target(pair: Pair, soft: dict[str, float], config: TrainConfig) -> float:
    """Gold label, or its blend with the teacher's score where there is one."""
    teacher = soft.get(pair_key(pair))
    if teacher is None:
        return float(pair.label)
    return config.soft_label_weight * teacher + (1 - config.soft_label_weight) * pair.label


def row_passes(rows: Sequence[TokenRow], max_rows: int) -> list[list[TokenRow]]:
    """A batch's rows in passes of at most ``max_rows`` windows.

    Memory grows with windows, not pairs: a batch of long texts (which length
    bucketing gathers) can hold hundreds of windows, and one backward pass
    over them took 24 GB before the kernel killed the run. Gradients are
    accumulated over the passes instead; a pair's windows stay together (one
    pass may exceed ``max_rows`` only to hold a single pair), since its logit
    is their maximum.
    """
    passes: list[list[TokenRow]] = []
    for _, pair_rows in groupby(rows, key=lambda row: row.pair_index):
        windows = list(pair_rows)
        if passes and len(passes[-1]) + len(windows) <= max_rows:
            passes[-1].extend(windows)
        else:
            passes.append(windows)
    return passes


def pair_logits(model: Any, rows: Sequence[TokenRow], pad_id: int) -> tuple[list[int], Any]:
    """The pairs the rows score (ascending) and one logit each: the maximum of its windows."""
    import torch

    pairs = sorted({row.pair_index for row in rows})
    position = {pair: i for i, pair in enumerate(pairs)}
    device = next(model.parameters()).device
    feed = {k: torch.from_numpy(v).to(device) for k, v in pad_batch(rows, pad_id).items()}
    window_logits = model(**feed).logits.reshape(-1)
    index = torch.tensor([position[row.pair_index] for row in rows], device=device)
    start = torch.full((len(pairs),), -1e4, dtype=window_logits.dtype, device=device)
    logits = start.scatter_reduce(0, index, window_logits, reduce="amax", include_self=False)
    return pairs, logits


def twin_loss(
    chosen: Sequence[Pair],
    indices: Sequence[int],
    logits: Any,
    twins: Sequence[tuple[int, int]],
    margin: float = 0.0,
) -> Any:
    """Ranking loss of the twins scored in this pass, as a share of the batch's twins.

    ``softplus(margin - (positive - negative))``. For a twin, both logits
    see the same content, so the content's prior gets no gradient; a kept
    partner is another text under the same policy, so the policy's does not.
    A margin asks for a wider gap: an edit that moves the score the right
    way but too little to cross the threshold still costs.
    """
    import torch

    position = {pair: i for i, pair in enumerate(indices)}
    margins = []
    for first, second in twins:
        if first in position and second in position:
            gap = logits[position[first]] - logits[position[second]]
            margins.append(gap if chosen[first].label > chosen[second].label else -gap)
    if not margins:
        return logits.sum() * 0.0
    return torch.nn.functional.softplus(margin - torch.stack(margins)).sum() / len(twins)


def batch_backward(
    model: Any,
    tokenizer: PairTokenizer,
    data: TrainingData,
    batch: Sequence[int],
    soft: dict[str, float],
    config: TrainConfig,
) -> float:
    """Accumulate one batch's gradients, in passes of bounded windows; return its loss."""
    import torch

    chosen = [data.pairs[i] for i in batch]
    twins = twin_positions(chosen, [data.flipped[i] for i in batch])
    rows = tokenizer.rows([(data.policy_texts[p.policy_id], p.text) for p in chosen])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    total = 0.0
    for part in row_passes(rows, MAX_ROWS_PER_PASS):
        with torch.autocast("cuda", torch.bfloat16, enabled=config.device.startswith("cuda")):
            indices, logits = pair_logits(model, part, tokenizer.pad_id)
        targets = torch.tensor(
            [_target(chosen[i], soft, config) for i in indices], device=config.device
        )
        loss = loss_fn(logits.float(), targets) * (len(indices) / len(chosen))
        if config.twin_weight > 0:
            ranked = twin_loss(chosen, indices, logits.float(), twins, config.twin_margin)
            loss = loss + config.twin_weight * ranked
        loss.backward()
        total += loss.item()
    return total


def train(config: TrainConfig, stop_at: int | None = None) -> Path:
    """Run (or resume) training; return the folder of the last checkpoint.

    ``stop_at`` ends this run early at that step (after a checkpoint), for
    sessions shorter than the whole schedule; the next run resumes.
    """
    import torch

    base = Path(config.base) if config.base else base_checkpoint_dir()
    tokenizer = _tokenizer(config)
    data = training_data(config, tokenizer)
    pairs, policy_texts = data.pairs, data.policy_texts
    soft = read_scores(Path(config.soft_labels)) if config.soft_labels else {}
    order = batch_schedule(data, config, config.steps * config.batch_size)
    out = Path(config.out)  # written only once the data and draws are known to be sound
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    resume = out / LAST
    state: dict[str, Any] = {"step": 0}
    if (resume / STATE_FILE).is_file():
        model = load_torch_classifier(resume, attention_dropout=config.attention_dropout)
        state = torch.load(resume / STATE_FILE, weights_only=False)
    else:
        torch.manual_seed(config.seed)
        model = load_torch_classifier(
            Path(config.init_from or base),
            seed=config.seed,
            attention_dropout=config.attention_dropout,
        )
    model.to(config.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return max(0.0, (config.steps - step) / max(1, config.steps - config.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
    _log(
        event="start",
        step=state["step"],
        pairs=len(pairs),
        positives=sum(p.label for p in pairs),
        flipped=sum(data.flipped),
        contradicted_content=round(contradicted_share(pairs), 4),
        policies=len(policy_texts),
        soft_labels=sum(pair_key(p) in soft for p in pairs),
    )
    model.train()
    began, losses = time.time(), []
    step = int(state["step"])
    last_step = min(config.steps, stop_at or config.steps)
    while step < last_step:
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        optimizer.zero_grad()
        loss = batch_backward(model, tokenizer, data, batch, soft, config)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(loss)
        if step % 10 == 0 or step == last_step:
            _log(
                event="progress",
                step=step,
                loss=round(float(np.mean(losses[-10:])), 4),
                lr=scheduler.get_last_lr()[0],
                seconds_per_step=round((time.time() - began) / len(losses), 2),
            )
        if step % config.checkpoint_every == 0 or step == last_step:
            _save(
                model,
                {
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                },
                resume,
                base / TOKENIZER_FILE,
            )
            _log(event="checkpoint", step=step)
    model.eval()
    return resume


_LIBRARY = (
    "sexual,hate,violence,harassment,self-harm,"
    "sexual-minors,hate-threatening,violence-graphic,offensive-language"
)


def add_train_arguments(parser: Any) -> None:
    """The options of a training run, shared by ``cope model train`` and ``main``."""
    parser.add_argument("out", help="run folder; an existing run resumes")
    parser.add_argument("--steps", type=int, default=1000, help="length of the whole schedule")
    parser.add_argument("--stop-at", type=int, help="end this run at this step (resumable)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--policies", default=_LIBRARY, help="library policies trained on")
    parser.add_argument("--variants-per-area", type=int, default=40)
    parser.add_argument(
        "--carriers-per-edit",
        type=int,
        default=1,
        help="policies carrying an edit that each text it speaks of appears under",
    )
    parser.add_argument("--init-from", default="", help="checkpoint whose weights start the run")
    parser.add_argument("--soft-labels", default="", help="teacher scores by pair id (JSONL)")
    parser.add_argument(
        "--soft-label-weight", type=float, default=1.0, help="1: teacher only; 0: gold only"
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda (bf16)")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="steps between saves")
    parser.add_argument(
        "--flip-share", type=float, default=0.15, help="share of an area's draws that are flips"
    )
    parser.add_argument(
        "--flip-balance",
        choices=FLIP_BALANCES,
        default="source",
        help="draw an area's flips by data set (weighted by size) or evenly by edit; "
        "pooled: flips are --flip-share of all draws, evenly by edit across areas",
    )
    parser.add_argument(
        "--twin-weight",
        type=float,
        default=0.0,
        help="draw each flip beside its twin and rank them at this weight (0: off)",
    )
    parser.add_argument(
        "--twin-margin",
        type=float,
        default=0.0,
        help="logit gap between a flip and its twin below which the ranking term still costs",
    )
    parser.add_argument(
        "--kept-partner-share",
        type=float,
        default=0.0,
        help="share of flips drawn beside a text of the other label under the same policy "
        "instead of their twin (needs --twin-weight)",
    )
    parser.add_argument(
        "--twin-policy",
        choices=TWIN_POLICIES,
        default="area",
        help="a flip's twin: any policy of its area with the other label, or its own "
        "policy without the edit",
    )
    parser.add_argument(
        "--draw-weight",
        action="append",
        default=[],
        metavar="KEY=W",
        help="multiply the draws of an area (hate), an edit's flips (hate-threats; with "
        "--flip-balance edit or pooled), a data set within an area (hate:hatecheck), or "
        "that set's texts with a trait (hate:hatecheck:ident_pos_nh); repeatable",
    )
    parser.add_argument(
        "--attention-dropout",
        type=float,
        default=0.0,
        help="dropout on attention weights; above 0 it forces the unfused attention (2x slower)",
    )
    parser.add_argument(
        "--base", default="", help="base encoder folder (default: the packaged MiniLM)"
    )
    parser.add_argument(
        "--write-pairs", help="write the training pairs for a teacher to label, then stop"
    )


def parse_draw_weights(entries: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``["hate=2", "hate:hatecheck=3"]`` as config pairs; a malformed entry is an error."""
    parsed = []
    for entry in entries:
        key, _, value = entry.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if weight is None or not key.strip():
            raise ModelError(
                f"a draw weight is KEY=W (AREA, EDIT, AREA:DATASET[:TRAIT]), got {entry!r}"
            )
        parsed.append((key.strip(), weight))
    return tuple(parsed)


def run_from_arguments(args: Any) -> None:
    """Train (or write the pairs file) as the parsed options say."""
    config = TrainConfig(
        out=str(args.out),
        policies=tuple(args.policies.split(",")),
        data_dir=args.data_dir or str(DEFAULT_DATA_DIR),
        steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        variants_per_area=args.variants_per_area,
        carriers_per_edit=args.carriers_per_edit,
        init_from=args.init_from,
        base=args.base,
        checkpoint_every=args.checkpoint_every,
        flip_share=args.flip_share,
        flip_balance=args.flip_balance,
        twin_policy=args.twin_policy,
        twin_weight=args.twin_weight,
        twin_margin=args.twin_margin,
        kept_partner_share=args.kept_partner_share,
        draw_weights=parse_draw_weights(args.draw_weight),
        attention_dropout=args.attention_dropout,
        soft_labels=args.soft_labels,
        soft_label_weight=args.soft_label_weight,
        device=args.device,
    )
    if args.write_pairs:
        count = write_pairs(training_data(config), Path(args.write_pairs))
        _log(event="pairs_written", pairs=count, path=args.write_pairs)
        return
    train(config, stop_at=args.stop_at)


def main(argv: list[str] | None = None) -> None:
    """``python -m worker.model.train OUT [--steps N]``: run in the background."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    add_train_arguments(parser)
    run_from_arguments(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
