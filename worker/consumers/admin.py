"""Topic administration for the demo, the tests, replay outputs and first-time set-up."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from worker.errors import CopeError
from worker.settings import Settings

__all__ = ["create_topic", "ensure_topics"]


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, **settings.kafka_options})


def _create_missing(
    settings: Settings, names: list[str], partitions: int, timeout_s: float
) -> list[str]:
    """Create those of `names` that do not exist yet; return the ones created here."""
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise CopeError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=-1)
        for name in names
        if name not in existing
    ]
    if not missing:
        return []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise CopeError(f"cannot create topic {name}: {exc}") from exc
    return [topic.topic for topic in missing]


def ensure_topics(settings: Settings, partitions: int = 3, timeout_s: float = 30.0) -> list[str]:
    """Create the content, label, shadow-label and dead-letter topics if missing."""
    wanted = [
        settings.content_topic,
        settings.labels_topic,
        settings.dlq_topic,
        settings.shadow_labels_topic,
    ]
    return _create_missing(settings, wanted, partitions, timeout_s)


def create_topic(settings: Settings, name: str, partitions: int, timeout_s: float = 30.0) -> bool:
    """Create one topic (a replay's output) unless it exists; True when created here."""
    return bool(_create_missing(settings, [name], partitions, timeout_s))
