"""The policies a batch is scored under: one immutable snapshot per batch.

Snapshots come from the registry reader (``from_registry``) or, without a
registry, from the shipped library with each policy at version 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from policy_registry import library_policy
from policy_registry.errors import CopeError
from policy_registry.records import RegistryState, VersionRecord
from policy_registry.store import RegistryReader, RegistrySnapshot
from worker.model.tokenize import sha256_text

__all__ = [
    "ActivePolicy",
    "PolicySnapshot",
    "RegistryPolicies",
    "as_of_snapshots",
    "library_snapshot",
    "pinned_snapshot",
]


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
    unusable: frozenset[str] = field(default_factory=frozenset)
    shadows: Mapping[str, ActivePolicy] = field(default_factory=dict)

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


class RegistryPolicies:
    """Snapshots of the registry's enforced versions, checked against the model.

    A version the model cannot read (too long for its window, say) is left out
    and named in ``unusable``, so events that ask for it become dead letters
    instead of failing their batch. Conversions are cached per registry
    snapshot, so a batch pays nothing when no policy changed.
    """

    def __init__(self, reader: RegistryReader, check: Callable[[str], object]) -> None:
        self.reader = reader
        self.check = check
        self._source: RegistrySnapshot | None = None
        self._converted = PolicySnapshot({})

    def __call__(self) -> PolicySnapshot:
        source = self.reader.snapshot()
        if source is not self._source:
            policies, unusable = self._usable(source.enforced)
            shadows, _ = self._usable(source.shadowed)
            self._converted = PolicySnapshot(policies, frozenset(unusable), shadows)
            self._source = source
        return self._converted

    def _usable(
        self, records: Mapping[str, VersionRecord]
    ) -> tuple[dict[str, ActivePolicy], set[str]]:
        usable, unusable = {}, set()
        for policy_id, record in records.items():
            try:
                self.check(record.text)
            except CopeError:
                unusable.add(policy_id)
                continue
            usable[policy_id] = _active(record)
        return usable, unusable


def _active(record: VersionRecord) -> ActivePolicy:
    return ActivePolicy(
        record.policy_id, record.version, record.text, record.sha256, record.threshold
    )


def pinned_snapshot(state: RegistryState, chosen: Mapping[str, int]) -> PolicySnapshot:
    """Exactly the named versions (a candidate, or an old version), whatever is active."""
    policies = {}
    for policy_id, version in chosen.items():
        record = state.version(policy_id, version)
        if record is None:
            raise CopeError(f"the registry has no {policy_id}@{version}")
        policies[policy_id] = _active(record)
    return PolicySnapshot(policies)


def as_of_snapshots(state: RegistryState) -> Callable[[int | None], PolicySnapshot]:
    """For an event time (ms), the versions that were active then, from each pointer's history.

    Snapshots are shared between events that saw the same versions, so callers
    can group events by the snapshot object they get.
    """
    cache: dict[tuple[tuple[str, int], ...], PolicySnapshot] = {}

    def at(timestamp_ms: int | None) -> PolicySnapshot:
        moment = None if timestamp_ms is None else datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        chosen = []
        for policy_id, pointer in sorted(state.pointers.items()):
            earlier = [a for a in pointer.history if moment is None or a.at <= moment]
            if earlier:
                chosen.append((policy_id, earlier[-1].version))
        key = tuple(chosen)
        if key not in cache:
            cache[key] = pinned_snapshot(state, dict(chosen))
        return cache[key]

    return at
