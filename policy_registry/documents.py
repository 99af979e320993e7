"""CoPE policy documents: parse the Markdown and refuse what the model cannot use.

A policy is checked before anyone can enforce it, with every problem named in
one message: the classifier was trained on this structure, one label per
policy, and a policy that does not fit its window cannot be scored at all.
The token count comes from a callable, so this package needs no model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from policy_registry.errors import PolicyError

__all__ = ["REQUIRED_SECTIONS", "PolicyDocument", "PolicyValidationError", "parse_policy"]

REQUIRED_SECTIONS = (
    "Overview",
    "Definition of Terms",
    "Interpretation of Language",
    "Definition of Labels",
)
_TITLE = re.compile(r"^# (Criteria|Policy)\s*$", re.MULTILINE)
_SECTION = re.compile(r"^## (.+?)\s*$", re.MULTILINE)
_LABEL = re.compile(r"^### \(([A-Za-z0-9_-]+)\):\s*(\S.*?)\s*$", re.MULTILINE)
_INCLUDES = re.compile(r"^#### Includes\s*$", re.MULTILINE)


class PolicyValidationError(PolicyError):
    """A policy is not a usable CoPE policy; ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("policy rejected: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PolicyDocument:
    """A validated policy and its single label."""

    text: str
    label_code: str
    label_name: str


def parse_policy(
    text: str,
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> PolicyDocument:
    """Validate CoPE structure (and size, given a counter); every problem is reported."""
    problems = []
    if not text.strip():
        raise PolicyValidationError(["the policy is empty"])
    if not _TITLE.search(text):
        problems.append("no '# Criteria' (or '# Policy') title")
    sections = {match.group(1) for match in _SECTION.finditer(text)}
    missing = [name for name in REQUIRED_SECTIONS if name not in sections]
    if missing:
        problems.append("missing sections: " + ", ".join(f"'## {name}'" for name in missing))
    labels = _LABEL.findall(text)
    if not labels:
        problems.append("no label (expected one '### (CODE): Name' heading)")
    elif len(labels) > 1:
        codes = ", ".join(code for code, _ in labels)
        problems.append(f"{len(labels)} labels ({codes}); a policy defines exactly one")
    if labels and not _INCLUDES.search(text):
        problems.append("the label has no '#### Includes' list")
    if count_tokens is not None and max_tokens is not None:
        tokens = count_tokens(text)
        if tokens > max_tokens:
            problems.append(f"policy is {tokens} tokens; the model accepts at most {max_tokens}")
    if problems:
        raise PolicyValidationError(problems)
    code, name = labels[0]
    return PolicyDocument(text=text, label_code=code, label_name=name)
