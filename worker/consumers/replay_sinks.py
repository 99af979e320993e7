"""Where a replay's labels go: a JSONL file or a new Kafka topic named for the run.

The replay loop knows only :class:`LabelSink`, so both outputs share one loop.
A topic sink refuses the worker's own topics and any topic that already holds
records: a replay must never mix with live labels or with another run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, Message, Producer

from worker.consumers.admin import create_topic
from worker.consumers.kafka import filled_partitions, reader_config, replay_producer_config
from worker.errors import CopeError
from worker.settings import Settings

__all__ = ["JsonlSink", "LabelSink", "TopicSink", "open_topic_sink", "replay_topic_name"]


class LabelSink(Protocol):
    """One replay's output: labels in, flushed and checked on close."""

    def write(self, key: bytes, value: bytes) -> None: ...

    def describe(self) -> dict[str, Any]:
        """Manifest fields that say where the labels went."""
        ...

    def close(self) -> None:
        """Flush; raise CopeError if any label did not arrive."""
        ...


class JsonlSink:
    """Labels as JSON lines in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", encoding="utf-8")

    def write(self, key: bytes, value: bytes) -> None:
        self._handle.write(value.decode("utf-8") + "\n")

    def describe(self) -> dict[str, Any]:
        return {"output": str(self.path)}

    def close(self) -> None:
        self._handle.close()


class TopicSink:
    """Labels keyed by content id, like live labels, through an idempotent producer."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(replay_producer_config(settings))
        self._errors: list[str] = []

    def _delivered(self, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            self._errors.append(str(error))

    def write(self, key: bytes, value: bytes) -> None:
        if self._errors:  # stop at the first failure instead of labelling the whole range
            raise CopeError(f"cannot write to {self.topic}: {self._errors[0]}")
        while True:
            try:
                self._producer.produce(
                    self.topic, key=key, value=value, on_delivery=self._delivered
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self._producer.poll(0.5)
        self._producer.poll(0)

    def describe(self) -> dict[str, Any]:
        return {"output": f"topic:{self.topic}", "output_topic": self.topic}

    def close(self) -> None:
        undelivered = self._producer.flush(60)
        if undelivered or self._errors:
            first = self._errors[0] if self._errors else "flush timed out"
            raise CopeError(
                f"{undelivered + len(self._errors)} label(s) not written to {self.topic}: {first}"
            )


def replay_topic_name(settings: Settings, run_id: str) -> str:
    """The default output topic: the live label topic's name plus the run id."""
    return f"{settings.labels_topic}.{run_id}"


def open_topic_sink(settings: Settings, topic: str) -> TopicSink:
    """A sink on a new (or empty) topic with the live label topic's partition count."""
    live = {
        settings.labels_topic,
        settings.shadow_labels_topic,
        settings.content_topic,
        settings.dlq_topic,
        settings.registry_topic,
    }
    if topic in live:
        raise CopeError(f"{topic} is one of the worker's live topics; a replay never writes there")
    consumer = Consumer(reader_config(settings, "replay-output"))
    try:
        found = consumer.list_topics(timeout=10).topics
        if topic in found and filled_partitions(consumer, topic, found[topic].partitions):
            raise CopeError(
                f"topic {topic} already holds records; replay into a new topic "
                "(--to-topic without a name picks one named for the run)"
            )
        live_labels = found.get(settings.labels_topic)
        partitions = len(live_labels.partitions) if live_labels is not None else 3
    finally:
        consumer.close()
    create_topic(settings, topic, partitions)
    return TopicSink(settings, topic)
