from __future__ import annotations

import pytest

from policy_registry import library_ids, library_policy
from policy_registry.documents import PolicyValidationError, parse_policy

GOOD = """# Criteria

## Overview
Flags spam.

## Definition of Terms
- **Spam**: unsolicited advertising.

## Interpretation of Language
- Read links as advertising when they sell.

## Definition of Labels

### (SP): Spam

#### Includes
- **Ads**: unsolicited offers.

#### Excludes
- **Requested info**: answers to a question.
"""


@pytest.mark.parametrize("policy_id", library_ids())
def test_every_library_policy_is_valid(policy_id: str) -> None:
    document = parse_policy(library_policy(policy_id))
    assert document.label_code.isupper()


def test_a_good_policy_yields_its_label() -> None:
    document = parse_policy(GOOD)
    assert (document.label_code, document.label_name) == ("SP", "Spam")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD.replace("# Criteria", "# Rules"), "no '# Criteria'"),
        (GOOD.replace("## Overview", "## Summary"), "missing sections: '## Overview'"),
        (GOOD.replace("### (SP): Spam", "### Spam"), "no label"),
        (GOOD + "\n### (AD): Ads\n", "2 labels (SP, AD)"),
        (GOOD.replace("#### Includes", "#### Covers"), "no '#### Includes'"),
        ("   \n", "the policy is empty"),
    ],
)
def test_a_malformed_policy_is_rejected_saying_why(text: str, problem: str) -> None:
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(text)
    assert problem in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    broken = GOOD.replace("# Criteria", "").replace("## Overview", "").replace("### (SP)", "###")
    with pytest.raises(PolicyValidationError) as caught:
        parse_policy(broken)
    assert len(caught.value.problems) == 3


def test_a_policy_over_the_token_limit_gives_count_and_limit() -> None:
    with pytest.raises(
        PolicyValidationError, match="policy is 120 tokens; the model accepts at most 100"
    ):
        parse_policy(GOOD, count_tokens=lambda text: 120, max_tokens=100)
    assert parse_policy(GOOD, count_tokens=lambda text: 100, max_tokens=100)
