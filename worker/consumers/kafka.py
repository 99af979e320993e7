"""librdkafka client configuration built from the one settings object.

Defaults that exactly-once needs are set here; anything in
``settings.kafka_options`` (security, tuning) is passed through untouched and
wins, so operators can set any librdkafka option without a code change. The
offsets helper beside them is shared by the replay readers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from worker.settings import Settings

__all__ = [
    "consumer_config",
    "filled_partitions",
    "producer_config",
    "reader_config",
    "replay_producer_config",
]


def consumer_config(settings: Settings) -> dict[str, Any]:
    """A group member that reads only committed records and never auto-commits."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": settings.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        **settings.kafka_options,
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    """A transactional (hence idempotent) producer for labels and dead letters."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "transactional.id": settings.transactional_id,
        "transaction.timeout.ms": settings.transaction_timeout_ms,
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        **settings.kafka_options,
    }


def reader_config(settings: Settings, purpose: str) -> dict[str, Any]:
    """A reader of committed records that assigns partitions itself (demo, replay, audit).

    librdkafka wants a group id; a throwaway one keeps these readers apart from
    the live group, and nothing is ever committed under it.
    """
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"cope-{purpose}-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        **settings.kafka_options,
    }


def replay_producer_config(settings: Settings) -> dict[str, Any]:
    """An idempotent, non-transactional producer for a replay's own output topic.

    No transactional id: a replay must never fence, or be fenced by, a live worker.
    """
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "linger.ms": 20,
        "compression.type": "lz4",
        **settings.kafka_options,
    }


def filled_partitions(consumer: Consumer, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """End offset of each of ``partitions`` that holds records (high above low watermark)."""
    ends = {}
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
        if high > low:
            ends[partition] = high
    return ends
