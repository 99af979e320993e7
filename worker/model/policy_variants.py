"""Policies as data: hundreds of generated policy texts with known labels.

A model trained under a dozen fixed policies learns each policy's base rate,
not how to read one. Here every harm area is rendered many times, in
different wordings, orders, lengths and include/exclude edits, and each
variant knows the label it gives every labelled text, so training sees the
same content under many policies and must read them. Some wordings of every
area, and every variant of the held-out areas, never reach training: they
measure how the model does on policies it has never seen.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from worker.errors import ModelError
from worker.model.dataset import LabelledText, Pair, split_of
from worker.model.harm_areas import HARM_AREAS, INTERPRETATION_LINES, Clause, Edit, HarmArea

__all__ = [
    "HELD_OUT_AREAS",
    "PolicyVariant",
    "edit_probes",
    "generate_variants",
    "unedited_id",
    "variant_pairs",
]

HELD_OUT_AREAS = ("privacy",)
HELD_OUT_WORDING_SHARE = 0.2
_Attempt = tuple[tuple[Edit, ...], random.Random]  # one render's edits and random source


def unedited_id(variant_id: str) -> str:
    """The id of a variant's unedited twin (``PolicyVariant.unedited``)."""
    return f"{variant_id}-unedited"


@dataclass(frozen=True)
class PolicyVariant:
    """One generated policy of a harm area, and whether training may see it."""

    variant_id: str
    area: str
    text: str
    edits: tuple[Edit, ...]
    held_out: bool

    def label_for(self, item: LabelledText) -> int | None:
        """The label this policy gives ``item``; ``None`` where it is not known."""
        decided = self.labelling(item)
        return None if decided is None else decided[0]

    def labelling(self, item: LabelledText) -> tuple[int, str] | None:
        """The label and the key of the edit that set it (``""``: the area's own).

        An include can only turn a negative positive and an exclude only a
        positive negative, so an edit never touches texts it does not speak of.
        """
        base = item.labels.get(self.area)
        if base is None:
            return None
        label, decided_by = base, ""
        for edit in self.edits:
            if (edit.section == "includes") != (base == 0):
                continue
            for trait in item.traits:
                if trait in edit.relabel:
                    changed = edit.relabel[trait]
                    if changed is None:
                        return None
                    label, decided_by = changed, edit.key
        return label, decided_by

    def unedited(self) -> PolicyVariant:
        """This policy in the same wording with its edits' clauses taken out.

        The fair reference for what an edit does: against another policy
        (the library's) the wording differs too, so a move can be the
        wording's. A clause the edit replaced is not put back, so the twin is
        never longer than the policy and fits the model wherever it does;
        the area's overview still gives the twin the base label.
        """
        if not self.edits:
            return self
        bullets = {
            f"- **{name}**: {wording}"
            for edit in self.edits
            for name in edit.clause.names
            for wording in edit.clause.wordings
        }
        lines = [line for line in self.text.splitlines() if line not in bullets]
        if lines[-1] == "#### Excludes":  # the edits were its only items
            lines = lines[:-2]
        text = "\n".join(lines) + "\n"
        return PolicyVariant(unedited_id(self.variant_id), self.area, text, (), self.held_out)


def _bullet(clause: Clause, rng: random.Random) -> str:
    return f"- **{rng.choice(clause.names)}**: {rng.choice(clause.wordings)}"


def _render(spec: HarmArea, edits: Sequence[Edit], rng: random.Random) -> str:
    """A CoPE-format policy: the area's meaning in a wording drawn from ``rng``."""
    short = rng.random() < 0.25
    code, name = rng.choice(spec.labels)
    contradicted = [sentence for edit in edits for sentence in edit.contradicts]

    def agrees(line: str) -> bool:
        return not any(sentence in line for sentence in contradicted)

    replaced = {edit.replaces for edit in edits}
    includes = [_bullet(clause, rng) for clause in spec.includes if clause.names[0] not in replaced]
    excludes = [
        _bullet(clause, rng)
        for clause in spec.excludes
        if clause.names[0] not in replaced and not (short and rng.random() < 0.5)
    ]
    for edit in edits:
        (includes if edit.section == "includes" else excludes).append(_bullet(edit.clause, rng))
    rng.shuffle(includes)
    rng.shuffle(excludes)
    terms = rng.sample(spec.terms, 1 if short else rng.randint(1, len(spec.terms)))
    own_lines = [line for line in spec.interpretation if agrees(line)]
    interpretation = rng.sample(own_lines, rng.randint(1, len(own_lines)))
    if not short:
        interpretation += rng.sample(
            [line for line in INTERPRETATION_LINES if agrees(line)], rng.randint(0, 3)
        )
    heading = rng.choice(("Criteria", "Policy"))
    overview = rng.choice(spec.overviews)
    for sentence in contradicted:
        overview = overview.replace(sentence, "").strip()
    lines = [
        f"# {heading}",
        "",
        "## Overview",
        overview,
        "",
        "## Definition of Terms",
        *terms,
        "",
        "## Interpretation of Language",
        *(f"- {line}" for line in interpretation),
        "",
        "## Definition of Labels",
        "",
        f"### ({code}): {name}",
        "",
        "#### Includes",
        *includes,
    ]
    if excludes:
        lines += ["", "#### Excludes", *excludes]
    return "\n".join(lines) + "\n"


