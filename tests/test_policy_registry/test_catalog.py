from __future__ import annotations

import re
from pathlib import Path

import pytest

from policy_registry import CopeError, UnknownPolicyError, library_ids, library_policy

REQUIRED = {
    "sexual", "hate", "violence", "harassment", "self-harm", "sexual-minors",
    "hate-threatening", "violence-graphic", "offensive-language",
}  # fmt: skip
SECTIONS = [
    "## Overview",
    "## Definition of Terms",
    "## Interpretation of Language",
    "## Definition of Labels",
    "#### Includes",
    "#### Excludes",
]


def test_the_library_ships_every_required_policy() -> None:
    assert set(library_ids()) >= REQUIRED
    assert "README" not in library_ids()


@pytest.mark.parametrize("policy_id", sorted(REQUIRED))
def test_each_policy_is_cope_format_with_exactly_one_label(policy_id: str) -> None:
    text = library_policy(policy_id)
    assert text.startswith("# Criteria") or text.startswith("# Policy")
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert len(re.findall(r"^### \([A-Z0-9]+\): \S", text, flags=re.MULTILINE)) == 1
    assert re.search(r"\*\*[^*]+\*\*", text)  # defined terms are bold


@pytest.mark.parametrize("policy_id", sorted(REQUIRED))
def test_each_policy_leaves_room_for_content_in_a_512_token_window(
    policy_id: str, base_tokenizer_file: Path
) -> None:
    from worker.model.tokenize import PairTokenizer

    tokenizer = PairTokenizer(
        base_tokenizer_file, max_length=512, max_policy_tokens=400, window_stride=64
    )
    assert tokenizer.count_tokens(library_policy(policy_id)) <= 300


def test_an_unknown_id_is_a_clear_error_under_the_project_root() -> None:
    with pytest.raises(UnknownPolicyError, match="no library policy 'nope'; known: ") as caught:
        library_policy("nope")
    assert isinstance(caught.value, CopeError)


@pytest.mark.parametrize("hostile", ["../worker/cli", "/etc/passwd", "README", ""])
def test_ids_cannot_escape_the_library(hostile: str) -> None:
    with pytest.raises(UnknownPolicyError):
        library_policy(hostile)
