"""Policy versions swap under a running worker, at a batch boundary, losing nothing."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from policy_registry import library_policy
from tests.kafka_support import produce, read_committed, registry_setup, running_worker

HATE = library_policy("hate")


def _events(prefix: str, count: int) -> list[tuple[bytes, bytes]]:
    return [
        (f"{prefix}{i}".encode(), json.dumps({"id": f"{prefix}{i}", "text": f"t {i}"}).encode())
        for i in range(count)
    ]


def test_labels_switch_versions_between_batches_while_events_flow(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    settings, store = registry_setup(
        kafka_bootstrap, worker_model_dir, batch_max_events=5, batch_max_wait_ms=50
    )
    store.publish("hate", HATE, author="t", activate=True)
    events = _events("h", 120)
    with running_worker(settings):
        for start in range(0, 60, 5):
            produce(kafka_bootstrap, settings.content_topic, events[start : start + 5])
            time.sleep(0.05)
        # Some labels under v1 first: on a loaded machine the worker may still
        # be joining its group when the first half is produced.
        read_committed(kafka_bootstrap, settings.labels_topic, expected=5, settle_s=0)
        swapped = store.publish("hate", HATE + "\nRevised.", author="t", activate=True)
        for start in range(60, 120, 5):
            produce(kafka_bootstrap, settings.content_topic, events[start : start + 5])
            time.sleep(0.05)
        labels = read_committed(kafka_bootstrap, settings.labels_topic, expected=len(events))
    store.close()
    assert Counter(key for key, _ in labels) == Counter(key for key, _ in events)
    versions_by_partition: dict[int, list[int]] = defaultdict(list)
    for _, value in labels:
        record = json.loads(value)
        [result] = record["results"]
        versions_by_partition[record["source"]["partition"]].append(result["policy_version"])
    for versions in versions_by_partition.values():
        assert versions == sorted(versions)  # never back to v1 once v2 applies
    seen = {v for versions in versions_by_partition.values() for v in versions}
    assert seen == {1, swapped.version}


def test_shadow_versions_reach_the_shadow_topic_and_never_the_enforced_labels(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    candidate = store.publish("hate", HATE + "\nCandidate.", author="t", shadow=True)
    store.close()
    events = _events("s", 20)
    produce(kafka_bootstrap, settings.content_topic, events)
    with running_worker(settings):
        labels = read_committed(kafka_bootstrap, settings.labels_topic, expected=len(events))
        shadows = read_committed(
            kafka_bootstrap, settings.shadow_labels_topic, expected=len(events)
        )
    enforced = {json.loads(v)["results"][0]["policy_version"] for _, v in labels}
    shadowed = {json.loads(v)["results"][0]["policy_version"] for _, v in shadows}
    assert enforced == {1}
    assert shadowed == {candidate.version}
    assert Counter(k for k, _ in shadows) == Counter(k for k, _ in events)


def test_a_restarted_worker_rebuilds_the_same_registry_state(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    store.publish("hate", HATE + "\nv2", author="t", activate=True)
    store.publish("hate", HATE + "\nv3", author="t", shadow=True)
    store.rollback("hate", author="t")
    expected = store.reader.snapshot()
    store.close()
    for _ in range(2):  # two lives of a worker, each reading the topic from the start
        with running_worker(settings) as worker:
            snapshot = worker.snapshot()
        assert {p: v.version for p, v in snapshot.policies.items()} == {
            p: r.version for p, r in expected.enforced.items()
        }
        assert {p: v.version for p, v in snapshot.shadows.items()} == {"hate": 3}
        assert snapshot.policies["hate"].version == 1
