"""Replay a time range of the content topic under chosen policy versions, for audits.

The range's end offsets are fixed when the run starts, so a replay always ends
however busy the topic is. Partitions are assigned directly: no consumer
group, no committed offsets, nothing the live workers would notice. Labels
use the live schema plus the run id, go to a JSONL file, and a manifest beside
it records everything needed to repeat the run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from worker.errors import CopeError
from worker.model.runtime import Classifier
from worker.observability import Progress
from worker.pipeline import RawRecord, process_batch
from worker.policies import PolicySnapshot
from worker.schemas import ModelRef
from worker.settings import Settings

__all__ = ["ReplayRange", "replay_to_jsonl", "resolve_range"]

SnapshotAt = Callable[[int | None], PolicySnapshot]  # event timestamp (ms) -> policies


@dataclass(frozen=True)
class ReplayRange:
    """Per partition, the offsets [start, end) to replay."""

    topic: str
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(end - start for start, end in self.offsets.values())


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"cope-replay-{uuid.uuid4().hex[:8]}",  # assign() never joins it
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **settings.kafka_options,
        }
    )


def resolve_range(
    settings: Settings,
    start_ms: int | None,
    end_ms: int | None,
    partitions: list[int] | None = None,
) -> ReplayRange:
    """Offsets for [start_ms, end_ms) of the content topic, capped at today's end."""
    consumer = _consumer(settings)
    try:
        topic = settings.content_topic
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise CopeError(f"content topic {topic} does not exist")
        chosen = sorted(metadata.partitions) if partitions is None else partitions
        unknown = set(chosen) - set(metadata.partitions)
        if unknown:
            raise CopeError(f"{topic} has no partition(s) {sorted(unknown)}")
        offsets = {}
        for partition in chosen:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            start = _offset_at(consumer, topic, partition, start_ms, default=low, high=high)
            end = _offset_at(consumer, topic, partition, end_ms, default=high, high=high)
            offsets[partition] = (start, max(start, end))
        return ReplayRange(topic, offsets)
    finally:
        consumer.close()


def _offset_at(
    consumer: Consumer, topic: str, partition: int, when_ms: int | None, *, default: int, high: int
) -> int:
    """First offset at or after a time; the end offset when no record is that late."""
    if when_ms is None:
        return default
    [found] = consumer.offsets_for_times([TopicPartition(topic, partition, when_ms)], 10)
    return high if found.offset < 0 else min(found.offset, high)


def _records(settings: Settings, window: ReplayRange) -> Iterator[list[RawRecord]]:
    """Batches of the range's records, each partition read up to its fixed end."""
    consumer = _consumer(settings)
    remaining = {p: (s, e) for p, (s, e) in window.offsets.items() if e > s}
    consumer.assign(
        [
            TopicPartition(window.topic, p, s if s >= 0 else OFFSET_BEGINNING)
            for p, (s, _) in remaining.items()
        ]
    )
    try:
        while remaining:
            batch = []
            for message in consumer.consume(num_messages=settings.batch_max_events, timeout=1):
                partition, offset = message.partition() or 0, message.offset() or 0
                if message.error() is not None or partition not in remaining:
                    continue
                _, end = remaining[partition]
                if offset >= end:
                    continue
                _, timestamp = message.timestamp()
                batch.append(
                    RawRecord(
                        window.topic,
                        partition,
                        offset,
                        timestamp if timestamp > 0 else None,
                        message.key(),
                        message.value(),
                        time.monotonic(),
                    )
                )
                if offset + 1 >= end:
                    del remaining[partition]
            if batch:
                yield batch
    finally:
        consumer.close()


def replay_to_jsonl(
    settings: Settings,
    window: ReplayRange,
    classifier: Classifier,
    model: ModelRef,
    snapshot_at: SnapshotAt,
    out: Path,
    description: dict[str, Any],
) -> dict[str, Any]:
    """Label every record of the range into `out`; write and return the run manifest."""
    run_id = f"replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    counts = {"events": 0, "labels": 0, "dead_letters": 0}
    versions: dict[str, set[int]] = {}
    progress = Progress(window.count(), "replayed")
    began = time.monotonic()
    with out.open("w", encoding="utf-8") as handle:
        for batch in _records(settings, window):
            groups: dict[int, list[RawRecord]] = {}
            for record in batch:  # one snapshot per group of records sharing their policies
                snapshot = snapshot_at(record.timestamp_ms)
                groups.setdefault(id(snapshot), []).append(record)
                for policy in snapshot.policies.values():
                    versions.setdefault(policy.policy_id, set()).add(policy.version)
            for records in groups.values():
                snapshot = snapshot_at(records[0].timestamp_ms)
                outcome = process_batch(
                    records,
                    snapshot,
                    classifier,
                    model,
                    default_policy_ids=settings.default_policy_ids,
                    max_text_chars=settings.max_text_chars,
                )
                for _, value in outcome.labels:
                    handle.write(json.dumps({**json.loads(value), "replay_run_id": run_id}) + "\n")
                counts["labels"] += len(outcome.labels)
                counts["dead_letters"] += len(outcome.dead_letters)
            counts["events"] += len(batch)
            progress.advance(len(batch))
    progress.close()
    manifest = {
        "run_id": run_id,
        **description,
        "topic": window.topic,
        "offsets": {str(p): {"start": s, "end": e} for p, (s, e) in window.offsets.items()},
        "model": model.model_dump(),
        "policy_versions": {p: sorted(v) for p, v in sorted(versions.items())},
        "counts": counts,
        "seconds": round(time.monotonic() - began, 3),
        "output": str(out),
    }
    out.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
