"""Real-broker helpers for integration tests: topics, producing, reading committed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from worker.settings import Settings


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
    )
    for future in futures.values():
        future.result(30)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def read_committed(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 90.0, settle_s: float = 2.0
) -> list[tuple[bytes | None, bytes]]:
    """Every committed record of a topic: waits for `expected`, then `settle_s` more
    so that duplicates, if any, would show."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is None and len(records) >= expected:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() > settle_until:
                break
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    records.append((message.key(), message.value() or b""))
    finally:
        consumer.close()
    return records


def isolated_settings(bootstrap: str, prefix: str, model_dir: Path, **extra: Any) -> Settings:
    """Worker settings whose topics, group and transactional id belong to one test."""
    fields: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "content_topic": f"{prefix}.events",
        "labels_topic": f"{prefix}.labels",
        "dlq_topic": f"{prefix}.dlq",
        "shadow_labels_topic": f"{prefix}.shadow",
        "registry_topic": f"{prefix}.policies",
        "group_id": f"{prefix}-group",
        "transactional_id": f"{prefix}-tx",
        "model_dir": model_dir,
        "provider": "cpu",
        "metrics_port": 0,
    }
    return Settings(**{**fields, **extra})


def create_worker_topics(settings: Settings) -> None:
    create_topics(
        settings.kafka_bootstrap,
        [
            settings.content_topic,
            settings.labels_topic,
            settings.dlq_topic,
            settings.shadow_labels_topic,
        ],
    )
