"""Policy versions swap under a running worker, at a batch boundary, losing nothing."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from policy_registry import library_policy
from policy_registry.store import RegistryReader, RegistryStore, ensure_registry_topic
from tests.kafka_support import create_topics, produce, read_committed, unique_prefix
from worker.consumers.live import LiveWorker
from worker.model.runtime import load_classifier
from worker.policies import RegistryPolicies
from worker.schemas import ModelRef
from worker.settings import Settings


def test_labels_switch_versions_between_batches_while_events_flow(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    prefix = unique_prefix()
    registry = f"{prefix}.policies"
    create_topics(kafka_bootstrap, [f"{prefix}.events", f"{prefix}.labels", f"{prefix}.dlq"])
    ensure_registry_topic(kafka_bootstrap, registry)
    store = RegistryStore(kafka_bootstrap, registry)
    hate = library_policy("hate")
    store.publish("hate", hate, author="t", activate=True)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        content_topic=f"{prefix}.events",
        labels_topic=f"{prefix}.labels",
        dlq_topic=f"{prefix}.dlq",
        group_id=f"{prefix}-g",
        transactional_id=f"{prefix}-tx",
        model_dir=worker_model_dir,
        provider="cpu",
        default_policy_ids=["hate"],
        batch_max_events=5,
        batch_max_wait_ms=50,
        metrics_port=0,
    )
    classifier = load_classifier(settings)
    reader = RegistryReader(kafka_bootstrap, registry)
    reader.catch_up()
    reader.follow()
    model = ModelRef(name="tiny", version="1", sha256=classifier.model_sha256)
    worker = LiveWorker(
        settings, classifier, model, RegistryPolicies(reader, classifier.tokenizer.encode_policy)
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    events = [
        (f"h{i}".encode(), json.dumps({"id": f"h{i}", "text": f"t {i}"}).encode())
        for i in range(120)
    ]
    try:
        for start in range(0, 60, 5):
            produce(kafka_bootstrap, f"{prefix}.events", events[start : start + 5])
            time.sleep(0.05)
        swapped = store.publish("hate", hate + "\nRevised.", author="t", activate=True)
        for start in range(60, 120, 5):
            produce(kafka_bootstrap, f"{prefix}.events", events[start : start + 5])
            time.sleep(0.05)
        labels = read_committed(kafka_bootstrap, f"{prefix}.labels", expected=len(events))
    finally:
        worker.stop()
        thread.join(60)
        reader.close()
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
    prefix = unique_prefix()
    registry = f"{prefix}.policies"
    create_topics(
        kafka_bootstrap,
        [f"{prefix}.events", f"{prefix}.labels", f"{prefix}.dlq", f"{prefix}.shadow"],
    )
    ensure_registry_topic(kafka_bootstrap, registry)
    store = RegistryStore(kafka_bootstrap, registry)
    hate = library_policy("hate")
    store.publish("hate", hate, author="t", activate=True)
    candidate = store.publish("hate", hate + "\nCandidate.", author="t", shadow=True)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        content_topic=f"{prefix}.events",
        labels_topic=f"{prefix}.labels",
        dlq_topic=f"{prefix}.dlq",
        shadow_labels_topic=f"{prefix}.shadow",
        group_id=f"{prefix}-g",
        transactional_id=f"{prefix}-tx",
        model_dir=worker_model_dir,
        provider="cpu",
        default_policy_ids=["hate"],
        metrics_port=0,
    )
    classifier = load_classifier(settings)
    reader = RegistryReader(kafka_bootstrap, registry)
    reader.catch_up()
    model = ModelRef(name="tiny", version="1", sha256=classifier.model_sha256)
    worker = LiveWorker(
        settings, classifier, model, RegistryPolicies(reader, classifier.tokenizer.encode_policy)
    )
    events = [
        (f"s{i}".encode(), json.dumps({"id": f"s{i}", "text": f"t {i}"}).encode())
        for i in range(20)
    ]
    produce(kafka_bootstrap, f"{prefix}.events", events)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        labels = read_committed(kafka_bootstrap, f"{prefix}.labels", expected=len(events))
        shadows = read_committed(kafka_bootstrap, f"{prefix}.shadow", expected=len(events))
    finally:
        worker.stop()
        thread.join(60)
        reader.close()
        store.close()
    enforced = {json.loads(v)["results"][0]["policy_version"] for _, v in labels}
    shadowed = {json.loads(v)["results"][0]["policy_version"] for _, v in shadows}
    assert enforced == {1}
    assert shadowed == {candidate.version}
    assert Counter(k for k, _ in shadows) == Counter(k for k, _ in events)
