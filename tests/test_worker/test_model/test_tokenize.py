from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from worker.errors import ModelError, PolicyTooLongError
from worker.model.tokenize import PairTokenizer, sha256_text


@pytest.fixture
def tokenizer(base_tokenizer_file: Path) -> PairTokenizer:
    return PairTokenizer(base_tokenizer_file, max_length=64, max_policy_tokens=24, window_stride=8)


def test_row_is_cls_policy_sep_content_sep(tokenizer: PairTokenizer) -> None:
    policy = tokenizer.encode_policy("no insults")
    [row] = tokenizer.rows([("no insults", "you are kind")])
    content = tokenizer._tokenizer.encode("you are kind", add_special_tokens=False).ids
    assert row.input_ids == (
        tokenizer.cls_id,
        *policy.ids,
        tokenizer.sep_id,
        *content,
        tokenizer.sep_id,
    )
    assert row.segment_split == len(policy.ids) + 2


def test_shipped_128_token_truncation_is_switched_off(tokenizer: PairTokenizer) -> None:
    text = " ".join(["word"] * 300)
    assert tokenizer.count_tokens(text) == 300


def test_long_content_is_split_into_overlapping_windows_covering_every_token(
    tokenizer: PairTokenizer,
) -> None:
    policy = tokenizer.encode_policy("no insults")
    content = list(range(1000, 1000 + 200))
    room = 64 - len(policy.ids) - 3
    windows = tokenizer.content_windows(policy, content)
    assert len(windows) > 1
    assert all(len(window) <= room for window in windows)
    assert windows[0][0] == content[0]
    assert windows[-1][-1] == content[-1]
    for before, after in itertools.pairwise(windows):
        assert before[-8:] == after[:8]  # the stride is shared between neighbours
    covered = {token for window in windows for token in window}
    assert covered == set(content)


def test_each_window_becomes_a_row_of_the_same_pair(tokenizer: PairTokenizer) -> None:
    rows = tokenizer.rows([("no insults", "short"), ("no insults", "long " * 150)])
    assert [row.pair_index for row in rows].count(0) == 1
    assert [row.pair_index for row in rows].count(1) > 1
    assert all(len(row.input_ids) <= 64 for row in rows)


def test_content_that_fits_is_one_window(tokenizer: PairTokenizer) -> None:
    policy = tokenizer.encode_policy("no insults")
    assert tokenizer.content_windows(policy, [1, 2, 3]) == [(1, 2, 3)]
    assert tokenizer.content_windows(policy, []) == [()]


def test_policy_too_long_is_rejected_with_its_count_and_the_limit(
    tokenizer: PairTokenizer,
) -> None:
    with pytest.raises(PolicyTooLongError) as caught:
        tokenizer.encode_policy("forbidden " * 30)
    assert caught.value.token_count == 30
    assert caught.value.limit == 24
    assert "30 tokens" in str(caught.value)
    assert "at most 24" in str(caught.value)


def test_policy_is_tokenized_once_and_reused(tokenizer: PairTokenizer) -> None:
    first = tokenizer.encode_policy("no insults")
    assert tokenizer.encode_policy("no insults") is first
    assert first.sha256 == sha256_text("no insults")


def test_policy_budget_must_leave_room_for_content(base_tokenizer_file: Path) -> None:
    with pytest.raises(ModelError, match="leaves no content room"):
        PairTokenizer(base_tokenizer_file, max_length=32, max_policy_tokens=29, window_stride=0)


def test_unreadable_tokenizer_file_is_a_model_error(tmp_path: Path) -> None:
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    with pytest.raises(ModelError, match="cannot load tokenizer"):
        PairTokenizer(broken, max_length=64, max_policy_tokens=24, window_stride=8)
