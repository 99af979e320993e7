"""The pair scoring and the terms that compare a batch's pairs with each other."""

from __future__ import annotations

from pathlib import Path

from worker.model.dataset import Pair


def test_the_twin_ranking_loss_pushes_only_the_twins_apart() -> None:
    import torch

    from worker.model.dataset import Pair
    from worker.model.pair_losses import twin_loss
    from worker.model.sampling import twin_positions

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


def test_a_batch_of_long_texts_is_split_into_passes_of_bounded_windows(
    base_tokenizer_file: Path,
) -> None:
    from worker.model.pair_losses import row_passes
    from worker.model.tokenize import PairTokenizer

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


def test_kept_anchors_are_the_pairs_an_edit_left_alone() -> None:
    from worker.model.pair_losses import kept_anchors

    chosen = [
        Pair("hate/001", "c1", "a threat", 0, "hatecheck"),  # flipped by its exclusion
        Pair("hate/001", "c2", "an insult", 1, "hatecheck"),  # same policy, left alone
        Pair("hate/002", "c3", "another", 1, "hatecheck"),  # a policy without edits
        Pair("hate/001-unedited", "c2", "an insult", 1, "hatecheck"),  # the twin itself
    ]
    unedited = {"hate/001": "hate/001-unedited"}
    assert kept_anchors(chosen, [True, False, False, False], unedited) == {1: "hate/001-unedited"}
    assert kept_anchors(chosen, [True, False, False, False], {}) == {}


def test_the_anchor_pulls_back_only_scores_an_edit_moved_toward_the_wrong_label() -> None:
    import torch

    from worker.model.pair_losses import anchor_loss

    chosen = [
        Pair("hate/001", "c0", "plain draw", 0, "hatecheck"),
        Pair("hate/001", "c1", "hateful, left alone", 1, "hatecheck"),
        Pair("hate/001", "c2", "plain draw", 1, "hatecheck"),
        Pair("hate/001", "c3", "hateful, raised", 1, "hatecheck"),
        Pair("hate/001", "c4", "benign, raised", 0, "hatecheck"),
    ]
    logits = torch.tensor([-3.0, 0.5, 2.0, 6.0, 1.0], requires_grad=True)
    reference = torch.tensor(2.0, requires_grad=True)
    references = {1: reference, 3: torch.tensor(4.0), 4: torch.tensor(-1.0)}
    loss = anchor_loss(chosen, [0, 1, 2, 3, 4], logits, references)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[1] < 0  # descent raises the hateful text the edit pushed down
    assert logits.grad[3] == 0  # moved toward its label: free
    assert logits.grad[4] > 0  # descent lowers the benign text the edit pushed up
    assert logits.grad[0] == logits.grad[2] == 0  # not anchored
    assert reference.grad is None  # the reference is not dragged along
    assert loss.item() > 0
    half = anchor_loss(chosen, [0, 2], logits[[0, 2]], references)
    assert half.item() == 0.0  # no anchored pair in this pass
    far = torch.tensor([0.0, -8.0, 0.0, 4.0, -1.0])
    assert (
        3.0 < anchor_loss(chosen, [0, 1, 2, 3, 4], far, references).item() < 3.2
    )  # (10 - 0.5) / 3
