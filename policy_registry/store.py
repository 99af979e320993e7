"""The registry on a compacted, single-partition Kafka topic: reader and writer.

Modelled on Schema Registry's ``KafkaStore``: the topic is the database, every
reader folds it into the same state, and the writer returns only once its own
reader has read the record back (read-your-writes). Workers assign the one
partition (no consumer group), read to the end before serving, then follow.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from policy_registry.documents import parse_policy
from policy_registry.errors import CopeError, PolicyError
from policy_registry.records import (
    Activation,
    PointerRecord,
    RegistryState,
    VersionRecord,
    decode_record,
    record_key,
)
from policy_registry.signing import SIGNATURE_HEADER, Signer, Verifier

__all__ = ["RegistryReader", "RegistrySnapshot", "RegistryStore", "ensure_registry_topic"]

DEFAULT_TOPIC = "cope.policies"


class RegistryTopicError(CopeError):
    """The registry topic is missing or not shaped as the registry needs."""


@dataclass(frozen=True)
class RegistrySnapshot:
    """Enforced and shadow versions as of one offset; never changes once made."""

    enforced: dict[str, VersionRecord] = field(default_factory=dict)
    shadowed: dict[str, VersionRecord] = field(default_factory=dict)
    next_offset: int = 0


def _admin(bootstrap: str, options: dict[str, str]) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **options})


def ensure_registry_topic(
    bootstrap: str, topic: str = DEFAULT_TOPIC, options: dict[str, str] | None = None
) -> None:
    """Create the registry topic (compacted, one partition) if it does not exist."""
    admin = _admin(bootstrap, options or {})
    if topic in admin.list_topics(timeout=30).topics:
        return
    spec = NewTopic(
        topic,
        num_partitions=1,
        replication_factor=-1,
        config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    )
    try:
        admin.create_topics([spec])[topic].result(30)
    except KafkaException as exc:
        if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
            raise RegistryTopicError(f"cannot create registry topic {topic}: {exc}") from exc
    deadline = time.monotonic() + 30  # created on the controller; wait until brokers serve it
    while topic not in admin.list_topics(timeout=10).topics:
        if time.monotonic() > deadline:
            raise RegistryTopicError(f"registry topic {topic} was created but never appeared")
        time.sleep(0.1)


def check_registry_topic(bootstrap: str, topic: str, options: dict[str, str]) -> None:
    """Refuse a topic that is missing, not compacted, or has more than one partition."""
    admin = _admin(bootstrap, options)
    metadata = admin.list_topics(topic, timeout=30).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise RegistryTopicError(
            f"registry topic {topic} does not exist (`cope policy init` creates it)"
        )
    if len(metadata.partitions) != 1:
        raise RegistryTopicError(
            f"registry topic {topic} has {len(metadata.partitions)} "
            "partitions; it must have exactly 1 to keep one order"
        )
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    policy = configs["cleanup.policy"].value
    if "compact" not in policy.split(","):
        raise RegistryTopicError(
            f"registry topic {topic} has cleanup.policy={policy}; "
            "it must be compacted so versions are never deleted"
        )


class RegistryReader:
    """Folds the registry topic into state; serves immutable snapshots."""

    def __init__(
        self,
        bootstrap: str,
        topic: str = DEFAULT_TOPIC,
        options: dict[str, str] | None = None,
        on_skip: Callable[[str], None] | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.topic = topic
        self.verifier = verifier
        self.state = RegistryState()
        self.skipped = 0
        self._on_skip = on_skip or (lambda reason: None)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                # librdkafka wants a group id; assign() never joins it, nothing is committed
                "group.id": "cope-registry-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                **(options or {}),
            }
        )
        self._partition = TopicPartition(topic, 0, OFFSET_BEGINNING)
        self._consumer.assign([self._partition])
        self._next_offset = 0
        self._snapshot = RegistrySnapshot()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> RegistrySnapshot:
        return self._snapshot

    def end_offset(self) -> int:
        _, high = self._consumer.get_watermark_offsets(self._partition, timeout=10)
        return int(high)

    def poll_once(self, timeout_s: float = 0.2) -> int:
        """Apply whatever has arrived; return how many records were read."""
        with self._lock:
            messages = self._consumer.consume(num_messages=500, timeout=timeout_s)
            for message in messages:
                if message.error() is not None:
                    continue
                self._next_offset = (message.offset() or 0) + 1
                try:
                    if self.verifier is not None:
                        signature = dict(message.headers() or []).get(SIGNATURE_HEADER)
                        self.verifier.verify(
                            message.key(),
                            message.value(),
                            signature if isinstance(signature, bytes) else None,
                        )
                    self.state.apply(decode_record(message.key(), message.value()))
                except PolicyError as exc:
                    self.skipped += 1
                    self._on_skip(str(exc))
            if messages:
                self._snapshot = RegistrySnapshot(
                    self.state.enforced(), self.state.shadowed(), self._next_offset
                )
            return len(messages)

    def wait_for(self, offset: int, timeout_s: float = 30.0) -> None:
        """Read until every record before `offset` has been applied."""
        deadline = time.monotonic() + timeout_s
        while self._next_offset < offset:
            if time.monotonic() > deadline:
                raise RegistryTopicError(
                    f"registry reader reached offset {self._next_offset} "
                    f"of {offset} within {timeout_s:.0f} s"
                )
            self.poll_once()

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Read to the end of the topic as it is now (before serving anything)."""
        self.wait_for(self.end_offset(), timeout_s)

    def follow(self) -> None:
        """Keep applying new records on a daemon thread until close()."""

        def loop() -> None:
            while not self._stop.is_set():
                self.poll_once(0.1)

        self._thread = threading.Thread(target=loop, name="registry-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._consumer.close()


class RegistryStore:
    """The writer: validates, numbers and publishes versions and pointers."""

    def __init__(
        self,
        bootstrap: str,
        topic: str = DEFAULT_TOPIC,
        options: dict[str, str] | None = None,
        count_tokens: Callable[[str], int] | None = None,
        max_policy_tokens: int | None = None,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        options = options or {}
        check_registry_topic(bootstrap, topic, options)
        self.topic = topic
        self.count_tokens = count_tokens
        self.max_policy_tokens = max_policy_tokens
        self.signer = signer
        self.reader = RegistryReader(bootstrap, topic, options, verifier=verifier)
        self.reader.catch_up()
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", **options}
        )

    def close(self) -> None:
        self._producer.flush(10)
        self.reader.close()

    def _write(self, record: VersionRecord | PointerRecord) -> None:
        delivered: dict[str, Any] = {}

        def on_delivery(error: Any, message: Any) -> None:
            delivered["error"], delivered["offset"] = error, message.offset()

        key = record_key(record).encode()
        value = record.model_dump_json().encode()
        headers: list[tuple[str, str | bytes | None]] = []
        if self.signer is not None:
            headers.append((SIGNATURE_HEADER, self.signer.sign(key, value)))
        self._producer.produce(
            self.topic, key=key, value=value, headers=headers, on_delivery=on_delivery
        )
        self._producer.flush(30)
        if delivered.get("error") is not None or "offset" not in delivered:
            raise RegistryTopicError(f"registry write failed: {delivered.get('error')}")
        self.reader.wait_for(int(delivered["offset"]) + 1)  # read-your-writes

    def publish(
        self,
        policy_id: str,
        text: str,
        *,
        threshold: float = 0.5,
        author: str,
        notes: str = "",
        activate: bool = False,
        shadow: bool = False,
    ) -> VersionRecord:
        """Validate and store a new version; optionally activate or shadow it."""
        parse_policy(text, count_tokens=self.count_tokens, max_tokens=self.max_policy_tokens)
        if not 0.0 < threshold < 1.0:
            raise PolicyError(f"threshold {threshold} is outside (0, 1)")
        active = self.reader.state.enforced().get(policy_id)
        if active is not None and active.text == text:
            raise PolicyError(
                f"{policy_id} version {active.version} is already active with "
                "exactly this text; nothing to publish"
            )
        record = VersionRecord(
            policy_id=policy_id,
            version=self.reader.state.next_version(policy_id),
            text=text,
            sha256=hashlib.sha256(text.encode()).hexdigest(),
            threshold=threshold,
            author=author,
            created_at=datetime.now(UTC),
            notes=notes,
        )
        self._write(record)
        if activate:
            self.activate(policy_id, record.version, author=author)
        elif shadow:
            self.set_shadow(policy_id, record.version, author=author)
        return record

    def _pointer(self, policy_id: str) -> PointerRecord:
        return self.reader.state.pointers.get(policy_id) or PointerRecord(policy_id=policy_id)

    def activate(self, policy_id: str, version: int, *, author: str) -> PointerRecord:
        """Make a stored version the enforced one (a shadow of it is cleared)."""
        if self.reader.state.version(policy_id, version) is None:
            raise PolicyError(f"{policy_id} has no version {version}")
        pointer = self._pointer(policy_id)
        updated = pointer.model_copy(
            update={
                "active_version": version,
                "shadow_version": None
                if pointer.shadow_version == version
                else pointer.shadow_version,
                "history": [
                    *pointer.history,
                    Activation(version=version, at=datetime.now(UTC), author=author),
                ],
            }
        )
        self._write(updated)
        return updated

    def set_shadow(self, policy_id: str, version: int | None, *, author: str) -> PointerRecord:
        """Score a version alongside the active one without enforcing it (None clears)."""
        if version is not None and self.reader.state.version(policy_id, version) is None:
            raise PolicyError(f"{policy_id} has no version {version}")
        del author  # shadowing changes nothing enforced, so it is not in the history
        updated = self._pointer(policy_id).model_copy(update={"shadow_version": version})
        self._write(updated)
        return updated

    def rollback(self, policy_id: str, *, author: str) -> PointerRecord:
        """Re-activate the version that was active before the current one."""
        history = self._pointer(policy_id).history
        if len(history) < 2:
            raise PolicyError(f"{policy_id} has no earlier active version to roll back to")
        return self.activate(policy_id, history[-2].version, author=author)
