"""Real-broker helpers for integration tests: topics, producing, reading committed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from policy_registry.store import RegistryReader, RegistryStore, ensure_registry_topic
from worker.cli import main
from worker.consumers.live import LiveWorker
from worker.model.runtime import load_classifier
from worker.policies import RegistryPolicies
from worker.settings import Settings


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
    )
    for future in futures.values():
        future.result(30)


_RUN_PREFIXES: list[str] = []


def unique_prefix() -> str:
    """A fresh topic-name prefix; this run's topics under it go when the run ends."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    _RUN_PREFIXES.append(prefix)
    return prefix


def delete_topics_under(bootstrap: str, prefixes: Iterable[str]) -> list[str]:
    """Delete every topic named with one of ``prefixes``; returns the names deleted.

    Without it every run's topics stayed on the broker: a developer's
    long-lived broker grew by a few dozen partitions a run, and reloading
    thousands of them made a later start miss its time limit.
    """
    starts = tuple(prefixes)
    if not starts:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = sorted(name for name in admin.list_topics(timeout=30).topics if name.startswith(starts))
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(60)
    return names


def delete_run_topics(bootstrap: str) -> list[str]:
    """Delete the topics of every prefix this process handed out."""
    return delete_topics_under(bootstrap, _RUN_PREFIXES)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    timestamp_ms: int = 0,
) -> None:
    """Publish records (with one timestamp for all of them, if given)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, key=key, value=value, timestamp=timestamp_ms)
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


def isolated_settings(
    bootstrap: str, prefix: str, model_dir: Path | None, **extra: Any
) -> Settings:
    """Worker settings whose topics, group and transactional id belong to one run.

    The tests and the benchmarks share it; ``model_dir=None`` keeps the shipped model.
    """
    fields: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "content_topic": f"{prefix}.events",
        "labels_topic": f"{prefix}.labels",
        "dlq_topic": f"{prefix}.dlq",
        "shadow_labels_topic": f"{prefix}.shadow",
        "registry_topic": f"{prefix}.policies",
        "group_id": f"{prefix}-group",
        "transactional_id": f"{prefix}-tx",
        "provider": "cpu",
        "metrics_port": 0,
    }
    if model_dir is not None:
        fields["model_dir"] = model_dir
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


def registry_setup(
    bootstrap: str, model_dir: Path, **extra: object
) -> tuple[Settings, RegistryStore]:
    settings = isolated_settings(
        bootstrap, unique_prefix(), model_dir, default_policy_ids=["hate"], **extra
    )
    create_worker_topics(settings)
    ensure_registry_topic(bootstrap, settings.registry_topic)
    return settings, RegistryStore(bootstrap, settings.registry_topic)


@contextmanager
def running_worker(settings: Settings) -> Iterator[LiveWorker]:
    """A worker that follows the registry, on a thread, stopped on exit."""
    classifier = load_classifier(settings)
    reader = RegistryReader(settings.kafka_bootstrap, settings.registry_topic)
    reader.catch_up()
    reader.follow()
    model = classifier.model_ref()
    worker = LiveWorker(
        settings, classifier, model, RegistryPolicies(reader, classifier.tokenizer.encode_policy)
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(60)
        reader.close()


def content_events(prefix: str, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` keyed content events with ids ``prefix0``, ``prefix1``..."""
    return [
        (
            f"{prefix}{i}".encode(),
            json.dumps({"id": f"{prefix}{i}", "text": f"{prefix} {i}"}).encode(),
        )
        for i in range(count)
    ]


def replay_cli(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """``cope replay ARGV`` in-process with the given ``COPE_*`` environment."""
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    return main(["replay", *argv, "--provider", "cpu"])


def replay_env(settings: Settings) -> dict[str, str]:
    """The ``COPE_*`` variables that point the CLI at a test's isolated topics."""
    return {
        "COPE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "COPE_CONTENT_TOPIC": settings.content_topic,
        "COPE_REGISTRY_TOPIC": settings.registry_topic,
        "COPE_MODEL_DIR": str(settings.model_dir),
        "COPE_DEFAULT_POLICY_IDS": '["hate"]',
    }
