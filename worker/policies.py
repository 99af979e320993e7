"""The policies a batch is scored under: one immutable snapshot per batch.

Until the versioned registry lands, the snapshot comes from the shipped
library (each policy at version 1). The seam is this one type: the registry
reader will produce the same ``PolicySnapshot``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policy_registry import library_policy
from worker.model.tokenize import sha256_text

__all__ = ["ActivePolicy", "PolicySnapshot", "library_snapshot"]


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    """One policy version as it is enforced."""

    policy_id: str
    version: int
    text: str
    sha256: str
    threshold: float


@dataclass(frozen=True)
class PolicySnapshot:
    """Every enforced policy, fixed for the duration of one batch."""

    policies: Mapping[str, ActivePolicy]

    def get(self, policy_id: str) -> ActivePolicy | None:
        return self.policies.get(policy_id)

    def versions(self) -> dict[str, int]:
        return {policy_id: policy.version for policy_id, policy in self.policies.items()}


def library_snapshot(policy_ids: Iterable[str], threshold: float) -> PolicySnapshot:
    """Library policies as version 1 each, all under one decision threshold."""
    policies = {}
    for policy_id in policy_ids:
        text = library_policy(policy_id)
        policies[policy_id] = ActivePolicy(policy_id, 1, text, sha256_text(text), threshold)
    return PolicySnapshot(policies)
