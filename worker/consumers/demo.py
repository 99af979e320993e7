"""The demo's client side: publish sample events, show their labels as they arrive.

It reads the label and dead-letter topics from their current ends (captured
before publishing), so only this run's results show, and it waits until every
event it published has a label or a dead letter.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from worker.consumers.kafka import reader_config
from worker.errors import CopeError
from worker.model.evaluate import json_objects
from worker.settings import Settings

__all__ = ["feed_and_watch"]


def _events(paths: list[Path]) -> list[dict[str, Any]]:
    return [record for path in paths for _, record in json_objects(path)]


def _watcher(settings: Settings) -> Consumer:
    consumer = Consumer(reader_config(settings, "demo"))
    partitions = []
    for topic in (settings.labels_topic, settings.dlq_topic):
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise CopeError(f"topic {topic} does not exist; run `cope topics create` first")
        partitions += [TopicPartition(topic, p, OFFSET_END) for p in metadata.partitions]
    consumer.assign(partitions)
    for partition in partitions:  # resolve OFFSET_END now, before anything is published
        _, high = consumer.get_watermark_offsets(partition, timeout=10)
        consumer.seek(TopicPartition(partition.topic, partition.partition, high))
    return consumer


def _show(record: dict[str, Any], texts: dict[str, str], out: TextIO) -> None:
    flags = "  ".join(
        f"{r['policy_id']}={r['score']:.2f}{'!' if r['decision'] else ' '}"
        for r in record["results"]
    )
    text = texts.get(record["content_id"], "")
    out.write(f"{record['content_id']:<16} {flags}  {text[:50]!r}\n")


def feed_and_watch(
    settings: Settings, paths: list[Path], timeout_s: float = 300.0, out: TextIO = sys.stdout
) -> int:
    """Publish the events in `paths`; print each label; return how many were labelled."""
    events = _events(paths)
    texts = {str(event.get("id")): str(event.get("text", "")) for event in events}
    watcher = _watcher(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, **settings.kafka_options})
    for event in events:
        producer.produce(
            settings.content_topic,
            key=str(event.get("id", "")).encode(),
            value=json.dumps(event).encode(),
        )
    if producer.flush(30):
        raise CopeError("could not publish every demo event within 30 s")
    out.write(
        f"published {len(events)} events to {settings.content_topic}; "
        f"labels (score, ! = flagged):\n"
    )
    pending = set(texts)
    labelled = 0
    deadline = time.monotonic() + timeout_s
    try:
        while pending and time.monotonic() < deadline:
            for message in watcher.consume(num_messages=100, timeout=0.5):
                if message.error() is not None:
                    continue
                record = json.loads(message.value() or b"{}")
                if message.topic() == settings.dlq_topic:
                    key = (message.key() or b"").decode(errors="replace")
                    out.write(f"{key:<16} dead letter: {record['reason']}\n")
                    pending.discard(key)
                    continue
                _show(record, texts, out)
                pending.discard(record["content_id"])
                labelled += 1
    finally:
        watcher.close()
    if pending:
        raise CopeError(f"{len(pending)} events got no label within {timeout_s:.0f} s")
    return labelled
