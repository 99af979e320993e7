"""The pure batch step: raw records and a policy snapshot in, labels and dead letters out.

No Kafka here (the consumers hand records in and produce what comes out), so
the whole decision logic is testable without a broker. Bad input is a value:
each record that cannot be decoded or validated becomes a dead letter with a
machine-readable reason; the batch goes on.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from worker.model.runtime import Classifier
from worker.policies import ActivePolicy, PolicySnapshot
from worker.schemas import (
    ContentEvent,
    DeadLetter,
    DeadLetterReason,
    LabelRecord,
    ModelRef,
    PolicyResult,
    SourceCoordinates,
)

__all__ = ["BatchOutcome", "RawRecord", "process_batch"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed record as bytes, with its coordinates and arrival time."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    received_at: float  # time.monotonic() when consumed

    def coordinates(self) -> SourceCoordinates:
        return SourceCoordinates(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            timestamp_ms=self.timestamp_ms,
        )


@dataclass
class BatchOutcome:
    """What one batch produces: labels (key, value) and dead letters (key, value)."""

    labels: list[tuple[bytes, bytes]] = field(default_factory=list)
    shadow_labels: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    rejections: list[tuple[SourceCoordinates, DeadLetterReason, str | None]] = field(
        default_factory=list
    )
    pairs: int = 0


@dataclass(frozen=True, slots=True)
class _Rejection:
    reason: DeadLetterReason
    detail: str
    content_id: str | None = None  # known once the event itself parsed


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _parse(
    record: RawRecord,
    snapshot: PolicySnapshot,
    default_policy_ids: Sequence[str],
    max_text_chars: int,
) -> tuple[ContentEvent, list[ActivePolicy]] | _Rejection:
    """The event and its policies, or why it must become a dead letter."""
    if record.value is None:
        return _Rejection("invalid_event", "record has no value (tombstone)")
    try:
        decoded = record.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Rejection("bad_utf8", f"value is not UTF-8: {exc}")
    try:
        raw = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return _Rejection("bad_json", f"value is not JSON: {exc}")
    try:
        event = ContentEvent.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
        return _Rejection("invalid_event", problems)
    if len(event.text) > max_text_chars:
        return _Rejection(
            "oversized_text",
            f"text has {len(event.text)} characters; limit {max_text_chars}",
            event.id,
        )
    wanted = event.policy_ids if event.policy_ids is not None else list(default_policy_ids)
    unusable = [policy_id for policy_id in wanted if policy_id in snapshot.unusable]
    if unusable:
        return _Rejection(
            "policy_unusable",
            f"policy versions the model cannot read: {', '.join(unusable)}",
            event.id,
        )
    unknown = [policy_id for policy_id in wanted if snapshot.get(policy_id) is None]
    if unknown:
        return _Rejection("unknown_policy", f"unknown policy ids: {', '.join(unknown)}", event.id)
    if not wanted:
        return _Rejection("invalid_event", "no policies to apply (policy_ids is empty)", event.id)
    return event, [policy for pid in wanted if (policy := snapshot.get(pid)) is not None]


def _result(policy: ActivePolicy, score: float) -> PolicyResult:
    return PolicyResult(
        policy_id=policy.policy_id,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
        score=score,
        decision=score >= policy.threshold,
        threshold=policy.threshold,
    )


def process_batch(
    records: Sequence[RawRecord],
    snapshot: PolicySnapshot,
    classifier: Classifier,
    model: ModelRef,
    *,
    default_policy_ids: Sequence[str],
    max_text_chars: int,
    clock: Callable[[], float] = time.monotonic,
) -> BatchOutcome:
    """Score every valid record under its policies; dead-letter the rest."""
    outcome = BatchOutcome()
    accepted: list[tuple[RawRecord, ContentEvent, list[ActivePolicy]]] = []
    for record in records:
        parsed = _parse(record, snapshot, default_policy_ids, max_text_chars)
        if not isinstance(parsed, _Rejection):
            accepted.append((record, *parsed))
            continue
        letter = DeadLetter(
            reason=parsed.reason,
            detail=parsed.detail,
            source=record.coordinates(),
            original_key_b64=_b64(record.key),
            original_value_b64=_b64(record.value),
        )
        outcome.dead_letters.append((record.key, letter.model_dump_json().encode()))
        outcome.rejections.append((letter.source, parsed.reason, parsed.content_id))

    # Shadow versions are scored in the same model call, but their results go to
    # separate records: they never enter the enforced labels.
    plans = [
        (record, event, policies, [s for p in policies if (s := snapshot.shadows.get(p.policy_id))])
        for record, event, policies in accepted
    ]
    pairs = [
        (policy.text, event.text)
        for _, event, policies, shadows in plans
        for policy in (*policies, *shadows)
    ]
    scores = iter(classifier.predict(pairs).tolist()) if pairs else iter(())
    outcome.pairs = len(pairs)
    for record, event, policies, shadows in plans:
        results = [_result(policy, next(scores)) for policy in policies]
        shadow_results = [_result(policy, next(scores)) for policy in shadows]
        latency_ms = (clock() - record.received_at) * 1000.0
        key = event.id.encode("utf-8")
        for sink, found in ((outcome.labels, results), (outcome.shadow_labels, shadow_results)):
            if found:
                label = LabelRecord(
                    content_id=event.id,
                    results=found,
                    model=model,
                    source=record.coordinates(),
                    metadata=event.metadata,
                    latency_ms=round(latency_ms, 3),
                )
                sink.append((key, label.model_dump_json().encode()))
    return outcome
