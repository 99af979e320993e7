"""Scoring a training batch's pairs, and the terms that compare pairs with each other.

Kept apart from the loop because each term is a claim about what reading a
policy means: a flip and its twin must be ranked apart (``twin_loss``), and
a text an edit does not speak of must not move toward the wrong label
(``anchor_loss``), so that "a policy with an exclusion flags less" never pays.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

from worker.model.dataset import Pair
from worker.model.runtime import pad_batch
from worker.model.tokenize import TokenRow

__all__ = ["anchor_loss", "kept_anchors", "pair_logits", "row_passes", "twin_loss"]


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


def kept_anchors(
    chosen: Sequence[Pair], flipped: Sequence[bool], unedited: dict[str, str]
) -> dict[int, str]:
    """Batch positions of pairs under an edited policy whose label the edit kept,
    each with the id of that policy's unedited twin."""
    return {
        position: unedited[pair.policy_id]
        for position, (pair, was_flipped) in enumerate(zip(chosen, flipped, strict=True))
        if not was_flipped and pair.policy_id in unedited
    }


def anchor_loss(
    chosen: Sequence[Pair], indices: Sequence[int], logits: Any, references: dict[int, Any]
) -> Any:
    """How far an edit moved each anchored pair toward the wrong label, from its fixed
    reference (the same text under the unedited policy): smooth L1, as a share of the
    batch's anchors.

    One-sided: a hateful text an exclusion leaves alone may not fall below
    where the plain policy puts it, but may rise. The two-sided pull of the
    0.22.0 candidate (weight 1) was met by ignoring edits altogether: flips
    fell to 0.22. The reference carries no gradient, so the edit cannot
    drag the plain policy along.
    """
    import torch

    held = [(i, position) for i, position in enumerate(indices) if position in references]
    if not held:
        return logits.sum() * 0.0
    scored = logits[[i for i, _ in held]]
    fixed = torch.stack([references[position] for _, position in held]).detach().to(scored)
    toward_label = torch.tensor(
        [1.0 if chosen[position].label else -1.0 for _, position in held], device=scored.device
    )
    shortfall = torch.relu(toward_label * (fixed - scored))
    distance = torch.nn.functional.smooth_l1_loss(
        shortfall, torch.zeros_like(shortfall), reduction="sum"
    )
    return distance / len(references)
