"""Replay a time range of the content topic under chosen policy versions, for audits.

The range's end offsets are fixed when the run starts, so a replay always ends
however busy the topic is. Partitions are assigned directly: no consumer
group, no committed offsets, nothing the live workers would notice. Labels
use the live schema plus the run id and go to a sink (a JSONL file or a new
topic named for the run, see ``replay_sinks``); a manifest records everything
needed to repeat the run.
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

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from worker.consumers.kafka import filled_partitions, reader_config
from worker.consumers.replay_sinks import JsonlSink, LabelSink
from worker.errors import CopeError
from worker.model.runtime import Classifier
from worker.observability import Progress
from worker.pipeline import RawRecord, process_batch
from worker.policies import PolicySnapshot
from worker.schemas import ModelRef
from worker.settings import Settings

__all__ = [
    "ReplayRange",
    "fetch_record",
    "new_run_id",
    "read_label_topic",
    "replay",
    "replay_to_jsonl",
    "resolve_range",
]

SnapshotAt = Callable[[int | None], PolicySnapshot]  # event timestamp (ms) -> policies


@dataclass(frozen=True)
class ReplayRange:
    """Per partition, the offsets [start, end) to replay."""

    topic: str
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(end - start for start, end in self.offsets.values())


def _consumer(settings: Settings) -> Consumer:
    return Consumer(reader_config(settings, "replay"))


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


def _read_until(
    consumer: Consumer, topic: str, ends: dict[int, int], max_messages: int, stall_s: float = 60.0
) -> Iterator[list[Message]]:
    """Batches of data records below each partition's end offset, until every end is reached.

    Ends are judged by the consumer's position, not by the last record seen:
    transaction markers take offsets too, so a transactional topic's last
    record can sit below its end offset.
    """
    remaining = dict(ends)
    progress_at = time.monotonic()
    while remaining:
        batch = []
        for message in consumer.consume(num_messages=max_messages, timeout=1):
            partition, offset = message.partition() or 0, message.offset() or 0
            if message.error() is None and offset < remaining.get(partition, -1):
                batch.append(message)
        positions = consumer.position([TopicPartition(topic, p) for p in remaining])
        for position in positions:
            if position.offset >= remaining[position.partition]:
                del remaining[position.partition]
        if batch or len(positions) != len(remaining):
            progress_at = time.monotonic()
        elif time.monotonic() - progress_at > stall_s:
            raise CopeError(f"reading {topic} stalled short of its end offsets {remaining}")
        if batch:
            yield batch


def _records(settings: Settings, window: ReplayRange) -> Iterator[list[RawRecord]]:
    """Batches of the range's records, each partition read up to its fixed end."""
    consumer = _consumer(settings)
    ends = {p: e for p, (s, e) in window.offsets.items() if e > s}
    consumer.assign([TopicPartition(window.topic, p, window.offsets[p][0]) for p in ends])
    try:
        for batch in _read_until(consumer, window.topic, ends, settings.batch_max_events):
            records = []
            for message in batch:
                _, timestamp = message.timestamp()
                records.append(
                    RawRecord(
                        window.topic,
                        message.partition() or 0,
                        message.offset() or 0,
                        timestamp if timestamp > 0 else None,
                        message.key(),
                        message.value(),
                        time.monotonic(),
                    )
                )
            yield records
    finally:
        consumer.close()


def new_run_id() -> str:
    """A run id that sorts by start time and names the run's output topic."""
    return f"replay-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"


def replay(
    settings: Settings,
    window: ReplayRange,
    classifier: Classifier,
    model: ModelRef,
    snapshot_at: SnapshotAt,
    sink: LabelSink,
    description: dict[str, Any],
    *,
    manifest_path: Path,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Label every record of the range into `sink`; write and return the run manifest."""
    run_id = run_id or new_run_id()
    counts = {"events": 0, "labels": 0, "dead_letters": 0}
    versions: dict[str, set[int]] = {}
    progress = Progress(window.count(), "replayed")
    began = time.monotonic()
    try:
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
                for key, value in outcome.labels:
                    labelled = {**json.loads(value), "replay_run_id": run_id}
                    sink.write(key, json.dumps(labelled).encode("utf-8"))
                counts["labels"] += len(outcome.labels)
                counts["dead_letters"] += len(outcome.dead_letters)
            counts["events"] += len(batch)
            progress.advance(len(batch))
    finally:
        progress.close()
        sink.close()
    manifest = {
        "run_id": run_id,
        **description,
        "topic": window.topic,
        "offsets": {str(p): {"start": s, "end": e} for p, (s, e) in window.offsets.items()},
        "model": model.model_dump(),
        "policy_versions": {p: sorted(v) for p, v in sorted(versions.items())},
        "counts": counts,
        "seconds": round(time.monotonic() - began, 3),
        **sink.describe(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def replay_to_jsonl(
    settings: Settings,
    window: ReplayRange,
    classifier: Classifier,
    model: ModelRef,
    snapshot_at: SnapshotAt,
    out: Path,
    description: dict[str, Any],
) -> dict[str, Any]:
    """:func:`replay` into a JSONL file, with its manifest beside it (``.manifest.json``)."""
    return replay(
        settings,
        window,
        classifier,
        model,
        snapshot_at,
        JsonlSink(out),
        description,
        manifest_path=out.with_suffix(".manifest.json"),
    )


def read_label_topic(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every committed label record of a topic up to its end when called (live labels)."""
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise CopeError(f"label topic {topic} does not exist")
        ends = filled_partitions(consumer, topic, metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        return [
            json.loads(message.value() or b"{}")
            for batch in _read_until(consumer, topic, ends, 500)
            for message in batch
        ]
    finally:
        consumer.close()


def fetch_record(settings: Settings, topic: str, partition: int, offset: int) -> RawRecord:
    """The one record at (topic, partition, offset), as the worker first saw it."""
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for batch in _read_until(consumer, topic, {partition: offset + 1}, 1, stall_s=15):
            for message in batch:
                if message.offset() == offset:
                    _, timestamp = message.timestamp()
                    return RawRecord(
                        topic,
                        partition,
                        offset,
                        timestamp if timestamp > 0 else None,
                        message.key(),
                        message.value(),
                        time.monotonic(),
                    )
        raise CopeError(f"{topic}[{partition}]@{offset} is gone (retention or compaction)")
    finally:
        consumer.close()