def _held_out_wording(variant_id: str, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{variant_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 0xFFFFFFFF < HELD_OUT_WORDING_SHARE


def _distinct_renders(
    spec: HarmArea,
    count: int,
    draw: Callable[[int], _Attempt],
    taken: set[str],
    fits: Callable[[str], bool] | None,
) -> Iterator[tuple[tuple[Edit, ...], str]]:
    """Up to ``count`` renders of ``spec``, none already in ``taken`` (which grows),
    each within the budget ``fits`` checks; ``draw(attempt)`` gives the edits
    and the random source of an attempt, and attempts stop at 20 per render.
    """
    made = attempts = 0
    while made < count and attempts < count * 20:
        attempts += 1
        edits, rng = draw(attempts)
        text = _render(spec, edits, rng)
        if text in taken or (fits is not None and not fits(text)):
            continue
        taken.add(text)
        made += 1
        yield edits, text


def generate_variants(
    per_area: int = 40,
    seed: int = 0,
    held_out_areas: Iterable[str] = HELD_OUT_AREAS,
    edit_probability: float = 0.35,
    fits: Callable[[str], bool] | None = None,
) -> list[PolicyVariant]:
    """``per_area`` distinct policies for every harm area, reproducible from ``seed``.

    ``fits`` says whether a text fits the model's policy budget; renders that
    do not are skipped, so every variant can be scored.
    """
    held_areas = set(held_out_areas)
    variants: list[PolicyVariant] = []
    seen_texts: set[str] = set()
    for area, spec in sorted(HARM_AREAS.items()):

        def draw(attempt: int, area: str = area, spec: HarmArea = spec) -> _Attempt:
            rng = random.Random(f"{seed}:{area}:{attempt}")
            # shuffled before the cut, so an edit late in the list is carried as often
            carried = [edit for edit in spec.edits if rng.random() < edit_probability]
            rng.shuffle(carried)
            return tuple(carried[:2]), rng

        renders = _distinct_renders(spec, per_area, draw, seen_texts, fits)
        for index, (edits, text) in enumerate(renders):
            variant_id = f"{area}/{index:03d}"
            held = area in held_areas or _held_out_wording(variant_id, seed)
            variants.append(PolicyVariant(variant_id, area, text, edits, held))
    return variants


def edit_probes(
    area: str,
    per_edit: int,
    avoid: Iterable[str],
    seed: int = 0,
    fits: Callable[[str], bool] | None = None,
) -> list[PolicyVariant]:
    """``per_edit`` held-out policies of ``area`` for each of its edits, carrying it alone.

    The held-out share of ``generate_variants`` leaves each edit one or two
    wordings, too few to tell what a model reads from what one wording
    happens to say. Probes are drawn apart from the generated policies (no
    text in ``avoid``) and carry one edit each, so a flip is that edit's doing.
    """
    if per_edit < 0 or area not in HARM_AREAS:
        raise ModelError(
            f"probes need a known area and a count of at least 0, got {area!r}, {per_edit}"
        )
    spec = HARM_AREAS[area]
    taken = set(avoid)
    probes: list[PolicyVariant] = []
    for edit in spec.edits:

        def draw(attempt: int, edit: Edit = edit) -> _Attempt:
            return (edit,), random.Random(f"probe:{seed}:{edit.key}:{attempt}")

        renders = _distinct_renders(spec, per_edit, draw, taken, fits)
        for index, (edits, text) in enumerate(renders):
            probes.append(
                PolicyVariant(f"{area}/probe-{edit.key}-{index:02d}", area, text, edits, True)
            )
    return probes


def variant_pairs(
    texts: Iterable[LabelledText],
    variants: Sequence[PolicyVariant],
    split: str,
    *,
    held_out: bool,
    per_text: int = 2,
    seed: int = 0,
    carriers_per_edit: int = 1,
) -> list[Pair]:
    """Pairs of one content split under seen (or held-out) generated policies.

    Each text goes under ``per_text`` random variants of every area it is
    labelled for, plus ``carriers_per_edit`` variants carrying each edit that
    speaks of it, so the cases an edit flips are always represented. With one
    carrier a flipped text is tied to one policy, which a model can memorise;
    several make it read the edit's clause, the one thing they share.
    """
    if carriers_per_edit < 1:
        raise ModelError(f"carriers per edit must be at least 1, got {carriers_per_edit}")
    by_area: dict[str, list[PolicyVariant]] = {}
    for variant in variants:
        if variant.held_out == held_out:
            by_area.setdefault(variant.area, []).append(variant)
    pairs: list[Pair] = []
    for item in texts:
        if not item.text or split_of(item.content_id) != split:
            continue
        rng = random.Random(f"{seed}:{item.content_id}")
        for area in sorted(item.labels):
            pool = by_area.get(area, [])
            if not pool:
                continue
            chosen = rng.sample(pool, min(per_text, len(pool)))
            for edit in HARM_AREAS[area].edits:
                if item.traits & edit.relabel.keys():
                    carriers = [variant for variant in pool if edit in variant.edits]
                    if not carriers:  # few variants: none of this split carries the edit
                        continue
                    chosen.append(rng.choice(carriers))  # drawn alone first: seeds' pairs stay
                    others = [variant for variant in carriers if variant not in chosen]
                    chosen += rng.sample(others, min(carriers_per_edit - 1, len(others)))
            for variant in dict.fromkeys(chosen):
                label = variant.label_for(item)
                if label is not None:
                    pairs.append(
                        Pair(variant.variant_id, item.content_id, item.text, label, item.source)
                    )
    return pairs
