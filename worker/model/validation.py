"""What matters about a policy-steerable model, measured on content it never saw.

Five questions, each on the validation split of the shared data, less the
calibration slice (``calibration_texts``), so the cut the report judges was
never fitted on the content it is judged on:

- library policies on OpenAI moderation content: per-category and
  any-category F1, the figure peers publish;
- seen against unseen wordings: the same content under a generated policy
  training saw and under one it never saw, with the same meaning, so the gap
  is only the wording;
- a harm area no training policy was about (``HELD_OUT_AREAS``);
- HateCheck under held-out policies whose include/exclude edits flip some
  cases: accuracy on the flipped cases and on the kept ones; and again
  under probes, more held-out policies carrying one edit each, when given;
  and under seen edited policies, the control: a model that memorised the
  training policies does as well there as one that reads them, so only the
  gap between seen and held-out tells the two apart;
- HateCheck under the library policies of harms it is not about (sexual,
  sexual-minors, self-harm), where every text is negative.

A figure at one threshold mixes the model's ranking with its calibration;
a threshold sweep repeats the headline figures at other cuts from the same
scores, so a report says which of the two a shortfall is: if no cut gets
flips and kept cases right together, no calibration will.

Pure over a scoring function, so tests run it without a model.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from policy_registry import library_policy
from worker.model.dataset import (
    GROUP_HATE_NOT_ABOUT,
    GROUP_HATE_SOURCES,
    OPENAI_CATEGORIES,
    VALIDATION_SHARE,
    LabelledText,
    split_of,
)
from worker.model.evaluate import binary_metrics, f1_interval
from worker.model.policy_variants import HELD_OUT_AREAS, PolicyVariant

__all__ = [
    "Scored",
    "Scorer",
    "any_category_texts",
    "calibration_pairs",
    "calibration_texts",
    "hatecheck_library",
    "not_about",
    "validation_report",
    "validation_texts",
]

Scorer = Callable[[Sequence[tuple[str, str]]], Sequence[float]]
_Row = TypeVar("_Row")

SEEN_POLICIES_PER_EDIT = 2  # training policies per edit in the seen-policies control
# The lowest quarter of the validation split's hash range (``split_of``'s buckets
# nest): calibration content, which the report never reads.
CALIBRATION_SHARE = VALIDATION_SHARE / 4


@dataclass(frozen=True)
class Scored:
    """A validation pair: its policy text, content, gold label and group."""

    policy_id: str
    policy: str
    text: str
    label: int
    flipped: bool = False
    flipped_by: str = ""  # the edit's key, for flipped pairs
    functionality: str = ""  # HateCheck's test case kind, for HateCheck pairs


def _scores(score: Scorer, pairs: Sequence[Scored]) -> list[float]:
    """The model's score of every pair, in order."""
    return list(score([(pair.policy, pair.text) for pair in pairs]))


def _labels_every_category(item: LabelledText) -> bool:
    """An OpenAI row with all eight category keys: its any-category label is known."""
    return item.source == "openai" and set(OPENAI_CATEGORIES.values()) <= set(item.labels)


def _for_calibration(item: LabelledText) -> bool:
    """In the calibration slice: the any-category rows (81) are too few to share, so stay out."""
    return split_of(item.content_id, CALIBRATION_SHARE) == "validation" and not (
        _labels_every_category(item)
    )


def _validation_split(texts: Sequence[LabelledText]) -> list[LabelledText]:
    return [item for item in texts if item.text and split_of(item.content_id) == "validation"]


def validation_texts(texts: Sequence[LabelledText]) -> list[LabelledText]:
    """The texts the report reads: never trained on, never calibrated on."""
    return [item for item in _validation_split(texts) if not _for_calibration(item)]


def calibration_texts(texts: Sequence[LabelledText]) -> list[LabelledText]:
    """The texts calibration reads: never trained on, never in the report."""
    return [item for item in _validation_split(texts) if _for_calibration(item)]


