"""The registry store and reader against a real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from policy_registry import library_policy
from policy_registry.errors import PolicyError
from policy_registry.store import (
    RegistryReader,
    RegistryStore,
    RegistryTopicError,
    ensure_registry_topic,
)
from tests.kafka_support import unique_prefix

HATE = library_policy("hate")


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"{unique_prefix()}.policies"
    ensure_registry_topic(kafka_bootstrap, name)
    return name


@pytest.fixture
def store(kafka_bootstrap: str, topic: str) -> Iterator[RegistryStore]:
    created = RegistryStore(
        kafka_bootstrap, topic, count_tokens=lambda t: len(t.split()), max_policy_tokens=400
    )
    yield created
    created.close()


def test_publish_activate_and_read_back_in_another_reader(
    kafka_bootstrap: str, topic: str, store: RegistryStore
) -> None:
    first = store.publish("hate", HATE, threshold=0.6, author="alice", activate=True)
    second = store.publish("hate", HATE + "\n", author="bob")
    assert (first.version, second.version) == (1, 2)
    assert store.reader.snapshot().enforced["hate"].version == 1  # read-your-writes
    reader = RegistryReader(kafka_bootstrap, topic)
    reader.catch_up()
    assert reader.snapshot().enforced["hate"].threshold == 0.6
    assert reader.state.version("hate", 2).author == "bob"  # type: ignore[union-attr]
    reader.close()


def test_rollback_and_shadow(store: RegistryStore) -> None:
    store.publish("hate", HATE, author="a", activate=True)
    store.publish("hate", HATE + "\nv2", author="a", activate=True)
    store.publish("hate", HATE + "\nv3", author="a", shadow=True)
    snapshot = store.reader.snapshot()
    assert (snapshot.enforced["hate"].version, snapshot.shadowed["hate"].version) == (2, 3)
    store.rollback("hate", author="a")
    assert store.reader.snapshot().enforced["hate"].version == 1


def test_publish_refuses_bad_policies_with_reasons(store: RegistryStore) -> None:
    store.publish("hate", HATE, author="a", activate=True)
    with pytest.raises(PolicyError, match="already active with exactly this text"):
        store.publish("hate", HATE, author="a")
    with pytest.raises(PolicyError, match="missing sections"):
        store.publish("x", "# Criteria\n### (X): x\n#### Includes\n", author="a")
    with pytest.raises(PolicyError, match="outside"):
        store.publish("x", HATE, threshold=1.5, author="a")
    with pytest.raises(PolicyError, match=r"policy is \d+ tokens; the model accepts at most 400"):
        store.publish("x", HATE + " word" * 400, author="a")
    with pytest.raises(PolicyError, match="has no version 9"):
        store.activate("hate", 9, author="a")
    with pytest.raises(PolicyError, match="no earlier active version"):
        store.rollback("hate", author="a")


def test_records_written_around_the_store_are_skipped_and_counted(
    kafka_bootstrap: str, topic: str, store: RegistryStore
) -> None:
    store.publish("hate", HATE, author="a", activate=True)
    rogue = Producer({"bootstrap.servers": kafka_bootstrap})
    rogue.produce(topic, key=b"pointer/hate", value=b"{garbage")
    rogue.produce(topic, key=b"version/hate/1", value=b'{"kind": "pointer", "policy_id": "hate"}')
    rogue.flush(10)
    reader = RegistryReader(kafka_bootstrap, topic)
    reader.catch_up()
    assert reader.skipped == 2
    assert reader.snapshot().enforced["hate"].version == 1
    reader.close()


@pytest.mark.parametrize(
    ("partitions", "config", "message"),
    [
        (2, {"cleanup.policy": "compact"}, "has 2 partitions"),
        (1, {"cleanup.policy": "delete"}, "cleanup.policy=delete"),
    ],
)
def test_the_store_refuses_a_topic_that_is_not_one_compacted_partition(
    kafka_bootstrap: str, partitions: int, config: dict[str, str], message: str
) -> None:
    name = f"{unique_prefix()}.bad"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)]
    )[name].result(30)
    with pytest.raises(RegistryTopicError, match=message):
        RegistryStore(kafka_bootstrap, name)


def test_a_missing_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    with pytest.raises(RegistryTopicError, match="does not exist"):
        RegistryStore(kafka_bootstrap, f"{unique_prefix()}.absent")
