"""The order in which training draws its pairs, and how they are batched.

Batches are drawn evenly across harm areas and labels, with a share of the
pairs whose label an include or exclude edit flipped, because those are the
pairs that can only be learnt by reading the policy. With ``twin_weight``
above zero every flipped pair is drawn beside its twin (the same content
under a policy of the same area that keeps the other label; with
``twin_policy="unedited"`` the very same policy without the edit) in one
batch, where the training loss ranks the two: they differ only in the
policy, so the prior on the content cancels and only reading the edit
lowers the loss.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from worker.errors import ModelError
from worker.model.dataset import UNRELATED_AREAS, Pair
from worker.model.policy_variants import unedited_id
from worker.model.train_config import TrainConfig
from worker.model.training_data import TrainingData, area_of

__all__ = ["batch_schedule", "draw_counts", "length_bucketed", "training_order", "twin_positions"]

BUCKET_BATCHES = 8
SINGLE_LABEL_WEIGHT = 0.2


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
    rng = random.Random(config.order_seed())
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
        config.order_seed(),
        unit=2 if config.twin_weight > 0 else 1,
    )


def draw_counts(data: TrainingData, order: Sequence[int]) -> dict[str, Any]:
    """What a schedule draws: by area, data set and label, by flipping edit, by trait.

    Draw weights interact (an area's weight, its data sets', partners pulled
    in beside flips), so a recipe is judged by counting its draws before
    spending an hour of training on it. Traits count by label too: texts an
    edit flips can end up drawn with the other label more often than with
    their own, and the model then learns the exception as the rule.
    """
    areas: dict[str, dict[str, Any]] = {}
    edits: Counter[str] = Counter()
    traits: dict[str, dict[str, int]] = {}
    for index in order:
        pair, edit = data.pairs[index], data.flipped_by[index]
        area = areas.setdefault(area_of(pair.policy_id), {"draws": 0, "by_source": {}})
        area["draws"] += 1
        kind = "flipped" if edit else str(pair.label)
        area["by_source"].setdefault(pair.source, {"0": 0, "1": 0, "flipped": 0})[kind] += 1
        if edit:
            edits[edit] += 1
        for trait in data.traits[pair.content_id]:
            traits.setdefault(trait, {"0": 0, "1": 0, "flipped": 0})[kind] += 1
    return {
        "draws": len(order),
        "flipped": sum(edits.values()),
        "by_area": dict(sorted(areas.items())),
        "by_edit": dict(sorted(edits.items())),
        "by_trait": dict(sorted(traits.items())),
    }