def any_category_texts(items: Sequence[LabelledText]) -> list[tuple[LabelledText, int]]:
    """OpenAI texts labelled for all eight categories, each with its any-category label.

    A row with a missing key could hide a positive, so only complete rows
    count; on the validation split that is 81 texts.
    """
    categories = list(OPENAI_CATEGORIES.values())
    return [
        (item, max(item.labels[c] for c in categories))
        for item in items
        if _labels_every_category(item)
    ]


def _plain(variants: Sequence[PolicyVariant], held_out: bool) -> dict[str, list[PolicyVariant]]:
    """Variants without edits, by area: their label on any text is the area's label."""
    by_area: dict[str, list[PolicyVariant]] = {}
    for variant in variants:
        if variant.held_out == held_out and not variant.edits:
            by_area.setdefault(variant.area, []).append(variant)
    return by_area


def _balanced(
    rows: list[_Row], labels: Sequence[int], limit: int, rng: random.Random
) -> list[_Row]:
    """Up to ``limit`` rows, half of them positive where there are enough positives."""
    positives = [row for row, label in zip(rows, labels, strict=True) if label]
    negatives = [row for row, label in zip(rows, labels, strict=True) if not label]
    take = min(len(positives), limit // 2)
    return rng.sample(positives, take) + rng.sample(negatives, min(len(negatives), limit - take))


def calibration_pairs(
    texts: Sequence[LabelledText],
    variants: Sequence[PolicyVariant],
    per_area: int,
    seed: int = 0,
) -> list[Scored]:
    """Calibration content under seen variants, up to ``per_area`` pairs a harm area.

    Pairs keep the labels' own rate (about a fifth positive on the shared
    data) rather than half: the F1-best cut of a balanced set sits lower than
    that of any set where positives are rarer, and in moderation traffic they
    are rarer still, so balanced pairs set a cut that over-flags.
    """
    rng = random.Random(seed)
    seen = [variant for variant in variants if not variant.held_out]
    pools: dict[str, list[Scored]] = {}
    for item in calibration_texts(texts):
        for variant in rng.sample(seen, min(len(seen), 6)):
            label = variant.label_for(item)
            if label is not None:
                pools.setdefault(variant.area, []).append(
                    Scored(variant.variant_id, variant.text, item.text, label)
                )
    chosen: list[Scored] = []
    for area in sorted(pools):
        chosen += rng.sample(pools[area], min(len(pools[area]), per_area))
    return chosen


def _metrics(pairs: Sequence[Scored], scores: Sequence[float], threshold: float) -> dict[str, Any]:
    return asdict(binary_metrics([pair.label for pair in pairs], list(scores), threshold))


def _accuracy(pairs: Sequence[Scored], scores: Sequence[float], threshold: float) -> float | None:
    if not pairs:
        return None
    right = sum(
        int(score >= threshold) == pair.label for pair, score in zip(pairs, scores, strict=True)
    )
    return round(right / len(pairs), 4)


def _openai_library(
    items: list[LabelledText], limit: int, score: Scorer, threshold: float
) -> dict[str, Any]:
    """Library policies on OpenAI content: each category on every text labelled for it.

    Any-category is measured on ``any_category_texts``, at most ``limit``.
    """
    openai = [item for item in items if item.source == "openai"]
    pairs = [
        Scored(category, library_policy(category), item.text, item.labels[category])
        for category in OPENAI_CATEGORIES.values()
        for item in openai
        if category in item.labels
    ]
    scores = dict(
        zip(
            ((pair.policy_id, pair.text) for pair in pairs),
            _scores(score, pairs),
            strict=True,
        )
    )
    per_category = {}
    for category in OPENAI_CATEGORIES.values():
        column = [pair for pair in pairs if pair.policy_id == category]
        per_category[category] = _metrics(
            column, [scores[(category, pair.text)] for pair in column], threshold
        )
    complete = any_category_texts(openai)[:limit]
    any_pairs = [Scored("any", "", item.text, label) for item, label in complete]
    any_scores = [
        max(scores[(category, item.text)] for category in OPENAI_CATEGORIES.values())
        for item, _ in complete
    ]
    labels = [pair.label for pair in any_pairs]
    return {
        "texts": len(complete),
        "any_category": _metrics(any_pairs, any_scores, threshold),
        "any_category_f1_ci95": list(f1_interval(labels, any_scores, threshold)),
        "per_category": per_category,
    }


def _seen_unseen(
    items: list[LabelledText], variants: Sequence[PolicyVariant], limit: int, rng: random.Random
) -> tuple[list[Scored], list[Scored]]:
    seen_by_area, unseen_by_area = _plain(variants, False), _plain(variants, True)
    seen: list[Scored] = []
    unseen: list[Scored] = []
    for area in sorted(set(seen_by_area) & set(unseen_by_area)):
        labelled = [item for item in items if area in item.labels]
        labels = [item.labels[area] for item in labelled]
        for item in _balanced(labelled, labels, limit, rng):
            for pool, out in ((seen_by_area[area], seen), (unseen_by_area[area], unseen)):
                variant = rng.choice(pool)
                out.append(Scored(variant.variant_id, variant.text, item.text, item.labels[area]))
    return seen, unseen


def _held_out_area(
    items: list[LabelledText], variants: Sequence[PolicyVariant], limit: int, rng: random.Random
) -> list[Scored]:
    pairs = []
    for area in HELD_OUT_AREAS:
        pool = [variant for variant in variants if variant.area == area]
        if not pool:
            continue
        labelled = [item for item in items if area in item.labels]
        labels = [item.labels[area] for item in labelled]
        for item in _balanced(labelled, labels, limit, rng):
            variant = rng.choice(pool)
            pairs.append(Scored(variant.variant_id, variant.text, item.text, item.labels[area]))
    return pairs


def _accuracy_by(
    scored: Sequence[tuple[Scored, float]], group_of: Callable[[Scored], str], threshold: float
) -> dict[str, Any]:
    """Accuracy per group: which edits the model reads, which kinds of text it gets wrong."""
    groups: dict[str, list[tuple[Scored, float]]] = {}
    for pair, score in scored:
        groups.setdefault(group_of(pair), []).append((pair, score))
    report = {}
    for key, group in sorted(groups.items()):
        accuracy = _accuracy([p for p, _ in group], [s for _, s in group], threshold)
        report[key] = {"n": len(group), "accuracy": accuracy}
    return report


def _functionality(item: LabelledText) -> str:
    return next((t.split(":", 1)[1] for t in item.traits if t.startswith("hatecheck:")), "")


def _flips(
    items: list[LabelledText], edited: Sequence[PolicyVariant], limit: int, rng: random.Random
) -> list[Scored]:
    """HateCheck under held-out edited hate variants: every flipped case, and
    up to ``limit`` kept cases per variant.

    Flips are few (a couple of hundred in the validation split) and each edit
    holds tens of them, so sampling them would leave differences between
    models inside the noise; kept cases are thousands and are sampled.
    """
    hatecheck = [item for item in items if item.source == "hatecheck"]
    pairs: list[Scored] = []
    for variant in edited:
        flipped: list[Scored] = []
        kept: list[Scored] = []
        for item in hatecheck:
            decided = variant.labelling(item)
            if decided is None:
                continue
            label, edit_key = decided
            changed = label != item.labels["hate"]
            flipped_by = edit_key if changed else ""
            pair = Scored(
                variant.variant_id,
                variant.text,
                item.text,
                label,
                changed,
                flipped_by,
                _functionality(item),
            )
            (flipped if pair.flipped else kept).append(pair)
        pairs += flipped
        pairs += rng.sample(kept, min(len(kept), limit))
    return pairs


def hatecheck_library(
    texts: Sequence[LabelledText], score: Scorer, threshold: float
) -> dict[str, Any]:
    """Every HateCheck validation text under the library hate policy, by functionality.

    The policy a team starts from, read as HateCheck is meant to be read. The
    edited-policy sections score HateCheck only under generated variants, so
    a model that stopped flagging dehumanization under the library policy,
    which names it, went unseen there.
    """
    plain = library_policy("hate")
    pairs = [
        Scored("hate", plain, item.text, item.labels["hate"], functionality=_functionality(item))
        for item in validation_texts(texts)
        if item.source == "hatecheck"
    ]
    scores = _scores(score, pairs)
    return {
        **_metrics(pairs, scores, threshold),
        "accuracy": _accuracy(pairs, scores, threshold),
        "accuracy_by_functionality": _accuracy_by(
            list(zip(pairs, scores, strict=True)), lambda p: p.functionality, threshold
        ),
    }


def _kind(item: LabelledText) -> str:
    """HateCheck's functionality, or ToxiGen's hateful / neutral label."""
    return _functionality(item) or ("hateful" if item.labels.get("hate") else "neutral")


def not_about(
    texts: Sequence[LabelledText], score: Scorer, threshold: float, source: str
) -> dict[str, Any]:
    """A group-hate set's validation texts under the library policies of harms they are not about.

    Every such pair is negative, so the figure is the share flagged: hate
    that names women or gay people read as sexual content was invisible to
    the sections above, which score HateCheck under hate policies only.
    """
    items = [item for item in validation_texts(texts) if item.source == source]
    report: dict[str, Any] = {}
    for area in GROUP_HATE_NOT_ABOUT:
        policy = library_policy(area)
        labelled = [item for item in items if area in item.labels]
        scores = _scores(score, [Scored(area, policy, item.text, 0) for item in labelled])
        flagged = [
            (item, value)
            for item, value in zip(labelled, scores, strict=True)
            if value >= threshold
        ]
        report[area] = {
            "n": len(labelled),
            "flagged_share": round(len(flagged) / len(labelled), 4) if labelled else None,
            "flagged_by": dict(Counter(_kind(item) for item, _ in flagged).most_common()),
        }
    return report


def _flag_everything(flipped: Sequence[Scored], kept: Sequence[Scored]) -> dict[str, Any]:
    """Flip and kept accuracy of a scorer that flags every text: the floor to beat.

    Most HateCheck texts are hateful and inclusions flip texts to hateful, so
    a model that flags all of them scores well on both without reading.
    """
    return {
        "flip_accuracy": _accuracy(flipped, [1.0] * len(flipped), 0.5),
        "kept_accuracy": _accuracy(kept, [1.0] * len(kept), 0.5),
    }


def _plain_references(flipped: Sequence[Scored]) -> list[Scored]:
    """Each flipped case under the library hate policy, which has no edits.

    Accuracy on flips mixes reading the edit with the model's prior on the
    content: a model that scores every HateCheck template high gets the
    flips to hateful right without reading anything. Whether the edited
    policy moves the score the right way from the plain one does not depend
    on that prior.
    """
    plain = library_policy("hate")
    return [Scored("hate", plain, pair.text, 1 - pair.label) for pair in flipped]


def _unedited_references(
    pairs: Sequence[Scored], variants: Sequence[PolicyVariant]
) -> list[Scored]:
    """Each case under its own policy without the edits: same wording, base label.

    The library policy differs from a generated one in wording as well as
    in the edit, so a move measured from it can be the wording's.
    """
    by_id = {variant.variant_id: variant for variant in variants}
    references = []
    for pair in pairs:
        twin = by_id[pair.policy_id].unedited()
        label = 1 - pair.label if pair.flipped else pair.label
        references.append(Scored(twin.variant_id, twin.text, pair.text, label))
    return references


def _kept_without_edits(
    kept: Sequence[tuple[Scored, float]], reference_scores: Sequence[float], threshold: float
) -> dict[str, Any]:
    """Kept accuracy under the unedited twins, and the share of kept cases the edit lost.

    A kept case missed under the edited policy is either missed without the
    edit too (the model's reading of the content) or right there and wrong
    with it (the edit leaking onto texts it does not speak of); the two need
    different cures, so the report tells them apart.
    """
    pairs = [pair for pair, _ in kept]
    lost = [
        (reference >= threshold) == bool(pair.label) and (score >= threshold) != bool(pair.label)
        for (pair, score), reference in zip(kept, reference_scores, strict=True)
    ]
    return {
        "kept_accuracy_unedited": _accuracy(pairs, reference_scores, threshold),
        "kept_lost_to_edit": round(sum(lost) / len(lost), 4) if lost else None,
    }


def _direction(
    flipped: Sequence[tuple[Scored, float]], reference_scores: Sequence[float]
) -> dict[str, Any]:
    """Share of flips whose edited policy moves the score toward the flipped label."""
    right: dict[str, list[bool]] = {}
    for (pair, score), reference in zip(flipped, reference_scores, strict=True):
        moved = score - reference if pair.label == 1 else reference - score
        right.setdefault(pair.flipped_by, []).append(moved > 0)
    every = [ok for oks in right.values() for ok in oks]
    return {
        "accuracy": round(sum(every) / len(every), 4) if every else None,
        "by_edit": {key: round(sum(oks) / len(oks), 4) for key, oks in sorted(right.items())},
    }


def _hatecheck_edits(
    items: list[LabelledText],
    edited: Sequence[PolicyVariant],
    score: Scorer,
    limit: int,
    threshold: float,
    rng: random.Random,
) -> dict[str, Any]:
    """Flip and kept accuracy of HateCheck under ``edited``, and which way each edit moves."""
    flips = _flips(items, edited, limit, rng)
    flip_scores = _scores(score, flips)
    flipped = [(p, s) for p, s in zip(flips, flip_scores, strict=True) if p.flipped]
    kept = [(p, s) for p, s in zip(flips, flip_scores, strict=True) if not p.flipped]
    report: dict[str, Any] = {
        "variants": len({pair.policy_id for pair in flips}),
        "flipped": len(flipped),
        "flip_accuracy": _accuracy([p for p, _ in flipped], [s for _, s in flipped], threshold),
        "flip_accuracy_by_edit": _accuracy_by(flipped, lambda p: p.flipped_by, threshold),
        "kept": len(kept),
        "kept_accuracy": _accuracy([p for p, _ in kept], [s for _, s in kept], threshold),
        "kept_accuracy_by_functionality": _accuracy_by(kept, lambda p: p.functionality, threshold),
        "flag_everything": _flag_everything([p for p, _ in flipped], [p for p, _ in kept]),
    }
    references = _plain_references([p for p, _ in flipped])
    report["flip_direction"] = _direction(flipped, _scores(score, references))
    twins = _unedited_references([p for p, _ in flipped], edited)
    report["flip_direction_vs_unedited"] = _direction(flipped, _scores(score, twins))
    kept_twins = _scores(score, _unedited_references([p for p, _ in kept], edited))
    report |= _kept_without_edits(kept, kept_twins, threshold)
    return report


def validation_report(
    texts: Sequence[LabelledText],
    variants: Sequence[PolicyVariant],
    score: Scorer,
    *,
    limit: int = 100,
    threshold: float = 0.5,
    seed: int = 0,
    probes: Sequence[PolicyVariant] = (),
    sweep: Sequence[float] = (),
) -> dict[str, Any]:
    """The measurements, with ``limit`` bounding each sampled group's size.

    ``probes`` (``edit_probes``) adds ``hatecheck_edit_probes``: the HateCheck
    measures again under many more held-out policies, one edit each.
    ``sweep`` adds ``threshold_sweep``: the headline figures at each of those
    thresholds, from the same scores (every pair is scored once).
    """
    if sweep:
        score = _remembered(score)
        swept = validation_report(
            texts, variants, score, limit=limit, threshold=threshold, seed=seed, probes=probes
        )
        swept["threshold_sweep"] = [
            _headlines(
                validation_report(
                    texts, variants, score, limit=limit, threshold=cut, seed=seed, probes=probes
                )
            )
            for cut in sorted(set(sweep))
        ]
        return swept
    rng = random.Random(seed)
    items = validation_texts(texts)
    report: dict[str, Any] = {"threshold": threshold}

    report["openai_library"] = _openai_library(items, limit, score, threshold)

    seen, unseen = _seen_unseen(items, variants, limit, rng)
    seen_scores = _scores(score, seen)
    unseen_scores = _scores(score, unseen)
    report["wordings"] = {
        "seen": _metrics(seen, seen_scores, threshold),
        "unseen": _metrics(unseen, unseen_scores, threshold),
        "policies_seen": len({pair.policy_id for pair in seen}),
        "policies_unseen": len({pair.policy_id for pair in unseen}),
    }

    held = _held_out_area(items, variants, limit, rng)
    held_scores = _scores(score, held)
    report["held_out_area"] = {
        "areas": list(HELD_OUT_AREAS),
        **_metrics(held, held_scores, threshold),
    }

    edited = [v for v in variants if v.area == "hate" and v.held_out and v.edits]
    report["hatecheck_edits"] = _hatecheck_edits(items, edited, score, limit, threshold, rng)
    if probes:
        report["hatecheck_edit_probes"] = _hatecheck_edits(
            items, probes, score, limit, threshold, rng
        )
    # last, so the random draws of the sections above stay those of earlier reports;
    # a quarter of the kept sample, since this section only needs the flips' gap
    seen_edited = _seen_per_edit(variants, SEEN_POLICIES_PER_EDIT)
    report["hatecheck_edits_seen_policies"] = _hatecheck_edits(
        items, seen_edited, score, limit // 4, threshold, rng
    )
    report["hatecheck_library"] = hatecheck_library(texts, score, threshold)
    for source in GROUP_HATE_SOURCES:
        report[f"{source}_not_about"] = not_about(texts, score, threshold, source)
    return report


def _seen_per_edit(variants: Sequence[PolicyVariant], per_edit: int) -> list[PolicyVariant]:
    """Up to ``per_edit`` seen edited hate policies for every edit, the first by id."""
    chosen: list[PolicyVariant] = []
    carried: dict[str, int] = {}
    for variant in sorted(variants, key=lambda v: v.variant_id):
        if variant.area != "hate" or variant.held_out or not variant.edits:
            continue
        keys = [edit.key for edit in variant.edits]
        if any(carried.get(key, 0) < per_edit for key in keys):
            chosen.append(variant)
            for key in keys:
                carried[key] = carried.get(key, 0) + 1
    return chosen


def _remembered(score: Scorer) -> Scorer:
    """``score`` that scores each distinct pair once, however often it is asked."""
    known: dict[tuple[str, str], float] = {}

    def remembered(pairs: Sequence[tuple[str, str]]) -> Sequence[float]:
        new = [pair for pair in dict.fromkeys(pairs) if pair not in known]
        if new:
            known.update(zip(new, score(new), strict=True))
        return [known[pair] for pair in pairs]

    return remembered


def _headlines(report: dict[str, Any]) -> dict[str, Any]:
    """The figures acceptance is judged on, from one report, at its threshold."""
    headlines = {
        "threshold": report["threshold"],
        "any_category_f1": report["openai_library"]["any_category"]["f1"],
        "seen_f1": report["wordings"]["seen"]["f1"],
        "unseen_f1": report["wordings"]["unseen"]["f1"],
        "held_out_area_f1": report["held_out_area"]["f1"],
    }
    for section in ("hatecheck_edits", "hatecheck_edit_probes", "hatecheck_edits_seen_policies"):
        if section in report:
            headlines[f"{section}_flip"] = report[section]["flip_accuracy"]
            headlines[f"{section}_kept"] = report[section]["kept_accuracy"]
            headlines[f"{section}_kept_lost_to_edit"] = report[section]["kept_lost_to_edit"]
    headlines["hatecheck_library_f1"] = report["hatecheck_library"]["f1"]
    headlines["hatecheck_library_accuracy"] = report["hatecheck_library"]["accuracy"]
    for source in GROUP_HATE_SOURCES:
        headlines[f"{source}_not_about_flagged"] = {
            area: section["flagged_share"]
            for area, section in report[f"{source}_not_about"].items()
        }
    return headlines
